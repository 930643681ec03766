"""Voxel grids and octrees: voxelisation, signed distance grids, marching cubes, 3-D CNNs,
voxel generators, scan completion, octrees and octree networks, Deep Marching Cubes.

Grids are ``(B, R0, R1, R2)`` tensors indexed ``[b, x, y, z]``; ``bounds`` are ``(2, 3)`` or
``(B, 2, 3)`` ``[[xmin, ymin, zmin], [xmax, ymax, zmax]]`` and voxel ``(i, j, k)`` is centred at
``min + (index + 0.5) * (max - min) / R``.
"""
from .classifiers import ShapeNets3D, VoxNet, as_voxel_input
from .completion import CompletionNet, Visibility, random_viewpoints, visibility, visible_voxels
from .dmc import (DMC_LOSS_WEIGHTS, TOPOLOGY_SETS, DeepMarchingCubes, DifferentiableMarchingCubes, DMCEncoder, DMCLoss,
                  DMCOutput, DMCTopology, curvature_loss, dmc_loss, edge_vertices, expected_point_to_mesh_loss,
                  extract_mesh, point_triangle_distance, shell_occupancy_loss, smoothness_loss, topology_cases,
                  topology_probabilities)
from .generative import (GANLosses, GANStep, UpBlock, VAELoss, VAEOutput, VoxelAutoEncoder, VoxelDecoder,
                         VoxelDiscriminator, VoxelEncoder, VoxelGenerator, VoxelVAE, gan_losses, gan_train_step,
                         kl_divergence, occupancy_loss, vae_loss)
from .marching_cubes import marching_cubes
from .ocnn import OCNNClassifier, OCNNOutput, OctreeConv, OctreePool, octree_conv
from .octree import MAX_DEPTH, Octree, find_neighbors, morton_decode, morton_encode
from .ogn import (PROPAGATIONS, DenseOccupancyDecoder, OccupancyEncoder, OctreeGeneratingNetwork, OctreeUpConv,
                  OGNOutput, ogn_loss)
from .sdf import sdf_grid, signed_distance
from .voxelize import (MAX_GRID_BYTES, VoxelPoints, bounding_cubes, occupancy_to_mesh, triangle_box_overlap,
                       voxel_centers, voxelize_mesh, voxelize_points, voxels_to_points)

__all__ = [
    # grids and conversions
    "MAX_GRID_BYTES", "VoxelPoints", "bounding_cubes", "occupancy_to_mesh", "triangle_box_overlap",
    "voxel_centers", "voxelize_mesh", "voxelize_points", "voxels_to_points",
    "marching_cubes", "sdf_grid", "signed_distance",
    # classifiers
    "ShapeNets3D", "VoxNet", "as_voxel_input",
    # generative models
    "GANLosses", "GANStep", "UpBlock", "VAELoss", "VAEOutput", "VoxelAutoEncoder", "VoxelDecoder",
    "VoxelDiscriminator", "VoxelEncoder", "VoxelGenerator", "VoxelVAE", "gan_losses", "gan_train_step",
    "kl_divergence", "occupancy_loss", "vae_loss",
    # scan completion
    "CompletionNet", "Visibility", "random_viewpoints", "visibility", "visible_voxels",
    # octrees
    "MAX_DEPTH", "Octree", "find_neighbors", "morton_decode", "morton_encode",
    "OCNNClassifier", "OCNNOutput", "OctreeConv", "OctreePool", "octree_conv",
    "PROPAGATIONS", "DenseOccupancyDecoder", "OccupancyEncoder", "OctreeGeneratingNetwork", "OctreeUpConv",
    "OGNOutput", "ogn_loss",
    # Deep Marching Cubes
    "DMC_LOSS_WEIGHTS", "TOPOLOGY_SETS", "DeepMarchingCubes", "DifferentiableMarchingCubes", "DMCEncoder", "DMCLoss",
    "DMCOutput", "DMCTopology", "curvature_loss", "dmc_loss", "edge_vertices", "expected_point_to_mesh_loss",
    "extract_mesh", "point_triangle_distance", "shell_occupancy_loss", "smoothness_loss", "topology_cases",
    "topology_probabilities",
]
