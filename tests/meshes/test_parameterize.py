"""Tests for geo4g.meshes.parameterize: boundary loops and disk checks, Tutte embeddings, LSCM,
distortion metrics, the flat-torus map, torus images, bad input."""
import dataclasses
import math

import numpy as np
import pytest
import torch

from geo4g.meshes.parameterize import (
    CONE_POSITIONS,
    SEAM_TRANSFORMS,
    FlatTorusMap,
    angle_distortion,
    area_distortion,
    boundary_loops,
    check_disk,
    choose_cones,
    flat_torus_parameterization,
    flipped_faces,
    lscm,
    surface_to_torus_image,
    torus_image_to_surface,
    tutte_embedding,
)
from geo4g.parametric.primitives import box_mesh, icosphere, revolve_mesh, torus_mesh


# --------------------------------------------------------------------------- meshes
def grid(n=6, m=None, jitter=0.0, seed=0, dtype=torch.float64):
    """A planar ``n x m`` vertex grid on ``[0, 1]^2`` (z = 0), counter-clockwise faces; interior jittered."""
    m = m or n
    x, y = torch.meshgrid(torch.linspace(0, 1, n, dtype=dtype), torch.linspace(0, 1, m, dtype=dtype), indexing="xy")
    verts = torch.stack([x.reshape(-1), y.reshape(-1), torch.zeros(n * m, dtype=dtype)], 1)
    if jitter:
        g = torch.Generator().manual_seed(seed)
        inner = ((verts[:, 0] > 0) & (verts[:, 0] < 1) & (verts[:, 1] > 0) & (verts[:, 1] < 1))
        verts[inner, :2] += (torch.rand(int(inner.sum()), 2, generator=g, dtype=dtype) - 0.5) * jitter / n
    i, j = torch.meshgrid(torch.arange(n - 1), torch.arange(m - 1), indexing="xy")
    a = (j * n + i).reshape(-1)
    faces = torch.cat([torch.stack([a, a + 1, a + n + 1], 1), torch.stack([a, a + n + 1, a + n], 1)])
    return verts, faces


def random_disk(n=120, seed=0, height=0.4):
    """Delaunay triangulation of random points in the unit disk (boundary on the circle), lifted by a bump."""
    from scipy.spatial import Delaunay

    rng = np.random.default_rng(seed)
    k = max(12, int(2 * math.sqrt(n)))
    t = np.sort(rng.uniform(0, 2 * np.pi, k))
    ring = np.stack([np.cos(t), np.sin(t)], 1)
    r, a = np.sqrt(rng.uniform(0, 0.85, n)), rng.uniform(0, 2 * np.pi, n)
    pts = np.concatenate([ring, np.stack([r * np.cos(a), r * np.sin(a)], 1)])
    tri = Delaunay(pts).simplices
    e1, e2 = pts[tri[:, 1]] - pts[tri[:, 0]], pts[tri[:, 2]] - pts[tri[:, 0]]
    tri = np.where(((e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]) < 0)[:, None], tri[:, [0, 2, 1]], tri)
    z = height * (np.exp(-((pts - rng.uniform(-0.3, 0.3, 2)) ** 2).sum(1) / 0.2) + 0.5 * pts[:, 0] * pts[:, 1])
    verts = torch.from_numpy(np.concatenate([pts, z[:, None]], 1))
    return verts, torch.from_numpy(tri).long()


def submesh(verts, faces, keep):
    faces = faces[keep]
    used = torch.unique(faces)
    remap = torch.full((verts.shape[0],), -1, dtype=torch.long)
    remap[used] = torch.arange(used.numel())
    return verts[used], remap[faces]


def sphere_cap(subdivisions=3, height=0.1):
    v, f = icosphere(subdivisions, dtype=torch.float64)
    return submesh(v, f, v[f].mean(1)[:, 2] > height)


def half_cylinder(n_around=16, n_up=6):
    """A developable patch: 270 degrees of a cylinder, planar quads split in two."""
    angle = torch.linspace(0, 1.5 * math.pi, n_around, dtype=torch.float64)
    z = torch.linspace(-0.5, 0.5, n_up, dtype=torch.float64)
    verts, faces = grid(n_around, n_up)
    a, h = angle[verts[:, 0].mul(n_around - 1).round().long()], z[verts[:, 1].mul(n_up - 1).round().long()]
    return torch.stack([a.cos(), a.sin(), h], 1), faces


def capsule(segments=16):
    """A closed capsule (cylinder with hemispherical ends) by revolution."""
    bottom = [(0.4 * math.sin(t), -0.6 - 0.4 * math.cos(t)) for t in (0.4, 0.8, 1.2, math.pi / 2)]
    top = [(0.4 * math.cos(t), 0.6 + 0.4 * math.sin(t)) for t in (0.0, 0.37, 0.77, 1.17)]
    return revolve_mesh([(0.0, -1.0)] + bottom + top + [(0.0, 1.0)], segments, dtype=torch.float64)


