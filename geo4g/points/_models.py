"""Input handling shared by the point models (PointNet, PointNet++).

Every model takes a padded ``(B, N, 3)`` tensor with optional ``lengths (B,)`` or a
``Pointclouds``, and treats padding so that it never changes the result of a valid
point: point-wise layers run on the valid points only (:func:`pointwise`, so padding
stays out of batch-norm statistics even in training mode), and pooling skips padding
(:func:`masked_max`).
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import nn

from geo4g.losses._inputs import finite_valid_rows
from geo4g.structures.checks import check_tensor, describe
from geo4g.structures.utils import lengths_to_mask

from ._inputs import check_cloud, check_count

__all__ = ["as_padded", "masked_max", "check_mask", "pointwise", "check_features", "check_category", "check_width",
           "check_dropout", "check_npoints", "scaled", "reset_children"]


def as_padded(points, lengths: Optional[torch.Tensor] = None,
              name: str = "points") -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A padded batch of 3-D clouds from a padded tensor (+ lengths) or a ``Pointclouds``.

    Args:
        points: ``(B, N, 3)`` float, or a ``Pointclouds`` (then ``lengths`` must be ``None``).
        lengths: ``(B,)`` long valid points per cloud (default: all ``N``).
        name: the argument name used in error messages.

    Returns:
        ``(points (B, N, 3), lengths (B,) long, mask (B, N) bool)``: ``points`` holds zeros in
        its padding rows whatever the input held there; ``mask`` is True at valid points.

    Raises:
        ValueError / TypeError: naming ``name`` (or ``lengths``) for a wrong type, shape or
            dtype, a last dimension other than 3, lengths out of range or NaN in valid points.
    """
    points, lengths = check_cloud(points, lengths, name)
    if points.shape[2] != 3:
        raise ValueError(f"{name} must be (B, N, 3) point coordinates, got shape {tuple(points.shape)}")
    return points, lengths, lengths_to_mask(lengths, points.shape[1])


