import copy

import pytest
import torch
import torch.nn.functional as F

from geo4g.points import ball_query, knn_points
from geo4g.points.dgcnn import DGCNNClassifier, DynamicEdgeConv, EdgeConv
from geo4g.structures import Pointclouds

from ._shapes import primitive_surfaces as primitives


def ragged(seed: int = 0, lengths=(40, 25, 7), channels: int = 3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(lengths), max(lengths), channels, generator=g)
    lengths = torch.tensor(lengths)
    x[torch.arange(x.shape[1])[None] >= lengths[:, None]] = 1e3  # padding garbage must not matter
    return x, lengths


def naive_edge_conv(conv: EdgeConv, x, idx, lengths):
    """Point by point: max over the valid neighbours of mlp([x_i, x_j - x_i])."""
    out = torch.zeros(x.shape[0], x.shape[1], conv.out_channels)
    for b in range(x.shape[0]):
        for i in range(int(lengths[b])):
            js = [int(j) for k, j in enumerate(idx[b, i]) if j >= 0 and k < lengths[b]]
            if js:
                xi = x[b, i].expand(len(js), -1)
                out[b, i] = conv.mlp(torch.cat([xi, x[b, js] - xi], 1)).amax(0)
    return out


def test_edge_conv_matches_naive_on_a_ball_query_graph():
    torch.manual_seed(0)
    conv = EdgeConv(3, 8, k=5, hidden=(16,)).eval()
    x, lengths = ragged()
    idx = ball_query(x, x, lengths, lengths, K=6, radius=1.2).idx  # -1 padded, some points alone
    out = conv(x, idx, lengths)
    assert out.shape == (3, 40, 8)
    torch.testing.assert_close(out, naive_edge_conv(conv, x, idx, lengths))
    assert not out[2, 7:].any() and not out[1, 25:].any()


def test_edge_conv_ignores_knn_points_fill_past_lengths():
    torch.manual_seed(0)
    conv = EdgeConv(3, 8, k=10).eval()
    x, lengths = ragged()
    filled = knn_points(x, x, lengths, lengths, K=10).idx  # 0 in the slots past a cloud's 7 points
    assert (filled[2, :7, 7:] == 0).all()
    torch.testing.assert_close(conv(x, filled, lengths), conv(x, conv.neighbours(x, lengths), lengths))


def test_neighbours_are_the_k_nearest_valid_points():
    conv = EdgeConv(3, 4, k=10)
    x, lengths = ragged(channels=5)
    idx = conv.neighbours(x, lengths)
    ref = knn_points(x, x, lengths, lengths, K=10).idx
    slot = torch.arange(10)[None, None]
    valid = (slot < lengths[:, None, None]) & (torch.arange(40)[None, :, None] < lengths[:, None, None])
    assert torch.equal(idx[valid], ref[valid])
    assert (idx[~valid] == -1).all()
    assert (idx[valid] < lengths[:, None, None].expand_as(idx)[valid]).all()  # padding is never a neighbour
    assert torch.equal(idx[:, :, 0][lengths[:, None] > torch.arange(40)], torch.cat([torch.arange(n) for n in lengths]))


@pytest.mark.parametrize("train", [False, True])
def test_edge_conv_matches_torch_geometric(train):
    pyg = pytest.importorskip("torch_geometric.nn")
    torch.manual_seed(0)
    conv = EdgeConv(3, 16, k=6, hidden=(32,)).train(train)
    x, lengths = ragged()
    idx = knn_points(x, x, lengths, lengths, K=6).idx
    B, N, K = idx.shape
    valid = (torch.arange(K)[None, None] < lengths[:, None, None]) & \
            (torch.arange(N)[None, :, None] < lengths[:, None, None])
    b, i, k = valid.nonzero(as_tuple=True)
    edge_index = torch.stack([b * N + idx[b, i, k], b * N + i])
    reference = pyg.EdgeConv(copy.deepcopy(conv.mlp), aggr="max")  # PyG re-initialises its nn: copy back
    reference.nn.load_state_dict(conv.mlp.state_dict())
    expected = reference(x.reshape(B * N, 3), edge_index).view(B, N, -1)
    out = conv(x, idx, lengths)
    mask = torch.arange(N)[None] < lengths[:, None]
    # In training mode both normalise over exactly the valid edges.
    torch.testing.assert_close(out[mask], expected[mask], atol=1e-5, rtol=1e-5)


def test_dynamic_edge_conv_ragged_batch_equals_each_cloud_alone(device):
    torch.manual_seed(0)
    conv = DynamicEdgeConv(4, 8, k=10).eval().to(device)  # the 7-point cloud has fewer than k points
    x, lengths = ragged(channels=4)
    x, lengths = x.to(device), lengths.to(device)
    out = conv(x, lengths)
    assert out.shape == (3, 40, 8)
    for b, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(out[b, :n], conv(x[b:b + 1, :n])[0], atol=1e-5, rtol=1e-5)
        assert not out[b, n:].any()


