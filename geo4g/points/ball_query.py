"""Neighbours within a radius (PyTorch3D's ``ball_query``).

Implementations of the index search (``method``), all with PyTorch3D's result: the first ``K``
points of ``p2`` in index order at squared distance ``< radius ** 2`` (that square rounded to the
points' dtype; distances summed over the coordinates in order, as in ``knn_points``):

- ``"reference"``: every pair, cumulative counts; the test oracle;
- ``"blocked"``: the same over row blocks (sized as in ``knn_points``; any device);
- ``"grid"``: numba uniform grid with cells of ``radius`` on the CPU, all cores
  (``_kernels/ball_numba.py``);
- ``"kdtree"``: SciPy's ``cKDTree.query_ball_point`` (``workers=-1``), the CPU fallback without numba;
- ``"triton"``: a Triton kernel on CUDA (``_kernels/ball_triton.py``), streaming ``p2`` in index
  order and stopping once every row of a block holds ``K``.
"""
from __future__ import annotations

from typing import Optional

import torch

from geo4g._threads import run_chunks, single_thread

from ._inputs import check_count, check_radius
from .knn import KNN, _pair_distance, block_size, check_inputs, cpu_method, grid_inputs, knn_gather, triton_available

__all__ = ["ball_query"]

METHODS = ("auto", "reference", "blocked", "grid", "kdtree", "triton")
#: Grid cells are ``radius / GRID_SPLIT`` wide (1 measured faster than 2 and 3: 16k points, 1024
#: queries, K=32, uniform and sphere-surface clouds).
GRID_SPLIT = 1


def ball_query(p1, p2, lengths1: Optional[torch.Tensor] = None, lengths2: Optional[torch.Tensor] = None,
               K: int = 500, radius: float = 0.2, return_nn: bool = True, method: str = "auto") -> KNN:
    """The first ``K`` points of ``p2`` (in index order) within ``radius`` of each point of ``p1``.

    Args:
        p1: ``(B, P1, D)`` float, or a ``Pointclouds``.
        p2: ``(B, P2, D)`` float of the same dtype and device, or a ``Pointclouds``.
        lengths1, lengths2: ``(B,)`` long valid points per cloud (default: all).
        K: the most neighbours kept per point, ``>= 1``.
        radius: the ball radius, ``> 0``; a point is inside when its squared distance is
            ``< radius ** 2`` (strictly, as in PyTorch3D and torch_cluster).
        return_nn: also return the neighbour coordinates.
        method: which implementation finds the indices, mostly for tests and benchmarks:
            ``"auto"`` (default), ``"reference"``, ``"blocked"``, ``"grid"`` (CPU, needs numba),
            ``"kdtree"`` (CPU) or ``"triton"`` (CUDA or ``TRITON_INTERPRET=1``). ``"auto"`` picks
            Triton on CUDA when triton is installed, else blocked torch; on the CPU, as
            ``knn_points`` does: for float32/float64 points with ``D <= 12`` the numba grid
            (without numba: SciPy's KD-tree once some cloud has ``P1 * P2 >= 2**18`` pairs, else
            blocked torch), else blocked torch; blocked torch on other devices. All give the
            same result (bfloat16 distances may round differently in the Triton kernel).

    Returns:
        ``KNN(dists, idx, knn)``: ``dists (B, P1, K)`` squared distances, ``idx (B, P1, K)``
        with ``-1`` in the slots past the neighbours found (and for padding points of
        ``p1``), ``knn (B, P1, K, D)``; ``dists`` and ``knn`` are 0 in those slots.
        Neighbours are in index order, not sorted by distance (PyTorch3D's convention).
        ``dists`` and ``knn`` are differentiable with respect to ``p1`` and ``p2``.

    Raises:
        ValueError / TypeError: naming the argument, for wrong shapes, mismatched batches,
            lengths out of range, NaN in valid points, ``K < 1``, ``radius <= 0`` or an
            unknown ``method``.
    """
    with single_thread():
        p1, p2, lengths1, lengths2 = check_inputs(p1, p2, lengths1, lengths2)
    check_count(K, "K")
    r = check_radius(radius)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    with torch.no_grad():
        idx, dists = _ball_idx(p1.detach(), p2.detach(), lengths1, lengths2, K, r, method)
    if dists is not None and not return_nn and not (torch.is_grad_enabled() and (p1.requires_grad or p2.requires_grad)):
        return KNN(dists, idx, None)  # the kernel's distances are _finish's, bit for bit
    with single_thread():
        return _finish(p1, p2, idx, return_nn)


