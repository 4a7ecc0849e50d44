"""Imbalance-aware validation metrics computed from class probabilities.

These decide which epoch the estimator keeps (``monitor=``). Binary problems
score the positive class ``classes_[1]``; multi-class problems average over
classes (macro).
"""

import warnings

import numpy as np
from sklearn import metrics


def _balanced_accuracy(y, proba):
    return metrics.balanced_accuracy_score(y, proba.argmax(axis=1))


def _f1(y, proba):
    if proba.shape[1] > 2:
        return _f1_macro(y, proba)
    return metrics.f1_score(y, proba.argmax(axis=1), zero_division=0)


def _f1_macro(y, proba):
    labels = np.arange(proba.shape[1])
    return metrics.f1_score(
        y, proba.argmax(axis=1), labels=labels, average="macro", zero_division=0
    )


def _average_precision(y, proba):
    if proba.shape[1] == 2:
        return metrics.average_precision_score(y == 1, proba[:, 1])
    present = np.unique(y)
    return float(np.mean([metrics.average_precision_score(y == c, proba[:, c]) for c in present]))


def _roc_auc(y, proba):
    if proba.shape[1] == 2:
        return metrics.roc_auc_score(y == 1, proba[:, 1])
    # one-vs-rest over the classes present: a tiny class may be missing from validation
    present = np.unique(y)
    return float(np.mean([metrics.roc_auc_score(y == c, proba[:, c]) for c in present]))


def _mcc(y, proba):
    return metrics.matthews_corrcoef(y, proba.argmax(axis=1))


MONITOR_METRICS = {
    "balanced_accuracy": _balanced_accuracy,
    "f1": _f1,
    "f1_macro": _f1_macro,
    "average_precision": _average_precision,
    "roc_auc": _roc_auc,
    "mcc": _mcc,
}
MONITOR_OPTIONS = (*MONITOR_METRICS, "valid_loss")


def score_probabilities(name, y_true, proba):
    """Score encoded labels ``y_true`` against probabilities ``proba`` with metric ``name``.

    Returns NaN where the metric is undefined (e.g. one class in ``y_true``)
    and for non-finite probabilities (a diverged model is never "best").
    """
    proba = np.asarray(proba)
    if not np.all(np.isfinite(proba)):
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return float(MONITOR_METRICS[name](np.asarray(y_true), proba))
        except ValueError:
            return float("nan")
