"""Threshold search, temperature scaling, ECE and post-hoc adjustment, on plain arrays."""

import numpy as np
import pytest
import torch

from imbal_estimators.decision.posthoc import (
    decide,
    expected_calibration_error,
    fit_decision,
    fit_temperature,
    threshold_metric,
)
from imbal_estimators.decision.threshold import tune_threshold


def _binary(n=200, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(int)
    # positives score higher on average, with overlap and some tied scores
    scores = np.clip(0.25 + 0.3 * y + rng.normal(0, 0.15, n), 0, 1).round(2)
    return scores, y


@pytest.mark.parametrize(
    "monitor, expected",
    [
        ("f1", "f1"),
        ("mcc", "mcc"),
        ("balanced_accuracy", "balanced_accuracy"),
        ("f1_macro", "f1_macro"),
        ("average_precision", "f1"),
        ("roc_auc", "f1"),
        ("valid_loss", "f1"),
    ],
)
def test_threshold_metric_follows_threshold_dependent_monitors(monitor, expected):
    assert threshold_metric(monitor) == expected


def test_threshold_metric_of_an_unknown_monitor_is_an_error():
    with pytest.raises(ValueError, match="Unknown metric 'accuracy'"):
        threshold_metric("accuracy")


def test_ece_by_hand():
    # bin of confidence 0.9 holding 2 right, 2 wrong: |0.5 - 0.9| * 4/6; bin 0.6: 2 right: 0.4 * 2/6
    proba = np.array([[0.9, 0.1]] * 4 + [[0.4, 0.6]] * 2)
    y = np.array([0, 0, 1, 1, 1, 1])
    assert expected_calibration_error(proba, y) == pytest.approx(0.4 * 4 / 6 + 0.4 * 2 / 6)
    assert expected_calibration_error(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([0, 1])) == 0


def _overconfident_logits(n=400, n_classes=3, seed=0, scale=8.0):
    """True posteriors softmax(u); the model reports softmax(scale * u)."""
    rng = np.random.default_rng(seed)
    u = rng.normal(0, 1, (n, n_classes))
    p = np.exp(u) / np.exp(u).sum(axis=1, keepdims=True)
    y = np.array([rng.choice(n_classes, p=row) for row in p])
    return scale * u, y


def test_temperature_recovers_the_overconfidence_factor():
    logits, y = _overconfident_logits(n=3000)
    temperature = fit_temperature(logits, y)
    assert temperature == pytest.approx(8.0, rel=0.15)


def test_temperature_minimizes_nll_in_float64():
    logits, y = _overconfident_logits(seed=1)
    t = fit_temperature(logits, y)
    z, target = torch.tensor(logits), torch.tensor(y)

    def nll(temp):
        return torch.nn.functional.cross_entropy(z / temp, target).item()

    assert nll(t) <= min(nll(t * 1.01), nll(t / 1.01))


def test_fit_decision_calibration_lowers_ece_and_keeps_argmax():
    logits, y = _overconfident_logits(seed=2)
    fitted = fit_decision(logits, y, calibrate=True, threshold=None, monitor="f1")
    assert set(fitted) == {"temperature_", "ece_before_", "ece_after_"}
    assert fitted["temperature_"] > 1
    assert fitted["ece_after_"] < fitted["ece_before_"] / 2


def test_fit_decision_threshold_on_calibrated_probabilities():
    scores, y = _binary(seed=3)
    logits = np.stack([np.zeros_like(scores), 6 * (scores - 0.5)], axis=1)
    fitted = fit_decision(logits, y, calibrate=True, threshold="auto", monitor="mcc", pos_index=1)
    proba = torch.softmax(torch.tensor(logits) / fitted["temperature_"], dim=1).numpy()
    expected, _ = tune_threshold(proba[:, 1], y == 1, "mcc")
    assert fitted["threshold_"] == pytest.approx(expected)


def test_fit_decision_tunes_on_the_positive_column():
    # the positive class is column 0 (a rare class that sorts first)
    scores, y = _binary(seed=6)
    logits = np.stack([4 * (scores - 0.5), np.zeros_like(scores)], axis=1)
    y0 = 1 - y  # class 0 is the rare, high-scoring one
    fitted = fit_decision(logits, y0, calibrate=False, threshold="auto", monitor="f1", pos_index=0)
    proba = torch.softmax(torch.tensor(logits, dtype=torch.float64), dim=1).numpy()
    expected = tune_threshold(proba[:, 0], y0 == 0, "f1")
    assert fitted["threshold_"] == expected[0]
    assert expected != tune_threshold(proba[:, 1], y0 == 1, "f1")
    with pytest.raises(ValueError, match="pos_index"):
        fit_decision(logits, y0, calibrate=False, threshold="auto", monitor="f1")


def test_decide():
    proba = np.array([[0.7, 0.3], [0.45, 0.55], [0.8, 0.2]])
    assert decide(proba).tolist() == [0, 1, 0]
    assert decide(proba, threshold=0.6, pos_index=1).tolist() == [0, 0, 0]
    # p >= threshold is positive
    assert decide(proba, threshold=0.3, pos_index=1).tolist() == [1, 1, 0]
    assert decide(proba, threshold=0.2, pos_index=1).tolist() == [1, 1, 1]
    # the threshold applies to the positive column, here class 0
    assert decide(proba, threshold=0.75, pos_index=0).tolist() == [1, 1, 0]
    assert decide(proba, threshold=0.45, pos_index=0).tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="pos_index"):
        decide(proba, threshold=0.5)
    # prior 9:1 -> log-odds shift tau * log 9 towards class 1
    assert decide(proba, posthoc_tau=1.0, class_counts=[90, 10]).tolist() == [1, 1, 1]
    assert decide(proba, posthoc_tau=0.0, class_counts=[90, 10]).tolist() == [0, 1, 0]
    proba3 = np.array([[0.5, 0.3, 0.2]])
    assert decide(proba3, posthoc_tau=1.0, class_counts=[100, 30, 10]).tolist() == [2]
