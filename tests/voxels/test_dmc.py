"""Deep Marching Cubes: topology distributions, point-to-triangle distance, the four losses against naive
twins written from the definitions (corner loops, cube geometry, Ericson's closest point), gradients in
float64, mesh extraction against the shared marching cubes, the model (ragged batches, overfitting a
sphere) and bad input."""
import importlib.util
import itertools
import math

import numpy as np
import pytest
import torch

from geo4g.losses import chamfer_distance
from geo4g.meshes import sample_points_from_meshes
from geo4g.structures import Pointclouds
from geo4g.voxels._mc_tables import CORNERS, EDGES, NUM_TRIANGLES, TRIANGLES
from geo4g.voxels.dmc import (DMC_LOSS_WEIGHTS, DeepMarchingCubes, DifferentiableMarchingCubes, DMCEncoder,
                              curvature_loss, dmc_loss, edge_vertices, expected_point_to_mesh_loss, extract_mesh,
                              shell_occupancy_loss, point_triangle_distance, smoothness_loss, topology_cases,
                              topology_probabilities)
from geo4g.voxels.marching_cubes import marching_cubes

SETS = ["singly_connected", "all"]
HAS_NUMBA = importlib.util.find_spec("numba") is not None
METHODS = ["reference"] + (["numba"] if HAS_NUMBA else [])


# --------------------------------------------------------------------------------------------
# Naive twins
# --------------------------------------------------------------------------------------------
def _closest_point(p, a, b, c):
    """Ericson, Real-Time Collision Detection 5.1.5: the closest point of triangle abc to p (float64 numpy)."""
    ab, ac, ap = b - a, c - a, p - a
    if np.linalg.norm(np.cross(ab, ac)) == 0:  # degenerate: the nearest of the three sides
        return min((_closest_on_segment(p, s, t) for s, t in ((a, b), (b, c), (c, a))),
                   key=lambda q: np.linalg.norm(p - q))
    d1, d2 = ab @ ap, ac @ ap
    if d1 <= 0 and d2 <= 0:
        return a
    bp = p - b
    d3, d4 = ab @ bp, ac @ bp
    if d3 >= 0 and d4 <= d3:
        return b
    vc = d1 * d4 - d3 * d2
    if vc <= 0 and d1 >= 0 and d3 <= 0:
        return a + d1 / (d1 - d3) * ab
    cp = p - c
    d5, d6 = ab @ cp, ac @ cp
    if d6 >= 0 and d5 <= d6:
        return c
    vb = d5 * d2 - d1 * d6
    if vb <= 0 and d2 >= 0 and d6 <= 0:
        return a + d2 / (d2 - d6) * ac
    va = d3 * d6 - d5 * d4
    if va <= 0 and d4 - d3 >= 0 and d5 - d6 >= 0:
        return b + (d4 - d3) / ((d4 - d3) + (d5 - d6)) * (c - b)
    denom = 1.0 / (va + vb + vc)
    return a + ab * vb * denom + ac * vc * denom


def _closest_on_segment(p, s, t):
    d = t - s
    if d @ d == 0:
        return s
    return s + np.clip((p - s) @ d / (d @ d), 0, 1) * d


def _naive_distance(p, tri):
    return float(np.linalg.norm(p - _closest_point(p, tri[0], tri[1], tri[2])))


def _naive_cases(topologies):
    if topologies == "all":
        return list(range(256))
    out = []
    for case in range(256):
        tris = [set(t) for t in TRIANGLES[case, :NUM_TRIANGLES[case]].tolist()]
        pieces = [{i} for i in range(len(tris))]
        merged = True
        while merged:  # union pieces until no two pieces have triangles sharing a side
            merged = False
            for x, y in itertools.combinations(range(len(pieces)), 2):
                if any(len(tris[i] & tris[j]) == 2 for i in pieces[x] for j in pieces[y]):
                    pieces[x] |= pieces.pop(y)
                    merged = True
                    break
        if len(tris) <= 4 and len(pieces) <= 1:
            out.append(case)
    return out


def _naive_probs(O, topologies):
    """``{(b, i, j, k): (K,) numpy}`` from the corner product, renormalised over the set."""
    O = O.detach().double().numpy()
    cases = _naive_cases(topologies)
    N = O.shape[1] - 1
    out = {}
    for b, i, j, k in itertools.product(range(O.shape[0]), range(N), range(N), range(N)):
        p = []
        for case in cases:
            value = 1.0
            for c, (x, y, z) in enumerate(CORNERS.tolist()):
                o = O[b, i + x, j + y, k + z]
                value *= o if (case >> c) & 1 else 1 - o
            p.append(value)
        p = np.array(p)
        out[b, i, j, k] = p / p.sum()
    return out, cases


def _naive_vertex(X, b, cell, edge):
    """The cell-frame position of the surface vertex on ``edge`` of ``cell``, from the definition."""
    c0, c1 = CORNERS[EDGES[edge, 0]], CORNERS[EDGES[edge, 1]]
    origin = np.minimum(c0, c1)
    axis = int(np.argmax(np.abs(c1 - c0)))
    g = np.array(cell) + origin
    v = origin.astype(float)
    v[axis] += float(X[b, axis, g[0], g[1], g[2]])
    return v


