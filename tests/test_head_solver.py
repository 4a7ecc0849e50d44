"""Frozen heads trained to convergence (head_solver="lbfgs"), whatever the fine-tuning lr."""

import numpy as np
import pytest
import torch
from conftest import tiny_classifier
from sklearn.linear_model import LogisticRegression
from skorch.dataset import ValidSplit

import imbal_estimators.training.head_solver as head_solver
from imbal_estimators.estimator.datasets import dataset_of, logit_batches
from imbal_estimators.training.head_folds import (
    CV_LOGITS_KEY,
    cross_validation_folds,
    stratified_folds,
)
from imbal_estimators.training.heads import can_fit_together


@pytest.fixture(autouse=True)
def _fresh_caches(fresh_caches):
    """Every test here starts and ends with empty caches (conftest.fresh_caches)."""


def frozen(**params):
    return tiny_classifier(freeze_backbone=True, **params)


def test_the_head_does_not_depend_on_lr_max_epochs_or_optimizer(three_class_data):
    X, y = three_class_data
    reference = frozen(lr=1e-4).fit(X, y)
    for params in (
        {"lr": 1e-2},
        {"lr": 0.5, "max_epochs": 1},
        {"optimizer": torch.optim.SGD, "lr": 1e-6},
    ):
        other = frozen(**params).fit(X, y)
        np.testing.assert_allclose(other.predict_proba(X), reference.predict_proba(X), atol=1e-6)
        assert other.best_epoch_ == reference.best_epoch_
    # with epochs of lr (head_solver=None) a tiny lr leaves the head near its initialization
    slow = frozen(head_solver=None, lr=1e-6).fit(X, y).predict_proba(X)
    assert np.abs(slow - reference.predict_proba(X)).max() > 0.05


def test_every_point_of_the_path_converges_and_is_an_epoch(three_class_data):
    X, y = three_class_data
    clf = frozen(alpha="balanced").fit(X, y)
    assert len(clf.history) == len(head_solver.HEAD_PENALTIES)
    assert clf.history[:, "head_penalty"] == list(head_solver.HEAD_PENALTIES)
    assert all(clf.history[:, "head_converged"])
    assert 1 <= clf.best_epoch_ <= len(head_solver.HEAD_PENALTIES)
    # the validation split chose the point: the kept one has the best monitored score
    scores = clf.history[:, "valid_balanced_accuracy"]
    assert scores[clf.best_epoch_ - 1] == max(scores)


def test_the_solution_is_penalized_logistic_regression(three_class_data, monkeypatch):
    """Plain cross-entropy with an L2 penalty lam is multinomial logistic regression with
    C = 1 / (lam * n): the converged head and scikit-learn's solver give one model."""
    X, y = three_class_data
    monkeypatch.setattr(head_solver, "HEAD_PENALTIES", (1e-2,))
    clf = frozen(train_split=None).fit(X, y)
    features = dataset_of(clf, X).features.numpy().astype(np.float64)  # the frozen body's
    lam = 1e-2 * float(np.mean(features**2))
    reference = LogisticRegression(C=1.0 / (lam * len(X)), tol=1e-10, max_iter=10_000)
    reference.fit(features, np.searchsorted(clf.classes_, y))
    np.testing.assert_allclose(clf.predict_proba(X), reference.predict_proba(features), atol=2e-4)


def test_non_convergence_is_recorded(three_class_data, monkeypatch):
    X, y = three_class_data
    monkeypatch.setattr(head_solver, "MAX_ITERATIONS", 1)
    monkeypatch.setattr(head_solver, "MAX_ROUNDS", 1)
    clf = frozen().fit(X, y)
    assert not all(clf.history[:, "head_converged"])


def test_partial_fit_and_group_training_fall_back_to_epochs(three_class_data):
    X, y = three_class_data
    clf = frozen(max_epochs=2).fit(X, y)
    assert not can_fit_together(clf)  # each head is solved on its own
    n_points = len(clf.history)
    clf.partial_fit(X, y)  # training goes on by epochs of lr
    assert len(clf.history) == n_points + 2
    assert "head_penalty" not in clf.history[-1]


def test_bad_head_solver_is_refused_before_training(three_class_data):
    X, y = three_class_data
    with pytest.raises(ValueError, match="The 'head_solver' parameter of ImageImbalanceClassifier"):
        frozen(head_solver="adam").fit(X, y)


# -- the penalty and the threshold picked by k-fold CV over every training row -----------


