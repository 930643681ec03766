"""Compiled (numba) uniform-grid ball query on the CPU; no public names.

Imported lazily by :mod:`geo4g.points.ball_query` (``numba`` is optional). Uses the grid, query
order and thread slices of :mod:`geo4g.points._kernels.knn_numba`, with cells of a size fixed
from the radius.

Each query point scans the cells its ball can reach (per axis, the cells overlapping
``[q - r, q + r]``; slabs, rows and cells whose box is farther than ``r`` skipped) and keeps the
``K`` lowest indices among the points at squared distance ``< r2``: a list sorted by index, so the
result is PyTorch3D's "first ``K`` in index order" whatever order the cells come in. Points of a
cell are stored in index order, so once the list is full a cell is left at its first point with a
higher index than the list's last. Distances are formed like the torch reference (in the input
dtype, summed over ``D`` in order) and compared with ``r2`` in that dtype.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .knn_numba import TOL, _axis_cell, _distance, axis_bound


@njit(cache=True, nogil=True, inline="always")
def _scan_ball(q, b, i, s0, s1, sp, order, K, cnt, r2, bi, bd):
    """Offer the grid points ``s0:s1`` of cloud ``b`` inside the ball to the index-sorted list
    ``(bi, bd)`` holding ``cnt`` of at most ``K``; return the new count."""
    D = sp.shape[2]
    for s in range(s0, s1):
        j = order[b, s]
        if cnt == K and j > bi[K - 1]:
            return cnt  # the rest of the cell has higher indices still
        d = _distance(q, b, i, sp, s, D, 2)
        if d < r2:
            if cnt < K:
                pos = cnt
                cnt += 1
            else:
                pos = K - 1
            while pos > 0 and bi[pos - 1] > j:
                bi[pos] = bi[pos - 1]
                bd[pos] = bd[pos - 1]
                pos -= 1
            bi[pos] = j
            bd[pos] = d
    return cnt


@njit(cache=True, nogil=True)
def ball_query(q, lengths2, grid, K, r2, radius, queue, out_idx, out_d, t0, t1):
    """For the query points ``queue[t0:t1]`` (flat indices ``b * P1 + i`` into ``q (B, P1, D)``), the first
    ``K`` grid points (in index order) at squared distance ``< r2`` (a scalar of ``q``'s dtype; ``radius``
    its square root, in float64, bounds the cells to visit), written to ``out_idx[b, i, :found]`` and their
    squared distances to ``out_d[b, i, :found]`` (other slots untouched). ``grid`` is ``build_grid``'s
    result for ``p2``."""
    lo, h, dims, start, offset, order, sorted_pts = grid
    B, P1, D = q.shape
    G = min(D, 3)
    bound = radius * radius * (1.0 + TOL)  # cells farther than this cannot hold a point inside
    bi = np.empty(K, np.int64)
    bd = np.empty(K, out_d.dtype)
    for t in range(t0, t1):
        b = queue[t] // P1
        i = queue[t] - b * P1
        hb = h[b]
        slack = 1e-6 * hb
        gx, gy, gz = dims[b, 0], dims[b, 1], dims[b, 2]
        q0 = np.float64(q[b, i, 0])
        q1 = np.float64(q[b, i, 1]) if G > 1 else 0.0
        q2 = np.float64(q[b, i, 2]) if G > 2 else 0.0
        off = offset[b]
        cnt = 0
        reach = radius * (1.0 + TOL) + slack
        for ix in range(_axis_cell(q0 - reach, lo[b, 0], hb, gx), _axis_cell(q0 + reach, lo[b, 0], hb, gx) + 1):
            bx = axis_bound(q0, lo[b, 0], hb, ix, slack, 2)
            if bx > bound:
                continue
            for iy in range(_axis_cell(q1 - reach, lo[b, 1], hb, gy), _axis_cell(q1 + reach, lo[b, 1], hb, gy) + 1):
                bxy = bx + axis_bound(q1, lo[b, 1], hb, iy, slack, 2)
                if bxy > bound:
                    continue
                row = off + (ix * gy + iy) * gz
                for iz in range(_axis_cell(q2 - reach, lo[b, 2], hb, gz),
                                _axis_cell(q2 + reach, lo[b, 2], hb, gz) + 1):
                    s0 = start[row + iz]
                    s1 = start[row + iz + 1]
                    if s0 < s1 and bxy + axis_bound(q2, lo[b, 2], hb, iz, slack, 2) <= bound:
                        cnt = _scan_ball(q, b, i, s0, s1, sorted_pts, order, K, cnt, r2, bi, bd)
        out_idx[b, i, :cnt] = bi[:cnt]
        out_d[b, i, :cnt] = bd[:cnt]
