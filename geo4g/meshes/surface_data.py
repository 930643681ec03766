"""Per-mesh operators for learning on surfaces, computed once and cached, and their batching.

The surface networks of :mod:`geo4g.meshes.spectral_conv` (``SpectralCNN``) and
:mod:`geo4g.meshes.diffusion_net` (``DiffusionNet``) read the same precomputed operators of each
mesh, :class:`SurfaceOperators`:

- the truncated Laplace-Beltrami eigenbasis ``evals (K,)``, ``evecs (V, K)`` (``M``-orthonormal,
  from :func:`~geo4g.meshes.spectral.laplacian_eigenpairs`) and the lumped mass ``mass (V,)``;
- the stiffness matrix ``L`` (sparse ``(V, V)``), for implicit diffusion;
- per-vertex tangent frames and the gradient operators ``grad_x``, ``grad_y`` (sparse ``(V, V)``):
  ``(grad_x @ u)[i]``, ``(grad_y @ u)[i]`` are the components, in vertex ``i``'s frame, of the
  gradient of the piecewise-linear function ``u``, the area-weighted mean of the gradients
  (:func:`~geo4g.meshes.geodesic.face_gradient`) on the faces around ``i`` projected to the
  vertex's tangent plane. Exact for linear functions on a flat mesh.

:func:`surface_operators` computes them (the eigenbasis dominates the cost) and caches the result
in memory keyed by a SHA-256 of the vertex and face bytes and the options, like
:func:`~geo4g.meshes.spectral.laplacian_eigenpairs`, and optionally as files in a folder.

A batch of meshes of different sizes is a :class:`SurfaceBatch` (:func:`batch_operators`): the
basis is zero-padded to ``(B, V, K)`` (padding rows and columns of ``evecs`` and padding entries
of ``mass`` are zero, so projections ``Phi^T M x`` ignore padding and synthesis ``Phi c`` gives zero
padding rows), and the sparse operators are block diagonal over the *padded* rows
``b * V + i``, so they apply to ``x.reshape(B * V, C)`` directly.

Disconnected meshes (the procedural shapes are unions of closed parts) have one zero eigenvalue
per component; everything here works per component: diffusion and spectral filters never mix
components, and the gradients are local.

:func:`subdivide_long_edges` makes the very uneven triangulations of generated shapes usable by
spectral methods (conforming longest-edge bisection), and :func:`face_to_vertex_labels` turns
per-face labels into per-vertex ones.
"""
from __future__ import annotations

import math
import os
from typing import List, NamedTuple, Optional, Sequence, Union

import torch

from geo4g.structures import Meshes
from geo4g.structures.checks import check_faces, check_finite, check_tensor, describe

from ._cache import ResultCache, cache_key
from .geodesic import face_gradient
from .laplacian_matrices import _mesh_input, mass_matrix, robust_laplacian, stiffness_matrix
from .spectral import heat_kernel_signature, laplacian_eigenpairs

__all__ = [
    "SurfaceOperators",
    "SurfaceBatch",
    "surface_operators",
    "batch_operators",
    "as_surface_batch",
    "vertex_frames",
    "vertex_gradient_operators",
    "clear_operators_cache",
    "hks_features",
    "subdivide_long_edges",
    "face_to_vertex_labels",
]

OPERATOR_LAPLACIANS = ("cot", "robust")
#: Entries kept by the in-memory cache of :func:`surface_operators` (least recently used first out).
CACHE_SIZE = 256
#: Version tag of the cached layout; bump it when the operators change meaning.
_CACHE_VERSION = 1

#: Edge flips of :func:`subdivide_long_edges` only between faces whose normals differ by less than this.
FLIP_MAX_ANGLE_DEG = 1.0
#: Rounds of simultaneous flips after each subdivision round.
FLIP_MAX_ROUNDS = 100


def _moved(tensors, device, dtype: Optional[torch.dtype]) -> list:
    """``tensors`` on ``device``, in ``dtype`` when one is given."""
    return [t.to(device=device, dtype=dtype) if dtype is not None else t.to(device) for t in tensors]


