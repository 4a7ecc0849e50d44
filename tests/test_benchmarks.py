"""The benchmarks run end to end in quick mode (slow: not in the default run)."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_benchmark(script, *args, cwd):
    env = {**os.environ, "PYTHONPATH": ROOT}  # this checkout's package, whatever is installed
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_grid_search_benchmark_runs(tmp_path):
    result = run_benchmark("grid_search.py", "--quick", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "freeze_backbone=True, cache='memory'" in result.stdout
    assert "speed-up" in result.stdout
