"""Tests for geo4g.structures.checks: every check names the argument, what it got and what it wanted."""
import pytest
import torch

from geo4g.structures.checks import (
    check_faces,
    check_finite,
    check_lengths,
    check_tensor,
    check_tensor_list,
    describe,
)


# describe ---------------------------------------------------------------------
def test_describe_reports_shape_dtype_and_device_of_tensors():
    text = describe(torch.zeros(2, 3, dtype=torch.float64))
    assert "(2, 3)" in text and "float64" in text and "cpu" in text


def test_describe_reports_type_name_of_non_tensors():
    assert describe([1, 2]) == "list"
    assert describe(None) == "NoneType"


# check_tensor -------------------------------------------------------------------
def test_check_tensor_returns_the_same_object_when_valid():
    x = torch.zeros(2, 4, 3)
    assert check_tensor(x, "x", ndim=3, last_dim=3, kind="float") is x


def test_check_tensor_rejects_non_tensor_with_type_error_naming_argument():
    with pytest.raises(TypeError, match=r"points must be a torch\.Tensor \(B, N, 3\), got list"):
        check_tensor([[0.0, 0.0, 0.0]], "points", shape_hint="(B, N, 3)")


def test_check_tensor_rejects_wrong_rank_naming_argument_and_shape():
    with pytest.raises(ValueError, match=r"points must have 3 dimensions.*got shape \(4, 3\)"):
        check_tensor(torch.zeros(4, 3), "points", ndim=3)


def test_check_tensor_accepts_any_of_several_ranks():
    check_tensor(torch.zeros(4), "x", ndim=(1, 2))
    check_tensor(torch.zeros(4, 2), "x", ndim=(1, 2))
    with pytest.raises(ValueError, match=r"x must have 1 or 2 dimensions"):
        check_tensor(torch.zeros(4, 2, 1), "x", ndim=(1, 2))


def test_check_tensor_rejects_wrong_last_dim_naming_argument():
    with pytest.raises(ValueError, match=r"normals must have last dimension 3.*got shape \(5, 2\)"):
        check_tensor(torch.zeros(5, 2), "normals", last_dim=3)


def test_check_tensor_rejects_scalar_when_last_dim_required():
    with pytest.raises(ValueError, match=r"x must have last dimension 3.*got shape \(\)"):
        check_tensor(torch.tensor(3.0), "x", last_dim=3)


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool])
def test_check_tensor_float_kind_rejects_non_float_dtypes(dtype):
    with pytest.raises(TypeError, match=r"points must be a floating point tensor.*" + str(dtype).split(".")[1]):
        check_tensor(torch.zeros(2, 3, dtype=dtype), "points", kind="float")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bool, torch.complex64])
def test_check_tensor_int_kind_rejects_float_bool_and_complex(dtype):
    with pytest.raises(TypeError, match=r"faces must be an integer tensor"):
        check_tensor(torch.zeros(2, 3, dtype=dtype), "faces", kind="int")


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.int16, torch.uint8])
def test_check_tensor_int_kind_accepts_all_integer_dtypes(dtype):
    x = torch.zeros(2, 3, dtype=dtype)
    assert check_tensor(x, "faces", kind="int") is x


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_check_tensor_float_kind_accepts_all_float_dtypes(dtype):
    x = torch.zeros(2, 3, dtype=dtype)
    assert check_tensor(x, "points", kind="float") is x


# check_finite -------------------------------------------------------------------
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_check_finite_rejects_nan_and_inf_naming_argument_count_and_first_index(bad):
    x = torch.zeros(3, 3)
    x[1, 2] = bad
    x[2, 0] = bad
    with pytest.raises(ValueError, match=r"points must be finite, got 2 NaN/inf value\(s\), the first at index \(1, 2\)"):
        check_finite(x, "points")


def test_check_finite_passes_finite_integer_and_empty_tensors():
    x = torch.randn(4, 3)
    assert check_finite(x, "x") is x
    assert check_finite(torch.arange(5), "x") is not None
    assert check_finite(torch.zeros(0, 3), "x").shape == (0, 3)


def test_check_finite_accepts_huge_but_finite_values():
    x = torch.full((2, 3), 1e30)
    assert check_finite(x, "x") is x


# check_lengths ------------------------------------------------------------------
def test_check_lengths_returns_long_tensor():
    out = check_lengths(torch.tensor([1, 3], dtype=torch.int32), "lengths", batch_size=2, max_length=3)
    assert out.dtype == torch.long
    assert out.tolist() == [1, 3]


def test_check_lengths_accepts_empty_batch():
    out = check_lengths(torch.zeros(0, dtype=torch.long), "lengths", batch_size=0, max_length=0)
    assert out.shape == (0,)


