"""Compiled (numba) farthest point sampling for CPU tensors; no public names.

Imported lazily by :mod:`geo4g.points.sample_farthest_points` (``numba`` is optional:
``pip install geo4g[numba]``).

Layout: a cloud is ``(D, n)`` (one contiguous row per coordinate) and the running distance to
the chosen set, ``nearest (n,)``, is updated block by block (``BLOCK`` points, in L1). For each
block, one vectorised loop forms the squared distances to the current point and takes the
minimum into ``nearest``, and a second one takes the block's maximum over the bit patterns of
``nearest`` read as signed integers: for non-negative floats that order is the float order, and
integer max reductions vectorise where float ones (NaN semantics) do not. The next point is the
first block holding the overall maximum, then the first index in it holding that value: the
lowest index among ties, like ``torch.argmax``.

Arithmetic matches ``_fps_reference`` bit for bit: ``d = 0 + (p_0 - c_0)^2 + (p_1 - c_1)^2 + ...``
accumulated left to right in the input dtype (numba emits no fused multiply-adds without
fastmath), then ``min(nearest, d)``.

Entry points: ``fps_cloud`` runs one cloud in the calling thread (no parallel region: no numba
worker thread wakes or spins); ``fps_batch`` runs one cloud per numba thread; ``fps_split`` runs
one cloud and splits each step's update over the threads (one parallel region per step).
"""
from __future__ import annotations

import numpy as np
from numba import get_num_threads, njit, prange

__all__ = ["fps_cloud", "fps_batch", "fps_split", "bits_like", "get_num_threads"]

BLOCK = 1024  # points per block; a block of nearest/distances stays in L1


@njit(cache=True, nogil=True)
def _update_block(pts, cur, lo, hi, nearest, tmp, bits_like):
    """``nearest[lo:hi] = min(nearest, |pts[:, j] - pts[:, cur]|^2)``; return the block's max as bits."""
    m = hi - lo
    near = nearest[lo:hi]
    if pts.shape[0] == 3:  # the common case, fused in one loop
        x, y, z = pts[0, lo:hi], pts[1, lo:hi], pts[2, lo:hi]
        cx, cy, cz = pts[0, cur], pts[1, cur], pts[2, cur]
        for j in range(m):
            tx = x[j] - cx
            ty = y[j] - cy
            tz = z[j] - cz
            near[j] = min(near[j], tx * tx + ty * ty + tz * tz)
    else:  # all coordinates but the last into tmp, the last one fused with the minimum
        d = tmp[:m]
        d[:] = 0
        last = pts.shape[0] - 1
        for a in range(last):
            p = pts[a, lo:hi]
            c = pts[a, cur]
            for j in range(m):
                t = p[j] - c
                d[j] += t * t
        if last < 0:  # D = 0: every distance is 0
            near[:] = 0
        else:
            p = pts[last, lo:hi]
            c = pts[last, cur]
            for j in range(m):
                t = p[j] - c
                near[j] = min(near[j], d[j] + t * t)
    bits = near.view(bits_like.dtype)
    best = bits[0]
    for j in range(1, m):
        best = max(best, bits[j])
    return best


@njit(cache=True, nogil=True)
def _first_argmax(nearest, n, bmax, nb, bits_like):
    """Lowest index of the maximum of ``nearest[:n]``, given the per-block maxima ``bmax[:nb]``."""
    best = bmax[0]
    blk = 0
    for b in range(1, nb):
        if bmax[b] > best:
            best = bmax[b]
            blk = b
    bits = nearest[:n].view(bits_like.dtype)
    j = blk * BLOCK
    while bits[j] != best:
        j += 1
    return j


@njit(cache=True, nogil=True)
def fps_cloud(pts, n, k, start, out, bits_like):
    """Write the ``k`` (``1 <= k <= n``) samples of the cloud ``pts[:, :n]`` into ``out[:k]``."""
    nb = (n + BLOCK - 1) // BLOCK
    nearest = np.full(n, np.inf, dtype=pts.dtype)
    tmp = np.empty(BLOCK, dtype=pts.dtype)
    bmax = np.empty(nb, dtype=bits_like.dtype)
    cur = start
    for s in range(k):
        out[s] = cur
        if s + 1 == k:
            break
        for b in range(nb):
            bmax[b] = _update_block(pts, cur, b * BLOCK, min(n, (b + 1) * BLOCK), nearest, tmp, bits_like)
        cur = _first_argmax(nearest, n, bmax, nb, bits_like)


@njit(cache=True, nogil=True, parallel=True)
def fps_batch(pts, lengths, ks, start, out, bits_like):
    """``pts (B, D, N)``: cloud ``b`` writes ``min(ks[b], lengths[b])`` samples into ``out[b]``;
    clouds are spread over the threads."""
    for b in prange(pts.shape[0]):
        n = lengths[b]
        k = min(ks[b], n)
        if k > 0:
            fps_cloud(pts[b], n, k, start[b], out[b], bits_like)


@njit(cache=True, nogil=True, parallel=True)
def fps_split(pts, n, k, start, out, bits_like, threads):
    """One cloud ``pts (D, N)``, ``1 <= k <= n``: each step's blocks are split in ``threads`` parts
    (``threads`` at most numba's thread count)."""
    nb = (n + BLOCK - 1) // BLOCK
    threads = min(threads, nb)
    per = (nb + threads - 1) // threads
    nearest = np.full(n, np.inf, dtype=pts.dtype)
    tmp = np.empty((threads, BLOCK), dtype=pts.dtype)
    bmax = np.empty(nb, dtype=bits_like.dtype)
    cur = start
    for s in range(k):
        out[s] = cur
        if s + 1 == k:
            break
        for t in prange(threads):
            for b in range(t * per, min(nb, (t + 1) * per)):
                bmax[b] = _update_block(pts, cur, b * BLOCK, min(n, (b + 1) * BLOCK), nearest, tmp[t], bits_like)
        cur = _first_argmax(nearest, n, bmax, nb, bits_like)


def bits_like(dtype) -> np.ndarray:
    """The (empty) signed-integer array whose dtype reads ``dtype`` floats as ordered bits."""
    return np.empty(0, dtype=np.int32 if dtype == np.float32 else np.int64)
