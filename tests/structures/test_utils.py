"""Tests for the list / padded / packed conversions, each against a naive loop-based twin."""
import itertools

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geo4g.structures import (
    lengths_to_batch_idx,
    lengths_to_first_idx,
    lengths_to_mask,
    list_to_packed,
    list_to_padded,
    packed_to_list,
    packed_to_padded,
    padded_to_list,
    padded_to_packed,
)

FAST = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DTYPES = [torch.float32, torch.float64, torch.int64]


# naive twins ------------------------------------------------------------------------
def naive_list_to_padded(xs, pad_size, pad_value, dtype):
    out = torch.full((len(xs), *pad_size), pad_value, dtype=dtype)
    for b, t in enumerate(xs):
        for idx in itertools.product(*(range(s) for s in t.shape)):
            out[(b, *idx)] = t[idx]
    return out


def naive_padded_to_packed(x, lengths):
    rows = []
    for b in range(x.shape[0]):
        for n in range(int(lengths[b])):
            rows.append(x[b, n])
    return torch.stack(rows) if rows else x.new_zeros((0, *x.shape[2:]))


def naive_packed_to_padded(x, lengths, max_size, pad_value):
    out = torch.full((len(lengths), max_size, *x.shape[1:]), pad_value, dtype=x.dtype)
    k = 0
    for b, n in enumerate(lengths):
        for i in range(n):
            out[b, i] = x[k]
            k += 1
    return out


def naive_list_to_packed(xs):
    rows = [row for t in xs for row in t]
    return torch.stack(rows) if rows else xs[0].new_zeros((0, *xs[0].shape[1:]))


def naive_mask(lengths, max_len):
    return torch.tensor([[n < length for n in range(max_len)] for length in lengths], dtype=torch.bool).reshape(
        len(lengths), max_len)


def naive_first_idx(lengths):
    out, total = [], 0
    for n in lengths:
        out.append(total)
        total += n
    return out


def naive_batch_idx(lengths):
    return [b for b, n in enumerate(lengths) for _ in range(n)]


# strategies -----------------------------------------------------------------------------
lengths_st = st.lists(st.integers(0, 5), min_size=0, max_size=5)
trailing_st = st.lists(st.integers(1, 3), min_size=0, max_size=2).map(tuple)


def make_items(lengths, trailing, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    if dtype.is_floating_point:
        return [torch.randn((n, *trailing), generator=g, dtype=dtype) for n in lengths]
    return [torch.randint(-100, 100, (n, *trailing), generator=g, dtype=dtype) for n in lengths]


def make_padded(lengths, trailing, dtype, seed, extra=0):
    """A padded tensor whose padding rows hold garbage (999) so leaks show up."""
    n = max(lengths, default=0) + extra
    items = make_items(lengths, trailing, dtype, seed)
    x = torch.full((len(lengths), n, *trailing), 999, dtype=dtype)
    for b, t in enumerate(items):
        x[b, : t.shape[0]] = t
    return x, items


# lengths helpers ---------------------------------------------------------------------------
@FAST
@given(lengths=lengths_st, extra=st.integers(0, 3))
def test_lengths_to_mask_matches_naive(lengths, extra):
    t = torch.tensor(lengths, dtype=torch.long)
    max_len = max(lengths, default=0)
    assert torch.equal(lengths_to_mask(t), naive_mask(lengths, max_len))
    assert torch.equal(lengths_to_mask(t, max_len + extra), naive_mask(lengths, max_len + extra))


@FAST
@given(lengths=lengths_st)
def test_lengths_to_first_idx_and_batch_idx_match_naive(lengths):
    t = torch.tensor(lengths, dtype=torch.long)
    first = lengths_to_first_idx(t)
    batch = lengths_to_batch_idx(t)
    assert first.dtype == torch.long and batch.dtype == torch.long
    assert first.tolist() == naive_first_idx(lengths)
    assert batch.tolist() == naive_batch_idx(lengths)


def test_lengths_helpers_accept_python_lists_and_int32():
    assert lengths_to_mask([2, 0, 1]).tolist() == naive_mask([2, 0, 1], 2).tolist()
    assert lengths_to_first_idx(torch.tensor([2, 0, 1], dtype=torch.int32)).tolist() == [0, 2, 2]
    assert lengths_to_batch_idx([2, 0, 1]).tolist() == [0, 0, 2]


def test_lengths_helpers_on_empty_batch_give_empty_results():
    empty = torch.zeros(0, dtype=torch.long)
    assert lengths_to_mask(empty).shape == (0, 0)
    assert lengths_to_first_idx(empty).shape == (0,)
    assert lengths_to_batch_idx(empty).shape == (0,)


@pytest.mark.parametrize("fn", [lengths_to_mask, lengths_to_first_idx, lengths_to_batch_idx])
def test_lengths_helpers_reject_negative_float_and_2d_lengths(fn):
    with pytest.raises(ValueError, match=r"lengths must be non-negative, got minimum -2"):
        fn(torch.tensor([1, -2]))
    with pytest.raises(TypeError, match=r"lengths must be an integer tensor"):
        fn(torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"lengths must have 1 dimensions"):
        fn(torch.tensor([[1, 2]]))


# list <-> padded -------------------------------------------------------------------------
@FAST
@given(lengths=lengths_st.filter(len), trailing=trailing_st, dtype=st.sampled_from(DTYPES),
       seed=st.integers(0, 2**31), pad_value=st.sampled_from([0.0, -1.0, 7.0]))
def test_list_to_padded_matches_naive_for_ragged_lengths(lengths, trailing, dtype, seed, pad_value):
    xs = make_items(lengths, trailing, dtype, seed)
    out = list_to_padded(xs, pad_value=pad_value)
    want = naive_list_to_padded(xs, (max(lengths), *trailing), pad_value, dtype)
    assert out.dtype == dtype
    assert torch.equal(out, want)


@FAST
@given(shapes=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=4),
       seed=st.integers(0, 2**31))
