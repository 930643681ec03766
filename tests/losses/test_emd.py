"""earth_movers_distance: brute-force twin on tiny sets, exact vs auction, gradients, ragged, bad input."""
import itertools
import math
import sys

import numpy as np
import pytest
import torch

from geo4g.losses import emd as emd_module
from geo4g.losses.emd import EMDResult, earth_movers_distance
from geo4g.structures import Pointclouds

METHODS = ["exact", "approx"]


def _naive_emd(x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean Euclidean distance of the best of all permutations (n <= 6)."""
    n = x.shape[0]
    if n == 0:
        return 0.0
    cost = torch.cdist(x.double(), y.double())
    best = min(sum(float(cost[i, p[i]]) for i in range(n)) for p in itertools.permutations(range(n)))
    return best / n


def _rand(B, N, seed=0, dtype=torch.float32, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(B, N, 3, generator=g, dtype=torch.float64)
    y = torch.rand(B, N, 3, generator=g, dtype=torch.float64)
    return x.to(dtype=dtype, device=device), y.to(dtype=dtype, device=device)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("n", [1, 2, 3, 5, 6])
def test_emd_matches_brute_force_on_tiny_sets(method, n):
    x, y = _rand(3, n, seed=n, dtype=torch.float64)
    got = earth_movers_distance(x, y, method=method, reduction=None, tol=1e-6)
    want = torch.tensor([_naive_emd(x[b], y[b]) for b in range(3)], dtype=torch.float64)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_emd_matching_is_a_permutation_and_gives_the_value(method):
    x, y = _rand(2, 40, seed=1)
    res = earth_movers_distance(x, y, method=method, reduction=None, return_matching=True)
    assert isinstance(res, EMDResult)
    assert res.matching.shape == (2, 40) and res.matching.dtype == torch.long
    for b in range(2):
        assert torch.equal(res.matching[b].sort().values, torch.arange(40))
        value = (x[b] - y[b, res.matching[b]]).norm(dim=-1).mean()
        torch.testing.assert_close(res.dist[b], value)


def test_approx_within_tolerance_of_exact(device):
    x, y = _rand(3, 128, seed=2, device=device)
    exact = earth_movers_distance(x, y, method="exact", reduction=None)
    approx = earth_movers_distance(x, y, method="approx", reduction=None, tol=0.01)
    assert bool((approx >= exact * (1 - 1e-5)).all())  # never below the optimum
    assert bool((approx <= exact * 1.01).all())


def test_approx_tighter_tol_is_closer():
    x, y = _rand(1, 100, seed=3)
    exact = earth_movers_distance(x, y, method="exact")
    approx = earth_movers_distance(x, y, method="approx", tol=1e-3)
    assert float(approx) <= float(exact) * 1.001 + 1e-6


@pytest.mark.parametrize("method", METHODS)
def test_emd_gradcheck_float64(method):
    # well-separated points: the matching is stable under gradcheck's small perturbations
    x, y = _rand(2, 5, seed=4, dtype=torch.float64)
    x.requires_grad_(True)
    y.requires_grad_(True)
    fn = lambda a, b: earth_movers_distance(a, b, method=method, reduction="sum", tol=1e-6)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, y), eps=1e-7, atol=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_emd_gradient_equals_analytic_gradient_of_matched_pairs(method):
    x, y = _rand(2, 30, seed=5, dtype=torch.float64)
    x.requires_grad_(True)
    y.requires_grad_(True)
    res = earth_movers_distance(x, y, method=method, reduction="mean", return_matching=True, tol=1e-6)
    res.dist.backward()
    gx = torch.zeros_like(x)
    gy = torch.zeros_like(y)
    for b in range(2):
        d = x[b].detach() - y[b, res.matching[b]].detach()
        unit = d / d.norm(dim=-1, keepdim=True) / (2 * 30)
        gx[b] = unit
        gy[b].index_add_(0, res.matching[b], -unit)
    torch.testing.assert_close(x.grad, gx)
    torch.testing.assert_close(y.grad, gy)


@pytest.mark.parametrize("method", METHODS)
def test_emd_batched_and_ragged_match_per_element_calls(method):
    x, y = _rand(4, 20, seed=6)
    lengths = torch.tensor([20, 7, 1, 13])
    y[1, 7:] = 1e3  # padding content must not matter
    res = earth_movers_distance(x, y, lengths, lengths, method=method, reduction=None, return_matching=True)
    for b, n in enumerate(lengths.tolist()):
        one = earth_movers_distance(x[b:b + 1, :n], y[b:b + 1, :n], method=method, reduction=None)
        torch.testing.assert_close(res.dist[b:b + 1], one)
        assert bool((res.matching[b, n:] == -1).all())
        assert torch.equal(res.matching[b, :n].sort().values, torch.arange(n))
    summed = earth_movers_distance(x, y, lengths, lengths, method=method, reduction="sum")
    mean = earth_movers_distance(x, y, lengths, lengths, method=method, reduction="mean")
    torch.testing.assert_close(summed, res.dist.sum())
    torch.testing.assert_close(mean, res.dist.mean())


def test_emd_accepts_pointclouds():
    x, y = _rand(2, 10, seed=7)
    px = Pointclouds([x[0], x[1, :6]])
    py = Pointclouds([y[0], y[1, :6]])
    lengths = torch.tensor([10, 6])
    want = earth_movers_distance(x, y, lengths, lengths, reduction=None)
    torch.testing.assert_close(earth_movers_distance(px, py, reduction=None), want)


def test_emd_padded_sizes_may_differ_when_lengths_agree():
    x, y = _rand(2, 12, seed=8)
    lengths = torch.tensor([5, 9])
    got = earth_movers_distance(x, y[:, :9], lengths, lengths, reduction=None)
    torch.testing.assert_close(got, earth_movers_distance(x, y, lengths, lengths, reduction=None))


@pytest.mark.parametrize("method", METHODS)
def test_emd_duplicates_and_identical_clouds(method):
    x = torch.tensor([[[0.0, 0, 0], [0, 0, 0], [1, 0, 0], [1, 0, 0]]], requires_grad=True)
    y = torch.tensor([[[1.0, 0, 0], [0, 0, 0], [0, 0, 0], [1, 0, 0]]])
    d = earth_movers_distance(x, y, method=method)
    assert d.item() == 0.0
    d.backward()
    assert torch.isfinite(x.grad).all() and float(x.grad.abs().sum()) == 0.0
    same = torch.zeros(1, 6, 3)
    assert float(earth_movers_distance(same, same.clone(), method=method)) == 0.0
    # duplicated points on one side only
    a = torch.tensor([[[0.0, 0, 0], [0, 0, 0], [2, 0, 0]]])
    b = torch.tensor([[[1.0, 0, 0], [0, 0, 0], [2, 0, 0]]])
    assert math.isclose(float(earth_movers_distance(a, b, method=method)), 1 / 3, rel_tol=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_emd_single_point(method):
    x = torch.tensor([[[0.0, 0, 0]]])
    y = torch.tensor([[[3.0, 4, 0]]])
    res = earth_movers_distance(x, y, method=method, return_matching=True)
    assert float(res.dist) == pytest.approx(5.0)
    assert res.matching.tolist() == [[0]]


@pytest.mark.parametrize("method", METHODS)
def test_emd_empty_clouds_give_zero_without_nan(method):
    x, y = _rand(3, 6, seed=9)
    x.requires_grad_(True)
    lengths = torch.tensor([0, 4, 0])
    res = earth_movers_distance(x, y, lengths, lengths, method=method, reduction=None, return_matching=True)
    assert res.dist[0] == 0 and res.dist[2] == 0 and res.dist[1] > 0
    assert bool((res.matching[0] == -1).all())
    res.dist.sum().backward()
    assert torch.isfinite(x.grad).all() and float(x.grad[0].abs().sum()) == 0.0
    # all clouds empty, and no points at all
    zero = torch.zeros(3, dtype=torch.long)
    assert earth_movers_distance(x, y, zero, zero, method=method).item() == 0.0
    assert earth_movers_distance(torch.zeros(2, 0, 3), torch.zeros(2, 0, 3), method=method, reduction=None).tolist() == [0, 0]
    assert earth_movers_distance(torch.zeros(0, 5, 3), torch.zeros(0, 5, 3), method=method, reduction="sum").item() == 0.0


@pytest.mark.parametrize("method", METHODS)
def test_emd_huge_coordinates(method):
    x, y = _rand(1, 50, seed=10, dtype=torch.float64)
    base = earth_movers_distance(x, y, method="exact")
    for scale in (1e6, 1e20):
        got = earth_movers_distance(x * scale, y * scale, method=method, tol=1e-3)
        assert torch.isfinite(got)
        assert float(got) / scale == pytest.approx(float(base), rel=1.5e-3)
    shifted = earth_movers_distance(x + 1e8, y + 1e8, method=method, tol=1e-3)
    assert float(shifted) == pytest.approx(float(base), rel=1.5e-3)
    big = torch.full((1, 2, 3), 1e30)
    big[0, 1] *= -1
    assert torch.isfinite(earth_movers_distance(big, big.flip(1), method=method))


@pytest.mark.parametrize("method", METHODS)
def test_emd_is_deterministic(method):
    x, y = _rand(2, 64, seed=11)
    a = earth_movers_distance(x, y, method=method, reduction=None, return_matching=True)
    b = earth_movers_distance(x, y, method=method, reduction=None, return_matching=True)
    assert torch.equal(a.dist, b.dist) and torch.equal(a.matching, b.matching)


def test_emd_auto_is_exact_below_the_size_threshold():
    x, y = _rand(1, 30, seed=12)
    assert torch.equal(earth_movers_distance(x, y), earth_movers_distance(x, y, method="exact"))


def test_emd_bad_input_names_the_argument():
    x, y = _rand(2, 5, seed=13)
    with pytest.raises(ValueError, match="batch size"):
        earth_movers_distance(x, y[:1])
    with pytest.raises(ValueError, match="last dimension"):
        earth_movers_distance(x, y[..., :2])
    with pytest.raises(ValueError, match="x_lengths"):
        earth_movers_distance(x, y, torch.tensor([6, 5]), torch.tensor([5, 5]))
    with pytest.raises(ValueError, match="equal size"):
        earth_movers_distance(x, y, torch.tensor([5, 4]), torch.tensor([5, 5]))
    with pytest.raises(ValueError, match="equal size"):
        earth_movers_distance(x, torch.rand(2, 4, 3))
    bad = x.clone()
    bad[1, 2, 0] = float("nan")
    with pytest.raises(ValueError, match="x must be finite"):
        earth_movers_distance(bad, y)
    bad = y.clone()
    bad[0, 0, 1] = float("inf")
    with pytest.raises(ValueError, match="y must be finite"):
        earth_movers_distance(x, bad)
    with pytest.raises(ValueError, match="method"):
        earth_movers_distance(x, y, method="sinkhorn")
    with pytest.raises(ValueError, match="reduction"):
        earth_movers_distance(x, y, reduction="max")
    with pytest.raises(ValueError, match="tol"):
        earth_movers_distance(x, y, method="approx", tol=0)
    with pytest.raises(ValueError, match="x must have 3 dimensions"):
        earth_movers_distance(x[0], y[0])
    with pytest.raises(TypeError, match="y must be a torch.Tensor"):
        earth_movers_distance(x, y.tolist())
    with pytest.raises(TypeError, match="dtype"):
        earth_movers_distance(x, y.double())
    with pytest.raises(TypeError, match="x must be a floating point"):
        earth_movers_distance(x.long(), y)


# ---- the numba auction (CPU "approx") and its torch fallback --------------------------------

needs_numba = pytest.mark.skipif(emd_module._numba_kernels() is None, reason="numba not importable")
_NUMBA_MOD = "geo4g.losses._kernels.emd_numba"


def _spy(monkeypatch, name):
    """Count the calls of ``emd_module.<name>`` (still calling through)."""
    calls = []
    real = getattr(emd_module, name)

    def wrapper(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(emd_module, name, wrapper)
    return calls


def _no_numba(monkeypatch):
    """Make the lazy import of the numba kernels fail, as without numba installed."""
    monkeypatch.setitem(sys.modules, _NUMBA_MOD, None)
    assert emd_module._numba_kernels() is None


def _shape_pair(n, seed):
    from geo4g.meshes import sample_points_from_meshes
    from geo4g.parametric import box_mesh, cylinder_mesh, icosphere
    from geo4g.structures import Meshes

    g = torch.Generator().manual_seed(seed)
    a = sample_points_from_meshes(Meshes([icosphere(2)[0], box_mesh((1.0, 0.8, 0.6))[0]],
                                         [icosphere(2)[1], box_mesh((1.0, 0.8, 0.6))[1]]), n, generator=g)
    b = sample_points_from_meshes(Meshes([icosphere(2)[0], cylinder_mesh(0.5, 1.2)[0]],
                                         [icosphere(2)[1], cylinder_mesh(0.5, 1.2)[1]]), n, generator=g)
    return a, b  # sphere vs sphere (two samplings), box vs cylinder


def _check_within_tol(x, y, tol, lengths=None):
    exact = earth_movers_distance(x, y, lengths, lengths, method="exact", reduction=None)
    res = earth_movers_distance(x, y, lengths, lengths, method="approx", reduction=None, tol=tol,
                                return_matching=True)
    assert bool((res.dist >= exact * (1 - 1e-5) - 1e-7).all())  # never below the optimum
    assert bool((res.dist <= exact * (1 + tol) + 1e-7).all()), (res.dist, exact)
    n = lengths if lengths is not None else torch.full((x.shape[0],), x.shape[1])
    for b, nb in enumerate(n.tolist()):
        assert torch.equal(res.matching[b, :nb].sort().values, torch.arange(nb))
        assert bool((res.matching[b, nb:] == -1).all())
    return res


@needs_numba
@pytest.mark.parametrize("n", [64, 100, 256])
@pytest.mark.parametrize("tol", [0.01, 1e-3])
def test_numba_approx_permutation_within_tol_on_random_clouds(monkeypatch, n, tol):
    calls = _spy(monkeypatch, "_match_numba")
    x, y = _rand(3, n, seed=20 + n)
    _check_within_tol(x, y, tol)
    assert calls, "the CPU approx path should use the numba kernel"


@needs_numba
def test_numba_approx_within_tol_on_shape_samples(monkeypatch):
    calls = _spy(monkeypatch, "_match_numba")
    x, y = _shape_pair(200, seed=21)
    _check_within_tol(x, y, 0.01)
    _check_within_tol(x.double(), y.double(), 1e-3)
    assert calls


@needs_numba
def test_numba_approx_duplicates_single_point_and_empty(monkeypatch):
    calls = _spy(monkeypatch, "_match_numba")
    g = torch.Generator().manual_seed(22)
    sites = torch.rand(8, 3, generator=g)
    x = sites[torch.randint(0, 8, (2, 96), generator=g)]  # 96 points on 8 sites, heavy ties
    y = sites[torch.randint(0, 8, (2, 96), generator=g)]
    _check_within_tol(x, y, 0.01)
    same = torch.rand(1, 50, 3, generator=g).expand(2, 50, 3).contiguous()
    assert float(earth_movers_distance(same[:1], same[1:], method="approx")) == 0.0
    assert float(earth_movers_distance(torch.ones(1, 40, 3), torch.ones(1, 40, 3), method="approx")) == 0.0
    lengths = torch.tensor([1, 0, 64, 2])
    x, y = _rand(4, 64, seed=23)
    res = _check_within_tol(x, y, 0.01, lengths)
    assert res.dist[1] == 0 and res.matching[0, 0] == 0
    torch.testing.assert_close(res.dist[0], (x[0, 0] - y[0, 0]).norm())
    assert calls


@needs_numba
def test_numba_and_torch_auction_give_the_same_guarantee(monkeypatch):
    x, y = _rand(2, 128, seed=24)
    exact = earth_movers_distance(x, y, method="exact", reduction=None)
    fast = earth_movers_distance(x, y, method="approx", reduction=None, tol=0.01)
    monkeypatch.setattr(emd_module, "_numba_kernels", lambda: None)
    slow = earth_movers_distance(x, y, method="approx", reduction=None, tol=0.01)
    for value in (fast, slow):
        assert bool((value >= exact * (1 - 1e-5)).all()) and bool((value <= exact * 1.01).all())


def test_approx_falls_back_to_the_torch_auction_without_numba(monkeypatch):
    _no_numba(monkeypatch)
    torch_calls = _spy(monkeypatch, "_match_auction")
    numba_calls = _spy(monkeypatch, "_match_numba")
    x, y = _rand(2, 96, seed=25)
    _check_within_tol(x, y, 0.01)
    assert torch_calls and not numba_calls
    # and "auto" stays exact at any size
    exact_calls = _spy(monkeypatch, "_match_exact")
    monkeypatch.setattr(emd_module, "_AUTO_APPROX_MIN_N", 16)
    earth_movers_distance(x, y)
    assert exact_calls


@needs_numba
def test_auto_uses_numba_from_the_size_threshold(monkeypatch):
    numba_calls = _spy(monkeypatch, "_match_numba")
    exact_calls = _spy(monkeypatch, "_match_exact")
    n = emd_module._AUTO_APPROX_MIN_N
    x, y = _rand(1, n, seed=26)
    earth_movers_distance(x, y)
    assert numba_calls and not exact_calls
    earth_movers_distance(x[:, : n - 1], y[:, : n - 1])
    assert len(numba_calls) == 1 and exact_calls


@pytest.mark.parametrize("backend", [pytest.param("numba", marks=needs_numba), "torch"])
def test_approx_gradient_flows_through_the_matched_pairs(monkeypatch, backend):
    if backend == "torch":
        _no_numba(monkeypatch)
    x, y = _rand(2, 48, seed=27, dtype=torch.float64)
    x.requires_grad_(True)
    y.requires_grad_(True)
    res = earth_movers_distance(x, y, method="approx", reduction="mean", return_matching=True, tol=1e-3)
    res.dist.backward()
    gx, gy = torch.zeros_like(x), torch.zeros_like(y)
    for b in range(2):
        d = x[b].detach() - y[b, res.matching[b]].detach()
        unit = d / d.norm(dim=-1, keepdim=True) / (2 * 48)
        gx[b] = unit
        gy[b].index_add_(0, res.matching[b], -unit)
    torch.testing.assert_close(x.grad, gx)
    torch.testing.assert_close(y.grad, gy)


def _kernels():
    return emd_module._numba_kernels()


@needs_numba
@pytest.mark.parametrize("n", [2, 3, 5, 31, 32, 33, 65, 300])
def test_numba_certificate_brackets_the_exact_optimum(n):
    # on the very float32 costs the kernel uses: dual <= optimum <= primal <= (1 + tol) * dual
    from scipy.optimize import linear_sum_assignment

    k = _kernels()
    g = torch.Generator().manual_seed(40 + n)
    x, y = torch.rand(n, 3, generator=g).numpy(), torch.rand(n, 3, generator=g).numpy()
    width = -(-n // k._CHUNK) * k._CHUNK
    cost = np.empty((n, width), dtype=np.float32)
    cmax, nn_mean = k._euclidean_cost(x, y, cost)
    assert bool(np.isinf(cost[:, n:]).all())
    reference = torch.cdist(torch.from_numpy(x).double(), torch.from_numpy(y).double()).numpy()
    np.testing.assert_allclose(cost[:, :n], reference, rtol=1e-6, atol=1e-7)
    assert cmax == cost[:, :n].max() and nn_mean == pytest.approx(cost[:, :n].min(1).mean(), rel=1e-6)
    rows, cols = linear_sum_assignment(cost[:, :n].astype(np.float64))
    optimum = float(cost[rows, cols].astype(np.float64).sum())
    for tol in (0.01, 1e-3):
        assign, primal, dual, certified = k._auction(cost, n, max(nn_mean, 1e-3 * cmax), 1e-6 * cmax, 2 * nn_mean,
                                                     tol, 16, k._FACTOR, min(k._K, n), min(k._KMAX, n), 64 * n)
        assert certified
        assert sorted(assign.tolist()) == list(range(n))
        assert primal == pytest.approx(float(cost[np.arange(n), assign].astype(np.float64).sum()), rel=1e-9)
        assert dual <= optimum * (1 + 1e-6) + 1e-9
        assert optimum <= primal * (1 + 1e-6) + 1e-9
        assert primal - dual <= tol * dual + 1e-9


@needs_numba
def test_numba_scan_lists_are_valid_bounds_with_and_without_ties():
    # the list invariant the auction relies on: listed values <= thr < every unlisted value
    # (<= for the tie fallback), and (w1, w2, j1) are the row's exact best two
    k = _kernels()
    g = torch.Generator().manual_seed(41)
    n, width = 300, 320
    K, KMAX = k._K, k._KMAX
    rows = {
        "distinct": torch.rand(n, generator=g).numpy(),
        "three values": torch.tensor([0.5, 0.25, 0.75])[torch.randint(0, 3, (n,), generator=g)].numpy(),
        "all equal": np.full(n, 0.5),
        "two near ties": np.concatenate([np.full(40, 0.1), np.full(n - 40, 0.2)]),
        "a tie above a few": np.concatenate([[0.05, 0.07, 0.09], np.full(100, 0.1), np.linspace(0.2, 1, n - 103)]),
    }
    for name, values in rows.items():
        cost = np.full((1, width), np.inf, dtype=np.float32)
        cost[0, :n] = values
        price = np.zeros(width, dtype=np.float32)
        if name == "distinct":
            price[:n] = torch.rand(n, generator=g).numpy() * 0.01
        for spread_guess in (1e-6, 0.01, 10.0):
            cand = np.zeros((1, KMAX), dtype=np.int32)
            candc = np.zeros((1, KMAX), dtype=np.float32)
            clen = np.zeros(1, dtype=np.int32)
            thr = np.full(1, -np.inf, dtype=np.float32)
            spread = np.zeros(1, dtype=np.float32)
            ws = np.empty(width, dtype=np.float32)
            box = np.zeros(1, dtype=np.int32)
            w1, w2, j1 = k._scan(cost, n, price, 0, cand, candc, clen, thr, spread, K, KMAX, np.float32(1e-7), ws,
                                 ws.view(np.int32), np.empty(width // 64, dtype=np.int64),
                                 np.full(1, spread_guess, dtype=np.float32), box, box.view(np.float32))
            full = cost[0, :n] + price[:n]
            listed = cand[0, :clen[0]]
            assert 2 <= clen[0] <= KMAX and len(set(listed.tolist())) == clen[0], name
            assert bool((listed < n).all()), name
            np.testing.assert_array_equal(candc[0, :clen[0]], cost[0, listed])
            assert bool((full[listed] <= thr[0]).all()), name
            others = np.setdiff1d(np.arange(n), listed)
            assert bool((full[others] >= thr[0]).all()), name
            order = np.sort(full)
            assert (w1, w2) == (order[0], order[1]) and full[j1] == w1, name
            if name in ("three values", "all equal", "a tie above a few"):  # no cut separates the tie
                assert clen[0] == KMAX and thr[0] == order[KMAX - 1], name


@needs_numba
def test_numba_small_clouds_list_every_column():
    # n <= _KMAX: the list is the whole row and never goes stale
    k = _kernels()
    for n in (2, 3, k._KMAX):
        g = torch.Generator().manual_seed(42 + n)
        x, y = torch.rand(1, n, 3, generator=g), torch.rand(1, n, 3, generator=g)
        _check_within_tol(x, y, 1e-6)


@needs_numba
@pytest.mark.parametrize("name", ["collinear", "two clusters", "one cloud on a point", "few sites", "grid"])
def test_numba_approx_within_tol_on_degenerate_inputs(monkeypatch, name):
    calls = _spy(monkeypatch, "_match_numba")
    g = torch.Generator().manual_seed(43)
    n = 200
    t = torch.rand(2, n, 1, generator=g)
    if name == "collinear":
        x, y = t[:1] * torch.tensor([1.0, 2, 3]), t[1:] * torch.tensor([1.0, 2, 3])
    elif name == "two clusters":
        shift = torch.tensor([10.0, 0, 0]) * (torch.arange(n) % 2)[:, None]
        x = torch.rand(1, n, 3, generator=g) * 0.01 + shift
        y = torch.rand(1, n, 3, generator=g) * 0.01 + shift.flip(0)
    elif name == "one cloud on a point":
        x, y = torch.full((1, n, 3), 0.25), torch.rand(1, n, 3, generator=g)
    elif name == "few sites":  # ties that no cut separates: the lists take the exact fallback
        sites = torch.rand(3, 3, generator=g)
        x = sites[torch.randint(0, 3, (1, n), generator=g)]
        y = sites[torch.randint(0, 3, (1, n), generator=g)]
    else:  # both clouds on one lattice: many equal distances
        axis = torch.arange(6.0)
        lattice = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)[:n]
        x, y = lattice[None], lattice[torch.randperm(n, generator=g)][None] + torch.tensor([0.5, 0, 0])
    _check_within_tol(x, y, 0.01)
    assert calls


@needs_numba
@pytest.mark.parametrize("dim", [1, 2, 5])
def test_numba_approx_within_tol_in_other_dimensions(dim):
    g = torch.Generator().manual_seed(44 + dim)
    x, y = torch.rand(2, 150, dim, generator=g), torch.rand(2, 150, dim, generator=g)
    _check_within_tol(x, y, 0.01)


@needs_numba
def test_numba_half_precision_input():
    x, y = _rand(2, 120, seed=45)
    got = earth_movers_distance(x.half(), y.half(), method="approx", reduction=None)
    exact = earth_movers_distance(x.half().float(), y.half().float(), method="exact", reduction=None)
    assert got.dtype == torch.float16
    assert bool((got.float() <= exact * 1.01 + 1e-2).all()) and bool((got.float() >= exact * 0.99 - 1e-2).all())


@pytest.mark.parametrize("backend", [pytest.param("numba", marks=needs_numba), "torch"])
def test_approx_solves_exactly_what_the_phase_cap_leaves_uncertified(monkeypatch, backend):
    # one phase cannot certify tol=1e-5 on 300 points: those pairs are solved exactly instead
    if backend == "torch":
        _no_numba(monkeypatch)
    exact_calls = _spy(monkeypatch, "_match_exact")
    x, y = _rand(2, 300, seed=46)
    lengths = torch.tensor([300, 250])
    capped = earth_movers_distance(x, y, lengths, lengths, method="approx", reduction=None, tol=1e-5, max_phases=1,
                                   return_matching=True)
    assert len(exact_calls) == 2
    exact = earth_movers_distance(x, y, lengths, lengths, method="exact", reduction=None, return_matching=True)
    torch.testing.assert_close(capped.dist, exact.dist)
    assert bool((capped.matching[1, 250:] == -1).all())
    if backend == "numba":  # and with room to certify, no pair needs the exact solver
        before = len(exact_calls)
        earth_movers_distance(x, y, lengths, lengths, method="approx", tol=0.01)
        assert len(exact_calls) == before


@needs_numba
def test_numba_phase_bid_budget_leaves_the_pair_to_the_exact_solver(monkeypatch):
    # points on a line make auctions slow; a phase over budget hands the pair to the exact solver
    k = _kernels()
    line = torch.linspace(0, 1, 300)[None, :, None] * torch.tensor([1.0, 2.0, 3.0])
    x, y = line, line + 0.002
    _, certified = k._match(x[0].numpy(), y[0].numpy(), 0.01, 16)
    exact_calls = _spy(monkeypatch, "_match_exact")
    monkeypatch.setattr(k, "_PHASE_BIDS_PER_ROW", 1)
    matching, capped = k._match(x[0].numpy(), y[0].numpy(), 0.01, 16)
    assert certified and not capped
    res = _check_within_tol(x, y, 0.01)
    assert len(exact_calls) == 2  # the budgeted approx call and the reference
    torch.testing.assert_close(res.dist, earth_movers_distance(x, y, method="exact", reduction=None))


@needs_numba
def test_numba_batch_on_threads_equals_one_pair_at_a_time(monkeypatch):
    x, y = _rand(5, 200, seed=47)
    lengths = torch.tensor([200, 0, 150, 199, 2])
    one = earth_movers_distance(x, y, lengths, lengths, method="approx", reduction=None, return_matching=True)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        threaded = earth_movers_distance(x, y, lengths, lengths, method="approx", reduction=None,
                                         return_matching=True)
    finally:
        torch.set_num_threads(previous)
    assert torch.equal(threaded.matching, one.matching)
    torch.testing.assert_close(threaded.dist, one.dist)
    for b, n in enumerate(lengths.tolist()):
        assert torch.equal(one.matching[b, :n].sort().values, torch.arange(n))
