"""Furniture programs: chair, table, sofa, bench, bookshelf and lamp.

Sizes are in metres, in the z-up working frame with the front towards ``-y``.
"""
from __future__ import annotations

import math
from typing import Dict, List, Mapping, Sequence, Tuple

import torch

from ..primitives import box_mesh, cone_mesh, cylinder_mesh, icosphere, revolve_mesh, tube_mesh
from .base import Draw, PartAssembler, ShapeProgram, rotation_matrix

__all__ = ["Chair", "Table", "Sofa", "Bench", "Bookshelf", "Lamp", "PROGRAMS"]

Point = Sequence[float]


def _box(parts: PartAssembler, part: str, low: Point, high: Point) -> None:
    """An axis-aligned box between the corners ``low`` and ``high``."""
    parts.add(part, box_mesh([b - a for a, b in zip(low, high)]),
              translate=[(a + b) / 2 for a, b in zip(low, high)])


def _align_z(direction: Point) -> torch.Tensor:
    """The rotation that takes ``+z`` to the (non-zero) vector ``direction``."""
    x, y, z = direction
    across = math.hypot(x, y)
    if across <= 1e-12 * abs(z):
        return torch.eye(3, dtype=torch.float64) if z > 0 else rotation_matrix("x", math.pi)
    return rotation_matrix((-y, x, 0.0), math.atan2(across, z))


def _bar(parts: PartAssembler, part: str, start: Point, end: Point, thickness: float, round_: bool = True,
         end_scale: float = 1.0, segments: int = 12) -> None:
    """A round or square bar from ``start`` to ``end``, ``end_scale`` times as thick at ``end``."""
    axis = [b - a for a, b in zip(start, end)]
    length = math.sqrt(sum(a * a for a in axis))
    turn = _align_z(axis)
    if round_:
        mesh = cone_mesh(thickness / 2, thickness / 2 * end_scale, length, segments)
    else:
        # A four-sided frustum has its corners on the axes; an eighth turn squares it with them.
        half_diagonal = thickness / math.sqrt(2)
        mesh = cone_mesh(half_diagonal, half_diagonal * end_scale, length, 4)
        turn = turn @ rotation_matrix("z", math.pi / 4)
    parts.add(part, mesh, rotate=turn, translate=[(a + b) / 2 for a, b in zip(start, end)])


def _turned(parts: PartAssembler, part: str, mesh, pivot: Point, offset: Point, turn: torch.Tensor) -> None:
    """Place ``mesh`` (centred at the origin) at ``offset`` from ``pivot`` in the frame rotated by ``turn``."""
    centre = (turn @ turn.new_tensor(offset)).tolist()
    parts.add(part, mesh, rotate=turn, translate=[p + c for p, c in zip(pivot, centre)])


def _lean_back(tilt: float) -> torch.Tensor:
    """Rotation about ``x`` that tips ``+z`` backwards (towards ``+y``) by ``tilt`` radians."""
    return rotation_matrix("x", -tilt)


