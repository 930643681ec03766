"""Voxelisation: every mesh path against the per-voxel reference (random, axis-aligned, degenerate and
lattice-aligned triangles), independent checks (surface samples, distances to the surface, analytic
inside tests of primitives, rays through edges and vertices), batches, the grid-to-mesh round trip,
points to voxels and back, bad input."""
import importlib.util
import math

import pytest
import torch

from geo4g.meshes.sample import sample_points_from_meshes
from geo4g.parametric.primitives import box_mesh, cylinder_mesh, icosphere, torus_mesh
from geo4g.structures import Meshes, Pointclouds
from geo4g.voxels.voxelize import (
    MAX_GRID_BYTES,
    bounding_cubes,
    occupancy_to_mesh,
    triangle_box_overlap,
    voxel_centers,
    voxelize_mesh,
    voxelize_points,
    voxels_to_points,
)

HAS_NUMBA = importlib.util.find_spec("numba") is not None
FAST = ["torch", "auto"] + (["numba"] if HAS_NUMBA else [])
ALL = ["reference"] + FAST


def _unit_bounds(dims, dtype=torch.float64):
    """Bounds whose voxels are unit cubes at integer coordinates: voxel units are world units."""
    return torch.tensor([[0.0, 0.0, 0.0], list(dims)], dtype=dtype)


def _soup(seed, n, dims, lattice=False):
    """``n`` random triangles in (and around) a grid of ``dims`` unit voxels: general ones, some
    axis-aligned, some degenerate (segments, points), and, with ``lattice``, vertices on integer and
    half-integer coordinates (triangles on voxel faces, through voxel centres, along voxel edges)."""
    g = torch.Generator().manual_seed(seed)
    hi = torch.tensor(dims, dtype=torch.float64)
    tri = torch.rand(n, 3, 3, generator=g, dtype=torch.float64) * (hi + 2) - 1
    tri[1::4] = tri[1::4, :1] + (tri[1::4] - tri[1::4, :1]) * 0.15  # small triangles
    if lattice:
        tri = torch.round(tri * 2) / 2
    flat = torch.arange(n) % 5 == 2
    axis = torch.randint(0, 3, (n,), generator=g)
    tri[flat, :, axis[flat]] = tri[flat, :1, axis[flat]]  # axis-aligned triangles
    tri[3::7, 2] = tri[3::7, 0]  # segments
    tri[5::11, 1:] = tri[5::11, :1]  # points
    tri[6::13, 2] = (tri[6::13, 0] + tri[6::13, 1]) / 2  # collinear
    return tri.reshape(-1, 3), torch.arange(3 * n).reshape(n, 3)


@pytest.mark.parametrize("lattice", [False, True])
@pytest.mark.parametrize("dims", [(5, 6, 7), (4, 4, 4), (1, 3, 2)])
def test_every_mode_matches_reference_on_random_triangles(lattice, dims):
    # a triangle soup is not closed: the inside test then exercises the open-column rule, and with
    # lattice vertices many rays pass exactly through edges and vertices
    verts, faces = _soup(sum(dims) + lattice, 60, dims, lattice)
    bounds = _unit_bounds(dims)
    for mode, rule in (("surface", "parity"), ("inside", "parity"), ("inside", "winding"), ("solid", "winding")):
        want = voxelize_mesh(verts, faces, dims, mode=mode, bounds=bounds, fill_rule=rule, method="reference")
        assert want.shape == dims
        assert mode != "surface" or want.any()
        for method in FAST:
            got = voxelize_mesh(verts, faces, dims, mode=mode, bounds=bounds, fill_rule=rule, method=method)
            assert torch.equal(got, want), (mode, rule, method, (got != want).nonzero()[:5])


def test_slivers_with_far_vertices_match_reference():
    # long thin triangles reaching far outside the grid: large coordinates round the slab's ends
    g = torch.Generator().manual_seed(2)
    dims = (6, 5, 4)
    near = torch.rand(40, 2, 3, generator=g, dtype=torch.float64) * torch.tensor(dims)
    for far in (1e3, 1e9, 1e14):
        tip = torch.randn(40, 1, 3, generator=g, dtype=torch.float64) * far
        tri = torch.cat([tip, near], 1)  # the far vertex first: the plane offset is formed from it
        verts, faces = tri.reshape(-1, 3), torch.arange(120).reshape(40, 3)
        want = voxelize_mesh(verts, faces, dims, bounds=_unit_bounds(dims), method="reference")
        for method in FAST:
            assert torch.equal(voxelize_mesh(verts, faces, dims, bounds=_unit_bounds(dims), method=method), want), far


