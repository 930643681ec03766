"""Tests for collate_geometry / GeometryCollate: ragged round trips in every output, label
padding, PyG batches, DataLoader integration (with and without workers), bad batches."""
import sys

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from geo4g.data.collate import GeometryCollate, collate_geometry
from geo4g.structures import Meshes, Pointclouds

SIZES = (5, 9, 1)


def point_item(n, seed=0, num_params=4):
    g = torch.Generator().manual_seed(seed)
    return {
        "points": torch.randn(n, 3, generator=g),
        "normals": torch.randn(n, 3, generator=g),
        "part_labels": torch.randint(0, 6, (n,), generator=g),
        "label": torch.tensor(seed % 3),
        "category": f"cat{seed % 3}",
        "name": f"item{seed}",
        "params": torch.rand(num_params, generator=g),
    }


def mesh_item(num_faces, seed=0):
    g = torch.Generator().manual_seed(seed)
    num_verts = num_faces + 2
    return {
        "verts": torch.randn(num_verts, 3, generator=g),
        "faces": torch.randint(0, num_verts, (num_faces, 3), generator=g),
        "face_labels": torch.randint(0, 4, (num_faces,), generator=g),
        "label": torch.tensor(seed),
        "name": f"mesh{seed}",
    }


def points_batch():
    return [point_item(n, seed) for seed, n in enumerate(SIZES)]


def unpad(padded, lengths):
    """Naive: the first lengths[b] rows of each padded item."""
    return [padded[b, :n] for b, n in enumerate(lengths.tolist())]


# padded ----------------------------------------------------------------------------------------------------
def test_padded_points_round_trip_and_padding():
    batch = points_batch()
    out = collate_geometry(batch, output="padded")
    assert set(out) == {"points", "lengths", "normals", "part_labels", "label", "category", "name", "params"}
    assert out["points"].shape == (3, 9, 3) and out["lengths"].dtype == torch.long
    assert out["lengths"].tolist() == list(SIZES)
    for key in ("points", "normals", "part_labels"):
        for got, item in zip(unpad(out[key], out["lengths"]), batch):
            assert torch.equal(got, item[key])
    mask = torch.arange(9)[None] < out["lengths"][:, None]
    assert (out["points"][~mask] == 0).all() and (out["normals"][~mask] == 0).all()
    assert (out["part_labels"][~mask] == -1).all() and out["part_labels"].dtype == torch.long
    assert torch.equal(out["label"], torch.tensor([0, 1, 2]))
    assert out["category"] == ["cat0", "cat1", "cat2"] and out["name"] == ["item0", "item1", "item2"]
    assert torch.equal(out["params"], torch.stack([item["params"] for item in batch]))


def test_padded_part_labels_work_with_ignore_index():
    batch = points_batch()
    out = collate_geometry(batch, output="padded")
    logits = torch.randn(3, 9, 6)
    loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), out["part_labels"], ignore_index=-1)
    ref = torch.nn.functional.cross_entropy(torch.cat(unpad(logits, out["lengths"])),
                                            torch.cat([item["part_labels"] for item in batch]))
    torch.testing.assert_close(loss, ref)


def test_padded_meshes_round_trip_through_meshes():
    batch = [mesh_item(f, seed) for seed, f in enumerate((4, 7, 2))]
    out = collate_geometry(batch, output="padded")
    assert out["verts_lengths"].tolist() == [6, 9, 4] and out["faces_lengths"].tolist() == [4, 7, 2]
    for key, lengths in (("verts", "verts_lengths"), ("faces", "faces_lengths"), ("face_labels", "faces_lengths")):
        for got, item in zip(unpad(out[key], out[lengths]), batch):
            assert torch.equal(got, item[key])
    mask = torch.arange(7)[None] < out["faces_lengths"][:, None]
    assert (out["faces"][~mask] == -1).all() and (out["face_labels"][~mask] == -1).all()
    meshes = Meshes(out["verts"], out["faces"], verts_lengths=out["verts_lengths"])
    assert all(torch.equal(f, item["faces"]) for f, item in zip(meshes.faces_list(), batch))


def test_ragged_params_stay_a_list_and_numbers_become_tensors():
    batch = [point_item(4, 0, num_params=3), point_item(4, 1, num_params=5)]
    for item, weight in zip(batch, (1.5, 2.0)):
        item["weight"] = weight
    out = collate_geometry(batch, output="padded")
    assert isinstance(out["params"], list) and [p.shape for p in out["params"]] == [(3,), (5,)]
    assert all(p is item["params"] for p, item in zip(out["params"], batch))
    assert torch.equal(out["weight"], torch.tensor([1.5, 2.0]))


def test_equal_sizes_and_empty_clouds():
    out = collate_geometry([point_item(4, 0), point_item(4, 1)], output="padded")
    assert out["points"].shape == (2, 4, 3) and (out["part_labels"] >= 0).all()
    out = collate_geometry([point_item(0, 0), point_item(2, 1)], output="padded")
    assert out["lengths"].tolist() == [0, 2] and (out["part_labels"][0] == -1).all()


