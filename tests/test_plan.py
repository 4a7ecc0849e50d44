"""The plan: durations, the cost model, and what a budget drops, in the documented order."""

import numpy as np
import pytest

from imbal_estimators.app.methods import default_configurations
from imbal_estimators.app.plan import (
    REPORT_SECONDS,
    Plan,
    Probe,
    Workload,
    dropped_lines,
    estimate,
    fit_seconds,
    format_duration,
    parse_budget,
    shrink,
)
from imbal_estimators.app.stats import corrected_resampled_ttest, spearman

PROBE = Probe(train_image=0.01, eval_image=0.003, fit_overhead=0.5)
WORK = Workload(n_images=500, class_counts=np.array([400, 100]))


@pytest.mark.parametrize(
    "text, seconds",
    [("20m", 1200), ("1h30m", 5400), ("90s", 90), ("1.5h", 5400), ("45", 2700), (30, 30)],
)
def test_parse_budget(text, seconds):
    assert parse_budget(text) == seconds


@pytest.mark.parametrize("text", ["soon", "20 minutes", "-5m", "0"])
def test_bad_budgets_are_refused(text):
    with pytest.raises(ValueError, match="'budget' of compare must be"):
        parse_budget(text)


def test_format_duration():
    assert [format_duration(s) for s in (8.2, 95, 3725)] == ["9 s", "1 min 35 s", "1 h 02 min"]


def plan(**kwargs):
    settings = {"cv": 5, "max_epochs": 10, "report": False, **kwargs}
    return Plan(configurations=default_configurations(), **settings)


def test_a_fine_tune_that_probes_its_head_costs_a_feature_pass_of_its_training_rows():
    from dataclasses import replace

    base = plan(cv=5)
    ce = base.configurations[0]
    plain = fit_seconds(ce, PROBE, WORK, base, frozen=False, n_train_rows=400)
    probed = fit_seconds(
        ce, replace(PROBE, probes_head=True), WORK, base, frozen=False, n_train_rows=400
    )
    assert probed - plain == pytest.approx(320 * 0.003)  # 320 training rows, eval_image each
    frozen = fit_seconds(ce, PROBE, WORK, base, frozen=True, n_train_rows=400)
    assert (
        fit_seconds(ce, replace(PROBE, probes_head=True), WORK, base, frozen=True, n_train_rows=400)
        == frozen
    )


def test_the_timing_probe_knows_whether_fine_tuning_probes_the_head(small_cnn_file, binary_data):
    from imbal_estimators.app.plan import run_probe

    X, y = binary_data
    params = dict(backbone="small_cnn", image_size=16, batch_size=4, device="cpu", verbose=0)
    X, y = np.asarray(X), np.asarray(y)
    assert run_probe(X, y, {**params, "weights": small_cnn_file, "lr": 1e-4}).probes_head
    assert not run_probe(X, y, {**params, "weights": small_cnn_file, "lr": 1e-3}).probes_head
    assert not run_probe(X, y, {**params, "weights": None, "lr": 1e-4}).probes_head


def test_the_estimate_counts_every_fit_and_grows_with_oversampling():
    base = plan(cv=5)
    assert base.n_fits == 14 * 5
    ce = base.configurations[0]
    over = next(c for c in base.configurations if c.sampler == "over")
    # 400 training images per fold: 320 train (256 + 64), 80 valid, 100 test
    one = fit_seconds(ce, PROBE, WORK, base, frozen=False, n_train_rows=400)
    assert one == pytest.approx(0.5 + 10 * (320 * 0.01 + 80 * 0.003) + (80 + 200) * 0.003)
    # over-sampling trains 2 x 256 rows per epoch
    assert fit_seconds(over, PROBE, WORK, base, frozen=False, n_train_rows=400) == pytest.approx(
        one + 10 * (512 - 320) * 0.01
    )
    refit = fit_seconds(ce, PROBE, WORK, base, frozen=False, n_train_rows=500)
    twice = plan(cv=5, repeats=2)
    assert estimate(twice, PROBE, WORK) - refit == pytest.approx(
        2 * (estimate(base, PROBE, WORK) - refit)
    )
    two_workers = Workload(500, WORK.class_counts, n_jobs=2)
    assert estimate(base, PROBE, two_workers) - refit == pytest.approx(
        (estimate(base, PROBE, WORK) - refit) / 2
    )
    # the report is counted too
    assert estimate(plan(report=True), PROBE, WORK) == pytest.approx(
        estimate(base, PROBE, WORK) + REPORT_SECONDS
    )


