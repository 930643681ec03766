import math

import pytest
import torch
import trimesh

from geo4g.parametric import box_mesh, cone_mesh, cylinder_mesh, icosphere, revolve_mesh, torus_mesh, tube_mesh


def signed_volume(verts, faces):
    v = verts.double()[faces]
    return float(torch.linalg.det(v).sum() / 6)


def edge_face_counts(faces):
    edges = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    directed = torch.unique(edges, dim=0)  # consistent winding: no directed edge twice
    undirected = edges.sort(1).values
    _, counts = torch.unique(undirected, dim=0, return_counts=True)
    return directed, edges, counts


PRIMITIVES = {
    "box": (lambda: box_mesh((1.0, 2.0, 3.0)), 6.0),
    "icosphere": (lambda: icosphere(4, radius=2.0), 4 / 3 * math.pi * 8),
    "cylinder": (lambda: cylinder_mesh(0.5, 2.0, segments=256), math.pi * 0.25 * 2.0),
    "torus": (lambda: torus_mesh(1.0, 0.25, 256, 128), 2 * math.pi ** 2 * 1.0 * 0.25 ** 2),
}


@pytest.mark.parametrize("name", sorted(PRIMITIVES))
def test_primitive_is_closed_consistently_oriented_with_analytic_volume(name):
    make, volume = PRIMITIVES[name]
    verts, faces = make()
    assert verts.dtype == torch.float32 and faces.dtype == torch.long
    directed, edges, counts = edge_face_counts(faces)
    assert bool((counts == 2).all()), "every edge must border exactly two faces"
    assert len(directed) == edges.shape[0], "each directed edge appears once: consistent winding"
    assert signed_volume(verts, faces) == pytest.approx(volume, rel=5e-3)


def test_icosphere_counts_and_radius():
    for s in range(4):
        verts, faces = icosphere(s, radius=0.5)
        assert verts.shape == (10 * 4 ** s + 2, 3) and faces.shape == (20 * 4 ** s, 3)
        torch.testing.assert_close(verts.norm(dim=1), torch.full((verts.shape[0],), 0.5))


def test_box_extent_matches_size():
    verts, _ = box_mesh((1.0, 2.0, 4.0))
    torch.testing.assert_close(verts.amax(0) - verts.amin(0), torch.tensor([1.0, 2.0, 4.0]))


def test_dtype_is_respected():
    assert icosphere(1, dtype=torch.float64)[0].dtype == torch.float64


@pytest.mark.parametrize("call, match", [
    (lambda: box_mesh((1.0, 2.0)), "size"),
    (lambda: box_mesh((1.0, -2.0, 1.0)), r"size\[1\]"),
    (lambda: icosphere(-1), "subdivisions"),
    (lambda: icosphere(1, radius=float("nan")), "radius"),
    (lambda: cylinder_mesh(segments=2), "segments"),
    (lambda: torus_mesh(1.0, 1.5), "minor_radius"),
    (lambda: torus_mesh(major_segments=2.5), "major_segments"),
])
def test_bad_parameters_raise_naming_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# cone_mesh, revolve_mesh, tube_mesh ------------------------------------------------------------------------

def ngon_area_factor(n):
    """Area of a regular n-gon of circumradius 1: n sin(2 pi / n) / 2 (pi in the limit)."""
    return n * math.sin(2 * math.pi / n) / 2


def lathe_volume(profile, n):
    """Naive: the volume of the lathed polygon with n-gon rings, one frustum per profile step.

    Any polyhedron with all its vertices in two parallel planes has the prismatoid volume
    h (A0 + 4 Am + A1) / 6; for two n-gon rings joined by a triangle strip this gives the frustum
    formula with pi replaced by ngon_area_factor(n). Caps (steps with dz = 0) add nothing.
    """
    total = 0.0
    for (r0, z0), (r1, z1) in zip(profile[:-1], profile[1:]):
        total += (r0 * r0 + r0 * r1 + r1 * r1) * (z1 - z0) / 3
    return abs(total) * ngon_area_factor(n)


