"""The cache behind per-mesh precomputations (:func:`~geo4g.meshes.spectral.laplacian_eigenpairs`,
:func:`~geo4g.meshes.surface_data.surface_operators`): results keyed by a SHA-256 of the mesh's
bytes and the options, kept in an in-memory LRU and, with a ``cache_dir``, as ``<key>.pt`` files
(written atomically) that later processes read back."""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence

import torch

from geo4g._atomic import atomic_write


def cache_key(verts: torch.Tensor, faces: Optional[torch.Tensor], *options) -> str:
    """Hex SHA-256 of ``verts`` (as float64), ``faces`` (as int64; ``None`` for a point cloud), their
    shapes and ``options`` (hashed through ``repr``)."""
    h = hashlib.sha256()
    h.update(verts.detach().cpu().double().contiguous().numpy().tobytes())
    if faces is not None:
        h.update(faces.detach().cpu().long().contiguous().numpy().tobytes())
    h.update(repr((tuple(verts.shape), None if faces is None else tuple(faces.shape), *options)).encode())
    return h.hexdigest()


class ResultCache:
    """Results (dicts of CPU tensors) by key: the most recently used in memory, all in ``cache_dir``.

    Args:
        what: names the results in errors (``"cannot read <what> cache file ..."``).
        fields: the entries a result holds; a file without one of them is unreadable.
        size: returns how many results memory keeps; called at each insertion, so that the
            owning module's ``CACHE_SIZE`` can change at run time.
    """

    def __init__(self, what: str, fields: Sequence[str], size: Callable[[], int]):
        self.what = what
        self.fields = tuple(fields)
        self.size = size
        self._memory: "OrderedDict[str, Dict[str, torch.Tensor]]" = OrderedDict()

    def get(self, key: str, cache_dir=None, memory: bool = True) -> Optional[Dict[str, torch.Tensor]]:
        """The result stored under ``key`` (in memory unless ``memory=False``, else in ``cache_dir``),
        or ``None``. Raises ``ValueError`` naming the file when a cache file cannot be read."""
        if memory and key in self._memory:
            self._memory.move_to_end(key)
            return self._memory[key]
        if cache_dir is None:
            return None
        path = Path(cache_dir) / f"{key}.pt"
        if not path.is_file():
            return None
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
            missing = [f for f in self.fields if f not in data]
            if missing:
                raise KeyError(f"missing entries {missing}")
        except Exception as err:
            raise ValueError(f"cannot read {self.what} cache file {path}: {err}") from err
        if memory:
            self._remember(key, data)
        return data

    def put(self, key: str, value: Dict[str, torch.Tensor], cache_dir=None, memory: bool = True) -> None:
        """Store ``value`` under ``key``: in memory unless ``memory=False``, and in ``cache_dir``."""
        if memory:
            self._remember(key, value)
        if cache_dir is not None:
            folder = Path(cache_dir)
            folder.mkdir(parents=True, exist_ok=True)
            with atomic_write(folder / f"{key}.pt") as f:
                torch.save(value, f)

    def clear(self) -> None:
        """Empty the memory (files are kept)."""
        self._memory.clear()

    def _remember(self, key: str, value: Dict[str, torch.Tensor]) -> None:
        self._memory[key] = value
        self._memory.move_to_end(key)
        while len(self._memory) > self.size():
            self._memory.popitem(last=False)
