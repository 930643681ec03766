import importlib.util

import pytest
import torch

from geo4g import _threads
from geo4g.losses import voxel_iou
from geo4g.voxels import completion
from geo4g.voxels.completion import CompletionNet, Visibility, random_viewpoints, visibility, visible_voxels
from geo4g.voxels.generative import occupancy_loss

from .test_classifiers import shape_grid

METHODS = ["reference", "torch"] + (["numba"] if importlib.util.find_spec("numba") else [])
UNIT = torch.tensor([[-0.5, -0.5, -0.5], [0.5, 0.5, 0.5]])


def exposed_faces_facing(grid: torch.Tensor, direction) -> torch.Tensor:
    """Occupied voxels with an empty (or outside) face neighbour on the side of ``direction`` (an axis
    sign per axis, 0 to skip): the voxels a distant camera in that direction could see."""
    padded = torch.nn.functional.pad(grid.float(), (1, 1, 1, 1, 1, 1)) > 0.5
    out = torch.zeros_like(grid)
    R = grid.shape[1]
    for axis, sign in enumerate(direction):
        if sign == 0:
            continue
        index = [slice(None)] + [slice(1, R + 1)] * 3
        index[axis + 1] = slice(1 + sign, R + 1 + sign)
        out |= grid & ~padded[tuple(index)]
    return out


# The three implementations agree


@pytest.mark.parametrize("resolution", [1, 5, 12])
def test_methods_agree_on_random_grids_and_viewpoints(resolution):
    g = torch.Generator().manual_seed(resolution)
    R = resolution
    for density in (0.1, 0.4):
        grid = torch.rand(3, R, R, R, generator=g) < density
        centre = (R / 2,) * 3
        outside = random_viewpoints(3, radius=1.3 * R, center=centre, generator=g, dtype=torch.float64)
        aligned = torch.tensor([[R / 2, R / 2, -2.0 * R], [R + 3.0, R / 2 + 0.5, R / 2 + 0.5], [-1.0, -1.0, -1.0]],
                               dtype=torch.float64)
        inside = torch.rand(1, 3, generator=g, dtype=torch.float64) * R
        for viewpoints in (outside, aligned, inside, torch.cat([outside, inside])):
            results = [visibility(grid, viewpoints, method=m) for m in METHODS]
            for method, other in zip(METHODS[1:], results[1:]):
                assert torch.equal(other.visible, results[0].visible), method
                assert torch.equal(other.known_empty, results[0].known_empty), method
            assert torch.equal(visible_voxels(grid, viewpoints, method=METHODS[-1]), results[0].visible)


def test_methods_agree_on_a_solid_shape_from_many_views():
    grid = torch.stack([shape_grid("torus", 16), shape_grid("box", 16, scale=1.2)])
    viewpoints = random_viewpoints(4, radius=1.4, generator=torch.Generator().manual_seed(0))
    results = [visibility(grid, viewpoints, bounds=UNIT, method=m) for m in METHODS]
    for other in results[1:]:
        assert torch.equal(other.visible, results[0].visible)
        assert torch.equal(other.known_empty, results[0].known_empty)


@pytest.mark.skipif("numba" not in METHODS, reason="needs numba")
@pytest.mark.parametrize("cpus", [1, 3])
def test_numba_path_shares_the_batch_over_threads(monkeypatch, cpus):
    monkeypatch.setattr(_threads.os, "sched_getaffinity", lambda pid: set(range(cpus)), raising=False)
    g = torch.Generator().manual_seed(5)
    grid = torch.rand(5, 7, 7, 7, generator=g) < 0.3
    viewpoints = random_viewpoints(2, radius=12.0, center=(3.5, 3.5, 3.5), generator=g)
    expected = visibility(grid, viewpoints, method="reference")
    result = visibility(grid, viewpoints, method="numba")
    assert torch.equal(result.visible, expected.visible) and torch.equal(result.known_empty, expected.known_empty)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_torch_path_on_cuda_matches_the_cpu():
    g = torch.Generator().manual_seed(0)
    grid = torch.rand(2, 12, 12, 12, generator=g) < 0.2
    viewpoints = random_viewpoints(3, radius=20.0, center=(6.0, 6.0, 6.0), generator=g)
    cpu = visibility(grid, viewpoints, method="reference")
    gpu = visibility(grid.cuda(), viewpoints.cuda())
    assert gpu.visible.is_cuda
    assert torch.equal(gpu.visible.cpu(), cpu.visible) and torch.equal(gpu.known_empty.cpu(), cpu.known_empty)
    with pytest.raises(ValueError, match="method='numba' runs on the CPU only"):
        visibility(grid.cuda(), viewpoints.cuda(), method="numba")


