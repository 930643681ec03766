"""Spectral convolution on surfaces with smooth spectral multipliers, and a per-vertex spectral CNN.

    J. Bruna, W. Zaremba, A. Szlam, Y. LeCun. "Spectral Networks and Locally Connected Networks
    on Graphs." ICLR 2014. https://arxiv.org/abs/1312.6203
    M. Henaff, J. Bruna, Y. LeCun. "Deep Convolutional Networks on Graph-Structured Data." 2015.
    https://arxiv.org/abs/1506.05163

A spectral convolution filters each input channel by a function of the Laplace-Beltrami
eigenvalues and sums over input channels:

    ``y_o = sum_i Phi diag(g_io(lambda)) Phi^T M x_i  (+ W x + b)``

with ``Phi (V, K)`` the ``M``-orthonormal eigenvectors and ``M`` the lumped mass. As in Bruna et
al.'s smooth spectral multipliers (and Henaff et al.), each filter ``g_io`` is a learned
combination of ``num_basis_filters`` smooth functions of the eigenvalue, here uniform cubic
B-splines over the normalised eigenvalue axis ``[0, 1]``: smoothness in frequency means
localisation in space, and the number of parameters does not grow with ``K``. Because ``g_io``
is a function of ``lambda``, ``Phi diag(g(lambda)) Phi^T M`` is the operator ``g(-Delta)``
truncated to the basis: it does not depend on how a solver picked the eigenvectors within a
repeated eigenvalue (symmetric shapes) or on their signs, so the same filter applies to any mesh.
Disconnected meshes have one zero eigenvalue per component; the filter applies per component.

The eigenvalue axis is normalised per mesh by its largest eigenvalue in the basis
(``max_eigenvalue=None``: the filter's support follows the truncation, as on a fixed graph) or by
a fixed ``max_eigenvalue`` (clamped beyond it: the filter then means the same frequency on every
mesh of the same scale).

Inputs are a single mesh (``x (V, C)`` with ``evals (K,)``, ``evecs (V, K)``, ``mass (V,)``) or a
padded batch of meshes of different sizes (``x (B, V, C)`` with ``(B, K)``, ``(B, V, K)``,
``(B, V)``, e.g. the fields of :class:`~geo4g.meshes.surface_data.SurfaceBatch`): padding vertices
are those with zero mass; their eigenvector rows must be zero and they read as zero output.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from geo4g.nn.layers import MLP
from geo4g.structures.checks import check_finite, check_tensor

from .surface_data import as_surface_batch

__all__ = ["SpectralConv", "SpectralCNN", "cubic_bspline_basis", "check_basis_inputs"]


def _cardinal_cubic(t: torch.Tensor) -> torch.Tensor:
    """The cardinal cubic B-spline, support ``[-2, 2]``, integrates to 1."""
    a = t.abs()
    inner = 2.0 / 3.0 - a ** 2 + 0.5 * a ** 3
    outer = (2.0 - a).clamp(min=0) ** 3 / 6.0
    return torch.where(a < 1, inner, outer)


def cubic_bspline_basis(values: torch.Tensor, count: int) -> torch.Tensor:
    """``count`` uniform cubic B-splines on ``[0, 1]`` evaluated at ``values``.

    The knots are spaced ``h = 1 / (count - 3)`` apart with centres ``-h, 0, h, ..., 1, 1 + h``,
    so the functions sum to 1 everywhere on ``[0, 1]`` (a constant filter is representable).

    Args:
        values: ``(...)`` float, typically normalised eigenvalues in ``[0, 1]``.
        count: number of basis functions, ``>= 4``.

    Returns:
        ``(..., count)``.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 4:
        raise ValueError(f"count must be an int >= 4 (cubic B-splines), got {count!r}")
    h = 1.0 / (count - 3)
    centres = (torch.arange(count, dtype=values.dtype, device=values.device) - 1) * h
    return _cardinal_cubic((values[..., None] - centres) / h)


