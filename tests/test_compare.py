"""compare(): the method table, one fit per configuration and fold, the estimator's own
threshold, workers, failures, screening and the model handed back."""

import csv
import json

import numpy as np
import pytest
from conftest import TINY

import imbal_estimators.app.compare as compare_module
from imbal_estimators import ImageImbalanceClassifier, SeedEnsembleClassifier
from imbal_estimators.app.compare import compare
from imbal_estimators.app.methods import (
    FEATURE_SAMPLERS,
    METHODS,
    Configuration,
    default_configurations,
    load_grid,
    make_sampler,
)
from imbal_estimators.losses.registry import LOSSES

PARAMS = {k: v for k, v in TINY.items() if k != "random_state"}
SMALL = ["ce", "focal g=2, alpha=balanced", "ce + over-sampling"]


@pytest.fixture(scope="module")
def binary_comparison(binary_data):
    X, y = binary_data
    return compare(X, y, methods=SMALL, cv=3, estimator_params=PARAMS, progress=False)


def test_default_table_covers_every_method():
    configs = default_configurations(features=True)
    names = [c.name for c in configs]
    assert len(names) == len(set(names))
    assert names[0] == "ce" and configs[0].params == {"loss": "ce"}
    losses = {c.params.get("loss") for c in configs}
    # every loss of the registry has a row; logit_adjusted at tau=1 is balanced_softmax's
    assert losses == set(LOSSES) - {"logit_adjusted"}
    assert [c.name for c in configs if c.params.get("loss") == "balanced_softmax"] == [
        "balanced_softmax"
    ]
    assert default_configurations(["logit_adjusted"])[1].name == "balanced_softmax"
    assert "logit_adjusted" not in METHODS
    focal = {(c.params["gamma"], c.params["alpha"]) for c in configs if c.method == "focal"}
    assert focal == {(g, a) for g in (1.0, 2.0) for a in (None, "balanced", "effective")}
    samplers = {c.sampler for c in configs} - {None}
    assert samplers == {"over", "under", "balanced_batches", *FEATURE_SAMPLERS}
    assert {c.method for c in configs} == set(METHODS)
    weighted = next(c for c in configs if c.method == "weighted_ce")
    assert weighted.params == {"loss": "ce", "alpha": "balanced"}
    ldam = next(c for c in configs if c.method == "ldam")
    assert ldam.params["alpha"] == "effective" and ldam.params["drw_epoch"] == 7  # of 10 epochs
    # without frozen features the SMOTE family is left out: it interpolates feature vectors
    plain = default_configurations()
    assert not any(c.needs_features for c in plain)
    assert len(plain) == len(configs) - len(FEATURE_SAMPLERS)


def test_methods_pick_a_subset_by_name_and_always_keep_ce():
    configs = default_configurations(["focal", "over"])
    assert [c.name for c in configs][:2] == ["ce", "focal g=2, alpha=balanced"]
    assert sum(c.method == "focal" for c in configs) == 6 and configs[-1].sampler == "over"
    assert [c.name for c in default_configurations(["ce + over-sampling"])] == [
        "ce",
        "ce + over-sampling",
    ]
    with pytest.raises(ValueError, match="The 'methods' parameter of compare .* Got 'focl'"):
        default_configurations(["focl"])


def test_sampler_names_are_checked_and_passed_to_the_estimator_by_name():
    assert make_sampler("over") == "over"
    assert make_sampler("smote") == "smote"
    assert make_sampler("balanced_batches") == "balanced_batches"
    assert make_sampler(None) is None
    with pytest.raises(ValueError, match="'sampler' of a configuration must be one of"):
        make_sampler("oversample")
    clf = ImageImbalanceClassifier(**Configuration("x", {"sampler": "over"}).estimator_params())
    assert clf.sampler == "over"


def test_grid_files_in_json_and_yaml(tmp_path):
    entries = [{"name": "my focal", "loss": "focal", "gamma": 2, "alpha": "balanced"}]
    entries.append({"sampler": "over"})
    (tmp_path / "grid.json").write_text(json.dumps(entries))
    configs = load_grid(tmp_path / "grid.json")
    assert [c.name for c in configs] == ["my focal", "ce sampler=over"]
    assert configs[0].params == {"loss": "focal", "gamma": 2, "alpha": "balanced"}
    assert configs[1].method == "over"
    (tmp_path / "grid.yaml").write_text("- loss: focal\n  gamma: 1.0\n- loss: balanced_softmax\n")
    configs = load_grid(tmp_path / "grid.yaml")
    assert [c.name for c in configs] == ["focal gamma=1", "balanced_softmax"]