def test_list_to_padded_pads_every_dimension_to_the_largest_item(shapes, seed):
    g = torch.Generator().manual_seed(seed)
    xs = [torch.randn(s, generator=g) for s in shapes]
    pad_size = (max(s[0] for s in shapes), max(s[1] for s in shapes))
    assert torch.equal(list_to_padded(xs, pad_value=-3.0), naive_list_to_padded(xs, pad_size, -3.0, torch.float32))


def test_list_to_padded_honours_explicit_pad_size():
    xs = [torch.ones(2, 3), torch.ones(1, 3)]
    assert list_to_padded(xs, pad_size=4).shape == (2, 4, 3)
    out = list_to_padded(xs, pad_size=[3, 5])
    assert out.shape == (2, 3, 5)
    assert torch.equal(out, naive_list_to_padded(xs, (3, 5), 0.0, torch.float32))


def test_list_to_padded_rejects_pad_size_smaller_than_an_item_or_of_wrong_length():
    xs = [torch.ones(2, 3), torch.ones(4, 3)]
    with pytest.raises(ValueError, match=r"pad_size \[3, 3\] is smaller than the largest item \[4, 3\]"):
        list_to_padded(xs, pad_size=3)
    with pytest.raises(ValueError, match=r"pad_size must have 2 entries"):
        list_to_padded(xs, pad_size=[4, 3, 1])


def test_list_to_padded_equisized_stacks_items():
    xs = [torch.randn(2, 3), torch.randn(2, 3)]
    assert torch.equal(list_to_padded(xs, equisized=True), torch.stack(xs))


def test_list_to_padded_of_empty_list_is_empty():
    assert list_to_padded([]).shape == (0, 0)


def test_list_to_padded_rejects_bad_input_naming_x():
    with pytest.raises(TypeError, match=r"x must be a list of tensors"):
        list_to_padded(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"x must hold tensors of one rank, got ranks \[1, 2\]"):
        list_to_padded([torch.zeros(2), torch.zeros(2, 3)])
    with pytest.raises(TypeError, match=r"x must share one dtype"):
        list_to_padded([torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.float64)])


@FAST
@given(lengths=lengths_st, trailing=trailing_st, dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**31),
       as_tensor=st.booleans())
def test_padded_to_list_crops_each_item_to_its_length(lengths, trailing, dtype, seed, as_tensor):
    x, items = make_padded(lengths, trailing, dtype, seed, extra=1)
    split = torch.tensor(lengths, dtype=torch.long) if as_tensor else lengths
    out = padded_to_list(x, split)
    assert len(out) == len(items)
    for got, want in zip(out, items):
        assert torch.equal(got, want)


def test_padded_to_list_without_split_size_keeps_all_rows():
    x = torch.randn(3, 4, 2)
    out = padded_to_list(x)
    assert len(out) == 3 and all(torch.equal(o, x[i]) for i, o in enumerate(out))


def test_padded_to_list_crops_several_dimensions_with_per_item_shapes():
    x = torch.randn(2, 4, 5)
    out = padded_to_list(x, [(1, 2), (4, 5)])
    assert torch.equal(out[0], x[0, :1, :2])
    assert torch.equal(out[1], x[1])


def test_padded_to_list_rejects_bad_split_size_and_rank():
    x = torch.randn(2, 4, 3)
    with pytest.raises(ValueError, match=r"split_size must have 2 entries \(B\), got 3"):
        padded_to_list(x, [1, 2, 3])
    with pytest.raises(ValueError, match=r"split_size\[1\]=\[5\] does not fit item shape \(4, 3\)"):
        padded_to_list(x, [1, 5])
    with pytest.raises(ValueError, match=r"split_size\[0\]=\[-1\]"):
        padded_to_list(x, [-1, 1])
    with pytest.raises(ValueError, match=r"x must have at least 2 dimensions"):
        padded_to_list(torch.zeros(3))
    with pytest.raises(TypeError, match=r"x must be a torch\.Tensor"):
        padded_to_list([torch.zeros(3)])


