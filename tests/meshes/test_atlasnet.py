import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from geo4g.losses import chamfer_distance
from geo4g.meshes import sample_points_from_meshes, sample_surface
from geo4g.meshes.atlasnet import AtlasNet, AtlasNetDecoder, ImageEncoder, square_grid
from geo4g.parametric.primitives import torus_mesh
from geo4g.points.decoders import PointSetEncoder
from geo4g.structures import Meshes, Pointclouds

from ..points._shapes import primitive_surfaces


def small_decoder(K: int = 5, template: str = "square", norm="batch", latent: int = 8) -> AtlasNetDecoder:
    return AtlasNetDecoder(latent, K, template, hidden=(16, 12), norm=norm)


def small_atlasnet(K: int = 5, template: str = "square", norm="batch", latent: int = 32,
                   num_points: int = 500) -> AtlasNet:
    return AtlasNet(latent, K, encoder=PointSetEncoder(latent, channels=(32, 64)), template=template,
                    hidden=(64, 64), norm=norm, num_points=num_points)


def naive_decode(decoder: AtlasNetDecoder, z: torch.Tensor, template: torch.Tensor) -> torch.Tensor:
    """Patch by patch: ``[t, z]`` through the patch's own linear layers, batch norm and activations."""
    B, K = z.shape[0], decoder.num_patches
    if template.dim() == 3:
        template = template.expand(B, *template.shape)
    M = template.shape[2]
    out = []
    for k in range(K):
        x = torch.cat([template[:, k], z[:, None].expand(B, M, z.shape[1])], -1).reshape(B * M, -1)
        for i, layer in enumerate(decoder.linears):
            if i > 0:
                if decoder.norms is not None:
                    bn = decoder.norms[i - 1]
                    C = bn.channels
                    part = slice(k * C, (k + 1) * C)
                    x = F.batch_norm(x, bn.running_mean[part].clone(), bn.running_var[part].clone(),
                                     bn.weight[part], bn.bias[part], bn.training, 0.0, bn.eps)
                x = torch.relu(x)
            x = x @ layer.weight[k] + layer.bias[k]
        out.append(torch.tanh(x).view(B, M, 3))
    return torch.stack(out, 1)


def unit_torus(n: int, seed: int = 0) -> torch.Tensor:
    """``(1, n, 3)`` surface samples of a torus centred at 0 with bounding-box diagonal 1."""
    verts, faces = torus_mesh(0.35, 0.12)
    verts = verts - (verts.max(0).values + verts.min(0).values) / 2
    verts = verts / (verts.max(0).values - verts.min(0).values).norm()
    return sample_surface(verts, faces, n, torch.Generator().manual_seed(seed)).points[None]


def train(model, inputs, target, steps: int, lr: float = 3e-3) -> float:
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        loss = model.loss(inputs, target, generator=generator)
        loss.backward()
        opt.step()
    return loss.item()


# The decoder


@pytest.mark.parametrize("K", [1, 5, 25])
@pytest.mark.parametrize("template", ["square", "sphere"])
def test_decoder_output_shapes(K, template, device):
    torch.manual_seed(0)
    decoder = small_decoder(K, template).to(device)
    z = torch.randn(3, 8, device=device)
    D = 2 if template == "square" else 3
    assert decoder.template_dim == D
    assert decoder(z, torch.rand(K, 7, D, device=device)).shape == (3, K, 7, 3)
    assert decoder(z, torch.rand(3, K, 7, D, device=device)).shape == (3, K, 7, 3)
    points = decoder.sample(z, 103)
    assert points.shape == (3, 103, 3) and points.abs().max() < 1  # tanh output
    assert decoder.patch_index(103).shape == (103,)
    out = decoder.mesh(z, num_points=40 * K)
    V = out.points.shape[1]
    assert out.meshes.num_verts_per_mesh().tolist() == [V] * 3 and V % K == 0
    assert out.template.shape == (V, D) and out.point_patch.shape == (V,)
    assert out.face_patch.shape == (int(out.meshes.num_faces_per_mesh()[0]),)


