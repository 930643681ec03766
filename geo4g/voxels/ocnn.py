"""O-CNN (Wang et al. 2017): convolution and pooling on the cells of an octree, and the classifier.

    P.-S. Wang, Y. Liu, Y.-X. Guo, C.-Y. Sun, X. Tong. "O-CNN: Octree-based Convolutional Neural
    Networks for 3D Shape Analysis." SIGGRAPH 2017. https://arxiv.org/abs/1712.01537

Features live on the cells of one octree level as a ``(N_d, C)`` tensor, rows in the level's
order (:class:`~geo4g.voxels.octree.Octree`). A convolution gathers each cell's ``k**3``
same-level neighbours through the octree's neighbour look-up (a missing neighbour reads zeros)
and applies one learned weight per kernel offset: on the cells of a level it equals a dense
``conv3d`` (padding ``k // 2``) of the features scattered into the ``2**d`` grid, read back at
the cells. Pooling takes the max over the eight children of each subdivided cell.

O-CNN computes on every cell of a level, the empty siblings of occupied cells included, so its
octrees keep occupied cells subdivided to the finest level: build them with
``Octree.from_points`` or ``Octree.from_dense(grid, collapse_full=False)``.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from geo4g.structures.checks import check_tensor, describe

from .octree import FILLED, MIXED, Octree

__all__ = ["octree_conv", "OctreeConv", "OctreePool", "OCNNClassifier", "OCNNOutput"]

READOUTS = ("grid", "max", "mean")


def octree_conv(features: torch.Tensor, neighbors: torch.Tensor, weight: torch.Tensor,
                bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    r"""Sparse convolution over a set of cells: :math:`y_i = b + \sum_o W_o\, x_{n(i, o)}`.

    Args:
        features: ``(N, C_in)`` float, one row per cell.
        neighbors: ``(N, k**3)`` long, the neighbour of each cell at each offset in ``conv3d``
            weight order (as ``Octree.neighbors`` returns), ``-1`` where there is none (read as zeros).
        weight: ``(C_out, C_in, k, k, k)``, laid out like ``torch.nn.Conv3d.weight`` (offset
            ``(dx, dy, dz)`` at ``[:, :, dx + k//2, dy + k//2, dz + k//2]``).
        bias: optional ``(C_out,)``.

    Returns:
        ``(N, C_out)``, differentiable in ``features``, ``weight`` and ``bias``. No cell: ``(0, C_out)``.
    """
    check_tensor(features, "features", ndim=2, kind="float", shape_hint="(N, C_in)")
    check_tensor(weight, "weight", ndim=5, kind="float", shape_hint="(C_out, C_in, k, k, k)")
    check_tensor(neighbors, "neighbors", ndim=2, kind="int", shape_hint="(N, k**3)")
    c_out, c_in, k = weight.shape[0], weight.shape[1], weight.shape[2]
    n = features.shape[0]
    if features.shape[1] != c_in:
        raise ValueError(f"features must have {c_in} channels (N, C_in) to match weight, got shape "
                         f"{tuple(features.shape)}")
    if neighbors.shape != (n, k ** 3):
        raise ValueError(f"neighbors must be (N={n}, k**3={k ** 3}) for features {tuple(features.shape)} and a "
                         f"kernel of size {k}, got shape {tuple(neighbors.shape)}")
    padded = torch.cat([features, features.new_zeros(1, c_in)])
    columns = padded[torch.where(neighbors < 0, n, neighbors)].reshape(n, k ** 3 * c_in)
    out = columns @ weight.permute(2, 3, 4, 1, 0).reshape(k ** 3 * c_in, c_out)
    return out if bias is None else out + bias


def _check_channels(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _level_neighbors(octree, level: Optional[int], kernel_size: int, num_cells: int) -> torch.Tensor:
    """The ``(N, k**3)`` neighbour index from an ``Octree`` and a level, or given directly."""
    if isinstance(octree, Octree):
        if level is None:
            raise ValueError("level must be given with an Octree: the level whose cells carry the features")
        neighbors = octree.neighbors(level, kernel_size)
    elif isinstance(octree, torch.Tensor):
        neighbors = octree
    else:
        raise TypeError(f"octree must be an Octree or a (N, k**3) neighbour index tensor, got {describe(octree)}")
    if neighbors.shape[0] != num_cells:
        raise ValueError(f"features must have one row per cell ({neighbors.shape[0]}), got {num_cells} rows")
    return neighbors


class OctreeConv(nn.Module):
    r"""Convolution on the cells of one octree level (O-CNN's octree-based convolution).

    :math:`y_i = b + \sum_{o \in \{-r..r\}^3} W_o\, x_{n(i, o)}`, ``n(i, o)`` the cell at offset
    ``o`` of cell ``i`` in the same level and batch item, zero where the octree has none. The
    weight is laid out like ``nn.Conv3d``'s, so on a level whose cells fill the grid the result
    equals ``F.conv3d(..., padding=k // 2)`` with the same weight and bias.

    Args:
        in_channels, out_channels: ``C_in``, ``C_out``.
        kernel_size: an odd int (3: the 27-neighbourhood).
        bias: learn an additive bias.

    Shapes:
        - input: ``features (N_d, C_in)``; ``octree`` an :class:`Octree` with ``level`` ``d``, or a
          precomputed ``(N_d, k**3)`` neighbour index (``-1`` for none), e.g. from
          :func:`~geo4g.voxels.octree.find_neighbors`
        - output: ``(N_d, C_out)``
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, bias: bool = True):
        super().__init__()
        self.in_channels = _check_channels(in_channels, "in_channels")
        self.out_channels = _check_channels(out_channels, "out_channels")
        if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd int, got {kernel_size!r}")
        self.kernel_size = kernel_size
        k = kernel_size
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, k, k, k))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``nn.Conv3d``'s initialisation."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_channels * self.kernel_size ** 3)
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, features: torch.Tensor, octree: Union[Octree, torch.Tensor],
                level: Optional[int] = None) -> torch.Tensor:
        check_tensor(features, "features", ndim=2, kind="float", shape_hint=f"(N_d, {self.in_channels})")
        neighbors = _level_neighbors(octree, level, self.kernel_size, features.shape[0])
        return octree_conv(features, neighbors, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, bias={self.bias is not None}"


class OctreePool(nn.Module):
    """Max pooling over the eight children: features of level ``d`` to level ``d - 1``.

    A subdivided (:data:`MIXED`) cell of level ``d - 1`` gets the channel-wise max over its eight
    children; a leaf of level ``d - 1`` (no children) gets zeros, as O-CNN's empty octants do.
    The gradient goes to the arg-max child.

    Shapes:
        - input: ``features (N_d, C)``, ``octree``, ``level`` ``d >= 1`` (the level of the input)
        - output: ``(N_{d-1}, C)``
    """

    def forward(self, features: torch.Tensor, octree: Octree, level: int) -> torch.Tensor:
        check_tensor(features, "features", ndim=2, kind="float", shape_hint="(N_d, C)")
        if not isinstance(octree, Octree):
            raise TypeError(f"octree must be an Octree, got {describe(octree)}")
        if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= octree.depth:
            raise ValueError(f"level must be an int in [1, depth={octree.depth}] (the level of the input), "
                             f"got {level!r}")
        if features.shape[0] != octree.num_cells(level):
            raise ValueError(f"features must have one row per cell of level {level} ({octree.num_cells(level)}), "
                             f"got shape {tuple(features.shape)}")
        children = octree.children(level - 1)
        out = features.new_zeros(children.shape[0], features.shape[1])
        mixed = (octree.states(level - 1) == MIXED).nonzero().squeeze(1)
        out[mixed] = features[children[mixed]].amax(1)
        return out


class OCNNOutput(NamedTuple):
    """What :class:`OCNNClassifier` returns: ``logits (B, num_classes)`` and the ``(B, C)`` shape
    ``feature`` before the fully connected head."""

    logits: torch.Tensor
    feature: torch.Tensor


def _default_channels(depth: int, width: float) -> list:
    """O-CNN's widths: ``2**(9 - d)`` channels at level ``d`` (capped to 256 at coarse levels)."""
    return [max(2, int(round(min(2 ** (9 - d), 256) * width))) for d in range(depth, 2, -1)]


class OCNNClassifier(nn.Module):
    r"""The O-CNN classification network (Wang et al. 2017, Sec. 4).

    From the finest level ``D`` down to level 3, each level applies :class:`OctreeConv` (3x3x3),
    batch norm and ReLU, then :class:`OctreePool` to the level above. At level 2 the features are
    read out (``"grid"``: scattered into the dense ``4 x 4 x 4`` grid, zeros where the octree has
    no cell, and flattened, as in the paper; ``"max"`` / ``"mean"``: pooled over each item's
    cells), then ``FC(C_h) -> dropout -> ReLU -> FC(num_classes)``.

    Args:
        num_classes: the number of classes.
        depth: the octree depth ``D >= 3`` of the input.
        in_channels: input feature channels per finest cell (3 for averaged normals, 1 for occupancy).
        channels: the output widths of the convolutions at levels ``D, D - 1, ..., 3`` (``D - 2``
            ints; level 2 keeps the last); default O-CNN's ``2**(9 - d)`` (capped at 256) times ``width``.
        hidden: the width of the hidden fully connected layer (default 128).
        dropout: the drop probability before the hidden layer's activation (the paper's 0.5).
        readout: ``"grid"``, ``"max"`` or ``"mean"`` (see above).
        width: multiplies the default ``channels``.

    Shapes:
        - input: an :class:`Octree` of depth ``D`` built without collapsing full blocks (no
          :data:`FILLED` cell above level ``D``), and ``features (N_D, in_channels)`` per cell of
          level ``D`` (default: ``octree.features(D)``)
        - output: :class:`OCNNOutput` with ``logits (B, num_classes)`` and ``feature (B, C_r)``,
          ``C_r = 64 * channels[-1]`` for ``"grid"``, ``channels[-1]`` otherwise; an item without
          cells at level 2 (an empty cloud) reads zeros
    """

    def __init__(self, num_classes: int, depth: int, in_channels: int = 3, channels: Optional[Sequence[int]] = None,
                 hidden: int = 128, dropout: float = 0.5, readout: str = "grid", width: float = 1.0):
        super().__init__()
        self.num_classes = _check_channels(num_classes, "num_classes")
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 3:
            raise ValueError(f"depth must be an int >= 3 (convolutions run from level depth down to 3), got {depth!r}")
        self.depth = depth
        self.in_channels = _check_channels(in_channels, "in_channels")
        if not (isinstance(width, (int, float)) and not isinstance(width, bool) and width > 0):
            raise ValueError(f"width must be a positive number, got {width!r}")
        self.width = width
        if channels is None:
            channels = _default_channels(depth, width)
        channels = [_check_channels(c, "channels[i]") for c in channels]
        if len(channels) != depth - 2:
            raise ValueError(f"channels must give one width per level {depth}..3 ({depth - 2} ints), got {channels!r}")
        self.channels = channels
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
        self.readout = readout
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout!r}")
        self.hidden = _check_channels(hidden, "hidden")
        widths = [in_channels] + channels
        self.convs = nn.ModuleList(OctreeConv(widths[i], widths[i + 1]) for i in range(depth - 2))
        self.norms = nn.ModuleList(nn.BatchNorm1d(widths[i + 1]) for i in range(depth - 2))
        self.pool = OctreePool()
        readout_channels = channels[-1] * (64 if readout == "grid" else 1)
        self.head = nn.Sequential(nn.Linear(readout_channels, hidden), nn.Dropout(dropout), nn.ReLU(),
                                  nn.Linear(hidden, num_classes))

    def reset_parameters(self) -> None:
        for m in self.modules():
            if m is not self and hasattr(m, "reset_parameters"):
                m.reset_parameters()

    def forward(self, octree: Octree, features: Optional[torch.Tensor] = None) -> OCNNOutput:
        if not isinstance(octree, Octree):
            raise TypeError(f"octree must be an Octree, got {describe(octree)}")
        if octree.depth != self.depth:
            raise ValueError(f"octree must have depth {self.depth}, got depth {octree.depth}")
        for d in range(octree.depth):
            if bool((octree.states(d) == FILLED).any()):
                raise ValueError(f"octree has FILLED leaves above the finest level (level {d}): build it with "
                                 "Octree.from_dense(grid, collapse_full=False) or Octree.from_points")
        if features is None:
            features = octree.features(self.depth)
            if features is None:
                raise ValueError(f"features must be given, or attached to level {self.depth} of the octree "
                                 "(Octree.from_points(..., features=normals) or octree.set_features)")
        check_tensor(features, "features", ndim=2, kind="float", shape_hint=f"(N_D, {self.in_channels})")
        if features.shape != (octree.num_cells(self.depth), self.in_channels):
            raise ValueError(f"features must be (N_D={octree.num_cells(self.depth)}, {self.in_channels}), got shape "
                             f"{tuple(features.shape)}")
        x = features
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            level = self.depth - i
            x = F.relu(norm(conv(x, octree, level)))
            x = self.pool(x, octree, level)
        feature = self._readout(x, octree)
        return OCNNOutput(self.head(feature), feature)

    def _readout(self, x: torch.Tensor, octree: Octree) -> torch.Tensor:
        batch = octree.batch_index(2)
        B, C = octree.batch_size, x.shape[1]
        if self.readout == "grid":
            key = octree.keys(2)
            grid = x.new_zeros(B * 64, C).index_put((batch * 64 + key,), x)
            return grid.view(B, 64 * C)  # cells in Morton order: a fixed order is all the linear layer needs
        index = batch[:, None].expand_as(x)
        if self.readout == "max":
            return x.new_zeros(B, C).scatter_reduce(0, index, x, "amax", include_self=False)
        counts = torch.bincount(batch, minlength=B).clamp(min=1).to(x.dtype)
        return x.new_zeros(B, C).index_add(0, batch, x) / counts[:, None]

    def extra_repr(self) -> str:
        return (f"num_classes={self.num_classes}, depth={self.depth}, in_channels={self.in_channels}, "
                f"channels={self.channels}, readout={self.readout!r}")