def test_yaml_grid_without_pyyaml_says_to_install_it(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_yaml(name, *args, **kwargs):
        if name == "yaml":
            raise ImportError("No module named 'yaml'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_yaml)
    (tmp_path / "grid.yml").write_text("- loss: focal\n")
    with pytest.raises(ImportError, match="needs PyYAML: pip install pyyaml"):
        load_grid(tmp_path / "grid.yml")


@pytest.mark.parametrize(
    "text, message",
    [
        ("{}", "non-empty list of parameter sets"),
        ('[{"loss": "ce", "max_epochs": 3}]', r"grid\[0\] has parameter\(s\) \['max_epochs'\]"),
        ('[{"sampler": "nope"}]', "'sampler' of a configuration must be one of"),
        ('[{"name": "a"}, {"name": "a", "loss": "focal"}]', "repeated: \\['a'\\]"),
        ("[1, 2", "is not valid JSON"),
    ],
)
def test_bad_grid_files_are_refused_before_any_fit(tmp_path, text, message):
    (tmp_path / "grid.json").write_text(text)
    with pytest.raises(ValueError, match=message):
        load_grid(tmp_path / "grid.json")


def test_binary_rows_pair_argmax_and_tuned_threshold(binary_comparison):
    result = binary_comparison
    assert result.pos_label == "dog"  # the rarer class
    assert len(result.rows) == 2 * len(SMALL)
    assert {r.rule for r in result.rows} == {"argmax", "tuned threshold"}
    for row in result.rows:
        for metric, scores in row.fold_scores.items():
            assert len(scores) == 3 and np.all(np.isfinite(scores)), (row.name, metric)
    tuned = result.row("ce + tuned threshold")
    assert len(tuned.thresholds) == 3 and all(0 < t < 1 for t in tuned.thresholds)
    # the same fitted models: threshold-free scores are identical
    assert (
        tuned.fold_scores["average_precision"] == result.row("ce").fold_scores["average_precision"]
    )
    assert sorted(np.unique(result.folds)) == [0, 1, 2]
    assert result.proba["ce"].shape == (64, 2)
    assert np.allclose(result.proba["ce"].sum(axis=1), 1)
    history = result.histories["ce"][0]
    assert [e["epoch"] for e in history["epochs"]] == [1, 2]
    assert history["monitor"] == "valid_average_precision"  # binary F1: see monitor_for


def test_a_tuned_row_is_the_estimators_own_threshold(binary_comparison, binary_data):
    # fitting the configuration of a tuned row with threshold="auto" on a fold's training
    # part gives the threshold compare reported for that fold
    X, y = np.asarray(binary_data[0], dtype=object), np.asarray(binary_data[1])
    result = binary_comparison
    row = result.row("focal g=2, alpha=balanced + tuned threshold")
    params = result.row_params(row)
    assert params["threshold"] == "auto" and params["monitor"] == "average_precision"
    for fold in (0, 2):
        train, test = result.splits[fold]
        clf = ImageImbalanceClassifier(**{**params, "sampler": None}).fit(X[train], y[train])
        assert clf.threshold_ == row.thresholds[fold]
        predicted = clf.predict(X[test])
        assert np.array_equal(predicted, row.y_pred[test])


def test_each_configuration_is_fitted_once_per_fold(binary_data, monkeypatch):
    seen = []
    original = compare_module.run_fits

    def recording(tasks, *args, **kwargs):
        seen.extend(tasks)
        return original(tasks, *args, **kwargs)

    monkeypatch.setattr(compare_module, "run_fits", recording)
    X, y = binary_data
    result = compare(
        X, y, methods=SMALL[:2], cv=2, repeats=2, estimator_params=PARAMS, progress=False
    )
    assert len(seen) == 2 * 2 * 2  # configurations x folds x repeats; no second fit per rule
    assert {t.params["threshold"] for t in seen} == {"auto"}
    assert len(result.rows) == 4 and result.n_folds == 4
    assert all(len(r.fold_scores["f1"]) == 4 for r in result.rows)
    assert result.best_estimator_ is not None  # the refit, outside the CV tasks


def test_multiclass_rows_add_post_hoc_adjustment_where_it_applies(three_class_data):
    X, y = three_class_data
    result = compare(
        X,
        y,
        methods=["ce", "balanced_softmax", "over"],
        cv=2,
        estimator_params=PARAMS,
        progress=False,
        scoring="balanced_accuracy",
        refit=False,
    )
    assert result.pos_label is None and result.best_estimator_ is None
    names = {r.name: r.rule for r in result.rows}
    assert names == {
        "ce": "argmax",
        "ce + post-hoc adjustment": "post-hoc adjustment",
        "balanced_softmax": "argmax",  # its logits are prior-free already
        "ce + over-sampling": "argmax",  # balanced rows: the adjustment vanishes
    }
    for row in result.rows:
        assert all(np.all(np.isfinite(s)) for s in row.fold_scores.values())


def test_results_csv_has_the_fit_command_of_every_row(binary_comparison, tmp_path):
    binary_comparison.write_results_csv(tmp_path / "results.csv", "data/pets")
    binary_comparison.write_fold_scores_csv(tmp_path / "folds.csv")
    with open(tmp_path / "results.csv") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 6 and [int(r["rank"]) for r in rows] == list(range(1, 7))
    assert sum(r["recommended"] == "yes" for r in rows) == 1
    for column in ("f1", "balanced_accuracy", "average_precision", "precision", "recall"):
        for stat in ("mean", "std"):
            assert all(np.isfinite(float(r[f"{column}_{stat}"])) for r in rows)
    focal = next(r for r in rows if r["configuration"] == "focal g=2, alpha=balanced")
    assert focal["decision"] == "argmax" and focal["method"] == "focal"
    command = focal["fit"].split()
    assert command[:5] == ["imbal-estimators", "fit", "data/pets", "--out", "MODEL_DIR"]
    pairs = dict(zip(command[5::2], command[6::2], strict=False))
    assert pairs["--loss"] == "focal" and pairs["--alpha"] == "balanced"
    assert pairs["--max-epochs"] == "2" and pairs["--monitor"] == "average_precision"
    assert "--threshold" not in pairs and "--gamma" not in pairs  # gamma=2 is the default
    tuned = next(r for r in rows if r["configuration"] == "ce + over-sampling + tuned threshold")
    assert "--sampler over" in tuned["fit"] and "--threshold auto" in tuned["fit"]
    with open(tmp_path / "folds.csv") as file:
        folds = list(csv.DictReader(file))
    assert len(folds) == 6 * 3
    ce = [float(r["f1"]) for r in folds if r["configuration"] == "ce"]
    assert np.mean(ce) == pytest.approx(binary_comparison.row("ce").mean("f1"), abs=1e-5)


def test_the_recommended_model_is_refitted_on_all_images(binary_comparison, binary_data):
    X, y = binary_data
    result = binary_comparison
    ensemble = result.best_estimator_
    assert isinstance(ensemble, SeedEnsembleClassifier) and len(ensemble.members_) == 3
    expected = result.row_params(result.recommended)
    assert [m.random_state for m in ensemble.members_] == [
        expected["random_state"] + i for i in range(3)
    ]
    for clf in ensemble.members_:
        assert len(clf.train_indices_) + len(clf.valid_indices_) == len(X)
        for name in ("loss", "threshold", "monitor", "max_epochs"):
            assert getattr(clf, name) == expected[name], name
        assert clf.alpha == expected.get("alpha")
    proba = ensemble.predict_proba(X[:5])
    np.testing.assert_allclose(
        proba, np.mean([m.predict_proba(X[:5]) for m in ensemble.members_], axis=0)
    )
    assert set(ensemble.predict(X[:5])) <= {"cat", "dog"}
    assert result.plan.refits == 3 and "then 3 refits" in "\n".join(result.plan_lines)


def test_ensemble_1_refits_a_single_model(binary_data):
    X, y = binary_data
    configurations = [Configuration("ce", {"loss": "ce"})]
    kwargs = dict(configurations=configurations, cv=2, estimator_params=PARAMS, progress=False)
    single = compare(X, y, ensemble=1, **kwargs)
    assert isinstance(single.best_estimator_, ImageImbalanceClassifier)
    assert single.plan.refits == 1 and "then one refit" in "\n".join(single.plan_lines)
    with pytest.raises(
        ValueError,
        match=r"The 'ensemble' parameter of compare must be an int in the range \[1, inf\)",
    ):
        compare(X, y, ensemble=0, **kwargs)


def test_a_configuration_that_cannot_fit_is_reported_and_left_out(binary_data):
    X, y = binary_data
    broken = Configuration("ldam without alpha", {"loss": "ldam", "drw_epoch": 1}, "ldam")
    result = compare(
        X,
        y,
        configurations=[Configuration("ce", {"loss": "ce"}), broken],
        cv=2,
        estimator_params=PARAMS,
        progress=False,
        refit=False,
    )
    assert [r.name for r in result.rows] == ["ce", "ce + tuned threshold"] or {
        r.name for r in result.rows
    } == {"ce", "ce + tuned threshold"}
    assert "drw_epoch" in result.final.failures["ldam without alpha"]


def test_the_plan_is_printed_before_the_first_fit(binary_data, monkeypatch):
    lines, fits_when_printed = [], []
    original = compare_module.run_fits

    def recording(tasks, *args, **kwargs):
        fits_when_printed.append(len(lines))
        return original(tasks, *args, **kwargs)

    monkeypatch.setattr(compare_module, "run_fits", recording)
    X, y = binary_data
    compare(
        X,
        y,
        methods=["ce"],
        cv=2,
        estimator_params=PARAMS,
        progress=False,
        log=lines.append,
        refit=False,
    )
    text = "\n".join(lines)
    assert fits_when_printed[0] == len(lines)  # every line before the first fit
    assert "Positive class: 'dog'" in text and "the rarer class" in text
    assert "Plan: 2 fits (2 folds; no refit)" in text and "Estimated time:" in text
    assert (
        "Stage 1 skipped: module=TinyCNN sets pretrained = False: the network starts from "
        "random weights" in text
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(cv=20), "Class 'dog' has 16 image"),
        (dict(scoring="accuracy"), "The 'scoring' parameter of compare must be a str among"),
        (dict(pos_label="bird"), "pos_label 'bird' is not a class"),
        (dict(methods=["nope"]), "The 'methods' parameter of compare"),
        (dict(budget="soon"), "The 'budget' of compare must be a duration"),
        (dict(repeats=0), r"The 'repeats' parameter of compare must be an int in the range \[1"),
        (dict(screen=True), "screen=True needs a pretrained network"),
        (dict(pretrained="yes"), "The 'pretrained' parameter of compare must be"),
        (
            dict(configurations=[Configuration("ce", {"loss": "focal"})]),
            "baseline of the recommendation and must be plain cross-entropy",
        ),
    ],
)
def test_bad_arguments_fail_before_any_fit(binary_data, kwargs, message, monkeypatch):
    def no_fit(*args, **kwargs):
        raise AssertionError("fitted")

    monkeypatch.setattr(ImageImbalanceClassifier, "fit", no_fit)
    X, y = binary_data
    with pytest.raises(ValueError, match=message):
        compare(X, y, estimator_params=PARAMS, progress=False, **kwargs)


