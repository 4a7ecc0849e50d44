"""compare as a long job: the user's stop is a stop, finished fits are journaled and resumed,
OUT belongs to one run, and every joblib backend gives the scores of one worker."""

import csv
import glob
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import TINY, make_folder
from joblib import parallel_config, register_parallel_backend
from joblib._parallel_backends import ThreadingBackend
from joblib.externals.loky.process_executor import TerminatedWorkerError
from skorch.callbacks import Callback, EarlyStopping

import imbal_estimators.app.compare as compare_module
import imbal_estimators.app.parallel as parallel_module
from imbal_estimators import ImageImbalanceClassifier, load_image_folder
from imbal_estimators.app.cli import main
from imbal_estimators.app.compare import compare
from imbal_estimators.app.journal import Journal, JournalMismatch
from imbal_estimators.app.parallel import FitTask, fit_task, run_fits
from imbal_estimators.app.session import OUTPUTS, OutputRefused, compare_journal
from imbal_estimators.training.interrupt import UserInterrupt, stop_on_signals

PARAMS = {k: v for k, v in TINY.items() if k != "random_state"}
SMALL = dict(methods=["ce", "over"], cv=2, estimator_params=PARAMS, progress=False, refit=False)


class SignalAtEpoch(Callback):
    """Sends this process ``signum`` at the end of epoch ``epoch``, as a user's Ctrl-C would."""

    def __init__(self, epoch=1, signum=signal.SIGINT):
        self.epoch = epoch
        self.signum = signum

    def on_epoch_end(self, net, **kwargs):
        if len(net.history) == self.epoch:
            os.kill(os.getpid(), self.signum)


def tiny(**params):
    return ImageImbalanceClassifier(**{**TINY, "max_epochs": 4, **params})


# -- stop means stop ------------------------------------------------------------------------


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_inside_fit_raises_instead_of_returning_a_half_trained_model(
    binary_data, signum, status
):
    X, y = binary_data
    clf = tiny(callbacks=[("stop", SignalAtEpoch(1, signum))])
    with stop_on_signals(), pytest.raises(UserInterrupt) as caught:
        clf.fit(X, y)
    assert caught.value.signum == signum and caught.value.exit_status == status
    assert isinstance(caught.value, KeyboardInterrupt)
    assert len(clf.history) == 1  # stopped at once, not after the remaining epochs
    # the handlers are back: outside the block a SIGTERM is the default action again
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_the_packages_own_early_stop_is_not_the_users(binary_data):
    X, y = binary_data
    stop = EarlyStopping(monitor="train_loss", patience=0, threshold=1e9)
    clf = tiny(callbacks=[("early", stop)])
    with stop_on_signals():
        clf.fit(X, y)  # skorch's KeyboardInterrupt of EarlyStopping: a normal, shorter fit
    assert len(clf.history) < 4 and clf.predict_proba(X).shape == (len(X), 2)


def test_without_the_block_skorchs_own_semantics_stay(binary_data):
    X, y = binary_data
    clf = tiny(callbacks=[("stop", SignalAtEpoch(2))])
    clf.fit(X, y)  # a Python user's Ctrl-C outside compare/CLI: skorch's "stop training"
    assert len(clf.history) == 2


def test_a_signal_inside_a_search_stops_the_search(binary_data):
    from imbal_estimators import ImbalanceSearchCV

    X, y = binary_data
    trials = []

    class Counting(SignalAtEpoch):
        def on_train_begin(self, net, **kwargs):
            trials.append(1)

    clf = tiny(max_epochs=3, callbacks=[("stop", Counting(1))])
    search = ImbalanceSearchCV(clf, {"alpha": [None, "balanced"]}, n_trials=3, cv=2)
    with stop_on_signals(), pytest.raises(UserInterrupt):
        search.fit(X, y)
    assert len(trials) == 1  # the first fit of the first trial, and nothing after it


# -- the journal ---------------------------------------------------------------------------


def _rows(result):
    return [(r.name, r.fold_scores, r.thresholds) for r in result.rows]


def _recording(monkeypatch):
    fitted = []
    original = compare_module.run_fits

    def recording(tasks, *args, **kwargs):
        fitted.extend(t.name for t in tasks)
        return original(tasks, *args, **kwargs)

    monkeypatch.setattr(compare_module, "run_fits", recording)
    return fitted


