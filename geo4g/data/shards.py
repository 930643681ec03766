"""A folder-per-shard format for lists of item dicts, read back memory-mapped.

A shard is a folder holding one ``.npy`` per tensor field (items of equal shape are
stacked; ragged ones are concatenated along their first dimension with a
``<field>.offsets.npy`` of ``n + 1`` row offsets) and ``meta.json`` (the item count,
the field layout and the string fields). It is written under a temporary name and
renamed into place, so a shard folder that exists is complete.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Dict, List, Sequence, Union

import numpy as np
import torch

__all__ = ["write_shard", "ShardReader", "shard_complete"]

PathLike = Union[str, os.PathLike]
_META = "meta.json"


def shard_complete(path: PathLike) -> bool:
    """Whether ``path`` is a finished shard (written by ``write_shard``)."""
    return (Path(path) / _META).is_file()


def write_shard(path: PathLike, items: Sequence[Dict[str, object]], extra: Dict[str, object] = None) -> None:
    """Write ``items`` (dicts with the same keys: tensors, ints, floats or strings) as a shard at ``path``.

    ``extra`` is stored in ``meta.json`` as is (for example skipped-file reports). An
    interrupted write leaves no folder at ``path``. A complete shard already at ``path``
    (written meanwhile by another process) is kept: writers of one shard write the same items.
    """
    path = Path(path)
    keys = list(items[0]) if items else []
    for i, item in enumerate(items):
        if list(item) != keys:
            raise ValueError(f"shard items must share keys: item 0 has {keys}, item {i} has {list(item)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        layout: Dict[str, str] = {}
        strings: Dict[str, List[str]] = {}
        for key in keys:
            values = [item[key] for item in items]
            if all(isinstance(v, str) for v in values):
                strings[key], layout[key] = values, "str"
                continue
            arrays = [v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v) for v in values]
            if len({a.shape for a in arrays}) == 1:
                np.save(tmp / f"{key}.npy", np.stack(arrays))
                layout[key] = "stacked"
            else:
                if any(a.ndim == 0 for a in arrays) or len({a.shape[1:] for a in arrays}) != 1:
                    raise ValueError(f"field {key!r} is ragged beyond its first dimension: "
                                     f"shapes {sorted({a.shape for a in arrays})[:4]}")
                offsets = np.cumsum([0] + [a.shape[0] for a in arrays]).astype(np.int64)
                np.save(tmp / f"{key}.npy", np.concatenate(arrays))
                np.save(tmp / f"{key}.offsets.npy", offsets)
                layout[key] = "ragged"
        meta = {"count": len(items), "layout": layout, "strings": strings, "extra": extra or {}}
        with open(tmp / _META, "w", encoding="utf-8") as f:
            json.dump(meta, f)
        try:
            os.replace(tmp, path)
        except OSError:
            if not shard_complete(path):
                raise
            # Another process finished this shard first; shards are deterministic, so keep theirs.
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


class ShardReader:
    """Random access to the items of one shard; arrays are memory-mapped, items are copies.

    ``reader[i]`` is a dict of torch tensors (and strings) equal to the written item,
    except that Python ints/floats come back as 0-d tensors.
    """

    def __init__(self, path: PathLike):
        self.path = Path(path)
        if not shard_complete(self.path):
            raise FileNotFoundError(f"{self.path} is not a complete shard (no {_META}); rebuild it")
        with open(self.path / _META, encoding="utf-8") as f:
            meta = json.load(f)
        self.count: int = meta["count"]
        self.layout: Dict[str, str] = meta["layout"]
        self.strings: Dict[str, List[str]] = meta["strings"]
        self.extra: Dict[str, object] = meta["extra"]
        self._arrays: Dict[str, np.ndarray] = {}
        self._offsets: Dict[str, np.ndarray] = {}

    def __getstate__(self):
        # Memory maps are reopened in each worker process rather than pickled as copies.
        state = dict(self.__dict__)
        state["_arrays"], state["_offsets"] = {}, {}
        return state

    def _array(self, key: str) -> np.ndarray:
        if key not in self._arrays:
            self._arrays[key] = np.load(self.path / f"{key}.npy", mmap_mode="r")
            if self.layout[key] == "ragged":
                self._offsets[key] = np.load(self.path / f"{key}.offsets.npy")
        return self._arrays[key]

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> Dict[str, object]:
        if not 0 <= index < self.count:
            raise IndexError(f"index {index} is out of range for shard {self.path} of {self.count} items")
        item: Dict[str, object] = {}
        for key, kind in self.layout.items():
            if kind == "str":
                item[key] = self.strings[key][index]
                continue
            array = self._array(key)
            if kind == "stacked":
                value = array[index]
            else:
                lo, hi = self._offsets[key][index], self._offsets[key][index + 1]
                value = array[lo:hi]
            item[key] = torch.from_numpy(np.array(value))
        return item
