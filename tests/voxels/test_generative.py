import pytest
import torch
import torch.nn.functional as F

from geo4g.losses import voxel_iou
from geo4g.voxels.generative import (GANLosses, UpBlock, VAEOutput, VoxelAutoEncoder, VoxelDecoder,
                                     VoxelDiscriminator, VoxelEncoder, VoxelGenerator, VoxelVAE, gan_losses,
                                     gan_train_step, kl_divergence, occupancy_loss, vae_loss)

from .test_classifiers import shape_grid


def two_shapes(resolution: int = 32) -> torch.Tensor:
    return torch.stack([shape_grid("torus", resolution), shape_grid("box", resolution)])


# Shapes


@pytest.mark.parametrize("resolution", [32, 64])
def test_auto_encoder_shapes(resolution):
    torch.manual_seed(0)
    model = VoxelAutoEncoder(resolution, latent_dim=8, width=0.125)
    grid = torch.rand(2, resolution, resolution, resolution) > 0.5
    z = model.encode(grid)
    assert z.shape == (2, 8)
    assert model.decode(z).shape == (2, resolution, resolution, resolution)
    assert model(grid[:, None]).shape == (2, resolution, resolution, resolution)
    assert len(model.encoder.convs) == len(model.decoder.ups) == (3 if resolution == 32 else 4)


@pytest.mark.parametrize("resolution", [32, 64])
def test_vae_shapes_and_sampling(resolution):
    torch.manual_seed(0)
    model = VoxelVAE(resolution, latent_dim=6, width=0.125)
    grid = torch.rand(2, resolution, resolution, resolution) > 0.5
    out = model(grid)
    assert isinstance(out, VAEOutput)
    assert out.logits.shape == (2, resolution, resolution, resolution)
    assert out.mu.shape == out.logvar.shape == (2, 6)
    model.eval()
    samples = model.sample(3, torch.Generator().manual_seed(1))
    assert samples.shape == (3, resolution, resolution, resolution)
    torch.testing.assert_close(model.sample(3, torch.Generator().manual_seed(1)), samples)
    assert model.sample(0).shape == (0, resolution, resolution, resolution)


@pytest.mark.parametrize("resolution", [32, 64])
def test_gan_shapes_and_channels(resolution):
    torch.manual_seed(0)
    g_model = VoxelGenerator(latent_dim=10, resolution=resolution, width=0.125)
    d_model = VoxelDiscriminator(resolution, width=0.125)
    fake = g_model.sample(2, torch.Generator().manual_seed(0))
    assert fake.shape == (2, resolution, resolution, resolution)
    assert bool(((fake > 0) & (fake < 1)).all())
    assert d_model(fake).shape == (2,)
    assert d_model(fake[:, None] > 0.5).shape == (2,)
    stages = 3 if resolution == 32 else 4
    assert len(g_model.ups) == len(d_model.convs) == stages


def test_gan_has_the_papers_filters_at_64():
    g_model = VoxelGenerator()
    assert [g_model.stem[0].out_channels] + [u.conv.out_channels for u in g_model.ups] == [512, 256, 128, 64, 1]
    assert g_model.stem[0].kernel_size == (4, 4, 4) and g_model.latent_dim == 200
    d_model = VoxelDiscriminator()
    assert [b.conv.out_channels for b in d_model.convs] == [64, 128, 256, 512]
    assert all(b.act.negative_slope == 0.2 for b in d_model.convs)
    assert d_model.convs[0].norm is None and all(b.norm is not None for b in d_model.convs[1:])


def test_up_block_doubles_each_size():
    block = UpBlock(3, 5)
    assert block(torch.zeros(2, 3, 4, 5, 6)).shape == (2, 5, 8, 10, 12)
    assert UpBlock(3, 1, norm=None, activation=None).norm is None


@pytest.mark.parametrize("resolution", [0, 12, 24, 33, True, 32.0])
def test_resolution_must_be_eight_times_a_power_of_two(resolution):
    for build in (lambda: VoxelAutoEncoder(resolution), lambda: VoxelVAE(resolution),
                  lambda: VoxelGenerator(resolution=resolution), lambda: VoxelDiscriminator(resolution)):
        with pytest.raises(ValueError, match=r"resolution must be 8 \* 2\^k"):
            build()


