"""DiffusionNet: learned-time diffusion against heat_diffusion (spectral and implicit Euler) and the
matrix exponential, heat conservation per component, gradient features against a complex-number
twin, frame invariance and the analytic gradient of a linear function, gradients, batches of
meshes of different sizes, overfitting, robustness to remeshing (against a uniform graph
convolution), bad input."""
import pytest
import torch
from torch import nn

from geo4g.meshes.diffusion_net import (
    MIN_TIME,
    DiffusionNet,
    DiffusionNetBlock,
    LearnedTimeDiffusion,
    SpatialGradientFeatures,
)
from geo4g.meshes.spectral import heat_diffusion
from geo4g.meshes.surface_data import batch_operators, hks_features, surface_operators
from geo4g.nn.layers import MLP

from .test_spectral_conv import _labelled_meshes, overfit
from .test_surface_data import bumpy_sphere, grid, sphere, two_spheres


def _set_times(layer, times):
    with torch.no_grad():
        layer.diffusion_time.copy_(torch.as_tensor(times, dtype=layer.diffusion_time.dtype))


# ----------------------------------------------------------------------------- diffusion
def test_spectral_diffusion_matches_heat_diffusion():
    verts, faces = bumpy_sphere(1)
    ops = surface_operators(verts, faces, k=20)
    layer = LearnedTimeDiffusion(3).double()
    times = torch.tensor([0.0, 0.01, 0.3], dtype=torch.float64)
    _set_times(layer, times)
    x = torch.randn(verts.shape[0], 3, dtype=torch.float64)
    want = heat_diffusion(x, times.clamp(min=MIN_TIME), evals=ops.evals, evecs=ops.evecs, mass=ops.mass)
    torch.testing.assert_close(layer(x, ops), want)


def test_full_basis_diffusion_is_the_matrix_exponential():
    verts, faces = grid(5)
    ops = surface_operators(verts, faces, k=verts.shape[0])
    layer = LearnedTimeDiffusion(2).double()
    _set_times(layer, [0.002, 0.05])
    x = torch.randn(verts.shape[0], 2, dtype=torch.float64)
    operator = torch.diag(1 / ops.mass) @ ops.stiffness.to_dense()
    want = torch.stack([torch.linalg.matrix_exp(-t * operator) @ x[:, c] for c, t in enumerate([0.002, 0.05])], 1)
    torch.testing.assert_close(layer(x, ops), want, atol=1e-9, rtol=1e-9)


def test_implicit_dense_matches_one_backward_euler_step():
    verts, faces = bumpy_sphere(1)
    ops = surface_operators(verts, faces, k=4)
    layer = LearnedTimeDiffusion(2, method="implicit_dense").double()
    _set_times(layer, [0.02, 0.2])
    x = torch.randn(verts.shape[0], 2, dtype=torch.float64)
    M = torch.sparse_coo_tensor(torch.arange(verts.shape[0]).expand(2, -1), ops.mass, (verts.shape[0],) * 2,
                                check_invariants=True)
    want = torch.cat([heat_diffusion(x[:, c:c + 1], t, mass=M, stiffness=ops.stiffness, method="implicit")
                      for c, t in enumerate([0.02, 0.2])], 1)
    torch.testing.assert_close(layer(x, ops), want, atol=1e-9, rtol=1e-9)


def test_diffusion_conserves_heat_per_component_and_stays_within_components():
    verts, faces = two_spheres()
    n_first = 42
    for method in ("spectral", "implicit_dense"):
        ops = surface_operators(verts, faces, k=30)
        layer = LearnedTimeDiffusion(1, method=method).double()
        _set_times(layer, [50.0])
        x = torch.zeros(verts.shape[0], 1, dtype=torch.float64)
        x[:n_first] = torch.rand(n_first, 1, dtype=torch.float64)
        with torch.no_grad():
            y = layer(x, ops)
        for part in (slice(0, n_first), slice(n_first, None)):
            torch.testing.assert_close((ops.mass[part] * y[part, 0]).sum(), (ops.mass[part] * x[part, 0]).sum())
        assert float(y[n_first:].abs().max()) < 1e-9
        mean = (ops.mass[:n_first] * x[:n_first, 0]).sum() / ops.mass[:n_first].sum()
        assert float((y[:n_first, 0] - mean).abs().max()) < 0.01  # long times: the component's mean


def test_times_are_projected_to_be_positive():
    layer = LearnedTimeDiffusion(2)
    _set_times(layer, [-1.0, 0.5])
    verts, faces = grid(4)
    layer(torch.randn(16, 2), surface_operators(verts.float(), faces, k=5))
    assert layer.diffusion_time.tolist() == pytest.approx([MIN_TIME, 0.5])


