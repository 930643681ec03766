"""chamfer_distance against a naive full-distance twin, gradients, edges and bad input."""
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from geo4g.losses import chamfer_distance
from geo4g.structures import Pointclouds


def _chamfer_reference(x, y, x_lengths=None, y_lengths=None, x_normals=None, y_normals=None, weights=None,
                       batch_reduction="mean", point_reduction="mean", norm=2, single_directional=False,
                       abs_cosine=True):
    """PyTorch3D's semantics, written out with full pairwise distances and Python loops."""
    B, P1, _ = x.shape
    P2 = y.shape[1]
    xl = [P1] * B if x_lengths is None else x_lengths.tolist()
    yl = [P2] * B if y_lengths is None else y_lengths.tolist()
    normals = x_normals is not None and y_normals is not None

    def one_way(a, b, al, bl, an, bn):
        terms, nterms = a.new_zeros(B, a.shape[1]), a.new_zeros(B, a.shape[1])
        rows, nrows = [], []
        for i in range(B):
            t = a.new_zeros(a.shape[1])
            nt = a.new_zeros(a.shape[1])
            if al[i] > 0 and bl[i] > 0:
                diff = a[i, : al[i], None, :] - b[i, None, : bl[i], :]
                d = diff.square().sum(-1) if norm == 2 else diff.abs().sum(-1)
                j = d.argmin(1)
                t = torch.cat([d.gather(1, j[:, None])[:, 0], a.new_zeros(a.shape[1] - al[i])])
                if normals:
                    cos = F.cosine_similarity(an[i, : al[i]], bn[i, j], dim=1, eps=1e-6)
                    c = 1 - (cos.abs() if abs_cosine else cos)
                    nt = torch.cat([c, a.new_zeros(a.shape[1] - al[i])])
            w = 1.0 if weights is None else weights[i]
            rows.append(t * w)
            nrows.append(nt * w)
        terms = torch.stack(rows) if rows else terms
        nterms = torch.stack(nrows) if nrows else nterms
        lengths = torch.tensor(al, dtype=a.dtype).clamp(min=1)
        if point_reduction is None:
            return terms, nterms
        if point_reduction == "max":
            return (terms.max(1).values if a.shape[1] else a.new_zeros(B)), None
        s, ns = terms.sum(1), nterms.sum(1)
        if point_reduction == "mean":
            s, ns = s / lengths, ns / lengths
        return s, ns

    cx, nx = one_way(x, y, xl, yl, x_normals, y_normals)
    if single_directional:
        loss, ln = cx, nx
    else:
        cy, ny = one_way(y, x, yl, xl, y_normals, x_normals)
        if point_reduction == "max":
            loss, ln = torch.maximum(cx, cy), None
        elif point_reduction is None:
            loss, ln = (cx, cy), (nx, ny)
        else:
            loss, ln = cx + cy, nx + ny
    if not normals:
        ln = None
    if batch_reduction is not None:
        loss = loss.sum()
        ln = None if ln is None else ln.sum()
        if batch_reduction == "mean":
            div = B if weights is None else (weights.sum() if weights.sum() > 0 else 1.0)
            div = max(div, 1) if weights is None else div
            loss = loss / div
            ln = None if ln is None else ln / div
    return loss, ln


def _assert_close(a, b, **kw):
    if a is None or b is None:
        assert a is None and b is None
        return
    if isinstance(a, tuple):
        assert isinstance(b, tuple) and len(a) == len(b)
        for u, v in zip(a, b):
            _assert_close(u, v, **kw)
        return
    assert a.shape == b.shape, (a.shape, b.shape)
    torch.testing.assert_close(a, b, **kw)