def _naive_point_to_mesh(O, X, points, lengths, topologies, bbox=(-0.5, 0.5), empty_penalty=10.0, free=1.0):
    probs, cases = _naive_probs(O, topologies)
    X = X.detach().double().numpy()
    B, N = O.shape[0], O.shape[1] - 1
    lo, hi = bbox
    h = (hi - lo) / N
    per_shape = []
    for b in range(B):
        pts = points[b, :lengths[b]].double().numpy()
        grid = (pts - lo) / h
        cell_of = np.clip(np.floor(grid), 0, N - 1).astype(int)
        total = 0.0
        for cell in itertools.product(range(N), range(N), range(N)):
            p = probs[(b, *cell)]
            inside = np.all(cell_of == np.array(cell), axis=1)
            if not inside.any():
                total += free * sum(p[k] for k, case in enumerate(cases) if NUM_TRIANGLES[case] > 0)
                continue
            local = grid[inside] - np.array(cell)
            verts = np.stack([_naive_vertex(X, b, cell, e) for e in range(12)])
            cost = np.zeros(len(cases))
            for k, case in enumerate(cases):
                tris = TRIANGLES[case, :NUM_TRIANGLES[case]]
                if len(tris):
                    cost[k] = np.mean([min(_naive_distance(q, verts[t]) for t in tris) for q in local])
            biggest = cost.max()
            for k, case in enumerate(cases):
                if NUM_TRIANGLES[case] == 0:
                    cost[k] = empty_penalty * biggest
            total += float(p @ cost)
        per_shape.append(total / N ** 3)
    return np.array(per_shape)


def _unit_np(v):
    n = np.linalg.norm(v)
    return v / n if n > 0 else v * 0


def _naive_curvature(O, X, topologies, keep=None):
    """Every pair of triangles meeting across a shared cell face (matched by their global grid edges) or
    sharing a side inside one topology, with its probability weight, from the cube's geometry."""
    probs, cases = _naive_probs(O, topologies)
    X = X.detach().double().numpy()
    B, N = O.shape[0], O.shape[1] - 1

    def entries(b, cell, axis, side):
        """(weight, normal, frozenset of global grid edges on the face) of each triangle touching the face."""
        verts = [_naive_vertex(X, b, cell, e) for e in range(12)]
        out = []
        for k, case in enumerate(cases):
            for tri in TRIANGLES[case, :NUM_TRIANGLES[case]]:
                normal = _unit_np(np.cross(verts[tri[1]] - verts[tri[0]], verts[tri[2]] - verts[tri[0]]))
                on_face = set()
                for e in tri:
                    c0, c1 = CORNERS[EDGES[e, 0]], CORNERS[EDGES[e, 1]]
                    if c0[axis] == side and c1[axis] == side:
                        g = np.array(cell) + np.minimum(c0, c1)
                        on_face.add((int(np.argmax(np.abs(c1 - c0))), *g.tolist()))
                if len(on_face) == 2:
                    out.append((probs[(b, *cell)][k], normal, frozenset(on_face)))
        return out

    keys = {}

    def arrays(b, cell, axis, side):
        found = entries(b, cell, axis, side)
        weight = np.array([w for w, _, _ in found])
        normal = np.array([n for _, n, _ in found]).reshape(-1, 3)
        key = np.array([keys.setdefault(f, len(keys)) for _, _, f in found])
        return weight, normal, key

    result = []
    for b in range(B):
        total = 0.0
        for cell in itertools.product(range(N), range(N), range(N)):
            if keep is not None and not keep[cell]:
                continue
            verts = [_naive_vertex(X, b, cell, e) for e in range(12)]
            p = probs[(b, *cell)]
            for k, case in enumerate(cases):
                tris = TRIANGLES[case, :NUM_TRIANGLES[case]].tolist()
                for s, t in itertools.combinations(range(len(tris)), 2):
                    if len(set(tris[s]) & set(tris[t])) == 2:
                        first, second = (np.stack([verts[e] for e in tris[i]]) for i in (s, t))
                        n1 = _unit_np(np.cross(first[1] - first[0], first[2] - first[0]))
                        n2 = _unit_np(np.cross(second[1] - second[0], second[2] - second[0]))
                        total += p[k] * np.sum((n1 - n2) ** 2)
            for axis in range(3):
                if cell[axis] == N - 1:
                    continue
                other = list(cell)
                other[axis] += 1
                if keep is not None and not keep[tuple(other)]:
                    continue
                w1, n1, k1 = arrays(b, cell, axis, 1)
                w2, n2, k2 = arrays(b, tuple(other), axis, 0)
                meet = k1[:, None] == k2[None, :]
                sq = ((n1[:, None] - n2[None]) ** 2).sum(-1)
                total += float((meet * w1[:, None] * w2[None] * sq).sum())
        result.append(total / N ** 3)
    return np.array(result)


def _grids(seed, B=2, N=2, dtype=torch.float64, low=0.05, high=0.95):
    g = torch.Generator().manual_seed(seed)
    O = low + (high - low) * torch.rand(B, N + 1, N + 1, N + 1, generator=g, dtype=dtype)
    X = 0.05 + 0.9 * torch.rand(B, 3, N + 1, N + 1, N + 1, generator=g, dtype=dtype)
    return O, X


def _sphere_grid(N, radius=0.3, bbox=(-0.5, 0.5)):
    """Occupancy ``clamp(0.5 + (r - |x|) / h, 0, 1)`` of a sphere at the grid points, and the displacements
    that put every crossed edge's vertex where the linear interpolation of it crosses 0.5."""
    lo, hi = bbox
    h = (hi - lo) / N
    ax = torch.linspace(lo, hi, N + 1, dtype=torch.float64)
    pts = torch.stack(torch.meshgrid(ax, ax, ax, indexing="ij"), dim=-1)
    O = (0.5 + (radius - pts.norm(dim=-1)) / h).clamp(0, 1)
    X = torch.full((3, N + 1, N + 1, N + 1), 0.5, dtype=torch.float64)
    for a in range(3):
        v0 = O.narrow(a, 0, N)
        v1 = O.narrow(a, 1, N)
        crossed = (v0 > 0.5) != (v1 > 0.5)
        t = ((0.5 - v0) / torch.where(crossed, v1 - v0, torch.ones_like(v0))).clamp(0, 1)
        X[a].narrow(a, 0, N).copy_(torch.where(crossed, t, torch.full_like(t, 0.5)))
    return O[None], X[None]


