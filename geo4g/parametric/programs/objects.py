"""Object programs: airplane, car, mug, bottle, guitar, rocket."""
from __future__ import annotations

import math
from typing import Dict, Mapping, Sequence, Tuple

import torch

from ..primitives import box_mesh, cylinder_mesh, icosphere, revolve_mesh, tube_mesh
from .base import Draw, PartAssembler, ShapeProgram, rotation_matrix

__all__ = ["Airplane", "Car", "Mug", "Bottle", "Guitar", "Rocket", "PROGRAMS"]

Mesh = Tuple[torch.Tensor, torch.Tensor]

_BOX_FACES = box_mesh()[1]
_X_TO_Z = rotation_matrix("y", -math.pi / 2)  # x -> +z
_Z_TO_X = rotation_matrix("y", math.pi / 2)  # z -> +x
_Z_TO_Y = rotation_matrix("x", -math.pi / 2)  # z -> +y, y -> -z


def _closed(verts: torch.Tensor, faces: torch.Tensor) -> Mesh:
    """Flip the faces of a closed mesh whose signed volume is negative (a mirrored layout)."""
    a, b, c = verts[faces].unbind(1)
    return (verts, faces.flip(1)) if float((a * torch.linalg.cross(b, c)).sum()) < 0 else (verts, faces)


def _hexahedron(corners: Sequence[Sequence[float]]) -> Mesh:
    """A box-topology solid through 8 corners, indexed ``4 * ix + 2 * iy + iz`` like ``box_mesh``'s."""
    return _closed(torch.tensor(corners, dtype=torch.float64), _BOX_FACES)


def _plate(span: float, root_chord: float, tip_chord: float, sweep: float, root_thickness: float,
           tip_thickness: float, rise: float = 0.0) -> Mesh:
    """A tapered swept plate (wing, fin): root at ``x = 0`` with leading edge at ``y = 0``, tip at
    ``x = span`` (negative spans mirror it) with leading edge at ``y = sweep``, raised by ``rise``."""
    corners = []
    for x, lead, chord, thick, z in ((0.0, 0.0, root_chord, root_thickness, 0.0),
                                     (span, sweep, tip_chord, tip_thickness, rise)):
        for y in (lead, lead + chord):
            for dz in (-thick / 2, thick / 2):
                corners.append((x, y, z + dz))
    return _hexahedron(corners)


def _star_prism(outline: torch.Tensor, centre: Sequence[float], depth: float) -> Mesh:
    """A slab ``depth`` thick along ``y`` whose ``(x, z)`` outline ``(n, 2)`` is star-shaped about ``centre``."""
    n = outline.shape[0]
    x, z = outline[:, 0], outline[:, 1]
    rings = [torch.stack([x, torch.full_like(x, y), z], 1) for y in (-depth / 2, depth / 2)]
    centres = torch.tensor([[centre[0], -depth / 2, centre[1]], [centre[0], depth / 2, centre[1]]],
                           dtype=torch.float64)
    i = torch.arange(n)
    j = (i + 1) % n
    faces = torch.cat([torch.stack([i, j, j + n], 1), torch.stack([i, j + n, i + n], 1),
                       torch.stack([torch.full_like(i, 2 * n), j, i], 1),
                       torch.stack([torch.full_like(i, 2 * n + 1), i + n, j + n], 1)])
    return _closed(torch.cat([*rings, centres]), faces)


def _ellipse_union_outline(centre: Sequence[float], ellipses: Sequence[Sequence[float]], n: int) -> torch.Tensor:
    """``(n, 2)`` points of the boundary of a union of ellipses ``(cx, cz, a, b, angle)``, each containing
    ``centre``, traced by rays from ``centre`` (the union of convex sets sharing a point is star-shaped)."""
    theta = torch.arange(n, dtype=torch.float64) * (2 * math.pi / n)
    d = torch.stack([theta.cos(), theta.sin()], 1)
    reach = torch.zeros(n, dtype=torch.float64)
    c = torch.tensor(centre, dtype=torch.float64)
    for ex, ez, a, b, angle in ellipses:
        rot = torch.tensor([[math.cos(angle), math.sin(angle)], [-math.sin(angle), math.cos(angle)]],
                           dtype=torch.float64)
        q0 = rot @ (c - torch.tensor([ex, ez], dtype=torch.float64))
        u = d @ rot.T
        inv = torch.tensor([1 / a ** 2, 1 / b ** 2], dtype=torch.float64)
        qa = (u * u * inv).sum(1)
        qb = 2 * (u * q0 * inv).sum(1)
        qc = float((q0 * q0 * inv).sum()) - 1
        reach = torch.maximum(reach, (-qb + (qb * qb - 4 * qa * qc).sqrt()) / (2 * qa))
    return c + reach[:, None] * d


def _add_lying(parts: PartAssembler, part: str, mesh: Mesh, at: Sequence[float]) -> None:
    """Place a mesh built along ``z`` so that it runs along ``+y`` (backwards) from ``at``."""
    parts.add(part, mesh, rotate=_Z_TO_Y, translate=at)


