import json

import numpy as np
import pytest
import torch

from geo4g.data import ModelNet, ProceduralShapes
from geo4g.data import cache as cache_module
from geo4g.data.cache import CachedDataset, build_cache
from geo4g.io import save_mesh
from geo4g.parametric import box_mesh, icosphere


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("gen")
    return ProceduralShapes(root, split="all", categories=["chair", "bottle"], shapes_per_category=12,
                            representation="points", num_points=128, workers=0, progress=False)


def _chunk_files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.parent.name.startswith("chunk-")}


def test_cache_holds_exactly_the_dataset_items(shapes, tmp_path):
    summary = build_cache(shapes, tmp_path / "c", chunk_size=5, progress=False)
    assert summary.complete and summary.built == 5 and summary.num_items == 24 and not summary.skipped
    cached = CachedDataset(tmp_path / "c")
    assert len(cached) == 24
    for i in (0, 4, 5, 23):
        item, expected = cached[i], shapes[i]
        assert int(item["index"]) == i and item["name"] == expected["name"] and item["category"] == expected["category"]
        assert torch.equal(item["points"], expected["points"]) and torch.equal(item["normals"], expected["normals"])
        assert item["part_labels"].dtype == torch.long and torch.equal(item["part_labels"], expected["part_labels"])
        assert item["label"].dtype == torch.long and torch.equal(item["label"], expected["label"])
        assert torch.equal(item["params"], expected["params"])
    assert cached[-1]["name"] == shapes[23]["name"]
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert manifest["num_stored"] == 24 and len(manifest["chunks"]) == 5


def test_interrupted_build_resumes_to_the_identical_result(shapes, tmp_path, monkeypatch):
    build_cache(shapes, tmp_path / "whole", chunk_size=4, progress=False)
    real = cache_module._build_chunk
    calls = []

    def interrupt_third(dataset, chunk, lo, hi, path):
        calls.append(chunk)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(dataset, chunk, lo, hi, path)

    monkeypatch.setattr(cache_module, "_build_chunk", interrupt_third)
    with pytest.raises(KeyboardInterrupt):
        build_cache(shapes, tmp_path / "resumed", chunk_size=4, progress=False)
    monkeypatch.setattr(cache_module, "_build_chunk", real)
    assert not (tmp_path / "resumed" / "manifest.json").exists()
    with pytest.raises(FileNotFoundError, match="incomplete"):
        CachedDataset(tmp_path / "resumed")
    # A kill -9 during a chunk write leaves a temporary folder: the next run removes it.
    stale = tmp_path / "resumed" / ".chunk-00002.abc123.tmp"
    stale.mkdir()
    summary = build_cache(shapes, tmp_path / "resumed", chunk_size=4, progress=False)
    assert summary.reused == 2 and summary.built == 4 and summary.complete and not stale.exists()
    assert _chunk_files(tmp_path / "resumed") == _chunk_files(tmp_path / "whole")
    again = build_cache(shapes, tmp_path / "resumed", chunk_size=4, progress=False)
    assert again.built == 0 and again.reused == 6


def test_shards_split_the_chunks_and_the_last_one_writes_the_manifest(shapes, tmp_path):
    first = build_cache(shapes, tmp_path / "s", chunk_size=4, shard=0, num_shards=2, progress=False)
    assert first.built == 3 and first.pending == 3 and not first.complete
    assert "still missing" in str(first)
    built = sorted(p.name for p in (tmp_path / "s").glob("chunk-*"))
    assert built == ["chunk-00000", "chunk-00002", "chunk-00004"]
    second = build_cache(shapes, tmp_path / "s", chunk_size=4, shard=1, num_shards=2, progress=False)
    assert second.built == 3 and second.complete
    build_cache(shapes, tmp_path / "one", chunk_size=4, progress=False)
    assert _chunk_files(tmp_path / "s") == _chunk_files(tmp_path / "one")


def test_parallel_workers_give_the_same_cache(shapes, tmp_path):
    build_cache(shapes, tmp_path / "w1", chunk_size=4, workers=1, progress=False)
    summary = build_cache(shapes, tmp_path / "w2", chunk_size=4, workers=2, progress=False)
    assert summary.built == 6 and summary.complete
    assert _chunk_files(tmp_path / "w1") == _chunk_files(tmp_path / "w2")