class SurfaceOperators(NamedTuple):
    """The precomputed operators of one mesh of ``V`` vertices (see the module docstring).

    Attributes:
        evals: ``(K,)`` ascending Laplace-Beltrami eigenvalues (one ~0 per connected component).
        evecs: ``(V, K)`` ``M``-orthonormal eigenvectors.
        mass: ``(V,)`` lumped vertex areas (positive).
        stiffness: sparse COO ``(V, V)`` Laplacian ``L`` (positive semi-definite).
        frames: ``(V, 3, 3)``: rows ``x``-axis, ``y``-axis and unit normal of each vertex's tangent frame.
        grad_x, grad_y: sparse COO ``(V, V)``: the tangent gradient components in the frames.
    """

    evals: torch.Tensor
    evecs: torch.Tensor
    mass: torch.Tensor
    stiffness: torch.Tensor
    frames: torch.Tensor
    grad_x: torch.Tensor
    grad_y: torch.Tensor

    @property
    def num_verts(self) -> int:
        return int(self.evecs.shape[0])

    @property
    def k(self) -> int:
        return int(self.evals.shape[0])

    def to(self, device=None, dtype: Optional[torch.dtype] = None) -> "SurfaceOperators":
        """The operators on ``device`` (default: where they are) in float ``dtype`` (default: kept)."""
        device = self.evals.device if device is None else device
        return SurfaceOperators(*_moved(self, device, dtype))


class SurfaceBatch(NamedTuple):
    """The operators of ``B`` meshes, padded to ``V`` vertices and ``K`` eigenpairs.

    Attributes:
        evals: ``(B, K)``; padding entries 0 (their eigenvector columns are zero).
        evecs: ``(B, V, K)``; zero padding rows and columns.
        mass: ``(B, V)``; zero at padding (this is what marks padding for the layers).
        stiffness, grad_x, grad_y: sparse COO ``(B V, B V)``, block diagonal over the padded rows
            ``b * V + i``; padding rows and columns are empty.
        frames: ``(B, V, 3, 3)``, zero at padding.
        lengths: ``(B,)`` long, the vertices of each mesh.
    """

    evals: torch.Tensor
    evecs: torch.Tensor
    mass: torch.Tensor
    stiffness: torch.Tensor
    frames: torch.Tensor
    grad_x: torch.Tensor
    grad_y: torch.Tensor
    lengths: torch.Tensor

    @property
    def num_verts(self) -> int:
        """The padded vertex count ``V``."""
        return int(self.evecs.shape[1])

    @property
    def k(self) -> int:
        return int(self.evals.shape[1])

    def mask(self) -> torch.Tensor:
        """``(B, V)`` bool, True at real vertices."""
        return torch.arange(self.num_verts, device=self.lengths.device)[None] < self.lengths[:, None]

    def to(self, device=None, dtype: Optional[torch.dtype] = None) -> "SurfaceBatch":
        """The batch on ``device`` in float ``dtype`` (``lengths`` stays long)."""
        device = self.evals.device if device is None else device
        return SurfaceBatch(*_moved(self[:-1], device, dtype), self.lengths.to(device))


# --------------------------------------------------------------------------- computation
def _unit_rows(x: torch.Tensor) -> torch.Tensor:
    n = x.norm(dim=-1, keepdim=True)
    return x / torch.where(n > 0, n, torch.ones_like(n))


