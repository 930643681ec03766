"""Scan completion on voxel grids: visibility by ray casting, and a ScanComplete-style network.

    J. Amanatides, A. Woo. "A Fast Voxel Traversal Algorithm for Ray Tracing." Eurographics 1987.
    A. Dai, D. Ritchie, M. Bokeloh, S. Reed, J. Sturm, M. Niessner. "ScanComplete: Large-Scale
    Scene Completion and Semantic Segmentation for 3D Scans." CVPR 2018. https://arxiv.org/abs/1712.10215

A partial scan of a shape is simulated on its occupancy grid: :func:`visibility` keeps the
occupied voxels a depth camera at each viewpoint would see (``visible``) and marks the empty
voxels its rays cross on their way (``known_empty``: free space carved by the scan); everything
else is unknown. :class:`CompletionNet` maps the partial grid (and the known-empty channel) to
the complete occupancy.

Coordinates: voxel ``[b, i, j, k]`` of an ``R^3`` grid spans ``[i, i+1] x [j, j+1] x [k, k+1]``
in *grid coordinates* (its centre is ``(i + 0.5, j + 0.5, k + 0.5)``); with ``bounds`` (the
``(2, 3)`` box ``[[min], [max]]`` the grid covers, or ``(B, 2, 3)`` one per grid, as given to
``voxelize_mesh``) viewpoints are in *world coordinates* instead, and map to grid coordinates
by ``(p - min) / (max - min) * R``.

Visibility: an *empty* voxel is seen from viewpoint ``c`` when the segment from its centre to
``c`` passes through the interior of no occupied voxel; an *occupied* voxel is seen when one of
its exposed faces (a face whose neighbour is empty, with ``c`` strictly on its outer side) sees
``c``: the segment from the face's centre to ``c`` passes through no occupied voxel's interior.
Casting from voxel centres instead would hide every flat surface viewed at less than 45 degrees
(the centre's ray grazes into the voxel's own neighbour on the surface); a face-centre ray
leaves the surface at any angle, as a depth camera's ray reaches the face. Voxels outside the
grid are empty. Voxels a ray only touches on an edge or corner do not block it (a ray through
the shared edge of two diagonal voxels passes between them). A ray stops at ``c``: a viewpoint
inside the grid sees no further than itself. Three implementations give identical results (the same
float64 crossing parameters, ties stepped together):

- ``"reference"``: every plane crossing of every segment, sorted (torch, any device; memory
  ``O(rays * R)``, for small grids and tests);
- ``"torch"``: the 3-D DDA of Amanatides & Woo, all rays advanced in lockstep (any device; the
  GPU path);
- ``"numba"``: the same DDA compiled, one ray at a time with early exit, the grids of a batch
  shared out over one thread per CPU (the CPU path, ``_kernels/raycast_numba.py``).
"""
from __future__ import annotations

import importlib
import math
from typing import NamedTuple, Optional, Union

import torch
from torch import nn

from geo4g._threads import run_chunks
from geo4g.nn.layers import ConvBlock
from geo4g.structures.checks import check_finite, check_tensor, describe

from .classifiers import as_voxel_input, check_width, model_dtype, reset_children, scaled
from .generative import UpBlock

__all__ = ["Visibility", "visibility", "visible_voxels", "random_viewpoints", "CompletionNet"]

METHODS = ("auto", "reference", "torch", "numba")
#: Rays per chunk of the torch DDA (bounds its memory at about 100 bytes per ray).
TORCH_CHUNK = 1 << 20
#: Rays per chunk of the reference (its memory is about 80 * R bytes per ray).
REFERENCE_CHUNK = 1 << 14


class Visibility(NamedTuple):
    """What :func:`visibility` returns, each ``(B, R, R, R)`` bool: ``visible``, the occupied voxels
    seen from some viewpoint (the partial scan), and ``known_empty``, the empty voxels seen from
    some viewpoint (free space crossed by the camera rays)."""

    visible: torch.Tensor
    known_empty: torch.Tensor


