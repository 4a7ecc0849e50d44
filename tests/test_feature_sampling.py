"""Samplers that need features (SMOTE and kin) run on frozen-backbone features."""

import numpy as np
import pytest
from conftest import tiny_classifier
from imblearn.combine import SMOTETomek
from imblearn.over_sampling import ADASYN, SMOTE, BorderlineSMOTE
from imblearn.under_sampling import TomekLinks

from imbal_estimators.imbalance.samplers import needs_features
from imbal_estimators.training.head_solver import HEAD_PENALTIES


@pytest.mark.parametrize(
    "sampler", [SMOTE(k_neighbors=3), BorderlineSMOTE(k_neighbors=3), SMOTETomek(), TomekLinks()]
)
def test_feature_samplers_fit_on_frozen_features(binary_data, sampler):
    X, y = binary_data
    clf = tiny_classifier(freeze_backbone=True, sampler=sampler, max_epochs=2).fit(X, y)
    counts = clf.history[:, "train_class_counts"]
    assert len(counts) == len(HEAD_PENALTIES)  # one draw per point of the head's path
    assert clf.predict_proba(X).shape == (len(X), 2)
    assert type(clf.sampler_) is type(sampler)


def test_smote_balances_and_synthesizes_rows(binary_data):
    X, y = binary_data
    clf = tiny_classifier(freeze_backbone=True, sampler=SMOTE(k_neighbors=3), alpha="balanced")
    clf.fit(X, y)
    n_train = np.bincount(np.searchsorted(clf.classes_, np.asarray(y)[clf.train_indices_]))
    for counts in clf.history[:, "train_class_counts"]:
        assert counts == [n_train.max(), n_train.max()]  # minority synthesized up to the majority
    # the loss saw a balanced draw, so "balanced" weights are uniform (no double correction)
    np.testing.assert_allclose(clf.class_weight_, [1.0, 1.0])
    np.testing.assert_array_equal(clf.loss_class_counts_, [n_train.max()] * 2)


def test_smote_draws_are_seeded(binary_data):
    X, y = binary_data

    def proba(seed):
        clf = tiny_classifier(freeze_backbone=True, sampler=SMOTE(k_neighbors=3), random_state=seed)
        return clf.fit(X, y).predict_proba(X)

    np.testing.assert_array_equal(proba(3), proba(3))


@pytest.mark.parametrize("sampler", [SMOTE(), ADASYN(), TomekLinks()])
def test_without_frozen_backbone_the_error_explains_why(binary_data, sampler):
    X, y = binary_data
    with pytest.raises(ValueError, match="set freeze_backbone=True") as error:
        tiny_classifier(sampler=sampler).fit(X, y)
    assert "image paths have no" in str(error.value) or "needs feature vectors" in str(error.value)


def test_needs_features():
    from imblearn.over_sampling import RandomOverSampler
    from imblearn.under_sampling import RandomUnderSampler

    assert needs_features(SMOTE()) and needs_features(ADASYN()) and needs_features(TomekLinks())
    assert needs_features(RandomOverSampler(shrinkage=0.5))
    assert not needs_features(RandomOverSampler()) and not needs_features(RandomUnderSampler())
    assert not needs_features("balanced_batches") and not needs_features(None)
