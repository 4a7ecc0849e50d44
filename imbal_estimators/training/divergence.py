"""Stop a fit whose loss blows up or whose loss or weights are no longer finite.

A learning rate far too high (``optimizer=torch.optim.SGD, lr=1e12``) sends the loss to
infinity and the weights to NaN within a few batches; without a check the fit ends
"successfully" and every prediction is NaN. A blow-up can also stay finite (AdamW with
``lr=10``: a validation loss of 5e5 in the first epoch, then a network that outputs
one class), so an epoch whose training or validation loss is :data:`BLOW_UP` times the
loss at the start diverged too. :class:`DivergenceCheck` is one of the
estimator's default callbacks (named ``"divergence"``).
"""

import math
import warnings

import torch
from skorch.callbacks import Callback

DIVERGENCE_ACTIONS = ("raise", "restore")
#: an epoch's loss this many times the loss at the start is a (finite) divergence
BLOW_UP = 1000.0


class TrainingDivergedError(FloatingPointError):
    """The training loss, the validation loss or the weights became NaN or infinite, or a
    loss grew :data:`BLOW_UP` times over the loss at the start."""


class DivergenceCheck(Callback):
    """Stop training when the loss blows up or the loss or weights stop being finite.

    Checks the loss of every training batch, and after each epoch the validation
    loss and the module's parameters; and that neither epoch loss is over
    :data:`BLOW_UP` times the loss at the start (the first training batch's, or
    ``log(n_classes)`` when that is larger).

    Parameters
    ----------
    action : {"raise", "restore"}, default="raise"
        ``"raise"``: stop with :class:`TrainingDivergedError`, naming the epoch,
        the batch and the learning rate. ``"restore"``: stop training, drop the
        diverged epoch from the history, keep the best epoch before it (the
        estimator's best-epoch keeper restores it) and warn; when no earlier
        epoch was scored there is nothing to keep and it raises. Set it with
        ``ImageImbalanceClassifier(callbacks__divergence__action="restore")``;
        ``callbacks__divergence=None`` turns the check off.
    """

    def __init__(self, action="raise"):
        self.action = action

    def initialize(self):
        if self.action not in DIVERGENCE_ACTIONS:
            raise ValueError(
                f"The 'action' parameter of DivergenceCheck must be one of "
                f"{list(DIVERGENCE_ACTIONS)}. Got {self.action!r} instead."
            )
        return self

    def on_batch_end(self, net, batch=None, training=False, loss=None, **kwargs):
        if not training or loss is None:
            return
        value = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
        if not math.isfinite(value):
            self._diverged(net, f"the training loss is {value}", _train_batches(net.history))

    def on_epoch_end(self, net, **kwargs):
        row = net.history[-1]
        valid_loss = row.get("valid_loss")
        if valid_loss is not None and not math.isfinite(valid_loss):
            self._diverged(net, f"the validation loss is {valid_loss}", _train_batches(net.history))
        start = _start_loss(net.history, getattr(net, "classes_", None))
        for key, name in (("train_loss", "training"), ("valid_loss", "validation")):
            value = row.get(key)
            if value is not None and start is not None and value > BLOW_UP * start:
                self._diverged(
                    net,
                    f"the {name} loss is {value:.3g}, over {BLOW_UP:g} times the loss at the "
                    f"start ({start:.3g})",
                    _train_batches(net.history),
                )
        for name, param in net.module_.named_parameters():
            if param.requires_grad and not bool(torch.isfinite(param.detach()).all()):
                self._diverged(
                    net, f"the weights of {name!r} are not finite", _train_batches(net.history)
                )

    def _diverged(self, net, what, batch):
        from .head_solver import solving_path  # it imports this module's siblings

        epoch = len(net.history)
        solved = solving_path(net)  # not a frozen head that partial_fit trains by epochs
        if solved:  # no lr, no optimizer: the head is solved along a path of penalties
            message = (
                f"Training diverged: {what} at point {epoch} of the frozen head's penalty "
                "path (head_solver='lbfgs': lr and the optimizer do not apply)."
            )
        else:
            lrs = sorted({float(group["lr"]) for group in net.optimizer_.param_groups})
            lr = ", ".join(f"{value:g}" for value in lrs)
            optimizer = type(net.optimizer_).__name__
            message = (
                f"Training diverged: {what} at epoch {epoch}, batch {batch} "
                f"(lr={lr}, optimizer {optimizer})."
            )
        keeper = dict(net.callbacks_).get("keep_best")
        kept = getattr(keeper, "best_epoch_", None)
        if self.action == "restore" and kept is not None:
            del net.history[-1]  # the diverged epoch did not finish
            warnings.warn(
                f"{message} Stopped training and kept epoch {kept}, the best before it "
                '(callbacks__divergence__action="restore").',
                UserWarning,
                stacklevel=2,
            )
            raise KeyboardInterrupt  # skorch's way to end training early (see EarlyStopping)
        if self.action == "restore":
            hint = " No earlier epoch was scored on the validation split, so there is none to keep."
        elif kept is not None:
            hint = (
                f' Or pass callbacks__divergence__action="restore" to keep epoch {kept}, the '
                "best before it."
            )
        else:  # nothing scored before it (no validation split, or the first epoch)
            hint = ""
        advice = (
            "Check the images and the loss (one that is not finite for some rows, or a "
            "custom criterion), or pass head_solver=None to train the head by epochs of lr."
            if solved
            else "Lower lr (or use an adaptive optimizer such as AdamW), check the data and "
            "the loss, or clip gradients."
        )
        raise TrainingDivergedError(f"{message} {advice}{hint}")


def _start_loss(history, classes):
    """What a loss far above counts as a blow-up from: the larger of the first training
    batch's loss and cross-entropy's loss of a uniform guess, ``log(n_classes)``."""
    batches = history[0].get("batches", []) if len(history) else []
    first = next((b["train_loss"] for b in batches if "train_loss" in b), None)
    chance = math.log(len(classes)) if classes is not None and len(classes) > 1 else 0.0
    if first is None or not math.isfinite(first):
        return chance or None
    return max(first, chance)


def _train_batches(history):
    return sum("train_loss" in batch for batch in history[-1]["batches"])