def check_solid(verts, faces):
    """Closed, consistently wound, outward: returns the (positive) enclosed volume."""
    mesh = trimesh.Trimesh(verts.double().numpy(), faces.numpy(), process=False)
    assert mesh.is_watertight, "every edge must border exactly two faces"
    assert mesh.is_winding_consistent
    assert mesh.volume > 0, "faces must point outward"
    assert signed_volume(verts, faces) == pytest.approx(mesh.volume, rel=1e-9)
    return mesh.volume


def axis_distance(verts):
    return verts[:, :2].double().norm(dim=1)


@pytest.mark.parametrize("segments", [3, 4, 7, 24])
def test_pointed_cone_counts_radius_height_and_polygonal_volume(segments):
    verts, faces = cone_mesh(0.7, 0.0, 2.0, segments, dtype=torch.float64)
    assert verts.shape == (segments + 2, 3) and faces.shape == (2 * segments, 3)
    assert faces.dtype == torch.long
    volume = check_solid(verts, faces)
    assert volume == pytest.approx(ngon_area_factor(segments) * 0.7 ** 2 * 2.0 / 3, rel=1e-12)
    assert float(axis_distance(verts).max()) == pytest.approx(0.7, rel=1e-12)
    assert float(verts[:, 2].min()) == pytest.approx(-1.0) and float(verts[:, 2].max()) == pytest.approx(1.0)
    # the apex is the only vertex at the top, on the axis
    top = verts[verts[:, 2] > 0.999]
    assert top.shape == (1, 3) and float(axis_distance(top)) == 0.0


def test_cone_volume_converges_to_the_analytic_value():
    r, h = 0.5, 1.5
    exact = math.pi * r * r * h / 3
    errors = []
    for n in (16, 64, 256):
        volume = check_solid(*cone_mesh(r, 0.0, h, n, dtype=torch.float64))
        assert volume < exact  # the inscribed n-gon loses area
        errors.append(exact - volume)
    # the polygon's area error is O(1 / n^2): 4 times more segments, about 16 times less error
    assert errors[0] / errors[1] == pytest.approx(16, rel=0.02) and errors[1] / errors[2] == pytest.approx(16, rel=0.02)
    assert errors[-1] / exact < 1e-3


def test_frustum_counts_radii_and_volume():
    n, r0, r1, h = 20, 0.6, 0.25, 1.2
    verts, faces = cone_mesh(r0, r1, h, n, dtype=torch.float64)
    assert verts.shape == (2 * n + 2, 3) and faces.shape == (4 * n, 3)
    volume = check_solid(verts, faces)
    assert volume == pytest.approx(ngon_area_factor(n) * h * (r0 * r0 + r0 * r1 + r1 * r1) / 3, rel=1e-12)
    dist = axis_distance(verts)
    bottom, top = verts[:, 2] < 0, verts[:, 2] > 0
    assert float(dist[bottom].max()) == pytest.approx(r0) and float(dist[top].max()) == pytest.approx(r1)
    # an inverted frustum (wider on top) is a solid too
    assert check_solid(*cone_mesh(0.1, 0.9, 0.5, n, dtype=torch.float64)) == pytest.approx(
        ngon_area_factor(n) * 0.5 * (0.01 + 0.09 + 0.81) / 3, rel=1e-12)


def test_cone_defaults_and_dtype():
    verts, faces = cone_mesh()
    assert verts.dtype == torch.float32 and faces.dtype == torch.long
    assert verts.shape == (26, 3) and faces.shape == (48, 3)
    assert cone_mesh(dtype=torch.float64)[0].dtype == torch.float64
    torch.testing.assert_close(verts, cone_mesh(dtype=torch.float64)[0].float())


