"""Voxelisation: meshes and point clouds to occupancy grids, and grids back to points and meshes.

Grid conventions (shared by all of :mod:`geo4g.voxels`):

- a grid is a bool tensor indexed ``grid[b, i, j, k]``, ``i`` along ``x``, ``j`` along ``y``,
  ``k`` along ``z``; ``resolution`` is an int ``R`` (``(R, R, R)`` voxels) or three ints
  ``(R0, R1, R2)``;
- ``bounds`` is a float tensor ``(2, 3) = [[xmin, ymin, zmin], [xmax, ymax, zmax]]`` for the whole
  batch, or ``(B, 2, 3)`` per item. With ``size = (max - min) / resolution`` per axis, voxel
  ``(i, j, k)`` covers ``min + (i, j, k) * size .. min + (i + 1, j + 1, k + 1) * size`` and its
  centre is ``min + ((i, j, k) + 0.5) * size``;
- ``bounds=None`` when voxelising means each item's own bounding cube
  (:func:`bounding_cubes`); when going from a grid back to geometry, the unit cube
  ``[-0.5, 0.5]^3`` (where :class:`geo4g.data.ProceduralShapes` live).

Mesh voxelisation, one public function and several implementations (``method``) that give the
same grid (the exact tests are formed in different orders, so they could differ only where a
test is decided by the last bit of float64 rounding):

- ``"reference"``: plain torch, every voxel against every triangle (the test oracle; small grids);
- ``"torch"``: torch over blocks of candidate (triangle, voxel) pairs, any device; the CUDA path;
- ``"numba"``: compiled kernels on all CPU cores (``_kernels/voxelize_numba.py``), the CPU path.

The surface test is exact: a voxel is marked when its closed box and a closed triangle meet
(the separating axis test of Akenine-Moller: the three box normals, the triangle's plane and
the nine edge x box-axis cross products), in float64 voxel units. A triangle that only touches
a voxel's face, edge or corner marks it; a triangle lying in a plane between two layers of
voxels marks both layers. Degenerate triangles (segments and points) mark the voxels they
touch. Inside tests cast rays along ``+z`` through voxel centres (see ``fill_rule``).
"""
from __future__ import annotations

import importlib
import numbers
from typing import NamedTuple, Optional, Sequence, Tuple, Union

import torch

from geo4g._threads import run_chunks, single_thread
from geo4g.structures.checks import check_faces, check_finite, check_lengths, check_tensor, describe
from geo4g.structures.meshes import Meshes
from geo4g.structures.pointclouds import Pointclouds

__all__ = [
    "VoxelPoints",
    "bounding_cubes",
    "occupancy_to_mesh",
    "voxel_centers",
    "voxelize_mesh",
    "voxelize_points",
    "voxels_to_points",
]

METHODS = ("auto", "reference", "torch", "numba")
MODES = ("surface", "solid", "inside")
FILL_RULES = ("parity", "winding")
#: Largest grid (bytes of the bool output, one per voxel) a call will allocate.
MAX_GRID_BYTES = 1 << 33
#: Bounding cubes are this much (relative) larger than the bounding box, so that rounding never
#: puts a vertex on the box's faces outside the grid.
BOUNDS_PADDING = 1e-6
#: Smallest side of a bounding cube, in units of the dtype's epsilon times ``max(1, |centre|)``
#: (an item that is a single point, or flat in every axis, still gets a grid with distinct faces).
MIN_SIDE_EPS = 64
#: Candidate (triangle, voxel) pairs per block of the ``"torch"`` path on the CPU / other devices.
BLOCK_PAIRS_CPU = 1 << 16
BLOCK_PAIRS = 1 << 22
#: Per-column crossing counters (int32) the ``"torch"`` inside test holds at once, on the CPU / other
#: devices: meshes are taken in groups of at most this many ``B * R0 * R1 * (R2 + 1)``.
STEP_ELEMENTS_CPU = 1 << 24
STEP_ELEMENTS = 1 << 27
#: The reference compares every voxel with blocks of triangles of at most this many pairs.
REFERENCE_BLOCK_PAIRS = 1 << 18
#: Along its column axis (the largest normal component) the plane's slab of a triangle holds at
#: most 4 voxel centres; the ``"torch"`` path tests 6, one of slack on each side for rounding.
COLUMN_CANDIDATES = 6
#: Triangles with a vertex this far from the grid's corner (voxel units) round their slab's ends by
#: more than a voxel: the ``"torch"`` path tests their whole columns.
FAR_COORDINATE = 1e12
#: Vertices farther than this from the grid's corner (voxel units) are refused: the exact tests'
#: products would lose all precision (and overflow towards ``1e154``).
MAX_VOXEL_COORDINATE = 2.0 ** 60

Resolution = Union[int, Sequence[int]]


class VoxelPoints(NamedTuple):
    """``points (B, P, 3)`` occupied voxel centres padded with zeros, ``lengths (B,)`` long."""

    points: torch.Tensor
    lengths: torch.Tensor


