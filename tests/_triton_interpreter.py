"""Run a script with Triton's CPU interpreter: ``TRITON_INTERPRET=1`` must be set before triton
is imported, so the kernel tests run their checks in a fresh interpreter process."""
import importlib.util
import os
import subprocess
import sys

HAS_TRITON = importlib.util.find_spec("triton") is not None
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_interpreted(script: str) -> subprocess.CompletedProcess:
    """Run ``script`` with ``TRITON_INTERPRET=1`` and the repository on the path."""
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
