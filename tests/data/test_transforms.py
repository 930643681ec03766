"""Tests for the item transforms: plain-torch references on random items, reproducibility,
no mutation of the input, bad arguments, bad items, repr."""
import math

import pytest
import torch

from geo4g.data.transforms import (
    Compose,
    Jitter,
    NormalizeUnitCube,
    NormalizeUnitSphere,
    RandomPointDropout,
    RandomRotation,
    RandomScale,
    RandomTranslate,
    SamplePoints,
    check_item,
    random_rotations,
)
from geo4g.meshes import sample_surface


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def point_item(n=50, seed=0, dtype=torch.float64):
    g = gen(seed)
    normals = torch.randn(n, 3, generator=g, dtype=dtype)
    return {
        "points": torch.randn(n, 3, generator=g, dtype=dtype) * 2 + 1,
        "normals": normals / normals.norm(dim=1, keepdim=True),
        "part_labels": torch.randint(0, 4, (n,), generator=g),
        "label": torch.tensor(2),
        "category": "chair",
        "name": f"shape_{seed}",
        "params": torch.rand(5, generator=g),
    }


def mesh_item(num_faces=30, seed=0, dtype=torch.float64):
    """A random triangle soup (3 verts per face) with a part label per face."""
    g = gen(seed)
    verts = torch.randn(3 * num_faces, 3, generator=g, dtype=dtype) + torch.tensor([3.0, -1.0, 2.0], dtype=dtype)
    return {
        "verts": verts,
        "faces": torch.arange(3 * num_faces).view(num_faces, 3),
        "face_labels": torch.randint(0, 5, (num_faces,), generator=g),
        "label": torch.tensor(1),
        "name": f"mesh_{seed}",
    }


def face_normals(verts, faces):
    a, b, c = verts[faces].unbind(1)
    n = torch.linalg.cross(b - a, c - a)
    return n / n.norm(dim=1, keepdim=True)


def drawn_rotation(transform_cls, seed, **kwargs):
    """The rotation a seeded RandomRotation draws, read off by rotating the identity rows: p' = p R^T."""
    out = transform_cls(generator=gen(seed), **kwargs)({"points": torch.eye(3, dtype=torch.float64)})
    return out["points"].t()


def rotation_angle(r):
    return torch.arccos(((torch.diagonal(r, dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1))


# rotation ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs", [{}, {"max_angle": 0.4}, {"axis": "x"}, {"axis": "y", "max_angle": 1.0},
                                    {"axis": "z"}])
def test_rotation_is_orthogonal_with_det_one(kwargs):
    for seed in range(5):
        r = drawn_rotation(RandomRotation, seed, **kwargs)
        torch.testing.assert_close(r @ r.t(), torch.eye(3, dtype=torch.float64))
        assert torch.linalg.det(r).item() == pytest.approx(1.0)


@pytest.mark.parametrize("kwargs", [{}, {"max_angle": 0.4}, {"axis": "z"}])
def test_rotation_matches_reference_on_points_normals_and_verts(kwargs):
    item = {**point_item(), **{k: v for k, v in mesh_item().items() if k in ("verts", "faces")}}
    r = drawn_rotation(RandomRotation, 7, **kwargs)
    out = RandomRotation(generator=gen(7), **kwargs)(item)
    for key in ("points", "normals", "verts"):
        torch.testing.assert_close(out[key], item[key] @ r.t())
    torch.testing.assert_close(torch.cdist(out["points"], out["points"]), torch.cdist(item["points"], item["points"]),
                               atol=1e-6, rtol=1e-6)
    # normals stay consistent with the points they describe: n_i . p_j is invariant
    torch.testing.assert_close(out["normals"] @ out["points"].t(), item["normals"] @ item["points"].t())
    torch.testing.assert_close(face_normals(out["verts"], out["faces"]),
                               face_normals(item["verts"], item["faces"]) @ r.t())


@pytest.mark.parametrize("axis", ["x", "y", "z"])
def test_rotation_about_axis_keeps_that_coordinate_and_bounds_the_angle(axis):
    item = point_item()
    k = "xyz".index(axis)
    for seed in range(10):
        out = RandomRotation(axis=axis, max_angle=0.5, generator=gen(seed))(item)
        torch.testing.assert_close(out["points"][:, k], item["points"][:, k])
        assert rotation_angle(drawn_rotation(RandomRotation, seed, axis=axis, max_angle=0.5)) <= 0.5 + 1e-6


