"""Tests for Pointclouds: every view against a naive loop-based twin, autograd, batch ops, bad input."""
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geo4g.structures import Pointclouds

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# naive twins -----------------------------------------------------------------------------
def naive_padded(items, n, pad_value=0.0):
    d = items[0].shape[1] if items else 0
    out = torch.full((len(items), n, d), pad_value, dtype=items[0].dtype if items else torch.float32)
    for b, t in enumerate(items):
        for i in range(t.shape[0]):
            out[b, i] = t[i]
    return out


def naive_packed(items, d):
    rows = [row for t in items for row in t]
    return torch.stack(rows) if rows else torch.zeros(0, d)


def naive_index_maps(lengths):
    first, batch, padded_idx = [], [], []
    n_max = max(lengths, default=0)
    total = 0
    for b, n in enumerate(lengths):
        first.append(total)
        total += n
        for i in range(n):
            batch.append(b)
            padded_idx.append(b * n_max + i)
    return first, batch, padded_idx


def naive_bbox(items):
    boxes = []
    for p in items:
        box = torch.zeros(3, 2, dtype=p.dtype)
        if p.shape[0]:
            for axis in range(3):
                box[axis, 0] = min(float(v) for v in p[:, axis])
                box[axis, 1] = max(float(v) for v in p[:, axis])
        boxes.append(box)
    return torch.stack(boxes) if boxes else torch.zeros(0, 3, 2)


