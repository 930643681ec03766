import math

import pytest
import torch
from torch import nn

from geo4g.losses import chamfer_distance
from geo4g.points.decoders import PointAutoEncoder, PointSetDecoder, PointSetEncoder
from geo4g.structures import Pointclouds



def primitives(n: int, seed: int = 0) -> torch.Tensor:
    """``(4, n, 3)`` surface samples of a sphere, cube, cylinder and torus."""
    g = torch.Generator().manual_seed(seed)
    sphere = torch.randn(n, 3, generator=g)
    cube = torch.rand(n, 3, generator=g) * 2 - 1
    axis = torch.randint(0, 3, (n,), generator=g)
    cube[torch.arange(n), axis] = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    t, z = torch.rand(n, generator=g) * 2 * math.pi, torch.rand(n, generator=g) * 2 - 1
    u, v = torch.rand(n, generator=g) * 2 * math.pi, torch.rand(n, generator=g) * 2 * math.pi
    ring = 0.7 + 0.3 * v.cos()
    return torch.stack([sphere / sphere.norm(dim=1, keepdim=True), cube * 0.7,
                        torch.stack([0.5 * t.cos(), 0.5 * t.sin(), z], 1),
                        torch.stack([ring * u.cos(), ring * u.sin(), 0.3 * v.sin()], 1)])


