"""Geodesic distances by the heat method, gradient and divergence operators, local polar coordinates.

- :func:`face_gradient` ``G`` and :func:`vertex_divergence` ``D`` are the linear FEM operators as
  sparse matrices, with ``D G = -L`` (``L`` the cotangent stiffness matrix of
  :func:`~geo4g.meshes.laplacian_matrices.stiffness_matrix`) and ``D = -G^T A`` (``A`` the face areas).
- :class:`HeatGeodesics` / :func:`heat_method_geodesics`: Crane, Weischedel & Wardetzky, "Geodesics
  in Heat" (2013). Heat flows from the sources for a short time, ``(M + t L) u = delta``; its
  normalised negative gradient ``X = -grad u / |grad u|`` is a unit field pointing away from the
  sources; the distance solves the Poisson problem ``L phi = -div X``. Both sparse systems are
  factorised once (:class:`~geo4g.meshes.spectral.SPDSolver`) and reused for every source.
- :func:`local_polar_coordinates`: geodesic polar coordinates of a patch around every vertex, the
  pseudo-coordinates of MoNet / geodesic CNNs, from a Dijkstra search along the edges that unfolds
  each reached vertex into the centre's tangent plane (the discrete exponential map of Schmidt et
  al. 2006). On a flat mesh the coordinates are exactly the Euclidean ones.
"""
from __future__ import annotations

import heapq
import importlib
import math
from typing import NamedTuple, Optional, Sequence

import numpy as np
import torch

from geo4g._threads import run_chunks
from geo4g.structures.checks import check_tensor, describe

from .laplacian_matrices import _mesh_input, _sparse, mass_matrix, stiffness_matrix
from .spectral import SPDSolver

__all__ = [
    "face_gradient",
    "vertex_divergence",
    "HeatGeodesics",
    "heat_method_geodesics",
    "PolarCoordinates",
    "local_polar_coordinates",
]

BOUNDARY_CONDITIONS = ("neumann", "average")
POLAR_METHODS = ("exp_map", "dijkstra")
#: The Poisson problem is regularised by ``POISSON_REGULARISATION / area * M``: it removes the
#: constant null space while changing the lowest nonconstant mode by about 1e-8 relative.
POISSON_REGULARISATION = 1e-8
#: ``local_polar_coordinates(radius=r, method="exp_map")`` searches the edges up to this times ``r``
#: (edge paths are longer than geodesics) and keeps the vertices that unfold within ``r``.
SEARCH_SLACK = 1.5


# --------------------------------------------------------------------------- gradient and divergence
def _gradient_parts(verts: torch.Tensor, faces: torch.Tensor):
    """Per face and corner, the gradient ``(F, 3, 3)`` of the corner's hat function, and the areas ``(F,)``."""
    fv = verts[faces]
    cross = torch.linalg.cross(fv[:, 1] - fv[:, 0], fv[:, 2] - fv[:, 0], dim=-1)
    sq = (cross * cross).sum(-1)
    longest = torch.stack([((fv[:, (k + 2) % 3] - fv[:, (k + 1) % 3]) ** 2).sum(-1) for k in range(3)], 1)
    longest = longest.amax(1) if faces.shape[0] else sq
    valid = sq.sqrt() > 8.0 * torch.finfo(verts.dtype).eps * longest
    safe = torch.where(valid, sq, torch.ones_like(sq))
    # grad phi_k = n x e_k / |n|^2 with e_k the edge opposite corner k, counter-clockwise.
    grads = torch.stack([torch.linalg.cross(cross, fv[:, (k + 2) % 3] - fv[:, (k + 1) % 3], dim=-1)
                         for k in range(3)], 1) / safe[:, None, None]
    grads = torch.where(valid[:, None, None], grads, torch.zeros_like(grads))
    return grads, torch.where(valid, 0.5 * sq.sqrt(), torch.zeros_like(sq))


def _rect_sparse(rows, cols, values, shape) -> torch.Tensor:
    return torch.sparse_coo_tensor(torch.stack([rows, cols]), values, shape, check_invariants=False).coalesce()


