"""Signed distances to triangle meshes: at query points and on voxel grids.

The distance is exact: the Euclidean distance to the closest point of the closest triangle. The
sign is negative inside, decided by the generalized winding number ``w`` (Jacobson et al. 2013):
inside where ``|w| > 0.5``. On a closed mesh ``w`` is the number of times the surface wraps around
the point (1 inside an outward- or inward-oriented closed mesh, 0 outside); on a mesh with small
holes or cracks it changes smoothly and still separates inside from outside, where ray parity
would flip whole rows.

Two implementations (``method``), the same result up to rounding:

- ``"reference"``: torch over blocks of (query, triangle) pairs: every pair's closest point
  (plane projection when it falls inside the triangle, else the closest of the three edges) and
  exact solid angles (Van Oosterom & Strackee). The test oracle and the path for CUDA tensors;
- ``"numba"``: one bounding volume hierarchy per mesh for the nearest triangle (Ericson's closest
  point) and for a hierarchical winding number (Barill et al. 2018, far nodes as dipoles),
  queries on all CPU cores (``_kernels/sdf_numba.py``).

Both find the closest triangle and the winding number without gradient. When the points or the
vertices require gradients, the distance is recomputed in torch from the closest triangle, so it
is differentiable with respect to both (the sign is piecewise constant). At a point on the
surface the distance is 0 and its gradient is taken as 0.

Grid convention (as in :mod:`geo4g.voxels.voxelize`): ``grid[b, i, j, k]``, ``i`` along ``x``,
``j`` along ``y``, ``k`` along ``z``; ``bounds = [[xmin, ymin, zmin], [xmax, ymax, zmax]]`` and voxel
``(i, j, k)`` sampled at its centre ``min + ((i, j, k) + 0.5) * (max - min) / resolution``.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import math
from typing import List, Optional, Tuple

import torch

from geo4g._threads import single_thread
from geo4g.structures.checks import check_finite, check_tensor, describe
from geo4g.structures.meshes import Meshes

from .voxelize import _check_bounds, _check_bytes, _resolution, _single_mesh, bounding_cubes

__all__ = ["sdf_grid", "signed_distance"]

METHODS = ("auto", "reference", "numba")
#: Most bytes :func:`sdf_grid` will allocate: the output plus, for one mesh at a time,
#: :data:`WORK_BYTES_PER_VOXEL` of working arrays.
MAX_GRID_BYTES = 1 << 33
#: Working bytes per voxel while a mesh's grid is computed (float64 distance and winding number,
#: int64 closest face).
WORK_BYTES_PER_VOXEL = 24
#: With ``bounds=None`` the grid is the mesh's bounding cube grown to leave this many voxels of
#: margin on every side (fewer on grids under ``4 * MARGIN_VOXELS`` voxels: a quarter of them).
MARGIN_VOXELS = 2
#: (query, triangle) pairs per block of the reference path, on the CPU and on other devices.
BLOCK_PAIRS_CPU = 1 << 16
BLOCK_PAIRS = 1 << 20


def signed_distance(points: torch.Tensor, meshes, faces: Optional[torch.Tensor] = None,
                    method: str = "auto") -> torch.Tensor:
    """Signed distance from query points to meshes: negative inside (``|winding number| > 0.5``).

    Args:
        points: ``(B, N, 3)`` float, the queries of each mesh; or ``(N, 3)``, the same queries for
            every mesh (or for the single mesh given as ``verts, faces``).
        meshes: a ``Meshes`` of ``B`` meshes, or the vertices ``(V, 3)`` of a single mesh (then
            ``faces`` is required). Same dtype and device as ``points``.
        faces: ``(F, 3)`` integer faces of the single mesh; ``None`` with ``Meshes``.
        method: ``"auto"`` (default: ``"numba"`` for CPU tensors when numba is installed, else
            ``"reference"``), ``"reference"`` (torch, any device) or ``"numba"`` (CPU).

    Returns:
        ``(B, N)`` signed distances in the points' dtype, ``(N,)`` for a single mesh given as
        ``verts, faces``. Differentiable with respect to the points and the vertices. A mesh
        without faces has no surface: its distances are ``+inf``. Degenerate (zero-area)
        triangles count as their edges and add nothing to the winding number.

    Raises:
        TypeError: wrong types or dtypes (non-float points or vertices, non-integer faces, points
            and vertices of different dtypes).
        ValueError: wrong shapes, NaN/inf points or vertices, face indices out of range, a batch
            size that does not match the meshes, different devices, unknown ``method``,
            ``"numba"`` off the CPU.
    """
    check_tensor(points, "points", ndim=(2, 3), last_dim=3, kind="float", shape_hint="(B, N, 3) or (N, 3)")
    kernels = _resolve_method(method, points.device)
    mesh_list, single = _mesh_input(meshes, faces)
    B = len(mesh_list)
    if single and points.dim() != 2:
        raise ValueError(f"points must be (N, 3) for a single mesh given as verts, faces, got shape "
                         f"{tuple(points.shape)}")
    if points.dim() == 3 and points.shape[0] != B:
        raise ValueError(f"points must have one row of queries per mesh (B={B}) or be (N, 3), got shape "
                         f"{tuple(points.shape)}")
    _check_like(points, mesh_list)
    with single_thread() if points.device.type == "cpu" else contextlib.nullcontext():
        check_finite(points.detach(), "points")
    queries = points if points.dim() == 3 else points[None].expand(B, -1, -1)
    with _glue(points.device, kernels):
        rows = [_signed_distance_one(queries[b], verts, tri_faces, kernels)
                for b, (verts, tri_faces) in enumerate(mesh_list)]
        if not rows:
            return points.new_zeros(0, points.shape[-2])
        out = torch.stack(rows)
    return out[0] if single else out


def sdf_grid(meshes: Meshes, resolution=32, bounds: Optional[torch.Tensor] = None,
             method: str = "auto") -> torch.Tensor:
    """Signed distance grids of meshes, sampled at the voxel centres (negative inside).

    Args:
        meshes: a ``Meshes`` of ``B`` meshes.
        resolution: voxels per axis, ``R`` or ``(R0, R1, R2)``, each ``>= 1``.
        bounds: ``(2, 3)`` or ``(B, 2, 3)`` float ``[[xmin, ymin, zmin], [xmax, ymax, zmax]]``; voxel
            ``(i, j, k)`` is sampled at ``min + ((i, j, k) + 0.5) * (max - min) / resolution``.
            ``None``: each mesh's bounding cube (:func:`geo4g.voxels.voxelize.bounding_cubes`,
            centred on the vertices' bounding box) grown about its centre so that at least
            :data:`MARGIN_VOXELS` voxels (a quarter of the voxels on grids under
            ``4 * MARGIN_VOXELS``) separate the box from the grid's sides: the zero level set
            does not touch the grid's boundary and :func:`marching_cubes` of the grid gives a
            closed surface.
        method: ``"auto"``, ``"reference"`` or ``"numba"`` (see :func:`signed_distance`).

    Returns:
        ``(B, R0, R1, R2)`` in the vertices' dtype and device, indexed ``[b, i (x), j (y), k (z)]``.
        Differentiable with respect to the vertices. A mesh without faces gives ``+inf``
        everywhere (with ``bounds=None`` its grid is around its vertices, or the unit cube
        ``[-0.5, 0.5]^3`` when it has none).

    Raises:
        TypeError: ``meshes`` not a ``Meshes``, ``resolution`` not an int or three ints.
        ValueError: ``resolution < 1``, bad ``bounds`` (shape, batch size, NaN/inf, ``max <= min``),
            unknown ``method``, ``"numba"`` off the CPU, or a grid needing more than
            :data:`MAX_GRID_BYTES` bytes (output and working arrays; on CUDA, more than the free
            memory): the message gives the bytes it would need.
    """
    if not isinstance(meshes, Meshes):
        raise TypeError(f"meshes must be a geo4g Meshes, got {describe(meshes)}; for one mesh use "
                        "Meshes([verts], [faces])")
    dims = _resolution(resolution)
    mesh_list, _ = _mesh_input(meshes, None)
    B = len(mesh_list)
    dtype, device = meshes.verts_packed().dtype, meshes.verts_packed().device
    _check_grid_bytes(B, dims, torch.empty((), dtype=dtype).element_size(), device)
    kernels = _resolve_method(method, device)
    with single_thread() if device.type == "cpu" else contextlib.nullcontext():
        if bounds is None:
            frames = _margin_cubes(bounding_cubes(meshes).double(), dims)
        else:
            frames = _check_bounds(bounds, B, device, per="mesh").double()
        size = (frames[:, 1] - frames[:, 0]) / torch.tensor(dims, dtype=torch.float64, device=device)
    with _glue(device, kernels):
        grids = [_sdf_grid_one(verts, tri_faces, frames[b, 0], size[b], dims, kernels)
                 for b, (verts, tri_faces) in enumerate(mesh_list)]
        if not grids:
            return torch.zeros(0, *dims, dtype=dtype, device=device)
        return torch.stack(grids)


def _glue(device: torch.device, kernels):
    """On the numba path the torch work around the kernels (gathers, signs, the differentiable
    recomputation) runs on the calling thread: small elementwise ops that torch's OpenMP threads
    slow down on a busy machine. The reference path keeps torch's threads for its blocks."""
    return single_thread() if device.type == "cpu" and kernels is not None else contextlib.nullcontext()


