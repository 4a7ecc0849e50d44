"""The examples and the benchmark run end to end (in quick mode)."""

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
        # this checkout's package; one thread: tiny networks, and immune to a busy machine
        env=dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1"),
    )


def test_quickstart_runs(tmp_path):
    result = run("examples/quickstart.py", "--quick", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "144 images, class 0: 120, class 1: 24" in result.stdout
    for name in ("cross-entropy", "focal, gamma=2, alpha=balanced", "over-sampling"):
        assert name in result.stdout
    assert "Best by mean F1" in result.stdout
    assert (tmp_path / "demo_data" / "1").is_dir()


def test_grid_search_example_runs(tmp_path):
    result = run("examples/grid_search.py", "--quick", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line[:5].strip() in ("0.0", "2.0")]
    assert len(rows) == 4  # gamma {0, 2} x alpha {None, balanced}
    assert "best: {" in result.stdout


def test_threshold_tuning_example_runs(tmp_path):
    result = run("examples/threshold_tuning.py", "--quick", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "threshold 0.5" in result.stdout and "tuned threshold" in result.stdout
    threshold = float(result.stdout.split("tuned threshold on P(class 1):")[1])
    # the printed value (3 decimals) is TunedThresholdClassifierCV's on that training split
    assert threshold == pytest.approx(_tuned_threshold_of_the_quick_example(tmp_path), abs=2e-3)


def _tuned_threshold_of_the_quick_example(tmp_path):
    """What examples/threshold_tuning.py --quick computes, in this process, on its data."""
    import torch
    from sklearn.model_selection import TunedThresholdClassifierCV, train_test_split

    from imbal_estimators import ImageImbalanceClassifier, SmallCNN, load_image_folder

    X, y = load_image_folder(tmp_path / "demo_data")
    X_train, _, y_train, _ = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
    clf = ImageImbalanceClassifier(
        module=SmallCNN,
        image_size=16,
        max_epochs=1,
        lr=3e-3,
        batch_size=16,
        verbose=0,
        random_state=0,
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the example ran (OMP_NUM_THREADS=1)
    try:
        tuned = TunedThresholdClassifierCV(clf, scoring="f1", cv=2, random_state=0)
        return tuned.fit(X_train, y_train).best_threshold_
    finally:
        torch.set_num_threads(threads)


def test_compare_losses_example_runs(tmp_path):
    result = run("examples/compare_losses.py", "--quick", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert " 6. " in result.stdout  # 3 configurations x {argmax, tuned threshold}
    assert "Model: compare_losses_out/model" in result.stdout
    assert (tmp_path / "compare_losses_out" / "report.html").is_file()


def test_optuna_example_runs(tmp_path):
    pytest.importorskip("optuna_integration")
    result = run("examples/optuna_search.py", "--quick", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "3 trials" in result.stdout and "best F1" in result.stdout


def test_forum_scenario_example_runs(tmp_path):
    result = run("examples/forum_scenario.py", "--quick", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "130 images, class 0: 100, class 1: 30" in result.stdout
    for name in ("snippet focal, alpha=0.75 (to class 0!)", "fix: focal, alpha=0.75 to class 1"):
        assert name in result.stdout


@pytest.mark.slow
def test_epoch_benchmark_runs(tmp_path):
    result = run("benchmarks/epoch_throughput.py", "--quick", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "ours/plain" in result.stdout
