"""Per-mesh operators for surface networks: gradient operators against analytic gradients, the basis
against laplacian_eigenpairs, the caches, padded batches, HKS features, long-edge subdivision
(conforming, surface kept, labels carried) and face-to-vertex labels against a naive vote."""
import math

import pytest
import torch

from geo4g.meshes import surface_data
from geo4g.meshes.laplacian_matrices import cotangent_weights, mass_matrix
from geo4g.meshes.spectral import laplacian_eigenpairs
from geo4g.meshes.surface_data import (
    SurfaceBatch,
    SurfaceOperators,
    batch_operators,
    clear_operators_cache,
    face_to_vertex_labels,
    hks_features,
    subdivide_long_edges,
    surface_operators,
)
from geo4g.parametric.primitives import icosphere
from geo4g.structures import Meshes


# ----------------------------------------------------------------------------- small meshes
def grid(n=6, jitter=0.4, seed=0, dtype=torch.float64):
    """A flat jittered ``n x n`` grid in the z=0 plane over ``[0, 1]^2``."""
    xs = torch.linspace(0, 1, n, dtype=dtype)
    yy, xx = torch.meshgrid(xs, xs, indexing="ij")
    verts = torch.stack([xx.reshape(-1), yy.reshape(-1), torch.zeros(n * n, dtype=dtype)], 1)
    g = torch.Generator().manual_seed(seed)
    interior = ((xx > 0) & (xx < 1) & (yy > 0) & (yy < 1)).reshape(-1)
    verts[interior, :2] += jitter / (n - 1) * (torch.rand(int(interior.sum()), 2, generator=g, dtype=dtype) - 0.5)
    faces = []
    for r in range(n - 1):
        for c in range(n - 1):
            a, b, d, e = r * n + c, r * n + c + 1, (r + 1) * n + c, (r + 1) * n + c + 1
            faces += [[a, b, e], [a, e, d]] if (r + c) % 2 == 0 else [[a, b, d], [b, e, d]]
    return verts, torch.tensor(faces)


def sphere(subdivisions=1, dtype=torch.float64, scale=(1.0, 1.0, 1.0)):
    v, f = icosphere(subdivisions, dtype=dtype)
    return v * torch.tensor(scale, dtype=dtype), f


def bumpy_sphere(subdivisions=1, seed=0):
    """An icosphere with radial noise: no symmetry, so the eigenvalues are simple."""
    v, f = sphere(subdivisions)
    g = torch.Generator().manual_seed(seed)
    return v * (1 + 0.1 * torch.rand(v.shape[0], 1, generator=g, dtype=v.dtype)), f


def two_spheres():
    """Two disjoint spheres of different sizes as one mesh (two connected components)."""
    a, fa = sphere(1)
    b, fb = sphere(1, scale=(0.5, 0.6, 0.7))
    return torch.cat([a, b + torch.tensor([3.0, 0, 0], dtype=a.dtype)]), torch.cat([fa, fb + a.shape[0]])


@pytest.fixture(autouse=True)
def fresh_cache():
    clear_operators_cache()
    yield
    clear_operators_cache()


# ----------------------------------------------------------------------------- gradient operators
def test_gradient_of_linear_function_on_flat_mesh_is_exact():
    verts, faces = grid(7)
    ops = surface_operators(verts, faces, k=8)
    a, b = 0.7, -1.3
    f = (a * verts[:, 0] + b * verts[:, 1] + 0.25)[:, None]
    gx = torch.sparse.mm(ops.grad_x, f)[:, 0]
    gy = torch.sparse.mm(ops.grad_y, f)[:, 0]
    want = torch.tensor([a, b, 0.0], dtype=verts.dtype)
    torch.testing.assert_close(gx, ops.frames[:, 0] @ want, atol=1e-12, rtol=0)
    torch.testing.assert_close(gy, ops.frames[:, 1] @ want, atol=1e-12, rtol=0)