class Airplane(ShapeProgram):
    """Airliner, fighter, glider or turboprop: fuselage proportions, wing span/sweep/taper/dihedral,
    0/2/4 engines under the wings or on the fuselage, conventional, T- or twin tail, landing gear down or up."""

    name = "airplane"
    parts = ("body", "wing", "tail", "engine")
    param_names = ("kind", "fuselage_radius", "nose_length", "nose_bluntness", "tail_length", "tail_upsweep",
                   "wing_position", "wing_height", "half_span", "root_chord", "taper", "sweep", "dihedral",
                   "wing_thickness", "engines", "rear_engines", "engine_radius", "fin_height", "fin_chord",
                   "fin_sweep", "stabiliser_span", "t_tail", "twin_fins", "gear", "gear_height")

    # Per kind (airliner, fighter, glider, turboprop): ranges for the continuous parameters.
    _RANGES = {
        "fuselage_radius": ((0.045, 0.06), (0.045, 0.065), (0.028, 0.042), (0.06, 0.08)),
        "nose_length": ((0.08, 0.14), (0.18, 0.3), (0.1, 0.18), (0.07, 0.12)),
        "nose_bluntness": ((1.6, 2.2), (1.0, 1.4), (1.5, 2.0), (1.8, 2.2)),
        "tail_length": ((0.22, 0.32), (0.15, 0.22), (0.35, 0.5), (0.22, 0.3)),
        "tail_upsweep": ((0.4, 0.9), (0.0, 0.1), (0.0, 0.3), (0.6, 1.0)),
        "wing_position": ((0.32, 0.42), (0.4, 0.5), (0.26, 0.34), (0.32, 0.4)),
        "wing_height": ((-0.7, -0.4), (-0.2, 0.2), (0.5, 0.8), (0.75, 0.95)),
        "half_span": ((0.38, 0.55), (0.18, 0.34), (0.8, 1.5), (0.5, 0.7)),
        "root_chord": ((0.14, 0.22), (0.3, 0.45), (0.07, 0.1), (0.11, 0.15)),
        "taper": ((0.2, 0.35), (0.08, 0.3), (0.3, 0.5), (0.45, 0.75)),
        "sweep": ((0.45, 0.65), (0.6, 1.0), (-0.03, 0.08), (0.0, 0.12)),
        "dihedral": ((0.04, 0.1), (-0.08, 0.0), (0.03, 0.08), (-0.03, 0.04)),
        "wing_thickness": ((0.1, 0.14), (0.04, 0.07), (0.1, 0.14), (0.12, 0.16)),
        "engine_radius": ((0.55, 0.75), (0.45, 0.55), (0.5, 0.6), (0.4, 0.55)),
        "fin_height": ((0.13, 0.2), (0.11, 0.19), (0.1, 0.15), (0.15, 0.22)),
        "fin_chord": ((0.12, 0.18), (0.14, 0.22), (0.08, 0.12), (0.12, 0.17)),
        "fin_sweep": ((0.6, 0.9), (0.6, 1.0), (0.15, 0.45), (0.3, 0.7)),
        "stabiliser_span": ((0.12, 0.2), (0.1, 0.16), (0.09, 0.15), (0.14, 0.22)),
        "gear_height": ((0.7, 1.1), (1.0, 1.6), (0.3, 0.5), (0.8, 1.2)),
    }

    def draw_params(self, draw: Draw) -> Dict[str, float]:
        kind = draw.choice((0, 1, 1, 2, 3))
        p = {name: draw.uniform(*ranges[kind]) for name, ranges in self._RANGES.items()}
        p["kind"] = float(kind)
        p["engines"] = float(draw.choice(((2, 2, 4), (0, 2), (0,), (2, 4))[kind]))
        p["rear_engines"] = float(kind == 0 and p["engines"] == 2 and draw.coin(0.3))
        p["t_tail"] = float(p["rear_engines"] == 1 or (kind in (2, 3) and draw.coin(0.5)))
        p["twin_fins"] = float(kind == 1 and draw.coin(0.6))
        p["gear"] = float(draw.coin(0.7))
        return p

    def build(self, p: Mapping[str, float], parts: PartAssembler) -> None:
        kind = int(p["kind"])
        radius, nose, tail = p["fuselage_radius"], p["nose_length"], p["tail_length"]
        tail_start = 1.0 - tail
        tail_end_radius = 0.6 if kind == 1 else 0.25
        upsweep = p["tail_upsweep"] * radius
        bluntness = p["nose_bluntness"]

        def section(y: float) -> Tuple[float, float]:
            """Fuselage radius and centre height at ``y`` (0 = nose, 1 = tail)."""
            if y < nose:
                t = y / nose
                return radius * (1 - (1 - t) ** bluntness) ** (1 / bluntness), 0.0
            if y <= tail_start:
                return radius, 0.0
            t = (y - tail_start) / tail
            return radius * (1 - (1 - tail_end_radius) * t ** 1.5), upsweep * t * t

        ys = [nose * t for t in (0.0, 0.1, 0.25, 0.45, 0.7, 1.0)] + [tail_start + tail * t for t in (0.0, 0.35, 0.7, 1.0)]
        verts, faces = revolve_mesh([(section(y)[0], y) for y in ys], 16, torch.float64)
        # Lay the lathe along +y, nose first, and bend the tail cone up (an axisymmetric fuselage has no upsweep).
        y = verts[:, 2]
        t = ((y - tail_start) / tail).clamp(min=0)
        verts = torch.stack([verts[:, 0], y, -verts[:, 1] + upsweep * t * t], 1)
        parts.add("body", (verts, faces))
        if kind in (1, 2):
            parts.add("body", icosphere(1), scale=(radius * 0.6, nose * 0.9, radius * 0.55),
                      translate=(0.0, nose * 1.1, radius * 0.65))

        if p["gear"]:
            self._add_gear(parts, radius, p["gear_height"] * radius, nose, p["wing_position"] + p["root_chord"] * 0.6,
                           kind == 2)

        # Wings.
        half_span, chord, thickness = p["half_span"], p["root_chord"], p["wing_thickness"]
        tip = chord * p["taper"]
        sweep, rise = half_span * p["sweep"], half_span * p["dihedral"]
        wing_y, wing_z = p["wing_position"], p["wing_height"] * radius
        for side in (-1, 1):
            parts.add("wing", _plate(side * half_span, chord, tip, sweep, chord * thickness, tip * thickness, rise),
                      translate=(0.0, wing_y, wing_z))

        # Engines.
        engines, engine_r = int(p["engines"]), p["engine_radius"] * radius
        if engines and kind == 1:
            for side in (-1, 1):
                length = 1.0 - wing_y + 0.02
                _add_lying(parts, "engine", revolve_mesh(
                    [(engine_r * 0.8, 0.0), (engine_r, 0.1 * length), (engine_r, length)], 14),
                    (side * radius * 0.75, wing_y, -radius * 0.15))
        elif engines and p["rear_engines"]:
            length = engine_r * 4.5
            for side in (-1, 1):
                x = side * (radius + engine_r * 1.6)
                _add_lying(parts, "engine", self._nacelle(engine_r, length), (x, tail_start - length * 0.4, radius * 0.35))
                parts.add("engine", box_mesh((abs(x), length * 0.4, engine_r * 0.3)),
                          translate=(x / 2, tail_start, radius * 0.35))
        elif engines:
            stations = (0.34,) if engines == 2 else (0.3, 0.6)
            for side in (-1, 1):
                for station in stations:
                    x = side * half_span * station
                    lead, z = wing_y + sweep * station, wing_z + rise * station
                    if kind == 3:
                        length = chord * 1.3
                        _add_lying(parts, "engine", self._nacelle(engine_r, length), (x, lead - length * 0.4, z))
                        for k in range(2):
                            blade = rotation_matrix("y", k * math.pi / 2 + 0.3)
                            parts.add("engine", box_mesh((engine_r * 0.35, engine_r * 0.15, engine_r * 4.2)),
                                      rotate=blade, translate=(x, lead - length * 0.45, z))
                    else:
                        length = engine_r * 4.0
                        drop = engine_r * 1.3 + chord * thickness / 2
                        _add_lying(parts, "engine", self._nacelle(engine_r, length), (x, lead - length * 0.55, z - drop))
                        parts.add("engine", box_mesh((engine_r * 0.25, length * 0.5, drop)),
                                  translate=(x, lead + length * 0.05, z - drop / 2))

        # Tail: one or two fins and horizontal stabilisers (on the fin tip for a T-tail).
        fin_h, fin_c = p["fin_height"], p["fin_chord"]
        fin_sweep = fin_h * p["fin_sweep"]
        fin_y = 1.0 - fin_c - 0.02
        fin_r, fin_z = section(fin_y + fin_c / 2)
        fin_thickness = fin_c * 0.1
        fin = _plate(fin_h, fin_c, fin_c * 0.5, fin_sweep, fin_thickness, fin_thickness * 0.5)
        if p["twin_fins"]:
            for side in (-1, 1):
                cant = rotation_matrix("y", -side * 0.3) @ _X_TO_Z
                parts.add("tail", fin, rotate=cant, translate=(side * fin_r * 0.7, fin_y, fin_z + fin_r * 0.5))
        else:
            parts.add("tail", fin, rotate=_X_TO_Z, translate=(0.0, fin_y, fin_z + fin_r * 0.6))
        stab_span = p["stabiliser_span"]
        stab_c = fin_c * 0.85
        if p["t_tail"]:
            stab_y, stab_z = fin_y + fin_sweep + fin_c * 0.5 - stab_c * 0.9, fin_z + fin_r * 0.6 + fin_h
        else:
            stab_y, stab_z = 1.0 - stab_c - 0.03, fin_z
        stab_sweep = stab_span * p["fin_sweep"] * 0.6
        for side in (-1, 1):
            parts.add("tail", _plate(side * stab_span, stab_c, stab_c * 0.5, stab_sweep, stab_c * 0.1, stab_c * 0.05,
                                     stab_span * 0.05), translate=(0.0, stab_y, stab_z))

    @staticmethod
    def _add_gear(parts: PartAssembler, radius: float, height: float, nose: float, main_y: float,
                  single: bool) -> None:
        """Struts and wheels ``height`` below the belly: a nose wheel and two mains, or one belly wheel."""
        wheel_r = height * 0.3
        ground = -radius - height
        strut = height + radius * 0.3 - wheel_r
        legs = [(0.0, main_y)] if single else [(0.0, nose * 1.1), (-radius * 0.6, main_y), (radius * 0.6, main_y)]
        wheel = cylinder_mesh(wheel_r, wheel_r * 0.8, 12)
        for x, y in legs:
            parts.add("body", box_mesh((radius * 0.12, radius * 0.12, strut)),
                      translate=(x, y, ground + wheel_r + strut / 2))
            parts.add("body", wheel, rotate=_Z_TO_X, translate=(x, y, ground + wheel_r))

    @staticmethod
    def _nacelle(radius: float, length: float) -> Mesh:
        return revolve_mesh([(radius * 0.85, 0.0), (radius, 0.12 * length), (radius, 0.65 * length),
                             (radius * 0.55, length)], 14)