@pytest.mark.parametrize("output", ["padded", "structures"])
def test_unsigned_labels_and_faces_are_padded_with_minus_one(output):
    # uint8 cannot hold -1: the padding used to wrap to 255, a real class for ignore_index=-1
    points = [{**point_item(n, seed), "part_labels": torch.arange(n, dtype=torch.uint8)} for seed, n in enumerate((2, 4))]
    out = collate_geometry(points, output=output)
    assert out["part_labels"].dtype == torch.long
    assert out["part_labels"].tolist() == [[0, 1, -1, -1], [0, 1, 2, 3]]
    meshes = [{**m, "faces": m["faces"].to(torch.uint8), "face_labels": m["face_labels"].to(torch.uint8)}
              for m in (mesh_item(2, 0), mesh_item(3, 1))]
    out = collate_geometry(meshes, output=output)
    assert out["face_labels"].dtype == torch.long and (out["face_labels"][0, 2:] == -1).all()
    if output == "padded":
        assert out["faces"].dtype == torch.long and (out["faces"][0, 2:] == -1).all()
        assert torch.equal(out["faces"][1], meshes[1]["faces"].long())
    else:
        assert all(torch.equal(f, m["faces"].long()) for f, m in zip(out["meshes"].faces_list(), meshes))


@pytest.mark.parametrize("output,key", [("padded", "lengths"), ("padded", "verts_lengths"),
                                        ("structures", "pointclouds"), ("structures", "meshes")])
def test_metadata_key_that_clashes_with_an_output_key_raises(output, key):
    # it used to overwrite the geometry's lengths / structure silently
    batch = [{**point_item(3, 0), **mesh_item(2, 0), key: 1}, {**point_item(5, 1), **mesh_item(3, 1), key: 2}]
    with pytest.raises(ValueError, match=f"batch\\[0\\] key '{key}' clashes with the '{key}' that output='{output}'"):
        collate_geometry(batch, output=output)
    other = "structures" if output == "padded" else "padded"
    assert torch.equal(collate_geometry(batch, output=other)[key], torch.tensor([1, 2]))  # no clash there


# structures ------------------------------------------------------------------------------------------------
def test_structures_points():
    batch = points_batch()
    out = collate_geometry(batch)
    assert set(out) == {"pointclouds", "part_labels", "label", "category", "name", "params"}
    clouds = out["pointclouds"]
    assert isinstance(clouds, Pointclouds) and len(clouds) == 3
    assert clouds.num_points_per_cloud().tolist() == list(SIZES)
    for p, nrm, item in zip(clouds.points_list(), clouds.normals_list(), batch):
        assert torch.equal(p, item["points"]) and torch.equal(nrm, item["normals"])
    padded = collate_geometry(batch, output="padded")
    assert torch.equal(clouds.points_padded(), padded["points"])
    assert torch.equal(clouds.normals_padded(), padded["normals"])
    assert torch.equal(clouds.points_packed(), torch.cat([item["points"] for item in batch]))
    assert torch.equal(out["part_labels"], padded["part_labels"])
    assert torch.equal(out["label"], padded["label"])


def test_structures_points_without_normals():
    batch = [{k: v for k, v in item.items() if k != "normals"} for item in points_batch()]
    assert collate_geometry(batch)["pointclouds"].normals_list() is None


def test_structures_meshes():
    batch = [mesh_item(f, seed) for seed, f in enumerate((3, 6))]
    out = collate_geometry(batch, output="structures")
    meshes = out["meshes"]
    assert isinstance(meshes, Meshes) and set(out) == {"meshes", "face_labels", "label", "name"}
    for v, f, item in zip(meshes.verts_list(), meshes.faces_list(), batch):
        assert torch.equal(v, item["verts"]) and torch.equal(f, item["faces"])
    assert out["face_labels"].shape == (2, 6) and (out["face_labels"][0, 3:] == -1).all()


# pyg ---------------------------------------------------------------------------------------------------------
def test_pyg_points_follow_shapenet_convention():
    from torch_geometric.data import Batch

    batch = points_batch()
    out = collate_geometry(batch, output="pyg")
    assert isinstance(out, Batch) and out.num_graphs == 3
    assert torch.equal(out.pos, torch.cat([item["points"] for item in batch]))
    assert torch.equal(out.normal, torch.cat([item["normals"] for item in batch]))
    assert torch.equal(out.y, torch.cat([item["part_labels"] for item in batch]))
    assert torch.equal(out.category, torch.tensor([0, 1, 2]))
    assert torch.equal(out.batch, torch.repeat_interleave(torch.arange(3), torch.tensor(SIZES)))
    assert out.ptr.tolist() == [0, 5, 14, 15]
    assert out.name == ["item0", "item1", "item2"] and out.category_name == ["cat0", "cat1", "cat2"]
    assert torch.equal(out.params, torch.stack([item["params"] for item in batch]))
    assert torch.equal(out.get_example(1).pos, batch[1]["points"])


