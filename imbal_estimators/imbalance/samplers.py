"""Samplers by name, and resampling of training rows by index.

A sampler sees a one-column array of row indices and the training labels, so
any sampler that selects or duplicates rows works on image paths. Samplers that
synthesize feature values (the SMOTE family) or choose rows by feature
distances have no features to work with there: they run on the frozen
backbone's features (``freeze_backbone=True``) and are refused otherwise, with
the reason.

:data:`SAMPLERS` is the registry of the names ``sampler=`` takes (``"over"``,
``"under"``, ``"balanced_batches"``, ``"smote"``, ...); :func:`make_sampler`
builds one. Adding a sampler is one entry there.
"""

import copy
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from imblearn import FunctionSampler
from imblearn.combine import SMOTEENN, SMOTETomek
from imblearn.over_sampling import (
    ADASYN,
    SMOTE,
    BorderlineSMOTE,
    RandomOverSampler,
)
from imblearn.over_sampling.base import BaseOverSampler
from imblearn.under_sampling import (
    EditedNearestNeighbours,
    NearMiss,
    RandomUnderSampler,
    TomekLinks,
)
from imblearn.under_sampling.base import BaseCleaningSampler, BaseUnderSampler
from sklearn.base import BaseEstimator, clone
from sklearn.utils import check_random_state

SUPPORTED_SAMPLERS = "RandomOverSampler, RandomUnderSampler or FunctionSampler"


