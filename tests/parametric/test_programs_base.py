"""Tests for the shape-program machinery: Draw, rotation_matrix, PartAssembler, ShapeProgram, the registry."""
import math

import pytest
import torch

from geo4g.parametric import box_mesh, icosphere
from geo4g.parametric.programs import CATEGORIES, SHAPE_PROGRAMS, get_program
from geo4g.parametric.programs.base import Draw, PartAssembler, ShapeProgram, ShapeSample, rotation_matrix


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# Draw -------------------------------------------------------------------------------------------------------------
def mixed_draws(draw, count=40):
    out = []
    for _ in range(count):
        out += [draw.uniform(-2.0, 3.0), draw.integer(0, 9), draw.coin(0.3), draw.choice("abc")]
    return out


def test_draw_is_reproducible_with_a_seeded_generator_and_depends_on_the_seed():
    a, b, c = (mixed_draws(Draw(gen(s))) for s in (5, 5, 6))
    assert a == b
    assert a != c


def test_draw_without_generator_uses_the_global_seed():
    torch.manual_seed(11)
    a = mixed_draws(Draw())
    torch.manual_seed(11)
    assert mixed_draws(Draw(None)) == a


def test_draw_pool_refill_beyond_one_block_stays_reproducible_and_fresh():
    block = Draw._BLOCK
    n = 3 * block + 5
    first, second = Draw(gen(1)), Draw(gen(1))
    values = [first.uniform(0.0, 1.0) for _ in range(n)]
    assert [second.uniform(0.0, 1.0) for _ in range(n)] == values
    # a refill draws new numbers: no block repeats the one before
    assert len(set(values)) == n
    # the stream is the generator's float64 stream, in order, whatever the block size
    g = gen(1)
    expected = torch.cat([torch.rand(block, dtype=torch.float64, generator=g) for _ in range(4)])[:n].tolist()
    assert values == expected
    # interleaving kinds of draws consumes one number each, so a mixed sequence is reproducible too
    mixed = Draw(gen(1))
    assert [mixed.integer(0, 10 ** 9) if i % 2 else mixed.uniform(0.0, 1.0) for i in range(n)][::2] == values[::2]


def test_uniform_stays_in_its_range_with_the_right_mean():
    draw = Draw(gen(2))
    values = torch.tensor([draw.uniform(-1.5, 2.5) for _ in range(4000)], dtype=torch.float64)
    assert float(values.min()) >= -1.5 and float(values.max()) < 2.5
    # mean 0.5, standard deviation 4 / sqrt(12) / sqrt(4000) ~ 0.018
    assert abs(float(values.mean()) - 0.5) < 0.1
    assert float(values.min()) < -1.4 and float(values.max()) > 2.4
    assert Draw(gen(3)).uniform(1.0, 1.0) == 1.0


def test_integer_bounds_are_inclusive_and_every_value_is_hit_about_equally():
    draw = Draw(gen(4))
    values = [draw.integer(-2, 3) for _ in range(3000)]
    assert all(isinstance(v, int) for v in values)
    assert set(values) == {-2, -1, 0, 1, 2, 3}
    counts = torch.tensor([values.count(v) for v in range(-2, 4)], dtype=torch.float64)
    expected = 3000 / 6
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 25  # 5 degrees of freedom: P(chi2 > 25) ~ 1e-4
    assert {Draw(gen(s)).integer(7, 7) for s in range(5)} == {7}


def test_coin_probability_is_roughly_right():
    draw = Draw(gen(5))
    flips = [draw.coin(0.3) for _ in range(4000)]
    assert all(isinstance(f, bool) for f in flips)
    assert abs(sum(flips) / 4000 - 0.3) < 5 * math.sqrt(0.3 * 0.7 / 4000)
    assert not any(draw.coin(0.0) for _ in range(200))
    assert all(draw.coin(1.0) for _ in range(200))
    fair = [draw.coin() for _ in range(4000)]
    assert abs(sum(fair) / 4000 - 0.5) < 5 * math.sqrt(0.25 / 4000)


def test_choice_returns_every_option_about_equally():
    draw = Draw(gen(6))
    options = ("a", "b", "c", "d")
    picks = [draw.choice(options) for _ in range(2000)]
    assert set(picks) == set(options)
    assert all(abs(picks.count(o) / 2000 - 0.25) < 0.05 for o in options)
    assert draw.choice([42]) == 42
    # repeated options weight the draw
    weighted = [draw.choice((0, 0, 0, 1)) for _ in range(2000)]
    assert abs(sum(weighted) / 2000 - 0.25) < 0.05