def test_cylinder_by_revolving_a_rectangle_profile():
    n, r, h = 32, 0.4, 1.5
    verts, faces = revolve_mesh([(r, 0.0), (r, h)], n, dtype=torch.float64)
    # both ends are off the axis: 2 rings and 2 cap centres
    assert verts.shape == (2 * n + 2, 3) and faces.shape == (4 * n, 3)
    volume = check_solid(verts, faces)
    assert volume == pytest.approx(ngon_area_factor(n) * r * r * h, rel=1e-12)
    assert volume == pytest.approx(math.pi * r * r * h, rel=0.01)
    rings = verts[:2 * n]
    torch.testing.assert_close(axis_distance(rings), torch.full((2 * n,), r, dtype=torch.float64))
    # the explicit rectangle (closed through the axis at both ends) is the same solid
    closed = revolve_mesh([(0.0, 0.0), (r, 0.0), (r, h), (0.0, h)], n, dtype=torch.float64)
    assert check_solid(*closed) == pytest.approx(volume, rel=1e-12)


@pytest.mark.parametrize("profile", [
    [(0.0, 0.0), (1.0, 0.5), (0.8, 1.0), (0.3, 1.4), (0.0, 1.5)],  # axis point at both ends
    [(0.0, 0.0), (1.0, 0.2), (1.0, 1.0)],  # axis point at the start only: the top gets a cap
    [(1.0, 0.0), (0.6, 0.7), (0.0, 1.0)],  # axis point at the end only: the bottom gets a cap
    [(0.5, 0.0), (1.0, 0.3), (0.4, 0.9), (0.7, 1.2)],  # no axis point: two caps
    [(0.2, 0.0), (1.0, 0.0), (1.0, 0.5), (0.2, 0.5)],  # a washer-like step with horizontal profile parts
])
@pytest.mark.parametrize("reverse", [False, True])
def test_revolved_profiles_are_outward_solids_with_the_polygonal_volume(profile, reverse):
    n = 12
    prof = profile[::-1] if reverse else profile
    verts, faces = revolve_mesh(prof, n, dtype=torch.float64)
    off_axis = sum(r > 0 for r, _ in profile)
    assert verts.shape == (off_axis * n + 2, 3) and faces.shape == (2 * off_axis * n, 3)
    # the naive volume on the profile closed through the axis (caps add nothing to it)
    closed = [(0.0, profile[0][1])] + list(profile) + [(0.0, profile[-1][1])]
    assert check_solid(verts, faces) == pytest.approx(lathe_volume(closed, n), rel=1e-12)
    assert float(axis_distance(verts).max()) == pytest.approx(max(r for r, _ in profile), rel=1e-12)
    zs = [z for _, z in profile]
    assert float(verts[:, 2].min()) == pytest.approx(min(zs)) and float(verts[:, 2].max()) == pytest.approx(max(zs))


def test_revolve_faces_look_away_from_the_inside_whichever_way_the_profile_is_traced():
    profile = [(0.0, 0.0), (1.0, 0.5), (0.5, 1.0), (0.0, 1.2)]
    up = revolve_mesh(profile, 10, dtype=torch.float64)
    down = revolve_mesh(profile[::-1], 10, dtype=torch.float64)
    for verts, faces in (up, down):
        a, b, c = verts[faces].unbind(1)
        normal = torch.linalg.cross(b - a, c - a)
        centre = (a + b + c) / 3
        # the solid is star-shaped about its axis point at mid height: every face looks away from it
        assert bool(((normal * (centre - torch.tensor([0.0, 0.0, 0.6], dtype=torch.float64))).sum(1) > 0).all())


def test_revolve_accepts_a_tensor_profile_and_respects_dtype():
    profile = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    verts, faces = revolve_mesh(profile, 5)
    assert verts.dtype == torch.float32 and faces.dtype == torch.long
    verts64, faces64 = revolve_mesh(profile, 5, dtype=torch.float64)
    assert verts64.dtype == torch.float64 and torch.equal(faces, faces64)
    torch.testing.assert_close(verts, verts64.float())


