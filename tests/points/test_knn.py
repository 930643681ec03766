"""knn_points / knn_gather: every path against a naive twin (ragged lengths, duplicates, exact ties,
K > length, empty and single-point clouds, D = 2, 3, 5, float32/float64, both norms), gradients,
bad input; the Triton kernel under TRITON_INTERPRET=1 in a subprocess (the env var must be set
before triton is imported)."""
import importlib.util
import textwrap

import pytest
import torch

from geo4g.points import knn as knn_module
from geo4g.points import knn_gather, knn_points

from .._triton_interpreter import HAS_TRITON, run_interpreted

HAS_NUMBA = importlib.util.find_spec("numba") is not None
CPU_METHODS = ["reference", "blocked", "kdtree", "auto"] + (["grid"] if HAS_NUMBA else [])


def _naive(p1, p2, l1, l2, norm, K):
    """One query point at a time: distances summed over the coordinates in order, ranked by (distance, index)."""
    B, P1, D = p1.shape
    dists = torch.zeros(B, P1, K, dtype=p1.dtype)
    idx = torch.zeros(B, P1, K, dtype=torch.long)
    for b in range(B):
        for i in range(int(l1[b])):
            diff = p1[b, i] - p2[b, : int(l2[b])]
            d = torch.zeros(diff.shape[0], dtype=p1.dtype)
            for k in range(D):
                d = d + (diff[:, k] * diff[:, k] if norm == 2 else diff[:, k].abs())
            order = sorted(range(d.shape[0]), key=lambda j: (d[j].item(), j))[:K]
            idx[b, i, : len(order)] = torch.tensor(order, dtype=torch.long)
            dists[b, i, : len(order)] = d[order]
    return dists, idx


def _clouds(seed, B=3, P1=30, P2=40, D=3, dtype=torch.float64):
    """Random ragged clouds with duplicated points (in p2, and p1 points sitting on p2 points)."""
    g = torch.Generator().manual_seed(seed)
    p1 = torch.rand(B, P1, D, generator=g, dtype=dtype)
    p2 = torch.rand(B, P2, D, generator=g, dtype=dtype)
    p2[:, 5:9] = p2[:, 2:3]
    p1[:, :3] = p2[:, 2:5]
    l1 = torch.tensor([P1, 0, 7])[:B]
    l2 = torch.tensor([P2, 11, 1])[:B]
    return p1, p2, l1, l2


