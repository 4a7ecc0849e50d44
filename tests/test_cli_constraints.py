"""The command line's numeric options are built from the declared constraints (the
estimator's ``_parameter_constraints`` and compare's ``COMPARE_CONSTRAINTS``) when the
parser is built: change a constraint and the parser follows."""

from argparse import ArgumentTypeError
from numbers import Integral, Real

import pytest

from imbal_estimators import ImageImbalanceClassifier
from imbal_estimators.app.cli import build_parser
from imbal_estimators.app.compare import COMPARE_CONSTRAINTS
from imbal_estimators.app.option_types import constrained
from imbal_estimators.utils.param_validation import Interval, StrOptions


def parse(argv):
    return build_parser().parse_args(argv)


def usage_error(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


@pytest.fixture
def estimator_constraints(monkeypatch):
    """A copy of the estimator's constraints that a test may change."""
    copy = dict(ImageImbalanceClassifier._parameter_constraints)
    monkeypatch.setattr(ImageImbalanceClassifier, "_parameter_constraints", copy)
    return copy


def test_the_gamma_option_follows_the_estimators_constraint(estimator_constraints, capsys):
    fit = ["fit", "d", "--out", "m"]
    assert parse([*fit, "--gamma", "7.5"]).gamma == 7.5
    estimator_constraints["gamma"] = [Interval(Real, 0, 5, closed="both")]
    err = usage_error([*fit, "--gamma", "7.5"], capsys)
    assert "argument --gamma: expected a number in [0.0, 5.0], got '7.5'" in err
    assert parse([*fit, "--gamma", "5"]).gamma == 5.0


def test_a_looser_estimator_constraint_lets_the_option_through(estimator_constraints, capsys):
    fit = ["fit", "d", "--out", "m"]
    assert "argument --image-size: expected 'auto' or an integer in [1, " in usage_error(
        [*fit, "--image-size", "0"], capsys
    )
    estimator_constraints["image_size"] = [Interval(Integral, 0, None, closed="left")]
    assert parse([*fit, "--image-size", "0"]).image_size == 0


def test_the_compare_options_follow_compares_constraints(monkeypatch, capsys):
    compare = ["compare", "d", "--out", "o"]
    assert parse([*compare, "--top-k", "4"]).top_k == 4
    monkeypatch.setitem(COMPARE_CONSTRAINTS, "top_k", [Interval(Integral, 1, 3, closed="both")])
    err = usage_error([*compare, "--top-k", "4"], capsys)
    assert "argument --top-k: expected an integer in [1, 3], got '4'" in err
    monkeypatch.setitem(COMPARE_CONSTRAINTS, "cv", [Interval(Integral, 3, None, closed="left")])
    assert "argument --cv: expected an integer >= 3, got '2'" in usage_error(
        [*compare, "--cv", "2"], capsys
    )


@pytest.mark.parametrize(
    "option, value, parsed",
    [
        ("--threshold", "auto", "auto"),
        ("--threshold", "0.25", 0.25),
        ("--batch-size", "-1", -1),  # the estimator's Options(Integral, {-1})
        ("--random-state", "7", 7),
        ("--ldam-s", "30", 30.0),
    ],
)
def test_words_and_numbers_the_constraints_allow_are_parsed(option, value, parsed):
    args = parse(["fit", "d", "--out", "m", option, value])
    assert getattr(args, option[2:].replace("-", "_")) == parsed


def test_a_constrained_type_names_every_allowed_form():
    parse_type = constrained([None, StrOptions({"auto"}), Interval(Real, 0, 1, closed="left")])
    assert parse_type("auto") == "auto" and parse_type("0") == 0.0
    expected = r"expected 'auto' or a number in \[0.0, 1.0\), got"
    for text in ("1", "nan", "-0.5", "half"):
        with pytest.raises(ArgumentTypeError, match=expected):
            parse_type(text)
    assert constrained([Interval(Integral, None, 5, closed="neither")])("4") == 4
    with pytest.raises(ArgumentTypeError, match="expected an integer <= 4, got '5'"):
        constrained([Interval(Integral, None, 5, closed="neither")])("5")


def test_a_hidden_constraint_is_no_option_value():
    placeholder = StrOptions({"deprecated"})
    placeholder.hidden = True  # as the validator marks a deprecated parameter's placeholder
    parse_type = constrained([Interval(Real, 0, 1, closed="both"), placeholder])
    with pytest.raises(ArgumentTypeError, match=r"^expected a number in \[0.0, 1.0\], got"):
        parse_type("deprecated")
    assert parse_type("0.5") == 0.5
