"""PCD files: round trips, hand-written ascii and PCL-style binary files, LZF-compressed data, Open3D
agreement, the ModelNet10 point files, and every bad-file path."""
import importlib.util
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from geo4g.io import POINTCLOUD_FORMATS, load_pointcloud, read_pcd, save_pointcloud, write_pcd
from geo4g.io.pcd import lzf_decompress

MODELNET_PCD = Path(__file__).parents[3] / "shared/data/modelnet10_pcd1024/ModelNet10/pcd/chair/train/chair_0001.pcd"
HAS_OPEN3D = importlib.util.find_spec("open3d") is not None


def pcl_header(fields="x y z", size="4 4 4", type_="F F F", count="1 1 1", width=3, height=1, points=None,
               data="binary", version="0.7"):
    """A header laid out line for line as PCL writes it."""
    points = width * height if points is None else points
    return (f"# .PCD v0.7 - Point Cloud Data file format\nVERSION {version}\nFIELDS {fields}\nSIZE {size}\n"
            f"TYPE {type_}\nCOUNT {count}\nWIDTH {width}\nHEIGHT {height}\nVIEWPOINT 0 0 0 1 0 0 0\n"
            f"POINTS {points}\nDATA {data}\n").encode()


def lzf_compress(data: bytes) -> bytes:
    """A greedy LZF compressor (liblzf's format): literal runs and back references, overlapping ones included."""
    out, literal, table, i = bytearray(), bytearray(), {}, 0

    def flush():
        while literal:
            out.append(min(len(literal), 32) - 1)
            out.extend(literal[:32])
            del literal[:32]

    while i < len(data):
        key = data[i:i + 3]
        ref = table.get(key) if len(key) == 3 else None
        table[key] = i
        if ref is not None and i - ref <= 8192:
            length = 3
            while i + length < len(data) and length < 264 and data[ref + length] == data[i + length]:
                length += 1
            flush()
            distance, n = i - ref - 1, length - 2
            out.append((min(n, 7) << 5) | (distance >> 8))
            if n >= 7:
                out.append(n - 7)
            out.append(distance & 255)
            i += length
        else:
            literal.append(data[i])
            i += 1
    flush()
    return bytes(out)


def compressed_body(columns):
    """The bytes after ``DATA binary_compressed`` for per-field little-endian arrays (structure of arrays)."""
    raw = b"".join(np.ascontiguousarray(c).tobytes() for c in columns)
    packed = lzf_compress(raw)
    return struct.pack("<II", len(packed), len(raw)) + packed