def check_basis_inputs(x: torch.Tensor, evals: torch.Tensor, evecs: torch.Tensor, mass: torch.Tensor,
                       channels: Optional[int] = None) -> None:
    """Validate ``x (V, C) / (B, V, C)`` against a basis ``evals``, ``evecs``, ``mass`` (unbatched or batched)."""
    check_tensor(x, "x", ndim=(2, 3), kind="float", shape_hint="(V, C) or (B, V, C)")
    batched = x.dim() == 3
    hint = "(B, K), (B, V, K), (B, V)" if batched else "(K,), (V, K), (V,)"
    check_tensor(evals, "evals", ndim=2 if batched else 1, kind="float", shape_hint=hint.split(", ")[0])
    check_tensor(evecs, "evecs", ndim=3 if batched else 2, kind="float", shape_hint=hint.split(", ")[1])
    check_tensor(mass, "mass", ndim=2 if batched else 1, kind="float", shape_hint=hint.split(", ")[2])
    lead = tuple(x.shape[:-1])
    if tuple(evecs.shape[:-1]) != lead or tuple(mass.shape) != lead or tuple(evals.shape) != (
            *lead[:-1], evecs.shape[-1]):
        raise ValueError(f"the basis does not match x {tuple(x.shape)}: expected evals {(*lead[:-1], 'K')}, "
                         f"evecs {(*lead, 'K')}, mass {lead}; got evals {tuple(evals.shape)}, evecs "
                         f"{tuple(evecs.shape)}, mass {tuple(mass.shape)}")
    if channels is not None and x.shape[-1] != channels:
        raise ValueError(f"x must have {channels} channels in its last dimension, got shape {tuple(x.shape)}")
    for name, t in (("x", x), ("evals", evals), ("evecs", evecs), ("mass", mass)):
        check_finite(t.detach(), name)


