"""numba and Triton kernels behind :mod:`geo4g.points`; no public names. Imported lazily."""
