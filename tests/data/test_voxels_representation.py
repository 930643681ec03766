"""The voxel representation of the datasets and the Voxelize transform."""
import pytest
import torch

from geo4g.data import ProceduralShapes, Voxelize, collate_geometry
from geo4g.parametric.primitives import box_mesh
from geo4g.voxels import voxelize_mesh


def _box_item():
    verts, faces = box_mesh((0.6, 0.3, 0.3))
    return {"verts": verts, "faces": faces, "face_labels": torch.zeros(faces.shape[0], dtype=torch.long),
            "label": torch.tensor(2), "name": "box"}


def test_voxelize_fills_a_box_over_its_bounding_cube_and_keeps_metadata():
    out = Voxelize(8)(_box_item())
    assert set(out) == {"voxels", "label", "name"}
    grid = out["voxels"]
    assert grid.shape == (8, 8, 8) and grid.dtype == torch.bool
    # the box spans the whole cube along x and the middle half along y and z (plus the voxels its faces touch)
    assert grid[:, 2:6, 2:6].all()
    assert not grid[:, 0, :].any() and not grid[:, :, 7].any()


def test_voxelize_surface_mode_leaves_the_inside_empty():
    item = _box_item()
    solid = Voxelize(16, mode="solid")(item)["voxels"]
    surface = Voxelize(16, mode="surface")(item)["voxels"]
    assert (surface <= solid).all() and surface.sum() < solid.sum()
    assert not surface[8, 8, 8] and solid[8, 8, 8]


def test_voxelize_points_marks_the_voxels_holding_points():
    points = torch.tensor([[0.0, 0, 0], [1, 1, 1], [0.99, 0.0, 0.0]])
    grid = Voxelize(4)({"points": points, "normals": torch.zeros(3, 3), "label": torch.tensor(0)})["voxels"]
    assert int(grid.sum()) == 3 and grid[0, 0, 0] and grid[3, 3, 3] and grid[3, 0, 0]


def test_voxelize_rejects_bad_arguments_and_items():
    with pytest.raises(ValueError, match="resolution"):
        Voxelize(0)
    with pytest.raises(ValueError, match="mode"):
        Voxelize(8, mode="volume")
    with pytest.raises(ValueError, match="fill_rule"):
        Voxelize(8, fill_rule="even")
    with pytest.raises(ValueError, match="neither"):
        Voxelize(8)({"label": torch.tensor(0)})
    assert "resolution=8" in repr(Voxelize(8))


def test_procedural_voxels_match_voxelizing_the_mesh_items_and_collate(tmp_path):
    meshes = ProceduralShapes(tmp_path, categories=["mug", "table"], shapes_per_category=10, progress=False, workers=0)
    voxels = ProceduralShapes(tmp_path, categories=["mug", "table"], shapes_per_category=10, progress=False, workers=0,
                              representation="voxels", voxel_resolution=16)
    item = voxels[0]
    mesh_item = meshes[0]
    expected = voxelize_mesh(mesh_item["verts"], mesh_item["faces"], 16, mode="solid", fill_rule="winding")
    assert torch.equal(item["voxels"], expected)
    assert item["label"] == mesh_item["label"] and item["name"] == mesh_item["name"]
    assert 0.05 < item["voxels"].float().mean() < 0.9
    batch = collate_geometry([voxels[0], voxels[1]], "padded")
    assert batch["voxels"].shape == (2, 16, 16, 16)


def test_dataset_rejects_a_bad_voxel_resolution(tmp_path):
    with pytest.raises(ValueError, match="voxel_resolution"):
        ProceduralShapes(tmp_path, categories=["mug"], shapes_per_category=2, progress=False, workers=0,
                         representation="voxels", voxel_resolution=0)
