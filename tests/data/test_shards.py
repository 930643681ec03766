import json

import numpy as np
import pytest
import torch

from geo4g.data.shards import ShardReader, shard_complete, write_shard


def _items():
    g = torch.Generator().manual_seed(0)
    return [{"points": torch.rand(n, 3, generator=g), "label": torch.tensor(i), "name": f"s{i}",
             "params": torch.rand(2 + i % 2, generator=g), "fixed": torch.rand(4, generator=g)}
            for i, n in enumerate((5, 0, 9, 3))]


def test_round_trip_of_stacked_ragged_and_string_fields(tmp_path):
    items = _items()
    write_shard(tmp_path / "a", items, extra={"note": [1, 2]})
    reader = ShardReader(tmp_path / "a")
    assert len(reader) == 4 and reader.extra == {"note": [1, 2]}
    assert reader.layout == {"points": "ragged", "label": "stacked", "name": "str", "params": "ragged",
                             "fixed": "stacked"}
    for i, item in enumerate(items):
        back = reader[i]
        assert back.keys() == item.keys()
        for key, value in item.items():
            if isinstance(value, str):
                assert back[key] == value
            else:
                assert torch.equal(back[key], value), key


def test_items_are_copies_not_views_of_the_memory_map(tmp_path):
    write_shard(tmp_path / "a", _items())
    reader = ShardReader(tmp_path / "a")
    item = reader[0]
    item["points"] += 1  # would raise on a read-only memory map
    assert not torch.equal(reader[0]["points"], item["points"])


def test_reader_pickles_without_its_memory_maps(tmp_path):
    import pickle

    write_shard(tmp_path / "a", _items())
    reader = ShardReader(tmp_path / "a")
    reader[0]
    clone = pickle.loads(pickle.dumps(reader))
    assert clone._arrays == {} and torch.equal(clone[2]["points"], reader[2]["points"])


def test_empty_shard_and_a_complete_shard_is_kept(tmp_path):
    write_shard(tmp_path / "a", [])
    assert shard_complete(tmp_path / "a") and len(ShardReader(tmp_path / "a")) == 0
    write_shard(tmp_path / "a", _items()[:1])  # a concurrent writer lost the race: the first shard stays
    assert len(ShardReader(tmp_path / "a")) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["a"]


def test_failed_write_leaves_no_shard_and_no_temporary(tmp_path):
    bad = [{"x": torch.zeros(2, 3)}, {"x": torch.zeros(2, 4)}]
    with pytest.raises(ValueError, match="ragged beyond its first dimension"):
        write_shard(tmp_path / "a", bad)
    assert list(tmp_path.iterdir()) == []


def test_mismatched_keys_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="share keys"):
        write_shard(tmp_path / "a", [{"x": torch.zeros(1)}, {"y": torch.zeros(1)}])


def test_incomplete_shard_and_index_errors(tmp_path):
    (tmp_path / "half").mkdir()
    np.save(tmp_path / "half" / "x.npy", np.zeros(3))
    assert not shard_complete(tmp_path / "half")
    with pytest.raises(FileNotFoundError, match="not a complete shard"):
        ShardReader(tmp_path / "half")
    write_shard(tmp_path / "a", _items())
    with pytest.raises(IndexError, match="out of range"):
        ShardReader(tmp_path / "a")[4]


def test_meta_is_plain_json(tmp_path):
    write_shard(tmp_path / "a", _items())
    meta = json.loads((tmp_path / "a" / "meta.json").read_text())
    assert meta["count"] == 4 and meta["strings"]["name"] == ["s0", "s1", "s2", "s3"]
