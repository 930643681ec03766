"""Input handling shared by the point ops: padded tensors (+ lengths) or ``Pointclouds``."""
from __future__ import annotations

from typing import Optional, Tuple

import torch

from geo4g._threads import single_thread
from geo4g.losses._inputs import check_cloud_pair, finite_valid_rows, unwrap_cloud
from geo4g.structures.checks import check_lengths, check_tensor

__all__ = ["check_cloud", "check_pair", "check_count", "check_radius"]


def check_cloud(points, lengths: Optional[torch.Tensor], name: str = "points") -> Tuple[torch.Tensor, torch.Tensor]:
    """``(points (B, N, D) with zero padding rows, lengths (B,))`` of a padded tensor or a ``Pointclouds``;
    ``ValueError``/``TypeError`` naming ``name`` for a wrong shape, dtype, lengths or NaN in valid rows.

    The checks run on the calling thread: split over OpenMP threads that compete with other
    processes for the cores, these cheap element-wise ops can stall for tens of milliseconds."""
    with single_thread():
        return _check_cloud(points, lengths, name)


def _check_cloud(points, lengths, name):
    points, lengths = unwrap_cloud(points, lengths, name)
    check_tensor(points, name, ndim=3, kind="float", shape_hint="(B, N, D)")
    B, N = points.shape[:2]
    if lengths is None:
        lengths = torch.full((B,), N, dtype=torch.long, device=points.device)
    else:
        lengths = check_lengths(lengths, "lengths" if name == "points" else f"{name}_lengths", B, N,
                                device=points.device)
    return finite_valid_rows(points, lengths, name), lengths


def check_pair(p1, p2, lengths1, lengths2):
    """``(p1, p2, lengths1, lengths2)`` checked against each other (see ``check_cloud``)."""
    p1, lengths1 = unwrap_cloud(p1, lengths1, "p1")
    p2, lengths2 = unwrap_cloud(p2, lengths2, "p2")
    with single_thread():
        return check_cloud_pair(p1, p2, lengths1, lengths2, "p1", "p2")


def check_count(value, name: str) -> int:
    """A positive int, else ``ValueError`` naming ``name``."""
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def check_radius(value, name: str = "radius") -> float:
    """A positive finite number, else ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or value == float("inf"):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)
