"""AtlasNet (K = 1, 5, 25 square patches, one sphere) against the point-set decoder: short CPU training runs.

    python benchmarks/bench_atlasnet.py [--quick] [--epochs N] [--decoder-norm batch|none] [--no-image]
                                        [--out-dir benchmarks/results]

Every model is trained from scratch (seed 0, one torch thread, Adam, the Chamfer loss of
``geo4g.losses.chamfer_distance``) on the same procedural shapes (``geo4g.data.ProceduralShapes``:
bounding-box centred, diagonal 1), with the same point encoder (``PointSetEncoder``), code size,
output point count, batch size and number of epochs. AtlasNet's patch MLPs run without batch norm by
default, like the point-set decoder's MLP (``--decoder-norm batch`` gives the published layers): in
runs this short, batch norm slowed AtlasNet's training and its running statistics lagged the weights.
On the held-out test shapes it reports the Chamfer distance and F-scores (``geo4g.losses.f_score`` at
1% and 2% of the bounding-box diagonal) against fresh ground-truth surface samples of each test mesh:

- AtlasNet's meshes (``AtlasNet.mesh``: a regular grid of each square patch, an icosphere for the
  sphere), through points sampled uniformly on their surfaces (``sample_points_from_meshes``);
- AtlasNet's training-time output (random template points) and the point-set decoder's points
  (``geo4g.points.decoders.PointAutoEncoder``), with the same number of points.

Two reference rows frame the numbers: a second, independent sampling of each ground-truth surface
(the floor a perfect reconstruction reaches) and a different test shape. Unless ``--no-image``,
AtlasNet and the point-set decoder are also trained from one orthographic depth image per shape
(dense surface samples splatted into a z-buffer) with ``ImageEncoder``.

``--quick`` is a smoke run (2 categories, 10 shapes each, 256 points, narrow networks, 1 epoch).
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from harness import write_results  # noqa: E402

from geo4g.data import ProceduralShapes  # noqa: E402
from geo4g.losses import chamfer_distance, f_score  # noqa: E402
from geo4g.meshes import sample_points_from_meshes, sample_surface  # noqa: E402
from geo4g.meshes.atlasnet import AtlasNet, ImageEncoder  # noqa: E402
from geo4g.points.decoders import PointAutoEncoder, PointSetDecoder, PointSetEncoder  # noqa: E402

FULL = dict(categories=("chair", "table", "airplane", "lamp", "mug"), spc=40, points=512, latent=128,
            encoder_channels=(64, 128), hidden=(256, 128, 64), pointset_hidden=(256, 512, 1024), epochs=40,
            batch=16, lr=1e-3, gt_points=2500, mesh_points=2500, image_size=48, image_width=16, image_patches=25)
QUICK = dict(categories=("chair", "table"), spc=10, points=256, latent=32, encoder_channels=(32, 64),
             hidden=(32, 32), pointset_hidden=(64, 128), epochs=1, batch=8, lr=1e-3, gt_points=512,
             mesh_points=512, image_size=32, image_width=8, image_patches=5)
THRESHOLDS = (0.01, 0.02)
COLUMNS = ["model", "input", "output scored", "points scored", "parameters", "train seconds", "final train loss",
           "test Chamfer", "F@1%", "F@2%"]
VIEW_YAW, VIEW_PITCH = math.radians(35), math.radians(25)


def load_split(root: Path, cfg: Dict[str, object], split: str, seed: int = 1):
    """``(input points (S, N, 3), ground truth (S, G, 3), second ground-truth sampling (S, G, 3),
    dense samples for rendering (S, 8 G, 3))`` of one split."""
    common = dict(categories=list(cfg["categories"]), shapes_per_category=int(cfg["spc"]), progress=False,
                  workers=1)
    points = ProceduralShapes(root, split=split, representation="points", num_points=int(cfg["points"]), **common)
    meshes = ProceduralShapes(root, split=split, representation="mesh", **common)
    generator = torch.Generator().manual_seed(seed)
    G = int(cfg["gt_points"])
    inputs, truth, second, dense = [], [], [], []
    for i in range(len(points)):
        inputs.append(points[i]["points"])
        item = meshes[i]
        truth.append(sample_surface(item["verts"], item["faces"], G, generator).points)
        second.append(sample_surface(item["verts"], item["faces"], G, generator).points)
        dense.append(sample_surface(item["verts"], item["faces"], 8 * G, generator).points)
    return torch.stack(inputs), torch.stack(truth), torch.stack(second), torch.stack(dense)


def _view_rotation() -> torch.Tensor:
    cy, sy, cp, sp = math.cos(VIEW_YAW), math.sin(VIEW_YAW), math.cos(VIEW_PITCH), math.sin(VIEW_PITCH)
    yaw = torch.tensor([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
    pitch = torch.tensor([[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]])
    return pitch @ yaw


def depth_images(dense: torch.Tensor, size: int) -> torch.Tensor:
    """``(S, 1, size, size)`` orthographic depth images of ``dense (S, M, 3)`` surface samples.

    The shapes are turned by a fixed yaw and pitch, then looked at along ``-z``: each sample lands in
    the pixel under its ``(x, y)`` (the square ``[-0.5, 0.5]^2``, which holds any shape of bounding-box
    diagonal 1 centred at 0), and a z-buffer keeps the nearest one. Foreground pixels hold
    ``z + 0.55`` (in ``(0.05, 1.05)``, larger is nearer), the background 0.
    """
    S = dense.shape[0]
    turned = dense @ _view_rotation().T
    pixel = ((turned[..., :2] + 0.5) * size).floor().long().clamp(0, size - 1)
    flat = (size - 1 - pixel[..., 1]) * size + pixel[..., 0]  # image rows go down, y goes up
    depth = torch.full((S, size * size), -math.inf)
    depth = depth.scatter_reduce(1, flat, turned[..., 2] + 0.55, reduce="amax")
    return torch.where(torch.isfinite(depth), depth, torch.zeros(())).view(S, 1, size, size)


def point_encoder(cfg) -> PointSetEncoder:
    return PointSetEncoder(int(cfg["latent"]), channels=tuple(cfg["encoder_channels"]))


def image_encoder(cfg) -> ImageEncoder:
    return ImageEncoder(1, int(cfg["latent"]), width=int(cfg["image_width"]), num_stages=4)


def atlasnet(cfg, num_patches: int, template: str, encoder) -> AtlasNet:
    return AtlasNet(int(cfg["latent"]), num_patches, encoder=encoder, template=template,
                    hidden=tuple(cfg["hidden"]), norm=cfg["decoder_norm"], num_points=int(cfg["points"]))


def pointset(cfg, encoder) -> PointAutoEncoder:
    return PointAutoEncoder(int(cfg["points"]), int(cfg["latent"]), encoder=encoder,
                            hidden=tuple(cfg["pointset_hidden"]))


def image_pointset(cfg) -> torch.nn.Module:
    """The point-set decoder behind the image encoder (``PointAutoEncoder`` encodes point clouds only)."""
    return torch.nn.Sequential(image_encoder(cfg), PointSetDecoder(int(cfg["latent"]), int(cfg["points"]),
                                                                   tuple(cfg["pointset_hidden"])))


def fit(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor, cfg) -> Dict[str, object]:
    """Train ``model(inputs) -> points`` against ``targets`` with the Chamfer loss; seconds and losses."""
    order = torch.Generator().manual_seed(0)
    templates = torch.Generator().manual_seed(1)
    optimizer = torch.optim.Adam(model.parameters(), lr=float(cfg["lr"]))
    batch = int(cfg["batch"])
    history = []
    start = time.perf_counter()
    for _ in range(int(cfg["epochs"])):
        model.train()
        losses = []
        for index in torch.randperm(inputs.shape[0], generator=order).split(batch):
            if index.numel() < 2:  # batch norm needs two shapes
                continue
            optimizer.zero_grad()
            out = model(inputs[index], generator=templates) if isinstance(model, AtlasNet) else model(inputs[index])
            loss = chamfer_distance(out, targets[index])[0]
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        history.append(sum(losses) / max(len(losses), 1))
    return {"seconds": time.perf_counter() - start, "history": history}


def scores(predicted: torch.Tensor, truth: torch.Tensor) -> Dict[str, float]:
    chamfer = chamfer_distance(predicted, truth, batch_reduction=None)[0]
    out = {"test Chamfer": float(chamfer.mean())}
    for t, name in zip(THRESHOLDS, ("F@1%", "F@2%")):
        out[name] = float(f_score(predicted, truth, t).fscore.mean())
    return out


def evaluate(model: torch.nn.Module, inputs: torch.Tensor, truth: torch.Tensor,
             cfg) -> Dict[str, Dict[str, float]]:
    """Test scores per output kind: ``"mesh"`` and ``"points"`` for AtlasNet, ``"points"`` otherwise."""
    model.eval()
    generator = torch.Generator().manual_seed(2)
    outputs: Dict[str, List[torch.Tensor]] = {"points": [], "mesh": []}
    with torch.no_grad():
        for chunk in torch.arange(inputs.shape[0]).split(32):
            x = inputs[chunk]
            if isinstance(model, AtlasNet):
                outputs["points"].append(model(x, generator=generator))
                meshes = model.mesh(x, num_points=int(cfg["mesh_points"])).meshes
                outputs["mesh"].append(sample_points_from_meshes(meshes, int(cfg["gt_points"]), generator=generator))
            else:
                outputs["points"].append(model(x))
        return {kind: scores(torch.cat(out), truth) for kind, out in outputs.items() if out}


def model_rows(name: str, input_kind: str, make: Callable[[], torch.nn.Module], train_inputs, train_targets,
               test_inputs, truth, cfg) -> List[Dict[str, object]]:
    torch.manual_seed(0)  # the same initial weights whatever ran before
    model = make()
    run = fit(model, train_inputs, train_targets, cfg)
    rows = []
    for kind, values in evaluate(model, test_inputs, truth, cfg).items():
        scored = "mesh surface samples" if kind == "mesh" else "decoded points"
        count = int(cfg["gt_points"]) if kind == "mesh" else int(cfg["points"])
        rows.append({"model": name, "input": input_kind, "output scored": scored, "points scored": count,
                     "parameters": sum(p.numel() for p in model.parameters()),
                     "train seconds": round(run["seconds"], 1), "final train loss": run["history"][-1], **values,
                     "train_loss_per_epoch": [round(h, 6) for h in run["history"]]})
        print({k: v for k, v in rows[-1].items() if k != "train_loss_per_epoch"}, flush=True)
    return rows


def reference_rows(truth: torch.Tensor, second: torch.Tensor, cfg) -> List[Dict[str, object]]:
    rows = []
    for count in sorted({int(cfg["points"]), int(cfg["gt_points"])}):
        rows.append({"model": "reference: same surface, second sampling", "input": "-",
                     "output scored": "ground-truth samples", "points scored": count,
                     **scores(second[:, :count], truth)})
    other = torch.roll(torch.arange(truth.shape[0]), truth.shape[0] // 2)
    rows.append({"model": "reference: a different test shape", "input": "-", "output scored": "ground-truth samples",
                 "points scored": int(cfg["gt_points"]), **scores(second[other], truth)})
    return rows


def reading(rows: List[Dict[str, object]]) -> str:
    """One line comparing the point-input models' test Chamfer (meshes for AtlasNet) with the floor."""
    floor = min(r["test Chamfer"] for r in rows if r["model"].startswith("reference: same surface"))
    wanted = {"point-set decoder": "decoded points"}
    scored = [r for r in rows if r["input"] == "points"
              and r["output scored"] == wanted.get(str(r["model"]), "mesh surface samples")]
    parts = [f"{r['model']} {r['test Chamfer']:.3g} ({r['test Chamfer'] / floor:.0f}x)" for r in scored]
    return ("Test Chamfer from point input (AtlasNet: its meshes), and as a multiple of the smallest sampling floor "
            f"above ({floor:.3g}): " + "; ".join(parts) + ".")