def _check_grid(grid) -> torch.Tensor:
    check_tensor(grid, "grid", ndim=4, shape_hint="(B, R, R, R)")
    if grid.is_complex():
        raise TypeError(f"grid must be a bool, integer or floating point occupancy grid (B, R, R, R), "
                        f"got dtype {grid.dtype}")
    B, R = grid.shape[:2]
    if tuple(grid.shape[1:]) != (R, R, R):
        raise ValueError(f"grid must be a cubic occupancy grid (B, R, R, R), got shape {tuple(grid.shape)}")
    check_finite(grid, "grid")
    return grid if grid.dtype == torch.bool else grid > 0.5


def _check_viewpoints(viewpoints, batch: int, resolution: int, bounds, device) -> torch.Tensor:
    """``(B, V, 3)`` float64 grid coordinates on ``device``."""
    check_tensor(viewpoints, "viewpoints", ndim=(2, 3), last_dim=3, kind="float", shape_hint="(V, 3) or (B, V, 3)")
    if viewpoints.dim() == 3 and viewpoints.shape[0] != batch:
        raise ValueError(f"viewpoints must be (V, 3) or (B, V, 3) with B={batch} like grid, "
                         f"got shape {tuple(viewpoints.shape)}")
    if viewpoints.shape[-2] == 0:
        raise ValueError(f"viewpoints must hold at least one viewpoint, got shape {tuple(viewpoints.shape)}")
    check_finite(viewpoints, "viewpoints")
    points = viewpoints.to(device=device, dtype=torch.float64)
    points = points.expand(batch, -1, -1) if points.dim() == 2 else points
    if bounds is not None:
        hint = f"(2, 3) or (B, 2, 3) = {(batch, 2, 3)} [[min], [max]]"
        check_tensor(bounds, "bounds", ndim=(2, 3), kind="float", shape_hint=hint)
        if tuple(bounds.shape[-2:]) != (2, 3) or (bounds.dim() == 3 and bounds.shape[0] != batch):
            raise ValueError(f"bounds must be {hint}, got shape {tuple(bounds.shape)}")
        check_finite(bounds, "bounds")
        box = bounds.to(device=device, dtype=torch.float64).expand(batch, 2, 3)
        lo, hi = box[:, :1], box[:, 1:]
        if not bool((hi > lo).all()):
            raise ValueError(f"bounds must have max > min on every axis, got {bounds.tolist()}")
        points = (points - lo) / (hi - lo) * resolution
    return points


def visibility(grid: torch.Tensor, viewpoints: torch.Tensor, bounds: Optional[torch.Tensor] = None,
               method: str = "auto") -> Visibility:
    """The voxels of each grid seen from one or several viewpoints, occupied and empty.

    An empty voxel is seen when the segment from its centre to some viewpoint crosses the interior
    of no occupied voxel, an occupied one when such a segment from the centre of one of its
    exposed faces does (see the module docstring for the coordinates and the edge rules).

    Args:
        grid: ``(B, R, R, R)`` occupancy, bool or numbers (occupied where ``> 0.5``).
        viewpoints: ``(V, 3)`` camera positions shared by the batch, or ``(B, V, 3)`` per grid,
            ``V >= 1``; grid coordinates, or world coordinates when ``bounds`` is given.
            Typically outside the grid (:func:`random_viewpoints`).
        bounds: ``(2, 3)`` or ``(B, 2, 3)`` float ``[[min], [max]]``, the box each grid covers
            (voxel ``(i, j, k)`` spans ``min + (i, j, k) * size .. min + (i + 1, j + 1, k + 1) * size``,
            ``size = (max - min) / R``, as in ``voxelize_mesh``), or ``None`` for grid coordinates.
        method: ``"auto"`` (numba on the CPU when it imports, else ``"torch"``), ``"reference"``,
            ``"torch"`` or ``"numba"`` (CPU only); all give the same result.

    Returns:
        :class:`Visibility` of ``(B, R, R, R)`` bool on ``grid``'s device. An empty grid has no
        visible voxel and every voxel known empty; a full grid shows the boundary voxels whose
        outer faces look at a viewpoint and no known empty voxel. Not differentiable.

    Raises:
        TypeError / ValueError: naming the argument, for a wrong type, shape or dtype, NaN, no
            viewpoint, degenerate ``bounds`` or an unknown ``method``.
    """
    occupied = _check_grid(grid)
    seen = _seen(occupied, _check_viewpoints(viewpoints, occupied.shape[0], occupied.shape[1], bounds, grid.device),
                 torch.ones_like(occupied), method)
    return Visibility(seen & occupied, seen & ~occupied)


