"""Triton kernel: ball query (PyTorch3D's first ``K`` in index order); no public names.

Each program owns ``BLOCK_N`` points of ``p1`` in one cloud and walks the valid points of ``p2``
in index order, ``BLOCK_M`` at a time, while some row of the block holds fewer than ``K``
neighbours. In a tile, the points inside the ball (squared distance ``< r2``, summed over the
coordinates in order, no fused multiply-add, as in the reference) get their row's running count
plus their rank in the tile (a cumulative sum) as output slot, and those below ``K`` are stored.

Runs on CUDA, and on the CPU under ``TRITON_INTERPRET=1`` (set before triton is imported) for the
tests. Imported lazily; triton is optional.
"""
from __future__ import annotations

import torch

from geo4g._triton import interpreting, tl, triton


@triton.jit
def _ball_kernel(
    x_ptr, y_ptr, xl_ptr, yl_ptr, r2_ptr, out_ptr,
    K, sxb, sxn, syb, sym, sob, son,
    D: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr,
):
    pid_n = tl.program_id(0)
    b = tl.program_id(1)
    xl = tl.load(xl_ptr + b)
    yl = tl.load(yl_ptr + b)
    r2 = tl.load(r2_ptr)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    nmask = offs_n < xl
    x_base = x_ptr + b * sxb + offs_n * sxn
    y_base = y_ptr + b * syb
    out_base = out_ptr + b * sob + offs_n * son
    # rows past lengths1 count as full, so they never keep the loop going
    count = tl.where(nmask, 0, K)
    m0 = 0
    while (m0 < yl) & (tl.min(count, axis=0) < K):
        offs_m = m0 + tl.arange(0, BLOCK_M)
        mmask = offs_m < yl
        d = tl.zeros([BLOCK_N, BLOCK_M], dtype=x_ptr.dtype.element_ty)
        for k in tl.static_range(D):
            xk = tl.load(x_base + k, mask=nmask, other=0.0)
            yk = tl.load(y_base + offs_m * sym + k, mask=mmask, other=0.0)
            diff = xk[:, None] - yk[None, :]
            d += diff * diff
        inside = (d < r2) & nmask[:, None] & mmask[None, :]
        hits = inside.to(tl.int32)
        slot = count[:, None] + tl.cumsum(hits, axis=1) - 1
        tl.store(out_base[:, None] + slot, offs_m[None, :].to(tl.int64), mask=inside & (slot < K))
        count += tl.sum(hits, axis=1)
        m0 += BLOCK_M


def ball_triton(p1: torch.Tensor, p2: torch.Tensor, lengths1: torch.Tensor, lengths2: torch.Tensor, K: int,
                r2: torch.Tensor) -> torch.Tensor:
    """``(B, P1, K)`` long indices of the first ``K`` valid ``p2`` points at squared distance ``< r2``
    (a 0-d tensor of the points' dtype), ``-1`` padded."""
    B, P1, D = p1.shape
    x = p1.contiguous()
    y = p2.contiguous()
    out = torch.full((B, P1, K), -1, dtype=torch.long, device=x.device)
    interpret = interpreting()
    block_n, block_m = (16, 16) if interpret else (32, 64)
    grid = (triton.cdiv(P1, block_n), B)
    _ball_kernel[grid](
        x, y, lengths1.to(torch.int32).contiguous(), lengths2.to(torch.int32).contiguous(),
        r2.to(device=x.device, dtype=x.dtype).reshape(1), out,
        K, x.stride(0), x.stride(1), y.stride(0), y.stride(1), out.stride(0), out.stride(1),
        D=D, BLOCK_N=block_n, BLOCK_M=block_m, enable_fp_fusion=False,
    )
    return out
