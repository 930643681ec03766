"""Chamfer distance between two ragged batches of point clouds (PyTorch3D's signature)."""
from __future__ import annotations

from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F

from geo4g.structures.checks import check_finite, check_tensor, describe
from geo4g.structures.pointclouds import Pointclouds

from ._nearest import METHODS, _check_inputs, _mask, gather_points, nearest_neighbors, nearest_neighbors_both, pair_distance

__all__ = ["chamfer_distance"]

_BATCH_REDUCTIONS = (None, "mean", "sum")
_POINT_REDUCTIONS = (None, "mean", "sum", "max")

Loss = Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]


def chamfer_distance(
    x: Union[torch.Tensor, Pointclouds],
    y: Union[torch.Tensor, Pointclouds],
    x_lengths: Optional[torch.Tensor] = None,
    y_lengths: Optional[torch.Tensor] = None,
    x_normals: Optional[torch.Tensor] = None,
    y_normals: Optional[torch.Tensor] = None,
    weights: Optional[torch.Tensor] = None,
    batch_reduction: Optional[str] = "mean",
    point_reduction: Optional[str] = "mean",
    norm: int = 2,
    single_directional: bool = False,
    abs_cosine: bool = True,
    *,
    method: str = "auto",
) -> Tuple[Loss, Optional[Loss]]:
    """Chamfer distance between the point clouds ``x`` and ``y``, as PyTorch3D's ``chamfer_distance``.

    For each point of ``x`` its nearest point of ``y`` (and, unless
    ``single_directional``, each point of ``y`` its nearest point of ``x``)
    gives a term: the squared Euclidean distance (``norm=2``) or the L1
    distance (``norm=1``); with normals, also ``1 - |cos|`` (``abs_cosine``)
    or ``1 - cos`` between the point's normal and its neighbour's.

    Args:
        x: ``(B, P1, D)`` float, padded, or a ``Pointclouds`` (then its
            ``points_padded()``, ``num_points_per_cloud()`` and
            ``normals_padded()`` are used and ``x_lengths`` / ``x_normals`` are
            ignored, as in PyTorch3D).
        y: ``(B, P2, D)`` float, padded, or a ``Pointclouds``.
        x_lengths: ``(B,)`` integer, valid points of each ``x`` cloud (default ``P1``).
        y_lengths: ``(B,)`` integer, valid points of each ``y`` cloud (default ``P2``).
        x_normals: ``(B, P1, D)`` float or ``None``.
        y_normals: ``(B, P2, D)`` float or ``None``. Normal terms are computed
            only when both clouds have normals.
        weights: ``(B,)`` non-negative float weights of the batch items, or ``None``.
        batch_reduction: ``"mean"`` (weighted by ``weights`` when given),
            ``"sum"`` or ``None``; must be ``None`` when ``point_reduction`` is ``None``.
        point_reduction: ``"mean"`` (sum over a cloud's points divided by its
            length), ``"sum"``, ``"max"`` (the Hausdorff-style maximum; normals
            not allowed) or ``None`` (per-point terms).
        norm: ``2`` (squared L2 distances) or ``1`` (L1 distances).
        single_directional: only the ``x -> y`` direction.
        abs_cosine: ``1 - |cos|`` (orientation ignored) instead of ``1 - cos``.
        method: nearest-neighbour implementation, see
            :func:`geo4g.losses._nearest.nearest_neighbors` (``"auto"`` dispatches on
            device and size; the others are for tests and benchmarks).

    Returns:
        ``(loss, loss_normals)``. With a point reduction, ``loss`` is a scalar
        (batch reduction) or ``(B,)`` (``batch_reduction=None``); with
        ``point_reduction=None`` it is the pair ``(cham_x (B, P1), cham_y (B, P2))``
        of per-point terms, or ``cham_x`` alone when ``single_directional``.
        ``loss_normals`` has the same structure, or is ``None`` without normals.
        Both are differentiable in ``x``, ``y`` and the normals (the neighbour
        search itself carries no gradient, as in PyTorch3D).

    Edges:
        Padded points contribute 0 and are never chosen as neighbours.
        A cloud of length 0 contributes 0 terms; its ``"mean"`` over zero
        points is 0 (the length is clamped to 1). Points whose *other* cloud is
        empty have no neighbour: their distance and normal terms are 0. A
        ``"max"`` over zero points is 0. When ``weights`` sum to 0 every term is
        0 and ``"mean"`` divides by 1, so the loss is a 0 of the usual shape
        that stays in the graph (PyTorch3D returns a ``(B, B)`` zero tensor
        there, and a zero ``loss_normals`` even without normals; geo4g keeps
        the shapes of the other cases and ``None``).

    Raises:
        TypeError / ValueError, naming the argument: a non-tensor, a wrong rank,
        a batch-size or last-dimension mismatch between ``x`` and ``y``,
        lengths longer than the padded size, NaN/inf points, normals or
        weights, negative weights, unknown reduction names, ``norm`` not 1 or 2,
        normals with ``point_reduction="max"``.
    """
    if batch_reduction not in _BATCH_REDUCTIONS:
        raise ValueError(f"batch_reduction must be one of {_BATCH_REDUCTIONS}, got {batch_reduction!r}")
    if point_reduction not in _POINT_REDUCTIONS:
        raise ValueError(f"point_reduction must be one of {_POINT_REDUCTIONS}, got {point_reduction!r}")
    if point_reduction is None and batch_reduction is not None:
        raise ValueError(
            f"batch_reduction must be None when point_reduction is None, got batch_reduction={batch_reduction!r}"
        )
    if isinstance(norm, bool) or norm not in (1, 2):
        raise ValueError(f"norm must be 1 or 2, got {norm!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")

    x, x_lengths, x_normals = _handle_input(x, x_lengths, x_normals, "x")
    y, y_lengths, y_normals = _handle_input(y, y_lengths, y_normals, "y")
    if point_reduction == "max" and (x_normals is not None or y_normals is not None):
        raise ValueError('point_reduction must not be "max" when normals are given (normals need "mean", "sum" or None)')
    x, y, x_lengths, y_lengths = _check_inputs(x, y, x_lengths, y_lengths, norm)
    _check_normals(x_normals, x, "x_normals")
    _check_normals(y_normals, y, "y_normals")
    weights = _check_weights(weights, x)
    return_normals = x_normals is not None and y_normals is not None
    if not return_normals:
        x_normals = y_normals = None

    if single_directional:
        idx_x = nearest_neighbors(x, y, x_lengths, y_lengths, norm=norm, method=method).idx
    else:
        nn_x, nn_y = nearest_neighbors_both(x, y, x_lengths, y_lengths, norm=norm, method=method)
        idx_x, idx_y = nn_x.idx, nn_y.idx
    cham_x, cham_norm_x = _single_direction(
        x, y, idx_x, x_lengths, y_lengths, x_normals, y_normals, weights, point_reduction, norm, abs_cosine
    )
    if single_directional:
        loss, loss_normals = cham_x, cham_norm_x
    else:
        cham_y, cham_norm_y = _single_direction(
            y, x, idx_y, y_lengths, x_lengths, y_normals, x_normals, weights, point_reduction, norm, abs_cosine
        )
        if point_reduction == "max":
            loss, loss_normals = torch.maximum(cham_x, cham_y), None
        elif point_reduction is not None:
            loss = cham_x + cham_y
            loss_normals = cham_norm_x + cham_norm_y if return_normals else None
        else:
            loss = (cham_x, cham_y)
            loss_normals = (cham_norm_x, cham_norm_y) if return_normals else None
    return _batch_reduce(loss, loss_normals, weights, batch_reduction)


