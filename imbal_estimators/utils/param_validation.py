"""Declared parameter constraints, checked with scikit-learn's error message.

A small copy of the part of ``sklearn/utils/_param_validation.py`` (scikit-learn
1.9, BSD-3-Clause, Copyright (c) the scikit-learn developers; the same license as
this package) that the estimators here use, so that they depend on no private
scikit-learn module. imbalanced-learn vendors it for the same reason.

Differences from the original: only the constraints used here (``Interval``,
``StrOptions``, ``Options``, ``HasMethods``, ``RealNotInt``, the public base
``Constraint`` for an estimator's own constraints, ``Hidden``, and the strings
``"array-like"``, ``"boolean"``, ``"verbose"``, ``"random_state"``,
``"cv_object"``, plus ``None``, ``callable`` and types), and an ``Interval`` refuses
``bool`` (``image_size=True`` is not an image size of 1 pixel).
"""

import copy
import math
import operator
from abc import ABC, abstractmethod
from collections.abc import Iterable
from numbers import Integral, Real

import numpy as np

__all__ = [
    "Constraint",
    "HasMethods",
    "Hidden",
    "Interval",
    "InvalidParameterError",
    "Options",
    "RealNotInt",
    "StrOptions",
    "validate_parameter_constraints",
]


class InvalidParameterError(ValueError, TypeError):
    """A parameter has a type or value its constraints do not allow.

    Both a ``ValueError`` and a ``TypeError``, like scikit-learn's own.
    """


def validate_parameter_constraints(parameter_constraints, params, caller_name):
    """Check each parameter against its list of constraints; one must hold.

    Parameters
    ----------
    parameter_constraints : dict
        ``{name: [constraint, ...]}``. A constraint is an :class:`Interval`,
        :class:`Options`, :class:`StrOptions` or :class:`HasMethods` object, a type
        (instances of it), ``None``, ``callable``, or one of the strings
        ``"array-like"``, ``"boolean"``, ``"verbose"``, ``"random_state"`` and
        ``"cv_object"``. Parameters without an entry are not checked.
    params : dict
        ``{name: value}``.
    caller_name : str
        The class or function named in the message.

    Raises
    ------
    InvalidParameterError
        "The 'alpha' parameter of ImageImbalanceClassifier must be ... Got
        'inverted' instead."
    """
    for name, value in params.items():
        if name not in parameter_constraints:
            continue
        constraints = [make_constraint(c) for c in parameter_constraints[name]]
        if any(c.is_satisfied_by(value) for c in constraints):
            continue
        constraints = [c for c in constraints if not c.hidden]
        if len(constraints) == 1:
            allowed = str(constraints[0])
        else:
            allowed = f"{', '.join(str(c) for c in constraints[:-1])} or {constraints[-1]}"
        raise InvalidParameterError(
            f"The {name!r} parameter of {caller_name} must be {allowed}. Got {value!r} instead."
        )


def make_constraint(constraint):
    """The constraint object for a declared constraint."""
    if isinstance(constraint, Hidden):
        constraint = copy.copy(make_constraint(constraint.constraint))
        constraint.hidden = True
        return constraint
    if isinstance(constraint, Constraint):
        return constraint
    if constraint is None:
        return _NoneConstraint()
    if constraint is callable:
        return _Callables()
    if isinstance(constraint, type):
        return _InstancesOf(constraint)
    named = {
        "array-like": _ArrayLikes,
        "boolean": _Booleans,
        "verbose": _Verbose,
        "random_state": _RandomStates,
        "cv_object": _CVObjects,
    }
    if isinstance(constraint, str) and constraint in named:
        return named[constraint]()
    raise ValueError(f"Unknown constraint type: {constraint!r}")


class RealNotInt(Real):
    """Reals that are not ints: ``isinstance(1.0, RealNotInt)``, not ``isinstance(1, ...)``."""


RealNotInt.register(float)


def _type_name(t):
    if t.__module__ == "builtins":
        return t.__qualname__
    if t is Real:
        return "float"
    if t is Integral:
        return "int"
    return f"{t.__module__}.{t.__qualname__}"


class Constraint(ABC):
    """A declared constraint: subclass it for a constraint of one estimator."""

    #: not named in the error message (see :class:`Hidden`)
    hidden = False

    @abstractmethod
    def is_satisfied_by(self, value):
        """Whether ``value`` meets the constraint."""

    @abstractmethod
    def __str__(self):
        """The constraint in words, for the error message."""


class Hidden:
    """A constraint that holds but is not named in the error message.

    For the sentinel of a deprecated parameter (``"deprecated"``), as scikit-learn's.

    Parameters
    ----------
    constraint : constraint
    """

    def __init__(self, constraint):
        self.constraint = constraint


