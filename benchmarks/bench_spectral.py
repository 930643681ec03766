"""Mesh Laplacians, eigenbases and geodesics: geo4g.meshes side by side with libigl, robust_laplacian,
trimesh and SciPy.

    python benchmarks/bench_spectral.py [--quick] [--rounds 3] [--out-dir benchmarks/results]

Writes spectral.md and spectral.json to ``--out-dir``. Ratios are peer time / geo4g time (above 1:
geo4g is faster). Every contender runs once per round, in turn, so a load spike on a shared machine
hits all of them alike; the tables give the median over the rounds. One torch thread, and one
BLAS thread (``OPENBLAS_NUM_THREADS=1`` unless set: on a loaded machine ARPACK's threaded BLAS calls
ran 13x slower than on one thread, for every contender alike).

Meshes: a subdivided icosahedron (unit sphere) and a procedural torus, each in a 10k and a 40k
vertex version (``--quick``: about 650 vertices).

- assembly: the cotangent stiffness matrix and the lumped mass matrix (geo4g, float64 torch sparse)
  against ``igl.cotmatrix`` + ``igl.massmatrix`` (barycentric) and ``robust_laplacian.mesh_laplacian``
  (which also flips edges to the intrinsic Delaunay triangulation); the uniform graph Laplacian
  against ``trimesh.smoothing.laplacian_calculation`` (row-normalised, a different but equally sized job);
- eigenpairs: ``laplacian_eigenpairs(k, cache=False)`` (assembly, shift-invert Lanczos on a
  nested-dissection factorisation, Rayleigh-Ritz) against libigl's matrices + ``scipy.sparse.linalg.eigsh``
  with the same shift (SuperLU's default ordering), k = 50 and 100; "eig rel diff" is the largest
  relative difference of the eigenvalues (nonzero ones);
- geodesics from one source vertex: ``HeatGeodesics`` (factorisations, then a solve) against
  ``igl.heat_geodesics_precompute`` / ``heat_geodesics_solve`` (t = mean edge length^2 for both) and
  SciPy's Dijkstra along the edges (``scipy.sparse.csgraph.dijkstra``, exact edge-path distances);
  accuracy as the mean and max relative error against the exact distance (great circles on the
  sphere; ``igl.exact_geodesic`` on the 10k torus; on the 40k torus the exact solver is too slow
  and the accuracy columns are left empty) over vertices farther than 0.1 (sphere) / 0.05 (torus).
"""
from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from harness import time_call  # noqa: E402

from geo4g.meshes.geodesic import HeatGeodesics  # noqa: E402
from geo4g.meshes.laplacian_matrices import mass_matrix, stiffness_matrix  # noqa: E402
from geo4g.meshes.spectral import laplacian_eigenpairs  # noqa: E402
from geo4g.parametric import icosphere, torus_mesh  # noqa: E402


def meshes(quick: bool):
    """name -> (verts float64, faces long)."""
    if quick:
        specs = [("icosphere-642", lambda: icosphere(3, dtype=torch.float64)),
                 ("torus-640", lambda: torus_mesh(1.0, 0.3, 32, 20, dtype=torch.float64))]
    else:
        specs = [("icosphere-10k", lambda: icosphere(5, dtype=torch.float64)),
                 ("torus-10k", lambda: torus_mesh(1.0, 0.3, 160, 64, dtype=torch.float64)),
                 ("icosphere-41k", lambda: icosphere(6, dtype=torch.float64)),
                 ("torus-41k", lambda: torus_mesh(1.0, 0.3, 320, 128, dtype=torch.float64))]
    return {name: tuple(x.contiguous() for x in make()) for name, make in specs}


def measure(contenders, rounds: int, warmup: bool = True):
    """Median seconds of each contender over ``rounds`` interleaved rounds."""
    if warmup:
        for fn in contenders.values():
            fn()
    times = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            times[name].append(time_call(fn, repeat=1, warmup=0)["median"])
    return {name: statistics.median(t) for name, t in times.items()}


def row(op, mesh, verts, med, **extra):
    out = {"op": op, "mesh": mesh, "verts": verts, "geo4g ms": med["geo4g"] * 1e3}
    for peer, t in med.items():
        if peer != "geo4g":
            out[f"{peer} ms"] = t * 1e3
            out[f"{peer} / geo4g"] = t / med["geo4g"]
    out.update(extra)
    print(out, flush=True)
    return out


