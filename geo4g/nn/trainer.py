"""A small training loop: fit/evaluate, metrics, progress bar, atomic checkpoints, exact resume, early stopping, DDP."""
from __future__ import annotations

import math
import os
import random
import warnings
from collections.abc import Mapping, Sized
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Union

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .._atomic import atomic_write
from . import distributed as dist_
from .layers import _check_int

__all__ = ["Trainer", "seed_everything", "default_forward"]

PathLike = Union[str, os.PathLike]
_FORMAT = "geo4g.nn.Trainer/1"


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def default_forward(model: nn.Module, batch) -> tuple[Any, Any]:
    """Unpack an ``(inputs, targets)`` batch and return ``(model(inputs), targets)``."""
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        kind = f"{type(batch).__name__} of length {len(batch)}" if isinstance(batch, (tuple, list)) else type(batch).__name__
        raise TypeError(
            f"batch must be an (inputs, targets) pair for the default forward_fn, got a {kind}; "
            "pass forward_fn=lambda model, batch: (predictions, targets) to unpack other batches"
        )
    inputs, targets = batch
    return model(inputs), targets


def _to_device(batch, device: torch.device):
    """Move tensors (and objects with a ``.to``) inside nested tuples, lists and dicts to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(_to_device(v, device) for v in batch))
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch.to(device) if callable(getattr(batch, "to", None)) else batch


def _batch_size(targets) -> int:
    if isinstance(targets, torch.Tensor):
        return targets.shape[0] if targets.dim() > 0 else 1
    return len(targets) if isinstance(targets, Sized) else 1


def _loader_generators(loaders: Iterable) -> list[torch.Generator]:
    """The distinct ``torch.Generator`` objects that drive the loaders' shuffles and worker seeds."""
    found: list[torch.Generator] = []
    for loader in loaders:
        sampler = getattr(loader, "sampler", None)
        for owner in (loader, sampler, getattr(getattr(loader, "batch_sampler", None), "sampler", None)):
            g = getattr(owner, "generator", None)
            if isinstance(g, torch.Generator) and all(g is not h for h in found):
                found.append(g)
    return found


