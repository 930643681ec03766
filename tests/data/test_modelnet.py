"""ModelNet: fixture folders in the published layout (OFF meshes and point files), and the shared
ModelNet10 point-cloud copy when it is present."""
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from geo4g.data.modelnet import MODELNET10_CLASSES, MODELNET40_CLASSES, ModelNet
from geo4g.io import save_mesh, save_pointcloud
from geo4g.parametric import box_mesh, icosphere

# /work/main/tests/data/test_modelnet.py -> /work/shared/data/...
SHARED_PCD = Path(__file__).parents[3] / "shared/data/modelnet10_pcd1024/ModelNet10/pcd"

# class -> (train files, test files)
LAYOUT = {"bathtub": (1, 1), "chair": (2, 1), "table": (1, 2)}


def shape(i):
    return box_mesh((1.0 + i, 2.0, 0.5)) if i % 2 else icosphere(1, radius=1.0 + i)


@pytest.fixture
def modelnet(tmp_path):
    """``tmp_path/ModelNet10/<class>/{train,test}/<class>_NNNN.off`` plus a non-official class folder."""
    root = tmp_path / "ModelNet10"
    number = 0
    for category, counts in LAYOUT.items():
        for split, count in zip(("train", "test"), counts):
            (root / category / split).mkdir(parents=True)
            for _ in range(count):
                number += 1
                save_mesh(root / category / split / f"{category}_{number:04d}.off", *shape(number))
    (root / "not_a_class" / "train").mkdir(parents=True)
    (root / "chair" / "train" / ".DS_Store").write_text("")
    return root


def point_folder(root, ext):
    g = torch.Generator().manual_seed(0)
    for category, split, n in (("chair", "train", 30), ("chair", "train", 40), ("sofa", "train", 20)):
        folder = root / category / split
        folder.mkdir(parents=True, exist_ok=True)
        number = len(list(folder.iterdir())) + 1
        path = folder / f"{category}_{number:04d}.{ext}"
        save_pointcloud(path, torch.randn(n, 3, generator=g),
                        normals=torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=1))
        (root / category / "test").mkdir(exist_ok=True)
    return root


def test_lengths_labels_and_names(modelnet):
    train = ModelNet(modelnet, split="train")
    test = ModelNet(modelnet, split="test")
    assert (len(train), len(test)) == (4, 4)
    assert train.categories == ("bathtub", "chair", "table") and train.classes == MODELNET10_CLASSES
    assert train.format == "off" and train.root == modelnet
    names = [train[i]["name"] for i in range(len(train))]
    assert names == ["bathtub/train/bathtub_0001.off", "chair/train/chair_0003.off", "chair/train/chair_0004.off",
                     "table/train/table_0006.off"]
    item = train[1]
    assert item["label"].dtype == torch.long and item["label"].ndim == 0
    assert [train[i]["label"].item() for i in range(4)] == [0, 2, 2, 8]
    assert item["category"] == "chair" and item["verts"].dtype == torch.float32 and item["faces"].dtype == torch.long
    verts, faces = shape(3)
    assert torch.allclose(item["verts"], verts) and torch.equal(item["faces"], faces)
    assert train.source(1) == str(modelnet / "chair/train/chair_0003.off")
    assert [test[i]["category"] for i in range(4)] == ["bathtub", "chair", "table", "table"]
    assert "4 .off items" in repr(train)


def test_root_may_hold_the_modelnet_folder(modelnet):
    assert ModelNet(modelnet.parent).root == modelnet
    assert [x["name"] for x in ModelNet(modelnet.parent)] == [x["name"] for x in ModelNet(modelnet)]


def test_modelnet40_labels_index_the_official_40_classes(modelnet):
    data = ModelNet(modelnet, name=40, split="test")
    assert [data[i]["label"].item() for i in range(4)] == [1, 8, 33, 33]
    assert MODELNET40_CLASSES[8] == "chair" and len(MODELNET40_CLASSES) == 40 and len(set(MODELNET40_CLASSES)) == 40
    assert set(MODELNET10_CLASSES) <= set(MODELNET40_CLASSES)
    assert list(MODELNET40_CLASSES) == sorted(MODELNET40_CLASSES)


def test_points_representation_is_reproducible(modelnet):
    data = ModelNet(modelnet, representation="points", num_points=128, seed=3)
    item = data[2]
    assert set(item) == {"points", "normals", "label", "category", "name"}
    assert item["points"].shape == (128, 3) and item["normals"].shape == (128, 3)
    assert torch.allclose(item["normals"].norm(dim=1), torch.ones(128), atol=1e-5)
    again = ModelNet(modelnet, representation="points", num_points=128, seed=3)[2]
    assert torch.equal(item["points"], again["points"]) and torch.equal(item["normals"], again["normals"])
    other = ModelNet(modelnet, representation="points", num_points=128, seed=4)[2]
    assert not torch.equal(item["points"], other["points"])


def test_transform_is_applied_last(modelnet):
    def centre(item):
        return {**item, "points": item["points"] - item["points"].mean(0), "seen": True}

    item = ModelNet(modelnet, representation="points", num_points=64, transform=centre)[0]
    assert item["seen"] and torch.allclose(item["points"].mean(0), torch.zeros(3), atol=1e-5)


def test_categories_select_and_keep_official_labels(modelnet):
    data = ModelNet(modelnet, split="test", categories=["table", "Bathtub"])
    assert data.categories == ("bathtub", "table") and len(data) == 3
    assert [data[i]["label"].item() for i in range(3)] == [0, 8, 8]
    assert len(ModelNet(modelnet, categories="chair")) == 2


