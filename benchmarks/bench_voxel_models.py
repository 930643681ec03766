"""Voxel model benchmark: short CPU training runs on procedural shapes voxelised as solids.

    python benchmarks/bench_voxel_models.py [--quick] [--out-dir benchmarks/results] [--rows voxnet,gan,...]

Every row trains from scratch (seed 0, one torch thread) on :class:`geo4g.data.ProceduralShapes`
(12 categories) voxelised with ``geo4g.voxels.voxelize.voxelize_mesh(mode="solid")`` in the
bounds ``[-0.5, 0.5]^3`` where the shapes live, and is scored on the held-out ``split="test"``
shapes:

- ``voxnet``, ``shapenets``: test accuracy of :class:`VoxNet` and :class:`ShapeNets3D` (32^3);
- ``ae``, ``vae`` (32^3) and ``ae64`` (64^3): test IoU of the reconstructions (threshold 0.5),
  next to the IoU of the nearest training shape (an oracle retrieval baseline);
- ``gan``: a 3D-GAN trained briefly on all training grids; its samples are scored by the
  trained VoxNet (an inception score: ``exp E_x KL(p(y|x) || p(y))``, high when samples are
  confidently classified *and* spread over the classes; the note adds the fraction classified
  with confidence >= 0.9), by fidelity (mean IoU of
  each sample to its nearest training shape), coverage (the fraction of training shapes that
  are some sample's nearest) and MMD-IoU (mean IoU of each test shape to its nearest sample),
  against the untrained generator and against real training shapes in place of samples;
- ``completion``: :class:`CompletionNet` trained on simulated scans (1 or 3 random views) of the
  training shapes, test IoU from 1 and 3 views next to the IoU of the partial scan itself and of
  space carving (every voxel the scan did not see as empty).

Writes ``voxel_models.md``/``voxel_models.json``. ``--quick`` is a smoke run (2 categories,
10 shapes per category, 16^3, one epoch, tiny widths). The data root defaults to the library's
cache (``$GEO4G_CACHE`` or ``~/.cache/geo4g``), where the procedural meshes are generated once.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from harness import write_results  # noqa: E402

from geo4g.data import ProceduralShapes  # noqa: E402
from geo4g.losses import voxel_iou  # noqa: E402
from geo4g.structures import Meshes  # noqa: E402
from geo4g.voxels.classifiers import ShapeNets3D, VoxNet  # noqa: E402
from geo4g.voxels.completion import CompletionNet, random_viewpoints, visibility  # noqa: E402
from geo4g.voxels.generative import (VoxelAutoEncoder, VoxelDiscriminator, VoxelGenerator, VoxelVAE,  # noqa: E402
                                     gan_train_step, occupancy_loss, vae_loss)
from geo4g.voxels.voxelize import voxelize_mesh  # noqa: E402

COLUMNS = ["row", "model", "settings", "test metric", "value", "baseline", "train seconds", "note"]
UNIT = torch.tensor([[-0.5, -0.5, -0.5], [0.5, 0.5, 0.5]])
ROWS = ("voxnet", "shapenets", "ae", "vae", "ae64", "gan", "completion")
#: rows run only when named in ``--rows`` (the 64^3 voxelisation and training take a few minutes more)
OPTIONAL = ("ae64",)

FULL = dict(categories=None, spc=60, resolution=32, resolution64=64,
            voxnet=dict(width=1.0, epochs=8, lr=1e-3, batch=32),
            shapenets=dict(width=0.5, epochs=8, lr=1e-3, batch=32),
            ae=dict(width=0.5, latent=128, epochs=8, lr=2e-3, pos_weight=5.0, batch=16),
            vae=dict(width=0.5, latent=128, epochs=8, lr=2e-3, pos_weight=5.0, beta=1.0, batch=16),
            ae64=dict(width=0.25, latent=128, epochs=8, lr=2e-3, pos_weight="balanced", batch=16, spc=30),
            gan=dict(g_width=0.25, d_width=0.25, latent=64, steps=250, g_lr=2.5e-3, d_lr=2.5e-4, samples=64,
                     batch=16),
            completion=dict(width=0.125, epochs=2, lr=2e-3, views=(1, 3), batch=16))
QUICK = dict(categories=("chair", "table"), spc=10, resolution=16, resolution64=32,
             voxnet=dict(width=0.25, epochs=1, lr=1e-3, batch=8),
             shapenets=dict(width=0.125, epochs=1, lr=1e-3, batch=8),
             ae=dict(width=0.125, latent=16, epochs=1, lr=2e-3, pos_weight=5.0, batch=8),
             vae=dict(width=0.125, latent=16, epochs=1, lr=2e-3, pos_weight=5.0, beta=1.0, batch=8),
             ae64=dict(width=0.125, latent=16, epochs=1, lr=2e-3, pos_weight=5.0, batch=8, spc=10),
             gan=dict(g_width=0.125, d_width=0.125, latent=16, steps=4, g_lr=2.5e-3, d_lr=2.5e-4, samples=8, batch=8),
             completion=dict(width=0.125, epochs=1, lr=2e-3, views=(1, 3), batch=8))


# ----------------------------------------------------------------------------------------- data
def voxel_split(root: Optional[Path], split: str, spc: int, categories, resolution: int,
                chunk: int = 32) -> Tuple[torch.Tensor, torch.Tensor, Tuple[str, ...]]:
    """``(grids (N, R, R, R) bool, labels (N,), category names)`` of a ProceduralShapes split."""
    dataset = ProceduralShapes(root, split=split, shapes_per_category=spc, categories=categories,
                               representation="mesh", progress=False)
    grids, labels = [], []
    for start in range(0, len(dataset), chunk):
        items = [dataset[i] for i in range(start, min(len(dataset), start + chunk))]
        meshes = Meshes([it["verts"] for it in items], [it["faces"].long() for it in items])
        grids.append(voxelize_mesh(meshes, resolution=resolution, mode="solid", bounds=UNIT))
        labels += [int(it["label"]) for it in items]
    return torch.cat(grids), torch.tensor(labels), dataset.categories


def shuffled_batches(n: int, batch: int, generator: torch.Generator) -> List[torch.Tensor]:
    order = torch.randperm(n, generator=generator)
    return [order[i:i + batch] for i in range(0, n, batch)]


def pairwise_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(N, M)`` IoU between bool grids ``a (N, ...)`` and ``b (M, ...)`` (1 for two empty grids)."""
    fa, fb = a.flatten(1).float(), b.flatten(1).float()
    inter = fa @ fb.t()
    union = fa.sum(1)[:, None] + fb.sum(1)[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(inter))


