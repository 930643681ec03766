"""Marching cubes lookup tables, generated from the cube's geometry at import.

Cell corner ``c`` sits at offset ``CORNERS[c]`` (0/1 per axis, ``(x, y, z)`` = grid axes
``(i, j, k)``) in Lorensen & Cline's / Bourke's order; edge ``e`` joins corners ``EDGES[e]``.
A cell's case index is ``sum(1 << c for every corner c whose value > level)`` ("above" is strict).
``TRIANGLES[case]`` lists up to :data:`MAX_TRIANGLES` triangles as triples of edge ids (the
surface vertex on each crossed edge), padded with -1; ``NUM_TRIANGLES[case]`` counts them.

How the table is built (no published table is copied):

1. On each of the six cube faces the crossed edges are joined into segments. A face with two
   crossed edges has one segment. A face with four (the ambiguous diagonal pattern) always
   separates its above-level corners: each gets the segment that cuts it off. The rule reads only
   the face's own four corners, so the two cells sharing a face cut it the same way and the surface
   is watertight across cells.
2. Each segment is directed so that the surface it bounds is oriented: with ``n_f`` the face's
   outward normal, ``p -> q`` the segment and ``a`` an above corner on its side,
   ``((q - p) x (p - a)) . n_f > 0``. Every crossed edge then has one incoming and one outgoing
   segment, and the segments chain into closed directed loops.
3. Each loop (3 to 7 edges) is triangulated without new vertices, keeping its direction. Among
   the triangulations of the loop with no triangle side joining two vertices of one cube face
   other than the face's segments (the neighbouring cell could pick the same chord: an edge in
   four triangles) and no triangle lying in a cube face, the table takes the one with the
   smallest area with the vertices at the edge midpoints, then the first in order (of the
   triangles' sorted edge ids, so that a case and its complement pick alike). The
   winding makes every face normal (right-hand rule ``v0 -> v1 -> v2``) point from the
   above-level side to the below-level side: outward for an object made of the high values
   (occupancy), i.e. scikit-image's ``gradient_direction="descent"``.

Complementary cases give the same triangles with the opposite winding except where a face is
ambiguous: there the separated corners switch sides, and so does the surface's topology.
"""
from __future__ import annotations

import numpy as np

__all__ = ["CORNERS", "EDGES", "FACES", "TRIANGLES", "NUM_TRIANGLES", "MAX_TRIANGLES"]

#: ``(8, 3)`` int64: corner offsets in the cell.
CORNERS = np.array(
    [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]], dtype=np.int64
)
#: ``(12, 2)`` int64: the two corners of each edge.
EDGES = np.array(
    [[0, 1], [1, 2], [2, 3], [3, 0], [4, 5], [5, 6], [6, 7], [7, 4], [0, 4], [1, 5], [2, 6], [3, 7]], dtype=np.int64
)
#: Triangles per case at most (the face rule above never needs more).
MAX_TRIANGLES = 5


def _faces() -> np.ndarray:
    """``(6, 4)`` corners of each cube face, in cyclic order around the face."""
    faces = []
    for axis in range(3):
        for side in (0, 1):
            on_face = [c for c in range(8) if CORNERS[c, axis] == side]
            centre = CORNERS[on_face].mean(axis=0)
            u, v = [a for a in range(3) if a != axis]
            # Cyclic order: sort by angle around the face centre in the face's own (u, v) plane.
            order = sorted(on_face, key=lambda c: np.arctan2(CORNERS[c, v] - centre[v], CORNERS[c, u] - centre[u]))
            faces.append(order)
    return np.array(faces, dtype=np.int64)


#: ``(6, 4)`` int64: the corners of each cube face in cyclic order (faces x=0, x=1, y=0, y=1, z=0, z=1).
FACES = _faces()


_FACES_OF_EDGE = [
    {f for f, face in enumerate(FACES) if set(EDGES[e].tolist()) <= set(face.tolist())} for e in range(12)
]
_MIDPOINTS = CORNERS[EDGES].mean(axis=1)
#: Area of the triangle on the midpoints of edges (a, b, c), for every triple.
_MIDPOINT_AREA = 0.5 * np.linalg.norm(
    np.cross(
        _MIDPOINTS[None, :, None] - _MIDPOINTS[:, None, None], _MIDPOINTS[None, None, :] - _MIDPOINTS[:, None, None]
    ),
    axis=-1,
)


