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
upwards. The bar it must clear accounts for that selection (``selection``):
``"holm"`` (the default) adjusts the p-values of every row compared with the
simple row by Holm's step-down procedure, the family being every non-simple
row of the comparison (of the screen too, which chose the rows that were
confirmed); ``"maxt"`` is a max-statistic sign-flip permutation test over the
same rows; ``None`` tests the best row alone (version 0.2). Which one kept
held-out F1 highest is measured in ``docs/quality.md``.

With a frozen screen before a fine-tuned confirm (a pretrained network), each
stage's own recommendation is made, and the frozen one replaces the fine-tuned one
where it is better on the same folds beyond the noise (:class:`StageContest`):
where fine-tuning the body did not pay.

When most fits were still learning when they stopped
(:mod:`~imbal_estimators.app.undertraining`), no winner is claimed: the
verdict is ``"undertrained"`` and the recommendation is the first simple row.

Why the tuned threshold comes first for binary problems (``docs/quality.md``,
plain cross-entropy, held-out F1 on three sets, 30 paired fits each): with the
epoch kept by average precision (compare's monitor for F1) a tuned threshold
scored 0.703 / 0.852 / 0.831 against 0.644 / 0.827 / 0.806 for argmax after
``monitor="f1"``, and the argmax of an epoch kept by average precision can
predict only the common class. Moving the threshold is the cheapest fix of F1
under imbalance; it changes no weight of the network.
"""

from dataclasses import dataclass, replace

import numpy as np

from .methods import BASELINE
from .stats import corrected_resampled_ttest, holm, max_t_permutation
from .undertraining import check_undertraining

LEVEL = 0.05
SELECTION = "holm"
SELECTIONS = ("holm", "maxt", None)
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
    verdict : {"baseline_best", "supported", "simplest_within_noise", "undertrained"}
    tests : dict of str to PairedTest
        The best row against each simple row it was compared with, by row name.
    simple : tuple of RowResult
        The simple rows, in the order they are tried (:func:`simple_rows`).
    adjusted : dict of str to float
        The selection-aware p-value of the best row's lead over each simple row
        (the test's own p-value with ``selection=None``).
    undertraining : UnderTraining or None
        Why no winner is claimed, with the verdict ``"undertrained"``.
    selection : {"holm", "maxt"} or None
    contest : StageContest or None
        With a frozen screen before a fine-tuned confirm: both stages' recommendations
        on the same folds; this one is the winner's.
    """

    row: object
    best: object
    verdict: str
    tests: dict
    simple: tuple
    adjusted: dict | None = None
    undertraining: object = None
    selection: str | None = SELECTION
    contest: object = None


@dataclass(frozen=True)
class StageContest:
    """The frozen screen's recommendation against the fine-tuned confirm's, on the same folds.

    Attributes
    ----------
    frozen, finetuned : RowResult
        Each stage's own recommendation (the screen's on frozen features).
    test : PairedTest
        ``frozen`` minus ``finetuned`` over the folds.
    finetuned_recommendation : Recommendation
        The confirm's own, with its verdict (``"undertrained"`` included).
    frozen_won : bool
        Whether the frozen answer beat the fine-tuned one beyond the noise.
    """

    frozen: object
    finetuned: object
    test: object
    finetuned_recommendation: object
    frozen_won: bool = False


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


def recommend(comparison, level=LEVEL, selection=SELECTION):
    """The :class:`Recommendation` of ``comparison`` (its final-stage rows).

    Parameters
    ----------
    comparison : Comparison
    level : float, default=0.05
    selection : {"holm", "maxt"} or None, default="holm"
        How the best row's lead accounts for its being the best of many rows.
    """
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}; got {selection!r}.")
    return _against_the_screen(comparison, _recommend_stage(comparison, level, selection), level)


def _recommend_stage(comparison, level, selection):
    """The :class:`Recommendation` among the final stage's rows alone."""
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
    adjusted = {
        name: selection_p_value(comparison, best, row, test, selection)
        for row in simple
        if (name := row.name) in tests and (test := tests[name])
    }
    under = check_undertraining(comparison)
    if under is not None:
        return Recommendation(
            simple[0], best, "undertrained", tests, simple, adjusted, under, selection=selection
        )
    if best is simple[0]:
        return Recommendation(
            best, best, "baseline_best", tests, simple, adjusted, selection=selection
        )
    beaten_mean = -float("inf")  # the best mean among the simple rows the best row beats
    for row in simple:
        if row is best:
            return Recommendation(
                best, best, "supported", tests, simple, adjusted, selection=selection
            )
        if row.mean(metric) <= beaten_mean:
            # no alternative "within the noise": it is no better than a simple row the best
            # row beats, and only its larger spread hides the gap (a collapsed argmax fold)
            continue
        if not (tests[row.name].mean > 0 and adjusted[row.name] < level):
            return Recommendation(
                row, best, "simplest_within_noise", tests, simple, adjusted, selection=selection
            )
        beaten_mean = max(beaten_mean, row.mean(metric))
    return Recommendation(best, best, "supported", tests, simple, adjusted, selection=selection)