def vertex_frames(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """``(V, 3, 3)`` tangent frames of ``verts (V, 3)`` with ``faces (F, 3)`` long: rows ``e1``,
    ``e2 = n x e1``, ``n`` (the area-weighted unit normal).

    ``e1`` is the projection of the ``x`` axis onto the tangent plane, or of the ``y`` axis where the
    normal is within ~25 degrees of ``x``; a vertex without a face gets the normal ``z``.
    """
    fv = verts[faces]
    cross = torch.linalg.cross(fv[:, 1] - fv[:, 0], fv[:, 2] - fv[:, 0], dim=-1)
    normals = torch.zeros_like(verts).index_add(0, faces.reshape(-1), cross.repeat_interleave(3, 0))
    length = normals.norm(dim=-1, keepdim=True)
    z_axis = torch.tensor([0.0, 0.0, 1.0], dtype=verts.dtype, device=verts.device)
    normals = torch.where(length > 0, normals / torch.where(length > 0, length, torch.ones_like(length)), z_axis)
    axis = torch.zeros_like(verts)
    use_y = normals[:, 0].abs() > 0.9
    axis[:, 0] = (~use_y).to(verts.dtype)
    axis[:, 1] = use_y.to(verts.dtype)
    e1 = _unit_rows(axis - (axis * normals).sum(-1, keepdim=True) * normals)
    e2 = torch.linalg.cross(normals, e1, dim=-1)
    return torch.stack([e1, e2, normals], 1)


def vertex_gradient_operators(verts: torch.Tensor, faces: torch.Tensor, frames: torch.Tensor):
    """The per-vertex tangent gradient as two sparse matrices (see the module docstring).

    Args:
        verts: ``(V, 3)`` float.
        faces: ``(F, 3)`` long.
        frames: ``(V, 3, 3)`` from :func:`vertex_frames`.

    Returns:
        ``(grad_x, grad_y)``, sparse COO ``(V, V)``: the area-weighted mean of the face gradients
        around each vertex, in the vertex's frame. Vertices without area get zero rows; degenerate
        faces add nothing.
    """
    n = verts.shape[0]
    G = face_gradient(verts, faces).coalesce()
    rows, cols = G.indices()
    values = G.values()
    face, axis = rows // 3, rows % 3
    fv = verts[faces]
    areas = 0.5 * torch.linalg.cross(fv[:, 1] - fv[:, 0], fv[:, 2] - fv[:, 0], dim=-1).norm(dim=-1)
    vertex_area = torch.zeros(n, dtype=verts.dtype, device=verts.device).index_add(
        0, faces.reshape(-1), areas.repeat_interleave(3))
    safe = torch.where(vertex_area > 0, vertex_area, torch.ones_like(vertex_area))
    out_rows, out_cols, vx, vy = [], [], [], []
    for corner in range(3):
        vertex = faces[face, corner]
        weight = areas[face] / safe[vertex] * values
        out_rows.append(vertex)
        out_cols.append(cols)
        vx.append(weight * frames[vertex, 0].gather(1, axis[:, None])[:, 0])
        vy.append(weight * frames[vertex, 1].gather(1, axis[:, None])[:, 0])
    r, c = torch.cat(out_rows), torch.cat(out_cols)
    grad_x = torch.sparse_coo_tensor(torch.stack([r, c]), torch.cat(vx), (n, n), check_invariants=False).coalesce()
    grad_y = torch.sparse_coo_tensor(torch.stack([r, c]), torch.cat(vy), (n, n), check_invariants=False).coalesce()
    return grad_x, grad_y


_CACHE = ResultCache("surface operators", SurfaceOperators._fields, size=lambda: CACHE_SIZE)


def clear_operators_cache() -> None:
    """Empty the in-memory cache of :func:`surface_operators` (files in a ``cache_dir`` are kept)."""
    _CACHE.clear()


def _compute(verts: torch.Tensor, faces: torch.Tensor, k: int, laplacian: str, method: str) -> dict:
    v = verts.detach().cpu().double()
    f = faces.detach().cpu().long()
    pairs = laplacian_eigenpairs(v, f, k, laplacian=laplacian, mass="lumped", method=method)
    if laplacian == "robust":
        L, M = robust_laplacian(v, f)
    else:
        L, M = stiffness_matrix(v, f, kind="cot"), mass_matrix(v, f, kind="lumped")
    M = M.coalesce()
    mass = torch.zeros(v.shape[0], dtype=v.dtype).index_add(0, M.indices()[0], M.values())
    frames = vertex_frames(v, f)
    grad_x, grad_y = vertex_gradient_operators(v, f, frames)
    return dict(evals=pairs.evals, evecs=pairs.evecs, mass=mass, stiffness=L.coalesce(), frames=frames,
                grad_x=grad_x, grad_y=grad_y)


def surface_operators(verts, faces=None, k: int = 128, laplacian: str = "cot", method: str = "auto",
                      cache: bool = True, cache_dir: Optional[Union[str, os.PathLike]] = None
                      ) -> Union[SurfaceOperators, List[SurfaceOperators]]:
    """The operators of a mesh for ``SpectralCNN`` and ``DiffusionNet`` (see the module docstring).

    Args:
        verts: ``(V, 3)`` float; or a ``Meshes`` (``faces=None``): one result per mesh.
        faces: ``(F, 3)`` integer.
        k: eigenpairs to keep, ``1 <= k <= V``.
        laplacian: ``"cot"`` (cotangent stiffness, lumped mass) or ``"robust"``
            (:func:`~geo4g.meshes.laplacian_matrices.robust_laplacian`, for non-manifold or degenerate meshes).
        method: eigensolver of :func:`~geo4g.meshes.spectral.laplacian_eigenpairs`.
        cache: reuse the result for identical input from an in-memory LRU cache of
            :data:`CACHE_SIZE` entries (keyed by a SHA-256 of the vertex and face bytes and the options).
        cache_dir: also store results as ``<key>.pt`` files in this folder (written atomically) and
            read them back in later processes.

    Returns:
        :class:`SurfaceOperators` on the vertices' device and in their dtype (computed in float64 on
        the CPU, detached: the operators are not differentiable); a list for a ``Meshes``.

    Raises:
        ValueError: ``k`` outside ``[1, V]``, unknown options, non-finite vertices, bad faces,
            an unreadable cache file.
    """
    if laplacian not in OPERATOR_LAPLACIANS:
        raise ValueError(f"laplacian must be one of {OPERATOR_LAPLACIANS}, got {laplacian!r}")
    if isinstance(verts, Meshes):
        if faces is not None:
            raise ValueError(f"faces must be None for a Meshes batch, got {describe(faces)}")
        return [surface_operators(v, f, k, laplacian, method, cache, cache_dir)
                for v, f in zip(verts.verts_list(), verts.faces_list())]
    verts, faces = _mesh_input(verts, faces, "surface_operators")
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"k must be an int, got {describe(k)}")
    n = verts.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k must lie in [1, V] = [1, {n}] for a mesh of {n} vertices, got k={k}; "
                         f"use a smaller k or a finer mesh (see subdivide_long_edges)")
    key = cache_key(verts, faces, (k, laplacian, method), _CACHE_VERSION) if cache or cache_dir is not None else None
    data = _CACHE.get(key, cache_dir, memory=cache) if key is not None else None
    if data is None:
        data = _compute(verts, faces, k, laplacian, method)
        if key is not None:
            _CACHE.put(key, data, cache_dir, memory=cache)
    return SurfaceOperators(**{name: data[name] for name in SurfaceOperators._fields}).to(verts.device, verts.dtype)


