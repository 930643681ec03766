"""sdf_grid / signed_distance: spheres (analytic up to the chordal error) and boxes (exact), the
numba path against the torch reference on random soups and procedural shapes (distances, winding
numbers, signs), grid sampling convention and margins, batches with empty meshes, open and
inverted meshes, degenerate triangles, gradients, marching cubes round trip, bad input."""
import importlib.util
import math

import pytest
import torch

from geo4g.parametric.primitives import box_mesh, icosphere
from geo4g.parametric.programs import get_program
from geo4g.structures.meshes import Meshes
from geo4g.voxels import sdf as sdf_module
from geo4g.voxels.marching_cubes import marching_cubes
from geo4g.voxels.sdf import sdf_grid, signed_distance

HAS_NUMBA = importlib.util.find_spec("numba") is not None
METHODS = ["reference", "auto"] + (["numba"] if HAS_NUMBA else [])
FAST = ["numba"] if HAS_NUMBA else []


def _box_sdf(p, half):
    q = p.abs() - half
    return q.clamp_min(0).norm(dim=-1) + q.max(dim=-1).values.clamp_max(0)


def _centres(lo, hi, dims):
    size = (hi - lo) / torch.tensor(dims, dtype=lo.dtype)
    axes = [lo[a] + (torch.arange(dims[a], dtype=lo.dtype) + 0.5) * size[a] for a in range(3)]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), -1)


def _procedural(name, seed=0):
    sample = get_program(name).sample(torch.Generator().manual_seed(seed))
    return sample.verts.double(), sample.faces


def _soup(seed, faces=30):
    """Random triangles (open, intersecting, some tiny) in [-0.5, 0.5]^3."""
    g = torch.Generator().manual_seed(seed)
    verts = torch.rand(faces * 3, 3, generator=g, dtype=torch.float64) - 0.5
    verts[3:6] = verts[0:3] + 1e-3 * verts[3:6]  # a tiny triangle
    return verts, torch.arange(faces * 3).view(faces, 3)


def _sag(verts, faces):
    """How far the faces of a mesh inscribed in a sphere about 0 come inside it (chordal error)."""
    tri = verts[faces]
    n = torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=1)
    plane = ((tri[:, 0] * n).sum(1) / n.norm(dim=1)).abs()
    return float(verts.norm(dim=1).max() - plane.min())


@pytest.mark.parametrize("method", METHODS)
def test_sphere_sign_and_magnitude_within_chordal_error(method):
    radius = 0.4
    verts, faces = icosphere(2, radius=radius, dtype=torch.float64)
    sag = _sag(verts, faces)
    g = torch.Generator().manual_seed(0)
    points = (torch.rand(400, 3, generator=g, dtype=torch.float64) - 0.5) * 1.4
    got = signed_distance(points, verts, faces, method=method)
    analytic = points.norm(dim=1) - radius
    assert got.shape == (400,)
    assert float((got - analytic).abs().max()) <= sag + 1e-12
    assert bool((got[analytic < -sag] < 0).all()) and bool((got[analytic > 0] > 0).all())

    grid = sdf_grid(Meshes([verts], [faces]), 12, bounds=torch.tensor([[-0.6] * 3, [0.6] * 3], dtype=torch.float64),
                    method=method)
    centres = _centres(torch.full((3,), -0.6, dtype=torch.float64), torch.full((3,), 0.6, dtype=torch.float64),
                       (12, 12, 12))
    assert grid.shape == (1, 12, 12, 12) and grid.dtype == torch.float64
    assert float((grid[0] - (centres.norm(dim=-1) - radius)).abs().max()) <= sag + 1e-12


@pytest.mark.parametrize("method", METHODS)
def test_box_sdf_is_exact(method):
    size = torch.tensor([0.6, 0.4, 0.8], dtype=torch.float64)
    verts, faces = box_mesh(size.tolist(), dtype=torch.float64)
    g = torch.Generator().manual_seed(1)
    points = (torch.rand(300, 3, generator=g, dtype=torch.float64) - 0.5) * 1.6
    # Points on the surface, on an edge and at a corner: distance 0.
    points[:3] = torch.tensor([[0.3, 0.0, 0.1], [0.3, 0.2, 0.0], [-0.3, -0.2, -0.4]], dtype=torch.float64)
    got = signed_distance(points, verts, faces, method=method)
    want = _box_sdf(points, size / 2)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)

    dims = (10, 7, 12)
    lo, hi = torch.tensor([-0.5, -0.4, -0.6], dtype=torch.float64), torch.tensor([0.5, 0.3, 0.6], dtype=torch.float64)
    grid = sdf_grid(Meshes([verts], [faces]), dims, bounds=torch.stack([lo, hi]), method=method)
    torch.testing.assert_close(grid[0], _box_sdf(_centres(lo, hi, dims), size / 2), rtol=0, atol=1e-12)


