"""Compiled (numba) mesh voxelisation on the CPU; no public names.

Imported lazily by :mod:`geo4g.voxels.voxelize` (``numba`` is optional: ``pip install geo4g[numba]``).
Vertices come in voxel units (float64 ``(V, 3)``, with ``(F, 3)`` int64 faces): voxel ``(i, j, k)``
is the closed box ``[i, i + 1] x [j, j + 1] x [k, k + 1]`` with centre ``(i, j, k) + 0.5``, and a
grid of ``(R0, R1, R2)`` voxels covers ``[0, R0] x [0, R1] x [0, R2]``.

Surface (``surface_voxels``): one triangle at a time, the separating axis test of
Akenine-Moller (box normals, triangle plane, the 9 edge x box-axis cross products) over the
voxels of the triangle's bounding box, arranged so that most of that box is never visited. The
column axis ``w`` is the largest component of the triangle's normal; per column ``(u, v)`` the
three axes ``edge x w`` (which do not depend on ``w``) are tested once, and the plane's slab
``|n . c - d| <= r`` cuts the column to at most four voxels (the slab is at most 3 voxels thick
along ``w``), found with a small slack for rounding; those get the exact plane test and the six
remaining edge axes. A triangle whose bounding box lies in one voxel marks it without a test.
Touching counts as overlap (closed boxes, closed triangles). Degenerate triangles (segments,
points) have a zero normal: the plane never separates and the whole column range is tested,
which is the exact test for a segment or a point.

Inside (``inside_voxels``): voxel centres inside the mesh by ray crossings along ``+z`` (the
``k`` axis). For every column centre ``(i + 0.5, j + 0.5)`` a triangle counts as crossed when
the centre, moved by the infinitesimal ``(eps, eps**2)``, lies inside its ``xy`` projection:
each edge's orientation is evaluated from its lexicographically smaller end (so two triangles
sharing an edge see exactly opposite values) and an exact zero is resolved by that
perturbation. Every ray therefore meets a closed mesh an even number of times, also through
edges and vertices. A crossing at height ``t`` counts for the centres above ``t``; its sign is
``+1`` where the triangle faces ``-z`` (the ray enters) and ``-1`` where it faces ``+z``. Per
column: ``parity`` rule, inside where the number of crossings below is odd; ``winding`` rule,
inside where their signed sum is not zero. A column whose total is odd (parity) or non-zero
(winding) crosses an open part of the mesh and fills nothing.

Threads: the kernels release the GIL; :func:`geo4g._threads.run_chunks` hands slices of the
triangle (or mesh) list to a pool of Python threads, a few slices per thread, as the
neighbour-search kernels do. Surface slices of one mesh may mark the same voxel from two
threads: each writes the byte 1, so the result does not depend on the order.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

#: Slack added on both sides of a column's slab before the exact tests, relative to the largest
#: coordinate magnitude in play (the grid size or the triangle's vertices, in voxel units): far
#: above the rounding of the slab's ends (a few ``1e-16`` of that magnitude), far below a voxel
#: for any grid that fits in memory.
SLAB_SLACK = 1e-9
#: Fewest triangles worth handing to another thread (about 0.4 ms of work at 64^3, well above the
#: cost of a hand-off on a busy machine).
MIN_CHUNK_TRIANGLES = 4096

@njit(cache=True, nogil=True, inline="always")
def _first_cell(lo, size):
    """First voxel index in ``[0, size)`` whose closed cell ``[c, c + 1]`` reaches ``lo``."""
    if lo <= 0.0:
        return 0
    if lo > size:
        return size
    return int(math.ceil(lo)) - 1


@njit(cache=True, nogil=True, inline="always")
def _last_cell(hi, size):
    """Last voxel index in ``[0, size)`` whose closed cell starts at or below ``hi`` (-1: none)."""
    if hi < 0.0:
        return -1
    if hi >= size - 1:
        return size - 1
    return int(math.floor(hi))


@njit(cache=True, nogil=True)
def surface_voxels(verts, faces, mesh_idx, dims, grid, t0, t1):
    """Mark in ``grid (B * R0 * R1 * R2,)`` uint8 every voxel whose closed box meets one of the triangles
    ``faces[t0:t1]`` (into ``verts (V, 3)`` float64 voxel units) of mesh ``mesh_idx[t]``; ``dims = (R0, R1, R2)``."""
    R = (dims[0], dims[1], dims[2])
    tri = np.empty((3, 3))
    stride = (dims[1] * dims[2], dims[2], 1)
    lo_idx = np.empty(3, np.int64)
    hi_idx = np.empty(3, np.int64)
    # Per edge m: the axes edge x unit_w (index m, over the coordinates (u, v)), edge x unit_u
    # (3 + m, over (v, w)) and edge x unit_v (6 + m, over (u, w)): the coefficients of those two
    # coordinates, the bounds of the triangle's projection and the box's radius.
    ca = np.empty(9)
    cb = np.empty(9)
    pmin = np.empty(9)
    pmax = np.empty(9)
    rad = np.empty(9)
    for t in range(t0, t1):
        b = mesh_idx[t]
        for c in range(3):
            for a in range(3):
                tri[c, a] = verts[faces[t, c], a]
        empty = False
        inside_one = True
        for a in range(3):
            mn = min(tri[0, a], min(tri[1, a], tri[2, a]))
            mx = max(tri[0, a], max(tri[1, a], tri[2, a]))
            lo_idx[a] = _first_cell(mn, R[a])
            hi_idx[a] = _last_cell(mx, R[a])
            empty = empty or lo_idx[a] > hi_idx[a]
            inside_one = inside_one and lo_idx[a] == hi_idx[a] and mn >= 0.0 and mx <= R[a]
        if empty:
            continue
        base_b = b * dims[0] * dims[1] * dims[2]
        if inside_one:
            # the bounding box, hence the triangle, lies in this one closed voxel
            grid[base_b + lo_idx[0] * stride[0] + lo_idx[1] * stride[1] + lo_idx[2]] = 1
            continue
        e0 = (tri[1, 0] - tri[0, 0], tri[1, 1] - tri[0, 1], tri[1, 2] - tri[0, 2])
        e1 = (tri[2, 0] - tri[1, 0], tri[2, 1] - tri[1, 1], tri[2, 2] - tri[1, 2])
        e2 = (tri[0, 0] - tri[2, 0], tri[0, 1] - tri[2, 1], tri[0, 2] - tri[2, 2])
        normal = (e0[1] * e1[2] - e0[2] * e1[1], e0[2] * e1[0] - e0[0] * e1[2], e0[0] * e1[1] - e0[1] * e1[0])
        an0, an1, an2 = abs(normal[0]), abs(normal[1]), abs(normal[2])
        w = 0 if an0 >= an1 and an0 >= an2 else (1 if an1 >= an2 else 2)
        u = (w + 1) % 3
        v = (w + 2) % 3
        nu, nv, nw = normal[u], normal[v], normal[w]
        d = normal[0] * tri[0, 0] + normal[1] * tri[0, 1] + normal[2] * tri[0, 2]
        rn = 0.5 * (an0 + an1 + an2)
        inv_nw = 1.0 / nw if nw != 0.0 else 0.0
        magnitude = max(R[0], max(R[1], R[2]))
        for c in range(3):
            for a in range(3):
                magnitude = max(magnitude, abs(tri[c, a]))
        slack = SLAB_SLACK * (1.0 + magnitude)
        for m in range(3):
            e = e0 if m == 0 else (e1 if m == 1 else e2)
            eu, ev, ew = e[u], e[v], e[w]
            ca[m], cb[m], rad[m] = ev, -eu, 0.5 * (abs(ev) + abs(eu))
            ca[3 + m], cb[3 + m], rad[3 + m] = ew, -ev, 0.5 * (abs(ew) + abs(ev))
            ca[6 + m], cb[6 + m], rad[6 + m] = -ew, eu, 0.5 * (abs(ew) + abs(eu))
        for m in range(9):
            first = u if m < 3 or m >= 6 else v
            second = v if m < 3 else w
            pa = ca[m] * tri[0, first] + cb[m] * tri[0, second]
            pb = ca[m] * tri[1, first] + cb[m] * tri[1, second]
            pc = ca[m] * tri[2, first] + cb[m] * tri[2, second]
            pmin[m] = min(pa, min(pb, pc))
            pmax[m] = max(pa, max(pb, pc))
        for cu in range(lo_idx[u], hi_idx[u] + 1):
            fu = cu + 0.5
            for cv in range(lo_idx[v], hi_idx[v] + 1):
                fv = cv + 0.5
                if _apart(ca, cb, pmin, pmax, rad, 0, 3, fu, fv):
                    continue
                w_lo, w_hi = lo_idx[w], hi_idx[w]
                base = nu * fu + nv * fv - d
                if nw != 0.0:
                    # the voxels whose centre lies in the plane's slab |base + nw * (c_w + 0.5)| <= rn,
                    # widened for rounding (each is then tested exactly)
                    a0 = (-rn - base) * inv_nw
                    a1 = (rn - base) * inv_nw
                    lo_c = min(a0, a1) - 0.5 - slack
                    hi_c = max(a0, a1) - 0.5 + slack
                    if lo_c > w_hi or hi_c < w_lo:
                        continue
                    if lo_c > w_lo:
                        w_lo = int(math.ceil(lo_c))
                    if hi_c < w_hi:
                        w_hi = int(math.floor(hi_c))
                row = base_b + cu * stride[u] + cv * stride[v]
                for cw in range(w_lo, w_hi + 1):
                    fw = cw + 0.5
                    if abs(base + nw * fw) > rn:
                        continue
                    if _apart(ca, cb, pmin, pmax, rad, 3, 6, fv, fw) or _apart(ca, cb, pmin, pmax, rad, 6, 9, fu, fw):
                        continue
                    grid[row + cw * stride[w]] = 1


@njit(cache=True, nogil=True, inline="always")
def _apart(ca, cb, pmin, pmax, rad, m0, m1, f, g):
    """Whether one of the axes ``m0:m1`` separates the triangle from the box centred at ``(f, g)`` in
    the two coordinates those axes depend on."""
    for m in range(m0, m1):
        q = ca[m] * f + cb[m] * g
        if pmin[m] - q > rad[m] or pmax[m] - q < -rad[m]:
            return True
    return False


@njit(cache=True, nogil=True, inline="always")
def _first_centre_above(t, size):
    """First voxel index in ``[0, size]`` whose centre ``k + 0.5`` lies above ``t`` (``size``: none)."""
    if t < 0.5:
        return 0
    if t >= size - 0.5:
        return size
    return int(math.floor(t - 0.5)) + 1


@njit(cache=True, nogil=True, inline="always")
def _edge_side(ax, ay, bx, by, px, py):
    """``(sign, value)`` of the orientation of ``(a, b, p)`` in the plane, evaluated from the
    lexicographically smaller end (so the edge read the other way gives exactly the negated value),
    a zero value resolved by moving ``p`` by ``(eps, eps**2)``; ``sign`` is 0 for a zero-length edge."""
    flip = 1
    if bx < ax or (bx == ax and by < ay):
        ax, ay, bx, by = bx, by, ax, ay
        flip = -1
    elif ax == bx and ay == by:
        return 0, 0.0
    value = (ax - px) * (by - py) - (ay - py) * (bx - px)
    if value > 0.0:
        sign = 1
    elif value < 0.0:
        sign = -1
    elif ay != by:
        sign = 1 if ay > by else -1
    else:
        sign = 1 if bx > ax else -1
    return sign * flip, value * flip


@njit(cache=True, nogil=True)
def _mesh_crossings(verts, faces, f0, f1, R0, R1, R2):
    """``(columns, starts, signs)`` of the crossings of the column rays ``(i + 0.5, j + 0.5, z)``
    with the triangles ``f0:f1``: column ``i * R1 + j``, the first ``k`` whose centre lies above
    the crossing (``R2`` when none does), ``+1`` entering / ``-1`` leaving."""
    cap = max(64, 2 * (f1 - f0))
    cols = np.empty(cap, np.int64)
    starts = np.empty(cap, np.int64)
    signs = np.empty(cap, np.int64)
    n = 0
    for f in range(f0, f1):
        a, b, c = faces[f, 0], faces[f, 1], faces[f, 2]
        x0, y0, z0 = verts[a, 0], verts[a, 1], verts[a, 2]
        x1, y1, z1 = verts[b, 0], verts[b, 1], verts[b, 2]
        x2, y2, z2 = verts[c, 0], verts[c, 1], verts[c, 2]
        i0 = _first_cell(min(x0, min(x1, x2)) + 0.5, R0)
        i1 = _last_cell(max(x0, max(x1, x2)) - 0.5, R0)
        j0 = _first_cell(min(y0, min(y1, y2)) + 0.5, R1)
        j1 = _last_cell(max(y0, max(y1, y2)) - 0.5, R1)
        zmin = min(z0, min(z1, z2))
        zmax = max(z0, max(z1, z2))
        for i in range(i0, i1 + 1):
            px = i + 0.5
            for j in range(j0, j1 + 1):
                py = j + 0.5
                s_a, w_a = _edge_side(x1, y1, x2, y2, px, py)
                if s_a == 0:
                    continue
                s_b, w_b = _edge_side(x2, y2, x0, y0, px, py)
                if s_b != s_a:
                    continue
                s_c, w_c = _edge_side(x0, y0, x1, y1, px, py)
                if s_c != s_a:
                    continue
                total = w_a + w_b + w_c
                t = (w_a * z0 + w_b * z1 + w_c * z2) / total if total != 0.0 else zmin
                t = min(max(t, zmin), zmax)
                if n == cap:
                    cap *= 2
                    cols = _grow(cols, cap)
                    starts = _grow(starts, cap)
                    signs = _grow(signs, cap)
                cols[n] = i * R1 + j
                starts[n] = _first_centre_above(t, R2)
                signs[n] = -s_a
                n += 1
    return cols[:n], starts[:n], signs[:n]


@njit(cache=True, nogil=True, inline="always")
def _grow(a, cap):
    out = np.empty(cap, a.dtype)
    out[:a.shape[0]] = a
    return out


@njit(cache=True, nogil=True)
def inside_voxels(verts, faces, face_start, dims, winding, grid, b0, b1):
    """Mark in ``grid (B, R0 * R1 * R2)`` uint8 the voxels of meshes ``b0:b1`` whose centre is inside
    (parity rule, or non-zero winding when ``winding``); mesh ``b`` is ``faces[face_start[b]:face_start[b + 1]]``
    into ``verts (V, 3)`` float64 voxel units."""
    R0, R1, R2 = dims[0], dims[1], dims[2]
    acc = np.zeros(R2 + 1, np.int64)
    for b in range(b0, b1):
        cols, starts, signs = _mesh_crossings(verts, faces, face_start[b], face_start[b + 1], R0, R1, R2)
        if cols.shape[0] == 0:
            continue
        # counting sort of the crossings by column
        head = np.zeros(R0 * R1 + 1, np.int64)
        for c in range(cols.shape[0]):
            head[cols[c] + 1] += 1
        for c in range(R0 * R1):
            head[c + 1] += head[c]
        order = np.empty(cols.shape[0], np.int64)
        cursor = head[:R0 * R1].copy()
        for c in range(cols.shape[0]):
            order[cursor[cols[c]]] = c
            cursor[cols[c]] += 1
        for col in range(R0 * R1):
            s0, s1 = head[col], head[col + 1]
            if s0 == s1:
                continue
            total = 0
            for s in range(s0, s1):
                c = order[s]
                acc[starts[c]] += signs[c]
                total += signs[c]
            open_column = total != 0 if winding else (total & 1) != 0
            if open_column:
                for s in range(s0, s1):
                    acc[starts[order[s]]] = 0
                continue
            level = 0
            row = col * R2
            for k in range(R2):
                level += acc[k]
                acc[k] = 0
                inside = level != 0 if winding else (level & 1) != 0
                if inside:
                    grid[b, row + k] = 1
            acc[R2] = 0