def test_random_rotations_are_uniform_on_so3():
    r = random_rotations(4000, gen(0), dtype=torch.float64)
    torch.testing.assert_close(r @ r.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(4000, 3, 3))
    torch.testing.assert_close(torch.linalg.det(r), torch.ones(4000, dtype=torch.float64))
    # Haar: E[R] = 0 and E[R_ij^2] = 1/3; the angle has CDF (t - sin t) / pi
    assert r.mean(0).abs().max() < 0.05
    assert (r ** 2).mean(0).sub(1 / 3).abs().max() < 0.03
    t = math.pi / 2
    assert (rotation_angle(r) < t).double().mean().item() == pytest.approx((t - math.sin(t)) / math.pi, abs=0.03)


def test_random_rotation_transform_moves_a_vector_uniformly():
    g = gen(1)
    rotate = RandomRotation(generator=g)
    e = {"points": torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)}
    rotated = torch.cat([rotate(e)["points"] for _ in range(1000)])
    assert rotated.mean(0).norm() < 0.1
    assert (rotated ** 2).mean(0).sub(1 / 3).abs().max() < 0.05


def test_capped_rotation_is_haar_restricted_to_the_angle():
    a = 0.8
    angles, axes = [], []
    for seed in range(400):
        r = drawn_rotation(RandomRotation, seed, max_angle=a)
        angles.append(rotation_angle(r))
        axes.append(torch.stack([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]]))
    angles, axes = torch.stack(angles), torch.stack(axes)
    assert angles.max() <= a + 1e-6
    t = a / 2
    assert (angles < t).double().mean().item() == pytest.approx((t - math.sin(t)) / (a - math.sin(a)), abs=0.06)
    axes = axes / axes.norm(dim=1, keepdim=True)
    assert axes.mean(0).norm() < 0.15


def test_max_angle_zero_is_the_identity():
    item = point_item()
    for kwargs in ({}, {"axis": "y"}):
        out = RandomRotation(max_angle=0.0, generator=gen(0), **kwargs)(item)
        torch.testing.assert_close(out["points"], item["points"])


# scale, translate, jitter, dropout ------------------------------------------------------------------------------
def test_isotropic_scale_scales_positions_and_keeps_normals():
    item = point_item()
    out = RandomScale(0.5, 2.0, generator=gen(3))(item)
    ratio = out["points"] / item["points"]
    assert torch.allclose(ratio, ratio[0, 0]) and 0.5 <= ratio[0, 0] <= 2.0
    torch.testing.assert_close(out["normals"], item["normals"])


def test_anisotropic_scale_keeps_normals_perpendicular_to_the_scaled_surface():
    mesh = mesh_item(num_faces=40)
    verts, faces = mesh["verts"], mesh["faces"]
    item = {"verts": verts, "faces": faces, "points": verts[faces].mean(1), "normals": face_normals(verts, faces)}
    out = RandomScale(0.3, 3.0, anisotropic=True, generator=gen(5))(item)
    factors = out["verts"][0] / verts[0]
    torch.testing.assert_close(out["verts"], verts * factors)
    assert not torch.allclose(factors, factors[0])
    # the transformed point normals are the face normals of the scaled mesh
    torch.testing.assert_close(out["normals"], face_normals(out["verts"], faces))
    a, b, c = out["verts"][faces].unbind(1)
    assert ((b - a) * out["normals"]).sum(-1).abs().max() < 1e-10
    torch.testing.assert_close(out["normals"].norm(dim=1), torch.ones(40, dtype=torch.float64))


def test_anisotropic_scale_keeps_zero_normals_zero():
    item = {"points": torch.rand(4, 3), "normals": torch.zeros(4, 3)}
    out = RandomScale(anisotropic=True, generator=gen(0))(item)
    assert torch.equal(out["normals"], torch.zeros(4, 3))


