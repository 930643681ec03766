"""Helpers for ``torch.distributed`` data-parallel training launched by ``torchrun``.

Every helper is a no-op (or the one-process answer) when no process group is
initialised, so the same training code runs with and without ``torchrun``.
The backend is ``nccl`` where CUDA is available and ``gloo`` on the CPU.
"""
from __future__ import annotations

import gc
import os
from typing import Any, Optional

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler, RandomSampler, SequentialSampler

__all__ = [
    "is_distributed",
    "get_rank",
    "get_world_size",
    "init_from_env",
    "cleanup",
    "default_device",
    "wrap_ddp",
    "distributed_sampler",
    "shard_loader",
    "all_reduce_sum",
    "all_reduce_mean",
    "all_gather_object",
]

_TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


def is_distributed() -> bool:
    """Whether a ``torch.distributed`` process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    """This process's rank, 0 without a process group."""
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    """The number of processes, 1 without a process group."""
    return dist.get_world_size() if is_distributed() else 1


def init_from_env(backend: Optional[str] = None) -> bool:
    """Initialise the default process group from ``torchrun``'s environment.

    Reads ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` (and ``MASTER_ADDR``/``MASTER_PORT``).
    On CUDA it also selects the device ``cuda:LOCAL_RANK``.

    Args:
        backend: ``"gloo"`` or ``"nccl"``; default ``"nccl"`` with CUDA, else ``"gloo"``.

    Returns:
        ``True`` when a process group is (now or already) initialised, ``False``
        when the process was not launched by ``torchrun``.
    """
    if is_distributed():
        return True
    if not dist.is_available() or not all(v in os.environ for v in _TORCHRUN_VARS):
        return False
    cuda = torch.cuda.is_available()
    backend = backend or ("nccl" if cuda else "gloo")
    if backend not in ("gloo", "nccl"):
        raise ValueError(f"backend must be 'gloo', 'nccl' or None, got {backend!r}")
    if backend == "nccl":
        local_rank, visible = int(os.environ["LOCAL_RANK"]), torch.cuda.device_count()
        if local_rank >= visible:
            raise ValueError(
                f"LOCAL_RANK {local_rank} has no CUDA device of its own ({visible} visible): start at most "
                f"{visible} processes per node, or pass backend='gloo' / hide the GPUs (CUDA_VISIBLE_DEVICES='') "
                "to train on the CPU"
            )
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend)
    return True


def cleanup() -> None:
    """Destroy the default process group, if any; call it at the end of a ``torchrun`` script.

    It first collects cyclic garbage: gloo work objects left in reference cycles
    after DDP's backward passes can otherwise be freed during interpreter
    shutdown, which aborts the process (SIGABRT) now and then.
    """
    if is_distributed():
        gc.collect()
        dist.destroy_process_group()


def default_device() -> torch.device:
    """``cuda:LOCAL_RANK`` where CUDA is available, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def wrap_ddp(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` wrapped in ``DistributedDataParallel`` under a process group, else ``model`` itself.

    ``model`` must already be on ``device``; DDP broadcasts rank 0's parameters and buffers.
    """
    if not is_distributed():
        return model
    if device.type == "cuda":
        return DistributedDataParallel(model, device_ids=[device], output_device=device)
    return DistributedDataParallel(model)


def distributed_sampler(dataset: Dataset, shuffle: bool = True, seed: int = 0, drop_last: bool = False) -> DistributedSampler:
    """A ``DistributedSampler`` over this process group (one replica without one).

    Rank ``r`` of ``W`` gets positions ``r, r + W, r + 2W, ...`` of the (shuffled with
    ``seed + epoch``) index list, padded by repetition to a multiple of ``W`` unless
    ``drop_last``. Call ``set_epoch(epoch)`` every epoch (``Trainer`` does) for new shuffles.
    """
    return DistributedSampler(
        dataset, num_replicas=get_world_size(), rank=get_rank(), shuffle=shuffle, seed=seed, drop_last=drop_last
    )


def shard_loader(loader: DataLoader, seed: int = 0) -> DataLoader:
    """``loader`` rebuilt with a :func:`distributed_sampler`, keeping batch size, collate and workers.

    The sampler shuffles when ``loader`` did. A loader that already has a
    ``DistributedSampler`` is returned as is, as is anything that is not a
    ``DataLoader`` (sharding it is then the caller's job).

    Raises:
        ValueError: for an iterable-style dataset, a custom or with-replacement sampler, or a custom batch sampler,
            which cannot be sharded automatically.
    """
    if not isinstance(loader, DataLoader) or isinstance(loader.sampler, DistributedSampler):
        return loader
    if (
        loader.batch_size is None
        or type(loader.batch_sampler) is not BatchSampler
        or type(loader.sampler) not in (RandomSampler, SequentialSampler)
        or getattr(loader.sampler, "replacement", False)
    ):
        raise ValueError(
            "loader must use a plain sampler and batch size to be sharded automatically; "
            f"got sampler {type(loader.sampler).__name__} and batch sampler {type(loader.batch_sampler).__name__}. "
            "Build it with sampler=geo4g.nn.distributed_sampler(dataset) instead"
        )
    return DataLoader(
        loader.dataset,
        batch_size=loader.batch_size,
        sampler=distributed_sampler(loader.dataset, isinstance(loader.sampler, RandomSampler), seed, loader.drop_last),
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory,
        drop_last=loader.drop_last,
        timeout=loader.timeout,
        worker_init_fn=loader.worker_init_fn,
        multiprocessing_context=loader.multiprocessing_context,
        generator=loader.generator,
        prefetch_factor=loader.prefetch_factor,
        persistent_workers=loader.persistent_workers,
    )


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """The sum of ``x`` over all processes (a copy; ``x`` itself without a process group)."""
    if not is_distributed():
        return x
    x = x.clone()
    dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x


def all_reduce_mean(x: torch.Tensor) -> torch.Tensor:
    """The mean of ``x`` over all processes (``x`` itself without a process group)."""
    return all_reduce_sum(x) / get_world_size() if is_distributed() else x


def all_gather_object(obj: Any) -> list:
    """``[obj_rank0, obj_rank1, ...]``: a picklable object from every process (``[obj]`` without a group)."""
    if not is_distributed():
        return [obj]
    out: list = [None] * get_world_size()
    dist.all_gather_object(out, obj)
    return out