def signed_areas(uv, faces):
    q = uv[faces]
    e1, e2 = q[:, 1] - q[:, 0], q[:, 2] - q[:, 0]
    return (e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]) / 2


def largest_part(verts, faces):
    """The largest connected component (by faces) of a mesh."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    f = faces.numpy()
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]]])
    n = verts.shape[0]
    label = connected_components(coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n, n)), directed=False)[1]
    face_label = label[f[:, 0]]
    return submesh(verts, faces, torch.from_numpy(face_label == np.bincount(face_label).argmax()))


# --------------------------------------------------------------------------- boundary loops
def naive_boundary_edges(faces):
    """Directed boundary edges by counting undirected edges in a dict."""
    count = {}
    for a, b, c in faces.tolist():
        for i, j in ((a, b), (b, c), (c, a)):
            count[frozenset((i, j))] = count.get(frozenset((i, j)), 0) + 1
    return {(i, j) for a, b, c in faces.tolist() for i, j in ((a, b), (b, c), (c, a)) if count[frozenset((i, j))] == 1}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_boundary_loop_follows_the_boundary_edges_of_random_disks(seed):
    verts, faces = random_disk(60, seed)
    loops = boundary_loops(faces)
    assert len(loops) == 1
    loop = loops[0].tolist()
    walked = {(loop[k], loop[(k + 1) % len(loop)]) for k in range(len(loop))}
    assert walked == naive_boundary_edges(faces)
    assert loop[0] == min(loop) and len(set(loop)) == len(loop)
    # Counter-clockwise around a counter-clockwise disk: the loop polygon has positive area.
    p = verts[loops[0], :2]
    assert float((p[:, 0] * p.roll(-1, 0)[:, 1] - p[:, 1] * p.roll(-1, 0)[:, 0]).sum()) > 0


def test_boundary_loops_of_closed_annulus_and_triangle():
    assert boundary_loops(icosphere(1)[1]) == []
    assert boundary_loops(torch.tensor([[2, 0, 1]]))[0].tolist() == [0, 1, 2]
    verts, faces = grid(5)
    hole = (verts[faces].mean(1)[:, :2] - 0.5).abs().amax(1) < 0.3
    loops = boundary_loops(faces[~hole])
    assert [loop.numel() for loop in loops] == [16, 8]
    assert {tuple(sorted(loop.tolist())) for loop in loops[1:]} == {(6, 7, 8, 11, 13, 16, 17, 18)}


def test_boundary_loop_matches_igl():
    igl = pytest.importorskip("igl")
    _, faces = random_disk(80, 3)
    ours = boundary_loops(faces)[0].tolist()
    theirs = igl.boundary_loop(faces.numpy()).tolist()
    k = theirs.index(ours[0])
    assert theirs[k:] + theirs[:k] == ours


def test_boundary_loops_reject_non_manifold_and_inconsistent_faces():
    with pytest.raises(ValueError, match="non-manifold"):
        boundary_loops(torch.tensor([[0, 1, 2], [0, 3, 4]]))  # two triangles touching at a vertex
    with pytest.raises(ValueError, match="consistently oriented"):
        boundary_loops(torch.tensor([[0, 1, 2], [0, 1, 3]]))
    with pytest.raises(ValueError, match="repeated vertex"):
        boundary_loops(torch.tensor([[0, 1, 1]]))
    with pytest.raises(ValueError, match="at least one face"):
        boundary_loops(torch.zeros(0, 3, dtype=torch.long))
    with pytest.raises(TypeError, match="integer"):
        boundary_loops(torch.zeros(1, 3))
    with pytest.raises(ValueError, match=r"last dimension 3"):
        boundary_loops(torch.zeros(1, 4, dtype=torch.long))


def test_check_disk_names_what_it_found():
    verts, faces = grid(5)
    assert check_disk(faces).numel() == 16
    with pytest.raises(ValueError, match=r"0 boundary loop.*Euler characteristic 2.*closed"):
        check_disk(icosphere(1)[1])
    hole = (verts[faces].mean(1)[:, :2] - 0.5).abs().amax(1) < 0.3
    with pytest.raises(ValueError, match=r"2 boundary loop.*Euler characteristic 0.*annulus"):
        check_disk(faces[~hole])
    with pytest.raises(ValueError, match=r"2 connected component.*each connected component"):
        check_disk(torch.cat([faces, faces + 25]))
    # A torus with one face removed: one loop, Euler characteristic -1.
    with pytest.raises(ValueError, match=r"1 boundary loop.*Euler characteristic -1.*handles"):
        check_disk(torus_mesh(1.0, 0.3, 8, 6)[1][1:])
    # Two fans touching at vertex 0: open (a bow tie), then closed (two pyramids' sides, apex to apex).
    with pytest.raises(ValueError, match="vertex 0 lies on 2 boundary fans"):
        check_disk(torch.tensor([[0, 1, 2], [0, 3, 4]]))
    f = icosphere(0)[1]
    apex_faces = f[(f == 0).any(1)]
    with pytest.raises(ValueError, match="vertex 0 joins 2 separate fans"):
        check_disk(torch.cat([apex_faces, torch.where(apex_faces == 0, 0, apex_faces + 12)]))
    with pytest.raises(ValueError, match="vertex 0 joins 2 separate fans"):
        check_disk(torch.cat([f, torch.where(f == 0, 0, f + 12)]))


# --------------------------------------------------------------------------- Tutte
@pytest.mark.parametrize("weights", ["uniform", "mean_value"])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_tutte_with_positive_weights_has_no_flips_on_random_disks(weights, seed):
    verts, faces = random_disk(150, seed, height=0.8)
    uv = tutte_embedding(verts, faces, weights=weights)
    assert int(flipped_faces(faces, uv).sum()) == 0
    assert float(signed_areas(uv, faces).min()) > 0
    # A bijection onto the polygon: the triangles cover the unit disk's inscribed polygon exactly once.
    loop = boundary_loops(faces)[0]
    p = uv[loop]
    polygon = 0.5 * float((p[:, 0] * p.roll(-1, 0)[:, 1] - p[:, 1] * p.roll(-1, 0)[:, 0]).sum())
    assert abs(float(signed_areas(uv, faces).sum()) - polygon) < 1e-10


def test_tutte_boundary_on_circle_by_arc_length_and_on_square():
    verts, faces = random_disk(80, 4)
    loop = boundary_loops(faces)[0]
    uv = tutte_embedding(verts, faces)
    b = uv[loop]
    assert torch.allclose(b.norm(dim=1), torch.ones(loop.numel(), dtype=torch.float64))
    assert torch.allclose(b[0], torch.tensor([1.0, 0.0], dtype=torch.float64))
    p = verts[loop]
    arc = (p.roll(-1, 0) - p).norm(dim=1)
    step = torch.atan2(b[:, 0] * b.roll(-1, 0)[:, 1] - b[:, 1] * b.roll(-1, 0)[:, 0], (b * b.roll(-1, 0)).sum(1))
    assert torch.allclose(step, 2 * math.pi * arc / arc.sum())
    square = tutte_embedding(verts, faces, boundary="square")[loop]
    assert float(square.abs().amax(1).sub(1).abs().max()) < 1e-12
    assert torch.allclose(square[0], torch.tensor([-1.0, -1.0], dtype=torch.float64))


@pytest.mark.parametrize("weights", ["mean_value", "cot"])
def test_tutte_with_linear_precision_reproduces_a_planar_mesh(weights):
    verts, faces = grid(7, jitter=0.6)
    uv = tutte_embedding(verts, faces, weights=weights, boundary="square")
    assert torch.allclose(uv, verts[:, :2] * 2 - 1, atol=1e-12)


def test_uniform_tutte_reproduces_a_regular_grid_but_not_a_jittered_one():
    verts, faces = grid(6)
    assert torch.allclose(tutte_embedding(verts, faces, boundary="square"), verts[:, :2] * 2 - 1, atol=1e-12)
    verts, faces = grid(6, jitter=0.6)
    assert not torch.allclose(tutte_embedding(verts, faces, boundary="square"), verts[:, :2] * 2 - 1, atol=1e-3)


def naive_weights(verts, faces, i, kind):
    """Neighbour -> weight in vertex i's average, face by face."""
    w = {}
    for f in faces.tolist():
        if i not in f:
            continue
        k = f.index(i)
        j, l = f[(k + 1) % 3], f[(k + 2) % 3]

        def angle(at, x, y):
            a, b = verts[x] - verts[at], verts[y] - verts[at]
            return math.atan2(float(torch.linalg.cross(a, b).norm()), float(a @ b))

        for near, far in ((j, l), (l, j)):
            if kind == "uniform":
                w[near] = 1.0
            elif kind == "mean_value":
                w[near] = w.get(near, 0.0) + math.tan(angle(i, j, l) / 2) / float((verts[i] - verts[near]).norm())
            else:  # the edge (i, near) is opposite the corner at far
                w[near] = w.get(near, 0.0) + 0.5 / math.tan(angle(far, i, near))
    return w