def _ball_idx(p1, p2, lengths1, lengths2, K: int, radius: float, method: str):
    """``(idx, dists)``: ``(B, P1, K)`` long indices, ``-1`` padded, and, from the grid kernel only,
    the matching squared distances with zeros in the padding (else ``None``)."""
    B, P1, D = p1.shape
    if method == "auto":
        method = _choose_method(p1, p2, lengths1, lengths2)
    if B == 0 or P1 == 0 or p2.shape[1] == 0:
        return torch.full((B, P1, K), -1, dtype=torch.long, device=p1.device), None
    if D == 0:
        method = "reference"  # points without coordinates: every distance is 0
    r2 = torch.tensor(radius * radius, dtype=p1.dtype)  # the threshold in the points' dtype
    if method == "grid":
        return _ball_grid(p1, p2, lengths1, lengths2, K, radius, r2)
    if method == "reference":
        idx = _ball_idx_reference(p1, p2, lengths1, lengths2, K, r2.to(p1.device))
    elif method == "blocked":
        idx = _ball_idx_blocked(p1, p2, lengths1, lengths2, K, r2.to(p1.device))
    elif method == "kdtree":
        idx = _ball_idx_kdtree(p1, p2, lengths1, lengths2, K, radius, r2)
    else:
        from ._kernels.ball_triton import ball_triton

        idx = ball_triton(p1, p2, lengths1, lengths2, K, r2.to(p1.device))
    return idx, None


def _choose_method(p1, p2, lengths1, lengths2) -> str:
    if p1.is_cuda:
        return "triton" if triton_available() else "blocked"
    return cpu_method(p1, lengths1, lengths2, "ball_numba")


def _first_k_inside(inside: torch.Tensor, K: int) -> torch.Tensor:
    """``(..., K)`` column indices of the first ``K`` true entries of each row of ``inside (..., M)``, ``-1`` padded."""
    M = inside.shape[-1]
    rank = inside.long().cumsum(-1) - 1  # rank of each inside point among its row's, in index order
    keep = inside & (rank < K)
    out = torch.full(inside.shape[:-1] + (K + 1,), -1, dtype=torch.long, device=inside.device)
    slot = torch.where(keep, rank, torch.full_like(rank, K))
    source = torch.arange(M, device=inside.device).expand(inside.shape)
    out.scatter_(-1, slot, torch.where(keep, source, torch.full_like(source, -1)))
    return out[..., :K]


def _inside(p1, p2, lengths1, lengths2, r2) -> torch.Tensor:
    d = _pair_distance(p1[:, :, None], p2[:, None], 2)
    inside = (d < r2) & (torch.arange(p2.shape[1], device=p1.device)[None, None, :] < lengths2[:, None, None])
    return inside & (torch.arange(p1.shape[1], device=p1.device)[None, :, None] < lengths1[:, None, None])


def _ball_idx_reference(p1, p2, lengths1, lengths2, K: int, r2: torch.Tensor) -> torch.Tensor:
    """``(B, P1, K)`` indices, ``-1`` padded, by brute force over all pairs (the test oracle)."""
    return _first_k_inside(_inside(p1, p2, lengths1, lengths2, r2), K)


