"""Open any geo4g dataset by name, as the CLI and the cache builder do."""
from __future__ import annotations

import os
from typing import Dict, Optional, Sequence, Tuple, Union

from .base import GeometryDataset
from .modelnet import ModelNet
from .procedural import ProceduralShapes
from .shapenet import ShapeNetCore, ShapeNetPart

__all__ = ["DATASET_SPLITS", "open_dataset"]

#: the splits of each named dataset
DATASET_SPLITS: Dict[str, Tuple[str, ...]] = {
    "procedural": ("train", "val", "test"),
    "modelnet": ("train", "test"),
    "shapenetcore": ("train", "val", "test"),
    "shapenetpart": ("train", "val", "test"),
}


def open_dataset(name: str, root: Union[str, os.PathLike, None], split: str, *, representation: str = "points",
                 num_points: Optional[int] = 2048, categories: Optional[Sequence[str]] = None, seed: int = 0,
                 modelnet: str = "10", shapes_per_category: int = 200, workers: Optional[int] = None,
                 progress: bool = True) -> GeometryDataset:
    """The dataset ``name`` (a key of ``DATASET_SPLITS``) at ``root``, split ``split``.

    ``root`` is required for the real datasets; for ``"procedural"`` it is the generation
    cache (``None``: the default cache folder). ``categories`` are class names, or synsets
    for ShapeNetCore; ``modelnet`` picks ModelNet10 or ModelNet40.
    """
    if name not in DATASET_SPLITS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {list(DATASET_SPLITS)}")
    if split not in DATASET_SPLITS[name]:
        raise ValueError(f"{name} has splits {list(DATASET_SPLITS[name])}, got {split!r}")
    common = dict(representation=representation, num_points=num_points, seed=seed)
    if name == "procedural":
        return ProceduralShapes(root, split=split, categories=categories, shapes_per_category=shapes_per_category,
                                workers=workers, progress=progress, **common)
    if root is None:
        raise ValueError(f"dataset {name!r} is read from a local folder: pass its root")
    if name == "modelnet":
        return ModelNet(root, name=modelnet, split=split, categories=categories, **common)
    if name == "shapenetcore":
        return ShapeNetCore(root, synsets=categories, split=split, **common)
    return ShapeNetPart(root, split=split, categories=categories, **common)