def random_cloud(n=40, channels=2, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    points = (torch.randn(n, 3, generator=g, dtype=torch.float64) * 5).to(dtype)
    normals = torch.nn.functional.normalize(torch.randn(n, 3, generator=g, dtype=torch.float64), dim=1).to(dtype)
    features = torch.rand(n, channels, generator=g, dtype=torch.float64).to(dtype)
    return points, normals, features


# round trips ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("fields", ["points", "normals", "features", "all"])
def test_save_load_round_trip_exactly(tmp_path, binary, dtype, fields):
    points, normals, features = random_cloud(dtype=dtype)
    normals = normals if fields in ("normals", "all") else None
    features = features if fields in ("features", "all") else None
    path = tmp_path / "cloud.pcd"
    save_pointcloud(path, points, normals=normals, features=features,
                    feature_names=None if features is None else ["intensity", "label"], binary=binary)
    got = load_pointcloud(path, dtype=dtype)
    assert got.points.dtype == dtype and torch.equal(got.points, points)
    assert (got.normals is None) == (normals is None) and (normals is None or torch.equal(got.normals, normals))
    assert (got.features is None) == (features is None) and (features is None or torch.equal(got.features, features))
    assert got.feature_names == (() if features is None else ("intensity", "label"))
    assert read_pcd(path).data == ("binary" if binary else "ascii")


def test_save_writes_the_header_pcl_writes(tmp_path):
    points, normals, _ = random_cloud(n=5, dtype=torch.float64)
    save_pointcloud(tmp_path / "c.pcd", points, normals=normals, binary=False)
    header = (tmp_path / "c.pcd").read_bytes().split(b"DATA ascii\n")[0] + b"DATA ascii\n"
    assert header == pcl_header("x y z normal_x normal_y normal_z", "8 8 8 8 8 8", "F F F F F F",
                                "1 1 1 1 1 1", width=5, data="ascii")


@pytest.mark.parametrize("binary", [True, False])
def test_write_read_pcd_keeps_every_field_type_and_count(tmp_path, binary):
    rng = np.random.default_rng(0)
    n = 30
    fields = {
        "x": rng.normal(size=n).astype(np.float32), "y": rng.normal(size=n).astype(np.float32),
        "z": rng.normal(size=n).astype(np.float32),
        "intensity": rng.normal(size=n),  # float64
        "half": rng.normal(size=n).astype(np.float16),
        "label": rng.integers(0, 255, n).astype(np.uint8),
        "ring": rng.integers(-30000, 30000, n).astype(np.int16),
        "id": rng.integers(-2 ** 40, 2 ** 40, n).astype(np.int64),
        "hist": rng.integers(0, 2 ** 31, (n, 5)).astype(np.uint32),
        "rgb": rng.integers(0, 2 ** 24, n).astype(np.uint32),
    }
    write_pcd(tmp_path / "c.pcd", fields, binary=binary)
    got = read_pcd(tmp_path / "c.pcd")
    assert list(got.fields) == list(fields) and (got.width, got.height) == (n, 1)
    assert got.viewpoint == (0, 0, 0, 1, 0, 0, 0)
    for name, values in fields.items():
        assert got.fields[name].dtype == values.dtype and np.array_equal(got.fields[name], values), name
    text = (tmp_path / "c.pcd").read_bytes().split(b"\nDATA")[0].decode()
    assert "SIZE 4 4 4 8 2 1 2 8 4 4\nTYPE F F F F F U I I U U\nCOUNT 1 1 1 1 1 1 1 1 5 1" in text
    cloud = load_pointcloud(tmp_path / "c.pcd", dtype=torch.float64)
    assert cloud.feature_names == ("intensity", "half", "label", "ring", "id", *(f"hist_{i}" for i in range(5)),
                                   "r", "g", "b")
    assert torch.equal(cloud.features[:, 5:10], torch.from_numpy(fields["hist"].astype(np.float64)))
    assert torch.equal(cloud.features[:, 10], torch.from_numpy(((fields["rgb"] >> 16) & 255).astype(np.float64)))


def test_empty_cloud_round_trips(tmp_path):
    for binary in (True, False):
        save_pointcloud(tmp_path / "e.pcd", torch.zeros(0, 3), binary=binary)
        got = load_pointcloud(tmp_path / "e.pcd")
        assert got.points.shape == (0, 3) and got.normals is None


def test_pcd_is_a_registered_point_cloud_format():
    assert "pcd" in POINTCLOUD_FORMATS


# files as other programs write them ------------------------------------------------------------------
def test_hand_written_ascii_file(tmp_path):
    text = ("# .PCD v.7 - Point Cloud Data file format\r\n"
            "VERSION .7\r\nFIELDS x y z rgb label _ hist\r\nSIZE 4 4 4 4 2 1 4\r\nTYPE F F F F U U F\r\n"
            "COUNT 1 1 1 1 1 1 2\r\nWIDTH 2\r\nHEIGHT 2\r\nVIEWPOINT 1 2 3 1 0 0 0\r\nPOINTS 4\r\nDATA ascii\r\n"
            "0.5 1 -2 4808703 3 0 0.25 1e3\r\n"
            "# a comment line\r\n"
            "1.5 2 -3 0 7 0 -1 2\r\n\r\n"
            "2.5e0 3 -4 16711680 65535 0 0 0\r\n"
            "3.5 4 -5 255 0 0 1 1  # trailing comment\r\n")
    path = tmp_path / "hand.pcd"
    path.write_bytes(text.encode())
    pcd = read_pcd(path)
    assert (pcd.width, pcd.height, pcd.viewpoint, pcd.data) == (2, 2, (1, 2, 3, 1, 0, 0, 0), "ascii")
    assert list(pcd.fields) == ["x", "y", "z", "rgb", "label", "hist"]  # padding "_" left out
    assert pcd.fields["rgb"].dtype == np.uint32 and pcd.fields["rgb"].tolist() == [4808703, 0, 16711680, 255]
    assert pcd.fields["label"].dtype == np.uint16 and pcd.fields["label"].tolist() == [3, 7, 65535, 0]
    assert pcd.fields["hist"].shape == (4, 2) and pcd.fields["hist"].tolist() == [[0.25, 1000], [-1, 2], [0, 0], [1, 1]]
    cloud = load_pointcloud(path)
    assert cloud.points.tolist() == [[0.5, 1, -2], [1.5, 2, -3], [2.5, 3, -4], [3.5, 4, -5]]
    assert cloud.normals is None
    assert cloud.feature_names == ("r", "g", "b", "label", "hist_0", "hist_1")
    assert cloud.features[:, :4].tolist() == [[73, 95, 255, 3], [0, 0, 0, 7], [255, 0, 0, 65535], [0, 0, 255, 0]]


def test_ascii_colour_written_as_a_float_is_read_by_its_bits(tmp_path):
    packed = np.array([0x00FF8040, 0x00010203], dtype=np.uint32)
    floats = " ".join(repr(float(v)) for v in packed.view(np.float32))
    path = tmp_path / "f.pcd"
    path.write_bytes(pcl_header("x y z rgb", "4 4 4 4", "F F F F", "1 1 1 1", width=2, data="ascii")
                     + f"0 0 0 {floats.split()[0]}\n1 1 1 {floats.split()[1]}\n".encode())
    assert read_pcd(path).fields["rgb"].tolist() == packed.tolist()


def test_binary_file_byte_for_byte_as_pcl_writes_it(tmp_path):
    points = np.array([[0.1, -2.5, 3.0], [1e-3, 7.0, -8.25], [100.5, 0.0, -1.0], [4, 5, 6]], dtype=np.float32)
    data = pcl_header(width=4, version=".7") + points.astype("<f4").tobytes()
    path = tmp_path / "pcl.pcd"
    path.write_bytes(data)
    cloud = load_pointcloud(path)
    assert torch.equal(cloud.points, torch.from_numpy(points)) and cloud.normals is None and cloud.features is None
    save_pointcloud(tmp_path / "ours.pcd", torch.from_numpy(points))
    assert (tmp_path / "ours.pcd").read_bytes() == data.replace(b"VERSION .7", b"VERSION 0.7")


def test_binary_padding_and_mixed_fields(tmp_path):
    rng = np.random.default_rng(1)
    record = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("pad", "u1", (4,)), ("normal_x", "<f8"),
                       ("normal_y", "<f8"), ("normal_z", "<f8"), ("intensity", "<u2")])
    table = np.zeros(7, dtype=record)
    for name in ("x", "y", "z", "normal_x", "normal_y", "normal_z"):
        table[name] = rng.normal(size=7)
    table["intensity"] = rng.integers(0, 1000, 7)
    path = tmp_path / "pad.pcd"
    path.write_bytes(pcl_header("x y z _ normal_x normal_y normal_z intensity", "4 4 4 1 8 8 8 2",
                                "F F F U F F F U", "1 1 1 4 1 1 1 1", width=7) + table.tobytes())
    cloud = load_pointcloud(path, dtype=torch.float64)
    assert np.array_equal(cloud.points.numpy(), np.stack([table[c] for c in "xyz"], 1).astype(np.float64))
    assert np.array_equal(cloud.normals.numpy(), np.stack([table[f"normal_{c}"] for c in "xyz"], 1))
    assert cloud.feature_names == ("intensity",) and cloud.features[:, 0].tolist() == table["intensity"].tolist()


