import pytest
import torch
import torch.nn.functional as F
from torch import nn

from geo4g.nn import MLP, ConvBlock, ResidualBlock, SharedMLP, activation_layer, norm_layer


@pytest.mark.parametrize("norm", [None, "batch", "layer"])
@pytest.mark.parametrize("lead", [(5,), (2, 7), (2, 3, 4)])
def test_mlp_maps_last_dimension(norm, lead):
    mlp = MLP([3, 16, 8], norm=norm, dropout=0.2)
    assert mlp(torch.randn(*lead, 3)).shape == (*lead, 8)


def test_mlp_without_norm_matches_matmul_chain():
    mlp = MLP([3, 16, 16, 4], activation="tanh")
    x = torch.randn(2, 9, 3)
    lin = [m for m in mlp.modules() if isinstance(m, nn.Linear)]
    ref = torch.tanh(x @ lin[0].weight.T + lin[0].bias)
    ref = torch.tanh(ref @ lin[1].weight.T + lin[1].bias)
    ref = ref @ lin[2].weight.T + lin[2].bias
    torch.testing.assert_close(mlp(x), ref)


def test_mlp_batch_norm_uses_every_leading_position():
    mlp = MLP([3, 5], norm="batch", activation=None, last_activation=True).train()
    x = torch.randn(4, 6, 3) * 3 + 1
    lin = mlp.layers[0]
    h = x @ lin.weight.T + lin.bias
    mean = h.mean(dim=(0, 1))
    var = h.var(dim=(0, 1), unbiased=False)
    torch.testing.assert_close(mlp(x), (h - mean) / torch.sqrt(var + 1e-5), atol=1e-5, rtol=1e-5)


def test_mlp_last_activation_controls_final_layers():
    assert isinstance(MLP([3, 4], norm="layer", last_activation=True).layers[-1], nn.ReLU)
    plain = MLP([3, 4], norm="layer").layers
    assert len(plain) == 1 and isinstance(plain[0], nn.Linear)


@pytest.mark.parametrize("dim,shape", [(1, (2, 3, 10)), (2, (2, 3, 10, 4))])
@pytest.mark.parametrize("norm", ["batch", "instance", "group", "layer", None])
def test_shared_mlp_shapes(dim, shape, norm, device):
    out = SharedMLP([3, 32, 48], dim=dim, norm=norm).to(device)(torch.randn(*shape, device=device))
    assert out.shape == (shape[0], 48, *shape[2:])


@pytest.mark.parametrize("dim", [1, 2])
def test_shared_mlp_matches_per_point_einsum(dim):
    mlp = SharedMLP([3, 8, 5], dim=dim, norm=None, activation="relu", last_activation=False)
    x = torch.randn(2, 3, 7, 4) if dim == 2 else torch.randn(2, 3, 7)
    w = [blk.conv.weight.reshape(blk.conv.out_channels, -1) for blk in mlp.layers]
    b = [blk.conv.bias for blk in mlp.layers]
    expand = (slice(None),) + (None,) * dim
    h = torch.relu(torch.einsum("oc,bc...->bo...", w[0], x) + b[0][expand])
    ref = torch.einsum("oc,bc...->bo...", w[1], h) + b[1][expand]
    torch.testing.assert_close(mlp(x), ref)


@pytest.mark.parametrize(
    "dim,shape,stride,expected",
    [
        (1, (2, 4, 17), 1, (2, 6, 17)),
        (1, (2, 4, 17), 2, (2, 6, 9)),
        (2, (2, 4, 9, 8), 2, (2, 6, 5, 4)),
        (3, (2, 4, 5, 6, 7), 1, (2, 6, 5, 6, 7)),
        (3, (2, 4, 5, 6, 7), 2, (2, 6, 3, 3, 4)),
    ],
)
def test_conv_block_shapes(dim, shape, stride, expected, device):
    block = ConvBlock(4, 6, 3, dim=dim, stride=stride, norm="group").to(device)
    assert block(torch.randn(*shape, device=device)).shape == expected


def test_conv_block_matches_functional_reference():
    block = ConvBlock(3, 5, (3, 1), dim=2, norm=None, activation="leaky_relu")
    x = torch.randn(2, 3, 8, 6)
    ref = F.leaky_relu(F.conv2d(x, block.conv.weight, block.conv.bias, padding=(1, 0)), 0.2)
    torch.testing.assert_close(block(x), ref)