# ----------------------------------------------------------------------------------------- public
def voxelize_mesh(meshes, faces: Optional[torch.Tensor] = None, resolution: Resolution = 32,
                  mode: str = "surface", bounds: Optional[torch.Tensor] = None, fill_rule: str = "parity",
                  method: str = "auto") -> torch.Tensor:
    """Occupancy grids of triangle meshes.

    Args:
        meshes: a :class:`geo4g.structures.Meshes` of ``B`` meshes, or the vertices ``(V, 3)`` of a
            single mesh (then ``faces`` is required).
        faces: ``(F, 3)`` integer vertex indices of the single mesh; ``None`` with ``Meshes``.
        resolution: voxels per axis, ``R`` or ``(R0, R1, R2)``, each ``>= 1``.
        mode: ``"surface"``: every voxel whose closed box a triangle meets (exact);
            ``"inside"``: every voxel whose centre is inside the mesh (``fill_rule``);
            ``"solid"``: both.
        bounds: ``(2, 3)`` or ``(B, 2, 3)`` float (see the module docstring), or ``None`` for each
            mesh's bounding cube (:func:`bounding_cubes`: the cube around the bounding box of its
            vertices, centred on it, side ``(1 + 1e-6)`` times the largest extent). Parts of a mesh
            outside the bounds are cut off; they still count for the inside test.
        fill_rule: how ``"inside"`` / ``"solid"`` decide, from the ray along ``+z`` through each
            column of voxel centres: ``"parity"``: inside where an odd number of triangles is
            crossed below the centre; ``"winding"``: where the crossings below, counted ``+1``
            where the ray enters (triangle facing ``-z``) and ``-1`` where it leaves, do not sum
            to 0. ``"parity"`` needs closed meshes and ignores orientation; ``"winding"`` needs
            closed, consistently outward-oriented meshes and also fills the overlap of parts
            that intersect each other (as in the procedural shapes, which are unions of closed
            parts). Rays through edges and vertices count each crossing once (a consistent
            symbolic perturbation of the ray); a centre exactly on a triangle counts as above it
            (such a voxel is a surface voxel anyway). On an open mesh the fill is defined only
            where it is closed: a column whose crossings add up to an odd count (parity) or to a
            non-zero sum (winding) passes through a hole and fills nothing.
        method: ``"auto"`` (default: ``"numba"`` on the CPU when numba imports, else
            ``"torch"``), ``"reference"``, ``"torch"`` or ``"numba"`` (CPU tensors only). All give
            the same grid; the choice is for tests and benchmarks.

    Returns:
        ``(B, R0, R1, R2)`` bool on the vertices' device, ``(R0, R1, R2)`` for a single mesh (not
        differentiable). A mesh without faces (or a batch without meshes) gives empty grids.

    Raises:
        TypeError: ``meshes`` neither ``Meshes`` nor a tensor, non-float vertices, non-integer
            faces or resolution.
        ValueError: NaN/inf vertices (naming ``verts``), vertices more than
            ``MAX_VOXEL_COORDINATE`` voxels from the grid, wrong shapes, face indices out of range,
            ``resolution < 1``, bad ``bounds`` (shape, batch size, NaN, ``max <= min``), an unknown
            ``mode`` / ``fill_rule`` / ``method``, ``method="numba"`` off the CPU, or a grid of more
            than ``MAX_GRID_BYTES`` bytes (or, on CUDA, more than the free memory): the message
            gives the bytes it would need.
    """
    dims = _resolution(resolution)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if fill_rule not in FILL_RULES:
        raise ValueError(f"fill_rule must be one of {FILL_RULES}, got {fill_rule!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    with single_thread():
        verts, faces_packed, face_mesh, vert_mesh, B, single = _mesh_batch(meshes, faces)
        device = verts.device
        _check_grid_bytes(B, dims, device)
        lo, size = _lo_size(bounds, verts, vert_mesh, B, dims, device)
        verts_vox = ((verts.double() - lo[vert_mesh]) / size[vert_mesh]).contiguous()
        if verts_vox.numel() and float(verts_vox.abs().max()) > MAX_VOXEL_COORDINATE:
            raise ValueError(f"verts must lie within {MAX_VOXEL_COORDINATE:.3g} voxels of the grid, got a vertex "
                             f"{float(verts_vox.abs().max()):.3g} voxels away; pass bounds that fit the mesh")
    if method == "auto":
        method = "numba" if device.type == "cpu" and _numba_kernels() is not None else "torch"
    if method == "numba" and device.type != "cpu":
        raise ValueError(f"method='numba' needs CPU tensors, got vertices on {device}")
    face_start = torch.cat([torch.zeros(1, dtype=torch.long, device=device),
                            torch.bincount(face_mesh, minlength=B).cumsum(0)])
    grid = _voxelize(verts_vox, faces_packed, face_mesh, face_start, B, dims, mode, fill_rule == "winding", method)
    return grid[0] if single else grid


def voxelize_points(points, resolution: Resolution = 32, lengths: Optional[torch.Tensor] = None,
                    bounds: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Occupancy grids of point clouds: a voxel is occupied when a point falls in it.

    Args:
        points: ``(B, N, 3)`` float padded clouds, a :class:`geo4g.structures.Pointclouds`
            (then ``lengths`` must be ``None``), or one cloud ``(N, 3)``.
        resolution: voxels per axis, ``R`` or ``(R0, R1, R2)``, each ``>= 1``.
        lengths: ``(B,)`` integer, the valid points of each padded cloud (default: all ``N``).
            Padding points are ignored (they may hold anything, NaN included).
        bounds: ``(2, 3)`` or ``(B, 2, 3)`` float, or ``None`` for each cloud's bounding cube
            (:func:`bounding_cubes`, so that every point falls in the grid).

    Returns:
        ``(B, R0, R1, R2)`` bool on the points' device (``(R0, R1, R2)`` for one ``(N, 3)`` cloud;
        not differentiable). Voxels are half-open, ``[min + i * size, min + (i + 1) * size)``: a point on a face
        between two voxels goes to the upper one, except on the bounds' maximum faces, which
        belong to the last voxel. Points outside the bounds are dropped. An empty cloud gives an
        empty grid.

    Raises:
        TypeError / ValueError: naming the argument, for wrong shapes or dtypes, NaN/inf in valid
        points, bad lengths or bounds, ``resolution < 1`` or a grid of more than
        ``MAX_GRID_BYTES`` bytes.
    """
    dims = _resolution(resolution)
    with single_thread():
        pts, lengths, single = _cloud_batch(points, lengths)
        B, N = pts.shape[0], pts.shape[1]
        device = pts.device
        _check_grid_bytes(B, dims, device)
        valid = torch.arange(N, device=device)[None, :] < lengths[:, None]
        if bounds is None:
            bounds = bounding_cubes(pts, lengths)
        bounds = _check_bounds(bounds, B, device).double()
        lo, hi = bounds[:, 0], bounds[:, 1]
        R = torch.tensor(dims, device=device)
        size = (hi - lo) / R.double()
        p = torch.where(valid[..., None], pts.double(), lo[:, None])
        keep = valid & ((p >= lo[:, None]) & (p <= hi[:, None])).all(-1)
        cell = torch.minimum(((p - lo[:, None]) / size[:, None]).floor().long().clamp_min(0), R - 1)
        flat = (torch.arange(B, device=device)[:, None] * R[0] + cell[..., 0]) * R[1] + cell[..., 1]
        flat = flat * R[2] + cell[..., 2]
        grid = torch.zeros(B * dims[0] * dims[1] * dims[2], dtype=torch.bool, device=device)
        grid[flat[keep]] = True
    grid = grid.view(B, *dims)
    return grid[0] if single else grid


def voxels_to_points(grid: torch.Tensor, bounds: Optional[torch.Tensor] = None) -> VoxelPoints:
    """The centres of the occupied voxels of each grid.

    Args:
        grid: ``(B, R0, R1, R2)`` bool, or one grid ``(R0, R1, R2)`` (read as ``B = 1``).
            Threshold other occupancies first, e.g. ``grid > 0.5``.
        bounds: ``(2, 3)`` or ``(B, 2, 3)`` float, or ``None`` for the unit cube ``[-0.5, 0.5]^3``.

    Returns:
        ``VoxelPoints(points (B, P, 3), lengths (B,))``: the centres of the occupied voxels of each
        grid in index order (``i``, then ``j``, then ``k``), padded with zeros to the largest
        count ``P``; in the dtype of ``bounds`` (float32 without), on the grid's device. Not
        differentiable (with respect to ``bounds`` either).

    Raises:
        TypeError: a non-bool grid. ValueError: a wrong rank, bad bounds.
    """
    grid = _check_grid(grid)
    B, dims = grid.shape[0], tuple(grid.shape[1:])
    with single_thread():
        lo, size, dtype = _grid_frame(bounds, B, dims, grid.device)
        occupied = grid.nonzero()
        lengths = torch.bincount(occupied[:, 0], minlength=B)
        first = lengths.cumsum(0) - lengths
        slot = torch.arange(occupied.shape[0], device=grid.device) - first[occupied[:, 0]]
        centres = lo[occupied[:, 0]] + (occupied[:, 1:].double() + 0.5) * size[occupied[:, 0]]
        longest = int(lengths.max()) if B else 0
        points = torch.zeros(B, longest, 3, dtype=dtype, device=grid.device)
        points[occupied[:, 0], slot] = centres.to(dtype)
    return VoxelPoints(points, lengths)


def occupancy_to_mesh(grid: torch.Tensor, bounds: Optional[torch.Tensor] = None) -> Meshes:
    """The boundary of the occupied voxels as triangle meshes.

    Every square face between an occupied voxel and an empty one (or the outside of the grid)
    becomes two triangles, oriented counter-clockwise seen from outside the occupied region (so
    normals point out). Vertices are voxel corners, shared between faces: each mesh is closed
    and consistently oriented (every directed edge ``(a, b)`` is matched by as many ``(b, a)``),
    and its enclosed volume is the number of occupied voxels times the voxel volume. Where two
    occupied voxels meet only along an edge or at a corner, that edge or vertex is shared by
    the faces of both (four faces on such an edge), so the surface is not 2-manifold there.

    Args:
        grid: ``(B, R0, R1, R2)`` bool, or one grid ``(R0, R1, R2)`` (read as ``B = 1``).
        bounds: ``(2, 3)`` or ``(B, 2, 3)`` float, or ``None`` for the unit cube ``[-0.5, 0.5]^3``.

    Returns:
        ``Meshes`` of ``B`` meshes in the dtype of ``bounds`` (float32 without) on the grid's
        device; an empty grid gives a mesh with no vertices and no faces.

    Raises:
        TypeError: a non-bool grid. ValueError: a wrong rank, bad bounds.
    """
    grid = _check_grid(grid)
    B, dims = grid.shape[0], tuple(grid.shape[1:])
    device = grid.device
    with single_thread():
        lo, size, dtype = _grid_frame(bounds, B, dims, device)
        corner_dims = torch.tensor([d + 1 for d in dims], device=device)
        padded = torch.zeros(B, *[d + 2 for d in dims], dtype=torch.bool, device=device)
        padded[:, 1:-1, 1:-1, 1:-1] = grid
        verts_list, faces_list = [], []
        for b in range(B):
            corners = []
            for axis in range(3):
                below = padded[b].narrow(axis, 0, dims[axis] + 1)
                above = padded[b].narrow(axis, 1, dims[axis] + 1)
                crop = [slice(1, d + 1) for d in dims]
                crop[axis] = slice(None)
                below, above = below[tuple(crop)], above[tuple(crop)]
                for sign, face in ((1, below & ~above), (-1, above & ~below)):
                    cell = face.nonzero()
                    if cell.shape[0]:
                        corners.append(_quad_triangles(cell, axis, sign))
            if corners:
                lattice = torch.cat(corners)  # (T, 3, 3) corner indices
                key = (lattice[..., 0] * corner_dims[1] + lattice[..., 1]) * corner_dims[2] + lattice[..., 2]
                unique, inverse = torch.unique(key.reshape(-1), return_inverse=True)
                ijk = torch.stack([unique // (corner_dims[1] * corner_dims[2]),
                                   unique // corner_dims[2] % corner_dims[1], unique % corner_dims[2]], 1)
                verts_list.append((lo[b] + ijk.double() * size[b]).to(dtype))
                faces_list.append(inverse.view(-1, 3))
            else:
                verts_list.append(torch.zeros(0, 3, dtype=dtype, device=device))
                faces_list.append(torch.zeros(0, 3, dtype=torch.long, device=device))
        return Meshes(verts_list, faces_list)


def voxel_centers(resolution: Resolution, bounds: Optional[torch.Tensor] = None,
                  dtype: Optional[torch.dtype] = None, device=None) -> torch.Tensor:
    """The centres of the voxels of a grid.

    Args:
        resolution: ``R`` or ``(R0, R1, R2)``, each ``>= 1``.
        bounds: ``(2, 3)`` float (one frame) or ``(B, 2, 3)`` (one per item), or ``None`` for the
            unit cube ``[-0.5, 0.5]^3``.
        dtype, device: of the result when ``bounds`` is ``None`` (default float32 on the CPU);
            otherwise those of ``bounds``.

    Returns:
        ``(R0, R1, R2, 3)``, or ``(B, R0, R1, R2, 3)`` for ``(B, 2, 3)`` bounds: entry
        ``[..., i, j, k, :]`` is ``min + ((i, j, k) + 0.5) * size``.

    Raises:
        TypeError / ValueError: a bad resolution or bounds (see :func:`voxelize_mesh`).
    """
    dims = _resolution(resolution)
    if bounds is None:
        bounds = _unit_cube(dtype or torch.float32, torch.device(device) if device is not None else torch.device("cpu"))
    batched = isinstance(bounds, torch.Tensor) and bounds.dim() == 3
    frame = _check_bounds(bounds, bounds.shape[0] if batched else 1, bounds.device if isinstance(
        bounds, torch.Tensor) else None)
    lo, hi = frame[:, 0].double(), frame[:, 1].double()
    size = (hi - lo) / torch.tensor(dims, dtype=torch.float64, device=frame.device)
    axes = [torch.arange(d, dtype=torch.float64, device=frame.device) + 0.5 for d in dims]
    cell = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1)  # (R0, R1, R2, 3)
    centres = (lo[:, None, None, None] + cell[None] * size[:, None, None, None]).to(frame.dtype)
    return centres if batched else centres[0]


def bounding_cubes(x, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The bounds ``bounds=None`` stands for in :func:`voxelize_mesh` / :func:`voxelize_points`.

    Each item's cube is centred on the bounding box of its points (a mesh's vertices, used by a
    face or not), with side ``(1 + BOUNDS_PADDING)`` times the box's largest extent, and at least
    ``MIN_SIDE_EPS`` times the dtype's epsilon times ``max(1, largest |centre coordinate|)``, so an
    item that is a single point still gets a small cube around it. An item without points gets
    the unit cube ``[-0.5, 0.5]^3``.

    Args:
        x: a ``Meshes``, a ``Pointclouds``, padded points ``(B, N, 3)`` (with ``lengths``) or one
            cloud ``(N, 3)``.
        lengths: ``(B,)`` integer valid points of padded input (default: all).

    Returns:
        ``(B, 2, 3)`` in the points' dtype and device (``(2, 3)`` for one ``(N, 3)`` cloud).
    """
    if isinstance(x, Meshes):
        if lengths is not None:
            raise ValueError(f"lengths must be None for Meshes input, got {describe(lengths)}")
        pts, item = x.verts_packed(), x.verts_packed_to_mesh_idx()
        B, single = len(x), False
        if not B:
            return torch.zeros(0, 2, 3, dtype=pts.dtype, device=pts.device)
    else:
        padded, lengths, single = _cloud_batch(x, lengths)
        B, N = padded.shape[0], padded.shape[1]
        valid = torch.arange(N, device=padded.device)[None, :] < lengths[:, None]
        pts, item = padded[valid], valid.nonzero()[:, 0]
    cubes = _cubes(pts.detach(), item, B)
    return cubes[0] if single else cubes


# ----------------------------------------------------------------------------------------- inputs
def _resolution(resolution) -> Tuple[int, int, int]:
    values = (resolution,) * 3 if isinstance(resolution, numbers.Integral) else resolution
    if isinstance(values, torch.Tensor):
        values = values.tolist()
    if not isinstance(values, (list, tuple)) or len(values) != 3 or any(
            isinstance(r, bool) or not isinstance(r, numbers.Integral) for r in values):
        raise TypeError(f"resolution must be an int or three ints (R0, R1, R2), got {resolution!r}")
    values = tuple(int(r) for r in values)
    if min(values) < 1:
        raise ValueError(f"resolution must be >= 1 along every axis, got {values}")
    return values


def _check_grid_bytes(B: int, dims: Tuple[int, int, int], device: torch.device) -> None:
    need = B * dims[0] * dims[1] * dims[2]
    _check_bytes(need, f"a grid of {B} x {dims[0]} x {dims[1]} x {dims[2]} voxels needs {need} bytes "
                       f"({need / 2**30:.1f} GiB)", MAX_GRID_BYTES, device)


def _check_bytes(need: int, what_needs: str, limit: int, device: torch.device) -> None:
    """``ValueError`` starting with ``what_needs`` when ``need`` bytes are more than ``limit`` (the
    module's ``MAX_GRID_BYTES``) or, on CUDA, more than the free memory."""
    if need > limit:
        raise ValueError(f"{what_needs}, more than the limit MAX_GRID_BYTES = {limit}; lower the resolution or "
                         "split the batch")
    if device.type == "cuda":
        free = torch.cuda.mem_get_info(device)[0]
        if need > free:
            raise ValueError(f"{what_needs}, more than the {free} bytes free on {device}")


def _mesh_batch(meshes, faces):
    """``(verts (V, 3), faces (F, 3) packed, face_mesh (F,), vert_mesh (V,), B, single)``."""
    if isinstance(meshes, Meshes):
        if faces is not None:
            raise ValueError("faces must be None when meshes is a Meshes (its own faces are used), "
                             f"got {describe(faces)}")
        verts = meshes.verts_packed().detach()
        device = verts.device
        return (verts, meshes.faces_packed().to(device), meshes.faces_packed_to_mesh_idx().to(device),
                meshes.verts_packed_to_mesh_idx().to(device), len(meshes), False)
    verts, faces = _single_mesh(meshes, faces)
    verts = verts.detach()
    zeros = torch.zeros
    return (verts, faces, zeros(faces.shape[0], dtype=torch.long, device=verts.device),
            zeros(verts.shape[0], dtype=torch.long, device=verts.device), 1, True)


def _single_mesh(verts, faces) -> Tuple[torch.Tensor, torch.Tensor]:
    """One mesh given as tensors, checked: ``(verts (V, 3), faces (F, 3) long)`` (``verts`` as given)."""
    if not isinstance(verts, torch.Tensor):
        raise TypeError(f"meshes must be a geo4g Meshes or the vertices (V, 3) of one mesh, got {describe(verts)}")
    check_tensor(verts, "verts", ndim=2, last_dim=3, kind="float", shape_hint="(V, 3)")
    if faces is None:
        raise TypeError("faces (F, 3) must be given with a single mesh's vertices (V, 3), got None")
    check_faces(faces, "faces", verts.shape[0])
    if faces.device != verts.device:
        raise ValueError(f"faces must be on the device of verts ({verts.device}), got {faces.device}")
    check_finite(verts.detach(), "verts")
    return verts, faces.long()


def _cloud_batch(points, lengths):
    """``(points (B, N, 3), lengths (B,) long, single)``, checked: finite valid points."""
    if isinstance(points, Pointclouds):
        if lengths is not None:
            raise ValueError(f"lengths must be None for Pointclouds input, got {describe(lengths)}")
        return points.points_padded().detach(), points.num_points_per_cloud(), False
    check_tensor(points, "points", ndim=(2, 3), last_dim=3, kind="float", shape_hint="(B, N, 3) or (N, 3)")
    single = points.dim() == 2
    if single:
        if lengths is not None:
            raise ValueError(f"lengths must be None for one cloud (N, 3), got {describe(lengths)}")
        points = points[None]
    B, N = points.shape[0], points.shape[1]
    if lengths is None:
        lengths = torch.full((B,), N, dtype=torch.long, device=points.device)
    else:
        lengths = check_lengths(lengths, "lengths", B, N, device=points.device)
    valid = torch.arange(N, device=points.device)[None, :] < lengths[:, None]
    check_finite(points[valid], "points (valid rows)")
    return points.detach(), lengths, single


def _check_grid(grid) -> torch.Tensor:
    check_tensor(grid, "grid", ndim=(3, 4), shape_hint="(B, R0, R1, R2) or (R0, R1, R2)")
    if grid.dtype != torch.bool:
        raise TypeError(f"grid must be a bool occupancy tensor, got dtype {grid.dtype}; threshold it first, "
                        "e.g. grid > 0.5")
    return grid[None] if grid.dim() == 3 else grid


def _unit_cube(dtype, device) -> torch.Tensor:
    return torch.tensor([[-0.5] * 3, [0.5] * 3], dtype=dtype, device=device)


def _check_bounds(bounds, B: int, device, per: str = "item") -> torch.Tensor:
    """``bounds`` as ``(B, 2, 3)`` on ``device`` (its own dtype), checked; ``per`` names what the batch
    holds in the messages ("one (2, 3) frame per item")."""
    check_tensor(bounds, "bounds", ndim=(2, 3), kind="float", shape_hint="(2, 3) or (B, 2, 3)")
    if tuple(bounds.shape[-2:]) != (2, 3):
        raise ValueError(f"bounds must have shape (2, 3) or (B, 2, 3) = [[xmin, ymin, zmin], [xmax, ymax, zmax]], "
                         f"got shape {tuple(bounds.shape)}")
    if bounds.dim() == 3 and bounds.shape[0] != B:
        raise ValueError(f"bounds must have one (2, 3) frame per {per} (B={B}) or a single (2, 3), "
                         f"got shape {tuple(bounds.shape)}")
    check_finite(bounds, "bounds")
    bounds = bounds.detach().to(device) if device is not None else bounds.detach()
    flat = bounds.reshape(-1, 2, 3)
    bad = ~(flat[:, 1] > flat[:, 0])
    if bool(bad.any()):
        item, axis = (int(v) for v in bad.nonzero()[0])
        raise ValueError(f"bounds must have max > min along every axis, got min {flat[item, 0, axis].item()} and "
                         f"max {flat[item, 1, axis].item()} along axis {axis} (item {item})")
    return flat.expand(B, 2, 3)


def _cubes(pts: torch.Tensor, item: torch.Tensor, B: int) -> torch.Tensor:
    """``(B, 2, 3)`` bounding cubes (see :func:`bounding_cubes`) of ``pts (P, 3)`` belonging to items ``item (P,)``."""
    p = pts.double()
    index = item[:, None].expand(-1, 3)
    mn = torch.full((B, 3), float("inf"), dtype=torch.float64, device=pts.device).scatter_reduce(0, index, p, "amin")
    mx = torch.full((B, 3), float("-inf"), dtype=torch.float64, device=pts.device).scatter_reduce(0, index, p, "amax")
    empty = torch.bincount(item, minlength=B) == 0
    mn = torch.where(empty[:, None], -0.5, mn)
    mx = torch.where(empty[:, None], 0.5, mx)
    centre = (mn + mx) / 2
    floor = MIN_SIDE_EPS * torch.finfo(pts.dtype).eps * centre.abs().amax(1).clamp_min(1.0)
    side = torch.maximum((mx - mn).amax(1) * (1 + BOUNDS_PADDING), floor)
    half = torch.where(empty, 0.5, side / 2)[:, None]
    return torch.stack([centre - half, centre + half], 1).to(pts.dtype)


def _lo_size(bounds, verts, vert_mesh, B, dims, device):
    """float64 ``(lo (B, 3), size (B, 3))`` of the meshes' grids."""
    if bounds is None:
        bounds = _cubes(verts, vert_mesh, B)
    frame = _check_bounds(bounds, B, device).double()
    size = (frame[:, 1] - frame[:, 0]) / torch.tensor(dims, dtype=torch.float64, device=device)
    return frame[:, 0], size


def _grid_frame(bounds, B, dims, device):
    """``(lo (B, 3), size (B, 3))`` float64 and the output dtype for grids read back into space."""
    if bounds is None:
        bounds = _unit_cube(torch.float32, device)
    frame = _check_bounds(bounds, B, device)
    lo, hi = frame[:, 0].double(), frame[:, 1].double()
    return lo, (hi - lo) / torch.tensor(dims, dtype=torch.float64, device=device), frame.dtype


def _quad_triangles(cell: torch.Tensor, axis: int, sign: int) -> torch.Tensor:
    """``(2 Q, 3, 3)`` corner indices of the two triangles of each boundary square ``cell (Q, 3)``
    (the corner with the lowest indices; ``cell[:, axis]`` is the plane), facing ``sign * axis``."""
    a1, a2 = torch.zeros(3, dtype=torch.long, device=cell.device), torch.zeros(3, dtype=torch.long, device=cell.device)
    a1[(axis + 1) % 3] = 1
    a2[(axis + 2) % 3] = 1
    c00, c10, c11, c01 = cell, cell + a1, cell + a1 + a2, cell + a2
    # (a1, a2, axis) is right-handed, so (c00, c10, c11) faces +axis
    if sign > 0:
        tris = torch.stack([torch.stack([c00, c10, c11], 1), torch.stack([c00, c11, c01], 1)], 1)
    else:
        tris = torch.stack([torch.stack([c00, c11, c10], 1), torch.stack([c00, c01, c11], 1)], 1)
    return tris.reshape(-1, 3, 3)


# ----------------------------------------------------------------------------------------- dispatch
def _numba_kernels():
    """The compiled module ``geo4g.voxels._kernels.voxelize_numba``, or ``None`` without numba."""
    try:
        return importlib.import_module("geo4g.voxels._kernels.voxelize_numba")
    except ImportError:
        return None


def _voxelize(verts, faces, face_mesh, face_start, B, dims, mode, winding, method):
    """``(B, R0, R1, R2)`` bool from ``verts (V, 3)`` float64 in voxel units and packed ``faces (F, 3)``
    of meshes ``face_mesh (F,)`` (``face_start (B + 1,)``: each mesh's first face)."""
    G = dims[0] * dims[1] * dims[2]
    device = verts.device
    if method == "numba":
        kernels = _numba_kernels()
        if kernels is None:
            raise ImportError("method='numba' needs numba: pip install 'geo4g[numba]' (or pip install numba)")
        import numpy as np

        grid = torch.zeros(B, G, dtype=torch.uint8)
        out, v, f = grid.numpy(), verts.numpy(), faces.contiguous().numpy()
        shape = np.array(dims, dtype=np.int64)
        if mode != "inside":
            run_chunks(kernels.surface_voxels, f.shape[0], kernels.MIN_CHUNK_TRIANGLES, v, f, face_mesh.numpy(),
                       shape, out.reshape(-1))
        if mode != "surface":
            run_chunks(kernels.inside_voxels, B, 1, v, f, face_start.numpy(), shape, winding, out)
        return grid.view(torch.bool).view(B, *dims)
    grid = torch.zeros(B * G, dtype=torch.bool, device=device)
    tri = verts[faces]
    if method == "reference":
        for b, (f0, f1) in enumerate(zip(face_start[:-1].tolist(), face_start[1:].tolist())):
            if mode != "inside":
                grid[b * G:(b + 1) * G] |= _surface_reference(tri[f0:f1], dims)
            if mode != "surface":
                grid[b * G:(b + 1) * G] |= _inside_reference(tri[f0:f1], dims, winding)
        return grid.view(B, *dims)
    if mode != "inside":
        _surface_torch(tri, face_mesh, dims, grid)
    if mode != "surface":
        group = max(1, (STEP_ELEMENTS_CPU if device.type == "cpu" else STEP_ELEMENTS) // (
            dims[0] * dims[1] * (dims[2] + 1)))
        for b0 in range(0, B, group):
            b1 = min(B, b0 + group)
            f0, f1 = int(face_start[b0]), int(face_start[b1])
            grid[b0 * G:b1 * G] |= _inside_torch(tri[f0:f1], face_mesh[f0:f1] - b0, b1 - b0, dims, winding)
    return grid.view(B, *dims)


