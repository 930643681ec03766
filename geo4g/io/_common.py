"""Helpers shared by the mesh and point-cloud readers and writers: paths, formats, input checks.

Text readers have two paths. A fast one hands well-formed blocks of lines to
numpy's C parsers (``load_table``, ``int_rows``) and returns ``None`` whenever
anything is unusual; the careful one (``read_lines``, ``split_lines``,
``parse_numbers``) then reads the file again token by token and names the file
and line of the first problem. Both split lines at ``\n``, ``\r\n`` or ``\r``.
"""
from __future__ import annotations

import errno
import io
import itertools
import os
import warnings
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from geo4g.structures.checks import check_faces, check_finite, check_tensor, describe

PathLike = Union[str, os.PathLike]


def resolve_format(path: PathLike, format: Optional[str], supported: Sequence[str], kind: str) -> Tuple[Path, str]:
    """Return ``(Path(path), format)``, the format taken from the extension unless given."""
    path = Path(path)
    fmt = (format if format is not None else path.suffix.lstrip(".")).lower()
    if fmt not in supported:
        source = f"format={format!r}" if format is not None else f"extension {path.suffix!r} of {path}"
        raise ValueError(
            f"unknown {kind} format from {source}, supported: {', '.join('.' + s for s in supported)}"
        )
    return path, fmt


def check_file(path: Path, kind: str) -> None:
    """Raise ``FileNotFoundError`` naming ``path`` when it is not an existing file."""
    if not path.is_file():
        raise FileNotFoundError(errno.ENOENT, f"{kind} file not found", str(path))


def read_lines(path: Path, keys: Optional[Tuple[str, ...]] = None) -> Tuple[np.ndarray, List[str]]:
    """The non-blank lines of a text file, ``#`` comments removed, and their 1-based numbers ``(L,)``.

    With ``keys``, only the lines whose first token is one of ``keys``.
    """
    return content_lines(path.read_bytes().decode("utf-8", errors="replace"), keys)


def content_lines(text: str, keys: Optional[Tuple[str, ...]] = None) -> Tuple[np.ndarray, List[str]]:
    """The lines of ``text`` as ``read_lines`` gives them: numbered from 1, comments removed, blank ones skipped."""
    numbers, lines = [], []
    for n, line in enumerate(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), 1):
        if "#" in line:
            line = line.split("#", 1)[0]
        if not line.strip():
            continue
        if keys is not None and (not line.lstrip().startswith(keys) or line.split(None, 1)[0] not in keys):
            continue
        numbers.append(n)
        lines.append(line)
    return np.array(numbers, dtype=np.int64), lines


def split_lines(lines: Sequence[str]) -> Tuple[List[str], np.ndarray, np.ndarray, np.ndarray]:
    """Tokenise lines at whitespace.

    Returns the flat ``tokens`` (``T`` strings), ``counts (L,)`` tokens per
    line, and per token its line ``line_of (T,)`` and position in that line
    ``pos (T,)``. One flat list rather than a list per line: millions of live
    small lists make Python's cyclic GC dominate the parse.
    """
    counts = np.fromiter(map(len, map(str.split, lines)), dtype=np.int64, count=len(lines))
    tokens = " ".join(lines).split()
    line_of = np.repeat(np.arange(len(lines)), counts)
    pos = np.arange(len(tokens)) - np.repeat(np.cumsum(counts) - counts, counts)
    return tokens, counts, line_of, pos


def line_bounds(data: bytes) -> Optional[Tuple[bytes, np.ndarray, np.ndarray]]:
    """For the fast paths: ``data`` ending in ``\n`` (one is added if missing), its bytes ``(B,)`` uint8 and
    the ``L + 1`` offsets where its lines start, the last one ``B``. ``None`` when a line ends in a bare ``\r``."""
    if b"\r" in data and data.count(b"\r") != data.count(b"\r\n"):
        return None
    if not data.endswith(b"\n"):
        data += b"\n"
    a = np.frombuffer(data, np.uint8)
    return data, a, np.concatenate([[0], np.flatnonzero(a == 10) + 1])