@pytest.mark.parametrize("method", FAST)
def test_closed_lattice_meshes_match_reference(method):
    # closed meshes with vertices on column centres: every tie of the ray test is taken
    g = torch.Generator().manual_seed(5)
    dims = (6, 5, 7)
    for _ in range(4):
        verts, faces = icosphere(1, 2.0, dtype=torch.float64)
        verts = torch.round((verts + torch.rand(3, generator=g, dtype=torch.float64) * 2 + 1.5) * 2) / 2 + 0.5
        for rule in ("parity", "winding"):
            want = voxelize_mesh(verts, faces, dims, mode="solid", bounds=_unit_bounds(dims), fill_rule=rule,
                                 method="reference")
            got = voxelize_mesh(verts, faces, dims, mode="solid", bounds=_unit_bounds(dims), fill_rule=rule,
                                method=method)
            assert torch.equal(got, want), rule


def _overlap_lp(tri, cell):
    """Whether triangle ``tri (3, 3)`` meets the closed unit box at ``cell``: a feasibility linear program
    over barycentric coordinates (an oracle independent of the separating axis test)."""
    import numpy as np
    from scipy.optimize import linprog

    corners = tri.numpy().T  # (3 coordinates, 3 vertices)
    lo = cell.double().numpy()
    a_ub = np.concatenate([corners, -corners])
    b_ub = np.concatenate([lo + 1, -lo])
    res = linprog(np.zeros(3), A_ub=a_ub, b_ub=b_ub, A_eq=np.ones((1, 3)), b_eq=[1.0], bounds=(0, None),
                  method="highs")
    return res.status == 0


def test_reference_overlap_matches_linear_program_on_lattice_triangles():
    # half-integer coordinates: touching contacts are exact, and a miss is by a clear gap, so the
    # linear program's tolerance cannot blur the answer
    tri, _ = _soup(11, 24, (3, 3, 3), lattice=True)
    tri = tri.view(-1, 3, 3)
    cells = torch.stack(torch.meshgrid(*[torch.arange(3)] * 3, indexing="ij"), -1).reshape(-1, 3)
    for t in tri:
        got = triangle_box_overlap(t.expand(cells.shape[0], 3, 3), cells)
        want = torch.tensor([_overlap_lp(t, c) for c in cells])
        assert torch.equal(got, want), (t, cells[got != want])
    cases = torch.tensor([
        [[1.0, 1.0, 1.0], [2.0, 1.0, 1.0], [1.0, 2.0, 1.0]],  # in the plane z = 1: both layers
        [[0.0, 0.0, 0.0], [3.0, 0.0, 0.0], [0.0, 3.0, 0.0]],  # in the plane z = 0: the first layer
        [[0.5, 0.5, 0.5], [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]],  # a point at a voxel centre
        [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]],  # a point at a voxel corner
        [[1.0, 0.5, 0.5], [1.0, 2.5, 0.5], [1.0, 2.5, 0.5]],  # a segment on the face x = 1
        [[0.0, 0.0, 3.0], [3.0, 0.0, 3.0], [0.0, 3.0, 3.0]],  # on the grid's top face: the last layer
        [[3.0, 1.0, 1.0], [3.0, 1.0, 1.0], [3.0, 1.0, 1.0]],  # a point on the grid's x-max face
        [[-1.0, 1.0, 1.0], [0.0, 1.0, 1.0], [-1.0, 2.0, 1.0]],  # touching the x-min face from outside
        [[-0.9, 0.2, 0.5], [0.2, -0.9, 0.5], [-0.9, -0.9, 0.5]],  # across a grid corner, outside it
        [[3.9, 2.8, 0.5], [2.8, 3.9, 0.5], [3.9, 3.9, 0.5]],  # the same at the opposite corner
    ], dtype=torch.float64)
    counts = [int(voxelize_mesh(t, torch.tensor([[0, 1, 2]]), (3, 3, 3), bounds=_unit_bounds((3, 3, 3)),
                                method=method).sum()) for t in cases for method in ALL]
    assert counts == [c for c in (16, 8, 1, 8, 6, 8, 4, 4, 0, 0) for _ in ALL]