def test_a_rerun_skips_the_journaled_fits_and_gives_the_same_rows(
    binary_data, tmp_path, monkeypatch
):
    X, y = binary_data
    fitted = _recording(monkeypatch)
    first = compare(X, y, journal=tmp_path / "j", **SMALL)
    assert len(fitted) == 4 and len(os.listdir(tmp_path / "j" / "fits")) == 4
    # one fit lost (in flight when the run was killed): only that one is fitted again
    os.remove(tmp_path / "j" / "fits" / sorted(os.listdir(tmp_path / "j" / "fits"))[0])
    fitted.clear()
    journal = Journal(tmp_path / "j")
    again = compare(X, y, journal=journal, **SMALL)
    assert len(fitted) == 1 and journal.resumed == 3
    assert not any("journal holds" in line for line in first.plan_lines)
    note = [line for line in again.plan_lines if "journal holds" in line]
    assert note and note[0].startswith("The journal holds 3 finished fit(s) of this run")
    assert "may take less" in note[0]
    assert _rows(again) == _rows(first)
    for a, b in zip(first.rows, again.rows, strict=True):
        np.testing.assert_array_equal(a.y_pred, b.y_pred)
    np.testing.assert_array_equal(first.proba["ce"], again.proba["ce"])
    assert first.histories == again.histories


def test_other_settings_or_images_are_refused_unless_restart(tmp_path, monkeypatch):
    X, y = load_image_folder(make_folder(tmp_path / "data", {"a": 12, "b": 6}))
    kwargs = dict(SMALL, methods=["ce"])
    compare(X, y, journal=tmp_path / "j", **kwargs)
    with pytest.raises(JournalMismatch, match=r"j' holds a compare run on other settings"):
        compare(X, y, journal=tmp_path / "j", **dict(kwargs, cv=3))
    os.utime(X[0], ns=(0, 0))  # an image changed on disk
    with pytest.raises(JournalMismatch, match="other images"):
        compare(X, y, journal=tmp_path / "j", **kwargs)
    fitted = _recording(monkeypatch)
    compare(X, y, journal=tmp_path / "j", restart=True, **kwargs)
    assert len(fitted) == 2  # afresh: nothing of the old run was reused


