"""MoNet (Monti et al. 2017): convolution over geodesic patches with learned Gaussian kernels.

    F. Monti, D. Boscaini, J. Masci, E. Rodola, J. Svoboda, M. M. Bronstein. "Geometric Deep
    Learning on Graphs and Manifolds Using Mixture Model CNNs." CVPR 2017.
    https://arxiv.org/abs/1611.08402

The patch operator of vertex ``i`` weighs its neighbours ``j`` within a geodesic radius by ``K``
learned Gaussians of their pseudo-coordinates ``u(i, j)``:
``D_k(i) f = mean_j w_k(u(i, j)) f_j``, ``w_k(u) = exp(-1/2 (u - mu_k)^T diag(sigma_k)^-2 (u - mu_k))``,
and the convolution is ``sum_k G_k D_k(i) f + W f_i + b``, which is PyTorch Geometric's
``GMMConv(dim=2, kernel_size=K)``; this module supplies the surface side.

Pseudo-coordinates (:func:`surface_patches`) are the geodesic polar coordinates ``(rho, theta)``
of :func:`~geo4g.meshes.geodesic.local_polar_coordinates` (the discrete exponential map), ``rho``
divided by the patch radius. Two choices concern the angle:

- **Periodicity.** MoNet puts Gaussians on ``(rho, theta)`` directly; an angle is periodic, so a
  Gaussian near ``theta = +-pi`` sees neighbours on one side of the seam only and the two sides
  of one direction look far apart. ``coords="cartesian"`` (the default) uses
  ``(rho cos theta, rho sin theta) / radius`` instead, the unfolded tangent-plane position in the
  unit disk: continuous in the direction, no seam, and a Gaussian there is still a localised
  "bin" of the polar patch. ``coords="polar"`` keeps ``(rho / radius, theta / pi)`` as in the paper.
- **Origin of the angle.** The exponential map measures ``theta`` from an arbitrary direction per
  vertex (see ``local_polar_coordinates``), so learned angular kernels would see randomly rotated
  patches. ``reference`` (a 3-vector such as the up axis) rotates every patch so that ``theta = 0``
  points along the projection of ``reference`` onto the vertex's tangent plane (or of the
  coordinate axis most orthogonal to it where the reference is nearly normal to the surface);
  this plays the role of the principal curvature direction of anisotropic CNNs and suits
  consistently oriented data. With ``reference=None`` the angle stays arbitrary and only the
  radial structure of the kernels carries meaning.

A batch of meshes is one graph, the disjoint union of the meshes (packed vertex numbering, as in
PyTorch Geometric); :class:`MoNet` also accepts padded ``(B, V, C)`` features and returns padded
output.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional, Sequence

import torch
from torch import nn

from geo4g.nn.layers import MLP
from geo4g.structures import Meshes
from geo4g.structures.checks import check_finite, check_tensor, describe

from .geodesic import local_polar_coordinates
from .laplacian_matrices import _mesh_input

__all__ = ["SurfacePatches", "surface_patches", "batch_patches", "MoNet", "PSEUDO_COORDS"]

PSEUDO_COORDS = ("cartesian", "polar")
#: Below this length the projection of ``reference`` onto a tangent plane is not trusted.
REFERENCE_MIN_PROJECTION = 0.3


class SurfacePatches(NamedTuple):
    """Geodesic patches of a batch of meshes as a PyTorch Geometric graph.

    ``edge_index (2, E)`` long, row 0 the neighbour ``j``, row 1 the centre ``i``, over the packed
    vertices; ``edge_attr (E, 2)`` the pseudo-coordinates; ``lengths (B,)`` long, the vertices of
    each mesh (one entry for a single mesh).
    """

    edge_index: torch.Tensor
    edge_attr: torch.Tensor
    lengths: torch.Tensor

    @property
    def num_nodes(self) -> int:
        return int(self.lengths.sum())


def _vertex_normals(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    fv = verts[faces]
    cross = torch.linalg.cross(fv[:, 1] - fv[:, 0], fv[:, 2] - fv[:, 0], dim=-1)
    normals = torch.zeros_like(verts).index_add(0, faces.reshape(-1), cross.repeat_interleave(3, 0))
    length = normals.norm(dim=-1, keepdim=True)
    return normals / torch.where(length > 0, length, torch.ones_like(length))


def _reference_offsets(verts, faces, edge_index, theta, reference: torch.Tensor) -> torch.Tensor:
    """Per centre, the angle of ``reference``'s tangent projection in the exponential map's frame.

    The frame's angle of each patch edge ``theta_ij`` and the angle ``phi_ij`` of the chord
    ``v_j - v_i`` measured from the projected reference differ by that offset (exactly on flat
    patches, up to the patch's curvature otherwise); their circular mean over the patch gives it
    without relying on how the frame was chosen.
    """
    normals = _vertex_normals(verts, faces)
    ref = reference / reference.norm()
    fallback = torch.zeros_like(ref)
    fallback[int(ref.abs().argmin())] = 1.0
    proj = ref - (normals @ ref)[:, None] * normals
    proj_fallback = fallback - (normals @ fallback)[:, None] * normals
    use_fallback = proj.norm(dim=-1) < REFERENCE_MIN_PROJECTION
    axis = torch.where(use_fallback[:, None], proj_fallback, proj)
    axis = axis / axis.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    side = torch.linalg.cross(normals, axis, dim=-1)
    j, i = edge_index
    chord = verts[j] - verts[i]
    phi = torch.atan2((chord * side[i]).sum(-1), (chord * axis[i]).sum(-1))
    delta = theta - phi
    n = verts.shape[0]
    s = torch.zeros(n, dtype=theta.dtype, device=theta.device).index_add(0, i, torch.sin(delta))
    c = torch.zeros(n, dtype=theta.dtype, device=theta.device).index_add(0, i, torch.cos(delta))
    return torch.atan2(s, c)


def surface_patches(verts, faces=None, radius: Optional[float] = None, k: Optional[int] = None,
                    coords: str = "cartesian", reference: Optional[Sequence[float]] = None,
                    method: str = "exp_map") -> SurfacePatches:
    """Geodesic patches and MoNet pseudo-coordinates of every vertex (see the module docstring).

    Args:
        verts: ``(V, 3)`` float, or a ``Meshes`` batch (``faces=None``): one graph over the packed
            vertices, patches never cross meshes.
        faces: ``(F, 3)`` integer.
        radius: geodesic patch radius ``> 0``; ``rho`` is divided by it.
        k: at most ``k`` neighbours per patch (the nearest); without ``radius`` ``rho`` is divided by
            the largest ``rho`` of each patch.
        coords: ``"cartesian"`` ``(rho cos theta, rho sin theta) / r`` in the unit disk, or
            ``"polar"`` ``(rho / r, theta / pi)`` in ``[0, 1] x (-1, 1]``.
        reference: optional 3-vector giving the direction of ``theta = 0`` (see the module docstring).
        method: ``"exp_map"`` or ``"dijkstra"`` (see ``local_polar_coordinates``).

    Returns:
        :class:`SurfacePatches` on the vertices' device; ``edge_attr`` in their dtype. The centre is
        not one of its own neighbours (``GMMConv``'s root weight handles it). Not differentiable.
    """
    if coords not in PSEUDO_COORDS:
        raise ValueError(f"coords must be one of {PSEUDO_COORDS}, got {coords!r}")
    if isinstance(verts, Meshes):
        lengths = verts.num_verts_per_mesh().to(verts.device)
    else:
        check_tensor(verts, "verts", ndim=2, last_dim=3, kind="float", shape_hint="(V, 3)")
        lengths = torch.tensor([verts.shape[0]], dtype=torch.long, device=verts.device)
    polar = local_polar_coordinates(verts, faces, radius=radius, k=k, method=method)
    v, f = _mesh_input(verts, faces, "surface_patches")
    v = v.detach()
    edge_index, rho, theta = polar.edge_index, polar.rho.to(torch.float64), polar.theta.to(torch.float64)
    if reference is not None:
        ref = torch.as_tensor(reference, dtype=torch.float64, device=v.device)
        if ref.shape != (3,) or not bool(torch.isfinite(ref).all()) or float(ref.norm()) == 0:
            raise ValueError(f"reference must be a finite non-zero 3-vector, got {reference!r}")
        offsets = _reference_offsets(v.double(), f, edge_index, theta, ref)
        theta = torch.remainder(theta - offsets[edge_index[1]] + math.pi, 2 * math.pi) - math.pi
        theta = torch.where(theta <= -math.pi, torch.full_like(theta, math.pi), theta)
    if radius is not None:
        scale = torch.full_like(rho, float(radius))
    else:
        largest = torch.zeros(v.shape[0], dtype=rho.dtype, device=rho.device).scatter_reduce(
            0, edge_index[1], rho, "amax", include_self=True)
        scale = largest[edge_index[1]].clamp(min=torch.finfo(rho.dtype).tiny)
    r = (rho / scale).clamp(max=1.0)
    if coords == "cartesian":
        attr = torch.stack([r * torch.cos(theta), r * torch.sin(theta)], -1)
    else:
        attr = torch.stack([r, theta / math.pi], -1)
    return SurfacePatches(edge_index, attr.to(v.dtype), lengths)


def batch_patches(patches: Sequence[SurfacePatches]) -> SurfacePatches:
    """The disjoint union of the patch graphs of several meshes (or batches), in order.

    Equal to :func:`surface_patches` of the ``Meshes`` holding the same meshes, without recomputing
    the patches (e.g. to form mini-batches from per-shape patches computed once).
    """
    if isinstance(patches, SurfacePatches) or not isinstance(patches, (list, tuple)) or not patches:
        raise TypeError(f"patches must be a non-empty list of SurfacePatches, got {describe(patches)}")
    offsets, first = [], 0
    for i, p in enumerate(patches):
        if not isinstance(p, SurfacePatches):
            raise TypeError(f"patches[{i}] must be SurfacePatches, got {describe(p)}")
        offsets.append(first)
        first += p.num_nodes
    return SurfacePatches(torch.cat([p.edge_index + o for p, o in zip(patches, offsets)], 1),
                          torch.cat([p.edge_attr for p in patches]), torch.cat([p.lengths for p in patches]))


def _check_patches(patches, num_nodes: int) -> SurfacePatches:
    if not isinstance(patches, SurfacePatches):
        raise TypeError(f"patches must be SurfacePatches (from surface_patches), got {describe(patches)}")
    check_tensor(patches.edge_index, "patches.edge_index", ndim=2, kind="int", shape_hint="(2, E)")
    check_tensor(patches.edge_attr, "patches.edge_attr", ndim=2, last_dim=2, kind="float", shape_hint="(E, 2)")
    if patches.edge_index.shape[0] != 2 or patches.edge_index.shape[1] != patches.edge_attr.shape[0]:
        raise ValueError(f"patches.edge_index (2, E) and edge_attr (E, 2) disagree: "
                         f"{tuple(patches.edge_index.shape)} and {tuple(patches.edge_attr.shape)}")
    if patches.num_nodes != num_nodes:
        raise ValueError(f"patches are for {patches.num_nodes} vertices (lengths {patches.lengths.tolist()}), "
                         f"the features have {num_nodes}")
    return patches


def _init_kernels(conv: nn.Module, coords: str) -> None:
    """Spread the Gaussians' means over the patch (rings in the unit disk / a grid in (rho, theta))
    with widths that overlap, instead of PyTorch Geometric's Glorot draws (possibly tiny or
    negative widths, i.e. dead kernels)."""
    K = conv.kernel_size
    with torch.no_grad():
        idx = torch.arange(K, dtype=torch.float64)
        if coords == "cartesian":
            # One kernel at the centre, the others on one ring (two alternating rings from 7 kernels on).
            ring = (idx - 1) / max(K - 1, 1)
            radius = torch.where(idx % 2 == 1, 0.4, 0.8) if K >= 7 else torch.full_like(idx, 0.6)
            radius = torch.where(idx == 0, torch.zeros_like(idx), radius)
            mu = torch.stack([radius * torch.cos(2 * math.pi * ring), radius * torch.sin(2 * math.pi * ring)], -1)
            sigma = torch.full((K, 2), 0.4, dtype=torch.float64)
        else:
            # A (rho, theta) grid: two radial bins from 4 kernels on, angular bins over (-1, 1].
            rings = 2 if K >= 4 else 1
            per_ring = math.ceil(K / rings)
            mu = torch.stack([(idx // per_ring + 0.5) / rings, -1 + (2 * (idx % per_ring) + 1) / per_ring], -1)
            sigma = torch.stack([torch.full((K,), 0.5 / rings, dtype=torch.float64),
                                 torch.full((K,), 1.0 / per_ring, dtype=torch.float64)], -1)
        conv.mu.copy_(mu.to(conv.mu.dtype))
        conv.sigma.copy_(sigma.to(conv.sigma.dtype))


class MoNet(nn.Module):
    r"""A per-vertex MoNet: lift, ``num_layers`` Gaussian mixture patch convolutions, a point-wise head.

    ``x -> Linear(C_in, width) -> [GMMConv(width, width, dim=2, kernel_size) -> ELU (+ x, residual)]
    x num_layers -> MLP(width, width, num_classes)``, over the graph of :func:`surface_patches`.

    Args:
        in_channels: input features per vertex.
        num_classes: outputs per vertex.
        width: hidden channels.
        num_layers: patch convolution layers.
        kernel_size: Gaussians ``K`` per layer.
        coords: the pseudo-coordinates the patches were built with (sets the kernels' initial layout).
        dropout: drop probability in the head.

    Shapes:
        - input: ``x (N, C_in)`` packed over the patches' meshes (``N = patches.num_nodes``), or
          padded ``x (B, V, C_in)`` with ``patches.lengths (B,)`` (padding rows ignored)
        - output: ``(N, num_classes)`` / ``(B, V, num_classes)`` with zero padding rows
    """

    def __init__(self, in_channels: int, num_classes: int, width: int = 64, num_layers: int = 3,
                 kernel_size: int = 8, coords: str = "cartesian", dropout: float = 0.0):
        super().__init__()
        from torch_geometric.nn import GMMConv

        for name, value in (("in_channels", in_channels), ("num_classes", num_classes), ("width", width),
                            ("num_layers", num_layers), ("kernel_size", kernel_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if coords not in PSEUDO_COORDS:
            raise ValueError(f"coords must be one of {PSEUDO_COORDS}, got {coords!r}")
        self.in_channels, self.num_classes, self.width = in_channels, num_classes, width
        self.num_layers, self.kernel_size, self.coords = num_layers, kernel_size, coords
        self.lift = nn.Linear(in_channels, width)
        self.convs = nn.ModuleList(GMMConv(width, width, dim=2, kernel_size=kernel_size) for _ in range(num_layers))
        self.head = MLP([width, width, num_classes], dropout=dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.lift.reset_parameters()
        for conv in self.convs:
            conv.reset_parameters()
            _init_kernels(conv, self.coords)
        self.head.reset_parameters()

    def forward(self, x: torch.Tensor, patches: SurfacePatches) -> torch.Tensor:
        check_tensor(x, "x", ndim=(2, 3), kind="float", shape_hint="(N, C) or (B, V, C)")
        if x.shape[-1] != self.in_channels:
            raise ValueError(f"x must have {self.in_channels} channels in its last dimension, "
                             f"got shape {tuple(x.shape)}")
        mask = None
        if x.dim() == 3:
            lengths = patches.lengths if isinstance(patches, SurfacePatches) else None
            if lengths is None or lengths.shape[0] != x.shape[0] or int(lengths.max()) > x.shape[1]:
                raise ValueError(f"padded x {tuple(x.shape)} needs patches of B={x.shape[0]} meshes of at most "
                                 f"{x.shape[1]} vertices, got {describe(patches)} with lengths "
                                 f"{None if lengths is None else lengths.tolist()}")
            mask = torch.arange(x.shape[1], device=x.device)[None] < lengths.to(x.device)[:, None]
            packed = x[mask]
        else:
            packed = x
        patches = _check_patches(patches, packed.shape[0])
        check_finite(packed.detach(), "x")
        edge_index, edge_attr = patches.edge_index.to(x.device), patches.edge_attr.to(x.device, x.dtype)
        h = self.lift(packed)
        for conv in self.convs:
            h = h + nn.functional.elu(conv(h, edge_index, edge_attr))
        out = self.head(h)
        if mask is None:
            return out
        padded = out.new_zeros(*x.shape[:2], self.num_classes)
        padded[mask] = out
        return padded

    def extra_repr(self) -> str:
        return (f"in_channels={self.in_channels}, num_classes={self.num_classes}, width={self.width}, "
                f"num_layers={self.num_layers}, kernel_size={self.kernel_size}, coords={self.coords!r}")