# --------------------------------------------------------------------------- batching
def _check_operators(ops, name: str) -> SurfaceOperators:
    if not isinstance(ops, SurfaceOperators):
        raise TypeError(f"{name} must be a SurfaceOperators (from surface_operators), got {describe(ops)}")
    n, k = ops.evecs.shape[-2], ops.evals.shape[-1]
    if ops.evals.dim() != 1 or ops.evecs.dim() != 2 or ops.evecs.shape[1] != k:
        raise ValueError(f"{name}: evals (K,) and evecs (V, K) disagree: evals {tuple(ops.evals.shape)}, "
                         f"evecs {tuple(ops.evecs.shape)}")
    for field, shape in (("mass", (n,)), ("stiffness", (n, n)), ("frames", (n, 3, 3)), ("grad_x", (n, n)),
                         ("grad_y", (n, n))):
        if tuple(getattr(ops, field).shape) != shape:
            raise ValueError(f"{name}.{field} must have shape {shape} for V={n} vertices, "
                             f"got {tuple(getattr(ops, field).shape)}")
    return ops


def _block_sparse(mats: Sequence[torch.Tensor], stride: int) -> torch.Tensor:
    idx, vals = [], []
    for b, m in enumerate(mats):
        m = m.coalesce()
        idx.append(m.indices() + b * stride)
        vals.append(m.values())
    size = stride * len(mats)
    return torch.sparse_coo_tensor(torch.cat(idx, 1), torch.cat(vals), (size, size), check_invariants=False).coalesce()


