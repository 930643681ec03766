"""Mesh regularisers against brute-force loops per mesh (ragged batches, isolated vertices, non-manifold
edges with three and four faces, either winding), gradients in float64, empty batches, bad input."""
import itertools
import math

import pytest
import torch

from geo4g.meshes.regularizers import mesh_edge_loss, mesh_laplacian_smoothing, mesh_normal_consistency
from geo4g.structures import Meshes

from ._meshes import grid_mesh, sphere_mesh


# ----------------------------------------------------------------------------- naive twins
def _unique_edges(faces):
    edges = set()
    for a, b, c in faces.tolist():
        edges |= {tuple(sorted(e)) for e in ((a, b), (b, c), (c, a))}
    return sorted(edges)


def naive_laplacian_smoothing(meshes, method):
    total = 0.0
    for verts, faces in zip(meshes.verts_list(), meshes.faces_list()):
        V = verts.shape[0]
        v = verts.double()
        if method == "uniform":
            nbrs = {i: [] for i in range(V)}
            for a, b in _unique_edges(faces):
                nbrs[a].append(b)
                nbrs[b].append(a)
            lap = [(torch.stack([v[j] for j in nbrs[i]]).mean(0) if nbrs[i] else 0 * v[i]) - v[i] for i in range(V)]
        else:
            W = torch.zeros(V, V, dtype=torch.float64)
            area = torch.zeros(V, dtype=torch.float64)
            for f in faces.tolist():
                for k in range(3):
                    p, i, j = f[k], f[(k + 1) % 3], f[(k + 2) % 3]
                    u, w = v[i] - v[p], v[j] - v[p]
                    angle = math.acos(float(u @ w) / float(u.norm() * w.norm()))
                    W[i, j] += 1 / math.tan(angle)
                    W[j, i] += 1 / math.tan(angle)
                a = 0.5 * float(torch.linalg.cross(v[f[1]] - v[f[0]], v[f[2]] - v[f[0]]).norm())
                area[f] += a
            lap = []
            for i in range(V):
                s = W[i].sum()
                weighted = (W[i][:, None] * (v - v[i])).sum(0)
                if method == "cot":
                    lap.append(weighted / s if s > 0 else W[i] @ v * s - v[i])
                else:
                    lap.append(weighted / (4 * area[i]) if area[i] > 0 else 0 * v[i])
        total += sum(float(x.norm()) for x in lap) / V
    return total / len(meshes)


def naive_edge_loss(meshes, target):
    total = 0.0
    for verts, faces in zip(meshes.verts_list(), meshes.faces_list()):
        edges = _unique_edges(faces)
        if edges:
            total += sum((float((verts[a] - verts[b]).double().norm()) - target) ** 2 for a, b in edges) / len(edges)
    return total / len(meshes)


def naive_normal_consistency(meshes):
    total = 0.0
    for verts, faces in zip(meshes.verts_list(), meshes.faces_list()):
        v = verts.double()
        values = []
        for a, b in _unique_edges(faces):
            opposite = [next(x for x in f if x not in (a, b)) for f in faces.tolist() if a in f and b in f]
            e = v[b] - v[a]
            normals = [torch.linalg.cross(e, v[o] - v[a]) for o in opposite]
            c = len(normals)
            for i, j in itertools.product(range(c - 1), range(1, c)):
                if i != j:
                    values.append(1 - float(torch.cosine_similarity(normals[i], -normals[j], dim=0)))
        if values:
            total += sum(values) / len(values)
    return total / len(meshes)


