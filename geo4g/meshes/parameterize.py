"""Surface parameterisation: Tutte embeddings, least-squares conformal maps and the flat-torus map.

Disk-like meshes (one boundary loop) are flattened by

- :func:`tutte_embedding`: the boundary goes to a convex polygon (circle or square, by arc
  length) and every interior vertex to the weighted average of its neighbours (Tutte 1963,
  Floater 1997/2003). With positive weights (``"uniform"``, ``"mean_value"``) the map is a
  bijection onto the polygon; ``"cot"`` gives the discrete harmonic map, which can fold where
  cotangent weights are negative.
- :func:`lscm`: least-squares conformal maps (Levy, Petitjean, Ray and Maillot 2002) with two
  pinned vertices, a sparse linear least-squares problem.

Closed genus-0 meshes are mapped to a flat torus by :func:`flat_torus_parameterization`, the
construction of Maron et al. 2017 ("Convolutional neural networks on surfaces via seamless toric
covers") with the orbifold Tutte embedding of Aigerman and Lipman 2015 of type (2,2,2,2): four cone
vertices, a cut through them, and a linear system whose solution tiles the plane seamlessly.
:func:`surface_to_torus_image` rasterises per-vertex functions onto a periodic image that a 2-D
CNN with circular padding can process, and :func:`torus_image_to_surface` brings image values
back to the vertices.

:func:`angle_distortion`, :func:`area_distortion` and :func:`flipped_faces` measure any of these maps.

Meshes are ``verts (V, 3)`` float and ``faces (F, 3)`` integer tensors, faces oriented
consistently. Sparse solves run with SciPy on the CPU in float64; results come back as tensors of
the dtype (float) and on the device of ``verts``. Cotangent and uniform weights come from
:mod:`geo4g.meshes.laplacian_matrices`.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Dict, List, NamedTuple, Optional, Tuple

import numpy as np
import torch

from geo4g.meshes.laplacian_matrices import DEGENERATE_FACTOR, cotangent_weights, sparse_to_scipy, stiffness_matrix
from geo4g.structures.checks import check_faces, check_finite, check_tensor, describe

__all__ = [
    "boundary_loops",
    "check_disk",
    "tutte_embedding",
    "lscm",
    "AngleDistortion",
    "angle_distortion",
    "area_distortion",
    "flipped_faces",
    "choose_cones",
    "FlatTorusMap",
    "flat_torus_parameterization",
    "surface_to_torus_image",
    "torus_image_to_surface",
]

WEIGHT_KINDS = ("uniform", "cot", "mean_value")
BOUNDARY_SHAPES = ("circle", "square")
#: Negative cotangent weights in the flat-torus map are raised to this fraction of the mean
#: absolute weight, so that every weight is positive and the map stays bijective.
COT_WEIGHT_FLOOR = 1e-3
#: Where the four cones land in the plane (torus coordinates, the torus is ``[0, 1)^2``): the cut
#: runs a -> b -> c -> d; ``b`` and ``c`` lie on the cut twice (original side, copy side).
CONE_POSITIONS = {
    "a": (0.5, 0.0), "b": (1.0, 0.0), "b_copy": (0.0, 0.0),
    "c": (1.0, 0.5), "c_copy": (0.0, 0.5), "d": (0.5, 0.5),
}
#: Seam transforms ``uv_copy = sign * uv_original + translation`` of the three cut segments:
#: a rotation by pi about ``a``, a translation by ``(-1, 0)``, a rotation by pi about ``d``.
SEAM_TRANSFORMS = ((-1.0, (1.0, 0.0)), (1.0, (-1.0, 0.0)), (-1.0, (1.0, 1.0)))


# --------------------------------------------------------------------------- input checks
def _faces_numpy(faces, name: str = "faces", num_verts: Optional[int] = None) -> np.ndarray:
    check_tensor(faces, name, ndim=2, last_dim=3, kind="int", shape_hint="(F, 3)")
    if faces.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one face, got shape {tuple(faces.shape)}")
    if num_verts is not None:
        check_faces(faces, name, num_verts)
    elif int(faces.min()) < 0:
        raise ValueError(f"{name} indices must be non-negative, got minimum {int(faces.min())}")
    f = faces.detach().cpu().numpy().astype(np.int64)
    repeated = (f[:, 0] == f[:, 1]) | (f[:, 1] == f[:, 2]) | (f[:, 2] == f[:, 0])
    if repeated.any():
        first = int(np.flatnonzero(repeated)[0])
        raise ValueError(f"{name} has {int(repeated.sum())} face(s) with a repeated vertex index (the first: face "
                         f"{first} = {f[first].tolist()}); remove them before parameterising")
    return f


def _mesh_input(verts, faces) -> Tuple[torch.Tensor, np.ndarray]:
    """``verts`` as CPU float64 and ``faces`` as an int64 array, after the shared checks."""
    check_tensor(verts, "verts", ndim=2, last_dim=3, kind="float", shape_hint="(V, 3)")
    check_finite(verts, "verts")
    check_tensor(faces, "faces", ndim=2, last_dim=3, kind="int", shape_hint="(F, 3)")
    if faces.device != verts.device:
        raise ValueError(f"faces must be on the device of verts ({verts.device}), got {faces.device}")
    f = _faces_numpy(faces, "faces", verts.shape[0])
    unused = np.setdiff1d(np.arange(verts.shape[0]), f.reshape(-1))
    if unused.size:
        raise ValueError(f"verts has {unused.size} vertex(es) that no face uses (the first: {int(unused[0])}); "
                         "they have no place in a parameterisation, remove them first")
    return verts.detach().cpu().double(), f


def _check_non_degenerate(verts64: torch.Tensor, f: np.ndarray, why: str) -> None:
    """Raise when a face has (numerically) zero area, the rule of :mod:`geo4g.meshes.laplacian_matrices`."""
    p = verts64[torch.from_numpy(f)]
    e1, e2 = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
    double_area = torch.linalg.cross(e1, e2, dim=-1).norm(dim=-1)
    longest = torch.stack([(e1 * e1).sum(-1), (e2 * e2).sum(-1), ((e2 - e1) ** 2).sum(-1)], 1).amax(1)
    bad = double_area <= DEGENERATE_FACTOR * torch.finfo(torch.float64).eps * longest
    if bool(bad.any()):
        first = int(bad.nonzero()[0])
        raise ValueError(f"faces has {int(bad.sum())} degenerate face(s) of zero area (the first: face {first} = "
                         f"{f[first].tolist()}); {why}")


# --------------------------------------------------------------------------- topology
def _halfedge_lookup(f: np.ndarray) -> Tuple[np.ndarray, np.ndarray, int]:
    """Sorted half-edge keys ``i * n + j`` and the face of each; raises if a half-edge repeats."""
    n = int(f.max()) + 1
    keys = (f * n + f[:, [1, 2, 0]]).reshape(-1)
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    dup = np.flatnonzero(sorted_keys[1:] == sorted_keys[:-1])
    if dup.size:
        key = int(sorted_keys[dup[0]])
        f1, f2 = int(order[dup[0]]) // 3, int(order[dup[0] + 1]) // 3
        raise ValueError(f"faces: the directed edge ({key // n}, {key % n}) appears in faces {f1} and {f2}: the faces "
                         "are not consistently oriented, or the edge is shared by more than two faces")
    return sorted_keys, order // 3, n


def _find_halfedges(sorted_keys: np.ndarray, key_face: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Face holding each half-edge key, ``-1`` where none does."""
    pos = np.searchsorted(sorted_keys, keys).clip(max=max(sorted_keys.size - 1, 0))
    found = sorted_keys[pos] == keys
    return np.where(found, key_face[pos], -1)


