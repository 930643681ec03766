"""Octree: Morton keys, construction from grids / points / states against a recursive naive twin,
exact round trips, neighbour and state look-ups against dictionary look-ups, bad input."""
import pytest
import torch

from geo4g.structures import Pointclouds
from geo4g.voxels.octree import (EMPTY, FILLED, MAX_DEPTH, MIXED, Octree, find_neighbors, morton_decode,
                                 morton_encode)


def _naive_key(x: int, y: int, z: int, level: int) -> int:
    key = 0
    for bit in range(level - 1, -1, -1):
        key = key * 8 + ((x >> bit) & 1) * 4 + ((y >> bit) & 1) * 2 + ((z >> bit) & 1)
    return key


def _naive_octree(grid: torch.Tensor, collapse_full: bool):
    """Per level, a list of (batch, key, state, parent) in (batch, key) order, built recursively."""
    B, R = grid.shape[0], grid.shape[1]
    depth = R.bit_length() - 1
    levels = [[] for _ in range(depth + 1)]

    def visit(b, level, x, y, z, parent):
        size = R >> level
        block = grid[b, x * size:(x + 1) * size, y * size:(y + 1) * size, z * size:(z + 1) * size]
        if not bool(block.any()):
            state = EMPTY
        elif level == depth or (collapse_full and bool(block.all())):
            state = FILLED
        else:
            state = MIXED
        levels[level].append((b, _naive_key(x, y, z, level), state, parent))
        return state

    frontier = []
    for b in range(B):
        if visit(b, 0, 0, 0, 0, -1) == MIXED:
            frontier.append((b, 0, 0, 0, 0))
    for level in range(1, depth + 1):
        nxt = []
        for parent_index, (b, _, x, y, z) in enumerate(frontier):
            parent_row = [i for i, cell in enumerate(levels[level - 1]) if cell[0] == b and
                          cell[1] == _naive_key(x, y, z, level - 1)][0]
            for c in range(8):
                cx, cy, cz = 2 * x + (c >> 2 & 1), 2 * y + (c >> 1 & 1), 2 * z + (c & 1)
                if visit(b, level, cx, cy, cz, parent_row) == MIXED:
                    nxt.append((b, level, cx, cy, cz))
        frontier = nxt
    return levels