class Car(ShapeProgram):
    """Sedan, SUV, sports car, pickup, box truck or city car: width, height, wheel size, 4 or 6 wheels,
    cabin position and rake, hood slope, spoiler."""

    name = "car"
    parts = ("body", "roof", "hood", "wheel")
    param_names = ("kind", "width", "height", "wheel_radius", "wheel_width", "clearance", "belt", "front_axle",
                   "rear_axle", "cabin_start", "cabin_end", "front_rake", "rear_rake", "roof_taper", "hood_drop",
                   "nose_round", "wheels", "spoiler")

    # Per kind (sedan, SUV, sports, pickup, box truck, city car); lengths are fractions of the car's length.
    _RANGES = {
        "width": ((0.36, 0.45), (0.39, 0.48), (0.42, 0.52), (0.33, 0.42), (0.28, 0.38), (0.44, 0.56)),
        "height": ((0.26, 0.34), (0.34, 0.45), (0.2, 0.28), (0.32, 0.42), (0.38, 0.55), (0.4, 0.52)),
        "wheel_radius": ((0.065, 0.08), (0.08, 0.1), (0.065, 0.08), (0.075, 0.09), (0.055, 0.075), (0.085, 0.1)),
        "wheel_width": ((0.045, 0.06), (0.05, 0.065), (0.055, 0.07), (0.05, 0.065), (0.04, 0.055), (0.055, 0.07)),
        "clearance": ((0.035, 0.05), (0.055, 0.08), (0.025, 0.04), (0.06, 0.085), (0.05, 0.07), (0.04, 0.06)),
        "belt": ((0.55, 0.65), (0.55, 0.65), (0.55, 0.65), (0.58, 0.68), (0.28, 0.34), (0.5, 0.6)),
        "front_axle": ((0.15, 0.2), (0.14, 0.18), (0.15, 0.2), (0.14, 0.18), (0.12, 0.16), (0.14, 0.18)),
        "rear_axle": ((0.78, 0.84), (0.8, 0.86), (0.8, 0.85), (0.74, 0.8), (0.72, 0.8), (0.82, 0.87)),
        "cabin_start": ((0.3, 0.37), (0.27, 0.33), (0.38, 0.46), (0.24, 0.3), (0.01, 0.03), (0.25, 0.32)),
        "cabin_end": ((0.74, 0.8), (0.92, 0.97), (0.72, 0.8), (0.55, 0.62), (0.2, 0.25), (0.9, 0.96)),
        "front_rake": ((0.1, 0.15), (0.06, 0.1), (0.13, 0.19), (0.05, 0.09), (0.01, 0.04), (0.1, 0.16)),
        "rear_rake": ((0.07, 0.12), (0.01, 0.04), (0.1, 0.18), (0.0, 0.02), (0.0, 0.01), (0.02, 0.06)),
        "roof_taper": ((0.75, 0.85), (0.82, 0.9), (0.68, 0.8), (0.85, 0.92), (0.9, 0.96), (0.82, 0.9)),
        "hood_drop": ((0.01, 0.03), (0.0, 0.02), (0.02, 0.05), (0.0, 0.015), (0.0, 0.01), (0.01, 0.03)),
        "nose_round": ((0.02, 0.05), (0.015, 0.04), (0.03, 0.06), (0.01, 0.03), (0.005, 0.015), (0.03, 0.06)),
    }

    def draw_params(self, draw: Draw) -> Dict[str, float]:
        kind = draw.integer(0, 5)
        p = {name: draw.uniform(*ranges[kind]) for name, ranges in self._RANGES.items()}
        p["kind"] = float(kind)
        p["wheels"] = 6.0 if kind in (3, 4) and draw.coin(0.5) else 4.0
        p["spoiler"] = float(kind == 2 and draw.coin(0.5))
        return p

    def build(self, p: Mapping[str, float], parts: PartAssembler) -> None:
        kind = int(p["kind"])
        w, h = p["width"], p["height"]
        bottom, belt = p["clearance"], p["clearance"] + (h - p["clearance"]) * p["belt"]
        nose = p["nose_round"]
        truck = kind == 4
        corners = [(sx * w / 2 * (1 if iz == 0 else 0.97), y0 if iz == 0 else y1, bottom if iz == 0 else belt)
                   for sx in (-1, 1) for y0, y1 in ((0.0, nose), (1.0, 1.0 - nose / 2)) for iz in (0, 1)]
        parts.add("body", _hexahedron(corners))

        cs, ce = p["cabin_start"], p["cabin_end"]
        cabin_top = h * (0.82 if truck else 1.0)
        top_w = w * p["roof_taper"]
        roof = [(sx * (w * 0.47 if iz == 0 else top_w / 2), y, belt - 0.005 if iz == 0 else cabin_top)
                for sx in (-1, 1)
                for y_bottom, y_top in ((cs, cs + p["front_rake"]), (ce, ce - p["rear_rake"]))
                for iz, y in ((0, y_bottom), (1, y_top))]
        parts.add("roof", _hexahedron(roof))
        if cs - nose > 0.05:
            drop, t = p["hood_drop"], 0.015
            hood = [(sx * w * 0.45, y, z) for sx in (-1, 1)
                    for y, top in ((nose, belt + t - drop), (cs + 0.01, belt + t)) for z in (belt - t, top)]
            parts.add("hood", _hexahedron(hood))

        if truck:
            box_y = ce + 0.02
            parts.add("body", box_mesh((w * 1.04, 1.0 - box_y, h - belt)), translate=(0.0, (1.0 + box_y) / 2, (h + belt) / 2))
        elif kind == 3:
            wall, rim = 0.015, 0.06
            y0 = ce + 0.01
            for sx in (-1, 1):
                parts.add("body", box_mesh((wall, 1.0 - y0, rim)), translate=(sx * (w / 2 - wall), (1.0 + y0) / 2, belt + rim / 2))
            for y in (y0 + wall / 2, 1.0 - wall):
                parts.add("body", box_mesh((w * 0.97, wall, rim)), translate=(0.0, y, belt + rim / 2))
        if p["spoiler"]:
            for sx in (-1, 1):
                parts.add("body", box_mesh((0.015, 0.03, 0.05)), translate=(sx * w * 0.3, 0.95, belt + 0.025))
            parts.add("body", box_mesh((w * 0.85, 0.07, 0.008)), translate=(0.0, 0.955, belt + 0.05))

        r, ww = p["wheel_radius"], p["wheel_width"]
        axles = [p["front_axle"], p["rear_axle"]]
        if p["wheels"] == 6:
            axles = [axles[0], axles[1] - r * 1.08, axles[1] + r * 1.08]
        wheel = cylinder_mesh(r, ww, 16)
        for y in axles:
            for sx in (-1, 1):
                parts.add("wheel", wheel, rotate=_Z_TO_X, translate=(sx * (w / 2 - ww * 0.3), y, r))


