"""Write the procedural dataset to disk in the ShapeNetCore v2 layout, for other tools.

::

    <out>/taxonomy.json                                   [{"synsetId", "name", "numInstances", "children"}]
    <out>/all.csv                                         id,synsetId,subSynsetId,modelId,split
    <out>/parts.json                                      {"<category>": ["<part>", ...]}
    <out>/<synset>/<model>/models/model_normalized.obj    the mesh (y up, bounding-box diagonal 1)
    <out>/<synset>/<model>/models/part_labels.txt         one part index (into parts.json) per face
    <out>/<synset>/<model>/models/params.json             the generating parameters by name

``geo4g.data.ShapeNetCore(out, split=...)`` reads the export back (with ``all.csv``'s split).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional, Sequence, Union

from tqdm.auto import tqdm

from geo4g._atomic import atomic_write
from geo4g.io import save_mesh
from geo4g.parametric.programs import get_program

from .procedural import ProceduralShapes, split_of
from .shapenet import SHAPENETCORE_SYNSETS

__all__ = ["export_procedural", "PROCEDURAL_SYNSETS"]

PathLike = Union[str, os.PathLike]

#: the ShapeNetCore synset of each procedural category
PROCEDURAL_SYNSETS = {name: synset for synset, name in SHAPENETCORE_SYNSETS.items()}


def export_procedural(out: PathLike, categories: Optional[Sequence[str]] = None, shapes_per_category: int = 100,
                      seed: int = 0, root: Optional[PathLike] = None, progress: bool = True) -> int:
    """Export ``ProceduralShapes`` (every split) to ``out`` in the ShapeNetCore v2 layout.

    Files already present are kept (every file is written atomically, so a present file is
    complete): an interrupted export resumes. Returns the number of models written or kept.

    Raises:
        ValueError: a category without a ShapeNetCore synset, or the dataset's own errors
            (unknown or empty categories, bad ``shapes_per_category``).
    """
    dataset = ProceduralShapes(root, split="all", categories=categories, shapes_per_category=shapes_per_category,
                               seed=seed, progress=progress)
    missing = [c for c in dataset.categories if c not in PROCEDURAL_SYNSETS]
    if missing:
        raise ValueError(f"categories {missing} have no ShapeNetCore synset to export under")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = ["id,synsetId,subSynsetId,modelId,split"]
    counts = {c: 0 for c in dataset.categories}
    for index in tqdm(range(len(dataset)), desc="exporting", unit="shape", disable=not progress):
        item = dataset.load_raw(index)
        category = item["category"]
        synset = PROCEDURAL_SYNSETS[category]
        shape = int(item["name"].rsplit("/", 1)[1])
        model = f"procedural-{category}-{shape:05d}"
        folder = out / synset / model / "models"
        folder.mkdir(parents=True, exist_ok=True)
        mesh_file = folder / "model_normalized.obj"
        if not mesh_file.is_file():
            save_mesh(mesh_file, item["verts"], item["faces"])
        local = item["face_labels"] - dataset.part_offsets[int(item["label"])]
        if not (folder / "part_labels.txt").is_file():
            with atomic_write(folder / "part_labels.txt", "w") as f:
                f.write("\n".join(map(str, local.tolist())) + "\n")
        if not (folder / "params.json").is_file():
            names = get_program(category).param_names
            with atomic_write(folder / "params.json", "w") as f:
                json.dump(dict(zip(names, item["params"].tolist())), f, indent=1)
        rows.append(f"{len(rows)},{synset},{synset},{model},{split_of(shape)}")
        counts[category] += 1
    taxonomy = [{"synsetId": PROCEDURAL_SYNSETS[c], "name": c, "numInstances": n, "children": []}
                for c, n in counts.items()]
    with atomic_write(out / "taxonomy.json", "w") as f:
        json.dump(taxonomy, f, indent=1)
    with atomic_write(out / "parts.json", "w") as f:
        json.dump({c: list(get_program(c).parts) for c in dataset.categories}, f, indent=1)
    with atomic_write(out / "all.csv", "w") as f:
        f.write("\n".join(rows) + "\n")
    return len(dataset)
