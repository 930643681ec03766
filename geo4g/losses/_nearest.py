"""Nearest neighbour (K=1) between two ragged batches of points: the core shared by
chamfer, F-score and the other losses in :mod:`geo4g.losses`.

``nearest_neighbors(x, y, x_lengths, y_lengths, norm)`` finds, for each valid
point of ``x``, its nearest valid point of ``y``. It returns indices and
distances but **no gradient**: callers gather ``y[idx]`` and recompute the
distance with autograd, which gives exact gradients to both clouds.

Three implementations, one dispatcher (see ``method``):

- ``"reference"``: full ``torch.cdist``-style difference tensor ``(B, N, M)``,
  obviously right, any device, only for tests and small inputs;
- ``"blocked"``: torch ops over row blocks so memory stays ``O(block * M)``,
  any device. For ``norm=2`` the candidates come from a matmul expansion
  ``|a|^2 - 2ab + |b|^2`` on coordinates centred per batch item (so a large
  common offset such as 1e5 does not cancel away the distances); the returned
  distance is always recomputed exactly from the gathered coordinates;
- ``"kdtree"``: SciPy's ``cKDTree`` (``workers=-1``) on the CPU, exact, in float64;
- ``"triton"``: a Triton kernel for ``norm=2`` on CUDA that streams over tiles
  of ``y`` keeping a running minimum (exact differences, no expansion).

``"auto"`` picks Triton (else blocked) for CUDA tensors, and on the CPU the
KD-tree once ``N * M`` per batch item reaches :data:`KDTREE_MIN_PAIRS` (and
``D <= 8``), else blocked.
"""
from __future__ import annotations

import os
from typing import NamedTuple, Optional

import torch

from ._inputs import check_cloud_pair

__all__ = ["NearestNeighbors", "nearest_neighbors", "nearest_neighbors_both"]

#: On the CPU, use the KD-tree when ``N * M`` (points of x times points of y,
#: per batch item) is at least this (2^18, about 512 x 512). Measured on a 2-core
#: CPU: at B=1 and B=8, blocked and KD-tree cost the same near N = M = 512
#: (B=8: 3.9 ms vs 3.3 ms); below, the blocked path wins (B=8, N=M=128:
#: 0.38 ms vs 1.75 ms), above, the KD-tree wins (B=8, N=M=1024: 22 ms vs 6 ms).
KDTREE_MIN_PAIRS = 1 << 18
#: The KD-tree is only chosen for low-dimensional points.
KDTREE_MAX_DIM = 8
#: Elements of the ``(rows, M)`` distance block held at once by the blocked path.
BLOCK_ELEMENTS = 1 << 22

METHODS = ("auto", "reference", "blocked", "kdtree", "triton")


class NearestNeighbors(NamedTuple):
    """``dists (B, N)`` and ``idx (B, N)`` long (see :func:`nearest_neighbors`)."""

    dists: torch.Tensor
    idx: torch.Tensor


def nearest_neighbors(
    x: torch.Tensor,
    y: torch.Tensor,
    x_lengths: Optional[torch.Tensor] = None,
    y_lengths: Optional[torch.Tensor] = None,
    norm: int = 2,
    method: str = "auto",
) -> NearestNeighbors:
    """For each point of ``x``, its nearest valid point of ``y`` (no gradient).

    Args:
        x: ``(B, N, D)`` float, padded; rows past ``x_lengths[b]`` are ignored.
        y: ``(B, M, D)`` float, padded; rows past ``y_lengths[b]`` are never chosen.
        x_lengths: ``(B,)`` integer, valid rows of ``x`` (default: all ``N``).
        y_lengths: ``(B,)`` integer, valid rows of ``y`` (default: all ``M``).
        norm: ``2`` for the squared Euclidean distance, ``1`` for the L1 distance.
        method: ``"auto"`` (default), ``"reference"``, ``"blocked"``, ``"kdtree"``
            (CPU only) or ``"triton"`` (CUDA, or the Triton interpreter with
            ``TRITON_INTERPRET=1``; ``norm=2`` only). Mostly for tests and benchmarks.

    Returns:
        ``NearestNeighbors(dists, idx)``:
        ``dists (B, N)`` in ``x``'s dtype, the distance (squared for ``norm=2``)
        recomputed exactly from ``x[b, n]`` and ``y[b, idx[b, n]]``, detached;
        ``idx (B, N)`` long, the index into ``y[b]``.
        Padded rows of ``x`` (``n >= x_lengths[b]``) and every row of an item
        whose ``y`` cloud is empty (``y_lengths[b] == 0``) get ``dists = 0`` and
        ``idx = -1``. Ties go to one of the tied points (the lowest index for
        ``"reference"``; unspecified for the others).

    Raises:
        TypeError / ValueError: naming the argument, for non-float or mis-shaped
            points, lengths that do not fit, NaN/inf values, an unknown
            ``norm`` or ``method``.
    """
    x, y, x_lengths, y_lengths = _check_inputs(x, y, x_lengths, y_lengths, norm)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    with torch.no_grad():
        x_d, y_d = x.detach(), y.detach()
        if method == "auto":
            method = _choose_method(x_d, y_d, norm)
        if x.shape[0] == 0 or x.shape[1] == 0 or y.shape[1] == 0:
            idx = torch.full(x.shape[:2], -1, dtype=torch.long, device=x.device)
        elif method == "reference":
            idx = _nn_reference(x_d, y_d, y_lengths, norm)
        elif method == "blocked":
            idx = _nn_blocked(x_d, y_d, x_lengths, y_lengths, norm)
        elif method == "kdtree":
            idx = _nn_kdtree(x_d, y_d, x_lengths, y_lengths, norm)
        else:
            if norm != 2:
                raise ValueError(f"method='triton' supports norm=2 only, got norm={norm}")
            from ._kernels.nearest_triton import nearest_triton

            idx = nearest_triton(x_d, y_d, x_lengths, y_lengths)
        return _finish(x_d, y_d, idx, x_lengths, y_lengths, norm)


