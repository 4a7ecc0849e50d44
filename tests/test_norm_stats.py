"""freeze_norm: a pretrained body's BatchNorm statistics stay while it is fine-tuned."""

import json
import os

import pytest
import torch
from conftest import FAST

from imbal_estimators import ImageImbalanceClassifier, SmallCNN, load
from imbal_estimators.app.cli import build_parser, estimator_params
from imbal_estimators.app.compare import fit_command
from imbal_estimators.estimator.finetune import freezes_norm


@pytest.fixture(autouse=True)
def _fresh_caches(fresh_caches):
    """Every test here starts and ends with empty caches (conftest.fresh_caches)."""


def running_stats(module):
    return {
        name: value.clone()
        for name, value in module.state_dict().items()
        if name.endswith(("running_mean", "running_var"))
    }


def small_cnn(**params):
    # lr=1e-4: the "auto" settings turn on at most at the package's default (AUTO_MAX_LR)
    settings = {**FAST, "backbone": "small_cnn", "max_epochs": 2, "lr": 1e-4}
    return ImageImbalanceClassifier(**{**settings, **params})


def test_a_pretrained_body_keeps_its_statistics(small_cnn_file, binary_data):
    X, y = binary_data
    start = running_stats(SmallCNN(num_classes=2))
    start = {k: v for k, v in torch.load(small_cnn_file).items() if k in start}
    kept = small_cnn(weights=small_cnn_file, head_init="random").fit(X, y)
    assert kept.module_.frozen_norm
    after = running_stats(kept.module_.backbone)
    assert after.keys() == start.keys() and len(after) >= 2
    for name, value in start.items():
        torch.testing.assert_close(after[name], value)
    # the weights did train (BatchNorm's scale and shift too)
    state = torch.load(small_cnn_file)
    trained = kept.module_.backbone.state_dict()
    assert any(not torch.equal(trained[k], state[k]) for k in state if k.endswith(".weight"))
    moved = small_cnn(weights=small_cnn_file, head_init="random", freeze_norm=False).fit(X, y)
    after = running_stats(moved.module_.backbone)
    assert any(not torch.allclose(after[k], v) for k, v in start.items())


def test_a_random_body_learns_its_statistics(binary_data):
    X, y = binary_data
    clf = small_cnn(weights=None).fit(X, y)
    assert not clf.module_.frozen_norm
    stats = running_stats(clf.module_.backbone)
    assert any(
        name.endswith("running_var") and not torch.allclose(v, torch.ones_like(v))
        for name, v in stats.items()
    )
    # in eval mode predictions use them; training mode of the body is unchanged
    clf.module_.train(True)
    assert all(m.training for m in clf.module_.modules())


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"weights": None}, False),
        ({"weights": "w.pth"}, True),
        ({"weights": "w.pth", "freeze_backbone": True}, False),
        ({"weights": "w.pth", "lr": 1e-3}, False),  # faster steps: measured to hurt
        ({"weights": "w.pth", "freeze_norm": False}, False),
        ({"weights": None, "freeze_norm": True}, True),
    ],
)
def test_auto_freezes_a_pretrained_network_that_is_fine_tuned(params, expected):
    assert freezes_norm(small_cnn(**params)) is expected


def test_freeze_norm_round_trips(tmp_path, small_cnn_file, binary_data):
    X, y = binary_data
    clf = small_cnn(weights=small_cnn_file, freeze_norm=False, max_epochs=1).fit(X, y)
    folder = clf.save(tmp_path / "model")
    with open(os.path.join(folder, "config.json")) as file:
        config = json.load(file)
    assert config["params"]["freeze_norm"] is False
    assert load(folder).freeze_norm is False
    del config["params"]["freeze_norm"]  # a model saved before freeze_norm
    with open(os.path.join(folder, "config.json"), "w") as file:
        json.dump(config, file)
    assert load(folder).freeze_norm is False


@pytest.mark.parametrize("value", ["frozen", None, 2])
def test_a_bad_freeze_norm_names_the_parameter(value, binary_data):
    X, y = binary_data
    with pytest.raises(ValueError, match="freeze_norm"):
        small_cnn(freeze_norm=value).fit(X, y)


def test_the_cli_option_and_the_printed_fit_command(tmp_path):
    parser = build_parser()
    base = ["fit", str(tmp_path), "--out", str(tmp_path / "m")]
    assert (
        estimator_params(parser.parse_args([*base, "--freeze-norm", "no"]))["freeze_norm"] is False
    )
    assert estimator_params(parser.parse_args([*base, "--freeze-norm", "yes"]))["freeze_norm"]
    assert "freeze_norm" not in estimator_params(parser.parse_args(base))
    command = fit_command({"backbone": "small_cnn", "weights": "w.pth", "freeze_norm": False})
    assert "--freeze-norm no" in command
    assert "--freeze-norm" not in fit_command({"backbone": "small_cnn", "freeze_norm": "auto"})


def test_a_saved_pretrained_model_keeps_its_statistics_frozen_after_load(
    tmp_path, small_cnn_file, binary_data
):
    # load builds the network without weights (every tensor is in the file): "auto" must
    # still be decided with the saved weights
    X, y = binary_data
    clf = small_cnn(weights=small_cnn_file, head_init="random").fit(X, y)
    assert clf.module_.frozen_norm
    clf.save(tmp_path / "model")
    loaded = load(tmp_path / "model")
    assert loaded.module_.frozen_norm
    before = running_stats(loaded.module_.backbone)
    loaded.partial_fit(X, y)
    for name, value in running_stats(loaded.module_.backbone).items():
        torch.testing.assert_close(value, before[name])


def test_set_params_freeze_norm_applies_to_a_continued_fit(small_cnn_file, binary_data):
    X, y = binary_data
    clf = small_cnn(weights=small_cnn_file, head_init="random", freeze_norm=True).fit(X, y)
    kept = running_stats(clf.module_.backbone)
    clf.set_params(freeze_norm=False).partial_fit(X, y)
    assert not clf.module_.frozen_norm
    moved = running_stats(clf.module_.backbone)
    assert any(not torch.allclose(moved[k], v) for k, v in kept.items())
    clf.set_params(freeze_norm=True).partial_fit(X, y)  # and back: kept from here on
    assert clf.module_.frozen_norm
    again = running_stats(clf.module_.backbone)
    for name, value in moved.items():
        torch.testing.assert_close(again[name], value)
