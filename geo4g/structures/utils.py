"""Conversions between the three views of a ragged batch.

A batch of ``B`` items of different lengths ``N_i`` can be held as

- a **list** of ``B`` tensors of shape ``(N_i, ...)``;
- a **padded** tensor ``(B, N_max, ...)`` with ``lengths: (B,)``, the rows past
  ``lengths[b]`` holding a pad value;
- a **packed** tensor ``(sum N_i, ...)``, the items one after the other.

All conversions here are differentiable (they only index, slice, stack and
concatenate) and run on any device.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import torch

from .checks import check_lengths, check_tensor, check_tensor_list, describe

__all__ = [
    "list_to_padded",
    "padded_to_list",
    "padded_to_packed",
    "packed_to_padded",
    "list_to_packed",
    "packed_to_list",
    "lengths_to_mask",
    "lengths_to_first_idx",
    "lengths_to_batch_idx",
]


def _as_lengths(lengths, name: str, device: torch.device) -> torch.Tensor:
    if isinstance(lengths, (list, tuple)):
        lengths = torch.as_tensor(lengths, dtype=torch.long)
    check_tensor(lengths, name, ndim=1, kind="int", shape_hint="(B,)")
    if lengths.numel() and int(lengths.min()) < 0:
        raise ValueError(f"{name} must be non-negative, got minimum {int(lengths.min())}")
    return lengths.to(device=device, dtype=torch.long)


def lengths_to_mask(lengths: torch.Tensor, max_len: Optional[int] = None) -> torch.Tensor:
    """Boolean mask ``(B, max_len)``, True where ``n < lengths[b]``.

    ``max_len`` defaults to ``lengths.max()`` (0 for an empty batch).
    """
    lengths = _as_lengths(lengths, "lengths", lengths.device if torch.is_tensor(lengths) else "cpu")
    if max_len is None:
        max_len = int(lengths.max()) if lengths.numel() else 0
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def lengths_to_first_idx(lengths: torch.Tensor) -> torch.Tensor:
    """Index of each item's first row in the packed view: ``(B,)`` long, exclusive cumsum."""
    lengths = _as_lengths(lengths, "lengths", lengths.device if torch.is_tensor(lengths) else "cpu")
    return torch.cumsum(lengths, 0) - lengths


def lengths_to_batch_idx(lengths: torch.Tensor) -> torch.Tensor:
    """Batch index of every packed row: ``(sum N_i,)`` long (PyG's ``batch`` vector)."""
    lengths = _as_lengths(lengths, "lengths", lengths.device if torch.is_tensor(lengths) else "cpu")
    return torch.repeat_interleave(torch.arange(lengths.numel(), device=lengths.device), lengths)


def list_to_padded(
    x: Sequence[torch.Tensor],
    pad_size: Optional[Union[int, Sequence[int]]] = None,
    pad_value: float = 0.0,
    equisized: bool = False,
) -> torch.Tensor:
    """Stack a list of tensors into one padded tensor (PyTorch3D's signature).

    Args:
        x: ``B`` tensors of shape ``(N_i, ...)``, all of the same rank, dtype and device.
        pad_size: the padded size of every dimension, an int for the first only,
            or ``None`` for the maximum over the list in each dimension. A
            ``pad_size`` smaller than an item raises ``ValueError``.
        pad_value: the value written in the padding.
        equisized: promise that all items have one shape; they are stacked as is.

    Returns:
        ``(B, *pad_size)`` tensor. An empty list gives shape ``(0, 0)``.
    """
    if not isinstance(x, (list, tuple)):
        raise TypeError(f"x must be a list of tensors (N_i, ...), got {describe(x)}")
    if len(x) == 0:
        return torch.zeros((0, 0))
    check_tensor_list(x, "x", ndim=None, shape_hint="(N_i, ...)")
    ranks = {t.dim() for t in x}
    if len(ranks) != 1:
        raise ValueError(f"x must hold tensors of one rank, got ranks {sorted(ranks)}")
    if equisized:
        return torch.stack(list(x), 0)
    rank = x[0].dim()
    max_shape = [max(t.shape[d] for t in x) for d in range(rank)]
    if pad_size is None:
        pad_size = max_shape
    elif isinstance(pad_size, int):
        pad_size = [pad_size] + max_shape[1:]
    else:
        pad_size = list(pad_size)
        if len(pad_size) != rank:
            raise ValueError(f"pad_size must have {rank} entries, got {pad_size}")
    if any(m > p for m, p in zip(max_shape, pad_size)):
        raise ValueError(f"pad_size {list(pad_size)} is smaller than the largest item {max_shape}")
    out = x[0].new_full((len(x), *pad_size), pad_value)
    for i, t in enumerate(x):
        out[(i, *[slice(0, s) for s in t.shape])] = t
    return out