def test_auto_without_numba_uses_torch(monkeypatch):
    grid = shape_grid("sphere", 10)[None]
    viewpoints = torch.tensor([[5.2, 4.9, -30.0]])
    expected = visibility(grid, viewpoints, method="reference")
    monkeypatch.setattr(completion, "_numba_kernels", lambda: None)
    result = visibility(grid, viewpoints)
    assert torch.equal(result.visible, expected.visible) and torch.equal(result.known_empty, expected.known_empty)
    with pytest.raises(ImportError, match="method='numba' needs numba"):
        visibility(grid, viewpoints, method="numba")


# What is seen


@pytest.mark.parametrize("method", METHODS)
def test_convex_shape_seen_from_one_side_shows_its_facing_half(method):
    grid = shape_grid("sphere", 24)[None]
    seen = visible_voxels(grid, torch.tensor([[12.3, 11.8, -1000.0]]), method=method)
    facing = exposed_faces_facing(grid, (0, 0, -1))
    assert torch.equal(seen, facing)
    assert int(seen.nonzero()[:, 3].max()) < 12  # the near half only
    back = visible_voxels(grid, torch.tensor([[12.3, 11.8, 1000.0]]), method=method)
    assert not bool((seen & back).any())
    assert torch.equal(back, exposed_faces_facing(grid, (0, 0, 1)))


@pytest.mark.parametrize("method", METHODS)
def test_flat_surface_is_seen_at_a_grazing_angle(method):
    grid = torch.zeros(1, 8, 8, 8, dtype=torch.bool)
    grid[0, :, 0, :] = True  # a floor at j = 0
    low = torch.tensor([[4.0, 1.5, -60.0]])  # about 1 degree above the floor's plane, seen from its front
    vis = visibility(grid, low, method=method)
    assert torch.equal(vis.visible, grid)
    below = torch.tensor([[4.0, 0.5, -60.0]])  # in the floor's mid-plane: only its front edge row faces it
    front = torch.zeros_like(grid)
    front[0, :, 0, 0] = True
    assert torch.equal(visible_voxels(grid, below, method=method), front)
    assert not bool(vis.known_empty[0, :, 0].any())
    assert bool(vis.known_empty[0, :, 1:].all())


@pytest.mark.parametrize("method", METHODS)
def test_hidden_voxels_and_edge_touching_rays(method):
    grid = torch.zeros(1, 4, 4, 4, dtype=torch.bool)
    grid[0, 0, 1, 1] = grid[0, 3, 1, 1] = True
    vis = visibility(grid, torch.tensor([[-5.0, 1.5, 1.5]]), method=method)
    assert vis.visible[0, 0, 1, 1] and not vis.visible[0, 3, 1, 1]  # (0, 1, 1) hides (3, 1, 1)
    assert not vis.known_empty[0, 2, 1, 1] and vis.known_empty[0, 2, 2, 2]
    # a ray through the shared edge of two occupied voxels passes between them
    grid = torch.zeros(1, 4, 4, 4, dtype=torch.bool)
    grid[0, 1, 0, 0] = grid[0, 0, 1, 0] = True
    target = torch.tensor([[2.5, 2.5, 0.5]])
    assert visibility(grid, target, method=method).known_empty[0, 0, 0, 0]
    grid[0, 1, 1, 0] = True
    assert not visibility(grid, target, method=method).known_empty[0, 0, 0, 0]


@pytest.mark.parametrize("method", METHODS)
def test_empty_and_full_grids(method):
    empty = torch.zeros(2, 6, 6, 6, dtype=torch.bool)
    viewpoints = torch.tensor([[3.2, 2.9, -20.0], [30.0, 3.0, 3.1]])
    vis = visibility(empty, viewpoints, method=method)
    assert not bool(vis.visible.any()) and bool(vis.known_empty.all())
    full = torch.ones(1, 6, 6, 6, dtype=torch.bool)
    vis = visibility(full, viewpoints[:1], method=method)
    expected = torch.zeros_like(full)
    expected[0, :, :, 0] = True
    assert torch.equal(vis.visible, expected) and not bool(vis.known_empty.any())
    assert visibility(torch.zeros(0, 6, 6, 6), viewpoints, method=method).visible.shape == (0, 6, 6, 6)
    assert not bool(visible_voxels(torch.zeros(1, 1, 1, 1), viewpoints, method=method).any())


@pytest.mark.parametrize("method", METHODS)
def test_viewpoint_inside_a_hollow_box_sees_its_inner_walls(method):
    R = 8
    shell = torch.ones(1, R, R, R, dtype=torch.bool)
    shell[0, 1:-1, 1:-1, 1:-1] = False
    vis = visibility(shell, torch.tensor([[4.1, 3.8, 4.3]]), method=method)
    inner_walls = shell.clone()
    inner_walls[0, [0, 0, -1, -1], [0, -1, 0, -1]] = False  # edge voxels show no face to the inside
    inner_walls[0, [0, 0, -1, -1], :, [0, -1, 0, -1]] = False
    inner_walls[0, :, [0, 0, -1, -1], [0, -1, 0, -1]] = False
    assert torch.equal(vis.visible, inner_walls)
    assert torch.equal(vis.known_empty, ~shell)


