"""With a pretrained network, the frozen screen's answer and the fine-tuned confirm's compete on
the same folds for the saved model."""

import csv
import shlex

import numpy as np
import pytest
import test_compare_networks
from test_report import fake_comparison

from imbal_estimators.app.cli import _print_summary, main
from imbal_estimators.app.compare import Stage, compare
from imbal_estimators.app.recommend import recommend
from imbal_estimators.app.report import recommendation
from imbal_estimators.estimator.persistence import load

user_net = test_compare_networks.user_net  # the fixture: an importable userpkg.nets:Net


def staged(screen_scores, confirm_scores, cv=4):
    """A comparison whose screen (frozen) and confirm (fine-tuned) stages have these rows."""
    screen = fake_comparison(screen_scores, n_images=120, cv=cv)
    confirm = fake_comparison(confirm_scores, n_images=120, cv=cv)
    for row in screen.rows:
        row.stage = "screen"
    confirm.stages = [Stage("screen", screen.rows, True), confirm.final]
    confirm.recommendation = recommend(confirm)
    return confirm


FROZEN_HIGH = {"ce + tuned threshold": [0.80, 0.78, 0.82, 0.79], "ce": [0.60, 0.62, 0.55, 0.58]}
FINETUNED_LOW = {"ce + tuned threshold": [0.60, 0.65, 0.58, 0.66], "ce": [0.50, 0.52, 0.45, 0.49]}


def test_the_frozen_answer_is_saved_when_it_scores_higher_on_the_same_folds():
    comparison = staged(FROZEN_HIGH, FINETUNED_LOW)
    rec = comparison.recommendation
    assert rec.row.stage == "screen" and rec.row.name == "ce + tuned threshold"
    assert rec.contest.frozen_won
    assert rec.contest.finetuned is comparison.row("ce + tuned threshold")
    np.testing.assert_allclose(rec.contest.test.mean, 0.175)  # 0.7975 - 0.6225
    params = comparison.row_params(rec.row)
    assert params["freeze_backbone"] is True and params["threshold"] == "auto"
    text = recommendation(comparison)[-1]
    assert text.startswith("The frozen screen's recommendation, ce + tuned threshold on frozen")
    assert "frozen minus fine-tuned +0.175" in text
    assert "p = 0.025): the saved model is the frozen one, better beyond the noise." in text


def test_the_fine_tuned_answer_is_saved_when_it_scores_higher():
    comparison = staged(FINETUNED_LOW, FROZEN_HIGH)
    rec = comparison.recommendation
    assert rec.row.stage == "confirm" and not rec.contest.frozen_won
    assert rec.row is comparison.row("ce + tuned threshold")
    assert "freeze_backbone" not in comparison.row_params(rec.row)
    last = recommendation(comparison)[-1]
    assert last.endswith(
        "the saved model is the fine-tuned one: the frozen one is not better beyond the noise."
    )


def test_a_frozen_lead_within_the_noise_keeps_the_fine_tuned_answer():
    """A fold's fine-tuned model trains on fewer images than the refit, so its CV score is
    pessimistic while fine-tuning still learns: a frozen lead must clear the paired test.
    The folds are those measured at lr=1e-3 on real features (docs/quality.md)."""
    comparison = staged(
        {"ce + tuned threshold": [0.75, 0.61, 0.53], "ce": [0.46, 0.78, 0.18]},
        {"ce + tuned threshold": [0.31, 0.29, 0.35], "ce": [0.43, 0.00, 0.00]},
        cv=3,
    )
    rec = comparison.recommendation
    assert rec.contest.test.mean > 0.3 and rec.contest.test.p_value > 0.05
    assert not rec.contest.frozen_won and rec.row.stage == "confirm"


def test_a_tie_keeps_the_fine_tuned_answer_and_one_stage_has_no_contest():
    comparison = staged(FROZEN_HIGH, FROZEN_HIGH)
    assert comparison.recommended.stage == "confirm"
    alone = fake_comparison(FROZEN_HIGH, n_images=120, cv=4)
    assert alone.recommendation.contest is None


def test_compare_saves_the_frozen_model_when_fine_tuning_learns_nothing(
    binary_data, tmp_path, capsys
):
    """A pretrained network fine-tuned at a learning rate of ~0 keeps its random head, while the
    frozen screen's heads are solved whatever the learning rate: the frozen answer wins, and the
    saved model is that frozen configuration refitted."""
    from conftest import FAST, TinyCNN

    class Pretrained(TinyCNN):
        pretrained = True

    X, y = binary_data
    # head_init="random": by default the fine-tune's head would start at the probe's solution,
    # the frozen answer itself (tests/test_probe_head.py)
    params = {**FAST, "module": Pretrained, "lr": 1e-12, "max_epochs": 1, "head_init": "random"}
    result = compare(
        X, y, methods=["ce"], cv=2, estimator_params=params, progress=False, ensemble=1
    )
    rec = result.recommendation
    assert [s.name for s in result.stages] == ["screen", "confirm"]
    assert rec.contest is not None and rec.contest.frozen_won
    assert result.recommended is rec.contest.frozen and result.recommended.stage == "screen"
    assert result.best_estimator_.freeze_backbone is True
    result.write_results_csv(tmp_path / "results.csv")
    with open(tmp_path / "results.csv") as file:
        chosen = [r for r in csv.DictReader(file) if r["recommended"] == "yes"]
    assert [(r["stage"], r["configuration"]) for r in chosen] == [
        ("screen", "ce + tuned threshold")
    ]
    _print_summary(result, str(tmp_path), "report.html")
    printed = capsys.readouterr().out
    assert "ce + tuned threshold (frozen, stage 1)" in printed
    assert printed.count("<- recommended") == 1
    assert "the saved model is the frozen one" in printed


@pytest.mark.slow
def test_a_frozen_winner_is_saved_and_its_fit_command_trains_the_same_model(
    binary_folder, tmp_path, user_net
):
    from imbal_estimators import load_image_folder

    out = tmp_path / "out"
    args = ["compare", binary_folder, "--out", str(out), "--module", user_net, "--methods", "ce"]
    args += ["--cv", "2", "--ensemble", "1", "--image-size", "16", "--max-epochs", "1"]
    args += ["--batch-size", "16", "--lr", "1e-12", "--device", "cpu"]  # fine-tuning learns nothing
    args += ["--head-init", "random"]  # (else its head starts at the frozen answer itself)
    assert main(args) == 0
    with open(out / "results.csv") as file:
        recommended = [r for r in csv.DictReader(file) if r["recommended"] == "yes"]
    assert [r["stage"] for r in recommended] == ["screen"]
    words = shlex.split(recommended[0]["fit"])
    assert "--freeze-backbone" in words and words[words.index("--module") + 1] == user_net
    words[words.index("--out") + 1] = str(tmp_path / "again")
    assert main(words[1:]) == 0  # run as printed
    paths, _ = load_image_folder(binary_folder)
    saved, again = load(out / "model"), load(tmp_path / "again")
    assert saved.freeze_backbone is True
    np.testing.assert_array_equal(saved.predict_proba(paths), again.predict_proba(paths))