def _rng_state(generators: list[torch.Generator]) -> dict:
    """Every random state a training epoch draws from, in a form ``torch.load(weights_only=True)`` reads."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": (torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)),
        "python": random.getstate(),
        "loaders": [g.get_state() for g in generators],
    }


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state(("MT19937", keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(state["python"])


class Trainer:
    """Fits a model with an optimiser, an optional scheduler and metrics, epoch by epoch.

    Each epoch trains on every batch of the training loader, evaluates on the
    validation loader (if any), steps the scheduler, updates early stopping and
    writes ``checkpoint_dir/last.pt`` (and ``best.pt`` when the monitored value
    improved) atomically. A checkpoint holds the model, optimiser and scheduler
    states, the epoch, the early-stopping state, the history and every random
    state (torch CPU/CUDA, NumPy, Python, and the loaders' generators), taken at
    the end of the epoch, so ``fit(..., resume=True)`` after an interruption
    continues exactly as the uninterrupted run would have (same shuffles, same
    dropout masks, same weights), given the same loaders and hyper-parameters.

    When launched by ``torchrun`` the Trainer joins the process group (``gloo`` on
    CPU, ``nccl`` on CUDA), wraps the model in ``DistributedDataParallel``, shards a
    plain training ``DataLoader`` with a ``DistributedSampler`` (seeded with ``seed``)
    and averages losses and metrics over all processes. Only rank 0 shows progress
    and writes checkpoints; checkpoints hold every rank's random states. The
    validation loader is used as given: unsharded, every rank evaluates all of it.
    End such a script with :func:`geo4g.nn.cleanup`.

    Logged values are means over batches weighted by batch size (the first
    dimension of the targets), which is the dataset mean for a mean-reduced loss.

    Args:
        model: the model; it is moved to ``device``.
        optimizer: an optimiser over ``model``'s parameters.
        loss_fn: ``loss_fn(predictions, targets) -> scalar tensor``.
        scheduler: an LR scheduler, stepped every epoch (``ReduceLROnPlateau`` with the
            monitored value) or every batch (``scheduler_interval="batch"``).
        scheduler_interval: ``"epoch"`` or ``"batch"``.
        metrics: ``{name: fn(predictions, targets) -> number}``, logged as
            ``train_<name>`` and ``val_<name>``, computed without gradients.
        forward_fn: ``forward_fn(model, batch) -> (predictions, targets)``; default
            :func:`default_forward` for ``(inputs, targets)`` batches. ``model`` may be
            DDP-wrapped: call it rather than its other methods. Batches arrive on ``device``.
        max_epochs: the epoch count at which ``fit`` stops.
        device: default ``cuda:LOCAL_RANK`` when CUDA is available, else the CPU.
        checkpoint_dir: where ``last.pt`` and ``best.pt`` go (created); ``None`` writes none.
        early_stopping_patience: stop after this many epochs without improvement of
            ``monitor``; ``None`` never stops early.
        monitor: the logged value early stopping and ``best.pt`` follow; default
            ``"val_loss"`` with a validation loader, else ``"train_loss"``.
        mode: ``"min"`` or ``"max"``: whether lower or higher ``monitor`` is better.
        min_delta: the change in ``monitor`` that counts as an improvement.
        grad_clip: clip the gradient norm to this value; ``None`` does not clip.
        progress: show a tqdm progress bar (rank 0 only).
        seed: when given, :func:`seed_everything` with ``seed + rank`` at the start of a
            fresh (not resumed) fit, and the seed of the automatic ``DistributedSampler``.

    Attributes:
        model: the model, on ``device``; checkpoints hold its ``state_dict``.
        net: the model as trained: ``model`` wrapped in ``DistributedDataParallel``
            under ``torchrun``, else ``model`` itself.
        epoch: the number of epochs completed.
        history: one dict per epoch: ``epoch``, ``train_loss``, ``train_<metric>``,
            ``val_loss``, ``val_<metric>``, ``lr``.
        best: the best monitored value so far (``None`` before the first epoch).
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        loss_fn: Callable[[Any, Any], torch.Tensor],
        *,
        scheduler=None,
        scheduler_interval: str = "epoch",
        metrics: Optional[Mapping[str, Callable[[Any, Any], Any]]] = None,
        forward_fn: Optional[Callable[[nn.Module, Any], tuple[Any, Any]]] = None,
        max_epochs: int = 10,
        device: Optional[Union[str, torch.device]] = None,
        checkpoint_dir: Optional[PathLike] = None,
        early_stopping_patience: Optional[int] = None,
        monitor: Optional[str] = None,
        mode: str = "min",
        min_delta: float = 0.0,
        grad_clip: Optional[float] = None,
        progress: bool = True,
        seed: Optional[int] = None,
    ):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
        if not callable(loss_fn):
            raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
        if scheduler_interval not in ("epoch", "batch"):
            raise ValueError(f"scheduler_interval must be 'epoch' or 'batch', got {scheduler_interval!r}")
        if scheduler_interval == "batch" and isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            raise ValueError("scheduler_interval must be 'epoch' for ReduceLROnPlateau, which steps on the monitored value")
        metrics = dict(metrics or {})
        for name, fn in metrics.items():
            if not isinstance(name, str) or name == "loss" or not callable(fn):
                raise ValueError(f"metrics must map names other than 'loss' to callables, got {name!r}: {fn!r}")
        _check_int(max_epochs, "max_epochs", 1)
        if early_stopping_patience is not None:
            _check_int(early_stopping_patience, "early_stopping_patience", 1)
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if min_delta < 0:
            raise ValueError(f"min_delta must be >= 0, got {min_delta!r}")
        if grad_clip is not None and not grad_clip > 0:
            raise ValueError(f"grad_clip must be positive or None, got {grad_clip!r}")

        dist_.init_from_env()
        self.rank = dist_.get_rank()
        self.device = torch.device(device) if device is not None else dist_.default_device()
        self.model = model.to(self.device)
        self.net = dist_.wrap_ddp(self.model, self.device)
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.scheduler = scheduler
        self.scheduler_interval = scheduler_interval
        self.metrics = metrics
        self.forward_fn = forward_fn or default_forward
        self.max_epochs = max_epochs
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        self.patience = early_stopping_patience
        self.monitor = monitor
        self.mode = mode
        self.min_delta = min_delta
        self.grad_clip = grad_clip
        self.progress = progress and self.rank == 0
        self.seed = seed

        self.epoch = 0
        self.history: list[dict[str, float]] = []
        self.best: Optional[float] = None
        self.bad_epochs = 0
        self._generators: list[torch.Generator] = []
        self._pending_loader_states: Optional[list[torch.Tensor]] = None

    # ------------------------------------------------------------------ loops

    def fit(self, train_loader: Iterable, val_loader: Optional[Iterable] = None, *, resume: Union[bool, PathLike] = False) -> list[dict[str, float]]:
        """Train until ``max_epochs`` epochs are done or early stopping fires.

        Args:
            train_loader: an iterable of batches (a ``DataLoader``).
            val_loader: evaluated after every epoch when given.
            resume: ``True`` continues from ``checkpoint_dir/last.pt`` when it exists
                (else starts fresh); a path continues from that checkpoint; ``False``
                continues from the Trainer's current state.

        Returns:
            :attr:`history`.
        """
        if dist_.is_distributed():
            train_loader = dist_.shard_loader(train_loader, seed=self.seed or 0)
        loaders = {"train": train_loader} if val_loader is None else {"train": train_loader, "val": val_loader}
        monitor = self.monitor or ("val_loss" if val_loader is not None else "train_loss")
        logged = sorted(f"{prefix}_{k}" for prefix in loaders for k in ("loss", *self.metrics))
        if monitor not in logged:
            raise ValueError(f"monitor must be one of the logged values {logged}, got {monitor!r}")
        self._generators = _loader_generators(loaders.values())

        path = self._resume_path(resume)
        if path is not None:
            self.load_checkpoint(path)
        elif self.epoch == 0 and self.seed is not None:
            seed_everything(self.seed + self.rank)
        if self._pending_loader_states is not None:
            self._restore_loader_states()
        if self.checkpoint_dir is not None and self.rank == 0:
            self.checkpoint_dir.mkdir(parents=True, exist_ok=True)

        while self.epoch < self.max_epochs and not (self.patience is not None and self.bad_epochs >= self.patience):
            set_epoch = getattr(getattr(train_loader, "sampler", None), "set_epoch", None)
            if set_epoch is not None:
                set_epoch(self.epoch)
            logs: dict[str, float] = {"epoch": self.epoch + 1}
            logs.update({f"train_{k}": v for k, v in self._run(train_loader, train=True).items()})
            if val_loader is not None:
                logs.update({f"val_{k}": v for k, v in self.evaluate(val_loader).items()})
            logs["lr"] = self.optimizer.param_groups[0]["lr"]
            improved = self._update_best(logs[monitor])
            if self.scheduler is not None and self.scheduler_interval == "epoch":
                if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                    self.scheduler.step(logs[monitor])
                else:
                    self.scheduler.step()
            self.epoch += 1
            self.history.append(logs)
            if self.progress:
                tqdm.write(" ".join(f"{k}={v:.4g}" for k, v in logs.items()))
            if self.checkpoint_dir is not None:
                state = self._state()
                self._write(state, self.checkpoint_dir / "last.pt")
                if improved:
                    self._write(state, self.checkpoint_dir / "best.pt")
        return self.history

    @torch.no_grad()
    def evaluate(self, loader: Iterable) -> dict[str, float]:
        """The mean loss and metrics over ``loader`` with the model in eval mode: ``{"loss": ..., name: ...}``."""
        return self._run(loader, train=False)

    def _run(self, loader: Iterable, train: bool) -> dict[str, float]:
        self.net.train(train)
        names = ["loss", *self.metrics]
        sums = [0.0] * len(names)
        count = 0
        desc = f"epoch {self.epoch + 1}/{self.max_epochs}" if train else "evaluate"
        with tqdm(loader, desc=desc, disable=not self.progress, leave=False, dynamic_ncols=True) as bar:
            for i, batch in enumerate(bar):
                preds, targets = self.forward_fn(self.net, _to_device(batch, self.device))
                loss = self.loss_fn(preds, targets)
                value = loss.item()
                if not math.isfinite(value):
                    raise FloatingPointError(f"loss is {value} at epoch {self.epoch + 1}, batch {i}")
                if train:
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if self.grad_clip is not None:
                        nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
                    self.optimizer.step()
                    if self.scheduler is not None and self.scheduler_interval == "batch":
                        self.scheduler.step()
                n = _batch_size(targets)
                with torch.no_grad():
                    values = [value] + [float(fn(preds, targets)) for fn in self.metrics.values()]
                sums = [s + v * n for s, v in zip(sums, values)]
                count += n
                bar.set_postfix(loss=f"{value:.4g}", refresh=False)
        totals = dist_.all_reduce_sum(torch.tensor([*sums, count], dtype=torch.float64, device=self.device))
        if totals[-1] == 0:
            raise ValueError(f"{'train_loader' if train else 'loader'} yielded no batches")
        return {name: float(s / totals[-1]) for name, s in zip(names, totals[:-1])}

    def _update_best(self, value: float) -> bool:
        if self.best is None:
            improved = True
        elif self.mode == "min":
            improved = value < self.best - self.min_delta
        else:
            improved = value > self.best + self.min_delta
        if improved:
            self.best, self.bad_epochs = value, 0
        else:
            self.bad_epochs += 1
        return improved

    # ------------------------------------------------------------- checkpoints

    def save_checkpoint(self, path: PathLike) -> None:
        """Write the full training state to ``path`` atomically (rank 0 writes; every rank must call it)."""
        self._write(self._state(), Path(path))

    def load_checkpoint(self, path: PathLike) -> None:
        """Restore model, optimiser, scheduler, epoch, early stopping, history and random states from ``path``.

        The loaders' generator states are restored at the start of the next :meth:`fit`.
        Each rank restores its own random states when the world size is unchanged,
        else rank 0's.
        """
        path = Path(path)
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise
        except Exception as e:
            raise ValueError(f"cannot read checkpoint {path}: {e}") from e
        if not isinstance(ckpt, dict) or ckpt.get("format") != _FORMAT:
            raise ValueError(f"{path} is not a geo4g Trainer checkpoint (format {_FORMAT!r})")
        if self.scheduler is not None and ckpt["scheduler"] is None:
            raise ValueError(f"checkpoint {path} holds no scheduler state, but this Trainer has a scheduler")
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(ckpt["scheduler"])
        self.epoch = ckpt["epoch"]
        self.best = ckpt["best"]
        self.bad_epochs = ckpt["bad_epochs"]
        self.history = ckpt["history"]
        states = ckpt["rng"]
        mine = states[self.rank] if len(states) == dist_.get_world_size() else states[0]
        _set_rng_state(mine)
        self._pending_loader_states = mine["loaders"]

    def _restore_loader_states(self) -> None:
        states, self._pending_loader_states = self._pending_loader_states, None
        if len(states) != len(self._generators):
            warnings.warn(
                f"the checkpoint holds {len(states)} loader generator state(s) but the loaders have "
                f"{len(self._generators)} generator(s); their shuffles will differ from the interrupted run",
                stacklevel=3,
            )
            return
        for g, s in zip(self._generators, states):
            g.set_state(s)

    def _state(self) -> dict:
        return {
            "format": _FORMAT,
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "best": self.best,
            "bad_epochs": self.bad_epochs,
            "history": self.history,
            "rng": dist_.all_gather_object(_rng_state(self._generators)),
        }

    def _write(self, state: dict, path: Path) -> None:
        if self.rank == 0:
            with atomic_write(path, "wb") as f:
                torch.save(state, f)

    def _resume_path(self, resume: Union[bool, PathLike]) -> Optional[Path]:
        if resume is False:
            return None
        if resume is True:
            if self.checkpoint_dir is None:
                raise ValueError("resume=True needs checkpoint_dir; pass checkpoint_dir or a checkpoint path as resume")
            path = self.checkpoint_dir / "last.pt"
            return path if path.is_file() else None
        path = Path(resume)
        if not path.is_file():
            raise FileNotFoundError(f"resume checkpoint {path} does not exist")
        return path
