"""Tests for Meshes: views, index maps and geometry against naive loop-based twins, autograd, batch ops, bad input."""
import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geo4g.structures import Meshes

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# naive twins ---------------------------------------------------------------------------------
def sub(a, b):
    return [a[0] - b[0], a[1] - b[1], a[2] - b[2]]


def cross(a, b):
    return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]


def norm(a):
    return math.sqrt(a[0] ** 2 + a[1] ** 2 + a[2] ** 2)


def unit(a):
    n = norm(a)
    return [a[0] / n, a[1] / n, a[2] / n] if n > 0 else [0.0, 0.0, 0.0]


def face_cross(verts, face):
    v0, v1, v2 = (verts[int(i)].tolist() for i in face)
    return cross(sub(v1, v0), sub(v2, v0))


def naive_faces_packed(verts_list, faces_list):
    rows, offset = [], 0
    for v, f in zip(verts_list, faces_list):
        for face in f.tolist():
            rows.append([i + offset for i in face])
        offset += v.shape[0]
    return torch.tensor(rows, dtype=torch.long).reshape(-1, 3)


def naive_areas_and_normals(verts_list, faces_list):
    areas, normals = [], []
    for v, f in zip(verts_list, faces_list):
        for face in f:
            c = face_cross(v, face)
            areas.append(0.5 * norm(c))
            normals.append(unit(c))
    dtype = verts_list[0].dtype if verts_list else torch.float32
    return torch.tensor(areas, dtype=dtype), torch.tensor(normals, dtype=dtype).reshape(-1, 3)


def naive_verts_normals(verts_list, faces_list):
    out = []
    for v, f in zip(verts_list, faces_list):
        acc = [[0.0, 0.0, 0.0] for _ in range(v.shape[0])]
        for face in f:
            c = face_cross(v, face)
            for i in face.tolist():
                acc[i] = [acc[i][k] + c[k] for k in range(3)]
        out.extend(unit(a) for a in acc)
    dtype = verts_list[0].dtype if verts_list else torch.float32
    return torch.tensor(out, dtype=dtype).reshape(-1, 3)


def naive_edges(verts_list, faces_list):
    """Sorted unique packed edges, and the edge count of each mesh, from Python sets."""
    all_edges, counts, offset = set(), [], 0
    for v, f in zip(verts_list, faces_list):
        mine = set()
        for a, b, c in f.tolist():
            for i, j in ((a, b), (b, c), (c, a)):
                mine.add((min(i, j) + offset, max(i, j) + offset))
        counts.append(len(mine))
        all_edges |= mine
        offset += v.shape[0]
    return sorted(all_edges), counts


def naive_padded(items, n, pad_value, dtype):
    d = 3
    out = torch.full((len(items), n, d), pad_value, dtype=dtype)
    for b, t in enumerate(items):
        for i in range(t.shape[0]):
            out[b, i] = t[i]
    return out


# random meshes ------------------------------------------------------------------------------------
@st.composite
def mesh_sizes(draw, max_batch=4):
    """(V_i, F_i) pairs: V_i in {0, 3..6}; 0 <= F_i <= C(V_i, 3) (every face a distinct vertex triple)."""
    batch = draw(st.integers(0, max_batch))
    out = []
    for _ in range(batch):
        v = draw(st.sampled_from([0, 3, 4, 5, 6]))
        out.append((v, draw(st.integers(0, min(6, math.comb(v, 3))))))
    return out


def make_meshes(sizes, seed=0, dtype=torch.float64, channels=2):
    """Random vertices, faces on distinct vertex triples in random winding, and per-vertex textures.

    Distinct triples keep two copies of one triangle with opposite windings out, whose
    cross products would cancel to a rounding residual with no meaningful normal.
    """
    g = torch.Generator().manual_seed(seed)
    verts, faces, textures = [], [], []
    for v, f in sizes:
        verts.append(torch.randn(v, 3, generator=g, dtype=dtype))
        triples = torch.combinations(torch.arange(v), 3) if v >= 3 else torch.zeros(0, 3, dtype=torch.long)
        chosen = triples[torch.randperm(triples.shape[0], generator=g)[:f]]
        faces.append(torch.stack([t[torch.randperm(3, generator=g)] for t in chosen])
                     if f else torch.zeros(0, 3, dtype=torch.long))
        textures.append(torch.rand(v, channels, generator=g, dtype=dtype))
    return verts, faces, textures


def tetrahedron(dtype=torch.float64):
    verts = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype=dtype)
    faces = torch.tensor([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])  # outward winding
    return verts, faces