def progress(rows: List[Dict[str, object]], last: int = 5) -> str:
    """One line: how much each model's training loss still fell over its last ``last`` epochs."""
    parts, seen = [], set()
    for r in rows:
        history = r.get("train_loss_per_epoch")
        if not history or len(history) <= last or (r["model"], r["input"]) in seen:
            continue
        seen.add((r["model"], r["input"]))
        drop = 1 - history[-1] / history[-1 - last]
        parts.append(f"{r['model']} ({r['input']}) {100 * drop:.0f}%")
    if not parts:
        return f"Too few epochs to show the training loss's fall over the last {last}."
    return (f"Fall of the training loss over the last {last} epochs (larger: further from converged): "
            + "; ".join(parts) + ".")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (2 categories, 10 shapes each, 1 epoch)")
    parser.add_argument("--epochs", type=int, default=None, help="override the epochs of every run")
    parser.add_argument("--decoder-norm", choices=("none", "batch"), default="none",
                        help="normalisation in AtlasNet's patch MLPs (default none; the paper uses batch)")
    parser.add_argument("--no-image", action="store_true", help="skip the depth-image runs")
    parser.add_argument("--out-dir", type=Path, default=harness.RESULTS, help="where the results files go")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    harness.RESULTS = args.out_dir
    cfg = dict(QUICK if args.quick else FULL)
    if args.epochs is not None:
        cfg["epochs"] = args.epochs
    cfg["decoder_norm"] = None if args.decoder_norm == "none" else "batch"
    command = "python benchmarks/bench_atlasnet.py" + (" --quick" if args.quick else "") + \
        (f" --epochs {args.epochs}" if args.epochs is not None else "") + \
        (" --decoder-norm batch" if args.decoder_norm == "batch" else "") + (" --no-image" if args.no_image else "")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="geo4g-bench-atlasnet-") as tmp:
        train_inputs, train_truth, _, train_dense = load_split(Path(tmp), cfg, "train")
        test_inputs, truth, second, test_dense = load_split(Path(tmp), cfg, "test")
    print(f"{train_inputs.shape[0]} train / {test_inputs.shape[0]} test shapes", flush=True)

    rows = reference_rows(truth, second, cfg)
    specs = [(f"AtlasNet, {k} square patch{'es' if k > 1 else ''}", k, "square") for k in (1, 5, 25)]
    specs.append(("AtlasNet, 1 sphere", 1, "sphere"))
    for name, k, template in specs:
        rows += model_rows(name, "points", lambda: atlasnet(cfg, k, template, point_encoder(cfg)),
                           train_inputs, train_inputs, test_inputs, truth, cfg)
    rows += model_rows("point-set decoder", "points", lambda: pointset(cfg, point_encoder(cfg)),
                       train_inputs, train_inputs, test_inputs, truth, cfg)
    if not args.no_image:
        size, k = int(cfg["image_size"]), int(cfg["image_patches"])
        train_images, test_images = depth_images(train_dense, size), depth_images(test_dense, size)
        image_input = f"depth image {size}x{size}"
        rows += model_rows(f"AtlasNet, {k} square patches", image_input,
                           lambda: atlasnet(cfg, k, "square", image_encoder(cfg)),
                           train_images, train_inputs, test_images, truth, cfg)
        rows += model_rows("point-set decoder", image_input,
                           lambda: image_pointset(cfg), train_images, train_inputs, test_images, truth, cfg)
    total = time.perf_counter() - start

    notes = [
        f"Data: ProceduralShapes, categories {', '.join(cfg['categories'])}, {cfg['spc']} shapes each "
        f"({train_inputs.shape[0]} train / {test_inputs.shape[0]} test shapes by the dataset's split), bounding-box "
        f"diagonal 1. Inputs: the dataset's {cfg['points']} surface samples per shape (training targets too). "
        f"Ground truth for the test scores: {cfg['gt_points']} fresh surface samples per test mesh.",
        f"Training: {cfg['epochs']} epochs, batch {cfg['batch']}, Adam lr {cfg['lr']}, seed 0, one torch thread, "
        f"Chamfer loss (mean squared nearest-neighbour distance, both ways, summed; geo4g.losses.chamfer_distance) "
        f"on {cfg['points']} output points. Encoder for point input: PointSetEncoder, shared layers "
        f"{list(cfg['encoder_channels'])} -> code {cfg['latent']}. AtlasNet decoder: per patch an MLP "
        f"{list(cfg['hidden'])} with {'batch norm and ' if cfg['decoder_norm'] else ''}ReLU, tanh output (each "
        f"patch its own weights). Point-set decoder: MLP {list(cfg['pointset_hidden'])} -> {cfg['points']} x 3, "
        f"ReLU, no normalisation. Both decoders see the same code from the same encoder (which has batch norm).",
        f"Scores on the test shapes: 'test Chamfer' is the same squared Chamfer distance against the ground truth "
        f"(mean over shapes; lower is better); F@1% / F@2% are F-scores at distance 0.01 / 0.02 (1% / 2% of the "
        f"bounding-box diagonal; higher is better). AtlasNet meshes: the patches' template grids mapped "
        f"(about {cfg['mesh_points']} vertices in all, K patches not stitched), scored through "
        f"{cfg['gt_points']} points sampled uniformly on their surface; 'decoded points' are the {cfg['points']} "
        f"points of the training-time output (random template points) or the point-set decoder's points. "
        f"Scores of different point counts differ by their sampling floor: compare each with the reference row "
        f"of the same count.",
        "The runs are short and the networks narrow to fit a shared CPU; the numbers compare the decoders under one "
        "budget and are not the paper's settings (AtlasNet: 2500 points, code 1024, widths about (1024, 512, 256), "
        "ShapeNet, far more epochs on a GPU). The per-epoch training losses are in the JSON file. "
        "Batch norm in the patch MLPs (the paper's layers, --decoder-norm batch) was measured on these data at 20 "
        "epochs with Adam lr 1e-3: test Chamfer of the decoded points 0.0105 with it against 0.0064 without (25 "
        "patches), 0.0202 against 0.0113 (sphere), 0.0368 against 0.0381 (1 patch); a higher rate (3e-3 with "
        "warm-up and cosine decay) or a cosine decay of 1e-3 did no better than a constant 1e-3.",
        progress(rows),
    ]
    if args.no_image:
        notes.append("Depth-image runs skipped (--no-image).")
    else:
        notes.append(
            f"Image rows: one {cfg['image_size']}x{cfg['image_size']} orthographic depth image per shape (yaw "
            f"{math.degrees(VIEW_YAW):.0f} deg, pitch {math.degrees(VIEW_PITCH):.0f} deg; {8 * int(cfg['gt_points'])} "
            f"surface samples splatted into a z-buffer), encoded by ImageEncoder (stem width {cfg['image_width']}, "
            f"4 stride-2 residual stages, code {cfg['latent']}); same decoders, targets and budget.")
    notes.append(reading(rows))
    notes.append(f"Wall time {total / 60:.1f} min (data, training and scoring).")
    md = write_results("atlasnet", "AtlasNet against the point-set decoder: short CPU training runs", rows, COLUMNS,
                       command, notes="\n\n".join(notes))
    print()
    print(md.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
