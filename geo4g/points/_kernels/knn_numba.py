"""Compiled (numba) uniform-grid neighbour search on the CPU: k nearest neighbours; no public names.

Imported lazily by :mod:`geo4g.points.knn` (``numba`` is optional: ``pip install geo4g[numba]``).
The grid and the query order here are shared with :mod:`geo4g.points._kernels.ball_numba`.

Grid: per cloud, the valid points are bucketed into a uniform grid over their bounding box in
the first ``min(D, 3)`` coordinates (a distance bound in those coordinates bounds the full
distance, so any ``D`` works; best for ``D <= 3``). A stable counting sort stores each cloud's
points cell by cell, in index order within a cell, with their original indices.

kNN query: each query point visits cubic shells of cells around its own cell, ``r = 0, 1, ...``,
keeping its best ``K`` in a list sorted by ``(distance, index)`` (so ties go to the lower index
whatever order the cells come in), skipping slabs, rows and cells farther than the current
``K``-th distance, and stops once that distance is below the distance to every cell not yet
visited. Bounds carry a relative slack of ``TOL`` (and an absolute one of ``1e-6`` cells), so
rounding can only make the search visit more, never drop a neighbour. Distances are formed like
the torch reference (coordinate differences in the input dtype, summed over ``D`` in order), so
both rank pairs identically.

Threads: the kernels release the GIL and work on a slice of the query list;
:func:`geo4g._threads.run_chunks` hands slices of at least :data:`MIN_CHUNK` queries to a pool of
Python threads (one per CPU; a new pool after a fork), a few slices per thread so that a core
busy with another process does not hold the others up (a first version on numba's ``prange``,
static split and OpenMP barrier, ran slower on two threads than on one on a loaded 2-core
machine; this one measured 1.9x faster on two). Queries are ordered by cell, so
the points a slice reads stay in cache, and each query keeps its list in a per-slice buffer,
copied out at the end (rows updated in place by two threads can share cache lines).
"""
from __future__ import annotations

import numpy as np
from numba import njit

#: Relative slack on the distance bounds used to prune cells and to stop.
TOL = 1e-4
#: Fewest queries worth handing to another thread.
MIN_CHUNK = 512
#: A grid has at most this many cells per point (memory bound for very uneven clouds).
CELLS_PER_POINT = 4


def knn_occupancy(K: int) -> float:
    """Points per cell of a kNN grid's bounding box: ``K / 5`` within ``[1, 4]`` (measured on uniform,
    Gaussian and sphere-surface clouds of 16k points for K = 1, 4, 16, 32; the optimum is flat)."""
    return min(4.0, max(1.0, K / 5))


@njit(cache=True, nogil=True)
def _cloud_grid(pts, n, cell, occupancy, max_cells, lo, dims):
    """Fill ``lo (3,)`` and ``dims (3,)`` for the first ``n`` rows of ``pts (P, D)``; return the
    cell size. ``cell > 0`` fixes the size, else it holds about ``occupancy`` points per cell of
    the bounding box. Cells are enlarged until there are at most ``max_cells``."""
    G = min(pts.shape[1], 3)
    ext = np.zeros(3)
    for a in range(3):
        lo[a] = 0.0
        dims[a] = 1
    if n == 0:
        return 1.0
    for a in range(G):
        mn = np.inf
        mx = -np.inf
        for j in range(n):
            v = np.float64(pts[j, a])
            mn = min(mn, v)
            mx = max(mx, v)
        lo[a] = mn
        ext[a] = mx - mn
    nd = 0
    vol = 1.0
    big = 0.0
    for a in range(G):
        if ext[a] > 0:
            nd += 1
            vol *= ext[a]
            big = max(big, ext[a])
    if nd == 0:
        return 1.0  # every point in one place: one cell
    h = cell if cell > 0 else (vol * occupancy / n) ** (1.0 / nd)
    if not h > 0:
        h = big
    while True:
        total = 1.0
        for a in range(G):
            cells = ext[a] / h
            dims[a] = int(cells) + 1 if cells < max_cells else max_cells + 1
            total *= dims[a]
        if total <= max_cells:
            return h
        h *= max(1.1, (total / max_cells) ** (1.0 / nd))


@njit(cache=True, nogil=True, inline="always")
def _axis_cell(v, lo, h, g):
    x = (np.float64(v) - lo) / h
    if x < 1.0:
        return 0
    if x >= g - 1:
        return g - 1
    return int(x)


