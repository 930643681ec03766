"""Inverse-distance interpolation of features from a coarse cloud (PointNet++ feature propagation)."""
from __future__ import annotations

from typing import Optional

import torch

from geo4g.losses._inputs import check_cloud_pair
from geo4g.structures.checks import check_tensor

from ._inputs import check_count, check_radius
from .knn import knn_gather, knn_points

__all__ = ["three_nn_interpolate"]


def three_nn_interpolate(unknown: torch.Tensor, known: torch.Tensor, known_features: torch.Tensor,
                         unknown_lengths: Optional[torch.Tensor] = None,
                         known_lengths: Optional[torch.Tensor] = None, k: int = 3,
                         eps: float = 1e-8, power: float = 2.0) -> torch.Tensor:
    """Features at ``unknown`` points as the inverse-distance weighted mean over their ``k``
    nearest ``known`` points: ``w_i = 1 / (d_i ** power + eps)`` with ``d_i`` the Euclidean
    distance (clamped below at ``eps``, so a coincident point carries the result). ``power=2``
    is PointNet++'s default (Qi et al. 2017b, eq. 2, and the authors' code); some ports use 1.

    Args:
        unknown: ``(B, N, D)`` points to interpolate at (``D = 3`` in PointNet++).
        known: ``(B, M, D)`` points carrying features.
        known_features: ``(B, M, C)`` features of ``known``.
        unknown_lengths, known_lengths: ``(B,)`` valid points (default: all).
        k: neighbours (3 in PointNet++); fewer where a cloud has fewer points.
        eps: ``> 0``, keeps the weight of a coincident point finite.
        power: ``> 0``, the exponent of the distance in the weights.

    Returns:
        ``(B, N, C)``, differentiable with respect to the features and both point sets;
        rows of padding points (and of clouds with no known points) are 0.

    The neighbours come from :func:`~geo4g.points.knn_points` (``method="auto"``: Triton or
    blocked torch on CUDA; the numba grid on the CPU, or without numba SciPy's KD-tree for large
    clouds and blocked torch for small ones).

    Raises:
        ValueError / TypeError: naming the argument, for wrong shapes, mismatched batches,
            lengths out of range, NaN in valid points, ``k < 1``, ``eps <= 0`` or ``power <= 0``.
    """
    unknown, known, unknown_lengths, known_lengths = check_cloud_pair(
        unknown, known, unknown_lengths, known_lengths, "unknown", "known")
    check_tensor(known_features, "known_features", ndim=3, kind="float", shape_hint="(B, M, C)")
    if known_features.shape[:2] != known.shape[:2]:
        raise ValueError(f"known_features must be (B, M, C) with (B, M) of known {tuple(known.shape[:2])}, "
                         f"got shape {tuple(known_features.shape)}")
    check_count(k, "k")
    eps = check_radius(eps, "eps")
    power = check_radius(power, "power")
    found = knn_points(unknown, known, unknown_lengths, known_lengths, K=k)
    N = unknown.shape[1]
    valid = (torch.arange(k, device=unknown.device)[None, None, :] < known_lengths[:, None, None]) & \
            (torch.arange(N, device=unknown.device)[None, :, None] < unknown_lengths[:, None, None])
    # dists are squared; clamping before the fractional power keeps gradients finite at coincident points.
    scaled = found.dists.clamp_min(eps * eps) ** (power / 2)
    weights = torch.where(valid, 1.0 / (scaled + eps), torch.zeros_like(found.dists))
    weights = weights / weights.sum(-1, keepdim=True).clamp_min(torch.finfo(weights.dtype).tiny)
    return (knn_gather(known_features, found.idx) * weights[..., None]).sum(2)
