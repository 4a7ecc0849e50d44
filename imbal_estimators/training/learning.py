"""Say when training learns nothing: a vanishing loss, a flat loss, a one-class model.

A fit can end "successfully" with a model that learned nothing: focal loss with
``gamma=50`` is about ``1e-15`` for every image from the start (``(1 - p)^gamma``
vanishes), so no gradient moves the network; a loss that is exactly constant never
changed the weights; a kept model that predicts one class for every validation image
(of a validation split with enough images of every class) is a prior, not a classifier.
:func:`check_loss_learns` looks before training, :class:`LearningCheck` (a default
callback of the estimator, named ``"learning"``) after it; both warn, naming the
parameter to change.
"""

import math

import numpy as np
import torch
from skorch.callbacks import Callback

from ..data.labels import plain_value
from ..utils.warn import warn

#: a loss at a uniform guess below this fraction of cross-entropy's gives no gradient
VANISHING_LOSS = 1e-6
#: the one-class warning needs at least this many validation images of every class
MIN_VALID_PER_CLASS = 20
#: the losses whose ``gamma`` can make them vanish
FOCAL_LOSSES = ("focal", "cb_focal")


def uniform_guess_loss(criterion, n_classes):
    """The loss of a network that gives every class the same logit, over every class."""
    logits = torch.zeros(n_classes, n_classes)
    with torch.no_grad():
        return float(criterion(logits, torch.arange(n_classes)))


def check_loss_learns(loss, gamma, criterion, n_classes):
    """Warn, before training, when ``criterion`` vanishes at the start of training.

    Parameters
    ----------
    loss : str or nn.Module
        The estimator's ``loss`` parameter.
    gamma : float
        The estimator's ``gamma`` parameter.
    criterion : nn.Module
        The loss built from the estimator's parameters.
    n_classes : int
    """
    if not isinstance(loss, str):
        return  # a user's loss: its scale is the user's business
    value = uniform_guess_loss(criterion, n_classes)
    reference = math.log(n_classes)
    if not (math.isfinite(value) and value < VANISHING_LOSS * reference):
        return
    if loss in FOCAL_LOSSES and gamma > 0:
        cause = (
            f"loss={loss!r} with gamma={gamma:g} (the factor "
            f"(1 - p)^gamma vanishes); lower gamma (0 to 5 is the usual range)"
        )
    else:
        cause = f"loss={loss!r} with these parameters; check its parameters"
    warn(
        f"The loss of a uniform guess over {n_classes} classes is {value:.3g}, less than "
        f"{VANISHING_LOSS:g} of cross-entropy's {reference:.3g}: its gradients vanish and the "
        f"network will not learn. Cause: {cause}."
    )


class LearningCheck(Callback):
    """After training, warn when the fit learned nothing.

    Two cases, each a warning that names the parameter to change:

    * the training loss is exactly zero in every epoch, or exactly the same value in
      every epoch of two or more;
    * the kept epoch predicts one class for every validation image, while the
      validation split holds at least :data:`MIN_VALID_PER_CLASS` images of every
      class (smaller splits are left alone: a short fit on a few images often
      predicts the majority).

    ``callbacks__learning=None`` turns it off.
    """

    def on_train_begin(self, net, **kwargs):
        self.predicted_ = {}  # epoch -> classes predicted on the validation split
        self.valid_counts_ = None

    def on_epoch_begin(self, net, **kwargs):
        self.epoch_predictions_, self.epoch_targets_ = [], []

    def on_batch_end(self, net, batch=None, training=False, y_pred=None, **kwargs):
        if training or y_pred is None:
            return
        if not hasattr(self, "epoch_predictions_"):  # a loop that skipped on_epoch_begin
            self.on_epoch_begin(net)
        self.epoch_predictions_.append(y_pred.detach().argmax(dim=1).cpu())
        self.epoch_targets_.append(batch[1].detach().cpu())

    def on_epoch_end(self, net, **kwargs):
        predictions = getattr(self, "epoch_predictions_", None)
        if predictions:
            targets = torch.cat(self.epoch_targets_).numpy()
            n_classes = len(net.classes_)
            self.valid_counts_ = np.bincount(targets, minlength=n_classes).tolist()
            predicted = np.unique(torch.cat(predictions).numpy())
            self.predicted_[len(net.history)] = predicted.tolist()
        self.epoch_predictions_, self.epoch_targets_ = [], []

    def on_train_end(self, net, **kwargs):
        losses = [row["train_loss"] for row in net.history if "train_loss" in row]
        probe = dict(net.callbacks_).get("probe_head")  # the estimator's (estimator/finetune.py)
        if losses and all(value == 0 for value in losses) and not getattr(probe, "probed_", 0):
            # (a head started at the linear probe's solution may separate the training
            # rows already, to float32's zero loss: that head learned, before the epochs)
            self._warn(net, f"The training loss is exactly 0 in every epoch ({len(losses)})")
        elif len(losses) > 1 and len(set(losses)) == 1 and "head_penalty" not in net.history[-1]:
            # (a head solved along a penalty path has no lr to blame; its prediction check
            # below still applies)
            self._warn(
                net,
                f"The training loss is {losses[0]:.6g} in every epoch ({len(losses)}): the "
                "weights did not move",
            )
        if getattr(net, "threshold", None) is not None or getattr(net, "posthoc_tau", None):
            # the model decides by a threshold or an adjustment, not by the argmax seen
            # here: one argmax class (cross-entropy on rare positives) is no failure then
            return
        keeper = dict(net.callbacks_).get("keep_best")
        kept = getattr(keeper, "best_epoch_", None) or len(net.history)
        predicted = getattr(self, "predicted_", {}).get(kept)
        counts = getattr(self, "valid_counts_", None)
        if predicted is None or counts is None or len(predicted) != 1:
            return
        if min(counts) < MIN_VALID_PER_CLASS:
            return
        label = plain_value(net.classes_[predicted[0]])
        self._warn(
            net,
            f"The kept model (epoch {kept}) predicts class {label!r} for all {sum(counts)} "
            f"validation images ({MIN_VALID_PER_CLASS} or more of every class)",
        )

    @staticmethod
    def _warn(net, what):
        loss = net.loss
        if loss in FOCAL_LOSSES:
            hint = f"gamma={net.gamma:g} (lower it), lr={net.lr:g} or max_epochs={net.max_epochs}"
        else:
            hint = f"lr={net.lr:g}, max_epochs={net.max_epochs} or loss={loss!r}"
            if net.alpha is None and net.sampler is None:
                hint += " (with alpha or a sampler for the rare classes)"
        warn(f"{what}: the network learned nothing useful. Check {hint}.")