@pytest.mark.parametrize("bad", [0, "seed", 1.5, torch.zeros(1)])
def test_draw_with_a_non_generator_raises_type_error(bad):
    with pytest.raises(TypeError, match="generator must be a torch.Generator or None"):
        Draw(bad)


def test_integer_with_empty_range_and_choice_of_nothing_raise():
    draw = Draw(gen(7))
    with pytest.raises(ValueError, match=r"integer needs low <= high, got low=3, high=1"):
        draw.integer(3, 1)
    with pytest.raises(ValueError, match="choice needs at least one option"):
        draw.choice(())


# rotation_matrix ----------------------------------------------------------------------------------------------------
def rodrigues_rotate(v, axis, angle):
    """Naive: rotate v by angle about axis, v cos + (k x v) sin + k (k . v) (1 - cos), k the unit axis."""
    k = torch.tensor(axis, dtype=torch.float64)
    k = k / k.norm()
    v = torch.as_tensor(v, dtype=torch.float64)
    return v * math.cos(angle) + torch.linalg.cross(k, v) * math.sin(angle) + k * (k @ v) * (1 - math.cos(angle))


@pytest.mark.parametrize("axis, angle", [
    ((0.0, 0.0, 1.0), 0.3), ((1.0, 2.0, -0.5), 1.2), ((-3.0, 0.1, 0.2), -2.5), ((0.0, 1.0, 1.0), math.pi),
    ((1.0, 1.0, 1.0), 0.0), ((0.2, -0.7, 0.4), 7.0),
])
def test_rotation_matrix_is_orthogonal_with_det_one_and_matches_rodrigues(axis, angle):
    R = rotation_matrix(axis, angle)
    assert R.shape == (3, 3) and R.dtype == torch.float64
    torch.testing.assert_close(R @ R.T, torch.eye(3, dtype=torch.float64), atol=1e-12, rtol=0)
    assert float(torch.linalg.det(R)) == pytest.approx(1.0, abs=1e-12)
    for column, e in enumerate(torch.eye(3, dtype=torch.float64)):
        torch.testing.assert_close(R[:, column], rodrigues_rotate(e, axis, angle), atol=1e-12, rtol=0)
    # the axis itself is fixed; a tensor axis works the same
    torch.testing.assert_close(R @ torch.tensor(axis, dtype=torch.float64), torch.tensor(axis, dtype=torch.float64))
    torch.testing.assert_close(rotation_matrix(torch.tensor(axis), angle), R)


def test_rotation_matrix_axis_strings_and_right_handedness():
    for name, vector in (("x", (1.0, 0.0, 0.0)), ("y", (0.0, 1.0, 0.0)), ("z", (0.0, 0.0, 1.0))):
        torch.testing.assert_close(rotation_matrix(name, 0.7), rotation_matrix(vector, 0.7))
    x, y, z = torch.eye(3, dtype=torch.float64)
    quarter = math.pi / 2
    # right-handed: +90 degrees about z takes x to y, about x takes y to z, about y takes z to x
    torch.testing.assert_close(rotation_matrix("z", quarter) @ x, y, atol=1e-15, rtol=0)
    torch.testing.assert_close(rotation_matrix("x", quarter) @ y, z, atol=1e-15, rtol=0)
    torch.testing.assert_close(rotation_matrix("y", quarter) @ z, x, atol=1e-15, rtol=0)
    torch.testing.assert_close(rotation_matrix("z", -quarter) @ x, -y, atol=1e-15, rtol=0)
    # the axis length does not matter
    torch.testing.assert_close(rotation_matrix((0.0, 0.0, 5.0), 0.4), rotation_matrix("z", 0.4))


