"""One ragged field of a batch (points, normals, vertices, faces, ...) with lazy views.

``RaggedField`` is the shared machinery under ``Pointclouds`` and ``Meshes``:
it keeps a list of ``(N_i, D)`` tensors and derives the padded and packed
views on first use, caching them. Every view is built from differentiable
indexing, so autograd flows from any view back to the input tensors.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import torch

from .checks import check_finite, check_lengths, check_tensor, check_tensor_list, describe
from .utils import lengths_to_batch_idx, lengths_to_first_idx, lengths_to_mask

IndexLike = Union[int, slice, Sequence[int], torch.Tensor]


class RaggedField:
    """A batch of ``B`` tensors ``(N_i, D)`` viewed as list, padded ``(B, N, D)`` or packed.

    Args:
        items: list of ``B`` tensors ``(N_i, D)``.
        padded: when given, the padded tensor the items were sliced from; it is
            returned by ``padded()`` after the rows past each length are set
            to ``pad_value``.
        pad_value: value of the padding rows in the padded view.
        empty: a ``(0, D)`` tensor giving the row shape, dtype and device of the
            views of an empty batch (no items); default ``(0, 0)`` float.
    """

    __slots__ = ("_items", "_padded", "_packed", "_lengths", "_first_idx", "_batch_idx", "pad_value", "_empty")

    def __init__(self, items: List[torch.Tensor], padded: Optional[torch.Tensor] = None, pad_value: float = 0.0,
                 empty: Optional[torch.Tensor] = None):
        self._items = items
        self._empty = empty
        self._padded = padded
        self._packed = None
        self._lengths = None
        self._first_idx = None
        self._batch_idx = None
        self.pad_value = pad_value

    @classmethod
    def from_input(
        cls,
        data,
        name: str,
        last_dim: Optional[int],
        kind: str,
        lengths: Optional[torch.Tensor] = None,
        pad_value: float = 0.0,
        finite: bool = True,
        lengths_name: str = "lengths",
    ) -> "RaggedField":
        """Build a field from a list of ``(N_i, D)`` tensors or a padded ``(B, N, D)`` tensor.

        Raises ``TypeError``/``ValueError`` naming ``name`` for a wrong type,
        shape, dtype, mixed devices, lengths that do not fit, or (``finite``)
        non-finite values.
        """
        if isinstance(data, (list, tuple)):
            items = check_tensor_list(data, name, last_dim=last_dim, kind=kind, shape_hint=f"(N_i, {last_dim or 'D'})")
            for i, t in enumerate(items):
                if t.shape[1:] != items[0].shape[1:]:
                    raise ValueError(f"{name} must share one row shape (N_i, D), got shape "
                                     f"{tuple(items[0].shape)} at [0] and {tuple(t.shape)} at [{i}]")
            if finite:
                for i, t in enumerate(items):
                    check_finite(t, f"{name}[{i}]")
            empty = torch.zeros((0, last_dim or 0), dtype=torch.long if kind == "int" else None)
            field = cls(items, pad_value=pad_value, empty=empty)
            if lengths is not None:
                raise ValueError(f"{lengths_name} is only used with a padded {name} tensor, got a list for {name}")
            return field
        if isinstance(data, torch.Tensor):
            check_tensor(data, name, ndim=3, last_dim=last_dim, kind=kind, shape_hint=f"(B, N, {last_dim or 'D'})")
            B, N = data.shape[:2]
            if lengths is None:
                lengths = torch.full((B,), N, dtype=torch.long, device=data.device)
            else:
                lengths = check_lengths(lengths, lengths_name, B, N, device=data.device)
            items = [data[b, :n] for b, n in enumerate(lengths.tolist())]
            if finite:
                for i, t in enumerate(items):
                    check_finite(t, f"{name}[{i}]")
            mask = lengths_to_mask(lengths, N)
            if bool(mask.all()):
                padded = data
            else:
                padded = torch.where(mask[..., None], data, data.new_full((), pad_value))
            field = cls(items, padded=padded, pad_value=pad_value, empty=data.new_zeros((0, *data.shape[2:])))
            field._lengths = lengths
            return field
        raise TypeError(
            f"{name} must be a list of (N_i, {last_dim or 'D'}) tensors or a padded "
            f"(B, N, {last_dim or 'D'}) tensor, got {describe(data)}"
        )

    # views -----------------------------------------------------------------
    def list(self) -> List[torch.Tensor]:
        return self._items

    def lengths(self) -> torch.Tensor:
        if self._lengths is None:
            self._lengths = torch.tensor([t.shape[0] for t in self._items], dtype=torch.long, device=self.device)
        return self._lengths

    def padded(self) -> torch.Tensor:
        if self._padded is None:
            if not self._items:
                empty = self._empty_rows()
                self._padded = empty.new_zeros((0, 0, *empty.shape[1:]))
            else:
                n = max(t.shape[0] for t in self._items)
                first = self._items[0]
                out = first.new_full((len(self._items), n, *first.shape[1:]), self.pad_value)
                self._padded = out.index_put((self.batch_idx(), self.padded_row_idx()), self.packed()) \
                    if self.packed().shape[0] else out
        return self._padded

    def packed(self) -> torch.Tensor:
        if self._packed is None:
            self._packed = torch.cat(self._items, 0) if self._items else self._empty_rows()
        return self._packed

    def first_idx(self) -> torch.Tensor:
        if self._first_idx is None:
            self._first_idx = lengths_to_first_idx(self.lengths())
        return self._first_idx

    def batch_idx(self) -> torch.Tensor:
        if self._batch_idx is None:
            self._batch_idx = lengths_to_batch_idx(self.lengths())
        return self._batch_idx

    def padded_row_idx(self) -> torch.Tensor:
        """Row of each packed element inside its item: ``(sum N_i,)`` long."""
        return torch.arange(self.batch_idx().numel(), device=self.device) - self.first_idx()[self.batch_idx()]

    def padded_to_packed_idx(self) -> torch.Tensor:
        """Index into the flattened padded view ``(B * N)`` of every packed row: ``(sum N_i,)``."""
        # A padded input keeps its own N, which may exceed the longest item.
        n = self._padded.shape[1] if self._padded is not None else max((t.shape[0] for t in self._items), default=0)
        return self.batch_idx() * n + self.padded_row_idx()

    def _empty_rows(self) -> torch.Tensor:
        """A ``(0, D)`` tensor with the row shape, dtype and device of this field."""
        if self._items:
            return self._items[0].new_zeros((0, *self._items[0].shape[1:]))
        return self._empty if self._empty is not None else torch.zeros((0, 0))

    @property
    def device(self) -> torch.device:
        return self._items[0].device if self._items else self._empty_rows().device

    def __len__(self) -> int:
        return len(self._items)

    # derived fields --------------------------------------------------------
    def map(self, fn) -> "RaggedField":
        """A new field whose items are ``fn(item)``."""
        return RaggedField([fn(t) for t in self._items], pad_value=self.pad_value, empty=fn(self._empty_rows()))

    def select(self, idx: List[int]) -> "RaggedField":
        return RaggedField([self._items[i] for i in idx], pad_value=self.pad_value, empty=self._empty_rows())

    def with_packed(self, packed: torch.Tensor, pad_value: Optional[float] = None) -> "RaggedField":
        """A new field of the same lengths holding the rows of ``packed``."""
        return RaggedField(list(packed.split(self.lengths().tolist(), 0)),
                           pad_value=self.pad_value if pad_value is None else pad_value,
                           empty=packed.new_zeros((0, *packed.shape[1:])))


def normalize_index(index: IndexLike, size: int, name: str = "index") -> List[int]:
    """Turn an int, slice, list, LongTensor or BoolTensor into a list of batch positions."""
    if isinstance(index, bool):
        raise TypeError(f"{name} must be an int, slice, list or tensor, got bool")
    if isinstance(index, int):
        if not -size <= index < size:
            raise IndexError(f"{name} {index} is out of range for a batch of {size}")
        return [index % size]
    if isinstance(index, slice):
        return list(range(size))[index]
    if isinstance(index, torch.Tensor):
        if index.dtype == torch.bool:
            if index.shape != (size,):
                raise IndexError(f"boolean {name} must have shape ({size},), got {tuple(index.shape)}")
            return index.nonzero().flatten().tolist()
        if index.is_floating_point():
            raise TypeError(f"{name} tensor must be integer or bool, got {index.dtype}")
        index = index.flatten().tolist()
    if isinstance(index, (list, tuple)):
        out = []
        for i in index:
            if not isinstance(i, int) or isinstance(i, bool):
                raise TypeError(f"{name} entries must be ints, got {type(i).__name__}")
            out.extend(normalize_index(i, size, name))
        return out
    raise TypeError(f"{name} must be an int, slice, list or tensor, got {describe(index)}")


class RaggedBatch:
    """Batch operations shared by ``Pointclouds`` and ``Meshes``.

    A subclass lists its ``RaggedField`` attributes in ``_field_names``; the
    first one holds the ``(N_i, 3)`` positions that ``normalize``, bounding
    boxes and the affine helpers act on.
    """

    _field_names: Tuple[str, ...] = ()

    def _fields(self) -> tuple:
        return tuple(getattr(self, n) for n in self._field_names)

    @classmethod
    def _from_fields(cls, *fields):
        out = cls.__new__(cls)
        for name, field in zip(cls._field_names, fields):
            setattr(out, name, field)
        out._cache = {}
        return out

    def _map(self, fn):
        return self._from_fields(*(None if f is None else f.map(fn) for f in self._fields()))

    @property
    def _positions(self) -> RaggedField:
        return getattr(self, self._field_names[0])

    def __len__(self) -> int:
        return len(self._positions)

    @property
    def device(self) -> torch.device:
        return self._positions.device

    def __getitem__(self, index: IndexLike):
        """A new batch of the selected items (int, slice, list, long or bool tensor)."""
        idx = normalize_index(index, len(self), "index")
        return self._from_fields(*(None if f is None else f.select(idx) for f in self._fields()))

    def to(self, device: Union[str, torch.device], copy: bool = False):
        """The batch on ``device`` (``self`` when already there and ``copy`` is False)."""
        device = torch.device(device)
        here = self.device
        if not copy and device.type == here.type and device.index in (None, here.index):
            return self
        return self._map(lambda t: t.to(device))

    def cpu(self):
        return self.to("cpu")

    def cuda(self):
        return self.to("cuda")

    def clone(self):
        return self._map(torch.clone)

    def detach(self):
        return self._map(torch.Tensor.detach)

    def extend(self, n: int):
        """Each item repeated ``n`` times: ``[x0]*n + [x1]*n + ...``, cloned; a new batch of ``B*n``."""
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        # Select first, then clone, so that the n copies of an item do not share storage.
        return self[[i for i in range(len(self)) for _ in range(n)]].clone()

    def get_bounding_boxes(self) -> torch.Tensor:
        """``(B, 3, 2)``: per item the ``[min, max]`` of each axis; an empty item gives zeros."""
        if "bbox" not in self._cache:
            boxes = [
                torch.stack([p.min(0).values, p.max(0).values], 1) if p.shape[0] else p.new_zeros(3, 2)
                for p in self._positions.list()
            ]
            self._cache["bbox"] = torch.stack(boxes) if boxes else self._packed_positions().new_zeros((0, 3, 2))
        return self._cache["bbox"]

    def _packed_positions(self) -> torch.Tensor:
        return self._positions.packed()

    def _broadcast(self, value, name: str, allow_packed: bool) -> torch.Tensor:
        """``value`` broadcast over the packed positions: a scalar, ``(B,)`` per item
        (``allow_packed=False``) or ``(3,)`` / ``(sum N_i, 3)`` (``allow_packed=True``)."""
        packed = self._packed_positions()
        value = torch.as_tensor(value, dtype=packed.dtype, device=self.device)
        check_finite(value, name)
        if value.dim() == 0 or (allow_packed and value.shape in ((3,), (packed.shape[0], 3))):
            return value
        if not allow_packed and value.shape == (len(self),):
            return value[self._positions.batch_idx()][:, None]
        want = "(sum N_i, 3) packed or (3,)" if allow_packed else f"a scalar or (B,) with B={len(self)}"
        raise ValueError(f"{name} must be {want}, got shape {tuple(value.shape)}")

    def _moved(self, scale: torch.Tensor, offset: torch.Tensor):
        """A new batch whose positions are ``positions * scale + offset``, the other fields shared."""
        positions = self._positions.with_packed(self._packed_positions() * scale + offset)
        return self._from_fields(positions, *self._fields()[1:])

    def normalize(self, mode: str = "sphere"):
        """Each item centred and scaled: ``"sphere"`` (centroid at 0, farthest position at
        radius 1) or ``"cube"`` (bounding-box centre at 0, longest side 1). Empty or
        single-point items are only centred."""
        positions = self._packed_positions()
        idx = self._positions.batch_idx()
        zero = positions.new_zeros(())
        if mode == "sphere":
            center = torch.stack([p.mean(0) if p.shape[0] else zero.expand(3) for p in self._positions.list()]) \
                if len(self) else positions.new_zeros(0, 3)
            centred = positions - center[idx]
            extent = torch.stack([c.norm(dim=-1).max() if c.shape[0] else zero
                                  for c in centred.split(self._positions.lengths().tolist())]) \
                if len(self) else positions.new_zeros(0)
        elif mode == "cube":
            box = self.get_bounding_boxes()
            center = box.mean(-1)
            extent = (box[..., 1] - box[..., 0]).max(-1).values
        else:
            raise ValueError(f"mode must be 'sphere' or 'cube', got {mode!r}")
        inv = 1.0 / torch.where(extent > 0, extent, torch.ones_like(extent))
        return self._moved(inv[idx][:, None], -(center * inv[:, None])[idx])
