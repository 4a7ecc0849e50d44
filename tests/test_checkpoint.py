"""checkpoint_dir: atomic, checksummed per-epoch checkpoints, resuming after a kill, locks,
and determinism."""

import errno
import glob
import io
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import make_folder
from conftest import tiny_classifier as make
from skorch.callbacks import Callback, EarlyStopping, LRScheduler

import imbal_estimators.io.atomic as atomic_module
from imbal_estimators import load_image_folder
from imbal_estimators.io.lock import FileLock
from imbal_estimators.training.checkpoint import (
    CheckpointError,
    CheckpointLockedError,
    CheckpointMismatchError,
    read_checkpoint,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(REPO, "tests")

# Slow enough learning that epochs 3 and 4 still change the predictions.
RUN = dict(max_epochs=4, lr=0.01, batch_size=8, random_state=3)


def checkpoint_file(directory):
    """The one checkpoint in ``directory`` (``checkpoint-<data key>.pt``)."""
    files = glob.glob(os.path.join(str(directory), "checkpoint-*.pt"))
    assert len(files) == 1, files
    return files[0]


def _proba_and_losses(clf, X):
    return clf.predict_proba(X), [row["train_loss"] for row in clf.history]


class Marker(Callback):
    """A user's callback with state: it counts the epochs it saw and sets the learning rate
    from that count (a hand-written schedule, fourfold per epoch). A resume must restore the
    count."""

    def __init__(self, path=None):
        self.path = path

    def initialize(self):
        self.seen_ = 0
        self.log_ = []
        return self

    def on_epoch_begin(self, net, **kwargs):
        for group in net.optimizer_.param_groups:
            group["lr"] = 2e-3 * 4**self.seen_

    def on_batch_end(self, net, training=False, **kwargs):
        if training and self.path:
            with open(self.path, "a") as file:
                file.write(f"{len(net.history)}\n")

    def on_epoch_end(self, net, **kwargs):
        self.seen_ += 1
        self.log_.append(float(net.history[-1]["train_loss"]))


class Killed(BaseException):
    """Stands for SIGKILL in the fast variant: nothing after it runs."""


class KillInEpoch3(Callback):
    def on_batch_end(self, net, training=False, **kwargs):
        if training and len(net.history) == 3 and len(net.history[-1]["batches"]) == 2:
            raise Killed


CHILD = """
import os, sys
sys.path.insert(0, {tests!r})
import numpy as np
from conftest import tiny_classifier
from test_checkpoint import Marker
X = np.array({X!r}, dtype=object)
y = np.array({y!r})
clf = tiny_classifier(**{run!r}, checkpoint_dir=sys.argv[1] or None,
                      callbacks=[("marker", Marker({marker!r}))])
clf.fit(X, y)
np.save(sys.argv[2], clf.predict_proba(X))
print("resumed from", clf.resumed_from_epoch_)
"""


@pytest.mark.slow  # three fresh Python processes import torch: 15-60 s with the load
def test_sigkill_in_epoch_3_then_the_same_command_equals_an_uninterrupted_run(
    binary_data, tmp_path
):
    """The acceptance test: the command runs in a child, which is killed with SIGKILL from
    outside in epoch 3 of 4; the same command again resumes. A user callback with state
    (Marker) is in the estimator."""
    X, y = binary_data
    checkpoint_dir, marker = tmp_path / "ckpt", tmp_path / "progress"
    script = CHILD.format(
        tests=TESTS, X=list(map(str, X)), y=y.tolist(), run=RUN, marker=str(marker)
    )
    env = dict(os.environ, PYTHONPATH=REPO)

    def command(directory, out, **kwargs):
        argv = [sys.executable, "-c", script, str(directory or ""), str(tmp_path / out)]
        return subprocess.Popen(argv, env=env, cwd=REPO, **kwargs)

    child = command(checkpoint_dir, "killed.npy", stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while child.poll() is None and time.monotonic() < deadline:
        if marker.exists() and "3\n" in marker.read_text():
            os.kill(child.pid, signal.SIGKILL)
            break
        time.sleep(0.005)
    child.wait()
    assert child.returncode == -signal.SIGKILL, child.stderr.read().decode()[-2000:]
    assert read_checkpoint(checkpoint_file(checkpoint_dir))["epoch"] == 2

    for directory, out in [(checkpoint_dir, "resumed.npy"), (None, "uninterrupted.npy")]:
        finished = command(directory, out, stdout=subprocess.PIPE)
        assert finished.wait(timeout=300) == 0
    resumed, uninterrupted = (np.load(tmp_path / n) for n in ("resumed.npy", "uninterrupted.npy"))
    np.testing.assert_allclose(resumed, uninterrupted, rtol=1e-5, atol=1e-6)
    assert read_checkpoint(checkpoint_file(checkpoint_dir))["epoch"] == 4


def test_kill_in_epoch_3_then_resume_equals_an_uninterrupted_run_with_user_callbacks(
    binary_data, tmp_path
):
    """The fast variant, in this process: the fit dies in epoch 3 (nothing after the
    exception runs) and a new estimator with a new Marker resumes it."""
    X, y = binary_data
    callbacks = [("marker", Marker()), ("kill", KillInEpoch3())]
    with pytest.raises(Killed):
        make(**RUN, checkpoint_dir=tmp_path, callbacks=callbacks).fit(X, y)
    state = read_checkpoint(checkpoint_file(tmp_path))
    assert state["epoch"] == 2 and state["callbacks"]["marker"]["attributes"]["seen_"] == 2
    best_valid_loss = min(row["valid_loss"] for row in json.loads(state["history"]))
    assert state["callbacks"]["valid_loss"]["attributes"]["best_score_"] == best_valid_loss

    marker = Marker()
    resumed = make(**RUN, checkpoint_dir=tmp_path, callbacks=[("marker", marker)]).fit(X, y)
    assert resumed.resumed_from_epoch_ == 2
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3, 4]
    assert marker.seen_ == 4 and len(marker.log_) == 4  # its state went on from epoch 2

    uninterrupted = make(**RUN, callbacks=[("marker", Marker())]).fit(X, y)
    proba, losses = _proba_and_losses(resumed, X)
    expected_proba, expected_losses = _proba_and_losses(uninterrupted, X)
    np.testing.assert_allclose(proba, expected_proba, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(losses, expected_losses, rtol=1e-5)
    assert resumed.best_epoch_ == uninterrupted.best_epoch_
    # skorch's own scoring callbacks resume their best score too (a Checkpoint on
    # valid_loss_best would otherwise save and reload another epoch)
    assert resumed.history[:, "valid_loss_best"] == uninterrupted.history[:, "valid_loss_best"]
    assert losses[2] > 0 and losses[3] > 0  # epochs 3 and 4 still learned


def test_resume_continues_to_max_epochs_in_total(binary_data, tmp_path, capsys):
    X, y = binary_data
    first = make(**{**RUN, "max_epochs": 2}, checkpoint_dir=tmp_path).fit(X, y)
    assert first.resumed_from_epoch_ == 0 and len(first.history) == 2
    resumed = make(**RUN, checkpoint_dir=tmp_path, verbose=1).fit(X, y)
    out = capsys.readouterr().out
    assert f"Resuming from {checkpoint_file(tmp_path)}: 2 of 4 epochs done." in out
    assert len(resumed.history) == 4
    np.testing.assert_array_equal(resumed.predict_proba(X), make(**RUN).fit(X, y).predict_proba(X))
    # a finished run resumes with nothing left to do and gives the same model
    again = make(**RUN, checkpoint_dir=tmp_path).fit(X, y)
    assert again.resumed_from_epoch_ == 4 and len(again.history) == 4
    np.testing.assert_array_equal(again.predict_proba(X), resumed.predict_proba(X))


def test_resume_with_random_state_none_uses_the_checkpoint_seeds(binary_data, tmp_path):
    X, y = binary_data
    params = {**RUN, "random_state": None}
    first = make(**{**params, "max_epochs": 2}, checkpoint_dir=tmp_path).fit(X, y)
    resumed = make(**params, checkpoint_dir=tmp_path).fit(X, y)
    assert resumed.resumed_from_epoch_ == 2
    assert resumed.torch_seed_ == first.torch_seed_
    np.testing.assert_array_equal(resumed.valid_indices_, first.valid_indices_)


def test_scheduler_and_early_stopping_state_survive_a_resume(binary_data, tmp_path):
    X, y = binary_data

    def callbacks():
        return [
            ("lr", LRScheduler(policy="StepLR", step_size=1, gamma=0.5)),
            ("stop", EarlyStopping(monitor="valid_loss", patience=2, threshold=0.5)),
        ]

    params = {**RUN, "max_epochs": 8, "lr": 0.05}
    uninterrupted = make(**params, callbacks=callbacks()).fit(X, y)
    n_epochs = len(uninterrupted.history)
    assert 3 < n_epochs < 8  # early stopping ended it
    make(**{**params, "max_epochs": 2}, callbacks=callbacks(), checkpoint_dir=tmp_path).fit(X, y)
    state = read_checkpoint(checkpoint_file(tmp_path))
    assert state["callbacks"]["lr"]["scheduler"]["last_epoch"] == 2
    assert set(state["callbacks"]) >= {"keep_best", "lr", "stop", "valid_loss"}
    resumed = make(**params, callbacks=callbacks(), checkpoint_dir=tmp_path).fit(X, y)
    assert len(resumed.history) == n_epochs
    np.testing.assert_array_equal(resumed.predict_proba(X), uninterrupted.predict_proba(X))
    assert (
        resumed.optimizer_.param_groups[0]["lr"] == uninterrupted.optimizer_.param_groups[0]["lr"]
    )


@pytest.mark.parametrize(
    "extra, named",
    [
        ({"backbone": "resnet18"}, "backbone"),
        ({"lr": 0.02}, "lr"),
        ({"train_split": 0.3}, "train_split"),
    ],
    ids=["backbone", "lr", "train_split"],
)
def test_incompatible_checkpoint_is_refused_naming_what_differs(
    binary_data, tmp_path, extra, named
):
    X, y = binary_data
    make(**{**RUN, "max_epochs": 1}, checkpoint_dir=tmp_path).fit(X, y)
    clf = make(**{**RUN, **extra}, checkpoint_dir=tmp_path)
    with pytest.raises(CheckpointMismatchError, match=rf"differs in: .*\b{named}\b") as info:
        clf.fit(X, y)
    assert checkpoint_file(tmp_path) in str(info.value)
    assert not clf.initialized_


def test_other_data_or_classes_get_a_checkpoint_of_their_own(binary_data, tmp_path):
    X, y = binary_data
    make(**{**RUN, "max_epochs": 1}, checkpoint_dir=tmp_path).fit(X, y)
    for X2, y2 in [(X[:-3], y[:-3]), (X, np.where(y == "cat", "kitty", "dog"))]:
        other = make(**{**RUN, "max_epochs": 1}, checkpoint_dir=tmp_path).fit(X2, y2)
        assert other.resumed_from_epoch_ == 0
    assert len(glob.glob(str(tmp_path / "checkpoint-*.pt"))) == 3
    assert make(**{**RUN, "max_epochs": 1}, checkpoint_dir=tmp_path).fit(X, y).resumed_from_epoch_


def test_cross_val_score_with_checkpoint_dir_gives_each_fold_its_own(binary_data, tmp_path):
    from sklearn.model_selection import cross_val_score, cross_validate

    X, y = binary_data
    clf = make(**{**RUN, "max_epochs": 1}, checkpoint_dir=str(tmp_path))
    scores = cross_val_score(clf, X, y, cv=3, error_score="raise")
    assert np.all(np.isfinite(scores))
    assert len(glob.glob(str(tmp_path / "checkpoint-*.pt"))) == 3
    again = cross_validate(clf, X, y, cv=3, error_score="raise", return_estimator=True)
    assert [e.resumed_from_epoch_ for e in again["estimator"]] == [1, 1, 1]
    np.testing.assert_array_equal(again["test_score"], scores)


def test_fewer_max_epochs_than_the_checkpoint_is_refused(binary_data, tmp_path):
    X, y = binary_data
    make(**{**RUN, "max_epochs": 2}, checkpoint_dir=tmp_path).fit(X, y)
    with pytest.raises(CheckpointMismatchError, match="2 completed epochs, more than max_epochs=1"):
        make(**{**RUN, "max_epochs": 1}, checkpoint_dir=tmp_path).fit(X, y)


def test_resume_after_an_image_changed_is_refused(tmp_path):
    X, y = load_image_folder(make_folder(tmp_path / "data", {"a": 12, "b": 6}, size=16))
    make(**{**RUN, "max_epochs": 1}, checkpoint_dir=tmp_path / "ckpt").fit(X, y)
    changed = X[4]
    os.utime(changed, ns=(time.time_ns(), os.stat(changed).st_mtime_ns + 10**9))
    with pytest.raises(CheckpointMismatchError, match=rf"1 file\(s\) changed.*X\[4\] '{changed}'"):
        make(**{**RUN, "max_epochs": 2}, checkpoint_dir=tmp_path / "ckpt").fit(X, y)


def test_unwritable_checkpoint_dir_fails_before_training(binary_data, tmp_path):
    X, y = binary_data
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    clf = make(**RUN, checkpoint_dir=str(blocker / "ckpt"))
    with pytest.raises(CheckpointError, match=f"checkpoint_dir '{blocker / 'ckpt'}' cannot be"):
        clf.fit(X, y)
    assert not clf.initialized_


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_failing_rename_raises_at_the_first_save(binary_data, tmp_path, monkeypatch):
    X, y = binary_data
    monkeypatch.setattr(atomic_module.os, "replace", _disk_full)
    clf = make(**RUN, checkpoint_dir=tmp_path)
    with pytest.raises(CheckpointError, match="Cannot write the checkpoint .*No space left"):
        clf.fit(X, y)
    assert len(clf.history) == 1  # it stopped at the end of the first epoch
    assert [n for n in os.listdir(tmp_path) if not n.endswith(".lock")] == []  # no temporary


class _FullDisk(io.RawIOBase):
    """A file that takes ``room`` bytes and then fails with ENOSPC, as a full disk does."""

    def __init__(self, file, room):
        self.file, self.room = file, room

    def write(self, data):
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return self.file.write(data)

    def __getattr__(self, name):
        return getattr(self.file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()


@pytest.mark.parametrize("room", [0, 100, 5000], ids=["at once", "in the header", "later"])
def test_a_full_disk_is_a_checkpoint_error(binary_data, tmp_path, monkeypatch, room):
    """However far the write got: torch.save wraps the OSError in a RuntimeError of its
    zip writer, and the estimator says CheckpointError with the disk's reason."""
    X, y = binary_data
    make(**{**RUN, "max_epochs": 1}, checkpoint_dir=tmp_path).fit(X, y)
    path = checkpoint_file(tmp_path)
    before = open(path, "rb").read()
    real = atomic_module.os.fdopen
    monkeypatch.setattr(atomic_module.os, "fdopen", lambda *a: _FullDisk(real(*a), room))
    clf = make(**RUN, checkpoint_dir=tmp_path)
    with pytest.raises(CheckpointError, match=f"Cannot write the checkpoint '{path}'.*No space"):
        clf.fit(X, y)
    assert open(path, "rb").read() == before  # the previous checkpoint is whole
    monkeypatch.setattr(torch, "save", _disk_full)
    with pytest.raises(CheckpointError, match="Cannot write the checkpoint .*No space left"):
        make(**RUN, checkpoint_dir=tmp_path).fit(X, y)


def test_a_failed_write_keeps_the_previous_checkpoint(binary_data, tmp_path):
    X, y = binary_data
    make(**{**RUN, "max_epochs": 1}, checkpoint_dir=tmp_path).fit(X, y)
    path = checkpoint_file(tmp_path)
    before = open(path, "rb").read()

    def killed_mid_write(file):
        file.write(b"half a checkpoint")
        raise OSError(5, "Input/output error")

    with pytest.raises(OSError, match="Input/output error"):
        atomic_module.atomic_write(path, killed_mid_write)
    assert open(path, "rb").read() == before
    assert sorted(os.listdir(tmp_path)) == sorted([os.path.basename(path), _lock_name(path)])


def _lock_name(path):
    return os.path.basename(path)[: -len(".pt")] + ".lock"


def test_a_temporary_file_left_by_a_kill_does_not_break_the_resume(binary_data, tmp_path):
    X, y = binary_data
    make(**{**RUN, "max_epochs": 1}, checkpoint_dir=tmp_path).fit(X, y)
    stale = f"{checkpoint_file(tmp_path)}.x1y2z3.tmp"
    open(stale, "wb").write(b"torn")
    resumed = make(**{**RUN, "max_epochs": 2}, checkpoint_dir=tmp_path).fit(X, y)
    assert resumed.resumed_from_epoch_ == 1
    assert not os.path.exists(stale)


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[: len(data) // 2] + os.urandom(4096) + data[len(data) // 2 + 4096 :],
        lambda data: data[:-1000],
        lambda data: data[:100],
        lambda data: b"not a checkpoint",
    ],
    ids=["4 KiB of garbage in the middle", "truncated", "only its start", "another file"],
)
def test_a_damaged_checkpoint_is_refused_naming_the_file(binary_data, tmp_path, damage):
    X, y = binary_data
    make(**{**RUN, "max_epochs": 1}, checkpoint_dir=tmp_path).fit(X, y)
    path = checkpoint_file(tmp_path)
    data = open(path, "rb").read()
    open(path, "wb").write(damage(data))
    clf = make(**RUN, checkpoint_dir=tmp_path)
    with pytest.raises(CheckpointError, match=f"checkpoint '{path}' is damaged.*not resumed"):
        clf.fit(X, y)
    assert not clf.initialized_


def test_the_checkpoint_holds_tensors_and_containers_only(binary_data, tmp_path):
    from imbal_estimators.io.checksummed import read_checksummed

    X, y = binary_data
    make(**{**RUN, "max_epochs": 1}, checkpoint_dir=tmp_path).fit(X, y)
    payload = read_checksummed(checkpoint_file(tmp_path))
    state = torch.load(io.BytesIO(payload), weights_only=True)  # no pickled code
    assert state["epoch"] == 1
    assert json.loads(state["history"])[0]["epoch"] == 1
    assert set(json.loads(state["fingerprint"])) == {"params", "classes", "data", "split"}
    assert state["images"].shape == (len(X), 2)


# ------------------------------------------------------------------ one process at a time


def _hold_lock(path, ready):
    lock = FileLock(path).acquire()  # held while the object lives
    open(ready, "w").close()
    time.sleep(600)
    lock.release()


def test_a_second_process_is_refused_and_a_dead_one_s_lock_is_taken_over(binary_data, tmp_path):
    X, y = binary_data
    make(**{**RUN, "max_epochs": 1}, checkpoint_dir=tmp_path / "ckpt").fit(X, y)
    lock = checkpoint_file(tmp_path / "ckpt")[: -len(".pt")] + ".lock"
    ready = tmp_path / "ready"
    holder = multiprocessing.get_context("fork").Process(target=_hold_lock, args=(lock, ready))
    holder.start()
    try:
        while not ready.exists():
            assert holder.is_alive()
            time.sleep(0.01)
        clf = make(**{**RUN, "max_epochs": 2}, checkpoint_dir=tmp_path / "ckpt")
        with pytest.raises(CheckpointLockedError, match=f"in use by process {holder.pid}"):
            clf.fit(X, y)
        assert not clf.initialized_
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.join()
    assert str(holder.pid) in open(lock).read()  # a dead process's lock file stays ...
    resumed = make(**{**RUN, "max_epochs": 2}, checkpoint_dir=tmp_path / "ckpt").fit(X, y)
    assert resumed.resumed_from_epoch_ == 1  # ... and is taken over


def test_a_failed_fit_gives_its_lock_back(binary_data, tmp_path):
    X, y = binary_data
    clf = make(**RUN, checkpoint_dir=tmp_path, callbacks=[("kill", KillInEpoch3())])
    with pytest.raises(Killed):
        clf.fit(X, y)
    with pytest.raises(Killed):  # the same estimator again: it resumes, so dies in epoch 3
        clf.fit(X, y)
    assert make(**RUN, checkpoint_dir=tmp_path).fit(X, y).resumed_from_epoch_ == 2


# ------------------------------------------------------------------ determinism
# Same random_state, same predictions: see
# test_classifier.py::test_same_random_state_gives_same_predictions, and the resume tests above.


def test_random_state_none_stays_random(binary_data):
    X, y = binary_data
    params = {**RUN, "max_epochs": 1, "random_state": None}
    first, second = (make(**params).fit(X, y) for _ in range(2))
    assert first.torch_seed_ != second.torch_seed_
    assert not np.array_equal(first.predict_proba(X), second.predict_proba(X))


def test_a_fit_that_failed_before_training_does_not_block_the_next(tmp_path):
    """The failed fit's traceback (kept here, as a notebook keeps sys.last_traceback) still
    references its lock; the next fit of this process on the same data takes it over."""
    from imbal_estimators import ImageFileError

    X, y = load_image_folder(make_folder(tmp_path / "data", {"a": 12, "b": 6}, size=16))
    good = open(X[3], "rb").read()
    open(X[3], "wb").write(b"not an image")
    with pytest.raises(ImageFileError) as kept:
        make(**{**RUN, "max_epochs": 1}, checkpoint_dir=tmp_path / "ckpt").fit(X, y)
    open(X[3], "wb").write(good)
    clf = make(**{**RUN, "max_epochs": 1}, checkpoint_dir=tmp_path / "ckpt").fit(X, y)
    assert clf.resumed_from_epoch_ == 0 and kept.value is not None


class FitAgainWhileTraining(Callback):
    """Starts a second fit on the same data and checkpoint_dir from inside the first."""

    def __init__(self, X, y, directory):
        self.X, self.y, self.directory = X, y, directory

    def on_epoch_end(self, net, **kwargs):
        try:
            make(**{**RUN, "max_epochs": 1}, checkpoint_dir=self.directory).fit(self.X, self.y)
        except CheckpointLockedError as exc:
            self.error_ = str(exc)


def test_a_second_fit_of_this_process_is_refused_while_the_first_trains(binary_data, tmp_path):
    X, y = binary_data
    probe = FitAgainWhileTraining(X, y, str(tmp_path))
    make(**{**RUN, "max_epochs": 1}, checkpoint_dir=tmp_path, callbacks=[probe]).fit(X, y)
    assert f"in use by process {os.getpid()}" in probe.error_