def ragged_batch(dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    v1, f1 = sphere_mesh(1, dtype=dtype)
    v1 = v1 * (1 + 0.2 * torch.rand(v1.shape[0], 1, generator=g, dtype=dtype))
    v2, f2 = grid_mesh(4, jitter=0.5, dtype=dtype)
    v2[:, 2] = 0.3 * torch.rand(16, generator=g, dtype=dtype)
    f2 = torch.cat([f2[:9], f2[9:].flip(1)])  # mixed winding
    v3 = torch.cat([v2[:5], torch.tensor([[3.0, 3.0, 3.0]], dtype=dtype)])  # an isolated vertex
    f3 = torch.tensor([[0, 1, 4], [1, 2, 4]])
    return Meshes([v1, v2, v3], [f1, f2, f3])


def nonmanifold(dtype=torch.float64, four=False):
    verts = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0.4, 1, 0.1], [0.5, -1, 0.2], [0.3, 0.2, 1], [0.6, 0.1, -1]],
                         dtype=dtype)
    faces = [[0, 1, 2], [1, 0, 3], [0, 1, 4]] + ([[5, 1, 0]] if four else [])
    return Meshes([verts], [torch.tensor(faces)])


# ----------------------------------------------------------------------------- values
@pytest.mark.parametrize("method", ["uniform", "cot", "cotcurv"])
def test_laplacian_smoothing_matches_naive(method, device):
    meshes = ragged_batch()
    got = mesh_laplacian_smoothing(Meshes([v.to(device) for v in meshes.verts_list()],
                                          [f.to(device) for f in meshes.faces_list()]), method)
    assert float(got) == pytest.approx(naive_laplacian_smoothing(meshes, method), rel=1e-9)


@pytest.mark.parametrize("target", [0.0, 0.3])
def test_edge_loss_matches_naive(target, device):
    meshes = ragged_batch()
    got = mesh_edge_loss(Meshes([v.to(device) for v in meshes.verts_list()],
                                [f.to(device) for f in meshes.faces_list()]), target)
    assert float(got) == pytest.approx(naive_edge_loss(meshes, target), rel=1e-12)


def test_normal_consistency_matches_naive(device):
    meshes = ragged_batch()
    got = mesh_normal_consistency(Meshes([v.to(device) for v in meshes.verts_list()],
                                         [f.to(device) for f in meshes.faces_list()]))
    assert float(got) == pytest.approx(naive_normal_consistency(meshes), rel=1e-12)


def test_normal_consistency_is_zero_when_flat_and_winding_free():
    verts, faces = grid_mesh(4)
    flipped = torch.cat([faces[::2], faces[1::2].flip(1)])
    for f in (faces, flipped):
        assert abs(float(mesh_normal_consistency(Meshes([verts], [f])))) < 1e-12
    folded = Meshes([torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 1e-9]], dtype=torch.float64)],
                    [torch.tensor([[0, 1, 2], [0, 1, 3]])])
    assert float(mesh_normal_consistency(folded)) == pytest.approx(2.0, abs=1e-6)


@pytest.mark.parametrize("four", [False, True])
def test_normal_consistency_on_nonmanifold_edges_pairs_like_pytorch3d(four):
    meshes = nonmanifold(four=four)
    # Three faces on the edge (0, 1): 3 pairs; four faces: PyTorch3D's loops give 7 pairs (one repeated).
    assert float(mesh_normal_consistency(meshes)) == pytest.approx(naive_normal_consistency(meshes), rel=1e-12)
    from geo4g.meshes.regularizers import _face_pairs_per_edge

    counts = 4 if four else 3
    assert _face_pairs_per_edge(torch.zeros(counts, dtype=torch.long), 1).shape[0] == (7 if four else 3)


def test_laplacian_and_edge_losses_on_nonmanifold_mesh_match_naive():
    meshes = nonmanifold(four=True)
    for method in ("uniform", "cot", "cotcurv"):
        assert float(mesh_laplacian_smoothing(meshes, method)) == pytest.approx(
            naive_laplacian_smoothing(meshes, method), rel=1e-9)
    assert float(mesh_edge_loss(meshes, 0.5)) == pytest.approx(naive_edge_loss(meshes, 0.5), rel=1e-12)


def test_smooth_sphere_has_small_cot_losses():
    verts, faces = sphere_mesh(3)
    meshes = Meshes([verts], [faces])
    # sum_j (cot a + cot b)(v_j - v_i) = 4 A_voronoi H n, divided by 4 * (sum of the face areas at i)
    # = 4 * 3 A_voronoi (PyTorch3D's normalisation): H / 3 = 1/3 on the unit sphere.
    assert float(mesh_laplacian_smoothing(meshes, "cotcurv")) == pytest.approx(1 / 3, rel=0.03)
    assert float(mesh_normal_consistency(meshes)) < 0.02