@pytest.mark.parametrize("axis, angle, match", [
    ("w", 0.1, r"axis must be 'x', 'y', 'z' or a 3-vector, got 'w'"),
    ("X", 0.1, "axis must be 'x', 'y', 'z'"),
    ((0.0, 0.0, 0.0), 0.1, "axis must be a finite non-zero 3-vector"),
    ((1.0, 0.0), 0.1, "axis must be a finite non-zero 3-vector"),
    ((1.0, float("nan"), 0.0), 0.1, "axis must be a finite non-zero 3-vector"),
    ("z", float("nan"), "angle must be a finite number"),
    ("z", None, "angle must be a finite number"),
    ("z", [0.1, 0.2], "angle must be a finite number"),
])
def test_rotation_matrix_bad_axis_or_angle_raises(axis, angle, match):
    with pytest.raises(ValueError, match=match):
        rotation_matrix(axis, angle)


# PartAssembler ------------------------------------------------------------------------------------------------------
TETRA = (torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]),
         torch.tensor([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]]))


def test_assembler_offsets_faces_and_labels_every_face():
    parts = PartAssembler(("leg", "seat", "back"))
    box = box_mesh((1.0, 2.0, 3.0))
    parts.add("seat", box)
    parts.add("leg", TETRA, translate=(5.0, 0.0, 0.0))
    parts.add("seat", TETRA)
    verts, faces, labels = parts.mesh()
    assert verts.dtype == torch.float64 and faces.dtype == torch.long and labels.dtype == torch.long
    assert verts.shape == (8 + 4 + 4, 3) and faces.shape == (12 + 4 + 4, 3) and labels.shape == (20,)
    assert torch.equal(faces[:12], box[1])
    assert torch.equal(faces[12:16], TETRA[1] + 8)
    assert torch.equal(faces[16:], TETRA[1] + 12)
    assert labels.tolist() == [1] * 12 + [0] * 4 + [1] * 4
    # each face still indexes the same triangle it had in its own mesh
    torch.testing.assert_close(verts[faces[12:16]], TETRA[0].double()[TETRA[1]] + torch.tensor([5.0, 0, 0]).double())
    torch.testing.assert_close(verts[faces[:12]], box[0].double()[box[1]])


def test_assembler_applies_scale_then_rotate_then_translate():
    scale, turn, shift = (1.0, 2.0, 3.0), rotation_matrix((1.0, 1.0, 0.0), 0.8), (0.5, -1.0, 2.0)
    parts = PartAssembler(("a",))
    parts.add("a", TETRA, scale=scale, rotate=turn, translate=shift)
    verts, _, _ = parts.mesh()
    v = TETRA[0].double()
    expected = torch.stack([turn @ (p * torch.tensor(scale, dtype=torch.float64)) + torch.tensor(shift, dtype=torch.float64)
                            for p in v])
    torch.testing.assert_close(verts, expected)
    # the order matters for this input: rotating before scaling gives something else
    wrong = torch.stack([(turn @ p) * torch.tensor(scale, dtype=torch.float64) + torch.tensor(shift, dtype=torch.float64)
                         for p in v])
    assert not torch.allclose(verts, wrong)
    # a scalar scale and a float32 rotation work too
    scalar = PartAssembler(("a",))
    scalar.add("a", TETRA, scale=2.0, rotate=turn.float())
    torch.testing.assert_close(scalar.mesh()[0], v * 2.0 @ turn.T, atol=1e-6, rtol=0)


def test_assembler_leaves_the_input_mesh_untouched():
    verts, faces = box_mesh()
    before = verts.clone(), faces.clone()
    parts = PartAssembler(("a", "b"))
    parts.add("a", (verts, faces), scale=3.0, translate=(1.0, 1.0, 1.0))
    parts.add("b", (verts, faces))
    assert torch.equal(verts, before[0]) and torch.equal(faces, before[1])


def test_assembler_unknown_part_and_empty_assembly_raise():
    parts = PartAssembler(("leg", "seat"))
    with pytest.raises(ValueError, match=r"unknown part 'arm'; this program's parts are \['leg', 'seat'\]"):
        parts.add("arm", TETRA)
    with pytest.raises(ValueError, match="the program placed no parts"):
        parts.mesh()


# ShapeProgram -------------------------------------------------------------------------------------------------------
class Snowman(ShapeProgram):
    """Test program: a ball ("base") with a second ball ("head") ``lift`` above it (working +z)
    and ``reach`` towards the front (working -y). Both balls have radius ``size``."""

    name = "snowman"
    parts = ("base", "head")
    param_names = ("lift", "reach")

    def __init__(self, size=0.5):
        self.size = size

    def draw_params(self, draw):
        return {"reach": draw.uniform(0.0, 0.5), "lift": draw.uniform(1.0, 2.0)}

    def build(self, params, parts):
        ball = icosphere(1, 1.0)
        parts.add("base", ball, scale=self.size)
        parts.add("head", ball, scale=self.size, translate=(0.0, -params["reach"], params["lift"]))


