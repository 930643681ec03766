"""Triangle mesh files: OBJ, OFF, PLY (ascii and binary) and STL (ascii and binary)."""
from __future__ import annotations

import re
from itertools import repeat
from operator import itemgetter
from pathlib import Path
from typing import Callable, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch

from geo4g._atomic import atomic_write
from geo4g.structures import Meshes

from ._common import (
    PathLike,
    check_file,
    check_finite_rows,
    check_mesh,
    content_lines,
    float_dtype,
    float_fmt,
    format_rows,
    int_rows,
    line_bounds,
    load_table,
    parse_numbers,
    read_lines,
    resolve_format,
    select,
    split_lines,
    text_dtype,
    to_numpy,
    to_tensor,
)
from .ply import PlyList, read_ply, vertex_xyz, write_ply

__all__ = ["MeshData", "MESH_FORMATS", "load_mesh", "load_meshes", "save_mesh"]

MESH_FORMATS = ("obj", "off", "ply", "stl")

_STL_KEYWORDS = {k: i for i, k in enumerate(("solid", "facet", "outer", "vertex", "endloop", "endfacet", "endsolid"))}
# odd 64-bit multipliers of the vertex hash, one per 32-bit word of a vertex (3 for float32, 6 for float64)
_HASH = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9,
                  0xD6E8FEB86659FD93, 0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53], dtype=np.uint64)
# the /vt/vn tail of an OBJ face reference v/vt/vn: from a slash after a digit up to whitespace (as str.split
# sees it), a comment or a non-ASCII byte
_REF_TAIL = re.compile(rb"(?<=[0-9])/[^\s\x1c-\x1f#\x80-\xff]*")
_COMMENT = re.compile(rb"#[^\n]*")
_STL_DTYPE = np.dtype([("normal", "<f4", (3,)), ("verts", "<f4", (3, 3)), ("attr", "<u2")])


class MeshData(NamedTuple):
    """A loaded mesh: ``verts (V, 3)`` float and ``faces (F, 3)`` long, indices into ``verts``."""

    verts: torch.Tensor
    faces: torch.Tensor


def load_mesh(path: PathLike, dtype: torch.dtype = torch.float32, format: Optional[str] = None) -> MeshData:
    """Load a triangle mesh from an OBJ, OFF, PLY or STL file.

    Polygons with more than 3 vertices are fan-triangulated (``v0 v1 v2``,
    ``v0 v2 v3``, ...). Unreferenced vertices are kept.

    - OBJ: ``v x y z`` and ``f`` records with ``v``, ``v/vt``, ``v//vn`` or
      ``v/vt/vn`` references, 1-based or negative (relative to the vertices
      read so far); every other record (``vt``, ``vn``, ``g``, ``usemtl``, ...)
      is ignored.
    - OFF: ``OFF`` (also ``COFF``, ``NOFF``, ``CNOFF``, ...) with the counts on
      the next line or on the same line, as in ModelNet (``OFF490 518 0``);
      ``#`` comments and blank lines anywhere; per-vertex and per-face colours
      are ignored.
    - PLY: ascii or binary, vertex ``x y z`` and faces from element ``face``
      (property ``vertex_indices`` or ``vertex_index``) or triangle strips from
      element ``tristrips`` (``-1`` restarts a strip). A PLY without faces
      gives ``F = 0``.
    - STL: ascii or binary. STL stores separate triangles, so identical
      vertices are merged, in order of first use.

    Args:
        path: the file.
        dtype: floating dtype of the returned vertices.
        format: one of ``MESH_FORMATS``; default from the file extension.

    Returns:
        ``MeshData(verts (V, 3) dtype, faces (F, 3) long)``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: unknown format, or a malformed file (message names the file
            and line, or the binary element row), non-finite coordinates, a face
            with fewer than 3 vertices or an index out of range.
    """
    path, fmt = resolve_format(path, format, MESH_FORMATS, "mesh")
    dtype = float_dtype(dtype)
    check_file(path, "mesh")
    verts, faces = _READERS[fmt](path, text_dtype(dtype))
    return MeshData(to_tensor(verts, dtype), torch.from_numpy(faces).long())


def load_meshes(paths: Sequence[PathLike], dtype: torch.dtype = torch.float32, format: Optional[str] = None) -> Meshes:
    """Load several mesh files (see ``load_mesh``) into one ``Meshes`` batch of ``len(paths)`` meshes."""
    loaded = [load_mesh(p, dtype, format) for p in paths]
    return Meshes(verts=[m.verts for m in loaded], faces=[m.faces for m in loaded])


