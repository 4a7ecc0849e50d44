"""The new losses through the estimator: counts of the training part, hyperparameters,
deferred re-weighting, double-correction warnings and parameter validation."""

import warnings

import numpy as np
import pytest
import torch
from conftest import tiny_classifier as make
from imblearn.over_sampling import RandomOverSampler
from sklearn.base import clone
from skorch.callbacks import Callback

from imbal_estimators.losses.balanced import (
    BalancedSoftmaxLoss,
    CBFocalLoss,
    LDAMLoss,
    LogitAdjustedLoss,
    ldam_margins,
)
from imbal_estimators.utils.param_validation import InvalidParameterError

MISSING = [f"/nonexistent/img_{i}.png" for i in range(6)]
MISSING_Y = ["a", "b", "c"] * 2


@pytest.mark.parametrize(
    "loss, cls",
    [
        ("cb_focal", CBFocalLoss),
        ("ldam", LDAMLoss),
        ("logit_adjusted", LogitAdjustedLoss),
        ("balanced_softmax", BalancedSoftmaxLoss),
    ],
)
def test_each_loss_fits_and_predicts(binary_data, loss, cls):
    X, y = binary_data
    clf = make(loss=loss, criterion__s=5.0).fit(X, y)
    assert isinstance(clf.criterion_, cls)
    assert np.isfinite(clf.history[:, "train_loss"]).all()
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    assert clf.score(X, y) > 0.7


def test_ldam_margins_follow_the_training_part(three_class_data):
    X, y = three_class_data  # 30 / 12 / 6 images
    clf = make(
        loss="ldam", train_split=0.5, criterion__max_margin=0.4, criterion__s=2.0, max_epochs=1
    ).fit(X, y)
    expected = np.bincount(np.searchsorted(clf.classes_, y[clf.train_indices_]), minlength=3)
    assert clf.class_counts_.tolist() == expected.tolist() == [15, 6, 3]
    assert clf.criterion_.class_counts.tolist() == [15, 6, 3]
    assert clf.criterion_.max_margin == 0.4 and clf.criterion_.s == 2.0
    # the criterion's value is the margin loss of the training part's counts, not all of y's
    logits = torch.randn(5, 3, dtype=torch.float64)
    target = torch.tensor([0, 1, 2, 2, 1])
    shifted = logits.clone()
    shifted[torch.arange(5), target] -= ldam_margins([15, 6, 3], 0.4)[target]
    expected_loss = torch.nn.functional.cross_entropy(2.0 * shifted, target)
    torch.testing.assert_close(clf.criterion_(logits, target), expected_loss)


def test_logit_adjusted_offsets_follow_the_training_part(three_class_data):
    X, y = three_class_data
    clf = make(loss="logit_adjusted", criterion__tau=0.5, train_split=0.5, max_epochs=1).fit(X, y)
    assert clf.criterion_.class_counts.tolist() == [15, 6, 3]
    logits = torch.randn(4, 3, dtype=torch.float64)
    target = torch.tensor([0, 1, 2, 0])
    offsets = 0.5 * torch.log(torch.tensor([15.0, 6.0, 3.0], dtype=torch.float64) / 24)
    expected = torch.nn.functional.cross_entropy(logits + offsets, target)
    torch.testing.assert_close(clf.criterion_(logits, target), expected)


def test_prior_losses_see_resampled_counts_margin_losses_raw(binary_data):
    X, y = binary_data
    sampler = RandomOverSampler()
    adjusted = make(loss="balanced_softmax", sampler=sampler, max_epochs=1).fit(X, y)
    raw = adjusted.class_counts_
    assert raw[0] > raw[1]
    # the over-sampler's draw is balanced: the prior the loss removes is uniform
    assert adjusted.loss_class_counts_.tolist() == [raw[0], raw[0]]
    assert adjusted.criterion_.class_counts.tolist() == [raw[0], raw[0]]
    ldam = make(loss="ldam", sampler=sampler, max_epochs=1).fit(X, y)
    assert ldam.criterion_.class_counts.tolist() == raw.tolist()


def test_hyperparameters_reach_the_loss_and_survive_clone(binary_data):
    X, y = binary_data
    hyper = dict(criterion__tau=0.3, criterion__max_margin=0.2, criterion__s=3.0)
    clf = make(loss="ce", label_smoothing=0.2, **hyper)
    params = clone(clf).get_params()
    assert {key: params[key] for key in hyper} == hyper
    assert params["label_smoothing"] == 0.2
    clf.fit(X, y)  # cross-entropy takes none of them: each loss gets what it declares
    assert clf.criterion_.label_smoothing == 0.2
    clf.set_params(loss="ldam").fit(X, y)
    assert (clf.criterion_.max_margin, clf.criterion_.s) == (0.2, 3.0)
    clf.set_params(loss="cb_focal", label_smoothing=0.0, beta=0.9, gamma=1.0).fit(X, y)
    assert (clf.criterion_.beta, clf.criterion_.gamma) == (0.9, 1.0)


