"""Preprocessing cache: a dataset converted once into memory-mapped point shards.

``build_cache`` samples every item of a dataset to a fixed number of points and writes
the results in chunks of consecutive items (one shard folder each, see ``shards``)
plus a ``manifest.json`` per split. It is

- resumable: a finished chunk is a renamed folder, so a killed run redoes only the
  chunk it was writing, and items are sampled reproducibly per item, so the result
  is identical to an uninterrupted run;
- shardable: chunk ``k`` belongs to worker ``k % num_shards``, so independent
  processes or machines sharing the output folder split the work; whichever finishes
  the last chunk writes the manifest;
- robust: an item whose file is corrupt or unreadable is skipped and reported (file
  and error) in the manifest and the summary, never ending the run.

``CachedDataset`` reads a built cache back.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple, Union

import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from geo4g._atomic import atomic_write
from geo4g._threads import single_thread

from .base import GeometryDataset, Item
from .shards import ShardReader, shard_complete, write_shard

__all__ = ["build_cache", "CacheSummary", "CachedDataset", "CACHE_FORMAT"]

PathLike = Union[str, os.PathLike]
CACHE_FORMAT = "geo4g-point-cache-v1"
_MANIFEST = "manifest.json"
_CONFIG = "cache.json"


@dataclass
class CacheSummary:
    """What one ``build_cache`` call did.

    Attributes:
        out: the split's cache folder.
        num_items: items in the dataset; ``num_chunks``: chunks in the whole cache.
        built: chunks this call wrote; ``reused``: chunks of this worker already complete;
        pending: chunks still missing (other shards' work); ``complete``: manifest written.
        skipped: ``{"index", "source", "error"}`` for each item skipped in the chunks this call wrote.
    """

    out: Path
    num_items: int
    num_chunks: int
    built: int = 0
    reused: int = 0
    pending: int = 0
    complete: bool = False
    skipped: List[Dict[str, object]] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"{self.out}: {self.num_items} items in {self.num_chunks} chunks; built {self.built}, "
                 f"reused {self.reused}, skipped {len(self.skipped)} unreadable items"]
        lines += [f"  skipped {s['source']}: {s['error']}" for s in self.skipped[:20]]
        if len(self.skipped) > 20:
            lines.append(f"  ... and {len(self.skipped) - 20} more (see the manifest)")
        lines.append("  manifest written: cache complete" if self.complete
                     else f"  {self.pending} chunks still missing (other shards); no manifest yet")
        return "\n".join(lines)


def _chunk_name(chunk: int) -> str:
    return f"chunk-{chunk:05d}"


def _stored_item(item: Item, index: int) -> Dict[str, object]:
    if "points" not in item:
        raise ValueError(f"item has no 'points' (keys {sorted(item)}); cache builds need representation='points'")
    stored: Dict[str, object] = {"index": torch.tensor(index), "points": item["points"].to(torch.float32)}
    if "normals" in item:
        stored["normals"] = item["normals"].to(torch.float32)
    if "part_labels" in item:
        stored["part_labels"] = item["part_labels"].to(torch.int16)
    for key in ("label", "category", "name", "params"):
        if key in item:
            stored[key] = item[key]
    return stored


_WORKER_DATASET: Optional[GeometryDataset] = None


def _init_worker(dataset: GeometryDataset) -> None:
    global _WORKER_DATASET
    _WORKER_DATASET = dataset
    torch.set_num_threads(1)


def _build_chunk(dataset: GeometryDataset, chunk: int, lo: int, hi: int, path: Path) -> Tuple[int, int, list]:
    items, skipped = [], []
    for index in range(lo, hi):
        try:
            items.append(_stored_item(dataset[index], index))
        except Exception as error:  # a bad source file must never end a long build
            skipped.append({"index": index, "source": dataset.source(index),
                            "error": f"{type(error).__name__}: {error}"})
    keys = [list(item) for item in items]
    if any(k != keys[0] for k in keys):
        # Items that lack an optional field (normals, parts) cannot share a shard with ones that have it.
        common = [k for k in keys[0] if all(k in other for other in keys)]
        items = [{k: item[k] for k in common} for item in items]
    write_shard(path, items, extra={"skipped": skipped, "first": lo, "last": hi})
    return chunk, hi - lo, skipped


def _pool_chunk(job: Tuple[int, int, int, str]) -> Tuple[int, int, list]:
    chunk, lo, hi, path = job
    return _build_chunk(_WORKER_DATASET, chunk, lo, hi, Path(path))


def build_cache(dataset: GeometryDataset, out: PathLike, *, config: Optional[Dict[str, object]] = None,
                chunk_size: int = 256, workers: int = 1, shard: int = 0, num_shards: int = 1,
                progress: bool = True) -> CacheSummary:
    """Convert ``dataset`` (``representation="points"``) into point shards under ``out``.

    Args:
        dataset: a ``GeometryDataset`` producing point items (``points (N, 3)``, optional
            ``normals``, ``part_labels``, metadata).
        out: the cache folder of this split (created when missing).
        config: a JSON-able description of the dataset and its options, written to
            ``out/cache.json``; a folder built with another config is refused, so
            caches of different settings never mix.
        chunk_size: items per chunk (the unit of resumption and of sharding).
        workers: processes building chunks in parallel (1: in this process).
        shard, num_shards: this worker builds the chunks ``k`` with ``k % num_shards == shard``.
        progress: show a progress bar.

    Returns:
        a ``CacheSummary``.

    Raises:
        ValueError: bad arguments, or ``out`` holds a cache of a different config.
    """
    if not isinstance(dataset, GeometryDataset):
        raise TypeError(f"dataset must be a geo4g GeometryDataset, got {type(dataset).__name__}")
    if dataset.representation != "points":
        raise ValueError(f"cache builds store points: build the dataset with representation='points', "
                         f"got {dataset.representation!r}")
    for value, name, low in ((chunk_size, "chunk_size", 1), (workers, "workers", 1), (num_shards, "num_shards", 1),
                             (shard, "shard", 0)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    if shard >= num_shards:
        raise ValueError(f"shard must be in [0, num_shards={num_shards}), got {shard}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    settings = {"format": CACHE_FORMAT, "chunk_size": chunk_size, "num_items": len(dataset), **(config or {})}
    config_path = out / _CONFIG
    if config_path.is_file():
        with open(config_path, encoding="utf-8") as f:
            existing = json.load(f)
        if existing != json.loads(json.dumps(settings)):
            raise ValueError(f"{out} holds a cache built with other settings {existing}; asked for {settings}. "
                             "Use another output folder or delete this one.")
    else:
        with atomic_write(config_path, "w") as f:
            json.dump(settings, f, indent=1)

    num_items = len(dataset)
    num_chunks = -(-num_items // chunk_size)
    summary = CacheSummary(out, num_items, num_chunks)
    mine = [k for k in range(num_chunks) if k % num_shards == shard]
    for stale in out.glob(".chunk-*.tmp"):
        # Half-written chunks of an interrupted run of this shard; other shards clean their own.
        if int(stale.name.split(".")[1].split("-")[1]) % num_shards == shard:
            shutil.rmtree(stale, ignore_errors=True)
    jobs = []
    for k in mine:
        if shard_complete(out / _chunk_name(k)):
            summary.reused += 1
        else:
            jobs.append((k, k * chunk_size, min((k + 1) * chunk_size, num_items), str(out / _chunk_name(k))))
    bar = tqdm(total=sum(hi - lo for _, lo, hi, _ in jobs), desc=f"caching {out.name}", unit="item",
               disable=not progress)
    with bar:
        if workers == 1 or len(jobs) <= 1:
            with single_thread():
                for k, lo, hi, p in jobs:
                    _, count, skipped = _build_chunk(dataset, k, lo, hi, Path(p))
                    summary.built += 1
                    summary.skipped += skipped
                    bar.update(count)
        else:
            with multiprocessing.get_context().Pool(min(workers, len(jobs)), initializer=_init_worker,
                                                    initargs=(dataset,)) as pool:
                for _, count, skipped in pool.imap_unordered(_pool_chunk, jobs):
                    summary.built += 1
                    summary.skipped += skipped
                    bar.update(count)
    summary.skipped.sort(key=lambda s: s["index"])
    missing = [k for k in range(num_chunks) if not shard_complete(out / _chunk_name(k))]
    summary.pending = len(missing)
    if not missing:
        _write_manifest(out, num_chunks, settings)
        summary.complete = True
    return summary


def _write_manifest(out: Path, num_chunks: int, settings: Dict[str, object]) -> None:
    chunks, skipped = [], []
    for k in range(num_chunks):
        reader = ShardReader(out / _chunk_name(k))
        chunks.append({"path": _chunk_name(k), "count": len(reader), "fields": reader.layout})
        skipped += reader.extra["skipped"]
    manifest = {**settings, "num_stored": sum(c["count"] for c in chunks), "chunks": chunks, "skipped": skipped}
    with atomic_write(out / _MANIFEST, "w") as f:
        json.dump(manifest, f, indent=1)


class CachedDataset(Dataset):
    """The items of a cache folder written by ``build_cache`` (one split).

    Args:
        root: the split's cache folder (holding ``manifest.json``).
        transform: a callable applied to each item dict.

    Items: ``points (N, 3)`` float32, ``normals (N, 3)``, ``part_labels (N,)`` long when the
    source had them, ``label`` (long scalar), ``category``, ``name``, ``params`` when present,
    and ``index`` (the item's index in the source dataset). Skipped source items are absent.
    """

    def __init__(self, root: PathLike, transform: Optional[Callable[[Item], Item]] = None):
        self.root = Path(root)
        manifest = self.root / _MANIFEST
        if not manifest.is_file():
            if not self.root.is_dir():
                raise FileNotFoundError(f"no cache at {self.root}; build one with `geo4g cache build`")
            raise FileNotFoundError(f"{self.root} holds no {_MANIFEST}: the cache build is incomplete "
                                    "(rerun `geo4g cache build` with the same arguments to finish it)")
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable or None, got {type(transform).__name__}")
        with open(manifest, encoding="utf-8") as f:
            self.manifest = json.load(f)
        if self.manifest.get("format") != CACHE_FORMAT:
            raise ValueError(f"{manifest} is not a {CACHE_FORMAT} manifest (format {self.manifest.get('format')!r})")
        self.transform = transform
        self._readers = [ShardReader(self.root / c["path"]) for c in self.manifest["chunks"]]
        counts = torch.tensor([0] + [c["count"] for c in self.manifest["chunks"]])
        self._starts = torch.cumsum(counts, 0)

    @property
    def skipped(self) -> List[Dict[str, object]]:
        """The source items the build skipped: ``{"index", "source", "error"}``."""
        return self.manifest["skipped"]

    def __len__(self) -> int:
        return int(self._starts[-1])

    def __getitem__(self, index: int) -> Item:
        index = int(index)
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} is out of range for a cache of {len(self)} items")
        chunk = int(torch.searchsorted(self._starts, torch.tensor(index), right=True)) - 1
        item = self._readers[chunk][index - int(self._starts[chunk])]
        if "part_labels" in item:
            item["part_labels"] = item["part_labels"].long()
        if "label" in item:
            item["label"] = item["label"].long()
        return self.transform(item) if self.transform is not None else item

    def __repr__(self) -> str:
        return f"CachedDataset({len(self)} items, root={str(self.root)!r})"
