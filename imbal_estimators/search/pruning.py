"""Per-epoch pruning: a skorch callback that reports to an Optuna trial.

It lives with the search, so that the training core never imports Optuna.
"""

import optuna
from skorch.callbacks import Callback


class TrialPruning(Callback):
    """Report the monitored validation score to an Optuna trial after every epoch.

    Raises ``optuna.TrialPruned`` when the trial's pruner says the trial is
    hopeless. Used by :class:`~imbal_estimators.ImbalanceSearchCV`, which adds
    one to each fold's estimator.

    Parameters
    ----------
    trial : optuna.Trial
    monitor : str
        History key, e.g. ``"valid_balanced_accuracy"``; epochs without it (no
        validation split) report nothing.
    lower_is_better : bool, default=False
        Report ``-score`` (a study maximizes).
    step_offset : int, default=0
        Added to the epoch index (0-based), so that each fold reports its own
        steps: ``fold * max_epochs + epoch``.
    """

    def __init__(self, trial, monitor, lower_is_better=False, step_offset=0):
        self.trial = trial
        self.monitor = monitor
        self.lower_is_better = lower_is_better
        self.step_offset = step_offset

    def on_epoch_end(self, net, **kwargs):
        self._report(net.history[-1], len(net.history))

    def replay(self, net):
        """Report each epoch of ``net``'s finished fit in order, as ``on_epoch_end`` would
        have during it, pruning at the same epoch (for folds that trained together in
        :func:`~imbal_estimators.training.heads.fit_many`)."""
        for epoch in range(1, len(net.history) + 1):
            self._report(net.history[epoch - 1], epoch)

    def _report(self, row, epoch):
        score = row.get(self.monitor)
        if score is None:
            return
        step = self.step_offset + epoch - 1
        self.trial.report(-float(score) if self.lower_is_better else float(score), step)
        if self.trial.should_prune():
            raise optuna.TrialPruned(
                f"{self.monitor}={float(score):.4g} at epoch {epoch} (step {step})"
            )