def batch_operators(ops: Sequence[SurfaceOperators], num_verts: Optional[int] = None) -> SurfaceBatch:
    """Pad the operators of ``B`` meshes into a :class:`SurfaceBatch`.

    Args:
        ops: ``B >= 1`` :class:`SurfaceOperators` on one device, of one dtype (``K`` may differ).
        num_verts: the padded vertex count ``V`` (default: the largest mesh), e.g. the ``V`` of a
            padded ``(B, V, C)`` feature tensor; at least the largest mesh.

    Returns:
        :class:`SurfaceBatch` (see its docstring for what padding holds).
    """
    if isinstance(ops, SurfaceOperators) or not isinstance(ops, (list, tuple)) or not ops:
        raise TypeError(f"ops must be a non-empty list of SurfaceOperators, got {describe(ops)}")
    ops = [_check_operators(o, f"ops[{i}]") for i, o in enumerate(ops)]
    dtype, device = ops[0].evals.dtype, ops[0].evals.device
    for i, o in enumerate(ops):
        if o.evals.dtype != dtype or o.evals.device != device:
            raise ValueError(f"ops must share one dtype and device, got {dtype} on {device} at [0] and "
                             f"{o.evals.dtype} on {o.evals.device} at [{i}]")
    lengths = torch.tensor([o.num_verts for o in ops], dtype=torch.long, device=device)
    largest = int(lengths.max())
    if num_verts is None:
        num_verts = largest
    if isinstance(num_verts, bool) or not isinstance(num_verts, int) or num_verts < largest:
        raise ValueError(f"num_verts must be an int >= the largest mesh ({largest} vertices), got {num_verts!r}")
    k = max(o.k for o in ops)
    B, V = len(ops), num_verts
    evals = torch.zeros(B, k, dtype=dtype, device=device)
    evecs = torch.zeros(B, V, k, dtype=dtype, device=device)
    mass = torch.zeros(B, V, dtype=dtype, device=device)
    frames = torch.zeros(B, V, 3, 3, dtype=dtype, device=device)
    for b, o in enumerate(ops):
        n = o.num_verts
        evals[b, :o.k] = o.evals
        evecs[b, :n, :o.k] = o.evecs
        mass[b, :n] = o.mass
        frames[b, :n] = o.frames
    return SurfaceBatch(evals, evecs, mass, _block_sparse([o.stiffness for o in ops], V), frames,
                        _block_sparse([o.grad_x for o in ops], V), _block_sparse([o.grad_y for o in ops], V),
                        lengths)


def as_surface_batch(x: torch.Tensor, ops) -> Union[SurfaceOperators, SurfaceBatch]:
    """The operators matching ``x``: one mesh's ``SurfaceOperators`` for ``x (V, C)``; for ``x (B, V, C)``
    a ``SurfaceBatch`` as given, or built from a list of ``B`` ``SurfaceOperators`` padded to ``V``."""
    check_tensor(x, "x", ndim=(2, 3), kind="float", shape_hint="(V, C) or (B, V, C)")
    if x.dim() == 2:
        if not isinstance(ops, SurfaceOperators):
            raise TypeError(f"ops must be one mesh's SurfaceOperators for x of shape {tuple(x.shape)}, "
                            f"got {describe(ops)}")
        if ops.num_verts != x.shape[0]:
            raise ValueError(f"ops are for V={ops.num_verts} vertices but x has shape {tuple(x.shape)}")
        return ops
    if isinstance(ops, (list, tuple)) and not isinstance(ops, (SurfaceBatch, SurfaceOperators)):
        if len(ops) != x.shape[0]:
            raise ValueError(f"ops must hold one SurfaceOperators per mesh (B={x.shape[0]}), got {len(ops)}")
        ops = batch_operators(list(ops), num_verts=x.shape[1])
    if not isinstance(ops, SurfaceBatch):
        raise TypeError(f"ops must be a SurfaceBatch or a list of SurfaceOperators for x of shape "
                        f"{tuple(x.shape)}, got {describe(ops)}")
    if ops.evecs.shape[:2] != x.shape[:2]:
        raise ValueError(f"ops are padded to (B, V) = {tuple(ops.evecs.shape[:2])} but x has shape {tuple(x.shape)}")
    return ops


