"""three_nn_interpolate: a hand computation, ragged lengths against a naive twin, a point on top of a
known point, gradients, bad input."""
import pytest
import torch

from geo4g.points import three_nn_interpolate


@pytest.mark.parametrize("power", [1.0, 2.0])
def test_three_nn_interpolate_matches_hand_computation(power):
    known = torch.tensor([[[1.0, 0, 0], [0, 2.0, 0], [0, 0, 4.0], [10.0, 0, 0]]], dtype=torch.float64)
    feats = torch.tensor([[[1.0, 0], [2.0, 1], [4.0, 3], [100.0, 100]]], dtype=torch.float64)
    out = three_nn_interpolate(torch.zeros(1, 1, 3, dtype=torch.float64), known, feats, eps=1e-8, power=power)
    w = torch.tensor([1 / (1 + 1e-8), 1 / (2 ** power + 1e-8), 1 / (4 ** power + 1e-8)], dtype=torch.float64)
    want = (w[:, None] * feats[0, :3]).sum(0) / w.sum()
    torch.testing.assert_close(out[0, 0], want)


def _naive(unknown, known, feats, ul, kl, k, eps):
    B, N = unknown.shape[:2]
    out = torch.zeros(B, N, feats.shape[2], dtype=feats.dtype)
    for b in range(B):
        for i in range(int(ul[b])):
            if kl[b] == 0:
                continue
            d = (known[b, : kl[b]] - unknown[b, i]).square().sum(-1)
            near = torch.argsort(d, stable=True)[:k]
            w = 1 / (d[near].clamp_min(eps * eps) + eps)
            out[b, i] = (w[:, None] * feats[b, near]).sum(0) / w.sum()
    return out


@pytest.mark.parametrize("N, M", [(10, 2), (300, 400)])
def test_three_nn_interpolate_ragged_matches_naive(N, M):
    g = torch.Generator().manual_seed(N)
    unknown = torch.rand(3, N, 3, generator=g, dtype=torch.float64)
    known = torch.rand(3, M, 3, generator=g, dtype=torch.float64)
    feats = torch.rand(3, M, 5, generator=g, dtype=torch.float64)
    ul, kl = torch.tensor([N, N // 2, 0]), torch.tensor([M, 1, M])
    out = three_nn_interpolate(unknown, known, feats, ul, kl)
    torch.testing.assert_close(out, _naive(unknown, known, feats, ul, kl, 3, 1e-8))
    assert (out[1, N // 2:] == 0).all() and (out[2] == 0).all()


def test_three_nn_interpolate_coincident_point_takes_its_feature():
    g = torch.Generator().manual_seed(1)
    known = torch.rand(1, 6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    feats = torch.rand(1, 6, 4, generator=g, dtype=torch.float64)
    unknown = known.detach()[:, 2:3].clone().requires_grad_()
    out = three_nn_interpolate(unknown, known, feats)
    torch.testing.assert_close(out[0, 0], feats[0, 2], atol=1e-6, rtol=0)
    out.sum().backward()
    assert torch.isfinite(unknown.grad).all() and torch.isfinite(known.grad).all()


def test_three_nn_interpolate_gradcheck():
    g = torch.Generator().manual_seed(2)
    unknown = torch.rand(2, 5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    known = torch.rand(2, 7, 3, generator=g, dtype=torch.float64, requires_grad=True)
    feats = torch.rand(2, 7, 2, generator=g, dtype=torch.float64, requires_grad=True)
    ul, kl = torch.tensor([5, 3]), torch.tensor([7, 2])
    assert torch.autograd.gradcheck(lambda u, k, f: three_nn_interpolate(u, k, f, ul, kl), (unknown, known, feats))


def test_three_nn_interpolate_bad_input_names_the_argument():
    u, k, f = torch.rand(2, 4, 3), torch.rand(2, 5, 3), torch.rand(2, 5, 6)
    with pytest.raises(ValueError, match="known_features"):
        three_nn_interpolate(u, k, torch.rand(2, 4, 6))
    with pytest.raises(TypeError, match="known_features"):
        three_nn_interpolate(u, k, torch.ones(2, 5, 6, dtype=torch.long))
    with pytest.raises(ValueError, match="^unknown must"):
        three_nn_interpolate(torch.rand(4, 3), k, f)
    with pytest.raises(ValueError, match="^known must"):
        three_nn_interpolate(u, torch.rand(3, 5, 3), f)
    with pytest.raises(ValueError, match="known_lengths"):
        three_nn_interpolate(u, k, f, known_lengths=torch.tensor([6, 1]))
    with pytest.raises(ValueError, match="unknown_lengths"):
        three_nn_interpolate(u, k, f, unknown_lengths=torch.tensor([1]))
    with pytest.raises(ValueError, match="^k must"):
        three_nn_interpolate(u, k, f, k=0)
    with pytest.raises(ValueError, match="^eps must"):
        three_nn_interpolate(u, k, f, eps=0.0)
    bad = u.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="^unknown must"):
        three_nn_interpolate(bad, k, f)


@pytest.mark.parametrize("power", [0.0, -1.0, float("nan")])
def test_three_nn_interpolate_rejects_a_non_positive_power(power):
    x = torch.rand(1, 4, 3)
    with pytest.raises(ValueError, match="power"):
        three_nn_interpolate(x, x, torch.rand(1, 4, 2), power=power)