def _sphere_points(n, radius=0.3, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    p = torch.randn(n, 3, generator=g, dtype=dtype)
    return radius * p / p.norm(dim=1, keepdim=True)


# --------------------------------------------------------------------------------------------
# Topology sets and probabilities
# --------------------------------------------------------------------------------------------
def test_singly_connected_set_is_the_papers_140_topologies():
    cases = topology_cases()
    assert cases.numel() == 140 and cases.tolist() == _naive_cases("singly_connected")
    assert 0 in cases.tolist() and 255 in cases.tolist()
    assert (NUM_TRIANGLES[cases.numpy()] <= 4).all()
    assert topology_cases("all").tolist() == list(range(256))
    # every case with one occupied (or one free) corner and every case of two occupied corners on an edge is in
    for c in range(8):
        assert (1 << c) in cases.tolist() and 255 - (1 << c) in cases.tolist()
    for a, b in EDGES.tolist():
        assert (1 << a) | (1 << b) in cases.tolist()


@pytest.mark.parametrize("topologies", SETS)
def test_topology_probabilities_match_corner_product_and_sum_to_one(topologies, device):
    O, _ = _grids(0, B=2, N=2, low=0.0, high=1.0)
    O[0, 0, 0, 0], O[1, 1, 1, 1], O[1, 2, 2, 2] = 0.0, 1.0, 1.0  # exact 0/1 corners
    got = topology_probabilities(O.to(device), topologies).cpu()
    assert got.shape == (2, 2, 2, 2, 140 if topologies != "all" else 256)
    want, _ = _naive_probs(O, topologies)
    for key, value in want.items():
        torch.testing.assert_close(got[key], torch.from_numpy(value), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(got.sum(-1), torch.ones(2, 2, 2, 2, dtype=torch.float64))
    f32 = topology_probabilities(O.float().to(device), topologies).cpu()
    torch.testing.assert_close(f32.sum(-1), torch.ones(2, 2, 2, 2), atol=1e-5, rtol=0)


def test_topology_probabilities_certain_corners_pick_their_case():
    O = torch.zeros(1, 2, 2, 2, dtype=torch.float64)
    O[0, 1, 0, 0] = 1.0  # corner 1 only: case 2
    probs = topology_probabilities(O)
    cases = topology_cases()
    assert cases[probs[0, 0, 0, 0].argmax()].item() == 2 and probs.max().item() == 1.0


@pytest.mark.parametrize("topologies", SETS)
def test_topology_probabilities_gradcheck(topologies):
    O, _ = _grids(1, B=1, N=1)
    O.requires_grad_()
    assert torch.autograd.gradcheck(lambda o: topology_probabilities(o, topologies), (O,))


# --------------------------------------------------------------------------------------------
# Point-to-triangle distance
# --------------------------------------------------------------------------------------------
def _random_triangles(n, seed):
    g = torch.Generator().manual_seed(seed)
    tri = torch.randn(n, 3, 3, generator=g, dtype=torch.float64)
    tri[0, 2] = tri[0, 0] + 0.3 * (tri[0, 1] - tri[0, 0])  # collinear, third corner inside the side
    tri[1, 2] = tri[1, 0] + 2.0 * (tri[1, 1] - tri[1, 0])  # collinear, third corner beyond: longest side
    tri[2, 1] = tri[2, 0]  # two corners coincide
    tri[3, 1] = tri[3, 0]
    tri[3, 2] = tri[3, 0]  # a point
    tri[4] *= 1e-4  # tiny but valid
    tri[5] = tri[5] * 1e3
    return tri


def test_point_triangle_distance_matches_closest_point_brute_force(device):
    tri = _random_triangles(40, 0)
    g = torch.Generator().manual_seed(1)
    pts = torch.randn(40, 25, 3, generator=g, dtype=torch.float64) * 1.5
    pts[:, 0] = tri.mean(1)  # centroids: inside (distance 0 for non-degenerate triangles)
    pts[:, 1] = tri[:, 0]  # on a corner
    pts[:, 2] = 0.5 * (tri[:, 1] + tri[:, 2])  # on a side
    got = point_triangle_distance(pts.to(device), tri[:, None].to(device)).cpu()
    want = torch.tensor([[_naive_distance(p.numpy(), t.numpy()) for p in row] for row, t in zip(pts, tri)],
                        dtype=torch.float64)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)
    sq = point_triangle_distance(pts.to(device), tri[:, None].to(device), squared=True).cpu()
    torch.testing.assert_close(sq, want ** 2, rtol=1e-9, atol=1e-9)
    assert got[6:, :3].abs().max() < 1e-9 and got[:, 1].abs().max() == 0


def test_point_triangle_distance_agrees_with_trimesh():
    trimesh = pytest.importorskip("trimesh")
    tri = _random_triangles(200, 2)[6:]
    pts = torch.randn(tri.shape[0], 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    closest = trimesh.triangles.closest_point(tri.numpy(), pts.numpy())
    want = torch.from_numpy(np.linalg.norm(closest - pts.numpy(), axis=1))
    torch.testing.assert_close(point_triangle_distance(pts, tri), want, rtol=1e-7, atol=1e-9)


def test_point_triangle_distance_broadcasts_and_float32():
    tri = _random_triangles(7, 4)[6:].float()  # (1, 3, 3)
    pts = torch.randn(5, 4, 3)
    got = point_triangle_distance(pts, tri[0])
    assert got.shape == (5, 4) and got.dtype == torch.float32
    want = point_triangle_distance(pts.double(), tri[0].double())
    torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-5)


def test_point_triangle_distance_gradcheck():
    tri = _random_triangles(12, 5)[6:].clone().requires_grad_()
    pts = (torch.randn(6, 3, generator=torch.Generator().manual_seed(6), dtype=torch.float64) * 2).requires_grad_()
    assert torch.autograd.gradcheck(point_triangle_distance, (pts, tri))
    # a point on the triangle has distance 0 and a finite (zero) gradient
    on = tri.detach()[0].mean(0, keepdim=True).requires_grad_()
    point_triangle_distance(on, tri.detach()[:1]).sum().backward()
    assert torch.isfinite(on.grad).all()


def test_point_triangle_distance_degenerate_gradients_are_finite():
    tri = _random_triangles(6, 7)[:4].clone().requires_grad_()
    pts = torch.randn(4, 3, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    point_triangle_distance(pts, tri).sum().backward()
    assert torch.isfinite(tri.grad).all()


def test_point_triangle_distance_bad_input():
    with pytest.raises(ValueError, match="triangles must have shape"):
        point_triangle_distance(torch.zeros(4, 3), torch.zeros(4, 3))
    with pytest.raises(ValueError, match="points must have last dimension 3"):
        point_triangle_distance(torch.zeros(4, 2), torch.zeros(4, 3, 3))
    with pytest.raises(ValueError, match="broadcastable"):
        point_triangle_distance(torch.zeros(4, 3), torch.zeros(5, 3, 3))
    with pytest.raises(TypeError, match="dtype and device"):
        point_triangle_distance(torch.zeros(4, 3), torch.zeros(4, 3, 3, dtype=torch.float64))
    with pytest.raises(TypeError, match="floating point"):
        point_triangle_distance(torch.zeros(4, 3, dtype=torch.long), torch.zeros(4, 3, 3))
    with pytest.raises(ValueError, match="finite"):
        point_triangle_distance(torch.full((4, 3), float("nan")), torch.zeros(4, 3, 3))


# --------------------------------------------------------------------------------------------
# The layer and the edge vertices
# --------------------------------------------------------------------------------------------
def test_edge_vertices_lie_on_their_edges_and_are_shared():
    _, X = _grids(2, B=1, N=3)
    V = edge_vertices(X, bbox=(-1.0, 2.0))  # h = 1
    assert V.shape == (1, 3, 3, 3, 12, 3)
    for cell in itertools.product(range(3), repeat=3):
        for e in range(12):
            want = -1.0 + np.array(cell) + _naive_vertex(X.numpy(), 0, cell, e)
            np.testing.assert_allclose(V[(0, *cell, e)].numpy(), want, atol=1e-12)
    # edge 1 of cell (0, 0, 0) (corners 1-2, along y at x=1) is edge 3 of cell (1, 0, 0) (corners 3-0)
    assert torch.equal(V[0, 0, 0, 0, 1], V[0, 1, 0, 0, 3])


def test_layer_outputs_buffers_and_orientation():
    layer = DifferentiableMarchingCubes(bbox=(0.0, 1.0))
    assert layer.num_topologies == 140 and layer.triangles.shape == (140, 4, 3)
    assert "num_topologies=140" in repr(layer)
    O = torch.zeros(1, 2, 2, 2)
    O[0, 0, 0, 0] = 1.0  # corner 0 occupied: case 1
    X = torch.full((1, 3, 2, 2, 2), 0.5)
    out = layer(O, X)
    assert out.probabilities.shape == (1, 1, 1, 1, 140) and out.vertices.shape == (1, 1, 1, 1, 12, 3)
    k = int((layer.cases == 1).nonzero())
    assert out.probabilities[0, 0, 0, 0, k] == 1
    tri = out.vertices[0, 0, 0, 0][layer.triangles[k, 0]]
    normal = torch.linalg.cross(tri[1] - tri[0], tri[2] - tri[0])
    assert (normal @ (tri.mean(0) - torch.zeros(3))) > 0  # points away from the occupied corner
    assert layer.num_triangles[k] == 1 and bool((layer.triangles[k, 1:] == -1).all())
    all_layer = DifferentiableMarchingCubes("all")
    assert all_layer.triangles.shape == (256, 5, 3)


# --------------------------------------------------------------------------------------------
# Expected point-to-mesh loss
# --------------------------------------------------------------------------------------------
def _ragged_points(seed, B=2, P=12, lengths=(12, 5), bbox=(-0.5, 0.5)):
    g = torch.Generator().manual_seed(seed)
    lo, hi = bbox
    pts = lo + (hi - lo) * torch.rand(B, P, 3, generator=g, dtype=torch.float64)
    pts[0, 0] = torch.tensor([hi, hi, 0.0])  # on the upper boundary: the last cell
    for b, n in enumerate(lengths[:B]):
        pts[b, n:] = 1e3  # garbage in the padding
    return pts, torch.tensor(lengths[:B])


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("topologies", SETS)
def test_expected_point_to_mesh_matches_brute_force_over_topologies(topologies, method, device):
    if method == "numba" and device.type != "cpu":
        pytest.skip("numba runs on the CPU")
    O, X = _grids(3, B=2, N=2)
    pts, lengths = _ragged_points(4)
    got = expected_point_to_mesh_loss(O.to(device), X.to(device), pts.to(device), lengths.to(device),
                                      topologies=topologies, reduction="none", method=method).cpu()
    want = _naive_point_to_mesh(O, X, pts, lengths, topologies)
    torch.testing.assert_close(got, torch.from_numpy(want), rtol=1e-9, atol=1e-10)
    mean = expected_point_to_mesh_loss(O, X, pts, lengths, topologies=topologies)
    torch.testing.assert_close(mean, got.mean())


def test_expected_point_to_mesh_options_and_units():
    O, X = _grids(5, B=2, N=2)
    pts, lengths = _ragged_points(6)
    base = expected_point_to_mesh_loss(O, X, pts, lengths, reduction="none")
    want = _naive_point_to_mesh(O, X, pts, lengths, "singly_connected", empty_penalty=3.0, free=0.25)
    got = expected_point_to_mesh_loss(O, X, pts, lengths, empty_penalty=3.0, free_cell_cost=0.25, reduction="none")
    torch.testing.assert_close(got, torch.from_numpy(want), rtol=1e-9, atol=1e-10)
    # distances are in cell lengths: scaling the bbox and the points together changes nothing
    scaled = expected_point_to_mesh_loss(O, X, pts * 4 + 1, lengths, bbox=(-1.0, 3.0), reduction="none")
    torch.testing.assert_close(scaled, base)
    # chunking the nearest-triangle search does not change the loss or its gradient
    Xg = X.clone().requires_grad_()
    Xc = X.clone().requires_grad_()
    expected_point_to_mesh_loss(O, Xg, pts, lengths).backward()
    expected_point_to_mesh_loss(O, Xc, pts, lengths, chunk_size=1).backward()
    torch.testing.assert_close(Xg.grad, Xc.grad)
    assert expected_point_to_mesh_loss(O, X, pts, lengths, reduction="sum").item() == pytest.approx(base.sum().item())


@pytest.mark.parametrize("method", METHODS)
def test_expected_point_to_mesh_gradcheck_occupancy_and_displacements(method):
    O, X = _grids(7, B=1, N=2)
    pts, lengths = _ragged_points(8, B=1, P=10, lengths=(10,))
    O.requires_grad_()
    X.requires_grad_()
    assert torch.autograd.gradcheck(lambda o: expected_point_to_mesh_loss(o, X.detach(), pts, lengths, method=method),
                                    (O,))
    # the empty topologies' cost (a multiple of the cell's largest distance) is a constant by design,
    # so the displacements are checked with it at 0
    assert torch.autograd.gradcheck(
        lambda o, x: expected_point_to_mesh_loss(o, x, pts, lengths, empty_penalty=0.0, topologies="all",
                                                 method=method), (O, X))


def _compare_methods(loss_fn, O, X, weights):
    """Values and gradients of ``loss_fn(o, x, method)`` on both paths."""
    out = []
    for method in ("reference", "numba"):
        o, x = O.clone().requires_grad_(), X.clone().requires_grad_()
        loss = loss_fn(o, x, method)
        (loss * weights).sum().backward()
        out.append((loss.detach(), o.grad, x.grad))
    return out


@pytest.mark.skipif(not HAS_NUMBA, reason="numba not installed")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_expected_point_to_mesh_numba_matches_reference(dtype):
    O, X = _grids(21, B=2, N=6, dtype=dtype, low=0.0, high=1.0)
    g = torch.Generator().manual_seed(22)
    pts = (torch.rand(2, 400, 3, generator=g, dtype=dtype) - 0.5) * 0.9
    lengths = torch.tensor([400, 123])
    weights = torch.tensor([1.0, 3.0], dtype=dtype)
    fn = lambda o, x, m: expected_point_to_mesh_loss(o, x, pts, lengths, method=m, reduction="none")  # noqa: E731
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-9, atol=1e-11)
    for ref, fast in zip(*_compare_methods(fn, O, X, weights)):
        torch.testing.assert_close(fast, ref, **tol)
    # vertices on grid corners make coinciding and zero-area triangles: the same values, finite
    # gradients (how a tie's gradient is shared between coinciding vertices may differ)
    X[0, :, 2, 2, 2] = 0.0
    X[1, 0, 3] = 1.0
    (ref, *ref_grads), (fast, *fast_grads) = _compare_methods(fn, O, X, weights)
    torch.testing.assert_close(fast, ref, **tol)
    assert all(bool(torch.isfinite(gr).all()) for gr in ref_grads + fast_grads)


def test_expected_point_to_mesh_empty_cloud_and_pointclouds():
    O, X = _grids(9, B=2, N=2)
    pts, _ = _ragged_points(10)
    lengths = torch.tensor([0, 4])
    got = expected_point_to_mesh_loss(O, X, pts, lengths, reduction="none")
    probs = topology_probabilities(O)
    surface = torch.from_numpy(NUM_TRIANGLES[topology_cases().numpy()] > 0)
    torch.testing.assert_close(got[0], probs[0][..., surface].sum() / 8)  # free-cell term only
    clouds = Pointclouds([pts[0, :0], pts[1, :4]])
    torch.testing.assert_close(expected_point_to_mesh_loss(O, X, clouds, reduction="none"), got)


def test_expected_point_to_mesh_is_zero_for_an_exact_fit():
    # a plane x = 0.25 through a 1-cell grid: corners 0, 3, 4, 7 occupied (x = 0), vertices at t = 0.25
    O = torch.zeros(1, 2, 2, 2, dtype=torch.float64)
    O[0, 0] = 1.0
    X = torch.full((1, 3, 2, 2, 2), 0.25, dtype=torch.float64)
    g = torch.Generator().manual_seed(11)
    pts = torch.cat((torch.full((30, 1), 0.25, dtype=torch.float64),
                     torch.rand(30, 2, generator=g, dtype=torch.float64)), 1)
    loss = expected_point_to_mesh_loss(O, X, pts[None], bbox=(0.0, 1.0))
    assert loss.item() < 1e-12


# --------------------------------------------------------------------------------------------
# Regularisers
# --------------------------------------------------------------------------------------------
def test_smoothness_loss_matches_loop(device):
    O, _ = _grids(12, B=2, N=3)
    want = []
    for b in range(2):
        total = 0.0
        for i, j, k in itertools.product(range(4), repeat=3):
            for di, dj, dk in ((1, 0, 0), (0, 1, 0), (0, 0, 1)):
                if i + di < 4 and j + dj < 4 and k + dk < 4:
                    total += abs(O[b, i, j, k] - O[b, i + di, j + dj, k + dk]).item()
        want.append(total / 27)
    got = smoothness_loss(O.to(device), reduction="none").cpu()
    torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64))
    assert smoothness_loss(torch.full((1, 3, 3, 3), 0.3)).item() == 0


