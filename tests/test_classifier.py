"""ImageImbalanceClassifier: fitting, labels, alpha, sampler, validation split, errors."""

import os

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import FAST, images_read, make_folder
from conftest import tiny_classifier as make
from imblearn.over_sampling import RandomOverSampler
from imblearn.under_sampling import RandomUnderSampler
from sklearn.base import clone
from skorch.dataset import ValidSplit

from imbal_estimators import (
    FocalLoss,
    ImageImbalanceClassifier,
    compute_alpha,
    load_image_folder,
)
from imbal_estimators.estimator.datasets import dataset_of


def test_string_labels_round_trip(binary_data):
    X, y = binary_data
    clf = make().fit(X, y)
    assert clf.classes_.tolist() == ["cat", "dog"]
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    pred = clf.predict(X)
    assert set(pred) <= {"cat", "dog"}
    np.testing.assert_array_equal(pred, clf.classes_[proba.argmax(axis=1)])
    assert clf.score(X, y) > 0.9  # colour-coded classes are easy


def test_integer_labels_not_starting_at_zero(binary_data):
    X, y = binary_data
    y_int = np.where(y == "cat", 7, 3)
    clf = make().fit(X, y_int)
    assert clf.classes_.tolist() == [3, 7]
    assert set(clf.predict(X)) <= {3, 7}


def test_three_class_greyscale(tmp_path):
    for name, level, n in [("dark", 30, 20), ("mid", 128, 10), ("light", 230, 8)]:
        folder = tmp_path / name
        folder.mkdir()
        rng = np.random.default_rng(level)
        for i in range(n):
            pixels = np.clip(level + rng.normal(0, 10, (18, 18)), 0, 255).astype(np.uint8)
            from PIL import Image

            Image.fromarray(pixels, "L").save(folder / f"{i}.png")
    X, y = load_image_folder(tmp_path)
    clf = make(max_epochs=3).fit(X, y)
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 3)
    assert clf.classes_.tolist() == ["dark", "light", "mid"]
    assert clf.score(X, y) > 0.6


@pytest.mark.parametrize(
    "make_X",
    [
        list,
        tuple,
        np.asarray,
        lambda X: np.asarray(X, dtype=object).reshape(-1, 1),
        pd.Series,
        lambda X: pd.DataFrame({"path": X}),
        lambda X: [os.fspath(p) for p in X],
    ],
    ids=["list", "tuple", "array", "column", "series", "dataframe", "fspath"],
)
def test_accepted_X_containers(binary_data, make_X):
    X, y = binary_data
    clf = make(max_epochs=1).fit(make_X(list(X)), y)
    assert clf.predict(make_X(list(X[:4]))).shape == (4,)


def test_predict_proba_is_softmax_for_focal_loss(binary_data):
    X, y = binary_data
    clf = make(loss="focal", gamma=2.0).fit(X, y)
    proba = clf.predict_proba(X)
    assert np.all((proba >= 0) & (proba <= 1))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    assert isinstance(clf.criterion_, FocalLoss)
    assert clf.criterion_.gamma == 2.0


def test_focal_gamma_zero_trains_like_cross_entropy(binary_data):
    X, y = binary_data
    focal = make(loss="focal", gamma=0.0).fit(X, y)
    ce = make(loss="ce").fit(X, y)
    np.testing.assert_allclose(focal.predict_proba(X), ce.predict_proba(X), rtol=1e-4, atol=1e-6)


def test_loss_as_module_class_and_instance(binary_data):
    X, y = binary_data
    clf = make(loss=torch.nn.CrossEntropyLoss, alpha="balanced")
    clf.fit(X, y)
    assert isinstance(clf.criterion_, torch.nn.CrossEntropyLoss)
    np.testing.assert_allclose(clf.criterion_.weight.numpy(), clf.class_weight_, rtol=1e-6)
    instance = FocalLoss(gamma=1.0)
    clf = make(loss=instance).fit(X, y)
    assert clf.criterion_.gamma == 1.0
    assert clf.criterion_ is not instance  # the user's object is not moved or mutated


