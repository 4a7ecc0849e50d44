"""Resample training rows by index with imbalanced-learn samplers.

A sampler sees a one-column array of row indices and the training labels, so
any sampler that selects or duplicates rows works on image paths. Samplers that
synthesize feature values (the SMOTE family) or choose rows by feature
distances have no features to work with here and are refused with the reason.
"""

import copy

import numpy as np
from imblearn import FunctionSampler
from imblearn.over_sampling import RandomOverSampler
from imblearn.under_sampling import RandomUnderSampler
from sklearn.base import clone

SUPPORTED_SAMPLERS = "RandomOverSampler, RandomUnderSampler or FunctionSampler"


def check_sampler(sampler):
    """Refuse samplers that need image features; return ``sampler`` unchanged."""
    if sampler is None:
        return None
    if not hasattr(sampler, "fit_resample"):
        raise TypeError(
            f"sampler must be None or an imbalanced-learn sampler (an object with "
            f"fit_resample); got {sampler!r} of type {type(sampler).__name__}."
        )
    name = type(sampler).__name__
    if isinstance(sampler, RandomOverSampler) and sampler.shrinkage not in (None, 0):
        raise ValueError(
            f"sampler={name}(shrinkage={sampler.shrinkage!r}) synthesizes new feature "
            "values (a smoothed bootstrap); image paths have no features to perturb. "
            "Use RandomOverSampler() without shrinkage."
        )
    if isinstance(sampler, (RandomOverSampler, RandomUnderSampler, FunctionSampler)):
        return sampler
    kind = getattr(sampler, "_sampling_type", None)
    if kind == "over-sampling" or "SMOTE" in name or name == "ADASYN":
        raise ValueError(
            f"sampler={name}() synthesizes new samples by interpolating feature "
            "vectors; image paths have no feature vectors to interpolate. Use "
            "RandomOverSampler() to duplicate minority images instead (or an alpha "
            "strategy to weight them)."
        )
    if kind in ("under-sampling", "clean-sampling"):
        raise ValueError(
            f"sampler={name}() needs feature vectors (it selects by distances or a "
            "classifier's predictions, or generates prototypes); image paths have none. "
            "Use RandomUnderSampler() instead."
        )
    return sampler


def resample_indices(sampler, indices, labels, seed):
    """Draw a resampled set of row indices.

    Parameters
    ----------
    sampler : imbalanced-learn sampler
        Cloned before use; its ``random_state`` (if any) is set to ``seed``.
    indices : ndarray of int
        The training rows.
    labels : ndarray
        Their labels (the user's original labels, so a dict
        ``sampling_strategy`` keyed by label works).
    seed : int
        Seed of this draw.

    Returns
    -------
    resampled : ndarray of int
        Rows of ``indices`` (selected or repeated).
    fitted : the fitted sampler clone
    """
    if hasattr(sampler, "get_params"):
        fitted = clone(sampler)
        # also nested ones, e.g. the samplers inside an imblearn Pipeline
        seeds = {
            key: seed
            for key in fitted.get_params(deep=True)
            if key == "random_state" or key.endswith("__random_state")
        }
        fitted.set_params(**seeds)
    else:
        fitted = copy.deepcopy(sampler)
    column = np.asarray(indices, dtype=np.int64).reshape(-1, 1)
    X_res, _ = fitted.fit_resample(column, np.asarray(labels))
    X_res = np.asarray(X_res)
    if X_res.ndim != 2 or X_res.shape[1] != 1 or not np.isin(X_res[:, 0], indices).all():
        raise ValueError(
            f"sampler={type(sampler).__name__} returned rows that are not rows of its "
            "input; on image paths only samplers that select or duplicate rows work "
            f"({SUPPORTED_SAMPLERS})."
        )
    return X_res[:, 0].astype(np.int64), fitted


def epoch_seed(base_seed, epoch):
    """The seed of the draw of ``epoch``: independent streams for each epoch."""
    return int(np.random.SeedSequence([base_seed, epoch]).generate_state(1)[0] >> 1)
