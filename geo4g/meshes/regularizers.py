"""Mesh regularisers with PyTorch3D's names, signatures and values (``pytorch3d.loss``).

:func:`mesh_laplacian_smoothing`, :func:`mesh_edge_loss` and :func:`mesh_normal_consistency` take a
:class:`~geo4g.structures.Meshes` batch and return the loss averaged over the meshes, each mesh
weighted equally whatever its size. Like PyTorch3D they return ``tensor([0.])`` (with
``requires_grad=True``) for an empty batch or one without faces. Differences from PyTorch3D:
the pairing of faces around an edge in :func:`mesh_normal_consistency` is vectorised (same
pairs, same values), and a batch with faces but no edge shared by two faces gives 0 there
instead of an indexing error.
"""
from __future__ import annotations

import torch

from geo4g.structures import Meshes
from geo4g.structures.checks import describe

from .laplacian_matrices import cot_laplacian, laplacian

__all__ = ["mesh_laplacian_smoothing", "mesh_edge_loss", "mesh_normal_consistency"]

SMOOTHING_METHODS = ("uniform", "cot", "cotcurv")


def _check_meshes(meshes) -> None:
    if not isinstance(meshes, Meshes):
        raise TypeError(f"meshes must be a geo4g.structures.Meshes, got {describe(meshes)}")


def _zero(meshes: Meshes) -> torch.Tensor:
    dtype = meshes.verts_packed().dtype if len(meshes) else torch.float32
    return torch.tensor([0.0], dtype=dtype, device=meshes.device, requires_grad=True)


def mesh_laplacian_smoothing(meshes: Meshes, method: str = "uniform") -> torch.Tensor:
    """Laplacian smoothing loss: the mean over vertices of ``|L v|``, averaged over the meshes.

    With ``L V[i] = sum_j w_ij (v_j - v_i)`` (PyTorch3D's definitions, Desbrun et al. 1999):

    - ``"uniform"``: ``w_ij = 1 / deg(i)``, the offset to the neighbours' centroid;
    - ``"cot"``: ``w_ij = (cot a_ij + cot b_ij) / sum_k (cot a_ik + cot b_ik)`` (no normalisation
      where that sum is not positive);
    - ``"cotcurv"``: ``w_ij = (cot a_ij + cot b_ij) / (4 A_i)``, ``A_i`` the summed area of the faces
      at ``i``: along the mean curvature normal, of length ``H / 3`` on a fine mesh (``A_i`` is about
      three times the vertex's Voronoi area), e.g. ``1/3`` on the unit sphere.

    The weights are constants (computed without gradient, as in PyTorch3D); the loss is
    differentiable in the vertices through ``v``.

    Args:
        meshes: a ``Meshes`` batch.
        method: ``"uniform"``, ``"cot"`` or ``"cotcurv"``.

    Returns:
        A scalar tensor; ``tensor([0.])`` for an empty batch or one without faces.
    """
    _check_meshes(meshes)
    if method not in SMOOTHING_METHODS:
        raise ValueError(f"method must be one of {SMOOTHING_METHODS}, got {method!r}")
    if meshes.isempty():
        return _zero(meshes)
    N = len(meshes)
    verts = meshes.verts_packed()
    faces = meshes.faces_packed()
    weights = 1.0 / meshes.num_verts_per_mesh().gather(0, meshes.verts_packed_to_mesh_idx()).to(verts.dtype)
    with torch.no_grad():
        if method == "uniform":
            L = laplacian(verts, meshes.edges_packed())
        else:
            L, inv_areas = cot_laplacian(verts, faces)
            row_sums = torch.sparse.sum(L, dim=1).to_dense().view(-1, 1)
            if method == "cot":
                norm_w = torch.where(row_sums > 0, 1.0 / torch.where(row_sums > 0, row_sums, torch.ones_like(row_sums)),
                                     row_sums)
            else:
                norm_w = 0.25 * inv_areas
    if method == "uniform":
        loss = torch.sparse.mm(L, verts)
    elif method == "cot":
        loss = torch.sparse.mm(L, verts) * norm_w - verts
    else:
        loss = (torch.sparse.mm(L, verts) - row_sums * verts) * norm_w
    return (loss.norm(dim=1) * weights).sum() / N