def test_criterion_kwargs_reach_the_loss(binary_data):
    X, y = binary_data
    clf = make(loss="ce", criterion__label_smoothing=0.1).fit(X, y)
    assert clf.criterion_.label_smoothing == pytest.approx(0.1)


def test_alpha_comes_from_training_part_only(binary_data):
    X, y = binary_data
    clf = make(alpha="balanced").fit(X, y)
    train_labels = y[clf.train_indices_]
    np.testing.assert_allclose(clf.class_weight_, compute_alpha(train_labels, "balanced"))
    assert len(np.intersect1d(clf.train_indices_, clf.valid_indices_)) == 0
    assert len(clf.train_indices_) + len(clf.valid_indices_) == len(X)
    np.testing.assert_array_equal(clf.class_counts_, np.unique(train_labels, return_counts=True)[1])
    np.testing.assert_allclose(clf.criterion_.weight.numpy(), clf.class_weight_, rtol=1e-6)


@pytest.mark.parametrize(
    "alpha, expected",
    [
        (0.75, [0.25, 0.75]),
        ([2.0, 1.0], [2.0, 1.0]),
        ({"dog": 3.0, "cat": 1.0}, [1.0, 3.0]),
        (None, None),
    ],
)
def test_fixed_alphas(binary_data, alpha, expected):
    X, y = binary_data
    clf = make(alpha=alpha, max_epochs=1).fit(X, y)
    if expected is None:
        assert clf.class_weight_ is None
    else:
        np.testing.assert_allclose(clf.class_weight_, expected)


def test_effective_alpha_uses_beta(binary_data):
    X, y = binary_data
    clf = make(alpha="effective", beta=0.9, max_epochs=1).fit(X, y)
    counts = clf.class_counts_
    raw = (1 - 0.9) / (1 - 0.9**counts)
    np.testing.assert_allclose(clf.class_weight_, raw * 2 / raw.sum())


class RecordingSampler:
    """A minimal sampler (not an imblearn class): records what it is given."""

    def __init__(self):
        self.calls = []

    def fit_resample(self, X, y):
        self.calls.append((np.asarray(X).copy(), np.asarray(y).copy()))
        return X, y


def test_sampler_gets_training_rows_and_labels(binary_data):
    X, y = binary_data
    sampler = RecordingSampler()
    clf = make(sampler=sampler, max_epochs=2).fit(X, y)
    # the estimator works on a copy of the sampler; the last fitted copy is sampler_
    fitted = clf.sampler_
    X_seen, y_seen = fitted.calls[-1]
    assert X_seen.shape == (len(clf.train_indices_), 1)
    np.testing.assert_array_equal(X_seen[:, 0], clf.train_indices_)
    np.testing.assert_array_equal(y_seen, y[clf.train_indices_])  # original labels
    assert not set(X_seen[:, 0]) & set(clf.valid_indices_)


def test_oversampler_balances_each_epoch_and_alpha_sees_it(binary_data):
    X, y = binary_data
    clf = make(sampler=RandomOverSampler(), alpha="balanced", max_epochs=2).fit(X, y)
    counts = clf.history[:, "train_class_counts"]
    assert len(counts) == 2
    majority = clf.class_counts_.max()
    assert all(c == [majority, majority] for c in counts)
    # the loss sees balanced batches, so the count-based alpha is uniform
    np.testing.assert_allclose(clf.class_weight_, [1.0, 1.0])


def test_undersampler_redraws_every_epoch(binary_data):
    X, y = binary_data
    clf = make(sampler=RandomUnderSampler(), max_epochs=3)
    draws = []
    original = ImageImbalanceClassifier.notify

    def spy(self, method_name, **kwargs):
        original(self, method_name, **kwargs)
        if method_name == "on_epoch_begin":
            draws.append(np.sort(kwargs["dataset_train"].indices.copy()))

    clf.notify = spy.__get__(clf)
    clf.fit(X, y)
    minority = clf.class_counts_.min()
    assert all(len(d) == 2 * minority for d in draws)
    assert not all(np.array_equal(draws[0], d) for d in draws[1:])
    assert all(np.isin(d, clf.train_indices_).all() for d in draws)