def make_clouds(lengths, channels=4, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    points = [torch.randn(n, 3, generator=g, dtype=dtype) for n in lengths]
    normals = [torch.nn.functional.normalize(torch.randn(n, 3, generator=g, dtype=dtype), dim=-1) for n in lengths]
    features = [torch.randn(n, channels, generator=g, dtype=dtype) for n in lengths]
    return points, normals, features


def garbage_padded(items, n, d):
    """A padded tensor whose padding rows hold 999 so leaks show up."""
    out = torch.full((len(items), n, d), 999.0)
    for b, t in enumerate(items):
        out[b, : t.shape[0]] = t
    return out


lengths_st = st.lists(st.integers(0, 6), min_size=0, max_size=5)


# views ------------------------------------------------------------------------------------
@FAST
@given(lengths=lengths_st, seed=st.integers(0, 2**31), channels=st.integers(1, 4))
def test_views_from_list_match_naive_for_ragged_lengths(lengths, seed, channels):
    points, normals, features = make_clouds(lengths, channels, seed)
    pc = Pointclouds(points, normals=normals, features=features)
    n = max(lengths, default=0)
    assert len(pc) == len(lengths)
    assert pc.num_points_per_cloud().tolist() == lengths
    assert pc.isempty() == (sum(lengths) == 0)
    for got, want in ((pc.points_list(), points), (pc.normals_list(), normals), (pc.features_list(), features)):
        assert len(got) == len(want) and all(torch.equal(a, b) for a, b in zip(got, want))
    assert torch.equal(pc.points_packed(), naive_packed(points, 3))
    assert torch.equal(pc.normals_packed(), naive_packed(normals, 3))
    if lengths:
        assert torch.equal(pc.features_packed(), naive_packed(features, channels))
        assert torch.equal(pc.points_padded(), naive_padded(points, n))
        assert torch.equal(pc.normals_padded(), naive_padded(normals, n))
        assert torch.equal(pc.features_padded(), naive_padded(features, n))
    else:  # an empty list does not say how many feature channels there are
        assert pc.points_padded().shape == (0, 0, 3) and pc.normals_padded().shape == (0, 0, 3)
        assert pc.features_packed().shape[0] == 0 and pc.features_padded().shape[:2] == (0, 0)


@FAST
@given(lengths=lengths_st.filter(len), seed=st.integers(0, 2**31), extra=st.integers(0, 2))
def test_views_from_padded_with_lengths_match_naive(lengths, seed, extra):
    points, normals, features = make_clouds(lengths, 2, seed)
    n = max(lengths) + extra
    pc = Pointclouds(garbage_padded(points, n, 3), normals=garbage_padded(normals, n, 3),
                     features=garbage_padded(features, n, 2), lengths=torch.tensor(lengths))
    assert pc.num_points_per_cloud().tolist() == lengths
    assert all(torch.equal(a, b) for a, b in zip(pc.points_list(), points))
    assert all(torch.equal(a, b) for a, b in zip(pc.features_list(), features))
    assert torch.equal(pc.points_packed(), naive_packed(points, 3))
    assert torch.equal(pc.normals_packed(), naive_packed(normals, 3))
    # The padded view keeps the input's N and zeroes the padding rows.
    assert torch.equal(pc.points_padded(), naive_padded(points, n))
    assert torch.equal(pc.normals_padded(), naive_padded(normals, n))
    assert torch.equal(pc.features_padded(), naive_padded(features, n))


@FAST
@given(lengths=lengths_st, seed=st.integers(0, 2**31), from_padded=st.booleans())
def test_index_maps_match_naive(lengths, seed, from_padded):
    points, _, _ = make_clouds(lengths, seed=seed)
    if from_padded and lengths:
        pc = Pointclouds(garbage_padded(points, max(lengths), 3), lengths=torch.tensor(lengths))
    else:
        pc = Pointclouds(points)
    first, batch, padded_idx = naive_index_maps(lengths)
    assert pc.cloud_to_packed_first_idx().tolist() == first
    assert pc.packed_to_cloud_idx().tolist() == batch
    assert pc.padded_to_packed_idx().tolist() == padded_idx
    for t in (pc.cloud_to_packed_first_idx(), pc.packed_to_cloud_idx(), pc.padded_to_packed_idx()):
        assert t.dtype == torch.long


def test_padded_to_packed_idx_indexes_padded_view_when_padded_input_is_longer_than_every_cloud():
    points, _, _ = make_clouds([2, 3])
    pc = Pointclouds(garbage_padded(points, 5, 3), lengths=torch.tensor([2, 3]))
    assert pc.points_padded().shape == (2, 5, 3)
    idx = pc.padded_to_packed_idx()
    assert idx.tolist() == [0, 1, 5, 6, 7]
    assert torch.equal(pc.points_padded().reshape(-1, 3)[idx], pc.points_packed())


def test_padded_input_without_lengths_uses_every_row():
    x = torch.randn(2, 4, 3)
    pc = Pointclouds(x)
    assert pc.num_points_per_cloud().tolist() == [4, 4]
    assert torch.equal(pc.points_padded(), x)
    assert torch.equal(pc.points_packed(), x.reshape(-1, 3))


def test_nan_in_padding_rows_of_padded_input_is_ignored():
    x = torch.zeros(1, 3, 3)
    x[0, 2] = float("nan")
    pc = Pointclouds(x, lengths=torch.tensor([2]))
    assert torch.isfinite(pc.points_padded()).all()


def test_missing_normals_and_features_views_are_none():
    pc = Pointclouds([torch.randn(3, 3)])
    assert pc.normals_list() is None and pc.normals_padded() is None and pc.normals_packed() is None
    assert pc.features_list() is None and pc.features_padded() is None and pc.features_packed() is None


def test_get_cloud_returns_points_normals_features_of_one_cloud():
    points, normals, features = make_clouds([2, 3])
    pc = Pointclouds(points, normals=normals, features=features)
    p, n, f = pc.get_cloud(-1)
    assert torch.equal(p, points[1]) and torch.equal(n, normals[1]) and torch.equal(f, features[1])
    assert Pointclouds(points).get_cloud(0)[1:] == (None, None)
    with pytest.raises(IndexError, match=r"index 2 is out of range for a batch of 2"):
        pc.get_cloud(2)
    with pytest.raises(TypeError, match=r"index must be an int"):
        pc.get_cloud(slice(0, 1))


@FAST
@given(lengths=lengths_st, seed=st.integers(0, 2**31))
def test_bounding_boxes_match_naive_with_zeros_for_empty_clouds(lengths, seed):
    points, _, _ = make_clouds(lengths, seed=seed)
    boxes = Pointclouds(points).get_bounding_boxes()
    assert boxes.shape == (len(lengths), 3, 2)
    assert torch.equal(boxes, naive_bbox(points))


def test_repr_names_batch_and_sizes():
    text = repr(Pointclouds([torch.zeros(2, 3), torch.zeros(0, 3)], normals=[torch.zeros(2, 3), torch.zeros(0, 3)]))
    assert "batch=2" in text and "[2, 0]" in text and "normals" in text


# empty batches and clouds ---------------------------------------------------------------------------
def test_empty_batch_has_empty_views():
    pc = Pointclouds([], normals=[])
    assert len(pc) == 0 and pc.isempty()
    assert pc.points_list() == [] and pc.normals_list() == []
    assert pc.points_packed().shape == (0, 3) and pc.normals_packed().shape == (0, 3)
    assert pc.points_padded().shape == (0, 0, 3) and pc.normals_padded().shape == (0, 0, 3)
    assert pc.num_points_per_cloud().shape == (0,)
    assert pc.get_bounding_boxes().shape == (0, 3, 2)
    assert pc.padded_to_packed_idx().shape == (0,)
    assert len(pc.normalize()) == 0 and len(pc.scale(2.0)) == 0 and len(pc.offset(torch.ones(3))) == 0
    assert len(pc.extend(3)) == 0


def test_empty_batch_views_keep_dtype_of_padded_input_and_of_selected_batch():
    pc = Pointclouds(torch.zeros(0, 4, 3, dtype=torch.float64))
    assert pc.points_packed().dtype == torch.float64 and pc.points_packed().shape == (0, 3)
    assert pc.get_bounding_boxes().dtype == torch.float64
    sub = Pointclouds([torch.randn(2, 3, dtype=torch.float64)], features=[torch.randn(2, 5, dtype=torch.float64)])[[]]
    assert sub.points_padded().shape == (0, 0, 3) and sub.points_padded().dtype == torch.float64
    assert sub.features_packed().shape == (0, 5)


def test_batch_of_empty_clouds_keeps_lengths_through_every_op():
    pc = Pointclouds([torch.zeros(0, 3), torch.randn(2, 3)], normals=[torch.zeros(0, 3), torch.randn(2, 3)])
    assert not pc.isempty()
    assert pc.points_padded().shape == (2, 2, 3)
    assert torch.equal(pc.points_padded()[0], torch.zeros(2, 3))
    for out in (pc.normalize(), pc.normalize("cube"), pc.scale(-2.0), pc.offset(torch.ones(3)), pc.clone()):
        assert out.num_points_per_cloud().tolist() == [0, 2]
        assert torch.isfinite(out.points_packed()).all()
    assert Pointclouds([torch.zeros(0, 3)]).isempty()


def test_single_point_cloud_is_centred_by_normalize_and_not_scaled():
    pc = Pointclouds([torch.tensor([[3.0, -2.0, 5.0]])])
    for mode in ("sphere", "cube"):
        out = pc.normalize(mode)
        assert torch.equal(out.points_packed(), torch.zeros(1, 3))
    assert torch.equal(pc.get_bounding_boxes()[0], torch.tensor([[3.0, 3.0], [-2.0, -2.0], [5.0, 5.0]]))


# autograd ------------------------------------------------------------------------------------------------
def test_gradients_flow_from_every_view_to_list_input():
    points, normals, features = make_clouds([2, 0, 3])
    for t in points + normals + features:
        t.requires_grad_(True)
    pc = Pointclouds(points, normals=normals, features=features)
    w = torch.arange(1.0, 4.0)
    loss = (pc.points_padded() * w).sum() + 2 * pc.points_packed().sum() + 3 * pc.points_list()[2].sum()
    loss = loss + pc.normals_padded().sum() + pc.features_packed().sum()
    loss.backward()
    assert torch.equal(points[0].grad, (w + 2).expand(2, 3))
    assert torch.equal(points[2].grad, (w + 5).expand(3, 3))
    assert torch.equal(points[1].grad, torch.zeros(0, 3))
    assert torch.equal(normals[2].grad, torch.ones(3, 3))
    assert torch.equal(features[0].grad, torch.ones(2, 4))


def test_gradients_flow_from_every_view_to_padded_input_and_not_to_padding():
    x = torch.randn(2, 4, 3, requires_grad=True)
    pc = Pointclouds(x, lengths=torch.tensor([1, 3]))
    (pc.points_padded().sum() + pc.points_packed().sum() + pc.points_list()[0].sum()).backward()
    expected = torch.zeros(2, 4, 3)
    expected[0, :1] = 3.0
    expected[1, :3] = 2.0
    assert torch.equal(x.grad, expected)


def test_views_pass_gradcheck_in_float64():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(2, 3, dtype=torch.float64, generator=g, requires_grad=True)
    b = torch.randn(3, 3, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: Pointclouds([a, b]).points_padded(), (a, b))
    assert torch.autograd.gradcheck(lambda a, b: Pointclouds([a, b]).points_packed(), (a, b))
    x = torch.randn(2, 4, 3, dtype=torch.float64, generator=g, requires_grad=True)
    lengths = torch.tensor([2, 4])
    assert torch.autograd.gradcheck(lambda x: Pointclouds(x, lengths=lengths).points_padded(), (x,))
    assert torch.autograd.gradcheck(lambda x: Pointclouds(x, lengths=lengths).points_packed(), (x,))
    assert torch.autograd.gradcheck(lambda x: Pointclouds(x, lengths=lengths).points_list()[0], (x,))


@pytest.mark.parametrize("mode", ["sphere", "cube"])
def test_normalize_passes_gradcheck_in_float64(mode):
    g = torch.Generator().manual_seed(2)
    a = torch.randn(4, 3, dtype=torch.float64, generator=g, requires_grad=True)
    b = torch.randn(5, 3, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: Pointclouds([a, b]).normalize(mode).points_packed(), (a, b))


def test_offset_and_scale_pass_gradcheck_with_respect_to_their_argument():
    points = [torch.randn(2, 3, dtype=torch.float64), torch.randn(3, 3, dtype=torch.float64)]
    pc = Pointclouds(points)
    off = torch.randn(3, dtype=torch.float64, requires_grad=True)
    scale = torch.tensor([1.5, -0.5], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda o: pc.offset(o).points_packed(), (off,))
    assert torch.autograd.gradcheck(lambda s: pc.scale(s).points_packed(), (scale,))


# indexing ---------------------------------------------------------------------------------------------
LENGTHS = [2, 0, 3, 1]


@pytest.fixture
def batch():
    points, normals, features = make_clouds(LENGTHS)
    return Pointclouds(points, normals=normals, features=features), points, normals, features


@pytest.mark.parametrize("index, picked", [
    (1, [1]),
    (-1, [3]),
    (-4, [0]),
    (slice(1, None, 2), [1, 3]),
    (slice(None, None, -1), [3, 2, 1, 0]),
    ([2, 0, 2], [2, 0, 2]),
    ([-1], [3]),
    ((0, 3), [0, 3]),
    ([], []),
    (torch.tensor([3, 1]), [3, 1]),
    (torch.tensor(2), [2]),
    (torch.tensor([2, 0], dtype=torch.int32), [2, 0]),
    (torch.tensor([True, False, True, False]), [0, 2]),
])
def test_indexing_selects_the_clouds_with_their_normals_and_features(batch, index, picked):
    pc, points, normals, features = batch
    out = pc[index]
    assert isinstance(out, Pointclouds)
    assert len(out) == len(picked)
    assert out.num_points_per_cloud().tolist() == [LENGTHS[i] for i in picked]
    for got, want in zip(out.points_list(), [points[i] for i in picked]):
        assert torch.equal(got, want)
    for got, want in zip(out.normals_list(), [normals[i] for i in picked]):
        assert torch.equal(got, want)
    for got, want in zip(out.features_list(), [features[i] for i in picked]):
        assert torch.equal(got, want)


@pytest.mark.parametrize("index", [4, -5, [0, 4], torch.tensor([1, -5]), torch.tensor([True, False])])
def test_indexing_out_of_range_raises_index_error(batch, index):
    with pytest.raises(IndexError, match=r"index"):
        batch[0][index]


@pytest.mark.parametrize("index", [torch.tensor([0.0]), 1.0, "a", True, [0, 1.0], None])
def test_indexing_with_non_integer_raises_type_error(batch, index):
    with pytest.raises(TypeError, match=r"index"):
        batch[0][index]


# to / clone / detach / extend ---------------------------------------------------------------------------
def test_to_same_device_returns_self_unless_copy_requested(batch):
    pc = batch[0]
    assert pc.to("cpu") is pc
    assert pc.cpu() is pc
    copy = pc.to("cpu", copy=True)
    assert copy is not pc
    assert all(torch.equal(a, b) for a, b in zip(copy.points_list(), pc.points_list()))


def test_clone_is_an_independent_copy(batch):
    pc, points, normals, features = batch
    before = [p.clone() for p in points]
    copy = pc.clone()
    assert all(torch.equal(a, b) for a, b in zip(copy.points_list(), points))
    for t in copy.points_list() + copy.normals_list() + copy.features_list():
        t.add_(1.0)
    assert all(torch.equal(a, b) for a, b in zip(pc.points_list(), before))
    assert all(torch.equal(a, b) for a, b in zip(pc.normals_list(), normals))


def test_detach_has_no_grad_and_same_values():
    x = torch.randn(2, 3, 3, requires_grad=True)
    n = torch.randn(2, 3, 3, requires_grad=True)
    pc = Pointclouds(x * 2, normals=n)
    out = pc.detach()
    for t in (out.points_padded(), out.points_packed(), out.normals_packed(), *out.points_list()):
        assert not t.requires_grad
    assert torch.equal(out.points_padded(), pc.points_padded().detach())
    assert pc.points_packed().requires_grad


def test_extend_repeats_each_cloud_in_order(batch):
    pc, points, normals, features = batch
    out = pc.extend(2)
    order = [0, 0, 1, 1, 2, 2, 3, 3]
    assert out.num_points_per_cloud().tolist() == [LENGTHS[i] for i in order]
    for got, i in zip(out.points_list(), order):
        assert torch.equal(got, points[i])
    for got, i in zip(out.features_list(), order):
        assert torch.equal(got, features[i])
    assert len(pc.extend(1)) == 4


def test_extend_copies_do_not_share_storage(batch):
    pc, points, _, _ = batch
    out = pc.extend(2)
    out.points_list()[0].add_(1.0)
    assert torch.equal(out.points_list()[1], points[0])
    assert torch.equal(pc.points_list()[0], points[0])


@pytest.mark.parametrize("n", [0, -1, 1.5, True, "2"])
def test_extend_rejects_non_positive_or_non_int(batch, n):
    with pytest.raises(ValueError, match=r"n must be a positive int"):
        batch[0].extend(n)


# update_padded ---------------------------------------------------------------------------------------------
def test_update_padded_keeps_lengths_and_takes_new_values(batch):
    pc, _, normals, features = batch
    new = torch.randn(pc.points_padded().shape)
    out = pc.update_padded(new)
    assert out.num_points_per_cloud().tolist() == LENGTHS
    for b, (got, n) in enumerate(zip(out.points_list(), LENGTHS)):
        assert torch.equal(got, new[b, :n])
    assert torch.equal(out.points_padded(), naive_padded([new[b, :n] for b, n in enumerate(LENGTHS)], 3))
    # normals and features are kept when not given
    assert all(torch.equal(a, b) for a, b in zip(out.normals_list(), normals))
    assert all(torch.equal(a, b) for a, b in zip(out.features_list(), features))


def test_update_padded_replaces_normals_and_features_when_given(batch):
    pc = batch[0]
    new_n = torch.randn(pc.normals_padded().shape)
    new_f = torch.randn(4, 3, 7)
    out = pc.update_padded(pc.points_padded(), new_normals_padded=new_n, new_features_padded=new_f)
    assert torch.equal(out.normals_list()[2], new_n[2, :3])
    assert out.features_packed().shape == (6, 7)


def test_update_padded_gradient_reaches_new_tensor_only_on_valid_rows(batch):
    pc = batch[0]
    new = torch.randn(pc.points_padded().shape, requires_grad=True)
    pc.update_padded(new).points_packed().sum().backward()
    assert torch.equal(new.grad, naive_padded([torch.ones(n, 3) for n in LENGTHS], 3))


def test_update_padded_rejects_wrong_shape(batch):
    pc = batch[0]
    with pytest.raises(ValueError, match=r"new_points_padded must have shape \(4, 3\) \+ \(D,\).*got \(4, 4, 3\)"):
        pc.update_padded(torch.zeros(4, 4, 3))
    with pytest.raises(ValueError, match=r"new_points_padded must have 3 dimensions"):
        pc.update_padded(torch.zeros(12, 3))
    with pytest.raises(ValueError, match=r"new_normals_padded must have last dimension 3"):
        pc.update_padded(pc.points_padded(), new_normals_padded=torch.zeros(4, 3, 2))
    with pytest.raises(TypeError, match=r"new_points_padded must be a floating point tensor"):
        pc.update_padded(torch.zeros(4, 3, 3, dtype=torch.long))


# offset / scale ------------------------------------------------------------------------------------------------
def test_offset_by_one_vector_moves_every_point(batch):
    pc, points, normals, _ = batch
    out = pc.offset(torch.tensor([1.0, -2.0, 3.0]))
    for got, want in zip(out.points_list(), points):
        assert torch.allclose(got, want + torch.tensor([1.0, -2.0, 3.0]))
    assert all(torch.equal(a, b) for a, b in zip(out.normals_list(), normals))
    # the original is unchanged
    assert all(torch.equal(a, b) for a, b in zip(pc.points_list(), points))


def test_offset_by_packed_offsets_moves_each_point(batch):
    pc = batch[0]
    offsets = torch.randn(6, 3)
    out = pc.offset(offsets)
    assert torch.allclose(out.points_packed(), pc.points_packed() + offsets)
    assert out.num_points_per_cloud().tolist() == LENGTHS


def test_offset_rejects_wrong_shape_and_nan_naming_offsets(batch):
    pc = batch[0]
    with pytest.raises(ValueError, match=r"offsets must be \(sum N_i, 3\) packed or \(3,\), got shape \(4, 3\)"):
        pc.offset(torch.zeros(4, 3))
    with pytest.raises(ValueError, match=r"offsets must be finite"):
        pc.offset(torch.tensor([0.0, float("nan"), 0.0]))


def test_scale_by_scalar_and_per_cloud(batch):
    pc, points, normals, features = batch
    out = pc.scale(2.5)
    assert torch.allclose(out.points_packed(), pc.points_packed() * 2.5)
    assert torch.equal(out.normals_packed(), pc.normals_packed())
    per = torch.tensor([1.0, 2.0, 3.0, 4.0])
    out = pc.scale(per)
    for b, (got, want) in enumerate(zip(out.points_list(), points)):
        assert torch.allclose(got, want * per[b])
    assert all(torch.equal(a, b) for a, b in zip(out.features_list(), features))


def test_scale_keeps_normals_like_pytorch3d_also_when_negative_or_zero(batch):
    pc, points, normals, _ = batch
    out = pc.scale(torch.tensor([-1.0, 1.0, 2.0, -3.0]))
    assert all(torch.equal(a, b) for a, b in zip(out.normals_list(), normals))
    assert torch.equal(out.points_list()[3], -3.0 * points[3])
    assert torch.equal(pc.scale(0.0).normals_packed(), pc.normals_packed())


def test_scale_rejects_wrong_shape_and_inf_naming_scale(batch):
    pc = batch[0]
    with pytest.raises(ValueError, match=r"scale must be a scalar or \(B,\) with B=4, got shape \(3,\)"):
        pc.scale(torch.ones(3))
    with pytest.raises(ValueError, match=r"scale must be finite"):
        pc.scale(float("inf"))


# normalize -----------------------------------------------------------------------------------------------------
@FAST
@given(lengths=st.lists(st.integers(2, 8), min_size=1, max_size=4), seed=st.integers(0, 2**31),
       magnitude=st.sampled_from([1e-3, 1.0, 1e6]))
def test_normalize_sphere_centres_each_cloud_and_puts_farthest_point_on_unit_sphere(lengths, seed, magnitude):
    points, normals, _ = make_clouds(lengths, seed=seed, dtype=torch.float64)
    pc = Pointclouds([p * magnitude + magnitude for p in points], normals=normals)
    out = pc.normalize("sphere")
    assert out.num_points_per_cloud().tolist() == lengths
    for p in out.points_list():
        assert torch.isfinite(p).all()
        assert torch.allclose(p.mean(0), torch.zeros(3, dtype=p.dtype), atol=1e-9)
        assert torch.allclose(p.norm(dim=-1).max(), torch.tensor(1.0, dtype=p.dtype))
    assert all(torch.equal(a, b) for a, b in zip(out.normals_list(), normals))


@FAST
@given(lengths=st.lists(st.integers(2, 8), min_size=1, max_size=4), seed=st.integers(0, 2**31),
       magnitude=st.sampled_from([1e-3, 1.0, 1e6]))
def test_normalize_cube_centres_bounding_box_and_makes_longest_side_one(lengths, seed, magnitude):
    points, _, _ = make_clouds(lengths, seed=seed, dtype=torch.float64)
    pc = Pointclouds([p * magnitude - magnitude for p in points])
    boxes = pc.normalize("cube").get_bounding_boxes()
    assert torch.isfinite(boxes).all()
    assert torch.allclose(boxes.mean(-1), torch.zeros(len(lengths), 3, dtype=torch.float64), atol=1e-9)
    assert torch.allclose((boxes[..., 1] - boxes[..., 0]).max(-1).values, torch.ones(len(lengths), dtype=torch.float64))


def test_normalize_of_huge_float32_coordinates_stays_finite():
    pc = Pointclouds([torch.randn(50, 3) * 1e6 + 1e6])
    for mode in ("sphere", "cube"):
        out = pc.normalize(mode).points_packed()
        assert torch.isfinite(out).all()
        assert out.abs().max() <= 1.0 + 1e-4
    assert torch.isfinite(pc.get_bounding_boxes()).all()


def test_normalize_rejects_unknown_mode():
    with pytest.raises(ValueError, match=r"mode must be 'sphere' or 'cube', got 'ball'"):
        Pointclouds([torch.randn(3, 3)]).normalize("ball")


# bad input ---------------------------------------------------------------------------------------------------------
def test_points_with_wrong_last_dim_raise_naming_points():
    with pytest.raises(ValueError, match=r"points\[1\] must have last dimension 3.*got shape \(4, 2\)"):
        Pointclouds([torch.zeros(2, 3), torch.zeros(4, 2)])
    with pytest.raises(ValueError, match=r"points must have last dimension 3.*\(B, N, 3\)"):
        Pointclouds(torch.zeros(2, 4, 4))


def test_points_with_wrong_rank_raise_naming_points():
    with pytest.raises(ValueError, match=r"points must have 3 dimensions.*got shape \(4, 3\)"):
        Pointclouds(torch.zeros(4, 3))
    with pytest.raises(ValueError, match=r"points\[0\] must have 2 dimensions"):
        Pointclouds([torch.zeros(1, 4, 3)])


def test_integer_points_raise_type_error_naming_points():
    with pytest.raises(TypeError, match=r"points\[0\] must be a floating point tensor.*int64"):
        Pointclouds([torch.zeros(2, 3, dtype=torch.long)])
    with pytest.raises(TypeError, match=r"points must be a floating point tensor"):
        Pointclouds(torch.zeros(1, 2, 3, dtype=torch.int32))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_points_raise_naming_points(bad):
    x = torch.zeros(2, 3)
    x[1, 0] = bad
    with pytest.raises(ValueError, match=r"points\[1\] must be finite.*index \(1, 0\)"):
        Pointclouds([torch.zeros(1, 3), x])
    with pytest.raises(ValueError, match=r"points\[0\] must be finite"):
        Pointclouds(x[None])


def test_non_finite_normals_and_features_raise_naming_them():
    bad = torch.tensor([[0.0, float("nan"), 0.0]])
    with pytest.raises(ValueError, match=r"normals\[0\] must be finite"):
        Pointclouds([torch.zeros(1, 3)], normals=[bad])
    with pytest.raises(ValueError, match=r"features\[0\] must be finite"):
        Pointclouds([torch.zeros(1, 3)], features=[bad])


def test_ragged_list_of_mixed_dtypes_raises_type_error():
    with pytest.raises(TypeError, match=r"points must share one dtype"):
        Pointclouds([torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.float64)])


