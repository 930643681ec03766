"""Triangle-mesh ops: surface sampling (more to come: Laplacians, spectral bases, mesh convolutions)."""
from .sample import SurfaceSamples, sample_points_from_meshes, sample_surface

__all__ = ["sample_points_from_meshes", "sample_surface", "SurfaceSamples"]