def test_pyg_meshes_and_class_labels_as_y():
    batch = [mesh_item(f, seed) for seed, f in enumerate((3, 6))]
    out = collate_geometry(batch, output="pyg")
    assert torch.equal(out.pos, torch.cat([item["verts"] for item in batch]))
    assert torch.equal(out.face, torch.cat([batch[0]["faces"], batch[1]["faces"] + 5]).t())
    assert torch.equal(out.face_y, torch.cat([item["face_labels"] for item in batch]))
    assert torch.equal(out.y, torch.tensor([0, 1])) and torch.equal(out.category, out.y)


def test_pyg_ragged_params_concatenate():
    batch = [point_item(4, 0, num_params=3), point_item(2, 1, num_params=5)]
    out = collate_geometry(batch, output="pyg")
    assert out.params.shape == (8,)
    assert torch.equal(out.get_example(1).params, batch[1]["params"])


def test_pyg_errors(monkeypatch):
    both = [{**point_item(3), "verts": torch.zeros(3, 3), "faces": torch.tensor([[0, 1, 2]])}]
    with pytest.raises(ValueError, match="both 'points' and 'verts'"):
        collate_geometry(both, output="pyg")
    with pytest.raises(ValueError, match="'pos' clashes"):
        collate_geometry([{**point_item(3), "pos": torch.zeros(3)}], output="pyg")
    monkeypatch.setitem(sys.modules, "torch_geometric.data", None)
    with pytest.raises(ImportError, match=r"geo4g\[pyg\]"):
        collate_geometry(points_batch(), output="pyg")


# DataLoader ------------------------------------------------------------------------------------------------
class RaggedClouds(Dataset):
    def __len__(self):
        return 6

    def __getitem__(self, index):
        return point_item(3 + 2 * index, index)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_dataloader_integration(num_workers):
    dataset = RaggedClouds()
    for output in ("padded", "structures", "pyg"):
        loader = DataLoader(dataset, batch_size=4, collate_fn=GeometryCollate(output), num_workers=num_workers)
        batches = list(loader)
        assert len(batches) == 2
        if output == "padded":
            points = [p for b in batches for p in unpad(b["points"], b["lengths"])]
        elif output == "structures":
            points = [p for b in batches for p in b["pointclouds"].points_list()]
        else:
            points = [b.get_example(i).pos for b in batches for i in range(b.num_graphs)]
        assert all(torch.equal(p, dataset[i]["points"]) for i, p in enumerate(points))


# errors ------------------------------------------------------------------------------------------------------
def test_bad_output_and_repr():
    with pytest.raises(ValueError, match="output must be one of"):
        collate_geometry(points_batch(), output="dense")
    with pytest.raises(ValueError, match="GeometryCollate: output"):
        GeometryCollate("tensors")
    assert repr(GeometryCollate("padded")) == "GeometryCollate(output='padded')"
    assert repr(GeometryCollate()) == "GeometryCollate(output='structures')"


@pytest.mark.parametrize("output", ["structures", "padded", "pyg"])
def test_bad_batches(output):
    with pytest.raises(ValueError, match="batch is empty"):
        collate_geometry([], output)
    with pytest.raises(TypeError, match="batch must be a list"):
        collate_geometry(point_item(3), output)
    with pytest.raises(TypeError, match=r"batch\[1\] must be an item dict"):
        collate_geometry([point_item(3), "x"], output)
    missing = points_batch()
    del missing[2]["normals"]
    with pytest.raises(ValueError, match=r"batch\[2\] lacks key 'normals'"):
        collate_geometry(missing, output)
    extra = points_batch()
    extra[1]["extra"] = 1
    with pytest.raises(ValueError, match=r"batch\[1\] has key 'extra'"):
        collate_geometry(extra, output)
    bad = points_batch()
    bad[1]["points"] = torch.zeros(4, 2)
    with pytest.raises(ValueError, match=r"batch\[1\]\['points'\]"):
        collate_geometry(bad, output)
    bad = points_batch()
    bad[2]["part_labels"] = bad[2]["part_labels"][:0]
    with pytest.raises(ValueError, match=r"batch\[2\]\['part_labels'\]"):
        collate_geometry(bad, output)
    mixed = points_batch()
    mixed[1]["points"] = mixed[1]["points"].double()
    with pytest.raises(TypeError, match="'points' must share one dtype"):
        collate_geometry(mixed, output)
    mixed = points_batch()
    mixed[1]["label"] = 1
    with pytest.raises(TypeError, match=r"batch\[1\]\['label'\] is of type int"):
        collate_geometry(mixed, output)
