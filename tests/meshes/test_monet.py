"""MoNet: pseudo-coordinates on a flat mesh against the Euclidean offsets, the reference direction,
polar coordinates, the patch operator against a plain loop, gradients, padded and packed batches
of meshes of different sizes, overfitting a tiny batch, bad input."""
import math

import pytest
import torch

from geo4g.meshes.monet import MoNet, SurfacePatches, batch_patches, surface_patches
from geo4g.structures import Meshes

from .test_spectral_conv import _labelled_meshes, overfit
from .test_surface_data import bumpy_sphere, grid, two_spheres


def test_cartesian_coords_on_flat_mesh_are_scaled_offsets_along_the_reference():
    verts, faces = grid(7)
    radius = 0.35
    patches = surface_patches(verts, faces, radius=radius, reference=(1.0, 0.0, 0.0))
    j, i = patches.edge_index
    want = (verts[j, :2] - verts[i, :2]) / radius
    torch.testing.assert_close(patches.edge_attr, want, atol=1e-12, rtol=0)
    assert patches.lengths.tolist() == [49] and patches.num_nodes == 49
    # A reference along y turns every patch by a quarter turn.
    turned = surface_patches(verts, faces, radius=radius, reference=(0.0, 1.0, 0.0))
    torch.testing.assert_close(turned.edge_attr, torch.stack([want[:, 1], -want[:, 0]], 1), atol=1e-12, rtol=0)


def test_reference_normal_to_the_surface_falls_back_to_another_axis():
    verts, faces = grid(5)
    patches = surface_patches(verts, faces, radius=0.3, reference=(0.0, 0.0, 1.0))
    j, i = patches.edge_index
    torch.testing.assert_close(patches.edge_attr, (verts[j, :2] - verts[i, :2]) / 0.3, atol=1e-12, rtol=0)


def test_polar_coords_and_k_patches():
    verts, faces = grid(6)
    cart = surface_patches(verts, faces, radius=0.5, reference=(1.0, 0.0, 0.0))
    polar = surface_patches(verts, faces, radius=0.5, coords="polar", reference=(1.0, 0.0, 0.0))
    r, theta = polar.edge_attr.unbind(1)
    assert bool((r <= 1).all()) and bool((theta > -1).all()) and bool((theta <= 1).all())
    torch.testing.assert_close(torch.stack([r * torch.cos(math.pi * theta), r * torch.sin(math.pi * theta)], 1),
                               cart.edge_attr, atol=1e-12, rtol=0)
    nearest = surface_patches(verts, faces, k=5)
    counts = torch.bincount(nearest.edge_index[1], minlength=36)
    assert bool((counts == 5).all())
    largest = torch.zeros(36, dtype=torch.float64).scatter_reduce(0, nearest.edge_index[1],
                                                                  nearest.edge_attr.norm(dim=1), "amax")
    torch.testing.assert_close(largest, torch.ones(36, dtype=torch.float64))


def test_patches_of_a_batch_are_the_disjoint_union():
    a, fa = bumpy_sphere(1)
    b, fb = grid(5)
    both = surface_patches(Meshes([a, b], [fa, fb]), radius=0.4, reference=(0, 1, 0))
    pa = surface_patches(a, fa, radius=0.4, reference=(0, 1, 0))
    pb = surface_patches(b, fb, radius=0.4, reference=(0, 1, 0))
    assert both.lengths.tolist() == [42, 25]
    torch.testing.assert_close(both.edge_index, torch.cat([pa.edge_index, pb.edge_index + 42], 1))
    torch.testing.assert_close(both.edge_attr, torch.cat([pa.edge_attr, pb.edge_attr]))
    joined = batch_patches([pa, pb])
    for x, y in zip(joined, both):
        torch.testing.assert_close(x, y)
    with pytest.raises(TypeError, match="list of SurfacePatches"):
        batch_patches(pa)


def _patch_operator_reference(conv, x, edge_index, edge_attr):
    """``mean_j sum_k w_k(u_ij) G_k x_j + root(x_i) + b`` with explicit loops (MoNet's eq. 11)."""
    K, out = conv.kernel_size, conv.out_channels
    G = conv.g.view(x.shape[1], K, out)
    y = torch.zeros(x.shape[0], out, dtype=x.dtype)
    count = torch.zeros(x.shape[0], dtype=x.dtype)
    for e in range(edge_index.shape[1]):
        j, i = int(edge_index[0, e]), int(edge_index[1, e])
        for k in range(K):
            w = torch.exp(-0.5 * (((edge_attr[e] - conv.mu[k]) / conv.sigma[k]) ** 2).sum())
            y[i] += w * (x[j] @ G[:, k])
        count[i] += 1
    y = y / count.clamp(min=1)[:, None]
    return y + conv.root(x) + conv.bias