@pytest.fixture
def modelnet_with_a_corrupt_file(tmp_path):
    root = tmp_path / "ModelNet10"
    for cls, meshes in (("chair", [box_mesh(), icosphere(1), box_mesh((1, 2, 3))]), ("sofa", [icosphere(0)])):
        folder = root / cls / "train"
        folder.mkdir(parents=True)
        for k, (v, f) in enumerate(meshes):
            save_mesh(folder / f"{cls}_{k + 1:04d}.off", v, f)
    (root / "chair" / "train" / "chair_0002.off").write_text("OFF\n8 12 0\n0 0 0\nnot a number\n")
    return root


def test_corrupt_files_are_skipped_and_reported_by_name(modelnet_with_a_corrupt_file, tmp_path):
    dataset = ModelNet(modelnet_with_a_corrupt_file, split="train", representation="points", num_points=32)
    summary = build_cache(dataset, tmp_path / "c", chunk_size=2, progress=False)
    assert summary.complete and len(summary.skipped) == 1
    skipped = summary.skipped[0]
    assert skipped["index"] == 1 and skipped["source"].endswith("chair_0002.off")
    assert "chair_0002.off" in str(summary) and "skipped 1 unreadable" in str(summary)
    cached = CachedDataset(tmp_path / "c")
    assert len(cached) == 3 and [int(cached[i]["index"]) for i in range(3)] == [0, 2, 3]
    assert cached.skipped == [skipped]
    assert [cached[i]["category"] for i in range(3)] == ["chair", "chair", "sofa"]


def test_a_folder_built_with_other_settings_is_refused(shapes, tmp_path):
    build_cache(shapes, tmp_path / "c", config={"num_points": 128}, chunk_size=4, progress=False)
    with pytest.raises(ValueError, match="other settings"):
        build_cache(shapes, tmp_path / "c", config={"num_points": 256}, chunk_size=4, progress=False)
    with pytest.raises(ValueError, match="other settings"):
        build_cache(shapes, tmp_path / "c", config={"num_points": 128}, chunk_size=8, progress=False)


def test_cached_dataset_transform_and_errors(shapes, tmp_path):
    build_cache(shapes, tmp_path / "c", chunk_size=8, progress=False)
    flipped = CachedDataset(tmp_path / "c", transform=lambda item: {**item, "points": -item["points"]})
    assert torch.equal(flipped[0]["points"], -shapes[0]["points"])
    with pytest.raises(IndexError, match="out of range"):
        flipped[24]
    with pytest.raises(TypeError, match="transform must be callable"):
        CachedDataset(tmp_path / "c", transform="no")
    with pytest.raises(FileNotFoundError, match="no cache at"):
        CachedDataset(tmp_path / "missing")
    manifest = tmp_path / "c" / "manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "format": "other"}))
    with pytest.raises(ValueError, match="manifest"):
        CachedDataset(tmp_path / "c")


def test_bad_build_arguments(shapes, tmp_path):
    with pytest.raises(TypeError, match="GeometryDataset"):
        build_cache([1, 2], tmp_path / "c")
    meshes = ProceduralShapes(shapes.root, split="all", categories=["chair"], shapes_per_category=2, workers=0,
                              progress=False)
    with pytest.raises(ValueError, match="representation='points'"):
        build_cache(meshes, tmp_path / "c")
    for kwargs, message in ((dict(chunk_size=0), "chunk_size"), (dict(workers=0), "workers"),
                            (dict(num_shards=0), "num_shards"), (dict(shard=2, num_shards=2), "shard must be in")):
        with pytest.raises(ValueError, match=message):
            build_cache(shapes, tmp_path / "c", progress=False, **kwargs)


def test_memory_mapped_arrays_are_float32_and_int16(shapes, tmp_path):
    build_cache(shapes, tmp_path / "c", chunk_size=24, progress=False)
    points = np.load(tmp_path / "c" / "chunk-00000" / "points.npy", mmap_mode="r")
    parts = np.load(tmp_path / "c" / "chunk-00000" / "part_labels.npy", mmap_mode="r")
    assert points.dtype == np.float32 and points.shape == (24, 128, 3) and parts.dtype == np.int16