def _batch(B, P1, P2, seed, ragged=True, dtype=torch.float64, offset=0.0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(B, P1, 3, generator=g, dtype=dtype) + offset
    y = torch.rand(B, P2, 3, generator=g, dtype=dtype) + offset
    xl = torch.randint(0, P1 + 1, (B,), generator=g) if ragged else None
    yl = torch.randint(0, P2 + 1, (B,), generator=g) if ragged else None
    xn = torch.randn(B, P1, 3, generator=g, dtype=dtype)
    yn = torch.randn(B, P2, 3, generator=g, dtype=dtype)
    return x, y, xl, yl, xn, yn


@settings(max_examples=60, deadline=None)
@given(
    B=st.integers(1, 4), P1=st.integers(1, 20), P2=st.integers(1, 20), seed=st.integers(0, 2**31 - 1),
    ragged=st.booleans(), norm=st.sampled_from([1, 2]),
    reductions=st.sampled_from([("mean", "mean"), ("sum", "mean"), (None, "mean"), ("mean", "sum"),
                                ("sum", "sum"), (None, "sum"), ("mean", "max"), (None, "max"), (None, None)]),
    use_normals=st.booleans(), use_weights=st.booleans(), single=st.booleans(), abs_cosine=st.booleans(),
    method=st.sampled_from(["auto", "blocked", "kdtree", "reference"]),
)
def test_chamfer_matches_reference_all_arguments(B, P1, P2, seed, ragged, norm, reductions, use_normals,
                                                 use_weights, single, abs_cosine, method):
    batch_reduction, point_reduction = reductions
    x, y, xl, yl, xn, yn = _batch(B, P1, P2, seed, ragged)
    if point_reduction == "max":
        use_normals = False
    w = torch.rand(B, dtype=torch.float64) if use_weights else None
    kw = dict(x_lengths=xl, y_lengths=yl, x_normals=xn if use_normals else None,
              y_normals=yn if use_normals else None, weights=w, batch_reduction=batch_reduction,
              point_reduction=point_reduction, norm=norm, single_directional=single, abs_cosine=abs_cosine)
    got = chamfer_distance(x, y, method=method, **kw)
    want = _chamfer_reference(x, y, **kw)
    _assert_close(got[0], want[0])
    _assert_close(got[1], want[1])


def test_chamfer_pointclouds_input_uses_lengths_and_normals():
    x, y, xl, yl, xn, yn = _batch(3, 12, 9, 1)
    xl, yl = torch.tensor([12, 5, 1]), torch.tensor([9, 9, 3])
    px = Pointclouds([x[i, : xl[i]] for i in range(3)], normals=[xn[i, : xl[i]] for i in range(3)])
    py = Pointclouds([y[i, : yl[i]] for i in range(3)], normals=[yn[i, : yl[i]] for i in range(3)])
    got = chamfer_distance(px, py)
    want = _chamfer_reference(x, y, xl, yl, xn, yn)
    _assert_close(got[0], want[0])
    _assert_close(got[1], want[1])
    # mixed: Pointclouds x, padded tensor y
    got = chamfer_distance(px, y, y_lengths=yl, y_normals=yn, abs_cosine=False)
    want = _chamfer_reference(x, y, xl, yl, xn, yn, abs_cosine=False)
    _assert_close(got[1], want[1])


def test_chamfer_point_reduction_none_returns_per_direction_tuples():
    x, y, xl, yl, xn, yn = _batch(2, 7, 5, 3)
    loss, ln = chamfer_distance(x, y, xl, yl, xn, yn, batch_reduction=None, point_reduction=None)
    assert isinstance(loss, tuple) and loss[0].shape == (2, 7) and loss[1].shape == (2, 5)
    assert isinstance(ln, tuple) and ln[0].shape == (2, 7)
    loss, ln = chamfer_distance(x, y, batch_reduction=None, point_reduction=None, single_directional=True)
    assert loss.shape == (2, 7) and ln is None


@pytest.mark.parametrize("norm", [1, 2])
def test_chamfer_gradcheck_points_and_normals(norm):
    x, y, _, _, xn, yn = _batch(2, 5, 4, 7)
    xl, yl = torch.tensor([5, 3]), torch.tensor([4, 2])
    for t in (x, y, xn, yn):
        t.requires_grad_(True)

    def f(x, y, xn, yn):
        loss, ln = chamfer_distance(x, y, xl, yl, xn, yn, norm=norm, abs_cosine=False)
        return loss, ln

    assert torch.autograd.gradcheck(f, (x, y, xn, yn))


def test_chamfer_gradients_reach_both_clouds_and_match_reference():
    x, y, xl, yl, xn, yn = _batch(3, 30, 25, 11)
    xs = [t.clone().requires_grad_(True) for t in (x, y, xn, yn)]
    rs = [t.clone().requires_grad_(True) for t in (x, y, xn, yn)]
    a = chamfer_distance(*xs[:2], xl, yl, *xs[2:], method="blocked")
    b = _chamfer_reference(*rs[:2], xl, yl, *rs[2:])
    (a[0] + a[1]).backward()
    (b[0] + b[1]).backward()
    for u, v in zip(xs, rs):
        torch.testing.assert_close(u.grad, v.grad)


def test_chamfer_empty_cloud_in_batch_is_finite_with_finite_grads():
    x, y, _, _, xn, yn = _batch(3, 6, 5, 2)
    xl, yl = torch.tensor([0, 6, 4]), torch.tensor([5, 0, 3])
    for t in (x, y, xn, yn):
        t.requires_grad_(True)
    for pr in ("mean", "sum"):
        loss, ln = chamfer_distance(x, y, xl, yl, xn, yn, point_reduction=pr)
        assert torch.isfinite(loss) and torch.isfinite(ln)
        (loss + ln).backward()
        for t in (x, y, xn, yn):
            assert torch.isfinite(t.grad).all()
            t.grad = None
    per, _ = chamfer_distance(x, y, xl, yl, batch_reduction=None)
    # item 0 has an empty x and item 1 an empty y: only the other direction of each... has no neighbour either
    assert per[0] == 0 and per[1] == 0 and per[2] > 0
    loss, _ = chamfer_distance(x, y, xl, yl, point_reduction="max")
    assert torch.isfinite(loss)
    # all clouds empty
    z = torch.zeros(2, 0, 3, requires_grad=True)
    loss, _ = chamfer_distance(z, z)
    assert loss == 0
    loss.backward()


def test_chamfer_duplicates_and_single_points():
    g = torch.Generator().manual_seed(0)
    y = torch.rand(2, 4, 3, generator=g, dtype=torch.float64)
    y = torch.cat([y, y], 1)  # every point twice
    x = torch.cat([y[:, :4], torch.rand(2, 3, 3, generator=g, dtype=torch.float64)], 1)
    for method in ("blocked", "kdtree", "reference"):
        got = chamfer_distance(x, y, method=method)[0]
        _assert_close(got, _chamfer_reference(x, y)[0])
    one_x, one_y = torch.rand(2, 1, 3, dtype=torch.float64), torch.rand(2, 1, 3, dtype=torch.float64)
    got = chamfer_distance(one_x, one_y, batch_reduction=None)[0]
    _assert_close(got, 2 * (one_x - one_y).square().sum(-1)[:, 0])


@pytest.mark.parametrize("method", ["blocked", "kdtree"])
@pytest.mark.parametrize("offset", [1e4, 1e5, 1e6])
def test_chamfer_huge_coordinates_agree_with_reference(method, offset):
    x, y, xl, yl, _, _ = _batch(2, 200, 150, 5, dtype=torch.float32, offset=offset)
    got = chamfer_distance(x, y, xl, yl, batch_reduction=None, point_reduction=None, method=method)[0]
    # the reference in float64 on the same float32 coordinates
    want = _chamfer_reference(x.double(), y.double(), xl, yl, batch_reduction=None, point_reduction=None)[0]
    tol = 1e-4 * offset if offset > 1e5 else 1e-3  # float32 spacing of the coordinates themselves
    for g, w in zip(got, want):
        torch.testing.assert_close(g.double(), w, atol=tol, rtol=1e-3)


def test_chamfer_float32_blocked_and_kdtree_agree_with_reference():
    x, y, xl, yl, xn, yn = _batch(4, 300, 280, 9, dtype=torch.float32)
    want = _chamfer_reference(x, y, xl, yl, xn, yn)
    for method in ("blocked", "kdtree"):
        got = chamfer_distance(x, y, xl, yl, xn, yn, method=method)
        _assert_close(got[0], want[0], atol=1e-6, rtol=1e-5)
        _assert_close(got[1], want[1], atol=1e-6, rtol=1e-5)


def test_chamfer_zero_weights_give_zero_loss_in_graph():
    x, y, xl, yl, xn, yn = _batch(3, 5, 4, 4)
    x.requires_grad_(True)
    w = torch.zeros(3, dtype=torch.float64)
    for br in ("mean", "sum", None):
        loss, ln = chamfer_distance(x, y, xl, yl, xn, yn, weights=w, batch_reduction=br)
        assert (loss == 0).all() and (ln == 0).all()
        assert loss.shape == (() if br else (3,))
        loss.sum().backward()
        assert torch.isfinite(x.grad).all()


def test_chamfer_float16_runs():
    x, y, *_ = _batch(2, 10, 8, 1, dtype=torch.float32)
    loss, _ = chamfer_distance(x.half(), y.half(), method="blocked")
    torch.testing.assert_close(loss.float(), _chamfer_reference(x, y)[0], atol=1e-2, rtol=1e-2)


# ----------------------------------------------------------------------------- bad input


def _good():
    return torch.rand(2, 5, 3), torch.rand(2, 4, 3)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(y=torch.rand(3, 4, 3)), ValueError, "y must have the batch size"),
        (dict(y=torch.rand(2, 4, 2)), ValueError, "y must have the last dimension"),
        (dict(x=torch.rand(5, 3)), ValueError, "x must have 3 dimensions"),
        (dict(x=[1, 2]), TypeError, "x must be"),
        (dict(x_lengths=torch.tensor([6, 1])), ValueError, "x_lengths must not exceed"),
        (dict(y_lengths=torch.tensor([1])), ValueError, "y_lengths must have one entry"),
        (dict(y_lengths=torch.tensor([-1, 1])), ValueError, "y_lengths must be non-negative"),
        (dict(x=torch.full((2, 5, 3), float("nan"))), ValueError, "x must be finite"),
        (dict(y=torch.full((2, 4, 3), float("inf"))), ValueError, "y must be finite"),
        (dict(batch_reduction="avg"), ValueError, "batch_reduction"),
        (dict(point_reduction="min"), ValueError, "point_reduction"),
        (dict(point_reduction=None), ValueError, "batch_reduction must be None"),
        (dict(norm=3), ValueError, "norm"),
        (dict(norm=0), ValueError, "norm"),
        (dict(weights=torch.ones(3)), ValueError, "weights"),
        (dict(weights=torch.tensor([1.0, -1.0])), ValueError, "weights must be non-negative"),
        (dict(weights=torch.tensor([1.0, float("nan")])), ValueError, "weights must be finite"),
        (dict(x_normals=torch.rand(2, 4, 3), y_normals=torch.rand(2, 4, 3)), ValueError, "x_normals"),
        (dict(x_normals=torch.rand(2, 5, 3), y_normals=torch.full((2, 4, 3), float("nan"))), ValueError,
         "y_normals must be finite"),
        (dict(x_normals=torch.rand(2, 5, 3), point_reduction="max"), ValueError, "point_reduction"),
        (dict(method="gpu"), ValueError, "method"),
    ],
)
def test_chamfer_bad_input_names_the_argument(kwargs, exc, match):
    x, y = _good()
    args = dict(x=x, y=y)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        chamfer_distance(**args)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("method", ["auto", "blocked"])
def test_chamfer_cuda_matches_cpu_with_grads(method):
    x, y, xl, yl, xn, yn = _batch(3, 700, 600, 2, dtype=torch.float32)
    cpu = [t.clone().requires_grad_(True) for t in (x, y, xn, yn)]
    gpu = [t.cuda().requires_grad_(True) for t in (x, y, xn, yn)]
    a = chamfer_distance(*cpu[:2], xl, yl, *cpu[2:], method="kdtree")
    b = chamfer_distance(*gpu[:2], xl.cuda(), yl.cuda(), *gpu[2:], method=method)
    (a[0] + a[1]).backward()
    (b[0] + b[1]).backward()
    torch.testing.assert_close(b[0].cpu(), a[0], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(b[1].cpu(), a[1], atol=1e-6, rtol=1e-5)
    for u, v in zip(cpu, gpu):
        torch.testing.assert_close(v.grad.cpu(), u.grad, atol=1e-5, rtol=1e-4)
