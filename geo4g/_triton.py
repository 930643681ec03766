"""The one guarded import of triton behind geo4g's GPU kernels.

Kernel modules do ``from geo4g._triton import interpreting, tl, triton``; they are imported
lazily by the ops, so a missing triton only matters when a Triton path is asked for.
"""
from __future__ import annotations

import os

try:
    import triton
    import triton.language as tl
except ImportError as exc:  # pragma: no cover - exercised only without triton
    raise ImportError(
        "geo4g's Triton kernels need triton: pip install 'geo4g[triton]' (or pip install triton)"
    ) from exc

__all__ = ["triton", "tl", "interpreting"]


def interpreting() -> bool:
    """Whether triton runs kernels in its CPU interpreter (``TRITON_INTERPRET=1``, the tests' mode)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"