def test_occupancy_loss_shell_weights_and_values(device):
    ndimage = pytest.importorskip("scipy.ndimage")
    S = 6
    shell = np.ones((S, S, S))
    shell[1:-1, 1:-1, 1:-1] = 0
    ax = np.arange(-1.0, 2.0)
    kernel = np.exp(-(ax[:, None, None] ** 2 + ax[None, :, None] ** 2 + ax[None, None, :] ** 2) / 2)
    weight = ndimage.convolve(shell, kernel, mode="nearest")
    weight /= weight.max()
    O, _ = _grids(13, B=2, N=S - 1)
    got = shell_occupancy_loss(O.to(device), interior_weight=0.0, reduction="none").cpu()
    want = (O.numpy() * weight).reshape(2, -1).sum(1) / weight.sum()
    torch.testing.assert_close(got, torch.from_numpy(want))
    zeros = torch.zeros(1, S, S, S)
    assert shell_occupancy_loss(zeros).item() == pytest.approx(0.2)  # nothing occupied: the centre prior at full weight
    assert shell_occupancy_loss(torch.ones(1, S, S, S)).item() == pytest.approx(1.0)  # centre confident: prior off
    inside = zeros.clone()
    inside[:, 1:-1, 1:-1, 1:-1] = 1
    assert shell_occupancy_loss(inside, interior_weight=0.0).item() < shell_occupancy_loss(torch.ones(1, S, S, S)).item()


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("topologies", SETS)
def test_curvature_loss_matches_brute_force_pairs(topologies, method):
    O, X = _grids(14, B=1, N=2)
    got = curvature_loss(O, X, topologies=topologies, min_weight=0.0, reduction="none", method=method)
    want = _naive_curvature(O, X, topologies)
    torch.testing.assert_close(got, torch.from_numpy(want), rtol=1e-9, atol=1e-10)


