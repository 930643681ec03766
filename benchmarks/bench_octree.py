"""Octrees: OGN against a dense decoder, the O-CNN classifier, and octree build times (CPU).

    python benchmarks/bench_octree.py [--quick] [--out-dir benchmarks/results] [--data-root DIR]

Three parts, written to ``octree.md`` / ``octree.json``:

1. Auto-encoders on procedural shapes (``geo4g.data.ProceduralShapes``, solid occupancy from
   ``voxelize_mesh(mode="solid", fill_rule="winding")`` in the bounds ``[-0.5, 0.5]**3``). The
   same ``OccupancyEncoder`` (input: the target max-pooled to ``32**3``) feeds either the
   ``OctreeGeneratingNetwork`` (base ``8**3``, two octree convolutions per level, trained with
   known propagation and ``ogn_loss(class_balance=1)``, decoded with predicted propagation) or
   the ``DenseOccupancyDecoder`` (transposed convolutions to the full grid, trained with
   ``occupancy_loss(pos_weight=w)``, ``w`` the training grids' ratio of empty to occupied
   voxels so it does not settle on "all empty"; like OGN's balanced states, decoded as trained,
   at logit 0). At ``64**3`` both train for the same number of epochs over
   the same batches (Adam, one warm-up epoch, then a cosine decay); at ``128**3`` the OGN is the
   ``64**3`` one with a level added (``OctreeGeneratingNetwork.from_coarser``) and fine-tuned, as
   in the paper, while the dense decoder is only timed: a training run like the ``64**3`` one is
   out of a CPU budget, and its row says so instead of reporting an untrained IoU. Reported:
   held-out and training-set IoU (``voxel_iou`` of the decoded grid against the target), next to
   two baselines without a decoder: the encoder's ``32**3`` input up-sampled (nearest) to the
   output grid, and the nearest training shape by IoU (an oracle retrieval); the epochs, steps,
   training wall time and median wall time of a step (forward, backward, Adam; the target
   octrees are built once before training and cache their neighbour look-ups, part 3 times
   both); and the peak memory of a training step: the running sum of the torch CPU allocations
   and frees recorded by ``torch.profiler`` (``profile_memory=True``) over one step after
   training, i.e. the largest amount of tensor memory the step holds at once beyond what
   existed before it (activations, gradients, temporaries; not the parameters or the Adam
   state), and the dense decoder's over OGN's. No peer library with OGN is installed.
2. The ``OCNNClassifier`` on procedural point clouds (``Octree.from_points`` at depth 5, i.e.
   ``32**3``, averaged normals as input features): test accuracy after a short run.
3. Octree operations on the ``128**3`` solid grids of part 1: ``Octree.from_dense`` (with and
   without collapsing full blocks), ``to_dense``, ``neighbors`` at the finest level and
   ``Octree.from_points``; medians of repeated runs; cells against voxels.

Runs are short and the networks narrow to fit a shared 2-core CPU budget: the numbers show
relative cost and what the models learn in the same number of epochs, not the papers'
accuracy. Part 1 uses four categories of compact shapes (car, sofa, bottle, mug) so that a
64-number code can learn them in a few minutes. ``--quick`` is a smoke run (2 categories,
``16**3`` and ``32**3``, one epoch).
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from harness import time_call  # noqa: E402

from geo4g.data import ProceduralShapes  # noqa: E402
from geo4g.losses import voxel_iou  # noqa: E402
from geo4g.voxels.generative import occupancy_loss  # noqa: E402
from geo4g.voxels.ocnn import OCNNClassifier  # noqa: E402
from geo4g.voxels.octree import Octree  # noqa: E402
from geo4g.voxels.ogn import DenseOccupancyDecoder, OccupancyEncoder, OctreeGeneratingNetwork, ogn_loss  # noqa: E402
from geo4g.voxels.voxelize import voxelize_mesh  # noqa: E402

UNIT_BOUNDS = torch.tensor([[-0.5] * 3, [0.5] * 3])

FULL = dict(categories=("car", "sofa", "bottle", "mug"), spc=20, encoder=32, coarse=64, fine=128, batch=4, latent=64,
            convs_per_level=2, class_balance=1.0, epochs=24, lr=3e-3, fine_epochs=6, fine_lr=1e-3, dense_fine_steps=2,
            ocnn=dict(categories=("chair", "table", "airplane", "mug", "bottle", "lamp", "car", "guitar"), spc=40,
                      points=1024, depth=5, epochs=12, batch=16, width=0.5, lr=2e-3),
            build_repeat=5)
QUICK = dict(categories=("car", "mug"), spc=10, encoder=8, coarse=16, fine=32, batch=4, latent=16,
             convs_per_level=1, class_balance=1.0, epochs=1, lr=3e-3, fine_epochs=1, fine_lr=1e-3, dense_fine_steps=1,
             ocnn=dict(categories=("chair", "mug"), spc=10, points=256, depth=4, epochs=1, batch=8, width=0.25,
                       lr=2e-3),
             build_repeat=2)

AE_COLUMNS = ["model", "resolution", "held-out IoU", "train IoU", "epochs", "steps", "train s", "ms / step",
              "peak step memory MB", "dense / OGN memory", "parameters", "settings"]
OCNN_COLUMNS = ["model", "resolution", "test accuracy", "train accuracy", "chance", "ms / step", "settings"]
BUILD_COLUMNS = ["operation", "input", "median ms", "cells", "voxels", "note"]


# data


def solid_grids(dataset: ProceduralShapes, resolutions: Sequence[int]) -> Dict[int, torch.Tensor]:
    """``{R: (N, R, R, R) bool}``: every shape's solid occupancy in ``[-0.5, 0.5]**3``."""
    grids: Dict[int, List[torch.Tensor]] = {R: [] for R in resolutions}
    for i in range(len(dataset)):
        item = dataset[i]
        for R in resolutions:
            grids[R].append(voxelize_mesh(item["verts"], item["faces"], resolution=R, mode="solid",
                                          bounds=UNIT_BOUNDS, fill_rule="winding"))
    return {R: torch.stack(g) for R, g in grids.items()}


