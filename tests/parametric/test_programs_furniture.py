import functools

import pytest
import torch

from geo4g.parametric.programs.base import Draw
from geo4g.parametric.programs.furniture import PROGRAMS

NAMES = [p.name for p in PROGRAMS]
PROGRAM = {p.name: p for p in PROGRAMS}
SEEDS = range(20)


def sample(name, seed):
    return PROGRAM[name].sample(torch.Generator().manual_seed(seed))


@functools.lru_cache(maxsize=None)
def samples(name):
    return [sample(name, seed) for seed in SEEDS]


def components(faces, num_verts):
    """Component id of each vertex, by min-label propagation along faces."""
    comp = torch.arange(num_verts)
    while True:
        low = comp[faces].amin(1).repeat_interleave(3)
        new = comp.scatter_reduce(0, faces.flatten(), low, "amin")
        if torch.equal(new, comp):
            return comp
        comp = new


def test_programs_in_order_with_valid_declarations():
    assert NAMES == ["chair", "table", "sofa", "bench", "bookshelf", "lamp"]
    for program in PROGRAMS:
        assert 2 <= len(program.parts) <= 6
        assert len(set(program.parts)) == len(program.parts)
        assert len(set(program.param_names)) == len(program.param_names)
        params = program.draw_params(Draw(torch.Generator().manual_seed(0)))
        assert list(params) == list(program.param_names)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_gives_identical_sample(name):
    a, b = sample(name, 7), samples(name)[7]
    assert torch.equal(a.verts, b.verts) and torch.equal(a.faces, b.faces)
    assert torch.equal(a.face_labels, b.face_labels) and torch.equal(a.params, b.params)
    assert a.category == name


@pytest.mark.parametrize("name", NAMES)
def test_different_seeds_give_different_params(name):
    params = torch.stack([s.params for s in samples(name)])
    assert params.shape == (len(SEEDS), len(PROGRAM[name].param_names))
    assert torch.unique(params, dim=0).shape[0] == len(SEEDS)


@pytest.mark.parametrize("name", NAMES)
def test_labels_valid_and_every_part_used(name):
    parts = PROGRAM[name].parts
    seen = set()
    for s in samples(name):
        assert s.face_labels.shape == (s.faces.shape[0],) and s.face_labels.dtype == torch.long
        assert int(s.face_labels.min()) >= 0 and int(s.face_labels.max()) < len(parts)
        seen.update(s.face_labels.tolist())
    assert seen == set(range(len(parts))), f"parts never generated: {[parts[i] for i in set(range(len(parts))) - seen]}"


@pytest.mark.parametrize("name", NAMES)
def test_mesh_normalised_and_not_degenerate(name):
    for s in samples(name):
        assert s.verts.dtype == torch.float32 and s.faces.dtype == torch.long
        assert bool(torch.isfinite(s.verts).all())
        assert 0 <= int(s.faces.min()) and int(s.faces.max()) < s.verts.shape[0]
        assert 12 <= s.faces.shape[0] <= 5000
        low, high = s.verts.amin(0), s.verts.amax(0)
        assert torch.allclose(low + high, torch.zeros(3), atol=1e-5)
        assert float((high - low).norm()) == pytest.approx(1.0, abs=1e-5)
        tri = s.verts.double()[s.faces]
        area = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]).norm(dim=1) / 2
        assert float((area < 1e-9).double().mean()) < 0.01


@pytest.mark.parametrize("name", NAMES)
def test_from_params_reproduces_sample(name):
    program = PROGRAM[name]
    for s in samples(name)[:5]:
        again = program.from_params(s.params)
        assert torch.allclose(again.verts, s.verts, atol=1e-5)
        assert torch.equal(again.faces, s.faces) and torch.equal(again.face_labels, s.face_labels)


@pytest.mark.parametrize("name", NAMES)
def test_no_floating_pieces(name):
    """Every primitive piece touches another one (bounding boxes meet), so nothing hangs in the air."""
    for s in samples(name)[:10]:
        comp = components(s.faces, s.verts.shape[0])
        ids = torch.unique(comp)
        low = torch.stack([s.verts[comp == i].amin(0) for i in ids])
        high = torch.stack([s.verts[comp == i].amax(0) for i in ids])
        tol = 2e-3
        meets = ((low[:, None] <= high[None] + tol) & (low[None] <= high[:, None] + tol)).all(-1)
        meets.fill_diagonal_(False)
        assert bool(meets.any(1).all()), f"{name}: a piece floats"
