"""DiffusionNet (Sharp et al. 2022): learned heat diffusion, spatial gradient features, point-wise MLPs.

    N. Sharp, S. Attaiki, K. Crane, M. Ovsjanikov. "DiffusionNet: Discretization Agnostic
    Learning on Surfaces." ACM Transactions on Graphics 41(3), 2022. https://arxiv.org/abs/2012.00888

Each :class:`DiffusionNetBlock` spreads its features over the surface by heat diffusion with one
learned time per channel (:class:`LearnedTimeDiffusion`: the spatial support is learned, from
point-wise to global), adds rotation-invariant products of the diffused features' tangent
gradients (:class:`SpatialGradientFeatures`: orientation-aware filters without a global frame),
and mixes channels with a point-wise MLP, with a residual connection. Diffusion is a property of
the surface, not of its triangulation, which is why a trained network transfers across meshings
of one shape (the paper's "discretization agnostic").

The operators (eigenbasis, mass, stiffness, gradient operators) are precomputed once per mesh by
:func:`~geo4g.meshes.surface_data.surface_operators` (cached). A batch of meshes of different
sizes is a padded ``(B, V, C)`` tensor with a :class:`~geo4g.meshes.surface_data.SurfaceBatch`
(or a list of ``SurfaceOperators``); padding rows come out as zero and never change the real
vertices' results. Disconnected meshes need nothing special: diffusion stays within each
connected component (its constant mode has eigenvalue 0, so each part keeps its mean).

Input features are typically the vertex positions (normalised) or heat kernel signatures
(:func:`~geo4g.meshes.surface_data.hks_features`, invariant to isometric deformation).
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import nn

from geo4g.nn.layers import MLP
from geo4g.structures.checks import check_finite, check_tensor

from .surface_data import SurfaceBatch, SurfaceOperators, as_surface_batch

__all__ = ["LearnedTimeDiffusion", "SpatialGradientFeatures", "DiffusionNetBlock", "DiffusionNet",
           "DIFFUSION_METHODS"]

DIFFUSION_METHODS = ("spectral", "implicit_dense")
#: The diffusion times are kept at or above this (projected before each forward pass).
MIN_TIME = 1e-8


def _check_count(value, name: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return value


def _check_ops(x: torch.Tensor, ops, channels: int):
    ops = as_surface_batch(x, ops)
    if x.shape[-1] != channels:
        raise ValueError(f"x must have {channels} channels in its last dimension, got shape {tuple(x.shape)}")
    check_finite(x.detach(), "x")
    return ops


def _apply_sparse(matrix: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``matrix @ x`` for a sparse ``(V, V)`` (or ``(B V, B V)`` block) matrix and ``x (V, C)`` / ``(B, V, C)``."""
    return torch.sparse.mm(matrix, x.reshape(-1, x.shape[-1])).reshape(x.shape)


