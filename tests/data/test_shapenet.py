"""ShapeNetCore (v1 and v2 layouts, official and hash splits) and ShapeNetPart, on fixture folders in
the published layouts."""
import json

import numpy as np
import pytest
import torch

from geo4g.data.shapenet import (
    SHAPENETCORE_SYNSETS,
    SHAPENETPART_NUM_PARTS,
    SHAPENETPART_PART_LABELS,
    SHAPENETPART_SYNSETS,
    ShapeNetCore,
    ShapeNetPart,
    hash_split,
)
from geo4g.io import save_mesh
from geo4g.parametric import box_mesh, icosphere

CHAIR, TABLE, AIRPLANE = "03001627", "04379243", "02691156"
CORE_MODELS = {CHAIR: [f"c{i:02d}a1b2" for i in range(12)], TABLE: ["t00ff", "t01ee", "t02dd"]}


def core_folder(root, version):
    """``<root>/<synset>/<model>/model.obj`` (v1) or ``.../models/model_normalized.obj`` (v2)."""
    for synset, models in CORE_MODELS.items():
        for i, model in enumerate(models):
            folder = root / synset / model / ("models" if version == "v2" else "")
            folder.mkdir(parents=True)
            mesh = box_mesh((1.0, 1.0 + i, 0.5)) if synset == TABLE else icosphere(1, radius=1.0 + i)
            save_mesh(folder / ("model_normalized.obj" if version == "v2" else "model.obj"), *mesh)
            if version == "v2":
                (root / synset / model / "images").mkdir()
    (root / "taxonomy.json").write_text("[]")
    (root / "99999999").mkdir()  # not a ShapeNetCore synset: ignored
    return root


@pytest.fixture(params=["v1", "v2"])
def core(tmp_path, request):
    return core_folder(tmp_path / f"ShapeNetCore.{request.param}", request.param), request.param


def test_core_lengths_labels_names(core):
    root, version = core
    data = ShapeNetCore(root)
    assert data.version == version and len(data) == 15 and data.synsets == (CHAIR, TABLE)
    assert [data[i]["name"] for i in (0, 11, 12)] == [f"{CHAIR}/c00a1b2", f"{CHAIR}/c11a1b2", f"{TABLE}/t00ff"]
    chair, table = data[0], data[12]
    assert chair["category"] == "chair" and table["category"] == "table"
    assert chair["label"].item() == list(SHAPENETCORE_SYNSETS).index(CHAIR) == 18
    assert table["label"].item() == list(SHAPENETCORE_SYNSETS).index(TABLE) == 49
    verts, faces = box_mesh((1.0, 1.0, 0.5))
    assert torch.allclose(table["verts"], verts) and torch.equal(table["faces"], faces)
    file = "models/model_normalized.obj" if version == "v2" else "model.obj"
    assert data.source(12) == str(root / TABLE / "t00ff" / file)
    assert version in repr(data)


def test_core_taxonomy_is_the_55_synsets():
    assert len(SHAPENETCORE_SYNSETS) == 55 and list(SHAPENETCORE_SYNSETS) == sorted(SHAPENETCORE_SYNSETS)
    assert all(len(s) == 8 and s.isdigit() for s in SHAPENETCORE_SYNSETS)
    assert len(set(SHAPENETCORE_SYNSETS.values())) == 55
    assert (SHAPENETCORE_SYNSETS[CHAIR], SHAPENETCORE_SYNSETS[TABLE], SHAPENETCORE_SYNSETS[AIRPLANE]) == \
        ("chair", "table", "airplane")


def test_core_synsets_by_id_or_name(core):
    root, _ = core
    assert ShapeNetCore(root, synsets=["table"]).synsets == (TABLE,)
    data = ShapeNetCore(root, synsets=[TABLE, "Chair", "chair"])
    assert data.synsets == (CHAIR, TABLE) and len(data) == 15
    assert len(ShapeNetCore(root, synsets="table")) == 3


