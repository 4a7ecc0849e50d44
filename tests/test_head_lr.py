"""head_lr_scale: a fine-tuned network's new head learns at a multiple of lr."""

import json
import os

import numpy as np
import pytest
from conftest import FAST

from imbal_estimators import ImageImbalanceClassifier, load
from imbal_estimators.app.cli import build_parser, estimator_params
from imbal_estimators.app.compare import fit_command


@pytest.fixture(autouse=True)
def _fresh_caches(fresh_caches):
    """Every test here starts and ends with empty caches (conftest.fresh_caches)."""


def small_cnn(**params):
    return ImageImbalanceClassifier(**{**FAST, "backbone": "small_cnn", "lr": 1e-3, **params})


def groups(clf):
    """``(lr, number of tensors, holds the head)`` per parameter group of the optimizer."""
    head = {id(p) for p in clf.module_.backbone.head.parameters()}
    return [
        (g["lr"], len(g["params"]), any(id(p) in head for p in g["params"]))
        for g in clf.optimizer_.param_groups
    ]


def test_a_pretrained_network_trains_its_head_ten_times_faster(small_cnn_file, binary_data):
    X, y = binary_data
    clf = small_cnn(weights=small_cnn_file, lr=1e-4).fit(X, y)  # "auto": on at most AUTO_MAX_LR
    n_params = len(list(clf.module_.parameters()))
    assert groups(clf) == [(1e-4, n_params - 2, False), (pytest.approx(1e-3), 2, True)]
    clf = small_cnn(weights=small_cnn_file).fit(X, y)  # lr=1e-3: "auto" keeps one rate
    assert groups(clf) == [(1e-3, n_params, True)]  # one group, the head in it
    clf = small_cnn(weights=small_cnn_file, head_lr_scale=3).fit(X, y)
    assert groups(clf)[1][0] == pytest.approx(3e-3)
    clf.partial_fit(X, y)  # training goes on in the same two groups
    assert groups(clf) == [(1e-3, n_params - 2, False), (pytest.approx(3e-3), 2, True)]


@pytest.mark.parametrize(
    "params", [{"weights": None}, {"head_lr_scale": 1.0}, {"freeze_backbone": True}]
)
def test_one_rate_for_a_random_network_a_scale_of_one_or_a_frozen_body(
    params, small_cnn_file, binary_data
):
    X, y = binary_data
    clf = small_cnn(**{"weights": small_cnn_file, **params}).fit(X, y)
    assert [lr for lr, _, _ in groups(clf)] == [1e-3]


def test_the_head_moves_further_with_a_larger_scale(small_cnn_file, binary_data):
    X, y = binary_data
    moves = []
    for scale in (1.0, 10.0):
        clf = small_cnn(
            weights=small_cnn_file, head_init="random", head_lr_scale=scale, lr=1e-4
        ).fit(X, y)
        reference = small_cnn(weights=small_cnn_file, head_init="random", lr=0.0).fit(X, y)
        moves.append(
            float(
                (clf.module_.backbone.head.weight - reference.module_.backbone.head.weight)
                .detach()
                .abs()
                .sum()
            )
        )
    assert moves[1] > 3 * moves[0] > 0


def test_head_lr_scale_round_trips(tmp_path, small_cnn_file, binary_data):
    X, y = binary_data
    clf = small_cnn(weights=small_cnn_file, head_lr_scale=2.5).fit(X, y)
    folder = clf.save(tmp_path / "model")
    with open(os.path.join(folder, "config.json")) as file:
        config = json.load(file)
    assert config["params"]["head_lr_scale"] == 2.5
    assert load(folder).head_lr_scale == 2.5
    del config["params"]["head_lr_scale"]  # a model saved before head_lr_scale
    with open(os.path.join(folder, "config.json"), "w") as file:
        json.dump(config, file)
    assert load(folder).head_lr_scale == 1.0


@pytest.mark.parametrize("value", [0, -1.0, "fast", None, 1e300, float("inf")])
def test_a_bad_head_lr_scale_names_the_parameter(value, binary_data):
    X, y = binary_data
    with pytest.raises(ValueError, match="head_lr_scale"):
        small_cnn(head_lr_scale=value).fit(X, y)


def test_the_cli_option_and_the_printed_fit_command(tmp_path):
    parser = build_parser()
    base = ["fit", str(tmp_path), "--out", str(tmp_path / "m")]
    assert (
        estimator_params(parser.parse_args([*base, "--head-lr-scale", "3"]))["head_lr_scale"] == 3.0
    )
    assert "head_lr_scale" not in estimator_params(parser.parse_args(base))
    with pytest.raises(SystemExit):
        parser.parse_args([*base, "--head-lr-scale", "0"])
    command = fit_command({"backbone": "small_cnn", "weights": "w.pth", "head_lr_scale": 1.0})
    assert "--head-lr-scale 1" in command


def test_random_weights_train_exactly_as_before(binary_data):
    """weights=None: "auto" turns none of the three fine-tuning settings on."""
    X, y = binary_data
    before = dict(head_init="random", freeze_norm=False, head_lr_scale=1.0)
    default = small_cnn(weights=None).fit(X, y)
    explicit = small_cnn(weights=None, **before).fit(X, y)
    assert default.head_init == default.freeze_norm == default.head_lr_scale == "auto"
    assert dict(default.callbacks_)["probe_head"].probed_ is False
    assert len(default.optimizer_.param_groups) == 1
    np.testing.assert_array_equal(default.predict_proba(X), explicit.predict_proba(X))


def test_set_params_then_continuing_keeps_the_heads_multiple(small_cnn_file, binary_data):
    X, y = binary_data
    clf = small_cnn(weights=small_cnn_file, lr=1e-4).fit(X, y)
    n_params = len(list(clf.module_.parameters()))
    clf.set_params(lr=1e-5)  # skorch gives every group the new lr
    clf.partial_fit(X, y)
    assert groups(clf) == [(1e-5, n_params - 2, False), (pytest.approx(1e-4), 2, True)]
    clf.set_params(head_lr_scale=3.0)
    clf.partial_fit(X, y)
    assert groups(clf)[1][0] == pytest.approx(3e-5)


def test_an_explicit_scale_for_a_head_that_is_not_linear_is_refused(binary_data):
    X, y = binary_data
    params = {**FAST, "backbone": "squeezenet1_1", "weights": None, "image_size": 32}
    with pytest.raises(ValueError, match=r"head_lr_scale=10.0 needs .* Linear layer"):
        ImageImbalanceClassifier(**params, head_lr_scale=10.0).fit(X, y)
    # "auto" (and 1) train a convolutional head at lr, as before
    ImageImbalanceClassifier(**params, head_lr_scale="auto").fit(X, y)