def test_sampler_draws_are_seeded(binary_data):
    X, y = binary_data

    def draws(random_state):
        clf = make(random_state=random_state, sampler=RandomUnderSampler(), max_epochs=1)
        clf.fit(X, y)
        return clf.sampler_.sample_indices_

    np.testing.assert_array_equal(draws(1), draws(1))
    assert not np.array_equal(draws(1), draws(2))


def test_same_random_state_gives_same_predictions(binary_data):
    X, y = binary_data
    first = make().fit(X, y).predict_proba(X)
    second = make().fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(first, second)


def test_fit_does_not_change_global_torch_rng(binary_data):
    X, y = binary_data
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    make(max_epochs=1).fit(X, y)
    np.testing.assert_array_equal(torch.rand(3), expected)


def test_best_epoch_is_restored(binary_data):
    X, y = binary_data
    clf = make(max_epochs=3, monitor="valid_loss").fit(X, y)
    losses = clf.history[:, "valid_loss"]
    best = int(np.argmin(losses)) + 1
    # later epochs win ties, so compare against the last minimum
    best = len(losses) - int(np.argmin(losses[::-1]))
    assert clf.best_epoch_ == best
    assert clf.history[best - 1, "valid_loss_best"] is True


def test_best_epoch_weights_are_the_ones_kept(binary_data):
    X, y = binary_data
    clf = make(max_epochs=3)
    snapshots = []
    clf.fit(X, y)
    # refit with a spy callback that stores each epoch's weights
    from skorch.callbacks import Callback

    class Snapshot(Callback):
        def on_epoch_end(self, net, **kwargs):
            snapshots.append({k: v.clone() for k, v in net.module_.state_dict().items()})

    clf.set_params(callbacks=[("snapshot", Snapshot())])
    clf.fit(X, y)
    kept = clf.module_.state_dict()
    best = snapshots[clf.best_epoch_ - 1]
    assert all(torch.equal(kept[k], best[k]) for k in kept)
    assert "valid_balanced_accuracy" in clf.history[-1]


def test_monitor_is_recorded(binary_data):
    from sklearn.metrics import f1_score

    X, y = binary_data
    # shuffled labels: an imperfect model, whose F1 differs between the two classes
    y = np.random.default_rng(0).permutation(y)
    clf = make(monitor="f1", alpha="balanced", max_epochs=1).fit(X, y)
    # one epoch: the kept model is the one that was scored; "dog" is the rare class
    valid = clf.valid_indices_
    predicted = clf.predict(X[valid])
    assert f1_score(y[valid], predicted, pos_label="dog") != f1_score(
        y[valid], predicted, pos_label="cat"
    )
    expected = f1_score(y[valid], predicted, pos_label="dog")
    assert clf.history[-1, "valid_f1"] == pytest.approx(expected)


def test_no_validation_split_keeps_last_epoch(binary_data):
    X, y = binary_data
    clf = make(train_split=None, max_epochs=2).fit(X, y)
    assert len(clf.valid_indices_) == 0
    assert len(clf.train_indices_) == len(X)
    assert clf.best_epoch_ == 2


@pytest.mark.parametrize("train_split, n_valid", [(False, 0), (4, 16), (0.25, 16)])
def test_train_split_values(binary_data, train_split, n_valid):
    X, y = binary_data
    clf = make(train_split=train_split, max_epochs=1).fit(X, y)
    assert len(clf.valid_indices_) == n_valid
    if n_valid:  # stratified: 3:1 like the data
        assert (y[clf.valid_indices_] == "dog").sum() == 4


def test_skorch_train_split_callable(binary_data):
    X, y = binary_data
    clf = make(train_split=ValidSplit(4, stratified=True))
    clf.fit(X, y)
    assert len(clf.valid_indices_) == len(X) // 4


