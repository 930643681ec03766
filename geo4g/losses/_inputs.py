"""Input handling shared by the losses: tensors or ``Pointclouds`` in, checked padded pairs out."""
from __future__ import annotations

from typing import Optional, Tuple

import torch

from geo4g.structures.checks import check_finite, check_lengths, check_tensor, describe
from geo4g.structures.pointclouds import Pointclouds
from geo4g.structures.utils import lengths_to_mask


def unwrap_cloud(points, lengths, name: str) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """``(padded (B, N, D), lengths or None)`` of a padded tensor or a ``Pointclouds``.

    A ``Pointclouds`` brings its own lengths, so ``lengths`` must then be ``None``.
    """
    if isinstance(points, Pointclouds):
        if lengths is not None:
            raise ValueError(f"{name}_lengths must be None when {name} is a Pointclouds (it carries its lengths), "
                             f"got {describe(lengths)}")
        return points.points_padded(), points.num_points_per_cloud()
    if not isinstance(points, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor (B, N, D) or a Pointclouds, got {describe(points)}")
    return points, lengths


def finite_valid_rows(values: torch.Tensor, lengths: torch.Tensor, name: str) -> torch.Tensor:
    """``values: (B, N, C)`` with its rows past ``lengths`` set to 0 (a differentiable copy,
    made only when some row is padding); raise ``ValueError`` naming ``name`` if a valid row
    holds NaN/inf."""
    mask = lengths_to_mask(lengths, values.shape[1])
    if not bool(mask.all()):
        values = torch.where(mask[..., None], values, torch.zeros((), dtype=values.dtype, device=values.device))
    return check_finite(values, name)


def check_cloud_pair(x, y, x_lengths=None, y_lengths=None, x_name: str = "x", y_name: str = "y"):
    """Check two padded clouds against each other and return ``(x, y, x_lengths, y_lengths)``.

    ``x: (B, N, D)`` and ``y: (B, M, D)`` must be float tensors of one batch size,
    point dimension, dtype and device; lengths default to the padded sizes.
    Only the valid rows must be finite: the returned clouds hold zeros in their
    padding rows, whatever the input held there (a differentiable copy, made
    only when some row is padding).
    """
    check_tensor(x, x_name, ndim=3, kind="float", shape_hint="(B, N, D)")
    check_tensor(y, y_name, ndim=3, kind="float", shape_hint="(B, M, D)")
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"{y_name} must have the batch size of {x_name} ({x.shape[0]}), got shape {tuple(y.shape)}")
    if y.shape[2] != x.shape[2]:
        raise ValueError(f"{y_name} must have the last dimension of {x_name} ({x.shape[2]}), got shape {tuple(y.shape)}")
    if y.device != x.device:
        raise ValueError(f"{y_name} must be on the device of {x_name} ({x.device}), got {y.device}")
    if y.dtype != x.dtype:
        raise TypeError(f"{y_name} must have the dtype of {x_name} ({x.dtype}), got {y.dtype}")
    out = []
    for points, lengths, name in ((x, x_lengths, x_name), (y, y_lengths, y_name)):
        B, N = points.shape[:2]
        if lengths is None:
            lengths = torch.full((B,), N, dtype=torch.long, device=points.device)
        else:
            lengths = check_lengths(lengths, f"{name}_lengths", B, N, device=points.device)
        out.append((finite_valid_rows(points, lengths, name), lengths))
    (x, x_lengths), (y, y_lengths) = out
    return x, y, x_lengths, y_lengths
