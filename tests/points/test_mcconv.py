import math

import pytest
import torch
import torch.nn.functional as F

from geo4g.points.mcconv import MCConvClassifier, MonteCarloConv
from geo4g.structures import Pointclouds

from ._shapes import primitive_surfaces as primitives


def ragged(lengths=(40, 25, 6), channels: int = 2, seed: int = 0):
    """Points in the unit cube, features, lengths; padding rows hold garbage."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(lengths)
    points = torch.rand(len(lengths), max(lengths), 3, generator=g)
    features = torch.randn(len(lengths), max(lengths), channels, generator=g)
    pad = torch.arange(points.shape[1])[None] >= lengths[:, None]
    points[pad], features[pad] = 1e3, 1e3
    return points, features, lengths


def naive_mcconv(conv: MonteCarloConv, points, features, out_points, lengths, out_lengths):
    """The estimate of the docstring, point by point."""
    r, h = conv.radius, conv.bandwidth
    out = torch.zeros(out_points.shape[0], out_points.shape[1], conv.out_channels)
    for b in range(points.shape[0]):
        y, f = points[b, :lengths[b]], features[b, :lengths[b]]
        d = torch.cdist(y, y)
        density = []
        for j in range(len(y)):
            near = [k for k in range(len(y)) if d[j, k] <= 3 * h * r][:conv.max_neighbors]
            gauss = torch.exp(-d[j, near] ** 2 / (2 * (h * r) ** 2)).sum()
            density.append(gauss / ((2 * math.pi) ** 1.5 * h ** 3))
        for i in range(int(out_lengths[b])):
            x = out_points[b, i]
            js = [j for j in range(len(y)) if (y[j] - x).norm() <= r][:conv.max_neighbors]
            integral = torch.zeros(conv.hidden, conv.in_channels)
            for j in js:
                weight = 1 / density[j] if conv.density_weighting else 1 / len(js)
                integral += weight * torch.outer(conv.kernel((y[j] - x) / r), f[j])
            out[b, i] = conv.linear(integral.flatten())
    return out


@pytest.mark.parametrize("density_weighting", [True, False])
def test_mcconv_matches_naive(density_weighting):
    torch.manual_seed(0)
    conv = MonteCarloConv(2, 5, radius=0.35, hidden=8, max_neighbors=12, density_weighting=density_weighting)
    points, features, lengths = ragged()
    out_points, _, out_lengths = ragged(lengths=(10, 4, 3), seed=1)
    with torch.no_grad():
        out = conv(points, features, out_points, lengths, out_lengths)
        expected = naive_mcconv(conv, points, features, out_points, lengths, out_lengths)
    assert out.shape == (3, 10, 5)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-4)
    assert not out[1, 4:].any() and not out[2, 3:].any()


def plane(n: int, g: torch.Generator, rate: float) -> torch.Tensor:
    """``n`` points of the unit square (z = 0) with density proportional to ``exp(rate * x)``."""
    kept, total = [], 0
    while total < n:
        p = torch.rand(4 * n, 2, generator=g)
        p = p[torch.rand(4 * n, generator=g) < torch.exp(rate * (p[:, 0] - 1))]
        kept.append(p)
        total += len(p)
    return torch.cat([torch.cat(kept)[:n], torch.zeros(n, 1)], 1)


def test_density_weighting_makes_the_estimate_independent_of_the_sampling():
    # A constant field convolved with the fixed kernel g(d) = leaky_relu(d_x), at the same 32
    # interior points of a square sampled uniformly and with 20x more points on one side.
    g = torch.Generator().manual_seed(0)
    radius, n = 0.2, 2000
    uniform, skewed = plane(n, g, 0.0), plane(n, g, 3.0)
    queries = torch.cat([torch.rand(32, 2, generator=g) * (1 - 3.4 * radius) + 1.7 * radius, torch.zeros(32, 1)], 1)
    errors = {}
    for density_weighting in (True, False):
        conv = MonteCarloConv(1, 1, radius, hidden=1, max_neighbors=512, density_weighting=density_weighting)
        with torch.no_grad():
            conv.kernel.layers[0].weight.copy_(torch.tensor([[1.0, 0.0, 0.0]]))
            conv.kernel.layers[0].bias.zero_()
            conv.linear.weight.fill_(1.0)
            conv.linear.bias.zero_()
            a = conv(uniform[None], torch.ones(1, n, 1), queries[None])
            b = conv(skewed[None], torch.ones(1, n, 1), queries[None])
        errors[density_weighting] = ((a - b).norm() / a.norm()).item()
    assert errors[True] < 0.15  # Monte Carlo noise of some 100 samples per ball
    assert errors[False] > 0.3 and errors[False] > 4 * errors[True]


def test_mcconv_ragged_batch_equals_each_cloud_alone_and_pointclouds_input(device):
    torch.manual_seed(0)
    conv = MonteCarloConv(2, 4, radius=0.4).to(device)
    points, features, lengths = (t.to(device) for t in ragged())
    out = conv(points, features, lengths=lengths)
    assert out.shape == (3, 40, 4)
    for b, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(out[b, :n], conv(points[b:b + 1, :n], features[b:b + 1, :n])[0])
        assert not out[b, n:].any()
    clouds = Pointclouds([points[b, :n] for b, n in enumerate(lengths.tolist())])
    torch.testing.assert_close(conv(clouds, features, clouds), out)


def test_mcconv_gradients_reach_parameters_features_and_points():
    torch.manual_seed(0)
    conv = MonteCarloConv(2, 4, radius=0.4)
    points, features, lengths = ragged()
    points.requires_grad_(True)
    features.requires_grad_(True)
    conv(points, features, lengths=lengths).square().sum().backward()
    for name, p in conv.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    for x in (points, features):
        assert torch.isfinite(x.grad).all() and x.grad[0, :40].abs().sum() > 0
        assert not x.grad[2, 6:].any()  # padding gets no gradient


def test_mcconv_point_without_neighbour_gets_the_bias():
    conv = MonteCarloConv(1, 3, radius=0.1)
    out = conv(torch.zeros(1, 2, 3), torch.ones(1, 2, 1), torch.tensor([[[5.0, 5.0, 5.0]]]))
    torch.testing.assert_close(out[0, 0], conv.linear.bias.detach())


def test_classifier_shapes_ragged_pointclouds_and_repr(device):
    torch.manual_seed(0)
    model = MCConvClassifier(5, radii=(0.3, 0.5, 1.0), num_samples=(16, 4), width=0.125).eval().to(device)
    points, _, lengths = (t.to(device) for t in ragged())
    logits = model(points, lengths)
    assert logits.shape == (3, 5)
    alone = torch.cat([model(points[b:b + 1, :n]) for b, n in enumerate(lengths.tolist())])
    torch.testing.assert_close(logits, alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model(Pointclouds([points[b, :n] for b, n in enumerate(lengths.tolist())])), logits)
    assert "num_samples=(16, 4)" in repr(model) and "density_weighting=True" in repr(model)


def test_classifier_logits_do_not_depend_on_point_order():
    torch.manual_seed(0)
    model = MCConvClassifier(4, radii=(0.4, 0.8, 1.6), num_samples=(32, 8), width=0.125).eval()
    points, _ = primitives(128, 1)
    perm = torch.randperm(128)
    torch.testing.assert_close(model(points[:, perm]), model(points), atol=1e-5, rtol=1e-5)


def test_classifier_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = MCConvClassifier(4, radii=(0.3, 0.5, 1.0), num_samples=(16, 4), width=0.125, dropout=0.0)
    points, _, lengths = ragged()
    model(points, lengths).square().sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        if name.endswith("weight"):
            assert p.grad.abs().sum() > 0, name


def test_classifier_overfits_a_tiny_batch():
    torch.manual_seed(0)
    points, labels = primitives(256, 2)
    model = MCConvClassifier(4, radii=(0.4, 0.8, 1.6), num_samples=(64, 16), width=0.25, dropout=0.0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(40):
        opt.zero_grad()
        loss = F.cross_entropy(model(points), labels)
        loss.backward()
        opt.step()
    assert loss.item() < 0.05
    assert torch.equal(model(points).argmax(1), labels)


def test_reset_parameters_reinitialises():
    torch.manual_seed(0)
    model = MCConvClassifier(3, width=0.125)
    before = [p.detach().clone() for p in model.parameters()]
    model.reset_parameters()
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()) if a.numel() > 1 and a.std() > 0)


@pytest.mark.parametrize("make, match", [
    (lambda: MonteCarloConv(2, 4, radius=0), "radius must be a positive"),
    (lambda: MonteCarloConv(2, 4, radius=-1.0), "radius must be a positive"),
    (lambda: MonteCarloConv(0, 4, radius=0.1), "in_channels"),
    (lambda: MonteCarloConv(2, 4, radius=0.1, hidden=0), "hidden"),
    (lambda: MonteCarloConv(2, 4, radius=0.1, bandwidth=0), "bandwidth"),
    (lambda: MonteCarloConv(2, 4, radius=0.1, max_neighbors=0), "max_neighbors"),
    (lambda: MCConvClassifier(4, radii=(0.1, 0.2)), "radii must be a sequence of 3"),
    (lambda: MCConvClassifier(4, radii=(0.1, 0.0, 0.2)), r"radii\[1\] must be a positive"),
    (lambda: MCConvClassifier(4, num_samples=(64, 0)), r"num_samples\[1\]"),
    (lambda: MCConvClassifier(0), "num_classes"),
])
def test_bad_hyper_parameters_name_the_argument(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_inputs_name_the_argument():
    conv = MonteCarloConv(2, 4, radius=0.3)
    points, features, lengths = ragged()
    with pytest.raises(ValueError, match=r"features must have shape \(B, N, 2\)"):
        conv(points, features[..., :1], lengths=lengths)
    with pytest.raises(ValueError, match=r"features must have shape"):
        conv(points, features[:, :30], lengths=lengths)
    with pytest.raises(ValueError, match=r"features must be a \(B, N, 2\)"):
        conv(points, None, lengths=lengths)
    with pytest.raises(ValueError, match=r"points must be \(B, N, 3\)"):
        conv(points[..., :2], features)
    with pytest.raises(ValueError, match=r"out_points must be \(B, N, 3\)"):
        conv(points, features, torch.rand(3, 5, 2), lengths)
    with pytest.raises(ValueError, match=r"out_points must have the batch size of points \(3\)"):
        conv(points, features, torch.rand(2, 5, 3), lengths)
    with pytest.raises(ValueError, match=r"out_lengths must be None without out_points"):
        conv(points, features, None, lengths, lengths)
    with pytest.raises(ValueError, match=r"lengths must not exceed"):
        conv(points, features, lengths=torch.tensor([41, 1, 1]))
    with pytest.raises(ValueError, match=r"features must be finite"):
        conv(points, torch.full_like(features, float("nan")), lengths=lengths)
