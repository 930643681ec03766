"""The runnable examples run, end to end, on small settings."""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import torch

from geo4g.io import load_pointcloud, save_mesh
from geo4g.parametric import icosphere

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(relative: str):
    spec = importlib.util.spec_from_file_location(Path(relative).stem, EXAMPLES / relative)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sample_surface_writes_a_unit_sphere_cloud_with_normals(tmp_path, capsys):
    mesh = tmp_path / "ball.off"
    save_mesh(mesh, *icosphere(2, radius=3.0))
    out = tmp_path / "cloud.ply"
    unit = load_example("meshes/sample_surface.py").main([str(mesh), "--points", "300", "--out", str(out)])
    assert "mesh: 162 vertices, 320 faces, 480 edges" in capsys.readouterr().out
    cloud = load_pointcloud(out)
    assert cloud.points.shape == (300, 3) and cloud.normals.shape == (300, 3)
    assert abs(float(cloud.points.norm(dim=1).max()) - 1.0) < 1e-5
    torch.testing.assert_close(cloud.points, unit.points_list()[0])


def test_train_ddp_runs_under_torchrun_and_resumes(tmp_path):
    script = EXAMPLES / "nn" / "train_ddp.py"
    base = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
            "--per-class", "10", "--points", "32", "--checkpoints", str(tmp_path / "ckpt"), "--data", str(tmp_path / "data")]
    # gloo on the CPU, whatever GPUs the machine has: two ranks may not share one GPU under nccl.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    first = subprocess.run(base + ["--epochs", "2"], capture_output=True, text=True, env=env, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "after 2 epochs" in first.stdout
    assert {p.name for p in (tmp_path / "ckpt").iterdir()} == {"last.pt", "best.pt"}
    state = torch.load(tmp_path / "ckpt" / "last.pt", weights_only=True)
    assert state["epoch"] == 2
    second = subprocess.run(base + ["--epochs", "3", "--resume"], capture_output=True, text=True, env=env, timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "after 3 epochs" in second.stdout
    assert "epoch=1 " not in second.stdout, "a resumed run must not train the finished epochs again"
