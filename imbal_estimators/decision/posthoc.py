"""Decisions after training: temperature scaling, the binary threshold, prior adjustment.

Everything here works on the internal validation split's logits of the kept
epoch (the estimator runs one extra forward pass at the end of ``fit``) and
returns plain numbers that the estimator stores as fitted attributes.

* :func:`fit_temperature`: temperature scaling (Guo et al. 2017), ``softmax(z / T)``
  with ``T`` minimizing the validation negative log-likelihood (LBFGS on ``log T``,
  float64). Dividing by ``T > 0`` keeps every argmax.
* :func:`expected_calibration_error`: top-label ECE with equal-width bins.
* :func:`threshold_metric`: what ``threshold="auto"`` maximizes; the threshold
  itself comes from the one tuner, :func:`imbal_estimators.decision.threshold.tune_threshold`,
  on the probability of the positive class ``pos_label_``.
* :func:`decide`: class indices from probabilities with a threshold on the
  positive class or a post-hoc logit adjustment ``argmax(log p - tau * log prior)``
  (Menon et al. 2021).
"""

import numpy as np
import torch
import torch.nn.functional as F

from ..utils.class_counts import log_prior
from .metrics import get_metric
from .threshold import tune_threshold

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
    """The metric ``threshold="auto"`` maximizes for the estimator's ``monitor``.

    The monitor itself when it depends on the threshold (a decision metric of
    :mod:`imbal_estimators.decision.metrics`); F1 of the positive class for the
    threshold-free monitors (``"average_precision"``, ``"roc_auc"``,
    ``"valid_loss"``), whose value no threshold changes. A rule, not a fallback:
    an unknown name is an error.
    """
    if monitor == "valid_loss":
        return "f1"
    return monitor if get_metric(monitor).depends_on_threshold else "f1"


def decide(proba, threshold=None, posthoc_tau=None, class_counts=None, pos_index=None):
    """Class indices from probabilities.

    Parameters
    ----------
    proba : ndarray of shape (n_samples, n_classes)
    threshold : float or None
        Binary only: ``pos_index`` where ``proba[:, pos_index] >= threshold``,
        the other class elsewhere.
    posthoc_tau : float or None
        ``argmax(log p - posthoc_tau * log(prior))``, prior from ``class_counts``
        (counts of 0 taken as 1).
    class_counts : array-like of shape (n_classes,), needed with ``posthoc_tau``
    pos_index : {0, 1}, needed with ``threshold``
        The column of the positive class (the estimator's ``pos_index_``).

    Returns
    -------
    ndarray of int of shape (n_samples,)
    """
    proba = np.asarray(proba, dtype=np.float64)
    if threshold is not None:
        if pos_index not in (0, 1):
            raise ValueError(f"A threshold needs pos_index 0 or 1; got {pos_index!r}.")
        return np.where(proba[:, pos_index] >= threshold, pos_index, 1 - pos_index)
    if posthoc_tau:
        log_p = np.log(np.maximum(proba, np.finfo(np.float64).tiny))
        return np.argmax(log_p - posthoc_tau * log_prior(class_counts), axis=1)
    return proba.argmax(axis=1)


def fit_decision(logits, y, *, calibrate, threshold, monitor, pos_index=None):
    """The fitted post-hoc attributes from the validation logits of the kept epoch.

    Parameters
    ----------
    logits : array-like of shape (n_samples, n_classes)
    y : array-like of int of shape (n_samples,)
        Encoded labels.
    calibrate : bool
    threshold : None, float or "auto"
        ``"auto"`` tunes ``threshold_`` on ``P(pos_index)`` for
        ``threshold_metric(monitor)`` with
        :func:`~imbal_estimators.decision.threshold.tune_threshold`.
    monitor : str
    pos_index : {0, 1}, needed with ``threshold="auto"``
        The column of the positive class.

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
        if pos_index not in (0, 1):
            raise ValueError(f"threshold='auto' needs pos_index 0 or 1; got {pos_index!r}.")
        fitted["threshold_"], _ = tune_threshold(
            proba[:, pos_index], y == pos_index, threshold_metric(monitor)
        )
    return fitted
