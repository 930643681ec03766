"""Generative models of occupancy grids: a voxel auto-encoder, a voxel VAE and 3D-GAN.

    A. Brock, T. Lim, J. M. Ritchie, N. Weston. "Generative and Discriminative Voxel Modeling with
    Convolutional Neural Networks." NIPS 3D Deep Learning Workshop 2016. https://arxiv.org/abs/1608.04236
    D. P. Kingma, M. Welling. "Auto-Encoding Variational Bayes." ICLR 2014.
    J. Wu, C. Zhang, T. Xue, W. T. Freeman, J. B. Tenenbaum. "Learning a Probabilistic Latent Space
    of Object Shapes via 3D Generative-Adversarial Modeling." NIPS 2016. https://arxiv.org/abs/1610.07584

Grids follow :mod:`geo4g.voxels.classifiers`: models take ``(B, R, R, R)`` or ``(B, 1, R, R, R)``
(bool, integer or float) and return ``(B, R, R, R)``. The auto-encoders return occupancy
*logits* (``torch.sigmoid(logits) > 0.5`` is the reconstruction; :func:`occupancy_loss` and
:func:`vae_loss` take the logits); the 3D-GAN generator returns occupancy *probabilities*
(a sigmoid output, as in the paper) and the discriminator a logit per grid.

Every network works on ``R = 8 * 2^k`` (``8, 16, 32, 64, 128``): a stack of stride-2 stages
between ``R`` and a ``4^3`` map, so 64^3 has one stage more than 32^3. ``width`` scales every
hidden width. Training recipes are not part of the models; see :func:`gan_train_step` for the
3D-GAN update and the docstrings of :func:`occupancy_loss` and :func:`vae_loss`.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

from geo4g.nn.layers import ConvBlock, activation_layer, norm_layer
from geo4g.structures.checks import check_finite, check_tensor, describe

from .classifiers import as_voxel_input, check_positive_int, check_width, model_dtype, reset_children, scaled

__all__ = ["UpBlock", "VoxelEncoder", "VoxelDecoder", "VoxelAutoEncoder", "VoxelVAE", "VAEOutput", "VAELoss",
           "occupancy_loss", "kl_divergence", "vae_loss", "VoxelGenerator", "VoxelDiscriminator", "GANLosses",
           "GANStep", "gan_losses", "gan_train_step"]

#: The coarsest map of every network here is ``BASE^3``.
BASE = 4


def check_stages(resolution, model: str) -> int:
    """The number of stride-2 stages between ``resolution = 4 * 2^stages`` and ``4^3`` (``stages >= 1``)."""
    stages = 0 if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 2 * BASE \
        else int(round(math.log2(resolution / BASE)))
    if stages < 1 or BASE * 2 ** stages != resolution:
        raise ValueError(f"resolution must be 8 * 2^k (8, 16, 32, 64, 128) for {model}, got {resolution!r}")
    return stages


class UpBlock(nn.Module):
    r"""``ConvTranspose3d(4^3, stride 2, padding 1) -> norm -> activation``: doubles each spatial size.

    Args:
        in_channels, out_channels: ``C_in``, ``C_out``.
        norm: a name from :data:`geo4g.nn.NORMS` or ``None``.
        activation: a name from :data:`geo4g.nn.ACTIVATIONS` or ``None``.

    Shapes:
        - input: ``(B, C_in, D, H, W)``
        - output: ``(B, C_out, 2D, 2H, 2W)``
    """

    def __init__(self, in_channels: int, out_channels: int, norm: Optional[str] = "batch",
                 activation: Optional[str] = "relu"):
        super().__init__()
        self.conv = nn.ConvTranspose3d(in_channels, out_channels, 4, stride=2, padding=1)
        self.norm = None if norm is None else norm_layer(norm, out_channels, 3)
        self.act = None if activation is None else activation_layer(activation)

    def reset_parameters(self) -> None:
        reset_children(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        return x if self.act is None else self.act(x)


def _down_stack(in_channels: int, channels: list, norm_first: bool) -> nn.Sequential:
    """Stride-2 ``4^3`` conv blocks (LeakyReLU 0.2) through ``channels``; batch norm on all but
    the first block unless ``norm_first``."""
    blocks = []
    c_in = in_channels
    for i, c_out in enumerate(channels):
        blocks.append(ConvBlock(c_in, c_out, 4, dim=3, stride=2, padding=1,
                                norm="batch" if i > 0 or norm_first else None, activation="leaky_relu"))
        c_in = c_out
    return nn.Sequential(*blocks)


class VoxelEncoder(nn.Module):
    r"""A 3-D convolutional encoder: occupancy grid to a feature vector.

    ``stages`` stride-2 ``4^3`` convolutions (``32 w, 64 w, 128 w, ...`` filters; batch norm but on
    the first; LeakyReLU 0.2) from ``R^3`` down to ``4^3``, then a linear layer on the flattened map.

    Args:
        resolution: ``R = 8 * 2^k``.
        out_features: the output size (``2 * latent_dim`` for a VAE's mean and log-variance).
        width: the multiplier of every hidden width.
        in_channels: input channels.

    Shapes:
        - input: ``(B, R, R, R)`` or ``(B, in_channels, R, R, R)``
        - output: ``(B, out_features)``
    """

    def __init__(self, resolution: int = 32, out_features: int = 128, width: float = 1.0, in_channels: int = 1):
        super().__init__()
        self.stages = check_stages(resolution, "VoxelEncoder")
        self.resolution = resolution
        self.out_features = check_positive_int(out_features, "out_features")
        self.width = check_width(width)
        self.in_channels = check_positive_int(in_channels, "in_channels")
        self.channels = [scaled(32 * 2 ** i, width) for i in range(self.stages)]
        self.convs = _down_stack(in_channels, self.channels, norm_first=False)
        self.fc = nn.Linear(self.channels[-1] * BASE ** 3, out_features)

    def reset_parameters(self) -> None:
        reset_children(self)

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        x = as_voxel_input(grid, "grid", self.resolution, self.in_channels, model_dtype(self))
        return self.fc(self.convs(x).flatten(1))

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, out_features={self.out_features}, width={self.width}"


class VoxelDecoder(nn.Module):
    r"""A 3-D transposed-convolution decoder: latent vector to occupancy logits.

    A linear layer to a ``4^3`` map (ReLU), then ``stages`` :class:`UpBlock` (``..., 64 w, 32 w``
    filters, batch norm, ReLU) up to ``R^3``; the last one has one filter and no norm or activation.

    Args:
        resolution: ``R = 8 * 2^k``.
        latent_dim: the input size.
        width: the multiplier of every hidden width.

    Shapes:
        - input: ``(B, latent_dim)``
        - output: ``(B, R, R, R)`` logits
    """

    def __init__(self, resolution: int = 32, latent_dim: int = 128, width: float = 1.0):
        super().__init__()
        self.stages = check_stages(resolution, "VoxelDecoder")
        self.resolution = resolution
        self.latent_dim = check_positive_int(latent_dim, "latent_dim")
        self.width = check_width(width)
        self.channels = [scaled(32 * 2 ** i, width) for i in reversed(range(self.stages))]
        self.fc = nn.Linear(latent_dim, self.channels[0] * BASE ** 3)
        blocks = [UpBlock(c_in, c_out) for c_in, c_out in zip(self.channels[:-1], self.channels[1:])]
        blocks.append(UpBlock(self.channels[-1], 1, norm=None, activation=None))
        self.ups = nn.Sequential(*blocks)

    def reset_parameters(self) -> None:
        reset_children(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        check_tensor(z, "z", ndim=2, last_dim=self.latent_dim, kind="float", shape_hint=f"(B, {self.latent_dim})")
        x = F.relu(self.fc(z)).view(z.shape[0], self.channels[0], BASE, BASE, BASE)
        return self.ups(x)[:, 0]

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, latent_dim={self.latent_dim}, width={self.width}"


class VoxelAutoEncoder(nn.Module):
    r"""A voxel auto-encoder (Brock et al. 2016 without the variational part): :class:`VoxelEncoder`
    to a ``latent_dim`` code, :class:`VoxelDecoder` back to occupancy logits.

    Train with :func:`occupancy_loss`; the reconstruction is ``torch.sigmoid(logits) > 0.5``.

    Args:
        resolution: ``R = 8 * 2^k`` (32 and 64 are the usual).
        latent_dim: the code size.
        width: the multiplier of every hidden width (``32 * width`` filters at full resolution).

    Shapes:
        - input: ``(B, R, R, R)`` or ``(B, 1, R, R, R)``, bool, integer or float
        - :meth:`encode`: ``(B, latent_dim)``; :meth:`decode`: ``(B, latent_dim) -> (B, R, R, R)`` logits
        - output: ``(B, R, R, R)`` logits
    """

    def __init__(self, resolution: int = 32, latent_dim: int = 128, width: float = 1.0):
        super().__init__()
        self.encoder = VoxelEncoder(resolution, latent_dim, width)
        self.decoder = VoxelDecoder(resolution, latent_dim, width)
        self.resolution, self.latent_dim, self.width = resolution, latent_dim, self.encoder.width

    def reset_parameters(self) -> None:
        reset_children(self)

    def encode(self, grid: torch.Tensor) -> torch.Tensor:
        return self.encoder(grid)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(grid))

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, latent_dim={self.latent_dim}, width={self.width}"


class VAEOutput(NamedTuple):
    """What :class:`VoxelVAE` returns: ``logits (B, R, R, R)``, the posterior ``mu (B, L)`` and
    ``logvar (B, L)``."""

    logits: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor


def _check_generator(generator, device: torch.device) -> Optional[torch.Generator]:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {describe(generator)}")
    if generator is not None and generator.device.type != device.type:
        raise ValueError(f"generator must be on the model's device type {device.type!r}, got {generator.device}")
    return generator


class VoxelVAE(nn.Module):
    r"""A variational voxel auto-encoder (Brock et al. 2016; Kingma & Welling 2014).

    :class:`VoxelEncoder` to ``2 * latent_dim`` features split into the posterior mean ``mu`` and
    log-variance ``logvar``; ``z = mu + exp(logvar / 2) * eps`` with ``eps ~ N(0, I)`` in training
    mode (from ``generator`` when given), ``z = mu`` in eval mode (deterministic reconstructions);
    :class:`VoxelDecoder` to occupancy logits. Train with :func:`vae_loss`.

    Args:
        resolution: ``R = 8 * 2^k`` (32 and 64 are the usual).
        latent_dim: the latent size ``L``.
        width: the multiplier of every hidden width.

    Shapes:
        - input: ``(B, R, R, R)`` or ``(B, 1, R, R, R)``, bool, integer or float
        - output: :class:`VAEOutput` with ``logits (B, R, R, R)``, ``mu (B, L)``, ``logvar (B, L)``
        - :meth:`sample`: ``(n, R, R, R)`` logits decoded from ``z ~ N(0, I)``
    """

    def __init__(self, resolution: int = 32, latent_dim: int = 128, width: float = 1.0):
        super().__init__()
        self.encoder = VoxelEncoder(resolution, 2 * check_positive_int(latent_dim, "latent_dim"), width)
        self.decoder = VoxelDecoder(resolution, latent_dim, width)
        self.resolution, self.latent_dim, self.width = resolution, latent_dim, self.encoder.width

    def reset_parameters(self) -> None:
        reset_children(self)

    def encode(self, grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, logvar)``, each ``(B, L)``."""
        mu, logvar = self.encoder(grid).chunk(2, dim=1)
        return mu, logvar

    def reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor,
                       generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """``mu + exp(logvar / 2) * eps``, ``eps ~ N(0, I)`` drawn from ``generator``; ``(B, L)``."""
        generator = _check_generator(generator, mu.device)
        eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
        return mu + torch.exp(0.5 * logvar) * eps

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, grid: torch.Tensor, generator: Optional[torch.Generator] = None) -> VAEOutput:
        mu, logvar = self.encode(grid)
        z = self.reparameterize(mu, logvar, generator) if self.training else mu
        return VAEOutput(self.decode(z), mu, logvar)

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """``(n, R, R, R)`` logits decoded from ``n`` draws of the prior ``N(0, I)`` (from ``generator``).
        Call in eval mode (batch norm then uses its running statistics)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be a non-negative int, got {n!r}")
        param = next(self.parameters())
        generator = _check_generator(generator, param.device)
        z = torch.randn(n, self.latent_dim, generator=generator, dtype=param.dtype, device=param.device)
        return self.decode(z)

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, latent_dim={self.latent_dim}, width={self.width}"


def _check_pair(logits, target) -> tuple[torch.Tensor, torch.Tensor]:
    check_tensor(logits, "logits", kind="float", shape_hint="(B, R, R, R)")
    check_tensor(target, "target", shape_hint=f"{tuple(logits.shape)} like logits")
    if target.shape != logits.shape:
        raise ValueError(f"target must have the shape of logits {tuple(logits.shape)}, got shape {tuple(target.shape)}")
    if target.device != logits.device:
        raise ValueError(f"target must be on the device of logits ({logits.device}), got {target.device}")
    check_finite(logits, "logits")
    target = target.to(logits.dtype)
    inside = (target >= 0) & (target <= 1)  # False at NaN too
    if not bool(inside.all()):
        raise ValueError("target must hold occupancies in [0, 1] (bool, 0/1 or probabilities), "
                         f"got range [{float(target.min())}, {float(target.max())}]")
    return logits, target


def occupancy_loss(logits: torch.Tensor, target: torch.Tensor, pos_weight: Union[None, float, str] = None,
                   gamma: float = 0.0, reduction: str = "mean") -> torch.Tensor:
    r"""Binary cross-entropy of occupancy logits, with a weight on occupied voxels and a focal factor.

    Per voxel, with ``p = sigmoid(logit)``, ``t`` the target and ``p_t = p t + (1 - p)(1 - t)``:

    .. math:: \ell = -(1 - p_t)^\gamma \, [\, w\, t \log p + (1 - t) \log(1 - p) \,]

    Occupied voxels are rare in most grids (a few percent of a surface grid), so plain BCE learns
    to predict empty; ``w > 1`` counters that (Brock et al. 2016 weight occupied voxels by 0.97
    and empty ones by 0.03, that is ``w ~ 32`` up to scale) and ``gamma > 0`` (focal loss, Lin et
    al. 2017; 2 is the usual) down-weights voxels already predicted well.

    Args:
        logits: ``(B, ...)`` float, e.g. ``(B, R, R, R)``.
        target: the same shape, bool or numbers in ``[0, 1]``.
        pos_weight: ``w``: ``None`` (1), a positive number, or ``"balanced"``: the batch's
            ratio of empty to occupied target voxels, clamped to ``[1, 100]`` (1 when nothing
            is occupied). Not differentiated.
        gamma: the focal exponent, ``>= 0`` (0: weighted BCE).
        reduction: ``"mean"`` over every voxel, ``"sum"``, or ``"none"`` (the per-voxel loss).

    Returns:
        A scalar (``"mean"`` of an empty batch is 0), or ``logits``' shape for ``"none"``.

    Raises:
        TypeError / ValueError: naming the argument, for a wrong type or shape, NaN logits, a
            target outside ``[0, 1]``, a bad ``pos_weight``, ``gamma`` or ``reduction``.
    """
    logits, target = _check_pair(logits, target)
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not 0 <= gamma < float("inf"):
        raise ValueError(f"gamma must be a finite number >= 0, got {gamma!r}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if pos_weight == "balanced":
        occupied = float(target.sum())
        weight = 1.0 if occupied == 0 else min(100.0, max(1.0, (target.numel() - occupied) / occupied))
    elif pos_weight is None:
        weight = 1.0
    elif isinstance(pos_weight, (int, float)) and not isinstance(pos_weight, bool) and 0 < pos_weight < float("inf"):
        weight = float(pos_weight)
    else:
        raise ValueError(f"pos_weight must be None, a positive number or 'balanced', got {pos_weight!r}")
    loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none",
                                              pos_weight=None if weight == 1.0 else logits.new_tensor(weight))
    if gamma > 0:
        p = torch.sigmoid(logits)
        p_t = p * target + (1 - p) * (1 - target)
        loss = (1 - p_t).pow(gamma) * loss
    if reduction == "none":
        return loss
    if reduction == "sum" or loss.numel() == 0:
        return loss.sum()
    return loss.mean()


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    r"""``KL(N(mu, exp(logvar)) || N(0, I))`` summed over the latent dimensions, averaged over the batch:
    :math:`\frac{1}{B}\sum_b -\frac12 \sum_l (1 + \log\sigma^2 - \mu^2 - \sigma^2)`.

    Args:
        mu, logvar: ``(B, L)`` float, the same shape.

    Returns:
        A scalar (0 for an empty batch).
    """
    check_tensor(mu, "mu", ndim=2, kind="float", shape_hint="(B, L)")
    check_tensor(logvar, "logvar", ndim=2, kind="float", shape_hint=f"{tuple(mu.shape)} like mu")
    if logvar.shape != mu.shape:
        raise ValueError(f"logvar must have the shape of mu {tuple(mu.shape)}, got shape {tuple(logvar.shape)}")
    kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum()
    return kl / max(mu.shape[0], 1)


class VAELoss(NamedTuple):
    """What :func:`vae_loss` returns: ``loss = reconstruction + beta * kl``, and both terms (scalars)."""

    loss: torch.Tensor
    reconstruction: torch.Tensor
    kl: torch.Tensor


def vae_loss(output: VAEOutput, target: torch.Tensor, beta: float = 1.0, pos_weight: Union[None, float, str] = None,
             gamma: float = 0.0) -> VAELoss:
    r"""The negative ELBO of :class:`VoxelVAE`, ``reconstruction + beta * KL`` (beta-VAE for ``beta != 1``).

    ``reconstruction`` is :func:`occupancy_loss` *summed* over the voxels of a grid and averaged
    over the batch, and ``kl`` is :func:`kl_divergence` (summed over the latent, averaged over the
    batch), so ``beta = 1`` is the ELBO of a Bernoulli decoder whatever ``R`` (with
    ``pos_weight``/``gamma`` the reconstruction term is the weighted variant).

    Args:
        output: the :class:`VAEOutput` of the model.
        target: ``(B, R, R, R)`` or ``(B, 1, R, R, R)`` occupancy, bool or numbers in ``[0, 1]``.
        beta: the KL weight, ``>= 0``.
        pos_weight, gamma: see :func:`occupancy_loss`.

    Returns:
        :class:`VAELoss` of scalars.
    """
    if not isinstance(output, VAEOutput):
        raise TypeError(f"output must be the VAEOutput of VoxelVAE, got {describe(output)}")
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0 <= beta < float("inf"):
        raise ValueError(f"beta must be a finite number >= 0, got {beta!r}")
    logits = output.logits
    if isinstance(target, torch.Tensor) and target.dim() == logits.dim() + 1 and target.shape[1] == 1:
        target = target[:, 0]
    per_voxel = occupancy_loss(logits, target, pos_weight, gamma, reduction="sum")
    reconstruction = per_voxel / max(logits.shape[0], 1)
    kl = kl_divergence(output.mu, output.logvar)
    return VAELoss(reconstruction + beta * kl, reconstruction, kl)


class VoxelGenerator(nn.Module):
    r"""The 3D-GAN generator (Wu et al. 2016, Fig. 1): latent vector to occupancy probabilities.

    ``z (B, L)`` as a ``1^3`` map, a ``4^3`` transposed convolution (stride 1) to ``4^3``, then
    ``stages`` :class:`UpBlock` (``4^3``, stride 2) up to ``R^3``; every layer but the last has
    batch norm and ReLU, the last one filter and a sigmoid. At ``R = 64`` the filters are
    ``512, 256, 128, 64, 1`` (the paper's); each resolution halving drops the widest stage.

    Args:
        latent_dim: ``L`` (the paper: 200).
        resolution: ``R = 8 * 2^k`` (the paper: 64).
        width: the multiplier of every hidden width.

    Shapes:
        - input: ``z (B, L)`` (the paper and :meth:`sample_latent`: ``N(0, I)``)
        - output: ``(B, R, R, R)`` occupancy probabilities in ``(0, 1)``
    """

    def __init__(self, latent_dim: int = 200, resolution: int = 64, width: float = 1.0):
        super().__init__()
        self.stages = check_stages(resolution, "VoxelGenerator")
        self.resolution = resolution
        self.latent_dim = check_positive_int(latent_dim, "latent_dim")
        self.width = check_width(width)
        self.channels = [scaled(64 * 2 ** i, width) for i in reversed(range(self.stages))]
        self.stem = nn.Sequential(nn.ConvTranspose3d(latent_dim, self.channels[0], BASE),
                                  nn.BatchNorm3d(self.channels[0]), nn.ReLU())
        blocks = [UpBlock(c_in, c_out) for c_in, c_out in zip(self.channels[:-1], self.channels[1:])]
        blocks.append(UpBlock(self.channels[-1], 1, norm=None, activation="sigmoid"))
        self.ups = nn.Sequential(*blocks)

    def reset_parameters(self) -> None:
        reset_children(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        check_tensor(z, "z", ndim=2, last_dim=self.latent_dim, kind="float", shape_hint=f"(B, {self.latent_dim})")
        return self.ups(self.stem(z[:, :, None, None, None]))[:, 0]

    def sample_latent(self, n: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """``(n, L)`` draws of ``N(0, I)`` from ``generator``, on the model's device and dtype."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be a non-negative int, got {n!r}")
        param = next(self.parameters())
        generator = _check_generator(generator, param.device)
        return torch.randn(n, self.latent_dim, generator=generator, dtype=param.dtype, device=param.device)

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """``(n, R, R, R)`` occupancy probabilities of ``n`` latent draws (see :meth:`sample_latent`)."""
        return self(self.sample_latent(n, generator))

    def extra_repr(self) -> str:
        return f"latent_dim={self.latent_dim}, resolution={self.resolution}, width={self.width}"


class VoxelDiscriminator(nn.Module):
    r"""The 3D-GAN discriminator (Wu et al. 2016): the generator mirrored.

    ``stages`` stride-2 ``4^3`` convolutions from ``R^3`` to ``4^3`` (``64, 128, 256, 512`` filters
    at ``R = 64``; batch norm but on the first; LeakyReLU 0.2), then a ``4^3`` convolution to
    one logit. The paper ends with a sigmoid; the logit goes to :func:`gan_losses`, which
    applies it inside a numerically stable BCE.

    Args:
        resolution: ``R = 8 * 2^k``.
        width: the multiplier of every hidden width.
        in_channels: input channels.

    Shapes:
        - input: ``(B, R, R, R)`` or ``(B, in_channels, R, R, R)``, bool, integer or float
        - output: ``(B,)`` logits (positive: "real")
    """

    def __init__(self, resolution: int = 64, width: float = 1.0, in_channels: int = 1):
        super().__init__()
        self.stages = check_stages(resolution, "VoxelDiscriminator")
        self.resolution = resolution
        self.width = check_width(width)
        self.in_channels = check_positive_int(in_channels, "in_channels")
        self.channels = [scaled(64 * 2 ** i, width) for i in range(self.stages)]
        self.convs = _down_stack(in_channels, self.channels, norm_first=False)
        self.head = nn.Conv3d(self.channels[-1], 1, BASE)

    def reset_parameters(self) -> None:
        reset_children(self)

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        x = as_voxel_input(grid, "grid", self.resolution, self.in_channels, model_dtype(self))
        return self.head(self.convs(x)).flatten()

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, width={self.width}, in_channels={self.in_channels}"


class GANLosses(NamedTuple):
    """What :func:`gan_losses` returns (scalars): the discriminator's BCE on real and fake
    grids, the generator's non-saturating loss and the discriminator's accuracy (not differentiable)."""

    discriminator: torch.Tensor
    generator: torch.Tensor
    accuracy: torch.Tensor


def gan_losses(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> GANLosses:
    r"""The standard GAN losses from discriminator logits.

    ``discriminator = BCE(real_logits, 1) + BCE(fake_logits, 0)`` (each a batch mean);
    ``generator = BCE(fake_logits, 1) = -mean log D(G(z))``, the non-saturating loss of Goodfellow
    et al. 2014; ``accuracy`` is the fraction of real logits ``> 0`` and fake logits ``< 0``.
    Pass detached fakes' logits for the discriminator's update and fresh ones for the generator's.

    Args:
        real_logits: ``(B_r,)`` float.
        fake_logits: ``(B_f,)`` float.

    Returns:
        :class:`GANLosses` of scalars. An empty side contributes 0 to the losses and nothing to
        the accuracy (1 when both sides are empty).
    """
    for name, x in (("real_logits", real_logits), ("fake_logits", fake_logits)):
        check_tensor(x, name, ndim=1, kind="float", shape_hint="(B,)")
        check_finite(x, name)

    def bce(x: torch.Tensor, label: float) -> torch.Tensor:
        if x.numel() == 0:
            return x.sum()
        return F.binary_cross_entropy_with_logits(x, torch.full_like(x, label))

    correct = (real_logits.detach() > 0).sum() + (fake_logits.detach() < 0).sum()
    total = real_logits.numel() + fake_logits.numel()
    accuracy = correct.to(real_logits.dtype) / total if total else real_logits.new_ones(())
    return GANLosses(bce(real_logits, 1.0) + bce(fake_logits, 0.0), bce(fake_logits, 1.0), accuracy)


class GANStep(NamedTuple):
    """What :func:`gan_train_step` returns (Python floats and a flag): the losses and discriminator
    accuracy measured before the updates, and whether the discriminator was updated."""

    discriminator_loss: float
    generator_loss: float
    discriminator_accuracy: float
    discriminator_updated: bool


def gan_train_step(g_model: VoxelGenerator, d_model: nn.Module, g_optimizer: torch.optim.Optimizer,
                   d_optimizer: torch.optim.Optimizer, real: torch.Tensor, *,
                   generator: Optional[torch.Generator] = None, d_accuracy_threshold: float = 0.8) -> GANStep:
    r"""One 3D-GAN update with the paper's adaptive discriminator training (Wu et al. 2016, Sec. 3.1).

    Draws ``B`` latents (from ``generator``), makes fakes, scores real and (detached) fake grids,
    and steps the discriminator only when its accuracy on this batch is not higher than
    ``d_accuracy_threshold`` (the paper: 0.8, so that D does not overpower G early); then steps
    the generator on the non-saturating loss against the (possibly updated) discriminator. The
    paper's optimisers: Adam with ``betas=(0.5, 0.999)``, lr 0.0025 for G and 1e-5 for D, batch 100.

    Args:
        g_model: a :class:`VoxelGenerator` (probabilities out).
        d_model: a :class:`VoxelDiscriminator` (or any module mapping ``(B, R, R, R)`` to ``(B,)`` logits).
        g_optimizer, d_optimizer: optimisers over their parameters.
        real: ``(B, R, R, R)`` or ``(B, 1, R, R, R)`` real occupancy grids, ``B >= 1``.
        generator: the random generator for the latents.
        d_accuracy_threshold: in ``[0, 1]``; 1 always updates the discriminator.

    Returns:
        :class:`GANStep`.
    """
    if not isinstance(g_model, VoxelGenerator):
        raise TypeError(f"g_model must be a VoxelGenerator, got {describe(g_model)}")
    if isinstance(d_accuracy_threshold, bool) or not isinstance(d_accuracy_threshold, (int, float)) \
            or not 0 <= d_accuracy_threshold <= 1:
        raise ValueError(f"d_accuracy_threshold must lie in [0, 1], got {d_accuracy_threshold!r}")
    real = as_voxel_input(real, "real", g_model.resolution, 1, model_dtype(g_model))[:, 0]
    if real.shape[0] == 0:
        raise ValueError(f"real must hold at least one grid, got shape {tuple(real.shape)}")
    fake = g_model.sample(real.shape[0], generator)
    d_losses = gan_losses(d_model(real), d_model(fake.detach()))
    accuracy = float(d_losses.accuracy)
    updated = accuracy <= d_accuracy_threshold
    if updated:
        d_optimizer.zero_grad(set_to_none=True)
        d_losses.discriminator.backward()
        d_optimizer.step()
    g_loss = gan_losses(real.new_zeros(0), d_model(fake)).generator
    g_optimizer.zero_grad(set_to_none=True)
    g_loss.backward()
    g_optimizer.step()
    d_model.zero_grad(set_to_none=True)
    return GANStep(float(d_losses.discriminator.detach()), float(g_loss.detach()), accuracy, updated)
