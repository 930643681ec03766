"""PLY reading and writing, shared by the mesh and the point-cloud loaders.

``read_ply`` reads ``ascii``, ``binary_little_endian`` and ``binary_big_endian``
files with any elements and any scalar or list properties. Binary elements are
decoded with one ``np.frombuffer`` over a structured dtype; list properties
whose rows all have the length of the first row (triangle faces, one triangle
strip) take the same path, other lists fall back to a row loop. Ascii bodies are
tokenised once and every property is gathered with vectorised indexing.
"""
from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO, Callable, Dict, Iterator, List, NamedTuple, Optional, Tuple, Union

import numpy as np

from geo4g._atomic import atomic_write

from ._common import PathLike, check_file, float_fmt, format_rows, parse_numbers, split_lines

__all__ = ["PlyList", "PlyData", "float_columns", "read_ply", "vertex_xyz", "write_ply"]

PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}
_TYPE_NAMES = {"i1": "char", "u1": "uchar", "i2": "short", "u2": "ushort",
               "i4": "int", "u4": "uint", "f4": "float", "f8": "double"}
_STRUCT = {"i1": "b", "u1": "B", "i2": "h", "u2": "H", "i4": "i", "u4": "I", "f4": "f", "f8": "d"}
_ENDIAN = {"ascii": "<", "binary_little_endian": "<", "binary_big_endian": ">"}


class PlyList(NamedTuple):
    """A list property: row lengths ``counts (N,)`` int64 and all rows' ``values (sum(counts),)``."""

    counts: np.ndarray
    values: np.ndarray


class PlyData(NamedTuple):
    """A parsed PLY file.

    Attributes:
        path: the file read.
        elements: element name -> property name -> ``(N,)`` array (scalar
            property, native byte order) or ``PlyList`` (list property), in
            file order.
        first_line: element name -> 1-based line of its first row in an ascii
            file, ``None`` for binary files.
    """

    path: Path
    elements: Dict[str, Dict[str, Union[np.ndarray, PlyList]]]
    first_line: Dict[str, Optional[int]]

    def where(self, element: str, row: int) -> str:
        """``"path:line"`` of an element row in an ascii file, ``"path: element <name> row <i>"`` else."""
        line = self.first_line.get(element)
        return f"{self.path}:{line + row}" if line is not None else f"{self.path}: element {element!r} row {row}"


class _Property(NamedTuple):
    name: str
    code: str  # numpy type code of the values, e.g. "f4"
    count_code: Optional[str]  # numpy type code of the list length, None for a scalar property


class _Element(NamedTuple):
    name: str
    count: int
    props: List[_Property]


def read_ply(path: PathLike) -> PlyData:
    """Read every element of a PLY file.

    Returns:
        ``PlyData``: element name -> property name -> ``(N,)`` array in the
        declared type (scalar properties) or ``PlyList`` (list properties),
        with line tracking for error messages.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: a malformed header or body, naming the file and the line
            (ascii) or element row (binary).
    """
    path = Path(path)
    check_file(path, "PLY")
    with open(path, "rb") as f:
        fmt, elements, header_lines = _read_header(f, path)
        body = f.read()
    if fmt == "ascii":
        return _read_ascii(path, body, elements, header_lines)
    endian = _ENDIAN[fmt]
    out, offset = {}, 0
    for el in elements:
        out[el.name], offset = _read_binary_element(path, body, offset, el, endian)
    return PlyData(path, out, {el.name: None for el in elements})


def vertex_xyz(ply: PlyData) -> np.ndarray:
    """The ``(V, 3)`` vertex coordinates of a parsed PLY file, as ``float_columns``."""
    vertex = ply.elements.get("vertex")
    if vertex is None or not all(isinstance(vertex.get(c), np.ndarray) for c in "xyz"):
        found = list(vertex if vertex is not None else ply.elements)
        raise ValueError(f"{ply.path}: expected element 'vertex' with scalar properties x, y, z, "
                         f"got {'properties' if vertex is not None else 'elements'} {found}")
    return float_columns(vertex, "xyz")


def float_columns(element: Dict[str, Union[np.ndarray, PlyList]], names) -> np.ndarray:
    """The scalar properties ``names`` of an element as the columns of an ``(N, len(names))`` float array: float32
    when they all fit it exactly (float32, 8- and 16-bit integers), float64 otherwise."""
    columns = [element[c] for c in names]
    return np.stack(columns, axis=1).astype(np.result_type(*columns, np.float32), copy=False)