def nearest_neighbors_both(
    x: torch.Tensor,
    y: torch.Tensor,
    x_lengths: Optional[torch.Tensor] = None,
    y_lengths: Optional[torch.Tensor] = None,
    norm: int = 2,
    method: str = "auto",
) -> "tuple[NearestNeighbors, NearestNeighbors]":
    """Both directions at once: ``(nearest_neighbors(x, y, ...), nearest_neighbors(y, x, ...))``.

    Same arguments, conventions and errors as :func:`nearest_neighbors`. On the
    KD-tree path both trees are built and queried back to back in NumPy/SciPy
    with no torch op in between (torch's idle OpenMP threads otherwise spin
    and slow SciPy's query threads down on small machines).
    """
    x, y, x_lengths, y_lengths = _check_inputs(x, y, x_lengths, y_lengths, norm)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "auto":
        method = _choose_method(x, y, norm)
    if method != "kdtree" or min(x.shape) == 0 or y.shape[1] == 0:
        return (nearest_neighbors(x, y, x_lengths, y_lengths, norm, method),
                nearest_neighbors(y, x, y_lengths, x_lengths, norm, method))
    with torch.no_grad():
        x_d, y_d = x.detach(), y.detach()
        ixy, iyx = _nn_kdtree_pair(x_d, y_d, x_lengths, y_lengths, norm)
        return (_finish(x_d, y_d, ixy, x_lengths, y_lengths, norm),
                _finish(y_d, x_d, iyx, y_lengths, x_lengths, norm))


# --------------------------------------------------------------------------- checks


def _check_inputs(x, y, x_lengths, y_lengths, norm):
    if isinstance(norm, bool) or norm not in (1, 2):
        raise ValueError(f"norm must be 1 or 2, got {norm!r}")
    return check_cloud_pair(x, y, x_lengths, y_lengths)


def _choose_method(x: torch.Tensor, y: torch.Tensor, norm: int) -> str:
    if x.is_cuda:
        if norm == 2 and _triton_available():
            return "triton"
        return "blocked"
    if x.shape[2] <= KDTREE_MAX_DIM and x.shape[1] * y.shape[1] >= KDTREE_MIN_PAIRS:
        return "kdtree"
    return "blocked"


def _triton_available() -> bool:
    if os.environ.get("GEO4G_DISABLE_TRITON"):
        return False
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


# --------------------------------------------------------------------------- helpers


def _mask(lengths: torch.Tensor, size: int) -> torch.Tensor:
    return torch.arange(size, device=lengths.device)[None, :] < lengths[:, None]


def pair_distance(a: torch.Tensor, b: torch.Tensor, norm: int) -> torch.Tensor:
    """Distance between matching rows ``(..., D)``: squared L2 (``norm=2``) or L1. Differentiable."""
    diff = a - b
    return diff.square().sum(-1) if norm == 2 else diff.abs().sum(-1)


