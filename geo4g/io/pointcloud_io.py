"""Point cloud files: PLY, XYZ, PTS, NPY, NPZ and PCD, with optional normals and per-point features."""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch

from geo4g._atomic import atomic_write
from geo4g.structures import Pointclouds

from ._common import (
    PathLike,
    check_file,
    check_finite_rows,
    check_points,
    check_rows_like,
    float_dtype,
    float_fmt,
    format_rows,
    load_table,
    parse_numbers,
    read_lines,
    resolve_format,
    split_lines,
    text_dtype,
    to_numpy,
    to_tensor,
)
from .pcd import read_pcd, write_pcd
from .ply import float_columns, read_ply, vertex_xyz, write_ply

__all__ = ["PointcloudData", "POINTCLOUD_FORMATS", "load_pointcloud", "load_pointclouds", "save_pointcloud"]

POINTCLOUD_FORMATS = ("ply", "xyz", "pts", "npy", "npz", "pcd")

_NORMAL_NAMES = (("nx", "ny", "nz"), ("normal_x", "normal_y", "normal_z"))

_Arrays = Tuple[np.ndarray, Optional[np.ndarray], Optional[np.ndarray], Tuple[str, ...]]


class PointcloudData(NamedTuple):
    """A loaded point cloud.

    Attributes:
        points: ``(N, 3)`` float.
        normals: ``(N, 3)`` float, or ``None`` when the file has none.
        features: ``(N, C)`` float (e.g. colours as stored, label columns), or ``None``.
        feature_names: the ``C`` feature names (PLY property names, NPZ
            ``feature_names``, else ``feature_0 ...``); ``()`` without features.
    """

    points: torch.Tensor
    normals: Optional[torch.Tensor]
    features: Optional[torch.Tensor]
    feature_names: Tuple[str, ...]


def load_pointcloud(path: PathLike, dtype: torch.dtype = torch.float32, format: Optional[str] = None) -> PointcloudData:
    """Load a point cloud from a PLY, XYZ, PTS, NPY, NPZ or PCD file.

    - PLY (ascii or binary): element ``vertex`` with ``x y z``; normals from
      ``nx ny nz`` (or ``normal_x ...``); every other scalar vertex property
      (colours, intensity, labels, ...) becomes a feature column, in file order.
      Other elements (faces) are ignored.
    - XYZ, PTS: whitespace-separated text, one point per line, ``#`` comments
      and blank lines skipped. Columns: ``x y z``, then, with 6 or more
      columns, ``nx ny nz``, then features; with 4 or 5 columns the extra ones
      are features. PTS (ShapeNetPart) may start with a line holding only the
      number of points. A file without points gives ``(0, 3)`` points and no
      normals or features.
    - NPY: an ``(N, D)`` array, ``D >= 3``, with the same column layout.
    - NPZ: arrays ``points (N, 3)`` and optionally ``normals (N, 3)``,
      ``features (N, C)``, ``feature_names (C,)``.
    - PCD (``DATA ascii``, ``binary`` or ``binary_compressed``): fields ``x y z``;
      normals from ``normal_x normal_y normal_z`` (or ``nx ny nz``); every other
      field becomes features, in file order: a packed colour ``rgb`` / ``rgba``
      becomes ``r g b`` / ``r g b a`` columns (0-255), a field ``f`` with ``COUNT C > 1``
      becomes ``f_0 ... f_{C-1}``, padding fields ``_`` are skipped; two fields that
      give one column name (``r`` and ``rgb``) raise. The points of an
      organized cloud (``HEIGHT > 1``) come row by row; missing points (NaN) raise.

    Args:
        path: the file.
        dtype: floating dtype of the returned tensors.
        format: one of ``POINTCLOUD_FORMATS``; default from the file extension.

    Returns:
        ``PointcloudData(points (N, 3), normals (N, 3) | None, features (N, C) | None, feature_names)``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: unknown format, or a malformed file or non-finite values
            (naming the file and line, or row).
    """
    path, fmt = resolve_format(path, format, POINTCLOUD_FORMATS, "point cloud")
    dtype = float_dtype(dtype)
    check_file(path, "point cloud")
    points, normals, features, names = _READERS[fmt](path, text_dtype(dtype))
    return PointcloudData(*(None if x is None else to_tensor(x, dtype) for x in (points, normals, features)), names)