# views and index maps --------------------------------------------------------------------------------
@FAST
@given(sizes=mesh_sizes(), seed=st.integers(0, 2**31))
def test_views_and_index_maps_from_lists_match_naive(sizes, seed):
    verts, faces, textures = make_meshes(sizes, seed)
    m = Meshes(verts, faces, textures=textures)
    nv = [v for v, _ in sizes]
    nf = [f for _, f in sizes]
    assert len(m) == len(sizes)
    assert m.num_verts_per_mesh().tolist() == nv
    assert m.num_faces_per_mesh().tolist() == nf
    assert m.isempty() == (sum(nf) == 0)
    assert all(torch.equal(a, b) for a, b in zip(m.verts_list(), verts))
    assert all(torch.equal(a, b) for a, b in zip(m.faces_list(), faces))
    assert torch.equal(m.verts_packed(), torch.cat(verts) if verts else torch.zeros(0, 3, dtype=torch.float64))
    assert torch.equal(m.faces_packed(), naive_faces_packed(verts, faces))
    assert m.verts_padded().shape == (len(sizes), max(nv, default=0), 3)
    assert m.faces_padded().shape == (len(sizes), max(nf, default=0), 3)
    if sizes:
        assert torch.equal(m.verts_padded(), naive_padded(verts, max(nv), 0.0, torch.float64))
        assert torch.equal(m.faces_padded(), naive_padded(faces, max(nf), -1, torch.long))
        assert torch.equal(m.textures_packed(), torch.cat(textures))
    first_v = [sum(nv[:b]) for b in range(len(nv))]
    first_f = [sum(nf[:b]) for b in range(len(nf))]
    assert m.mesh_to_verts_packed_first_idx().tolist() == first_v
    assert m.mesh_to_faces_packed_first_idx().tolist() == first_f
    assert m.verts_packed_to_mesh_idx().tolist() == [b for b, n in enumerate(nv) for _ in range(n)]
    assert m.faces_packed_to_mesh_idx().tolist() == [b for b, n in enumerate(nf) for _ in range(n)]
    idx = m.verts_padded_to_packed_idx()
    assert idx.tolist() == [b * max(nv) + i for b, n in enumerate(nv) for i in range(n)]
    assert torch.equal(m.verts_padded().reshape(-1, 3)[idx], m.verts_packed())


def test_faces_padded_holds_minus_one_and_verts_padded_zero_in_padding():
    verts, faces, _ = make_meshes([(4, 2), (3, 0), (5, 3)])
    m = Meshes(verts, faces)
    assert torch.equal(m.faces_padded()[1], torch.full((3, 3), -1))
    assert torch.equal(m.faces_padded()[0, 2], torch.full((3,), -1))
    assert torch.equal(m.verts_padded()[1, 3:], torch.zeros(2, 3, dtype=torch.float64))


def test_faces_packed_offsets_match_hand_computed_values():
    verts = [torch.zeros(3, 3), torch.zeros(4, 3), torch.zeros(2, 3), torch.zeros(3, 3)]
    faces = [torch.tensor([[0, 1, 2]]), torch.tensor([[3, 2, 1], [0, 1, 3]]), torch.zeros(0, 3, dtype=torch.long),
             torch.tensor([[2, 1, 0]])]
    m = Meshes(verts, faces)
    assert m.faces_packed().tolist() == [[0, 1, 2], [6, 5, 4], [3, 4, 6], [11, 10, 9]]
    assert m.faces_packed().dtype == torch.long


@FAST
@given(sizes=mesh_sizes().filter(len), seed=st.integers(0, 2**31), extra_v=st.integers(0, 2),
       extra_f=st.integers(0, 2))
def test_views_from_padded_verts_and_minus_one_padded_faces_match_lists(sizes, seed, extra_v, extra_f):
    verts, faces, textures = make_meshes(sizes, seed)
    nv = [v for v, _ in sizes]
    nf = [f for _, f in sizes]
    V, F = max(nv) + extra_v, max(nf) + extra_f
    vp = torch.full((len(sizes), V, 3), 123.0, dtype=torch.float64)
    fp = torch.full((len(sizes), F, 3), -1, dtype=torch.long)
    tp = torch.full((len(sizes), V, 2), 7.0, dtype=torch.float64)
    for b in range(len(sizes)):
        vp[b, : nv[b]] = verts[b]
        fp[b, : nf[b]] = faces[b]
        tp[b, : nv[b]] = textures[b]
    m = Meshes(vp, fp, textures=tp, verts_lengths=torch.tensor(nv))
    ref = Meshes(verts, faces, textures=textures)
    assert m.num_verts_per_mesh().tolist() == nv and m.num_faces_per_mesh().tolist() == nf
    assert torch.equal(m.verts_packed(), ref.verts_packed())
    assert torch.equal(m.faces_packed(), ref.faces_packed())
    assert torch.equal(m.textures_packed(), ref.textures_packed())
    assert all(torch.equal(a, b) for a, b in zip(m.faces_list(), faces))
    # padded views keep the input's sizes and clean padding
    assert torch.equal(m.verts_padded(), naive_padded(verts, V, 0.0, torch.float64))
    assert torch.equal(m.faces_padded(), naive_padded(faces, F, -1, torch.long))
    # every padded view of one field has the same size, and the index map addresses it
    assert m.verts_normals_padded().shape == m.verts_padded().shape
    assert m.faces_normals_padded().shape == (len(sizes), F, 3)
    idx = m.verts_padded_to_packed_idx()
    assert torch.equal(m.verts_padded().reshape(-1, 3)[idx], m.verts_packed())
    assert torch.equal(m.verts_normals_padded().reshape(-1, 3)[idx], m.verts_normals_packed())


def test_faces_in_other_integer_dtypes_are_stored_as_long():
    verts, faces = tetrahedron()
    for dtype in (torch.int32, torch.int16, torch.uint8):
        m = Meshes([verts], [faces.to(dtype)])
        assert m.faces_list()[0].dtype == torch.long and torch.equal(m.faces_list()[0], faces)
        m = Meshes(verts[None], faces[None].to(torch.int32))
        assert m.faces_packed().dtype == torch.long


