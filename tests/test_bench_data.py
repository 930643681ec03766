"""The data benchmark runs end to end on its quick settings (it times nothing that is checked here)."""
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_data.py"


def test_bench_data_quick_writes_both_tables(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--out-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert {p.name for p in tmp_path.iterdir()} == {"data.md", "data.json", "procedural_bbox.md",
                                                    "procedural_bbox.json"}
    data = (tmp_path / "data.md").read_text()
    for row in ("| shape generation (program.sample, all categories) |",
                "| surface sampling (sample_surface, 256 points/shape) |",
                "| end-to-end 48 shapes, cold cache: total |", "| end-to-end 48 shapes, warm cache: total |",
                "| cache build (48 shapes, all splits) |", "| cache build resumed (complete cache) |",
                "| loader: ProceduralShapes points (sampled on the fly), num_workers=0 |",
                "| loader: CachedDataset (built cache), num_workers=2 |", "| generation: chair |"):
        assert row in data, row
    bbox = (tmp_path / "procedural_bbox.md").read_text()
    for row in ("| best test accuracy: ", "| k-NN k=1", "| MLP 3-64-64-12 |", "| chance (1/12) |",
                "| recall: chair |"):
        assert row in bbox, row
    assert "bbox baseline: best test accuracy" in done.stdout