class SpectralConv(nn.Module):
    r"""Spectral convolution with smooth (cubic B-spline) multipliers (see the module docstring).

    .. math::
        y_o = \sum_i \Phi\, \mathrm{diag}\big(g_{io}(\hat\lambda)\big)\, \Phi^\top M x_i + W x + b,
        \qquad g_{io}(\hat\lambda) = \sum_j \beta_j(\hat\lambda)\, w_{j i o}

    Args:
        in_channels, out_channels: ``C_in``, ``C_out``.
        num_basis_filters: B-spline functions per filter (``>= 4``).
        k: use only the first ``k`` eigenpairs of the basis given to ``forward`` (default: all).
        max_eigenvalue: ``None`` to normalise eigenvalues by each mesh's largest one in the
            (truncated) basis, or a fixed positive scale (``lambda / max_eigenvalue`` clamped to 1).
        pointwise: add the per-vertex linear term ``W x + b`` (the high frequencies the truncated
            basis cannot represent).

    Shapes:
        - input: ``x (V, C_in)``, ``evals (K,)``, ``evecs (V, K)``, ``mass (V,)``; or batched
          ``x (B, V, C_in)``, ``evals (B, K)``, ``evecs (B, V, K)``, ``mass (B, V)`` (zero mass
          marks padding rows, whose ``evecs`` rows must be zero)
        - output: ``(V, C_out)`` / ``(B, V, C_out)``, zero at padding rows
    """

    def __init__(self, in_channels: int, out_channels: int, num_basis_filters: int = 16, k: Optional[int] = None,
                 max_eigenvalue: Optional[float] = None, pointwise: bool = True):
        super().__init__()
        for name, value, low in (("in_channels", in_channels, 1), ("out_channels", out_channels, 1),
                                 ("num_basis_filters", num_basis_filters, 4)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise ValueError(f"k must be None or an int >= 1, got {k!r}")
        if max_eigenvalue is not None and (isinstance(max_eigenvalue, bool)
                                           or not isinstance(max_eigenvalue, (int, float)) or not max_eigenvalue > 0):
            raise ValueError(f"max_eigenvalue must be None or a positive float, got {max_eigenvalue!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.num_basis_filters, self.k = num_basis_filters, k
        self.max_eigenvalue = None if max_eigenvalue is None else float(max_eigenvalue)
        self.weight = nn.Parameter(torch.empty(num_basis_filters, in_channels, out_channels))
        self.linear = nn.Linear(in_channels, out_channels) if pointwise else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Each output sums C_in filtered channels: the same fan-in scaling as a linear layer.
        bound = 1.0 / self.in_channels ** 0.5
        nn.init.uniform_(self.weight, -bound, bound)
        if self.linear is not None:
            self.linear.reset_parameters()

    def filters(self, evals: torch.Tensor) -> torch.Tensor:
        """The multipliers ``g(lambda)``: ``(..., K, C_in, C_out)`` for ``evals (..., K)``."""
        return torch.einsum("...kj,jio->...kio", self._basis(evals), self.weight)

    def _basis(self, evals: torch.Tensor) -> torch.Tensor:
        lam = evals.clamp(min=0)
        scale = lam.amax(-1, keepdim=True) if self.max_eigenvalue is None else \
            torch.full_like(lam[..., :1], self.max_eigenvalue)
        normalised = (lam / scale.clamp(min=torch.finfo(lam.dtype).tiny)).clamp(max=1.0)
        return cubic_bspline_basis(normalised, self.num_basis_filters)

    def forward(self, x: torch.Tensor, evals: torch.Tensor, evecs: torch.Tensor, mass: torch.Tensor) -> torch.Tensor:
        check_basis_inputs(x, evals, evecs, mass, self.in_channels)
        if self.k is not None:
            if evals.shape[-1] < self.k:
                raise ValueError(f"SpectralConv(k={self.k}) needs at least {self.k} eigenpairs, the basis has "
                                 f"{evals.shape[-1]}")
            evals, evecs = evals[..., :self.k], evecs[..., :self.k]
        coeffs = evecs.transpose(-1, -2) @ (mass[..., None] * x)  # (..., K, C_in)
        basis = self._basis(evals)  # (..., K, J)
        mixed = (basis[..., :, :, None] * coeffs[..., :, None, :]).flatten(-2)  # (..., K, J C_in)
        out = evecs @ (mixed @ self.weight.reshape(-1, self.out_channels))
        if self.linear is not None:
            out = out + self.linear(x) * (mass > 0)[..., None].to(x.dtype)
        return out

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, num_basis_filters={self.num_basis_filters}, k={self.k}, "
                f"max_eigenvalue={self.max_eigenvalue}, pointwise={self.linear is not None}")


class SpectralCNN(nn.Module):
    r"""A per-vertex spectral CNN: lift, ``num_layers`` spectral convolutions, a point-wise head.

    ``x -> Linear(C_in, width) -> [SpectralConv(width, width) -> ReLU (+ x, residual)] x num_layers
    -> MLP(width, width, num_classes)``. The residual connections keep a deep stack trainable and
    let each layer add a band of frequencies to the features.

    Args:
        in_channels: input features per vertex (e.g. 3 for xyz, or HKS channels).
        num_classes: outputs per vertex.
        width: hidden channels.
        num_layers: spectral convolution layers.
        num_basis_filters, k, max_eigenvalue: see :class:`SpectralConv`.
        dropout: drop probability in the head.

    Shapes:
        - input: ``x (V, C_in)`` with one mesh's ``SurfaceOperators``; or ``x (B, V, C_in)``
          (zero-padded) with a ``SurfaceBatch`` or a list of ``B`` ``SurfaceOperators``
        - output: ``(V, num_classes)`` / ``(B, V, num_classes)``, zero at padding rows
    """

    def __init__(self, in_channels: int, num_classes: int, width: int = 64, num_layers: int = 4,
                 num_basis_filters: int = 16, k: Optional[int] = None, max_eigenvalue: Optional[float] = None,
                 dropout: float = 0.0):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("num_classes", num_classes), ("width", width),
                            ("num_layers", num_layers)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.in_channels, self.num_classes, self.width, self.num_layers = in_channels, num_classes, width, num_layers
        self.lift = nn.Linear(in_channels, width)
        self.convs = nn.ModuleList(SpectralConv(width, width, num_basis_filters, k, max_eigenvalue)
                                   for _ in range(num_layers))
        self.head = MLP([width, width, num_classes], dropout=dropout)

    def reset_parameters(self) -> None:
        self.lift.reset_parameters()
        for conv in self.convs:
            conv.reset_parameters()
        self.head.reset_parameters()

    def forward(self, x: torch.Tensor, ops) -> torch.Tensor:
        ops = as_surface_batch(x, ops)
        check_basis_inputs(x, ops.evals, ops.evecs, ops.mass, self.in_channels)
        valid = (ops.mass > 0)[..., None].to(x.dtype)
        h = self.lift(x) * valid
        for conv in self.convs:
            h = h + torch.relu(conv(h, ops.evals, ops.evecs, ops.mass))
        return self.head(h) * valid

    def extra_repr(self) -> str:
        return (f"in_channels={self.in_channels}, num_classes={self.num_classes}, width={self.width}, "
                f"num_layers={self.num_layers}")
