"""Data pipeline speed: procedural shapes, surface sampling, the point cache and loaders.

    python benchmarks/bench_data.py [--shapes 1000] [--points 2048] [--quick] [--out-dir benchmarks/results]

Writes ``data.md``/``data.json`` (speed) and ``procedural_bbox.md``/``procedural_bbox.json``
(how well bounding-box sizes alone classify the procedural categories: a baseline that
must stay at or below 70% test accuracy, else the categories differ by size only).
Everything runs in temporary folders that are removed at the end. Single-process rows
use one torch thread (``torch.set_num_threads(1)``); parallel rows use 2 processes.
Surface-sampling ratios are ``peer time / geo4g time`` (above 1: geo4g is faster) on the
same procedural meshes. ``--quick`` is a small smoke run (48 shapes, 256 points).
"""
from __future__ import annotations

import argparse
import importlib.util
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from harness import time_call, write_results  # noqa: E402

from geo4g.data import GeometryCollate, ProceduralShapes, item_generator, split_of  # noqa: E402
from geo4g.data.cache import CachedDataset  # noqa: E402
from geo4g.meshes import sample_points_from_meshes, sample_surface  # noqa: E402
from geo4g.parametric.programs import CATEGORIES, get_program  # noqa: E402
from geo4g.structures import Meshes  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
COLUMNS = ["benchmark", "value", "unit", "trimesh / geo4g", "open3d / geo4g", "note"]
BBOX_COLUMNS = ["classifier", "train", "val", "test", "note"]
SAMPLE_MESHES_PER_CATEGORY = 10
GOAL_SECONDS = 60.0
BBOX_LIMIT = 0.70


def sampling_peers() -> Dict[str, object]:
    """Surface samplers of the installed peers: ``(prepare(verts, faces), sample(prepared, n))``."""
    found = {}
    try:
        import trimesh

        found["trimesh"] = (lambda v, f: trimesh.Trimesh(v.numpy(), f.numpy(), process=False),
                            lambda mesh, n: trimesh.sample.sample_surface(mesh, n))
    except ImportError:
        pass
    try:
        import open3d as o3d

        def prepare(v, f):
            return o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(v.double().numpy()),
                                             o3d.utility.Vector3iVector(f.int().numpy()))

        found["open3d"] = (prepare, lambda mesh, n: mesh.sample_points_uniformly(number_of_points=n))
    except ImportError:
        pass
    return found


def bench_generation(per_category: int, repeat: int) -> Tuple[List[dict], Dict[str, list]]:
    """``program.sample`` in this process: per-category ms/shape and overall shapes/s."""
    rows, meshes, total = [], {}, 0.0
    for category in CATEGORIES:
        program = get_program(category)
        def run():
            return [program.sample(item_generator(0, f"{category}/{i:05d}")) for i in range(per_category)]

        seconds = time_call(run, repeat=repeat)["median"]
        samples = run()
        meshes[category] = [(s.verts, s.faces) for s in samples[:SAMPLE_MESHES_PER_CATEGORY]]
        faces = sum(s.faces.shape[0] for s in samples) / len(samples)
        total += seconds
        rows.append({"benchmark": f"generation: {category}", "value": 1000 * seconds / per_category,
                     "unit": "ms/shape", "note": f"{faces:.0f} faces on average"})
    count = per_category * len(CATEGORIES)
    head = {"benchmark": "shape generation (program.sample, all categories)", "value": count / total,
            "unit": "shapes/s", "note": f"{count} shapes, 1 process, 1 torch thread"}
    return [head] + rows, meshes