def _boundary_loops_np(f: np.ndarray) -> List[np.ndarray]:
    sorted_keys, key_face, n = _halfedge_lookup(f)
    src, dst = f.reshape(-1), f[:, [1, 2, 0]].reshape(-1)
    open_edge = _find_halfedges(sorted_keys, key_face, dst * n + src) < 0
    bsrc, bdst = src[open_edge], dst[open_edge]
    if bsrc.size == 0:
        return []
    starts, counts = np.unique(bsrc, return_counts=True)
    if (counts > 1).any():
        v = int(starts[counts > 1][0])
        raise ValueError(f"faces: vertex {v} lies on {int(counts[counts > 1][0])} boundary fans (a non-manifold "
                         "vertex where separate pieces of surface touch); split it before parameterising")
    nxt = np.full(n, -1, dtype=np.int64)
    nxt[bsrc] = bdst
    seen = np.zeros(n, dtype=bool)
    loops = []
    for start in starts:
        if seen[start]:
            continue
        loop = [int(start)]
        seen[start] = True
        v = int(nxt[start])
        while v != start:
            loop.append(v)
            seen[v] = True
            v = int(nxt[v])
        loops.append(np.asarray(loop, dtype=np.int64))
    loops.sort(key=lambda loop: -loop.size)
    return loops


def _vertex_fans(f: np.ndarray) -> np.ndarray:
    """Number of separate face fans (connected corner groups) around each vertex that faces use."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    sorted_keys, key_face, n = _halfedge_lookup(f)
    F = f.shape[0]
    corner_vertex = f.reshape(-1)
    previous = f[:, [2, 0, 1]].reshape(-1)
    # Across the edge (v, previous corner) lies the face holding v -> previous: the next face around v.
    nbr_face = _find_halfedges(sorted_keys, key_face, corner_vertex * n + previous)
    has = nbr_face >= 0
    src = np.flatnonzero(has)
    nbr_pos = np.argmax(f[nbr_face[has]] == corner_vertex[has][:, None], axis=1)
    dst = nbr_face[has] * 3 + nbr_pos
    graph = coo_matrix((np.ones(src.size), (src, dst)), shape=(3 * F, 3 * F))
    _, label = connected_components(graph, directed=False)
    pairs = _unique_pairs(np.stack([corner_vertex, label], 1))
    return np.bincount(pairs[:, 0], minlength=n)


def _unique_pairs(pairs: np.ndarray, return_inverse: bool = False):
    """Unique rows of a ``(P, 2)`` non-negative integer array (sorted), through one int64 key per row."""
    base = int(pairs.max()) + 1 if pairs.size else 1
    keys, inverse = np.unique(pairs[:, 0] * base + pairs[:, 1], return_inverse=True)
    rows = np.stack([keys // base, keys % base], 1)
    return (rows, inverse.reshape(-1)) if return_inverse else rows


def _mesh_edges(f: np.ndarray) -> np.ndarray:
    """``(E, 2)`` undirected edges ``i < j`` of the faces."""
    return _unique_pairs(np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1))


class _Topology(NamedTuple):
    components: int
    euler: int
    loops: List[np.ndarray]


def _topology(f: np.ndarray) -> _Topology:
    """Connected components, Euler characteristic and boundary loops of an oriented manifold mesh."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    loops = _boundary_loops_np(f)
    fans = _vertex_fans(f)
    if (fans > 1).any():
        v = int(np.flatnonzero(fans > 1)[0])
        raise ValueError(f"faces: vertex {v} joins {int(fans[v])} separate fans of faces (a non-manifold vertex); "
                         "split it before parameterising")
    used = np.unique(f)
    edges = _mesh_edges(f)
    n = int(f.max()) + 1
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    comps = connected_components(graph, directed=False)[1]
    return _Topology(int(np.unique(comps[used]).size), int(used.size - len(edges) + f.shape[0]), loops)


def _topology_words(top: _Topology) -> str:
    return (f"{top.components} connected component(s), {len(top.loops)} boundary loop(s) and Euler "
            f"characteristic {top.euler}")


def boundary_loops(faces: torch.Tensor) -> List[torch.Tensor]:
    """The boundary loops of a triangle mesh, each an ordered cycle of vertex indices.

    A boundary edge belongs to one face only. Each loop follows the faces' orientation (the
    surface lies to the left of the walk: counter-clockwise around a disk whose faces are
    counter-clockwise) and starts at its smallest vertex index; loops come longest first.

    Args:
        faces: ``(F, 3)`` integer, consistently oriented.

    Returns:
        A list of ``(L_i,)`` long tensors on the device of ``faces``; empty for a closed mesh.

    Raises:
        ValueError: no faces, negative indices, a face with a repeated vertex, a directed edge used
            twice (inconsistent orientation or an edge in more than two faces), or a vertex on
            several boundary fans (non-manifold).
    """
    f = _faces_numpy(faces)
    return [torch.from_numpy(loop).to(faces.device) for loop in _boundary_loops_np(f)]


def check_disk(faces: torch.Tensor, name: str = "faces") -> torch.Tensor:
    """Check that a mesh is a topological disk and return its boundary loop.

    A disk is one connected, manifold, consistently oriented component with one boundary loop and
    Euler characteristic ``V - E + F = 1`` (``V`` counts the vertices that faces use).

    Args:
        faces: ``(F, 3)`` integer.
        name: the argument name used in error messages.

    Returns:
        ``loop: (L,)`` long, the boundary loop as :func:`boundary_loops` orders it.

    Raises:
        ValueError: the mesh is not a disk; the message says how many components, boundary loops
            and which Euler characteristic it found.
    """
    f = _faces_numpy(faces, name)
    top = _topology(f)
    if top.components != 1 or len(top.loops) != 1 or top.euler != 1:
        if not top.loops:
            hint = "a closed surface has no boundary: cut it open first"
        elif top.components != 1:
            hint = "parameterise each connected component on its own"
        elif len(top.loops) > 1:
            hint = "an annulus or a disk with holes: fill the holes or cut it to a disk"
        else:
            hint = "a surface with handles: cut it to a disk"
        raise ValueError(f"{name} must form a disk (one connected component, one boundary loop, Euler "
                         f"characteristic 1), got {_topology_words(top)} ({hint})")
    return torch.from_numpy(top.loops[0]).to(faces.device)


