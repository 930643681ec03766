"""Tests for geo4g.losses.metrics: each metric against a naive twin, analytic cases, edges, gradients, bad input."""
import math
import subprocess
import sys

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geo4g.losses.metrics import (
    FScore,
    f_score,
    hausdorff_distance,
    mesh_to_mesh_chamfer,
    normal_consistency,
    voxel_iou,
)
from geo4g.structures import Meshes, Pointclouds

FAST = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# naive twins: one item at a time, full pairwise distances ------------------------
def naive_dists(a, b):
    """``(n, m)`` Euclidean distances, computed in float64 from the differences."""
    return (a.double()[:, None, :] - b.double()[None, :, :]).square().sum(-1).sqrt()


def naive_f_score(xs, ys, t):
    out = []
    for a, b in zip(xs, ys):
        if len(a) == 0 and len(b) == 0:
            out.append((1.0, 1.0, 1.0))
            continue
        if len(a) == 0 or len(b) == 0:
            out.append((0.0, 0.0, 0.0))
            continue
        d = naive_dists(a, b)
        p = sum(float(d[i].min()) <= t for i in range(len(a))) / len(a)
        r = sum(float(d[:, j].min()) <= t for j in range(len(b))) / len(b)
        f = 0.0 if p + r == 0 else 2 * p * r / (p + r)
        out.append((f, p, r))
    return torch.tensor(out, dtype=torch.float64)


def naive_directed(a, b):
    if len(a) == 0:
        return 0.0
    if len(b) == 0:
        return math.inf
    d = naive_dists(a, b)
    return max(float(d[i].min()) for i in range(len(a)))


def naive_hausdorff(xs, ys, single_directional=False):
    out = []
    for a, b in zip(xs, ys):
        h = naive_directed(a, b)
        out.append(h if single_directional else max(h, naive_directed(b, a)))
    return torch.tensor(out, dtype=torch.float64)


def naive_mean_cosine(a, b, na, nb, abs_cosine):
    total = 0.0
    for i in range(len(a)):
        j = int(naive_dists(a[i:i + 1], b)[0].argmin())
        u, v = na[i].double(), nb[j].double()
        denom = float(u.norm() * v.norm())
        c = 0.0 if denom == 0 else float(u @ v) / denom
        total += abs(c) if abs_cosine else c
    return total / len(a)


def naive_normal_consistency(xs, ys, xns, yns, abs_cosine=True):
    out = []
    for a, b, na, nb in zip(xs, ys, xns, yns):
        if len(a) == 0 and len(b) == 0:
            out.append(1.0)
        elif len(a) == 0 or len(b) == 0:
            out.append(0.0)
        else:
            there = naive_mean_cosine(a, b, na, nb, abs_cosine)
            back = naive_mean_cosine(b, a, nb, na, abs_cosine)
            out.append(0.5 * (there + back))
    return torch.tensor(out, dtype=torch.float64)


def naive_voxel_iou(pred, target, threshold=0.5):
    out = []
    for p, t in zip(pred, target):
        p = p if p.dtype == torch.bool else p > threshold
        t = t if t.dtype == torch.bool else t > threshold
        inter, union = int((p & t).sum()), int((p | t).sum())
        out.append(1.0 if union == 0 else inter / union)
    return torch.tensor(out, dtype=torch.float64)


# inputs -----------------------------------------------------------------------
def ragged(lengths, seed, dtype=torch.float64, device="cpu", scale=1.0, pad_value=0.0):
    """A padded ``(B, max(lengths) + 1, 3)`` batch (one spare padding row) and its list view."""
    g = torch.Generator().manual_seed(seed)
    n = max(lengths, default=0) + 1
    padded = torch.full((len(lengths), n, 3), pad_value, dtype=dtype)
    items = []
    for b, k in enumerate(lengths):
        pts = (torch.rand(k, 3, generator=g, dtype=torch.float64) * scale).to(dtype)
        padded[b, :k] = pts
        items.append(pts)
    lengths = torch.tensor(lengths, dtype=torch.long)
    return padded.to(device), lengths.to(device), items


batches = st.integers(1, 3).flatmap(
    lambda b: st.tuples(st.lists(st.integers(0, 7), min_size=b, max_size=b),
                        st.lists(st.integers(0, 7), min_size=b, max_size=b))
)


