"""sample_farthest_points: the numba and Triton paths against the plain-torch reference (identical
indices), hand-checked ties, random starts, gradients and bad input. The Triton kernel runs under
TRITON_INTERPRET=1 in a subprocess (so the env var is set before triton loads)."""
import importlib
import importlib.util
import sys
import textwrap

import pytest
import torch

from geo4g.points import sample_farthest_points
from geo4g.structures import Pointclouds

from .._triton_interpreter import HAS_TRITON, run_interpreted

fps_module = importlib.import_module("geo4g.points.sample_farthest_points")  # the package re-exports the function
HAS_NUMBA = fps_module._kernels("fps_numba") is not None
needs_numba = pytest.mark.skipif(not HAS_NUMBA, reason="numba not importable")


def _naive(points, length, k, start=0):
    """One cloud, one sample at a time with Python-level argmax (first max wins)."""
    idx, nearest = [], [float("inf")] * length
    cur = start
    for _ in range(min(k, length)):
        idx.append(cur)
        for j in range(length):
            nearest[j] = min(nearest[j], float(((points[j] - points[cur]) ** 2).sum()))
        cur = max(range(length), key=lambda j: (nearest[j], -j))
    return idx + [-1] * (k - len(idx))


def _ragged(seed, B, N, D, dtype=torch.float32, dup=False):
    g = torch.Generator().manual_seed(seed)
    points = torch.rand(B, N, D, generator=g, dtype=dtype)
    if dup:  # whole runs of repeated points: ties at every scale
        points = points[:, torch.randint(0, max(1, N // 4), (N,), generator=g)]
    lengths = torch.randint(0, N + 1, (B,), generator=g)
    lengths[0] = N
    ks = torch.randint(1, N + 3, (B,), generator=g)  # K > length included
    start = (torch.rand(B, generator=g) * lengths.clamp_min(1)).long().clamp_max((lengths - 1).clamp_min(0))
    return points, lengths, ks, start


def _indices(method, points, lengths, ks, start):
    return fps_module._fps_indices(points, lengths, ks, start, method)


def test_reference_matches_naive_loop():
    points, lengths, ks, start = _ragged(0, 4, 30, 3, torch.float64)
    idx = _indices("reference", points, lengths, ks, start)
    for b in range(4):
        want = _naive(points[b], int(lengths[b]), int(ks[b]), int(start[b]))
        assert idx[b].tolist() == want + [-1] * (idx.shape[1] - len(want))


@pytest.mark.parametrize("method", ["reference"] + (["numba"] if HAS_NUMBA else []))
def test_ties_go_to_the_lower_index(method):
    a, b = [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]
    points = torch.tensor([[a, b, a, b, [0.0, 1.0, 0.0]]])
    idx = _indices(method, points, torch.tensor([5]), torch.tensor([6]), torch.tensor([0]))
    # 0; then 1, 3 and 4 tie at distance 1 (1 wins); then 4; then only zeros are left: index 0 again
    assert idx.tolist() == [[0, 1, 4, 0, 0, -1]]  # K > length: the last slot is padding


@needs_numba
@pytest.mark.parametrize("D", [1, 2, 3, 5])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("dup", [False, True])
def test_numba_batch_matches_reference_on_ragged_clouds(D, dtype, dup):
    for seed in range(3):
        points, lengths, ks, start = _ragged(seed, 5, 37, D, dtype, dup)
        want = _indices("reference", points, lengths, ks, start)
        assert torch.equal(_indices("numba", points, lengths, ks, start), want)


@needs_numba
@pytest.mark.parametrize("dtype, D", [(torch.float32, 3), (torch.float32, 2), (torch.float64, 5)])
@pytest.mark.parametrize("split", [True, False])
def test_numba_single_cloud_matches_reference_across_blocks(monkeypatch, dtype, D, split):
    kernels = fps_module._kernels("fps_numba")
    monkeypatch.setattr(fps_module, "SPLIT_MIN_POINTS", 1 if split else 10**9)  # fps_split / fps_cloud
    monkeypatch.setattr(kernels, "get_num_threads", lambda: 2)
    g = torch.Generator().manual_seed(D)
    points = torch.rand(1, 3 * kernels.BLOCK + 17, D, generator=g, dtype=dtype)
    points[0, 2500:2600] = points[0, 40]  # duplicates in another block
    for length, k in ((points.shape[1], 25), (kernels.BLOCK + 1, 5), (1, 3)):
        lengths, ks = torch.tensor([length]), torch.tensor([k])
        for start in (0, length - 1):
            s = torch.tensor([start])
            assert torch.equal(_indices("numba", points, lengths, ks, s), _indices("reference", points, lengths, ks, s))


@needs_numba
def test_numba_entry_point_by_batch_and_length(monkeypatch):
    kernels = fps_module._kernels("fps_numba")
    calls = []
    for name in ("fps_cloud", "fps_split", "fps_batch"):
        monkeypatch.setattr(kernels, name, lambda *a, name=name: calls.append(name))
    monkeypatch.setattr(kernels, "get_num_threads", lambda: 2)
    n = fps_module.SPLIT_MIN_POINTS
    one = torch.zeros(1, n, 3)
    for points, lengths in ((one, None), (one, torch.tensor([n - 1])), (one, torch.tensor([0])),
                            (torch.zeros(2, n, 3), None)):
        sample_farthest_points(points, lengths, K=2)
    assert calls == ["fps_split", "fps_cloud", "fps_batch"]


@needs_numba
def test_numba_identical_and_overflowing_points_match_reference():
    points = torch.zeros(3, 20, 3)
    points[1] = 1e19  # squared distances overflow to inf in float32
    points[1, ::3] = -1e19
    points[2, :, 0] = torch.arange(20.0) % 4  # 4 distinct points, each 5 times
    lengths, ks, start = torch.tensor([20, 20, 20]), torch.tensor([6, 8, 8]), torch.tensor([3, 0, 5])
    want = _indices("reference", points, lengths, ks, start)
    assert torch.equal(_indices("numba", points, lengths, ks, start), want)
    assert want[0].tolist() == [3, 0, 0, 0, 0, 0, -1, -1]


def test_edges_k_above_length_empty_and_single_point():
    points = torch.rand(3, 4, 3)
    sampled, idx = sample_farthest_points(points, torch.tensor([4, 0, 1]), K=torch.tensor([6, 2, 3]))
    assert idx.shape == (3, 6) and sampled.shape == (3, 6, 3)
    assert sorted(idx[0, :4].tolist()) == [0, 1, 2, 3] and idx[0, 4:].tolist() == [-1, -1]
    assert idx[1].tolist() == [-1] * 6 and idx[2].tolist() == [0] + [-1] * 5
    assert (sampled[idx < 0] == 0).all()
    sampled, idx = sample_farthest_points(torch.rand(2, 0, 3), K=3)
    assert idx.tolist() == [[-1] * 3] * 2 and sampled.shape == (2, 3, 3)
    assert sample_farthest_points(torch.rand(0, 5, 3), K=2)[1].shape == (0, 0)


def test_sampled_points_are_the_indexed_points_and_accept_pointclouds():
    points, lengths, _, _ = _ragged(4, 3, 25, 3)
    sampled, idx = sample_farthest_points(points, lengths, K=10)
    for b in range(3):
        found = idx[b] >= 0
        assert torch.equal(sampled[b, found], points[b, idx[b, found]])
        assert len(set(idx[b, found].tolist())) == int(found.sum())  # distinct points: no repeats
    clouds = Pointclouds([points[b, : lengths[b]] for b in range(3)])
    assert torch.equal(sample_farthest_points(clouds, K=10)[1], idx)


def test_random_start_is_reproducible_and_in_range():
    points, lengths = torch.rand(6, 9, 3), torch.tensor([9, 1, 0, 5, 2, 9])
    a, b = (sample_farthest_points(points, lengths, K=3, random_start_point=True,
                                   generator=torch.Generator().manual_seed(7)) for _ in range(2))
    assert torch.equal(a[1], b[1]) and torch.equal(a[0], b[0])
    starts = torch.stack([sample_farthest_points(points, lengths, K=1, random_start_point=True,
                                                 generator=torch.Generator().manual_seed(s))[1][:, 0]
                          for s in range(40)])
    for cloud, n in enumerate(lengths.tolist()):
        if n == 0:
            assert (starts[:, cloud] == -1).all()
        else:
            assert ((starts[:, cloud] >= 0) & (starts[:, cloud] < n)).all()
    assert len(set(starts[:, 0].tolist())) > 3  # actually random


def test_gradient_flows_to_the_sampled_coordinates():
    points = torch.rand(2, 4, 3, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([4, 2])
    torch.autograd.gradcheck(lambda p: sample_farthest_points(p, lengths, K=3)[0], (points,))
    sampled, idx = sample_farthest_points(points, lengths, K=3)
    sampled.sum().backward()
    counts = torch.zeros(2, 4, dtype=torch.float64)
    for b in range(2):
        for i in idx[b][idx[b] >= 0].tolist():
            counts[b, i] += 1
    torch.testing.assert_close(points.grad, counts[..., None].expand(2, 4, 3))  # padding rows get 0


def test_reference_is_used_without_numba(monkeypatch):
    monkeypatch.setitem(sys.modules, "geo4g.points._kernels.fps_numba", None)
    assert fps_module._choose_method(torch.rand(1, 5, 3)) == "reference"
    assert sample_farthest_points(torch.rand(1, 5, 3), K=2)[1].shape == (1, 2)
    assert fps_module._choose_method(torch.rand(1, 5, 3, dtype=torch.float16)) == "reference"


def test_bad_input_names_the_argument():
    points = torch.rand(2, 5, 3)
    with pytest.raises(ValueError, match="K must be a positive int"):
        sample_farthest_points(points, K=0)
    with pytest.raises(ValueError, match="K must be a positive int"):
        sample_farthest_points(points, K=2.5)
    with pytest.raises(ValueError, match="K must be >= 1"):
        sample_farthest_points(points, K=torch.tensor([3, 0]))
    with pytest.raises(ValueError, match="K must have one entry per cloud"):
        sample_farthest_points(points, K=torch.tensor([3, 3, 3]))
    with pytest.raises(ValueError, match="K must have 1 dimensions"):
        sample_farthest_points(points, K=torch.tensor([[3, 3]]))
    with pytest.raises(TypeError, match="K must be an integer tensor"):
        sample_farthest_points(points, K=torch.tensor([3.0, 3.0]))
    with pytest.raises(ValueError, match="points must have 3 dimensions"):
        sample_farthest_points(torch.rand(5, 3), K=2)
    with pytest.raises(TypeError, match="points must be a floating point"):
        sample_farthest_points(torch.ones(2, 5, 3, dtype=torch.long), K=2)
    with pytest.raises(ValueError, match="lengths"):
        sample_farthest_points(points, torch.tensor([6, 1]), K=2)
    with pytest.raises(ValueError, match="lengths"):
        sample_farthest_points(points, torch.tensor([-1, 1]), K=2)
    bad = points.clone()
    bad[1, 2, 0] = float("nan")
    with pytest.raises(ValueError, match="points must be finite"):
        sample_farthest_points(bad, K=2)
    bad[1, 2, 0] = 0.5
    bad[1, 4] = float("nan")  # NaN in padding is fine
    assert sample_farthest_points(bad, torch.tensor([5, 4]), K=2)[1].shape == (2, 2)
    with pytest.raises(TypeError, match="generator"):
        sample_farthest_points(points, K=2, random_start_point=True, generator=7)


_TRITON_SCRIPT = textwrap.dedent(
    """
    import importlib
    import torch
    fps = importlib.import_module("geo4g.points.sample_farthest_points")
    g = torch.Generator().manual_seed(0)
    for dtype, D in ((torch.float32, 3), (torch.float64, 2)):
        points = torch.rand(4, 35, D, generator=g, dtype=dtype)
        points[2, 10:30] = points[2, 3]
        lengths, ks = torch.tensor([35, 17, 30, 0]), torch.tensor([9, 20, 24, 2])
        start = torch.tensor([34, 3, 29, 0])
        t = fps._fps_indices(points, lengths, ks, start, "triton")
        r = fps._fps_indices(points, lengths, ks, start, "reference")
        assert torch.equal(t, r), (t, r)
    print("TRITON-OK")
    """
)


@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
def test_triton_kernel_interpreted_matches_reference():
    out = run_interpreted(_TRITON_SCRIPT)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "TRITON-OK" in out.stdout


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_reference():
    points, lengths, ks, start = _ragged(9, 4, 3000, 3)
    want = _indices("reference", points, lengths, ks, start)
    got = sample_farthest_points(points.cuda(), lengths.cuda(), ks.cuda())[1].cpu()
    assert torch.equal(got, _indices("reference", points, lengths, ks, torch.zeros(4, dtype=torch.long)))
    for method in ("reference",) + (("triton",) if HAS_TRITON else ()):
        assert torch.equal(_indices(method, points.cuda(), lengths.cuda(), ks.cuda(), start.cuda()).cpu(), want)
