"""Triangle meshes and spectral surfaces: sampling, Laplacians, spectral bases and descriptors,
heat-method geodesics, mesh regularisers, spectral / geodesic-patch / diffusion networks,
AtlasNet decoders and surface parameterisation.

Operators are sparse torch tensors over one mesh's vertices (a ``Meshes`` batch gives the
block-diagonal operator over its packed vertices); ops that mirror PyTorch3D keep its names.
"""
from .atlasnet import TEMPLATES, AtlasNet, AtlasNetDecoder, AtlasNetMesh, ImageEncoder, square_grid
from .diffusion_net import DiffusionNet, DiffusionNetBlock, LearnedTimeDiffusion, SpatialGradientFeatures
from .geodesic import (HeatGeodesics, PolarCoordinates, face_gradient, heat_method_geodesics, local_polar_coordinates,
                       vertex_divergence)
from .laplacian_matrices import (cot_laplacian, cotangent_weights, face_cotangents, laplacian, mass_matrix,
                                 norm_laplacian, robust_laplacian, sparse_to_scipy, stiffness_matrix)
from .monet import MoNet, SurfacePatches, batch_patches, surface_patches
from .parameterize import (AngleDistortion, FlatTorusMap, angle_distortion, area_distortion, boundary_loops,
                           check_disk, choose_cones, flat_torus_parameterization, flipped_faces, lscm,
                           surface_to_torus_image, torus_image_to_surface, tutte_embedding)
from .regularizers import mesh_edge_loss, mesh_laplacian_smoothing, mesh_normal_consistency
from .sample import MeshSamples, SurfaceSamples, sample_meshes, sample_points_from_meshes, sample_surface
from .spectral import (Eigenpairs, SPDSolver, clear_eigenpairs_cache, heat_diffusion, heat_kernel_signature,
                       laplacian_eigenpairs, spectral_filter, wave_kernel_signature)
from .spectral_conv import SpectralCNN, SpectralConv, cubic_bspline_basis
from .surface_data import (SurfaceBatch, SurfaceOperators, batch_operators, clear_operators_cache,
                           face_to_vertex_labels, hks_features, subdivide_long_edges, surface_operators, vertex_frames,
                           vertex_gradient_operators)

__all__ = [
    # sampling
    "MeshSamples", "SurfaceSamples", "sample_meshes", "sample_points_from_meshes", "sample_surface",
    # Laplacians
    "cot_laplacian", "cotangent_weights", "face_cotangents", "laplacian", "mass_matrix", "norm_laplacian",
    "robust_laplacian", "sparse_to_scipy", "stiffness_matrix",
    # spectral bases and descriptors
    "Eigenpairs", "SPDSolver", "clear_eigenpairs_cache", "heat_diffusion", "heat_kernel_signature",
    "laplacian_eigenpairs", "spectral_filter", "wave_kernel_signature",
    # geodesics
    "HeatGeodesics", "PolarCoordinates", "face_gradient", "heat_method_geodesics", "local_polar_coordinates",
    "vertex_divergence",
    # regularisers (PyTorch3D's names)
    "mesh_edge_loss", "mesh_laplacian_smoothing", "mesh_normal_consistency",
    # learning on surfaces
    "SurfaceBatch", "SurfaceOperators", "batch_operators", "clear_operators_cache", "face_to_vertex_labels",
    "hks_features", "subdivide_long_edges", "surface_operators", "vertex_frames", "vertex_gradient_operators",
    "SpectralCNN", "SpectralConv", "cubic_bspline_basis",
    "MoNet", "SurfacePatches", "batch_patches", "surface_patches",
    "DiffusionNet", "DiffusionNetBlock", "LearnedTimeDiffusion", "SpatialGradientFeatures",
    # AtlasNet
    "TEMPLATES", "AtlasNet", "AtlasNetDecoder", "AtlasNetMesh", "ImageEncoder", "square_grid",
    # parameterisation
    "AngleDistortion", "FlatTorusMap", "angle_distortion", "area_distortion", "boundary_loops", "check_disk",
    "choose_cones", "flat_torus_parameterization", "flipped_faces", "lscm", "surface_to_torus_image",
    "torus_image_to_surface", "tutte_embedding",
]
