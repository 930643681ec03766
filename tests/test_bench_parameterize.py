"""The parameterisation benchmark runs end to end on its quick settings (it times nothing that is checked here)."""
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_parameterize.py"


def test_bench_parameterize_quick_writes_its_table(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--out-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert {p.name for p in tmp_path.iterdir()} == {"parameterize.md", "parameterize.json"}
    rows = json.loads((tmp_path / "parameterize.json").read_text())["rows"]
    methods = {row["method"] for row in rows}
    assert {"Tutte uniform", "Tutte mean_value", "Tutte cot", "LSCM", "flat torus cot",
            "torus image 256x256 (3 channels)"} <= methods
    assert all(row["flips"] == 0 for row in rows if "flips" in row)
    assert "| hemisphere |" in (tmp_path / "parameterize.md").read_text()
