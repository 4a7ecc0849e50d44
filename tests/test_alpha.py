"""Class weights (``alpha``): worked numbers, properties, label types and errors."""

import re

import numpy as np
import pytest
from sklearn.utils.class_weight import compute_class_weight

from imbal_estimators.imbalance.class_weights import (
    ALPHA_STRATEGIES,
    check_alpha,
    compute_alpha,
    resolve_alpha,
)

SCALES = [1, 10]  # 84/16 and 840/160 samples: the same class shares [0.84, 0.16]


def _y(counts, labels=None, seed=0):
    """Shuffled labels with ``counts[i]`` samples of ``labels[i]``."""
    labels = list(range(len(counts))) if labels is None else labels
    y = np.array([lab for lab, n in zip(labels, counts, strict=True) for _ in range(n)])
    return np.random.default_rng(seed).permutation(y)


def _effective_reference(counts, beta):
    counts = np.asarray(counts, dtype=np.float64)
    w = (1.0 - beta) / (1.0 - beta**counts)
    return w / w.sum() * len(counts)


# --------------------------------------------------------------------------- worked numbers


@pytest.mark.parametrize("scale", SCALES)
def test_balanced_worked_numbers(scale):
    y = _y([84 * scale, 16 * scale])
    alpha = compute_alpha(y, "balanced")
    np.testing.assert_array_equal(alpha.round(3), [0.595, 3.125])
    np.testing.assert_allclose(alpha, [1 / (2 * 0.84), 1 / (2 * 0.16)])
    # Same as scikit-learn's class_weight="balanced".
    np.testing.assert_allclose(
        alpha, compute_class_weight("balanced", classes=np.array([0, 1]), y=y)
    )


@pytest.mark.parametrize("scale", SCALES)
def test_geometric_worked_numbers(scale):
    alpha = compute_alpha(_y([84 * scale, 16 * scale]), "geometric")
    np.testing.assert_array_equal(alpha.round(3), [0.436, 2.291])
    inverse = np.array([1 / 0.84, 1 / 0.16])
    np.testing.assert_allclose(alpha, inverse / np.sqrt(inverse.prod()))


@pytest.mark.parametrize("scale", SCALES)
def test_inverse_worked_numbers(scale):
    alpha = compute_alpha(_y([84 * scale, 16 * scale]), "inverse")
    np.testing.assert_allclose(alpha, [1 / 0.84, 1 / 0.16])
    np.testing.assert_array_equal(alpha.round(3), [1.190, 6.25])


@pytest.mark.parametrize("scale", SCALES)
def test_sqrt_worked_numbers(scale):
    alpha = compute_alpha(_y([84 * scale, 16 * scale]), "sqrt")
    raw = 1 / np.sqrt([0.84, 0.16])
    np.testing.assert_allclose(alpha, raw / raw.mean())
    np.testing.assert_array_equal(alpha.round(3), [0.608, 1.392])
    assert alpha.mean() == pytest.approx(1.0)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("beta", [0.0, 0.9, 0.999, 0.9999])
def test_effective_matches_cui_et_al(scale, beta):
    counts = [84 * scale, 16 * scale]
    alpha = compute_alpha(_y(counts), "effective", beta=beta)
    np.testing.assert_allclose(alpha, _effective_reference(counts, beta), rtol=1e-12)
    assert alpha.sum() == pytest.approx(2.0)


def test_effective_worked_numbers():
    y = _y([84, 16])
    # beta = 0: every class counts once; beta -> 1 approaches inverse frequency.
    np.testing.assert_array_equal(compute_alpha(y, "effective", beta=0.0), [1.0, 1.0])
    np.testing.assert_array_equal(compute_alpha(y, "effective", beta=0.9).round(3), [0.898, 1.102])
    # Effective numbers (1 - beta^n) / (1 - beta) with beta = 0.999: 80.61 and 15.88.
    e = (1 - 0.999 ** np.array([84, 16])) / 0.001
    np.testing.assert_allclose(compute_alpha(y, "effective"), 2 * (1 / e) / (1 / e).sum())
    np.testing.assert_array_equal(compute_alpha(y, "effective").round(3), [0.329, 1.671])
    np.testing.assert_allclose(
        compute_alpha(y, "effective", beta=1 - 1e-9), [2 * 16 / 100, 2 * 84 / 100], rtol=1e-6
    )
    # Default beta is 0.999.
    np.testing.assert_array_equal(
        compute_alpha(y, "effective"), compute_alpha(y, "effective", beta=0.999)
    )


