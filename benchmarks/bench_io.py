"""Mesh and point-cloud file loading: geo4g.io side by side with trimesh, Open3D and NumPy.

    python benchmarks/bench_io.py [--subdivisions 7] [--repeat 3]

Writes benchmarks/results/io.md and io.json. A ratio above 1 means geo4g is faster.
The test mesh is an icosphere (subdivision 7: 163,842 vertices, 327,680 faces)
written by geo4g itself; the real meshes come from ../shared/data/common3d when present.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import time_call, write_results  # noqa: E402

from geo4g.io import load_mesh, load_pointcloud, save_mesh, save_pointcloud  # noqa: E402
from geo4g.parametric import icosphere  # noqa: E402

COMMON3D = Path(__file__).resolve().parents[2] / "shared" / "data" / "common3d"


def peers():
    found = {}
    try:
        import trimesh

        found["trimesh"] = lambda p: trimesh.load(p, process=False, force="mesh")
    except ImportError:
        pass
    try:
        import open3d as o3d

        found["open3d"] = lambda p: o3d.io.read_triangle_mesh(str(p))
    except ImportError:
        pass
    return found


def cloud_peers():
    found = {"numpy.loadtxt": lambda p: np.loadtxt(p)}
    try:
        import open3d as o3d

        found["open3d"] = lambda p: o3d.io.read_point_cloud(str(p))
    except ImportError:
        pass
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subdivisions", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = []
    mesh_peers = peers()
    with tempfile.TemporaryDirectory() as tmp:
        verts, faces = icosphere(args.subdivisions)
        files = []
        for ext in ("obj", "off", "ply", "stl"):
            path = Path(tmp) / f"icosphere.{ext}"
            save_mesh(path, verts, faces)
            files.append((f"icosphere {verts.shape[0]} v", path))
        for name in ("stanford-bunny.obj", "nefertiti.obj", "igea.ply"):
            if (COMMON3D / name).exists():
                files.append((name, COMMON3D / name))
        for label, path in files:
            ours = time_call(lambda: load_mesh(path), repeat=args.repeat)["median"]
            row = {"file": label, "format": path.suffix[1:], "geo4g s": ours}
            for peer, fn in mesh_peers.items():
                if peer == "open3d" and path.suffix == ".off":
                    continue  # open3d's OFF reader is not comparable (no ModelNet header support)
                t = time_call(lambda: fn(path), repeat=args.repeat)["median"]
                row[f"{peer} s"] = t
                row[f"{peer} / geo4g"] = t / ours
            rows.append(row)
            print(row, flush=True)

        g = torch.Generator().manual_seed(0)
        points = torch.randn(200_000, 3, generator=g)
        normals = torch.nn.functional.normalize(torch.randn(200_000, 3, generator=g), dim=1)
        for ext in ("ply", "xyz"):
            path = Path(tmp) / f"cloud.{ext}"
            save_pointcloud(path, points, normals=normals)
            ours = time_call(lambda: load_pointcloud(path), repeat=args.repeat)["median"]
            row = {"file": "200k points + normals", "format": ext, "geo4g s": ours}
            for peer, fn in cloud_peers().items():
                if peer == "numpy.loadtxt" and ext != "xyz":
                    continue
                t = time_call(lambda: fn(path), repeat=args.repeat)["median"]
                row[f"{peer} s"] = t
                row[f"{peer} / geo4g"] = t / ours
            rows.append(row)
            print(row, flush=True)

    columns = ["file", "format", "geo4g s"]
    for peer in [*mesh_peers, *cloud_peers()]:
        columns += [f"{peer} s", f"{peer} / geo4g"]
    write_results("io", "Loading files: geo4g.io against installed peers (median seconds)", rows,
                  list(dict.fromkeys(columns)), "python benchmarks/bench_io.py",
                  notes="Ratios are peer time / geo4g time: above 1, geo4g is faster. Not like for like: "
                        "igea.ply holds triangle strips, which trimesh and Open3D do not decode (they return no "
                        "faces); trimesh (process=False) and Open3D keep STL corners apart, geo4g merges them; "
                        "for .xyz all three parse with numpy.loadtxt's C parser or one of the same speed.")


if __name__ == "__main__":
    main()
