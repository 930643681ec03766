"""Basic building blocks: MLP, shared (point-wise) MLP, 1-D/2-D/3-D conv blocks, residual blocks.

Normalisations and activations are chosen by name (see :data:`NORMS` and
:data:`ACTIVATIONS`); ``None`` leaves the layer out. Batch normalisation
averages over every position of the batch, padding included: mask or pack
ragged batches first, and keep batches of more than one element in training
mode (a ``(1, C)`` batch raises in PyTorch's ``BatchNorm``).
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Sequence, Union

import torch
from torch import nn

from ..structures.checks import check_tensor

__all__ = ["ACTIVATIONS", "NORMS", "MLP", "SharedMLP", "ConvBlock", "ResidualBlock", "activation_layer", "norm_layer"]

Size = Union[int, Sequence[int]]

#: Activation names accepted by every block. ``"leaky_relu"`` uses slope 0.2 (as in DGCNN).
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "softplus": nn.Softplus,
}

#: Normalisation names for channels-first blocks ``(B, C, *spatial)``. ``"group"`` uses
#: ``gcd(32, C)`` groups; ``"layer"`` normalises over channels and space (one group).
NORMS = ("batch", "instance", "group", "layer")
_MLP_NORMS = ("batch", "layer")


def _check_choice(value, name: str, choices: Sequence[str]) -> Optional[str]:
    if value is not None and value not in choices:
        valid = ", ".join(repr(c) for c in (*choices, None))
        raise ValueError(f"{name} must be one of {valid}, got {value!r}")
    return value


def _check_int(value, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


def _check_size(value, name: str, dim: int, low: int) -> tuple[int, ...]:
    """An int or a sequence of ``dim`` ints, each ``>= low``, as a ``dim``-tuple."""
    values = (value,) * dim if isinstance(value, int) and not isinstance(value, bool) else value
    if (
        not isinstance(values, Sequence)
        or len(values) != dim
        or any(isinstance(v, bool) or not isinstance(v, int) or v < low for v in values)
    ):
        raise ValueError(f"{name} must be an integer >= {low} or {dim} of them, got {value!r}")
    return tuple(values)


def _check_channels(channels, name: str = "channels") -> list[int]:
    if (
        isinstance(channels, (str, bytes))
        or not isinstance(channels, Sequence)
        or len(channels) < 2
        or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in channels)
    ):
        raise ValueError(f"{name} must be a sequence of at least two positive integers [C_in, ..., C_out], got {channels!r}")
    return list(channels)


def _check_dim(dim) -> int:
    if dim not in (1, 2, 3) or isinstance(dim, bool):
        raise ValueError(f"dim must be 1, 2 or 3 (spatial dimensions), got {dim!r}")
    return dim


def _check_input(x, name: str, dim: int, channels: int, hint: str) -> torch.Tensor:
    check_tensor(x, name, ndim=dim + 2, kind="float", shape_hint=hint)
    if x.shape[1] != channels:
        raise ValueError(f"{name} must have {channels} channels in dimension 1 {hint}, got shape {tuple(x.shape)}")
    return x


def _reset_leaves(module: nn.Module) -> None:
    """Call ``reset_parameters`` once on every leaf sub-module that has one (in construction order)."""
    for m in module.modules():
        if m is not module and next(m.children(), None) is None and hasattr(m, "reset_parameters"):
            m.reset_parameters()


def activation_layer(name: str) -> nn.Module:
    """A new activation module by name, one of :data:`ACTIVATIONS`."""
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(map(repr, ACTIVATIONS))}, got {name!r}")
    return ACTIVATIONS[name]()


def norm_layer(name: str, channels: int, dim: int) -> nn.Module:
    """A new normalisation for channels-first ``(B, C, *spatial)`` input with ``dim`` spatial dimensions.

    ``name`` is one of :data:`NORMS`: ``"batch"`` (``BatchNorm{dim}d``), ``"instance"``
    (affine ``InstanceNorm{dim}d``), ``"group"`` (``GroupNorm`` with ``gcd(32, C)`` groups)
    or ``"layer"`` (``GroupNorm`` with one group).
    """
    _check_dim(dim)
    if name == "batch":
        return (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)[dim - 1](channels)
    if name == "instance":
        return (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)[dim - 1](channels, affine=True)
    if name == "group":
        return nn.GroupNorm(math.gcd(32, channels), channels)
    if name == "layer":
        return nn.GroupNorm(1, channels)
    raise ValueError(f"norm must be one of {', '.join(map(repr, NORMS))}, got {name!r}")


class _BatchNormLast(nn.BatchNorm1d):
    """``BatchNorm1d`` over the last dimension of ``(..., C)``, statistics over all leading positions."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.reshape(-1, x.shape[-1])).reshape(x.shape)