# --------------------------------------------------------------------------- weights and geometry
def _corner_angles(points: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """``(F, 3)`` unsigned corner angles in radians of 2-D or 3-D triangles."""
    p = points[faces]
    to_next = p[:, [1, 2, 0]] - p
    to_prev = p[:, [2, 0, 1]] - p
    dot = (to_next * to_prev).sum(-1)
    if p.shape[-1] == 3:
        cross = torch.linalg.cross(to_next, to_prev, dim=-1).norm(dim=-1)
    else:
        cross = (to_next[..., 0] * to_prev[..., 1] - to_next[..., 1] * to_prev[..., 0]).abs()
    return torch.atan2(cross, dot)


def _mean_value_weights(verts64: torch.Tensor, faces: torch.Tensor):
    """Floater's mean-value weights ``w_ij = (tan(a/2) + tan(b/2)) / |x_i - x_j|`` (not symmetric)."""
    from scipy.sparse import csr_matrix

    half_tan = torch.tan(_corner_angles(verts64, faces) / 2)
    corner = faces.reshape(-1)
    rows, cols, vals = [], [], []
    for shift in (1, 2):
        other = faces[:, [(k + shift) % 3 for k in range(3)]].reshape(-1)
        length = (verts64[corner] - verts64[other]).norm(dim=-1)
        rows.append(corner)
        cols.append(other)
        vals.append(half_tan.reshape(-1) / length)
    n = verts64.shape[0]
    return csr_matrix((torch.cat(vals).numpy(), (torch.cat(rows).numpy(), torch.cat(cols).numpy())), shape=(n, n))


def _weight_matrix(verts64: torch.Tensor, f: np.ndarray, kind: str, floor_negative: bool):
    """SciPy CSR ``W`` with ``W[i, j]`` the weight of neighbour ``j`` in vertex ``i``'s average."""
    faces = torch.from_numpy(f)
    if kind == "mean_value":
        return _mean_value_weights(verts64, faces)
    if kind == "uniform":
        L = sparse_to_scipy(stiffness_matrix(verts64, faces, kind="uniform"))
        W = -L
        W.setdiag(0)
    else:
        W = sparse_to_scipy(cotangent_weights(verts64, faces))
        if floor_negative:
            # Every edge is stored (zero weights too), so the floor reaches right-angled diagonals as well.
            W.data = np.maximum(W.data, COT_WEIGHT_FLOOR * np.abs(W.data).mean())
    W.eliminate_zeros()
    return W


def _laplacian(W):
    """``L = D - W`` with ``D`` the row sums: ``(L u)_i = sum_j W_ij (u_i - u_j)``."""
    from scipy.sparse import diags

    return (diags(np.asarray(W.sum(axis=1)).ravel()) - W).tocsr()


def _face_gradients(verts64: torch.Tensor, faces: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-face gradients of the hat functions in a local orthonormal frame.

    Returns ``G: (F, 2, 3)`` (``G[f, :, k]`` the gradient of corner ``k``'s hat function) and the
    face areas ``(F,)``; a zero-area face gives ``G = 0`` and area 0.
    """
    p = verts64[faces]
    e1, e2 = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
    normal = torch.linalg.cross(e1, e2, dim=-1)
    double_area = normal.norm(dim=-1)
    len1 = e1.norm(dim=-1)
    ok = (double_area > 0) & (len1 > 0)
    safe_area = torch.where(ok, double_area, torch.ones_like(double_area))
    safe_len = torch.where(len1 > 0, len1, torch.ones_like(len1))
    x_axis = e1 / safe_len[:, None]
    y_axis = torch.linalg.cross(normal / safe_area[:, None], x_axis, dim=-1)
    q = torch.zeros(p.shape[0], 3, 2, dtype=p.dtype)
    q[:, 1, 0] = len1
    q[:, 2, 0] = (e2 * x_axis).sum(-1)
    q[:, 2, 1] = (e2 * y_axis).sum(-1)
    opposite = q[:, [2, 0, 1]] - q[:, [1, 2, 0]]  # edge from corner k+1 to k+2
    grad = torch.stack([-opposite[..., 1], opposite[..., 0]], 1) / safe_area[:, None, None]
    return torch.where(ok[:, None, None], grad, torch.zeros_like(grad)), torch.where(ok, double_area / 2, 0.0)


def _to_output(uv: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(uv)).to(device=like.device, dtype=like.dtype)


# --------------------------------------------------------------------------- Tutte
def _boundary_polygon(verts64: torch.Tensor, loop: np.ndarray, shape: str) -> np.ndarray:
    """Positions of the loop's vertices on the unit circle or the square ``[-1, 1]^2`` by arc length."""
    p = verts64[torch.from_numpy(loop)].numpy()
    seg = np.linalg.norm(np.roll(p, -1, axis=0) - p, axis=1)
    if seg.sum() <= 0:
        raise ValueError("the boundary loop has zero length: all its vertices coincide")
    # Zero-length boundary edges would stack two boundary vertices on one point; spread them evenly.
    seg = np.where(seg > 0, seg, seg.sum() * 1e-9)
    t = np.concatenate([[0.0], np.cumsum(seg)[:-1]]) / seg.sum()
    if shape == "circle":
        return np.stack([np.cos(2 * np.pi * t), np.sin(2 * np.pi * t)], 1)
    L = loop.size
    if L < 4:
        raise ValueError(f"boundary='square' needs at least 4 boundary vertices (one per corner), got {L}")
    # The vertices nearest the quarter points of the arc length become the square's corners.
    corners = [0] + [int(np.argmin(np.abs(t - q))) for q in (0.25, 0.5, 0.75)]
    for k in range(1, 4):
        corners[k] = max(corners[k], corners[k - 1] + 1)
    corners[3] = min(corners[3], L - 1)
    for k in (2, 1):
        corners[k] = min(corners[k], corners[k + 1] - 1)
    square = np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
    out = np.empty((L, 2))
    ends = corners + [L]
    for k in range(4):
        idx = np.arange(ends[k], ends[k + 1])
        cum = np.concatenate([[0.0], np.cumsum(seg[idx])])
        s = cum[:-1] / cum[-1]
        out[idx] = (1 - s)[:, None] * square[k] + s[:, None] * square[(k + 1) % 4]
    return out


def tutte_embedding(verts: torch.Tensor, faces: torch.Tensor, weights: str = "uniform",
                    boundary: str = "circle") -> torch.Tensor:
    """Flatten a disk-like mesh with fixed convex boundary: Tutte's embedding and its weighted variants.

    The boundary loop goes to a convex polygon with spacing proportional to the 3-D boundary edge
    lengths, starting at the loop's first vertex (see :func:`boundary_loops`):

    - ``boundary="circle"``: the unit circle, counter-clockwise from ``(1, 0)``;
    - ``boundary="square"``: the square ``[-1, 1]^2``, counter-clockwise from the corner
      ``(-1, -1)``; the four boundary vertices nearest the quarter points of the arc length are
      the corners, each side is filled by arc length.

    Each interior vertex is then the weighted average of its neighbours, ``sum_j w_ij (u_i - u_j)
    = 0``, one sparse linear solve:

    - ``"uniform"``: ``w_ij = 1`` (Tutte), connectivity only;
    - ``"mean_value"``: ``w_ij = (tan(a_ij / 2) + tan(b_ij / 2)) / |x_i - x_j|`` with ``a_ij, b_ij``
      the angles at ``i`` beside the edge (Floater 2003), not symmetric, reproduces planar meshes;
    - ``"cot"``: ``w_ij = (cot a + cot b) / 2`` (:func:`~geo4g.meshes.laplacian_matrices.cotangent_weights`),
      the discrete harmonic map (``igl.harmonic`` with ``k=1``), reproduces planar meshes.

    With positive weights (``"uniform"``, ``"mean_value"``) the map is a bijection onto the polygon
    (Tutte, Floater): no face flips. Cotangent weights are negative on edges whose opposite angles
    sum to more than pi (obtuse triangles), and then faces may fold over. On the square a face whose
    three corners lie on one side has zero area (it cannot be helped with that boundary); the circle
    has no such faces.

    Args:
        verts: ``(V, 3)`` float, finite; every vertex must be used by a face.
        faces: ``(F, 3)`` integer, consistently oriented, a disk (see :func:`check_disk`).
        weights: ``"uniform"``, ``"mean_value"`` or ``"cot"``.
        boundary: ``"circle"`` or ``"square"``.

    Returns:
        ``uv: (V, 2)`` with the dtype and device of ``verts``; counter-clockwise faces map to
        counter-clockwise triangles.

    Raises:
        ValueError: a bad shape, NaN, unused vertices, a mesh that is not a disk, a face with a
            repeated vertex, or (for ``"cot"``/``"mean_value"``) a zero-area face.
    """
    from scipy.sparse.linalg import spsolve

    if weights not in WEIGHT_KINDS:
        raise ValueError(f"weights must be one of {WEIGHT_KINDS}, got {weights!r}")
    if boundary not in BOUNDARY_SHAPES:
        raise ValueError(f"boundary must be one of {BOUNDARY_SHAPES}, got {boundary!r}")
    verts64, f = _mesh_input(verts, faces)
    loop = check_disk(faces).cpu().numpy()
    if weights != "uniform":
        _check_non_degenerate(verts64, f, f"{weights!r} weights need the angles of every face (use "
                                          "weights='uniform', which needs connectivity only)")
    V = verts64.shape[0]
    uv = np.zeros((V, 2))
    uv[loop] = _boundary_polygon(verts64, loop, boundary)
    interior = np.ones(V, dtype=bool)
    interior[loop] = False
    if interior.any():
        L = _laplacian(_weight_matrix(verts64, f, weights, floor_negative=False))
        inner = np.flatnonzero(interior)
        rhs = -(L[inner][:, loop] @ uv[loop])
        uv[inner] = np.asarray(spsolve(L[inner][:, inner].tocsc(), rhs)).reshape(-1, 2)
    return _to_output(uv, verts)


# --------------------------------------------------------------------------- LSCM
def _farthest_pair(points: torch.Tensor) -> Tuple[int, int]:
    """The two points farthest apart (exact, in row blocks so memory stays ``O(block * N)``)."""
    best, pair = -1.0, (0, 1)
    for start in range(0, points.shape[0], 1024):
        d = torch.cdist(points[start:start + 1024], points)
        flat = int(d.argmax())
        if float(d.reshape(-1)[flat]) > best:
            best = float(d.reshape(-1)[flat])
            pair = (start + flat // points.shape[0], flat % points.shape[0])
    return pair


def lscm(verts: torch.Tensor, faces: torch.Tensor, pinned: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Least-squares conformal map of a disk-like mesh (Levy et al. 2002).

    Minimises the conformal energy ``sum_f area_f |grad u_f - J grad v_f|^2`` (``J`` the rotation by
    90 degrees in each face's plane: the Cauchy-Riemann equations, whose solutions keep
    orientation) over piecewise-linear ``(u, v)``, with two vertices pinned: ``pinned[0]`` at
    ``(0, 0)`` and ``pinned[1]`` at ``(|x_1 - x_0|, 0)``, so the map keeps the 3-D scale along that
    chord. The energy's rows form a sparse ``(2F, 2V)`` matrix; its least-squares solution comes
    from the normal equations (one sparse LU solve). This is the pinned formulation of the paper
    (also ``igl.lscm``), not the spectral variant of Mullen et al. 2008.

    A mesh that is flat already is reproduced up to a similarity (zero energy). LSCM is not
    guaranteed free of flips or of global overlaps, but flips are rare on well-shaped meshes.

    Args:
        verts: ``(V, 3)`` float, finite; every vertex used by a face.
        faces: ``(F, 3)`` integer, consistently oriented, a disk (see :func:`check_disk`), no
            zero-area face.
        pinned: ``(2,)`` integer, two distinct vertices to pin (any two; boundary vertices work
            best). Default: the two boundary vertices farthest apart in 3-D.

    Returns:
        ``uv: (V, 2)`` with the dtype and device of ``verts``.

    Raises:
        ValueError: bad shapes, NaN, a mesh that is not a disk, a zero-area face, or bad ``pinned``.
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.linalg import spsolve

    verts64, f = _mesh_input(verts, faces)
    loop = check_disk(faces).cpu().numpy()
    _check_non_degenerate(verts64, f, "the conformal energy needs every face's angles")
    V = verts64.shape[0]
    if pinned is None:
        i, j = _farthest_pair(verts64[torch.from_numpy(loop)])
        pin = np.array([loop[i], loop[j]], dtype=np.int64)
    else:
        check_tensor(pinned, "pinned", ndim=1, kind="int", shape_hint="(2,)")
        pin = pinned.detach().cpu().numpy().astype(np.int64)
        if pin.shape != (2,) or pin[0] == pin[1] or pin.min() < 0 or pin.max() >= V:
            raise ValueError(f"pinned must hold two distinct vertex indices in [0, {V}), got {pin.tolist()}")
    ft = torch.from_numpy(f)
    grad, area = _face_gradients(verts64, ft)
    scale = area.sqrt()[:, None]
    gx, gy = (grad[:, 0] * scale).numpy(), (grad[:, 1] * scale).numpy()
    F = f.shape[0]
    row_cr1 = np.repeat(np.arange(F), 3)
    row_cr2 = row_cr1 + F
    cols = f.reshape(-1)
    # Rows: u_x - v_y = 0 and u_y + v_x = 0 per face; columns: u (V), then v (V).
    rows = np.concatenate([row_cr1, row_cr1, row_cr2, row_cr2])
    columns = np.concatenate([cols, cols + V, cols, cols + V])
    values = np.concatenate([gx.reshape(-1), -gy.reshape(-1), gy.reshape(-1), gx.reshape(-1)])
    A = csr_matrix((values, (rows, columns)), shape=(2 * F, 2 * V)).tocsc()
    chord = float((verts64[pin[1]] - verts64[pin[0]]).norm())
    fixed_cols = np.array([pin[0], pin[1], pin[0] + V, pin[1] + V])
    fixed_vals = np.array([0.0, chord, 0.0, 0.0])
    free_mask = np.ones(2 * V, dtype=bool)
    free_mask[fixed_cols] = False
    free_cols = np.flatnonzero(free_mask)
    A_free = A[:, free_cols]
    rhs = -(A[:, fixed_cols] @ fixed_vals)
    x = np.zeros(2 * V)
    x[fixed_cols] = fixed_vals
    x[free_cols] = spsolve((A_free.T @ A_free).tocsc(), A_free.T @ rhs)
    return _to_output(np.stack([x[:V], x[V:]], 1), verts)


# --------------------------------------------------------------------------- distortion
class AngleDistortion(NamedTuple):
    """Per-face angle distortion of a parameterisation.

    Attributes:
        conformal: ``(F,)`` ``sigma_1 / sigma_2 >= 1``, the ratio of the singular values of the
            face's Jacobian (3-D face plane -> uv plane); 1 is conformal (similarity), ``inf`` where
            the uv or 3-D face has zero area.
        angle_error: ``(F,)`` mean over the face's three corners of ``|angle_3d - angle_uv|`` in degrees.
    """

    conformal: torch.Tensor
    angle_error: torch.Tensor


def _distortion_input(verts, faces, uv) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    check_tensor(verts, "verts", ndim=2, last_dim=3, kind="float", shape_hint="(V, 3)")
    check_tensor(uv, "uv", ndim=2, last_dim=2, kind="float", shape_hint="(V, 2)")
    if uv.shape[0] != verts.shape[0]:
        raise ValueError(f"uv must have one row per vertex ({verts.shape[0]}), got shape {tuple(uv.shape)}")
    if uv.device != verts.device or faces.device != verts.device:
        raise ValueError(f"verts, faces and uv must share one device, got {verts.device}, {faces.device}, {uv.device}")
    check_finite(verts, "verts")
    check_finite(uv, "uv")
    check_faces(faces, "faces", verts.shape[0])
    return verts.detach().double(), faces.long(), uv.detach().double()


def angle_distortion(verts: torch.Tensor, faces: torch.Tensor, uv: torch.Tensor) -> AngleDistortion:
    """Per-face angle distortion of a map from a triangle mesh to the plane.

    Args:
        verts: ``(V, 3)`` float.
        faces: ``(F, 3)`` integer.
        uv: ``(V, 2)`` float, the vertices' positions in the plane (any of the maps here, or a cut
            mesh's ``verts[vertex_map]`` with :class:`FlatTorusMap` ``uv``).

    Returns:
        :class:`AngleDistortion` of ``(F,)`` float64 tensors on the device of ``verts``. Corner
        angles are unsigned, so a flipped face can have no angle error: count flips with
        :func:`flipped_faces`. A zero-area face (3-D or uv) has ``conformal = inf``.

    Raises:
        TypeError / ValueError: bad shapes or dtypes, NaN, indices out of range, mixed devices.
    """
    verts64, faces, uv64 = _distortion_input(verts, faces, uv)
    grad, area = _face_gradients(verts64.cpu(), faces.cpu())
    jacobian = uv64.cpu()[faces.cpu()].transpose(1, 2) @ grad.transpose(1, 2)
    sigma = torch.linalg.svdvals(jacobian).to(uv64.device)
    degenerate = (sigma[:, 1] <= 0) | (area <= 0).to(sigma.device)
    conformal = torch.where(degenerate, torch.full_like(sigma[:, 0], math.inf),
                            sigma[:, 0] / torch.where(degenerate, torch.ones_like(sigma[:, 1]), sigma[:, 1]))
    error = (_corner_angles(verts64, faces) - _corner_angles(uv64, faces)).abs().mean(1) * (180 / math.pi)
    return AngleDistortion(conformal, error)


def area_distortion(verts: torch.Tensor, faces: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Per-face area distortion: ``(area_uv / total_uv) / (area_3d / total_3d)``.

    1 means the face keeps its share of the total area; above 1 it is magnified in the plane,
    below 1 shrunk. Flipped faces count by their unsigned area.

    Args:
        verts: ``(V, 3)`` float; faces: ``(F, 3)`` integer; uv: ``(V, 2)`` float.

    Returns:
        ``(F,)`` float64 on the device of ``verts``; ``inf`` for a face of zero 3-D area (``nan``
        when its uv area is zero too), and all zeros when every uv face has zero area.

    Raises:
        TypeError / ValueError: as :func:`angle_distortion`.
    """
    verts64, faces, uv64 = _distortion_input(verts, faces, uv)
    p = verts64[faces]
    area3 = torch.linalg.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0], dim=-1).norm(dim=-1)
    area2 = _signed_double_areas(uv64, faces).abs()
    total2 = area2.sum()
    share2 = area2 / total2 if float(total2) > 0 else area2
    return share2 / (area3 / area3.sum())


def _signed_double_areas(uv: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    q = uv[faces]
    e1, e2 = q[:, 1] - q[:, 0], q[:, 2] - q[:, 0]
    return e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]


def flipped_faces(faces: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Faces whose uv triangle is clockwise (negative signed area): folds of the map.

    Faces are counted against the counter-clockwise orientation that every map in this module
    gives a consistently oriented mesh. A uv triangle of exactly zero area is not flipped.

    Args:
        faces: ``(F, 3)`` integer; uv: ``(V, 2)`` float.

    Returns:
        ``(F,)`` bool on the device of ``uv``; ``flipped_faces(...).sum()`` is the flip count.
    """
    check_tensor(uv, "uv", ndim=2, last_dim=2, kind="float", shape_hint="(V, 2)")
    check_finite(uv, "uv")
    check_faces(faces, "faces", uv.shape[0])
    return _signed_double_areas(uv.detach().double(), faces.long().to(uv.device)) < 0


# --------------------------------------------------------------------------- flat torus
@dataclass
class FlatTorusMap:
    """A seamless map of a closed genus-0 mesh onto the flat torus ``[0, 1)^2``.

    The sphere is cut along a path through the cones ``a -> b -> c -> d`` into a disk (the *cut
    mesh*: path vertices other than ``a`` and ``d`` appear twice). Its uv image ``D`` lies about
    the rectangle ``[0, 1] x [0, 0.5]`` with the cones at :data:`CONE_POSITIONS`; ``D`` and its
    copy rotated by pi about ``(0.5, 0.5)`` tile the torus ``[0, 1)^2`` (period 1 in ``u`` and
    ``v``), so the torus covers the surface twice, and the whole plane is tiled by rotations by pi
    about the points of ``(1/2) Z^2`` (the (2,2,2,2) orbifold group).

    Attributes:
        uv: ``(N, 2)`` uv of the cut mesh's vertices (dtype and device of the input ``verts``).
        faces: ``(F, 3)`` long, the cut mesh's faces, in the order of the input faces.
        vertex_map: ``(N,)`` long, the input vertex of each cut vertex; the first ``V`` cut vertices
            are the input vertices themselves (``vertex_map[:V] = arange(V)``), copies follow.
        cones: ``(4,)`` long, the input vertices ``a, b, c, d``.
        cut_path: ``(K,)`` long, the input vertices along the cut from ``a`` to ``d``.
        seam_pairs: ``(P, 2)`` long, cut vertices ``(original, copy)`` for every cut vertex
            duplicated by the cut (the path's inner vertices, ``b`` and ``c`` included).
        seam_signs: ``(P,)`` and ``seam_translations: (P, 2)``: each pair satisfies
            ``uv[copy] = sign * uv[original] + translation`` (:data:`SEAM_TRANSFORMS`).
        weights: the weight kind used.
    """

    uv: torch.Tensor
    faces: torch.Tensor
    vertex_map: torch.Tensor
    cones: torch.Tensor
    cut_path: torch.Tensor
    seam_pairs: torch.Tensor
    seam_signs: torch.Tensor
    seam_translations: torch.Tensor
    weights: str
    _rasters: Dict[Tuple[int, str], Tuple[torch.Tensor, torch.Tensor]] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    @property
    def num_verts(self) -> int:
        """``V``, the number of vertices of the input mesh."""
        return self.vertex_map.shape[0] - self.seam_pairs.shape[0]


def _check_sphere(f: np.ndarray) -> None:
    top = _topology(f)
    if top.components != 1 or top.loops or top.euler != 2:
        if top.components != 1:
            hint = "map each connected component (part) on its own"
        elif top.loops:
            hint = "an open surface: close its holes first"
        else:
            hint = f"a closed surface of genus {(2 - top.euler) // 2}"
        raise ValueError("flat_torus_parameterization needs a closed, connected, genus-0 mesh (no boundary, one "
                         f"component, Euler characteristic 2), got {_topology_words(top)} ({hint})")


def choose_cones(verts: torch.Tensor) -> torch.Tensor:
    """Four well-spread cone vertices for :func:`flat_torus_parameterization`.

    Rule: farthest-point sampling by Euclidean distance, starting at the vertex farthest from the
    vertex centroid (the lowest index among ties), then the order ``a, b, c, d`` of the four
    that makes the polyline ``a-b-c-d`` shortest (the cut follows it), first cone the lower index.

    Args:
        verts: ``(V, 3)`` float, ``V >= 4``.

    Returns:
        ``(4,)`` long on the device of ``verts``.
    """
    check_tensor(verts, "verts", ndim=2, last_dim=3, kind="float", shape_hint="(V, 3)")
    check_finite(verts, "verts")
    if verts.shape[0] < 4:
        raise ValueError(f"verts must hold at least 4 vertices to choose 4 cones, got {verts.shape[0]}")
    p = verts.detach().cpu().double()
    chosen = [int((p - p.mean(0)).norm(dim=1).argmax())]
    dist = (p - p[chosen[0]]).norm(dim=1)
    for _ in range(3):
        chosen.append(int(dist.argmax()))
        dist = torch.minimum(dist, (p - p[chosen[-1]]).norm(dim=1))
    pts = p[chosen]

    def length(order):
        return sum(float((pts[order[k + 1]] - pts[order[k]]).norm()) for k in range(3))

    orders = [o for o in itertools.permutations(range(4)) if chosen[o[0]] < chosen[o[3]]]
    best = min(orders, key=lambda o: (round(length(o), 12), [chosen[k] for k in o]))
    return torch.tensor([chosen[k] for k in best], dtype=torch.long, device=verts.device)


def _cut_path(verts64: torch.Tensor, f: np.ndarray, cones: np.ndarray) -> Tuple[np.ndarray, List[int]]:
    """Shortest edge paths a->b, b->c, c->d, each avoiding the others' vertices: one simple path.

    Returns the path (input vertex ids) and the positions of ``b`` and ``c`` in it.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import dijkstra

    V = verts64.shape[0]
    edges = _mesh_edges(f)
    lengths = (verts64[torch.from_numpy(edges[:, 0])] - verts64[torch.from_numpy(edges[:, 1])]).norm(dim=1).numpy()
    # Coincident vertices give zero-length edges, which SciPy's sparse graphs would drop.
    lengths = np.maximum(lengths, 1e-12 * max(float(lengths.max()), 1e-300))
    path = [int(cones[0])]
    blocked = np.zeros(V, dtype=bool)
    positions = []
    for k in range(3):
        src, dst = int(cones[k]), int(cones[k + 1])
        blocked[:] = False
        blocked[path] = True
        blocked[cones[k + 2:]] = True
        blocked[src] = False
        keep = ~(blocked[edges[:, 0]] | blocked[edges[:, 1]])
        e, w = edges[keep], lengths[keep]
        graph = coo_matrix((w, (e[:, 0], e[:, 1])), shape=(V, V)).tocsr()
        dist, pred = dijkstra(graph, directed=False, indices=src, return_predecessors=True)
        if not np.isfinite(dist[dst]):
            raise ValueError(f"cones: no edge path joins cone {src} to cone {dst} without crossing the cut made so "
                             f"far ({len(path)} vertices); choose other cones or another order")
        seg = [dst]
        while seg[-1] != src:
            seg.append(int(pred[seg[-1]]))
        path.extend(reversed(seg[:-1]))
        positions.append(len(path) - 1)
    return np.asarray(path, dtype=np.int64), positions[:2]


def _cut_open(f: np.ndarray, path: np.ndarray, V: int) -> Tuple[np.ndarray, np.ndarray]:
    """Cut a closed mesh along a simple edge path into a disk.

    Faces left of the path (those holding a half-edge ``path[i] -> path[i+1]``, and around each inner
    vertex every face met turning counter-clockwise from there to the previous path vertex) keep the
    input vertices; the others get a copy ``V + i - 1`` of each inner path vertex ``path[i]``.
    Returns the cut faces and the cut vertex map.
    """
    sorted_keys, key_face, n = _halfedge_lookup(f)
    cut = f.copy()
    inner = path[1:-1]
    order = np.argsort(f.reshape(-1), kind="stable")
    starts = np.searchsorted(f.reshape(-1)[order], np.arange(n + 1))
    for i, v in enumerate(inner, start=1):
        prev, nxt = int(path[i - 1]), int(path[i + 1])
        face = int(_find_halfedges(sorted_keys, key_face, np.array([v * n + nxt]))[0])
        left = []
        while True:
            left.append(face)
            k = int(np.flatnonzero(f[face] == v)[0])
            after = int(f[face, (k + 2) % 3])
            if after == prev:
                break
            face = int(_find_halfedges(sorted_keys, key_face, np.array([v * n + after]))[0])
        around = order[starts[v]:starts[v + 1]]
        right = np.setdiff1d(around // 3, left)
        corner = around[np.isin(around // 3, right)]
        cut.reshape(-1)[corner] = V + i - 1
    vertex_map = np.concatenate([np.arange(V), inner])
    return cut, vertex_map


def _cut_weights(W, cut_faces: np.ndarray, vertex_map: np.ndarray):
    """Move the input mesh's weights onto the cut mesh's edges.

    A cut edge inherits the weight of its input edge, split evenly between the two copies of a seam
    edge. The seam equations combine both copies, so every input vertex keeps its own weighted
    average in the unfolded plane.
    """
    from scipy.sparse import csr_matrix

    N = vertex_map.shape[0]
    src = np.concatenate([cut_faces.reshape(-1), cut_faces[:, [1, 2, 0]].reshape(-1)])
    dst = np.concatenate([cut_faces[:, [1, 2, 0]].reshape(-1), cut_faces.reshape(-1)])
    pairs = _unique_pairs(np.stack([src, dst], 1))
    orig = vertex_map[pairs]
    _, inverse = _unique_pairs(orig, return_inverse=True)
    copies = np.bincount(inverse)
    w = np.asarray(W[orig[:, 0], orig[:, 1]]).ravel() / copies[inverse]
    return csr_matrix((w, (pairs[:, 0], pairs[:, 1])), shape=(N, N))


def flat_torus_parameterization(verts: torch.Tensor, faces: torch.Tensor, cones: Optional[torch.Tensor] = None,
                                weights: str = "cot") -> FlatTorusMap:
    """Map a closed genus-0 mesh seamlessly to a flat torus (Maron et al. 2017, via the orbifold
    Tutte embedding of Aigerman and Lipman 2015, type (2,2,2,2)).

    1. Cones ``a, b, c, d``: given, or :func:`choose_cones`.
    2. Cut: shortest edge paths ``a -> b -> c -> d`` (Dijkstra on edge lengths, each avoiding the
       earlier ones and the later cones) form one simple path; cutting along it leaves a disk whose
       boundary runs ``a, b, c, d`` along one side of the path and back along the copies.
    3. Embed: cones are fixed at the corners of the half-unit squares, ``a = (0.5, 0)``,
       ``b = (1, 0) | (0, 0)``, ``c = (1, 0.5) | (0, 0.5)``, ``d = (0.5, 0.5)`` (original | copy
       side), every copy on the cut is tied to its original by its segment's transform (a rotation
       by pi about ``a`` on ``a-b``, a translation by ``(-1, 0)`` on ``b-c``, a rotation by pi about
       ``d`` on ``c-d``; :data:`SEAM_TRANSFORMS`), and every other vertex, seam vertices included, is
       the weighted average of its neighbours in the unfolded plane. Substituting the seam ties
       leaves one sparse linear system (shared by ``u`` and ``v``, since the transforms are
       ``+-identity`` plus a translation).

    With positive weights the result is a bijection onto the (2,2,2,2) orbifold (Aigerman and
    Lipman): no face flips, the images of the cut mesh under the orbifold group tile the plane,
    and the torus ``[0, 1)^2`` holds two copies of the surface (see :class:`FlatTorusMap`). The
    four cones are where the map is singular (cone angle pi): neighbourhoods of cones are
    magnified, other parts shrunk. Fixing the cones at a square's corners ignores the conformal
    modulus of four points on a sphere, so the map is not exactly conformal even with ``"cot"``.
    (Maron et al. use three cones and the (4,4,2) orbifold, whose torus covers the surface four
    times; this is the four-cone (2,2,2,2) variant.)

    Args:
        verts: ``(V, 3)`` float, finite; every vertex used by a face.
        faces: ``(F, 3)`` integer, consistently oriented, a closed connected genus-0 manifold.
        cones: ``(4,)`` integer, four distinct vertices in cut order; default :func:`choose_cones`.
        weights: ``"cot"`` (cotangent weights with negative ones raised to
            :data:`COT_WEIGHT_FLOOR` times the mean absolute weight, so bijectivity holds; default),
            ``"mean_value"`` or ``"uniform"``.

    Returns:
        :class:`FlatTorusMap`; ``uv`` has the dtype and device of ``verts``.

    Raises:
        ValueError: bad shapes, NaN, unused vertices, a mesh that is open, disconnected, of higher
            genus or non-manifold, a face with a repeated vertex, a zero-area face (``"cot"`` and
            ``"mean_value"``), bad cones, or cones the cut cannot join.
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.linalg import spsolve

    if weights not in WEIGHT_KINDS:
        raise ValueError(f"weights must be one of {WEIGHT_KINDS}, got {weights!r}")
    verts64, f = _mesh_input(verts, faces)
    _check_sphere(f)
    if weights != "uniform":
        _check_non_degenerate(verts64, f, f"{weights!r} weights need the angles of every face (use "
                                          "weights='uniform', which needs connectivity only)")
    V = verts64.shape[0]
    if cones is None:
        cone_ids = choose_cones(verts64).numpy()
    else:
        check_tensor(cones, "cones", ndim=1, kind="int", shape_hint="(4,)")
        cone_ids = cones.detach().cpu().numpy().astype(np.int64)
        if cone_ids.shape != (4,) or np.unique(cone_ids).size != 4 or cone_ids.min() < 0 or cone_ids.max() >= V:
            raise ValueError(f"cones must hold four distinct vertex indices in [0, {V}), got {cone_ids.tolist()}")
    path, (pos_b, pos_c) = _cut_path(verts64, f, cone_ids)
    cut_faces, vertex_map = _cut_open(f, path, V)
    N = vertex_map.shape[0]
    K = path.shape[0]

    # Every cut vertex is sign * x[column of its source] + offset. A free input vertex is its own
    # source (sign 1, offset 0); a copy on the cut follows its original through its segment's
    # transform; the six cone positions are constants. u and v share signs and sources.
    inner = np.arange(1, K - 1)
    copies = V + inner - 1
    segment = np.where(inner <= pos_b, 0, np.where(inner <= pos_c, 1, 2))
    seam_sign = np.array([sign for sign, _ in SEAM_TRANSFORMS])[segment]
    seam_shift = np.array([shift for _, shift in SEAM_TRANSFORMS]).reshape(3, 2)[segment]
    sign = np.ones(N)
    sign[copies] = seam_sign
    source = np.arange(N)
    source[copies] = path[inner]
    offset = np.zeros((N, 2))
    offset[copies] = seam_shift
    fixed = np.zeros(N, dtype=bool)
    a, b, c, d = cone_ids
    for vertex, key in ((a, "a"), (b, "b"), (c, "c"), (d, "d"), (V + pos_b - 1, "b_copy"), (V + pos_c - 1, "c_copy")):
        fixed[vertex] = True
        offset[vertex] = CONE_POSITIONS[key]
    free = np.flatnonzero(~fixed[:V])
    column = np.full(V, -1)
    column[free] = np.arange(free.size)
    rows = np.flatnonzero(~fixed)
    A = csr_matrix((sign[rows], (rows, column[source[rows]])), shape=(N, free.size))

    W = _cut_weights(_weight_matrix(verts64, f, weights, floor_negative=True), cut_faces, vertex_map)
    L = _laplacian(W)
    At = A.T.tocsr()
    system = (At @ L @ A).tocsc()
    rhs = -(At @ (L @ offset))
    x = np.asarray(spsolve(system, rhs)).reshape(-1, 2)
    uv = A @ x + offset

    device = verts.device
    return FlatTorusMap(
        uv=_to_output(uv, verts),
        faces=torch.from_numpy(cut_faces).to(device),
        vertex_map=torch.from_numpy(vertex_map).to(device),
        cones=torch.from_numpy(cone_ids).to(device),
        cut_path=torch.from_numpy(path).to(device),
        seam_pairs=torch.from_numpy(np.stack([path[inner], copies], 1)).to(device),
        seam_signs=torch.from_numpy(seam_sign).to(device=device, dtype=verts.dtype),
        seam_translations=torch.from_numpy(seam_shift).to(device=device, dtype=verts.dtype),
        weights=weights,
    )


# --------------------------------------------------------------------------- torus images
def _check_torus_map(torus_map) -> None:
    if not isinstance(torus_map, FlatTorusMap):
        raise TypeError("torus_map must be a FlatTorusMap (from flat_torus_parameterization), "
                        f"got {describe(torus_map)}")


def _torus_raster(torus_map: FlatTorusMap, size: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per pixel of a ``size x size`` torus image: the input vertices of its triangle and the
    barycentric weights of the pixel centre, ``(size * size, 3)`` each, row-major."""
    device = torus_map.uv.device
    key = (size, str(device))
    if key in torus_map._rasters:
        return torus_map._rasters[key]
    uv = torus_map.uv.detach().double()
    faces = torus_map.faces
    # The cut mesh's image and its rotation by pi about (0.5, 0.5) tile the torus.
    tri = torch.cat([uv[faces], 1.0 - uv[faces]]) * size  # (2F, 3, 2) in pixel units
    tri_verts = torus_map.vertex_map[torch.cat([faces, faces])]
    # A tiny margin keeps pixel centres on a bounding-box edge inside it despite rounding.
    margin = 1e-7
    lo = torch.ceil(tri.amin(1) - 0.5 - margin).long()
    hi = torch.floor(tri.amax(1) - 0.5 + margin).long()
    span = (hi - lo + 1).clamp(min=0)
    count = span[:, 0] * span[:, 1]
    owner = torch.repeat_interleave(torch.arange(tri.shape[0], device=device), count)
    local = torch.arange(owner.shape[0], device=device) - torch.repeat_interleave(
        torch.cumsum(count, 0) - count, count)
    col = lo[owner, 0] + local % span[owner, 0]
    row = lo[owner, 1] + local // span[owner, 0]
    centre = torch.stack([col, row], 1).double() + 0.5
    p = tri[owner]
    e1, e2, r = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0], centre - p[:, 0]
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    safe = torch.where(det != 0, det, torch.ones_like(det))
    w1 = (r[:, 0] * e2[:, 1] - r[:, 1] * e2[:, 0]) / safe
    w2 = (e1[:, 0] * r[:, 1] - e1[:, 1] * r[:, 0]) / safe
    bary = torch.stack([1 - w1 - w2, w1, w2], 1)
    score = torch.where(det > 0, bary.amin(1), torch.full_like(det, -math.inf))
    pixel = row.remainder(size) * size + col.remainder(size)
    best = torch.full((size * size,), -math.inf, dtype=torch.float64, device=device)
    best = best.scatter_reduce(0, pixel, score, reduce="amax")
    # Away from the tiling's seams a pixel centre lies in exactly one triangle (score >= 0); on an
    # edge both triangles agree on the value; a rounding gap picks the nearest triangle.
    if bool((best < -1e-6).any()):
        missing = int((best < -1e-6).sum())
        raise ValueError(f"torus_map does not tile the torus: {missing} of {size * size} pixels lie in no uv "
                         "triangle (a map with flipped faces, or uv edited after flat_torus_parameterization)")
    winner = score == best[pixel]
    vertex_idx = torch.zeros(size * size, 3, dtype=torch.long, device=device)
    weights = torch.zeros(size * size, 3, dtype=torch.float64, device=device)
    vertex_idx[pixel[winner]] = tri_verts[owner[winner]]
    weights[pixel[winner]] = bary[winner]
    torus_map._rasters[key] = (vertex_idx, weights)
    return vertex_idx, weights


def _check_size(size) -> int:
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ValueError(f"size must be a positive int (pixels per side), got {size!r}")
    return size


def surface_to_torus_image(torus_map: FlatTorusMap, vertex_values: torch.Tensor, size: int = 256) -> torch.Tensor:
    """Rasterise per-vertex functions onto the flat-torus image of a :class:`FlatTorusMap`.

    Pixel ``[r, c]`` shows the torus point ``(u, v) = ((c + 0.5) / size, (r + 0.5) / size)``: it is
    found in the uv triangles of the cut mesh or of their copy rotated by pi about ``(0.5, 0.5)``
    (indices wrapped modulo ``size``), and the triangle's vertex values are interpolated with the
    pixel centre's barycentric coordinates.

    The image is periodic: row ``size - 1`` neighbours row 0 and column ``size - 1`` column 0 (a
    2-D CNN should use circular padding, ``padding_mode="circular"``). It is also symmetric under
    the rotation by pi of the torus (``image.flip(-1, -2) == image`` up to rounding), since the torus
    covers the surface twice. The per-pixel triangles are computed once per size and device and
    cached in ``torus_map``; the image is linear in ``vertex_values`` and differentiable.

    Args:
        torus_map: from :func:`flat_torus_parameterization`.
        vertex_values: ``(V, C)`` or batched ``(B, V, C)`` float, one row per *input* vertex
            (coordinates, normals, curvature, ...).
        size: pixels per side.

    Returns:
        ``(C, size, size)`` or ``(B, C, size, size)``, dtype and device of ``vertex_values``.

    Raises:
        TypeError / ValueError: a wrong type, shape or size; a map whose uv no longer tiles the torus.
    """
    _check_torus_map(torus_map)
    size = _check_size(size)
    check_tensor(vertex_values, "vertex_values", ndim=(2, 3), kind="float", shape_hint="(V, C) or (B, V, C)")
    V = torus_map.num_verts
    if vertex_values.shape[-2] != V:
        raise ValueError(f"vertex_values must have one row per input vertex ({V}) in dimension -2, got shape "
                         f"{tuple(vertex_values.shape)}")
    vertex_idx, weights = _torus_raster(torus_map, size)
    vertex_idx = vertex_idx.to(vertex_values.device)
    weights = weights.to(device=vertex_values.device, dtype=vertex_values.dtype)
    pixels = (vertex_values[..., vertex_idx, :] * weights[..., None]).sum(-2)  # (..., S*S, C)
    return pixels.movedim(-1, -2).reshape(*vertex_values.shape[:-2], vertex_values.shape[-1], size, size)


def torus_image_to_surface(image: torch.Tensor, torus_map: FlatTorusMap) -> torch.Tensor:
    """Sample a flat-torus image back at the surface's vertices (bilinear, periodic).

    Each input vertex is looked up at its uv (the pixel grid of :func:`surface_to_torus_image`,
    indices wrapped modulo the image size), so a CNN's per-pixel predictions come back to the
    mesh; the result is linear in ``image`` and differentiable.

    Args:
        image: ``(C, S, S)`` or ``(B, C, S, S)`` float, any ``S >= 1``.
        torus_map: from :func:`flat_torus_parameterization`.

    Returns:
        ``(V, C)`` or ``(B, V, C)`` with the dtype and device of ``image``.
    """
    _check_torus_map(torus_map)
    check_tensor(image, "image", ndim=(3, 4), kind="float", shape_hint="(C, S, S) or (B, C, S, S)")
    S = image.shape[-1]
    if image.shape[-2] != S or S == 0:
        raise ValueError(f"image must be square and non-empty in its last two dimensions, got {tuple(image.shape)}")
    V = torus_map.num_verts
    pos = torus_map.uv[:V].detach().to(device=image.device, dtype=torch.float64) * S - 0.5
    base = torch.floor(pos)
    frac = (pos - base).to(image.dtype)
    c0, r0 = base[:, 0].long(), base[:, 1].long()
    c1, r1 = (c0 + 1).remainder(S), (r0 + 1).remainder(S)
    c0, r0 = c0.remainder(S), r0.remainder(S)
    fx, fy = frac[:, 0], frac[:, 1]
    values = (image[..., r0, c0] * (1 - fx) * (1 - fy) + image[..., r0, c1] * fx * (1 - fy)
              + image[..., r1, c0] * (1 - fx) * fy + image[..., r1, c1] * fx * fy)  # (..., C, V)
    return values.movedim(-1, -2)
