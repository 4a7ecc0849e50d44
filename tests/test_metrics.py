"""The metric registry: one definition of each metric for monitor, tuning, compare and search."""

import numpy as np
import pytest
from sklearn import metrics

from imbal_estimators.decision.metrics import (
    METRICS,
    MONITOR_OPTIONS,
    REPORT_METRICS,
    SCORING_OPTIONS,
    THRESHOLD_METRICS,
    Scorer,
    score,
)

CLASSES = np.array(["abnormal", "normal"])  # the rare class sorts first


@pytest.fixture
def rare_first():
    rng = np.random.default_rng(0)
    is_rare = rng.random(200) < 0.2
    p_rare = np.clip(0.3 * is_rare + 0.6 * rng.random(200), 0, 1)
    return np.where(is_rare, "abnormal", "normal"), np.c_[p_rare, 1 - p_rare]


def test_the_options_come_from_the_registry():
    assert set(MONITOR_OPTIONS) - set(METRICS) == {"valid_loss"}
    assert set(SCORING_OPTIONS) <= set(METRICS) and set(REPORT_METRICS) <= set(METRICS)
    assert THRESHOLD_METRICS == tuple(m for m in METRICS if METRICS[m].depends_on_threshold)
    assert {m for m in METRICS if not METRICS[m].depends_on_threshold} == {
        "average_precision",
        "roc_auc",
    }


def test_binary_metrics_score_the_given_positive_class(rare_first):
    y, proba = rare_first
    y_pred = CLASSES[proba.argmax(axis=1)]
    for name, function in [
        ("f1", metrics.f1_score),
        ("precision", metrics.precision_score),
        ("recall", metrics.recall_score),
    ]:
        got = score(name, y, proba, CLASSES, "abnormal")
        assert got == pytest.approx(function(y, y_pred, pos_label="abnormal"))
        assert got != pytest.approx(function(y, y_pred, pos_label="normal"))
    assert score("average_precision", y, proba, CLASSES, "abnormal") == pytest.approx(
        metrics.average_precision_score(y == "abnormal", proba[:, 0])
    )
    assert score("average_precision", y, proba, CLASSES, "normal") == pytest.approx(
        metrics.average_precision_score(y == "normal", proba[:, 1])
    )


def test_symmetric_metrics_do_not_need_a_positive_class(rare_first):
    y, proba = rare_first
    y_pred = CLASSES[proba.argmax(axis=1)]
    assert score("balanced_accuracy", y, proba, CLASSES) == pytest.approx(
        metrics.balanced_accuracy_score(y, y_pred)
    )
    assert score("mcc", y, proba, CLASSES) == pytest.approx(metrics.matthews_corrcoef(y, y_pred))
    assert score("roc_auc", y, proba, CLASSES) == pytest.approx(
        metrics.roc_auc_score(y == "abnormal", proba[:, 0])
    )
    assert score("f1_macro", y, proba, CLASSES) == pytest.approx(
        metrics.f1_score(y, y_pred, average="macro")
    )


def test_decisions_can_be_given(rare_first):
    y, proba = rare_first
    y_pred = np.where(proba[:, 0] >= 0.3, "abnormal", "normal")
    assert score("f1", y, proba, CLASSES, "abnormal", y_pred=y_pred) == pytest.approx(
        metrics.f1_score(y, y_pred, pos_label="abnormal")
    )
    assert score("recall", y, None, CLASSES, "abnormal", y_pred=y_pred) == pytest.approx(
        metrics.recall_score(y, y_pred, pos_label="abnormal")
    )


def test_a_binary_metric_of_one_class_needs_pos_label(rare_first):
    y, proba = rare_first
    with pytest.raises(ValueError, match="pass pos_label"):
        score("f1", y, proba, CLASSES)
    with pytest.raises(ValueError, match="'pos_label' parameter must be one of the classes"):
        score("f1", y, proba, CLASSES, "cat")
    with pytest.raises(ValueError, match=r"Unknown metric 'accuracy'; the metrics are \["):
        score("accuracy", y, proba, CLASSES)


