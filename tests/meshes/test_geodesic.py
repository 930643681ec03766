"""Gradient and divergence operators (naive twins, D G = -L, D = -G^T A), heat-method geodesics (great-circle
distances on the unit sphere, Euclidean ones on a flat grid, libigl's heat method, several sources, source
sets, boundaries, components, the conjugate-gradient path), local polar coordinates (exact on a flat grid,
close to the log map on a sphere, numba against the heapq reference, patch limits), bad input."""
import importlib.util
import math

import numpy as np
import pytest
import torch

from geo4g.meshes.geodesic import (
    HeatGeodesics,
    face_gradient,
    heat_method_geodesics,
    local_polar_coordinates,
    vertex_divergence,
)
from geo4g.meshes.laplacian_matrices import stiffness_matrix
from geo4g.structures import Meshes

from ._meshes import grid_mesh, sphere_mesh

HAS_IGL = importlib.util.find_spec("igl") is not None
HAS_NUMBA = importlib.util.find_spec("numba") is not None


def great_circle(verts, source):
    return torch.arccos((verts @ verts[source]).clamp(-1, 1))


# ----------------------------------------------------------------------------- gradient and divergence
def naive_face_gradient(verts, faces, u):
    """Solve for the in-plane gradient g of the linear interpolant: g . (p_k - p_0) = u_k - u_0, g . n = 0."""
    out = torch.zeros(faces.shape[0], 3, dtype=torch.float64)
    for f, (a, b, c) in enumerate(faces.tolist()):
        e1, e2 = verts[b] - verts[a], verts[c] - verts[a]
        n = torch.linalg.cross(e1, e2)
        if n.norm() < 1e-12:
            continue
        A = torch.stack([e1, e2, n])
        rhs = torch.stack([u[b] - u[a], u[c] - u[a], torch.zeros((), dtype=torch.float64)])
        out[f] = torch.linalg.solve(A, rhs)
    return out


