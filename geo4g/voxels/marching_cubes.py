"""Marching cubes: the triangle mesh of a level set of a scalar grid, differentiable in the values.

One public function, :func:`marching_cubes`, two implementations of the topology (``method``):

- ``"reference"``: plain torch, vectorised over the cells with the lookup table; the test oracle
  and the path for CUDA tensors (any device);
- ``"numba"``: three compiled passes over slabs of the grid on the CPU, on all the cores this
  process may use (``NUMBA_NUM_THREADS`` caps them; ``_kernels/mc_numba.py``).

Both find which grid edges the level set crosses and which triangles join them without gradient,
and return identical meshes: one vertex per crossed grid edge, in increasing order of the edge's
id ``node * 3 + axis`` (``node`` the C-order index of the edge's lower end), and the faces cell by
cell in C order. The vertex positions are then interpolated in torch from the two values at the
ends of each crossed edge, so they are differentiable with respect to the volume (and ``level``
when it is a tensor).

The triangle table (:mod:`geo4g.voxels._mc_tables`) resolves every ambiguous cell face the same
way (the above-level corners are separated), so the two cells sharing a face agree and the mesh
is watertight: away from the volume's boundary every mesh edge lies in exactly two faces, with
opposite directions. The surface is open where it leaves the volume; pad the volume with a
below-level border for a closed mesh.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
from numbers import Real
from typing import Optional, Sequence, Tuple

import torch

from geo4g._threads import single_thread
from geo4g.structures.checks import check_finite, check_tensor, describe
from geo4g.structures.meshes import Meshes

from ._mc_tables import CORNERS, EDGES, NUM_TRIANGLES, TRIANGLES

__all__ = ["marching_cubes"]

METHODS = ("auto", "reference", "numba")
GRADIENT_DIRECTIONS = ("descent", "ascent")

_TABLES: dict = {}


def _tables(device: torch.device) -> Tuple[torch.Tensor, ...]:
    """``(triangles (256, 5, 3), num_triangles (256,), edge_low (12, 3), edge_axis (12,))`` on ``device``."""
    if device not in _TABLES:
        low = torch.minimum(torch.from_numpy(CORNERS[EDGES[:, 0]]), torch.from_numpy(CORNERS[EDGES[:, 1]]))
        axis = (torch.from_numpy(CORNERS[EDGES[:, 0]]) - torch.from_numpy(CORNERS[EDGES[:, 1]])).abs().argmax(dim=1)
        _TABLES[device] = tuple(
            t.to(device) for t in (torch.from_numpy(TRIANGLES), torch.from_numpy(NUM_TRIANGLES), low, axis)
        )
    return _TABLES[device]


def marching_cubes(volume: torch.Tensor, level=0.0, spacing: Sequence[float] = (1.0, 1.0, 1.0),
                   origin: Optional[Sequence[float]] = None, gradient_direction: str = "descent",
                   method: str = "auto") -> Meshes:
    """The triangle mesh of the level set ``{x : volume(x) = level}`` of a grid of values.

    Grid node ``(i, j, k)`` sits at ``origin + (i, j, k) * spacing`` (like scikit-image, whose
    vertices are in ``index * spacing`` coordinates: ``origin`` defaults to 0). A node is *above*
    when its value is ``> level`` (strictly) and *below* otherwise; every grid edge joining an above
    node to a below node holds one vertex, placed by linear interpolation of the two values. Such
    vertices are shared by the cells around the edge: the mesh is indexed and watertight away from
    the volume's boundary.

    Args:
        volume: ``(D, H, W)`` or a batch ``(B, D, H, W)`` of floating point values, every spatial
            size at least 2, finite.
        level: the iso-value, a real number or a 0-dim tensor (then the vertices are also
            differentiable with respect to it).
        spacing: ``(sx, sy, sz)`` positive node spacing along ``i, j, k``.
        origin: ``(ox, oy, oz)`` position of node ``(0, 0, 0)``; default ``(0, 0, 0)``.
        gradient_direction: ``"descent"`` (default): faces are wound so that their normals
            (right-hand rule ``v0 -> v1 -> v2``) point from the above side to the below side:
            outward for an object made of the high values (occupancy, density), positive enclosed
            volume. These are the normals of scikit-image's default, which states them by the
            left-hand rule: its face arrays have the opposite winding of ours.
            ``"ascent"`` flips the winding: outward for an object made of the low values, such as
            the inside of a signed distance field (negative inside).
        method: ``"auto"`` (default: ``"numba"`` for CPU tensors when numba is installed, else
            ``"reference"``), ``"reference"`` (torch, any device) or ``"numba"`` (CPU).

    Returns:
        ``Meshes`` with ``B`` meshes (one for a ``(D, H, W)`` volume), vertices in the volume's
        dtype and device. Vertices of a mesh come in increasing order of their grid edge, faces
        cell by cell; the same input gives the same mesh on every path. A mesh is empty (0
        vertices, 0 faces) when ``level`` is outside the range of its values (or equal to their
        maximum), e.g. for a constant volume; no error is raised. A vertex lies on a grid node
        when that node's value equals ``level``; triangles may then be degenerate (zero area).

    Raises:
        TypeError: ``volume`` not a floating point tensor, ``level`` not a real number.
        ValueError: wrong rank, a spatial size below 2, NaN/inf values or level, a non-positive
            spacing, a bad ``gradient_direction`` or ``method``, ``"numba"`` for a non-CPU tensor
            or without numba installed.
    """
    check_tensor(volume, "volume", ndim=(3, 4), kind="float", shape_hint="(D, H, W) or (B, D, H, W)")
    if any(size < 2 for size in volume.shape[-3:]):
        raise ValueError(
            f"volume must have at least 2 nodes along each spatial axis (D, H, W >= 2, one cell), "
            f"got shape {tuple(volume.shape)}"
        )
    level_value = _check_level(level)
    spacing_t = _check_triple(spacing, "spacing", volume, positive=True)
    origin_t = _check_triple((0.0, 0.0, 0.0) if origin is None else origin, "origin", volume, positive=False)
    if gradient_direction not in GRADIENT_DIRECTIONS:
        raise ValueError(f"gradient_direction must be one of {GRADIENT_DIRECTIONS}, got {gradient_direction!r}")
    kernels = _resolve_method(method, volume)
    batch = volume if volume.dim() == 4 else volume[None]
    cpu = volume.device.type == "cpu"
    if kernels is None:  # the numba kernels check the values as they read them
        with single_thread() if cpu else contextlib.nullcontext():
            check_finite(volume.detach(), "volume")
    # On the CPU the torch glue runs on the calling thread (small elementwise ops that torch's
    # OpenMP threads slow down on a busy machine); the numba kernels use their own threads.
    glue = single_thread if cpu else contextlib.nullcontext
    verts, faces = [], []
    for b in range(batch.shape[0]):
        if kernels is None:
            edge_ids, tris = _topology_torch(batch[b].detach(), level_value)
        with glue():
            if kernels is not None:
                edge_ids, tris = _topology_numba(kernels, batch[b].detach(), level_value)
                if edge_ids is None:
                    check_finite(volume.detach(), "volume")
            verts.append(_positions(batch[b], edge_ids, level, spacing_t, origin_t))
            faces.append(tris if gradient_direction == "descent" else tris[:, [0, 2, 1]])
    with glue():
        return Meshes(verts, faces)


def _check_level(level) -> float:
    if isinstance(level, torch.Tensor):
        if level.dim() != 0 or not level.is_floating_point():
            raise ValueError(f"level must be a real number or a 0-dim float tensor, got {describe(level)}")
        value = float(level.detach())
    elif isinstance(level, Real) and not isinstance(level, bool):
        value = float(level)
    else:
        raise TypeError(f"level must be a real number or a 0-dim tensor, got {describe(level)}")
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"level must be finite, got {value}")
    return value


def _check_triple(values, name: str, volume: torch.Tensor, positive: bool) -> torch.Tensor:
    if isinstance(values, torch.Tensor):
        values = values.detach().reshape(-1).tolist()
    try:
        triple = [float(v) for v in values]
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be three real numbers (along i, j, k), got {describe(values)}") from None
    if len(triple) != 3:
        raise ValueError(f"{name} must be three real numbers (along i, j, k), got {len(triple)}: {triple}")
    if not all(v == v and abs(v) != float("inf") for v in triple):
        raise ValueError(f"{name} must be finite, got {triple}")
    if positive and min(triple) <= 0:
        raise ValueError(f"{name} must be positive, got {triple}")
    return torch.tensor(triple, dtype=volume.dtype, device=volume.device)


def _resolve_method(method: str, volume: torch.Tensor):
    """The numba kernel module for the ``"numba"`` path, ``None`` for the torch path."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    numba_available = importlib.util.find_spec("numba") is not None
    if method == "reference" or (method == "auto" and (volume.device.type != "cpu" or not numba_available)):
        return None
    if volume.device.type != "cpu":
        raise ValueError(f"method='numba' runs on the CPU, got volume on {volume.device}; use 'auto' or 'reference'")
    if not numba_available:
        raise ValueError("method='numba' needs numba (pip install numba); use 'auto' or 'reference'")
    return importlib.import_module("geo4g.voxels._kernels.mc_numba")