def test_stratified_folds_hold_out_every_row_once_and_spread_a_tiny_class():
    targets = np.array([0] * 20 + [1] * 3)
    folds = stratified_folds(targets, 5, seed=0)
    assert len(folds) == 5
    held = np.concatenate([h for _, h in folds])
    assert sorted(held) == list(range(len(targets)))
    for fit_rows, held_rows in folds:
        assert not set(fit_rows) & set(held_rows)
        assert len(fit_rows) + len(held_rows) == len(targets)
        assert np.sum(targets[held_rows] == 0) == 4  # 20 common rows dealt round 5 folds
    # the 3 rare rows land in 3 different folds
    assert sorted(np.sum(targets[h] == 1) for _, h in folds) == [0, 0, 1, 1, 1]


@pytest.mark.parametrize(
    ("params", "k"),
    [
        ({}, 5),  # train_split=0.2: round(1 / 0.2) folds
        ({"train_split": 3}, 3),
        ({"train_split": None}, None),  # no validation: the last penalty, as before
        ({"head_solver": None}, None),  # epochs of lr keep the holdout
        ({"warm_start": True}, None),
    ],
)
def test_which_fits_cross_validate_the_penalty(params, k):
    assert cross_validation_folds(frozen(**params)) == k
    assert cross_validation_folds(tiny_classifier(freeze_backbone=False)) is None


def test_cv_trains_on_every_row_and_keeps_the_best_cross_validated_penalty(binary_data):
    X, y = binary_data
    clf = frozen(monitor="valid_loss").fit(X, y)
    assert list(clf.train_indices_) == list(range(len(X)))
    assert len(clf.valid_indices_) == 0
    losses = clf.history[:, "valid_loss"]
    assert len(losses) == len(head_solver.HEAD_PENALTIES)
    assert clf.best_epoch_ == int(np.argmin(losses)) + 1
    assert CV_LOGITS_KEY not in clf.__dict__  # nothing of the folds stays on the model


def test_the_kept_head_is_the_one_of_every_row_at_that_penalty(binary_data, monkeypatch):
    """With one penalty, the CV fit predicts as the fit without any holdout does: the
    folds choose, they do not train the head that predicts."""
    X, y = binary_data
    monkeypatch.setattr(head_solver, "HEAD_PENALTIES", (1e-2,))
    cv = frozen().fit(X, y)
    whole = frozen(train_split=None).fit(X, y)
    np.testing.assert_allclose(cv.predict_proba(X), whole.predict_proba(X), atol=1e-6)
    holdout = frozen(train_split=ValidSplit(5, stratified=True)).fit(X, y)
    assert len(holdout.valid_indices_) > 0  # a callable split keeps the user's holdout
    assert np.abs(holdout.predict_proba(X) - whole.predict_proba(X)).max() > 1e-4


def test_threshold_auto_is_tuned_on_the_out_of_fold_logits(binary_data, monkeypatch):
    import imbal_estimators.estimator.fitting as fitting  # the fit's decision step

    seen = []
    real = fitting.fit_decision

    def spy(logits, y_valid, **kwargs):
        seen.append((np.asarray(logits), np.asarray(y_valid)))
        return real(logits, y_valid, **kwargs)

    monkeypatch.setattr(fitting, "fit_decision", spy)
    X, y = binary_data
    clf = frozen(threshold="auto").fit(X, y)
    ((logits, y_valid),) = seen
    # every training row once, with the logits of the folds that did not train on it
    assert len(y_valid) == len(X)
    assert np.bincount(y_valid).tolist() == np.bincount(np.searchsorted(clf.classes_, y)).tolist()
    own = torch.cat(list(logit_batches(clf, dataset_of(clf, X)))).numpy()
    assert not np.allclose(np.sort(logits[:, 0]), np.sort(own[:, 0]), atol=1e-4)
    assert 0.0 <= clf.threshold_ <= 1.0


@pytest.mark.parametrize("sampler", ["over", "smote"])
def test_the_folds_draw_with_the_estimators_sampler(binary_data, sampler, monkeypatch):
    monkeypatch.setattr(head_solver, "HEAD_PENALTIES", (1e-1, 1e-3))
    X, y = binary_data
    clf = frozen(sampler=sampler, threshold="auto").fit(X, y)
    assert len(clf.history[:, "valid_loss"]) == len(head_solver.HEAD_PENALTIES)
    assert all(np.isfinite(clf.history[:, "valid_loss"]))
    assert clf.predict(X).shape == (len(X),)


# -- the cost of the path: one draw per head and fold, warm starts ------------------------


