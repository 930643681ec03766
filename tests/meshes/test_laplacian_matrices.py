"""Mesh Laplacians: PyTorch3D's operators against naive per-face twins, FEM stiffness and mass matrices
(symmetry, zero row sums, PSD, null space per component, hand-computed weights, linear precision on a
flat grid, L x = 2 M x on the unit sphere), libigl and the robust_laplacian package where installed,
degenerate faces and unreferenced vertices, Meshes batches, gradients, bad input."""
import importlib.util
import math

import pytest
import torch

from geo4g.meshes.laplacian_matrices import (
    ISOLATED_MASS_FRACTION,
    cot_laplacian,
    cotangent_weights,
    face_cotangents,
    laplacian,
    mass_matrix,
    norm_laplacian,
    robust_laplacian,
    sparse_to_scipy,
    stiffness_matrix,
)
from geo4g.structures import Meshes, Pointclouds

from ._meshes import grid_mesh, sphere_mesh

HAS_IGL = importlib.util.find_spec("igl") is not None
HAS_ROBUST = importlib.util.find_spec("robust_laplacian") is not None


# ----------------------------------------------------------------------------- meshes shared by the mesh tests
def dense(m):
    return m.to_dense()


# ----------------------------------------------------------------------------- naive twins
def _angle_cot(p, a, b):
    """Cotangent of the angle at p in the triangle (p, a, b), from the angle itself."""
    u, w = a - p, b - p
    angle = math.acos(max(-1.0, min(1.0, float(u @ w) / float(u.norm() * w.norm()))))
    return math.cos(angle) / math.sin(angle)


def naive_cotangent_weights(verts, faces):
    V = verts.shape[0]
    W = torch.zeros(V, V, dtype=torch.float64)
    for f in faces.tolist():
        for k in range(3):
            p, i, j = f[k], f[(k + 1) % 3], f[(k + 2) % 3]
            c = _angle_cot(verts[p].double(), verts[i].double(), verts[j].double())
            W[i, j] += c / 2
            W[j, i] += c / 2
    return W


def naive_pytorch3d_cot(verts, faces):
    W = naive_cotangent_weights(verts, faces)
    areas = torch.zeros(verts.shape[0], dtype=torch.float64)
    for f in faces.tolist():
        a, b, c = verts[f].double()
        areas[f] += 0.5 * float(torch.linalg.cross(b - a, c - a).norm())
    inv = torch.where(areas > 0, 1 / areas, torch.zeros_like(areas))
    return 2 * W, inv[:, None]


def naive_uniform(V, edges):
    A = torch.zeros(V, V, dtype=torch.float64)
    deg = torch.zeros(V, dtype=torch.float64)
    for i, j in edges.tolist():
        deg[i] += 1
        deg[j] += 1
    for i, j in edges.tolist():
        A[i, j] += 1 / deg[i]
        A[j, i] += 1 / deg[j]
    return A - torch.eye(V, dtype=torch.float64)


