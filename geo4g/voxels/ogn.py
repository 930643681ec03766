"""Octree Generating Networks (Tatarchenko et al. 2017): decoding an octree from a latent code.

    M. Tatarchenko, A. Dosovitskiy, T. Brox. "Octree Generating Networks: Efficient
    Convolutional Architectures for High-resolution 3D Outputs." ICCV 2017.
    https://arxiv.org/abs/1703.09438

:class:`OctreeGeneratingNetwork` decodes a latent code with dense 3-D convolutions to a base
grid (``4**3`` or ``8**3``), then level by level: it predicts for every cell whether it is
empty, filled or mixed (:data:`~geo4g.voxels.octree.EMPTY`, ``FILLED``, ``MIXED``), keeps the
mixed cells, up-samples each into its eight children (:class:`OctreeUpConv`, a 2x2x2
transposed convolution on the sparse set), convolves the children with their same-level
neighbours (:class:`~geo4g.voxels.ocnn.OctreeConv`, neighbours found in the sorted keys) and
predicts their states, down to the finest level, where a cell is empty or filled. Work and
memory grow with the surface, not the volume.

Which cells are subdivided (``propagation``): ``"known"`` uses the ground-truth mixed cells of
a target octree (training, the paper's "propagation of known cells"), ``"predicted"`` the cells
predicted mixed (inference; also usable in training). The loss (:func:`ogn_loss`) is the
cross-entropy of the states of the cells that exist at each level, summed over the levels,
optionally class-balanced (mixed and filled cells are rare). A network for ``2**(D+1)`` voxels
per side can start from one trained for ``2**D`` (:meth:`OctreeGeneratingNetwork.from_coarser`:
the levels are shared, one is added), the paper's way to reach high resolutions.

Also here: :class:`OccupancyEncoder` (a small 3-D CNN from a ``32**3`` grid to the latent code,
for training OGN as an auto-encoder) and :class:`DenseOccupancyDecoder`, the dense
transposed-convolution decoder that OGN is compared with.
"""
from __future__ import annotations

import math
from typing import List, NamedTuple, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from geo4g.structures.checks import check_finite, check_tensor, describe

from .ocnn import OctreeConv
from .octree import MIXED, Octree, find_neighbors, morton_decode

__all__ = ["OctreeUpConv", "OctreeGeneratingNetwork", "OGNOutput", "ogn_loss", "OccupancyEncoder",
           "DenseOccupancyDecoder", "PROPAGATIONS"]

PROPAGATIONS = ("known", "predicted")


