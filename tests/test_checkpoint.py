"""checkpoint_dir: atomic per-epoch checkpoints, resuming after a kill, and determinism."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from conftest import tiny_classifier as make
from skorch.callbacks import EarlyStopping, LRScheduler

import imbal_estimators.io.atomic as atomic_module
from imbal_estimators.training.checkpoint import (
    CHECKPOINT_FILE,
    CheckpointError,
    CheckpointMismatchError,
    read_checkpoint,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(REPO, "tests")

# Slow enough learning that epochs 3 and 4 still change the predictions.
RUN = dict(max_epochs=4, lr=0.01, batch_size=8, random_state=3)


def _proba_and_losses(clf, X):
    return clf.predict_proba(X), [row["train_loss"] for row in clf.history]


@pytest.mark.slow  # a fresh Python process imports torch: 5-30 s depending on the machine's load
def test_sigkill_in_epoch_3_then_resume_equals_an_uninterrupted_run(binary_data, tmp_path):
    """The acceptance test: a real process killed with SIGKILL in the middle of epoch 3 of 4."""
    X, y = binary_data
    checkpoint_dir = tmp_path / "ckpt"
    child = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {TESTS!r})
        import numpy as np
        from conftest import tiny_classifier
        from skorch.callbacks import Callback

        class KillInEpoch3(Callback):
            def on_batch_end(self, net, training=False, **kwargs):
                if training and len(net.history) == 3 and len(net.history[-1]["batches"]) == 2:
                    os.kill(os.getpid(), signal.SIGKILL)

        X = np.array({list(map(str, X))!r}, dtype=object)
        y = np.array({y.tolist()!r})
        clf = tiny_classifier(**{RUN!r}, checkpoint_dir={str(checkpoint_dir)!r},
                              callbacks=[("kill", KillInEpoch3())])
        clf.fit(X, y)
        """
    )
    env = dict(os.environ, PYTHONPATH=REPO)
    result = subprocess.run(
        [sys.executable, "-c", child], env=env, capture_output=True, timeout=300, cwd=REPO
    )
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()[-2000:]
    assert read_checkpoint(checkpoint_dir / CHECKPOINT_FILE)["epoch"] == 2

    resumed = make(**RUN, checkpoint_dir=str(checkpoint_dir)).fit(X, y)
    assert resumed.resumed_from_epoch_ == 2
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3, 4]
    assert read_checkpoint(checkpoint_dir / CHECKPOINT_FILE)["epoch"] == 4

    uninterrupted = make(**RUN).fit(X, y)
    proba, losses = _proba_and_losses(resumed, X)
    expected_proba, expected_losses = _proba_and_losses(uninterrupted, X)
    np.testing.assert_array_equal(proba, expected_proba)
    assert losses == expected_losses
    assert resumed.best_epoch_ == uninterrupted.best_epoch_
    assert losses[2] > 0 and losses[3] > 0  # epochs 3 and 4 still learned


def test_resume_continues_to_max_epochs_in_total(binary_data, tmp_path, capsys):
    X, y = binary_data
    first = make(**{**RUN, "max_epochs": 2}, checkpoint_dir=tmp_path).fit(X, y)
    assert first.resumed_from_epoch_ == 0 and len(first.history) == 2
    resumed = make(**RUN, checkpoint_dir=tmp_path, verbose=1).fit(X, y)
    out = capsys.readouterr().out
    assert f"Resuming from {tmp_path / CHECKPOINT_FILE}: 2 of 4 epochs done." in out
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
    state = read_checkpoint(tmp_path / CHECKPOINT_FILE)
    assert state["callbacks"]["lr"]["scheduler"]["last_epoch"] == 2
    assert set(state["callbacks"]) >= {"keep_best", "lr", "stop"}
    resumed = make(**params, callbacks=callbacks(), checkpoint_dir=tmp_path).fit(X, y)
    assert len(resumed.history) == n_epochs
    np.testing.assert_array_equal(resumed.predict_proba(X), uninterrupted.predict_proba(X))
    assert (
        resumed.optimizer_.param_groups[0]["lr"] == uninterrupted.optimizer_.param_groups[0]["lr"]
    )