def save_mesh(
    path: PathLike,
    verts,
    faces,
    binary: Optional[bool] = None,
    format: Optional[str] = None,
) -> None:
    """Save a triangle mesh atomically (a failed save leaves any previous file untouched).

    Args:
        path: destination file; its folder must exist.
        verts: ``(V, 3)`` float tensor or numpy array, finite.
        faces: ``(F, 3)`` integer tensor or numpy array with indices in ``[0, V)``.
        binary: PLY and STL only: binary (default) or ascii. OBJ and OFF are
            text formats and reject ``binary=True``.
        format: one of ``MESH_FORMATS``; default from the file extension.

    Text formats write enough digits to read float32 and float64 vertices back
    exactly (when loaded with the same ``dtype``); binary PLY stores float32 or
    float64 as given; STL always stores float32 and drops unreferenced vertices
    (it has no vertex list).

    Raises:
        TypeError / ValueError: naming ``verts`` or ``faces`` for a wrong type,
            shape or dtype, non-finite coordinates or out-of-range indices;
            ``ValueError`` for an unknown format or ``binary=True`` with a text
            format.
    """
    path, fmt = resolve_format(path, format, MESH_FORMATS, "mesh")
    verts, faces = check_mesh(verts, faces)
    if binary and fmt in ("obj", "off"):
        raise ValueError(f"binary=True is not supported for .{fmt}, a text format; use .ply or .stl")
    _WRITERS[fmt](path, to_numpy(verts), to_numpy(faces).astype(np.int64), binary is not False)


def _triangulate(counts: np.ndarray, values: np.ndarray, num_verts: int,
                 where: Callable[[int], str]) -> np.ndarray:
    """Fan-triangulate polygons given as ``counts (P,)`` and concatenated vertex ``values``; check them."""
    if counts.size and counts.min() < 3:
        short = np.flatnonzero(counts < 3)
        raise ValueError(f"{where(int(short[0]))}: a face needs at least 3 vertices, got {counts[short[0]]}")
    if values.size and (values.min() < 0 or values.max() >= num_verts):
        bad = np.flatnonzero((values < 0) | (values >= num_verts))
        face = int(np.searchsorted(np.cumsum(counts), bad[0], side="right"))
        raise ValueError(f"{where(face)}: face refers to vertex {values[bad[0]]} (0-based), "
                         f"out of range for {num_verts} vertices")
    if counts.size and counts.max() == 3:
        return values.reshape(-1, 3).astype(np.int64, copy=False)
    start = np.cumsum(counts) - counts
    ntri = counts - 2
    poly_start = np.repeat(start, ntri)
    k = np.arange(ntri.sum()) - np.repeat(np.cumsum(ntri) - ntri, ntri)
    tris = np.stack([values[poly_start], values[poly_start + k + 1], values[poly_start + k + 2]], axis=1)
    return tris.astype(np.int64, copy=False).reshape(-1, 3)


def _line_of(path: Path, numbers: np.ndarray) -> Callable[[int], str]:
    return lambda i: f"{path}:{numbers[i]}"


def _read_obj(path: Path, dtype: type) -> Tuple[np.ndarray, np.ndarray]:
    return _read_obj_fast(path.read_bytes(), dtype) or _read_obj_lines(path)


def _read_obj_fast(data: bytes, dtype: type) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """``_read_obj_lines`` for well-formed files: the ``v`` and ``f`` lines are cut out as two blocks of bytes
    and handed to numpy's C parsers. ``None`` where the careful reader must decide (and name the line)."""
    split = line_bounds(data)
    if split is None:
        return None
    data, a, bounds = split
    first, second = a[bounds[:-1]], a[np.minimum(bounds[:-1] + 1, len(a) - 1)]
    spaced = (second == 32) | (second == 9)
    if (((first == 118) | (first == 102)) & ~spaced & ((second <= 35) | (second >= 128))).any():
        return None  # 'v' alone, before a comment or before other whitespace: the careful reader decides
    for i in np.flatnonzero(((first <= 32) & (first != 10) & (first != 13)) | (first >= 128)).tolist():
        words = data[bounds[i]:bounds[i + 1]].decode("utf-8", errors="replace").split("#", 1)[0].split(None, 1)
        if words[:1] in (["v"], ["f"]):
            return None  # an indented record (other indented lines, blank or not, are skipped as usual)
    is_v, is_f = (first == 118) & spaced, (first == 102) & spaced
    buf = bytearray(data)
    np.frombuffer(buf, np.uint8)[bounds[:-1][is_v | is_f]] = 32  # blank the keywords: the blocks hold numbers
    verts = _table(_lines(buf, bounds, is_v), is_v.sum(), dtype)
    if verts is None:
        return None
    faces = _lines(buf, bounds, is_f)
    if b"/" in faces:
        faces = _REF_TAIL.sub(b"", faces)
    if b"#" in faces:
        faces = _COMMENT.sub(b"", faces)
    rows = int_rows(faces)
    if rows is None:
        return None
    try:
        # where=str: the message is dropped, the careful reader raises it again with the line
        return verts, _obj_faces(rows[1], rows[0], np.cumsum(is_v)[is_f], len(verts), str)
    except ValueError:
        return None