def test_curvature_loss_flat_surface_is_zero_and_kink_is_not():
    # a plane x = const across a 2 x 2 x 2 grid: occupied half x = 0, equal displacements
    O = torch.zeros(1, 3, 3, 3, dtype=torch.float64)
    O[0, 0] = 1.0
    X = torch.full((1, 3, 3, 3, 3), 0.4, dtype=torch.float64)
    assert curvature_loss(O, X, min_weight=0.0).item() < 1e-20
    X[0, 0, 0, 0, 0] = 0.9  # bend the plane
    assert curvature_loss(O, X, min_weight=0.0).item() > 1e-3


@pytest.mark.parametrize("method", METHODS)
def test_curvature_loss_gradcheck(method):
    O, X = _grids(15, B=1, N=2)
    X.requires_grad_()
    assert torch.autograd.gradcheck(lambda x: curvature_loss(O, x, min_weight=0.0, chunk_size=3, method=method), (X,))
    Og = O.clone().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda o: curvature_loss(o, X.detach(), min_weight=0.0, detach_weights=False, method=method), (Og,))


@pytest.mark.skipif(not HAS_NUMBA, reason="numba not installed")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_curvature_loss_numba_matches_reference(dtype):
    O, X = _grids(23, B=2, N=5, dtype=dtype, low=0.0, high=1.0)
    X[0, 0, 1, 1, 1] = X[0, 1, 1, 1, 1] = 0.0  # coincident vertices: zero-area triangles
    weights = torch.tensor([1.0, 2.0], dtype=dtype)
    fn = lambda o, x, m: curvature_loss(o, x, min_weight=0.0, detach_weights=False, method=m,  # noqa: E731
                                        reduction="none")
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-9, atol=1e-11)
    for ref, fast in zip(*_compare_methods(fn, O, X, weights)):
        torch.testing.assert_close(fast, ref, **tol)