def _check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _check_power_of_two(value, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or value & (value - 1):
        raise ValueError(f"{name} must be a power of two >= {low}, got {value!r}")
    return value


def _check_width(width) -> float:
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0:
        raise ValueError(f"width must be a positive number, got {width!r}")
    return float(width)


def _check_latent(latent, latent_dim: int) -> torch.Tensor:
    check_tensor(latent, "latent", ndim=2, kind="float", shape_hint=f"(B, {latent_dim})")
    if latent.shape[1] != latent_dim:
        raise ValueError(f"latent must be (B, {latent_dim}), got shape {tuple(latent.shape)}")
    return check_finite(latent, "latent")


def _channel_list(channels, count: int, default: List[int]) -> List[int]:
    if channels is None:
        return default
    if isinstance(channels, (str, bytes)) or not isinstance(channels, Sequence) or len(channels) != count:
        raise ValueError(f"channels must be a sequence of {count} positive ints, got {channels!r}")
    return [_check_positive_int(c, "channels[i]") for c in channels]


class OctreeUpConv(nn.Module):
    r"""OGN's up-convolution: each cell's features to its eight children, ``y_{8m+c} = W_c^\top x_m + b``.

    The weight is laid out like ``nn.ConvTranspose3d``'s with kernel 2 and stride 2 (child ``c``
    at ``[:, :, c >> 2 & 1, c >> 1 & 1, c & 1]``), so on cells that fill a grid it equals
    ``F.conv_transpose3d(x, weight, bias, stride=2)``.

    Args:
        in_channels, out_channels: ``C_in``, ``C_out``.
        bias: learn an additive bias.

    Shapes:
        - input: ``(M, C_in)``, the features of the cells being subdivided
        - output: ``(8 M, C_out)``, row ``8 m + c`` for child ``c`` of cell ``m`` (the order of
          ``Octree`` children)
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True):
        super().__init__()
        self.in_channels = _check_positive_int(in_channels, "in_channels")
        self.out_channels = _check_positive_int(out_channels, "out_channels")
        self.weight = nn.Parameter(torch.empty(in_channels, out_channels, 2, 2, 2))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``nn.ConvTranspose3d``'s initialisation."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.out_channels * 8)
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        check_tensor(features, "features", ndim=2, kind="float", shape_hint=f"(M, {self.in_channels})")
        if features.shape[1] != self.in_channels:
            raise ValueError(f"features must be (M, {self.in_channels}), got shape {tuple(features.shape)}")
        weight = self.weight.reshape(self.in_channels, self.out_channels, 8).transpose(1, 2)
        out = (features @ weight.reshape(self.in_channels, 8 * self.out_channels)).view(-1, self.out_channels)
        return out if self.bias is None else out + self.bias

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, bias={self.bias is not None}"


class OGNOutput(NamedTuple):
    """What :class:`OctreeGeneratingNetwork` returns, one entry per level from the base level to
    the finest (``levels[i]`` is the level of entry ``i``).

    ``logits[i] (N_d, 3)`` state logits of the level's cells (``(N_D, 2)``, empty/filled, at the
    finest level); ``keys[i]``, ``batch[i] (N_d,)`` their Morton keys and batch items, sorted;
    ``targets[i] (N_d,)`` their ground-truth states (``None`` without a target); ``octree`` the
    predicted octree (with ``propagation="predicted"``, else ``None``).
    """

    levels: List[int]
    logits: List[torch.Tensor]
    keys: List[torch.Tensor]
    batch: List[torch.Tensor]
    targets: List[Optional[torch.Tensor]]
    octree: Optional[Octree]


def ogn_loss(output: OGNOutput, level_weights: Optional[Sequence[float]] = None,
             class_balance: float = 0.0) -> torch.Tensor:
    r"""OGN's loss: per level, the cross-entropy of the cells' states, summed over the levels.

    Most cells of a level are empty; mixed (surface) and filled cells are a few percent, so a plain
    mean is dominated by empty cells and learns to predict them first. ``class_balance`` ``beta``
    weights a cell in state ``c`` by ``n_c^{-beta}``, ``n_c`` the number of the level's cells in
    state ``c`` (in the batch), normalised by the summed weights (``F.cross_entropy``'s ``weight``):
    ``beta = 0`` is the plain mean, ``beta = 1`` the mean over the states present of each state's
    mean cross-entropy.

    Args:
        output: an :class:`OGNOutput` computed with a target.
        level_weights: optional weight per level of the output (default 1 each).
        class_balance: ``beta`` in ``[0, 1]``. The counts are not differentiated.

    Returns:
        A scalar; a level without cells adds 0.
    """
    if not isinstance(output, OGNOutput):
        raise TypeError(f"output must be an OGNOutput, got {describe(output)}")
    if any(t is None for t in output.targets):
        raise ValueError("output has no targets: call the network with target=<Octree>")
    weights = [1.0] * len(output.logits) if level_weights is None else list(level_weights)
    if len(weights) != len(output.logits):
        raise ValueError(f"level_weights must have one weight per output level ({len(output.logits)}), got {weights}")
    if isinstance(class_balance, bool) or not isinstance(class_balance, (int, float)) or not 0 <= class_balance <= 1:
        raise ValueError(f"class_balance must be a number in [0, 1], got {class_balance!r}")
    total = output.logits[0].new_zeros(())
    for weight, logits, target in zip(weights, output.logits, output.targets):
        if not logits.shape[0]:
            continue
        state_weights = None
        if class_balance:
            counts = torch.bincount(target, minlength=logits.shape[1]).to(logits.dtype)
            state_weights = counts.clamp(min=1).pow(-float(class_balance))
        total = total + weight * F.cross_entropy(logits, target, weight=state_weights)
    return total


class _DenseTrunk(nn.Module):
    """Latent ``(B, L)`` to a dense ``(B, C_out, R, R, R)`` feature grid: a linear layer to
    ``min(R, 4)**3`` cells of ``C_0``, then per doubling a 4x4x4 stride-2 transposed convolution
    and ReLU, and a 3x3x3 convolution to ``C_out``."""

    def __init__(self, latent_dim: int, resolution: int, channels: List[int], out_channels: int):
        super().__init__()
        self.start = min(resolution, 4)
        self.fc = nn.Linear(latent_dim, channels[0] * self.start ** 3)
        self.ups = nn.ModuleList(nn.ConvTranspose3d(channels[i], channels[i + 1], 4, stride=2, padding=1)
                                 for i in range(len(channels) - 1))
        self.out = nn.Conv3d(channels[-1], out_channels, 3, padding=1)
        self.channels = channels

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        s = self.start
        x = F.relu(self.fc(latent)).view(-1, self.channels[0], s, s, s)
        for up in self.ups:
            x = F.relu(up(x))
        return self.out(x)


class OctreeGeneratingNetwork(nn.Module):
    r"""The Octree Generating Network decoder (Tatarchenko et al. 2017, Sec. 3-4).

    ``latent -> Linear -> (C_b, 4, 4, 4) -> [ConvTranspose3d 4x4x4/2 + ReLU]* -> Conv3d`` gives
    features on every cell of the base grid (level ``b = log2(base_resolution)``). Then for each
    level ``d = b .. D``: a linear head predicts state logits; the cells to subdivide are chosen
    (``propagation``); :class:`OctreeUpConv` + ReLU gives their children's features at level
    ``d + 1``, followed by ``convs_per_level`` x (3x3x3 :class:`~geo4g.voxels.ocnn.OctreeConv` +
    ReLU) over the children and their same-level neighbours.

    Args:
        latent_dim: the size ``L`` of the latent code.
        depth: the output level ``D``: ``2**D`` voxels per side (6: ``64**3``, 7: ``128**3``).
        base_resolution: the dense base grid (a power of two, ``2 <= base_resolution < 2**D``).
        channels: feature widths at levels ``b .. D`` (``D - b + 1`` ints); default
            ``max(4, 32 w / 2**(d - b))`` at level ``d`` for ``width`` ``w``.
        convs_per_level: 3x3x3 octree convolutions after each up-sampling.
        propagation: the default for training calls with a target, ``"known"`` or ``"predicted"``.
        width: multiplies the default widths.

    Shapes:
        - input: ``latent (B, L)``; ``target`` an :class:`Octree` of depth ``D`` and batch size ``B``
          (from ``Octree.from_dense(grid)``) or ``None``
        - output: :class:`OGNOutput`; :meth:`generate` gives ``(B, R, R, R)`` bool occupancy
    """

    def __init__(self, latent_dim: int, depth: int, base_resolution: int = 8, channels: Optional[Sequence[int]] = None,
                 convs_per_level: int = 1, propagation: str = "known", width: float = 1.0):
        super().__init__()
        self.latent_dim = _check_positive_int(latent_dim, "latent_dim")
        if isinstance(depth, bool) or not isinstance(depth, int) or not 2 <= depth <= 12:
            raise ValueError(f"depth must be an int in [2, 12] (output 2**depth voxels per side), got {depth!r}")
        self.depth = depth
        self.base_resolution = _check_power_of_two(base_resolution, "base_resolution", 2)
        if base_resolution >= 2 ** depth:
            raise ValueError(f"base_resolution must be below the output resolution 2**depth = {2 ** depth}, "
                             f"got {base_resolution}")
        self.base_level = base_resolution.bit_length() - 1
        if isinstance(convs_per_level, bool) or not isinstance(convs_per_level, int) or convs_per_level < 0:
            raise ValueError(f"convs_per_level must be a non-negative int, got {convs_per_level!r}")
        self.convs_per_level = convs_per_level
        if propagation not in PROPAGATIONS:
            raise ValueError(f"propagation must be one of {PROPAGATIONS}, got {propagation!r}")
        self.propagation = propagation
        self.width = _check_width(width)
        levels = depth - self.base_level + 1
        default = [max(4, int(32 * self.width) >> i) for i in range(levels)]
        self.channels = _channel_list(channels, levels, default)
        base_channels = self.channels[0]
        trunk = [base_channels] * (max(self.base_level - 2, 0) + 1)
        self.trunk = _DenseTrunk(latent_dim, base_resolution, trunk, base_channels)
        self.ups = nn.ModuleList(OctreeUpConv(self.channels[i], self.channels[i + 1]) for i in range(levels - 1))
        self.convs = nn.ModuleList(
            nn.ModuleList(OctreeConv(self.channels[i + 1], self.channels[i + 1]) for _ in range(convs_per_level))
            for i in range(levels - 1))
        self.heads = nn.ModuleList(nn.Linear(c, 2 if i == levels - 1 else 3) for i, c in enumerate(self.channels))

    def reset_parameters(self) -> None:
        for m in self.modules():
            if m is not self and hasattr(m, "reset_parameters"):
                m.reset_parameters()

    @classmethod
    def from_coarser(cls, coarse: "OctreeGeneratingNetwork", channels: Optional[int] = None,
                     mixed_margin: float = 1.0) -> "OctreeGeneratingNetwork":
        """A network one level deeper than ``coarse`` that starts from its weights (training at a
        high resolution by fine-tuning a network trained at half of it, as in the paper).

        The levels are shared: the trunk, up-convolutions, octree convolutions and heads of
        ``coarse``'s levels are copied, except its finest head (empty/filled), whose two rows
        become the empty and filled rows of the new network's 3-way head at that level; that
        head's mixed row is their mean with ``mixed_margin`` added to the bias, so the cells
        ``coarse`` was unsure about (``|logit_filled - logit_empty| < 2 mixed_margin``, the
        surface) start out mixed and are subdivided. The new finest level is freshly initialised.

        Args:
            coarse: a trained :class:`OctreeGeneratingNetwork` of depth ``D < 12``.
            channels: the width of the new level ``D + 1`` (default ``coarse``'s finest width).
            mixed_margin: a finite number, see above.

        Returns:
            A network of depth ``D + 1`` with ``coarse``'s settings, on its device and dtype.
        """
        if not isinstance(coarse, OctreeGeneratingNetwork):
            raise TypeError(f"coarse must be an OctreeGeneratingNetwork, got {describe(coarse)}")
        if coarse.depth >= 12:
            raise ValueError(f"coarse must have depth < 12 to add a level, got depth {coarse.depth}")
        finest = coarse.channels[-1] if channels is None else _check_positive_int(channels, "channels")
        if isinstance(mixed_margin, bool) or not isinstance(mixed_margin, (int, float)) \
                or not math.isfinite(mixed_margin):
            raise ValueError(f"mixed_margin must be a finite number, got {mixed_margin!r}")
        fine = cls(coarse.latent_dim, coarse.depth + 1, coarse.base_resolution, [*coarse.channels, finest],
                   coarse.convs_per_level, coarse.propagation, coarse.width).to(coarse.heads[0].weight)
        last = len(coarse.channels) - 1
        fine.load_state_dict({k: v for k, v in coarse.state_dict().items() if not k.startswith(f"heads.{last}.")},
                             strict=False)
        with torch.no_grad():
            old, new = coarse.heads[last], fine.heads[last]
            new.weight[:2] = old.weight
            new.bias[:2] = old.bias
            new.weight[MIXED] = old.weight.mean(0)
            new.bias[MIXED] = old.bias.mean() + mixed_margin
        return fine

    def forward(self, latent: torch.Tensor, target: Optional[Octree] = None,
                propagation: Optional[str] = None) -> OGNOutput:
        """Decode ``latent``; with a ``target``, also the ground-truth state of every cell.

        Args:
            latent: ``(B, L)``.
            target: the ground-truth octree (needed for ``"known"`` propagation and for the loss).
            propagation: ``"known"`` or ``"predicted"``; default: the network's ``propagation``
                when a target is given, else ``"predicted"``.
        """
        latent = _check_latent(latent, self.latent_dim)
        B = latent.shape[0]
        if propagation is None:
            propagation = self.propagation if target is not None else "predicted"
        if propagation not in PROPAGATIONS:
            raise ValueError(f"propagation must be one of {PROPAGATIONS}, got {propagation!r}")
        if target is not None:
            if not isinstance(target, Octree):
                raise TypeError(f"target must be an Octree (Octree.from_dense(grid)), got {describe(target)}")
            if target.depth != self.depth or target.batch_size != B or target.device != latent.device:
                raise ValueError(f"target must be an octree of depth {self.depth} with batch size {B} on "
                                 f"{latent.device}, got {target!r}")
        elif propagation == "known":
            raise ValueError("propagation='known' needs the target octree whose mixed cells are subdivided")
        known = propagation == "known"
        device = latent.device
        b = self.base_level
        grid = self.trunk(latent)  # (B, C_b, r, r, r)
        base_keys = torch.arange(8 ** b, device=device)
        xyz = morton_decode(base_keys)
        features = grid[:, :, xyz[:, 0], xyz[:, 1], xyz[:, 2]].permute(0, 2, 1).reshape(B * 8 ** b, -1)
        keys = base_keys.repeat(B)
        batch = torch.arange(B, device=device).repeat_interleave(8 ** b)
        targets = None
        if target is not None:
            targets = target.state_grid(b)[batch, xyz[:, 0].repeat(B), xyz[:, 1].repeat(B), xyz[:, 2].repeat(B)]
        out = OGNOutput([], [], [], [], [], None)
        predicted_states: List[torch.Tensor] = []
        for i, level in enumerate(range(b, self.depth + 1)):
            if i > 0:
                chosen = (out.targets[-1] if known else out.logits[-1].argmax(1)) == MIXED
                features = F.relu(self.ups[i - 1](features[chosen]))
                if known:
                    keys, batch = target.keys(level), target.batch_index(level)
                    targets = target.states(level)
                    neighbors = target.neighbors(level) if self.convs_per_level else None
                else:
                    keys = (keys[chosen, None] * 8 + torch.arange(8, device=device)).reshape(-1)
                    batch = batch[chosen].repeat_interleave(8)
                    targets = None if target is None else target.query_states(level, batch, keys)
                    neighbors = find_neighbors(keys, batch, level) if self.convs_per_level else None
                for conv in self.convs[i - 1]:
                    features = F.relu(conv(features, neighbors))
            logits = self.heads[i](features)
            out.levels.append(level)
            out.logits.append(logits)
            out.keys.append(keys)
            out.batch.append(batch)
            out.targets.append(targets)
            if not known:
                predicted_states.append(logits.detach().argmax(1))
        octree = None
        if not known:
            above = [torch.full((B * 8 ** d,), MIXED, dtype=torch.long, device=device) for d in range(b)]
            octree = Octree.from_states(above + predicted_states)
        return out._replace(octree=octree)

    @torch.no_grad()
    def generate(self, latent: torch.Tensor) -> torch.Tensor:
        """``(B, R, R, R)`` bool occupancy decoded from ``latent (B, L)`` with predicted propagation
        (filled leaves fill their whole block). Runs without gradient."""
        return self.forward(latent, propagation="predicted").octree.to_dense()

    def extra_repr(self) -> str:
        return (f"latent_dim={self.latent_dim}, depth={self.depth}, base_resolution={self.base_resolution}, "
                f"channels={self.channels}, convs_per_level={self.convs_per_level}, "
                f"propagation={self.propagation!r}")


def _as_occupancy(grid, resolution: int) -> torch.Tensor:
    check_tensor(grid, "grid", ndim=4, shape_hint=f"(B, {resolution}, {resolution}, {resolution})")
    if grid.shape[1:] != (resolution,) * 3:
        raise ValueError(f"grid must be (B, {resolution}, {resolution}, {resolution}), got shape {tuple(grid.shape)}")
    if grid.is_complex():
        raise TypeError(f"grid must be a bool or real tensor, got dtype {grid.dtype}")
    grid = grid.float() if not grid.is_floating_point() else grid
    return check_finite(grid, "grid")


class OccupancyEncoder(nn.Module):
    r"""A small 3-D CNN from an occupancy grid to a latent code.

    Per halving of the grid down to ``4**3``: ``Conv3d 3x3x3 stride 2 -> ReLU``; then a linear
    layer from the flattened ``C x 4 x 4 x 4`` features to ``latent_dim``.

    Args:
        latent_dim: the size ``L`` of the code.
        resolution: the input grid size ``R`` (a power of two ``>= 8``; 32 by default).
        channels: the widths after each strided convolution (``log2(R / 4)`` ints); default
            ``8 w, 16 w, 32 w, ...`` for ``width`` ``w``.
        width: multiplies the default widths.

    Shapes:
        - input: ``(B, R, R, R)`` occupancy (bool or float, indexed ``[b, x, y, z]``)
        - output: ``(B, L)``
    """

    def __init__(self, latent_dim: int, resolution: int = 32, channels: Optional[Sequence[int]] = None,
                 width: float = 1.0):
        super().__init__()
        self.latent_dim = _check_positive_int(latent_dim, "latent_dim")
        self.resolution = _check_power_of_two(resolution, "resolution", 8)
        self.width = _check_width(width)
        blocks = resolution.bit_length() - 3
        default = [max(4, int(8 * self.width) << i) for i in range(blocks)]
        self.channels = _channel_list(channels, blocks, default)
        widths = [1] + self.channels
        self.convs = nn.ModuleList(nn.Conv3d(widths[i], widths[i + 1], 3, stride=2, padding=1) for i in range(blocks))
        self.fc = nn.Linear(self.channels[-1] * 64, latent_dim)

    def reset_parameters(self) -> None:
        for m in self.modules():
            if m is not self and hasattr(m, "reset_parameters"):
                m.reset_parameters()

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        x = _as_occupancy(grid, self.resolution)[:, None]
        for conv in self.convs:
            x = F.relu(conv(x))
        return self.fc(x.flatten(1))

    def extra_repr(self) -> str:
        return f"latent_dim={self.latent_dim}, resolution={self.resolution}, channels={self.channels}"


class DenseOccupancyDecoder(nn.Module):
    r"""The dense baseline of OGN: a latent code to occupancy logits on the full grid.

    ``Linear -> (C_0, 4, 4, 4) -> [ConvTranspose3d 4x4x4 stride 2 -> ReLU] x log2(R / 4) ->
    Conv3d 3x3x3 -> 1 channel``. Train with ``F.binary_cross_entropy_with_logits``, or with
    ``geo4g.voxels.generative.occupancy_loss(..., pos_weight=w)`` where occupied voxels are rare
    (plain cross-entropy first learns to predict every voxel empty). Memory and work grow with
    the volume ``R**3``.

    Args:
        latent_dim: the size ``L`` of the code.
        resolution: the output grid size ``R`` (a power of two ``>= 4``).
        channels: widths at ``4, 8, ..., R`` (``log2(R) - 1`` ints); default
            ``max(4, 32 w / 2**i)``, ``i = 0, 1, ...``, for ``width`` ``w``.
        width: multiplies the default widths.

    Shapes:
        - input: ``latent (B, L)``
        - output: ``(B, R, R, R)`` logits indexed ``[b, x, y, z]``; :meth:`generate` gives bool occupancy
    """

    def __init__(self, latent_dim: int, resolution: int, channels: Optional[Sequence[int]] = None, width: float = 1.0):
        super().__init__()
        self.latent_dim = _check_positive_int(latent_dim, "latent_dim")
        self.resolution = _check_power_of_two(resolution, "resolution", 4)
        self.width = _check_width(width)
        count = resolution.bit_length() - 2
        default = [max(4, int(32 * self.width) >> i) for i in range(count)]
        self.channels = _channel_list(channels, count, default)
        self.trunk = _DenseTrunk(latent_dim, resolution, self.channels, 1)

    def reset_parameters(self) -> None:
        for m in self.modules():
            if m is not self and hasattr(m, "reset_parameters"):
                m.reset_parameters()

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.trunk(_check_latent(latent, self.latent_dim))[:, 0]

    @torch.no_grad()
    def generate(self, latent: torch.Tensor, threshold: float = 0.0) -> torch.Tensor:
        """``(B, R, R, R)`` bool occupancy, ``logit > threshold``, without gradient.

        A decoder trained with a weight ``w`` on occupied voxels (``occupancy_loss(...,
        pos_weight=w)``) learns logits shifted by ``log w``; ``threshold=log(w)`` undoes the
        shift (occupied where the unweighted probability is above 1/2).
        """
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or math.isnan(threshold):
            raise ValueError(f"threshold must be a number, got {threshold!r}")
        return self.forward(latent) > threshold

    def extra_repr(self) -> str:
        return f"latent_dim={self.latent_dim}, resolution={self.resolution}, channels={self.channels}"
