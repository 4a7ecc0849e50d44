"""The positive class: ``pos_label=None`` is the rarer class, even when it sorts first.

The data: class folders ``abnormal/`` (rare) and ``normal/``, so ``classes_`` is
``['abnormal', 'normal']`` and the positive class is ``classes_[0]``.
"""

import os

import numpy as np
import pytest
from conftest import tiny_classifier as make
from conftest import write_images
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from skorch.callbacks import Callback

from imbal_estimators import ImbalanceSearchCV, load, load_image_folder
from imbal_estimators.decision.positive import resolve_pos_label
from imbal_estimators.decision.threshold import tune_threshold

MISSING = [f"/nonexistent/img_{i}.png" for i in range(6)]


@pytest.fixture(scope="module")
def rare_first(tmp_path_factory):
    """20 'abnormal' and 60 'normal' images of nearly the same color: a weak model."""
    root = tmp_path_factory.mktemp("rare_first")
    write_images(os.path.join(root, "abnormal"), 20, (122, 120, 118), seed=2)
    write_images(os.path.join(root, "normal"), 60, (118, 120, 122), seed=1)
    return load_image_folder(root)


class RecordValidation(Callback):
    """Each epoch's validation targets and argmax decisions (class indices)."""

    def on_train_begin(self, net, **kwargs):
        self.epochs_ = []

    def on_epoch_begin(self, net, **kwargs):
        self.batches_ = []

    def on_batch_end(self, net, batch=None, training=False, y_pred=None, **kwargs):
        if not training:
            self.batches_.append((batch[1].numpy(), y_pred.detach().argmax(dim=1).numpy()))

    def on_epoch_end(self, net, **kwargs):
        targets = np.concatenate([t for t, _ in self.batches_])
        self.epochs_.append((targets, np.concatenate([p for _, p in self.batches_])))


# ------------------------------------------------------------------- the rule


def test_the_rarer_class_is_positive_and_a_tie_goes_to_the_later_one():
    assert resolve_pos_label(None, ["abnormal", "normal"], [16, 84]) == "abnormal"
    assert resolve_pos_label(None, ["abnormal", "normal"], [84, 16]) == "normal"
    assert resolve_pos_label(None, [0, 1], [5, 5]) == 1  # scikit-learn's pos_label=1
    assert resolve_pos_label(None, np.array(["a", "b"]), [5, 5]) == "b"
    assert resolve_pos_label(None, [0, 1, 2], [1, 5, 9]) is None  # multi-class: none


def test_a_given_label_names_the_positive_class():
    label = resolve_pos_label("normal", np.array(["abnormal", "normal"]), [16, 84])
    assert label == "normal" and type(label) is str  # a plain value, not np.str_
    assert resolve_pos_label(np.int64(3), np.array([3, 7]), [1, 9]) == 3


@pytest.mark.parametrize(
    "pos_label, classes, message",
    [
        ("cat", ["abnormal", "normal"], r"must be one of the classes \['abnormal', 'normal'\]"),
        ("1", [0, 1], r"must be one of the classes \[0, 1\]. Got '1' instead"),
        (True, [0, 1], r"Got True instead"),
        ("a", ["a", "b", "c"], "names the positive class of a binary problem; y has 3 classes"),
    ],
)
def test_a_label_that_is_not_a_class_is_refused(pos_label, classes, message):
    with pytest.raises(ValueError, match=message):
        resolve_pos_label(pos_label, classes, [1] * len(classes), caller_name="Thing")
    with pytest.raises(ValueError, match="The 'pos_label' parameter of Thing"):
        resolve_pos_label(pos_label, classes, [1] * len(classes), caller_name="Thing")


# ------------------------------------------------------------------- the estimator


@pytest.mark.parametrize(
    "params, positive, index",
    [(dict(), "abnormal", 0), (dict(pos_label="normal"), "normal", 1)],
)
def test_monitor_f1_keeps_the_epoch_with_the_best_f1_of_the_positive_class(
    rare_first, params, positive, index
):
    X, y = rare_first
    recorder = RecordValidation()
    clf = make(
        monitor="f1", alpha=0.8, max_epochs=4, train_split=0.5, callbacks=[recorder], **params
    ).fit(X, y)
    assert clf.classes_.tolist() == ["abnormal", "normal"]
    assert (clf.pos_label_, clf.pos_index_) == (positive, index)
    # every epoch's recorded F1 is the F1 of the positive class
    recorded = clf.history[:, "valid_f1"]
    expected = [f1_score(t, p, pos_label=index) for t, p in recorder.epochs_]
    assert recorded == pytest.approx(expected, abs=1e-12)
    other = [f1_score(t, p, pos_label=1 - index) for t, p in recorder.epochs_]
    assert recorded != pytest.approx(other)  # the other class's F1 would differ
    # the kept epoch is a best one; among tied best epochs the one with the lower
    # validation loss (the later one when that ties too); predict gives its decisions
    losses = clf.history[:, "valid_loss"]
    tied = [e for e, score in enumerate(recorded, 1) if score == max(recorded)]
    lowest = min(losses[e - 1] for e in tied)
    assert clf.best_epoch_ == max(e for e in tied if losses[e - 1] == lowest)
    rows = clf.valid_indices_
    kept = f1_score(y[rows], clf.predict(X[rows]), pos_label=positive)
    assert kept == pytest.approx(recorded[clf.best_epoch_ - 1], abs=1e-12)
    # a float alpha is the weight of the positive class
    np.testing.assert_allclose(clf.class_weight_[[index, 1 - index]], [0.8, 0.2])