def test_criterion_spelling_of_label_smoothing_still_works_but_not_twice(binary_data):
    X, y = binary_data
    clf = make(criterion__label_smoothing=0.1, max_epochs=1).fit(X, y)
    assert clf.criterion_.label_smoothing == pytest.approx(0.1)
    with pytest.raises(ValueError, match="label_smoothing=0.2 and criterion__label_smoothing"):
        make(label_smoothing=0.2, criterion__label_smoothing=0.1).fit(MISSING, MISSING_Y)


def test_label_smoothing_with_focal_fails_before_the_scan():
    with pytest.raises(ValueError, match="label_smoothing=0.1 applies to the cross-entropy"):
        make(loss="focal", label_smoothing=0.1).fit(MISSING, MISSING_Y)


@pytest.mark.parametrize(
    "name, value",
    [
        ("tau", "x"),
        ("max_margin", 0),
        ("ldam_s", -1.0),
        ("criterion__tau", "x"),
        ("criterion__max_margin", 0),
        ("criterion__s", -1.0),
        ("criterion__beta", 1.0),
        ("label_smoothing", 1.5),
        ("drw_epoch", 0),
        ("drw_epoch", 1.5),
        ("threshold", 1.5),
        ("threshold", "best"),
        ("posthoc_tau", -1.0),
        ("calibrate", "yes"),
        ("tta", 0),
        ("sampler", "balanced"),
        ("loss", "ldam_drw"),
    ],
)
def test_bad_values_are_named_before_the_scan(name, value):
    clf = make(**{name: value})
    with pytest.raises(InvalidParameterError, match=f"The '{name}' parameter of Image"):
        clf.fit(MISSING, MISSING_Y)


# ------------------------------------------------------------ deferred re-weighting


class WeightProbe(Callback):
    """Records whether the loss had class weights in each epoch."""

    def on_epoch_end(self, net, **kwargs):
        self.weighted = [*getattr(self, "weighted", []), net.criterion_.weight is not None]


def test_class_weights_switch_on_at_drw_epoch(binary_data):
    X, y = binary_data
    probe = WeightProbe()
    clf = make(alpha="balanced", drw_epoch=2, max_epochs=3, callbacks=[probe]).fit(X, y)
    assert clf.history[:, "class_weights_on"] == [False, True, True]
    assert probe.weighted == [False, True, True]
    torch.testing.assert_close(
        clf.criterion_.weight, torch.tensor(clf.class_weight_, dtype=torch.float32)
    )


def test_drw_count_continues_over_partial_fit(binary_data):
    X, y = binary_data
    clf = make(loss="ldam", criterion__s=5.0, alpha="effective", drw_epoch=2, max_epochs=1)
    clf.fit(X, y)
    assert clf.history[:, "class_weights_on"] == [False]
    assert clf.criterion_.alpha is None
    clf.partial_fit(X, y)
    assert clf.history[:, "class_weights_on"] == [False, True]
    assert clf.criterion_.alpha is not None
    # a new fit starts unweighted again
    clf.fit(X, y)
    assert clf.history[:, "class_weights_on"] == [False]


def test_drw_needs_alpha():
    with pytest.raises(ValueError, match="'drw_epoch' parameter .* but alpha=None"):
        make(drw_epoch=2).fit(MISSING, MISSING_Y)


# ------------------------------------------------------------ double corrections


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(loss="logit_adjusted", alpha="balanced"), "already removes the class prior"),
        (dict(loss="balanced_softmax", alpha=[1.0, 2.0]), "already removes the class prior"),
        (dict(loss="cb_focal", alpha="balanced"), "second class weighting"),
        (dict(loss="cb_focal", sampler=RandomOverSampler()), "rebalances the rows as well"),
        (dict(loss="cb_focal", sampler="balanced_batches"), "rebalances the rows as well"),
        (dict(loss="logit_adjusted", posthoc_tau=1.0), "adjusts them again at predict"),
    ],
)
def test_double_corrections_warn(binary_data, params, match):
    X, y = binary_data
    with pytest.warns(UserWarning, match=match):
        make(max_epochs=1, **params).fit(X, y)


def test_prior_loss_with_balancing_sampler_does_not_warn(binary_data):
    X, y = binary_data
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prior = make(loss="balanced_softmax", sampler="balanced_batches", max_epochs=1).fit(X, y)
        drw = make(loss="ldam", criterion__s=5.0, alpha="effective", drw_epoch=2, max_epochs=1)
        drw.fit(X, y)
    assert [str(w.message) for w in caught if "corrected twice" in str(w.message)] == []
    # not double: the prior the loss removes is the sampler's, uniform
    n_train = len(prior.train_indices_)
    np.testing.assert_allclose(prior.loss_class_counts_, [n_train / 2, n_train / 2])
    np.testing.assert_allclose(prior.criterion_.class_counts.cpu(), [n_train / 2, n_train / 2])
    # LDAM-DRW: the weights of alpha are off until drw_epoch
    assert drw.history[:, "class_weights_on"] == [False]