@pytest.mark.parametrize("weights", ["uniform", "mean_value", "cot"])
def test_tutte_interior_vertices_are_weighted_averages(weights):
    verts, faces = random_disk(40, 5)
    uv = tutte_embedding(verts, faces, weights=weights)
    loop = set(boundary_loops(faces)[0].tolist())
    for i in set(range(verts.shape[0])) - loop:
        w = naive_weights(verts, faces, i, weights)
        avg = sum(wj * uv[j] for j, wj in w.items()) / sum(w.values())
        assert torch.allclose(uv[i], avg, atol=1e-10)


def test_cot_tutte_matches_igl_harmonic():
    igl = pytest.importorskip("igl")
    verts, faces = sphere_cap(3)
    uv = tutte_embedding(verts, faces, weights="cot")
    loop = boundary_loops(faces)[0]
    theirs = igl.harmonic(verts.numpy(), faces.numpy(), loop.numpy(), uv[loop].numpy(), 1)
    assert np.abs(theirs - uv.numpy()).max() < 1e-10


def test_tutte_keeps_dtype_and_device(device):
    verts, faces = random_disk(50, 6)
    uv = tutte_embedding(verts.float().to(device), faces.to(device), weights="mean_value")
    assert uv.dtype == torch.float32 and uv.device.type == device.type and uv.shape == (verts.shape[0], 2)
    assert torch.allclose(uv.cpu().double(), tutte_embedding(verts, faces, weights="mean_value"), atol=1e-5)


