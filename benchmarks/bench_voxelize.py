"""Mesh voxelisation: geo4g.voxels.voxelize_mesh side by side with Open3D and trimesh.

    python benchmarks/bench_voxelize.py [--resolution 64] [--per-category 4] [--rounds 9] [--quick]
                                        [--out-dir benchmarks/results]

Writes benchmarks/results/voxelize.md and voxelize.json. A ratio above 1 means geo4g is faster.
Every contender runs once per round, in turn, so a load spike on a shared machine hits all of
them alike; the table gives the median over the rounds (after one untimed warm-up call each, which
also compiles geo4g's numba kernels). The slow contenders (trimesh, geo4g's torch path on the CPU)
run apart, in a third of the rounds.

Cases, in the unit cube ``[-0.5, 0.5]^3`` split into ``--resolution`` voxels per axis:
the procedural shapes (``--per-category`` shapes of each of the 12 categories), as one batched
``voxelize_mesh`` call and as one call per shape; and a dense icosphere (81920 faces).
Surface mode: geo4g against Open3D's ``VoxelGrid.create_from_triangle_mesh_within_bounds`` (same
voxel size and bounds) and trimesh's ``Trimesh.voxelized(pitch)``. Solid mode: geo4g against
``voxelized(pitch).fill()``. Peers get their mesh objects built outside the timed region; geo4g is
timed through the public call (input checks included). geo4g runs its ``"auto"`` path (numba on
all CPU cores); the ``"torch"`` path (the GPU path's algorithm) is timed on the same device too.

trimesh places voxel centres on multiples of the pitch; its meshes are shifted by half a pitch
so that its voxels are exactly geo4g's. The voxel counts compare each peer's voxels with
geo4g's exact ones (every voxel whose closed box a triangle meets): the share of geo4g's voxels
the peer marks, and the voxels it marks that geo4g does not.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from harness import write_results  # noqa: E402

from geo4g._threads import available_cpus  # noqa: E402
from geo4g.parametric.primitives import icosphere  # noqa: E402
from geo4g.parametric.programs import CATEGORIES, get_program  # noqa: E402
from geo4g.structures import Meshes  # noqa: E402
from geo4g.voxels.voxelize import voxelize_mesh  # noqa: E402

LO, HI = -0.5, 0.5
ICOSPHERE_SUBDIVISIONS = 6  # 81920 faces
COLUMNS = ["case", "mode", "shapes", "faces", "R", "geo4g ms", "geo4g torch ms", "open3d ms", "open3d / geo4g",
           "trimesh ms", "trimesh / geo4g", "geo4g voxels", "open3d voxels", "open3d marks % of geo4g",
           "open3d extra", "trimesh voxels", "trimesh marks % of geo4g", "trimesh extra"]


def procedural_shapes(per_category: int):
    """``[(verts float32 (V, 3), faces (F, 3))]``, ``per_category`` shapes of every category, reproducibly."""
    shapes = []
    for category in CATEGORIES:
        for i in range(per_category):
            sample = get_program(category).sample(torch.Generator().manual_seed(1000 + i))
            shapes.append((sample.verts.float(), sample.faces))
    return shapes


def open3d_contender(shapes, R: int):
    """(callable, voxel index sets) for Open3D, or ``None`` when it is not installed."""
    try:
        import open3d as o3d
    except ImportError:
        return None
    meshes = [o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(v.double().numpy()),
                                        o3d.utility.Vector3iVector(f.numpy().astype(np.int32))) for v, f in shapes]
    lo, hi = np.full(3, LO), np.full(3, HI)

    def run():
        return [o3d.geometry.VoxelGrid.create_from_triangle_mesh_within_bounds(m, (HI - LO) / R, lo, hi)
                for m in meshes]

    def voxels():
        return [{tuple(v.grid_index) for v in grid.get_voxels()} for grid in run()]

    return run, voxels


def trimesh_contender(shapes, R: int, solid: bool):
    """(callable, voxel index sets) for trimesh (``voxelized(pitch)``, ``.fill()`` when ``solid``), or ``None``."""
    try:
        import trimesh
    except ImportError:
        return None
    pitch = (HI - LO) / R
    # trimesh centres its voxels on multiples of the pitch: shift by half a pitch to match geo4g's lattice
    meshes = [trimesh.Trimesh(v.double().numpy() + pitch / 2, f.numpy(), process=False) for v, f in shapes]

    def run():
        return [m.voxelized(pitch).fill() if solid else m.voxelized(pitch) for m in meshes]

    def voxels():
        out = []
        for grid in run():
            idx = np.floor((grid.points - pitch / 2 - LO) / pitch).astype(np.int64)
            out.append({tuple(i) for i in idx})
        return out

    return run, voxels


SLOW = ("geo4g torch", "trimesh")


def measure(contenders: Dict[str, object], rounds: int) -> Dict[str, float]:
    """Median wall seconds of each contender over ``rounds`` interleaved rounds, after one warm-up call
    each; the slow ones (``SLOW``) apart, in a third of the rounds (at least 3)."""
    times = {}
    for group, n in (([k for k in contenders if k not in SLOW], rounds),
                     ([k for k in contenders if k in SLOW], max(3, rounds // 3))):
        for name in group:
            contenders[name]()
            times[name] = []
        for _ in range(n):
            for name in group:
                start = time.perf_counter()
                contenders[name]()
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def geo4g_sets(grids: torch.Tensor) -> List[set]:
    return [{tuple(i) for i in g.nonzero().tolist()} for g in grids]


def compare(row: dict, ours: List[set], theirs: Optional[List[set]], peer: str) -> None:
    if theirs is None:
        return
    mine = sum(len(s) for s in ours)
    row[f"{peer} voxels"] = sum(len(s) for s in theirs)
    row[f"{peer} marks % of geo4g"] = 100.0 * sum(len(a & b) for a, b in zip(ours, theirs)) / max(mine, 1)
    row[f"{peer} extra"] = sum(len(b - a) for a, b in zip(ours, theirs))


def bench_case(name: str, shapes, R: int, mode: str, fill_rule: str, batched: bool, rounds: int) -> dict:
    bounds = torch.tensor([[LO] * 3, [HI] * 3])
    meshes = Meshes([v for v, _ in shapes], [f for _, f in shapes])
    if batched:
        def ours(method="auto"):
            return voxelize_mesh(meshes, resolution=R, mode=mode, bounds=bounds, fill_rule=fill_rule, method=method)
    else:
        def ours(method="auto"):
            return torch.stack([voxelize_mesh(v, f, R, mode=mode, bounds=bounds, fill_rule=fill_rule, method=method)
                                for v, f in shapes])
    contenders = {"geo4g": ours, "geo4g torch": lambda: ours("torch")}
    o3d = open3d_contender(shapes, R) if mode == "surface" else None
    tm = trimesh_contender(shapes, R, solid=mode == "solid")
    if o3d is not None:
        contenders["open3d"] = o3d[0]
    if tm is not None:
        contenders["trimesh"] = tm[0]
    med = measure(contenders, rounds)
    grids = ours()
    assert torch.equal(grids, ours("torch"))
    mine = geo4g_sets(grids)
    row = {"case": name, "mode": mode + (f" ({fill_rule})" if mode != "surface" else ""), "shapes": len(shapes),
           "faces": sum(int(f.shape[0]) for _, f in shapes), "R": R, "geo4g ms": med["geo4g"] * 1e3,
           "geo4g torch ms": med["geo4g torch"] * 1e3, "geo4g voxels": sum(len(s) for s in mine)}
    for peer in ("open3d", "trimesh"):
        if peer in med:
            row[f"{peer} ms"] = med[peer] * 1e3
            row[f"{peer} / geo4g"] = med[peer] / med["geo4g"]
    compare(row, mine, o3d[1]() if o3d is not None else None, "open3d")
    compare(row, mine, tm[1]() if tm is not None else None, "trimesh")
    return row


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--per-category", type=int, default=4, help="procedural shapes per category")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--quick", action="store_true", help="a small smoke run (1 shape per category, R=16)")
    parser.add_argument("--out-dir", type=Path, default=harness.RESULTS, help="where the results files go")
    args = parser.parse_args(argv)
    subdivisions = ICOSPHERE_SUBDIVISIONS
    if args.quick:
        args.resolution, args.per_category, args.rounds, subdivisions = 16, 1, 1, 3
    harness.RESULTS = args.out_dir
    torch.set_num_threads(1)
    R = args.resolution
    load_before = os.getloadavg()[0]
    shapes = procedural_shapes(args.per_category)
    sphere = [tuple(t.float() if t.is_floating_point() else t for t in icosphere(subdivisions, 0.45))]
    n = len(shapes)
    cases = [
        (f"{n} procedural shapes, one batched call", shapes, "surface", "parity", True),
        (f"{n} procedural shapes, one call per shape", shapes, "surface", "parity", False),
        (f"icosphere {20 * 4 ** subdivisions} faces", sphere, "surface", "parity", True),
        (f"{n} procedural shapes, one batched call", shapes, "solid", "winding", True),
        (f"icosphere {20 * 4 ** subdivisions} faces", sphere, "solid", "parity", True),
    ]
    rows = []
    for name, items, mode, rule, batched in cases:
        rows.append(bench_case(name, items, R, mode, rule, batched, args.rounds))
        print(rows[-1], flush=True)
    load_after = os.getloadavg()[0]
    command = "python benchmarks/bench_voxelize.py" + (" --quick" if args.quick else "")
    if not args.quick and (R, args.per_category) != (64, 4):
        command += f" --resolution {R} --per-category {args.per_category}"
    write_results(
        "voxelize", f"Mesh voxelisation at {R}^3: geo4g.voxels.voxelize_mesh against Open3D and trimesh (median ms)",
        rows, COLUMNS, command,
        notes=f"Ratios are peer time / geo4g time: above 1, geo4g is faster. Median of {args.rounds} interleaved "
              f"rounds ('geo4g torch' and trimesh, the slow ones, apart in {max(3, args.rounds // 3)}). geo4g: method 'auto' (numba kernels on {available_cpus()} threads, all the CPUs of this machine; "
              "torch on 1 thread); 'geo4g torch' is the blocked torch path (the CUDA path's algorithm) on the same "
              "CPU. Peers are timed per shape with their mesh objects prebuilt. Open3D gets the same bounds and "
              "voxel size; trimesh the same pitch, its mesh shifted by half a pitch so that its voxels are "
              "geo4g's. 'marks % of geo4g': the share of geo4g's exact voxels (closed box meets a triangle) the "
              "peer marks; 'extra': voxels the peer marks that geo4g does not. Solid: geo4g marks the surface "
              "voxels plus the voxels whose centre is inside (winding rule for the procedural shapes, which are "
              "unions of overlapping closed parts); trimesh fills the enclosed voxels of its surface grid. "
              f"Load average (1 min) before/after: {load_before:.1f} / {load_after:.1f} on {os.cpu_count()} CPUs.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
