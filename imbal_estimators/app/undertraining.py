"""Whether a comparison's models were still learning when their training stopped.

A model whose kept epoch is its last, while its validation loss was still
falling, stopped before it converged. Compared among themselves, such models
rank what learns fastest, not what works best once trained: anything that
pushes the rare class up early (re-weighting, over-sampling, a prior-shifting
loss) looks like an imbalance fix. When most fits of the final stage stopped
that way, or a budget cut the epochs so far that one epoch is all there was,
:func:`check_undertraining` says so, and the recommendation claims no winner
(:mod:`~imbal_estimators.app.recommend`).

Frozen-backbone heads solved to convergence (``head_solver="lbfgs"``) are
never under-trained in this sense: their "epochs" are points of a penalty path.
"""

import re
from dataclasses import dataclass

MOST = 0.5  # under-trained when more than this share of the fits was still learning


@dataclass(frozen=True)
class UnderTraining:
    """The evidence that a comparison's models are under-trained.

    Attributes
    ----------
    n_fits : int
        Fits of the final stage looked at (first repeat).
    n_learning : int
        Of those, fits that kept their last epoch while the validation loss
        still fell (or, after a budget cut to one epoch, trained one epoch).
    max_epochs : int
        Epochs of each fit.
    requested_epochs : int or None
        The epochs asked for, when a budget cut them to ``max_epochs``.
    lr : float or None
    """

    n_fits: int
    n_learning: int
    max_epochs: int
    requested_epochs: int | None = None
    lr: float | None = None

    def message(self):
        """What was found and what to change, in one paragraph (CLI options)."""
        if self.requested_epochs is not None:
            cause = (
                f"the budget cut the epochs from {self.requested_epochs} to {self.max_epochs}, "
                f"and {self.n_learning} of {self.n_fits} fits were still learning when they "
                "stopped"
            )
        else:
            cause = (
                f"{self.n_learning} of {self.n_fits} fits kept their last epoch "
                f"({self.max_epochs}) while the validation loss was still falling"
            )
        more = max(2 * self.max_epochs, (self.requested_epochs or 0))
        changes = [f"--max-epochs {more}"]
        if self.lr is not None and self.lr < 1e-3:
            changes.append(f"a higher --lr (e.g. {min(self.lr * 10, 1e-3):g}; now {self.lr:g})")
        if self.requested_epochs is not None:
            changes.append("a larger --budget")
        changes.append(
            "or --freeze-backbone with pretrained weights (heads trained to convergence)"
        )
        return (
            f"The models are under-trained: {cause}. A comparison of models that stopped "
            "before converging ranks what learns fastest, so no winner is claimed from them. "
            "To get an answer, rerun with " + ", ".join(changes) + "."
        )


def check_undertraining(comparison):
    """The :class:`UnderTraining` of ``comparison``'s final stage, or None when its models
    had stopped learning (or were solved to convergence)."""
    stage = comparison.final
    params = comparison.estimator_params
    if stage.frozen and params.get("head_solver", "lbfgs") == "lbfgs":
        return None
    requested = budget_cut_epochs(comparison.plan)
    fits = [fit for folds in stage.histories.values() for fit in folds]
    learning = [fit for fit in fits if _still_learning(fit, budget_cut=requested is not None)]
    if not fits or len(learning) <= MOST * len(fits):
        return None
    epochs = max(len(fit.get("epochs", ())) for fit in fits)
    return UnderTraining(len(fits), len(learning), epochs, requested, params.get("lr", 1e-4))


def _still_learning(fit, budget_cut):
    epochs = fit.get("epochs") or []
    if not epochs or fit.get("best_epoch") != len(epochs):
        return False
    if len(epochs) == 1:
        return budget_cut  # one epoch shows no curve; after a budget cut it is too few
    losses = [e.get("valid_loss") for e in epochs]
    if any(loss is None for loss in losses):
        return False
    return losses[-1] < min(losses[:-1])


def budget_cut_epochs(plan):
    """The epochs asked for, when the budget lowered them (None otherwise)."""
    for entry in getattr(plan, "dropped", ()) or ():
        found = re.search(r"epochs\D*(\d+)\s*->\s*(\d+)", str(entry))
        if found and int(found.group(2)) < int(found.group(1)):
            return int(found.group(1))
    return None
