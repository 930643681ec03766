import json

import pytest
import torch

from geo4g.training import MODELS, build_model, confusion_matrix, evaluate, part_miou, save_confusion_png, train


def test_confusion_matrix_counts_rows_as_truth():
    m = confusion_matrix(torch.tensor([0, 1, 1, 2, 2]), torch.tensor([0, 0, 1, 2, 1]), 3)
    assert m.tolist() == [[1, 1, 0], [0, 1, 1], [0, 0, 1]]


def test_part_miou_matches_a_hand_computation():
    ranges = [(0, 2), (2, 5)]
    logits = torch.full((2, 4, 5), -5.0)
    # shape 0 (category 0): predicted parts 0 0 1 1, truth 0 1 1 -1 (last point is padding)
    for n, p in enumerate([0, 0, 1, 1]):
        logits[0, n, p] = 5.0
    # shape 1 (category 1): predicts part 0 (another category's part) everywhere; only parts 2-4 compete
    logits[1, :, 0] = 9.0
    logits[1, :, 3] = 1.0
    parts = torch.tensor([[0, 1, 1, -1], [2, 3, 3, 4]])
    miou = part_miou(logits, parts, torch.tensor([0, 1]), ranges)
    shape0 = (1 / 2 + 1 / 2) / 2          # part 0: inter 1 / union 2; part 1: 1 / 2
    shape1 = (0 + 2 / 4 + 0) / 3          # predicts 3 everywhere: part 2 IoU 0, part 3 2/4, part 4 0
    assert float(miou) == pytest.approx((shape0 + shape1) / 2)


def test_part_absent_from_prediction_and_truth_counts_as_one():
    logits = torch.zeros(1, 3, 3)
    logits[0, :, 0] = 1.0
    assert float(part_miou(logits, torch.tensor([[0, 0, 0]]), torch.tensor([0]), [(0, 3)])) == pytest.approx(1.0)


def test_confusion_png_is_written(tmp_path):
    save_confusion_png(torch.tensor([[3, 1], [0, 4]]), ["a", "b"], tmp_path / "c.png", title="t")
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unknown_model_and_bad_settings(tmp_path):
    with pytest.raises(ValueError, match="unknown model"):
        build_model("pointnet3", 4)
    with pytest.raises(ValueError, match="unknown model"):
        train("resnet", out=tmp_path)
    with pytest.raises(ValueError, match="epochs must be a positive int"):
        train("pointnet", out=tmp_path, epochs=0)
    with pytest.raises(ValueError, match="data must be 'procedural'"):
        train("pointnet-seg", data="modelnet", out=tmp_path)
    with pytest.raises(FileNotFoundError, match="cannot resume"):
        train("pointnet", out=tmp_path / "fresh", resume=True)
    with pytest.raises(FileNotFoundError, match="not found"):
        evaluate(tmp_path / "missing.pt")


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory):
    return tmp_path_factory.mktemp("shapes")


@pytest.mark.parametrize("model", MODELS)
def test_every_model_trains_one_epoch_then_resumes_and_evaluates(tmp_path, shapes_root, model):
    common = dict(data="procedural", root=shapes_root, out=tmp_path / "run", batch_size=8, num_points=64,
                  shapes_per_category=10, width=0.25, categories=["mug", "table", "car"], progress=False)
    first = train(model, epochs=1, **common)
    assert first["epochs"] == 1 and first["test_items"] == 6
    key = "test_miou" if model.endswith("-seg") else "test_accuracy"
    assert 0.0 <= first[key] <= 1.0
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["model"] == model and saved["num_points"] == 64
    second = train(model, epochs=2, resume=True, **common)
    assert second["epochs"] == 2
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    assert state["epoch"] == 2 and len(state["history"]) == 2
    again = evaluate(tmp_path / "run" / "last.pt", progress=False)
    assert again[key] == pytest.approx(second[key])
    if not model.endswith("-seg"):
        assert (tmp_path / "run" / "confusion.png").is_file()
    with pytest.raises(ValueError, match="settings differ"):
        train(model, epochs=3, resume=True, **{**common, "num_points": 32})


def test_model_options_reach_the_constructor_and_the_saved_run(tmp_path, shapes_root):
    model = build_model("pointnet2", 3, width=0.25, npoints=(16, 8))
    assert model(torch.rand(2, 40, 3)).shape == (2, 3)
    common = dict(root=shapes_root, out=tmp_path / "run", batch_size=8, num_points=32, shapes_per_category=10,
                  width=0.25, categories=["mug", "table", "car"], progress=False)
    train("pointnet2", epochs=1, model_options={"npoints": [16, 8]}, **common)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["model_options"] == {"npoints": [16, 8]}
    assert "accuracy" in json.dumps(evaluate(tmp_path / "run" / "last.pt", progress=False))


def test_voxel_models_train_on_grids_of_the_asked_resolution(tmp_path, shapes_root):
    common = dict(root=shapes_root, out=tmp_path / "run", batch_size=8, shapes_per_category=10, width=0.25,
                  categories=["mug", "table", "car"], progress=False)
    metrics = train("voxnet", epochs=1, voxel_resolution=16, **common)
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["voxel_resolution"] == 16
    with pytest.raises(ValueError, match="voxel_resolution must be a positive int"):
        train("voxnet", epochs=1, voxel_resolution=0, **common)
    with pytest.raises(ValueError, match="settings differ"):
        train("voxnet", epochs=2, resume=True, voxel_resolution=24, **common)
