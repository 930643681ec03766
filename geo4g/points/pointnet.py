"""PointNet (Qi et al. 2017): spatial transformer nets, the encoder, classification and part segmentation.

    C. R. Qi, H. Su, K. Mo, L. J. Guibas. "PointNet: Deep Learning on Point Sets for 3D
    Classification and Segmentation." CVPR 2017. https://arxiv.org/abs/1612.00593

The models take a padded ``(B, N, 3)`` tensor with optional ``lengths (B,)``, or a
``Pointclouds``. Padding never changes a valid point's output or the global feature:
point-wise layers run on the valid points only (also keeping padding out of batch-norm
statistics) and the max pool skips padding. Training recipes (optimiser, augmentation,
the regulariser weight 0.001 of the paper) are not part of the models; a loss reads::

    out = model(points, lengths)
    loss = F.cross_entropy(out.logits, labels) + 1e-3 * feature_transform_regularizer(out.feature_transform)

``width`` scales every hidden width (``64 * width`` ...) for small models on a CPU.
Batch norm is used as in the paper: train with more than one cloud per batch.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import nn

from geo4g.nn.layers import MLP, SharedMLP
from geo4g.structures.checks import check_tensor

from ._inputs import check_count
from ._models import (as_padded, check_category, check_dropout, check_mask, check_width, masked_max, pointwise,
                      reset_children, scaled)

__all__ = ["TNet", "PointNetEncoder", "PointNetEncoding", "PointNetOutput", "PointNetClassifier",
           "PointNetSegmenter", "feature_transform_regularizer"]


class PointNetEncoding(NamedTuple):
    """What :class:`PointNetEncoder` returns.

    ``global_feature (B, C_g)``: the max-pooled shape feature; ``point_features (B, N, C_p)``:
    the per-point features after the feature transform (zero rows at padding);
    ``input_transform (B, 3, 3)`` and ``feature_transform (B, C_p, C_p)``, ``None`` where disabled.
    """

    global_feature: torch.Tensor
    point_features: torch.Tensor
    input_transform: Optional[torch.Tensor]
    feature_transform: Optional[torch.Tensor]


class PointNetOutput(NamedTuple):
    """What the PointNet models return: ``logits`` and the ``feature_transform (B, C_p, C_p)``
    to pass to :func:`feature_transform_regularizer` (``None`` without a feature transform)."""

    logits: torch.Tensor
    feature_transform: Optional[torch.Tensor]


def feature_transform_regularizer(transform: torch.Tensor) -> torch.Tensor:
    r"""PointNet's orthogonality loss :math:`\frac{1}{B}\sum_b \lVert I - A_b A_b^\top \rVert_F^2`.

    Zero exactly when every ``A_b`` is orthogonal. The paper adds it with weight 0.001.

    Args:
        transform: ``(B, K, K)`` float, e.g. ``PointNetOutput.feature_transform``.

    Returns:
        A scalar tensor (0 for an empty batch).
    """
    check_tensor(transform, "transform", ndim=3, kind="float", shape_hint="(B, K, K)")
    B, K, K2 = transform.shape
    if K != K2:
        raise ValueError(f"transform must be a batch of square matrices (B, K, K), got shape {tuple(transform.shape)}")
    eye = torch.eye(K, dtype=transform.dtype, device=transform.device)
    return ((eye - transform @ transform.transpose(1, 2)) ** 2).sum() / max(B, 1)


class TNet(nn.Module):
    r"""A spatial transformer net (T-Net) predicting a ``k x k`` transform from ``k``-channel points.

    Shared MLP ``k-64-128-1024`` (batch norm, ReLU), max pool over the valid points, FC
    ``512-256`` (batch norm, ReLU), then a linear layer to ``k*k`` whose weight starts at 0
    and bias at the identity, so the transform starts as the identity (Qi et al. 2017,
    PointNet, Sec. 4.2 and supplementary C).

    Args:
        k: the channels transformed: 3 for the input transform, 64 for the feature transform.
        width: the multiplier of the hidden widths (``64 * width``, ...).

    Shapes:
        - input: ``x (B, k, N)`` channels-first, ``mask (B, N)`` bool (default: all valid)
        - output: ``(B, k, k)``; apply as ``points (B, N, k) @ T``
    """

    def __init__(self, k: int = 3, width: float = 1.0):
        super().__init__()
        self.k = check_count(k, "k")
        self.width = check_width(width)
        self.mlp = SharedMLP([k, scaled(64, width), scaled(128, width), scaled(1024, width)])
        self.fc = MLP([scaled(1024, width), scaled(512, width), scaled(256, width)], norm="batch",
                      last_activation=True)
        self.out = nn.Linear(scaled(256, width), k * k)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_children(self)
        nn.init.zeros_(self.out.weight)
        with torch.no_grad():
            self.out.bias.copy_(torch.eye(self.k).flatten())

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        check_tensor(x, "x", ndim=3, kind="float", shape_hint=f"(B, {self.k}, N)")
        if x.shape[1] != self.k:
            raise ValueError(f"x must have {self.k} channels in dimension 1 (B, {self.k}, N), "
                             f"got shape {tuple(x.shape)}")
        mask = check_mask(mask, x)
        pooled = masked_max(pointwise(self.mlp, x, mask, self.mlp.channels[-1]), mask)
        return self.out(self.fc(pooled)).view(-1, self.k, self.k)

    def extra_repr(self) -> str:
        return f"k={self.k}, width={self.width}"


class PointNetEncoder(nn.Module):
    r"""The PointNet backbone (Qi et al. 2017, Fig. 2).

    Input transform (:class:`TNet` ``k=3``), shared MLP ``64-64``, feature transform
    (:class:`TNet` ``k=64``), shared MLP ``64-128-1024``, max pool over the valid points.
    Every shared layer has batch norm and ReLU.

    Args:
        input_transform: use the ``3 x 3`` input transform net.
        feature_transform: use the ``64 x 64`` feature transform net.
        width: the multiplier of every hidden width.

    Shapes:
        - input: ``points (B, N, 3)`` (or a ``Pointclouds``), ``lengths (B,)``
        - output: :class:`PointNetEncoding` with ``global_feature (B, 1024 w)``,
          ``point_features (B, N, 64 w)`` (zero rows at padding), ``input_transform (B, 3, 3)``
          and ``feature_transform (B, 64 w, 64 w)`` (``None`` where disabled)
    """

    def __init__(self, input_transform: bool = True, feature_transform: bool = True, width: float = 1.0):
        super().__init__()
        self.width = check_width(width)
        self.point_channels = scaled(64, width)
        self.global_channels = scaled(1024, width)
        self.input_transform = TNet(3, width) if input_transform else None
        self.mlp1 = SharedMLP([3, self.point_channels, self.point_channels])
        self.feature_transform = TNet(self.point_channels, width) if feature_transform else None
        self.mlp2 = SharedMLP([self.point_channels, scaled(64, width), scaled(128, width), self.global_channels])

    def reset_parameters(self) -> None:
        reset_children(self)

    def forward(self, points, lengths: Optional[torch.Tensor] = None) -> PointNetEncoding:
        points, _, mask = as_padded(points, lengths)
        return self._encode(points, mask)

    def _encode(self, points: torch.Tensor, mask: torch.Tensor) -> PointNetEncoding:
        """:meth:`forward` on a checked padded batch ``points (B, N, 3)`` (zero padding rows), ``mask (B, N)``."""
        x = points.transpose(1, 2)
        input_transform = None
        if self.input_transform is not None:
            input_transform = self.input_transform(x, mask)
            x = (points @ input_transform).transpose(1, 2)
        x = pointwise(self.mlp1, x, mask, self.point_channels)
        feature_transform = None
        if self.feature_transform is not None:
            feature_transform = self.feature_transform(x, mask)
            x = feature_transform.transpose(1, 2) @ x
        point_features = x.transpose(1, 2)
        global_feature = masked_max(pointwise(self.mlp2, x, mask, self.global_channels), mask)
        return PointNetEncoding(global_feature, point_features, input_transform, feature_transform)

    def extra_repr(self) -> str:
        return f"width={self.width}"


class PointNetClassifier(nn.Module):
    r"""PointNet classification network (Qi et al. 2017, Fig. 2).

    :class:`PointNetEncoder`, then FC ``512-256``, each with batch norm, ReLU and dropout, and a
    linear layer to ``num_classes`` logits.

    Args:
        num_classes: the number of classes ``k``.
        input_transform, feature_transform: use the transform nets (see :class:`PointNetEncoder`).
        dropout: the drop probability after each hidden FC layer (the paper keeps 0.7, so 0.3).
        width: the multiplier of every hidden width.

    Shapes:
        - input: ``points (B, N, 3)`` (or a ``Pointclouds``), ``lengths (B,)``
        - output: :class:`PointNetOutput` with ``logits (B, num_classes)`` and
          ``feature_transform (B, 64 w, 64 w)`` (``None`` without the feature transform)
    """

    def __init__(self, num_classes: int, input_transform: bool = True, feature_transform: bool = True,
                 dropout: float = 0.3, width: float = 1.0):
        super().__init__()
        self.num_classes = check_count(num_classes, "num_classes")
        self.dropout = check_dropout(dropout)
        self.encoder = PointNetEncoder(input_transform, feature_transform, width)
        self.head = MLP([self.encoder.global_channels, scaled(512, width), scaled(256, width), num_classes],
                        norm="batch", dropout=self.dropout)

    def reset_parameters(self) -> None:
        reset_children(self)

    def forward(self, points, lengths: Optional[torch.Tensor] = None) -> PointNetOutput:
        encoding = self.encoder(points, lengths)
        return PointNetOutput(self.head(encoding.global_feature), encoding.feature_transform)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, dropout={self.dropout}"


class PointNetSegmenter(nn.Module):
    r"""PointNet part segmentation network (Qi et al. 2017, Fig. 2 and supplementary).

    Each point's ``64``-channel feature (after the feature transform) is concatenated with
    the global feature and a one-hot vector of the cloud's category, then a shared MLP
    ``512-256-128-128`` (batch norm, ReLU) and a 1x1 layer give per-point part logits.

    Args:
        num_parts: the number of part labels ``m`` (over all categories, e.g. 50 for ShapeNetPart).
        num_categories: the length of the one-hot category vector (16 for ShapeNetPart);
            0 for no category input (semantic segmentation).
        input_transform, feature_transform: use the transform nets (see :class:`PointNetEncoder`).
        width: the multiplier of every hidden width.

    Shapes:
        - input: ``points (B, N, 3)`` (or a ``Pointclouds``), ``category (B,)`` long in
          ``[0, num_categories)`` (``None`` when ``num_categories=0``), ``lengths (B,)``
        - output: :class:`PointNetOutput` with ``logits (B, N, num_parts)`` (zero rows at
          padding) and ``feature_transform (B, 64 w, 64 w)`` (``None`` without it)
    """

    def __init__(self, num_parts: int, num_categories: int = 0, input_transform: bool = True,
                 feature_transform: bool = True, width: float = 1.0):
        super().__init__()
        self.num_parts = check_count(num_parts, "num_parts")
        if isinstance(num_categories, bool) or not isinstance(num_categories, int) or num_categories < 0:
            raise ValueError(f"num_categories must be a non-negative int, got {num_categories!r}")
        self.num_categories = num_categories
        self.encoder = PointNetEncoder(input_transform, feature_transform, width)
        fused = self.encoder.point_channels + self.encoder.global_channels + num_categories
        self.head = SharedMLP([fused, scaled(512, width), scaled(256, width), scaled(128, width), scaled(128, width),
                               num_parts], last_activation=False)

    def reset_parameters(self) -> None:
        reset_children(self)

    def forward(self, points, category: Optional[torch.Tensor] = None,
                lengths: Optional[torch.Tensor] = None) -> PointNetOutput:
        points, _, mask = as_padded(points, lengths)
        B, N = mask.shape
        category = check_category(category, self.num_categories, B, points.device)
        encoding = self.encoder._encode(points, mask)
        shape = encoding.global_feature
        if category is not None:
            shape = torch.cat([shape, F.one_hot(category, self.num_categories).to(shape.dtype)], 1)
        x = torch.cat([encoding.point_features.transpose(1, 2), shape[:, :, None].expand(-1, -1, N)], 1)
        logits = pointwise(self.head, x, mask, self.num_parts).transpose(1, 2)
        return PointNetOutput(logits, encoding.feature_transform)

    def extra_repr(self) -> str:
        return f"num_parts={self.num_parts}, num_categories={self.num_categories}"