class Mug(ShapeProgram):
    """A hollow revolved cup with a side handle: height/width, taper, bulge, wall, foot, handle
    size, squareness and position."""

    name = "mug"
    parts = ("body", "handle")
    param_names = ("radius", "taper", "bulge", "wall", "base", "foot", "handle_top", "handle_span",
                   "handle_reach", "handle_square", "handle_tilt", "handle_thickness")

    def draw_params(self, draw: Draw) -> Dict[str, float]:
        return {
            "radius": draw.uniform(0.22, 0.75),
            "taper": draw.choice((draw.uniform(0.95, 1.05), draw.uniform(0.75, 1.3))),
            "bulge": draw.choice((0.0, draw.uniform(-0.08, 0.15))),
            "wall": draw.uniform(0.03, 0.06),
            "base": draw.uniform(0.04, 0.1),
            "foot": float(draw.coin(0.3)),
            "handle_top": draw.uniform(0.7, 0.9),
            "handle_span": draw.uniform(0.35, 0.6),
            "handle_reach": draw.uniform(0.13, 0.32),
            "handle_square": draw.uniform(0.35, 1.0),
            "handle_tilt": draw.uniform(-0.3, 0.4),
            "handle_thickness": draw.uniform(0.022, 0.042),
        }

    def build(self, p: Mapping[str, float], parts: PartAssembler) -> None:
        r, taper, bulge, wall = p["radius"], p["taper"], p["bulge"], p["wall"]

        def outer(z: float) -> float:
            return r * (1 + (taper - 1) * z) * (1 + bulge * math.sin(math.pi * z))

        heights = [i / 7 for i in range(1, 8)]
        base = p["base"]
        profile = [(0.0, 0.0)]
        if p["foot"]:
            profile += [(outer(0.0) * 0.85, 0.0), (outer(0.0) * 0.85, 0.03), (outer(0.04), 0.04)]
        else:
            profile += [(outer(0.0) - wall, 0.0), (outer(0.0), wall)]
        profile += [(outer(z), z) for z in heights]
        profile += [(outer(1.0) - wall / 2, 1.0 + wall * 0.4)]
        profile += [(outer(z) - wall, z) for z in reversed(heights) if z > base] + [(outer(base) - wall, base), (0.0, base)]
        parts.add("body", revolve_mesh(profile, 24))

        # The handle path follows the outer wall, so its ends sink into the wall at any taper.
        top, span, reach = p["handle_top"], p["handle_span"], p["handle_reach"]
        centre, e, tilt = top - span / 2, p["handle_square"], p["handle_tilt"]
        path = []
        for k in range(13):
            a = math.pi / 2 - math.pi * k / 12
            c, s = math.cos(a), math.sin(a)
            c, s = abs(c) ** e, math.copysign(abs(s) ** e, s)
            z = centre + span / 2 * s
            path.append((outer(z) - wall * 0.6 + reach * c * (1 + tilt * s), 0.0, z))
        parts.add("handle", tube_mesh(path, p["handle_thickness"], 10))


