"""The model benchmark runs end to end on its quick settings (2 categories, 1 epoch; nothing timed is checked)."""
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_models.py"


def test_bench_models_quick_writes_every_row(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--out-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    names = {p.name for p in tmp_path.iterdir()}
    assert {"models.md", "models.json"} <= names
    for model in ("pointnet", "pointnet2", "dgcnn", "mcconv"):
        assert f"models_{model}_procedural.png" in names, names
    table = (tmp_path / "models.md").read_text()
    for row in ("| pointnet | pointnet |", "| pointnet2 | pointnet2 |", "| dgcnn | dgcnn |", "| mcconv | mcconv |",
                "| pointnet-seg | pointnet-seg |", "| autoencoder | PointAutoEncoder |",
                "| autoencoder baseline: same shape, two samplings |",
                "| autoencoder baseline: different test shapes |"):
        assert row in table, row
    assert "modelnet10" not in table.split("|---|")[-1]  # --quick skips ModelNet
    rows = {r["row"]: r for r in json.loads((tmp_path / "models.json").read_text())["rows"]}
    for key in ("pointnet", "pointnet2", "dgcnn", "mcconv"):
        assert 0.0 <= rows[key]["value"] <= 1.0 and rows[key]["train seconds"] > 0
    assert 0.0 <= rows["pointnet-seg"]["value"] <= 1.0
    floor = rows["autoencoder baseline: same shape, two samplings"]["value"]
    assert 0.0 < floor < rows["autoencoder baseline: different test shapes"]["value"]