def test_validation_split_is_stratified_and_never_fails_on_small_classes(tmp_path):
    root = make_folder(tmp_path, {"big": 20, "small": 2, "single": 1})
    X, y = load_image_folder(root)
    clf = make(max_epochs=1).fit(X, y)
    valid_labels = y[clf.valid_indices_]
    assert set(valid_labels) == {"big", "small"}
    assert set(y[clf.train_indices_]) == {"big", "small", "single"}


def test_warm_start_and_partial_fit_continue_training(binary_data):
    X, y = binary_data
    clf = make(max_epochs=1).fit(X, y)
    clf.partial_fit(X, y)
    assert len(clf.history) == 2
    clf.set_params(warm_start=True)
    clf.fit(X, y)
    assert len(clf.history) == 3
    with pytest.raises(ValueError, match="not among the classes"):
        clf.partial_fit(X, np.where(y == "cat", "cat", "bird"))


def test_device_auto_stays_auto(binary_data):
    X, y = binary_data
    clf = make(device="auto", max_epochs=1).fit(X, y)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert clf.get_params()["device"] == "auto"  # the parameter, for clone
    assert clf.device == expected  # what skorch uses
    assert next(clf.module_.parameters()).device.type == expected
    assert clone(clf).get_params()["device"] == "auto"


def test_torchvision_backbone_with_head_for_classes(three_class_data):
    X, y = three_class_data
    clf = ImageImbalanceClassifier(**{**FAST, "backbone": "resnet18", "image_size": 16})
    clf.fit(X, y)
    assert clf.module_.backbone.fc.out_features == 3
    assert clf.predict_proba(X[:2]).shape == (2, 3)


def test_verbose_prints_table_and_progress(binary_data, capsys):
    X, y = binary_data
    make(verbose=1, max_epochs=1).fit(X, y)
    out, err = capsys.readouterr()
    assert "valid_balanced_accuracy" in out and "train_loss" in out
    assert "it/s" in err or "%" in err  # the tqdm progress bar


# -- errors, raised before any training -------------------------------------------------


def _fast_fail(clf, X, y, error, match):
    """``fit`` raises before it reads any image or builds any network."""
    with images_read() as reads, pytest.raises(error, match=match):
        clf.fit(X, y)
    assert reads == []
    assert not clf.initialized_


def test_initialize_without_fit_explains(binary_data):
    with pytest.raises(AttributeError, match="call fit"):
        make().initialize()


def test_a_thousand_paths_with_string_labels(tmp_path):
    root = make_folder(tmp_path, {"majority": 770, "minority": 230}, size=16)
    X, y = load_image_folder(root)
    assert len(X) == 1000
    clf = make(max_epochs=1, batch_size=64, alpha="balanced").fit(X, y)
    assert clf.classes_.tolist() == ["majority", "minority"]
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[proba.argmax(axis=1)])
    assert clf.score(X, y) > 0.9


def _awkward_images(folder):
    """Ten valid encodings a real folder contains; returns their paths."""
    from PIL import Image

    folder.mkdir()
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 255, (24, 30, 3), dtype=np.uint8), "RGB")
    files = {
        "grey.png": rgb.convert("L"),
        "rgba.png": rgb.convert("RGBA"),
        "palette.png": rgb.convert("P"),
        "cmyk.jpg": rgb.convert("CMYK"),
        "sixteen_bit.png": Image.fromarray(
            rng.integers(0, 65535, (20, 20), dtype=np.uint16).astype(np.uint16)
        ),
        "one_pixel.png": Image.new("RGB", (1, 1), (200, 10, 10)),
        "wide.png": Image.new("RGB", (1500, 2), (10, 200, 10)),
        "UPPER.JPG": rgb,
        "bilevel.bmp": rgb.convert("1"),
        "photo.webp": rgb,
    }
    paths = []
    for name, image in files.items():
        path = folder / name
        image.save(path)
        paths.append(str(path))
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = folder / "rotated.jpg"
    rgb.save(rotated, exif=exif)
    return [*paths, str(rotated)]