class _InstancesOf(Constraint):
    def __init__(self, type):
        self.type = type

    def is_satisfied_by(self, value):
        return isinstance(value, self.type)

    def __str__(self):
        return f"an instance of {_type_name(self.type)!r}"


class _NoneConstraint(Constraint):
    def is_satisfied_by(self, value):
        return value is None

    def __str__(self):
        return "None"


class _Callables(Constraint):
    def is_satisfied_by(self, value):
        return callable(value)

    def __str__(self):
        return "a callable"


class _ArrayLikes(Constraint):
    def is_satisfied_by(self, value):
        has_length = hasattr(value, "__len__") or hasattr(value, "shape")
        return (has_length or hasattr(value, "__array__")) and not np.isscalar(value)

    def __str__(self):
        return "an array-like"


class Options(Constraint):
    """A finite set of values of one type.

    Parameters
    ----------
    type : type
    options : set
    """

    def __init__(self, type, options):
        self.type = type
        self.options = options

    def is_satisfied_by(self, value):
        return isinstance(value, self.type) and value in self.options

    def __str__(self):
        options = ", ".join(repr(o) for o in sorted(self.options, key=repr))
        return f"a {_type_name(self.type)} among {{{options}}}"


class StrOptions(Options):
    """A finite set of strings.

    Parameters
    ----------
    options : set of str
    """

    def __init__(self, options):
        super().__init__(str, options)


class Interval(Constraint):
    """A typed interval of numbers; ``bool`` is never in it.

    Parameters
    ----------
    type : {numbers.Integral, numbers.Real, RealNotInt}
    left, right : number or None
        The bounds; ``None`` is unbounded.
    closed : {"left", "right", "both", "neither"}
    """

    def __init__(self, type, left, right, *, closed):
        if type not in (Integral, Real, RealNotInt):
            raise ValueError(f"type must be Integral, Real or RealNotInt; got {type!r}.")
        if closed not in ("left", "right", "both", "neither"):
            raise ValueError(f"closed must be left, right, both or neither; got {closed!r}.")
        if left is not None and right is not None and right <= left:
            raise ValueError(f"right must be greater than left; got {left} and {right}.")
        self.type = type
        self.left = left
        self.right = right
        self.closed = closed

    def __contains__(self, value):
        if not isinstance(value, Integral) and math.isnan(value):
            return False
        below = operator.lt if self.closed in ("left", "both") else operator.le
        above = operator.gt if self.closed in ("right", "both") else operator.ge
        left = -math.inf if self.left is None else self.left
        right = math.inf if self.right is None else self.right
        return not (below(value, left) or above(value, right))

    def is_satisfied_by(self, value):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, self.type):
            return False
        return value in self

    def __str__(self):
        kind = "an int" if self.type is Integral else "a float"
        left = "-inf" if self.left is None else self.left
        right = "inf" if self.right is None else self.right
        if self.type is not Integral:
            left = left if self.left is None else float(left)
            right = right if self.right is None else float(right)
        opening = "[" if self.closed in ("left", "both") else "("
        closing = "]" if self.closed in ("right", "both") else ")"
        return f"{kind} in the range {opening}{left}, {right}{closing}"


class HasMethods(Constraint):
    """Objects that have callable attributes ``methods``.

    Parameters
    ----------
    methods : str or list of str
    """

    def __init__(self, methods):
        self.methods = [methods] if isinstance(methods, str) else list(methods)

    def is_satisfied_by(self, value):
        return all(callable(getattr(value, method, None)) for method in self.methods)

    def __str__(self):
        names = [repr(m) for m in self.methods]
        text = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
        return f"an object implementing {text}"


class _AnyOf(Constraint):
    """One of several constraints, named together (the shorthand strings below)."""

    constraints: tuple[object, ...] = ()

    def is_satisfied_by(self, value):
        return any(c.is_satisfied_by(value) for c in self.constraints)

    def __str__(self):
        names = [str(c) for c in self.constraints]
        return f"{', '.join(names[:-1])} or {names[-1]}"


class _Booleans(_AnyOf):
    constraints = (_InstancesOf(bool), _InstancesOf(np.bool_))


class _Verbose(_AnyOf):
    constraints = (
        Interval(Integral, 0, None, closed="left"),
        _InstancesOf(bool),
        _InstancesOf(np.bool_),
    )


class _RandomStates(_AnyOf):
    constraints = (
        Interval(Integral, 0, 2**32 - 1, closed="both"),
        _InstancesOf(np.random.RandomState),
        _NoneConstraint(),
    )


class _IterablesNotString(Constraint):
    def is_satisfied_by(self, value):
        return isinstance(value, Iterable) and not isinstance(value, str)

    def __str__(self):
        return "an iterable"


class _CVObjects(_AnyOf):
    constraints = (
        Interval(Integral, 2, None, closed="left"),
        HasMethods(["split", "get_n_splits"]),
        _IterablesNotString(),
        _NoneConstraint(),
    )