def random_mesh(seed, V=20, F=30, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    verts = torch.rand(V, 3, generator=g, dtype=dtype)
    faces = torch.stack([torch.randperm(V, generator=g)[:3] for _ in range(F)])
    return verts, faces


# ----------------------------------------------------------------------------- PyTorch3D's operators
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cot_laplacian_matches_naive_twin(seed, device):
    verts, faces = random_mesh(seed)
    L, inv_areas = cot_laplacian(verts.to(device), faces.to(device))
    want_L, want_inv = naive_pytorch3d_cot(verts, faces)
    torch.testing.assert_close(dense(L).cpu(), want_L, rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(inv_areas.cpu(), want_inv)
    assert inv_areas.shape == (verts.shape[0], 1) and L.dtype == torch.float64


def test_cot_laplacian_keeps_pytorch3d_clamp_on_degenerate_face():
    verts = torch.tensor([[0.0, 0, 0], [1, 0, 0], [2, 0, 0], [0, 1, 0]], dtype=torch.float64)
    faces = torch.tensor([[0, 1, 2], [0, 1, 3]])
    L, inv_areas = cot_laplacian(verts, faces)
    assert torch.isfinite(dense(L)).all() and torch.isfinite(inv_areas).all()
    # Collinear face: numerators over 4 * sqrt(eps) as in PyTorch3D (e.g. at vertex 1: -(1 + 1) on edge (0, 2)).
    assert dense(L)[0, 2] == pytest.approx(-2 / (4 * 1e-6), rel=1e-6)


def test_uniform_laplacian_matches_naive_with_duplicate_edges_and_lonely_vertex(device):
    verts = torch.rand(6, 3, dtype=torch.float64)
    edges = torch.tensor([[0, 1], [1, 2], [2, 0], [2, 3], [2, 3], [3, 4]])
    got = dense(laplacian(verts.to(device), edges.to(device))).cpu()
    torch.testing.assert_close(got, naive_uniform(6, edges))
    assert got[5, 5] == -1 and got[5].abs().sum() == 1
    assert torch.allclose(got[:5].sum(1), torch.zeros(5, dtype=torch.float64))


def test_norm_laplacian_is_symmetric_inverse_lengths():
    verts = torch.rand(5, 3, dtype=torch.float64)
    edges = torch.tensor([[0, 1], [1, 4], [2, 3]])
    got = dense(norm_laplacian(verts, edges))
    want = torch.zeros(5, 5, dtype=torch.float64)
    for i, j in edges.tolist():
        want[i, j] = want[j, i] = 1 / ((verts[i] - verts[j]).norm() + 1e-12)
    torch.testing.assert_close(got, want)


# ----------------------------------------------------------------------------- FEM operators
def test_cotangent_weights_hand_values_on_right_triangle():
    verts = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=torch.float64)
    W = dense(cotangent_weights(verts, torch.tensor([[0, 1, 2]])))
    # Right angle at vertex 0 (cot 0), 45 degrees at 1 and 2 (cot 1): W = cot / 2 of the opposite angle.
    want = torch.tensor([[0, 0.5, 0.5], [0.5, 0, 0], [0.5, 0, 0]], dtype=torch.float64)
    torch.testing.assert_close(W, want)
    cot, areas = face_cotangents(verts, torch.tensor([[0, 1, 2]]))
    torch.testing.assert_close(cot, torch.tensor([[0.0, 1, 1]], dtype=torch.float64))
    assert float(areas) == pytest.approx(0.5)


def test_cotangent_weights_on_regular_grid_hand_values():
    n = 4
    verts, faces = grid_mesh(n)
    W = dense(cotangent_weights(verts, faces))
    # Every triangle is right isosceles: a diagonal edge faces two right angles (W = 0), an interior
    # axis edge faces two 45 degree angles (W = (1 + 1) / 2 = 1), a boundary axis edge one (W = 1/2).
    centre = 1 * n + 1
    axis = [centre - 1, centre + 1, centre - n, centre + n]
    assert W[centre, axis].tolist() == pytest.approx([1.0] * 4)
    neighbours = set(faces[(faces == centre).any(1)].reshape(-1).tolist()) - {centre}
    for j in neighbours - set(axis):
        assert abs(float(W[centre, j])) < 1e-15
    assert float(W[0, 1]) == pytest.approx(0.5)


@pytest.mark.parametrize("seed", [0, 3])
def test_cotangent_weights_match_naive_twin(seed):
    verts, faces = random_mesh(seed, dtype=torch.float64)
    torch.testing.assert_close(dense(cotangent_weights(verts, faces)), naive_cotangent_weights(verts, faces),
                               rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("kind", ["cot", "uniform"])
def test_stiffness_is_symmetric_psd_with_zero_rows(kind, device):
    verts, faces = sphere_mesh(2)
    L = dense(stiffness_matrix(verts.to(device), faces.to(device), kind=kind)).cpu()
    torch.testing.assert_close(L, L.T)
    torch.testing.assert_close(L.sum(1), torch.zeros(L.shape[0], dtype=L.dtype), atol=1e-12, rtol=0)
    evals = torch.linalg.eigvalsh(L)
    assert evals[0].abs() < 1e-10 and evals[1] > 1e-3


def test_null_space_is_constants_per_component_with_isolated_vertex():
    v1, f1 = sphere_mesh(1)
    v2, f2 = grid_mesh(4)
    verts = torch.cat([v1, v2 + 5, torch.zeros(1, 3, dtype=torch.float64)])
    faces = torch.cat([f1, f2 + v1.shape[0]])
    L, M = dense(stiffness_matrix(verts, faces)), dense(mass_matrix(verts, faces))
    assert (L[-1] == 0).all() and (L[:, -1] == 0).all()
    m = M.diagonal()
    assert m[-1] == pytest.approx(ISOLATED_MASS_FRACTION * float(m[:-1].mean()))
    evals, evecs = torch.linalg.eigh(L)
    null = evecs[:, evals.abs() < 1e-10]
    assert null.shape[1] == 3
    # Each null vector is constant on each component.
    for lo, hi in [(0, v1.shape[0]), (v1.shape[0], v1.shape[0] + v2.shape[0])]:
        block = null[lo:hi]
        torch.testing.assert_close(block, block[:1].expand_as(block), atol=1e-9, rtol=0)


def test_linear_function_is_harmonic_in_interior_of_flat_grid():
    verts, faces = grid_mesh(7, jitter=0.5)
    L = dense(stiffness_matrix(verts, faces))
    f = 0.3 + 2 * verts[:, 0] - 1.5 * verts[:, 1]
    interior = (verts[:, 0] > 1e-9) & (verts[:, 0] < 1 - 1e-9) & (verts[:, 1] > 1e-9) & (verts[:, 1] < 1 - 1e-9)
    Lf = L @ f
    assert Lf[interior].abs().max() < 1e-12
    assert Lf[~interior].abs().max() > 1e-3


def test_sphere_coordinates_satisfy_l_x_equals_2_m_x():
    verts, faces = sphere_mesh(4)
    # Delta x = -2 x on the unit sphere and L = -M Delta; the lumped mass is pointwise inexact
    # near the 12 valence-5 vertices, hence the 1% tolerance.
    L, M = stiffness_matrix(verts, faces), mass_matrix(verts, faces)
    lhs, rhs = torch.sparse.mm(L, verts), 2 * torch.sparse.mm(M, verts)
    assert ((lhs - rhs).norm() / rhs.norm()) < 1e-2


@pytest.mark.parametrize("kind", ["lumped", "full", "voronoi"])
def test_mass_sums_to_area_and_is_spd(kind, device):
    verts, faces = grid_mesh(5, size=2.0, jitter=0.6)
    M = dense(mass_matrix(verts.to(device), faces.to(device), kind)).cpu()
    assert float(M.sum()) == pytest.approx(4.0)
    torch.testing.assert_close(M, M.T)
    assert torch.linalg.eigvalsh(M)[0] > 0


@pytest.mark.skipif(not HAS_IGL, reason="libigl not installed")
@pytest.mark.parametrize("kind", ["lumped", "full", "voronoi"])
def test_operators_match_libigl(kind):
    import igl

    verts, faces = grid_mesh(6, jitter=0.9, seed=2)  # jittered: includes obtuse triangles
    verts = torch.cat([verts, torch.zeros(1, 3, dtype=torch.float64)])  # unreferenced in igl too
    verts[:, 2] = 0.2 * torch.sin(3 * verts[:, 0])
    v, f = verts.numpy(), faces.numpy()
    L = sparse_to_scipy(stiffness_matrix(verts, faces)).toarray()
    assert abs(L + igl.cotmatrix(v, f).toarray()).max() < 1e-12
    igl_kind = {"lumped": igl.MASSMATRIX_TYPE_BARYCENTRIC, "full": igl.MASSMATRIX_TYPE_FULL,
                "voronoi": igl.MASSMATRIX_TYPE_VORONOI}[kind]
    M = sparse_to_scipy(mass_matrix(verts, faces, kind)).toarray()[:-1, :-1]
    assert abs(M - igl.massmatrix(v, f, igl_kind).toarray()).max() < 1e-14  # igl sizes M by the faces


def test_degenerate_faces_contribute_nothing():
    verts, faces = grid_mesh(4)
    extra = torch.tensor([[1.0, 1.0, 0.0], [2.0, 2.0, 0.0], [3.0, 3.0, 0.0]], dtype=torch.float64)
    verts2 = torch.cat([verts, extra])
    n = verts.shape[0]
    bad = torch.tensor([[n, n + 1, n + 2], [0, 0, 1], [2, n, n]])  # collinear, repeated indices
    faces2 = torch.cat([faces, bad])
    for fn in (lambda v, f: stiffness_matrix(v, f), lambda v, f: mass_matrix(v, f, "voronoi"),
               lambda v, f: mass_matrix(v, f, "full"), lambda v, f: stiffness_matrix(v, f)):
        got, want = dense(fn(verts2, faces2)), dense(fn(verts, faces))
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got[:n, :n], want)
    L = dense(stiffness_matrix(verts2, faces2))
    assert (L[n:] == 0).all()
    assert (dense(mass_matrix(verts2, faces2)).diagonal()[n:] > 0).all()


def test_meshes_batch_is_block_diagonal():
    v1, f1 = sphere_mesh(1)
    v2, f2 = grid_mesh(4)
    meshes = Meshes([v1, v2], [f1, f2])
    for fn in (cotangent_weights, stiffness_matrix, mass_matrix,
               lambda v, f=None: mass_matrix(v, f, "voronoi"), lambda v, f=None: robust_laplacian(v, f)[0]):
        got = dense(fn(meshes))
        want = torch.block_diag(dense(fn(v1, f1)), dense(fn(v2, f2)))
        torch.testing.assert_close(got, want)


def test_empty_mesh_gives_empty_matrices():
    verts = torch.zeros(0, 3, dtype=torch.float64)
    faces = torch.zeros(0, 3, dtype=torch.long)
    assert stiffness_matrix(verts, faces).shape == (0, 0)
    assert mass_matrix(verts, faces).shape == (0, 0)
    L, M = robust_laplacian(torch.rand(3, 3, dtype=torch.float64), torch.zeros(0, 3, dtype=torch.long))
    assert (L.to_dense() == 0).all() and (M.to_dense().diagonal() > 0).all()


def test_gradients_of_quadratic_forms_float64():
    verts, faces = grid_mesh(3, jitter=0.4)
    verts[:, 2] = 0.1 * torch.arange(9, dtype=torch.float64).sin()
    x = torch.linspace(-1, 1, 9, dtype=torch.float64)

    def energy(v):
        L = stiffness_matrix(v, faces)
        M = mass_matrix(v, faces, "voronoi")
        Lp, inv = cot_laplacian(v, faces)
        return (x @ torch.sparse.mm(L, x[:, None]).squeeze(1) + x @ torch.sparse.mm(M, x[:, None]).squeeze(1)
                + torch.sparse.mm(Lp, x[:, None]).sum() + inv.sum())

    assert torch.autograd.gradcheck(energy, (verts.clone().requires_grad_(),))


# ----------------------------------------------------------------------------- robust Laplacian
@pytest.mark.skipif(not HAS_ROBUST, reason="robust_laplacian not installed")
def test_robust_laplacian_matches_package_on_clean_mesh():
    import robust_laplacian as rl

    verts, faces = sphere_mesh(3)
    L, M = robust_laplacian(verts, faces)
    want_L, want_M = rl.mesh_laplacian(verts.numpy(), faces.numpy())
    assert abs(sparse_to_scipy(L) - want_L).max() < 1e-8
    assert abs(sparse_to_scipy(M) - want_M).max() < 1e-12


@pytest.mark.skipif(not HAS_ROBUST, reason="robust_laplacian not installed")
def test_robust_point_cloud_spectrum_close_to_package():
    import robust_laplacian as rl
    import scipy.sparse.linalg as sla

    g = torch.Generator().manual_seed(0)
    p = torch.randn(800, 3, generator=g, dtype=torch.float64)
    p = p / p.norm(dim=1, keepdim=True)
    L, M = robust_laplacian(p)
    want_L, want_M = rl.point_cloud_laplacian(p.numpy())
    ours = sla.eigsh(sparse_to_scipy(L), 10, sparse_to_scipy(M), sigma=-1e-8)[0]
    theirs = sla.eigsh(want_L, 10, want_M, sigma=-1e-8)[0]
    assert abs(float(M.to_dense().sum()) - want_M.sum()) < 0.02 * want_M.sum()
    assert abs(ours[1:] - theirs[1:]).max() < 0.05 * theirs[1:].max()
    # The first 9 nonzero eigenvalues of the unit sphere are 2 (x3) and 6 (x5).
    assert abs(ours[1:4] - 2).max() < 0.15 and abs(ours[4:9] - 6).max() < 0.5


def test_robust_laplacian_on_nonmanifold_degenerate_soup_is_finite():
    verts = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [2, 0, 0], [3, 0, 0]],
                         dtype=torch.float64)
    faces = torch.tensor([[0, 1, 2], [0, 1, 3], [0, 1, 4],   # three faces on edge (0, 1)
                          [1, 5, 6], [1, 1, 2]])               # a collinear face, a repeated index
    L, M = robust_laplacian(verts, faces)
    L, M = dense(L), dense(M)
    assert torch.isfinite(L).all() and torch.isfinite(M).all()
    torch.testing.assert_close(L, L.T)
    torch.testing.assert_close(L.sum(1), torch.zeros(7, dtype=torch.float64), atol=1e-9, rtol=0)
    assert (M.diagonal() > 0).all()
    # Mollification gives the collinear face a finite, nonzero weight.
    assert L[5, 6] != 0


