"""Farthest point sampling (PyTorch3D's ``sample_farthest_points``).

Three implementations of the same indices, bit for bit (see ``_fps_indices``):

- ``"reference"``: plain torch, one sample at a time over the whole batch (any device, any
  float dtype); the oracle of the tests.
- ``"numba"``: compiled CPU kernels (``geo4g/points/_kernels/fps_numba.py``), float32 and
  float64. A batch runs one cloud per numba thread; a single cloud runs in the calling thread,
  or, from ``SPLIT_MIN_POINTS`` (65536) points, splits each step's update over the threads. The
  split pays one thread synchronisation per sample: measured on 2 idle cores it is no faster at
  16384 points, 1.05-1.3x faster at 32768 and 1.7-1.9x at 65536 (the halves then fit the two L2
  caches). When other processes hold the cores each synchronisation can wait for a time slice,
  and under ``OMP_WAIT_POLICY=PASSIVE`` each one wakes a sleeping thread (the split then measured
  1.7x slower at 65536 points), so below 65536 points the small gain is not worth that risk.
- ``"triton"``: a Triton kernel on CUDA, one program per cloud
  (``geo4g/points/_kernels/fps_triton.py``), float32 and float64.
"""
from __future__ import annotations

import importlib
from typing import Optional, Tuple, Union

import numpy as np
import torch

from geo4g.structures.checks import check_tensor, describe

from ._inputs import check_cloud

__all__ = ["sample_farthest_points"]

METHODS = ("reference", "numba", "triton")
SPLIT_MIN_POINTS = 65536  # a single CPU cloud this long splits each step over the numba threads (measured)
_FAST_DTYPES = (torch.float32, torch.float64)


