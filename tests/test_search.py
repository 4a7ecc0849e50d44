"""ImbalanceSearchCV: results, pruning, persistent studies, workers, dead trials."""

import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import time
import uuid

import numpy as np
import optuna
import pytest
from conftest import tiny_classifier
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.pruners import BasePruner, MedianPruner
from optuna.storages import RDBStorage
from optuna.storages.journal import JournalStorage
from optuna.trial import TrialState
from search_worker import GRID, make_search, work
from sklearn.base import clone, is_classifier
from sklearn.linear_model import LogisticRegression

from imbal_estimators import ImbalanceSearchCV
from imbal_estimators.search.space import DEFAULT_SEARCH_SPACE
from imbal_estimators.search.studies import (
    FINGERPRINT_ATTR,
    RETRY_ATTR,
    WORKER_ATTR,
    SkipTrial,
    _claim,
    database_url,
    make_storage,
    recover_dead_trials,
    worker_alive,
    worker_identity,
)

pytestmark = pytest.mark.usefixtures("quiet_optuna")


def fast_search(**params):
    defaults = dict(search_space={"C": [0.01, 0.1, 1.0, 10.0]}, n_trials=4, cv=3, random_state=0)
    return ImbalanceSearchCV(LogisticRegression(), **{**defaults, **params})


def params_of(trials):
    return [tuple(sorted(t.params.items(), key=lambda kv: kv[0])) for t in trials]


# -- results --------------------------------------------------------------------------------


def test_results_are_shaped_like_scikit_learn(binary_data):
    X, y = binary_data
    search = ImbalanceSearchCV(
        tiny_classifier(max_epochs=1, batch_size=64),
        {"alpha": [None, "balanced"], "gamma": FloatDistribution(0.0, 3.0)},
        n_trials=3,
        cv=2,
        scoring={"bacc": "balanced_accuracy", "acc": "accuracy"},
        random_state=0,
    ).fit(X, y)
    results = search.cv_results_
    for name in ("bacc", "acc"):
        for key in ("split0", "split1"):
            column = results[f"{key}_test_{name}"]
            assert column.shape == (3,) and np.all((column >= 0) & (column <= 1))
        splits = np.stack([results[f"split{k}_test_{name}"] for k in range(2)], axis=1)
        np.testing.assert_allclose(results[f"mean_test_{name}"], splits.mean(axis=1))
        np.testing.assert_allclose(results[f"std_test_{name}"], splits.std(axis=1))
        assert results[f"rank_test_{name}"].min() == 1
    for key in ("mean_fit_time", "std_fit_time", "mean_score_time", "std_score_time"):
        assert results[key].shape == (3,)
    assert np.all(results["mean_fit_time"] > 0)
    assert list(results["trial_number"]) == [0, 1, 2]
    assert list(results["trial_state"]) == ["COMPLETE"] * 3
    assert [p["alpha"] for p in results["params"]] == list(results["param_alpha"])
    # the first scorer is optimized; every scorer is on the trials
    best = search.best_index_
    assert results["rank_test_bacc"][best] == 1
    assert search.best_score_ == pytest.approx(results["mean_test_bacc"][best])
    assert search.best_params_ == results["params"][best]
    trial = search.study_.trials[best]
    assert trial.value == pytest.approx(search.best_score_)
    assert trial.user_attrs["split1_test_acc"] == pytest.approx(results["split1_test_acc"][best])
    assert search.n_trials_ == search.n_trials_run_ == 3 and search.n_splits_ == 2
    # refit on everything, then delegate
    assert search.best_estimator_.alpha == search.best_params_["alpha"]
    assert list(search.classes_) == ["cat", "dog"]
    assert set(search.predict(X[:5])) <= {"cat", "dog"}
    assert search.predict_proba(X[:5]).shape == (5, 2)
    assert 0 <= search.score(X, y) <= 1
    assert isinstance(pickle.loads(pickle.dumps(search)).predict(X[:2]), np.ndarray)


