"""What every geo4g dataset shares: the item format and the mesh-to-points step.

An item is a dict. Geometry keys (any subset, by representation):

- ``"verts" (V, 3)`` float32, ``"faces" (F, 3)`` long, ``"face_labels" (F,)`` long (part per face);
- ``"points" (N, 3)`` float32, ``"normals" (N, 3)`` float32, ``"part_labels" (N,)`` long (part per point);
- ``"voxels" (R, R, R)`` bool, an occupancy grid indexed ``[x, y, z]`` over the item's bounding cube.

Metadata keys: ``"label"`` (long scalar tensor, the category index), ``"category"`` (str),
``"name"`` (str, a stable id such as a relative path), and dataset-specific extras
(``"params" (P,)`` for procedural shapes). Part labels are global across categories
(each dataset documents its offsets), so one segmentation head serves every category.
"""
from __future__ import annotations

import abc
import zlib
from typing import Callable, Dict, Optional, Tuple

import torch
from torch.utils.data import Dataset

from geo4g.meshes import sample_surface

__all__ = ["GeometryDataset", "REPRESENTATIONS", "item_generator", "mesh_item_to_points", "resample_points",
           "voxelize_item"]

REPRESENTATIONS = ("mesh", "points", "voxels")

Item = Dict[str, object]


def item_generator(seed: int, key: str) -> torch.Generator:
    """A CPU generator seeded from ``(seed, key)``: the same item gets the same random draws
    in any process and any order (``key`` is the item's stable name)."""
    return torch.Generator().manual_seed((int(seed) * 1_000_003 + zlib.crc32(key.encode())) % (2 ** 63))


def mesh_item_to_points(item: Item, num_points: int, generator: Optional[torch.Generator] = None) -> Item:
    """Replace ``verts``/``faces`` by ``num_points`` area-weighted surface samples with normals;
    ``face_labels`` become per-point ``part_labels``. Other keys are kept."""
    samples = sample_surface(item["verts"], item["faces"], num_points, generator)
    out = {k: v for k, v in item.items() if k not in ("verts", "faces", "face_labels")}
    out["points"], out["normals"] = samples.points, samples.normals
    if "face_labels" in item:
        out["part_labels"] = item["face_labels"][samples.face_index]
    return out


def resample_points(item: Item, num_points: int, generator: Optional[torch.Generator] = None) -> Item:
    """Draw ``num_points`` of an item's points (without replacement when it has enough,
    with replacement otherwise), keeping ``normals``/``part_labels`` aligned."""
    n = item["points"].shape[0]
    if n == 0:
        raise ValueError(f"item {item.get('name', '?')!r} has no points to resample")
    if n >= num_points:
        index = torch.randperm(n, generator=generator)[:num_points]
    else:
        index = torch.cat([torch.randperm(n, generator=generator),
                           torch.randint(n, (num_points - n,), generator=generator)])
    return {k: (v[index] if k in ("points", "normals", "part_labels") else v) for k, v in item.items()}


_GEOMETRY_KEYS = ("verts", "faces", "face_labels", "points", "normals", "part_labels")


def voxelize_item(item: Item, resolution: int, mode: str = "solid", fill_rule: str = "winding") -> Item:
    """Replace a mesh or point item's geometry by ``"voxels" (R, R, R)`` bool over its bounding
    cube (see :class:`geo4g.data.Voxelize`); metadata keys are kept."""
    from geo4g.voxels import voxelize_mesh, voxelize_points

    if "faces" in item:
        grid = voxelize_mesh(item["verts"], item["faces"], resolution, mode=mode, fill_rule=fill_rule)
    elif "points" in item:
        grid = voxelize_points(item["points"], resolution)
    else:
        raise ValueError(f"item {item.get('name', '?')!r} has neither verts/faces nor points to voxelise "
                         f"(keys: {sorted(item)})")
    out = {k: v for k, v in item.items() if k not in _GEOMETRY_KEYS}
    out["voxels"] = grid
    return out


class GeometryDataset(Dataset, abc.ABC):
    """Base of the geo4g datasets: turns a subclass's raw items into the asked representation.

    Args:
        representation: ``"mesh"`` (verts/faces), ``"points"`` (``num_points`` surface samples
            with normals, drawn reproducibly per item from ``seed`` and the item name) or
            ``"voxels"`` (a solid occupancy grid of ``voxel_resolution``^3 over each item's
            bounding cube, see :class:`geo4g.data.Voxelize`; point datasets mark the voxels
            holding a point).
        num_points: points per item for ``"points"``; ``None`` keeps a point dataset's own points
            (mesh datasets need a number).
        transform: a callable applied to each item dict last.
        seed: base seed of the per-item sampling.
        voxel_resolution: voxels per axis for ``"voxels"``.

    Subclasses implement ``__len__``, ``source(index)`` (the file or id behind an item, used in
    error messages and cache reports) and ``load_raw(index)`` (a mesh or point item).
    """

    #: the representations a subclass can produce from its raw items
    supports: Tuple[str, ...] = REPRESENTATIONS

    def __init__(self, representation: str = "mesh", num_points: Optional[int] = 2048,
                 transform: Optional[Callable[[Item], Item]] = None, seed: int = 0, voxel_resolution: int = 32):
        if representation not in self.supports:
            raise ValueError(f"{type(self).__name__}: representation must be one of {list(self.supports)}, "
                             f"got {representation!r}")
        if num_points is not None and (not isinstance(num_points, int) or isinstance(num_points, bool)
                                       or num_points <= 0):
            raise ValueError(f"num_points must be a positive int or None, got {num_points!r}")
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable or None, got {type(transform).__name__}")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        if not isinstance(voxel_resolution, int) or isinstance(voxel_resolution, bool) or voxel_resolution < 1:
            raise ValueError(f"voxel_resolution must be a positive int, got {voxel_resolution!r}")
        self.voxel_resolution = voxel_resolution
        self.representation = representation
        self.num_points = num_points
        self.transform = transform
        self.seed = seed

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of items."""

    @abc.abstractmethod
    def source(self, index: int) -> str:
        """The file path or id of item ``index``."""

    @abc.abstractmethod
    def load_raw(self, index: int) -> Item:
        """Item ``index`` as stored: a mesh item or a point item, with metadata."""

    def __getitem__(self, index: int) -> Item:
        if not isinstance(index, int):
            index = int(index)
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} is out of range for {type(self).__name__} of {len(self)} items")
        item = self.load_raw(index)
        if self.representation == "points":
            generator = item_generator(self.seed, str(item.get("name", index)))
            if "faces" in item:
                if self.num_points is None:
                    raise ValueError(f"{type(self).__name__} holds meshes: representation='points' needs "
                                     "num_points (an int), got None")
                item = mesh_item_to_points(item, self.num_points, generator)
            elif self.num_points is not None:
                item = resample_points(item, self.num_points, generator)
        elif self.representation == "voxels":
            item = voxelize_item(item, self.voxel_resolution)
        return self.transform(item) if self.transform is not None else item
