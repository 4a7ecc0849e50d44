"""Scores of out-of-fold predictions and paired fold comparisons, behind ``compare``.

The metrics and their conventions are the registry's
(:mod:`imbal_estimators.decision.metrics`): binary problems score the positive
class ``pos_label`` (:mod:`imbal_estimators.decision.positive`), multi-class
problems average over the classes. Thresholds are tuned by
:mod:`imbal_estimators.decision.threshold` and applied by
:func:`imbal_estimators.decision.posthoc.decide`.
"""

import numpy as np

from .metrics import REPORT_METRICS, score

METRICS = REPORT_METRICS  # the columns of compare's table and of the report
BASELINE = "ce"  # the configuration every other is compared with
TUNED_SUFFIX = " + tuned threshold"  # names the tuned-threshold row of a configuration


def score_predictions(y_true, y_pred, proba, classes, pos_label=None):
    """Every metric of :data:`METRICS` for one set of predictions.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n,)
        True and predicted labels (original labels, not indices).
    proba : ndarray of shape (n, n_classes)
        Class probabilities, columns ordered like ``classes``.
    classes : ndarray of shape (n_classes,)
    pos_label : label, optional
        The positive class of a binary problem (needed there); ignored for
        multi-class.

    Returns
    -------
    scores : dict of str to float
    """
    return {name: score(name, y_true, proba, classes, pos_label, y_pred=y_pred) for name in METRICS}


def paired_difference(scores, baseline):
    """Compare two configurations scored on the same folds.

    Parameters
    ----------
    scores, baseline : array-like of shape (n_folds,)

    Returns
    -------
    dict
        ``mean`` and ``std`` of the per-fold differences ``scores - baseline``,
        ``wins`` (folds where ``scores`` is higher), ``n_folds``, and
        ``exceeds_spread``: whether the mean difference is larger than the
        standard deviation of the differences, i.e. the gain is bigger than
        the fold-to-fold noise.
    """
    diff = np.asarray(scores, dtype=float) - np.asarray(baseline, dtype=float)
    mean, std = float(diff.mean()), float(diff.std())
    return {
        "mean": mean,
        "std": std,
        "wins": int(np.sum(diff > 0)),
        "n_folds": len(diff),
        "exceeds_spread": bool(abs(mean) > std and abs(mean) > 1e-12),
    }
