"""Thread settings and the thread pool shared by the compiled CPU kernels.

:func:`single_thread` runs a block with one torch intra-op thread. Per-item data work (one mesh, a
few thousand points) is made of tiny tensor ops; splitting each over threads costs more than it
saves, and on a busy machine it is many times slower. Worker processes set one thread for good;
work done in the calling process uses this context and restores the caller's setting.

:func:`run_chunks` runs a numba kernel that releases the GIL over slices of its work on a pool of
Python threads (:func:`thread_pool`), a few slices per thread, so that a core busy with another
process does not hold the others up. The thread count is :func:`available_cpus`, read from the
CPU affinity: ``numba.get_num_threads()`` is never called, as it starts numba's OpenMP layer,
which resets torch's intra-op thread count.
"""
from __future__ import annotations

import contextlib
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, Iterator, Optional

import torch

__all__ = ["single_thread", "available_cpus", "thread_pool", "run_chunks"]

_POOLS: Dict[int, ThreadPoolExecutor] = {}
_POOLS_PID: Optional[int] = None


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run the block's torch CPU ops on the calling thread; the previous setting is restored."""
    previous = torch.get_num_threads()
    if previous == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def available_cpus() -> int:
    """CPUs this process may run on (``os.sched_setaffinity`` limits them)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def thread_pool(size: int) -> ThreadPoolExecutor:
    """The process's pool of ``size`` threads, made on first use."""
    global _POOLS_PID
    if _POOLS_PID != os.getpid():  # a forked child (data loader worker) has no pool threads
        _POOLS.clear()
        _POOLS_PID = os.getpid()
    pool = _POOLS.get(size)
    if pool is None:
        pool = _POOLS[size] = ThreadPoolExecutor(size, thread_name_prefix="geo4g")
    return pool


def run_chunks(kernel, n: int, min_chunk: int, *args) -> None:
    """``kernel(*args, t0, t1)`` over ``[0, n)`` in slices of at least ``min_chunk``, on one thread per
    CPU (inline when one slice is enough); returns when every slice is done."""
    threads = available_cpus()
    chunk = max(min_chunk, -(-n // (4 * threads)))
    if threads == 1 or n <= chunk:
        kernel(*args, 0, n)
        return
    pool = thread_pool(threads)
    futures = [pool.submit(kernel, *args, t0, min(n, t0 + chunk)) for t0 in range(0, n, chunk)]
    for future in futures:
        future.result()