def _sample_surface(verts, faces, n, seed):
    g = torch.Generator().manual_seed(seed)
    return sample_points_from_meshes(Meshes([verts.float()], [faces]), n, generator=g)[0].double()


def _point_triangle_distance(p, tri):
    """``(P, F)`` distances from points ``p (P, 3)`` to triangles ``tri (F, 3, 3)`` (Ericson's closest
    point, region by region; non-degenerate triangles)."""
    a, b, c = (tri[None, :, k] for k in range(3))
    p = p[:, None]
    ab, ac = b - a, c - a
    d1, d2 = (ab * (p - a)).sum(-1), (ac * (p - a)).sum(-1)
    d3, d4 = (ab * (p - b)).sum(-1), (ac * (p - b)).sum(-1)
    d5, d6 = (ab * (p - c)).sum(-1), (ac * (p - c)).sum(-1)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    denom = va + vb + vc

    def ratio(x, y):
        return x / torch.where(y != 0, y, torch.ones_like(y))

    closest = a + ab * ratio(vb, denom)[..., None] + ac * ratio(vc, denom)[..., None]
    # the regions in reverse order of precedence: the last one that applies wins
    regions = [
        ((va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0), b + (c - b) * ratio(d4 - d3, (d4 - d3) + (d5 - d6))[..., None]),
        ((vb <= 0) & (d2 >= 0) & (d6 <= 0), a + ac * ratio(d2, d2 - d6)[..., None]),
        ((d6 >= 0) & (d5 <= d6), c.expand_as(closest)),
        ((vc <= 0) & (d1 >= 0) & (d3 <= 0), a + ab * ratio(d1, d1 - d3)[..., None]),
        ((d3 >= 0) & (d4 <= d3), b.expand_as(closest)),
        ((d1 <= 0) & (d2 <= 0), a.expand_as(closest)),
    ]
    for mask, point in regions:
        closest = torch.where(mask[..., None], point, closest)
    return (p - closest).norm(dim=-1)


def test_surface_has_no_holes_and_no_far_voxels():
    verts, faces = torus_mesh(0.3, 0.1, 24, 12, dtype=torch.float64)
    verts = verts @ torch.tensor([[0.8, 0.6, 0.0], [-0.48, 0.64, 0.6], [0.36, -0.48, 0.8]], dtype=torch.float64)
    bounds = torch.tensor([[-0.45, -0.41, -0.43], [0.44, 0.47, 0.4]], dtype=torch.float64)
    dims = (20, 22, 18)
    grid = voxelize_mesh(verts, faces, dims, bounds=bounds, method="torch")
    for method in FAST:
        assert torch.equal(voxelize_mesh(verts, faces, dims, bounds=bounds, method=method), grid)
    size = (bounds[1] - bounds[0]) / torch.tensor(dims)
    samples = _sample_surface(verts, faces, 20000, seed=1)
    cell = ((samples - bounds[0]) / size).floor().long()
    assert bool(grid[cell[:, 0], cell[:, 1], cell[:, 2]].all())
    centres = voxel_centers(dims, bounds)[grid]
    dist = _point_triangle_distance(centres, verts[faces]).amin(1)
    assert float(dist.max()) <= 0.5 * float(size.norm()) * (1 + 1e-9)
    # and every voxel within a tenth of its size from the surface is marked
    everything = voxel_centers(dims, bounds).reshape(-1, 3)
    near = _point_triangle_distance(everything, verts[faces]).amin(1) < 0.1 * float(size.min())
    assert bool(grid.reshape(-1)[near].all())


def _inradius(verts, faces):
    """Distance from the origin to the nearest face plane of a convex mesh around it."""
    tri = verts.double()[faces]
    n = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1)
    return float(((n * tri[:, 0]).sum(1).abs() / n.norm(dim=1)).min())


