"""Evaluation metrics between batches of point clouds, voxel grids and meshes.

Point-cloud metrics take padded ``(B, N, D)`` tensors with optional
``lengths: (B,)`` (PyTorch3D's convention) or ``Pointclouds``. They share one
rule for empty clouds, so a ragged batch never produces an unexpected NaN:
**an empty cloud matches only an empty cloud**. Two empty clouds are identical
(F-score 1, Hausdorff distance 0, normal consistency 1, IoU 1); an empty cloud
against a non-empty one is as far apart as the metric allows (F-score 0,
Hausdorff distance ``inf``, normal consistency 0, IoU 0).

The nearest-neighbour search (``geo4g.losses._nearest.nearest_neighbors``) runs
without gradients; the distances and normals used are then re-gathered from the
inputs, so where a metric is differentiable its gradient is exact.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional, Union

import torch

from geo4g.structures import Meshes, Pointclouds, lengths_to_mask
from geo4g.structures.checks import check_finite, check_tensor, describe

from ._inputs import check_cloud_pair, finite_valid_rows, unwrap_cloud
from ._nearest import nearest_neighbors

__all__ = [
    "FScore",
    "f_score",
    "hausdorff_distance",
    "normal_consistency",
    "voxel_iou",
    "mesh_to_mesh_chamfer",
]

CloudLike = Union[torch.Tensor, Pointclouds]


class FScore(NamedTuple):
    """Result of :func:`f_score`: three ``(B,)`` tensors."""

    fscore: torch.Tensor
    precision: torch.Tensor
    recall: torch.Tensor


# input handling -------------------------------------------------------------
def _pair(x: CloudLike, y: CloudLike, x_lengths, y_lengths):
    """Both clouds as checked padded tensors with zero padding rows, and their ``(B,)`` lengths."""
    x, x_lengths = unwrap_cloud(x, x_lengths, "x")
    y, y_lengths = unwrap_cloud(y, y_lengths, "y")
    return check_cloud_pair(x, y, x_lengths, y_lengths)


def _check_threshold(threshold, name: str = "threshold") -> float:
    if isinstance(threshold, torch.Tensor):
        if threshold.numel() != 1:
            raise ValueError(f"{name} must be a scalar, got {describe(threshold)}")
        threshold = threshold.item()
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise TypeError(f"{name} must be a number, got {describe(threshold)}")
    threshold = float(threshold)
    if not math.isfinite(threshold) or threshold < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {threshold}")
    return threshold


# nearest neighbours ------------------------------------------------------------
def _nearest(x: torch.Tensor, y: torch.Tensor, xl: torch.Tensor, yl: torch.Tensor):
    """For each point of ``x`` the nearest valid point of ``y``: ``(diff (B, N, D), idx (B, N), valid (B, N))``.

    ``diff = x - y[idx]`` is recomputed from the inputs, so it is differentiable
    with respect to both. ``valid`` is False for padding rows of ``x`` and for
    every row of an item whose ``y`` is empty; ``diff`` and ``idx`` are 0 there.
    """
    B, N, D = x.shape
    valid = lengths_to_mask(xl, N) & (yl > 0)[:, None]
    if N == 0 or y.shape[1] == 0 or not bool(valid.any()):
        zero = x.new_zeros(B, N, D) + 0 * x  # keep x in the graph
        return zero, torch.zeros(B, N, dtype=torch.long, device=x.device), valid
    _, idx = nearest_neighbors(x.detach(), y.detach(), xl, yl, norm=2)  # idx -1 where invalid
    idx = torch.where(valid, idx.clamp(min=0), torch.zeros_like(idx))
    nearest = torch.gather(y, 1, idx[..., None].expand(B, N, D))
    diff = torch.where(valid[..., None], x - nearest, torch.zeros((), dtype=x.dtype, device=x.device))
    return diff, idx, valid


# metrics ----------------------------------------------------------------------
def f_score(
    x: CloudLike,
    y: CloudLike,
    threshold: float,
    x_lengths: Optional[torch.Tensor] = None,
    y_lengths: Optional[torch.Tensor] = None,
) -> FScore:
    """F-score at distance ``threshold`` between predicted clouds ``x`` and target clouds ``y``.

    ``precision`` is the fraction of the points of ``x`` whose nearest point of
    ``y`` lies within ``threshold`` (Euclidean, inclusive: ``<=``); ``recall``
    the fraction of the points of ``y`` within ``threshold`` of ``x``; and
    ``fscore = 2 * P * R / (P + R)``, 0 when ``P + R = 0``
    (Tatarchenko et al., "What do single-view 3D reconstruction networks learn?").

    Args:
        x: predicted clouds, ``(B, N, D)`` padded tensor or ``Pointclouds``.
        y: target clouds, ``(B, M, D)`` or ``Pointclouds``; same ``B``, ``D``, dtype, device.
        threshold: distance ``>= 0``, in the units of the coordinates.
        x_lengths, y_lengths: ``(B,)`` valid rows of padded ``x`` / ``y``
            (default: all rows). Must be ``None`` for ``Pointclouds``.

    Returns:
        ``FScore(fscore, precision, recall)``, each ``(B,)`` in ``x``'s dtype.
        Counting points is not differentiable: the results carry no gradient.
        Empty clouds: both empty gives ``(1, 1, 1)``; exactly one empty gives
        ``(0, 0, 0)``.

    Raises:
        TypeError / ValueError naming the argument: a non-tensor, a wrong rank,
        mismatched batch size / point dimension / dtype / device, lengths
        longer than the padded size, NaN/inf coordinates in valid rows, a
        negative or non-finite ``threshold``.
    """
    threshold = _check_threshold(threshold)
    x, y, xl, yl = _pair(x, y, x_lengths, y_lengths)
    with torch.no_grad():
        precision = _fraction_within(x, y, xl, yl, threshold)
        recall = _fraction_within(y, x, yl, xl, threshold)
        both_empty = (xl == 0) & (yl == 0)
        one = torch.ones((), dtype=x.dtype, device=x.device)
        precision = torch.where(both_empty, one, precision)
        recall = torch.where(both_empty, one, recall)
        denom = precision + recall
        fscore = torch.where(denom > 0, 2 * precision * recall / torch.where(denom > 0, denom, one), 0 * one)
    return FScore(fscore, precision, recall)


def _fraction_within(x, y, xl, yl, threshold: float) -> torch.Tensor:
    """``(B,)`` fraction of the valid points of ``x`` within ``threshold`` of ``y``; 0 for an empty ``x`` or ``y``."""
    diff, _, valid = _nearest(x, y, xl, yl)
    close = (diff.square().sum(-1) <= threshold * threshold) & valid
    return close.sum(1).to(x.dtype) / xl.clamp(min=1).to(x.dtype)


def hausdorff_distance(
    x: CloudLike,
    y: CloudLike,
    x_lengths: Optional[torch.Tensor] = None,
    y_lengths: Optional[torch.Tensor] = None,
    single_directional: bool = False,
) -> torch.Tensor:
    """Hausdorff distance (Euclidean, not squared) between the clouds of two batches.

    The directed distance is ``h(x, y) = max_i min_j ||x_i - y_j||``; the
    (symmetric) Hausdorff distance is ``max(h(x, y), h(y, x))``.

    Args:
        x: ``(B, N, D)`` padded tensor or ``Pointclouds``.
        y: ``(B, M, D)`` or ``Pointclouds``; same ``B``, ``D``, dtype, device.
        x_lengths, y_lengths: ``(B,)`` valid rows of padded ``x`` / ``y``
            (default: all rows). Must be ``None`` for ``Pointclouds``.
        single_directional: return only the directed ``h(x, y)`` (from each
            point of ``x`` to ``y``), as in PyTorch3D's ``single_directional``.

    Returns:
        ``(B,)`` in ``x``'s dtype, differentiable with respect to both clouds
        (the gradient flows through the pair that attains the maximum; ties
        share it; a zero distance gives a zero gradient). Empty clouds follow
        the definition: ``h(empty, y) = 0`` and ``h(x, empty) = inf`` for a
        non-empty ``x``; so both empty gives 0 and exactly one empty gives
        ``inf`` (also with ``single_directional`` when ``x`` is the non-empty one).

    Raises:
        TypeError / ValueError naming the argument, as for :func:`f_score`.
    """
    if not isinstance(single_directional, bool):
        raise TypeError(f"single_directional must be a bool, got {describe(single_directional)}")
    x, y, xl, yl = _pair(x, y, x_lengths, y_lengths)
    h = _directed_hausdorff(x, y, xl, yl)
    if not single_directional:
        h = torch.maximum(h, _directed_hausdorff(y, x, yl, xl))
    return h


def _directed_hausdorff(x, y, xl, yl) -> torch.Tensor:
    diff, _, valid = _nearest(x, y, xl, yl)
    dist = torch.linalg.vector_norm(diff, dim=-1)  # zero gradient at a zero distance
    neg_inf = torch.full((), -math.inf, dtype=x.dtype, device=x.device)
    h = torch.where(valid, dist, neg_inf).amax(1) if x.shape[1] else x.new_full((x.shape[0],), -math.inf)
    h = torch.where(xl == 0, torch.zeros((), dtype=x.dtype, device=x.device), h)  # max over nothing: 0
    return torch.where((xl > 0) & (yl == 0), -neg_inf, h)  # nearest of nothing: inf


def normal_consistency(
    x: CloudLike,
    y: CloudLike,
    x_normals: Optional[torch.Tensor] = None,
    y_normals: Optional[torch.Tensor] = None,
    x_lengths: Optional[torch.Tensor] = None,
    y_lengths: Optional[torch.Tensor] = None,
    abs_cosine: bool = True,
) -> torch.Tensor:
    """Normal consistency between two batches of oriented clouds.

    Each point of ``x`` is matched to its nearest point of ``y`` (by position)
    and the cosine between their normals is taken, and likewise from ``y`` to
    ``x``; the result is the mean of the two directions' mean cosines.

    Args:
        x: ``(B, N, D)`` padded tensor or ``Pointclouds``.
        y: ``(B, M, D)`` or ``Pointclouds``; same ``B``, ``D``, dtype, device.
        x_normals: ``(B, N, D)`` normals of ``x`` (need not be unit length), or
            ``None`` to take them from a ``Pointclouds`` ``x`` built with normals.
        y_normals: ``(B, M, D)`` normals of ``y``, or ``None`` likewise.
        x_lengths, y_lengths: ``(B,)`` valid rows of padded ``x`` / ``y``.
        abs_cosine: use ``|cos|`` (orientation-free, for unoriented normals);
            ``False`` uses the signed cosine, so flipped normals score -1.

    Returns:
        ``(B,)`` in ``x``'s dtype, in ``[0, 1]`` (``[-1, 1]`` with
        ``abs_cosine=False``), differentiable with respect to the normals (the
        matching by position is piecewise constant, so positions get no
        gradient). A zero normal has cosine 0 with every normal. Empty clouds:
        both empty gives 1, exactly one empty gives 0.

    Raises:
        TypeError / ValueError naming the argument, as for :func:`f_score`;
        also normals missing, or not of their cloud's padded shape.
    """
    if not isinstance(abs_cosine, bool):
        raise TypeError(f"abs_cosine must be a bool, got {describe(abs_cosine)}")
    px, py, xl, yl = _pair(x, y, x_lengths, y_lengths)
    xn = _normals(x, x_normals, "x", "x_normals")
    yn = _normals(y, y_normals, "y", "y_normals")
    x, y = px, py
    xn = finite_valid_rows(_fit(xn, x, "x_normals", "x"), xl, "x_normals")
    yn = finite_valid_rows(_fit(yn, y, "y_normals", "y"), yl, "y_normals")
    a = _mean_cosine(x, y, xn, yn, xl, yl, abs_cosine)
    b = _mean_cosine(y, x, yn, xn, yl, xl, abs_cosine)
    out = 0.5 * (a + b)
    out = torch.where((xl == 0) & (yl == 0), torch.ones((), dtype=x.dtype, device=x.device), out)
    return torch.where((xl == 0) ^ (yl == 0), torch.zeros((), dtype=x.dtype, device=x.device), out)


def _normals(cloud, normals, name: str, normals_name: str) -> torch.Tensor:
    if normals is None:
        if isinstance(cloud, Pointclouds) and cloud.normals_padded() is not None:
            return cloud.normals_padded()
        raise ValueError(f"{normals_name} must be given (B, N, D) unless {name} is a Pointclouds "
                         f"with normals, got None")
    check_tensor(normals, normals_name, ndim=3, kind="float", shape_hint="(B, N, D)")
    return normals


def _fit(normals: torch.Tensor, points: torch.Tensor, name: str, points_name: str) -> torch.Tensor:
    """Check that ``normals`` has the padded shape, dtype and device of ``points``."""
    if normals.shape != points.shape:
        raise ValueError(f"{name} must have the padded shape of {points_name} {tuple(points.shape)}, "
                         f"got shape {tuple(normals.shape)}")
    if normals.dtype != points.dtype:
        raise TypeError(f"{name} must have the dtype of {points_name} ({points.dtype}), got {normals.dtype}")
    if normals.device != points.device:
        raise ValueError(f"{name} must be on the device of {points_name} ({points.device}), got {normals.device}")
    return normals


def _mean_cosine(x, y, xn, yn, xl, yl, abs_cosine: bool) -> torch.Tensor:
    """``(B,)`` mean over the valid points of ``x`` of the cosine with their nearest ``y``'s normal."""
    _, idx, valid = _nearest(x, y, xl, yl)
    B, N, D = xn.shape
    if y.shape[1] == 0:
        return xn.new_zeros(B) + 0 * xn.sum((1, 2))
    matched = torch.gather(yn, 1, idx[..., None].expand(B, N, D))
    cos = torch.nn.functional.cosine_similarity(xn, matched, dim=-1, eps=1e-12)
    if abs_cosine:
        cos = cos.abs()
    cos = torch.where(valid, cos, torch.zeros((), dtype=cos.dtype, device=cos.device))
    return cos.sum(1) / xl.clamp(min=1).to(cos.dtype)


