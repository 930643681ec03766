"""The EMD benchmark runs end to end on its quick settings (nothing timed is checked)."""
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_emd.py"


def test_bench_emd_quick_writes_its_tables_with_certified_errors(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--out-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert {"emd.md", "emd.json"} <= {p.name for p in tmp_path.iterdir()}
    table = (tmp_path / "emd.md").read_text()
    assert "scipy linear_sum_assignment (exact)" in table and "geo4g approx" in table
    rows = json.loads((tmp_path / "emd.json").read_text())
    rows = rows["rows"] if isinstance(rows, dict) else rows
    approx = [r for r in rows if "approx" in str(r.get("method", ""))]
    assert approx and all(0.0 <= float(r["error_pct"]) <= 1.0 for r in approx)
