"""The PLY parser and writer: encodings, property types, lists, skipped elements, strips and malformed files."""
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from geo4g.io import load_mesh
from geo4g.io.ply import PlyList, read_ply, write_ply

IGEA = Path("/work/shared/data/common3d/igea.ply")
HEADER_XYZ = "property float x\nproperty float y\nproperty float z\n"


def binary_ply(path, endian, elements):
    """Write a binary PLY by hand with struct: ``elements`` is ``[(name, header lines, rows)]``, each row a list of
    ``(struct code, value or list)``; a list value is written as a uchar/other count then its items."""
    fmt = {"<": "binary_little_endian", ">": "binary_big_endian"}[endian]
    head = f"ply\nformat {fmt} 1.0\ncomment by hand\n"
    body = b""
    for name, props, rows in elements:
        head += f"element {name} {len(rows)}\n{props}"
        for row in rows:
            for code, value in row:
                if isinstance(value, list):
                    count_code, item_code = code
                    body += struct.pack(endian + count_code, len(value))
                    body += struct.pack(f"{endian}{len(value)}{item_code}", *value)
                else:
                    body += struct.pack(endian + code, value)
    path.write_bytes((head + "end_header\n").encode() + body)
    return path


def naive_strips(indices):
    """Triangle strips decoded one triangle at a time: -1 restarts, odd triangles flipped, degenerate ones dropped."""
    tris, strip = [], []
    for i in list(indices) + [-1]:
        if i == -1:
            for k in range(len(strip) - 2):
                a, b, c = strip[k:k + 3]
                if len({a, b, c}) == 3:
                    tris.append([a, c, b] if k % 2 else [a, b, c])
            strip = []
        else:
            strip.append(i)
    return np.array(tris, dtype=np.int64).reshape(-1, 3)


@pytest.mark.parametrize("endian", ["<", ">"])
def test_binary_both_endians_with_skipped_elements_and_mixed_polygons(tmp_path, endian):
    verts = [(0.0, 0.0, 0.0), (1.0, 0.0, 0.0), (1.0, 1.0, 0.0), (0.0, 1.0, 0.0), (2.0, 2.0, 2.0)]
    path = binary_ply(tmp_path / "m.ply", endian, [
        ("vertex", HEADER_XYZ + "property uchar red\nproperty double quality\n",
         [[("f", x), ("f", y), ("f", z), ("B", 7), ("d", 0.5)] for x, y, z in verts]),
        ("edge", "property int vertex1\nproperty list ushort int path\n",
         [[("i", 0), (("H", "i"), [1, 2, 3])], [("i", 1), (("H", "i"), [])]]),
        ("face", "property uchar flags\nproperty list uchar uint vertex_indices\nproperty float area\n",
         [[("B", 1), (("B", "I"), [0, 1, 2, 3]), ("f", 1.0)], [("B", 2), (("B", "I"), [1, 4, 2]), ("f", 2.0)]]),
        ("trailer", "property short s\n", [[("h", -5)]]),
    ])
    ply = read_ply(path)
    assert list(ply.elements) == ["vertex", "edge", "face", "trailer"]
    assert ply.elements["vertex"]["red"].tolist() == [7] * 5
    assert ply.elements["edge"]["path"].counts.tolist() == [3, 0]
    assert ply.elements["face"]["area"].tolist() == [1.0, 2.0]
    assert ply.elements["trailer"]["s"].tolist() == [-5]
    verts_t, faces = load_mesh(path)
    assert verts_t.tolist() == [list(v) for v in verts]
    assert faces.tolist() == [[0, 1, 2], [0, 2, 3], [1, 4, 2]]


def test_binary_fixed_lists_take_the_vectorised_path_and_match_row_loop(tmp_path):
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 100, size=(500, 3))
    rows = [[(("B", "i"), f.tolist())] for f in faces]
    fixed = read_ply(binary_ply(tmp_path / "f.ply", "<", [("face", "property list uchar int vertex_indices\n",
                                                                rows)]))
    mixed_rows = rows + [[(("B", "i"), [1, 2, 3, 4])]]
    mixed = read_ply(binary_ply(tmp_path / "m.ply", "<", [("face", "property list uchar int vertex_indices\n",
                                                                mixed_rows)]))
    got_fixed, got_mixed = fixed.elements["face"]["vertex_indices"], mixed.elements["face"]["vertex_indices"]
    assert np.array_equal(got_fixed.values.reshape(-1, 3), faces)
    assert got_mixed.counts.tolist() == [3] * 500 + [4]
    assert np.array_equal(got_mixed.values[:1500].reshape(-1, 3), faces)


