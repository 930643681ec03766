"""AtlasNet (Groueix et al. 2018): a surface as the union of learned parameterisations of patches.

    T. Groueix, M. Fisher, V. G. Kim, B. C. Russell, M. Aubry. "A Papier-Mache Approach to
    Learning 3D Surface Generation." CVPR 2018. https://arxiv.org/abs/1802.05384

A shape's code ``z`` (from a point cloud or an image encoder) conditions ``K`` small MLPs, one per
patch. Patch ``k`` maps a point ``t`` of a template (the unit square ``[0, 1]^2``, or the unit sphere)
concatenated with ``z`` to a point of 3-D space, so it is a learned map from the template onto a
piece of the surface. In training, random template points are mapped and the result is compared
with the target points (Chamfer distance); at inference a regular triangulation of the template
(a grid of the square, an icosphere) is mapped, which gives a triangle mesh for free: the faces of
the ``K`` patches side by side (not stitched together).

The ``K`` MLPs share one structure but have their own weights; they run as one batched matrix
product per layer (``(K, N, C_in) @ (K, C_in, C_out)``), not as a Python loop over the patches.
The first layer's product with ``[t, z]`` is split into a product with ``t`` and one with ``z``,
so the code's part is computed once per shape and patch instead of once per point.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from geo4g.losses import chamfer_distance
from geo4g.nn.layers import ConvBlock, ResidualBlock, activation_layer
from geo4g.parametric.primitives import icosphere
from geo4g.structures import Meshes
from geo4g.structures.checks import check_finite, check_tensor, describe

__all__ = ["TEMPLATES", "square_grid", "AtlasNetDecoder", "AtlasNetMesh", "ImageEncoder", "AtlasNet"]

#: template names: the unit square ``[0, 1]^2`` (2-D points) or the unit sphere (3-D points)
TEMPLATES = ("square", "sphere")
_TEMPLATE_DIM = {"square": 2, "sphere": 3}
_DEFAULT_MESH_POINTS = 2500


def _check_count(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def _check_widths(values, name: str) -> Tuple[int, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise ValueError(f"{name} must be a sequence of positive ints, got {values!r}")
    return tuple(_check_count(v, f"{name}[{i}]") for i, v in enumerate(values))


def _check_template(template) -> str:
    if template not in TEMPLATES:
        raise ValueError(f"template must be one of {', '.join(map(repr, TEMPLATES))}, got {template!r}")
    return template


class AtlasNetMesh(NamedTuple):
    """What :meth:`AtlasNetDecoder.mesh` returns.

    ``meshes``: a ``Meshes`` of ``B`` meshes, each the ``K`` mapped template triangulations
    concatenated (``V = K * V_p`` vertices, ``F = K * F_p`` faces, patch ``k``'s vertices at rows
    ``[k V_p, (k + 1) V_p)``); ``points (B, V, 3)``: the same vertices as one tensor (differentiable);
    ``template (V, D)``: the template point each vertex was mapped from; ``point_patch (V,)`` and
    ``face_patch (F,)`` long: the patch of each vertex and face (the same for every mesh).
    """

    meshes: Meshes
    points: torch.Tensor
    template: torch.Tensor
    point_patch: torch.Tensor
    face_patch: torch.Tensor


def square_grid(grid_size: int, dtype: torch.dtype = torch.float32,
                device: Optional[torch.device] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """A regular ``g x g`` grid of the unit square and its triangulation.

    Args:
        grid_size: ``g >= 2`` points per side.

    Returns:
        ``(points (g^2, 2), faces (2 (g - 1)^2, 3) long)``: point ``i g + j`` is ``(j, i) / (g - 1)``;
        each grid cell is split along its diagonal into two counter-clockwise triangles.
    """
    g = _check_count(grid_size, "grid_size", 2)
    ticks = torch.linspace(0, 1, g, dtype=dtype, device=device)
    v, u = torch.meshgrid(ticks, ticks, indexing="ij")
    points = torch.stack([u.reshape(-1), v.reshape(-1)], 1)
    corner = (torch.arange(g - 1, device=device)[:, None] * g + torch.arange(g - 1, device=device)[None]).reshape(-1)
    a, b, c, d = corner, corner + 1, corner + g, corner + g + 1
    faces = torch.cat([torch.stack([a, b, d], 1), torch.stack([a, d, c], 1)])
    return points, faces


class _PatchLinear(nn.Module):
    """``K`` independent linear layers applied to ``(K, N, C_in)`` (patch ``k`` uses ``weight[k]``).

    Initialised as ``nn.Linear``: weight and bias uniform in ``+-1/sqrt(C_in)``.
    """

    def __init__(self, num_patches: int, in_features: int, out_features: int):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(num_patches, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(num_patches, out_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1 / math.sqrt(self.in_features)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias[:, None, :], x, self.weight)

    def extra_repr(self) -> str:
        return f"num_patches={self.weight.shape[0]}, in_features={self.in_features}, out_features={self.out_features}"


class _PatchBatchNorm(nn.BatchNorm1d):
    """Batch norm of ``(K, N, C)`` with statistics per patch and channel (each patch its own ``BatchNorm1d(C)``)."""

    def __init__(self, num_patches: int, channels: int):
        super().__init__(num_patches * channels)
        self.num_patches, self.channels = num_patches, channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        K, N, C = x.shape
        return super().forward(x.transpose(0, 1).reshape(N, K * C)).view(N, K, C).transpose(0, 1)

    def extra_repr(self) -> str:
        return f"num_patches={self.num_patches}, channels={self.channels}, eps={self.eps}, momentum={self.momentum}"


class AtlasNetDecoder(nn.Module):
    r"""AtlasNet's decoder: ``K`` learned maps from a template to 3-D, conditioned on a shape code.

    Patch ``k`` is an MLP ``[t, z] -> Linear -> (norm -> act -> Linear) x len(hidden) -> output act``
    from ``D + latent_dim`` through ``hidden`` to 3, where ``t`` is a template point (``D = 2``
    for the unit square, ``D = 3`` for the unit sphere). The published model uses batch norm and
    ReLU on the hidden layers, ``tanh`` on the output (so points lie in ``(-1, 1)^3``), 25 square
    patches or one sphere, a 1024-wide code and widths of about ``(1024, 512, 256)``. Batch-norm statistics
    are per patch and channel, as with ``K`` separate networks. Train a batch-norm decoder on
    batches of several shapes: over one shape the code is constant, so batch norm removes it in
    training and the running statistics of eval mode no longer match (use ``norm=None`` to fit a
    single shape).

    Args:
        latent_dim: the size of the code ``z``.
        num_patches: ``K >= 1``.
        template: ``"square"`` or ``"sphere"`` (see :data:`TEMPLATES`).
        hidden: the widths of the hidden layers, at least one.
        norm: ``"batch"`` or ``None``.
        activation: the hidden activation, a name from ``geo4g.nn.ACTIVATIONS``.
        output_activation: an activation name for the coordinates, or ``None`` for unbounded output.

    Shapes:
        - :meth:`forward`: ``z (B, latent_dim)``, ``template (K, M, D)`` (shared by the batch) or
          ``(B, K, M, D)`` -> ``(B, K, M, 3)``
        - :meth:`sample`: ``z (B, latent_dim)`` -> ``(B, P, 3)``, patch-major
        - :meth:`mesh`: ``z (B, latent_dim)`` -> :class:`AtlasNetMesh`
    """

    def __init__(self, latent_dim: int, num_patches: int = 25, template: str = "square",
                 hidden: Sequence[int] = (1024, 512, 256), norm: Optional[str] = "batch",
                 activation: str = "relu", output_activation: Optional[str] = "tanh"):
        super().__init__()
        self.latent_dim = _check_count(latent_dim, "latent_dim")
        self.num_patches = _check_count(num_patches, "num_patches")
        self.template = _check_template(template)
        self.template_dim = _TEMPLATE_DIM[template]
        self.hidden = _check_widths(hidden, "hidden")
        if not self.hidden:
            raise ValueError("hidden must hold at least one width (the first layer mixes template point and code), "
                             "got ()")
        if norm not in ("batch", None):
            raise ValueError(f"norm must be 'batch' or None, got {norm!r}")
        self.norm = norm
        self.activation = activation
        self.output_activation = output_activation
        widths = [self.template_dim + latent_dim, *self.hidden, 3]
        self.linears = nn.ModuleList(_PatchLinear(num_patches, a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.norms = nn.ModuleList(_PatchBatchNorm(num_patches, c) for c in self.hidden) if norm else None
        self.act = activation_layer(activation)
        self.out_act = None if output_activation is None else activation_layer(output_activation)

    def reset_parameters(self) -> None:
        for layer in self.linears:
            layer.reset_parameters()
        for layer in self.norms or ():
            layer.reset_parameters()

    # checks -----------------------------------------------------------------------
    def _check_z(self, z) -> torch.Tensor:
        check_tensor(z, "z", ndim=2, last_dim=self.latent_dim, kind="float", shape_hint=f"(B, {self.latent_dim})")
        weight = self.linears[0].weight
        if z.dtype != weight.dtype or z.device != weight.device:
            raise TypeError(f"z must have the decoder's dtype and device ({weight.dtype} on {weight.device}), "
                            f"got {z.dtype} on {z.device}")
        return check_finite(z, "z")

    def _check_template_points(self, template, z: torch.Tensor) -> torch.Tensor:
        K, D = self.num_patches, self.template_dim
        hint = f"(K, M, D) = ({K}, M, {D}) or (B, K, M, D) = ({z.shape[0]}, {K}, M, {D})"
        check_tensor(template, "template", ndim=(3, 4), last_dim=D, kind="float", shape_hint=hint)
        if template.shape[-3] != K or (template.dim() == 4 and template.shape[0] != z.shape[0]):
            raise ValueError(f"template must have shape {hint} for B={z.shape[0]}, K={K} patches and the "
                             f"{self.template!r} template, got shape {tuple(template.shape)}")
        if template.dtype != z.dtype or template.device != z.device:
            raise TypeError(f"template must have z's dtype and device ({z.dtype} on {z.device}), "
                            f"got {template.dtype} on {template.device}")
        return check_finite(template, "template")

    # decoding ---------------------------------------------------------------------
    def forward(self, z: torch.Tensor, template: torch.Tensor) -> torch.Tensor:
        """Map ``template`` points through every patch, conditioned on ``z``.

        Args:
            z: ``(B, latent_dim)`` codes.
            template: ``(K, M, D)`` template points per patch, shared by the batch, or ``(B, K, M, D)``
                per shape (``D`` = 2 for the square, 3 for the sphere; any values are accepted).

        Returns:
            ``(B, K, M, 3)``: point ``m`` of patch ``k`` of shape ``b``. ``M = 0`` or ``B = 0`` give
            an empty result. In training mode with batch norm, ``B M`` must exceed 1.
        """
        z = self._check_z(z)
        template = self._check_template_points(template, z)
        B, K, D = z.shape[0], self.num_patches, self.template_dim
        M = template.shape[-2]
        if B == 0 or M == 0:
            return z.new_zeros(B, K, M, 3)
        first = self.linears[0]
        # [t, z] @ W = t @ W_t + z @ W_z: the code's part once per (shape, patch), not per point.
        if template.dim() == 3:
            from_template = torch.bmm(template, first.weight[:, :D])[:, None]  # (K, 1, M, H)
        else:
            per_patch = template.transpose(0, 1).reshape(K, B * M, D)
            from_template = torch.bmm(per_patch, first.weight[:, :D]).view(K, B, M, -1)
        from_code = torch.matmul(z, first.weight[:, D:]) + first.bias[:, None]  # (K, B, H)
        x = (from_template + from_code[:, :, None]).reshape(K, B * M, -1)
        for i, layer in enumerate(self.linears[1:]):
            if self.norms is not None:
                x = self.norms[i](x)
            x = layer(self.act(x))
        if self.out_act is not None:
            x = self.out_act(x)
        return x.view(K, B, M, 3).transpose(0, 1)

    def patch_sizes(self, num_points: int) -> torch.Tensor:
        """``(K,)`` long: the points :meth:`sample` draws on each patch.

        ``num_points = q K + r`` (``0 <= r < K``) gives ``q + 1`` points to each of the first ``r``
        patches and ``q`` to the others; with ``num_points < K`` the last patches get none.
        """
        num_points = _check_count(num_points, "num_points")
        q, r = divmod(num_points, self.num_patches)
        return q + (torch.arange(self.num_patches) < r).long()

    def patch_index(self, num_points: int) -> torch.Tensor:
        """``(P,)`` long: the patch of each point of :meth:`sample`'s output (patch-major, non-decreasing)."""
        return torch.repeat_interleave(torch.arange(self.num_patches), self.patch_sizes(num_points))

    def sample_template(self, batch_size: int, points_per_patch: int, generator: Optional[torch.Generator] = None,
                        dtype: torch.dtype = torch.float32, device: Optional[torch.device] = None) -> torch.Tensor:
        """Random template points ``(B, K, M, D)``: uniform on the unit square ``[0, 1]^2``, or
        uniform on the unit sphere (normalised Gaussian draws) for the ``"sphere"`` template."""
        _check_count(batch_size, "batch_size", 0)
        _check_count(points_per_patch, "points_per_patch", 0)
        shape = (batch_size, self.num_patches, points_per_patch, self.template_dim)
        if self.template == "square":
            return torch.rand(shape, generator=generator, dtype=dtype, device=device)
        draws = torch.randn(shape, generator=generator, dtype=dtype, device=device)
        norm = draws.norm(dim=-1, keepdim=True)
        # A zero draw has probability zero; map it to a pole rather than to 0 / 0.
        pole = torch.zeros_like(draws)
        pole[..., 2] = 1
        return torch.where(norm > 0, draws / norm.clamp_min(torch.finfo(dtype).tiny), pole)

    def sample(self, z: torch.Tensor, num_points: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Map ``num_points`` random template points per shape (the training-time output).

        Points are split over the patches by :meth:`patch_sizes` (the first ``num_points % K``
        patches get one more) and drawn by :meth:`sample_template`, independently per shape. Every
        patch is evaluated at ``ceil(num_points / K)`` points and the patches with fewer points drop
        their last one, so in training mode those dropped points also enter the batch-norm statistics.

        Args:
            z: ``(B, latent_dim)`` codes.
            num_points: ``P >= 1``.
            generator: a ``torch.Generator`` on ``z``'s device for reproducible template draws.

        Returns:
            ``(B, P, 3)``, patch-major: :meth:`patch_index` gives each point's patch.
        """
        z = self._check_z(z)
        sizes = self.patch_sizes(num_points).to(z.device)
        per_patch = -(-num_points // self.num_patches)
        template = self.sample_template(z.shape[0], per_patch, generator, z.dtype, z.device)
        points = self(z, template)
        keep = torch.arange(per_patch, device=z.device)[None] < sizes[:, None]
        return points[:, keep]

    def template_mesh(self, grid_size: Optional[int] = None, *, subdivisions: Optional[int] = None,
                      num_points: Optional[int] = None, dtype: torch.dtype = torch.float32,
                      device: Optional[torch.device] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """One patch's template triangulation ``(points (V_p, D), faces (F_p, 3) long)``.

        The square is a ``g x g`` grid (:func:`square_grid`, ``V_p = g^2``, ``F_p = 2 (g - 1)^2``);
        the sphere an icosphere (``V_p = 10 * 4^s + 2``, ``F_p = 20 * 4^s``). Give at most one of:
        ``grid_size`` (square), ``subdivisions`` (sphere), or ``num_points``, a budget of vertices
        over all ``K`` patches: the largest ``g >= 2`` (or ``s >= 0``) with ``K V_p <= num_points``,
        or the smallest one if even that exceeds the budget. Default: ``num_points=2500``.
        """
        given = [n for n, v in (("grid_size", grid_size), ("subdivisions", subdivisions),
                                ("num_points", num_points)) if v is not None]
        if len(given) > 1:
            raise ValueError(f"give at most one of grid_size, subdivisions and num_points, got {', '.join(given)}")
        if grid_size is not None and self.template != "square":
            raise ValueError(f"grid_size is for the 'square' template; the {self.template!r} template takes "
                             f"subdivisions (icosphere levels) or num_points, got grid_size={grid_size!r}")
        if subdivisions is not None and self.template != "sphere":
            raise ValueError(f"subdivisions is for the 'sphere' template; the {self.template!r} template takes "
                             f"grid_size or num_points, got subdivisions={subdivisions!r}")
        if grid_size is None and subdivisions is None:
            budget = _check_count(_DEFAULT_MESH_POINTS if num_points is None else num_points, "num_points")
            per_patch = budget // self.num_patches
            if self.template == "square":
                grid_size = max(2, math.isqrt(per_patch))
            else:
                subdivisions = 0
                while 10 * 4 ** (subdivisions + 1) + 2 <= per_patch:
                    subdivisions += 1
        if self.template == "square":
            return square_grid(grid_size, dtype, device)
        points, faces = icosphere(_check_count(subdivisions, "subdivisions", 0), dtype=dtype)
        return points.to(device), faces.to(device)

    def mesh(self, z: torch.Tensor, grid_size: Optional[int] = None, *, subdivisions: Optional[int] = None,
             num_points: Optional[int] = None) -> AtlasNetMesh:
        """Map each patch's template triangulation: the inference-time output, a triangle mesh per shape.

        Args:
            z: ``(B, latent_dim)`` codes.
            grid_size, subdivisions, num_points: the template resolution (see :meth:`template_mesh`).

        Returns:
            :class:`AtlasNetMesh`. Each mesh has ``K V_p`` vertices and ``K F_p`` faces; the patches
            are not stitched, so their borders overlap or leave gaps as the learned maps put them.
            Vertex positions are differentiable with respect to ``z`` and the decoder's weights.
        """
        z = self._check_z(z)
        points, faces = self.template_mesh(grid_size, subdivisions=subdivisions, num_points=num_points,
                                           dtype=z.dtype, device=z.device)
        K, B = self.num_patches, z.shape[0]
        V, F = points.shape[0], faces.shape[0]
        verts = self(z, points.expand(K, V, self.template_dim)).reshape(B, K * V, 3)
        offsets = torch.arange(K, device=z.device)[:, None, None] * V
        all_faces = (faces[None] + offsets).reshape(K * F, 3)
        meshes = Meshes(verts, all_faces.expand(B, K * F, 3))
        patches = torch.arange(K, device=z.device)
        return AtlasNetMesh(meshes, verts, points.repeat(K, 1), patches.repeat_interleave(V),
                            patches.repeat_interleave(F))

    def extra_repr(self) -> str:
        return (f"latent_dim={self.latent_dim}, num_patches={self.num_patches}, template={self.template!r}, "
                f"hidden={list(self.hidden)}, norm={self.norm!r}, activation={self.activation!r}, "
                f"output_activation={self.output_activation!r}")


class ImageEncoder(nn.Module):
    r"""A small ResNet from an image to a code.

    A ``3 x 3`` :class:`~geo4g.nn.ConvBlock` stem to ``width`` channels, then ``num_stages``
    :class:`~geo4g.nn.ResidualBlock` stages, each halving the resolution (stride 2) and doubling the
    channels, a global average pool and a linear layer to ``latent_dim``. (AtlasNet's single-view
    model uses a ResNet-18; this is the same pattern, narrower and shallower for small images.)

    Args:
        in_channels: image channels (1 for depth or silhouettes, 3 for RGB).
        latent_dim: the size of the code.
        width: the stem's channels; stage ``i`` has ``width * 2^(i+1)``.
        num_stages: the stride-2 residual stages, ``>= 1``.
        norm: a name from ``geo4g.nn.NORMS`` or ``None``.

    Shapes:
        - input: ``images (B, in_channels, H, W)``, any ``H, W >= 1``
        - output: ``(B, latent_dim)``
    """

    def __init__(self, in_channels: int = 3, latent_dim: int = 256, width: int = 16, num_stages: int = 4,
                 norm: Optional[str] = "batch"):
        super().__init__()
        self.in_channels = _check_count(in_channels, "in_channels")
        self.latent_dim = _check_count(latent_dim, "latent_dim")
        self.width = _check_count(width, "width")
        self.num_stages = _check_count(num_stages, "num_stages")
        self.stem = ConvBlock(in_channels, width, 3, dim=2, norm=norm)
        channels = [width * 2 ** i for i in range(num_stages + 1)]
        self.stages = nn.Sequential(*(ResidualBlock(a, b, dim=2, stride=2, norm=norm)
                                      for a, b in zip(channels[:-1], channels[1:])))
        self.head = nn.Linear(channels[-1], latent_dim)

    def reset_parameters(self) -> None:
        for module in (self.stem, *self.stages, self.head):
            module.reset_parameters()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        C = self.in_channels
        check_tensor(images, "images", ndim=4, kind="float", shape_hint=f"(B, {C}, H, W)")
        if images.shape[1] != C:
            raise ValueError(f"images must have {C} channels in dimension 1 (B, {C}, H, W), "
                             f"got shape {tuple(images.shape)}")
        check_finite(images, "images")
        return self.head(self.stages(self.stem(images)).mean((2, 3)))

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, latent_dim={self.latent_dim}, width={self.width}, " \
               f"num_stages={self.num_stages}"


class AtlasNet(nn.Module):
    r"""AtlasNet (Groueix et al. 2018): an encoder to a shape code and an :class:`AtlasNetDecoder`.

    Args:
        latent_dim: the size of the code.
        num_patches: ``K``, the patches of the decoder.
        encoder: ``"points"`` (:class:`~geo4g.points.decoders.PointSetEncoder`, a PointNet without
            transform nets, for auto-encoding point clouds), ``"image"`` (:class:`ImageEncoder` with
            ``in_channels``, for single-view reconstruction), or any module returning
            ``(B, latent_dim)``; it is called as ``encoder(inputs, lengths)`` when lengths are given,
            else as ``encoder(inputs)``.
        template: ``"square"`` or ``"sphere"``.
        hidden, norm: the decoder's hidden widths and normalisation (see :class:`AtlasNetDecoder`).
        num_points: the points :meth:`forward` generates by default (2500 in the paper).
        in_channels: image channels for ``encoder="image"`` (ignored otherwise).

    Shapes:
        - input: ``points (B, N, 3)`` (or a ``Pointclouds``) with ``lengths (B,)``, or
          ``images (B, C, H, W)``
        - :meth:`forward`: ``(B, num_points, 3)`` random surface points, patch-major
        - :meth:`mesh`: :class:`AtlasNetMesh`

    :meth:`loss` is the Chamfer distance (:func:`~geo4g.losses.chamfer_distance`, the mean squared
    nearest-neighbour distance both ways, batch mean) between :meth:`forward`'s points and a target.
    """

    def __init__(self, latent_dim: int = 1024, num_patches: int = 25, encoder: Union[str, nn.Module] = "points",
                 template: str = "square", hidden: Sequence[int] = (1024, 512, 256), norm: Optional[str] = "batch",
                 num_points: int = 2500, in_channels: int = 3):
        super().__init__()
        self.latent_dim = _check_count(latent_dim, "latent_dim")
        self.num_points = _check_count(num_points, "num_points")
        if isinstance(encoder, str):
            if encoder == "points":
                # imported here: a point encoder is one option, and geo4g.points need not load with geo4g.meshes
                from geo4g.points.decoders import PointSetEncoder

                encoder_module: nn.Module = PointSetEncoder(latent_dim)
            elif encoder == "image":
                encoder_module = ImageEncoder(in_channels, latent_dim)
            else:
                raise ValueError(f"encoder must be 'points', 'image' or an nn.Module, got {encoder!r}")
            self.input_kind = encoder
        elif isinstance(encoder, nn.Module):
            encoder_module, self.input_kind = encoder, "custom"
        else:
            raise TypeError(f"encoder must be 'points', 'image' or an nn.Module returning (B, latent_dim), "
                            f"got {describe(encoder)}")
        self.encoder = encoder_module
        self.decoder = AtlasNetDecoder(latent_dim, num_patches, template, hidden, norm)

    def reset_parameters(self) -> None:
        for module in (self.encoder, self.decoder):
            if callable(getattr(module, "reset_parameters", None)):
                module.reset_parameters()

    def encode(self, inputs, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The codes ``(B, latent_dim)`` of a batch of point clouds or images."""
        if lengths is not None and self.input_kind == "image":
            raise ValueError(f"lengths is for point cloud input; the image encoder takes none, got {describe(lengths)}")
        z = self.encoder(inputs) if lengths is None else self.encoder(inputs, lengths)
        if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[1] != self.latent_dim:
            got = f"shape {tuple(z.shape)}" if isinstance(z, torch.Tensor) else describe(z)
            raise ValueError(f"encoder must return (B, latent_dim) = (B, {self.latent_dim}), got {got}")
        return z

    def forward(self, inputs, lengths: Optional[torch.Tensor] = None, num_points: Optional[int] = None,
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """``(B, P, 3)`` points mapped from random template points (``P = num_points``, default the
        model's); see :meth:`AtlasNetDecoder.sample`."""
        return self.decoder.sample(self.encode(inputs, lengths),
                                   self.num_points if num_points is None else num_points, generator)

    def mesh(self, inputs, lengths: Optional[torch.Tensor] = None, grid_size: Optional[int] = None, *,
             subdivisions: Optional[int] = None, num_points: Optional[int] = None) -> AtlasNetMesh:
        """The meshes of a batch of inputs; see :meth:`AtlasNetDecoder.mesh`."""
        return self.decoder.mesh(self.encode(inputs, lengths), grid_size, subdivisions=subdivisions,
                                 num_points=num_points)

    def loss(self, inputs, target=None, lengths: Optional[torch.Tensor] = None,
             target_lengths: Optional[torch.Tensor] = None, num_points: Optional[int] = None,
             generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """The Chamfer distance between :meth:`forward`'s points and ``target (B, M, 3)`` (or a
        ``Pointclouds``) with ``target_lengths (B,)``. ``target=None`` means the input point clouds
        (auto-encoding; ``lengths`` then serve as the target's lengths too).

        Raises:
            ValueError: ``target=None`` with image input.
        """
        if target is None:
            if self.input_kind == "image":
                raise ValueError("target is needed with image input: the (B, M, 3) points to reconstruct, got None")
            target, target_lengths = inputs, lengths
        return chamfer_distance(self(inputs, lengths, num_points, generator), target, y_lengths=target_lengths)[0]

    def extra_repr(self) -> str:
        return f"latent_dim={self.latent_dim}, num_points={self.num_points}, input={self.input_kind!r}"
