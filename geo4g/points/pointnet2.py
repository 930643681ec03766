"""PointNet++ (Qi et al. 2017b): set abstraction (single- and multi-scale grouping), feature
propagation, classification and part segmentation.

    C. R. Qi, L. Yi, H. Su, L. J. Guibas. "PointNet++: Deep Hierarchical Feature Learning on
    Point Sets in a Metric Space." NeurIPS 2017. https://arxiv.org/abs/1706.02413

Layers and models take a padded ``(B, N, 3)`` tensor with optional ``lengths (B,)`` (models
also a ``Pointclouds``) and per-point features as ``(B, N, C)`` channels-last, zero in padding
rows. Ragged batches are exact: farthest point sampling keeps ``min(npoint, length)``
centroids per cloud, the lengths travel from level to level, point-wise layers run on the
valid points only (so padding stays out of batch-norm statistics) and pooling skips padding.
The radii assume clouds normalised to the unit sphere, as in the paper. ``width`` scales every
hidden width and ``npoints`` the centroids per level, for small models on a CPU.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from geo4g.nn.layers import MLP, SharedMLP
from geo4g.structures.utils import lengths_to_mask

from ._inputs import check_count, check_radius
from ._models import (as_padded, check_category, check_dropout, check_features, check_npoints, check_width,
                      masked_max, pointwise, reset_children, scaled)
from .ball_query import ball_query
from .interpolate import three_nn_interpolate
from .knn import knn_gather
from .sample_farthest_points import sample_farthest_points

__all__ = ["SetAbstractionOutput", "SetAbstraction", "SetAbstractionMSG", "FeaturePropagation",
           "PointNet2Classifier", "PointNet2Segmenter"]


class SetAbstractionOutput(NamedTuple):
    """A set-abstraction level: ``points (B, S, 3)`` centroids, ``features (B, S, C)`` (zero rows at
    padding) and ``lengths (B,)`` valid centroids per cloud."""

    points: torch.Tensor
    features: torch.Tensor
    lengths: torch.Tensor


def _check_widths(widths, name: str) -> list:
    if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence) or not widths or \
            any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in widths):
        raise ValueError(f"{name} must be a non-empty sequence of positive ints (layer widths), got {widths!r}")
    return list(widths)


def _check_channels(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    return value


def _sample(points: torch.Tensor, lengths: torch.Tensor, npoint: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(centroids (B, npoint, 3), lengths (B,) = min(npoint, lengths))`` by farthest point sampling
    from index 0, with zero rows past each cloud's count."""
    centroids, _ = sample_farthest_points(points, lengths, K=npoint)
    return centroids, lengths.clamp_max(npoint)


def _group(points: torch.Tensor, lengths: torch.Tensor, features: Optional[torch.Tensor], centroids: torch.Tensor,
           centroid_lengths: torch.Tensor, radius: float, nsample: int) -> torch.Tensor:
    """``(B, 3 + C, S, nsample)``: the first ``nsample`` points within ``radius`` of each centroid,
    coordinates relative to the centroid, then their features."""
    idx = ball_query(centroids, points, centroid_lengths, lengths, K=nsample, radius=radius, return_nn=False).idx
    # Empty slots repeat the first neighbour found, as PointNet++ does (a centroid is a point of its
    # cloud, so its ball is never empty); rows of padding centroids point at 0 and are masked later.
    idx = torch.where(idx < 0, idx[..., :1], idx).clamp_min(0)
    grouped = knn_gather(points, idx) - centroids[:, :, None]
    if features is not None:
        grouped = torch.cat([grouped, knn_gather(features, idx)], 3)
    return grouped.permute(0, 3, 1, 2)


