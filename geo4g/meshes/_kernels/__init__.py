"""numba and Triton kernels behind geo4g.meshes; no public names."""
