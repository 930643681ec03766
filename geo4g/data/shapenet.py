"""``ShapeNetCore`` (v1 / v2 OBJ meshes) and ``ShapeNetPart`` (the PointNet++ part-segmentation
point files), read from local copies in their published layouts.

ShapeNetCore (https://shapenet.org/)::

    v1: <root>/<synset>/<model>/model.obj
    v2: <root>/<synset>/<model>/models/model_normalized.obj
    optional: <root>/all.csv   (id,synsetId,subSynsetId,modelId,split: ShapeNet's official split)

ShapeNetPart (``shapenetcore_partanno_segmentation_benchmark_v0_normal``, the archive published
by the PointNet++ authors)::

    <root>/synsetoffset2category.txt                      lines "Airplane<TAB>02691156"
    <root>/train_test_split/shuffled_{train,val,test}_file_list.json   ["shape_data/<synset>/<model>", ...]
    <root>/<synset>/<model>.txt                           rows "x y z nx ny nz part_label"
"""
from __future__ import annotations

import csv
import json
import zlib
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple

import torch

from geo4g.io import load_mesh, load_pointcloud

from .base import GeometryDataset, Item
from ._folders import PathLike, check_choice, describe_folder, require_folder, resolve_names, subfolders

__all__ = ["SHAPENETCORE_SYNSETS", "SHAPENETPART_NUM_PARTS", "SHAPENETPART_PART_LABELS", "SHAPENETPART_SYNSETS",
           "ShapeNetCore", "ShapeNetPart", "hash_split"]

#: the 55 ShapeNetCore synsets, id -> category name, sorted by id; an item's ``label`` is the index here
SHAPENETCORE_SYNSETS: Dict[str, str] = {
    "02691156": "airplane", "02747177": "trash bin", "02773838": "bag", "02801938": "basket",
    "02808440": "bathtub", "02818832": "bed", "02828884": "bench", "02843684": "birdhouse",
    "02871439": "bookshelf", "02876657": "bottle", "02880940": "bowl", "02924116": "bus",
    "02933112": "cabinet", "02942699": "camera", "02946921": "can", "02954340": "cap",
    "02958343": "car", "02992529": "cellphone", "03001627": "chair", "03046257": "clock",
    "03085013": "keyboard", "03207941": "dishwasher", "03211117": "display", "03261776": "earphone",
    "03325088": "faucet", "03337140": "file cabinet", "03467517": "guitar", "03513137": "helmet",
    "03593526": "jar", "03624134": "knife", "03636649": "lamp", "03642806": "laptop",
    "03691459": "loudspeaker", "03710193": "mailbox", "03759954": "microphone", "03761084": "microwaves",
    "03790512": "motorbike", "03797390": "mug", "03928116": "piano", "03938244": "pillow",
    "03948459": "pistol", "03991062": "flowerpot", "04004475": "printer", "04074963": "remote",
    "04090263": "rifle", "04099429": "rocket", "04225987": "skateboard", "04256520": "sofa",
    "04330267": "stove", "04379243": "table", "04401088": "telephone", "04460130": "tower",
    "04468005": "train", "04530566": "watercraft", "04554684": "washer",
}
#: the 16 ShapeNetPart categories in official order, name -> synset id; ``label`` is the index here
SHAPENETPART_SYNSETS: Dict[str, str] = {
    "Airplane": "02691156", "Bag": "02773838", "Cap": "02954340", "Car": "02958343",
    "Chair": "03001627", "Earphone": "03261776", "Guitar": "03467517", "Knife": "03624134",
    "Lamp": "03636649", "Laptop": "03642806", "Motorbike": "03790512", "Mug": "03797390",
    "Pistol": "03948459", "Rocket": "04099429", "Skateboard": "04225987", "Table": "04379243",
}
#: the global part labels of each ShapeNetPart category (for per-category part mIoU)
SHAPENETPART_PART_LABELS: Dict[str, Tuple[int, ...]] = {
    name: tuple(range(first, last + 1)) for name, (first, last) in {
        "Airplane": (0, 3), "Bag": (4, 5), "Cap": (6, 7), "Car": (8, 11), "Chair": (12, 15),
        "Earphone": (16, 18), "Guitar": (19, 21), "Knife": (22, 23), "Lamp": (24, 27), "Laptop": (28, 29),
        "Motorbike": (30, 35), "Mug": (36, 37), "Pistol": (38, 40), "Rocket": (41, 43), "Skateboard": (44, 46),
        "Table": (47, 49),
    }.items()
}
#: the number of ShapeNetPart part labels (0 .. 49)
SHAPENETPART_NUM_PARTS = 50