@pytest.mark.parametrize("synsets,match", [
    (["chair", "spaceship"], r"unknown synset 'spaceship' in synsets; valid: 02691156 \(airplane\), "),
    (["0300162"], "unknown synset '0300162'"),
    ([], "synsets must name at least one synset, got an empty list"),
    (["airplane"], rf"has no folder for synsets \['{AIRPLANE} \(airplane\)'\]; it has \['{CHAIR}', '{TABLE}'\]"),
])
def test_core_bad_synsets(core, synsets, match):
    with pytest.raises(ValueError, match=match):
        ShapeNetCore(core[0], synsets=synsets)


def test_core_hash_split_partitions_every_model(core):
    root, _ = core
    splits = {s: ShapeNetCore(root, split=s) for s in ("train", "val", "test")}
    names = {s: [d[i]["name"] for i in range(len(d))] for s, d in splits.items()}
    everything = [ShapeNetCore(root)[i]["name"] for i in range(15)]
    assert sorted(sum(names.values(), [])) == sorted(everything)
    for s, listed in names.items():
        assert all(hash_split(n.split("/")[1]) == s for n in listed)
    assert names["train"] == [ShapeNetCore(root, split="train")[i]["name"] for i in range(len(splits["train"]))]


def test_hash_split_proportions_and_stability():
    counts = {"train": 0, "val": 0, "test": 0}
    for i in range(20000):
        counts[hash_split(f"{i:032x}")] += 1
    assert abs(counts["train"] / 20000 - 0.7) < 0.02 and abs(counts["val"] / 20000 - 0.1) < 0.02
    # pinned values: the split must not change between machines, processes or Python versions (a salted
    # hash() would pass a same-process comparison)
    assert [hash_split(m) for m in ("1a04e3eab45ca15dd86060f189eb133", "b", "g", "10155655850468db78d106ce0a280f87")] \
        == ["train", "test", "val", "train"]


def test_core_official_split_from_all_csv(core):
    root, _ = core
    rows = ["id,synsetId,subSynsetId,modelId,split",
            f"1,{CHAIR},{CHAIR},c00a1b2,train", f"2,{int(CHAIR)},{CHAIR},c01a1b2,val",  # leading zero lost
            f"3,{TABLE},{TABLE},t00ff,test", f"4,{TABLE},{TABLE},t01ee,train", f"5,{TABLE},{TABLE},gone,train"]
    (root / "all.csv").write_text("\n".join(rows) + "\n")
    assert [x["name"] for x in ShapeNetCore(root, split="train")] == [f"{CHAIR}/c00a1b2", f"{TABLE}/t01ee"]
    assert [x["name"] for x in ShapeNetCore(root, split="val")] == [f"{CHAIR}/c01a1b2"]
    assert [x["name"] for x in ShapeNetCore(root, split="test", synsets=["table"])] == [f"{TABLE}/t00ff"]
    assert len(ShapeNetCore(root)) == 15  # split=None: every model
    (root / "all.csv").write_text("model,split\nx,train\n")
    with pytest.raises(ValueError, match=r"all.csv: expected the columns id,synsetId,subSynsetId,modelId,split"):
        ShapeNetCore(root, split="train")


def test_core_points_representation(core):
    root, _ = core
    data = ShapeNetCore(root, representation="points", num_points=100, seed=7, synsets=["table"])
    item = data[1]
    assert item["points"].shape == (100, 3) and torch.allclose(item["normals"].norm(dim=1), torch.ones(100))
    assert torch.equal(item["points"], ShapeNetCore(root, representation="points", num_points=100, seed=7,
                                                    synsets=["table"])[1]["points"])
    assert (item["points"].abs() <= torch.tensor([0.5, 1.0, 0.25]) + 1e-6).all()  # on the 1 x 2 x 0.5 box