def test_sample_splits_points_over_patches_first_patches_get_the_remainder():
    decoder = small_decoder(K=25)
    sizes = decoder.patch_sizes(1003)
    assert sizes.tolist() == [41] * 3 + [40] * 22
    index = decoder.patch_index(1003)
    assert torch.equal(torch.bincount(index, minlength=25), sizes) and bool((index.diff() >= 0).all())
    assert decoder.patch_sizes(3).tolist() == [1] * 3 + [0] * 22
    assert decoder.sample(torch.randn(2, 8), 3).shape == (2, 3, 3)


def test_sample_is_the_decoder_at_drawn_template_points_and_reproducible():
    torch.manual_seed(0)
    decoder = small_decoder(K=4).eval()
    z = torch.randn(2, 8)
    out = decoder.sample(z, 10, generator=torch.Generator().manual_seed(3))
    template = decoder.sample_template(2, 3, generator=torch.Generator().manual_seed(3))
    expected = decoder(z, template)  # sizes 3, 3, 2, 2
    torch.testing.assert_close(out, torch.cat([expected[:, 0], expected[:, 1], expected[:, 2, :2],
                                               expected[:, 3, :2]], 1))
    again = decoder.sample(z, 10, generator=torch.Generator().manual_seed(3))
    assert torch.equal(out, again)
    assert not torch.equal(out, decoder.sample(z, 10, generator=torch.Generator().manual_seed(4)))


def test_template_draws_lie_on_the_template():
    square = small_decoder(template="square").sample_template(4, 50, torch.Generator().manual_seed(0))
    assert square.shape == (4, 5, 50, 2) and square.min() >= 0 and square.max() <= 1
    sphere = small_decoder(template="sphere").sample_template(4, 50, torch.Generator().manual_seed(0))
    assert sphere.shape == (4, 5, 50, 3)
    torch.testing.assert_close(sphere.norm(dim=-1), torch.ones(4, 5, 50))
    assert sphere.mean((0, 1, 2)).abs().max() < 0.1  # spread over the sphere, not bunched


@pytest.mark.parametrize("template", ["square", "sphere"])
@pytest.mark.parametrize("norm", ["batch", None])
@pytest.mark.parametrize("shared", [True, False])
def test_batched_patches_equal_a_per_patch_loop(template, norm, shared):
    torch.manual_seed(0)
    decoder = small_decoder(K=6, template=template, norm=norm)
    for bn in decoder.norms or ():  # non-trivial affine and running statistics
        nn.init.normal_(bn.weight, 1, 0.3)
        nn.init.normal_(bn.bias, 0, 0.3)
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2)
    z = torch.randn(3, 8)
    D = decoder.template_dim
    template = torch.rand(6, 11, D) if shared else torch.rand(3, 6, 11, D)
    for training in (True, False):
        decoder.train(training)
        expected = naive_decode(decoder, z, template)
        torch.testing.assert_close(decoder(z, template), expected, atol=1e-5, rtol=1e-4)


def test_batch_norm_running_statistics_are_per_patch():
    torch.manual_seed(0)
    decoder = small_decoder(K=3).train()
    z, template = torch.randn(4, 8), torch.rand(4, 3, 20, 2)
    decoder(z, template)
    first = decoder.linears[0]
    for k in range(3):
        x = torch.cat([template[:, k], z[:, None].expand(4, 20, 8)], -1).reshape(80, -1) @ first.weight[k] \
            + first.bias[k]
        running = decoder.norms[0].running_mean.view(3, 16)[k]
        torch.testing.assert_close(running, 0.1 * x.mean(0).detach(), atol=1e-6, rtol=1e-5)


def test_decoder_gradcheck_float64():
    torch.manual_seed(0)
    decoder = small_decoder(K=3, template="sphere").double().train()
    z = torch.randn(2, 8, dtype=torch.float64, requires_grad=True)
    template = torch.randn(2, 3, 4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: decoder(a, b), (z, template))


# Meshes


