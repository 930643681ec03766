"""Conversions to and from trimesh, Open3D, PyTorch Geometric and PyTorch3D.

Each peer library is imported on first use; when it is missing the call raises
``ImportError`` naming the ``geo4g`` extra to install (``open3d``, ``pyg``;
trimesh is a core dependency; PyTorch3D is installed by its own instructions). Meshes go both ways as
``verts (V, 3)`` + ``faces (F, 3)``, point clouds as ``points (N, 3)`` with
optional ``normals (N, 3)`` (and ``features (N, C)`` where the peer has them).
"""
from __future__ import annotations

import importlib
from typing import Optional, Union

import numpy as np
import torch

from geo4g.structures import Meshes, Pointclouds
from geo4g.structures.checks import check_faces, check_tensor, describe

from ._common import check_mesh, check_points, check_rows_like, float_dtype, to_numpy
from .mesh_io import MeshData
from .pointcloud_io import PointcloudData

__all__ = [
    "to_trimesh", "from_trimesh", "to_open3d", "from_open3d",
    "to_pyg", "from_pyg", "to_pytorch3d", "from_pytorch3d",
]


# PyTorch3D has no PyPI wheel for most platforms, so no geo4g extra can install it.
_PYTORCH3D_HOW = "PyTorch3D's own install instructions (conda, or a source build against your torch)"