def test_translate_shifts_everything_by_one_bounded_offset():
    item = {**point_item(), **{k: v for k, v in mesh_item().items() if k in ("verts", "faces")}}
    bound = torch.tensor([0.1, 0.0, 0.3], dtype=torch.float64)
    for seed in range(5):
        out = RandomTranslate((0.1, 0.0, 0.3), generator=gen(seed))(item)
        shift = out["points"] - item["points"]
        torch.testing.assert_close(shift, shift[:1].expand_as(shift))
        torch.testing.assert_close(out["verts"] - item["verts"], shift[:1].expand_as(item["verts"]))
        assert (shift[0].abs() <= bound).all()
        torch.testing.assert_close(out["normals"], item["normals"])


def test_jitter_is_clipped_gaussian_noise_on_points_only():
    item = point_item(n=4000)
    out = Jitter(sigma=0.02, clip=0.03, generator=gen(0))(item)
    noise = out["points"] - item["points"]
    assert noise.abs().max() <= 0.03 + 1e-12 and (noise.abs() == 0.03).any()
    assert torch.equal(out["normals"], item["normals"]) and torch.equal(out["part_labels"], item["part_labels"])
    free = Jitter(sigma=0.02, clip=None, generator=gen(0))(item)["points"] - item["points"]
    assert free.std().item() == pytest.approx(0.02, rel=0.05)
    torch.testing.assert_close(noise, free.clamp(-0.03, 0.03))


def test_dropout_keeps_n_and_alignment():
    item = point_item(n=400)
    item["normals"] = item["points"] / item["points"].norm(dim=1, keepdim=True)  # a function of the point
    item["part_labels"] = torch.arange(400)
    ratios = []
    for seed in range(20):
        out = RandomPointDropout(max_ratio=0.6, generator=gen(seed))(item)
        assert [out[k].shape[0] for k in ("points", "normals", "part_labels")] == [400, 400, 400]
        index = out["part_labels"]
        torch.testing.assert_close(out["points"], item["points"][index])
        torch.testing.assert_close(out["normals"], item["normals"][index])
        kept = index == torch.arange(400)
        assert (index[~kept] == 0).all()
        ratios.append(1 - kept.double().mean().item())
    assert max(ratios) <= 0.6 + 0.1 and max(ratios) > 0.2
    out = RandomPointDropout(max_ratio=0.0, generator=gen(0))(item)
    assert torch.equal(out["points"], item["points"])


# normalisation -----------------------------------------------------------------------------------------------
def test_normalize_unit_sphere_on_points():
    item = point_item(n=100)
    out = NormalizeUnitSphere()(item)
    torch.testing.assert_close(out["points"].mean(0), torch.zeros(3, dtype=torch.float64))
    assert out["points"].norm(dim=1).max().item() == pytest.approx(1.0)
    torch.testing.assert_close(out["normals"], item["normals"])


def test_normalize_unit_sphere_on_a_mesh_centres_the_surface_centroid():
    item = mesh_item(num_faces=20)
    item["verts"] = item["verts"] * torch.tensor([1.0, 3.0, 0.5], dtype=torch.float64)  # areas that vary a lot
    out = NormalizeUnitSphere()(item)
    centroid = torch.zeros(3, dtype=torch.float64)  # naive twin: loop over faces
    total = 0.0
    for i, j, k in out["faces"].tolist():
        a, b, c = out["verts"][i], out["verts"][j], out["verts"][k]
        area = torch.linalg.cross(b - a, c - a).norm() / 2
        centroid += area * (a + b + c) / 3
        total += area
    torch.testing.assert_close(centroid / total, torch.zeros(3, dtype=torch.float64))
    assert out["verts"].norm(dim=1).max().item() == pytest.approx(1.0)
    # the samples of the normalised mesh are centred too (up to sampling noise)
    samples = SamplePoints(20000, generator=gen(0))(out)["points"]
    assert samples.mean(0).abs().max() < 0.02


def test_normalize_unit_cube_bounds():
    for item, key in ((point_item(n=80), "points"), (mesh_item(), "verts")):
        out = NormalizeUnitCube()(item)
        low, high = out[key].min(0).values, out[key].max(0).values
        torch.testing.assert_close(low + high, torch.zeros(3, dtype=torch.float64))
        assert (high - low).max().item() == pytest.approx(1.0)
        assert out[key].abs().max() <= 0.5 + 1e-12