def test_get_mesh_verts_faces_returns_one_mesh():
    verts, faces, _ = make_meshes([(3, 1), (5, 4)])
    m = Meshes(verts, faces)
    v, f = m.get_mesh_verts_faces(-1)
    assert torch.equal(v, verts[1]) and torch.equal(f, faces[1])
    with pytest.raises(IndexError, match=r"index 2 is out of range"):
        m.get_mesh_verts_faces(2)
    with pytest.raises(TypeError, match=r"index must be an int"):
        m.get_mesh_verts_faces([0])


def test_repr_names_batch_sizes_and_textures():
    verts, faces, textures = make_meshes([(3, 1)])
    text = repr(Meshes(verts, faces, textures=textures))
    assert "batch=1" in text and "verts=[3]" in text and "faces=[1]" in text and "textures" in text


# geometry ----------------------------------------------------------------------------------------------------
@FAST
@given(sizes=mesh_sizes(), seed=st.integers(0, 2**31))
def test_faces_areas_and_normals_match_per_face_loop(sizes, seed):
    verts, faces, _ = make_meshes(sizes, seed)
    m = Meshes(verts, faces)
    areas, normals = naive_areas_and_normals(verts, faces)
    assert torch.allclose(m.faces_areas_packed(), areas, atol=1e-12)
    assert torch.allclose(m.faces_normals_packed(), normals, atol=1e-9)
    nf = m.num_faces_per_mesh().tolist()
    for got, want in zip(m.faces_normals_list(), normals.split(nf)):
        assert got.shape == want.shape
        assert torch.allclose(got, want, atol=1e-9)
    if sizes:
        assert torch.allclose(m.faces_normals_padded(), naive_padded(list(normals.split(nf)), max(nf), 0.0,
                                                                     torch.float64), atol=1e-9)


@FAST
@given(sizes=mesh_sizes(), seed=st.integers(0, 2**31))
def test_verts_normals_match_area_weighted_loop(sizes, seed):
    verts, faces, _ = make_meshes(sizes, seed)
    m = Meshes(verts, faces)
    want = naive_verts_normals(verts, faces)
    assert torch.allclose(m.verts_normals_packed(), want, atol=1e-9)
    nv = m.num_verts_per_mesh().tolist()
    for got, w in zip(m.verts_normals_list(), want.split(nv)):
        assert torch.allclose(got, w, atol=1e-9)
    if sizes:
        assert torch.allclose(m.verts_normals_padded(), naive_padded(list(want.split(nv)), max(nv), 0.0,
                                                                     torch.float64), atol=1e-9)


def test_verts_normals_are_weighted_by_face_area():
    # Face A (area 2, normal +z) and face B (area 1, normal +y) share vertices 0 and 1.
    verts = torch.tensor([[0.0, 0, 0], [2, 0, 0], [0, 2, 0], [0, 0, 1]])
    faces = torch.tensor([[0, 1, 2], [0, 3, 1]])
    m = Meshes([verts], [faces])
    assert torch.allclose(m.faces_areas_packed(), torch.tensor([2.0, 1.0]))
    assert torch.allclose(m.faces_normals_packed(), torch.tensor([[0.0, 0, 1], [0, 1, 0]]))
    shared = torch.tensor([0.0, 1.0, 2.0]) / math.sqrt(5.0)
    want = torch.stack([shared, shared, torch.tensor([0.0, 0, 1]), torch.tensor([0.0, 1, 0])])
    assert torch.allclose(m.verts_normals_packed(), want, atol=1e-6)


def test_tetrahedron_has_outward_unit_normals_and_known_areas():
    verts, faces = tetrahedron()
    m = Meshes([verts], [faces])
    assert torch.allclose(m.faces_areas_packed(), torch.tensor([0.5, 0.5, 0.5, math.sqrt(3) / 2], dtype=torch.float64))
    centroid = verts.mean(0)
    face_centres = verts[faces].mean(1)
    assert ((m.faces_normals_packed() * (face_centres - centroid)).sum(-1) > 0).all()
    assert torch.allclose(m.verts_normals_packed().norm(dim=-1), torch.ones(4, dtype=torch.float64))
    assert torch.allclose(m.verts_normals_packed()[0], -torch.ones(3, dtype=torch.float64) / math.sqrt(3))


@FAST
@given(sizes=mesh_sizes(), seed=st.integers(0, 2**31))
def test_edges_match_python_set_and_are_sorted_and_contiguous_per_mesh(sizes, seed):
    verts, faces, _ = make_meshes(sizes, seed)
    m = Meshes(verts, faces)
    want, counts = naive_edges(verts, faces)
    edges = m.edges_packed()
    assert edges.dtype == torch.long and edges.shape == (len(want), 2)
    assert [tuple(e) for e in edges.tolist()] == want
    assert m.num_edges_per_mesh().tolist() == counts
    assert m.mesh_to_edges_packed_first_idx().tolist() == [sum(counts[:b]) for b in range(len(counts))]
    vert_to_mesh = m.verts_packed_to_mesh_idx()
    edge_to_mesh = m.edges_packed_to_mesh_idx()
    assert edge_to_mesh.tolist() == [b for b, n in enumerate(counts) for _ in range(n)]
    if len(want):
        assert torch.equal(edge_to_mesh, vert_to_mesh[edges[:, 0]])
        assert torch.equal(edge_to_mesh, vert_to_mesh[edges[:, 1]])


