import math

import pytest
import torch
import torch.nn.functional as F

from geo4g.voxels.classifiers import ShapeNets3D, VoxNet, as_voxel_input

KINDS = ("sphere", "box", "cylinder", "torus")


def shape_grid(kind: str, resolution: int = 32, center=(0.0, 0.0, 0.0), scale: float = 1.0) -> torch.Tensor:
    """``(R, R, R)`` bool: a solid primitive voxelised analytically (voxel centres inside it) in the
    grid over ``[-0.5, 0.5]^3`` (voxel ``i`` has centre ``(i + 0.5) / R - 0.5``)."""
    c = (torch.arange(resolution, dtype=torch.float64) + 0.5) / resolution - 0.5
    x, y, z = torch.meshgrid(c - center[0], c - center[1], c - center[2], indexing="ij")
    x, y, z = x / scale, y / scale, z / scale
    if kind == "sphere":
        return x ** 2 + y ** 2 + z ** 2 < 0.35 ** 2
    if kind == "box":
        return (x.abs() < 0.3) & (y.abs() < 0.15) & (z.abs() < 0.25)
    if kind == "cylinder":
        return (x ** 2 + z ** 2 < 0.2 ** 2) & (y.abs() < 0.4)
    if kind == "torus":
        return ((x ** 2 + z ** 2).sqrt() - 0.27) ** 2 + y ** 2 < 0.1 ** 2
    raise ValueError(kind)


def labelled_shapes(resolution: int = 32, per_class: int = 2, seed: int = 0):
    """``(grids (4 per_class, R, R, R) bool, labels)``: the four primitives, each shifted and scaled at random."""
    g = torch.Generator().manual_seed(seed)
    grids, labels = [], []
    for label, kind in enumerate(KINDS):
        for _ in range(per_class):
            center = ((torch.rand(3, generator=g) - 0.5) * 0.1).tolist()
            scale = 0.8 + 0.3 * float(torch.rand(1, generator=g))
            grids.append(shape_grid(kind, resolution, center, scale))
            labels.append(label)
    return torch.stack(grids), torch.tensor(labels)


def fit_classifier(model, grids, labels, steps: int, lr: float = 1e-3) -> float:
    """Training accuracy (eval mode) after ``steps`` Adam steps on one batch."""
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        loss = F.cross_entropy(model(grids), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        return float((model(grids).argmax(1) == labels).float().mean())


def test_shape_grids_are_distinct_and_inside_the_grid():
    grids, labels = labelled_shapes()
    assert grids.shape == (8, 32, 32, 32) and grids.dtype == torch.bool
    counts = grids.flatten(1).sum(1)
    assert bool((counts > 100).all())
    assert not bool(grids[:, [0, -1]].any()) and not bool(grids[:, :, [0, -1]].any())
    assert torch.equal(labels, torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]))
    sphere = shape_grid("sphere")
    assert abs(int(sphere.sum()) - 4 / 3 * math.pi * (0.35 * 32) ** 3) < 0.03 * int(sphere.sum())


# Input handling


def test_as_voxel_input_accepts_4d_5d_bool_int_float():
    grid = torch.rand(2, 8, 8, 8) > 0.5
    x = as_voxel_input(grid, "grid", 8)
    assert x.shape == (2, 1, 8, 8, 8) and x.dtype == torch.float32
    assert torch.equal(x[:, 0], grid.float())
    torch.testing.assert_close(as_voxel_input(grid.long()[:, None], "grid", 8), x)
    assert as_voxel_input(grid.double(), "grid", 8).dtype == torch.float64
    assert as_voxel_input(grid, "grid", 8, dtype=torch.float64).dtype == torch.float64
    assert as_voxel_input(torch.zeros(2, 3, 8, 8, 8), "grid", 8, in_channels=3).shape == (2, 3, 8, 8, 8)


def test_as_voxel_input_errors_name_argument_and_shapes():
    with pytest.raises(TypeError, match=r"grid must be a torch.Tensor"):
        as_voxel_input([[0.0]], "grid", 8)
    with pytest.raises(ValueError, match=r"grid must have 4 or 5 dimensions .*got shape \(8, 8\)"):
        as_voxel_input(torch.zeros(8, 8), "grid", 8)
    with pytest.raises(ValueError, match=r"resolution=8, got shape \(2, 16, 16, 16\)"):
        as_voxel_input(torch.zeros(2, 16, 16, 16), "grid", 8)
    with pytest.raises(ValueError, match=r"in_channels=2, got shape \(2, 8, 8, 8\)"):
        as_voxel_input(torch.zeros(2, 8, 8, 8), "grid", 8, in_channels=2)
    with pytest.raises(ValueError, match=r"in_channels=1, resolution=8, got shape \(2, 3, 8, 8, 8\)"):
        as_voxel_input(torch.zeros(2, 3, 8, 8, 8), "grid", 8)
    bad = torch.zeros(1, 8, 8, 8)
    bad[0, 1, 2, 3] = float("nan")
    with pytest.raises(ValueError, match=r"grid must be finite.*\(0, 1, 2, 3\)"):
        as_voxel_input(bad, "grid", 8)
    with pytest.raises(TypeError, match="complex"):
        as_voxel_input(torch.zeros(1, 8, 8, 8, dtype=torch.complex64), "grid", 8)


# Models


