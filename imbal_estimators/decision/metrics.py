"""The metric registry: every metric name the package accepts, defined once.

``monitor=`` (which epoch the estimator keeps), ``threshold="auto"`` (what the
threshold maximizes), ``compare`` and the report (how predictions are scored),
``ImbalanceSearchCV`` and the CLI (which names they offer) all read
:data:`METRICS`. Each entry says

* whether it scores **decisions** (``response="predict"``: it depends on the
  threshold) or **probabilities** (``response="predict_proba"``: a ranking
  metric, which no threshold changes);
* how a **binary** problem is scored: metrics that single out a class (F1,
  precision, recall, average precision) score the positive class
  ``pos_label`` (:mod:`imbal_estimators.decision.positive`: by default the
  rarer class); the others (balanced accuracy, MCC, macro F1, ROC AUC) are
  symmetric in the two classes;
* how a **multi-class** problem is averaged: ``"macro"`` (unweighted mean over
  ``classes``, ``zero_division=0``), ``"ovr"`` (one-vs-rest, averaged over
  the classes present in ``y_true``: a tiny class may be missing from a
  validation split) or ``"native"`` (the metric is defined for several classes);
* ``from_counts``: for decision metrics, the binary value from confusion counts
  ``(tp, fp, fn, tn)``, vectorized; the threshold tuner
  (:mod:`imbal_estimators.decision.threshold`) evaluates every candidate
  threshold with it after one sort.

Precision, recall and F1 use ``zero_division=0``: a model that never predicts a
class scores 0 there, not NaN. A metric that is undefined on its input (ROC AUC
or average precision with one class in ``y_true``; non-finite probabilities
from a diverged model) is NaN, and NaN is never a best epoch.
"""

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn import metrics as skm

from ..data.labels import resolve_pos_label


@dataclass(frozen=True)
class Metric:
    """One entry of the registry.

    Parameters
    ----------
    name : str
    function : callable
        ``function(y_true, response, classes, pos_label) -> float``, where
        ``response`` is the predicted labels or the ``(n, n_classes)``
        probabilities (see ``response``).
    response : {"predict", "predict_proba"}
        What the metric scores: decisions or probabilities.
    multiclass : {"macro", "ovr", "native"}
        The averaging of a multi-class problem.
    uses_pos_label : bool
        Whether a binary problem's value depends on which class is positive.
    from_counts : callable or None
        Binary decision metrics: ``from_counts(tp, fp, fn, tn)`` on arrays.
    greater_is_better : bool, default=True
    """

    name: str
    function: Callable
    response: str
    multiclass: str
    uses_pos_label: bool
    from_counts: Callable | None = None
    greater_is_better: bool = True

    @property
    def depends_on_threshold(self):
        """Decision metrics change with the threshold; ranking metrics do not."""
        return self.response == "predict"


def _ratio(numerator, denominator):
    numerator, denominator = np.asarray(numerator, float), np.asarray(denominator, float)
    safe = np.where(denominator > 0, denominator, 1.0)
    return np.where(denominator > 0, numerator / safe, 0.0)


def _f1_counts(tp, fp, fn, tn):
    return _ratio(2 * tp, 2 * tp + fp + fn)


def _f1_macro_counts(tp, fp, fn, tn):
    return (_ratio(2 * tp, 2 * tp + fp + fn) + _ratio(2 * tn, 2 * tn + fn + fp)) / 2


def _precision_counts(tp, fp, fn, tn):
    return _ratio(tp, tp + fp)


def _recall_counts(tp, fp, fn, tn):
    return _ratio(tp, tp + fn)


def _balanced_accuracy_counts(tp, fp, fn, tn):
    # the mean recall over the classes present, as scikit-learn's
    positives, negatives = np.asarray(tp + fn, float), np.asarray(tn + fp, float)
    present = (positives > 0).astype(float) + (negatives > 0)
    return _ratio(_ratio(tp, positives) + _ratio(tn, negatives), present)