# ----------------------------------------------------------------------------------------- torch paths
def triangle_box_overlap(tri: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """Whether triangle ``tri[n] (3, 3)`` meets the closed voxel ``cells[n]``, in voxel units.

    ``tri: (N, 3, 3)`` float64 (voxel ``(i, j, k)`` is ``[i, i + 1] x [j, j + 1] x [k, k + 1]``),
    ``cells: (N, 3)`` long; returns ``(N,)`` bool. The separating axis test with all 13 axes,
    relative to the voxel centre; a zero axis (degenerate triangle) never separates, which
    leaves the exact test for a segment or a point.
    """
    half = 0.5
    v = tri - (cells.to(tri.dtype) + half)[:, None, :]
    hit = (v.amin(1) <= half).all(1) & (v.amax(1) >= -half).all(1)
    edges = torch.stack([v[:, 1] - v[:, 0], v[:, 2] - v[:, 1], v[:, 0] - v[:, 2]], 1)  # (N, 3, 3)
    normal = torch.linalg.cross(edges[:, 0], edges[:, 1], dim=-1)
    hit &= (normal * v[:, 0]).sum(1).abs() <= half * normal.abs().sum(1)
    unit = torch.eye(3, dtype=tri.dtype, device=tri.device)
    axes = torch.linalg.cross(edges[:, :, None, :].expand(-1, 3, 3, 3), unit.expand(v.shape[0], 3, 3, 3), dim=-1)
    axes = axes.reshape(-1, 9, 3)
    proj = (axes[:, :, None, :] * v[:, None, :, :]).sum(-1)  # (N, 9, 3): the vertices on each axis
    radius = half * axes.abs().sum(-1)
    hit &= ((proj.amin(-1) <= radius) & (proj.amax(-1) >= -radius)).all(1)
    return hit


def _surface_reference(tri: torch.Tensor, dims) -> torch.Tensor:
    """``(R0 * R1 * R2,)`` bool: every voxel against every triangle."""
    G = dims[0] * dims[1] * dims[2]
    cells = torch.stack(torch.meshgrid(*[torch.arange(d, device=tri.device) for d in dims], indexing="ij"),
                        -1).reshape(G, 3)
    out = torch.zeros(G, dtype=torch.bool, device=tri.device)
    step = max(1, REFERENCE_BLOCK_PAIRS // G)
    for f0 in range(0, tri.shape[0], step):
        block = tri[f0:f0 + step]
        hit = triangle_box_overlap(block.repeat_interleave(G, 0), cells.repeat(block.shape[0], 1))
        out |= hit.view(block.shape[0], G).any(0)
    return out


def _surface_torch(tri: torch.Tensor, mesh: torch.Tensor, dims, grid: torch.Tensor) -> None:
    """Mark in ``grid (B * R0 * R1 * R2,)`` the voxels met by triangles ``tri (F, 3, 3)`` of meshes
    ``mesh (F,)``, from candidate (triangle, voxel) pairs: per triangle, the columns of its
    bounding box along its largest normal component and, in each, the ``COLUMN_CANDIDATES``
    voxels around the plane's slab (the whole column for a degenerate triangle or one with a
    vertex beyond ``FAR_COORDINATE``), tested exactly with :func:`triangle_box_overlap`."""
    device = tri.device
    G = dims[0] * dims[1] * dims[2]
    R = torch.tensor(dims, device=device)
    reach = float(max(dims) + 1)
    lo_cell = torch.maximum(torch.ceil(tri.amin(1).clamp(-1.0, reach)).long() - 1, torch.zeros_like(R))
    hi_cell = torch.minimum(torch.floor(tri.amax(1).clamp(-1.0, reach)).long(), R - 1)
    keep = (lo_cell <= hi_cell).all(1)
    tri, mesh, lo_cell, hi_cell = tri[keep], mesh[keep], lo_cell[keep], hi_cell[keep]
    if not tri.shape[0]:
        return
    normal = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 1], dim=-1)
    w = normal.abs().argmax(1)
    order = torch.stack([(w + 1) % 3, (w + 2) % 3, w], 1)  # (u, v, w) axes of each triangle
    span = (hi_cell - lo_cell + 1).gather(1, order)
    whole_column = ~normal.any(1) | (tri.abs().amax((1, 2)) > FAR_COORDINATE)
    depth = torch.where(whole_column, span[:, 2], span[:, 2].clamp(max=COLUMN_CANDIDATES))
    counts = span[:, 0] * span[:, 1] * depth
    strides = torch.tensor([dims[1] * dims[2], dims[2], 1], device=device)
    t0 = 0
    for t1 in _blocks(counts, BLOCK_PAIRS_CPU if device.type == "cpu" else BLOCK_PAIRS):
        n = counts[t0:t1]
        tid = torch.repeat_interleave(torch.arange(t0, t1, device=device), n)
        local = torch.arange(tid.shape[0], device=device) - (n.cumsum(0) - n).repeat_interleave(n)
        dep, sp, ax = depth[tid], span[tid], order[tid]
        lo_t, hi_t = lo_cell[tid].gather(1, ax), hi_cell[tid].gather(1, ax)
        cu = lo_t[:, 0] + local // (sp[:, 1] * dep)
        cv = lo_t[:, 1] + local // dep % sp[:, 1]
        nrm = normal[tid].gather(1, ax)
        d = (normal[tid] * tri[tid, 0]).sum(1)
        rn = 0.5 * nrm.abs().sum(1)
        base = nrm[:, 0] * (cu + 0.5) + nrm[:, 1] * (cv + 0.5) - d
        nw = torch.where(nrm[:, 2] == 0, 1.0, nrm[:, 2])
        low = torch.minimum((-rn - base) / nw, (rn - base) / nw) - 0.5
        start = torch.floor(low.clamp(-2.0, reach + 1)).long() - 1
        start = torch.where(whole_column[tid], lo_t[:, 2],
                            torch.maximum(torch.minimum(start, hi_t[:, 2] - dep + 1), lo_t[:, 2]))
        local_cells = torch.stack([cu, cv, start + local % dep], 1)
        cells = torch.empty_like(local_cells).scatter_(1, ax, local_cells)
        hit = triangle_box_overlap(tri[tid], cells)
        grid[mesh[tid[hit]] * G + (cells[hit] * strides).sum(1)] = True
        t0 = t1