@pytest.mark.slow  # loky starts two workers that import torch: tens of seconds on 2 cores
def test_two_workers_give_the_results_of_one(binary_data, tmp_path):
    X, y = binary_data
    texts = []
    for n_jobs in (1, 2):
        result = compare(
            X,
            y,
            methods=["ce", "over"],
            cv=2,
            estimator_params=PARAMS,
            progress=False,
            n_jobs=n_jobs,
            refit=False,
        )
        result.write_results_csv(tmp_path / f"results{n_jobs}.csv")
        with open(tmp_path / f"results{n_jobs}.csv") as file:
            rows = list(csv.DictReader(file))
        texts.append([{k: v for k, v in r.items() if k != "fit_seconds"} for r in rows])
    assert texts[0] == texts[1]


@pytest.fixture(scope="module")
def pretrained_file(tmp_path_factory):
    """A state-dict file: "pretrained" weights without a download."""
    import torch
    import torchvision

    path = tmp_path_factory.mktemp("weights") / "shufflenet.pth"
    torch.manual_seed(0)
    torch.save(torchvision.models.shufflenet_v2_x0_5(weights=None).state_dict(), path)
    return str(path)


def test_pretrained_weights_screen_every_method_then_confirm_the_top(
    binary_data, pretrained_file, monkeypatch
):
    tasks = []
    original = compare_module.run_fits

    def recording(batch, *args, **kwargs):
        tasks.append(list(batch))
        return original(batch, *args, **kwargs)

    monkeypatch.setattr(compare_module, "run_fits", recording)
    X, y = binary_data
    params = {k: v for k, v in PARAMS.items() if k != "module"}
    result = compare(
        X,
        y,
        methods=["ce", "over", "smote", "balanced_softmax"],
        cv=2,
        top_k=1,
        # lr=0.05 trains these random "pretrained" weights in one epoch; at such a rate the
        # BatchNorm statistics must follow the weights (freeze_norm's docstring), or a row
        # diverges
        estimator_params={**params, "weights": pretrained_file, "lr": 0.05, "freeze_norm": False},
        progress=False,
    )
    screen, confirm = tasks
    names = {"ce", "ce + over-sampling", "ce + smote", "balanced_softmax"}
    assert {t.name for t in screen} == names
    assert all(t.params["freeze_backbone"] for t in screen)
    assert next(t for t in screen if t.name == "ce + smote").params["sampler"] == "smote"
    assert not any(t.params.get("freeze_backbone") for t in confirm)
    confirmed = {t.name for t in confirm}
    assert len(confirmed) == 2 and "ce" in confirmed and "ce + smote" not in confirmed
    screened_best = next(
        r.configuration.name
        for r in result.screen.rows
        if r.configuration.name not in ("ce", "ce + smote")
    )
    assert confirmed == {"ce", screened_best}
    assert [s.name for s in result.stages] == ["screen", "confirm"]
    assert len(result.screen.rows) == 8 and len(result.rows) == 4
    assert result.screen_note == ""
    rho = result.rank_agreement()
    assert np.isnan(rho) or -1 <= rho <= 1
    from imbal_estimators.app.report import comparison_blocks, render_html

    page = render_html(comparison_blocks(result), "t")
    assert "Stage 1: screen on frozen backbone features" in page
    assert "Stage 2: confirm, fine-tuned" in page and "Spearman" in page