def _read_header(f: BinaryIO, path: Path) -> Tuple[str, List[_Element], int]:
    magic = f.readline()
    if magic.strip() != b"ply":
        raise ValueError(f"{path}:1: not a PLY file, expected 'ply' on the first line, got {magic[:20]!r}")
    fmt, elements, n = None, [], 1
    while True:
        raw, n = f.readline(), n + 1
        if not raw:
            raise ValueError(f"{path}:{n}: the PLY header has no 'end_header' line")
        words = raw.decode("ascii", errors="replace").split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        key = words[0]
        if key == "end_header":
            break
        if key == "format" and len(words) == 3 and words[1] in _ENDIAN:
            fmt = words[1]
        elif key == "element" and len(words) == 3 and words[2].isdigit():
            elements.append(_Element(words[1], int(words[2]), []))
        elif key == "property" and elements and len(words) == 3 and words[1] in PLY_TYPES:
            elements[-1].props.append(_Property(words[2], PLY_TYPES[words[1]], None))
        elif (key == "property" and elements and len(words) == 5 and words[1] == "list"
              and PLY_TYPES.get(words[2], "f")[0] in "iu" and words[3] in PLY_TYPES):
            elements[-1].props.append(_Property(words[4], PLY_TYPES[words[3]], PLY_TYPES[words[2]]))
        else:
            raise ValueError(
                f"{path}:{n}: malformed PLY header line {raw.strip().decode('ascii', 'replace')!r}, expected "
                "'format <ascii|binary_little_endian|binary_big_endian> 1.0', 'element <name> <count>', "
                "'property <type> <name>' or 'property list <int type> <type> <name>'"
            )
        if key == "property" and [p.name for p in elements[-1].props].count(words[-1]) > 1:
            raise ValueError(f"{path}:{n}: duplicate property {words[-1]!r} in element {elements[-1].name!r}")
    if fmt is None:
        raise ValueError(f"{path}:{n}: the PLY header has no 'format' line")
    return fmt, elements, n


def _read_ascii(path: Path, body: bytes, elements: List[_Element], header_lines: int) -> PlyData:
    lines = body.decode("ascii", errors="replace").splitlines()
    out, first_line, start = {}, {}, 0
    for el in elements:
        rows = lines[start:start + el.count]
        line0 = header_lines + start + 1
        if len(rows) < el.count:
            raise ValueError(f"{path}:{line0 + len(rows)}: the file ends after {len(rows)} of "
                             f"{el.count} rows of element {el.name!r}")
        out[el.name], first_line[el.name] = _parse_ascii_element(path, el, rows, line0), line0
        start += el.count
    return PlyData(path, out, first_line)


def _parse_ascii_element(path: Path, el: _Element, rows: List[str], line0: int) -> Dict:
    tokens, ntok, line_of, _ = split_lines(rows)

    def where(i: int) -> str:
        return f"{path}:{line0 + i}"

    flat = parse_numbers(tokens, np.float64, f"value of element {el.name!r}", lambda k: where(line_of[k]))
    end = np.cumsum(ntok)
    cur = end - ntok

    def fail(bad: np.ndarray, what: str) -> None:
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{where(i)}: malformed row of element {el.name!r}: {what}, got {rows[i].strip()!r}")

    names = " ".join(p.name for p in el.props)
    out = {}
    for p in el.props:
        fail(cur >= end, f"too few values for the properties ({names})")
        if p.count_code is None:
            out[p.name] = _cast(flat[cur], p.code, where, f"property {p.name!r} of element {el.name!r}")
            cur = cur + 1
            continue
        what = f"the list length of property {p.name!r} of element {el.name!r}"
        counts = _cast(flat[cur], p.count_code, where, what).astype(np.int64)
        fail(counts < 0, f"negative list length for {p.name!r}")
        fail(cur + 1 + counts > end, f"fewer values than the list length of {p.name!r}")
        first = np.cumsum(counts) - counts
        idx = np.repeat(cur + 1 - first, counts) + np.arange(counts.sum())
        values = _cast(flat[idx], p.code, lambda k: where(int(np.searchsorted(first + counts, k, side="right"))),
                       f"property {p.name!r} of element {el.name!r}")
        out[p.name] = PlyList(counts, values)
        cur = cur + 1 + counts
    fail(cur != end, f"more values than the properties ({names})")
    return out


def _cast(values: np.ndarray, code: str, where: Callable[[int], str], what: str) -> np.ndarray:
    """Cast parsed float64 values to the declared type, rejecting non-integers and overflow for int types."""
    if code[0] == "f":
        return values.astype(code)
    info = np.iinfo(code)
    bad = (values != np.round(values)) | (values < info.min) | (values > info.max)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{where(i)}: {what} must be {_TYPE_NAMES[code]} "
                         f"(an integer in [{info.min}, {info.max}]), got {values[i]!r}")
    return values.astype(code)


def _read_binary_element(path: Path, body: bytes, offset: int, el: _Element, endian: str) -> Tuple[Dict, int]:
    fields, row0 = [], offset
    for p in el.props:
        if p.count_code is None:
            fields.append((p.name, endian + p.code))
            row0 += np.dtype(p.code).itemsize
            continue
        count_dtype = np.dtype(endian + p.count_code)
        if el.count and row0 + count_dtype.itemsize <= len(body):
            n = int(np.frombuffer(body, count_dtype, 1, row0)[0])
        else:
            n = 0
        fields += [(p.name + "\0count", count_dtype), (p.name, endian + p.code, (n,))]
        row0 += count_dtype.itemsize + n * np.dtype(p.code).itemsize
    dtype = np.dtype(fields)
    size = dtype.itemsize * el.count
    if offset + size <= len(body):
        arr = np.frombuffer(body, dtype, el.count, offset)
        fixed = all(bool((arr[p.name + "\0count"] == dtype[p.name].shape[0]).all())
                    for p in el.props if p.count_code is not None)
        if fixed:
            out = {}
            for p in el.props:
                values = arr[p.name].astype(p.code)
                out[p.name] = values if p.count_code is None else PlyList(
                    np.full(el.count, dtype[p.name].shape[0], dtype=np.int64), values.reshape(-1))
            return out, offset + size
    if all(p.count_code is None for p in el.props):
        raise ValueError(f"{path}: the file ends inside element {el.name!r}: it needs {size} bytes "
                         f"from byte {offset}, got {len(body) - offset}")
    return _read_binary_rows(path, body, offset, el, endian)