def test_effective_beta_zero_gives_ones_multiclass():
    np.testing.assert_array_equal(compute_alpha(_y([50, 7, 3]), "effective", beta=0), np.ones(3))


# --------------------------------------------------------------------------- properties

MULTI = [[84, 16], [7, 2, 1], [50, 30, 15, 5], [10, 10, 10]]


@pytest.mark.parametrize("counts", MULTI)
def test_balanced_has_sample_weighted_mean_one(counts):
    counts_arr = np.asarray(counts)
    alpha = compute_alpha(_y(counts), "balanced")
    assert (counts_arr * alpha).sum() / counts_arr.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(alpha, counts_arr.sum() / (len(counts) * counts_arr))


@pytest.mark.parametrize("counts", MULTI)
def test_geometric_has_geometric_mean_one(counts):
    alpha = compute_alpha(_y(counts), "geometric")
    assert np.exp(np.log(alpha).mean()) == pytest.approx(1.0)
    assert np.prod(alpha) == pytest.approx(1.0)
    # Proportional to inverse frequency.
    ratio = alpha / compute_alpha(_y(counts), "inverse")
    np.testing.assert_allclose(ratio, ratio[0])


@pytest.mark.parametrize("counts", MULTI)
@pytest.mark.parametrize("beta", [0.0, 0.5, 0.99, 0.9999])
def test_effective_sums_to_n_classes(counts, beta):
    alpha = compute_alpha(_y(counts), "effective", beta=beta)
    assert alpha.sum() == pytest.approx(len(counts))
    np.testing.assert_allclose(alpha, _effective_reference(counts, beta), rtol=1e-12)


@pytest.mark.parametrize("counts", MULTI)
def test_sqrt_and_inverse_normalizations(counts):
    counts_arr = np.asarray(counts, dtype=np.float64)
    p = counts_arr / counts_arr.sum()
    sqrt = compute_alpha(_y(counts), "sqrt")
    assert sqrt.mean() == pytest.approx(1.0)
    np.testing.assert_allclose(sqrt, (1 / np.sqrt(p)) / (1 / np.sqrt(p)).mean())
    inverse = compute_alpha(_y(counts), "inverse")
    np.testing.assert_allclose(inverse, 1 / p)
    assert (p * inverse).sum() == pytest.approx(len(counts))


@pytest.mark.parametrize("strategy", sorted(ALPHA_STRATEGIES))
@pytest.mark.parametrize("counts", MULTI)
def test_rarer_classes_weigh_more_and_output_is_float64(strategy, counts):
    alpha = compute_alpha(_y(counts), strategy)
    assert isinstance(alpha, np.ndarray)
    assert alpha.dtype == np.float64
    assert alpha.shape == (len(counts),)
    assert np.all(np.isfinite(alpha)) and np.all(alpha > 0)
    order = np.argsort(counts, kind="stable")
    # Weights never increase with the class count; equal counts give equal weights.
    assert np.all(np.diff(alpha[order]) <= 1e-12)
    if len(set(counts)) == 1:
        np.testing.assert_allclose(alpha, alpha[0])


@pytest.mark.parametrize("strategy", sorted(ALPHA_STRATEGIES))
def test_single_class(strategy):
    np.testing.assert_allclose(compute_alpha(["a"] * 5, strategy), [1.0])


# --------------------------------------------------------------------------- label types


@pytest.mark.parametrize("strategy", sorted(ALPHA_STRATEGIES))
def test_string_and_shifted_int_labels_give_the_same_weights(strategy):
    expected = compute_alpha(_y([84, 16]), strategy)
    for labels in (["neg", "pos"], [3, 7], [-1, 1], [0.5, 2.5]):
        got = compute_alpha(_y([84, 16], labels=labels), strategy)
        np.testing.assert_array_equal(got, expected)


def test_order_follows_np_unique():
    # The minority class sorts first here, so its (larger) weight comes first.
    y = ["b"] * 84 + ["a"] * 16
    alpha = compute_alpha(y, "balanced")
    np.testing.assert_array_equal(alpha.round(3), [3.125, 0.595])
    y_int = [7] * 16 + [3] * 84
    np.testing.assert_array_equal(compute_alpha(y_int, "balanced").round(3), [0.595, 3.125])
    # Multi-class: weights follow np.unique(y) of string labels.
    y3 = ["zebra"] * 10 + ["ant"] * 30 + ["mole"] * 20
    alpha3 = compute_alpha(y3, "balanced")
    np.testing.assert_allclose(alpha3, 60 / (3 * np.array([30, 20, 10])))