def optional(name):
    try:
        return __import__(name)
    except ImportError:
        return None


def assembly_rows(all_meshes, rounds):
    igl, rl, trimesh = optional("igl"), optional("robust_laplacian"), optional("trimesh")
    rows = []
    for name, (v, f) in all_meshes.items():
        vn, fn = v.numpy(), f.numpy()
        contenders = {"geo4g": lambda: (stiffness_matrix(v, f), mass_matrix(v, f))}
        if igl is not None:
            barycentric = igl.MASSMATRIX_TYPE_BARYCENTRIC
            contenders["libigl"] = lambda: (igl.cotmatrix(vn, fn), igl.massmatrix(vn, fn, barycentric))
        if rl is not None:
            contenders["robust_laplacian"] = lambda: rl.mesh_laplacian(vn, fn)
        rows.append(row("cot L + lumped M", name, v.shape[0], measure(contenders, rounds)))
        if trimesh is not None:
            # A new Trimesh per call: it caches the vertex neighbours the Laplacian is built from.
            uniform = {"geo4g": lambda: stiffness_matrix(v, f, kind="uniform"),
                       "trimesh": lambda: trimesh.smoothing.laplacian_calculation(
                           trimesh.Trimesh(vn, fn, process=False), equal_weight=True)}
            rows.append(row("uniform L", name, v.shape[0], measure(uniform, rounds)))
    return rows


def eigen_rows(all_meshes, ks, rounds):
    import scipy.sparse.linalg as sla

    igl = optional("igl")
    rows = []
    for name, (v, f) in all_meshes.items():
        for k in ks:
            if k >= v.shape[0] - 1:
                continue
            found = {}

            def ours():
                found["geo4g"] = laplacian_eigenpairs(v, f, k=k, method="eigsh", cache=False).evals.numpy()

            contenders = {"geo4g": ours}
            if igl is not None:
                vn, fn = v.numpy(), f.numpy()

                def peer():
                    L = -igl.cotmatrix(vn, fn)
                    M = igl.massmatrix(vn, fn, igl.MASSMATRIX_TYPE_BARYCENTRIC)
                    found["peer"] = sla.eigsh(L.tocsc(), k=k, M=M.tocsc(), sigma=-1e-8, which="LM")[0]

                contenders["libigl + scipy eigsh"] = peer
            med = measure(contenders, rounds, warmup=False)
            extra = {}
            if "peer" in found:
                a, b = np.sort(found["geo4g"])[1:], np.sort(found["peer"])[1:]
                extra["eig rel diff"] = float(np.max(np.abs(a - b) / np.abs(b)))
            rows.append(row(f"eigenpairs k={k}", name, v.shape[0], med, **extra))
    return rows


def exact_distances(name, v, f, source, igl):
    if name.startswith("icosphere"):
        return torch.arccos((v @ v[source]).clamp(-1, 1)).numpy(), 0.1
    if igl is None or v.shape[0] > 20000:
        return None, 0.05
    d = igl.exact_geodesic(v.numpy(), f.numpy(), np.array([source]), np.array([], dtype=np.int64),
                           np.arange(v.shape[0]), np.array([], dtype=np.int64))
    return np.asarray(d), 0.05


def errors(d, exact, floor):
    if exact is None:
        return {}
    d = np.asarray(d, dtype=np.float64)
    far = exact > floor
    rel = np.abs(d[far] - exact[far]) / exact[far]
    return {"mean rel err": float(rel.mean()), "max rel err": float(rel.max())}