def test_a_budget_shrinks_in_the_documented_order():
    full = plan(cv=5, repeats=3)
    seconds = estimate(full, PROBE, WORK)
    steps = []
    for fraction in (0.6, 0.25, 0.08, 0.02, 0.001):
        shrunk = shrink(full, seconds * fraction, PROBE, WORK)
        steps.append(shrunk.dropped)
        assert shrunk.dropped  # something had to go
    assert steps[0] == ("repeats 3 -> 1",)
    assert steps[1][0] == "repeats 3 -> 1" and steps[1][1].startswith("variants: 5 config")
    assert any(d == "folds 5 -> 3" for d in steps[2])
    last = shrink(full, 1.0, PROBE, WORK)
    assert last.dropped == (
        "repeats 3 -> 1",
        "variants: 5 configuration(s), listed below",
        "folds 5 -> 3",
        "methods: 5 configuration(s), listed below",
        "epochs 10 -> 1",
        "folds 3 -> 2",
        "methods of the question: 2 configuration(s), listed below",
    )
    # the user's question is kept longest: CE and a focal row with a gamma x alpha choice
    assert [c.name for c in last.configurations] == ["ce", "focal g=2, alpha=balanced"]
    assert last.max_epochs == 1 and last.cv == 2
    assert "even the smallest plan is estimated at" in last.notes[-1]
    # every configuration dropped is named, none lost, none twice
    assert {c.name for c in last.removed} | {c.name for c in last.configurations} == {
        c.name for c in full.configurations
    }
    assert len(last.removed) == len({c.name for c in last.removed})
    # before the question is touched, every other method goes, and epochs are halved
    middle = shrink(full, seconds * 0.04, PROBE, WORK)
    assert [c.name for c in middle.configurations] == [
        "ce",
        "focal g=2, alpha=balanced",
        "ce, alpha=balanced",
        "ce + over-sampling",
    ]
    assert middle.dropped[-1] == "epochs 10 -> 5"


def test_methods_the_user_named_keep_their_grid_and_are_never_dropped():
    full = Plan(
        configurations=default_configurations(["focal", "over", "under"]),
        cv=5,
        report=False,
        asked=("focal", "under"),
    )
    tight = shrink(full, estimate(full, PROBE, WORK) * 0.05, PROBE, WORK)
    focal = [c.name for c in tight.configurations if c.method == "focal"]
    assert len(focal) == 6  # the whole gamma x alpha grid
    assert "ce + under-sampling" in [c.name for c in tight.configurations]


def test_dropped_configurations_are_listed_one_per_line_with_a_command():
    configs = default_configurations(["focal", "cb_focal"])
    removed = [c for c in configs if c.name in ("focal g=1, alpha=effective", "cb_focal")]
    lines = dropped_lines(removed, "photos", "runs/2")
    assert lines[1] == (
        "  - focal g=1, alpha=effective: imbal-estimators compare photos --out runs/2 "
        "--methods focal"
    )
    assert lines[2] == (
        "  - cb_focal: imbal-estimators compare photos --out runs/2 --methods cb_focal"
    )
    assert "focal loss: 1 of its gamma x alpha rows were not run" in lines[3]
    assert "--methods focal or a larger --budget" in lines[3]
    assert dropped_lines([]) == []


def test_corrected_resampled_ttest_against_a_hand_computation():
    a, b = [0.80, 0.72, 0.76], [0.62, 0.70, 0.66]
    test = corrected_resampled_ttest(a, b, n_train=50, n_test=25)
    d = np.subtract(a, b)
    t = d.mean() / np.sqrt((1 / 3 + 25 / 50) * d.var(ddof=1))
    assert test.t == pytest.approx(t) and test.wins == 3 and test.n_folds == 3
    from scipy import stats

    assert test.p_value == pytest.approx(2 * stats.t.sf(t, 2))
    assert test.p_value > 0.05 and not test.significant()
    # with no overlap correction it is the plain paired t-test
    plain = corrected_resampled_ttest(a, b, n_train=50, n_test=0)
    assert plain.t == pytest.approx(stats.ttest_rel(a, b).statistic)
    assert plain.p_value == pytest.approx(stats.ttest_rel(a, b).pvalue)
    same = corrected_resampled_ttest([0.5, 0.5], [0.5, 0.5], 10, 5)
    assert same.p_value == 1.0 and not same.significant()
    with pytest.raises(ValueError, match="at least 2 folds"):
        corrected_resampled_ttest([1.0], [0.0], 10, 5)


def test_spearman():
    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert np.isnan(spearman([1, 1, 1], [1, 2, 3]))
