"""Tests for sample_points_from_meshes and sample_surface: shapes, samples on the surface, area weighting,
determinism, autograd, bad input."""

import pytest
import torch

from geo4g.meshes import sample_points_from_meshes
from geo4g.meshes.sample import SurfaceSamples, sample_surface
from geo4g.structures import Meshes


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def tetrahedron(dtype=torch.float64):
    verts = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype=dtype)
    faces = torch.tensor([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    return verts, faces


def unit_cube(dtype=torch.float64):
    verts = torch.tensor([[x, y, z] for x in (0.0, 1.0) for y in (0.0, 1.0) for z in (0.0, 1.0)], dtype=dtype)
    faces = torch.tensor([
        [0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5],  # x = 0, x = 1
        [0, 4, 5], [0, 5, 1], [2, 3, 7], [2, 7, 6],  # y = 0, y = 1
        [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3],  # z = 0, z = 1
    ])
    return verts, faces


def faces_containing(point, verts, faces, tol=1e-9):
    """Naive: indices of the faces whose triangle contains ``point`` (plane distance and barycentric test)."""
    out = []
    for k, (i, j, l) in enumerate(faces.tolist()):
        a, b, c = verts[i], verts[j], verts[l]
        n = torch.linalg.cross(b - a, c - a)
        area2 = float(n.norm())
        if area2 == 0:
            continue
        if abs(float((point - a) @ n)) / area2 > tol:
            continue
        # barycentric coordinates from sub-triangle areas (signed along n)
        w = [float(torch.linalg.cross(q - point, r - point) @ n) / area2 ** 2 for q, r in ((b, c), (c, a), (a, b))]
        if min(w) >= -tol:
            out.append(k)
    return out


# shapes ----------------------------------------------------------------------------------------------
def test_output_shapes_and_dtype_with_normals_and_textures():
    verts, faces = tetrahedron()
    m = Meshes([verts, verts * 2], [faces, faces[:2]], textures=[torch.rand(4, 5, dtype=torch.float64)] * 2)
    samples, normals, textures = sample_points_from_meshes(m, 7, return_normals=True, return_textures=True,
                                                           generator=gen())
    assert samples.shape == (2, 7, 3) and normals.shape == (2, 7, 3) and textures.shape == (2, 7, 5)
    assert samples.dtype == normals.dtype == textures.dtype == torch.float64
    assert isinstance(sample_points_from_meshes(m, 3, generator=gen()), torch.Tensor)
    samples, normals = sample_points_from_meshes(m, 3, return_normals=True, generator=gen())
    assert normals.shape == (2, 3, 3)
    samples, textures = sample_points_from_meshes(m, 3, return_textures=True, generator=gen())
    assert textures.shape == (2, 3, 5)


def test_default_num_samples_and_global_rng_work():
    verts, faces = tetrahedron(torch.float32)
    out = sample_points_from_meshes(Meshes([verts], [faces]))
    assert out.shape == (1, 10000, 3) and out.dtype == torch.float32


def test_num_samples_zero_gives_empty_outputs():
    verts, faces = tetrahedron()
    m = Meshes([verts], [faces], textures=[torch.rand(4, 2, dtype=torch.float64)])
    out = sample_points_from_meshes(m, 0, return_normals=True, return_textures=True)
    assert [t.shape for t in out] == [(1, 0, 3), (1, 0, 3), (1, 0, 2)]


def test_empty_batch_gives_empty_outputs():
    out = sample_points_from_meshes(Meshes([], []), 4, return_normals=True)
    assert [t.shape for t in out] == [(0, 4, 3), (0, 4, 3)]


def test_meshes_without_faces_give_zeros_and_others_are_sampled():
    verts, faces = tetrahedron()
    no_faces = torch.zeros(0, 3, dtype=torch.long)
    m = Meshes([verts + 5, verts, verts], [no_faces, faces, no_faces],
               textures=[torch.ones(4, 2, dtype=torch.float64)] * 3)
    samples, normals, textures = sample_points_from_meshes(m, 50, return_normals=True, return_textures=True,
                                                           generator=gen())
    for b in (0, 2):
        assert torch.equal(samples[b], torch.zeros(50, 3, dtype=torch.float64))
        assert torch.equal(normals[b], torch.zeros(50, 3, dtype=torch.float64))
        assert torch.equal(textures[b], torch.zeros(50, 2, dtype=torch.float64))
    assert (samples[1].norm(dim=-1) > 0).any()
    assert torch.allclose(textures[1], torch.ones(50, 2, dtype=torch.float64))
    only_empty = Meshes([verts], [no_faces])
    assert torch.equal(sample_points_from_meshes(only_empty, 5), torch.zeros(1, 5, 3, dtype=torch.float64))


# samples lie on the surface ----------------------------------------------------------------------------------
def test_samples_lie_on_the_surface_of_an_axis_aligned_cube():
    verts, faces = unit_cube()
    samples = sample_points_from_meshes(Meshes([verts], [faces]), 2000, generator=gen(1))[0]
    assert (samples >= -1e-12).all() and (samples <= 1 + 1e-12).all()
    dist_to_nearest_face_plane = torch.minimum(samples, 1 - samples).min(-1).values
    assert dist_to_nearest_face_plane.abs().max() < 1e-12
    # each of the 6 sides gets about 1/6 of the samples
    on_side = torch.stack([samples.isclose(torch.tensor(v, dtype=torch.float64), atol=1e-12)
                           for v in (0.0, 1.0)], -1).reshape(2000, 6)
    fractions = on_side.double().mean(0)
    assert torch.allclose(fractions, torch.full((6,), 1 / 6, dtype=torch.float64), atol=0.04)


def test_samples_lie_on_the_surface_of_a_tetrahedron_and_carry_its_face_normals():
    verts, faces = tetrahedron()
    verts = verts * torch.tensor([2.0, 1.0, 0.5], dtype=torch.float64) + 3.0
    m = Meshes([verts], [faces])
    samples, normals = sample_points_from_meshes(m, 200, return_normals=True, generator=gen(2))
    face_normals = m.faces_normals_packed()
    for p, n in zip(samples[0], normals[0]):
        containing = faces_containing(p, verts, faces)
        assert containing, f"sample {p.tolist()} is not on any face"
        assert any(torch.allclose(n, face_normals[k]) for k in containing)


def test_samples_and_normals_of_each_mesh_come_from_that_mesh_in_a_batch():
    verts, faces = tetrahedron()
    cube_v, cube_f = unit_cube()
    m = Meshes([verts, cube_v + 10.0, verts - 10.0], [faces, cube_f, faces.flip(-1)])
    samples, normals = sample_points_from_meshes(m, 100, return_normals=True, generator=gen(3))
    for b, (v, f, fn) in enumerate(zip(m.verts_list(), m.faces_list(), m.faces_normals_list())):
        for p, n in zip(samples[b, ::5], normals[b, ::5]):
            containing = faces_containing(p, v, f)
            assert containing, f"sample {p.tolist()} of mesh {b} is not on that mesh"
            assert any(torch.allclose(n, fn[k]) for k in containing)


# distribution ------------------------------------------------------------------------------------------------
def test_faces_are_drawn_in_proportion_to_their_area():
    # triangle A (area 1) in the plane z = 0, triangle B (area 3) in the plane z = 5
    verts = torch.tensor([[0.0, 0, 0], [2, 0, 0], [0, 1, 0], [0, 0, 5], [3, 0, 5], [0, 2, 5]], dtype=torch.float64)
    m = Meshes([verts], [torch.tensor([[0, 1, 2], [3, 4, 5]])])
    assert torch.allclose(m.faces_areas_packed(), torch.tensor([1.0, 3.0], dtype=torch.float64))
    samples = sample_points_from_meshes(m, 20000, generator=gen(4))[0]
    fraction_on_b = (samples[:, 2] > 2.5).double().mean()
    assert abs(float(fraction_on_b) - 0.75) < 0.015  # 5 standard deviations


def test_samples_are_uniform_inside_a_triangle():
    verts = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=torch.float64)
    samples = sample_points_from_meshes(Meshes([verts], [torch.tensor([[0, 1, 2]])]), 20000, generator=gen(5))[0]
    x, y = samples[:, 0], samples[:, 1]
    bary = torch.stack([1 - x - y, x, y], -1)
    assert (bary >= -1e-12).all()
    # the midpoint subdivision gives 4 triangles of equal area: 3 corners (some w > 1/2) and the centre
    corners = (bary > 0.5).double().mean(0)
    assert torch.allclose(corners, torch.full((3,), 0.25, dtype=torch.float64), atol=0.015)
    assert torch.allclose(samples.mean(0), verts.mean(0), atol=0.01)


def test_zero_area_faces_are_never_drawn_next_to_a_real_face():
    verts = torch.tensor([[0.0, 0, 0], [1, 0, 0], [2, 0, 0], [0, 0, 1], [1, 0, 1], [0, 1, 1]], dtype=torch.float64)
    faces = torch.tensor([[0, 1, 2], [3, 4, 5], [0, 0, 1]])  # faces 0 and 2 have zero area
    samples = sample_points_from_meshes(Meshes([verts], [faces]), 500, generator=gen(6))[0]
    assert torch.allclose(samples[:, 2], torch.ones(500, dtype=torch.float64))


def test_mesh_of_only_zero_area_faces_gives_finite_samples_on_them_and_zero_normals():
    verts = torch.tensor([[0.0, 0, 0], [1, 0, 0], [2, 0, 0], [3, 0, 0]], requires_grad=True)
    faces = torch.tensor([[0, 1, 2], [1, 2, 3]])
    samples, normals = sample_points_from_meshes(Meshes([verts], [faces]), 100, return_normals=True,
                                                 generator=gen(7))
    assert torch.isfinite(samples).all() and torch.isfinite(normals).all()
    assert torch.equal(samples[0, :, 1:], torch.zeros(100, 2))
    assert (samples[0, :, 0] >= 0).all() and (samples[0, :, 0] <= 3).all()
    assert torch.equal(normals, torch.zeros(1, 100, 3))
    (samples.sum() + normals.sum()).backward()
    assert torch.isfinite(verts.grad).all()


def test_huge_coordinates_give_finite_samples_on_the_surface():
    verts, faces = unit_cube(torch.float32)
    samples = sample_points_from_meshes(Meshes([verts * 1e6 + 1e6], [faces]), 500, generator=gen(8))[0]
    assert torch.isfinite(samples).all()
    local = (samples - 1e6) / 1e6
    assert torch.minimum(local, 1 - local).min(-1).values.abs().max() < 1e-5


# textures and normals ---------------------------------------------------------------------------------------
def test_textures_are_interpolated_linearly_at_each_sample():
    verts, faces = tetrahedron()
    g = gen(9)
    A = torch.randn(3, 4, generator=g, dtype=torch.float64)
    c = torch.randn(4, generator=g, dtype=torch.float64)
    m = Meshes([verts, verts * 3 - 1], [faces, faces], textures=[verts @ A + c, (verts * 3 - 1) @ A + c])
    samples, textures = sample_points_from_meshes(m, 300, return_textures=True, generator=gen(10))
    assert torch.allclose(textures, samples @ A + c, atol=1e-10)


def test_normals_are_the_face_normals_of_the_sampled_faces():
    # two triangles far apart with different normals
    verts = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [10, 0, 0], [10, 0, 1], [10, 1, 0]], dtype=torch.float64)
    m = Meshes([verts], [torch.tensor([[0, 1, 2], [3, 4, 5]])])
    samples, normals = sample_points_from_meshes(m, 400, return_normals=True, generator=gen(11))
    on_first = samples[0, :, 0] < 5
    fn = m.faces_normals_packed()
    assert 0 < int(on_first.sum()) < 400
    assert torch.allclose(normals[0, on_first], fn[0].expand(int(on_first.sum()), 3))
    assert torch.allclose(normals[0, ~on_first], fn[1].expand(int((~on_first).sum()), 3))


