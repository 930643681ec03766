"""Deep Marching Cubes benchmark: surface reconstruction from point clouds on procedural shapes.

    python benchmarks/bench_dmc.py [--quick] [--out-dir benchmarks/results] [--cells 16] [--epochs 30]

Shapes come from the procedural programs (``geo4g.data.procedural.generate_shape``, split by index:
0-6 train, 7 val, 8-9 test), each centred and scaled into ``[-0.4, 0.4]^3`` of the grid's cube
``[-0.5, 0.5]^3`` (the margin keeps the grid's outer shell free). Input and training targets are
``--points`` area-weighted surface samples; evaluation uses a fresh sampling of 4096 points.

Rows (all trained from scratch here, seed 0, one torch thread, the same encoder and grid):

- ``dmc``: :class:`geo4g.voxels.dmc.DeepMarchingCubes` trained with :func:`dmc_loss` (the paper's
  four losses and weights), meshes by marching cubes on the occupancy at 0.5 with the learned
  vertex displacements; ``dmc (most probable topology)``: the same model, each cell's most
  probable of the 140 topologies (the paper's inference);
- ``occupancy + marching cubes``: the baseline the paper compares with: the same encoder with an
  occupancy head trained with binary cross-entropy against the ground-truth occupancy of the grid
  points (winding-number inside test), meshed by marching cubes at 0.5 (linear interpolation);
- ``ground-truth occupancy + marching cubes``: the grid's own limit for occupancy-only methods;
- ``same shape, two samplings``: the evaluation's noise floor.

Metrics per test shape, averaged (Chamfer also as the median): Chamfer distance
(``geo4g.losses.chamfer_distance``: mean squared nearest-neighbour distance, summed over both
directions) between 4096 points sampled on the predicted mesh and the 4096 ground-truth samples,
and the F-score at 0.02 (2% of the cube's side; a cell is 1/N). An empty mesh is scored as the
single point at the cube's centre. ``--quick`` is a smoke run (2 categories, 8^3 cells, 2 epochs).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from harness import write_results  # noqa: E402

from geo4g.data.procedural import generate_shape, split_of  # noqa: E402
from geo4g.losses import chamfer_distance, f_score  # noqa: E402
from geo4g.meshes import sample_points_from_meshes, sample_surface  # noqa: E402
from geo4g.structures import Meshes  # noqa: E402
from geo4g.voxels.dmc import DeepMarchingCubes, DMCEncoder, dmc_loss  # noqa: E402
from geo4g.voxels.marching_cubes import marching_cubes  # noqa: E402
from geo4g.voxels.voxelize import voxelize_mesh  # noqa: E402

BBOX = (-0.5, 0.5)
HALF_EXTENT = 0.4
EVAL_POINTS = 4096
THRESHOLD = 0.02
COLUMNS = ["row", "method", "settings", "test Chamfer", "test Chamfer (median)", "test F-score@0.02", "empty meshes",
           "train seconds", "note"]
FULL = dict(categories=("chair", "table", "airplane", "mug"), spc=20, cells=16, points=1024, epochs=30,
            batch=8, width=0.5, lr=1e-2, band=1)
QUICK = dict(categories=("chair", "mug"), spc=10, cells=8, points=256, epochs=2, batch=4, width=0.25, lr=1e-2, band=1)


class OccupancyBaseline(nn.Module):
    """The DMC encoder with a plain occupancy head on the same ``(N+1)^3`` grid points (logits)."""

    def __init__(self, num_cells: int, width: float):
        super().__init__()
        self.encoder = DMCEncoder(num_cells, BBOX, width)
        self.head = nn.ConvTranspose3d(self.encoder.out_channels, 1, 2)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(points))[:, 0]


def load_shapes(categories, spc: int, cells: int, points: int, seed: int = 0) -> Dict[str, List[dict]]:
    """Normalised shapes with input samples, evaluation samples and grid-point occupancy, by split."""
    h = (BBOX[1] - BBOX[0]) / cells
    bounds = torch.tensor([[BBOX[0] - h / 2] * 3, [BBOX[1] + h / 2] * 3])  # voxel centres = grid points
    out: Dict[str, List[dict]] = {"train": [], "val": [], "test": []}
    for category in categories:
        for index in range(spc):
            item = generate_shape(category, index, seed)
            verts, faces = item["verts"].float(), item["faces"].long()
            lo, hi = verts.min(0).values, verts.max(0).values
            verts = (verts - (lo + hi) / 2) * (2 * HALF_EXTENT / float((hi - lo).max()))
            g_in = torch.Generator().manual_seed(1000 * index + 1)
            g_eval = torch.Generator().manual_seed(1000 * index + 2)
            occupancy = voxelize_mesh(Meshes([verts], [faces]), resolution=cells + 1, mode="inside",
                                      fill_rule="winding", bounds=bounds)[0].float()
            out[split_of(index)].append(dict(
                name=item["name"], verts=verts, faces=faces, occupancy=occupancy,
                points=sample_surface(verts, faces, points, g_in).points,
                eval=sample_surface(verts, faces, EVAL_POINTS, g_eval).points))
    return out


def batches(items: List[dict], batch: int, generator: torch.Generator):
    order = torch.randperm(len(items), generator=generator).tolist()
    for start in range(0, len(order), batch):
        chunk = [items[i] for i in order[start:start + batch]]
        if len(chunk) > 1:  # batch norm needs more than one shape
            yield chunk


def evaluate(meshes: List[Meshes], items: List[dict]) -> Dict[str, float]:
    """Mean and median Chamfer and mean F-score of each item's mesh against its evaluation samples
    (an empty mesh is scored as the cube's centre point, and counted)."""
    chamfers, fscores, empty = [], [], 0
    for mesh, item in zip(meshes, items):
        target = item["eval"][None]
        if mesh.isempty():
            empty += 1
            pred = torch.zeros(1, 1, 3)
        else:
            pred = sample_points_from_meshes(mesh, EVAL_POINTS, generator=torch.Generator().manual_seed(7))
        chamfers.append(chamfer_distance(pred, target)[0].item())
        fscores.append(f_score(pred, target, THRESHOLD).fscore.item())
    return {"test Chamfer": sum(chamfers) / len(chamfers), "test Chamfer (median)": statistics.median(chamfers),
            "test F-score@0.02": sum(fscores) / len(fscores), "empty meshes": empty}


def train_dmc(data, cfg, log) -> tuple:
    torch.manual_seed(0)
    model = DeepMarchingCubes(cfg["cells"], BBOX, width=cfg["width"])
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    steps = cfg["epochs"] * max(1, len(data["train"]) // cfg["batch"])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    g = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for epoch in range(cfg["epochs"]):
        total, count = 0.0, 0
        for chunk in batches(data["train"], cfg["batch"], g):
            pts = torch.stack([it["points"] for it in chunk])
            out = model(pts)
            loss = dmc_loss(out.occupancy, out.displacements, pts, bbox=BBOX, curvature_band=cfg["band"])
            opt.zero_grad()
            loss.total.backward()
            opt.step()
            sched.step()
            total, count = total + loss.total.item(), count + 1
        log(f"dmc epoch {epoch + 1}/{cfg['epochs']}: loss {total / max(count, 1):.4f} "
            f"({time.perf_counter() - start:.0f} s)")
    return model, time.perf_counter() - start


def train_baseline(data, cfg, log) -> tuple:
    torch.manual_seed(0)
    model = OccupancyBaseline(cfg["cells"], cfg["width"])
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    steps = cfg["epochs"] * max(1, len(data["train"]) // cfg["batch"])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    g = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for epoch in range(cfg["epochs"]):
        total, count = 0.0, 0
        for chunk in batches(data["train"], cfg["batch"], g):
            logits = model(torch.stack([it["points"] for it in chunk]))
            loss = F.binary_cross_entropy_with_logits(logits, torch.stack([it["occupancy"] for it in chunk]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total, count = total + loss.item(), count + 1
        log(f"occupancy epoch {epoch + 1}/{cfg['epochs']}: BCE {total / max(count, 1):.4f} "
            f"({time.perf_counter() - start:.0f} s)")
    return model, time.perf_counter() - start


def mc_mesh(occupancy: torch.Tensor, cells: int) -> Meshes:
    h = (BBOX[1] - BBOX[0]) / cells
    return marching_cubes(occupancy, level=0.5, spacing=(h, h, h), origin=(BBOX[0],) * 3)


def run(cfg: Dict[str, object], log=print) -> List[Dict[str, object]]:
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    data = load_shapes(cfg["categories"], cfg["spc"], cfg["cells"], cfg["points"])
    test = data["test"]
    log(f"{len(data['train'])} train / {len(test)} test shapes ready ({time.perf_counter() - t0:.0f} s)")
    cells = cfg["cells"]
    settings = (f"{cells}^3 cells, width {cfg['width']}, {cfg['points']} points, {cfg['epochs']} epochs, "
                f"batch {cfg['batch']}, Adam {cfg['lr']} (cosine)")
    dmc_settings = settings + f", curvature on cells within {cfg['band']} of a point"
    rows = []

    model, seconds = train_dmc(data, cfg, log)
    model.eval()
    with torch.no_grad():
        outputs = [model(it["points"][None]) for it in test]
    for mode, label in (("marching_cubes", "dmc"), ("most_probable", "dmc (most probable topology)")):
        meshes = [model.extract(out, mode=mode) for out in outputs]
        note = ("occupancy > 0.5 per grid point, vertices at the learned displacements" if mode == "marching_cubes"
                else "each cell's most probable of the 140 topologies (cells choose independently)")
        rows.append(dict(row=label, method="DeepMarchingCubes + dmc_loss", settings=dmc_settings,
                         **evaluate(meshes, test), **{"train seconds": round(seconds, 1)}, note=note))

    baseline, seconds = train_baseline(data, cfg, log)
    baseline.eval()
    with torch.no_grad():
        meshes = [mc_mesh(torch.sigmoid(baseline(it["points"][None]))[0], cells) for it in test]
    rows.append(dict(row="occupancy + marching cubes", method="DMCEncoder + occupancy head, BCE",
                     settings=settings, **evaluate(meshes, test), **{"train seconds": round(seconds, 1)},
                     note="marching cubes at 0.5 with linear interpolation of the predicted occupancy"))

    meshes = [mc_mesh(it["occupancy"], cells) for it in test]
    rows.append(dict(row="ground-truth occupancy + marching cubes", method="-", settings=f"{cells}^3 cells",
                     **evaluate(meshes, test), note="the limit of occupancy-only meshing at this grid"))

    floor = []
    for it in test:
        again = sample_surface(it["verts"], it["faces"], EVAL_POINTS, torch.Generator().manual_seed(99)).points
        floor.append(dict(cd=chamfer_distance(again[None], it["eval"][None])[0].item(),
                          f=f_score(again[None], it["eval"][None], THRESHOLD).fscore.item()))
    rows.append({"row": "same shape, two samplings", "method": "-", "settings": f"{EVAL_POINTS} samples",
                 "test Chamfer": sum(f["cd"] for f in floor) / len(floor),
                 "test Chamfer (median)": statistics.median(f["cd"] for f in floor),
                 "test F-score@0.02": sum(f["f"] for f in floor) / len(floor), "empty meshes": 0,
                 "note": "the evaluation's noise floor"})
    log(f"done in {time.perf_counter() - t0:.0f} s")
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (2 categories, 8^3 cells, 2 epochs)")
    parser.add_argument("--out-dir", type=Path, default=harness.RESULTS, help="where the results files go")
    parser.add_argument("--cells", type=int, help="cells per axis (default 16; quick 8)")
    parser.add_argument("--epochs", type=int, help="training epochs of both models (default 30; quick 2)")
    parser.add_argument("--spc", type=int, help="shapes per category (default 20; quick 10)")
    args = parser.parse_args(argv)
    cfg = dict(QUICK if args.quick else FULL)
    for key in ("cells", "epochs", "spc"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    start = time.perf_counter()
    rows = run(cfg)
    wall = time.perf_counter() - start
    command = "python benchmarks/bench_dmc.py" + (" --quick" if args.quick else "") + "".join(
        f" --{k} {getattr(args, k)}" for k in ("cells", "epochs", "spc") if getattr(args, k) is not None)
    notes = (
        f"Wall time {wall:.0f} s. Procedural categories {', '.join(cfg['categories'])}, {cfg['spc']} shapes each "
        f"(split by index: 70% train, 20% test), scaled into [-0.4, 0.4]^3 of the grid's cube [-0.5, 0.5]^3. "
        f"Chamfer = mean squared nearest-neighbour distance summed over both directions between {EVAL_POINTS} "
        f"points sampled on the predicted mesh and {EVAL_POINTS} ground-truth surface samples (lower is "
        f"better); F-score at distance {THRESHOLD} (a cell is {1 / cfg['cells']:.3g}). Both learned rows use the "
        f"same encoder (per-cell PointNet features + 3-D U-Net) and the same training budget; short CPU runs, "
        f"not the paper's setting (ShapeNet, 32^3 cells, hundreds of epochs on a GPU), so the numbers compare "
        f"the methods here, not with the paper's tables (where DMC has lower Chamfer distances than occupancy "
        f"or TSDF grids meshed by marching cubes at the same resolution).")
    harness.RESULTS = args.out_dir
    print(write_results("dmc", "Deep Marching Cubes: reconstruction from points (CPU)", rows, COLUMNS, command,
                        notes).read_text())


if __name__ == "__main__":
    main()
