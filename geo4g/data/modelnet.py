"""``ModelNet``: ModelNet10 / ModelNet40 (Princeton) read from a local copy in the published layout.

Layout (https://modelnet.cs.princeton.edu/)::

    <root>/<class>/train/<class>_0001.off
    <root>/<class>/test/<class>_0107.off

``root`` may also be the folder holding ``ModelNet10/`` (``ModelNet40/``). The same
layout with point files (``.pcd``, ``.ply``, ``.npy``) instead of ``.off`` meshes, as
sampled copies of ModelNet are often shipped, is read as a point dataset.
"""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple, Union

import torch

from geo4g.io import load_mesh, load_pointcloud

from ._folders import PathLike, check_choice, describe_folder, files_in, require_folder, resolve_names, subfolders
from .base import GeometryDataset, Item

__all__ = ["MODELNET10_CLASSES", "MODELNET40_CLASSES", "ModelNet"]

#: the official ModelNet10 classes in order; an item's ``label`` is its index here
MODELNET10_CLASSES = ("bathtub", "bed", "chair", "desk", "dresser", "monitor", "night_stand", "sofa", "table",
                      "toilet")
#: the official ModelNet40 classes in order (``modelnet40_shape_names.txt``)
MODELNET40_CLASSES = (
    "airplane", "bathtub", "bed", "bench", "bookshelf", "bottle", "bowl", "car", "chair", "cone",
    "cup", "curtain", "desk", "door", "dresser", "flower_pot", "glass_box", "guitar", "keyboard", "lamp",
    "laptop", "mantel", "monitor", "night_stand", "person", "piano", "plant", "radio", "range_hood", "sink",
    "sofa", "stairs", "stool", "table", "tent", "toilet", "tv_stand", "vase", "wardrobe", "xbox",
)
_CLASSES = {"10": MODELNET10_CLASSES, "40": MODELNET40_CLASSES}
_SPLITS = ("train", "test")
_MESH_EXTENSIONS = ("off",)
_POINT_EXTENSIONS = ("pcd", "ply", "npy")
_URL = "https://modelnet.cs.princeton.edu/"