@pytest.mark.skipif(not HAS_NUMBA, reason="numba not installed")
@pytest.mark.parametrize("mesh", ["soup0", "soup1", "chair", "mug", "airplane"])
def test_numba_matches_reference(mesh):
    verts, faces = _soup(int(mesh[-1])) if mesh.startswith("soup") else _procedural(mesh)
    g = torch.Generator().manual_seed(7)
    points = (torch.rand(700, 3, generator=g, dtype=torch.float64) - 0.5) * 1.3
    points[:20] = verts[faces[:20, 0]] * 0.7 + verts[faces[:20, 1]] * 0.3  # on edges
    tris = verts[faces]
    want_d, _, want_w = sdf_module._reference(points, tris)
    from geo4g.voxels._kernels import sdf_numba

    closed = sdf_module._is_closed(faces)
    assert closed == (not mesh.startswith("soup"))
    for shortcut in {False, closed}:
        d, face, w = (torch.from_numpy(a) for a in sdf_numba.mesh_signed_distance(tris.numpy(), shortcut,
                                                                                 points=points.numpy()))
        torch.testing.assert_close(d, want_d, rtol=0, atol=1e-12)
        # The face found is a closest one (ties between faces sharing an edge may pick either).
        own = sdf_module._closest_points(points, tris[face, 0], tris[face, 1], tris[face, 2])
        torch.testing.assert_close((points - own).norm(dim=1), want_d, rtol=0, atol=1e-12)
        # Far nodes are summed as dipoles: the winding numbers agree to a few hundredths (off the
        # surface: on it the winding number jumps and either side's value may come out).
        off = want_d > 1e-9
        assert float((w - want_w)[off].abs().max()) < 0.05
    got = signed_distance(points, verts, faces, method="numba")
    want = signed_distance(points, verts, faces, method="reference")
    certain = (want_w.abs() - 0.5).abs() > 0.05
    torch.testing.assert_close(got[certain], want[certain], rtol=0, atol=1e-12)
    if closed:
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("method", FAST)
def test_grid_matches_reference_on_a_procedural_shape(method):
    verts, faces = _procedural("lamp")
    meshes = Meshes([verts], [faces])
    torch.testing.assert_close(sdf_grid(meshes, 14, method=method), sdf_grid(meshes, 14, method="reference"),
                               rtol=0, atol=1e-12)


@pytest.mark.skipif(not HAS_NUMBA, reason="numba not installed")
def test_numba_on_several_threads_matches_one(monkeypatch):
    from geo4g.voxels._kernels import mc_numba

    verts, faces = _procedural("chair")
    meshes = Meshes([verts], [faces])
    one = sdf_grid(meshes, 24, method="numba")
    monkeypatch.setattr(mc_numba, "workers", lambda: 3)
    torch.testing.assert_close(sdf_grid(meshes, 24, method="numba"), one, rtol=0, atol=0)