def _ball_idx_blocked(p1, p2, lengths1, lengths2, K: int, r2: torch.Tensor,
                      block_elements: Optional[int] = None) -> torch.Tensor:
    """The reference over blocks of rows of ``p1`` (memory ``O(block_elements)``)."""
    block_elements = block_elements or block_size(p1.device)
    B, P1 = p1.shape[:2]
    P2 = p2.shape[1]
    idx = torch.empty(B, P1, K, dtype=torch.long, device=p1.device)
    rows = max(1, min(P1, block_elements // P2))
    bchunk = max(1, min(B, block_elements // (rows * P2)))
    for b0 in range(0, B, bchunk):
        b1 = min(B, b0 + bchunk)
        for n0 in range(0, P1, rows):
            n1 = min(P1, n0 + rows)
            inside = _inside(p1[b0:b1, n0:n1], p2[b0:b1], (lengths1[b0:b1] - n0).clamp(0, n1 - n0),
                             lengths2[b0:b1], r2)
            idx[b0:b1, n0:n1] = _first_k_inside(inside, K)
    return idx


def _ball_grid(p1, p2, lengths1, lengths2, K: int, radius: float, r2: torch.Tensor):
    """``(idx, dists)`` ``(B, P1, K)`` from the numba grid kernel, on all cores (``-1`` and 0 padded)."""
    import numpy as np

    from ._kernels import knn_numba

    kernels, x, y, l1, l2 = grid_inputs("ball_numba", p1, p2, lengths1, lengths2)
    grid = knn_numba.build_grid(y, l2, radius / GRID_SPLIT, 0.0, knn_numba.CELLS_PER_POINT)
    queue = knn_numba.query_order(x, l1, l2, grid)
    idx = np.full((x.shape[0], x.shape[1], K), -1, dtype=np.int64)
    dists = np.zeros((x.shape[0], x.shape[1], K), dtype=x.dtype)
    run_chunks(kernels.ball_query, queue.shape[0], knn_numba.MIN_CHUNK, x, l2, grid, K, r2.numpy()[()], radius,
               queue, idx, dists)
    return torch.from_numpy(idx), torch.from_numpy(dists)


def _ball_idx_kdtree(p1, p2, lengths1, lengths2, K: int, radius: float, r2: torch.Tensor) -> torch.Tensor:
    """``(B, P1, K)`` indices from SciPy's ``cKDTree.query_ball_point`` (``workers=-1``): candidates
    within a slightly larger radius in float64, kept when their distance (``_pair_distance``, in the
    points' dtype) is ``< r2``, first ``K`` in index order."""
    import numpy as np
    from scipy.spatial import cKDTree

    from .knn import _cpu_numpy

    x, y = _cpu_numpy(p1, "kdtree"), _cpu_numpy(p2, "kdtree")
    B, P1, _ = x.shape
    idx = torch.full((B, P1, K), -1, dtype=torch.long)
    for b, (n1, n2) in enumerate(zip(lengths1.tolist(), lengths2.tolist())):
        if n1 == 0 or n2 == 0:
            continue
        found = cKDTree(y[b, :n2]).query_ball_point(x[b, :n1], radius * (1 + 1e-6), workers=-1,
                                                   return_sorted=True)
        counts = np.fromiter(map(len, found), dtype=np.int64, count=n1)
        if not counts.any():
            continue
        cols = torch.from_numpy(np.concatenate([np.asarray(f, dtype=np.int64) for f in found]))
        rows = torch.repeat_interleave(torch.arange(n1), torch.from_numpy(counts))
        inside = _pair_distance(p1[b, rows], p2[b, cols], 2) < r2
        rows, cols = rows[inside], cols[inside]
        # rank within each row (cols are in index order per row)
        first = torch.cumsum(torch.bincount(rows, minlength=n1), 0) - torch.bincount(rows, minlength=n1)
        rank = torch.arange(rows.shape[0]) - first[rows]
        keep = rank < K
        idx[b, rows[keep], rank[keep]] = cols[keep]
    return idx


def _finish(p1, p2, idx, return_nn: bool) -> KNN:
    found = idx >= 0
    neighbours = knn_gather(p2, idx.clamp_min(0))
    zero = torch.zeros((), dtype=p1.dtype, device=p1.device)
    dists = torch.where(found, _pair_distance(p1[:, :, None], neighbours, 2), zero)
    knn = torch.where(found[..., None], neighbours, zero) if return_nn else None
    return KNN(dists, idx, knn)