@pytest.mark.parametrize("K, g", [(1, 2), (5, 4), (25, 3)])
def test_square_mesh_counts_faces_and_patches(K, g, device):
    torch.manual_seed(0)
    decoder = small_decoder(K).to(device).eval()
    z = torch.randn(2, 8, device=device)
    out = decoder.mesh(z, g)
    assert isinstance(out.meshes, Meshes) and len(out.meshes) == 2
    assert out.meshes.num_verts_per_mesh().tolist() == [K * g * g] * 2
    assert out.meshes.num_faces_per_mesh().tolist() == [(g - 1) ** 2 * 2 * K] * 2
    faces = out.meshes.faces_padded()
    assert faces.min() >= 0 and faces.max() < K * g * g
    # every face joins vertices of its own patch
    assert torch.equal(out.point_patch[faces[0]], out.face_patch[:, None].expand(-1, 3))
    assert torch.equal(out.meshes.verts_padded(), out.points)
    grid, _ = square_grid(g, device=device)
    expected = decoder(z, grid.expand(K, g * g, 2)).reshape(2, K * g * g, 3)
    torch.testing.assert_close(out.points, expected)
    torch.testing.assert_close(out.template, grid.repeat(K, 1))


def test_square_grid_triangulates_the_unit_square():
    points, faces = square_grid(4)
    assert points.shape == (16, 2) and faces.shape == (18, 3)
    torch.testing.assert_close(points[6], torch.tensor([2 / 3, 1 / 3]))
    a, b, c = points[faces].unbind(1)
    cross = (b - a)[:, 0] * (c - a)[:, 1] - (b - a)[:, 1] * (c - a)[:, 0]
    assert bool((cross > 0).all())  # counter-clockwise, none degenerate
    torch.testing.assert_close(cross.sum() / 2, torch.tensor(1.0))  # they tile the square
    assert torch.unique(faces.sort(1).values, dim=0).shape[0] == 18


@pytest.mark.parametrize("K, s", [(1, 0), (1, 2), (3, 1)])
def test_sphere_mesh_is_an_icosphere_per_patch(K, s):
    torch.manual_seed(0)
    decoder = small_decoder(K, "sphere").eval()
    out = decoder.mesh(torch.randn(2, 8), subdivisions=s)
    V, F_ = 10 * 4 ** s + 2, 20 * 4 ** s
    assert out.meshes.num_verts_per_mesh().tolist() == [K * V] * 2
    assert out.meshes.num_faces_per_mesh().tolist() == [K * F_] * 2
    torch.testing.assert_close(out.template.norm(dim=1), torch.ones(K * V))
    assert torch.equal(out.face_patch, torch.arange(K).repeat_interleave(F_))


def test_mesh_resolution_from_a_point_budget():
    z = torch.randn(1, 8)
    assert small_decoder(25).eval().mesh(z).points.shape[1] == 25 * 10 ** 2  # default budget 2500
    assert small_decoder(1).eval().mesh(z, num_points=2500).points.shape[1] == 50 ** 2
    assert small_decoder(5).eval().mesh(z, num_points=3).points.shape[1] == 5 * 4  # at least a 2 x 2 grid
    assert small_decoder(1, "sphere").eval().mesh(z, num_points=2500).points.shape[1] == 642
    assert small_decoder(1, "sphere").eval().mesh(z, num_points=2562).points.shape[1] == 2562
    assert small_decoder(2, "sphere").eval().mesh(z, num_points=5).points.shape[1] == 2 * 12


def test_mesh_vertices_carry_gradients_to_the_code():
    torch.manual_seed(0)
    decoder = small_decoder(5).eval()
    z = torch.randn(2, 8, requires_grad=True)
    out = decoder.mesh(z, 3)
    sample_points_from_meshes(out.meshes, 100, generator=torch.Generator().manual_seed(0)).sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0


def test_empty_batch():
    decoder = small_decoder(5).eval()
    z = torch.zeros(0, 8)
    assert decoder.sample(z, 10).shape == (0, 10, 3)
    out = decoder.mesh(z, 3)
    assert len(out.meshes) == 0 and out.points.shape == (0, 45, 3)
    assert decoder(z, torch.rand(5, 0, 2)).shape == (0, 5, 0, 3)


# The model