def _handle_input(points, lengths, normals, name):
    if isinstance(points, Pointclouds):
        return points.points_padded(), points.num_points_per_cloud(), points.normals_padded()
    if not isinstance(points, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor (B, P, D) or a Pointclouds, got {describe(points)}")
    return points, lengths, normals


def _check_normals(normals, points, name):
    if normals is None:
        return
    check_tensor(normals, name, ndim=3, kind="float", shape_hint="(B, P, D)")
    if normals.shape != points.shape:
        raise ValueError(f"{name} must have the shape of its points {tuple(points.shape)}, got {tuple(normals.shape)}")
    if normals.device != points.device:
        raise ValueError(f"{name} must be on the device of its points ({points.device}), got {normals.device}")
    check_finite(normals, name)


def _check_weights(weights, x):
    if weights is None:
        return None
    check_tensor(weights, "weights", ndim=1, shape_hint="(B,)")
    if weights.shape[0] != x.shape[0]:
        raise ValueError(f"weights must have shape (B,) with B={x.shape[0]}, got shape {tuple(weights.shape)}")
    check_finite(weights, "weights")
    if weights.numel() and bool((weights < 0).any()):
        raise ValueError(f"weights must be non-negative, got minimum {float(weights.min())}")
    return weights.to(device=x.device)


def _single_direction(x, y, idx, x_lengths, y_lengths, x_normals, y_normals, weights, point_reduction, norm, abs_cosine):
    B, P1 = x.shape[:2]
    valid = _mask(x_lengths, P1) & (y_lengths > 0)[:, None]
    zero = x.new_zeros(())
    # exact distances from the gathered neighbours: gradients flow to x and y
    cham_x = torch.where(valid, pair_distance(x, gather_points(y, idx), norm), zero)
    if weights is not None:
        cham_x = cham_x * weights.view(B, 1).to(cham_x.dtype)
    cham_norm_x = None
    if x_normals is not None:
        near = gather_points(y_normals, idx)
        cos = F.cosine_similarity(x_normals, near, dim=2, eps=1e-6)
        cham_norm_x = torch.where(valid, 1 - (cos.abs() if abs_cosine else cos), zero)
        if weights is not None:
            cham_norm_x = cham_norm_x * weights.view(B, 1).to(cham_norm_x.dtype)

    if point_reduction == "max":
        cham_x = cham_x.max(1).values if P1 > 0 else cham_x.new_zeros((B,)) + cham_x.sum(1)
    elif point_reduction is not None:
        cham_x = cham_x.sum(1)
        if cham_norm_x is not None:
            cham_norm_x = cham_norm_x.sum(1)
        if point_reduction == "mean":
            n = x_lengths.clamp(min=1).to(cham_x.dtype)
            cham_x = cham_x / n
            if cham_norm_x is not None:
                cham_norm_x = cham_norm_x / n
    return cham_x, cham_norm_x


def _batch_reduce(loss, loss_normals, weights, batch_reduction):
    if batch_reduction is None:
        return loss, loss_normals
    B = loss.shape[0]
    loss = loss.sum()
    if loss_normals is not None:
        loss_normals = loss_normals.sum()
    if batch_reduction == "mean":
        if weights is None:
            div = max(B, 1)
        else:
            total = weights.sum()
            div = torch.where(total == 0, torch.ones_like(total), total).to(loss.dtype)
        loss = loss / div
        if loss_normals is not None:
            loss_normals = loss_normals / div
    return loss, loss_normals
