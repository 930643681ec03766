import pytest
import torch
import torch.nn.functional as F

from geo4g.points._models import as_padded, masked_max, pointwise
from geo4g.points.pointnet import (PointNetClassifier, PointNetEncoder, PointNetSegmenter, TNet,
                                   feature_transform_regularizer)
from geo4g.nn import SharedMLP
from geo4g.structures import Pointclouds

from ._shapes import four_primitives as primitives

W = 0.125  # 8-wide point features, 128-wide global feature


def ragged(seed: int = 0):
    """A padded batch of three clouds (40, 25 and 9 points) with garbage in the padding rows."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([40, 25, 9])
    points = torch.rand(3, 40, 3, generator=g) * 2 - 1
    points[1, 25:] = 100.0
    points[2, 9:] = -7.0
    return points, lengths


def perturb_transform_nets(model):
    """Make the T-Nets' identity-initialised output layers non-zero, so gradients reach their inner layers."""
    torch.manual_seed(1)
    for m in model.modules():
        if isinstance(m, TNet):
            torch.nn.init.normal_(m.out.weight, std=1e-2)


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


# Shared input handling


def test_as_padded_accepts_tensor_and_pointclouds():
    points, lengths = ragged()
    p, n, mask = as_padded(points, lengths)
    assert torch.equal(n, lengths) and torch.equal(mask.sum(1), lengths)
    assert p[1, 25:].abs().max() == 0 and torch.equal(p[0], points[0])
    clouds = Pointclouds([points[i, :lengths[i]] for i in range(3)])
    p2, n2, mask2 = as_padded(clouds)
    assert torch.equal(p2, p) and torch.equal(n2, lengths) and torch.equal(mask2, mask)
    p3, n3, mask3 = as_padded(points)
    assert torch.equal(n3, torch.full((3,), 40)) and bool(mask3.all())


