"""ball_query: every path against a naive twin (PyTorch3D's first K in index order, -1 padding, strict
radius), ragged lengths, duplicates, no neighbours, D = 2, 3, 5, float32/float64, gradients, bad
input; the Triton kernel under TRITON_INTERPRET=1 in a subprocess."""
import importlib
import importlib.util
import textwrap

import pytest
import torch

from geo4g.points import ball_query, knn_gather
from geo4g.points import knn as knn_module

from .._triton_interpreter import HAS_TRITON, run_interpreted

ball_module = importlib.import_module("geo4g.points.ball_query")  # the package exports a function of that name

HAS_NUMBA = importlib.util.find_spec("numba") is not None
CPU_METHODS = ["reference", "blocked", "kdtree", "auto"] + (["grid"] if HAS_NUMBA else [])


def _naive(p1, p2, l1, l2, K, radius):
    """PyTorch3D's loop: walk p2 in index order, keep points with squared distance < radius ** 2."""
    B, P1, D = p1.shape
    r2 = torch.tensor(radius * radius, dtype=p1.dtype)
    idx = torch.full((B, P1, K), -1, dtype=torch.long)
    dists = torch.zeros(B, P1, K, dtype=p1.dtype)
    for b in range(B):
        for i in range(int(l1[b])):
            diff = p1[b, i] - p2[b, : int(l2[b])]
            d = torch.zeros(diff.shape[0], dtype=p1.dtype)
            for k in range(D):
                d = d + diff[:, k] * diff[:, k]
            count = 0
            for j in range(d.shape[0]):
                if d[j] < r2:
                    idx[b, i, count], dists[b, i, count] = j, d[j]
                    count += 1
                    if count == K:
                        break
    return dists, idx