def test_accepts_lists_tuples_and_arrays():
    y = [0] * 84 + [1] * 16
    expected = compute_alpha(np.array(y), "balanced")
    np.testing.assert_array_equal(compute_alpha(y, "balanced"), expected)
    np.testing.assert_array_equal(compute_alpha(tuple(y), "balanced"), expected)


# --------------------------------------------------------------------------- float alpha


@pytest.mark.parametrize("labels", [[0, 1], [3, 7], ["neg", "pos"]])
def test_float_alpha_is_weight_of_the_rarer_class(labels):
    y = _y([84, 16], labels=labels)  # the rarer class sorts second
    alpha = compute_alpha(y, 0.25)
    assert alpha.dtype == np.float64
    np.testing.assert_array_equal(alpha, [0.75, 0.25])
    np.testing.assert_allclose(compute_alpha(y, 0.9), [0.1, 0.9])
    np.testing.assert_array_equal(compute_alpha(y, np.float32(0.5)), [0.5, 0.5])


@pytest.mark.parametrize("labels", [[0, 1], ["abnormal", "normal"]])
def test_float_alpha_weights_a_rare_class_that_sorts_first(labels):
    y = _y([16, 84], labels=labels)
    np.testing.assert_allclose(compute_alpha(y, 0.8), [0.8, 0.2])
    # pos_label names the positive class instead
    np.testing.assert_allclose(compute_alpha(y, 0.8, pos_label=labels[1]), [0.2, 0.8])
    # a tie goes to the later class, as scikit-learn's pos_label=1
    np.testing.assert_allclose(compute_alpha(_y([50, 50], labels=labels), 0.8), [0.2, 0.8])
    with pytest.raises(ValueError, match="'pos_label' parameter must be one of the classes"):
        compute_alpha(y, 0.8, pos_label="cat")


@pytest.mark.parametrize("n_classes", [1, 3, 4])
def test_float_alpha_needs_binary(n_classes):
    y = _y([5] * n_classes)
    with pytest.raises(ValueError, match="binary"):
        compute_alpha(y, 0.25)


@pytest.mark.parametrize("value", [0.0, 1.0, 1.5, -0.25, float("nan"), float("inf"), 2])
def test_float_alpha_outside_open_unit_interval(value):
    with pytest.raises(ValueError, match=re.escape("(0, 1)")):
        compute_alpha(_y([84, 16]), value)


def test_bool_alpha_rejected():
    with pytest.raises(ValueError, match="alpha"):
        compute_alpha(_y([84, 16]), True)


# --------------------------------------------------------------------------- sequences


@pytest.mark.parametrize("weights", [[1, 2], (1.0, 2.0), np.array([1, 2]), np.array([1.0, 2.0])])
def test_sequence_alpha_returned_as_float_array(weights):
    alpha = compute_alpha(_y([84, 16], labels=["a", "b"]), weights)
    assert isinstance(alpha, np.ndarray)
    assert alpha.dtype == np.float64
    np.testing.assert_array_equal(alpha, [1.0, 2.0])


def test_sequence_alpha_multiclass():
    np.testing.assert_array_equal(compute_alpha(_y([5, 4, 3]), [1, 0.5, 2]), [1.0, 0.5, 2.0])


def test_zero_weight_is_refused():
    # a batch holding only that class would have a mean loss of 0 / 0 = NaN
    with pytest.raises(ValueError, match="finite and > 0"):
        compute_alpha(_y([5, 4, 3]), [0, 0.5, 2])


def test_nested_sequence_is_refused():
    with pytest.raises(ValueError, match="flat sequence"):
        compute_alpha(_y([84, 16]), [[1.0, 2.0]])


def test_boolean_alpha_is_refused():
    with pytest.raises(ValueError, match="not a class weight"):
        compute_alpha(_y([84, 16]), True)


@pytest.mark.parametrize("weights", [[1.0], [1.0, 2.0, 3.0], []])
def test_sequence_alpha_of_wrong_length(weights):
    with pytest.raises(ValueError, match=r"alpha has \d+ weight\(s\) but there are 2 classes"):
        compute_alpha(_y([84, 16]), weights)


def test_sequence_wrong_length_message_names_classes():
    with pytest.raises(ValueError, match=r"3 classes \('a', 'b', 'c'\)"):
        compute_alpha(_y([3, 2, 1], labels=["a", "b", "c"]), [1.0, 2.0])


@pytest.mark.parametrize(
    "weights", [[1.0, -0.5], [float("nan"), 1.0], [1.0, float("inf")], np.array([-1, 1])]
)
def test_sequence_alpha_negative_or_not_finite(weights):
    with pytest.raises(ValueError, match="finite and > 0"):
        compute_alpha(_y([84, 16]), weights)