@pytest.mark.parametrize("dim", [1, 2, 3])
@pytest.mark.parametrize("out_channels,stride", [(None, 1), (6, 1), (6, 2)])
def test_residual_block_shapes(dim, out_channels, stride, device):
    block = ResidualBlock(4, out_channels, dim=dim, stride=stride).to(device)
    x = torch.randn(2, 4, *([7] * dim), device=device)
    c = out_channels or 4
    assert block(x).shape == (2, c, *([(7 + stride - 1) // stride] * dim))
    assert isinstance(block.shortcut, nn.Identity) == (c == 4 and stride == 1)


def test_residual_block_identity_matches_reference():
    block = ResidualBlock(4, dim=1, norm=None)
    x = torch.randn(3, 4, 10)
    c1, c2 = block.conv1.conv, block.conv2.conv
    h = torch.relu(F.conv1d(x, c1.weight, c1.bias, padding=1))
    torch.testing.assert_close(block(x), torch.relu(F.conv1d(h, c2.weight, c2.bias, padding=1) + x))


@pytest.mark.parametrize(
    "make,shape",
    [
        (lambda: MLP([3, 4, 2], norm="layer", activation="tanh", last_activation=True), (4, 3)),
        (lambda: SharedMLP([3, 4, 2], dim=2, norm="batch", activation="silu").eval(), (2, 3, 3, 2)),
        (lambda: ConvBlock(2, 3, 3, dim=1, norm="group", activation="gelu"), (2, 2, 5)),
        (lambda: ConvBlock(2, 3, 3, dim=3, norm="instance", activation="softplus"), (1, 2, 3, 3, 3)),
        (lambda: ResidualBlock(2, 3, dim=2, stride=2, norm="layer", activation="tanh"), (2, 2, 4, 4)),
    ],
)
def test_layers_gradcheck_float64(make, shape):
    torch.manual_seed(0)
    layer = make().double()
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(layer, (x,))


def test_reset_parameters_reinitialises_weights_and_running_stats():
    torch.manual_seed(0)
    block = ResidualBlock(3, 5, dim=1)
    initial = {k: v.clone() for k, v in block.state_dict().items()}
    with torch.no_grad():
        for p in block.parameters():
            p.add_(1.0)
    block.train()(torch.randn(4, 3, 6))
    torch.manual_seed(0)
    block.reset_parameters()
    for k, v in block.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            torch.testing.assert_close(v, initial[k], msg=k)


@pytest.mark.parametrize("layer", [MLP([3, 4]), SharedMLP([3, 4]), ConvBlock(3, 4, dim=1)])
def test_reset_parameters_changes_random_weights(layer):
    before = [p.clone() for p in layer.parameters()]
    layer.reset_parameters()
    assert any(not torch.equal(a, b) for a, b in zip(before, layer.parameters()))


def test_repr_shows_hyper_parameters():
    assert "channels=[3, 64, 128], norm='batch'" in repr(MLP([3, 64, 128], norm="batch"))
    assert "channels=[3, 64], dim=2" in repr(SharedMLP([3, 64], dim=2))
    assert "projection=True" in repr(ResidualBlock(3, 8))


@pytest.mark.parametrize(
    "make,arg",
    [
        (lambda: MLP([3]), "channels"),
        (lambda: MLP([3, 0]), "channels"),
        (lambda: MLP("34"), "channels"),
        (lambda: MLP([3, 4], norm="instance"), "norm"),
        (lambda: MLP([3, 4], activation="relu6"), "activation"),
        (lambda: MLP([3, 4], dropout=1.0), "dropout"),
        (lambda: SharedMLP([3, 4], dim=4), "dim"),
        (lambda: SharedMLP([3, 4], norm="batchnorm"), "norm"),
        (lambda: ConvBlock(3, 4, 0), "kernel_size"),
        (lambda: ConvBlock(3, 4, (3, 3), dim=1), "kernel_size"),
        (lambda: ConvBlock(3, 4, stride=0), "stride"),
        (lambda: ConvBlock(0, 4), "in_channels"),
        (lambda: ResidualBlock(3, 4, kernel_size=4), "kernel_size"),
        (lambda: activation_layer("swish"), "activation"),
        (lambda: norm_layer("weight", 4, 1), "norm"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(make, arg):
    with pytest.raises(ValueError, match=arg):
        make()


def test_unknown_name_error_lists_valid_names():
    with pytest.raises(ValueError, match="'relu', 'leaky_relu'.*got 'relu6'"):
        MLP([3, 4], activation="relu6")
    with pytest.raises(ValueError, match="'batch', 'instance', 'group', 'layer', None"):
        ConvBlock(3, 4, norm="bn")


@pytest.mark.parametrize(
    "layer,x,match",
    [
        (MLP([3, 4]), torch.randn(5, 4), "last dimension 3"),
        (SharedMLP([3, 4]), torch.randn(2, 3, 5, 1), "3 dimensions"),
        (SharedMLP([3, 4], dim=2), torch.randn(2, 4, 5, 1), "3 channels"),
        (ConvBlock(3, 4, dim=3), torch.randn(2, 3, 5, 5), "5 dimensions"),
        (ResidualBlock(3, dim=1), torch.randn(2, 2, 5), "3 channels"),
    ],
)
def test_bad_input_shape_raises_naming_x(layer, x, match):
    with pytest.raises(ValueError, match=f"x must have {match}"):
        layer(x)


def test_integer_input_raises_type_error():
    with pytest.raises(TypeError, match="x must be a floating point tensor"):
        MLP([3, 4])(torch.ones(2, 3, dtype=torch.long))
