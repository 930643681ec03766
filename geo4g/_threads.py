"""Run a block with one torch intra-op thread.

Per-item data work (one mesh, a few thousand points) is made of tiny tensor ops;
splitting each over threads costs more than it saves, and on a busy machine it
is many times slower. Worker processes set one thread for good; work done in
the calling process uses this context and restores the caller's setting.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch

__all__ = ["single_thread"]


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
