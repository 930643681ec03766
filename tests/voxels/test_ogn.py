"""OGN: the up-convolution against conv_transpose3d, known and predicted propagation against the
target octree, the loss (with class balancing), gradients, batch independence, overfitting one
shape, warm-starting a deeper network, the dense baseline and the encoder, bad input."""
import math

import pytest
import torch
import torch.nn.functional as F

from geo4g.losses import voxel_iou
from geo4g.voxels.octree import EMPTY, FILLED, MIXED, Octree, morton_decode
from geo4g.voxels.ogn import (DenseOccupancyDecoder, OccupancyEncoder, OctreeGeneratingNetwork, OctreeUpConv,
                              ogn_loss)


def _shapes(R: int = 16) -> torch.Tensor:
    """A torus and a box, centred in the ``R**3`` grid."""
    r = torch.arange(R, dtype=torch.float32) + 0.5 - R / 2
    x, y, z = torch.meshgrid(r, r, r, indexing="ij")
    s = R / 32
    torus = ((x ** 2 + y ** 2).sqrt() - 9 * s) ** 2 + z ** 2 < (4 * s) ** 2
    box = (x.abs() < 10 * s) & (y.abs() < 5 * s) & (z.abs() < 12 * s)
    return torch.stack([torus, box])


def _block_states(grid: torch.Tensor, level: int, batch: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """The state of each cell from the dense grid: all, some or none of its block occupied."""
    R = grid.shape[1]
    size = R >> level
    xyz = morton_decode(keys)
    out = []
    for b, (x, y, z) in zip(batch.tolist(), xyz.tolist()):
        block = grid[b, x * size:(x + 1) * size, y * size:(y + 1) * size, z * size:(z + 1) * size]
        out.append(FILLED if bool(block.all()) else MIXED if bool(block.any()) else EMPTY)
    return torch.tensor(out, dtype=torch.long)


def test_up_conv_equals_conv_transpose3d_on_a_full_grid():
    up = OctreeUpConv(3, 4).double()
    full = Octree.from_dense(torch.ones(2, 8, 8, 8, dtype=torch.bool), collapse_full=False)
    dense = torch.randn(2, 3, 4, 4, 4, dtype=torch.float64)
    b, xyz = full.batch_index(2), full.xyz(2)
    got = up(dense[b, :, xyz[:, 0], xyz[:, 1], xyz[:, 2]])
    want = F.conv_transpose3d(dense, up.weight, up.bias, stride=2)
    b, xyz = full.batch_index(3), full.xyz(3)
    assert torch.allclose(got, want[b, :, xyz[:, 0], xyz[:, 1], xyz[:, 2]], atol=1e-12)
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(up, (x,))
    assert up(torch.zeros(0, 3, dtype=torch.float64)).shape == (0, 4)


def test_known_propagation_follows_the_target_octree():
    grid = _shapes()
    target = Octree.from_dense(grid)
    model = OctreeGeneratingNetwork(8, 4, base_resolution=4, width=0.25)
    out = model(torch.randn(2, 8), target)
    assert out.levels == [2, 3, 4] and out.octree is None
    for i, level in enumerate(out.levels):
        assert torch.equal(out.targets[i], _block_states(grid, level, out.batch[i], out.keys[i])), level
        assert out.logits[i].shape == (out.keys[i].numel(), 2 if level == 4 else 3)
        if i > 0:
            assert torch.equal(out.keys[i], target.keys(level)) and torch.equal(out.batch[i], target.batch_index(level))
    assert out.keys[0].numel() == 2 * 64


def test_predicted_propagation_builds_the_predicted_octree_and_finds_targets():
    grid = _shapes()
    target = Octree.from_dense(grid)
    torch.manual_seed(1)
    model = OctreeGeneratingNetwork(8, 4, base_resolution=4, width=0.25)
    for head in model.heads[:-1]:
        torch.nn.init.zeros_(head.weight)
        head.bias.data = torch.tensor([0.0, 0.0, 1.0])  # every cell mixed: the full tree is built
    out = model(torch.randn(2, 8), target, propagation="predicted")
    assert [k.numel() for k in out.keys] == [128, 1024, 8192]
    for i, level in enumerate(out.levels):
        xyz = morton_decode(out.keys[i])
        want = grid[out.batch[i], xyz[:, 0], xyz[:, 1], xyz[:, 2]].long() if level == 4 else \
            _block_states(grid, level, out.batch[i], out.keys[i])
        assert torch.equal(out.targets[i], want), level
        assert torch.equal(out.octree.keys(level), out.keys[i])
        assert torch.equal(out.octree.states(level), out.logits[i].argmax(1))
    per_level = [F.cross_entropy(logits, target) for logits, target in zip(out.logits, out.targets)]
    assert torch.allclose(ogn_loss(out), sum(per_level))
    assert torch.allclose(ogn_loss(out, level_weights=[0.0, 2.0, 1.0]), 2 * per_level[1] + per_level[2])
    with pytest.raises(ValueError, match="level_weights must have one weight per output level"):
        ogn_loss(out, level_weights=[1.0])


def test_class_balance_weights_states_by_their_inverse_counts():
    grid = _shapes()
    torch.manual_seed(2)
    model = OctreeGeneratingNetwork(8, 4, base_resolution=4, width=0.25).double()
    out = model(torch.randn(2, 8, dtype=torch.float64), Octree.from_dense(grid))

    def reference(beta):
        total = 0.0
        for logits, target in zip(out.logits, out.targets):
            per_cell = F.cross_entropy(logits, target, reduction="none")
            counts = torch.bincount(target, minlength=logits.shape[1]).double()
            w = counts[target] ** -beta
            total = total + (w * per_cell).sum() / w.sum()
        return total

    assert torch.allclose(ogn_loss(out, class_balance=0.0), ogn_loss(out))
    for beta in (0.5, 1.0):
        assert torch.allclose(ogn_loss(out, class_balance=beta), reference(beta))
    balanced = 0.0
    for logits, target in zip(out.logits, out.targets):
        per_cell = F.cross_entropy(logits, target, reduction="none")
        balanced = balanced + torch.stack([per_cell[target == c].mean() for c in target.unique()]).mean()
    assert torch.allclose(ogn_loss(out, class_balance=1.0), balanced)
    for bad in (-0.1, 1.5, True, "balanced"):
        with pytest.raises(ValueError, match="class_balance must be a number in"):
            ogn_loss(out, class_balance=bad)


def test_predicted_propagation_without_mixed_cells_stops_early():
    model = OctreeGeneratingNetwork(8, 5, base_resolution=8, width=0.25)
    torch.nn.init.zeros_(model.heads[0].weight)
    model.heads[0].bias.data = torch.tensor([0.0, 1.0, 0.0])  # every base cell filled
    out = model(torch.randn(3, 8))
    assert [k.numel() for k in out.keys] == [3 * 512, 0, 0]
    assert torch.equal(model.generate(torch.randn(3, 8)), torch.ones(3, 32, 32, 32, dtype=torch.bool))


def test_loss_reaches_every_parameter():
    grid = _shapes()
    target = Octree.from_dense(grid)
    model = OctreeGeneratingNetwork(8, 4, base_resolution=4, width=0.5, convs_per_level=2)
    for propagation in ("known", "predicted"):
        model.zero_grad()
        for head in model.heads[:-1]:
            head.bias.data = torch.tensor([0.0, 0.0, 5.0]) if propagation == "predicted" else torch.zeros(3)
        loss = ogn_loss(model(torch.randn(2, 8), target, propagation=propagation))
        loss.backward()
        for name, p in model.named_parameters():
            assert p.grad is not None and bool(p.grad.abs().sum() > 0), (propagation, name)


def test_items_do_not_depend_on_the_rest_of_the_batch():
    grid = torch.cat([_shapes(), torch.zeros(1, 16, 16, 16, dtype=torch.bool)])
    target = Octree.from_dense(grid)
    model = OctreeGeneratingNetwork(8, 4, base_resolution=4, width=0.25).double()
    latent = torch.randn(3, 8, dtype=torch.float64)
    together = model(latent, target)
    for b in range(3):
        alone = model(latent[b:b + 1], Octree.from_dense(grid[b:b + 1]))
        for i in range(len(alone.logits)):
            assert torch.allclose(alone.logits[i], together.logits[i][together.batch[i] == b], atol=1e-10)
    predicted = model.generate(latent)
    for b in range(3):
        assert torch.equal(model.generate(latent[b:b + 1])[0], predicted[b])


def test_ogn_overfits_one_shape_at_32():
    grid = _shapes(32)[:1]
    target = Octree.from_dense(grid)
    torch.manual_seed(0)
    model = OctreeGeneratingNetwork(16, 5, base_resolution=4, width=1.0)
    latent = torch.randn(1, 16)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(300):
        loss = ogn_loss(model(latent, target))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(voxel_iou(model.generate(latent), grid)[0]) > 0.9


def test_from_coarser_shares_the_levels_and_starts_unsure_cells_mixed():
    torch.manual_seed(3)
    coarse = OctreeGeneratingNetwork(8, 4, base_resolution=4, width=0.5, convs_per_level=2).double()
    for head in coarse.heads[:-1]:
        torch.nn.init.zeros_(head.weight)
        head.bias.data = torch.tensor([0.0, 0.0, 5.0], dtype=torch.float64)  # every cell mixed
    coarse.heads[-1].weight.data.mul_(100)  # logits spread well beyond the margin
    fine = OctreeGeneratingNetwork.from_coarser(coarse, mixed_margin=0.5)
    assert (fine.depth, fine.channels, fine.convs_per_level) == (5, coarse.channels + [coarse.channels[-1]], 2)
    assert fine.heads[0].weight.dtype == torch.float64
    latent = torch.randn(3, 8, dtype=torch.float64)
    small, big = coarse(latent), fine(latent)
    assert big.levels == [2, 3, 4, 5]
    for i in range(2):
        assert torch.equal(big.keys[i], small.keys[i]) and torch.allclose(big.logits[i], small.logits[i])
    assert torch.equal(big.keys[2], small.keys[2])
    empty_filled = small.logits[2]
    assert torch.allclose(big.logits[2][:, :2], empty_filled)
    assert torch.allclose(big.logits[2][:, 2], empty_filled.mean(1) + 0.5)
    unsure = (empty_filled[:, 1] - empty_filled[:, 0]).abs() < 1.0
    assert torch.equal(big.logits[2].argmax(1) == MIXED, unsure)
    assert bool(unsure.any()) and not bool(unsure.all())
    assert big.keys[3].numel() == 8 * int(unsure.sum())
    wider = OctreeGeneratingNetwork.from_coarser(coarse, channels=6)
    assert wider.channels[-1] == 6 and wider.ups[-1].out_channels == 6
    with pytest.raises(TypeError, match="coarse must be an OctreeGeneratingNetwork"):
        OctreeGeneratingNetwork.from_coarser(DenseOccupancyDecoder(8, 16))
    with pytest.raises(ValueError, match="mixed_margin must be a finite number"):
        OctreeGeneratingNetwork.from_coarser(coarse, mixed_margin=float("nan"))
    with pytest.raises(ValueError, match="channels must be a positive int"):
        OctreeGeneratingNetwork.from_coarser(coarse, channels=0)


def test_from_coarser_fine_tunes_to_the_finer_grid():
    grid16 = _shapes(16)[:1]
    grid32 = _shapes(32)[:1]
    torch.manual_seed(0)
    coarse = OctreeGeneratingNetwork(16, 4, base_resolution=4, width=1.0)
    latent = torch.randn(1, 16)
    opt = torch.optim.Adam(coarse.parameters(), lr=3e-3)
    target = Octree.from_dense(grid16)
    for _ in range(150):
        loss = ogn_loss(coarse(latent, target), class_balance=1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(voxel_iou(coarse.generate(latent), grid16)[0]) > 0.9
    fine = OctreeGeneratingNetwork.from_coarser(coarse)
    up = grid16.repeat_interleave(2, 1).repeat_interleave(2, 2).repeat_interleave(2, 3)
    start = float(voxel_iou(fine.generate(latent), grid32)[0])
    assert start > 0.5 * float(voxel_iou(up, grid32)[0])
    target = Octree.from_dense(grid32)
    opt = torch.optim.Adam(fine.parameters(), lr=3e-3)
    for _ in range(100):
        loss = ogn_loss(fine(latent, target), class_balance=1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(voxel_iou(fine.generate(latent), grid32)[0]) > max(0.9, start)


def test_dense_decoder_and_encoder_overfit_an_auto_encoding():
    grid = _shapes(16)
    torch.manual_seed(0)
    encoder = OccupancyEncoder(16, resolution=16, width=0.5)
    decoder = DenseOccupancyDecoder(16, 16, width=0.5)
    assert decoder.channels == [16, 8, 4]
    opt = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=3e-3)
    for _ in range(150):
        loss = F.binary_cross_entropy_with_logits(decoder(encoder(grid)), grid.float())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(voxel_iou(decoder.generate(encoder(grid)), grid).min()) > 0.9
    logits = decoder(encoder(grid))
    assert torch.equal(decoder.generate(encoder(grid), threshold=math.log(4.0)), logits > math.log(4.0))
    with pytest.raises(ValueError, match="threshold must be a number"):
        decoder.generate(encoder(grid), threshold=float("nan"))


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="base_resolution must be below the output resolution"):
        OctreeGeneratingNetwork(8, 3, base_resolution=8)
    with pytest.raises(ValueError, match="base_resolution must be a power of two"):
        OctreeGeneratingNetwork(8, 5, base_resolution=6)
    with pytest.raises(ValueError, match=r"channels must be a sequence of 3 positive ints"):
        OctreeGeneratingNetwork(8, 5, base_resolution=8, channels=[8, 8])
    model = OctreeGeneratingNetwork(8, 4, base_resolution=4, width=0.25)
    with pytest.raises(ValueError, match=r"latent must be \(B, 8\)"):
        model(torch.zeros(2, 7))
    with pytest.raises(ValueError, match="latent must be finite"):
        model(torch.full((2, 8), float("nan")))
    with pytest.raises(ValueError, match="propagation='known' needs the target octree"):
        model(torch.zeros(2, 8), propagation="known")
    with pytest.raises(ValueError, match="target must be an octree of depth 4 with batch size 2"):
        model(torch.zeros(2, 8), Octree.from_dense(_shapes(8)))
    with pytest.raises(TypeError, match="target must be an Octree"):
        model(torch.zeros(2, 8), _shapes())
    with pytest.raises(ValueError, match="output has no targets"):
        ogn_loss(model(torch.zeros(2, 8)))
    with pytest.raises(ValueError, match=r"grid must be \(B, 32, 32, 32\)"):
        OccupancyEncoder(8)(torch.zeros(1, 16, 16, 16))
    with pytest.raises(ValueError, match="resolution must be a power of two >= 4"):
        DenseOccupancyDecoder(8, 12)
    assert "propagation='known'" in repr(model)
