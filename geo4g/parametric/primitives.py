"""Closed triangle meshes of primitive solids, with outward-facing (counter-clockwise) faces.

Every function returns ``(verts, faces)``: ``verts: (V, 3)`` float, ``faces: (F, 3)``
long, a watertight 2-manifold centred at the origin. They are the building
blocks of the procedural shape programs.
"""
from __future__ import annotations

import math
from typing import Sequence, Tuple

import torch

__all__ = ["box_mesh", "icosphere", "cylinder_mesh", "torus_mesh"]

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