class Bottle(ShapeProgram):
    """Wine bottle, water bottle, squat jar, flat flask or handled jug: body width and flattening, shoulder
    height and roundness, neck length and width, cap or cork, jug handle reach."""

    name = "bottle"
    parts = ("body", "neck", "cap")
    param_names = ("kind", "radius", "flatten", "shoulder", "shoulder_round", "neck_radius", "neck_length",
                   "neck_taper", "lip", "cap_height", "cap_width", "taper", "handle_reach")

    # Per kind (wine, water, jar, flask, jug).
    _RANGES = {
        "radius": ((0.12, 0.2), (0.13, 0.3), (0.35, 0.75), (0.18, 0.5), (0.25, 0.42)),
        "flatten": ((1.0, 1.0), (1.0, 1.0), (1.0, 1.0), (0.28, 0.8), (1.0, 1.0)),
        "shoulder": ((0.6, 0.75), (0.55, 0.8), (0.78, 0.92), (0.55, 0.75), (0.55, 0.75)),
        "shoulder_round": ((0.7, 2.0), (0.5, 1.5), (0.5, 1.0), (0.7, 1.5), (0.6, 1.2)),
        "neck_radius": ((0.3, 0.4), (0.3, 0.5), (0.65, 0.88), (0.12, 0.25), (0.3, 0.45)),
        "neck_length": ((0.35, 0.55), (0.06, 0.15), (0.03, 0.07), (0.08, 0.2), (0.05, 0.12)),
        "neck_taper": ((0.85, 1.0), (0.9, 1.0), (0.97, 1.0), (0.8, 1.0), (0.9, 1.0)),
        "cap_height": ((0.1, 0.2), (0.05, 0.1), (0.04, 0.1), (0.05, 0.12), (0.06, 0.1)),
        "cap_width": ((1.05, 1.15), (1.1, 1.35), (1.04, 1.12), (1.1, 1.5), (1.1, 1.3)),
        "taper": ((0.97, 1.02), (0.9, 1.1), (0.85, 1.1), (0.9, 1.1), (0.95, 1.05)),
        "handle_reach": ((0.0, 0.0), (0.0, 0.0), (0.0, 0.0), (0.0, 0.0), (0.3, 0.6)),
    }

    def draw_params(self, draw: Draw) -> Dict[str, float]:
        kind = draw.integer(0, 4)
        p = {name: draw.uniform(*ranges[kind]) for name, ranges in self._RANGES.items()}
        p["kind"] = float(kind)
        p["lip"] = float(kind not in (2, 4) and draw.coin(0.6))
        return p

    def build(self, p: Mapping[str, float], parts: PartAssembler) -> None:
        r, shoulder, k = p["radius"], p["shoulder"], p["shoulder_round"]
        neck_r = r * p["neck_radius"]
        top_r = r * p["taper"]
        profile = [(0.0, 0.0), (r * 0.9, 0.0), (r, 0.03)]
        profile += [(r + (top_r - r) * z / shoulder, z) for z in (shoulder * 0.5, shoulder)]
        for t in (0.2, 0.4, 0.6, 0.8, 0.95):
            profile.append((neck_r + (top_r - neck_r) * math.cos(t * math.pi / 2) ** k,
                            shoulder + (1 - shoulder) * math.sin(t * math.pi / 2)))
        profile.append((neck_r, 1.0))
        parts.add("body", revolve_mesh(profile, 20), scale=(1.0, p["flatten"], 1.0))
        if p["handle_reach"] > 0:
            # A jug's handle arcs from under the neck out and down to the side of the body (cubic Bezier).
            reach = r * p["handle_reach"]
            controls = torch.tensor([(neck_r * 0.9, 0.0, 0.97), (top_r + reach, 0.0, 1.02),
                                     (r + reach * 1.2, 0.0, shoulder * 0.5), (r * 0.95, 0.0, shoulder * 0.4)],
                                    dtype=torch.float64)
            t = torch.linspace(0, 1, 10, dtype=torch.float64)[:, None]
            weights = torch.cat([(1 - t) ** 3, 3 * t * (1 - t) ** 2, 3 * t * t * (1 - t), t ** 3], 1)
            parts.add("body", tube_mesh(weights @ controls, r * 0.09, 10))

        length, end_r = p["neck_length"], neck_r * p["neck_taper"]
        neck = [(neck_r, 0.0), (end_r, length)]
        if p["lip"]:
            neck = [(neck_r, 0.0), (end_r, length * 0.88), (end_r * 1.15, length * 0.9), (end_r * 1.15, length)]
        base = 1.0 - 0.01
        parts.add("neck", revolve_mesh(neck, 16), translate=(0.0, 0.0, base))
        cap_h = p["cap_height"]
        cap_r = end_r * p["cap_width"] * (1.15 if p["lip"] else 1.0)
        # A wine capsule sheathes the top of the neck; other caps sit on the mouth.
        cap_bottom = base + length - (cap_h * 0.8 if int(p["kind"]) == 0 else cap_h * 0.15)
        parts.add("cap", cylinder_mesh(cap_r, cap_h, 16), translate=(0.0, 0.0, cap_bottom + cap_h / 2))


