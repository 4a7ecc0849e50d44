"""Scores, threshold tuning and the paired fold comparison behind compare's ranking."""

import numpy as np
import pytest
from sklearn import metrics

from imbal_estimators.decision.evaluation import (
    default_pos_label,
    paired_difference,
    predict_with_threshold,
    score_predictions,
    threshold_scores,
    tune_threshold,
)


@pytest.fixture
def binary_scores():
    rng = np.random.default_rng(0)
    is_dog = rng.random(300) < 0.25
    p_dog = np.clip(0.35 * is_dog + 0.65 * rng.random(300), 0, 1)
    labels = np.where(is_dog, "dog", "cat")
    return labels, np.c_[1 - p_dog, p_dog], np.array(["cat", "dog"])


def test_binary_scores_are_those_of_the_positive_class(binary_scores):
    y, proba, classes = binary_scores
    y_pred = predict_with_threshold(proba, classes, "dog", 0.5)
    scores = score_predictions(y, y_pred, proba, classes, pos_label="dog")
    assert scores["f1"] == pytest.approx(metrics.f1_score(y, y_pred, pos_label="dog"))
    assert scores["recall"] == pytest.approx(metrics.recall_score(y, y_pred, pos_label="dog"))
    assert scores["average_precision"] == pytest.approx(
        metrics.average_precision_score(y == "dog", proba[:, 1])
    )
    as_cat = score_predictions(y, y_pred, proba, classes, pos_label="cat")
    assert as_cat["f1"] == pytest.approx(metrics.f1_score(y, y_pred, pos_label="cat"))
    assert as_cat["f1"] != pytest.approx(scores["f1"])


def test_multiclass_scores_are_macro_and_finite_when_a_class_is_never_predicted():
    classes = np.array([0, 1, 2])
    y = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    proba = np.tile([0.7, 0.2, 0.1], (8, 1))  # always class 0
    y_pred = classes[proba.argmax(axis=1)]
    scores = score_predictions(y, y_pred, proba, classes)
    assert all(np.isfinite(v) for v in scores.values())
    assert scores["f1"] == pytest.approx(metrics.f1_score(y, y_pred, average="macro"))
    assert scores["precision"] == pytest.approx(0.5 / 3)  # zero_division=0 for classes 1, 2
    assert scores["balanced_accuracy"] == pytest.approx(1 / 3)


def test_threshold_scores_match_scikit_learn(binary_scores):
    y, proba, _ = binary_scores
    thresholds = np.array([0.0, 0.2, 0.5, 0.73, 1.1])
    got = threshold_scores(y == "dog", proba[:, 1], thresholds)
    for i, t in enumerate(thresholds):
        pred = proba[:, 1] >= t
        assert got["f1"][i] == pytest.approx(metrics.f1_score(y == "dog", pred, zero_division=0))
        assert got["precision"][i] == pytest.approx(
            metrics.precision_score(y == "dog", pred, zero_division=0)
        )
        assert got["balanced_accuracy"][i] == pytest.approx(
            metrics.balanced_accuracy_score(y == "dog", pred)
        )


def test_tuned_threshold_maximizes_the_metric(binary_scores):
    y, proba, classes = binary_scores
    best = tune_threshold(y, proba, classes, "dog", scoring="f1")
    f1_best = metrics.f1_score(
        y, predict_with_threshold(proba, classes, "dog", best), pos_label="dog"
    )
    for t in np.linspace(0.01, 0.99, 99):
        pred = predict_with_threshold(proba, classes, "dog", t)
        assert metrics.f1_score(y, pred, pos_label="dog") <= f1_best + 1e-12
    assert f1_best > metrics.f1_score(
        y, predict_with_threshold(proba, classes, "dog", 0.5), pos_label="dog"
    )


def test_tuned_threshold_separates_separable_scores_and_prefers_half():
    classes = np.array([0, 1])
    y = np.array([0, 0, 0, 1, 1])
    p = np.array([0.05, 0.1, 0.2, 0.3, 0.35])
    threshold = tune_threshold(y, np.c_[1 - p, p], classes, 1)
    assert threshold == pytest.approx(0.25)  # the only cut that separates them
    # one class only: nothing to tune
    assert tune_threshold(np.zeros(3), np.full((3, 2), 0.5), classes, 1) == 0.5
    # average precision ignores thresholds: F1 is maximized instead
    assert tune_threshold(y, np.c_[1 - p, p], classes, 1, "average_precision") == 0.25


def test_paired_difference_says_whether_the_gain_exceeds_the_spread():
    clear = paired_difference([0.80, 0.82, 0.81], [0.70, 0.71, 0.72])
    assert clear["mean"] == pytest.approx(0.1)
    assert clear["wins"] == 3 and clear["exceeds_spread"]
    noisy = paired_difference([0.80, 0.60, 0.75], [0.70, 0.72, 0.71])
    assert noisy["wins"] == 2 and not noisy["exceeds_spread"]
    assert noisy["std"] == pytest.approx(np.std([0.10, -0.12, 0.04]))
    assert not paired_difference([0.5, 0.5], [0.5, 0.5])["exceeds_spread"]


def test_default_positive_label_is_the_rarer_class():
    assert default_pos_label(["a", "b", "b"]) == "a"
    assert default_pos_label([0, 0, 1]) == 1
    assert default_pos_label([0, 1]) == 1  # tie: the later class, as scikit-learn's pos_label=1
    assert default_pos_label([0, 1, 2]) is None


def test_prediction_scorer_uses_the_given_positive_class():
    from imbal_estimators.decision.evaluation import PredictionScorer

    class Fixed:
        classes_ = np.array(["cat", "dog"])

        def predict_proba(self, X):
            return np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])

    y = np.array(["cat", "dog", "dog", "cat"])
    assert PredictionScorer("f1", "dog")(Fixed(), None, y) == pytest.approx(0.5)
    assert PredictionScorer("recall", "cat")(Fixed(), None, y) == pytest.approx(0.5)
    assert PredictionScorer("average_precision", "dog")(Fixed(), None, y) == pytest.approx(
        metrics.average_precision_score(y == "dog", [0.1, 0.8, 0.4, 0.7])
    )
    with pytest.raises(ValueError, match="metric must be one of"):
        PredictionScorer("accuracy")
