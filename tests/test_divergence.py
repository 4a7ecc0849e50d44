"""A fit whose loss or weights stop being finite is stopped and reported, never silent."""

import math

import numpy as np
import pytest
import torch
from conftest import tiny_classifier as make
from skorch.callbacks import Callback

from imbal_estimators.training.divergence import TrainingDivergedError


def test_a_diverging_fit_names_the_epoch_the_batch_and_the_learning_rate(binary_data):
    X, y = binary_data
    clf = make(optimizer=torch.optim.SGD, lr=1e12, max_epochs=3)
    with pytest.raises(
        TrainingDivergedError,
        match=r"training loss is nan at epoch 1, batch \d+ \(lr=1e\+12, optimizer SGD\)",
    ):
        clf.fit(X, y)


class NanFromEpoch2(torch.nn.Module):
    """Cross-entropy, NaN from the second epoch on (4 training + 1 validation batch/epoch).

    (SGD with lr=1e3 used to serve: its first epoch is finite, but at a training loss of
    7e17 it is a blow-up itself now.)"""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, logits, target):
        self.calls += 1
        loss = torch.nn.functional.cross_entropy(logits, target)
        return loss * math.nan if self.calls > 5 else loss


def test_restore_keeps_the_best_epoch_before_the_divergence_and_warns(binary_data):
    X, y = binary_data
    clf = make(loss=NanFromEpoch2(), max_epochs=4, callbacks__divergence__action="restore")
    with pytest.warns(UserWarning, match=r"diverged: .* at epoch 2, .*kept epoch 1"):
        clf.fit(X, y)
    assert clf.best_epoch_ == 1 and len(clf.history) == 1  # the diverged epoch is dropped
    proba = clf.predict_proba(X)
    assert np.all(np.isfinite(proba))
    np.testing.assert_allclose(proba.sum(axis=1), 1)


def test_restore_without_a_scored_epoch_still_raises(binary_data):
    X, y = binary_data
    clf = make(
        optimizer=torch.optim.SGD, lr=1e12, max_epochs=2, callbacks__divergence__action="restore"
    )
    with pytest.raises(TrainingDivergedError, match="epoch 1.*none to keep"):
        clf.fit(X, y)


class PoisonAfterTraining(Callback):
    """Sets one weight to NaN once epoch 1's training batches are done: every training
    loss was finite, the validation loss and the weights are not."""

    def __init__(self, last_batch=None):
        self.last_batch = last_batch

    def on_batch_begin(self, net, training=False, **kwargs):
        if not training and len(net.history) == 1:
            self._poison(net)

    def on_batch_end(self, net, training=False, **kwargs):
        batches = len(net.history[-1]["batches"])
        if training and len(net.history) == 1 and batches == self.last_batch:
            self._poison(net)

    @staticmethod
    def _poison(net):
        with torch.no_grad():
            net.module_.backbone.head.weight[0, 0] = math.nan


def test_non_finite_validation_loss_or_weights_are_divergence_too(binary_data):
    X, y = binary_data
    clf = make(max_epochs=2, callbacks=[("poison", PoisonAfterTraining())])
    with pytest.raises(TrainingDivergedError, match=r"validation loss is nan at epoch 1, batch \d"):
        clf.fit(X, y)
    assert all(
        np.isfinite(b["train_loss"]) for b in clf.history[-1]["batches"] if "train_loss" in b
    )
    # no validation split: 64 images in 4 batches of 16, poisoned after the 4th
    clf = make(batch_size=16, max_epochs=2, train_split=None, callbacks=[PoisonAfterTraining(4)])
    with pytest.raises(
        TrainingDivergedError, match="weights of 'backbone.head.weight' are not finite at epoch 1"
    ):
        clf.fit(X, y)


def test_the_check_can_be_turned_off(binary_data):
    X, y = binary_data
    clf = make(optimizer=torch.optim.SGD, lr=1e12, max_epochs=1, callbacks__divergence=None)
    clf.fit(X, y)
    assert np.isnan(clf.history[-1]["train_loss"])


