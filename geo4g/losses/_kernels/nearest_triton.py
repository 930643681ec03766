"""Triton kernel: nearest neighbour (K=1, squared L2) streaming over tiles of ``y``.

Each program owns ``BLOCK_N`` points of ``x`` in one batch item and walks the
valid points of ``y`` in tiles of ``BLOCK_M``, keeping a running minimum and
its index in registers, so memory is ``O(B * N)`` whatever ``M``. Distances are
formed from exact coordinate differences (no ``|a|^2 - 2ab + |b|^2``
expansion), on coordinates centred per batch item by the caller.

Runs on CUDA, and on the CPU under ``TRITON_INTERPRET=1`` (set before triton
is imported) for the tests.
"""
from __future__ import annotations

import torch

from geo4g._triton import interpreting, tl, triton


@triton.jit
def _nearest_kernel(
    x_ptr, y_ptr, xl_ptr, yl_ptr, out_ptr,
    N, sxb, sxn, syb, sym,
    D: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr,
):
    pid_n = tl.program_id(0)
    b = tl.program_id(1)
    xl = tl.load(xl_ptr + b)
    yl = tl.load(yl_ptr + b)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    nmask = offs_n < xl
    x_base = x_ptr + b * sxb + offs_n * sxn
    y_base = y_ptr + b * syb
    best = tl.full([BLOCK_N], float("inf"), tl.float32)
    best = best.to(x_ptr.dtype.element_ty)
    best_i = tl.zeros([BLOCK_N], dtype=tl.int32)
    for m0 in range(0, yl, BLOCK_M):
        offs_m = m0 + tl.arange(0, BLOCK_M)
        mmask = offs_m < yl
        d = tl.zeros([BLOCK_N, BLOCK_M], dtype=x_ptr.dtype.element_ty)
        for k in tl.static_range(D):
            xk = tl.load(x_base + k, mask=nmask, other=0.0)
            yk = tl.load(y_base + offs_m * sym + k, mask=mmask, other=0.0)
            diff = xk[:, None] - yk[None, :]
            d += diff * diff
        d = tl.where(mmask[None, :], d, float("inf"))
        tmin, targ = tl.min(d, axis=1, return_indices=True)
        upd = tmin < best
        best = tl.where(upd, tmin, best)
        best_i = tl.where(upd, targ + m0, best_i)
    tl.store(out_ptr + b * N + offs_n, best_i.to(tl.int64), mask=offs_n < N)


def nearest_triton(x: torch.Tensor, y: torch.Tensor, x_lengths: torch.Tensor, y_lengths: torch.Tensor) -> torch.Tensor:
    """``idx (B, N)`` long of the nearest valid ``y`` point (squared L2) for each ``x`` point.

    Rows past ``x_lengths`` and items with ``y_lengths == 0`` hold 0 (the caller masks them).
    """
    from .._nearest import _center

    B, N, D = x.shape
    work = torch.float64 if x.dtype == torch.float64 else torch.float32
    c = _center(x.to(work), y.to(work), x_lengths, y_lengths)
    xc = (x.to(work) - c).contiguous()
    yc = (y.to(work) - c).contiguous()
    out = torch.zeros((B, N), dtype=torch.long, device=x.device)
    interpret = interpreting()
    block_n, block_m = (16, 16) if interpret else (64, 128)
    grid = (triton.cdiv(N, block_n), B)
    _nearest_kernel[grid](
        xc, yc, x_lengths.to(torch.int32).contiguous(), y_lengths.to(torch.int32).contiguous(), out,
        N, xc.stride(0), xc.stride(1), yc.stride(0), yc.stride(1),
        D=D, BLOCK_N=block_n, BLOCK_M=block_m,
    )
    return out
