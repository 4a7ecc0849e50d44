"""Decisions after training: temperature scaling, the binary threshold, prior adjustment.

Everything here works on the internal validation split's logits of the kept
epoch (the estimator runs one extra forward pass at the end of ``fit``) and
returns plain numbers that the estimator stores as fitted attributes.

* :func:`fit_temperature`: temperature scaling (Guo et al. 2017), ``softmax(z / T)``
  with ``T`` minimizing the validation negative log-likelihood (LBFGS on ``log T``,
  float64). Dividing by ``T > 0`` keeps every argmax.
* :func:`expected_calibration_error`: top-label ECE with equal-width bins.
* :func:`tune_threshold`: the binary threshold on ``P(classes_[1])`` that maximizes
  a threshold-dependent metric.
* :func:`decide`: class indices from probabilities with a threshold or a post-hoc
  logit adjustment ``argmax(log p - tau * log prior)`` (Menon et al. 2021).
"""

import numpy as np
import torch
import torch.nn.functional as F

from ..utils.class_counts import log_prior
from ..utils.warn import warn

#: Monitors whose value depends on the threshold; "auto" maximizes the monitor
#: itself when it is one of these, and F1 otherwise (average_precision, roc_auc
#: and valid_loss do not change with the threshold).
THRESHOLD_METRICS = ("f1", "f1_macro", "balanced_accuracy", "mcc")

# log T is kept within [-_LOG_T_LIMIT, _LOG_T_LIMIT]: a perfectly separated
# validation split would otherwise drive T to 0.
_LOG_T_LIMIT = 6.0


def fit_temperature(logits, y):
    """The temperature ``T`` minimizing ``NLL(softmax(logits / T), y)``.

    Parameters
    ----------
    logits : array-like of shape (n_samples, n_classes)
    y : array-like of int of shape (n_samples,)

    Returns
    -------
    temperature : float
        In ``[exp(-6), exp(6)]``.
    """
    z = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    target = torch.as_tensor(np.asarray(y), dtype=torch.long)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [log_t], lr=1.0, max_iter=200, tolerance_grad=1e-12, line_search_fn="strong_wolfe"
    )

    def closure():
        optimizer.zero_grad()
        scale = torch.exp(-log_t.clamp(-_LOG_T_LIMIT, _LOG_T_LIMIT))
        loss = F.cross_entropy(z * scale, target)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(torch.exp(log_t.detach().clamp(-_LOG_T_LIMIT, _LOG_T_LIMIT)))


def expected_calibration_error(proba, y, n_bins=15):
    """Top-label expected calibration error.

    ``sum_b |B_b| / n * |accuracy(B_b) - confidence(B_b)|`` over ``n_bins``
    equal-width bins of the confidence ``max_c p_c``.

    Parameters
    ----------
    proba : array-like of shape (n_samples, n_classes)
    y : array-like of int of shape (n_samples,)
    n_bins : int, default=15

    Returns
    -------
    float
    """
    proba = np.asarray(proba, dtype=np.float64)
    y = np.asarray(y)
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in np.unique(bins):
        members = bins == b
        total += members.sum() * abs(correct[members].mean() - confidence[members].mean())
    return float(total / len(y))


def threshold_metric(monitor):
    """The metric ``threshold="auto"`` maximizes for the estimator's ``monitor``."""
    return monitor if monitor in THRESHOLD_METRICS else "f1"


def _scores_at_cuts(tp, fp, positives, negatives, metric):
    fn, tn = positives - tp, negatives - fp
    with np.errstate(divide="ignore", invalid="ignore"):
        f1_pos = np.nan_to_num(2 * tp / (2 * tp + fp + fn))
        if metric == "f1":
            return f1_pos
        if metric == "f1_macro":
            return (f1_pos + np.nan_to_num(2 * tn / (2 * tn + fn + fp))) / 2
        if metric == "balanced_accuracy":
            return (tp / positives + tn / negatives) / 2
        denominator = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
        return np.where(
            denominator > 0, (tp * tn - fp * fn) / np.where(denominator > 0, denominator, 1), 0.0
        )