@pytest.mark.parametrize("sampler", ["over", "smote"])
def test_a_sampler_draws_once_per_head_and_fold_per_fit(binary_data, sampler, monkeypatch):
    import imbal_estimators.training.callbacks as callbacks
    import imbal_estimators.training.head_folds as head_folds

    draws = []
    for module in (callbacks, head_folds):
        for name in ("resample_features", "resample_indices"):
            real = getattr(module, name)

            def spy(*args, _real=real, **kwargs):
                draws.append(args[-1])  # the seed
                return _real(*args, **kwargs)

            monkeypatch.setattr(module, name, spy)
    X, y = binary_data
    counts = []
    for penalties in ((1e-1, 1e-2), (1e-1, 1e-2, 1e-3, 1e-4)):
        monkeypatch.setattr(head_solver, "HEAD_PENALTIES", penalties)
        draws.clear()
        clf = frozen(sampler=sampler).fit(X, y)
        counts.append(len(draws))
        # the head on every row keeps its first draw: the same class counts at every point
        per_point = clf.history[:, "train_class_counts"]
        assert len(per_point) == len(penalties)
        assert all(c == per_point[0] for c in per_point)
    # the head on every row once and each of the 5 folds once, however many penalties
    assert counts[0] == counts[1] == 6
    assert len(set(draws)) == 6  # each fold draws with its own seed


def test_each_point_starts_from_the_better_of_the_last_solution_and_its_extrapolation():
    from imbal_estimators.training.head_folds import PathStart

    head = torch.nn.Linear(2, 2).requires_grad_(False)
    head.weight.zero_()
    head.bias.zero_()
    start = PathStart(head)
    for value in (1.0, 2.0):
        start.load(head, objective=lambda: 0.0)
        assert float(head.weight[0, 0]) == value - 1.0  # the first: the initial weights
        head.weight.fill_(value)
        start.solved(head)
    # where the objective is lower one step further along the line: 2 + (2 - 1)
    start.load(head, objective=lambda: float((head.weight - 3.0).abs().sum()))
    assert torch.all(head.weight == 3.0)
    # where it is not (or not finite), the last solution
    start.load(head, objective=lambda: float((head.weight - 2.0).abs().sum()))
    assert torch.all(head.weight == 2.0)
    start.load(head, objective=lambda: float("nan"))
    assert torch.all(head.weight == 2.0)


def test_a_folds_point_may_start_from_the_head_on_every_row():
    from imbal_estimators.training.head_folds import PathStart

    head = torch.nn.Linear(2, 2).requires_grad_(False)
    head.weight.zero_()
    head.bias.zero_()
    start = PathStart(head)
    every_row = {"weight": torch.full((2, 2), 5.0), "bias": torch.zeros(2)}
    # the first point: the initial weights or the solution on every row, the lower
    start.load(head, objective=lambda: float((head.weight - 5.0).abs().sum()), other=every_row)
    assert torch.all(head.weight == 5.0)
    start.load(head, objective=lambda: float(head.weight.abs().sum()), other=every_row)
    assert torch.all(head.weight == 0.0)
    for value in (1.0, 2.0):
        head.weight.fill_(value)
        start.solved(head)
    # the last solution, its extrapolation (3) or the other, whichever is lowest
    start.load(head, objective=lambda: float((head.weight - 4.6).abs().sum()), other=every_row)
    assert torch.all(head.weight == 5.0)
    start.load(head, objective=lambda: float((head.weight - 3.2).abs().sum()), other=every_row)
    assert torch.all(head.weight == 3.0)
    start.load(head, objective=lambda: float("nan"), other=every_row)  # none finite
    assert torch.all(head.weight == 2.0)


def test_the_folds_start_from_the_head_on_every_row_and_solve_the_same_path(
    binary_data, monkeypatch
):
    """The folds' starts change where L-BFGS begins, not where it ends: the same
    cross-validated scores, kept penalty and threshold as the folds' own paths alone give,
    in fewer objective evaluations."""
    from imbal_estimators.training.head_folds import PathStart

    X, y = binary_data
    evaluations = {}
    minimize, load = head_solver.scipy.optimize.minimize, PathStart.load
    fitted = {}
    for other_start in (False, True):
        evaluations[other_start] = 0

        def counted(*args, _key=other_start, **kwargs):
            result = minimize(*args, **kwargs)
            evaluations[_key] += result.nfev
            return result

        def folds_own_path(self, head, objective, other=None, _keep=other_start):
            return load(self, head, objective, other=other if _keep else None)

        monkeypatch.setattr(head_solver.scipy.optimize, "minimize", counted)
        monkeypatch.setattr(PathStart, "load", folds_own_path)
        fitted[other_start] = frozen(threshold="auto").fit(X, y)
    alone, with_other = fitted[False], fitted[True]
    assert alone.best_epoch_ == with_other.best_epoch_
    np.testing.assert_allclose(
        alone.history[:, "valid_loss"], with_other.history[:, "valid_loss"], atol=2e-3
    )
    assert abs(alone.threshold_ - with_other.threshold_) < 0.02
    assert evaluations[True] < evaluations[False]
