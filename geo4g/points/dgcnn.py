"""DGCNN (Wang et al. 2019): EdgeConv on a fixed graph, EdgeConv on a graph rebuilt in feature space, the classifier.

    Y. Wang, Y. Sun, Z. Liu, S. E. Sarma, M. M. Bronstein, J. M. Solomon. "Dynamic Graph CNN
    for Learning on Point Clouds." ACM Transactions on Graphics 38(5), 2019.
    https://arxiv.org/abs/1801.07829

Features are channels-last ``(B, N, C)`` with ``lengths (B,)``. Padding points are never
neighbours, get zero outputs, and stay out of batch-norm statistics (the edge MLP runs on the
valid edges only, packed, as PyTorch Geometric's ``EdgeConv`` does on a packed batch), so a
ragged batch gives each cloud the outputs it gets alone (in eval mode).

:class:`EdgeConv` matches ``torch_geometric.nn.EdgeConv(nn=conv.mlp, aggr="max")`` on the same
graph; for PyG's ``edge_index`` (``[0]`` the neighbour ``j``, ``[1]`` the centre ``i``) of a
padded graph ``idx (B, N, K)``::

    b, i, k = (idx >= 0).nonzero(as_tuple=True)
    edge_index = torch.stack([b * N + idx[b, i, k], b * N + i])
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from geo4g.losses._inputs import finite_valid_rows
from geo4g.nn.layers import MLP, SharedMLP
from geo4g.structures.checks import check_lengths, check_tensor
from geo4g.structures.utils import lengths_to_mask

from ._inputs import check_count
from ._models import as_padded, check_dropout, check_width, masked_max, pointwise, reset_children, scaled

__all__ = ["EdgeConv", "DynamicEdgeConv", "DGCNNClassifier"]


def _check_x(x, lengths: Optional[torch.Tensor], channels: int):
    """``(x (B, N, C) with zero padding rows, lengths (B,), mask (B, N))``, errors naming ``x``/``lengths``."""
    hint = f"(B, N, {channels})"
    check_tensor(x, "x", ndim=3, kind="float", shape_hint=hint)
    if x.shape[2] != channels:
        raise ValueError(f"x must have {channels} channels (in_channels) in its last dimension {hint}, "
                         f"got shape {tuple(x.shape)}")
    B, N = x.shape[:2]
    if lengths is None:
        lengths = torch.full((B,), N, dtype=torch.long, device=x.device)
    else:
        lengths = check_lengths(lengths, "lengths", B, N, device=x.device)
    return finite_valid_rows(x, lengths, "x"), lengths, lengths_to_mask(lengths, N)


def _knn_idx(x: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
    """``(B, N, k)`` indices of the ``k`` nearest valid rows of ``x (B, N, C)`` (the row itself included),
    ``-1`` where a cloud has fewer than ``k`` points and at padding rows.

    Squared distances as ``|a|^2 - 2 a.b + |b|^2`` (one batched matmul): a ``(B, N, N)`` buffer
    whatever ``C`` is, where a difference tensor would hold ``(B, N, N, C)``.
    """
    B, N, _ = x.shape
    if N == 0:
        return torch.full((B, 0, k), -1, dtype=torch.long, device=x.device)
    with torch.no_grad():
        sq = (x * x).sum(-1)
        d = torch.baddbmm(sq[:, :, None] + sq[:, None, :], x, x.transpose(1, 2), alpha=-2.0)
        d = d.masked_fill(~mask[:, None, :], float("inf"))
        dist, idx = d.topk(min(k, N), dim=2, largest=False)
        keep = torch.isfinite(dist) & mask[:, :, None]
        idx = torch.where(keep, idx, torch.full_like(idx, -1))
        if idx.shape[2] < k:
            idx = torch.cat([idx, idx.new_full((B, N, k - idx.shape[2]), -1)], 2)
    return idx


class EdgeConv(nn.Module):
    r"""Edge convolution on a fixed neighbour graph (Wang et al. 2019, DGCNN, Eq. 7-8).

    .. math::
        x'_i = \max_{j \in \mathcal{N}(i)} h_\Theta\big([x_i,\; x_j - x_i]\big)

    ``h`` is a shared :class:`~geo4g.nn.MLP` ``[2 C_in, *hidden, C_out]`` with batch norm and
    LeakyReLU(0.2) after every layer (the last included, as in DGCNN). The graph is given as
    neighbour indices ``idx (B, N, K)``: ``-1`` marks a missing neighbour, and slots
    ``k >= lengths[b]`` are ignored too, so ``knn_points(...).idx`` (0-filled) and
    ``ball_query(...).idx`` (``-1``-filled) can be passed as they are. :meth:`neighbours` builds
    the ``k``-nearest-neighbour graph of the layer (each point its own nearest neighbour, as
    in DGCNN) from any coordinates, e.g. the points, for a graph fixed across layers.

    Args:
        in_channels: ``C_in``.
        out_channels: ``C_out``.
        k: the neighbours per point of the graph built by :meth:`neighbours`.
        hidden: widths of hidden layers of ``h`` (default: none, one layer as in DGCNN).
        norm: ``"batch"``, ``"layer"`` or ``None``; batch statistics are over the valid edges.
        activation: a name from :data:`geo4g.nn.ACTIVATIONS`.

    Shapes:
        - input: ``x (B, N, C_in)``, ``idx (B, N, K)`` long indices into ``N`` (``-1`` padded),
          ``lengths (B,)`` (default: all ``N``)
        - output: ``(B, N, C_out)``; zero at padding points and at points without a neighbour
    """

    def __init__(self, in_channels: int, out_channels: int, k: int = 20, hidden: Sequence[int] = (),
                 norm: Optional[str] = "batch", activation: str = "leaky_relu"):
        super().__init__()
        self.in_channels = check_count(in_channels, "in_channels")
        self.out_channels = check_count(out_channels, "out_channels")
        self.k = check_count(k, "k")
        hidden = [check_count(h, f"hidden[{i}]") for i, h in enumerate(hidden)]
        self.mlp = MLP([2 * in_channels, *hidden, out_channels], norm=norm, activation=activation,
                       last_activation=True)

    def reset_parameters(self) -> None:
        self.mlp.reset_parameters()

    def neighbours(self, pos: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The ``k`` nearest neighbours of every point among the valid points of its cloud.

        Args:
            pos: ``(B, N, D)`` float coordinates (points or features).
            lengths: ``(B,)`` valid rows (default: all ``N``).

        Returns:
            ``idx (B, N, k)`` long, nearest first, the point itself included; ``-1`` where a
            cloud has fewer than ``k`` points and at padding rows. No gradient.
        """
        check_tensor(pos, "pos", ndim=3, kind="float", shape_hint="(B, N, D)")
        B, N = pos.shape[:2]
        if lengths is None:
            lengths = torch.full((B,), N, dtype=torch.long, device=pos.device)
        else:
            lengths = check_lengths(lengths, "lengths", B, N, device=pos.device)
        return _knn_idx(finite_valid_rows(pos, lengths, "pos"), lengths_to_mask(lengths, N), self.k)

    def forward(self, x: torch.Tensor, idx: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        x, lengths, mask = _check_x(x, lengths, self.in_channels)
        return self._convolve(x, self._check_idx(idx, x, lengths, mask), mask)

    def _check_idx(self, idx, x: torch.Tensor, lengths: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``idx`` as long with ``-1`` at every invalid edge (missing, past ``lengths``, at a padding row)."""
        B, N = x.shape[:2]
        check_tensor(idx, "idx", ndim=3, kind="int", shape_hint=f"(B, N, K) = ({B}, {N}, K)")
        if idx.shape[:2] != (B, N):
            raise ValueError(f"idx must have shape (B, N, K) = ({B}, {N}, K) to match x {tuple(x.shape)}, "
                             f"got shape {tuple(idx.shape)}")
        idx = idx.to(device=x.device, dtype=torch.long)
        if idx.numel() and (int(idx.min()) < -1 or int(idx.max()) >= N):
            raise ValueError(f"idx values must lie in [-1, {N}) (-1: no neighbour), "
                             f"got range [{int(idx.min())}, {int(idx.max())}]")
        slots = torch.arange(idx.shape[2], device=x.device)
        valid = (idx >= 0) & (slots[None, None, :] < lengths[:, None, None]) & mask[:, :, None]
        if bool((valid & (idx >= lengths[:, None, None])).any()):
            raise ValueError("idx must point to valid points of each cloud (idx[b] < lengths[b]), "
                             "got a neighbour in the padding")
        return torch.where(valid, idx, torch.full_like(idx, -1))

    def _convolve(self, x: torch.Tensor, idx: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Checked ``x (B, N, C)`` and ``idx (B, N, K)`` with ``-1`` at every invalid edge."""
        B, N, C = x.shape
        K = idx.shape[2]
        valid = idx >= 0
        flat = idx.clamp_min(0).reshape(B, N * K, 1).expand(B, N * K, C)
        x_j = x.gather(1, flat).view(B, N, K, C)
        x_i = x[:, :, None, :].expand(B, N, K, C)
        edges = torch.cat([x_i, x_j - x_i], dim=-1)
        if bool(valid.all()):
            return self.mlp(edges).amax(2)
        h = self.mlp(edges[valid])  # (E, C_out): batch-norm statistics over the valid edges only
        out = h.new_full((B, N, K, self.out_channels), float("-inf"))
        out[valid] = h
        out = out.amax(2)
        return torch.where(valid.any(2)[..., None], out, torch.zeros((), dtype=out.dtype, device=out.device))

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, out_channels={self.out_channels}, k={self.k}"


class DynamicEdgeConv(EdgeConv):
    r""":class:`EdgeConv` on the ``k``-nearest-neighbour graph of its input features, rebuilt at every call.

    The "dynamic graph" of DGCNN (Wang et al. 2019, Sec. 3.2): neighbours are the ``k``
    nearest points in the space of ``x`` (Euclidean, the point itself included), among the
    valid points of the same cloud, so padding is never a neighbour. The graph carries no
    gradient. A cloud of fewer than ``k`` points uses all of them.

    Args: as :class:`EdgeConv`.

    Shapes:
        - input: ``x (B, N, C_in)``, ``lengths (B,)`` (default: all ``N``)
        - output: ``(B, N, C_out)``; zero at padding points
    """

    def forward(self, x: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        x, lengths, mask = _check_x(x, lengths, self.in_channels)
        return self._convolve(x, _knn_idx(x, mask, self.k), mask)


class DGCNNClassifier(nn.Module):
    r"""The DGCNN classification network (Wang et al. 2019, Fig. 3 top).

    Four :class:`DynamicEdgeConv` layers ``64-64-128-256`` (the first on the coordinates,
    the others on the previous features), their outputs concatenated, a shared 1x1 layer
    to ``emb_dims`` (batch norm, LeakyReLU), max and mean pooling over the valid points
    concatenated, FC ``512-256`` (batch norm, LeakyReLU, dropout) and a linear layer to the
    logits.

    Args:
        num_classes: the number of classes.
        k: neighbours per point in every EdgeConv.
        emb_dims: the width of the point embedding before pooling.
        dropout: the drop probability after each hidden FC layer, in ``[0, 1)``.
        width: the multiplier of every hidden width (``64 * width``, ..., ``emb_dims * width``)
            for small models on a CPU.

    Shapes:
        - input: ``points (B, N, 3)`` (or a ``Pointclouds``), ``lengths (B,)``
        - output: ``logits (B, num_classes)``; a cloud with no point gets the logits of a zero
          global feature
    """

    def __init__(self, num_classes: int, k: int = 20, emb_dims: int = 1024, dropout: float = 0.5,
                 width: float = 1.0):
        super().__init__()
        self.num_classes = check_count(num_classes, "num_classes")
        self.k = check_count(k, "k")
        self.emb_dims = check_count(emb_dims, "emb_dims")
        self.dropout = check_dropout(dropout)
        self.width = check_width(width)
        widths = [3] + [scaled(c, width) for c in (64, 64, 128, 256)]
        self.convs = nn.ModuleList(DynamicEdgeConv(c_in, c_out, k) for c_in, c_out in zip(widths[:-1], widths[1:]))
        self.embed_channels = scaled(emb_dims, width)
        self.embed = SharedMLP([sum(widths[1:]), self.embed_channels], activation="leaky_relu")
        self.head = MLP([2 * self.embed_channels, scaled(512, width), scaled(256, width), num_classes],
                        norm="batch", activation="leaky_relu", dropout=dropout)

    def reset_parameters(self) -> None:
        reset_children(self)

    def forward(self, points, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        points, lengths, mask = as_padded(points, lengths)
        x, features = points, []
        for conv in self.convs:
            x = conv(x, lengths)
            features.append(x)
        emb = pointwise(self.embed, torch.cat(features, -1).transpose(1, 2), mask, self.embed_channels)
        count = lengths.clamp_min(1).to(emb.dtype)[:, None]
        pooled = torch.cat([masked_max(emb, mask), emb.sum(2) / count], 1)  # padding columns of emb are 0
        return self.head(pooled)

    def extra_repr(self) -> str:
        return (f"num_classes={self.num_classes}, k={self.k}, emb_dims={self.emb_dims}, dropout={self.dropout}, "
                f"width={self.width}")
