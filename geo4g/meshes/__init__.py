"""Triangle-mesh ops: surface sampling (more to come: Laplacians, spectral bases, mesh convolutions)."""
from .sample import MeshSamples, SurfaceSamples, sample_meshes, sample_points_from_meshes, sample_surface

__all__ = ["MeshSamples", "SurfaceSamples", "sample_meshes", "sample_points_from_meshes", "sample_surface"]