# ----------------------------------------------------------------------------- gradient features
def test_gradient_features_match_complex_twin_and_ignore_the_frame():
    torch.manual_seed(0)
    layer = SpatialGradientFeatures(5).double()
    v = torch.randn(7, 5, 2, dtype=torch.float64)
    z = torch.complex(v[..., 0], v[..., 1])
    A = torch.complex(layer.A_re.weight, layer.A_im.weight)
    want = torch.tanh((z.conj() * (z @ A.T)).real)
    torch.testing.assert_close(layer(v), want)
    angle = torch.rand(7, 1, dtype=torch.float64) * 6.3  # one frame rotation per vertex
    rotated = torch.view_as_real(z * torch.exp(1j * angle))
    torch.testing.assert_close(layer(rotated), want)
    real_only = SpatialGradientFeatures(5, with_gradient_rotations=False).double()
    torch.testing.assert_close(real_only(rotated), real_only(v))


def test_block_gradient_features_see_the_analytic_gradient_of_a_linear_function():
    verts, faces = grid(6)
    ops = surface_operators(verts, faces, k=verts.shape[0])
    block = DiffusionNetBlock(2).double()
    _set_times(block.diffusion, [0.0, 0.0])
    with torch.no_grad():
        block.gradient_features.A_re.weight.copy_(torch.eye(2))
        block.gradient_features.A_im.weight.zero_()
    seen = {}
    block.gradient_features.register_forward_hook(lambda m, inp, out: seen.update(vectors=inp[0], out=out))
    a = torch.tensor([[0.3, -0.8], [1.1, 0.4]], dtype=torch.float64)  # two linear functions of (x, y)
    x = verts[:, :2] @ a.T
    block(x, ops)
    gradient_3d = torch.cat([a, torch.zeros(2, 1, dtype=torch.float64)], 1)  # (C, 3)
    want = torch.stack([ops.frames[:, 0] @ gradient_3d.T, ops.frames[:, 1] @ gradient_3d.T], -1)
    # Diffusion for MIN_TIME leaves the functions as they are up to ~1e-8 lambda_max.
    torch.testing.assert_close(seen["vectors"], want, atol=1e-5, rtol=0)
    torch.testing.assert_close(seen["out"], torch.tanh((a ** 2).sum(1)).expand(verts.shape[0], 2), atol=1e-5, rtol=0)


# ----------------------------------------------------------------------------- gradients and batches
def test_gradcheck_float64():
    torch.manual_seed(1)
    verts, faces = grid(4)
    ops = surface_operators(verts, faces, k=8)
    for method in ("spectral", "implicit_dense"):
        block = DiffusionNetBlock(2, mlp_hidden_dims=[3], diffusion_method=method).double()
        _set_times(block.diffusion, [0.01, 0.1])
        x = torch.randn(16, 2, dtype=torch.float64, requires_grad=True)
        t = block.diffusion.diffusion_time
        assert torch.autograd.gradcheck(
            lambda x, t: torch.func.functional_call(block, {"diffusion.diffusion_time": t}, (x, ops)),
            (x, t.detach().clone().requires_grad_()))


@pytest.mark.parametrize("method", ["spectral", "implicit_dense"])
def test_batch_of_different_sizes_matches_one_at_a_time(method):
    torch.manual_seed(2)
    meshes = [bumpy_sphere(1), grid(5), two_spheres()]
    ops = [surface_operators(v.float(), f, k=16) for v, f in meshes]
    V = max(o.num_verts for o in ops) + 2
    x = torch.zeros(3, V, 4)
    for b, o in enumerate(ops):
        x[b, :o.num_verts] = torch.randn(o.num_verts, 4)
    model = DiffusionNet(4, 3, width=8, num_blocks=2, k_eig=16, diffusion_method=method).eval()
    for block in model.blocks:
        _set_times(block.diffusion, torch.linspace(0.001, 0.1, 8))
    with torch.no_grad():
        out = model(x, batch_operators(ops, num_verts=V))
        torch.testing.assert_close(model(x, ops), out)
        for b, o in enumerate(ops):
            n = o.num_verts
            torch.testing.assert_close(out[b, :n], model(x[b, :n], o), atol=1e-5, rtol=1e-5)
            assert float(out[b, n:].abs().sum()) == 0


def test_diffusion_net_overfits_a_tiny_batch():
    torch.manual_seed(0)
    data = _labelled_meshes()
    ops = [surface_operators(v, f, k=40) for v, f, _ in data]
    V = max(o.num_verts for o in ops)
    x = torch.zeros(2, V, 3)
    labels = torch.full((2, V), -1)
    for b, (v, _, lab) in enumerate(data):
        x[b, :v.shape[0]], labels[b, :v.shape[0]] = v, lab
    model = DiffusionNet(3, 4, width=32, num_blocks=2, k_eig=40, dropout=0.0)
    assert overfit(model, (x, batch_operators(ops)), labels, steps=120) > 0.95


def test_hks_input_features_work_batched():
    a, fa = bumpy_sphere(1)
    b, fb = two_spheres()
    batch = batch_operators([surface_operators(a.float(), fa, k=12), surface_operators(b.float(), fb, k=12)])
    features = hks_features(batch, 6)
    out = DiffusionNet(6, 2, width=4, num_blocks=1, k_eig=12)(features, batch)
    assert out.shape == (2, b.shape[0], 2) and bool(torch.isfinite(out).all())