# determinism ----------------------------------------------------------------------------------------------------
def test_same_generator_seed_gives_the_same_samples_and_another_seed_differs():
    verts, faces = unit_cube()
    m = Meshes([verts, verts * 2], [faces, faces], textures=[verts, verts])
    a = sample_points_from_meshes(m, 64, return_normals=True, return_textures=True, generator=gen(12))
    b = sample_points_from_meshes(m, 64, return_normals=True, return_textures=True, generator=gen(12))
    c = sample_points_from_meshes(m, 64, return_normals=True, return_textures=True, generator=gen(13))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], c[0])


# autograd ----------------------------------------------------------------------------------------------------------
def test_sampled_positions_pass_gradcheck_with_a_reseeded_generator():
    verts, faces = tetrahedron()
    verts = (verts + 0.05 * torch.randn(4, 3, generator=gen(14), dtype=torch.float64)).requires_grad_(True)

    def fn(v):
        # a fresh generator per call: every gradcheck evaluation draws the same faces and barycentrics
        return sample_points_from_meshes(Meshes([v], [faces]), 6, generator=gen(15))
    assert torch.autograd.gradcheck(fn, (verts,))


def test_sampled_normals_and_textures_pass_gradcheck():
    verts, faces = tetrahedron()
    verts = (verts + 0.05 * torch.randn(4, 3, generator=gen(16), dtype=torch.float64)).requires_grad_(True)
    tex = torch.rand(4, 2, generator=gen(17), dtype=torch.float64, requires_grad=True)

    def fn(v, t):
        _, normals, textures = sample_points_from_meshes(Meshes([v], [faces], textures=[t]), 5, return_normals=True,
                                                         return_textures=True, generator=gen(18))
        return normals, textures
    assert torch.autograd.gradcheck(fn, (verts, tex))


