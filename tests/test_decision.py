"""Decision threshold, post-hoc prior adjustment, calibration, balanced batches and
test-time augmentation through the estimator."""

import os

import numpy as np
import pytest
import torch
from conftest import TinyCNN, write_images
from conftest import tiny_classifier as make
from sklearn.metrics import f1_score
from sklearn.model_selection import TunedThresholdClassifierCV

from imbal_estimators import load_image_folder
from imbal_estimators.decision.posthoc import decide, expected_calibration_error
from imbal_estimators.estimator.datasets import dataset_of
from imbal_estimators.imbalance.samplers import BalancedBatchSampler

MISSING = [f"/nonexistent/img_{i}.png" for i in range(6)]


@pytest.fixture(scope="module")
def hard_binary_data(tmp_path_factory):
    """60 negatives and 20 positives of nearly the same color: a weak model after 2 epochs."""
    root = tmp_path_factory.mktemp("hard_binary")
    write_images(os.path.join(root, "neg"), 60, (110, 120, 130), seed=1)
    write_images(os.path.join(root, "pos"), 20, (130, 120, 110), seed=2)
    return load_image_folder(root)


@pytest.fixture(scope="module")
def noise_data(tmp_path_factory):
    """Three classes of images drawn from the same distribution: nothing to learn."""
    root = tmp_path_factory.mktemp("noise")
    for i, name in enumerate(["a", "b", "c"]):
        write_images(os.path.join(root, name), 30, (128, 128, 128), seed=10 + i)
    return load_image_folder(root)


class OverconfidentCNN(TinyCNN):
    """TinyCNN with logits scaled up 30 times: confident whatever it knows."""

    def forward(self, x):
        return 30.0 * super().forward(x)


# ------------------------------------------------------------------- threshold


def _validation(clf, X, y):
    rows = clf.valid_indices_
    return clf.predict_proba(X[rows])[:, clf.pos_index_], (y[rows] == clf.pos_label_).astype(int)


def test_auto_threshold_raises_validation_f1(hard_binary_data):
    X, y = hard_binary_data
    clf = make(threshold="auto", monitor="f1", train_split=0.5).fit(X, y)
    proba, truth = _validation(clf, X, y)
    assert 0 < clf.threshold_ < 0.5
    assert f1_score(truth, proba >= clf.threshold_) > f1_score(truth, proba >= 0.5)
    # predict uses the threshold; predict_proba is what the model gives, unchanged
    expected = np.where(clf.predict_proba(X)[:, 1] >= clf.threshold_, "pos", "neg")
    np.testing.assert_array_equal(clf.predict(X), expected)
    plain = make(monitor="f1", train_split=0.5).fit(X, y)
    np.testing.assert_allclose(plain.predict_proba(X), clf.predict_proba(X))
    assert plain.threshold_ is None


def test_auto_threshold_maximizes_a_threshold_free_monitor_by_f1(hard_binary_data):
    X, y = hard_binary_data
    clf = make(threshold="auto", monitor="roc_auc", train_split=0.5).fit(X, y)
    proba, truth = _validation(clf, X, y)
    best = max(f1_score(truth, proba >= t) for t in np.unique(proba))
    assert f1_score(truth, proba >= clf.threshold_) == pytest.approx(best)


def test_fixed_threshold(binary_data):
    X, y = binary_data
    clf = make(threshold=0.9).fit(X, y)
    assert clf.threshold_ == 0.9
    proba = clf.predict_proba(X)[:, 1]
    np.testing.assert_array_equal(clf.predict(X), np.where(proba >= 0.9, "dog", "cat"))


def test_threshold_refused_for_multiclass_before_the_scan():
    with pytest.raises(ValueError, match="'threshold' parameter .* binary problems; y has 3"):
        make(threshold="auto").fit(MISSING, ["a", "b", "c"] * 2)


@pytest.mark.parametrize("params", [dict(threshold="auto"), dict(calibrate=True)])
@pytest.mark.parametrize("split", [None, False])
def test_validation_fitted_decisions_need_a_validation_split(params, split):
    name = next(iter(params))
    with pytest.raises(ValueError, match=f"'{name}' parameter .* validation split"):
        make(train_split=split, **params).fit(MISSING, ["a", "b"] * 3)


def test_threshold_and_posthoc_tau_conflict():
    with pytest.raises(ValueError, match="'threshold' and 'posthoc_tau'"):
        make(threshold=0.3, posthoc_tau=1.0).fit(MISSING, ["a", "b"] * 3)


def test_tuned_threshold_classifier_cv_works(binary_data):
    from sklearn.base import clone
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import StratifiedKFold

    X, y = binary_data
    y = np.random.default_rng(0).permutation(y)  # an imperfect model: the threshold matters
    candidates = np.linspace(0.05, 0.95, 10)
    clf = make(max_epochs=2, alpha="balanced", threshold="auto")
    tuned = TunedThresholdClassifierCV(
        clf, cv=2, scoring="balanced_accuracy", thresholds=candidates, store_cv_results=True
    )
    tuned.fit(X, y)
    # scikit-learn's procedure by hand: mean score over the folds at each candidate
    curves = []
    for train, test in StratifiedKFold(2).split(X, y):
        proba = clone(clf).fit(X[train], y[train]).predict_proba(X[test])[:, 1]
        curves.append(
            [
                balanced_accuracy_score(y[test], np.where(proba >= t, "dog", "cat"))
                for t in candidates
            ]
        )
    mean_curve = np.mean(curves, axis=0)
    # scikit-learn's curve is ours, candidate by candidate (on ties it keeps the first best)
    np.testing.assert_allclose(tuned.cv_results_["scores"], mean_curve)
    assert tuned.best_threshold_ == candidates[np.argmax(mean_curve)]
    positive = tuned.estimator_.predict_proba(X)[:, 1] >= tuned.best_threshold_
    np.testing.assert_array_equal(tuned.predict(X), np.where(positive, "dog", "cat"))