def load_pointclouds(
    paths: Sequence[PathLike], dtype: torch.dtype = torch.float32, format: Optional[str] = None
) -> Pointclouds:
    """Load several point cloud files (see ``load_pointcloud``) into one ``Pointclouds`` batch.

    Normals (features) are kept when every file has them; a batch where only
    some files have them, or features of different widths, raises ``ValueError``
    naming the first file that differs.
    """
    paths = list(paths)
    loaded = [load_pointcloud(p, dtype, format) for p in paths]
    for field in ("normals", "features"):
        widths = [None if getattr(c, field) is None else getattr(c, field).shape[1] for c in loaded]
        odd = next((p for p, w in zip(paths, widths) if w != widths[0]), None)
        if odd is not None:
            raise ValueError(f"{field} must be present with the same width in every file of the batch or in "
                             f"none; {odd} differs from {paths[0]}")
    return Pointclouds(
        points=[c.points for c in loaded],
        normals=[c.normals for c in loaded] if loaded and loaded[0].normals is not None else None,
        features=[c.features for c in loaded] if loaded and loaded[0].features is not None else None,
    )


def save_pointcloud(
    path: PathLike,
    points,
    normals=None,
    features=None,
    feature_names: Optional[Sequence[str]] = None,
    binary: Optional[bool] = None,
    format: Optional[str] = None,
) -> None:
    """Save a point cloud atomically (a failed save leaves any previous file untouched).

    Args:
        path: destination file; its folder must exist.
        points: ``(N, 3)`` float tensor or numpy array, finite.
        normals: ``(N, 3)`` float, or ``None``.
        features: ``(N, C)`` float, or ``None``.
        feature_names: ``C`` names for the features, stored by PLY (as
            property names) and NPZ; default ``feature_0 ...``.
        binary: PLY and PCD: binary (default) or ascii. XYZ and PTS are text and
            reject ``binary=True``.
        format: one of ``POINTCLOUD_FORMATS``; default from the file extension.

    Normals and features are written in the points' dtype; PCD stores them as
    fields ``x y z``, ``normal_x normal_y normal_z`` and one field per feature name
    (a ``HEIGHT 1`` cloud with the header PCL writes; a feature named ``rgb`` or ``rgba``
    raises, as PCD readers take such a field for a packed colour). XYZ, PTS and NPY
    store the columns ``points [normals] [features]``; as their reader takes
    columns 4-6 of a 6+ column file as normals, features of 3 or more columns
    need normals there (or use PLY / NPZ).

    Raises:
        TypeError / ValueError: naming ``points``, ``normals``, ``features`` or
            ``feature_names`` for a wrong type, shape or dtype, non-finite
            values or mismatched lengths; ``ValueError`` for an unknown format.
    """
    path, fmt = resolve_format(path, format, POINTCLOUD_FORMATS, "point cloud")
    points = check_points(points, "points")
    n = points.shape[0]
    if normals is not None:
        normals = check_rows_like(normals, "normals", n, 3, "(N, 3)")
    if features is not None:
        features = check_rows_like(features, "features", n, None, "(N, C)")
    names = _check_feature_names(feature_names, features)
    if binary and fmt in ("xyz", "pts"):
        raise ValueError(f"binary=True is not supported for .{fmt}, a text format; use .ply or .npy")
    if fmt in ("xyz", "pts", "npy") and normals is None and features is not None and features.shape[1] >= 3:
        raise ValueError(f"features with {features.shape[1]} >= 3 columns and no normals cannot be saved as .{fmt}: "
                         "its reader takes columns 4-6 as normals; pass normals, or save as .ply or .npz")
    pts = to_numpy(points)
    arrays = [pts] + [None if x is None else to_numpy(x).astype(pts.dtype) for x in (normals, features)]
    _WRITERS[fmt](path, *arrays, names, binary is not False)


def _check_feature_names(feature_names, features) -> Tuple[str, ...]:
    if features is None:
        if feature_names is not None:
            raise ValueError("feature_names were given without features")
        return ()
    c = features.shape[1]
    if feature_names is None:
        return tuple(f"feature_{i}" for i in range(c))
    names = tuple(feature_names) if not isinstance(feature_names, str) else (feature_names,)
    reserved = {"x", "y", "z"} | set(_NORMAL_NAMES[0]) | set(_NORMAL_NAMES[1])
    if (len(names) != c or len(set(names)) != c
            or not all(isinstance(s, str) and s and not any(ch.isspace() for ch in s) and s not in reserved
                       for s in names)):
        raise ValueError(f"feature_names must be {c} distinct non-empty names without whitespace (one per feature "
                         f"column), other than x, y, z and normal names, got {names!r}")
    return names