@pytest.mark.parametrize("method", ALL)
@pytest.mark.parametrize("fill_rule", ["parity", "winding"])
def test_solid_primitives_against_analytic_inside(method, fill_rule):
    dims = (9, 10, 8)
    bounds = torch.tensor([[-0.52, -0.47, -0.55], [0.49, 0.5, 0.45]], dtype=torch.float64)
    centres = voxel_centers(dims, bounds)
    size = (bounds[1] - bounds[0]) / torch.tensor(dims)
    half_diag = 0.5 * float(size.norm())
    sphere = icosphere(2, 0.4, dtype=torch.float64)
    r_in = _inradius(*sphere)
    box = box_mesh((0.6, 0.35, 0.7), dtype=torch.float64)
    cyl = cylinder_mesh(0.3, 0.6, 32, dtype=torch.float64)
    cyl_in = 0.3 * math.cos(math.pi / 32)
    cases = [
        (sphere, centres.norm(dim=-1) - 0.4, centres.norm(dim=-1) - r_in),
        (box, (centres.abs() - torch.tensor([0.3, 0.175, 0.35])).amax(-1),
         (centres.abs() - torch.tensor([0.3, 0.175, 0.35])).amax(-1)),
        (cyl, torch.maximum(centres[..., :2].norm(dim=-1) - 0.3, centres[..., 2].abs() - 0.3),
         torch.maximum(centres[..., :2].norm(dim=-1) - cyl_in, centres[..., 2].abs() - 0.3)),
    ]
    for (verts, faces), outer, inner in cases:
        inside = voxelize_mesh(verts, faces, dims, mode="inside", bounds=bounds, fill_rule=fill_rule, method=method)
        solid = voxelize_mesh(verts, faces, dims, mode="solid", bounds=bounds, fill_rule=fill_rule, method=method)
        surface = voxelize_mesh(verts, faces, dims, bounds=bounds, method=method)
        margin = 1e-9
        assert bool(inside[inner < -margin].all())  # clearly inside the polyhedron
        assert not bool(inside[outer > margin].any())  # clearly outside the true solid
        assert torch.equal(solid, inside | surface)
        assert not bool(solid[outer > half_diag + margin].any())
        assert bool(inside.sum() > 20)


@pytest.mark.parametrize("method", ALL)
def test_rays_through_edges_and_vertices_count_once(method):
    # a box whose footprint corners and triangulation diagonals pass exactly through column centres,
    # and a cylinder whose cap fans meet at a column centre: parity must never come out odd
    dims = (6, 6, 6)
    bounds = _unit_bounds(dims)
    verts, faces = box_mesh((4.0, 4.0, 2.5), dtype=torch.float64)
    verts = verts + torch.tensor([2.5, 2.5, 2.45], dtype=torch.float64)  # x, y in [0.5, 4.5]; z in [1.2, 3.7]
    inside = voxelize_mesh(verts, faces, dims, mode="inside", bounds=bounds, method=method)
    want = torch.zeros(dims, dtype=torch.bool)
    want[1:4, 1:4, 1:4] = True
    # columns whose centre is on the footprint's boundary are all in or all out, never half-filled
    assert torch.equal(inside[1:4, 1:4], want[1:4, 1:4])
    boundary = inside[[0, 4]].reshape(-1, 6).tolist() + inside[:, [0, 4]].reshape(-1, 6).tolist()
    for column in boundary:
        assert column in ([False] * 6, [False, True, True, True, False, False])
    cyl_v, cyl_f = cylinder_mesh(2.2, 3.0, 12, dtype=torch.float64)
    cyl_v = cyl_v + torch.tensor([3.5, 3.5, 3.0], dtype=torch.float64)  # the cap centres on column (3, 3)
    inside = voxelize_mesh(cyl_v, cyl_f, dims, mode="inside", bounds=bounds, method=method)
    assert inside[3, 3].tolist() == [False, False, True, True, True, False]
    for rule in ("parity", "winding"):
        got = voxelize_mesh(cyl_v, cyl_f, dims, mode="inside", bounds=bounds, fill_rule=rule, method=method)
        assert torch.equal(got, inside)


