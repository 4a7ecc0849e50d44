"""One registry per concept: losses, class-weight strategies, samplers and backbones.

Each name lives in one table with a one-line description; the estimator, the command
line and the search space read them, and adding an entry is all it takes to add a
method.
"""

import dataclasses

import numpy as np
import pytest
import torch
from conftest import tiny_classifier as make
from imblearn.over_sampling import RandomOverSampler

from imbal_estimators import ImageImbalanceClassifier, SmallCNN
from imbal_estimators.app.cli import build_parser, imbalance_params, tune_search_space
from imbal_estimators.estimator.persistence import FITTED
from imbal_estimators.imbalance.class_weights import ALPHA_STRATEGIES, Strategy, compute_alpha
from imbal_estimators.imbalance.samplers import (
    SAMPLERS,
    check_sampler,
    make_sampler,
    needs_features,
    resample_features,
)
from imbal_estimators.losses.registry import LOSSES, LossEntry, get_loss
from imbal_estimators.models.backbones import (
    BACKBONES,
    backbone_names,
    build_backbone,
    is_weights_file,
)
from imbal_estimators.training.plan import FitPlan, saved_fields

REGISTRIES = {"loss": LOSSES, "alpha": ALPHA_STRATEGIES, "sampler": SAMPLERS, "backbone": BACKBONES}


@pytest.mark.parametrize("registry", REGISTRIES.values(), ids=list(REGISTRIES))
def test_every_entry_has_a_one_line_description(registry):
    for name, entry in registry.items():
        assert name == name.lower() and " " not in name
        assert entry.description and "\n" not in entry.description
        assert len(entry.description) <= 90, name


# ----------------------------------------------------------------------------- losses


def test_an_unknown_loss_lists_the_registry():
    with pytest.raises(ValueError, match="Could not interpret loss='hinge'") as info:
        get_loss("hinge")
    for name in LOSSES:
        assert repr(name) in str(info.value)


def test_adding_a_loss_is_one_function_and_one_entry(binary_data, monkeypatch):
    built = []

    def _squared_hinge(weight=None, gamma=2.0, reduction="mean"):
        # it gets what its signature names: the class weights as weight, and gamma
        built.append(gamma)
        return torch.nn.MultiMarginLoss(p=2, weight=weight, reduction=reduction)

    entry = LossEntry(_squared_hinge, "squared multi-class hinge")
    monkeypatch.setitem(LOSSES, "squared_hinge", entry)
    X, y = binary_data
    clf = make(loss="squared_hinge", alpha="balanced", gamma=0.5, max_epochs=1).fit(X, y)
    assert isinstance(clf.criterion_, torch.nn.MultiMarginLoss) and clf.criterion_.p == 2
    np.testing.assert_allclose(clf.criterion_.weight, clf.class_weight_)
    assert built and set(built) == {0.5}


# ------------------------------------------------------------------ class-weight strategies


def test_a_callable_alpha_gets_the_counts_the_loss_sees(binary_data):
    X, y = binary_data
    clf = make(alpha=lambda counts: 1 / np.sqrt(counts), max_epochs=1).fit(X, y)
    np.testing.assert_allclose(clf.class_weight_, 1 / np.sqrt(clf.loss_class_counts_))
    # after a balancing sampler's draw the loss sees equal counts: equal weights
    over = make(alpha=lambda counts: 1 / counts, sampler="over", max_epochs=1).fit(X, y)
    assert over.class_weight_[0] == pytest.approx(over.class_weight_[1])


def test_a_callable_alpha_may_answer_with_a_dict():
    y = np.array(["a"] * 6 + ["b"] * 2)
    weights = compute_alpha(y, lambda counts: {"a": 1.0, "b": counts[0] / counts[1]})
    np.testing.assert_allclose(weights, [1.0, 3.0])


@pytest.mark.parametrize(
    "strategy, match",
    [
        (lambda counts: [1.0, -2.0], "finite and > 0"),
        (lambda counts: [1.0, np.nan], "finite and > 0"),
        (lambda counts: [1.0], "alpha has 1 weight"),
        (lambda counts: "balanced", "returned 'balanced'"),
    ],
)
def test_a_callable_alpha_is_validated(strategy, match):
    with pytest.raises(ValueError, match=match):
        compute_alpha(np.array([0, 0, 1]), strategy)