@settings(max_examples=30, deadline=None)
@given(
    data=st.data(),
    binary=st.booleans(),
    code=st.sampled_from(["i1", "u1", "i2", "u2", "i4", "u4", "f4", "f8"]),
)
def test_write_then_read_round_trips_every_type(data, binary, code):
    n = data.draw(st.integers(0, 20))
    elements = hnp.from_dtype(np.dtype(code), allow_nan=False, allow_infinity=False)
    values = data.draw(hnp.arrays(code, n, elements=elements))
    lists = data.draw(hnp.arrays(np.int32, (n, 4), elements=st.integers(-2**31, 2**31 - 1)))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "t.ply"
        write_ply(path, {"thing": {"value": values, "ids": lists}, "other": {"v": values}}, binary=binary)
        ply = read_ply(path)
    got = ply.elements["thing"]
    assert got["value"].dtype == np.dtype(code) and np.array_equal(got["value"], values)
    assert isinstance(got["ids"], PlyList) and np.array_equal(got["ids"].values.reshape(n, 4), lists)
    assert np.array_equal(ply.elements["other"]["v"], values)


@pytest.mark.parametrize("binary", [True, False])
def test_windows_line_endings_in_the_header(tmp_path, binary):
    path = tmp_path / "w.ply"
    write_ply(path, {"vertex": {c: np.arange(3, dtype=np.float32) for c in "xyz"}}, binary=binary)
    head, body = path.read_bytes().split(b"end_header\n")
    body = body if binary else body.replace(b"\n", b"\r\n")
    path.write_bytes(head.replace(b"\n", b"\r\n") + b"end_header\r\n" + body)
    assert read_ply(path).elements["vertex"]["z"].tolist() == [0, 1, 2]


def test_ascii_lines_are_tracked_for_errors(tmp_path):
    path = tmp_path / "a.ply"
    write_ply(path, {"vertex": {"x": np.zeros(2, np.float32)}}, binary=False)
    ply = read_ply(path)
    assert ply.where("vertex", 1) == f"{path}:{len(path.read_text().splitlines())}"
    write_ply(path, {"vertex": {"x": np.zeros(2, np.float32)}}, binary=True)
    assert read_ply(path).where("vertex", 1) == f"{path}: element 'vertex' row 1"


def test_trimesh_reads_our_ply_and_we_read_trimesh_ply(tmp_path):
    trimesh = pytest.importorskip("trimesh")
    rng = np.random.default_rng(3)
    verts, faces = rng.normal(size=(30, 3)), rng.integers(0, 30, size=(50, 3))
    for encoding in ("binary", "ascii"):
        data = trimesh.exchange.ply.export_ply(trimesh.Trimesh(verts, faces, process=False), encoding=encoding)
        (tmp_path / "t.ply").write_bytes(data)
        loaded = load_mesh(tmp_path / "t.ply")
        assert np.allclose(loaded.verts.numpy(), verts, atol=1e-6) and np.array_equal(loaded.faces.numpy(), faces)
        write_ply(tmp_path / "g.ply", {"vertex": {c: verts[:, i] for i, c in enumerate("xyz")},
                                       "face": {"vertex_indices": faces.astype(np.int32)}},
                  binary=encoding == "binary")
        back = trimesh.load(tmp_path / "g.ply", process=False)
        assert np.array_equal(back.vertices, verts) and np.array_equal(back.faces, faces)


def test_triangle_strips_match_naive_decoder(tmp_path):
    strip = [0, 1, 2, 3, 4, -1, 2, 3, 3, 5, 1, 0]
    path = binary_ply(tmp_path / "s.ply", "<", [
        ("vertex", HEADER_XYZ, [[("f", float(i)), ("f", 0.0), ("f", float(i % 2))] for i in range(6)]),
        ("tristrips", "property list int int vertex_indices\n", [[(("i", "i"), strip)]]),
    ])
    faces = load_mesh(path).faces.numpy()
    assert np.array_equal(faces, naive_strips(strip))
    assert faces.tolist()[:3] == [[0, 1, 2], [1, 3, 2], [2, 3, 4]]


@pytest.mark.skipif(not IGEA.is_file(), reason="common3d igea.ply not present")
def test_real_strip_file_matches_naive_decoder_and_is_consistently_oriented():
    strips = read_ply(IGEA).elements["tristrips"]["vertex_indices"].values
    faces = load_mesh(IGEA).faces.numpy()
    assert np.array_equal(faces, naive_strips(strips.tolist()))
    directed = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    _, repeats = np.unique(directed, axis=0, return_counts=True)
    assert (repeats > 1).mean() < 1e-3  # a consistently wound surface uses each directed edge once