class MLP(nn.Module):
    r"""A multi-layer perceptron on the last dimension.

    Each layer is ``Linear -> norm -> activation -> dropout``; the last one is a
    plain ``Linear`` unless ``last_activation=True``.

    Args:
        channels: the widths ``[C_in, C_1, ..., C_out]``, at least two.
        norm: ``"batch"`` (statistics over every leading position), ``"layer"`` or ``None``.
        activation: a name from :data:`ACTIVATIONS` or ``None``.
        dropout: the drop probability after each activation, in ``[0, 1)``.
        last_activation: also normalise, activate and drop after the last layer.

    Shapes:
        - input: ``(..., C_in)``
        - output: ``(..., C_out)``
    """

    def __init__(
        self,
        channels: Sequence[int],
        norm: Optional[str] = None,
        activation: Optional[str] = "relu",
        dropout: float = 0.0,
        last_activation: bool = False,
    ):
        super().__init__()
        self.channels = _check_channels(channels)
        self.norm = _check_choice(norm, "norm", _MLP_NORMS)
        self.activation = _check_choice(activation, "activation", tuple(ACTIVATIONS))
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout!r}")
        self.dropout = dropout
        self.last_activation = last_activation
        layers: list[nn.Module] = []
        num = len(self.channels) - 1
        for i, (c_in, c_out) in enumerate(zip(self.channels[:-1], self.channels[1:])):
            layers.append(nn.Linear(c_in, c_out))
            if i < num - 1 or last_activation:
                if norm is not None:
                    layers.append(_BatchNormLast(c_out) if norm == "batch" else nn.LayerNorm(c_out))
                if activation is not None:
                    layers.append(activation_layer(activation))
                if dropout > 0:
                    layers.append(nn.Dropout(dropout))
        self.layers = nn.Sequential(*layers)

    def reset_parameters(self) -> None:
        _reset_leaves(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor(x, "x", last_dim=self.channels[0], kind="float", shape_hint="(..., C_in)")
        return self.layers(x)

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, norm={self.norm!r}, activation={self.activation!r}, "
            f"dropout={self.dropout}, last_activation={self.last_activation}"
        )