@pytest.mark.parametrize("method", METHODS)
def test_grid_samples_voxel_centres_and_default_bounds_leave_a_margin(method):
    verts, faces = box_mesh((0.6, 0.4, 0.8), dtype=torch.float64)
    verts = verts + torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)
    meshes = Meshes([verts], [faces])
    for R in (16, 6, 2):
        grid = sdf_grid(meshes, R, method=method)
        cube = sdf_module._margin_cubes(sdf_module.bounding_cubes(meshes).double(), (R, R, R))[0]
        size = float(cube[1, 0] - cube[0, 0]) / R
        torch.testing.assert_close(cube.mean(0), verts.min(0).values / 2 + verts.max(0).values / 2)
        margin = min(sdf_module.MARGIN_VOXELS, R // 4)
        assert abs((float((verts.max(0).values - verts.min(0).values).max()) / size) - (R - 2 * margin)) < 1e-4
        points = _centres(cube[0], cube[1], (R, R, R)).reshape(-1, 3)
        torch.testing.assert_close(grid[0].reshape(-1), signed_distance(points, verts, faces, method=method),
                                   rtol=0, atol=1e-12)
    grid = sdf_grid(meshes, 16, method=method)[0]
    border = torch.cat([grid[[0, -1]].reshape(-1), grid[:, [0, -1]].reshape(-1), grid[..., [0, -1]].reshape(-1)])
    assert bool((border > 0).all()) and bool((grid < 0).any())


@pytest.mark.parametrize("method", METHODS)
def test_batch_with_an_empty_mesh(method):
    sphere_v, sphere_f = icosphere(1, radius=0.3, dtype=torch.float64)
    box_v, box_f = box_mesh((0.5, 0.5, 0.5), dtype=torch.float64)
    empty_v, empty_f = torch.rand(4, 3, dtype=torch.float64), torch.zeros(0, 3, dtype=torch.long)
    meshes = Meshes([sphere_v, empty_v, box_v], [sphere_f, empty_f, box_f])
    points = torch.rand(3, 50, 3, dtype=torch.float64) - 0.5
    got = signed_distance(points, meshes, method=method)
    assert got.shape == (3, 50)
    assert bool(torch.isinf(got[1]).all()) and bool((got[1] > 0).all())
    torch.testing.assert_close(got[0], signed_distance(points[0], sphere_v, sphere_f, method=method))
    torch.testing.assert_close(got[2], _box_sdf(points[2], 0.25), rtol=0, atol=1e-12)
    shared = signed_distance(points[0], meshes, method=method)  # the same queries for every mesh
    torch.testing.assert_close(shared[0], got[0])

    bounds = torch.tensor([[-0.5] * 3, [0.5] * 3], dtype=torch.float64).expand(3, 2, 3)
    grids = sdf_grid(meshes, 6, bounds=bounds, method=method)
    assert grids.shape == (3, 6, 6, 6) and bool(torch.isinf(grids[1]).all())
    torch.testing.assert_close(grids[2], _box_sdf(_centres(bounds[0, 0], bounds[0, 1], (6, 6, 6)), 0.25),
                               rtol=0, atol=1e-12)
    no_verts = Meshes([torch.zeros(0, 3)], [torch.zeros(0, 3, dtype=torch.long)])
    assert bool(torch.isinf(sdf_grid(no_verts, 4, method=method)).all())
    assert sdf_grid(Meshes([], []), 4, method=method).shape == (0, 4, 4, 4)


@pytest.mark.parametrize("method", METHODS)
def test_open_and_inverted_meshes_keep_their_inside(method):
    verts, faces = icosphere(2, radius=0.4, dtype=torch.float64)
    g = torch.Generator().manual_seed(3)
    directions = torch.randn(200, 3, generator=g, dtype=torch.float64)
    directions = directions / directions.norm(dim=1, keepdim=True)
    radii = torch.cat([torch.full((100,), 0.15), torch.full((100,), 0.65)]).double()
    points = directions * radii[:, None]
    inside = radii < 0.4
    for mesh_faces in (faces[5:], faces[:, [0, 2, 1]]):  # five faces missing; inward-facing
        got = signed_distance(points, verts, mesh_faces, method=method)
        assert bool((got[inside] < 0).all()) and bool((got[~inside] > 0).all())


@pytest.mark.parametrize("method", METHODS)
def test_degenerate_triangles_count_as_their_edges(method):
    verts = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.5, 0.0, 0.0]], dtype=torch.float64)
    faces = torch.tensor([[0, 1, 2], [3, 3, 3]])  # collinear; a point
    points = torch.tensor([[0.5, 1.0, 0.0], [3.0, 0.0, 2.0], [-1.0, 0.0, 0.0], [0.5, 0.0, 0.0]], dtype=torch.float64)
    got = signed_distance(points, verts, faces, method=method)
    torch.testing.assert_close(got, torch.tensor([1.0, math.sqrt(5.0), 1.0, 0.0], dtype=torch.float64))


@pytest.mark.parametrize("method", METHODS)
def test_gradcheck_points_and_vertices(method):
    verts = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.1, 0.0], [0.2, 1.0, 0.1], [0.3, 0.2, 0.9]], dtype=torch.float64)
    faces = torch.tensor([[0, 2, 1], [0, 1, 3], [1, 2, 3], [0, 3, 2]])
    # Queries in face, edge and vertex regions, inside and outside, off the medial axis.
    points = torch.tensor([[0.3, 0.3, -0.4], [1.3, -0.2, -0.1], [0.25, 0.25, 0.2], [0.6, 0.7, 0.8],
                           [-0.3, -0.4, 0.1]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda p, v: signed_distance(p, v, faces, method=method),
                                     (points.clone().requires_grad_(), verts.clone().requires_grad_()))
    bounds = torch.tensor([[-0.3, -0.3, -0.3], [1.2, 1.25, 1.1]], dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda v: sdf_grid(Meshes([v], [faces]), 3, bounds=bounds, method=method), (verts.clone().requires_grad_(),))


def test_gradient_points_away_from_the_surface():
    verts, faces = box_mesh((1.0, 1.0, 1.0), dtype=torch.float64)
    points = torch.tensor([[0.9, 0.1, 0.0], [0.0, -0.2, 0.1]], dtype=torch.float64, requires_grad=True)
    signed_distance(points, verts, faces).sum().backward()
    torch.testing.assert_close(points.grad, torch.tensor([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0]], dtype=torch.float64))


