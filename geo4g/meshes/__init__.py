"""Triangle-mesh ops: surface sampling (more to come: Laplacians, spectral bases, mesh convolutions)."""
from .sample import sample_points_from_meshes

__all__ = ["sample_points_from_meshes"]