def test_default_search_space_maps_sampler_names(binary_data):
    X, y = binary_data
    search = ImbalanceSearchCV(  # lr at its default: an lr set otherwise is fixed, not searched
        tiny_classifier(max_epochs=1, batch_size=64, lr=1e-4),
        n_trials=2,
        cv=2,
        scoring="balanced_accuracy",
        random_state=1,
        refit=False,
    ).fit(X, y)
    assert set(search.study_.trials[0].params) == set(DEFAULT_SEARCH_SPACE)
    for trial, params in zip(search.study_.trials, search.cv_results_["params"], strict=True):
        name = trial.params["sampler"]  # stored as a name, used as an object
        assert (
            type(params["sampler"]).__name__
            == {
                "none": "NoneType",
                "over": "RandomOverSampler",
                "under": "RandomUnderSampler",
            }[name]
        )
        assert params["loss"] in ("ce", "focal") and 1e-5 <= params["lr"] <= 1e-2
    with pytest.raises(AttributeError, match="has no attribute 'predict'") as error:
        search.predict(X[:2])
    assert "refit=False" in str(error.value.__cause__)


def test_callable_search_space_is_replayed_into_params(numeric_data):
    X, y = numeric_data

    def space(trial):
        return {"C": 10 ** trial.suggest_float("log_C", -2, 2), "class_weight": "balanced"}

    search = fast_search(search_space=space, n_trials=3).fit(X, y)
    for trial, params in zip(search.study_.trials, search.cv_results_["params"], strict=True):
        assert params == {"C": 10 ** trial.params["log_C"], "class_weight": "balanced"}
    assert search.best_estimator_.class_weight == "balanced"
    assert list(search.cv_results_["param_class_weight"]) == ["balanced"] * 3


def test_timeout_stops_starting_trials(numeric_data):
    def slow_space(trial):
        time.sleep(1.2)
        return {"C": trial.suggest_float("C", 0.1, 10)}

    search = fast_search(search_space=slow_space, n_trials=5, timeout=1.0).fit(*numeric_data)
    assert search.n_trials_run_ == 1 and len(search.study_.trials) == 1


def test_a_fitted_search_with_a_storage_pickles(numeric_data, tmp_path):
    X, y = numeric_data
    search = fast_search(n_trials=2, storage=str(tmp_path / "s.db")).fit(X, y)
    loaded = pickle.loads(pickle.dumps(search))
    np.testing.assert_array_equal(loaded.predict(X), search.predict(X))
    assert len(loaded.study_.trials) == 2


def test_int_cv_is_stratified_and_shuffled_by_random_state(numeric_data):
    X, y = numeric_data
    search = fast_search(n_trials=1, cv=3, random_state=3)
    folds = list(search._check_cv(y, 3).split(X, y))
    for _, test in folds:  # 42/18 split over 3 folds: 14 and 6 of each class per fold
        assert np.bincount(y[test]).tolist() == [14, 6]
    assert not np.array_equal(folds[0][1], np.arange(20))


def test_meta_estimator_contract(numeric_data):
    search = fast_search()
    assert is_classifier(search)
    assert clone(search).get_params()["search_space"] == {"C": [0.01, 0.1, 1.0, 10.0]}
    X, y = numeric_data
    one = fast_search(n_trials=1, scoring={"acc": "accuracy"}).fit(X, y)  # a dict of one
    assert one.multimetric_ and "mean_test_acc" in one.cv_results_
    assert one.score(X, y) == pytest.approx(one.best_estimator_.score(X, y))
    with pytest.raises(ValueError, match="'n_trials' parameter of ImbalanceSearchCV"):
        fast_search(n_trials=0).fit(X, y)


@pytest.mark.parametrize(
    "params, error, match",
    [
        ({"search_space": {"C": 3}}, TypeError, r"search_space\['C'\]"),
        ({"search_space": {}}, ValueError, "search_space is empty"),
        (
            {"search_space": {"C": FloatDistribution(0.1, 1)}, "sampler": "grid"},
            ValueError,
            r"sampler='grid' needs a list of values for every parameter; search_space\['C'\]",
        ),
        ({"storage": "study.txt"}, ValueError, r"storage='study.txt' is neither"),
        ({"storage": "no/such/dir/study.db"}, FileNotFoundError, "no/such/dir"),
        ({"scoring": {}}, ValueError, "scoring is empty"),
        (
            {"search_space": {"sampler": [None, LogisticRegression()]}},
            TypeError,
            r"search_space\['sampler'\] has the choice LogisticRegression\(\).*'none', 'over'",
        ),
    ],
)
def test_bad_arguments_fail_with_their_name(
    numeric_data, params, error, match, monkeypatch, tmp_path
):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(error, match=match):
        fast_search(**params).fit(*numeric_data)