def test_several_viewpoints_are_the_union_and_per_grid_viewpoints():
    grid = torch.stack([shape_grid("torus", 12), shape_grid("cylinder", 12)])
    views = random_viewpoints(3, radius=1.5, generator=torch.Generator().manual_seed(2))
    together = visibility(grid, views, bounds=UNIT)
    union_visible = torch.zeros_like(grid)
    union_free = torch.zeros_like(grid)
    for v in views:
        one = visibility(grid, v[None], bounds=UNIT)
        union_visible |= one.visible
        union_free |= one.known_empty
    assert torch.equal(together.visible, union_visible) and torch.equal(together.known_empty, union_free)
    per_grid = torch.stack([views[:2], views[1:]])
    batched = visibility(grid, per_grid, bounds=UNIT)
    for b in range(2):
        single = visibility(grid[b:b + 1], per_grid[b], bounds=UNIT)
        assert torch.equal(batched.visible[b], single.visible[0])
    assert isinstance(together, Visibility)


def test_world_coordinates_with_bounds_match_grid_coordinates():
    grid = shape_grid("box", 10)[None].expand(2, -1, -1, -1)
    world = torch.tensor([[0.21, 0.8, -1.3], [-1.1, 0.05, 0.3]])
    expected = visibility(grid, (world + 0.5) * 10)
    torch.testing.assert_close(visibility(grid, world, bounds=UNIT).visible, expected.visible)
    box = torch.tensor([[-1.0, 0.0, 2.0], [1.0, 4.0, 3.0]])
    shifted = box[0] + (world + 0.5) * (box[1] - box[0])
    per_grid = torch.stack([box, UNIT])
    result = visibility(grid, torch.stack([shifted, world]), bounds=per_grid)
    assert torch.equal(result.visible[0], expected.visible[0]) and torch.equal(result.visible[1], expected.visible[1])


def test_numeric_grids_are_occupied_above_one_half():
    grid = shape_grid("sphere", 10)[None]
    viewpoints = torch.tensor([[5.0, 5.0, -10.0]])
    assert torch.equal(visible_voxels(grid.float() * 0.9, viewpoints), visible_voxels(grid, viewpoints))
    assert torch.equal(visible_voxels(grid.long(), viewpoints), visible_voxels(grid, viewpoints))


@pytest.mark.parametrize("grid,viewpoints,kwargs,error,match", [
    (torch.zeros(6, 6, 6), torch.zeros(1, 3), {}, ValueError, r"grid must have 4 dimensions \(B, R, R, R\)"),
    (torch.zeros(1, 6, 6, 5), torch.zeros(1, 3), {}, ValueError, r"grid must be a cubic occupancy grid"),
    ([[0]], torch.zeros(1, 3), {}, TypeError, "grid must be a torch.Tensor"),
    (torch.full((1, 4, 4, 4), float("nan")), torch.zeros(1, 3), {}, ValueError, "grid must be finite"),
    (torch.zeros(1, 4, 4, 4), torch.zeros(1, 2), {}, ValueError, r"viewpoints must have last dimension 3"),
    (torch.zeros(1, 4, 4, 4), torch.zeros(0, 3), {}, ValueError, "viewpoints must hold at least one viewpoint"),
    (torch.zeros(2, 4, 4, 4), torch.zeros(3, 1, 3), {}, ValueError,
     r"viewpoints must be \(V, 3\) or \(B, V, 3\) with B=2"),
    (torch.zeros(1, 4, 4, 4), torch.tensor([[0.0, float("inf"), 0.0]]), {}, ValueError, "viewpoints must be finite"),
    (torch.zeros(1, 4, 4, 4), torch.zeros(1, 3, dtype=torch.long), {}, TypeError, "viewpoints must be a floating"),
    (torch.zeros(1, 4, 4, 4), torch.zeros(1, 3), dict(bounds=torch.zeros(2, 3)), ValueError, "max > min"),
    (torch.zeros(1, 4, 4, 4), torch.zeros(1, 3), dict(bounds=torch.zeros(3, 2)), ValueError,
     r"bounds must be \(2, 3\)"),
    (torch.zeros(1, 4, 4, 4), torch.zeros(1, 3), dict(method="fast"), ValueError, "method must be one of"),
])
def test_bad_input_names_the_argument(grid, viewpoints, kwargs, error, match):
    with pytest.raises(error, match=match):
        visibility(grid, viewpoints, **kwargs)