def test_straight_tube_counts_radius_and_prism_volume():
    n, r = 12, 0.1
    path = [(0.0, 0.0, 0.0), (0.0, 0.0, 0.5), (0.0, 0.0, 2.0)]
    verts, faces = tube_mesh(path, r, n, dtype=torch.float64)
    k = len(path)
    assert verts.shape == (k * n + 2, 3) and faces.shape == (2 * k * n, 3)
    volume = check_solid(verts, faces)
    assert volume == pytest.approx(ngon_area_factor(n) * r * r * 2.0, rel=1e-12)
    assert volume == pytest.approx(math.pi * r * r * 2.0, rel=0.05)
    torch.testing.assert_close(axis_distance(verts[:k * n]), torch.full((k * n,), r, dtype=torch.float64))
    # the cap centres are the path's ends
    torch.testing.assert_close(verts[k * n:], torch.tensor([path[0], path[-1]], dtype=torch.float64))


@pytest.mark.parametrize("direction", [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, -1.0), (1.0, -2.0, 0.5)])
def test_straight_tube_in_any_direction_has_rings_of_its_radius_around_the_path(direction):
    n, r, length = 9, 0.2, 3.0
    d = torch.tensor(direction, dtype=torch.float64)
    d = d / d.norm()
    path = torch.stack([d * 0.0, d * 1.0, d * length]) + torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    verts, faces = tube_mesh(path, r, n, dtype=torch.float64)
    assert check_solid(verts, faces) == pytest.approx(ngon_area_factor(n) * r * r * length, rel=1e-12)
    rings = verts[:3 * n].reshape(3, n, 3) - path[:, None]
    torch.testing.assert_close(rings.norm(dim=-1), torch.full((3, n), r, dtype=torch.float64))
    torch.testing.assert_close(rings @ d, torch.zeros(3, n, dtype=torch.float64), atol=1e-12, rtol=0)
    # no twist along a straight path: every ring is a translate of the first
    torch.testing.assert_close(rings[1:], rings[:1].expand(2, n, 3))


def test_tapered_tube_radii_and_frustum_volume():
    n, radii = 16, [0.3, 0.2, 0.05]
    path = [(0.0, 0.0, 0.0), (1.0, 0.0, 0.0), (3.0, 0.0, 0.0)]
    verts, faces = tube_mesh(path, radii, n, dtype=torch.float64)
    expected = ngon_area_factor(n) / 3 * (1.0 * (0.09 + 0.06 + 0.04) + 2.0 * (0.04 + 0.01 + 0.0025))
    assert check_solid(verts, faces) == pytest.approx(expected, rel=1e-12)
    rings = verts[:3 * n].reshape(3, n, 3) - torch.tensor(path, dtype=torch.float64)[:, None]
    torch.testing.assert_close(rings.norm(dim=-1), torch.tensor(radii, dtype=torch.float64)[:, None].expand(3, n))
    # a tensor of radii works the same, and a one-element radius is a constant one
    torch.testing.assert_close(tube_mesh(path, torch.tensor(radii), n, dtype=torch.float64)[0], verts)
    torch.testing.assert_close(tube_mesh(path, [0.1], n)[0], tube_mesh(path, 0.1, n)[0])


def _rodrigues(v, axis, angle):
    """Naive: rotate v by angle about the unit axis."""
    return v * math.cos(angle) + torch.linalg.cross(axis, v) * math.sin(angle) + axis * (axis @ v) * (1 - math.cos(angle))


