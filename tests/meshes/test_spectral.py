"""Spectral bases and descriptors: the unit sphere's spectrum, Lanczos against dense, M-orthonormality,
signs, k limits, the caches, batches, heat and wave kernel signatures (naive twins, positivity,
monotonicity, isometry and scale invariance, normalisation), spectral filters, heat diffusion in the
eigenbasis against implicit Euler (and conjugate gradients against the direct solver), gradients,
bad input."""
import pytest
import torch

from geo4g.meshes import spectral
from geo4g.meshes.laplacian_matrices import mass_matrix, stiffness_matrix
from geo4g.meshes.spectral import (
    SPDSolver,
    clear_eigenpairs_cache,
    heat_diffusion,
    heat_kernel_signature,
    laplacian_eigenpairs,
    spectral_filter,
    wave_kernel_signature,
)
from geo4g.structures import Meshes, Pointclouds

from ._meshes import grid_mesh, sphere_mesh


def bumpy_grid(n=9, seed=0):
    """A jittered, curved grid: no symmetry, so the eigenvalues are simple."""
    verts, faces = grid_mesh(n, jitter=0.5, seed=seed)
    verts[:, 2] = 0.2 * torch.sin(3 * verts[:, 0]) * torch.cos(2 * verts[:, 1])
    return verts, faces


def diag_mass(verts, faces):
    return mass_matrix(verts, faces).to_dense().diagonal()


@pytest.fixture(autouse=True)
def fresh_cache():
    clear_eigenpairs_cache()
    yield
    clear_eigenpairs_cache()


# ----------------------------------------------------------------------------- eigenpairs
def test_unit_sphere_spectrum_matches_spherical_harmonics():
    verts, faces = sphere_mesh(4)  # 2562 vertices
    evals, evecs = laplacian_eigenpairs(verts, faces, k=25, method="eigsh")
    want = torch.tensor([l * (l + 1) for l in range(5) for _ in range(2 * l + 1)], dtype=torch.float64)
    assert abs(float(evals[0])) < 1e-8
    assert ((evals[1:] - want[1:]).abs() / want[1:]).max() < 0.02
    # Multiplicities 2l + 1: the gaps between clusters dwarf the spread within them.
    clusters = [evals[l * l:(l + 1) ** 2] for l in range(5)]
    for lo, hi in zip(clusters, clusters[1:]):
        assert float(hi.min() - lo.max()) > 50 * max(float(lo.max() - lo.min()), float(hi.max() - hi.min()))


