"""Surface parameterisation: distortion and speed of geo4g.meshes.parameterize, side by side with libigl.

    python benchmarks/bench_parameterize.py [--quick] [--rounds 7] [--out-dir benchmarks/results]

Writes benchmarks/results/parameterize.md and parameterize.json.

Disk-like patches (Tutte with uniform, mean-value and cotangent weights on the unit circle, and
LSCM): a hemisphere cut from an icosphere, 270 degrees of a cylinder (developable), a Gaussian bump
over a square grid, and the largest part of two procedural shapes (``bottle``, ``lamp``) with the
faces around its highest-valence vertex removed, which opens it to a disk. Procedural shapes are
unions of several disjoint closed genus-0 parts (Euler characteristic 2 per part), so each part is
a sphere-like mesh; their triangles are long and thin, a hard case.

Closed genus-0 meshes (the flat-torus map, cot / mean-value / uniform weights, cones by
``choose_cones``): an icosphere, a capsule of revolution and the largest part of the procedural
``bottle`` and ``rocket``; the time includes cone choice, cut and solve, and the torus image
rasterisation (``surface_to_torus_image`` at 256 x 256, first call, no cache) is timed apart.

Distortion per map: conformal distortion ``sigma_1 / sigma_2`` of each face's Jacobian (mean and
max; 1 is conformal), mean absolute angle error in degrees, mean ``|log2|`` of the area distortion
(0: areas kept) and the number of flipped faces. Peers, where installed: ``igl.harmonic`` (``k=1``,
the boundary on the circle from ``igl.map_vertices_to_circle``, loop from ``igl.boundary_loop``) for
Tutte with cotangent weights, ``igl.lscm`` with geo4g's pinned vertices (pins chosen outside the
timing, passed to both) for LSCM; "max |uv diff|" compares their uv with geo4g's. geo4g's times include its input
and topology checks. Times: median over ``--rounds`` interleaved rounds, one torch thread.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import statistics
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from harness import time_call, write_results  # noqa: E402

from geo4g.meshes.parameterize import (  # noqa: E402
    angle_distortion,
    area_distortion,
    boundary_loops,
    flat_torus_parameterization,
    flipped_faces,
    lscm,
    surface_to_torus_image,
    tutte_embedding,
)
from geo4g.parametric.primitives import icosphere, revolve_mesh  # noqa: E402
from geo4g.parametric.programs import get_program  # noqa: E402

COLUMNS = ["mesh", "V", "F", "method", "mean conformal", "max conformal", "mean angle error (deg)",
           "mean |log2 area|", "flips", "geo4g ms", "peer", "peer ms", "peer / geo4g", "max |uv diff|"]


# --------------------------------------------------------------------------- meshes
def submesh(verts, faces, keep):
    faces = faces[keep]
    used = torch.unique(faces)
    remap = torch.full((verts.shape[0],), -1, dtype=torch.long)
    remap[used] = torch.arange(used.numel())
    return verts[used], remap[faces]


def grid(n):
    x, y = torch.meshgrid(torch.linspace(-1, 1, n, dtype=torch.float64),
                          torch.linspace(-1, 1, n, dtype=torch.float64), indexing="xy")
    i, j = torch.meshgrid(torch.arange(n - 1), torch.arange(n - 1), indexing="xy")
    a = (j * n + i).reshape(-1)
    faces = torch.cat([torch.stack([a, a + 1, a + n + 1], 1), torch.stack([a, a + n + 1, a + n], 1)])
    return x.reshape(-1), y.reshape(-1), faces


def hemisphere(sub):
    v, f = icosphere(sub, dtype=torch.float64)
    return submesh(v, f, v[f].mean(1)[:, 2] > 0)


def cylinder_side(n):
    x, y, faces = grid(n)
    angle = (x + 1) * 0.75 * math.pi
    return torch.stack([angle.cos(), angle.sin(), y], 1), faces


def bump(n):
    x, y, faces = grid(n)
    return torch.stack([x, y, 0.8 * torch.exp(-(x * x + y * y) / 0.3)], 1), faces


def capsule(segments, rings):
    t = np.linspace(0, np.pi / 2, rings + 1)[1:]
    bottom = [(0.4 * np.sin(a), -0.6 - 0.4 * np.cos(a)) for a in t]
    top = [(0.4 * np.cos(a), 0.6 + 0.4 * np.sin(a)) for a in np.concatenate([[0.0], t[:-1]])]
    return revolve_mesh([(0.0, -1.0)] + bottom + top + [(0.0, 1.0)], segments, dtype=torch.float64)


def largest_part(name):
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    sample = get_program(name).sample(torch.Generator().manual_seed(0))
    verts, faces = sample.verts.double(), sample.faces
    f = faces.numpy()
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]]])
    n = verts.shape[0]
    label = connected_components(coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n, n)), directed=False)[1]
    face_label = label[f[:, 0]]
    return submesh(verts, faces, torch.from_numpy(face_label == np.bincount(face_label).argmax()))


def opened_part(name):
    """The largest part with the faces around its highest-valence vertex removed: a disk."""
    verts, faces = largest_part(name)
    hub = int(torch.bincount(faces.reshape(-1)).argmax())
    return submesh(verts, faces, ~(faces == hub).any(1))


def disk_meshes(quick):
    if quick:
        return [("hemisphere", hemisphere(2)), ("cylinder 270 deg", cylinder_side(8))]
    return [("hemisphere", hemisphere(5)), ("cylinder 270 deg", cylinder_side(70)), ("bump", bump(70)),
            ("procedural bottle part, opened", opened_part("bottle")),
            ("procedural lamp part, opened", opened_part("lamp"))]


def closed_meshes(quick):
    if quick:
        return [("icosphere", icosphere(1, dtype=torch.float64))]
    return [("icosphere", icosphere(5, dtype=torch.float64)), ("capsule", capsule(64, 16)),
            ("procedural bottle part", largest_part("bottle")), ("procedural rocket part", largest_part("rocket"))]


# --------------------------------------------------------------------------- measuring
def measure(contenders, rounds):
    """Median seconds of each contender over ``rounds`` interleaved rounds (after one warm-up call each)."""
    for fn in contenders.values():
        fn()
    times = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            times[name].append(time_call(fn, repeat=1, warmup=0)["median"])
    return {name: statistics.median(t) for name, t in times.items()}


def distortion_row(mesh, verts, faces, uv, method):
    d = angle_distortion(verts, faces, uv)
    area = area_distortion(verts, faces, uv)
    finite = torch.isfinite(d.conformal)
    return {"mesh": mesh, "V": verts.shape[0], "F": faces.shape[0], "method": method,
            "mean conformal": float(d.conformal[finite].mean()), "max conformal": float(d.conformal.max()),
            "mean angle error (deg)": float(d.angle_error.mean()),
            "mean |log2 area|": float(area.log2().abs().mean()), "flips": int(flipped_faces(faces, uv).sum())}


def igl_module():
    try:
        import igl
    except ImportError:
        return None
    return igl


def igl_version(igl) -> str:
    if igl is None:
        return "not installed"
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"libigl {version('libigl')}"
    except PackageNotFoundError:
        return "libigl (version unknown)"


def disk_rows(name, verts, faces, rounds, igl):
    rows = []
    loop = boundary_loops(faces)[0]
    for weights in ("uniform", "mean_value", "cot"):
        uv = tutte_embedding(verts, faces, weights=weights)
        row = distortion_row(name, verts, faces, uv, f"Tutte {weights}")
        contenders = {"geo4g": lambda w=weights: tutte_embedding(verts, faces, weights=w)}
        if weights == "cot" and igl is not None:
            v, f = verts.numpy(), faces.numpy()

            def igl_harmonic():
                bnd = igl.boundary_loop(f)
                return igl.harmonic(v, f, bnd, igl.map_vertices_to_circle(v, bnd.astype(np.int32)), 1), bnd

            contenders["igl.harmonic"] = igl_harmonic
            theirs, bnd = igl_harmonic()
            # igl starts its circle at its own loop start: compare after matching rotations.
            mine = tutte_embedding(verts, faces, weights="cot").numpy()
            start = int(np.flatnonzero(loop.numpy() == bnd[0])[0])
            first = mine[loop.numpy()[start]]
            turn = math.atan2(first[1], first[0])
            rot = np.array([[math.cos(turn), -math.sin(turn)], [math.sin(turn), math.cos(turn)]])
            row["max |uv diff|"] = float(np.abs(theirs @ rot.T - mine).max())
        rows.append(_timed(row, contenders, rounds))
    d = torch.cdist(verts[loop], verts[loop])
    i, j = divmod(int(d.argmax()), loop.numel())
    pinned = loop[[i, j]]
    uv = lscm(verts, faces, pinned=pinned)
    row = distortion_row(name, verts, faces, uv, "LSCM")
    contenders = {"geo4g": lambda: lscm(verts, faces, pinned=pinned)}
    if igl is not None:
        pins, pin_uv = pinned.numpy(), uv[pinned].numpy()
        v, f = verts.numpy(), faces.numpy()
        contenders["igl.lscm"] = lambda: igl.lscm(v, f, pins, pin_uv)
        row["max |uv diff|"] = float(np.abs(igl.lscm(v, f, pins, pin_uv)[0] - uv.numpy()).max())
    rows.append(_timed(row, contenders, rounds))
    return rows


def torus_rows(name, verts, faces, rounds):
    rows = []
    for weights in ("cot", "mean_value", "uniform"):
        m = flat_torus_parameterization(verts, faces, weights=weights)
        row = distortion_row(name, verts[m.vertex_map], m.faces, m.uv, f"flat torus {weights}")
        row.update({"V": verts.shape[0], "F": faces.shape[0]})
        rows.append(_timed(row, {"geo4g": lambda w=weights: flat_torus_parameterization(verts, faces, weights=w)},
                           rounds))
    m = flat_torus_parameterization(verts, faces)
    # A fresh copy of the map each call, so the raster cache does not hide the rasterisation.
    raster = measure({"geo4g": lambda: surface_to_torus_image(dataclasses.replace(m), verts, 256)}, rounds)["geo4g"]
    rows.append({"mesh": name, "V": verts.shape[0], "F": faces.shape[0],
                 "method": "torus image 256x256 (3 channels)", "geo4g ms": raster * 1e3})
    return rows


def _timed(row, contenders, rounds):
    med = measure(contenders, rounds)
    row["geo4g ms"] = med.pop("geo4g") * 1e3
    for peer, t in med.items():
        row.update({"peer": peer, "peer ms": t * 1e3, "peer / geo4g": t * 1e3 / row["geo4g ms"]})
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny meshes, one round: a smoke run")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out-dir", type=Path, default=harness.RESULTS, help="where the results files go")
    args = parser.parse_args()
    harness.RESULTS = args.out_dir  # write_results writes there
    torch.set_num_threads(1)
    rounds = 1 if args.quick else args.rounds
    igl = igl_module()
    load_before = os.getloadavg()[0]
    rows = []
    for name, (verts, faces) in disk_meshes(args.quick):
        rows += disk_rows(name, verts, faces, rounds, igl)
        for row in rows[-4:]:
            print(row, flush=True)
    for name, (verts, faces) in closed_meshes(args.quick):
        rows += torus_rows(name, verts, faces, rounds)
        for row in rows[-4:]:
            print(row, flush=True)
    load_after = os.getloadavg()[0]
    command = "python benchmarks/bench_parameterize.py" + (" --quick" if args.quick else "")
    path = write_results(
        "parameterize", "Surface parameterisation: distortion, and time against libigl (median ms)", rows, COLUMNS,
        command,
        notes="Conformal distortion: sigma_1 / sigma_2 per face (1 = conformal; the mean skips faces of zero "
              "uv area). Angle error: mean |3-D angle - uv angle| per corner. Area: mean |log2| of each face's "
              "share of the uv area over its share of the 3-D area. Flat-torus rows measure the cut mesh's uv "
              "(one copy of the surface). Ratios are peer time / geo4g time: above 1, geo4g is faster. "
              f"igl: {igl_version(igl)}. "
              f"Median of {rounds} interleaved round(s), one torch thread. Load average (1 min) before/after: "
              f"{load_before:.1f} / {load_after:.1f} on {os.cpu_count()} CPUs.")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
