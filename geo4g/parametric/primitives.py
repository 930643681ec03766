"""Closed triangle meshes of primitive solids, with outward-facing (counter-clockwise) faces.

Every function returns ``(verts, faces)``: ``verts: (V, 3)`` float, ``faces: (F, 3)``
long, a watertight 2-manifold centred at the origin. They are the building
blocks of the procedural shape programs.
"""
from __future__ import annotations

import math
from typing import Sequence, Tuple

import torch

__all__ = ["box_mesh", "icosphere", "cylinder_mesh", "torus_mesh", "cone_mesh", "revolve_mesh", "tube_mesh"]

Mesh = Tuple[torch.Tensor, torch.Tensor]


def _positive(value: float, name: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def _count(value: int, name: str, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def box_mesh(size: Sequence[float] = (1.0, 1.0, 1.0), dtype: torch.dtype = torch.float32) -> Mesh:
    """An axis-aligned box with side lengths ``size = (sx, sy, sz)``: 8 vertices, 12 faces."""
    if len(size) != 3:
        raise ValueError(f"size must have 3 entries (sx, sy, sz), got {list(size)}")
    half = torch.tensor([_positive(s, f"size[{i}]") for i, s in enumerate(size)], dtype=dtype) / 2
    corners = torch.tensor([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=dtype)
    faces = torch.tensor([
        [0, 1, 3], [0, 3, 2],  # -x
        [4, 6, 7], [4, 7, 5],  # +x
        [0, 4, 5], [0, 5, 1],  # -y
        [2, 3, 7], [2, 7, 6],  # +y
        [0, 2, 6], [0, 6, 4],  # -z
        [1, 5, 7], [1, 7, 3],  # +z
    ])
    return corners * half, faces


def icosphere(subdivisions: int = 2, radius: float = 1.0, dtype: torch.dtype = torch.float32) -> Mesh:
    """A sphere from a subdivided icosahedron: ``10 * 4**s + 2`` vertices, ``20 * 4**s`` faces.

    Unlike a UV sphere its triangles are nearly equal, which suits sampling and convolution.
    """
    subdivisions, radius = _count(subdivisions, "subdivisions", 0), _positive(radius, "radius")
    t = (1 + 5 ** 0.5) / 2
    verts = [[-1, t, 0], [1, t, 0], [-1, -t, 0], [1, -t, 0], [0, -1, t], [0, 1, t],
             [0, -1, -t], [0, 1, -t], [t, 0, -1], [t, 0, 1], [-t, 0, -1], [-t, 0, 1]]
    faces = [[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4],
             [11, 10, 2], [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8],
             [3, 8, 9], [4, 9, 5], [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]]
    v = torch.tensor(verts, dtype=torch.float64)
    f = torch.tensor(faces)
    for _ in range(subdivisions):
        # One midpoint per unique edge, then each triangle splits into four.
        edges = torch.cat([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]).sort(1).values
        unique, inverse = torch.unique(edges, dim=0, return_inverse=True)
        mid = inverse.view(3, -1).t() + v.shape[0]
        v = torch.cat([v, (v[unique[:, 0]] + v[unique[:, 1]]) / 2])
        a, b, c = f.unbind(1)
        ab, bc, ca = mid.unbind(1)
        f = torch.cat([torch.stack(t, 1) for t in ((a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca))])
    v = v / v.norm(dim=1, keepdim=True) * radius
    return v.to(dtype), f


def cylinder_mesh(radius: float = 0.5, height: float = 1.0, segments: int = 32,
                  dtype: torch.dtype = torch.float32) -> Mesh:
    """A capped cylinder along ``z`` from ``-height/2`` to ``height/2``: ``2 * segments + 2`` vertices."""
    radius, height = _positive(radius, "radius"), _positive(height, "height")
    n = _count(segments, "segments", 3)
    angle = torch.arange(n, dtype=torch.float64) * (2 * math.pi / n)
    ring = torch.stack([radius * angle.cos(), radius * angle.sin(), torch.zeros(n, dtype=torch.float64)], 1)
    lo, hi = ring - torch.tensor([0, 0, height / 2]), ring + torch.tensor([0, 0, height / 2])
    centers = torch.tensor([[0, 0, -height / 2], [0, 0, height / 2]], dtype=torch.float64)
    verts = torch.cat([lo, hi, centers])
    i = torch.arange(n)
    j = (i + 1) % n
    side = torch.cat([torch.stack([i, j, j + n], 1), torch.stack([i, j + n, i + n], 1)])
    bottom = torch.stack([torch.full_like(i, 2 * n), j, i], 1)
    top = torch.stack([torch.full_like(i, 2 * n + 1), i + n, j + n], 1)
    return verts.to(dtype), torch.cat([side, bottom, top])


def torus_mesh(major_radius: float = 1.0, minor_radius: float = 0.25, major_segments: int = 32,
               minor_segments: int = 16, dtype: torch.dtype = torch.float32) -> Mesh:
    """A torus around the ``z`` axis: ``major_segments * minor_segments`` vertices, twice as many faces.

    ``minor_radius`` must be smaller than ``major_radius`` (else the surface self-intersects).
    """
    big, small = _positive(major_radius, "major_radius"), _positive(minor_radius, "minor_radius")
    if small >= big:
        raise ValueError(f"minor_radius must be smaller than major_radius ({big}), got {small}")
    n, m = _count(major_segments, "major_segments", 3), _count(minor_segments, "minor_segments", 3)
    u = torch.arange(n, dtype=torch.float64)[:, None] * (2 * math.pi / n)
    w = torch.arange(m, dtype=torch.float64)[None, :] * (2 * math.pi / m)
    r = big + small * w.cos()
    verts = torch.stack([r * u.cos(), r * u.sin(), (small * w.sin()).expand(n, m)], -1).reshape(-1, 3)
    i = torch.arange(n)[:, None]
    k = torch.arange(m)[None, :]
    a, b = i * m + k, ((i + 1) % n) * m + k
    c, d = ((i + 1) % n) * m + (k + 1) % m, i * m + (k + 1) % m
    faces = torch.cat([torch.stack([a, b, c], -1).reshape(-1, 3), torch.stack([a, c, d], -1).reshape(-1, 3)])
    return verts.to(dtype), faces


def _as_float64(value, name: str, shape_tail: Tuple[int, ...]) -> torch.Tensor:
    tensor = torch.as_tensor(value, dtype=torch.float64)
    if tensor.dim() != 1 + len(shape_tail) or tuple(tensor.shape[1:]) != shape_tail:
        tail = ", ".join(str(s) for s in shape_tail)
        raise ValueError(f"{name} must have shape (K, {tail}), got {tuple(tensor.shape)}")
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"{name} holds NaN or infinite values")
    return tensor


def _orient_outward(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Flip every face when the enclosed signed volume is negative (the faces point inward)."""
    a, b, c = verts[faces].unbind(1)
    volume = (a * torch.linalg.cross(b, c)).sum()
    return faces.flip(1) if volume < 0 else faces


def revolve_mesh(profile, segments: int = 24, dtype: torch.dtype = torch.float32) -> Mesh:
    """A solid of revolution about ``z``: the lathe of a profile curve.

    Args:
        profile: ``(K, 2)`` points ``(r, z)`` with ``r >= 0``, ``K >= 2``, traced from one end
            of the solid to the other. A point with ``r = 0`` lies on the axis (only allowed
            at either end); an end with ``r > 0`` is closed by a flat cap.
        segments: points per ring, ``>= 3``.

    Returns:
        ``verts: (k * segments + 2, 3)``, ``faces: (2 * k * segments, 3)`` with ``k`` the number of
        profile points off the axis; closed and oriented outward whichever way the profile is traced.

    Raises:
        ValueError: a bad shape, NaN, a negative radius, an axis point inside the profile, repeated
            consecutive points, or a profile that encloses no volume (flat, or all on the axis).
    """
    prof = _as_float64(profile, "profile", (2,))
    n = _count(segments, "segments", 3)
    if prof.shape[0] < 2:
        raise ValueError(f"profile needs at least 2 points, got {prof.shape[0]}")
    r, z = prof.unbind(1)
    if bool((r < 0).any()):
        raise ValueError("profile radii (first column) must be >= 0")
    if bool(((prof[1:] - prof[:-1]).abs().sum(1) == 0).any()):
        raise ValueError("profile has repeated consecutive points (they would make zero-area faces)")
    on_axis = r == 0
    if bool(on_axis[1:-1].any()):
        raise ValueError("only the first and last profile points may lie on the axis (r = 0)")
    if bool(on_axis.all()):
        raise ValueError("profile lies entirely on the axis: the solid has no volume")
    # Caps: an end off the axis gets an extra axis point so every end closes in a fan.
    if not bool(on_axis[0]):
        r, z = torch.cat([r.new_zeros(1), r]), torch.cat([z[:1], z])
    if not bool(on_axis[-1]):
        r, z = torch.cat([r, r.new_zeros(1)]), torch.cat([z, z[-1:]])
    # Volume of the lathed polygon (a sum of frusta); zero for a flat profile (all at one z) or one that
    # retraces itself, which would give coincident, doubly covered faces instead of a solid.
    volume = abs(float(((r[:-1] ** 2 + r[:-1] * r[1:] + r[1:] ** 2) * (z[1:] - z[:-1])).sum())) * math.pi / 3
    if volume <= 1e-9 * math.pi * float(r.max()) ** 2 * float(z.max() - z.min()):
        raise ValueError(f"profile encloses no volume (flat or retracing itself), got {prof.tolist()}")
    rings = r[1:-1]
    k = rings.shape[0]
    angle = torch.arange(n, dtype=torch.float64) * (2 * math.pi / n)
    ring_verts = torch.stack([rings[:, None] * angle.cos(), rings[:, None] * angle.sin(),
                              z[1:-1, None].expand(k, n)], -1).reshape(-1, 3)
    poles = torch.stack([torch.zeros(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64), z[[0, -1]]], 1)
    verts = torch.cat([ring_verts, poles])
    first, last = k * n, k * n + 1
    i = torch.arange(n)
    j = (i + 1) % n
    ring = torch.arange(k - 1)[:, None] * n
    a, b = (ring + i).reshape(-1), (ring + j).reshape(-1)
    top = (k - 1) * n
    faces = torch.cat([
        torch.stack([torch.full_like(i, first), j, i], 1),
        torch.stack([a, b, b + n], 1), torch.stack([a, b + n, a + n], 1),
        torch.stack([torch.full_like(i, last), top + i, top + j], 1),
    ])
    return verts.to(dtype), _orient_outward(verts, faces)


def cone_mesh(radius_bottom: float = 0.5, radius_top: float = 0.0, height: float = 1.0, segments: int = 24,
              dtype: torch.dtype = torch.float32) -> Mesh:
    """A capped cone or frustum along ``z`` from ``-height/2`` (radius ``radius_bottom``) to
    ``height/2`` (radius ``radius_top``; ``0`` gives a pointed cone).

    A pointed cone has ``segments + 2`` vertices and ``2 * segments`` faces, a frustum
    ``2 * segments + 2`` vertices and ``4 * segments`` faces."""
    bottom, height = _positive(radius_bottom, "radius_bottom"), _positive(height, "height")
    if (not isinstance(radius_top, (int, float)) or isinstance(radius_top, bool) or not math.isfinite(radius_top)
            or radius_top < 0):
        raise ValueError(f"radius_top must be a finite number >= 0, got {radius_top!r}")
    profile = [(0.0, -height / 2), (bottom, -height / 2), (float(radius_top), height / 2)]
    if radius_top > 0:
        profile.append((0.0, height / 2))
    return revolve_mesh(profile, segments, dtype)


def tube_mesh(path, radius=0.05, segments: int = 12, dtype: torch.dtype = torch.float32) -> Mesh:
    """A capped tube swept along a polyline (frames carried by parallel transport, so it does not twist).

    Args:
        path: ``(K, 3)`` centre-line points, ``K >= 2``, consecutive points distinct.
        radius: a positive number, or ``(K,)`` positive radii (a tapered tube).
        segments: points per cross-section ring, ``>= 3``.

    Each ring is a circle of its radius in the plane normal to the path's tangent there (at a bend: the
    bisector of the two segments), so a bend of angle ``a`` narrows the tube to ``cos(a / 2)`` of its
    radius across the bend (no mitre): use several points for a round bend.

    Returns:
        ``verts: (K * segments + 2, 3)``, ``faces: (2 * K * segments, 3)``, closed and oriented outward.
    """
    centre = _as_float64(path, "path", (3,))
    n = _count(segments, "segments", 3)
    if centre.shape[0] < 2:
        raise ValueError(f"path needs at least 2 points, got {centre.shape[0]}")
    radii = torch.as_tensor(radius, dtype=torch.float64)
    if radii.dim() > 1 or (radii.dim() == 1 and radii.shape[0] not in (1, centre.shape[0])):
        raise ValueError(f"radius must be a number or have shape ({centre.shape[0]},) (one per path point), "
                         f"got shape {tuple(radii.shape)}")
    radii = radii.expand(centre.shape[0]).clone()
    if not bool(torch.isfinite(radii).all()) or bool((radii <= 0).any()):
        raise ValueError("radius must be positive and finite")
    step = centre[1:] - centre[:-1]
    length = step.norm(dim=1, keepdim=True)
    if bool((length == 0).any()):
        raise ValueError("path has repeated consecutive points")
    seg_dir = step / length
    tangents = torch.cat([seg_dir[:1], seg_dir[:-1] + seg_dir[1:], seg_dir[-1:]])
    tangent_norm = tangents.norm(dim=1, keepdim=True)
    if bool((tangent_norm < 1e-6).any()):
        turn = int((tangent_norm[:, 0] < 1e-6).nonzero()[0])
        raise ValueError(f"path turns back on itself at point {turn} (a 180 degree turn has no cross-section)")
    tangents = tangents / tangent_norm
    # Start frame: any vector not parallel to the first tangent.
    helper = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    if abs(float(tangents[0] @ helper)) > 0.9:
        helper = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    normal = torch.linalg.cross(tangents[0], helper)
    normal = normal / normal.norm()
    normals = [normal]
    for before, t in zip(tangents[:-1], tangents[1:]):
        # Parallel transport: turn the normal by the smallest rotation taking one tangent to the next
        # (Rodrigues about their cross product). Projecting it onto the new normal plane instead would
        # twist the frame by up to ~16 degrees per step at a 90 degree corner.
        axis = torch.linalg.cross(before, t)
        sin = axis.norm()
        if float(sin) > 1e-12:
            axis, cos = axis / sin, before @ t
            normal = normal * cos + torch.linalg.cross(axis, normal) * sin + axis * (axis @ normal) * (1 - cos)
        normal = normal - (normal @ t) * t  # only removes rounding error
        normal = normal / normal.norm()
        normals.append(normal)
    normals = torch.stack(normals)
    binormals = torch.linalg.cross(tangents, normals)
    angle = torch.arange(n, dtype=torch.float64) * (2 * math.pi / n)
    offsets = angle.cos()[None, :, None] * normals[:, None] + angle.sin()[None, :, None] * binormals[:, None]
    rings = (centre[:, None] + radii[:, None, None] * offsets).reshape(-1, 3)
    verts = torch.cat([rings, centre[[0, -1]]])
    k = centre.shape[0]
    first, last = k * n, k * n + 1
    i = torch.arange(n)
    j = (i + 1) % n
    ring = torch.arange(k - 1)[:, None] * n
    a, b = (ring + i).reshape(-1), (ring + j).reshape(-1)
    faces = torch.cat([
        torch.stack([torch.full_like(i, first), j, i], 1),
        torch.stack([a, b, b + n], 1), torch.stack([a, b + n, a + n], 1),
        torch.stack([torch.full_like(i, last), (k - 1) * n + i, (k - 1) * n + j], 1),
    ])
    return verts.to(dtype), _orient_outward(verts, faces)