def test_sequence_alpha_not_numeric():
    with pytest.raises(ValueError, match="Could not interpret alpha"):
        compute_alpha(_y([84, 16]), ["high", "low"])


# --------------------------------------------------------------------------- dicts


def test_dict_alpha_ordered_like_classes():
    np.testing.assert_array_equal(compute_alpha(_y([84, 16]), {1: 3.0, 0: 0.5}), [0.5, 3.0])
    y = _y([3, 2, 1], labels=["c", "a", "b"])
    alpha = compute_alpha(y, {"c": 1, "b": 2, "a": 4})
    assert alpha.dtype == np.float64
    np.testing.assert_array_equal(alpha, [4.0, 2.0, 1.0])
    np.testing.assert_array_equal(compute_alpha([7] * 3 + [3] * 5, {7: 2.0, 3: 1.0}), [1.0, 2.0])
    np.testing.assert_array_equal(
        compute_alpha(np.array([7, 3, 3]), {np.int64(7): 2.0, np.int64(3): 1.0}), [1.0, 2.0]
    )


def test_dict_alpha_unknown_label():
    with pytest.raises(ValueError, match="unknown label.*'dog'"):
        compute_alpha(["cat", "bird"] * 3, {"cat": 1.0, "bird": 1.0, "dog": 2.0})
    with pytest.raises(ValueError, match=r"unknown label\(s\) 9; the classes are 3, 7\."):
        compute_alpha(np.array([3, 7]), {3: 1.0, 7: 1.0, np.int64(9): 1.0})


def test_dict_alpha_missing_class():
    with pytest.raises(ValueError, match="no weight for class.*'bird'"):
        compute_alpha(["cat", "bird"] * 3, {"cat": 1.0})
    with pytest.raises(ValueError, match="no weight for class.*7"):
        compute_alpha([3, 7, 7], {3: 1.0})


@pytest.mark.parametrize("bad", [-1.0, float("nan")])
def test_dict_alpha_bad_weight(bad):
    with pytest.raises(ValueError, match="finite and > 0"):
        compute_alpha([0, 1, 1], {0: 1.0, 1: bad})


# --------------------------------------------------------------------------- strings


@pytest.mark.parametrize("name", ["balance", "Balanced", "", "focal", "class_balanced"])
def test_unknown_strategy(name):
    with pytest.raises(ValueError, match="Could not interpret alpha"):
        compute_alpha(_y([84, 16]), name)


@pytest.mark.parametrize("beta", [1.0, -0.1, 1.5, "0.9", None])
def test_effective_beta_out_of_range(beta):
    with pytest.raises(ValueError, match="beta must be in"):
        compute_alpha(_y([84, 16]), "effective", beta=beta)
    # beta only matters to "effective".
    compute_alpha(_y([84, 16]), "balanced", beta=beta)


# --------------------------------------------------------------------------- resolve / check


def test_resolve_alpha_none_and_counts():
    classes = np.array(["a", "b"])
    assert resolve_alpha(None, classes, [84, 16]) is None
    np.testing.assert_array_equal(
        resolve_alpha("balanced", classes, [84, 16]).round(3), [0.595, 3.125]
    )
    np.testing.assert_allclose(
        resolve_alpha("effective", classes, [84, 16], beta=0.9),
        _effective_reference([84, 16], 0.9),
    )
    np.testing.assert_array_equal(resolve_alpha(0.25, classes, [84, 16]), [0.75, 0.25])
    np.testing.assert_array_equal(resolve_alpha({"b": 2, "a": 1}, classes, [1, 1]), [1.0, 2.0])


def test_resolve_alpha_named_strategy_needs_every_class():
    with pytest.raises(ValueError, match=r"class\(es\) 'b' have none"):
        resolve_alpha("balanced", np.array(["a", "b", "c"]), [5, 0, 3])
    # An explicit weight vector does not need the counts.
    np.testing.assert_array_equal(
        resolve_alpha([1, 2, 3], np.array(["a", "b", "c"]), [5, 0, 3]), [1.0, 2.0, 3.0]
    )


def test_check_alpha_accepts_and_rejects():
    classes = np.array([0, 1])
    for ok in ("balanced", "effective", 0.3, [1, 2], {0: 1, 1: 2}):
        assert check_alpha(ok, classes) is None
    for bad in ("nope", 1.2, [1, 2, 3], [-1, 1], {0: 1}, {0: 1, 1: 1, 2: 1}):
        with pytest.raises(ValueError, match="alpha"):
            check_alpha(bad, classes)
