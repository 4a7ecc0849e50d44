"""What a comparison recommends, and only what its folds can carry.

The best row by mean score is compared on paired folds with the simplest
configurations, plain cross-entropy with compare's default decision first:
for binary problems cross-entropy with a tuned threshold, then plain
cross-entropy at argmax; for multi-class problems plain cross-entropy, then
with a post-hoc logit adjustment. The test is the corrected resampled t-test
of :mod:`~imbal_estimators.app.stats`. The recommendation is the first simple
configuration that the best row does not beat significantly (p < 0.05), else
the best row. A simple row whose mean is no higher than that of a simple row
the best row already beats is skipped: its wider spread, not its score, keeps
it "within the noise" (measured: plain CE at argmax, one fold collapsed to F1
0.18 on a held-out texture set, was recommended that way over a supported row).

The best row is the maximum of many, so its lead over cross-entropy is biased
upwards; the test of that lead is therefore, if anything, too generous, and a
recommendation of cross-entropy means the data showed nothing better.

Why the tuned threshold comes first for binary problems (``docs/quality.md``,
plain cross-entropy, held-out F1 on three sets, 30 paired fits each): with the
epoch kept by average precision (compare's monitor for F1) a tuned threshold
scored 0.703 / 0.852 / 0.831 against 0.644 / 0.827 / 0.806 for argmax after
``monitor="f1"``, and the argmax of an epoch kept by average precision can
predict only the common class. Moving the threshold is the cheapest fix of F1
under imbalance; it changes no weight of the network.
"""

from dataclasses import dataclass

from .methods import BASELINE
from .stats import corrected_resampled_ttest

LEVEL = 0.05
TUNED_SUFFIX = " + tuned threshold"
POSTHOC_SUFFIX = " + post-hoc adjustment"


@dataclass(frozen=True)
class Recommendation:
    """The recommended row and why.

    Attributes
    ----------
    row : RowResult
        What ``compare`` refits and saves.
    best : RowResult
        The best row by mean score.
    verdict : {"baseline_best", "supported", "simplest_within_noise"}
    tests : dict of str to PairedTest
        The best row against each simple row it was compared with, by row name.
    simple : tuple of RowResult
        The simple rows, in the order they are tried (:func:`simple_rows`).
    """

    row: object
    best: object
    verdict: str
    tests: dict
    simple: tuple


def simple_rows(comparison):
    """The simple rows, in the order the recommendation tries them (where scored).

    Binary: cross-entropy with a tuned threshold, then at argmax. Multi-class:
    cross-entropy, then with the post-hoc logit adjustment.
    """
    if len(comparison.classes) == 2:
        names = [BASELINE + TUNED_SUFFIX, BASELINE]
    else:
        names = [BASELINE, BASELINE + POSTHOC_SUFFIX]
    rows = [comparison.row_or_none(name) for name in names]
    return tuple(row for row in rows if row is not None)


def recommend(comparison, level=LEVEL):
    """The :class:`Recommendation` of ``comparison`` (its final-stage rows)."""
    metric = comparison.scoring
    best = comparison.rows[0]
    simple = simple_rows(comparison)
    n_train, n_test = comparison.fold_sizes
    tests = {
        row.name: corrected_resampled_ttest(
            best.fold_scores[metric], row.fold_scores[metric], n_train, n_test
        )
        for row in simple
        if row is not best
    }
    if best is simple[0]:
        return Recommendation(best, best, "baseline_best", tests, simple)
    beaten_mean = -float("inf")  # the best mean among the simple rows the best row beats
    for row in simple:
        if row is best:
            return Recommendation(best, best, "supported", tests, simple)
        if row.mean(metric) <= beaten_mean:
            # no alternative "within the noise": it is no better than a simple row the best
            # row beats, and only its larger spread hides the gap (a collapsed argmax fold)
            continue
        if not tests[row.name].significant(level):
            return Recommendation(row, best, "simplest_within_noise", tests, simple)
        beaten_mean = max(beaten_mean, row.mean(metric))
    return Recommendation(best, best, "supported", tests, simple)
