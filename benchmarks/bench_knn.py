"""Nearest neighbours: geo4g.points.knn_points / ball_query side by side with SciPy, Open3D and naive torch.

    python benchmarks/bench_knn.py [--points 16384] [--rounds 21] [--device cpu|cuda]

Writes benchmarks/results/knn.md and knn.json (knn_cuda.md / .json with ``--device cuda``). A ratio
above 1 means geo4g is faster. Every contender runs once per round, in turn, so a load spike on a
shared machine hits all of them alike; the tables give the median over the rounds.

Cases (clouds of ``--points`` points, float32): kNN with K=16, each cloud against itself, B=1 and
B=8, uniform in the unit cube and on a sphere's surface; ball query (radius 0.1, K=32, 1024 query
points against the cloud). geo4g is timed through the public call (input checks included, the
path ``method="auto"`` picks is named). Peers include their tree builds: SciPy ``cKDTree`` with
``workers=-1`` (``query`` / ``query_ball_point``), Open3D ``core.nns.NearestNeighborSearch``
(``knn_search`` / ``fixed_radius_search``), Open3D ``KDTreeFlann`` (one Python call per point, B=1),
and naive torch (``cdist`` + ``topk`` over the whole distance matrix; B=1). With ``--device cuda``
geo4g and naive torch run on the GPU, the other peers on the CPU.
"""
from __future__ import annotations

import argparse
import importlib
import os
import statistics
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import time_call, write_results  # noqa: E402

from geo4g.points import ball_query, knn_points  # noqa: E402
from geo4g.points import knn as knn_module  # noqa: E402

ball_module = importlib.import_module("geo4g.points.ball_query")  # the package exports a function of that name

K_NN = 16
K_BALL = 32
RADIUS = 0.1
QUERIES = 1024


