"""Marching cubes and signed distance grids: geo4g.voxels side by side with scikit-image, trimesh, Open3D.

    python benchmarks/bench_marching_cubes.py [--quick] [--rounds 11] [--device cpu|cuda]

Writes benchmarks/results/marching_cubes.md and marching_cubes.json (marching_cubes_cuda.* with
``--device cuda``). A ratio above 1 means geo4g is faster. Every contender runs once per round, in
turn, so a load spike on a shared machine hits all of them alike; the table gives the median over
the rounds.

Marching cubes (``--mc-resolution``, default 128^3, float32, level 0): the signed distance of a
sphere (analytic), the signed distance of a procedural chair (``sdf_grid``), and a noise field
(a random 12^3 grid upsampled trilinearly: many small blobs, many ambiguous cells). geo4g
(``marching_cubes``, the numba path and the torch reference, the ``Meshes`` built) against
``skimage.measure.marching_cubes`` (Lewiner, its default, and the classic Lorensen).

Signed distance grids (``--sdf-resolution``, default 64^3, float64) of procedural shapes: geo4g
``sdf_grid`` (BVH distance + hierarchical winding number sign) against Open3D's
``RaycastingScene.compute_signed_distance`` (its scene build included, float32, sign by ray
parity) on the whole grid, and trimesh's ``proximity.signed_distance`` (needs ``rtree``) on
``--trimesh-points`` voxel centres, compared per point. The agreement column gives the largest
difference of unsigned distances, the share of voxels with the same inside/outside status and,
where the status differs, the exact winding numbers there (torch reference): 2 in the overlap of
two closed parts (a procedural shape is a union of such parts), which ray parity counts as
outside.

Threads: each case runs with the process pinned to one CPU (``1 thread``: numba, torch and the
peers all on one core) and with every CPU it may use; scikit-image and trimesh are
single-threaded either way. The torch reference of marching cubes runs on one thread only: on a
shared, loaded machine torch's OpenMP threads wait for each other and the time says more about
the load than about the code (2.5 s against 0.08 s on one thread, measured).
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
import harness  # noqa: E402
from harness import time_call, write_results  # noqa: E402

from geo4g.parametric.programs import get_program  # noqa: E402
from geo4g.structures.meshes import Meshes  # noqa: E402
from geo4g.voxels import sdf as sdf_module  # noqa: E402
from geo4g.voxels.marching_cubes import marching_cubes  # noqa: E402
from geo4g.voxels.sdf import sdf_grid  # noqa: E402


def measure(contenders, rounds: int):
    """Median seconds of each contender over ``rounds`` interleaved rounds (after one warm-up call each)."""
    for fn in contenders.values():
        time_call(fn, repeat=1, warmup=0)
    times = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            times[name].append(time_call(fn, repeat=1, warmup=0)["median"])
    return {name: statistics.median(t) for name, t in times.items()}


def thread_modes():
    """``[(label, cpus)]``: one CPU, then every CPU this process may use."""
    if not hasattr(os, "sched_getaffinity"):
        return [(f"{os.cpu_count()} threads", None)]
    cpus = sorted(os.sched_getaffinity(0))
    modes = [("1 thread", {cpus[0]})]
    if len(cpus) > 1:
        modes.append((f"{len(cpus)} threads", set(cpus)))
    return modes


def pinned(cpus):
    """Pin the process (numba's pool sizes itself from the affinity) and torch's thread count."""
    if cpus is not None:
        os.sched_setaffinity(0, cpus)
        torch.set_num_threads(len(cpus))


def shape_mesh(name: str, dtype=torch.float64):
    sample = get_program(name).sample(torch.Generator().manual_seed(0))
    return sample.verts.to(dtype), sample.faces


def mc_fields(n: int):
    """name -> ``(n, n, n)`` float32 volume."""
    x = torch.linspace(-1, 1, n)
    sphere = (x[:, None, None] ** 2 + x[None, :, None] ** 2 + x[None, None, :] ** 2).sqrt() - 0.7
    verts, faces = shape_mesh("chair")
    bounds = torch.tensor([[-0.6] * 3, [0.6] * 3], dtype=torch.float64)
    chair = sdf_grid(Meshes([verts], [faces]), n, bounds=bounds)[0].float()
    g = torch.Generator().manual_seed(0)
    coarse = torch.rand(1, 1, 12, 12, 12, generator=g) - 0.5
    noise = torch.nn.functional.interpolate(coarse, size=(n, n, n), mode="trilinear", align_corners=True)[0, 0]
    return {"sphere SDF": sphere, "chair SDF (sdf_grid)": chair, "noise (12^3 upsampled)": noise.contiguous()}


def bench_marching_cubes(n: int, rounds: int, device: str, modes):
    from skimage.measure import marching_cubes as sk_marching_cubes

    rows = []
    for case, volume in mc_fields(n).items():
        vol_np = volume.numpy()
        vol_dev = volume.to(device)
        faces = marching_cubes(vol_dev).faces_packed().shape[0]
        for label, cpus in modes:
            pinned(cpus)
            contenders = {
                "skimage lewiner": lambda: sk_marching_cubes(vol_np, 0.0),
                "skimage lorensen": lambda: sk_marching_cubes(vol_np, 0.0, method="lorensen"),
            }
            if device == "cpu":
                contenders["geo4g numba"] = lambda: marching_cubes(vol_dev, method="numba")
            if device != "cpu" or label == "1 thread":
                contenders["geo4g reference (torch)"] = lambda: marching_cubes(vol_dev, method="reference")
            med = measure(contenders, rounds)
            geo4g_names = [k for k in med if k.startswith("geo4g")]
            for g in geo4g_names:
                for peer in ("skimage lewiner", "skimage lorensen"):
                    rows.append({"op": f"marching cubes {n}^3", "case": case, "threads": label,
                                 "geo4g path": g.replace("geo4g ", "") + ("" if device == "cpu" else f" ({device})"),
                                 "geo4g ms": med[g] * 1e3, "peer": peer, "peer ms": med[peer] * 1e3,
                                 "peer / geo4g": med[peer] / med[g], "agreement": f"{faces} faces"})
                    print(rows[-1], flush=True)
    return rows


def bench_sdf(n: int, rounds: int, device: str, modes, trimesh_points: int):
    rows = []
    for name in ("chair", "mug", "airplane"):
        verts, faces = shape_mesh(name)
        meshes = Meshes([verts.to(device)], [faces.to(device)])
        bounds = torch.tensor([[-0.6] * 3, [0.6] * 3], dtype=torch.float64)
        grid = sdf_grid(meshes, n, bounds=bounds.to(device))[0].cpu()
        centres = (bounds[0] + (torch.stack(torch.meshgrid(*[torch.arange(n)] * 3, indexing="ij"), -1) + 0.5)
                   * (bounds[1] - bounds[0]) / n).reshape(-1, 3)
        subset = torch.randperm(centres.shape[0], generator=torch.Generator().manual_seed(0))[:trimesh_points]
        peers = _sdf_peers(verts.numpy(), faces.numpy(), centres.numpy(), subset.numpy())
        agreement = {peer: _agreement(grid.reshape(-1), centres, verts[faces], *result())
                     for peer, (_, result) in peers.items()}
        for label, cpus in modes:
            pinned(cpus)
            contenders = {"geo4g": lambda: sdf_grid(meshes, n, bounds=bounds.to(device))}
            contenders.update({peer: fn for peer, (fn, _) in peers.items()})
            med = measure(contenders, rounds)
            for peer in peers:
                queries = trimesh_points if peer == "trimesh" else n ** 3
                peer_rate = queries / med[peer]
                geo4g_rate = n ** 3 / med["geo4g"]
                rows.append({"op": f"sdf_grid {n}^3", "case": f"{name} ({faces.shape[0]} faces)", "threads": label,
                             "geo4g path": ("numba" if device == "cpu" else f"reference ({device})"),
                             "geo4g ms": med["geo4g"] * 1e3, "peer": peer + (f" ({queries} points)" if peer == "trimesh"
                                                                              else ""),
                             "peer ms": med[peer] * 1e3 * (n ** 3 / queries), "peer / geo4g": geo4g_rate / peer_rate,
                             "agreement": agreement[peer]})
                print(rows[-1], flush=True)
    return rows


def _sdf_peers(verts, faces, centres, subset):
    """peer -> (timed callable, callable giving (indices, unsigned distances, inside))."""
    peers = {}
    try:
        import open3d as o3d

        v32, f32, c32 = verts.astype(np.float32), faces.astype(np.uint32), centres.astype(np.float32)

        def o3d_sdf():
            scene = o3d.t.geometry.RaycastingScene()
            scene.add_triangles(o3d.core.Tensor(v32), o3d.core.Tensor(f32))
            return scene.compute_signed_distance(o3d.core.Tensor(c32)).numpy()

        def o3d_result():
            d = o3d_sdf()
            return np.arange(len(d)), np.abs(d), d < 0

        peers["open3d RaycastingScene"] = (o3d_sdf, o3d_result)
    except ImportError:
        pass
    try:
        import trimesh

        importlib.import_module("rtree")  # trimesh's closest-point query needs it

        mesh = trimesh.Trimesh(verts, faces, process=False)
        points = centres[subset]

        def trimesh_sdf():
            mesh._cache.clear()  # its triangle tree is part of the work
            return trimesh.proximity.signed_distance(mesh, points)

        def trimesh_result():
            d = trimesh_sdf()  # positive inside
            return subset, np.abs(d), d > 0

        peers["trimesh"] = (trimesh_sdf, trimesh_result)
    except ImportError:
        pass
    return peers


def _agreement(grid, centres, tris, index, unsigned, inside):
    """Largest difference of unsigned distances, share of equal inside/outside status, and the exact
    winding numbers (torch reference) at the voxels where the status differs."""
    index = torch.from_numpy(np.asarray(index))
    ours = grid[index].double()
    diff = float((ours.abs() - torch.from_numpy(np.asarray(unsigned, dtype=np.float64))).abs().max())
    differ = (ours < 0) != torch.from_numpy(np.asarray(inside))
    text = f"unsigned distances within {diff:.1e}, same sign {100 * (1 - float(differ.double().mean())):.2f}%"
    if bool(differ.any()):
        _, _, winding = sdf_module._reference(centres[index[differ]], tris)
        values, counts = winding.round().long().unique(return_counts=True)
        text += " (elsewhere exact winding " + ", ".join(f"{v}: {c}x" for v, c in zip(values.tolist(), counts.tolist()))
        text += ")"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small grids and 2 rounds: a smoke run")
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--mc-resolution", type=int, default=128)
    parser.add_argument("--sdf-resolution", type=int, default=64)
    parser.add_argument("--trimesh-points", type=int, default=4096)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--out-dir", type=Path, default=harness.RESULTS)
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.mc_resolution, args.sdf_resolution, args.trimesh_points = 2, 32, 16, 256
    harness.RESULTS = args.out_dir
    modes = thread_modes() if args.device == "cpu" else [("GPU", None)]
    original = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    load_before = os.getloadavg()[0]
    try:
        rows = bench_marching_cubes(args.mc_resolution, args.rounds, args.device, modes)
        rows += bench_sdf(args.sdf_resolution, args.rounds, args.device, modes, args.trimesh_points)
    finally:
        if original is not None:
            os.sched_setaffinity(0, original)
    load_after = os.getloadavg()[0]
    name = "marching_cubes" if args.device == "cpu" else f"marching_cubes_{args.device}"
    command = "python benchmarks/bench_marching_cubes.py" + (" --quick" if args.quick else "") + (
        "" if args.device == "cpu" else f" --device {args.device}")
    write_results(name, f"Marching cubes and signed distance grids on {args.device}: geo4g.voxels against "
                        "installed peers (median ms)", rows,
                  ["op", "case", "threads", "geo4g path", "geo4g ms", "peer", "peer ms", "peer / geo4g", "agreement"],
                  command,
                  notes=f"Ratios are peer time / geo4g time: above 1, geo4g is faster. Median of {args.rounds} "
                        "interleaved rounds. geo4g is timed through the public call (input checks, the Meshes "
                        "built, float64 distances); scikit-image returns numpy arrays. trimesh runs on "
                        f"{args.trimesh_points} random voxel centres; its 'peer ms' is scaled to the whole grid "
                        "(per-point rate). Open3D's time includes its scene build, geo4g's its BVH build. "
                        f"Level 0; winding-number threshold 0.5. Load average (1 min) before/after: "
                        f"{load_before:.1f} / {load_after:.1f} on {os.cpu_count()} CPUs.")


if __name__ == "__main__":
    main()
