"""compare's arguments are checked against its declared COMPARE_CONSTRAINTS, with the
estimators' validator, before any image is decoded or any network fitted."""

from numbers import Integral

import pytest
from conftest import TINY

import imbal_estimators.app.compare as compare_module
from imbal_estimators import ImageImbalanceClassifier
from imbal_estimators.app.compare import COMPARE_CONSTRAINTS, compare
from imbal_estimators.utils.param_validation import Interval, InvalidParameterError

PARAMS = {k: v for k, v in TINY.items() if k != "random_state"}


class Decoding(Exception):
    """Raised where compare starts decoding the images: every check has passed."""


@pytest.fixture
def no_work(monkeypatch):
    def decoding(*args, **kwargs):
        raise Decoding

    def no_fit(*args, **kwargs):
        raise AssertionError("fitted")

    monkeypatch.setattr(compare_module, "scan_images", decoding)
    monkeypatch.setattr(ImageImbalanceClassifier, "fit", no_fit)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(cv=1), r"The 'cv' parameter of compare must be an int in the range \[2, inf\)"),
        (dict(top_k=0), r"'top_k' parameter of compare must be an int in the range \[1, inf\)"),
        (dict(ensemble=True), r"'ensemble' parameter of compare .* Got True instead"),
        (dict(n_jobs=0), r"'n_jobs' parameter of compare must be None or a non-zero integer"),
        (dict(threads=0), r"'threads' parameter of compare must be None or an int"),
        (dict(screen="yes"), r"'screen' parameter of compare must be .* Got 'yes' instead"),
        (dict(budget=-5), r"'budget' parameter of compare must be None, a float in the range"),
        (dict(refit="no"), r"'refit' parameter of compare must be"),
    ],
)
def test_arguments_outside_the_constraints_fail_first(binary_data, no_work, kwargs, message):
    X, y = binary_data
    with pytest.raises(InvalidParameterError, match=message):
        compare(X, y, estimator_params=PARAMS, progress=False, **kwargs)


def test_a_tighter_constraint_refuses_what_compare_accepted(binary_data, no_work, monkeypatch):
    X, y = binary_data
    with pytest.raises(Decoding):  # top_k=3 passes the declared [1, inf)
        compare(X, y, cv=2, top_k=3, estimator_params=PARAMS, progress=False)
    monkeypatch.setitem(COMPARE_CONSTRAINTS, "top_k", [Interval(Integral, 1, 2, closed="both")])
    with pytest.raises(InvalidParameterError, match=r"'top_k' .* range \[1, 2\]\. Got 3 inst"):
        compare(X, y, cv=2, top_k=3, estimator_params=PARAMS, progress=False)


def test_a_looser_constraint_accepts_what_compare_refused(binary_data, no_work, monkeypatch):
    X, y = binary_data
    with pytest.raises(InvalidParameterError, match="'repeats' parameter of compare"):
        compare(X, y, cv=2, repeats=0, estimator_params=PARAMS, progress=False)
    loose = [Interval(Integral, 0, None, closed="left")]
    monkeypatch.setitem(COMPARE_CONSTRAINTS, "repeats", loose)
    with pytest.raises(Decoding):
        compare(X, y, cv=2, repeats=0, estimator_params=PARAMS, progress=False)


def test_check_folds_reads_the_declared_cv(monkeypatch):
    labels = ["a"] * 3 + ["b"] * 3
    compare_module.check_folds(labels, 2)
    monkeypatch.setitem(COMPARE_CONSTRAINTS, "cv", [Interval(Integral, 3, None, closed="left")])
    with pytest.raises(InvalidParameterError, match=r"'cv' parameter of compare .* Got 2"):
        compare_module.check_folds(labels, 2)


def test_the_docstring_names_every_argument_and_every_constraint_is_an_argument():
    import inspect
    import re

    arguments = set(inspect.signature(compare).parameters)
    doc = compare.__doc__
    section = doc.split("\n    Parameters\n    ----------\n")[1].split("\n    Returns\n")[0]
    documented = set()
    for match in re.finditer(r"^    (\w[\w, ]*?) :", section, flags=re.M):
        documented.update(name.strip() for name in match.group(1).split(","))
    assert documented == arguments
    assert set(COMPARE_CONSTRAINTS) <= arguments
    assert inspect.getdoc(compare).startswith("Cross-validate every configuration")
