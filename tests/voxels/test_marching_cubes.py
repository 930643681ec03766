"""marching_cubes: numba path against the torch reference and a naive per-cell twin (identical
meshes), against scikit-image (same crossed edges, same surface), watertightness and orientation,
the sphere check at 128^3 (area and volume within 1%), batched ragged output, gradients, empty and
constant volumes, bad input."""
import importlib.util
import itertools
import math
from collections import Counter

import numpy as np
import pytest
import torch

from geo4g.voxels._mc_tables import CORNERS, EDGES, NUM_TRIANGLES, TRIANGLES
from geo4g.voxels.marching_cubes import marching_cubes

HAS_NUMBA = importlib.util.find_spec("numba") is not None
HAS_SKIMAGE = importlib.util.find_spec("skimage") is not None
METHODS = ["reference", "auto"] + (["numba"] if HAS_NUMBA else [])


def _naive(volume, level):
    """One cell at a time with the table: ``(verts (V, 3), faces (F, 3))`` numpy, vertices in order
    of first use, one per crossed grid edge."""
    vertex_of, verts, faces = {}, [], []
    D, H, W = volume.shape
    for i, j, k in itertools.product(range(D - 1), range(H - 1), range(W - 1)):
        nodes = [(i + c[0], j + c[1], k + c[2]) for c in CORNERS]
        case = sum(1 << c for c in range(8) if volume[nodes[c]] > level)
        for e in TRIANGLES[case, : NUM_TRIANGLES[case]].reshape(-1):
            a, b = sorted((nodes[EDGES[e, 0]], nodes[EDGES[e, 1]]))
            if (a, b) not in vertex_of:
                t = (level - volume[a]) / (volume[b] - volume[a])
                vertex_of[(a, b)] = len(verts)
                verts.append(np.array(a, dtype=float) + t * (np.array(b) - np.array(a)))
            faces.append(vertex_of[(a, b)])
    return np.array(verts).reshape(-1, 3), np.array(faces, dtype=np.int64).reshape(-1, 3)


def _field(kind, shape, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    if kind == "gaussian":
        return torch.randn(shape, generator=g, dtype=dtype)
    if kind == "signs":  # most cell faces ambiguous
        return torch.randint(0, 2, shape, generator=g).to(dtype) * 2 - 1
    if kind == "ties":  # many values exactly at the level 0
        return torch.randint(-1, 2, shape, generator=g).to(dtype)
    # smooth: a sum of a few Gaussian bumps minus a constant
    grid = torch.stack(torch.meshgrid(*[torch.linspace(0, 1, s, dtype=dtype) for s in shape], indexing="ij"), -1)
    centres = torch.rand(4, 3, generator=g, dtype=dtype)
    field = sum(torch.exp(-((grid - c) ** 2).sum(-1) / 0.05) for c in centres)
    return field - 0.5


def _signed_volume(verts, faces):
    v = verts[faces]
    return float((v[:, 0] * torch.cross(v[:, 1], v[:, 2], dim=1)).sum() / 6)


def _area(verts, faces):
    v = verts[faces]
    return float(torch.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0], dim=1).norm(dim=1).sum() / 2)


def _directed_edges(faces):
    return Counter((f[i], f[(i + 1) % 3]) for f in faces.tolist() for i in range(3))


def _sphere_sdf(n, radius, dtype=torch.float64):
    """Signed distance to a sphere of ``radius`` on an ``n^3`` grid over [-1, 1]^3 (negative inside)."""
    x = torch.linspace(-1, 1, n, dtype=dtype)
    return (x[:, None, None] ** 2 + x[None, :, None] ** 2 + x[None, None, :] ** 2).sqrt() - radius


@pytest.mark.parametrize("kind", ["gaussian", "signs", "ties", "smooth"])
@pytest.mark.parametrize("shape", [(2, 2, 2), (5, 7, 9), (9, 3, 6)])
def test_reference_matches_naive_twin(kind, shape):
    volume = _field(kind, shape, seed=sum(shape))
    mesh = marching_cubes(volume, method="reference")
    verts, faces = mesh.verts_packed(), mesh.faces_packed()
    want_verts, want_faces = _naive(volume.numpy(), 0.0)
    assert verts.shape == want_verts.shape and faces.shape == want_faces.shape
    # The naive twin numbers vertices in order of first use: compare faces through their coordinates.
    got = verts[faces].numpy()
    want = want_verts[want_faces]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


