import pytest
import torch

from geo4g.data import ProceduralShapes, SamplePoints, generate_shape, program_fingerprint, split_of
from geo4g.data.procedural import default_cache_root
from geo4g.parametric.programs import CATEGORIES, get_program

TWO = ["chair", "mug"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("procedural")


def test_splits_partition_the_shapes_70_10_20(root):
    sizes = {s: len(ProceduralShapes(root, split=s, categories=TWO, shapes_per_category=20, workers=0,
                                     progress=False)) for s in ("train", "val", "test", "all")}
    assert sizes == {"train": 28, "val": 4, "test": 8, "all": 40}
    assert [split_of(i) for i in range(10)] == ["train"] * 7 + ["val"] + ["test"] * 2


def test_items_match_the_program_and_carry_global_part_labels(root):
    ds = ProceduralShapes(root, split="all", categories=TWO, shapes_per_category=10, workers=0, progress=False)
    assert ds.num_classes == 2 and ds.part_offsets == (0, len(get_program("chair").parts))
    assert ds.part_names[:2] == ("chair/back", "chair/seat") and len(ds.part_names) == ds.num_parts
    item = ds[13]  # mug 3
    assert item["category"] == "mug" and int(item["label"]) == 1 and item["name"] == "mug/00003"
    fresh = generate_shape("mug", 3, seed=0)
    assert torch.equal(item["verts"], fresh["verts"]) and torch.equal(item["faces"], fresh["faces"].long())
    assert torch.equal(item["face_labels"], fresh["face_labels"].long() + ds.part_offsets[1])
    assert torch.equal(item["params"], fresh["params"])
    assert item["faces"].dtype == torch.long and item["face_labels"].dtype == torch.long


def test_shapes_do_not_depend_on_the_dataset_size_or_workers(tmp_path):
    small = ProceduralShapes(tmp_path / "a", split="all", categories=["table"], shapes_per_category=5, workers=0,
                             progress=False)
    big = ProceduralShapes(tmp_path / "b", split="all", categories=["table"], shapes_per_category=70, workers=2,
                           progress=False)
    for i in range(5):
        assert torch.equal(small[i]["verts"], big[i]["verts"])
    assert not torch.equal(big[0]["verts"], big[1]["verts"])


def test_seed_changes_the_shapes(root):
    a = ProceduralShapes(root, split="all", categories=["car"], shapes_per_category=3, seed=0, workers=0,
                         progress=False)
    b = ProceduralShapes(root, split="all", categories=["car"], shapes_per_category=3, seed=1, workers=0,
                         progress=False)
    assert not torch.equal(a[0]["params"], b[0]["params"])


def test_cache_is_reused_and_keyed_by_program_code(root, monkeypatch):
    ProceduralShapes(root, split="all", categories=["bottle"], shapes_per_category=4, workers=0, progress=False)
    folder = root / "procedural" / f"bottle-{program_fingerprint('bottle')}" / "seed0"
    assert (folder / "chunk-00000" / "meta.json").is_file()

    def fail(*args):
        raise AssertionError("a cached chunk was generated again")

    monkeypatch.setattr("geo4g.data.procedural._generate_chunk", fail)
    ds = ProceduralShapes(root, split="all", categories=["bottle"], shapes_per_category=4, workers=0, progress=False)
    assert len(ds) == 4
    assert program_fingerprint("bottle") != program_fingerprint("chair")


def test_points_representation_is_reproducible_with_part_labels(root):
    kwargs = dict(split="test", categories=TWO, shapes_per_category=10, representation="points", num_points=256,
                  workers=0, progress=False)
    a, b = ProceduralShapes(root, **kwargs), ProceduralShapes(root, **kwargs)
    item = a[0]
    assert item["points"].shape == (256, 3) and item["normals"].shape == (256, 3)
    assert torch.allclose(item["normals"].norm(dim=1), torch.ones(256), atol=1e-5)
    assert torch.equal(item["points"], b[0]["points"])
    parts = item["part_labels"]
    lo = a.part_offsets[int(item["label"])]
    assert parts.shape == (256,) and int(parts.min()) >= lo and int(parts.max()) < lo + len(get_program("chair").parts)
    assert item["points"].abs().max() <= 0.5 + 1e-5  # shapes are normalised to bounding-box diagonal 1


def test_transform_is_applied(root):
    ds = ProceduralShapes(root, split="val", categories=TWO, shapes_per_category=10, transform=SamplePoints(64),
                          workers=0, progress=False)
    assert ds[0]["points"].shape == (64, 3) and "faces" not in ds[0]


def test_default_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("GEO4G_CACHE", str(tmp_path / "g"))
    assert default_cache_root() == tmp_path / "g"
    monkeypatch.delenv("GEO4G_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert default_cache_root() == tmp_path / "x" / "geo4g"
    ds = ProceduralShapes(split="val", categories=["mug"], shapes_per_category=8, workers=0, progress=False)
    assert ds.root == tmp_path / "x" / "geo4g" and len(ds) == 1


def test_all_categories_by_default(root):
    ds = ProceduralShapes(root, split="val", shapes_per_category=8, workers=2, progress=False)
    assert ds.categories == CATEGORIES and len(ds) == len(CATEGORIES)
    assert sorted(int(ds[i]["label"]) for i in range(len(ds))) == list(range(len(CATEGORIES)))


def test_negative_index_and_out_of_range(root):
    ds = ProceduralShapes(root, split="val", categories=TWO, shapes_per_category=10, workers=0, progress=False)
    assert ds[-1]["name"] == ds[1]["name"]
    with pytest.raises(IndexError, match="out of range"):
        ds[2]


@pytest.mark.parametrize("kwargs, message", [
    (dict(categories=["chair", "spaceship"]), "unknown categories"),
    (dict(categories=[]), "categories is empty"),
    (dict(categories=["mug", "mug"]), "duplicates"),
    (dict(split="training"), "split must be one of"),
    (dict(shapes_per_category=0), "shapes_per_category must be a positive int"),
    (dict(representation="voxel"), "representation must be one of"),
    (dict(representation="points", num_points=0), "num_points must be a positive int"),
    (dict(num_points=-3), "num_points must be a positive int"),
    (dict(workers=-1), "workers must be"),
])
def test_bad_arguments_name_the_problem(root, kwargs, message):
    with pytest.raises(ValueError, match=message):
        ProceduralShapes(root, progress=False, **kwargs)


def test_bad_transform_and_seed_types(root):
    with pytest.raises(TypeError, match="transform must be callable"):
        ProceduralShapes(root, categories=TWO, transform=3, progress=False)
    with pytest.raises(TypeError, match="seed must be an int"):
        ProceduralShapes(root, categories=TWO, seed=1.5, progress=False)
