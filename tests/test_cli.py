import subprocess
import sys

import numpy as np
import pytest
import torch

from geo4g.cli import main
from geo4g.demo import run_demo
from geo4g.io import load_mesh, load_pointcloud, save_mesh, save_pointcloud
from geo4g.parametric import icosphere, torus_mesh


@pytest.fixture
def torus_obj(tmp_path):
    verts, faces = torus_mesh(1.0, 0.3, 24, 12)
    path = tmp_path / "torus.obj"
    save_mesh(path, verts, faces)
    return path, verts, faces


def test_help_lists_the_commands_as_a_console_module():
    out = subprocess.run([sys.executable, "-m", "geo4g.cli", "--help"], capture_output=True, text=True, check=True)
    for command in ("info", "convert", "cache", "data", "train", "eval", "demo"):
        assert command in out.stdout


def test_info_reports_versions_extras_and_devices(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"torch            {torch.__version__}" in out
    assert "pytorch3d" in out and "devices:" in out and "cpu" in out


@pytest.mark.parametrize("ext", ["off", "ply", "stl", "obj"])
def test_convert_mesh_to_mesh_keeps_the_geometry(tmp_path, torus_obj, ext, capsys):
    source, verts, faces = torus_obj
    target = tmp_path / f"out.{ext}"
    assert main(["convert", str(source), str(target)]) == 0
    assert f"{verts.shape[0]} vertices, {faces.shape[0]} faces" in capsys.readouterr().out
    back = load_mesh(target)
    # STL stores triangle soups: compare the triangles' corner positions, not the indexing.
    torch.testing.assert_close(back.verts[back.faces], verts[faces])


def test_convert_mesh_to_points_samples_the_surface_with_normals(tmp_path):
    verts, faces = icosphere(3, radius=2.0)
    source, target = tmp_path / "sphere.off", tmp_path / "sphere.xyz"
    save_mesh(source, verts, faces)
    assert main(["convert", str(source), str(target), "--points", "500", "--seed", "3"]) == 0
    cloud = load_pointcloud(target)
    assert cloud.points.shape == (500, 3) and cloud.normals.shape == (500, 3)
    radii = cloud.points.norm(dim=1)
    assert float(radii.max()) <= 2.0 + 1e-5 and float(radii.min()) > 1.95
    # Outward normals on a sphere point along the position.
    assert float((torch.nn.functional.normalize(cloud.points, dim=1) * cloud.normals).sum(1).min()) > 0.99
    again = tmp_path / "again.xyz"
    main(["convert", str(source), str(again), "--points", "500", "--seed", "3"])
    assert again.read_bytes() == target.read_bytes()


def test_convert_point_cloud_between_formats_keeps_normals(tmp_path):
    g = torch.Generator().manual_seed(0)
    points, normals = torch.randn(50, 3, generator=g), torch.nn.functional.normalize(torch.randn(50, 3, generator=g))
    source = tmp_path / "cloud.ply"
    save_pointcloud(source, points, normals=normals)
    for ext in ("xyz", "npz", "npy", "pts"):
        target = tmp_path / f"cloud.{ext}"
        assert main(["convert", str(source), str(target)]) == 0
        cloud = load_pointcloud(target)
        torch.testing.assert_close(cloud.points, points)
        if ext != "pts":
            torch.testing.assert_close(cloud.normals, normals)


@pytest.mark.parametrize("args, message", [
    (["missing.obj", "out.ply"], "not found"),
    (["{mesh}", "out.xyz"], "add --points N"),
    (["{mesh}", "out.off", "--points", "10"], "--points makes a point cloud"),
    (["{mesh}", "out.abc"], "unknown format '.abc'"),
    (["{mesh}", "out.xyz", "--points", "0"], "--points must be a positive"),
    (["{cloud}", "out.obj"], "holds meshes only"),
    (["{cloud}", "out.xyz", "--points", "5"], "holds a point cloud"),
])
def test_convert_bad_requests_exit_2_with_a_message(tmp_path, torus_obj, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    cloud = tmp_path / "cloud.ply"
    save_pointcloud(cloud, np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32))
    args = [a.format(mesh=torus_obj[0], cloud=cloud) for a in args]
    assert main(["convert", *args]) == 2
    assert message in capsys.readouterr().err
    assert not any(p.name.startswith("out") for p in tmp_path.iterdir())


def test_convert_malformed_file_names_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.off"
    bad.write_text("OFF\n3 1 0\n0 0 0\n1 0 x\n0 1 0\n3 0 1 2\n")
    assert main(["convert", str(bad), str(tmp_path / "out.ply")]) == 2
    err = capsys.readouterr().err
    assert "bad.off" in err and ":4" in err


def test_demo_runs_every_step_and_reports_accuracy_and_checkpoints(capsys, tmp_path):
    assert run_demo(epochs=2, per_class=10, num_points=64, width=0.25, root=tmp_path / "gen",
                    out=tmp_path / "run") == 0
    out = capsys.readouterr().out
    for step in ("1. meshes", "2. sampling", "3. io", "4. data", "5. training", "test accuracy"):
        assert step in out
    accuracy = float(out.split("test accuracy ")[1].split()[0])
    assert 0.0 <= accuracy <= 1.0
    assert {p.name for p in (tmp_path / "run").iterdir()} >= {"best.pt", "last.pt", "confusion.png", "metrics.json"}


def test_demo_rejects_zero_epochs(capsys):
    assert main(["demo", "--epochs", "0"]) == 2
    assert "epochs must be at least 1" in capsys.readouterr().err


def test_cache_build_writes_every_split_and_resumes(tmp_path, capsys):
    args = ["cache", "build", "--dataset", "procedural", "--root", str(tmp_path / "gen"), "--out", str(tmp_path / "c"),
            "--points", "64", "--categories", "mug,car", "--shapes-per-category", "10", "--chunk-size", "4",
            "--quiet"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "done: 3 splits, 0 unreadable items skipped" in out and "cache complete" in out
    from geo4g.data.cache import CachedDataset

    sizes = {s: len(CachedDataset(tmp_path / "c" / s)) for s in ("train", "val", "test")}
    assert sizes == {"train": 14, "val": 2, "test": 4}
    assert CachedDataset(tmp_path / "c" / "test")[0]["points"].shape == (64, 3)
    assert main(args) == 0
    assert "built 0, reused 4" in capsys.readouterr().out
    assert main(args[:-3] + ["--chunk-size", "5", "--quiet"]) == 2
    assert "other settings" in capsys.readouterr().err


def test_cache_build_shards_across_workers(tmp_path, capsys):
    base = ["cache", "build", "--dataset", "procedural", "--root", str(tmp_path / "gen"), "--out", str(tmp_path / "c"),
            "--points", "32", "--categories", "lamp", "--shapes-per-category", "20", "--chunk-size", "3",
            "--split", "train", "--num-shards", "2", "--quiet"]
    assert main(base + ["--shard", "0"]) == 0
    assert "still missing" in capsys.readouterr().out
    assert main(base + ["--shard", "1"]) == 0
    assert "cache complete" in capsys.readouterr().out
    assert not (tmp_path / "c" / "val").exists()


def test_cache_build_reports_missing_dataset_folder(tmp_path, capsys):
    assert main(["cache", "build", "--dataset", "modelnet", "--root", str(tmp_path / "none"), "--out",
                 str(tmp_path / "c"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "geo4g cache: error:" in err and "ModelNet" in err


def test_data_export_writes_shapenet_layout(tmp_path, capsys):
    assert main(["data", "export", "--out", str(tmp_path / "x"), "--categories", "guitar", "--shapes-per-category",
                 "2", "--root", str(tmp_path / "gen"), "--quiet"]) == 0
    assert "exported 2 procedural shapes" in capsys.readouterr().out
    assert (tmp_path / "x" / "03467517" / "procedural-guitar-00001" / "models" / "model_normalized.obj").is_file()
    assert main(["data", "export", "--out", str(tmp_path / "y"), "--categories", "unicorn", "--quiet"]) == 2
    assert "unknown categories" in capsys.readouterr().err


def test_train_and_eval_commands(tmp_path, capsys):
    args = ["train", "pointnet", "--root", str(tmp_path / "gen"), "--out", str(tmp_path / "run"), "--epochs", "1",
            "--points", "32", "--shapes-per-category", "10", "--width", "0.25", "--categories", "mug,car",
            "--batch-size", "4", "--quiet"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "test_accuracy" in out and "confusion_png" in out
    assert main(args[:7] + ["2", "--resume"] + args[8:]) == 0
    assert "epochs                       2" in capsys.readouterr().out
    assert main(["eval", str(tmp_path / "run" / "last.pt"), "--quiet"]) == 0
    assert "test_accuracy" in capsys.readouterr().out
    assert main(["eval", str(tmp_path / "nothing.pt")]) == 2
    assert "not found" in capsys.readouterr().err