def test_out_ownership_and_stale_outputs(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(OutputRefused, match=r"--out '.*foreign' is not empty \(notes.txt\)"):
        compare_journal(str(foreign))
    journal = compare_journal(str(foreign), overwrite=True)
    (foreign / "model").mkdir()
    (foreign / "results.csv").write_text("old")
    journal.open("data", "settings")
    assert sorted(os.listdir(foreign)) == ["journal", "notes.txt"]  # stale outputs gone
    assert set(OUTPUTS) >= {"model", "results.csv", "report.md"}
    # a folder with a journal is this run (resumed) or another (refused by the journal)
    assert compare_journal(str(foreign)).read_identity()["data"] == "data"
    with pytest.raises(JournalMismatch):
        compare_journal(str(foreign)).open("other data", "settings")


def test_cli_refuses_a_foreign_out_before_any_work(binary_folder, tmp_path, capsys, monkeypatch):
    def no_compare(*args, **kwargs):
        raise AssertionError("compare ran")

    monkeypatch.setattr(compare_module, "compare", no_compare)
    out = tmp_path / "out"
    out.mkdir()
    (out / "thesis.tex").write_text("x")
    assert main(["compare", binary_folder, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"--out {str(out)!r} is not empty (thesis.tex)" in err and "--overwrite" in err


# -- workers -------------------------------------------------------------------------------


class _NoGeneratorThreads(ThreadingBackend):
    """A backend that, like Ray's, cannot return results one by one (one thread at a time:
    fits in threads of one process would share torch's global random state)."""

    supports_retrieve_callback = False

    def effective_n_jobs(self, n_jobs):
        return 1


def _tasks(binary_data, names=("ce", "over")):
    rows = np.arange(len(binary_data[0]))
    test, train = rows[::3], np.setdiff1d(rows, rows[::3])
    params = {**TINY, "threshold": "auto"}
    params = {**params, "sampler": None}
    return [FitTask(i, name, params, train, test, 0) for i, name in enumerate(names)]


def test_a_backend_without_generators_falls_back_and_scores_as_one_worker(binary_data):
    X, y = binary_data
    tasks = _tasks(binary_data, ("a", "b", "c"))
    alone = {r.index: r for r in run_fits(tasks, X, y, n_jobs=1)}
    register_parallel_backend("no_generator_threads", _NoGeneratorThreads)
    with parallel_config(backend="no_generator_threads"):
        shared = {r.index: r for r in run_fits(tasks, X, y, n_jobs=2)}
    assert sorted(shared) == [0, 1, 2]
    for i in alone:
        np.testing.assert_array_equal(alone[i].proba, shared[i].proba)
        np.testing.assert_array_equal(alone[i].decision, shared[i].decision)


def test_a_dead_worker_costs_only_the_unfinished_fits(binary_data, monkeypatch):
    X, y = binary_data
    tasks = _tasks(binary_data, ("a", "b", "c"))
    calls = []

    def dying(calls_, n_jobs):
        calls_ = list(calls_)
        calls.append(len(calls_))
        if len(calls) == 1:  # the first round: one fit back, then a worker is killed
            func, args, kwargs = calls_[0]
            yield func(*args, **kwargs)
            raise TerminatedWorkerError("A worker process was terminated (SIGKILL)")
        for func, args, kwargs in calls_:
            yield func(*args, **kwargs)

    monkeypatch.setattr(parallel_module, "_results", dying)
    said = []
    results = list(run_fits(tasks, X, y, n_jobs=2, log=said.append))
    assert sorted(r.index for r in results) == [0, 1, 2]  # each once
    assert calls == [3, 2] and "A worker process died (1 fit(s) finished)" in said[0]

    def always_dying(calls_, n_jobs):
        raise TerminatedWorkerError("killed")
        yield

    monkeypatch.setattr(parallel_module, "_results", always_dying)
    with pytest.raises(RuntimeError, match="Worker processes died 3 times.*every finished fit"):
        list(run_fits(tasks, X, y, n_jobs=2, max_worker_deaths=2))


def test_each_test_fold_is_predicted_once_and_decided_as_predict(binary_data, monkeypatch):
    X, y = binary_data
    (task,) = _tasks(binary_data, ("ce",))
    passes = []
    original = ImageImbalanceClassifier.predict_proba

    def counting(self, X):
        passes.append(len(X))
        return original(self, X)

    def no_predict(self, X):
        raise AssertionError("predict ran a second pass")

    monkeypatch.setattr(ImageImbalanceClassifier, "predict_proba", counting)
    monkeypatch.setattr(ImageImbalanceClassifier, "predict", no_predict)
    result = fit_task(task, X, y, 1, None, 0)
    assert result.error is None and passes.count(len(task.test)) == 1
    monkeypatch.undo()
    clf = ImageImbalanceClassifier(**task.params).fit(X[task.train], y[task.train])
    np.testing.assert_array_equal(result.decision, clf.predict(X[task.test]))


# -- as the user does: a real command, a real signal ---------------------------------------

MAX_EPOCHS = 6
COMMAND = [
    *("--backbone", "small_cnn", "--weights", "none", "--image-size", "16", "--batch-size", "16"),
    *("--max-epochs", str(MAX_EPOCHS), "--methods", "ce,over", "--cv", "2", "--no-refit"),
    *("--device", "cpu"),
]


def _command(data, out, *extra):
    return [
        sys.executable,
        "-m",
        "imbal_estimators",
        "compare",
        data,
        "--out",
        out,
        *COMMAND,
        *extra,
    ]


def _fits(out):
    return sorted(glob.glob(os.path.join(out, "journal", "fits", "*.npz")))


def _stop_part_way(data, out, signum, *extra, kill_group=False, after=1):
    """Start compare, wait for ``after`` journaled fits, send ``signum``; return
    (exit status, seconds to exit, stderr)."""
    process = subprocess.Popen(
        _command(data, out, *extra),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=kill_group,
    )
    deadline = time.monotonic() + 300
    while len(_fits(out)) < after and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "compare ended before its first fit was journaled"
    time.sleep(0.3)  # into the next fit
    sent = time.monotonic()
    if kill_group:
        os.killpg(process.pid, signum)
    else:
        process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    return process.returncode, time.monotonic() - sent, err


def _scores(out):
    with open(os.path.join(out, "results.csv"), newline="") as file:
        return [
            {k: v for k, v in row.items() if k != "fit_seconds"} for row in csv.DictReader(file)
        ]


def _epochs(path):
    with np.load(path) as data:
        return len(json.loads(str(data["meta"]))["history"]["epochs"])


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The command's results.csv without any stop."""
    root = tmp_path_factory.mktemp("session")
    data = make_folder(root / "data", {"cat": 24, "dog": 12})
    out = str(root / "whole")
    done = subprocess.run(_command(data, out), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return data, _scores(out)


@pytest.mark.slow  # three commands that import torch: a minute on 2 shared cores
@pytest.mark.parametrize(
    "signum, status, n_jobs", [(signal.SIGINT, 130, "1"), (signal.SIGTERM, 143, "2")]
)
def test_a_signal_stops_compare_within_seconds_and_the_rerun_resumes(
    uninterrupted, tmp_path, signum, status, n_jobs
):
    data, expected = uninterrupted
    out = str(tmp_path / "out")
    code, seconds, err = _stop_part_way(data, out, signum, "--n-jobs", n_jobs)
    assert code == status and seconds < 10, (code, seconds, err)
    kept = _fits(out)
    assert f"interrupted; {len(kept)} finished fit(s) are kept in {out}/journal" in err
    assert "run the same command again to resume" in err
    assert 1 <= len(kept) < 4
    # nothing half-trained was kept: every journaled fit ran all its epochs
    assert all(_epochs(path) == MAX_EPOCHS for path in kept)
    assert sorted(os.listdir(out)) == ["journal"]  # no report, no results of a partial run
    again = subprocess.run(
        _command(data, out, "--n-jobs", n_jobs), capture_output=True, text=True, timeout=600
    )
    assert again.returncode == 0, again.stderr
    assert f"Resumed {len(kept)} finished fit(s)" in again.stderr + again.stdout
    assert _scores(out) == expected


@pytest.mark.slow
def test_kill_9_of_the_whole_compare_redoes_at_most_the_fit_in_flight(uninterrupted, tmp_path):
    data, expected = uninterrupted
    out = str(tmp_path / "out")
    code, _, _ = _stop_part_way(data, out, signal.SIGKILL, kill_group=True, after=2)
    assert code == -signal.SIGKILL
    kept = len(_fits(out))
    assert kept >= 2  # every fit that finished before the kill is on disk
    again = subprocess.run(_command(data, out), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    # the rerun takes every finished fit from the journal: only the one in flight (and those
    # not started) are fitted
    assert f"Resumed {kept} finished fit(s) of confirm" in again.stdout
    assert f"; {4 - kept} to go." in again.stdout
    assert _scores(out) == expected


@pytest.mark.slow
def test_fit_stopped_by_ctrl_c_saves_nothing(binary_folder, tmp_path):
    model = tmp_path / "model"
    command = [sys.executable, "-m", "imbal_estimators", "fit", binary_folder, "--out", str(model)]
    command += COMMAND[:8] + ["--max-epochs", "500", "--device", "cpu", "--ensemble", "2"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    # training has begun once the images are being read
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not _reads_images(process.pid, binary_folder):
        time.sleep(0.01)
    time.sleep(1.0)
    sent = time.monotonic()
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130 and time.monotonic() - sent < 10, err
    assert "fit: interrupted; nothing was saved." in err
    assert not model.exists()


def _reads_images(pid, folder):
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        pytest.skip("needs /proc to see when training begins")
    for name in names:
        try:
            if os.readlink(f"/proc/{pid}/fd/{name}").startswith(str(folder)):
                return True
        except OSError:
            continue
    return False


def _snippet(marker):
    import re

    with open(os.path.join(os.path.dirname(__file__), "..", "docs", "cli.md")) as file:
        blocks = re.findall(r"```python\n(.*?)```", file.read(), re.S)
    return next(block for block in blocks if marker in block)


@pytest.mark.slow  # a dask cluster and a Ray instance start, each with two worker processes
@pytest.mark.parametrize("backend", ["dask", "ray"])
def test_the_dask_and_ray_snippets_give_the_scores_of_one_worker(backend, tmp_path):
    pytest.importorskip({"dask": "dask.distributed", "ray": "ray.util.joblib"}[backend])
    make_folder(tmp_path / "data" / "train", {"a": 20, "b": 10})
    script = tmp_path / "snippet.py"
    script.write_text(_snippet(f'parallel_config(backend="{backend}")'))
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=1800
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # the same script on one worker (in this process of the script: the same torch threads)
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "data").symlink_to(tmp_path / "data")
    snippet = _snippet('parallel_config(backend="dask")')
    assert "n_jobs=-1" in snippet
    (alone / "one.py").write_text(snippet.replace("n_jobs=-1", "n_jobs=1"))
    done = subprocess.run(
        [sys.executable, "one.py"], cwd=alone, capture_output=True, text=True, timeout=1800
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert _scores(tmp_path) == _scores(alone)