# --------------------------------------------------------------------------- features
def hks_features(ops: Union[SurfaceOperators, SurfaceBatch], times: Union[int, torch.Tensor] = 16) -> torch.Tensor:
    """Scale-normalised heat kernel signatures, the usual input features of ``DiffusionNet``.

    ``HKS(x, t) A / sum_x M_x HKS(x, t)`` (``A`` the surface area): each channel has area-weighted
    mean 1 on every mesh, so the features do not grow with ``1 / t`` at small times.

    Args:
        ops: one mesh's :class:`SurfaceOperators` or a :class:`SurfaceBatch`.
        times: ``(T,)`` diffusion times or a count (log-spaced per mesh, see
            :func:`~geo4g.meshes.spectral.heat_kernel_signature`).

    Returns:
        ``(V, T)`` or ``(B, V, T)`` (zero padding rows).
    """
    if not isinstance(ops, (SurfaceOperators, SurfaceBatch)):
        raise TypeError(f"ops must be a SurfaceOperators or a SurfaceBatch, got {describe(ops)}")
    hks = heat_kernel_signature(ops.evals, ops.evecs, times)
    total = (ops.mass[..., :, None] * hks).sum(-2, keepdim=True)
    area = ops.mass.sum(-1)[..., None, None]
    return hks * area / total.clamp(min=torch.finfo(hks.dtype).tiny)


