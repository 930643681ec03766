"""Marching cubes tables: shapes and padding, every case's triangles close into loops on the cube
boundary with a consistent orientation, the winding points from the above-level to the below-level
side, complements flip (where no face is ambiguous), the cube's rotations map cases onto cases, and
a naive marching cubes built on the table gives closed, oriented meshes on random fields."""
import itertools
from collections import Counter

import numpy as np
import pytest

from geo4g.voxels._mc_tables import CORNERS, EDGES, FACES, MAX_TRIANGLES, NUM_TRIANGLES, TRIANGLES


def _above(case):
    return np.array([(case >> c) & 1 for c in range(8)], dtype=bool)


def _crossed_edges(case):
    above = _above(case)
    return {e for e, (a, b) in enumerate(EDGES) if above[a] != above[b]}


def _ambiguous(case):
    above = _above(case)
    return any(
        above[f[0]] == above[f[2]] and above[f[1]] == above[f[3]] and above[f[0]] != above[f[1]] for f in FACES
    )


def _triangles(case):
    return [tuple(int(v) for v in t) for t in TRIANGLES[case, : NUM_TRIANGLES[case]]]


def _directed_edges(triangles):
    return Counter((t[i], t[(i + 1) % 3]) for t in triangles for i in range(3))


def _edge_faces(e):
    """Cube faces (indices into FACES) that hold edge e."""
    return {f for f, face in enumerate(FACES) if set(EDGES[e].tolist()) <= set(face.tolist())}


def test_table_shapes_and_padding():
    assert CORNERS.shape == (8, 3) and EDGES.shape == (12, 2) and FACES.shape == (6, 4)
    assert TRIANGLES.shape == (256, MAX_TRIANGLES, 3) and NUM_TRIANGLES.shape == (256,)
    for table in (CORNERS, EDGES, FACES, TRIANGLES, NUM_TRIANGLES):
        assert table.dtype == np.int64
    assert CORNERS.tolist() == [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]]
    assert EDGES.tolist() == [[0, 1], [1, 2], [2, 3], [3, 0], [4, 5], [5, 6], [6, 7], [7, 4],
                              [0, 4], [1, 5], [2, 6], [3, 7]]
    # Every edge joins two corners one unit apart.
    assert (np.abs(CORNERS[EDGES[:, 0]] - CORNERS[EDGES[:, 1]]).sum(axis=1) == 1).all()
    assert NUM_TRIANGLES[0] == 0 and NUM_TRIANGLES[255] == 0
    for case in range(256):
        n = NUM_TRIANGLES[case]
        assert (TRIANGLES[case, :n] >= 0).all() and (TRIANGLES[case, :n] < 12).all()
        assert (TRIANGLES[case, n:] == -1).all()


@pytest.mark.parametrize("case", range(256))
def test_case_triangles_use_exactly_the_crossed_edges(case):
    tris = _triangles(case)
    used = {v for t in tris for v in t}
    assert used == _crossed_edges(case)
    for t in tris:
        assert len(set(t)) == 3, t


@pytest.mark.parametrize("case", range(256))
def test_case_surface_is_oriented_with_loops_on_the_cube_boundary(case):
    directed = _directed_edges(_triangles(case))
    assert max(directed.values(), default=1) == 1, "a directed edge used twice: inconsistent winding"
    boundary = [(p, q) for (p, q) in directed if (q, p) not in directed]
    # Boundary segments lie on a cube face, and every crossed edge has one in and one out.
    for p, q in boundary:
        assert _edge_faces(p) & _edge_faces(q), (p, q)
    assert Counter(p for p, _ in boundary) == Counter(q for _, q in boundary)
    assert {p for p, _ in boundary} == _crossed_edges(case)
    # Each cube face holds 0, 1 or 2 segments: 1 with two crossed face edges, 2 on an ambiguous face.
    for f, face in enumerate(FACES):
        on_face = [s for s in boundary if f in (_edge_faces(s[0]) & _edge_faces(s[1]))]
        crossed = sum(_above(case)[face[t]] != _above(case)[face[(t + 1) % 4]] for t in range(4))
        assert len(on_face) == crossed // 2


@pytest.mark.parametrize("case", range(1, 255))
def test_ambiguous_faces_separate_the_above_corners(case):
    above = _above(case)
    directed = _directed_edges(_triangles(case))
    boundary = {(p, q) for (p, q) in directed if (q, p) not in directed}
    for face in FACES:
        if not (above[face[0]] == above[face[2]] != above[face[1]] == above[face[3]]):
            continue
        for t in range(4):
            if above[face[t]]:
                corner = int(face[t])
                e1 = [e for e in range(12) if corner in EDGES[e] and int(face[t - 1]) in EDGES[e]][0]
                e2 = [e for e in range(12) if corner in EDGES[e] and int(face[(t + 1) % 4]) in EDGES[e]][0]
                assert (e1, e2) in boundary or (e2, e1) in boundary


@pytest.mark.parametrize("case", range(1, 255))
def test_winding_points_from_above_to_below(case):
    """Each triangle's normal has a positive component along the above->below direction of its edges."""
    above = _above(case)
    midpoint = CORNERS[EDGES].mean(axis=1)
    for t in _triangles(case):
        v = midpoint[list(t)]
        normal = np.cross(v[1] - v[0], v[2] - v[0])
        down = sum(CORNERS[b] - CORNERS[a] if above[a] else CORNERS[a] - CORNERS[b] for a, b in EDGES[list(t)])
        assert np.dot(normal, down) > 0, (case, t)