def test_a_minimizing_study_is_refused(numeric_data, tmp_path):
    storage = str(tmp_path / "s.db")
    optuna.create_study(storage=f"sqlite:///{storage}", study_name="min", direction="minimize")
    with pytest.raises(ValueError, match="Study 'min' minimizes"):
        fast_search(storage=storage, study_name="min").fit(*numeric_data)


# -- pruning ----------------------------------------------------------------------------------


class PruneTrialAtStep(BasePruner):
    """Prune trial ``number`` when it reports step ``step``."""

    def __init__(self, number, step):
        self.number = number
        self.step = step

    def prune(self, study, trial):
        return trial.number == self.number and trial.last_step == self.step


def test_each_epoch_of_each_fold_reports_and_a_pruned_trial_is_recorded(binary_data):
    X, y = binary_data
    search = ImbalanceSearchCV(
        tiny_classifier(max_epochs=2, batch_size=64),
        {"alpha": [None, "balanced"]},
        n_trials=2,
        cv=2,
        scoring="balanced_accuracy",
        pruning=PruneTrialAtStep(number=1, step=2),  # trial 1, fold 1, epoch 0
        random_state=0,
    ).fit(X, y)
    first, second = search.study_.trials
    assert first.state == TrialState.COMPLETE
    assert sorted(first.intermediate_values) == [0, 1, 2, 3]  # fold * max_epochs + epoch
    assert all(0 <= v <= 1 for v in first.intermediate_values.values())
    assert second.state == TrialState.PRUNED and sorted(second.intermediate_values) == [0, 1, 2]
    results = search.cv_results_
    assert list(results["trial_state"]) == ["COMPLETE", "PRUNED"]
    assert not np.isnan(results["split0_test_score"][1])  # fold 0 finished before the pruning
    assert np.isnan(results["split1_test_score"][1]) and np.isnan(results["mean_test_score"][1])
    assert list(results["rank_test_score"]) == [1, 2]
    assert search.best_index_ == 0


def test_no_reports_without_validation_split_or_pruning(binary_data):
    X, y = binary_data
    for estimator_params, pruning in [({"train_split": None}, True), ({}, False)]:
        search = ImbalanceSearchCV(
            tiny_classifier(max_epochs=1, batch_size=64, **estimator_params),
            {"alpha": [None]},
            n_trials=1,
            cv=2,
            scoring="balanced_accuracy",
            pruning=pruning,
            refit=False,
        ).fit(X, y)
        assert search.study_.trials[0].intermediate_values == {}
        assert search.study_.trials[0].state == TrialState.COMPLETE
    assert isinstance(search.study_.pruner, optuna.pruners.NopPruner)
    assert isinstance(ImbalanceSearchCV(None)._make_pruner(), MedianPruner)


def test_valid_loss_monitor_reports_the_negated_loss(binary_data):
    X, y = binary_data
    search = ImbalanceSearchCV(
        tiny_classifier(max_epochs=1, batch_size=64, monitor="valid_loss"),
        {"alpha": [None]},
        n_trials=1,
        cv=2,
        refit=False,
        scoring="balanced_accuracy",
    ).fit(X, y)
    values = search.study_.trials[0].intermediate_values
    assert sorted(values) == [0, 1] and all(v < 0 for v in values.values())


# -- storages, resume, dead workers -------------------------------------------------------------


def test_storage_from_paths_and_urls(tmp_path):
    for name in ("s.db", "s.sqlite3"):
        storage = make_storage(tmp_path / name)
        assert isinstance(storage, RDBStorage) and storage.heartbeat_interval is not None
    assert isinstance(make_storage(str(tmp_path / "s.log")), JournalStorage)
    assert isinstance(make_storage(str(tmp_path / "s.jsonl")), JournalStorage)
    url = f"sqlite:///{tmp_path / 'u.db'}"
    assert make_storage(url).url == url
    assert make_storage(None) is None


