"""The answer in words: what moved the score, the recommended row always printed, the
decision rule said, the epoch kept on a saturated monitor, and the report's figures."""

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import TINY, tiny_classifier
from skorch.history import History
from test_report import fake_comparison

import imbal_estimators.app.pacing as pacing
from imbal_estimators import ImageImbalanceClassifier
from imbal_estimators.app import plots
from imbal_estimators.app.cli import _print_summary
from imbal_estimators.app.compare import compare
from imbal_estimators.app.gallery import GalleryItem
from imbal_estimators.app.methods import Configuration
from imbal_estimators.app.moved import moves, what_moved
from imbal_estimators.app.plan import (
    Plan,
    Probe,
    Workload,
    describe_plan,
    network_text,
)
from imbal_estimators.app.report import calibration_note, comparison_blocks, model_blocks
from imbal_estimators.training.callbacks import KeepBestModel, history_key

PARAMS = {k: v for k, v in TINY.items() if k != "random_state"}


# -- the epoch kept ---------------------------------------------------------------------


class _Net:
    def __init__(self):
        self.history = History()
        self.module_ = torch.nn.Linear(2, 2)


def _best_epoch(scores, losses, lower_is_better=False):
    net, keep = _Net(), KeepBestModel("valid_ap", lower_is_better=lower_is_better)
    keep.on_train_begin(net)
    for epoch, (score, loss) in enumerate(zip(scores, losses, strict=True), start=1):
        net.history.new_epoch()
        net.history.record("epoch", epoch)
        net.history.record("valid_ap", score)
        net.history.record("valid_loss", loss)
        with torch.no_grad():
            net.module_.weight.fill_(epoch)  # the weights say which epoch they are
        keep.on_epoch_end(net)
    keep.on_train_end(net)
    # the callback keeps the epoch on itself (fit reads it once); the net holds its weights
    assert not hasattr(net, "best_epoch_")
    assert float(net.module_.weight[0, 0].detach()) == keep.best_epoch_
    return keep.best_epoch_


def test_a_tie_of_a_saturated_monitor_keeps_the_lower_validation_loss():
    # the ensemble member: AP saturated at 1.0 from epoch 2, the loss still falling
    assert _best_epoch([0.9, 1.0, 1.0, 1.0, 1.0], [0.6, 0.5, 0.3, 0.2, 0.25]) == 4
    # the first epoch of the tie had the lowest loss: it stays
    assert _best_epoch([1.0, 1.0, 1.0], [0.2, 0.3, 0.4]) == 1
    # equal losses too: the later epoch, as before
    assert _best_epoch([1.0, 1.0], [0.2, 0.2]) == 2
    # a higher score still wins whatever the loss; NaN never
    assert _best_epoch([0.5, 0.7, math.nan], [0.1, 0.9, 0.0]) == 2
    assert _best_epoch([0.5, 0.4], [0.3, 0.1], lower_is_better=True) == 2


def test_history_key_is_one_rule():
    assert history_key("valid_loss") == "valid_loss"
    assert history_key("average_precision") == "valid_average_precision"


def test_a_report_on_a_model_monitoring_the_validation_loss_shows_its_curve(binary_data):
    X, y = binary_data
    clf = tiny_classifier(monitor="valid_loss").fit(X, y)
    blocks = model_blocks(clf, X, y)
    curves = next(b for b in blocks if getattr(b, "name", "") == "training_curves")
    assert curves.png.startswith(b"\x89PNG")
    # the history the curves were drawn from: the loss itself, never valid_valid_loss / None
    from imbal_estimators.app.parallel import training_history

    history = training_history(clf)
    assert history["monitor"] == "valid_loss"
    assert all(e["valid_score"] == e["valid_loss"] is not None for e in history["epochs"])


# -- what moved the score ----------------------------------------------------------------


def test_what_moved_names_each_gain_with_its_paired_spread():
    result = fake_comparison(
        {
            "focal g=2 + tuned threshold": [0.80, 0.82, 0.79, 0.81, 0.80],
            "ce + tuned threshold": [0.79, 0.80, 0.80, 0.80, 0.79],
            "focal g=2": [0.70, 0.69, 0.71, 0.70, 0.68],
            "ce": [0.60, 0.62, 0.61, 0.60, 0.63],
        },
        cv=5,
    )
    found = {m.question: m for m in moves(result)}
    rule, loss = found["rule"], found["loss"]
    assert rule.row.name == "ce + tuned threshold" and rule.against.name == "ce"
    assert rule.test.mean == pytest.approx(0.184) and rule.clear
    assert loss.row.name == "focal g=2 + tuned threshold"
    assert loss.against.name == "ce + tuned threshold"  # the same decision rule
    assert loss.test.mean == pytest.approx(0.008) and not loss.clear
    assert "reweighting" not in found  # no such row was run
    text = what_moved(result)
    assert text.startswith("What moved the score (F1; paired differences")
    assert "A tuned threshold moved cross-entropy by +0.184 ± 0.015" in text
    assert "higher in 5 of 5 folds" in text and "the folds tell them apart" in text
    assert (
        "The best loss, focal g=2 + tuned threshold, moved it by +0.008 ± 0.011 (higher in 4 "
        "of 5 folds, p = 0.34) against ce + tuned threshold: within the noise" in text
    )
    assert "p < 0.01) over argmax" in text
    assert "within the noise (the folds cannot tell them apart)" in text