@FAST
@given(sizes=mesh_sizes(), seed=st.integers(0, 2**31))
def test_faces_packed_to_edges_packed_lists_the_edge_opposite_each_vertex(sizes, seed):
    verts, faces, _ = make_meshes(sizes, seed)
    m = Meshes(verts, faces)
    edges = m.edges_packed().tolist()
    f2e = m.faces_packed_to_edges_packed()
    assert f2e.shape == (m.faces_packed().shape[0], 3) and f2e.dtype == torch.long
    for face, idx in zip(m.faces_packed().tolist(), f2e.tolist()):
        for k in range(3):
            a, b = face[(k + 1) % 3], face[(k + 2) % 3]
            assert edges[idx[k]] == [min(a, b), max(a, b)]


def test_edges_match_pytorch3d_order_on_two_triangles():
    m = Meshes([torch.randn(4, 3)], [torch.tensor([[0, 1, 2], [1, 2, 3]])])
    assert m.edges_packed().tolist() == [[0, 1], [0, 2], [1, 2], [1, 3], [2, 3]]
    assert m.faces_packed_to_edges_packed().tolist() == [[2, 1, 0], [4, 3, 2]]


def test_closed_tetrahedron_has_six_edges_each_shared_by_two_faces():
    verts, faces = tetrahedron()
    m = Meshes([verts, verts], [faces, faces])
    assert m.num_edges_per_mesh().tolist() == [6, 6]
    counts = torch.bincount(m.faces_packed_to_edges_packed().flatten(), minlength=12)
    assert counts.tolist() == [2] * 12


def test_mesh_without_faces_has_zero_normals_and_no_edges():
    m = Meshes([torch.randn(4, 3), torch.randn(3, 3)], [torch.zeros(0, 3, dtype=torch.long), torch.tensor([[0, 1, 2]])])
    assert torch.equal(m.verts_normals_list()[0], torch.zeros(4, 3))
    assert m.num_edges_per_mesh().tolist() == [0, 3]
    assert m.faces_areas_packed().shape == (1,)
    assert m.faces_normals_list()[0].shape == (0, 3)
    assert m.faces_padded()[0].tolist() == [[-1, -1, -1]]
    assert not m.isempty()
    assert Meshes([torch.randn(4, 3)], [torch.zeros(0, 3, dtype=torch.long)]).isempty()


def test_empty_batch_has_empty_views():
    m = Meshes([], [])
    assert len(m) == 0 and m.isempty()
    assert m.verts_packed().shape == (0, 3) and m.faces_packed().shape == (0, 3)
    assert m.verts_padded().shape == (0, 0, 3)
    assert m.faces_padded().shape == (0, 0, 3) and m.faces_padded().dtype == torch.long
    assert m.faces_areas_packed().shape == (0,)
    assert m.faces_normals_packed().shape == (0, 3) and m.verts_normals_packed().shape == (0, 3)
    assert m.verts_normals_padded().shape == (0, 0, 3) and m.faces_normals_padded().shape == (0, 0, 3)
    assert m.edges_packed().shape == (0, 2) and m.num_edges_per_mesh().shape == (0,)
    assert m.faces_packed_to_edges_packed().shape == (0, 3)
    assert m.get_bounding_boxes().shape == (0, 3, 2)
    assert len(m.normalize()) == 0 and len(m.offset_verts(torch.ones(3))) == 0 and len(m.extend(2)) == 0


def test_degenerate_faces_give_zero_normals_and_area_and_finite_gradients():
    # face 0 is collinear, face 1 has a repeated vertex; vertex 3 touches only face 1, vertex 4 only a good face
    verts = torch.tensor([[0.0, 0, 0], [1, 0, 0], [2, 0, 0], [0, 5, 0], [0, 0, 1]], requires_grad=True)
    faces = torch.tensor([[0, 1, 2], [3, 3, 1], [0, 1, 4]])
    m = Meshes([verts], [faces])
    assert torch.equal(m.faces_areas_packed()[:2], torch.zeros(2))
    assert torch.equal(m.faces_normals_packed()[:2], torch.zeros(2, 3))
    assert torch.equal(m.verts_normals_packed()[[2, 3]], torch.zeros(2, 3))
    assert torch.allclose(m.verts_normals_packed()[4], torch.tensor([0.0, -1.0, 0.0]))
    for t in (m.faces_areas_packed(), m.faces_normals_packed(), m.verts_normals_packed()):
        assert not torch.isnan(t).any()
    loss = m.faces_areas_packed().sum() + m.faces_normals_packed().sum() + m.verts_normals_packed().sum()
    loss.backward()
    assert torch.isfinite(verts.grad).all()


@pytest.mark.parametrize("scale", [1e-7, 1e-12])
def test_tiny_but_valid_triangles_still_get_unit_normals(scale):
    verts, faces = tetrahedron()
    m = Meshes([verts * scale], [faces])
    big = Meshes([verts], [faces])
    assert torch.allclose(m.faces_normals_packed(), big.faces_normals_packed())
    assert torch.allclose(m.verts_normals_packed(), big.verts_normals_packed())


def test_huge_coordinates_give_finite_areas_and_unit_normals():
    verts, faces = tetrahedron(torch.float32)
    m = Meshes([verts * 1e6 + 1e6], [faces])
    assert torch.isfinite(m.faces_areas_packed()).all()
    assert torch.allclose(m.faces_areas_packed(), torch.tensor([0.5, 0.5, 0.5, math.sqrt(3) / 2]) * 1e12, rtol=1e-4)
    assert torch.allclose(m.faces_normals_packed().norm(dim=-1), torch.ones(4), atol=1e-5)
    assert torch.allclose(m.verts_normals_packed().norm(dim=-1), torch.ones(4), atol=1e-5)
    out = m.normalize().verts_packed()
    assert torch.isfinite(out).all() and out.norm(dim=-1).max() <= 1 + 1e-5