def _table(block: bytes, num_rows: int, dtype: type) -> Optional[np.ndarray]:
    """The first 3 numbers of each of the ``num_rows`` lines of ``block`` as ``(num_rows, 3)``, all finite, or
    ``None``. Rows of one width parse faster without ``usecols``, so that is tried first."""
    if not num_rows:
        return np.zeros((0, 3), dtype=dtype)
    table = load_table(block, dtype)
    if table is None or table.shape[1] < 3:
        table = load_table(block, dtype, usecols=(0, 1, 2))
    ok = table is not None and len(table) == num_rows and np.isfinite(table[:, :3]).all()
    return table[:, :3] if ok else None


def _lines(buf: bytearray, bounds: np.ndarray, mask: np.ndarray) -> bytes:
    """The lines of ``buf`` where ``mask (L,)`` is true, as one block; ``bounds (L + 1,)`` are the line starts."""
    edges = np.flatnonzero(np.diff(mask, prepend=False, append=False)).tolist()  # [first, end) of each run
    view = memoryview(buf)
    return b"".join(view[bounds[i]:bounds[j]] for i, j in zip(edges[0::2], edges[1::2]))


def _read_obj_lines(path: Path) -> Tuple[np.ndarray, np.ndarray]:
    numbers, lines = read_lines(path, keys=("v", "f"))
    tokens, counts, line_of, pos = split_lines(lines)
    is_face = np.fromiter(map("f".__eq__, select(tokens, pos == 0)), dtype=bool, count=len(lines))
    short = np.flatnonzero(~is_face & (counts < 4))
    if short.size:
        raise ValueError(f"{path}:{numbers[short[0]]}: malformed vertex {lines[short[0]].strip()!r}, "
                         "expected 'v x y z'")
    vert_lines = numbers[~is_face]
    verts = parse_numbers(select(tokens, ~is_face[line_of] & (pos >= 1) & (pos <= 3)), np.float64,
                          "vertex coordinate", lambda i: f"{path}:{vert_lines[i // 3]}").reshape(-1, 3)
    check_finite_rows(verts, "vertex coordinates", _line_of(path, vert_lines))
    face_tok = is_face[line_of] & (pos >= 1)
    face_of = line_of[face_tok]
    refs = list(map(itemgetter(0), map(str.partition, select(tokens, face_tok), repeat("/"))))  # v of v/vt/vn
    ids = parse_numbers(refs, np.int64, "face vertex reference (v, v/vt, v//vn or v/vt/vn)",
                        lambda i: f"{path}:{numbers[face_of[i]]}")
    verts_before = np.cumsum(~is_face)[is_face]  # vertices defined before each face, for negative indices
    return verts, _obj_faces(ids, counts[is_face] - 1, verts_before, len(verts), _line_of(path, numbers[is_face]))


def _obj_faces(ids: np.ndarray, counts: np.ndarray, verts_before: np.ndarray, num_verts: int,
               where: Callable[[int], str]) -> np.ndarray:
    """Triangles ``(T, 3)`` of OBJ faces given as ``counts (F,)`` references each and their vertex ``ids``:
    1-based, or negative, counting back from the ``verts_before (F,)`` vertices defined before each face."""
    if ids.size and ids.min() <= 0:
        zero = np.flatnonzero(ids == 0)
        if zero.size:
            face = int(np.searchsorted(np.cumsum(counts), zero[0], side="right"))
            raise ValueError(f"{where(face)}: face refers to vertex 0, but OBJ indices start at 1 "
                             "(or count back from -1)")
        ids = np.where(ids > 0, ids - 1, np.repeat(verts_before, counts) + ids)
    else:
        ids = ids - 1
    return _triangulate(counts, ids, num_verts, where)


