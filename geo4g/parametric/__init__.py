"""Parametric and procedural shapes: primitive solids (procedural shape programs build on them)."""
from .primitives import box_mesh, cylinder_mesh, icosphere, torus_mesh

__all__ = ["box_mesh", "cylinder_mesh", "icosphere", "torus_mesh"]