class Chair(ShapeProgram):
    """A seat with a back (upright or leaning, solid or slatted) and optional arms, on four legs (square or
    round, tapered, splayed) or on an office column with a star of 4-5 castored spokes."""

    name = "chair"
    parts = ("back", "seat", "leg", "arm")
    param_names = ("seat_width", "seat_depth", "seat_height", "seat_thickness", "back_height", "back_tilt",
                   "back_slats", "pedestal", "spokes", "leg_thickness", "round_legs", "leg_taper", "leg_splay",
                   "has_arms", "arm_height")

    def draw_params(self, draw: Draw) -> Dict[str, float]:
        params = {
            "seat_width": draw.uniform(0.38, 0.85),
            "seat_depth": draw.uniform(0.36, 0.8),
            "seat_height": draw.uniform(0.6, 0.8) if draw.coin(0.2) else draw.uniform(0.3, 0.52),
            "seat_thickness": draw.uniform(0.02, 0.12),
            "back_height": draw.uniform(0.15, 0.9),
            "back_tilt": draw.uniform(0.0, 0.45),
            "back_slats": float(draw.choice((0, 0, 3, 4, 5))),
            "pedestal": float(draw.coin(0.3)),
            "spokes": float(draw.choice((4, 5, 5))),
            "leg_thickness": draw.uniform(0.025, 0.06),
            "round_legs": float(draw.coin(0.5)),
            "leg_taper": draw.uniform(0.5, 1.0),
            "leg_splay": 0.0 if draw.coin(0.5) else draw.uniform(0.03, 0.12),
            "has_arms": float(draw.coin(0.35)),
            "arm_height": draw.uniform(0.15, 0.3),
        }
        if params["pedestal"]:
            params["leg_splay"] = 0.0
        return params

    def build(self, p: Mapping[str, float], parts: PartAssembler) -> None:
        w, d, h, t = p["seat_width"], p["seat_depth"], p["seat_height"], p["seat_thickness"]
        _box(parts, "seat", (-w / 2, -d / 2, h), (w / 2, d / 2, h + t))
        leg, round_legs = p["leg_thickness"], p["round_legs"] > 0.5
        if p["pedestal"]:
            self._office_base(parts, h, 0.5 * max(w, d) + 0.05, int(p["spokes"]), 2 * leg, round_legs)
        else:
            reach = h * math.tan(p["leg_splay"])
            for sx in (-1, 1):
                for sy in (-1, 1):
                    x, y = sx * (w / 2 - leg / 2), sy * (d / 2 - leg / 2)
                    _bar(parts, "leg", (x, y, h), (x + sx * reach, y + sy * reach, 0.0), leg, round_legs,
                         p["leg_taper"])
        self._back(parts, p, w, d, h + t, t)
        if p["has_arms"]:
            ah, at = p["arm_height"], min(max(t, 0.035), 0.06)
            for sx in (-1, 1):
                x = sx * (w / 2 - at / 2)
                _box(parts, "arm", (x - at / 2, -0.45 * d, h + t + ah), (x + at / 2, 0.4 * d, h + t + ah + at))
                _box(parts, "arm", (x - at / 2, -0.4 * d, h + t), (x + at / 2, -0.4 * d + at, h + t + ah))

    @staticmethod
    def _office_base(parts: PartAssembler, h: float, reach: float, spokes: int, column: float,
                     round_column: bool) -> None:
        hub, caster = 0.1, 0.05
        _bar(parts, "leg", (0.0, 0.0, h), (0.0, 0.0, hub - 0.02), column, round_column)
        for k in range(spokes):
            angle = -math.pi / 2 + 2 * math.pi * k / spokes
            x, y = reach * math.cos(angle), reach * math.sin(angle)
            _bar(parts, "leg", (0.0, 0.0, hub), (x, y, caster), 0.035, True, 0.7, 8)
            parts.add("leg", cylinder_mesh(0.025, caster, 10), translate=(x, y, caster / 2))

    @staticmethod
    def _back(parts: PartAssembler, p: Mapping[str, float], w: float, d: float, z: float, t: float) -> None:
        bh, slats = p["back_height"], int(p["back_slats"])
        lean = _lean_back(p["back_tilt"])
        pivot = (0.0, d / 2 - t / 2, z)
        if slats == 0:
            _turned(parts, "back", box_mesh((w, t, bh)), pivot, (0.0, 0.0, bh / 2), lean)
            return
        post = min(t, 0.05)
        for x in (-w / 2 + post / 2, w / 2 - post / 2):
            _turned(parts, "back", box_mesh((post, post, bh)), pivot, (x, 0.0, bh / 2), lean)
        _turned(parts, "back", box_mesh((w, post, 2 * post)), pivot, (0.0, 0.0, bh - post), lean)
        for k in range(slats):
            x = -w / 2 + post + (k + 0.5) * (w - 2 * post) / slats
            _turned(parts, "back", box_mesh((post * 0.6, post * 0.6, bh)), pivot, (x, 0.0, bh / 2), lean)


