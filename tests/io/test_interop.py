"""Conversions to and from trimesh, Open3D, PyTorch Geometric and PyTorch3D, and their missing-import errors."""
import re
import sys
import types

import numpy as np
import pytest
import torch

from geo4g.io import (
    MeshData,
    PointcloudData,
    from_open3d,
    from_pyg,
    from_pytorch3d,
    from_trimesh,
    to_open3d,
    to_pyg,
    to_pytorch3d,
    to_trimesh,
)
from geo4g.structures import Meshes, Pointclouds


def random_mesh(num_verts=20, num_faces=30, seed=0, dtype=torch.float32, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    verts = torch.randn(num_verts, 3, generator=g).to(dtype)
    faces = torch.randint(0, num_verts, (num_faces, 3), generator=g)
    return verts.to(device), faces.to(device)


def random_cloud(n=25, channels=4, seed=0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(n, d, generator=g).to(device) for d in (3, 3, channels))


# trimesh ------------------------------------------------------------------------
def test_trimesh_mesh_and_cloud_round_trip():
    trimesh = pytest.importorskip("trimesh")
    verts, faces = random_mesh()
    mesh = to_trimesh(verts, faces)
    assert isinstance(mesh, trimesh.Trimesh) and mesh.vertices.shape == (20, 3)  # process=False kept them all
    back = from_trimesh(mesh)
    assert isinstance(back, MeshData) and torch.equal(back.verts, verts) and torch.equal(back.faces, faces)
    assert from_trimesh(mesh, dtype=torch.float64).verts.dtype == torch.float64
    points = random_cloud()[0]
    cloud = to_trimesh(points)
    assert isinstance(cloud, trimesh.PointCloud)
    got = from_trimesh(cloud)
    assert isinstance(got, PointcloudData) and torch.equal(got.points, points) and got.normals is None


def test_trimesh_rejects_scenes_and_bad_faces():
    trimesh = pytest.importorskip("trimesh")
    with pytest.raises(TypeError, match="trimesh.Trimesh or trimesh.PointCloud.*scene.to_mesh"):
        from_trimesh(trimesh.Scene())
    with pytest.raises(ValueError, match="faces indices must lie in"):
        to_trimesh(torch.zeros(3, 3), torch.tensor([[0, 1, 5]]))


# Open3D -------------------------------------------------------------------------
def test_open3d_mesh_and_cloud_round_trip():
    o3d = pytest.importorskip("open3d")
    verts, faces = random_mesh(dtype=torch.float64)
    normals = torch.nn.functional.normalize(torch.randn(20, 3, dtype=torch.float64), dim=1)
    mesh = to_open3d(verts, faces, normals=normals)
    assert isinstance(mesh, o3d.geometry.TriangleMesh)
    assert np.array_equal(np.asarray(mesh.vertex_normals), normals.numpy())
    back = from_open3d(mesh, dtype=torch.float64)
    assert torch.equal(back.verts, verts) and torch.equal(back.faces, faces)
    points, normals, _ = random_cloud()
    pcd = to_open3d(points, normals=normals)
    assert isinstance(pcd, o3d.geometry.PointCloud)
    got = from_open3d(pcd)
    assert torch.equal(got.points, points) and torch.equal(got.normals, normals) and got.features is None
    assert from_open3d(to_open3d(points)).normals is None


def test_open3d_rejects_other_geometry_and_bad_normals():
    o3d = pytest.importorskip("open3d")
    with pytest.raises(TypeError, match="TriangleMesh or PointCloud"):
        from_open3d(o3d.geometry.LineSet())
    with pytest.raises(ValueError, match="normals must have one row per point"):
        to_open3d(torch.zeros(4, 3), normals=torch.zeros(3, 3))


# PyTorch Geometric ---------------------------------------------------------------
def test_pyg_data_round_trip_for_mesh_and_cloud(device):
    pyg = pytest.importorskip("torch_geometric.data")
    verts, faces = random_mesh(device=device)
    data = to_pyg(verts, faces)
    assert isinstance(data, pyg.Data) and data.face.shape == (3, 30) and data.pos.device == verts.device
    back = from_pyg(data)
    assert isinstance(back, MeshData) and torch.equal(back.verts, verts) and torch.equal(back.faces, faces)
    points, normals, features = random_cloud(device=device)
    data = to_pyg(points, normals=normals, features=features)
    assert torch.equal(data.normal, normals) and torch.equal(data.x, features) and "face" not in data
    got = from_pyg(data)
    assert isinstance(got, PointcloudData)
    assert torch.equal(got.points, points) and torch.equal(got.normals, normals)
    assert torch.equal(got.features, features) and len(got.feature_names) == 4


def test_pyg_reads_norm_written_by_generate_mesh_normals():
    pyg = pytest.importorskip("torch_geometric.data")
    points, normals, _ = random_cloud()
    got = from_pyg(pyg.Data(pos=points, norm=normals))
    assert torch.equal(got.normals, normals) and got.features is None


def test_pyg_batches_from_meshes_and_pointclouds():
    pyg = pytest.importorskip("torch_geometric.data")
    meshes = [random_mesh(10 + i, 5 + i, seed=i) for i in range(3)]
    batch = to_pyg(Meshes(verts=[m[0] for m in meshes], faces=[m[1] for m in meshes]))
    assert isinstance(batch, pyg.Batch) and batch.num_graphs == 3
    back = from_pyg(batch)
    assert isinstance(back, Meshes)
    for (v, f), bv, bf in zip(meshes, back.verts_list(), back.faces_list()):
        assert torch.equal(v, bv) and torch.equal(f, bf)  # per-mesh indices, not the batch-offset ones
    clouds = [random_cloud(5 + i, seed=i) for i in range(2)]
    pcs = Pointclouds(points=[c[0] for c in clouds], normals=[c[1] for c in clouds], features=[c[2] for c in clouds])
    got = from_pyg(to_pyg(pcs))
    assert isinstance(got, Pointclouds)
    for c, p, n, x in zip(clouds, got.points_list(), got.normals_list(), got.features_list()):
        assert torch.equal(c[0], p) and torch.equal(c[1], n) and torch.equal(c[2], x)
    assert from_pyg(to_pyg(Pointclouds([c[0] for c in clouds]))).normals_list() is None


def test_pyg_bad_input():
    pyg = pytest.importorskip("torch_geometric.data")
    with pytest.raises(ValueError, match=r"data\.pos must hold the \(N, 3\) positions"):
        from_pyg(pyg.Data(x=torch.zeros(3, 2)))
    with pytest.raises(ValueError, match=r"data\.face must have shape \(3, F\)"):
        from_pyg(pyg.Data(pos=torch.zeros(3, 3), face=torch.zeros(4, 2, dtype=torch.long)))
    with pytest.raises(ValueError, match=r"data\.face\.t\(\) indices must lie in \[0, 3\)"):
        from_pyg(pyg.Data(pos=torch.zeros(3, 3), face=torch.tensor([[0], [1], [3]])))
    with pytest.raises(ValueError, match=r"data\.pos must be finite"):
        from_pyg(pyg.Data(pos=torch.full((2, 3), float("nan"))))
    with pytest.raises(TypeError, match="Data or Batch"):
        from_pyg({"pos": torch.zeros(3, 3)})
    with pytest.raises(ValueError, match="normals must be None when geometry is a Meshes batch"):
        to_pyg(Meshes(verts=[torch.zeros(3, 3)], faces=[torch.tensor([[0, 1, 2]])]), normals=torch.zeros(3, 3))


# PyTorch3D (not installable here: a fake module mimics its list APIs) -----------------
class FakeP3DMeshes:
    def __init__(self, verts, faces):
        self._verts, self._faces = list(verts), list(faces)

    def verts_list(self):
        return self._verts

    def faces_list(self):
        return self._faces


class FakeP3DPointclouds:
    def __init__(self, points, normals=None, features=None):
        self._points, self._normals, self._features = list(points), normals, features

    def points_list(self):
        return self._points

    def normals_list(self):
        return self._normals

    def features_list(self):
        return self._features


@pytest.fixture
def fake_pytorch3d(monkeypatch):
    package = types.ModuleType("pytorch3d")
    structures = types.ModuleType("pytorch3d.structures")
    structures.Meshes, structures.Pointclouds = FakeP3DMeshes, FakeP3DPointclouds
    package.structures = structures
    monkeypatch.setitem(sys.modules, "pytorch3d", package)
    monkeypatch.setitem(sys.modules, "pytorch3d.structures", structures)
    return structures


def test_pytorch3d_meshes_round_trip(fake_pytorch3d):
    meshes = [random_mesh(8 + i, 4 + i, seed=i) for i in range(2)]
    ours = Meshes(verts=[m[0] for m in meshes], faces=[m[1] for m in meshes])
    theirs = to_pytorch3d(ours)
    assert isinstance(theirs, FakeP3DMeshes) and len(theirs.verts_list()) == 2
    back = from_pytorch3d(theirs)
    assert isinstance(back, Meshes)
    for (v, f), bv, bf in zip(meshes, back.verts_list(), back.faces_list()):
        assert torch.equal(v, bv) and torch.equal(f, bf)
    single = to_pytorch3d(*meshes[0])
    assert torch.equal(single.verts_list()[0], meshes[0][0]) and torch.equal(single.faces_list()[0], meshes[0][1])


def test_pytorch3d_pointclouds_round_trip(fake_pytorch3d):
    clouds = [random_cloud(6 + i, seed=i) for i in range(2)]
    ours = Pointclouds(points=[c[0] for c in clouds], normals=[c[1] for c in clouds],
                       features=[c[2] for c in clouds])
    theirs = to_pytorch3d(ours)
    assert isinstance(theirs, FakeP3DPointclouds)
    back = from_pytorch3d(theirs)
    for c, p, n, x in zip(clouds, back.points_list(), back.normals_list(), back.features_list()):
        assert torch.equal(c[0], p) and torch.equal(c[1], n) and torch.equal(c[2], x)
    single = to_pytorch3d(clouds[0][0])
    assert single.normals_list() is None and single.features_list() is None
    assert from_pytorch3d(single).normals_list() is None


def test_pytorch3d_bad_input(fake_pytorch3d):
    with pytest.raises(ValueError, match="normals and features must be None for a mesh"):
        to_pytorch3d(*random_mesh(), normals=torch.zeros(20, 3))
    with pytest.raises(TypeError, match="pytorch3d.structures.Meshes or Pointclouds"):
        from_pytorch3d(object())
    with pytest.raises(ValueError, match=r"faces\[0\] indices must lie in"):
        from_pytorch3d(FakeP3DMeshes([torch.zeros(3, 3)], [torch.tensor([[0, 1, 3]])]))


@pytest.mark.parametrize("module,call,extra", [
    ("pytorch3d", lambda: to_pytorch3d(torch.zeros(2, 3)), "PyTorch3D's own install instructions"),
    ("pytorch3d", lambda: from_pytorch3d(None), "PyTorch3D's own install instructions"),
    ("open3d", lambda: to_open3d(torch.zeros(2, 3)), "geo4g[open3d]"),
    ("open3d", lambda: from_open3d(None), "geo4g[open3d]"),
    ("torch_geometric", lambda: to_pyg(torch.zeros(2, 3)), "geo4g[pyg]"),
    ("torch_geometric", lambda: from_pyg(None), "geo4g[pyg]"),
    ("trimesh", lambda: to_trimesh(torch.zeros(2, 3)), "pip install trimesh"),
    ("trimesh", lambda: from_trimesh(None), "pip install trimesh"),
])
def test_missing_peer_raises_import_error_naming_the_extra(monkeypatch, module, call, extra):
    for name in list(sys.modules):
        if name == module or name.startswith(module + "."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    with pytest.raises(ImportError, match=f"needs '{module}'.*{re.escape(extra)}"):
        call()
