"""numba and Triton kernels behind geo4g.voxels; no public names."""