def test_random_viewpoints():
    a = random_viewpoints(50, radius=2.5, center=(1.0, 2.0, 3.0), generator=torch.Generator().manual_seed(0))
    b = random_viewpoints(50, radius=2.5, center=(1.0, 2.0, 3.0), generator=torch.Generator().manual_seed(0))
    assert a.shape == (50, 3) and a.dtype == torch.float32
    torch.testing.assert_close(a, b)
    torch.testing.assert_close((a - torch.tensor([1.0, 2.0, 3.0])).norm(dim=1), torch.full((50,), 2.5))
    spread = random_viewpoints(2000, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert spread.dtype == torch.float64 and spread.mean(0).abs().max() < 0.1  # uniform on the sphere
    assert random_viewpoints(0).shape == (0, 3)
    with pytest.raises(ValueError, match="radius must be a positive finite number"):
        random_viewpoints(3, radius=0.0)
    with pytest.raises(ValueError, match="n must be a non-negative int"):
        random_viewpoints(-1)
    with pytest.raises(ValueError, match=r"center must be 3 real numbers"):
        random_viewpoints(3, center=(0.0, 1.0))
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        random_viewpoints(3, generator=0)


# The completion network


@pytest.mark.parametrize("resolution", [32, 64])
def test_completion_net_shapes(resolution):
    torch.manual_seed(0)
    model = CompletionNet(resolution, width=0.125)
    partial = torch.rand(1, resolution, resolution, resolution) > 0.9
    free = torch.rand(1, 1, resolution, resolution, resolution) > 0.5
    assert model(partial, free).shape == (1, resolution, resolution, resolution)
    plain = CompletionNet(resolution, width=0.125, known_empty=False)
    assert plain(partial).shape == (1, resolution, resolution, resolution)


def test_completion_net_inputs_and_arguments():
    model = CompletionNet(16, width=0.125)
    partial = torch.zeros(2, 16, 16, 16)
    with pytest.raises(ValueError, match="known_empty must be given"):
        model(partial)
    with pytest.raises(ValueError, match=r"known_empty must have the batch size of partial"):
        model(partial, torch.zeros(1, 16, 16, 16))
    with pytest.raises(ValueError, match=r"known_empty must be None"):
        CompletionNet(16, width=0.125, known_empty=False)(partial, partial)
    with pytest.raises(ValueError, match=r"partial must be \(B, 16, 16, 16\)"):
        model(torch.zeros(2, 8, 8, 8), partial)
    with pytest.raises(ValueError, match="resolution must be a positive multiple of 8"):
        CompletionNet(20)
    with pytest.raises(TypeError, match="known_empty must be a bool"):
        CompletionNet(16, known_empty=1)


def test_completion_net_overfits_two_partial_scans():
    full = torch.stack([shape_grid("torus"), shape_grid("cylinder")])
    scan = visibility(full, torch.tensor([[0.3, 1.2, -1.0]]), bounds=UNIT)
    assert bool((voxel_iou(scan.visible, full) < 0.5).all())
    torch.manual_seed(0)
    model = CompletionNet(32, width=0.125)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(80):
        loss = occupancy_loss(model(scan.visible, scan.known_empty), full)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        logits = model(scan.visible, scan.known_empty)
        torch.testing.assert_close(model(scan.visible, scan.known_empty), logits)
        torch.testing.assert_close(model(scan.visible[:1], scan.known_empty[:1]), logits[:1], rtol=1e-4, atol=1e-4)
    iou = voxel_iou(torch.sigmoid(logits), full)
    assert bool((iou > 0.9).all()), iou


def test_completion_net_starts_as_the_scan_itself():
    torch.manual_seed(0)
    model = CompletionNet(16, width=0.125, prior=0.1)
    partial = torch.zeros(1, 16, 16, 16, dtype=torch.bool)
    free = torch.zeros_like(partial)
    partial[0, 3, 4, 5] = True
    free[0, 9, 9, 9] = True
    torch.nn.init.zeros_(model.out.weight)  # the U-Net's contribution, random at the start, set aside
    logits = model(partial, free)
    b = torch.tensor(0.1 / 0.9).log()
    torch.testing.assert_close(logits[0, 3, 4, 5], -b)
    torch.testing.assert_close(logits[0, 9, 9, 9], 2 * b)
    torch.testing.assert_close(logits[0, 0, 0, 0], b)
    with torch.no_grad():
        model.shortcut.weight.fill_(7.0)
    model.reset_parameters()
    torch.testing.assert_close(model.shortcut.weight.flatten(), torch.stack([-2 * b, b]))
    assert "prior=0.1" in repr(model)
    with pytest.raises(ValueError, match=r"prior must lie in \(0, 1\)"):
        CompletionNet(16, prior=1.0)