def test_tube_turning_90_degrees_twice_does_not_twist():
    # x, then y, then z: two right-angle bends in different planes
    path = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [1.0, 1.0, 1.0]], dtype=torch.float64)
    n, r = 8, 0.1
    verts, faces = tube_mesh(path, r, n, dtype=torch.float64)
    volume = check_solid(verts, faces)
    # the corner rings (radius r across the bisector plane) pinch the tube: less than the straight prism
    assert 0.7 * ngon_area_factor(n) * r * r * 3 < volume < ngon_area_factor(n) * r * r * 3
    edges = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    assert float((verts[edges[:, 0]] - verts[edges[:, 1]]).norm(dim=1).min()) > 0.5 * 2 * r * math.sin(math.pi / n)
    a, b, c = verts[faces].unbind(1)
    assert float(torch.linalg.cross(b - a, c - a).norm(dim=1).min()) > 1e-4
    # each ring: a regular n-gon of radius r centred on its path point, normal to the bisector tangent
    rings = verts[:4 * n].reshape(4, n, 3) - path[:, None]
    step = path[1:] - path[:-1]
    step = step / step.norm(dim=1, keepdim=True)
    tangent = torch.cat([step[:1], step[:-1] + step[1:], step[-1:]])
    tangent = tangent / tangent.norm(dim=1, keepdim=True)
    torch.testing.assert_close(rings.norm(dim=-1), torch.full((4, n), r, dtype=torch.float64))
    torch.testing.assert_close((rings * tangent[:, None]).sum(-1), torch.zeros(4, n, dtype=torch.float64),
                               atol=1e-12, rtol=0)
    side = (rings - rings.roll(1, dims=1)).norm(dim=-1)
    torch.testing.assert_close(side, torch.full((4, n), 2 * r * math.sin(math.pi / n), dtype=torch.float64))
    # parallel transport: ring k + 1 is ring k turned by the smallest rotation between their tangents
    for k in range(3):
        axis = torch.linalg.cross(tangent[k], tangent[k + 1])
        angle = math.atan2(float(axis.norm()), float(tangent[k] @ tangent[k + 1]))
        turned = torch.stack([_rodrigues(p, axis / axis.norm(), angle) for p in rings[k]])
        torch.testing.assert_close(rings[k + 1], turned, atol=1e-12, rtol=0)


def test_tube_along_a_smooth_helix_is_a_solid_near_the_swept_volume():
    t = torch.linspace(0, 2 * math.pi, 200, dtype=torch.float64)
    path = torch.stack([t.cos(), t.sin(), 0.3 * t], 1)
    length = float((path[1:] - path[:-1]).norm(dim=1).sum())
    verts, faces = tube_mesh(path, 0.05, 24, dtype=torch.float64)
    assert verts.shape == (200 * 24 + 2, 3) and faces.shape == (2 * 200 * 24, 3)
    assert check_solid(verts, faces) == pytest.approx(ngon_area_factor(24) * 0.05 ** 2 * length, rel=2e-3)
    # no twist builds up: every ring's first vertex stays close to where it was one step before
    rings = verts[:200 * 24].reshape(200, 24, 3)
    jump = (rings[1:] - rings[:-1]).norm(dim=-1)
    assert float(jump.max()) < 2 * float((path[1:] - path[:-1]).norm(dim=1).max())