def test_frames_are_orthonormal_and_normals_point_outwards():
    verts, faces = sphere(2)
    ops = surface_operators(verts, faces, k=4)
    gram = ops.frames @ ops.frames.transpose(1, 2)
    torch.testing.assert_close(gram, torch.eye(3, dtype=verts.dtype).expand_as(gram), atol=1e-12, rtol=0)
    assert float((ops.frames[:, 2] * verts).sum(-1).min()) > 0.99
    # Right-handed: e1 x e2 = n.
    torch.testing.assert_close(torch.linalg.cross(ops.frames[:, 0], ops.frames[:, 1], dim=-1), ops.frames[:, 2],
                               atol=1e-12, rtol=0)


def test_gradient_is_tangent_gradient_on_sphere():
    verts, faces = sphere(4)
    ops = surface_operators(verts, faces, k=4)
    f = verts[:, 2:3]  # the height; its surface gradient is e_z minus its normal part
    g = torch.cat([torch.sparse.mm(ops.grad_x, f), torch.sparse.mm(ops.grad_y, f)], 1)
    n = ops.frames[:, 2]
    ez = torch.tensor([0, 0, 1.0], dtype=verts.dtype)
    tangent = ez - n[:, 2:3] * n
    want = torch.stack([(ops.frames[:, 0] * tangent).sum(-1), (ops.frames[:, 1] * tangent).sum(-1)], 1)
    assert float((g - want).norm(dim=1).max()) < 0.03


# ----------------------------------------------------------------------------- operators and cache
def test_operators_match_eigenpairs_and_mass():
    verts, faces = bumpy_sphere(1)
    ops = surface_operators(verts, faces, k=10)
    ref = laplacian_eigenpairs(verts, faces, k=10, cache=False)
    torch.testing.assert_close(ops.evals, ref.evals)
    torch.testing.assert_close(ops.evecs, ref.evecs)
    torch.testing.assert_close(ops.mass, mass_matrix(verts, faces).to_dense().diagonal())
    assert isinstance(ops, SurfaceOperators) and ops.k == 10 and ops.num_verts == verts.shape[0]
    assert ops.stiffness.shape == (verts.shape[0],) * 2 and ops.grad_x.is_sparse


def test_operators_follow_dtype_and_disconnected_meshes_have_zero_modes():
    verts, faces = two_spheres()
    ops = surface_operators(verts.float(), faces, k=6)
    assert ops.evals.dtype == torch.float32 and ops.evecs.dtype == torch.float32
    assert int((ops.evals.abs() < 1e-4).sum()) == 2


def test_cache_in_memory_and_on_disk(tmp_path, monkeypatch):
    verts, faces = bumpy_sphere(1)
    calls = []
    real = surface_data._compute
    monkeypatch.setattr(surface_data, "_compute", lambda *a: calls.append(1) or real(*a))
    a = surface_operators(verts, faces, k=5, cache_dir=tmp_path)
    b = surface_operators(verts, faces, k=5, cache_dir=tmp_path)
    assert len(calls) == 1 and len(list(tmp_path.glob("*.pt"))) == 1
    clear_operators_cache()
    c = surface_operators(verts, faces, k=5, cache_dir=tmp_path)
    assert len(calls) == 1
    for x, y, z in zip(a, b, c):
        torch.testing.assert_close(x.to_dense() if x.is_sparse else x, z.to_dense() if z.is_sparse else z)
        torch.testing.assert_close(x.to_dense() if x.is_sparse else x, y.to_dense() if y.is_sparse else y)
    surface_operators(verts, faces, k=6, cache_dir=tmp_path)
    assert len(calls) == 2
    surface_operators(verts, faces, k=6, cache=False)
    assert len(calls) == 3


def test_corrupt_cache_file_names_the_file(tmp_path):
    verts, faces = bumpy_sphere(1)
    surface_operators(verts, faces, k=5, cache_dir=tmp_path)
    path = next(tmp_path.glob("*.pt"))
    path.write_bytes(b"not a checkpoint")
    clear_operators_cache()
    with pytest.raises(ValueError, match=path.name):
        surface_operators(verts, faces, k=5, cache_dir=tmp_path)


