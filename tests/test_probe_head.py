"""head_init: a fine-tuned network's new head starts at the linear probe's solution (LP-FT)."""

import json
import os

import numpy as np
import pytest
import torch
from conftest import FAST, TinyCNN, tiny_classifier
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

import imbal_estimators.estimator.finetune as probe_head
from imbal_estimators import ImageImbalanceClassifier, load
from imbal_estimators.app.cli import build_parser, estimator_params
from imbal_estimators.app.compare import fit_command
from imbal_estimators.estimator.finetune import probes_head


@pytest.fixture(autouse=True)
def _fresh_caches(fresh_caches):
    """Every test here starts and ends with empty caches (conftest.fresh_caches)."""


class FixedTiny(TinyCNN):
    """TinyCNN with weights fixed by its constructor, as a pretrained network's are."""

    pretrained = True

    def __init__(self, num_classes=2):
        super().__init__(num_classes)
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for param in self.parameters():
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)


def fixed(**params):
    return tiny_classifier(module=FixedTiny, **params)


def test_the_head_starts_at_the_probes_solution(binary_data):
    X, y = binary_data
    # lr=0 leaves every weight where training began: the head as the probe left it
    fine = fixed(lr=0.0, max_epochs=1).fit(X, y)
    assert fine.head_init == "auto"
    rows = fine.train_indices_
    probe = fixed(freeze_backbone=True).fit(np.asarray(X)[rows], np.asarray(y)[rows])
    assert probe.history[-1, "head_converged"]
    head = fine.module_.backbone.head
    torch.testing.assert_close(head.weight, probe.module_.head.weight, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(head.bias, probe.module_.head.bias, atol=1e-5, rtol=1e-4)
    # the probe never saw the validation rows, and its head is not the random one
    random_head = fixed(lr=0.0, max_epochs=1, head_init="random").fit(X, y)
    assert not torch.allclose(random_head.module_.backbone.head.weight, head.weight, atol=1e-2)
    np.testing.assert_allclose(
        fine.predict_proba(np.asarray(X)[rows]),
        probe.predict_proba(np.asarray(X)[rows]),
        atol=1e-4,
    )


def test_the_probe_solves_the_configurations_own_loss(binary_data):
    X, y = binary_data
    plain = fixed(lr=0.0, max_epochs=1).fit(X, y).module_.backbone.head.weight
    weighted = fixed(lr=0.0, max_epochs=1, alpha="balanced").fit(X, y).module_.backbone.head
    assert not torch.allclose(plain, weighted.weight, atol=1e-3)


def test_the_probe_uses_the_built_body_even_a_random_one(binary_data):
    """head_init="probe" on a random body: the probe's features are that body's."""
    X, y = binary_data
    fine = tiny_classifier(lr=0.0, max_epochs=1, head_init="probe").fit(X, y)
    start = dict(fine.module_.backbone.named_parameters())
    seen = {}

    def spy(net, X, y):
        probe = original(net, X, y)
        seen.update(probe.module_.backbone.named_parameters())
        return probe

    original = probe_head.start_from_probe
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(probe_head, "start_from_probe", spy)
        again = tiny_classifier(lr=0.0, max_epochs=1, head_init="probe").fit(X, y)
    torch.testing.assert_close(seen["features.0.weight"], start["features.0.weight"])
    torch.testing.assert_close(
        again.module_.backbone.head.weight, fine.module_.backbone.head.weight
    )


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, False),  # TinyCNN says pretrained = False: a random initialization
        ({"module": FixedTiny, "lr": 1e-4}, True),
        ({"module": FixedTiny}, False),  # tiny_classifier's lr=1e-3: above AUTO_MAX_LR
        ({"module": FixedTiny, "lr": 1e-4, "freeze_backbone": True}, False),
        ({"module": FixedTiny, "head_init": "random"}, False),
        ({"head_init": "probe"}, True),
        ({"module": None, "backbone": "small_cnn", "weights": None}, False),
        ({"module": None, "backbone": "small_cnn", "weights": "w.pth", "lr": 1e-4}, True),
        ({"module": None, "backbone": "small_cnn", "weights": "w.pth", "lr": 1e-3}, False),
    ],
)
def test_auto_probes_a_pretrained_network_that_is_fine_tuned(params, expected):
    assert probes_head(tiny_classifier(**params)) is expected