def test_posthoc_tau_shifts_multiclass_decisions_to_rare_classes(three_class_data):
    X, y = three_class_data
    clf = make(max_epochs=1, posthoc_tau=2.0).fit(X, y)
    proba = clf.predict_proba(X)
    expected = decide(proba, posthoc_tau=2.0, class_counts=clf.loss_class_counts_)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[expected])
    rare = clf.classes_[np.argmin(clf.class_counts_)]
    assert (clf.predict(X) == rare).sum() >= (clf.classes_[proba.argmax(axis=1)] == rare).sum()


# ------------------------------------------------------------------- calibration


def test_calibration_lowers_validation_ece_and_keeps_the_argmax(noise_data):
    X, y = noise_data
    params = dict(module=OverconfidentCNN, max_epochs=2, train_split=0.4)
    raw = make(**params).fit(X, y)
    calibrated = make(calibrate=True, **params).fit(X, y)
    assert raw.temperature_ is None and raw.ece_before_ is None
    assert calibrated.temperature_ > 1
    assert calibrated.ece_after_ < calibrated.ece_before_
    # the recorded ECEs are those of the validation split's probabilities
    rows = calibrated.valid_indices_
    truth = np.searchsorted(calibrated.classes_, y[rows])
    ece_raw = expected_calibration_error(raw.predict_proba(X[rows]), truth)
    ece_cal = expected_calibration_error(calibrated.predict_proba(X[rows]), truth)
    assert ece_raw == pytest.approx(calibrated.ece_before_, abs=1e-6)
    assert ece_cal == pytest.approx(calibrated.ece_after_, abs=1e-6)
    np.testing.assert_array_equal(calibrated.predict(X), raw.predict(X))
    logits = calibrated.forward(dataset_of(calibrated, X)).double()
    expected = torch.softmax(logits / calibrated.temperature_, dim=1).numpy()
    np.testing.assert_allclose(calibrated.predict_proba(X), expected, atol=1e-6)


# ------------------------------------------------------------------- balanced batches


def test_balanced_batch_sampler_draws_classes_equally():
    y = np.array([0] * 900 + [1] * 90 + [2] * 10)
    X = np.arange(len(y)).reshape(-1, 1)
    X_res, y_res = BalancedBatchSampler(random_state=0).fit_resample(X, y)
    assert len(y_res) == len(y)
    np.testing.assert_array_equal(y[X_res[:, 0]], y_res)
    np.testing.assert_allclose(np.bincount(y_res) / len(y), [1 / 3] * 3, atol=0.05)
    again, _ = BalancedBatchSampler(random_state=0).fit_resample(X, y)
    np.testing.assert_array_equal(X_res, again)
    expected = BalancedBatchSampler().expected_class_counts([900, 90, 10])
    np.testing.assert_allclose(expected, [1000 / 3] * 3)


def test_balanced_batches_through_the_estimator(binary_data):
    X, y = binary_data
    clf = make(sampler="balanced_batches", alpha="balanced", max_epochs=3).fit(X, y)
    counts = np.array(clf.history[:, "train_class_counts"])
    n_train = len(clf.train_indices_)
    assert (counts.sum(axis=1) == n_train).all()
    assert len({tuple(c) for c in counts}) > 1  # drawn anew every epoch
    assert np.abs(counts[:, 1] / n_train - 0.5).max() < 0.25  # minority at ~1/2, not 1/4
    # the loss sees uniform counts: balanced alpha is uniform
    np.testing.assert_allclose(clf.loss_class_counts_, [n_train / 2] * 2)
    np.testing.assert_allclose(clf.class_weight_, [1.0, 1.0])
    assert isinstance(clf.sampler_, BalancedBatchSampler)
    again = make(sampler="balanced_batches", alpha="balanced", max_epochs=3).fit(X, y)
    assert again.history[:, "train_class_counts"] == clf.history[:, "train_class_counts"]


# ------------------------------------------------------------------- test-time augmentation


def test_tta_is_reproducible_per_image(binary_data):
    X, y = binary_data
    clf = make(tta=4, max_epochs=1, image_size=16).fit(X, y)
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(clf.predict_proba(X), proba)
    # an image's views do not depend on the other images predicted with it
    subset = [7, 3, 30]
    # float32 network: other batch compositions pick other kernels, equal to float32 precision
    np.testing.assert_allclose(clf.predict_proba(X[subset]), proba[subset], rtol=1e-5, atol=1e-6)
    plain = clf.set_params(tta=None).predict_proba(X)
    assert not np.allclose(plain, proba)
    np.testing.assert_allclose(clf.set_params(tta=1).predict_proba(X), plain)


def test_tta_averages_the_unaugmented_and_augmented_views(binary_data):
    X, y = binary_data
    clf = make(tta=2, max_epochs=1).fit(X, y)
    two = clf.predict_proba(X)
    plain = clf.set_params(tta=None).predict_proba(X)
    # view 1 alone is 2 * mean - view 0; it is a valid probability table that differs
    view1 = 2 * two - plain
    np.testing.assert_allclose(view1.sum(axis=1), 1.0, atol=1e-9)
    assert (view1 >= -1e-9).all() and not np.allclose(view1, plain)


def test_tta_needs_augmentation():
    with pytest.raises(ValueError, match="'tta' parameter .* augment=False"):
        make(tta=3, augment=False).fit(MISSING, ["a", "b"] * 3)