def clouds(kind: str, B: int, n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if kind == "uniform":
        return torch.rand(B, n, 3, generator=g)
    v = torch.randn(B, n, 3, generator=g)
    return 0.5 * v / v.norm(dim=-1, keepdim=True)


def knn_peers(points: np.ndarray, device: str):
    """name -> callable over all clouds of ``points (B, N, 3)``."""
    from scipy.spatial import cKDTree

    found = {"scipy cKDTree": lambda: [cKDTree(c).query(c, k=K_NN, workers=-1) for c in points]}
    try:
        import open3d as o3d

        tensors = [o3d.core.Tensor(c) for c in points]

        def o3d_nns():
            out = []
            for t in tensors:
                nns = o3d.core.nns.NearestNeighborSearch(t)
                nns.knn_index()
                out.append(nns.knn_search(t, K_NN))
            return out

        found["open3d nns"] = o3d_nns
        if points.shape[0] == 1:
            cloud = points[0].astype(np.float64)

            def o3d_flann():
                tree = o3d.geometry.KDTreeFlann(o3d.geometry.PointCloud(o3d.utility.Vector3dVector(cloud)))
                return [tree.search_knn_vector_3d(p, K_NN) for p in cloud]

            found["open3d KDTreeFlann"] = o3d_flann
    except ImportError:
        pass
    if points.shape[0] == 1:
        t = torch.from_numpy(points).to(device)
        found["naive torch"] = lambda: torch.cdist(t, t).topk(K_NN, dim=-1, largest=False)
    return found


def ball_peers(points: np.ndarray, queries: np.ndarray, device: str):
    from scipy.spatial import cKDTree

    found = {"scipy cKDTree": lambda: [cKDTree(c).query_ball_point(q, RADIUS, workers=-1, return_sorted=True)
                                       for c, q in zip(points, queries)]}
    try:
        import open3d as o3d

        pairs = [(o3d.core.Tensor(c), o3d.core.Tensor(q)) for c, q in zip(points, queries)]

        def o3d_nns():
            out = []
            for c, q in pairs:
                nns = o3d.core.nns.NearestNeighborSearch(c)
                nns.fixed_radius_index(RADIUS)
                out.append(nns.fixed_radius_search(q, RADIUS))
            return out

        found["open3d nns"] = o3d_nns
    except ImportError:
        pass
    p, q = torch.from_numpy(points).to(device), torch.from_numpy(queries).to(device)

    def naive():
        inside = torch.cdist(q, p) < RADIUS
        rank = inside.long().cumsum(-1)
        return torch.where(inside & (rank <= K_BALL), rank, 0)

    found["naive torch"] = naive
    return found


def measure(contenders, rounds: int):
    """Median seconds of each contender over ``rounds`` interleaved rounds (after one warm-up call each)."""
    for fn in contenders.values():
        time_call(fn, repeat=1, warmup=0)
    times = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            times[name].append(time_call(fn, repeat=1, warmup=0)["median"])
    return {name: statistics.median(t) for name, t in times.items()}


def measure_all(contenders, rounds: int):
    """``measure`` over the contenders, naive torch apart and in a third of the rounds: it is slow,
    and torch's OpenMP threads still spinning after it would slow whoever runs next."""
    contenders = dict(contenders)
    naive = contenders.pop("naive torch", None)
    med = measure(contenders, rounds)
    if naive is not None:
        med["naive torch"] = measure({"naive torch": naive}, max(3, rounds // 3))["naive torch"]
    return med


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=16384)
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()
    n, device = args.points, args.device
    load_before = os.getloadavg()[0]
    rows = []
    peers_seen = []
    for kind, B in (("uniform", 1), ("uniform", 8), ("sphere", 1)):
        p = clouds(kind, B, n)
        pd = p.to(device)
        lengths = torch.full((B,), n, device=device)
        path = knn_module._choose_method(pd, pd, lengths, lengths, K_NN)
        contenders = {"geo4g": lambda: knn_points(pd, pd, K=K_NN)}
        contenders.update(knn_peers(p.numpy(), device))
        med = measure_all(contenders, args.rounds)
        rows.append(_row(f"kNN K={K_NN} self", kind, B, n, path, med))
        peers_seen += [k for k in med if k != "geo4g"]
        print(rows[-1], flush=True)
    for kind in ("uniform", "sphere"):
        p = clouds(kind, 1, n)
        q = p[:, :QUERIES].contiguous()
        pd, qd = p.to(device), q.to(device)
        lq, lp = torch.full((1,), QUERIES, device=device), torch.full((1,), n, device=device)
        path = ball_module._choose_method(qd, pd, lq, lp)
        contenders = {"geo4g": lambda: ball_query(qd, pd, K=K_BALL, radius=RADIUS, return_nn=False)}
        contenders.update(ball_peers(p.numpy(), q.numpy(), device))
        med = measure_all(contenders, args.rounds)
        rows.append(_row(f"ball r={RADIUS} K={K_BALL}, {QUERIES} queries", kind, 1, n, path, med))
        peers_seen += [k for k in med if k != "geo4g"]
        print(rows[-1], flush=True)
    load_after = os.getloadavg()[0]

    columns = ["op", "cloud", "B", "points", "geo4g path", "geo4g ms"]
    for peer in dict.fromkeys(peers_seen):
        columns += [f"{peer} ms", f"{peer} / geo4g"]
    name = "knn" if device == "cpu" else f"knn_{device}"
    command = "python benchmarks/bench_knn.py" + ("" if device == "cpu" else f" --device {device}")
    write_results(name, f"Nearest neighbours on {device}: geo4g.points against installed peers (median ms)", rows,
                  columns, command,
                  notes=f"Ratios are peer time / geo4g time: above 1, geo4g is faster. Median of {args.rounds} "
                        "interleaved rounds (naive torch apart, a third of them). Peers include their tree or index "
                        "build; geo4g includes input checks. Ball query: SciPy and Open3D return every "
                        "neighbour in the ball, geo4g the first K in index order (PyTorch3D's convention), "
                        "return_nn=False. Load average (1 min) before/after: "
                        f"{load_before:.1f} / {load_after:.1f} on {os.cpu_count()} CPUs.")


def _row(op, kind, B, n, path, med):
    row = {"op": op, "cloud": kind, "B": B, "points": n, "geo4g path": path, "geo4g ms": med["geo4g"] * 1e3}
    for peer, t in med.items():
        if peer != "geo4g":
            row[f"{peer} ms"] = t * 1e3
            row[f"{peer} / geo4g"] = t / med["geo4g"]
    return row


if __name__ == "__main__":
    main()