def _first_columns(path: Path, numbers: np.ndarray, lines: List[str], k: int, what: str) -> np.ndarray:
    """The first ``k`` numbers of each line as an ``(L, k)`` float64 array; lines with fewer raise."""
    tokens, counts, line_of, pos = split_lines(lines)
    short = np.flatnonzero(counts < k)
    if short.size:
        raise ValueError(f"{path}:{numbers[short[0]]}: malformed {what} {lines[short[0]].strip()!r}, "
                         f"expected {k} numbers")
    return parse_numbers(select(tokens, pos < k), np.float64, what,
                         lambda i: f"{path}:{numbers[i // k]}").reshape(-1, k)


def _read_off(path: Path, dtype: type) -> Tuple[np.ndarray, np.ndarray]:
    return _read_off_fast(path, path.read_bytes(), dtype) or _read_off_lines(path)


def _read_off_fast(path: Path, data: bytes, dtype: type) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """``_read_off_lines`` for well-formed files: after the header, the vertex and face lines are two blocks of
    bytes for numpy's C parsers. ``None`` where the careful reader must decide (and name the line)."""
    split = line_bounds(data)
    if split is None:
        return None
    data, _, bounds = split
    try:
        numbers, lines = content_lines(data[:bounds[min(len(bounds) - 1, 64)]].decode("utf-8", errors="replace"))
        nv, nf, pos = _off_header(path, numbers, lines)
    except ValueError:
        return None
    body = int(numbers[pos - 1])  # the line after the header, 0-based
    if body + nv + nf > len(bounds) - 1:
        return None
    verts = _table(data[bounds[body]:bounds[body + nv]], nv, dtype)
    block = data[bounds[body + nv]:bounds[body + nv + nf]]
    rows = int_rows(_COMMENT.sub(b"", block) if b"#" in block else block)
    if verts is None or rows is None or (nf and rows[0].min() < 1):  # a blank line puts the blocks off by one
        return None
    counts, values = rows
    first = np.cumsum(counts) - counts
    sizes = values[first]  # the k of 'k v1 ... vk [colour]'
    if (counts < sizes + 1).any():
        return None
    if nf and counts.max() == counts.min() == sizes.min() + 1 == sizes.max() + 1:
        refs = values.reshape(nf, -1)[:, 1:].ravel()  # all faces have k vertices and no colour
    else:
        k = np.arange(len(values)) - np.repeat(first, counts)
        refs = values[(k >= 1) & (k <= np.repeat(sizes, counts))]
    try:
        return verts, _triangulate(sizes, refs, nv, str)  # where=str: the careful reader names the line
    except ValueError:
        return None


def _off_header(path: Path, numbers: np.ndarray, lines: List[str]) -> Tuple[int, int, int]:
    """``(num_vertices, num_faces, header lines)`` from the first lines of an OFF file (``OFF``, ``COFF``, ...,
    with the counts on the next line or on the same one, as ModelNet's ``OFF490 518 0``)."""
    first = lines[0].split() if lines else [""]
    header = re.fullmatch(r"([A-Z]*OFF)(.*)", first[0])
    if header is None:
        where = f"{path}:{numbers[0]}" if lines else str(path)
        raise ValueError(f"{where}: not an OFF file, expected a first line 'OFF' (or 'OFF V F E')")
    count_tokens = ([header.group(2)] if header.group(2) else []) + first[1:]
    pos = 1
    if not count_tokens and len(lines) > 1:
        count_tokens, pos = lines[1].split(), 2
    if len(count_tokens) not in (2, 3) or not all(t.isdigit() for t in count_tokens):
        raise ValueError(f"{path}:{numbers[pos - 1]}: malformed OFF counts {' '.join(count_tokens)!r}, "
                         "expected 'num_vertices num_faces [num_edges]'")
    return int(count_tokens[0]), int(count_tokens[1]), pos