def test_binary_compressed_file(tmp_path):
    rng = np.random.default_rng(2)
    n = 500
    xyz = np.round(rng.normal(size=(3, n)), 1).astype("<f4")  # few distinct values: back references
    label = np.repeat(np.arange(5, dtype="<u4"), n // 5)  # long runs: overlapping back references
    rgb = np.full(n, 0x00102030, dtype="<u4")
    body = compressed_body([xyz[0], xyz[1], xyz[2], label, rgb])
    path = tmp_path / "c.pcd"
    path.write_bytes(pcl_header("x y z label rgb", "4 4 4 4 4", "F F F U F", "1 1 1 1 1", width=n,
                                data="binary_compressed") + body)
    assert len(body) < 8 + 4 * 5 * n
    pcd = read_pcd(path)
    assert pcd.data == "binary_compressed"
    assert np.array_equal(np.stack([pcd.fields[c] for c in "xyz"]), xyz)
    assert np.array_equal(pcd.fields["label"], label) and np.array_equal(pcd.fields["rgb"], rgb)
    assert load_pointcloud(path).features[0].tolist() == [0, 0x10, 0x20, 0x30]


@pytest.mark.parametrize("data", [b"", b"a", b"abcabcabcabc", b"\0" * 1000, bytes(range(256)) * 40,
                                  np.random.default_rng(3).integers(0, 4, 5000).astype(np.uint8).tobytes(),
                                  np.random.default_rng(4).bytes(1000) * 2,  # references 1000 bytes back
                                  np.random.default_rng(5).bytes(8192) * 2])  # the farthest LZF reference
def test_lzf_decompress_inverts_a_compressor(data):
    assert lzf_decompress(lzf_compress(data), len(data)) == data


def test_lzf_far_references_use_the_high_offset_bits():
    data = np.random.default_rng(5).bytes(8192) * 2
    packed = lzf_compress(data)
    controls = [c for c in packed if c >= 32]
    assert any(c & 31 == 31 for c in controls)  # offset 8191: all five high bits set
    assert lzf_decompress(packed, len(data)) == data


def test_lzf_decompress_hand_made_stream():
    # literal "ab", then 6 bytes from 2 back (overlapping: "ababab"), then 10 + 2 bytes from 1 back
    stream = bytes([1]) + b"ab" + bytes([(4 << 5) | 0, 1]) + bytes([(7 << 5) | 0, 3, 0])
    assert lzf_decompress(stream, 20) == b"abababab" + b"b" * 12


@pytest.mark.parametrize("stream,size,match", [
    (bytes([5]) + b"ab", 6, "truncated: a literal run of 6 bytes"),
    (bytes([0]) + b"a" + bytes([7 << 5]), 20, "no length byte"),
    (bytes([0]) + b"a" + bytes([1 << 5]), 20, "no offset byte"),
    (bytes([0]) + b"a" + bytes([1 << 5, 5]), 4, "points 6 bytes back from output byte 1"),
    (bytes([2]) + b"abc", 4, "decompresses to 3 bytes, expected 4"),
    (bytes([2]) + b"abc", 2, "more than 2 bytes, expected 2"),
])
def test_lzf_decompress_rejects_corrupt_streams(stream, size, match):
    with pytest.raises(ValueError, match=match):
        lzf_decompress(stream, size)


@pytest.mark.parametrize("binary", [True, False])
def test_64_bit_integers_round_trip_exactly(tmp_path, binary):
    # beyond 2**53 float64 rounds: 2**64 - 1 once came back as 0 and 2**63 - 1 as -2**63
    fields = {"x": np.zeros(4, "f4"), "y": np.zeros(4, "f4"), "z": np.zeros(4, "f4"),
              "id": np.array([2 ** 64 - 1, 2 ** 53 + 1, 0, 7], dtype=np.uint64),
              "stamp": np.array([[-2 ** 63, 2 ** 63 - 1], [2 ** 53 + 1, -(2 ** 53) - 1], [0, 1], [5, -5]], dtype=np.int64)}
    write_pcd(tmp_path / "c.pcd", fields, binary=binary)
    got = read_pcd(tmp_path / "c.pcd").fields
    for name in ("id", "stamp"):
        assert got[name].dtype == fields[name].dtype and got[name].tolist() == fields[name].tolist()


@pytest.mark.parametrize("type_,value,dtype", [("U", b"18446744073709551616", "uint64"),
                                               ("I", b"9223372036854775808", "int64"),
                                               ("I", b"-9223372036854775809", "int64"),
                                               ("U", b"-1", "uint64"), ("U", b"1.5", "uint64")])
def test_ascii_64_bit_integer_out_of_range_raises(tmp_path, type_, value, dtype):
    path = tmp_path / "bad.pcd"
    # a second value beyond 2**53 sends the field to the exact reader too
    path.write_bytes(pcl_header("x y z id", "4 4 4 8", f"F F F {type_}", "1 1 1 1", width=2, data="ascii")
                     + b"0 0 0 9007199254740993\n1 1 1 " + value + b"\n")
    with pytest.raises(ValueError, match=f"{path}: field 'id' of point 1: expected an integer that fits {dtype}"):
        read_pcd(path)


def test_ascii_64_bit_integer_field_accepts_integral_float_literals(tmp_path):
    path = tmp_path / "f.pcd"
    path.write_bytes(pcl_header("x y z id", "4 4 4 8", "F F F I", "1 1 1 1", width=2, data="ascii")
                     + b"0 0 0 9007199254740993\n1 1 1 1e3\n")
    assert read_pcd(path).fields["id"].tolist() == [2 ** 53 + 1, 1000]


def test_colour_field_with_count_above_one_is_not_unpacked(tmp_path):
    # an rgb of COUNT 2 is no packed colour: unpacking it gave (N, 3, 2) features
    path = tmp_path / "c.pcd"
    values = np.array([[1, 2, 3, 0x00102030, 0x00405060], [4, 5, 6, 7, 8]], dtype="<u4")
    values[:, :3] = np.arange(6, dtype="<f4").reshape(2, 3).view("<u4")
    path.write_bytes(pcl_header("x y z rgb", "4 4 4 4", "F F F U", "1 1 1 2", width=2) + values.tobytes())
    cloud = load_pointcloud(path, dtype=torch.float64)
    assert cloud.feature_names == ("rgb_0", "rgb_1") and cloud.features.shape == (2, 2)
    assert cloud.features.tolist() == [[0x00102030, 0x00405060], [7, 8]]


def test_fields_that_give_one_feature_name_raise(tmp_path):
    # a field "r" and the packed "rgb" both make a column "r": one was silently dropped
    path = tmp_path / "c.pcd"
    write_pcd(path, {"x": np.zeros(2, "f4"), "y": np.zeros(2, "f4"), "z": np.zeros(2, "f4"),
                     "r": np.ones(2, "f4"), "rgb": np.full(2, 0x00102030, "u4")})
    with pytest.raises(ValueError, match=rf"{path}: PCD fields 'r' and 'rgb' both give a feature column named 'r'"):
        load_pointcloud(path)
    write_pcd(path, {"x": np.zeros(2, "f4"), "y": np.zeros(2, "f4"), "z": np.zeros(2, "f4"),
                     "h": np.ones((2, 2), "f4"), "h_1": np.ones(2, "f4")})
    with pytest.raises(ValueError, match="PCD fields 'h' and 'h_1' both give a feature column named 'h_1'"):
        load_pointcloud(path)


@pytest.mark.parametrize("name", ["rgb", "rgba"])
def test_save_rejects_a_feature_named_like_a_packed_colour(tmp_path, name):
    # a float feature "rgb" was written as a PCD field rgb and read back as the bytes of a packed colour
    with pytest.raises(ValueError, match=rf"feature_names \['{name}'\] cannot be saved as .pcd"):
        save_pointcloud(tmp_path / "c.pcd", torch.zeros(3, 3), features=torch.rand(3, 1), feature_names=[name])
    assert not list(tmp_path.iterdir())


def test_organized_cloud_comes_row_by_row_and_nan_points_raise(tmp_path):
    grid = np.arange(2 * 3 * 3, dtype="<f4").reshape(6, 3)
    path = tmp_path / "org.pcd"
    path.write_bytes(pcl_header(width=3, height=2) + grid.tobytes())
    pcd = read_pcd(path)
    assert (pcd.width, pcd.height) == (3, 2) and np.array_equal(load_pointcloud(path).points.numpy(), grid)
    grid[4] = np.nan
    path.write_bytes(pcl_header(width=3, height=2) + grid.tobytes())
    with pytest.raises(ValueError, match=rf"{path}: point 4: point coordinates must be finite"):
        load_pointcloud(path)


@pytest.mark.skipif(not MODELNET_PCD.is_file(), reason="the shared ModelNet10 PCD folder is not present")
def test_modelnet10_pcd_file_loads():
    cloud = load_pointcloud(MODELNET_PCD)
    assert cloud.points.shape == (1024, 3) and bool(cloud.points.isfinite().all())
    assert cloud.normals is None and cloud.features is None
    assert read_pcd(MODELNET_PCD).data == "binary"


@pytest.mark.skipif(not HAS_OPEN3D, reason="open3d is not installed")
@pytest.mark.parametrize("mode", ["ascii", "binary", "compressed"])
def test_agrees_with_open3d_both_ways(tmp_path, mode):
    import open3d as o3d

    points, normals, _ = random_cloud(n=300, dtype=torch.float64, seed=4)
    colors = torch.rand(300, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    cloud = o3d.geometry.PointCloud()
    cloud.points = o3d.utility.Vector3dVector(points.numpy())
    cloud.normals = o3d.utility.Vector3dVector(normals.numpy())
    cloud.colors = o3d.utility.Vector3dVector(colors.numpy())
    path = str(tmp_path / "o3d.pcd")
    assert o3d.io.write_point_cloud(path, cloud, write_ascii=mode == "ascii", compressed=mode == "compressed")
    theirs = o3d.io.read_point_cloud(path)
    ours = load_pointcloud(path)
    assert read_pcd(path).data == {"ascii": "ascii", "binary": "binary", "compressed": "binary_compressed"}[mode]
    assert torch.equal(ours.points, torch.from_numpy(np.asarray(theirs.points)).float())
    assert torch.equal(ours.normals, torch.from_numpy(np.asarray(theirs.normals)).float())
    assert ours.feature_names == ("r", "g", "b")
    assert torch.equal(ours.features, torch.from_numpy(np.asarray(theirs.colors) * 255).round().float())

    if mode != "compressed":  # and Open3D reads what we write
        save_pointcloud(tmp_path / "ours.pcd", points.float(), normals=normals.float(), binary=mode == "binary")
        back = o3d.io.read_point_cloud(str(tmp_path / "ours.pcd"))
        # Open3D keeps ascii values as parsed doubles: rounded to the fields' float32 they are ours
        assert np.array_equal(np.asarray(back.points).astype(np.float32), points.float().numpy())
        assert np.array_equal(np.asarray(back.normals).astype(np.float32), normals.float().numpy())


# bad files ---------------------------------------------------------------------------------------------
GOOD_BODY = np.zeros((3, 3), dtype="<f4").tobytes()


@pytest.mark.parametrize("data,match", [
    (pcl_header().split(b"DATA")[0], "ends without a DATA line"),
    (b"", "ends without a DATA line"),
    (b"ply\nformat ascii 1.0\n", r":1: unknown PCD header keyword 'ply'"),
    (b"\xff\xfe\x00junk\nDATA binary\n", r":1: not a PCD header line"),
    (pcl_header().replace(b"FIELDS x y z\n", b""), "the PCD header has no FIELDS line"),
    (pcl_header().replace(b"WIDTH 3\n", b""), "the PCD header has no WIDTH line"),
    (pcl_header(size="4 4"), r":4: SIZE must have 3 values \(one byte size per field\), got 2"),
    (pcl_header(type_="F F Q"), "field 'z' has TYPE Q and SIZE 4"),
    (pcl_header(size="4 4 1"), "field 'z' has TYPE F and SIZE 1"),
    (pcl_header(count="1 1 0"), r":6: COUNT must hold one positive value count per field"),
    (pcl_header(points=4), r":10: POINTS \(4\) must equal WIDTH \* HEIGHT \(3 \* 1 = 3\)"),
    (pcl_header(data="binary_lzf"), r":11: DATA must be one of ascii, binary, binary_compressed"),
    (pcl_header(fields="x y x"), "field 'x' appears twice in FIELDS"),
    (pcl_header().replace(b"HEIGHT 1\n", b"HEIGHT 1\nWIDTH 3\n"), "WIDTH is given twice"),
    (pcl_header().replace(b"WIDTH 3", b"WIDTH three"), r":7: WIDTH must hold the number of points per row"),
    (pcl_header() + GOOD_BODY[:-5], r"DATA binary needs 3 points of 12 bytes = 36 bytes .* got 31 \(truncated"),
    (pcl_header() + GOOD_BODY + b"\0", r"got 37 \(trailing bytes; does the header describe the data\?\)"),
    (pcl_header(data="ascii") + b"0 0 0\n1 1 1\n", r"DATA ascii needs POINTS = 3 lines of point values, got 2 "
                                                    r"\(truncated\)"),
    (pcl_header(data="ascii") + b"0 0 0\n1 1 1\n2 2 2\n3 3 3\n", "needs POINTS = 3 lines .* got 4$"),
    (pcl_header(data="binary_compressed") + b"\1\0\0", "needs 8 bytes of sizes after the header, got 3"),
    (pcl_header(data="binary_compressed") + struct.pack("<II", 10, 35), "holds 35 bytes uncompressed, expected "
                                                                        r"3 points \* 12 bytes = 36"),
    (pcl_header(data="binary_compressed") + struct.pack("<II", 10, 36) + b"\0" * 4, "announces 10 compressed "
                                                                                   r"bytes, got 4 \(truncated\)"),
    (pcl_header(data="binary_compressed") + struct.pack("<II", 3, 36) + bytes([0, 0, 0x20]),
     "DATA binary_compressed: LZF data is truncated"),
    (pcl_header(fields="x y intensity") + GOOD_BODY, r"expected PCD fields x, y, z \(COUNT 1\), got FIELDS "
                                                     "x y intensity"),
    (pcl_header(fields="x y z", count="1 1 3", width=1) + GOOD_BODY[:20], r"expected PCD fields x, y, z"),
])
def test_bad_files_name_the_file_and_the_problem(tmp_path, data, match):
    path = tmp_path / "bad.pcd"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=match) as info:
        load_pointcloud(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("rows,line,match", [
    (b"0 0 0\n1 1\n2 2 2\n", 13, r"expected 3 values \(one per field and COUNT\), got 2"),
    (b"0 0 0\n1 1 1\n2 x 2\n", 14, "malformed value 'x'"),
])
def test_bad_ascii_rows_name_the_line(tmp_path, rows, line, match):
    path = tmp_path / "bad.pcd"
    path.write_bytes(pcl_header(data="ascii") + rows)
    with pytest.raises(ValueError, match=f"{path}:{line}: {match}"):
        load_pointcloud(path)


@pytest.mark.parametrize("value", [b"256", b"1.5", b"-1", b"nan"])
def test_ascii_integer_field_out_of_range_raises(tmp_path, value):
    path = tmp_path / "bad.pcd"
    path.write_bytes(pcl_header("x y z label", "4 4 4 1", "F F F U", "1 1 1 1", width=2, data="ascii")
                     + b"0 0 0 1\n1 1 1 " + value + b"\n")
    with pytest.raises(ValueError, match=f"{path}: field 'label' of point 1: expected an integer that fits uint8"):
        read_pcd(path)


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="gone.pcd"):
        load_pointcloud(tmp_path / "gone.pcd")
    with pytest.raises(FileNotFoundError, match="gone.pcd"):
        read_pcd(tmp_path / "gone.pcd")


@pytest.mark.parametrize("fields,error,match", [
    ({}, ValueError, "at least one field"),
    ({"a b": np.zeros(2)}, ValueError, "without whitespace"),
    ({"_": np.zeros(2)}, ValueError, "padding"),
    ({"": np.zeros(2)}, ValueError, "non-empty"),
    ({"a#b": np.zeros(2)}, ValueError, "without whitespace or '#'"),  # '#' starts a header comment
    ({"\u00e9": np.zeros(2)}, ValueError, "printable ascii"),  # the header is ascii
    ({"a\x00": np.zeros(2)}, ValueError, "printable ascii"),
    ({"x": [0.0, 1.0]}, TypeError, "field 'x' must be a numpy.ndarray, got list"),
    ({"x": np.zeros(2, dtype=bool)}, ValueError, "field 'x' must be an .* got bool"),
    ({"x": np.zeros(2, dtype=np.complex64)}, ValueError, "got complex64"),
    ({"x": np.zeros((2, 2, 2))}, ValueError, r"of shape \(2, 2, 2\)"),
    ({"x": np.zeros(2), "y": np.zeros(3)}, ValueError, r"field 'y' must have one row per point \(2\)"),
    ({"x": np.zeros((2, 0))}, ValueError, "at least one column"),
])
def test_write_pcd_rejects_bad_fields_and_writes_nothing(tmp_path, fields, error, match):
    with pytest.raises(error, match=match):
        write_pcd(tmp_path / "c.pcd", fields)
    assert not list(tmp_path.iterdir())


def test_failed_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "c.pcd"
    save_pointcloud(path, *random_cloud(seed=1))
    before = path.read_bytes()

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        save_pointcloud(path, *random_cloud(seed=2))
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == [path.name]