@pytest.mark.parametrize(
    "change, named",
    [
        (lambda X, y: (X, np.where(y == "cat", "kitty", "dog")), "classes"),
        (lambda X, y: (X[:-3], y[:-3]), "data"),
        (lambda X, y: (X, y, {"backbone": "resnet18"}), "backbone"),
        (lambda X, y: (X, y, {"lr": 0.02}), "lr"),
        (lambda X, y: (X, y, {"train_split": 0.3}), "train_split"),
    ],
    ids=["classes", "data", "backbone", "lr", "train_split"],
)
def test_incompatible_checkpoint_is_refused_naming_what_differs(
    binary_data, tmp_path, change, named
):
    X, y = binary_data
    make(**{**RUN, "max_epochs": 1}, checkpoint_dir=tmp_path).fit(X, y)
    X2, y2, *extra = change(X, y)
    clf = make(**{**RUN, **(extra[0] if extra else {})}, checkpoint_dir=tmp_path)
    with pytest.raises(CheckpointMismatchError, match=rf"differs in: .*\b{named}\b") as info:
        clf.fit(X2, y2)
    assert str(tmp_path / CHECKPOINT_FILE) in str(info.value)
    assert not clf.initialized_


def test_fewer_max_epochs_than_the_checkpoint_is_refused(binary_data, tmp_path):
    X, y = binary_data
    make(**{**RUN, "max_epochs": 2}, checkpoint_dir=tmp_path).fit(X, y)
    with pytest.raises(CheckpointMismatchError, match="2 completed epochs, more than max_epochs=1"):
        make(**{**RUN, "max_epochs": 1}, checkpoint_dir=tmp_path).fit(X, y)


def test_unwritable_checkpoint_dir_fails_before_training(binary_data, tmp_path):
    X, y = binary_data
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    clf = make(**RUN, checkpoint_dir=str(blocker / "ckpt"))
    with pytest.raises(CheckpointError, match=f"checkpoint_dir '{blocker / 'ckpt'}' cannot be"):
        clf.fit(X, y)
    assert not clf.initialized_


def test_a_failing_write_raises_at_the_first_save(binary_data, tmp_path, monkeypatch):
    X, y = binary_data

    def disk_full(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic_module.os, "replace", disk_full)
    clf = make(**RUN, checkpoint_dir=tmp_path)
    with pytest.raises(CheckpointError, match="Cannot write the checkpoint .*No space left"):
        clf.fit(X, y)
    assert len(clf.history) == 1  # it stopped at the end of the first epoch
    assert os.listdir(tmp_path) == []  # and left no temporary file behind


def test_a_failed_write_keeps_the_previous_checkpoint(binary_data, tmp_path, monkeypatch):
    X, y = binary_data
    make(**{**RUN, "max_epochs": 1}, checkpoint_dir=tmp_path).fit(X, y)
    before = (tmp_path / CHECKPOINT_FILE).read_bytes()

    def killed_mid_write(file):
        file.write(b"half a checkpoint")
        raise OSError(5, "Input/output error")

    with pytest.raises(OSError, match="Input/output error"):
        atomic_module.atomic_write(str(tmp_path / CHECKPOINT_FILE), killed_mid_write)
    assert (tmp_path / CHECKPOINT_FILE).read_bytes() == before
    assert os.listdir(tmp_path) == [CHECKPOINT_FILE]


def test_a_temporary_file_left_by_a_kill_does_not_break_the_resume(binary_data, tmp_path):
    X, y = binary_data
    make(**{**RUN, "max_epochs": 1}, checkpoint_dir=tmp_path).fit(X, y)
    stale = tmp_path / f"{CHECKPOINT_FILE}.x1y2z3.tmp"
    stale.write_bytes(b"torn")
    resumed = make(**{**RUN, "max_epochs": 2}, checkpoint_dir=tmp_path).fit(X, y)
    assert resumed.resumed_from_epoch_ == 1
    assert not stale.exists()


def test_a_corrupt_checkpoint_is_a_clear_error(binary_data, tmp_path):
    X, y = binary_data
    (tmp_path / CHECKPOINT_FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="Cannot read the checkpoint .*damaged.*Delete it"):
        make(**RUN, checkpoint_dir=tmp_path).fit(X, y)


def test_the_checkpoint_loads_without_unpickling_code(binary_data, tmp_path):
    X, y = binary_data
    make(**{**RUN, "max_epochs": 1}, checkpoint_dir=tmp_path).fit(X, y)
    state = torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)  # tensors and containers
    assert state["epoch"] == 1
    assert json.loads(state["history"])[0]["epoch"] == 1
    assert set(json.loads(state["fingerprint"])) == {"params", "classes", "data", "split"}


# ------------------------------------------------------------------ determinism
# Same random_state, same predictions: see
# test_classifier.py::test_same_random_state_gives_same_predictions, and the resume tests above.


def test_random_state_none_stays_random(binary_data):
    X, y = binary_data
    params = {**RUN, "max_epochs": 1, "random_state": None}
    first, second = (make(**params).fit(X, y) for _ in range(2))
    assert first.torch_seed_ != second.torch_seed_
    assert not np.array_equal(first.predict_proba(X), second.predict_proba(X))