def test_patch_convolution_matches_plain_loop():
    torch.manual_seed(0)
    verts, faces = grid(4)
    patches = surface_patches(verts, faces, radius=0.5, reference=(1, 0, 0))
    model = MoNet(3, 2, width=4, num_layers=1, kernel_size=3).double()
    conv = model.convs[0]
    x = torch.randn(16, 4, dtype=torch.float64)
    want = _patch_operator_reference(conv, x, patches.edge_index, patches.edge_attr)
    torch.testing.assert_close(conv(x, patches.edge_index, patches.edge_attr), want)


def test_gradcheck_float64():
    torch.manual_seed(1)
    verts, faces = grid(4)
    patches = surface_patches(verts, faces, radius=0.4)
    model = MoNet(2, 2, width=3, num_layers=1, kernel_size=2).double()
    x = torch.randn(16, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: model(x, patches), (x,))


def test_padded_batch_matches_packed_and_one_at_a_time():
    torch.manual_seed(2)
    meshes = [bumpy_sphere(1), grid(5), two_spheres()]
    verts = [v.float() for v, _ in meshes]
    batch = Meshes(verts, [f for _, f in meshes])
    patches = surface_patches(batch, radius=0.5, reference=(0, 1, 0))
    V = max(v.shape[0] for v in verts) + 3
    x = torch.zeros(3, V, 4)
    for b, v in enumerate(verts):
        x[b, :v.shape[0]] = torch.randn(v.shape[0], 4)
    model = MoNet(4, 3, width=8, num_layers=2, kernel_size=4).eval()
    with torch.no_grad():
        out = model(x, patches)
        packed = model(torch.cat([x[b, :v.shape[0]] for b, v in enumerate(verts)]), patches)
        assert out.shape == (3, V, 3)
        first = 0
        for b, (v, f) in enumerate(meshes):
            n = v.shape[0]
            single = model(x[b, :n], surface_patches(v.float(), f, radius=0.5, reference=(0, 1, 0)))
            torch.testing.assert_close(out[b, :n], single, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(packed[first:first + n], single, atol=1e-5, rtol=1e-5)
            assert float(out[b, n:].abs().sum()) == 0
            first += n


def test_monet_overfits_a_tiny_batch():
    torch.manual_seed(0)
    data = _labelled_meshes()
    batch = Meshes([v for v, _, _ in data], [f for _, f, _ in data])
    patches = surface_patches(batch, radius=0.35, k=12, reference=(0, 0, 1))
    V = max(v.shape[0] for v, _, _ in data)
    x = torch.zeros(2, V, 3)
    labels = torch.full((2, V), -1)
    for b, (v, _, lab) in enumerate(data):
        x[b, :v.shape[0]], labels[b, :v.shape[0]] = v, lab
    model = MoNet(3, 4, width=32, num_layers=3, kernel_size=6)
    assert overfit(model, (x, patches), labels, steps=150) > 0.95


def test_bad_input_raises():
    verts, faces = grid(4)
    patches = surface_patches(verts, faces, radius=0.4)
    model = MoNet(3, 2, width=4, num_layers=1)
    with pytest.raises(ValueError, match="coords"):
        surface_patches(verts, faces, radius=0.4, coords="spherical")
    with pytest.raises(ValueError, match="reference"):
        surface_patches(verts, faces, radius=0.4, reference=(0, 0, 0))
    with pytest.raises(ValueError, match="radius, k or both"):
        surface_patches(verts, faces)
    with pytest.raises(ValueError, match="3 channels"):
        model(torch.randn(16, 2), patches)
    with pytest.raises(ValueError, match="16 vertices"):
        model(torch.randn(15, 3), patches)
    with pytest.raises(TypeError, match="SurfacePatches"):
        model(torch.randn(16, 3), (patches.edge_index, patches.edge_attr))
    with pytest.raises(ValueError, match="padded x"):
        model(torch.randn(2, 16, 3), patches)
    bad = torch.randn(16, 3)
    bad[4, 2] = float("nan")
    with pytest.raises(ValueError, match="x must be finite"):
        model(bad, patches)
    with pytest.raises(ValueError, match="disagree"):
        model(torch.randn(16, 3), SurfacePatches(patches.edge_index, patches.edge_attr[:-1], patches.lengths))
    with pytest.raises(ValueError, match="kernel_size"):
        MoNet(3, 2, kernel_size=0)
    assert "kernel_size=8" in repr(model)


def test_same_result_on_every_device(device):
    torch.manual_seed(7)
    a, fa = bumpy_sphere(1)
    patches = surface_patches(a.float(), fa, radius=0.5)
    model = MoNet(3, 2, width=8, num_layers=2, kernel_size=4).eval()
    with torch.no_grad():
        want = model(a.float(), patches)
        got = model.to(device)(a.float().to(device), patches)
    torch.testing.assert_close(got.cpu(), want, atol=1e-5, rtol=1e-5)
