"""3-D CNN classifiers of occupancy grids: VoxNet and a discriminative 3D ShapeNets network.

    D. Maturana, S. Scherer. "VoxNet: A 3D Convolutional Neural Network for Real-Time Object
    Recognition." IROS 2015.
    Z. Wu, S. Song, A. Khosla, F. Yu, L. Zhang, X. Tang, J. Xiao. "3D ShapeNets: A Deep
    Representation for Volumetric Shapes." CVPR 2015. https://arxiv.org/abs/1406.5670

Grid convention of :mod:`geo4g.voxels`: an occupancy grid is ``(B, R, R, R)`` (bool, integer
or float), indexed ``[b, i, j, k]`` with ``i`` along x, ``j`` along y and ``k`` along z. Every
voxel model takes either that or channels-first ``(B, C, R, R, R)`` (``C = in_channels``; the
4-D form only when ``in_channels == 1``); bool and integer grids are converted to the model's
floating dtype. Training recipes are not part of the models; a classifier trains with::

    loss = F.cross_entropy(model(grids), labels)

``width`` scales every hidden width (``32 * width`` filters, ...) for small models on a CPU.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import torch
from torch import nn

from geo4g.nn.layers import MLP, ConvBlock
from geo4g.structures.checks import check_finite, check_tensor

__all__ = ["VoxNet", "ShapeNets3D", "as_voxel_input"]


def as_voxel_input(grid, name: str, resolution: int, in_channels: int = 1,
                   dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """A checked channels-first voxel batch ``(B, C, R, R, R)`` for a model built for ``resolution``.

    Args:
        grid: ``(B, R, R, R)`` (only when ``in_channels == 1``) or ``(B, C, R, R, R)``; bool,
            integer or floating point, finite.
        name: the argument name used in error messages.
        resolution: the model's ``R``.
        in_channels: the model's ``C``.
        dtype: the floating dtype to convert to (default: ``grid``'s own floating dtype, or
            ``torch.get_default_dtype()`` for bool and integer grids).

    Returns:
        ``(B, C, R, R, R)`` floating point.

    Raises:
        TypeError: a non-tensor or a complex tensor.
        ValueError: a wrong rank, channel count or spatial size, NaN/inf values.
    """
    hint = f"(B, {resolution}, {resolution}, {resolution})" if in_channels == 1 else ""
    full = f"(B, {in_channels}, {resolution}, {resolution}, {resolution})"
    hint = f"{hint} or {full}" if hint else full
    check_tensor(grid, name, ndim=(4, 5), shape_hint=hint)
    if grid.is_complex():
        raise TypeError(f"{name} must be a bool, integer or floating point occupancy grid {hint}, "
                        f"got dtype {grid.dtype}")
    shape = tuple(grid.shape)
    check_finite(grid, name)
    if grid.dim() == 4:
        if in_channels != 1:
            raise ValueError(f"{name} must be {full} for a model with in_channels={in_channels}, got shape {shape}")
        grid = grid.unsqueeze(1)
    if tuple(grid.shape[1:]) != (in_channels, resolution, resolution, resolution):
        raise ValueError(f"{name} must be {hint} for a model built for in_channels={in_channels}, "
                         f"resolution={resolution}, got shape {shape}")
    if dtype is None:
        dtype = grid.dtype if grid.is_floating_point() else torch.get_default_dtype()
    return grid.to(dtype)


def check_resolution(resolution, minimum: int, model: str) -> int:
    """An int ``>= minimum``, else ``ValueError`` naming ``resolution`` and ``model``."""
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < minimum:
        raise ValueError(f"resolution must be an int >= {minimum} for {model}, got {resolution!r}")
    return resolution


def check_positive_int(value, name: str) -> int:
    """A positive int, else ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def check_width(width) -> float:
    """A positive finite channel multiplier, else ``ValueError`` naming ``width``."""
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not 0 < width < float("inf"):
        raise ValueError(f"width must be a positive number (a channel multiplier), got {width!r}")
    return float(width)


def check_probability(value, name: str) -> float:
    """A number in ``[0, 1)``, else ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"{name} must lie in [0, 1), got {value!r}")
    return float(value)


def scaled(channels: int, width: float) -> int:
    """``channels * width`` rounded, at least 1."""
    return max(1, int(round(channels * width)))


def model_dtype(module: nn.Module) -> torch.dtype:
    """The floating dtype of ``module``'s first parameter."""
    return next(module.parameters()).dtype


def reset_children(module: nn.Module) -> None:
    """Re-initialise every leaf sub-module that has ``reset_parameters``."""
    for m in module.modules():
        if m is not module and next(m.children(), None) is None and callable(getattr(m, "reset_parameters", None)):
            m.reset_parameters()


class _GridClassifier(nn.Module):
    """A classifier of occupancy grids: ``features`` (3-D convolutions), flattened, then ``classifier``.
    Subclasses build both and set ``num_classes``, ``in_channels``, ``resolution``, ``width``,
    ``dropout`` and ``norm``."""

    def reset_parameters(self) -> None:
        reset_children(self)

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        x = as_voxel_input(grid, "grid", self.resolution, self.in_channels, model_dtype(self))
        return self.classifier(self.features(x).flatten(1))

    def extra_repr(self) -> str:
        return (f"num_classes={self.num_classes}, in_channels={self.in_channels}, resolution={self.resolution}, "
                f"width={self.width}, dropout={self.dropout}, norm={self.norm!r}")


