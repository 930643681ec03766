import csv
import json

import pytest
import torch

from geo4g.data import ProceduralShapes, ShapeNetCore
from geo4g.data.export import PROCEDURAL_SYNSETS, export_procedural
from geo4g.data.registry import DATASET_SPLITS, open_dataset
from geo4g.io import load_mesh
from geo4g.parametric.programs import CATEGORIES, get_program


def test_every_procedural_category_has_a_shapenet_synset():
    assert set(CATEGORIES) <= set(PROCEDURAL_SYNSETS)
    assert PROCEDURAL_SYNSETS["chair"] == "03001627" and PROCEDURAL_SYNSETS["airplane"] == "02691156"


def test_export_is_readable_as_shapenetcore_v2(tmp_path):
    gen = tmp_path / "gen"
    count = export_procedural(tmp_path / "out", categories=["chair", "mug"], shapes_per_category=10, root=gen,
                              progress=False)
    assert count == 20
    out = tmp_path / "out"
    source = ProceduralShapes(gen, split="all", categories=["chair", "mug"], shapes_per_category=10, progress=False)
    core = ShapeNetCore(out)
    assert core.version == "v2" and len(core) == 20
    model = out / "03001627" / "procedural-chair-00004" / "models"
    mesh = load_mesh(model / "model_normalized.obj")
    expected = source[4]
    assert torch.allclose(mesh.verts, expected["verts"]) and torch.equal(mesh.faces, expected["faces"])
    labels = [int(x) for x in (model / "part_labels.txt").read_text().split()]
    assert labels == expected["face_labels"].tolist()  # chair parts start at 0
    params = json.loads((model / "params.json").read_text())
    assert list(params) == list(get_program("chair").param_names)
    assert torch.allclose(torch.tensor(list(params.values())), expected["params"])
    assert json.loads((out / "parts.json").read_text())["mug"] == list(get_program("mug").parts)
    taxonomy = {t["name"]: t for t in json.loads((out / "taxonomy.json").read_text())}
    assert taxonomy["mug"]["synsetId"] == "03797390" and taxonomy["mug"]["numInstances"] == 10
    with open(out / "all.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 20 and {r["split"] for r in rows} == {"train", "val", "test"}
    assert len(ShapeNetCore(out, split="test")) == 4 and len(ShapeNetCore(out, split="val")) == 2
    mug_labels = [int(x) for x in (out / "03797390" / "procedural-mug-00000" / "models" / "part_labels.txt")
                  .read_text().split()]
    assert set(mug_labels) <= set(range(len(get_program("mug").parts)))


def test_export_resumes_and_keeps_complete_files(tmp_path):
    export_procedural(tmp_path / "out", categories=["bottle"], shapes_per_category=3, root=tmp_path / "g",
                      progress=False)
    obj = tmp_path / "out" / "02876657" / "procedural-bottle-00001" / "models" / "model_normalized.obj"
    stamp = obj.stat().st_mtime_ns
    (tmp_path / "out" / "02876657" / "procedural-bottle-00002" / "models" / "model_normalized.obj").unlink()
    assert export_procedural(tmp_path / "out", categories=["bottle"], shapes_per_category=3, root=tmp_path / "g",
                             progress=False) == 3
    assert obj.stat().st_mtime_ns == stamp
    assert len(ShapeNetCore(tmp_path / "out")) == 3


def test_export_rejects_unknown_categories(tmp_path):
    with pytest.raises(ValueError, match="unknown categories"):
        export_procedural(tmp_path / "out", categories=["teapot"], progress=False)


def test_open_dataset_by_name(tmp_path):
    ds = open_dataset("procedural", tmp_path, "val", categories=["mug"], shapes_per_category=10, num_points=32,
                      progress=False)
    assert isinstance(ds, ProceduralShapes) and ds[0]["points"].shape == (32, 3)
    assert DATASET_SPLITS["modelnet"] == ("train", "test")
    with pytest.raises(ValueError, match="unknown dataset"):
        open_dataset("shapenet", tmp_path, "train")
    with pytest.raises(ValueError, match="has splits"):
        open_dataset("modelnet", tmp_path, "val")
    with pytest.raises(ValueError, match="pass its root"):
        open_dataset("shapenetpart", None, "train")
    with pytest.raises(FileNotFoundError, match="ModelNet"):
        open_dataset("modelnet", tmp_path / "nowhere", "train")