def test_curvature_loss_weights_min_weight_and_cells(device):
    O, X = _grids(15, B=1, N=2)
    X.requires_grad_()
    Og = O.clone().requires_grad_()
    curvature_loss(Og, X, min_weight=0.0).backward()
    assert Og.grad is None and X.grad.abs().sum() > 0  # weights detached by default
    # skipping near-empty cells changes the loss by little
    O2, X2 = _grids(16, B=2, N=4, low=0.0, high=1.0)
    O2 = (O2 > 0.5).double() * 0.998 + 0.001
    exact = curvature_loss(O2.to(device), X2.to(device), min_weight=0.0, reduction="none")
    fast = curvature_loss(O2.to(device), X2.to(device), min_weight=1e-2, reduction="none", chunk_size=5)
    torch.testing.assert_close(fast, exact, rtol=0.05, atol=1e-3)
    # cells: all selected is the full loss; a selection keeps only the terms among selected cells
    everything = torch.ones(2, 4, 4, 4, dtype=torch.bool, device=device)
    torch.testing.assert_close(curvature_loss(O2.to(device), X2.to(device), min_weight=0.0, cells=everything,
                                              reduction="none"), exact)
    keep = torch.tensor([[[[True, False], [True, True]], [[False, True], [True, True]]]])
    part = curvature_loss(O.to(device), X.detach().to(device), min_weight=0.0, cells=keep.to(device), reduction="none")
    want = _naive_curvature(O, X.detach(), "singly_connected", keep=keep[0].numpy())
    torch.testing.assert_close(part.cpu(), torch.from_numpy(want), rtol=1e-9, atol=1e-10)