@pytest.mark.parametrize("transform", [NormalizeUnitSphere(), NormalizeUnitCube()])
def test_normalize_edges(transform):
    empty = {"points": torch.zeros(0, 3)}
    assert transform(empty)["points"].shape == (0, 3)
    single = transform({"points": torch.tensor([[1.0, 2.0, 3.0]])})
    torch.testing.assert_close(single["points"], torch.zeros(1, 3))
    flat = transform({"verts": torch.ones(3, 3), "faces": torch.tensor([[0, 1, 2]])})
    torch.testing.assert_close(flat["verts"], torch.zeros(3, 3))


@pytest.mark.parametrize("transform", [NormalizeUnitSphere(), NormalizeUnitCube()], ids=repr)
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_normalize_rejects_non_finite_positions(transform, bad):
    # one NaN used to turn a whole coordinate of every point into NaN
    item = point_item(n=10)
    item["points"] = item["points"].clone()
    item["points"][4, 1] = bad
    with pytest.raises(ValueError, match=rf"{type(transform).__name__}: item\['points'\] must be finite, .* row 4"):
        transform(item)
    mesh = mesh_item()
    mesh["verts"] = mesh["verts"].clone()
    mesh["verts"][7, 0] = bad
    with pytest.raises(ValueError, match=r"item\['verts'\] must be finite, .* row 7"):
        transform(mesh)


def test_numpy_scalars_are_accepted_as_numbers():
    import numpy as np

    assert RandomTranslate(np.float32(0.5)).max_shift == 0.5
    assert RandomScale(np.float32(0.5), np.int64(2)).high == 2.0
    assert Jitter(sigma=np.float16(0.25)).sigma == 0.25
    with pytest.raises(TypeError, match="max_ratio must be a real number"):
        RandomPointDropout(np.bool_(True))


def test_normalize_item_with_mesh_and_points_keeps_them_together():
    mesh = mesh_item()
    item = {"verts": mesh["verts"], "faces": mesh["faces"], "points": mesh["verts"][:10] * 0.5}
    for transform in (NormalizeUnitSphere(), NormalizeUnitCube()):
        out = transform(item)
        scale = (out["verts"][1] - out["verts"][0]) / (item["verts"][1] - item["verts"][0])
        shift = out["verts"][0] - item["verts"][0] * scale
        torch.testing.assert_close(out["points"], item["points"] * scale + shift)
        assert max(out["verts"].abs().max(), out["points"].abs().max()) <= 1.0 + 1e-9


# sampling ------------------------------------------------------------------------------------------------------
def test_sample_points_matches_sample_surface_and_carries_labels():
    item = mesh_item()
    out = SamplePoints(64, generator=gen(4))(item)
    ref = sample_surface(item["verts"], item["faces"], 64, gen(4))
    assert set(out) == {"points", "normals", "part_labels", "label", "name"}
    torch.testing.assert_close(out["points"], ref.points)
    torch.testing.assert_close(out["normals"], ref.normals)
    assert torch.equal(out["part_labels"], item["face_labels"][ref.face_index])
    assert out["label"] is item["label"] and out["name"] == item["name"]


def test_sample_points_without_normals_replaces_old_points():
    item = {**mesh_item(), "points": torch.zeros(5, 3), "normals": torch.zeros(5, 3)}
    del item["face_labels"]
    out = SamplePoints(32, include_normals=False, generator=gen(0))(item)
    assert set(out) == {"points", "label", "name"} and out["points"].shape == (32, 3)


# shared behaviour ----------------------------------------------------------------------------------------------
ALL = [
    NormalizeUnitSphere(), NormalizeUnitCube(), SamplePoints(16), RandomRotation(), RandomRotation(axis="z"),
    RandomScale(anisotropic=True), RandomTranslate(0.2), Jitter(), RandomPointDropout(),
]
POINT_ONLY = (Jitter, RandomPointDropout)


@pytest.mark.parametrize("transform", ALL, ids=repr)
def test_input_is_not_mutated(transform):
    item = mesh_item() if isinstance(transform, SamplePoints) else point_item()
    before = {k: (v.clone() if torch.is_tensor(v) else v) for k, v in item.items()}
    torch.manual_seed(0)
    out = transform(item)
    assert out is not item and set(item) == set(before)
    for k, v in before.items():
        assert torch.equal(item[k], v) if torch.is_tensor(v) else item[k] == v


