"""``ProceduralShapes``: the embedded ShapeNet-like dataset, generated from seeds and cached.

Shape ``i`` of category ``c`` is ``get_program(c).sample(g)`` with ``g`` seeded from
``(seed, "c/i")``, so it does not depend on how many shapes are asked for or in which
process it was made. Shapes are assigned to splits by index (``i % 10``: 0-6 train,
7 val, 8-9 test), which is stable as ``shapes_per_category`` grows. Meshes are generated
on first use by parallel worker processes and cached as shards (see ``shards``) under
``root``; later uses read the cache.
"""
from __future__ import annotations

import hashlib
import inspect
import multiprocessing
import os
import sys
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from tqdm.auto import tqdm

from geo4g._threads import single_thread
from geo4g.parametric import primitives
from geo4g.parametric.programs import CATEGORIES, get_program
from geo4g.parametric.programs import base as base_module

from .base import GeometryDataset, Item, item_generator
from .shards import ShardReader, shard_complete, write_shard

__all__ = ["ProceduralShapes", "SPLITS", "default_cache_root", "split_of", "generate_shape", "program_fingerprint"]

SPLITS = ("train", "val", "test")
CHUNK = 64  # shapes per cache shard


def program_fingerprint(category: str) -> str:
    """A short hash of the code that generates ``category`` (its program's module, the program
    base and the primitives): a changed program gets a fresh cache folder, never stale shapes."""
    program = get_program(category)
    digest = hashlib.sha1()
    for module in (type(program).__module__, base_module.__name__, primitives.__name__):
        digest.update(inspect.getsource(sys.modules[module]).encode())
    return digest.hexdigest()[:10]


