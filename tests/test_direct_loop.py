"""The direct head loop (a frozen head on cached features) equals skorch's fit loop."""

import numpy as np
import pytest
import torch
from conftest import HEAD_GRID, frozen_base
from sklearn.base import clone
from skorch.callbacks import Callback, EarlyStopping, PrintLog

import imbal_estimators.training.heads as heads
from imbal_estimators import ImageImbalanceClassifier
from imbal_estimators.training.callbacks import EpochLog, EpochLossScoring

GRID = [
    *HEAD_GRID,
    {"monitor": "valid_loss", "train_split": None},
    {"optimizer": torch.optim.LBFGS, "lr": 0.1, "max_epochs": 2},
]


@pytest.fixture(autouse=True)
def _fresh_caches(fresh_caches):
    """Every test here starts and ends with empty caches (conftest.fresh_caches)."""


@pytest.fixture
def loops(monkeypatch):
    """Which loop each fit took: 'direct' or 'skorch'."""
    taken = []
    direct = heads._direct_head_loop

    def counting(net, data, epochs):
        taken.append("direct")
        return direct(net, data, epochs)

    monkeypatch.setattr(heads, "_direct_head_loop", counting)
    return taken


def without_direct_loop(monkeypatch):
    monkeypatch.setattr(heads, "_reason_not_direct", lambda net: "switched off by the test")


class BatchRecorder(Callback):
    """Records every batch event with what it was given."""

    def initialize(self):
        self.events_ = []
        return self

    def on_batch_begin(self, net, batch=None, training=None, **kwargs):
        self.events_.append(("begin", training, batch[1].tolist()))

    def on_grad_computed(self, net, named_parameters, batch=None, training=None, **kwargs):
        grads = [p.grad.clone() for _, p in named_parameters]
        self.events_.append(("grad", training, [g.sum().item() for g in grads]))

    def on_batch_end(self, net, batch=None, training=None, loss=None, y_pred=None, **kwargs):
        self.events_.append(("end", training, loss.item(), y_pred.shape))


def assert_identical(a, b, X):
    """Bit for bit: predictions, kept epoch, decision, every history record but times."""
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    assert a.best_epoch_ == b.best_epoch_
    assert len(a.history) == len(b.history)
    for row_a, row_b in zip(a.history, b.history, strict=True):
        assert list(row_a) == list(row_b)
        assert row_a["batches"] == row_b["batches"]
        assert {k: v for k, v in row_a.items() if k != "dur"} == {
            k: v for k, v in row_b.items() if k != "dur"
        }
    for name in ("threshold_", "temperature_", "class_weight_", "loss_class_counts_"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    for (_, pa), (_, pb) in zip(
        a.module_.head.named_parameters(), b.module_.head.named_parameters(), strict=True
    ):
        assert torch.equal(pa, pb)


@pytest.mark.parametrize("params", GRID, ids=lambda p: ",".join(map(str, p.values())))
def test_direct_loop_equals_skorch_loop(binary_data, shufflenet_file, loops, monkeypatch, params):
    X, y = binary_data
    base = frozen_base(shufflenet_file, **params)
    direct = clone(base).fit(X, y)
    assert loops == ["direct"]
    with monkeypatch.context() as patch:
        without_direct_loop(patch)
        regular = clone(base).fit(X, y)
    assert loops == ["direct"]
    assert_identical(direct, regular, X)


def test_batch_callbacks_see_the_same_events(binary_data, shufflenet_file, loops, monkeypatch):
    X, y = binary_data
    base = frozen_base(
        shufflenet_file,
        callbacks=[("recorder", BatchRecorder()), ("stop", EarlyStopping(patience=1))],
        max_epochs=6,
    )
    direct = clone(base).fit(X, y)
    with monkeypatch.context() as patch:
        without_direct_loop(patch)
        regular = clone(base).fit(X, y)
    assert loops == ["direct"]
    assert_identical(direct, regular, X)
    events = dict(direct.callbacks_)["recorder"].events_
    assert events == dict(regular.callbacks_)["recorder"].events_
    assert {e[0] for e in events} == {"begin", "grad", "end"}


def test_partial_fit_continues_the_same_way(binary_data, shufflenet_file, loops, monkeypatch):
    X, y = binary_data
    direct = frozen_base(shufflenet_file).fit(X, y).partial_fit(X, y)
    with monkeypatch.context() as patch:
        without_direct_loop(patch)
        regular = frozen_base(shufflenet_file).fit(X, y).partial_fit(X, y)
    assert loops == ["direct", "direct"]
    assert_identical(direct, regular, X)


class OwnStep(ImageImbalanceClassifier):
    """A user's subclass with its own training step: trained by skorch's loop."""

    def train_step(self, batch, **fit_params):
        self.own_steps_ = getattr(self, "own_steps_", 0) + 1
        return super().train_step(batch, **fit_params)


def test_overridden_steps_and_unfrozen_fits_take_skorch_loop(binary_data, shufflenet_file, loops):
    X, y = binary_data
    params = frozen_base(shufflenet_file).get_params()
    own = OwnStep(**params).fit(X, y)
    assert own.own_steps_ > 0
    assert loops == []
    assert heads._reason_not_direct(own) == "train_step is overridden"
    unfrozen = frozen_base(shufflenet_file, freeze_backbone=False)
    unfrozen.fit(X, y)
    assert loops == []
    assert heads._reason_not_direct(unfrozen) == "not a frozen-backbone fit on the CPU"


def test_quiet_log_and_loss_scoring_keep_skorch_behaviour(binary_data, shufflenet_file, capsys):
    X, y = binary_data
    clf = frozen_base(shufflenet_file, verbose=0).fit(X, y)
    callbacks = dict(clf.callbacks_)
    assert isinstance(callbacks["print_log"], EpochLog)
    assert isinstance(callbacks["print_log"], PrintLog)
    assert isinstance(callbacks["train_loss"], EpochLossScoring)
    assert capsys.readouterr().out == ""
    lines = []
    frozen_base(shufflenet_file, verbose=0, callbacks__print_log__sink=lines.append).fit(X, y)
    assert len(lines) == 2 + 3  # header, rule, one row per epoch: a custom sink hears all
    frozen_base(shufflenet_file, verbose=1).fit(X, y)
    out = capsys.readouterr().out
    assert "train_loss" in out and "valid_loss" in out
    for row in clf.history:
        batches = row["batches"]
        for prefix in ("train", "valid"):
            sizes = [b[f"{prefix}_batch_size"] for b in batches if f"{prefix}_loss" in b]
            losses = [b[f"{prefix}_loss"] for b in batches if f"{prefix}_loss" in b]
            assert row[f"{prefix}_loss"] == np.average(losses, weights=sizes)
