"""Class weights (``alpha``) from class counts: one small function per strategy.

Every strategy maps the class counts ``n_c`` (ordered like ``classes_``) to one
weight per class. With ``n`` samples and ``C`` classes, ``p_c = n_c / n``:

============  =====================================================  ==================
strategy      weight                                                 normalization
============  =====================================================  ==================
inverse       ``1 / p_c``                                            none
balanced      ``n / (C * n_c)`` (scikit-learn's ``"balanced"``)       sample mean is 1
geometric     ``1 / p_c`` divided by its geometric mean               geometric mean 1
effective     ``(1 - beta) / (1 - beta ** n_c)`` (Cui et al. 2019)    sums to ``C``
sqrt          ``1 / sqrt(p_c)``                                       class mean is 1
============  =====================================================  ==================

:data:`ALPHA_STRATEGIES` is the registry: adding a strategy is one function
``(counts, beta) -> weights`` and one entry. Besides the names, ``alpha`` takes
a callable ``alpha(class_counts) -> weights`` (like imbalanced-learn's callable
``sampling_strategy``), a float (binary), a sequence or a dict;
:func:`resolve_alpha` is the one dispatcher.
"""

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np
import numpy.typing as npt

from ..data.labels import resolve_pos_label
from ..utils.class_counts import effective_number_weights

#: What ``alpha=`` and :func:`compute_alpha` accept: a strategy name, a float (binary), one
#: weight per class, ``{label: weight}``, or ``callable(class_counts) -> weights``.
AlphaSpec = (
    str | float | Sequence[float] | Mapping[Any, float] | Callable[[np.ndarray], object] | None
)


def _inverse(counts, beta):
    return counts.sum() / counts


def _balanced(counts, beta):
    return counts.sum() / (len(counts) * counts)


def _geometric(counts, beta):
    inverse = counts.sum() / counts
    return inverse / np.exp(np.mean(np.log(inverse)))


def _effective(counts, beta):
    return effective_number_weights(counts, beta)


def _sqrt(counts, beta):
    weights = 1.0 / np.sqrt(counts / counts.sum())
    return weights / weights.mean()


@dataclass(frozen=True)
class Strategy:
    """A named class-weight strategy.

    Attributes
    ----------
    weights : callable
        ``weights(counts, beta) -> ndarray``: float64 counts ordered like
        ``classes_`` (all > 0) to one weight per class.
    description : str
        One line, for ``--help`` and the docs.
    """

    weights: object
    description: str

    def __call__(self, counts, beta):
        return self.weights(counts, beta)


#: The class-weight strategies by name: the only place their names exist.
ALPHA_STRATEGIES = {
    "inverse": Strategy(_inverse, "1 / p_c (raw inverse frequency)"),
    "balanced": Strategy(_balanced, "n / (C n_c), scikit-learn's; mean weight per image 1"),
    "geometric": Strategy(_geometric, "1 / p_c over its geometric mean"),
    "effective": Strategy(_effective, "effective number (1 - beta) / (1 - beta^n_c), Cui 2019"),
    "sqrt": Strategy(_sqrt, "1 / sqrt(p_c), mean 1 over classes"),
}