@pytest.mark.parametrize("transform", [t for t in ALL if not isinstance(t, (NormalizeUnitSphere, NormalizeUnitCube))],
                         ids=repr)
def test_reproducible_with_generator(transform):
    item = mesh_item() if isinstance(transform, SamplePoints) else point_item()
    kwargs = {k: getattr(transform, k) for k in transform._shown}
    run = lambda seed: type(transform)(**kwargs, generator=gen(seed))(item)  # noqa: E731
    a, b, c = run(0), run(0), run(1)
    assert all(torch.equal(a[k], b[k]) for k in a if torch.is_tensor(a[k]))
    assert not torch.equal(a["points"], c["points"])


@pytest.mark.parametrize("transform", ALL, ids=repr)
def test_global_rng_when_no_generator(transform):
    item = mesh_item() if isinstance(transform, SamplePoints) else point_item()
    torch.manual_seed(11)
    a = transform(item)
    torch.manual_seed(11)
    b = transform(item)
    assert torch.equal(a["points"], b["points"])


@pytest.mark.parametrize("transform", [t for t in ALL if not isinstance(t, SamplePoints)], ids=repr)
def test_float32_items_stay_float32(transform):
    item = point_item(dtype=torch.float32)
    out = transform(item)
    assert out["points"].dtype == torch.float32 and out["normals"].dtype == torch.float32


def test_compose_applies_in_order_and_repr():
    t = Compose([SamplePoints(8, generator=gen(0)), NormalizeUnitCube(), RandomTranslate(0.1, generator=gen(1))])
    item = mesh_item()
    ref = RandomTranslate(0.1, generator=gen(1))(NormalizeUnitCube()(SamplePoints(8, generator=gen(0))(item)))
    torch.testing.assert_close(t(item)["points"], ref["points"])
    assert repr(t) == ("Compose([\n  SamplePoints(num_points=8, include_normals=True),\n  NormalizeUnitCube(),\n"
                       "  RandomTranslate(max_shift=0.1),\n])")
    assert repr(Compose([])) == "Compose([])"


def test_reprs():
    assert repr(NormalizeUnitSphere()) == "NormalizeUnitSphere()"
    assert repr(RandomRotation("z", 1)) == "RandomRotation(axis='z', max_angle=1.0)"
    assert repr(RandomScale(anisotropic=True)) == "RandomScale(low=0.8, high=1.25, anisotropic=True)"
    assert repr(Jitter(clip=None)) == "Jitter(sigma=0.01, clip=None)"
    assert repr(RandomPointDropout(0.5)) == "RandomPointDropout(max_ratio=0.5)"
    assert repr(RandomTranslate([0.1, 0.2, 0])) == "RandomTranslate(max_shift=(0.1, 0.2, 0.0))"


@pytest.mark.parametrize("build, error, match", [
    (lambda: SamplePoints(0), ValueError, "num_points"),
    (lambda: SamplePoints(2.5), ValueError, "num_points"),
    (lambda: SamplePoints(8, include_normals="yes"), TypeError, "include_normals"),
    (lambda: SamplePoints(8, generator=0), TypeError, "generator"),
    (lambda: RandomRotation(axis="w"), ValueError, "axis"),
    (lambda: RandomRotation(max_angle=4.0), ValueError, "max_angle"),
    (lambda: RandomRotation(max_angle=-0.1), ValueError, "max_angle"),
    (lambda: RandomRotation(max_angle="pi"), TypeError, "max_angle"),
    (lambda: RandomScale(low=0.0), ValueError, "low"),
    (lambda: RandomScale(low=2.0, high=1.0), ValueError, "high"),
    (lambda: RandomScale(high=float("nan")), ValueError, "high"),
    (lambda: RandomScale(anisotropic=1), TypeError, "anisotropic"),
    (lambda: Jitter(sigma=-1.0), ValueError, "sigma"),
    (lambda: Jitter(clip=0.0), ValueError, "clip"),
    (lambda: Jitter(sigma=True), TypeError, "sigma"),
    (lambda: RandomPointDropout(1.5), ValueError, "max_ratio"),
    (lambda: RandomTranslate(-0.1), ValueError, "max_shift"),
    (lambda: RandomTranslate([0.1, 0.2]), ValueError, "max_shift"),
    (lambda: RandomTranslate([0.1, -0.2, 0.0]), ValueError, r"max_shift\[1\]"),
    (lambda: Compose(NormalizeUnitCube()), TypeError, "transforms"),
    (lambda: Compose([NormalizeUnitCube(), 3]), TypeError, r"transforms\[1\]"),
    (lambda: random_rotations(-1), ValueError, "n must"),
])
def test_bad_arguments(build, error, match):
    with pytest.raises(error, match=match):
        build()