def visible_voxels(grid: torch.Tensor, viewpoints: torch.Tensor, bounds: Optional[torch.Tensor] = None,
                   method: str = "auto") -> torch.Tensor:
    """The occupied voxels seen from one or several viewpoints: a simulated partial scan.

    :func:`visibility`'s ``visible`` alone (rays are cast for the occupied voxels only, so it is
    cheaper). Arguments, result and errors as there.

    Returns:
        ``(B, R, R, R)`` bool, a subset of the occupied voxels (the surface facing the viewpoints).
    """
    occupied = _check_grid(grid)
    points = _check_viewpoints(viewpoints, occupied.shape[0], occupied.shape[1], bounds, grid.device)
    return _seen(occupied, points, occupied, method) & occupied


def _seen(occupied: torch.Tensor, viewpoints: torch.Tensor, query: torch.Tensor, method: str) -> torch.Tensor:
    """``(B, R, R, R)`` bool: the ``query`` voxels some viewpoint (``(B, V, 3)`` grid coordinates) sees."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "auto":
        method = "numba" if occupied.device.type == "cpu" and _numba_kernels() is not None else "torch"
    if method == "numba":
        if occupied.device.type != "cpu":
            raise ValueError(f"method='numba' runs on the CPU only, got grid on {occupied.device}")
        kernels = _numba_kernels()
        if kernels is None:
            raise ImportError("method='numba' needs numba: pip install numba (or geo4g[numba])")
        return _seen_numba(kernels, occupied, viewpoints, query)
    cast = _cast_reference if method == "reference" else _cast_dda
    chunk = REFERENCE_CHUNK if method == "reference" else TORCH_CHUNK
    voxels = query.nonzero()  # (M, 4): b, i, j, k
    hit = torch.zeros(voxels.shape[0], dtype=torch.bool, device=occupied.device)
    for v in range(viewpoints.shape[1]):
        for first in range(0, voxels.shape[0], chunk // 6):
            todo = first + (~hit[first:first + chunk // 6]).nonzero()[:, 0]
            owner, batch, cell, start, target, direct = _rays(occupied, voxels[todo], viewpoints[voxels[todo, 0], v])
            hit[todo[direct]] = True
            if owner.numel():
                hit[todo[owner[cast(occupied, batch, cell, start, target)]]] = True
    seen = torch.zeros_like(occupied)
    seen[tuple(voxels[hit].t())] = True
    return seen


def _seen_numba(kernels, occupied: torch.Tensor, viewpoints: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """The compiled kernel over slices of the batch on a thread pool (it releases the GIL)."""
    seen = torch.zeros_like(occupied)
    if occupied.numel() == 0:
        return seen
    run_chunks(kernels.seen_voxels, occupied.shape[0], 1, occupied.contiguous().numpy(), query.contiguous().numpy(),
               viewpoints.contiguous().numpy(), seen.numpy())
    return seen


def _rays(occupied: torch.Tensor, voxels: torch.Tensor, targets: torch.Tensor):
    """The rays cast for ``voxels (M, 4)`` (``b, i, j, k``) towards ``targets (M, 3)`` float64.

    An empty voxel casts from its centre. An occupied voxel casts from the centre of each face
    whose neighbour is empty and whose outer side holds the target, starting in that neighbour;
    a face on the grid's boundary sees the target directly (the grid is convex).

    Returns:
        ``owner (N,)`` (the row of ``voxels`` casting each ray), ``batch (N,)``, the start
        ``cell (N, 3)`` long and point ``start (N, 3)`` float64, ``target (N, 3)``, and
        ``direct (M,)`` bool: the voxels seen through a boundary face without casting.
    """
    R = occupied.shape[1]
    full = occupied[tuple(voxels.t())]
    centre = voxels[:, 1:].to(torch.float64) + 0.5
    empty = (~full).nonzero()[:, 0]
    owners, cells, starts = [empty], [voxels[empty, 1:]], [centre[empty]]
    solid = full.nonzero()[:, 0]
    direct = torch.zeros(voxels.shape[0], dtype=torch.bool, device=voxels.device)
    for axis in range(3):
        for side in (-1, 1):
            cell = voxels[solid, 1:].clone()
            cell[:, axis] += side
            start = centre[solid].clone()
            start[:, axis] += 0.5 * side
            facing = (targets[solid, axis] - start[:, axis]) * side > 0
            inside = ((cell >= 0) & (cell < R)).all(1)
            clamped = cell.clamp(0, R - 1)
            free = ~occupied[voxels[solid, 0], clamped[:, 0], clamped[:, 1], clamped[:, 2]]
            direct[solid[facing & ~inside]] = True
            cast = facing & inside & free
            owners.append(solid[cast])
            cells.append(cell[cast])
            starts.append(start[cast])
    owner = torch.cat(owners)
    return owner, voxels[owner, 0], torch.cat(cells), torch.cat(starts), targets[owner], direct


def _ray_setup(cell: torch.Tensor, start: torch.Tensor, target: torch.Tensor):
    """Directions, integer steps and first boundaries of rays from ``start`` in ``cell`` to ``target``."""
    direction = target - start
    step = torch.sign(direction).to(torch.long)
    boundary = (cell + (step > 0).long()).to(torch.float64)
    return direction, step, boundary


def _next_crossing(boundary, start, direction) -> torch.Tensor:
    """The ray parameter at which each axis next crosses a voxel boundary (inf when parallel)."""
    inf = torch.full_like(direction, math.inf)
    return torch.where(direction != 0, (boundary - start) / torch.where(direction != 0, direction, 1.0), inf)


def _cast_dda(occupied, batch, cell, start, target) -> torch.Tensor:
    """``(N,)`` bool: whether each ray (from ``start (N, 3)`` in ``cell (N, 3)`` of grid ``batch (N,)`` to
    ``target (N, 3)``) enters no occupied voxel; every ray advanced one DDA step per iteration."""
    R = occupied.shape[1]
    direction, step, boundary = _ray_setup(cell, start, target)
    t_next = _next_crossing(boundary, start, direction)
    unblocked = torch.zeros(cell.shape[0], dtype=torch.bool, device=cell.device)
    active = torch.arange(cell.shape[0], device=cell.device)
    while active.numel():
        t = t_next.min(1).values
        moves = t_next == t[:, None]
        cell = cell + step * moves
        boundary = boundary + step.to(torch.float64) * moves
        t_next = torch.where(moves, _next_crossing(boundary, start, direction), t_next)
        reached = t >= 1
        outside = ((cell < 0) | (cell >= R)).any(1)
        inside = cell.clamp(0, R - 1)
        blocked = ~reached & ~outside & occupied[batch, inside[:, 0], inside[:, 1], inside[:, 2]]
        unblocked[active[reached | outside]] = True
        keep = ~(reached | outside | blocked)
        active, cell, start, direction, step, boundary, t_next, batch = (
            x[keep] for x in (active, cell, start, direction, step, boundary, t_next, batch))
    return unblocked


def _cast_reference(occupied, batch, cell, start, target) -> torch.Tensor:
    """:func:`_cast_dda` from all plane crossings of each ray at once.

    Axis ``a`` of a ray crosses the planes ``boundary_a + m * step_a`` (``m = 0..R``) at
    ``t = (plane - start_a) / direction_a``; after the crossing at ``t`` the ray is in the voxel
    ``cell + step * (crossings with parameter <= t, per axis)``. Every crossing with ``t < 1`` is
    checked against the grid (voxels outside it are empty)."""
    R = occupied.shape[1]
    N = cell.shape[0]
    direction, step, boundary = _ray_setup(cell, start, target)
    offsets = torch.arange(R + 1, device=cell.device, dtype=torch.float64)
    planes = boundary[:, :, None] + step.to(torch.float64)[:, :, None] * offsets  # (N, 3, R + 1)
    t = _next_crossing(planes, start[:, :, None], direction[:, :, None].expand_as(planes))
    t = torch.where(t < 1, t, math.inf)  # ascending along m on each axis
    flat = t.reshape(N, -1).contiguous()
    counts = torch.stack([torch.searchsorted(t[:, a].contiguous(), flat, right=True) for a in range(3)], 2)
    cells = cell[:, None, :] + step[:, None, :] * counts  # (N, 3 (R + 1), 3): the voxel after each crossing
    valid = torch.isfinite(flat) & ((cells >= 0) & (cells < R)).all(2)
    inside = cells.clamp(0, R - 1)
    hits = valid & occupied[batch[:, None].expand(-1, cells.shape[1]), inside[..., 0], inside[..., 1], inside[..., 2]]
    return ~hits.any(1)


def _numba_kernels():
    try:
        return importlib.import_module("geo4g.voxels._kernels.raycast_numba")
    except ImportError:
        return None


def random_viewpoints(n: int, radius: float = 1.5, center: Union[None, torch.Tensor, tuple] = None,
                      generator: Optional[torch.Generator] = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``n`` camera positions drawn uniformly on a sphere, for :func:`visibility`.

    Args:
        n: the number of viewpoints, ``>= 0``.
        radius: the sphere's radius, ``> 0`` (in the coordinates the viewpoints are used in:
            e.g. 1.5 around the origin for grids over ``[-0.5, 0.5]^3`` with ``bounds``, or
            ``1.5 * R`` around ``(R/2, R/2, R/2)`` in grid coordinates).
        center: the sphere's centre, 3 numbers (default: the origin).
        generator: the random generator.
        dtype: a floating dtype.

    Returns:
        ``(n, 3)`` on ``center``'s device (CPU for a tuple or ``None``).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    if isinstance(radius, bool) or not isinstance(radius, (int, float)) or not 0 < radius < float("inf"):
        raise ValueError(f"radius must be a positive finite number, got {radius!r}")
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {describe(generator)}")
    center = torch.zeros(3) if center is None else torch.as_tensor(center)
    if center.shape != (3,) or center.dtype == torch.bool or center.is_complex():
        raise ValueError(f"center must be 3 real numbers, shape (3,), got {describe(center)}")
    check_finite(center, "center")
    direction = torch.randn(n, 3, generator=generator, dtype=torch.float64)
    direction = direction / direction.norm(dim=1, keepdim=True).clamp(min=1e-12)
    return (center.cpu().to(torch.float64) + radius * direction).to(device=center.device, dtype=dtype)


class CompletionNet(nn.Module):
    r"""A ScanComplete-style 3-D encoder-decoder with skip connections (a U-Net on voxels).

    Input: the partial occupancy of a scan (``Visibility.visible``) and, with
    ``known_empty=True``, the free-space channel (``Visibility.known_empty``), which tells the
    network which missing voxels are truly empty and which merely unseen (ScanComplete feeds a
    truncated signed distance with the same information). Encoder: a ``3^3`` block at ``R^3``,
    then three stride-2 ``4^3`` blocks, each followed by a ``3^3`` block (``c, 2c, 4c, 8c``
    filters, ``c = 32 * width``); decoder: three :class:`UpBlock` back to ``R^3``, each
    concatenated with the encoder map of its size and fused by a ``3^3`` block; a ``1^3``
    convolution gives the complete occupancy logits, plus a ``1^3`` convolution of the input
    itself (a per-voxel linear shortcut: it learns "seen occupied stays occupied, known empty
    stays empty, unseen gets a prior" within a few steps, and the U-Net learns the corrections).
    Batch norm and ReLU throughout. Train with :func:`geo4g.voxels.generative.occupancy_loss`
    against the complete grid.

    Args:
        resolution: ``R``, a multiple of 8.
        width: the multiplier of every hidden width.
        known_empty: take the known-empty channel as a second input.
        prior: about the occupied fraction of the training grids. The shortcut starts as the
            scan itself: logit ``b = log(prior / (1 - prior))`` for unseen voxels, ``-b`` for
            seen ones (occupancy ``1 - prior``), ``2 b`` for known empty ones.

    Shapes:
        - input: ``partial (B, R, R, R)`` or ``(B, 1, R, R, R)``, bool, integer or float; with
          ``known_empty=True`` also ``known_empty`` of the same shape
        - output: ``(B, R, R, R)`` logits of the complete occupancy
    """

    def __init__(self, resolution: int = 32, width: float = 1.0, known_empty: bool = True, prior: float = 0.05):
        super().__init__()
        if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 8 or resolution % 8:
            raise ValueError(f"resolution must be a positive multiple of 8 for CompletionNet, got {resolution!r}")
        self.resolution = resolution
        self.width = check_width(width)
        if not isinstance(known_empty, bool):
            raise TypeError(f"known_empty must be a bool, got {describe(known_empty)}")
        self.known_empty = known_empty
        if isinstance(prior, bool) or not isinstance(prior, (int, float)) or not 0 < prior < 1:
            raise ValueError(f"prior must lie in (0, 1), got {prior!r}")
        self.prior = float(prior)
        c = [scaled(32 * 2 ** i, width) for i in range(4)]
        self.inc = ConvBlock(2 if known_empty else 1, c[0], 3, dim=3)
        self.downs = nn.ModuleList(
            nn.Sequential(ConvBlock(c[i], c[i + 1], 4, dim=3, stride=2, padding=1),
                          ConvBlock(c[i + 1], c[i + 1], 3, dim=3))
            for i in range(3))
        self.ups = nn.ModuleList(UpBlock(c[i + 1], c[i]) for i in reversed(range(3)))
        self.fuses = nn.ModuleList(ConvBlock(2 * c[i], c[i], 3, dim=3) for i in reversed(range(3)))
        self.out = nn.Conv3d(c[0], 1, 1)
        self.shortcut = nn.Conv3d(2 if known_empty else 1, 1, 1)
        self._init_output()

    def _init_output(self) -> None:
        # Adam moves a parameter by about lr per step: starting the logits at 0 (p = 0.5) where a few
        # percent are occupied costs hundreds of steps of pulling them down first.
        bias = math.log(self.prior / (1 - self.prior))
        nn.init.zeros_(self.out.bias)
        nn.init.constant_(self.shortcut.bias, bias)
        with torch.no_grad():
            self.shortcut.weight.zero_()
            self.shortcut.weight[0, 0] = -2 * bias
            if self.known_empty:
                self.shortcut.weight[0, 1] = bias

    def reset_parameters(self) -> None:
        reset_children(self)
        self._init_output()

    def forward(self, partial: torch.Tensor, known_empty: Optional[torch.Tensor] = None) -> torch.Tensor:
        dtype = model_dtype(self)
        x = as_voxel_input(partial, "partial", self.resolution, 1, dtype)
        if self.known_empty:
            if known_empty is None:
                raise ValueError("known_empty must be given (a (B, R, R, R) grid like partial) for a CompletionNet "
                                 "built with known_empty=True")
            free = as_voxel_input(known_empty, "known_empty", self.resolution, 1, dtype)
            if free.shape != x.shape:
                raise ValueError(f"known_empty must have the batch size of partial {tuple(x.shape)}, "
                                 f"got shape {tuple(known_empty.shape)}")
            x = torch.cat([x, free], 1)
        elif known_empty is not None:
            raise ValueError(f"known_empty must be None for a CompletionNet built with known_empty=False, "
                             f"got {describe(known_empty)}")
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        y = skips.pop()
        for up, fuse in zip(self.ups, self.fuses):
            y = fuse(torch.cat([up(y), skips.pop()], 1))
        return (self.out(y) + self.shortcut(x))[:, 0]

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, width={self.width}, known_empty={self.known_empty}, prior={self.prior}"
