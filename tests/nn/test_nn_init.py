import math

import pytest
import torch
from torch import nn

from geo4g.nn import INIT_SCHEMES, MLP, ConvBlock, init_weights


def _model():
    return nn.Sequential(MLP([8, 16, 4], norm="batch"), ConvBlock(4, 6, 3, dim=2, norm="batch"))


@pytest.mark.parametrize("scheme", INIT_SCHEMES)
def test_init_zeroes_biases_and_keeps_norm_layers(scheme):
    model = _model()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
                m.weight.fill_(3.0)
    assert init_weights(model, scheme) is model
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            assert torch.count_nonzero(m.bias) == 0
            assert torch.count_nonzero(m.weight) == m.weight.numel()
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            assert torch.all(m.weight == 3.0)


def test_orthogonal_rows_are_orthonormal_times_gain():
    lin, conv = nn.Linear(32, 16), nn.Conv2d(4, 6, 3)
    init_weights(nn.Sequential(lin, conv), "orthogonal", gain=1.0)
    torch.testing.assert_close(lin.weight @ lin.weight.T, torch.eye(16), atol=1e-5, rtol=0)
    w = conv.weight.reshape(6, -1)
    torch.testing.assert_close(w @ w.T, torch.eye(6), atol=1e-5, rtol=0)
    init_weights(lin, "orthogonal", nonlinearity="relu")
    torch.testing.assert_close(lin.weight @ lin.weight.T, 2 * torch.eye(16), atol=1e-5, rtol=0)


def test_xavier_uniform_bound_follows_gain():
    lin = nn.Linear(100, 50)
    init_weights(lin, "xavier_uniform", gain=2.0)
    bound = 2.0 * math.sqrt(6 / 150)
    assert lin.weight.abs().max() <= bound
    assert lin.weight.abs().max() > 0.9 * bound


@pytest.mark.parametrize("scheme", ["kaiming_normal", "kaiming_uniform"])
def test_kaiming_std_follows_fan_in(scheme):
    lin = nn.Linear(400, 300)
    init_weights(lin, scheme, nonlinearity="relu", generator=torch.Generator().manual_seed(0))
    assert lin.weight.std().item() == pytest.approx(math.sqrt(2 / 400), rel=0.05)


def test_generator_makes_init_reproducible():
    a, b, c = _model(), _model(), _model()
    init_weights(a, "xavier_normal", generator=torch.Generator().manual_seed(3))
    init_weights(b, "xavier_normal", generator=torch.Generator().manual_seed(3))
    init_weights(c, "xavier_normal", generator=torch.Generator().manual_seed(4))
    for pa, pb, pc in zip(a.parameters(), b.parameters(), c.parameters()):
        assert torch.equal(pa, pb)
    assert not torch.equal(a[0].layers[0].weight, c[0].layers[0].weight)


def test_bad_names_raise():
    with pytest.raises(ValueError, match="scheme must be one of 'xavier_uniform'.*got 'he'"):
        init_weights(nn.Linear(2, 2), "he")
    with pytest.raises(ValueError, match="nonlinearity must be one of"):
        init_weights(nn.Linear(2, 2), "xavier_uniform", nonlinearity="gelu")
    with pytest.raises(ValueError, match="gain is not used by scheme='kaiming_normal'"):
        init_weights(nn.Linear(2, 2), "kaiming_normal", gain=1.0)