def cloud(points):
    return points[None].double()


# f_score ------------------------------------------------------------------------------
@FAST
@given(batches, st.integers(0, 2**31 - 1), st.sampled_from([0.0, 0.1, 0.3, 2.0]))
def test_f_score_ragged_matches_naive(lens, seed, t):
    x, xl, xs = ragged(lens[0], seed)
    y, yl, ys = ragged(lens[1], seed + 1)
    got = f_score(x, y, t, x_lengths=xl, y_lengths=yl)
    assert isinstance(got, FScore)
    want = naive_f_score(xs, ys, t)
    torch.testing.assert_close(torch.stack(list(got), 1), want)


def test_f_score_identical_clouds_is_one(device):
    x = torch.rand(2, 50, 3, device=device)
    got = f_score(x, x, 0.0)
    for v in got:
        torch.testing.assert_close(v, torch.ones(2, device=device))


def test_f_score_analytic_precision_recall():
    # x: 4 points, 2 of them within 0.5 of y; y: 1 point, within 0.5 of x.
    x = cloud(torch.tensor([[0.0, 0, 0], [0.3, 0, 0], [5, 0, 0], [9, 0, 0]]))
    y = cloud(torch.tensor([[0.0, 0.3, 0]]))
    f, p, r = f_score(x, y, 0.5)
    assert p.item() == pytest.approx(0.5)
    assert r.item() == pytest.approx(1.0)
    assert f.item() == pytest.approx(2 * 0.5 / 1.5)
    # the threshold is inclusive
    assert f_score(cloud(torch.zeros(1, 3)), cloud(torch.tensor([[0.5, 0, 0]])), 0.5).fscore.item() == 1.0


def test_f_score_zero_when_nothing_is_close():
    f, p, r = f_score(cloud(torch.zeros(3, 3)), cloud(torch.ones(2, 3)), 0.1)
    assert (f.item(), p.item(), r.item()) == (0.0, 0.0, 0.0)


def test_f_score_empty_clouds():
    x = torch.rand(3, 4, 3)
    y = torch.rand(3, 4, 3)
    got = f_score(x, y, 10.0, x_lengths=torch.tensor([0, 0, 4]), y_lengths=torch.tensor([0, 4, 0]))
    torch.testing.assert_close(got.fscore, torch.tensor([1.0, 0.0, 0.0]))
    torch.testing.assert_close(got.precision, torch.tensor([1.0, 0.0, 0.0]))
    torch.testing.assert_close(got.recall, torch.tensor([1.0, 0.0, 0.0]))
    # a batch whose padded size is 0
    got = f_score(torch.zeros(2, 0, 3), torch.zeros(2, 0, 3), 0.1)
    torch.testing.assert_close(got.fscore, torch.ones(2))


def test_f_score_carries_no_gradient():
    x = torch.rand(1, 5, 3, requires_grad=True)
    got = f_score(x, torch.rand(1, 5, 3), 0.5)
    assert not any(v.requires_grad for v in got)


def test_f_score_accepts_pointclouds():
    xs = [torch.rand(3, 3), torch.rand(5, 3)]
    ys = [torch.rand(4, 3), torch.rand(0, 3)]
    got = f_score(Pointclouds(xs), Pointclouds(ys), 0.4)
    torch.testing.assert_close(torch.stack(list(got), 1).double(), naive_f_score(xs, ys, 0.4), check_dtype=False)


# hausdorff_distance -------------------------------------------------------------------
@FAST
@given(batches, st.integers(0, 2**31 - 1), st.booleans())
def test_hausdorff_ragged_matches_naive(lens, seed, single):
    x, xl, xs = ragged(lens[0], seed, pad_value=float("nan"))  # padding is never read
    y, yl, ys = ragged(lens[1], seed + 1, pad_value=1e6)
    got = hausdorff_distance(x, y, x_lengths=xl, y_lengths=yl, single_directional=single)
    torch.testing.assert_close(got, naive_hausdorff(xs, ys, single))


