"""Shared input handling of the losses: padding rows never matter, valid rows must be finite."""
import pytest
import torch

from geo4g.losses import chamfer_distance, earth_movers_distance, f_score, hausdorff_distance
from geo4g.losses._inputs import check_cloud_pair, unwrap_cloud
from geo4g.structures import Pointclouds


def clouds(junk: float):
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(2, 6, 3, generator=g), torch.rand(2, 6, 3, generator=g)
    lengths = torch.tensor([6, 4])
    x[1, 4:] = junk
    y[1, 4:] = junk
    return x, y, lengths


@pytest.mark.parametrize("loss", [
    lambda x, y, l: chamfer_distance(x, y, l, l)[0],
    lambda x, y, l: earth_movers_distance(x, y, l, l),
    lambda x, y, l: f_score(x, y, 0.3, l, l).fscore,
    lambda x, y, l: hausdorff_distance(x, y, l, l),
])
def test_nan_or_huge_padding_rows_change_nothing(loss):
    x, y, lengths = clouds(0.0)
    want = loss(x, y, lengths)
    for junk in (float("nan"), float("inf"), 1e30):
        torch.testing.assert_close(loss(*clouds(junk)[:2], lengths), want)


def test_check_cloud_pair_zeroes_padding_keeps_gradients_and_names_bad_rows():
    x, y, lengths = clouds(float("nan"))
    x.requires_grad_(True)
    px, py, xl, yl = check_cloud_pair(x, y, lengths, lengths)
    assert torch.equal(px[1, 4:], torch.zeros(2, 3)) and torch.equal(xl, lengths)
    px.sum().backward()
    assert torch.equal(x.grad[1, 4:], torch.zeros(2, 3)) and torch.equal(x.grad[0], torch.ones(6, 3))
    with pytest.raises(ValueError, match=r"y must be finite, got 1 NaN/inf value\(s\), the first at index \(0, 2, 1\)"):
        y[0, 2, 1] = float("inf")
        check_cloud_pair(x.detach(), y, lengths, lengths)


def test_unwrap_cloud_takes_pointclouds_lengths_and_refuses_a_second_set():
    pc = Pointclouds([torch.rand(3, 3), torch.rand(1, 3)])
    points, lengths = unwrap_cloud(pc, None, "x")
    assert points.shape == (2, 3, 3) and lengths.tolist() == [3, 1]
    with pytest.raises(ValueError, match="x_lengths must be None when x is a Pointclouds"):
        unwrap_cloud(pc, torch.tensor([3, 1]), "x")
    with pytest.raises(TypeError, match="y must be a torch.Tensor"):
        unwrap_cloud([[0.0, 0.0, 0.0]], None, "y")
