"""Parametric and procedural shapes: primitive solids and the procedural shape programs built on them."""
from .primitives import box_mesh, cone_mesh, cylinder_mesh, icosphere, revolve_mesh, torus_mesh, tube_mesh

__all__ = ["box_mesh", "cone_mesh", "cylinder_mesh", "icosphere", "revolve_mesh", "torus_mesh", "tube_mesh"]