class ModelNet(GeometryDataset):
    """ModelNet10 or ModelNet40 shapes of one split, in the published folder layout.

    Args:
        root: the folder holding the class folders (``<root>/<class>/<split>/<class>_NNNN.off``),
            or the folder holding ``ModelNet10/`` (``ModelNet40/``).
        name: ``"10"`` or ``"40"`` (ints accepted).
        split: ``"train"`` or ``"test"``.
        representation: ``"mesh"`` (``.off`` files only) or ``"points"`` (surface samples of the
            meshes, or the points of point files, see ``GeometryDataset``) or ``"voxels"``.
        num_points: points per item for ``"points"``; ``None`` keeps a point file's own points.
        transform: callable applied to each item last.
        seed: base seed of the per-item sampling.
        categories: class names to keep (default: every official class with a folder in ``root``).
        voxel_resolution: voxels per axis for ``"voxels"``.

    Items: ``verts (V, 3)`` float32 and ``faces (F, 3)`` long, or ``points (N, 3)`` (with
    ``normals (N, 3)`` when sampled from meshes or stored in the files), plus ``label`` (long
    scalar, the index in ``MODELNET10_CLASSES`` / ``MODELNET40_CLASSES``: comparable across
    subsets), ``category`` and ``name`` (the path relative to the class folders' parent, e.g.
    ``"chair/train/chair_0001.off"``). Items are ordered by class (official order), then file
    name. Folders of non-official classes are ignored. Coordinates are as stored (ModelNet's
    scales vary): normalise in a transform.

    Attributes:
        root: the folder holding the class folders.
        classes: the official class names (``label`` indexes them).
        categories: the classes read, in official order.
        format: the file extension read (``"off"``, ``"pcd"``, ``"ply"`` or ``"npy"``).

    Raises:
        FileNotFoundError: ``root`` does not exist.
        ValueError: a wrong layout (no official class folder, a class folder without
            ``<split>/``, no files, or mixed file formats), unknown or missing ``categories``,
            ``representation="mesh"`` over point files, or a bad ``name`` / ``split``.
    """

    def __init__(self, root: PathLike, name: Union[str, int] = "10", split: str = "train",
                 representation: str = "mesh", num_points: Optional[int] = 2048,
                 transform: Optional[Callable[[Item], Item]] = None, seed: int = 0,
                 categories: Optional[Sequence[str]] = None,
                 voxel_resolution: int = 32):
        super().__init__(representation, num_points, transform, seed, voxel_resolution)
        name = check_choice(str(name) if isinstance(name, int) and not isinstance(name, bool) else name,
                       tuple(_CLASSES), "name")
        self.split = check_choice(split, _SPLITS, "split")
        self.name = name
        self.classes = _CLASSES[name]
        layout = "<root>/<class>/{train,test}/<class>_NNNN.off"
        root = require_folder(root, f"ModelNet{name}", layout, _URL)
        folders = set(subfolders(root))
        present = [c for c in self.classes if c in folders]
        if not present and (root / f"ModelNet{name}").is_dir():
            root = root / f"ModelNet{name}"
            folders = set(subfolders(root))
            present = [c for c in self.classes if c in folders]
        if not present:
            raise ValueError(f"{root} is not a ModelNet{name} folder: found {describe_folder(root)}, expected class "
                             f"folders such as {self.classes[0]!r} ({layout}) or a ModelNet{name}/ folder holding "
                             "them")
        self.root = root
        if categories is None:
            self.categories = tuple(present)
        else:
            chosen = resolve_names(categories, {c: c for c in self.classes}, "category", "categories",
                                   ", ".join(self.classes))
            missing = [c for c in chosen if c not in present]
            if missing:
                raise ValueError(f"{root} has no folder for categories {missing}; it has {present}")
            self.categories = tuple(c for c in self.classes if c in chosen)
        self._files, self.format = self._scan(layout, explicit=categories is not None)
        if self.format in _POINT_EXTENSIONS and representation == "mesh":
            raise ValueError(f"{root} holds .{self.format} point files: representation must be 'points', "
                             f"got 'mesh'")

    def _scan(self, layout: str, explicit: bool) -> Tuple[List[Tuple[str, int]], str]:
        """The ``(relative path, label)`` of every file of the split, and the one extension they share."""
        files, by_extension = [], {}
        for category in self.categories:
            folder = self.root / category / self.split
            if not folder.is_dir():
                raise ValueError(f"{self.root}: class folder {category!r} has no {self.split}/ folder "
                                 f"(found {describe_folder(self.root / category)}); expected {layout}")
            names = [n for n in files_in(folder) if _extension(n) in _MESH_EXTENSIONS + _POINT_EXTENSIONS]
            if explicit and not names:
                raise ValueError(f"{folder} holds no .off, .pcd, .ply or .npy files; expected {layout}")
            label = self.classes.index(category)
            for n in names:
                by_extension.setdefault(_extension(n), []).append(n)
                files.append((f"{category}/{self.split}/{n}", label))
        if not files:
            raise ValueError(f"{self.root} holds no .off, .pcd, .ply or .npy files in <class>/{self.split}/ for "
                             f"classes {list(self.categories)}; expected {layout}")
        if len(by_extension) > 1:
            counts = ", ".join(f"{len(v)} .{k} (e.g. {v[0]})" for k, v in sorted(by_extension.items()))
            raise ValueError(f"{self.root} mixes file formats in its {self.split} split: {counts}; expected one "
                             "format per folder")
        return files, next(iter(by_extension))

    def __len__(self) -> int:
        return len(self._files)

    def source(self, index: int) -> str:
        return str(self.root / self._files[index][0])

    def load_raw(self, index: int) -> Item:
        """Item ``index`` as stored: ``verts``/``faces`` of an ``.off`` file, or ``points`` (and
        ``normals`` when the file has them) of a point file, with the metadata.

        Raises:
            OSError / ValueError: naming the file, for a missing, unreadable or corrupt file or a
                mesh without faces.
        """
        relative, label = self._files[index]
        path = self.root / relative
        if self.format in _MESH_EXTENSIONS:
            mesh = load_mesh(path)
            if mesh.faces.shape[0] == 0:
                raise ValueError(f"{path}: the mesh has no faces")
            item: Item = {"verts": mesh.verts, "faces": mesh.faces}
        else:
            cloud = load_pointcloud(path)
            item = {"points": cloud.points}
            if cloud.normals is not None:
                item["normals"] = cloud.normals
        item.update(label=torch.tensor(label), category=self.classes[label], name=relative)
        return item

    def __repr__(self) -> str:
        return (f"ModelNet(name={self.name!r}, split={self.split!r}, {len(self)} .{self.format} items, "
                f"{len(self.categories)} categories, representation={self.representation!r}, root={str(self.root)!r})")


def _extension(filename: str) -> str:
    return filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
