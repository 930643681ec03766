"""Point cloud files: round trips with normals and features, column layouts, and every bad-input path."""
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from geo4g.io import POINTCLOUD_FORMATS, PointcloudData, load_pointcloud, load_pointclouds, save_pointcloud
from geo4g.structures import Pointclouds

ENCODINGS = [("ply", True), ("ply", False), ("xyz", None), ("pts", None), ("npy", None), ("npz", None)]


def random_cloud(n=50, channels=2, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    points = (torch.randn(n, 3, generator=g, dtype=torch.float64) * 5).to(dtype)
    normals = torch.nn.functional.normalize(torch.randn(n, 3, generator=g, dtype=torch.float64), dim=1).to(dtype)
    features = torch.rand(n, channels, generator=g, dtype=torch.float64).to(dtype)
    return points, normals, features


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("ext,binary", ENCODINGS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("fields", ["points", "normals", "features", "all"])
def test_round_trip_exactly(tmp_path, ext, binary, dtype, fields):
    points, normals, features = random_cloud(dtype=dtype)
    normals = normals if fields in ("normals", "all") else None
    features = features if fields in ("features", "all") else None
    path = tmp_path / f"cloud.{ext}"
    save_pointcloud(path, points, normals=normals, features=features, binary=binary)
    got = load_pointcloud(path, dtype=dtype)
    assert isinstance(got, PointcloudData)
    assert got.points.dtype == dtype and torch.equal(got.points, points)
    assert (got.normals is None) == (normals is None) and (normals is None or torch.equal(got.normals, normals))
    assert (got.features is None) == (features is None)
    if features is not None:
        assert torch.equal(got.features, features) and got.feature_names == ("feature_0", "feature_1")
    else:
        assert got.feature_names == ()


@pytest.mark.parametrize("ext,binary", [("ply", True), ("ply", False), ("npz", None)])
def test_feature_names_are_kept_by_ply_and_npz(tmp_path, ext, binary):
    points, _, features = random_cloud(channels=3)
    save_pointcloud(tmp_path / f"c.{ext}", points, features=features, feature_names=["red", "green", "blue"],
                    binary=binary)
    got = load_pointcloud(tmp_path / f"c.{ext}")
    assert got.normals is None and got.feature_names == ("red", "green", "blue")
    assert torch.equal(got.features, features)


finite = st.floats(allow_nan=False, allow_infinity=False, width=32)


@settings(max_examples=40, deadline=None)
@given(table=hnp.arrays(np.float32, st.tuples(st.integers(0, 15), st.sampled_from([3, 4, 5, 6, 8])),
                        elements=finite),
       encoding=st.sampled_from(ENCODINGS))
def test_any_float32_table_round_trips(table, encoding):
    ext, binary = encoding
    points = table[:, :3]
    normals = table[:, 3:6] if table.shape[1] >= 6 else None
    features = table[:, 6:] if table.shape[1] >= 6 else table[:, 3:]
    features = features if features.shape[1] else None
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"c.{ext}"
        save_pointcloud(path, points, normals, features, binary=binary)
        got = load_pointcloud(path)
    assert np.array_equal(got.points.numpy(), points)
    if ext in ("xyz", "pts") and len(table) == 0:
        return  # an empty text file has no columns to tell normals or features
    for x, y in ((got.normals, normals), (got.features, features)):
        assert (x is None) == (y is None) and (y is None or np.array_equal(x.numpy(), y))


@pytest.mark.parametrize("columns,normals,features", [(3, False, 0), (4, False, 1), (5, False, 2), (6, True, 0),
                                                       (7, True, 1)])
def test_xyz_column_layout(tmp_path, columns, normals, features):
    rows = "\n".join(" ".join(str(r * 10 + c) for c in range(columns)) for r in range(4))
    got = load_pointcloud(write(tmp_path, "c.xyz", f"# header comment\n\n{rows}\n"))
    assert got.points[1].tolist() == [10, 11, 12]
    assert (got.normals is not None) == normals
    if normals:
        assert got.normals[1].tolist() == [13, 14, 15]
    assert (0 if got.features is None else got.features.shape[1]) == features


def test_shapenetpart_pts_with_and_without_count_line(tmp_path):
    plain = load_pointcloud(write(tmp_path, "a.pts", "0.1 0.2 0.3\n0.4 0.5 0.6\n"))
    counted = load_pointcloud(write(tmp_path, "b.pts", "2\n0.1 0.2 0.3\n0.4 0.5 0.6\n"))
    assert torch.equal(plain.points, counted.points) and plain.points.shape == (2, 3)
    with pytest.raises(ValueError, match=r"c\.pts:1: a one-value first line must be the number of points \(2\)"):
        load_pointcloud(write(tmp_path, "c.pts", "3\n0.1 0.2 0.3\n0.4 0.5 0.6\n"))


def test_ply_colours_and_pcl_normal_names_become_features_and_normals(tmp_path):
    text = ("ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\nproperty float z\n"
            "property float normal_x\nproperty float normal_y\nproperty float normal_z\n"
            "property uchar red\nproperty uchar green\nproperty uchar blue\n"
            "element face 0\nproperty list uchar int vertex_indices\nend_header\n"
            "0 0 0 0 0 1 255 0 0\n1 0 0 0 1 0 0 128 0\n")
    got = load_pointcloud(write(tmp_path, "c.ply", text))
    assert got.normals.tolist() == [[0, 0, 1], [0, 1, 0]]
    assert got.feature_names == ("red", "green", "blue") and got.features.tolist() == [[255, 0, 0], [0, 128, 0]]


def test_empty_clouds_round_trip(tmp_path):
    for ext, binary in ENCODINGS:
        save_pointcloud(tmp_path / f"e.{ext}", torch.zeros(0, 3), binary=binary)
        assert load_pointcloud(tmp_path / f"e.{ext}").points.shape == (0, 3)


def test_normals_and_features_are_cast_to_the_points_dtype(tmp_path):
    points, normals, features = random_cloud()
    save_pointcloud(tmp_path / "c.npz", points, normals.double(), features.numpy().astype(np.float64))
    with np.load(tmp_path / "c.npz") as archive:
        assert archive["normals"].dtype == np.float32 and archive["features"].dtype == np.float32


def test_load_pointclouds_gives_a_batch_and_rejects_mixed_normals(tmp_path):
    paths = []
    for i in range(3):
        points, normals, _ = random_cloud(n=10 + i, seed=i)
        paths.append(tmp_path / f"c{i}.{['ply', 'xyz', 'npz'][i]}")
        save_pointcloud(paths[-1], points, normals)
    batch = load_pointclouds(paths)
    assert isinstance(batch, Pointclouds) and len(batch) == 3 and batch.features_list() is None
    for i, (p, n) in enumerate(zip(batch.points_list(), batch.normals_list())):
        points, normals, _ = random_cloud(n=10 + i, seed=i)
        assert torch.equal(p, points) and torch.equal(n, normals)
    save_pointcloud(tmp_path / "bare.npy", random_cloud()[0])
    with pytest.raises(ValueError, match=r"normals must be present .*bare\.npy differs"):
        load_pointclouds(paths + [tmp_path / "bare.npy"])


# bad input ----------------------------------------------------------------------
def test_missing_file_and_unknown_extension(tmp_path):
    with pytest.raises(FileNotFoundError, match="gone.xyz"):
        load_pointcloud(tmp_path / "gone.xyz")
    with pytest.raises(ValueError, match=r"\.las.*\.ply, \.xyz, \.pts, \.npy, \.npz"):
        load_pointcloud(write(tmp_path, "c.las", ""))
    with pytest.raises(ValueError, match=r"format='las'"):
        save_pointcloud(tmp_path / "c.xyz", torch.zeros(1, 3), format="las")
    assert POINTCLOUD_FORMATS == ("ply", "xyz", "pts", "npy", "npz", "pcd")


@pytest.mark.parametrize("name,text,line,match", [
    ("c.xyz", "0 0 0\n1 1 1\n2 2\n", 3, "expected 3 values like line 1, got 2"),
    ("c.xyz", "0 0\n1 1\n", 1, "at least 3 values"),
    ("c.xyz", "0 0 0\n\n# c\n1 one 1\n", 4, "malformed value 'one'"),
    ("c.xyz", "0 0 0\n1 inf 1\n", 2, "point values must be finite"),
    ("c.pts", "1\n0 0 0\n1 1 1\n", 1, "number of points"),
])
def test_malformed_text_names_file_and_line(tmp_path, name, text, line, match):
    path = write(tmp_path, name, text)
    with pytest.raises(ValueError, match=match) as info:
        load_pointcloud(path)
    assert f"{path}:{line}:" in str(info.value)


def test_malformed_numpy_files_name_the_file(tmp_path):
    np.save(tmp_path / "two.npy", np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"two\.npy: expected an \(N, D\) table with D >= 3"):
        load_pointcloud(tmp_path / "two.npy")
    np.save(tmp_path / "nan.npy", np.array([[0, 0, 0], [0, np.nan, 0]]))
    with pytest.raises(ValueError, match=r"nan\.npy: row 1: point values must be finite"):
        load_pointcloud(tmp_path / "nan.npy")
    (tmp_path / "junk.npy").write_bytes(b"not numpy at all")
    with pytest.raises(ValueError, match=r"junk\.npy: not a readable \.npy file"):
        load_pointcloud(tmp_path / "junk.npy")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match=r"obj\.npy: not a readable"):
        load_pointcloud(tmp_path / "obj.npy")
    np.savez(tmp_path / "nopoints.npz", pos=np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"nopoints\.npz: expected an array 'points' \(N, 3\), got arrays \['pos'\]"):
        load_pointcloud(tmp_path / "nopoints.npz")
    np.savez(tmp_path / "short.npz", points=np.zeros((2, 3)), normals=np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"short\.npz: array 'normals' must be numeric of shape \(2, 3\)"):
        load_pointcloud(tmp_path / "short.npz")
    with open(tmp_path / "arr.npz", "wb") as f:
        np.save(f, np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"arr\.npz: expected an \.npz archive"):
        load_pointcloud(tmp_path / "arr.npz", format="npz")


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(points=torch.tensor([[0.0, float("nan"), 0]])), ValueError, "points must be finite"),
    (dict(points=torch.zeros(4, 2)), ValueError, "points must have last dimension 3"),
    (dict(points=torch.zeros(4, 3, dtype=torch.int32)), TypeError, "points must be a floating point"),
    (dict(points="points"), TypeError, "points must be a torch.Tensor or numpy.ndarray"),
    (dict(points=torch.zeros(4, 3), normals=torch.zeros(3, 3)), ValueError, r"normals must have one row per point"),
    (dict(points=torch.zeros(4, 3), normals=torch.zeros(4, 2)), ValueError, "normals must have last dimension 3"),
    (dict(points=torch.zeros(4, 3), features=torch.zeros(4)), ValueError, "features must have 2 dimensions"),
    (dict(points=torch.zeros(4, 3), features=torch.full((4, 1), float("inf"))), ValueError, "features must be finite"),
    (dict(points=torch.zeros(4, 3), features=torch.zeros(4, 3)), ValueError, "features with 3 >= 3 columns"),
    (dict(points=torch.zeros(4, 3), feature_names=["a"]), ValueError, "feature_names were given without features"),
    (dict(points=torch.zeros(4, 3), features=torch.zeros(4, 2), feature_names=["a"]), ValueError, "feature_names"),
    (dict(points=torch.zeros(4, 3), features=torch.zeros(4, 2), feature_names=["a", "a"]), ValueError,
     "feature_names"),
    (dict(points=torch.zeros(4, 3), features=torch.zeros(4, 2), feature_names=["a b", "c"]), ValueError,
     "feature_names"),
    (dict(points=torch.zeros(4, 3), features=torch.zeros(4, 1), feature_names=["nx"]), ValueError, "feature_names"),
    (dict(points=torch.zeros(4, 3), binary=True), ValueError, "binary=True is not supported for .xyz"),
])
def test_save_rejects_bad_input_naming_the_argument(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        save_pointcloud(tmp_path / "c.xyz", **kwargs)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("ext,binary", ENCODINGS)
def test_failed_save_keeps_the_previous_file_and_leaves_no_temp(tmp_path, monkeypatch, ext, binary):
    path = tmp_path / f"c.{ext}"
    save_pointcloud(path, *random_cloud(seed=1), binary=binary)
    before = path.read_bytes()

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        save_pointcloud(path, *random_cloud(seed=2), binary=binary)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


# fast path ----------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(20))
def test_text_fast_path_matches_careful_reader(tmp_path, seed):
    """XYZ / PTS files with single or mixed spacing, tabs, comments, blank lines, exponents and CRLF line ends
    give what the careful line reader gives, as float32 (numpy rounds the parsed double) and float64."""
    from geo4g.io import pointcloud_io

    rng = np.random.default_rng(seed)
    table = rng.normal(size=(int(rng.integers(1, 300)), int(rng.integers(3, 9)))) * 10.0 ** rng.integers(-8, 8)
    spaced = rng.random() < 0.5
    forms = ["%.9g", "%.17g", "%.4e", "%.6f", "%+g"]
    lines = []
    for row in table:
        gaps = [" "] * len(row) if spaced else [[" ", "  ", "\t", " \t"][k] for k in rng.integers(4, size=len(row))]
        lines.append("".join(g * (j > 0) + forms[rng.integers(len(forms))] % x for j, (g, x) in
                             enumerate(zip(gaps, row))))
        if not spaced and rng.random() < 0.05:
            lines.append(["", "# comment", "   "][rng.integers(3)])
    newline = "\r\n" if rng.random() < 0.3 else "\n"
    path = tmp_path / f"c.{['xyz', 'pts'][seed % 2]}"
    path.write_bytes((newline.join(lines) + newline).encode())
    table = pointcloud_io._read_text_lines(path, count_line=seed % 2 == 1)
    fast = pointcloud_io.load_table(path, np.float64, delimiter=" " if spaced else None)
    assert fast is not None and np.array_equal(fast, table)  # the fast path reads these files
    careful = pointcloud_io._split_columns(path, table)
    for dtype in (torch.float32, torch.float64):
        got = load_pointcloud(path, dtype=dtype)
        for x, y in zip(got[:3], careful[:3]):
            assert (x is None) == (y is None) and (x is None or torch.equal(x, torch.from_numpy(y).to(dtype)))
        assert got.feature_names == careful[3]


def test_malformed_line_deep_in_a_big_text_file_is_named(tmp_path):
    path = tmp_path / "big.xyz"
    save_pointcloud(path, *random_cloud(n=50000))
    lines = path.read_text().splitlines()
    lines[34567] = "1 2 3 4 five 6 0.5 0.5"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=f"{path}:34568: malformed value 'five'"):
        load_pointcloud(path)
    lines[34567] = "1 2 3 4 5 6 7"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=f"{path}:34568: expected 8 values like line 1, got 7"):
        load_pointcloud(path)