class Guitar(ShapeProgram):
    """Acoustic, classical, electric or bass guitar standing neck-up, face to the front: body outline
    (bouts, waist, horns), thickness, neck length, headstock shape, angle and tuner layout."""

    name = "guitar"
    parts = ("body", "neck", "head")
    param_names = ("kind", "body_length", "body_width", "upper_width", "lower_fraction", "waist", "depth", "horns",
                   "horn_length", "neck_length", "neck_width", "head_length", "head_width", "head_angle",
                   "inline_tuners")

    # Per kind (acoustic, classical, electric, bass), in metres.
    _RANGES = {
        "body_length": ((0.48, 0.52), (0.47, 0.5), (0.4, 0.46), (0.42, 0.48)),
        "body_width": ((0.33, 0.43), (0.35, 0.38), (0.3, 0.36), (0.32, 0.36)),
        "upper_width": ((0.68, 0.8), (0.72, 0.8), (0.5, 0.7), (0.5, 0.7)),
        "lower_fraction": ((0.56, 0.62), (0.56, 0.6), (0.58, 0.7), (0.6, 0.7)),
        "waist": ((0.12, 0.2), (0.14, 0.2), (0.2, 0.35), (0.2, 0.35)),
        "depth": ((0.09, 0.135), (0.09, 0.11), (0.038, 0.05), (0.04, 0.05)),
        "horn_length": ((0.0, 0.0), (0.0, 0.0), (0.02, 0.1), (0.04, 0.12)),
        "neck_length": ((0.3, 0.42), (0.3, 0.36), (0.36, 0.45), (0.58, 0.66)),
        "neck_width": ((0.043, 0.05), (0.05, 0.056), (0.042, 0.048), (0.04, 0.046)),
        "head_length": ((0.15, 0.19), (0.18, 0.2), (0.16, 0.2), (0.18, 0.23)),
        "head_width": ((0.07, 0.09), (0.075, 0.085), (0.06, 0.09), (0.06, 0.09)),
        "head_angle": ((0.2, 0.28), (0.2, 0.26), (0.0, 0.25), (0.0, 0.1)),
    }

    def draw_params(self, draw: Draw) -> Dict[str, float]:
        kind = draw.integer(0, 3)
        p = {name: draw.uniform(*ranges[kind]) for name, ranges in self._RANGES.items()}
        p["kind"] = float(kind)
        p["horns"] = float(draw.choice((1, 2, 2)) if kind >= 2 else 0)
        p["inline_tuners"] = float(kind >= 2 and draw.coin(0.5))
        return p

    def build(self, p: Mapping[str, float], parts: PartAssembler) -> None:
        length, width, depth = p["body_length"], p["body_width"], p["depth"]
        lower = p["lower_fraction"]
        upper = 1.0 + p["waist"] - lower
        centre = (0.0, length * (lower + 1 - upper) / 2)
        ellipses = [(0.0, length * lower / 2, width / 2, length * lower / 2, 0.0),
                     (0.0, length * (1 - upper / 2), width * p["upper_width"] / 2, length * upper / 2, 0.0)]
        for k in range(int(p["horns"])):
            # The bass-side horn reaches highest; each horn is a thin ellipse from the waist to its tip.
            side = 1 - 2 * k
            tip = (side * width * 0.3, length * 0.97 + p["horn_length"] * (1 - 0.5 * k))
            dx, dz = tip[0] - centre[0], tip[1] - centre[1]
            half = math.hypot(dx, dz) / 2
            ellipses.append((centre[0] + dx / 2, centre[1] + dz / 2, half * 1.05, width * 0.11, math.atan2(dz, dx)))
        outline = _ellipse_union_outline(centre, ellipses, 64)
        parts.add("body", _star_prism(outline, centre, depth))
        front = -depth / 2
        electric = int(p["kind"]) >= 2
        parts.add("body", box_mesh((width * 0.45, 0.008, 0.03)), translate=(0.0, front - 0.004, length * 0.2))
        if electric:
            for z in (0.3, 0.45):
                parts.add("body", box_mesh((width * 0.25, 0.008, 0.025)), translate=(0.0, front - 0.004, length * z))

        neck_w, neck_len, neck_t = p["neck_width"], p["neck_length"], 0.024
        base = length * (0.85 if electric else 0.97)
        top = length + neck_len
        neck_front = front - 0.008
        neck = [(sx * w / 2, y, z) for sx in (-1, 1) for y in (neck_front, neck_front + neck_t)
                for z, w in ((base, neck_w * 1.2), (top, neck_w))]
        parts.add("neck", _hexahedron(neck))

        # Headstock: a flared slab tilted back about the nut, with tuners on its sides or face.
        head_len, head_w, head_t = p["head_length"], p["head_width"], 0.016
        tilt = rotation_matrix("x", -p["head_angle"])
        inline = bool(p["inline_tuners"])
        shift = head_w * 0.25 if inline else 0.0
        head = [(x, y, z) for x0 in (-1, 1) for y in (-head_t / 2, head_t / 2)
                for z, x in ((0.0, x0 * neck_w / 2), (head_len, x0 * head_w / 2 + shift))]
        nut = torch.tensor([0.0, neck_front + head_t / 2, top - 0.005], dtype=torch.float64)
        parts.add("head", _hexahedron(head), rotate=tilt, translate=nut)
        tuners = 4 if int(p["kind"]) == 3 else 6
        peg = cylinder_mesh(0.006, 0.03, 8)
        if inline:
            for k in range(tuners):
                z = head_len * (0.2 + 0.75 * k / tuners)
                local = torch.tensor([-head_w / 2 + shift + 0.01, -head_t / 2 - 0.012, z], dtype=torch.float64)
                parts.add("head", peg, rotate=tilt @ _Z_TO_Y, translate=nut + tilt @ local)
        else:
            per_side = tuners // 2
            for side in (-1, 1):
                for k in range(per_side):
                    z = head_len * (0.3 + 0.6 * k / per_side)
                    x = side * (neck_w / 2 + (head_w - neck_w) / 2 * z / head_len + 0.01)
                    local = torch.tensor([x, 0.0, z], dtype=torch.float64)
                    parts.add("head", peg, rotate=tilt @ _Z_TO_X, translate=nut + tilt @ local)


