"""The decision metrics computed from confusion counts equal scikit-learn's."""

import numpy as np
import pytest
from sklearn import metrics as skm

from imbal_estimators.decision.metrics import METRICS, confusion_counts, score


def _sklearn(name, y_true, y_pred, classes, pos_label):
    if name == "balanced_accuracy":
        return skm.balanced_accuracy_score(y_true, y_pred)
    if name == "mcc":
        return skm.matthews_corrcoef(y_true, y_pred)
    if name == "f1_macro":
        return skm.f1_score(y_true, y_pred, labels=classes, average="macro", zero_division=0)
    function = {"f1": skm.f1_score, "precision": skm.precision_score, "recall": skm.recall_score}
    if len(classes) == 2:
        kwargs = dict(pos_label=pos_label, average="binary")
    else:
        kwargs = dict(labels=classes, average="macro")
    return function[name](y_true, y_pred, zero_division=0, **kwargs)


DECISION_METRICS = [name for name, m in METRICS.items() if m.depends_on_threshold]


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", DECISION_METRICS)
@pytest.mark.parametrize("labels", ["indices", "strings"])
def test_counts_give_sklearn_values_on_random_inputs(name, labels):
    rng = np.random.default_rng(0)
    for trial in range(300):
        n_classes = int(rng.integers(2, 5))
        n = int(rng.integers(1, 40))
        # few classes drawn at a time: classes missing from y_true, y_pred or both
        present = rng.choice(n_classes, size=int(rng.integers(1, n_classes + 1)), replace=False)
        y_true = rng.choice(present, size=n)
        y_pred = rng.choice(n_classes, size=n) if trial % 3 else y_true.copy()
        classes = np.arange(n_classes)
        if labels == "strings":
            names = np.array([f"c{i}" for i in range(n_classes)])
            y_true, y_pred, classes = names[y_true], names[y_pred], names
        pos_label = classes[int(rng.integers(n_classes))] if n_classes == 2 else None
        ours = score(name, y_true, None, classes, pos_label, y_pred=y_pred)
        expected = _sklearn(name, y_true, y_pred, classes, pos_label)
        assert ours == pytest.approx(expected, rel=1e-12, abs=1e-15), (trial, y_true, y_pred)
        if name in ("balanced_accuracy", "mcc", "f1_macro"):
            assert ours == expected  # scikit-learn's own steps, bit for bit


def test_confusion_counts():
    C = confusion_counts([0, 1, 1, 2], [0, 2, 1, 2], np.arange(3))
    np.testing.assert_array_equal(C, [[1, 0, 0], [0, 1, 1], [0, 0, 1]])
    np.testing.assert_array_equal(
        confusion_counts(["b", "a"], ["b", "b"], ["a", "b"]), [[0, 1], [0, 1]]
    )
    # what the counts cannot express goes to scikit-learn
    assert confusion_counts([0, 3], [0, 1], np.arange(2)) is None  # a label outside classes
    assert confusion_counts(["a", "z"], ["a", "a"], ["a", "b"]) is None
    assert confusion_counts(["b", "a"], ["b", "a"], ["b", "a"]) is None  # unsorted classes
    assert confusion_counts([], [], np.arange(2)) is None


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_labels_outside_classes_are_scored_by_sklearn():
    y_true, y_pred = np.array([0, 1, 2, 2]), np.array([0, 1, 1, 2])
    expected = skm.balanced_accuracy_score(y_true, y_pred)
    assert score("balanced_accuracy", y_true, None, np.arange(2), y_pred=y_pred) == expected