def test_eigsh_and_dense_agree_including_signs(device):
    verts, faces = bumpy_grid()
    a = laplacian_eigenpairs(verts, faces, k=12, method="eigsh", cache=False)
    b = laplacian_eigenpairs(verts.to(device), faces.to(device), k=12, method="dense", cache=False)
    torch.testing.assert_close(a.evals, b.evals.cpu(), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(a.evecs, b.evecs.cpu(), rtol=1e-6, atol=1e-6)
    assert b.evecs.device.type == torch.device(device).type


@pytest.mark.parametrize("method", ["eigsh", "dense"])
@pytest.mark.parametrize("mass", ["lumped", "voronoi", "full"])
def test_eigenvectors_are_m_orthonormal_with_sign_convention(method, mass):
    verts, faces = bumpy_grid(seed=1)
    evals, evecs = laplacian_eigenpairs(verts, faces, k=10, mass=mass, method=method, cache=False)
    M, L = mass_matrix(verts, faces, mass).to_dense(), stiffness_matrix(verts, faces).to_dense()
    torch.testing.assert_close(evecs.T @ M @ evecs, torch.eye(10, dtype=torch.float64), atol=1e-10, rtol=0)
    torch.testing.assert_close(L @ evecs, M @ evecs * evals, atol=1e-8, rtol=0)
    assert (evals[1:] >= evals[:-1]).all()
    top = evecs.gather(0, evecs.abs().argmax(0)[None])
    assert (top > 0).all()


def test_k_limits():
    verts, faces = grid_mesh(4)
    with pytest.raises(ValueError, match=r"k must lie in \[1, V\] = \[1, 16\]"):
        laplacian_eigenpairs(verts, faces, k=17)
    with pytest.raises(ValueError, match="k must lie"):
        laplacian_eigenpairs(verts, faces, k=0)
    with pytest.raises(ValueError, match="method='eigsh' needs k < V - 1"):
        laplacian_eigenpairs(verts, faces, k=15, method="eigsh")
    evals, evecs = laplacian_eigenpairs(verts, faces, k=16)  # k == V: dense
    assert evals.shape == (16,) and evecs.shape == (16, 16)


def test_uniform_and_robust_laplacians_and_point_clouds():
    verts, faces = sphere_mesh(2)
    uniform = laplacian_eigenpairs(verts, faces, k=6, laplacian="uniform")
    robust = laplacian_eigenpairs(verts, faces, k=6, laplacian="robust")
    cot = laplacian_eigenpairs(verts, faces, k=6)
    torch.testing.assert_close(robust.evals, cot.evals, rtol=1e-6, atol=1e-8)
    assert not torch.allclose(uniform.evals, cot.evals)
    cloud = laplacian_eigenpairs(verts, None, k=6, laplacian="robust")
    assert ((cloud.evals[1:4] - 2).abs() < 0.2).all()
    with pytest.raises(ValueError, match="needs laplacian='robust'"):
        laplacian_eigenpairs(verts, None, k=6)


def test_batches_give_one_result_per_item():
    v1, f1 = sphere_mesh(1)
    v2, f2 = bumpy_grid()
    got = laplacian_eigenpairs(Meshes([v1, v2], [f1, f2]), k=5)
    for (evals, evecs), (v, f) in zip(got, [(v1, f1), (v2, f2)]):
        want = laplacian_eigenpairs(v, f, k=5, cache=False)
        torch.testing.assert_close(evals, want.evals)
        torch.testing.assert_close(evecs, want.evecs)
    clouds = laplacian_eigenpairs(Pointclouds([v1, v1[:30]]), k=4, laplacian="robust")
    assert [e.evecs.shape for e in clouds] == [(42, 4), (30, 4)]


def test_float32_input_returns_float32():
    verts, faces = bumpy_grid()
    evals, evecs = laplacian_eigenpairs(verts.float(), faces, k=4)
    assert evals.dtype == torch.float32 and evecs.dtype == torch.float32


def test_memory_cache_reuses_and_evicts(monkeypatch):
    calls = []
    original = spectral._dense_eigenpairs
    monkeypatch.setattr(spectral, "_dense_eigenpairs", lambda *a: calls.append(1) or original(*a))
    monkeypatch.setattr(spectral, "CACHE_SIZE", 2)
    verts, faces = grid_mesh(4)
    first = laplacian_eigenpairs(verts, faces, k=4)
    second = laplacian_eigenpairs(verts.clone(), faces.clone(), k=4)
    assert len(calls) == 1 and torch.equal(first.evecs, second.evecs)
    laplacian_eigenpairs(verts, faces, k=5)  # other options: another entry
    laplacian_eigenpairs(verts + 1, faces, k=4)  # other vertices: another entry, evicts the first
    assert len(calls) == 3
    laplacian_eigenpairs(verts, faces, k=4)
    assert len(calls) == 4
    laplacian_eigenpairs(verts, faces, k=4, cache=False)
    assert len(calls) == 5


def test_disk_cache_survives_memory_clear(tmp_path, monkeypatch):
    verts, faces = grid_mesh(4)
    want = laplacian_eigenpairs(verts, faces, k=4, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.pt"))) == 1
    clear_eigenpairs_cache()
    monkeypatch.setattr(spectral, "_dense_eigenpairs", lambda *a: pytest.fail("recomputed"))
    got = laplacian_eigenpairs(verts, faces, k=4, cache_dir=tmp_path)
    torch.testing.assert_close(got.evecs, want.evecs)
    clear_eigenpairs_cache()
    next(tmp_path.glob("*.pt")).write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="cannot read eigenpairs cache file"):
        laplacian_eigenpairs(verts, faces, k=4, cache_dir=tmp_path)


# ----------------------------------------------------------------------------- signatures
def naive_hks(evals, evecs, times):
    out = torch.zeros(evecs.shape[0], len(times), dtype=evecs.dtype)
    for j, t in enumerate(times.tolist()):
        for i in range(evals.shape[0]):
            out[:, j] += torch.exp(-evals[i] * t) * evecs[:, i] ** 2
    return out


def test_hks_matches_naive_and_is_positive_decreasing():
    verts, faces = sphere_mesh(2)
    evals, evecs = laplacian_eigenpairs(verts, faces, k=20)
    times = torch.tensor([0.01, 0.05, 0.3, 1.0], dtype=torch.float64)
    hks = heat_kernel_signature(evals, evecs, times)
    torch.testing.assert_close(hks, naive_hks(evals, evecs, times))
    assert (hks > 0).all() and (hks[:, 1:] < hks[:, :-1]).all()
    default = heat_kernel_signature(evals, evecs, 8)
    assert default.shape == (verts.shape[0], 8) and (default[:, 1:] <= default[:, :-1]).all()


def test_hks_is_invariant_to_rigid_motion_and_scales_with_time():
    verts, faces = bumpy_grid(seed=3)
    times = torch.tensor([0.005, 0.02, 0.1], dtype=torch.float64)
    evals, evecs = laplacian_eigenpairs(verts, faces, k=15)
    hks = heat_kernel_signature(evals, evecs, times)
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    moved = verts @ q.T + torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    torch.testing.assert_close(heat_kernel_signature(*laplacian_eigenpairs(moved, faces, k=15), times), hks)
    s = 2.5
    scaled = heat_kernel_signature(*laplacian_eigenpairs(verts * s, faces, k=15), times * s * s)
    torch.testing.assert_close(scaled * s * s, hks)


def test_wks_is_normalised_nonnegative_and_invariant():
    verts, faces = bumpy_grid(seed=4)
    evals, evecs = laplacian_eigenpairs(verts, faces, k=20)
    wks = wave_kernel_signature(evals, evecs, 10)
    assert wks.shape == (verts.shape[0], 10) and (wks >= 0).all()
    m = diag_mass(verts, faces)
    torch.testing.assert_close(m @ wks, torch.ones(10, dtype=torch.float64))
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    moved = laplacian_eigenpairs(verts @ q.T, faces, k=20)
    torch.testing.assert_close(wave_kernel_signature(*moved, 10), wks)
    energies = torch.log(evals[1:6])
    explicit = wave_kernel_signature(evals, evecs, energies, sigma=0.3)
    want = torch.zeros(verts.shape[0], 5, dtype=torch.float64)
    for j, e in enumerate(energies.tolist()):
        w = torch.exp(-(e - torch.log(evals[1:])) ** 2 / (2 * 0.3 ** 2))
        want[:, j] = (evecs[:, 1:] ** 2 * w).sum(1) / w.sum()
    torch.testing.assert_close(explicit, want)


def test_signatures_batched_match_unbatched():
    verts, faces = bumpy_grid(seed=5)
    evals, evecs = laplacian_eigenpairs(verts, faces, k=12)
    b_evals, b_evecs = torch.stack([evals, evals * 2]), torch.stack([evecs, evecs])
    times = torch.tensor([0.01, 0.1], dtype=torch.float64)
    hks = heat_kernel_signature(b_evals, b_evecs, times)
    torch.testing.assert_close(hks[0], heat_kernel_signature(evals, evecs, times))
    torch.testing.assert_close(hks[1], heat_kernel_signature(evals * 2, evecs, times))
    wks = wave_kernel_signature(b_evals, b_evecs, 6)
    torch.testing.assert_close(wks[1], wave_kernel_signature(evals * 2, evecs, 6))


def test_signature_gradients_float64():
    verts, faces = grid_mesh(4)
    evals, evecs = laplacian_eigenpairs(verts, faces, k=6)
    times = torch.tensor([0.05, 0.2], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda e, v, t: heat_kernel_signature(e, v, t),
                                    (evals.clone().requires_grad_(), evecs.clone().requires_grad_(), times))
    assert torch.autograd.gradcheck(lambda v: wave_kernel_signature(evals, v, 4), (evecs.clone().requires_grad_(),))


# ----------------------------------------------------------------------------- filters and diffusion
def test_spectral_filter_identity_with_full_basis_and_low_pass_truncation():
    verts, faces = bumpy_grid(n=6)
    V = verts.shape[0]
    evals, evecs = laplacian_eigenpairs(verts, faces, k=V)
    M = mass_matrix(verts, faces)
    f = torch.randn(V, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(spectral_filter(f, evals, evecs, M, lambda lam: torch.ones_like(lam)), f)
    low = spectral_filter(f, evals[:5], evecs[:, :5], M, torch.ones(5, dtype=torch.float64))
    coeffs = evecs.T @ (M.to_dense() @ low)
    assert coeffs[5:].abs().max() < 1e-10
    per_channel = spectral_filter(f, evals, evecs, M.to_dense().diagonal(),
                                  torch.stack([torch.ones(V), torch.zeros(V), evals], 1).double())
    torch.testing.assert_close(per_channel[:, 0], f[:, 0])
    assert per_channel[:, 1].abs().max() < 1e-12
    L = stiffness_matrix(verts, faces).to_dense()
    torch.testing.assert_close(per_channel[:, 2], torch.linalg.solve(M.to_dense(), L @ f[:, 2]))


def test_spectral_filter_batches_and_gradients():
    verts, faces = grid_mesh(4)
    evals, evecs = laplacian_eigenpairs(verts, faces, k=8)
    m = diag_mass(verts, faces)
    f = torch.randn(2, 16, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    shared = spectral_filter(f, evals, evecs, m, lambda lam: torch.exp(-lam))
    torch.testing.assert_close(shared[1], spectral_filter(f[1], evals, evecs, m, lambda lam: torch.exp(-lam)))
    batched = spectral_filter(f, torch.stack([evals] * 2), torch.stack([evecs] * 2), torch.stack([m] * 2),
                              lambda lam: torch.exp(-lam))
    torch.testing.assert_close(batched, shared)
    response = torch.rand(8, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, h: spectral_filter(x, evals, evecs, m, h),
                                    (f[0].clone().requires_grad_(), response))


def test_heat_diffusion_one_implicit_step_equals_its_spectral_filter():
    verts, faces = bumpy_grid(n=6)
    V = verts.shape[0]
    evals, evecs = laplacian_eigenpairs(verts, faces, k=V)
    M, L = mass_matrix(verts, faces), stiffness_matrix(verts, faces)
    f = torch.randn(V, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    t = 0.03
    implicit = heat_diffusion(f, t, mass=M, stiffness=L, method="implicit")
    torch.testing.assert_close(implicit, spectral_filter(f, evals, evecs, M, lambda lam: 1 / (1 + t * lam)))


def test_heat_diffusion_spectral_and_implicit_euler_agree_and_conserve_heat():
    verts, faces = sphere_mesh(3)
    M, L = mass_matrix(verts, faces), stiffness_matrix(verts, faces)
    evals, evecs = laplacian_eigenpairs(verts, faces, k=60)
    bump = torch.exp(-8 * ((verts - verts[0]) ** 2).sum(1, keepdim=True))
    # Inside the basis, so that the two differ only by exp(-t lambda) against (1 + t lambda / n)^-n.
    f = spectral_filter(bump, evals, evecs, M, lambda lam: torch.ones_like(lam))
    t = 0.05
    spectral_u = heat_diffusion(f, t, evals=evals, evecs=evecs, mass=M)
    implicit_u = heat_diffusion(f, t, mass=M, stiffness=L, method="implicit", steps=200)
    assert (spectral_u - implicit_u).abs().max() < 5e-3 * f.max()
    m = M.to_dense().diagonal()
    total = float(m @ f[:, 0])
    assert float(m @ spectral_u[:, 0]) == pytest.approx(total, rel=1e-10)
    assert float(m @ implicit_u[:, 0]) == pytest.approx(total, rel=1e-10)
    mean = total / float(m.sum())
    late = heat_diffusion(f, 50.0, mass=M, stiffness=L, method="implicit", steps=5)
    assert (late - mean).abs().max() < 1e-6 * mean
    late_spectral = heat_diffusion(f, 50.0, evals=evals, evecs=evecs, mass=M)
    assert (late_spectral - mean).abs().max() < 1e-6 * mean


def test_heat_diffusion_per_channel_times_and_gradient():
    verts, faces = grid_mesh(4)
    evals, evecs = laplacian_eigenpairs(verts, faces, k=10)
    m = diag_mass(verts, faces)
    f = torch.randn(16, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    t = torch.tensor([0.01, 0.2], dtype=torch.float64, requires_grad=True)
    u = heat_diffusion(f, t, evals=evals, evecs=evecs, mass=m)
    torch.testing.assert_close(u[:, 1], heat_diffusion(f, 0.2, evals=evals, evecs=evecs, mass=m)[:, 1])
    assert torch.autograd.gradcheck(lambda x, tt: heat_diffusion(x, tt, evals=evals, evecs=evecs, mass=m),
                                    (f.clone().requires_grad_(), t))


def test_spd_solver_cg_matches_direct(device):
    verts, faces = sphere_mesh(2)
    A = (mass_matrix(verts, faces) + 0.1 * stiffness_matrix(verts, faces)).coalesce()
    b = torch.randn(verts.shape[0], 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    direct = SPDSolver(A, method="direct")(b)
    cg = SPDSolver(A.to(device), method="cg")(b.to(device))
    torch.testing.assert_close(cg.cpu(), direct, rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(torch.sparse.mm(A, direct), b)
    assert "direct" in repr(SPDSolver(A))
    assert SPDSolver(A, method="cg")(b[:, 0]).shape == (verts.shape[0],)


def test_nested_dissection_order_is_a_permutation_and_solves_exactly():
    import numpy as np

    from geo4g.meshes.laplacian_matrices import sparse_to_scipy
    from geo4g.meshes.spectral import nested_dissection_order

    import scipy.sparse.linalg as sla

    verts, faces = sphere_mesh(4)
    A = (mass_matrix(verts, faces) + 0.01 * stiffness_matrix(verts, faces)).coalesce()
    As = sparse_to_scipy(A)
    perm = nested_dissection_order(verts.numpy(), As, leaf_size=16)
    assert np.array_equal(np.sort(perm), np.arange(verts.shape[0]))
    nd = sla.splu(As[perm][:, perm].tocsc(), permc_spec="NATURAL", options=dict(SymmetricMode=True))
    colamd = sla.splu(As.tocsc())
    assert nd.L.nnz + nd.U.nnz < 0.8 * (colamd.L.nnz + colamd.U.nnz)
    b = torch.randn(verts.shape[0], 2, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    with_order = SPDSolver(A, method="direct", points=verts)(b)
    torch.testing.assert_close(with_order, SPDSolver(A, method="direct")(b))
    torch.testing.assert_close(torch.sparse.mm(A, with_order), b)


def test_implicit_diffusion_with_cg_solver_matches_direct():
    verts, faces = grid_mesh(5)
    M, L = mass_matrix(verts, faces, "full"), stiffness_matrix(verts, faces)
    f = torch.rand(25, 1, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    a = heat_diffusion(f, 0.1, mass=M, stiffness=L, method="implicit", steps=3, solver="direct")
    b = heat_diffusion(f, 0.1, mass=M, stiffness=L, method="implicit", steps=3, solver="cg")
    torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-9)


# ----------------------------------------------------------------------------- bad input
def test_bad_input_raises_clear_errors():
    verts, faces = grid_mesh(4)
    evals, evecs = laplacian_eigenpairs(verts, faces, k=4)
    with pytest.raises(ValueError, match="laplacian must be one of"):
        laplacian_eigenpairs(verts, faces, k=4, laplacian="cotan")
    with pytest.raises(ValueError, match="method must be one of"):
        laplacian_eigenpairs(verts, faces, k=4, method="lobpcg")
    with pytest.raises(TypeError, match="k must be an int"):
        laplacian_eigenpairs(verts, faces, k=4.0)
    with pytest.raises(ValueError, match="mass must be 'lumped'"):
        laplacian_eigenpairs(verts, faces, k=4, laplacian="robust", mass="full")
    with pytest.raises(ValueError, match="evecs .* must match evals"):
        heat_kernel_signature(evals[:3], evecs, 4)
    with pytest.raises(ValueError, match="times must be a positive count"):
        heat_kernel_signature(evals, evecs, 0)
    with pytest.raises(ValueError, match="signal must have V=16 rows"):
        spectral_filter(torch.zeros(15, 1, dtype=torch.float64), evals, evecs, None, torch.ones(4))
    with pytest.raises(ValueError, match="diagonal .* mass matrix"):
        spectral_filter(torch.zeros(16, 1, dtype=torch.float64), evals, evecs, mass_matrix(verts, faces, "full"),
                        torch.ones(4, dtype=torch.float64))
    with pytest.raises(ValueError, match="response must have shape"):
        spectral_filter(torch.zeros(16, 1, dtype=torch.float64), evals, evecs, None,
                        torch.ones(3, 1, dtype=torch.float64))
    with pytest.raises(ValueError, match="needs evals and evecs"):
        heat_diffusion(torch.zeros(16, 1), 0.1)
    with pytest.raises(ValueError, match="t must be a non-negative"):
        heat_diffusion(torch.zeros(16, 1, dtype=torch.float64), -1.0, evals=evals, evecs=evecs, mass=None)
    with pytest.raises(ValueError, match="needs mass as a sparse"):
        heat_diffusion(torch.zeros(16, 1), 0.1, method="implicit")
    with pytest.raises(ValueError, match="steps must be an int"):
        heat_diffusion(torch.zeros(16, 1), 0.1, method="implicit", steps=0)
    with pytest.raises(ValueError, match="sigma must be positive"):
        wave_kernel_signature(evals, evecs, 4, sigma=0.0)
    with pytest.raises(ValueError, match="nonzero eigenvalue"):
        wave_kernel_signature(torch.zeros(1, dtype=torch.float64), evecs[:, :1], 4)
    with pytest.raises(ValueError, match="nonzero eigenvalue"):
        heat_kernel_signature(torch.zeros(1, dtype=torch.float64), evecs[:, :1], 4)
