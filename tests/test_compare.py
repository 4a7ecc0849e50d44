"""compare(): the grid, one fit per configuration and fold, thresholds from the validation split."""

import csv

import numpy as np
import pytest
from conftest import TINY

import imbal_estimators.app.compare as compare_module
from imbal_estimators import ImageImbalanceClassifier
from imbal_estimators.app.compare import DEFAULT_GRID, Configuration, compare

SMALL_GRID = (
    Configuration("ce"),
    Configuration("focal g=2, alpha=balanced", loss="focal", gamma=2.0, alpha="balanced"),
    Configuration("ce + over-sampling", sampler="over"),
)
PARAMS = {k: v for k, v in TINY.items() if k != "random_state"}


@pytest.fixture(scope="module")
def binary_comparison(binary_data):
    X, y = binary_data
    return compare(X, y, configurations=SMALL_GRID, cv=3, estimator_params=PARAMS, progress=False)


def test_default_grid_is_the_documented_one():
    names = [c.name for c in DEFAULT_GRID]
    assert len(names) == len(set(names)) >= 8  # >= 8 rows even without threshold rows
    focal = {(c.gamma, c.alpha) for c in DEFAULT_GRID if c.loss == "focal"}
    assert focal == {(g, a) for g in (1.0, 2.0) for a in (None, "balanced", "effective")}
    assert {(c.loss, c.alpha, c.sampler) for c in DEFAULT_GRID if c.loss == "ce"} == {
        ("ce", None, None),
        ("ce", "balanced", None),
        ("ce", None, "over"),
    }
    params = DEFAULT_GRID[-1].estimator_params()
    assert type(params["sampler"]).__name__ == "RandomOverSampler"
    assert "gamma" not in DEFAULT_GRID[0].estimator_params()  # CE ignores gamma


def test_binary_rows_pair_argmax_and_tuned_threshold(binary_comparison):
    result = binary_comparison
    assert result.pos_label == "dog"  # the rarer class
    assert len(result.rows) == 2 * len(SMALL_GRID)
    assert {r.rule for r in result.rows} == {"argmax", "tuned threshold"}
    for row in result.rows:
        for metric, scores in row.fold_scores.items():
            assert len(scores) == 3 and np.all(np.isfinite(scores)), (row.name, metric)
    means = [r.mean("f1") for r in result.rows]
    assert means == sorted(means, reverse=True)
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
    assert history["monitor"] == "valid_balanced_accuracy"


def test_each_configuration_is_fitted_once_per_fold(binary_data, monkeypatch):
    fits, tuned_on = [], []
    original_fit = ImageImbalanceClassifier.fit
    original_tune = compare_module.tune_threshold

    def counting_fit(self, X, y, **kwargs):
        fits.append(len(X))
        return original_fit(self, X, y, **kwargs)

    def recording_tune(y_true, *args, **kwargs):
        tuned_on.append(len(y_true))
        return original_tune(y_true, *args, **kwargs)

    monkeypatch.setattr(ImageImbalanceClassifier, "fit", counting_fit)
    monkeypatch.setattr(compare_module, "tune_threshold", recording_tune)
    X, y = binary_data
    grid = SMALL_GRID[:2]
    result = compare(X, y, configurations=grid, cv=2, estimator_params=PARAMS, progress=False)
    assert len(fits) == len(grid) * 2  # no second fit for the tuned-threshold rows
    assert len(result.rows) == 4
    # thresholds come from the internal validation split (20% of a 32-image training
    # fold), never from the 32-image test fold
    assert tuned_on == [7] * 4


def test_multiclass_has_no_threshold_rows_and_macro_scores(three_class_data):
    X, y = three_class_data
    result = compare(
        X,
        y,
        configurations=SMALL_GRID,
        cv=2,
        estimator_params=PARAMS,
        progress=False,
        scoring="average_precision",
    )
    assert result.pos_label is None
    assert [r.rule for r in result.rows] == ["argmax"] * 3
    for row in result.rows:
        assert all(np.all(np.isfinite(s)) for s in row.fold_scores.values())
    assert result.scoring == "average_precision"


def test_results_csv_has_one_row_per_configuration(binary_comparison, tmp_path):
    binary_comparison.write_results_csv(tmp_path / "results.csv")
    binary_comparison.write_fold_scores_csv(tmp_path / "folds.csv")
    with open(tmp_path / "results.csv") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 6
    assert [int(r["rank"]) for r in rows] == list(range(1, 7))
    for column in ("f1", "balanced_accuracy", "average_precision", "precision", "recall"):
        for stat in ("mean", "std"):
            assert all(np.isfinite(float(r[f"{column}_{stat}"])) for r in rows)
    focal = next(r for r in rows if r["configuration"] == "focal g=2, alpha=balanced")
    assert (focal["loss"], focal["gamma"], focal["alpha"], focal["decision"]) == (
        "focal",
        "2.0",
        "balanced",
        "argmax",
    )
    assert next(r for r in rows if r["configuration"] == "ce + over-sampling")["sampler"] == "over"
    with open(tmp_path / "folds.csv") as file:
        folds = list(csv.DictReader(file))
    assert len(folds) == 6 * 3
    ce = [float(r["f1"]) for r in folds if r["configuration"] == "ce"]
    assert np.mean(ce) == pytest.approx(binary_comparison.row("ce").mean("f1"), abs=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(cv=20), "Class 'dog' has 16 image"),
        (dict(scoring="accuracy"), "scoring must be one of"),
        (dict(pos_label="bird"), "pos_label 'bird' is not a class"),
        (dict(configurations=SMALL_GRID[1:]), "baseline named 'ce'"),
    ],
)
def test_bad_arguments_fail_before_any_fit(binary_data, kwargs, message):
    X, y = binary_data
    with pytest.raises(ValueError, match=message):
        compare(X, y, estimator_params=PARAMS, progress=False, **kwargs)
