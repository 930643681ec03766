"""Voxel grids and octrees: voxelisation, signed distance grids, marching cubes, 3-D CNNs,
voxel generators, octrees and octree networks, Deep Marching Cubes.

Grids are ``(B, R0, R1, R2)`` tensors indexed ``[b, x, y, z]``; ``bounds`` are ``(2, 3)`` or
``(B, 2, 3)`` ``[[xmin, ymin, zmin], [xmax, ymax, zmax]]`` and voxel ``(i, j, k)`` is centred at
``min + (index + 0.5) * (max - min) / R``.
"""
from .marching_cubes import marching_cubes
from .sdf import sdf_grid, signed_distance
from .voxelize import (MAX_GRID_BYTES, VoxelPoints, bounding_cubes, occupancy_to_mesh, triangle_box_overlap,
                       voxel_centers, voxelize_mesh, voxelize_points, voxels_to_points)

__all__ = [
    "marching_cubes", "sdf_grid", "signed_distance",
    "MAX_GRID_BYTES", "VoxelPoints", "bounding_cubes", "occupancy_to_mesh", "triangle_box_overlap",
    "voxel_centers", "voxelize_mesh", "voxelize_points", "voxels_to_points",
]