def test_a_bad_action_is_named(binary_data):
    X, y = binary_data
    with pytest.raises(ValueError, match="'action' parameter of DivergenceCheck must be one of"):
        make(callbacks__divergence__action="ignore").fit(X, y)


def test_drw_epoch_after_max_epochs_warns_naming_both(binary_data):
    X, y = binary_data
    clf = make(alpha="balanced", drw_epoch=5, max_epochs=2)
    with pytest.warns(UserWarning, match="drw_epoch=5 is after .*max_epochs=2"):
        clf.fit(X, y)
    assert clf.history[:, "class_weights_on"] == [False, False]


class NanLoss(torch.nn.Module):
    def forward(self, logits, target):
        return torch.nn.functional.cross_entropy(logits, target) * math.nan


def test_a_solved_frozen_head_that_diverges_names_the_path_not_lr(binary_data):
    X, y = binary_data
    clf = make(freeze_backbone=True, loss=NanLoss())
    with pytest.raises(TrainingDivergedError) as error:
        clf.fit(X, y)
    message = str(error.value)
    assert "at point 1 of the frozen head's penalty path" in message
    assert "head_solver=None" in message
    assert "Lower lr" not in message and "optimizer AdamW" not in message


def test_drw_epoch_of_a_solved_frozen_head_counts_the_penalties_not_max_epochs(binary_data):
    import warnings

    from imbal_estimators.training.head_solver import HEAD_PENALTIES

    X, y = binary_data
    points = len(HEAD_PENALTIES)
    params = dict(freeze_backbone=True, loss="ldam", alpha="effective")
    with pytest.warns(UserWarning, match=rf"drw_epoch={points + 1} is after the last point .*"):
        clf = make(**params, drw_epoch=points + 1, max_epochs=2 * points).fit(X, y)
    assert not any(clf.history[:, "class_weights_on"])
    with warnings.catch_warnings():  # switches on at the last point, past max_epochs
        warnings.filterwarnings("error", message="drw_epoch")
        clf = make(**params, drw_epoch=points, max_epochs=2).fit(X, y)
    assert clf.history[:, "class_weights_on"] == [False] * (points - 1) + [True]


def test_the_restore_hint_only_where_an_earlier_epoch_was_kept(binary_data):
    X, y = binary_data
    with pytest.raises(TrainingDivergedError) as error:
        make(loss=NanFromEpoch2(), max_epochs=4).fit(X, y)
    assert 'action="restore" to keep epoch 1, the best before it' in str(error.value)
    for params in ({"optimizer": torch.optim.SGD, "lr": 1e12}, {"loss": NanFromEpoch2()}):
        # diverged at epoch 1, or with no validation split nothing was kept: no hint
        with pytest.raises(TrainingDivergedError) as error:
            make(**params, max_epochs=4, train_split=None).fit(X, y)
        assert "restore" not in str(error.value)


class NanWhenAsked(torch.nn.Module):
    poisoned = False  # a class attribute: the estimator may copy the instance

    def forward(self, logits, target):
        loss = torch.nn.functional.cross_entropy(logits, target)
        return loss * math.nan if NanWhenAsked.poisoned else loss


def test_a_frozen_head_continued_by_epochs_names_lr(binary_data, monkeypatch):
    """partial_fit trains a solved head on by epochs of lr: its message is the lr one."""
    X, y = binary_data
    clf = make(freeze_backbone=True, loss=NanWhenAsked(), lr=1e-3).fit(X, y)
    monkeypatch.setattr(NanWhenAsked, "poisoned", True)
    with pytest.raises(TrainingDivergedError, match=r"at epoch \d+, batch \d+ \(lr=0.001"):
        clf.partial_fit(X, y)
    assert "_solving_head_path" not in vars(clf)