def test_point_atlasnet_ragged_input_and_pointclouds(device):
    torch.manual_seed(0)
    model = small_atlasnet(K=5, num_points=60).to(device).eval()
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor([50, 31, 9], device=device)
    points = torch.randn(3, 50, 3, generator=g).to(device)
    points[1, 31:] = 1e3
    z = model.encode(points, lengths)
    alone = torch.cat([model.encode(points[b:b + 1, :n]) for b, n in enumerate(lengths.tolist())])
    torch.testing.assert_close(z, alone, atol=1e-5, rtol=1e-5)
    clouds = Pointclouds([points[b, :n] for b, n in enumerate(lengths.tolist())])
    assert torch.equal(model(clouds, generator=torch.Generator(device).manual_seed(0)),
                       model(points, lengths, generator=torch.Generator(device).manual_seed(0)))
    assert model(points, lengths).shape == (3, 60, 3)
    assert model(points, lengths, num_points=7).shape == (3, 7, 3)
    assert model.mesh(points, lengths, 3).points.shape == (3, 45, 3)
    loss = model.loss(points, lengths=lengths, generator=torch.Generator(device).manual_seed(1))
    expected = chamfer_distance(model(points, lengths, generator=torch.Generator(device).manual_seed(1)),
                                points, y_lengths=lengths)[0]
    torch.testing.assert_close(loss, expected)


@pytest.mark.parametrize("encoder", ["points", "image"])
def test_gradients_reach_the_encoder_and_every_parameter(encoder):
    torch.manual_seed(0)
    if encoder == "points":
        model = AtlasNet(16, 5, hidden=(16, 16), num_points=50)
        inputs, target = torch.randn(3, 40, 3), None
    else:
        model = AtlasNet(16, 5, encoder="image", in_channels=1, hidden=(16, 16), num_points=50)
        inputs, target = torch.rand(3, 1, 16, 16), torch.randn(3, 40, 3)
    model.loss(inputs, target).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        if name.endswith("weight"):
            assert p.grad.abs().sum() > 0, name
    assert any(p.grad.abs().sum() > 0 for p in model.encoder.parameters())


def test_atlasnet_overfits_one_shape():
    target = unit_torus(1000)
    model = small_atlasnet(K=5, norm=None, num_points=1000)
    with torch.no_grad():
        start = model.loss(target).item()
    final = train(model, target, None, steps=700)
    assert final < 1.5e-3 < start / 50
    model.eval()
    with torch.no_grad():
        out = model.mesh(target, num_points=2500)
        on_mesh = sample_points_from_meshes(out.meshes, 2000, generator=torch.Generator().manual_seed(2))
        assert chamfer_distance(on_mesh, target)[0].item() < 2e-3


def test_batch_norm_atlasnet_overfits_four_shapes_and_meshes_them_in_eval_mode():
    target = primitive_surfaces(400, 1)[0] * 0.5
    model = small_atlasnet(K=5, num_points=400)
    with torch.no_grad():
        start = model.loss(target).item()
    final = train(model, target, None, steps=300)
    assert final < start / 15
    model.eval()
    with torch.no_grad():
        out = model.mesh(target, num_points=1000)
        on_mesh = sample_points_from_meshes(out.meshes, 800, generator=torch.Generator().manual_seed(2))
        per_shape = chamfer_distance(on_mesh, target, batch_reduction=None)[0]
    assert per_shape.mean() < 3 * final and per_shape.max() < start / 4


def test_image_atlasnet_overfits_two_images():
    # a filled disk -> a sphere, a filled square -> a cube surface
    grid = torch.stack(torch.meshgrid(torch.linspace(-1, 1, 24), torch.linspace(-1, 1, 24), indexing="ij"))
    images = torch.stack([(grid.norm(dim=0) < 0.7).float(), (grid.abs().amax(0) < 0.6).float()])[:, None]
    target = primitive_surfaces(300, 1)[0][:2] * 0.5
    torch.manual_seed(0)
    model = AtlasNet(32, 4, encoder=ImageEncoder(1, 32, width=8, num_stages=3), hidden=(64, 64), norm=None,
                     num_points=300)
    with torch.no_grad():
        start = model.loss(images, target).item()
    final = train(model, images, target, steps=300)
    assert final < start / 10
    with torch.no_grad():
        out = model(images, generator=torch.Generator().manual_seed(5))
        cross = chamfer_distance(out[:, None].expand(2, 2, 300, 3).reshape(4, 300, 3),
                                 target.repeat(2, 1, 1), batch_reduction=None)[0].view(2, 2)
    assert cross[0, 0] < cross[0, 1] and cross[1, 1] < cross[1, 0]  # each image gives its own shape