class Rocket(ShapeProgram):
    """Model rocket, launch vehicle or retro rocket: body slenderness and bulge, upper stage step, nose
    length and shape, 3 or 4 fins (span, chord, sweep), nozzle size, 0/2/3/4 boosters."""

    name = "rocket"
    parts = ("body", "fin", "nose", "engine")
    param_names = ("kind", "radius", "bulge", "stage_split", "stage_radius", "nose_length", "nose_shape", "fins",
                   "fin_span", "fin_chord", "fin_taper", "fin_sweep", "fin_drop", "nozzle_radius", "nozzle_length",
                   "boosters", "booster_length", "booster_radius")

    # Per kind (model, launcher, retro); lengths are fractions of the body length.
    _RANGES = {
        "radius": ((0.06, 0.12), (0.035, 0.075), (0.08, 0.14)),
        "bulge": ((0.0, 0.0), (0.0, 0.0), (0.1, 0.35)),
        "stage_split": ((0.4, 0.7), (0.45, 0.75), (0.5, 0.7)),
        "stage_radius": ((1.0, 1.0), (0.6, 1.0), (1.0, 1.0)),
        "nose_length": ((2.0, 4.5), (1.5, 3.0), (2.0, 3.5)),
        "nose_shape": ((0.4, 1.0), (0.5, 1.0), (0.35, 0.7)),
        "fin_span": ((1.0, 2.5), (0.3, 1.0), (1.2, 2.5)),
        "fin_chord": ((0.12, 0.25), (0.06, 0.12), (0.2, 0.35)),
        "fin_taper": ((0.3, 1.0), (0.4, 0.9), (0.2, 0.6)),
        "fin_sweep": ((0.2, 1.0), (0.2, 0.8), (0.8, 1.5)),
        "fin_drop": ((0.0, 0.05), (0.0, 0.0), (0.08, 0.2)),
        "nozzle_radius": ((0.4, 0.7), (0.6, 0.9), (0.5, 0.8)),
        "nozzle_length": ((0.3, 0.6), (0.6, 1.2), (0.4, 0.9)),
        "booster_length": ((0.3, 0.5), (0.3, 0.8), (0.3, 0.5)),
        "booster_radius": ((0.3, 0.5), (0.35, 1.0), (0.3, 0.45)),
    }

    def draw_params(self, draw: Draw) -> Dict[str, float]:
        kind = draw.integer(0, 2)
        p = {name: draw.uniform(*ranges[kind]) for name, ranges in self._RANGES.items()}
        p["kind"] = float(kind)
        p["fins"] = float(draw.choice((3, 4)))
        p["boosters"] = float(draw.choice((0, 2, 2, 3, 4)) if kind == 1 else 0)
        if p["boosters"] == 2:
            # Two side boosters are usually first-stage cores as wide as the centre one (heavy-lift).
            p["booster_radius"] = draw.uniform(0.75, 1.0)
        return p

    def build(self, p: Mapping[str, float], parts: PartAssembler) -> None:
        r, bulge = p["radius"], p["bulge"]
        split, top_r = p["stage_split"], r * p["stage_radius"]
        profile = [(r * (1 + bulge * math.sin(math.pi * z)), z) for z in (0.0, 0.2, 0.4) if z < split - 0.02]
        profile.append((r * (1 + bulge * math.sin(math.pi * split)), split))
        if top_r < r:
            profile.append((top_r, split + (r - top_r) * 1.5))
        profile += [(top_r * (1 + bulge * math.sin(math.pi * z)), z) for z in (0.7, 0.85, 1.0) if z > split + 0.05]
        parts.add("body", revolve_mesh(profile, 20))
        self._add_nose(parts, profile[-1][0], p["nose_length"], p["nose_shape"], (0.0, 0.0, 1.0))
        self._add_nozzle(parts, profile[0][0] * p["nozzle_radius"], r * p["nozzle_length"], (0.0, 0.0, 0.0))

        fins = int(p["fins"])
        chord, span = p["fin_chord"], r * p["fin_span"]
        fin = _plate(span, chord, chord * p["fin_taper"], span * p["fin_sweep"], chord * 0.06, chord * 0.04)
        top = chord - p["fin_drop"]
        for k in range(fins):
            angle = 2 * math.pi * k / fins + (math.pi / 4 if fins == 4 else math.pi / 2)
            turn = rotation_matrix("z", angle)
            base_r = profile[0][0] * 0.95
            parts.add("fin", fin, rotate=turn @ _Z_TO_Y,
                      translate=(base_r * math.cos(angle), base_r * math.sin(angle), top))

        boosters = int(p["boosters"])
        b_len, b_r = p["booster_length"], r * p["booster_radius"]
        for k in range(boosters):
            angle = 2 * math.pi * k / boosters
            x, y = (r + b_r * 0.95) * math.cos(angle), (r + b_r * 0.95) * math.sin(angle)
            parts.add("body", cylinder_mesh(b_r, b_len, 14), translate=(x, y, b_len / 2))
            self._add_nose(parts, b_r, 2.5, 0.6, (x, y, b_len))
            self._add_nozzle(parts, b_r * 0.7, b_r * 0.8, (x, y, 0.0))

    @staticmethod
    def _add_nose(parts: PartAssembler, radius: float, length: float, shape: float, at: Sequence[float]) -> None:
        """An ogive (``shape < 1``) or cone (``shape = 1``) ``length`` radii long on top of ``at``."""
        profile = [(radius * (1 - t) ** shape, radius * length * t) for t in (0.0, 0.2, 0.4, 0.6, 0.8)]
        parts.add("nose", revolve_mesh(profile + [(0.0, radius * length)], 20), translate=at)

    @staticmethod
    def _add_nozzle(parts: PartAssembler, radius: float, length: float, at: Sequence[float]) -> None:
        """A bell flaring down from a throat just under ``at``."""
        profile = [(radius * (0.4 + 0.6 * t * t), -length * t) for t in (0.0, 0.4, 0.7, 1.0)]
        parts.add("engine", revolve_mesh([(radius * 0.5, 0.02 * length)] + profile, 16), translate=at)


PROGRAMS = (Airplane(), Car(), Mug(), Bottle(), Guitar(), Rocket())