def gather_points(y: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``y (B, M, D)`` rows at ``idx (B, N)``; ``idx = -1`` reads row 0 (callers mask it). Differentiable."""
    if y.shape[1] == 0:
        return y.new_zeros(idx.shape + (y.shape[2],))
    safe = idx.clamp(min=0)
    return torch.gather(y, 1, safe[..., None].expand(*safe.shape, y.shape[2]))


def _finish(x, y, idx, x_lengths, y_lengths, norm) -> NearestNeighbors:
    valid = _mask(x_lengths, x.shape[1]) & (y_lengths > 0)[:, None]
    idx = torch.where(valid, idx, torch.full_like(idx, -1))
    dists = pair_distance(x, gather_points(y, idx), norm)
    dists = torch.where(valid, dists, torch.zeros_like(dists))
    return NearestNeighbors(dists, idx)


def _center(x, y, x_lengths, y_lengths) -> torch.Tensor:
    """``(B, 1, D)`` per-item centre of the valid points of both clouds (0 for empty items)."""
    xm = _mask(x_lengths, x.shape[1])[..., None].to(x.dtype)
    ym = _mask(y_lengths, y.shape[1])[..., None].to(x.dtype)
    total = (x * xm).sum(1, keepdim=True) + (y * ym).sum(1, keepdim=True)
    count = (x_lengths + y_lengths).clamp(min=1).to(x.dtype)[:, None, None]
    return total / count


# --------------------------------------------------------------------------- implementations


def _nn_reference(x, y, y_lengths, norm) -> torch.Tensor:
    """Full ``(B, N, M)`` difference tensor, first minimum: the oracle."""
    d = pair_distance(x[:, :, None, :], y[:, None, :, :], norm)
    d = d.masked_fill(~_mask(y_lengths, y.shape[1])[:, None, :], float("inf"))
    return d.argmin(-1)


def _nn_blocked(x, y, x_lengths, y_lengths, norm, block_elements: int = BLOCK_ELEMENTS) -> torch.Tensor:
    B, N, D = x.shape
    M = y.shape[1]
    work = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    c = _center(x.to(work), y.to(work), x_lengths, y_lengths)
    xc, yc = x.to(work) - c, y.to(work) - c
    ybad = ~_mask(y_lengths, M)
    rows = max(1, min(N, block_elements // max(M, 1)))
    bchunk = max(1, min(B, block_elements // max(rows * M, 1)))
    idx = torch.empty((B, N), dtype=torch.long, device=x.device)
    if norm == 2:
        yy = yc.square().sum(-1)  # (B, M)
        yt = yc.transpose(1, 2)
    for b0 in range(0, B, bchunk):
        b1 = min(B, b0 + bchunk)
        bad = ybad[b0:b1, None, :]
        for n0 in range(0, N, rows):
            n1 = min(N, n0 + rows)
            xb = xc[b0:b1, n0:n1]
            if norm == 2:
                d = torch.baddbmm(yy[b0:b1, None, :], xb, yt[b0:b1], alpha=-2.0)
                d.add_(xb.square().sum(-1, keepdim=True))
            else:
                d = torch.cdist(xb, yc[b0:b1], p=1.0)
            d.masked_fill_(bad, float("inf"))
            idx[b0:b1, n0:n1] = d.argmin(-1)
    return idx


def _as_numpy64(t: torch.Tensor):
    if t.device.type != "cpu":
        raise ValueError(f"method='kdtree' needs CPU tensors, got a tensor on {t.device}")
    # numpy conversion, not a torch op (see nearest_neighbors_both)
    return t.to(torch.float64).numpy() if t.dtype in (torch.float16, torch.bfloat16) else t.numpy().astype("float64")


def _kdtree_query(points_np, queries_np, out_np, nq: int, norm: int):
    from scipy.spatial import cKDTree

    tree = cKDTree(points_np, balanced_tree=False, compact_nodes=False)
    _, i = tree.query(queries_np, k=1, p=norm, workers=-1)
    out_np[:nq] = i


def _nn_kdtree(x, y, x_lengths, y_lengths, norm) -> torch.Tensor:
    import numpy as np

    xn, yn = _as_numpy64(x), _as_numpy64(y)
    xl, yl = x_lengths.tolist(), y_lengths.tolist()
    idx = np.full(x.shape[:2], -1, dtype=np.int64)
    for b in range(x.shape[0]):
        if xl[b] and yl[b]:
            _kdtree_query(yn[b, : yl[b]], xn[b, : xl[b]], idx[b], xl[b], norm)
    return torch.from_numpy(idx)


def _nn_kdtree_pair(x, y, x_lengths, y_lengths, norm):
    import numpy as np

    xn, yn = _as_numpy64(x), _as_numpy64(y)
    xl, yl = x_lengths.tolist(), y_lengths.tolist()
    ixy = np.full(x.shape[:2], -1, dtype=np.int64)
    iyx = np.full(y.shape[:2], -1, dtype=np.int64)
    for b in range(x.shape[0]):
        if xl[b] and yl[b]:
            _kdtree_query(yn[b, : yl[b]], xn[b, : xl[b]], ixy[b], xl[b], norm)
            _kdtree_query(xn[b, : xl[b]], yn[b, : yl[b]], iyx[b], yl[b], norm)
    return torch.from_numpy(ixy), torch.from_numpy(iyx)