def _mcc_counts(tp, fp, fn, tn):
    tp, fp, fn, tn = (np.asarray(v, float) for v in (tp, fp, fn, tn))
    return _ratio(tp * tn - fp * fn, np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)))


def confusion_counts(y_true, y_pred, classes):
    """The ``(n_classes, n_classes)`` confusion counts (rows true, columns predicted).

    ``None`` when the counts cannot say what scikit-learn's metric would: a label
    outside ``classes``, ``classes`` not sorted and unique, or no samples. The
    decision metrics below are computed from these counts, which is what
    scikit-learn computes them from too, without its input checks (a validation
    epoch's score took 2.4 ms there, for a few dozen images).
    """
    classes, y_true, y_pred = np.asarray(classes), np.asarray(y_true), np.asarray(y_pred)
    n = len(classes)
    if len(y_true) == 0 or len(y_true) != len(y_pred) or n == 0:
        return None
    if y_true.dtype.kind in "iu" and y_pred.dtype.kind in "iu" and _is_range(classes):
        true_index, pred_index = y_true, y_pred  # class indices already (the callbacks')
        if (
            min(true_index.min(), pred_index.min()) < 0
            or max(true_index.max(), pred_index.max()) >= n
        ):
            return None
    else:
        try:
            if n > 1 and not np.all(classes[:-1] < classes[1:]):
                return None
            true_index = np.searchsorted(classes, y_true)
            pred_index = np.searchsorted(classes, y_pred)
            if (
                true_index.max() >= n
                or pred_index.max() >= n
                or np.any(classes[true_index] != y_true)
                or np.any(classes[pred_index] != y_pred)
            ):
                return None
        except (TypeError, ValueError):  # labels that do not compare with the classes
            return None
    flat = true_index.astype(np.int64) * n + pred_index.astype(np.int64)
    return np.bincount(flat, minlength=n * n).reshape(n, n)


def _is_range(classes):
    return classes.dtype.kind in "iu" and np.array_equal(classes, np.arange(len(classes)))


def _per_class_counts(C):
    """``tp, fp, fn`` per class from confusion counts."""
    tp = np.diag(C).astype(np.float64)
    return tp, C.sum(axis=0) - tp, C.sum(axis=1) - tp


def _label_metric_from_counts(kind, C, classes, pos_label):
    """F1, precision or recall (``zero_division=0``) of the positive class (binary) or the
    macro mean over ``classes``, as scikit-learn's ``average="binary"``/``"macro"``."""
    tp, fp, fn = _per_class_counts(C)
    if kind == "f1":
        values = _ratio(2 * tp, 2 * tp + fp + fn)
    elif kind == "precision":
        values = _ratio(tp, tp + fp)
    else:
        values = _ratio(tp, tp + fn)
    if len(classes) == 2:
        return float(values[int(np.flatnonzero(np.asarray(classes) == pos_label)[0])])
    return float(np.mean(values))


def _of_positive_or_macro(function, kind, y_true, y_pred, classes, pos_label):
    """A label metric (f1, precision, recall): the positive class's, or the macro mean
    (from the confusion counts; scikit-learn's ``function`` where there are none)."""
    C = confusion_counts(y_true, y_pred, classes)
    if C is not None and (len(classes) != 2 or np.any(np.asarray(classes) == pos_label)):
        return _label_metric_from_counts(kind, C, classes, pos_label)
    if len(classes) == 2:
        kwargs = dict(pos_label=pos_label, average="binary")
    else:
        kwargs = dict(labels=classes, average="macro")
    return function(y_true, y_pred, zero_division=0, **kwargs)


def _f1(y_true, y_pred, classes, pos_label):
    return _of_positive_or_macro(skm.f1_score, "f1", y_true, y_pred, classes, pos_label)


def _precision(y_true, y_pred, classes, pos_label):
    return _of_positive_or_macro(
        skm.precision_score, "precision", y_true, y_pred, classes, pos_label
    )


def _recall(y_true, y_pred, classes, pos_label):
    return _of_positive_or_macro(skm.recall_score, "recall", y_true, y_pred, classes, pos_label)


