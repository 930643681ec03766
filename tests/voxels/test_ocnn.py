"""O-CNN: octree convolution against dense conv3d (full and sparse levels), pooling against a naive
max over children, gradients, the classifier (overfitting, batch independence, readouts), bad input."""
import pytest
import torch
import torch.nn.functional as F

from geo4g.voxels.ocnn import OCNNClassifier, OctreeConv, OctreePool, octree_conv
from geo4g.voxels.octree import MIXED, Octree


def _sparse_octree(seed: int, R: int = 8, B: int = 2) -> Octree:
    g = torch.Generator().manual_seed(seed)
    grid = torch.rand(B, R, R, R, generator=g) < 0.15
    grid[-1] = False
    grid[-1, 1, 2, 3] = True
    return Octree.from_dense(grid, collapse_full=False)


def _scatter(octree: Octree, level: int, features: torch.Tensor) -> torch.Tensor:
    """``(B, C, r, r, r)``: the level's features in the dense grid, zeros elsewhere."""
    r = 1 << level
    dense = features.new_zeros(octree.batch_size, features.shape[1], r, r, r)
    b, xyz = octree.batch_index(level), octree.xyz(level)
    dense[b, :, xyz[:, 0], xyz[:, 1], xyz[:, 2]] = features
    return dense


def _gather(octree: Octree, level: int, dense: torch.Tensor) -> torch.Tensor:
    b, xyz = octree.batch_index(level), octree.xyz(level)
    return dense[b, :, xyz[:, 0], xyz[:, 1], xyz[:, 2]]