def test_gradients_flow_to_vertices_of_a_ragged_batch_from_list_and_padded_input():
    verts, faces = tetrahedron(torch.float32)
    a = verts.clone().requires_grad_(True)
    b = (verts * 2).requires_grad_(True)
    m = Meshes([a, b, torch.zeros(1, 3)], [faces, faces[:1], torch.zeros(0, 3, dtype=torch.long)])
    sample_points_from_meshes(m, 20, generator=gen(19)).sum().backward()
    assert a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0
    # faces[:1] uses vertices 0, 2, 1 only: vertex 3 of mesh b gets no gradient
    assert torch.equal(b.grad[3], torch.zeros(3))
    # each sample is a convex combination of 3 vertices: the weights of each axis sum to the sample count
    assert torch.allclose(a.grad.sum(0), torch.full((3,), 20.0))
    padded = torch.stack([verts, verts]).requires_grad_(True)
    padded_faces = torch.full((2, 4, 3), -1)
    padded_faces[0] = faces
    padded_faces[1, 0] = faces[0]  # mesh 1: one face on its 3 valid vertices
    m = Meshes(padded, padded_faces, verts_lengths=torch.tensor([4, 3]))
    sample_points_from_meshes(m, 10, generator=gen(20)).sum().backward()
    assert torch.allclose(padded.grad.sum(1), torch.full((2, 3), 10.0))
    assert torch.equal(padded.grad[1, 3], torch.zeros(3))