def test_dynamic_edge_conv_uses_the_feature_space_graph():
    torch.manual_seed(0)
    conv = DynamicEdgeConv(5, 8, k=4).eval()
    x, lengths = ragged(channels=5)
    torch.testing.assert_close(conv(x, lengths), EdgeConv.forward(conv, x, conv.neighbours(x, lengths), lengths))


def test_edge_conv_batch_norm_statistics_skip_padding():
    torch.manual_seed(0)
    conv = DynamicEdgeConv(3, 8, k=4).train()
    x, lengths = ragged()
    more = torch.cat([x, torch.full((3, 20, 3), 5.0)], 1)  # extra padding changes nothing, even in training
    torch.testing.assert_close(conv(more, lengths)[:, :40], conv(x, lengths))


def test_classifier_shapes_and_pointclouds_input():
    torch.manual_seed(0)
    model = DGCNNClassifier(5, k=8, width=0.125).eval()
    x, lengths = ragged()
    logits = model(x, lengths)
    assert logits.shape == (3, 5)
    clouds = Pointclouds([x[b, :n] for b, n in enumerate(lengths.tolist())])
    torch.testing.assert_close(model(clouds), logits)
    assert "num_classes=5, k=8" in repr(model) and "in_channels=3, out_channels=8, k=8" in repr(model)


def test_classifier_ragged_batch_equals_each_cloud_alone(device):
    torch.manual_seed(0)
    model = DGCNNClassifier(4, k=8, width=0.125).eval().to(device)
    x, lengths = ragged()
    x, lengths = x.to(device), lengths.to(device)
    logits = model(x, lengths)
    alone = torch.cat([model(x[b:b + 1, :n]) for b, n in enumerate(lengths.tolist())])
    torch.testing.assert_close(logits, alone, atol=1e-5, rtol=1e-5)


def test_classifier_logits_do_not_depend_on_point_order():
    torch.manual_seed(0)
    model = DGCNNClassifier(4, k=8, width=0.125).eval()
    points, _ = primitives(64, 1)
    perm = torch.randperm(64)
    torch.testing.assert_close(model(points[:, perm]), model(points), atol=1e-5, rtol=1e-5)


def test_classifier_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = DGCNNClassifier(4, k=6, width=0.125, dropout=0.0)
    x, lengths = ragged()
    model(x, lengths).square().sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        if name.endswith("weight"):
            assert p.grad.abs().sum() > 0, name


def test_classifier_overfits_a_tiny_batch():
    torch.manual_seed(0)
    points, labels = primitives(128, 2)
    model = DGCNNClassifier(4, k=10, width=0.25, dropout=0.0)
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
    model = DGCNNClassifier(3, k=4, width=0.125)
    before = [p.detach().clone() for p in model.parameters()]
    model.reset_parameters()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


@pytest.mark.parametrize("make, match", [
    (lambda: EdgeConv(3, 8, k=0), "k must be a positive int"),
    (lambda: EdgeConv(0, 8), "in_channels"),
    (lambda: DynamicEdgeConv(3, -1), "out_channels"),
    (lambda: DGCNNClassifier(0), "num_classes"),
    (lambda: DGCNNClassifier(4, k=-2), "k must"),
    (lambda: DGCNNClassifier(4, dropout=1.0), "dropout"),
    (lambda: DGCNNClassifier(4, width=0), "width"),
])
def test_bad_hyper_parameters_name_the_argument(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_inputs_name_the_argument():
    conv = EdgeConv(3, 8, k=4)
    x, lengths = ragged()
    idx = conv.neighbours(x, lengths)
    with pytest.raises(ValueError, match=r"x must have 3 channels"):
        conv(torch.randn(3, 40, 4), idx)
    with pytest.raises(ValueError, match=r"x must have 3 dimensions"):
        conv(torch.randn(40, 3), idx)
    with pytest.raises(TypeError, match=r"idx must be an integer tensor"):
        conv(x, idx.float(), lengths)
    with pytest.raises(ValueError, match=r"idx must have shape \(B, N, K\) = \(3, 40, K\)"):
        conv(x, idx[:, :30], lengths)
    with pytest.raises(ValueError, match=r"idx values must lie in \[-1, 40\)"):
        conv(x, idx.clamp_min(0) + 40, lengths)
    bad = idx.clone()
    bad[2, 0, 1] = 30  # cloud 2 has 7 points
    with pytest.raises(ValueError, match=r"idx must point to valid points"):
        conv(x, bad, lengths)
    with pytest.raises(ValueError, match=r"lengths must not exceed"):
        conv(x, idx, torch.tensor([41, 2, 2]))
    with pytest.raises(ValueError, match=r"x must be finite"):
        DynamicEdgeConv(3, 8)(torch.full((1, 4, 3), float("nan")))
    with pytest.raises(ValueError, match=r"points must be \(B, N, 3\)"):
        DGCNNClassifier(2, width=0.125)(torch.randn(2, 16, 4))
    with pytest.raises(ValueError, match=r"must be None when points is a Pointclouds"):
        DGCNNClassifier(2, width=0.125)(Pointclouds([torch.randn(5, 3)]), torch.tensor([5]))