@pytest.mark.skipif(not HAS_NUMBA, reason="numba not installed")
@pytest.mark.parametrize("kind", ["gaussian", "signs", "ties", "smooth"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(2, 2, 2), (2, 9, 4), (11, 6, 8), (17, 17, 17)])
def test_numba_matches_reference(kind, dtype, shape):
    volume = _field(kind, shape, seed=shape[0] + len(kind), dtype=dtype)
    for level in (0.0, 0.3, -0.7):
        ref = marching_cubes(volume, level=level, method="reference")
        fast = marching_cubes(volume, level=level, method="numba")
        assert torch.equal(ref.faces_packed(), fast.faces_packed())
        assert torch.equal(ref.verts_packed(), fast.verts_packed())


@pytest.mark.skipif(not HAS_NUMBA, reason="numba not installed")
def test_numba_matches_reference_on_several_threads(monkeypatch):
    """Large enough to split the slabs over a pool of 3 threads (whatever the CPU count), and torch's
    own thread setting is left alone."""
    from geo4g.voxels._kernels import mc_numba

    volume = _field("gaussian", (70, 40, 50), seed=5)
    ref = marching_cubes(volume, level=0.2, method="reference")
    monkeypatch.setattr(mc_numba, "workers", lambda: 3)
    threads = torch.get_num_threads()
    fast = marching_cubes(volume, level=0.2, method="numba")
    assert torch.get_num_threads() == threads
    assert torch.equal(ref.faces_packed(), fast.faces_packed())
    assert torch.equal(ref.verts_packed(), fast.verts_packed())


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("kind", ["gaussian", "signs", "ties"])
def test_meshes_are_watertight_away_from_the_boundary(method, kind):
    volume = _field(kind, (12, 10, 11), seed=3)
    closed = torch.full((14, 12, 13), -1.0, dtype=volume.dtype)  # below-level border: closed surface
    closed[1:-1, 1:-1, 1:-1] = volume
    mesh = marching_cubes(closed, method=method)
    directed = _directed_edges(mesh.faces_packed())
    assert len(directed) > 0 and max(directed.values()) == 1
    assert all((q, p) in directed for (p, q) in directed)
    assert _signed_volume(mesh.verts_packed(), mesh.faces_packed()) > 0

    # Without the border the surface is open only where it leaves the volume.
    mesh = marching_cubes(volume, method=method)
    verts = mesh.verts_packed()
    directed = _directed_edges(mesh.faces_packed())
    assert max(directed.values()) == 1
    upper = torch.tensor(volume.shape, dtype=verts.dtype) - 1
    for p, q in directed:
        if (q, p) not in directed:
            ends = verts[[p, q]]
            on_boundary = ((ends == 0) | (ends == upper)).all(dim=0)  # both ends on one boundary plane
            assert bool(on_boundary.any()), (p, q, ends)


@pytest.mark.parametrize("method", METHODS)
def test_orientation_follows_gradient_direction(method):
    sdf = _sphere_sdf(24, 0.6)
    occupancy = -sdf
    outward_volume = 4 / 3 * math.pi * (0.6 * 23 / 2) ** 3  # in index units
    v_desc = _signed_volume(*_vf(marching_cubes(occupancy, method=method)))
    v_asc = _signed_volume(*_vf(marching_cubes(sdf, gradient_direction="ascent", method=method)))
    v_wrong = _signed_volume(*_vf(marching_cubes(sdf, method=method)))
    assert abs(v_desc / outward_volume - 1) < 0.02
    assert abs(v_asc / outward_volume - 1) < 0.02
    assert abs(v_wrong / outward_volume + 1) < 0.02
    # Normals point away from the centre for an outward-wound sphere.
    verts, faces = _vf(marching_cubes(sdf, gradient_direction="ascent", method=method))
    v = verts[faces]
    normals = torch.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0], dim=1)
    centre = torch.full((3,), 11.5, dtype=verts.dtype)
    assert bool(((normals * (v.mean(1) - centre)).sum(1) > 0).all())


def _vf(mesh, index=0):
    return mesh.verts_list()[index], mesh.faces_list()[index]


@pytest.mark.parametrize("method", METHODS)
def test_ascent_flips_the_winding_only(method):
    volume = _field("smooth", (10, 12, 9), seed=2)
    desc = marching_cubes(volume, method=method)
    asc = marching_cubes(volume, gradient_direction="ascent", method=method)
    assert torch.equal(desc.verts_packed(), asc.verts_packed())
    assert torch.equal(desc.faces_packed()[:, [0, 2, 1]], asc.faces_packed())