def test_four_trials_then_six_runs_exactly_two_more(numeric_data, tmp_path):
    X, y = numeric_data
    storage = str(tmp_path / "study.db")
    space = {"C": FloatDistribution(0.01, 100, log=True), "fit_intercept": [True, False]}
    search = fast_search(search_space=space, storage=storage, study_name="resume").fit(X, y)
    assert search.n_trials_ == search.n_trials_run_ == 4
    first = [(t.number, t.params, t.datetime_complete) for t in search.study_.trials]
    search.set_params(n_trials=6).fit(X, y)
    assert search.n_trials_run_ == 2 and search.n_trials_ == 6
    trials = optuna.load_study(study_name="resume", storage=make_storage(storage)).trials
    assert len(trials) == 6 and all(t.state == TrialState.COMPLETE for t in trials)
    assert [(t.number, t.params, t.datetime_complete) for t in trials[:4]] == first
    assert len(search.cv_results_["params"]) == 6
    search.fit(X, y)  # complete: nothing runs
    assert search.n_trials_run_ == 0 and len(search.study_.trials) == 6


def test_grid_points_are_run_once_and_failed_ones_again(numeric_data, tmp_path):
    X, y = numeric_data
    storage = str(tmp_path / "grid.log")
    grid = {"C": [0.01, 0.1, 1.0, 10.0]}
    search = fast_search(search_space=grid, sampler="grid", n_trials=2, storage=storage).fit(X, y)
    crashed = search.study_.ask()  # grid point 2, failed by an error (GridSampler: "visited")
    search.study_.tell(crashed, state=TrialState.FAIL)
    search.set_params(n_trials=50).fit(X, y)  # capped at the grid's 4 points
    assert search.n_trials_run_ == 2 and search.n_trials_ == 4
    complete = [t for t in search.study_.trials if t.state == TrialState.COMPLETE]
    assert sorted(t.params["C"] for t in complete) == grid["C"]
    assert len(search.study_.trials) == 5


def dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_worker_liveness():
    me = worker_identity()
    assert worker_alive(me) is True
    assert worker_alive({**me, "pid": dead_pid()}) is False
    assert worker_alive({**me, "start": -1}) is False  # same pid, another process
    assert worker_alive({**me, "host": "elsewhere"}) is None


def test_running_trials_of_dead_workers_are_failed_and_queued_again(tmp_path):
    storage = make_storage(tmp_path / "s.log")
    study = optuna.create_study(storage=storage, direction="maximize")
    dead, live = study.ask(), study.ask()
    for trial, worker in [
        (dead, {**worker_identity(), "pid": dead_pid()}),
        (live, worker_identity()),
    ]:
        trial.suggest_float("lr", 1e-4, 1e-2)
        trial.set_user_attr(WORKER_ATTR, worker)
    assert recover_dead_trials(study, storage) == 1
    trials = study.trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.RUNNING, TrialState.WAITING]
    assert trials[2].params == trials[0].params and trials[2].system_attrs[RETRY_ATTR] == 0
    assert trials[2].user_attrs == {}
    assert recover_dead_trials(study, storage) == 0


def test_a_trial_over_the_count_or_on_a_taken_grid_point_does_not_run(tmp_path):
    storage = make_storage(tmp_path / "s.log")
    study = optuna.create_study(storage=storage, sampler=optuna.samplers.GridSampler(GRID))
    first, second = study.ask(), study.ask()
    _claim(study, first, 2)  # numbers 0 and 1: both fit in 2
    with pytest.raises(SkipTrial, match="already has 1 trials finished or running"):
        _claim(study, second, 1)  # the lower number wins the last slot
    study.add_trial(
        optuna.trial.create_trial(
            state=TrialState.WAITING,
            system_attrs={
                "grid_id": 0,
                "search_space": study.trials[0].system_attrs["search_space"],
            },
        )
    )
    again = study.ask()  # a queued copy of grid point 0, which trial 0 is running
    with pytest.raises(SkipTrial, match="grid point 0 is already finished or running"):
        _claim(study, again, 10)
    assert study.trials[again.number].user_attrs["imbal_skipped"].startswith("grid point 0")


# -- several processes ----------------------------------------------------------------------------


def start_worker(folder, storage, study_name, n_trials, **kwargs):
    """A worker process, forked: a real process that shares no state with this one after."""
    process = multiprocessing.get_context("fork").Process(
        target=work, args=(folder, storage, study_name, n_trials), kwargs=kwargs
    )
    process.start()
    return process


def wait_for(path, processes, seconds=240):
    deadline = time.monotonic() + seconds
    while not os.path.exists(path):
        for process in processes:
            if not process.is_alive():
                pytest.fail(f"worker exited early with code {process.exitcode}")
        if time.monotonic() > deadline:
            pytest.fail(f"{path} did not appear in {seconds} s")
        time.sleep(0.05)