@njit(cache=True, nogil=True)
def build_grid(pts, lengths, cell, occupancy, cells_per_point):
    """Bucket the valid points of ``pts (B, P, D)`` (``lengths (B,)``) into one grid per cloud.

    Returns ``(lo (B, 3), h (B,), dims (B, 3), start, offset (B,), order (B, P), sorted_pts (B, P, D))``:
    the points of cell ``c`` of cloud ``b`` are ``sorted_pts[b, start[offset[b] + c]:start[offset[b] + c + 1]]``
    with original indices ``order[b, ...]``; cell ``c = (ix * dims[b, 1] + iy) * dims[b, 2] + iz``.
    At most ``max(64, cells_per_point * lengths[b])`` cells per cloud.
    """
    B, P, D = pts.shape
    lo = np.zeros((B, 3))
    h = np.ones(B)
    dims = np.ones((B, 3), np.int64)
    for b in range(B):
        h[b] = _cloud_grid(pts[b], lengths[b], cell, occupancy, max(64, cells_per_point * lengths[b]),
                           lo[b], dims[b])
    offset = np.zeros(B, np.int64)
    total = 0
    for b in range(B):
        offset[b] = total
        total += dims[b, 0] * dims[b, 1] * dims[b, 2] + 1
    start = np.zeros(total, np.int64)
    order = np.zeros((B, P), np.int64)
    sorted_pts = np.zeros_like(pts)
    G = min(D, 3)
    for b in range(B):
        n = lengths[b]
        off = offset[b]
        gx, gy, gz = dims[b, 0], dims[b, 1], dims[b, 2]
        ncell = gx * gy * gz
        cells = np.empty(n, np.int64)
        for j in range(n):
            ix = _axis_cell(pts[b, j, 0], lo[b, 0], h[b], gx)
            iy = _axis_cell(pts[b, j, 1], lo[b, 1], h[b], gy) if G > 1 else 0
            iz = _axis_cell(pts[b, j, 2], lo[b, 2], h[b], gz) if G > 2 else 0
            c = (ix * gy + iy) * gz + iz
            cells[j] = c
            start[off + c + 1] += 1
        for c in range(ncell):
            start[off + c + 1] += start[off + c]
        cursor = start[off:off + ncell].copy()
        for j in range(n):
            s = cursor[cells[j]]
            cursor[cells[j]] += 1
            order[b, s] = j
            for a in range(D):
                sorted_pts[b, s, a] = pts[b, j, a]
    return lo, h, dims, start, offset, order, sorted_pts


@njit(cache=True, nogil=True, inline="always")
def axis_bound(qa, la, h, c, slack, norm):
    """Lower bound on ``|q_a - x_a|`` (squared for ``norm=2``) for ``x`` in cell ``c`` along one axis."""
    g = max(max(la + c * h - qa, qa - (la + (c + 1) * h)) - slack, 0.0)
    return g * g if norm == 2 else g


@njit(cache=True, nogil=True, inline="always")
def _distance(q, b, i, sp, s, D, norm):
    """Distance from ``q[b, i]`` to ``sp[b, s]`` in their dtype: squared L2 (``norm=2``) or L1,
    summed over the coordinates in order (as the torch reference does)."""
    diff = q[b, i, 0] - sp[b, s, 0]
    if norm == 2:
        d = diff * diff
        if D > 1:
            diff = q[b, i, 1] - sp[b, s, 1]
            d += diff * diff
        if D > 2:
            diff = q[b, i, 2] - sp[b, s, 2]
            d += diff * diff
        for a in range(3, D):
            diff = q[b, i, a] - sp[b, s, a]
            d += diff * diff
        return d
    d = abs(diff)
    for a in range(1, D):
        d += abs(q[b, i, a] - sp[b, s, a])
    return d


@njit(cache=True, nogil=True, inline="always")
def _scan_knn(q, b, i, s0, s1, sp, order, k, cnt, norm, oi, od):
    """Offer the grid points ``s0:s1`` of cloud ``b`` to the list ``(od, oi)``, sorted by
    ``(distance, index)``, which holds ``cnt`` of at most ``k``; return the new count."""
    D = sp.shape[2]
    for s in range(s0, s1):
        d = _distance(q, b, i, sp, s, D, norm)
        if cnt < k:
            pos = cnt
            cnt += 1
        elif d < od[k - 1] or (d == od[k - 1] and order[b, s] < oi[k - 1]):
            pos = k - 1
        else:
            continue
        j = order[b, s]
        while pos > 0 and (od[pos - 1] > d or (od[pos - 1] == d and oi[pos - 1] > j)):
            od[pos] = od[pos - 1]
            oi[pos] = oi[pos - 1]
            pos -= 1
        od[pos] = d
        oi[pos] = j
    return cnt


@njit(cache=True, nogil=True)
def query_order(q, lengths1, lengths2, grid):
    """Flat indices ``b * P1 + i`` of the valid query points of clouds with a non-empty grid, ordered
    by cloud and by the grid cell the point falls in (neighbouring queries then read the same cells)."""
    lo, h, dims, start, offset, order, sorted_pts = grid
    B, P1, D = q.shape
    G = min(D, 3)
    key = np.empty(B * P1, np.int64)
    count = np.zeros(start.shape[0] + 1, np.int64)
    n = 0
    for b in range(B):
        if lengths2[b] == 0:
            continue
        gx, gy, gz = dims[b, 0], dims[b, 1], dims[b, 2]
        for i in range(lengths1[b]):
            cx = _axis_cell(q[b, i, 0], lo[b, 0], h[b], gx)
            cy = _axis_cell(q[b, i, 1], lo[b, 1], h[b], gy) if G > 1 else 0
            cz = _axis_cell(q[b, i, 2], lo[b, 2], h[b], gz) if G > 2 else 0
            c = offset[b] + (cx * gy + cy) * gz + cz
            key[b * P1 + i] = c
            count[c + 1] += 1
            n += 1
    for c in range(start.shape[0]):
        count[c + 1] += count[c]
    queue = np.empty(n, np.int64)
    for b in range(B):
        if lengths2[b] == 0:
            continue
        for i in range(lengths1[b]):
            c = key[b * P1 + i]
            queue[count[c]] = b * P1 + i
            count[c] += 1
    return queue