def test_dmc_loss_combines_terms_with_weights():
    O, X = _grids(17, B=2, N=2)
    pts, lengths = _ragged_points(18)
    out = dmc_loss(O, X, pts, lengths)
    torch.testing.assert_close(out.point_to_mesh, expected_point_to_mesh_loss(O, X, pts, lengths))
    torch.testing.assert_close(out.occupancy, shell_occupancy_loss(O))
    torch.testing.assert_close(out.smoothness, smoothness_loss(O))
    torch.testing.assert_close(out.curvature, curvature_loss(O, X))
    w = DMC_LOSS_WEIGHTS
    total = (w["point_to_mesh"] * out.point_to_mesh + w["occupancy"] * out.occupancy
             + w["smoothness"] * out.smoothness + w["curvature"] * out.curvature)
    torch.testing.assert_close(out.total, total)
    only = dmc_loss(O, X, pts, lengths, weights={"occupancy": 0.0, "smoothness": 0.0, "curvature": 0.0})
    torch.testing.assert_close(only.total, 5.0 * out.point_to_mesh)
    # the curvature band: every cell lies within 2 cells of a point cell here; band 0 keeps the point cells
    torch.testing.assert_close(dmc_loss(O, X, pts, lengths, curvature_band=2).curvature, out.curvature)
    near = torch.zeros(2, 8, dtype=torch.bool)
    for b in range(2):
        cell = ((pts[b, :lengths[b]] + 0.5) * 2).floor().long().clamp(0, 1)
        near[b, (cell[:, 0] * 2 + cell[:, 1]) * 2 + cell[:, 2]] = True
    band0 = dmc_loss(O, X, pts, lengths, curvature_band=0).curvature
    torch.testing.assert_close(band0, curvature_loss(O, X, cells=near.view(2, 2, 2, 2)))


# --------------------------------------------------------------------------------------------
# Mesh extraction
# --------------------------------------------------------------------------------------------
def _edge_face_counts(faces):
    edges = torch.cat((faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]))
    directed = {tuple(e) for e in edges.tolist()}
    undirected = torch.sort(edges, dim=1).values
    _, counts = torch.unique(undirected, dim=0, return_counts=True)
    return counts, directed, edges


def test_extract_mesh_matches_shared_marching_cubes_and_is_closed(device):
    N = 8
    O, X = _sphere_grid(N)
    mesh = extract_mesh(O.to(device), X.to(device))
    verts, faces = mesh.verts_list()[0].cpu(), mesh.faces_list()[0].cpu()
    ref = marching_cubes(O[0], level=0.5, spacing=(1 / N,) * 3, origin=(-0.5,) * 3)
    rv, rf = ref.verts_list()[0], ref.faces_list()[0]
    assert verts.shape == rv.shape and faces.shape == rf.shape
    # same triangles (as coordinate triples, up to the order of faces and vertices)
    key = lambda v, f: sorted(tuple(np.round(v[t].numpy(), 9).ravel().tolist()) for t in f)  # noqa: E731
    assert key(verts, faces) == key(rv, rf)
    counts, directed, edges = _edge_face_counts(faces)
    assert bool((counts == 2).all())  # closed
    assert all((b, a) in directed for a, b in edges.tolist())  # consistently oriented
    v0, v1, v2 = verts[faces].unbind(1)
    volume = (v0 * torch.linalg.cross(v1, v2)).sum() / 6
    assert volume.item() == pytest.approx(4 / 3 * math.pi * 0.3 ** 3, rel=0.1)  # outward normals
    assert (verts.norm(dim=1) - 0.3).abs().max() < 0.03


def test_extract_mesh_most_probable_equals_marching_cubes_for_confident_grids():
    O, X = _sphere_grid(8)
    confident = (O > 0.5).double() * 0.98 + 0.01
    a = extract_mesh(confident, X, mode="marching_cubes")
    b = extract_mesh(confident, X, mode="most_probable")
    assert torch.equal(a.verts_list()[0], b.verts_list()[0]) and torch.equal(a.faces_list()[0], b.faces_list()[0])


def test_extract_mesh_empty_and_batch_and_gradient():
    O, X = _sphere_grid(6)
    O = torch.cat((O, torch.zeros_like(O)))
    X = torch.cat((X, X)).requires_grad_()
    mesh = extract_mesh(O, X)
    assert mesh.num_faces_per_mesh().tolist()[1] == 0 and mesh.num_verts_per_mesh().tolist()[1] == 0
    assert mesh.num_faces_per_mesh().tolist()[0] > 0
    mesh.verts_packed().sum().backward()
    assert X.grad.abs().sum() > 0


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------
def test_model_shapes_ranges_and_repr():
    model = DeepMarchingCubes(num_cells=8, width=0.25)
    pts = _sphere_points(64)[None].repeat(2, 1, 1)
    out = model(pts)
    assert out.occupancy.shape == (2, 9, 9, 9) and out.displacements.shape == (2, 3, 9, 9, 9)
    assert out.occupancy.min() > 0 and out.occupancy.max() < 1
    assert torch.allclose(out.displacements, torch.full_like(out.displacements, 0.5))  # start at edge midpoints
    assert "num_cells=8" in repr(model) and "levels=2" in repr(model.encoder)
    assert DMCEncoder(num_cells=16).levels == 3 and DMCEncoder(num_cells=6).levels == 1
    model.reset_parameters()


