"""Monte Carlo convolution (Hermosilla et al. 2018): a learned continuous kernel integrated over a
ball, corrected for the sampling density, and a small classifier built on it.

    P. Hermosilla, T. Ritschel, P.-P. Vazquez, A. Vinacua, T. Ropinski. "Monte Carlo Convolution
    for Learning on Non-Uniformly Sampled Point Clouds." ACM Transactions on Graphics 37(6)
    (SIGGRAPH Asia), 2018. https://arxiv.org/abs/1806.01759

Points are ``(B, N, 3)`` with ``lengths (B,)`` (or a ``Pointclouds``), features channels-last
``(B, N, C)``. Padding points are never neighbours, never enter a density estimate and get zero
outputs, so a ragged batch gives each cloud the outputs it gets alone (in eval mode).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch import nn

from geo4g.nn.layers import MLP, activation_layer
from geo4g.structures.checks import describe
from geo4g.structures.utils import lengths_to_mask

from ._inputs import check_count, check_radius
from ._models import (as_padded, check_dropout, check_features, check_width, masked_max, pointwise,
                      reset_children, scaled)
from .ball_query import ball_query
from .knn import knn_gather
from .sample_farthest_points import sample_farthest_points

__all__ = ["MonteCarloConv", "MCConvClassifier"]


class MonteCarloConv(nn.Module):
    r"""Monte Carlo convolution (Hermosilla et al. 2018, Sec. 4).

    The convolution of a feature field ``f`` sampled at the points ``y_j`` with a kernel
    ``g`` supported on the ball of radius ``r``, at an output point ``x``, is estimated as

    .. math::
        (f * g)(x) \approx \frac{1}{|\mathcal{N}(x)|} \sum_{j \in \mathcal{N}(x)}
        \frac{f(y_j)\, g\big((y_j - x) / r\big)}{p(y_j \mid x)},
        \qquad p(y_j \mid x) = \frac{\rho(y_j)}{|\mathcal{N}(x)|}

    where :math:`\mathcal{N}(x)` are the input points within ``r`` of ``x`` and
    :math:`\rho(y_j) = \sum_k \mathcal{G}_h\big((y_j - y_k) / r\big)` is a Gaussian kernel
    density estimate of the sampling density at ``y_j`` (bandwidth ``h = bandwidth``, relative
    to ``r``; points beyond ``3 h r`` are left out, under 1.2 % of a Gaussian's weight), so
    :math:`p(y_j \mid x)` is the probability density of drawing ``y_j`` among the neighbours of
    ``x``. The count cancels and the estimate is :math:`\sum_j f(y_j)\, g(\cdot) / \rho(y_j)`:
    each sample is weighted by the area (or volume) it stands for, so the result depends on
    the shape sampled, not on how densely or evenly it was sampled. With
    ``density_weighting=False``, :math:`p` is taken uniform and the estimate is the plain
    neighbour mean of ``f g`` (biased towards the densely sampled parts).

    The kernel ``g: R^3 -> R^{C_in x C_out}`` is an MLP with one hidden layer of ``hidden``
    units (as in the paper), computed in two steps: the hidden layer gives ``hidden`` basis
    values per neighbour, these are integrated against the features, and the (linear) output
    layer maps the ``hidden * C_in`` integrals to ``C_out`` channels.

    The correction needs sampling that is dense at the scale of the bandwidth (several points
    within ``h r`` of each other): where it is sparser, each density estimate is mostly the
    point's own term and the estimate fades into a plain sum over the neighbours.

    Neighbourhoods hold at most ``max_neighbors`` points (the first in index order, as
    :func:`~geo4g.points.ball_query`): choose it so that the densest ball fits, otherwise the
    estimate there misses the points left out.

    Args:
        in_channels: ``C_in``, the input features per point.
        out_channels: ``C_out``.
        radius: the kernel's support radius ``r > 0``, in the units of the points.
        hidden: the hidden units of the kernel MLP (8 or 16 in the paper).
        bandwidth: the Gaussian bandwidth of the density estimate, relative to ``radius``.
        max_neighbors: the most neighbours per point, in the convolution and in the density.
        density_weighting: divide by the estimated density (the method); ``False`` for the
            plain neighbour mean.
        activation: the activation of the kernel's hidden layer.

    Shapes:
        - input: ``points (B, N, 3)`` (or a ``Pointclouds``), ``features (B, N, C_in)``,
          ``out_points (B, M, 3)`` (or a ``Pointclouds``; default: ``points``), ``lengths (B,)``,
          ``out_lengths (B,)``
        - output: ``(B, M, C_out)``; zero at padding output points, the bias alone at an output
          point with no input point within ``radius``
    """

    def __init__(self, in_channels: int, out_channels: int, radius: float, hidden: int = 16,
                 bandwidth: float = 0.2, max_neighbors: int = 64, density_weighting: bool = True,
                 activation: str = "leaky_relu"):
        super().__init__()
        self.in_channels = check_count(in_channels, "in_channels")
        self.out_channels = check_count(out_channels, "out_channels")
        self.radius = check_radius(radius)
        self.hidden = check_count(hidden, "hidden")
        self.bandwidth = check_radius(bandwidth, "bandwidth")
        self.max_neighbors = check_count(max_neighbors, "max_neighbors")
        self.density_weighting = bool(density_weighting)
        self.kernel = MLP([3, hidden], activation=activation, last_activation=True)
        self.linear = nn.Linear(hidden * in_channels, out_channels)

    def reset_parameters(self) -> None:
        self.kernel.reset_parameters()
        self.linear.reset_parameters()

    def forward(self, points, features: torch.Tensor, out_points=None, lengths: Optional[torch.Tensor] = None,
                out_lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        points, lengths, _ = as_padded(points, lengths)
        features = check_features(features, self.in_channels, points, lengths)
        if out_points is None:
            if out_lengths is not None:
                raise ValueError(f"out_lengths must be None without out_points, got {describe(out_lengths)}")
            out_points, out_lengths = points, lengths
        else:
            out_points, out_lengths, _ = as_padded(out_points, out_lengths, "out_points")
            if out_points.shape[0] != points.shape[0]:
                raise ValueError(f"out_points must have the batch size of points ({points.shape[0]}), "
                                 f"got shape {tuple(out_points.shape)}")
            if out_points.dtype != points.dtype or out_points.device != points.device:
                raise TypeError(f"out_points must have the dtype and device of points ({points.dtype} on "
                                f"{points.device}), got {out_points.dtype} on {out_points.device}")
        return self._convolve(points, features, lengths, out_points, out_lengths)

    def _convolve(self, points, features, lengths, out_points, out_lengths) -> torch.Tensor:
        """:meth:`forward` on checked padded input."""
        B, M = out_points.shape[:2]
        near = ball_query(out_points, points, out_lengths, lengths, K=self.max_neighbors, radius=self.radius)
        found = near.idx >= 0  # (B, M, K)
        offsets = (near.knn - out_points[:, :, None]) / self.radius
        if self.density_weighting:
            density = self._density(points, lengths)  # > 0 at valid points: each counts itself
            real = lengths_to_mask(lengths, points.shape[1])
            inverse = 1.0 / torch.where(real, density, torch.ones((), dtype=density.dtype, device=density.device))
            weights = knn_gather(inverse[..., None], near.idx.clamp_min(0))[..., 0]
        else:
            weights = 1.0 / found.sum(2, keepdim=True).clamp_min(1).to(points.dtype)
        weights = torch.where(found, weights, torch.zeros((), dtype=points.dtype, device=points.device))
        basis = self.kernel(offsets) * weights[..., None]  # (B, M, K, H)
        neighbours = knn_gather(features, near.idx.clamp_min(0))  # (B, M, K, C_in)
        integrals = torch.einsum("bmkh,bmkc->bmhc", basis, neighbours).reshape(B, M, -1)
        out = self.linear(integrals)
        valid = lengths_to_mask(out_lengths, M)[..., None]
        return torch.where(valid, out, torch.zeros((), dtype=out.dtype, device=out.device))

    def _density(self, points: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``(B, N)`` Gaussian kernel density estimate at every input point (0 at padding), in units
        of ``radius``: ``sum_k exp(-|y_j - y_k|^2 / (2 (h r)^2)) / ((2 pi)^(3/2) h^3)``."""
        sigma = self.bandwidth * self.radius
        near = ball_query(points, points, lengths, lengths, K=self.max_neighbors, radius=3.0 * sigma,
                          return_nn=False)
        gauss = torch.exp(-near.dists / (2.0 * sigma * sigma))
        gauss = torch.where(near.idx >= 0, gauss, torch.zeros((), dtype=gauss.dtype, device=gauss.device))
        return gauss.sum(2) / ((2.0 * math.pi) ** 1.5 * self.bandwidth ** 3)

    def extra_repr(self) -> str:
        return (f"in_channels={self.in_channels}, out_channels={self.out_channels}, radius={self.radius}, "
                f"hidden={self.hidden}, bandwidth={self.bandwidth}, max_neighbors={self.max_neighbors}, "
                f"density_weighting={self.density_weighting}")


def _farthest_points(points: torch.Tensor, lengths: torch.Tensor, count: int):
    """``(samples (B, count, 3), lengths (B,))``: farthest point sampling started at each cloud's point
    farthest from its centroid (not at index 0), so the samples do not depend on the point order."""
    B, N, _ = points.shape
    mask = lengths_to_mask(lengths, N)
    centroid = points.sum(1, keepdim=True) / lengths.clamp_min(1).to(points.dtype)[:, None, None]
    spread = ((points - centroid) ** 2).sum(-1).masked_fill(~mask, -1.0)
    start = spread.argmax(1)
    rows = torch.arange(B, device=points.device)
    order = torch.arange(N, device=points.device).repeat(B, 1)
    order[rows, start] = 0
    order[:, 0] = start
    swapped = points.gather(1, order[..., None].expand(B, N, 3))
    samples, _ = sample_farthest_points(swapped, lengths, K=count)
    return samples, lengths.clamp_max(count)


def _check_levels(values, name: str, levels: int, check) -> tuple:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) != levels:
        raise ValueError(f"{name} must be a sequence of {levels} values, got {values!r}")
    return tuple(check(v, f"{name}[{i}]") for i, v in enumerate(values))


