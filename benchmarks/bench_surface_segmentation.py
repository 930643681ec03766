"""Per-vertex part segmentation of procedural meshes: SpectralCNN, MoNet and DiffusionNet side by side.

    python benchmarks/bench_surface_segmentation.py [--quick] [--out-dir benchmarks/results]

The shapes come from ``geo4g.data.ProceduralShapes`` (mesh representation, global part labels,
train and test splits by index). Their triangulations are very uneven (a table leg is a box of a
dozen long thin triangles), so every mesh is refined with
``geo4g.meshes.surface_data.subdivide_long_edges`` (midpoint splits of edges longer than
``--max-edge``, Delaunay flips on flat regions) before its operators are computed. A vertex's label
is the majority label of its faces. Each shape is a union of closed parts that are separate
connected components (several zero Laplacian eigenvalues); all models take that as it comes.

Every model sees the same input per vertex (the coordinates, y up, bounding-box diagonal 1, and
a one-hot category, as in ShapeNetPart) and is trained from scratch with the same budget (epochs,
batch size, Adam learning rate, seed, one torch thread). Only the parts of a shape's category
compete (the others' logits are masked), in training and evaluation. Reported on the held-out test
split: per-vertex accuracy (over all test vertices) and the instance part mIoU (mean over shapes
of the mean IoU of the category's parts, a part absent from both prediction and truth counting 1).
A point-wise MLP on the same input gives the context-free baseline. The numbers come from short
CPU runs with narrow networks: they compare the models under one budget, they are not the
papers' settings.

``--quick`` is a smoke run (2 categories, 10 shapes per category, 1 epoch, narrow models) that
writes ``surface_segmentation_quick.md/.json``.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, NamedTuple

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from harness import write_results  # noqa: E402

from geo4g.data import ProceduralShapes  # noqa: E402
from geo4g.meshes.diffusion_net import DiffusionNet  # noqa: E402
from geo4g.meshes.monet import MoNet, batch_patches, surface_patches  # noqa: E402
from geo4g.meshes.spectral_conv import SpectralCNN  # noqa: E402
from geo4g.meshes.surface_data import (  # noqa: E402
    batch_operators,
    face_to_vertex_labels,
    subdivide_long_edges,
    surface_operators,
)
from geo4g.nn.layers import MLP  # noqa: E402

CATEGORIES = ("chair", "table", "airplane", "mug", "lamp")
QUICK_CATEGORIES = ("chair", "mug")
COLUMNS = ["model", "test vertex accuracy", "test part mIoU", "parameters", "train seconds", "settings"]


class Shape(NamedTuple):
    features: torch.Tensor  # (V, 3 + categories)
    labels: torch.Tensor  # (V,) global part labels
    category: int
    ops: object
    patches: object


def prepare(dataset: ProceduralShapes, args) -> List[Shape]:
    shapes = []
    num_categories = len(dataset.categories)
    for index in range(len(dataset)):
        item = dataset[index]
        verts, faces, face_labels = subdivide_long_edges(item["verts"].double(), item["faces"], args.max_edge,
                                                         item["face_labels"])
        labels = face_to_vertex_labels(faces, face_labels, verts.shape[0])
        verts = verts.float()
        category = int(item["label"])
        onehot = torch.zeros(verts.shape[0], num_categories)
        onehot[:, category] = 1
        ops = surface_operators(verts, faces, k=args.k)
        patches = surface_patches(verts, faces, radius=args.patch_radius, k=args.patch_size, reference=(0.0, 1.0, 0.0))
        shapes.append(Shape(torch.cat([verts, onehot], 1), labels, category, ops, patches))
    return shapes


class PointwiseMLP(nn.Module):
    """The context-free baseline: the same MLP on every vertex."""

    def __init__(self, in_channels: int, num_classes: int, width: int):
        super().__init__()
        self.mlp = MLP([in_channels, width, width, width, num_classes])

    def forward(self, x, _context):
        return self.mlp(x)


def collate(shapes: List[Shape], kind: str):
    V = max(s.features.shape[0] for s in shapes)
    x = torch.zeros(len(shapes), V, shapes[0].features.shape[1])
    labels = torch.full((len(shapes), V), -1, dtype=torch.long)
    for b, s in enumerate(shapes):
        x[b, :s.features.shape[0]] = s.features
        labels[b, :s.labels.shape[0]] = s.labels
    if kind == "monet":
        context = batch_patches([s.patches for s in shapes])
    elif kind in ("spectral", "diffusion"):
        context = batch_operators([s.ops for s in shapes], num_verts=V)
    else:
        context = None
    return x, labels, context


def category_mask(shapes: List[Shape], part_ranges, num_parts: int, V: int) -> torch.Tensor:
    """``(B, 1, P)`` additive mask: 0 for the parts of each shape's category, -inf elsewhere."""
    mask = torch.full((len(shapes), 1, num_parts), float("-inf"))
    for b, s in enumerate(shapes):
        first, stop = part_ranges[s.category]
        mask[b, 0, first:stop] = 0
    return mask


