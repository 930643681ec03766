"""Triton kernels behind :mod:`geo4g.losses`; no public names. Imported lazily (triton is optional)."""