def encoder_input(grid: torch.Tensor, resolution: int) -> torch.Tensor:
    """The target max-pooled to the encoder's ``resolution**3``."""
    return F.max_pool3d(grid.float()[:, None], grid.shape[1] // resolution)[:, 0]


def upsampled_input(grid: torch.Tensor, resolution: int) -> torch.Tensor:
    """The trivial reconstruction: the encoder's input up-sampled (nearest) back to the grid."""
    factor = grid.shape[1] // resolution
    small = encoder_input(grid, resolution) > 0.5
    return small.repeat_interleave(factor, 1).repeat_interleave(factor, 2).repeat_interleave(factor, 3)


def nearest_training_iou(test: torch.Tensor, train: torch.Tensor, chunk: int = 8) -> torch.Tensor:
    """``(N_test,)``: each test grid's best IoU with any training grid (an oracle retrieval)."""
    a = test.flatten(1).float()
    a_sizes = a.sum(1, keepdim=True)
    best = torch.zeros(a.shape[0])
    for i in range(0, train.shape[0], chunk):
        b = train[i:i + chunk].flatten(1).float()
        inter = a @ b.T
        union = a_sizes + b.sum(1) - inter
        best = torch.maximum(best, (inter / union.clamp(min=1)).max(1).values)
    return best


def fixed_batches(count: int, batch: int) -> List[torch.Tensor]:
    order = torch.randperm(count, generator=torch.Generator().manual_seed(0))
    return [order[i:i + batch] for i in range(0, count, batch)]


# memory


def peak_step_memory(step: Callable[[], None]) -> Optional[int]:
    """Peak bytes of torch CPU tensor memory held by ``step()`` beyond what existed before it:
    the running sum of the allocation (+) and free (-) events ``torch.profiler`` records."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    results = getattr(prof.profiler, "kineto_results", None)
    if results is None:
        return None
    events = sorted((e.start_ns(), e.nbytes()) for e in results.events()
                    if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU)
    running = peak = 0
    for _, nbytes in events:
        running += nbytes
        peak = max(peak, running)
    return peak


# part 1: auto-encoders


class AutoEncoder(torch.nn.Module):
    """``OccupancyEncoder`` + OGN or dense decoder, with the loss and the decoding of part 1."""

    def __init__(self, encoder: OccupancyEncoder, decoder: torch.nn.Module, class_balance: float = 1.0,
                 pos_weight: float = 1.0):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.is_ogn = isinstance(decoder, OctreeGeneratingNetwork)
        self.class_balance, self.pos_weight = class_balance, pos_weight

    def loss(self, grid: torch.Tensor, octree: Optional[Octree]) -> torch.Tensor:
        latent = self.encoder(encoder_input(grid, self.encoder.resolution))
        if self.is_ogn:
            return ogn_loss(self.decoder(latent, octree), class_balance=self.class_balance)
        return occupancy_loss(self.decoder(latent), grid, pos_weight=self.pos_weight)

    @torch.no_grad()
    def reconstruct(self, grid: torch.Tensor) -> torch.Tensor:
        latent = self.encoder(encoder_input(grid, self.encoder.resolution))
        return self.decoder.generate(latent)

    def iou(self, grids: torch.Tensor, batch: int) -> float:
        was_training = self.training
        self.eval()
        scores = [voxel_iou(self.reconstruct(grids[i:i + batch]), grids[i:i + batch])
                  for i in range(0, grids.shape[0], batch)]
        self.train(was_training)
        return float(torch.cat(scores).mean())


def make_step(model: AutoEncoder, optimizer: torch.optim.Optimizer, grids: torch.Tensor, batches, octrees):
    def step(i: int) -> None:
        loss = model.loss(grids[batches[i]], octrees[i] if model.is_ogn else None)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return step


def train(model: AutoEncoder, grids: torch.Tensor, batches, octrees, epochs: int, lr: float):
    """``epochs`` passes over the fixed batches, each in a new random order; Adam with a linear
    warm-up over the first epoch, then a cosine decay to 0. Returns the optimizer and the wall
    time of every step."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    total, warmup = epochs * len(batches), len(batches)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: (s + 1) / warmup if s < warmup else
                                                 0.5 * (1 + math.cos(math.pi * (s - warmup) / max(total - warmup, 1))))
    step = make_step(model, optimizer, grids, batches, octrees)
    times: List[float] = []
    order = torch.Generator().manual_seed(1)
    model.train()
    for _ in range(epochs):
        for i in torch.randperm(len(batches), generator=order).tolist():
            t0 = time.perf_counter()
            step(i)
            schedule.step()
            times.append(time.perf_counter() - t0)
    return optimizer, times