@FAST
@given(sizes=mesh_sizes(), seed=st.integers(0, 2**31))
def test_bounding_boxes_match_per_axis_loop(sizes, seed):
    verts, faces, _ = make_meshes(sizes, seed)
    boxes = Meshes(verts, faces).get_bounding_boxes()
    assert boxes.shape == (len(sizes), 3, 2)
    for box, v in zip(boxes, verts):
        for axis in range(3):
            col = v[:, axis].tolist()
            assert box[axis].tolist() == ([min(col), max(col)] if col else [0.0, 0.0])


# autograd --------------------------------------------------------------------------------------------------------
def small_mesh(dtype=torch.float64, seed=3):
    g = torch.Generator().manual_seed(seed)
    verts, faces = tetrahedron(dtype)
    verts = verts + 0.1 * torch.randn(4, 3, generator=g, dtype=dtype)
    return verts.requires_grad_(True), faces


def test_faces_areas_packed_passes_gradcheck():
    verts, faces = small_mesh()
    assert torch.autograd.gradcheck(lambda v: Meshes([v], [faces]).faces_areas_packed(), (verts,))


def test_faces_normals_packed_passes_gradcheck():
    verts, faces = small_mesh()
    assert torch.autograd.gradcheck(lambda v: Meshes([v], [faces]).faces_normals_packed(), (verts,))


def test_verts_normals_packed_passes_gradcheck():
    verts, faces = small_mesh()
    assert torch.autograd.gradcheck(lambda v: Meshes([v], [faces]).verts_normals_packed(), (verts,))


def test_padded_and_list_views_of_normals_pass_gradcheck_with_ragged_batch():
    verts, faces = small_mesh()
    tri = torch.tensor([[0.0, 0, 0], [1, 0.2, 0], [0.1, 1, 0.3]], dtype=torch.float64, requires_grad=True)

    def fn(v, t):
        m = Meshes([t, v], [torch.tensor([[0, 1, 2]]), faces])
        return m.verts_normals_padded(), m.faces_normals_padded(), m.faces_normals_list()[1], m.verts_normals_list()[0]
    assert torch.autograd.gradcheck(fn, (verts, tri))


@pytest.mark.parametrize("mode", ["sphere", "cube"])
def test_normalize_passes_gradcheck(mode):
    verts, faces = small_mesh()
    assert torch.autograd.gradcheck(lambda v: Meshes([v], [faces]).normalize(mode).verts_packed(), (verts,))


def test_verts_views_pass_gradcheck_from_list_and_padded_input():
    g = torch.Generator().manual_seed(4)
    a = torch.randn(3, 3, dtype=torch.float64, generator=g, requires_grad=True)
    b = torch.randn(4, 3, dtype=torch.float64, generator=g, requires_grad=True)
    fa, fb = torch.tensor([[0, 1, 2]]), torch.tensor([[0, 1, 3]])
    assert torch.autograd.gradcheck(lambda a, b: Meshes([a, b], [fa, fb]).verts_padded(), (a, b))
    assert torch.autograd.gradcheck(lambda a, b: Meshes([a, b], [fa, fb]).verts_packed(), (a, b))
    x = torch.randn(2, 5, 3, dtype=torch.float64, generator=g, requires_grad=True)
    lengths = torch.tensor([3, 4])
    fp = torch.tensor([[[0, 1, 2], [-1, -1, -1]], [[0, 1, 3], [1, 2, 3]]])
    for view in ("verts_padded", "verts_packed"):
        assert torch.autograd.gradcheck(lambda x: getattr(Meshes(x, fp, verts_lengths=lengths), view)(), (x,))
    assert torch.autograd.gradcheck(lambda x: Meshes(x, fp, verts_lengths=lengths).verts_list()[1], (x,))
    assert torch.autograd.gradcheck(lambda x: Meshes(x, fp, verts_lengths=lengths).faces_areas_packed(), (x,))


def test_gradients_of_padded_input_do_not_reach_padding_rows():
    x = torch.randn(2, 5, 3, requires_grad=True)
    fp = torch.tensor([[[0, 1, 2]], [[0, 1, 3]]])
    m = Meshes(x, fp, verts_lengths=torch.tensor([3, 4]))
    (m.verts_padded().sum() + m.verts_normals_packed().sum() + m.faces_areas_packed().sum()).backward()
    assert torch.equal(x.grad[0, 3:], torch.zeros(2, 3))
    assert torch.equal(x.grad[1, 4:], torch.zeros(1, 3))


# indexing / clone / detach / extend ---------------------------------------------------------------------------
SIZES = [(3, 1), (4, 0), (5, 4), (6, 2)]


@pytest.fixture
def batch():
    verts, faces, textures = make_meshes(SIZES, seed=7)
    return Meshes(verts, faces, textures=textures), verts, faces, textures


