"""Compiled (numba) geodesic patches for :func:`geo4g.meshes.geodesic.local_polar_coordinates`; no public names.

Imported lazily (``numba`` is optional). Each centre runs a Dijkstra search over the mesh edges
with a binary heap ordered by ``(distance, vertex)`` (so ties go to the lower index, exactly as the
``heapq`` reference in :mod:`geo4g.meshes.geodesic`), stopping beyond ``limit`` or after ``max_count``
settled neighbours, and unfolds every settled vertex into the centre's tangent plane through its
Dijkstra parent (the discrete exponential map). The arithmetic follows the reference step by step.

Threads: the kernel releases the GIL and handles a slice of the centres with its own distance and
heap buffers (reset only where touched, so a slice costs its patches, not ``V`` per centre);
:func:`geo4g._threads.run_chunks` hands slices of at least :data:`MIN_SLICE` centres to a pool of
Python threads.
"""
from __future__ import annotations

import numpy as np
from numba import njit

#: Fewest centres worth handing to another thread.
MIN_SLICE = 256


@njit(cache=True, nogil=True)
def _heap_push(keys, items, size, key, item):
    i = size
    keys[i] = key
    items[i] = item
    while i > 0:
        parent = (i - 1) // 2
        if keys[parent] > keys[i] or (keys[parent] == keys[i] and items[parent] > items[i]):
            keys[parent], keys[i] = keys[i], keys[parent]
            items[parent], items[i] = items[i], items[parent]
            i = parent
        else:
            break
    return size + 1


@njit(cache=True, nogil=True)
def _heap_pop(keys, items, size):
    key, item = keys[0], items[0]
    size -= 1
    keys[0], items[0] = keys[size], items[size]
    i = 0
    while True:
        left, right, best = 2 * i + 1, 2 * i + 2, i
        if left < size and (keys[left] < keys[best] or (keys[left] == keys[best] and items[left] < items[best])):
            best = left
        if right < size and (keys[right] < keys[best] or (keys[right] == keys[best] and items[right] < items[best])):
            best = right
        if best == i:
            break
        keys[best], keys[i] = keys[i], keys[best]
        items[best], items[i] = items[i], items[best]
        i = best
    return key, item, size


@njit(cache=True, nogil=True)
def _unfold_step(verts, normals, frames, p, q, centre):
    """The 2-D step from ``p`` to ``q`` in ``centre``'s frame: the edge projected to ``p``'s tangent plane,
    rescaled to the edge length, rotated by the smallest rotation taking ``n_p`` to ``n_centre``."""
    s0 = verts[q, 0] - verts[p, 0]
    s1 = verts[q, 1] - verts[p, 1]
    s2 = verts[q, 2] - verts[p, 2]
    length = np.sqrt(s0 * s0 + s1 * s1 + s2 * s2)
    a0, a1, a2 = normals[p, 0], normals[p, 1], normals[p, 2]
    dot = s0 * a0 + s1 * a1 + s2 * a2
    w0, w1, w2 = s0 - dot * a0, s1 - dot * a1, s2 - dot * a2
    tl = np.sqrt(w0 * w0 + w1 * w1 + w2 * w2)
    if tl > 0:
        w0, w1, w2 = w0 * (length / tl), w1 * (length / tl), w2 * (length / tl)
    b0, b1, b2 = normals[centre, 0], normals[centre, 1], normals[centre, 2]
    c = a0 * b0 + a1 * b1 + a2 * b2
    if 1.0 + c >= 1e-12:
        v0 = a1 * b2 - a2 * b1
        v1 = a2 * b0 - a0 * b2
        v2 = a0 * b1 - a1 * b0
        vw = v0 * w0 + v1 * w1 + v2 * w2
        m0 = w0 * c + (v1 * w2 - v2 * w1) + v0 * vw / (1.0 + c)
        m1 = w1 * c + (v2 * w0 - v0 * w2) + v1 * vw / (1.0 + c)
        m2 = w2 * c + (v0 * w1 - v1 * w0) + v2 * vw / (1.0 + c)
        w0, w1, w2 = m0, m1, m2
    x = w0 * frames[centre, 0, 0] + w1 * frames[centre, 0, 1] + w2 * frames[centre, 0, 2]
    y = w0 * frames[centre, 1, 0] + w1 * frames[centre, 1, 1] + w2 * frames[centre, 1, 2]
    return x, y


