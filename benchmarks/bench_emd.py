"""Earth mover's distance: geo4g exact / auction side by side with SciPy, POT and geomloss.

    python benchmarks/bench_emd.py [--sizes 1024 2048] [--batch 1 8] [--repeat 5] [--device cpu|cuda]
                                   [--threads 1] [--batch-threads 2] [--no-peers] [--quick]
                                   [--out-dir benchmarks/results]

Writes benchmarks/results/emd.md and emd.json (with --device cuda: emd_cuda.md/.json).
The baseline is SciPy's ``linear_sum_assignment`` (Jonker-Volgenant) on the full
Euclidean cost matrix, one pair at a time, which gives the exact optimum; "error"
is each method's value relative to it (value = mean Euclidean distance over the
matching, the convention of Fan et al. 2017 / PCN) and "speed-up" is
``scipy time / method time`` for the same batch. Clouds: two independent uniform
samples of the unit cube, and area-uniform surface samples of geo4g.parametric
meshes (two samplings of one shape, and of two different shapes).

Timing: every method of a case runs once per round, round after round (SciPy,
geo4g exact, geo4g approx, ..., SciPy, geo4g exact, ...), and each reports the
median of its ``--repeat`` rounds, so a load change on a shared machine hits all
of them alike.

geo4g rows: "exact" (SciPy underneath), "approx (numba auction)" (what
``method="approx"`` runs on CPU tensors when numba is installed; its one-off JIT
compile is excluded by a warm-up call) and "approx (torch auction)" (the batched
torch auction, used on other devices and as the fallback without numba).
The torch auction, POT and geomloss run for ``B = 1`` only.
"threads" is the number of threads a row's method used: SciPy and POT run one pair
at a time on one thread; with ``B = 1`` every row uses ``--threads`` (default 1,
like for like); with ``B > 1`` the numba auction runs twice, on ``--threads`` and
on ``--batch-threads`` threads, solving the pairs of the batch in parallel (its
kernel releases the GIL).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

# BLAS (behind POT's Sinkhorn) on --threads threads like everything else, set before numpy loads
# it: threaded BLAS that waits for busy cores on a shared machine runs several times slower.
_THREADS = sys.argv[sys.argv.index("--threads") + 1] if "--threads" in sys.argv[:-1] else "1"
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, _THREADS)

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from harness import write_results  # noqa: E402

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


def with_threads(fn, threads: int):
    """``fn`` run with ``threads`` torch threads (the numba auction's worker count for a batch)."""
    def run():
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return fn()
        finally:
            torch.set_num_threads(previous)
    return run


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


def interleaved_medians(methods, repeat: int):
    """Median wall seconds of each method over ``repeat`` rounds, every method once per round, and
    the median of its process CPU time over wall time (the cores it kept busy)."""
    times = {name: [] for name in methods}
    cores = {name: [] for name in methods}
    for _ in range(repeat):
        for name, fn in methods.items():
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            wall = time.perf_counter() - t0
            times[name].append(wall)
            cores[name].append((time.process_time() - c0) / wall)
    return ({name: statistics.median(t) for name, t in times.items()},
            {name: statistics.median(c) for name, c in cores.items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--batch", type=int, nargs="+", default=[1])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tol", type=float, default=0.01)
    parser.add_argument("--cases", type=int, nargs="+", default=list(range(len(CASES))))
    parser.add_argument("--no-peers", action="store_true", help="only scipy and geo4g")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op and BLAS threads (default 1: SciPy and POT are single-threaded, "
                             "and small-op loops slow down badly when threads are oversubscribed)")
    parser.add_argument("--batch-threads", type=int, default=None,
                        help="threads of the numba auction for batches (B > 1); default: --threads")
    parser.add_argument("--quick", action="store_true", help="a smoke run: n=256, two cases, two rounds, no peers")
    parser.add_argument("--out-dir", type=Path, default=harness.RESULTS, help="where the results files go")
    args = parser.parse_args()
    harness.RESULTS = args.out_dir
    if args.quick:
        args.sizes, args.batch, args.repeat, args.cases, args.no_peers = [256], [1, 2], 2, [0, 3], True
    batch_threads = args.batch_threads or args.threads
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    found = peers()
    if args.no_peers:
        found = {k: v for k, v in found.items() if k.startswith("scipy")}
    numba_ok = device.type == "cpu" and emd_module._numba_kernels() is not None
    rows = []
    for n in args.sizes:
        for B in args.batch:
            for ci in args.cases:
                label, a, b = CASES[ci]
                x = shape_samples(a, n, B, seed=1)
                y = shape_samples(b, n, B, seed=2)
                exact = scipy_exact(x, y)
                xd, yd = x.to(device), y.to(device)
                methods, threads = {}, {}
                for name, fn in found.items():
                    if name.startswith("scipy"):
                        methods[name], threads[name] = (lambda fn=fn: fn(x, y)), 1
                methods["geo4g exact"] = lambda: earth_movers_distance(xd, yd, method="exact", reduction=None)
                threads["geo4g exact"] = 1
                if numba_ok:
                    name = f"geo4g approx (numba auction, tol={args.tol})"
                    for t in sorted({args.threads, batch_threads if B > 1 else args.threads}):
                        label_t = name if t == args.threads else f"{name}, {t} threads"
                        methods[label_t] = with_threads(lambda: earth_movers_distance(
                            xd, yd, method="approx", reduction=None, tol=args.tol), t)
                        threads[label_t] = min(t, B)
                if B == 1:
                    name = f"geo4g approx (torch auction, tol={args.tol})"
                    methods[name], threads[name] = (lambda: torch_auction(xd, yd, args.tol)), args.threads
                for name, fn in found.items():
                    if name.startswith("scipy") or B > 1:  # batches: SciPy and geo4g only
                        continue
                    if name.startswith("geomloss"):
                        methods[name], threads[name] = (lambda fn=fn: fn(xd, yd)), args.threads
                    else:
                        methods[name], threads[name] = (lambda fn=fn: fn(x, y)), 1
                values = {}
                for name, fn in methods.items():  # warm-up: JIT compiles, caches; values for the error
                    value = fn()
                    values[name] = value.detach().cpu().double().numpy() if isinstance(value, torch.Tensor) else value
                seconds, cores = interleaved_medians(methods, args.repeat)
                t_ref = seconds["scipy linear_sum_assignment (exact)"]
                for name in methods:
                    err = float(np.max(np.abs(values[name] / exact - 1))) * 100
                    rows.append(dict(case=label, n=n, B=B, method=name, threads=threads[name], cores_busy=cores[name],
                                     seconds=seconds[name], error_pct=err, speedup=t_ref / seconds[name]))
                    print(f"{label:32s} n={n} B={B} {name:45s} {threads[name]}t {seconds[name]:8.4f}s "
                          f"err {err:7.3f}% x{t_ref / seconds[name]:6.2f}", flush=True)
    suffix = "" if device.type == "cpu" else f"_{device.type}"
    notes = (
        "error: max over the batch of |value / exact - 1| in %, exact = SciPy linear_sum_assignment "
        "on the full float64 Euclidean cost matrix; speed-up = SciPy time / method time (above 1: faster "
        "than the exact baseline), medians of rounds in which every method of the case ran once in turn. "
        "threads: threads the method used (B = 1 rows: single pairs, one thread for every method; B > 1 "
        "rows: batches, the numba auction solving pairs in parallel on that many threads, SciPy one pair "
        "at a time; the torch auction, POT and geomloss on B = 1 only); cores_busy: process CPU time / "
        "wall time (below the thread count when the machine's other load leaves fewer cores free). "
        "Value convention: mean Euclidean distance over the matching. POT sinkhorn and geomloss report "
        "entropic transport costs (no one-to-one matching)."
    )
    cmd = "python benchmarks/bench_emd.py " + " ".join(sys.argv[1:])
    md = write_results(f"emd{suffix}", "Earth mover's distance", rows,
                       ["case", "n", "B", "method", "threads", "cores_busy", "seconds", "error_pct", "speedup"],
                       cmd.strip(), notes)
    print(f"wrote {md}")


if __name__ == "__main__":
    main()
