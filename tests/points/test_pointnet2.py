import pytest
import torch
import torch.nn.functional as F

from geo4g.points import three_nn_interpolate
from geo4g.points.pointnet2 import (FeaturePropagation, PointNet2Classifier, PointNet2Segmenter, SetAbstraction,
                                    SetAbstractionMSG)
from geo4g.structures import Pointclouds

from ._shapes import four_primitives as primitives

W = 0.125
NPOINTS = (32, 8)


def ragged(seed: int = 0, channels: int = 0):
    """A padded batch of three clouds (60, 37 and 5 points; the last below every ``npoint``) with
    garbage in the padding rows, and ``(B, N, channels)`` features."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([60, 37, 5])
    points = torch.rand(3, 60, 3, generator=g) * 1.2 - 0.6
    points[1, 37:] = 50.0
    points[2, 5:] = -3.0
    features = torch.randn(3, 60, channels, generator=g)
    return points, lengths, features


def overfit(model, inputs, loss_acc, steps: int, lr: float = 5e-3):
    """``(last loss, last training accuracy)`` after ``steps`` Adam steps on one batch, in training mode."""
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        loss, acc = loss_acc(model(*inputs))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return loss.item(), acc


# Layers


def test_set_abstraction_shapes_and_lengths():
    points, lengths, features = ragged(channels=4)
    sa = SetAbstraction(16, 0.3, 8, [8, 12], in_channels=4)
    out = sa(points, lengths, features)
    assert out.points.shape == (3, 16, 3) and out.features.shape == (3, 16, 12)
    assert torch.equal(out.lengths, torch.tensor([16, 16, 5]))
    assert out.features[2, 5:].abs().max() == 0 and out.points[2, 5:].abs().max() == 0
    # The centroids are points of their cloud, the first one its point 0.
    assert torch.equal(out.points[:, 0], points[:, 0])
    d = torch.cdist(out.points[0], points[0, :60])
    assert d.min(1).values.max() == 0


def test_set_abstraction_matches_naive_grouping_with_repeated_first_neighbour():
    """Empty ball-query slots repeat the first neighbour found, so each centroid's feature is the
    max of the MLP over exactly its neighbours within the radius (the first ``nsample`` of them)."""
    torch.manual_seed(0)
    points, lengths, features = ragged(channels=2)
    sa = SetAbstraction(10, 0.35, 6, [8, 5], in_channels=2).eval()
    out = sa(points, lengths, features)
    for b, n in enumerate(lengths.tolist()):
        for s in range(out.lengths[b]):
            centre = out.points[b, s]
            inside = ((points[b, :n] - centre) ** 2).sum(1) <= 0.35 ** 2
            idx = inside.nonzero()[:6, 0]
            grouped = torch.cat([points[b, idx] - centre, features[b, idx]], 1)
            expected = sa.mlp(grouped.T[None, :, None, :])[0, :, 0].amax(1)
            torch.testing.assert_close(out.features[b, s], expected, atol=1e-5, rtol=1e-5)


def test_set_abstraction_group_all_pools_every_valid_point():
    points, lengths, _ = ragged()
    sa = SetAbstraction(None, None, None, [8, 16], group_all=True).eval()
    out = sa(points, lengths)
    assert out.points.shape == (3, 1, 3) and out.points.abs().max() == 0
    assert out.features.shape == (3, 1, 16) and torch.equal(out.lengths, torch.ones(3, dtype=torch.long))
    for b, n in enumerate(lengths.tolist()):
        expected = sa.mlp(points[b, :n].T[None, :, :, None])[0, :, :, 0].amax(1)
        torch.testing.assert_close(out.features[b, 0], expected)


def test_set_abstraction_msg_concatenates_scales():
    points, lengths, features = ragged(channels=3)
    sa = SetAbstractionMSG(12, [0.2, 0.4], [4, 8], [[4, 6], [5, 7]], in_channels=3).eval()
    out = sa(points, lengths, features)
    assert sa.out_channels == 13 and out.features.shape == (3, 12, 13)
    assert torch.equal(out.lengths, torch.tensor([12, 12, 5]))
    single = SetAbstraction(12, 0.4, 8, [5, 7], in_channels=3).eval()
    single.mlp.load_state_dict(sa.mlps[1].state_dict())
    torch.testing.assert_close(out.features[..., 6:], single(points, lengths, features).features)


def test_feature_propagation_interpolates_and_concatenates_skip():
    torch.manual_seed(0)
    points, lengths, skip = ragged(channels=2)
    coarse = SetAbstraction(8, 0.5, 8, [4, 6]).eval()(points, lengths)
    fp = FeaturePropagation([7, 5], known_channels=6, skip_channels=2).eval()
    out = fp(points, coarse.points, coarse.features, skip, lengths, coarse.lengths)
    assert out.shape == (3, 60, 5) and out[1, 37:].abs().max() == 0
    for b, n in enumerate(lengths.tolist()):
        m = int(coarse.lengths[b])
        interp = three_nn_interpolate(points[b:b + 1, :n], coarse.points[b:b + 1, :m], coarse.features[b:b + 1, :m])
        x = torch.cat([interp[0], skip[b, :n]], 1)
        torch.testing.assert_close(out[b, :n], fp.mlp(x.T[None])[0].T, atol=1e-5, rtol=1e-5)


def test_feature_propagation_from_one_point_is_constant():
    fp = FeaturePropagation([4], known_channels=3).eval()
    out = fp(torch.rand(2, 9, 3), torch.zeros(2, 1, 3), torch.randn(2, 1, 3))
    torch.testing.assert_close(out, out[:, :1].expand(2, 9, 4))


# Models


@pytest.mark.parametrize("msg", [False, True])
def test_classifier_shapes_padded_and_pointclouds(msg):
    points, lengths, features = ragged(channels=3)
    model = PointNet2Classifier(5, in_channels=3, msg=msg, npoints=NPOINTS, width=W)
    assert model(points, lengths, features).shape == (3, 5)
    model.eval()
    normals = [features[i, :lengths[i]] for i in range(3)]
    clouds = Pointclouds([points[i, :lengths[i]] for i in range(3)], normals=normals)
    torch.testing.assert_close(model(clouds, features=clouds.normals_padded()), model(points, lengths, features))


def test_segmenter_shapes_padded_and_pointclouds():
    points, lengths, features = ragged(channels=3)
    category = torch.tensor([2, 0, 1])
    model = PointNet2Segmenter(7, 3, in_channels=3, npoints=NPOINTS, width=W)
    logits = model(points, category, lengths, features)
    assert logits.shape == (3, 60, 7) and logits[1, 37:].abs().max() == 0 and logits[2, 5:].abs().max() == 0
    model.eval()
    clouds = Pointclouds([points[i, :lengths[i]] for i in range(3)],
                         features=[features[i, :lengths[i]] for i in range(3)])
    torch.testing.assert_close(model(clouds, category, features=clouds.features_padded()),
                               model(points, category, lengths, features))
    assert PointNet2Segmenter(4, npoints=NPOINTS, width=W)(points, lengths=lengths).shape == (3, 60, 4)


@pytest.mark.parametrize("kind", ["ssg", "msg", "segmenter"])
def test_ragged_batch_matches_each_cloud_alone(kind, device):
    torch.manual_seed(0)
    points, lengths, features = (t.to(device) for t in ragged(channels=2))
    category = torch.tensor([1, 0, 1], device=device)
    if kind == "segmenter":
        model = PointNet2Segmenter(5, 2, in_channels=2, npoints=NPOINTS, width=W).to(device).eval()
        batch = model(points, category, lengths, features)
    else:
        model = PointNet2Classifier(4, in_channels=2, msg=kind == "msg", npoints=NPOINTS, width=W).to(device).eval()
        batch = model(points, lengths, features)
    for i, n in enumerate(lengths.tolist()):
        if kind == "segmenter":
            alone = model(points[i:i + 1, :n], category[i:i + 1], features=features[i:i + 1, :n])[0]
            torch.testing.assert_close(batch[i, :n], alone, atol=1e-5, rtol=1e-5)
        else:
            alone = model(points[i:i + 1, :n], features=features[i:i + 1, :n])[0]
            torch.testing.assert_close(batch[i], alone, atol=1e-5, rtol=1e-5)


def test_extra_padding_changes_nothing_in_training_mode():
    points, lengths, _ = ragged()
    longer = torch.cat([points, torch.randn(3, 10, 3)], 1)
    torch.manual_seed(0)
    classifier = PointNet2Classifier(4, npoints=NPOINTS, width=W, dropout=0.0).train()
    torch.testing.assert_close(classifier(points, lengths), classifier(longer, lengths), atol=1e-5, rtol=1e-5)
    segmenter = PointNet2Segmenter(4, npoints=NPOINTS, width=W, dropout=0.0).train()
    a, b = segmenter(points, lengths=lengths), segmenter(longer, lengths=lengths)
    torch.testing.assert_close(a, b[:, :60], atol=1e-5, rtol=1e-5)


def test_an_empty_cloud_gives_finite_outputs():
    points, lengths, _ = ragged()
    lengths = torch.tensor([60, 0, 5])
    classifier = PointNet2Classifier(4, npoints=NPOINTS, width=W)
    assert torch.isfinite(classifier(points, lengths)).all()
    logits = PointNet2Segmenter(4, npoints=NPOINTS, width=W)(points, lengths=lengths)
    assert torch.isfinite(logits).all() and logits[1].abs().max() == 0


@pytest.mark.parametrize("msg", [False, True])
def test_classifier_overfits_a_tiny_batch(msg):
    torch.manual_seed(0)
    x, y = primitives(2, 128)
    model = PointNet2Classifier(4, msg=msg, npoints=NPOINTS, width=W, dropout=0.0)

    def loss_acc(logits):
        return F.cross_entropy(logits, y), (logits.argmax(1) == y).float().mean().item()

    loss, acc = overfit(model, (x,), loss_acc, 40)
    assert acc == 1.0 and loss < 0.2


def test_segmenter_overfits_a_tiny_batch():
    torch.manual_seed(0)
    x, y = primitives(2, 128)
    parts = 2 * y[:, None] + (x[..., 0] > 0).long()  # two parts per shape: the halves x <= 0 and x > 0
    model = PointNet2Segmenter(8, 4, npoints=NPOINTS, width=W, dropout=0.0)

    def loss_acc(logits):
        loss = F.cross_entropy(logits.reshape(-1, 8), parts.reshape(-1))
        return loss, (logits.argmax(2) == parts).float().mean().item()

    loss, acc = overfit(model, (x, y), loss_acc, 80)
    assert acc > 0.97 and loss < 0.3


@pytest.mark.parametrize("kind", ["ssg", "msg", "segmenter"])
def test_gradients_reach_every_parameter(kind):
    torch.manual_seed(0)
    points, lengths, features = ragged(channels=2)
    if kind == "segmenter":
        model = PointNet2Segmenter(5, 2, in_channels=2, npoints=NPOINTS, width=W)
        run = lambda: model(points, torch.tensor([0, 1, 1]), lengths, features)  # noqa: E731
    else:
        model = PointNet2Classifier(4, in_channels=2, msg=kind == "msg", npoints=NPOINTS, width=W)
        run = lambda: model(points, lengths, features)  # noqa: E731
    for mode in ("train", "eval"):
        getattr(model, mode)()
        model.zero_grad()
        run().square().sum().backward()
        for name, p in model.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
            # In training mode batch norm cancels the bias before it, so only eval mode sees every gradient.
            if mode == "eval":
                assert p.grad.abs().max() > 0, name


def test_bad_input_names_the_argument():
    points, lengths, features = ragged(channels=3)
    classifier = PointNet2Classifier(4, in_channels=3, npoints=NPOINTS, width=W)
    with pytest.raises(ValueError, match=r"points must be \(B, N, 3\)"):
        classifier(torch.randn(2, 10, 6))
    with pytest.raises(ValueError, match="lengths"):
        classifier(points, torch.tensor([61, 3, 3]), features)
    with pytest.raises(ValueError, match=r"features must be a \(B, N, 3\)"):
        classifier(points, lengths)
    with pytest.raises(ValueError, match=r"features must have shape \(B, N, 3\)"):
        classifier(points, lengths, features[..., :2])
    with pytest.raises(ValueError, match="features must be finite"):
        classifier(points, lengths, torch.full_like(features, float("nan")))
    with pytest.raises(ValueError, match="features must be None"):
        PointNet2Classifier(4, npoints=NPOINTS, width=W)(points, lengths, features)
    segmenter = PointNet2Segmenter(5, 2, npoints=NPOINTS, width=W)
    with pytest.raises(TypeError, match="category must be a torch.Tensor"):
        segmenter(points, lengths=lengths)
    with pytest.raises(ValueError, match=r"category labels must lie in \[0, 2\)"):
        segmenter(points, torch.tensor([0, -1, 1]), lengths)
    with pytest.raises(ValueError, match="category must have one label per cloud"):
        segmenter(points, torch.tensor([0, 1, 1, 0]), lengths)
    with pytest.raises(TypeError, match="category must be an integer tensor"):
        segmenter(points, torch.ones(3), lengths)
    fp = FeaturePropagation([4], known_channels=3)
    with pytest.raises(ValueError, match="known must have the batch size of unknown"):
        fp(torch.rand(2, 5, 3), torch.rand(3, 4, 3), torch.rand(3, 4, 3))
    with pytest.raises(ValueError, match="known_features must have shape"):
        fp(torch.rand(2, 5, 3), torch.rand(2, 4, 3), torch.rand(2, 4, 2))
    with pytest.raises(ValueError, match="unknown_features must be None"):
        fp(torch.rand(2, 5, 3), torch.rand(2, 4, 3), torch.rand(2, 4, 3), torch.rand(2, 5, 1))


def test_bad_hyper_parameters_name_the_argument():
    with pytest.raises(ValueError, match="npoint must be a positive int"):
        SetAbstraction(0, 0.2, 8, [4])
    with pytest.raises(ValueError, match="radius must be a positive finite number"):
        SetAbstraction(8, -0.2, 8, [4])
    with pytest.raises(ValueError, match="mlp must be a non-empty sequence"):
        SetAbstraction(8, 0.2, 8, [])
    with pytest.raises(ValueError, match="must be None with group_all=True"):
        SetAbstraction(8, 0.2, 8, [4], group_all=True)
    with pytest.raises(ValueError, match="one entry per scale"):
        SetAbstractionMSG(8, [0.1, 0.2], [4], [[4], [4]])
    with pytest.raises(ValueError, match=r"radii\[1\]"):
        SetAbstractionMSG(8, [0.1, 0.0], [4, 4], [[4], [4]])
    with pytest.raises(ValueError, match="npoints must be a sequence of 2"):
        PointNet2Classifier(4, npoints=(32,))
    with pytest.raises(ValueError, match=r"npoints\[1\]"):
        PointNet2Classifier(4, npoints=(32, 0))
    with pytest.raises(ValueError, match="dropout"):
        PointNet2Segmenter(4, dropout=-0.1)
    with pytest.raises(ValueError, match="num_categories"):
        PointNet2Segmenter(4, num_categories=-2)