def _random_grids(seed: int, B: int = 3, R: int = 8) -> torch.Tensor:
    """Random occupancy with solid blocks (so that full blocks collapse), plus an empty and a full item."""
    g = torch.Generator().manual_seed(seed)
    grid = torch.rand(B, R, R, R, generator=g) < 0.4
    grid[0, : R // 2, : R // 2, : R // 2] = True
    grid[0, R // 2:, R // 2:, R // 2:] = False
    return torch.cat([grid, torch.zeros(1, R, R, R, dtype=torch.bool), torch.ones(1, R, R, R, dtype=torch.bool)])


def _grid_of_points(points, lengths, depth, bounds):
    """The naive voxelisation of points: one point at a time."""
    R = 1 << depth
    grid = torch.zeros(points.shape[0], R, R, R, dtype=torch.bool)
    for b in range(points.shape[0]):
        lo, hi = bounds[b, 0], bounds[b, 1]
        for n in range(int(lengths[b])):
            u = (points[b, n].double() - lo) / (hi - lo)
            if bool(((u >= 0) & (u <= 1)).all()):
                ijk = (u * R).floor().clamp(0, R - 1).long()
                grid[b, ijk[0], ijk[1], ijk[2]] = True
    return grid


# Morton keys


def test_morton_keys_interleave_bits_x_high():
    xyz = torch.tensor([[0, 0, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0], [1, 1, 1], [2, 0, 0], [3, 5, 6]])
    assert morton_encode(xyz).tolist() == [0, 1, 2, 4, 7, 32, _naive_key(3, 5, 6, 3)]


def test_morton_round_trip_over_the_whole_range_and_any_leading_shape():
    g = torch.Generator().manual_seed(0)
    xyz = torch.randint(0, 1 << MAX_DEPTH, (500, 3), generator=g)
    xyz[0] = (1 << MAX_DEPTH) - 1
    keys = morton_encode(xyz)
    assert keys.dtype == torch.int64 and int(keys.min()) >= 0
    assert int(keys[0]) == (1 << 63) - 1
    assert torch.equal(morton_decode(keys), xyz)
    assert torch.equal(morton_decode(morton_encode(xyz.view(5, 100, 3).int())), xyz.view(5, 100, 3))
    assert morton_encode(torch.zeros(0, 3, dtype=torch.long)).shape == (0,)


def test_morton_order_is_the_octree_path_order():
    g = torch.Generator().manual_seed(1)
    xyz = torch.randint(0, 16, (200, 3), generator=g)
    keys = morton_encode(xyz)
    parents = morton_encode(xyz // 2)
    assert torch.equal(keys >> 3, parents)
    assert torch.equal(keys & 7, (xyz[:, 0] % 2) * 4 + (xyz[:, 1] % 2) * 2 + xyz[:, 2] % 2)


def test_morton_bad_input_names_the_argument():
    with pytest.raises(TypeError, match="xyz must be an integer tensor"):
        morton_encode(torch.zeros(3, 3))
    with pytest.raises(ValueError, match="xyz must have last dimension 3"):
        morton_encode(torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"xyz coordinates must lie in \[0, 2\*\*21\)"):
        morton_encode(torch.tensor([[0, -1, 0]]))
    with pytest.raises(ValueError, match=r"xyz coordinates must lie in \[0, 2\*\*21\)"):
        morton_encode(torch.tensor([[1 << 21, 0, 0]]))
    with pytest.raises(ValueError, match="keys must be non-negative"):
        morton_decode(torch.tensor([-3]))
    with pytest.raises(TypeError, match="keys must be an integer tensor"):
        morton_decode(torch.tensor([1.0]))


# Construction from grids


@pytest.mark.parametrize("collapse_full", [True, False])
@pytest.mark.parametrize("seed", [0, 1])
def test_from_dense_matches_recursive_naive_octree(collapse_full, seed):
    grid = _random_grids(seed)
    octree = Octree.from_dense(grid, collapse_full=collapse_full)
    naive = _naive_octree(grid, collapse_full)
    assert octree.depth == 3 and octree.batch_size == 5
    for level, cells in enumerate(naive):
        want = torch.tensor(cells, dtype=torch.long).view(-1, 4)
        assert torch.equal(octree.batch_index(level), want[:, 0]), level
        assert torch.equal(octree.keys(level), want[:, 1]), level
        assert torch.equal(octree.states(level), want[:, 2]), level
        assert torch.equal(octree.parents(level), want[:, 3]), level
        assert torch.equal(octree.xyz(level), morton_decode(want[:, 1]))
        children = octree.children(level)
        for i in range(octree.num_cells(level)):
            if int(octree.states(level)[i]) == MIXED:
                assert torch.equal(octree.parents(level + 1)[children[i]], torch.full((8,), i))
                assert torch.equal(octree.keys(level + 1)[children[i]], octree.keys(level)[i] * 8 + torch.arange(8))
            else:
                assert bool((children[i] == -1).all())
        assert torch.equal(octree.cell_counts(level), torch.bincount(want[:, 0], minlength=5))


def test_full_blocks_collapse_to_one_leaf():
    grid = torch.zeros(1, 8, 8, 8, dtype=torch.bool)
    grid[0, :4, :4, :4] = True
    octree = Octree.from_dense(grid)
    assert [octree.num_cells(d) for d in range(4)] == [1, 8, 0, 0]
    assert octree.states(1).tolist() == [FILLED] + [EMPTY] * 7
    kept = Octree.from_dense(grid, collapse_full=False)
    assert [kept.num_cells(d) for d in range(4)] == [1, 8, 8, 64]
    assert int((kept.states(3) == FILLED).sum()) == 64


@pytest.mark.parametrize("collapse_full", [True, False])
def test_dense_round_trip_is_exact(collapse_full, device):
    g = torch.Generator().manual_seed(3)
    cases = [
        _random_grids(3, B=2, R=16),
        torch.zeros(2, 8, 8, 8, dtype=torch.bool),
        torch.ones(1, 4, 4, 4, dtype=torch.bool),
        torch.rand(3, 2, 2, 2, generator=g) < 0.5,
        torch.ones(2, 1, 1, 1, dtype=torch.bool),
        torch.zeros(0, 4, 4, 4, dtype=torch.bool),
    ]
    single = torch.zeros(1, 32, 32, 32, dtype=torch.bool)
    single[0, 31, 0, 17] = True
    cases.append(single)
    for grid in cases:
        grid = grid.to(device)
        octree = Octree.from_dense(grid, collapse_full=collapse_full)
        assert octree.device == grid.device
        assert torch.equal(octree.to_dense(), grid)
    octree = Octree.from_dense(single.to(device), collapse_full=collapse_full)
    assert octree.num_cells(5) == 8 and int((octree.states(5) == FILLED).sum()) == 1


def test_from_dense_accepts_zero_one_numbers():
    grid = _random_grids(4)
    for numbers in (grid.float(), grid.to(torch.uint8), grid.double()):
        assert torch.equal(Octree.from_dense(numbers).to_dense(), grid)


def test_to_dense_other_resolutions_upsample_and_max_pool():
    grid = _random_grids(5)
    octree = Octree.from_dense(grid)
    up = octree.to_dense(16)
    assert torch.equal(up[:, ::2, ::2, ::2], grid) and torch.equal(up[:, 1::2, 1::2, 1::2], grid)
    down = octree.to_dense(2)
    want = torch.nn.functional.max_pool3d(grid.float()[:, None], 4)[:, 0] > 0
    assert torch.equal(down, want)
    assert torch.equal(octree.to_dense(1), grid.flatten(1).any(1).view(-1, 1, 1, 1))


def test_state_grid_and_query_states_inherit_leaf_states():
    grid = _random_grids(6)
    octree = Octree.from_dense(grid)
    for level in range(4):
        r, s = 1 << level, 8 >> level
        blocks = grid.view(5, r, s, r, s, r, s).permute(0, 1, 3, 5, 2, 4, 6).reshape(5, r, r, r, -1)
        want = torch.where(blocks.all(-1), FILLED, torch.where(blocks.any(-1), MIXED, EMPTY))
        if level == 3:
            want = grid.long()
        got = octree.state_grid(level)
        assert torch.equal(got, want), level
        b, x, y, z = torch.meshgrid(*(torch.arange(n) for n in (5, r, r, r)), indexing="ij")
        keys = morton_encode(torch.stack([x, y, z], -1).reshape(-1, 3))
        assert torch.equal(octree.query_states(level, b.reshape(-1), keys), want.reshape(-1))


def test_lookup_finds_cells_and_reports_missing_ones():
    octree = Octree.from_dense(_random_grids(7))
    level = 2
    batch, keys = octree.batch_index(level), octree.keys(level)
    assert torch.equal(octree.lookup(level, batch, keys), torch.arange(octree.num_cells(level)))
    present = set(zip(batch.tolist(), keys.tolist()))
    qb = torch.arange(5).repeat_interleave(64)
    qk = torch.arange(64).repeat(5)
    got = octree.lookup(level, qb, qk)
    for b, k, i in zip(qb.tolist(), qk.tolist(), got.tolist()):
        assert (i >= 0) == ((b, k) in present)
        if i >= 0:
            assert (int(batch[i]), int(keys[i])) == (b, k)
    with pytest.raises(ValueError, match=r"keys must lie in \[0, 8\*\*level\)"):
        octree.lookup(level, torch.tensor([0]), torch.tensor([64]))
    with pytest.raises(ValueError, match=r"batch must lie in \[0, batch_size=5\)"):
        octree.lookup(level, torch.tensor([5]), torch.tensor([0]))


# Neighbours


def _naive_neighbors(octree, level, kernel_size):
    index = {(b, tuple(p)): i for i, (b, p) in enumerate(zip(octree.batch_index(level).tolist(),
                                                              octree.xyz(level).tolist()))}
    r = kernel_size // 2
    out = []
    for i, (b, p) in enumerate(zip(octree.batch_index(level).tolist(), octree.xyz(level).tolist())):
        row = []
        for dx in range(-r, r + 1):
            for dy in range(-r, r + 1):
                for dz in range(-r, r + 1):
                    row.append(index.get((b, (p[0] + dx, p[1] + dy, p[2] + dz)), -1))
        out.append(row)
    return torch.tensor(out, dtype=torch.long).view(-1, kernel_size ** 3)


@pytest.mark.parametrize("kernel_size", [1, 3, 5])
def test_neighbors_match_dictionary_lookup(kernel_size, device):
    octree = Octree.from_dense(_random_grids(8, R=16).to(device), collapse_full=False)
    for level in range(5):
        got = octree.neighbors(level, kernel_size)
        assert got.device == octree.device
        assert torch.equal(got.cpu(), _naive_neighbors(octree.to("cpu"), level, kernel_size)), level
        assert torch.equal(got[:, kernel_size ** 3 // 2], torch.arange(octree.num_cells(level), device=device))
    assert octree.neighbors(4, kernel_size) is octree.neighbors(4, kernel_size)


def test_find_neighbors_on_a_cell_set_and_bad_input():
    octree = Octree.from_dense(_random_grids(9), collapse_full=False)
    got = find_neighbors(octree.keys(3), octree.batch_index(3), 3)
    assert torch.equal(got, octree.neighbors(3))
    assert find_neighbors(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), 4).shape == (0, 27)
    with pytest.raises(ValueError, match=r"keys must be sorted by \(batch, key\)"):
        find_neighbors(torch.tensor([5, 3]), torch.tensor([0, 0]), 1)
    with pytest.raises(ValueError, match=r"keys must be sorted by \(batch, key\)"):
        find_neighbors(torch.tensor([3, 3]), torch.tensor([0, 0]), 1)
    with pytest.raises(ValueError, match="kernel_size must be a positive odd int"):
        find_neighbors(torch.tensor([0]), torch.tensor([0]), 1, kernel_size=2)
    with pytest.raises(ValueError, match=r"keys must lie in \[0, 8\*\*level\)"):
        find_neighbors(torch.tensor([8]), torch.tensor([0]), 1)
    with pytest.raises(ValueError, match="batch must match keys"):
        find_neighbors(torch.tensor([0, 1]), torch.tensor([0]), 1)


# Construction from points


def _ragged_points(seed: int):
    g = torch.Generator().manual_seed(seed)
    points = torch.rand(3, 60, 3, generator=g) - 0.5
    points[0, :10] = points[0, 10:11]  # duplicates
    points[1, 40:] = float("nan")  # padding garbage
    points[0, 59] = torch.tensor([0.5, 0.5, 0.5])  # on the upper faces
    points[0, 58] = torch.tensor([0.7, 0.0, 0.0])  # outside the bounds
    return points, torch.tensor([60, 40, 0])


@pytest.mark.parametrize("depth", [0, 1, 4])
def test_from_points_matches_naive_voxelisation(depth):
    points, lengths = _ragged_points(depth)
    bounds = torch.tensor([[-0.5] * 3, [0.5] * 3])
    octree = Octree.from_points(points, depth, lengths, bounds=bounds)
    grid = _grid_of_points(points, lengths, depth, bounds.double().expand(3, 2, 3))
    want = Octree.from_dense(grid, collapse_full=False)
    assert torch.equal(octree.to_dense(), grid)
    for level in range(depth + 1):
        assert torch.equal(octree.keys(level), want.keys(level))
        assert torch.equal(octree.batch_index(level), want.batch_index(level))
        assert torch.equal(octree.states(level), want.states(level))
    assert octree.states(0).tolist()[2] == EMPTY and torch.equal(octree.bounds, bounds.double().expand(3, 2, 3))


def test_from_points_default_bounds_are_each_clouds_cube():
    points, lengths = _ragged_points(2)
    points = points * torch.tensor([3.0, 1.0, 0.5]) + torch.tensor([10.0, -2.0, 0.0])
    octree = Octree.from_points(points, 3, lengths)
    valid = points[1, :40]
    lo, hi = valid.amin(0).double(), valid.amax(0).double()
    side = float((hi - lo).max())
    assert torch.allclose(octree.bounds[1, 0], (lo + hi) / 2 - side / 2)
    assert torch.allclose(octree.bounds[1, 1], (lo + hi) / 2 + side / 2)
    assert torch.equal(octree.bounds[2], torch.tensor([[-0.5] * 3, [0.5] * 3], dtype=torch.float64))
    grid = _grid_of_points(points, lengths, 3, octree.bounds)
    assert torch.equal(octree.to_dense(), grid)
    assert int(grid[0].sum()) > 0 and int(grid[1].sum()) > 0
    one = Octree.from_points(torch.ones(1, 4, 3), 2)
    assert torch.equal(one.bounds[0], torch.tensor([[0.5] * 3, [1.5] * 3], dtype=torch.float64))
    assert int(one.to_dense().sum()) == 1


def test_from_points_averages_features_per_finest_cell():
    points, lengths = _ragged_points(5)
    g = torch.Generator().manual_seed(5)
    features = torch.randn(3, 60, 2, generator=g, dtype=torch.float64)
    bounds = [[-0.5] * 3, [0.5] * 3]
    octree = Octree.from_points(points, 3, lengths, bounds=bounds, features=features)
    got = octree.features(3)
    assert got.shape == (octree.num_cells(3), 2) and got.dtype == torch.float64
    sums, counts = {}, {}
    for b in range(3):
        for n in range(int(lengths[b])):
            u = (points[b, n].double() + 0.5)
            if bool(((u >= 0) & (u <= 1)).all()):
                key = (b, int(morton_encode((u * 8).floor().clamp(0, 7).long()[None])[0]))
                sums[key] = sums.get(key, 0) + features[b, n]
                counts[key] = counts.get(key, 0) + 1
    for i, (b, k) in enumerate(zip(octree.batch_index(3).tolist(), octree.keys(3).tolist())):
        want = sums[(b, k)] / counts[(b, k)] if (b, k) in sums else torch.zeros(2, dtype=torch.float64)
        assert torch.allclose(got[i], want)
        assert ((b, k) in sums) == (int(octree.states(3)[i]) == FILLED)


def test_from_points_accepts_pointclouds(device):
    points, lengths = _ragged_points(6)
    clouds = Pointclouds([points[b, : int(lengths[b])].to(device) for b in range(3)])
    a = Octree.from_points(clouds, 3, bounds=[[-0.5] * 3, [0.5] * 3])
    b = Octree.from_points(points, 3, lengths, bounds=[[-0.5] * 3, [0.5] * 3])
    assert torch.equal(a.to_dense().cpu(), b.to_dense())


def test_from_states_rebuilds_the_octree():
    octree = Octree.from_dense(_random_grids(10))
    again = Octree.from_states([octree.states(d) for d in range(4)])
    for d in range(4):
        assert torch.equal(again.keys(d), octree.keys(d)) and torch.equal(again.parents(d), octree.parents(d))
        assert torch.equal(again.children(d), octree.children(d))
    assert torch.equal(again.to_dense(), octree.to_dense())
    with pytest.raises(ValueError, match=r"states\[1\] must hold 8 cells per mixed cell"):
        Octree.from_states([torch.tensor([MIXED]), torch.zeros(7, dtype=torch.long)])
    with pytest.raises(ValueError, match=r"states\[1\] \(the finest level\) must have no MIXED cell"):
        Octree.from_states([torch.tensor([MIXED]), torch.full((8,), MIXED)])
    with pytest.raises(ValueError, match=r"states\[0\] values must be EMPTY=0, FILLED=1 or MIXED=2"):
        Octree.from_states([torch.tensor([3])])
    with pytest.raises(TypeError, match="states must be a non-empty list"):
        Octree.from_states([])


def test_features_attach_per_level_and_move_with_the_octree():
    octree = Octree.from_dense(_random_grids(11))
    assert octree.features(2) is None
    feats = torch.randn(octree.num_cells(2), 4)
    octree.set_features(2, feats)
    assert octree.features(2) is feats
    moved = octree.to("cpu")
    assert torch.equal(moved.features(2), feats) and torch.equal(moved.to_dense(), octree.to_dense())
    with pytest.raises(ValueError, match="features must have one row per cell of level 2"):
        octree.set_features(2, torch.zeros(3, 4))
    with pytest.raises(ValueError, match=r"level must be an int in \[0, depth=3\]"):
        octree.states(4)
    assert "cells per level" in repr(octree)


# Bad input


def test_from_dense_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="grid must be .* R a power of two"):
        Octree.from_dense(torch.zeros(1, 6, 6, 6, dtype=torch.bool))
    with pytest.raises(ValueError, match="grid must be .* R a power of two"):
        Octree.from_dense(torch.zeros(1, 8, 8, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="grid must have 4 dimensions"):
        Octree.from_dense(torch.zeros(8, 8, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match="grid must be finite"):
        Octree.from_dense(torch.full((1, 2, 2, 2), float("nan")))
    with pytest.raises(ValueError, match="threshold probabilities first"):
        Octree.from_dense(torch.full((1, 2, 2, 2), 0.7))
    with pytest.raises(TypeError, match="grid must be a torch.Tensor"):
        Octree.from_dense([[[[1]]]])


def test_from_points_bad_input_names_the_argument():
    points = torch.rand(2, 5, 3)
    with pytest.raises(ValueError, match=r"depth must be an int in \[0, 21\]"):
        Octree.from_points(points, 22)
    with pytest.raises(ValueError, match=r"batch_size \* 8\*\*depth must be at most 2\*\*63"):
        Octree.from_points(points, 21)
    bad = points.clone()
    bad[1, 2, 0] = float("nan")
    with pytest.raises(ValueError, match="points must be finite"):
        Octree.from_points(bad, 3)
    Octree.from_points(bad, 3, lengths=torch.tensor([5, 2]))  # NaN in padding is fine
    with pytest.raises(ValueError, match="points must have last dimension 3"):
        Octree.from_points(torch.rand(2, 5, 2), 3)
    with pytest.raises(ValueError, match="bounds must have max > min"):
        Octree.from_points(points, 3, bounds=[[0, 0, 0], [1, 0, 1]])
    with pytest.raises(ValueError, match=r"bounds must be \(2, 3\) or \(B=2, 2, 3\)"):
        Octree.from_points(points, 3, bounds=torch.zeros(3, 2, 3))
    with pytest.raises(ValueError, match="lengths must not exceed"):
        Octree.from_points(points, 3, lengths=torch.tensor([6, 1]))
    with pytest.raises(ValueError, match=r"features must be \(B=2, N=5, C\)"):
        Octree.from_points(points, 3, features=torch.zeros(2, 4, 3))
    with pytest.raises(ValueError, match="features must be finite"):
        Octree.from_points(points, 3, features=torch.full((2, 5, 3), float("inf")))
    with pytest.raises(ValueError, match="resolution must be a power of two"):
        Octree.from_points(points, 2).to_dense(3)