class BalancedBatchSampler(BaseEstimator):
    """Draw as many rows as there are, with replacement, every class equally likely.

    Each draw picks a class uniformly, then one of its rows uniformly, so every
    batch is class-balanced in expectation; one epoch has as many rows as the
    training part (the majority is under-sampled and the minority repeated,
    anew in every epoch). ``ImageImbalanceClassifier(sampler="balanced_batches")``
    uses it.

    Parameters
    ----------
    random_state : int, RandomState instance or None, default=None
        The estimator sets it per epoch from its own ``random_state``.

    Attributes
    ----------
    sample_indices_ : ndarray of int
        The drawn rows of the last ``fit_resample``.
    """

    def __init__(self, random_state: int | np.random.RandomState | None = None) -> None:
        self.random_state = random_state

    def fit_resample(
        self, X: npt.NDArray[np.generic], y: npt.ArrayLike
    ) -> tuple[npt.NDArray[np.generic], npt.NDArray[np.generic]]:
        """Return ``X[rows], y[rows]`` for ``len(y)`` class-balanced draws with replacement."""
        y = np.asarray(y)
        rng = check_random_state(self.random_state)
        _, encoded, counts = np.unique(y, return_inverse=True, return_counts=True)
        probabilities = 1.0 / (len(counts) * counts[encoded])
        rows = rng.choice(len(y), size=len(y), replace=True, p=probabilities / probabilities.sum())
        self.sample_indices_ = rows
        return X[rows], y[rows]

    def expected_class_counts(self, class_counts: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """The mean counts of a draw: ``n / C`` for every class that has rows."""
        class_counts = np.asarray(class_counts, dtype=np.float64)
        present = class_counts > 0
        return np.where(present, class_counts.sum() / max(present.sum(), 1), 0.0)


@dataclass(frozen=True)
class SamplerEntry:
    """A named sampler of the registry.

    Attributes
    ----------
    make : callable
        ``make() -> sampler``: a new, unfitted sampler (its ``random_state`` is set
        per epoch from the estimator's ``random_state``).
    description : str
        One line, for ``--help`` and the docs.
    needs_features : bool, default=False
        Whether it synthesizes or selects rows from feature values: then it runs
        on the frozen backbone's features only (``freeze_backbone=True``).
    """

    make: object
    description: str
    needs_features: bool = False


#: The samplers by name: the only place their names exist.
SAMPLERS = {
    "over": SamplerEntry(RandomOverSampler, "random over-sampling: repeat minority images"),
    "under": SamplerEntry(RandomUnderSampler, "random under-sampling: drop majority images"),
    "balanced_batches": SamplerEntry(
        BalancedBatchSampler, "class-balanced draws with replacement, as many as images"
    ),
    "smote": SamplerEntry(SMOTE, "SMOTE: interpolate minority features", True),
    "borderline_smote": SamplerEntry(
        BorderlineSMOTE, "Borderline-SMOTE: interpolate near the class border", True
    ),
    "adasyn": SamplerEntry(ADASYN, "ADASYN: more synthetic rows where it is harder", True),
    "smote_tomek": SamplerEntry(SMOTETomek, "SMOTE, then remove Tomek links", True),
    "smote_enn": SamplerEntry(SMOTEENN, "SMOTE, then edited nearest neighbours", True),
    "tomek_links": SamplerEntry(TomekLinks, "remove majority rows of Tomek links", True),
    "enn": SamplerEntry(EditedNearestNeighbours, "edited nearest neighbours cleaning", True),
    "near_miss": SamplerEntry(NearMiss, "NearMiss under-sampling by feature distances", True),
}
FEATURE_SAMPLERS = tuple(name for name, entry in SAMPLERS.items() if entry.needs_features)


def make_sampler(name):
    """A new sampler for a name of :data:`SAMPLERS`.

    Parameters
    ----------
    name : str

    Returns
    -------
    sampler : an imbalanced-learn sampler (or :class:`BalancedBatchSampler`)

    Raises
    ------
    ValueError
        For a name not in the registry; the message lists the names.
    """
    return _entry(name).make()


def _entry(name):
    if name not in SAMPLERS:
        raise ValueError(
            f"Could not interpret sampler={name!r}; use one of {list(SAMPLERS)}, an "
            "imbalanced-learn sampler (an object with fit_resample) or None."
        )
    return SAMPLERS[name]


def resolve_sampler(sampler):
    """A sampler object for a name of :data:`SAMPLERS`; anything else unchanged."""
    return make_sampler(sampler) if isinstance(sampler, str) else sampler


def needs_features(sampler):
    """Whether ``sampler`` synthesizes or selects rows from feature values.

    Such samplers (the SMOTE family, ADASYN, ``RandomOverSampler(shrinkage=...)``,
    distance-based under- and cleaning samplers) cannot work on image paths;
    with ``freeze_backbone=True`` they run on the backbone's features.
    """
    if isinstance(sampler, str):
        return _entry(sampler).needs_features
    if sampler is None or isinstance(sampler, (BalancedBatchSampler, FunctionSampler)):
        return False
    if isinstance(sampler, RandomOverSampler):
        return sampler.shrinkage not in (None, 0)
    if isinstance(sampler, RandomUnderSampler):
        return False
    return _synthesizes(sampler) or _selects_by_features(sampler)


def _synthesizes(sampler):
    name = type(sampler).__name__
    return isinstance(sampler, BaseOverSampler) or "SMOTE" in name or name == "ADASYN"


def _selects_by_features(sampler):
    return isinstance(sampler, (BaseUnderSampler, BaseCleaningSampler))


_FEATURES_HINT = (
    " Or set freeze_backbone=True: the sampler then runs on the backbone's features "
    "(embedding space)."
)


def check_sampler(sampler, features_available=False):
    """Refuse samplers that need image features; return the sampler object (names resolved)."""
    if sampler is None:
        return None
    given = sampler
    sampler = resolve_sampler(sampler)
    if isinstance(sampler, BalancedBatchSampler):
        return sampler
    if not hasattr(sampler, "fit_resample"):
        raise TypeError(
            f"sampler must be None, a name of {list(SAMPLERS)} or an imbalanced-learn "
            f"sampler (an object with fit_resample); got {sampler!r} of type "
            f"{type(sampler).__name__}."
        )
    if features_available and needs_features(sampler):
        return sampler
    name = type(sampler).__name__
    spelled = f"sampler={given!r} ({name})" if isinstance(given, str) else f"sampler={name}()"
    if isinstance(sampler, RandomOverSampler) and sampler.shrinkage not in (None, 0):
        raise ValueError(
            f"sampler={name}(shrinkage={sampler.shrinkage!r}) synthesizes new feature "
            "values (a smoothed bootstrap); image paths have no features to perturb. "
            "Use RandomOverSampler() without shrinkage." + _FEATURES_HINT
        )
    if isinstance(sampler, (RandomOverSampler, RandomUnderSampler, FunctionSampler)):
        return sampler
    if _synthesizes(sampler):
        raise ValueError(
            f"{spelled} synthesizes new samples by interpolating feature "
            "vectors; image paths have no feature vectors to interpolate. Use "
            "sampler='over' (RandomOverSampler) to duplicate minority images instead (or "
            "an alpha strategy to weight them)." + _FEATURES_HINT
        )
    if _selects_by_features(sampler):
        raise ValueError(
            f"{spelled} needs feature vectors (it selects by distances or a "
            "classifier's predictions, or generates prototypes); image paths have none. "
            "Use sampler='under' (RandomUnderSampler) instead." + _FEATURES_HINT
        )
    return sampler


def resample_indices(sampler, indices, labels, seed):
    """Draw a resampled set of row indices.

    Parameters
    ----------
    sampler : imbalanced-learn sampler or a name of :data:`SAMPLERS`
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
    fitted = _seeded_copy(sampler, seed)
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


def resample_features(sampler, features, labels, seed):
    """Resample feature rows with a sampler that needs features (SMOTE and kin).

    Parameters
    ----------
    sampler : imbalanced-learn sampler or a name of :data:`SAMPLERS`
        Cloned before use; its ``random_state`` (if any) is set to ``seed``.
    features : torch.Tensor of shape (n, D)
        The training part's backbone features.
    labels : ndarray of shape (n,)
        Their labels (the user's original labels).
    seed : int

    Returns
    -------
    features : torch.Tensor of shape (m, D), float32
        Kept, repeated and synthesized rows.
    labels : ndarray of shape (m,)
    fitted : the fitted sampler clone
    """
    fitted = _seeded_copy(sampler, seed)
    X_res, y_res = fitted.fit_resample(features.numpy().astype(np.float64), np.asarray(labels))
    return torch.as_tensor(np.asarray(X_res), dtype=torch.float32), np.asarray(y_res), fitted


def _seeded_copy(sampler, seed):
    """A fresh copy of ``sampler`` with every ``random_state`` (nested ones too) at ``seed``."""
    sampler = resolve_sampler(sampler)
    if not hasattr(sampler, "get_params"):
        return copy.deepcopy(sampler)
    fitted = clone(sampler)
    # also nested ones, e.g. the samplers inside an imblearn Pipeline
    seeds = {
        key: seed
        for key in fitted.get_params(deep=True)
        if key == "random_state" or key.endswith("__random_state")
    }
    return fitted.set_params(**seeds)