# bad input -------------------------------------------------------------------------------------------------------------
def test_non_meshes_input_raises_type_error():
    with pytest.raises(TypeError, match=r"meshes must be a geo4g.structures.Meshes, got tensor of shape \(1, 4, 3\)"):
        sample_points_from_meshes(torch.zeros(1, 4, 3), 10)


@pytest.mark.parametrize("num_samples", [-1, 2.0, True, "10", None])
def test_bad_num_samples_raises_value_error_naming_it(num_samples):
    verts, faces = tetrahedron()
    with pytest.raises(ValueError, match=r"num_samples must be a non-negative int"):
        sample_points_from_meshes(Meshes([verts], [faces]), num_samples)


def test_textures_requested_of_meshes_without_textures_raise():
    verts, faces = tetrahedron()
    with pytest.raises(ValueError, match=r"return_textures=True needs meshes built with per-vertex textures"):
        sample_points_from_meshes(Meshes([verts], [faces]), 10, return_textures=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_sampling_on_cuda_with_a_cuda_generator_is_on_the_surface_and_reproducible():
    verts, faces = unit_cube()
    m = Meshes([verts, verts], [faces, faces[:2]], textures=[verts, verts]).to("cuda")
    a = sample_points_from_meshes(m, 100, return_normals=True, return_textures=True,
                                  generator=torch.Generator("cuda").manual_seed(0))
    b = sample_points_from_meshes(m, 100, return_normals=True, return_textures=True,
                                  generator=torch.Generator("cuda").manual_seed(0))
    assert all(t.device.type == "cuda" for t in a)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    samples = a[0].cpu()
    assert torch.minimum(samples, 1 - samples).min(-1).values.abs().max() < 1e-12
    assert torch.allclose(a[2], a[0])  # textures = positions


# sample_surface ------------------------------------------------------------------------------------------------------


def naive_face_normals(verts, faces):
    """Naive: one unit normal per face, a Python loop, (b - a) x (c - a) / |.|."""
    out = []
    for i, j, k in faces.tolist():
        n = torch.linalg.cross(verts[j] - verts[i], verts[k] - verts[i])
        out.append(n / n.norm())
    return torch.stack(out)


def barycentric(point, a, b, c):
    """Naive: least-squares barycentric coordinates of ``point`` in triangle abc, and the distance off its plane."""
    basis = torch.stack([b - a, c - a], 1)  # (3, 2)
    coef = torch.linalg.lstsq(basis, (point - a)[:, None]).solution[:, 0]
    off_plane = float((a + basis @ coef - point).norm())
    return torch.cat([(1 - coef.sum())[None], coef]), off_plane


def bumpy_tetrahedron():
    verts, faces = tetrahedron()
    return verts * torch.tensor([2.0, 1.0, 0.5], dtype=torch.float64) + 0.1 * torch.randn(4, 3, generator=gen(30),
                                                                                         dtype=torch.float64), faces


def test_sample_surface_points_lie_on_their_face():
    verts, faces = bumpy_tetrahedron()
    out = sample_surface(verts, faces, 300, generator=gen(31))
    assert isinstance(out, SurfaceSamples)
    assert out.points.shape == (300, 3) and out.normals.shape == (300, 3) and out.face_index.shape == (300,)
    assert out.face_index.dtype == torch.long and out.points.dtype == torch.float64
    assert set(out.face_index.tolist()) == {0, 1, 2, 3}
    for p, f in zip(out.points, out.face_index.tolist()):
        a, b, c = verts[faces[f]]
        w, off_plane = barycentric(p, a, b, c)
        assert off_plane < 1e-12
        assert float(w.min()) >= -1e-12 and float(w.sum()) == pytest.approx(1.0)


def test_sample_surface_normals_are_the_unit_face_normals():
    verts, faces = bumpy_tetrahedron()
    out = sample_surface(verts, faces, 200, generator=gen(32))
    torch.testing.assert_close(out.normals.norm(dim=1), torch.ones(200, dtype=torch.float64))
    torch.testing.assert_close(out.normals, naive_face_normals(verts, faces)[out.face_index])
    # flipping the winding flips the normals, the points stay where they were
    flipped = sample_surface(verts, faces.flip(1), 200, generator=gen(32))
    torch.testing.assert_close(flipped.normals, -out.normals)
    assert torch.equal(flipped.face_index, out.face_index)


def test_sample_surface_float32_and_int32_faces():
    verts, faces = unit_cube(torch.float32)
    out = sample_surface(verts, faces.int(), 500, generator=gen(33))
    assert out.points.dtype == out.normals.dtype == torch.float32
    assert torch.minimum(out.points, 1 - out.points).min(-1).values.abs().max() < 1e-6
    # on a cube, each normal is an axis direction
    assert torch.allclose(out.normals.abs().max(1).values, torch.ones(500))


def test_sample_surface_draws_faces_in_proportion_to_area():
    # triangle 0 has area 1, triangle 1 has area 3
    verts = torch.tensor([[0.0, 0, 0], [2, 0, 0], [0, 1, 0], [0, 0, 5], [3, 0, 5], [0, 2, 5]], dtype=torch.float64)
    faces = torch.tensor([[0, 1, 2], [3, 4, 5]])
    n = 20000
    out = sample_surface(verts, faces, n, generator=gen(34))
    counts = torch.bincount(out.face_index, minlength=2).double()
    expected = torch.tensor([0.25, 0.75], dtype=torch.float64) * n
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 16  # 1 degree of freedom: P(chi2 > 16) ~ 6e-5
    # and the points of each face are on that face's plane
    assert torch.equal(out.points[:, 2] > 2.5, out.face_index == 1)


def test_sample_surface_is_uniform_inside_a_triangle():
    verts = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=torch.float64)
    points = sample_surface(verts, torch.tensor([[0, 1, 2]]), 20000, generator=gen(35)).points
    bary = torch.stack([1 - points[:, 0] - points[:, 1], points[:, 0], points[:, 1]], -1)
    corners = (bary > 0.5).double().mean(0)
    assert torch.allclose(corners, torch.full((3,), 0.25, dtype=torch.float64), atol=0.015)
    assert torch.allclose(points.mean(0), verts.mean(0), atol=0.01)