def test_adding_a_strategy_is_one_function_and_one_entry(binary_data, monkeypatch):
    def _log_inverse(counts, beta):
        return np.log1p(counts.sum() / counts)

    monkeypatch.setitem(ALPHA_STRATEGIES, "log_inverse", Strategy(_log_inverse, "log(1 + 1/p_c)"))
    X, y = binary_data
    clf = make(alpha="log_inverse", max_epochs=1).fit(X, y)
    counts = clf.loss_class_counts_
    np.testing.assert_allclose(clf.class_weight_, np.log1p(counts.sum() / counts))


# ---------------------------------------------------------------------------- samplers


def test_the_sampler_names():
    assert {"over", "under", "balanced_batches", "smote", "adasyn"} <= set(SAMPLERS)
    assert type(make_sampler("over")) is RandomOverSampler
    with pytest.raises(ValueError, match="Could not interpret sampler='oversample'.*'over'"):
        make_sampler("oversample")


@pytest.mark.parametrize("name", [n for n, e in SAMPLERS.items() if not e.needs_features])
def test_row_samplers_by_name_are_seeded_from_random_state(binary_data, name):
    X, y = binary_data

    def rows(random_state):
        clf = make(sampler=name, random_state=random_state, max_epochs=1).fit(X, y)
        assert type(clf.sampler_) is type(make_sampler(name))
        return np.sort(clf.sampler_.sample_indices_)

    np.testing.assert_array_equal(rows(3), rows(3))
    assert not np.array_equal(rows(3), rows(4))
    assert ImageImbalanceClassifier(sampler=name).get_params()["sampler"] == name


@pytest.mark.parametrize("name", [n for n, e in SAMPLERS.items() if e.needs_features])
def test_feature_samplers_by_name_resample_embeddings(name):
    assert needs_features(name)
    with pytest.raises(ValueError, match=f"sampler='{name}' .*freeze_backbone=True"):
        check_sampler(name, features_available=False)
    rng = np.random.default_rng(0)
    features = torch.as_tensor(
        np.r_[rng.normal(0, 1, (40, 4)), rng.normal(1.5, 1, (12, 4))], dtype=torch.float32
    )
    labels = np.array(["common"] * 40 + ["rare"] * 12)
    X_res, y_res, fitted = resample_features(name, features, labels, seed=0)
    assert type(fitted) is type(make_sampler(name))
    assert X_res.shape == (len(y_res), 4) and set(y_res) == {"common", "rare"}
    assert len(y_res) != len(labels) or not torch.equal(X_res, features)


def test_a_feature_sampler_by_name_fits_with_a_frozen_backbone(binary_data):
    X, y = binary_data
    clf = make(freeze_backbone=True, sampler="smote", max_epochs=1).fit(X, y)
    n_common = (np.asarray(y)[clf.train_indices_] == "cat").sum()
    assert clf.history[-1, "train_class_counts"] == [n_common, n_common]


# --------------------------------------------------------------------------- backbones


def test_backbone_names_are_torchvision_and_ours():
    names = backbone_names()
    assert "resnet34" in names and "small_cnn" in names


def test_small_cnn_by_name_is_the_module_small_cnn(binary_data):
    X, y = binary_data
    by_name = make(module=None, backbone="small_cnn", max_epochs=1).fit(X, y)
    assert type(by_name.module_.backbone) is SmallCNN
    by_module = make(module=SmallCNN, max_epochs=1).fit(X, y)
    np.testing.assert_allclose(by_name.predict_proba(X), by_module.predict_proba(X), atol=1e-6)


def test_small_cnn_loads_a_state_dict_file(tmp_path):
    source, _, _ = build_backbone("small_cnn", None, 3, width=8)
    path = tmp_path / "small.pt"
    torch.save(source.state_dict(), path)
    loaded, mean, std = build_backbone("small_cnn", str(path), 3, width=8)
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    other_head, _, _ = build_backbone("small_cnn", str(path), 5, width=8)  # a new head
    assert other_head.head.out_features == 5
    assert torch.equal(other_head.features[0].weight, source.features[0].weight)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("model.pth", True),
        ("model.bin", True),
        ("model.ckpt", True),
        ("model.safetensors", True),
        ("dir/weights", True),
        ("IMAGENET1K_V1", False),
        ("DEFAULT", False),
    ],
)
def test_one_rule_tells_a_weights_file(text, expected):
    assert is_weights_file(text) is expected


