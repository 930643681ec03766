"""Batched octrees over occupancy grids and point clouds, with Morton keys and neighbour look-up.

An :class:`Octree` of depth ``D`` covers a ``R x R x R`` grid, ``R = 2**D``, indexed
``[b, i(x), j(y), k(z)]`` like every dense grid in ``geo4g.voxels``. Level ``d = 0 .. D`` holds
cells of the ``2**d`` grid; level 0 holds one root per batch item. Every cell has a state:

- :data:`EMPTY`: no occupied voxel below it (a leaf);
- :data:`FILLED`: every voxel below it is occupied (a leaf);
- :data:`MIXED`: some are; only mixed cells have children, always all eight of them.

So level ``d + 1`` holds exactly the children of the mixed cells of level ``d``, and a fully
occupied (or empty) region stays a single leaf at the coarsest level where it fits in one cell
(:meth:`Octree.from_dense`). Octrees for O-CNN keep occupied cells subdivided down to the finest
level instead (``collapse_full=False``, or :meth:`Octree.from_points`), so that every occupied
voxel is a cell of level ``D`` that carries features.

Within a level, cells are sorted by ``(batch, key)``, where ``key`` is the Morton code of the
cell's ``(x, y, z)`` (:func:`morton_encode`: bits interleaved ``x y z`` from the most
significant, so the child ``c = 0..7`` of a cell has key ``8 * key + c`` and offset
``(c >> 2 & 1, c >> 1 & 1, c & 1)``: the eight children come in the ``[x][y][z]`` raster order
of their 2x2x2 block). Internally a cell is addressed by one int64 code ``batch * 8**d + key``,
hence the limit ``batch_size * 8**depth <= 2**63``. Look-ups (:meth:`Octree.lookup`,
:meth:`Octree.neighbors`, :func:`find_neighbors`) are binary searches of these sorted codes
(``torch.searchsorted``): plain torch, the same on the CPU and on CUDA.
"""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence

import torch

from geo4g.structures.checks import check_finite, check_lengths, check_tensor, describe
from geo4g.structures.pointclouds import Pointclouds

__all__ = ["EMPTY", "FILLED", "MIXED", "MAX_DEPTH", "Octree", "morton_encode", "morton_decode", "find_neighbors"]

#: Cell states (``Octree.states``): no occupied voxel below, all occupied, some occupied.
EMPTY, FILLED, MIXED = 0, 1, 2
#: Morton keys interleave 21 bits per coordinate into 63 bits of an int64.
MAX_DEPTH = 21
_COORD_LIMIT = 1 << MAX_DEPTH
_INT64_CODES = 1 << 63


def _spread_bits(v: torch.Tensor) -> torch.Tensor:
    """The low 21 bits of ``v`` moved to every third bit (bit ``i`` to bit ``3 i``)."""
    v = v & 0x1FFFFF
    v = (v | (v << 32)) & 0x1F00000000FFFF
    v = (v | (v << 16)) & 0x1F0000FF0000FF
    v = (v | (v << 8)) & 0x100F00F00F00F00F
    v = (v | (v << 4)) & 0x10C30C30C30C30C3
    return (v | (v << 2)) & 0x1249249249249249