def _against_the_screen(comparison, finetuned, level=LEVEL):
    """The confirm's recommendation, or the screen's where it is better beyond the noise.

    With a pretrained network ``compare`` screens every configuration on frozen
    features, then fine-tunes the screen's top rows and CE. Where fine-tuning the
    body does not pay (too few steps at a low learning rate, few images) the frozen
    rows score far higher on the very folds the fine-tuned ones were scored on, and
    a model refitted from the confirm alone is the worse answer. Each stage makes its
    own recommendation (with its selection-aware bar); the frozen one replaces the
    fine-tuned one only when it is higher on the paired folds with p < ``level``
    (corrected resampled t-test). A smaller lead is not enough: a fold's fine-tuned
    model trains on (k-1)/k of the images the refit trains on, so while fine-tuning
    is still learning its CV score is pessimistic (measured in ``docs/quality.md``:
    at lr=1e-3 the fine-tuned pick scored CV F1 0.32 against 0.63 frozen, p = 0.12,
    and 0.87 held out against 0.47).
    """
    screen = comparison.screen
    if screen is None or comparison.final.frozen:
        return finetuned
    metric = comparison.scoring
    frozen = _recommend_stage(replace(comparison, stages=[screen]), level, finetuned.selection)
    a, b = frozen.row.fold_scores[metric], finetuned.row.fold_scores[metric]
    if len(a) != len(b) or len(a) < 2:  # a stage with failed folds: no paired contest
        return finetuned
    test = corrected_resampled_ttest(a, b, *comparison.fold_sizes)
    won = bool(test.mean > 0 and test.p_value < level)
    contest = StageContest(frozen.row, finetuned.row, test, finetuned, won)
    return replace(frozen if contest.frozen_won else finetuned, contest=contest)


def selection_p_value(comparison, best, simple, test, selection=SELECTION):
    """The p-value of ``best``'s lead over ``simple``, adjusted for picking the best row.

    The family is every row of the final stage that is not a simple row, and
    counts, as untested hypotheses (p = 1), the screen's rows that stage 2 did
    not confirm: they were compared too, on the same folds, before the
    confirmed rows were chosen.
    """
    if selection is None:
        return test.p_value
    metric = comparison.scoring
    simple_names = {row.name for row in simple_rows(comparison)}
    family = [row for row in comparison.rows if row.name not in simple_names]
    if best not in family:
        return test.p_value
    n_train, n_test = comparison.fold_sizes
    untested = 0
    screen = getattr(comparison, "screen", None)
    if screen is not None:
        confirmed = {row.name for row in family}
        untested = sum(1 for row in screen.rows if row.name not in simple_names | confirmed)
    if selection == "maxt":
        diffs = [
            np.asarray(row.fold_scores[metric], float)
            - np.asarray(simple.fold_scores[metric], float)
            for row in family
        ]
        p = max_t_permutation(diffs, n_train, n_test, family.index(best))
        return min(1.0, p * (1 + untested / max(len(family), 1)))
    p_values = [
        corrected_resampled_ttest(
            row.fold_scores[metric], simple.fold_scores[metric], n_train, n_test
        ).p_value
        if row.mean(metric) > simple.mean(metric)
        else 1.0
        for row in family
    ]
    return float(holm(p_values + [1.0] * untested)[family.index(best)])


def selection_note(recommendation, simple_name):
    """The clause giving the selection-aware p-value of the lead over ``simple_name``
    (empty when it equals the test's own)."""
    adjusted = (recommendation.adjusted or {}).get(simple_name)
    test = recommendation.tests.get(simple_name)
    if adjusted is None or test is None or abs(adjusted - test.p_value) < 5e-4:
        return ""
    how = {"holm": "Holm", "maxt": "max-t permutation"}[recommendation.selection]
    return f"; adjusted for picking the best of the rows compared ({how}), p = {adjusted:.3f}"