def _clouds(seed, B=3, P1=20, P2=40, D=3, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    p1 = torch.rand(B, P1, D, generator=g, dtype=dtype)
    p2 = torch.rand(B, P2, D, generator=g, dtype=dtype)
    p2[:, 5:9] = p2[:, 2:3]
    p1[:, :3] = p2[:, 2:5]
    p1[:, 3] = 5.0  # far from everything: no neighbours
    return p1, p2, torch.tensor([P1, 0, 7])[:B], torch.tensor([P2, 11, 1])[:B]


@pytest.mark.parametrize("method", CPU_METHODS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("D", [2, 3, 5])
def test_ball_query_ragged_lengths_match_naive(method, dtype, D):
    p1, p2, l1, l2 = _clouds(D, D=D, dtype=dtype)
    for K, radius in ((1, 0.3), (3, 0.45), (50, 0.6), (4, 1e-3)):
        got = ball_query(p1, p2, l1, l2, K=K, radius=radius, method=method)
        want_d, want_i = _naive(p1, p2, l1, l2, K, radius)
        assert torch.equal(got.idx, want_i), (K, radius, (got.idx != want_i).nonzero()[:5])
        assert torch.equal(got.dists, want_d)
        assert torch.equal(got.knn, knn_gather(p2, want_i.clamp_min(0)) * (want_i >= 0)[..., None])


@pytest.mark.parametrize("method", CPU_METHODS)
def test_ball_query_radius_is_strict_and_duplicates_keep_index_order(method):
    # lattice spacing 1: the six face neighbours sit exactly at radius 1 and are outside
    axis = torch.arange(4, dtype=torch.float32)
    lattice = torch.cartesian_prod(axis, axis, axis)[torch.randperm(64, generator=torch.Generator().manual_seed(0))]
    p = torch.stack([lattice, torch.full((64, 3), 0.5)])
    got = ball_query(p, p, K=5, radius=1.0, method=method)
    assert torch.equal(got.idx[0, :, 0], torch.arange(64)) and (got.idx[0, :, 1:] == -1).all()
    assert torch.equal(got.idx[1], torch.arange(5).expand(64, 5)) and (got.dists[1] == 0).all()
    wider = ball_query(p, p, K=7, radius=1.01, method=method)
    want_d, want_i = _naive(p, p, [64, 64], [64, 64], 7, 1.01)
    assert torch.equal(wider.idx, want_i) and torch.equal(wider.dists, want_d)


@pytest.mark.parametrize("method", CPU_METHODS)
def test_ball_query_empty_clouds_and_zero_size(method):
    p1, p2 = torch.rand(2, 4, 3), torch.rand(2, 5, 3)
    got = ball_query(p1, p2, torch.tensor([4, 0]), torch.tensor([0, 5]), K=3, radius=2.0, method=method)
    assert (got.idx == -1).all() and (got.dists == 0).all() and (got.knn == 0).all()
    out = ball_query(torch.rand(2, 3, 3), torch.rand(2, 0, 3), K=2, method=method)
    assert out.idx.shape == (2, 3, 2) and (out.idx == -1).all()
    no_coords = ball_query(torch.rand(2, 4, 0), torch.rand(2, 3, 0), K=4, method=method)  # D = 0: all at 0
    assert (no_coords.idx == torch.tensor([0, 1, 2, -1])).all()


def test_ball_query_paths_agree_on_clouds_split_over_threads():
    g = torch.Generator().manual_seed(2)
    p1, p2 = torch.rand(2, 1500, 3, generator=g), torch.rand(2, 2000, 3, generator=g)
    l1, l2 = torch.tensor([1500, 1100]), torch.tensor([2000, 900])
    want = ball_query(p1, p2, l1, l2, K=16, radius=0.1, method="blocked")
    for method in ["kdtree"] + (["grid"] if HAS_NUMBA else []):
        got = ball_query(p1, p2, l1, l2, K=16, radius=0.1, method=method)
        assert torch.equal(got.idx, want.idx) and torch.equal(got.dists, want.dists)
    blocks = ball_module._ball_idx_blocked(p1, p2, l1, l2, 16, torch.tensor(0.01), block_elements=5000)
    assert torch.equal(blocks, want.idx)


@pytest.mark.skipif(not HAS_NUMBA, reason="numba is not installed")
def test_ball_query_grid_without_gradient_returns_the_kernel_distances():
    p1, p2, l1, l2 = _clouds(6, dtype=torch.float32)
    fast = ball_query(p1, p2, l1, l2, K=5, radius=0.4, return_nn=False, method="grid")
    slow = ball_query(p1, p2.clone().requires_grad_(), l1, l2, K=5, radius=0.4, return_nn=False, method="grid")
    assert not fast.dists.requires_grad and slow.dists.requires_grad and fast.knn is None
    assert torch.equal(fast.dists, slow.dists.detach()) and torch.equal(fast.idx, slow.idx)


@pytest.mark.parametrize("method", ["reference", "auto"] + (["grid"] if HAS_NUMBA else []))
def test_ball_query_gradcheck(method):
    g = torch.Generator().manual_seed(7)
    p1 = torch.rand(2, 6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    p2 = torch.rand(2, 8, 3, generator=g, dtype=torch.float64, requires_grad=True)
    l1, l2 = torch.tensor([6, 4]), torch.tensor([8, 3])

    def fn(a, b):
        out = ball_query(a, b, l1, l2, K=4, radius=0.6, method=method)
        return out.dists, out.knn

    assert torch.autograd.gradcheck(fn, (p1, p2))


def test_ball_query_auto_dispatch(monkeypatch):
    small, big = torch.rand(1, 100, 3), torch.rand(1, 600, 3)
    l_small, l_big = torch.tensor([100]), torch.tensor([600])
    assert ball_module._choose_method(small, small, l_small, l_small) == ("grid" if HAS_NUMBA else "blocked")
    assert ball_module._choose_method(big, big, l_big, l_big) == ("grid" if HAS_NUMBA else "kdtree")
    assert ball_module._choose_method(big.half(), big.half(), l_big, l_big) == "blocked"
    monkeypatch.setattr(knn_module, "numba_kernels", lambda name: None)  # numba not installed
    assert ball_module._choose_method(small, small, l_small, l_small) == "blocked"
    assert ball_module._choose_method(big, big, l_big, l_big) == "kdtree"


def test_ball_query_bad_input_names_the_argument():
    p = torch.rand(2, 5, 3)
    for K in (0, -2, 2.0):
        with pytest.raises(ValueError, match="K"):
            ball_query(p, p, K=K)
    for radius in (0, -0.1, float("inf"), float("nan"), "1"):
        with pytest.raises(ValueError, match="radius"):
            ball_query(p, p, radius=radius)
    with pytest.raises(ValueError, match="method"):
        ball_query(p, p, method="fast")
    with pytest.raises(ValueError, match="p1"):
        ball_query(torch.rand(2, 5), p)
    with pytest.raises(ValueError, match="p2"):
        ball_query(p, torch.rand(1, 5, 3))
    with pytest.raises(ValueError, match="lengths1"):
        ball_query(p, p, lengths1=torch.tensor([9, 1]))
    with pytest.raises(TypeError, match="lengths2"):
        ball_query(p, p, lengths2=torch.tensor([1.0, 1.0]))
    bad = p.clone()
    bad[0, 0, 1] = float("nan")
    with pytest.raises(ValueError, match="p2"):
        ball_query(p, bad)


_TRITON_SCRIPT = textwrap.dedent(
    """
    import torch
    from geo4g.points import ball_query
    g = torch.Generator().manual_seed(0)
    for dtype, D, K, radius in ((torch.float32, 3, 5, 0.4), (torch.float64, 2, 40, 0.3), (torch.float32, 5, 2, 0.8)):
        p1 = torch.rand(3, 21, D, generator=g, dtype=dtype)
        p2 = torch.rand(3, 37, D, generator=g, dtype=dtype)
        p2[:, 5:12] = p2[:, 2:3]
        p1[:, :3] = p2[:, 2:5]
        l1, l2 = torch.tensor([21, 0, 9]), torch.tensor([37, 13, 1])
        t = ball_query(p1, p2, l1, l2, K=K, radius=radius, method="triton")
        r = ball_query(p1, p2, l1, l2, K=K, radius=radius, method="reference")
        assert torch.equal(t.idx, r.idx), (t.idx - r.idx).nonzero()[:5]
        assert torch.equal(t.dists, r.dists)
    print("TRITON-OK")
    """
)


@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
def test_ball_query_triton_kernel_interpreted_matches_reference():
    out = run_interpreted(_TRITON_SCRIPT)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "TRITON-OK" in out.stdout


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("method", ["auto", "blocked", "reference"] + (["triton"] if HAS_TRITON else []))
def test_ball_query_cuda_matches_cpu(method):
    p1, p2, l1, l2 = _clouds(9, P1=300, P2=500, dtype=torch.float32)
    want = ball_query(p1, p2, l1, l2, K=12, radius=0.2, method="blocked")
    got = ball_query(p1.cuda(), p2.cuda(), l1.cuda(), l2.cuda(), K=12, radius=0.2, method=method)
    assert torch.equal(got.idx.cpu(), want.idx)
    torch.testing.assert_close(got.dists.cpu(), want.dists)