def _plain_rgb_copies(paths, folder):
    """Each image as the 8-bit RGB PNG it must decode to (EXIF applied, 16 bits scaled)."""
    from PIL import Image, ImageOps

    folder.mkdir()
    copies = []
    for i, path in enumerate(paths):
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            if image.mode.startswith("I;16"):
                grey = np.rint(np.asarray(image).astype(np.float64) / 257).astype(np.uint8)
                image = Image.fromarray(grey, "L")
            image = image.convert("RGB")
        copies.append(str(folder / f"{i}.png"))
        image.save(copies[-1])
    return copies


def test_awkward_but_valid_encodings_fit_and_predict(tmp_path, binary_data):
    X, y = binary_data
    clf = make(max_epochs=1).fit(X, y)
    awkward = _awkward_images(tmp_path / "awkward")
    # every encoding predicts as its plain RGB copy does: same pixels reached the network
    plain = _plain_rgb_copies(awkward, tmp_path / "plain")
    np.testing.assert_allclose(clf.predict_proba(awkward), clf.predict_proba(plain), atol=1e-6)
    mixed = list(X[:10]) + list(X[-10:]) + awkward
    refit = make(max_epochs=1).fit(mixed, list(y[:10]) + list(y[-10:]) + ["cat"] * 11)
    assert refit.skipped_images_ == []
    assert len(refit.train_indices_) + len(refit.valid_indices_) == len(mixed)
    assert refit.class_counts_.sum() == len(refit.train_indices_)


def test_dataloader_workers(binary_data):
    X, y = binary_data
    clf = make(max_epochs=1, iterator_train__num_workers=2, iterator_valid__num_workers=2)
    clf.fit(X, y)
    assert clf.predict(X).shape == (len(X),)


def test_failed_refit_keeps_the_previous_fit(binary_data, three_class_data):
    X, y = binary_data
    clf = make(module=None, backbone="shufflenet_v2_x0_5", max_epochs=1).fit(X, y)
    expected = clf.predict_proba(X)
    X3, y3 = three_class_data
    # the new labels pass every check; building the network then fails (no download)
    clf.set_params(weights="DEFAULT")
    with pytest.raises(RuntimeError, match="weights=None"):
        clf.fit(X3, y3)
    assert clf.classes_.tolist() == ["cat", "dog"]
    np.testing.assert_array_equal(clf.predict_proba(X), expected)


def test_bad_loss_arguments_fail_before_anything_changes(binary_data):
    X, y = binary_data
    clf = make(loss=FocalLoss(gamma=1.0), max_epochs=1).fit(X, y)
    expected = clf.predict_proba(X)
    clf.set_params(alpha="balanced")  # a loss instance cannot take class weights
    _fast_fail_fitted(clf, X, y, ValueError, "used as it is")
    np.testing.assert_array_equal(clf.predict_proba(X), expected)
    clash = make(loss="focal", criterion__gamma=1.0)
    _fast_fail(clash, X, y, TypeError, "Cannot build loss='focal'")


def _fails_after_the_scan(clf, X, y, error, match):
    """A data-dependent check (of the first sampler draw) raises before any network exists."""
    with pytest.raises(error, match=match):
        clf.fit(X, y)
    assert not clf.initialized_


def _fast_fail_fitted(clf, X, y, error, match):
    """A refit raises before it reads any image."""
    with images_read() as reads, pytest.raises(error, match=match):
        clf.fit(X, y)
    assert reads == []


def test_sample_weight_is_refused_up_front(binary_data):
    X, y = binary_data
    with pytest.raises(TypeError, match="sample_weight"):
        make().fit(X, y, sample_weight=np.ones(len(X)))


def test_custom_module_with_wrong_output_width(binary_data):
    X, y = binary_data
    from conftest import TinyCNN

    with pytest.raises(
        ValueError, match=r"module gives outputs of shape \(2, 5\).*\(n_images, 2\)"
    ):
        make(module=TinyCNN(num_classes=5)).fit(X, y)