def voxel_iou(pred: torch.Tensor, target: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Intersection over union of batched occupancy grids.

    Args:
        pred: ``(B, D, H, W)`` occupancy, ``bool`` or numbers (probabilities,
            0/1 integers); a non-bool voxel is occupied where ``value > threshold``.
        target: ``(B, D, H, W)``, the same shape and device; read the same way.
        threshold: in ``[0, 1]``; ignored for ``bool`` grids.

    Returns:
        ``(B,)`` IoU ``|pred & target| / |pred | target|``, in ``pred``'s
        floating dtype (``float32`` for bool/integer grids). Not differentiable.
        Two empty grids are identical: their IoU is defined as 1.

    Raises:
        TypeError: a non-tensor or a complex tensor.
        ValueError: a rank other than 4, shapes or devices that differ
            (naming ``target``), NaN/inf values, ``threshold`` outside ``[0, 1]``.
    """
    threshold = _check_threshold(threshold)
    if threshold > 1:
        raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
    grids = []
    for name, g in (("pred", pred), ("target", target)):
        check_tensor(g, name, ndim=4, shape_hint="(B, D, H, W)")
        if g.is_complex():
            raise TypeError(f"{name} must be a bool, integer or floating point tensor, got dtype {g.dtype}")
        check_finite(g, name)
        grids.append(g if g.dtype == torch.bool else g > threshold)
    if target.shape != pred.shape:
        raise ValueError(f"target must have the shape of pred {tuple(pred.shape)}, got shape {tuple(target.shape)}")
    if target.device != pred.device:
        raise ValueError(f"target must be on the device of pred ({pred.device}), got {target.device}")
    p, t = (g.flatten(1) for g in grids)
    inter = (p & t).sum(1)
    union = (p | t).sum(1)
    dtype = pred.dtype if pred.is_floating_point() else torch.float32
    iou = inter.to(dtype) / union.clamp(min=1).to(dtype)
    return torch.where(union == 0, torch.ones((), dtype=dtype, device=iou.device), iou)


def mesh_to_mesh_chamfer(
    meshes_a: Meshes,
    meshes_b: Meshes,
    num_samples: int = 10000,
    generator: Optional[torch.Generator] = None,
    point_reduction: Optional[str] = "mean",
    batch_reduction: Optional[str] = "mean",
    norm: int = 2,
) -> torch.Tensor:
    """Chamfer distance between two batches of mesh surfaces, estimated by sampling.

    ``num_samples`` points are drawn uniformly by area on every surface
    (``geo4g.meshes.sample_points_from_meshes``: the samples are
    differentiable with respect to the vertices) and compared with
    :func:`geo4g.losses.chamfer.chamfer_distance`, whose ``point_reduction``,
    ``batch_reduction`` and ``norm`` are passed on (so ``norm=2`` gives squared
    distances, as in PyTorch3D).

    ``geo4g.losses`` sits below ``geo4g.meshes`` in the package map, so the
    sampler is imported when this function is called, never when
    ``geo4g.losses`` is imported.

    Args:
        meshes_a, meshes_b: ``Meshes`` batches of the same size ``B``.
        num_samples: points per surface, ``> 0``.
        generator: a ``torch.Generator`` on the meshes' device; the same seed
            gives the same samples and so the same value.
        point_reduction, batch_reduction, norm: as in ``chamfer_distance``.

    Returns:
        The chamfer distance (the first value ``chamfer_distance`` returns):
        a scalar, or ``(B,)`` with ``batch_reduction=None``. A mesh without
        faces is sampled as an empty cloud (length 0), and the result for it
        is ``chamfer_distance``'s rule for empty clouds.

    Raises:
        TypeError: an argument that is not a ``Meshes``.
        ValueError: batches of different sizes, on different devices, or
            ``num_samples < 1``.
    """
    for name, m in (("meshes_a", meshes_a), ("meshes_b", meshes_b)):
        if not isinstance(m, Meshes):
            raise TypeError(f"{name} must be a geo4g.structures.Meshes, got {describe(m)}")
    if len(meshes_b) != len(meshes_a):
        raise ValueError(f"meshes_b must hold as many meshes as meshes_a ({len(meshes_a)}), got {len(meshes_b)}")
    if meshes_b.device != meshes_a.device:
        raise ValueError(f"meshes_b must be on the device of meshes_a ({meshes_a.device}), got {meshes_b.device}")
    if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
    from geo4g.meshes import sample_points_from_meshes  # above losses in the map: import on use

    from .chamfer import chamfer_distance

    clouds = []
    for m in (meshes_a, meshes_b):
        points = sample_points_from_meshes(m, num_samples, generator=generator)
        lengths = torch.where(m.num_faces_per_mesh() > 0, num_samples, 0).to(device=points.device)
        clouds += [points, lengths]
    xa, la, xb, lb = clouds
    result = chamfer_distance(xa, xb, x_lengths=la, y_lengths=lb, point_reduction=point_reduction,
                              batch_reduction=batch_reduction, norm=norm)
    return result[0] if isinstance(result, tuple) else result