@njit(cache=True, nogil=True)
def _patch(centre, verts, normals, frames, indptr, indices, weights, limit, max_count,
           dist, parent, u, touched, keys, items, out_vertex, out_dist, out_u, write):
    """Dijkstra from ``centre``; returns the number of settled neighbours (written when ``write``)."""
    n_touched = 0
    dist[centre] = 0.0
    parent[centre] = -1
    touched[n_touched] = centre
    n_touched += 1
    size = _heap_push(keys, items, 0, 0.0, centre)
    count = 0
    while size > 0:
        d, q, size = _heap_pop(keys, items, size)
        if d > dist[q] or d < 0:
            continue
        if d > limit:
            break
        if q != centre:
            p = parent[q]
            x, y = _unfold_step(verts, normals, frames, p, q, centre)
            u[q, 0] = u[p, 0] + x
            u[q, 1] = u[p, 1] + y
            if write:
                out_vertex[count] = q
                out_dist[count] = d
                out_u[count, 0] = u[q, 0]
                out_u[count, 1] = u[q, 1]
            count += 1
            if count >= max_count:
                break
        else:
            u[q, 0] = 0.0
            u[q, 1] = 0.0
        dist[q] = -1.0 - dist[q]  # settled: negative marks it (the original distance is recoverable)
        for e in range(indptr[q], indptr[q + 1]):
            r = indices[e]
            if dist[r] < 0:
                continue
            nd = d + weights[e]
            if nd < dist[r]:
                if dist[r] == np.inf:
                    touched[n_touched] = r
                    n_touched += 1
                dist[r] = nd
                parent[r] = q
                size = _heap_push(keys, items, size, nd, r)
    for i in range(n_touched):
        dist[touched[i]] = np.inf
    return count


@njit(cache=True, nogil=True)
def _search_buffers(n, num_edges):
    """One slice's Dijkstra state over ``n`` vertices: ``dist`` (``inf``: not reached), ``parent``, ``u``
    (unfolded positions), ``touched`` (the vertices to reset) and the heap's ``keys`` and ``items``
    (a push per directed edge at most, plus the centre)."""
    return (np.full(n, np.inf), np.full(n, -1, dtype=np.int64), np.zeros((n, 2)), np.empty(n, dtype=np.int64),
            np.empty(num_edges + 1), np.empty(num_edges + 1, dtype=np.int64))


@njit(cache=True, nogil=True)
def count_patches(verts, normals, frames, indptr, indices, weights, limit, max_count, counts, t0, t1):
    dist, parent, u, touched, keys, items = _search_buffers(verts.shape[0], indices.shape[0])
    dummy_i = np.empty(0, dtype=np.int64)
    dummy_d = np.empty(0)
    dummy_u = np.empty((0, 2))
    for c in range(t0, t1):
        counts[c] = _patch(c, verts, normals, frames, indptr, indices, weights, limit, max_count,
                           dist, parent, u, touched, keys, items, dummy_i, dummy_d, dummy_u, False)


@njit(cache=True, nogil=True)
def fill_patches(verts, normals, frames, indptr, indices, weights, limit, max_count, offsets,
                 out_vertex, out_dist, out_u, t0, t1):
    dist, parent, u, touched, keys, items = _search_buffers(verts.shape[0], indices.shape[0])
    for c in range(t0, t1):
        a = offsets[c]
        _patch(c, verts, normals, frames, indptr, indices, weights, limit, max_count, dist, parent, u, touched,
               keys, items, out_vertex[a:], out_dist[a:], out_u[a:], True)
