"""Compiled (numba) marching cubes topology on the CPU; no public names.

Imported lazily by :mod:`geo4g.voxels.marching_cubes` (``numba`` is optional). The kernels find
which grid edges the level set crosses and which triangles join them; the vertex positions are
interpolated afterwards in torch (differentiable), so nothing here needs gradients.

A crossed grid edge is named by its global id ``node * 3 + axis`` (``node`` the C-order index of
its lower end, ``axis`` 0/1/2 for i/j/k); vertices come in increasing global id and faces cell by
cell (C order) and slot by slot within a cell, exactly like the torch reference, so both paths
give identical meshes. Three passes over slabs of constant ``i``, each on the worker threads:

1. ``count_slabs``: per node the 3-bit mask of crossed edges starting there (and whether the
   value is finite), per cell the case
   (``case = q(k) | q(k + 1) << 4`` with ``q`` the 4 above-bits of the corners at one ``k``,
   shared by two neighbouring cells), and per slab the number of vertices and triangles;
2. ``emit_vertices``: from the slab offsets (a prefix sum of the counts), the first vertex id of
   every node and the global edge id of every vertex;
3. ``emit_faces``: each cell's triangles, a vertex id being ``first[node] + popcount(mask[node]
   below the edge's axis bit)``.

Memory: 1 byte (mask) + 8 bytes (first vertex id) per node and 1 byte (case) per cell.

Threads: the kernels release the GIL; :func:`run_chunks` hands ranges of slabs to the calling
thread and a pool of Python threads (:func:`geo4g._threads.thread_pool`), a few ranges per thread
so that a core busy with another process does not hold the others up. The number of threads is
``NUMBA_NUM_THREADS`` (numba's default: the CPU count), capped by the CPUs this process may run
on (``os.sched_setaffinity`` limits both). The runtime ``numba.get_num_threads()`` is not read: it
starts numba's OpenMP layer, which resets torch's intra-op thread count.
"""
from __future__ import annotations

import itertools
import math

import numba
import numpy as np
from numba import njit

from geo4g._threads import available_cpus, thread_pool

from .._mc_tables import CORNERS, EDGES, NUM_TRIANGLES, TRIANGLES

#: Fewest work items (nodes, queries) worth handing to another thread.
MIN_CHUNK_WORK = 1 << 15

# Per local edge of a cell: the corner offset of its lower end and its axis.
_EDGE_LOW = np.minimum(CORNERS[EDGES[:, 0]], CORNERS[EDGES[:, 1]]).astype(np.int64)
_EDGE_AXIS = np.argmax(np.abs(CORNERS[EDGES[:, 0]] - CORNERS[EDGES[:, 1]]), axis=1).astype(np.int64)
_TRIANGLES = np.ascontiguousarray(TRIANGLES)
_NUM_TRIANGLES = np.ascontiguousarray(NUM_TRIANGLES)


def workers() -> int:
    """Threads to use: ``NUMBA_NUM_THREADS``, capped by the CPUs this process may run on."""
    return max(1, min(numba.config.NUMBA_NUM_THREADS, available_cpus()))