def test_as_padded_bad_input_names_the_argument():
    with pytest.raises(ValueError, match=r"points must be \(B, N, 3\)"):
        as_padded(torch.zeros(2, 5, 2))
    with pytest.raises(ValueError, match="points must have 3 dimensions"):
        as_padded(torch.zeros(5, 3))
    with pytest.raises(TypeError, match="points must be a torch.Tensor"):
        as_padded([[0.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match="lengths"):
        as_padded(torch.zeros(2, 5, 3), torch.tensor([5, 6]))
    with pytest.raises(ValueError, match="lengths must be None"):
        as_padded(Pointclouds([torch.zeros(4, 3)]), torch.tensor([4]))


def test_masked_max_ignores_padding_and_gives_zeros_for_an_empty_cloud():
    features = torch.tensor([[[1.0, 5.0, 9.0]], [[-3.0, -2.0, 9.0]], [[4.0, 4.0, 4.0]]])
    mask = torch.tensor([[True, True, False], [True, True, False], [False, False, False]])
    assert torch.equal(masked_max(features, mask), torch.tensor([[5.0], [-2.0], [0.0]]))
    assert torch.equal(masked_max(torch.zeros(2, 4, 0), torch.zeros(2, 0, dtype=torch.bool)), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="mask must be a bool tensor"):
        masked_max(features, mask.float())


def test_pointwise_keeps_padding_out_of_batch_norm_statistics():
    torch.manual_seed(0)
    mlp = SharedMLP([3, 6, 5]).train()
    x = torch.randn(2, 3, 7)
    mask = torch.tensor([[True] * 7, [True] * 4 + [False] * 3])
    out = pointwise(mlp, x, mask, 5)
    packed = torch.cat([x[0], x[1, :, :4]], 1)[None]
    torch.testing.assert_close(out[0], mlp(packed)[0, :, :7])
    torch.testing.assert_close(out[1, :, :4], mlp(packed)[0, :, 7:])
    assert out[1, :, 4:].abs().max() == 0
    assert pointwise(mlp, x, torch.zeros(2, 7, dtype=torch.bool), 5).abs().max() == 0


# Transform nets and the regulariser


def test_tnet_starts_at_identity():
    torch.manual_seed(0)
    for k in (3, 8):
        net = TNet(k, width=W).train()
        out = net(torch.randn(4, k, 20))
        torch.testing.assert_close(out, torch.eye(k).expand(4, k, k))
    net.eval()
    torch.testing.assert_close(net(torch.randn(2, 8, 5)), torch.eye(8).expand(2, 8, 8))


def test_tnet_rejects_wrong_channels_and_mask():
    net = TNet(3, width=W)
    with pytest.raises(ValueError, match=r"x must have 3 channels"):
        net(torch.randn(2, 4, 10))
    with pytest.raises(ValueError, match="mask must be a bool tensor"):
        net(torch.randn(2, 3, 10), torch.ones(2, 9, dtype=torch.bool))


def test_regularizer_is_zero_for_orthogonal_and_positive_otherwise():
    torch.manual_seed(0)
    q = torch.linalg.qr(torch.randn(5, 8, 8)).Q
    assert feature_transform_regularizer(q).item() == pytest.approx(0.0, abs=1e-5)
    assert feature_transform_regularizer(torch.eye(3).expand(2, 3, 3)).item() == 0.0
    a = 2 * torch.eye(3).expand(2, 3, 3)
    assert feature_transform_regularizer(a).item() == pytest.approx(27.0)  # ||I - 4I||_F^2 = 3 * 9
    assert feature_transform_regularizer(torch.randn(4, 8, 8)).item() > 0
    with pytest.raises(ValueError, match=r"transform must be a batch of square matrices"):
        feature_transform_regularizer(torch.randn(2, 3, 4))


# Models


@pytest.mark.parametrize("transforms", [(True, True), (False, False)])
def test_classifier_shapes_padded_and_pointclouds(transforms):
    model = PointNetClassifier(5, *transforms, width=W)
    points, lengths = ragged()
    out = model(points, lengths)
    assert out.logits.shape == (3, 5)
    assert (out.feature_transform is None) == (not transforms[1])
    if transforms[1]:
        assert out.feature_transform.shape == (3, 8, 8)
    clouds = Pointclouds([points[i, :lengths[i]] for i in range(3)])
    model.eval()
    torch.testing.assert_close(model(clouds).logits, model(points, lengths).logits)


def test_encoder_outputs():
    encoder = PointNetEncoder(width=W)
    points, lengths = ragged()
    enc = encoder(points, lengths)
    assert enc.global_feature.shape == (3, 128) and enc.point_features.shape == (3, 40, 8)
    assert enc.input_transform.shape == (3, 3, 3) and enc.feature_transform.shape == (3, 8, 8)
    assert enc.point_features[2, 9:].abs().max() == 0


def test_segmenter_shapes_padded_and_pointclouds():
    model = PointNetSegmenter(6, 3, width=W)
    points, lengths = ragged()
    category = torch.tensor([0, 2, 1])
    out = model(points, category, lengths)
    assert out.logits.shape == (3, 40, 6) and out.feature_transform.shape == (3, 8, 8)
    assert out.logits[1, 25:].abs().max() == 0
    clouds = Pointclouds([points[i, :lengths[i]] for i in range(3)])
    model.eval()
    torch.testing.assert_close(model(clouds, category).logits, model(points, category, lengths).logits)
    plain = PointNetSegmenter(4, width=W)
    assert plain(points, lengths=lengths).logits.shape == (3, 40, 4)


def test_ragged_batch_matches_each_cloud_alone(device):
    torch.manual_seed(0)
    points, lengths = (t.to(device) for t in ragged())
    category = torch.tensor([1, 0, 1], device=device)
    classifier = PointNetClassifier(4, width=W)
    segmenter = PointNetSegmenter(5, 2, width=W)
    perturb_transform_nets(classifier)
    perturb_transform_nets(segmenter)
    classifier.to(device).eval()
    segmenter.to(device).eval()
    logits = classifier(points, lengths).logits
    parts = segmenter(points, category, lengths).logits
    for i, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(logits[i], classifier(points[i:i + 1, :n]).logits[0], atol=1e-5, rtol=1e-5)
        alone = segmenter(points[i:i + 1, :n], category[i:i + 1]).logits[0]
        torch.testing.assert_close(parts[i, :n], alone, atol=1e-5, rtol=1e-5)


def test_extra_padding_changes_nothing_in_training_mode():
    torch.manual_seed(0)
    points, lengths = ragged()
    longer = torch.cat([points, torch.randn(3, 10, 3)], 1)
    category = torch.tensor([1, 0, 1])
    for model, args in ((PointNetClassifier(4, dropout=0.0, width=W), ()),
                        (PointNetSegmenter(5, 2, width=W), (category,))):
        perturb_transform_nets(model)
        model.train()
        a = model(points, *args, lengths=lengths).logits
        b = model(longer, *args, lengths=lengths).logits
        torch.testing.assert_close(a, b[:, :a.shape[1]] if a.dim() == 3 else b, atol=1e-5, rtol=1e-5)


def test_global_feature_and_logits_are_permutation_invariant():
    torch.manual_seed(0)
    points, _ = primitives(1, 64)
    model = PointNetClassifier(4, width=W).eval()
    perturb_transform_nets(model)
    perm = torch.randperm(64)
    enc, enc_perm = model.encoder(points), model.encoder(points[:, perm])
    torch.testing.assert_close(enc.global_feature, enc_perm.global_feature, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(enc.point_features[:, perm], enc_perm.point_features, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model(points).logits, model(points[:, perm]).logits, atol=1e-5, rtol=1e-5)


def test_classifier_overfits_a_tiny_batch():
    torch.manual_seed(0)
    x, y = primitives(2, 128)
    model = PointNetClassifier(4, width=W)

    def loss_acc(out):
        loss = F.cross_entropy(out.logits, y) + 1e-3 * feature_transform_regularizer(out.feature_transform)
        return loss, (out.logits.argmax(1) == y).float().mean().item()

    loss, acc = overfit(model, (x,), loss_acc, 40)
    assert acc == 1.0 and loss < 0.3


def test_segmenter_overfits_a_tiny_batch():
    torch.manual_seed(0)
    x, y = primitives(2, 128)
    parts = 2 * y[:, None] + (x[..., 0] > 0).long()  # two parts per shape: the halves x <= 0 and x > 0
    model = PointNetSegmenter(8, 4, width=W)

    def loss_acc(out):
        loss = F.cross_entropy(out.logits.reshape(-1, 8), parts.reshape(-1))
        return loss, (out.logits.argmax(2) == parts).float().mean().item()

    loss, acc = overfit(model, (x, y), loss_acc, 80)
    assert acc > 0.97 and loss < 0.3


@pytest.mark.parametrize("kind", ["classifier", "segmenter"])
def test_gradients_reach_every_parameter(kind):
    torch.manual_seed(0)
    points, lengths = ragged()
    if kind == "classifier":
        model = PointNetClassifier(4, width=W)
        run = lambda: model(points, lengths)  # noqa: E731
    else:
        model = PointNetSegmenter(5, 2, width=W)
        run = lambda: model(points, torch.tensor([0, 1, 1]), lengths)  # noqa: E731
    perturb_transform_nets(model)
    for mode in ("train", "eval"):
        getattr(model, mode)()
        model.zero_grad()
        out = run()
        (out.logits.square().sum() + feature_transform_regularizer(out.feature_transform)).backward()
        for name, p in model.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
            # In training mode batch norm cancels the bias before it, so only eval mode sees every gradient.
            if mode == "eval":
                assert p.grad.abs().max() > 0, name


def test_reset_parameters_restores_identity_transforms():
    model = PointNetClassifier(3, width=W)
    perturb_transform_nets(model)
    model.reset_parameters()
    for m in model.modules():
        if isinstance(m, TNet):
            assert m.out.weight.abs().max() == 0 and torch.equal(m.out.bias, torch.eye(m.k).flatten())


def test_bad_input_names_the_argument():
    points, lengths = ragged()
    classifier = PointNetClassifier(4, width=W)
    segmenter = PointNetSegmenter(5, 2, width=W)
    with pytest.raises(ValueError, match=r"points must be \(B, N, 3\)"):
        classifier(torch.randn(2, 10, 6))
    with pytest.raises(ValueError, match="points must have 3 dimensions"):
        classifier(torch.randn(10, 3))
    with pytest.raises(ValueError, match="lengths"):
        classifier(points, torch.tensor([40, 41, 3]))
    with pytest.raises(ValueError, match="points must be finite"):
        classifier(torch.full((2, 4, 3), float("nan")))
    with pytest.raises(TypeError, match="category must be a torch.Tensor"):
        segmenter(points, lengths=lengths)
    with pytest.raises(TypeError, match="category must be an integer tensor"):
        segmenter(points, torch.tensor([0.0, 1.0, 1.0]), lengths)
    with pytest.raises(ValueError, match="category must have one label per cloud"):
        segmenter(points, torch.tensor([0, 1]), lengths)
    with pytest.raises(ValueError, match=r"category labels must lie in \[0, 2\)"):
        segmenter(points, torch.tensor([0, 1, 2]), lengths)
    with pytest.raises(ValueError, match="category must have 1 dimensions"):
        segmenter(points, F.one_hot(torch.tensor([0, 1, 1]), 2), lengths)
    with pytest.raises(ValueError, match="category must be None"):
        PointNetSegmenter(5, width=W)(points, torch.tensor([0, 1, 1]), lengths)


def test_bad_hyper_parameters_name_the_argument():
    with pytest.raises(ValueError, match="num_classes"):
        PointNetClassifier(0)
    with pytest.raises(ValueError, match="dropout"):
        PointNetClassifier(3, dropout=1.0)
    with pytest.raises(ValueError, match="width"):
        PointNetClassifier(3, width=0)
    with pytest.raises(ValueError, match="num_parts"):
        PointNetSegmenter(0, 3)
    with pytest.raises(ValueError, match="num_categories"):
        PointNetSegmenter(4, -1)
    with pytest.raises(ValueError, match="k must be a positive int"):
        TNet(0)
