"""Point set generation: a fully connected decoder from a latent code to a point set, and a point
cloud auto-encoder around it.

    H. Fan, H. Su, L. Guibas. "A Point Set Generation Network for 3D Object Reconstruction from
    a Single Image." CVPR 2017. https://arxiv.org/abs/1612.00603
    P. Achlioptas, O. Diamanti, I. Mitliagkas, L. Guibas. "Learning Representations and
    Generative Models for 3D Point Clouds." ICML 2018. https://arxiv.org/abs/1707.02392

The decoder is the fully connected branch of Fan et al.'s point set generator; the encoder is the
PointNet-style encoder (no transform nets) of Achlioptas et al.'s auto-encoder, trained with the
Chamfer or earth mover's distance of :mod:`geo4g.losses`.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import nn

from geo4g.losses import chamfer_distance, earth_movers_distance
from geo4g.nn.layers import MLP, SharedMLP
from geo4g.structures.checks import check_tensor, describe

from ._inputs import check_count
from ._models import as_padded, masked_max, pointwise, reset_children

__all__ = ["PointSetDecoder", "PointSetEncoder", "PointAutoEncoder"]


def _check_widths(values, name: str) -> list:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise ValueError(f"{name} must be a sequence of positive ints, got {values!r}")
    return [check_count(v, f"{name}[{i}]") for i, v in enumerate(values)]


class PointSetDecoder(nn.Module):
    r"""A fully connected decoder from a latent code to a fixed-size point set (Fan et al. 2017).

    ``Linear -> ReLU`` through ``hidden``, then a linear layer to ``num_points * 3`` coordinates
    (no output activation, so the points are unbounded).

    Args:
        latent_dim: the size of the latent code.
        num_points: the points generated per code.
        hidden: the widths of the hidden layers (may be empty: one linear layer).

    Shapes:
        - input: ``z (B, latent_dim)``
        - output: ``(B, num_points, 3)``
    """

    def __init__(self, latent_dim: int, num_points: int, hidden: Sequence[int] = (256, 512, 1024)):
        super().__init__()
        self.latent_dim = check_count(latent_dim, "latent_dim")
        self.num_points = check_count(num_points, "num_points")
        self.hidden = _check_widths(hidden, "hidden")
        self.mlp = MLP([latent_dim, *self.hidden, num_points * 3], activation="relu")

    def reset_parameters(self) -> None:
        self.mlp.reset_parameters()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        check_tensor(z, "z", ndim=2, last_dim=self.latent_dim, kind="float", shape_hint=f"(B, {self.latent_dim})")
        return self.mlp(z).view(z.shape[0], self.num_points, 3)

    def extra_repr(self) -> str:
        return f"latent_dim={self.latent_dim}, num_points={self.num_points}, hidden={self.hidden}"


class PointSetEncoder(nn.Module):
    r"""A PointNet-style encoder without transform nets (Achlioptas et al. 2018, Sec. 4.1).

    A shared MLP ``3-64-128-128-256-latent_dim`` (1x1 convolutions, batch norm and ReLU after
    every layer) on the valid points, then a max pool over them. Batch-norm statistics are over
    the valid points only.

    Args:
        latent_dim: the size of the code.
        channels: the widths of the shared layers before the last one.

    Shapes:
        - input: ``points (B, N, 3)`` (or a ``Pointclouds``), ``lengths (B,)``
        - output: ``(B, latent_dim)``; zeros for a cloud with no point
    """

    def __init__(self, latent_dim: int, channels: Sequence[int] = (64, 128, 128, 256)):
        super().__init__()
        self.latent_dim = check_count(latent_dim, "latent_dim")
        self.channels = _check_widths(channels, "channels")
        self.mlp = SharedMLP([3, *self.channels, latent_dim])

    def reset_parameters(self) -> None:
        self.mlp.reset_parameters()

    def forward(self, points, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        points, _, mask = as_padded(points, lengths)
        return masked_max(pointwise(self.mlp, points.transpose(1, 2), mask, self.latent_dim), mask)

    def extra_repr(self) -> str:
        return f"latent_dim={self.latent_dim}, channels={self.channels}"


class PointAutoEncoder(nn.Module):
    r"""A point cloud auto-encoder: an encoder to a latent code, :class:`PointSetDecoder` back to points.

    Args:
        num_points: the points of a reconstruction.
        latent_dim: the size of the code.
        encoder: ``"pointnet"`` for :class:`PointSetEncoder`, or any module called as
            ``encoder(points (B, N, 3), lengths (B,))`` that returns ``(B, latent_dim)``.
        hidden: the hidden widths of the decoder.

    Shapes:
        - input: ``points (B, N, 3)`` (or a ``Pointclouds``), ``lengths (B,)``
        - output: the reconstruction ``(B, num_points, 3)``

    :meth:`loss` compares the reconstruction with the input: ``"chamfer"`` (the mean squared
    distance both ways, :func:`~geo4g.losses.chamfer_distance`, any input sizes) or ``"emd"``
    (:func:`~geo4g.losses.earth_movers_distance`, which needs every input cloud to have
    ``num_points`` points).
    """

    def __init__(self, num_points: int, latent_dim: int = 128, encoder: Union[str, nn.Module] = "pointnet",
                 hidden: Sequence[int] = (256, 512, 1024)):
        super().__init__()
        self.num_points = check_count(num_points, "num_points")
        self.latent_dim = check_count(latent_dim, "latent_dim")
        if isinstance(encoder, str):
            if encoder != "pointnet":
                raise ValueError(f"encoder must be 'pointnet' or an nn.Module, got {encoder!r}")
            encoder = PointSetEncoder(latent_dim)
        elif not isinstance(encoder, nn.Module):
            raise TypeError(f"encoder must be 'pointnet' or an nn.Module returning (B, latent_dim), "
                            f"got {describe(encoder)}")
        self.encoder = encoder
        self.decoder = PointSetDecoder(latent_dim, num_points, hidden)

    def reset_parameters(self) -> None:
        reset_children(self)

    def encode(self, points, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The code ``(B, latent_dim)`` of ``points (B, N, 3)`` (or a ``Pointclouds``)."""
        points, lengths, _ = as_padded(points, lengths)
        z = self.encoder(points, lengths)
        if not isinstance(z, torch.Tensor) or z.shape != (points.shape[0], self.latent_dim):
            got = f"shape {tuple(z.shape)}" if isinstance(z, torch.Tensor) else describe(z)
            raise ValueError(f"encoder must return (B, latent_dim) = {(points.shape[0], self.latent_dim)}, got {got}")
        return z

    def forward(self, points, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.decoder(self.encode(points, lengths))

    def loss(self, points, lengths: Optional[torch.Tensor] = None, kind: str = "chamfer") -> torch.Tensor:
        """The reconstruction loss of ``points`` (batch mean): ``kind`` is ``"chamfer"`` or ``"emd"``.

        Raises:
            ValueError: an unknown ``kind``, or ``"emd"`` with a cloud of other than ``num_points`` points.
        """
        if kind not in ("chamfer", "emd"):
            raise ValueError(f"kind must be 'chamfer' or 'emd', got {kind!r}")
        points, lengths, _ = as_padded(points, lengths)
        if kind == "emd" and bool((lengths != self.num_points).any()):
            raise ValueError(f"kind='emd' needs every cloud to have num_points={self.num_points} points "
                             f"(a one-to-one matching), got lengths {lengths.tolist()}")
        reconstruction = self(points, lengths)
        if kind == "chamfer":
            return chamfer_distance(reconstruction, points, y_lengths=lengths)[0]
        return earth_movers_distance(reconstruction, points[:, :self.num_points])

    def extra_repr(self) -> str:
        return f"num_points={self.num_points}, latent_dim={self.latent_dim}"