def compute_alpha(
    y: npt.ArrayLike, strategy: AlphaSpec, *, beta: float = 0.999, pos_label: Hashable | None = None
) -> npt.NDArray[np.float64]:
    """Compute one class weight per class of ``np.unique(y)``.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Class labels, of any hashable type.
    strategy : {"inverse", "balanced", "geometric", "effective", "sqrt"}, float, \
            sequence, dict or callable
        A named strategy (formulas in ``help(imbal_estimators.imbalance.class_weights)`` and the
        README; only the ratios between weights matter to a mean-reduced loss), a float in
        (0, 1) for binary problems (the weight of the positive class, ``1 - alpha``
        for the other), a sequence with one weight per class in the order of
        ``np.unique(y)``, a dict ``{label: weight}``, or a callable
        ``strategy(class_counts) -> weights`` that gets the counts (float64, ordered
        like ``np.unique(y)``) and returns a sequence or a dict as above.
    beta : float, default=0.999
        The ``beta`` of the ``"effective"`` strategy, in [0, 1).
    pos_label : label, optional
        The positive class of a float ``alpha``; default: the rarer class of
        ``y`` (the later one on a tie), as the estimator's ``pos_label=None``
        (see :mod:`imbal_estimators.decision.positive`).

    Returns
    -------
    alpha : ndarray of shape (n_classes,), dtype float64
        The weights, ordered like ``np.unique(y)``.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([0] * 84 + [1] * 16)
    >>> compute_alpha(y, "balanced").round(3)
    array([0.595, 3.125])
    >>> compute_alpha(y, "geometric").round(3)
    array([0.436, 2.291])
    >>> compute_alpha(np.array(["abnormal"] * 16 + ["normal"] * 84), 0.75)
    array([0.75, 0.25])
    >>> compute_alpha(y, lambda counts: 1 / np.log1p(counts)).round(3)
    array([0.225, 0.353])
    """
    classes, counts = np.unique(np.asarray(y), return_counts=True)
    return resolve_alpha(strategy, classes, counts, beta=beta, pos_label=pos_label)


def resolve_alpha(alpha, classes, counts, *, beta=0.999, pos_label=None):
    """Turn any accepted ``alpha`` into a weight array ordered like ``classes``.

    Parameters
    ----------
    alpha : None, str, float, sequence, dict or callable
        See :func:`compute_alpha`; ``None`` returns ``None``.
    classes : ndarray of shape (n_classes,)
        The class labels, in the order the weights must follow.
    counts : array-like of shape (n_classes,)
        Number of samples of each class; the named strategies and a callable use it,
        and a float ``alpha`` without ``pos_label`` (its positive class is the rarer).
    beta : float, default=0.999
        The ``beta`` of the ``"effective"`` strategy.
    pos_label : label, optional
        The positive class of a float ``alpha``: it gets ``alpha``, the other
        class ``1 - alpha``. The estimator passes its ``pos_label_`` (resolved
        on the training labels, not on resampled counts).

    Returns
    -------
    alpha : ndarray of shape (n_classes,) or None
    """
    if alpha is None:
        return None
    if callable(alpha) and not isinstance(alpha, type):
        alpha = _call_strategy(alpha, classes, counts)
    check_alpha(alpha, classes, beta=beta)
    if isinstance(alpha, str):
        counts = np.asarray(counts, dtype=np.float64)
        if np.any(counts <= 0):
            missing = [c for c, n in zip(classes, counts, strict=True) if n <= 0]
            raise ValueError(
                f"alpha={alpha!r} needs at least one sample of every class; "
                f"class(es) {_short_list(missing)} have none."
            )
        return np.asarray(ALPHA_STRATEGIES[alpha](counts, beta), dtype=np.float64)
    if isinstance(alpha, Mapping):
        return np.array([float(alpha[c]) for c in _dict_keys_for(alpha, classes)])
    if isinstance(alpha, Real):
        positive = resolve_pos_label(pos_label, classes, counts)
        weights = np.full(2, 1.0 - float(alpha))
        weights[np.flatnonzero(np.asarray(classes) == positive)[0]] = float(alpha)
        return weights
    return np.asarray(alpha, dtype=np.float64)


def _call_strategy(strategy, classes, counts):
    """The weights a callable ``alpha`` returns for ``counts``, or an error naming it."""
    counts = np.asarray(counts, dtype=np.float64)
    try:
        weights = strategy(counts.copy())
    except Exception as exc:
        raise ValueError(
            f"The callable alpha={strategy!r} failed on the class counts "
            f"{counts.tolist()} ({type(exc).__name__}: {exc}); it must map the counts "
            "(ordered like classes_) to one weight per class."
        ) from exc
    if callable(weights) or isinstance(weights, (str, Real)):
        raise ValueError(
            f"The callable alpha={strategy!r} returned {weights!r}; it must return one "
            f"finite weight > 0 per class ({len(classes)}) as a sequence or a dict."
        )
    return weights