class Table(ShapeProgram):
    """A rectangular, round or oval top from coffee to bar height on a pedestal, two slab ends, or three or
    four legs (square or round, tapered, splayed); optional apron, low stretchers and a lower shelf."""

    name = "table"
    parts = ("top", "leg", "stretcher", "shelf")
    param_names = ("width", "depth", "height", "top_thickness", "round_top", "legs", "leg_thickness",
                   "round_legs", "leg_taper", "leg_inset", "leg_splay", "has_apron", "apron_height",
                   "has_stretcher", "has_shelf", "shelf_height")

    def draw_params(self, draw: Draw) -> Dict[str, float]:
        round_top = draw.coin(0.35)
        legs = draw.choice((1, 3, 4) if round_top else (1, 2, 4, 4))
        # Small tops (side, bedside and bar tables) are the most common.
        long = 0.45 + ((1.1 if legs == 1 else (1.5 if round_top else 2.2)) - 0.45) * draw.uniform(0.0, 1.0) ** 1.5
        if round_top:
            ratio = 1.0 if draw.coin(0.6) else draw.uniform(0.55, 0.9)
        else:
            ratio = draw.uniform(0.35, 1.0)
        short = min(max(long * ratio, 0.35), 1.3)
        # Most tables stand long side to the front, some are turned end-on (slab ends stay at the ends).
        width, depth = (short, long) if legs != 2 and draw.coin(0.25) else (long, short)
        params = {
            "width": width,
            "depth": depth,
            "height": draw.uniform(0.25, 1.1),
            "top_thickness": draw.uniform(0.02, 0.07),
            "round_top": float(round_top),
            "legs": float(legs),
            "leg_thickness": draw.uniform(0.03, 0.09),
            "round_legs": float(draw.coin(0.5)),
            "leg_taper": draw.uniform(0.5, 1.0),
            "leg_inset": draw.uniform(0.0, 0.12),
            "leg_splay": 0.0 if draw.coin(0.6) else draw.uniform(0.03, 0.15),
            "has_apron": float(draw.coin(0.5)),
            "apron_height": draw.uniform(0.04, 0.14),
            "has_stretcher": float(draw.coin(0.35)),
            "has_shelf": float(draw.coin(0.3)),
            "shelf_height": draw.uniform(0.12, 0.35),
        }
        # Flags are cleared where the layout has no such part, so that they always mean what is built.
        if legs == 1:
            params.update(leg_splay=0.0, has_apron=0.0, has_stretcher=0.0, has_shelf=0.0)
        elif legs == 2:
            params.update(leg_splay=0.0)
        if round_top:
            params.update(has_apron=0.0)
        return params

    def build(self, p: Mapping[str, float], parts: PartAssembler) -> None:
        w, d, h, tt = p["width"], p["depth"], p["height"], p["top_thickness"]
        under = h - tt
        round_top = p["round_top"] > 0.5
        if round_top:
            parts.add("top", cylinder_mesh(0.5, tt, 32), scale=(w, d, 1.0), translate=(0.0, 0.0, h - tt / 2))
        else:
            _box(parts, "top", (-w / 2, -d / 2, under), (w / 2, d / 2, h))
        legs, lt, round_legs = int(p["legs"]), p["leg_thickness"], p["round_legs"] > 0.5
        inset = min(p["leg_inset"], 0.15 * min(w, d)) + lt / 2
        if legs == 1:
            self._pedestal(parts, p, w, d, under, lt, round_legs)
            return
        x_leg, y_leg = w / 2 - inset, d / 2 - inset
        if legs == 2:
            self._slab_ends(parts, p, x_leg, y_leg, under, lt)
            return
        if round_top:
            # Legs a little further in than on a rectangle so that they stay under the curved edge.
            x_leg, y_leg = x_leg - lt / 2, y_leg - lt / 2
            start = math.pi / 2 if legs == 3 else math.pi / 4
            angles = [start + 2 * math.pi * k / legs for k in range(legs)]
            tops = [(x_leg * math.cos(a), y_leg * math.sin(a), under) for a in angles]
        else:
            tops = [(sx * x_leg, sy * y_leg, under) for sx, sy in ((1, 1), (-1, 1), (-1, -1), (1, -1))]
        reach = under * math.tan(p["leg_splay"])
        feet = []
        for x, y, _ in tops:
            norm = math.hypot(x, y)
            feet.append((x + reach * x / norm, y + reach * y / norm, 0.0))
        for top, foot in zip(tops, feet):
            _bar(parts, "leg", top, foot, lt, round_legs, p["leg_taper"])

        def at_height(z: float) -> List[Tuple[float, float, float]]:
            return [(f[0] + (t[0] - f[0]) * z / under, f[1] + (t[1] - f[1]) * z / under, z)
                    for t, f in zip(tops, feet)]

        if p["has_apron"] and not round_top:
            ah, at = min(p["apron_height"], 0.3 * under), 0.5 * lt
            for sy in (-1, 1):
                _box(parts, "stretcher", (-x_leg, sy * y_leg - at / 2, under - ah), (x_leg, sy * y_leg + at / 2, under))
            for sx in (-1, 1):
                _box(parts, "stretcher", (sx * x_leg - at / 2, -y_leg, under - ah), (sx * x_leg + at / 2, y_leg, under))
        if p["has_stretcher"]:
            ring = at_height(0.18 * under)
            for a, b in zip(ring, ring[1:] + ring[:1]):
                _bar(parts, "stretcher", a, b, 0.6 * lt, round_legs)
        if p["has_shelf"]:
            ring = at_height(p["shelf_height"] * under)
            z = ring[0][2]
            if round_top:
                rx = max(math.hypot(q[0], q[1] * w / d) for q in ring) + lt / 2
                ry = rx * d / w
                parts.add("shelf", cylinder_mesh(1.0, 0.02, 24), scale=(rx, ry, 1.0), translate=(0.0, 0.0, z))
            else:
                x, y = abs(ring[0][0]), abs(ring[0][1])
                _box(parts, "shelf", (-x, -y, z - 0.01), (x, y, z + 0.01))

    @staticmethod
    def _pedestal(parts: PartAssembler, p: Mapping[str, float], w: float, d: float, under: float, lt: float,
                  round_legs: bool) -> None:
        foot_height = 0.04
        # Pedestals flare towards the floor where legs would taper.
        _bar(parts, "leg", (0.0, 0.0, under), (0.0, 0.0, foot_height), 1.8 * lt, round_legs, 1.0 / p["leg_taper"])
        if round_legs:
            radius = 0.36 * min(w, d)
            parts.add("leg", cylinder_mesh(radius, foot_height, 24), translate=(0.0, 0.0, foot_height / 2))
        else:
            lx, ly, half = 0.4 * w, 0.4 * d, 0.9 * lt
            _box(parts, "leg", (-lx, -half, 0.0), (lx, half, foot_height))
            _box(parts, "leg", (-half, -ly, 0.0), (half, ly, foot_height))

    @staticmethod
    def _slab_ends(parts: PartAssembler, p: Mapping[str, float], x_leg: float, y_leg: float, under: float,
                   lt: float) -> None:
        for sx in (-1, 1):
            _box(parts, "leg", (sx * x_leg - lt / 2, -y_leg, 0.0), (sx * x_leg + lt / 2, y_leg, under))
        inner = x_leg - lt / 2
        if p["has_apron"]:
            ah = min(p["apron_height"], 0.3 * under)
            _box(parts, "stretcher", (-inner, y_leg - 0.02, under - ah), (inner, y_leg, under))
        if p["has_stretcher"]:
            z = 0.25 * under
            _box(parts, "stretcher", (-inner, -0.6 * lt, z - 0.75 * lt), (inner, 0.6 * lt, z + 0.75 * lt))
        if p["has_shelf"]:
            z = p["shelf_height"] * under
            _box(parts, "shelf", (-inner, -0.9 * y_leg, z - 0.01), (inner, 0.9 * y_leg, z + 0.01))