def padded_to_list(
    x: torch.Tensor, split_size: Optional[Union[Sequence[int], Sequence[Sequence[int]], torch.Tensor]] = None
) -> List[torch.Tensor]:
    """Split a padded ``(B, N, ...)`` tensor into ``B`` tensors (PyTorch3D's signature).

    Args:
        x: ``(B, N, ...)`` padded tensor.
        split_size: ``None`` (every item keeps all ``N`` rows), a length per
            item (``(B,)`` ints or tensor), or a shape per item (list of tuples)
            to crop several dimensions.

    Returns:
        list of ``B`` views into ``x`` of shape ``(N_i, ...)``.
    """
    check_tensor(x, "x", shape_hint="(B, N, ...)")
    if x.dim() < 2:
        raise ValueError(f"x must have at least 2 dimensions (B, N, ...), got shape {tuple(x.shape)}")
    items = list(x.unbind(0))
    if split_size is None:
        return items
    if torch.is_tensor(split_size):
        split_size = split_size.tolist()
    if len(split_size) != len(items):
        raise ValueError(f"split_size must have {len(items)} entries (B), got {len(split_size)}")
    out = []
    for i, (t, s) in enumerate(zip(items, split_size)):
        sizes = [int(s)] if isinstance(s, (int, float)) or (torch.is_tensor(s) and s.dim() == 0) else [int(v) for v in s]
        if any(v < 0 or v > t.shape[d] for d, v in enumerate(sizes)):
            raise ValueError(f"split_size[{i}]={sizes} does not fit item shape {tuple(t.shape)}")
        out.append(t[tuple(slice(0, v) for v in sizes)])
    return out


def list_to_packed(x: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Concatenate ``B`` tensors ``(N_i, ...)`` into one packed tensor (PyTorch3D's signature).

    Returns:
        ``(packed (sum N_i, ...), num_items (B,), item_packed_first_idx (B,),
        item_packed_to_list_idx (sum N_i,))``, the last three long.
    """
    if not isinstance(x, (list, tuple)):
        raise TypeError(f"x must be a list of tensors (N_i, ...), got {describe(x)}")
    if len(x) == 0:
        empty = torch.zeros(0, dtype=torch.long)
        return torch.zeros((0,)), empty, empty, empty
    check_tensor_list(x, "x", ndim=None, shape_hint="(N_i, ...)")
    ranks = {t.dim() for t in x}
    if len(ranks) != 1 or 0 in ranks:
        raise ValueError(f"x must hold tensors of one rank >= 1, got ranks {sorted(ranks)}")
    num_items = torch.tensor([t.shape[0] for t in x], dtype=torch.long, device=x[0].device)
    return torch.cat(list(x), 0), num_items, lengths_to_first_idx(num_items), lengths_to_batch_idx(num_items)


def packed_to_list(x: torch.Tensor, split_size) -> List[torch.Tensor]:
    """Split a packed ``(sum N_i, ...)`` tensor into ``B`` tensors ``(N_i, ...)`` (PyTorch3D's signature).

    ``split_size``: the ``(B,)`` item lengths, ints or a long tensor; they must sum to ``x.shape[0]``.
    """
    check_tensor(x, "x", shape_hint="(sum N_i, ...)")
    lengths = _as_lengths(split_size, "split_size", x.device)
    if x.dim() == 0 or int(lengths.sum()) != x.shape[0]:
        raise ValueError(
            f"split_size must sum to the packed size {x.shape[0] if x.dim() else 0}, got {int(lengths.sum())}"
        )
    return list(x.split(lengths.tolist(), 0))


def padded_to_packed(x: torch.Tensor, split_size=None, pad_value: Optional[float] = None) -> torch.Tensor:
    """Gather the valid rows of a padded ``(B, N, ...)`` tensor into ``(sum N_i, ...)`` (PyTorch3D's signature).

    Args:
        x: ``(B, N, ...)`` padded tensor.
        split_size: the ``(B,)`` item lengths (ints or a long tensor); the first
            ``split_size[b]`` rows of item ``b`` are kept.
        pad_value: instead of lengths, drop every row whose entries all equal
            ``pad_value``. At most one of ``split_size`` and ``pad_value`` may be given;
            with neither, all ``B * N`` rows are kept.
    """
    check_tensor(x, "x", shape_hint="(B, N, ...)")
    if x.dim() < 2:
        raise ValueError(f"x must have at least 2 dimensions (B, N, ...), got shape {tuple(x.shape)}")
    if split_size is not None and pad_value is not None:
        raise ValueError("give split_size or pad_value, not both")
    B, N = x.shape[:2]
    flat = x.reshape(B * N, *x.shape[2:])
    if pad_value is not None:
        keep = (flat != pad_value).reshape(B * N, -1).any(1) if flat.dim() > 1 else flat != pad_value
        return flat[keep]
    if split_size is None:
        return flat
    lengths = check_lengths(_as_lengths(split_size, "split_size", x.device), "split_size", B, N)
    return x[lengths_to_mask(lengths, N)]


def packed_to_padded(
    x: torch.Tensor, lengths, max_size: Optional[int] = None, pad_value: float = 0.0
) -> torch.Tensor:
    """Scatter a packed ``(sum lengths, ...)`` tensor into a padded ``(B, max_size, ...)`` one.

    Args:
        x: ``(sum N_i, ...)`` packed tensor.
        lengths: ``(B,)`` rows per item; must sum to ``x.shape[0]``.
        max_size: the padded size ``N``; defaults to ``lengths.max()``.
        pad_value: value of the rows past ``lengths[b]``.
    """
    check_tensor(x, "x", shape_hint="(sum N_i, ...)")
    lengths = _as_lengths(lengths, "lengths", x.device)
    if x.dim() == 0 or int(lengths.sum()) != x.shape[0]:
        raise ValueError(
            f"lengths must sum to the packed size {x.shape[0] if x.dim() else 0}, got {int(lengths.sum())}"
        )
    longest = int(lengths.max()) if lengths.numel() else 0
    if max_size is None:
        max_size = longest
    elif max_size < longest:
        raise ValueError(f"max_size must be at least the longest item ({longest}), got {max_size}")
    out = x.new_full((lengths.numel(), max_size, *x.shape[1:]), pad_value)
    out[lengths_to_mask(lengths, max_size)] = x
    return out
