"""Deep Marching Cubes (Liao, Donné, Geiger 2018): a differentiable marching cubes layer, its losses and model.

    Y. Liao, S. Donné, A. Geiger. "Deep Marching Cubes: Learning Explicit Surface
    Representations." CVPR 2018.

Grid convention. A cube ``[lo, hi]^3`` (``bbox = (lo, hi)``) is split into ``N^3`` cells of
side ``h = (hi - lo) / N``; grid point ``(i, j, k)`` (``0 <= i, j, k <= N``, axes ``x, y, z``)
sits at ``lo + h * (i, j, k)``. Every grid point carries

- an occupancy probability ``O[b, i, j, k]`` in ``[0, 1]``: ``occupancy (B, N+1, N+1, N+1)``;
- three vertex displacements ``X[b, a, i, j, k]`` in ``[0, 1]``, one on each of the three grid
  edges leaving it towards ``+x``, ``+y``, ``+z``: ``displacements (B, 3, N+1, N+1, N+1)``.
  The surface vertex of the edge from grid point ``g`` along axis ``a`` sits at
  ``lo + h * (g + X[a, g] * e_a)`` (displacements on edges leaving the grid are unused).

Cell ``(i, j, k)`` has the eight corners ``(i, j, k) + CORNERS[c]`` and the twelve edges of
:mod:`geo4g.voxels._mc_tables` (Lorensen & Cline's / Bourke's order). A topology ``T`` is a
marching cubes case, ``T = sum(1 << c for the occupied corners c)``; its mesh is the table's
triangles on the cell's twelve edge vertices, oriented with normals pointing from the occupied
to the free side. Corners are independent Bernoulli variables, so the probability of ``T`` is

    p(T) = prod_c O_c^{t_c} (1 - O_c)^{1 - t_c}.

Topology sets. ``"singly_connected"`` (default) keeps the paper's 140 topologies: the two empty
ones (0 and 255) and every case whose triangles form one connected surface piece of at most four
triangles, found from the shared table (the set is the paper's list exactly).
Its probabilities are renormalised to sum to 1 per cell, as in the authors' implementation. The
paper restricts to this set: a cell holding several surface pieces is ambiguous and rare on
surfaces that the grid resolves, and every expectation over 140 topologies instead of 256 is
cheaper. ``"all"`` keeps the 256 cases (no renormalisation is needed).

Losses (all return ``(B,)`` per-shape values or their mean/sum):

- :func:`expected_point_to_mesh_loss`: the expected distance from the ground-truth surface points
  to the mesh of each cell, over its topology distribution;
- :func:`shell_occupancy_loss`: the grid's outer shell is free (plus the paper's small prior that the
  centre is occupied, which breaks the inside/outside symmetry of the other losses);
- :func:`smoothness_loss`: L1 between neighbouring occupancies;
- :func:`curvature_loss`: squared differences of the unit normals of triangles that meet across
  neighbouring cells' shared faces and inside a cell, weighted by their topologies' probabilities.

:func:`dmc_loss` adds them with the weights of the authors' code. :class:`DeepMarchingCubes` maps
point clouds to ``(occupancy, displacements)``; :func:`extract_mesh` turns them into a ``Meshes``.
"""
from __future__ import annotations

import functools
import math
from typing import Dict, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from geo4g.losses._inputs import unwrap_cloud
from geo4g.nn.layers import MLP, NORMS, ConvBlock
from geo4g.structures import Meshes
from geo4g.structures.checks import check_finite, check_lengths, check_tensor, describe
from geo4g.structures.utils import lengths_to_mask

from ._mc_tables import CORNERS, EDGES, NUM_TRIANGLES, TRIANGLES

__all__ = [
    "TOPOLOGY_SETS",
    "DMCTopology",
    "DMCOutput",
    "DMCLoss",
    "DMC_LOSS_WEIGHTS",
    "topology_cases",
    "topology_probabilities",
    "edge_vertices",
    "point_triangle_distance",
    "DifferentiableMarchingCubes",
    "expected_point_to_mesh_loss",
    "shell_occupancy_loss",
    "smoothness_loss",
    "curvature_loss",
    "dmc_loss",
    "extract_mesh",
    "DMCEncoder",
    "DeepMarchingCubes",
]

#: The topology sets: the paper's 140 singly connected topologies, or all 256 cases.
TOPOLOGY_SETS = ("singly_connected", "all")

#: Loss weights of the authors' code (``weight_distance``, ``weight_prior``, ``weight_smoothness``,
#: ``weight_curvature``), used by :func:`dmc_loss`.
DMC_LOSS_WEIGHTS: Dict[str, float] = {"point_to_mesh": 5.0, "occupancy": 10.0, "smoothness": 3.0, "curvature": 3.0}

_REDUCTIONS = ("mean", "sum", "none")


# --------------------------------------------------------------------------------------------
# Tables derived from the shared marching cubes table
# --------------------------------------------------------------------------------------------
def _components(triangles: np.ndarray) -> int:
    """Connected pieces of a case's triangles (two triangles touch when they share two surface vertices)."""
    parent = list(range(len(triangles)))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i in range(len(triangles)):
        for j in range(i + 1, len(triangles)):
            if len(set(triangles[i].tolist()) & set(triangles[j].tolist())) >= 2:
                parent[root(i)] = root(j)
    return len({root(i) for i in range(len(triangles))})


def _face_position(edge: int, axis: int, side: int):
    """Where ``edge`` lies on the cell face ``x_axis = side``: a position 0-3 the same for both cells
    that share the face, or ``None`` when the edge is not on that face."""
    c0, c1 = CORNERS[EDGES[edge, 0]], CORNERS[EDGES[edge, 1]]
    if c0[axis] != side or c1[axis] != side:
        return None
    along = int(np.argmax(np.abs(c1 - c0)))
    in_face = [a for a in range(3) if a != axis]
    other = in_face[1] if along == in_face[0] else in_face[0]
    return (0 if along == in_face[0] else 2) + int(min(c0[other], c1[other]))


_SEGMENTS = [(p, q) for p in range(4) for q in range(p + 1, 4)]


class _Tables(NamedTuple):
    cases: np.ndarray  # (K,) case index of each topology
    triangles: np.ndarray  # (K, T, 3) edge ids, -1 padded
    empty: np.ndarray  # (K,) bool: no triangle
    bits: np.ndarray  # (K, 8) 1 where topology k's corner c is occupied
    distance_triangles: np.ndarray  # (U_d, 3) unordered edge triples used by any topology
    distance_ids: np.ndarray  # (K, T) index into distance_triangles, U_d where padded
    oriented_triangles: np.ndarray  # (U, 3) oriented edge triples (smallest id first)
    cross_pairs: np.ndarray  # (W, 2) vertex pairs i < j whose cross products build the normals
    cross_signs: np.ndarray  # (W, U): normal of u = sum_w sign * v_i x v_j
    triangle_counts: np.ndarray  # (K, U) times topology k holds oriented triangle u
    face_segments: np.ndarray  # (U, 6 * 6): triangle u bounds segment s on face f (column 6 f + s)
    segment_ptr: np.ndarray  # (U + 1,) the same incidences as compressed rows: triangle u's columns are
    segment_ids: np.ndarray  # segment_ids[segment_ptr[u]:segment_ptr[u + 1]]
    inner_pairs: np.ndarray  # (V, 2) oriented triangles sharing a side inside some topology
    inner_counts: np.ndarray  # (K, V) times topology k holds the pair


@functools.lru_cache(maxsize=None)
def _tables(topologies: str) -> _Tables:
    if topologies == "all":
        cases = list(range(256))
    else:
        cases = [c for c in range(256)
                 if NUM_TRIANGLES[c] <= 4 and _components(TRIANGLES[c, :NUM_TRIANGLES[c]]) <= 1]
    cases = np.array(cases, dtype=np.int64)
    width = int(NUM_TRIANGLES[cases].max())
    triangles = TRIANGLES[cases, :width].astype(np.int64)
    counts = NUM_TRIANGLES[cases]

    distance_index: Dict[Tuple[int, ...], int] = {}
    oriented_index: Dict[Tuple[int, ...], int] = {}
    distance_ids = np.zeros((len(cases), width), dtype=np.int64)
    oriented_ids = np.full((len(cases), width), -1, dtype=np.int64)
    for k in range(len(cases)):
        for t in range(counts[k]):
            tri = triangles[k, t].tolist()
            distance_ids[k, t] = distance_index.setdefault(tuple(sorted(tri)), len(distance_index))
            start = tri.index(min(tri))
            oriented_ids[k, t] = oriented_index.setdefault(tuple(tri[start:] + tri[:start]), len(oriented_index))
    distance_ids[triangles[..., 0] < 0] = len(distance_index)
    oriented = np.array(list(oriented_index), dtype=np.int64).reshape(-1, 3)

    triangle_counts = np.zeros((len(cases), len(oriented)))
    pair_index: Dict[Tuple[int, int], int] = {}
    pair_entries = []
    for k in range(len(cases)):
        ids = oriented_ids[k, :counts[k]]
        for u in ids:
            triangle_counts[k, u] += 1
        for s in range(len(ids)):
            for t in range(s + 1, len(ids)):
                if len(set(oriented[ids[s]].tolist()) & set(oriented[ids[t]].tolist())) == 2:
                    key = (int(min(ids[s], ids[t])), int(max(ids[s], ids[t])))
                    pair_entries.append((k, pair_index.setdefault(key, len(pair_index))))
    inner_counts = np.zeros((len(cases), len(pair_index)))
    for k, v in pair_entries:
        inner_counts[k, v] += 1

    # (b - a) x (c - a) = a x b + b x c + c x a: every normal is a signed sum of vertex cross products
    cross_index: Dict[Tuple[int, int], int] = {}
    cross_entries = []
    for u, (a, b, c) in enumerate(oriented.tolist()):
        for i, j in ((a, b), (b, c), (c, a)):
            w = cross_index.setdefault((min(i, j), max(i, j)), len(cross_index))
            cross_entries.append((w, u, 1.0 if i < j else -1.0))
    cross_signs = np.zeros((len(cross_index), len(oriented)))
    for w, u, sign in cross_entries:
        cross_signs[w, u] += sign

    face_segments = np.zeros((len(oriented), 6 * 6))
    for u, tri in enumerate(oriented):
        for face in range(6):
            positions = [_face_position(int(e), face // 2, face % 2) for e in tri]
            on_face = sorted(p for p in positions if p is not None)
            if len(on_face) == 2:
                face_segments[u, 6 * face + _SEGMENTS.index(tuple(on_face))] = 1.0
    bits = (cases[:, None] >> np.arange(8)[None]) & 1
    return _Tables(cases, triangles, counts == 0, bits,
                   np.array(list(distance_index), dtype=np.int64).reshape(-1, 3), distance_ids, oriented,
                   np.array(list(cross_index), dtype=np.int64).reshape(-1, 2), cross_signs, triangle_counts,
                   face_segments, np.concatenate(([0], np.cumsum((face_segments > 0).sum(1)))).astype(np.int64),
                   np.nonzero(face_segments)[1].astype(np.int64),
                   np.array(list(pair_index), dtype=np.int64).reshape(-1, 2), inner_counts)


_EDGE_AXIS = np.argmax(np.abs(CORNERS[EDGES[:, 1]] - CORNERS[EDGES[:, 0]]), axis=1)
_EDGE_ORIGIN = np.minimum(CORNERS[EDGES[:, 0]], CORNERS[EDGES[:, 1]])


def _device_tables(topologies: str, device: torch.device) -> Dict[str, torch.Tensor]:
    return _device_tables_cached(topologies, str(device))


@functools.lru_cache(maxsize=None)
def _device_tables_cached(topologies: str, device: str) -> Dict[str, torch.Tensor]:
    tables = _tables(topologies)
    return {name: torch.as_tensor(value, device=device) for name, value in tables._asdict().items()}


def topology_cases(topologies: str = "singly_connected") -> torch.Tensor:
    """The marching cubes case index of each topology of a set, in the order of the topology axis.

    Args:
        topologies: one of :data:`TOPOLOGY_SETS`.

    Returns:
        ``(K,)`` long, increasing: ``K = 140`` for ``"singly_connected"``, 256 for ``"all"``.
    """
    return torch.as_tensor(_tables(_check_topologies(topologies)).cases.copy())


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------
def _check_topologies(topologies) -> str:
    if topologies not in TOPOLOGY_SETS:
        raise ValueError(f"topologies must be one of {TOPOLOGY_SETS}, got {topologies!r}")
    return topologies


def _check_bbox(bbox) -> Tuple[float, float]:
    if (isinstance(bbox, (str, bytes)) or not isinstance(bbox, Sequence) or len(bbox) != 2
            or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in bbox)):
        raise ValueError(f"bbox must be a pair of numbers (lo, hi) giving the grid's cube [lo, hi]^3, got {bbox!r}")
    lo, hi = float(bbox[0]), float(bbox[1])
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"bbox must be finite with lo < hi, got {bbox!r}")
    return lo, hi