def _edge_id(a: int, b: int) -> int:
    for e, (p, q) in enumerate(EDGES):
        if {int(p), int(q)} == {a, b}:
            return e
    raise KeyError((a, b))


def _face_segments(case: int):
    """Directed segments ``(edge_from, edge_to)`` on every cube face for one case."""
    above = [(case >> c) & 1 == 1 for c in range(8)]
    segments = []
    for f, face in enumerate(FACES):
        axis, side = divmod(f, 2)
        normal = np.zeros(3)
        normal[axis] = 1.0 if side == 1 else -1.0
        crossed = [(face[t], face[(t + 1) % 4]) for t in range(4) if above[face[t]] != above[face[(t + 1) % 4]]]
        if not crossed:
            continue
        if len(crossed) == 2:
            pairs = [(crossed, next(c for c in face if above[c]))]
        else:
            # Ambiguous face: cut off each above corner by joining its two face edges.
            pairs = []
            for t in range(4):
                corner = face[t]
                if above[corner]:
                    pairs.append((((face[t - 1], corner), (corner, face[(t + 1) % 4])), corner))
        for (first, second), above_corner in pairs:
            p_edge, q_edge = _edge_id(*first), _edge_id(*second)
            p, q = _MIDPOINTS[p_edge], _MIDPOINTS[q_edge]
            side_sign = np.dot(np.cross(q - p, p - CORNERS[above_corner]), normal)
            segments.append((p_edge, q_edge) if side_sign > 0 else (q_edge, p_edge))
    return segments


def _loops(segments):
    """Chain directed segments into closed loops of edge ids."""
    successor = {}
    for p, q in segments:
        if p in successor:
            raise RuntimeError(f"edge {p} has two outgoing segments")
        successor[p] = q
    loops = []
    remaining = dict(successor)
    while remaining:
        start = min(remaining)
        loop = [start]
        nxt = remaining.pop(start)
        while nxt != start:
            loop.append(nxt)
            nxt = remaining.pop(nxt)
        loops.append(loop)
    return loops


def _polygon_triangulations(loop):
    """Every triangulation of the polygon ``loop`` (vertex order kept, so the winding is the loop's)."""
    if len(loop) < 3:
        return [[]]
    first, last = loop[0], loop[-1]
    result = []
    # The triangle on the side (last, first) has its apex at some loop[t]; the two sides split off.
    for t in range(1, len(loop) - 1):
        for left in _polygon_triangulations(loop[: t + 1]):
            for right in _polygon_triangulations(loop[t:]):
                result.append(left + right + [(first, loop[t], last)])
    return result


def _triangulate(loop):
    """The loop's triangulation (see the module docstring for the order of preference)."""
    segments = {frozenset(pair) for pair in zip(loop, loop[1:] + loop[:1])}

    def cost(triangulation):
        chords = {
            frozenset((p, q))
            for tri in triangulation
            for p, q in zip(tri, tri[1:] + tri[:1])
            if _FACES_OF_EDGE[p] & _FACES_OF_EDGE[q] and frozenset((p, q)) not in segments
        }
        flat = sum(bool(_FACES_OF_EDGE[a] & _FACES_OF_EDGE[b] & _FACES_OF_EDGE[c]) for a, b, c in triangulation)
        area = sum(_MIDPOINT_AREA[a, b, c] for a, b, c in triangulation)
        return len(chords), flat, round(float(area), 9), sorted(tuple(sorted(t)) for t in triangulation)

    best = min(_polygon_triangulations(loop), key=cost)
    if cost(best)[:2] != (0, 0):
        raise RuntimeError(f"loop {loop} cannot avoid a chord or a flat triangle in a cube face")
    return best


def _build():
    triangles = np.full((256, MAX_TRIANGLES, 3), -1, dtype=np.int64)
    counts = np.zeros(256, dtype=np.int64)
    for case in range(256):
        tris = [tri for loop in _loops(_face_segments(case)) for tri in _triangulate(loop)]
        if len(tris) > MAX_TRIANGLES:
            raise RuntimeError(f"case {case} needs {len(tris)} triangles")
        counts[case] = len(tris)
        if tris:
            # Each triangle starts at its smallest edge id (same winding): one spelling per triangle.
            triangles[case, : len(tris)] = [np.roll(t, -int(np.argmin(t))) for t in tris]
    return triangles, counts


#: ``(256, 5, 3)`` int64 triangles (edge ids) per case, padded with -1.
#: ``(256,)`` int64 number of triangles per case.
TRIANGLES, NUM_TRIANGLES = _build()
