"""The estimator's probabilities: the forward pass, the softmax, test-time views.

:func:`probabilities` is what ``predict_proba`` returns once it has checked its
input: the float64 softmax of the logits (of ``logits / temperature_`` once
calibrated) whatever the loss, averaged over ``tta`` views when set.
:func:`decide_indices` applies the fitted decision rule to them.
"""

import functools

import numpy as np
import torch

from ..data.images import ImagePathDataset, make_augmentation
from ..data.labels import plain_value
from ..data.tta import tta_views
from ..decision.posthoc import decide
from ..training.precision import set_precision
from ..training.threads import head_threads
from .datasets import dataset_of, logit_batches
from .geometry import estimator_geometry


def softmax_probabilities(logits, temperature=1.0):
    """Softmax of ``logits / temperature`` over classes in float64 (rows sum to 1 to double
    precision)."""
    logits = logits.double()
    return torch.softmax(logits if temperature == 1.0 else logits / temperature, dim=1)


def probabilities(estimator, X):
    """``predict_proba`` of a fitted ``estimator`` on checked paths or a ``Dataset``: the
    mean over ``tta`` views of an image dataset, else one pass."""
    # the precision of this process's device (a model may have been fitted on another)
    set_precision(estimator.module_, estimator.precision, estimator.device)
    dataset = dataset_of(estimator, X)
    if estimator.tta is not None and estimator.tta > 1 and isinstance(dataset, ImagePathDataset):
        augmentation = make_augmentation(estimator_geometry(estimator).crop, estimator.augment)
        views = tta_views(dataset, augmentation, estimator.tta, estimator.torch_seed_)
        return np.mean([_one_pass(estimator, view) for view in views], axis=0)
    return _one_pass(estimator, dataset)


def _one_pass(estimator, dataset):
    """skorch's ``predict_proba`` with this estimator's nonlinearity: for
    ``predict_nonlinearity="auto"`` the float64 softmax (of ``logits /
    temperature_`` once calibrated), whatever the loss."""
    nonlinearity = estimator.predict_nonlinearity
    if nonlinearity == "auto":
        temperature = estimator.temperature_
        nonlinearity = softmax_probabilities
        if temperature is not None:
            nonlinearity = functools.partial(softmax_probabilities, temperature=temperature)
    elif nonlinearity is None:
        nonlinearity = torch.nn.Identity()
    elif not callable(nonlinearity):
        raise TypeError("predict_nonlinearity has to be a callable, 'auto' or None")
    outputs = []
    with head_threads(estimator._trains_head_only_on_cpu()):
        for logits in logit_batches(estimator, dataset):
            logits = logits[0] if isinstance(logits, tuple) else logits
            outputs.append(nonlinearity(logits).detach().cpu().numpy())
    return np.concatenate(outputs, 0)


def decide_indices(estimator, proba):
    """The class indices the fitted decision rule gives for ``proba``: ``threshold_`` on the
    positive class, ``posthoc_tau``'s adjustment, or the argmax."""
    return decide(
        proba,
        threshold=estimator.threshold_,
        posthoc_tau=estimator.posthoc_tau,
        class_counts=estimator.loss_class_counts_,
        pos_index=estimator.pos_index_,
    )


def rule_in_words(estimator, threshold=None):
    """``decision_rule``'s text; ``threshold`` overrides ``threshold_``."""
    threshold = estimator.threshold_ if threshold is None else threshold
    if threshold is not None:
        positive = estimator.classes_[estimator.pos_index_]
        return f"threshold {threshold:.3f} on P({plain_value(positive)!r})"
    if estimator.posthoc_tau:
        return f"post-hoc logit adjustment (tau {estimator.posthoc_tau:g})"
    return "argmax"