# ---------------------------------------------------------------------------------- classifiers
def classifier_row(key: str, cfg: Dict, data: Dict) -> Dict[str, object]:
    torch.manual_seed(0)
    batch = cfg["batch"]
    x, y = data["train"]
    num_classes = len(data["categories"])
    R = x.shape[1]
    if key == "voxnet":
        model = VoxNet(num_classes, resolution=R, width=cfg["width"])
        name = "VoxNet"
    else:
        model = ShapeNets3D(num_classes, resolution=max(R, 26), width=cfg["width"])
        name = "ShapeNets3D"
        if R < 26:  # the quick run's 16^3 grids, padded to the network's smallest input
            pad = (26 - R) // 2
            x = F.pad(x, (pad, 26 - R - pad) * 3)
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"], weight_decay=1e-4)
    g = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    losses = []
    for _ in range(cfg["epochs"]):
        model.train()
        total = 0.0
        for idx in shuffled_batches(x.shape[0], batch, g):
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * idx.numel()
        losses.append(total / x.shape[0])
    seconds = time.perf_counter() - start
    test_x, test_y = data["test"]
    if test_x.shape[1] != x.shape[1]:
        pad = (x.shape[1] - test_x.shape[1]) // 2
        test_x = F.pad(test_x, (pad, x.shape[1] - test_x.shape[1] - pad) * 3)
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(test_x[i:i + 64]).argmax(1) for i in range(0, test_x.shape[0], 64)])
    accuracy = float((pred == test_y).float().mean())
    majority = float((test_y == torch.bincount(y).argmax()).float().mean())
    data.setdefault("classifiers", {})[key] = model
    return {"row": key, "model": name,
            "settings": f"{R}^3, width {cfg['width']}, {cfg['epochs']} epochs, batch {batch}, "
                        f"Adam {cfg['lr']} (weight decay 1e-4), no augmentation",
            "test metric": "accuracy", "value": accuracy, "baseline": majority, "train seconds": round(seconds, 1),
            "note": f"{test_y.numel()} test shapes, {num_classes} classes; baseline: majority class; "
                    f"train loss {losses[0]:.3g} -> {losses[-1]:.3g}"}