class SetAbstraction(nn.Module):
    r"""A PointNet++ set-abstraction level with single-scale grouping (Qi et al. 2017b, Sec. 3.2).

    Farthest point sampling picks ``npoint`` centroids; a ball query groups the first
    ``nsample`` points within ``radius`` of each (empty slots repeat the first neighbour);
    each neighbour's coordinates relative to its centroid, concatenated with its features, go
    through a shared MLP (batch norm, ReLU) and are max-pooled per centroid.
    With ``group_all=True`` the whole cloud is one group around the origin (absolute
    coordinates), giving one global feature per cloud.

    Args:
        npoint: centroids per cloud (a cloud with fewer points keeps them all); ``None`` with ``group_all``.
        radius: the ball radius; ``None`` with ``group_all``.
        nsample: neighbours per centroid; ``None`` with ``group_all``.
        mlp: the shared MLP widths after the input, e.g. ``[64, 64, 128]``.
        in_channels: ``C`` of the input features (0 for coordinates only).
        group_all: one group per cloud.

    Shapes:
        - input: ``points (B, N, 3)``, ``lengths (B,)``, ``features (B, N, C)`` (``None`` when ``C = 0``)
        - output: :class:`SetAbstractionOutput` with ``points (B, S, 3)``, ``features (B, S, mlp[-1])``
          and ``lengths (B,) = min(npoint, lengths)``, ``S = npoint``; with ``group_all``
          ``S = 1``, the point is the origin and every length is 1 (an empty cloud's feature is 0)
    """

    def __init__(self, npoint: Optional[int], radius: Optional[float], nsample: Optional[int], mlp: Sequence[int],
                 in_channels: int = 0, group_all: bool = False):
        super().__init__()
        if group_all:
            if (npoint, radius, nsample) != (None, None, None):
                raise ValueError("npoint, radius and nsample must be None with group_all=True, got "
                                 f"{npoint!r}, {radius!r}, {nsample!r}")
        else:
            check_count(npoint, "npoint")
            radius = check_radius(radius)
            check_count(nsample, "nsample")
        self.npoint, self.radius, self.nsample, self.group_all = npoint, radius, nsample, group_all
        self.in_channels = _check_channels(in_channels, "in_channels")
        self.out_channels = _check_widths(mlp, "mlp")[-1]
        self.mlp = SharedMLP([3 + in_channels, *mlp], dim=2)

    def reset_parameters(self) -> None:
        reset_children(self)

    def forward(self, points, lengths: Optional[torch.Tensor] = None,
                features: Optional[torch.Tensor] = None) -> SetAbstractionOutput:
        points, lengths, mask = as_padded(points, lengths)
        features = check_features(features, self.in_channels, points, lengths)
        if self.group_all:
            x = points if features is None else torch.cat([points, features], 2)
            x = pointwise(self.mlp, x.transpose(1, 2)[..., None], mask, self.out_channels)[..., 0]
            ones = torch.ones_like(lengths)
            return SetAbstractionOutput(points.new_zeros(points.shape[0], 1, 3), masked_max(x, mask)[:, None], ones)
        centroids, centroid_lengths = _sample(points, lengths, self.npoint)
        grouped = _group(points, lengths, features, centroids, centroid_lengths, self.radius, self.nsample)
        centroid_mask = lengths_to_mask(centroid_lengths, centroids.shape[1])
        x = pointwise(self.mlp, grouped, centroid_mask, self.out_channels).amax(3)
        return SetAbstractionOutput(centroids, x.transpose(1, 2), centroid_lengths)

    def extra_repr(self) -> str:
        if self.group_all:
            return f"group_all=True, in_channels={self.in_channels}"
        return f"npoint={self.npoint}, radius={self.radius}, nsample={self.nsample}, in_channels={self.in_channels}"