# --------------------------------------------------------------------------- remeshing and labels
def subdivide_long_edges(verts: torch.Tensor, faces: torch.Tensor, max_edge: float,
                         face_labels: Optional[torch.Tensor] = None, max_faces: int = 2_000_000,
                         flip: bool = True):
    """Split every edge longer than ``max_edge`` at its midpoint until none is left (conforming),
    with Delaunay edge flips on flat regions in between.

    Each round marks the edges longer than ``max_edge``; every face then splits by the marked
    edges among its three: one (always its longest) into two triangles, two into three (first
    across the longest edge), three into four. Both faces of an edge see the same midpoint, so
    the mesh stays conforming (no T-junctions) and keeps its connected components; the surface
    does not move (midpoints lie on it). Bisection keeps each triangle's shape class (a long thin
    triangle splits into long thin triangles), and the diagonals it splits can leave obtuse
    angles behind, i.e. negative cotangent weights. With ``flip=True`` each round is followed by
    Delaunay edge flips (Lawson) between faces that are coplanar (normals within
    :data:`FLIP_MAX_ANGLE_DEG`) and carry the same label, which also leaves the surface in place:
    on flat regions the result is Delaunay, so its cotangent weights there are non-negative (a
    better-behaved Laplacian). This is not isotropic remeshing: thin triangles can remain where
    the input's vertex distribution forces them.

    Args:
        verts: ``(V, 3)`` float.
        faces: ``(F, 3)`` integer, consistently oriented.
        max_edge: the longest edge allowed, ``> 0``.
        face_labels: optional ``(F,)`` per-face values, carried to the child faces.
        max_faces: stop with a ``ValueError`` before the mesh would exceed this many faces.
        flip: run the Delaunay flips.

    Returns:
        ``(verts (V', 3), faces (F', 3))``, plus ``face_labels (F',)`` when given. The first ``V``
        vertices are the input ones; orientation is kept.
    """
    check_tensor(verts, "verts", ndim=2, last_dim=3, kind="float", shape_hint="(V, 3)")
    check_finite(verts, "verts")
    check_faces(faces, "faces", verts.shape[0])
    if isinstance(max_edge, bool) or not isinstance(max_edge, (int, float)) or not max_edge > 0 \
            or not math.isfinite(max_edge):
        raise ValueError(f"max_edge must be a positive float, got {max_edge!r}")
    if face_labels is not None:
        check_tensor(face_labels, "face_labels", ndim=1, shape_hint="(F,)")
        if face_labels.shape[0] != faces.shape[0]:
            raise ValueError(f"face_labels must have one entry per face (F={faces.shape[0]}), "
                             f"got shape {tuple(face_labels.shape)}")
    verts, faces = verts.clone(), faces.long()
    labels = face_labels
    while faces.shape[0]:
        corner_a, corner_b = faces, faces[:, [1, 2, 0]]  # edge e of face f joins corners e and e+1
        lengths = (verts[corner_b] - verts[corner_a]).norm(dim=-1)  # (F, 3)
        marked = lengths > max_edge
        if not bool(marked.any()):
            break
        count = marked.sum(1)
        growth = int(count.sum())
        if faces.shape[0] + growth > max_faces:
            raise ValueError(f"subdivide_long_edges would exceed max_faces={max_faces} faces with "
                             f"max_edge={max_edge}; raise max_edge or max_faces")
        n = verts.shape[0]
        lo, hi = torch.minimum(corner_a, corner_b), torch.maximum(corner_a, corner_b)
        keys = (lo * n + hi)[marked]
        unique, inverse = torch.unique(keys, return_inverse=True)
        new_verts = 0.5 * (verts[unique // n] + verts[unique % n])
        midpoint = torch.full(faces.shape, -1, dtype=torch.long, device=faces.device)
        midpoint[marked] = n + inverse
        verts = torch.cat([verts, new_verts])
        faces, labels = _split_faces(faces, midpoint, lengths, marked, labels)
        if flip:
            faces, labels = _delaunay_flips(verts, faces, labels)
    if face_labels is None:
        return verts, faces
    return verts, faces, labels


def _delaunay_flips(verts: torch.Tensor, faces: torch.Tensor, labels: Optional[torch.Tensor],
                    max_rounds: int = FLIP_MAX_ROUNDS):
    """Flip interior edges whose opposite angles sum to more than pi, between coplanar faces of one
    label, in rounds of flips that share no face, until none is left (or ``max_rounds``)."""
    n = verts.shape[0]
    min_cos = math.cos(math.radians(FLIP_MAX_ANGLE_DEG))
    for _ in range(max_rounds):
        F = faces.shape[0]
        opposite = faces.reshape(-1)  # half-edge 3 f + c is the edge opposite corner c
        a = faces[:, [1, 2, 0]].reshape(-1)
        b = faces[:, [2, 0, 1]].reshape(-1)
        keys = torch.minimum(a, b) * n + torch.maximum(a, b)
        order = torch.argsort(keys)
        sorted_keys = keys[order]
        _, counts = torch.unique_consecutive(sorted_keys, return_counts=True)
        starts = torch.cumsum(counts, 0) - counts
        pairs = starts[counts == 2]
        h1, h2 = order[pairs], order[pairs + 1]
        f1, f2 = h1 // 3, h2 // 3
        p, q, ea, eb = opposite[h1], opposite[h2], a[h1], b[h1]
        keep = (f1 != f2) & (p != q) & (b[h2] == ea) & (a[h2] == eb)  # consistently oriented pairs only
        if labels is not None:
            keep &= labels[f1] == labels[f2]
        cot1 = _cot(verts[p], verts[ea], verts[eb])
        cot2 = _cot(verts[q], verts[ea], verts[eb])
        normal1 = torch.linalg.cross(verts[ea] - verts[p], verts[eb] - verts[p], dim=-1)
        normal2 = torch.linalg.cross(verts[eb] - verts[q], verts[ea] - verts[q], dim=-1)
        cos = (normal1 * normal2).sum(-1) / (normal1.norm(dim=-1) * normal2.norm(dim=-1)).clamp(min=1e-300)
        keep &= (cot1 + cot2 < -1e-9) & (cos > min_cos)
        new_keys = torch.minimum(p, q) * n + torch.maximum(p, q)
        keep &= ~torch.isin(new_keys, keys)
        if not bool(keep.any()):
            break
        cand = keep.nonzero()[:, 0]
        # One flip per face per round: each face takes its most violating candidate.
        rank = torch.empty_like(cand)
        rank[torch.argsort(cot1[cand] + cot2[cand])] = torch.arange(cand.shape[0], device=cand.device)
        best = torch.full((F,), cand.shape[0], dtype=torch.long, device=faces.device)
        best = best.scatter_reduce(0, f1[cand], rank, "amin").scatter_reduce(0, f2[cand], rank, "amin")
        chosen = cand[(best[f1[cand]] == rank) & (best[f2[cand]] == rank)]
        # Two flips creating the same new edge would make it non-manifold: keep the first.
        _, first = _first_occurrence(new_keys[chosen])
        chosen = chosen[first]
        faces = faces.clone()
        faces[f1[chosen]] = torch.stack([p[chosen], ea[chosen], q[chosen]], 1)
        faces[f2[chosen]] = torch.stack([q[chosen], eb[chosen], p[chosen]], 1)
    return faces, labels


def _first_occurrence(values: torch.Tensor):
    unique, inverse = torch.unique(values, return_inverse=True)
    first = torch.full((unique.shape[0],), values.shape[0], dtype=torch.long, device=values.device)
    first = first.scatter_reduce(0, inverse, torch.arange(values.shape[0], device=values.device), "amin")
    return unique, first


def _cot(p: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cotangent of the angle at ``p`` in the triangles ``(p, a, b)``."""
    u, w = a - p, b - p
    return (u * w).sum(-1) / torch.linalg.cross(u, w, dim=-1).norm(dim=-1).clamp(min=1e-300)


def _split_faces(faces, midpoint, lengths, marked, labels):
    """Children of every face given the midpoints ``(F, 3)`` (``-1``: edge not split)."""
    # Rotate each face so that its longest edge is edge 0 (corners 0 -> 1); it is split whenever
    # any edge is.
    longest = torch.where(marked, lengths, torch.full_like(lengths, -1.0)).argmax(1)
    rot = (torch.arange(3, device=faces.device)[None] + longest[:, None]) % 3
    f = faces.gather(1, rot)
    m = midpoint.gather(1, rot)
    count = (m >= 0).sum(1)
    a, b, c = f.unbind(1)
    m0, m1, m2 = m.unbind(1)  # m0 on (a, b), m1 on (b, c), m2 on (c, a)
    out, out_labels = [], []

    def emit(mask, *tris):
        if bool(mask.any()):
            for tri in tris:
                out.append(torch.stack([t[mask] for t in tri], 1))
                if labels is not None:
                    out_labels.append(labels[mask])

    emit(count == 0, (a, b, c))
    only0 = (count == 1)
    emit(only0, (a, m0, c), (m0, b, c))
    with1 = (count == 2) & (m1 >= 0)
    emit(with1, (a, m0, c), (m0, b, m1), (m0, m1, c))
    with2 = (count == 2) & (m2 >= 0)
    emit(with2, (a, m0, m2), (m0, c, m2), (m0, b, c))
    emit(count == 3, (a, m0, m2), (m0, b, m1), (m2, m1, c), (m0, m1, m2))
    faces = torch.cat(out) if out else faces[:0]
    return faces, (torch.cat(out_labels) if labels is not None and out_labels else labels)


def face_to_vertex_labels(faces: torch.Tensor, face_labels: torch.Tensor, num_verts: int,
                          weights: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Per-vertex labels: the majority label of the faces around each vertex.

    Args:
        faces: ``(F, 3)`` integer.
        face_labels: ``(F,)`` non-negative integer labels.
        num_verts: ``V``.
        weights: optional ``(F,)`` face weights (e.g. areas) for the vote; default one per face.

    Returns:
        ``(V,)`` long: the label with the largest (weighted) count among the incident faces, the
        smallest label on ties; ``-1`` for a vertex without a face.
    """
    check_faces(faces, "faces", num_verts)
    check_tensor(face_labels, "face_labels", ndim=1, kind="int", shape_hint="(F,)")
    if face_labels.shape[0] != faces.shape[0]:
        raise ValueError(f"face_labels must have one entry per face (F={faces.shape[0]}), "
                         f"got shape {tuple(face_labels.shape)}")
    if face_labels.numel() and int(face_labels.min()) < 0:
        raise ValueError(f"face_labels must be non-negative, got minimum {int(face_labels.min())}")
    num_labels = int(face_labels.max()) + 1 if face_labels.numel() else 1
    w = torch.ones(faces.shape[0], dtype=torch.float64, device=faces.device) if weights is None \
        else check_tensor(weights, "weights", ndim=1, kind="float", shape_hint="(F,)").double()
    votes = torch.zeros(num_verts * num_labels, dtype=torch.float64, device=faces.device)
    index = faces.long() * num_labels + face_labels.long()[:, None]
    votes.index_add_(0, index.reshape(-1), w.repeat_interleave(3))
    votes = votes.view(num_verts, num_labels)
    out = votes.argmax(1)
    return torch.where(votes.sum(1) > 0, out, torch.full_like(out, -1))
