"""Earth mover's distance: geo4g exact / auction side by side with SciPy, POT and geomloss.

    python benchmarks/bench_emd.py [--sizes 1024 2048] [--batch 1 8] [--repeat 3] [--device cpu|cuda] [--threads 1]

Writes benchmarks/results/emd.md and emd.json (with --device cuda: emd_cuda.md/.json).
The baseline is SciPy's ``linear_sum_assignment`` (Jonker-Volgenant) on the full
Euclidean cost matrix, one pair at a time, which gives the exact optimum; "error"
is each method's value relative to it (value = mean Euclidean distance over the
matching, the convention of Fan et al. 2017 / PCN) and "speed-up" is
``scipy time / method time`` for the same batch. Clouds: two independent uniform
samples of the unit cube, and area-uniform surface samples of geo4g.parametric
meshes (two samplings of one shape, and of two different shapes).

geo4g rows: "exact" (SciPy underneath), "approx (numba auction)" (what
``method="approx"`` runs on CPU tensors when numba is installed; its one-off JIT
compile is excluded by a warm-up call) and "approx (torch auction)" (the batched
torch auction, used on other devices and as the fallback without numba).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import time_call, write_results  # noqa: E402

from geo4g.losses import emd as emd_module  # noqa: E402
from geo4g.losses.emd import earth_movers_distance  # noqa: E402
from geo4g.meshes import sample_points_from_meshes  # noqa: E402
from geo4g.parametric import box_mesh, cylinder_mesh, icosphere, torus_mesh  # noqa: E402
from geo4g.structures import Meshes  # noqa: E402


def shape_samples(name: str, n: int, batch: int, seed: int) -> torch.Tensor:
    """``(batch, n, 3)`` surface samples of a primitive, or uniform samples of the unit cube."""
    g = torch.Generator().manual_seed(seed)
    if name == "uniform":
        return torch.rand(batch, n, 3, generator=g)
    verts, faces = {
        "sphere": lambda: icosphere(3),
        "box": lambda: box_mesh((1.0, 0.8, 0.6)),
        "torus": lambda: torus_mesh(0.8, 0.25),
        "cylinder": lambda: cylinder_mesh(0.5, 1.2),
    }[name]()
    meshes = Meshes([verts] * batch, [faces] * batch)
    return sample_points_from_meshes(meshes, n, generator=g)


CASES = [  # (label, x shape, y shape)
    ("uniform vs uniform", "uniform", "uniform"),
    ("sphere vs sphere (2 samplings)", "sphere", "sphere"),
    ("torus vs torus (2 samplings)", "torus", "torus"),
    ("box vs cylinder", "box", "cylinder"),
]


def torch_auction(x: torch.Tensor, y: torch.Tensor, tol: float) -> torch.Tensor:
    """``method="approx"`` forced onto the batched torch auction (as without numba)."""
    real = emd_module._numba_kernels
    emd_module._numba_kernels = lambda: None
    try:
        return earth_movers_distance(x, y, method="approx", reduction=None, tol=tol)
    finally:
        emd_module._numba_kernels = real


def scipy_exact(x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    from scipy.optimize import linear_sum_assignment

    out = []
    for b in range(x.shape[0]):
        cost = torch.cdist(x[b].double(), y[b].double()).numpy()
        r, c = linear_sum_assignment(cost)
        out.append(cost[r, c].mean())
    return np.array(out)


def peers():
    found = {"scipy linear_sum_assignment (exact)": scipy_exact}
    try:
        import ot

        def pot_emd(x, y):
            out = []
            for b in range(x.shape[0]):
                M = ot.dist(x[b].double().numpy(), y[b].double().numpy(), metric="euclidean")
                w = np.full(M.shape[0], 1.0 / M.shape[0])
                out.append(float(ot.emd2(w, w, M, numItermax=10_000_000)))
            return np.array(out)

        def pot_sinkhorn(x, y):
            out = []
            for b in range(x.shape[0]):
                M = ot.dist(x[b].double().numpy(), y[b].double().numpy(), metric="euclidean")
                w = np.full(M.shape[0], 1.0 / M.shape[0])
                P = ot.sinkhorn(w, w, M, reg=0.01 * M.max(), numItermax=1000, stopThr=1e-7)
                out.append(float((P * M).sum()))
            return np.array(out)

        found[f"POT {ot.__version__} ot.emd (exact)"] = pot_emd
        found[f"POT {ot.__version__} ot.sinkhorn reg=0.01*max"] = pot_sinkhorn
    except ImportError:
        pass
    try:
        import geomloss
        from geomloss import SamplesLoss

        loss = SamplesLoss("sinkhorn", p=1, blur=0.002, scaling=0.9, debias=True, backend="tensorized")

        def geomloss_sinkhorn(x, y):
            return loss(x, y).detach().cpu().double().numpy()

        found[f"geomloss {geomloss.__version__} sinkhorn p=1 blur=0.002"] = geomloss_sinkhorn
    except ImportError:
        pass
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--batch", type=int, nargs="+", default=[1])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tol", type=float, default=0.01)
    parser.add_argument("--cases", type=int, nargs="+", default=list(range(len(CASES))))
    parser.add_argument("--no-peers", action="store_true", help="only scipy and geo4g")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default 1: SciPy and POT are single-threaded, and "
                             "small-op loops slow down badly when threads are oversubscribed)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    found = peers()
    if args.no_peers:
        found = {k: v for k, v in found.items() if k.startswith("scipy")}
    rows = []
    for n in args.sizes:
        for B in args.batch:
            for ci in args.cases:
                label, a, b = CASES[ci]
                x = shape_samples(a, n, B, seed=1)
                y = shape_samples(b, n, B, seed=2)
                exact = scipy_exact(x, y)
                t_ref = time_call(lambda: scipy_exact(x, y), repeat=args.repeat, warmup=0)["median"]
                xd, yd = x.to(device), y.to(device)
                methods = {
                    "geo4g exact": lambda: earth_movers_distance(xd, yd, method="exact", reduction=None),
                }
                if device.type == "cpu" and emd_module._numba_kernels() is not None:
                    methods[f"geo4g approx (numba auction, tol={args.tol})"] = lambda: earth_movers_distance(
                        xd, yd, method="approx", reduction=None, tol=args.tol)
                methods[f"geo4g approx (torch auction, tol={args.tol})"] = lambda: torch_auction(xd, yd, args.tol)
                for name, fn in found.items():
                    if name.startswith("scipy"):
                        rows.append(dict(case=label, n=n, B=B, method=name, seconds=t_ref, error_pct=0.0, speedup=1.0))
                        continue
                    if name.startswith("geomloss"):
                        methods[name] = lambda fn=fn: fn(xd, yd)
                    else:
                        methods[name] = lambda fn=fn: fn(x, y)
                for name, fn in methods.items():
                    value = fn()
                    value = value.detach().cpu().double().numpy() if isinstance(value, torch.Tensor) else value
                    warm = 1 if name.startswith("geo4g approx") or name.startswith("geomloss") else 0
                    t = time_call(fn, repeat=args.repeat, warmup=warm)["median"]
                    err = float(np.max(np.abs(value / exact - 1))) * 100
                    rows.append(dict(case=label, n=n, B=B, method=name, seconds=t, error_pct=err, speedup=t_ref / t))
                    print(f"{label:32s} n={n} B={B} {name:45s} {t:8.4f}s err {err:7.3f}% x{t_ref / t:6.2f}", flush=True)
    suffix = "" if device.type == "cpu" else f"_{device.type}"
    notes = (
        "error: max over the batch of |value / exact - 1| in %, exact = SciPy linear_sum_assignment "
        "on the full float64 Euclidean cost matrix; speed-up = SciPy time / method time (above 1: faster "
        "than the exact baseline). Value convention: mean Euclidean distance over the matching. "
        "POT sinkhorn and geomloss report entropic transport costs (no one-to-one matching)."
    )
    cmd = "python benchmarks/bench_emd.py " + " ".join(sys.argv[1:])
    md = write_results(f"emd{suffix}", "Earth mover's distance", rows,
                       ["case", "n", "B", "method", "seconds", "error_pct", "speedup"], cmd.strip(), notes)
    print(f"wrote {md}")


if __name__ == "__main__":
    main()