@pytest.mark.parametrize("method", METHODS)
def test_sphere_sdf_128_is_closed_with_analytic_area_and_volume(method):
    radius = 0.7
    n = 128
    sdf = _sphere_sdf(n, radius)
    step = 2 / (n - 1)
    mesh = marching_cubes(sdf, spacing=(step, step, step), origin=(-1.0, -1.0, -1.0), gradient_direction="ascent",
                          method=method)
    verts, faces = _vf(mesh)
    directed = _directed_edges(faces)
    assert max(directed.values()) == 1 and all((q, p) in directed for (p, q) in directed)
    # Euler characteristic of a sphere: V - E + F = 2.
    assert verts.shape[0] - len(directed) // 2 + faces.shape[0] == 2
    assert abs(_area(verts, faces) / (4 * math.pi * radius**2) - 1) < 0.01
    assert abs(_signed_volume(verts, faces) / (4 / 3 * math.pi * radius**3) - 1) < 0.01
    assert (verts.norm(dim=1) - radius).abs().max() < step / 10


def test_spacing_and_origin_place_the_nodes():
    volume = _field("gaussian", (6, 5, 7), seed=9)
    unit = marching_cubes(volume).verts_packed()
    moved = marching_cubes(volume, spacing=(0.5, 2.0, 3.0), origin=(1.0, -2.0, 0.25)).verts_packed()
    want = unit * torch.tensor([0.5, 2.0, 3.0], dtype=unit.dtype) + torch.tensor([1.0, -2.0, 0.25], dtype=unit.dtype)
    torch.testing.assert_close(moved, want, rtol=0, atol=1e-12)
    # Vertices sit between nodes: each has two integer coordinates in index units.
    assert bool(((unit - unit.round()).abs() < 1e-12).sum(1).ge(2).all())


@pytest.mark.skipif(not HAS_SKIMAGE, reason="scikit-image not installed")
@pytest.mark.parametrize("kind, shape", [("smooth", (20, 24, 22)), ("gaussian", (12, 10, 14))])
def test_same_surface_as_scikit_image(kind, shape):
    """The same crossed edges (our vertices are scikit-image's vertices on grid edges; it adds a few
    inside cells for its own resolution of ambiguous cells); with a below-level border
    (closed surfaces) the same area and enclosed volume where few cells are ambiguous."""
    from skimage.measure import marching_cubes as sk_marching_cubes

    volume = torch.full(tuple(s + 2 for s in shape), -1.0, dtype=torch.float64)
    volume[1:-1, 1:-1, 1:-1] = _field(kind, shape, seed=4)
    verts, faces = _vf(marching_cubes(volume, level=0.05))
    sk_verts, sk_faces, _, _ = sk_marching_cubes(volume.numpy(), level=0.05)
    sk_verts = torch.from_numpy(np.ascontiguousarray(sk_verts)).double()
    sk_faces = torch.from_numpy(np.ascontiguousarray(sk_faces, dtype=np.int64))
    sk_on_edges = sk_verts[((sk_verts - sk_verts.round()).abs() < 1e-6).sum(1) >= 2]
    assert sk_on_edges.shape[0] == verts.shape[0]
    assert float(torch.cdist(verts, sk_on_edges).min(dim=1).values.max()) < 1e-5
    assert float(torch.cdist(sk_on_edges, verts).min(dim=1).values.max()) < 1e-5
    if kind == "smooth":
        assert abs(_area(verts, faces) / _area(sk_verts, sk_faces) - 1) < 0.005
        # scikit-image winds its faces by the left-hand rule: its enclosed volume comes out negative.
        assert abs(_signed_volume(verts, faces) / -_signed_volume(sk_verts, sk_faces) - 1) < 0.005


@pytest.mark.parametrize("method", METHODS)
def test_batched_ragged_output_matches_single_volumes(method):
    volumes = torch.stack([_field("smooth", (9, 8, 10), seed=s) for s in (0, 1, 3)])
    volumes[1] = 3.0  # constant: an empty mesh in the middle of the batch
    mesh = marching_cubes(volumes, level=0.1, method=method)
    assert len(mesh) == 3
    assert mesh.num_faces_per_mesh()[1] == 0 and mesh.num_verts_per_mesh()[1] == 0
    for b in (0, 2):
        single = marching_cubes(volumes[b], level=0.1, method=method)
        assert torch.equal(mesh.verts_list()[b], single.verts_packed())
        assert torch.equal(mesh.faces_list()[b], single.faces_packed())
    assert mesh.num_verts_per_mesh()[0] != mesh.num_verts_per_mesh()[2]
    empty_batch = marching_cubes(torch.zeros(0, 4, 4, 4), method=method)
    assert len(empty_batch) == 0


