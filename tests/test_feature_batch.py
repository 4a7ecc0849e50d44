"""The frozen body's feature pass on the CPU runs in batches of at least 64 images."""

import numpy as np
import pytest
from conftest import tiny_classifier

import imbal_estimators.training.frozen as frozen
from imbal_estimators.training.frozen import (
    CPU_FEATURE_BATCH,
    feature_batch_size,
    predict_batch_size,
)


@pytest.fixture(autouse=True)
def _fresh_caches(fresh_caches):
    """Every test here computes its features (conftest.fresh_caches)."""


def test_the_feature_batch_is_at_least_64_on_the_cpu_only_by_default():
    assert CPU_FEATURE_BATCH == 64
    assert feature_batch_size(None, 16, "cpu") == 64
    assert feature_batch_size(None, 128, "cpu") == 128
    assert feature_batch_size(None, -1, "cpu") == 256
    # an explicit iterator_valid__batch_size is the user's, and an accelerator keeps the
    # fit's size (its out-of-memory retry halves it)
    assert feature_batch_size(8, 16, "cpu") == 8
    assert feature_batch_size(None, 16, "cuda") == predict_batch_size(None, 16) == 16


def test_a_frozen_fit_passes_the_images_in_batches_of_64_and_the_batch_changes_nothing(
    binary_data, monkeypatch
):
    sizes, passes = [], []
    real = frozen.compute_features

    def spy(*args, batch_size, **kwargs):
        sizes.append(batch_size)
        passes.append(real(*args, batch_size=batch_size, **kwargs))
        return passes[-1]

    monkeypatch.setattr(frozen, "compute_features", spy)
    X, y = binary_data
    params = dict(freeze_backbone=True, batch_size=16, cache=None, max_epochs=1)
    wide = tiny_classifier(**params).fit(X, y)
    wide_features = passes[0]  # the fit's pass over every training image
    assert set(sizes) == {64}
    sizes.clear()
    passes.clear()
    narrow = tiny_classifier(**params, iterator_valid__batch_size=5).fit(X, y)
    assert set(sizes) == {5}
    assert len(passes[0]) == len(X) > 5
    np.testing.assert_allclose(passes[0], wide_features, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(narrow.predict_proba(X), wide.predict_proba(X), atol=1e-6)