def geodesic_rows(all_meshes, rounds):
    import scipy.sparse as sp
    from scipy.sparse.csgraph import dijkstra

    igl = optional("igl")
    rows = []
    source = 0
    for name, (v, f) in all_meshes.items():
        vn, fn = v.numpy(), f.numpy()
        exact, floor = exact_distances(name, v, f, source, igl)
        h = float((v[f[:, [1, 2, 0]]] - v[f]).norm(dim=-1).mean())
        e = np.concatenate([fn[:, [0, 1]], fn[:, [1, 2]], fn[:, [2, 0]]])
        graph = sp.coo_matrix((np.linalg.norm(vn[e[:, 0]] - vn[e[:, 1]], axis=1), (e[:, 0], e[:, 1])),
                              shape=(v.shape[0],) * 2).tocsr()
        graph = graph.maximum(graph.T)
        state = {}
        pre = {"geo4g": lambda: state.__setitem__("ours", HeatGeodesics(v, f))}
        if igl is not None:
            def igl_pre():
                data = igl.HeatGeodesicsData()
                igl.heat_geodesics_precompute(vn, fn, h * h, data)
                state["igl"] = data

            pre["libigl heat"] = igl_pre
        rows.append(row("heat geodesics: precompute", name, v.shape[0], measure(pre, rounds)))
        solve = {"geo4g": lambda: state.__setitem__("d_ours", state["ours"](source))}
        if igl is not None:
            solve["libigl heat"] = lambda: state.__setitem__("d_igl", igl.heat_geodesics_solve(state["igl"],
                                                                                             np.array([source])))
        solve["scipy dijkstra"] = lambda: state.__setitem__("d_dij", dijkstra(graph, indices=source))
        med = measure(solve, rounds)
        extra = {f"geo4g {k}": x for k, x in errors(state["d_ours"].numpy(), exact, floor).items()}
        if "d_igl" in state:
            extra.update({f"libigl {k}": x for k, x in errors(state["d_igl"], exact, floor).items()})
        extra.update({f"dijkstra {k}": x for k, x in errors(state["d_dij"], exact, floor).items()})
        rows.append(row("heat geodesics: one source", name, v.shape[0], med, **extra))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny meshes, one round: a smoke run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out-dir", type=Path, default=harness.RESULTS, help="where the results files go")
    args = parser.parse_args()
    harness.RESULTS = args.out_dir
    torch.set_num_threads(1)
    rounds = 1 if args.quick else args.rounds
    all_meshes = meshes(args.quick)
    load_before = os.getloadavg()[0]
    ks = (10, 20) if args.quick else (50, 100)
    eigen_meshes = all_meshes if args.quick else {k: m for k, m in all_meshes.items() if m[0].shape[0] < 20000}
    sections = [("Assembly", assembly_rows(all_meshes, rounds)),
                ("Eigenpairs", eigen_rows(eigen_meshes, ks, rounds)),
                ("Heat geodesics", geodesic_rows(all_meshes, rounds))]
    load_after = os.getloadavg()[0]
    command = "python benchmarks/bench_spectral.py" + (" --quick" if args.quick else "")
    notes = (f"Ratios are peer time / geo4g time: above 1, geo4g is faster. Median of {rounds} interleaved "
             f"rounds; one torch thread, OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}. "
             f"Load average (1 min) before/after: {load_before:.1f} / {load_after:.1f} on {os.cpu_count()} CPUs.")
    write_sections(command, notes, sections)


SECTION_NOTES = {
    "Eigenpairs": "Eigenpairs only on the 10k meshes (each call takes seconds). Where k cuts through a "
                  "cluster of equal eigenvalues (the sphere's 2l + 1 harmonics) the two solvers may return "
                  "different members of the cluster, which differ in the 4th digit.",
    "Heat geodesics": "Relative errors over vertices farther than 0.1 (sphere) / 0.05 (torus) from the source. "
                      "Precompute: geo4g assembles L, M, the gradient and divergence operators and factorises "
                      "both systems; libigl likewise.",
}


def write_sections(command: str, notes: str, sections) -> None:
    """``spectral.md``: one table per section (columns: those its rows have); ``spectral.json``: all rows."""
    import json

    harness.RESULTS.mkdir(parents=True, exist_ok=True)
    lines = ["# Mesh Laplacians, eigenpairs and heat geodesics: geo4g.meshes against installed peers (median ms)",
             "", f"Command: `{command}`  ", f"Machine: {harness.machine()}", "", notes, ""]
    for title, rows in sections:
        columns = []
        for r in rows:
            columns += [c for c in r if c not in columns]
        lines += [f"## {title}", ""]
        if title in SECTION_NOTES:
            lines += [SECTION_NOTES[title], ""]
        lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(harness._fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
        lines.append("")
    (harness.RESULTS / "spectral.md").write_text("\n".join(lines))
    payload = {"machine": harness.machine(), "command": command,
               "rows": [dict(r, section=title) for title, rows in sections for r in rows]}
    (harness.RESULTS / "spectral.json").write_text(json.dumps(payload, indent=1))

if __name__ == "__main__":
    main()
