"""Neighbour graphs over packed points with a batch vector (PyTorch Geometric's ``edge_index``)."""
from __future__ import annotations

from typing import Optional, Tuple

import torch

from geo4g.structures.checks import check_finite, check_tensor

from ._inputs import check_count, check_radius
from .ball_query import ball_query
from .knn import knn_points

__all__ = ["knn_graph", "radius_graph"]


def _packed_to_padded(x: torch.Tensor, batch: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor,
                                                                                torch.Tensor, torch.Tensor]:
    """``(padded (B, Nmax, D), lengths (B,), first index (B,), position of each point in its cloud (N,))``."""
    check_tensor(x, "x", ndim=2, kind="float", shape_hint="(N, D)")
    check_finite(x, "x")
    n = x.shape[0]
    if batch is None:
        batch = torch.zeros(n, dtype=torch.long, device=x.device)
    check_tensor(batch, "batch", ndim=1, kind="int", shape_hint="(N,)")
    if batch.shape[0] != n:
        raise ValueError(f"batch must have one entry per point ({n}), got shape {tuple(batch.shape)}")
    batch = batch.to(device=x.device, dtype=torch.long)
    if n and (bool((batch[1:] < batch[:-1]).any()) or int(batch[0]) < 0):
        raise ValueError("batch must be non-negative and sorted (points of one cloud contiguous), as in PyG")
    num = int(batch[-1]) + 1 if n else 0
    lengths = torch.bincount(batch, minlength=num)
    first = torch.cumsum(lengths, 0) - lengths
    position = torch.arange(n, device=x.device) - first[batch]
    width = int(lengths.max()) if num else 0
    padded = x.new_zeros(num, width, x.shape[1])
    padded[batch, position] = x
    return padded, lengths, first, position


def knn_graph(x: torch.Tensor, k: int, batch: Optional[torch.Tensor] = None, loop: bool = False,
              flow: str = "source_to_target") -> torch.Tensor:
    """Edges from every point to its ``k`` nearest neighbours in the same cloud.

    Args:
        x: ``(N, D)`` packed points; ``batch``: ``(N,)`` sorted cloud index of each point
            (default: one cloud).
        k: neighbours per point, ``>= 1`` (fewer where a cloud is smaller).
        loop: include each point as its own neighbour.
        flow: ``"source_to_target"`` (``edge_index[0]`` the neighbour, ``[1]`` the centre, PyG's
            default) or ``"target_to_source"``.

    Returns:
        ``edge_index (2, E)`` long, grouped by centre point, nearest neighbours first, ties to
        the lower index (without ``loop``, a point's own index is left out, not its duplicates).

    The search is :func:`~geo4g.points.knn_points` on the padded clouds (``method="auto"``:
    Triton or blocked torch on CUDA; the numba grid on the CPU, or without numba SciPy's KD-tree
    for large clouds and blocked torch for small ones).
    """
    check_count(k, "k")
    if flow not in ("source_to_target", "target_to_source"):
        raise ValueError(f"flow must be 'source_to_target' or 'target_to_source', got {flow!r}")
    padded, lengths, first, position = _packed_to_padded(x, batch)
    extra = 0 if loop else 1
    with torch.no_grad():  # only the indices are used
        knn = knn_points(padded.detach(), padded.detach(), lengths, lengths, K=k + extra)
    centre = torch.arange(x.shape[0], device=x.device)
    cloud = torch.repeat_interleave(torch.arange(lengths.shape[0], device=x.device), lengths)
    idx = knn.idx[cloud, position]  # (N, k + extra)
    slot_ok = torch.arange(k + extra, device=x.device)[None, :] < lengths[cloud][:, None]
    if not loop:
        slot_ok &= idx != position[:, None]
    neighbour = idx + first[cloud][:, None]
    centres = centre[:, None].expand_as(neighbour)
    keep_rank = slot_ok.long().cumsum(1) <= k
    keep = slot_ok & keep_rank
    source, target = neighbour[keep], centres[keep]
    edge = torch.stack([source, target]) if flow == "source_to_target" else torch.stack([target, source])
    return edge


def radius_graph(x: torch.Tensor, r: float, batch: Optional[torch.Tensor] = None, loop: bool = False,
                 max_num_neighbors: int = 32, flow: str = "source_to_target") -> torch.Tensor:
    """Edges from every point to the points within distance ``r`` in the same cloud.

    Args:
        x: ``(N, D)`` packed points; ``batch``: ``(N,)`` sorted cloud index (default: one cloud).
        r: radius, ``> 0``; neighbours at squared distance ``< r ** 2`` (strictly, as in
            torch_cluster).
        loop: include self-loops.
        max_num_neighbors: at most this many neighbours per point, the first in index order
            (PyG's convention).
        flow: as in ``knn_graph``.

    Returns:
        ``edge_index (2, E)`` long, grouped by centre point, neighbours in index order.

    The search is :func:`~geo4g.points.ball_query` on the padded clouds (``method="auto"``:
    Triton or blocked torch on CUDA; the numba grid on the CPU, or without numba SciPy's KD-tree
    for large clouds and blocked torch for small ones).
    """
    radius = check_radius(r, "r")
    check_count(max_num_neighbors, "max_num_neighbors")
    if flow not in ("source_to_target", "target_to_source"):
        raise ValueError(f"flow must be 'source_to_target' or 'target_to_source', got {flow!r}")
    padded, lengths, first, position = _packed_to_padded(x, batch)
    extra = 0 if loop else 1
    with torch.no_grad():  # only the indices are used
        found = ball_query(padded.detach(), padded.detach(), lengths, lengths, K=max_num_neighbors + extra,
                           radius=radius, return_nn=False)
    cloud = torch.repeat_interleave(torch.arange(lengths.shape[0], device=x.device), lengths)
    idx = found.idx[cloud, position]
    ok = idx >= 0
    if not loop:
        ok &= idx != position[:, None]
    ok &= ok.long().cumsum(1) <= max_num_neighbors
    neighbour = idx + first[cloud][:, None]
    centres = torch.arange(x.shape[0], device=x.device)[:, None].expand_as(neighbour)
    source, target = neighbour[ok], centres[ok]
    return torch.stack([source, target]) if flow == "source_to_target" else torch.stack([target, source])
