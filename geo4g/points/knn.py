"""k nearest neighbours between batches of point clouds (PyTorch3D's ``knn_points`` / ``knn_gather``).

One public function, several implementations of the index search (``method``); the indices are
always found without gradient and the distances recomputed differentiably from the gathered points:

- ``"reference"``: every pair, stable sort; the test oracle (any device, small inputs only);
- ``"blocked"``: torch over row blocks of at most :data:`BLOCK_ELEMENTS_CPU` (CPU) or
  :data:`BLOCK_ELEMENTS` pairs, ``topk`` per block (any device). For ``D <= EXACT_MAX_DIM`` the
  distances are the reference's, exactly; above, a matmul expansion picks ``K + 8`` candidates
  that are then ranked by exact distances;
- ``"grid"``: numba uniform grid on the CPU, on all cores (``_kernels/knn_numba.py``);
- ``"kdtree"``: SciPy's ``cKDTree`` (``workers=-1``) on the CPU, the fallback without numba;
- ``"triton"``: a Triton kernel for ``K <= TRITON_MAX_K`` on CUDA (``_kernels/knn_triton.py``),
  or on the CPU under ``TRITON_INTERPRET=1``.

Every path returns the same indices: the ``K`` smallest distances, ties to the lower index, with
distances summed over the coordinates in order (``_pair_distance``), as the reference does.

On the CPU the input checks and the final gathers (small elementwise ops) run on the calling
thread only (``geo4g._threads.single_thread``): on a machine whose cores are busy with other processes a
torch OpenMP region waits for its second thread to be scheduled, which measured 40-140 ms per
check on a loaded 2-core machine against 0.2 ms on one thread. The search itself uses its own
threads (grid, KD-tree) or torch's (blocked).
"""
from __future__ import annotations

import importlib
import importlib.util
import os
from typing import NamedTuple, Optional

import torch

from geo4g._threads import run_chunks, single_thread
from geo4g.structures.checks import check_lengths, check_tensor

from ._inputs import check_count, check_pair

__all__ = ["KNN", "knn_points", "knn_gather"]

METHODS = ("auto", "reference", "blocked", "grid", "kdtree", "triton")
#: Pairs (torch elements) per block of the blocked path on the CPU (cache-sized: 2.8x faster than
#: 4M-element blocks for 4096 points, D=3, one thread) and on other devices.
BLOCK_ELEMENTS_CPU = 1 << 16
BLOCK_ELEMENTS = 1 << 22
#: Up to this dimension the blocked path forms exact coordinate differences; above it ranks
#: candidates by a matmul expansion first.
EXACT_MAX_DIM = 8
#: The grid and KD-tree paths only up to this dimension (the grid prunes with three coordinates;
#: measured faster than blocked torch up to D=12, 1024-4096 points, K=16).
GRID_MAX_DIM = 12
#: Without numba, the CPU uses the KD-tree from this many pairs ``P1 * P2`` in some cloud up (below,
#: blocked torch: SciPy's per-call thread start costs more; measured crossover near 512 x 512).
KDTREE_MIN_PAIRS = 1 << 18
#: The Triton kernel keeps ``K`` neighbours per row in registers: only up to this ``K``.
TRITON_MAX_K = 32


class KNN(NamedTuple):
    """``dists (B, P1, K)`` squared distances (L1 distances for ``norm=1``), ``idx (B, P1, K)``
    indices into ``p2``, ``knn (B, P1, K, D)`` the neighbours (``None`` unless asked for)."""

    dists: torch.Tensor
    idx: torch.Tensor
    knn: Optional[torch.Tensor]