class MCConvClassifier(nn.Module):
    r"""A small Monte Carlo convolution classification network (after Hermosilla et al. 2018, Sec. 5).

    Three levels: a :class:`MonteCarloConv` on all the points, then twice farthest point
    sampling to ``num_samples[l]`` points and a strided :class:`MonteCarloConv` from the
    previous level's points to the samples, each followed by batch norm and LeakyReLU over the
    valid points. The input feature is the constant 1 (the first level convolves the
    indicator of the surface, as in the paper). A max pool over the last level's points and FC
    ``256-128`` (batch norm, LeakyReLU, dropout) give the logits. Sampling starts at the point
    farthest from the centroid, so the logits do not depend on the point order.

    The default radii suit shapes scaled into the unit sphere with about 1024 points (some ten
    neighbours per ball at every level); scale them with the shapes.

    Args:
        num_classes: the number of classes.
        radii: the convolution radius of each of the three levels.
        num_samples: the points kept by the two farthest point samplings (a cloud with fewer
            points keeps them all).
        channels: the output channels of the three convolutions (times ``width``).
        hidden: the hidden units of every kernel MLP.
        max_neighbors: the most neighbours per ball.
        dropout: the drop probability after each hidden FC layer, in ``[0, 1)``.
        width: the multiplier of every hidden width.
        density_weighting: passed to every :class:`MonteCarloConv`.

    Shapes:
        - input: ``points (B, N, 3)`` (or a ``Pointclouds``), ``lengths (B,)``
        - output: ``logits (B, num_classes)``
    """

    def __init__(self, num_classes: int, radii: Sequence[float] = (0.2, 0.4, 0.8),
                 num_samples: Sequence[int] = (256, 64), channels: Sequence[int] = (64, 128, 256),
                 hidden: int = 16, max_neighbors: int = 64, dropout: float = 0.5, width: float = 1.0,
                 density_weighting: bool = True):
        super().__init__()
        self.num_classes = check_count(num_classes, "num_classes")
        self.radii = _check_levels(radii, "radii", 3, check_radius)
        self.num_samples = _check_levels(num_samples, "num_samples", 2, check_count)
        channels = _check_levels(channels, "channels", 3, check_count)
        self.dropout = check_dropout(dropout)
        self.width = check_width(width)
        self.channels = [scaled(c, width) for c in channels]
        widths = [1] + self.channels
        self.convs = nn.ModuleList(
            MonteCarloConv(c_in, c_out, r, hidden=hidden, max_neighbors=max_neighbors,
                           density_weighting=density_weighting)
            for c_in, c_out, r in zip(widths[:-1], widths[1:], self.radii))
        self.norms = nn.ModuleList(nn.Sequential(nn.BatchNorm1d(c), activation_layer("leaky_relu"))
                                   for c in self.channels)
        self.head = MLP([self.channels[-1], scaled(256, width), scaled(128, width), num_classes], norm="batch",
                        activation="leaky_relu", dropout=dropout)

    def reset_parameters(self) -> None:
        reset_children(self)

    def forward(self, points, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        points, lengths, mask = as_padded(points, lengths)
        x = points.new_ones(*points.shape[:2], 1)
        for level, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            if level == 0:
                x = conv(points, x, lengths=lengths)
            else:
                samples, sample_lengths = _farthest_points(points, lengths, self.num_samples[level - 1])
                x = conv(points, x, samples, lengths, sample_lengths)
                points, lengths = samples, sample_lengths
                mask = lengths_to_mask(lengths, points.shape[1])
            x = pointwise(norm, x.transpose(1, 2), mask, conv.out_channels).transpose(1, 2)
        return self.head(masked_max(x.transpose(1, 2), mask))

    def extra_repr(self) -> str:
        return (f"num_classes={self.num_classes}, radii={self.radii}, num_samples={self.num_samples}, "
                f"channels={self.channels}, dropout={self.dropout}, width={self.width}")