def test_hausdorff_identical_is_zero_and_shift_gives_distance(device):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 64, 3, generator=g, dtype=torch.float64).to(device)
    assert torch.equal(hausdorff_distance(x, x), torch.zeros(2, dtype=torch.float64, device=device))
    d = 0.75
    # a single point shifted by d: the distance is exactly d
    p = torch.zeros(1, 1, 3, dtype=torch.float64, device=device)
    shift = torch.tensor([0.0, d, 0.0], dtype=torch.float64, device=device)
    assert hausdorff_distance(p, p + shift).item() == pytest.approx(d)
    # any cloud shifted by a vector v: the point of x extreme against v is exactly |v| from x + v
    # and every other point is at most |v| from its twin, so the distance is |v|
    v = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64, device=device)
    want = torch.full((2,), float(v.norm()), dtype=torch.float64, device=device)
    torch.testing.assert_close(hausdorff_distance(x, x + v), want)
    torch.testing.assert_close(hausdorff_distance(x, x + v, single_directional=True), want)


def test_hausdorff_is_asymmetric_when_single_directional():
    x = cloud(torch.tensor([[0.0, 0, 0]]))
    y = cloud(torch.tensor([[0.0, 0, 0], [3.0, 0, 0]]))
    assert hausdorff_distance(x, y, single_directional=True).item() == 0.0
    assert hausdorff_distance(y, x, single_directional=True).item() == 3.0
    assert hausdorff_distance(x, y).item() == 3.0


def test_hausdorff_empty_clouds():
    x, y = torch.rand(3, 4, 3), torch.rand(3, 4, 3)
    xl, yl = torch.tensor([0, 0, 4]), torch.tensor([0, 4, 0])
    got = hausdorff_distance(x, y, x_lengths=xl, y_lengths=yl)
    assert got.tolist() == [0.0, math.inf, math.inf]
    got = hausdorff_distance(x, y, x_lengths=xl, y_lengths=yl, single_directional=True)
    assert got.tolist() == [0.0, 0.0, math.inf]
    assert hausdorff_distance(torch.zeros(2, 0, 3), torch.zeros(2, 0, 3)).tolist() == [0.0, 0.0]
    assert hausdorff_distance(torch.rand(1, 2, 3), torch.zeros(1, 0, 3)).tolist() == [math.inf]