def test_check_lengths_rejects_wrong_batch_size_naming_argument():
    with pytest.raises(ValueError, match=r"lengths must have one entry per batch element \(B=3\), got shape \(2,\)"):
        check_lengths(torch.tensor([1, 2]), "lengths", batch_size=3, max_length=5)


def test_check_lengths_rejects_negative_lengths():
    with pytest.raises(ValueError, match=r"lengths must be non-negative, got minimum -1"):
        check_lengths(torch.tensor([-1, 2]), "lengths", batch_size=2, max_length=5)


def test_check_lengths_rejects_lengths_longer_than_padded_size():
    with pytest.raises(ValueError, match=r"lengths must not exceed the padded size 4, got maximum 5"):
        check_lengths(torch.tensor([5, 2]), "lengths", batch_size=2, max_length=4)


def test_check_lengths_rejects_float_and_non_tensor_and_2d():
    with pytest.raises(TypeError, match=r"lengths must be an integer tensor"):
        check_lengths(torch.tensor([1.0, 2.0]), "lengths", batch_size=2, max_length=4)
    with pytest.raises(TypeError, match=r"lengths must be a torch\.Tensor"):
        check_lengths([1, 2], "lengths", batch_size=2, max_length=4)
    with pytest.raises(ValueError, match=r"lengths must have 1 dimensions"):
        check_lengths(torch.tensor([[1, 2]]), "lengths", batch_size=1, max_length=4)


# check_faces --------------------------------------------------------------------
def test_check_faces_passes_valid_faces():
    faces = torch.tensor([[0, 1, 2], [1, 2, 3]])
    assert check_faces(faces, "faces", num_verts=4) is faces


def test_check_faces_accepts_empty_faces_for_mesh_without_vertices():
    assert check_faces(torch.zeros(0, 3, dtype=torch.long), "faces", num_verts=0).shape == (0, 3)


@pytest.mark.parametrize("bad, rng", [(4, r"\[0, 4\]"), (-1, r"\[-1, 2\]")])
def test_check_faces_rejects_indices_out_of_range_naming_argument_and_range(bad, rng):
    faces = torch.tensor([[0, 1, 2], [1, 2, bad]])
    with pytest.raises(ValueError, match=r"faces\[3\] indices must lie in \[0, 4\) for 4 vertices, got range " + rng):
        check_faces(faces, "faces[3]", num_verts=4)


def test_check_faces_rejects_wrong_shape_and_dtype():
    with pytest.raises(ValueError, match=r"faces must have last dimension 3"):
        check_faces(torch.zeros(2, 4, dtype=torch.long), "faces", num_verts=4)
    with pytest.raises(ValueError, match=r"faces must have 2 dimensions"):
        check_faces(torch.zeros(1, 2, 3, dtype=torch.long), "faces", num_verts=4)
    with pytest.raises(TypeError, match=r"faces must be an integer tensor"):
        check_faces(torch.zeros(2, 3), "faces", num_verts=4)


# check_tensor_list --------------------------------------------------------------
def test_check_tensor_list_returns_a_list_for_tuple_input():
    xs = (torch.zeros(2, 3), torch.zeros(4, 3))
    out = check_tensor_list(xs, "points", last_dim=3, kind="float")
    assert isinstance(out, list)
    assert all(a is b for a, b in zip(out, xs))


def test_check_tensor_list_accepts_empty_list():
    assert check_tensor_list([], "points") == []


def test_check_tensor_list_rejects_non_list_naming_argument():
    with pytest.raises(TypeError, match=r"points must be a list of tensors"):
        check_tensor_list(torch.zeros(2, 3), "points")


def test_check_tensor_list_names_the_offending_item():
    with pytest.raises(ValueError, match=r"points\[1\] must have last dimension 3"):
        check_tensor_list([torch.zeros(2, 3), torch.zeros(2, 2)], "points", last_dim=3)
    with pytest.raises(TypeError, match=r"points\[1\] must be a torch\.Tensor"):
        check_tensor_list([torch.zeros(2, 3), [0.0, 0.0, 0.0]], "points")
    with pytest.raises(ValueError, match=r"points\[0\] must have 2 dimensions"):
        check_tensor_list([torch.zeros(3)], "points")


def test_check_tensor_list_rejects_mixed_dtypes():
    with pytest.raises(TypeError, match=r"points must share one dtype, got torch.float32 at \[0\] and torch.float64 at \[2\]"):
        check_tensor_list([torch.zeros(1, 3), torch.zeros(1, 3), torch.zeros(1, 3, dtype=torch.float64)], "points")


def test_check_tensor_list_with_ndim_none_allows_any_rank():
    out = check_tensor_list([torch.zeros(2), torch.zeros(2, 3, 4)], "x", ndim=None)
    assert len(out) == 2