class ConvBlock(nn.Module):
    r"""``Conv{dim}d -> norm -> activation`` on channels-first input.

    Args:
        in_channels, out_channels: channel counts ``C_in``, ``C_out``.
        kernel_size, stride, dilation: an int or one per spatial dimension.
        dim: the number of spatial dimensions, 1, 2 or 3.
        padding: an int, one per spatial dimension, or ``None`` for
            ``dilation * (kernel_size - 1) // 2`` (size-preserving for odd kernels at stride 1).
        norm: a name from :data:`NORMS` or ``None``.
        activation: a name from :data:`ACTIVATIONS` or ``None``.

    Shapes:
        - input: ``(B, C_in, *S)`` with ``len(S) == dim``
        - output: ``(B, C_out, *S')``, ``S'_i = floor((S_i + 2 p_i - d_i (k_i - 1) - 1) / s_i) + 1``
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Size = 3,
        *,
        dim: int = 2,
        stride: Size = 1,
        padding: Optional[Size] = None,
        dilation: Size = 1,
        norm: Optional[str] = "batch",
        activation: Optional[str] = "relu",
    ):
        super().__init__()
        self.dim = _check_dim(dim)
        _check_int(in_channels, "in_channels", 1)
        _check_int(out_channels, "out_channels", 1)
        kernel_size = _check_size(kernel_size, "kernel_size", dim, 1)
        dilation = _check_size(dilation, "dilation", dim, 1)
        if padding is None:
            padding = tuple(d * (k - 1) // 2 for k, d in zip(kernel_size, dilation))
        conv = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[dim - 1]
        self.conv = conv(
            in_channels,
            out_channels,
            kernel_size,
            stride=_check_size(stride, "stride", dim, 1),
            padding=_check_size(padding, "padding", dim, 0),
            dilation=dilation,
        )
        _check_choice(norm, "norm", NORMS)
        _check_choice(activation, "activation", tuple(ACTIVATIONS))
        self.norm = None if norm is None else norm_layer(norm, out_channels, dim)
        self.act = None if activation is None else activation_layer(activation)

    def reset_parameters(self) -> None:
        _reset_leaves(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, "x", self.dim, self.conv.in_channels, f"(B, {self.conv.in_channels}, *S) with {self.dim} spatial dims")
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        return x if self.act is None else self.act(x)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class SharedMLP(nn.Module):
    r"""An MLP shared by every point (and neighbour): a stack of 1x1 :class:`ConvBlock`.

    The point-wise MLP of PointNet: with ``dim=1`` it maps ``(B, C_in, N)`` features
    point by point, with ``dim=2`` grouped ``(B, C_in, N, K)`` neighbourhoods.
    Every layer is ``conv -> norm -> activation``; with ``last_activation=False`` the
    last layer is a plain 1x1 convolution.

    Args:
        channels: the widths ``[C_in, C_1, ..., C_out]``, at least two.
        dim: 1 for ``(B, C, N)``, 2 for ``(B, C, N, K)`` (3 for ``(B, C, D, H, W)``).
        norm: a name from :data:`NORMS` or ``None``.
        activation: a name from :data:`ACTIVATIONS` or ``None``.
        last_activation: normalise and activate after the last layer too (PointNet's default).

    Shapes:
        - input: ``(B, C_in, N)`` (``dim=1``) or ``(B, C_in, N, K)`` (``dim=2``)
        - output: ``(B, C_out, N)`` or ``(B, C_out, N, K)``
    """

    def __init__(
        self,
        channels: Sequence[int],
        dim: int = 1,
        norm: Optional[str] = "batch",
        activation: Optional[str] = "relu",
        last_activation: bool = True,
    ):
        super().__init__()
        self.channels = _check_channels(channels)
        self.dim = _check_dim(dim)
        self.last_activation = last_activation
        num = len(self.channels) - 1
        self.layers = nn.Sequential(
            *(
                ConvBlock(
                    c_in,
                    c_out,
                    1,
                    dim=dim,
                    norm=norm if i < num - 1 or last_activation else None,
                    activation=activation if i < num - 1 or last_activation else None,
                )
                for i, (c_in, c_out) in enumerate(zip(self.channels[:-1], self.channels[1:]))
            )
        )

    def reset_parameters(self) -> None:
        _reset_leaves(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hint = "(B, C, N)" if self.dim == 1 else "(B, C, N, K)" if self.dim == 2 else "(B, C, D, H, W)"
        _check_input(x, "x", self.dim, self.channels[0], hint)
        return self.layers(x)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, dim={self.dim}, last_activation={self.last_activation}"


class ResidualBlock(nn.Module):
    r"""A basic ResNet block: :math:`\mathrm{act}(F(x) + \mathrm{shortcut}(x))`.

    ``F`` is ``ConvBlock(C_in, C_out, stride) -> ConvBlock(C_out, C_out)`` without the
    last activation. The shortcut is the identity when channels and stride are
    unchanged, else a strided 1x1 convolution with the same norm (a projection).

    Args:
        in_channels: ``C_in``.
        out_channels: ``C_out`` (default ``C_in``).
        kernel_size: an odd int, so that both paths keep the same spatial size.
        dim: the number of spatial dimensions, 1, 2 or 3.
        stride: the stride of the first convolution and of the projection.
        norm: a name from :data:`NORMS` or ``None``.
        activation: a name from :data:`ACTIVATIONS` or ``None``.

    Shapes:
        - input: ``(B, C_in, *S)`` with ``len(S) == dim``
        - output: ``(B, C_out, *S')`` with ``S'_i = ceil(S_i / stride_i)``
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: Optional[int] = None,
        kernel_size: int = 3,
        *,
        dim: int = 2,
        stride: Size = 1,
        norm: Optional[str] = "batch",
        activation: Optional[str] = "relu",
    ):
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size!r}")
        self.dim = _check_dim(dim)
        self.conv1 = ConvBlock(in_channels, out_channels, kernel_size, dim=dim, stride=stride, norm=norm, activation=activation)
        self.conv2 = ConvBlock(out_channels, out_channels, kernel_size, dim=dim, norm=norm, activation=None)
        if in_channels != out_channels or any(s != 1 for s in self.conv1.conv.stride):
            self.shortcut = ConvBlock(in_channels, out_channels, 1, dim=dim, stride=stride, norm=norm, activation=None)
        else:
            self.shortcut = nn.Identity()
        self.act = None if activation is None else activation_layer(activation)

    def reset_parameters(self) -> None:
        _reset_leaves(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.conv1(x)) + self.shortcut(x)
        return y if self.act is None else self.act(y)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, projection={not isinstance(self.shortcut, nn.Identity)}"
