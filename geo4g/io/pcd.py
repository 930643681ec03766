"""PCD (Point Cloud Library) reading and writing, and the LZF decompressor of compressed PCD files.

A PCD file is an ascii header, one keyword a line (``#`` starts a comment)::

    VERSION 0.7
    FIELDS x y z rgb          field names
    SIZE 4 4 4 4              bytes per value: 1, 2, 4 or 8
    TYPE F F F U              F float, I signed, U unsigned integer
    COUNT 1 1 1 1             values per field and point (optional, default 1)
    WIDTH 213
    HEIGHT 1                  WIDTH * HEIGHT == POINTS (HEIGHT > 1: an organized cloud)
    VIEWPOINT 0 0 0 1 0 0 0   sensor pose: translation, quaternion w x y z (optional)
    POINTS 213
    DATA binary               ascii | binary | binary_compressed

followed by the points:

- ``DATA ascii``: one point a line, the values of every field in order;
- ``DATA binary``: ``POINTS`` little-endian records, the fields' values packed back
  to back (an array of structures), exactly ``POINTS * sum(SIZE * COUNT)`` bytes;
- ``DATA binary_compressed``: the compressed and uncompressed byte counts (two
  little-endian uint32), then LZF-compressed bytes that hold each field's values
  for all points together (a structure of arrays).

PCL writes a packed colour as the field ``rgb`` (or ``rgba``) with ``SIZE 4``: the
bytes ``0xAARRGGBB`` of an unsigned int (``TYPE U``) or reinterpreted as a float
(``TYPE F``, printed as an integer in ascii files). Fields named ``_`` are padding.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Mapping, NamedTuple, Optional, Tuple

import numpy as np

from geo4g._atomic import atomic_write

from ._common import PathLike, check_file, content_lines, float_fmt, format_rows, load_table, parse_numbers, split_lines

__all__ = ["PcdData", "lzf_decompress", "read_pcd", "write_pcd"]

_DTYPES = {("F", 2): "f2", ("F", 4): "f4", ("F", 8): "f8",
           ("I", 1): "i1", ("I", 2): "i2", ("I", 4): "i4", ("I", 8): "i8",
           ("U", 1): "u1", ("U", 2): "u2", ("U", 4): "u4", ("U", 8): "u8"}
_KEYS = ("VERSION", "FIELDS", "SIZE", "TYPE", "COUNT", "WIDTH", "HEIGHT", "VIEWPOINT", "POINTS", "DATA")
_ENCODINGS = ("ascii", "binary", "binary_compressed")
_COLOURS = ("rgb", "rgba")
_PADDING = "_"
_DEFAULT_VIEWPOINT = (0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0)


class PcdData(NamedTuple):
    """A parsed PCD file.

    Attributes:
        path: the file read.
        fields: field name -> values in file order: ``(N,)`` for ``COUNT 1``,
            ``(N, C)`` for ``COUNT C``, in the stored dtype (``TYPE F`` ``SIZE 4`` is
            float32, ``TYPE U`` ``SIZE 1`` uint8, ...). A packed colour ``rgb`` / ``rgba``
            (``SIZE 4``, ``COUNT 1``) is uint32 ``0xAARRGGBB`` whatever its ``TYPE``.
            Padding fields (``_``) are left out. ``N = WIDTH * HEIGHT``; points of an
            organized cloud are in row-major order.
        width: ``WIDTH``.
        height: ``HEIGHT``.
        viewpoint: ``VIEWPOINT``, the 7 values ``tx ty tz qw qx qy qz``.
        data: the encoding, ``"ascii"``, ``"binary"`` or ``"binary_compressed"``.
    """

    path: Path
    fields: Dict[str, np.ndarray]
    width: int
    height: int
    viewpoint: Tuple[float, ...]
    data: str


class _Field(NamedTuple):
    name: str
    code: str  # numpy type code, e.g. "f4"
    type: str  # the header's TYPE letter
    count: int


def read_pcd(path: PathLike) -> PcdData:
    """Read every field of a PCD file (``DATA ascii``, ``binary`` or ``binary_compressed``).

    Integer values of ascii files are parsed through float64; 64-bit integer fields with
    values of magnitude ``2**53`` or more (where float64 is inexact) are re-read exactly.

    Returns:
        a ``PcdData``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: naming the file (and header line) for a bad header (unknown
            keyword, missing ``FIELDS`` / ``SIZE`` / ``TYPE`` / ``WIDTH`` / ``DATA``,
            lengths that disagree, an unsupported ``SIZE``/``TYPE`` pair,
            ``WIDTH * HEIGHT != POINTS``), truncated point data, a malformed ascii
            value (naming the line) or corrupt compressed data.
    """
    path = Path(path)
    check_file(path, "PCD")
    raw = path.read_bytes()
    fields, width, height, viewpoint, data, start, lines = _read_header(path, raw)
    n = width * height
    body = memoryview(raw)[start:]
    if data == "ascii":
        values = _read_ascii(path, bytes(body), fields, n, lines)
    elif data == "binary":
        values = _read_binary(path, body, fields, n)
    else:
        values = _read_compressed(path, body, fields, n)
    return PcdData(path, {f.name: v for f, v in zip(fields, values) if f.name != _PADDING},
                   width, height, viewpoint, data)


def write_pcd(path: PathLike, fields: Mapping[str, np.ndarray], binary: bool = True) -> None:
    """Write an unorganized PCD file (``HEIGHT 1``) atomically, with the header PCL writes.

    Args:
        path: destination file; its folder must exist.
        fields: field name -> ``(N,)`` (``COUNT 1``) or ``(N, C)`` (``COUNT C``) numpy
            array of float16/32/64 or (u)int8/16/32/64 values, in the order to store.
            Names are non-empty printable ascii, without whitespace or ``#`` (the header's
            comment sign), and not ``_`` (padding).
        binary: ``DATA binary`` (default) or ``DATA ascii``. Ascii floats are written
            with enough digits to read back exactly.

    Raises:
        ValueError / TypeError: naming the field for a bad name, dtype or shape.
    """
    if not fields:
        raise ValueError("fields must name at least one field, got none")
    columns: List[np.ndarray] = []
    header: Dict[str, List[str]] = {"FIELDS": [], "SIZE": [], "TYPE": [], "COUNT": []}
    n = None
    for name, values in fields.items():
        if (not isinstance(name, str) or not name or name == _PADDING
                or not all(c.isascii() and c.isprintable() and not c.isspace() and c != "#" for c in name)):
            raise ValueError(f"PCD field names must be non-empty printable ascii, without whitespace or '#', and "
                             f"not {_PADDING!r} (padding), got {name!r}")
        if not isinstance(values, np.ndarray):
            raise TypeError(f"field {name!r} must be a numpy.ndarray, got {type(values).__name__}")
        letter = {"f": "F", "i": "I", "u": "U"}.get(values.dtype.kind)
        if letter is None or (letter, values.dtype.itemsize) not in _DTYPES or values.ndim not in (1, 2):
            raise ValueError(f"field {name!r} must be an (N,) or (N, C) array of float16/32/64 or (u)int8/16/32/64, "
                             f"got {values.dtype} of shape {values.shape}")
        n = values.shape[0] if n is None else n
        if values.shape[0] != n or (values.ndim == 2 and values.shape[1] == 0):
            raise ValueError(f"field {name!r} must have one row per point ({n}) and at least one column, "
                             f"got shape {values.shape}")
        columns.append(values if values.ndim == 2 else values[:, None])
        for key, value in zip(header, (name, values.dtype.itemsize, letter, columns[-1].shape[1])):
            header[key].append(str(value))
    text = ("# .PCD v0.7 - Point Cloud Data file format\nVERSION 0.7\n"
            + "".join(f"{key} {' '.join(values)}\n" for key, values in header.items())
            + f"WIDTH {n}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {n}\n"
            + f"DATA {'binary' if binary else 'ascii'}\n")
    with atomic_write(path, "wb") as f:
        f.write(text.encode("ascii"))
        if binary:
            record = np.dtype([(f"f{i}", c.dtype.newbyteorder("<"), (c.shape[1],)) for i, c in enumerate(columns)])
            table = np.empty(n, dtype=record)
            for i, c in enumerate(columns):
                table[f"f{i}"] = c
            f.write(table.tobytes())
        else:
            fmt = " ".join(("%d" if c.dtype.kind in "iu" else float_fmt(c.dtype)) for c in columns
                           for _ in range(c.shape[1]))
            same = all(c.dtype == columns[0].dtype for c in columns)
            table = np.concatenate([c if same else c.astype(object) for c in columns], axis=1)
            for chunk in format_rows(table, fmt):
                f.write(chunk.encode("ascii"))


def lzf_decompress(data: bytes, size: int) -> bytes:
    """Decompress LZF data (liblzf's format, used by PCD ``binary_compressed``) to ``size`` bytes.

    The stream is a series of runs, each starting with a control byte ``c``:
    ``c < 32`` copies the next ``c + 1`` bytes; otherwise the run repeats
    ``length = (c >> 5) + 2`` bytes (``c >> 5 == 7``: plus the next byte) found
    ``((c & 31) << 8) + next byte + 1`` bytes back in the output, which may overlap
    the bytes being written.

    Raises:
        ValueError: the data is truncated, refers before the start of the output,
            or does not decompress to exactly ``size`` bytes.
    """
    src = bytes(data)
    out = bytearray()
    i, end = 0, len(src)
    while i < end:
        ctrl = src[i]
        i += 1
        if ctrl < 32:
            if i + ctrl + 1 > end:
                raise ValueError(f"LZF data is truncated: a literal run of {ctrl + 1} bytes at input byte {i - 1} "
                                 f"goes past the end ({end} bytes)")
            out += src[i:i + ctrl + 1]
            i += ctrl + 1
        else:
            length = ctrl >> 5
            if length == 7:
                if i >= end:
                    raise ValueError(f"LZF data is truncated at input byte {i}: a back reference has no length byte")
                length += src[i]
                i += 1
            if i >= end:
                raise ValueError(f"LZF data is truncated at input byte {i}: a back reference has no offset byte")
            distance = ((ctrl & 31) << 8) + src[i] + 1
            i += 1
            length += 2
            start = len(out) - distance
            if start < 0:
                raise ValueError(f"corrupt LZF data: a back reference at input byte {i - 2} points {distance} bytes "
                                 f"back from output byte {len(out)}")
            if distance >= length:
                out += out[start:start + length]
            else:  # the copy overlaps what it writes: the last `distance` bytes repeat
                pattern = bytes(out[start:])
                out += (pattern * (length // distance + 1))[:length]
        if len(out) > size:
            break
    if len(out) != size:
        raise ValueError(f"LZF data decompresses to {len(out) if len(out) <= size else 'more than ' + str(size)} "
                         f"bytes, expected {size}")
    return bytes(out)


def _read_header(path: Path, raw: bytes) -> Tuple[List[_Field], int, int, Tuple[float, ...], str, int, int]:
    """Parse the header: ``(fields, width, height, viewpoint, data, body_start, header_lines)``."""
    entries: Dict[str, Tuple[int, List[str]]] = {}
    pos, number = 0, 0
    while "DATA" not in entries:
        if pos >= len(raw):
            raise ValueError(f"{path}: the PCD header ends without a DATA line (truncated file, or not a PCD file)")
        newline = raw.find(b"\n", pos)
        newline = len(raw) if newline < 0 else newline
        line = raw[pos:newline].split(b"#", 1)[0]
        pos, number = newline + 1, number + 1
        try:
            tokens = line.decode("ascii").split()
        except UnicodeDecodeError:
            raise ValueError(f"{path}:{number}: not a PCD header line, got {line[:40]!r}") from None
        if not tokens:
            continue
        key = tokens[0].upper()
        if key not in _KEYS:
            raise ValueError(f"{path}:{number}: unknown PCD header keyword {tokens[0]!r}, expected one of "
                             f"{', '.join(_KEYS)}")
        if key in entries:
            raise ValueError(f"{path}:{number}: {key} is given twice (first on line {entries[key][0]})")
        entries[key] = (number, tokens[1:])

    def values(key: str, length: Optional[int], convert, what: str, default=None) -> list:
        if key not in entries:
            if default is None:
                raise ValueError(f"{path}: the PCD header has no {key} line")
            return default
        line, tokens = entries[key]
        if length is not None and len(tokens) != length:
            raise ValueError(f"{path}:{line}: {key} must have {length} value{'s' * (length != 1)} "
                             f"({what}), got {len(tokens)}: {' '.join(tokens)!r}")
        try:
            return [convert(t) for t in tokens]
        except ValueError:
            raise ValueError(f"{path}:{line}: {key} must hold {what}, got {' '.join(tokens)!r}") from None

    def count(token: str, least: int = 0) -> int:
        value = int(token)
        if value < least:
            raise ValueError(token)
        return value

    names = values("FIELDS", None, str, "field names")
    if not names:
        raise ValueError(f"{path}:{entries['FIELDS'][0]}: FIELDS names no field")
    duplicate = next((s for i, s in enumerate(names) if s != _PADDING and s in names[:i]), None)
    if duplicate is not None:
        raise ValueError(f"{path}:{entries['FIELDS'][0]}: field {duplicate!r} appears twice in FIELDS")
    k = len(names)
    sizes = values("SIZE", k, int, "one byte size per field")
    types = values("TYPE", k, str.upper, "one type letter per field")
    counts = values("COUNT", k, lambda t: count(t, 1), "one positive value count per field", [1] * k)
    fields = []
    for name, size, letter, c in zip(names, sizes, types, counts):
        code = _DTYPES.get((letter, size))
        if code is None:
            raise ValueError(f"{path}: field {name!r} has TYPE {letter} and SIZE {size}; supported are F of 2, 4 or "
                             f"8 bytes and I, U of 1, 2, 4 or 8 bytes")
        if name in _COLOURS and size == 4 and c == 1:
            code = "u4"  # a packed colour: its bytes, whatever the TYPE
        fields.append(_Field(name, code, letter, c))
    width, = values("WIDTH", 1, count, "the number of points per row, a non-negative integer")
    height, = values("HEIGHT", 1, count, "the number of rows, a non-negative integer", [1])
    points, = values("POINTS", 1, count, "the number of points, a non-negative integer", [width * height])
    if points != width * height:
        raise ValueError(f"{path}:{entries['POINTS'][0]}: POINTS ({points}) must equal WIDTH * HEIGHT "
                         f"({width} * {height} = {width * height})")
    viewpoint = tuple(values("VIEWPOINT", 7, float, "7 numbers: tx ty tz qw qx qy qz", list(_DEFAULT_VIEWPOINT)))
    line, tokens = entries["DATA"]
    if len(tokens) != 1 or tokens[0].lower() not in _ENCODINGS:
        raise ValueError(f"{path}:{line}: DATA must be one of {', '.join(_ENCODINGS)}, got {' '.join(tokens)!r}")
    return fields, width, height, viewpoint, tokens[0].lower(), pos, number


def _read_binary(path: Path, body: memoryview, fields: List[_Field], n: int) -> List[np.ndarray]:
    record = np.dtype([(f"f{i}", "<" + f.code, (f.count,)) for i, f in enumerate(fields)])
    need = n * record.itemsize
    if len(body) != need:
        raise ValueError(f"{path}: DATA binary needs {n} points of {record.itemsize} bytes = {need} bytes after "
                         f"the header, got {len(body)} ({'truncated' if len(body) < need else 'trailing bytes'}; "
                         "does the header describe the data?)")
    table = np.frombuffer(body, dtype=record, count=n)
    return [_shaped(table[f"f{i}"], f) for i, f in enumerate(fields)]


def _read_compressed(path: Path, body: memoryview, fields: List[_Field], n: int) -> List[np.ndarray]:
    if len(body) < 8:
        raise ValueError(f"{path}: DATA binary_compressed needs 8 bytes of sizes after the header, got {len(body)} "
                         "(truncated)")
    packed, unpacked = (int(v) for v in np.frombuffer(body[:8], dtype="<u4"))
    sizes = [n * np.dtype(f.code).itemsize * f.count for f in fields]
    if unpacked != sum(sizes):
        raise ValueError(f"{path}: DATA binary_compressed holds {unpacked} bytes uncompressed, expected "
                         f"{n} points * {sum(sizes) // max(n, 1)} bytes = {sum(sizes)}")
    if len(body) < 8 + packed:
        raise ValueError(f"{path}: DATA binary_compressed announces {packed} compressed bytes, got {len(body) - 8} "
                         "(truncated)")
    try:
        data = lzf_decompress(body[8:8 + packed], unpacked)
    except ValueError as err:
        raise ValueError(f"{path}: DATA binary_compressed: {err}") from None
    offsets = np.cumsum([0] + sizes)
    return [_shaped(np.frombuffer(data, dtype=("<" + f.code, (f.count,)), count=n, offset=int(o)), f)
            for f, o in zip(fields, offsets)]


def _shaped(values: np.ndarray, field: _Field) -> np.ndarray:
    """An owned, native-order ``(N,)`` (``COUNT 1``) or ``(N, C)`` copy of a field's values."""
    values = values.astype(values.dtype.newbyteorder("="))
    return values[:, 0] if field.count == 1 else values


def _read_ascii(path: Path, body: bytes, fields: List[_Field], n: int, header_lines: int) -> List[np.ndarray]:
    d = sum(f.count for f in fields)
    table = load_table(body, np.float64) if n else None
    if table is None or table.shape != (n, d):
        table = _ascii_lines(path, body, n, d, header_lines)
    out, column, tokens = [], 0, None
    for f in fields:
        values = table[:, column:column + f.count]
        if f.code in ("i8", "u8") and (np.abs(values) >= 2.0 ** 53).any():
            # float64 rounds these: read the field's tokens again as exact integers
            if tokens is None:
                tokens = np.array(split_lines(content_lines(body.decode("utf-8", errors="replace"))[1])[0])
                if tokens.size != n * d:
                    raise ValueError(f"{path}: DATA ascii needs {n} points of {d} values, got {tokens.size} values")
                tokens = tokens.reshape(n, d)
            out.append(_exact_integers(path, tokens[:, column:column + f.count], f))
        else:
            out.append(_ascii_field(path, values if f.count > 1 else values[:, 0], f))
        column += f.count
    return out


def _exact_integers(path: Path, tokens: np.ndarray, field: _Field) -> np.ndarray:
    """A 64-bit integer field's ``(N, C)`` ascii tokens parsed exactly (integer literals; an integral float
    literal such as ``1e3`` is taken through float64); an error names the point for one that does not fit."""
    dtype = np.dtype(field.code)
    try:
        values = tokens.astype(dtype)
    except (ValueError, OverflowError):  # a float literal, or a value out of range: one token at a time
        info = np.iinfo(dtype)
        values = np.empty(tokens.shape, dtype=dtype)
        for index, token in np.ndenumerate(tokens):
            try:
                value = int(token)
            except ValueError:
                try:
                    number = float(token)
                except ValueError:
                    number = float("nan")
                value = int(number) if np.isfinite(number) and number == np.round(number) else None
            if value is None or not info.min <= value <= info.max:
                raise ValueError(f"{path}: field {field.name!r} of point {index[0]}: expected an integer that fits "
                                 f"{dtype}, got {str(token)!r}") from None
            values[index] = value
    return values[:, 0] if field.count == 1 else values


def _ascii_lines(path: Path, body: bytes, n: int, d: int, header_lines: int) -> np.ndarray:
    """The careful ascii reader: the ``(n, d)`` float64 values, or an error naming the line."""
    numbers, lines = content_lines(body.decode("utf-8", errors="replace"))
    numbers = numbers + header_lines
    if len(lines) != n:
        raise ValueError(f"{path}: DATA ascii needs POINTS = {n} lines of point values, got {len(lines)}"
                         f"{' (truncated)' if len(lines) < n else ''}")
    tokens, counts, _, _ = split_lines(lines)
    odd = np.flatnonzero(counts != d)
    if odd.size:
        raise ValueError(f"{path}:{numbers[odd[0]]}: expected {d} values (one per field and COUNT), "
                         f"got {counts[odd[0]]}")
    return parse_numbers(tokens, np.float64, "value", lambda i: f"{path}:{numbers[i // d]}").reshape(n, d)


def _ascii_field(path: Path, values: np.ndarray, field: _Field) -> np.ndarray:
    """Cast one field's float64 values to its type, checking that integers are integers that fit."""
    if field.name in _COLOURS and field.code == "u4" and field.type == "F":
        as_int = np.isfinite(values).all() and (values == np.floor(values)).all() and (values >= 0).all() \
            and (values < 2 ** 32).all()
        if not as_int:  # a float whose bits are the colour
            return values.astype(np.float32).view(np.uint32)
    dtype = np.dtype(field.code)
    if dtype.kind == "f":
        return values.astype(dtype)
    info = np.iinfo(dtype)
    if field.name in _COLOURS and field.code == "u4" and field.type == "I":
        info = np.iinfo(np.int32)  # a signed int holding the colour's bits
    # the bounds as floats, the upper one exclusive: float(2**63 - 1) rounds up to 2**63, which must not pass
    bad = ~(np.isfinite(values) & (values == np.round(values)) & (values >= float(info.min))
            & (values < float(info.max) + 1.0))
    if bad.any():
        i = np.argwhere(bad)[0]
        raise ValueError(f"{path}: field {field.name!r} of point {i[0]}: expected an integer that fits "
                         f"{info.dtype}, got {values[tuple(i)]!r}")
    return values.astype(info.dtype).astype(dtype) if info.dtype != dtype else values.astype(dtype)