class VoxNet(_GridClassifier):
    r"""VoxNet (Maturana & Scherer 2015, Sec. III-C).

    ``Conv(32, 5^3, stride 2) -> LeakyReLU(0.1) -> Dropout(0.2) -> Conv(32, 3^3) -> LeakyReLU(0.1)
    -> MaxPool(2^3) -> Dropout(0.3) -> FC(128) -> LeakyReLU(0.1) -> Dropout(0.4) -> FC(num_classes)``,
    valid (unpadded) convolutions as in the paper: at ``R = 32`` the maps are ``14^3``, ``12^3``
    and ``6^3``. The paper uses no normalisation; ``norm="batch"`` adds batch norm after each
    convolution (it trains faster from scratch).

    Args:
        num_classes: the number of classes.
        in_channels: input channels (1 for occupancy).
        resolution: the grid size ``R`` (the paper: 32), at least 11.
        width: the multiplier of the hidden widths (``32 * width`` filters, ``128 * width`` units).
        dropout: the drop probabilities after conv 1, after the pool and after FC 1 (the paper:
            ``(0.2, 0.3, 0.4)``), or one number for all three.
        norm: ``None`` (the paper) or a name from :data:`geo4g.nn.NORMS`.

    Shapes:
        - input: ``(B, R, R, R)`` or ``(B, in_channels, R, R, R)``, bool, integer or float
        - output: ``(B, num_classes)`` logits
    """

    def __init__(self, num_classes: int, in_channels: int = 1, resolution: int = 32, width: float = 1.0,
                 dropout: Union[float, Sequence[float]] = (0.2, 0.3, 0.4), norm: Optional[str] = None):
        super().__init__()
        self.num_classes = check_positive_int(num_classes, "num_classes")
        self.in_channels = check_positive_int(in_channels, "in_channels")
        self.resolution = check_resolution(resolution, 11, "VoxNet (5^3 stride-2 conv, 3^3 conv, 2^3 max pool)")
        self.width = check_width(width)
        self.dropout = self._check_dropout(dropout)
        self.norm = norm
        filters, units = scaled(32, width), scaled(128, width)
        pooled = ((resolution - 5) // 2 + 1 - 2) // 2
        self.features = nn.Sequential(
            ConvBlock(in_channels, filters, 5, dim=3, stride=2, padding=0, norm=norm, activation=None),
            nn.LeakyReLU(0.1),
            nn.Dropout(self.dropout[0]),
            ConvBlock(filters, filters, 3, dim=3, padding=0, norm=norm, activation=None),
            nn.LeakyReLU(0.1),
            nn.MaxPool3d(2),
            nn.Dropout(self.dropout[1]),
        )
        self.classifier = nn.Sequential(
            nn.Linear(filters * pooled ** 3, units),
            nn.LeakyReLU(0.1),
            nn.Dropout(self.dropout[2]),
            nn.Linear(units, num_classes),
        )

    @staticmethod
    def _check_dropout(dropout) -> Tuple[float, float, float]:
        if isinstance(dropout, (int, float)) and not isinstance(dropout, bool):
            dropout = (dropout,) * 3
        if not isinstance(dropout, (tuple, list)) or len(dropout) != 3:
            raise ValueError(f"dropout must be a number in [0, 1) or three of them (after conv 1, pool, FC 1), "
                             f"got {dropout!r}")
        return tuple(check_probability(p, "dropout") for p in dropout)


class ShapeNets3D(_GridClassifier):
    r"""A discriminative 3D ShapeNets classifier (the network of Wu et al. 2015, Fig. 2).

    The paper trains a convolutional deep belief network generatively (and fine-tunes it);
    this is its layer layout trained discriminatively with cross-entropy, the form used as a
    baseline since: ``Conv(48, 6^3, stride 2) -> Conv(160, 5^3, stride 2) -> Conv(512, 4^3)``,
    each ``conv -> norm -> ReLU``, then ``FC(1200) -> ReLU -> Dropout -> FC(num_classes)``. At
    ``R = 32`` the maps are ``14^3``, ``5^3`` and ``2^3`` (the paper's 30^3 gives ``13^3``,
    ``5^3``, ``2^3``); the last map is max-pooled to ``2^3`` so that other resolutions keep
    the paper's ``512 * 8`` features (a no-op at 30^3 and 32^3).

    Args:
        num_classes: the number of classes.
        in_channels: input channels (1 for occupancy).
        resolution: the grid size ``R``, at least 26.
        width: the multiplier of every hidden width (``48 * width`` filters, ...).
        dropout: the drop probability before the last layer.
        norm: a name from :data:`geo4g.nn.NORMS` or ``None``.

    Shapes:
        - input: ``(B, R, R, R)`` or ``(B, in_channels, R, R, R)``, bool, integer or float
        - output: ``(B, num_classes)`` logits
    """

    def __init__(self, num_classes: int, in_channels: int = 1, resolution: int = 32, width: float = 1.0,
                 dropout: float = 0.5, norm: Optional[str] = "batch"):
        super().__init__()
        self.num_classes = check_positive_int(num_classes, "num_classes")
        self.in_channels = check_positive_int(in_channels, "in_channels")
        self.resolution = check_resolution(resolution, 26, "ShapeNets3D (6^3 and 5^3 stride-2 convs, 4^3 conv)")
        self.width = check_width(width)
        self.dropout = check_probability(dropout, "dropout")
        self.norm = norm
        c1, c2, c3, hidden = (scaled(c, width) for c in (48, 160, 512, 1200))
        self.features = nn.Sequential(
            ConvBlock(in_channels, c1, 6, dim=3, stride=2, padding=0, norm=norm),
            ConvBlock(c1, c2, 5, dim=3, stride=2, padding=0, norm=norm),
            ConvBlock(c2, c3, 4, dim=3, padding=0, norm=norm),
            nn.AdaptiveMaxPool3d(2),
        )
        self.classifier = MLP([c3 * 8, hidden, num_classes], dropout=self.dropout)