def test_image_encoder_shapes_and_repr():
    torch.manual_seed(0)
    encoder = ImageEncoder(3, 20, width=4, num_stages=2).eval()
    assert encoder(torch.rand(2, 3, 17, 23)).shape == (2, 20)
    assert encoder(torch.rand(2, 3, 1, 1)).shape == (2, 20)
    assert "in_channels=3, latent_dim=20, width=4, num_stages=2" in repr(encoder)
    assert len(encoder.stages) == 2 and encoder.stages[-1].conv2.conv.out_channels == 16


def test_custom_encoder_module():
    class Mean(nn.Module):
        def __init__(self, out: int):
            super().__init__()
            self.linear = nn.Linear(3, out)

        def forward(self, points):
            return self.linear(points.mean(1))

    model = AtlasNet(8, 2, encoder=Mean(8), hidden=(8,), num_points=10)
    assert model(torch.randn(3, 20, 3)).shape == (3, 10, 3)
    with pytest.raises(ValueError, match=r"encoder must return \(B, latent_dim\) = \(B, 8\), got shape \(3, 9\)"):
        AtlasNet(8, 2, encoder=Mean(9), hidden=(8,))(torch.randn(3, 20, 3))


def test_reset_parameters_and_repr():
    torch.manual_seed(0)
    model = small_atlasnet()
    before = [p.detach().clone() for p in model.parameters()]
    model.reset_parameters()
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()) if a.numel() > 1 and a.std() > 0)
    text = repr(model)
    assert "num_patches=5, template='square', hidden=[64, 64], norm='batch'" in text
    assert "_PatchBatchNorm(num_patches=5, channels=64" in text and "input='custom'" in text


def test_decoder_parameter_count_matches_separate_networks():
    decoder = AtlasNetDecoder(10, 7, hidden=(20, 30), norm=None)
    single = (2 + 10) * 20 + 20 + 20 * 30 + 30 + 30 * 3 + 3
    assert sum(p.numel() for p in decoder.parameters()) == 7 * single


# Bad input


