"""A checkpointed fit killed with SIGKILL at any moment and run again is the uninterrupted fit.

Issue 20: the probabilities of a killed and resumed fit must equal an uninterrupted fit's
(1e-5) and so must its history, with and without a user callback with state. The fits are
those of ``tests/resume_worker.py``. The fast tests fork the dying fit from this process (a
real process, a real SIGKILL, no second import of torch) and compare in this process, every
fit on one thread; the slow ones run every fit in a fresh interpreter.
"""

import json
import multiprocessing
import os
import signal
import subprocess
import sys
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from conftest import make_folder
from resume_worker import history_of, killed_fit, make

from imbal_estimators import load_image_folder
from imbal_estimators.training.checkpoint import read_checkpoint

TESTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TESTS)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """100 images, 4:1."""
    return make_folder(tmp_path_factory.mktemp("resume"), {"common": 80, "rare": 20})


@pytest.fixture(scope="module")
def data(folder):
    return load_image_folder(folder)


@contextmanager
def threads(count):
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def uninterrupted(data):
    """{user_callback: (probabilities, history)} of uninterrupted fits on one thread."""
    X, y = data
    results = {}
    with threads(1):
        for user_callback in (False, True):
            clf = make(user_callback=user_callback).fit(X, y)
            results[user_callback] = clf.predict_proba(X), history_of(clf)
    return results


def _checkpoint_files(directory):
    return sorted(name for name in os.listdir(directory) if name.endswith(".pt"))


def kill_and_resume(data, directory, moment, user_callback):
    """Fork a fit that dies at ``moment``; fit again here; return the rerun."""
    X, y = data
    child = multiprocessing.get_context("fork").Process(
        target=killed_fit, args=(X, y, str(directory), moment, user_callback)
    )
    child.start()
    child.join(timeout=300)
    if child.is_alive():
        child.kill()
        pytest.fail(f"the fit that was to die at {moment} still ran after 300 s")
    assert child.exitcode == -signal.SIGKILL, f"the child ended with {child.exitcode}"
    with threads(1):
        return make(str(directory), user_callback).fit(X, y)


def assert_same_fit(clf, X, expected):
    proba, history = expected
    np.testing.assert_allclose(clf.predict_proba(X), proba, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(history_of(clf), history, rtol=1e-5, atol=1e-7)


def test_a_checkpoint_dir_changes_nothing(data, uninterrupted, tmp_path):
    """The issue saw epoch 1 differ (train loss 0.250017 vs 0.250772) in a fit that had
    nothing to resume: a fresh fit with a checkpoint_dir is the fit without one."""
    X, y = data
    with threads(1):
        clf = make(str(tmp_path)).fit(X, y)
    assert clf.resumed_from_epoch_ == 0
    assert_same_fit(clf, X, uninterrupted[False])


@pytest.mark.parametrize(
    "moment, user_callback, resumed_from",
    [
        ("b2.3", True, 1),  # mid-epoch 2, with a user callback that counts epochs
        pytest.param("b2.3", False, 1, marks=pytest.mark.slow),
        pytest.param("b1.2", False, 0, marks=pytest.mark.slow),  # before epoch 1 ends
        pytest.param("w2", True, 1, marks=pytest.mark.slow),  # writing checkpoint 2
        pytest.param("b3.1", True, 2, marks=pytest.mark.slow),  # first batch of the last
    ],
)
def test_sigkill_then_the_same_fit_again_equals_the_uninterrupted_fit(
    data, uninterrupted, tmp_path, moment, user_callback, resumed_from
):
    X, y = data
    rerun = kill_and_resume(data, tmp_path, moment, user_callback)
    assert rerun.resumed_from_epoch_ == resumed_from
    assert [row["epoch"] for row in rerun.history] == [1, 2, 3]
    assert_same_fit(rerun, X, uninterrupted[user_callback])
    if user_callback:
        assert dict(rerun.callbacks_)["schedule"].seen_ == 3
    assert read_checkpoint(os.path.join(tmp_path, _checkpoint_files(tmp_path)[0]))["epoch"] == 3


def test_a_kill_while_writing_a_checkpoint_leaves_the_previous_one(data, tmp_path):
    X, y = data
    child = multiprocessing.get_context("fork").Process(
        target=killed_fit, args=(X, y, str(tmp_path), "w2", False)
    )
    child.start()
    child.join(timeout=300)
    assert child.exitcode == -signal.SIGKILL
    names = os.listdir(tmp_path)
    assert any(name.endswith(".tmp") for name in names)  # the torn write, never renamed
    (name,) = _checkpoint_files(tmp_path)
    assert read_checkpoint(os.path.join(tmp_path, name))["epoch"] == 1


def test_a_resume_trains_with_the_thread_count_of_the_run_it_resumes(
    data, uninterrupted, tmp_path, capsys
):
    """A CPU fit's numbers depend on torch's thread count: the rerun of a fit killed on one
    thread, in a process with two, still gives the one-thread fit, and gets its two back."""
    X, y = data
    child = multiprocessing.get_context("fork").Process(
        target=killed_fit, args=(X, y, str(tmp_path), "b3.1", False)
    )
    child.start()
    child.join(timeout=300)
    assert child.exitcode == -signal.SIGKILL
    (name,) = _checkpoint_files(tmp_path)
    assert read_checkpoint(os.path.join(tmp_path, name))["threads"] == 1
    with threads(2):
        rerun = make(str(tmp_path)).set_params(verbose=1).fit(X, y)
        assert torch.get_num_threads() == 2
    assert "epochs done on 1 CPU threads like the run it resumes." in capsys.readouterr().out
    assert rerun.resumed_from_epoch_ == 2
    assert_same_fit(rerun, X, uninterrupted[False])


# -- in fresh interpreters -----------------------------------------------------------------


def run_worker(folder, directory, moment, user_callback, out):
    argv = [sys.executable, os.path.join(TESTS, "resume_worker.py"), folder, directory]
    argv += [moment, "1" if user_callback else "0", out]
    env = dict(os.environ, PYTHONPATH=REPO)
    return subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True, timeout=600)


@pytest.mark.slow  # fresh interpreters import torch: 10-60 s each with the load
@pytest.mark.parametrize("user_callback", [False, True])
def test_sigkill_in_a_fresh_interpreter_then_the_same_command_again(
    folder, tmp_path, user_callback
):
    """The issue's procedure: the command dies by SIGKILL in epoch 2, the same command runs
    again, and an uninterrupted command with its own checkpoint_dir is the reference."""
    directory, other = str(tmp_path / "ckpt"), str(tmp_path / "other")
    killed = run_worker(folder, directory, "b2.3", user_callback, str(tmp_path / "killed"))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    for path, out in [(directory, "resumed"), (other, "uninterrupted")]:
        done = run_worker(folder, path, "none", user_callback, str(tmp_path / out))
        assert done.returncode == 0, done.stderr[-2000:]
    resumed, uninterrupted = (
        (np.load(tmp_path / f"{n}.npy"), json.loads((tmp_path / f"{n}.json").read_text()))
        for n in ("resumed", "uninterrupted")
    )
    assert resumed[1]["resumed"] == 1 and uninterrupted[1]["resumed"] == 0
    np.testing.assert_allclose(resumed[0], uninterrupted[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(resumed[1]["history"], uninterrupted[1]["history"], rtol=1e-5)