def test_non_tensor_points_raise_type_error():
    with pytest.raises(TypeError, match=r"points must be a list of \(N_i, 3\) tensors or a padded"):
        Pointclouds("points")
    with pytest.raises(TypeError, match=r"points\[0\] must be a torch\.Tensor"):
        Pointclouds([[[0.0, 0.0, 0.0]]])


def test_lengths_for_list_input_raise():
    with pytest.raises(ValueError, match=r"lengths is only used with a padded points tensor"):
        Pointclouds([torch.zeros(2, 3)], lengths=torch.tensor([2]))


def test_bad_lengths_for_padded_input_raise_naming_lengths():
    x = torch.zeros(2, 3, 3)
    with pytest.raises(ValueError, match=r"lengths must not exceed the padded size 3, got maximum 4"):
        Pointclouds(x, lengths=torch.tensor([1, 4]))
    with pytest.raises(ValueError, match=r"lengths must be non-negative"):
        Pointclouds(x, lengths=torch.tensor([-1, 1]))
    with pytest.raises(ValueError, match=r"lengths must have one entry per batch element"):
        Pointclouds(x, lengths=torch.tensor([1]))
    with pytest.raises(TypeError, match=r"lengths must be an integer tensor"):
        Pointclouds(x, lengths=torch.tensor([1.0, 2.0]))