def test_robust_laplacian_pointclouds_batch_is_block_diagonal():
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(40, 3, generator=g, dtype=torch.float64), torch.rand(25, 3, generator=g, dtype=torch.float64)
    L, M = robust_laplacian(Pointclouds([a, b]), n_neighbors=8)
    La, Ma = robust_laplacian(a, n_neighbors=8)
    Lb, Mb = robust_laplacian(b, n_neighbors=8)
    torch.testing.assert_close(dense(L), torch.block_diag(dense(La), dense(Lb)))
    torch.testing.assert_close(dense(M), torch.block_diag(dense(Ma), dense(Mb)))


@pytest.mark.skipif(importlib.util.find_spec("numba") is None, reason="numba not installed")
def test_point_cloud_stars_numba_match_scipy_delaunay():
    from collections import Counter

    from geo4g.meshes import laplacian_matrices as module

    g = torch.Generator().manual_seed(3)
    p = torch.randn(600, 3, generator=g, dtype=torch.float64)
    p = p / p.norm(dim=1, keepdim=True) + 0.01 * torch.randn(600, 3, generator=g, dtype=torch.float64)
    flat = torch.rand(300, 3, generator=g, dtype=torch.float64) * torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64)
    for cloud, k in ((p, 30), (p, 8), (flat, 12)):  # the flat square has boundary points with partial stars
        fast = module._local_triangles(cloud, k, "numba")
        slow = module._local_triangles(cloud, k, "reference")
        assert Counter(map(tuple, fast.sort(1).values.tolist())) == Counter(map(tuple, slow.sort(1).values.tolist()))
        assert (fast[:, 0] == torch.repeat_interleave(torch.arange(cloud.shape[0]), torch.bincount(
            fast[:, 0], minlength=cloud.shape[0]))).all()


