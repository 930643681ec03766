"""A small in-process benchmark harness: median of repeated runs, peak memory, tables.

Each benchmark script times geo4g side by side with the peers that are
installed, in one process, and writes a Markdown table and a JSON file to
``benchmarks/results/``. Ratios are ``peer time / geo4g time`` (above 1: geo4g
is faster).
"""
from __future__ import annotations

import gc
import json
import platform
import statistics
import time
import tracemalloc
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def time_call(fn: Callable[[], object], repeat: int = 5, warmup: int = 1, min_seconds: float = 0.0) -> Dict[str, float]:
    """Run ``fn`` ``warmup`` times, then at least ``repeat`` times (and ``min_seconds``);
    return median / min / max wall seconds."""
    for _ in range(warmup):
        fn()
    times: List[float] = []
    start = time.perf_counter()
    while len(times) < repeat or time.perf_counter() - start < min_seconds:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return {"median": statistics.median(times), "min": min(times), "max": max(times), "runs": len(times)}


def peak_python_memory(fn: Callable[[], object]) -> int:
    """Peak bytes allocated through Python's allocator (numpy arrays included) during ``fn``.

    Torch CPU tensors are not traced by ``tracemalloc``; benchmarks of torch ops
    report ``torch.cuda.max_memory_allocated`` on GPU instead.
    """
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def machine() -> str:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, {gpu}, torch {torch.__version__}"


def write_results(name: str, title: str, rows: List[Dict[str, object]], columns: List[str],
                  command: str, notes: Optional[str] = None) -> Path:
    """Write ``results/<name>.md`` (a table) and ``results/<name>.json`` (the raw rows)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    lines = [f"# {title}", "", f"Command: `{command}`  ", f"Machine: {machine()}", ""]
    if notes:
        lines += [notes, ""]
    lines.append("| " + " | ".join(columns) + " |")
    lines.append("|" + "---|" * len(columns))
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(c, "")) for c in columns) + " |")
    md = RESULTS / f"{name}.md"
    md.write_text("\n".join(lines) + "\n")
    (RESULTS / f"{name}.json").write_text(json.dumps({"machine": machine(), "command": command, "rows": rows}, indent=1))
    return md


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)