@pytest.mark.parametrize("method", ALL)
def test_open_mesh_and_overlapping_parts(method):
    dims = (8, 8, 8)
    bounds = torch.tensor([[-0.5] * 3, [0.5] * 3], dtype=torch.float64)
    verts, faces = icosphere(2, 0.42, dtype=torch.float64)
    closed = voxelize_mesh(verts, faces, dims, mode="inside", bounds=bounds, method=method)
    # cut a cap off the top: the columns through the hole cross the mesh once
    cap = verts[faces].mean(1)[:, 2] > 0.3
    hole = float(verts[faces[cap]].reshape(-1, 3)[:, :2].norm(dim=1).max())
    radius = voxel_centers(dims, bounds)[:, :, 0, :2].norm(dim=-1)
    for rule in ("parity", "winding"):
        got = voxelize_mesh(verts, faces[~cap], dims, mode="inside", bounds=bounds, fill_rule=rule, method=method)
        assert bool((got <= closed).all())
        assert not bool(got[radius < 0.15].any())  # well inside the hole: nothing
        assert torch.equal(got[radius > hole], closed[radius > hole])  # outside it: as if closed
        assert bool(closed[radius < 0.15].any())
    # two overlapping boxes: parity leaves the overlap empty, winding fills it
    a_v, a_f = box_mesh((0.6, 0.6, 0.6), dtype=torch.float64)
    verts = torch.cat([a_v - 0.1, a_v + 0.1])
    faces = torch.cat([a_f, a_f + 8])
    parity = voxelize_mesh(verts, faces, dims, mode="inside", bounds=bounds, method=method)
    winding = voxelize_mesh(verts, faces, dims, mode="inside", bounds=bounds, fill_rule="winding", method=method)
    assert not bool(parity[4, 4, 4]) and bool(winding[4, 4, 4])
    assert bool((parity <= winding).all())


@pytest.mark.parametrize("method", ALL)
def test_batched_ragged_meshes_equal_per_item(method):
    sphere = icosphere(1, 0.45)
    box = box_mesh((0.9, 0.3, 0.5))
    soup_v, soup_f = _soup(3, 20, (1, 1, 1))
    items = [sphere, (torch.zeros(0, 3), torch.zeros(0, 3, dtype=torch.long)), box,
             ((soup_v - 0.5).float(), soup_f)]
    meshes = Meshes([v for v, _ in items], [f for _, f in items])
    per_item_bounds = torch.stack([torch.tensor([[-0.5, -0.6, -0.5], [0.5, 0.4, 0.55]]) * s
                                   for s in (1.0, 2.0, 0.8, 1.1)])
    for mode in ("surface", "solid"):
        for bounds in (None, torch.tensor([[-0.5] * 3, [0.5] * 3]), per_item_bounds):
            got = voxelize_mesh(meshes, resolution=(7, 5, 6), mode=mode, bounds=bounds, method=method)
            assert got.shape == (4, 7, 5, 6)
            cubes = bounding_cubes(meshes)
            for b, (v, f) in enumerate(items):
                frame = cubes[b] if bounds is None else (bounds if bounds.dim() == 2 else bounds[b])
                one = voxelize_mesh(v, f, (7, 5, 6), mode=mode, bounds=frame, method=method)
                assert torch.equal(got[b], one), (mode, b)
            assert not bool(got[1].any())
    assert voxelize_mesh(Meshes([], []), resolution=4, method=method).shape == (0, 4, 4, 4)


def test_bounds_none_is_the_bounding_cube():
    verts, faces = cylinder_mesh(0.2, 1.3, 10)
    verts = verts + torch.tensor([10.0, -3.0, 0.5])
    for mode in ("surface", "solid"):
        got = voxelize_mesh(verts, faces, 16, mode=mode)
        assert torch.equal(got, voxelize_mesh(verts, faces, 16, mode=mode, bounds=bounding_cubes(verts)))
        # the mesh fills the cube's longest axis, so the end layers are reached
        assert bool(got[:, :, 0].any() and got[:, :, -1].any())
    cube = bounding_cubes(verts)
    side = cube[1] - cube[0]
    assert torch.allclose(side, side[0].expand(3)) and float(side[0]) > 1.3
    assert bool((cube[0] <= verts.amin(0)).all() and (cube[1] >= verts.amax(0)).all())
    # a single point gets a small cube of its own, an empty item the unit cube
    point = torch.tensor([[1e4, 2.0, 3.0]])
    small = bounding_cubes(point)
    assert bool((small[1] > small[0]).all()) and bool((small[0] <= point[0]).all() and (small[1] >= point[0]).all())
    empty = bounding_cubes(torch.zeros(2, 3, 3), torch.tensor([0, 3]))
    assert torch.equal(empty[0], torch.tensor([[-0.5] * 3, [0.5] * 3]))


