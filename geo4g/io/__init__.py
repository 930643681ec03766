"""Reading and writing meshes and point clouds, and conversions to peer libraries.

Meshes: ``load_mesh`` / ``save_mesh`` for OBJ, OFF, PLY and STL (ascii and
binary), ``load_meshes`` for a ``Meshes`` batch. Point clouds:
``load_pointcloud`` / ``save_pointcloud`` for PLY, XYZ, PTS, NPY, NPZ and PCD,
``load_pointclouds`` for a ``Pointclouds`` batch. ``read_ply`` / ``write_ply``
give every PLY element and property (labels, colours, ...), ``read_pcd`` /
``write_pcd`` every PCD field. Every save is atomic.
Interop (each peer imported on first use): trimesh, Open3D, PyTorch Geometric
and PyTorch3D.
"""
from .interop import (
    from_open3d,
    from_pyg,
    from_pytorch3d,
    from_trimesh,
    to_open3d,
    to_pyg,
    to_pytorch3d,
    to_trimesh,
)
from .mesh_io import MESH_FORMATS, MeshData, load_mesh, load_meshes, save_mesh
from .pcd import PcdData, read_pcd, write_pcd
from .ply import PlyData, PlyList, read_ply, write_ply
from .pointcloud_io import POINTCLOUD_FORMATS, PointcloudData, load_pointcloud, load_pointclouds, save_pointcloud

__all__ = [
    "MESH_FORMATS",
    "MeshData",
    "POINTCLOUD_FORMATS",
    "PcdData",
    "PlyData",
    "PlyList",
    "PointcloudData",
    "from_open3d",
    "from_pyg",
    "from_pytorch3d",
    "from_trimesh",
    "load_mesh",
    "load_meshes",
    "load_pointcloud",
    "load_pointclouds",
    "read_pcd",
    "read_ply",
    "save_mesh",
    "save_pointcloud",
    "to_open3d",
    "to_pyg",
    "to_pytorch3d",
    "to_trimesh",
    "write_pcd",
    "write_ply",
]
