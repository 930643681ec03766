"""Earth mover's distance between equal-size point clouds: exact (Jonker-Volgenant) and auction.

The EMD of the point-cloud literature (Fan et al. 2017, PCN, ...) is the mean,
over an optimal one-to-one matching ``pi``, of the Euclidean distances::

    EMD(X, Y) = min_pi 1/N sum_i ||x_i - y_pi(i)||_2

Two solvers find the matching; the value is then computed in torch from the
matched pairs, so the gradient flows to ``x`` and ``y`` through them (the
matching itself is piecewise constant and carries no gradient):

- ``"exact"``: SciPy's ``linear_sum_assignment`` (Jonker-Volgenant) on the full
  ``(N, N)`` cost matrix, one cloud pair at a time, on the CPU.
- ``"approx"``: an auction algorithm with epsilon scaling. It stops when the
  duality gap certifies that the matching's cost is within ``tol`` (relative)
  of the optimum, so its value is never more than ``tol`` above the exact one;
  a pair whose certificate is not reached within the safety caps is solved
  exactly instead. On CPU tensors it runs a compiled numba kernel per cloud
  pair (``geo4g/losses/_kernels/emd_numba.py``; pairs of a batch run on up to
  ``torch.get_num_threads()`` threads); on other devices, or when numba is not
  installed, a batched auction in plain torch.
"""
from __future__ import annotations

import importlib
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple, Optional, Tuple

import numpy as np
import torch

from ._inputs import check_cloud_pair, unwrap_cloud

__all__ = ["earth_movers_distance", "EMDResult"]

_METHODS = ("auto", "exact", "approx")
_REDUCTIONS = ("mean", "sum", None)
_AUTO_APPROX_MIN_N = 96  # "auto" picks the numba auction from this many points up (CPU only)


class EMDResult(NamedTuple):
    """``dist``: the reduced EMD, or ``(B,)`` when ``reduction=None``;
    ``matching: (B, N)`` long, ``y`` index matched to each ``x`` point, ``-1`` in padding."""

    dist: torch.Tensor
    matching: torch.Tensor