def test_a_weights_file_turns_the_probe_on(tmp_path, binary_data, monkeypatch):
    """A small_cnn state dict that the test writes: "auto" starts from the probe."""
    from imbal_estimators import SmallCNN

    torch.manual_seed(0)
    path = tmp_path / "small.pth"
    torch.save(SmallCNN(num_classes=2).state_dict(), path)
    calls = []
    original = probe_head.start_from_probe
    monkeypatch.setattr(probe_head, "start_from_probe", lambda *a: calls.append(1) or original(*a))
    X, y = binary_data
    params = dict(FAST, backbone="small_cnn", weights=str(path), max_epochs=1, lr=1e-4)
    clf = ImageImbalanceClassifier(**params).fit(X, y)
    assert calls == [1]
    clf.partial_fit(X, y)  # training goes on from the trained head: no new probe
    assert calls == [1]
    ImageImbalanceClassifier(**{**params, "weights": None}).fit(X, y)
    assert calls == [1]


def test_head_init_round_trips(tmp_path, binary_data):
    X, y = binary_data
    clf = fixed(head_init="probe")
    assert clf.get_params()["head_init"] == "probe"
    assert clone(clf).head_init == "probe"
    assert clf.set_params(head_init="random").head_init == "random"
    clf.set_params(head_init="probe").fit(X, y)
    folder = clf.save(tmp_path / "model")
    with open(os.path.join(folder, "config.json")) as file:
        assert json.load(file)["params"]["head_init"] == "probe"
    loaded = load(folder, trusted=True)  # FixedTiny is defined in a test module
    assert loaded.head_init == "probe"
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), atol=1e-6)


def test_a_model_saved_before_head_init_keeps_its_random_start(tmp_path, binary_data):
    X, y = binary_data
    folder = tiny_classifier().fit(X, y).save(tmp_path / "model")
    config_path = os.path.join(folder, "config.json")
    with open(config_path) as file:
        config = json.load(file)
    del config["params"]["head_init"]
    with open(config_path, "w") as file:
        json.dump(config, file)
    assert load(folder, trusted=True).head_init == "random"


def test_grid_search_over_head_init(binary_data):
    X, y = binary_data
    search = GridSearchCV(
        fixed(max_epochs=1),
        {"head_init": ["random", "probe"]},
        cv=2,
        scoring="accuracy",
        error_score="raise",
    ).fit(X, y)
    assert [p["head_init"] for p in search.cv_results_["params"]] == ["random", "probe"]
    assert search.best_estimator_.head_init in ("random", "probe")


@pytest.mark.parametrize("value", ["linear", None, True, 1])
def test_a_bad_head_init_names_the_parameter(value, binary_data):
    X, y = binary_data
    with pytest.raises(ValueError, match="head_init"):
        tiny_classifier(head_init=value).fit(X, y)


def test_the_cli_option_and_the_printed_fit_command(tmp_path):
    parser = build_parser()
    args = parser.parse_args(
        ["fit", str(tmp_path), "--out", str(tmp_path / "m"), "--head-init", "random"]
    )
    assert estimator_params(args)["head_init"] == "random"
    args = parser.parse_args(["fit", str(tmp_path), "--out", str(tmp_path / "m")])
    assert "head_init" not in estimator_params(args)
    with pytest.raises(SystemExit):
        parser.parse_args(["fit", str(tmp_path), "--head-init", "linear"])
    command = fit_command({"backbone": "small_cnn", "weights": None, "head_init": "probe"})
    assert "--head-init probe" in command
    assert "--head-init" not in fit_command({"backbone": "small_cnn", "head_init": "auto"})


class NoLinearHead(torch.nn.Module):
    """A network whose last layer is no Linear head: nothing for the probe to solve."""

    def __init__(self, num_classes=2):
        super().__init__()
        self.bias = torch.nn.Parameter(torch.zeros(num_classes))

    def forward(self, x):
        return self.bias.expand(len(x), -1) + 0 * x.float().mean()


def test_a_network_without_a_linear_head(binary_data):
    X, y = binary_data
    clf = tiny_classifier(module=NoLinearHead, max_epochs=1).fit(X, y)  # auto: its own start
    assert dict(clf.callbacks_)["probe_head"].probed_ is False
    with pytest.raises(ValueError, match="head_init='probe' needs a network whose last layer"):
        tiny_classifier(module=NoLinearHead, head_init="probe").fit(X, y)


def test_the_probe_with_a_sampler_and_a_class_of_two_images(tmp_path, small_cnn_file):
    # the 20 % split leaves the rare class one training row: some of the probe's CV folds
    # hold one class, where there is nothing to resample (imbalanced-learn refuses it)
    from conftest import make_folder
    from imblearn.over_sampling import RandomOverSampler

    from imbal_estimators import load_image_folder

    X, y = load_image_folder(make_folder(tmp_path / "data", {"a": 20, "b": 2}))
    params = dict(FAST, backbone="small_cnn", weights=small_cnn_file, lr=1e-4)
    clf = ImageImbalanceClassifier(**params, sampler=RandomOverSampler(random_state=0))
    clf.fit(X, y)
    assert dict(clf.callbacks_)["probe_head"].probed_
    assert clf.predict_proba(X).shape == (22, 2)