def test_tube_dtype_and_tensor_path():
    path = torch.tensor([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    verts, faces = tube_mesh(path)
    assert verts.dtype == torch.float32 and faces.dtype == torch.long
    assert verts.shape == (2 * 12 + 2, 3) and faces.shape == (48, 3)
    assert tube_mesh(path, dtype=torch.float64)[0].dtype == torch.float64


NAN = float("nan")


@pytest.mark.parametrize("call, match", [
    # shapes
    (lambda: revolve_mesh([(0.0, 0.0, 0.0), (1.0, 1.0, 1.0)]), r"profile must have shape \(K, 2\), got \(2, 3\)"),
    (lambda: revolve_mesh([0.0, 1.0]), r"profile must have shape \(K, 2\)"),
    (lambda: revolve_mesh([(1.0, 0.0)]), "profile needs at least 2 points"),
    (lambda: tube_mesh([(0.0, 0.0), (1.0, 1.0)]), r"path must have shape \(K, 3\), got \(2, 2\)"),
    (lambda: tube_mesh([(0.0, 0.0, 0.0)]), "path needs at least 2 points"),
    (lambda: tube_mesh([(0.0, 0.0, 0.0), (0.0, 0.0, 1.0)], [0.1, 0.2, 0.3]), r"radius .*shape \(2,\).*got shape \(3,\)"),
    (lambda: tube_mesh([(0.0, 0.0, 0.0), (0.0, 0.0, 1.0)], [[0.1], [0.2]]), r"radius .*got shape \(2, 1\)"),
    # NaN / inf
    (lambda: revolve_mesh([(NAN, 0.0), (1.0, 1.0)]), "profile holds NaN"),
    (lambda: revolve_mesh([(1.0, 0.0), (1.0, float("inf"))]), "profile holds NaN or infinite"),
    (lambda: tube_mesh([(0.0, NAN, 0.0), (0.0, 0.0, 1.0)]), "path holds NaN"),
    (lambda: tube_mesh([(0.0, 0.0, 0.0), (0.0, 0.0, 1.0)], NAN), "radius"),
    (lambda: tube_mesh([(0.0, 0.0, 0.0), (0.0, 0.0, 1.0)], [0.1, NAN]), "radius"),
    (lambda: cone_mesh(NAN), "radius_bottom"),
    (lambda: cone_mesh(0.5, NAN), "radius_top"),
    (lambda: cone_mesh(0.5, 0.0, NAN), "height"),
    # negative / zero sizes
    (lambda: revolve_mesh([(0.0, 0.0), (-1.0, 0.5), (0.0, 1.0)]), r"profile radii \(first column\) must be >= 0"),
    (lambda: tube_mesh([(0.0, 0.0, 0.0), (0.0, 0.0, 1.0)], -0.1), "radius must be positive"),
    (lambda: tube_mesh([(0.0, 0.0, 0.0), (0.0, 0.0, 1.0)], [0.1, 0.0]), "radius must be positive"),
    (lambda: cone_mesh(-0.5), "radius_bottom"),
    (lambda: cone_mesh(0.0), "radius_bottom"),
    (lambda: cone_mesh(0.5, -0.1), "radius_top"),
    (lambda: cone_mesh(0.5, True), "radius_top"),
    (lambda: cone_mesh(0.5, 0.2, 0.0), "height"),
    (lambda: cone_mesh(0.5, 0.2, -1.0), "height"),
    # profile structure
    (lambda: revolve_mesh([(1.0, 0.0), (0.0, 0.5), (1.0, 1.0)]), "only the first and last profile points"),
    (lambda: revolve_mesh([(0.0, 0.0), (1.0, 0.5), (1.0, 0.5), (0.0, 1.0)]), "profile has repeated consecutive"),
    (lambda: revolve_mesh([(0.0, 0.0), (0.0, 1.0)]), "profile lies entirely on the axis"),
    (lambda: revolve_mesh([(0.0, 0.0), (0.0, 1.0), (0.0, 2.0)]), "only the first and last profile points"),
    (lambda: revolve_mesh([(0.0, 0.0), (1.0, 0.0)]), "profile encloses no volume"),
    (lambda: revolve_mesh([(0.5, 1.0), (2.0, 1.0)]), "profile encloses no volume"),
    (lambda: revolve_mesh([(0.0, 0.0), (1.0, 1.0), (0.0, 0.0)]), "profile encloses no volume"),
    # path structure
    (lambda: tube_mesh([(0.0, 0.0, 0.0), (0.0, 0.0, 0.0), (0.0, 0.0, 1.0)]), "path has repeated consecutive"),
    (lambda: tube_mesh([(0.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.0, 0.0, 0.0)]), "path turns back on itself at point 1"),
    # segments
    (lambda: revolve_mesh([(1.0, 0.0), (1.0, 1.0)], segments=2), "segments"),
    (lambda: revolve_mesh([(1.0, 0.0), (1.0, 1.0)], segments=3.0), "segments"),
    (lambda: cone_mesh(segments=2), "segments"),
    (lambda: tube_mesh([(0.0, 0.0, 0.0), (0.0, 0.0, 1.0)], segments=0), "segments"),
])
def test_bad_revolve_cone_tube_input_raises_naming_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