@pytest.mark.parametrize("resolution", [32, 64])
@pytest.mark.parametrize("cls", [VoxNet, ShapeNets3D])
def test_classifier_output_shapes_4d_and_5d_inputs(cls, resolution):
    torch.manual_seed(0)
    model = cls(5, resolution=resolution, width=0.125).eval()
    grid = torch.rand(2, resolution, resolution, resolution) > 0.7
    logits = model(grid)
    assert logits.shape == (2, 5) and torch.isfinite(logits).all()
    torch.testing.assert_close(model(grid[:, None].float()), logits)
    assert model(grid[:1]).shape == (1, 5)
    assert model(grid[:0]).shape == (0, 5)


def test_voxnet_has_the_papers_layer_sizes():
    model = VoxNet(10)
    convs = [m.conv for m in model.features if hasattr(m, "conv")]
    assert [(c.out_channels, c.kernel_size, c.stride) for c in convs] == [(32, (5, 5, 5), (2, 2, 2)),
                                                                          (32, (3, 3, 3), (1, 1, 1))]
    assert model.classifier[0].in_features == 32 * 6 ** 3 and model.classifier[0].out_features == 128
    assert [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)] == [0.2, 0.3, 0.4]
    assert [m.negative_slope for m in model.modules() if isinstance(m, torch.nn.LeakyReLU)] == [0.1] * 3
    # about 0.92M parameters, as the paper reports for 32^3 input
    assert abs(sum(p.numel() for p in model.parameters()) - 921_000) < 10_000
    assert "num_classes=10, in_channels=1, resolution=32, width=1.0, dropout=(0.2, 0.3, 0.4)" in repr(model)


def test_shapenets3d_has_the_papers_filters():
    model = ShapeNets3D(40)
    convs = [block.conv for block in model.features[:3]]
    assert [(c.out_channels, c.kernel_size[0], c.stride[0]) for c in convs] == [(48, 6, 2), (160, 5, 2), (512, 4, 1)]
    x = torch.zeros(2, 1, 32, 32, 32)
    for block in model.features[:3]:
        x = block(x)
    assert x.shape == (2, 512, 2, 2, 2)
    assert model.classifier.channels == [4096, 1200, 40]


@pytest.mark.parametrize("cls,width,steps", [(VoxNet, 0.25, 40), (ShapeNets3D, 0.125, 40)])
def test_classifier_overfits_four_primitive_classes(cls, width, steps):
    grids, labels = labelled_shapes(per_class=2)
    torch.manual_seed(0)
    model = cls(4, width=width, dropout=0.0)
    assert fit_classifier(model, grids, labels, steps) == 1.0


def test_voxnet_with_batch_norm_and_multi_channel_input():
    torch.manual_seed(0)
    model = VoxNet(3, in_channels=2, resolution=16, width=0.25, norm="batch")
    grid = torch.rand(4, 2, 16, 16, 16)
    assert model(grid).shape == (4, 3)
    assert model(grid[:1]).shape == (1, 3)  # batch norm over voxels: a batch of one trains too
    with pytest.raises(ValueError, match=r"grid must be \(B, 2, 16, 16, 16\)"):
        model(grid[:, 0])


@pytest.mark.parametrize("cls", [VoxNet, ShapeNets3D])
def test_eval_mode_is_deterministic_and_train_mode_drops_out(cls):
    torch.manual_seed(0)
    model = cls(3, width=0.125, dropout=0.3 if cls is ShapeNets3D else (0.3, 0.3, 0.3))
    grid = labelled_shapes(per_class=1)[0][:3]
    model.eval()
    torch.testing.assert_close(model(grid), model(grid))
    torch.testing.assert_close(model(grid[1:2]), model(grid)[1:2], rtol=1e-4, atol=1e-5)
    model.train()
    assert not torch.allclose(model(grid), model(grid))


def test_reset_parameters_reinitialises():
    torch.manual_seed(0)
    model = VoxNet(3, width=0.25)
    before = [p.detach().clone() for p in model.parameters()]
    model.reset_parameters()
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()) if a.dim() > 1)


@pytest.mark.parametrize("kwargs,match", [
    (dict(num_classes=0), "num_classes must be a positive int"),
    (dict(num_classes=3, resolution=8), "resolution must be an int >= 11"),
    (dict(num_classes=3, width=0), "width must be a positive number"),
    (dict(num_classes=3, dropout=1.0), r"dropout must lie in \[0, 1\)"),
    (dict(num_classes=3, dropout=(0.1, 0.2)), "three of them"),
    (dict(num_classes=3, norm="bogus"), "norm must be one of"),
])
def test_voxnet_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        VoxNet(**kwargs)


def test_shapenets3d_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match="resolution must be an int >= 26"):
        ShapeNets3D(3, resolution=24)
    model = ShapeNets3D(3, width=0.125)
    expected = r"grid must be \(B, 32, 32, 32\) or \(B, 1, 32, 32, 32\).*got shape \(2, 30, 30, 30\)"
    with pytest.raises(ValueError, match=expected):
        model(torch.zeros(2, 30, 30, 30))


def test_float64_model_and_gradients_reach_the_input():
    torch.manual_seed(0)
    model = VoxNet(2, resolution=12, width=0.125, dropout=0.0).double().eval()
    grid = torch.rand(1, 12, 12, 12, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda g: model(g), (grid,), eps=1e-6, atol=1e-5)
    assert model(grid > 0.5).dtype == torch.float64
