"""Chamfer distance: geo4g against naive torch.cdist + min, SciPy's cKDTree and PyTorch3D (if installed).

Cases (CPU always, CUDA when present):

- B=8, N=M=2048, forward + backward: geo4g vs naive ``torch.cdist`` + ``min``
  (target: geo4g >= 3x faster);
- B=1, N=M=16384, forward: geo4g vs SciPy ``cKDTree`` alone (build a tree on
  each cloud, query the other, ``workers=-1``; target: geo4g at least as fast).

Peak memory: ``tracemalloc`` does not see torch CPU tensors, so each CPU case
runs once in a fresh subprocess and reports the growth of the process's peak
resident set (``VmHWM`` after the call, its mark reset through
``/proc/self/clear_refs``, minus ``VmRSS`` before it; inputs are made before). On CUDA it is ``torch.cuda.max_memory_allocated`` minus the memory in
use before the call.

Run: ``python benchmarks/bench_chamfer.py`` (``--quick`` for smaller repeats).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from harness import machine, time_call, write_results  # noqa: E402

from geo4g.losses import chamfer_distance  # noqa: E402


def make(B, N, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(B, N, 3, generator=g).to(device)
    y = torch.rand(B, N, 3, generator=g).to(device)
    return x, y


def naive(x, y):
    d = torch.cdist(x, y).square()
    return d.min(2).values.mean(1).mean() + d.min(1).values.mean(1).mean()


def scipy_kdtree(x, y):
    from scipy.spatial import cKDTree

    total = 0.0
    xn, yn = x.detach().cpu().numpy(), y.detach().cpu().numpy()
    for b in range(xn.shape[0]):
        dx, _ = cKDTree(yn[b]).query(xn[b], k=1, workers=-1)
        dy, _ = cKDTree(xn[b]).query(yn[b], k=1, workers=-1)
        total += (dx ** 2).mean() + (dy ** 2).mean()
    return total / xn.shape[0]


def pytorch3d_fn():
    try:
        from pytorch3d.loss import chamfer_distance as p3d
    except ImportError:
        return None
    return lambda x, y: p3d(x, y)[0]


def impls(device):
    out = {
        "geo4g (auto)": lambda x, y: chamfer_distance(x, y)[0],
        "geo4g blocked": lambda x, y: chamfer_distance(x, y, method="blocked")[0],
        "naive cdist+min": naive,
    }
    if device == "cpu":
        out["scipy cKDTree"] = scipy_kdtree
    p3d = pytorch3d_fn()
    if p3d is not None:
        out["pytorch3d"] = p3d
    return out


def run_once(name, B, N, backward, device):
    """Run one implementation once; return seconds-free peak memory growth in bytes."""
    fn = impls(device)[name]
    x, y = make(B, N, device)
    if backward:
        x.requires_grad_(True)
        y.requires_grad_(True)

    def call():
        loss = fn(x, y)
        if backward:
            loss.backward()
        return loss

    if device == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        call()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    before = _proc_status_kib("VmRSS")
    try:  # reset the peak-RSS mark (ru_maxrss would be inherited from the parent across exec)
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    call()
    return max(0, _proc_status_kib("VmHWM") - before) * 1024


def _proc_status_kib(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_memory(name, B, N, backward, device):
    if device == "cuda":
        return run_once(name, B, N, backward, device)
    code = (
        f"import sys; sys.argv=['x']; sys.path.insert(0, {str(ROOT / 'benchmarks')!r});"
        f"import bench_chamfer as b; print(b.run_once({name!r}, {B}, {N}, {backward}, 'cpu'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(ROOT))
    if out.returncode != 0:
        return None
    return int(out.stdout.strip().splitlines()[-1])


CASES = [
    # (label, B, N, backward, implementations, baseline for the ratio)
    ("B=8 N=M=2048 fwd+bwd", 8, 2048, True, ["geo4g (auto)", "geo4g blocked", "naive cdist+min", "pytorch3d"],
     "naive cdist+min"),
    ("B=1 N=M=16384 fwd", 1, 16384, False, ["geo4g (auto)", "scipy cKDTree", "naive cdist+min", "pytorch3d"],
     "scipy cKDTree"),
]


SWEEP_SIZES = (2048, 8192, 32768, 131072)


def memory_sweep(device):
    """Peak memory of forward + backward at B=1, N=M growing 4x a step: geo4g grows linearly in
    N+M; the naive cdist grows with N*M (run only while its matrix stays under 1 GiB)."""
    rows, previous = [], {}
    for N in SWEEP_SIZES:
        for name in ("geo4g (auto)", "naive cdist+min"):
            if name == "naive cdist+min" and N > 8192:
                continue
            mem = peak_memory(name, 1, N, True, device)
            row = {"device": device, "N=M": N, "impl": name, "peak_mem_MiB": None if mem is None else mem / 2**20}
            if mem is not None and name in previous:
                # bytes per point added since the previous size: flat for linear growth
                row["growth_bytes_per_added_point"] = (mem - previous[name][1]) / (2 * (N - previous[name][0]))
            if mem is not None:
                previous[name] = (N, mem)
            rows.append(row)
            print(row, flush=True)
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="all", choices=["all", "cpu", "cuda"])
    args = parser.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if args.device != "all":
        devices = [args.device]
    repeat = 3 if args.quick else 7
    rows = []
    for device in devices:
        available = impls(device)
        for label, B, N, backward, names, base_name in CASES:
            if device == "cuda" and base_name == "scipy cKDTree":
                base_name = "naive cdist+min"
            times = {}
            for name in names:
                if name not in available:
                    continue
                if device == "cpu" and name == "naive cdist+min" and N > 8192:
                    continue  # a 1 GiB distance matrix per direction: not run on the CPU
                fn = available[name]
                x, y = make(B, N, device)
                if backward:
                    x.requires_grad_(True)
                    y.requires_grad_(True)

                def call(fn=fn, x=x, y=y):
                    loss = fn(x, y)
                    if backward:
                        loss.backward()

                t = time_call(call, repeat=repeat, warmup=1)["median"]
                times[name] = t
                mem = peak_memory(name, B, N, backward, device)
                rows.append({"device": device, "case": label, "impl": name, "median_ms": t * 1e3,
                             "peak_mem_MiB": None if mem is None else mem / 2**20})
            base = times.get(base_name)
            for row in rows:
                if row["device"] == device and row["case"] == label and base and row["impl"] in times:
                    row[f"speedup_vs_baseline"] = base / times[row["impl"]]
                    row["baseline"] = base_name
    columns = ["device", "case", "impl", "median_ms", "speedup_vs_baseline", "baseline", "peak_mem_MiB"]
    notes = (
        "speedup_vs_baseline = baseline time / this time (above 1: faster than the baseline). "
        "CPU peak memory = growth of the peak RSS of a fresh process during one call (inputs made "
        "before); CUDA = max_memory_allocated minus memory in use before. PyTorch3D is listed only "
        "when importable. Timings on a shared machine are noisy; the median of the runs is shown."
    )
    name = "chamfer" if "cpu" in devices else "chamfer_cuda"
    md = write_results(name, "Chamfer distance", rows, columns,
                       "python benchmarks/bench_chamfer.py" + (" --quick" if args.quick else "")
                       + ("" if args.device == "all" else f" --device {args.device}"), notes)
    print(md.read_text())
    sweep = [row for device in devices for row in memory_sweep(device)]
    md = write_results(name + "_memory", "Chamfer distance: peak memory of forward + backward, B=1", sweep,
                       ["device", "N=M", "impl", "peak_mem_MiB", "growth_bytes_per_added_point"],
                       "python benchmarks/bench_chamfer.py", notes.split(" PyTorch3D")[0])
    print(md.read_text())


if __name__ == "__main__":
    main()