def _read_off_lines(path: Path) -> Tuple[np.ndarray, np.ndarray]:
    numbers, lines = read_lines(path)
    nv, nf, pos = _off_header(path, numbers, lines)
    if len(lines) < pos + nv + nf:
        raise ValueError(f"{path}:{numbers[-1]}: the file ends after {len(lines) - pos} of the {nv} vertex and "
                         f"{nf} face lines declared on line {numbers[pos - 1]}")
    vert_lines, face_lines = numbers[pos:pos + nv], numbers[pos + nv:pos + nv + nf]
    verts = _first_columns(path, vert_lines, lines[pos:pos + nv], 3, "vertex")
    check_finite_rows(verts, "vertex coordinates", _line_of(path, vert_lines))
    tokens, counts, line_of, tok_pos = split_lines(lines[pos + nv:pos + nv + nf])
    where = _line_of(path, face_lines)
    sizes = parse_numbers(select(tokens, tok_pos == 0), np.int64, "face size", where)
    short = np.flatnonzero(counts < sizes + 1)
    if short.size:
        raise ValueError(f"{where(short[0])}: malformed face {lines[pos + nv + short[0]].strip()!r}, "
                         f"expected 'k v1 ... vk' with k = {sizes[short[0]]} indices")
    ref = (tok_pos >= 1) & (tok_pos <= sizes[line_of])
    values = parse_numbers(select(tokens, ref), np.int64, "face vertex index", lambda i: where(line_of[ref][i]))
    return verts, _triangulate(sizes, values, nv, where)


def _read_ply_mesh(path: Path, dtype: type) -> Tuple[np.ndarray, np.ndarray]:
    ply = read_ply(path)
    verts = vertex_xyz(ply)
    check_finite_rows(verts, "vertex coordinates", lambda i: ply.where("vertex", i))
    strips = ply.elements.get("tristrips", {}).get("vertex_indices")
    if isinstance(strips, PlyList):
        counts, values = _strips_to_triangles(strips)
        return verts, _triangulate(counts, values, len(verts), lambda i: ply.where("tristrips", 0))
    face = ply.elements.get("face", {})
    lists = face.get("vertex_indices", face.get("vertex_index"))
    if lists is None:
        return verts, np.zeros((0, 3), dtype=np.int64)
    if not isinstance(lists, PlyList):
        raise ValueError(f"{path}: face property 'vertex_indices' must be a list property")
    return verts, _triangulate(lists.counts, lists.values.astype(np.int64), len(verts),
                               lambda i: ply.where("face", i))


def _strips_to_triangles(strips: PlyList) -> Tuple[np.ndarray, np.ndarray]:
    """Triangles of triangle strips (``-1`` restarts), alternate ones flipped to keep the winding;
    triangles that repeat a vertex (strip joins) are dropped. Returns ``(counts, values)`` of triangles."""
    v = strips.values  # in the file's integer type: half the memory traffic of int64
    if v.size < 3:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    a, b, c = v[:-2], v[1:-1], v[2:]  # triangle i has corners v[i], v[i + 1], v[i + 2]
    keep = (a >= 0) & (b >= 0) & (c >= 0) & (a != b) & (b != c) & (a != c)
    starts = np.concatenate([[0], np.flatnonzero(v == -1) + 1])
    odd = ((np.arange(v.size) - np.repeat(starts, np.diff(starts, append=v.size)))[:-2] & 1).astype(bool)
    second = np.where(odd, c, b)  # odd triangles of a strip are flipped (b + c - second wraps back exactly)
    tris = np.stack([a[keep], second[keep], (b + c - second)[keep]], axis=1).astype(np.int64)
    return np.full(len(tris), 3, dtype=np.int64), tris.reshape(-1)


def _read_stl(path: Path, dtype: type) -> Tuple[np.ndarray, np.ndarray]:
    data = path.read_bytes()
    n = int.from_bytes(data[80:84], "little") if len(data) >= 84 else -1
    if len(data) == 84 + 50 * n:
        corners = np.frombuffer(data, _STL_DTYPE, n, 84)["verts"]  # (n, 3, 3) float32, kept exact
        verts, index = _merge_vertices(corners)
        if not np.isfinite(verts).all():  # every corner is one of the verts
            check_finite_rows(corners.reshape(-1, 9), "vertex coordinates", lambda i: f"{path}: triangle {i}")
    elif data.lstrip()[:5].lower() == b"solid":
        verts, index = _merge_vertices(_read_stl_ascii(path))
    else:
        raise ValueError(f"{path}: not an STL file: binary STL has 84 + 50 * n bytes (n = {n} from the header "
                         f"gives {84 + 50 * n}), got {len(data)}; ascii STL starts with 'solid'")
    return verts, index.reshape(-1, 3)


