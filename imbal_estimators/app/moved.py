"""What moved the score: the answer of a comparison in words.

Three questions, each answered by a paired difference over the same folds:

1. the decision rule: cross-entropy with a tuned threshold (binary) or a
   post-hoc logit adjustment (multi-class) against cross-entropy at argmax;
2. the loss: the best row with another loss against cross-entropy with the
   same decision rule;
3. re-weighting or resampling: the best cross-entropy row with class weights or
   a sampler against cross-entropy with the same decision rule.

Each difference comes with its spread over the folds and the corrected
resampled t-test of :mod:`~imbal_estimators.app.stats`, and the text says which
differences the folds cannot tell apart. This explains the recommendation
(:mod:`~imbal_estimators.app.recommend`); it does not change it.
"""

from dataclasses import dataclass

from .methods import BASELINE
from .stats import corrected_resampled_ttest

LEVEL = 0.05


@dataclass(frozen=True)
class Move:
    """One paired difference: ``row`` against ``against``."""

    question: str
    row: object
    against: object
    test: object

    @property
    def clear(self):
        """Whether the folds tell the two apart (p < 0.05, either direction)."""
        return self.test.p_value < LEVEL


def _family(row):
    params = row.configuration.params
    loss = params.get("loss", BASELINE)
    if loss != BASELINE and params.get("sampler") is None:
        return "loss"
    if loss == BASELINE and (params.get("alpha") is not None or params.get("sampler") is not None):
        return "reweighting"
    return None


def moves(comparison):
    """The :class:`Move` s of ``comparison``'s final stage (those it has rows for)."""
    metric = comparison.scoring
    rows = comparison.rows
    ce = {row.rule: row for row in rows if row.configuration.name == BASELINE}
    argmax = ce.get("argmax")
    n_train, n_test = comparison.fold_sizes
    if comparison.n_folds < 2 or argmax is None:
        return []

    def move(question, row, against):
        test = corrected_resampled_ttest(
            row.fold_scores[metric], against.fold_scores[metric], n_train, n_test
        )
        return Move(question, row, against, test)

    found = []
    rule = next((r for r in ce.values() if r is not argmax), None)
    if rule is not None:
        found.append(move("rule", rule, argmax))
    for family in ("loss", "reweighting"):
        members = [row for row in rows if _family(row) == family]
        if not members:
            continue
        best = max(members, key=lambda row: row.mean(metric))  # rows are ranked: first wins ties
        against = ce.get(best.rule) or rule or argmax
        found.append(move(family, best, against))
    return found


def _difference(move):
    test = move.test
    p = "p < 0.01" if test.p_value < 0.01 else f"p = {test.p_value:.2f}"
    return f"{test.mean:+.3f} ± {test.std:.3f} (higher in {test.wins} of {test.n_folds} folds, {p})"


def _verdict(move):
    if move.clear:
        return "the folds tell them apart" if move.test.mean > 0 else "a clear loss"
    return "within the noise (the folds cannot tell them apart)"


def what_moved(comparison):
    """The "what moved the score" paragraph of ``comparison``, or "" with nothing to say."""
    found = moves(comparison)
    if not found:
        return ""
    metric = comparison.scoring.replace("_", " ")
    metric = "F1" if metric == "f1" else metric
    text = [
        f"What moved the score ({metric}; paired differences, mean ± sd over the same "
        f"{comparison.n_folds} folds, corrected resampled t-test):"
    ]
    for found_move in found:
        row, against = found_move.row, found_move.against
        if found_move.question == "rule":
            what = "a tuned threshold" if row.rule == "tuned threshold" else "a post-hoc adjustment"
            text.append(
                f"{what[0].upper()}{what[1:]} moved cross-entropy by {_difference(found_move)} "
                f"over argmax: {_verdict(found_move)}."
            )
        else:
            kind = "loss" if found_move.question == "loss" else "re-weighting or resampling"
            text.append(
                f"The best {kind}, {row.name}, moved it by {_difference(found_move)} against "
                f"{against.name}: {_verdict(found_move)}."
            )
    unclear = [m for m in found if not m.clear]
    if unclear and len(unclear) == len(found):
        text.append("None of these differences is larger than the folds' noise.")
    return " ".join(text)
