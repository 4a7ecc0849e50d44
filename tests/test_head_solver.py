"""Frozen heads trained to convergence (head_solver="lbfgs"), whatever the fine-tuning lr."""

import numpy as np
import pytest
import torch
from conftest import tiny_classifier
from sklearn.linear_model import LogisticRegression

import imbal_estimators.training.head_solver as head_solver
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
    features = clf.get_dataset(X).features.numpy().astype(np.float64)  # the frozen body's
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
