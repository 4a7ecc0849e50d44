"""argparse types built from declared constraints, so that the command line's ranges are the
estimator's (``ImageImbalanceClassifier._parameter_constraints``) and compare's
(:data:`~imbal_estimators.app.compare.COMPARE_CONSTRAINTS`) and never a copy.

A type accepts the words of a ``StrOptions`` constraint (``--threshold auto``) and the
numbers that one of the numeric constraints allows (``Interval``, numeric ``Options``, or
a constraint with an integral or real ``type``); ``None`` is the option left out. A value
outside them is a one-line usage error that says what the option takes: argparse adds the
option's name, as in ``argument --gamma: expected a number in [0.0, inf), got '-1'``.
"""

import argparse
from numbers import Integral, Real

from ..utils.param_validation import Interval, Options, StrOptions, make_constraint


def estimator_type(name):
    """The type of the option of estimator parameter ``name``, read from its constraints
    when the parser is built."""
    from ..estimator.classifier import ImageImbalanceClassifier

    return constrained(ImageImbalanceClassifier._parameter_constraints[name])


def compare_type(name):
    """The type of the option of compare's argument ``name``."""
    from .compare import COMPARE_CONSTRAINTS

    return constrained(COMPARE_CONSTRAINTS[name])


def constrained(constraints):
    """An argparse type: a word of a ``StrOptions`` in ``constraints``, or a number that one
    of them allows (an int when every numeric constraint is integral)."""
    # a hidden constraint (a deprecated placeholder value) is no option value
    flat = [c for c in _flatten(make_constraint(c) for c in constraints) if not _hidden(c)]
    words = sorted(word for c in flat if isinstance(c, StrOptions) for word in c.options)
    numeric = [c for c in flat if _is_numeric(c)]
    integral = all(c.type is Integral for c in numeric)
    expected = _or([repr(word) for word in words] + [_describe(c) for c in numeric])

    def parse(text):
        if text in words:
            return text
        try:
            value = int(text) if integral else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not any(c.is_satisfied_by(value) for c in numeric):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


def _flatten(constraints):
    """The constraints, with the shorthands (``"random_state"``, ...) opened up."""
    flat = []
    for constraint in constraints:
        inner = getattr(constraint, "constraints", None)
        flat += _flatten(inner) if inner else [constraint]
    return flat


def _hidden(constraint):
    return bool(getattr(constraint, "hidden", False))


def _is_numeric(constraint):
    if isinstance(constraint, StrOptions):
        return False
    kind = getattr(constraint, "type", None)
    return isinstance(kind, type) and kind is not bool and issubclass(kind, Real)


def _describe(constraint):
    """A numeric constraint in the command line's words."""
    if isinstance(constraint, Interval):
        return _interval(constraint)
    if isinstance(constraint, Options):
        return _or([str(option) for option in sorted(constraint.options)])
    return str(constraint)


def _interval(interval):
    if interval.type is not Integral:
        if interval.left == 0 and interval.right is None and interval.closed == "neither":
            return "a positive number"
        return "a number in " + str(interval).split(" in the range ")[1]
    low = interval.left
    if low is not None and interval.closed in ("right", "neither"):
        low += 1
    high = interval.right
    if high is not None and interval.closed in ("left", "neither"):
        high -= 1
    if high is None:
        words = {None: "an integer", 0: "a non-negative integer", 1: "a positive integer"}
        return words.get(low, f"an integer >= {low}")
    if low is None:
        return f"an integer <= {high}"
    return f"an integer in [{low}, {high}]"


def _or(items):
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"