@pytest.mark.parametrize("case", range(1, 255))
def test_complement_flips_winding_unless_a_face_is_ambiguous(case):
    flipped = {(t[0], t[2], t[1]) for t in _triangles(255 - case)}
    if _ambiguous(case):
        # The separated corners change sides: the triangle sets differ (topology changes).
        assert set(_triangles(case)) != flipped
    else:
        assert set(_triangles(case)) == flipped


def _rotations():
    """The 24 proper rotations of the cube as permutations of the corners."""
    perms = []
    for axes in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            matrix = np.zeros((3, 3), dtype=np.int64)
            for row, (axis, sign) in enumerate(zip(axes, signs)):
                matrix[row, axis] = sign
            if round(np.linalg.det(matrix)) != 1:
                continue
            moved = (CORNERS * 2 - 1) @ matrix.T
            perms.append([int(np.flatnonzero((CORNERS * 2 - 1 == m).all(axis=1))[0]) for m in moved])
    return perms


def test_cube_rotations_map_case_boundaries_onto_each_other():
    """The face rule is rotation invariant: a rotated case has the rotated boundary loops."""
    rotations = _rotations()
    assert len(rotations) == 24
    edge_of = {frozenset(map(int, e)): i for i, e in enumerate(EDGES)}
    for perm in rotations:
        edge_perm = [edge_of[frozenset((perm[a], perm[b]))] for a, b in EDGES]
        for case in range(256):
            rotated = sum(1 << perm[c] for c in range(8) if (case >> c) & 1)
            d = _directed_edges(_triangles(case))
            boundary = {(edge_perm[p], edge_perm[q]) for (p, q) in d if (q, p) not in d}
            d_rot = _directed_edges(_triangles(rotated))
            assert boundary == {(p, q) for (p, q) in d_rot if (q, p) not in d_rot}


def _signed_volume(verts, faces):
    return np.einsum("ij,ij->i", verts[faces[:, 0]], np.cross(verts[faces[:, 1]], verts[faces[:, 2]])).sum() / 6


def _naive_marching_cubes(volume, level):
    """One cell at a time; one vertex per crossed grid edge (keyed by its two grid nodes)."""
    vertex_of, verts, faces = {}, [], []
    D, H, W = volume.shape
    for i, j, k in itertools.product(range(D - 1), range(H - 1), range(W - 1)):
        nodes = [(i + c[0], j + c[1], k + c[2]) for c in CORNERS]
        case = sum(1 << c for c in range(8) if volume[nodes[c]] > level)
        tri_ids = []
        for e in TRIANGLES[case, : NUM_TRIANGLES[case]].reshape(-1):
            a, b = nodes[EDGES[e, 0]], nodes[EDGES[e, 1]]
            key = (min(a, b), max(a, b))
            if key not in vertex_of:
                va, vb = volume[a], volume[b]
                t = (level - va) / (vb - va)
                vertex_of[key] = len(verts)
                verts.append(np.array(a, dtype=float) + t * (np.array(b, dtype=float) - np.array(a, dtype=float)))
            tri_ids.append(vertex_of[key])
        faces.extend(np.array(tri_ids).reshape(-1, 3).tolist())
    return np.array(verts).reshape(-1, 3), np.array(faces, dtype=np.int64).reshape(-1, 3)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("field", ["gaussian", "signs"])
def test_random_fields_give_closed_oriented_meshes(seed, field):
    """A random field with a below-level border: every mesh edge in exactly two faces, in opposite
    directions, and the enclosed (signed) volume positive for the above-level region. Random signs
    make most cell faces ambiguous."""
    rng = np.random.default_rng(seed)
    volume = np.full((9, 8, 10), -1.0)
    if field == "gaussian":
        volume[1:-1, 1:-1, 1:-1] = rng.standard_normal((7, 6, 8)) + (0.8 if seed % 2 else 0.0)
    else:
        volume[1:-1, 1:-1, 1:-1] = rng.choice([-1.0, 1.0], size=(7, 6, 8)) * rng.uniform(0.5, 1.5, size=(7, 6, 8))
    verts, faces = _naive_marching_cubes(volume, 0.0)
    assert len(faces) > 20
    directed = Counter((f[i], f[(i + 1) % 3]) for f in faces.tolist() for i in range(3))
    assert max(directed.values()) == 1
    assert all((q, p) in directed for (p, q) in directed)
    signed_volume = _signed_volume(verts, faces)
    assert signed_volume > 0


def test_sphere_field_volume_matches_the_ball():
    n = 24
    x = np.arange(n) - (n - 1) / 2
    occupancy = 8.0 - np.sqrt(x[:, None, None] ** 2 + x[None, :, None] ** 2 + x[None, None, :] ** 2)
    verts, faces = _naive_marching_cubes(occupancy, 0.0)
    signed_volume = _signed_volume(verts, faces)
    assert abs(signed_volume / (4 / 3 * np.pi * 8.0**3) - 1) < 0.02