def test_hausdorff_gradcheck_float64():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.rand(2, 6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    xl, yl = torch.tensor([5, 3]), torch.tensor([4, 6])
    for single in (False, True):
        assert torch.autograd.gradcheck(
            lambda a, b: hausdorff_distance(a, b, x_lengths=xl, y_lengths=yl, single_directional=single), (x, y)
        )


def test_hausdorff_gradient_finite_for_identical_and_empty_clouds():
    x = torch.rand(2, 4, 3, dtype=torch.float64, requires_grad=True)
    hausdorff_distance(x, x.detach().clone(), y_lengths=torch.tensor([4, 0]))[0].backward()
    assert torch.isfinite(x.grad).all()


def test_hausdorff_single_duplicate_and_huge_coordinates():
    one = cloud(torch.tensor([[1.0, 2.0, 3.0]]))
    assert hausdorff_distance(one, one).item() == 0.0
    dup = cloud(torch.tensor([[0.0, 0, 0]] * 5 + [[1.0, 0, 0]] * 3))
    assert hausdorff_distance(dup, cloud(torch.tensor([[0.0, 0, 0]]))).item() == 1.0
    # a large common offset must not cancel away the distances
    for dtype, offset in ((torch.float64, 1e8), (torch.float32, 1e4)):
        x, _, xs = ragged([40], 3, dtype=dtype)
        y, _, ys = ragged([30], 4, dtype=dtype)
        got = hausdorff_distance(x[:, :40] + offset, y[:, :30] + offset).double()
        want = naive_hausdorff([xs[0].double() + offset], [ys[0].double() + offset])
        tol = 1e-9 if dtype == torch.float64 else 5e-3
        torch.testing.assert_close(got, want, atol=tol, rtol=0)


def test_hausdorff_large_clouds_match_naive():
    # big enough for the KD-tree path of the nearest-neighbour search
    x, _, xs = ragged([1100, 1030], 5)
    y, _, ys = ragged([1050, 1000], 6)
    xl, yl = torch.tensor([1100, 1030]), torch.tensor([1050, 1000])
    torch.testing.assert_close(hausdorff_distance(x, y, x_lengths=xl, y_lengths=yl), naive_hausdorff(xs, ys))


# normal_consistency --------------------------------------------------------------------
@FAST
@given(batches, st.integers(0, 2**31 - 1), st.booleans())
def test_normal_consistency_ragged_matches_naive(lens, seed, abs_cosine):
    x, xl, xs = ragged(lens[0], seed)
    y, yl, ys = ragged(lens[1], seed + 1)
    g = torch.Generator().manual_seed(seed)
    xn = torch.randn(x.shape, generator=g, dtype=torch.float64)
    yn = torch.randn(y.shape, generator=g, dtype=torch.float64)
    got = normal_consistency(x, y, xn, yn, x_lengths=xl, y_lengths=yl, abs_cosine=abs_cosine)
    xns = [xn[b, :k] for b, k in enumerate(lens[0])]
    yns = [yn[b, :k] for b, k in enumerate(lens[1])]
    torch.testing.assert_close(got, naive_normal_consistency(xs, ys, xns, yns, abs_cosine))


def test_normal_consistency_identical_flipped_and_orthogonal():
    x = torch.rand(1, 20, 3, dtype=torch.float64)
    n = torch.nn.functional.normalize(torch.randn(1, 20, 3, dtype=torch.float64), dim=-1)
    assert normal_consistency(x, x, n, n).item() == pytest.approx(1.0)
    assert normal_consistency(x, x, n, -n).item() == pytest.approx(1.0)
    assert normal_consistency(x, x, n, -n, abs_cosine=False).item() == pytest.approx(-1.0)
    ez = torch.tensor([0.0, 0, 1], dtype=torch.float64).expand(1, 20, 3)
    ex = torch.tensor([1.0, 0, 0], dtype=torch.float64).expand(1, 20, 3)
    assert normal_consistency(x, x, ez, ex).item() == pytest.approx(0.0)
    # normals need not be unit length; a zero normal has cosine 0
    assert normal_consistency(x, x, 3 * n, n).item() == pytest.approx(1.0)
    assert normal_consistency(x, x, torch.zeros_like(n), n).item() == 0.0


def test_normal_consistency_empty_clouds_and_pointclouds():
    xs = [torch.rand(0, 3), torch.rand(0, 3), torch.rand(4, 3)]
    ys = [torch.rand(0, 3), torch.rand(3, 3), torch.rand(0, 3)]
    xn = [torch.randn(len(p), 3) for p in xs]
    yn = [torch.randn(len(p), 3) for p in ys]
    got = normal_consistency(Pointclouds(xs, normals=xn), Pointclouds(ys, normals=yn))
    assert got.tolist() == [1.0, 0.0, 0.0]
    z = torch.zeros(2, 0, 3)
    assert normal_consistency(z, z, z, z).tolist() == [1.0, 1.0]


def test_normal_consistency_duplicate_points():
    x = cloud(torch.tensor([[0.0, 0, 0]] * 3 + [[1.0, 0, 0]]))
    n = cloud(torch.tensor([[0.0, 0, 1]] * 3 + [[0.0, 1, 0]]))
    y = cloud(torch.tensor([[0.1, 0, 0], [0.9, 0, 0]]))
    m = cloud(torch.tensor([[0.0, 0, 1], [0.0, 1, 0]]))
    assert normal_consistency(x, y, n, m).item() == pytest.approx(1.0)


def test_normal_consistency_gradcheck_wrt_normals():
    g = torch.Generator().manual_seed(2)
    x = torch.rand(2, 5, 3, generator=g, dtype=torch.float64)
    y = torch.rand(2, 4, 3, generator=g, dtype=torch.float64)
    xn = torch.randn(2, 5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    yn = torch.randn(2, 4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    xl, yl = torch.tensor([5, 2]), torch.tensor([3, 4])
    for abs_cosine in (True, False):
        assert torch.autograd.gradcheck(
            lambda a, b: normal_consistency(x, y, a, b, x_lengths=xl, y_lengths=yl, abs_cosine=abs_cosine),
            (xn, yn),
        )


# voxel_iou -----------------------------------------------------------------------------
@FAST
@given(st.integers(1, 3), st.integers(1, 5), st.integers(0, 2**31 - 1), st.sampled_from([0.0, 0.3, 0.5, 1.0]))
def test_voxel_iou_matches_naive(b, n, seed, threshold):
    g = torch.Generator().manual_seed(seed)
    pred = torch.rand(b, n, n + 1, n, generator=g)
    target = torch.rand(b, n, n + 1, n, generator=g) > 0.5
    got = voxel_iou(pred, target, threshold)
    torch.testing.assert_close(got.double(), naive_voxel_iou(pred, target, threshold))
    assert got.dtype == torch.float32


def test_voxel_iou_half_overlapping_boxes(device):
    pred = torch.zeros(1, 8, 8, 8, dtype=torch.bool, device=device)
    target = torch.zeros_like(pred)
    pred[0, 0:4, 0:4, 0:4] = True
    target[0, 2:6, 0:4, 0:4] = True  # half of each box overlaps: 32 / (64 + 64 - 32)
    assert voxel_iou(pred, target).item() == pytest.approx(1 / 3)
    assert voxel_iou(pred, pred).item() == 1.0
    assert voxel_iou(pred.double(), target.to(torch.uint8)).dtype == torch.float64


def test_voxel_iou_empty_grids():
    empty = torch.zeros(2, 3, 3, 3)
    full = torch.ones(2, 3, 3, 3)
    assert voxel_iou(empty, empty).tolist() == [1.0, 1.0]
    assert voxel_iou(empty, full).tolist() == [0.0, 0.0]
    assert voxel_iou(torch.zeros(2, 0, 3, 3), torch.zeros(2, 0, 3, 3)).tolist() == [1.0, 1.0]


# mesh_to_mesh_chamfer ------------------------------------------------------------------
def cube(offset=0.0, dtype=torch.float64):
    verts = torch.tensor([[x, y, z] for x in (0.0, 1.0) for y in (0.0, 1.0) for z in (0.0, 1.0)], dtype=dtype)
    faces = torch.tensor([
        [0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
        [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3],
    ])
    return verts + offset, faces


def test_mesh_to_mesh_chamfer_matches_chamfer_of_the_samples():
    from geo4g.losses.chamfer import chamfer_distance
    from geo4g.meshes import sample_points_from_meshes

    (va, fa), (vb, fb) = cube(), cube(0.25)
    a, b = Meshes([va, va], [fa, fa]), Meshes([vb, va], [fb, fa])
    got = mesh_to_mesh_chamfer(a, b, num_samples=200, generator=torch.Generator().manual_seed(3),
                               batch_reduction=None)
    g = torch.Generator().manual_seed(3)
    pa = sample_points_from_meshes(a, 200, generator=g)
    pb = sample_points_from_meshes(b, 200, generator=g)
    want = chamfer_distance(pa, pb, batch_reduction=None)[0]
    torch.testing.assert_close(got, want)
    assert got.shape == (2,)
    assert got[0] > got[1] > 0  # the shifted cube is farther than a resampled copy


def test_mesh_to_mesh_chamfer_is_reproducible_and_differentiable():
    va, fa = cube()
    vb, fb = cube(0.1)
    va.requires_grad_(True)
    a, b = Meshes([va], [fa]), Meshes([vb], [fb])
    one = mesh_to_mesh_chamfer(a, b, num_samples=100, generator=torch.Generator().manual_seed(0))
    two = mesh_to_mesh_chamfer(a, b, num_samples=100, generator=torch.Generator().manual_seed(0))
    assert torch.equal(one, two) and one.dim() == 0
    one.backward()
    assert va.grad is not None and torch.isfinite(va.grad).all() and va.grad.abs().sum() > 0


def test_losses_metrics_does_not_import_geo4g_meshes():
    code = "import sys, geo4g.losses.metrics; assert 'geo4g.meshes' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# bad input -----------------------------------------------------------------------------
def normals_like(points):
    """Well-formed normals for any (possibly malformed) points argument, so the points' error comes first."""
    if isinstance(points, Pointclouds):
        return None
    shape = points.shape if isinstance(points, torch.Tensor) else (2, 4, 3)
    return torch.rand(shape if len(shape) == 3 else (2, 4, 3))


def test_bad_point_inputs_name_the_argument():
    x, y = torch.rand(2, 4, 3), torch.rand(2, 5, 3)
    n, m = torch.rand(2, 4, 3), torch.rand(2, 5, 3)
    for fn in (
        lambda a, b, **kw: f_score(a, b, 0.1, **kw),
        lambda a, b, **kw: hausdorff_distance(a, b, **kw),
        lambda a, b, **kw: normal_consistency(a, b, normals_like(a), normals_like(b), **kw),
    ):
        with pytest.raises(ValueError, match="y must have the batch size"):
            fn(x, torch.rand(3, 5, 3))
        with pytest.raises(ValueError, match="y must have the last dimension of x"):
            fn(x, torch.rand(2, 5, 2))
        with pytest.raises(ValueError, match="x must have 3 dimensions"):
            fn(torch.rand(4, 3), y)
        with pytest.raises(TypeError, match="y must be a floating point"):
            fn(x, torch.ones(2, 5, 3, dtype=torch.long))
        with pytest.raises(TypeError, match="y must have the dtype of x"):
            fn(x, y.double())
        with pytest.raises(ValueError, match="x_lengths must not exceed"):
            fn(x, y, x_lengths=torch.tensor([5, 1]))
        with pytest.raises(ValueError, match="y_lengths must be non-negative"):
            fn(x, y, y_lengths=torch.tensor([-1, 1]))
        with pytest.raises(ValueError, match="y_lengths must have one entry per batch"):
            fn(x, y, y_lengths=torch.tensor([1, 1, 1]))
        with pytest.raises(ValueError, match="x must be finite"):
            fn(x.index_put((torch.tensor(1), torch.tensor(0)), torch.tensor(float("nan"))), y)
        with pytest.raises(ValueError, match="y must be finite"):
            fn(x, y.index_put((torch.tensor(0), torch.tensor(0)), torch.tensor(float("inf"))))
        with pytest.raises(ValueError, match="x_lengths must be None when x is a Pointclouds"):
            fn(Pointclouds(x), y, x_lengths=torch.tensor([1, 1]))
        with pytest.raises(TypeError, match="x must be a"):
            fn(x.tolist(), y)
    for t, err in ((-0.1, ValueError), (float("nan"), ValueError), (float("inf"), ValueError), ("1", TypeError)):
        with pytest.raises(err, match="threshold"):
            f_score(x, y, t)
    with pytest.raises(TypeError, match="single_directional"):
        hausdorff_distance(x, y, single_directional=None)
    with pytest.raises(ValueError, match="x_normals must be given"):
        normal_consistency(x, y)
    with pytest.raises(ValueError, match="y_normals must have the padded shape of y"):
        normal_consistency(x, y, n, m[:, :4])
    with pytest.raises(ValueError, match="x_normals must be finite"):
        normal_consistency(x, y, n.index_put((torch.tensor(0), torch.tensor(0)), torch.tensor(float("nan"))), m)
    with pytest.raises(TypeError, match="abs_cosine"):
        normal_consistency(x, y, n, m, abs_cosine=1)


def test_bad_voxel_inputs_name_the_argument():
    g = torch.rand(2, 3, 3, 3)
    with pytest.raises(ValueError, match="target must have the shape of pred"):
        voxel_iou(g, torch.rand(2, 3, 3, 4))
    with pytest.raises(ValueError, match="pred must have 4 dimensions"):
        voxel_iou(g[0], g[0])
    with pytest.raises(ValueError, match="target must be finite"):
        voxel_iou(g, g.index_put((torch.tensor(0),), torch.tensor(float("nan"))))
    for t in (-0.5, 1.5, float("nan")):
        with pytest.raises(ValueError, match="threshold"):
            voxel_iou(g, g, t)
    with pytest.raises(TypeError, match="pred must be a torch.Tensor"):
        voxel_iou(g.numpy(), g)


def test_bad_mesh_inputs_name_the_argument():
    v, f = cube()
    a = Meshes([v], [f])
    with pytest.raises(TypeError, match="meshes_b must be a geo4g.structures.Meshes"):
        mesh_to_mesh_chamfer(a, Pointclouds([v]))
    with pytest.raises(ValueError, match="meshes_b must hold as many meshes"):
        mesh_to_mesh_chamfer(a, Meshes([v, v], [f, f]))
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="num_samples"):
            mesh_to_mesh_chamfer(a, a, num_samples=bad)