def run_two_workers(folder, storage, study_name, tmp_path, n_trials=4):
    """Start two workers, release them together, and return the study's trials."""
    ready = [str(tmp_path / f"ready{i}") for i in range(2)]
    go = str(tmp_path / "go")
    meet = tmp_path / "meet"
    meet.mkdir()
    workers = [
        start_worker(folder, storage, study_name, n_trials, ready=r, go=go, meet=str(meet))
        for r in ready
    ]
    try:
        for path in ready:
            wait_for(path, workers)
        open(go, "w").close()
        for worker in workers:
            worker.join(timeout=300)
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.kill()
                worker.join()
    assert [w.exitcode for w in workers] == [0, 0]
    return optuna.load_study(study_name=study_name, storage=make_storage(storage)).trials


def check_shared_grid(trials, n_trials=4):
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == n_trials
    assert len(set(params_of(complete))) == n_trials  # no grid point twice
    others = [t for t in trials if t.state != TrialState.COMPLETE]
    assert all(t.state == TrialState.FAIL and "imbal_skipped" in t.user_attrs for t in others)
    assert len({t.user_attrs[WORKER_ATTR]["pid"] for t in complete}) == 2  # both worked


def test_two_processes_share_one_study(binary_folder, tmp_path):
    trials = run_two_workers(binary_folder, str(tmp_path / "study.log"), "shared", tmp_path)
    check_shared_grid(trials)


@pytest.mark.slow
def test_two_processes_share_one_sqlite_study(binary_folder, tmp_path):
    trials = run_two_workers(binary_folder, str(tmp_path / "study.db"), "shared", tmp_path)
    check_shared_grid(trials)


def test_postgresql_study_shared_by_two_processes(binary_folder, tmp_path):
    url = os.environ.get("IMBAL_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("IMBAL_TEST_POSTGRES_URL is not set (.ci/run starts a PostgreSQL server)")
    try:
        import sqlalchemy

        sqlalchemy.create_engine(url).connect().close()
    except Exception as exc:  # no driver, no server
        pytest.skip(f"no PostgreSQL server at IMBAL_TEST_POSTGRES_URL: {exc}")
    trials = run_two_workers(binary_folder, url, f"pg-{uuid.uuid4().hex}", tmp_path)
    check_shared_grid(trials)


def test_a_killed_worker_s_trial_is_retried_by_the_next_run(binary_folder, binary_data, tmp_path):
    storage = str(tmp_path / "study.db")
    running = str(tmp_path / "running")
    # 2 folds per trial: the 3rd fit is trial 1's first fold
    worker = start_worker(binary_folder, storage, "killed", 2, hang_at_fit=3, signal=running)
    try:
        wait_for(running, [worker])
    finally:
        os.kill(worker.pid, signal.SIGKILL)
        worker.join()
    assert worker.exitcode == -signal.SIGKILL
    trials = optuna.load_study(study_name="killed", storage=make_storage(storage)).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.RUNNING]

    search = make_search(storage, "killed", 2).fit(*binary_data)
    trials = search.study_.trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]
    assert trials[2].system_attrs[RETRY_ATTR] == 1 and trials[2].params == trials[1].params
    assert trials[0].params != trials[2].params
    assert search.n_trials_run_ == 1 and search.n_trials_ == 2