def test_normals_with_mismatching_lengths_raise_naming_normals():
    points = [torch.zeros(2, 3), torch.zeros(5, 3)]
    with pytest.raises(ValueError, match=r"normals must have the lengths of points \[2, 5\], got \[2, 4\]"):
        Pointclouds(points, normals=[torch.zeros(2, 3), torch.zeros(4, 3)])
    with pytest.raises(ValueError, match=r"normals must hold 2 items like points, got 1"):
        Pointclouds(points, normals=[torch.zeros(2, 3)])
    with pytest.raises(ValueError, match=r"padded normals must have shape \(2, N >= 5, 3\).*got shape \(2, 4, 3\)"):
        Pointclouds(points, normals=torch.zeros(2, 4, 3))
    with pytest.raises(ValueError, match=r"padded normals must have shape \(2, N >= 5, 3\).*got shape \(3, 5, 3\)"):
        Pointclouds(points, normals=torch.zeros(3, 5, 3))
    with pytest.raises(ValueError, match=r"normals\[0\] must have last dimension 3"):
        Pointclouds(points, normals=[torch.zeros(2, 2), torch.zeros(5, 2)])


def test_padded_normals_and_features_follow_list_points_lengths():
    points = [torch.randn(2, 3), torch.randn(5, 3)]
    normals = torch.randn(2, 6, 3)
    pc = Pointclouds(points, normals=normals, features=torch.randn(2, 5, 4))
    assert pc.normals_packed().shape == (7, 3)
    assert torch.equal(pc.normals_list()[0], normals[0, :2])


