import math

import pytest
import torch

from geo4g.parametric import box_mesh, cylinder_mesh, icosphere, torus_mesh


def signed_volume(verts, faces):
    v = verts.double()[faces]
    return float(torch.linalg.det(v).sum() / 6)


def edge_face_counts(faces):
    edges = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    directed = {tuple(e) for e in edges.tolist()}
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