@pytest.mark.parametrize("method", METHODS)
def test_level_outside_the_range_gives_an_empty_mesh(method):
    volume = _field("gaussian", (6, 6, 6), seed=1, dtype=torch.float32)
    for level in (float(volume.max()), float(volume.max()) + 1, float(volume.min()) - 1):
        mesh = marching_cubes(volume, level=level, method=method)
        assert mesh.verts_packed().shape == (0, 3) and mesh.faces_packed().shape == (0, 3)
        assert mesh.verts_packed().dtype == torch.float32
    mesh = marching_cubes(torch.zeros(3, 4, 5), method=method)
    assert mesh.num_faces_per_mesh().tolist() == [0]


@pytest.mark.parametrize("method", METHODS)
def test_gradcheck_vertex_positions(method):
    volume = _field("gaussian", (4, 5, 4), seed=11).requires_grad_(True)
    # Keep the values off the level so that small perturbations do not change the topology.
    with torch.no_grad():
        volume += torch.sign(volume) * 0.1
    weights = torch.randn(marching_cubes(volume, method=method).verts_packed().shape, dtype=torch.float64)

    def fn(v):
        return (marching_cubes(v, spacing=(0.5, 1.0, 2.0), origin=(1.0, 0.0, -1.0), method=method).verts_packed()
                * weights).sum(1)

    assert torch.autograd.gradcheck(fn, (volume,))
    level = torch.tensor(0.05, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda lv: marching_cubes(volume.detach(), level=lv, method=method).verts_packed(),
                                    (level,))


def test_gradient_moves_a_vertex_along_its_edge():
    volume = torch.tensor([-1.0, 3.0], dtype=torch.float64).repeat(2, 2, 1).requires_grad_(True)  # crosses along k
    verts = marching_cubes(volume).verts_packed()
    assert torch.allclose(verts[:, 2], torch.full((4,), 0.25, dtype=torch.float64))
    verts[:, 2].sum().backward()
    # t = (0 - v0) / (v1 - v0): dt/dv0 = -v1 / (v1 - v0)^2 = -3/16, dt/dv1 = v0 / (v1 - v0)^2 = -1/16.
    assert torch.allclose(volume.grad[..., 0], torch.full((2, 2), -3 / 16, dtype=torch.float64))
    assert torch.allclose(volume.grad[..., 1], torch.full((2, 2), -1 / 16, dtype=torch.float64))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    volume = _field("smooth", (30, 28, 26), seed=6, dtype=torch.float32)
    cpu = marching_cubes(volume, level=0.1)
    gpu = marching_cubes(volume.cuda(), level=0.1)
    assert torch.equal(cpu.faces_packed(), gpu.faces_packed().cpu())
    torch.testing.assert_close(cpu.verts_packed(), gpu.verts_packed().cpu())


def test_bad_input_raises_clear_errors():
    good = torch.zeros(4, 4, 4)
    with pytest.raises(TypeError, match="volume must be a torch.Tensor"):
        marching_cubes(np.zeros((4, 4, 4)))
    with pytest.raises(TypeError, match="volume must be a floating point tensor"):
        marching_cubes(torch.zeros(4, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="volume must have 3 or 4 dimensions"):
        marching_cubes(torch.zeros(4, 4))
    with pytest.raises(ValueError, match=r"at least 2 nodes .* got shape \(4, 1, 4\)"):
        marching_cubes(torch.zeros(4, 1, 4))
    nan = good.clone()
    nan[1, 2, 3] = float("nan")
    for method in METHODS:
        with pytest.raises(ValueError, match=r"volume must be finite.*\(1, 2, 3\)"):
            marching_cubes(nan, method=method)
        with pytest.raises(ValueError, match=r"volume must be finite.*\(1, 1, 2, 3\)"):
            marching_cubes(torch.stack([good, nan]), method=method)
    with pytest.raises(ValueError, match="level must be finite"):
        marching_cubes(good, level=float("nan"))
    with pytest.raises(TypeError, match="level must be a real number"):
        marching_cubes(good, level="0.5")
    with pytest.raises(ValueError, match="level must be a real number or a 0-dim float tensor"):
        marching_cubes(good, level=torch.tensor([0.5]))
    with pytest.raises(ValueError, match="spacing must be positive"):
        marching_cubes(good, spacing=(1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="spacing must be three real numbers"):
        marching_cubes(good, spacing=(1.0, 1.0))
    with pytest.raises(ValueError, match="origin must be finite"):
        marching_cubes(good, origin=(0.0, float("inf"), 0.0))
    with pytest.raises(ValueError, match="gradient_direction must be one of"):
        marching_cubes(good, gradient_direction="up")
    with pytest.raises(ValueError, match="method must be one of"):
        marching_cubes(good, method="lewiner")
    if HAS_NUMBA:
        with pytest.raises(ValueError, match="method='numba' runs on the CPU"):
            marching_cubes(torch.zeros(4, 4, 4, device="meta"), method="numba")