def sample_farthest_points(points, lengths: Optional[torch.Tensor] = None, K: Union[int, torch.Tensor] = 50,
                           random_start_point: bool = False,
                           generator: Optional[torch.Generator] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Iterative farthest point sampling: each new point is the one farthest from those chosen.

    Sample 0 is index 0 (or a random valid point); sample ``k`` is the valid point whose squared
    Euclidean distance to its nearest earlier sample is largest, ties to the lower index.

    Args:
        points: ``(B, N, D)`` float, or a ``Pointclouds`` (then ``lengths`` must be ``None``).
        lengths: ``(B,)`` long valid points per cloud (default: all).
        K: samples per cloud: an int ``>= 1`` or a ``(B,)`` long tensor of them.
        random_start_point: start from a random valid point (else from index 0).
        generator: the ``torch.Generator`` of the random start (CPU).

    Returns:
        ``(sampled (B, max K, D), idx (B, max K))``. Where a cloud has fewer than ``K`` points
        (or its ``K`` is below the max), the extra slots hold ``idx = -1`` and zero points; an
        empty cloud gets only such slots. Ties go to the lower index: once every distinct point
        of a cloud is chosen, all distances are 0 and further samples are index 0. ``sampled`` is
        differentiable with respect to ``points`` (the choice itself is not).

    Which path runs (all give the same indices): on CPU float32/float64 tensors the numba
    kernels when numba is importable (one cloud per thread for a batch; one cloud in the calling
    thread, or split over the threads step by step from 65536 valid points); on CUDA float32/float64
    tensors the Triton kernel when triton is importable; otherwise (other devices or dtypes,
    missing optional packages) the plain torch reference, which is correct but slow. The first
    numba call of a process compiles or loads the kernels (seconds when the on-disk cache is
    cold, about 0.3 s when warm).

    Raises:
        ValueError / TypeError: naming the argument, for wrong shapes, lengths out of range,
            NaN in valid points, ``K < 1`` or a ``K`` tensor of the wrong shape.
    """
    points, lengths = check_cloud(points, lengths)
    B, N, D = points.shape
    ks = _check_k(K, B, points.device)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {describe(generator)}")
    start = torch.zeros(B, dtype=torch.long, device=points.device)
    if random_start_point:
        draws = torch.rand(B, generator=generator).to(points.device)
        start = (draws * lengths.clamp_min(1)).long().clamp_max((lengths - 1).clamp_min(0))
    with torch.no_grad():
        idx = _fps_indices(points.detach(), lengths, ks, start, _choose_method(points))
    if N == 0:  # nothing to gather: every slot is padding
        return points.new_zeros((B, idx.shape[1], D)), idx
    found = idx >= 0
    sampled = points.gather(1, idx.clamp_min(0)[..., None].expand(B, idx.shape[1], D))
    sampled = torch.where(found[..., None], sampled, torch.zeros((), dtype=points.dtype, device=points.device))
    return sampled, idx


def _check_k(K, B: int, device) -> torch.Tensor:
    if isinstance(K, torch.Tensor):
        check_tensor(K, "K", ndim=1, kind="int", shape_hint="(B,)")
        if K.shape[0] != B:
            raise ValueError(f"K must have one entry per cloud ({B}), got shape {tuple(K.shape)}")
        if K.numel() and int(K.min()) < 1:
            raise ValueError(f"K must be >= 1 for every cloud, got min {int(K.min())}")
        return K.to(device=device, dtype=torch.long)
    if not isinstance(K, int) or isinstance(K, bool) or K < 1:
        raise ValueError(f"K must be a positive int or a (B,) long tensor, got {K!r}")
    return torch.full((B,), K, dtype=torch.long, device=device)


def _fps_reference(points: torch.Tensor, lengths: torch.Tensor, ks: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
    """``(B, max K)`` indices, ``-1`` padded, one sample at a time over the whole batch (the test oracle)."""
    B, N, _ = points.shape
    width = int(ks.max()) if B else 0
    idx = torch.full((B, width), -1, dtype=torch.long, device=points.device)
    if N == 0 or width == 0:
        return idx
    valid = torch.arange(N, device=points.device)[None, :] < lengths[:, None]
    nearest = torch.where(valid, torch.full((B, N), float("inf"), dtype=points.dtype, device=points.device),
                          torch.full((B, N), -1.0, dtype=points.dtype, device=points.device))
    current = start
    rows = torch.arange(B, device=points.device)
    for k in range(width):
        active = (k < ks) & (k < lengths)
        idx[:, k] = torch.where(active, current, torch.full_like(current, -1))
        diff = points - points[rows, current][:, None]
        d = torch.zeros_like(nearest)
        for a in range(points.shape[2]):  # left to right: the fast paths repeat this arithmetic exactly
            d = d + diff[..., a] * diff[..., a]
        nearest = torch.where(valid, torch.minimum(nearest, d), nearest)
        current = nearest.argmax(1)
    return idx


def _choose_method(points: torch.Tensor) -> str:
    """The ``METHODS`` entry that ``sample_farthest_points`` runs for ``points``."""
    if points.dtype in _FAST_DTYPES:
        if points.device.type == "cpu" and _kernels("fps_numba") is not None:
            return "numba"
        if points.is_cuda and _kernels("fps_triton") is not None:
            return "triton"
    return "reference"


def _kernels(name: str):
    """The kernel module ``geo4g.points._kernels.<name>``, or ``None`` when its package (numba,
    triton) cannot be imported."""
    try:
        return importlib.import_module(f"geo4g.points._kernels.{name}")
    except ImportError:
        return None


def _fps_indices(points: torch.Tensor, lengths: torch.Tensor, ks: torch.Tensor, start: torch.Tensor,
                 method: str) -> torch.Tensor:
    """``(B, max K)`` long sample indices, ``-1`` padded, by ``method`` (one of ``METHODS``)."""
    if method == "reference":
        return _fps_reference(points, lengths, ks, start)
    if method == "triton":
        return _kernels("fps_triton").fps_triton(points, lengths, ks, start)
    return _fps_numba(_kernels("fps_numba"), points, lengths, ks, start)


def _fps_numba(kernels, points: torch.Tensor, lengths: torch.Tensor, ks: torch.Tensor,
               start: torch.Tensor) -> torch.Tensor:
    """``_fps_indices`` with the numba kernels: ``fps_batch`` for a batch; for one cloud ``fps_split``
    from ``SPLIT_MIN_POINTS`` points, else ``fps_cloud`` (in this thread)."""
    B = points.shape[0]
    width = int(ks.max()) if B else 0
    out = torch.full((B, width), -1, dtype=torch.long)
    if B == 0 or width == 0 or points.shape[1] == 0:
        return out
    # (B, D, N): one contiguous row per coordinate; numpy's copy is single-threaded, torch's
    # multi-threaded one stalls when another process holds a core
    soa = np.ascontiguousarray(points.numpy().transpose(0, 2, 1))
    bits = kernels.bits_like(soa.dtype)
    if B > 1:
        kernels.fps_batch(soa, lengths.contiguous().numpy(), ks.contiguous().numpy(), start.contiguous().numpy(),
                          out.numpy(), bits)
        return out
    n, k, first = int(lengths[0]), min(int(ks[0]), int(lengths[0])), int(start[0])
    if k == 0:
        return out
    threads = kernels.get_num_threads()
    if n >= SPLIT_MIN_POINTS and threads > 1:
        kernels.fps_split(soa[0], n, k, first, out.numpy()[0], bits, threads)
    else:
        kernels.fps_cloud(soa[0], n, k, first, out.numpy()[0], bits)
    return out