def bench_sampling(meshes: Dict[str, list], points: int, repeat: int) -> List[dict]:
    """``sample_surface`` one mesh at a time against the peers' samplers, on the same meshes."""
    flat = [m for ms in meshes.values() for m in ms]
    ours = time_call(lambda: [sample_surface(v, f, points, None) for v, f in flat], repeat=repeat)["median"]
    rate = len(flat) * points / ours
    row = {"benchmark": f"surface sampling (sample_surface, {points} points/shape)", "value": rate,
           "unit": "points/s", "note": f"{len(flat)} procedural meshes one at a time, points + normals + "
                                       f"face index; {1e6 * ours / len(flat):.0f} us/shape"}
    rows = [row]
    for peer, (prepare, sample) in sampling_peers().items():
        prepared = [prepare(v, f) for v, f in flat]
        theirs = time_call(lambda: [sample(m, points) for m in prepared], repeat=repeat)["median"]
        row[f"{peer} / geo4g"] = theirs / ours
        what = "points + face index" if peer == "trimesh" else "points only (no normals without vertex normals)"
        rows.append({"benchmark": f"surface sampling ({peer})", "value": len(flat) * points / theirs,
                     "unit": "points/s", "note": f"{what}; {1e6 * theirs / len(flat):.0f} us/shape"})
    batch = Meshes([v for v, _ in flat], [f for _, f in flat])
    batched = time_call(lambda: sample_points_from_meshes(batch, points, return_normals=True), repeat=repeat)["median"]
    rows.append({"benchmark": "surface sampling (sample_points_from_meshes, batched)",
                 "value": len(flat) * points / batched, "unit": "points/s",
                 "note": f"the same {len(flat)} meshes as one Meshes batch, with normals"})
    return rows


def iterate(dataset) -> int:
    count = 0
    for i in range(len(dataset)):
        dataset[i]
        count += 1
    return count


def bench_end_to_end(root: Path, shapes: int, points: int, default_threads: int) -> Tuple[List[dict], int]:
    """``ProceduralShapes`` from an empty cache (generation in 2 processes), then every item sampled;
    the warm pass again with torch's default thread count, as a script that does not set it runs."""
    per_category = math.ceil(shapes / len(CATEGORIES))
    rows = []
    for label in ("cold cache", "warm cache"):
        t0 = time.perf_counter()
        dataset = ProceduralShapes(root, split="all", shapes_per_category=per_category, representation="points",
                                   num_points=points, workers=2, progress=False)
        t1 = time.perf_counter()
        count = iterate(dataset)
        t2 = time.perf_counter()
        total = t2 - t0
        note = f"{count} shapes x {points} points; construction {t1 - t0:.2f} s, sampling all items {t2 - t1:.2f} s"
        if label == "cold cache":
            note += f"; goal < {GOAL_SECONDS:.0f} s: {'met' if total < GOAL_SECONDS else 'MISSED'}"
        rows += [
            {"benchmark": f"end-to-end {count} shapes, {label}: total", "value": total, "unit": "s", "note": note},
            {"benchmark": f"end-to-end {label}: generation (construction)", "value": t1 - t0, "unit": "s",
             "note": "2 worker processes" if label == "cold cache" else "cache reused: nothing generated"},
            {"benchmark": f"end-to-end {label}: sampling (iterating all items)", "value": t2 - t1, "unit": "s",
             "note": f"{count / (t2 - t1):.0f} items/s, 1 process"},
        ]
    if default_threads > 1:
        torch.set_num_threads(default_threads)
        try:
            t0 = time.perf_counter()
            iterate(dataset)
            seconds = time.perf_counter() - t0
        finally:
            torch.set_num_threads(1)
        rows.append({"benchmark": f"end-to-end warm cache: sampling with {default_threads} torch threads",
                     "value": seconds, "unit": "s",
                     "note": f"{count / seconds:.0f} items/s; torch's default thread count on this machine"})
    return rows, per_category


def cli_command() -> List[str]:
    """``python -m geo4g.cli`` when that module runs as a program, else the ``geo4g`` script beside Python."""
    spec = importlib.util.find_spec("geo4g.cli")
    if spec is not None and spec.origin and 'if __name__ == "__main__":' in Path(spec.origin).read_text():
        return [sys.executable, "-m", "geo4g.cli"]
    return [str(Path(sys.executable).with_name("geo4g"))]