def masked_max(features: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
    """The channel-wise max over the valid points of each cloud (PointNet's symmetric pooling).

    Args:
        features: ``(B, C, N)`` float.
        mask: ``(B, N)`` bool, True at valid points (``None``: all points are valid).

    Returns:
        ``(B, C)``; a cloud with no valid point gives zeros (not ``-inf``). The gradient goes to
        the arg-max points only.
    """
    check_tensor(features, "features", ndim=3, kind="float", shape_hint="(B, C, N)")
    mask = check_mask(mask, features)
    B, C, N = features.shape
    if N == 0:
        return features.new_zeros(B, C)
    pooled = features.masked_fill(~mask[:, None, :], float("-inf")).amax(2)
    return torch.where(mask.any(1)[:, None], pooled, torch.zeros((), dtype=features.dtype, device=features.device))


def check_mask(mask: Optional[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """A bool ``mask (B, N)`` matching channels-first ``x (B, C, N, ...)``; ``None`` means all points valid."""
    B, N = x.shape[0], x.shape[2]
    if mask is None:
        return torch.ones(B, N, dtype=torch.bool, device=x.device)
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or tuple(mask.shape) != (B, N):
        raise ValueError(f"mask must be a bool tensor (B, N) = {(B, N)} for x of shape {tuple(x.shape)}, "
                         f"got {describe(mask)}")
    return mask.to(x.device)


def pointwise(layer: nn.Module, x: torch.Tensor, mask: torch.Tensor, out_channels: int) -> torch.Tensor:
    """``layer`` (point-wise: a shared MLP, 1x1 convolutions, dropout) on the valid points of ``x`` only.

    The valid points are packed into one ``(1, C, P, ...)`` batch, so padding never enters
    batch-norm statistics (in training mode padding would otherwise shift every valid output).

    Args:
        layer: maps ``(1, C_in, P, *rest)`` to ``(1, out_channels, P, *rest)`` point by point.
        x: ``(B, C_in, N, *rest)`` channels-first features.
        mask: ``(B, N)`` bool, True at valid points.
        out_channels: ``C_out`` of ``layer``.

    Returns:
        ``(B, C_out, N, *rest)`` with zeros at padding points.
    """
    B, _, N = x.shape[:3]
    rest = x.shape[3:]
    count = int(mask.sum())
    if count == 0:
        return x.new_zeros(B, out_channels, N, *rest)
    if count == B * N:
        return layer(x)
    packed = x.movedim(1, -1)[mask].movedim(-1, 0).unsqueeze(0)  # (1, C_in, P, *rest)
    y = layer(packed)[0].movedim(0, -1)  # (P, *rest, C_out)
    out = y.new_zeros(B, N, *rest, out_channels)
    out[mask] = y
    return out.movedim(-1, 1)


def check_features(features, channels: int, points: torch.Tensor, lengths: torch.Tensor,
                   name: str = "features") -> Optional[torch.Tensor]:
    """Per-point input features ``(B, N, channels)`` of ``points (B, N, 3)``, zero in padding rows.

    ``channels == 0`` means the model takes no features: ``features`` must then be ``None``.
    """
    if channels == 0:
        if features is not None:
            raise ValueError(f"{name} must be None for a model built with in_channels=0, got {describe(features)}")
        return None
    B, N = points.shape[:2]
    hint = f"(B, N, {channels}) = {(B, N, channels)}"
    if features is None:
        raise ValueError(f"{name} must be a {hint} tensor for a model built with in_channels={channels}, got None")
    check_tensor(features, name, ndim=3, kind="float", shape_hint=hint)
    if tuple(features.shape) != (B, N, channels):
        raise ValueError(f"{name} must have shape {hint} to match points {tuple(points.shape)}, "
                         f"got shape {tuple(features.shape)}")
    if features.device != points.device or features.dtype != points.dtype:
        raise TypeError(f"{name} must have the dtype and device of points ({points.dtype} on {points.device}), "
                        f"got {features.dtype} on {features.device}")
    return finite_valid_rows(features, lengths, name)


def check_category(category, num_categories: int, batch_size: int,
                   device: torch.device) -> Optional[torch.Tensor]:
    """``category (B,)`` integer labels in ``[0, num_categories)``, as long on ``device``;
    ``num_categories == 0`` means the model takes no category: ``category`` must then be ``None``."""
    if num_categories == 0:
        if category is not None:
            raise ValueError(f"category must be None for a model built with num_categories=0, got {describe(category)}")
        return None
    check_tensor(category, "category", ndim=1, kind="int", shape_hint="(B,)")
    if category.shape[0] != batch_size:
        raise ValueError(f"category must have one label per cloud (B={batch_size}), got shape {tuple(category.shape)}")
    if category.numel() and (int(category.min()) < 0 or int(category.max()) >= num_categories):
        raise ValueError(f"category labels must lie in [0, {num_categories}) for num_categories={num_categories}, "
                         f"got range [{int(category.min())}, {int(category.max())}]")
    return category.to(device=device, dtype=torch.long)


def check_width(width) -> float:
    """A positive finite channel multiplier, else ``ValueError`` naming ``width``."""
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not 0 < width < float("inf"):
        raise ValueError(f"width must be a positive number (a channel multiplier), got {width!r}")
    return float(width)


def check_dropout(dropout) -> float:
    """A drop probability in ``[0, 1)``, else ``ValueError`` naming ``dropout``."""
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"dropout must lie in [0, 1), got {dropout!r}")
    return float(dropout)


def scaled(channels: int, width: float) -> int:
    """``channels * width`` rounded, at least 1."""
    return max(1, int(round(channels * width)))


def reset_children(module: nn.Module) -> None:
    """Re-initialise ``module``: each child's own ``reset_parameters`` where it has one, else its children's."""
    for child in module.children():
        if callable(getattr(child, "reset_parameters", None)):
            child.reset_parameters()
        else:
            reset_children(child)


def check_npoints(npoints, levels: int) -> Tuple[int, ...]:
    """``levels`` positive ints (the centroids sampled per set-abstraction level)."""
    if not isinstance(npoints, (tuple, list)) or len(npoints) != levels:
        raise ValueError(f"npoints must be a sequence of {levels} positive ints, got {npoints!r}")
    return tuple(check_count(n, f"npoints[{i}]") for i, n in enumerate(npoints))