# ------------------------------------------------------------------------ command line


def test_fit_help_offers_every_loss_strategy_and_sampler(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["fit", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name in (*LOSSES, *ALPHA_STRATEGIES, *SAMPLERS, *BACKBONES):
        assert name in text, name
    for entry in (*LOSSES.values(), *SAMPLERS.values()):
        assert " ".join(entry.description.split()) in text


def test_each_flag_is_the_estimator_parameter_of_the_same_name():
    argv = [
        "fit", "data", "--out", "m", "--loss", "ldam", "--gamma", "1.5", "--alpha", "0.7",
        "--beta", "0.99", "--sampler", "balanced_batches", "--tau", "0.5", "--max-margin", "0.3",
        "--ldam-s", "8", "--label-smoothing", "0.1", "--drw-epoch", "2", "--threshold", "auto",
        "--calibrate",
    ]  # fmt: skip
    params = imbalance_params(build_parser().parse_args(argv))
    assert params == dict(
        loss="ldam", gamma=1.5, alpha=0.7, beta=0.99, sampler="balanced_batches",
        criterion__tau=0.5, criterion__max_margin=0.3, criterion__s=8.0, label_smoothing=0.1,
        drw_epoch=2, threshold="auto", calibrate=True,
    )  # fmt: skip
    ImageImbalanceClassifier(**params)  # every one is a parameter
    weights = imbalance_params(
        build_parser().parse_args(["fit", "d", "--out", "m", "--alpha", "1,3"])
    )
    assert weights == {"alpha": [1.0, 3.0]}


def test_fit_with_balanced_softmax_on_small_cnn(binary_folder, tmp_path):
    import json

    from imbal_estimators.app.cli import main

    out = tmp_path / "model"
    argv = ["fit", binary_folder, "--out", str(out), "--loss", "balanced_softmax"]
    argv += ["--backbone", "small_cnn", "--weights", "none", "--image-size", "16"]
    argv += ["--max-epochs", "1", "--batch-size", "16", "--sampler", "under"]
    assert main(argv) == 0
    params = json.loads((out / "config.json").read_text())["params"]
    assert params["loss"] == "balanced_softmax" and params["backbone"] == "small_cnn"
    assert params["sampler"] == "under" and params["weights"] is None


def test_tune_options_fix_or_search_parameters():
    args = build_parser().parse_args(
        ["tune", "d", "--trials", "2", "--loss", "ce", "focal", "--sampler", "smote"]
    )
    space, fixed = tune_search_space(args)
    assert space["loss"].choices == ("ce", "focal")
    assert "sampler" not in space and fixed == {"sampler": "smote"}
    args = build_parser().parse_args(["tune", "d", "--trials", "2", "--alpha", "none", "sqrt"])
    space, fixed = tune_search_space(args)
    assert space["alpha"].choices == (None, "sqrt") and fixed == {}


# ---------------------------------------------------------------------------- fit plan


def test_the_fit_plan_is_frozen_and_documented():
    plan_fields = {f.name for f in dataclasses.fields(FitPlan)}
    assert dataclasses.fields(FitPlan) and FitPlan.__dataclass_params__.frozen
    doc = ImageImbalanceClassifier.__doc__.split("Attributes\n    ----------")[1]
    for name in plan_fields:
        if not name.startswith("_"):
            assert name in doc, f"{name} is not documented in the Attributes"
    assert set(FITTED) == set(saved_fields()) and set(FITTED) < plan_fields


def test_a_saved_model_keeps_every_saved_plan_field(binary_data, tmp_path):
    import json

    X, y = binary_data
    make(max_epochs=1, threshold="auto").fit(X, y).save(tmp_path)
    fitted = json.loads((tmp_path / "config.json").read_text())["fitted"]
    assert set(fitted) == set(saved_fields())