def earth_movers_distance(
    x,
    y,
    x_lengths: Optional[torch.Tensor] = None,
    y_lengths: Optional[torch.Tensor] = None,
    method: str = "auto",
    reduction: Optional[str] = "mean",
    return_matching: bool = False,
    tol: float = 0.01,
    max_phases: int = 16,
):
    """Earth mover's distance: mean Euclidean distance over an optimal one-to-one matching.

    For each batch element ``b`` with ``L = x_lengths[b]`` points in both clouds::

        emd[b] = min over permutations pi of (1/L) sum_{i<L} ||x[b, i] - y[b, pi(i)]||_2

    (the convention of Fan et al. 2017 and PCN: Euclidean, not squared,
    distances, averaged over the points). Both methods report this same
    quantity, so their values are directly comparable.

    Args:
        x: ``(B, N, D)`` float tensor (padded), or a ``Pointclouds``.
        y: ``(B, M, D)`` float tensor (padded), or a ``Pointclouds``; same dtype,
            device and ``D`` as ``x``.
        x_lengths: ``(B,)`` integer, valid points of each ``x`` cloud (default: ``N``).
            Must be ``None`` when ``x`` is a ``Pointclouds``.
        y_lengths: ``(B,)`` integer, valid points of each ``y`` cloud (default: ``M``).
        method: ``"exact"`` (SciPy's Jonker-Volgenant ``linear_sum_assignment``, on
            the CPU, one pair at a time), ``"approx"`` (epsilon-scaling auction,
            certified within ``tol``: a compiled numba kernel on CPU tensors, a
            batched torch auction on other devices or without numba), or
            ``"auto"``: ``"approx"`` for CPU tensors whose largest cloud has
            ``>= 96`` points when numba is importable (from there on it measured at least
            1.7x faster than ``"exact"``, 7-13x at 512 points, 13x or more from 1024),
            ``"exact"`` otherwise (see ``benchmarks/results/emd.md``).
            Without numba the CPU ``"approx"`` silently uses the torch auction
            (same guarantee, slower; ``pip install geo4g[numba]``).
        reduction: ``"mean"`` (mean over the batch), ``"sum"`` or ``None`` (the
            ``(B,)`` per-pair values).
        return_matching: also return the ``(B, N)`` matching.
        tol: ``"approx"`` only, relative optimality tolerance in ``(0, 1)``: the
            auction stops when its duality gap proves
            ``approx <= (1 + tol) * exact`` (in practice it is far closer).
        max_phases: ``"approx"`` only, the most epsilon-scaling phases (a safety
            cap; each phase divides epsilon by 10 in the torch auction, by 1.5 to 8
            in the numba one, aiming at the last phase's gap). A pair not certified
            within ``tol`` when this cap, the float resolution of epsilon or (numba)
            a bid budget per phase runs out is solved exactly, so the guarantee
            above always holds.

    Returns:
        the distance (a scalar for ``"mean"``/``"sum"``, ``(B,)`` for ``None``),
        or, with ``return_matching=True``, an ``EMDResult(dist, matching)`` where
        ``matching: (B, N)`` long holds for each ``x`` point the index of its
        ``y`` partner and ``-1`` in padding rows.

    Edge cases:
        A pair of empty clouds (length 0) has distance 0 (no NaN). A batch of
        ``B = 0`` gives ``(0,)`` for ``reduction=None``, 0 for ``"sum"`` and NaN
        for ``"mean"`` (like ``torch.mean`` of an empty tensor). Duplicate points
        are fine; a zero-length matched pair contributes a zero gradient.
        Padding rows never take part and get zero gradient.

    Unequal sizes:
        The EMD of this function is a one-to-one matching, defined only for
        clouds of equal size: if ``x_lengths[b] != y_lengths[b]`` for any ``b``
        (or ``N != M`` when no lengths are given) a ``ValueError`` names the
        first such element. Subsample the larger cloud first for a partial match.

    Memory: the torch ``"approx"`` holds a ``(B, N, N)`` cost matrix (and up to
    one more of the same size while bidding); the numba one an ``(N, N)`` float32
    matrix per pair in flight (one per thread) and ``"exact"`` one ``(N, N)``
    float64 matrix at a time.

    Raises:
        TypeError: non-tensor input, non-float points, integer lengths of another type.
        ValueError: mismatched batch sizes, dtypes, devices or last dimensions,
            bad lengths, unequal sizes, NaN/inf, an unknown ``method`` or
            ``reduction``, or ``tol`` outside ``(0, 1)``.
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {list(_METHODS)}, got {method!r}")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {list(_REDUCTIONS)}, got {reduction!r}")
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 < tol < 1:
        raise ValueError(f"tol must be a number in (0, 1), got {tol!r}")
    if isinstance(max_phases, bool) or not isinstance(max_phases, int) or max_phases < 1:
        raise ValueError(f"max_phases must be a positive int, got {max_phases!r}")
    x, x_lengths = unwrap_cloud(x, x_lengths, "x")
    y, y_lengths = unwrap_cloud(y, y_lengths, "y")
    x, y, x_lengths, y_lengths = check_cloud_pair(x, y, x_lengths, y_lengths)
    B = x.shape[0]
    lengths = _equal_lengths(x, y, x_lengths, y_lengths)

    L = int(lengths.max()) if B > 0 else 0
    kernels = _numba_kernels() if method != "exact" and x.device.type == "cpu" else None
    if method == "auto":
        method = "approx" if kernels is not None and L >= _AUTO_APPROX_MIN_N else "exact"
    if L == 0:
        dist = x.new_zeros(B) + 0 * (x.sum() + y.sum())  # keeps the graph: zero gradients, no NaN
        full = torch.full((B, x.shape[1]), -1, dtype=torch.long, device=x.device)
        dist = dist.mean() if reduction == "mean" else dist.sum() if reduction == "sum" else dist
        return EMDResult(dist, full) if return_matching else dist
    with torch.no_grad():
        if method == "approx" and kernels is not None:  # centres and scales each pair itself
            matching = _match_numba(kernels, x[:, :L].detach(), y[:, :L].detach(), lengths, float(tol), max_phases)
        elif method == "exact":
            matching = _match_exact(*_normalise(x[:, :L].detach(), y[:, :L].detach(), lengths), lengths)
        else:
            xs, ys = _normalise(x[:, :L].detach(), y[:, :L].detach(), lengths)
            matching, certified = _match_auction(torch.cdist(xs, ys), lengths, float(tol), max_phases)
            for b in (~certified).nonzero()[:, 0].tolist():
                n = int(lengths[b])
                matching[b, :n] = _match_exact(xs[b:b + 1, :n], ys[b:b + 1, :n], lengths[b:b + 1])[0]

    dist = _matched_mean(x[:, :L], y[:, :L], matching, lengths)
    full = torch.full((B, x.shape[1]), -1, dtype=torch.long, device=x.device)
    full[:, :L] = matching
    if reduction == "mean":
        dist = dist.mean()
    elif reduction == "sum":
        dist = dist.sum()
    return EMDResult(dist, full) if return_matching else dist


def _equal_lengths(x, y, x_lengths: torch.Tensor, y_lengths: torch.Tensor) -> torch.Tensor:
    """Raise unless every pair has equal size; return the common ``(B,)`` lengths."""
    y_lengths = y_lengths.to(x_lengths.device)
    differ = (x_lengths != y_lengths).nonzero()
    if differ.numel() > 0:
        b = int(differ[0, 0])
        raise ValueError(
            "earth_movers_distance needs clouds of equal size in each pair (a one-to-one matching), "
            f"got {int(x_lengths[b])} points in x and {int(y_lengths[b])} in y at batch element {b} "
            f"(x of shape {tuple(x.shape)}, y of shape {tuple(y.shape)}); subsample the larger cloud first"
        )
    return x_lengths


def _normalise(xs: torch.Tensor, ys: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Centre and scale each pair (the matching is invariant to both) so huge coordinates neither
    lose precision nor overflow in the squared distances."""
    mask = (torch.arange(xs.shape[1], device=xs.device)[None] < lengths[:, None])[..., None]
    count = lengths.clamp(min=1).to(xs.dtype)[:, None, None]
    centre = (xs * mask).sum(1, keepdim=True) / count
    xs, ys = (xs - centre) * mask, (ys - centre) * mask
    scale = torch.maximum(xs.abs().amax((1, 2), keepdim=True), ys.abs().amax((1, 2), keepdim=True))
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return xs / scale, ys / scale