class SetAbstractionMSG(nn.Module):
    r"""A PointNet++ set-abstraction level with multi-scale grouping (Qi et al. 2017b, Sec. 3.3).

    One farthest point sampling of ``npoint`` centroids, then for each scale ``i`` a ball
    query (``radii[i]``, ``nsamples[i]``), a shared MLP ``mlps[i]`` and a max pool as in
    :class:`SetAbstraction`; the scales' features are concatenated.

    Args:
        npoint: centroids per cloud (a cloud with fewer points keeps them all).
        radii: one ball radius per scale.
        nsamples: neighbours per centroid, one per scale.
        mlps: the shared MLP widths of each scale, e.g. ``[[32, 32, 64], [64, 64, 128]]``.
        in_channels: ``C`` of the input features (0 for coordinates only).

    Shapes:
        - input: ``points (B, N, 3)``, ``lengths (B,)``, ``features (B, N, C)`` (``None`` when ``C = 0``)
        - output: :class:`SetAbstractionOutput` with ``points (B, npoint, 3)``,
          ``features (B, npoint, sum of mlps[i][-1])`` and ``lengths (B,) = min(npoint, lengths)``
    """

    def __init__(self, npoint: int, radii: Sequence[float], nsamples: Sequence[int], mlps: Sequence[Sequence[int]],
                 in_channels: int = 0):
        super().__init__()
        self.npoint = check_count(npoint, "npoint")
        if not isinstance(radii, Sequence) or not radii:
            raise ValueError(f"radii must be a non-empty sequence of radii, got {radii!r}")
        if not isinstance(nsamples, Sequence) or not isinstance(mlps, Sequence) or \
                not len(radii) == len(nsamples) == len(mlps):
            raise ValueError(f"radii, nsamples and mlps must have one entry per scale, got {radii!r}, {nsamples!r}, "
                             f"{mlps!r}")
        self.radii = [check_radius(r, f"radii[{i}]") for i, r in enumerate(radii)]
        self.nsamples = [check_count(k, f"nsamples[{i}]") for i, k in enumerate(nsamples)]
        self.in_channels = _check_channels(in_channels, "in_channels")
        widths = [_check_widths(m, f"mlps[{i}]") for i, m in enumerate(mlps)]
        self.mlps = nn.ModuleList(SharedMLP([3 + in_channels, *w], dim=2) for w in widths)
        self.out_channels = sum(w[-1] for w in widths)

    def reset_parameters(self) -> None:
        reset_children(self)

    def forward(self, points, lengths: Optional[torch.Tensor] = None,
                features: Optional[torch.Tensor] = None) -> SetAbstractionOutput:
        points, lengths, _ = as_padded(points, lengths)
        features = check_features(features, self.in_channels, points, lengths)
        centroids, centroid_lengths = _sample(points, lengths, self.npoint)
        centroid_mask = lengths_to_mask(centroid_lengths, centroids.shape[1])
        scales = []
        for radius, nsample, mlp in zip(self.radii, self.nsamples, self.mlps):
            grouped = _group(points, lengths, features, centroids, centroid_lengths, radius, nsample)
            scales.append(pointwise(mlp, grouped, centroid_mask, mlp.channels[-1]).amax(3))
        return SetAbstractionOutput(centroids, torch.cat(scales, 1).transpose(1, 2), centroid_lengths)

    def extra_repr(self) -> str:
        return f"npoint={self.npoint}, radii={self.radii}, nsamples={self.nsamples}, in_channels={self.in_channels}"