# ----------------------------------------------------------------------------- gradients, edges
@pytest.mark.parametrize("loss", [
    lambda m: mesh_laplacian_smoothing(m, "uniform"), lambda m: mesh_edge_loss(m, 0.2), mesh_normal_consistency])
def test_gradcheck_float64(loss):
    meshes = ragged_batch()
    faces = meshes.faces_list()[1:]
    verts = [v.clone().requires_grad_() for v in meshes.verts_list()[1:]]
    assert torch.autograd.gradcheck(lambda a, b: loss(Meshes([a, b], faces)), tuple(verts))


@pytest.mark.parametrize("method", ["cot", "cotcurv"])
def test_cot_smoothing_gradient_treats_weights_as_constants(method):
    """As in PyTorch3D the cotangent weights are constants: the gradient is that of the loss with the
    weights frozen at the current vertices (checked by gradcheck with frozen weights)."""
    from geo4g.meshes.laplacian_matrices import cot_laplacian

    meshes = ragged_batch()
    verts0, faces = meshes.verts_list()[1], meshes.faces_list()[1]
    L, inv_areas = cot_laplacian(verts0, faces)
    L = L.to_dense()
    rows = L.sum(1, keepdim=True)

    def frozen(v):
        if method == "cot":
            return ((L @ v) / rows - v).norm(dim=1).mean()
        return ((L @ v - rows * v) * 0.25 * inv_areas).norm(dim=1).mean()

    assert torch.autograd.gradcheck(frozen, (verts0.clone().requires_grad_(),))
    v = verts0.clone().requires_grad_()
    mesh_laplacian_smoothing(Meshes([v], [faces]), method).backward()
    w = verts0.clone().requires_grad_()
    frozen(w).backward()
    torch.testing.assert_close(v.grad, w.grad)


@pytest.mark.parametrize("loss", [mesh_laplacian_smoothing, mesh_edge_loss, mesh_normal_consistency])
def test_empty_batches_return_zero_with_grad(loss):
    for meshes in (Meshes([], []), Meshes([torch.rand(3, 3)], [torch.zeros(0, 3, dtype=torch.long)])):
        out = loss(meshes)
        assert out.shape == (1,) and float(out.detach()) == 0.0 and out.requires_grad
        out.sum().backward()


def test_normal_consistency_without_shared_edges_is_zero_with_grad():
    verts = torch.rand(3, 3, dtype=torch.float64, requires_grad=True)
    out = mesh_normal_consistency(Meshes([verts], [torch.tensor([[0, 1, 2]])]))
    assert float(out.detach()) == 0.0
    out.backward()
    assert verts.grad is not None and (verts.grad == 0).all()


def test_losses_reduce_under_gradient_descent():
    g = torch.Generator().manual_seed(1)
    verts, faces = sphere_mesh(2)
    noisy = (verts + 0.05 * torch.randn(verts.shape, generator=g, dtype=torch.float64)).requires_grad_()
    opt = torch.optim.SGD([noisy], lr=0.05)
    first = None
    for _ in range(30):
        meshes = Meshes([noisy], [faces])
        loss = mesh_laplacian_smoothing(meshes, "uniform") + mesh_normal_consistency(meshes)
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.7 * first


def test_bad_input_raises_clear_errors():
    meshes = ragged_batch()
    with pytest.raises(ValueError, match="method must be one of"):
        mesh_laplacian_smoothing(meshes, "cotan")
    with pytest.raises(TypeError, match="meshes must be a geo4g.structures.Meshes"):
        mesh_edge_loss(torch.zeros(3, 3))
    with pytest.raises(TypeError, match="meshes must be a geo4g.structures.Meshes"):
        mesh_normal_consistency([meshes])
    with pytest.raises(TypeError, match="target_length must be a float"):
        mesh_edge_loss(meshes, target_length=torch.tensor(1.0))