def _read_binary_rows(path: Path, body: bytes, offset: int, el: _Element, endian: str) -> Tuple[Dict, int]:
    """Row-by-row decoding, for list properties whose lengths vary between rows."""
    values = {p.name: [] for p in el.props}
    counts = {p.name: np.zeros(el.count, dtype=np.int64) for p in el.props if p.count_code is not None}
    try:
        for row in range(el.count):
            for p in el.props:
                if p.count_code is None:
                    values[p.name].append(struct.unpack_from(endian + _STRUCT[p.code], body, offset)[0])
                    offset += np.dtype(p.code).itemsize
                    continue
                (n,) = struct.unpack_from(endian + _STRUCT[p.count_code], body, offset)
                offset += np.dtype(p.count_code).itemsize
                values[p.name].extend(struct.unpack_from(f"{endian}{n}{_STRUCT[p.code]}", body, offset))
                counts[p.name][row] = n
                offset += n * np.dtype(p.code).itemsize
    except struct.error:
        raise ValueError(f"{path}: the file ends inside row {row} of element {el.name!r} "
                         f"({el.count} rows declared)") from None
    out = {}
    for p in el.props:
        arr = np.array(values[p.name], dtype=p.code)
        out[p.name] = arr if p.count_code is None else PlyList(counts[p.name], arr)
    return out, offset


def write_ply(path: PathLike, elements: Dict[str, Dict[str, np.ndarray]], binary: bool = True) -> None:
    """Write a PLY file atomically.

    Args:
        path: destination file.
        elements: element name -> property name -> array, in file order. A
            ``(N,)`` array is a scalar property; an ``(N, K)`` integer array is
            a list property of ``K`` values per row, written as
            ``property list uchar <type>``. All arrays of an element share
            ``N``; dtypes must be (u)int8/16/32 or float32/64.
        binary: ``binary_little_endian`` if true, ``ascii`` otherwise. Ascii
            floats are written with enough digits to read back exactly.
    """
    header = ["ply", f"format {'binary_little_endian' if binary else 'ascii'} 1.0", "comment written by geo4g"]
    for name, props in elements.items():
        num_rows = {len(a) for a in props.values()}
        if len(num_rows) > 1:
            raise ValueError(f"properties of PLY element {name!r} must share one row count, got {sorted(num_rows)}")
        header.append(f"element {name} {num_rows.pop() if num_rows else 0}")
        for pname, arr in props.items():
            code = arr.dtype.str[1:]
            if code not in _TYPE_NAMES or arr.ndim not in (1, 2) or (arr.ndim == 2 and code[0] == "f"):
                raise ValueError(f"PLY property {name}.{pname} must be an (N,) array or an (N, K) integer array "
                                 f"of a PLY type ({', '.join(_TYPE_NAMES)}), got {arr.dtype} of shape {arr.shape}")
            kind = f"list uchar {_TYPE_NAMES[code]}" if arr.ndim == 2 else _TYPE_NAMES[code]
            header.append(f"property {kind} {pname}")
    header.append("end_header\n")
    with atomic_write(path, "wb") as f:
        f.write("\n".join(header).encode("ascii"))
        for props in elements.values():
            f.writelines([_encode_binary(props)] if binary else _encode_ascii(props))


def _encode_binary(props: Dict[str, np.ndarray]) -> bytes:
    fields = []
    for name, arr in props.items():
        code = "<" + arr.dtype.str[1:]
        fields += [(name, code)] if arr.ndim == 1 else [(name + "\0count", "u1"), (name, code, (arr.shape[1],))]
    rows = np.empty(len(next(iter(props.values()))) if props else 0, dtype=fields)
    for name, arr in props.items():
        rows[name] = arr
        if arr.ndim == 2:
            rows[name + "\0count"] = arr.shape[1]
    return rows.tobytes()


def _encode_ascii(props: Dict[str, np.ndarray]) -> Iterator[bytes]:
    columns, fmts = [], []
    for arr in props.values():
        fmt = float_fmt(arr.dtype) if arr.dtype.kind == "f" else "%d"
        if arr.ndim == 2:
            columns += [np.full(len(arr), arr.shape[1]), arr]
            fmts += ["%d"] + [fmt] * arr.shape[1]
        else:
            columns.append(arr)
            fmts.append(fmt)
    if columns:
        rows = np.column_stack([np.asarray(c, dtype=np.float64) for c in columns])
        yield from (text.encode("ascii") for text in format_rows(rows, " ".join(fmts)))