def test_bad_inputs_name_the_argument():
    model = VoxelAutoEncoder(16, 4, 0.125)
    with pytest.raises(ValueError, match=r"grid must be \(B, 16, 16, 16\) or \(B, 1, 16, 16, 16\)"):
        model(torch.zeros(2, 32, 32, 32))
    with pytest.raises(ValueError, match=r"z must have last dimension 4"):
        model.decode(torch.zeros(2, 5))
    with pytest.raises(TypeError, match=r"z must be a floating point tensor"):
        model.decode(torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="latent_dim must be a positive int"):
        VoxelVAE(16, 0)
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        VoxelVAE(16, 4, 0.125).sample(2, generator=3)
    with pytest.raises(ValueError, match="n must be a non-negative int"):
        VoxelGenerator(4, 16, 0.125).sample(-1)
    with pytest.raises(ValueError, match="out_features must be a positive int"):
        VoxelEncoder(16, 0)
    with pytest.raises(ValueError, match="width must be a positive number"):
        VoxelDecoder(16, 4, width=-1)


# Losses


def test_occupancy_loss_matches_bce_and_its_weighted_and_focal_forms():
    torch.manual_seed(0)
    logits = torch.randn(2, 6, 6, 6, dtype=torch.float64)
    target = torch.rand(2, 6, 6, 6) > 0.8
    t = target.double()
    torch.testing.assert_close(occupancy_loss(logits, target), F.binary_cross_entropy_with_logits(logits, t))
    torch.testing.assert_close(occupancy_loss(logits, target, pos_weight=7.0),
                               F.binary_cross_entropy_with_logits(logits, t, pos_weight=torch.tensor(7.0).double()))
    ratio = (t.numel() - t.sum()) / t.sum()
    torch.testing.assert_close(occupancy_loss(logits, target, pos_weight="balanced"),
                               F.binary_cross_entropy_with_logits(logits, t, pos_weight=ratio))
    p = torch.sigmoid(logits)
    focal = -((1 - p) ** 2 * t * p.log() + p ** 2 * (1 - t) * (1 - p).log())
    torch.testing.assert_close(occupancy_loss(logits, target, gamma=2.0, reduction="none"), focal)
    torch.testing.assert_close(occupancy_loss(logits, target, gamma=2.0, reduction="sum"), focal.sum())
    soft = torch.rand(2, 6, 6, 6, dtype=torch.float64)
    torch.testing.assert_close(occupancy_loss(logits, soft), F.binary_cross_entropy_with_logits(logits, soft))


def test_occupancy_loss_balanced_edges_and_empty():
    logits = torch.zeros(1, 4, 4, 4)
    empty = torch.zeros(1, 4, 4, 4, dtype=torch.bool)
    torch.testing.assert_close(occupancy_loss(logits, empty, pos_weight="balanced"), occupancy_loss(logits, empty))
    one = empty.clone()
    one[0, 0, 0, 0] = True  # ratio 63 stays; a single voxel in a bigger grid clamps at 100
    big = torch.zeros(1, 8, 8, 8, dtype=torch.bool)
    big[0, 0, 0, 0] = True
    torch.testing.assert_close(occupancy_loss(torch.zeros(1, 8, 8, 8), big, pos_weight="balanced"),
                               occupancy_loss(torch.zeros(1, 8, 8, 8), big, pos_weight=100.0))
    torch.testing.assert_close(occupancy_loss(logits, one, pos_weight="balanced"),
                               occupancy_loss(logits, one, pos_weight=63.0))
    assert occupancy_loss(torch.zeros(0, 4, 4, 4), torch.zeros(0, 4, 4, 4)).item() == 0.0


def test_occupancy_loss_gradcheck():
    torch.manual_seed(0)
    logits = torch.randn(1, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    target = torch.rand(1, 3, 3, 3) > 0.5
    assert torch.autograd.gradcheck(lambda x: occupancy_loss(x, target, pos_weight=3.0, gamma=1.5), (logits,))


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(target=torch.zeros(2, 4, 4)), ValueError, r"target must have the shape of logits \(2, 4, 4, 4\)"),
    (dict(target=torch.full((2, 4, 4, 4), 2.0)), ValueError, r"target must hold occupancies in \[0, 1\]"),
    (dict(pos_weight=0.0), ValueError, "pos_weight must be None, a positive number or 'balanced'"),
    (dict(pos_weight="auto"), ValueError, "pos_weight must be"),
    (dict(gamma=-1.0), ValueError, "gamma must be a finite number >= 0"),
    (dict(reduction="max"), ValueError, "reduction must be"),
    (dict(logits=torch.zeros(2, 4, 4, 4, dtype=torch.long)), TypeError, "logits must be a floating point tensor"),
    (dict(logits=torch.full((2, 4, 4, 4), float("nan"))), ValueError, "logits must be finite"),
])
def test_occupancy_loss_bad_input(kwargs, error, match):
    args = dict(logits=torch.zeros(2, 4, 4, 4), target=torch.zeros(2, 4, 4, 4))
    args.update(kwargs)
    with pytest.raises(error, match=match):
        occupancy_loss(**args)