class Sofa(ShapeProgram):
    """A long upholstered seat: 1-4 seat cushions, optional back cushions, a leaning back, 0-2 square or rolled
    arms, low legs or a base down to the floor, and sometimes a chaise extending forward."""

    name = "sofa"
    parts = ("base", "seat", "back", "arm", "leg")
    param_names = ("width", "depth", "seat_height", "cushion_thickness", "cushions", "back_height",
                   "back_thickness", "back_tilt", "back_cushions", "arms", "arm_width", "arm_height",
                   "rolled_arms", "has_legs", "leg_height", "round_legs", "chaise", "chaise_length")

    def draw_params(self, draw: Draw) -> Dict[str, float]:
        width = draw.uniform(0.9, 3.0)
        seat_height, cushion = draw.uniform(0.3, 0.5), draw.uniform(0.07, 0.18)
        return {
            "width": width,
            "depth": draw.uniform(0.7, 1.1),
            "seat_height": seat_height,
            "cushion_thickness": cushion,
            "cushions": float(draw.integer(1, max(1, min(4, int(width / 0.5))))),
            "back_height": draw.uniform(0.15, 0.8),
            "back_thickness": draw.uniform(0.12, 0.3),
            "back_tilt": draw.uniform(0.0, 0.25),
            "back_cushions": float(draw.coin(0.5)),
            "arms": float(draw.choice((0, 1, 2, 2, 2))),
            "arm_width": draw.uniform(0.08, min(0.3, 0.15 * width)),
            "arm_height": draw.uniform(0.05, 0.3),
            "rolled_arms": float(draw.coin(0.3)),
            "has_legs": float(draw.coin(0.6)),
            "leg_height": draw.uniform(0.04, min(0.16, seat_height - cushion - 0.08)),
            "round_legs": float(draw.coin(0.5)),
            "chaise": float(width > 1.6 and draw.coin(0.3)),
            "chaise_length": draw.uniform(0.45, 0.85),
        }

    def build(self, p: Mapping[str, float], parts: PartAssembler) -> None:
        w, d = p["width"], p["depth"]
        lh = p["leg_height"] if p["has_legs"] else 0.0
        seat_top, ct = p["seat_height"], p["cushion_thickness"]
        base_top = seat_top - ct
        arms, aw = int(p["arms"]), p["arm_width"]
        left = -w / 2 + (aw if arms >= 1 else 0.0)
        right = w / 2 - (aw if arms == 2 else 0.0)
        bt = p["back_thickness"]
        _box(parts, "base", (left, -d / 2, lh), (right, d / 2, base_top))

        lean = _lean_back(p["back_tilt"])
        pivot = (0.0, d / 2 - bt / 2, base_top)
        bh = ct + p["back_height"]
        _turned(parts, "back", box_mesh((right - left, bt, bh)), pivot, ((left + right) / 2, 0.0, bh / 2), lean)

        n, gap = int(p["cushions"]), 0.012
        span = (right - left - (n - 1) * gap) / n
        bct = 0.13 if p["back_cushions"] else 0.0
        for k in range(n):
            x0 = left + k * (span + gap)
            _box(parts, "seat", (x0, -d / 2, base_top), (x0 + span, d / 2 - bt - bct, seat_top))
            if bct:
                height = 0.85 * p["back_height"]
                _turned(parts, "back", box_mesh((span, bct, height)), pivot,
                        (x0 + span / 2, -(bt + bct) / 2, ct + height / 2), lean)

        arm_top = seat_top + p["arm_height"]
        for lo, hi in ((-w / 2, left), (right, w / 2))[:arms]:
            if p["rolled_arms"]:
                roll = 0.6 * aw
                _box(parts, "arm", (lo, -d / 2, lh), (hi, d / 2, arm_top - roll / 2))
                parts.add("arm", cylinder_mesh(roll, d, 16), rotate=rotation_matrix("x", math.pi / 2),
                          translate=((lo + hi) / 2, 0.0, arm_top - roll / 2))
            else:
                _box(parts, "arm", (lo, -d / 2, lh), (hi, d / 2, arm_top))

        front = -d / 2
        if p["chaise"]:
            front = -d / 2 - p["chaise_length"]
            _box(parts, "base", (right - span, front, lh), (right, -d / 2, base_top))
            _box(parts, "seat", (right - span, front, base_top), (right, -d / 2 - gap, seat_top))
        if lh > 0:
            inset = 0.06
            xs = [-w / 2 + inset, w / 2 - inset] + ([0.0] if w > 2.0 else [])
            spots = [(x, y) for x in xs for y in (-d / 2 + inset, d / 2 - inset)]
            if p["chaise"]:
                spots += [(right - span + inset, front + inset), (right - inset, front + inset)]
            for x, y in spots:
                _bar(parts, "leg", (x, y, lh), (x, y, 0.0), 0.045, p["round_legs"] > 0.5, 0.7)