def test_tutte_bad_input():
    verts, faces = random_disk(30, 7)
    with pytest.raises(ValueError, match="must form a disk"):
        tutte_embedding(*icosphere(1, dtype=torch.float64))
    with pytest.raises(ValueError, match="weights must be one of"):
        tutte_embedding(verts, faces, weights="harmonic")
    with pytest.raises(ValueError, match="boundary must be one of"):
        tutte_embedding(verts, faces, boundary="disk")
    bad = verts.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="verts must be finite"):
        tutte_embedding(bad, faces)
    with pytest.raises(ValueError, match="no face uses"):
        tutte_embedding(torch.cat([verts, verts[:1]]), faces)
    with pytest.raises(ValueError, match=r"verts must have last dimension 3"):
        tutte_embedding(verts[:, :2], faces)
    with pytest.raises(TypeError, match="floating point"):
        tutte_embedding(verts.long(), faces)
    flat = verts.clone()
    f0 = faces[0].tolist()
    flat[f0[2]] = (flat[f0[0]] + flat[f0[1]]) / 2
    with pytest.raises(ValueError, match="degenerate face"):
        tutte_embedding(flat, faces, weights="mean_value")
    assert tutte_embedding(flat, faces, weights="uniform").shape == (verts.shape[0], 2)
    with pytest.raises(ValueError, match="at least 4 boundary vertices"):
        tutte_embedding(verts[:3], torch.tensor([[0, 1, 2]]), boundary="square")


# --------------------------------------------------------------------------- LSCM
def similarity_residual(uv, xy):
    """Max residual of the best fit ``uv = alpha * xy + beta`` in complex numbers (a similarity)."""
    z = torch.complex(xy[:, 0], xy[:, 1])
    w = torch.complex(uv[:, 0], uv[:, 1])
    A = torch.stack([z, torch.ones_like(z)], 1)
    coef = torch.linalg.lstsq(A, w[:, None]).solution
    return float((A @ coef - w[:, None]).abs().max()), coef[0, 0]


@pytest.mark.parametrize("seed", [0, 1])
def test_lscm_reproduces_a_planar_mesh_up_to_similarity(seed):
    verts, faces = random_disk(100, seed, height=0.0)
    rot = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))[0]
    if float(torch.det(rot)) < 0:
        rot = -rot
    uv = lscm(verts @ rot.T + 0.3, faces)
    residual, alpha = similarity_residual(uv, verts[:, :2])
    assert residual < 1e-9
    assert abs(abs(complex(alpha)) - 1) < 1e-9  # the pinned chord keeps its 3-D length
    assert int(flipped_faces(faces, uv).sum()) == 0


def test_lscm_flattens_a_developable_patch_exactly():
    verts, faces = half_cylinder()
    d = angle_distortion(verts, faces, lscm(verts, faces))
    assert float(d.conformal.max()) < 1 + 1e-8 and float(d.angle_error.max()) < 1e-6


def test_lscm_has_low_angle_distortion_on_a_sphere_cap_and_beats_tutte():
    verts, faces = sphere_cap(3, height=0.0)
    uv = lscm(verts, faces)
    d = angle_distortion(verts, faces, uv)
    assert int(flipped_faces(faces, uv).sum()) == 0
    assert float(d.conformal.mean()) < 1.1 and float(d.angle_error.mean()) < 3.0
    tutte = angle_distortion(verts, faces, tutte_embedding(verts, faces))
    assert float(d.conformal.mean()) < float(tutte.conformal.mean())