def _compact_bits(v: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`_spread_bits`: every third bit of ``v`` packed into 21 bits."""
    v = v & 0x1249249249249249
    v = (v ^ (v >> 2)) & 0x10C30C30C30C30C3
    v = (v ^ (v >> 4)) & 0x100F00F00F00F00F
    v = (v ^ (v >> 8)) & 0x1F0000FF0000FF
    v = (v ^ (v >> 16)) & 0x1F00000000FFFF
    return (v ^ (v >> 32)) & 0x1FFFFF


def _encode(xyz: torch.Tensor) -> torch.Tensor:
    xyz = xyz.long()
    return (_spread_bits(xyz[..., 0]) << 2) | (_spread_bits(xyz[..., 1]) << 1) | _spread_bits(xyz[..., 2])


def _decode(keys: torch.Tensor) -> torch.Tensor:
    return torch.stack([_compact_bits(keys >> 2), _compact_bits(keys >> 1), _compact_bits(keys)], dim=-1)


def morton_encode(xyz: torch.Tensor) -> torch.Tensor:
    """Morton (Z-order) keys of integer cell coordinates.

    The bits of ``x``, ``y`` and ``z`` are interleaved as ``... x1 y1 z1 x0 y0 z0``, so sorting
    keys sorts cells by their octree path and the children of key ``k`` are ``8 k + c``.

    Args:
        xyz: ``(..., 3)`` integer tensor (e.g. ``(N, 3)``), coordinates in ``[0, 2**21)``.

    Returns:
        ``(...)`` int64 keys in ``[0, 2**63)``, on ``xyz``'s device.

    Raises:
        TypeError / ValueError: naming ``xyz`` for a non-integer tensor, a last dimension other
            than 3 or a coordinate outside ``[0, 2**21)``.
    """
    check_tensor(xyz, "xyz", last_dim=3, kind="int", shape_hint="(..., 3)")
    if xyz.numel() > 0:
        lo, hi = int(xyz.min()), int(xyz.max())
        if lo < 0 or hi >= _COORD_LIMIT:
            raise ValueError(f"xyz coordinates must lie in [0, 2**{MAX_DEPTH}) to fit int64 Morton keys, "
                             f"got range [{lo}, {hi}]")
    return _encode(xyz)


def morton_decode(keys: torch.Tensor) -> torch.Tensor:
    """Integer cell coordinates of Morton keys, the inverse of :func:`morton_encode`.

    Args:
        keys: ``(...)`` integer tensor of non-negative keys.

    Returns:
        ``(..., 3)`` int64 ``(x, y, z)``.

    Raises:
        TypeError / ValueError: naming ``keys`` for a non-integer tensor or a negative key.
    """
    check_tensor(keys, "keys", kind="int", shape_hint="(...)")
    if keys.numel() > 0 and int(keys.min()) < 0:
        raise ValueError(f"keys must be non-negative Morton keys, got minimum {int(keys.min())}")
    return _decode(keys.long())


def _check_depth(depth, name: str = "depth") -> int:
    if isinstance(depth, bool) or not isinstance(depth, int) or not 0 <= depth <= MAX_DEPTH:
        raise ValueError(f"{name} must be an int in [0, {MAX_DEPTH}] (int64 Morton keys hold {MAX_DEPTH} "
                         f"levels), got {depth!r}")
    return depth


def _check_codes_fit(batch_size: int, depth: int) -> None:
    if batch_size * 8 ** depth > _INT64_CODES:
        raise ValueError(f"batch_size * 8**depth must be at most 2**63 for int64 cell codes, got batch_size="
                         f"{batch_size} and depth={depth}; split the batch or use a smaller depth")


def _lookup_codes(sorted_codes: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """Index of every ``query`` code in ``sorted_codes`` (ascending, unique), ``-1`` where absent."""
    if sorted_codes.numel() == 0:
        return torch.full_like(query, -1)
    pos = torch.searchsorted(sorted_codes, query).clamp_(max=sorted_codes.numel() - 1)
    return torch.where(sorted_codes[pos] == query, pos, torch.full_like(pos, -1))


def _check_kernel_size(kernel_size) -> int:
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd int (3 for the 27-neighbourhood), got {kernel_size!r}")
    return kernel_size


def _neighbors_of_codes(codes: torch.Tensor, level: int, kernel_size: int) -> torch.Tensor:
    """``(N, kernel_size**3)`` indices into ``codes`` (sorted) of each cell's neighbours, ``-1`` where absent.

    The offsets ``(dx, dy, dz)`` run in ``conv3d`` weight order: ``dz`` fastest.
    """
    n = codes.numel()
    k3 = kernel_size ** 3
    if n == 0:
        return torch.empty(0, k3, dtype=torch.long, device=codes.device)
    cells = 8 ** level
    batch, keys = codes // cells, codes % cells
    xyz = _decode(keys)
    radius = kernel_size // 2
    offsets = torch.arange(-radius, radius + 1, device=codes.device)
    shifted = xyz[:, :, None] + offsets  # (N, 3, k)
    inside = (shifted >= 0) & (shifted < (1 << level))
    spread = _spread_bits(shifted.clamp(min=0))
    query = ((spread[:, 0, :, None, None] << 2) | (spread[:, 1, None, :, None] << 1) | spread[:, 2, None, None, :])
    query = query + (batch * cells)[:, None, None, None]
    valid = inside[:, 0, :, None, None] & inside[:, 1, None, :, None] & inside[:, 2, None, None, :]
    found = _lookup_codes(codes, query.reshape(-1)).view(n, k3)
    return found.masked_fill_(~valid.reshape(n, k3), -1)


def find_neighbors(keys: torch.Tensor, batch: torch.Tensor, level: int, kernel_size: int = 3) -> torch.Tensor:
    """The same-level neighbours of a set of cells, found by binary search of their keys.

    Args:
        keys: ``(N,)`` int64 Morton keys of cells of the ``2**level`` grid.
        batch: ``(N,)`` integer batch index of each cell; the cells must be sorted by
            ``(batch, key)`` without duplicates (as an :class:`Octree` level is).
        level: the level of the cells, in ``[0, 21]``.
        kernel_size: an odd neighbourhood size ``k``.

    Returns:
        ``(N, k**3)`` long: for offset ``(dx, dy, dz)`` in ``[-k//2, k//2]**3`` (column
        ``((dx + r) k + dy + r) k + dz + r``, ``r = k // 2``: the order of a ``conv3d`` weight
        ``[:, :, x, y, z]``), the index of the cell of the same batch item at ``xyz + offset``,
        or ``-1`` where no such cell is in the set (also beyond the grid's border).
        The centre column is ``arange(N)``.

    Raises:
        ValueError / TypeError: naming the argument for wrong shapes or dtypes, unsorted or
            duplicate cells, a negative batch index, a bad level or kernel size.
    """
    level = _check_depth(level, "level")
    kernel_size = _check_kernel_size(kernel_size)
    check_tensor(keys, "keys", ndim=1, kind="int", shape_hint="(N,)")
    check_tensor(batch, "batch", ndim=1, kind="int", shape_hint="(N,)")
    if batch.shape != keys.shape or batch.device != keys.device:
        raise ValueError(f"batch must match keys {tuple(keys.shape)} on {keys.device}, got {describe(batch)}")
    if keys.numel() > 0:
        if int(keys.min()) < 0 or int(keys.max()) >= 8 ** level:
            raise ValueError(f"keys must lie in [0, 8**level) = [0, {8 ** level}) for level {level}, "
                             f"got range [{int(keys.min())}, {int(keys.max())}]")
        if int(batch.min()) < 0:
            raise ValueError(f"batch must be non-negative, got minimum {int(batch.min())}")
        _check_codes_fit(int(batch.max()) + 1, level)
    codes = batch.long() * 8 ** level + keys.long()
    if codes.numel() > 1 and not bool((codes[1:] > codes[:-1]).all()):
        raise ValueError("keys must be sorted by (batch, key) without duplicates; sort the cells with "
                         "torch.sort(batch * 8**level + keys) first")
    return _neighbors_of_codes(codes, level, kernel_size)


def _as_bounds(bounds, batch_size: int, device, dtype) -> torch.Tensor:
    """``bounds`` as a ``(B, 2, 3)`` tensor of boxes with positive extents."""
    if not isinstance(bounds, torch.Tensor):
        try:
            bounds = torch.as_tensor(bounds, dtype=dtype)
        except (TypeError, ValueError, RuntimeError) as error:
            raise TypeError(f"bounds must be a (2, 3) or (B, 2, 3) tensor [[min x, y, z], [max x, y, z]], "
                            f"got {describe(bounds)}") from error
    check_tensor(bounds, "bounds", ndim=(2, 3), kind="float", shape_hint="(2, 3) or (B, 2, 3)")
    if bounds.shape[-2:] != (2, 3) or (bounds.dim() == 3 and bounds.shape[0] != batch_size):
        raise ValueError(f"bounds must be (2, 3) or (B={batch_size}, 2, 3) [[min x, y, z], [max x, y, z]], "
                         f"got shape {tuple(bounds.shape)}")
    check_finite(bounds, "bounds")
    bounds = bounds.to(device=device, dtype=dtype).expand(batch_size, 2, 3)
    if batch_size and not bool((bounds[:, 1] > bounds[:, 0]).all()):
        raise ValueError(f"bounds must have max > min on every axis, got {bounds.tolist()}")
    return bounds


def _cube_bounds(points: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(B, 2, 3)``: the cube around each cloud's bounding box (centred, side = its longest extent)."""
    big = torch.finfo(points.dtype).max
    if points.shape[1]:
        lo = torch.where(mask[..., None], points, big).amin(1)
        hi = torch.where(mask[..., None], points, -big).amax(1)
    else:
        lo = hi = points.new_zeros(points.shape[0], 3)
    empty = ~mask.any(1)
    lo, hi = torch.where(empty[:, None], -0.5, lo), torch.where(empty[:, None], 0.5, hi)
    centre = (lo + hi) / 2
    side = (hi - lo).amax(1, keepdim=True)
    half = torch.where(side > 0, side / 2, torch.full_like(side, 0.5))
    return torch.stack([centre - half, centre + half], dim=1)


class Octree:
    """A batch of octrees of one depth, stored level by level.

    Build one with :meth:`from_dense`, :meth:`from_points` or :meth:`from_states`. Each level
    ``d = 0 .. depth`` holds ``N_d`` cells sorted by ``(batch, key)``; level 0 holds the ``B``
    roots and level ``d + 1`` the eight children of every :data:`MIXED` cell of level ``d``, in
    the order of their parents (child ``c`` of the ``m``-th mixed cell is cell ``8 m + c``).
    The structure is immutable; per-level features can be attached (:meth:`set_features`).

    Accessors per level: :meth:`keys`, :meth:`batch_index`, :meth:`xyz`, :meth:`states`,
    :meth:`parents`, :meth:`children`, :meth:`neighbors` (cached), :meth:`cell_counts`.
    Conversions: :meth:`to_dense` (exact), :meth:`state_grid`, :meth:`lookup`,
    :meth:`query_states`.

    Attributes:
        depth: ``D``; the finest grid is ``2**D`` cells per side.
        batch_size: ``B``.
        bounds: ``(B, 2, 3)`` the box of each item in space (from :meth:`from_points`), or ``None``.
    """

    def __init__(self, codes: List[torch.Tensor], states: List[torch.Tensor], batch_size: int,
                 bounds: Optional[torch.Tensor] = None):
        """Use :meth:`from_dense`, :meth:`from_points` or :meth:`from_states`: this takes per level
        the sorted cell codes ``batch * 8**d + key`` and the states, already consistent (level
        ``d + 1`` holds the children of the mixed cells of level ``d``), and derives the links."""
        self.depth = len(codes) - 1
        self.batch_size = batch_size
        self.bounds = bounds
        self._codes = codes
        self._states = states
        self._parents: List[torch.Tensor] = [torch.full((batch_size,), -1, dtype=torch.long, device=codes[0].device)]
        self._children: List[torch.Tensor] = []
        for d in range(self.depth + 1):
            mixed = (states[d] == MIXED).nonzero().squeeze(1)
            children = torch.full((states[d].numel(), 8), -1, dtype=torch.long, device=states[d].device)
            children[mixed] = torch.arange(8 * mixed.numel(), device=mixed.device).view(-1, 8)
            self._children.append(children)
            if d < self.depth:
                self._parents.append(mixed.repeat_interleave(8))
        self._features: List[Optional[torch.Tensor]] = [None] * (self.depth + 1)
        self._neighbor_cache: dict = {}

    # construction

    @classmethod
    def from_states(cls, states: Sequence[torch.Tensor], bounds: Optional[torch.Tensor] = None) -> "Octree":
        """The octree whose cells have the given states, level by level.

        Args:
            states: ``depth + 1`` integer tensors; ``states[0]`` is ``(B,)`` (one root per item),
                ``states[d + 1]`` is ``(8 M_d,)`` for the ``M_d`` cells of ``states[d]`` equal to
                :data:`MIXED` (their children in order); the last level has no mixed cell.
                Values in ``{EMPTY, FILLED, MIXED}``. The states need not be consistent with an
                occupancy grid (a mixed cell may have only empty children), as in a predicted octree.
            bounds: optional ``(B, 2, 3)`` box of each item, kept as :attr:`bounds`.

        Raises:
            ValueError / TypeError: naming ``states[d]`` for a wrong length, dtype or value.
        """
        if not isinstance(states, (list, tuple)) or not states:
            raise TypeError(f"states must be a non-empty list of (N_d,) integer tensors, got {describe(states)}")
        depth = _check_depth(len(states) - 1, "len(states) - 1")
        checked = []
        expected = None
        for d, s in enumerate(states):
            check_tensor(s, f"states[{d}]", ndim=1, kind="int", shape_hint="(N_d,)")
            if expected is not None and s.numel() != expected:
                raise ValueError(f"states[{d}] must hold 8 cells per mixed cell of level {d - 1} ({expected}), "
                                 f"got {s.numel()}")
            if s.numel() and (int(s.min()) < EMPTY or int(s.max()) > MIXED):
                raise ValueError(f"states[{d}] values must be EMPTY=0, FILLED=1 or MIXED=2, got range "
                                 f"[{int(s.min())}, {int(s.max())}]")
            if s.device != states[0].device:
                raise ValueError(f"states must share one device, got {states[0].device} at [0] and {s.device} at [{d}]")
            checked.append(s.long())
            expected = 8 * int((s == MIXED).sum())
        if expected:
            raise ValueError(f"states[{depth}] (the finest level) must have no MIXED cell, got {expected // 8}")
        batch_size = checked[0].numel()
        _check_codes_fit(batch_size, depth)
        codes = [torch.arange(batch_size, device=checked[0].device)]
        for d in range(depth):
            codes.append(_child_codes(codes[d], checked[d]))
        if bounds is not None:
            bounds = _as_bounds(bounds, batch_size, checked[0].device, torch.float64)
        return cls(codes, checked, batch_size, bounds)

    @classmethod
    def from_dense(cls, grid: torch.Tensor, collapse_full: bool = True) -> "Octree":
        """The octree of a batch of occupancy grids.

        Args:
            grid: ``(B, R, R, R)`` occupancy indexed ``[b, x, y, z]``, ``R`` a power of two
                (``R = 1`` gives depth 0): ``bool``, or numbers that are all 0 or 1.
            collapse_full: a fully occupied block becomes one :data:`FILLED` leaf at the coarsest
                level where it is one cell (the octree of OGN). With ``False`` every occupied cell
                above the finest level is :data:`MIXED`, so each occupied voxel is a cell of the
                finest level (the octree of O-CNN).

        Returns:
            An :class:`Octree` of depth ``log2(R)``; ``to_dense()`` gives ``grid`` back exactly.
            An empty grid gives an empty root; a full one a filled root (with ``collapse_full``).

        Raises:
            ValueError / TypeError: naming ``grid`` for a wrong rank, a non-cubic or
                non-power-of-two size, NaN or values other than 0/1.
        """
        grid = _check_grid(grid)
        B, R = grid.shape[0], grid.shape[1]
        depth = R.bit_length() - 1
        _check_codes_fit(B, depth)
        any_grids = [grid]
        all_grids = [grid]
        for _ in range(depth):
            r = any_grids[-1].shape[1] // 2
            any_grids.append(any_grids[-1].view(B, r, 2, r, 2, r, 2).any(6).any(4).any(2))
            if collapse_full:
                all_grids.append(all_grids[-1].view(B, r, 2, r, 2, r, 2).all(6).all(4).all(2))
        any_grids.reverse()
        all_grids.reverse()

        def state_of(level: int, codes: torch.Tensor) -> torch.Tensor:
            cells = 8 ** level
            b = codes // cells
            xyz = _decode(codes % cells)
            occupied = any_grids[level][b, xyz[:, 0], xyz[:, 1], xyz[:, 2]]
            if level == depth:
                return occupied.long()  # FILLED == 1
            state = torch.where(occupied, MIXED, EMPTY)
            if collapse_full:
                full = all_grids[level][b, xyz[:, 0], xyz[:, 1], xyz[:, 2]]
                state = torch.where(full, FILLED, state)
            return state

        return cls._build(B, depth, state_of, grid.device)

    @classmethod
    def from_points(cls, points, depth: int, lengths: Optional[torch.Tensor] = None, bounds=None,
                    features: Optional[torch.Tensor] = None) -> "Octree":
        """The octree of the cells that contain points, subdivided down to ``depth``.

        A cell of level ``d < depth`` that contains a point is :data:`MIXED`, one of level
        ``depth`` is :data:`FILLED` (a leaf); the siblings without points are :data:`EMPTY`.
        Points outside ``bounds`` are left out; a point on a box's upper face goes to the last cell.

        Args:
            points: ``(B, N, 3)`` float (padding rows may hold anything), or a ``Pointclouds``.
            depth: the finest level, ``2**depth`` cells per side, in ``[0, 21]``.
            lengths: ``(B,)`` valid points per cloud (default: all ``N``).
            bounds: the box ``[[min x, y, z], [max x, y, z]]`` mapped to the grid, ``(2, 3)`` for
                all clouds or ``(B, 2, 3)``; default: the cube around each cloud's bounding box
                (a cloud with one distinct point: the unit cube around it; an empty cloud:
                ``[-0.5, 0.5]**3``). Stored as :attr:`bounds`.
            features: optional ``(B, N, C)`` float per-point features (e.g. normals): each cell of
                the finest level gets the mean over its points, empty cells zeros
                (:meth:`features` ``(depth)``).

        Raises:
            ValueError / TypeError: naming the argument for wrong shapes or dtypes, NaN/inf in
                valid points or features, lengths out of range, degenerate bounds, a bad depth.
        """
        depth = _check_depth(depth)
        points, lengths = _check_points(points, lengths)
        B, N = points.shape[:2]
        _check_codes_fit(B, depth)
        device = points.device
        mask = torch.arange(N, device=device) < lengths[:, None]
        if features is not None:
            check_tensor(features, "features", ndim=3, kind="float", shape_hint="(B, N, C)")
            if features.shape[:2] != (B, N) or features.device != device:
                raise ValueError(f"features must be (B={B}, N={N}, C) on {device} like points, "
                                 f"got {describe(features)}")
            check_finite(features[mask], "features")
        coords = points.double()
        box = _cube_bounds(coords, mask) if bounds is None else _as_bounds(bounds, B, device, torch.float64)
        lo, hi = box[:, None, 0], box[:, None, 1]
        unit = (coords - lo) / (hi - lo)
        keep = mask & ((unit >= 0) & (unit <= 1)).all(-1)
        ijk = (unit * (1 << depth)).floor().clamp_(0, (1 << depth) - 1).long()
        batch = torch.arange(B, device=device)[:, None].expand(B, N)
        codes_all = batch[keep] * 8 ** depth + _encode(ijk[keep])
        finest, inverse = torch.unique(codes_all, sorted=True, return_inverse=True)
        occupied = [finest]
        for _ in range(depth):
            occupied.append(torch.unique_consecutive(occupied[-1] >> 3))
        occupied.reverse()

        def state_of(level: int, codes: torch.Tensor) -> torch.Tensor:
            found = _lookup_codes(occupied[level], codes) >= 0
            return found.long() if level == depth else torch.where(found, MIXED, EMPTY)

        octree = cls._build(B, depth, state_of, device, box)
        if features is not None:
            C = features.shape[-1]
            sums = features.new_zeros(finest.numel(), C).index_add_(0, inverse, features[keep])
            counts = torch.bincount(inverse, minlength=finest.numel()).clamp_(min=1).to(features.dtype)
            per_cell = features.new_zeros(octree.num_cells(depth), C)
            per_cell[_lookup_codes(octree._codes[depth], finest)] = sums / counts[:, None]
            octree.set_features(depth, per_cell)
        return octree

    @classmethod
    def _build(cls, batch_size: int, depth: int, state_of: Callable[[int, torch.Tensor], torch.Tensor], device,
               bounds: Optional[torch.Tensor] = None) -> "Octree":
        """Top-down: the roots, then the children of each level's mixed cells, states from ``state_of``."""
        codes = [torch.arange(batch_size, device=device)]
        states = [state_of(0, codes[0])]
        for d in range(depth):
            codes.append(_child_codes(codes[d], states[d]))
            states.append(state_of(d + 1, codes[d + 1]))
        return cls(codes, states, batch_size, bounds)

    # accessors

    def _check_level(self, level) -> int:
        if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= self.depth:
            raise ValueError(f"level must be an int in [0, depth={self.depth}], got {level!r}")
        return level

    @property
    def device(self) -> torch.device:
        return self._codes[0].device

    def num_cells(self, level: int) -> int:
        """``N_d``, the number of cells of level ``level`` over the batch."""
        return self._codes[self._check_level(level)].numel()

    def keys(self, level: int) -> torch.Tensor:
        """``(N_d,)`` int64 Morton keys of the cells of ``level`` (see :func:`morton_encode`)."""
        return self._codes[self._check_level(level)] % (8 ** level)

    def batch_index(self, level: int) -> torch.Tensor:
        """``(N_d,)`` int64 batch item of each cell of ``level`` (non-decreasing)."""
        return self._codes[self._check_level(level)] // (8 ** level)

    def xyz(self, level: int) -> torch.Tensor:
        """``(N_d, 3)`` int64 cell coordinates in the ``2**level`` grid."""
        return _decode(self.keys(level))

    def states(self, level: int) -> torch.Tensor:
        """``(N_d,)`` int64 states (:data:`EMPTY`, :data:`FILLED`, :data:`MIXED`)."""
        return self._states[self._check_level(level)]

    def parents(self, level: int) -> torch.Tensor:
        """``(N_d,)`` int64 index of each cell's parent in level ``level - 1`` (``-1`` at level 0)."""
        return self._parents[self._check_level(level)]

    def children(self, level: int) -> torch.Tensor:
        """``(N_d, 8)`` int64 indices of each cell's children in level ``level + 1`` (child ``c``
        at offset ``(c >> 2 & 1, c >> 1 & 1, c & 1)``), ``-1`` rows for leaves."""
        return self._children[self._check_level(level)]

    def cell_counts(self, level: int) -> torch.Tensor:
        """``(B,)`` int64 cells of ``level`` per batch item."""
        return torch.bincount(self.batch_index(level), minlength=self.batch_size)

    def neighbors(self, level: int, kernel_size: int = 3) -> torch.Tensor:
        """``(N_d, k**3)`` indices of each cell's same-level neighbours, ``-1`` where none (see
        :func:`find_neighbors` for the column order). Computed once per ``(level, k)`` and cached."""
        key = (self._check_level(level), _check_kernel_size(kernel_size))
        if key not in self._neighbor_cache:
            self._neighbor_cache[key] = _neighbors_of_codes(self._codes[level], level, kernel_size)
        return self._neighbor_cache[key]

    def features(self, level: int) -> Optional[torch.Tensor]:
        """The ``(N_d, C)`` features attached to ``level`` (``None`` when none are)."""
        return self._features[self._check_level(level)]

    def set_features(self, level: int, features: Optional[torch.Tensor]) -> None:
        """Attach ``(N_d, C)`` features (one row per cell of ``level``, on the octree's device), or ``None``."""
        self._check_level(level)
        if features is not None:
            check_tensor(features, "features", ndim=2, shape_hint="(N_d, C)")
            if features.shape[0] != self.num_cells(level) or features.device != self.device:
                raise ValueError(f"features must have one row per cell of level {level} ({self.num_cells(level)}) "
                                 f"on {self.device}, got {describe(features)}")
        self._features[level] = features

    def to(self, device) -> "Octree":
        """A copy on ``device`` (features and cached neighbours moved too)."""
        bounds = None if self.bounds is None else self.bounds.to(device)
        out = Octree([c.to(device) for c in self._codes], [s.to(device) for s in self._states], self.batch_size, bounds)
        out._features = [None if f is None else f.to(device) for f in self._features]
        out._neighbor_cache = {k: v.to(device) for k, v in self._neighbor_cache.items()}
        return out

    # conversions

    def lookup(self, level: int, batch: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """``(Q,)`` index in ``level`` of the cells ``(batch[q], keys[q])``, ``-1`` where not in the octree.

        ``batch`` and ``keys`` are ``(Q,)`` integer tensors on the octree's device; keys in
        ``[0, 8**level)``.
        """
        codes = self._query_codes(level, batch, keys)
        return _lookup_codes(self._codes[level], codes)

    def query_states(self, level: int, batch: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """``(Q,)`` int64 state of any cell ``(batch[q], keys[q])`` of the ``2**level`` grid.

        A cell of the octree has its own state; a cell below a leaf (not in the octree) has the
        state of that leaf (:data:`EMPTY` or :data:`FILLED`).
        """
        codes = self._query_codes(level, batch, keys)
        result = torch.full_like(codes, -1)
        pending = torch.arange(codes.numel(), device=codes.device)
        for d in range(level, -1, -1):
            if pending.numel() == 0:
                break
            found = _lookup_codes(self._codes[d], codes[pending] >> (3 * (level - d)))
            hit = found >= 0
            result[pending[hit]] = self._states[d][found[hit]]
            pending = pending[~hit]
        return result

    def _query_codes(self, level: int, batch: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        self._check_level(level)
        check_tensor(batch, "batch", ndim=1, kind="int", shape_hint="(Q,)")
        check_tensor(keys, "keys", ndim=1, kind="int", shape_hint="(Q,)")
        if batch.shape != keys.shape:
            raise ValueError(f"batch must match keys {tuple(keys.shape)}, got shape {tuple(batch.shape)}")
        if keys.numel():
            if int(keys.min()) < 0 or int(keys.max()) >= 8 ** level:
                raise ValueError(f"keys must lie in [0, 8**level) = [0, {8 ** level}), got range "
                                 f"[{int(keys.min())}, {int(keys.max())}]")
            if int(batch.min()) < 0 or int(batch.max()) >= self.batch_size:
                raise ValueError(f"batch must lie in [0, batch_size={self.batch_size}), got range "
                                 f"[{int(batch.min())}, {int(batch.max())}]")
        return batch.to(self.device).long() * 8 ** level + keys.to(self.device).long()

    def state_grid(self, level: int) -> torch.Tensor:
        """``(B, r, r, r)`` int64, ``r = 2**level``: the state of every cell of that grid, as
        :meth:`query_states` gives (cells below a leaf take the leaf's state)."""
        self._check_level(level)
        grid = self._states[0].view(-1, 1, 1, 1)
        for d in range(1, level + 1):
            grid = _upsample(grid)
            b, xyz = self.batch_index(d), self.xyz(d)
            grid[b, xyz[:, 0], xyz[:, 1], xyz[:, 2]] = self._states[d]
        return grid

    def to_dense(self, resolution: Optional[int] = None) -> torch.Tensor:
        """The occupancy grid: every :data:`FILLED` leaf fills its whole block.

        Args:
            resolution: a power of two (default ``2**depth``). Above ``2**depth`` each finest
                cell becomes a block of voxels; below, a voxel is occupied when any finest voxel
                of its block is (max pooling).

        Returns:
            ``(B, R, R, R)`` bool indexed ``[b, x, y, z]``; exactly the grid given to
            :meth:`from_dense`. Mixed cells of a predicted octree whose descendants are all empty
            stay empty.
        """
        full = 1 << self.depth
        if resolution is None:
            resolution = full
        if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1 \
                or resolution & (resolution - 1):
            raise ValueError(f"resolution must be a power of two (the octree's is {full}), got {resolution!r}")
        grid = self._states[0].view(-1, 1, 1, 1) == FILLED
        for d in range(1, self.depth + 1):
            grid = _upsample(grid)
            filled = self._states[d] == FILLED
            b, xyz = self.batch_index(d)[filled], self.xyz(d)[filled]
            grid[b, xyz[:, 0], xyz[:, 1], xyz[:, 2]] = True
        while grid.shape[1] < resolution:
            grid = _upsample(grid)
        if grid.shape[1] > resolution:
            s, r = grid.shape[1] // resolution, resolution
            grid = grid.view(-1, r, s, r, s, r, s).any(6).any(4).any(2)
        return grid

    def __repr__(self) -> str:
        counts = [self.num_cells(d) for d in range(self.depth + 1)]
        return (f"Octree(batch_size={self.batch_size}, depth={self.depth}, cells per level={counts}, "
                f"device={self.device})")


def _child_codes(codes: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
    """Codes of the eight children of every mixed cell, in order (sorted when ``codes`` is)."""
    mixed = codes[states == MIXED]
    return (mixed[:, None] * 8 + torch.arange(8, device=codes.device)).reshape(-1)


def _upsample(grid: torch.Tensor) -> torch.Tensor:
    """``(B, r, r, r) -> (B, 2r, 2r, 2r)``: each cell copied to its 2x2x2 block (a new tensor)."""
    B, r = grid.shape[0], grid.shape[1]
    return grid[:, :, None, :, None, :, None].expand(B, r, 2, r, 2, r, 2).reshape(B, 2 * r, 2 * r, 2 * r).contiguous()


def _check_grid(grid) -> torch.Tensor:
    check_tensor(grid, "grid", ndim=4, shape_hint="(B, R, R, R)")
    R = grid.shape[1]
    if grid.shape[1:] != (R, R, R) or R < 1 or R & (R - 1):
        raise ValueError(f"grid must be (B, R, R, R) with R a power of two, got shape {tuple(grid.shape)}")
    if R > _COORD_LIMIT:
        raise ValueError(f"grid resolution must be at most 2**{MAX_DEPTH} for int64 Morton keys, got {R}")
    if grid.dtype == torch.bool:
        return grid
    if grid.is_complex():
        raise TypeError(f"grid must be a bool or real tensor, got dtype {grid.dtype}")
    check_finite(grid, "grid")
    if grid.numel() and bool(((grid != 0) & (grid != 1)).any()):
        raise ValueError("grid must hold occupancy (bool, or only 0 and 1), got other values; threshold "
                         "probabilities first, e.g. grid > 0.5")
    return grid != 0


def _check_points(points, lengths):
    if isinstance(points, Pointclouds):
        if lengths is not None:
            raise ValueError("lengths must be None when points is a Pointclouds (it carries its own)")
        points, lengths = points.points_padded(), points.num_points_per_cloud()
    check_tensor(points, "points", ndim=3, last_dim=3, kind="float", shape_hint="(B, N, 3)")
    B, N = points.shape[:2]
    if lengths is None:
        lengths = torch.full((B,), N, dtype=torch.long, device=points.device)
    lengths = check_lengths(lengths, "lengths", B, N, points.device)
    valid = torch.arange(N, device=points.device) < lengths[:, None]
    check_finite(points[valid], "points")
    return points, lengths