def check_alpha(alpha, classes, *, beta=0.999, counts=None):
    """Check that ``alpha`` fits ``classes`` without computing anything.

    A callable is called on ``counts`` (when given) and its answer checked.

    Raises
    ------
    ValueError
        With a message that names ``alpha`` (or ``beta``) and says what fits.
    """
    n_classes = len(classes)
    if callable(alpha) and not isinstance(alpha, type):
        if counts is None:
            return
        alpha = _call_strategy(alpha, classes, counts)
    if isinstance(alpha, str):
        if alpha not in ALPHA_STRATEGIES:
            raise ValueError(
                f"Could not interpret alpha={alpha!r}; use one of "
                f"{sorted(ALPHA_STRATEGIES)}, a float, a sequence, a dict or a callable."
            )
        if alpha == "effective" and not (isinstance(beta, Real) and 0 <= beta < 1):
            raise ValueError(f"beta must be in [0, 1) for alpha='effective'; got {beta!r}.")
        return
    if isinstance(alpha, Mapping):
        weights = [alpha[c] for c in _dict_keys_for(alpha, classes)]
    elif isinstance(alpha, (bool, np.bool_)):
        raise ValueError(f"alpha={alpha!r} is not a class weight; use None or a strategy.")
    elif isinstance(alpha, Real):
        if n_classes != 2:
            raise ValueError(
                f"A float alpha ({alpha!r}) is the weight of the positive class of a "
                f"binary problem; y has {n_classes} classes. Pass one weight per class "
                "as a sequence or a dict instead."
            )
        if not 0 < alpha < 1:
            raise ValueError(f"A float alpha must be in (0, 1); got {alpha!r}.")
        return
    else:
        try:
            weights = np.asarray(alpha, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"Could not interpret alpha={alpha!r} as one weight per class."
            ) from exc
        if weights.ndim != 1:
            raise ValueError(
                f"alpha must be a flat sequence of one weight per class; got an array of "
                f"shape {weights.shape}."
            )
        if len(weights) != n_classes:
            raise ValueError(
                f"alpha has {weights.size} weight(s) but there are {n_classes} classes "
                f"({_short_list(classes)}); give one weight per class, in the order "
                "of classes_."
            )
    weights = np.asarray(weights, dtype=np.float64)
    if not np.all(np.isfinite(weights)) or np.any(weights <= 0):
        # A zero weight makes the mean loss of a batch holding only that class 0/0.
        raise ValueError(f"alpha weights must be finite and > 0; got {weights.tolist()}.")


def _dict_keys_for(alpha, classes):
    """Keys of an alpha dict, ordered like ``classes``; every class needs one."""
    classes = np.asarray(classes)
    known = set(classes.tolist())
    unknown = [k for k in alpha if k not in known]
    if unknown:
        raise ValueError(
            f"alpha has weight(s) for unknown label(s) {_short_list(unknown)}; "
            f"the classes are {_short_list(classes)}."
        )
    missing = [c for c in classes.tolist() if c not in alpha]
    if missing:
        raise ValueError(
            f"alpha has no weight for class(es) {_short_list(missing)}; "
            "a dict alpha needs one weight per class."
        )
    return classes.tolist()


def _short_list(values, limit=10):
    # Plain Python values, so that labels read 'a' and 3 (not np.str_('a'), np.int64(3)).
    values = [v.item() if isinstance(v, np.generic) else v for v in values]
    text = ", ".join(repr(v) for v in values[:limit])
    return text + (f", ... ({len(values)} in all)" if len(values) > limit else "")
