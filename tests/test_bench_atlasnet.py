"""The AtlasNet benchmark runs end to end on its quick settings (2 categories, 1 epoch; nothing timed is checked)."""
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_atlasnet.py"


def test_bench_atlasnet_quick_writes_every_row(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--out-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert {"atlasnet.md", "atlasnet.json"} <= {p.name for p in tmp_path.iterdir()}
    rows = json.loads((tmp_path / "atlasnet.json").read_text())["rows"]
    keys = {(r["model"], r["input"], r["output scored"]) for r in rows}
    for k in ("1 square patch", "5 square patches", "25 square patches", "1 sphere"):
        for scored in ("decoded points", "mesh surface samples"):
            assert (f"AtlasNet, {k}", "points", scored) in keys
    assert ("point-set decoder", "points", "decoded points") in keys
    assert ("point-set decoder", "depth image 32x32", "decoded points") in keys
    assert ("AtlasNet, 5 square patches", "depth image 32x32", "mesh surface samples") in keys
    for r in rows:
        assert r["test Chamfer"] > 0 and 0 <= r["F@1%"] <= r["F@2%"] <= 1, r
    floor = [r for r in rows if r["model"].startswith("reference: same surface")]
    other = [r for r in rows if r["model"] == "reference: a different test shape"][0]
    assert all(0 < r["test Chamfer"] < other["test Chamfer"] for r in floor)
    assert "| AtlasNet, 25 square patches | points | mesh surface samples |" in (tmp_path / "atlasnet.md").read_text()