class Bench(ShapeProgram):
    """A long seat (solid or slatted) on four or six legs, two slab ends or park-bench side frames; optional
    leaning back (a panel or 2-4 rails) and arms."""

    name = "bench"
    parts = ("seat", "leg", "back", "arm")
    param_names = ("length", "depth", "seat_height", "seat_thickness", "seat_slats", "leg_style",
                   "leg_thickness", "round_legs", "leg_splay", "has_back", "back_height", "back_tilt",
                   "back_rails", "has_arms", "arm_height")

    def draw_params(self, draw: Draw) -> Dict[str, float]:
        length = draw.uniform(0.6, 2.4)
        has_back = draw.coin(0.5)
        return {
            "length": length,
            "depth": draw.uniform(0.25, min(0.7, 0.8 * length)),
            "seat_height": draw.uniform(0.35, 0.5),
            "seat_thickness": draw.uniform(0.025, 0.08),
            "seat_slats": float(draw.choice((0, 0, 3, 4, 5, 6))),
            "leg_style": float(draw.choice((0, 1, 2))),
            "leg_thickness": draw.uniform(0.03, 0.08),
            "round_legs": float(draw.coin(0.5)),
            "leg_splay": 0.0 if draw.coin(0.5) else draw.uniform(0.05, 0.2),
            "has_back": float(has_back),
            "back_height": draw.uniform(0.25, 0.5),
            "back_tilt": draw.uniform(0.05, 0.3),
            "back_rails": float(draw.choice((0, 2, 3, 4))),
            "has_arms": float(has_back and draw.coin(0.45)),
            "arm_height": draw.uniform(0.15, 0.28),
        }

    def build(self, p: Mapping[str, float], parts: PartAssembler) -> None:
        length, d, h, t = p["length"], p["depth"], p["seat_height"], p["seat_thickness"]
        under = h - t
        slats = int(p["seat_slats"])
        if slats:
            gap = 0.012
            board = (d - (slats - 1) * gap) / slats
            for k in range(slats):
                y0 = -d / 2 + k * (board + gap)
                _box(parts, "seat", (-length / 2, y0, under), (length / 2, y0 + board, h))
        else:
            _box(parts, "seat", (-length / 2, -d / 2, under), (length / 2, d / 2, h))

        style, lt, round_legs = int(p["leg_style"]), p["leg_thickness"], p["round_legs"] > 0.5
        end = length / 2 - min(0.12, 0.08 * length) - lt / 2
        xs = [-end, end] + ([0.0] if length > 1.6 and style != 1 else [])
        reach = under * math.tan(p["leg_splay"])
        y_leg = d / 2 - lt / 2 - 0.02
        for x in xs:
            if style == 0:
                for sy in (-1, 1):
                    out = math.copysign(0.5 * reach, x) if x else 0.0
                    _bar(parts, "leg", (x, sy * y_leg, under), (x + out, sy * (y_leg + reach), 0.0), lt, round_legs)
                # A cross rail under the seat carries the middle boards.
                _box(parts, "leg", (x - lt / 2, -y_leg, under - 0.6 * lt), (x + lt / 2, y_leg, under))
            elif style == 1:
                _box(parts, "leg", (x - lt / 2, -y_leg - lt / 2, 0.0), (x + lt / 2, y_leg + lt / 2, under))
            else:
                # Cast side frame: two splayed legs joined by a rail under the seat and one near the floor.
                front, back = (x, -y_leg, under), (x, y_leg, under)
                front_foot, back_foot = (x, -y_leg - reach, 0.0), (x, y_leg + reach, 0.0)
                _bar(parts, "leg", front, front_foot, lt, round_legs)
                _bar(parts, "leg", back, back_foot, lt, round_legs)
                _bar(parts, "leg", (x, -y_leg - lt / 2, under - lt / 2), (x, y_leg + lt / 2, under - lt / 2),
                     lt, round_legs)
                low = 0.15 * under
                _bar(parts, "leg", (x, -y_leg - reach * 0.85, low), (x, y_leg + reach * 0.85, low),
                     0.7 * lt, round_legs)

        if p["has_back"]:
            self._back(parts, p, xs, length, d, h, lt, round_legs)
        if p["has_arms"]:
            ah, at = p["arm_height"], max(0.8 * lt, 0.035)
            # The rest reaches back to the leaning back post.
            rear = d / 2 - 0.4 * lt + (ah + at / 2) * math.tan(p["back_tilt"])
            for x in (-end, end):
                _box(parts, "arm", (x - at / 2, -0.5 * d, h + ah), (x + at / 2, rear, h + ah + at))
                _box(parts, "arm", (x - at / 2, -0.45 * d, h), (x + at / 2, -0.45 * d + at, h + ah))

    @staticmethod
    def _back(parts: PartAssembler, p: Mapping[str, float], xs: Sequence[float], length: float, d: float,
              h: float, lt: float, round_legs: bool) -> None:
        bh, rails, tilt = p["back_height"], int(p["back_rails"]), p["back_tilt"]
        lean = _lean_back(tilt)
        post = 0.8 * lt
        pivot = (0.0, d / 2 - post / 2, h)
        top = (lean @ lean.new_tensor([0.0, 0.0, bh])).tolist()
        for x in xs:
            _bar(parts, "back", (x, pivot[1], h - p["seat_thickness"]),
                 (x, pivot[1] + top[1], h + top[2]), post, round_legs)
        board = 0.025
        forward = -(post + board) / 2
        if rails == 0:
            height = 0.7 * bh
            _turned(parts, "back", box_mesh((length, board, height)), pivot, (0.0, forward, bh - height / 2), lean)
            return
        gap = 0.03
        height = (0.75 * bh - (rails - 1) * gap) / rails
        for k in range(rails):
            z = bh - k * (height + gap) - height / 2
            _turned(parts, "back", box_mesh((length, board, height)), pivot, (0.0, forward, z), lean)


