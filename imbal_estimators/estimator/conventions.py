"""scikit-learn's conventions that skorch does not follow: the plain ``repr`` of the
parameters set, ``decision_function``, and ``__init__`` that stores parameters only."""

import inspect

import numpy as np
import numpy.typing as npt
from skorch import NeuralNet, NeuralNetClassifier

from ..utils.types import FloatArray

# skorch's __init__ stores these fitted-state attributes; their unfitted values live on
# the estimator's class instead, so that __init__ leaves parameters only in __dict__
# (scikit-learn's check_no_attributes_set_in_init)
UNFITTED_STATE = ("history_", "initialized_", "virtual_params_")


def drop_unfitted_state(estimator: object) -> None:
    """Remove skorch's unfitted ``history_``, ``initialized_`` and ``virtual_params_``."""
    state = vars(estimator)
    if state.get("history_") is None and state.get("initialized_") is False:
        state.pop("history_", None)
        state.pop("initialized_", None)
        if not state.get("virtual_params_"):
            state.pop("virtual_params_", None)


def _defaults(cls: type) -> dict[str, object]:
    return {
        name: p.default
        for name, p in inspect.signature(cls).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


def params_repr(estimator: NeuralNet) -> str:
    """``Name(param=value, ...)``: the parameters that differ from their defaults, by name.

    As scikit-learn's ``repr`` (``print_changed_only``); the defaults are those of the
    estimator's signature, then skorch's for the parameters it passes on.
    """
    defaults = {**_defaults(NeuralNet), **_defaults(NeuralNetClassifier)}
    defaults.update(_defaults(type(estimator)))
    items = []
    for name, value in sorted(estimator.get_params(deep=False).items()):
        if name in defaults and _same(value, defaults[name]):
            continue
        items.append(f"{name}={value!r}")
    return f"{type(estimator).__name__}({', '.join(items)})"


def _same(value: object, default: object) -> bool:
    if value is default:
        return True
    try:
        return type(value) is type(default) and bool(value == default)
    except Exception:  # arrays and other values without a plain ==
        return repr(value) == repr(default)


def decision_scores(proba: npt.ArrayLike) -> FloatArray:
    """``decision_function`` from ``predict_proba``'s output, as scikit-learn defines it.

    Binary: ``log P(classes_[1]) - log P(classes_[0])``, shape ``(n,)``, whatever the
    positive class or threshold (positive values favour ``classes_[1]``). Multi-class:
    the log-probabilities, shape ``(n, n_classes)``. Probabilities of 0 are clipped to
    the smallest positive float, so the scores are finite.
    """
    proba = np.asarray(proba, dtype=np.float64)
    log_p = np.log(np.maximum(proba, np.finfo(np.float64).tiny))
    if proba.shape[1] == 2:
        return log_p[:, 1] - log_p[:, 0]
    return log_p