@pytest.mark.parametrize("kernel_size", [1, 3, 5])
def test_octree_conv_on_a_full_octree_equals_dense_conv3d(kernel_size, device):
    octree = Octree.from_dense(torch.ones(2, 8, 8, 8, dtype=torch.bool, device=device), collapse_full=False)
    conv = OctreeConv(3, 4, kernel_size).double().to(device)
    g = torch.Generator().manual_seed(0)
    dense = torch.randn(2, 3, 8, 8, 8, generator=g, dtype=torch.float64).to(device)
    got = conv(_gather(octree, 3, dense), octree, 3)
    want = F.conv3d(dense, conv.weight, conv.bias, padding=kernel_size // 2)
    assert torch.allclose(got, _gather(octree, 3, want), atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_octree_conv_on_a_sparse_octree_equals_masked_dense_conv3d(seed, device):
    octree = _sparse_octree(seed).to(device)
    conv = OctreeConv(2, 5, bias=False).double().to(device)
    for level in range(octree.depth + 1):
        g = torch.Generator().manual_seed(level)
        features = torch.randn(octree.num_cells(level), 2, generator=g, dtype=torch.float64).to(device)
        want = _gather(octree, level, F.conv3d(_scatter(octree, level, features), conv.weight, padding=1))
        assert torch.allclose(conv(features, octree, level), want, atol=1e-12), level
        neighbors = octree.neighbors(level)
        assert torch.allclose(conv(features, neighbors), want, atol=1e-12)


def test_octree_conv_gradcheck_and_empty_input():
    octree = _sparse_octree(2, R=4)
    weight = torch.randn(2, 2, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(2, dtype=torch.float64, requires_grad=True)
    features = torch.randn(octree.num_cells(2), 2, dtype=torch.float64, requires_grad=True)
    neighbors = octree.neighbors(2)
    assert torch.autograd.gradcheck(lambda f, w, b: octree_conv(f, neighbors, w, b), (features, weight, bias))
    out = octree_conv(torch.zeros(0, 2), torch.zeros(0, 27, dtype=torch.long), weight.float().detach())
    assert out.shape == (0, 2)


def test_octree_conv_bad_input_names_the_argument():
    octree = _sparse_octree(3)
    conv = OctreeConv(2, 3)
    with pytest.raises(ValueError, match="features must have one row per cell"):
        conv(torch.zeros(5, 2), octree, 3)
    with pytest.raises(ValueError, match="features must have 2 channels"):
        conv(torch.zeros(octree.num_cells(3), 4), octree, 3)
    with pytest.raises(ValueError, match="level must be given with an Octree"):
        conv(torch.zeros(octree.num_cells(3), 2), octree)
    with pytest.raises(TypeError, match="octree must be an Octree or a"):
        conv(torch.zeros(3, 2), [1, 2])
    with pytest.raises(ValueError, match=r"neighbors must be \(N=3, k\*\*3=27\)"):
        octree_conv(torch.zeros(3, 2), torch.zeros(3, 8, dtype=torch.long), conv.weight)
    with pytest.raises(ValueError, match="kernel_size must be a positive odd int"):
        OctreeConv(2, 3, kernel_size=2)
    assert "kernel_size=3" in repr(conv)


def test_octree_pool_takes_the_max_over_children_and_zeros_at_leaves(device):
    octree = _sparse_octree(4).to(device)
    pool = OctreePool()
    for level in range(1, octree.depth + 1):
        features = torch.randn(octree.num_cells(level), 3, device=device, requires_grad=True)
        got = pool(features, octree, level)
        states, children = octree.states(level - 1), octree.children(level - 1)
        for i in range(octree.num_cells(level - 1)):
            if int(states[i]) == MIXED:
                assert torch.equal(got[i], features[children[i]].max(0).values)
            else:
                assert bool((got[i] == 0).all())
        got.sum().backward()
        assert int((features.grad != 0).sum()) == 3 * int((states == MIXED).sum())
    full = Octree.from_dense(torch.ones(1, 4, 4, 4, dtype=torch.bool), collapse_full=False)
    dense = torch.randn(1, 2, 4, 4, 4)
    got = pool(_gather(full, 2, dense), full, 2)
    assert torch.equal(got, _gather(full, 1, F.max_pool3d(dense, 2)))
    with pytest.raises(ValueError, match=r"level must be an int in \[1, depth=3\]"):
        pool(torch.zeros(2, 3), octree, 0)


def _classification_batch(seed: int = 0):
    """Two classes of surface points: spheres and boxes of random sizes, with normals as features."""
    g = torch.Generator().manual_seed(seed)
    clouds, normals, labels = [], [], []
    for i in range(6):
        n = torch.randn(400, 3, generator=g)
        if i % 2 == 0:
            normal = n / n.norm(dim=1, keepdim=True)
            points = normal * (0.25 + 0.15 * torch.rand(1, generator=g))
        else:
            axis = n.abs().argmax(1)
            normal = F.one_hot(axis, 3).float() * n.sign()
            points = (torch.rand(400, 3, generator=g) - 0.5) * 0.6
            points = torch.where(normal != 0, normal * 0.3, points) * (0.7 + 0.5 * torch.rand(1, generator=g))
        clouds.append(points)
        normals.append(normal)
        labels.append(i % 2)
    return torch.stack(clouds), torch.stack(normals), torch.tensor(labels)


def test_ocnn_classifier_overfits_a_tiny_batch_and_all_parameters_get_gradients():
    points, normals, labels = _classification_batch()
    octree = Octree.from_points(points, 4, bounds=[[-0.5] * 3, [0.5] * 3], features=normals)
    torch.manual_seed(0)
    model = OCNNClassifier(2, 4, in_channels=3, channels=[8, 16], hidden=32, dropout=0.0)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    for step in range(60):
        out = model(octree)
        loss = F.cross_entropy(out.logits, labels)
        opt.zero_grad()
        loss.backward()
        if step == 0:
            assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in model.parameters())
        opt.step()
    assert loss.item() < 0.05
    model.eval()
    assert torch.equal(model(octree).logits.argmax(1), labels)


@pytest.mark.parametrize("readout", ["grid", "max", "mean"])
def test_ocnn_classifier_items_do_not_depend_on_the_rest_of_the_batch(readout):
    points, normals, _ = _classification_batch(1)
    lengths = torch.tensor([400, 250, 0, 400, 3, 400])
    bounds = [[-0.5] * 3, [0.5] * 3]
    octree = Octree.from_points(points, 4, lengths, bounds=bounds, features=normals)
    model = OCNNClassifier(3, 4, channels=[4, 8], hidden=16, readout=readout).double().eval()
    together = model(octree, octree.features(4).double())
    assert together.logits.shape == (6, 3)
    assert together.feature.shape == (6, 64 * 8 if readout == "grid" else 8)
    for b in range(6):
        alone = Octree.from_points(points[b:b + 1], 4, lengths[b:b + 1], bounds=bounds, features=normals[b:b + 1])
        out = model(alone, alone.features(4).double())
        assert torch.allclose(out.logits[0], together.logits[b], atol=1e-10), b


def test_ocnn_classifier_default_widths_and_bad_input():
    model = OCNNClassifier(10, 5)
    assert model.channels == [16, 32, 64]
    assert "readout='grid'" in repr(model)
    collapsed = Octree.from_dense(torch.ones(1, 32, 32, 32, dtype=torch.bool))
    with pytest.raises(ValueError, match="collapse_full=False"):
        model(collapsed, torch.zeros(collapsed.num_cells(5), 3))
    octree = Octree.from_dense(torch.ones(1, 32, 32, 32, dtype=torch.bool), collapse_full=False)
    with pytest.raises(ValueError, match="features must be given, or attached to level 5"):
        model(octree)
    with pytest.raises(ValueError, match=r"features must be \(N_D=32768, 3\)"):
        model(octree, torch.zeros(octree.num_cells(5), 2))
    with pytest.raises(ValueError, match="octree must have depth 5"):
        model(_sparse_octree(0), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="depth must be an int >= 3"):
        OCNNClassifier(2, 2)
    with pytest.raises(ValueError, match=r"channels must give one width per level 5..3 \(3 ints\)"):
        OCNNClassifier(2, 5, channels=[4, 4])
    with pytest.raises(ValueError, match="readout must be one of"):
        OCNNClassifier(2, 5, readout="sum")
