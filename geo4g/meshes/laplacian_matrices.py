"""Mesh and point-cloud Laplacians as sparse torch matrices.

Two families live here:

- PyTorch3D's operators with PyTorch3D's signatures and values, so code can switch by changing
  an import: :func:`cot_laplacian` (``L_ij = cot a_ij + cot b_ij``, no diagonal, plus inverse
  vertex areas), :func:`laplacian` (the uniform, row-normalised graph Laplacian, ``-1`` on the
  diagonal) and :func:`norm_laplacian` (inverse edge lengths).
- The finite-element operators used by the rest of :mod:`geo4g.meshes`:
  :func:`cotangent_weights` ``W``, :func:`stiffness_matrix` ``L = D - W`` (positive
  semi-definite, rows sum to zero), :func:`mass_matrix` ``M`` (lumped, full or mixed Voronoi) and
  :func:`robust_laplacian` ``(L, M)`` for non-manifold meshes and point clouds. The Laplace-Beltrami
  operator is ``-M^{-1} L``; eigenpairs solve ``L phi = lambda M phi``. :func:`face_cotangents` gives
  the per-corner cotangents and face areas they are built from; :func:`sparse_to_scipy` converts
  any of these matrices for SciPy.

Input is one mesh, ``verts (V, 3)`` and ``faces (F, 3)``, or a :class:`~geo4g.structures.Meshes`
batch passed as ``verts`` (with ``faces=None``): the result is then block diagonal over the packed
vertices (``meshes.verts_packed()``), one block per mesh, since faces never join two meshes.

Every matrix is a coalesced sparse COO tensor of the vertices' dtype and device (float64 is
recommended for spectra); its values are differentiable with respect to the vertices. The
assembly is vectorised torch, so it runs on the CPU and on CUDA alike; only the local
triangulation of point clouds in :func:`robust_laplacian` runs on the CPU (SciPy's KD-tree and
Qhull), and its result is moved back to the points' device.

Edge cases: a degenerate face (zero area, or nearly so: ``|e1 x e2| <= 8 eps |e|_max^2`` in the
dtype's precision) contributes nothing to ``W``, ``L`` and ``M``, so no NaN or inf appears. A vertex
that no face references (or only degenerate faces) has a zero row and column in ``W`` and ``L``
and a tiny mass, :data:`ISOLATED_MASS_FRACTION` times the mean mass of the other vertices, so ``M``
stays invertible; it forms its own connected component with eigenvalue 0.
"""
from __future__ import annotations

import importlib
import warnings
from typing import Tuple

import torch

from geo4g._threads import run_chunks
from geo4g.structures import Meshes, Pointclouds
from geo4g.structures.checks import check_faces, check_finite, check_tensor, describe

__all__ = [
    "cot_laplacian",
    "laplacian",
    "norm_laplacian",
    "cotangent_weights",
    "stiffness_matrix",
    "mass_matrix",
    "robust_laplacian",
    "face_cotangents",
    "sparse_to_scipy",
    "to_csr",
]

STIFFNESS_KINDS = ("cot", "uniform")
MASS_KINDS = ("lumped", "full", "voronoi")
#: Mass given to a vertex without any non-degenerate face, relative to the mean mass of the
#: others: small enough not to change the spectrum of the rest, large enough for ``M^{-1}``.
ISOLATED_MASS_FRACTION = 1e-8
#: A face is degenerate when ``|e1 x e2| <= DEGENERATE_FACTOR * eps * max|e|^2``.
DEGENERATE_FACTOR = 8.0