def _topology_torch(vol: torch.Tensor, level: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """Reference topology of one ``(D, H, W)`` volume: ``(edge_ids (V,), faces (F, 3))`` long."""
    D, H, W = vol.shape
    triangles, num_triangles, edge_low, edge_axis = _tables(vol.device)
    above = (vol > level).to(torch.uint8)
    cases = torch.zeros((D - 1, H - 1, W - 1), dtype=torch.uint8, device=vol.device)
    for c, (di, dj, dk) in enumerate(CORNERS.tolist()):
        cases |= above[di : D - 1 + di, dj : H - 1 + dj, dk : W - 1 + dk] << c
    cases = cases.reshape(-1)
    cells = ((cases != 0) & (cases != 255)).nonzero().squeeze(1)
    case = cases[cells].long()
    count = num_triangles[case]
    valid = torch.arange(triangles.shape[1], device=vol.device) < count[:, None]
    local = triangles[case][valid]  # (F, 3) local edge ids, cell by cell, slot by slot
    face_cell = cells[:, None].expand(-1, triangles.shape[1])[valid]
    ci = face_cell // ((H - 1) * (W - 1))
    cj = face_cell // (W - 1) % (H - 1)
    ck = face_cell % (W - 1)
    low = edge_low[local]  # (F, 3, 3)
    node = ((ci[:, None] + low[..., 0]) * H + cj[:, None] + low[..., 1]) * W + ck[:, None] + low[..., 2]
    global_edge = node * 3 + edge_axis[local]
    edge_ids, inverse = torch.unique(global_edge.reshape(-1), sorted=True, return_inverse=True)
    return edge_ids, inverse.reshape(-1, 3)


def _topology_numba(kernels, vol: torch.Tensor, level: float) -> Tuple[torch.Tensor, torch.Tensor]:
    if vol.dtype not in (torch.float32, torch.float64):
        vol = vol.float()
    found = kernels.marching_cubes_topology(vol.contiguous().numpy(), level)
    if found is None:  # NaN or inf values
        return None, None
    return torch.from_numpy(found[0]), torch.from_numpy(found[1])


def _positions(vol: torch.Tensor, edge_ids: torch.Tensor, level, spacing: torch.Tensor,
               origin: torch.Tensor) -> torch.Tensor:
    """``(V, 3)`` vertex positions, interpolated along each crossed edge (differentiable in ``vol``)."""
    D, H, W = vol.shape
    edge_ids = edge_ids.to(vol.device)
    node = edge_ids // 3
    axis = edge_ids % 3
    stride = torch.tensor([H * W, W, 1], device=vol.device)
    flat = vol.reshape(-1)
    value_low, value_high = flat[node], flat[node + stride[axis]]
    if isinstance(level, torch.Tensor):
        level = level.to(vol.dtype)
    t = (level - value_low) / (value_high - value_low)
    index = torch.stack([node // (H * W), node // W % H, node % W], dim=1).to(vol.dtype)
    return index.scatter_add(1, axis[:, None], t[:, None]) * spacing + origin