@pytest.mark.parametrize("method", CPU_METHODS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("D", [2, 3, 5])
@pytest.mark.parametrize("norm", [1, 2])
def test_knn_ragged_lengths_match_naive(method, dtype, D, norm):
    p1, p2, l1, l2 = _clouds(D * 10 + norm, D=D, dtype=dtype)
    for K in (1, 4, 13):  # 13 > lengths2 of two clouds
        got = knn_points(p1, p2, l1, l2, norm=norm, K=K, return_nn=True, method=method)
        want_d, want_i = _naive(p1, p2, l1, l2, norm, K)
        assert torch.equal(got.idx, want_i), (K, (got.idx != want_i).nonzero()[:5])
        assert torch.equal(got.dists, want_d)
        assert torch.equal(got.knn, knn_gather(p2, want_i, l2) * (torch.arange(p1.shape[1]) < l1[:, None])[..., None, None])


@pytest.mark.parametrize("method", CPU_METHODS)
def test_knn_exact_ties_go_to_lower_index(method):
    # integer lattice: many neighbours at exactly the same distance; and a cloud of one repeated point
    axis = torch.arange(4, dtype=torch.float32)
    lattice = torch.cartesian_prod(axis, axis, axis)[torch.randperm(64, generator=torch.Generator().manual_seed(0))]
    same = torch.full((64, 3), 0.5)
    p = torch.stack([lattice, same])
    for K in (3, 7, 20):
        got = knn_points(p, p, K=K, method=method)
        want_d, want_i = _naive(p, p, [64, 64], [64, 64], 2, K)
        assert torch.equal(got.idx, want_i), (K, (got.idx != want_i).nonzero()[:5])
        assert torch.equal(got.dists, want_d)
        assert torch.equal(got.idx[1], torch.arange(K).expand(64, K))


@pytest.mark.parametrize("method", CPU_METHODS)
def test_knn_empty_single_point_and_zero_size(method):
    p1 = torch.rand(3, 5, 3)
    p2 = torch.rand(3, 4, 3)
    got = knn_points(p1, p2, torch.tensor([5, 5, 0]), torch.tensor([0, 1, 4]), K=2, method=method)
    assert (got.idx[0] == 0).all() and (got.dists[0] == 0).all()
    assert (got.idx[1] == 0).all() and (got.dists[1, :, 1] == 0).all()
    torch.testing.assert_close(got.dists[1, :, 0], ((p1[1] - p2[1, 0]) ** 2).sum(-1), rtol=0, atol=0)
    assert (got.dists[2] == 0).all()
    out = knn_points(torch.rand(2, 3, 3), torch.rand(2, 0, 3), K=4, return_nn=True, method=method)
    assert out.idx.shape == (2, 3, 4) and (out.idx == 0).all() and out.knn.shape == (2, 3, 4, 3)
    assert knn_points(torch.rand(0, 3, 3), torch.rand(0, 2, 3), K=1, method=method).idx.shape == (0, 3, 1)
    no_coords = knn_points(torch.rand(2, 4, 0), torch.rand(2, 3, 0), K=2, method=method)  # D = 0: all tie at 0
    assert (no_coords.idx == torch.tensor([0, 1])).all() and (no_coords.dists == 0).all()


@pytest.mark.parametrize("method", CPU_METHODS)
def test_knn_large_offset_and_queries_outside_the_cloud(method):
    g = torch.Generator().manual_seed(5)
    p2 = torch.rand(2, 300, 3, generator=g) + 1e4
    p1 = torch.cat([torch.rand(2, 20, 3, generator=g) + 1e4, torch.rand(2, 10, 3, generator=g) * 50 + 1e4 - 20], 1)
    want = knn_points(p1, p2, K=6, method="reference")
    got = knn_points(p1, p2, K=6, method=method)
    assert torch.equal(got.idx, want.idx) and torch.equal(got.dists, want.dists)


def test_knn_paths_agree_on_clouds_split_over_threads():
    g = torch.Generator().manual_seed(2)
    p1, p2 = torch.rand(2, 1500, 3, generator=g), torch.rand(2, 1200, 3, generator=g)
    l1, l2 = torch.tensor([1500, 1100]), torch.tensor([1200, 900])
    want = knn_points(p1, p2, l1, l2, K=9, method="blocked")
    for method in ["kdtree"] + (["grid"] if HAS_NUMBA else []):
        got = knn_points(p1, p2, l1, l2, K=9, method=method)
        assert torch.equal(got.idx, want.idx) and torch.equal(got.dists, want.dists)


def test_knn_blocked_small_blocks_and_high_dimension():
    p1, p2, l1, l2 = _clouds(3, D=3)
    want = knn_points(p1, p2, l1, l2, K=5, method="reference")
    for block in (1, 40, 130):
        idx = knn_module._knn_idx_blocked(p1, p2, l2, 2, 5, block_elements=block)
        mask = (torch.arange(5) < l2[:, None, None]) & (torch.arange(p1.shape[1])[:, None] < l1[:, None, None])
        assert torch.equal(idx[mask], want.idx[mask])
    # D > EXACT_MAX_DIM: a matmul expansion proposes candidates, exact distances rank them
    p1, p2, l1, l2 = _clouds(4, D=12)
    for norm in (1, 2):
        got = knn_points(p1, p2, l1, l2, norm=norm, K=6, method="blocked")
        want_d, want_i = _naive(p1, p2, l1, l2, norm, 6)
        assert torch.equal(got.idx, want_i) and torch.equal(got.dists, want_d)


@pytest.mark.skipif(not HAS_NUMBA, reason="numba is not installed")
def test_knn_grid_without_gradient_returns_the_kernel_distances():
    p1, p2, l1, l2 = _clouds(6, dtype=torch.float32)
    fast = knn_points(p1, p2, l1, l2, K=5, method="grid")
    slow = knn_points(p1.clone().requires_grad_(), p2, l1, l2, K=5, method="grid")
    assert not fast.dists.requires_grad and slow.dists.requires_grad
    assert torch.equal(fast.dists, slow.dists.detach()) and torch.equal(fast.idx, slow.idx)


@pytest.mark.parametrize("method", ["reference", "auto"] + (["grid"] if HAS_NUMBA else []))
@pytest.mark.parametrize("norm", [1, 2])
def test_knn_gradcheck(method, norm):
    g = torch.Generator().manual_seed(7)
    p1 = torch.rand(2, 6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    p2 = torch.rand(2, 8, 3, generator=g, dtype=torch.float64, requires_grad=True)
    l1, l2 = torch.tensor([6, 4]), torch.tensor([8, 3])

    def fn(a, b):
        out = knn_points(a, b, l1, l2, norm=norm, K=4, return_nn=True, method=method)
        return out.dists, out.knn

    assert torch.autograd.gradcheck(fn, (p1, p2))


def test_knn_gather_with_lengths():
    g = torch.Generator().manual_seed(8)
    x = torch.rand(2, 5, 4, generator=g, requires_grad=True)
    idx = torch.randint(0, 5, (2, 3, 6), generator=g)
    out = knn_gather(x, idx, torch.tensor([5, 2]))
    for b, n in ((0, 5), (1, 2)):
        for i in range(3):
            for k in range(6):
                want = x[b, idx[b, i, k]] if k < n else torch.zeros(4)
                assert torch.equal(out[b, i, k], want)
    out.sum().backward()
    assert x.grad is not None
    assert knn_gather(torch.rand(2, 0, 4), torch.zeros(2, 3, 2, dtype=torch.long)).shape == (2, 3, 2, 4)


def test_knn_auto_dispatch(monkeypatch):
    small, big = torch.rand(1, 100, 3), torch.rand(1, 600, 3)
    l_small, l_big = torch.tensor([100]), torch.tensor([600])
    grid = "grid" if HAS_NUMBA else "blocked"
    assert knn_module._choose_method(small, small, l_small, l_small, 8) == grid
    assert knn_module._choose_method(big, big, l_big, l_big, 8) == ("grid" if HAS_NUMBA else "kdtree")
    wide = torch.rand(1, 600, 16)
    assert knn_module._choose_method(wide, wide, l_big, l_big, 8) == "blocked"
    half = big.half()
    assert knn_module._choose_method(half, half, l_big, l_big, 8) == "blocked"
    monkeypatch.setattr(knn_module, "numba_kernels", lambda name: None)  # numba not installed
    assert knn_module._choose_method(small, small, l_small, l_small, 8) == "blocked"
    assert knn_module._choose_method(big, big, l_big, l_big, 8) == "kdtree"
    monkeypatch.setattr(knn_module, "triton_available", lambda: False)
    assert knn_module._choose_method(big.to("meta"), big.to("meta"), l_big, l_big, 8) == "blocked"


def test_knn_bad_input_names_the_argument():
    p = torch.rand(2, 5, 3)
    for K in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="K"):
            knn_points(p, p, K=K)
    with pytest.raises(ValueError, match="norm"):
        knn_points(p, p, norm=3)
    with pytest.raises(ValueError, match="method"):
        knn_points(p, p, method="fast")
    with pytest.raises(ValueError, match="p1"):
        knn_points(torch.rand(5, 3), p)
    with pytest.raises(ValueError, match="p2"):
        knn_points(p, torch.rand(3, 5, 3))
    with pytest.raises(ValueError, match="p2"):
        knn_points(p, torch.rand(2, 5, 2))
    with pytest.raises(TypeError, match="p2"):
        knn_points(p, p.double())
    with pytest.raises(TypeError, match="p1"):
        knn_points(torch.ones(2, 5, 3, dtype=torch.long), p)
    with pytest.raises(ValueError, match="lengths1"):
        knn_points(p, p, lengths1=torch.tensor([6, 1]))
    with pytest.raises(ValueError, match="lengths2"):
        knn_points(p, p, lengths2=torch.tensor([-1, 1]))
    with pytest.raises(ValueError, match="lengths2"):
        knn_points(p, p, lengths2=torch.tensor([1, 1, 1]))
    bad = p.clone()
    bad[1, 2, 0] = float("nan")
    with pytest.raises(ValueError, match="p1"):
        knn_points(bad, p)
    knn_points(bad, p, lengths1=torch.tensor([5, 2]))  # NaN in a padding row is fine
    with pytest.raises(ValueError, match="idx"):
        knn_gather(p, torch.full((2, 1, 1), 5))
    with pytest.raises(TypeError, match="idx"):
        knn_gather(p, torch.zeros(2, 1, 1))
    with pytest.raises(ValueError, match="lengths"):
        knn_gather(p, torch.zeros(2, 1, 1, dtype=torch.long), torch.tensor([6, 0]))
    with pytest.raises(ValueError, match="K <= 32"):
        knn_points(p, p, K=33, method="triton")


_TRITON_SCRIPT = textwrap.dedent(
    """
    import torch
    from geo4g.points import knn_points
    g = torch.Generator().manual_seed(0)
    for dtype, D, norm, K in ((torch.float32, 3, 2, 5), (torch.float64, 2, 1, 20), (torch.float32, 5, 2, 1),
                              (torch.float16, 3, 2, 4)):
        p1 = torch.rand(3, 21, D, generator=g, dtype=dtype)
        p2 = torch.rand(3, 27, D, generator=g, dtype=dtype)
        p2[:, 5:12] = p2[:, 2:3]
        p1[:, :3] = p2[:, 2:5]
        l1, l2 = torch.tensor([21, 0, 9]), torch.tensor([27, 13, 1])
        t = knn_points(p1, p2, l1, l2, norm=norm, K=K, method="triton")
        r = knn_points(p1, p2, l1, l2, norm=norm, K=K, method="reference")
        assert torch.equal(t.idx, r.idx), (t.idx - r.idx).nonzero()[:5]
        assert torch.equal(t.dists, r.dists)
    print("TRITON-OK")
    """
)


@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
def test_knn_triton_kernel_interpreted_matches_reference():
    out = run_interpreted(_TRITON_SCRIPT)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "TRITON-OK" in out.stdout


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("method", ["auto", "blocked", "reference"] + (["triton"] if HAS_TRITON else []))
def test_knn_cuda_matches_cpu(method):
    p1, p2, l1, l2 = _clouds(9, P1=300, P2=500, dtype=torch.float32)
    want = knn_points(p1, p2, l1, l2, K=12, method="blocked")
    got = knn_points(p1.cuda(), p2.cuda(), l1.cuda(), l2.cuda(), K=12, method=method)
    assert torch.equal(got.idx.cpu(), want.idx)
    torch.testing.assert_close(got.dists.cpu(), want.dists)