def test_face_gradient_matches_naive_and_is_exact_on_linear_functions(device):
    verts, faces = grid_mesh(5, jitter=0.6)
    verts[:, 2] = 0.3 * verts[:, 0] ** 2
    u = torch.randn(25, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    G = face_gradient(verts.to(device), faces.to(device))
    assert G.shape == (3 * faces.shape[0], 25)
    got = torch.sparse.mm(G, u.to(device)[:, None]).view(-1, 3).cpu()
    torch.testing.assert_close(got, naive_face_gradient(verts, faces, u))
    flat, ff = grid_mesh(4, jitter=0.5)
    lin = 2 * flat[:, 0] - 3 * flat[:, 1]
    grads = torch.sparse.mm(face_gradient(flat, ff), lin[:, None]).view(-1, 3)
    torch.testing.assert_close(grads, torch.tensor([[2.0, -3.0, 0.0]], dtype=torch.float64).expand_as(grads))


def test_divergence_is_minus_gradient_transpose_times_areas_and_div_grad_is_minus_l():
    verts, faces = sphere_mesh(2)
    G, D = face_gradient(verts, faces).to_dense(), vertex_divergence(verts, faces).to_dense()
    fv = verts[faces]
    areas = 0.5 * torch.linalg.cross(fv[:, 1] - fv[:, 0], fv[:, 2] - fv[:, 0]).norm(dim=1)
    torch.testing.assert_close(D, -G.T * areas.repeat_interleave(3)[None])
    torch.testing.assert_close(D @ G, -stiffness_matrix(verts, faces).to_dense())


def test_divergence_matches_cotangent_formula():
    verts, faces = grid_mesh(4, jitter=0.7, seed=1)
    X = torch.randn(faces.shape[0], 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    X[:, 2] = 0
    want = torch.zeros(verts.shape[0], dtype=torch.float64)
    for f, tri in enumerate(faces.tolist()):
        for k in range(3):
            i, j, l = tri[k], tri[(k + 1) % 3], tri[(k + 2) % 3]
            e1, e2 = verts[j] - verts[i], verts[l] - verts[i]

            def cot(p, a, b):
                u, w = a - p, b - p
                return float(u @ w) / float(torch.linalg.cross(u, w).norm())

            want[i] += 0.5 * (cot(verts[l], verts[i], verts[j]) * float(e1 @ X[f])
                              + cot(verts[j], verts[l], verts[i]) * float(e2 @ X[f]))
    got = torch.sparse.mm(vertex_divergence(verts, faces), X.reshape(-1, 1))[:, 0]
    torch.testing.assert_close(got, want)


def test_degenerate_faces_give_zero_gradient_rows():
    verts = torch.tensor([[0.0, 0, 0], [1, 0, 0], [2, 0, 0], [0, 1, 0]], dtype=torch.float64)
    faces = torch.tensor([[0, 1, 2], [0, 1, 3]])
    G = face_gradient(verts, faces).to_dense()
    assert torch.isfinite(G).all() and (G[:3] == 0).all() and (G[3:] != 0).any()
    assert torch.isfinite(vertex_divergence(verts, faces).to_dense()).all()


def test_operators_are_differentiable_in_vertices():
    verts, faces = grid_mesh(3, jitter=0.4)
    verts[:, 2] = 0.1 * torch.arange(9, dtype=torch.float64).cos()
    u = torch.linspace(0, 1, 9, dtype=torch.float64)[:, None]
    field = torch.ones(3 * faces.shape[0], 1, dtype=torch.float64)

    def energy(v):
        return (torch.sparse.mm(face_gradient(v, faces), u).sum()
                + torch.sparse.mm(vertex_divergence(v, faces), field).pow(2).sum())

    assert torch.autograd.gradcheck(energy, (verts.clone().requires_grad_(),))


# ----------------------------------------------------------------------------- heat method
def test_heat_geodesics_on_unit_sphere_match_great_circles():
    verts, faces = sphere_mesh(5)  # 10242 vertices, mean edge 0.036
    solver = HeatGeodesics(verts, faces)
    for source in (0, 1234):
        d = solver(source)
        true = great_circle(verts, source)
        assert float(d[source]) == 0.0
        away = (true > 0.1) & (true < math.pi - 0.1)
        rel = (d - true).abs() / true
        assert float(rel[away].mean()) < 0.01
        # The heat method's smoothing costs up to ~4% within a few edge lengths of the source.
        assert float(rel[away].max()) < 0.05
        assert float(rel[away & (true > 0.2)].max()) < 0.03


@pytest.mark.skipif(not HAS_IGL, reason="libigl not installed")
def test_heat_geodesics_with_voronoi_mass_match_libigl_heat_method():
    import igl

    verts, faces = sphere_mesh(3)
    mean_edge = float((verts[faces[:, [1, 2, 0]]] - verts[faces]).norm(dim=-1).mean())
    data = igl.HeatGeodesicsData()
    igl.heat_geodesics_precompute(verts.numpy(), faces.numpy(), mean_edge ** 2, data)
    want = torch.from_numpy(igl.heat_geodesics_solve(data, np.array([5])))
    torch.testing.assert_close(heat_method_geodesics(verts, faces, 5, mass="voronoi"), want, rtol=1e-6, atol=1e-8)
    assert float((heat_method_geodesics(verts, faces, 5) - want).abs().max()) < 0.01


def test_heat_geodesics_on_flat_grid_are_close_to_euclidean():
    verts, faces = grid_mesh(31, jitter=0.3)  # spacing 0.033
    centre = 15 * 31 + 15
    d = heat_method_geodesics(verts, faces, centre, boundary="average")
    true = (verts - verts[centre]).norm(dim=1)
    rel = (d - true).abs() / true
    assert float(rel[true > 0.1].mean()) < 0.015
    assert float(rel[true > 0.2].max()) < 0.035


def test_average_boundary_condition_is_better_at_the_boundary():
    verts, faces = grid_mesh(21)
    source = 2 * 21 + 2  # interior, near a corner
    true = (verts - verts[source]).norm(dim=1)
    errors = {b: float((heat_method_geodesics(verts, faces, source, boundary=b) - true).abs().mean())
              for b in ("neumann", "average")}
    assert errors["average"] < 0.8 * errors["neumann"]
    # A source on the boundary has no Dirichlet flow: the average is the Neumann result.
    torch.testing.assert_close(heat_method_geodesics(verts, faces, 0, boundary="average"),
                               heat_method_geodesics(verts, faces, 0))
    closed_v, closed_f = sphere_mesh(2)
    torch.testing.assert_close(heat_method_geodesics(closed_v, closed_f, 3, boundary="average"),
                               heat_method_geodesics(closed_v, closed_f, 3))


def test_several_sources_and_source_sets():
    verts, faces = sphere_mesh(4)
    solver = HeatGeodesics(verts, faces)
    many = solver([0, 7, 100])
    assert many.shape == (3, verts.shape[0])
    for row, s in zip(many, [0, 7, 100]):
        torch.testing.assert_close(row, solver(s))
    torch.testing.assert_close(solver(torch.tensor([7])), solver(7)[None])
    mask = torch.zeros(verts.shape[0], dtype=torch.bool)
    mask[[0, 100]] = True
    to_set = solver(mask)
    assert to_set.shape == (verts.shape[0],)
    # Distance to a set = min of the distances, except on the ridge between the sources, which
    # the heat flow smooths.
    d0, d100 = great_circle(verts, 0), great_circle(verts, 100)
    off_ridge = (d0 - d100).abs() > 0.3
    assert float((to_set - torch.minimum(d0, d100))[off_ridge].abs().max()) < 0.05
    assert "HeatGeodesics(verts=2562" in repr(solver)


def test_components_without_source_are_infinite_and_meshes_batches_work():
    v1, f1 = sphere_mesh(2)
    v2, f2 = sphere_mesh(1)
    meshes = Meshes([v1, v2 + 3.0], [f1, f2])
    d = heat_method_geodesics(meshes, sources=0, t=0.01)
    assert torch.isinf(d[v1.shape[0]:]).all()
    torch.testing.assert_close(d[:v1.shape[0]], heat_method_geodesics(v1, f1, 0, t=0.01), rtol=1e-6, atol=1e-7)


def test_conjugate_gradient_path_matches_direct(device):
    verts, faces = sphere_mesh(2)
    a = heat_method_geodesics(verts, faces, [0, 9], solver="direct")
    b = heat_method_geodesics(verts.to(device), faces.to(device), [0, 9], solver="cg")
    torch.testing.assert_close(b.cpu(), a, rtol=1e-6, atol=1e-6)
    assert b.device.type == torch.device(device).type


def test_float32_input_returns_float32_distances():
    verts, faces = sphere_mesh(2, dtype=torch.float32)
    assert heat_method_geodesics(verts, faces, 0).dtype == torch.float32


# ----------------------------------------------------------------------------- local polar coordinates
BACKENDS = ["reference"] + (["numba"] if HAS_NUMBA else [])


def wrapped(a):
    return torch.remainder(a + math.pi, 2 * math.pi) - math.pi


@pytest.mark.parametrize("backend", BACKENDS)
def test_polar_coordinates_on_flat_grid_are_euclidean(backend):
    verts, faces = grid_mesh(9, jitter=0.5)
    polar = local_polar_coordinates(verts, faces, radius=0.3, backend=backend)
    nbr, centre = polar.edge_index
    step = verts[nbr] - verts[centre]
    torch.testing.assert_close(polar.rho, step.norm(dim=1))
    assert float(polar.rho.max()) <= 0.3
    # theta is the atan2 angle minus the angle of the reference edge (to the lowest-index neighbour).
    for c in range(verts.shape[0]):
        ring = faces[(faces == c).any(1)].unique()
        first = int(ring[ring != c].min())
        ref = verts[first] - verts[c]
        offset = math.atan2(float(ref[1]), float(ref[0]))
        here = centre == c
        want = wrapped(torch.atan2(step[here, 1], step[here, 0]) - offset)
        torch.testing.assert_close(wrapped(polar.theta[here] - want), torch.zeros_like(want), atol=1e-12, rtol=0)
    # Every vertex within the radius is in the patch (edge paths searched far enough).
    dists = torch.cdist(verts, verts)
    within = (dists <= 0.3 - 1e-12) & ~torch.eye(verts.shape[0], dtype=torch.bool)
    assert polar.rho.shape[0] == int(within.sum())


@pytest.mark.skipif(not HAS_NUMBA, reason="numba not installed")
@pytest.mark.parametrize("kwargs", [dict(radius=0.6), dict(k=9), dict(radius=0.5, k=5),
                                    dict(radius=0.5, method="dijkstra"), dict(k=7, method="dijkstra")])
def test_polar_numba_matches_reference(kwargs):
    verts, faces = sphere_mesh(2)
    verts = verts * (1 + 0.1 * torch.sin(5 * verts[:, :1]))
    a = local_polar_coordinates(verts, faces, backend="reference", **kwargs)
    b = local_polar_coordinates(verts, faces, backend="numba", **kwargs)
    assert torch.equal(a.edge_index, b.edge_index)
    torch.testing.assert_close(a.rho, b.rho, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(wrapped(a.theta - b.theta), torch.zeros_like(a.theta), atol=1e-10, rtol=0)


def test_polar_coordinates_on_sphere_follow_the_log_map():
    verts, faces = sphere_mesh(4)
    polar = local_polar_coordinates(verts, faces, radius=0.35)
    nbr, centre = polar.edge_index
    true = torch.arccos((verts[nbr] * verts[centre]).sum(1).clamp(-1, 1))
    assert float(((polar.rho - true).abs() / true).max()) < 0.03
    # Angles: the log map's direction is the neighbour projected to the centre's tangent plane.
    # Compare angle differences between neighbours of one centre (the reference direction cancels).
    n = verts[centre]
    proj = verts[nbr] - (verts[nbr] * n).sum(1, keepdim=True) * n
    for c in (0, 500, 2000):
        here = (centre == c).nonzero()[:, 0]
        base = proj[here[0]]
        cross = (torch.linalg.cross(base.expand_as(proj[here]), proj[here]) * verts[c]).sum(1)
        angle = torch.atan2(cross, (proj[here] * base).sum(1))
        got = wrapped(polar.theta[here] - polar.theta[here[0]])
        assert float(wrapped(got - angle).abs().max()) < 0.05


def test_dijkstra_method_and_k_patches():
    verts, faces = grid_mesh(6)
    polar = local_polar_coordinates(verts, faces, k=4, method="dijkstra")
    nbr, centre = polar.edge_index
    assert (torch.bincount(centre) == 4).all()
    # Interior centres: the four axis neighbours, at edge distance 0.2 (diagonals are 0.28 away).
    inner = (verts[centre, :2] > 0.1).all(1) & (verts[centre, :2] < 0.9).all(1)
    torch.testing.assert_close(polar.rho[inner], torch.full_like(polar.rho[inner], 0.2))
    torch.testing.assert_close(polar.rho[inner], (verts[nbr] - verts[centre]).norm(dim=1)[inner])
    assert (centre[1:] >= centre[:-1]).all()
    assert not (nbr == centre).any()
    both = local_polar_coordinates(verts, faces, radius=0.5, k=3)
    assert int(torch.bincount(both.edge_index[1]).max()) <= 3
    assert float(both.rho.max()) <= 0.5


def test_polar_coordinates_device_dtype_and_empty(device):
    verts, faces = grid_mesh(4, dtype=torch.float32)
    polar = local_polar_coordinates(verts.to(device), faces.to(device), k=3)
    assert polar.rho.dtype == torch.float32 and polar.rho.device.type == torch.device(device).type
    lonely = local_polar_coordinates(torch.zeros(2, 3), torch.zeros(0, 3, dtype=torch.long), radius=1.0)
    assert lonely.edge_index.shape == (2, 0) and lonely.rho.shape == (0,)


# ----------------------------------------------------------------------------- bad input
def test_bad_input_raises_clear_errors():
    verts, faces = grid_mesh(4)
    with pytest.raises(ValueError, match=r"sources must lie in \[0, 16\)"):
        heat_method_geodesics(verts, faces, 16)
    with pytest.raises(ValueError, match="sources must lie"):
        heat_method_geodesics(verts, faces, [0, -1])
    with pytest.raises(TypeError, match="sources must be an int"):
        heat_method_geodesics(verts, faces, 0.5)
    with pytest.raises(ValueError, match="mask selects no vertex"):
        heat_method_geodesics(verts, faces, torch.zeros(16, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool sources mask must have V=16"):
        heat_method_geodesics(verts, faces, torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="boundary must be one of"):
        HeatGeodesics(verts, faces, boundary="dirichlet")
    with pytest.raises(ValueError, match="mass must be 'lumped' or 'voronoi'"):
        HeatGeodesics(verts, faces, mass="full")
    with pytest.raises(ValueError, match="t must be a positive float"):
        HeatGeodesics(verts, faces, t=-1.0)
    with pytest.raises(ValueError, match="needs radius, k or both"):
        local_polar_coordinates(verts, faces)
    with pytest.raises(ValueError, match="radius must be a positive float"):
        local_polar_coordinates(verts, faces, radius=0)
    with pytest.raises(ValueError, match="k must be an int >= 1"):
        local_polar_coordinates(verts, faces, k=0)
    with pytest.raises(ValueError, match="method must be one of"):
        local_polar_coordinates(verts, faces, k=3, method="geodesic")
    with pytest.raises(ValueError, match="backend must be"):
        local_polar_coordinates(verts, faces, k=3, backend="cuda")