def test_model_ragged_batch_matches_single_clouds():
    torch.manual_seed(0)
    model = DeepMarchingCubes(num_cells=4, width=0.25, norm=None).eval()
    a, b = _sphere_points(50, seed=1), _sphere_points(20, seed=2)
    padded = torch.full((2, 50, 3), 7.0)  # garbage padding far outside the bbox
    padded[0], padded[1, :20] = a, b
    batch = model(padded, torch.tensor([50, 20]))
    for i, cloud in enumerate((a, b)):
        single = model(cloud[None])
        torch.testing.assert_close(batch.occupancy[i], single.occupancy[0])
        torch.testing.assert_close(batch.displacements[i], single.displacements[0])
    clouds = model(Pointclouds([a, b]))
    torch.testing.assert_close(clouds.occupancy, batch.occupancy)


def test_model_overfits_a_sphere():
    torch.manual_seed(0)
    target = _sphere_points(600, seed=3)[None]
    # group norm: the same normalisation in training and evaluation for a single shape
    model = DeepMarchingCubes(num_cells=8, width=0.25, norm="group")
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        out = model(target)
        loss = dmc_loss(out.occupancy, out.displacements, target).total
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        mesh = model.extract(model(target))
    assert mesh.num_faces_per_mesh().item() > 50
    truth = _sphere_points(3000, seed=5)[None]
    sampled = sample_points_from_meshes(mesh, 3000, generator=torch.Generator().manual_seed(0))
    cd, _ = chamfer_distance(sampled, truth)
    # squared distances, both ways; the untrained model scores ~0.06 (a cell is 0.125 wide)
    assert cd.item() < 2.5e-3, cd.item()


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------
def test_bad_input_names_the_argument():
    O, X = _grids(19, B=1, N=2)
    pts, lengths = _ragged_points(20, B=1, P=5, lengths=(5,))
    with pytest.raises(ValueError, match="occupancy must be a cubic grid"):
        topology_probabilities(torch.rand(1, 3, 3, 4))
    with pytest.raises(ValueError, match="occupancy must have 4 dimensions"):
        topology_probabilities(torch.rand(3, 3, 3))
    with pytest.raises(TypeError, match="occupancy must be a floating point"):
        topology_probabilities(torch.ones(1, 3, 3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"occupancy must lie in \[0, 1\]"):
        topology_probabilities(O * 2)
    with pytest.raises(ValueError, match="occupancy must be finite"):
        topology_probabilities(torch.full((1, 3, 3, 3), float("nan")))
    with pytest.raises(ValueError, match="topologies must be one of"):
        topology_probabilities(O, "connected")
    with pytest.raises(ValueError, match="displacements must have shape"):
        expected_point_to_mesh_loss(O, X[:, :2], pts)
    with pytest.raises(TypeError, match="displacements must have the dtype"):
        expected_point_to_mesh_loss(O, X.float(), pts)
    with pytest.raises(ValueError, match=r"displacements must lie in \[0, 1\]"):
        curvature_loss(O, X + 1)
    with pytest.raises(ValueError, match="points must lie inside the grid's cube"):
        expected_point_to_mesh_loss(O, X, pts + 2)
    with pytest.raises(ValueError, match="points must have last dimension 3"):
        expected_point_to_mesh_loss(O, X, pts[..., :2])
    with pytest.raises(ValueError, match="points must have the batch size"):
        expected_point_to_mesh_loss(O, X, pts.repeat(2, 1, 1))
    with pytest.raises(ValueError, match="lengths must not exceed"):
        expected_point_to_mesh_loss(O, X, pts, torch.tensor([9]))
    with pytest.raises(ValueError, match="bbox must be"):
        expected_point_to_mesh_loss(O, X, pts, bbox=(1.0, 0.0))
    with pytest.raises(ValueError, match="reduction must be"):
        smoothness_loss(O, reduction="avg")
    with pytest.raises(ValueError, match="empty_penalty must be"):
        expected_point_to_mesh_loss(O, X, pts, empty_penalty=-1.0)
    with pytest.raises(ValueError, match="chunk_size must be"):
        expected_point_to_mesh_loss(O, X, pts, chunk_size=0)
    with pytest.raises(ValueError, match="min_weight must be"):
        curvature_loss(O, X, min_weight=float("nan"))
    with pytest.raises(ValueError, match="weights must be a dict"):
        dmc_loss(O, X, pts, weights={"chamfer": 1.0})
    with pytest.raises(ValueError, match="method must be"):
        curvature_loss(O, X, method="cuda")
    with pytest.raises(ValueError, match="cells must be a bool tensor"):
        curvature_loss(O, X, cells=torch.ones(1, 3, 3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="curvature_band must be"):
        dmc_loss(O, X, pts, curvature_band=-1)
    with pytest.raises(ValueError, match="mode must be"):
        extract_mesh(O, X, mode="dual")
    with pytest.raises(ValueError, match="threshold must be"):
        extract_mesh(O, X, threshold=2.0)
    with pytest.raises(ValueError, match="levels must be"):
        DMCEncoder(num_cells=6, levels=2)
    with pytest.raises(ValueError, match="width must be"):
        DeepMarchingCubes(width=0)
    with pytest.raises(ValueError, match="num_cells must be"):
        DeepMarchingCubes(num_cells=0)
    model = DeepMarchingCubes(num_cells=4, width=0.25)
    with pytest.raises(ValueError, match="points must lie inside"):
        model(torch.full((1, 5, 3), 0.9))
    with pytest.raises(ValueError, match="points must be finite"):
        model(torch.full((1, 5, 3), float("nan")))