def _dense_blocks(stiffness: torch.Tensor, batch: int, n: int) -> torch.Tensor:
    """The ``(B, V, V)`` diagonal blocks of a block-diagonal sparse ``(B V, B V)`` matrix."""
    s = stiffness.coalesce()
    rows, cols = s.indices()
    dense = torch.zeros(batch, n, n, dtype=s.dtype, device=s.device)
    dense[rows // n, rows % n, cols % n] = s.values()
    return dense


class LearnedTimeDiffusion(nn.Module):
    r"""Heat diffusion of each channel for a learned time ``t_c >= 0``.

    - ``method="spectral"`` (the paper's default): ``x_c <- Phi diag(exp(-lambda t_c)) Phi^T M x_c``
      in the truncated eigenbasis, cost ``O(V K C)``; exact on the span of the basis, which
      dominates after short times.
    - ``method="implicit_dense"``: one backward Euler step ``(M + t_c L) x_c' = M x_c``, solved
      densely (Cholesky per channel, ``O(C V^3)``: small meshes only); uses the full operator,
      no truncation. For one step this is the filter ``1 / (1 + t lambda)``.

    Both conserve each connected component's total heat ``1^T M x``. ``t`` is initialised to
    ``init_time`` (0, no diffusion, as in the paper) and projected onto ``[MIN_TIME, inf)`` in
    place before each forward pass (projected gradient descent, as in the reference
    implementation), so a step that would make it negative leaves it small instead of stuck.

    Args:
        channels: ``C``.
        method: one of :data:`DIFFUSION_METHODS`.
        init_time: the initial time of every channel, ``>= 0``.

    Shapes:
        - input: ``x (V, C)`` with ``SurfaceOperators``, or ``x (B, V, C)`` with a ``SurfaceBatch``
          (or a list of ``SurfaceOperators``)
        - output: the shape of ``x``; zero at padding rows
    """

    def __init__(self, channels: int, method: str = "spectral", init_time: float = 0.0):
        super().__init__()
        self.channels = _check_count(channels, "channels")
        if method not in DIFFUSION_METHODS:
            raise ValueError(f"method must be one of {DIFFUSION_METHODS}, got {method!r}")
        if isinstance(init_time, bool) or not isinstance(init_time, (int, float)) or not init_time >= 0:
            raise ValueError(f"init_time must be a non-negative float, got {init_time!r}")
        self.method = method
        self.init_time = float(init_time)
        self.diffusion_time = nn.Parameter(torch.empty(channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.constant_(self.diffusion_time, self.init_time)

    def forward(self, x: torch.Tensor, ops) -> torch.Tensor:
        ops = _check_ops(x, ops, self.channels)
        with torch.no_grad():
            self.diffusion_time.clamp_(min=MIN_TIME)
        t = self.diffusion_time.to(x.dtype)
        if self.method == "spectral":
            coeffs = ops.evecs.transpose(-1, -2) @ (ops.mass[..., None] * x)  # (..., K, C)
            decay = torch.exp(-ops.evals[..., :, None].clamp(min=0) * t)  # (..., K, C)
            return ops.evecs @ (decay * coeffs)
        batched = x.dim() == 3
        n = x.shape[-2]
        L = _dense_blocks(ops.stiffness, x.shape[0], n) if batched else ops.stiffness.to_dense()
        mass = ops.mass
        # Padding rows have no mass and no stiffness: give them a unit diagonal so the systems stay definite.
        diagonal = torch.where(mass > 0, mass, torch.ones_like(mass))
        systems = t[:, None, None] * L[..., None, :, :] + torch.diag_embed(diagonal)[..., None, :, :]
        factor = torch.linalg.cholesky(systems)  # (..., C, V, V)
        rhs = (mass[..., None] * x).transpose(-1, -2)[..., None]  # (..., C, V, 1)
        return torch.cholesky_solve(rhs, factor)[..., 0].transpose(-1, -2)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, method={self.method!r}, init_time={self.init_time}"


class SpatialGradientFeatures(nn.Module):
    r"""Rotation-invariant features from per-vertex tangent gradient vectors (DiffusionNet, Sec. 4.2).

    With the gradient of channel ``c`` at a vertex written as a complex number
    ``g_c = g_c^x + i g_c^y`` (in the vertex's arbitrary tangent frame), a learned complex matrix
    ``A = A^re + i A^im`` mixes the channels, ``h = A g``, and the output is
    ``tanh(Re(conj(g_c) h_c))`` per channel: a learned inner product between a gradient and a
    rotated, scaled combination of the others. Turning the frame by any angle multiplies every
    ``g_c`` and ``h_c`` by the same unit complex number, so the output does not depend on the
    frame. Without rotations ``A`` is real (``h = A^re g``), still invariant, but it cannot relate
    directions at an angle (e.g. "across" vs "along" another feature's gradient).

    Args:
        channels: ``C``.
        with_gradient_rotations: learn the imaginary part ``A^im``.

    Shapes:
        - input: ``vectors (..., C, 2)`` (``[..., 0]`` the frame's ``x`` component, ``[..., 1]`` its ``y``)
        - output: ``(..., C)`` in ``(-1, 1)``
    """

    def __init__(self, channels: int, with_gradient_rotations: bool = True):
        super().__init__()
        self.channels = _check_count(channels, "channels")
        self.with_gradient_rotations = bool(with_gradient_rotations)
        self.A_re = nn.Linear(channels, channels, bias=False)
        self.A_im = nn.Linear(channels, channels, bias=False) if with_gradient_rotations else None

    def reset_parameters(self) -> None:
        self.A_re.reset_parameters()
        if self.A_im is not None:
            self.A_im.reset_parameters()

    def forward(self, vectors: torch.Tensor) -> torch.Tensor:
        check_tensor(vectors, "vectors", last_dim=2, kind="float", shape_hint="(..., C, 2)")
        if vectors.dim() < 2 or vectors.shape[-2] != self.channels:
            raise ValueError(f"vectors must have shape (..., {self.channels}, 2), got {tuple(vectors.shape)}")
        re, im = vectors[..., 0], vectors[..., 1]
        if self.A_im is not None:
            h_re = self.A_re(re) - self.A_im(im)
            h_im = self.A_re(im) + self.A_im(re)
        else:
            h_re, h_im = self.A_re(re), self.A_re(im)
        return torch.tanh(re * h_re + im * h_im)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, with_gradient_rotations={self.with_gradient_rotations}"


class DiffusionNetBlock(nn.Module):
    r"""One DiffusionNet block: diffusion, gradient features, point-wise MLP, residual.

    ``d = diffuse(x)``; ``g = SpatialGradientFeatures(grad d)`` (the tangent gradient of each
    diffused channel from the precomputed ``grad_x``, ``grad_y``); ``x + MLP([x, d, g])``.

    Args:
        width: channels ``C`` in and out.
        mlp_hidden_dims: hidden widths of the MLP (default ``[width, width]``).
        dropout: drop probability in the MLP.
        with_gradient_features: add the gradient features (else the MLP sees ``[x, d]``).
        with_gradient_rotations: see :class:`SpatialGradientFeatures`.
        diffusion_method: see :class:`LearnedTimeDiffusion`.

    Shapes:
        - input: ``x (V, C)`` with ``SurfaceOperators`` or ``x (B, V, C)`` with a ``SurfaceBatch``
        - output: the shape of ``x``, zero at padding rows
    """

    def __init__(self, width: int, mlp_hidden_dims: Optional[Sequence[int]] = None, dropout: float = 0.0,
                 with_gradient_features: bool = True, with_gradient_rotations: bool = True,
                 diffusion_method: str = "spectral"):
        super().__init__()
        self.width = _check_count(width, "width")
        hidden = [width, width] if mlp_hidden_dims is None else list(mlp_hidden_dims)
        self.with_gradient_features = bool(with_gradient_features)
        self.diffusion = LearnedTimeDiffusion(width, diffusion_method)
        self.gradient_features = SpatialGradientFeatures(width, with_gradient_rotations) \
            if with_gradient_features else None
        inputs = 3 * width if with_gradient_features else 2 * width
        self.mlp = MLP([inputs, *hidden, width], dropout=dropout)

    def reset_parameters(self) -> None:
        self.diffusion.reset_parameters()
        if self.gradient_features is not None:
            self.gradient_features.reset_parameters()
        self.mlp.reset_parameters()

    def forward(self, x: torch.Tensor, ops) -> torch.Tensor:
        ops = _check_ops(x, ops, self.width)
        diffused = self.diffusion(x, ops)
        parts = [x, diffused]
        if self.gradient_features is not None:
            vectors = torch.stack([_apply_sparse(ops.grad_x, diffused), _apply_sparse(ops.grad_y, diffused)], -1)
            parts.append(self.gradient_features(vectors))
        valid = (ops.mass > 0)[..., None].to(x.dtype)
        return (x + self.mlp(torch.cat(parts, -1))) * valid

    def extra_repr(self) -> str:
        return f"width={self.width}, with_gradient_features={self.with_gradient_features}"


class DiffusionNet(nn.Module):
    r"""DiffusionNet (Sharp et al. 2022) for per-vertex outputs.

    ``Linear(C_in, width) -> DiffusionNetBlock x num_blocks -> Linear(width, C_out)``.

    Args:
        in_channels: input features per vertex (3 for xyz, ``T`` for HKS).
        out_channels: outputs per vertex (e.g. part logits).
        width: channels of every block (the paper uses 128).
        num_blocks: blocks (the paper uses 4).
        k_eig: eigenpairs used by spectral diffusion (the first ``k_eig`` of the operators;
            the operators must hold at least that many).
        mlp_hidden_dims, dropout, with_gradient_features, with_gradient_rotations,
        diffusion_method: see :class:`DiffusionNetBlock`.

    Shapes:
        - input: ``x (V, C_in)`` with one mesh's ``SurfaceOperators``; or ``x (B, V, C_in)``
          (zero-padded) with a ``SurfaceBatch`` or a list of ``B`` ``SurfaceOperators``
        - output: ``(V, C_out)`` / ``(B, V, C_out)``, zero at padding rows
    """

    def __init__(self, in_channels: int, out_channels: int, width: int = 128, num_blocks: int = 4, k_eig: int = 128,
                 mlp_hidden_dims: Optional[Sequence[int]] = None, dropout: float = 0.5,
                 with_gradient_features: bool = True, with_gradient_rotations: bool = True,
                 diffusion_method: str = "spectral"):
        super().__init__()
        self.in_channels = _check_count(in_channels, "in_channels")
        self.out_channels = _check_count(out_channels, "out_channels")
        self.width = _check_count(width, "width")
        self.num_blocks = _check_count(num_blocks, "num_blocks")
        self.k_eig = _check_count(k_eig, "k_eig")
        self.diffusion_method = diffusion_method
        self.first = nn.Linear(in_channels, width)
        self.blocks = nn.ModuleList(
            DiffusionNetBlock(width, mlp_hidden_dims, dropout, with_gradient_features, with_gradient_rotations,
                              diffusion_method) for _ in range(num_blocks))
        self.last = nn.Linear(width, out_channels)

    def reset_parameters(self) -> None:
        self.first.reset_parameters()
        for block in self.blocks:
            block.reset_parameters()
        self.last.reset_parameters()

    def forward(self, x: torch.Tensor, ops: Union[SurfaceOperators, SurfaceBatch, Sequence[SurfaceOperators]]
                ) -> torch.Tensor:
        ops = _check_ops(x, ops, self.in_channels)
        if ops.evals.shape[-1] < self.k_eig:
            if self.diffusion_method == "spectral":
                raise ValueError(f"DiffusionNet(k_eig={self.k_eig}) needs operators with at least {self.k_eig} "
                                 f"eigenpairs, got {ops.evals.shape[-1]}; compute them with surface_operators(..., "
                                 f"k={self.k_eig}) or lower k_eig")
        else:
            ops = ops._replace(evals=ops.evals[..., :self.k_eig], evecs=ops.evecs[..., :self.k_eig])
        valid = (ops.mass > 0)[..., None].to(x.dtype)
        h = self.first(x) * valid
        for block in self.blocks:
            h = block(h, ops)
        return self.last(h) * valid

    def extra_repr(self) -> str:
        return (f"in_channels={self.in_channels}, out_channels={self.out_channels}, width={self.width}, "
                f"num_blocks={self.num_blocks}, k_eig={self.k_eig}, diffusion_method={self.diffusion_method!r}")