def test_lscm_pins_and_matches_igl():
    verts, faces = sphere_cap(2)
    loop = boundary_loops(faces)[0]
    pinned = loop[[0, loop.numel() // 3]]
    uv = lscm(verts, faces, pinned=pinned)
    chord = float((verts[pinned[1]] - verts[pinned[0]]).norm())
    assert torch.equal(uv[pinned], torch.tensor([[0.0, 0.0], [chord, 0.0]], dtype=torch.float64))
    igl = pytest.importorskip("igl")
    theirs = igl.lscm(verts.numpy(), faces.numpy(), pinned.numpy(), uv[pinned].numpy())[0]
    assert np.abs(theirs - uv.numpy()).max() < 1e-9


def test_lscm_default_pins_the_farthest_boundary_pair():
    verts, faces = random_disk(60, 8)
    uv = lscm(verts, faces)
    loop = boundary_loops(faces)[0]
    d = torch.cdist(verts[loop], verts[loop])
    i, j = divmod(int(d.argmax()), loop.numel())
    assert float(uv[loop[min(i, j)]].norm()) == 0 or float(uv[loop[max(i, j)]].norm()) == 0
    assert abs(float((uv[loop[i]] - uv[loop[j]]).norm()) - float(d.max())) < 1e-12


def test_lscm_bad_input():
    verts, faces = random_disk(30, 9)
    with pytest.raises(ValueError, match="two distinct vertex indices"):
        lscm(verts, faces, pinned=torch.tensor([3, 3]))
    with pytest.raises(ValueError, match="two distinct vertex indices"):
        lscm(verts, faces, pinned=torch.tensor([0, 1, 2]))
    with pytest.raises(TypeError, match="pinned must be an integer tensor"):
        lscm(verts, faces, pinned=torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="must form a disk"):
        lscm(*icosphere(1, dtype=torch.float64))
    flat = verts.clone()
    f0 = faces[0].tolist()
    flat[f0[2]] = flat[f0[0]]
    with pytest.raises(ValueError, match="degenerate face"):
        lscm(flat, faces)


# --------------------------------------------------------------------------- distortion
def naive_conformal(verts, faces, uv):
    out = []
    for f in faces.tolist():
        p = verts[f].numpy()
        e1, e2 = p[1] - p[0], p[2] - p[0]
        x = e1 / np.linalg.norm(e1)
        n = np.cross(e1, e2)
        y = np.cross(n / np.linalg.norm(n), x)
        local = np.array([[e1 @ x, e2 @ x], [e1 @ y, e2 @ y]])  # columns: edges in the face frame
        q = uv[f].numpy()
        image = np.stack([q[1] - q[0], q[2] - q[0]], 1)
        s = np.linalg.svd(image @ np.linalg.inv(local), compute_uv=False)
        out.append(s[0] / s[1])
    return np.array(out)


def test_angle_distortion_matches_naive_and_known_maps():
    verts, faces = random_disk(50, 10)
    uv = tutte_embedding(verts, faces)
    d = angle_distortion(verts, faces, uv)
    assert np.allclose(d.conformal.numpy(), naive_conformal(verts, faces, uv), rtol=1e-10)
    assert bool((d.conformal >= 1).all()) and bool((d.angle_error >= 0).all())
    flat, ffaces = grid(5, jitter=0.5)
    ident = angle_distortion(flat, ffaces, flat[:, :2])
    assert torch.allclose(ident.conformal, torch.ones(ffaces.shape[0], dtype=torch.float64))
    assert float(ident.angle_error.max()) < 1e-10
    stretch = angle_distortion(flat, ffaces, flat[:, :2] * torch.tensor([2.0, 1.0], dtype=torch.float64))
    assert torch.allclose(stretch.conformal, torch.full_like(stretch.conformal, 2.0))
    scaled = area_distortion(flat, ffaces, flat[:, :2] * 3)
    assert torch.allclose(scaled, torch.ones(ffaces.shape[0], dtype=torch.float64))


def test_area_distortion_and_flips():
    verts, faces = grid(4)
    uv = verts[:, :2].clone()
    uv[5] += torch.tensor([0.2, 0.0], dtype=torch.float64)
    area = area_distortion(verts, faces, uv)
    ratio = signed_areas(uv, faces).abs() / signed_areas(uv, faces).abs().sum() * faces.shape[0]
    assert torch.allclose(area, ratio)
    mirrored = uv * torch.tensor([-1.0, 1.0], dtype=torch.float64)
    assert int(flipped_faces(faces, mirrored).sum()) == faces.shape[0]
    assert int(flipped_faces(faces, uv).sum()) == 0
    assert not bool(flipped_faces(torch.tensor([[0, 1, 2]]), torch.zeros(3, 2)).any())


def test_distortion_of_degenerate_faces_and_bad_input():
    verts = torch.tensor([[0.0, 0, 0], [1, 0, 0], [2, 0, 0], [0, 1, 0]], dtype=torch.float64)
    faces = torch.tensor([[0, 1, 2], [0, 1, 3]])
    uv = torch.tensor([[0.0, 0], [1, 0], [1, 1], [0, 1]], dtype=torch.float64)
    assert math.isinf(float(angle_distortion(verts, faces, uv).conformal[0]))
    assert math.isinf(float(area_distortion(verts, faces, uv)[0]))
    with pytest.raises(ValueError, match="one row per vertex"):
        angle_distortion(verts, faces, uv[:3])
    with pytest.raises(ValueError, match=r"uv must have last dimension 2"):
        area_distortion(verts, faces, verts)
    with pytest.raises(ValueError, match="uv must be finite"):
        flipped_faces(faces, uv * float("nan"))
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 4\)"):
        angle_distortion(verts, faces + 2, uv)


# --------------------------------------------------------------------------- flat torus
def check_flat_torus(verts, faces, m, tol=1e-9):
    """Bijective seamless map: positive areas, total area 1/2, cones and seams where documented."""
    V = verts.shape[0]
    assert isinstance(m, FlatTorusMap) and m.num_verts == V
    assert torch.equal(m.vertex_map[:V], torch.arange(V))
    assert torch.equal(m.vertex_map[m.faces], faces)
    areas = signed_areas(m.uv, m.faces)
    assert float(areas.min()) > 0 and int(flipped_faces(m.faces, m.uv).sum()) == 0
    assert abs(float(areas.sum()) - 0.5) < tol
    check_disk(m.faces)
    a, b, c, d = m.cones.tolist()
    copy = {int(o): int(p) for o, p in m.seam_pairs.tolist()}
    expect = {a: "a", b: "b", c: "c", d: "d", copy[b]: "b_copy", copy[c]: "c_copy"}
    for vertex, key in expect.items():
        assert torch.allclose(m.uv[vertex], torch.tensor(CONE_POSITIONS[key], dtype=m.uv.dtype), atol=tol)
    # Seam: every inner path vertex has one copy tied by its segment's transform.
    path = m.cut_path.tolist()
    assert path[0] == a and path[-1] == d and b in path and c in path and len(set(path)) == len(path)
    pos_b, pos_c = path.index(b), path.index(c)
    assert sorted(m.seam_pairs[:, 0].tolist()) == sorted(path[1:-1])
    for (orig, cp), sign, shift in zip(m.seam_pairs.tolist(), m.seam_signs.tolist(), m.seam_translations.tolist()):
        i = path.index(orig)
        segment = 0 if i <= pos_b else 1 if i <= pos_c else 2
        assert (sign, tuple(shift)) == (SEAM_TRANSFORMS[segment][0], SEAM_TRANSFORMS[segment][1])
        expected = sign * m.uv[orig] + torch.tensor(shift, dtype=m.uv.dtype)
        assert float((m.uv[cp] - expected).abs().max()) < 1e-8


@pytest.mark.parametrize("weights", ["cot", "mean_value", "uniform"])
def test_flat_torus_of_an_icosphere_is_bijective_and_seamless(weights):
    verts, faces = icosphere(3, dtype=torch.float64)
    m = flat_torus_parameterization(verts, faces, weights=weights)
    check_flat_torus(verts, faces, m)
    assert m.weights == weights


def test_flat_torus_of_a_capsule_a_box_and_a_procedural_part():
    verts, faces = capsule()
    check_flat_torus(verts, faces, flat_torus_parameterization(verts, faces))
    # The box's face diagonals have zero cotangent weight: the floor keeps them positive.
    verts, faces = box_mesh(dtype=torch.float64)
    check_flat_torus(verts, faces, flat_torus_parameterization(verts, faces, weights="cot"))
    from geo4g.parametric.programs import get_program

    sample = get_program("bottle").sample(torch.Generator().manual_seed(0))
    verts, faces = largest_part(sample.verts.double(), sample.faces)
    check_flat_torus(verts, faces, flat_torus_parameterization(verts, faces))


def test_flat_torus_images_tile_the_torus_once():
    """Random points of the torus lie in exactly one triangle of the cut mesh's image or its copy
    rotated by pi, modulo integer translations (naive point-in-triangle over every triangle)."""
    verts, faces = icosphere(1, dtype=torch.float64)
    m = flat_torus_parameterization(verts, faces)
    tri = torch.cat([m.uv[m.faces], 1 - m.uv[m.faces]])
    shifts = torch.tensor([[i, j] for i in (-1, 0, 1) for j in (-1, 0, 1)], dtype=torch.float64)
    tri = (tri[None] + shifts[:, None, None]).reshape(-1, 3, 2)
    points = torch.rand(400, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    r = points[:, None] - tri[None, :, 0]
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    w1 = (r[..., 0] * e2[:, 1] - r[..., 1] * e2[:, 0]) / det
    w2 = (e1[:, 0] * r[..., 1] - e1[:, 1] * r[..., 0]) / det
    inside = (w1 > 0) & (w2 > 0) & (w1 + w2 < 1)
    assert torch.equal(inside.sum(1), torch.ones(400, dtype=torch.long))


def test_flat_torus_seam_vertices_are_averages_in_the_unfolded_plane():
    """Uniform weights: every input vertex but the cones sits at the mean of its neighbours, the
    neighbours across the cut brought back by the inverse seam transform."""
    verts, faces = icosphere(2, dtype=torch.float64)
    m = flat_torus_parameterization(verts, faces, weights="uniform")
    V = verts.shape[0]
    transform = {int(cp): (s, torch.tensor(t, dtype=torch.float64))
                 for (_, cp), s, t in zip(m.seam_pairs.tolist(), m.seam_signs.tolist(), m.seam_translations.tolist())}
    cones = set(m.cones.tolist())
    neighbours = {}
    for f in m.faces.tolist():
        for k in range(3):
            neighbours.setdefault(f[k], set()).update({f[(k + 1) % 3], f[(k + 2) % 3]})
    for v in range(V):
        if v in cones:
            continue
        unfolded = {}
        for cut_vertex in [v] + [cp for cp in transform if int(m.vertex_map[cp]) == v]:
            s, t = transform.get(cut_vertex, (1.0, torch.zeros(2, dtype=torch.float64)))
            for q in neighbours[cut_vertex]:
                unfolded.setdefault(int(m.vertex_map[q]), []).append(s * (m.uv[q] - t))
        for copies in unfolded.values():  # a neighbour seen from both sides of the cut: one point
            assert all(torch.allclose(p, copies[0], atol=1e-10) for p in copies)
        mean = torch.stack([copies[0] for copies in unfolded.values()]).mean(0)
        assert torch.allclose(m.uv[v], mean, atol=1e-10)


def test_flat_torus_keeps_given_cones_and_choose_cones_spreads_them():
    verts, faces = icosphere(2, dtype=torch.float64)
    cones = torch.tensor([5, 40, 17, 100])
    m = flat_torus_parameterization(verts, faces, cones=cones)
    assert torch.equal(m.cones, cones)
    check_flat_torus(verts, faces, m)
    chosen = choose_cones(verts)
    assert torch.equal(chosen, choose_cones(verts)) and chosen.unique().numel() == 4
    d = torch.cdist(verts[chosen], verts[chosen])
    assert float(d[~torch.eye(4, dtype=torch.bool)].min()) > 1.3  # near a regular tetrahedron (1.63)
    first = int((verts - verts.mean(0)).norm(dim=1).argmax())
    assert first in chosen.tolist()


def test_flat_torus_keeps_dtype_and_device(device):
    verts, faces = icosphere(1)
    m = flat_torus_parameterization(verts.to(device), faces.to(device))
    assert m.uv.dtype == torch.float32 and m.uv.device.type == device.type
    assert m.faces.device.type == device.type and m.vertex_map.device.type == device.type
    img = surface_to_torus_image(m, verts.to(device), 16)
    assert img.device.type == device.type and img.shape == (3, 16, 16)
    ref = flat_torus_parameterization(verts.double(), faces)
    assert torch.allclose(img.cpu().double(), surface_to_torus_image(ref, verts.double(), 16), atol=1e-4)


def test_flat_torus_bad_input():
    verts, faces = icosphere(1, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"1 boundary loop.*open surface"):
        flat_torus_parameterization(*sphere_cap(1))
    with pytest.raises(ValueError, match=r"Euler characteristic 0.*genus 1"):
        flat_torus_parameterization(*torus_mesh(1.0, 0.3, 8, 6, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"2 connected component.*each connected component"):
        flat_torus_parameterization(torch.cat([verts, verts + 3]), torch.cat([faces, faces + verts.shape[0]]))
    for cones in (torch.tensor([0, 1, 2]), torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 2, 42])):
        with pytest.raises(ValueError, match="four distinct vertex indices"):
            flat_torus_parameterization(verts, faces, cones=cones)
    with pytest.raises(ValueError, match="weights must be one of"):
        flat_torus_parameterization(verts, faces, weights="harmonic")
    bad = verts.clone()
    bad[0, 0] = float("inf")
    with pytest.raises(ValueError, match="verts must be finite"):
        flat_torus_parameterization(bad, faces)
    flat = verts.clone()
    f0 = faces[0].tolist()
    flat[f0[2]] = (flat[f0[0]] + flat[f0[1]]) / 2
    with pytest.raises(ValueError, match="degenerate face"):
        flat_torus_parameterization(flat, faces)
    check_flat_torus(flat, faces, flat_torus_parameterization(flat, faces, weights="uniform"))
    with pytest.raises(ValueError, match="consistently oriented"):
        flat_torus_parameterization(verts, torch.cat([faces[:1].flip(1), faces[1:]]))
    with pytest.raises(ValueError, match=r"at least 4 vertices"):
        choose_cones(verts[:3])


def test_flat_torus_reports_cones_the_cut_cannot_join():
    """Cone 12 sits inside an icosahedron face; the cut 0 -> 5 -> 2 walls it in before reaching it."""
    verts, faces = icosphere(0, dtype=torch.float64)
    a, b, c = faces[0].tolist()
    verts = torch.cat([verts, verts[[a, b, c]].mean(0, keepdim=True) * 1.05])
    faces = torch.cat([faces[1:], torch.tensor([[a, b, 12], [b, c, 12], [c, a, 12]])])
    with pytest.raises(ValueError, match="no edge path joins cone 2 to cone 12"):
        flat_torus_parameterization(verts, faces, cones=torch.tensor([0, 5, 2, 12]))


# --------------------------------------------------------------------------- torus images
@pytest.fixture(scope="module")
def sphere_map():
    verts, faces = icosphere(3, dtype=torch.float64)
    return verts, faces, flat_torus_parameterization(verts, faces)


def naive_pixel(m, values, size, r, c):
    """Interpolate at one pixel centre by searching every triangle of both tiles and their shifts."""
    point = torch.tensor([(c + 0.5) / size, (r + 0.5) / size], dtype=torch.float64)
    for tiles in (m.uv[m.faces], 1 - m.uv[m.faces]):
        for shift in ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (1, -1), (-1, 1), (-1, -1)):
            tri = tiles + torch.tensor(shift, dtype=torch.float64)
            e1, e2, rr = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], point - tri[:, 0]
            det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
            w1 = (rr[:, 0] * e2[:, 1] - rr[:, 1] * e2[:, 0]) / det
            w2 = (e1[:, 0] * rr[:, 1] - e1[:, 1] * rr[:, 0]) / det
            hit = ((w1 >= 0) & (w2 >= 0) & (w1 + w2 <= 1)).nonzero()
            if hit.numel():
                k = int(hit[0])
                ids = m.vertex_map[m.faces[k]]
                return (1 - w1[k] - w2[k]) * values[ids[0]] + w1[k] * values[ids[1]] + w2[k] * values[ids[2]]
    raise AssertionError("pixel in no triangle")