def test_kl_divergence_matches_torch_distributions():
    torch.manual_seed(0)
    mu, logvar = torch.randn(3, 5, dtype=torch.float64), torch.randn(3, 5, dtype=torch.float64)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    torch.testing.assert_close(kl_divergence(mu, logvar), torch.distributions.kl_divergence(q, p).sum(1).mean())
    assert kl_divergence(torch.zeros(2, 4), torch.zeros(2, 4)).item() == 0.0
    assert kl_divergence(torch.zeros(0, 4), torch.zeros(0, 4)).item() == 0.0
    assert torch.autograd.gradcheck(kl_divergence, (mu.requires_grad_(), logvar.requires_grad_()))
    with pytest.raises(ValueError, match=r"logvar must have the shape of mu \(3, 5\)"):
        kl_divergence(mu, logvar[:, :4])


def test_vae_loss_is_summed_reconstruction_plus_beta_kl():
    torch.manual_seed(0)
    out = VAEOutput(torch.randn(2, 4, 4, 4), torch.randn(2, 3), torch.randn(2, 3))
    target = torch.rand(2, 4, 4, 4) > 0.5
    result = vae_loss(out, target, beta=0.5)
    recon = occupancy_loss(out.logits, target, reduction="sum") / 2
    torch.testing.assert_close(result.reconstruction, recon)
    torch.testing.assert_close(result.kl, kl_divergence(out.mu, out.logvar))
    torch.testing.assert_close(result.loss, recon + 0.5 * result.kl)
    torch.testing.assert_close(vae_loss(out, target[:, None], beta=0.5).loss, result.loss)
    with pytest.raises(TypeError, match="output must be the VAEOutput"):
        vae_loss((out.logits, out.mu, out.logvar), target)
    with pytest.raises(ValueError, match="beta must be a finite number >= 0"):
        vae_loss(out, target, beta=-1)


def test_gan_losses_values_and_accuracy():
    real = torch.tensor([2.0, -1.0, 3.0])
    fake = torch.tensor([-2.0, 0.5])
    out = gan_losses(real, fake)
    assert isinstance(out, GANLosses)
    bce = F.binary_cross_entropy_with_logits
    torch.testing.assert_close(out.discriminator, bce(real, torch.ones(3)) + bce(fake, torch.zeros(2)))
    torch.testing.assert_close(out.generator, bce(fake, torch.ones(2)))
    assert out.accuracy.item() == pytest.approx(3 / 5)
    empty = gan_losses(torch.zeros(0), fake)
    torch.testing.assert_close(empty.discriminator, bce(fake, torch.zeros(2)))
    assert empty.accuracy.item() == 0.5
    assert gan_losses(torch.zeros(0), torch.zeros(0)).accuracy.item() == 1.0
    with pytest.raises(ValueError, match=r"fake_logits must have 1 dimensions"):
        gan_losses(real, fake[:, None])
    with pytest.raises(ValueError, match="real_logits must be finite"):
        gan_losses(torch.tensor([float("nan")]), fake)


# Training


def test_auto_encoder_overfits_two_shapes():
    target = two_shapes()
    torch.manual_seed(0)
    model = VoxelAutoEncoder(32, latent_dim=16, width=0.25)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(200):
        loss = occupancy_loss(model(target), target, pos_weight="balanced")
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        iou = voxel_iou(torch.sigmoid(model(target)), target)
    assert bool((iou > 0.9).all()), iou


def test_vae_overfits_two_shapes_and_is_deterministic_in_eval_mode():
    target = two_shapes()
    torch.manual_seed(0)
    model = VoxelVAE(32, latent_dim=16, width=0.25)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        loss = vae_loss(model(target, generator=g), target, pos_weight="balanced").loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        out = model(target)
        torch.testing.assert_close(model(target).logits, out.logits)
        torch.testing.assert_close(out.logits[:1], model(target[:1]).logits, rtol=1e-4, atol=1e-4)
    iou = voxel_iou(torch.sigmoid(out.logits), target)
    assert bool((iou > 0.9).all()), iou


def test_vae_reparameterisation_uses_the_generator():
    torch.manual_seed(0)
    model = VoxelVAE(16, latent_dim=4, width=0.125).train()
    grid = torch.rand(2, 16, 16, 16) > 0.5
    a = model(grid, generator=torch.Generator().manual_seed(3)).logits
    b = model(grid, generator=torch.Generator().manual_seed(3)).logits
    c = model(grid, generator=torch.Generator().manual_seed(4)).logits
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)
    mu, logvar = torch.zeros(1000, 2), torch.full((1000, 2), 2 * torch.tensor(3.0).log().item())
    z = model.reparameterize(mu, logvar, torch.Generator().manual_seed(0))
    assert abs(float(z.std()) - 3.0) < 0.2