@pytest.mark.parametrize("seed", [0, 1])
def test_occupancy_to_mesh_is_closed_and_revoxelises_to_the_grid(seed):
    g = torch.Generator().manual_seed(seed)
    grid = torch.rand(2, 5, 6, 4, generator=g) < 0.45  # diagonal contacts included
    grid[1] = False
    grid[1, 1:4, 2:5, 1:3] = True  # a box: a 2-manifold sphere
    bounds = torch.tensor([[[-1.0, 0.0, 2.0], [1.5, 3.0, 4.0]], [[0.0, 0.0, 0.0], [1.0, 1.2, 0.8]]],
                          dtype=torch.float64)
    meshes = occupancy_to_mesh(grid, bounds)
    assert len(meshes) == 2
    for b in range(2):
        verts, faces = meshes.get_mesh_verts_faces(b)
        assert verts.dtype == torch.float64
        directed = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
        forward = torch.unique(directed, dim=0, return_counts=True)
        backward = torch.unique(directed.flip(1), dim=0, return_counts=True)
        assert torch.equal(forward[0], backward[0]) and torch.equal(forward[1], backward[1])
        assert len(torch.unique(verts, dim=0)) == len(verts)  # shared corners are one vertex
        tri = verts[faces]
        volume = float((tri[:, 0] * torch.linalg.cross(tri[:, 1], tri[:, 2], dim=-1)).sum() / 6)
        size = (bounds[b, 1] - bounds[b, 0]) / torch.tensor(grid.shape[1:])
        assert volume == pytest.approx(int(grid[b].sum()) * float(size.prod()), rel=1e-9)
        for method in ALL:
            for rule in ("parity", "winding"):  # winding: the faces point out
                back = voxelize_mesh(verts, faces, grid.shape[1:], mode="inside", bounds=bounds[b],
                                     fill_rule=rule, method=method)
                assert torch.equal(back, grid[b]), (method, rule)
            solid = voxelize_mesh(verts, faces, grid.shape[1:], mode="solid", bounds=bounds[b], method=method)
            surface = voxelize_mesh(verts, faces, grid.shape[1:], bounds=bounds[b], method=method)
            assert torch.equal(solid, grid[b] | surface)
    verts, faces = meshes.get_mesh_verts_faces(1)
    edges = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]).sort(1).values
    assert bool((torch.unique(edges, dim=0, return_counts=True)[1] == 2).all())
    assert len(verts) - len(torch.unique(edges, dim=0)) + len(faces) == 2  # Euler characteristic of a sphere


def test_occupancy_to_mesh_empty_full_and_default_bounds():
    grid = torch.zeros(2, 3, 3, 3, dtype=torch.bool)
    grid[1] = True
    meshes = occupancy_to_mesh(grid)
    assert meshes.num_faces_per_mesh().tolist() == [0, 6 * 9 * 2]
    verts = meshes.verts_list()[1]
    assert verts.dtype == torch.float32
    assert torch.equal(verts.amin(0), torch.full((3,), -0.5)) and torch.equal(verts.amax(0), torch.full((3,), 0.5))
    single = occupancy_to_mesh(grid[1])
    assert len(single) == 1 and single.num_faces_per_mesh().tolist() == [108]


def _naive_points(points, lengths, dims, bounds):
    grid = torch.zeros(points.shape[0], *dims, dtype=torch.bool)
    for b in range(points.shape[0]):
        lo, hi = bounds[b, 0].double(), bounds[b, 1].double()
        size = (hi - lo) / torch.tensor(dims)
        for p in points[b, : int(lengths[b])].double():
            if bool(((p >= lo) & (p <= hi)).all()):
                idx = [min(int(math.floor((p[a] - lo[a]) / size[a])), dims[a] - 1) for a in range(3)]
                grid[b, idx[0], idx[1], idx[2]] = True
    return grid


