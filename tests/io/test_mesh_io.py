"""Mesh files: round trips for every format, the quirks real files have, and every bad-input path."""
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from geo4g.io import MESH_FORMATS, MeshData, load_mesh, load_meshes, save_mesh
from geo4g.structures import Meshes

COMMON3D = Path("/work/shared/data/common3d")
# (extension, binary flag) for every encoding save_mesh writes
ENCODINGS = [("obj", None), ("off", None), ("ply", True), ("ply", False), ("stl", True), ("stl", False)]
INDEXED = [e for e in ENCODINGS if e[0] != "stl"]


def random_mesh(num_verts=40, num_faces=70, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    verts = (torch.randn(num_verts, 3, generator=g, dtype=torch.float64) * 10).to(dtype)
    faces = torch.randint(0, num_verts, (num_faces, 3), generator=g)
    return verts, faces


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def naive_polygon_mesh(path):
    """Obviously-correct OBJ reader for the real-data check: v and f records, fan triangulation."""
    verts, faces = [], []
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if parts and parts[0] == "v":
            verts.append([float(x) for x in parts[1:4]])
        elif parts and parts[0] == "f":
            ids = [int(p.split("/")[0]) for p in parts[1:]]
            ids = [i - 1 if i > 0 else len(verts) + i for i in ids]
            faces += [[ids[0], ids[k], ids[k + 1]] for k in range(1, len(ids) - 1)]
    return np.array(verts), np.array(faces, dtype=np.int64).reshape(-1, 3)


def soup(verts, faces):
    return verts[faces]


# round trips --------------------------------------------------------------------
@pytest.mark.parametrize("ext,binary", INDEXED)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_indexed_formats_round_trip_exactly(tmp_path, ext, binary, dtype):
    verts, faces = random_mesh(dtype=dtype)
    path = tmp_path / f"mesh.{ext}"
    save_mesh(path, verts, faces, binary=binary)
    loaded = load_mesh(path, dtype=dtype)
    assert isinstance(loaded, MeshData)
    assert loaded.verts.dtype == dtype and loaded.faces.dtype == torch.long
    assert torch.equal(loaded.verts, verts)
    assert torch.equal(loaded.faces, faces)


@pytest.mark.parametrize("binary", [True, False])
def test_stl_round_trip_as_triangle_soup_with_merged_vertices(tmp_path, binary):
    verts, faces = random_mesh(num_verts=30, num_faces=60)
    path = tmp_path / "mesh.stl"
    save_mesh(path, verts, faces, binary=binary)
    loaded = load_mesh(path)
    assert torch.equal(soup(*loaded), soup(verts, faces))
    used = torch.unique(faces)
    assert loaded.verts.shape[0] == len(used)  # shared vertices merged, unreferenced ones dropped
    first_use = list(dict.fromkeys(faces.reshape(-1).tolist()))
    assert torch.equal(loaded.verts, verts[first_use])  # vertices come in order of first use


def test_stl_ascii_file_is_text_and_binary_file_is_sized(tmp_path):
    verts, faces = random_mesh(num_faces=5)
    save_mesh(tmp_path / "a.stl", verts, faces, binary=False)
    save_mesh(tmp_path / "b.stl", verts, faces)
    assert (tmp_path / "a.stl").read_text().startswith("solid")
    assert (tmp_path / "b.stl").stat().st_size == 84 + 50 * 5


def test_ply_keeps_float64_binary_and_default_is_binary(tmp_path):
    verts, faces = random_mesh(dtype=torch.float64)
    save_mesh(tmp_path / "m.ply", verts, faces)
    header = (tmp_path / "m.ply").read_bytes()[:200]
    assert b"binary_little_endian" in header and b"property double x" in header


@pytest.mark.parametrize("ext,binary", ENCODINGS)
def test_empty_mesh_round_trips(tmp_path, ext, binary):
    path = tmp_path / f"empty.{ext}"
    save_mesh(path, torch.zeros(0, 3), torch.zeros(0, 3, dtype=torch.long), binary=binary)
    verts, faces = load_mesh(path)
    assert verts.shape == (0, 3) and faces.shape == (0, 3)


@pytest.mark.parametrize("ext,binary", INDEXED)
def test_numpy_inputs_and_unreferenced_vertices_are_kept(tmp_path, ext, binary):
    verts = np.random.default_rng(1).normal(size=(6, 3)).astype(np.float32)
    faces = np.array([[0, 1, 2]], dtype=np.int32)
    save_mesh(tmp_path / f"m.{ext}", verts, faces, binary=binary)
    loaded = load_mesh(tmp_path / f"m.{ext}")
    assert np.array_equal(loaded.verts.numpy(), verts) and loaded.faces.tolist() == [[0, 1, 2]]


finite32 = st.floats(width=32, allow_nan=False, allow_infinity=False)


@st.composite
def meshes(draw):
    verts = draw(hnp.arrays(np.float32, st.tuples(st.integers(1, 12), st.just(3)), elements=finite32))
    faces = draw(hnp.arrays(np.int64, st.tuples(st.integers(0, 12), st.just(3)),
                            elements=st.integers(0, len(verts) - 1)))
    return verts, faces


@settings(max_examples=40, deadline=None)
@given(mesh=meshes(), encoding=st.sampled_from(ENCODINGS))
def test_any_float32_mesh_round_trips(mesh, encoding):
    verts, faces = mesh
    ext, binary = encoding
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"m.{ext}"
        save_mesh(path, verts, faces, binary=binary)
        loaded = load_mesh(path)
    if ext == "stl":
        assert np.array_equal(soup(loaded.verts.numpy(), loaded.faces.numpy()), soup(verts, faces))
    else:
        assert np.array_equal(loaded.verts.numpy(), verts) and np.array_equal(loaded.faces.numpy(), faces)


def test_load_meshes_gives_a_batch(tmp_path):
    paths = []
    for i, ext in enumerate(["obj", "off", "ply"]):
        verts, faces = random_mesh(num_verts=10 + i, num_faces=5 + i, seed=i)
        paths.append(tmp_path / f"m{i}.{ext}")
        save_mesh(paths[-1], verts, faces)
    batch = load_meshes(paths)
    assert isinstance(batch, Meshes) and len(batch) == 3
    for i, (v, f) in enumerate(zip(batch.verts_list(), batch.faces_list())):
        verts, faces = random_mesh(num_verts=10 + i, num_faces=5 + i, seed=i)
        assert torch.equal(v, verts) and torch.equal(f, faces)
    assert load_meshes(paths, dtype=torch.float64).verts_list()[0].dtype == torch.float64


def test_files_written_by_trimesh_load_and_ours_load_in_trimesh(tmp_path):
    trimesh = pytest.importorskip("trimesh")
    verts, faces = random_mesh(num_verts=20, num_faces=30, dtype=torch.float64)
    ref = trimesh.Trimesh(verts.numpy(), faces.numpy(), process=False)
    for ext in ("obj", "off", "ply", "stl"):
        ref.export(tmp_path / f"t.{ext}")
        loaded = load_mesh(tmp_path / f"t.{ext}", dtype=torch.float64)
        assert torch.allclose(soup(*loaded), soup(verts, faces), atol=1e-5), ext
        save_mesh(tmp_path / f"g.{ext}", verts, faces)
        back = trimesh.load(tmp_path / f"g.{ext}", process=False, force="mesh")
        assert np.allclose(back.vertices[back.faces], soup(verts, faces).numpy(), atol=1e-5), ext


# format quirks ------------------------------------------------------------------
def test_modelnet_off_with_counts_on_the_header_line(tmp_path):
    path = write(tmp_path, "chair_0001.off", "OFF4 2 0\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 1 2\n3 0 2 3\n")
    verts, faces = load_mesh(path)
    assert verts.shape == (4, 3) and faces.tolist() == [[0, 1, 2], [0, 2, 3]]


def test_windows_line_endings(tmp_path):
    (tmp_path / "m.off").write_bytes(b"OFF\r\n3 1 0\r\n0 0 0\r\n1 0 0\r\n0 1 0\r\n3 0 1 2\r\n")
    (tmp_path / "m.obj").write_bytes(b"v 0 0 0\r\nv 1 0 0\r\nv 0 1 0\r\nf 1/1 2/2 3/3\r\n")
    assert load_mesh(tmp_path / "m.off").faces.tolist() == load_mesh(tmp_path / "m.obj").faces.tolist() == [[0, 1, 2]]


def test_off_counts_after_the_keyword_on_one_line(tmp_path):
    path = write(tmp_path, "m.off", "OFF 3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n")
    assert load_mesh(path).faces.tolist() == [[0, 1, 2]]


def test_off_with_comments_blank_lines_colours_and_polygons(tmp_path):
    text = (
        "# made by hand\nCOFF\n\n# counts next\n5 2 0\n"
        "0 0 0 255 0 0 255\n1 0 0 255 0 0 255   # a colour\n1 1 0 0 0 0 0\n\n0 1 0 1 1 1 1\n2 2 2 0 0 0 0\n"
        "4 0 1 2 3 200 10 10\n3 1 4 2\n"
    )
    verts, faces = load_mesh(write(tmp_path, "m.off", text))
    assert verts.tolist() == [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [2, 2, 2]]
    assert faces.tolist() == [[0, 1, 2], [0, 2, 3], [1, 4, 2]]  # the quad fan-triangulated


def test_obj_slashes_negative_indices_polygons_and_other_records(tmp_path):
    text = (
        "# comment\nmtllib m.mtl\no thing\nv 0 0 0\nv 1 0 0 1.0\nv 1 1 0 0.5 0.5 0.5\nv 0 1 0\n"
        "vt 0 0\nvn 0 0 1\ng part\nusemtl red\ns off\n"
        "f 1/1/1 2/1/1 3/1/1\nf 1//1 3//1 4//1  # trailing comment\nf -4/1 -3/1 -2/1 -1/1\n"
        "v 2 2 2\nf -1 1 2\nl 1 2\n"
    )
    verts, faces = load_mesh(write(tmp_path, "m.obj", text))
    assert verts.shape == (5, 3) and verts[1].tolist() == [1, 0, 0]
    assert faces.tolist() == [[0, 1, 2], [0, 2, 3], [0, 1, 2], [0, 2, 3], [4, 0, 1]]


def test_format_argument_overrides_the_extension(tmp_path):
    path = write(tmp_path, "shape.txt", "OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n")
    assert load_mesh(path, format="OFF").faces.tolist() == [[0, 1, 2]]
    save_mesh(tmp_path / "out.dat", *load_mesh(path, format="off"), format="obj")
    assert (tmp_path / "out.dat").read_text().count("\nv ") == 3


def test_ply_mesh_with_quads_and_vertex_index_name(tmp_path):
    text = ("ply\nformat ascii 1.0\nelement vertex 4\nproperty float x\nproperty float y\nproperty float z\n"
            "element face 1\nproperty list uchar uint vertex_index\nend_header\n"
            "0 0 0\n1 0 0\n1 1 0\n0 1 0\n4 0 1 2 3\n")
    assert load_mesh(write(tmp_path, "q.ply", text)).faces.tolist() == [[0, 1, 2], [0, 2, 3]]


def test_ply_point_cloud_loads_as_mesh_without_faces(tmp_path):
    text = "ply\nformat ascii 1.0\nelement vertex 2\nproperty double x\nproperty double y\nproperty double z\n" \
           "end_header\n1 2 3\n4 5 6\n"
    verts, faces = load_mesh(write(tmp_path, "p.ply", text))
    assert verts.tolist() == [[1, 2, 3], [4, 5, 6]] and faces.shape == (0, 3)


def test_ascii_stl_written_by_hand(tmp_path):
    text = ("solid cube\n  facet normal 0 0 1\n    outer loop\n      vertex 0 0 0\n      vertex 1 0 0\n"
            "      vertex 0 1 0\n    endloop\n  endfacet\n  FACET NORMAL 0 0 1\n OUTER LOOP\n VERTEX 1 0 0\n"
            " VERTEX 1 1 0\n VERTEX 0 1 0\n ENDLOOP\n ENDFACET\nendsolid cube\n")
    verts, faces = load_mesh(write(tmp_path, "c.stl", text))
    assert verts.tolist() == [[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]]
    assert faces.tolist() == [[0, 1, 2], [1, 3, 2]]


@pytest.mark.skipif(not COMMON3D.is_dir(), reason="common3d test meshes not present")
@pytest.mark.parametrize("name", ["suzanne.obj", "spot.obj", "teapot.obj", "beetle.obj", "cow.obj"])
def test_real_obj_files_match_naive_reader(name):
    if not (COMMON3D / name).is_file():
        pytest.skip(f"{name} not present")
    verts, faces = naive_polygon_mesh(COMMON3D / name)
    loaded = load_mesh(COMMON3D / name, dtype=torch.float64)
    assert np.array_equal(loaded.verts.numpy(), verts)
    assert np.array_equal(loaded.faces.numpy(), faces)


# bad input ----------------------------------------------------------------------
def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.obj"):
        load_mesh(tmp_path / "nothere.obj")


@pytest.mark.parametrize("call", ["load", "save"])
def test_unknown_extension_lists_supported_formats(tmp_path, call):
    path = write(tmp_path, "mesh.abc", "")
    with pytest.raises(ValueError, match=r"\.abc.*\.obj, \.off, \.ply, \.stl"):
        if call == "load":
            load_mesh(path)
        else:
            save_mesh(path, *random_mesh())
    assert MESH_FORMATS == ("obj", "off", "ply", "stl")


@pytest.mark.parametrize("name,text,line,match", [
    ("m.obj", "v 0 0 0\nv 1 0\nv 0 1 0\n", 2, "malformed vertex"),
    ("m.obj", "v 0 0 0\n# c\nv 1 zero 0\n", 3, "malformed vertex coordinate 'zero'"),
    ("m.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 x\n", 4, "malformed face"),
    ("m.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 0 1 2\n", 4, "vertex 0"),
    ("m.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\nf 1 2 4\n", 5, "out of range for 3 vertices"),
    ("m.obj", "v 0 0 0\nv 1 0 0\nf -3 1 2\n", 3, "out of range"),
    ("m.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2\n", 4, "at least 3 vertices"),
    ("m.obj", "v 0 0 0\nv nan 0 0\n", 2, "finite"),
    ("m.off", "ON\n1 0 0\n0 0 0\n", 1, "not an OFF file"),
    ("m.off", "OFF\n3 one 0\n", 2, "malformed OFF counts"),
    ("m.off", "OFF\n3 1 0\n0 0 0\n1 0 0\n", 4, "file ends"),
    ("m.off", "OFF\n3 1 0\n0 0 0\n1 0\n0 1 0\n3 0 1 2\n", 4, "malformed vertex"),
    ("m.off", "OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 inf\n3 0 1 2\n", 5, "finite"),
    ("m.off", "OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n4 0 1 2\n", 6, "malformed face"),
    ("m.off", "OFF\n3 2 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n3 0 1 3\n", 7, "out of range for 3 vertices"),
    ("m.off", "OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2.5\n", 6, "expected an integer"),
    ("m.ply", "ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\nproperty float z\n"
              "element face 1\nproperty list uchar int vertex_indices\nend_header\n0 0 0\n3 0 0 1\n", 11,
     "out of range for 1 vertices"),
    ("m.stl", "solid x\nfacet normal 0 0 1\nouter loop\nvertex 0 0 0\nvertex 1 0 0\nendloop\nendfacet\n", 6,
     "3 vertices, got 2"),
    ("m.stl", "solid x\nfacet normal 0 0 1\nouter loop\nvertex 0 0\n", 4, "malformed STL line"),
    ("m.stl", "solid x\nfacet normal 0 0 1\nouter loop\nvertex 0 0 0\nvertex 1 0 0\n", 5, "ends inside a facet"),
])
def test_malformed_files_name_file_and_line(tmp_path, name, text, line, match):
    path = write(tmp_path, name, text)
    with pytest.raises(ValueError, match=match) as info:
        load_mesh(path)
    assert f"{path}:{line}:" in str(info.value)


def test_garbage_stl_and_truncated_binary_stl(tmp_path):
    (tmp_path / "g.stl").write_bytes(b"\x00\x01" * 30)
    with pytest.raises(ValueError, match=r"g\.stl.*not an STL file"):
        load_mesh(tmp_path / "g.stl")
    save_mesh(tmp_path / "t.stl", *random_mesh(num_faces=4))
    (tmp_path / "t.stl").write_bytes((tmp_path / "t.stl").read_bytes()[:-10])
    with pytest.raises(ValueError, match=r"t\.stl.*not an STL file"):
        load_mesh(tmp_path / "t.stl")


def test_nan_in_binary_stl_names_the_triangle(tmp_path):
    verts, faces = random_mesh(num_faces=4)
    save_mesh(tmp_path / "n.stl", verts, faces)
    data = bytearray((tmp_path / "n.stl").read_bytes())
    data[84 + 50 * 2 + 12:84 + 50 * 2 + 16] = np.float32(np.nan).tobytes()
    (tmp_path / "n.stl").write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"n\.stl: triangle 2: vertex coordinates must be finite"):
        load_mesh(tmp_path / "n.stl")