def test_gan_training_moves_samples_towards_a_one_shape_dataset():
    target = shape_grid("torus")[None]
    torch.manual_seed(0)
    g_model = VoxelGenerator(latent_dim=16, resolution=32, width=0.125)
    d_model = VoxelDiscriminator(32, width=0.125)
    g_opt = torch.optim.Adam(g_model.parameters(), lr=5e-3, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(d_model.parameters(), lr=5e-4, betas=(0.5, 0.999))

    def sample_iou() -> float:
        with torch.no_grad():
            samples = g_model.sample(8, torch.Generator().manual_seed(1))
        return float(voxel_iou(samples, target.expand(8, -1, -1, -1)).mean())

    before = sample_iou()
    g = torch.Generator().manual_seed(0)
    steps = [gan_train_step(g_model, d_model, g_opt, d_opt, target.expand(4, -1, -1, -1), generator=g)
             for _ in range(150)]
    after = sample_iou()
    assert before < 0.1 and after > 0.5, (before, after)
    updated = [s.discriminator_updated for s in steps]
    assert any(updated) and not all(updated)  # the adaptive rule skips D when it is ahead
    assert all(s.discriminator_accuracy <= 0.8 for s in steps if s.discriminator_updated)
    accuracies = {s.discriminator_accuracy for s in steps}
    assert len(accuracies) > 2


def test_gan_step_threshold_controls_the_discriminator_update():
    torch.manual_seed(0)
    g_model = VoxelGenerator(latent_dim=4, resolution=16, width=0.125)
    d_model = VoxelDiscriminator(16, width=0.125)
    g_opt = torch.optim.SGD(g_model.parameters(), lr=0.1)
    d_opt = torch.optim.SGD(d_model.parameters(), lr=0.1)
    real = torch.rand(2, 16, 16, 16) > 0.5
    d_before = [p.detach().clone() for p in d_model.parameters()]
    g_before = [p.detach().clone() for p in g_model.parameters()]
    step = gan_train_step(g_model, d_model, g_opt, d_opt, real, d_accuracy_threshold=0.0,
                          generator=torch.Generator().manual_seed(0))
    if step.discriminator_accuracy > 0:
        assert not step.discriminator_updated
        assert all(torch.equal(a, b) for a, b in zip(d_before, d_model.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(g_before, g_model.parameters()))
    assert all(p.grad is None for p in d_model.parameters())
    step = gan_train_step(g_model, d_model, g_opt, d_opt, real, d_accuracy_threshold=1.0)
    assert step.discriminator_updated
    assert any(not torch.equal(a, b) for a, b in zip(d_before, d_model.parameters()))
    with pytest.raises(ValueError, match=r"d_accuracy_threshold must lie in \[0, 1\]"):
        gan_train_step(g_model, d_model, g_opt, d_opt, real, d_accuracy_threshold=1.5)
    with pytest.raises(TypeError, match="g_model must be a VoxelGenerator"):
        gan_train_step(d_model, d_model, g_opt, d_opt, real)
    with pytest.raises(ValueError, match=r"real must be \(B, 16, 16, 16\)"):
        gan_train_step(g_model, d_model, g_opt, d_opt, torch.zeros(2, 8, 8, 8))
    with pytest.raises(ValueError, match="real must hold at least one grid"):
        gan_train_step(g_model, d_model, g_opt, d_opt, torch.zeros(0, 16, 16, 16))


def test_generative_models_in_eval_mode_are_deterministic_with_batch_of_one():
    torch.manual_seed(0)
    grid = two_shapes(16)
    for model in (VoxelAutoEncoder(16, 4, 0.125), VoxelDiscriminator(16, 0.125)):
        model(grid)  # one training-mode pass updates the running statistics
        model.eval()
        torch.testing.assert_close(model(grid), model(grid))
        torch.testing.assert_close(model(grid[1:]), model(grid)[1:], rtol=1e-4, atol=1e-5)
    g_model = VoxelGenerator(4, 16, 0.125)
    z = torch.randn(1, 4)
    assert g_model(z).shape == (1, 16, 16, 16)  # batch norm over voxels: a batch of one trains
    g_model.eval()
    torch.testing.assert_close(g_model(z), g_model(z))


def test_reset_parameters_reinitialises_every_model():
    torch.manual_seed(0)
    for model in (VoxelAutoEncoder(16, 4, 0.125), VoxelVAE(16, 4, 0.125), VoxelGenerator(4, 16, 0.125),
                  VoxelDiscriminator(16, 0.125)):
        before = [p.detach().clone() for p in model.parameters() if p.dim() > 1]
        model.reset_parameters()
        after = [p for p in model.parameters() if p.dim() > 1]
        assert all(not torch.equal(a, b) for a, b in zip(before, after))
        assert "resolution=16" in repr(model)