# ------------------------------------------------------------------------------- auto-encoders
def reconstruct(model, grids: torch.Tensor) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        out = [model(grids[i:i + 32]) for i in range(0, grids.shape[0], 32)]
    logits = torch.cat([o.logits if hasattr(o, "logits") else o for o in out])
    return torch.sigmoid(logits) > 0.5


def autoencoder_row(key: str, cfg: Dict, train: torch.Tensor, test: torch.Tensor) -> Dict[str, object]:
    torch.manual_seed(0)
    batch = cfg["batch"]
    R = train.shape[1]
    variational = key == "vae"
    model = (VoxelVAE if variational else VoxelAutoEncoder)(R, cfg["latent"], cfg["width"])
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    g = torch.Generator().manual_seed(0)
    untrained = float(voxel_iou(reconstruct(model, test), test).mean())
    start = time.perf_counter()
    losses = []
    for _ in range(cfg["epochs"]):
        model.train()
        total = 0.0
        for idx in shuffled_batches(train.shape[0], batch, g):
            if variational:
                loss = vae_loss(model(train[idx], generator=g), train[idx], beta=cfg["beta"],
                                pos_weight=cfg["pos_weight"]).loss
            else:
                loss = occupancy_loss(model(train[idx]), train[idx], pos_weight=cfg["pos_weight"])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * idx.numel()
        losses.append(total / train.shape[0])
    seconds = time.perf_counter() - start
    test_iou = float(voxel_iou(reconstruct(model, test), test).mean())
    train_iou = float(voxel_iou(reconstruct(model, train[:128]), train[:128]).mean())
    nearest = float(pairwise_iou(test, train).max(1).values.mean())
    loss_name = f"negative ELBO (beta {cfg['beta']})" if variational else "BCE"
    return {"row": key, "model": "VoxelVAE" if variational else "VoxelAutoEncoder",
            "settings": f"{R}^3, latent {cfg['latent']}, width {cfg['width']}, {cfg['epochs']} epochs, batch {batch}, "
                        f"Adam {cfg['lr']}, {loss_name} with pos_weight {cfg['pos_weight']}, "
                        f"{train.shape[0]} train shapes",
            "test metric": "IoU (threshold 0.5)", "value": test_iou, "baseline": nearest,
            "train seconds": round(seconds, 1),
            "note": f"{test.shape[0]} test shapes; baseline: IoU of the nearest training shape (oracle retrieval); "
                    f"untrained {untrained:.3f}; train IoU {train_iou:.3f}; loss {losses[0]:.4g} -> {losses[-1]:.4g}"
                    + ("; eval mode decodes z = mu" if variational else "")}


# ----------------------------------------------------------------------------------------- GAN
def sample_metrics(samples: torch.Tensor, train: torch.Tensor, test: torch.Tensor, classifier) -> Dict[str, float]:
    """Fidelity, coverage, MMD-IoU and the confidently classified fraction of bool ``samples``."""
    to_train = pairwise_iou(samples, train)
    nearest = to_train.argmax(1)
    metrics = {"fidelity": float(to_train.max(1).values.mean()),
               "coverage": float(torch.unique(nearest).numel() / train.shape[0]),
               "mmd_iou": float(pairwise_iou(test, samples).max(1).values.mean())}
    with torch.no_grad():
        probs = F.softmax(classifier(samples), 1).double()
    marginal = probs.mean(0, keepdim=True)
    kl = (probs * (probs.clamp(min=1e-12).log() - marginal.clamp(min=1e-12).log())).sum(1)
    metrics["inception"] = float(kl.mean().exp())
    confident = probs.max(1).values >= 0.9
    metrics["confident"] = float(confident.float().mean())
    metrics["classes"] = torch.bincount(probs.argmax(1)[confident], minlength=probs.shape[1]).tolist()
    return metrics