_CORE_URL = "https://shapenet.org/"
_PART_ARCHIVE = "shapenetcore_partanno_segmentation_benchmark_v0_normal"
_PART_URL = (f"the {_PART_ARCHIVE} archive of the PointNet++ authors (linked from "
             "https://github.com/charlesq34/pointnet2)")
_CORE_MODEL_FILES = {"v2": "models/model_normalized.obj", "v1": "model.obj"}


def hash_split(model_id: str) -> str:
    """ShapeNetCore's split without ``all.csv``: ``crc32(model_id) % 100`` below 70 is ``"train"``,
    below 80 ``"val"``, else ``"test"`` (70/10/20). It depends on the model id only, so it is the
    same on every machine, and a model filed under two synsets lands in one split."""
    bucket = zlib.crc32(model_id.encode()) % 100
    return "train" if bucket < 70 else ("val" if bucket < 80 else "test")


class ShapeNetCore(GeometryDataset):
    """ShapeNetCore v1 or v2 meshes, in the published folder layout.

    Args:
        root: the folder holding the synset folders (``<root>/<synset>/<model>/...``).
        synsets: synset ids (``"03001627"``) or category names (``"chair"``) to keep; default every
            synset of ``SHAPENETCORE_SYNSETS`` with a folder in ``root`` (others are ignored).
        split: ``None`` (every model), ``"train"``, ``"val"`` or ``"test"``: the official split of
            ``<root>/all.csv`` when present (models it does not list are in no split), else
            ``hash_split`` of the model id (70/10/20, deterministic).
        representation: ``"mesh"``, ``"points"`` (surface samples, see ``GeometryDataset``) or ``"voxels"``.
        num_points: points per item for ``"points"``.
        transform: callable applied to each item last.
        seed: base seed of the per-item sampling.
        voxel_resolution: voxels per axis for ``"voxels"``.

    The version is told from the first model folder: ``models/model_normalized.obj`` (v2) or
    ``model.obj`` (v1); a model folder without it raises when its item is loaded.

    Items: ``verts (V, 3)`` float32 and ``faces (F, 3)`` long (polygons fan-triangulated), or
    ``points``/``normals``, plus ``label`` (long scalar, the index in ``SHAPENETCORE_SYNSETS``),
    ``category`` (its name) and ``name`` (``"<synset>/<model>"``). Items are sorted by synset id,
    then model id.

    Attributes:
        root, version (``"v1"`` / ``"v2"``), split, synsets (the synset ids read, sorted).

    Raises:
        FileNotFoundError: ``root`` does not exist.
        ValueError: a wrong layout (no synset folder, no model file in the first model folders),
            unknown, empty or missing ``synsets``, a bad ``split`` or a malformed ``all.csv``.
    """

    def __init__(self, root: PathLike, synsets: Optional[Sequence[str]] = None, split: Optional[str] = None,
                 representation: str = "mesh", num_points: Optional[int] = 2048,
                 transform: Optional[Callable[[Item], Item]] = None, seed: int = 0, voxel_resolution: int = 32):
        super().__init__(representation, num_points, transform, seed, voxel_resolution)
        self.split = None if split is None else check_choice(split, ("train", "val", "test"), "split")
        layout = "<root>/<synset>/<model>/model.obj (v1) or <root>/<synset>/<model>/models/model_normalized.obj (v2)"
        self.root = require_folder(root, "ShapeNetCore", layout, _CORE_URL)
        present = [s for s in subfolders(self.root) if s in SHAPENETCORE_SYNSETS]
        if not present:
            raise ValueError(f"{self.root} is not a ShapeNetCore folder: found {describe_folder(self.root)}, "
                             f"expected synset folders such as '03001627' ({layout})")
        if synsets is None:
            self.synsets = tuple(present)
        else:
            aliases = {**{s: s for s in SHAPENETCORE_SYNSETS}, **{n: s for s, n in SHAPENETCORE_SYNSETS.items()}}
            valid = ", ".join(f"{s} ({n})" for s, n in SHAPENETCORE_SYNSETS.items())
            chosen = resolve_names(synsets, aliases, "synset", "synsets", valid)
            missing = [f"{s} ({SHAPENETCORE_SYNSETS[s]})" for s in chosen if s not in present]
            if missing:
                raise ValueError(f"{self.root} has no folder for synsets {missing}; it has {present}")
            self.synsets = tuple(sorted(chosen))
        models = {s: subfolders(self.root / s) for s in self.synsets}
        self.version = self._version(models, layout)
        keep = self._split_filter()
        self._models: List[Tuple[str, str]] = [(s, m) for s in self.synsets for m in models[s] if keep(s, m)]
        self._labels = {s: i for i, s in enumerate(SHAPENETCORE_SYNSETS)}

    def _version(self, models: Dict[str, List[str]], layout: str) -> str:
        for synset, names in models.items():
            for version, file in _CORE_MODEL_FILES.items():
                if names and (self.root / synset / names[0] / file).is_file():
                    return version
        first = next(((s, n[0]) for s, n in models.items() if n), None)
        found = "no model folders" if first is None else \
            f"{describe_folder(self.root / first[0] / first[1])} in {first[0]}/{first[1]}/"
        raise ValueError(f"{self.root} is not a ShapeNetCore folder: found {found}, expected {layout}")

    def _split_filter(self) -> Callable[[str, str], bool]:
        if self.split is None:
            return lambda synset, model: True
        table = self.root / "all.csv"
        if not table.is_file():
            return lambda synset, model: hash_split(model) == self.split
        chosen = _official_split(table, self.split)
        return lambda synset, model: (synset, model) in chosen

    def __len__(self) -> int:
        return len(self._models)

    def source(self, index: int) -> str:
        synset, model = self._models[index]
        return str(self.root / synset / model / _CORE_MODEL_FILES[self.version])

    def load_raw(self, index: int) -> Item:
        """Item ``index`` as stored: ``verts``/``faces`` and the metadata.

        Raises:
            OSError / ValueError: naming the file, for a missing, unreadable or corrupt OBJ or a
                mesh without faces.
        """
        synset, model = self._models[index]
        path = Path(self.source(index))
        mesh = load_mesh(path)
        if mesh.faces.shape[0] == 0:
            raise ValueError(f"{path}: the mesh has no faces")
        return {"verts": mesh.verts, "faces": mesh.faces, "label": torch.tensor(self._labels[synset]),
                "category": SHAPENETCORE_SYNSETS[synset], "name": f"{synset}/{model}"}

    def __repr__(self) -> str:
        return (f"ShapeNetCore({self.version}, split={self.split!r}, {len(self)} models, {len(self.synsets)} synsets, "
                f"representation={self.representation!r}, root={str(self.root)!r})")