def _blocks(counts: torch.Tensor, block: int):
    """End indices of consecutive runs of ``counts`` summing to at most ``block`` (one item at least)."""
    total = counts.cumsum(0).cpu()
    ends = []
    start, done = 0, 0
    while start < total.shape[0]:
        end = int(torch.searchsorted(total, done + block, right=True))
        end = max(end, start + 1)
        ends.append(end)
        done = int(total[end - 1])
        start = end
    return ends


def _edge_side(ax, ay, bx, by, px, py):
    """``(sign, value)`` of the orientation of ``(a, b, p)`` in the plane (elementwise), evaluated
    from the lexicographically smaller end, a zero resolved by moving ``p`` by ``(eps, eps**2)``;
    ``sign`` is 0 for a zero-length edge (as the numba kernel's ``_edge_side``)."""
    swap = (bx < ax) | ((bx == ax) & (by < ay))
    same = (ax == bx) & (ay == by)
    ax, bx = torch.where(swap, bx, ax), torch.where(swap, ax, bx)
    ay, by = torch.where(swap, by, ay), torch.where(swap, ay, by)
    value = (ax - px) * (by - py) - (ay - py) * (bx - px)
    tie = torch.where(ay != by, torch.sign(ay - by), torch.sign(bx - ax))
    sign = torch.where(value != 0, torch.sign(value), tie)
    flip = torch.where(swap, -1.0, 1.0)
    return torch.where(same, 0.0, sign * flip), value * flip