def _check_nonnegative(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def _check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _check_reduction(reduction) -> str:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    return reduction


def _check_method(method) -> str:
    if method not in ("auto", "reference", "numba"):
        raise ValueError(f"method must be 'auto', 'reference' or 'numba', got {method!r}")
    return method


def _use_numba(method: str, device: torch.device, kernels) -> bool:
    if method == "numba":
        if device.type != "cpu":
            raise ValueError(f"method='numba' needs CPU tensors, got tensors on {device}")
        if kernels is None:
            raise ValueError("method='numba' needs numba installed (pip install numba)")
        return True
    return method == "auto" and device.type == "cpu" and kernels is not None


def _check_unit_range(x: torch.Tensor, name: str) -> None:
    check_finite(x, name)
    if x.numel() and (bool((x < 0).any()) or bool((x > 1).any())):
        raise ValueError(f"{name} must lie in [0, 1], got values in [{float(x.min()):.4g}, {float(x.max()):.4g}]")


def _check_occupancy(occupancy) -> int:
    check_tensor(occupancy, "occupancy", ndim=4, kind="float", shape_hint="(B, N+1, N+1, N+1)")
    S = occupancy.shape[1]
    if occupancy.shape[2] != S or occupancy.shape[3] != S or S < 2:
        raise ValueError(f"occupancy must be a cubic grid of N+1 >= 2 points per axis (B, N+1, N+1, N+1), "
                         f"got shape {tuple(occupancy.shape)}")
    _check_unit_range(occupancy, "occupancy")
    return S - 1


def _check_grid(occupancy, displacements) -> int:
    """Check ``occupancy (B, N+1, N+1, N+1)`` and ``displacements (B, 3, N+1, N+1, N+1)``; return ``N``."""
    N = _check_occupancy(occupancy)
    check_tensor(displacements, "displacements", ndim=5, kind="float", shape_hint="(B, 3, N+1, N+1, N+1)")
    expected = (occupancy.shape[0], 3, N + 1, N + 1, N + 1)
    if tuple(displacements.shape) != expected:
        raise ValueError(f"displacements must have shape (B, 3, N+1, N+1, N+1) = {expected} to match occupancy "
                         f"{tuple(occupancy.shape)}, got shape {tuple(displacements.shape)}")
    if displacements.dtype != occupancy.dtype or displacements.device != occupancy.device:
        raise TypeError(f"displacements must have the dtype and device of occupancy ({occupancy.dtype} on "
                        f"{occupancy.device}), got {displacements.dtype} on {displacements.device}")
    _check_unit_range(displacements, "displacements")
    return N


def _cloud(points, lengths, name: str = "points"):
    """A padded ``(B, P, 3)`` cloud (or a ``Pointclouds``), its ``(B,)`` lengths and ``(B, P)`` validity mask."""
    points, lengths = unwrap_cloud(points, lengths, name)
    check_tensor(points, name, ndim=3, last_dim=3, kind="float", shape_hint="(B, P, 3)")
    B, P = points.shape[:2]
    if lengths is None:
        lengths = torch.full((B,), P, dtype=torch.long, device=points.device)
    else:
        lengths = check_lengths(lengths, "lengths", B, P, device=points.device)
    mask = lengths_to_mask(lengths, P)
    check_finite(points[mask], name)
    return points, lengths, mask


def _check_points(points, lengths, like: torch.Tensor):
    """:func:`_cloud` for a loss: the batch size, dtype and device must match ``like`` (the occupancy)."""
    points, lengths, mask = _cloud(points, lengths)
    if points.shape[0] != like.shape[0]:
        raise ValueError(f"points must have the batch size of occupancy ({like.shape[0]}), "
                         f"got shape {tuple(points.shape)}")
    if points.dtype != like.dtype or points.device != like.device:
        raise TypeError(f"points must have the dtype and device of occupancy ({like.dtype} on {like.device}), "
                        f"got {points.dtype} on {points.device}")
    return points, lengths, mask


# --------------------------------------------------------------------------------------------
# The layer: topology probabilities and edge vertices
# --------------------------------------------------------------------------------------------
def _corner_values(grid: torch.Tensor) -> torch.Tensor:
    """``(B, N+1, N+1, N+1)`` grid-point values -> ``(B, N, N, N, 8)`` values at each cell's corners."""
    N = grid.shape[1] - 1
    return torch.stack([grid[:, x:x + N, y:y + N, z:z + N] for x, y, z in CORNERS.tolist()], dim=-1)


def _topology_probabilities(occupancy: torch.Tensor, topologies: str) -> torch.Tensor:
    bits = _device_tables(topologies, occupancy.device)["bits"].to(occupancy.dtype)  # (K, 8)
    corners = _corner_values(occupancy)
    tiny = torch.finfo(occupancy.dtype).tiny
    # log p(T) = sum_c t_c log O_c + (1 - t_c) log(1 - O_c), normalised over the set by a softmax:
    # a product of eight small factors underflows (and p / sum(p) then divides 0 by 0) long before
    # its logarithm leaves the float range. The clamp only acts at occupancies of exactly 0 or 1.
    log_occupied = corners.clamp_min(tiny).log()
    log_free = (1 - corners).clamp_min(tiny).log()
    return torch.softmax(log_occupied @ bits.T + log_free @ (1 - bits).T, dim=-1)


def topology_probabilities(occupancy: torch.Tensor, topologies: str = "singly_connected") -> torch.Tensor:
    r"""The distribution over the topologies of every cell, :math:`p(T)=\prod_c O_c^{t_c}(1-O_c)^{1-t_c}`.

    Args:
        occupancy: ``(B, N+1, N+1, N+1)`` grid-point occupancy probabilities in ``[0, 1]``.
        topologies: one of :data:`TOPOLOGY_SETS`; topology ``k`` is case ``topology_cases(topologies)[k]``.

    Returns:
        ``(B, N, N, N, K)``, differentiable with respect to ``occupancy``. Each cell's values sum to 1:
        for ``"singly_connected"`` the product is renormalised over the 140 topologies, as in the
        paper. The products are formed as sums of logarithms, so a cell whose corners are nearly
        certain of a pattern outside the set still gets a valid distribution (its most likely
        topologies of the set). A corner at exactly 0 or 1 passes no gradient through the factor
        that is 0 there.

    Raises:
        TypeError / ValueError naming ``occupancy``: not a float tensor, not ``(B, N+1, N+1, N+1)``
        with ``N >= 1``, NaN, values outside ``[0, 1]``; an unknown ``topologies``.
    """
    topologies = _check_topologies(topologies)
    _check_occupancy(occupancy)
    return _topology_probabilities(occupancy, topologies)


def _local_vertices(displacements: torch.Tensor) -> torch.Tensor:
    """``(B, 3, N+1, N+1, N+1)`` -> ``(B, N, N, N, 12, 3)`` edge vertices in each cell's own frame (cell side 1)."""
    N = displacements.shape[2] - 1
    out = []
    for axis, (x, y, z) in zip(_EDGE_AXIS.tolist(), _EDGE_ORIGIN.tolist()):
        t = displacements[:, axis, x:x + N, y:y + N, z:z + N]
        coords = [torch.full_like(t, float(o)) for o in (x, y, z)]
        coords[axis] = coords[axis] + t
        out.append(torch.stack(coords, dim=-1))
    return torch.stack(out, dim=-2)


def _to_world(local: torch.Tensor, bbox: Tuple[float, float]) -> torch.Tensor:
    """Cell-frame vertices ``(B, N, N, N, ..., 3)`` -> world coordinates."""
    lo, hi = bbox
    N = local.shape[1]
    idx = torch.arange(N, device=local.device, dtype=local.dtype)
    cell = torch.stack(torch.meshgrid(idx, idx, idx, indexing="ij"), dim=-1)
    cell = cell.view(1, N, N, N, *([1] * (local.dim() - 5)), 3)
    return lo + (hi - lo) / N * (cell + local)


def edge_vertices(displacements: torch.Tensor, bbox: Tuple[float, float] = (-0.5, 0.5)) -> torch.Tensor:
    """The twelve surface vertex positions on the edges of every cell.

    Args:
        displacements: ``(B, 3, N+1, N+1, N+1)`` in ``[0, 1]`` (see the module docstring).
        bbox: ``(lo, hi)``, the grid's cube ``[lo, hi]^3``.

    Returns:
        ``(B, N, N, N, 12, 3)`` world coordinates, in the edge order of the marching cubes table;
        neighbouring cells share the vertices of their shared edges exactly. Differentiable.
    """
    bbox = _check_bbox(bbox)
    check_tensor(displacements, "displacements", ndim=5, kind="float", shape_hint="(B, 3, N+1, N+1, N+1)")
    S = displacements.shape[2]
    if displacements.shape[1] != 3 or S < 2 or displacements.shape[3] != S or displacements.shape[4] != S:
        raise ValueError(f"displacements must have shape (B, 3, N+1, N+1, N+1) with N >= 1, "
                         f"got shape {tuple(displacements.shape)}")
    _check_unit_range(displacements, "displacements")
    return _to_world(_local_vertices(displacements), bbox)


class DMCTopology(NamedTuple):
    """What :class:`DifferentiableMarchingCubes` returns.

    ``probabilities (B, N, N, N, K)``: each cell's distribution over the ``K`` topologies;
    ``vertices (B, N, N, N, 12, 3)``: the world positions of each cell's twelve edge vertices.
    The mesh of topology ``k`` in cell ``n`` is ``vertices[n][triangles[k, :num_triangles[k]]]``
    with the layer's ``triangles`` buffer.
    """

    probabilities: torch.Tensor
    vertices: torch.Tensor


class DifferentiableMarchingCubes(nn.Module):
    r"""The Deep Marching Cubes layer: per-cell topology distributions and per-topology meshes.

    Occupancies at the grid points give each cell the distribution
    :math:`p(T)=\prod_c O_c^{t_c}(1-O_c)^{1-t_c}` over its topologies (renormalised over the set
    in use); the displacements place one vertex on each grid edge. The losses of the paper take
    expectations over these distributions.

    Args:
        topologies: one of :data:`TOPOLOGY_SETS` (default: the paper's 140 singly connected ones).
        bbox: ``(lo, hi)``, the grid's cube ``[lo, hi]^3``.

    Buffers:
        ``cases (K,)`` long: the marching cubes case of each topology; ``triangles (K, T, 3)`` long:
        its triangles as edge ids, ``-1`` rows as padding (``T = 4``, or 5 for ``"all"``);
        ``num_triangles (K,)`` long.

    Shapes:
        - input: ``occupancy (B, N+1, N+1, N+1)`` in ``[0, 1]``, ``displacements (B, 3, N+1, N+1, N+1)``
          in ``[0, 1]``
        - output: :class:`DMCTopology` with ``probabilities (B, N, N, N, K)`` and
          ``vertices (B, N, N, N, 12, 3)``
    """

    def __init__(self, topologies: str = "singly_connected", bbox: Tuple[float, float] = (-0.5, 0.5)):
        super().__init__()
        self.topologies = _check_topologies(topologies)
        self.bbox = _check_bbox(bbox)
        tables = _tables(topologies)
        self.register_buffer("cases", torch.as_tensor(tables.cases.copy()), persistent=False)
        self.register_buffer("triangles", torch.as_tensor(tables.triangles.copy()), persistent=False)
        self.register_buffer("num_triangles", torch.as_tensor(NUM_TRIANGLES[tables.cases].astype(np.int64)),
                             persistent=False)

    @property
    def num_topologies(self) -> int:
        return int(self.cases.numel())

    def forward(self, occupancy: torch.Tensor, displacements: torch.Tensor) -> DMCTopology:
        _check_grid(occupancy, displacements)
        probs = _topology_probabilities(occupancy, self.topologies)
        return DMCTopology(probs, _to_world(_local_vertices(displacements), self.bbox))

    def extra_repr(self) -> str:
        return f"topologies={self.topologies!r}, num_topologies={self.num_topologies}, bbox={self.bbox}"


# --------------------------------------------------------------------------------------------
# Point-to-triangle distance
# --------------------------------------------------------------------------------------------
def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum(-1)


def _nonzero(x: torch.Tensor) -> torch.Tensor:
    """Where a squared length ``x`` may divide: above the square root of the smallest normal float, so
    that the backward pass (which divides by ``x^2``) stays finite."""
    return x > torch.finfo(x.dtype).tiny ** 0.5


def _segment_sq(from_start: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """Squared distance to a segment given ``point - start`` and ``end - start``; a zero-length
    segment is its start point."""
    length_sq = _dot(direction, direction)
    usable = _nonzero(length_sq)
    t = torch.where(usable, _dot(from_start, direction) / torch.where(usable, length_sq, torch.ones_like(length_sq)),
                    torch.zeros_like(length_sq)).clamp(0, 1)
    rest = from_start - t[..., None] * direction
    return _dot(rest, rest)


def _point_triangle_sq(p: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    ab, bc, ca = b - a, c - b, a - c
    ap, bp, cp = p - a, p - b, p - c
    normal = torch.linalg.cross(ab, -ca)
    normal_sq = _dot(normal, normal)
    flat = _nonzero(normal_sq)
    inside = ((_dot(torch.linalg.cross(ab, ap), normal) >= 0) & (_dot(torch.linalg.cross(bc, bp), normal) >= 0)
              & (_dot(torch.linalg.cross(ca, cp), normal) >= 0) & flat)
    plane = _dot(ap, normal) ** 2 / torch.where(flat, normal_sq, torch.ones_like(normal_sq))
    sides = torch.minimum(torch.minimum(_segment_sq(ap, ab), _segment_sq(bp, bc)), _segment_sq(cp, ca))
    return torch.where(inside, torch.minimum(plane, sides), sides)


def _safe_sqrt(x: torch.Tensor) -> torch.Tensor:
    """``sqrt(x)`` with a finite gradient: 0 (with a zero gradient) where ``x`` is (numerically) 0."""
    positive = _nonzero(x)
    return torch.where(positive, torch.where(positive, x, torch.ones_like(x)).sqrt(), torch.zeros_like(x))


def point_triangle_distance(points: torch.Tensor, triangles: torch.Tensor, squared: bool = False) -> torch.Tensor:
    """Euclidean distance from points to the closest point of (filled) triangles, batched by broadcasting.

    The closest point is the orthogonal projection onto the triangle's plane when it falls inside
    the triangle, else the closest point of the nearest side.

    Args:
        points: ``(..., 3)`` float.
        triangles: ``(..., 3, 3)`` float, the corners ``triangles[..., i, :]``; the batch
            dimensions broadcast with those of ``points``.
        squared: return squared distances.

    Returns:
        ``(...)`` distances, differentiable with respect to both inputs (at a zero distance the
        unsquared distance has a zero gradient). Degenerate triangles are handled: a
        triangle whose corners are collinear is its longest side, one whose corners coincide is a
        point (a squared side length or doubled area below the square root of the dtype's
        smallest normal number counts as zero, which keeps the gradients finite).

    Raises:
        TypeError / ValueError naming the argument: non-float or mismatched dtypes, last
        dimensions other than 3 / ``(3, 3)``, shapes that do not broadcast, NaN/inf values.
    """
    check_tensor(points, "points", last_dim=3, kind="float", shape_hint="(..., 3)")
    check_tensor(triangles, "triangles", kind="float", shape_hint="(..., 3, 3)")
    if triangles.dim() < 2 or tuple(triangles.shape[-2:]) != (3, 3):
        raise ValueError(f"triangles must have shape (..., 3, 3), got shape {tuple(triangles.shape)}")
    if triangles.dtype != points.dtype or triangles.device != points.device:
        raise TypeError(f"triangles must have the dtype and device of points ({points.dtype} on {points.device}), "
                        f"got {triangles.dtype} on {triangles.device}")
    try:
        batch = torch.broadcast_shapes(points.shape[:-1], triangles.shape[:-2])
    except RuntimeError:
        raise ValueError(f"points (..., 3) and triangles (..., 3, 3) must have broadcastable batch dimensions, "
                         f"got shapes {tuple(points.shape)} and {tuple(triangles.shape)}") from None
    check_finite(points, "points")
    check_finite(triangles, "triangles")
    points, triangles = points.expand(*batch, 3), triangles.expand(*batch, 3, 3)
    sq = _point_triangle_sq(points, triangles[..., 0, :], triangles[..., 1, :], triangles[..., 2, :])
    return sq if squared else _safe_sqrt(sq)


# --------------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------------
def _reduce(per_shape: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "none":
        return per_shape
    if reduction == "sum":
        return per_shape.sum()
    return per_shape.mean() if per_shape.numel() else per_shape.sum()


def _points_in_cells(points: torch.Tensor, mask: torch.Tensor, N: int, bbox: Tuple[float, float], name: str):
    """The valid points' cell index ``b * N^3 + (i * N + j) * N + k`` and position in their cell's frame."""
    lo, hi = bbox
    h = (hi - lo) / N
    valid = points[mask]
    batch = mask.nonzero()[:, 0]
    grid = (valid - lo) / h
    tol = 1e-4 * N
    outside = ((grid < -tol) | (grid > N + tol)).any(-1)
    if bool(outside.any()):
        first = valid[outside][0].tolist()
        raise ValueError(f"{name} must lie inside the grid's cube bbox=[{lo}, {hi}]^3; {int(outside.sum())} valid "
                         f"point(s) lie outside, the first at {first}. Normalise the clouds into the bbox (with "
                         f"a margin of a cell or two: the occupancy loss keeps the grid's outer shell free)")
    cell = grid.detach().floor().long().clamp(0, N - 1)
    key = batch * N ** 3 + (cell[:, 0] * N + cell[:, 1]) * N + cell[:, 2]
    return key, grid - cell.to(grid.dtype)


def _nearest_triangles_torch(vertices: torch.Tensor, cell_of_point: torch.Tensor, points: torch.Tensor,
                             tri_edges: torch.Tensor, distance_ids: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """The reference (any device): ``(P, K_s)`` index into ``tri_edges`` of the triangle of each surface
    topology nearest to each point, ``chunk_size`` points at a time."""
    P = points.shape[0]
    nearest = torch.empty(P, distance_ids.shape[0], dtype=torch.long, device=points.device)
    for start in range(0, P, chunk_size):
        stop = min(P, start + chunk_size)
        corners = vertices[cell_of_point[start:stop, None, None], tri_edges[None]]  # (Pc, U_d, 3, 3)
        sq = _point_triangle_sq(points[start:stop, None], corners[..., 0, :], corners[..., 1, :], corners[..., 2, :])
        sq = torch.cat((sq, torch.full_like(sq[:, :1], float("inf"))), dim=1)
        slot = sq[:, distance_ids].argmin(-1)  # (Pc, K_s)
        nearest[start:stop] = torch.gather(distance_ids.expand(stop - start, -1, -1), 2, slot[..., None])[..., 0]
    return nearest


@functools.lru_cache(maxsize=None)
def _numba_kernels():
    """The compiled CPU kernels (the reference's formulas), or ``None`` when numba cannot be imported."""
    try:
        from numba import njit
    except ImportError:
        return None

    @njit(cache=False, nogil=True)
    def segment(px, py, pz, sx, sy, sz, dx, dy, dz, threshold):
        """``(squared distance, parameter)`` of the closest point ``s + t d`` of a segment."""
        fx, fy, fz = px - sx, py - sy, pz - sz
        length_sq = dx * dx + dy * dy + dz * dz
        t = 0.0
        if length_sq > threshold:
            t = min(max((fx * dx + fy * dy + fz * dz) / length_sq, 0.0), 1.0)
        rx, ry, rz = fx - t * dx, fy - t * dy, fz - t * dz
        return rx * rx + ry * ry + rz * rz, t

    @njit(cache=False, nogil=True)
    def closest(px, py, pz, cell, e0, e1, e2, threshold, weights):
        """Squared distance from ``p`` to the triangle on edge vertices ``e0, e1, e2`` of ``cell (12, 3)``;
        the closest point's barycentric weights go to ``weights``."""
        ax, ay, az = cell[e0, 0], cell[e0, 1], cell[e0, 2]
        bx, by, bz = cell[e1, 0], cell[e1, 1], cell[e1, 2]
        cx, cy, cz = cell[e2, 0], cell[e2, 1], cell[e2, 2]
        abx, aby, abz = bx - ax, by - ay, bz - az
        bcx, bcy, bcz = cx - bx, cy - by, cz - bz
        cax, cay, caz = ax - cx, ay - cy, az - cz
        best, t = segment(px, py, pz, ax, ay, az, abx, aby, abz, threshold)
        weights[0], weights[1], weights[2] = 1.0 - t, t, 0.0
        d, t = segment(px, py, pz, bx, by, bz, bcx, bcy, bcz, threshold)
        if d < best:
            best = d
            weights[0], weights[1], weights[2] = 0.0, 1.0 - t, t
        d, t = segment(px, py, pz, cx, cy, cz, cax, cay, caz, threshold)
        if d < best:
            best = d
            weights[0], weights[1], weights[2] = t, 0.0, 1.0 - t
        nx, ny, nz = aby * -caz - abz * -cay, abz * -cax - abx * -caz, abx * -cay - aby * -cax
        normal_sq = nx * nx + ny * ny + nz * nz
        if normal_sq <= threshold:
            return best
        apx, apy, apz = px - ax, py - ay, pz - az
        bpx, bpy, bpz = px - bx, py - by, pz - bz
        cpx, cpy, cpz = px - cx, py - cy, pz - cz
        s_c = (aby * apz - abz * apy) * nx + (abz * apx - abx * apz) * ny + (abx * apy - aby * apx) * nz
        s_a = (bcy * bpz - bcz * bpy) * nx + (bcz * bpx - bcx * bpz) * ny + (bcx * bpy - bcy * bpx) * nz
        s_b = (cay * cpz - caz * cpy) * nx + (caz * cpx - cax * cpz) * ny + (cax * cpy - cay * cpx) * nz
        if s_a >= 0 and s_b >= 0 and s_c >= 0:
            along = apx * nx + apy * ny + apz * nz
            plane = along * along / normal_sq
            if plane < best:
                best = plane
                weights[0], weights[1], weights[2] = s_a / normal_sq, s_b / normal_sq, s_c / normal_sq
        return best

    @njit(cache=False, nogil=True)
    def forward(vertices, cell_of_point, points, tri_edges, distance_ids, threshold, dist, tri, weights):
        """For every point and surface topology: the nearest triangle, its squared distance and the
        barycentric weights of the closest point."""
        num_tris = tri_edges.shape[0]
        d = np.empty(num_tris, dtype=points.dtype)
        w = np.empty((num_tris, 3), dtype=points.dtype)
        for i in range(points.shape[0]):
            cell = vertices[cell_of_point[i]]
            px, py, pz = points[i, 0], points[i, 1], points[i, 2]
            for u in range(num_tris):
                d[u] = closest(px, py, pz, cell, tri_edges[u, 0], tri_edges[u, 1], tri_edges[u, 2], threshold, w[u])
            for k in range(distance_ids.shape[0]):
                best = distance_ids[k, 0]
                for t in range(1, distance_ids.shape[1]):
                    u = distance_ids[k, t]
                    if u < num_tris and d[u] < d[best]:
                        best = u
                tri[i, k] = best
                dist[i, k] = d[best]
                weights[i, k, 0], weights[i, k, 1], weights[i, k, 2] = w[best, 0], w[best, 1], w[best, 2]

    @njit(cache=False, nogil=True)
    def backward(grad, vertices, cell_of_point, points, tri_edges, dist, tri, weights, threshold, out):
        """``d |p - c| / d v_j = -w_j (p - c) / |p - c|`` for the closest point ``c = sum_j w_j v_j``
        (the barycentric weights are locally constant), added into ``out (M, 12, 3)``."""
        for i in range(points.shape[0]):
            m = cell_of_point[i]
            for k in range(grad.shape[1]):
                g = grad[i, k]
                if g == 0 or dist[i, k] <= threshold:
                    continue
                u = tri[i, k]
                cx, cy, cz = 0.0, 0.0, 0.0
                for j in range(3):
                    e = tri_edges[u, j]
                    cx += weights[i, k, j] * vertices[m, e, 0]
                    cy += weights[i, k, j] * vertices[m, e, 1]
                    cz += weights[i, k, j] * vertices[m, e, 2]
                scale = g / np.sqrt(dist[i, k])
                dx, dy, dz = (points[i, 0] - cx) * scale, (points[i, 1] - cy) * scale, (points[i, 2] - cz) * scale
                for j in range(3):
                    e = tri_edges[u, j]
                    out[m, e, 0] -= weights[i, k, j] * dx
                    out[m, e, 1] -= weights[i, k, j] * dy
                    out[m, e, 2] -= weights[i, k, j] * dz

    return forward, backward


class _PointMeshDistanceNumba(torch.autograd.Function):
    """``(P, K_s)`` distances to each surface topology's mesh with an analytic backward (CPU, numba)."""

    @staticmethod
    def forward(ctx, vertices, cell_of_point, points, tri_edges, distance_ids, kernels):
        forward_kernel, _ = kernels
        P, K = points.shape[0], distance_ids.shape[0]
        threshold = float(torch.finfo(points.dtype).tiny ** 0.5)
        v, cells, pts, edges = (t.detach().contiguous().numpy() for t in (vertices, cell_of_point, points, tri_edges))
        dist = np.empty((P, K), dtype=pts.dtype)
        tri = np.empty((P, K), dtype=np.int64)
        weights = np.empty((P, K, 3), dtype=pts.dtype)
        forward_kernel(v, cells, pts, edges, distance_ids.detach().contiguous().numpy(), threshold, dist, tri, weights)
        ctx.kernels, ctx.threshold = kernels, threshold
        ctx.arrays = (v, cells, pts, edges, dist, tri, weights)
        sq = torch.from_numpy(dist)
        return _safe_sqrt(sq)

    @staticmethod
    def backward(ctx, grad):
        _, backward_kernel = ctx.kernels
        v, cells, pts, edges, dist, tri, weights = ctx.arrays
        out = np.zeros_like(v)
        backward_kernel(grad.contiguous().numpy(), v, cells, pts, edges, dist, tri, weights, ctx.threshold, out)
        return torch.from_numpy(out), None, None, None, None, None


def _point_costs(local_vertices: torch.Tensor, cell_of_point: torch.Tensor, local_points: torch.Tensor,
                 tables: Dict[str, torch.Tensor], chunk_size: int, method: str = "auto") -> torch.Tensor:
    """``(P, K_s)`` distance (cell units) from each point to the mesh of each surface topology of its cell.

    ``local_vertices (M, 12, 3)``: the edge vertices of the cells holding points; ``cell_of_point (P,)``
    indexes them; the points receive no gradient. On the CPU with numba (``method="auto"``) one
    compiled pass finds each (point, topology)'s nearest triangle and the closest point's
    barycentric weights, and the backward pass scatters ``-w_j (p - c) / |p - c|`` to the three
    vertices: memory ``~ 5 K_s`` numbers per point. Otherwise (``"reference"``, other devices) the
    nearest triangles are found without gradients in chunks of ``chunk_size`` points, and only the
    distinct (point, triangle) pairs are evaluated again in torch with gradients.
    """
    surface = ~tables["empty"]
    distance_ids = tables["distance_ids"][surface]  # (K_s, T)
    tri_edges = tables["distance_triangles"]  # (U_d, 3)
    points = local_points.detach()
    kernels = _numba_kernels()
    if _use_numba(method, points.device, kernels):
        return _PointMeshDistanceNumba.apply(local_vertices, cell_of_point, points, tri_edges, distance_ids, kernels)
    num_tris = tri_edges.shape[0]
    with torch.no_grad():
        nearest = _nearest_triangles_torch(local_vertices.detach(), cell_of_point, points, tri_edges, distance_ids,
                                           chunk_size)
        pairs, inverse = torch.unique(torch.arange(points.shape[0], device=nearest.device)[:, None] * num_tris
                                      + nearest, return_inverse=True)
    point, tri = pairs // num_tris, pairs % num_tris
    corners = local_vertices[cell_of_point[point, None], tri_edges[tri]]  # (Q, 3, 3)
    dist = _safe_sqrt(_point_triangle_sq(points[point], corners[:, 0], corners[:, 1], corners[:, 2]))
    return dist[inverse]


def _expected_point_to_mesh(probs: torch.Tensor, local_vertices: torch.Tensor, points: torch.Tensor,
                            mask: torch.Tensor, bbox: Tuple[float, float], topologies: str, empty_penalty: float,
                            free_cell_cost: float, chunk_size: int, method: str = "auto") -> torch.Tensor:
    B, N = probs.shape[0], probs.shape[1]
    tables = _device_tables(topologies, probs.device)
    K = probs.shape[-1]
    flat_probs = probs.reshape(B * N ** 3, K)
    surface = ~tables["empty"]
    surface_prob = flat_probs[:, surface].sum(-1)
    key, local_points = _points_in_cells(points, mask, N, bbox, "points")
    cells, cell_of_point, counts = torch.unique(key, return_inverse=True, return_counts=True)
    free = torch.ones(B * N ** 3, dtype=torch.bool, device=probs.device)
    free[cells] = False
    per_shape = free_cell_cost * (surface_prob * free).view(B, -1).sum(1)
    if cells.numel():
        cell_vertices = local_vertices.reshape(B * N ** 3, 12, 3)[cells]
        dist = _point_costs(cell_vertices, cell_of_point, local_points, tables, chunk_size, method)
        weights = (1.0 / counts.to(dist.dtype))[cell_of_point]
        mean_dist = dist.new_zeros(cells.numel(), dist.shape[1]).index_add(0, cell_of_point, dist * weights[:, None])
        cost = mean_dist.new_empty(cells.numel(), K)
        cost[:, surface] = mean_dist
        cost[:, ~surface] = empty_penalty * mean_dist.detach().amax(1, keepdim=True)
        expected = (flat_probs[cells] * cost).sum(-1)
        per_shape = per_shape.index_add(0, cells // N ** 3, expected)
    return per_shape / N ** 3


def expected_point_to_mesh_loss(
    occupancy: torch.Tensor,
    displacements: torch.Tensor,
    points,
    lengths: Optional[torch.Tensor] = None,
    *,
    bbox: Tuple[float, float] = (-0.5, 0.5),
    topologies: str = "singly_connected",
    empty_penalty: float = 10.0,
    free_cell_cost: float = 1.0,
    reduction: str = "mean",
    chunk_size: int = 4096,
    method: str = "auto",
) -> torch.Tensor:
    r"""The paper's expected point-to-mesh loss :math:`\frac{1}{N^3}\sum_n \sum_T p_n(T)\,\Delta_n(T)`.

    For a cell ``n`` holding ground-truth points :math:`X_n`, :math:`\Delta_n(T)` is the mean over
    :math:`x \in X_n` of the distance from ``x`` to the nearest triangle of topology ``T``'s mesh
    in that cell (the mean, as in the authors' code, so densely sampled cells do not dominate);
    the empty topologies cost ``empty_penalty`` times the largest :math:`\Delta_n` of the cell
    (a constant: no gradient flows through it). For a cell without points, every topology with a
    surface costs ``free_cell_cost`` and the empty ones 0. Distances are in cell lengths
    (``h = (hi - lo) / N``), so the loss does not change with the bbox's scale.

    Only the cells that hold points need distances: they are found by sorting the points' cell
    indices, and the nearest triangle of every (point, topology) pair is searched without gradients
    in chunks of ``chunk_size`` points before the chosen pairs are evaluated with gradients.

    Args:
        occupancy: ``(B, N+1, N+1, N+1)`` grid-point occupancy probabilities in ``[0, 1]``.
        displacements: ``(B, 3, N+1, N+1, N+1)`` vertex displacements in ``[0, 1]``.
        points: ``(B, P, 3)`` ground-truth surface points (or a ``Pointclouds``), inside ``bbox``;
            points on a face between cells count in the cell above it (the last cell at ``hi``).
        lengths: ``(B,)`` valid points per cloud (default: all ``P``); padding is ignored.
        bbox: ``(lo, hi)``, the grid's cube ``[lo, hi]^3``.
        topologies: one of :data:`TOPOLOGY_SETS`.
        empty_penalty: the cost factor of the empty topologies in cells with points (paper: 10).
        free_cell_cost: the cost of a surface in a cell without points, in cell lengths (paper: 1).
        reduction: ``"mean"`` or ``"sum"`` over the batch, or ``"none"`` for ``(B,)``.
        chunk_size: points per chunk of the torch nearest-triangle search (memory ``~ 4 KB`` per point).
        method: ``"auto"`` (``"numba"`` for CPU tensors when numba imports, else ``"reference"``),
            ``"reference"`` (torch, any device: the nearest triangles without gradients, then the
            distinct (point, triangle) pairs again with gradients) or ``"numba"`` (CPU: one
            compiled pass and an analytic backward, ``-w_j (x - c) / |x - c|`` for the closest
            point ``c = sum_j w_j v_j``). Both give the same values and gradients.

    Returns:
        A scalar (or ``(B,)``), differentiable with respect to ``occupancy`` and ``displacements``.
        A cloud without points only gets the free-cell term.

    Raises:
        TypeError / ValueError naming the argument: shapes, dtypes or devices that do not match,
        NaN/inf, occupancies or displacements outside ``[0, 1]``, points outside ``bbox``, bad options.
    """
    topologies = _check_topologies(topologies)
    bbox = _check_bbox(bbox)
    _check_grid(occupancy, displacements)
    points, lengths, mask = _check_points(points, lengths, occupancy)
    empty_penalty = _check_nonnegative(empty_penalty, "empty_penalty")
    free_cell_cost = _check_nonnegative(free_cell_cost, "free_cell_cost")
    reduction = _check_reduction(reduction)
    chunk_size = _check_positive_int(chunk_size, "chunk_size")
    method = _check_method(method)
    probs = _topology_probabilities(occupancy, topologies)
    per_shape = _expected_point_to_mesh(probs, _local_vertices(displacements), points, mask, bbox, topologies,
                                        empty_penalty, free_cell_cost, chunk_size, method)
    return _reduce(per_shape, reduction)


def _shell_weight(size: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``(S, S, S)`` weights of the free-shell prior: the grid's outer layer blurred by a 3^3 Gaussian
    (sigma 1, edge values repeated outwards) and scaled to a maximum of 1, as in the authors' code."""
    shell = torch.ones(size, size, size, dtype=dtype, device=device)
    if size > 2:
        shell[1:-1, 1:-1, 1:-1] = 0
    ax = torch.arange(-1, 2, dtype=dtype, device=device)
    kernel = torch.exp(-(ax[:, None, None] ** 2 + ax[None, :, None] ** 2 + ax[None, None, :] ** 2) / 2)
    blurred = F.conv3d(F.pad(shell[None, None], (1,) * 6, mode="replicate"), kernel[None, None])[0, 0]
    return blurred / blurred.max()


def shell_occupancy_loss(occupancy: torch.Tensor, interior_weight: float = 0.2, reduction: str = "mean") -> torch.Tensor:
    r"""The occupancy prior: the grid's outer shell is free and, early in training, its centre occupied.

    The point-to-mesh and curvature losses do not change when inside and outside swap; this prior
    fixes the sign. Per shape it is

    .. math:: \frac{\sum_n w_n O_n}{\sum_n w_n} + \lambda\, a\, \bigl(1 - \overline{O}_{\mathrm{centre}}\bigr)

    where ``w`` is the outer layer of grid points blurred by a ``3^3`` Gaussian (so the layer
    below it is pushed too), :math:`\overline{O}_{\mathrm{centre}}` the mean occupancy of the
    central ``[0.2, 0.8]^3`` of the grid, :math:`\lambda` = ``interior_weight`` and
    :math:`a = 1 -` (mean of the largest 1/30 of the occupancies), a constant that fades the
    second term once some region is confidently occupied (the authors' code).

    Args:
        occupancy: ``(B, N+1, N+1, N+1)`` in ``[0, 1]``.
        interior_weight: :math:`\lambda >= 0` (paper: 0.2; 0 keeps only the free shell).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``(B,)``).

    Returns:
        A scalar (or ``(B,)``) differentiable with respect to ``occupancy``.
    """
    N = _check_occupancy(occupancy)
    interior_weight = _check_nonnegative(interior_weight, "interior_weight")
    reduction = _check_reduction(reduction)
    S = N + 1
    B = occupancy.shape[0]
    weight = _shell_weight(S, occupancy.dtype, occupancy.device)
    free = (occupancy * weight).flatten(1).sum(1) / weight.sum()
    lo, hi = int(0.2 * S), max(int(0.8 * S), int(0.2 * S) + 1)
    centre = occupancy[:, lo:hi, lo:hi, lo:hi].flatten(1).mean(1)
    top = max(1, S ** 3 // 30)
    confident = occupancy.detach().flatten(1).topk(top, dim=1).values.mean(1) if B else occupancy.new_zeros(0)
    return _reduce(free + interior_weight * (1 - confident) * (1 - centre), reduction)


def smoothness_loss(occupancy: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    r"""The paper's smoothness loss :math:`\frac{1}{N^3}\sum_{m \sim n} |O_m - O_n|` over the pairs of
    neighbouring grid points (6-neighbourhood, each pair once).

    Args:
        occupancy: ``(B, N+1, N+1, N+1)`` in ``[0, 1]``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``(B,)``).

    Returns:
        A scalar (or ``(B,)``) differentiable with respect to ``occupancy`` (the L1 term has a zero
        subgradient where neighbours are equal).
    """
    N = _check_occupancy(occupancy)
    reduction = _check_reduction(reduction)
    total = sum((occupancy.diff(dim=d).abs().flatten(1).sum(1) for d in (1, 2, 3)))
    return _reduce(total / N ** 3, reduction)


def _curvature_terms_torch(local_vertices: torch.Tensor, q: torch.Tensor, w: torch.Tensor, cross_pairs: torch.Tensor,
                           cross_signs: torch.Tensor, face_segments: torch.Tensor,
                           inner_pairs: torch.Tensor) -> torch.Tensor:
    """Per-cell sums for the curvature loss (the reference): ``(C, 36 * 5 + 1)``.

    ``q (C, U)``: the probability that the cell holds oriented triangle ``u``; ``w (C, V)``: that it
    holds the adjacent triangle pair ``v``. For each face ``f`` and segment ``s`` (column ``6 f + s``):
    ``Q = sum_u q_u``, ``R = sum_u q_u |n_u|^2`` and ``A = sum_u q_u n_u`` (laid out ``(3, 36)``) over
    the triangles ``u`` bounding that segment, ``n_u`` the unit normal; then the cell's inner term
    ``sum_v w_v |n_a - n_b|^2``.
    """
    C = local_vertices.shape[0]
    # The normals of all triangles come from the 66 cross products of vertex pairs by one matmul
    # (much cheaper than gathering every triangle's corners); layout (C, 3, U).
    crosses = torch.linalg.cross(local_vertices[:, cross_pairs[:, 0]], local_vertices[:, cross_pairs[:, 1]])
    normals = (crosses.transpose(1, 2).reshape(3 * C, -1) @ cross_signs).view(C, 3, -1)
    length_sq = (normals * normals).sum(1, keepdim=True)
    usable = _nonzero(length_sq)
    normals = torch.where(usable, normals / torch.where(usable, length_sq, torch.ones_like(length_sq)).sqrt(),
                          torch.zeros_like(normals))
    Q = q @ face_segments
    R = (q * usable[:, 0].to(q.dtype)) @ face_segments
    A = ((q[:, None] * normals).view(3 * C, -1) @ face_segments).view(C, 3, -1)
    inner = normals[..., inner_pairs[:, 0]] - normals[..., inner_pairs[:, 1]]
    inner = (w * (inner * inner).sum(1)).sum(-1)
    return torch.cat((Q, R, A.flatten(1), inner[:, None]), dim=1)


@functools.lru_cache(maxsize=None)
def _numba_curvature_kernels():
    """The compiled CPU curvature sums and their backward, or ``None`` when numba cannot be imported."""
    try:
        from numba import njit
    except ImportError:
        return None

    @njit(cache=False, nogil=True)
    def normals_of(cell, tris, threshold, unit, inv_length):
        """Unit normals ``(U, 3)`` of the cell's oriented triangles (zero where degenerate) and 1 / |n|."""
        for u in range(tris.shape[0]):
            a, b, c = tris[u, 0], tris[u, 1], tris[u, 2]
            e1x, e1y, e1z = cell[b, 0] - cell[a, 0], cell[b, 1] - cell[a, 1], cell[b, 2] - cell[a, 2]
            e2x, e2y, e2z = cell[c, 0] - cell[a, 0], cell[c, 1] - cell[a, 1], cell[c, 2] - cell[a, 2]
            nx, ny, nz = e1y * e2z - e1z * e2y, e1z * e2x - e1x * e2z, e1x * e2y - e1y * e2x
            length_sq = nx * nx + ny * ny + nz * nz
            if length_sq > threshold:
                inv = 1.0 / np.sqrt(length_sq)
                unit[u, 0], unit[u, 1], unit[u, 2] = nx * inv, ny * inv, nz * inv
                inv_length[u] = inv
            else:
                unit[u, 0], unit[u, 1], unit[u, 2] = 0.0, 0.0, 0.0
                inv_length[u] = 0.0

    @njit(cache=False, nogil=True)
    def forward(vertices, q, w, tris, inc_ptr, inc_fs, inner_pairs, threshold, out):
        unit = np.empty((tris.shape[0], 3), dtype=vertices.dtype)
        inv_length = np.empty(tris.shape[0], dtype=vertices.dtype)
        for c in range(vertices.shape[0]):
            normals_of(vertices[c], tris, threshold, unit, inv_length)
            for u in range(tris.shape[0]):
                qu = q[c, u]
                if qu == 0:
                    continue
                usable = 1.0 if inv_length[u] > 0 else 0.0
                for j in range(inc_ptr[u], inc_ptr[u + 1]):
                    fs = inc_fs[j]
                    out[c, fs] += qu
                    out[c, 36 + fs] += qu * usable
                    out[c, 72 + fs] += qu * unit[u, 0]
                    out[c, 108 + fs] += qu * unit[u, 1]
                    out[c, 144 + fs] += qu * unit[u, 2]
            inner = 0.0
            for v in range(inner_pairs.shape[0]):
                a, b = inner_pairs[v, 0], inner_pairs[v, 1]
                dx, dy, dz = unit[a, 0] - unit[b, 0], unit[a, 1] - unit[b, 1], unit[a, 2] - unit[b, 2]
                inner += w[c, v] * (dx * dx + dy * dy + dz * dz)
            out[c, 180] = inner

    @njit(cache=False, nogil=True)
    def backward(grad, vertices, q, w, tris, inc_ptr, inc_fs, inner_pairs, threshold, g_vertices, g_q, g_w):
        U = tris.shape[0]
        unit = np.empty((U, 3), dtype=vertices.dtype)
        inv_length = np.empty(U, dtype=vertices.dtype)
        g_unit = np.empty((U, 3), dtype=vertices.dtype)
        for c in range(vertices.shape[0]):
            cell = vertices[c]
            normals_of(cell, tris, threshold, unit, inv_length)
            for u in range(U):
                usable = 1.0 if inv_length[u] > 0 else 0.0
                gq, gx, gy, gz = 0.0, 0.0, 0.0, 0.0
                for j in range(inc_ptr[u], inc_ptr[u + 1]):
                    fs = inc_fs[j]
                    ax, ay, az = grad[c, 72 + fs], grad[c, 108 + fs], grad[c, 144 + fs]
                    gq += grad[c, fs] + usable * grad[c, 36 + fs] + unit[u, 0] * ax + unit[u, 1] * ay + unit[u, 2] * az
                    gx += ax
                    gy += ay
                    gz += az
                g_q[c, u] = gq
                qu = q[c, u]
                g_unit[u, 0], g_unit[u, 1], g_unit[u, 2] = qu * gx, qu * gy, qu * gz
            g_inner = grad[c, 180]
            for v in range(inner_pairs.shape[0]):
                a, b = inner_pairs[v, 0], inner_pairs[v, 1]
                dx, dy, dz = unit[a, 0] - unit[b, 0], unit[a, 1] - unit[b, 1], unit[a, 2] - unit[b, 2]
                g_w[c, v] = g_inner * (dx * dx + dy * dy + dz * dz)
                coef = 2.0 * w[c, v] * g_inner
                g_unit[a, 0] += coef * dx
                g_unit[a, 1] += coef * dy
                g_unit[a, 2] += coef * dz
                g_unit[b, 0] -= coef * dx
                g_unit[b, 1] -= coef * dy
                g_unit[b, 2] -= coef * dz
            for u in range(U):
                inv = inv_length[u]
                if inv == 0:
                    continue
                # through the normalisation: (I - n n^T) g / |n|, then through n = e1 x e2
                along = unit[u, 0] * g_unit[u, 0] + unit[u, 1] * g_unit[u, 1] + unit[u, 2] * g_unit[u, 2]
                gnx = (g_unit[u, 0] - unit[u, 0] * along) * inv
                gny = (g_unit[u, 1] - unit[u, 1] * along) * inv
                gnz = (g_unit[u, 2] - unit[u, 2] * along) * inv
                a, b, d = tris[u, 0], tris[u, 1], tris[u, 2]
                e1x, e1y, e1z = cell[b, 0] - cell[a, 0], cell[b, 1] - cell[a, 1], cell[b, 2] - cell[a, 2]
                e2x, e2y, e2z = cell[d, 0] - cell[a, 0], cell[d, 1] - cell[a, 1], cell[d, 2] - cell[a, 2]
                g1x, g1y, g1z = e2y * gnz - e2z * gny, e2z * gnx - e2x * gnz, e2x * gny - e2y * gnx
                g2x, g2y, g2z = gny * e1z - gnz * e1y, gnz * e1x - gnx * e1z, gnx * e1y - gny * e1x
                g_vertices[c, b, 0] += g1x
                g_vertices[c, b, 1] += g1y
                g_vertices[c, b, 2] += g1z
                g_vertices[c, d, 0] += g2x
                g_vertices[c, d, 1] += g2y
                g_vertices[c, d, 2] += g2z
                g_vertices[c, a, 0] -= g1x + g2x
                g_vertices[c, a, 1] -= g1y + g2y
                g_vertices[c, a, 2] -= g1z + g2z

    return forward, backward


class _CurvatureTermsNumba(torch.autograd.Function):
    """:func:`_curvature_terms_torch` on the CPU with numba, with an analytic backward that recomputes
    the normals (memory: the per-cell sums only)."""

    @staticmethod
    def forward(ctx, vertices, q, w, tris, inc_ptr, inc_fs, inner_pairs, kernels):
        forward_kernel, _ = kernels
        arrays = tuple(t.detach().contiguous().numpy() for t in (vertices, q, w, tris, inc_ptr, inc_fs, inner_pairs))
        threshold = float(torch.finfo(vertices.dtype).tiny ** 0.5)
        out = np.zeros((vertices.shape[0], 36 * 5 + 1), dtype=arrays[0].dtype)
        forward_kernel(*arrays, threshold, out)
        ctx.kernels, ctx.threshold, ctx.arrays = kernels, threshold, arrays
        return torch.from_numpy(out)

    @staticmethod
    def backward(ctx, grad):
        _, backward_kernel = ctx.kernels
        vertices, q, w = ctx.arrays[:3]
        g_vertices, g_q, g_w = np.zeros_like(vertices), np.empty_like(q), np.empty_like(w)
        backward_kernel(grad.contiguous().numpy(), *ctx.arrays, ctx.threshold, g_vertices, g_q, g_w)
        return torch.from_numpy(g_vertices), torch.from_numpy(g_q), torch.from_numpy(g_w), None, None, None, None, None


def _curvature(probs: torch.Tensor, local_vertices: torch.Tensor, topologies: str, min_weight: float,
               chunk_size: int, method: str = "auto", cells: Optional[torch.Tensor] = None) -> torch.Tensor:
    B, N = probs.shape[0], probs.shape[1]
    tables = _device_tables(topologies, probs.device)
    K = probs.shape[-1]
    flat_probs = probs.reshape(-1, K)
    flat_vertices = local_vertices.reshape(-1, 12, 3)
    dtype = probs.dtype
    keep = flat_probs.detach()[:, ~tables["empty"]].sum(-1) >= min_weight
    if cells is not None:
        keep = keep & cells.reshape(-1)
    active = keep.nonzero()[:, 0]
    selected = flat_probs[active]
    q = selected @ tables["triangle_counts"].to(dtype)
    w = selected @ tables["inner_counts"].to(dtype)
    kernels = _numba_curvature_kernels()
    if _use_numba(method, probs.device, kernels):
        terms = _CurvatureTermsNumba.apply(flat_vertices[active], q, w, tables["oriented_triangles"],
                                           tables["segment_ptr"], tables["segment_ids"], tables["inner_pairs"], kernels)
    else:
        constants = (tables["cross_pairs"], tables["cross_signs"].to(dtype), tables["face_segments"].to(dtype),
                     tables["inner_pairs"])
        chunked = active.numel() > chunk_size and torch.is_grad_enabled() and flat_vertices.requires_grad
        parts = []
        for start in range(0, active.numel(), chunk_size):
            args = (flat_vertices[active[start:start + chunk_size]], q[start:start + chunk_size],
                    w[start:start + chunk_size])
            if chunked:
                # Recomputing the normals in backward keeps the memory at the per-cell sums.
                parts.append(checkpoint(_curvature_terms_torch, *args, *constants, use_reentrant=False))
            else:
                parts.append(_curvature_terms_torch(*args, *constants))
        terms = torch.cat(parts) if parts else flat_vertices.new_zeros(0, 36 * 5 + 1)
    width = 36 * 5 + 1
    terms = torch.zeros(B * N ** 3, width, dtype=dtype, device=probs.device).index_copy(0, active, terms)
    terms = terms.view(B, N, N, N, width)
    Q, R, A = terms[..., :36], terms[..., 36:72], terms[..., 72:180].unflatten(-1, (3, 36))
    per_shape = terms[..., 180].flatten(1).sum(1)
    for axis in range(3):
        near = [slice(None)] * 4
        far = [slice(None)] * 4
        near[axis + 1] = slice(0, N - 1)
        far[axis + 1] = slice(1, N)
        high, low = slice(6 * (2 * axis + 1), 6 * (2 * axis + 2)), slice(6 * 2 * axis, 6 * (2 * axis + 1))
        Qn, Rn, An = Q[tuple(near)][..., high], R[tuple(near)][..., high], A[tuple(near)][..., high]
        Qm, Rm, Am = Q[tuple(far)][..., low], R[tuple(far)][..., low], A[tuple(far)][..., low]
        pair = Qn * Rm + Rn * Qm - 2 * (An * Am).sum(-2)
        per_shape = per_shape + pair.flatten(1).sum(1)
    return per_shape / N ** 3


def curvature_loss(
    occupancy: torch.Tensor,
    displacements: torch.Tensor,
    *,
    topologies: str = "singly_connected",
    detach_weights: bool = True,
    min_weight: float = 1e-3,
    cells: Optional[torch.Tensor] = None,
    reduction: str = "mean",
    chunk_size: int = 2048,
    method: str = "auto",
) -> torch.Tensor:
    r"""The paper's curvature loss: neighbouring triangles should have similar normals.

    .. math:: \frac{1}{N^3}\Bigl[\sum_{n \sim m} \sum_{T_n, T_m} p_n(T_n)\,p_m(T_m)
              \sum_{(u, v)} \lVert \nu_u - \nu_v \rVert^2 + \sum_n \sum_T p_n(T) \sum_{(u, v) \in T}
              \lVert \nu_u - \nu_v \rVert^2\Bigr]

    The first sum runs over cells ``n, m`` sharing a face and the triangle pairs ``u`` of
    :math:`T_n` and ``v`` of :math:`T_m` that meet on that face along the same segment (each
    has two vertices on the face, on the same two grid edges); the second over the pairs of
    triangles of one topology that share a side. :math:`\nu` are unit normals (oriented by the
    table, so a fold counts as well as a kink; a zero-area triangle has a zero normal).

    Args:
        occupancy: ``(B, N+1, N+1, N+1)`` in ``[0, 1]``.
        displacements: ``(B, 3, N+1, N+1, N+1)`` in ``[0, 1]``.
        topologies: one of :data:`TOPOLOGY_SETS`.
        detach_weights: treat the topology probabilities as constants, as the authors' code does
            (then only ``displacements`` get a gradient).
        min_weight: skip cells whose probability of holding a surface is below this (their terms
            are at most a few times ``min_weight`` each); 0 computes every cell.
        cells: ``(B, N, N, N)`` bool, or ``None`` for all: evaluate only these cells (a term
            between a selected cell and an unselected neighbour is dropped).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``(B,)``).
        chunk_size: cells per chunk of the torch path; when there is more than one chunk and
            gradients are needed, each chunk's normals are recomputed in backward (activation
            checkpointing), so the memory kept for backward stays at ~180 numbers per cell.
        method: ``"auto"`` (``"numba"`` for CPU tensors when numba imports, else ``"reference"``),
            ``"reference"`` (torch, any device) or ``"numba"`` (CPU: one compiled pass per cell and
            an analytic backward that recomputes the normals). Both give the same values.

    Returns:
        A scalar (or ``(B,)``), differentiable with respect to ``displacements`` (and
        ``occupancy`` unless ``detach_weights``).
    """
    topologies = _check_topologies(topologies)
    N = _check_grid(occupancy, displacements)
    min_weight = _check_nonnegative(min_weight, "min_weight")
    reduction = _check_reduction(reduction)
    chunk_size = _check_positive_int(chunk_size, "chunk_size")
    method = _check_method(method)
    if cells is not None:
        check_tensor(cells, "cells", ndim=4, shape_hint="(B, N, N, N)")
        expected = (occupancy.shape[0], N, N, N)
        if cells.dtype != torch.bool or tuple(cells.shape) != expected:
            raise ValueError(f"cells must be a bool tensor of shape (B, N, N, N) = {expected}, got {describe(cells)}")
        cells = cells.to(occupancy.device)
    probs = _topology_probabilities(occupancy, topologies)
    if detach_weights:
        probs = probs.detach()
    return _reduce(_curvature(probs, _local_vertices(displacements), topologies, min_weight, chunk_size, method,
                              cells), reduction)


class DMCLoss(NamedTuple):
    """What :func:`dmc_loss` returns: the weighted ``total`` and the four unweighted terms (all scalars)."""

    total: torch.Tensor
    point_to_mesh: torch.Tensor
    occupancy: torch.Tensor
    smoothness: torch.Tensor
    curvature: torch.Tensor


def dmc_loss(
    occupancy: torch.Tensor,
    displacements: torch.Tensor,
    points,
    lengths: Optional[torch.Tensor] = None,
    *,
    bbox: Tuple[float, float] = (-0.5, 0.5),
    topologies: str = "singly_connected",
    weights: Optional[Dict[str, float]] = None,
    interior_weight: float = 0.2,
    min_weight: float = 1e-3,
    curvature_band: Optional[int] = None,
    method: str = "auto",
) -> DMCLoss:
    """The Deep Marching Cubes training loss: the four losses, each averaged over the batch, weighted.

    ``total = w_p * point_to_mesh + w_o * occupancy + w_s * smoothness + w_c * curvature``. The
    topology distribution and the edge vertices are computed once for all terms; each term is
    the function of the same name with its defaults (the paper's), averaged over the batch.

    Args:
        occupancy: ``(B, N+1, N+1, N+1)`` in ``[0, 1]``.
        displacements: ``(B, 3, N+1, N+1, N+1)`` in ``[0, 1]``.
        points: ``(B, P, 3)`` ground-truth surface points inside ``bbox`` (or a ``Pointclouds``).
        lengths: ``(B,)`` valid points per cloud (default: all ``P``).
        bbox: ``(lo, hi)``, the grid's cube ``[lo, hi]^3``.
        topologies: one of :data:`TOPOLOGY_SETS`.
        weights: ``{name: weight}`` for some keys of :data:`DMC_LOSS_WEIGHTS`; the others keep
            their defaults (5, 10, 3, 3).
        interior_weight: the centre prior of :func:`shell_occupancy_loss`.
        min_weight: the cell threshold of :func:`curvature_loss`.
        curvature_band: ``None`` evaluates the curvature term on every cell (the paper); an
            integer ``k >= 0`` only on the cells within ``k`` cells (along each axis) of a cell
            holding points. The surface the data supports lies there and the point-to-mesh loss
            empties the other cells; early in training, when every cell is uncertain, this makes
            the term several times cheaper.
        method: the path of the point-to-mesh and curvature terms (see those functions).

    Returns:
        :class:`DMCLoss` of scalars; ``total`` is differentiable with respect to both grids.
    """
    topologies = _check_topologies(topologies)
    bbox = _check_bbox(bbox)
    N = _check_grid(occupancy, displacements)
    points, lengths, mask = _check_points(points, lengths, occupancy)
    interior_weight = _check_nonnegative(interior_weight, "interior_weight")
    min_weight = _check_nonnegative(min_weight, "min_weight")
    if weights is not None and (not isinstance(weights, dict) or set(weights) - set(DMC_LOSS_WEIGHTS)):
        raise ValueError(f"weights must be a dict with keys among {sorted(DMC_LOSS_WEIGHTS)}, got {weights!r}")
    w = dict(DMC_LOSS_WEIGHTS, **(weights or {}))
    for key, value in w.items():
        _check_nonnegative(value, f"weights[{key!r}]")
    method = _check_method(method)
    if curvature_band is not None and (isinstance(curvature_band, bool) or not isinstance(curvature_band, int)
                                       or curvature_band < 0):
        raise ValueError(f"curvature_band must be None or an integer >= 0, got {curvature_band!r}")
    probs = _topology_probabilities(occupancy, topologies)
    local = _local_vertices(displacements)
    point = _expected_point_to_mesh(probs, local, points, mask, bbox, topologies, 10.0, 1.0, 4096, method).mean()
    occ = shell_occupancy_loss(occupancy, interior_weight)
    smooth = smoothness_loss(occupancy)
    cells = None
    if curvature_band is not None:
        key, _ = _points_in_cells(points, mask, N, bbox, "points")
        cells = torch.zeros(occupancy.shape[0] * N ** 3, dtype=occupancy.dtype, device=occupancy.device)
        cells = cells.index_fill(0, key, 1.0).view(-1, 1, N, N, N)
        size = 2 * curvature_band + 1
        cells = F.max_pool3d(cells, size, stride=1, padding=curvature_band)[:, 0] > 0
    curve = _curvature(probs.detach(), local, topologies, min_weight, 2048, method, cells).mean()
    total = w["point_to_mesh"] * point + w["occupancy"] * occ + w["smoothness"] * smooth + w["curvature"] * curve
    return DMCLoss(total, point, occ, smooth, curve)


# --------------------------------------------------------------------------------------------
# Mesh extraction
# --------------------------------------------------------------------------------------------
def extract_mesh(
    occupancy: torch.Tensor,
    displacements: torch.Tensor,
    bbox: Tuple[float, float] = (-0.5, 0.5),
    mode: str = "marching_cubes",
    threshold: float = 0.5,
    topologies: str = "singly_connected",
) -> Meshes:
    """Triangle meshes from predicted occupancies and displacements.

    Args:
        occupancy: ``(B, N+1, N+1, N+1)`` in ``[0, 1]``.
        displacements: ``(B, 3, N+1, N+1, N+1)`` in ``[0, 1]``.
        bbox: ``(lo, hi)``, the grid's cube ``[lo, hi]^3``.
        mode: ``"marching_cubes"``: each grid point is occupied when ``occupancy > threshold`` and
            each cell takes the marching cubes case of its corners (all 256 cases; neighbouring
            cells agree on their shared corners, so the mesh is watertight wherever the shell of
            the grid is free). ``"most_probable"``: each cell takes its most probable topology of
            the set ``topologies`` (the paper's inference; cells choose independently, so the
            mesh can have holes where neighbours disagree).
        threshold: the occupancy level of ``"marching_cubes"``.
        topologies: the topology set of ``"most_probable"``.

    Returns:
        A ``Meshes`` of ``B`` meshes in world coordinates. Every surface vertex is shared by the
        cells around its grid edge (the mesh is indexed, not a triangle soup); unused vertices are
        dropped. Faces are oriented with normals pointing out of the occupied region. A shape
        without surface gives an empty mesh. Vertex positions are differentiable with respect
        to ``displacements``.
    """
    bbox = _check_bbox(bbox)
    N = _check_grid(occupancy, displacements)
    if mode not in ("marching_cubes", "most_probable"):
        raise ValueError(f"mode must be 'marching_cubes' or 'most_probable', got {mode!r}")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
        raise ValueError(f"threshold must be a number in [0, 1], got {threshold!r}")
    topologies = _check_topologies(topologies)
    device = occupancy.device
    B = occupancy.shape[0]
    if mode == "marching_cubes":
        bits = (_corner_values(occupancy) > threshold).long()
        case = (bits << torch.arange(8, device=device)).sum(-1)
    else:
        with torch.no_grad():
            probs = _topology_probabilities(occupancy, topologies)
        case = _device_tables(topologies, device)["cases"][probs.argmax(-1)]
    table = torch.as_tensor(TRIANGLES, device=device)
    S = N + 1
    idx = torch.arange(N, device=device)
    cell = torch.stack(torch.meshgrid(idx, idx, idx, indexing="ij"), dim=-1).view(-1, 3)  # (N^3, 3)
    origin = torch.as_tensor(_EDGE_ORIGIN, device=device)
    axis = torch.as_tensor(_EDGE_AXIS, device=device)
    points = cell[:, None] + origin[None]  # (N^3, 12, 3) grid point each edge leaves from
    global_edge = ((axis[None] * S + points[..., 0]) * S + points[..., 1]) * S + points[..., 2]  # (N^3, 12)
    lo, hi = bbox
    h = (hi - lo) / N
    verts, faces = [], []
    for b in range(B):
        tris = table[case[b].reshape(-1)]  # (N^3, 5, 3)
        keep = tris[..., 0] >= 0
        which = keep.nonzero()[:, 0]
        edges = torch.gather(global_edge[which], 1, tris[keep])
        used, face = torch.unique(edges, return_inverse=True)
        a = used // S ** 3
        g = torch.stack(((used // S ** 2) % S, (used // S) % S, used % S), dim=-1)
        t = displacements[b, a, g[:, 0], g[:, 1], g[:, 2]]
        grid = g.to(displacements.dtype) + t[:, None] * F.one_hot(a, 3).to(displacements.dtype)
        verts.append(lo + h * grid)
        faces.append(face.view(-1, 3))
    return Meshes(verts, faces)


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------
def _scaled(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


def _check_width(width) -> float:
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not 0 < width < float("inf"):
        raise ValueError(f"width must be a positive number (a channel multiplier), got {width!r}")
    return float(width)


def _default_levels(num_cells: int) -> int:
    """Down-sampling steps of the U-Net: as many halvings (at most 3) as keep the grid even and >= 2 cells."""
    levels = 0
    while levels < 3 and num_cells % 2 ** (levels + 1) == 0 and num_cells // 2 ** (levels + 1) >= 2:
        levels += 1
    return levels


class DMCEncoder(nn.Module):
    r"""The Deep Marching Cubes point encoder: per-cell PointNet features, then a 3-D U-Net.

    Each valid point gets a feature from a shared MLP ``6 -> 64 w -> C_p`` (ReLU) of its position in
    its cell (``[-1, 1]^3``) and in the grid's cube (``[-1, 1]^3``); the features of the points in a
    cell are max-pooled (cells without points get zeros) and an indicator channel marks the cells
    that hold points, giving a ``(B, C_p + 1, N, N, N)`` grid (the paper's grid pooling). A U-Net
    follows: at each level two ``3^3`` conv blocks (``16 w * 2^l`` channels), max pooling
    between levels, transposed convolutions up with skip connections.

    Args:
        num_cells: ``N``, cells per axis.
        bbox: ``(lo, hi)``, the grid's cube ``[lo, hi]^3``; points must lie inside.
        width: the multiplier of every hidden width.
        levels: down-sampling steps (``N`` must be divisible by ``2^levels``); default: as many as
            keep the coarsest grid at >= 2 cells, at most 3 (the paper's U-Net has 3).
        point_channels: ``C_p``, the pooled point feature size (paper: 16).
        norm: the normalisation of the conv blocks, one of ``geo4g.nn.NORMS`` or ``None``.

    Shapes:
        - input: ``points (B, P, 3)`` (or a ``Pointclouds``), ``lengths (B,)``
        - output: ``(B, C, N, N, N)`` cell features with ``C = out_channels = 16 w``
    """

    def __init__(self, num_cells: int = 16, bbox: Tuple[float, float] = (-0.5, 0.5), width: float = 1.0,
                 levels: Optional[int] = None, point_channels: int = 16, norm: Optional[str] = "batch"):
        super().__init__()
        self.num_cells = _check_positive_int(num_cells, "num_cells")
        self.bbox = _check_bbox(bbox)
        self.width = _check_width(width)
        self.levels = _default_levels(num_cells) if levels is None else levels
        if isinstance(self.levels, bool) or not isinstance(self.levels, int) or self.levels < 0 \
                or num_cells % 2 ** self.levels:
            raise ValueError(f"levels must be an integer >= 0 with num_cells ({num_cells}) divisible by "
                             f"2**levels, got {levels!r}")
        self.point_channels = _check_positive_int(point_channels, "point_channels")
        if norm is not None and norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS} or None, got {norm!r}")
        self.norm = norm
        self.point_mlp = MLP([6, _scaled(64, width), point_channels], last_activation=True)
        chans = [_scaled(16, width) * 2 ** level for level in range(self.levels + 1)]
        self.out_channels = chans[0]
        self.down = nn.ModuleList()
        c_in = point_channels + 1
        for c in chans:
            self.down.append(nn.Sequential(ConvBlock(c_in, c, dim=3, norm=norm), ConvBlock(c, c, dim=3, norm=norm)))
            c_in = c
        self.upsample = nn.ModuleList(nn.ConvTranspose3d(chans[l + 1], chans[l], 2, stride=2)
                                      for l in range(self.levels))
        self.up = nn.ModuleList(nn.Sequential(ConvBlock(2 * chans[l], chans[l], dim=3, norm=norm),
                                              ConvBlock(chans[l], chans[l], dim=3, norm=norm))
                                for l in range(self.levels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.modules():
            if m is not self and callable(getattr(m, "reset_parameters", None)) and not list(m.children()):
                m.reset_parameters()

    def pool_points(self, points, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The grid-pooled point features ``(B, C_p + 1, N, N, N)`` (the U-Net's input)."""
        points, _, mask = _cloud(points, lengths)
        B = points.shape[0]
        N = self.num_cells
        lo, hi = self.bbox
        key, local = _points_in_cells(points, mask, N, self.bbox, "points")
        centred = 2 * (points[mask] - lo) / (hi - lo) - 1
        feats = self.point_mlp(torch.cat((2 * local - 1, centred), dim=-1))
        grid = feats.new_zeros(B * N ** 3, self.point_channels)
        grid = grid.scatter_reduce(0, key[:, None].expand_as(feats), feats, "amax", include_self=False)
        hit = torch.zeros(B * N ** 3, 1, dtype=feats.dtype, device=feats.device).index_fill(0, key, 1.0)
        return torch.cat((grid, hit), dim=1).view(B, N, N, N, -1).permute(0, 4, 1, 2, 3)

    def forward(self, points, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = self.pool_points(points, lengths)
        skips = []
        for level, block in enumerate(self.down):
            if level:
                x = F.max_pool3d(x, 2)
            x = block(x)
            skips.append(x)
        for level in reversed(range(self.levels)):
            x = self.upsample[level](x)
            x = self.up[level](torch.cat((skips[level], x), dim=1))
        return x

    def extra_repr(self) -> str:
        return (f"num_cells={self.num_cells}, bbox={self.bbox}, width={self.width}, levels={self.levels}, "
                f"point_channels={self.point_channels}, norm={self.norm!r}")


class DMCOutput(NamedTuple):
    """What :class:`DeepMarchingCubes` returns: ``occupancy (B, N+1, N+1, N+1)`` in ``(0, 1)``,
    ``displacements (B, 3, N+1, N+1, N+1)`` in ``(0, 1)`` and the ``occupancy_logits`` before the sigmoid."""

    occupancy: torch.Tensor
    displacements: torch.Tensor
    occupancy_logits: torch.Tensor


class DeepMarchingCubes(nn.Module):
    r"""Deep Marching Cubes (Liao et al. 2018): point cloud -> occupancies and vertex displacements.

    :class:`DMCEncoder` gives cell features ``(B, C, N, N, N)``; two heads, each a ``2^3``
    transposed convolution from the cells to the ``(N+1)^3`` grid points around them, give the
    occupancy (sigmoid) and the three edge displacements (sigmoid; the displacement head starts
    at zero, so vertices start at the edge midpoints). Train with :func:`dmc_loss`; read meshes
    with :meth:`extract` (or :func:`extract_mesh`).

    Args:
        num_cells: ``N`` (the paper uses 32).
        bbox: ``(lo, hi)``, the grid's cube; inputs must lie inside, best with a margin of a cell
            or two (the occupancy prior keeps the outer shell free).
        width, levels, point_channels, norm: see :class:`DMCEncoder`.
        topologies: the topology set used by :meth:`extract` in ``"most_probable"`` mode and
            recorded for the losses.

    Shapes:
        - input: ``points (B, P, 3)`` (or a ``Pointclouds``), ``lengths (B,)``
        - output: :class:`DMCOutput`
    """

    def __init__(self, num_cells: int = 16, bbox: Tuple[float, float] = (-0.5, 0.5), width: float = 1.0,
                 levels: Optional[int] = None, point_channels: int = 16, norm: Optional[str] = "batch",
                 topologies: str = "singly_connected"):
        super().__init__()
        self.topologies = _check_topologies(topologies)
        self.encoder = DMCEncoder(num_cells, bbox, width, levels, point_channels, norm)
        self.num_cells = num_cells
        self.bbox = self.encoder.bbox
        c = self.encoder.out_channels
        self.occupancy_head = nn.ConvTranspose3d(c, 1, 2)
        self.displacement_head = nn.ConvTranspose3d(c, 3, 2)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.encoder.reset_parameters()
        self.occupancy_head.reset_parameters()
        nn.init.zeros_(self.displacement_head.weight)
        nn.init.zeros_(self.displacement_head.bias)

    def forward(self, points, lengths: Optional[torch.Tensor] = None) -> DMCOutput:
        features = self.encoder(points, lengths)
        logits = self.occupancy_head(features)[:, 0]
        return DMCOutput(torch.sigmoid(logits), torch.sigmoid(self.displacement_head(features)), logits)

    def extract(self, output: DMCOutput, mode: str = "marching_cubes", threshold: float = 0.5) -> Meshes:
        """The meshes of a forward pass's ``output``; see :func:`extract_mesh`."""
        return extract_mesh(output.occupancy, output.displacements, self.bbox, mode, threshold, self.topologies)

    def extra_repr(self) -> str:
        return f"num_cells={self.num_cells}, bbox={self.bbox}, topologies={self.topologies!r}"