def test_normals_and_features_with_wrong_dtype_raise():
    points = [torch.zeros(2, 3)]
    with pytest.raises(TypeError, match=r"normals must have the dtype of points"):
        Pointclouds(points, normals=[torch.zeros(2, 3, dtype=torch.float64)])
    with pytest.raises(TypeError, match=r"features\[0\] must be a floating point tensor"):
        Pointclouds(points, features=[torch.zeros(2, 3, dtype=torch.long)])


def test_features_with_different_channels_per_cloud_raise_naming_features():
    with pytest.raises(ValueError, match=r"features must share one row shape"):
        Pointclouds([torch.zeros(2, 3), torch.zeros(3, 3)], features=[torch.zeros(2, 4), torch.zeros(3, 5)])


# devices (run only where CUDA is present) -------------------------------------------------------------------
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@cuda
def test_ragged_list_on_mixed_devices_raises_naming_points():
    with pytest.raises(ValueError, match=r"points must share one device"):
        Pointclouds([torch.zeros(2, 3), torch.zeros(2, 3, device="cuda")])
    with pytest.raises(ValueError, match=r"normals must be on the device of points"):
        Pointclouds([torch.zeros(2, 3)], normals=[torch.zeros(2, 3, device="cuda")])


@cuda
def test_to_cuda_moves_every_view_and_empty_batch_keeps_device():
    points, normals, features = make_clouds([2, 0, 3])
    pc = Pointclouds(points, normals=normals, features=features).to("cuda")
    for t in (pc.points_padded(), pc.points_packed(), pc.normals_padded(), pc.features_packed(),
              pc.padded_to_packed_idx(), pc.packed_to_cloud_idx(), pc.get_bounding_boxes()):
        assert t.device.type == "cuda"
    assert torch.equal(pc.normalize().points_packed().cpu(), Pointclouds(points).normalize().points_packed())
    assert pc[[]].points_packed().device.type == "cuda"
    assert pc.cpu().points_packed().device.type == "cpu"