def test_sample_surface_many_faces_match_areas():
    # a strip of 8 triangles with areas 1..8 (chi-square over 7 degrees of freedom)
    verts, faces = [], []
    for k in range(8):
        verts += [[0.0, 0.0, 3.0 * k], [k + 1.0, 0.0, 3.0 * k], [0.0, 2.0, 3.0 * k]]
        faces.append([3 * k, 3 * k + 1, 3 * k + 2])
    verts, faces = torch.tensor(verts, dtype=torch.float64), torch.tensor(faces)
    n = 36000
    counts = torch.bincount(sample_surface(verts, faces, n, generator=gen(36)).face_index, minlength=8).double()
    expected = torch.arange(1, 9, dtype=torch.float64) / 36 * n
    assert float(((counts - expected) ** 2 / expected).sum()) < 35  # P(chi2_7 > 35) ~ 1e-5


def test_sample_surface_is_reproducible_with_a_generator():
    verts, faces = bumpy_tetrahedron()
    a = sample_surface(verts, faces, 64, generator=gen(37))
    b = sample_surface(verts, faces, 64, generator=gen(37))
    c = sample_surface(verts, faces, 64, generator=gen(38))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a.points, c.points)
    torch.manual_seed(0)
    d = sample_surface(verts, faces, 64)
    torch.manual_seed(0)
    assert torch.equal(sample_surface(verts, faces, 64).points, d.points)