@pytest.mark.parametrize("index, picked", [
    (2, [2]),
    (-1, [3]),
    (slice(1, 3), [1, 2]),
    (slice(None, None, -2), [3, 1]),
    ([3, 0, 3], [3, 0, 3]),
    ([], []),
    (torch.tensor([2, 1]), [2, 1]),
    (torch.tensor([False, True, True, False]), [1, 2]),
])
def test_indexing_selects_meshes_with_their_faces_and_textures(batch, index, picked):
    m, verts, faces, textures = batch
    out = m[index]
    assert isinstance(out, Meshes) and len(out) == len(picked)
    for got, want in zip(out.verts_list(), [verts[i] for i in picked]):
        assert torch.equal(got, want)
    for got, want in zip(out.faces_list(), [faces[i] for i in picked]):
        assert torch.equal(got, want)
    for got, want in zip(out.textures_list(), [textures[i] for i in picked]):
        assert torch.equal(got, want)
    assert torch.equal(out.faces_packed(), naive_faces_packed([verts[i] for i in picked], [faces[i] for i in picked]))


@pytest.mark.parametrize("index, error", [
    (4, IndexError), (-5, IndexError), ([1, 9], IndexError), (torch.tensor([True]), IndexError),
    (torch.tensor([1.0]), TypeError), (0.0, TypeError), ("0", TypeError),
])
def test_indexing_with_bad_index_raises(batch, index, error):
    with pytest.raises(error, match=r"index"):
        batch[0][index]


def test_clone_is_an_independent_copy(batch):
    m, verts, faces, textures = batch
    before = [v.clone() for v in verts]
    copy = m.clone()
    for t in copy.verts_list() + copy.textures_list():
        t.mul_(2.0)
    copy.faces_list()[0].zero_()
    assert all(torch.equal(a, b) for a, b in zip(m.verts_list(), before))
    assert torch.equal(m.faces_list()[0], faces[0]) and faces[0].tolist() != [[0, 0, 0]]


def test_detach_has_no_grad():
    verts, faces = small_mesh()
    m = Meshes([verts * 2], [faces])
    out = m.detach()
    for t in (out.verts_packed(), out.verts_padded(), out.verts_normals_packed(), out.faces_areas_packed()):
        assert not t.requires_grad
    assert torch.equal(out.verts_packed(), m.verts_packed().detach())
    assert m.verts_packed().requires_grad


def test_to_same_device_returns_self_unless_copy(batch):
    m = batch[0]
    assert m.to("cpu") is m
    copy = m.to(torch.device("cpu"), copy=True)
    assert copy is not m and torch.equal(copy.faces_packed(), m.faces_packed())


def test_extend_repeats_each_mesh_in_order_as_independent_copies(batch):
    m, verts, faces, textures = batch
    out = m.extend(3)
    order = [b for b in range(4) for _ in range(3)]
    assert out.num_verts_per_mesh().tolist() == [SIZES[i][0] for i in order]
    for got, i in zip(out.verts_list(), order):
        assert torch.equal(got, verts[i])
    for got, i in zip(out.faces_list(), order):
        assert torch.equal(got, faces[i])
    for got, i in zip(out.textures_list(), order):
        assert torch.equal(got, textures[i])
    out.verts_list()[0].add_(1.0)
    assert torch.equal(out.verts_list()[1], verts[0]) and torch.equal(m.verts_list()[0], verts[0])
    with pytest.raises(ValueError, match=r"n must be a positive int"):
        m.extend(0)


# update_padded / offset / scale / normalize ---------------------------------------------------------------------
def test_update_padded_keeps_faces_textures_and_lengths(batch):
    m, verts, faces, textures = batch
    new = torch.randn(m.verts_padded().shape, dtype=torch.float64, requires_grad=True)
    out = m.update_padded(new)
    assert out.num_verts_per_mesh().tolist() == [v for v, _ in SIZES]
    assert all(torch.equal(a, b) for a, b in zip(out.faces_list(), faces))
    assert all(torch.equal(a, b) for a, b in zip(out.textures_list(), textures))
    for b, v in enumerate(out.verts_list()):
        assert torch.equal(v, new[b, : SIZES[b][0]])
    out.verts_packed().sum().backward()
    assert torch.equal(new.grad, naive_padded([torch.ones(v, 3) for v, _ in SIZES], 6, 0.0, torch.float64))