def load_table(source, dtype=np.float64, usecols: Optional[Sequence[int]] = None,
               delimiter: Optional[str] = None) -> Optional[np.ndarray]:
    """The fast path for numbers: ``np.loadtxt`` on a path or ``bytes``, one ``(L, C)`` row of ``dtype`` per line
    with data (``#`` comments and blank lines skipped; with ``usecols``, rows may be wider). ``delimiter=" "``
    (single spaces, no tabs) reads a little faster than any whitespace.

    ``None`` where the C reader gives up (a malformed token, rows of different widths, no rows, bytes that
    are not UTF-8), so that the caller runs its careful parser, which names the line.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "input contained no data" and deprecations become failures
        try:
            return np.loadtxt(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source, dtype=dtype,
                              comments="#", delimiter=delimiter, usecols=usecols, ndmin=2, encoding="utf-8")
        except (ValueError, Warning):
            return None


def text_dtype(dtype: torch.dtype) -> type:
    """The numpy dtype that text readers parse numbers to for tensors of ``dtype``: float32 for float32 (numpy
    rounds the parsed double, exactly as casting a float64 table would), float64 otherwise."""
    return np.float32 if dtype == torch.float32 else np.float64


def int_rows(block: bytes) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """The fast path for integer lists: the integers of each ``\n``-terminated line of ``block``, as
    ``counts (L,)`` per line and the concatenated ``values``; ``None`` if a token is not one decimal integer.
    ``block`` holds no comments."""
    a = np.frombuffer(block, np.uint8)
    space = a <= 32
    starts = np.flatnonzero(~space & np.concatenate([[True], space[:-1]]))  # first byte of each token
    ends = np.flatnonzero(a == 10)
    k = len(starts) // max(len(ends), 1)
    if k and len(starts) == k * len(ends) and (starts[k - 1::k] < ends).all() and (starts[k::k] > ends[:-1]).all():
        counts = np.full(len(ends), k)  # every line holds k tokens (no per-line search needed)
    else:
        counts = np.diff(np.searchsorted(starts, ends), prepend=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            values = np.fromstring(block, dtype=np.int64, sep=" ")
        except (ValueError, Warning):
            return None
    # "1-2" reads as two numbers: one number per token means every token was exactly one integer
    return (counts, values) if len(values) == len(starts) else None


def select(tokens: List[str], mask: np.ndarray) -> List[str]:
    """The tokens where the boolean ``mask (T,)`` is true."""
    return list(itertools.compress(tokens, mask.tolist()))


def parse_numbers(tokens: Sequence[str], dtype, what: str, where: Callable[[int], str]) -> np.ndarray:
    """Convert string ``tokens`` to a ``(T,)`` array of ``dtype``; a bad token raises ``ValueError`` at ``where(i)``."""
    convert = int if np.dtype(dtype).kind in "iu" else float
    try:
        return np.fromiter(map(convert, tokens), dtype=dtype, count=len(tokens))
    except (ValueError, OverflowError):
        for i, token in enumerate(tokens):
            try:
                np.asarray(convert(token), dtype=dtype)
            except (ValueError, OverflowError):
                kind = f"an integer that fits {np.dtype(dtype)}" if convert is int else "a number"
                raise ValueError(f"{where(i)}: malformed {what} {token!r}, expected {kind}") from None
        raise


def check_finite_rows(values: np.ndarray, what: str, where: Callable[[int], str]) -> None:
    """Raise ``ValueError`` at the first row of ``values (N, D)`` holding NaN or infinity."""
    if np.isfinite(values).all():
        return
    bad = np.flatnonzero(~np.isfinite(values).all(axis=1))
    if bad.size:
        raise ValueError(f"{where(int(bad[0]))}: {what} must be finite, got {values[bad[0]].tolist()}")


def float_dtype(dtype: torch.dtype, name: str = "dtype") -> torch.dtype:
    """Check that ``dtype`` is a floating point torch dtype and return it."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating point torch.dtype such as torch.float32, got {dtype!r}")
    return dtype


def as_tensor(x, name: str) -> torch.Tensor:
    """Accept a tensor or a numpy array, return a tensor (sharing memory where possible)."""
    if isinstance(x, np.ndarray):
        return torch.from_numpy(x)
    if isinstance(x, torch.Tensor):
        return x
    raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray, got {describe(x)}")


def check_points(x, name: str, shape_hint: str = "(N, 3)", last_dim: Optional[int] = 3) -> torch.Tensor:
    """Check a finite float ``(N, 3)`` (or ``(N, last_dim)``) array; return it as a tensor."""
    x = check_tensor(as_tensor(x, name), name, ndim=2, last_dim=last_dim, kind="float", shape_hint=shape_hint)
    return check_finite(x, name)


def check_rows_like(x, name: str, num_rows: int, last_dim: Optional[int], shape_hint: str) -> torch.Tensor:
    """Check per-point data (normals, features) against ``num_rows`` points; return it as a tensor."""
    x = check_points(x, name, shape_hint, last_dim)
    if x.shape[0] != num_rows:
        raise ValueError(f"{name} must have one row per point ({num_rows}), got shape {tuple(x.shape)}")
    return x


def check_mesh(verts, faces, names: Tuple[str, str] = ("verts", "faces")) -> Tuple[torch.Tensor, torch.Tensor]:
    """Check ``verts (V, 3)`` float finite and ``faces (F, 3)`` integer in ``[0, V)``; return tensors.

    ``names`` are the argument names used in error messages.
    """
    verts = check_points(verts, names[0], "(V, 3)")
    faces = check_faces(as_tensor(faces, names[1]), names[1], verts.shape[0])
    return verts, faces


def to_tensor(x: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    """``x`` as a contiguous tensor of ``dtype`` that owns or shares writable memory; float32/float64 are cast by
    numpy (single-threaded: torch's threaded cast of small arrays costs more than it saves)."""
    x = np.ascontiguousarray(x, dtype={torch.float32: np.float32, torch.float64: np.float64}.get(dtype))
    x = torch.from_numpy(x if x.flags.writeable else x.copy())
    return x if x.dtype == dtype else x.to(dtype)


def to_numpy(x: torch.Tensor) -> np.ndarray:
    """A CPU numpy copy of ``x``; float16/bfloat16 become float32 (numpy or file formats lack them)."""
    x = x.detach().cpu()
    if x.is_floating_point() and x.dtype not in (torch.float32, torch.float64):
        x = x.float()
    return x.numpy()


def format_rows(rows: np.ndarray, fmt: str, chunk: int = 65536) -> Iterator[str]:
    """Text of ``rows (N, D)``, each formatted with the printf ``fmt`` (D fields) plus a newline, in chunks.

    One ``%`` per chunk of rows instead of one per row: several times faster than ``np.savetxt``.
    """
    for start in range(0, len(rows), chunk):
        block = rows[start:start + chunk]
        yield (fmt + "\n") * len(block) % tuple(block.ravel().tolist())


def float_fmt(dtype: np.dtype) -> str:
    """A printf format that writes every value of ``dtype`` back exactly: 9 digits for float32, 17 else."""
    return "%.9g" if np.dtype(dtype) == np.float32 else "%.17g"