class _TupleNet(torch.nn.Module):
    def __init__(self, num_classes=2):
        super().__init__()
        self.fc = torch.nn.Linear(3, num_classes)

    def forward(self, x):
        features = x.mean(dim=(2, 3))
        return self.fc(features), features


class _Fixed8(torch.nn.Module):
    """Takes 8 x 8 px images only (a flattening linear layer)."""

    def __init__(self, num_classes=2):
        super().__init__()
        self.fc = torch.nn.Linear(3 * 8 * 8, num_classes)

    def forward(self, x):
        return self.fc(x.flatten(1))


class _Detached(_TupleNet):
    def forward(self, x):
        return self.fc(x.mean(dim=(2, 3))).detach()


class _NaN(_TupleNet):
    def forward(self, x):
        return self.fc(x.mean(dim=(2, 3))) * float("nan")


class _Standardizes(_TupleNet):
    """Standardizes each image: nan on a constant image, fine on real ones."""

    def forward(self, x):
        x = (x - x.mean()) / x.std()
        return self.fc(x.mean(dim=(2, 3)))


@pytest.mark.parametrize(
    "module, message",
    [(_Detached, "do not depend on its trainable weights"), (_NaN, "non-finite logits")],
)
def test_custom_module_that_cannot_train_is_named_before_training(binary_data, module, message):
    X, y = binary_data
    with pytest.raises(ValueError, match=message):
        make(module=module).fit(X, y)


class _BodyWithoutGrad(torch.nn.Module):
    """A frozen body by hand: its features under no_grad, its linear head trainable."""

    def __init__(self, num_classes=2):
        super().__init__()
        self.body = torch.nn.Conv2d(3, 3, 1)
        self.fc = torch.nn.Linear(3, num_classes)

    def forward(self, x):
        with torch.no_grad():
            return self.fc(self.body(x).mean(dim=(2, 3)))


def test_a_module_without_grad_trains_its_head_with_a_frozen_backbone(binary_data):
    X, y = binary_data
    with pytest.raises(ValueError, match="do not depend on its trainable weights"):
        make(module=_BodyWithoutGrad).fit(X, y)
    clf = make(module=_BodyWithoutGrad, freeze_backbone=True).fit(X, y)
    assert clf.predict_proba(X).shape == (len(X), 2)


def test_custom_module_that_standardizes_each_image_is_accepted(binary_data):
    X, y = binary_data
    assert make(module=_Standardizes).fit(X, y).predict_proba(X).shape == (len(X), 2)


def test_custom_module_that_returns_a_tuple_is_named_before_training(binary_data):
    X, y = binary_data
    with pytest.raises(ValueError, match=r"module gives a tuple, not a tensor.*logits only"):
        make(module=_TupleNet).fit(X, y)


def test_custom_module_that_fails_at_the_input_size_points_to_image_size(binary_data):
    X, y = binary_data
    with pytest.raises(
        ValueError, match=r"2 images of 3 x 16 x 16 px \(RuntimeError: .*image_size"
    ):
        make(module=_Fixed8, image_size=16).fit(X, y)
    assert make(module=_Fixed8, image_size=8).fit(X, y).predict_proba(X).shape == (len(X), 2)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"backbone": "maxvit_t", "image_size": 32}, "'maxvit_t' cannot take 32 x 32 px"),
        (
            {"backbone": "vit_b_16", "module__image_size": 32, "image_size": "auto"},
            "'vit_b_16' cannot take 224 x 224 px.*image_size='auto' gave",
        ),
    ],
)
def test_a_network_that_cannot_take_the_size_is_named_before_training(binary_data, params, message):
    X, y = binary_data
    with pytest.raises(ValueError, match=message):
        make(module=None, weights=None, **params).fit(X, y)


def test_a_vision_transformer_at_another_size_is_refused_before_training(binary_data):
    X, y = binary_data
    clf = make(module=None, backbone="vit_b_16", weights=None, image_size=32)
    with pytest.raises(
        ValueError, match=r"'vit_b_16' takes 224 x 224 px inputs only.*image_size=32"
    ):
        clf.fit(X, y)