def tune_threshold(proba_positive, y, metric="f1"):
    """The threshold on ``P(positive)`` that maximizes ``metric`` on ``(proba_positive, y)``.

    Every cut between two distinct scores is tried (scores ``>= threshold`` are
    positive); the threshold is the midpoint between the two scores, and among
    equally good cuts the one closest to 0.5 wins.

    Parameters
    ----------
    proba_positive : array-like of shape (n_samples,)
    y : array-like of shape (n_samples,)
        1 for the positive class, 0 otherwise.
    metric : {"f1", "f1_macro", "balanced_accuracy", "mcc"}, default="f1"

    Returns
    -------
    threshold : float
    score : float
        The metric at that threshold.
    """
    if metric not in THRESHOLD_METRICS:
        raise ValueError(f"metric must be one of {THRESHOLD_METRICS}; got {metric!r}.")
    scores = np.asarray(proba_positive, dtype=np.float64)
    y = np.asarray(y).astype(bool)
    positives, negatives = y.sum(), (~y).sum()
    if positives == 0 or negatives == 0:
        warn(
            "threshold='auto' needs both classes in the validation split; it has "
            f"{positives} positive and {negatives} negative images. Using 0.5."
        )
        return 0.5, float("nan")
    order = np.argsort(-scores, kind="stable")
    s, hits = scores[order], y[order]
    # cut after position k - 1 (the top k are positive), only between distinct scores
    ends = np.flatnonzero(np.r_[s[1:] < s[:-1], True]) + 1
    tp = np.cumsum(hits)[ends - 1]
    fp = ends - tp
    values = _scores_at_cuts(tp, fp, positives, negatives, metric)
    lower = np.r_[s[ends[:-1]], 0.0]  # the next score below each cut
    thresholds = (s[ends - 1] + lower) / 2
    best = np.flatnonzero(values >= values.max() - 1e-12)
    pick = best[np.argmin(np.abs(thresholds[best] - 0.5))]
    return float(thresholds[pick]), float(values[pick])


def decide(proba, threshold=None, posthoc_tau=None, class_counts=None):
    """Class indices from probabilities.

    Parameters
    ----------
    proba : ndarray of shape (n_samples, n_classes)
    threshold : float or None
        Binary only: index 1 where ``proba[:, 1] >= threshold``.
    posthoc_tau : float or None
        ``argmax(log p - posthoc_tau * log(prior))``, prior from ``class_counts``
        (counts of 0 taken as 1).
    class_counts : array-like of shape (n_classes,), needed with ``posthoc_tau``

    Returns
    -------
    ndarray of int of shape (n_samples,)
    """
    proba = np.asarray(proba, dtype=np.float64)
    if threshold is not None:
        return (proba[:, 1] >= threshold).astype(np.int64)
    if posthoc_tau:
        log_p = np.log(np.maximum(proba, np.finfo(np.float64).tiny))
        return np.argmax(log_p - posthoc_tau * log_prior(class_counts), axis=1)
    return proba.argmax(axis=1)


def fit_decision(logits, y, *, calibrate, threshold, monitor):
    """The fitted post-hoc attributes from the validation logits of the kept epoch.

    Returns
    -------
    dict
        ``temperature_``, ``ece_before_``, ``ece_after_`` (with ``calibrate``)
        and ``threshold_`` (with ``threshold="auto"``); probabilities for the
        threshold are the calibrated ones when ``calibrate`` is set.
    """
    logits = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    y = np.asarray(y)
    fitted = {}
    proba = torch.softmax(logits, dim=1).numpy()
    if calibrate:
        temperature = fit_temperature(logits, y)
        calibrated = torch.softmax(logits / temperature, dim=1).numpy()
        fitted.update(
            temperature_=temperature,
            ece_before_=expected_calibration_error(proba, y),
            ece_after_=expected_calibration_error(calibrated, y),
        )
        proba = calibrated
    if threshold == "auto":
        fitted["threshold_"], _ = tune_threshold(proba[:, 1], y == 1, threshold_metric(monitor))
    return fitted
