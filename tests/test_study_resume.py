"""A study knows its estimator, and a killed search goes on in its own study.

A search with the same storage and study name but another estimator runs trials of its
own (a derived study); one that differs only in speed or output settings, or the same
search run again after a SIGKILL, continues the study it had.
"""

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time

import numpy as np
import optuna
import pytest
from conftest import tiny_classifier
from search_worker import make_search, work
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from skorch.callbacks import PrintLog

from imbal_estimators import ImbalanceSearchCV
from imbal_estimators.search.studies import (
    FINGERPRINT_ATTR,
    RETRY_ATTR,
    SPEED_ONLY_PARAMS,
    estimator_text,
    make_storage,
    study_fingerprint,
)

TESTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TESTS)


pytestmark = pytest.mark.usefixtures("quiet_optuna")


def image_search(estimator, storage, n_trials=1):
    return ImbalanceSearchCV(
        estimator,
        {"gamma": [0.0, 2.0]},
        sampler="grid",
        n_trials=n_trials,
        cv=2,
        scoring="balanced_accuracy",
        storage=storage,
        study_name="k",
        random_state=0,
        refit=False,
    )


def test_another_estimator_runs_its_own_trials(binary_data, tmp_path):
    """The issue's case: a second search with another estimator (fewer epochs, another loss,
    smaller images) on the same data, storage and study name ran 0 trials and reported the
    first study's score."""
    X, y = binary_data
    storage = str(tmp_path / "study.db")
    first = tiny_classifier(loss="focal", max_epochs=1, image_size=16)
    other = tiny_classifier(loss="ce", max_epochs=1, image_size=8, lr=1e-4)
    before = image_search(first, storage).fit(X, y)
    assert before.study_.study_name == "k" and before.n_trials_run_ == 1

    after = image_search(other, storage).fit(X, y)
    assert after.study_.study_name.startswith("k-") and after.n_trials_run_ == 1
    alone = image_search(other, None).fit(X, y)  # the same search in memory
    assert after.best_score_ == pytest.approx(alone.best_score_)
    assert after.best_score_ != pytest.approx(before.best_score_)
    names = optuna.get_all_study_names(make_storage(storage))
    assert sorted(names) == sorted(["k", after.study_.study_name])
    assert len(optuna.load_study(study_name="k", storage=make_storage(storage)).trials) == 1

    # each, run again, continues its own study
    assert image_search(first, storage).fit(X, y).n_trials_run_ == 0
    again = image_search(other, storage).fit(X, y)
    assert again.n_trials_run_ == 0 and again.study_.study_name == after.study_.study_name