def evaluate(model, shapes: List[Shape], kind: str, part_ranges, num_parts: int) -> Dict[str, float]:
    model.eval()
    correct = total = 0
    ious = []
    with torch.no_grad():
        for s in shapes:
            x, labels, context = collate([s], kind)
            logits = model(x, context) + category_mask([s], part_ranges, num_parts, x.shape[1])
            pred, truth = logits[0].argmax(-1), labels[0]
            valid = truth >= 0
            pred, truth = pred[valid], truth[valid]
            correct += int((pred == truth).sum())
            total += int(truth.numel())
            first, stop = part_ranges[s.category]
            shape_ious = []
            for p in range(first, stop):
                union = int(((pred == p) | (truth == p)).sum())
                shape_ious.append(1.0 if union == 0 else int(((pred == p) & (truth == p)).sum()) / union)
            ious.append(sum(shape_ious) / len(shape_ious))
    return {"test vertex accuracy": correct / max(total, 1), "test part mIoU": sum(ious) / max(len(ious), 1)}


def train_model(name: str, model: nn.Module, kind: str, train: List[Shape], test: List[Shape], args,
                part_ranges, num_parts: int) -> Dict[str, object]:
    torch.manual_seed(args.seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=args.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=max(args.epochs, 1))
    order_rng = torch.Generator().manual_seed(args.seed)
    start = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(train), generator=order_rng).tolist()
        losses = []
        for first in range(0, len(order), args.batch):
            batch = [train[i] for i in order[first:first + args.batch]]
            x, labels, context = collate(batch, kind)
            logits = model(x, context) + category_mask(batch, part_ranges, num_parts, x.shape[1])
            valid = labels >= 0
            loss = nn.functional.cross_entropy(logits[valid], labels[valid])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
        schedule.step()
        print(f"  {name} epoch {epoch + 1}/{args.epochs}: loss {sum(losses) / len(losses):.3f} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
    seconds = time.perf_counter() - start
    row = {"model": name, "parameters": sum(p.numel() for p in model.parameters()), "train seconds": round(seconds, 1)}
    row.update(evaluate(model, test, kind, part_ranges, num_parts))
    return row


def build_models(in_channels: int, num_parts: int, args):
    """``(name, kind, factory, settings)`` per row; each model is built right after seeding."""
    w = args.width
    return [
        ("point-wise MLP (no context)", "mlp", lambda: PointwiseMLP(in_channels, num_parts, w),
         f"MLP {in_channels}-{w}-{w}-{w}-{num_parts}"),
        ("SpectralCNN", "spectral",
         lambda: SpectralCNN(in_channels, num_parts, width=w, num_layers=4, num_basis_filters=12),
         f"width {w}, 4 layers, 12 cubic B-spline multipliers, k={args.k}"),
        ("MoNet", "monet", lambda: MoNet(in_channels, num_parts, width=w, num_layers=4, kernel_size=8),
         f"width {w}, 4 GMMConv layers, 8 Gaussians, cartesian pseudo-coordinates, patches of radius "
         f"{args.patch_radius} (at most {args.patch_size} vertices), theta=0 along the up axis"),
        ("DiffusionNet", "diffusion",
         lambda: DiffusionNet(in_channels, num_parts, width=w, num_blocks=4, k_eig=args.k, dropout=0.0),
         f"width {w}, 4 blocks, spectral diffusion, k_eig={args.k}, gradient features"),
    ]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2 categories, 10 shapes, 1 epoch")
    parser.add_argument("--out-dir", type=Path, default=harness.RESULTS)
    parser.add_argument("--shapes-per-category", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--k", type=int, default=48, help="eigenpairs per mesh")
    parser.add_argument("--max-edge", type=float, default=0.1, help="subdivide edges longer than this")
    parser.add_argument("--patch-radius", type=float, default=0.06)
    parser.add_argument("--patch-size", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    categories = CATEGORIES
    if args.quick:
        categories, args.shapes_per_category, args.epochs, args.width, args.k = QUICK_CATEGORIES, 10, 1, 8, 16
    harness.RESULTS = args.out_dir
    args.out_dir.mkdir(parents=True, exist_ok=True)
    wall = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        sets = {split: ProceduralShapes(tmp, split=split, categories=categories,
                                        shapes_per_category=args.shapes_per_category, representation="mesh",
                                        workers=0, progress=False, seed=args.seed)
                for split in ("train", "test")}
        t0 = time.perf_counter()
        train, test = prepare(sets["train"], args), prepare(sets["test"], args)
        prep_seconds = time.perf_counter() - t0
    offsets = list(sets["train"].part_offsets) + [sets["train"].num_parts]
    part_ranges = list(zip(offsets[:-1], offsets[1:]))
    num_parts = sets["train"].num_parts
    sizes = torch.tensor([s.features.shape[0] for s in train + test], dtype=torch.float64)
    print(f"{len(train)} train / {len(test)} test shapes, {int(sizes.min())}-{int(sizes.max())} vertices "
          f"(median {int(sizes.median())}), operators and patches in {prep_seconds:.0f} s", flush=True)
    in_channels = train[0].features.shape[1]
    rows = []
    for name, kind, factory, settings in build_models(in_channels, num_parts, args):
        torch.manual_seed(args.seed)
        row = train_model(name, factory(), kind, train, test, args, part_ranges, num_parts)
        row["settings"] = settings
        rows.append(row)
        print(f"{name}: accuracy {row['test vertex accuracy']:.3f}, part mIoU {row['test part mIoU']:.3f}, "
              f"{row['train seconds']} s", flush=True)
    command = "python benchmarks/bench_surface_segmentation.py" + (" --quick" if args.quick else "")
    notes = (f"Per-vertex part segmentation of procedural meshes ({', '.join(categories)}; "
             f"{args.shapes_per_category} shapes per category: {len(train)} train, {len(test)} test shapes; "
             f"{num_parts} parts in all). Meshes refined to edges <= {args.max_edge} "
             f"({int(sizes.min())}-{int(sizes.max())} vertices, median {int(sizes.median())}); vertex label = majority "
             f"of its faces. Input per vertex: xyz + one-hot category. Same budget for every model: "
             f"{args.epochs} epochs, batch {args.batch} shapes, Adam lr {args.lr} with cosine decay, seed {args.seed}, "
             f"one torch thread. Preparation (subdivision, eigenbases k={args.k}, gradient operators, geodesic "
             f"patches) took {prep_seconds:.0f} s; whole run {time.perf_counter() - wall:.0f} s. "
             f"Test metrics on the held-out split; part mIoU is the instance mIoU over the category's parts.")
    name = "surface_segmentation_quick" if args.quick else "surface_segmentation"
    md = write_results(name, "Surface part segmentation: SpectralCNN, MoNet, DiffusionNet (CPU, short runs)",
                       rows, COLUMNS, command, notes)
    print(md.read_text())


if __name__ == "__main__":
    main()
