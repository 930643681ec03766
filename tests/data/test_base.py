import pytest
import torch

from geo4g.data import GeometryDataset, item_generator, mesh_item_to_points, resample_points
from geo4g.parametric import box_mesh


class Boxes(GeometryDataset):
    """Two boxes with per-face labels, or (points=True) two small point items."""

    def __init__(self, points=False, **kwargs):
        super().__init__(**kwargs)
        self.points = points

    def __len__(self):
        return 2

    def source(self, index):
        return f"box{index}"

    def load_raw(self, index):
        if self.points:
            pts = torch.arange(15, dtype=torch.float32).view(5, 3) + index
            return {"points": pts, "normals": pts / pts.norm(dim=1, keepdim=True),
                    "part_labels": torch.arange(5), "name": f"p{index}"}
        verts, faces = box_mesh((1.0, 2.0 + index, 3.0))
        return {"verts": verts, "faces": faces, "face_labels": torch.arange(12) // 2, "name": f"box{index}",
                "label": torch.tensor(index)}


def test_item_generator_depends_on_seed_and_name_only():
    draw = lambda g: torch.rand(4, generator=g)  # noqa: E731
    assert torch.equal(draw(item_generator(0, "a/1")), draw(item_generator(0, "a/1")))
    assert not torch.equal(draw(item_generator(0, "a/1")), draw(item_generator(0, "a/2")))
    assert not torch.equal(draw(item_generator(0, "a/1")), draw(item_generator(1, "a/1")))


def test_mesh_item_to_points_carries_face_labels_and_metadata():
    raw = Boxes().load_raw(0)
    item = mesh_item_to_points(raw, 500, torch.Generator().manual_seed(0))
    assert set(item) == {"points", "normals", "part_labels", "name", "label"}
    # A box face's label is its axis pair: every point must lie on the face plane its label names.
    half = torch.tensor([0.5, 1.0, 1.5])
    axis = item["part_labels"] // 2
    side = torch.where(item["part_labels"] % 2 == 0, -1.0, 1.0)
    assert torch.allclose(item["points"].gather(1, axis[:, None]).squeeze(1), side * half[axis], atol=1e-6)
    assert torch.allclose(item["normals"].gather(1, axis[:, None]).squeeze(1), side)
    assert "faces" in raw  # the input is not modified


@pytest.mark.parametrize("n", [3, 5, 12])
def test_resample_points_keeps_fields_aligned(n):
    raw = Boxes(points=True).load_raw(1)
    item = resample_points(raw, n, torch.Generator().manual_seed(0))
    assert item["points"].shape == (n, 3) and item["name"] == "p1"
    original = raw["points"][item["part_labels"]]
    assert torch.equal(item["points"], original) and torch.equal(item["normals"], raw["normals"][item["part_labels"]])
    if n <= 5:
        assert item["part_labels"].unique().numel() == n  # without replacement
    else:
        assert item["part_labels"].unique().numel() == 5  # every point kept, then repeats


def test_resample_empty_item_names_it():
    with pytest.raises(ValueError, match="'e' has no points"):
        resample_points({"points": torch.zeros(0, 3), "name": "e"}, 4)


def test_dataset_representations():
    mesh = Boxes()[1]
    assert mesh["verts"].shape == (8, 3)
    pts = Boxes(representation="points", num_points=64)[1]
    assert pts["points"].shape == (64, 3) and torch.equal(pts["points"],
                                                          Boxes(representation="points", num_points=64)[1]["points"])
    kept = Boxes(points=True, representation="points", num_points=None)[0]
    assert torch.equal(kept["points"], Boxes(points=True).load_raw(0)["points"])
    assert Boxes(points=True, representation="points", num_points=2)[0]["points"].shape == (2, 3)
    assert Boxes(transform=lambda item: {**item, "seen": True})[0]["seen"]


def test_dataset_errors():
    with pytest.raises(ValueError, match="needs num_points"):
        Boxes(representation="points", num_points=None)[0]
    with pytest.raises(IndexError, match="out of range for Boxes of 2 items"):
        Boxes()[2]
    assert Boxes()[-1]["name"] == "box1"
    with pytest.raises(ValueError, match="representation must be one of"):
        Boxes(representation="octree")
    with pytest.raises(ValueError, match="num_points"):
        Boxes(num_points=True)
