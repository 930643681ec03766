"""Triton kernel: farthest point sampling, one program per cloud.

A program walks its cloud's ``K`` steps; each step streams the valid points in tiles of
``BLOCK``, forms the squared distance to the current point, folds it into the running minimum
``nearest`` (scratch in global memory) and keeps a running (max, first index) over the tiles;
``tl.max`` breaks ties to the left and a later tile wins only when strictly greater, so ties go
to the lowest index like ``torch.argmax``. Distances accumulate ``0 + t_0^2 + t_1^2 + ...`` in the
input dtype with fused multiply-adds disabled, bit for bit the arithmetic of ``_fps_reference``.

Runs on CUDA, and on the CPU under ``TRITON_INTERPRET=1`` (set before triton is imported) for
the tests.
"""
from __future__ import annotations

import torch

from geo4g._triton import interpreting, tl, triton


@triton.jit
def _fps_kernel(p_ptr, near_ptr, len_ptr, k_ptr, start_ptr, out_ptr, N, W,
                D: tl.constexpr, BLOCK: tl.constexpr):
    b = tl.program_id(0)
    n = tl.load(len_ptr + b)
    k = tl.minimum(tl.load(k_ptr + b), n)
    base = p_ptr + b.to(tl.int64) * D * N
    near = near_ptr + b.to(tl.int64) * N
    out = out_ptr + b.to(tl.int64) * W
    cur = tl.load(start_ptr + b)
    if k > 0:
        tl.store(out, cur.to(tl.int64))
    for s in range(1, k):
        best = tl.full((), -1.0, near_ptr.dtype.element_ty)
        best_i = tl.zeros((), tl.int32)
        for lo in range(0, n, BLOCK):
            offs = lo + tl.arange(0, BLOCK)
            mask = offs < n
            d = tl.zeros([BLOCK], near_ptr.dtype.element_ty)
            for a in tl.static_range(D):
                t = tl.load(base + a * N + offs, mask=mask, other=0.0) - tl.load(base + a * N + cur)
                d += t * t
            v = tl.minimum(tl.load(near + offs, mask=mask, other=-1.0), d)  # padding: -1, never the max
            tl.store(near + offs, v, mask=mask)
            tile_best, tile_i = tl.max(v, axis=0, return_indices=True, return_indices_tie_break_left=True)
            better = tile_best > best
            best = tl.where(better, tile_best, best)
            best_i = tl.where(better, tile_i + lo, best_i)
        cur = best_i
        tl.store(out + s, cur.to(tl.int64))


def fps_triton(points: torch.Tensor, lengths: torch.Tensor, ks: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
    """``idx (B, max K)`` long, ``-1`` padded, of ``points (B, N, D)`` float32/float64 (see ``_fps_reference``)."""
    B, N, D = points.shape
    width = int(ks.max()) if B else 0
    out = torch.full((B, width), -1, dtype=torch.long, device=points.device)
    if B == 0 or N == 0 or width == 0:
        return out
    soa = points.transpose(1, 2).contiguous()
    nearest = torch.full((B, N), float("inf"), dtype=points.dtype, device=points.device)
    interpret = interpreting()
    block = 16 if interpret else min(2048, max(16, triton.next_power_of_2(int(lengths.max()))))
    _fps_kernel[(B,)](
        soa, nearest, lengths.to(torch.int32).contiguous(), ks.to(torch.int32).contiguous(),
        start.to(torch.int32).contiguous(), out, N, width,
        D=D, BLOCK=block, num_warps=4 if block <= 512 else 8, enable_fp_fusion=False,
    )
    return out