def _f1_macro(y_true, y_pred, classes, pos_label):
    C = confusion_counts(y_true, y_pred, classes)
    if C is not None:
        tp, fp, fn = _per_class_counts(C)
        return float(np.mean(_ratio(2 * tp, 2 * tp + fp + fn)))
    return skm.f1_score(y_true, y_pred, labels=classes, average="macro", zero_division=0)


def _balanced_accuracy(y_true, y_pred, classes, pos_label):
    C = confusion_counts(y_true, y_pred, classes)
    if C is None:
        return skm.balanced_accuracy_score(y_true, y_pred)
    # scikit-learn's own steps: the mean recall over the classes y_true holds
    support = C.sum(axis=1)
    per_class = np.diag(C)[support > 0] / support[support > 0]
    return float(np.mean(per_class))


def _mcc(y_true, y_pred, classes, pos_label):
    C = confusion_counts(y_true, y_pred, classes)
    if C is None:
        return skm.matthews_corrcoef(y_true, y_pred)
    # scikit-learn's formula, step by step
    t_sum = C.sum(axis=1, dtype=np.float64)
    p_sum = C.sum(axis=0, dtype=np.float64)
    n_correct = np.trace(C, dtype=np.float64)
    n_samples = p_sum.sum()
    cov_ytyp = n_correct * n_samples - np.dot(t_sum, p_sum)
    cov_ypyp = n_samples**2 - np.dot(p_sum, p_sum)
    cov_ytyt = n_samples**2 - np.dot(t_sum, t_sum)
    if cov_ypyp * cov_ytyt == 0:
        return 0.0
    return float(cov_ytyp / np.sqrt(cov_ypyp * cov_ytyt))


def _of_positive_or_ovr(function, y_true, proba, classes, pos_label):
    """A ranking metric: of the positive class's probability, or one-vs-rest averaged."""
    if len(classes) == 2:  # ROC AUC is the same for either column: None takes 1
        wanted = [1 if pos_label is None else int(np.flatnonzero(classes == pos_label)[0])]
    else:
        wanted = [i for i, c in enumerate(classes) if np.any(y_true == c)]
    values = []
    for i in wanted:
        hits = y_true == classes[i]
        if hits.all() or not hits.any():  # undefined with one class in y_true
            return float("nan")
        values.append(function(hits, proba[:, i]))
    return float(np.mean(values))


def _average_precision(y_true, proba, classes, pos_label):
    return _of_positive_or_ovr(skm.average_precision_score, y_true, proba, classes, pos_label)


def _roc_auc(y_true, proba, classes, pos_label):
    return _of_positive_or_ovr(skm.roc_auc_score, y_true, proba, classes, pos_label)


METRICS = {
    metric.name: metric
    for metric in (
        Metric("f1", _f1, "predict", "macro", True, _f1_counts),
        Metric("f1_macro", _f1_macro, "predict", "macro", False, _f1_macro_counts),
        Metric(
            "balanced_accuracy",
            _balanced_accuracy,
            "predict",
            "native",
            False,
            _balanced_accuracy_counts,
        ),
        Metric("mcc", _mcc, "predict", "native", False, _mcc_counts),
        Metric("precision", _precision, "predict", "macro", True, _precision_counts),
        Metric("recall", _recall, "predict", "macro", True, _recall_counts),
        Metric("average_precision", _average_precision, "predict_proba", "ovr", True),
        Metric("roc_auc", _roc_auc, "predict_proba", "ovr", False),
    )
}

#: What ``monitor=`` takes: the metrics worth keeping an epoch for, and the loss.
MONITOR_OPTIONS = (
    "balanced_accuracy",
    "f1",
    "f1_macro",
    "average_precision",
    "roc_auc",
    "mcc",
    "valid_loss",
)
#: What ``compare``, ``tune`` and ``ImbalanceSearchCV`` can rank by. Precision
#: and recall alone are left out: each is maximized by a degenerate model.
SCORING_OPTIONS = ("f1", "f1_macro", "balanced_accuracy", "average_precision", "roc_auc", "mcc")
#: The columns of ``compare``'s table and of the report.
REPORT_METRICS = ("f1", "balanced_accuracy", "average_precision", "precision", "recall")
#: Metrics a threshold can be tuned for (decision metrics).
THRESHOLD_METRICS = tuple(name for name, m in METRICS.items() if m.depends_on_threshold)


