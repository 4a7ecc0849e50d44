"""What a fit skips to stay cheap (remembered checks, seeding, epoch scores) changes nothing."""

import os

import numpy as np
import pytest
import torch
from skorch.callbacks import PassthroughScoring
from skorch.history import History

import imbal_estimators.estimator.classifier as classifier
from imbal_estimators import ImageImbalanceClassifier
from imbal_estimators.losses.registry import LOSSES
from imbal_estimators.training.callbacks import EpochLossScoring
from imbal_estimators.training.seeding import seed_torch, seeded


def test_a_bad_value_after_good_ones_is_still_refused(binary_data, monkeypatch):
    X, y = binary_data
    calls = []
    check = classifier.check_params
    monkeypatch.setattr(classifier, "check_params", lambda e: calls.append(1) or check(e))
    clf = ImageImbalanceClassifier(loss="focal", gamma=1.0, weights=None, backbone="resnet18")
    classifier._check_params_once(clf)
    classifier._check_params_once(clf)
    assert len(calls) == 1  # the same plain values: checked once
    clf.set_params(gamma=-1.0)
    with pytest.raises(ValueError, match="gamma"):
        classifier._check_params_once(clf)
    clf.set_params(gamma=1)
    classifier._check_params_once(clf)
    clf.set_params(gamma=True)  # equal to 1, and a hash hit, but not a valid gamma
    with pytest.raises(ValueError, match="gamma"):
        classifier._check_params_once(clf)
    assert len(calls) == 4
    # values that can change in place are checked every time
    clf.set_params(gamma=1.0, alpha=[0.2, 0.8])
    classifier._check_params_once(clf)
    classifier._check_params_once(clf)
    assert len(calls) == 6


def test_a_removed_weights_file_or_registry_entry_is_noticed(tmp_path):
    weights = tmp_path / "w.pth"
    torch.save({}, weights)
    clf = ImageImbalanceClassifier(weights=str(weights), backbone="resnet18")
    classifier._check_params_once(clf)
    os.remove(weights)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        classifier._check_params_once(clf)
    LOSSES["test_overhead_loss"] = LOSSES["ce"]
    try:
        clf = ImageImbalanceClassifier(loss="test_overhead_loss", weights=None)
        classifier._check_params_once(clf)
    finally:
        del LOSSES["test_overhead_loss"]
    with pytest.raises(ValueError, match="loss"):
        classifier._check_params_once(clf)


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
