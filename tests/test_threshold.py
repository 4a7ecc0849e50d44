"""The one threshold tuner: kernel, candidate grid, ties, unknown metrics, one-class splits."""

import warnings

import numpy as np
import pytest
from sklearn import metrics

from imbal_estimators.decision.metrics import THRESHOLD_METRICS
from imbal_estimators.decision.threshold import (
    confusion_counts,
    threshold_candidates,
    threshold_curve,
    tune_threshold,
)

SKLEARN = {
    "f1": lambda y, p: metrics.f1_score(y, p, zero_division=0),
    "f1_macro": lambda y, p: metrics.f1_score(y, p, average="macro", zero_division=0),
    "balanced_accuracy": metrics.balanced_accuracy_score,
    "mcc": metrics.matthews_corrcoef,
    "precision": lambda y, p: metrics.precision_score(y, p, zero_division=0),
    "recall": lambda y, p: metrics.recall_score(y, p, zero_division=0),
}


def _binary(n=200, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.2
    # positives score higher on average, with overlap and some tied scores
    scores = np.clip(0.25 + 0.3 * y + rng.normal(0, 0.15, n), 0, 1).round(2)
    return scores, y


def test_every_decision_metric_of_the_registry_is_tunable():
    assert set(THRESHOLD_METRICS) == set(SKLEARN)


def test_confusion_counts_match_direct_counting():
    scores, y = _binary(seed=4)
    thresholds = np.array([-1.0, 0.0, 0.25, 0.31, 0.5, 0.99, 1.0, 2.0])
    tp, fp, fn, tn = confusion_counts(scores, y, thresholds)
    for i, t in enumerate(thresholds):
        pred = scores >= t
        assert (tp[i], fp[i], fn[i], tn[i]) == (
            np.sum(pred & y),
            np.sum(pred & ~y),
            np.sum(~pred & y),
            np.sum(~pred & ~y),
        )


@pytest.mark.parametrize("metric", sorted(SKLEARN))
def test_curve_matches_scikit_learn_at_every_candidate(metric):
    scores, y = _binary(seed=5)
    candidates = np.concatenate([threshold_candidates(scores), [0.0, 0.5, 1.0, 1.5]])
    curve = threshold_curve(scores, y, candidates, metric)
    expected = [SKLEARN[metric](y, scores >= t) for t in candidates]
    np.testing.assert_allclose(curve, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("metric", sorted(SKLEARN))
@pytest.mark.parametrize("seed", [0, 1])
def test_threshold_is_the_best_cut_by_brute_force(metric, seed):
    scores, y = _binary(seed=seed)
    threshold, value = tune_threshold(scores, y, metric)
    # every threshold gives the decisions of some threshold in [0, max + 1]
    brute = max(SKLEARN[metric](y, scores >= t) for t in np.r_[np.unique(scores), 0.0])
    assert value == pytest.approx(brute, abs=1e-12)
    assert SKLEARN[metric](y, scores >= threshold) == pytest.approx(value, abs=1e-12)
    assert not np.isin(threshold, scores)  # a midpoint, never on a score


def test_candidates_are_midpoints_plus_the_all_positive_cut():
    np.testing.assert_allclose(threshold_candidates([0.6, 0.2, 0.2, 0.8]), [0.1, 0.4, 0.7])


def test_threshold_moves_below_half_for_a_rare_positive_class():
    rng = np.random.default_rng(2)
    y = rng.random(300) < 0.15
    scores = np.clip(0.2 + 0.2 * y + rng.normal(0, 0.08, 300), 0, 1)  # positives around 0.4
    threshold, value = tune_threshold(scores, y, "f1")
    assert threshold < 0.5
    assert value > metrics.f1_score(y, scores >= 0.5)


def test_ties_prefer_the_threshold_closest_to_half():
    # perfectly separated: the one perfect cut lies between 0.2 and 0.8
    assert tune_threshold([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1], "f1") == (0.5, 1.0)
    # balanced accuracy 0.75 at the cuts 0.3 and 0.7: equally close to 0.5, the lower wins
    threshold, value = tune_threshold([0.2, 0.4, 0.6, 0.8], [0, 1, 0, 1], "balanced_accuracy")
    assert (threshold, value) == (pytest.approx(0.3), pytest.approx(0.75))
    # near the middle beats a far cut of the same value
    threshold, _ = tune_threshold([0.05, 0.1, 0.45, 0.9], [0, 1, 0, 1], "balanced_accuracy")
    assert threshold == pytest.approx(0.675)


def test_unknown_metric_names_the_metric_and_the_options():
    with pytest.raises(ValueError, match=r"metric='accuracy' is unknown; .*'f1'.*'mcc'"):
        tune_threshold([0.2, 0.7], [0, 1], "accuracy")


@pytest.mark.parametrize("metric", ["roc_auc", "average_precision"])
def test_ranking_metric_is_refused_not_replaced(metric):
    with pytest.raises(ValueError, match=f"metric='{metric}' does not depend on the threshold"):
        tune_threshold([0.2, 0.7], [0, 1], metric)


@pytest.mark.parametrize("truth", [[1, 1], [0, 0]])
def test_one_class_warns_and_returns_half(truth):
    with pytest.warns(UserWarning, match="needs both classes") as record:
        threshold, value = tune_threshold([0.2, 0.7], truth, "f1")
    assert threshold == 0.5 and np.isnan(value)
    assert record[0].filename == __file__  # names the caller's line


def test_bad_inputs():
    with pytest.raises(ValueError, match="non-finite"):
        tune_threshold([0.2, np.nan], [0, 1])
    with pytest.raises(ValueError, match="one length"):
        tune_threshold([0.2, 0.3], [0, 1, 1])
    with pytest.raises(ValueError, match="non-empty"):
        tune_threshold([], [])


def test_no_warning_with_both_classes():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tune_threshold([0.1, 0.2, 0.3, 0.35], [0, 0, 1, 1]) == (0.25, 1.0)