@pytest.mark.parametrize("verts,faces,error,match", [
    (torch.tensor([[0.0, 0, 0], [1, 0, 0], [float("nan"), 1, 0]]), torch.tensor([[0, 1, 2]]), ValueError, "verts"),
    (torch.zeros(3, 3), torch.tensor([[0, 1, 3]]), ValueError, r"faces indices must lie in \[0, 3\)"),
    (torch.zeros(3, 3), torch.tensor([[0, -1, 2]]), ValueError, "faces"),
    (torch.zeros(3, 2), torch.tensor([[0, 1, 2]]), ValueError, r"verts must have last dimension 3"),
    (torch.zeros(3, 3), torch.tensor([0, 1, 2]), ValueError, "faces must have 2 dimensions"),
    (torch.zeros(3, 3), torch.tensor([[0.0, 1, 2]]), TypeError, "faces must be an integer tensor"),
    (torch.zeros(3, 3, dtype=torch.long), torch.tensor([[0, 1, 2]]), TypeError, "verts must be a floating"),
    ([[0.0, 0, 0]] * 3, torch.tensor([[0, 1, 2]]), TypeError, "verts must be a torch.Tensor or numpy.ndarray"),
])
def test_save_rejects_bad_arrays_naming_the_argument(tmp_path, verts, faces, error, match):
    with pytest.raises(error, match=match):
        save_mesh(tmp_path / "bad.obj", verts, faces)
    assert not list(tmp_path.iterdir())