class Bookshelf(ShapeProgram):
    """Shelving from low and wide to tall and narrow: panel sides or open corner posts, 0-8 inner shelves, 0-3
    vertical dividers, open or closed back, standing on the floor, a plinth or feet."""

    name = "bookshelf"
    parts = ("frame", "shelf", "back", "base")
    param_names = ("width", "height", "depth", "board", "shelves", "dividers", "open_frame", "has_back",
                   "base_style", "base_height")

    def draw_params(self, draw: Draw) -> Dict[str, float]:
        width = draw.uniform(0.3, 1.8)
        height = draw.uniform(0.35, 2.2)
        base_style = draw.choice((0, 1, 2))
        base_height = draw.uniform(0.04, 0.12)
        inner = height - (base_height if base_style else 0.0)
        return {
            "width": width,
            "height": height,
            "depth": draw.uniform(0.2, 0.55),
            "board": draw.uniform(0.015, 0.04),
            "shelves": float(draw.integer(max(0, round(inner / 0.42) - 1), max(1, round(inner / 0.24) - 1))),
            "dividers": float(draw.integer(0, min(3, int(width / 0.45)))),
            "open_frame": float(draw.coin(0.25)),
            "has_back": float(draw.coin(0.6)),
            "base_style": float(base_style),
            "base_height": base_height,
        }

    def build(self, p: Mapping[str, float], parts: PartAssembler) -> None:
        w, h, d, b = p["width"], p["height"], p["depth"], p["board"]
        back = 0.01 if p["has_back"] else 0.0
        if p["open_frame"]:
            post = max(1.5 * b, 0.03)
            for sx in (-1, 1):
                for sy in (-1, 1):
                    x, y = sx * (w / 2 - post / 2), sy * (d / 2 - post / 2)
                    _box(parts, "frame", (x - post / 2, y - post / 2, 0.0), (x + post / 2, y + post / 2, h))
            # The lowest shelf is lifted off the floor: the posts are the legs.
            bottom, inner_x = p["base_height"], w / 2 - post
            boards = [bottom, h - b]
        else:
            bottom = p["base_height"] if p["base_style"] else 0.0
            inner_x = w / 2 - b
            for x in (-w / 2, w / 2 - b):
                _box(parts, "frame", (x, -d / 2, bottom), (x + b, d / 2, h))
            _box(parts, "frame", (-inner_x, -d / 2, h - b), (inner_x, d / 2, h))
            _box(parts, "frame", (-inner_x, -d / 2, bottom), (inner_x, d / 2, bottom + b))
            boards = []
            if p["base_style"] == 1:
                _box(parts, "base", (-inner_x, -d / 2 + 0.03, 0.0), (inner_x, d / 2 - back, bottom))
            elif p["base_style"] == 2:
                for sx in (-1, 1):
                    for sy in (-1, 1):
                        x, y = sx * (w / 2 - 0.04), sy * (d / 2 - 0.04)
                        parts.add("base", cylinder_mesh(0.022, bottom, 10), translate=(x, y, bottom / 2))
        n = int(p["shelves"])
        low, high = bottom + b, h - b
        boards += [low + (high - low) * (k + 1) / (n + 1) - b / 2 for k in range(n)]
        for z in boards:
            _box(parts, "shelf", (-inner_x, -d / 2, z), (inner_x, d / 2 - back, z + b))
        m = int(p["dividers"])
        for k in range(m):
            x = -inner_x + 2 * inner_x * (k + 1) / (m + 1)
            _box(parts, "frame", (x - b / 2, -d / 2, low), (x + b / 2, d / 2 - back, high))
        if back:
            _box(parts, "back", (-inner_x, d / 2 - back, bottom), (inner_x, d / 2, h))


