"""Formulas on class counts that more than one stage uses, written once.

The class weights (``alpha="effective"``), the class-balanced focal loss, the
logit-adjusted losses and post-hoc logit adjustment all start from the number
of images per class ``n_c``; these are their shared pieces. Each takes counts
as a NumPy array (the estimator's fitted counts) or a torch tensor (a loss's
buffer, on the loss's device) and answers in the same kind, in float64.
"""

import numpy as np
import torch


def _counts(class_counts):
    """float64 counts of the same kind (tensor or array), 0 taken as 1."""
    if isinstance(class_counts, torch.Tensor):
        return class_counts.to(torch.float64).clamp_min(1.0)
    return np.maximum(np.asarray(class_counts, dtype=np.float64), 1.0)


def effective_number_weights(class_counts, beta):
    """Cui et al.'s class-balanced weights ``(1 - beta) / (1 - beta ** n_c)``, summing to ``C``.

    Parameters
    ----------
    class_counts : array-like or Tensor of shape (n_classes,)
        Counts of 0 are taken as 1 (the weight stays finite).
    beta : float in [0, 1)

    Returns
    -------
    weights : ndarray or Tensor of shape (n_classes,), float64

    Examples
    --------
    >>> effective_number_weights([84, 16], beta=0.9).round(4)
    array([0.898, 1.102])
    """
    counts = _counts(class_counts)
    weights = (1.0 - beta) / (1.0 - float(beta) ** counts)
    return weights * len(counts) / weights.sum()


def log_prior(class_counts):
    """The log class prior ``log(n_c / sum(n))``, counts of 0 taken as 1.

    Parameters
    ----------
    class_counts : array-like or Tensor of shape (n_classes,)

    Returns
    -------
    log_prior : ndarray or Tensor of shape (n_classes,), float64
    """
    counts = _counts(class_counts)
    prior = counts / counts.sum()
    return prior.log() if isinstance(prior, torch.Tensor) else np.log(prior)