def bench_cache_build(gen_root: Path, out: Path, per_category: int, points: int, quick: bool = False) -> List[dict]:
    """``geo4g cache build`` over every split of an already generated procedural cache, then resumed;
    unless ``quick``, also with ``OMP_NUM_THREADS=1`` and the bare start-up time."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    env.pop("OMP_NUM_THREADS", None)
    cli = cli_command()

    def build(folder: Path, run_env: Dict[str, str]) -> float:
        command = cli + ["cache", "build", "--dataset", "procedural", "--root", str(gen_root), "--out", str(folder),
                         "--points", str(points), "--workers", "2", "--shapes-per-category", str(per_category),
                         "--quiet"]
        t0 = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=run_env, cwd=REPO)
        seconds = time.perf_counter() - t0
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
        return seconds

    # As a user runs it (default torch threads), again on the complete cache (resumed), then from
    # scratch into another folder with one OpenMP thread per process.
    first, resumed = build(out, env), build(out, env)
    items = sum(len(CachedDataset(out / split)) for split in ("train", "val", "test"))
    rows = [
        {"benchmark": f"cache build ({items} shapes, all splits)", "value": first, "unit": "s",
         "note": f"{items / first:.0f} items/s; `geo4g cache build --points {points} --workers 2` as a "
                 "subprocess on a generated cache, default torch threads, start-up included"},
        {"benchmark": "cache build resumed (complete cache)", "value": resumed, "unit": "s",
         "note": "rerun of the same command: every chunk reused"},
    ]
    if quick:
        return rows
    single = build(out.with_name(out.name + "-omp1"), {**env, "OMP_NUM_THREADS": "1"})
    startup = []
    for _ in range(2):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import geo4g.data.cache, geo4g.data.procedural"], check=True, env=env)
        startup.append(time.perf_counter() - t0)
    return rows + [
        {"benchmark": "cache build with OMP_NUM_THREADS=1", "value": single, "unit": "s",
         "note": f"{items / single:.0f} items/s; the first row's command from scratch, one OpenMP thread per process"},
        {"benchmark": "start-up (python -c 'import geo4g.data')", "value": min(startup), "unit": "s",
         "note": "the part of the rows above that is interpreter and imports (best of 2)"},
    ]


def bench_loaders(gen_root: Path, cache: Path, per_category: int, points: int) -> List[dict]:
    """``DataLoader`` passes over on-the-fly sampling and over the built cache (train split)."""
    datasets = {
        "ProceduralShapes points (sampled on the fly)": ProceduralShapes(
            gen_root, split="train", shapes_per_category=per_category, representation="points", num_points=points,
            workers=2, progress=False),
        "CachedDataset (built cache)": CachedDataset(cache / "train"),
    }
    rows = []
    for name, dataset in datasets.items():
        for workers in (0, 2):
            loader = DataLoader(dataset, batch_size=32, num_workers=workers, collate_fn=GeometryCollate("padded"),
                                persistent_workers=workers > 0)
            for _ in loader:  # warm-up pass (and worker start-up)
                pass
            t0 = time.perf_counter()
            seen = sum(batch["points"].shape[0] for batch in loader)
            seconds = time.perf_counter() - t0
            rows.append({"benchmark": f"loader: {name}, num_workers={workers}", "value": seen / seconds,
                         "unit": "samples/s", "note": f"{seen} items, batch 32, padded collate, "
                                                      "one full pass after a warm-up pass"})
            del loader
    return rows


# ---------------------------------------------------------------------------------------------
# The bounding-box baseline


def bbox_features(root: Path, per_category: int) -> Dict[str, Tuple[torch.Tensor, torch.Tensor]]:
    """Bounding-box extents ``(dx, dy, dz)`` of the (normalised) shapes and their labels, per split."""
    dataset = ProceduralShapes(root, split="all", shapes_per_category=per_category, representation="mesh",
                               workers=2, progress=False)
    features, labels, splits = [], [], []
    for i in range(len(dataset)):
        item = dataset[i]
        verts = item["verts"]
        features.append(verts.amax(0) - verts.amin(0))
        labels.append(int(item["label"]))
        splits.append(split_of(int(item["name"].rsplit("/", 1)[1])))
    x, y = torch.stack(features).double(), torch.tensor(labels)
    return {s: (x[[k == s for k in splits]], y[[k == s for k in splits]]) for s in ("train", "val", "test")}


def knn_predict(train_x, train_y, query_x, k: int, num_classes: int, leave_one_out: bool = False) -> torch.Tensor:
    dist = torch.cdist(query_x, train_x)
    if leave_one_out:
        dist.fill_diagonal_(float("inf"))
    index = dist.topk(k, largest=False).indices
    votes = torch.zeros(query_x.shape[0], num_classes, dtype=torch.float64)
    # Ties go to the class of the nearest neighbour: add a small bonus decreasing with rank.
    weights = 1.0 + 1e-3 * torch.linspace(1, 0, k, dtype=torch.float64)
    votes.scatter_add_(1, train_y[index], weights.expand(index.shape[0], k).contiguous())
    return votes.argmax(1)


def accuracy(pred: torch.Tensor, y: torch.Tensor) -> float:
    return float((pred == y).double().mean())


def bench_bbox(root: Path, per_category: int, steps: int = 300) -> Tuple[List[dict], float]:
    data = bbox_features(root, per_category)
    num_classes = len(CATEGORIES)
    mean, std = data["train"][0].mean(0), data["train"][0].std(0).clamp_min(1e-12)
    std_data = {s: ((x - mean) / std, y) for s, (x, y) in data.items()}
    (tx, ty), (vx, vy), (sx, sy) = std_data["train"], std_data["val"], std_data["test"]
    rows, predictions = [], {}
    ks = [k for k in (1, 5, 15, 31) if k <= tx.shape[0] - 1]
    val_scores = {k: accuracy(knn_predict(tx, ty, vx, k, num_classes), vy) for k in ks}
    best_k = max(ks, key=lambda k: (val_scores[k], -k))
    for k in ks:
        test_pred = knn_predict(tx, ty, sx, k, num_classes)
        rows.append({"classifier": f"k-NN k={k}" + (" (picked on val)" if k == best_k else ""),
                     "train": accuracy(knn_predict(tx, ty, tx, k, num_classes, leave_one_out=True), ty),
                     "val": val_scores[k], "test": accuracy(test_pred, sy),
                     "note": "train: leave-one-out"})
        predictions[f"k-NN k={k}"] = test_pred

    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(3, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.ReLU(),
                              torch.nn.Linear(64, num_classes)).double()
    optimizer = torch.optim.Adam(mlp.parameters(), lr=1e-2)
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(mlp(tx), ty).backward()
        optimizer.step()
    with torch.no_grad():
        mlp_pred = {s: mlp(x).argmax(1) for s, (x, _) in std_data.items()}
    rows.append({"classifier": "MLP 3-64-64-12", "train": accuracy(mlp_pred["train"], ty),
                 "val": accuracy(mlp_pred["val"], vy), "test": accuracy(mlp_pred["test"], sy),
                 "note": f"Adam lr 1e-2, {steps} full-batch steps"})
    predictions["MLP 3-64-64-12"] = mlp_pred["test"]
    chance = 1 / num_classes
    rows.append({"classifier": "chance (1/12)", "train": chance, "val": chance, "test": chance, "note": ""})

    best_name = max(predictions, key=lambda n: accuracy(predictions[n], sy))
    best = accuracy(predictions[best_name], sy)
    for c, category in enumerate(CATEGORIES):
        mask = sy == c
        rows.append({"classifier": f"recall: {category}", "test": accuracy(predictions[best_name][mask], sy[mask]),
                     "note": f"{best_name}, {int(mask.sum())} test shapes"})
    sizes = {s: int(y.shape[0]) for s, (_, y) in data.items()}
    rows.insert(0, {"classifier": f"best test accuracy: {best_name}", "test": best,
                    "note": f"limit {BBOX_LIMIT:.0%}: {'met' if best <= BBOX_LIMIT else 'EXCEEDED'}; "
                            f"{sizes['train']}/{sizes['val']}/{sizes['test']} train/val/test shapes"})
    return rows, best


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", type=int, default=1000, help="shapes of the end-to-end and cache rows")
    parser.add_argument("--points", type=int, default=2048, help="points per shape")
    parser.add_argument("--bbox-shapes-per-category", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a small smoke run (48 shapes, 256 points)")
    parser.add_argument("--out-dir", type=Path, default=harness.RESULTS, help="where the results files go")
    args = parser.parse_args(argv)
    if args.quick:
        args.shapes, args.points, args.bbox_shapes_per_category, args.repeat = 48, 256, 20, 1
    harness.RESULTS = args.out_dir  # write_results writes there
    default_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    per_category = math.ceil(args.shapes / len(CATEGORIES))
    command = "python benchmarks/bench_data.py" + (" --quick" if args.quick else "")

    rows: List[dict] = []
    with tempfile.TemporaryDirectory(prefix="geo4g-bench-data-") as tmp:
        tmp = Path(tmp)
        generation, meshes = bench_generation(per_category, args.repeat)
        sampling = bench_sampling(meshes, args.points, args.repeat)
        for row in sampling + generation[:1]:
            print(row, flush=True)
        end_to_end, _ = bench_end_to_end(tmp / "generated", args.shapes, args.points, default_threads)
        print(*end_to_end, sep="\n", flush=True)
        cache = bench_cache_build(tmp / "generated", tmp / "cache", per_category, args.points, args.quick)
        print(*cache, sep="\n", flush=True)
        loaders = bench_loaders(tmp / "generated", tmp / "cache", per_category, args.points)
        print(*loaders, sep="\n", flush=True)
        rows = generation[:1] + sampling + end_to_end + cache + loaders + generation[1:]
        bbox_rows, best = bench_bbox(tmp / "bbox", args.bbox_shapes_per_category)

    data_md = write_results(
        "data", "Data pipeline: generation, sampling, cache and loaders", rows, COLUMNS, command,
        notes=f"Timings vary with machine load. Single-process rows use 1 torch thread; "
              f"surface-sampling ratios are peer time / geo4g time (above 1: geo4g is faster), one mesh per call, "
              f"on {SAMPLE_MESHES_PER_CATEGORY} procedural meshes per category. ProceduralShapes generates whole "
              f"shards of 64 shapes per category, so the cold end-to-end row generates "
              f"{-(-per_category // 64) * 64 * len(CATEGORIES)} shapes for {per_category * len(CATEGORIES)} items. "
              f"Loaders read the train split; workers > 0 are persistent (started in the warm-up pass). "
              f"The cache-build command and the row naming {default_threads} torch threads run with torch's default "
              f"thread count: small per-item ops slow down a lot with more than one OpenMP thread on a busy machine.")
    bbox_md = write_results(
        "procedural_bbox", "Procedural categories from bounding-box size alone (baseline)", bbox_rows,
        BBOX_COLUMNS, command,
        notes=f"{args.bbox_shapes_per_category} seeded shapes per category (seed 0), split by index as "
              "ProceduralShapes does (70/10/20). Features: bounding-box extents (dx, dy, dz) of the normalised "
              "shapes (diagonal 1), standardised with the train statistics. k-NN picks k on val and is fitted on "
              f"train. Recall rows are of the classifier with the best test accuracy. The categories must not be "
              f"told apart by size alone: the best test accuracy must stay at or below {BBOX_LIMIT:.0%}.")
    print()
    print(data_md.read_text())
    print(bbox_md.read_text())
    verdict = "OK" if best <= BBOX_LIMIT else "EXCEEDS THE LIMIT"
    print(f"bbox baseline: best test accuracy {best:.1%} (limit {BBOX_LIMIT:.0%}): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