def _split_columns(path: Path, table: np.ndarray) -> _Arrays:
    """Split an ``(N, D)`` table into points, normals (when ``D >= 6``) and features."""
    if table.ndim != 2 or table.shape[1] < 3:
        raise ValueError(f"{path}: expected an (N, D) table with D >= 3 columns (x y z ...), got shape {table.shape}")
    d = table.shape[1]
    normals = table[:, 3:6] if d >= 6 else None
    extra = table[:, 6:] if d >= 6 else table[:, 3:]
    features = extra if extra.shape[1] else None
    names = tuple(f"feature_{i}" for i in range(extra.shape[1]))
    return table[:, :3], normals, features, names


def _read_text(path: Path, dtype: type, count_line: bool) -> _Arrays:
    table = load_table(path, dtype, delimiter=" ")  # the fast path, single spaces first
    table = load_table(path, dtype) if table is None else table
    if table is None or table.shape[1] < 3 or not np.isfinite(table).all():
        table = _read_text_lines(path, count_line)  # names the line of a problem (or drops a count line)
    return _split_columns(path, table)


def _read_text_lines(path: Path, count_line: bool) -> np.ndarray:
    """The careful reader of XYZ / PTS text: the ``(N, D)`` float64 table."""
    numbers, lines = read_lines(path)
    if count_line and lines and len(lines[0].split()) == 1:
        count = lines[0].strip()
        if not count.isdigit() or int(count) != len(lines) - 1:
            raise ValueError(f"{path}:{numbers[0]}: a one-value first line must be the number of points "
                             f"({len(lines) - 1}), got {count!r}")
        numbers, lines = numbers[1:], lines[1:]
    if not lines:
        return np.zeros((0, 3))
    tokens, counts, _, _ = split_lines(lines)
    d = int(counts[0])
    if d < 3:
        raise ValueError(f"{path}:{numbers[0]}: expected at least 3 values (x y z), got {d}")
    odd = np.flatnonzero(counts != d)
    if odd.size:
        raise ValueError(f"{path}:{numbers[odd[0]]}: expected {d} values like line {numbers[0]}, "
                         f"got {counts[odd[0]]}")

    def where(i: int) -> str:
        return f"{path}:{numbers[i]}"

    table = parse_numbers(tokens, np.float64, "value", lambda i: where(i // d)).reshape(-1, d)
    check_finite_rows(table, "point values", where)
    return table


def _read_xyz(path: Path, dtype: type) -> _Arrays:
    return _read_text(path, dtype, count_line=False)


def _read_pts(path: Path, dtype: type) -> _Arrays:
    return _read_text(path, dtype, count_line=True)


def _load_numpy(path: Path):
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path}: not a readable .{path.suffix.lstrip('.') or 'npy'} file: {err}") from None


def _read_npy(path: Path, dtype: type) -> _Arrays:
    table = _load_numpy(path)
    if not isinstance(table, np.ndarray) or table.dtype.kind not in "fiu":
        raise ValueError(f"{path}: expected one numeric (N, D) array, got {type(table).__name__}"
                         f"{'' if not isinstance(table, np.ndarray) else ' of dtype ' + str(table.dtype)}")
    arrays = _split_columns(path, table)
    check_finite_rows(table, "point values", lambda i: f"{path}: row {i}")
    return arrays


def _read_npz(path: Path, dtype: type) -> _Arrays:
    archive = _load_numpy(path)
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: expected an .npz archive with an array 'points', got a single array")
    with archive:
        if "points" not in archive.files:
            raise ValueError(f"{path}: expected an array 'points' (N, 3), got arrays {archive.files}")
        arrays = {k: archive[k] for k in ("points", "normals", "features", "feature_names") if k in archive.files}
    n = len(arrays["points"])
    for key, width in (("points", 3), ("normals", 3), ("features", None)):
        x = arrays.get(key)
        if x is None:
            continue
        if x.ndim != 2 or x.shape[0] != n or (width and x.shape[1] != width) or x.dtype.kind not in "fiu":
            raise ValueError(f"{path}: array {key!r} must be numeric of shape ({n}, {width or 'C'}), "
                             f"got {x.dtype} of shape {x.shape}")
        check_finite_rows(x, key, lambda i: f"{path}: {key} row {i}")
    features = arrays.get("features")
    names = tuple(str(s) for s in arrays.get("feature_names", ()))
    if features is not None and len(names) != features.shape[1]:
        names = tuple(f"feature_{i}" for i in range(features.shape[1]))
    return arrays["points"], arrays.get("normals"), features, names if features is not None else ()


def _read_ply_cloud(path: Path, dtype: type) -> _Arrays:
    ply = read_ply(path)
    points = vertex_xyz(ply)
    vertex = ply.elements["vertex"]
    normal_names = next((ns for ns in _NORMAL_NAMES if all(isinstance(vertex.get(c), np.ndarray) for c in ns)), ())
    names = tuple(k for k, v in vertex.items() if isinstance(v, np.ndarray) and k not in ("x", "y", "z") + normal_names)
    normals = float_columns(vertex, normal_names) if normal_names else None
    features = float_columns(vertex, names) if names else None
    for what, x in (("point coordinates", points), ("normals", normals), ("features", features)):
        if x is not None:
            check_finite_rows(x, what, lambda i: ply.where("vertex", i))
    return points, normals, features, names


def _read_pcd_cloud(path: Path, dtype: type) -> _Arrays:
    fields = read_pcd(path).fields
    if not all(c in fields and fields[c].ndim == 1 for c in "xyz"):
        raise ValueError(f"{path}: expected PCD fields x, y, z (COUNT 1), got FIELDS {' '.join(fields) or '(none)'}")
    normal_names = next((ns for ns in _NORMAL_NAMES if all(c in fields and fields[c].ndim == 1 for c in ns)), ())
    columns, source = {}, {}
    for name, values in fields.items():
        if name in ("x", "y", "z") + normal_names:
            continue
        if name in ("rgb", "rgba") and values.dtype == np.uint32 and values.ndim == 1:  # a packed colour
            new = [(c, (values >> shift) & 255) for c, shift in zip("rgba", (16, 8, 0, 24)[:len(name)])]
        elif values.ndim == 2:
            new = [(f"{name}_{i}", values[:, i]) for i in range(values.shape[1])]
        else:
            new = [(name, values)]
        for column, column_values in new:
            if column in columns:
                raise ValueError(f"{path}: PCD fields {source[column]!r} and {name!r} both give a feature column "
                                 f"named {column!r}")
            columns[column], source[column] = column_values, name
    points = float_columns(fields, "xyz")
    normals = float_columns(fields, normal_names) if normal_names else None
    features = float_columns(columns, list(columns)) if columns else None
    for what, x in (("point coordinates", points), ("normals", normals), ("features", features)):
        if x is not None:
            check_finite_rows(x, what, lambda i: f"{path}: point {i}")
    return points, normals, features, tuple(columns)


def _write_pcd_cloud(path: Path, points, normals, features, names, binary) -> None:
    packed = [c for c in names if c in ("rgb", "rgba")]
    if packed:
        raise ValueError(f"feature_names {packed} cannot be saved as .pcd: a PCD field {packed[0]!r} is read back as a "
                         "packed colour (its bytes become r, g, b columns); name the colour columns 'r', 'g', 'b'")
    fields = {c: points[:, i] for i, c in enumerate("xyz")}
    if normals is not None:
        fields.update({c: normals[:, i] for i, c in enumerate(_NORMAL_NAMES[1])})
    if features is not None:
        fields.update({c: features[:, i] for i, c in enumerate(names)})
    write_pcd(path, fields, binary=binary)


def _write_text(path: Path, points, normals, features, names, binary) -> None:
    table = np.concatenate([x for x in (points, normals, features) if x is not None], axis=1)
    with atomic_write(path, "w") as f:
        f.writelines(format_rows(table, " ".join([float_fmt(table.dtype)] * table.shape[1])))


def _write_npy(path: Path, points, normals, features, names, binary) -> None:
    table = np.concatenate([x for x in (points, normals, features) if x is not None], axis=1)
    with atomic_write(path, "wb") as f:
        np.save(f, table)


def _write_npz(path: Path, points, normals, features, names, binary) -> None:
    arrays = {"points": points, "normals": normals, "features": features,
              "feature_names": np.array(names, dtype=str) if features is not None else None}
    with atomic_write(path, "wb") as f:
        np.savez(f, **{k: v for k, v in arrays.items() if v is not None})


def _write_ply_cloud(path: Path, points, normals, features, names, binary) -> None:
    vertex = {c: points[:, i] for i, c in enumerate("xyz")}
    if normals is not None:
        vertex.update({c: normals[:, i] for i, c in enumerate(_NORMAL_NAMES[0])})
    if features is not None:
        vertex.update({c: features[:, i] for i, c in enumerate(names)})
    write_ply(path, {"vertex": vertex}, binary=binary)


# each reader takes the path and the dtype to parse text numbers to (binary files keep their own)
_READERS = {"ply": _read_ply_cloud, "xyz": _read_xyz, "pts": _read_pts, "npy": _read_npy, "npz": _read_npz,
            "pcd": _read_pcd_cloud}
_WRITERS = {"ply": _write_ply_cloud, "xyz": _write_text, "pts": _write_text, "npy": _write_npy, "npz": _write_npz,
            "pcd": _write_pcd_cloud}