def _matched_mean(x: torch.Tensor, y: torch.Tensor, matching: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``(B,)`` mean over valid rows of ``||x_i - y_matching(i)||``, differentiable in ``x`` and ``y``;
    0 for empty clouds. Computed as ``s * ||d / s||`` so huge values do not overflow."""
    B, L, D = x.shape
    if L == 0:
        return x.new_zeros(B)
    valid = matching >= 0
    partner = y.gather(1, matching.clamp(min=0)[..., None].expand(B, L, D))
    diff = (x - partner) * valid[..., None]
    s = diff.detach().abs().amax(-1, keepdim=True)
    s = torch.where(s > 0, s, torch.ones_like(s))
    d = torch.linalg.vector_norm(diff / s, dim=-1) * s[..., 0]
    return d.sum(1) / lengths.clamp(min=1).to(x.dtype)


def _match_exact(xs: torch.Tensor, ys: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Optimal matching of each pair with SciPy's Jonker-Volgenant solver (float64 costs, CPU)."""
    from scipy.optimize import linear_sum_assignment

    B, L, _ = xs.shape
    out = torch.full((B, L), -1, dtype=torch.long)
    xd, yd = xs.double().cpu(), ys.double().cpu()
    for b, n in enumerate(lengths.tolist()):
        if n == 0:
            continue
        cost = torch.cdist(xd[b, :n], yd[b, :n], compute_mode="donot_use_mm_for_euclid_dist").numpy()
        rows, cols = linear_sum_assignment(cost)
        out[b, torch.from_numpy(rows)] = torch.from_numpy(cols.astype(np.int64))
    return out.to(xs.device)


def _numba_kernels():
    """The compiled auction module, or ``None`` when numba cannot be imported."""
    try:
        return importlib.import_module("geo4g.losses._kernels.emd_numba")
    except ImportError:
        return None


def _match_numba(kernels, xs: torch.Tensor, ys: torch.Tensor, lengths: torch.Tensor, tol: float,
                 max_phases: int) -> torch.Tensor:
    """Certified auction matching of each pair of the (unnormalised, CPU) clouds with the numba
    kernel (float32 costs after centring and scaling in float64).

    The kernel releases the GIL, so the pairs of a batch run on up to ``torch.get_num_threads()``
    threads. A pair whose certificate the safety caps cut short is solved exactly."""
    B, L, _ = xs.shape
    out = torch.full((B, L), -1, dtype=torch.long)
    if xs.dtype not in (torch.float32, torch.float64):
        xs, ys = xs.float(), ys.float()
    xf, yf = xs.numpy(), ys.numpy()
    sizes = lengths.tolist()
    pairs = [b for b, n in enumerate(sizes) if n > 0]

    def solve(b):
        return kernels._match(xf[b, :sizes[b]], yf[b, :sizes[b]], tol, max_phases)

    workers = min(torch.get_num_threads(), len(pairs))
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(solve, pairs))
    else:
        results = [solve(b) for b in pairs]
    for b, (matching, certified) in zip(pairs, results):
        n = sizes[b]
        if certified:
            out[b, :n] = torch.from_numpy(matching)
        else:
            one = lengths[b:b + 1]
            out[b, :n] = _match_exact(*_normalise(xs[b:b + 1, :n], ys[b:b + 1, :n], one), one)[0]
    return out