def test_sample_is_deterministic_and_returns_a_shape_sample():
    program = Snowman()
    a, b, c = program.sample(gen(0)), program.sample(gen(0)), program.sample(gen(1))
    assert isinstance(a, ShapeSample) and a.category == "snowman"
    for x, y in zip(a[:4], b[:4]):
        assert torch.equal(x, y)
    assert not torch.equal(a.params, c.params) and not torch.equal(a.verts, c.verts)
    assert a.verts.dtype == torch.float32 and a.params.dtype == torch.float32
    assert a.faces.dtype == torch.long and a.face_labels.dtype == torch.long
    assert a.face_labels.tolist() == [0] * 80 + [1] * 80
    assert a.params.shape == (2,)


def test_sample_params_are_the_drawn_values_in_param_names_order_rounded_to_float32():
    program = Snowman()
    drawn = program.draw_params(Draw(gen(3)))
    sample = program.sample(gen(3))
    # draw_params returns "reach" first; the vector follows param_names = (lift, reach)
    assert sample.params.tolist() == torch.tensor([drawn["lift"], drawn["reach"]], dtype=torch.float32).tolist()


def part_vertex_index(sample, label):
    """The (sorted) vertices used by the faces of one part."""
    return sample.faces[sample.face_labels == label].unique()


def manual_output(program, lift, reach):
    """Naive: build in the working frame, map (x, y, z) -> (x, z, -y), centre the box, unit diagonal."""
    ball = icosphere(1, 1.0)[0].double() * program.size
    working = torch.cat([ball, ball + torch.tensor([0.0, -reach, lift], dtype=torch.float64)])
    out = torch.stack([working[:, 0], working[:, 2], -working[:, 1]], 1)
    low, high = out.min(0).values, out.max(0).values
    return (out - (low + high) / 2) / (high - low).norm()


def test_output_frame_is_y_up_front_plus_z_centred_with_unit_diagonal():
    program = Snowman()
    lift, reach, size = 1.5, 0.25, program.size
    sample = program.from_params({"lift": lift, "reach": reach})
    torch.testing.assert_close(sample.verts, manual_output(program, lift, reach).float())
    verts = sample.verts.double()
    low, high = verts.min(0).values, verts.max(0).values
    torch.testing.assert_close((low + high) / 2, torch.zeros(3, dtype=torch.float64), atol=1e-6, rtol=0)
    assert float((high - low).norm()) == pytest.approx(1.0, abs=1e-6)
    # the head (working +z and towards working -y) ends up above (+y) and in front (+z) of the base;
    # the icosphere's vertices are symmetric about its centre and reach +-1 on each axis
    base, head = (verts[part_vertex_index(sample, k)] for k in (0, 1))
    offset = head.mean(0) - base.mean(0)
    diagonal = math.sqrt((2 * size) ** 2 + (2 * size + lift) ** 2 + (2 * size + reach) ** 2)
    torch.testing.assert_close(offset, torch.tensor([0.0, lift, reach], dtype=torch.float64) / diagonal,
                               atol=1e-6, rtol=0)


def test_lift_only_moves_along_output_y_and_reach_only_along_output_z():
    program = Snowman()
    for params, axis in (({"lift": 2.0, "reach": 0.0}, 1), ({"lift": 0.0, "reach": 2.0}, 2)):
        sample = program.from_params(params)
        base, head = (sample.verts[part_vertex_index(sample, k)].double() for k in (0, 1))
        # icosphere vertex lists line up one to one: every head vertex is its base vertex moved along one axis
        move = head - base
        assert float(move[:, axis].min()) > 0.5
        others = [k for k in range(3) if k != axis]
        assert float(move[:, others].abs().max()) < 1e-6


