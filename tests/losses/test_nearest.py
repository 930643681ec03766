"""nearest_neighbors: every implementation against the full-distance reference; the Triton
kernel under TRITON_INTERPRET=1 in a subprocess (so the env var is set before triton loads)."""
import textwrap

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from geo4g.losses import _nearest
from geo4g.losses._nearest import nearest_neighbors

from .._triton_interpreter import HAS_TRITON, run_interpreted


def _naive(x, y, xl, yl, norm):
    B, N = x.shape[:2]
    d = torch.zeros(B, N, dtype=x.dtype)
    i = torch.full((B, N), -1, dtype=torch.long)
    for b in range(B):
        if xl[b] == 0 or yl[b] == 0:
            continue
        diff = x[b, : xl[b], None] - y[b, None, : yl[b]]
        dd = diff.square().sum(-1) if norm == 2 else diff.abs().sum(-1)
        d[b, : xl[b]], i[b, : xl[b]] = dd.min(1)
    return d, i


@settings(max_examples=40, deadline=None)
@given(B=st.integers(1, 3), N=st.integers(0, 40), M=st.integers(0, 40), D=st.integers(1, 5),
       norm=st.sampled_from([1, 2]), seed=st.integers(0, 2**31 - 1),
       method=st.sampled_from(["reference", "blocked", "kdtree", "auto"]))
def test_nearest_matches_naive(B, N, M, D, norm, seed, method):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(B, N, D, generator=g, dtype=torch.float64)
    y = torch.rand(B, M, D, generator=g, dtype=torch.float64)
    xl = torch.randint(0, N + 1, (B,), generator=g)
    yl = torch.randint(0, M + 1, (B,), generator=g)
    d, i = nearest_neighbors(x, y, xl, yl, norm=norm, method=method)
    wd, wi = _naive(x, y, xl, yl, norm)
    torch.testing.assert_close(d, wd)
    assert torch.equal(i, wi)  # continuous random data: no ties


def test_nearest_padding_and_empty_conventions():
    x, y = torch.rand(2, 4, 3), torch.rand(2, 3, 3)
    d, i = nearest_neighbors(x, y, torch.tensor([2, 4]), torch.tensor([3, 0]))
    assert (i[0, 2:] == -1).all() and (d[0, 2:] == 0).all()
    assert (i[1] == -1).all() and (d[1] == 0).all()
    assert (i[0, :2] >= 0).all()


def test_nearest_has_no_gradient():
    x = torch.rand(1, 5, 3, requires_grad=True)
    d, _ = nearest_neighbors(x, torch.rand(1, 6, 3))
    assert not d.requires_grad


def test_nearest_blocked_small_blocks_cover_all_rows():
    g = torch.Generator().manual_seed(3)
    x, y = torch.rand(3, 50, 3, generator=g), torch.rand(3, 70, 3, generator=g)
    xl, yl = torch.tensor([50, 10, 33]), torch.tensor([70, 69, 1])
    for block in (1, 70, 150, 1000):
        i = _nearest._nn_blocked(x, y, xl, yl, 2, block_elements=block)
        want = _naive(x, y, xl, yl, 2)[1]
        mask = want >= 0
        assert torch.equal(i[mask], want[mask])


@pytest.mark.parametrize("method", ["blocked", "kdtree", "auto"])
def test_nearest_large_offset_finds_true_neighbour(method):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 300, 3, generator=g, dtype=torch.float32) + 1e5
    y = torch.rand(2, 400, 3, generator=g, dtype=torch.float32) + 1e5
    d, _ = nearest_neighbors(x, y, method=method)
    wd, _ = _naive(x.double(), y.double(), [300, 300], [400, 400], 2)
    torch.testing.assert_close(d.double(), wd, atol=1e-4, rtol=1e-3)


def test_nearest_auto_dispatch_by_size():
    small = torch.rand(1, 100, 3)
    assert _nearest._choose_method(small, small, 2) == "blocked"
    n = int(_nearest.KDTREE_MIN_PAIRS ** 0.5) + 1
    big = torch.rand(1, n, 3)
    assert _nearest._choose_method(big, big, 2) == "kdtree"
    assert _nearest._choose_method(torch.rand(1, n, 16), torch.rand(1, n, 16), 2) == "blocked"


def test_nearest_bad_input():
    with pytest.raises(ValueError, match="norm"):
        nearest_neighbors(torch.rand(1, 2, 3), torch.rand(1, 2, 3), norm=3)
    with pytest.raises(ValueError, match="method"):
        nearest_neighbors(torch.rand(1, 2, 3), torch.rand(1, 2, 3), method="fast")
    with pytest.raises(TypeError, match="y must have the dtype"):
        nearest_neighbors(torch.rand(1, 2, 3), torch.rand(1, 2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="x_lengths"):
        nearest_neighbors(torch.rand(1, 2, 3), torch.rand(1, 2, 3), x_lengths=torch.tensor([3]))


_TRITON_SCRIPT = textwrap.dedent(
    """
    import torch
    from geo4g.losses._nearest import nearest_neighbors
    from geo4g.losses import chamfer_distance
    g = torch.Generator().manual_seed(0)
    for dtype, offset in ((torch.float32, 0.0), (torch.float64, 0.0), (torch.float32, 1e5)):
        x = torch.rand(3, 37, 3, generator=g, dtype=dtype) + offset
        y = torch.rand(3, 45, 3, generator=g, dtype=dtype) + offset
        xl, yl = torch.tensor([37, 20, 0]), torch.tensor([45, 0, 17])
        t = nearest_neighbors(x, y, xl, yl, method="triton")
        r = nearest_neighbors(x, y, xl, yl, method="reference")
        torch.testing.assert_close(t.dists, r.dists, atol=1e-4 if offset else 1e-6, rtol=1e-4)
        if not offset:
            assert torch.equal(t.idx, r.idx), (t.idx, r.idx)
    x = torch.rand(2, 9, 3, dtype=torch.float64, requires_grad=True)
    y = torch.rand(2, 7, 3, dtype=torch.float64, requires_grad=True)
    a = chamfer_distance(x, y, method="triton")[0]
    b = chamfer_distance(x, y, method="reference")[0]
    torch.testing.assert_close(a, b)
    print("TRITON-OK")
    """
)


@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
def test_nearest_triton_kernel_interpreted_matches_reference():
    out = run_interpreted(_TRITON_SCRIPT)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "TRITON-OK" in out.stdout


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("method", ["auto", "blocked"] + (["triton"] if HAS_TRITON else []))
def test_nearest_cuda_matches_cpu(method):
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(4, 3000, 3, generator=g), torch.rand(4, 2500, 3, generator=g)
    xl, yl = torch.tensor([3000, 1, 0, 1700]), torch.tensor([2500, 2500, 9, 0])
    want = nearest_neighbors(x, y, xl, yl, method="kdtree")
    got = nearest_neighbors(x.cuda(), y.cuda(), xl.cuda(), yl.cuda(), method=method)
    torch.testing.assert_close(got.dists.cpu(), want.dists, atol=1e-6, rtol=1e-5)