def test_default_search_space_is_storable(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(storage=url, study_name="default")
    study.tell(study.ask(DEFAULT_SEARCH_SPACE), 0.5)
    trial = optuna.load_study(study_name="default", storage=url).trials[0]
    assert set(trial.params) == set(DEFAULT_SEARCH_SPACE)
    assert isinstance(DEFAULT_SEARCH_SPACE["sampler"], CategoricalDistribution)


# -- a study knows its data ------------------------------------------------------------------


def test_a_study_records_what_it_was_built_on(numeric_data, tmp_path):
    X, y = numeric_data
    search = fast_search(storage=str(tmp_path / "s.db"), study_name="known").fit(X, y)
    assert search.study_.study_name == "known"
    assert set(search.study_.user_attrs[FINGERPRINT_ATTR]) == {
        "data",
        "scoring",
        "cv",
        "search_space",
        "estimator",
    }


def test_a_study_built_on_other_data_is_never_reused(numeric_data, tmp_path):
    X, y = numeric_data
    storage = str(tmp_path / "s.log")
    first = fast_search(storage=storage, study_name="pets", scoring="f1").fit(X, y)
    changes = {
        "other rows": ((X[::-1], y[::-1]), {}),
        "other values": ((X + 1.0, y), {}),
        "scoring": ((X, y), {"scoring": "roc_auc"}),
        "cv": ((X, y), {"cv": 4}),
        "search space": ((X, y), {"search_space": {"C": [0.5, 5.0]}, "n_trials": 2}),
    }
    names = {"pets"}
    for change, ((X2, y2), params) in changes.items():
        params = {"scoring": "f1", **params}
        other = fast_search(storage=storage, study_name="pets", **params).fit(X2, y2)
        assert other.n_trials_run_ == other.n_trials, change  # none of the first's trials
        assert other.study_.study_name.startswith("pets-"), change
        names.add(other.study_.study_name)
    assert len(names) == 1 + len(changes)
    assert len(first.study_.trials) == 4  # the first study is left alone
    (X2, y2), params = changes["scoring"]
    mine = fast_search(storage=storage, study_name="pets", **params).fit(X2, y2)
    assert mine.n_trials_run_ == 0  # the rerun continues its own study ...
    fresh = fast_search(storage=None, **params).fit(X2, y2)
    assert mine.best_score_ == pytest.approx(fresh.best_score_)  # ... of roc_auc, not f1
    back = fast_search(storage=storage, study_name="pets", scoring="f1").fit(X, y)
    assert back.n_trials_run_ == 0 and back.study_.study_name == "pets"


def test_a_study_with_trials_but_no_fingerprint_is_not_reused(numeric_data, tmp_path):
    X, y = numeric_data
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(storage=url, study_name="old", direction="maximize")
    study.enqueue_trial({"C": 1.0})
    study.optimize(lambda trial: trial.suggest_float("C", 0.1, 10) * 0 + 0.99, n_trials=1)
    search = fast_search(storage=url, study_name="old").fit(X, y)
    assert search.n_trials_run_ == 4 and search.study_.study_name.startswith("old-")
    assert search.best_score_ < 0.99  # not the old study's value


def test_a_search_nested_in_cross_val_score_runs_in_every_outer_fold(numeric_data, tmp_path):
    from sklearn.model_selection import cross_val_score

    X, y = numeric_data
    storage = str(tmp_path / "nested.db")
    search = fast_search(storage=storage, study_name="inner", n_trials=2, cv=2)
    scores = cross_val_score(search, X, y, cv=3, error_score="raise")
    assert np.all(np.isfinite(scores))
    studies = optuna.get_all_study_summaries(make_storage(storage))
    assert len(studies) == 3 and all(s.n_trials == 2 for s in studies)


def test_postgresql_urls_get_the_driver_that_is_installed(monkeypatch):
    import importlib.util

    import imbal_estimators.search.studies as studies

    installed = set()
    real = importlib.util.find_spec
    monkeypatch.setattr(
        studies.importlib.util,
        "find_spec",
        lambda name, *a: (
            (real("json") if name in installed else None)
            if name in ("psycopg", "psycopg2")
            else real(name, *a)
        ),
    )
    url = "postgresql://imbal:secret@127.0.0.1:5432/db"
    with pytest.raises(ImportError, match=r"imbal-estimators\[postgresql\]") as info:
        database_url(url)
    assert "secret" not in str(info.value)
    installed.add("psycopg2")  # what the postgresql and dev extras install, as CI tests it
    assert database_url(url) == "postgresql+psycopg2://imbal:secret@127.0.0.1:5432/db"
    assert database_url("postgres://h/db") == "postgresql+psycopg2://h/db"
    installed.add("psycopg")  # SQLAlchemy's own choice for a plain URL
    assert database_url(url) == url
    explicit = "postgresql+psycopg2://h/db"
    assert database_url(explicit) == explicit


def test_a_sqlite_url_into_a_missing_folder_names_it(numeric_data, tmp_path):
    url = f"sqlite:///{tmp_path / 'missing' / 'study.db'}"
    with pytest.raises(FileNotFoundError, match=f"folder '{tmp_path / 'missing'}' does not exist"):
        make_storage(url)
    with pytest.raises(FileNotFoundError, match="study.db"):
        fast_search(storage=url).fit(*numeric_data)
    assert database_url("sqlite:///:memory:") == "sqlite:///:memory:"