def test_sample_surface_points_and_normals_pass_gradcheck():
    verts, faces = bumpy_tetrahedron()
    verts = verts.clone().requires_grad_(True)

    def fn(v):
        # a fresh generator per call: every evaluation draws the same faces and barycentrics
        out = sample_surface(v, faces, 6, generator=gen(39))
        return out.points, out.normals
    assert torch.autograd.gradcheck(fn, (verts,))


def test_sample_surface_gradient_weights_are_the_barycentric_coordinates():
    verts, faces = bumpy_tetrahedron()
    verts = verts.clone().requires_grad_(True)
    out = sample_surface(verts, faces, 50, generator=gen(40))
    out.points.sum().backward()
    # each point is a convex combination of its face's vertices: the weights sum to 50 on each axis
    torch.testing.assert_close(verts.grad.sum(0), torch.full((3,), 50.0, dtype=torch.float64))


def test_sample_surface_zero_samples_gives_empty_outputs():
    verts, faces = tetrahedron()
    out = sample_surface(verts, faces, 0, generator=gen(41))
    assert out.points.shape == (0, 3) and out.normals.shape == (0, 3) and out.face_index.shape == (0,)
    assert out.points.dtype == torch.float64 and out.face_index.dtype == torch.long


def test_sample_surface_all_degenerate_faces_are_drawn_uniformly_with_zero_normals():
    verts = torch.tensor([[0.0, 0, 0], [1, 0, 0], [2, 0, 0], [5, 0, 0]], dtype=torch.float64, requires_grad=True)
    faces = torch.tensor([[0, 1, 2], [1, 2, 3], [3, 3, 3]])  # a line and a point: all of zero area
    out = sample_surface(verts, faces, 3000, generator=gen(42))
    assert torch.isfinite(out.points).all() and torch.isfinite(out.normals).all()
    assert torch.equal(out.normals, torch.zeros(3000, 3, dtype=torch.float64))
    counts = torch.bincount(out.face_index, minlength=3).double()
    assert float(((counts - 1000) ** 2 / 1000).sum()) < 16  # uniform over the 3 faces (2 degrees of freedom)
    on_point = out.points[out.face_index == 2].detach()
    torch.testing.assert_close(on_point, torch.tensor([[5.0, 0, 0]], dtype=torch.float64).expand_as(on_point))
    on_line = out.points[out.face_index < 2].detach()
    assert torch.equal(on_line[:, 1:], torch.zeros_like(on_line[:, 1:]))
    assert float(on_line[:, 0].min()) >= 0 and float(on_line[:, 0].max()) <= 5
    (out.points.sum() + out.normals.sum()).backward()
    assert torch.isfinite(verts.grad).all()


