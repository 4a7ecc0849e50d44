"""The one binary threshold tuner: the cut on ``P(positive)`` that maximizes a metric.

``threshold="auto"`` (through :func:`~imbal_estimators.decision.posthoc.fit_decision`),
``compare``'s tuned-threshold rows and the report's F1-against-threshold curve
all use this module. Decisions are ``positive where P(positive) >= threshold``.

* **Kernel.** :func:`confusion_counts` sorts the probabilities once and reads the
  true/false positive counts of every threshold from cumulative sums
  (``searchsorted``), so ``m`` thresholds cost one sort plus ``O(m log n)``, not
  ``m`` metric calls. The metric's value at each threshold comes from its
  registry entry's ``from_counts`` (:mod:`imbal_estimators.decision.metrics`).
* **Candidate grid.** With the distinct probabilities ``v_1 < ... < v_m``, the
  candidates are the midpoints ``(v_i + v_{i+1}) / 2`` (each gives one of the
  distinct decisions) and ``v_1 / 2`` (every sample positive). Deciding
  "nothing positive" is not a candidate: it needs a threshold above every
  probability, possibly above 1.
* **Ties.** Among candidates whose value is within ``1e-12`` of the best, the
  one closest to 0.5 wins (the default decision is kept when it is as good);
  of two equally close, the lower.
* **Metrics.** The decision metrics of the registry
  (:data:`~imbal_estimators.decision.metrics.THRESHOLD_METRICS`: ``"f1"``,
  ``"f1_macro"``, ``"balanced_accuracy"``, ``"mcc"``, ``"precision"``,
  ``"recall"``). Any other name is a ``ValueError`` naming the metric and
  these options, ranking metrics (``"average_precision"``, ``"roc_auc"``)
  included: no threshold changes them. Nothing falls back silently; the
  estimator's rule for a threshold-free ``monitor`` is
  :func:`~imbal_estimators.decision.posthoc.threshold_metric`.
* **One class.** Where ``is_positive`` holds a single class (e.g. no positive
  image in a validation split) no cut can be told from another: the tuner
  returns ``(0.5, nan)`` with a ``UserWarning`` that says so.
"""

import numpy as np

from ..utils.warn import warn
from .metrics import METRICS, THRESHOLD_METRICS

# Values this close to the best count as ties (float64 sums of counts).
_TIE = 1e-12


def confusion_counts(proba_positive, is_positive, thresholds):
    """``(tp, fp, fn, tn)`` of the decisions ``proba_positive >= t`` for every ``t``.

    Parameters
    ----------
    proba_positive : array-like of shape (n_samples,)
        Probability of the positive class.
    is_positive : array-like of bool of shape (n_samples,)
    thresholds : array-like of shape (n_thresholds,)

    Returns
    -------
    tp, fp, fn, tn : ndarrays of int of shape (n_thresholds,)
    """
    p = np.asarray(proba_positive, dtype=np.float64)
    hits = np.asarray(is_positive, dtype=bool)
    order = np.argsort(p, kind="stable")
    p, hits = p[order], hits[order]
    n_pos = int(hits.sum())
    n_neg = len(hits) - n_pos
    # the first `below` sorted samples are < t: predicted negative
    below = np.searchsorted(p, np.asarray(thresholds, dtype=np.float64), side="left")
    fn = np.concatenate([[0], np.cumsum(hits)])[below]
    tn = below - fn
    return n_pos - fn, n_neg - tn, fn, tn


def threshold_curve(proba_positive, is_positive, thresholds, metric="f1"):
    """The value of the decision metric ``metric`` at every threshold of ``thresholds``.

    Parameters
    ----------
    proba_positive, is_positive, thresholds : see :func:`confusion_counts`
    metric : str, default="f1"
        One of :data:`~imbal_estimators.decision.metrics.THRESHOLD_METRICS`.

    Returns
    -------
    ndarray of shape (n_thresholds,)
    """
    entry = _threshold_metric(metric)
    return entry.from_counts(*confusion_counts(proba_positive, is_positive, thresholds))


def threshold_candidates(proba_positive):
    """The candidate grid of :func:`tune_threshold` (see the module docstring), ascending."""
    distinct = np.unique(np.asarray(proba_positive, dtype=np.float64))
    lower = np.concatenate([[0.0], distinct[:-1]])
    middle = (lower + distinct) / 2
    # two adjacent floats have no float between them: take the upper one
    return np.where(middle > lower, middle, distinct)


def tune_threshold(proba_positive, is_positive, metric="f1"):
    """The threshold on ``P(positive)`` that maximizes ``metric``.

    Tune on predictions the model was not trained on (the estimator's internal
    validation split), never on the data it is tested on.

    Parameters
    ----------
    proba_positive : array-like of shape (n_samples,)
        Probability of the positive class.
    is_positive : array-like of bool of shape (n_samples,)
        Whether each sample belongs to the positive class.
    metric : str, default="f1"
        A decision metric of the registry (see the module docstring).

    Returns
    -------
    threshold : float
        Decide positive where ``proba_positive >= threshold``.
    score : float
        The metric's value at that threshold; NaN with a single class.

    Raises
    ------
    ValueError
        For a metric that is unknown or does not depend on the threshold, for
        empty or mismatched inputs, and for non-finite probabilities.

    Examples
    --------
    >>> tune_threshold([0.1, 0.2, 0.3, 0.35], [False, False, True, True])
    (0.25, 1.0)
    """
    _threshold_metric(metric)
    p = np.asarray(proba_positive, dtype=np.float64).ravel()
    hits = np.asarray(is_positive).ravel()
    if len(p) == 0 or len(p) != len(hits):
        raise ValueError(
            f"proba_positive and is_positive must be non-empty and of one length; got "
            f"{len(p)} and {len(hits)}."
        )
    if not np.all(np.isfinite(p)):
        raise ValueError("proba_positive holds non-finite values (a diverged model?).")
    hits = hits.astype(bool)
    n_pos = int(hits.sum())
    if n_pos in (0, len(hits)):
        warn(
            f"tune_threshold needs both classes to compare thresholds; is_positive has "
            f"{n_pos} positive and {len(hits) - n_pos} negative samples. Returning the "
            "threshold 0.5."
        )
        return 0.5, float("nan")
    candidates = threshold_candidates(p)
    values = threshold_curve(p, hits, candidates, metric)
    best = np.flatnonzero(values >= values.max() - _TIE)
    pick = best[np.argmin(np.abs(candidates[best] - 0.5))]  # argmin: the lower on a tie
    return float(candidates[pick]), float(values[pick])


def _threshold_metric(name):
    if name not in THRESHOLD_METRICS:
        known = isinstance(name, str) and name in METRICS
        reason = "does not depend on the threshold" if known else "is unknown"
        raise ValueError(
            f"metric={name!r} {reason}; tune a threshold for one of {list(THRESHOLD_METRICS)}."
        )
    return METRICS[name]
