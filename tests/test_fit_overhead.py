"""What a fit skips to stay cheap (checks of shared parameters, seeding, epoch scores)
changes nothing."""

import os

import numpy as np
import pytest
import torch
from conftest import images_read, tiny_classifier
from skorch.callbacks import PassthroughScoring
from skorch.history import History

from imbal_estimators import ImageImbalanceClassifier, ImbalanceSearchCV, SeedEnsembleClassifier
from imbal_estimators.data.images import ImageFileError
from imbal_estimators.estimator import validation
from imbal_estimators.losses.registry import LOSSES
from imbal_estimators.training.callbacks import EpochLossScoring
from imbal_estimators.training.seeding import seed_torch, seeded

MISSING = [f"/nonexistent/img_{i}.png" for i in range(4)]
MISSING_Y = ["a", "b"] * 2


@pytest.fixture
def checks(monkeypatch):
    """The estimators ``check_params`` was called with."""
    calls = []
    check = validation.check_params
    monkeypatch.setattr(validation, "check_params", lambda e: calls.append(e) or check(e))
    return calls


def test_every_fit_checks_its_parameters(binary_data, checks):
    X, y = binary_data
    clf = tiny_classifier(max_epochs=1)
    clf.fit(X, y)
    clf.fit(X, y)
    assert checks == [clf, clf]  # no memo across fits: nothing can go stale
    clf.set_params(gamma=True)  # equal to 1, but not a valid gamma
    with pytest.raises(ValueError, match="gamma"), images_read() as reads:
        clf.fit(X, y)
    assert reads == []


def test_a_removed_weights_file_or_registry_entry_is_noticed(tmp_path):
    weights = tmp_path / "w.pth"
    torch.save({}, weights)
    clf = ImageImbalanceClassifier(weights=str(weights), backbone="resnet18")
    validation.check_params(clf)
    os.remove(weights)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        clf.fit(MISSING, MISSING_Y)
    LOSSES["test_overhead_loss"] = LOSSES["ce"]
    try:
        clf = ImageImbalanceClassifier(loss="test_overhead_loss", weights=None)
        validation.check_params(clf)
    finally:
        del LOSSES["test_overhead_loss"]
    with pytest.raises(ValueError, match="loss"):
        clf.fit(MISSING, MISSING_Y)


def test_skip_validation_holds_inside_its_block_only(checks):
    bad = ImageImbalanceClassifier(gamma=-1.0, weights=None)
    with validation.skip_validation():
        with validation.skip_validation():
            pass
        # skipped: the fit goes on to the data, whose first path is refused
        with pytest.raises(ImageFileError, match="img_0"):
            bad.fit(MISSING, MISSING_Y)
    assert checks == []
    with pytest.raises(ValueError, match="gamma"):
        bad.fit(MISSING, MISSING_Y)
    assert checks == [bad]


def test_an_ensemble_checks_its_configuration_once(binary_data, checks):
    X, y = binary_data
    SeedEnsembleClassifier(tiny_classifier(max_epochs=1), n_members=3).fit(X, y)
    assert len(checks) == 1
    bad = SeedEnsembleClassifier(tiny_classifier(gamma=-1.0), n_members=2)
    with pytest.raises(ValueError, match="gamma"):
        bad.fit(X, y)


def test_a_search_checks_a_candidate_once_for_its_folds(binary_data, checks):
    X, y = binary_data
    ImbalanceSearchCV(
        tiny_classifier(max_epochs=1, batch_size=64),
        {"alpha": [None, "balanced"]},
        n_trials=2,
        cv=3,
        random_state=0,
    ).fit(X, y)
    # two candidates of three folds each, then the refit of the best
    assert len(checks) == 3


def test_seed_torch_draws_what_manual_seed_draws():
    torch.manual_seed(123)
    expected = torch.rand(5), torch.randperm(10)
    seed_torch(123, "cpu")
    got = torch.rand(5), torch.randperm(10)
    assert all(torch.equal(a, b) for a, b in zip(expected, got, strict=True))
    state = torch.get_rng_state()
    with seeded(7):
        inside = torch.rand(3)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(7)
    assert torch.equal(inside, torch.rand(3))


@pytest.mark.parametrize("on_train", [True, False])
def test_epoch_loss_scoring_equals_passthrough_scoring(on_train):
    rng = np.random.default_rng(0)
    prefix = "train" if on_train else "valid"
    ours, skorchs = (
        EpochLossScoring(f"{prefix}_loss", on_train=on_train),
        PassthroughScoring(f"{prefix}_loss", on_train=on_train),
    )
    for callback in (ours, skorchs):
        callback.initialize()
    histories = [History(), History()]
    for epoch in range(6):
        n_batches = int(rng.integers(0, 4))
        values = [(float(rng.random()), int(rng.integers(1, 9))) for _ in range(n_batches)]
        for history, callback in zip(histories, (ours, skorchs), strict=True):
            history.new_epoch()
            for loss, size in values:
                history.new_batch()
                history.record_batch(f"{prefix}_loss", loss)
                history.record_batch(f"{prefix}_batch_size", size)
            if epoch == 3:  # a batch without its score: skorch's own code
                history.new_batch()
                history.record_batch("other", 1.0)

            class Net:
                pass

            net = Net()
            net.history = history
            callback.on_epoch_end(net)
    assert histories[0].to_list() == histories[1].to_list()