def default_cache_root() -> Path:
    """``$GEO4G_CACHE`` if set, else ``$XDG_CACHE_HOME/geo4g``, else ``~/.cache/geo4g``."""
    if os.environ.get("GEO4G_CACHE"):
        return Path(os.environ["GEO4G_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "geo4g"


def split_of(index: int) -> str:
    """The split of shape ``index`` within its category."""
    r = index % 10
    return "train" if r < 7 else ("val" if r == 7 else "test")


def generate_shape(category: str, index: int, seed: int) -> Item:
    """Shape ``index`` of ``category`` as a raw mesh item (local part labels), reproducibly."""
    name = f"{category}/{index:05d}"
    sample = get_program(category).sample(item_generator(seed, name))
    return {"verts": sample.verts, "faces": sample.faces.to(torch.int32),
            "face_labels": sample.face_labels.to(torch.int16), "params": sample.params, "name": name}


def _generate_chunk(job: Tuple[str, int, int, str]) -> int:
    category, chunk, seed, path = job
    items = [generate_shape(category, i, seed) for i in range(chunk * CHUNK, (chunk + 1) * CHUNK)]
    write_shard(path, items)
    return len(items)


class ProceduralShapes(GeometryDataset):
    """Procedurally generated shapes of the categories in ``geo4g.parametric.programs``.

    Args:
        root: cache folder (default ``default_cache_root()``); shards go to
            ``root/procedural/<category>-<program fingerprint>/seed<seed>/``.
        split: ``"train"`` (70%), ``"val"`` (10%), ``"test"`` (20%) or ``"all"``.
        categories: category names (default: all of ``CATEGORIES``, in that order).
        shapes_per_category: shapes per category over all splits.
        seed: dataset seed (shapes and point sampling).
        representation: ``"mesh"``, ``"points"`` or ``"voxels"``.
        num_points: points per shape for ``"points"``.
        transform: a callable applied to each item dict.
        workers: processes that generate missing shards (default: the CPU count, at most 8).
        progress: show a progress bar while generating.
        voxel_resolution: voxels per axis for ``"voxels"`` (solid grids over each shape's bounding cube).

    Items: ``verts (V, 3)``, ``faces (F, 3)``, ``face_labels (F,)`` — or ``points (N, 3)``,
    ``normals (N, 3)``, ``part_labels (N,)`` — or ``voxels (R, R, R)`` — plus ``label`` (index into ``categories``),
    ``category``, ``name`` (``"<category>/<index>"``) and ``params (P,)`` (the program's
    parameters; ``P`` differs between categories). Part labels are global: category
    ``k``'s parts are numbered from ``part_offsets[k]``; ``part_names`` lists them all as
    ``"<category>/<part>"``.
    """

    def __init__(self, root: Union[str, os.PathLike, None] = None, split: str = "train",
                 categories: Optional[Sequence[str]] = None, shapes_per_category: int = 200, seed: int = 0,
                 representation: str = "mesh", num_points: Optional[int] = 2048,
                 transform: Optional[Callable[[Item], Item]] = None, workers: Optional[int] = None,
                 progress: bool = True, voxel_resolution: int = 32):
        super().__init__(representation, num_points, transform, seed, voxel_resolution)
        if split not in SPLITS + ("all",):
            raise ValueError(f"split must be one of {list(SPLITS) + ['all']}, got {split!r}")
        if categories is None:
            categories = CATEGORIES
        if isinstance(categories, str):
            categories = [categories]
        categories = list(categories)
        if not categories:
            raise ValueError(f"categories is empty; pick some of {list(CATEGORIES)} or pass None for all")
        unknown = [c for c in categories if c not in CATEGORIES]
        if unknown:
            raise ValueError(f"unknown categories {unknown}; known categories: {list(CATEGORIES)}")
        if len(set(categories)) != len(categories):
            raise ValueError(f"categories has duplicates: {categories}")
        if not isinstance(shapes_per_category, int) or isinstance(shapes_per_category, bool) \
                or shapes_per_category <= 0:
            raise ValueError(f"shapes_per_category must be a positive int, got {shapes_per_category!r}")
        if workers is not None and (not isinstance(workers, int) or workers < 0):
            raise ValueError(f"workers must be a non-negative int or None, got {workers!r}")
        self.root = Path(root) if root is not None else default_cache_root()
        self.split = split
        self.categories: Tuple[str, ...] = tuple(categories)
        self.shapes_per_category = shapes_per_category
        programs = [get_program(c) for c in self.categories]
        offsets = [0]
        for program in programs:
            offsets.append(offsets[-1] + len(program.parts))
        self.part_offsets: Tuple[int, ...] = tuple(offsets[:-1])
        self.part_names: Tuple[str, ...] = tuple(f"{p.name}/{part}" for p in programs for part in p.parts)
        self.num_parts = offsets[-1]
        self._index: List[Tuple[int, int]] = [
            (c, i) for c in range(len(self.categories)) for i in range(shapes_per_category)
            if split == "all" or split_of(i) == split]
        self._folders = {c: self.root / "procedural" / f"{c}-{program_fingerprint(c)}" / f"seed{seed}"
                         for c in self.categories}
        self._ensure_generated(workers, progress)
        self._readers: Dict[Tuple[int, int], ShardReader] = {}

    @property
    def num_classes(self) -> int:
        return len(self.categories)

    def _chunk_path(self, category: str, chunk: int) -> Path:
        return self._folders[category] / f"chunk-{chunk:05d}"

    def _ensure_generated(self, workers: Optional[int], progress: bool) -> None:
        num_chunks = -(-self.shapes_per_category // CHUNK)
        jobs = [(c, k, self.seed, str(self._chunk_path(c, k))) for c in self.categories for k in range(num_chunks)
                if not shard_complete(self._chunk_path(c, k))]
        if not jobs:
            return
        workers = min(os.cpu_count() or 1, 8) if workers is None else workers
        bar = tqdm(total=len(jobs) * CHUNK, desc="generating procedural shapes", unit="shape",
                   disable=not progress)
        with bar:
            if workers <= 1 or len(jobs) == 1:
                with single_thread():
                    for job in jobs:
                        bar.update(_generate_chunk(job))
            else:
                with multiprocessing.get_context().Pool(min(workers, len(jobs)), initializer=torch.set_num_threads, initargs=(1,)) as pool:
                    for done in pool.imap_unordered(_generate_chunk, jobs):
                        bar.update(done)

    def __len__(self) -> int:
        return len(self._index)

    def source(self, index: int) -> str:
        c, i = self._index[index]
        return f"{self.categories[c]}/{i:05d}"

    def load_raw(self, index: int) -> Item:
        c, i = self._index[index]
        key = (c, i // CHUNK)
        if key not in self._readers:
            self._readers[key] = ShardReader(self._chunk_path(self.categories[c], i // CHUNK))
        raw = self._readers[key][i % CHUNK]
        return {
            "verts": raw["verts"], "faces": raw["faces"].long(),
            "face_labels": raw["face_labels"].long() + self.part_offsets[c],
            "label": torch.tensor(c), "category": self.categories[c], "name": raw["name"], "params": raw["params"],
        }

    def __repr__(self) -> str:
        return (f"ProceduralShapes(split={self.split!r}, categories={len(self.categories)}, "
                f"items={len(self)}, representation={self.representation!r}, root={str(self.root)!r})")
