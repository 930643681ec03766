"""Compiled (numba) voxel visibility on the CPU; no public names.

Imported lazily by :mod:`geo4g.voxels.completion` (``numba`` is optional), which documents the
rays: from the centre of each exposed face of an occupied voxel that faces the viewpoint, and
from the centre of each empty voxel. Each ray is walked with the 3-D DDA of Amanatides & Woo
(1987) until an occupied voxel blocks it, it leaves the grid, or it reaches the viewpoint. The
walk is the torch paths' exactly: the parameter of the next crossing on each axis is
``(boundary - start) / direction`` in float64, computed afresh at each step (no accumulated
increments), and every axis whose crossing ties the smallest steps at once (the ray passes
through an edge or corner, touching the side voxels only on their boundary, so they do not
block it). Rays stop at the first block, a voxel at its first unblocked ray; the kernel releases
the GIL and handles a slice of the batch, which :func:`geo4g._threads.run_chunks` shares out over
threads.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, inline="always")
def _axis_setup(cell, start, direction):
    """``(step, boundary, t_next)`` of one axis of a ray (``t_next = inf`` when parallel to it)."""
    if direction > 0:
        return 1, cell + 1.0, (cell + 1.0 - start) / direction
    if direction < 0:
        return -1, cell + 0.0, (cell - start) / direction
    return 0, 0.0, np.inf


@njit(cache=True, nogil=True)
def _unblocked(occupied, b, c0, c1, c2, s0, s1, s2, x0, x1, x2):
    """Whether the ray from ``(s0, s1, s2)`` in voxel ``(c0, c1, c2)`` of grid ``b`` to ``(x0, x1, x2)``
    enters no occupied voxel (the start voxel is not checked)."""
    R = occupied.shape[1]
    d0, d1, d2 = x0 - s0, x1 - s1, x2 - s2
    step0, bound0, t0 = _axis_setup(c0, s0, d0)
    step1, bound1, t1 = _axis_setup(c1, s1, d1)
    step2, bound2, t2 = _axis_setup(c2, s2, d2)
    while True:
        t = min(t0, min(t1, t2))
        if t >= 1.0:
            return True
        if t0 == t:
            c0 += step0
            bound0 += step0
            t0 = (bound0 - s0) / d0
        if t1 == t:
            c1 += step1
            bound1 += step1
            t1 = (bound1 - s1) / d1
        if t2 == t:
            c2 += step2
            bound2 += step2
            t2 = (bound2 - s2) / d2
        if c0 < 0 or c0 >= R or c1 < 0 or c1 >= R or c2 < 0 or c2 >= R:
            return True
        if occupied[b, c0, c1, c2]:
            return False


@njit(cache=True, nogil=True)
def _occupied_seen(occupied, b, i, j, k, x0, x1, x2):
    """Whether some exposed face of occupied voxel ``(i, j, k)`` facing ``(x0, x1, x2)`` sees it."""
    R = occupied.shape[1]
    source = (i, j, k)
    target = (x0, x1, x2)
    for a in range(3):
        for s in (-1, 1):
            n = (i + s if a == 0 else i, j + s if a == 1 else j, k + s if a == 2 else k)
            face = source[a] + 0.5 + 0.5 * s
            if (target[a] - face) * s <= 0:
                continue
            if n[a] < 0 or n[a] >= R:
                return True
            if occupied[b, n[0], n[1], n[2]]:
                continue
            start = (face if a == 0 else i + 0.5, face if a == 1 else j + 0.5, face if a == 2 else k + 0.5)
            if _unblocked(occupied, b, n[0], n[1], n[2], start[0], start[1], start[2], x0, x1, x2):
                return True
    return False


@njit(cache=True, nogil=True)
def seen_voxels(occupied, query, viewpoints, seen, b0, b1):
    """Set ``seen[b, i, j, k]`` for every ``query`` voxel of the grids ``b0 <= b < b1`` that some
    viewpoint sees.

    ``occupied``, ``query``, ``seen``: ``(B, R, R, R)`` bool; ``viewpoints``: ``(B, V, 3)`` float64
    grid coordinates (voxel ``(i, j, k)`` spans ``[i, i + 1] x [j, j + 1] x [k, k + 1]``).
    """
    R = occupied.shape[1]
    V = viewpoints.shape[1]
    for b in range(b0, b1):
        for i in range(R):
            for j in range(R):
                for k in range(R):
                    if not query[b, i, j, k]:
                        continue
                    for v in range(V):
                        x0, x1, x2 = viewpoints[b, v, 0], viewpoints[b, v, 1], viewpoints[b, v, 2]
                        if occupied[b, i, j, k]:
                            hit = _occupied_seen(occupied, b, i, j, k, x0, x1, x2)
                        else:
                            hit = _unblocked(occupied, b, i, j, k, i + 0.5, j + 0.5, k + 0.5, x0, x1, x2)
                        if hit:
                            seen[b, i, j, k] = True
                            break
