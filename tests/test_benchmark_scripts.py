"""The benchmarks run end to end (quick settings; slow-marked, not in the default run)."""

import os
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METHODS = (
    "ce",
    "focal",
    "cb_focal",
    "ldam+drw",
    "logit_adjusted",
    "balanced_softmax",
    "oversampling",
    "balanced_batches",
    "threshold auto",
)


def run(script, *args, cwd):
    env = {**os.environ, "PYTHONPATH": ROOT}  # this checkout's package, not an installed one
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_quality_benchmark_quick(tmp_path):
    result = run("benchmarks/quality.py", "--quick", "--out-dir", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    markdown = (tmp_path / "quality.md").read_text()
    for method in METHODS:
        assert f"| {method} | " in markdown
    assert "python benchmarks/quality.py --quick" in markdown
    assert (tmp_path / "quality.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_loss_speed_benchmark(tmp_path):
    result = run("benchmarks/loss_speed.py", "--rounds", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for shape in ("(65536, 2)", "(65536, 10)", "(8192, 1000)"):
        assert shape in result.stdout
    assert "worst focal / CE ratio" in result.stdout


@pytest.mark.slow
def test_grid_search_benchmark_quick(tmp_path):
    result = run("benchmarks/grid_search.py", "--quick", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "freeze_backbone=True, cache='memory'" in result.stdout
    assert "speed-up" in result.stdout


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU-only behaviour of the script")
def test_gpu_check_without_cuda_says_no_cuda_check_ran(tmp_path):
    refused = run("benchmarks/gpu_check.py", cwd=tmp_path)
    assert refused.returncode == 2
    assert "the CUDA checks did not run" in refused.stdout
    result = run("benchmarks/gpu_check.py", "--cpu-dry-run", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 of 1 checks passed (CPU dry run: no CUDA check ran)" in result.stdout
    assert "CUDA fp32 fits agree" not in result.stdout
    assert "resnet34 training at 32 px on CPU" in result.stdout


@pytest.mark.slow
def test_cpu_precision_benchmark_quick(tmp_path):
    result = run("benchmarks/cpu_precision.py", "--quick", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "bf16 channels-last" in result.stdout
    assert "fit time fp32 / auto:" in result.stdout


@pytest.mark.slow
def test_answer_quality_benchmark_quick(tmp_path):
    result = run("benchmarks/answer_quality.py", "--quick", "--splits", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for row in ("| compare (saved model) |", "| seed: focal g=2, inverse-frequency alpha |"):
        assert row in result.stdout
    assert "| best seed recipe (per set) |" in result.stdout and "Picks" in result.stdout
    assert "Acceptance (compare >= best seed recipe - 0.03 on every set):" in result.stdout


@pytest.mark.slow
def test_frozen_screen_speed_benchmark_quick(tmp_path):
    result = run("benchmarks/frozen_screen_speed.py", "--quick", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = {}
    for line in result.stdout.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 4:
            rows[cells[0]] = cells[1:]
    assert {"decode", "forward", "heads", "report", "total", "L-BFGS solves"} <= set(rows)
    compare_solves, *bare_solves = (int(n) for n in rows["L-BFGS solves"])
    # the bare loop, before and after compare: one head per configuration and fold
    assert bare_solves == [2 * 22, 2 * 22]  # 2 folds with --quick
    # compare's head fits solve a path of 11 penalties (and the folds of its inner CV)
    assert compare_solves > 11 * bare_solves[0]
    assert "compare / bare loop: " in result.stdout