def test_core_missing_root_and_wrong_layouts(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"ShapeNetCore folder not found.*model.obj \(v1\).*"
                                                r"model_normalized.obj \(v2\).*https://shapenet.org/"):
        ShapeNetCore(tmp_path / "nowhere")
    (tmp_path / "a" / "chairs").mkdir(parents=True)
    with pytest.raises(ValueError, match=rf"{tmp_path / 'a'} is not a ShapeNetCore folder: found \['chairs/'\]"):
        ShapeNetCore(tmp_path / "a")
    (tmp_path / "b" / CHAIR / "m1").mkdir(parents=True)
    (tmp_path / "b" / CHAIR / "m1" / "mesh.obj").write_text("")
    with pytest.raises(ValueError, match=r"found \['mesh.obj'\] .*in 03001627/m1/, expected"):
        ShapeNetCore(tmp_path / "b")
    (tmp_path / "c" / CHAIR).mkdir(parents=True)
    with pytest.raises(ValueError, match="found no model folders"):
        ShapeNetCore(tmp_path / "c")


def test_core_corrupt_file_names_the_file(core):
    root, version = core
    path = root / CHAIR / "c03a1b2" / ("models/model_normalized.obj" if version == "v2" else "model.obj")
    path.write_text("v 0 0 0\nv 1 0 0\nf 1 2 7\n")
    data = ShapeNetCore(root)
    with pytest.raises(ValueError, match=str(path)):
        data[3]
    path.unlink()
    with pytest.raises(OSError, match=str(path)):
        data[3]


def test_core_bad_arguments(core):
    with pytest.raises(ValueError, match=r"split must be one of \['train', 'val', 'test'\], got 'trainval'"):
        ShapeNetCore(core[0], split="trainval")
    with pytest.raises(ValueError, match="num_points must be a positive int"):
        ShapeNetCore(core[0], representation="points", num_points=0)


# ShapeNetPart ----------------------------------------------------------------------------------------
PART_SHAPES = {  # (synset, model): (split, points)
    (AIRPLANE, "a0"): ("train", 50), (AIRPLANE, "a1"): ("train", 60), (AIRPLANE, "a2"): ("val", 40),
    (AIRPLANE, "a3"): ("test", 45), (CHAIR, "c0"): ("train", 70), (CHAIR, "c1"): ("test", 55),
    (CHAIR, "c2"): ("val", 35),
}


def part_folder(parent):
    """``<parent>/shapenetcore_partanno_segmentation_benchmark_v0_normal`` as the archive unpacks."""
    root = parent / "shapenetcore_partanno_segmentation_benchmark_v0_normal"
    (root / "train_test_split").mkdir(parents=True)
    (root / "synsetoffset2category.txt").write_text("".join(f"{n}\t{s}\n" for n, s in SHAPENETPART_SYNSETS.items()))
    lists = {"train": [], "val": [], "test": []}
    rng = np.random.default_rng(0)
    for (synset, model), (split, n) in PART_SHAPES.items():
        lists[split].append(f"shape_data/{synset}/{model}")
        parts = SHAPENETPART_PART_LABELS["Airplane" if synset == AIRPLANE else "Chair"]
        normals = rng.normal(size=(n, 3))
        normals /= np.linalg.norm(normals, axis=1, keepdims=True)
        rows = np.concatenate([rng.normal(size=(n, 3)), normals, rng.choice(parts, (n, 1))], axis=1)
        (root / synset).mkdir(exist_ok=True)
        np.savetxt(root / synset / f"{model}.txt", rows, fmt="%.6f %.6f %.6f %.6f %.6f %.6f %d")
    for split, entries in lists.items():
        (root / "train_test_split" / f"shuffled_{split}_file_list.json").write_text(json.dumps(entries[::-1]))
    return root


@pytest.fixture
def part(tmp_path):
    return part_folder(tmp_path)


