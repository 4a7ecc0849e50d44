"""How sure a cross-validated comparison can be: paired tests and rank agreement.

The folds of k-fold cross-validation share most of their training images, so the
per-fold differences of two configurations are correlated and the plain paired
t-test is far too confident. The corrected resampled t-test (Nadeau and Bengio
2003, "Inference for the generalization error", Machine Learning 52) inflates the
variance of the mean difference by the ratio of test to training images:

    t = mean(d) / sqrt((1 / J + n_test / n_train) * var(d)),   J - 1 degrees of freedom,

over the ``J = r * k`` folds of ``r`` repeats of ``k``-fold CV (Bouckaert and
Frank 2004 use it for repeated CV).
"""

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class PairedTest:
    """The corrected resampled t-test of ``scores - baseline`` over paired folds.

    Attributes
    ----------
    mean : float
        Mean per-fold difference.
    std : float
        Sample standard deviation of the per-fold differences.
    n_folds : int
    wins : int
        Folds where ``scores`` is higher.
    t : float
    p_value : float
        Two-sided.
    """

    mean: float
    std: float
    n_folds: int
    wins: int
    t: float
    p_value: float

    def significant(self, level=0.05):
        """Whether the difference is positive and its p-value below ``level``."""
        return self.mean > 0 and self.p_value < level


def corrected_resampled_ttest(scores, baseline, n_train, n_test):
    """Nadeau and Bengio's corrected resampled t-test on paired fold scores.

    Parameters
    ----------
    scores, baseline : array-like of shape (n_folds,)
        Two configurations scored on the same folds (all repeats).
    n_train, n_test : float
        Training and test images per fold (their mean over folds).

    Returns
    -------
    PairedTest
    """
    diff = np.asarray(scores, dtype=float) - np.asarray(baseline, dtype=float)
    n = len(diff)
    if n < 2:
        raise ValueError(f"A paired test needs at least 2 folds; got {n}.")
    mean = float(diff.mean())
    var = float(diff.var(ddof=1))
    wins = int(np.sum(diff > 0))
    scale = math.sqrt((1.0 / n + n_test / n_train) * var)
    if scale == 0.0 or not np.isfinite(scale):
        # identical differences in every fold: no spread to measure the noise with
        t = 0.0 if abs(mean) < 1e-12 else math.copysign(math.inf, mean)
    else:
        t = mean / scale
    p = 1.0 if t == 0.0 else float(2 * stats.t.sf(abs(t), df=n - 1))
    return PairedTest(mean, float(np.sqrt(var)), n, wins, float(t), p)


def spearman(a, b):
    """Spearman's rank correlation of two score lists (NaN when either is constant)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(stats.spearmanr(a, b).statistic)


def holm(p_values):
    """Holm's step-down adjusted p-values (same order as ``p_values``).

    The family-wise error over all the hypotheses stays below ``level`` when
    every hypothesis with an adjusted p-value below ``level`` is rejected
    (Holm 1979, "A simple sequentially rejective multiple test procedure").
    """
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted


def max_t_permutation(diffs, n_train, n_test, best, n_draws=2000, seed=0):
    """Max-statistic sign-flip p-value of row ``best``'s lead, over every row compared.

    Parameters
    ----------
    diffs : array of shape (n_rows, n_folds)
        Each row's per-fold difference to one simple row.
    n_train, n_test : float
        As for :func:`corrected_resampled_ttest`.
    best : int
        The row whose lead is tested.
    n_draws : int, default=2000
        Random sign patterns when the folds have more than 2 ** 12 of them
        (otherwise every pattern).

    Returns
    -------
    float
        The share of sign patterns (flipping a fold's differences for every row
        at once, so the rows' correlation is kept) whose largest corrected t is
        at least the observed t of ``best``: the selection of the best of many
        rows is part of the null distribution (Westfall and Young 1993).
    """
    diffs = np.asarray(diffs, dtype=float)
    n_folds = diffs.shape[1]
    if n_folds <= 12:
        grid = np.array(np.meshgrid(*[[1.0, -1.0]] * n_folds, indexing="ij"))
        signs = grid.reshape(n_folds, -1).T
    else:
        rng = np.random.default_rng(seed)
        signs = rng.choice([1.0, -1.0], size=(n_draws, n_folds))
        signs[0] = 1.0
    observed = _corrected_t(diffs[best][None, :], n_train, n_test)[0]
    if not np.isfinite(observed) or observed <= 0:
        return 1.0
    largest = np.array([_corrected_t(diffs * s, n_train, n_test).max() for s in signs])
    return float(np.mean(largest >= observed - 1e-12))


def _corrected_t(diffs, n_train, n_test):
    """The corrected resampled t of each row of ``diffs`` (0 where the spread is 0 and
    the mean is 0; +-inf where only the spread is 0)."""
    n = diffs.shape[1]
    mean = diffs.mean(axis=1)
    scale = np.sqrt((1.0 / n + n_test / n_train) * diffs.var(axis=1, ddof=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(scale > 0, mean / np.where(scale > 0, scale, 1.0), np.sign(mean) * np.inf)
    return np.nan_to_num(t, nan=0.0)