def test_save_binary_text_format_and_bad_dtype_raise(tmp_path):
    with pytest.raises(ValueError, match="binary=True is not supported for .obj"):
        save_mesh(tmp_path / "m.obj", *random_mesh(), binary=True)
    with pytest.raises(TypeError, match="dtype must be a floating point"):
        load_mesh(tmp_path / "m.obj", dtype=torch.int64)


def test_save_into_missing_folder_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nofolder"):
        save_mesh(tmp_path / "nofolder" / "m.obj", *random_mesh())


# atomicity ----------------------------------------------------------------------
@pytest.mark.parametrize("ext,binary", ENCODINGS)
def test_failed_save_keeps_the_previous_file_and_leaves_no_temp(tmp_path, monkeypatch, ext, binary):
    path = tmp_path / f"m.{ext}"
    save_mesh(path, *random_mesh(seed=1), binary=binary)
    before = path.read_bytes()

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        save_mesh(path, *random_mesh(seed=2), binary=binary)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_save_interrupted_mid_body_leaves_no_file(tmp_path, monkeypatch):
    from geo4g.io import mesh_io

    def interrupted(rows, fmt):
        yield fmt % tuple(rows[0].tolist()) + "\n"
        raise KeyboardInterrupt

    monkeypatch.setattr(mesh_io, "format_rows", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_mesh(tmp_path / "m.obj", *random_mesh())
    assert not list(tmp_path.iterdir())


def test_stl_vertex_merge_survives_hash_collisions(tmp_path, monkeypatch):
    from geo4g.io import mesh_io

    verts, faces = random_mesh(num_verts=30, num_faces=60)
    verts[3] = -0.0  # -0.0 and 0.0 are one vertex
    verts[4] = 0.0
    save_mesh(tmp_path / "m.stl", verts, faces)
    hashed = load_mesh(tmp_path / "m.stl")
    monkeypatch.setattr(mesh_io, "_HASH", np.zeros(6, dtype=np.uint64))  # every row hashes to 0: exact path
    exact = load_mesh(tmp_path / "m.stl")
    assert torch.equal(hashed.verts, exact.verts) and torch.equal(hashed.faces, exact.faces)
    assert torch.equal(soup(*hashed), soup(verts, faces))
    assert len(hashed.verts) == len(torch.unique(faces)) - 1


# fast paths ---------------------------------------------------------------------
# Each text reader has a fast path (numpy's C parsers on blocks of lines) and a careful one (token by token,
# naming the line of a problem); the fast path gives up (None) on anything it cannot vouch for.
def outcome(read, *args):
    """What a reader gives: its arrays (tensors as numpy), or the error message."""
    try:
        return [np.asarray(x) for x in read(*args)]
    except ValueError as err:
        return str(err)


def same(a, b):
    """Equal outcomes: the same error message, or arrays of the same dtypes and values."""
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return len(a) == len(b) and all(x.dtype == y.dtype and np.array_equal(x, y) for x, y in zip(a, b))


def number(rng, x):
    forms = ["%.9g", "%.6f", "%.17g", "%.3e", "%+.4f", "%.1E"]
    text = forms[rng.integers(len(forms))] % x
    return {0: text, 1: text.replace("0.", ".", 1) if text.startswith("0.") else text}[int(rng.integers(2))]


def gap(rng):
    return [" ", " ", " ", "  ", "\t", " \t "][rng.integers(6)]


def random_obj(rng):
    """A well-formed OBJ with the forms real files have: v with w or colours, vt/vn/g/usemtl/o/s/l records,
    comments (whole-line and trailing), blank lines, v, v/vt, v//vn and v/vt/vn references, negative
    indices, polygons."""
    lines, num_verts = ["# random obj", "mtllib m.mtl", "o thing"], 0
    widths = [3] if rng.random() < 0.5 else [3, 4, 6]
    ref_form = int(rng.integers(5))  # one form per file, or (4) mixed per face
    for _ in range(int(rng.integers(1, 120))):
        kind = rng.random()
        if kind < 0.45 or num_verts < 3:
            values = rng.normal(size=int(rng.choice(widths))) * 10.0 ** rng.integers(-3, 4)
            lines.append("v" + "".join(gap(rng) + number(rng, x) for x in values))
            num_verts += 1
        elif kind < 0.8:
            k = int(rng.integers(3, 7))
            ids = rng.integers(1, num_verts + 1, size=k)
            refs = []
            for i in ids:
                ref = str(i) if rng.random() < 0.7 else str(i - num_verts - 1)  # negative: relative
                form = ref_form if ref_form < 4 else int(rng.integers(4))
                refs.append(ref + ["", "/7", "//3", "/2/9"][form])
            lines.append("f" + "".join(gap(rng) + r for r in refs))
        else:
            lines.append(["vt 0.5 0.25", "vn 0 0 1", "g part", "usemtl red", "s off", "l 1 2", "", "# note",
                          "vp 0.1 0.2"][rng.integers(9)])
        if rng.random() < 0.1:
            lines[-1] += "  # trailing comment"
    newline = "\r\n" if rng.random() < 0.3 else "\n"
    return newline.join(lines) + (newline if rng.random() < 0.8 else "")


@pytest.mark.parametrize("seed", range(40))
def test_obj_fast_path_matches_careful_reader(tmp_path, seed):
    from geo4g.io import mesh_io

    path = write(tmp_path, "r.obj", "")
    path.write_bytes(random_obj(np.random.default_rng(seed)).encode())
    careful = mesh_io._read_obj_lines(path)
    fast = mesh_io._read_obj_fast(path.read_bytes(), np.float64)
    assert fast is not None and same(fast, careful)
    fast32 = mesh_io._read_obj_fast(path.read_bytes(), np.float32)
    assert np.array_equal(fast32[0], careful[0].astype(np.float32)) and np.array_equal(fast32[1], careful[1])
    loaded = load_mesh(path, dtype=torch.float64)
    assert same([loaded.verts.numpy(), loaded.faces.numpy()], careful)


def random_off(rng):
    """A well-formed OFF: OFF / COFF / ModelNet's 'OFF490 518 0' headers, comments and blank lines around the
    header, vertex colours, polygons, face colours."""
    nv, nf = int(rng.integers(3, 60)), int(rng.integers(0, 60))
    colour = rng.random() < 0.3
    head = [["OFF", f"{nv} {nf} 0"], [f"OFF {nv} {nf} 0"], [f"OFF{nv} {nf} 0"], ["COFF", "", "# counts", f"{nv} {nf}"],
            ["# made by hand", "NOFF", f"{nv}  {nf}  0   # counts"]][rng.integers(5)]
    lines = head + ["".join(gap(rng) * (j > 0) + number(rng, x) for j, x in enumerate(rng.normal(size=3)))
                    + (" 255 0 0 255" if colour else "") for _ in range(nv)]
    for _ in range(nf):
        k = int(rng.integers(3, 7))
        lines.append(f"{k} " + gap(rng).join(map(str, rng.integers(0, nv, size=k))) + (" 10 20 30" if colour else ""))
    newline = "\r\n" if rng.random() < 0.3 else "\n"
    return newline.join(lines) + newline + ("# end\n" if rng.random() < 0.3 else "")


@pytest.mark.parametrize("seed", range(30))
def test_off_fast_path_matches_careful_reader(tmp_path, seed):
    from geo4g.io import mesh_io

    path = write(tmp_path, "r.off", random_off(np.random.default_rng(seed)))
    careful = mesh_io._read_off_lines(path)
    fast = mesh_io._read_off_fast(path, path.read_bytes(), np.float64)
    assert fast is not None and same(fast, careful)
    loaded = load_mesh(path, dtype=torch.float64)
    assert same([loaded.verts.numpy(), loaded.faces.numpy()], careful)


@pytest.mark.parametrize("name,text", [
    ("indented.obj", "v 0 0 0\n  v 1 0 0\nv 0 1 0\n\tf 1 2 3\n"),
    ("alone.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nv\nf 1 2 3\n"),
    ("hash.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nv# c\nf 1 2 3\n"),
    ("formfeed.obj", "v\x0c0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n"),
    ("mac.obj", "v 0 0 0\rv 1 0 0\rvt 0 0\rv 0 1 0\rf 1 2 3\r"),
    ("slash.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nv 1 1 0\nf /1 2 3 4\n"),
    ("letter.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3f\n"),
    ("minus.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2-3\n"),
    ("underscore.obj", "v 0 0 1_0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n"),
    ("huge.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 99999999999999999999\n"),
    ("bom.obj", "\ufeffv 0 0 0\nv 1 0 0\nv 0 1 0\nv 1 1 1\nf 1 2 3\n"),
    ("unicode.obj", "# caf\u00e9\nv\u00a00 0 0\nv 1 0 0\nv 0 1 0\nv 1 1 1\nf 1 2 3\n"),
    ("nan.obj", "v 0 0 0\nv 1 0 0\nv 0 nan 0\nf 1 2 3\n"),
    ("empty-face.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nf # nothing\n"),
    ("blank.off", "OFF\n3 1 0\n0 0 0\n\n1 0 0\n0 1 0\n3 0 1 2\n"),
    ("comment.off", "OFF\n3 1 0\n0 0 0\n# c\n1 0 0\n0 1 0\n3 0 1 2\n"),
    ("float-colour.off", "OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2 0.5 0.5 0.5\n"),
    ("mac.off", "OFF\r3 1 0\r0 0 0\r1 0 0\r0 1 0\r3 0 1 2\r"),
    ("late-header.off", "#\n" * 80 + "OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n"),
])
def test_unusual_text_files_load_as_the_careful_reader_says(tmp_path, name, text):
    from geo4g.io import mesh_io

    path = write(tmp_path, name, "")
    path.write_bytes(text.encode())
    careful = mesh_io._read_obj_lines if name.endswith(".obj") else mesh_io._read_off_lines
    assert same(outcome(load_mesh, path, torch.float64), outcome(careful, path))


@pytest.mark.parametrize("ext,bad,match", [
    ("obj", "v 1 zero 3", "malformed vertex coordinate 'zero'"),
    ("obj", "f 1 2 0", "vertex 0"),
    ("obj", "f 1/1 2/2 x/3", "malformed face"),
    ("off", "1 0 nan", "finite"),
    ("off", "3 0 1 2.5", "expected an integer"),
])
def test_malformed_line_deep_in_a_big_file_is_named(tmp_path, ext, bad, match):
    rng = np.random.default_rng(0)
    verts = rng.normal(size=(20000, 3))
    faces = rng.integers(0, len(verts), size=(30000, 3))
    path = tmp_path / f"big.{ext}"
    save_mesh(path, verts, faces)
    lines = path.read_text().splitlines()
    is_vertex_line = not bad.startswith(("f", "3 "))
    if ext == "obj":
        line = 1 + 12345 if is_vertex_line else 1 + len(verts) + 23456  # after the '# written by geo4g' line
    else:
        line = 2 + 12345 if is_vertex_line else 2 + len(verts) + 23456
    lines[line] = bad
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=match) as info:
        load_mesh(path)
    assert f"{path}:{line + 1}:" in str(info.value)


