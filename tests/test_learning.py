"""Training that learned nothing says so: blow-ups, vanishing or flat losses, one-class models,
and the loss hyperparameters where the math stops learning."""

import warnings

import pytest
import torch
from conftest import FAST, make_folder, tiny_classifier
from torch import nn

from imbal_estimators import ImageImbalanceClassifier, load_image_folder
from imbal_estimators.app.cli import main
from imbal_estimators.training.divergence import TrainingDivergedError
from imbal_estimators.training.learning import MIN_VALID_PER_CLASS
from imbal_estimators.utils.warn import ImbalEstimatorsWarning

SMALL_CNN = dict(FAST, backbone="small_cnn", image_size=8, max_epochs=2)


def test_a_finite_blow_up_names_lr(binary_data):
    """AdamW with lr=10: a validation loss of about 5e5 in epoch 1, all finite."""
    X, y = binary_data
    clf = ImageImbalanceClassifier(**{**SMALL_CNN, "lr": 10.0})
    with pytest.raises(
        TrainingDivergedError,
        match=r"loss is .*, over 1000 times the loss at the start .* at epoch 1, .*lr=10, "
        "optimizer AdamW",
    ):
        clf.fit(X, y)


def test_a_blow_up_with_restore_keeps_the_epoch_before(binary_data):
    X, y = binary_data

    class BlowUpInEpoch2(nn.Module):
        """Cross-entropy, plus 1e6 from the second epoch on."""

        def __init__(self):
            super().__init__()
            self.calls = 0

        def forward(self, logits, target):
            self.calls += 1
            jump = 1e6 if self.calls > 5 else 0.0  # 4 training + 1 validation batch/epoch
            return nn.functional.cross_entropy(logits, target) + jump

    clf = tiny_classifier(
        loss=BlowUpInEpoch2(), max_epochs=3, callbacks__divergence__action="restore"
    )
    with pytest.warns(UserWarning, match=r"over 1000 times .* at epoch 2, .*kept epoch 1"):
        clf.fit(X, y)
    assert clf.best_epoch_ == 1 and len(clf.history) == 1


def test_focal_gamma_50_warns_naming_gamma_before_training(binary_data):
    X, y = binary_data
    clf = tiny_classifier(loss="focal", gamma=50.0, max_epochs=1)
    with pytest.warns(ImbalEstimatorsWarning, match=r"is 6.16e-16, .*gamma=50 .*lower gamma"):
        clf.fit(X, y)
    # a usual gamma says nothing (the suite turns the package's warnings into errors)
    tiny_classifier(loss="focal", gamma=5.0, max_epochs=1).fit(X, y)


@pytest.mark.parametrize(
    "param, value, fragment",
    [
        ("label_smoothing", 1.0, r"range \[0.0, 1.0\)"),
        ("tau", 1e6, r"range \[-10.0, 10.0\]"),
        ("ldam_s", 1e6, r"range \(0.0, 100.0\]"),
        ("criterion__tau", 1e6, r"range \[-10.0, 10.0\]"),
        ("criterion__s", 1e6, r"range \(0.0, 100.0\]"),
    ],
)
def test_loss_hyperparameters_have_upper_bounds(param, value, fragment, binary_data):
    X, y = binary_data
    clf = tiny_classifier(**{param: value})
    with pytest.raises(ValueError, match=rf"'{param}' parameter .* {fragment}"):
        clf.fit(X, y)
    assert not hasattr(clf, "classes_")  # refused before anything was fitted


@pytest.mark.parametrize(
    "option, value", [("--label-smoothing", "1"), ("--tau", "1e6"), ("--ldam-s", "1e6")]
)
def test_cli_refuses_the_same_values(option, value, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", str(tmp_path), "--out", str(tmp_path / "m"), option, value])
    assert exit_info.value.code == 2
    assert option in capsys.readouterr().err


class ZeroLoss(nn.Module):
    def forward(self, logits, target):
        return (logits * 0).sum()


class ConstantLoss(nn.Module):
    def forward(self, logits, target):
        return (logits * 0).sum() + 0.5


@pytest.mark.parametrize(
    "loss, fragment",
    [(ZeroLoss, "exactly 0 in every epoch"), (ConstantLoss, "is 0.5 in every epoch")],
)
def test_a_zero_or_constant_training_loss_warns(loss, fragment, binary_data):
    X, y = binary_data
    with pytest.warns(ImbalEstimatorsWarning, match=rf"{fragment} .*learned nothing.*lr=0.05"):
        tiny_classifier(loss=loss, max_epochs=2).fit(X, y)


class AlwaysFirst(nn.Module):
    """Logits that favour class 0 for every image; lr=1e-6 barely moves them."""

    def __init__(self, num_classes=2):
        super().__init__()
        self.bias = nn.Parameter(torch.tensor([5.0, 0.0]))
        self.scale = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return self.bias.expand(len(x), 2) + self.scale * x.float().mean(dim=(1, 2, 3))[:, None]


@pytest.fixture(scope="module")
def balanced_folder(tmp_path_factory):
    root = make_folder(tmp_path_factory.mktemp("balanced"), {"a": 40, "b": 40}, size=8)
    return load_image_folder(root)


def test_a_one_class_model_warns_when_validation_has_enough_of_each(balanced_folder):
    X, y = balanced_folder
    clf = tiny_classifier(module=AlwaysFirst, lr=1e-6, max_epochs=1, train_split=0.5)
    with pytest.warns(
        ImbalEstimatorsWarning,
        match=rf"epoch 1\) predicts class 'a' for all 40 validation images "
        rf"\({MIN_VALID_PER_CLASS} or more",
    ):
        clf.fit(X, y)


def test_no_one_class_warning_on_a_small_validation_split(balanced_folder):
    X, y = balanced_folder
    clf = tiny_classifier(module=AlwaysFirst, lr=1e-6, max_epochs=1, train_split=0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ImbalEstimatorsWarning)
        clf.fit(X, y)  # 8 validation images of each class: too few to tell
    assert set(clf.predict(X)) == {"a"}


def test_no_one_class_warning_when_a_threshold_decides(balanced_folder):
    # cross-entropy on rare positives often has one argmax class; the tuned threshold
    # is what the model decides by, so one argmax class is no failure (the demo's refit)
    X, y = balanced_folder
    clf = tiny_classifier(module=AlwaysFirst, lr=1e-6, max_epochs=1, train_split=0.5, threshold=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ImbalEstimatorsWarning)
        clf.fit(X, y)