def test_sample_surface_zero_area_faces_next_to_real_ones_are_never_drawn():
    verts = torch.tensor([[0.0, 0, 0], [1, 0, 0], [2, 0, 0], [0, 0, 1], [1, 0, 1], [0, 1, 1]], dtype=torch.float64)
    faces = torch.tensor([[0, 1, 2], [3, 4, 5], [0, 0, 1], [4, 4, 4]])  # only face 1 has an area
    out = sample_surface(verts, faces, 2000, generator=gen(43))
    assert torch.equal(out.face_index, torch.ones(2000, dtype=torch.long))
    torch.testing.assert_close(out.normals, torch.tensor([0.0, 0, 1], dtype=torch.float64).expand(2000, 3))


def test_sample_surface_normal_gradient_of_a_degenerate_face_is_zero_not_nan():
    verts = torch.tensor([[0.0, 0, 0], [1, 0, 0], [2, 0, 0]], dtype=torch.float64, requires_grad=True)
    out = sample_surface(verts, torch.tensor([[0, 1, 2]]), 5, generator=gen(44))
    out.normals.sum().backward()
    assert torch.equal(verts.grad, torch.zeros(3, 3, dtype=torch.float64))


@pytest.mark.parametrize("verts, faces, num_samples, error, match", [
    (torch.zeros(4, 3), torch.zeros(0, 3, dtype=torch.long), 5, ValueError, "faces is empty"),
    (torch.zeros(4, 3), torch.tensor([[0, 1, 4]]), 5, ValueError, r"faces indices must lie in \[0, 4\).*got range \[0, 4\]"),
    (torch.zeros(4, 3), torch.tensor([[0, -1, 2]]), 5, ValueError, r"faces indices must lie in \[0, 4\)"),
    (torch.zeros(4, 3), torch.tensor([[0, 1, 2]]), -1, ValueError, "num_samples must be a non-negative int, got -1"),
    (torch.zeros(4, 3), torch.tensor([[0, 1, 2]]), 2.0, ValueError, "num_samples must be a non-negative int"),
    (torch.zeros(4, 3), torch.tensor([[0, 1, 2]]), True, ValueError, "num_samples must be a non-negative int"),
    (torch.zeros(4, 2), torch.tensor([[0, 1, 2]]), 5, ValueError, r"verts must have last dimension 3 \(V, 3\)"),
    (torch.zeros(1, 4, 3), torch.tensor([[0, 1, 2]]), 5, ValueError, r"verts must have 2 dimensions \(V, 3\)"),
    (torch.zeros(4, 3, dtype=torch.long), torch.tensor([[0, 1, 2]]), 5, TypeError,
     r"verts must be a floating point tensor \(V, 3\), got dtype torch.int64"),
    ([[0.0, 0, 0]] * 3, torch.tensor([[0, 1, 2]]), 5, TypeError, "verts must be a torch.Tensor"),
    (torch.zeros(4, 3), torch.tensor([[0.0, 1, 2]]), 5, TypeError, "faces must be an integer tensor"),
    (torch.zeros(4, 3), torch.tensor([0, 1, 2]), 5, ValueError, "faces must have 2 dimensions"),
    (torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, float("nan"), 0]]), torch.tensor([[0, 1, 2]]), 5, ValueError,
     r"verts must be finite, got 1 NaN/inf value\(s\), the first at index \(2, 1\)"),
])
def test_sample_surface_bad_input_raises_naming_the_argument(verts, faces, num_samples, error, match):
    with pytest.raises(error, match=match):
        sample_surface(verts, faces, num_samples)