def face_gradient(verts, faces=None) -> torch.Tensor:
    """The per-face gradient of piecewise-linear vertex functions as a sparse ``(3F, V)`` matrix.

    Row ``3 f + d`` gives the ``d``-th coordinate of the (constant) gradient on face ``f``:
    ``(G u).view(F, 3)`` are the face gradients of ``u: (V,)``, tangent to the faces.

    Args:
        verts: ``(V, 3)`` float, or a ``Meshes`` (packed faces, ``faces=None``).
        faces: ``(F, 3)`` integer.

    Returns:
        ``G``: sparse COO ``(3F, V)``, differentiable in ``verts``; degenerate faces have zero rows.
    """
    verts, faces = _mesh_input(verts, faces, "face_gradient")
    grads, _ = _gradient_parts(verts, faces)
    F = faces.shape[0]
    rows = (3 * torch.arange(F, device=verts.device)[:, None, None]
            + torch.arange(3, device=verts.device)[None, None, :]).expand(F, 3, 3)
    cols = faces[:, :, None].expand(F, 3, 3)
    return _rect_sparse(rows.reshape(-1), cols.reshape(-1), grads.reshape(-1), (3 * F, verts.shape[0]))


def vertex_divergence(verts, faces=None) -> torch.Tensor:
    """The integrated divergence of per-face vector fields as a sparse ``(V, 3F)`` matrix.

    For a field ``X: (F, 3)`` (constant per face), ``(D X.view(-1))_i`` is the divergence integrated
    over vertex ``i``'s dual cell, ``1/2 sum_faces (cot a (e1 . X) + cot b (e2 . X))``; ``D = -G^T A``
    with ``A`` the face areas, so ``D G = -L``. Divide by the vertex masses for pointwise values.

    Args:
        verts: ``(V, 3)`` float, or a ``Meshes`` (packed faces, ``faces=None``).
        faces: ``(F, 3)`` integer.

    Returns:
        ``D``: sparse COO ``(V, 3F)``, differentiable in ``verts``; degenerate faces have zero columns.
    """
    verts, faces = _mesh_input(verts, faces, "vertex_divergence")
    grads, areas = _gradient_parts(verts, faces)
    F = faces.shape[0]
    cols = (3 * torch.arange(F, device=verts.device)[:, None, None]
            + torch.arange(3, device=verts.device)[None, None, :]).expand(F, 3, 3)
    rows = faces[:, :, None].expand(F, 3, 3)
    values = -(grads * areas[:, None, None])
    return _rect_sparse(rows.reshape(-1), cols.reshape(-1), values.reshape(-1), (verts.shape[0], 3 * F))