def step_memory(model: AutoEncoder, optimizer, grids: torch.Tensor, batches, octrees) -> Optional[float]:
    """Peak MB of one more training step on a full batch (after the measurements that use the model)."""
    full = max(range(len(batches)), key=lambda i: batches[i].numel())
    step = make_step(model, optimizer, grids, batches, octrees)
    peak = peak_step_memory(lambda: step(full))
    return None if peak is None else peak / 2 ** 20


def baseline_rows(R: int, cfg: Dict[str, object], train_grids: torch.Tensor,
                  test_grids: torch.Tensor) -> List[Dict[str, object]]:
    def mean_iou(grids: torch.Tensor) -> float:
        return float(voxel_iou(upsampled_input(grids, int(cfg["encoder"])), grids).mean())

    return [{"model": f"{cfg['encoder']}^3 input, up-sampled", "resolution": f"{R}^3",
             "held-out IoU": mean_iou(test_grids), "train IoU": mean_iou(train_grids),
             "settings": "no decoder: the encoder's max-pooled input, nearest up-sampling"},
            {"model": "nearest training shape", "resolution": f"{R}^3",
             "held-out IoU": float(nearest_training_iou(test_grids, train_grids).mean()), "train IoU": 1.0,
             "settings": "oracle retrieval: the training grid with the best IoU to the target"}]