def test_torus_image_matches_naive_interpolation(sphere_map):
    verts, _, m = sphere_map
    size = 32
    img = surface_to_torus_image(m, verts, size)
    assert img.shape == (3, size, size)
    g = torch.Generator().manual_seed(0)
    for r, c in torch.randint(0, size, (12, 2), generator=g).tolist():
        assert torch.allclose(img[:, r, c], naive_pixel(m, verts, size, r, c), atol=1e-10)


def test_torus_image_is_periodic_and_symmetric(sphere_map):
    verts, _, m = sphere_map
    img = surface_to_torus_image(m, verts[:, 2:], 128)[0]
    inner_rows = (img[1:] - img[:-1]).abs().max()
    inner_cols = (img[:, 1:] - img[:, :-1]).abs().max()
    assert float((img[0] - img[-1]).abs().max()) <= 1.5 * float(inner_rows)
    assert float((img[:, 0] - img[:, -1]).abs().max()) <= 1.5 * float(inner_cols)
    assert float(inner_rows) < 0.1 and float(inner_cols) < 0.1  # smooth: no jumps anywhere
    assert torch.allclose(img, img.flip(-1, -2), atol=1e-12)


def test_torus_round_trip_of_smooth_functions(sphere_map):
    verts, _, m = sphere_map
    values = torch.cat([verts, (3 * verts[:, :1]).sin() * verts[:, 1:2]], 1)
    back = torus_image_to_surface(surface_to_torus_image(m, values, 256), m)
    spread = values.amax(0) - values.amin(0)
    assert float(((back - values).abs().amax(0) / spread).max()) < 5e-3


