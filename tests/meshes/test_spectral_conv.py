"""Spectral convolution: against a dense computation in the full eigenbasis and spectral_filter,
identity filters, sign-invariance of the basis, the B-spline partition of unity, gradients,
batches of meshes of different sizes, overfitting a tiny batch, bad input."""
import pytest
import torch

from geo4g.meshes.spectral import spectral_filter
from geo4g.meshes.spectral_conv import SpectralCNN, SpectralConv, cubic_bspline_basis
from geo4g.meshes.surface_data import batch_operators, surface_operators

from .test_surface_data import bumpy_sphere, grid, two_spheres


def full_basis(verts, faces):
    return surface_operators(verts, faces, k=verts.shape[0])


def dense_reference(conv, x, evals, evecs, mass):
    """``y[:, o] = sum_i (Phi diag(g_io) Phi^T M) x[:, i] + W x + b`` with explicit matrices."""
    g = conv.filters(evals)  # (K, C_in, C_out)
    y = torch.zeros(x.shape[0], conv.out_channels, dtype=x.dtype)
    for o in range(conv.out_channels):
        for i in range(conv.in_channels):
            operator = evecs @ torch.diag(g[:, i, o]) @ evecs.T @ torch.diag(mass)
            y[:, o] += operator @ x[:, i]
    if conv.linear is not None:
        y = y + conv.linear(x)
    return y


def test_matches_dense_computation_in_full_basis():
    torch.manual_seed(0)
    verts, faces = bumpy_sphere(1)
    ops = full_basis(verts, faces)
    conv = SpectralConv(3, 4, num_basis_filters=6).double()
    x = torch.randn(verts.shape[0], 3, dtype=torch.float64)
    got = conv(x, ops.evals, ops.evecs, ops.mass)
    torch.testing.assert_close(got, dense_reference(conv, x, ops.evals, ops.evecs, ops.mass))


def test_single_channel_matches_spectral_filter_truncated():
    torch.manual_seed(1)
    verts, faces = bumpy_sphere(1)
    ops = surface_operators(verts, faces, k=12)
    conv = SpectralConv(1, 1, num_basis_filters=5, pointwise=False).double()
    x = torch.randn(verts.shape[0], 1, dtype=torch.float64)
    want = spectral_filter(x, ops.evals, ops.evecs, ops.mass, conv.filters(ops.evals)[:, 0, 0])
    torch.testing.assert_close(conv(x, ops.evals, ops.evecs, ops.mass), want)


def test_identity_filters_reproduce_the_input_in_the_full_basis():
    verts, faces = two_spheres()  # two components: two zero eigenvalues
    ops = full_basis(verts, faces)
    conv = SpectralConv(2, 2, num_basis_filters=8, pointwise=False).double()
    with torch.no_grad():
        conv.weight.copy_(torch.eye(2, dtype=torch.float64).expand(8, 2, 2))
    x = torch.randn(verts.shape[0], 2, dtype=torch.float64)
    torch.testing.assert_close(conv(x, ops.evals, ops.evecs, ops.mass), x)


def test_bspline_basis_is_a_partition_of_unity():
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    for count in (4, 7, 16):
        basis = cubic_bspline_basis(t, count)
        assert basis.shape == (101, count) and bool((basis >= 0).all())
        torch.testing.assert_close(basis.sum(-1), torch.ones(101, dtype=torch.float64))
    with pytest.raises(ValueError, match="count"):
        cubic_bspline_basis(t, 3)


def test_output_does_not_depend_on_eigenvector_signs():
    torch.manual_seed(2)
    verts, faces = bumpy_sphere(1)
    ops = surface_operators(verts, faces, k=10)
    conv = SpectralConv(2, 3).double()
    x = torch.randn(verts.shape[0], 2, dtype=torch.float64)
    signs = torch.tensor([1.0, -1.0] * 5, dtype=torch.float64)
    torch.testing.assert_close(conv(x, ops.evals, ops.evecs * signs, ops.mass), conv(x, ops.evals, ops.evecs, ops.mass))


def test_fixed_max_eigenvalue_clamps_the_axis():
    verts, faces = bumpy_sphere(1)
    ops = surface_operators(verts, faces, k=10)
    conv = SpectralConv(1, 1, max_eigenvalue=float(ops.evals[4])).double()
    g = conv.filters(ops.evals)[:, 0, 0]
    torch.testing.assert_close(g[5:], g[4].expand(5))


def test_gradcheck_float64():
    torch.manual_seed(3)
    verts, faces = grid(4)
    ops = surface_operators(verts, faces, k=6)
    conv = SpectralConv(2, 2, num_basis_filters=4).double()
    x = torch.randn(verts.shape[0], 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w: torch.func.functional_call(conv, {"weight": w},
                                                                           (x, ops.evals, ops.evecs, ops.mass)),
                                    (x, conv.weight.detach().clone().requires_grad_()))
    evecs = ops.evecs.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda e: conv(x.detach(), ops.evals, e, ops.mass), (evecs,))