def test_speed_and_output_settings_share_the_study(numeric_data, tmp_path):
    X, y = numeric_data
    storage = str(tmp_path / "study.log")

    def search(estimator):
        return ImbalanceSearchCV(
            estimator,
            {"logisticregression__C": [0.1, 1.0]},
            n_trials=2,
            cv=3,
            storage=storage,
            study_name="lr",
            random_state=0,
        ).fit(X, y)

    first = search(make_pipeline(StandardScaler(), LogisticRegression()))
    quiet = search(make_pipeline(StandardScaler(), LogisticRegression(verbose=1)))
    assert quiet.study_.study_name == "lr" and quiet.n_trials_run_ == 0
    assert quiet.best_score_ == first.best_score_
    other = search(make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced")))
    assert other.study_.study_name.startswith("lr-") and other.n_trials_run_ == 2


def _fingerprint(estimator):
    splits = [(np.arange(4), np.arange(4, 6))]
    return study_fingerprint(["a.png"] * 6, [0, 1] * 3, "f1", splits, None, estimator)


def test_the_estimator_fingerprint_leaves_out_the_documented_speed_only_params(tmp_path):
    base = _fingerprint(tiny_classifier())
    assert set(base) == {"data", "scoring", "cv", "search_space", "estimator"}
    speed_only = dict(
        verbose=1,
        device="cuda",
        cache=None,
        checkpoint_dir=str(tmp_path),
        auto_batch_size=True,
        compile=True,
        iterator_train__num_workers=3,
        iterator_valid__pin_memory=True,
    )
    for name, value in speed_only.items():
        assert _fingerprint(tiny_classifier(**{name: value})) == base, name
    assert {"verbose", "device", "cache", "checkpoint_dir"} <= SPEED_ONLY_PARAMS
    measured = dict(
        max_epochs=3,
        loss="focal",
        gamma=1.0,
        image_size=8,
        lr=0.01,
        alpha="balanced",
        random_state=1,
        precision="bf16",
        iterator_train__drop_last=True,
        callbacks=[("log", PrintLog(keys_ignored=["x"]))],
    )
    for name, value in measured.items():
        other = _fingerprint(tiny_classifier(**{name: value}))
        assert other["estimator"] != base["estimator"], name
        assert {k: v for k, v in other.items() if k != "estimator"} == {
            k: v for k, v in base.items() if k != "estimator"
        }
    # estimators inside estimators: their own parameters count the same way
    text = estimator_text(make_pipeline(StandardScaler(), LogisticRegression(C=2.0)))
    steps = text["params"]["steps"]
    assert steps[1][1]["params"]["C"] == "2.0"
    assert "n_jobs" not in steps[1][1]["params"] and "verbose" not in steps[1][1]["params"]


CHILD = """
import json, sys
sys.path.insert(0, {tests!r})
from conftest import tiny_classifier
from skorch.callbacks import PrintLog
from test_study_resume import _fingerprint
keys = {keys!r}
estimator = tiny_classifier(callbacks=[("log", PrintLog(keys_ignored=set(keys)))])
print(json.dumps([_fingerprint(estimator), repr(set(keys))]))
"""


@pytest.mark.slow  # two fresh interpreters import torch
def test_the_fingerprint_is_the_same_in_every_process():
    """Python's hash seed changes the order of a set between processes; a study built with
    a set among the estimator's parameters is still recognised by the next process."""
    keys = [f"key{i}" for i in range(12)]
    results = []
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, TESTS]), PYTHONHASHSEED=seed)
        script = CHILD.format(tests=TESTS, keys=keys)
        out = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
        )
        assert out.returncode == 0, out.stderr[-2000:]
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    (first, first_order), (second, second_order) = results
    assert first_order != second_order  # the sets were iterated in another order ...
    assert first == second  # ... and the fingerprints are equal
    here = tiny_classifier(callbacks=[("log", PrintLog(keys_ignored=set(keys)))])
    assert _fingerprint(here) == first


def start_worker(folder, storage, study_name, n_trials, **kwargs):
    """A forked worker process (see tests/search_worker.py)."""
    process = multiprocessing.get_context("fork").Process(
        target=work, args=(folder, storage, study_name, n_trials), kwargs=kwargs
    )
    process.start()
    return process


def test_a_killed_search_finishes_its_trials_in_the_same_study(
    binary_folder, binary_data, tmp_path
):
    """The issue's case: SQLite storage and study name, 4 trials of 3 folds, SIGKILL after
    the first finished trial (in the first fit of the second), then the same search again."""
    storage, running = str(tmp_path / "study.db"), str(tmp_path / "running")
    worker = start_worker(binary_folder, storage, "k", 4, cv=3, hang_at_fit=4, signal=running)
    try:
        deadline = time.monotonic() + 240
        while not os.path.exists(running):
            assert worker.is_alive(), f"worker exited early with code {worker.exitcode}"
            assert time.monotonic() < deadline, "the worker did not reach its 4th fit"
            time.sleep(0.05)
    finally:
        os.kill(worker.pid, signal.SIGKILL)
        worker.join()
    assert worker.exitcode == -signal.SIGKILL
    killed = optuna.load_study(study_name="k", storage=make_storage(storage))
    assert [t.state.name for t in killed.trials] == ["COMPLETE", "RUNNING"]
    fingerprint = killed.user_attrs[FINGERPRINT_ATTR]

    search = make_search(storage, "k", 4, cv=3).fit(*binary_data)
    assert search.study_.study_name == "k"
    assert search.study_.user_attrs[FINGERPRINT_ATTR] == fingerprint
    states = [t.state.name for t in search.study_.trials]
    assert states == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE", "COMPLETE"]
    retried = search.study_.trials[2]
    assert retried.system_attrs[RETRY_ATTR] == 1 and retried.params == killed.trials[1].params
    assert search.n_trials_ == 4 and search.n_trials_run_ == 3
    assert optuna.get_all_study_names(make_storage(storage)) == ["k"]  # no derived study
    assert len({tuple(sorted(t.params.items())) for t in search.study_.trials}) == 4