def test_voxelize_points_matches_naive_with_padding_boundaries_and_outliers():
    g = torch.Generator().manual_seed(0)
    points = torch.rand(3, 50, 3, generator=g) * 2.4 - 1.2
    points[0, :4] = torch.tensor([[1.0, 1.0, 1.0], [-1.0, -1.0, -1.0], [0.0, 0.0, 0.0], [1.0, 0.5, -1.0]])
    points[2, 10:] = float("nan")  # padding may hold anything
    lengths = torch.tensor([50, 0, 10])
    bounds = torch.tensor([[-1.0] * 3, [1.0] * 3])
    dims = (4, 5, 3)
    got = voxelize_points(points, dims, lengths, bounds)
    want = _naive_points(points, lengths, dims, bounds.expand(3, 2, 3))
    assert torch.equal(got, want)
    assert bool(got[0, -1, -1, -1]) and bool(got[0, 0, 0, 0]) and bool(got[0, 2, 2, 1])
    assert not bool(got[1].any())
    # Pointclouds and a single cloud; default bounds keep every point
    clouds = Pointclouds([points[0], points[2, :10]])
    cubes = bounding_cubes(clouds)
    auto = voxelize_points(clouds, 6)
    assert torch.equal(auto, _naive_points(clouds.points_padded(), clouds.num_points_per_cloud(), (6, 6, 6), cubes))
    assert int(auto[0].sum()) == int(voxelize_points(points[0], 6).sum())
    assert voxelize_points(points[0], 6).shape == (6, 6, 6)


def test_voxels_to_points_and_voxel_centers():
    grid = torch.zeros(3, 4, 3, 2, dtype=torch.bool)
    grid[0, 1, 2, 0] = grid[0, 3, 0, 1] = grid[0, 0, 1, 1] = True
    grid[2] = True
    bounds = torch.tensor([[[0.0, 0.0, 0.0], [4.0, 3.0, 2.0]], [[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]],
                           [[-2.0, 0.0, 0.0], [2.0, 6.0, 1.0]]], dtype=torch.float64)
    points, lengths = voxels_to_points(grid, bounds)
    assert lengths.tolist() == [3, 0, 24] and points.shape == (3, 24, 3) and points.dtype == torch.float64
    assert points[0, :3].tolist() == [[0.5, 1.5, 1.5], [1.5, 2.5, 0.5], [3.5, 0.5, 1.5]]  # index order
    assert bool((points[0, 3:] == 0).all()) and bool((points[1] == 0).all())
    centres = voxel_centers((4, 3, 2), bounds)
    assert centres.shape == (3, 4, 3, 2, 3)
    assert torch.equal(points[2], centres[2].reshape(-1, 3))
    assert torch.equal(voxelize_points(points, (4, 3, 2), lengths, bounds), grid)
    unit = voxel_centers(2)
    assert unit.dtype == torch.float32 and unit[1, 0, 1].tolist() == [0.25, -0.25, 0.25]
    assert voxel_centers((2, 1, 1), bounds[0]).tolist() == [[[[1.0, 1.5, 1.0]]], [[[3.0, 1.5, 1.0]]]]
    pts, n = voxels_to_points(grid[0])
    assert n.tolist() == [3] and pts.dtype == torch.float32
    empty = voxels_to_points(torch.zeros(0, 2, 2, 2, dtype=torch.bool))
    assert empty.points.shape == (0, 0, 3) and empty.lengths.shape == (0,)


@pytest.mark.parametrize("method", ALL)
def test_empty_and_out_of_bounds_meshes(method):
    assert not bool(voxelize_mesh(torch.zeros(0, 3), torch.zeros(0, 3, dtype=torch.long), 5, method=method).any())
    verts, faces = icosphere(0, 0.2)
    far = torch.tensor([[5.0] * 3, [6.0] * 3])
    for mode in ("surface", "solid"):
        assert not bool(voxelize_mesh(verts, faces, 5, mode=mode, bounds=far, method=method).any())
    # a mesh much larger than the bounds: surface cut off, inside filled through the whole grid
    big_v, big_f = box_mesh((10.0, 10.0, 10.0))
    inner = torch.tensor([[-0.5] * 3, [0.5] * 3])
    assert not bool(voxelize_mesh(big_v, big_f, 4, bounds=inner, method=method).any())
    assert bool(voxelize_mesh(big_v, big_f, 4, mode="solid", bounds=inner, method=method).all())


def test_float32_and_float64_vertices_agree():
    verts, faces = torus_mesh(0.3, 0.12, 16, 8, dtype=torch.float64)
    bounds = torch.tensor([[-0.5] * 3, [0.5] * 3])
    a = voxelize_mesh(verts, faces, 12, mode="solid", bounds=bounds)
    b = voxelize_mesh(verts.float(), faces, 12, mode="solid", bounds=bounds)
    assert int((a ^ b).sum()) <= 2  # only float32 rounding at voxel boundaries may differ