@pytest.mark.parametrize("make, error, match", [
    (lambda: AtlasNetDecoder(8, 0), ValueError, r"num_patches must be an int >= 1, got 0"),
    (lambda: AtlasNetDecoder(8, 2.5), ValueError, r"num_patches must be an int >= 1"),
    (lambda: AtlasNetDecoder(0, 5), ValueError, r"latent_dim must be an int >= 1"),
    (lambda: AtlasNetDecoder(8, 5, "cube"), ValueError, r"template must be one of 'square', 'sphere', got 'cube'"),
    (lambda: AtlasNetDecoder(8, 5, hidden=()), ValueError, r"hidden must hold at least one width"),
    (lambda: AtlasNetDecoder(8, 5, hidden=(16, 0)), ValueError, r"hidden\[1\] must be an int >= 1"),
    (lambda: AtlasNetDecoder(8, 5, hidden=16), ValueError, r"hidden must be a sequence"),
    (lambda: AtlasNetDecoder(8, 5, norm="layer"), ValueError, r"norm must be 'batch' or None, got 'layer'"),
    (lambda: AtlasNetDecoder(8, 5, activation="swish"), ValueError, r"activation must be one of"),
    (lambda: AtlasNet(8, 5, encoder="dgcnn"), ValueError, r"encoder must be 'points', 'image' or an nn.Module"),
    (lambda: AtlasNet(8, 5, encoder=lambda x: x), TypeError, r"encoder must be 'points', 'image' or an nn.Module"),
    (lambda: AtlasNet(8, 5, num_points=0), ValueError, r"num_points must be an int >= 1"),
    (lambda: ImageEncoder(0, 8), ValueError, r"in_channels must be an int >= 1"),
    (lambda: ImageEncoder(3, 8, num_stages=0), ValueError, r"num_stages must be an int >= 1"),
])
def test_bad_hyper_parameters_name_the_argument(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_bad_decoder_inputs_name_the_argument():
    decoder = small_decoder(K=5)
    z = torch.randn(2, 8)
    with pytest.raises(ValueError, match=r"z must have last dimension 8 \(B, 8\), got shape \(2, 7\)"):
        decoder.sample(torch.randn(2, 7), 10)
    with pytest.raises(ValueError, match=r"z must have 2 dimensions"):
        decoder.sample(torch.randn(2, 1, 8), 10)
    with pytest.raises(TypeError, match=r"z must be a torch.Tensor"):
        decoder.sample([[0.0] * 8], 10)
    with pytest.raises(TypeError, match=r"z must have the decoder's dtype and device \(torch.float32 on cpu\)"):
        decoder.sample(z.double(), 10)
    with pytest.raises(ValueError, match=r"z must be finite, got 1 NaN/inf"):
        decoder.sample(torch.cat([z[:1], torch.tensor([[float("nan")] + [0.0] * 7])]), 10)
    with pytest.raises(ValueError, match=r"num_points must be an int >= 1, got 0"):
        decoder.sample(z, 0)
    with pytest.raises(ValueError, match=r"template must have shape \(K, M, D\) = \(5, M, 2\) or \(B, K, M, D\) = "
                                         r"\(2, 5, M, 2\).*got shape \(4, 7, 2\)"):
        decoder(z, torch.rand(4, 7, 2))
    with pytest.raises(ValueError, match=r"template must have last dimension 2"):
        decoder(z, torch.rand(5, 7, 3))
    with pytest.raises(ValueError, match=r"got shape \(3, 5, 7, 2\)"):
        decoder(z, torch.rand(3, 5, 7, 2))
    with pytest.raises(TypeError, match=r"template must have z's dtype"):
        decoder(z, torch.rand(5, 7, 2, dtype=torch.float64))


def test_bad_mesh_resolution_names_the_argument():
    square, sphere = small_decoder(5).eval(), small_decoder(1, "sphere").eval()
    z = torch.randn(1, 8)
    with pytest.raises(ValueError, match=r"grid_size must be an int >= 2, got 1"):
        square.mesh(z, 1)
    with pytest.raises(ValueError, match=r"grid_size is for the 'square' template; the 'sphere' template takes"):
        sphere.mesh(z, 4)
    with pytest.raises(ValueError, match=r"subdivisions is for the 'sphere' template"):
        square.mesh(z, subdivisions=2)
    with pytest.raises(ValueError, match=r"subdivisions must be an int >= 0, got -1"):
        sphere.mesh(z, subdivisions=-1)
    with pytest.raises(ValueError, match=r"give at most one of grid_size, subdivisions and num_points, "
                                         r"got grid_size, num_points"):
        square.mesh(z, 4, num_points=100)
    with pytest.raises(ValueError, match=r"num_points must be an int >= 1, got 0"):
        square.mesh(z, num_points=0)


def test_bad_model_inputs_name_the_argument():
    points_model = small_atlasnet(K=2, num_points=20)
    image_model = AtlasNet(8, 2, encoder="image", in_channels=1, hidden=(8,), num_points=20)
    with pytest.raises(ValueError, match=r"points must be \(B, N, 3\)"):
        points_model(torch.randn(2, 30, 2))
    with pytest.raises(ValueError, match=r"lengths must not exceed"):
        points_model(torch.randn(2, 30, 3), torch.tensor([31, 3]))
    with pytest.raises(ValueError, match=r"images must have 1 channels in dimension 1 \(B, 1, H, W\), "
                                         r"got shape \(2, 3, 8, 8\)"):
        image_model(torch.rand(2, 3, 8, 8))
    with pytest.raises(ValueError, match=r"images must have 4 dimensions"):
        image_model(torch.rand(2, 8, 8))
    with pytest.raises(ValueError, match=r"lengths is for point cloud input; the image encoder takes none"):
        image_model(torch.rand(2, 1, 8, 8), torch.tensor([3, 3]))
    with pytest.raises(ValueError, match=r"target is needed with image input"):
        image_model.loss(torch.rand(2, 1, 8, 8))
    assert math.isfinite(image_model.loss(torch.rand(2, 1, 8, 8), torch.rand(2, 9, 3)).item())