# --------------------------------------------------------------------------- input handling
def _mesh_input(verts, faces, fn: str) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(verts (V, 3) float, faces (F, 3) long)`` from one mesh or the packed views of a ``Meshes``."""
    if isinstance(verts, Meshes):
        if faces is not None:
            raise ValueError(f"{fn}: faces must be None when verts is a Meshes batch (its faces are used), "
                             f"got {describe(faces)}")
        return verts.verts_packed(), verts.faces_packed()
    check_tensor(verts, "verts", ndim=2, last_dim=3, kind="float", shape_hint="(V, 3)")
    check_finite(verts, "verts")
    if faces is None:
        raise ValueError(f"{fn}: faces (F, 3) is required when verts is a tensor (or pass a Meshes as verts)")
    check_faces(faces, "faces", verts.shape[0])
    if faces.device != verts.device:
        raise ValueError(f"faces must be on the device of verts ({verts.device}), got {faces.device}")
    return verts, faces.long()


def _check_edges(verts, edges) -> torch.Tensor:
    check_tensor(verts, "verts", ndim=2, kind="float", shape_hint="(V, 3)")
    check_tensor(edges, "edges", ndim=2, last_dim=2, kind="int", shape_hint="(E, 2)")
    if edges.numel() and (int(edges.min()) < 0 or int(edges.max()) >= verts.shape[0]):
        raise ValueError(f"edges indices must lie in [0, {verts.shape[0]}) for {verts.shape[0]} vertices, "
                         f"got range [{int(edges.min())}, {int(edges.max())}]")
    return edges.long()


def _coalesced(rows, cols, values, n: int) -> torch.Tensor:
    """A COO tensor from entries with unique ``(row, col)`` already in row-major order."""
    idx = torch.stack([rows, cols]) if rows.numel() else rows.new_zeros(2, 0)
    return torch.sparse_coo_tensor(idx, values, (n, n), device=values.device, is_coalesced=True,
                                   check_invariants=False)


def _sparse(rows, cols, values, n: int) -> torch.Tensor:
    """A coalesced ``(n, n)`` COO matrix; duplicate entries are summed.

    ``torch.unique`` on linear keys and ``index_add`` instead of ``Tensor.coalesce``: 2.4x faster on
    the CPU for a million entries, and the values stay differentiable through ``index_add``.
    """
    keys, inverse = torch.unique(rows * max(n, 1) + cols, return_inverse=True)
    summed = values.new_zeros(keys.shape[0]).index_add(0, inverse, values)
    return _coalesced(keys // max(n, 1), keys % max(n, 1), summed, n)


def _symmetric(i, j, w, n: int, diagonal=None, unique: bool = False) -> torch.Tensor:
    """The symmetric ``(n, n)`` matrix with ``w`` summed into ``(i, j)`` and ``(j, i)`` (``i != j``) and an
    optional full ``diagonal (n,)``; entries are merged per undirected edge first, which sorts a third
    of the keys that assembling all entries would. ``unique``: the pairs are already unique with
    ``i < j`` (nothing to merge)."""
    if unique:
        e0, e1, edge_w = i, j, w
    else:
        a, b = torch.minimum(i, j), torch.maximum(i, j)
        keys, inverse = torch.unique(a * max(n, 1) + b, return_inverse=True)
        edge_w = w.new_zeros(keys.shape[0]).index_add(0, inverse, w)
        e0, e1 = keys // max(n, 1), keys % max(n, 1)
    rows, cols, vals = [e0, e1], [e1, e0], [edge_w, edge_w]
    if diagonal is not None:
        ar = torch.arange(n, device=w.device)
        rows, cols, vals = rows + [ar], cols + [ar], vals + [diagonal]
    rows, cols, vals = torch.cat(rows), torch.cat(cols), torch.cat(vals)
    order = torch.argsort(rows * max(n, 1) + cols)
    return _coalesced(rows[order], cols[order], vals[order], n)


def _diag(values: torch.Tensor) -> torch.Tensor:
    ar = torch.arange(values.shape[0], device=values.device)
    return _coalesced(ar, ar, values, values.shape[0])


# --------------------------------------------------------------------------- PyTorch3D's operators
def laplacian(verts: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """The uniform graph Laplacian of PyTorch3D (``pytorch3d.ops.laplacian``).

    ``L[i, i] = -1``, ``L[i, j] = 1 / deg(i)`` for every edge ``(i, j)`` (either direction),
    ``0`` otherwise, so ``(L x)_i`` is the mean of the neighbours minus ``x_i``. A duplicated
    edge counts twice in the degree and in ``L[i, j]``, as in PyTorch3D; a vertex without edges
    keeps ``L[i, i] = -1``.

    Args:
        verts: ``(V, D)`` float, only its size, dtype and device are used.
        edges: ``(E, 2)`` integer vertex indices.

    Returns:
        ``L``: sparse COO ``(V, V)`` of the dtype of ``verts``.
    """
    edges = _check_edges(verts, edges)
    V = verts.shape[0]
    e0, e1 = edges.unbind(1)
    rows, cols = torch.cat([e0, e1]), torch.cat([e1, e0])
    deg = torch.zeros(V, dtype=verts.dtype, device=verts.device).index_add_(
        0, rows, torch.ones(rows.shape[0], dtype=verts.dtype, device=verts.device))
    inv = torch.where(deg > 0, 1.0 / deg.clamp(min=1), torch.zeros_like(deg))
    ar = torch.arange(V, device=verts.device)
    return _sparse(torch.cat([rows, ar]), torch.cat([cols, ar]),
                   torch.cat([inv[rows], -torch.ones(V, dtype=verts.dtype, device=verts.device)]), V)


def cot_laplacian(verts: torch.Tensor, faces: torch.Tensor, eps: float = 1e-12
                  ) -> Tuple[torch.Tensor, torch.Tensor]:
    """PyTorch3D's cotangent Laplacian (``pytorch3d.ops.cot_laplacian``), same values.

    ``L[i, j] = cot a_ij + cot b_ij`` summed over the faces holding the edge ``(i, j)`` (one term
    on a boundary edge), no diagonal; this is ``2 W`` of :func:`cotangent_weights`. Face areas come
    from Heron's formula with the squared area clamped to ``eps``, so a degenerate face gives large
    but finite cotangents (PyTorch3D's behaviour; the FEM operators below drop such faces instead).

    Args:
        verts: ``(V, 3)`` float.
        faces: ``(F, 3)`` integer.
        eps: lower bound of ``16 * area^2 / 16`` (Heron's product) before the square root.

    Returns:
        ``L``: sparse COO ``(V, V)``, symmetric, differentiable in ``verts``.
        ``inv_areas``: ``(V, 1)``, one over the summed area of the faces at each vertex (0 for a
        vertex without faces). Unlike PyTorch3D (always float32) it has the dtype of ``verts``.
    """
    verts, faces = _mesh_input(verts, faces, "cot_laplacian")
    V = verts.shape[0]
    fv = verts[faces]
    v0, v1, v2 = fv.unbind(1)
    A = (v1 - v2).norm(dim=1)
    B = (v0 - v2).norm(dim=1)
    C = (v0 - v1).norm(dim=1)
    s = 0.5 * (A + B + C)
    area = (s * (s - A) * (s - B) * (s - C)).clamp(min=eps).sqrt()
    A2, B2, C2 = A * A, B * B, C * C
    cot = torch.stack([B2 + C2 - A2, A2 + C2 - B2, A2 + B2 - C2], dim=1) / (4.0 * area[:, None])
    ii = faces[:, [1, 2, 0]].reshape(-1)
    jj = faces[:, [2, 0, 1]].reshape(-1)
    vals = cot.reshape(-1)
    L = _sparse(torch.cat([ii, jj]), torch.cat([jj, ii]), torch.cat([vals, vals]), V)  # i == j possible
    areas = torch.zeros(V, dtype=verts.dtype, device=verts.device).index_add(
        0, faces.reshape(-1), area.repeat_interleave(3))
    inv_areas = torch.where(areas > 0, 1.0 / torch.where(areas > 0, areas, torch.ones_like(areas)),
                            torch.zeros_like(areas))
    return L, inv_areas.view(-1, 1)


def norm_laplacian(verts: torch.Tensor, edges: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """PyTorch3D's ``norm_laplacian``: ``L[i, j] = L[j, i] = 1 / (|v_i - v_j| + eps)`` per edge, no diagonal.

    Args:
        verts: ``(V, D)`` float.
        edges: ``(E, 2)`` integer; a duplicated edge sums its weights.

    Returns:
        ``L``: sparse COO ``(V, V)``, symmetric, differentiable in ``verts``.
    """
    edges = _check_edges(verts, edges)
    w = 1.0 / ((verts[edges[:, 0]] - verts[edges[:, 1]]).norm(dim=1) + eps)
    e0, e1 = edges.unbind(1)
    return _sparse(torch.cat([e0, e1]), torch.cat([e1, e0]), torch.cat([w, w]), verts.shape[0])


# --------------------------------------------------------------------------- FEM operators
def face_cotangents(verts, faces=None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Cotangent of every corner angle and the area of every face.

    Args:
        verts: ``(V, 3)`` float, or a ``Meshes`` (then ``faces=None``, packed faces are used).
        faces: ``(F, 3)`` integer.

    Returns:
        ``cot: (F, 3)``, ``cot[f, k]`` the cotangent of the angle at corner ``k`` (opposite the edge
        ``(faces[f, k+1], faces[f, k+2])``), and ``areas: (F,)``. Both are 0 on a degenerate face.
    """
    verts, faces = _mesh_input(verts, faces, "face_cotangents")
    return _face_cotangents(verts, faces)


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise dot product of ``(N, 3)`` tensors, unrolled: several times faster than ``(a * b).sum(-1)``
    for millions of rows on the CPU."""
    return a[:, 0] * b[:, 0] + a[:, 1] * b[:, 1] + a[:, 2] * b[:, 2]


def _face_edges(verts: torch.Tensor, faces: torch.Tensor):
    """The edges opposite each corner, ``e_k = v_{k+2} - v_{k+1}`` (``(F, 3)`` each), twice the face
    areas and the degenerate-face mask (see the module docstring)."""
    v0, v1, v2 = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    e0, e1, e2 = v2 - v1, v0 - v2, v1 - v0
    cross = torch.linalg.cross(e2, -e1, dim=-1)
    double_area = _dot(cross, cross).sqrt()
    longest = torch.maximum(torch.maximum(_dot(e0, e0), _dot(e1, e1)), _dot(e2, e2))
    valid = double_area > DEGENERATE_FACTOR * torch.finfo(verts.dtype).eps * longest
    return (e0, e1, e2), double_area, valid


def _face_areas(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    _, double_area, valid = _face_edges(verts, faces)
    return torch.where(valid, 0.5 * double_area, torch.zeros_like(double_area))


def _face_cotangents(verts: torch.Tensor, faces: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    edges, double_area, valid = _face_edges(verts, faces)
    safe = torch.where(valid, double_area, torch.ones_like(double_area))
    # Corner k lies between the edges opposite corners k+1 and k+2 (pointing away from it: -e_{k+2}, e_{k+1}).
    dots = torch.stack([-_dot(edges[(k + 2) % 3], edges[(k + 1) % 3]) for k in range(3)], 1)
    cot = torch.where(valid[:, None], dots / safe[:, None], torch.zeros_like(dots))
    return cot, torch.where(valid, 0.5 * double_area, torch.zeros_like(double_area))


def _weights_from_cot(faces: torch.Tensor, cot: torch.Tensor, n: int) -> torch.Tensor:
    """``W`` with ``W_ij = sum cot / 2`` over the corners opposite the edge ``(i, j)``."""
    ii = faces[:, [1, 2, 0]].reshape(-1)
    jj = faces[:, [2, 0, 1]].reshape(-1)
    keep = ii != jj
    return _symmetric(ii[keep], jj[keep], 0.5 * cot.reshape(-1)[keep], n)


def _stiffness_from_cot(faces: torch.Tensor, cot: torch.Tensor, n: int) -> torch.Tensor:
    """``L = D - W``, ``D`` the row sums of ``W``."""
    ii = faces[:, [1, 2, 0]].reshape(-1)
    jj = faces[:, [2, 0, 1]].reshape(-1)
    keep = ii != jj
    ii, jj, half = ii[keep], jj[keep], 0.5 * cot.reshape(-1)[keep]
    degree = half.new_zeros(n).index_add(0, ii, half).index_add(0, jj, half)
    return _symmetric(ii, jj, -half, n, degree)


def _unique_edges(faces: torch.Tensor, n: int) -> torch.Tensor:
    """``(E, 2)`` unique undirected edges ``i < j`` of the faces, self-loops dropped."""
    e = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]).sort(dim=1).values
    e = e[e[:, 0] != e[:, 1]]
    keys = torch.unique(e[:, 0] * max(n, 1) + e[:, 1])
    return torch.stack([keys // max(n, 1), keys % max(n, 1)], 1)


def cotangent_weights(verts, faces=None) -> torch.Tensor:
    """The symmetric cotangent weight matrix ``W`` of a triangle mesh.

    ``W_ij = (cot a_ij + cot b_ij) / 2`` where ``a_ij, b_ij`` are the angles opposite the edge
    ``(i, j)`` in its faces (one term on a boundary edge, all of them on a non-manifold edge); the
    diagonal is zero. Weights are positive for Delaunay meshes and can be negative otherwise.

    Args:
        verts: ``(V, 3)`` float, or a ``Meshes`` (block diagonal over packed vertices, ``faces=None``).
        faces: ``(F, 3)`` integer.

    Returns:
        ``W``: sparse COO ``(V, V)``, symmetric, differentiable in ``verts``. Degenerate faces add nothing.
    """
    verts, faces = _mesh_input(verts, faces, "cotangent_weights")
    cot, _ = _face_cotangents(verts, faces)
    return _weights_from_cot(faces, cot, verts.shape[0])


def stiffness_matrix(verts, faces=None, kind: str = "cot") -> torch.Tensor:
    """The positive semi-definite Laplacian ``L = D - W`` (the FEM stiffness matrix for ``"cot"``).

    ``kind="cot"`` uses :func:`cotangent_weights`, ``kind="uniform"`` the graph adjacency
    (``W_ij = 1`` per edge of a face). Rows sum to zero; ``x^T L x = sum_edges W_ij (x_i - x_j)^2``.
    This is ``-igl.cotmatrix`` for ``"cot"``; the Laplace-Beltrami operator is ``-M^{-1} L``.

    Args:
        verts: ``(V, 3)`` float, or a ``Meshes`` (block diagonal over packed vertices, ``faces=None``).
        faces: ``(F, 3)`` integer.
        kind: ``"cot"`` or ``"uniform"``.

    Returns:
        ``L``: sparse COO ``(V, V)``, symmetric, differentiable in ``verts`` for ``"cot"``.
    """
    if kind not in STIFFNESS_KINDS:
        raise ValueError(f"kind must be one of {STIFFNESS_KINDS}, got {kind!r}")
    verts, faces = _mesh_input(verts, faces, "stiffness_matrix")
    n = verts.shape[0]
    if kind == "cot":
        cot, _ = _face_cotangents(verts, faces)
        return _stiffness_from_cot(faces, cot, n)
    i, j = _unique_edges(faces, n).unbind(1)
    one = torch.ones(i.shape[0], dtype=verts.dtype, device=verts.device)
    degree = torch.zeros(n, dtype=verts.dtype, device=verts.device).index_add(0, i, one).index_add(0, j, one)
    return _symmetric(i, j, -one, n, degree, unique=True)


def _fill_isolated(mass: torch.Tensor) -> torch.Tensor:
    """Give vertices without mass :data:`ISOLATED_MASS_FRACTION` of the mean positive mass."""
    positive = mass > 0
    if bool(positive.all()) or mass.numel() == 0:
        return mass
    mean = mass[positive].mean() if bool(positive.any()) else mass.new_ones(())
    return torch.where(positive, mass, ISOLATED_MASS_FRACTION * mean.detach())


def _voronoi_areas(cot: torch.Tensor, areas: torch.Tensor, sq_len: torch.Tensor) -> torch.Tensor:
    """``(F, 3)`` mixed Voronoi areas of Meyer et al. 2003 per corner.

    ``sq_len[:, k]`` is the squared length of the edge opposite corner ``k``. Non-obtuse triangle:
    ``(|e_{k+1}|^2 cot_{k+1} + |e_{k+2}|^2 cot_{k+2}) / 8`` (the circumcentric split); obtuse at
    the corner: ``A / 2``; obtuse elsewhere: ``A / 4``.
    """
    circum = torch.stack([(sq_len[:, (k + 1) % 3] * cot[:, (k + 1) % 3]
                           + sq_len[:, (k + 2) % 3] * cot[:, (k + 2) % 3]) / 8 for k in range(3)], 1)
    obtuse_here = cot < 0
    obtuse_any = obtuse_here.any(1, keepdim=True)
    split = torch.where(obtuse_here, areas[:, None] / 2, areas[:, None] / 4)
    return torch.where(obtuse_any, split, circum)


def mass_matrix(verts, faces=None, kind: str = "lumped") -> torch.Tensor:
    """The mass (area) matrix ``M`` of a triangle mesh.

    - ``"lumped"``: diagonal, a third of the area of each face at each of its corners (barycentric);
    - ``"full"``: the linear FEM mass matrix, ``A/6`` on the diagonal and ``A/12`` off it per face;
    - ``"voronoi"``: diagonal mixed Voronoi areas (Meyer et al. 2003, ``igl.massmatrix``'s default).

    All three sum to the surface area (``1^T M 1``). A vertex without a non-degenerate face gets
    :data:`ISOLATED_MASS_FRACTION` times the mean diagonal mass of the others, so ``M`` is invertible.

    Args:
        verts: ``(V, 3)`` float, or a ``Meshes`` (block diagonal over packed vertices, ``faces=None``).
        faces: ``(F, 3)`` integer.
        kind: ``"lumped"``, ``"full"`` or ``"voronoi"``.

    Returns:
        ``M``: sparse COO ``(V, V)``, symmetric positive definite, differentiable in ``verts``.
    """
    if kind not in MASS_KINDS:
        raise ValueError(f"kind must be one of {MASS_KINDS}, got {kind!r}")
    verts, faces = _mesh_input(verts, faces, "mass_matrix")
    n = verts.shape[0]
    zeros = torch.zeros(n, dtype=verts.dtype, device=verts.device)
    if kind == "voronoi":
        cot, areas = _face_cotangents(verts, faces)
        fv = verts[faces]
        sq_len = torch.stack([_dot(fv[:, (k + 2) % 3] - fv[:, (k + 1) % 3], fv[:, (k + 2) % 3] - fv[:, (k + 1) % 3])
                              for k in range(3)], 1)
        corner = _voronoi_areas(cot, areas, sq_len)
        return _diag(_fill_isolated(zeros.index_add(0, faces.reshape(-1), corner.reshape(-1))))
    areas = _face_areas(verts, faces)
    lumped = zeros.index_add(0, faces.reshape(-1), (areas / 3).repeat_interleave(3))
    if kind == "lumped":
        return _diag(_fill_isolated(lumped))
    diag = _fill_isolated(zeros.index_add(0, faces.reshape(-1), (areas / 6).repeat_interleave(3)))
    ii = faces[:, [1, 2, 0]].reshape(-1)
    jj = faces[:, [2, 0, 1]].reshape(-1)
    off = (areas / 12).repeat_interleave(3)
    keep = ii != jj  # a face with a repeated vertex has zero area anyway
    return _symmetric(ii[keep], jj[keep], off[keep], n, diag)


# --------------------------------------------------------------------------- robust Laplacian
def _mollified_lengths(lengths: torch.Tensor, mollify_factor: float) -> torch.Tensor:
    """Add one constant to every edge length so each triangle satisfies its triangle inequalities
    with a margin ``delta = mollify_factor * mean length`` (Sharp & Crane 2020, section 4.5)."""
    if lengths.numel() == 0:
        return lengths
    delta = mollify_factor * lengths.mean()
    l0, l1, l2 = lengths.unbind(1)
    violation = torch.stack([delta - l0 - l1 + l2, delta - l1 - l2 + l0, delta - l2 - l0 + l1], 1)
    return lengths + violation.max().clamp(min=0)


def _intrinsic_cot_areas(lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Corner cotangents ``(F, 3)`` and areas ``(F,)`` from edge lengths (``lengths[:, k]`` opposite corner k)."""
    a, b, c = lengths.unbind(1)
    # Heron's formula in a product form that stays accurate for thin triangles.
    sixteen_area_sq = (a + b + c) * (-a + b + c) * (a - b + c) * (a + b - c)
    area = 0.25 * sixteen_area_sq.clamp(min=0).sqrt()
    sq = lengths * lengths
    num = torch.stack([sq[:, 1] + sq[:, 2] - sq[:, 0], sq[:, 2] + sq[:, 0] - sq[:, 1],
                       sq[:, 0] + sq[:, 1] - sq[:, 2]], 1)
    valid = area > 0
    safe = torch.where(valid, area, torch.ones_like(area))
    cot = torch.where(valid[:, None], num / (4 * safe[:, None]), torch.zeros_like(num))
    return cot, torch.where(valid, area, torch.zeros_like(area))


def _tufted_operators(verts: torch.Tensor, faces: torch.Tensor, mollify_factor: float
                      ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Cotan ``L`` and lumped ``M`` from mollified intrinsic edge lengths, face by face."""
    n = verts.shape[0]
    faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 2] != faces[:, 0])]
    fv = verts[faces]
    lengths = torch.stack([(fv[:, (k + 2) % 3] - fv[:, (k + 1) % 3]).norm(dim=-1) for k in range(3)], 1)
    cot, areas = _intrinsic_cot_areas(_mollified_lengths(lengths, mollify_factor))
    L = _stiffness_from_cot(faces, cot, n)
    zeros = torch.zeros(n, dtype=verts.dtype, device=verts.device)
    mass = _fill_isolated(zeros.index_add(0, faces.reshape(-1), (areas / 3).repeat_interleave(3)))
    return L, _diag(mass)


def _local_triangles(points: torch.Tensor, n_neighbors: int, backend: str = "auto") -> torch.Tensor:
    """``(T, 3)`` triangles of every point's local Delaunay star in its estimated tangent plane.

    ``backend``: ``"numba"`` (``_kernels/star_numba.py``, on all cores), ``"reference"`` (SciPy's
    Delaunay per point) or ``"auto"`` (numba when installed).
    """
    import numpy as np
    from scipy.spatial import cKDTree

    pts = points.detach().cpu().double()
    n = pts.shape[0]
    k = min(n_neighbors, n - 1)
    if k < 2:
        return torch.zeros(0, 3, dtype=torch.long)
    _, nbr = cKDTree(pts.numpy()).query(pts.numpy(), k=k + 1)
    nbr = torch.from_numpy(np.asarray(nbr)).long()
    # The query returns each point first unless it has duplicates: put the point itself in column 0.
    nbr[:, 0] = torch.arange(n)
    centred = pts[nbr] - pts[:, None]
    _, basis = torch.linalg.eigh(centred.transpose(1, 2) @ centred)
    # The two largest principal directions span the tangent plane.
    flat = np.ascontiguousarray((centred @ basis[:, :, 1:]).numpy())
    nbr_np = nbr.numpy()
    kernels = None
    if backend != "reference":
        try:
            kernels = importlib.import_module("geo4g.meshes._kernels.star_numba")
        except ImportError:
            if backend == "numba":
                raise ImportError("backend='numba' needs numba: pip install numba") from None
    if kernels is not None:
        pairs = np.zeros((n, k + 1, 2), dtype=np.int64)
        counts = np.zeros(n, dtype=np.int64)
        run_chunks(kernels.delaunay_stars, n, kernels.MIN_SLICE, flat, pairs, counts)
        owner = np.repeat(np.arange(n), counts)
        keep = np.arange(k + 1)[None, :] < counts[:, None]
        local = pairs[keep]
        tris = np.stack([owner, nbr_np[owner, local[:, 0]], nbr_np[owner, local[:, 1]]], 1)
        return torch.from_numpy(tris).long()
    from scipy.spatial import Delaunay, QhullError

    tris = []
    for i in range(n):
        local = flat[i]
        scale = np.abs(local).max()
        if scale == 0:
            continue
        try:
            tri = Delaunay(local / scale).simplices
        except QhullError:
            continue
        star = tri[(tri == 0).any(1)]
        tris.append(nbr_np[i][star])
    if not tris:
        return torch.zeros(0, 3, dtype=torch.long)
    return torch.from_numpy(np.concatenate(tris)).long()


def _point_cloud_operators(points: torch.Tensor, mollify_factor: float, n_neighbors: int
                           ) -> Tuple[torch.Tensor, torch.Tensor]:
    faces = _local_triangles(points, n_neighbors).to(points.device)
    L, M = _tufted_operators(points, faces, mollify_factor)
    # Each triangle appears in the stars of up to its three corners.
    return L / 3, M / 3


def _block_diag(blocks) -> Tuple[torch.Tensor, ...]:
    """Stack ``(L, M)`` pairs of square sparse blocks into block-diagonal ``(L, M)``."""
    out = []
    for mats in zip(*blocks):
        offset, idx, vals = 0, [], []
        for m in mats:
            idx.append(m.indices() + offset)
            vals.append(m.values())
            offset += m.shape[0]
        out.append(torch.sparse_coo_tensor(torch.cat(idx, 1), torch.cat(vals), (offset, offset),
                                           is_coalesced=True, check_invariants=False))
    return tuple(out)


def robust_laplacian(verts, faces=None, mollify_factor: float = 1e-5, n_neighbors: int = 30
                     ) -> Tuple[torch.Tensor, torch.Tensor]:
    """A Laplacian that stays well defined on non-manifold, degenerate meshes and point clouds.

    After Sharp & Crane, "A Laplacian for Nonmanifold Triangle Meshes" (2020), without their
    intrinsic Delaunay edge flips: every face is treated on its own (as in their tufted cover),
    with intrinsic edge lengths *mollified* (all lengths grow by one constant, the least that
    makes every triangle inequality hold with margin ``mollify_factor * mean edge length``), so no
    triangle is degenerate. Cotangent weights and lumped areas come from these lengths and are
    summed over faces, which is defined for any face soup. On a Delaunay mesh this matches the
    ``robust_laplacian`` package; on a non-Delaunay one the package's edge flips make it differ
    (weights here may be negative there).

    For a point cloud (``faces=None`` and a tensor, or a ``Pointclouds``): each point's
    ``n_neighbors`` nearest neighbours are projected to its PCA tangent plane, Delaunay-triangulated
    in 2-D, and the triangles touching the point are kept; the union of these local triangulations
    is treated as above and ``L`` and ``M`` are divided by 3, since a triangle appears in the
    triangulations of up to all three corners (the package's convention).

    Args:
        verts: ``(V, 3)`` float; a ``Meshes`` (block diagonal over packed vertices); or a
            ``Pointclouds`` (block diagonal over packed points, neighbours within each cloud).
        faces: ``(F, 3)`` integer, or ``None`` for a point cloud.
        mollify_factor: relative mollification ``>= 0``.
        n_neighbors: neighbours per point for point clouds, ``>= 2``.

    Returns:
        ``(L, M)``: sparse COO ``(V, V)``, ``L`` symmetric with rows summing to zero (positive
        semi-definite on Delaunay input), ``M`` diagonal and positive. Faces with a repeated vertex
        are dropped; points whose neighbourhood cannot be triangulated (all collinear) get no triangle.
    """
    if not isinstance(mollify_factor, (int, float)) or isinstance(mollify_factor, bool) or mollify_factor < 0:
        raise ValueError(f"mollify_factor must be a non-negative float, got {mollify_factor!r}")
    if not isinstance(n_neighbors, int) or isinstance(n_neighbors, bool) or n_neighbors < 2:
        raise ValueError(f"n_neighbors must be an int >= 2, got {n_neighbors!r}")
    if isinstance(verts, Pointclouds):
        if faces is not None:
            raise ValueError(f"faces must be None for a Pointclouds batch, got {describe(faces)}")
        clouds = verts.points_list()
        if not clouds:
            empty = torch.zeros(0, 0).to_sparse()
            return empty, empty
        return _block_diag([_point_cloud_operators(p, mollify_factor, n_neighbors) for p in clouds])
    if faces is None and not isinstance(verts, Meshes):
        check_tensor(verts, "verts", ndim=2, last_dim=3, kind="float", shape_hint="(V, 3)")
        check_finite(verts, "verts")
        return _point_cloud_operators(verts, mollify_factor, n_neighbors)
    verts, faces = _mesh_input(verts, faces, "robust_laplacian")
    return _tufted_operators(verts, faces, mollify_factor)


def to_csr(matrix: torch.Tensor) -> torch.Tensor:
    """A sparse COO matrix as torch CSR, for products with dense matrices: ``csr @ x`` measured 25x
    faster than ``torch.sparse.mm(coo, x)`` on the CPU (a ``(3F, V)`` gradient, 10k vertices)."""
    with warnings.catch_warnings():
        # torch flags its CSR layout as beta on first use; matmul, the one use here, is long stable.
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
        return matrix.to_sparse_csr()


def sparse_to_scipy(matrix: torch.Tensor):
    """A torch sparse (COO or CSR) or dense 2-D tensor as a SciPy CSR matrix (detached, on the CPU)."""
    import scipy.sparse as sp

    if not isinstance(matrix, torch.Tensor) or matrix.dim() != 2:
        raise TypeError(f"matrix must be a 2-D torch tensor, got {describe(matrix)}")
    m = matrix.detach().cpu()
    if m.layout == torch.sparse_csr:
        return sp.csr_matrix((m.values().numpy(), m.col_indices().numpy(), m.crow_indices().numpy()), shape=m.shape)
    if m.layout == torch.sparse_coo:
        m = m.coalesce()
        i = m.indices().numpy()
        return sp.csr_matrix((m.values().numpy(), (i[0], i[1])), shape=m.shape)
    return sp.csr_matrix(m.numpy())