def test_threshold_applies_to_the_positive_class_probability(rare_first, tmp_path):
    X, y = rare_first
    clf = make(threshold="auto", monitor="f1", train_split=0.5, max_epochs=2).fit(X, y)
    assert clf.pos_label_ == "abnormal"
    rows = clf.valid_indices_
    p_abnormal = clf.predict_proba(X[rows])[:, 0]
    expected, _ = tune_threshold(p_abnormal, y[rows] == "abnormal", "f1")
    assert clf.threshold_ == pytest.approx(expected, rel=1e-6)
    proba = clf.predict_proba(X)
    np.testing.assert_array_equal(
        clf.predict(X), np.where(proba[:, 0] >= clf.threshold_, "abnormal", "normal")
    )
    # a fixed threshold too, and the rule survives save and load
    fixed = clf.set_params(threshold=0.3).fit(X, y)
    predicted = np.where(fixed.predict_proba(X)[:, 0] >= 0.3, "abnormal", "normal")
    np.testing.assert_array_equal(fixed.predict(X), predicted)
    loaded = load(fixed.save(tmp_path / "model"), trusted=True)  # conftest.TinyCNN
    assert (loaded.pos_label_, loaded.pos_index_) == ("abnormal", 0)
    np.testing.assert_array_equal(loaded.predict(X), predicted)


def test_a_continued_fit_keeps_its_positive_class(rare_first):
    X, y = rare_first
    clf = make(max_epochs=1).fit(X, y)
    abnormal, normal = np.flatnonzero(y == "abnormal"), np.flatnonzero(y == "normal")
    normal_rare = np.concatenate([abnormal, normal[:10]])
    clf.partial_fit(X[normal_rare], y[normal_rare])  # 'normal' is the rarer here
    assert clf.pos_label_ == "abnormal"
    assert make(max_epochs=1).fit(X[normal_rare], y[normal_rare]).pos_label_ == "normal"


def test_a_validation_split_without_the_positive_class_warns_before_training(tmp_path):
    write_images(os.path.join(tmp_path, "abnormal"), 1, (200, 40, 40))
    write_images(os.path.join(tmp_path, "normal"), 9, (40, 200, 40))
    X, y = load_image_folder(tmp_path)
    with pytest.warns(UserWarning, match="no image of class 'abnormal'.*threshold_ is 0.5") as w:
        clf = make(threshold="auto", max_epochs=1).fit(X, y)
    assert w[0].filename == __file__
    assert clf.threshold_ == 0.5


@pytest.mark.parametrize(
    "params, y, message",
    [
        (
            dict(pos_label="cat"),
            ["a", "b"] * 3,
            r"The 'pos_label' parameter of ImageImbalanceClassifier must be one of the classes "
            r"\['a', 'b'\]. Got 'cat' instead",
        ),
        (
            dict(pos_label="a"),
            ["a", "b", "c"] * 2,
            "'pos_label' parameter of ImageImbalanceClassifier names the positive class of a "
            "binary problem; y has 3 classes",
        ),
        (
            dict(pos_label=[1]),
            ["a", "b"] * 3,
            "The 'pos_label' parameter of ImageImbalanceClassifier must be",
        ),
    ],
)
def test_a_bad_pos_label_fails_before_any_image_is_read(params, y, message):
    with pytest.raises(ValueError, match=message):
        make(**params).fit(MISSING, y)  # the paths do not exist: no scan was reached


# ------------------------------------------------------------------- the search


def test_search_scores_f1_of_the_rare_class_with_string_labels():
    X, y01 = make_classification(n_samples=90, n_features=4, weights=[0.25], random_state=0)
    y = np.where(y01 == 0, "abnormal", "normal")  # 'abnormal' is rare and sorts first
    rows = np.arange(90)
    folds = [(rows[rows % 3 != k], rows[rows % 3 == k]) for k in range(3)]
    search = ImbalanceSearchCV(
        LogisticRegression(), {"C": [1.0]}, n_trials=1, cv=folds, scoring="f1", random_state=0
    ).fit(X, y)
    for k, (train, test) in enumerate(folds):
        model = LogisticRegression(C=1.0).fit(X[train], y[train])
        expected = f1_score(y[test], model.predict(X[test]), pos_label="abnormal")
        assert search.cv_results_[f"split{k}_test_score"][0] == pytest.approx(expected)


# ------------------------------------------------------------------- compare


def test_compare_and_the_estimator_agree_on_the_positive_class(rare_first, monkeypatch):
    from conftest import TINY

    from imbal_estimators import ImageImbalanceClassifier
    from imbal_estimators.app.compare import Configuration, compare

    fitted = []
    original_fit = ImageImbalanceClassifier.fit

    def recording_fit(self, X, y, **kwargs):
        fitted.append(original_fit(self, X, y, **kwargs))
        return fitted[-1]

    monkeypatch.setattr(ImageImbalanceClassifier, "fit", recording_fit)
    X, y = rare_first
    params = {k: v for k, v in TINY.items() if k != "random_state"}
    result = compare(
        X, y, configurations=(Configuration("ce"),), cv=2, estimator_params=params, progress=False
    )
    assert result.pos_label == "abnormal"
    # every fit (the timed probe, one per fold, the refit on all images) has compare's class
    assert len(fitted) >= 2
    assert {clf.pos_label_ for clf in fitted} == {"abnormal"}
    # compare's tuned rows threshold P(abnormal), the estimator's positive column
    assert all(clf.pos_index_ == 0 for clf in fitted)