def test_the_report_opens_with_what_moved_the_score(binary_data):
    X, y = binary_data
    result = compare(
        X,
        y,
        methods=["ce", "weighted_ce"],
        cv=2,
        estimator_params=PARAMS,
        progress=False,
        refit=False,
    )
    blocks = comparison_blocks(result, "data/pets")
    assert blocks[0].text == "What moved the score"
    assert "re-weighting or resampling, ce, alpha=balanced" in blocks[1].text
    # the weighted model's calibration caption names its class weights; plain CE's nothing
    reliability = next(b for b in blocks if getattr(b, "name", "") == "reliability")
    if result.recommended.configuration.name == "ce":
        assert "push it off" not in reliability.caption
    else:
        assert "class weights (alpha='balanced')" in reliability.caption
    pr = next(b for b in blocks if getattr(b, "name", "") == "precision_recall")
    assert "pooled" in pr.caption and "mean of one AP per test fold" in pr.caption


def test_the_printed_table_always_shows_the_recommended_row(capsys):
    scores = {
        f"focal g={g} + tuned threshold": [0.80 + g / 100, 0.60, 0.81, 0.62, 0.80]
        for g in range(1, 7)
    }
    scores["ce + tuned threshold"] = [0.70, 0.69, 0.71, 0.70, 0.70]
    scores["ce"] = [0.50, 0.40, 0.52, 0.41, 0.50]
    result = fake_comparison(scores, cv=5)
    assert result.recommended.name == "ce + tuned threshold"
    rank = [r.name for r in result.rows].index("ce + tuned threshold") + 1
    assert rank == 7
    _print_summary(result, "out", "out/report.html")
    out = capsys.readouterr().out
    assert "   7  ce + tuned threshold" in out and "<- recommended" in out
    assert "      ...\n   7  ce + tuned threshold" in out
    assert "... 2 more in out/results.csv" in out
    assert "What moved the score" in out


# -- the plan in words --------------------------------------------------------------------


def test_the_plan_names_the_network_with_its_defaults_never_none():
    assert network_text(ImageImbalanceClassifier()) == (
        "resnet34 (pretrained weights DEFAULT) at 224 px"
    )
    text = network_text(ImageImbalanceClassifier(backbone="small_cnn", weights=None, image_size=32))
    assert text == "small_cnn (random init) at 32 px"
    assert "None" not in network_text(ImageImbalanceClassifier(module=torch.nn.Linear))


def test_a_plan_over_an_hour_prints_options_with_their_estimates():
    probe = Probe(train_image=0.5, eval_image=0.15, fit_overhead=2.0, probe_seconds=3.0)
    work = Workload(n_images=380, class_counts=np.array([300, 80]))
    config = Configuration("ce", {"loss": "ce"})
    plan = Plan(configurations=(config,) * 1, cv=5, max_epochs=10)
    lines = describe_plan(
        plan, probe, work, "resnet34 at 224 px", device="cpu", threads=2, image_size=224
    )
    text = "\n".join(lines)
    assert "None" not in text
    assert "refits" in text and "report" in text
    start = next(i for i, line in enumerate(lines) if "over an hour" in line)
    options = [line.split(":")[0].strip() for line in lines[start + 1 :]]
    assert options == [
        "--freeze-backbone (with pretrained --weights DEFAULT)",
        "--image-size 112",
        "--cv 3",
        "--budget 1h",
    ]
    # each is estimated, and each is below the plan
    assert all("~" in line for line in lines[start + 1 :])
    small = Plan(configurations=(config,), cv=2, max_epochs=1)
    assert not any(
        "over an hour" in line
        for line in describe_plan(small, probe, work, "x", device="cpu", threads=2)
    )


# -- the budget while running -----------------------------------------------------------


