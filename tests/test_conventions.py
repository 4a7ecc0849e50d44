"""Conventions of the Python ecosystem: --version, repr, skops, CLI help, scikit-learn's checks,
decision_function."""

import argparse
import importlib.metadata

import numpy as np
import pytest
from conftest import FAST, tiny_classifier
from sklearn.base import clone
from sklearn.metrics import average_precision_score, make_scorer
from sklearn.model_selection import StratifiedKFold, cross_validate
from sklearn.utils import estimator_checks

import imbal_estimators
from imbal_estimators import ImageImbalanceClassifier, ImbalanceSearchCV, SeedEnsembleClassifier
from imbal_estimators.app import compare as compare_module
from imbal_estimators.app.cli import build_parser, main
from imbal_estimators.decision import metrics


def test_version_comes_from_the_package_metadata(capsys):
    assert imbal_estimators.__version__ == importlib.metadata.version("imbal-estimators")
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"imbal-estimators {imbal_estimators.__version__}\n"


def test_repr_shows_the_parameters_set(binary_data):
    assert repr(ImageImbalanceClassifier(loss="focal")) == "ImageImbalanceClassifier(loss='focal')"
    assert repr(ImageImbalanceClassifier()) == "ImageImbalanceClassifier()"
    clf = ImageImbalanceClassifier(alpha="balanced", max_epochs=3, module__width=8)
    assert repr(clf) == (
        "ImageImbalanceClassifier(alpha='balanced', max_epochs=3, module__width=8)"
    )
    fitted = tiny_classifier(threshold="auto").fit(*binary_data)
    assert "threshold='auto'" in repr(fitted) and "module=<class" in repr(fitted)


@pytest.mark.slow  # skops dumps and loads take about 10 s
def test_skops_loads_without_trusting_print(binary_data):
    sio = pytest.importorskip("skops.io")
    X, y = binary_data
    clf = tiny_classifier(max_epochs=1).fit(X, y)
    data = sio.dumps(clf)
    untrusted = sio.get_untrusted_types(data=data)
    assert "builtins.print" not in untrusted
    loaded = sio.loads(data, trusted=untrusted)
    np.testing.assert_allclose(loaded.predict_proba(X[:6]), clf.predict_proba(X[:6]), atol=1e-6)


def subcommands():
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def test_every_positional_has_help():
    missing = [
        f"{name} {action.metavar or action.dest}"
        for name, sub in subcommands().items()
        for action in sub._actions
        if not action.option_strings and not action.help
    ]
    assert not missing


def test_scoring_offers_what_each_command_accepts():
    def choices(command):
        sub = subcommands()[command]
        return next(a.choices for a in sub._actions if "--scoring" in a.option_strings)

    assert list(choices("compare")) == list(compare_module.SCORING_OPTIONS)
    assert list(choices("tune")) == list(metrics.SCORING_OPTIONS)
    assert len(choices("tune")) == 6


# -- scikit-learn's API checks -----------------------------------------------------------

# The checks that need no data of their own: they run as scikit-learn wrote them.
API_CHECKS = [
    "check_estimator_cloneable",
    "check_estimator_tags_renamed",
    "check_valid_tag_types",
    "check_estimator_repr",
    "check_no_attributes_set_in_init",
    "check_do_not_raise_errors_in_init_or_set_params",
    "check_mixin_order",
    "check_parameters_default_constructible",
    "check_get_params_invariance",
    "check_set_params",
    "check_estimators_unfitted",
]

# The other API checks of scikit-learn 1.9 generate numeric arrays for X, which an
# estimator of image paths refuses by design; tests below run what they check on paths.
EXPECTED_FAILED = {
    "check_fit_score_takes_y": "numeric X; see test_api_on_path_input",
    "check_estimators_fit_returns_self": "numeric X; see test_api_on_path_input",
    "check_estimators_overwrite_params": "numeric X; see test_api_on_path_input",
    "check_dont_overwrite_parameters": "numeric X; see test_api_on_path_input",
    "check_readonly_memmap_input": "numeric memmap X; paths are read, never written",
    "check_positive_only_tag_during_fit": "numeric X; images are uint8 by nature",
}

ESTIMATORS = {
    "classifier": lambda: ImageImbalanceClassifier(**FAST),
    "ensemble": lambda: SeedEnsembleClassifier(ImageImbalanceClassifier(**FAST), n_members=2),
    "search": lambda: ImbalanceSearchCV(ImageImbalanceClassifier(**FAST), n_trials=2),
}


@pytest.mark.parametrize("kind", list(ESTIMATORS))
@pytest.mark.parametrize("check", API_CHECKS)
def test_scikit_learn_api_checks(kind, check):
    estimator = ESTIMATORS[kind]()
    getattr(estimator_checks, check)(type(estimator).__name__, estimator)


@pytest.mark.parametrize("check", sorted(EXPECTED_FAILED))
def test_data_checks_fail_only_for_numeric_input(check):
    with pytest.raises((TypeError, ValueError, AssertionError, IndexError)) as info:
        getattr(estimator_checks, check)("ImageImbalanceClassifier", ImageImbalanceClassifier())
    message = str(info.value)
    assert any(why in message for why in ("image file paths", "indices", "raised TypeError"))


def test_api_on_path_input(binary_data):
    """What the data checks above assert, on a small folder of images."""
    X, y = binary_data
    clf = tiny_classifier(max_epochs=1)
    params = {k: repr(v) for k, v in clf.get_params(deep=False).items()}
    assert clf.fit(X, y) is clf  # fit returns self
    assert {k: repr(v) for k, v in clf.get_params(deep=False).items()} == params  # untouched
    assert isinstance(clf.score(X, y), float)  # score takes y
    assert not hasattr(clone(clf), "classes_")


# -- decision_function -------------------------------------------------------------------


def test_binary_decision_function_is_the_log_odds_of_classes_1(binary_data):
    X, y = binary_data
    for pos_label in (None, "cat"):  # the rarer class "dog" is classes_[1]; "cat" is [0]
        clf = tiny_classifier(pos_label=pos_label, max_epochs=1).fit(X, y)
        proba = clf.predict_proba(X)
        scores = clf.decision_function(X)
        assert scores.shape == (len(X),)
        np.testing.assert_allclose(scores, np.log(proba[:, 1]) - np.log(proba[:, 0]), rtol=1e-9)


def test_multiclass_decision_function_is_the_log_probabilities(three_class_data):
    X, y = three_class_data
    clf = tiny_classifier().fit(X, y)
    np.testing.assert_allclose(clf.decision_function(X), np.log(clf.predict_proba(X)))


def test_multi_metric_cross_validate_scores_roc_auc_on_the_right_column(binary_data):
    X, y = binary_data
    cv = StratifiedKFold(2, shuffle=True, random_state=0)
    ap = make_scorer(average_precision_score, response_method="predict_proba", pos_label="cat")
    both = cross_validate(tiny_classifier(), X, y, cv=cv, scoring={"ap": ap, "roc_auc": "roc_auc"})
    alone = cross_validate(tiny_classifier(), X, y, cv=cv, scoring="roc_auc")
    np.testing.assert_allclose(both["test_roc_auc"], alone["test_score"])
    assert both["test_roc_auc"].min() > 0.5  # separable colors: far from the flipped column