def ragged(lengths=(50, 31, 9), seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(lengths)
    points = torch.randn(len(lengths), max(lengths), 3, generator=g)
    points[torch.arange(points.shape[1])[None] >= lengths[:, None]] = 1e3  # padding garbage must not matter
    return points, lengths


def small_autoencoder(num_points: int = 128, latent_dim: int = 32) -> PointAutoEncoder:
    return PointAutoEncoder(num_points, latent_dim, encoder=PointSetEncoder(latent_dim, channels=(32, 64, 64, 128)),
                            hidden=(64, 128))


def test_decoder_output_shape_and_repr():
    decoder = PointSetDecoder(16, 100, hidden=(32, 64))
    assert decoder(torch.randn(5, 16)).shape == (5, 100, 3)
    assert PointSetDecoder(16, 7, hidden=())(torch.randn(2, 16)).shape == (2, 7, 3)
    assert "latent_dim=16, num_points=100, hidden=[32, 64]" in repr(decoder)


def test_encoder_ragged_batch_equals_each_cloud_alone_and_pointclouds_input():
    torch.manual_seed(0)
    encoder = PointSetEncoder(24).eval()
    points, lengths = ragged()
    z = encoder(points, lengths)
    assert z.shape == (3, 24)
    alone = torch.cat([encoder(points[b:b + 1, :n]) for b, n in enumerate(lengths.tolist())])
    torch.testing.assert_close(z, alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(encoder(Pointclouds([points[b, :n] for b, n in enumerate(lengths.tolist())])), z)


def test_encoder_does_not_depend_on_point_order():
    torch.manual_seed(0)
    encoder = PointSetEncoder(24).eval()
    points = primitives(64)
    torch.testing.assert_close(encoder(points[:, torch.randperm(64)]), encoder(points), atol=1e-5, rtol=1e-5)


def test_encoder_batch_norm_statistics_skip_padding():
    torch.manual_seed(0)
    encoder = PointSetEncoder(8).train()
    points, lengths = ragged()
    more = torch.cat([points, torch.full((3, 10, 3), 7.0)], 1)
    torch.testing.assert_close(encoder(more, lengths), encoder(points, lengths))


def test_autoencoder_reconstructs_ragged_input_to_num_points(device):
    torch.manual_seed(0)
    model = small_autoencoder(num_points=40).eval().to(device)
    points, lengths = (t.to(device) for t in ragged())
    out = model(points, lengths)
    assert out.shape == (3, 40, 3)
    alone = torch.cat([model(points[b:b + 1, :n]) for b, n in enumerate(lengths.tolist())])
    torch.testing.assert_close(out, alone, atol=1e-5, rtol=1e-5)
    assert model.encode(points, lengths).shape == (3, 32)
    loss = model.loss(points, lengths)
    expected = chamfer_distance(out, points[:, :50], y_lengths=lengths)[0]
    torch.testing.assert_close(loss, expected)


def test_autoencoder_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = small_autoencoder(num_points=40)
    points, lengths = ragged()
    model.loss(points, lengths).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        if name.endswith("weight"):
            assert p.grad.abs().sum() > 0, name


def test_autoencoder_overfits_four_shapes():
    torch.manual_seed(0)
    points = primitives(128)
    model = small_autoencoder(num_points=128)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with torch.no_grad():
        start = model.loss(points).item()
    for _ in range(200):
        opt.zero_grad()
        loss = model.loss(points)
        loss.backward()
        opt.step()
    with torch.no_grad():
        end = model.eval().loss(points).item()
    assert end < start / 10


def test_emd_loss_trains_and_needs_num_points_per_cloud():
    torch.manual_seed(0)
    model = small_autoencoder(num_points=32)
    points = primitives(32)
    loss = model.loss(points, kind="emd")
    loss.backward()
    assert loss.item() > 0 and model.decoder.mlp.layers[0].weight.grad.abs().sum() > 0
    padded = torch.cat([points, torch.zeros(4, 5, 3)], 1)
    torch.testing.assert_close(model.loss(padded, torch.full((4,), 32), kind="emd"), model.loss(points, kind="emd"))
    with pytest.raises(ValueError, match=r"kind='emd' needs every cloud to have num_points=32 points"):
        model.loss(padded, torch.tensor([32, 32, 30, 37]), kind="emd")


def test_custom_encoder_module():
    class Mean(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(3, 8)

        def forward(self, points, lengths):
            mask = (torch.arange(points.shape[1])[None] < lengths[:, None])[..., None]
            return self.linear((points * mask).sum(1) / lengths[:, None])

    model = PointAutoEncoder(20, 8, encoder=Mean(), hidden=(16,))
    points, lengths = ragged()
    assert model(points, lengths).shape == (3, 20, 3)
    with pytest.raises(ValueError, match=r"encoder must return \(B, latent_dim\) = \(3, 9\), got shape \(3, 8\)"):
        PointAutoEncoder(20, 9, encoder=Mean(), hidden=(16,))(points, lengths)


def test_reset_parameters_reinitialises():
    torch.manual_seed(0)
    model = small_autoencoder()
    before = [p.detach().clone() for p in model.parameters()]
    model.reset_parameters()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


@pytest.mark.parametrize("make, error, match", [
    (lambda: PointSetDecoder(0, 10), ValueError, "latent_dim"),
    (lambda: PointSetDecoder(8, 0), ValueError, "num_points"),
    (lambda: PointSetDecoder(8, 10, hidden=(16, 0)), ValueError, r"hidden\[1\]"),
    (lambda: PointSetEncoder(8, channels=64), ValueError, "channels must be a sequence"),
    (lambda: PointAutoEncoder(10, 8, encoder="dgcnn"), ValueError, "encoder must be 'pointnet' or an nn.Module"),
    (lambda: PointAutoEncoder(10, 8, encoder=lambda p, n: p), TypeError, "encoder must be 'pointnet'"),
    (lambda: PointAutoEncoder(10, -8), ValueError, "latent_dim"),
])
def test_bad_hyper_parameters_name_the_argument(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_bad_inputs_name_the_argument():
    decoder = PointSetDecoder(8, 10, hidden=(16,))
    with pytest.raises(ValueError, match=r"z must have last dimension 8"):
        decoder(torch.randn(2, 7))
    with pytest.raises(ValueError, match=r"z must have 2 dimensions"):
        decoder(torch.randn(2, 3, 8))
    model = small_autoencoder(num_points=10)
    points, lengths = ragged()
    with pytest.raises(ValueError, match=r"points must be \(B, N, 3\)"):
        model(points[..., :2])
    with pytest.raises(ValueError, match=r"lengths must not exceed"):
        model(points, torch.tensor([60, 1, 1]))
    with pytest.raises(ValueError, match=r"kind must be 'chamfer' or 'emd'"):
        model.loss(points, lengths, kind="l2")