def test_robust_point_cloud_handles_duplicates_and_tiny_clouds():
    p = torch.tensor([[0.0, 0, 0], [0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]], dtype=torch.float64)
    L, M = robust_laplacian(p)
    assert torch.isfinite(dense(L)).all() and (dense(M).diagonal() > 0).all()
    L2, M2 = robust_laplacian(p[:2])
    assert (L2.to_dense() == 0).all() and M2.shape == (2, 2)


# ----------------------------------------------------------------------------- bad input
def test_bad_input_raises_clear_errors():
    verts, faces = grid_mesh(3)
    with pytest.raises(ValueError, match="kind must be one of"):
        stiffness_matrix(verts, faces, kind="cotan")
    with pytest.raises(ValueError, match="kind must be one of"):
        mass_matrix(verts, faces, kind="barycentric")
    with pytest.raises(ValueError, match=r"verts must have last dimension 3"):
        cotangent_weights(verts[:, :2], faces)
    with pytest.raises(TypeError, match="faces must be an integer tensor"):
        stiffness_matrix(verts, faces.double())
    with pytest.raises(ValueError, match=r"faces indices must lie in \[0, 9\)"):
        mass_matrix(verts, faces + 5)
    with pytest.raises(ValueError, match="verts must be finite"):
        stiffness_matrix(verts.clone().fill_(float("nan")), faces)
    with pytest.raises(ValueError, match="faces .* is required"):
        stiffness_matrix(verts)
    with pytest.raises(ValueError, match="faces must be None"):
        stiffness_matrix(Meshes([verts], [faces]), faces)
    with pytest.raises(ValueError, match="edges indices"):
        laplacian(verts, torch.tensor([[0, 9]]))
    with pytest.raises(ValueError, match="mollify_factor"):
        robust_laplacian(verts, faces, mollify_factor=-1.0)
    with pytest.raises(ValueError, match="n_neighbors"):
        robust_laplacian(verts, n_neighbors=1)
    with pytest.raises(TypeError, match="matrix must be a 2-D torch tensor"):
        sparse_to_scipy(verts[0])
