"""What the loss gets from the estimator: ``gamma``, ``alpha``, ``beta``, ``label_smoothing``
and the ``criterion__*`` parameters, with the deprecated flat names of 0.2.

``tau``, ``max_margin`` and ``ldam_s`` were estimator parameters in 0.2. They are
hyperparameters of one loss each, so they moved to skorch's ``criterion__*``
(``criterion__tau``, ``criterion__max_margin``, ``criterion__s``: the loss's own
argument names). The flat names still work until 0.5: they default to
``"deprecated"`` and a value given is passed on at ``fit`` with a ``FutureWarning``,
as scikit-learn deprecates a parameter (``__init__`` stores it unchanged, so
``clone``, ``get_params`` and ``set_params`` work as before).

``beta`` stays an estimator parameter: it feeds the class weights of
``alpha="effective"`` (computed in ``fit``, before any loss exists) and is the same
effective-number ``beta`` that ``loss="cb_focal"`` weights with.
"""

import numpy as np

from ..losses.registry import HYPERPARAMETERS, LOSSES
from ..utils.param_validation import Hidden, StrOptions, validate_parameter_constraints
from ..utils.warn import warn

#: the default of a deprecated parameter: not given
DEPRECATED = "deprecated"
#: flat estimator parameter of 0.2 -> the loss's argument, set as ``criterion__<argument>``
MOVED_TO_CRITERION = {"tau": "tau", "max_margin": "max_margin", "ldam_s": "s"}
#: their defaults in 0.2, equal to the losses' own defaults
OLD_DEFAULTS = {"tau": 1.0, "max_margin": 0.5, "ldam_s": 30.0}
#: estimator parameters that the loss takes too, with their defaults; their
#: ``criterion__*`` spelling is accepted while the estimator parameter keeps its default
_SHARED = {"beta": 0.999, "label_smoothing": 0.0}


def deprecated_constraints():
    """``_parameter_constraints`` of the flat names: the loss's own, or ``"deprecated"``."""
    hidden = Hidden(StrOptions({DEPRECATED}))
    return {flat: [*HYPERPARAMETERS[name], hidden] for flat, name in MOVED_TO_CRITERION.items()}


def moved_params(estimator):
    """``{flat name: value}`` of the deprecated flat parameters that were given."""
    given = {flat: getattr(estimator, flat, DEPRECATED) for flat in MOVED_TO_CRITERION}
    return {k: v for k, v in given.items() if not (isinstance(v, str) and v == DEPRECATED)}


def check_loss_params(estimator):
    """Check the ``criterion__*`` hyperparameters and warn for each deprecated flat name.

    Raises
    ------
    InvalidParameterError
        A ``criterion__tau`` (or ``__max_margin``, ``__s``, ``__beta``) out of range.
    ValueError
        A flat name and its ``criterion__*`` spelling both given.
    """
    constraints = {f"criterion__{k}": c for k, c in HYPERPARAMETERS.items()}
    params = {f"criterion__{k}": v for k, v in estimator.get_params_for("criterion").items()}
    validate_parameter_constraints(constraints, params, type(estimator).__name__)
    criterion_params(estimator)  # the clash of both spellings
    for flat, value in moved_params(estimator).items():
        name = MOVED_TO_CRITERION[flat]
        warn(
            f"The '{flat}' parameter was deprecated in version 0.3 and will be removed in "
            f"0.5: it is an argument of the loss; use criterion__{name}={value!r} instead.",
            FutureWarning,
        )


def criterion_params(estimator):
    """The ``criterion__*`` parameters, with the deprecated flat names given added."""
    params = estimator.get_params_for("criterion")
    for flat, value in moved_params(estimator).items():
        name = MOVED_TO_CRITERION[flat]
        if name in params:
            raise ValueError(
                f"{flat}={value!r} and criterion__{name}={params[name]!r} both set the "
                f"loss's {name}; use criterion__{name}=... only."
            )
        params[name] = value
    return params


def loss_options(estimator, raw_counts, resampled_counts):
    """The keyword arguments of ``get_loss`` besides ``gamma`` and ``alpha``.

    The class counts this loss uses (``LOSSES[name].counts``), ``beta``,
    ``label_smoothing`` and the ``criterion__*`` parameters; a ``criterion__*``
    spelling of ``beta`` or ``label_smoothing`` is accepted while the estimator
    parameter keeps its default.
    """
    loss = estimator.loss
    seen = LOSSES[loss].counts if isinstance(loss, str) else None
    counts = resampled_counts if seen == "resampled" else raw_counts
    options = dict(class_counts=np.asarray(counts, dtype=np.float64))
    options.update({key: getattr(estimator, key) for key in _SHARED})
    criterion = criterion_params(estimator)
    for key in set(_SHARED) & set(criterion):
        if options[key] != _SHARED[key]:
            raise ValueError(
                f"{key}={options[key]!r} and criterion__{key}={criterion[key]!r} both "
                f"set the loss's {key}; use {key}=... only."
            )
        del options[key]
    return {**options, **criterion}


def criterion_spelling(params):
    """``params`` with the deprecated flat names spelled ``criterion__*``.

    For the command line and ``compare``, whose options (``--tau``) and grids keep
    the flat names; a ``"deprecated"`` value (the default) is dropped.
    """
    params = dict(params)
    for flat, name in MOVED_TO_CRITERION.items():
        value = params.pop(flat, DEPRECATED)
        if not (isinstance(value, str) and value == DEPRECATED):
            params[f"criterion__{name}"] = value
    return params


def saved_params(params):
    """The parameters of a saved ``config.json`` with the flat names of 0.2 moved.

    A value other than the old default becomes ``criterion__<name>`` (a loss that
    does not take it leaves it out, as it ignored the flat name); the old default is
    the loss's own, so it is dropped. The loss is built exactly as before.
    """
    params = {k: v for k, v in params.items() if not _is_old_default(k, v)}
    moved = {k: v for k, v in params.items() if k in MOVED_TO_CRITERION}
    given = {f"criterion__{MOVED_TO_CRITERION[k]}" for k in moved}
    if given & set(params):  # both spellings saved: the criterion__* one counts
        params = {k: v for k, v in params.items() if k not in moved}
    return criterion_spelling(params)


def pickled_state(state):
    """An unpickled estimator's ``__dict__`` with the flat names of 0.2 moved, in place.

    As :func:`saved_params`, but the flat parameters stay, at ``"deprecated"``:
    ``get_params`` reads every parameter of ``__init__``.
    """
    moved = saved_params({k: state[k] for k in MOVED_TO_CRITERION if k in state})
    for key in MOVED_TO_CRITERION.keys() & state.keys():
        state[key] = DEPRECATED
    for key, value in moved.items():
        state.setdefault(key, value)
    return state


def _is_old_default(name, value):
    return name in OLD_DEFAULTS and not isinstance(value, str) and value == OLD_DEFAULTS[name]