@njit(cache=True, nogil=True)
def knn_query(q, lengths1, lengths2, grid, K, norm, queue, out_idx, out_d, t0, t1):
    """The ``k = min(K, lengths2[b])`` nearest grid points of the query points ``queue[t0:t1]`` (flat
    indices ``b * P1 + i`` into ``q (B, P1, D)``, from ``query_order``), sorted by ``(distance, index)``,
    written to ``out_idx[b, i, :k]`` and ``out_d[b, i, :k]`` (other slots untouched). ``grid`` is
    ``build_grid``'s result for ``p2``; ``norm``: 2 (squared L2) or 1 (L1)."""
    lo, h, dims, start, offset, order, sorted_pts = grid
    B, P1, D = q.shape
    G = min(D, 3)
    bd = np.empty(K, out_d.dtype)
    bi = np.empty(K, np.int64)
    for t in range(t0, t1):
        b = queue[t] // P1
        i = queue[t] - b * P1
        n2 = lengths2[b]
        k = min(K, n2)
        hb = h[b]
        slack = 1e-6 * hb
        gx, gy, gz = dims[b, 0], dims[b, 1], dims[b, 2]
        q0 = np.float64(q[b, i, 0])
        q1 = np.float64(q[b, i, 1]) if G > 1 else 0.0
        q2 = np.float64(q[b, i, 2]) if G > 2 else 0.0
        cx = _axis_cell(q0, lo[b, 0], hb, gx)
        cy = _axis_cell(q1, lo[b, 1], hb, gy)
        cz = _axis_cell(q2, lo[b, 2], hb, gz)
        off = offset[b]
        shrink = 1.0 - TOL
        cnt = 0
        r = 0
        while True:
            # Shell r: the cells at Chebyshev distance r from (cx, cy, cz). Slabs, rows and cells whose
            # bound exceeds the current k-th distance (once k are held) are skipped.
            x0, x1, y0, y1, z0, z1 = cx - r, cx + r, cy - r, cy + r, cz - r, cz + r
            for ix in range(max(x0, 0), min(x1, gx - 1) + 1):
                bx = axis_bound(q0, lo[b, 0], hb, ix, slack, norm)
                if cnt == k and bx * shrink > bd[k - 1]:
                    continue
                ex = ix == x0 or ix == x1
                for iy in range(max(y0, 0), min(y1, gy - 1) + 1):
                    bxy = bx + axis_bound(q1, lo[b, 1], hb, iy, slack, norm)
                    if cnt == k and bxy * shrink > bd[k - 1]:
                        continue
                    row = off + (ix * gy + iy) * gz
                    # On the shell's faces every cell of the z-row, inside it only the two end cells.
                    step = 1 if ex or iy == y0 or iy == y1 else z1 - z0
                    for iz in range(z0, z1 + 1, step):
                        if iz < 0 or iz >= gz:
                            continue
                        s0 = start[row + iz]
                        s1 = start[row + iz + 1]
                        if s0 < s1 and (cnt < k or (bxy + axis_bound(q2, lo[b, 2], hb, iz, slack, norm)) * shrink
                                        <= bd[k - 1]):
                            cnt = _scan_knn(q, b, i, s0, s1, sorted_pts, order, k, cnt, norm, bi, bd)
            if x0 <= 0 and y0 <= 0 and z0 <= 0 and x1 >= gx - 1 and y1 >= gy - 1 and z1 >= gz - 1:
                break  # every cell visited
            if cnt == k:
                gap = np.inf
                if x0 > 0:
                    gap = min(gap, q0 - (lo[b, 0] + x0 * hb))
                if x1 < gx - 1:
                    gap = min(gap, lo[b, 0] + (x1 + 1) * hb - q0)
                if y0 > 0:
                    gap = min(gap, q1 - (lo[b, 1] + y0 * hb))
                if y1 < gy - 1:
                    gap = min(gap, lo[b, 1] + (y1 + 1) * hb - q1)
                if z0 > 0:
                    gap = min(gap, q2 - (lo[b, 2] + z0 * hb))
                if z1 < gz - 1:
                    gap = min(gap, lo[b, 2] + (z1 + 1) * hb - q2)
                gap -= slack
                if gap > 0:
                    bound = gap * gap if norm == 2 else gap
                    if bd[k - 1] < bound * shrink:
                        break
            r += 1
        out_d[b, i, :k] = bd[:k]
        out_idx[b, i, :k] = bi[:k]