def mesh_edge_loss(meshes: Meshes, target_length: float = 0.0) -> torch.Tensor:
    """Edge length loss: the mean over edges of ``(|v_i - v_j| - target_length)^2``, averaged over the meshes.

    Args:
        meshes: a ``Meshes`` batch (edges are the unique undirected edges of the faces).
        target_length: the resting edge length.

    Returns:
        A scalar tensor, differentiable in the vertices; ``tensor([0.])`` for an empty batch or one
        without faces. A mesh without edges contributes 0 (and still counts in the average).
    """
    _check_meshes(meshes)
    if isinstance(target_length, bool) or not isinstance(target_length, (int, float)):
        raise TypeError(f"target_length must be a float, got {describe(target_length)}")
    if meshes.isempty():
        return _zero(meshes)
    N = len(meshes)
    edges = meshes.edges_packed()
    verts = meshes.verts_packed()
    edge_to_mesh = meshes.edges_packed_to_mesh_idx()
    weights = 1.0 / meshes.num_edges_per_mesh().gather(0, edge_to_mesh).to(verts.dtype)
    v0, v1 = verts[edges].unbind(1)
    loss = ((v0 - v1).norm(dim=1, p=2) - target_length) ** 2.0
    return (loss * weights).sum() / N


def _face_pairs_per_edge(edge_idx_sorted: torch.Tensor, num_edges: int) -> torch.Tensor:
    """``(P, 2)`` positions into the edge-sorted face-corner list, pairing the faces around each edge.

    For an edge with ``c`` faces (positions ``0 .. c-1`` in its run) the pairs are ``(i, j)`` for
    ``i in [0, c-2]``, ``j in [1, c-1]``, ``i != j``, in that order: PyTorch3D's list comprehension,
    which pairs every two faces once for ``c <= 3`` and repeats some pairs (reversed) beyond.
    """
    counts = torch.bincount(edge_idx_sorted, minlength=num_edges)
    starts = torch.cumsum(counts, 0) - counts
    squares = counts * counts
    edge_of = torch.repeat_interleave(torch.arange(num_edges, device=counts.device), squares)
    local = torch.arange(int(squares.sum()), device=counts.device) - (torch.cumsum(squares, 0) - squares)[edge_of]
    c = counts[edge_of]
    i, j = local // c.clamp(min=1), local % c.clamp(min=1)
    keep = (i <= c - 2) & (j >= 1) & (i != j)
    base = starts[edge_of][keep]
    return torch.stack([base + i[keep], base + j[keep]], 1)


def mesh_normal_consistency(meshes: Meshes) -> torch.Tensor:
    """Normal consistency loss: the mean over pairs of faces sharing an edge of ``1 - cos(n0, n1)``.

    For an edge ``(v0, v1)`` (``v0 < v1``) and the opposite vertices ``a``, ``b`` of two faces on
    it, ``n0 = (v1 - v0) x (a - v0)`` and ``n1 = (b - v0) x (v1 - v0)``: 0 for a flat fold,
    2 for faces folded onto each other, whatever the faces' winding. Every edge pairs all its faces
    (non-manifold edges included, with PyTorch3D's pairing, see ``_face_pairs_per_edge``).

    Args:
        meshes: a ``Meshes`` batch.

    Returns:
        A scalar tensor averaged over the meshes (a mesh without shared edges contributes 0),
        differentiable in the vertices; ``tensor([0.])`` for an empty batch or one without faces.
    """
    _check_meshes(meshes)
    if meshes.isempty():
        return _zero(meshes)
    N = len(meshes)
    verts = meshes.verts_packed()
    faces = meshes.faces_packed()
    edges = meshes.edges_packed()
    face_to_edge = meshes.faces_packed_to_edges_packed()
    F, E = faces.shape[0], edges.shape[0]
    with torch.no_grad():
        edge_idx = face_to_edge.reshape(F * 3)
        vert_idx = faces.view(1, F, 3).expand(3, F, 3).transpose(0, 1).reshape(3 * F, 3)
        edge_idx, order = edge_idx.sort(stable=True)
        vert_idx = vert_idx[order]
        pairs = _face_pairs_per_edge(edge_idx, E)
    if pairs.shape[0] == 0:
        return verts.sum() * 0.0
    v0 = verts[edges[edge_idx, 0]]
    v1 = verts[edges[edge_idx, 1]]
    # Two of the three cross products vanish (the corner is v0 or v1); their sum is the face's.
    n = sum(torch.linalg.cross(v1 - v0, verts[vert_idx[:, k]] - v0, dim=1) for k in range(3))
    loss = 1 - torch.cosine_similarity(n[pairs[:, 0]], -n[pairs[:, 1]], dim=1)
    pair_mesh = meshes.verts_packed_to_mesh_idx()[vert_idx[pairs[:, 0], 0]]
    num_pairs = torch.bincount(pair_mesh, minlength=N)
    weights = 1.0 / num_pairs[pair_mesh].to(verts.dtype)
    return (loss * weights).sum() / N
