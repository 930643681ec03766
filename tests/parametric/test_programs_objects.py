import functools

import pytest
import torch

from geo4g.parametric.programs import get_program
from geo4g.parametric.programs.base import Draw
from geo4g.parametric.programs.objects import PROGRAMS

NAMES = [p.name for p in PROGRAMS]


@functools.lru_cache(maxsize=None)
def samples(name):
    """Samples of seeds 0..19 (cached: several tests read them)."""
    program = get_program(name)
    return [program.sample(torch.Generator().manual_seed(seed)) for seed in range(20)]


def test_programs_are_registered_in_order():
    assert NAMES == ["airplane", "car", "mug", "bottle", "guitar", "rocket"]
    for program in PROGRAMS:
        assert get_program(program.name) is program
        assert 2 <= len(program.parts) <= 6 and len(set(program.parts)) == len(program.parts)
        assert len(set(program.param_names)) == len(program.param_names)


@pytest.mark.parametrize("name", NAMES)
def test_draw_params_gives_exactly_the_named_parameters(name):
    program = get_program(name)
    params = program.draw_params(Draw(torch.Generator().manual_seed(3)))
    assert set(params) == set(program.param_names)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_shape_and_different_seeds_different_params(name):
    program = get_program(name)
    a, b = (program.sample(torch.Generator().manual_seed(7)) for _ in range(2))
    for x, y in zip(a[:4], b[:4]):
        assert torch.equal(x, y)
    params = torch.stack([s.params for s in samples(name)])
    assert torch.unique(params, dim=0).shape[0] == params.shape[0]


@pytest.mark.parametrize("name", NAMES)
def test_labels_cover_every_part_and_params_match_names(name):
    program = get_program(name)
    seen = set()
    for s in samples(name):
        assert s.category == name
        assert s.params.shape == (len(program.param_names),)
        assert s.face_labels.shape == (s.faces.shape[0],)
        assert int(s.face_labels.min()) >= 0 and int(s.face_labels.max()) < len(program.parts)
        seen.update(s.face_labels.tolist())
    assert seen == set(range(len(program.parts))), f"parts never produced: {set(range(len(program.parts))) - seen}"


@pytest.mark.parametrize("name", NAMES)
def test_mesh_is_finite_centred_with_unit_diagonal(name):
    for s in samples(name):
        assert s.verts.dtype == torch.float32 and s.faces.dtype == torch.long
        assert bool(torch.isfinite(s.verts).all())
        assert int(s.faces.min()) >= 0 and int(s.faces.max()) < s.verts.shape[0]
        low, high = s.verts.amin(0), s.verts.amax(0)
        torch.testing.assert_close(low + high, torch.zeros(3), atol=1e-5, rtol=0)
        assert float((high - low).norm()) == pytest.approx(1.0, abs=1e-5)
        assert 200 <= s.faces.shape[0] <= 5000


@pytest.mark.parametrize("name", NAMES)
def test_from_params_rebuilds_the_sample(name):
    program = get_program(name)
    for s in samples(name)[:5]:
        rebuilt = program.from_params(s.params)
        assert torch.equal(rebuilt.faces, s.faces) and torch.equal(rebuilt.face_labels, s.face_labels)
        torch.testing.assert_close(rebuilt.verts, s.verts, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_zero_area_faces_are_rare(name):
    for s in samples(name):
        a, b, c = s.verts.double()[s.faces].unbind(1)
        area = torch.linalg.cross(b - a, c - a).norm(dim=1) / 2
        assert float((area < 1e-10).float().mean()) < 0.01
