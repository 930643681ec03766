"""Input checks shared by every geo4g op.

Each check raises ``TypeError`` (wrong type or dtype) or ``ValueError`` (wrong
shape or value) with a message that names the argument, what it got and what
was expected, so that a bad call fails at the boundary and never deep inside a
kernel or as a silent NaN.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch

__all__ = [
    "check_tensor",
    "check_finite",
    "check_lengths",
    "check_faces",
    "check_tensor_list",
    "describe",
]


def describe(x) -> str:
    """A short description of ``x`` for error messages: shape and dtype for tensors."""
    if isinstance(x, torch.Tensor):
        return f"tensor of shape {tuple(x.shape)} and dtype {x.dtype} on {x.device}"
    return f"{type(x).__name__}"


def check_tensor(
    x,
    name: str,
    ndim: Optional[int | Sequence[int]] = None,
    last_dim: Optional[int] = None,
    kind: Optional[str] = None,
    shape_hint: Optional[str] = None,
) -> torch.Tensor:
    """Check that ``x`` is a tensor of the expected rank, last dimension and dtype kind.

    Args:
        x: the value to check.
        name: the argument name used in the error message.
        ndim: the allowed rank, or a sequence of allowed ranks.
        last_dim: the required size of the last dimension.
        kind: ``"float"`` (floating point), ``"int"`` (integer, not bool) or ``None``.
        shape_hint: the expected shape as written in the docstring, e.g. ``"(B, N, 3)"``.

    Returns:
        ``x`` unchanged.
    """
    expected = f" {shape_hint}" if shape_hint else ""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor{expected}, got {describe(x)}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.dim() not in allowed:
            ranks = " or ".join(str(a) for a in allowed)
            raise ValueError(
                f"{name} must have {ranks} dimensions{expected}, got shape {tuple(x.shape)}"
            )
    if last_dim is not None and (x.dim() == 0 or x.shape[-1] != last_dim):
        raise ValueError(
            f"{name} must have last dimension {last_dim}{expected}, got shape {tuple(x.shape)}"
        )
    if kind == "float" and not x.is_floating_point():
        raise TypeError(f"{name} must be a floating point tensor{expected}, got dtype {x.dtype}")
    if kind == "int" and (x.is_floating_point() or x.is_complex() or x.dtype == torch.bool):
        raise TypeError(f"{name} must be an integer tensor{expected}, got dtype {x.dtype}")
    return x


def check_finite(x: torch.Tensor, name: str) -> torch.Tensor:
    """Raise ``ValueError`` if ``x`` holds NaN or infinity, saying how many and where the first is."""
    if x.is_floating_point() and x.numel() > 0:
        bad = ~torch.isfinite(x)
        if bool(bad.any()):
            first = tuple(int(i) for i in bad.nonzero()[0])
            raise ValueError(
                f"{name} must be finite, got {int(bad.sum())} NaN/inf value(s), "
                f"the first at index {first}"
            )
    return x


def check_lengths(
    lengths,
    name: str,
    batch_size: int,
    max_length: int,
    device: Optional[torch.device] = None,
) -> torch.Tensor:
    """Check a ``lengths: (B,)`` integer tensor against a padded ``(B, N, ...)`` batch.

    Returns the lengths as a ``torch.long`` tensor on ``device`` (when given).
    """
    check_tensor(lengths, name, ndim=1, kind="int", shape_hint="(B,)")
    if lengths.shape[0] != batch_size:
        raise ValueError(
            f"{name} must have one entry per batch element (B={batch_size}), "
            f"got shape {tuple(lengths.shape)}"
        )
    if lengths.numel() > 0:
        lo, hi = int(lengths.min()), int(lengths.max())
        if lo < 0:
            raise ValueError(f"{name} must be non-negative, got minimum {lo}")
        if hi > max_length:
            raise ValueError(
                f"{name} must not exceed the padded size {max_length}, got maximum {hi}"
            )
    lengths = lengths.long()
    return lengths if device is None else lengths.to(device)


def check_faces(faces: torch.Tensor, name: str, num_verts: int) -> torch.Tensor:
    """Check an ``(F, 3)`` integer face tensor whose indices must lie in ``[0, num_verts)``."""
    check_tensor(faces, name, ndim=2, last_dim=3, kind="int", shape_hint="(F, 3)")
    if faces.numel() > 0:
        lo, hi = int(faces.min()), int(faces.max())
        if lo < 0 or hi >= num_verts:
            raise ValueError(
                f"{name} indices must lie in [0, {num_verts}) for {num_verts} vertices, "
                f"got range [{lo}, {hi}]"
            )
    return faces


def check_tensor_list(
    xs,
    name: str,
    last_dim: Optional[int] = None,
    kind: Optional[str] = None,
    shape_hint: str = "(N_i, D)",
    ndim: Optional[int] = 2,
) -> list:
    """Check a list of tensors of rank ``ndim`` that share dtype and device (a ragged batch).

    Returns the list. An empty list is allowed.
    """
    if not isinstance(xs, (list, tuple)):
        raise TypeError(f"{name} must be a list of tensors {shape_hint}, got {describe(xs)}")
    for i, x in enumerate(xs):
        check_tensor(x, f"{name}[{i}]", ndim=ndim, last_dim=last_dim, kind=kind, shape_hint=shape_hint)
    if xs:
        dtype, device = xs[0].dtype, xs[0].device
        for i, x in enumerate(xs):
            if x.dtype != dtype:
                raise TypeError(
                    f"{name} must share one dtype, got {dtype} at [0] and {x.dtype} at [{i}]"
                )
            if x.device != device:
                raise ValueError(
                    f"{name} must share one device, got {device} at [0] and {x.device} at [{i}]"
                )
    return list(xs)
