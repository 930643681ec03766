"""Triton kernel: k nearest neighbours (``K <= 32``) streaming over tiles of ``p2``; no public names.

Each program owns ``BLOCK_N`` points of ``p1`` in one cloud and walks the valid points of ``p2``
in index order, ``BLOCK_M`` at a time, keeping each row's best ``K`` (distance and index) in
registers (``KP``, the next power of two, slots; the slots past ``K`` hold ``-inf`` and are never
replaced). For a tile it counts, per row, the entries below the row's current worst kept one; the
largest count (at most ``K``) is the number of rounds, each moving every row's smallest remaining
entry over its worst kept one when smaller. The worst kept entry is the largest by
``(distance, index)``, and a tile's entries tie to the lower index, so ties go to the lower
index as in the reference; later tiles hold higher indices, so they win only when strictly
closer. Distances are summed over the coordinates in order, with no fused multiply-add, like the
reference. Memory is ``O(B * P1 * K)`` whatever ``P2``.

Runs on CUDA, and on the CPU under ``TRITON_INTERPRET=1`` (set before triton is imported) for the
tests. Imported lazily; triton is optional.
"""
from __future__ import annotations

import torch

from geo4g._triton import interpreting, tl, triton


@triton.jit
def _knn_kernel(
    x_ptr, y_ptr, xl_ptr, yl_ptr, out_d_ptr, out_i_ptr,
    sxb, sxn, syb, sym, sob, son,
    D: tl.constexpr, K: tl.constexpr, KP: tl.constexpr, NORM: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr,
):
    pid_n = tl.program_id(0)
    b = tl.program_id(1)
    xl = tl.load(xl_ptr + b)
    yl = tl.load(yl_ptr + b)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    nmask = offs_n < xl
    x_base = x_ptr + b * sxb + offs_n * sxn
    y_base = y_ptr + b * syb
    slot = tl.arange(0, KP)
    cols = tl.arange(0, BLOCK_M)
    inf = float("inf")
    best_d = tl.full([BLOCK_N, KP], inf, dtype=x_ptr.dtype.element_ty)
    best_d = tl.where(slot[None, :] < K, best_d, -best_d)
    # distinct placeholder indices above any real one, so the worst slot is unique
    best_i = tl.broadcast_to((slot + 2147483647 - KP)[None, :], [BLOCK_N, KP])
    for m0 in range(0, yl, BLOCK_M):
        offs_m = m0 + cols
        mmask = offs_m < yl
        d = tl.zeros([BLOCK_N, BLOCK_M], dtype=x_ptr.dtype.element_ty)
        for k in tl.static_range(D):
            xk = tl.load(x_base + k, mask=nmask, other=0.0)
            yk = tl.load(y_base + offs_m * sym + k, mask=mmask, other=0.0)
            diff = xk[:, None] - yk[None, :]
            if NORM == 2:
                d += diff * diff
            else:
                d += tl.abs(diff)
        d = tl.where(nmask[:, None] & mmask[None, :], d, inf).to(x_ptr.dtype.element_ty)
        worst = tl.max(best_d, axis=1)
        rounds = tl.max(tl.minimum(tl.sum((d < worst[:, None]).to(tl.int32), axis=1), K), axis=0)
        for _ in range(rounds):
            tmin, targ = tl.min(d, axis=1, return_indices=True)
            worst = tl.max(best_d, axis=1)
            worst_i = tl.max(tl.where(best_d == worst[:, None], best_i, -1), axis=1)
            take = (best_i == worst_i[:, None]) & (tmin < worst)[:, None]
            best_d = tl.where(take, tmin[:, None], best_d)
            best_i = tl.where(take, (targ + m0)[:, None], best_i)
            d = tl.where(cols[None, :] == targ[:, None], inf, d).to(x_ptr.dtype.element_ty)
    out = b * sob + offs_n[:, None] * son + slot[None, :]
    smask = nmask[:, None] & (slot[None, :] < K)
    tl.store(out_d_ptr + out, best_d, mask=smask)
    tl.store(out_i_ptr + out, best_i, mask=smask)


def knn_triton(p1: torch.Tensor, p2: torch.Tensor, lengths1: torch.Tensor, lengths2: torch.Tensor, norm: int,
               K: int) -> torch.Tensor:
    """``(B, P1, K)`` long indices of the ``K`` nearest valid ``p2`` points, in ``(distance, index)``
    order; slots past ``lengths2`` and rows past ``lengths1`` hold 0 (the caller masks them)."""
    B, P1, D = p1.shape
    x = p1.contiguous()
    y = p2.contiguous()
    out_d = torch.full((B, P1, K), float("inf"), dtype=x.dtype, device=x.device)
    out_i = torch.zeros((B, P1, K), dtype=torch.int32, device=x.device)
    interpret = interpreting()
    block_n, block_m = (16, 16) if interpret else (32, 64)
    grid = (triton.cdiv(P1, block_n), B)
    _knn_kernel[grid](
        x, y, lengths1.to(torch.int32).contiguous(), lengths2.to(torch.int32).contiguous(), out_d, out_i,
        x.stride(0), x.stride(1), y.stride(0), y.stride(1), out_d.stride(0), out_d.stride(1),
        D=D, K=K, KP=triton.next_power_of_2(K), NORM=norm, BLOCK_N=block_n, BLOCK_M=block_m,
        enable_fp_fusion=False,
    )
    idx = out_i.long()
    # (distance, index) order: sort by index, then stably by distance
    idx, perm = idx.sort(dim=-1)
    out_d = out_d.gather(-1, perm)
    order = out_d.sort(dim=-1, stable=True).indices
    idx = idx.gather(-1, order)
    return torch.where(idx < p2.shape[1], idx, torch.zeros((), dtype=idx.dtype, device=idx.device))