@pytest.mark.parametrize("header,line,match", [
    ("plx\nformat ascii 1.0\nend_header\n", 1, "not a PLY file"),
    ("ply\nformat ascii 2 1.0\nend_header\n", 2, "malformed PLY header line"),
    ("ply\nformat ascii 1.0\nproperty float x\nend_header\n", 3, "malformed PLY header line"),
    ("ply\nformat ascii 1.0\nelement vertex 1\nproperty float32 x\nproperty list float int y\nend_header\n", 5,
     "malformed PLY header line"),
    ("ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float x\nend_header\n", 5, "duplicate"),
    ("ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\n", 5, "no 'end_header'"),
    ("ply\nelement vertex 0\nend_header\n", 3, "no 'format' line"),
])
def test_malformed_header_names_file_and_line(tmp_path, header, line, match):
    path = tmp_path / "h.ply"
    path.write_text(header)
    with pytest.raises(ValueError, match=match) as info:
        read_ply(path)
    assert f"{path}:{line}:" in str(info.value)


ASCII_HEAD = ("ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty uchar c\n"
              "element face 1\nproperty list uchar int vertex_indices\nend_header\n")


@pytest.mark.parametrize("body,line,match", [
    ("1 2\n3\n3 0 1 1\n", 10, "too few values"),
    ("1 2\n3 4 5\n3 0 1 1\n", 10, "more values"),
    ("1 2\n3 x\n3 0 1 1\n", 10, "malformed value of element 'vertex' 'x'"),
    ("1 2\n3 256\n3 0 1 1\n", 10, "property 'c' of element 'vertex' must be uchar"),
    ("1 2\n3 4\n3 0 1\n", 11, "fewer values than the list length"),
    ("1 2\n3 4\n3 0 1 1.5\n", 11, "property 'vertex_indices' of element 'face' must be int"),
    ("1 2\n3 4\n", 11, "the file ends after 0 of 1 rows of element 'face'"),
    ("1 2\n3 4\n3 0 1 nan\n", 11, "must be int"),
])
def test_malformed_ascii_body_names_file_and_line(tmp_path, body, line, match):
    path = tmp_path / "b.ply"
    path.write_text(ASCII_HEAD + body)
    with pytest.raises(ValueError, match=match) as info:
        read_ply(path)
    assert f"{path}:{line}:" in str(info.value)


def test_nan_vertex_in_ascii_ply_mesh_names_the_line(tmp_path):
    path = tmp_path / "n.ply"
    path.write_text("ply\nformat ascii 1.0\nelement vertex 2\n" + HEADER_XYZ + "end_header\n0 0 0\n0 nan 0\n")
    with pytest.raises(ValueError, match=f"{path}:9: vertex coordinates must be finite"):
        load_mesh(path)


@pytest.mark.parametrize("cut", [1, 13, 30])
def test_truncated_binary_file_names_file_and_element(tmp_path, cut):
    path = tmp_path / "t.ply"
    write_ply(path, {"vertex": {c: np.arange(4, dtype=np.float32) for c in "xyz"},
                     "face": {"vertex_indices": np.array([[0, 1, 2], [1, 2, 3]], dtype=np.int32)}})
    path.write_bytes(path.read_bytes()[:-cut])
    element = "face" if cut < 27 else "vertex"
    with pytest.raises(ValueError, match=f"{path}: the file ends inside (row \\d+ of )?element '{element}'"):
        read_ply(path)


def test_missing_vertex_coordinates_and_missing_file(tmp_path):
    path = tmp_path / "nv.ply"
    write_ply(path, {"vertex": {"u": np.zeros(2, np.float32)}})
    with pytest.raises(ValueError, match=r"nv\.ply: expected element 'vertex' with scalar properties x, y, z"):
        load_mesh(path)
    with pytest.raises(FileNotFoundError, match="gone.ply"):
        read_ply(tmp_path / "gone.ply")


def test_write_rejects_unsupported_dtypes_and_ragged_elements(tmp_path):
    with pytest.raises(ValueError, match=r"vertex\.x must be .* of a PLY type"):
        write_ply(tmp_path / "w.ply", {"vertex": {"x": np.zeros(2, np.int64)}})
    with pytest.raises(ValueError, match="share one row count"):
        write_ply(tmp_path / "w.ply", {"vertex": {"x": np.zeros(2, np.float32), "y": np.zeros(3, np.float32)}})
    assert not (tmp_path / "w.ply").exists()
