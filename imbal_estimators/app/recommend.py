"""What a comparison recommends, and only what its folds can carry.

The best row by mean score is compared on paired folds with the two simplest
configurations: plain cross-entropy, then cross-entropy with a tuned threshold
(binary; with a post-hoc logit adjustment for multi-class problems), with the
corrected resampled t-test of :mod:`~imbal_estimators.app.stats`. The
recommendation is the simplest configuration that the best row does not beat
significantly (p < 0.05): cross-entropy if the best row is within the noise of
it, else cross-entropy with the tuned decision if the best row is within the
noise of that, else the best row.

The best row is the maximum of many, so its lead over cross-entropy is biased
upwards; the test of that lead is therefore, if anything, too generous, and a
recommendation of cross-entropy means the data showed nothing better.
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
        The simple rows, simplest first.
    """

    row: object
    best: object
    verdict: str
    tests: dict
    simple: tuple


def simple_rows(comparison):
    """Plain cross-entropy, then cross-entropy with the tuned decision (where scored)."""
    names = [BASELINE, BASELINE + TUNED_SUFFIX, BASELINE + POSTHOC_SUFFIX]
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
    for row in simple:
        if row is best:
            return Recommendation(best, best, "supported", tests, simple)
        if not tests[row.name].significant(level):
            return Recommendation(row, best, "simplest_within_noise", tests, simple)
    return Recommendation(best, best, "supported", tests, simple)
