"""Scores and the paired fold comparison behind compare's ranking."""

import numpy as np
import pytest
from sklearn import metrics

from imbal_estimators.decision.evaluation import METRICS, paired_difference, score_predictions
from imbal_estimators.decision.posthoc import decide


@pytest.fixture
def binary_scores():
    rng = np.random.default_rng(0)
    is_dog = rng.random(300) < 0.25
    p_dog = np.clip(0.35 * is_dog + 0.65 * rng.random(300), 0, 1)
    labels = np.where(is_dog, "dog", "cat")
    return labels, np.c_[1 - p_dog, p_dog], np.array(["cat", "dog"])


def test_binary_scores_are_those_of_the_positive_class(binary_scores):
    y, proba, classes = binary_scores
    y_pred = classes[decide(proba, threshold=0.4, pos_index=1)]
    scores = score_predictions(y, y_pred, proba, classes, pos_label="dog")
    assert set(scores) == set(METRICS)
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


def test_paired_difference_says_whether_the_gain_exceeds_the_spread():
    clear = paired_difference([0.80, 0.82, 0.81], [0.70, 0.71, 0.72])
    assert clear["mean"] == pytest.approx(0.1)
    assert clear["wins"] == 3 and clear["exceeds_spread"]
    noisy = paired_difference([0.80, 0.60, 0.75], [0.70, 0.72, 0.71])
    assert noisy["wins"] == 2 and not noisy["exceeds_spread"]
    assert noisy["std"] == pytest.approx(np.std([0.10, -0.12, 0.04]))
    assert not paired_difference([0.5, 0.5], [0.5, 0.5])["exceeds_spread"]