def test_torus_image_batches_and_samples_bilinearly(sphere_map):
    verts, _, m = sphere_map
    batch = torch.stack([verts, 2 * verts])
    img = surface_to_torus_image(m, batch, 24)
    assert img.shape == (2, 3, 24, 24)
    assert torch.allclose(img[1], 2 * surface_to_torus_image(m, verts, 24))
    assert torch.allclose(torus_image_to_surface(torch.full((2, 24, 24), 0.7, dtype=torch.float64), m),
                          torch.full((verts.shape[0], 2), 0.7, dtype=torch.float64))
    image = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    values = torus_image_to_surface(image, m)
    assert values.shape == (2, verts.shape[0], 1)
    for v in (0, 7, 100):
        x, y = (m.uv[v] * 8 - 0.5).tolist()
        c0, r0 = math.floor(x), math.floor(y)
        fx, fy = x - c0, y - r0
        expect = sum(w * image[:, 0, r % 8, c % 8] for w, r, c in
                     (((1 - fx) * (1 - fy), r0, c0), (fx * (1 - fy), r0, c0 + 1),
                      ((1 - fx) * fy, r0 + 1, c0), (fx * fy, r0 + 1, c0 + 1)))
        assert torch.allclose(values[:, v, 0], expect)


def test_torus_image_gradients():
    verts, faces = icosphere(0, dtype=torch.float64)
    m = flat_torus_parameterization(verts, faces)
    values = torch.rand(verts.shape[0], 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: surface_to_torus_image(m, x, 6), (values,))
    image = torch.rand(2, 5, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: torus_image_to_surface(x, m), (image,))


def test_torus_image_bad_input(sphere_map):
    verts, _, m = sphere_map
    with pytest.raises(ValueError, match=r"one row per input vertex \(642\)"):
        surface_to_torus_image(m, verts[:10], 16)
    with pytest.raises(ValueError, match="size must be a positive int"):
        surface_to_torus_image(m, verts, 0)
    with pytest.raises(TypeError, match="torus_map must be a FlatTorusMap"):
        surface_to_torus_image((m.uv, m.faces), verts, 16)
    with pytest.raises(ValueError, match="must be square"):
        torus_image_to_surface(torch.zeros(3, 8, 9), m)
    with pytest.raises(ValueError, match=r"image must have 3 or 4 dimensions"):
        torus_image_to_surface(torch.zeros(8, 8), m)
    shrunk = dataclasses.replace(m, uv=m.uv * 0.5)
    with pytest.raises(ValueError, match="does not tile the torus"):
        surface_to_torus_image(shrunk, verts, 16)