@pytest.mark.slow
def test_a_dask_cluster_gives_the_results_of_one_worker(binary_data):
    distributed = pytest.importorskip("dask.distributed")
    from joblib import parallel_config

    X, y = binary_data
    kwargs = dict(
        methods=["ce", "over"], cv=2, estimator_params=PARAMS, progress=False, refit=False
    )
    alone = compare(X, y, **kwargs)
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True)
    with distributed.Client(cluster), parallel_config(backend="dask"):
        shared = compare(X, y, n_jobs=-1, **kwargs)
    cluster.close()
    for a, b in zip(alone.rows, shared.rows, strict=True):
        assert a.name == b.name and a.fold_scores == b.fold_scores and a.thresholds == b.thresholds


def test_worker_devices_one_gpu_per_slot(tmp_path):
    from imbal_estimators.app.parallel import claim_slot, worker_device

    assert [worker_device("auto", slot, 4) for slot in range(5)] == [
        "cuda:0",
        "cuda:1",
        "cuda:2",
        "cuda:3",
        "cuda:0",
    ]
    assert worker_device("cuda", 1, 2) == "cuda:1"
    assert worker_device("cpu", 1, 2) == "cpu" and worker_device("cuda:1", 0, 2) == "cuda:1"
    assert worker_device("auto", 3, 1) == "auto"  # one GPU: nothing to spread
    # a slot is an exclusive lock: a second claimant (another worker) gets the next slot
    import fcntl

    from imbal_estimators.app.parallel import _SLOT

    first = claim_slot(str(tmp_path))
    try:
        assert first == 0 and claim_slot(str(tmp_path)) == 0  # this process keeps its slot
        other = open(tmp_path / "slot-0.lock", "a")  # noqa: SIM115
        with pytest.raises(OSError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        other.close()
    finally:
        _SLOT.pop(str(tmp_path))[1].close()  # a worker holds its slot for life; a test does not