def _crossings(tri: torch.Tensor, px: torch.Tensor, py: torch.Tensor):
    """``(hit, t, step)`` of the rays ``(px, py, z)`` with the triangles ``tri (..., 3, 3)``
    (broadcast): crossed or not, the crossing's ``z``, ``+1`` entering / ``-1`` leaving."""
    x, y, z = tri[..., 0], tri[..., 1], tri[..., 2]
    s_a, w_a = _edge_side(x[..., 1], y[..., 1], x[..., 2], y[..., 2], px, py)
    s_b, w_b = _edge_side(x[..., 2], y[..., 2], x[..., 0], y[..., 0], px, py)
    s_c, w_c = _edge_side(x[..., 0], y[..., 0], x[..., 1], y[..., 1], px, py)
    hit = (s_a != 0) & (s_b == s_a) & (s_c == s_a)
    total = w_a + w_b + w_c
    zmin, zmax = z.amin(-1), z.amax(-1)
    t = torch.where(total != 0, (w_a * z[..., 0] + w_b * z[..., 1] + w_c * z[..., 2]) / torch.where(
        total != 0, total, 1.0), zmin)
    return hit, torch.minimum(torch.maximum(t, zmin), zmax), -s_a


def _inside_reference(tri: torch.Tensor, dims, winding: bool) -> torch.Tensor:
    """``(R0 * R1 * R2,)`` bool: every column ray against every triangle, every centre against every crossing."""
    R0, R1, R2 = dims
    device = tri.device
    ii, jj = torch.meshgrid(torch.arange(R0, device=device), torch.arange(R1, device=device), indexing="ij")
    px, py = ii.reshape(-1).double() + 0.5, jj.reshape(-1).double() + 0.5
    centres = torch.arange(R2, device=device, dtype=torch.float64) + 0.5
    level = torch.zeros(R0 * R1, R2, dtype=torch.float64, device=device)
    total = torch.zeros(R0 * R1, dtype=torch.float64, device=device)
    step = max(1, REFERENCE_BLOCK_PAIRS // (R0 * R1 * R2))
    for f0 in range(0, tri.shape[0], step):
        block = tri[f0:f0 + step, None]  # (f, 1, 3, 3) against every column
        hit, t, sign = _crossings(block, px, py)
        signed = torch.where(hit, sign, 0.0)  # (f, C)
        total += signed.sum(0)
        level += (signed[..., None] * (t[..., None] < centres)).sum(0)
    closed = (total == 0) if winding else (total.remainder(2) == 0)
    inside = (level != 0) if winding else (level.remainder(2) == 1)
    return (inside & closed[:, None]).reshape(-1)


def _inside_torch(tri: torch.Tensor, mesh: torch.Tensor, B: int, dims, winding: bool) -> torch.Tensor:
    """``(B * R0 * R1 * R2,)`` bool for the triangles ``tri (F, 3, 3)`` of meshes ``mesh (F,)``: the
    crossings of each triangle with the columns of its bounding box, accumulated per column and
    summed up along ``z``."""
    R0, R1, R2 = dims
    device = tri.device
    steps = torch.zeros(B * R0 * R1 * (R2 + 1), dtype=torch.int32, device=device)
    if tri.shape[0]:
        cap = torch.tensor([R0, R1], device=device)
        reach = float(max(dims) + 1)
        lo_col = torch.maximum(torch.ceil(tri[..., :2].amin(1).clamp(-1.0, reach) - 0.5).long(), torch.zeros_like(cap))
        hi_col = torch.minimum(torch.floor(tri[..., :2].amax(1).clamp(-1.0, reach) - 0.5).long(), cap - 1)
        span = (hi_col - lo_col + 1).clamp_min(0)
        counts = span[:, 0] * span[:, 1]
        t0 = 0
        for t1 in _blocks(counts, BLOCK_PAIRS_CPU if device.type == "cpu" else BLOCK_PAIRS):
            n = counts[t0:t1]
            tid = torch.repeat_interleave(torch.arange(t0, t1, device=device), n)
            local = torch.arange(tid.shape[0], device=device) - (n.cumsum(0) - n).repeat_interleave(n)
            i = lo_col[tid, 0] + local // span[tid, 1]
            j = lo_col[tid, 1] + local % span[tid, 1]
            hit, t, sign = _crossings(tri[tid], i.double() + 0.5, j.double() + 0.5)
            first = torch.where(t < 0.5, 0, torch.where(t >= R2 - 0.5, R2, torch.floor(t - 0.5).long() + 1))
            index = ((mesh[tid] * R0 + i) * R1 + j) * (R2 + 1) + first
            steps.index_put_((index[hit],), sign[hit].int(), accumulate=True)
            t0 = t1
    steps = steps.view(B * R0 * R1, R2 + 1)
    level = steps.cumsum(1, dtype=torch.int32)[:, :R2]
    total = steps.sum(1, dtype=torch.int32)
    closed = (total == 0) if winding else (total % 2 == 0)
    inside = (level != 0) if winding else (level % 2 == 1)
    return (inside & closed[:, None]).reshape(-1)