# padded <-> packed -----------------------------------------------------------------------
@FAST
@given(lengths=lengths_st, trailing=trailing_st, dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**31),
       extra=st.integers(0, 2))
def test_padded_to_packed_matches_naive_for_ragged_lengths(lengths, trailing, dtype, seed, extra):
    x, _ = make_padded(lengths, trailing, dtype, seed, extra=extra)
    t = torch.tensor(lengths, dtype=torch.long)
    out = padded_to_packed(x, t)
    assert out.shape == (sum(lengths), *trailing)
    assert torch.equal(out, naive_padded_to_packed(x, lengths))


def test_padded_to_packed_without_lengths_keeps_every_row():
    x = torch.randn(3, 4, 2)
    assert torch.equal(padded_to_packed(x), naive_padded_to_packed(x, [4, 4, 4]))


def test_padded_to_packed_rejects_lengths_that_do_not_fit():
    x = torch.randn(2, 3, 3)
    with pytest.raises(ValueError, match=r"split_size must not exceed the padded size 3, got maximum 4"):
        padded_to_packed(x, torch.tensor([1, 4]))
    with pytest.raises(ValueError, match=r"split_size must have one entry per batch element \(B=2\)"):
        padded_to_packed(x, torch.tensor([1, 1, 1]))
    with pytest.raises(ValueError, match=r"split_size must be non-negative"):
        padded_to_packed(x, [1, -1])
    with pytest.raises(ValueError, match=r"split_size or pad_value, not both"):
        padded_to_packed(x, [1, 1], pad_value=0.0)


def test_padded_to_packed_with_pad_value_drops_rows_that_are_all_padding():
    x = torch.tensor([[[1.0, 2.0], [-1.0, 5.0], [-1.0, -1.0]], [[-1.0, -1.0], [3.0, 4.0], [-1.0, -1.0]]])
    want = torch.tensor([[1.0, 2.0], [-1.0, 5.0], [3.0, 4.0]])
    assert torch.equal(padded_to_packed(x, pad_value=-1.0), want)
    ids = torch.tensor([[4, 7, -1], [2, -1, -1]])
    assert torch.equal(padded_to_packed(ids, pad_value=-1), torch.tensor([4, 7, 2]))
    with pytest.raises(ValueError, match=r"x must have at least 2 dimensions"):
        padded_to_packed(torch.zeros(3), [1, 1, 1])


@FAST
@given(lengths=lengths_st, trailing=trailing_st, dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**31),
       extra=st.integers(0, 2), pad_value=st.sampled_from([0.0, -1.0]))
def test_packed_to_padded_matches_naive_for_ragged_lengths(lengths, trailing, dtype, seed, extra, pad_value):
    items = make_items(lengths, trailing, dtype, seed)
    packed = naive_list_to_packed(items) if items else torch.zeros((0, *trailing), dtype=dtype)
    max_size = max(lengths, default=0) + extra
    out = packed_to_padded(packed, torch.tensor(lengths, dtype=torch.long), max_size=max_size, pad_value=pad_value)
    assert torch.equal(out, naive_packed_to_padded(packed, lengths, max_size, pad_value))
    default = packed_to_padded(packed, lengths)
    assert default.shape[:2] == (len(lengths), max(lengths, default=0))


def test_packed_to_padded_rejects_wrong_sum_and_small_max_size():
    x = torch.randn(5, 3)
    with pytest.raises(ValueError, match=r"lengths must sum to the packed size 5, got 4"):
        packed_to_padded(x, [2, 2])
    with pytest.raises(ValueError, match=r"max_size must be at least the longest item \(3\), got 2"):
        packed_to_padded(x, [2, 3], max_size=2)
    with pytest.raises(ValueError, match=r"lengths must sum to the packed size 0"):
        packed_to_padded(torch.tensor(1.0), [1])


# list <-> packed -------------------------------------------------------------------------
@FAST
@given(lengths=lengths_st.filter(len), trailing=trailing_st, dtype=st.sampled_from(DTYPES),
       seed=st.integers(0, 2**31))
def test_list_to_packed_matches_naive_for_ragged_lengths(lengths, trailing, dtype, seed):
    items = make_items(lengths, trailing, dtype, seed)
    out, num_items, first_idx, to_list_idx = list_to_packed(items)
    assert out.shape == (sum(lengths), *trailing)
    assert torch.equal(out, naive_list_to_packed(items))
    assert num_items.tolist() == list(lengths)
    assert first_idx.tolist() == [sum(lengths[:i]) for i in range(len(lengths))]
    assert to_list_idx.tolist() == [i for i, n in enumerate(lengths) for _ in range(n)]


