"""A parameter the user fixes leaves the search space, on the command line and in Python."""

import pytest
from conftest import make_folder, tiny_classifier

from imbal_estimators import ImageImbalanceClassifier, ImbalanceSearchCV
from imbal_estimators.app.cli import main
from imbal_estimators.search.space import DEFAULT_SEARCH_SPACE, check_search_space, fixed_params

SMALL = ["--backbone", "small_cnn", "--weights", "none", "--image-size", "8", "--max-epochs", "1"]


@pytest.fixture
def fit_lrs(monkeypatch):
    """The ``lr`` of every fit of an ImageImbalanceClassifier."""
    seen = []
    original = ImageImbalanceClassifier.fit

    def recording(self, X, y=None, **fit_params):
        seen.append(self.lr)
        return original(self, X, y, **fit_params)

    monkeypatch.setattr(ImageImbalanceClassifier, "fit", recording)
    return seen


def test_tune_lr_trains_every_trial_at_that_lr(tmp_path, fit_lrs, capsys):
    data = make_folder(tmp_path / "data", {"cat": 8, "dog": 6}, size=8)
    argv = ["tune", data, "--trials", "2", "--cv", "2", *SMALL, "--lr", "0.003"]
    assert main([*argv, "--batch-size", "8"]) == 0
    assert fit_lrs == [0.003] * 5  # 2 trials x 2 folds and the refit
    out = capsys.readouterr().out
    assert "Searching loss, gamma, alpha, sampler in 2 trial(s); fixed: lr=0.003" in out
    best = out.split(" with ", 1)[1]
    assert "'loss'" in best and "'lr'" not in best


def test_tune_with_every_parameter_fixed_says_so(tmp_path, capsys):
    data = make_folder(tmp_path / "data", {"cat": 4, "dog": 4}, size=8)
    argv = ["tune", data, "--trials", "1", "--cv", "2", *SMALL, "--lr", "0.01", "--loss", "ce"]
    argv += ["--gamma", "1", "--alpha", "none", "--sampler", "none"]
    assert main(argv) == 1
    assert "the options fix every parameter that tune searches" in capsys.readouterr().err


def test_fixed_params_are_the_values_away_from_the_defaults():
    clf = ImageImbalanceClassifier(lr=3e-3, loss="focal", gamma=2.0)
    assert fixed_params(clf) == {"loss": "focal", "lr": 3e-3}  # gamma=2.0 is the default
    assert fixed_params(None) == {}
    assert set(check_search_space(None, clf)) == {"gamma", "alpha", "sampler"}
    explicit = check_search_space({"lr": [1e-3, 1e-2]}, clf)  # an explicit space wins
    assert set(explicit) == {"lr"}


def test_fixing_the_whole_default_space_is_an_error():
    clf = ImageImbalanceClassifier(lr=3e-3, loss="focal", gamma=1.0, alpha="balanced")
    clf.set_params(sampler="over")
    with pytest.raises(ValueError, match="fixes every parameter of the default search space"):
        check_search_space(None, clf)


def test_the_default_space_keeps_the_estimators_lr(binary_data, fit_lrs):
    X, y = binary_data
    search = ImbalanceSearchCV(
        tiny_classifier(max_epochs=1, lr=0.02), n_trials=2, cv=2, random_state=0, refit=False
    ).fit(X, y)
    assert set(search.study_.trials[0].params) == set(DEFAULT_SEARCH_SPACE) - {"lr"}
    assert fit_lrs == [0.02] * 4