@pytest.mark.parametrize("categories,match", [
    (["chair", "spoon"], r"unknown category 'spoon' in categories; valid: bathtub, bed, chair"),
    ([], "categories must name at least one category, got an empty list"),
    (["sofa"], r"has no folder for categories \['sofa'\]; it has \['bathtub', 'chair', 'table'\]"),
])
def test_bad_categories(modelnet, categories, match):
    with pytest.raises(ValueError, match=match):
        ModelNet(modelnet, categories=categories)


def test_missing_root_names_the_layout_and_the_source(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"ModelNet10 folder not found.*<class>/\{train,test\}/"
                                                r"<class>_NNNN.off.*https://modelnet.cs.princeton.edu/") as info:
        ModelNet(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(info.value)


def test_wrong_layouts_name_the_root_and_what_was_found(tmp_path, modelnet):
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "chair_0001.off").write_text("OFF\n0 0 0\n")
    with pytest.raises(ValueError, match=rf"{tmp_path / 'flat'} is not a ModelNet10 folder: found "
                                         r"\['chair_0001.off'\] \(1 entries\), expected class folders"):
        ModelNet(tmp_path / "flat")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="found nothing"):
        ModelNet(tmp_path / "empty")
    (modelnet / "bed" / "train").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"class folder 'bed' has no test/ folder \(found \['train/'\]"):
        ModelNet(modelnet, split="test")
    with pytest.raises(ValueError, match=r"bed/train holds no .off, .pcd, .ply or .npy files"):
        ModelNet(modelnet, categories=["bed"])


def test_empty_split_and_mixed_formats_raise(tmp_path):
    root = tmp_path / "m"
    (root / "chair" / "train").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"holds no .off, .pcd, .ply or .npy files in <class>/train/"):
        ModelNet(root)
    save_mesh(root / "chair" / "train" / "chair_0001.off", *shape(1))
    save_pointcloud(root / "chair" / "train" / "chair_0002.npy", torch.zeros(4, 3))
    with pytest.raises(ValueError, match=r"mixes file formats in its train split: 1 .npy \(e.g. chair_0002.npy\), "
                                         r"1 .off"):
        ModelNet(root)


def test_corrupt_file_raises_naming_the_file(modelnet):
    bad = modelnet / "chair" / "train" / "chair_0003.off"
    bad.write_text("OFF\n3 1 0\n0 0 0\n1 1\n")
    data = ModelNet(modelnet)
    with pytest.raises(ValueError, match=str(bad)):
        data[1]
    bad.write_text("OFF\n3 0 0\n0 0 0\n1 0 0\n0 1 0\n")
    with pytest.raises(ValueError, match=f"{bad}: the mesh has no faces"):
        data.load_raw(1)
    bad.unlink()
    with pytest.raises(OSError, match="chair_0003.off"):
        data[1]


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(num_points=0, representation="points"), ValueError, "num_points must be a positive int"),
    (dict(num_points=-5), ValueError, "num_points must be a positive int"),
    (dict(name="20"), ValueError, r"name must be one of \['10', '40'\], got '20'"),
    (dict(split="val"), ValueError, r"split must be one of \['train', 'test'\], got 'val'"),
    (dict(representation="octree"), ValueError, "representation must be one of"),
])
def test_bad_arguments(modelnet, kwargs, error, match):
    with pytest.raises(error, match=match):
        ModelNet(modelnet, **kwargs)


def test_mesh_dataset_needs_num_points_for_points(modelnet):
    with pytest.raises(ValueError, match="needs num_points"):
        ModelNet(modelnet, representation="points", num_points=None)[0]


@pytest.mark.parametrize("ext", ["pcd", "ply", "npy"])
def test_point_file_folders(tmp_path, ext):
    root = point_folder(tmp_path / "pts", ext)
    data = ModelNet(root, representation="points", num_points=None)
    assert data.format == ext and len(data) == 3 and data.categories == ("chair", "sofa")
    assert [x["points"].shape[0] for x in data] == [30, 40, 20]
    assert [x["label"].item() for x in data] == [2, 2, 7]
    assert data[2]["name"] == f"sofa/train/sofa_0001.{ext}" and data[0]["normals"].shape == (30, 3)
    sampled = ModelNet(root, representation="points", num_points=25, seed=1)
    a, b = sampled[0], ModelNet(root, representation="points", num_points=25, seed=1)[0]
    assert a["points"].shape == (25, 3) and torch.equal(a["points"], b["points"])
    # each sampled point is one of the file's points, its normal kept aligned
    full = data[0]
    rows = (a["points"][:, None] == full["points"][None]).all(-1).nonzero()[:, 1]
    assert len(rows) == 25 and torch.equal(a["normals"], full["normals"][rows])
    with pytest.raises(ValueError, match=rf"holds .{ext} point files: representation must be 'points', got 'mesh'"):
        ModelNet(root)


@pytest.mark.skipif(not SHARED_PCD.is_dir(), reason="the shared ModelNet10 point-cloud folder is not present")
def test_shared_modelnet10_pcd_test_split():
    data = ModelNet(SHARED_PCD, split="test", representation="points", num_points=1024)
    assert len(data) == 908 and data.format == "pcd"
    expected = {"bathtub": 50, "bed": 100, "chair": 100, "desk": 86, "dresser": 86, "monitor": 100,
                "night_stand": 86, "sofa": 100, "table": 100, "toilet": 100}
    assert Counter(Path(data.source(i)).parts[-3] for i in range(len(data))) == expected
    for i in (0, 457, 907):
        item = data[i]
        assert item["points"].shape == (1024, 3) and bool(item["points"].isfinite().all())
        assert item["label"].item() == MODELNET10_CLASSES.index(item["category"])
    assert np.unique(data[0]["points"].numpy(), axis=0).shape[0] == 1024  # all points, each once