def gan_rows(cfg: Dict, data: Dict) -> List[Dict[str, object]]:
    torch.manual_seed(0)
    batch = cfg["batch"]
    train, _ = data["train"]
    test, _ = data["test"]
    R = train.shape[1]
    classifier = data["classifiers"].get("voxnet")
    if classifier is None:
        raise RuntimeError("the gan row scores samples with the voxnet row's classifier: run both")
    classifier.eval()
    g_model = VoxelGenerator(cfg["latent"], R, cfg["g_width"])
    d_model = VoxelDiscriminator(R, cfg["d_width"])
    g_opt = torch.optim.Adam(g_model.parameters(), lr=cfg["g_lr"], betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(d_model.parameters(), lr=cfg["d_lr"], betas=(0.5, 0.999))
    fixed = torch.Generator().manual_seed(123)

    def samples() -> torch.Tensor:
        g_model.eval()
        with torch.no_grad():
            out = g_model.sample(cfg["samples"], torch.Generator().manual_seed(123)) > 0.5
        g_model.train()
        return out

    before = sample_metrics(samples(), train, test, classifier)
    g = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    steps, updates, accuracies = 0, 0, []
    while steps < cfg["steps"]:
        for idx in shuffled_batches(train.shape[0], batch, fixed):
            if steps == cfg["steps"]:
                break
            step = gan_train_step(g_model, d_model, g_opt, d_opt, train[idx], generator=g)
            steps += 1
            updates += step.discriminator_updated
            accuracies.append(step.discriminator_accuracy)
    seconds = time.perf_counter() - start
    after = sample_metrics(samples(), train, test, classifier)
    # real shapes in place of samples: held-out test shapes for the metrics against the training set,
    # training shapes for the one against the test set
    pick = torch.Generator().manual_seed(1)
    reference = sample_metrics(test[torch.randperm(test.shape[0], generator=pick)[:cfg["samples"]]], train, test,
                               classifier)
    reference["mmd_iou"] = sample_metrics(train[torch.randperm(train.shape[0], generator=pick)[:cfg["samples"]]],
                                          train, test, classifier)["mmd_iou"]
    names = data["categories"]

    def confident(metrics: Dict) -> str:
        top = sorted(((c, names[i]) for i, c in enumerate(metrics["classes"]) if c), reverse=True)[:4]
        return f"{metrics['confident']:.2f} ({', '.join(f'{n} {c}' for c, n in top) or 'none'})"

    settings = (f"{R}^3, latent {cfg['latent']}, G width {cfg['g_width']}, D width {cfg['d_width']}, "
                f"{cfg['steps']} steps, batch {batch}, Adam(0.5, 0.999) G {cfg['g_lr']} / D {cfg['d_lr']}, "
                "D updated when its accuracy <= 0.8, "
                f"{cfg['samples']} samples")
    late = accuracies[len(accuracies) // 2:]
    real_kind = {"inception": "test shapes", "fidelity": "test shapes", "coverage": "test shapes",
                 "mmd_iou": "training shapes"}
    rows = []
    for metric, label, note in (
            ("inception", f"VoxNet inception score exp E KL(p(y|x) || p(y)) (at most {len(names)})",
             f"fraction classified with p >= 0.9 (top classes): trained G {confident(after)}, untrained "
             f"{confident(before)}, test shapes {confident(reference)}"),
            ("fidelity", "mean IoU of a sample to its nearest training shape", ""),
            ("coverage", "fraction of training shapes nearest to some sample", ""),
            ("mmd_iou", "mean IoU of a test shape to its nearest sample", "")):
        rows.append({"row": f"gan: {metric}", "model": "VoxelGenerator + VoxelDiscriminator", "settings": settings,
                     "test metric": label, "value": after[metric], "baseline": before[metric],
                     "train seconds": round(seconds, 1),
                     "note": f"baseline: the untrained generator; real shapes as samples ({real_kind[metric]}): "
                             f"{reference[metric]:.3f}" + (f"; {note}" if note else "") +
                             (f"; D updated on {updates}/{steps} steps, mean D accuracy over the second half "
                              f"{sum(late) / max(len(late), 1):.2f}" if metric == "inception" else "")})
    return rows


# ---------------------------------------------------------------------------------- completion
def scans(grids: torch.Tensor, views: int, seed: int):
    """Visibility of each grid from ``views`` random viewpoints on the sphere of radius 1.5 (world units)."""
    g = torch.Generator().manual_seed(seed)
    viewpoints = torch.stack([random_viewpoints(views, radius=1.5, generator=g) for _ in range(grids.shape[0])])
    return visibility(grids, viewpoints, bounds=UNIT)


def completion_rows(cfg: Dict, train: torch.Tensor, test: torch.Tensor) -> List[Dict[str, object]]:
    torch.manual_seed(0)
    batch = cfg["batch"]
    R = train.shape[1]
    t0 = time.perf_counter()
    half = train.shape[0] // 2
    train_scans = [scans(train[:half], cfg["views"][0], 10), scans(train[half:], cfg["views"][-1], 11)]
    partial = torch.cat([s.visible for s in train_scans])
    free = torch.cat([s.known_empty for s in train_scans])
    cast_seconds = time.perf_counter() - t0
    model = CompletionNet(R, cfg["width"], prior=float(train.float().mean()))
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    g = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    losses = []
    for _ in range(cfg["epochs"]):
        model.train()
        total = 0.0
        for idx in shuffled_batches(train.shape[0], batch, g):
            loss = occupancy_loss(model(partial[idx], free[idx]), train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * idx.numel()
        losses.append(total / train.shape[0])
    seconds = time.perf_counter() - start
    model.eval()
    rows = []
    for views in cfg["views"]:
        scan = scans(test, views, 100 + views)
        with torch.no_grad():
            logits = torch.cat([model(scan.visible[i:i + 32], scan.known_empty[i:i + 32])
                                for i in range(0, test.shape[0], 32)])
        completed = float(voxel_iou(torch.sigmoid(logits), test).mean())
        partial_iou = float(voxel_iou(scan.visible, test).mean())
        carved = float(voxel_iou(~scan.known_empty, test).mean())
        rows.append({"row": f"completion: {views} view{'s' if views > 1 else ''}", "model": "CompletionNet",
                     "settings": f"{R}^3, width {cfg['width']}, known-empty channel, {cfg['epochs']} epochs, "
                                 f"batch {batch}, "
                                 f"Adam {cfg['lr']}, BCE; trained on {half} 1-view and {train.shape[0] - half} "
                                 f"{cfg['views'][-1]}-view scans", "test metric": "IoU with the complete solid",
                     "value": completed, "baseline": partial_iou, "train seconds": round(seconds, 1),
                     "note": f"{test.shape[0]} test shapes, random viewpoints at radius 1.5; "
                             "baseline: the partial scan "
                             f"itself; space carving (unseen = occupied): {carved:.3f}; ray casting for the training "
                             f"scans {cast_seconds:.1f} s; train loss {losses[0]:.3g} -> {losses[-1]:.3g}"})
    return rows


# ----------------------------------------------------------------------------------------- main
def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (2 categories, 10 shapes, 16^3, 1 epoch)")
    parser.add_argument("--out-dir", type=Path, default=harness.RESULTS, help="where the results files go")
    parser.add_argument("--data-root", type=Path, default=None, help="ProceduralShapes cache root")
    parser.add_argument("--rows", default=None, help="comma-separated rows (default all but "
                        + ",".join(OPTIONAL) + "): " + ",".join(ROWS))
    parser.add_argument("--append", action="store_true",
                        help="keep the rows of an existing <out-dir>/voxel_models.json, replacing those run again")
    args = parser.parse_args(argv)
    wanted = [r for r in ROWS if r not in OPTIONAL] if args.rows is None else \
        [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in wanted if r not in ROWS]
    if unknown:
        parser.error(f"unknown rows {unknown}; known: {list(ROWS)}")
    if "gan" in wanted and "voxnet" not in wanted:
        parser.error("the gan row scores samples with the voxnet row's classifier: add voxnet to --rows")
    harness.RESULTS = args.out_dir
    cfg = QUICK if args.quick else FULL
    torch.set_num_threads(1)
    command = "python benchmarks/bench_voxel_models.py" + (" --quick" if args.quick else "") + \
        (f" --rows {args.rows}" if args.rows else "")
    start = time.perf_counter()
    R = cfg["resolution"]
    t0 = time.perf_counter()
    train, train_labels, categories = voxel_split(args.data_root, "train", cfg["spc"], cfg["categories"], R)
    test, test_labels, _ = voxel_split(args.data_root, "test", cfg["spc"], cfg["categories"], R)
    voxelize_seconds = time.perf_counter() - t0
    print(f"voxelised {train.shape[0]} train and {test.shape[0]} test shapes at {R}^3 in {voxelize_seconds:.1f} s, "
          f"mean occupancy {float(train.float().mean()):.3f}", flush=True)
    data = {"train": (train, train_labels), "test": (test, test_labels), "categories": categories}
    rows: List[Dict[str, object]] = []
    for key in wanted:
        t0 = time.perf_counter()
        if key in ("voxnet", "shapenets"):
            new = [classifier_row(key, cfg[key], data)]
        elif key in ("ae", "vae"):
            new = [autoencoder_row(key, cfg[key], train, test)]
        elif key == "ae64":
            spc, R64 = cfg["ae64"]["spc"], cfg["resolution64"]
            train64 = voxel_split(args.data_root, "train", spc, cfg["categories"], R64)[0]
            test64 = voxel_split(args.data_root, "test", spc, cfg["categories"], R64)[0]
            new = [autoencoder_row("ae", cfg["ae64"], train64, test64)]
            new[0]["row"] = "ae64"
        elif key == "gan":
            new = gan_rows(cfg["gan"], data)
        else:
            new = completion_rows(cfg["completion"], train, test)
        for row in new:
            row["wall seconds"] = round(time.perf_counter() - t0, 1)
            print({k: v for k, v in row.items() if k != "settings"}, flush=True)
        rows += new
    total = time.perf_counter() - start
    saved_path = args.out_dir / "voxel_models.json"
    if args.append and saved_path.is_file():
        fresh = {r["row"]: r for r in rows}
        saved = json.loads(saved_path.read_text())
        rows = [fresh.pop(r["row"], r) for r in saved["rows"]] + list(fresh.values())
        command = f"{saved['command']}; {command} --append"
    notes = "\n\n".join([
        f"Wall time {total / 60:.1f} min for the rows of the last command, voxelisation of the {R}^3 data "
        f"{voxelize_seconds:.0f} s. "
        f"{len(categories)} procedural categories, {cfg['spc']} shapes per category split 70/10/20 by index "
        f"({train.shape[0]} train, {test.shape[0]} test shapes), voxelised as solids (surface and inside) in "
        f"[-0.5, 0.5]^3; mean occupancy {float(train.float().mean()):.3f}. Every row trains from scratch on the CPU "
        "with one torch thread, seed 0. The networks are narrowed (width) and trained briefly to fit a CPU budget: "
        "these are short-run results of the models, not reproductions of the papers' numbers.",
        "Published figures for scale (ModelNet, not comparable to these rows): VoxNet ModelNet10 92.0% / "
        "ModelNet40 83.0%; 3D ShapeNets ModelNet10 83.5% / ModelNet40 77.0%.",
        "IoU is voxel IoU at threshold 0.5, averaged over shapes. GAN rows: the baseline column is the untrained "
        "generator; the note gives the same metric with as many real shapes in place of the samples (held-out test "
        "shapes, or training shapes for MMD-IoU, which is measured against the test shapes).",
    ])
    md = write_results("voxel_models", "Voxel models: short training runs from scratch (CPU)", rows, COLUMNS,
                       command, notes=notes)
    print()
    print(md.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