# ----------------------------------------------------------------------------- remeshing
class UniformGraphNet(nn.Module):
    """DiffusionNet's layout with diffusion replaced by ``hops`` rounds of averaging over the mesh
    edges (uniform weights): its spatial support is counted in edges, not in surface distance."""

    def __init__(self, width=16, blocks=2, hops=4):
        super().__init__()
        self.first = nn.Linear(3, width)
        self.mlps = nn.ModuleList(MLP([2 * width, width, width, width]) for _ in range(blocks))
        self.last = nn.Linear(width, 4)
        self.hops = hops

    def forward(self, x, faces):
        n = x.shape[0]
        e = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
        e = torch.unique(torch.cat([e, e.flip(1)]), dim=0)
        adjacency = torch.sparse_coo_tensor(e.T, torch.ones(e.shape[0], dtype=x.dtype), (n, n), check_invariants=True)
        degree = torch.bincount(e[:, 0], minlength=n).to(x.dtype)[:, None]
        h = self.first(x)
        for mlp in self.mlps:
            spread = h
            for _ in range(self.hops):
                spread = torch.sparse.mm(adjacency, spread) / degree
            h = h + mlp(torch.cat([h, spread], -1))
        return self.last(h)


def test_predictions_change_little_under_remeshing():
    """One ellipsoid at two subdivision levels (642 and 2562 vertices): outputs mapped by nearest
    vertex differ far less for DiffusionNet than for a uniform graph convolution, whose support
    shrinks to half the surface distance on the finer mesh."""
    scale = torch.tensor([1.0, 0.8, 0.6], dtype=torch.float64)
    (va, fa), (vb, fb) = sphere(3, scale=tuple(scale.tolist())), sphere(4, scale=tuple(scale.tolist()))
    nearest = torch.cdist(va, vb).argmin(1)
    oa, ob = surface_operators(va, fa, k=64), surface_operators(vb, fb, k=64)

    def relative_change(ya, yb):
        return float((ya - yb[nearest]).norm() / (ya - ya.mean(0)).norm())

    torch.manual_seed(0)
    diffusion, graph = [], []
    for _ in range(3):
        net = DiffusionNet(3, 4, width=16, num_blocks=2, k_eig=64, dropout=0.0).double().eval()
        for block in net.blocks:
            with torch.no_grad():
                block.diffusion.diffusion_time.uniform_(0.01, 0.05)
        baseline = UniformGraphNet().double().eval()
        with torch.no_grad():
            diffusion.append(relative_change(net(va, oa), net(vb, ob)))
            graph.append(relative_change(baseline(va, fa), baseline(vb, fb)))
    assert max(diffusion) < 1e-3
    assert max(diffusion) < 0.2 * min(graph)


# ----------------------------------------------------------------------------- bad input
def test_bad_input_raises():
    verts, faces = grid(4)
    ops = surface_operators(verts.float(), faces, k=6)
    x = torch.randn(16, 3)
    with pytest.raises(ValueError, match="at least 8 eigenpairs"):
        DiffusionNet(3, 2, width=4, num_blocks=1, k_eig=8)(x, ops)
    model = DiffusionNet(3, 2, width=4, num_blocks=1, k_eig=6)
    with pytest.raises(ValueError, match="3 channels"):
        model(torch.randn(16, 2), ops)
    with pytest.raises(ValueError, match="V=16"):
        model(torch.randn(12, 3), ops)
    bad = x.clone()
    bad[0, 0] = float("inf")
    with pytest.raises(ValueError, match="x must be finite"):
        model(bad, ops)
    with pytest.raises(TypeError, match="SurfaceBatch or a list"):
        model(x[None], ops)
    with pytest.raises(ValueError, match="padded to"):
        model(torch.randn(1, 20, 3), batch_operators([ops]))
    with pytest.raises(ValueError, match="method"):
        LearnedTimeDiffusion(3, method="explicit")
    with pytest.raises(ValueError, match="init_time"):
        LearnedTimeDiffusion(3, init_time=-1.0)
    with pytest.raises(ValueError, match=r"\(\.\.\., 4, 2\)"):
        SpatialGradientFeatures(4)(torch.randn(10, 3, 2))
    with pytest.raises(ValueError, match="width"):
        DiffusionNet(3, 2, width=0)
    assert "k_eig=6" in repr(model)


@pytest.mark.parametrize("method", ["spectral", "implicit_dense"])
def test_same_result_on_every_device(device, method):
    torch.manual_seed(6)
    a, fa = bumpy_sphere(1)
    b, fb = grid(5)
    ops = [surface_operators(a.float(), fa, k=12), surface_operators(b.float(), fb, k=12)]
    x = torch.zeros(2, 42, 3)
    x[0], x[1, :25] = a.float(), b.float()
    model = DiffusionNet(3, 2, width=8, num_blocks=2, k_eig=12, diffusion_method=method).eval()
    for block in model.blocks:
        _set_times(block.diffusion, torch.linspace(0.001, 0.1, 8))
    with torch.no_grad():
        want = model(x, batch_operators(ops))
        got = model.to(device)(x.to(device), batch_operators([o.to(device) for o in ops]))
    torch.testing.assert_close(got.cpu(), want, atol=1e-5, rtol=1e-5)