def naive_merge(corners):
    """Distinct rows in order of first use, one dict lookup per row (-0.0 and 0.0 are one vertex)."""
    seen = {}
    index = [seen.setdefault((row + 0).tobytes(), len(seen)) for row in corners]
    verts = np.frombuffer(b"".join(seen), corners.dtype).reshape(-1, 3)
    return verts, np.array(index, dtype=np.int64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("collide", [False, True])
def test_stl_vertex_merge_matches_naive_merge(monkeypatch, dtype, seed, collide):
    from geo4g.io import mesh_io

    if collide:  # a hash with few values: many different rows share one, the exact re-sort sorts them out
        monkeypatch.setattr(mesh_io, "_HASH", np.array([1 << 62, 0, 1 << 63, 0, 0, 0], dtype=np.uint64))
    rng = np.random.default_rng(seed)
    distinct = rng.normal(size=(int(rng.integers(1, 200)), 3)).astype(dtype)
    distinct[rng.random(distinct.shape) < 0.2] = 0.0
    distinct[rng.random(distinct.shape) < 0.1] = -0.0
    corners = distinct[rng.integers(0, len(distinct), size=3 * int(rng.integers(1, 400)))]
    verts, index = mesh_io._merge_vertices(corners.reshape(-1, 3, 3))
    expected_verts, expected_index = naive_merge(corners)
    assert verts.dtype == dtype and np.array_equal(verts, expected_verts) and np.array_equal(index, expected_index)
