"""The recommendation accounts for picking the best of many rows, and claims no winner from
under-trained models."""

import numpy as np
import pytest
from conftest import TINY
from test_report import fake_comparison

from imbal_estimators.app.compare import compare
from imbal_estimators.app.plan import Plan
from imbal_estimators.app.recommend import recommend
from imbal_estimators.app.report import recommendation
from imbal_estimators.app.stats import holm, max_t_permutation
from imbal_estimators.app.undertraining import budget_cut_epochs, check_undertraining


def test_holm_adjusts_step_down_and_keeps_the_order():
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(holm([0.5]), [0.5])
    np.testing.assert_allclose(holm([0.2, 0.9, 0.001, 0.4]), [0.6, 0.9, 0.004, 0.8])


def test_max_t_counts_the_selection_in_its_null():
    rng = np.random.default_rng(0)
    lead = np.full((1, 8), 0.05) + rng.normal(0, 0.01, (1, 8))
    noise = rng.normal(0, 0.05, (12, 8))
    clear = max_t_permutation(np.vstack([lead, noise]), 140, 20, best=0)
    assert clear <= 2 / 2**8  # only the identity (and nothing else) reaches its t
    # a modest lead among many noisy rows is what the best of many noisy rows reaches
    modest = np.vstack([noise[:1] + 0.02, noise[1:]])
    assert max_t_permutation(modest, 140, 20, best=0) > 0.05
    assert max_t_permutation(-lead, 140, 20, best=0) == 1.0


def many_rows(lead, n_noise=12, folds=8, seed=0):
    """Plain CE rows, a best row ``lead`` above CE + tuned threshold with little spread, and
    ``n_noise`` rows around that baseline."""
    rng = np.random.default_rng(seed)
    base = 0.70 + rng.normal(0, 0.02, folds)
    scores = {
        "focal best + tuned threshold": base + lead + rng.normal(0, 0.02, folds),
        "ce + tuned threshold": base,
        "ce": base - 0.1,
    }
    for i in range(n_noise):
        scores[f"focal v{i} + tuned threshold"] = base + rng.normal(0, 0.03, folds)
    return scores


def test_a_lead_that_one_test_supports_is_within_the_noise_of_many_rows():
    scores = many_rows(lead=0.02, seed=2)
    alone = fake_comparison({k: scores[k] for k in list(scores)[:3]}, n_images=160, cv=8)
    assert alone.recommendation.verdict == "supported"  # one row: no selection to account for
    comparison = fake_comparison(scores, n_images=160, cv=8)
    rec = comparison.recommendation  # Holm by default
    assert rec.best.name == "focal best + tuned threshold"
    assert rec.tests["ce + tuned threshold"].p_value < 0.05  # the unadjusted test passes
    assert rec.adjusted["ce + tuned threshold"] >= 0.05
    assert rec.verdict == "simplest_within_noise"
    assert rec.row.name == "ce + tuned threshold"
    assert recommend(comparison, selection=None).verdict == "supported"  # version 0.2


def test_a_clear_lead_clears_the_selection_aware_bar():
    comparison = fake_comparison(many_rows(lead=0.15), n_images=160, cv=8)
    rec = comparison.recommendation
    assert rec.verdict == "supported" and rec.row.name == "focal best + tuned threshold"
    text = " ".join(recommendation(comparison))
    assert "adjusted for picking the best of the rows compared" in text


def test_selection_is_checked():
    comparison = fake_comparison({"ce + tuned threshold": [0.8, 0.7], "ce": [0.6, 0.6]}, cv=2)
    with pytest.raises(ValueError, match="selection must be one of"):
        recommend(comparison, selection="bonferroni")


def history(valid_losses, best_epoch=None):
    epochs = [{"epoch": i + 1, "valid_loss": v} for i, v in enumerate(valid_losses)]
    return {"epochs": epochs, "best_epoch": best_epoch or len(epochs)}


def with_histories(comparison, fits, plan=None):
    comparison.final.histories = {"ce": fits}
    comparison.plan = plan
    comparison.recommendation = recommend(comparison)
    return comparison


def supported_comparison():
    return fake_comparison(many_rows(lead=0.15, n_noise=0), n_images=160, cv=8)


def test_most_fits_still_learning_claim_no_winner():
    falling = history([0.9, 0.7, 0.5])
    settled = history([0.9, 0.5, 0.6], best_epoch=2)
    comparison = with_histories(supported_comparison(), [falling, falling, settled])
    rec = comparison.recommendation
    assert rec.verdict == "undertrained"
    assert rec.row.name == "ce + tuned threshold"  # the first simple row, not the best one
    assert rec.undertraining.n_learning == 2 and rec.undertraining.n_fits == 3
    text = " ".join(recommendation(comparison))
    assert "The models are under-trained: 2 of 3 fits kept their last epoch (3)" in text
    assert "no winner is claimed" in text and "--max-epochs 6" in text
    assert "Recommended for now: **ce + tuned threshold**" in text


def test_a_minority_still_learning_is_not_under_training():
    falling, settled = history([0.9, 0.7, 0.5]), history([0.9, 0.5, 0.6], best_epoch=2)
    # the last epoch kept while the loss rose is not "still learning" either
    rising = history([0.5, 0.6, 0.7])
    comparison = with_histories(supported_comparison(), [falling, settled, rising])
    assert comparison.recommendation.verdict == "supported"


def test_a_budget_cut_to_one_epoch_is_under_training():
    plan = Plan(configurations=(), max_epochs=1, dropped=("epochs 10 -> 1",))
    assert budget_cut_epochs(plan) == 10
    comparison = with_histories(supported_comparison(), [history([0.7])] * 3, plan)
    rec = comparison.recommendation
    assert rec.verdict == "undertrained" and rec.undertraining.requested_epochs == 10
    message = rec.undertraining.message()
    assert "the budget cut the epochs from 10 to 1" in message and "--budget" in message
    # one epoch because the user asked for one: no evidence either way
    assert check_undertraining(with_histories(supported_comparison(), [history([0.7])] * 3)) is None


def test_frozen_lr_does_not_change_the_answer(binary_data):
    """compare --freeze-backbone: the heads converge whatever lr, so lr=1e-4 and lr=1e-2
    give the same rows, scores and recommendation."""
    X, y = binary_data
    params = {k: v for k, v in TINY.items() if k != "random_state"}
    results = [
        compare(
            X,
            y,
            methods=["ce", "focal g=2, alpha=balanced", "ce + over-sampling"],
            cv=3,
            estimator_params={**params, "freeze_backbone": True, "lr": lr},
            refit=False,
            progress=False,
        )
        for lr in (1e-4, 1e-2)
    ]
    first, second = results
    assert [r.name for r in first.rows] == [r.name for r in second.rows]
    for a, b in zip(first.rows, second.rows, strict=True):
        np.testing.assert_allclose(a.fold_scores["f1"], b.fold_scores["f1"], atol=1e-6)
    assert first.recommended.name == second.recommended.name
    assert first.recommendation.verdict != "undertrained"