def test_meshes_batch_gives_one_result_per_mesh():
    a, fa = bumpy_sphere(1)
    b, fb = grid(5)
    out = surface_operators(Meshes([a, b], [fa, fb]), k=4)
    assert [o.num_verts for o in out] == [a.shape[0], b.shape[0]]
    torch.testing.assert_close(out[1].evals, surface_operators(b, fb, k=4).evals)


def test_bad_input_raises():
    verts, faces = grid(4)
    with pytest.raises(ValueError, match="k must lie in"):
        surface_operators(verts, faces, k=17)
    with pytest.raises(ValueError, match="laplacian"):
        surface_operators(verts, faces, k=3, laplacian="uniform")
    bad = verts.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="verts must be finite"):
        surface_operators(bad, faces, k=3)
    with pytest.raises(ValueError, match="faces"):
        surface_operators(verts, faces + 100, k=3)
    with pytest.raises(TypeError, match="k must be an int"):
        surface_operators(verts, faces, k=2.0)


# ----------------------------------------------------------------------------- batches
def test_batch_pads_with_zeros_and_blocks_apply_per_mesh():
    a, fa = bumpy_sphere(1)
    b, fb = grid(5)
    oa, ob = surface_operators(a, fa, k=6), surface_operators(b, fb, k=4)
    batch = batch_operators([oa, ob], num_verts=50)
    assert isinstance(batch, SurfaceBatch)
    assert batch.evecs.shape == (2, 50, 6) and batch.evals.shape == (2, 6) and batch.mass.shape == (2, 50)
    assert batch.lengths.tolist() == [42, 25]
    assert float(batch.evecs[1, 25:].abs().sum()) == 0 and float(batch.evecs[1, :, 4:].abs().sum()) == 0
    assert float(batch.mass[1, 25:].abs().sum()) == 0 and batch.mask()[1].sum() == 25
    x = torch.randn(2, 50, 3, dtype=torch.float64)
    gx = torch.sparse.mm(batch.grad_x, x.reshape(100, 3)).reshape(2, 50, 3)
    torch.testing.assert_close(gx[0, :42], torch.sparse.mm(oa.grad_x, x[0, :42]))
    torch.testing.assert_close(gx[1, :25], torch.sparse.mm(ob.grad_x, x[1, :25]))
    assert float(gx[:, 42:].abs().sum()) == 0 or float(gx[1, 25:].abs().sum()) == 0
    moved = batch.to(dtype=torch.float32)
    assert moved.evecs.dtype == torch.float32 and moved.lengths.dtype == torch.long


def test_batch_bad_input():
    a, fa = grid(4)
    ops = surface_operators(a, fa, k=3)
    with pytest.raises(TypeError, match="list of SurfaceOperators"):
        batch_operators(ops)
    with pytest.raises(ValueError, match="num_verts"):
        batch_operators([ops], num_verts=3)
    with pytest.raises(ValueError, match="share one dtype"):
        batch_operators([ops, ops.to(dtype=torch.float32)])
    with pytest.raises(ValueError, match="mass"):
        batch_operators([ops._replace(mass=ops.mass[:-1])])


def test_hks_features_have_unit_mean_and_batch_like_single():
    a, fa = bumpy_sphere(1)
    b, fb = two_spheres()
    oa, ob = surface_operators(a, fa, k=12), surface_operators(b, fb, k=12)
    for ops in (oa, ob):
        h = hks_features(ops, 8)
        assert h.shape == (ops.num_verts, 8) and bool((h > 0).all())
        torch.testing.assert_close((ops.mass[:, None] * h).sum(0) / ops.mass.sum(), torch.ones(8, dtype=h.dtype))
    batch = batch_operators([oa, ob])
    hb = hks_features(batch, 8)
    torch.testing.assert_close(hb[0, :oa.num_verts], hks_features(oa, 8))
    torch.testing.assert_close(hb[1], hks_features(ob, 8))
    assert float(hb[0, oa.num_verts:].abs().sum()) == 0
    with pytest.raises(TypeError, match="ops"):
        hks_features(oa.evecs)