def model_row(model: AutoEncoder, R: int, cfg: Dict[str, object], train_grids: torch.Tensor,
              test_grids: torch.Tensor, times: List[float], epochs, settings: str) -> Dict[str, object]:
    batch = int(cfg["batch"])
    row = {"model": type(model.decoder).__name__, "resolution": f"{R}^3",
           "held-out IoU": model.iou(test_grids, batch), "train IoU": model.iou(train_grids, batch),
           "epochs": epochs, "steps": len(times), "train s": sum(times),
           "ms / step": 1000 * statistics.median(times),
           "parameters": sum(p.numel() for p in model.parameters()),
           "settings": settings}
    return row


def autoencoder_rows(cfg: Dict[str, object], train_grids: Dict[int, torch.Tensor],
                     test_grids: Dict[int, torch.Tensor]) -> List[Dict[str, object]]:
    latent, enc_res, batch = int(cfg["latent"]), int(cfg["encoder"]), int(cfg["batch"])
    epochs, lr, balance = int(cfg["epochs"]), float(cfg["lr"]), float(cfg["class_balance"])
    coarse, fine = int(cfg["coarse"]), int(cfg["fine"])
    batches = fixed_batches(train_grids[coarse].shape[0], batch)
    n_train, n_test = train_grids[coarse].shape[0], test_grids[coarse].shape[0]
    common = f"batch {batch}, latent {latent}, Adam {lr} warm-up + cosine, {n_train} train / {n_test} test shapes"

    def pos_weight(R: int) -> float:
        occupied = float(train_grids[R].float().mean())
        return (1 - occupied) / occupied

    rows = baseline_rows(coarse, cfg, train_grids[coarse], test_grids[coarse])
    for row in rows:
        print(row, flush=True)

    # equal epochs at the coarse resolution
    octrees = [Octree.from_dense(train_grids[coarse][idx]) for idx in batches]
    torch.manual_seed(0)
    ogn = AutoEncoder(OccupancyEncoder(latent, enc_res),
                      OctreeGeneratingNetwork(latent, coarse.bit_length() - 1, base_resolution=8,
                                              convs_per_level=int(cfg["convs_per_level"])),
                      class_balance=balance)
    optimizer, times = train(ogn, train_grids[coarse], batches, octrees, epochs, lr)
    ogn_row = model_row(ogn, coarse, cfg, train_grids[coarse], test_grids[coarse], times, epochs,
                        f"widths {ogn.decoder.channels}, {ogn.decoder.convs_per_level} convs/level, "
                        f"ogn_loss(class_balance={balance}), {common}")
    ogn_row["peak step memory MB"] = step_memory(ogn, optimizer, train_grids[coarse], batches, octrees)
    print(ogn_row, flush=True)

    torch.manual_seed(0)
    w = pos_weight(coarse)
    dense = AutoEncoder(OccupancyEncoder(latent, enc_res), DenseOccupancyDecoder(latent, coarse), pos_weight=w)
    optimizer, times = train(dense, train_grids[coarse], batches, None, epochs, lr)
    dense_row = model_row(dense, coarse, cfg, train_grids[coarse], test_grids[coarse], times, epochs,
                          f"widths {dense.decoder.channels}, occupancy_loss(pos_weight={w:.1f}), {common}")
    dense_row["peak step memory MB"] = step_memory(dense, optimizer, train_grids[coarse], batches, None)
    print(dense_row, flush=True)
    rows += [ogn_row, dense_row]

    # the fine resolution: OGN warm-started from the coarse one; the dense decoder timed
    rows += baseline_rows(fine, cfg, train_grids[fine], test_grids[fine])
    for row in rows[-2:]:
        print(row, flush=True)
    octrees = [Octree.from_dense(train_grids[fine][idx]) for idx in batches]
    torch.manual_seed(0)
    ogn_fine = AutoEncoder(OccupancyEncoder(latent, enc_res), OctreeGeneratingNetwork.from_coarser(ogn.decoder),
                           class_balance=balance)
    ogn_fine.encoder.load_state_dict(ogn.encoder.state_dict())
    before = ogn_fine.iou(test_grids[fine], batch)
    fine_epochs, fine_lr = int(cfg["fine_epochs"]), float(cfg["fine_lr"])
    optimizer, times = train(ogn_fine, train_grids[fine], batches, octrees, fine_epochs, fine_lr)
    ogn_fine_row = model_row(ogn_fine, fine, cfg, train_grids[fine], test_grids[fine], times,
                             f"{epochs} + {fine_epochs}",
                             f"the {coarse}^3 OGN with a level added (from_coarser; held-out IoU {before:.3f} before "
                             f"fine-tuning), fine-tuned {fine_epochs} epochs with Adam {fine_lr} warm-up + cosine; "
                             f"widths {ogn_fine.decoder.channels}; steps and times are the fine-tuning's")
    ogn_fine_row["peak step memory MB"] = step_memory(ogn_fine, optimizer, train_grids[fine], batches, octrees)
    print(ogn_fine_row, flush=True)

    torch.manual_seed(0)
    w = pos_weight(fine)
    dense_fine = AutoEncoder(OccupancyEncoder(latent, enc_res), DenseOccupancyDecoder(latent, fine), pos_weight=w)
    optimizer = torch.optim.Adam(dense_fine.parameters(), lr=lr)
    step = make_step(dense_fine, optimizer, train_grids[fine], batches, None)
    times = []
    for i in range(int(cfg["dense_fine_steps"])):
        t0 = time.perf_counter()
        step(i)
        times.append(time.perf_counter() - t0)
    per_step = statistics.median(times)
    estimate = epochs * len(batches) * per_step / 60
    dense_fine_row = {"model": "DenseOccupancyDecoder", "resolution": f"{fine}^3",
                      "held-out IoU": f"not trained: {per_step:.1f} s/step", "train IoU": "not trained",
                      "steps": len(times), "train s": sum(times), "ms / step": 1000 * per_step,
                      "peak step memory MB": step_memory(dense_fine, optimizer, train_grids[fine], batches, None),
                      "parameters": sum(p.numel() for p in dense_fine.parameters()),
                      "settings": f"timed over {len(times)} steps only: {epochs} epochs as at {coarse}^3 would take "
                                  f"about {estimate:.0f} min; widths {dense_fine.decoder.channels}, batch {batch}"}
    print(dense_fine_row, flush=True)
    rows += [ogn_fine_row, dense_fine_row]
    for ogn_r, dense_r in ((ogn_row, dense_row), (ogn_fine_row, dense_fine_row)):
        if ogn_r["peak step memory MB"] and dense_r["peak step memory MB"]:
            dense_r["dense / OGN memory"] = dense_r["peak step memory MB"] / ogn_r["peak step memory MB"]
    return rows