# ----------------------------------------------------------------------------------------- inputs
def _mesh_input(meshes, faces) -> Tuple[List[Tuple[torch.Tensor, torch.Tensor]], bool]:
    """``([(verts (V_i, 3), faces (F_i, 3) long), ...], single)``, checked."""
    if isinstance(meshes, Meshes):
        if faces is not None:
            raise ValueError(f"faces must be None when meshes is a Meshes (its own faces are used), "
                             f"got {describe(faces)}")
        return list(zip(meshes.verts_list(), [f.long() for f in meshes.faces_list()])), False
    return [_single_mesh(meshes, faces)], True


def _check_like(points: torch.Tensor, mesh_list) -> None:
    for verts, _ in mesh_list[:1]:
        if verts.dtype != points.dtype:
            raise TypeError(f"points and vertices must share one dtype, got points {points.dtype} and "
                            f"vertices {verts.dtype}")
        if verts.device != points.device:
            raise ValueError(f"points and vertices must be on one device, got points on {points.device} and "
                             f"vertices on {verts.device}")


def _resolve_method(method: str, device: torch.device):
    """The numba kernel module for the ``"numba"`` path, ``None`` for the torch path."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    numba_available = importlib.util.find_spec("numba") is not None
    if method == "reference" or (method == "auto" and (device.type != "cpu" or not numba_available)):
        return None
    if device.type != "cpu":
        raise ValueError(f"method='numba' runs on the CPU, got tensors on {device}; use 'auto' or 'reference'")
    if not numba_available:
        raise ValueError("method='numba' needs numba (pip install numba); use 'auto' or 'reference'")
    return importlib.import_module("geo4g.voxels._kernels.sdf_numba")


def _check_grid_bytes(B: int, dims, element_size: int, device: torch.device) -> None:
    voxels = dims[0] * dims[1] * dims[2]
    need = B * voxels * element_size + (voxels * WORK_BYTES_PER_VOXEL if B else 0)
    _check_bytes(need, f"a signed distance grid of {B} x {dims[0]} x {dims[1]} x {dims[2]} values needs {need} bytes "
                       f"({need / 2**30:.2f} GiB, output and working arrays)", MAX_GRID_BYTES, device)


def _margin_cubes(cubes: torch.Tensor, dims) -> torch.Tensor:
    """Bounding cubes ``(B, 2, 3)`` grown so that ``MARGIN_VOXELS`` voxels surround the box."""
    r = min(dims)
    margin = min(MARGIN_VOXELS, r // 4)
    centre = cubes.mean(1, keepdim=True)
    half = (cubes[:, 1:] - cubes[:, :1]) / 2 * (r / (r - 2 * margin))
    return torch.cat([centre - half, centre + half], 1)


# ------------------------------------------------------------------------------------------ compute
def _signed_distance_one(points: torch.Tensor, verts: torch.Tensor, faces: torch.Tensor, kernels) -> torch.Tensor:
    """``(N,)`` signed distances of ``points (N, 3)`` to one mesh."""
    if faces.shape[0] == 0:
        return torch.full((points.shape[0],), float("inf"), dtype=points.dtype, device=points.device)
    tris = verts.detach().double()[faces]
    if kernels is None:
        dist, face, winding = _reference(points.detach().double(), tris)
    else:
        dist, face, winding = (torch.from_numpy(a) for a in kernels.mesh_signed_distance(
            tris.numpy(), _is_closed(faces), points=points.detach().double().contiguous().numpy()))
    return _signed(points, verts, faces, dist, face, winding)


def _sdf_grid_one(verts: torch.Tensor, faces: torch.Tensor, lo: torch.Tensor, size: torch.Tensor, dims,
                  kernels) -> torch.Tensor:
    """``(R0, R1, R2)`` signed distances at the voxel centres of one grid."""
    device = verts.device
    if faces.shape[0] == 0:
        return torch.full(dims, float("inf"), dtype=verts.dtype, device=device)
    tris = verts.detach().double()[faces]
    needs_grad = torch.is_grad_enabled() and verts.requires_grad
    if kernels is None or needs_grad:
        axes = [lo[a] + (torch.arange(dims[a], dtype=torch.float64, device=device) + 0.5) * size[a] for a in range(3)]
        centres = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    if kernels is None:
        dist, face, winding = _reference(centres, tris)
    else:
        dist, face, winding = (torch.from_numpy(a) for a in kernels.mesh_signed_distance(
            tris.numpy(), _is_closed(faces), grid=(lo.numpy(), size.numpy(), torch.tensor(dims).numpy())))
    if needs_grad:
        return _signed(centres.to(verts.dtype), verts, faces, dist, face, winding).reshape(dims)
    return torch.where(winding.abs() > 0.5, -dist, dist).to(verts.dtype).reshape(dims)


def _is_closed(faces: torch.Tensor) -> bool:
    """Whether every directed edge ``u -> v`` of the faces is matched by as many ``v -> u`` (no boundary)."""
    edges = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    scale = int(faces.max()) + 1
    forward = (edges[:, 0] * scale + edges[:, 1]).sort().values
    backward = (edges[:, 1] * scale + edges[:, 0]).sort().values
    return bool(torch.equal(forward, backward))


def _signed(points, verts, faces, dist, face, winding) -> torch.Tensor:
    """Signed distances; recomputed in torch from the closest faces when gradients are needed."""
    inside = winding.abs() > 0.5
    if torch.is_grad_enabled() and (points.requires_grad or verts.requires_grad):
        tri = verts[faces[face]]
        closest = _closest_points(points, tri[:, 0], tri[:, 1], tri[:, 2])
        e = points - closest
        d2 = e[:, 0] ** 2 + e[:, 1] ** 2 + e[:, 2] ** 2
        # sqrt has no derivative at 0 (a query on the surface): take it as 0 there.
        positive = d2 > 0
        dist = torch.where(positive, d2.clamp_min(torch.finfo(d2.dtype).tiny).sqrt(), torch.zeros_like(d2))
        return torch.where(inside, -dist, dist)
    return torch.where(inside, -dist, dist).to(points.dtype)


def _closest_points(p: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """The closest point of each closed triangle ``(a, b, c)`` to ``p`` (all ``(..., 3)``, broadcast):
    the projection onto the plane when it falls inside the triangle, else the closest point of the
    three edges. Differentiable; zero-area triangles are their edges."""
    # Coordinates as separate tensors: torch reduces a last dimension of 3 slowly.
    p, a, b, c = (x.unbind(-1) for x in (p, a, b, c))
    n = _cross(_sub(b, a), _sub(c, a))
    nn = _dot(n, n)
    flat = nn > 0
    t = _dot(_sub(p, a), n) / torch.where(flat, nn, torch.ones_like(nn))
    proj = tuple(pk - t * nk for pk, nk in zip(p, n))
    inside = flat
    for u, v in ((a, b), (b, c), (c, a)):
        inside = inside & (_dot(_cross(_sub(v, u), _sub(proj, u)), n) >= 0)
    best, best_d2 = None, None
    for u, v in ((a, b), (b, c), (c, a)):
        d = _sub(v, u)
        dd = _dot(d, d)
        s = (_dot(_sub(p, u), d) / torch.where(dd > 0, dd, torch.ones_like(dd))).clamp(0, 1)
        q = tuple(uk + s * dk for uk, dk in zip(u, d))
        e = _sub(p, q)
        d2 = _dot(e, e)
        if best is None:
            best, best_d2 = q, d2
        else:
            closer = d2 < best_d2
            best = tuple(torch.where(closer, qk, bk) for qk, bk in zip(q, best))
            best_d2 = torch.where(closer, d2, best_d2)
    return torch.stack([torch.where(inside, pk, bk) for pk, bk in zip(proj, best)], -1)


def _sub(u, v):
    return tuple(uk - vk for uk, vk in zip(u, v))


def _dot(u, v):
    return u[0] * v[0] + u[1] * v[1] + u[2] * v[2]


def _cross(u, v):
    return (u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0])


def _solid_angles(p: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Signed solid angles of triangles ``(a, b, c)`` seen from ``p`` (broadcast ``(..., 3)``)."""
    p, a, b, c = (x.unbind(-1) for x in (p, a, b, c))
    a, b, c = _sub(a, p), _sub(b, p), _sub(c, p)
    la, lb, lc = (_dot(x, x).sqrt() for x in (a, b, c))
    det = _dot(a, _cross(b, c))
    denom = la * lb * lc + _dot(a, b) * lc + _dot(a, c) * lb + _dot(b, c) * la
    return 2 * torch.atan2(det, denom)


def _reference(points: torch.Tensor, tris: torch.Tensor):
    """Blocked torch: ``(dist (N,), face (N,), winding (N,))`` of ``points (N, 3)`` to ``tris (F, 3, 3)``."""
    N, F = points.shape[0], tris.shape[0]
    budget = BLOCK_PAIRS_CPU if points.device.type == "cpu" else BLOCK_PAIRS
    rows = max(1, budget // F)
    dist = torch.empty(N, dtype=torch.float64, device=points.device)
    face = torch.empty(N, dtype=torch.long, device=points.device)
    winding = torch.empty(N, dtype=torch.float64, device=points.device)
    a, b, c = tris[None, :, 0], tris[None, :, 1], tris[None, :, 2]
    for r0 in range(0, N, rows):
        p = points[r0 : r0 + rows, None]
        e = p - _closest_points(p, a, b, c)
        d2 = e[..., 0] ** 2 + e[..., 1] ** 2 + e[..., 2] ** 2
        best, index = d2.min(1)
        dist[r0 : r0 + rows] = best.sqrt()
        face[r0 : r0 + rows] = index
        winding[r0 : r0 + rows] = _solid_angles(p, a, b, c).sum(1) / (4 * math.pi)
    return dist, face, winding
