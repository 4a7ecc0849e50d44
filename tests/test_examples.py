"""The README's first command and the benchmark run end to end (in quick mode)."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(script, *args, cwd):
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, script), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_quickstart_runs(tmp_path):
    result = run("examples/quickstart.py", "--quick", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "144 images, class 0: 120, class 1: 24" in result.stdout
    for name in ("cross-entropy", "focal, gamma=2, alpha=balanced", "over-sampling"):
        assert name in result.stdout
    assert "Best by mean F1" in result.stdout
    assert (tmp_path / "demo_data" / "1").is_dir()


@pytest.mark.slow
def test_epoch_benchmark_runs(tmp_path):
    result = run("benchmarks/epoch_throughput.py", "--quick", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "ours/plain" in result.stdout