# part 2: O-CNN


def point_octrees(dataset: ProceduralShapes, depth: int, batch: int):
    """Fixed batches of ``(octree with averaged normals at the finest level, labels)``."""
    out = []
    for idx in fixed_batches(len(dataset), batch):
        items = [dataset[i] for i in idx.tolist()]
        points = torch.stack([it["points"] for it in items])
        normals = torch.stack([it["normals"] for it in items])
        octree = Octree.from_points(points, depth, bounds=UNIT_BOUNDS, features=normals)
        out.append((octree, torch.tensor([int(it["label"]) for it in items])))
    return out


@torch.no_grad()
def accuracy(model: OCNNClassifier, batches) -> float:
    model.eval()
    right = sum(int((model(o).logits.argmax(1) == y).sum()) for o, y in batches)
    return right / sum(y.numel() for _, y in batches)


def ocnn_rows(cfg: Dict[str, object], root: Optional[Path]) -> List[Dict[str, object]]:
    kwargs = dict(categories=list(cfg["categories"]), shapes_per_category=int(cfg["spc"]),
                  representation="points", num_points=int(cfg["points"]), progress=False)
    if root is not None:
        kwargs["root"] = root
    depth, batch = int(cfg["depth"]), int(cfg["batch"])
    train = point_octrees(ProceduralShapes(split="train", **kwargs), depth, batch)
    test = point_octrees(ProceduralShapes(split="test", **kwargs), depth, batch)
    torch.manual_seed(0)
    classes = len(cfg["categories"])
    model = OCNNClassifier(classes, depth, in_channels=3, width=float(cfg["width"]))
    optimizer = torch.optim.Adam(model.parameters(), lr=float(cfg["lr"]))
    times = []
    order = torch.Generator().manual_seed(1)
    for _ in range(int(cfg["epochs"])):
        model.train()
        for i in torch.randperm(len(train), generator=order).tolist():
            octree, labels = train[i]
            t0 = time.perf_counter()
            loss = F.cross_entropy(model(octree).logits, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            times.append(time.perf_counter() - t0)
    row = {"model": "OCNNClassifier", "resolution": f"{2 ** depth}^3 (depth {depth})",
           "test accuracy": accuracy(model, test), "train accuracy": accuracy(model, train), "chance": 1 / classes,
           "ms / step": 1000 * statistics.median(times),
           "settings": f"{classes} categories, {cfg['spc']} shapes/category "
                       f"({sum(y.numel() for _, y in train)} train / {sum(y.numel() for _, y in test)} test), "
                       f"{cfg['points']} points with normals, {cfg['epochs']} epochs, batch {batch}, "
                       f"widths {model.channels}, Adam {cfg['lr']}"}
    print(row, flush=True)
    return [row]


# part 3: build times


def build_rows(grids: torch.Tensor, repeat: int) -> List[Dict[str, object]]:
    B, R = grids.shape[0], grids.shape[1]
    depth = R.bit_length() - 1
    label = f"{B} solid grids {R}^3"
    voxels = int(grids.sum())
    rows = []
    collapsed = Octree.from_dense(grids)
    kept = Octree.from_dense(grids, collapse_full=False)
    cells = {o: sum(o.num_cells(d) for d in range(depth + 1)) for o in (collapsed, kept)}
    for name, fn, count, note in (
        ("Octree.from_dense", lambda: Octree.from_dense(grids), cells[collapsed], "full blocks collapsed (OGN)"),
        ("Octree.from_dense(collapse_full=False)", lambda: Octree.from_dense(grids, collapse_full=False),
         cells[kept], "occupied cells subdivided to the finest level (O-CNN)"),
        ("Octree.to_dense", collapsed.to_dense, cells[collapsed], "exact round trip"),
        (f"neighbors(level {depth}, 27)", lambda: Octree.from_dense(grids).neighbors(depth),
         collapsed.num_cells(depth), "build + look-up of every finest cell's 27 neighbours"),
    ):
        stats = time_call(fn, repeat=repeat)
        rows.append({"operation": name, "input": label, "median ms": 1000 * stats["median"], "cells": count,
                     "voxels": voxels, "note": note})
    g = torch.Generator().manual_seed(0)
    points = torch.rand(B, 16384, 3, generator=g) - 0.5
    stats = time_call(lambda: Octree.from_points(points, depth, bounds=UNIT_BOUNDS), repeat=repeat)
    octree = Octree.from_points(points, depth, bounds=UNIT_BOUNDS)
    rows.append({"operation": f"Octree.from_points(depth={depth})", "input": f"{B} x 16384 uniform points",
                 "median ms": 1000 * stats["median"], "cells": sum(octree.num_cells(d) for d in range(depth + 1)),
                 "voxels": int(octree.to_dense().sum()), "note": "occupied finest cells as voxels"})
    for row in rows:
        print(row, flush=True)
    return rows


# output


def write(out_dir: Path, command: str, parts: Dict[str, List[Dict[str, object]]], notes: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = ["# Octrees: OGN against a dense decoder, O-CNN, octree operations (CPU)", "",
             f"Command: `{command}`  ", f"Machine: {harness.machine()}", "", notes, ""]
    for title, columns, key in (("Auto-encoders (procedural shapes, solid occupancy)", AE_COLUMNS, "autoencoders"),
                                ("O-CNN classification (procedural point clouds)", OCNN_COLUMNS, "ocnn"),
                                ("Octree operations", BUILD_COLUMNS, "build")):
        lines += [f"## {title}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(harness._fmt("" if row.get(c) is None else row.get(c)) for c in columns) + " |"
                  for row in parts[key]]
        lines.append("")
    md = out_dir / "octree.md"
    md.write_text("\n".join(lines))
    (out_dir / "octree.json").write_text(json.dumps({"machine": harness.machine(), "command": command,
                                                     "notes": notes, **parts}, indent=1))
    return md


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (2 categories, 16^3 and 32^3, one epoch)")
    parser.add_argument("--out-dir", type=Path, default=harness.RESULTS, help="where the results files go")
    parser.add_argument("--data-root", type=Path, default=None,
                        help="the ProceduralShapes cache folder (default: the library's cache)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cfg = QUICK if args.quick else FULL
    start = time.perf_counter()
    kwargs = dict(categories=list(cfg["categories"]), shapes_per_category=int(cfg["spc"]), progress=False)
    if args.data_root is not None:
        kwargs["root"] = args.data_root
    resolutions = (int(cfg["coarse"]), int(cfg["fine"]))
    train = solid_grids(ProceduralShapes(split="train", **kwargs), resolutions)
    test = solid_grids(ProceduralShapes(split="test", **kwargs), resolutions)
    print(f"voxelised {len(next(iter(train.values())))} train / {len(next(iter(test.values())))} test shapes "
          f"in {time.perf_counter() - start:.1f} s", flush=True)
    seconds = {}
    parts = {}
    for name, run in (("autoencoders", lambda: autoencoder_rows(cfg, train, test)),
                      ("ocnn", lambda: ocnn_rows(cfg["ocnn"], args.data_root)),
                      ("build", lambda: build_rows(train[max(resolutions)][:8], int(cfg["build_repeat"])))):
        t0 = time.perf_counter()
        parts[name] = run()
        seconds[name] = time.perf_counter() - t0
    occupancy = {R: float(g.float().mean()) for R, g in train.items()}
    notes = ("One torch thread on a shared machine (timings are noisy; compare within a table). Peak step memory: "
             "torch CPU tensor memory held at once during one training step beyond what existed before it "
             "(torch.profiler allocation events), so parameters and optimizer state are not counted. "
             "ms / step (median) and train s (the sum) exclude building the target octrees (part 3 times that) "
             "and, after the first epoch, their neighbour look-ups (cached on each target octree; OGN with known "
             "propagation convolves on the target's cells). IoU: voxel_iou of the decoded occupancy (OGN: "
             "predicted propagation) against the target, mean over the held-out shapes and over all training "
             "shapes. The auto-encoders squeeze each shape through a 64-number code, so they are expected to "
             "stay below the up-sampled input, which keeps the 32^3 detail; the dense and OGN rows at "
             f"{cfg['coarse']}^3 ran the same epochs over the same batches. Mean occupancy of the training "
             "grids: " + ", ".join(f"{R}^3 {100 * v:.1f}%" for R, v in occupancy.items())
             + ". Wall time " + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items())
             + f", {time.perf_counter() - start:.0f} s in all.")
    command = "python benchmarks/bench_octree.py" + (" --quick" if args.quick else "")
    md = write(args.out_dir, command, parts, notes)
    print(md.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