def test_mixed_label_types_are_refused(binary_data):
    X, y = binary_data
    mixed = [1 if label == "cat" else "dog" for label in y]
    with pytest.raises(ValueError, match="Mix of label input types"):
        make().fit(X, mixed)


def test_object_integer_labels_stay_integers(binary_data):
    X, y = binary_data
    labels = np.array([0 if label == "cat" else 1 for label in y], dtype=object)
    clf = make(max_epochs=1).fit(X, labels)
    assert clf.classes_.tolist() == [0, 1]
    assert clf.predict(X[:1])[0] in (0, 1) and not isinstance(clf.predict(X[:1])[0], str)


def test_partial_fit_with_classes_on_a_one_class_batch(binary_data):
    X, y = binary_data
    cats = y == "cat"
    clf = make(max_epochs=1).partial_fit(X[cats], y[cats], classes=["cat", "dog"])
    assert clf.classes_.tolist() == ["cat", "dog"]
    assert clf.predict_proba(X[:2]).shape == (2, 2)


def test_warm_start_rebuilds_the_loss_for_the_new_class_weights(binary_data):
    X, y = binary_data
    clf = make(alpha="balanced", max_epochs=1).fit(X, y)
    keep = np.r_[np.flatnonzero(y == "cat")[:16], np.flatnonzero(y == "dog")]
    clf.partial_fit(X[keep], y[keep])
    np.testing.assert_allclose(clf.criterion_.weight.numpy(), clf.class_weight_, rtol=1e-6)
    np.testing.assert_allclose(clf.class_weight_, [1.0, 1.0])


def test_zero_class_weight_is_refused(binary_data):
    X, y = binary_data
    _fast_fail(make(alpha=[0.0, 1.0]), X, y, ValueError, "finite and > 0")


def test_sampler_that_returns_nothing(binary_data):
    from imblearn import FunctionSampler

    X, y = binary_data
    empty = FunctionSampler(func=lambda X, y: (X[:0], y[:0]), validate=False)
    _fails_after_the_scan(make(sampler=empty), X, y, ValueError, "returned no training images")
    only_cats = FunctionSampler(func=lambda X, y: (X[y == "cat"], y[y == "cat"]), validate=False)
    _fails_after_the_scan(
        make(sampler=only_cats, alpha="balanced"), X, y, ValueError, r"no images of class.*'dog'"
    )


def test_sampler_pipeline_is_seeded(binary_data):
    from imblearn.pipeline import Pipeline

    X, y = binary_data
    pipeline = Pipeline([("under", RandomUnderSampler()), ("over", RandomOverSampler())])

    def draw(random_state):
        return make(sampler=pipeline, random_state=random_state, max_epochs=1).fit(X, y).sampler_

    first, second = draw(3), draw(3)
    assert first.get_params()["under__random_state"] == second.get_params()["under__random_state"]
    assert first.get_params()["under__random_state"] is not None


def test_device_auto_outside_fit_and_predict(binary_data, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    X, y = binary_data
    clf = make(device="auto", max_epochs=1).fit(X, y)
    assert clf.forward(dataset_of(clf, X[:3])).shape == (3, 2)
    clf.save_params(f_params=tmp_path / "params.pt")
    clf.load_params(f_params=tmp_path / "params.pt")
    expected = clf.predict_proba(X[:4])
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: clf.predict_proba(X[:4]), range(8)))
    for result in results:
        np.testing.assert_allclose(result, expected, rtol=1e-6)


def test_skorch_epoch_scoring_callbacks(int_binary_data):
    from skorch.callbacks import EpochScoring

    from imbal_estimators.training.callbacks import ValidationScore

    X, y = int_binary_data
    clf = make(
        monitor="f1",
        max_epochs=2,
        callbacks=[
            ("skorch_f1", EpochScoring("f1", lower_is_better=False, name="skorch_f1")),
            ("skorch_auc", EpochScoring("roc_auc", lower_is_better=False, name="skorch_auc")),
            ("our_auc", ValidationScore("roc_auc")),  # records valid_roc_auc
        ],
    ).fit(X, y)
    for row in clf.history:
        assert row["skorch_f1"] == pytest.approx(row["valid_f1"])
        assert row["skorch_auc"] == pytest.approx(row["valid_roc_auc"])