def test_part_lengths_labels_names(part):
    sizes = {s: len(ShapeNetPart(part, split=s)) for s in ("train", "val", "test", "trainval")}
    assert sizes == {"train": 3, "val": 2, "test": 2, "trainval": 5}
    data = ShapeNetPart(part.parent, split="trainval", num_points=None)
    assert data.root == part and data.categories == tuple(SHAPENETPART_SYNSETS)
    names = [x["name"] for x in data]
    assert names == [f"{AIRPLANE}/a0", f"{AIRPLANE}/a1", f"{AIRPLANE}/a2", f"{CHAIR}/c0", f"{CHAIR}/c2"]
    item = data[3]
    assert item["category"] == "Chair" and item["label"].item() == 4 and item["label"].dtype == torch.long
    rows = np.loadtxt(part / CHAIR / "c0.txt")
    assert item["points"].shape == (70, 3) and item["part_labels"].dtype == torch.long
    assert np.allclose(item["points"].numpy(), rows[:, :3]) and np.allclose(item["normals"].numpy(), rows[:, 3:6])
    assert item["part_labels"].tolist() == rows[:, 6].astype(int).tolist()
    assert set(item) == {"points", "normals", "part_labels", "label", "category", "name"}
    assert data.source(0) == str(part / AIRPLANE / "a0.txt")


def test_part_sampling_keeps_labels_aligned_and_is_reproducible(part):
    data = ShapeNetPart(part, num_points=32, seed=5)
    full = ShapeNetPart(part, num_points=None)
    for i in range(len(data)):
        item, whole = data[i], full[i]
        assert item["points"].shape == (32, 3) and item["part_labels"].shape == (32,)
        assert torch.allclose(item["normals"].norm(dim=1), torch.ones(32), atol=1e-5)
        rows = (item["points"][:, None] == whole["points"][None]).all(-1).nonzero()[:, 1]
        assert torch.equal(item["part_labels"], whole["part_labels"][rows])
        assert set(item["part_labels"].tolist()) <= set(SHAPENETPART_PART_LABELS[item["category"]])
        assert torch.equal(item["points"], ShapeNetPart(part, num_points=32, seed=5)[i]["points"])
    many = ShapeNetPart(part, num_points=100)[0]  # more than the 50 points of a0: drawn with repeats
    assert many["points"].shape == (100, 3) and many["part_labels"].shape == (100,)


def test_part_transform_is_applied(part):
    item = ShapeNetPart(part, num_points=16, transform=lambda x: {**x, "points": x["points"] * 0})[0]
    assert not item["points"].any()


def test_part_categories(part):
    assert [x["name"] for x in ShapeNetPart(part, categories=["chair"])] == [f"{CHAIR}/c0"]
    data = ShapeNetPart(part, split="test", categories=[CHAIR, "AIRPLANE"])
    assert data.categories == ("Airplane", "Chair") and [x["label"].item() for x in data] == [0, 4]
    assert len(ShapeNetPart(part, categories=["Table"])) == 0  # listed, but no shapes in the fixture


@pytest.mark.parametrize("categories,match", [
    (["Chair", "Sofa"], r"unknown category 'Sofa' in categories; valid: Airplane \(02691156\), Bag"),
    ([], "categories must name at least one category"),
    ([3], "unknown category 3"),
])
def test_part_bad_categories(part, categories, match):
    with pytest.raises(ValueError, match=match):
        ShapeNetPart(part, categories=categories)


def test_part_category_not_listed_by_the_folder(part):
    (part / "synsetoffset2category.txt").write_text(f"Airplane\t{AIRPLANE}\nChair\t{CHAIR}\n")
    assert ShapeNetPart(part).categories == ("Airplane", "Chair")
    with pytest.raises(ValueError, match=r"does not list categories \['Lamp'\]; it lists \['Airplane', 'Chair'\]"):
        ShapeNetPart(part, categories=["lamp"])


def test_public_names_are_exported():
    import geo4g.data.shapenet as module

    assert "hash_split" in module.__all__ and all(hasattr(module, name) for name in module.__all__)


