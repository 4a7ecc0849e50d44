"""Out-of-memory errors in fit, injected on the CPU: auto_batch_size and the error message."""

import numpy as np
import pytest
import torch
from conftest import TinyCNN
from conftest import tiny_classifier as make
from sklearn.exceptions import FitFailedWarning
from sklearn.model_selection import GridSearchCV, StratifiedKFold


class OutOfMemoryAbove(TinyCNN):
    """TinyCNN that runs "out of memory" on training batches larger than ``limit``."""

    limit = 8
    from_epoch = 1  # epochs before this one never fail
    seen = []

    def forward(self, x):
        if self.training:
            type(self).seen.append(x.shape[0])
            if x.shape[0] > self.limit and self.epoch() >= self.from_epoch:
                raise torch.cuda.OutOfMemoryError(
                    f"CUDA out of memory. Tried to allocate 2.00 GiB (batch of {x.shape[0]})"
                )
        return super().forward(x)

    epoch = staticmethod(lambda: 1)


@pytest.fixture(autouse=True)
def reset_fake():
    OutOfMemoryAbove.limit, OutOfMemoryAbove.from_epoch = 8, 1
    OutOfMemoryAbove.epoch = staticmethod(lambda: 1)
    OutOfMemoryAbove.seen = []


def test_auto_batch_size_halves_until_it_fits(binary_data):
    X, y = binary_data
    clf = make(module=OutOfMemoryAbove, batch_size=32, auto_batch_size=True, max_epochs=2)
    with pytest.warns(UserWarning, match=r"batch_size=32 ran out .*trained with batch_size=8"):
        clf.fit(X, y)
    assert clf.batch_size_ == 8 and clf.batch_size == 32  # the parameter is not changed
    assert len(clf.history) == 2
    assert max(OutOfMemoryAbove.seen[-10:]) == 8
    assert [32, 16, 8] == sorted(set(OutOfMemoryAbove.seen), reverse=True)[:3]


def test_auto_batch_size_gives_the_same_model_as_that_batch_size(binary_data):
    """The retry rebuilds the network from the fit's seed: as if batch_size=8 was asked."""
    X, y = binary_data
    with pytest.warns(UserWarning, match="batch_size=8"):
        auto = make(module=OutOfMemoryAbove, batch_size=32, auto_batch_size=True).fit(X, y)
    direct = make(module=OutOfMemoryAbove, batch_size=8).fit(X, y)
    np.testing.assert_array_equal(auto.predict_proba(X), direct.predict_proba(X))


def test_without_auto_batch_size_the_error_says_what_to_try(binary_data):
    X, y = binary_data
    clf = make(module=OutOfMemoryAbove, batch_size=32)
    with pytest.raises(torch.cuda.OutOfMemoryError) as info:
        clf.fit(X, y)
    message = str(info.value)
    assert "while training with batch_size=32" in message
    for hint in ("batch_size=16", "auto_batch_size=True", "smaller image_size"):
        assert hint in message
    assert "Tried to allocate 2.00 GiB" in str(info.value.__cause__)


def test_out_of_memory_after_the_first_epoch_is_not_retried(binary_data, monkeypatch):
    X, y = binary_data
    clf = make(module=OutOfMemoryAbove, batch_size=32, auto_batch_size=True, max_epochs=3)
    OutOfMemoryAbove.from_epoch = 2
    OutOfMemoryAbove.epoch = staticmethod(lambda: len(clf.history))
    with pytest.raises(
        torch.cuda.OutOfMemoryError, match="only adapts the batch size during the first"
    ):
        clf.fit(X, y)
    assert len(clf.history) == 2


def test_even_one_image_does_not_fit(binary_data):
    X, y = binary_data
    OutOfMemoryAbove.limit = 0
    clf = make(module=OutOfMemoryAbove, batch_size=4, auto_batch_size=True)
    with pytest.raises(torch.cuda.OutOfMemoryError, match="batch_size=1 .*Even one image"):
        clf.fit(X, y)


def test_grid_search_error_score_raise_propagates_out_of_memory(binary_data):
    X, y = binary_data
    search = GridSearchCV(
        make(module=OutOfMemoryAbove, batch_size=32),
        {"lr": [0.05]},
        cv=StratifiedKFold(2),
        error_score="raise",
    )
    with pytest.raises(torch.cuda.OutOfMemoryError, match="batch_size=32"):
        search.fit(X, y)


@pytest.mark.filterwarnings("ignore:One or more of the test scores are non-finite")
def test_grid_search_default_error_score_reports_out_of_memory(binary_data):
    """scikit-learn's default error_score=nan turns a failed fit into a NaN score, with a
    FitFailedWarning that carries the message (the guide says to pass error_score="raise")."""
    X, y = binary_data
    grid = {"batch_size": [32, 8]}
    search = GridSearchCV(make(module=OutOfMemoryAbove), grid, cv=StratifiedKFold(2))
    with pytest.warns(FitFailedWarning, match="ran out of accelerator memory.*batch_size=32"):
        search.fit(X, y)
    scores = search.cv_results_["mean_test_score"]
    assert np.isnan(scores[0]) and np.isfinite(scores[1])
    assert search.best_params_ == {"batch_size": 8}