def get_metric(name):
    """The registry entry of ``name``; a ValueError names the options otherwise."""
    try:
        return METRICS[name]
    except (KeyError, TypeError):
        raise ValueError(f"Unknown metric {name!r}; the metrics are {sorted(METRICS)}.") from None


def score(name, y_true, proba, classes, pos_label=None, *, y_pred=None):
    """Score predictions with the registry's metric ``name``.

    Parameters
    ----------
    name : str
        A key of :data:`METRICS`.
    y_true : array-like of shape (n_samples,)
        True labels, elements of ``classes`` (or class indices with
        ``classes=np.arange(n_classes)``).
    proba : array-like of shape (n_samples, n_classes) or None
        Probabilities, columns ordered like ``classes``. Needed by ranking
        metrics, and by decision metrics when ``y_pred`` is not given.
    classes : array-like of shape (n_classes,)
    pos_label : label, optional
        The positive class of a binary problem (an element of ``classes``);
        needed by the metrics that single out a class (``uses_pos_label``).
        Ignored for multi-class problems.
    y_pred : array-like of shape (n_samples,), optional
        Predicted labels for decision metrics; default: the argmax of ``proba``.

    Returns
    -------
    float
        NaN where the metric is undefined (see the module docstring).
    """
    metric = get_metric(name)
    classes, y_true = np.asarray(classes), np.asarray(y_true)
    binary = len(classes) == 2
    if binary and metric.uses_pos_label:
        if pos_label is None:
            raise ValueError(
                f"metric {name!r} of a binary problem scores the positive class; pass "
                f"pos_label (one of {classes.tolist()})."
            )
        pos_label = resolve_pos_label(pos_label, classes, None)
    if metric.response == "predict_proba" or y_pred is None:
        proba = np.asarray(proba, dtype=np.float64)
        if not np.all(np.isfinite(proba)):
            return float("nan")
    if metric.response == "predict_proba":
        response = proba
    else:
        response = classes[proba.argmax(axis=1)] if y_pred is None else np.asarray(y_pred)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. "y_pred contains classes not in y_true"
        return float(metric.function(y_true, response, classes, pos_label))


class Scorer:
    """A scikit-learn scorer ``scorer(estimator, X, y)`` for a metric of the registry.

    Unlike scikit-learn's ``"f1"`` (the label 1), it scores the estimator's
    positive class: ``pos_label`` when given, else the fitted estimator's
    ``pos_label_`` (:class:`~imbal_estimators.ImageImbalanceClassifier`), else,
    for an estimator without one, the rarer class of the scored ``y``.
    Multi-class problems are averaged as the registry says. Decision metrics
    score ``estimator.predict`` (so a fitted threshold counts), ranking metrics
    ``estimator.predict_proba``.

    Parameters
    ----------
    name : str
        A key of :data:`METRICS`.
    pos_label : label, optional
    """

    def __init__(self, name, pos_label=None):
        get_metric(name)  # an unknown name fails here
        self.name = name
        self.pos_label = pos_label

    def __call__(self, estimator, X, y):
        classes = np.asarray(estimator.classes_)
        y = np.asarray(y)
        pos_label = self.pos_label
        if pos_label is None and len(classes) == 2:
            pos_label = getattr(estimator, "pos_label_", None)
            if pos_label is None:
                counts = [np.sum(y == c) for c in classes]
                pos_label = resolve_pos_label(None, classes, counts)
        if get_metric(self.name).response == "predict_proba":
            return score(self.name, y, estimator.predict_proba(X), classes, pos_label)
        return score(self.name, y, None, classes, pos_label, y_pred=estimator.predict(X))

    def __repr__(self):
        return f"Scorer({self.name!r}, pos_label={self.pos_label!r})"