def _require(module: str, caller: str, extra: Optional[str] = None):
    """Import ``module`` or raise ``ImportError`` saying how to install it (the geo4g ``extra`` providing it)."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        package = module.split(".")[0]
        if package == "pytorch3d":
            how = _PYTORCH3D_HOW
        else:
            how = f"pip install 'geo4g[{extra}]'" if extra else f"pip install {package}"
        raise ImportError(f"{caller} needs {package!r}, which is not installed; install it with `{how}`") from err


def _cloud(points, normals, features, names=("points", "normals", "features")) -> PointcloudData:
    """Check a point cloud (tensors or numpy) and return it as ``PointcloudData`` of tensors.

    ``names`` are the argument names used in error messages.
    """
    points = check_points(points, names[0])
    n = points.shape[0]
    normals = None if normals is None else check_rows_like(normals, names[1], n, 3, "(N, 3)")
    features = None if features is None else check_rows_like(features, names[2], n, None, "(N, C)")
    names = () if features is None else tuple(f"feature_{i}" for i in range(features.shape[1]))
    return PointcloudData(points, normals, features, names)


def _no_extras(geometry, **extras) -> None:
    given = [k for k, v in extras.items() if v is not None]
    if given:
        raise ValueError(f"{', '.join(given)} must be None when geometry is a {type(geometry).__name__} batch, "
                         "which carries its own faces / normals / features")


# trimesh ----------------------------------------------------------------------
def to_trimesh(verts, faces=None):
    """Make a ``trimesh.Trimesh`` from ``verts (V, 3)`` and ``faces (F, 3)``, or a
    ``trimesh.PointCloud`` from ``points (N, 3)`` when ``faces`` is ``None``.

    The mesh is built with ``process=False``: vertex order and unreferenced or
    duplicate vertices are kept. Inputs are tensors or numpy arrays.
    """
    trimesh = _require("trimesh", "to_trimesh")
    if faces is None:
        return trimesh.PointCloud(to_numpy(check_points(verts, "points")))
    verts, faces = check_mesh(verts, faces)
    return trimesh.Trimesh(vertices=to_numpy(verts), faces=to_numpy(faces), process=False)


def from_trimesh(geometry, dtype: torch.dtype = torch.float32) -> Union[MeshData, PointcloudData]:
    """``MeshData(verts (V, 3) dtype, faces (F, 3) long)`` from a ``trimesh.Trimesh``, or
    ``PointcloudData(points (N, 3) dtype, None, None, ())`` from a ``trimesh.PointCloud``.

    A ``trimesh.Scene`` raises ``TypeError``: merge it first with ``scene.to_mesh()``
    (``scene.dump(concatenate=True)`` in older trimesh).
    """
    trimesh = _require("trimesh", "from_trimesh")
    dtype = float_dtype(dtype)
    if isinstance(geometry, trimesh.Trimesh):
        verts, faces = check_mesh(np.asarray(geometry.vertices), np.asarray(geometry.faces),
                                  ("geometry.vertices", "geometry.faces"))
        return MeshData(verts.to(dtype), faces.long())
    if isinstance(geometry, trimesh.PointCloud):
        return PointcloudData(check_points(np.asarray(geometry.vertices), "geometry.vertices").to(dtype),
                              None, None, ())
    raise TypeError(f"geometry must be a trimesh.Trimesh or trimesh.PointCloud, got {describe(geometry)}; "
                    "merge a trimesh.Scene first with scene.to_mesh()")


# Open3D -----------------------------------------------------------------------
def to_open3d(verts, faces=None, normals=None):
    """Make an ``open3d.geometry.TriangleMesh`` from ``verts (V, 3)`` and ``faces (F, 3)``
    (``normals (V, 3)`` become its vertex normals), or an ``open3d.geometry.PointCloud``
    from ``points (N, 3)`` and optional ``normals (N, 3)`` when ``faces`` is ``None``.

    Open3D stores float64 coordinates and int32 faces.
    """
    o3d = _require("open3d", "to_open3d", "open3d")
    vec3d = o3d.utility.Vector3dVector
    if faces is None:
        cloud = _cloud(verts, normals, None)
        pcd = o3d.geometry.PointCloud(vec3d(to_numpy(cloud.points).astype(np.float64)))
        if cloud.normals is not None:
            pcd.normals = vec3d(to_numpy(cloud.normals).astype(np.float64))
        return pcd
    verts, faces = check_mesh(verts, faces)
    mesh = o3d.geometry.TriangleMesh(vec3d(to_numpy(verts).astype(np.float64)),
                                     o3d.utility.Vector3iVector(to_numpy(faces).astype(np.int32)))
    if normals is not None:
        mesh.vertex_normals = vec3d(to_numpy(check_rows_like(normals, "normals", len(verts), 3, "(V, 3)"))
                                    .astype(np.float64))
    return mesh


def from_open3d(geometry, dtype: torch.dtype = torch.float32) -> Union[MeshData, PointcloudData]:
    """``MeshData(verts (V, 3) dtype, faces (F, 3) long)`` from an ``open3d.geometry.TriangleMesh``,
    or ``PointcloudData(points (N, 3), normals (N, 3) | None, None, ())`` from an
    ``open3d.geometry.PointCloud``. Colours are not carried over.
    """
    o3d = _require("open3d", "from_open3d", "open3d")
    dtype = float_dtype(dtype)
    if isinstance(geometry, o3d.geometry.TriangleMesh):
        verts, faces = check_mesh(np.asarray(geometry.vertices), np.asarray(geometry.triangles),
                                  ("geometry.vertices", "geometry.triangles"))
        return MeshData(verts.to(dtype), faces.long())
    if isinstance(geometry, o3d.geometry.PointCloud):
        cloud = _cloud(np.asarray(geometry.points), np.asarray(geometry.normals) if geometry.has_normals() else None,
                       None, ("geometry.points", "geometry.normals", ""))
        return cloud._replace(points=cloud.points.to(dtype),
                              normals=None if cloud.normals is None else cloud.normals.to(dtype))
    raise TypeError(f"geometry must be an open3d.geometry.TriangleMesh or PointCloud, got {describe(geometry)}")


# PyTorch Geometric ------------------------------------------------------------
def to_pyg(geometry, faces=None, normals=None, features=None):
    """Make a ``torch_geometric.data.Data`` (one shape) or ``Batch`` (a geo4g batch).

    Args:
        geometry: ``(V, 3)`` vertices or ``(N, 3)`` points (tensor or numpy),
            a ``Meshes`` batch or a ``Pointclouds`` batch.
        faces: ``(F, 3)`` integer faces for tensor input, or ``None`` (a point cloud).
        normals: ``(N, 3)`` per-point normals for tensor input, or ``None``.
        features: ``(N, C)`` per-point features for tensor input, or ``None``.

    Returns:
        ``Data`` with ``pos (N, 3)``, ``face (3, F)`` long (meshes), ``normal (N, 3)``
        and ``x (N, C)`` where given; for a batch, ``Batch.from_data_list`` of one
        such ``Data`` per element. Tensors keep their dtype and device.
    """
    pyg = _require("torch_geometric.data", "to_pyg", "pyg")
    if isinstance(geometry, Meshes):
        _no_extras(geometry, faces=faces, normals=normals, features=features)
        return pyg.Batch.from_data_list([pyg.Data(pos=v, face=f.t().contiguous())
                                         for v, f in zip(geometry.verts_list(), geometry.faces_list())])
    if isinstance(geometry, Pointclouds):
        _no_extras(geometry, faces=faces, normals=normals, features=features)
        n = len(geometry)
        normals, features = geometry.normals_list() or [None] * n, geometry.features_list() or [None] * n
        return pyg.Batch.from_data_list([_pyg_data(pyg.Data, p, None, nrm, feat)
                                         for p, nrm, feat in zip(geometry.points_list(), normals, features)])
    return _pyg_data(pyg.Data, geometry, faces, normals, features)


def _pyg_data(data_cls, points, faces, normals, features):
    cloud = _cloud(points, normals, features)
    attrs = {"pos": cloud.points, "normal": cloud.normals, "x": cloud.features}
    if faces is not None:
        attrs["face"] = check_mesh(cloud.points, faces)[1].long().t().contiguous()
    return data_cls(**{k: v for k, v in attrs.items() if v is not None})


def from_pyg(data) -> Union[MeshData, PointcloudData, Meshes, Pointclouds]:
    """Convert PyTorch Geometric data back to geo4g.

    A ``Data`` with ``face (3, F)`` gives ``MeshData(verts=pos, faces=face.t())``;
    without ``face`` it gives ``PointcloudData(pos, normal (or norm), x, names)``.
    A ``Batch`` gives a ``Meshes`` (when it has ``face``) or ``Pointclouds`` batch.
    Tensors keep their dtype and device.
    """
    pyg = _require("torch_geometric.data", "from_pyg", "pyg")
    if isinstance(data, pyg.Batch):
        items = [_from_pyg_data(d, f"data[{i}]") for i, d in enumerate(data.to_data_list())]
        if items and isinstance(items[0], MeshData):
            return Meshes(verts=[m.verts for m in items], faces=[m.faces for m in items])
        return Pointclouds(points=[c.points for c in items],
                           normals=[c.normals for c in items] if items and items[0].normals is not None else None,
                           features=[c.features for c in items] if items and items[0].features is not None else None)
    if isinstance(data, pyg.Data):
        return _from_pyg_data(data, "data")
    raise TypeError(f"data must be a torch_geometric.data.Data or Batch, got {describe(data)}")


def _from_pyg_data(data, name: str) -> Union[MeshData, PointcloudData]:
    pos = getattr(data, "pos", None)
    if pos is None:
        raise ValueError(f"{name}.pos must hold the (N, 3) positions, got None")
    face = getattr(data, "face", None)
    if face is not None:
        check_tensor(face, f"{name}.face", ndim=2, kind="int", shape_hint="(3, F)")
        if face.shape[0] != 3:
            raise ValueError(f"{name}.face must have shape (3, F), got {tuple(face.shape)}")
        points = check_points(pos, f"{name}.pos")
        return MeshData(points, check_faces(face.t().long(), f"{name}.face.t()", points.shape[0]))
    normal_name = "normal" if getattr(data, "normal", None) is not None else "norm"
    return _cloud(pos, getattr(data, normal_name, None), getattr(data, "x", None),
                  (f"{name}.pos", f"{name}.{normal_name}", f"{name}.x"))


# PyTorch3D --------------------------------------------------------------------
def to_pytorch3d(geometry, faces=None, normals=None, features=None):
    """Make a ``pytorch3d.structures.Meshes`` or ``Pointclouds``.

    Args:
        geometry: a geo4g ``Meshes`` or ``Pointclouds`` batch, or one shape as
            ``(V, 3)`` vertices with ``faces (F, 3)``, or ``(N, 3)`` points with
            optional ``normals (N, 3)`` and ``features (N, C)`` (a batch of one).

    PyTorch3D computes mesh normals itself, so ``normals`` and ``features`` must
    be ``None`` for a mesh.
    """
    p3d = _require("pytorch3d.structures", "to_pytorch3d")
    if isinstance(geometry, Meshes):
        _no_extras(geometry, faces=faces, normals=normals, features=features)
        return p3d.Meshes(verts=geometry.verts_list(), faces=geometry.faces_list())
    if isinstance(geometry, Pointclouds):
        _no_extras(geometry, faces=faces, normals=normals, features=features)
        return p3d.Pointclouds(points=geometry.points_list(), normals=geometry.normals_list(),
                               features=geometry.features_list())
    if faces is not None:
        if normals is not None or features is not None:
            raise ValueError("normals and features must be None for a mesh: pytorch3d Meshes compute their normals")
        verts, faces = check_mesh(geometry, faces)
        return p3d.Meshes(verts=[verts], faces=[faces.long()])
    cloud = _cloud(geometry, normals, features)
    return p3d.Pointclouds(points=[cloud.points], normals=None if cloud.normals is None else [cloud.normals],
                           features=None if cloud.features is None else [cloud.features])


def from_pytorch3d(geometry) -> Union[Meshes, Pointclouds]:
    """A geo4g ``Meshes`` from ``pytorch3d.structures.Meshes`` (verts and faces lists), or a
    ``Pointclouds`` from ``pytorch3d.structures.Pointclouds`` (points, normals, features lists).
    Textures are not carried over.
    """
    p3d = _require("pytorch3d.structures", "from_pytorch3d")
    if isinstance(geometry, p3d.Meshes):
        return Meshes(verts=geometry.verts_list(), faces=geometry.faces_list())
    if isinstance(geometry, p3d.Pointclouds):
        return Pointclouds(points=geometry.points_list(), normals=geometry.normals_list(),
                           features=geometry.features_list())
    raise TypeError(f"geometry must be a pytorch3d.structures.Meshes or Pointclouds, got {describe(geometry)}")