def knn_points(p1, p2, lengths1: Optional[torch.Tensor] = None, lengths2: Optional[torch.Tensor] = None,
               norm: int = 2, K: int = 1, return_nn: bool = False, return_sorted: bool = True,
               method: str = "auto") -> KNN:
    """The ``K`` nearest points of ``p2`` for every point of ``p1``, per cloud.

    Args:
        p1: ``(B, P1, D)`` float, or a ``Pointclouds`` (then ``lengths1`` must be ``None``).
        p2: ``(B, P2, D)`` float of the same dtype and device, or a ``Pointclouds``.
        lengths1, lengths2: ``(B,)`` long, the valid points per cloud (default: all).
        norm: 2 for squared Euclidean distances, 1 for L1 distances.
        K: neighbours per point, ``>= 1``.
        return_nn: also return the neighbour coordinates.
        return_sorted: neighbours in increasing distance (otherwise in any order; they are
            sorted either way).
        method: which implementation finds the indices, mostly for tests and benchmarks:
            ``"auto"`` (default), ``"reference"``, ``"blocked"``, ``"grid"`` (CPU, needs numba),
            ``"kdtree"`` (CPU), ``"triton"`` (CUDA or ``TRITON_INTERPRET=1``, ``K <= 32``).
            ``"auto"`` picks, on CUDA, Triton for ``K <= 32`` when triton is installed, else
            blocked torch; on the CPU, for float32/float64 points with ``D <= 12``, the numba
            grid (without numba: SciPy's KD-tree once some cloud has ``P1 * P2 >= 2**18``
            pairs, else blocked torch), and blocked torch for other dtypes or ``D > 12``;
            blocked torch on other devices. All give the same result (bfloat16
            distances may round differently in the Triton kernels).

    Returns:
        ``KNN(dists, idx, knn)``. Where a cloud of ``p2`` has fewer than ``K`` points, and for
        the padding points of ``p1``, ``dists`` and ``idx`` are 0 and ``knn`` rows are 0
        (PyTorch3D's convention). Ties are broken by the lower index. ``dists`` (and
        ``knn``) are differentiable with respect to ``p1`` and ``p2``.

    Raises:
        ValueError / TypeError: naming the argument, for wrong shapes, mismatched batch
            sizes, dtypes or devices, lengths out of range, NaN in valid points, ``K < 1``,
            ``norm`` not 1 or 2 or an unknown ``method``.
    """
    with single_thread():
        p1, p2, lengths1, lengths2 = check_inputs(p1, p2, lengths1, lengths2)
    check_count(K, "K")
    if isinstance(norm, bool) or norm not in (1, 2):
        raise ValueError(f"norm must be 1 or 2, got {norm!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    with torch.no_grad():
        idx, dists = _knn_idx(p1.detach(), p2.detach(), lengths1, lengths2, norm, K, method)
    if dists is not None and not return_nn and not (torch.is_grad_enabled() and (p1.requires_grad or p2.requires_grad)):
        return KNN(dists, idx, None)  # the kernel's distances are _finish's, bit for bit
    with single_thread():
        return _finish(p1, p2, idx, lengths1, lengths2, norm, K, return_nn)


def check_inputs(p1, p2, lengths1, lengths2):
    """``(p1, p2, lengths1, lengths2)`` checked as in ``check_pair``, with errors about the lengths
    naming ``lengths1`` / ``lengths2``."""
    for points, lengths, name in ((p1, lengths1, "lengths1"), (p2, lengths2, "lengths2")):
        if lengths is not None and isinstance(points, torch.Tensor) and points.dim() == 3:
            check_lengths(lengths, name, points.shape[0], points.shape[1])
    return check_pair(p1, p2, lengths1, lengths2)


def _knn_idx(p1, p2, lengths1, lengths2, norm: int, K: int, method: str):
    """``(idx, dists)``: ``(B, P1, K)`` long indices (any value in the slots ``_finish`` zeroes) and,
    from the grid kernel only, the matching distances with zeros in those slots (else ``None``)."""
    B, P1, D = p1.shape
    P2 = p2.shape[1]
    if method == "auto":
        method = _choose_method(p1, p2, lengths1, lengths2, K)
    if B == 0 or P1 == 0 or P2 == 0:
        return torch.zeros(B, P1, K, dtype=torch.long, device=p1.device), None
    if D == 0:
        method = "reference"  # points without coordinates: every distance is 0
    if method == "grid":
        return _knn_grid(p1, p2, lengths1, lengths2, norm, K)
    if method == "reference":
        idx = _knn_idx_reference(p1, p2, lengths1, lengths2, norm, K)
    elif method == "blocked":
        idx = _knn_idx_blocked(p1, p2, lengths2, norm, K)
    elif method == "kdtree":
        idx = _knn_idx_kdtree(p1, p2, lengths1, lengths2, norm, K)
    else:
        if K > TRITON_MAX_K:
            raise ValueError(f"method='triton' supports K <= {TRITON_MAX_K}, got K={K}")
        from ._kernels.knn_triton import knn_triton

        idx = knn_triton(p1, p2, lengths1, lengths2, norm, K)
    return idx, None


def _choose_method(p1, p2, lengths1, lengths2, K: int) -> str:
    if p1.is_cuda:
        return "triton" if K <= TRITON_MAX_K and triton_available() else "blocked"
    return cpu_method(p1, lengths1, lengths2, "knn_numba")


def cpu_method(p1, lengths1, lengths2, kernels: str) -> str:
    """``"auto"`` off CUDA: the numba grid for float32/float64 points with ``D <= GRID_MAX_DIM`` on the
    CPU (it beat blocked torch and the KD-tree at every size measured, from 32 points up); without
    numba the KD-tree for clouds of ``KDTREE_MIN_PAIRS`` pairs and more; else blocked torch."""
    if p1.device.type != "cpu" or p1.shape[2] > GRID_MAX_DIM or p1.dtype not in (torch.float32, torch.float64):
        return "blocked"
    if numba_kernels(kernels) is not None:
        return "grid"
    if p1.shape[0] and int((lengths1 * lengths2).max()) >= KDTREE_MIN_PAIRS:
        return "kdtree"
    return "blocked"


def triton_available() -> bool:
    """Whether triton imports (and ``GEO4G_DISABLE_TRITON`` is unset)."""
    return not os.environ.get("GEO4G_DISABLE_TRITON") and importlib.util.find_spec("triton") is not None


def numba_kernels(name: str):
    """The compiled module ``geo4g.points._kernels.<name>``, or ``None`` when numba cannot be imported."""
    try:
        return importlib.import_module(f"geo4g.points._kernels.{name}")
    except ImportError:
        return None


def _pair_distance(a: torch.Tensor, b: torch.Tensor, norm: int) -> torch.Tensor:
    """Distance between matching (broadcast) rows ``(..., D)``: squared L2 or L1, summed over the
    coordinates in order (every path sums this way, so all of them rank pairs identically)."""
    if a.shape[-1] == 0:
        return a.new_zeros(torch.broadcast_shapes(a.shape[:-1], b.shape[:-1]))
    out = None
    for k in range(a.shape[-1]):
        diff = a[..., k] - b[..., k]
        term = diff * diff if norm == 2 else diff.abs()
        out = term if out is None else out + term
    return out


def _knn_idx_reference(p1, p2, lengths1, lengths2, norm: int, K: int) -> torch.Tensor:
    """``(B, P1, K)`` indices by brute force over all pairs (the test oracle)."""
    B, P1, P2 = p1.shape[0], p1.shape[1], p2.shape[1]
    d = _pair_distance(p1[:, :, None], p2[:, None], norm)  # (B, P1, P2)
    invalid = torch.arange(P2, device=p1.device)[None, None, :] >= lengths2[:, None, None]
    d = d.masked_fill(invalid, float("inf"))
    k = min(K, P2)
    # A stable sort keeps equal distances in index order, so ties go to the lower index.
    idx = torch.sort(d, dim=2, stable=True).indices[..., :k]
    if k < K:
        idx = torch.cat([idx, idx.new_zeros(B, P1, K - k)], 2)
    return idx


def smallest_k(d: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` smallest entries of each row of ``d (..., M)``, ordered by
    ``(value, index)``: what a stable sort gives, with ``topk``'s cost."""
    vals, cand = d.topk(k, dim=-1, largest=False, sorted=True)
    cand, perm = cand.sort(dim=-1)
    vals, perm = vals.gather(-1, perm).sort(dim=-1, stable=True)
    cand = cand.gather(-1, perm)
    kth = vals[..., -1:]
    # Rows with more entries equal to the k-th value than were kept: topk chose among them freely.
    tie = ((d <= kth).sum(-1) > k) & torch.isfinite(kth[..., 0])
    if bool(tie.any()):
        cand[tie] = torch.sort(d[tie], dim=-1, stable=True).indices[..., :k]
    return cand


def block_size(device: torch.device) -> int:
    return BLOCK_ELEMENTS_CPU if device.type == "cpu" else BLOCK_ELEMENTS


def _knn_idx_blocked(p1, p2, lengths2, norm: int, K: int, block_elements: Optional[int] = None) -> torch.Tensor:
    """``(B, P1, K)`` indices, torch over blocks of rows of ``p1`` (memory ``O(block_elements)``)."""
    block_elements = block_elements or block_size(p1.device)
    B, P1, D = p1.shape
    P2 = p2.shape[1]
    k = min(K, P2)
    idx = torch.zeros(B, P1, K, dtype=torch.long, device=p1.device)
    invalid = torch.arange(P2, device=p1.device)[None, :] >= lengths2[:, None]
    exact = D <= EXACT_MAX_DIM
    if not exact:
        work = torch.float32 if p1.dtype in (torch.float16, torch.bfloat16) else p1.dtype
        centre = p2.to(work).sum(1, keepdim=True) / lengths2.clamp_min(1)[:, None, None].to(work)
        y = p2.to(work) - centre
        yy = y.square().sum(-1)
        extra = min(8, P2 - k)
    rows = max(1, min(P1, block_elements // P2))
    bchunk = max(1, min(B, block_elements // (rows * P2)))
    for b0 in range(0, B, bchunk):
        b1 = min(B, b0 + bchunk)
        for n0 in range(0, P1, rows):
            n1 = min(P1, n0 + rows)
            x = p1[b0:b1, n0:n1]
            if exact:
                d = _pair_distance(x[:, :, None], p2[b0:b1, None], norm)
                d.masked_fill_(invalid[b0:b1, None, :], float("inf"))
                idx[b0:b1, n0:n1, :k] = smallest_k(d, k)
                continue
            xc = x.to(work) - centre[b0:b1]
            if norm == 2:
                d = torch.baddbmm(yy[b0:b1, None, :], xc, y[b0:b1].transpose(1, 2), alpha=-2.0)
                d.add_(xc.square().sum(-1, keepdim=True))
            else:
                d = torch.cdist(xc, y[b0:b1], p=1.0)
            d.masked_fill_(invalid[b0:b1, None, :], float("inf"))
            cand = d.topk(k + extra, dim=-1, largest=False).indices
            near = p2[b0:b1, None].expand(-1, n1 - n0, -1, -1).gather(
                2, cand[..., None].expand(-1, -1, -1, D))
            de = _pair_distance(x[:, :, None], near, norm)
            de.masked_fill_(invalid[b0:b1, None, :].expand(-1, n1 - n0, -1).gather(2, cand), float("inf"))
            # exact ranking among the candidates, ties to the lower index
            order = cand.sort(dim=-1)
            de = de.gather(-1, order.indices)
            idx[b0:b1, n0:n1, :k] = order.values.gather(-1, smallest_k(de, k))
    return idx


def _cpu_numpy(t: torch.Tensor, name: str):
    if t.device.type != "cpu":
        raise ValueError(f"method={name!r} needs CPU tensors, got a tensor on {t.device}")
    return t.contiguous().numpy()


def grid_inputs(module: str, p1, p2, lengths1, lengths2):
    """The numba grid paths' shared start: the kernel module ``module`` of ``_kernels`` and the
    points and lengths as numpy arrays. Raises ImportError without numba, TypeError for points
    that are not float32/float64."""
    kernels = numba_kernels(module)
    if kernels is None:
        raise ImportError("method='grid' needs numba: pip install 'geo4g[numba]' (or pip install numba)")
    if p1.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"method='grid' needs float32 or float64 points, got {p1.dtype}")
    x, y = _cpu_numpy(p1, "grid"), _cpu_numpy(p2, "grid")
    return kernels, x, y, _cpu_numpy(lengths1, "grid"), _cpu_numpy(lengths2, "grid")


def _knn_grid(p1, p2, lengths1, lengths2, norm: int, K: int):
    """``(idx, dists)`` ``(B, P1, K)`` from the numba grid kernel, on all cores, zeros in the slots
    past ``lengths2`` and the rows past ``lengths1``."""
    import numpy as np

    kernels, x, y, l1, l2 = grid_inputs("knn_numba", p1, p2, lengths1, lengths2)
    grid = kernels.build_grid(y, l2, 0.0, kernels.knn_occupancy(K), kernels.CELLS_PER_POINT)
    queue = kernels.query_order(x, l1, l2, grid)
    idx = np.zeros((x.shape[0], x.shape[1], K), dtype=np.int64)
    dists = np.zeros((x.shape[0], x.shape[1], K), dtype=x.dtype)
    run_chunks(kernels.knn_query, queue.shape[0], kernels.MIN_CHUNK, x, l1, l2, grid, K, norm, queue, idx, dists)
    return torch.from_numpy(idx), torch.from_numpy(dists)


def _knn_idx_kdtree(p1, p2, lengths1, lengths2, norm: int, K: int) -> torch.Tensor:
    """``(B, P1, K)`` indices from SciPy's ``cKDTree`` (``workers=-1``), one tree per cloud.

    The tree ranks by float64 distances and orders equal ones freely, so one more neighbour is
    asked for: rows where it ties with the ``K``-th are redone by the blocked path, and the ``K``
    found are put in ``(distance, index)`` order by the distances of ``_pair_distance``.
    """
    import numpy as np
    from scipy.spatial import cKDTree

    x, y = _cpu_numpy(p1, "kdtree"), _cpu_numpy(p2, "kdtree")
    B, P1, D = x.shape
    idx = torch.zeros(B, P1, K, dtype=torch.long)
    for b, (n1, n2) in enumerate(zip(lengths1.tolist(), lengths2.tolist())):
        if n1 == 0 or n2 == 0:
            continue
        k = min(K, n2)
        ask = min(K + 1, n2)
        dist, found = cKDTree(y[b, :n2]).query(x[b, :n1], k=ask, p=norm, workers=-1)
        dist, found = dist.reshape(n1, ask), found.reshape(n1, ask)
        cand = torch.from_numpy(np.sort(found[:, :k], axis=1))  # index order, so ties go to the lower index
        d = _pair_distance(p1[b, :n1, None], p2[b, cand], norm)
        cand = cand.gather(1, smallest_k(d, k))
        if ask > k:
            tie = torch.from_numpy(dist[:, k] <= dist[:, k - 1]).nonzero()[:, 0]
            if tie.numel():
                cand[tie] = _knn_idx_blocked(p1[b:b + 1, tie], p2[b:b + 1, :n2], lengths2[b:b + 1], norm,
                                             k)[0]
        idx[b, :n1, :k] = cand
    return idx


def _finish(p1, p2, idx, lengths1, lengths2, norm: int, K: int, return_nn: bool) -> KNN:
    """Zero the padding slots and compute differentiable distances from the indices."""
    B, P1 = p1.shape[:2]
    valid = (torch.arange(K, device=p1.device)[None, None, :] < lengths2[:, None, None]) & \
            (torch.arange(P1, device=p1.device)[None, :, None] < lengths1[:, None, None])
    idx = torch.where(valid, idx, torch.zeros((), dtype=torch.long, device=idx.device))
    neighbours = knn_gather(p2, idx, lengths2)
    dists = _pair_distance(p1[:, :, None], neighbours, norm)
    zero = torch.zeros((), dtype=p1.dtype, device=p1.device)
    dists = torch.where(valid, dists, zero)
    knn = torch.where(valid[..., None], neighbours, zero) if return_nn else None
    return KNN(dists, idx, knn)


def knn_gather(x: torch.Tensor, idx: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Gather the features of neighbours: ``out[b, i, k] = x[b, idx[b, i, k]]``.

    Args:
        x: ``(B, M, U)`` features (or points) per cloud.
        idx: ``(B, N, K)`` long indices into ``x`` (as returned by ``knn_points``).
        lengths: ``(B,)`` valid rows of ``x``; slots ``k >= lengths[b]`` are set to 0.

    Returns:
        ``(B, N, K, U)``, differentiable with respect to ``x``.
    """
    check_tensor(x, "x", ndim=3, shape_hint="(B, M, U)")
    check_tensor(idx, "idx", ndim=3, kind="int", shape_hint="(B, N, K)")
    if idx.shape[0] != x.shape[0]:
        raise ValueError(f"idx must have the batch size of x ({x.shape[0]}), got shape {tuple(idx.shape)}")
    B, N, K = idx.shape
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= max(x.shape[1], 1)):
        raise ValueError(f"idx values must lie in [0, {x.shape[1]}), got [{int(idx.min())}, {int(idx.max())}]")
    if lengths is not None:
        lengths = check_lengths(lengths, "lengths", B, x.shape[1], device=x.device)
    if x.shape[1] == 0:
        return x.new_zeros(B, N, K, x.shape[2])
    flat = idx.reshape(B, N * K, 1).expand(B, N * K, x.shape[2])
    out = x.gather(1, flat).view(B, N, K, x.shape[2])
    if lengths is not None:
        valid = torch.arange(K, device=x.device)[None, None, :, None] < lengths[:, None, None, None]
        out = torch.where(valid, out, torch.zeros((), dtype=x.dtype, device=x.device))
    return out
