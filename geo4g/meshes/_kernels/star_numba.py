"""Compiled (numba) Delaunay stars for the point-cloud path of
:func:`geo4g.meshes.laplacian_matrices.robust_laplacian`; no public names.

Imported lazily (``numba`` is optional). For every point, its neighbours projected to the tangent
plane (the point at the origin) give the triangles of the 2-D Delaunay triangulation that touch the
origin, without triangulating the rest: inversion ``w = q / |q|^2`` maps the circles through the
origin to lines, and a circle's inside to the side of its line away from the origin, so the
triangle ``(0, p, q)`` has an empty circumcircle exactly when ``(p*, q*)`` is an edge of the convex
hull of the inverted neighbours with the origin on the hull's side of it. The hull is Andrew's
monotone chain (collinear points dropped). In general position this equals the star of SciPy's
Delaunay triangulation (Qhull), the reference in :mod:`geo4g.meshes.laplacian_matrices`; for cocircular
neighbours both are valid Delaunay stars but may differ.
"""
from __future__ import annotations

import numpy as np
from numba import njit

#: Fewest points worth handing to another thread.
MIN_SLICE = 256


@njit(cache=True, nogil=True)
def _turn(wx, wy, o, a, b):
    """Twice the signed area of the triangle ``(w_o, w_a, w_b)``: positive for a left turn."""
    return (wx[a] - wx[o]) * (wy[b] - wy[o]) - (wy[a] - wy[o]) * (wx[b] - wx[o])


@njit(cache=True, nogil=True)
def delaunay_stars(flat, tris, counts, t0, t1):
    """``flat (N, K + 1, 2)``: each point's neighbourhood in its tangent plane, row 0 the point itself
    (at the origin). Writes ``tris[i, :counts[i]]`` pairs of neighbour slots ``(a, b)``, one per
    triangle ``(i, a, b)`` of the star, for the points ``t0 <= i < t1``."""
    K1 = flat.shape[1]
    wx = np.empty(K1)
    wy = np.empty(K1)
    slot = np.empty(K1, dtype=np.int64)
    order = np.empty(K1, dtype=np.int64)
    hull = np.empty(2 * K1, dtype=np.int64)
    for i in range(t0, t1):
        scale = 0.0
        for j in range(1, K1):
            r2 = flat[i, j, 0] * flat[i, j, 0] + flat[i, j, 1] * flat[i, j, 1]
            scale = max(scale, r2)
        m = 0
        for j in range(1, K1):
            r2 = flat[i, j, 0] * flat[i, j, 0] + flat[i, j, 1] * flat[i, j, 1]
            if r2 > 1e-24 * scale:
                wx[m] = flat[i, j, 0] / r2
                wy[m] = flat[i, j, 1] / r2
                slot[m] = j
                m += 1
        counts[i] = 0
        if m < 2:
            continue
        # Insertion sort by (x, y): m is the neighbourhood size (tens).
        for a in range(m):
            order[a] = a
        for a in range(1, m):
            cur = order[a]
            b = a - 1
            while b >= 0 and (wx[order[b]] > wx[cur] or (wx[order[b]] == wx[cur] and wy[order[b]] > wy[cur])):
                order[b + 1] = order[b]
                b -= 1
            order[b + 1] = cur
        h = 0
        for a in range(m):
            p = order[a]
            while h >= 2 and _turn(wx, wy, hull[h - 2], hull[h - 1], p) <= 0:
                h -= 1
            hull[h] = p
            h += 1
        lower = h + 1
        for a in range(m - 2, -1, -1):
            p = order[a]
            while h >= lower and _turn(wx, wy, hull[h - 2], hull[h - 1], p) <= 0:
                h -= 1
            hull[h] = p
            h += 1
        h -= 1  # the chain ends where it started
        if h < 2:
            continue
        c = 0
        for e in range(h):
            a, b = hull[e], hull[(e + 1) % h]
            ex, ey = wx[b] - wx[a], wy[b] - wy[a]
            # The origin strictly on the left of the counter-clockwise edge a -> b (the hull's side).
            side = ex * (-wy[a]) - ey * (-wx[a])
            size = np.sqrt(ex * ex + ey * ey) * np.sqrt(wx[a] * wx[a] + wy[a] * wy[a])
            if side > 1e-12 * size:
                tris[i, c, 0] = slot[a]
                tris[i, c, 1] = slot[b]
                c += 1
        counts[i] = c