def _match_auction(cost: torch.Tensor, lengths: torch.Tensor, tol: float,
                   max_phases: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Batched Jacobi auction with epsilon scaling on ``cost: (B, L, L)`` (minimisation).

    Persons are ``x`` points, objects ``y`` points. Each unassigned person bids for
    its best object ``j1`` (least ``cost + price``), raising its price by the gap to
    the second best plus ``eps``; each object goes to its highest bidder. After each
    phase (all persons assigned) the duality gap ``primal - dual`` bounds the
    suboptimality; pairs whose gap is within ``tol * dual`` (or whose ``eps`` has
    reached float resolution) are frozen, the others restart with ``eps / 10``
    keeping their prices. Padding persons are pre-assigned to padding objects.
    Returns the ``(B, L)`` matching and a ``(B,)`` bool: the pair's gap certifies ``tol``
    (``False`` where ``eps`` or ``max_phases`` ran out first).
    """
    B, L, _ = cost.shape
    dev, dtype = cost.device, cost.dtype
    ar = torch.arange(L, device=dev)
    valid = ar[None] < lengths[:, None]  # (B, L)
    if L == 0:
        return torch.full((B, L), -1, dtype=torch.long, device=dev), torch.ones(B, dtype=torch.bool, device=dev)
    pair_valid = valid[:, :, None] & valid[:, None, :]
    cmask = cost.masked_fill(~valid[:, None, :], float("inf"))  # persons never bid for padding objects
    cmax = cost.masked_fill(~pair_valid, 0).amax((1, 2))
    nn_mean = torch.where(valid, cmask.amin(2), 0).sum(1) / lengths.clamp(min=1).to(dtype)
    eps = torch.maximum(4 * nn_mean, 1e-3 * cmax)
    eps = torch.where(eps > 0, eps, torch.ones_like(eps))  # all points equal: any eps works
    eps_floor = 1e-6 * cmax
    price = torch.zeros(B, L, dtype=dtype, device=dev)
    active = lengths > 0
    certified = ~active
    result = torch.where(valid, -1, ar[None].expand(B, L))
    neg_inf = torch.full((B * L,), -float("inf"), dtype=dtype, device=dev)
    minus_one = torch.full((B * L,), -1, dtype=torch.long, device=dev)
    for _ in range(max_phases):
        assign = torch.where(valid & active[:, None], -1, result)
        owner = torch.full((B, L), -1, dtype=torch.long, device=dev)
        bb, pp = (assign >= 0).nonzero(as_tuple=True)
        owner[bb, assign[bb, pp]] = pp
        while True:
            bi, pi = (assign < 0).nonzero(as_tuple=True)
            if bi.numel() == 0:
                break
            vals = cmask[bi, pi] + price[bi]  # (K, L) cost + price, lower is better
            if L >= 2:
                top = vals.topk(2, dim=1, largest=False)
                w1, w2, j1 = top.values[:, 0], top.values[:, 1], top.indices[:, 0]
                inc = torch.where(torch.isfinite(w2), w2 - w1, torch.zeros_like(w1))
            else:
                j1 = torch.zeros_like(bi)
                inc = torch.zeros(bi.shape, dtype=dtype, device=dev)
            bid = price[bi, j1] + inc + eps[bi]
            key = bi * L + j1
            best = neg_inf.scatter_reduce(0, key, bid, "amax")
            win = bid == best[key]
            first = minus_one.scatter_reduce(0, key[win], pi[win], "amax")
            chosen = win & (first[key] == pi)
            kb, kp, kj = bi[chosen], pi[chosen], j1[chosen]
            old = owner[kb, kj]
            lost = old >= 0
            assign[kb[lost], old[lost]] = -1
            owner[kb, kj] = kp
            assign[kb, kp] = kj
            price[kb, kj] = bid[chosen]
        result = torch.where(active[:, None], assign, result)
        primal = torch.where(valid, cost.gather(2, result.clamp(min=0)[..., None])[..., 0], 0).sum(1)
        dual = torch.where(valid, (cmask + price[:, None, :]).amin(2), 0).sum(1) - torch.where(valid, price, 0).sum(1)
        proven = (primal - dual <= tol * dual) | (primal <= 0) | (cmax == 0)
        certified = certified | (active & proven)
        active = active & ~(proven | (eps <= eps_floor))
        if not bool(active.any()):
            break
        eps = torch.where(active, eps / 10, eps)
    return torch.where(valid, result, -1), certified