def test_batch_of_different_sizes_matches_one_at_a_time():
    torch.manual_seed(4)
    meshes = [bumpy_sphere(1), grid(5), two_spheres()]
    ops = [surface_operators(v.float(), f, k=16) for v, f in meshes]
    V = max(o.num_verts for o in ops) + 3
    x = torch.zeros(3, V, 5)
    for b, o in enumerate(ops):
        x[b, :o.num_verts] = torch.randn(o.num_verts, 5)
    model = SpectralCNN(5, 4, width=8, num_layers=2, num_basis_filters=6).eval()
    batch = batch_operators(ops, num_verts=V)
    out = model(x, batch)
    assert out.shape == (3, V, 4)
    torch.testing.assert_close(model(x, ops), out)
    for b, o in enumerate(ops):
        n = o.num_verts
        torch.testing.assert_close(out[b, :n], model(x[b, :n], o), atol=1e-5, rtol=1e-5)
        assert float(out[b, n:].detach().abs().sum()) == 0
    conv = SpectralConv(5, 2)
    y = conv(x, batch.evals, batch.evecs, batch.mass)
    for b, o in enumerate(ops):
        torch.testing.assert_close(y[b, :o.num_verts], conv(x[b, :o.num_verts], o.evals, o.evecs, o.mass),
                                   atol=1e-5, rtol=1e-5)


def _labelled_meshes():
    """Two small meshes with per-vertex labels that need spatial context beyond one vertex."""
    a, fa = bumpy_sphere(2)
    b, fb = two_spheres()
    la = ((a[:, 2] > 0.3).long() + (a[:, 0] > 0.2).long())
    lb = (b[:, 0] > 1.5).long() * 2 + (b[:, 1] > 0).long()
    return [(a.float(), fa, la), (b.float(), fb, lb)]


def overfit(model, inputs, labels, steps, lr=1e-2):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    mask = labels >= 0
    for _ in range(steps):
        opt.zero_grad()
        logits = model(*inputs)
        loss = torch.nn.functional.cross_entropy(logits[mask], labels[mask])
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        return float((model(*inputs).argmax(-1)[mask] == labels[mask]).float().mean())


def test_spectral_cnn_overfits_a_tiny_batch():
    torch.manual_seed(0)
    data = _labelled_meshes()
    ops = [surface_operators(v, f, k=40) for v, f, _ in data]
    V = max(o.num_verts for o in ops)
    x = torch.zeros(2, V, 3)
    labels = torch.full((2, V), -1)
    for b, (v, _, lab) in enumerate(data):
        x[b, :v.shape[0]], labels[b, :v.shape[0]] = v, lab
    model = SpectralCNN(3, 4, width=32, num_layers=3, num_basis_filters=8)
    assert overfit(model, (x, batch_operators(ops)), labels, steps=150) > 0.95


def test_bad_input_raises():
    verts, faces = grid(4)
    ops = surface_operators(verts.float(), faces, k=6)
    conv = SpectralConv(3, 2, k=8)
    x = torch.randn(16, 3)
    with pytest.raises(ValueError, match="needs at least 8 eigenpairs"):
        conv(x, ops.evals, ops.evecs, ops.mass)
    conv = SpectralConv(3, 2)
    with pytest.raises(ValueError, match="3 channels"):
        conv(torch.randn(16, 4), ops.evals, ops.evecs, ops.mass)
    with pytest.raises(ValueError, match="basis does not match"):
        conv(torch.randn(15, 3), ops.evals, ops.evecs, ops.mass)
    with pytest.raises(ValueError, match="basis does not match"):
        conv(x, ops.evals[:5], ops.evecs, ops.mass)
    with pytest.raises(ValueError, match="dimensions"):
        conv(x[None], ops.evals, ops.evecs, ops.mass)
    bad = x.clone()
    bad[2, 1] = float("nan")
    with pytest.raises(ValueError, match="x must be finite"):
        conv(bad, ops.evals, ops.evecs, ops.mass)
    with pytest.raises(TypeError, match="floating point"):
        conv(x.long(), ops.evals, ops.evecs, ops.mass)
    with pytest.raises(ValueError, match="num_basis_filters"):
        SpectralConv(3, 2, num_basis_filters=3)
    with pytest.raises(ValueError, match="max_eigenvalue"):
        SpectralConv(3, 2, max_eigenvalue=-1.0)
    model = SpectralCNN(3, 2, width=4, num_layers=1)
    with pytest.raises(TypeError, match="SurfaceOperators"):
        model(x, [ops])
    with pytest.raises(ValueError, match="one SurfaceOperators per mesh"):
        model(x[None], [ops, ops])
    with pytest.raises(ValueError, match="V=16"):
        model(torch.randn(10, 3), ops)
    assert "num_basis_filters=16" in repr(conv)


def test_same_result_on_every_device(device):
    torch.manual_seed(5)
    verts, faces = bumpy_sphere(1)
    ops = surface_operators(verts.float(), faces, k=12)
    model = SpectralCNN(3, 2, width=8, num_layers=2).eval()
    x = verts.float()
    with torch.no_grad():
        want = model(x, ops)
        got = model.to(device)(x.to(device), ops.to(device))
    torch.testing.assert_close(got.cpu(), want, atol=1e-5, rtol=1e-5)