def test_update_padded_rejects_wrong_shape(batch):
    m = batch[0]
    with pytest.raises(ValueError, match=r"new_verts_padded must have shape \(4, 6, 3\) like verts_padded\(\), got \(4, 7, 3\)"):
        m.update_padded(torch.zeros(4, 7, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"new_verts_padded must have 3 dimensions"):
        m.update_padded(torch.zeros(24, 3, dtype=torch.float64))
    with pytest.raises(TypeError, match=r"new_verts_padded must be a floating point tensor"):
        m.update_padded(torch.zeros(4, 6, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"new_verts_padded\[0\] must be finite"):
        m.update_padded(torch.full((4, 6, 3), float("nan"), dtype=torch.float64))


def test_offset_verts_packed_and_broadcast_forms(batch):
    m, verts, _, _ = batch
    out = m.offset_verts(torch.tensor([1.0, 2.0, 3.0]))
    for got, want in zip(out.verts_list(), verts):
        assert torch.allclose(got, want + torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    offsets = torch.randn(18, 3, dtype=torch.float64)
    out = m.offset_verts(offsets)
    assert torch.allclose(out.verts_packed(), m.verts_packed() + offsets)
    assert torch.equal(out.faces_packed(), m.faces_packed())
    assert all(torch.equal(a, b) for a, b in zip(m.verts_list(), verts))  # original unchanged
    with pytest.raises(ValueError, match=r"vert_offsets_packed must be \(sum N_i, 3\) packed or \(3,\), got shape \(17, 3\)"):
        m.offset_verts(torch.zeros(17, 3))


def test_scale_verts_scalar_and_per_mesh(batch):
    m, verts, _, _ = batch
    out = m.scale_verts(2.0)
    assert torch.allclose(out.faces_areas_packed(), 4 * m.faces_areas_packed())
    per = torch.tensor([1.0, 2.0, -1.0, 0.5])
    out = m.scale_verts(per)
    for b, (got, want) in enumerate(zip(out.verts_list(), verts)):
        assert torch.allclose(got, want * per[b].double())
    with pytest.raises(ValueError, match=r"scale must be a scalar or \(B,\) with B=4"):
        m.scale_verts(torch.ones(2))


def test_negative_scale_mirrors_vertices_and_keeps_face_winding_normals():
    verts, faces = tetrahedron()
    m = Meshes([verts], [faces])
    out = m.scale_verts(-1.0)
    assert torch.equal(out.verts_packed(), -verts)
    # a point reflection reverses orientation: the cross products of the same winding are unchanged
    assert torch.allclose(out.faces_normals_packed(), m.faces_normals_packed())


def test_in_place_offset_and_scale_invalidate_cached_views(batch):
    m = batch[0]
    areas = m.faces_areas_packed().clone()
    normals = m.verts_normals_packed().clone()
    boxes = m.get_bounding_boxes().clone()
    m.edges_packed()
    offsets = torch.zeros(18, 3, dtype=torch.float64)
    offsets[10] = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)  # move one vertex of mesh 2
    assert m.offset_verts_(offsets) is m
    fresh = Meshes(m.verts_list(), m.faces_list())
    assert torch.allclose(m.verts_normals_packed(), fresh.verts_normals_packed())
    assert not torch.allclose(m.verts_normals_packed(), normals)
    assert torch.allclose(m.faces_areas_packed(), fresh.faces_areas_packed())
    assert torch.equal(m.get_bounding_boxes(), fresh.get_bounding_boxes())
    assert torch.equal(m.edges_packed(), fresh.edges_packed())
    m.offset_verts_(-offsets)
    assert m.scale_verts_(3.0) is m
    assert torch.allclose(m.faces_areas_packed(), 9 * areas)
    assert torch.allclose(m.get_bounding_boxes(), 3 * boxes)
    assert torch.allclose(m.verts_normals_packed(), normals)


def test_normalize_sphere_and_cube_properties_per_mesh(batch):
    m = batch[0].offset_verts(torch.tensor([10.0, -5.0, 3.0])).scale_verts(torch.tensor([1.0, 5.0, 0.1, 2.0]))
    out = m.normalize("sphere")
    for v in out.verts_list():
        assert torch.allclose(v.mean(0), torch.zeros(3, dtype=torch.float64), atol=1e-12)
        assert torch.allclose(v.norm(dim=-1).max(), torch.tensor(1.0, dtype=torch.float64))
    assert torch.equal(out.faces_packed(), m.faces_packed())
    boxes = m.normalize("cube").get_bounding_boxes()
    assert torch.allclose(boxes.mean(-1), torch.zeros(4, 3, dtype=torch.float64), atol=1e-12)
    assert torch.allclose((boxes[..., 1] - boxes[..., 0]).max(-1).values, torch.ones(4, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"mode must be 'sphere' or 'cube'"):
        m.normalize("unit")


# bad input -----------------------------------------------------------------------------------------------------------
TRI = torch.tensor([[0, 1, 2]])


def test_verts_with_wrong_shape_or_dtype_raise_naming_verts():
    with pytest.raises(ValueError, match=r"verts\[0\] must have last dimension 3"):
        Meshes([torch.zeros(3, 2)], [TRI])
    with pytest.raises(ValueError, match=r"verts must have 3 dimensions"):
        Meshes(torch.zeros(3, 3), TRI)
    with pytest.raises(TypeError, match=r"verts\[0\] must be a floating point tensor"):
        Meshes([torch.zeros(3, 3, dtype=torch.long)], [TRI])
    with pytest.raises(TypeError, match=r"verts must share one dtype"):
        Meshes([torch.zeros(3, 3), torch.zeros(3, 3, dtype=torch.float64)], [TRI, TRI])
    with pytest.raises(TypeError, match=r"verts must be a list of \(N_i, 3\) tensors or a padded"):
        Meshes(None, [TRI])


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_verts_raise_naming_verts(bad):
    v = torch.zeros(3, 3)
    v[2, 1] = bad
    with pytest.raises(ValueError, match=r"verts\[1\] must be finite.*index \(2, 1\)"):
        Meshes([torch.zeros(3, 3), v], [TRI, TRI])


def test_faces_out_of_range_or_negative_raise_naming_faces():
    with pytest.raises(ValueError, match=r"faces\[1\] indices must lie in \[0, 3\) for 3 vertices, got range \[0, 3\]"):
        Meshes([torch.zeros(4, 3), torch.zeros(3, 3)], [TRI, torch.tensor([[0, 1, 3]])])
    with pytest.raises(ValueError, match=r"faces\[0\] indices must lie in \[0, 3\).*got range \[-1, 2\]"):
        Meshes([torch.zeros(3, 3)], [torch.tensor([[0, -1, 2]])])
    with pytest.raises(ValueError, match=r"faces\[0\] indices must lie in \[0, 2\)"):
        Meshes(torch.zeros(1, 3, 3), torch.tensor([[[0, 1, 2]]]), verts_lengths=torch.tensor([2]))


def test_faces_with_wrong_shape_or_dtype_raise_naming_faces():
    with pytest.raises(TypeError, match=r"faces\[0\] must be an integer tensor"):
        Meshes([torch.zeros(3, 3)], [TRI.float()])
    with pytest.raises(ValueError, match=r"faces\[0\] must have last dimension 3"):
        Meshes([torch.zeros(4, 3)], [torch.tensor([[0, 1, 2, 3]])])
    with pytest.raises(TypeError, match=r"faces must be an integer tensor"):
        Meshes(torch.zeros(1, 3, 3), torch.zeros(1, 1, 3))
    with pytest.raises(ValueError, match=r"faces must have 3 dimensions"):
        Meshes(torch.zeros(1, 3, 3), TRI)
    with pytest.raises(TypeError, match=r"faces must be a list"):
        Meshes([torch.zeros(3, 3)], "faces")
    with pytest.raises(TypeError, match=r"faces must share one dtype"):
        Meshes([torch.zeros(3, 3)] * 2, [TRI, TRI.int()])


def test_faces_batch_size_must_match_verts():
    with pytest.raises(ValueError, match=r"faces must hold 2 meshes like verts, got 1"):
        Meshes([torch.zeros(3, 3)] * 2, [TRI])
    with pytest.raises(ValueError, match=r"faces must hold 1 meshes like verts, got 2"):
        Meshes(torch.zeros(1, 3, 3), torch.zeros(2, 1, 3, dtype=torch.long))


def test_padded_faces_with_minus_one_row_in_the_middle_raise():
    faces = torch.tensor([[[0, 1, 2], [-1, -1, -1], [1, 2, 3]]])
    with pytest.raises(ValueError, match=r"padded faces must hold their -1 padding rows after all valid faces"):
        Meshes(torch.zeros(1, 4, 3), faces)


def test_verts_lengths_errors_name_verts_lengths():
    with pytest.raises(ValueError, match=r"verts_lengths must not exceed the padded size 3, got maximum 4"):
        Meshes(torch.zeros(1, 3, 3), TRI[None], verts_lengths=torch.tensor([4]))
    with pytest.raises(ValueError, match=r"verts_lengths is only used with a padded verts tensor"):
        Meshes([torch.zeros(3, 3)], [TRI], verts_lengths=torch.tensor([3]))
    with pytest.raises(TypeError, match=r"verts_lengths must be an integer tensor"):
        Meshes(torch.zeros(1, 3, 3), TRI[None], verts_lengths=torch.tensor([3.0]))


def test_textures_that_do_not_match_verts_raise_naming_textures():
    verts = [torch.zeros(3, 3), torch.zeros(4, 3)]
    faces = [TRI, TRI]
    with pytest.raises(ValueError, match=r"textures must have the lengths of verts \[3, 4\], got \[3, 3\]"):
        Meshes(verts, faces, textures=[torch.zeros(3, 2), torch.zeros(3, 2)])
    with pytest.raises(ValueError, match=r"textures must hold 2 items like verts, got 1"):
        Meshes(verts, faces, textures=[torch.zeros(3, 2)])
    with pytest.raises(ValueError, match=r"padded textures must have shape \(2, N >= 4, D\).*got shape \(2, 3, 2\)"):
        Meshes(verts, faces, textures=torch.zeros(2, 3, 2))
    with pytest.raises(TypeError, match=r"textures must have the dtype of verts"):
        Meshes(verts, faces, textures=[torch.zeros(3, 2, dtype=torch.float64), torch.zeros(4, 2, dtype=torch.float64)])
    with pytest.raises(ValueError, match=r"textures must share one row shape"):
        Meshes(verts, faces, textures=[torch.zeros(3, 2), torch.zeros(4, 5)])
    with pytest.raises(ValueError, match=r"textures\[1\] must be finite"):
        Meshes(verts, faces, textures=[torch.zeros(3, 2), torch.full((4, 2), float("nan"))])
    with pytest.raises(TypeError, match=r"textures\[0\] must be a floating point tensor"):
        Meshes(verts, faces, textures=[torch.zeros(3, 2, dtype=torch.long), torch.zeros(4, 2, dtype=torch.long)])


# devices (run only where CUDA is present) -------------------------------------------------------------------
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@cuda
def test_faces_on_another_device_than_verts_raise():
    with pytest.raises(ValueError, match=r"faces\[0\] must be on the device of verts\[0\]"):
        Meshes([torch.zeros(3, 3)], [TRI.cuda()])
    with pytest.raises(ValueError, match=r"verts must share one device"):
        Meshes([torch.zeros(3, 3), torch.zeros(3, 3, device="cuda")], [TRI, TRI.cuda()])


@cuda
def test_geometry_on_cuda_matches_cpu():
    verts, faces, textures = make_meshes(SIZES, seed=7)
    m = Meshes(verts, faces, textures=textures)
    g = m.to("cuda")
    for name in ("verts_normals_packed", "faces_normals_packed", "faces_areas_packed", "edges_packed",
                 "faces_packed_to_edges_packed", "num_edges_per_mesh", "faces_padded", "verts_padded"):
        got = getattr(g, name)()
        assert got.device.type == "cuda"
        assert torch.allclose(got.cpu().double(), getattr(m, name)().double(), atol=1e-9), name
