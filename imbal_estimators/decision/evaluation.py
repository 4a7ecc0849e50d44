"""Scores of predictions, decision thresholds and paired fold comparisons.

One convention everywhere (``compare``, the reports and the CLI):

* **binary** problems score the positive class ``pos_label`` (by default the
  rarer class): F1, precision and recall of that class, and the average
  precision of its probability;
* **multi-class** problems average over classes: macro F1, macro precision and
  recall, and the one-vs-rest average precision averaged over the classes
  present (``average_precision`` macro OvR).

Precision and recall use ``zero_division=0``, so a model that never predicts a
class scores 0 there instead of NaN.
"""

import warnings

import numpy as np
from sklearn import metrics

METRICS = ("f1", "balanced_accuracy", "average_precision", "precision", "recall")
THRESHOLD_METRICS = ("f1", "balanced_accuracy", "precision", "recall")
BASELINE = "ce"  # the configuration every other is compared with
TUNED_SUFFIX = " + tuned threshold"  # names the tuned-threshold row of a configuration


def default_pos_label(labels):
    """The rarer class of a binary problem (the later one on a tie), else None."""
    classes, counts = np.unique(np.asarray(labels), return_counts=True)
    if len(classes) != 2:
        return None
    return classes[0] if counts[0] < counts[1] else classes[1]


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
        The positive class of a binary problem; ignored for multi-class.

    Returns
    -------
    scores : dict of str to float
    """
    y_true, y_pred, proba = np.asarray(y_true), np.asarray(y_pred), np.asarray(proba)
    classes = np.asarray(classes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. "y_pred contains classes not in y_true"
        scores = {"balanced_accuracy": metrics.balanced_accuracy_score(y_true, y_pred)}
        if len(classes) == 2:
            pos = classes[1] if pos_label is None else pos_label
            column = int(np.flatnonzero(classes == pos)[0])
            kwargs = dict(pos_label=pos, average="binary", zero_division=0)
            scores["average_precision"] = metrics.average_precision_score(
                y_true == pos, proba[:, column]
            )
        else:
            kwargs = dict(labels=classes, average="macro", zero_division=0)
            present = [i for i, c in enumerate(classes) if np.any(y_true == c)]
            scores["average_precision"] = np.mean(
                [
                    metrics.average_precision_score(y_true == classes[i], proba[:, i])
                    for i in present
                ]
            )
        scores["f1"] = metrics.f1_score(y_true, y_pred, **kwargs)
        scores["precision"] = metrics.precision_score(y_true, y_pred, **kwargs)
        scores["recall"] = metrics.recall_score(y_true, y_pred, **kwargs)
    return {name: float(scores[name]) for name in METRICS}


def predict_with_threshold(proba, classes, pos_label, threshold):
    """Binary decisions: ``pos_label`` where its probability is >= ``threshold``."""
    classes = np.asarray(classes)
    column = int(np.flatnonzero(classes == pos_label)[0])
    negative = classes[1 - column]
    return np.where(np.asarray(proba)[:, column] >= threshold, pos_label, negative)


def tune_threshold(y_true, proba, classes, pos_label, scoring="f1"):
    """The threshold on ``P(pos_label)`` that maximizes ``scoring`` on these predictions.

    Call it on predictions the model was not tested on (the estimator's internal
    validation split), never on the test fold.

    Parameters
    ----------
    y_true : array-like of shape (n,)
    proba : ndarray of shape (n, 2)
    classes : ndarray of shape (2,)
    pos_label : label
    scoring : str, default="f1"
        A metric of :data:`THRESHOLD_METRICS`; a ranking metric such as
        ``"average_precision"`` does not depend on the threshold, so F1 is
        maximized instead.

    Returns
    -------
    threshold : float
        Among equally good thresholds, the one closest to 0.5; 0.5 when
        ``y_true`` holds a single class.
    """
    y_true, classes = np.asarray(y_true), np.asarray(classes)
    if scoring not in THRESHOLD_METRICS:
        scoring = "f1"
    if len(np.unique(y_true)) < 2:
        return 0.5
    column = int(np.flatnonzero(classes == pos_label)[0])
    p = np.sort(np.asarray(proba, dtype=float)[:, column])
    distinct = np.unique(p)
    # midpoints between distinct probabilities give every distinct decision, plus 0.5
    candidates = np.unique(np.concatenate([(distinct[1:] + distinct[:-1]) / 2, [0.5]]))
    values = threshold_scores(y_true == pos_label, proba[:, column], candidates)[scoring]
    best = candidates[np.isclose(values, np.nanmax(values))]
    return float(best[np.argmin(np.abs(best - 0.5))])


def threshold_scores(is_pos, p, thresholds):
    """F1, precision, recall and balanced accuracy of ``p >= t`` for every ``t`` at once.

    Parameters
    ----------
    is_pos : array-like of bool, shape (n,)
        Whether each sample belongs to the positive class.
    p : array-like of shape (n,)
        Its predicted probability of the positive class.
    thresholds : array-like of shape (m,)

    Returns
    -------
    dict of str to ndarray of shape (m,)
        Computed from cumulative counts after one sort, not m metric calls.
    """
    order = np.argsort(p, kind="stable")
    p_sorted, pos_sorted = np.asarray(p, dtype=float)[order], np.asarray(is_pos)[order]
    n, n_pos = len(p_sorted), int(pos_sorted.sum())
    n_neg = n - n_pos
    first = np.searchsorted(p_sorted, thresholds, side="left")  # rows below t: predicted negative
    pos_below = np.concatenate([[0], np.cumsum(pos_sorted)])[first]
    tp = n_pos - pos_below
    predicted = n - first
    fp = predicted - tp
    tn = n_neg - fp
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / np.maximum(predicted, 1), 0.0)
        recall = tp / max(n_pos, 1)
        f1 = np.where(tp > 0, 2 * tp / (2 * tp + fp + (n_pos - tp)), 0.0)
        specificity = tn / max(n_neg, 1)
    return {
        "f1": f1,
        "precision": precision,
        "recall": recall,
        "balanced_accuracy": (recall + specificity) / 2,
    }


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


class PredictionScorer:
    """A scikit-learn scorer ``scorer(estimator, X, y)`` for one metric of :data:`METRICS`.

    It follows this module's conventions (the positive class ``pos_label`` of a
    binary problem, macro averages otherwise), whatever the labels' type, where
    scikit-learn's ``"f1"`` needs the label 1. Decisions are argmax.

    Parameters
    ----------
    metric : str
        A name of :data:`METRICS`.
    pos_label : label, optional
        Positive class of a binary problem; default: ``classes_[1]``.
    """

    def __init__(self, metric, pos_label=None):
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}; got {metric!r}.")
        self.metric = metric
        self.pos_label = pos_label

    def __call__(self, estimator, X, y):
        proba = estimator.predict_proba(X)
        classes = np.asarray(estimator.classes_)
        y_pred = classes[np.asarray(proba).argmax(axis=1)]
        pos_label = self.pos_label if len(classes) == 2 else None
        return score_predictions(y, y_pred, proba, classes, pos_label)[self.metric]

    def __repr__(self):
        return f"PredictionScorer({self.metric!r}, pos_label={self.pos_label!r})"