def test_marching_cubes_of_an_sdf_grid_is_closed_near_the_mesh():
    verts, faces = icosphere(3, radius=0.4, dtype=torch.float64)
    R = 32
    grid = sdf_grid(Meshes([verts], [faces]), R)
    cube = sdf_module._margin_cubes(sdf_module.bounding_cubes(Meshes([verts], [faces])).double(), (R, R, R))[0]
    size = (cube[1] - cube[0]) / R
    mesh = marching_cubes(grid[0], spacing=size.tolist(), origin=(cube[0] + size / 2).tolist(),
                          gradient_direction="ascent")
    out = mesh.verts_packed()
    assert float((out.norm(dim=1) - 0.4).abs().max()) < float(size[0]) / 4
    edges = mesh.edges_packed()
    assert edges.shape[0] * 2 == mesh.faces_packed().shape[0] * 3  # closed: each edge in two faces


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    verts, faces = _procedural("mug")
    meshes = Meshes([verts.float()], [faces])
    cpu = sdf_grid(meshes, 20)
    gpu = sdf_grid(Meshes([verts.float().cuda()], [faces.cuda()]), 20)
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=1e-5)


def test_bad_input_raises_clear_errors(monkeypatch):
    verts, faces = box_mesh((1.0, 1.0, 1.0), dtype=torch.float64)
    meshes = Meshes([verts], [faces])
    points = torch.zeros(5, 3, dtype=torch.float64)
    bad = points.clone()
    bad[2, 1] = float("nan")
    with pytest.raises(ValueError, match=r"points must be finite.*\(2, 1\)"):
        signed_distance(bad, verts, faces)
    with pytest.raises(ValueError, match="verts must be finite"):
        signed_distance(points, verts * float("nan"), faces)
    with pytest.raises(TypeError, match="points and vertices must share one dtype"):
        signed_distance(points.float(), verts, faces)
    with pytest.raises(ValueError, match="points must have last dimension 3"):
        signed_distance(torch.zeros(5, 2, dtype=torch.float64), verts, faces)
    with pytest.raises(ValueError, match=r"one row of queries per mesh \(B=1\)"):
        signed_distance(torch.zeros(2, 5, 3, dtype=torch.float64), meshes)
    with pytest.raises(TypeError, match="faces .* must be given"):
        signed_distance(points, verts)
    with pytest.raises(ValueError, match=r"faces indices must lie in \[0, 8\)"):
        signed_distance(points, verts, faces + 1)
    with pytest.raises(ValueError, match="method must be one of"):
        signed_distance(points, verts, faces, method="bvh")
    with pytest.raises(TypeError, match="meshes must be a geo4g Meshes"):
        sdf_grid((verts, faces), 8)
    with pytest.raises(TypeError, match="resolution must be an int or three ints"):
        sdf_grid(meshes, 8.0)
    with pytest.raises(TypeError, match="resolution must be an int or three ints"):
        sdf_grid(meshes, True)
    with pytest.raises(ValueError, match="resolution must be >= 1"):
        sdf_grid(meshes, (8, 0, 8))
    with pytest.raises(ValueError, match="bounds must have max > min"):
        sdf_grid(meshes, 8, bounds=torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 1.0]], dtype=torch.float64))
    with pytest.raises(ValueError, match=r"bounds must have shape \(2, 3\)"):
        sdf_grid(meshes, 8, bounds=torch.zeros(3, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"one \(2, 3\) frame per mesh \(B=1\)"):
        sdf_grid(meshes, 8, bounds=torch.zeros(2, 2, 3, dtype=torch.float64))
    monkeypatch.setattr(sdf_module, "MAX_GRID_BYTES", 1 << 20)
    need = r"1 x 128 x 128 x 128 values needs 67108864 bytes \(0.06 GiB, output and working arrays\), more than"
    with pytest.raises(ValueError, match=need):
        sdf_grid(meshes, 128)
    if HAS_NUMBA:
        with pytest.raises(ValueError, match="method='numba' runs on the CPU"):
            signed_distance(points.to("meta"), verts, faces, method="numba")