class FeaturePropagation(nn.Module):
    r"""A PointNet++ feature-propagation level (Qi et al. 2017b, Sec. 3.4).

    Features of the ``known`` (coarse) points are interpolated at the ``unknown`` (fine)
    points by inverse-distance weighting over the 3 nearest known points
    (:func:`~geo4g.points.three_nn_interpolate`), concatenated with the fine level's own
    (skip) features and passed through a shared MLP (batch norm, ReLU).

    Args:
        mlp: the shared MLP widths after the input, e.g. ``[256, 256]``.
        known_channels: ``C_k`` of the known points' features.
        skip_channels: ``C_s`` of the unknown points' skip features (0 for none).

    Shapes:
        - input: ``unknown (B, N, 3)``, ``known (B, M, 3)``, ``known_features (B, M, C_k)``,
          ``unknown_features (B, N, C_s)`` (``None`` when ``C_s = 0``), ``unknown_lengths``
          and ``known_lengths (B,)``
        - output: ``(B, N, mlp[-1])``, zero rows at padding (and 0 interpolated from an empty known cloud)
    """

    def __init__(self, mlp: Sequence[int], known_channels: int, skip_channels: int = 0):
        super().__init__()
        self.known_channels = check_count(known_channels, "known_channels")
        self.skip_channels = _check_channels(skip_channels, "skip_channels")
        self.out_channels = _check_widths(mlp, "mlp")[-1]
        self.mlp = SharedMLP([known_channels + skip_channels, *mlp])

    def reset_parameters(self) -> None:
        reset_children(self)

    def forward(self, unknown: torch.Tensor, known: torch.Tensor, known_features: torch.Tensor,
                unknown_features: Optional[torch.Tensor] = None, unknown_lengths: Optional[torch.Tensor] = None,
                known_lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        unknown, unknown_lengths, mask = as_padded(unknown, unknown_lengths, "unknown")
        known, known_lengths, _ = as_padded(known, known_lengths, "known")
        if known.shape[0] != unknown.shape[0]:
            raise ValueError(f"known must have the batch size of unknown ({unknown.shape[0]}), "
                             f"got shape {tuple(known.shape)}")
        known_features = check_features(known_features, self.known_channels, known, known_lengths, "known_features")
        unknown_features = check_features(unknown_features, self.skip_channels, unknown, unknown_lengths,
                                          "unknown_features")
        # Padding rows of unknown are interpolated too; the point-wise MLP below drops them.
        x = three_nn_interpolate(unknown, known, known_features, known_lengths=known_lengths)
        if unknown_features is not None:
            x = torch.cat([x, unknown_features], 2)
        return pointwise(self.mlp, x.transpose(1, 2), mask, self.out_channels).transpose(1, 2)

    def extra_repr(self) -> str:
        return f"known_channels={self.known_channels}, skip_channels={self.skip_channels}"


def _ssg_levels(npoints: Tuple[int, int], in_channels: int, width: float, nsample: int) -> nn.ModuleList:
    """The three SSG set-abstraction levels of the paper's ModelNet and ShapeNetPart networks
    (``nsample`` neighbours at the first level: 32 for ModelNet, 64 for ShapeNetPart)."""
    w = [[scaled(c, width) for c in mlp] for mlp in ([64, 64, 128], [128, 128, 256], [256, 512, 1024])]
    return nn.ModuleList([
        SetAbstraction(npoints[0], 0.2, nsample, w[0], in_channels),
        SetAbstraction(npoints[1], 0.4, 64, w[1], w[0][-1]),
        SetAbstraction(None, None, None, w[2], w[1][-1], group_all=True),
    ])


def _msg_levels(npoints: Tuple[int, int], in_channels: int, width: float) -> nn.ModuleList:
    """The three MSG set-abstraction levels of the paper's ModelNet network."""
    def w(mlps):
        return [[scaled(c, width) for c in mlp] for mlp in mlps]

    sa1 = SetAbstractionMSG(npoints[0], [0.1, 0.2, 0.4], [16, 32, 128],
                            w([[32, 32, 64], [64, 64, 128], [64, 96, 128]]), in_channels)
    sa2 = SetAbstractionMSG(npoints[1], [0.2, 0.4, 0.8], [32, 64, 128],
                            w([[64, 64, 128], [128, 128, 256], [128, 128, 256]]), sa1.out_channels)
    sa3 = SetAbstraction(None, None, None, w([[256, 512, 1024]])[0], sa2.out_channels, group_all=True)
    return nn.ModuleList([sa1, sa2, sa3])


def _abstract(levels: nn.ModuleList, points: torch.Tensor, lengths: torch.Tensor,
              features: Optional[torch.Tensor]) -> list:
    """``[level 0, level 1, ...]`` as :class:`SetAbstractionOutput`, level 0 being the input."""
    out = [SetAbstractionOutput(points, features, lengths)]
    for level in levels:
        out.append(level(out[-1].points, out[-1].lengths, out[-1].features))
    return out


class PointNet2Classifier(nn.Module):
    r"""PointNet++ classification network (Qi et al. 2017b, Sec. 4 and supplementary; the authors'
    ``pointnet2_cls_ssg.py`` / ``pointnet2_cls_msg.py``).

    SSG: ``SA(512, 0.2, 32, [64, 64, 128]) -> SA(128, 0.4, 64, [128, 128, 256]) ->
    SA(group_all, [256, 512, 1024])``; MSG (``msg=True``): ``SA(512, [0.1, 0.2, 0.4],
    [16, 32, 128], [[32, 32, 64], [64, 64, 128], [64, 96, 128]]) -> SA(128, [0.2, 0.4, 0.8],
    [32, 64, 128], [[64, 64, 128], [128, 128, 256], [128, 128, 256]]) -> SA(group_all,
    [256, 512, 1024])``; then FC ``512-256`` with batch norm, ReLU and dropout, and a linear
    layer to ``num_classes`` logits.

    Args:
        num_classes: the number of classes.
        in_channels: extra per-point input features ``C`` (3 for normals; 0 for none).
        msg: multi-scale grouping instead of single-scale.
        npoints: the centroids of the first two levels (512, 128 in the paper).
        dropout: the drop probability after each hidden FC layer (0.5; the authors' MSG code uses 0.6).
        width: the multiplier of every hidden width.

    Shapes:
        - input: ``points (B, N, 3)`` (or a ``Pointclouds``), ``lengths (B,)``,
          ``features (B, N, C)`` (``None`` when ``in_channels=0``)
        - output: ``logits (B, num_classes)``
    """

    def __init__(self, num_classes: int, in_channels: int = 0, msg: bool = False,
                 npoints: Sequence[int] = (512, 128), dropout: float = 0.5, width: float = 1.0):
        super().__init__()
        self.num_classes = check_count(num_classes, "num_classes")
        self.in_channels = _check_channels(in_channels, "in_channels")
        self.msg = bool(msg)
        npoints = check_npoints(npoints, 2)
        width = check_width(width)
        if msg:
            self.levels = _msg_levels(npoints, in_channels, width)
        else:
            self.levels = _ssg_levels(npoints, in_channels, width, 32)
        self.head = MLP([self.levels[-1].out_channels, scaled(512, width), scaled(256, width), num_classes],
                        norm="batch", dropout=check_dropout(dropout))

    def reset_parameters(self) -> None:
        reset_children(self)

    def forward(self, points, lengths: Optional[torch.Tensor] = None,
                features: Optional[torch.Tensor] = None) -> torch.Tensor:
        points, lengths, _ = as_padded(points, lengths)
        features = check_features(features, self.in_channels, points, lengths)
        return self.head(_abstract(self.levels, points, lengths, features)[-1].features[:, 0])

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, in_channels={self.in_channels}, msg={self.msg}"


class PointNet2Segmenter(nn.Module):
    r"""PointNet++ part segmentation network, single-scale grouping (Qi et al. 2017b, Sec. 4 and
    supplementary; the authors' ``pointnet2_part_seg.py``, with the one-hot category of their
    ``pointnet2_part_seg_msg_one_hot.py``).

    The three SSG levels of :class:`PointNet2Classifier` (64 neighbours at the first level
    instead of 32), then feature propagation
    ``FP(256, 256) -> FP(256, 128) -> FP(128, 128, 128)``, the last one with the skip
    features ``[one-hot category, xyz, input features]`` of every point; then a shared
    ``128`` layer (batch norm, ReLU), dropout and a 1x1 layer to per-point part logits.

    Args:
        num_parts: the number of part labels (over all categories, e.g. 50 for ShapeNetPart).
        num_categories: the length of the one-hot category vector (16 for ShapeNetPart);
            0 for no category input (semantic segmentation).
        in_channels: extra per-point input features ``C`` (3 for normals; 0 for none).
        npoints: the centroids of the first two levels (512, 128 in the paper).
        dropout: the drop probability before the last layer (0.5 in the paper).
        width: the multiplier of every hidden width.

    Shapes:
        - input: ``points (B, N, 3)`` (or a ``Pointclouds``), ``category (B,)`` long in
          ``[0, num_categories)`` (``None`` when ``num_categories=0``), ``lengths (B,)``,
          ``features (B, N, C)`` (``None`` when ``in_channels=0``)
        - output: ``logits (B, N, num_parts)``, zero rows at padding
    """

    def __init__(self, num_parts: int, num_categories: int = 0, in_channels: int = 0,
                 npoints: Sequence[int] = (512, 128), dropout: float = 0.5, width: float = 1.0):
        super().__init__()
        self.num_parts = check_count(num_parts, "num_parts")
        self.num_categories = _check_channels(num_categories, "num_categories")
        self.in_channels = _check_channels(in_channels, "in_channels")
        npoints = check_npoints(npoints, 2)
        width = check_width(width)
        self.levels = _ssg_levels(npoints, in_channels, width, 64)
        sa = [level.out_channels for level in self.levels]
        fp3 = FeaturePropagation([scaled(256, width), scaled(256, width)], sa[2], sa[1])
        fp2 = FeaturePropagation([scaled(256, width), scaled(128, width)], fp3.out_channels, sa[0])
        fp1 = FeaturePropagation([scaled(128, width)] * 3, fp2.out_channels, num_categories + 3 + in_channels)
        self.propagation = nn.ModuleList([fp3, fp2, fp1])
        hidden = scaled(128, width)
        self.head = nn.Sequential(SharedMLP([fp1.out_channels, hidden]), nn.Dropout(check_dropout(dropout)),
                                  nn.Conv1d(hidden, num_parts, 1))

    def reset_parameters(self) -> None:
        reset_children(self)

    def forward(self, points, category: Optional[torch.Tensor] = None, lengths: Optional[torch.Tensor] = None,
                features: Optional[torch.Tensor] = None) -> torch.Tensor:
        points, lengths, mask = as_padded(points, lengths)
        features = check_features(features, self.in_channels, points, lengths)
        category = check_category(category, self.num_categories, points.shape[0], points.device)
        levels = _abstract(self.levels, points, lengths, features)
        skip = [points] if features is None else [points, features]
        if category is not None:
            one_hot = F.one_hot(category, self.num_categories).to(points.dtype)
            skip.insert(0, one_hot[:, None].expand(-1, points.shape[1], -1))
        levels[0] = levels[0]._replace(features=torch.cat(skip, 2))
        x = levels[-1].features
        for fine, coarse, fp in zip(levels[-2::-1], levels[:0:-1], self.propagation):
            x = fp(fine.points, coarse.points, x, fine.features, fine.lengths, coarse.lengths)
        return pointwise(self.head, x.transpose(1, 2), mask, self.num_parts).transpose(1, 2)

    def extra_repr(self) -> str:
        return (f"num_parts={self.num_parts}, num_categories={self.num_categories}, "
                f"in_channels={self.in_channels}")