def _official_split(path: Path, split: str) -> Set[Tuple[str, str]]:
    """The ``(synset, model)`` pairs of ``split`` in ShapeNet's ``all.csv``."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = {"synsetId", "modelId", "split"}
        if reader.fieldnames is None or not columns <= set(reader.fieldnames):
            raise ValueError(f"{path}: expected the columns id,synsetId,subSynsetId,modelId,split, got "
                             f"{reader.fieldnames}")
        # synset ids may have lost their leading zero to a spreadsheet
        return {(row["synsetId"].strip().zfill(8), row["modelId"].strip()) for row in reader
                if row["split"].strip() == split}


class ShapeNetPart(GeometryDataset):
    """ShapeNetPart part segmentation (``shapenetcore_partanno_segmentation_benchmark_v0_normal``).

    Args:
        root: the benchmark folder (or the folder holding it).
        split: ``"train"``, ``"val"``, ``"test"`` or ``"trainval"``, from
            ``train_test_split/shuffled_<split>_file_list.json``.
        categories: category names (``"Airplane"``, any case) or synset ids to keep; default every
            category of ``synsetoffset2category.txt``.
        representation: ``"points"`` only.
        num_points: points drawn per shape (without replacement when it has enough); ``None``
            keeps every point of the file (their number varies, about 2,500 per shape).
        transform: callable applied to each item last.
        seed: base seed of the per-item sampling.

    Items: ``points (N, 3)``, ``normals (N, 3)`` float32, ``part_labels (N,)`` long (global,
    0..49, see ``SHAPENETPART_PART_LABELS``), ``label`` (long scalar, the index in
    ``SHAPENETPART_SYNSETS``), ``category`` (``"Airplane"``, ...) and ``name``
    (``"<synset>/<model>"``). Items are sorted by category, then model id. Point files are
    not opened before their item is loaded.

    Attributes:
        root, split, categories (the names read, official order).

    Raises:
        FileNotFoundError: ``root`` does not exist.
        ValueError: a wrong layout (no ``synsetoffset2category.txt`` or split lists, malformed
            ones), unknown, empty or missing ``categories``, a bad ``split`` or ``representation``.
    """

    supports = ("points",)

    def __init__(self, root: PathLike, split: str = "train", categories: Optional[Sequence[str]] = None,
                 representation: str = "points", num_points: Optional[int] = 2048,
                 transform: Optional[Callable[[Item], Item]] = None, seed: int = 0):
        super().__init__(representation, num_points, transform, seed)
        self.split = check_choice(split, ("train", "val", "test", "trainval"), "split")
        layout = ("<root>/synsetoffset2category.txt, <root>/train_test_split/shuffled_{train,val,test}_file_list"
                  ".json and <root>/<synset>/<model>.txt")
        root = require_folder(root, "ShapeNetPart", layout, _PART_URL)
        if not (root / "synsetoffset2category.txt").is_file() and (root / _PART_ARCHIVE).is_dir():
            root = root / _PART_ARCHIVE
        if not (root / "synsetoffset2category.txt").is_file() or not (root / "train_test_split").is_dir():
            raise ValueError(f"{root} is not a ShapeNetPart folder: found {describe_folder(root)}, expected {layout}")
        self.root = root
        present = _read_offsets(root / "synsetoffset2category.txt")
        if categories is None:
            self.categories = tuple(n for n in SHAPENETPART_SYNSETS if n in present)
        else:
            aliases = {**{n.lower(): n for n in SHAPENETPART_SYNSETS},
                       **{s: n for n, s in SHAPENETPART_SYNSETS.items()}}
            valid = ", ".join(f"{n} ({s})" for n, s in SHAPENETPART_SYNSETS.items())
            chosen = resolve_names(categories, aliases, "category", "categories", valid)
            missing = [n for n in chosen if n not in present]
            if missing:
                raise ValueError(f"{root / 'synsetoffset2category.txt'} does not list categories {missing}; it lists "
                                 f"{sorted(present, key=list(SHAPENETPART_SYNSETS).index)}")
            self.categories = tuple(n for n in SHAPENETPART_SYNSETS if n in chosen)
        by_synset = {SHAPENETPART_SYNSETS[n]: n for n in self.categories}
        splits = ("train", "val") if self.split == "trainval" else (self.split,)
        shapes = set()
        for s in splits:
            shapes.update(p for p in _read_file_list(root / "train_test_split" / f"shuffled_{s}_file_list.json")
                          if p[0] in by_synset)
        order = {s: i for i, s in enumerate(SHAPENETPART_SYNSETS.values())}
        self._shapes: List[Tuple[str, str]] = sorted(shapes, key=lambda p: (order[p[0]], p[1]))
        self._names = by_synset

    def __len__(self) -> int:
        return len(self._shapes)

    def source(self, index: int) -> str:
        synset, model = self._shapes[index]
        return str(self.root / synset / f"{model}.txt")

    def load_raw(self, index: int) -> Item:
        """Item ``index`` with every point of its file.

        Raises:
            OSError / ValueError: naming the file, for a missing or unreadable file, rows that are
                not ``x y z nx ny nz part_label``, or part labels outside the category's range.
        """
        synset, model = self._shapes[index]
        path = Path(self.source(index))
        cloud = load_pointcloud(path, format="xyz")
        if cloud.points.shape[0] == 0:
            raise ValueError(f"{path}: holds no points; expected rows of 7 values 'x y z nx ny nz part_label'")
        width = 3 + (cloud.normals is not None) * 3 + (0 if cloud.features is None else cloud.features.shape[1])
        if cloud.normals is None or width != 7:
            raise ValueError(f"{path}: expected rows of 7 values 'x y z nx ny nz part_label', got {width} values")
        category = self._names[synset]
        labels = cloud.features[:, 0]
        parts = SHAPENETPART_PART_LABELS[category]
        bad = (labels != labels.round()) | (labels < parts[0]) | (labels > parts[-1])
        if bad.any():
            row = int(bad.nonzero()[0, 0])
            raise ValueError(f"{path}: row {row}: part label {labels[row].item()} is not one of {category}'s part "
                             f"labels {parts[0]}..{parts[-1]}")
        return {"points": cloud.points, "normals": cloud.normals, "part_labels": labels.long(),
                "label": torch.tensor(list(SHAPENETPART_SYNSETS).index(category)), "category": category,
                "name": f"{synset}/{model}"}

    def __repr__(self) -> str:
        return (f"ShapeNetPart(split={self.split!r}, {len(self)} shapes, {len(self.categories)} categories, "
                f"num_points={self.num_points}, root={str(self.root)!r})")


def _read_offsets(path: Path) -> Set[str]:
    """The official category names listed by ``synsetoffset2category.txt``, checked against their synsets."""
    names = set()
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) != 2 or SHAPENETPART_SYNSETS.get(tokens[0]) != tokens[1]:
            raise ValueError(f"{path}:{number}: expected '<category><TAB><synset>' of an official ShapeNetPart "
                             f"category such as 'Airplane\\t02691156', got {line.strip()!r}")
        names.add(tokens[0])
    if not names:
        raise ValueError(f"{path}: lists no category; expected lines such as 'Airplane\\t02691156'")
    return names


def _read_file_list(path: Path) -> List[Tuple[str, str]]:
    """The ``(synset, model)`` pairs of a ``shuffled_<split>_file_list.json``."""
    if not path.is_file():
        raise ValueError(f"{path.parent.parent} is not a ShapeNetPart folder: {path.name} is missing from "
                         f"train_test_split/ (found {describe_folder(path.parent)})")
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a JSON list of 'shape_data/<synset>/<model>' entries: {err}") from None
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a JSON list of 'shape_data/<synset>/<model>' entries, "
                         f"got {type(entries).__name__}")
    pairs = []
    for i, entry in enumerate(entries):
        parts = entry.split("/") if isinstance(entry, str) else []
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"{path}: entry {i} must look like 'shape_data/<synset>/<model>', got {entry!r}")
        pairs.append((parts[1], parts[2]))
    return pairs