def test_the_pacer_drops_in_order_until_the_rest_fits(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(pacing.time, "perf_counter", lambda: clock[0])
    said = []
    pacer = pacing.Pacer(budget=100.0, start=100.0, log=said.append)
    pacer.begin_fits()
    clock[0] = 130.0  # 30 s spent on fits the plan gave 10 s: pace 3
    pacer.finished(10.0)
    assert pacer.pace == pytest.approx(3.0)
    a, b, c = (Configuration(n, {"loss": "ce"}, n) for n in ("a", "b", "c"))
    cost = {"a": 10.0, "b": 5.0, "c": 5.0}
    # 30 s spent + 3 x (20 s of fits + 5 s serial) = 105 s: over by 5 s; dropping a suffices
    drops = pacer.choose_drops([a, b, c], lambda cfg: cost[cfg.name], 20.0, 5.0)
    assert drops == [a]
    pacer.drop(drops, 5.0, 20.0)
    assert pacer.removed == [a]
    assert "dropping 1 more configuration(s)" in said[0]
    assert said[1] == "  - a: imbal-estimators compare DATA_DIR --out NEW_OUT_DIR --methods a"
    # refit seeds: 3 x 10 s at pace 3 do not fit in the 70 s left; 2 x 10 s do
    assert pacer.refits_within(3, 10.0, 0.0) == 2
    assert "refitting 2 seed(s) instead of 3" in said[-1]


def test_a_budget_the_probe_underestimated_drops_configurations_while_running(
    binary_data, monkeypatch
):
    import imbal_estimators.app.compare as compare_module

    fast = Probe(train_image=1e-6, eval_image=1e-6, fit_overhead=1e-4, probe_seconds=0.1)
    monkeypatch.setattr(compare_module.planning, "run_probe", lambda *a, **k: fast)
    X, y = binary_data
    configurations = [
        Configuration("ce", {"loss": "ce"}),
        Configuration("focal g=2, alpha=balanced", {"loss": "focal", "alpha": "balanced"}, "focal"),
        Configuration("cb_focal", {"loss": "cb_focal"}, "cb_focal"),
        Configuration("ce + under-sampling", {"sampler": "under"}, "under"),
    ]
    lines = []
    result = compare(
        X,
        y,
        configurations=configurations,
        cv=2,
        estimator_params=PARAMS,
        budget=0.05,  # spent before the first fit ends on any machine: no race with its speed
        ensemble=1,
        progress=False,
        log=lines.append,
    )
    removed = [c.name for c in result.plan.removed]
    assert removed == ["ce + under-sampling", "cb_focal"]  # the end of the list first
    assert {r.configuration.name for r in result.rows} == {"ce", "focal g=2, alpha=balanced"}
    assert any("dropping 2 more configuration(s)" in line for line in lines)
    blocks = comparison_blocks(result, "data/pets")
    listed = next(b for b in blocks if getattr(b, "text", "") == "Not run: dropped by the budget")
    table = blocks[blocks.index(listed) + 1].text.splitlines()
    assert (
        "  - cb_focal: imbal-estimators compare data/pets --out NEW_OUT_DIR --methods cb_focal"
        in (table)
    )


# -- the figures ---------------------------------------------------------------------------


def test_the_reliability_axes_name_the_positive_class():
    y = np.array(["normal"] * 30 + ["abnormal"] * 10)
    proba = np.linspace(0.05, 0.95, 40)
    proba = np.column_stack([proba, 1 - proba])  # columns: abnormal, normal
    figure = plots.reliability(y, proba, np.array(["abnormal", "normal"]), "abnormal")
    ax = figure.axes[0]
    assert ax.get_xlabel() == "predicted P(abnormal)"
    assert ax.get_ylabel() == "observed fraction of class abnormal"
    assert "Positive class" not in ax.get_xlabel() + ax.get_ylabel()


def test_the_precision_recall_legend_says_pooled():
    y = np.array([0] * 30 + [1] * 10)
    proba = np.linspace(0.05, 0.95, 40)
    proba = np.column_stack([1 - proba, proba])
    figure = plots.precision_recall(y, proba, np.array([0, 1]), 1, pooled=True)
    labels = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert labels[0].startswith("class 1, pooled (AP = ")


def test_gallery_captions_do_not_overlap(tmp_path):
    from PIL import Image as PILImage

    items = []
    for i in range(12):
        path = tmp_path / f"{i}.png"
        PILImage.new("RGB", (40, 30), (i * 20, 0, 0)).save(path)
        items.append(GalleryItem(str(path), "abnormal", "normal-looking-tissue", 0.547))
    figure = plots.gallery(items, "Misses")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(figure).get_renderer()
    figure.draw(renderer)
    axes = figure.axes[:12]
    captions = [ax.xaxis.label.get_window_extent(renderer) for ax in axes]
    pictures = [ax.get_window_extent(renderer) for ax in axes]
    for i, caption in enumerate(captions):
        assert caption.width > 0
        for j, other in enumerate(captions):
            assert i == j or not caption.overlaps(other)
        for j, picture in enumerate(pictures):
            assert i == j or not caption.overlaps(picture)  # nor the thumbnail below
    assert items[0].caption == "P=0.55\npredicted\nnormal-look…"


def test_the_calibration_caption_blames_only_what_the_model_used():
    assert calibration_note({"loss": "ce"}) == ""
    assert calibration_note({"loss": "balanced_softmax"}) == ""
    assert "focal loss" in calibration_note({"loss": "focal", "gamma": 2.0})
    assert calibration_note({"loss": "focal", "gamma": 0.0}) == ""
    note = calibration_note({"loss": "ce", "alpha": "balanced", "sampler": "over"})
    assert "class weights (alpha='balanced')" in note and "resampling" in note


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads /proc (Linux)")
def test_the_budget_counts_from_the_start_of_the_process():
    code = "import time; time.sleep(1.0); from imbal_estimators.app.cli import process_age; "
    code += "print(process_age())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    age = float(out.stdout)
    assert 1.0 <= age < 600  # the second slept, and the imports, are counted