def test_skorch_epoch_scoring_with_string_labels(binary_data):
    from skorch.callbacks import EpochScoring

    X, y = binary_data  # targets reach skorch's scorers as class indices
    callbacks = [("acc", EpochScoring("accuracy", lower_is_better=False, name="skorch_acc"))]
    clf = make(max_epochs=1, callbacks=callbacks).fit(X, y)
    valid = clf.valid_indices_
    expected = np.mean(clf.predict(X[valid]) == y[valid])
    assert clf.history[-1, "skorch_acc"] == pytest.approx(expected)


@pytest.mark.parametrize("backbone", ["googlenet"])
def test_backbones_with_auxiliary_heads_train(binary_data, backbone):
    X, y = binary_data
    clf = ImageImbalanceClassifier(**{**FAST, "backbone": backbone, "image_size": 32})
    clf.fit(X[::2], y[::2])
    assert clf.predict_proba(X[:2]).shape == (2, 2)


class _WrapsModule(torch.nn.Module):
    """Keys "module.0.weight", ...: the prefix nn.DataParallel adds."""

    def __init__(self, num_classes=2):
        super().__init__()
        self.module = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 4))
        self.out = torch.nn.Linear(4, num_classes)

    def forward(self, x):
        return self.out(self.module(x))


class _BackboneAndHead(torch.nn.Module):
    """Keys "backbone.*" and "head.*": the prefix of this package's own saved model."""

    def __init__(self, num_classes=2):
        super().__init__()
        self.backbone = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 4))
        self.head = torch.nn.Linear(4, num_classes)

    def forward(self, x):
        return self.head(self.backbone(x))


@pytest.mark.parametrize("network", [_WrapsModule, _BackboneAndHead])
def test_a_user_modules_own_prefixed_keys_load_from_its_weights_file(
    binary_data, tmp_path, network
):
    X, y = binary_data
    source = network(num_classes=2)
    torch.save(source.state_dict(), tmp_path / "net.pt")
    clf = make(module=network, weights=str(tmp_path / "net.pt"), lr=0.0, max_epochs=1)
    clf.fit(X, y)
    loaded = clf.module_.backbone.state_dict()
    body = {k: v for k, v in source.state_dict().items() if k.startswith(("module.", "backbone."))}
    assert body and all(torch.equal(loaded[key], value) for key, value in body.items())


def test_a_weights_name_with_a_user_module_is_refused_naming_weights(binary_data):
    X, y = binary_data
    with pytest.raises(ValueError, match="With module=, the 'weights' parameter must be None"):
        make(weights="IMAGENET1K_V1").fit(X, y)


def test_a_network_saved_from_a_script_says_where_it_must_live():
    from imbal_estimators.io.references import import_reference

    with pytest.raises(ImportError, match="a class of the script that saved the model"):
        import_reference("__main__", "NoSuchNetwork")


class _ExtraState(_TupleNet):
    def forward(self, x):
        return self.fc(x.mean(dim=(2, 3)))

    def get_extra_state(self):
        return {"note": "not a tensor"}

    def set_extra_state(self, state):
        self.note = state


class _ChildWithExtraState(torch.nn.Module):
    def __init__(self, num_classes=2):
        super().__init__()
        self.inner = _ExtraState(num_classes)

    def forward(self, x):
        return self.inner(x)


@pytest.mark.parametrize("module", [_ExtraState, _ChildWithExtraState])
@pytest.mark.parametrize("freeze_backbone", [False, True])
def test_a_module_with_extra_state_is_refused_before_training(binary_data, module, freeze_backbone):
    X, y = binary_data
    with pytest.raises(ValueError, match="keeps state that is not a tensor.*get_extra_state"):
        make(module=module, freeze_backbone=freeze_backbone).fit(X, y)