def test_from_params_accepts_a_dict_a_list_or_a_tensor_and_gives_identical_shapes():
    program = Snowman()
    by_dict = program.from_params({"reach": 0.2, "lift": 1.25})
    by_list = program.from_params([1.25, 0.2])
    by_tensor = program.from_params(torch.tensor([1.25, 0.2], dtype=torch.float64))
    by_float32 = program.from_params(torch.tensor([1.25, 0.2]))  # 0.2 rounded to float32
    for other in (by_list, by_tensor):
        for x, y in zip(by_dict[:4], other[:4]):
            assert torch.equal(x, y)
    assert by_dict.params.tolist() == torch.tensor([1.25, 0.2], dtype=torch.float32).tolist()
    assert torch.equal(by_float32.params, by_dict.params)
    torch.testing.assert_close(by_float32.verts, by_dict.verts)


def test_from_params_of_a_sample_reproduces_it_exactly():
    program = Snowman()
    for seed in range(5):
        sample = program.sample(gen(seed))
        again = program.from_params(sample.params)
        for x, y in zip(sample[:4], again[:4]):
            assert torch.equal(x, y)
        as_dict = program.from_params(dict(zip(program.param_names, sample.params.tolist())))
        assert torch.equal(as_dict.verts, sample.verts)


@pytest.mark.parametrize("params, match", [
    ({"lift": 1.0}, r"snowman: params must have keys \['lift', 'reach'\]; missing \['reach'\], unexpected \[\]"),
    ({"lift": 1.0, "reach": 0.1, "hat": 1.0}, r"snowman: .*missing \[\], unexpected \['hat'\]"),
    ([1.0], r"snowman: a parameter vector needs 2 values \(\['lift', 'reach'\]\), got 1"),
    (torch.zeros(3), r"snowman: a parameter vector needs 2 values"),
    ({"lift": float("nan"), "reach": 0.1}, r"snowman: parameters \['lift'\] are NaN or infinite"),
    ([1.0, float("inf")], r"snowman: parameters \['reach'\] are NaN or infinite"),
    (torch.tensor([float("nan"), float("nan")]), r"snowman: parameters \['lift', 'reach'\] are NaN"),
])
def test_bad_params_raise_value_error_naming_the_program(params, match):
    with pytest.raises(ValueError, match=match):
        Snowman().from_params(params)


def test_a_degenerate_shape_raises_value_error_naming_the_program():
    # both balls shrink to one point: the bounding box has no diagonal to normalise by
    with pytest.raises(ValueError, match=r"snowman: parameters \{'lift': 0.0, 'reach': 0.0\} give a degenerate shape"):
        Snowman(size=0.0).from_params({"lift": 0.0, "reach": 0.0})
    # one point per part, apart, is fine
    assert Snowman(size=0.0).from_params({"lift": 1.0, "reach": 0.0}).verts.shape == (84, 3)


class Forgetful(Snowman):
    name = "forgetful"

    def draw_params(self, draw):
        return {"lift": draw.uniform(1.0, 2.0)}


def test_sample_of_a_program_whose_draw_params_misses_a_key_raises_naming_it():
    with pytest.raises(ValueError, match=r"forgetful: params must have keys .*missing \['reach'\]"):
        Forgetful().sample(gen(0))


def test_shape_program_is_abstract_and_has_a_readable_repr():
    with pytest.raises(TypeError):
        ShapeProgram()
    assert repr(Snowman()) == "Snowman(name='snowman', parts=['base', 'head'], num_params=2)"


# registry -----------------------------------------------------------------------------------------------------------
def test_get_program_returns_registered_programs_and_unknown_names_list_the_categories():
    for name in CATEGORIES:
        assert get_program(name) is SHAPE_PROGRAMS[name]
    with pytest.raises(ValueError, match=r"unknown shape category 'spaceship'; known categories: \[") as info:
        get_program("spaceship")
    for name in CATEGORIES:
        assert repr(name) in str(info.value)


def test_categories_are_many_programs_with_2_to_6_parts_and_unique_names():
    assert len(CATEGORIES) >= 12 and len(set(CATEGORIES)) == len(CATEGORIES)
    assert CATEGORIES == tuple(SHAPE_PROGRAMS)
    for name in CATEGORIES:
        program = get_program(name)
        assert isinstance(program, ShapeProgram) and program.name == name
        assert 2 <= len(program.parts) <= 6 and len(set(program.parts)) == len(program.parts)
        assert len(program.param_names) >= 1 and len(set(program.param_names)) == len(program.param_names)
        params = program.draw_params(Draw(gen(0)))
        assert set(params) == set(program.param_names)