@pytest.mark.parametrize("transform", ALL, ids=repr)
def test_item_without_geometry_is_rejected(transform):
    with pytest.raises(ValueError, match="'points'|'verts'"):
        transform({"label": torch.tensor(0), "name": "x"})
    with pytest.raises(TypeError, match="item"):
        transform([torch.zeros(3, 3)])


@pytest.mark.parametrize("transform", POINT_ONLY)
def test_point_only_transforms_reject_mesh_items(transform):
    with pytest.raises(ValueError, match="'points'.*SamplePoints"):
        transform()(mesh_item())


@pytest.mark.parametrize("item, error, match", [
    ({"points": torch.zeros(5, 2)}, ValueError, r"item\['points'\].*\(N, 3\)"),
    ({"points": torch.zeros(5, 3, dtype=torch.long)}, TypeError, r"item\['points'\].*floating"),
    ({"points": [[0.0, 0.0, 0.0]]}, TypeError, r"item\['points'\]"),
    ({"points": torch.zeros(5, 3), "normals": torch.zeros(4, 3)}, ValueError, r"item\['normals'\].*one row"),
    ({"points": torch.zeros(5, 3), "part_labels": torch.zeros(5, 1, dtype=torch.long)}, ValueError,
     r"item\['part_labels'\]"),
    ({"normals": torch.zeros(5, 3)}, ValueError, "'normals' but no 'points'"),
    ({"verts": torch.zeros(3, 3)}, ValueError, "'verts' but no 'faces'"),
    ({"verts": torch.zeros(3, 3), "faces": torch.tensor([[0, 1, 3]])}, ValueError, r"item\['faces'\].*\[0, 3\)"),
    ({"verts": torch.zeros(3, 3), "faces": torch.tensor([[0, 1, 2]]), "face_labels": torch.zeros(2, dtype=torch.long)},
     ValueError, r"item\['face_labels'\]"),
])
def test_bad_items_name_the_key(item, error, match):
    with pytest.raises(error, match=match):
        check_item(item)
    transform = SamplePoints(4) if "verts" in item or "faces" in item else RandomRotation()
    with pytest.raises(error, match=match):
        transform(item)


def test_sample_points_needs_a_mesh():
    with pytest.raises(ValueError, match="SamplePoints needs a mesh item with 'verts'"):
        SamplePoints(8)(point_item())


@pytest.mark.parametrize("transform_cls, kwargs", [
    (SamplePoints, {"num_points": 16}), (RandomRotation, {}), (RandomRotation, {"max_angle": 0.3}),
    (RandomRotation, {"axis": "x"}), (RandomScale, {"anisotropic": True}), (RandomTranslate, {"max_shift": 0.1}),
    (Jitter, {}), (RandomPointDropout, {}),
])
def test_items_on_device_stay_there(device, transform_cls, kwargs):
    item = mesh_item() if transform_cls is SamplePoints else point_item()
    item = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in item.items()}
    for generator in (torch.Generator(device=device).manual_seed(0), None):
        out = transform_cls(generator=generator, **kwargs)(item)
        assert all(v.device == item["label"].device for v in out.values() if torch.is_tensor(v))
    for transform in (NormalizeUnitSphere(), NormalizeUnitCube()):
        cpu = {k: (v.cpu() if torch.is_tensor(v) else v) for k, v in item.items()}
        key = "verts" if "verts" in item else "points"
        torch.testing.assert_close(transform(item)[key].cpu(), transform(cpu)[key])