def run_chunks(kernel, n: int, work_per_item: int, *args) -> None:
    """``kernel(*args, t0, t1)`` over ``[0, n)`` in ranges, on the worker threads (inline when small).

    ``work_per_item`` sizes the ranges: at least :data:`MIN_CHUNK_WORK` work per range. The calling
    thread takes ranges too, and ranges a pool thread has not started by the time the caller runs
    out are not waited for: on a loaded machine a pool thread that is not scheduled costs nothing.
    """
    threads = workers()
    chunk = max(-(-MIN_CHUNK_WORK // max(1, work_per_item)), -(-n // (4 * threads)), 1)
    if threads == 1 or n <= chunk:
        kernel(*args, 0, n)
        return
    pool = thread_pool(threads - 1)
    starts = range(0, n, chunk)
    taken = itertools.count()  # next() on it is atomic under the GIL: each range runs once

    def drain():
        while True:
            index = next(taken)
            if index >= len(starts):
                return
            kernel(*args, starts[index], min(n, starts[index] + chunk))

    futures = [pool.submit(drain) for _ in range(threads - 1)]
    drain()
    for future in futures:
        if not future.cancel():
            future.result()


@njit(cache=True, nogil=True, inline="always")
def _popcount3(m):
    return (m & 1) + ((m >> 1) & 1) + ((m >> 2) & 1)


@njit(cache=True, nogil=True)
def count_slabs(vol, level, num_triangles, mask, cases, vert_counts, tri_counts, bad_counts, i0, i1):
    """Pass 1 for slabs ``[i0, i1)``: ``mask (D, H, W)`` crossed-edge bits, ``cases (D-1, H-1, W-1)``,
    ``vert_counts (D,)`` and ``tri_counts (D-1,)`` per slab, and ``bad_counts (D,)`` non-finite values."""
    D, H, W = vol.shape
    q = np.empty(W, dtype=np.uint8)
    for i in range(i0, i1):
        nv = 0
        bad = 0
        for j in range(H):
            for k in range(W):
                value = vol[i, j, k]
                if not math.isfinite(value):
                    bad += 1
                above = value > level
                m = 0
                if i + 1 < D and (vol[i + 1, j, k] > level) != above:
                    m |= 1
                if j + 1 < H and (vol[i, j + 1, k] > level) != above:
                    m |= 2
                if k + 1 < W and (vol[i, j, k + 1] > level) != above:
                    m |= 4
                mask[i, j, k] = m
                nv += _popcount3(m)
        vert_counts[i] = nv
        bad_counts[i] = bad
        if i + 1 >= D:
            continue
        nt = 0
        for j in range(H - 1):
            for k in range(W):
                # Corners 0, 1, 2, 3 of the cells at this k: (i, j), (i+1, j), (i+1, j+1), (i, j+1).
                q[k] = (
                    (vol[i, j, k] > level)
                    | ((vol[i + 1, j, k] > level) << 1)
                    | ((vol[i + 1, j + 1, k] > level) << 2)
                    | ((vol[i, j + 1, k] > level) << 3)
                )
            for k in range(W - 1):
                case = q[k] | (q[k + 1] << 4)
                cases[i, j, k] = case
                nt += num_triangles[case]
        tri_counts[i] = nt


@njit(cache=True, nogil=True)
def emit_vertices(mask, vert_offsets, first, edge_ids, i0, i1):
    """Pass 2 for slabs ``[i0, i1)``: ``first (D, H, W)`` first vertex id per node and the global
    edge id ``node * 3 + axis`` of every vertex (``edge_ids (V,)``)."""
    D, H, W = mask.shape
    for i in range(i0, i1):
        v = vert_offsets[i]
        for j in range(H):
            for k in range(W):
                first[i, j, k] = v
                m = mask[i, j, k]
                if m:
                    node = (i * H + j) * W + k
                    for axis in range(3):
                        if (m >> axis) & 1:
                            edge_ids[v] = node * 3 + axis
                            v += 1


@njit(cache=True, nogil=True)
def emit_faces(cases, mask, first, tri_offsets, triangles, num_triangles, edge_low, edge_axis, faces, i0, i1):
    """Pass 3 for cell slabs ``[i0, i1)``: ``faces (F, 3)`` vertex ids, cell by cell."""
    Dc, Hc, Wc = cases.shape
    for i in range(i0, i1):
        f = tri_offsets[i]
        for j in range(Hc):
            for k in range(Wc):
                case = cases[i, j, k]
                n = num_triangles[case]
                for t in range(n):
                    for c in range(3):
                        e = triangles[case, t, c]
                        ni = i + edge_low[e, 0]
                        nj = j + edge_low[e, 1]
                        nk = k + edge_low[e, 2]
                        axis = edge_axis[e]
                        below_bits = mask[ni, nj, nk] & ((1 << axis) - 1)
                        faces[f, c] = first[ni, nj, nk] + _popcount3(below_bits)
                    f += 1


def marching_cubes_topology(vol: np.ndarray, level) -> tuple:
    """Crossed edges and triangles of one ``(D, H, W)`` float32/float64 C-contiguous volume.

    Returns ``(edge_ids (V,) int64, faces (F, 3) int64)``: the global id ``node * 3 + axis`` of
    each vertex's grid edge (increasing) and the triangles (Lorensen orientation, see
    :mod:`geo4g.voxels._mc_tables`); ``None`` when a value is NaN or infinite.
    """
    D, H, W = vol.shape
    level = vol.dtype.type(level)
    mask = np.empty((D, H, W), dtype=np.uint8)
    cases = np.empty((D - 1, H - 1, W - 1), dtype=np.uint8)
    vert_counts = np.zeros(D, dtype=np.int64)
    tri_counts = np.zeros(D - 1, dtype=np.int64)
    bad_counts = np.zeros(D, dtype=np.int64)
    slab = H * W
    run_chunks(count_slabs, D, slab, vol, level, _NUM_TRIANGLES, mask, cases, vert_counts, tri_counts, bad_counts)
    if bad_counts.any():
        return None
    vert_offsets = np.concatenate(([0], np.cumsum(vert_counts)))
    tri_offsets = np.concatenate(([0], np.cumsum(tri_counts)))
    first = np.empty((D, H, W), dtype=np.int64)
    edge_ids = np.empty(int(vert_offsets[-1]), dtype=np.int64)
    run_chunks(emit_vertices, D, slab, mask, vert_offsets, first, edge_ids)
    faces = np.empty((int(tri_offsets[-1]), 3), dtype=np.int64)
    run_chunks(emit_faces, D - 1, slab, cases, mask, first, tri_offsets, _TRIANGLES, _NUM_TRIANGLES,
               _EDGE_LOW, _EDGE_AXIS, faces)
    return edge_ids, faces