def _merge_vertices(corners: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """The distinct vertices ``(V, 3)`` among ``corners (..., 3)`` (float32 or float64) in order of first use,
    and each corner's index among them ``(M,)``, ``M = corners.size // 3``.

    One ``np.sort`` of 64-bit keys groups the corners: a hash of the corner's bits in the high bits, its number
    in the low bits, so that equal corners come out together, in order of use (several times faster than
    ``np.unique(axis=0)`` or an argsort). The result is checked against the bits; if two different corners
    share a hash (rare), the corners of such hash groups are sorted exactly and numbered again.
    """
    corners = (corners + 0).reshape(-1, 3)  # a contiguous copy in which -0.0 is 0.0
    m = len(corners)
    if not m:
        return corners, np.zeros(0, dtype=np.int64)
    columns = _bit_columns(corners)
    key = columns[0] * _HASH[0]  # wraps modulo 2**64; the high bits depend on every bit of the corner
    for column, factor in zip(columns[1:], _HASH[1:]):
        key += column * factor
    low = _bits(m)
    key >>= low
    key <<= low
    order = _sort_packed(key, low)
    key >>= low  # the sorted hashes
    new = np.concatenate([[True], key[1:] != key[:-1]])  # where a hash group starts
    verts, index = _number_groups(corners, order, new)
    if all(np.array_equal(np.take(v, index), c) for v, c in zip(_bit_columns(verts), columns)):
        return verts, index
    differ = _differ(columns, order)
    group = np.cumsum(new)
    pos = np.flatnonzero(np.isin(group, group[1:][differ & ~new[1:]]))  # the hash groups holding two rows
    rows = order[pos]
    order[pos] = rows[np.lexsort((rows, *(c[rows] for c in columns), group[pos]))]
    return _number_groups(corners, order, np.concatenate([[True], _differ(columns, order)]))


def _bits(n: int) -> np.uint64:
    """The number of bits that hold the numbers ``0 ... n - 1``."""
    return np.uint64(max(n - 1, 1).bit_length())


def _sort_packed(key: np.ndarray, low: np.uint64) -> np.ndarray:
    """Sort ``key (N,)`` uint64, whose ``low`` bits are 0, in place by its high bits and then position; return the
    positions in that order (a stable argsort of the high bits: ``np.sort`` is several times faster)."""
    key |= np.arange(len(key), dtype=np.uint64)
    key.sort()
    return (key & ((np.uint64(1) << low) - np.uint64(1))).view(np.int64)


def _bit_columns(rows: np.ndarray) -> List[np.ndarray]:
    """The bits of each row of a contiguous ``(M, 3)`` float array as ``(M,)`` columns of 64 bits (one of 32 bits
    last for float32)."""
    words = rows.view(np.uint32)
    w = words.shape[1]
    wide = [np.ndarray((len(rows),), np.uint64, words, 4 * j, words.strides[:1]) for j in range(0, w - 1, 2)]
    return [c.copy() for c in wide + ([words[:, -1]] if w % 2 else [])]  # copies hash faster than strided views


def _number_groups(corners: np.ndarray, order: np.ndarray, new: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """``(verts (V, 3), index (M,))`` for corner numbers ``order (M,)`` sorted into groups of equal corners,
    ascending within a group, ``new (M,)`` true where a group starts: groups are numbered by first use."""
    starts = np.flatnonzero(new)
    first = order[starts]  # the first use of each group
    by_use = _sort_packed(first.astype(np.uint64) << _bits(len(first)), _bits(len(first)))
    rank = np.empty(len(first), dtype=np.int64)
    rank[by_use] = np.arange(len(first))
    index = np.empty(len(order), dtype=np.int64)
    index[order] = np.repeat(rank, np.diff(starts, append=len(order)))
    return np.take(corners, first[by_use], axis=0), index


def _differ(columns: List[np.ndarray], order: np.ndarray) -> np.ndarray:
    """``(M - 1,)``: whether each row (given by its bit ``columns``) taken in ``order`` differs from the one before."""
    differ = np.zeros(len(order) - 1, dtype=bool)
    for column in columns:
        c = np.take(column, order)
        differ |= c[1:] != c[:-1]
    return differ


def _read_stl_ascii(path: Path) -> np.ndarray:
    numbers, lines = read_lines(path)
    tokens, counts, line_of, pos = split_lines(lines)
    key = np.fromiter(map(_STL_KEYWORDS.get, map(str.lower, select(tokens, pos == 0)), repeat(-1)),
                      dtype=np.int64, count=len(lines))
    is_vertex = key == _STL_KEYWORDS["vertex"]
    bad = np.flatnonzero((key < 0) | (is_vertex & (counts != 4)))
    if bad.size:
        raise ValueError(f"{path}:{numbers[bad[0]]}: malformed STL line {lines[bad[0]].strip()!r}, expected 'facet "
                         "normal ...', 'outer loop', 'vertex x y z', 'endloop', 'endfacet' or 'solid'/'endsolid'")
    vert_lines = numbers[is_vertex]
    verts = parse_numbers(select(tokens, is_vertex[line_of] & (pos >= 1)), np.float64, "vertex coordinate",
                          lambda i: f"{path}:{vert_lines[i // 3]}").reshape(-1, 3)
    endloop = np.flatnonzero(key == _STL_KEYWORDS["endloop"])
    per_loop = np.diff(np.cumsum(is_vertex)[endloop], prepend=0)
    wrong = np.flatnonzero(per_loop != 3)
    if wrong.size:
        raise ValueError(f"{path}:{numbers[endloop[wrong[0]]]}: a facet needs 3 vertices, got {per_loop[wrong[0]]}")
    if len(verts) != 3 * len(endloop):
        raise ValueError(f"{path}:{numbers[-1]}: the file ends inside a facet, expected 'endloop'")
    check_finite_rows(verts, "vertex coordinates", _line_of(path, vert_lines))
    return verts.reshape(-1, 3, 3)


def _write_obj(path: Path, verts: np.ndarray, faces: np.ndarray, binary: bool) -> None:
    fmt = float_fmt(verts.dtype)
    with atomic_write(path, "w") as f:
        f.write("# written by geo4g\n")
        f.writelines(format_rows(verts, f"v {fmt} {fmt} {fmt}"))
        f.writelines(format_rows(faces + 1, "f %d %d %d"))


def _write_off(path: Path, verts: np.ndarray, faces: np.ndarray, binary: bool) -> None:
    fmt = float_fmt(verts.dtype)
    with atomic_write(path, "w") as f:
        f.write(f"OFF\n{len(verts)} {len(faces)} 0\n")
        f.writelines(format_rows(verts, f"{fmt} {fmt} {fmt}"))
        f.writelines(format_rows(faces, "3 %d %d %d"))


def _write_ply_mesh(path: Path, verts: np.ndarray, faces: np.ndarray, binary: bool) -> None:
    if len(verts) > np.iinfo(np.int32).max:
        raise ValueError(f"PLY faces are stored as int32, got {len(verts)} vertices")
    vertex = {c: verts[:, i] for i, c in enumerate("xyz")}
    write_ply(path, {"vertex": vertex, "face": {"vertex_indices": faces.astype(np.int32)}}, binary=binary)


def _write_stl(path: Path, verts: np.ndarray, faces: np.ndarray, binary: bool) -> None:
    tris = verts.astype(np.float32)[faces]
    corners = tris.astype(np.float64)  # float64: the cross product of large float32 edges would overflow
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    normals = np.divide(normals, length, out=np.zeros_like(normals), where=length > 0).astype(np.float32)
    if binary:
        records = np.zeros(len(faces), dtype=_STL_DTYPE)
        records["normal"], records["verts"] = normals, tris
        with atomic_write(path, "wb") as f:
            f.write(b"binary STL written by geo4g".ljust(80, b" "))
            f.write(np.uint32(len(faces)).astype("<u4").tobytes())
            f.write(records.tobytes())
        return
    facet = ("facet normal %.9g %.9g %.9g\n  outer loop\n" + "    vertex %.9g %.9g %.9g\n" * 3
             + "  endloop\nendfacet")
    with atomic_write(path, "w") as f:
        f.write("solid geo4g\n")
        f.writelines(format_rows(np.concatenate([normals, tris.reshape(-1, 9)], axis=1), facet))
        f.write("endsolid geo4g\n")


# each reader takes the path and the dtype to parse text numbers to (binary files keep their own)
_READERS = {"obj": _read_obj, "off": _read_off, "ply": _read_ply_mesh, "stl": _read_stl}
_WRITERS = {"obj": _write_obj, "off": _write_off, "ply": _write_ply_mesh, "stl": _write_stl}