# --------------------------------------------------------------------------- heat method
def _components(faces: torch.Tensor, n: int) -> np.ndarray:
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    f = faces.cpu().numpy()
    rows = np.concatenate([f[:, 0], f[:, 1], f[:, 2]])
    cols = np.concatenate([f[:, 1], f[:, 2], f[:, 0]])
    graph = sp.coo_matrix((np.ones(rows.shape[0]), (rows, cols)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def _boundary_vertices(faces: torch.Tensor, n: int) -> torch.Tensor:
    """``(V,)`` bool: vertices on an edge that belongs to exactly one face."""
    e = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]).sort(dim=1).values
    e = e[e[:, 0] != e[:, 1]]
    keys, counts = torch.unique(e[:, 0] * max(n, 1) + e[:, 1], return_counts=True)
    single = keys[counts == 1]
    mask = torch.zeros(n, dtype=torch.bool, device=faces.device)
    mask[single // max(n, 1)] = True
    mask[single % max(n, 1)] = True
    return mask


def _submatrix(A: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Rows and columns ``keep`` (a bool mask) of a sparse COO matrix."""
    new_index = torch.cumsum(keep.long(), 0) - 1
    i = A.indices()
    inside = keep[i[0]] & keep[i[1]]
    n = int(keep.sum())
    return _sparse(new_index[i[0][inside]], new_index[i[1][inside]], A.values()[inside], n)


class HeatGeodesics:
    """Pre-factorised heat-method geodesic distances on one triangle mesh.

    Args:
        verts: ``(V, 3)`` float, or a ``Meshes`` (its packed vertices: distances never cross meshes).
        faces: ``(F, 3)`` integer.
        t: the heat flow time; default ``time_factor * h^2`` with ``h`` the mean edge length
            (Crane et al.'s choice ``m = 1``); for a ``Meshes`` batch, the mean over all its edges.
        time_factor: see ``t``.
        boundary: ``"neumann"`` (zero normal derivative, the FEM default) or ``"average"`` (the
            mean of the Neumann and the zero-Dirichlet heat flows, which Crane et al. recommend
            on meshes with boundary; equal to Neumann on closed meshes, and for sources on the
            boundary, whose Dirichlet flow vanishes).
        mass: ``"lumped"`` (Crane et al.) or ``"voronoi"`` (libigl's ``heat_geodesics``, whose
            results this then reproduces) mass matrix for the heat flow.
        solver: :class:`~geo4g.meshes.spectral.SPDSolver` method (``"auto"``: factorisation on
            the CPU, conjugate gradients on CUDA).

    Call with sources (see :func:`heat_method_geodesics`). The operators are float64 on the
    vertices' device; distances come back in the vertices' dtype.
    """

    def __init__(self, verts, faces=None, t: Optional[float] = None, time_factor: float = 1.0,
                 boundary: str = "neumann", mass: str = "lumped", solver: str = "auto"):
        if boundary not in BOUNDARY_CONDITIONS:
            raise ValueError(f"boundary must be one of {BOUNDARY_CONDITIONS}, got {boundary!r}")
        if mass not in ("lumped", "voronoi"):
            raise ValueError(f"mass must be 'lumped' or 'voronoi', got {mass!r}")
        verts, faces = _mesh_input(verts, faces, "HeatGeodesics")
        self.dtype, self.device = verts.dtype, verts.device
        v = verts.detach().double()
        self.num_verts = n = v.shape[0]
        L, M = stiffness_matrix(v, faces), mass_matrix(v, faces, mass)
        edges = v[faces[:, [1, 2, 0]]] - v[faces]
        mean_edge = float(edges.norm(dim=-1).mean()) if faces.shape[0] else 0.0
        if t is None:
            if not time_factor > 0:
                raise ValueError(f"time_factor must be positive, got {time_factor!r}")
            t = time_factor * mean_edge ** 2
        if not (isinstance(t, (int, float)) and not isinstance(t, bool) and t > 0):
            raise ValueError(f"t must be a positive float, got {t!r}")
        self.t = float(t)
        self.boundary = boundary
        heat = (M + self.t * L).coalesce()
        self._heat = SPDSolver(heat, method=solver, points=v)
        on_boundary = _boundary_vertices(faces, n)
        self._interior = None
        if boundary == "average" and bool(on_boundary.any()) and not bool(on_boundary.all()):
            self._interior = ~on_boundary
            self._heat_dirichlet = SPDSolver(_submatrix(heat, self._interior), method=solver,
                                             points=v[self._interior])
        area = float(M.values().sum()) if n else 1.0
        self._poisson = SPDSolver((L + (POISSON_REGULARISATION / max(area, 1e-300)) * M).coalesce(), method=solver,
                                  points=v)
        # Gradient and divergence by gather / scatter over the faces: the products of the sparse
        # matrices G and D, without their (slow) COO matmuls.
        self._faces = faces.to(v.device)
        self._hat_gradients, self._areas = _gradient_parts(v, self._faces)
        self._components = torch.from_numpy(_components(faces, n)).to(v.device) if n else torch.zeros(0)

    def __repr__(self) -> str:
        return f"HeatGeodesics(verts={self.num_verts}, t={self.t:.3g}, boundary={self.boundary!r})"

    def _flow(self, delta: torch.Tensor) -> torch.Tensor:
        u = self._heat(delta)
        if self._interior is not None:
            u_dirichlet = torch.zeros_like(u)
            u_dirichlet[self._interior] = self._heat_dirichlet(delta[self._interior])
            u = 0.5 * (u + u_dirichlet)
        return u

    def __call__(self, sources) -> torch.Tensor:
        """Distances from ``sources`` (see :func:`heat_method_geodesics`)."""
        n = self.num_verts
        columns, squeeze = _source_columns(sources, n)
        delta = torch.zeros(n, len(columns), dtype=torch.float64, device=self.device)
        for j, col in enumerate(columns):
            delta[col.to(self.device), j] = 1.0
        u = self._flow(delta)
        grad = torch.einsum("fkd,fkc->fdc", self._hat_gradients, u[self._faces])  # (F, 3, S)
        # Unrolled over the 3 coordinates: a strided norm over dim 1 took 6x longer.
        norm = (grad[:, 0] * grad[:, 0] + grad[:, 1] * grad[:, 1] + grad[:, 2] * grad[:, 2]).sqrt()[:, None]
        safe = torch.where(norm > 0, norm, torch.ones_like(norm))
        field = torch.where(norm > 0, -grad / safe, torch.zeros_like(grad))
        # D X = -G^T A X: each corner receives -A (grad phi_k . X) of its face.
        flux = torch.einsum("fkd,fdc->fkc", self._hat_gradients, field) * self._areas[:, None, None]
        div = -torch.zeros_like(u).index_add_(0, self._faces.reshape(-1), flux.reshape(-1, u.shape[1]))
        phi = self._poisson(-div)
        out = torch.empty_like(phi)
        for j, col in enumerate(columns):
            col = col.to(self.device)
            d = phi[:, j] - phi[col, j].mean()
            reached = torch.isin(self._components, self._components[col])
            out[:, j] = torch.where(reached, d, torch.full_like(d, float("inf")))
        out = out.t().to(self.dtype)
        return out[0] if squeeze else out


def _source_columns(sources, n: int):
    """A list of index tensors (one per output row) and whether to drop the leading dimension."""
    if isinstance(sources, bool):
        raise TypeError(f"sources must be an int, a sequence of ints, a (S,) long tensor or a (V,) bool mask, "
                        f"got {describe(sources)}")
    if isinstance(sources, (int, np.integer)):
        sources = int(sources)
        if not 0 <= sources < n:
            raise ValueError(f"sources must lie in [0, {n}) for {n} vertices, got {sources}")
        return [torch.tensor([sources])], True
    if not isinstance(sources, torch.Tensor):
        if not isinstance(sources, Sequence) or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool)
                                                        for s in sources):
            raise TypeError(f"sources must be an int, a sequence of ints, a (S,) long tensor or a (V,) bool mask, "
                            f"got {describe(sources)}")
        sources = torch.tensor(list(sources), dtype=torch.long)
    check_tensor(sources, "sources", ndim=1, shape_hint="(S,) or (V,) bool")
    if sources.dtype == torch.bool:
        if sources.shape[0] != n:
            raise ValueError(f"a bool sources mask must have V={n} entries, got shape {tuple(sources.shape)}")
        idx = sources.nonzero()[:, 0].cpu()
        if idx.numel() == 0:
            raise ValueError("the sources mask selects no vertex")
        return [idx], True
    check_tensor(sources, "sources", ndim=1, kind="int", shape_hint="(S,)")
    sources = sources.long().cpu()
    if sources.numel() and (int(sources.min()) < 0 or int(sources.max()) >= n):
        raise ValueError(f"sources must lie in [0, {n}) for {n} vertices, got range "
                         f"[{int(sources.min())}, {int(sources.max())}]")
    return [s.view(1) for s in sources], False


def heat_method_geodesics(verts, faces=None, sources=0, t: Optional[float] = None, time_factor: float = 1.0,
                          boundary: str = "neumann", mass: str = "lumped", solver: str = "auto") -> torch.Tensor:
    """Approximate geodesic distances on a triangle mesh by the heat method (Crane et al. 2013).

    For many calls on one mesh build a :class:`HeatGeodesics` once: it keeps the factorisations.

    Args:
        verts: ``(V, 3)`` float, or a ``Meshes``.
        faces: ``(F, 3)`` integer.
        sources: an ``int`` (one source vertex); a sequence or ``(S,)`` long tensor of vertices (the
            distance from each, separately); or a ``(V,)`` bool mask (the distance to the set).
        t, time_factor, boundary, mass, solver: see :class:`HeatGeodesics`.

    Returns:
        ``(V,)`` for an int or a mask, ``(S, V)`` for several sources, in the vertices' dtype and on
        their device; ``0`` at the source (the mean over a source set), ``inf`` on connected
        components without a source. Not differentiable.
    """
    return HeatGeodesics(verts, faces, t=t, time_factor=time_factor, boundary=boundary, mass=mass,
                         solver=solver)(sources)


# --------------------------------------------------------------------------- local polar coordinates
class PolarCoordinates(NamedTuple):
    """Patch edges and their pseudo-coordinates.

    ``edge_index (2, E)`` long, PyTorch Geometric's convention: row 0 the neighbour (source ``j``),
    row 1 the centre (target ``i``), grouped by centre in increasing order; ``rho (E,)`` the
    geodesic distance; ``theta (E,)`` the angle in ``(-pi, pi]`` from the centre's reference direction.
    """

    edge_index: torch.Tensor
    rho: torch.Tensor
    theta: torch.Tensor


def _tangent_frames(verts: np.ndarray, faces: np.ndarray, indptr: np.ndarray, indices: np.ndarray):
    """Unit area-weighted normals ``(V, 3)`` and frames ``(V, 2, 3)``: ``e1`` the projection of the edge
    to the lowest-index neighbour with a nonzero projection, ``e2 = n x e1``."""
    n = verts.shape[0]
    fv = verts[faces]
    cross = np.cross(fv[:, 1] - fv[:, 0], fv[:, 2] - fv[:, 0]) if faces.shape[0] else np.zeros((0, 3))
    normals = np.zeros((n, 3))
    for k in range(3):
        np.add.at(normals, faces[:, k], cross)
    length = np.linalg.norm(normals, axis=1)
    normals = np.where(length[:, None] > 0, normals / np.where(length > 0, length, 1)[:, None], [0.0, 0.0, 1.0])
    # Vectorised over the first neighbour; the rare vertices whose first edges are parallel to the
    # normal (or that have no edge) continue through their neighbour list.
    first = np.full(n, -1, dtype=np.int64)
    has_edge = np.diff(indptr) > 0
    first[has_edge] = indices[indptr[:-1][has_edge]]
    e1 = np.zeros((n, 3))
    e1[has_edge] = _tangent(verts[first[has_edge]] - verts[has_edge], normals[has_edge])
    for i in np.nonzero(~np.any(e1 != 0, axis=1))[0]:
        for j in indices[indptr[i] + 1:indptr[i + 1]]:
            e1[i] = _tangent((verts[j] - verts[i])[None], normals[i][None])[0]
            if np.any(e1[i] != 0):
                break
        else:
            helper = np.array([1.0, 0.0, 0.0]) if abs(normals[i, 0]) < 0.9 else np.array([0.0, 1.0, 0.0])
            e1[i] = _tangent(helper[None], normals[i][None])[0]
    return normals, np.stack([e1, np.cross(normals, e1)], 1)


def _tangent(steps: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Unit projections of ``steps (N, 3)`` on the planes normal to ``normals``; zero rows when a step is
    (numerically) parallel to its normal."""
    tang = steps - np.einsum("nd,nd->n", steps, normals)[:, None] * normals
    size = np.linalg.norm(tang, axis=1)
    ok = size > 1e-12 * np.maximum(np.linalg.norm(steps, axis=1), 1e-300)
    return np.where(ok[:, None], tang / np.where(ok, size, 1.0)[:, None], 0.0)


def _transport_reference(w, n_from, n_to):
    c = float(n_from @ n_to)
    if 1.0 + c < 1e-12:
        return w
    v = np.cross(n_from, n_to)
    return w * c + np.cross(v, w) + v * float(v @ w) / (1.0 + c)


def _patches_reference(verts, normals, frames, indptr, indices, weights, limit, max_count):
    """``heapq`` Dijkstra and unfolding per centre: the twin of ``_kernels/polar_numba``."""
    out_c, out_v, out_d, out_u = [], [], [], []
    for centre in range(verts.shape[0]):
        dist, parent, u = {centre: 0.0}, {centre: -1}, {centre: np.zeros(2)}
        settled = set()
        heap = [(0.0, centre)]
        count = 0
        while heap:
            d, q = heapq.heappop(heap)
            if q in settled or d > dist[q]:
                continue
            if d > limit:
                break
            if q != centre:
                p = parent[q]
                step = verts[q] - verts[p]
                length = math.sqrt(float(step @ step))
                tang = step - float(step @ normals[p]) * normals[p]
                tl = math.sqrt(float(tang @ tang))
                if tl > 0:
                    tang = tang * (length / tl)
                moved = _transport_reference(tang, normals[p], normals[centre])
                u[q] = u[p] + frames[centre] @ moved
                out_c.append(centre)
                out_v.append(q)
                out_d.append(d)
                out_u.append(u[q])
                count += 1
                if count >= max_count:
                    break
            settled.add(q)
            for e in range(indptr[q], indptr[q + 1]):
                r = indices[e]
                if r in settled:
                    continue
                nd = d + weights[e]
                if nd < dist.get(r, math.inf):
                    dist[r], parent[r] = nd, q
                    heapq.heappush(heap, (nd, r))
    return (np.asarray(out_c, dtype=np.int64), np.asarray(out_v, dtype=np.int64), np.asarray(out_d, dtype=np.float64),
            np.asarray(out_u, dtype=np.float64).reshape(-1, 2))


def _patches_numba(kernels, verts, normals, frames, indptr, indices, weights, limit, max_count):
    n = verts.shape[0]
    counts = np.zeros(n, dtype=np.int64)
    args = (verts, normals, frames, indptr, indices, weights, float(limit), int(max_count))
    run_chunks(kernels.count_patches, n, kernels.MIN_SLICE, *args, counts)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    total = int(offsets[-1])
    out_v, out_d, out_u = np.empty(total, dtype=np.int64), np.empty(total), np.empty((total, 2))
    run_chunks(kernels.fill_patches, n, kernels.MIN_SLICE, *args, offsets, out_v, out_d, out_u)
    return np.repeat(np.arange(n, dtype=np.int64), counts), out_v, out_d, out_u


def _numba_kernels():
    try:
        return importlib.import_module("geo4g.meshes._kernels.polar_numba")
    except ImportError:
        return None


def local_polar_coordinates(verts, faces=None, radius: Optional[float] = None, k: Optional[int] = None,
                            method: str = "exp_map", backend: str = "auto") -> PolarCoordinates:
    """Geodesic polar coordinates ``(rho, theta)`` of the patch around every vertex (MoNet's pseudo-coordinates).

    A Dijkstra search along the mesh edges from each centre visits its neighbourhood in order of
    edge-path distance; each reached vertex is unfolded into the centre's tangent plane through
    its Dijkstra parent: the edge from the parent is projected to the parent's tangent plane,
    rescaled to the edge length, rotated onto the centre's plane by the smallest rotation between
    the normals, and added to the parent's 2-D position (the discrete exponential map of Schmidt,
    Grimm & Wyvill 2006). The tangent plane is normal to the area-weighted vertex normal; the
    reference direction ``theta = 0`` is the projection of the edge to the lowest-index neighbour
    (``theta`` grows counter-clockwise around the normal).

    - ``method="exp_map"``: ``rho, theta`` are the polar coordinates of the unfolded position: exact
      Euclidean polar coordinates on a flat mesh, a first-order geodesic approximation on curved ones.
    - ``method="dijkstra"``: ``rho`` is the edge-path distance (an upper bound of the geodesic one),
      ``theta`` the angle of ``v_j - v_i`` projected to the centre's tangent plane.

    Patches: with ``radius``, the vertices with ``rho <= radius`` (searched up to
    ``SEARCH_SLACK * radius`` along edges for ``"exp_map"``); with ``k``, the first ``k`` vertices
    reached (ties to the lower index); with both, at most ``k`` within the radius. The centre
    itself is not an edge of its patch.

    Args:
        verts: ``(V, 3)`` float, or a ``Meshes`` (packed; patches never cross meshes).
        faces: ``(F, 3)`` integer.
        radius: patch radius ``> 0``.
        k: patch size ``>= 1``.
        method: ``"exp_map"`` or ``"dijkstra"``.
        backend: ``"auto"`` (numba when installed), ``"numba"`` or ``"reference"`` (pure Python).

    Returns:
        :class:`PolarCoordinates` ``(edge_index (2, E), rho (E,), theta (E,))`` on the vertices'
        device, ``rho``/``theta`` in their dtype. Computed on the CPU in float64; not differentiable.
    """
    if method not in POLAR_METHODS:
        raise ValueError(f"method must be one of {POLAR_METHODS}, got {method!r}")
    if backend not in ("auto", "numba", "reference"):
        raise ValueError(f"backend must be 'auto', 'numba' or 'reference', got {backend!r}")
    if radius is None and k is None:
        raise ValueError("local_polar_coordinates needs radius, k or both, got neither")
    if radius is not None and not (isinstance(radius, (int, float)) and not isinstance(radius, bool) and radius > 0):
        raise ValueError(f"radius must be a positive float, got {radius!r}")
    if k is not None and not (isinstance(k, int) and not isinstance(k, bool) and k >= 1):
        raise ValueError(f"k must be an int >= 1, got {k!r}")
    verts_t, faces_t = _mesh_input(verts, faces, "local_polar_coordinates")
    import scipy.sparse as sp

    v = verts_t.detach().cpu().double().numpy()
    f = faces_t.cpu().numpy().astype(np.int64)
    n = v.shape[0]
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]) if f.shape[0] else np.zeros((0, 2), np.int64)
    e = e[e[:, 0] != e[:, 1]]
    e = np.concatenate([e, e[:, ::-1]])
    adjacency = sp.csr_matrix((np.ones(e.shape[0]), (e[:, 0], e[:, 1])), shape=(n, n))
    adjacency.sum_duplicates()
    adjacency.sort_indices()
    indptr, indices = adjacency.indptr.astype(np.int64), adjacency.indices.astype(np.int64)
    rows = np.repeat(np.arange(n), np.diff(indptr))
    weights = np.linalg.norm(v[indices] - v[rows], axis=1)
    normals, frames = _tangent_frames(v, f, indptr, indices)
    limit = math.inf if radius is None else float(radius) * (SEARCH_SLACK if method == "exp_map" else 1.0)
    # With a radius, exp_map filters by the unfolded distance afterwards: the search must not stop at k.
    filter_later = radius is not None and method == "exp_map"
    max_count = n if k is None or filter_later else k
    kernels = None if backend == "reference" else _numba_kernels()
    if backend == "numba" and kernels is None:
        raise ImportError("backend='numba' needs numba: pip install numba")
    args = (v, normals, frames, indptr, indices, weights, limit, max_count)
    centre, nbr, path, unfolded = _patches_reference(*args) if kernels is None else _patches_numba(kernels, *args)
    if method == "exp_map":
        rho = np.hypot(unfolded[:, 0], unfolded[:, 1])
        theta = np.arctan2(unfolded[:, 1], unfolded[:, 0])
    else:
        rho = path
        step = v[nbr] - v[centre]
        theta = np.arctan2(np.einsum("ed,ed->e", step, frames[centre, 1]),
                           np.einsum("ed,ed->e", step, frames[centre, 0]))
    keep = rho <= radius if filter_later else np.ones(rho.shape[0], dtype=bool)
    if filter_later and k is not None:
        # At most k per centre among those within the radius, in search order.
        first_of_centre = np.searchsorted(centre[keep], centre[keep])
        keep[keep] = np.arange(int(keep.sum())) - first_of_centre < k
    theta = np.where(theta <= -math.pi, math.pi, theta)
    device = verts_t.device
    edge_index = torch.from_numpy(np.stack([nbr[keep], centre[keep]])).to(device)
    return PolarCoordinates(edge_index, torch.from_numpy(rho[keep]).to(device, verts_t.dtype),
                            torch.from_numpy(theta[keep]).to(device, verts_t.dtype))