# sample_meshes: faces and barycentric coordinates ---------------------------------------------------
def test_sample_meshes_face_index_and_barycentrics_rebuild_the_points_and_textures():
    from geo4g.meshes import sample_meshes
    v1, f1 = unit_cube()
    v2, f2 = tetrahedron()
    tex = [torch.rand(8, 2, dtype=torch.float64, generator=gen(1)), torch.rand(4, 2, dtype=torch.float64, generator=gen(2))]
    meshes = Meshes([v1, v2], [f1, f2], textures=tex)
    out = sample_meshes(meshes, 500, generator=gen(3))
    assert out.face_index.shape == (2, 500) and out.barycentric.shape == (2, 500, 3)
    assert torch.allclose(out.barycentric.sum(-1), torch.ones(2, 500, dtype=torch.float64))
    assert (out.barycentric >= 0).all()
    corners = meshes.faces_packed()[out.face_index]  # (2, 500, 3) packed vertex ids
    rebuilt = (out.barycentric[..., None] * meshes.verts_packed()[corners]).sum(-2)
    assert torch.allclose(rebuilt, out.points)
    rebuilt_tex = (out.barycentric[..., None] * meshes.textures_packed()[corners]).sum(-2)
    assert torch.allclose(rebuilt_tex, out.textures)
    # faces of item 0 come from the cube (packed ids 0..11), of item 1 from the tetrahedron (12..15)
    assert out.face_index[0].max() < 12 and out.face_index[1].min() >= 12
    assert torch.allclose(out.normals, meshes.faces_normals_packed()[out.face_index])


def test_sample_meshes_marks_meshes_without_faces_with_minus_one():
    from geo4g.meshes import sample_meshes
    v, f = tetrahedron()
    meshes = Meshes([v, v[:0]], [f, f[:0]])
    out = sample_meshes(meshes, 7, generator=gen(0))
    assert (out.face_index[1] == -1).all() and (out.face_index[0] >= 0).all()
    assert (out.points[1] == 0).all() and (out.barycentric[1] == 0).all()
    assert out.textures is None


def test_sample_meshes_face_counts_pass_a_chi_square_test_against_the_areas():
    # 12 faces of very different areas; counts per face against area-proportional expectation
    from scipy.stats import chisquare

    from geo4g.meshes import sample_meshes
    g = gen(11)
    verts = torch.rand(36, 3, dtype=torch.float64, generator=g) * torch.linspace(0.2, 3.0, 36, dtype=torch.float64)[:, None]
    faces = torch.arange(36).view(12, 3)
    meshes = Meshes([verts], [faces])
    n = 60000
    out = sample_meshes(meshes, n, generator=gen(12))
    counts = torch.bincount(out.face_index[0], minlength=12).double()
    areas = meshes.faces_areas_packed()
    expected = n * areas / areas.sum()
    p_value = chisquare(counts.numpy(), expected.numpy()).pvalue
    assert p_value > 1e-3
    # and a deliberately wrong expectation (uniform over faces) is rejected
    assert chisquare(counts.numpy(), torch.full((12,), n / 12.0).numpy()).pvalue < 1e-6


def test_sample_meshes_rejects_bad_input():
    from geo4g.meshes import sample_meshes
    with pytest.raises(TypeError, match="meshes"):
        sample_meshes(torch.zeros(3, 3), 4)
    v, f = tetrahedron()
    with pytest.raises(ValueError, match="num_samples"):
        sample_meshes(Meshes([v], [f]), -1)