# ----------------------------------------------------------------------------- subdivision and labels
def _undirected_edge_counts(faces):
    e = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]).sort(1).values
    return torch.unique(e, dim=0, return_counts=True)[1]


def _signed_volume(v, f):
    return float((v[f[:, 0]] * torch.linalg.cross(v[f[:, 1]], v[f[:, 2]], dim=-1)).sum() / 6)


def test_subdivision_is_conforming_and_keeps_the_surface():
    from geo4g.parametric.primitives import box_mesh

    verts, faces = box_mesh((2.0, 0.1, 0.3), dtype=torch.float64)
    labels = (torch.arange(faces.shape[0]) // 2) % 3  # one label per side of the box
    v, f, lab = subdivide_long_edges(verts, faces, 0.15, labels)
    lengths = (v[f] - v[f[:, [1, 2, 0]]]).norm(dim=-1)
    assert float(lengths.max()) <= 0.15
    assert bool((_undirected_edge_counts(f) == 2).all())  # closed, no T-junction
    torch.testing.assert_close(v[:verts.shape[0]], verts)
    assert math.isclose(_signed_volume(v, f), _signed_volume(verts, faces), rel_tol=1e-12)
    area = lambda vv, ff: 0.5 * torch.linalg.cross(vv[ff[:, 1]] - vv[ff[:, 0]], vv[ff[:, 2]] - vv[ff[:, 0]],
                                                   dim=-1).norm(dim=-1)
    for label in range(3):
        assert math.isclose(float(area(v, f)[lab == label].sum()), float(area(verts, faces)[labels == label].sum()),
                            rel_tol=1e-12)
    # Without flips, the split diagonals leave negative cotangent weights; the flips remove those
    # inside the (flat) sides of the box, leaving only some along its creases.
    plain = subdivide_long_edges(verts, faces, 0.15, flip=False)
    negative = lambda vv, ff: int((cotangent_weights(vv, ff).coalesce().values() < -1e-9).sum())
    assert negative(v, f) < 0.5 * negative(*plain)
    vertex_normals = lambda vv, ff: torch.zeros_like(vv).index_add(0, ff.reshape(-1), torch.linalg.cross(
        vv[ff[:, 1]] - vv[ff[:, 0]], vv[ff[:, 2]] - vv[ff[:, 0]], dim=-1).repeat_interleave(3, 0))
    W = cotangent_weights(v, f).coalesce()
    i, j = W.indices()
    inside_a_side = (torch.nn.functional.cosine_similarity(vertex_normals(v, f)[i], vertex_normals(v, f)[j])
                     > 1 - 1e-9)
    assert float(W.values()[inside_a_side].min()) > -1e-12


def test_subdivision_without_long_edges_is_identity_and_bad_input_raises():
    verts, faces = grid(4)
    v, f = subdivide_long_edges(verts, faces, 10.0)
    assert torch.equal(v, verts) and torch.equal(f, faces)
    with pytest.raises(ValueError, match="max_edge"):
        subdivide_long_edges(verts, faces, 0.0)
    with pytest.raises(ValueError, match="max_faces"):
        subdivide_long_edges(verts, faces, 1e-3, max_faces=1000)
    with pytest.raises(ValueError, match="face_labels"):
        subdivide_long_edges(verts, faces, 0.1, torch.zeros(3, dtype=torch.long))


def test_face_to_vertex_labels_matches_naive_vote():
    g = torch.Generator().manual_seed(0)
    verts, faces = grid(6)
    labels = torch.randint(0, 4, (faces.shape[0],), generator=g)
    got = face_to_vertex_labels(faces, labels, verts.shape[0] + 1)
    for i in range(verts.shape[0]):
        counts = torch.bincount(labels[(faces == i).any(1)], minlength=4)
        assert int(got[i]) == int(counts.argmax())
    assert int(got[-1]) == -1
    with pytest.raises(ValueError, match="non-negative"):
        face_to_vertex_labels(faces, labels - 5, verts.shape[0])