def test_part_constants_cover_the_50_parts():
    assert list(SHAPENETPART_SYNSETS) == ["Airplane", "Bag", "Cap", "Car", "Chair", "Earphone", "Guitar", "Knife",
                                          "Lamp", "Laptop", "Motorbike", "Mug", "Pistol", "Rocket", "Skateboard",
                                          "Table"]
    labels = [p for name in SHAPENETPART_SYNSETS for p in SHAPENETPART_PART_LABELS[name]]
    assert labels == list(range(SHAPENETPART_NUM_PARTS)) == list(range(50))
    assert SHAPENETPART_PART_LABELS["Motorbike"] == (30, 31, 32, 33, 34, 35)
    assert all(SHAPENETCORE_SYNSETS[s].lower() == n.lower() for n, s in SHAPENETPART_SYNSETS.items())


def test_part_missing_root_and_wrong_layouts(tmp_path, part):
    with pytest.raises(FileNotFoundError, match=r"ShapeNetPart folder not found.*synsetoffset2category.txt.*"
                                                r"shapenetcore_partanno_segmentation_benchmark_v0_normal archive"):
        ShapeNetPart(tmp_path / "nowhere")
    (tmp_path / "wrong" / AIRPLANE).mkdir(parents=True)
    with pytest.raises(ValueError, match=rf"{tmp_path / 'wrong'} is not a ShapeNetPart folder: found "
                                         rf"\['{AIRPLANE}/'\] \(1 entries\), expected <root>/synsetoffset2category"):
        ShapeNetPart(tmp_path / "wrong")
    (part / "train_test_split" / "shuffled_val_file_list.json").unlink()
    with pytest.raises(ValueError, match=r"shuffled_val_file_list.json is missing from train_test_split/"):
        ShapeNetPart(part, split="trainval")


@pytest.mark.parametrize("file,text,match", [
    ("synsetoffset2category.txt", "Airplane\t02691156\nSofa\t04256520\n", r"synsetoffset2category.txt:2: expected "
                                                                          r"'<category><TAB><synset>'"),
    ("synsetoffset2category.txt", "\n", "lists no category"),
    ("train_test_split/shuffled_train_file_list.json", "[", "not a JSON list"),
    ("train_test_split/shuffled_train_file_list.json", '{"a": 1}', "expected a JSON list .* got dict"),
    ("train_test_split/shuffled_train_file_list.json", '["shape_data/02691156"]', "entry 0 must look like"),
])
def test_part_malformed_index_files_name_the_file(part, file, text, match):
    (part / file).write_text(text)
    with pytest.raises(ValueError, match=match) as info:
        ShapeNetPart(part)
    assert str(part / file) in str(info.value)


def test_part_corrupt_shape_files_name_the_file(part):
    data = ShapeNetPart(part, num_points=None)
    path = part / AIRPLANE / "a1.txt"
    np.savetxt(path, np.zeros((5, 6)))
    with pytest.raises(ValueError, match=rf"{path}: expected rows of 7 values 'x y z nx ny nz part_label', got 6"):
        data[1]
    np.savetxt(path, np.concatenate([np.zeros((5, 6)), np.full((5, 1), 12)], axis=1))
    with pytest.raises(ValueError, match=rf"{path}: row 0: part label 12.0 is not one of Airplane's part labels 0..3"):
        data[1]
    path.write_text("# no rows\n")  # was reported as "got 3 values"
    with pytest.raises(ValueError, match=rf"{path}: holds no points; expected rows of 7 values"):
        data[1]
    path.write_text("0 0 0 0 0 1 0\n0 0 zero 0 0 1 0\n")
    with pytest.raises(ValueError, match=rf"{path}:2: malformed value 'zero'"):
        data[1]
    path.unlink()
    with pytest.raises(OSError, match=str(path)):
        data[1]


def test_part_bad_arguments(part):
    with pytest.raises(ValueError, match=r"representation must be one of \['points'\], got 'mesh'"):
        ShapeNetPart(part, representation="mesh")
    with pytest.raises(ValueError, match=r"split must be one of \['train', 'val', 'test', 'trainval'\]"):
        ShapeNetPart(part, split="all")
    with pytest.raises(ValueError, match="num_points must be a positive int"):
        ShapeNetPart(part, num_points=0)
