"""Search spaces of :class:`~imbal_estimators.ImbalanceSearchCV`.

A search space is a dict ``{parameter: Optuna distribution or list of
choices}`` or a callable ``trial -> {parameter: value}``. Trial values are
what a storage can hold (None, bool, int, float, str), so samplers are chosen
by name: ``"none"`` or a name of the sampler registry
(:data:`imbal_estimators.imbalance.samplers.SAMPLERS`), which
:func:`to_estimator_params` turns into a sampler object.
"""

import inspect

from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FixedTrial

from ..imbalance.samplers import SAMPLERS, make_sampler

#: the storable spelling of sampler=None
NO_SAMPLER = "none"

DEFAULT_SEARCH_SPACE = {
    "loss": CategoricalDistribution(["ce", "focal"]),
    "gamma": FloatDistribution(0.0, 5.0),  # used by "focal" only; 0 is cross-entropy
    "alpha": CategoricalDistribution([None, "balanced", "sqrt", "effective"]),
    "sampler": CategoricalDistribution([NO_SAMPLER, "over", "under"]),
    "lr": FloatDistribution(1e-5, 1e-2, log=True),
}


def check_search_space(search_space, estimator=None):
    """The search space with lists turned into categorical distributions.

    Returns a new dict or the callable itself. ``None`` is the default space without
    the parameters that ``estimator`` fixes (:func:`fixed_params`).
    """
    if search_space is None:
        fixed = fixed_params(estimator)
        space = {k: v for k, v in DEFAULT_SEARCH_SPACE.items() if k not in fixed}
        if not space:
            raise ValueError(
                f"The estimator fixes every parameter of the default search space "
                f"({', '.join(fixed)}); give a search_space with the parameters to search."
            )
        return space
    if callable(search_space):
        return search_space
    if not search_space:
        raise ValueError("search_space is empty; give at least one parameter to search.")
    space = {}
    for name, value in search_space.items():
        if isinstance(value, (list, tuple)):
            _check_storable(name, value)
            value = CategoricalDistribution(list(value))
        if not isinstance(value, (CategoricalDistribution, FloatDistribution, IntDistribution)):
            raise TypeError(
                f"search_space[{name!r}] must be an Optuna CategoricalDistribution, "
                f"FloatDistribution, IntDistribution or a list of choices; got {value!r}."
            )
        if isinstance(value, CategoricalDistribution):
            _check_storable(name, value.choices)
        space[name] = value
    return space


def fixed_params(estimator):
    """The parameters of the default space that ``estimator`` sets away from its default.

    A value given to the constructor that differs from the constructor's default is
    the user's choice, so the default space does not search it (a value equal to the
    default cannot be told from no value). ``{name: value}``; empty for ``None``.
    """
    if estimator is None:
        return {}
    try:
        defaults = inspect.signature(type(estimator).__init__).parameters
        params = estimator.get_params(deep=False)
    except (TypeError, ValueError, AttributeError):
        return {}
    fixed = {}
    for name in DEFAULT_SEARCH_SPACE:
        if name not in params or name not in defaults:
            continue
        default = defaults[name].default
        if default is inspect.Parameter.empty or not _same(params[name], default):
            fixed[name] = params[name]
    return fixed


def _same(value, default):
    if value is default:
        return True
    try:
        return bool(value == default)
    except Exception:  # noqa: BLE001 - arrays and objects without a plain ==
        return False


def _check_storable(name, choices):
    for choice in choices:
        if choice is not None and not isinstance(choice, (bool, int, float, str)):
            hint = (
                f"use the names {[NO_SAMPLER, *SAMPLERS]}"
                if name == "sampler"
                else "use a callable search_space that builds it from a name"
            )
            raise TypeError(
                f"search_space[{name!r}] has the choice {choice!r}, which an Optuna study cannot "
                f"store (None, bool, int, float or str only): {hint}."
            )


def suggest(trial, space):
    """The trial's values for ``space``: ``{parameter: storable value}``."""
    if callable(space):
        params = space(trial)
        if not isinstance(params, dict):
            raise TypeError(
                f"search_space must return a dict of estimator parameters; got {params!r}."
            )
        return params
    return {name: _suggest_one(trial, name, dist) for name, dist in space.items()}


def _suggest_one(trial, name, dist):
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, FloatDistribution):
        return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)
    return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)


def to_estimator_params(params):
    """``params`` for ``set_params``: a ``"sampler"`` name becomes a fresh sampler object."""
    name = params.get("sampler")
    if not isinstance(name, str):
        return dict(params)
    if name != NO_SAMPLER and name not in SAMPLERS:
        raise ValueError(
            f"Unknown sampler name {name!r} in the search space; use {[NO_SAMPLER, *SAMPLERS]}."
        )
    return {**params, "sampler": None if name == NO_SAMPLER else make_sampler(name)}


def replay(space, trial):
    """The estimator parameters a finished ``trial`` ran with.

    For a callable space, the callable is run again on the trial's values.
    """
    if callable(space):
        try:
            params = space(FixedTrial(trial.params, number=trial.number))
        except Exception:  # a different space in a shared study: show the raw values
            params = trial.params
    else:
        params = {name: trial.params[name] for name in space if name in trial.params}
    return to_estimator_params(params)


def grid_of(space):
    """``{parameter: choices}`` for ``optuna.samplers.GridSampler``."""
    if callable(space):
        raise ValueError(
            "sampler='grid' needs a dict search_space of choices, not a callable; "
            "pass optuna.samplers.GridSampler(...) as sampler instead."
        )
    grid = {}
    for name, dist in space.items():
        if isinstance(dist, CategoricalDistribution):
            grid[name] = list(dist.choices)
        elif isinstance(dist, IntDistribution) and dist.step is not None and not dist.log:
            grid[name] = list(range(dist.low, dist.high + 1, dist.step))
        else:
            raise ValueError(
                f"sampler='grid' needs a list of values for every parameter; "
                f"search_space[{name!r}] is {dist!r}."
            )
    return grid


def grid_size(grid):
    size = 1
    for choices in grid.values():
        size *= len(choices)
    return size