def test_list_to_packed_of_empty_list_is_empty():
    packed, num_items, first_idx, to_list_idx = list_to_packed([])
    assert packed.numel() == 0 and num_items.numel() == first_idx.numel() == to_list_idx.numel() == 0


def test_list_to_packed_rejects_bad_input_naming_x():
    with pytest.raises(TypeError, match=r"x must be a list of tensors"):
        list_to_packed(torch.zeros(3, 3))
    with pytest.raises(TypeError, match=r"x must share one dtype"):
        list_to_packed([torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.float64)])
    with pytest.raises(ValueError, match=r"x must hold tensors of one rank >= 1"):
        list_to_packed([torch.tensor(1.0), torch.tensor(2.0)])


@FAST
@given(lengths=lengths_st, trailing=trailing_st, dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**31),
       as_tensor=st.booleans())
def test_packed_to_list_matches_naive_split(lengths, trailing, dtype, seed, as_tensor):
    items = make_items(lengths, trailing, dtype, seed)
    packed = naive_list_to_packed(items) if items else torch.zeros((0, *trailing), dtype=dtype)
    out = packed_to_list(packed, torch.tensor(lengths, dtype=torch.long) if as_tensor else lengths)
    assert len(out) == len(items)
    for got, want in zip(out, items):
        assert torch.equal(got, want)


def test_packed_to_list_rejects_lengths_with_wrong_sum():
    with pytest.raises(ValueError, match=r"split_size must sum to the packed size 4, got 5"):
        packed_to_list(torch.zeros(4, 3), [2, 3])


# round trips -------------------------------------------------------------------------------
@FAST
@given(lengths=lengths_st.filter(len), trailing=trailing_st, dtype=st.sampled_from(DTYPES),
       seed=st.integers(0, 2**31))
def test_round_trips_between_list_padded_and_packed_are_exact(lengths, trailing, dtype, seed):
    items = make_items(lengths, trailing, dtype, seed)
    t = torch.tensor(lengths, dtype=torch.long)
    padded = list_to_padded(items, pad_value=-5)
    packed = list_to_packed(items)[0]
    # list -> padded -> list
    for got, want in zip(padded_to_list(padded, t), items):
        assert torch.equal(got, want)
    # list -> packed -> list
    for got, want in zip(packed_to_list(packed, t), items):
        assert torch.equal(got, want)
    # padded -> packed == list -> packed
    assert torch.equal(padded_to_packed(padded, t), packed)
    # packed -> padded == list -> padded (same pad value)
    assert torch.equal(packed_to_padded(packed, t, pad_value=-5), padded)
    # packed -> padded -> packed
    assert torch.equal(padded_to_packed(packed_to_padded(packed, t), t), packed)


def test_round_trip_of_batch_with_only_empty_items():
    items = [torch.zeros(0, 3), torch.zeros(0, 3)]
    padded = list_to_padded(items)
    assert padded.shape == (2, 0, 3)
    assert padded_to_packed(padded, [0, 0]).shape == (0, 3)
    assert [p.shape for p in packed_to_list(list_to_packed(items)[0], [0, 0])] == [(0, 3), (0, 3)]


# autograd ---------------------------------------------------------------------------------------
def test_conversions_pass_gradcheck_in_float64():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(2, 3, dtype=torch.float64, generator=g, requires_grad=True)
    b = torch.randn(4, 3, dtype=torch.float64, generator=g, requires_grad=True)
    lengths = torch.tensor([2, 0, 4])
    empty = torch.zeros(0, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a, b: list_to_padded([a, empty, b]), (a, b))
    assert torch.autograd.gradcheck(lambda a, b: list_to_packed([a, empty, b]), (a, b))
    padded = torch.randn(3, 4, 3, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(lambda p: padded_to_packed(p, lengths), (padded,))
    assert torch.autograd.gradcheck(lambda p: padded_to_list(p, lengths)[2], (padded,))
    packed = torch.randn(6, 3, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(lambda p: packed_to_padded(p, lengths, max_size=5), (packed,))
    assert torch.autograd.gradcheck(lambda p: packed_to_list(p, lengths)[2], (packed,))


def test_padded_to_packed_gradient_is_zero_on_padding_rows():
    x = torch.randn(2, 3, 3, requires_grad=True)
    padded_to_packed(x, torch.tensor([1, 3])).sum().backward()
    assert torch.equal(x.grad[0, 1:], torch.zeros(2, 3))
    assert torch.equal(x.grad[0, :1], torch.ones(1, 3))
    assert torch.equal(x.grad[1], torch.ones(3, 3))