def test_bad_input():
    verts, faces = box_mesh()
    with pytest.raises(ValueError, match="verts"):
        voxelize_mesh(torch.tensor([[0.0, 0.0, float("nan")], [1, 0, 0], [0, 1, 0]]), torch.tensor([[0, 1, 2]]))
    with pytest.raises(ValueError, match="verts"):
        voxelize_mesh(verts.new_full((8, 3), float("inf")), faces)
    with pytest.raises(ValueError, match="resolution"):
        voxelize_mesh(verts, faces, 0)
    with pytest.raises(ValueError, match="resolution"):
        voxelize_mesh(verts, faces, (4, -1, 4))
    with pytest.raises(TypeError, match="resolution"):
        voxelize_mesh(verts, faces, 2.5)
    with pytest.raises(TypeError, match="resolution"):
        voxelize_points(torch.zeros(1, 1, 3), (4, 4))
    side = int(round((MAX_GRID_BYTES * 2) ** (1 / 3))) + 1
    with pytest.raises(ValueError, match="bytes"):
        voxelize_mesh(verts, faces, side)
    with pytest.raises(ValueError, match=str(2 * 4096 ** 3)):
        voxelize_points(torch.zeros(2, 1, 3), 4096)
    with pytest.raises(ValueError, match="voxels away"):
        voxelize_mesh(verts * 1e20, faces, 4, bounds=torch.tensor([[0.0] * 3, [1e-3] * 3]))
    with pytest.raises(ValueError, match="mode"):
        voxelize_mesh(verts, faces, mode="volume")
    with pytest.raises(ValueError, match="fill_rule"):
        voxelize_mesh(verts, faces, fill_rule="even-odd")
    with pytest.raises(ValueError, match="method"):
        voxelize_mesh(verts, faces, method="cuda")
    with pytest.raises(ValueError, match="faces"):
        voxelize_mesh(verts, faces + 8)
    with pytest.raises(TypeError, match="faces"):
        voxelize_mesh(verts)
    with pytest.raises(ValueError, match="faces must be None"):
        voxelize_mesh(Meshes([verts], [faces]), faces)
    with pytest.raises(TypeError, match="meshes"):
        voxelize_mesh([verts], faces)
    with pytest.raises(TypeError, match="verts"):
        voxelize_mesh(verts.long(), faces)
    with pytest.raises(ValueError, match="bounds"):
        voxelize_mesh(verts, faces, bounds=torch.zeros(3, 2))
    with pytest.raises(ValueError, match="max > min"):
        voxelize_mesh(verts, faces, bounds=torch.tensor([[0.0, 0, 0], [1, 0, 1]]))
    with pytest.raises(ValueError, match="bounds"):
        voxelize_mesh(verts, faces, bounds=torch.tensor([[0.0, 0, 0], [1, float("nan"), 1]]))
    with pytest.raises(ValueError, match="one \\(2, 3\\) frame per item"):
        voxelize_mesh(Meshes([verts, verts], [faces, faces]), bounds=torch.zeros(3, 2, 3))
    with pytest.raises(ValueError, match="points"):
        voxelize_points(torch.tensor([[[0.0, float("nan"), 0.0]]]))
    with pytest.raises(ValueError, match="lengths"):
        voxelize_points(torch.zeros(2, 3, 3), lengths=torch.tensor([1, 4]))
    with pytest.raises(ValueError, match="points"):
        voxelize_points(torch.zeros(2, 3, 2))
    with pytest.raises(TypeError, match="bool"):
        voxels_to_points(torch.zeros(1, 2, 2, 2))
    with pytest.raises(ValueError, match="grid"):
        occupancy_to_mesh(torch.zeros(2, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="bounds"):
        voxel_centers(3, torch.zeros(2, 2, 3))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    verts, faces = torus_mesh(0.3, 0.1, 32, 16)
    soup_v, soup_f = _soup(7, 40, (1, 1, 1))
    meshes = Meshes([verts, (soup_v - 0.5).float()], [faces, soup_f])
    for mode in ("surface", "inside", "solid"):
        cpu = voxelize_mesh(meshes, resolution=(20, 24, 16), mode=mode)
        gpu = voxelize_mesh(meshes.to("cuda"), resolution=(20, 24, 16), mode=mode)
        assert gpu.is_cuda and torch.equal(gpu.cpu(), cpu)
    points = torch.rand(2, 100, 3)
    assert torch.equal(voxelize_points(points.cuda(), 8).cpu(), voxelize_points(points, 8))
