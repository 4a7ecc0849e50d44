"""Validation metrics that pick the epoch kept."""

import numpy as np
import pytest

from imbal_estimators.decision.metrics import MONITOR_METRICS, score_probabilities


@pytest.mark.parametrize("name", sorted(MONITOR_METRICS))
def test_non_finite_probabilities_score_nan(name):
    proba = np.full((4, 2), np.nan)
    assert np.isnan(score_probabilities(name, np.array([0, 1, 0, 1]), proba))


@pytest.mark.parametrize("name", sorted(MONITOR_METRICS))
def test_multiclass_with_a_class_missing_from_validation(name):
    y = np.array([0, 1, 0, 1])
    proba = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1], [0.3, 0.6, 0.1]])
    assert np.isfinite(score_probabilities(name, y, proba))


def test_perfect_binary_predictions():
    y = np.array([0, 0, 1, 1])
    proba = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.1, 0.9]])
    for name in MONITOR_METRICS:
        assert score_probabilities(name, y, proba) == pytest.approx(1.0)