def test_multiclass_averages():
    classes = np.array([0, 1, 2])
    y = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    proba = np.tile([0.7, 0.2, 0.1], (8, 1))  # always class 0
    proba[6] = [0.1, 0.2, 0.7]
    y_pred = classes[proba.argmax(axis=1)]
    assert score("f1", y, proba, classes) == pytest.approx(
        metrics.f1_score(y, y_pred, average="macro")
    )
    assert score("precision", y, proba, classes) == pytest.approx(
        (4 / 7 + 0 + 1) / 3
    )  # class 1 never predicted: 0
    assert score("average_precision", y, proba, classes) == pytest.approx(
        np.mean([metrics.average_precision_score(y == c, proba[:, c]) for c in classes])
    )


@pytest.mark.parametrize("name", sorted(METRICS))
def test_non_finite_probabilities_score_nan(name):
    proba = np.full((4, 2), np.nan)
    assert np.isnan(score(name, np.array([0, 1, 0, 1]), proba, np.arange(2), 1))


@pytest.mark.parametrize("name", sorted(METRICS))
def test_multiclass_with_a_class_missing_from_validation(name):
    y = np.array([0, 1, 0, 1])
    proba = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1], [0.3, 0.6, 0.1]])
    assert np.isfinite(score(name, y, proba, np.arange(3)))


@pytest.mark.parametrize("name", ["roc_auc", "average_precision"])
def test_ranking_metric_with_one_class_is_nan(name):
    proba = np.array([[0.9, 0.1], [0.6, 0.4]])
    assert np.isnan(score(name, np.array([0, 0]), proba, np.arange(2), 1))


def test_perfect_binary_predictions():
    y = np.array([0, 0, 1, 1])
    proba = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.1, 0.9]])
    for name in METRICS:
        assert score(name, y, proba, np.arange(2), 1) == pytest.approx(1.0)


class Fixed:
    """A fitted estimator with a threshold of 0.3 on P(abnormal)."""

    classes_ = CLASSES
    proba = np.array([[0.1, 0.9], [0.8, 0.2], [0.4, 0.6], [0.35, 0.65]])

    def predict_proba(self, X):
        return self.proba

    def predict(self, X):
        return np.where(self.proba[:, 0] >= 0.3, "abnormal", "normal")


def test_scorer_scores_predict_with_the_estimators_positive_class():
    y = np.array(["normal", "abnormal", "normal", "normal"])
    estimator = Fixed()
    estimator.pos_label_ = "normal"
    # predict's decisions (threshold 0.3), not the argmax, which is perfect here
    y_pred = estimator.predict(None)
    assert Scorer("f1")(estimator, None, y) == pytest.approx(
        metrics.f1_score(y, y_pred, pos_label="normal")
    )
    assert Scorer("f1", "abnormal")(estimator, None, y) == pytest.approx(
        metrics.f1_score(y, y_pred, pos_label="abnormal")
    )
    assert Scorer("average_precision")(estimator, None, y) == pytest.approx(
        metrics.average_precision_score(y == "normal", Fixed.proba[:, 1])
    )
    # an estimator without pos_label_: the rarer class of y
    assert Scorer("recall")(Fixed(), None, y) == pytest.approx(
        metrics.recall_score(y, y_pred, pos_label="abnormal")
    )
    assert "Scorer('f1'" in repr(Scorer("f1"))
    with pytest.raises(ValueError, match="Unknown metric"):
        Scorer("accuracy")


def test_scorer_and_registry_pickle():
    import pickle

    scorer = pickle.loads(pickle.dumps(Scorer("average_precision", "normal")))
    y = np.array(["normal", "abnormal", "normal", "normal"])
    assert scorer(Fixed(), None, y) == pytest.approx(
        metrics.average_precision_score(y == "normal", Fixed.proba[:, 1])
    )
    assert pickle.loads(pickle.dumps(METRICS)) == METRICS