class Lamp(ShapeProgram):
    """Floor and table lamps on a straight stem, arc floor lamps and desk lamps with a bent arm, facing any way;
    disc, square, vase or tripod base; cone, drum or dome shade."""

    name = "lamp"
    parts = ("base", "stem", "arm", "shade")
    param_names = ("style", "height", "reach", "yaw", "bend", "droop", "base_style", "base_size",
                   "base_thickness", "stem_radius", "shade_style", "shade_radius", "shade_height", "shade_taper",
                   "shade_tilt")

    def draw_params(self, draw: Draw) -> Dict[str, float]:
        style = draw.choice((0, 0, 1, 2))
        if style == 0 and draw.coin(0.5):
            height = draw.uniform(0.35, 0.8)
            shade_radius = height * draw.uniform(0.22, 0.45)
        else:
            height = draw.uniform(*((1.2, 1.9), (1.5, 2.1), (0.35, 0.75))[style])
            shade_radius = draw.uniform(*((0.12, 0.28), (0.12, 0.3), (0.05, 0.12))[style])
        return {
            "style": float(style),
            "height": height,
            "reach": draw.uniform(*((0.0, 0.0), (0.5, 1.3), (0.2, 0.6))[style]),
            "yaw": draw.uniform(-math.pi, math.pi),
            "bend": draw.uniform(0.0, 1.0),
            "droop": draw.uniform(-0.2, 0.6),
            "base_style": float(draw.choice((0, 1, 2, 3) if style == 0 else (0, 1))),
            "base_size": draw.uniform(*((0.07, 0.2), (0.15, 0.3), (0.07, 0.13))[style]),
            "base_thickness": draw.uniform(0.015, 0.06),
            "stem_radius": draw.uniform(0.006, 0.02),
            "shade_style": float(draw.choice((0, 1, 2))),
            "shade_radius": shade_radius,
            "shade_height": shade_radius * draw.uniform(0.6, 1.6),
            "shade_taper": draw.uniform(0.35, 1.0),
            "shade_tilt": draw.uniform(0.0, 0.8) if style == 2 else 0.0,
        }

    def build(self, p: Mapping[str, float], parts: PartAssembler) -> None:
        style, height, stem = int(p["style"]), p["height"], p["stem_radius"]
        top = self._base(parts, p)
        ux, uy = math.cos(p["yaw"]), math.sin(p["yaw"])
        sh = p["shade_height"]
        if style == 0:
            tip, down = (0.0, 0.0, height), (0.0, 0.0, -1.0)
            _bar(parts, "stem", (0.0, 0.0, top), (0.0, 0.0, height - 0.3 * sh), 2 * stem, True, 1.0, 10)
        elif style == 1:
            # An elliptic arc leaves the upright stem vertically and sweeps over to hang the shade at ``reach``.
            sweep = math.pi / 2 + 0.35 * math.pi * p["bend"]
            rise = min(0.6, 0.3 * height)
            a, z1 = p["reach"] / (1 - math.cos(sweep)), height - rise
            _bar(parts, "stem", (0.0, 0.0, top), (0.0, 0.0, z1), 2 * stem, True, 1.0, 10)
            arc = [(a * (1 - math.cos(q)), z1 + rise * math.sin(q))
                   for q in (sweep * k / 12 for k in range(13))]
            parts.add("arm", tube_mesh([(s * ux, s * uy, z) for s, z in arc], stem, 10))
            tip, down = (arc[-1][0] * ux, arc[-1][0] * uy, arc[-1][1]), (0.0, 0.0, -1.0)
        else:
            riser = top + 0.05
            _bar(parts, "stem", (0.0, 0.0, top), (0.0, 0.0, riser), 3 * stem, True, 1.0, 10)
            lean = -0.3 + p["bend"]
            elbow_s = (height - riser) * math.tan(lean)
            tip_s, tip_z = elbow_s + p["reach"], height - p["droop"] * (height - sh - 0.05)
            path = [(0.0, 0.0, riser), (elbow_s * ux, elbow_s * uy, height), (tip_s * ux, tip_s * uy, tip_z)]
            parts.add("arm", tube_mesh(path, stem, 10))
            parts.add("arm", icosphere(1, 1.8 * stem), translate=path[1])
            tilt = p["shade_tilt"]
            tip, down = path[2], (math.sin(tilt) * ux, math.sin(tilt) * uy, -math.cos(tilt))
        # The shade's narrow end meets ``tip``; it opens along ``down``.
        mesh = self._shade(p)
        _turned(parts, "shade", mesh, tip, (0.0, 0.0, -sh / 2), _align_z([-c for c in down]))

    @staticmethod
    def _base(parts: PartAssembler, p: Mapping[str, float]) -> float:
        """Add the base; return the height where the stem starts."""
        size, bt, kind = p["base_size"], p["base_thickness"], int(p["base_style"])
        if kind == 0:
            parts.add("base", cylinder_mesh(size, bt, 24), translate=(0.0, 0.0, bt / 2))
            return bt
        if kind == 1:
            _box(parts, "base", (-size, -size, 0.0), (size, size, bt))
            return bt
        if kind == 2:
            body = min(0.4, 0.3 * p["height"])
            profile = [(0.0, 0.0), (0.6 * size, 0.0), (size, 0.25 * body), (0.9 * size, 0.55 * body),
                       (0.45 * size, 0.85 * body), (0.3 * size, body)]
            parts.add("base", revolve_mesh(profile, 16))
            return body
        hub = 0.3 * p["height"]
        for k in range(3):
            angle = math.pi / 2 + 2 * math.pi * k / 3
            foot = (1.6 * size * math.cos(angle), 1.6 * size * math.sin(angle), 0.0)
            _bar(parts, "base", (0.0, 0.0, hub), foot, 0.02, True, 0.8, 8)
        return hub - 0.02

    @staticmethod
    def _shade(p: Mapping[str, float]):
        """The shade along ``z``, wide (open) end at ``-z``."""
        r, sh, kind = p["shade_radius"], p["shade_height"], int(p["shade_style"])
        if kind == 0:
            return cone_mesh(r, r * p["shade_taper"], sh, 24)
        if kind == 1:
            return cylinder_mesh(r, sh, 24)
        angles = [math.pi / 2 * k / 5 for k in range(1, 6)]
        return revolve_mesh([(0.0, sh / 2)] + [(r * math.sin(q), sh * (math.cos(q) - 0.5)) for q in angles], 24)


PROGRAMS = (Chair(), Table(), Sofa(), Bench(), Bookshelf(), Lamp())
