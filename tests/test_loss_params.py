"""Loss hyperparameters on the loss: ``criterion__tau``, ``criterion__max_margin`` and
``criterion__s``; the flat names of 0.2 deprecated; each loss gets what it declares."""

import json
import pickle
import warnings

import numpy as np
import pytest
import torch
from conftest import tiny_classifier as make
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, StratifiedKFold

import imbal_estimators
from imbal_estimators.app.cli import build_parser, imbalance_params
from imbal_estimators.estimator.loss_params import criterion_spelling, saved_params
from imbal_estimators.losses.balanced import LDAMLoss, LogitAdjustedLoss
from imbal_estimators.losses.registry import get_loss

MISSING = [f"/nonexistent/img_{i}.png" for i in range(6)]
MISSING_Y = ["a", "b"] * 3


@pytest.mark.parametrize(
    "flat, value, new, attribute, loss",
    [
        ("tau", 0.5, "criterion__tau", "tau", "logit_adjusted"),
        ("max_margin", 0.3, "criterion__max_margin", "max_margin", "ldam"),
        ("ldam_s", 4.0, "criterion__s", "s", "ldam"),
    ],
)
def test_flat_name_still_works_and_warns_with_the_new_spelling(
    binary_data, flat, value, new, attribute, loss
):
    X, y = binary_data
    clf = make(loss=loss, max_epochs=1, **{flat: value})
    assert clf.get_params()[flat] == value  # __init__ stores it unchanged
    with pytest.warns(FutureWarning, match=rf"'{flat}' parameter .* use {new}={value!r}"):
        clf.fit(X, y)
    assert getattr(clf.criterion_, attribute) == value
    same = make(loss=loss, max_epochs=1, **{new: value}).fit(X, y)
    np.testing.assert_array_equal(same.predict_proba(X), clf.predict_proba(X))


def test_default_and_new_spelling_warn_nothing(binary_data):
    X, y = binary_data
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        make(loss="ldam", criterion__s=5.0, max_epochs=1).fit(X, y)
        clf = make(max_epochs=1).fit(X, y)
    assert clf.tau == clf.max_margin == clf.ldam_s == "deprecated"
    assert "tau" not in repr(clf)


def test_flat_name_and_its_criterion_spelling_clash():
    clf = make(loss="logit_adjusted", tau=0.5, criterion__tau=0.7)
    with pytest.raises(ValueError, match=r"tau=0.5 and criterion__tau=0.7 both set"):
        clf.fit(MISSING, MISSING_Y)


def test_a_loss_gets_only_the_hyperparameters_it_declares(binary_data):
    X, y = binary_data
    clf = make(loss="ce", criterion__tau=0.5, criterion__s=4.0, max_epochs=1).fit(X, y)
    assert type(clf.criterion_) is torch.nn.CrossEntropyLoss
    with pytest.warns(FutureWarning, match="criterion__tau=0.3"):  # ignored by "ce", as in 0.2
        make(loss="ce", tau=0.3, max_epochs=1).fit(X, y)
    # another argument the loss does not take is an error, as skorch's criterion__*
    with pytest.raises(TypeError, match="Cannot build loss='ce'.*margin"):
        make(loss="ce", criterion__margin=1.0).fit(MISSING, MISSING_Y)


def test_get_loss_offers_hyperparameters_to_a_class_that_declares_them():
    class MyLoss(torch.nn.Module):
        def __init__(self, tau=0.0, weight=None):
            super().__init__()
            self.tau, self.weight = tau, weight

    loss = get_loss(MyLoss, gamma=3.0, tau=0.25, s=9.0, beta=0.5, alpha=torch.ones(2))
    assert loss.tau == 0.25 and loss.weight.tolist() == [1.0, 1.0]
    assert get_loss(MyLoss).tau == 0.0  # not offered: the class's own default
    ldam = get_loss("ldam", class_counts=[5, 1], s=3.0, tau=2.0, beta=0.1)
    assert isinstance(ldam, LDAMLoss) and ldam.s == 3.0
    # an instance declares nothing: hyperparameters are left out, other arguments refused
    instance = LogitAdjustedLoss([5, 1], tau=0.4)
    assert get_loss(instance, tau=1.0) is instance


def test_grid_search_over_criterion_tau(binary_data):
    X, y = binary_data
    search = GridSearchCV(
        make(loss="logit_adjusted", max_epochs=1),
        {"criterion__tau": [0.0, 2.0]},
        cv=StratifiedKFold(2),
        scoring="balanced_accuracy",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        search.fit(X, y)
    assert search.best_params_["criterion__tau"] in (0.0, 2.0)
    assert search.best_estimator_.criterion_.tau == search.best_params_["criterion__tau"]
    clf = clone(search.best_estimator_).set_params(criterion__tau=1.5)
    assert clf.get_params()["criterion__tau"] == 1.5 and clf.tau == "deprecated"


def test_saved_flat_names_load_as_criterion_params(binary_data, tmp_path):
    X, y = binary_data
    clf = make(loss="logit_adjusted", criterion__tau=0.5, max_epochs=1).fit(X, y)
    clf.save(tmp_path / "m")
    config_path = tmp_path / "m" / "config.json"
    config = json.loads(config_path.read_text())
    del config["params"]["criterion__tau"]  # as 0.2 saved it: the flat names, all of them
    config["params"].update(tau=0.5, max_margin=0.5, ldam_s=30.0)
    config_path.write_text(json.dumps(config))
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        loaded = imbal_estimators.load(tmp_path / "m")
        loaded.partial_fit(X, y)  # a further fit warns nothing either
    assert loaded.get_params()["criterion__tau"] == 0.5
    assert loaded.tau == loaded.max_margin == loaded.ldam_s == "deprecated"


def test_a_pickle_with_flat_names_unpickles_to_criterion_params(binary_data):
    X, y = binary_data
    clf = make(loss="logit_adjusted", max_epochs=1).fit(X, y)
    clf.__dict__.update(tau=0.5, max_margin=0.5, ldam_s=30.0)  # as 0.2 pickled it
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        loaded = pickle.loads(pickle.dumps(clf))
        loaded.partial_fit(X, y)
    assert loaded.get_params()["criterion__tau"] == 0.5 == loaded.criterion_.tau
    assert loaded.tau == loaded.max_margin == loaded.ldam_s == "deprecated"
    assert "criterion__max_margin" not in loaded.get_params()  # the old default: dropped


def test_saved_params_drop_old_defaults_and_keep_the_rest():
    old = {"loss": "ldam", "tau": 1.0, "max_margin": 0.3, "ldam_s": 30.0, "beta": 0.9}
    assert saved_params(old) == {"loss": "ldam", "criterion__max_margin": 0.3, "beta": 0.9}
    both = {"tau": 0.2, "criterion__tau": 0.4}
    assert saved_params(both) == {"criterion__tau": 0.4}
    assert saved_params({"tau": "deprecated"}) == {}
    assert criterion_spelling({"ldam_s": 8.0, "tau": "deprecated"}) == {"criterion__s": 8.0}


def test_command_line_options_are_criterion_params():
    argv = ["fit", "d", "--out", "m", "--loss", "ldam", "--tau", "0.5", "--max-margin", "0.3"]
    params = imbalance_params(build_parser().parse_args([*argv, "--ldam-s", "8"]))
    assert params == dict(
        loss="ldam", criterion__tau=0.5, criterion__max_margin=0.3, criterion__s=8.0
    )
