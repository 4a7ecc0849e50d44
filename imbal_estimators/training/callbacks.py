"""skorch callbacks for what changes during training.

* :class:`EpochResampler` draws the training rows anew before every epoch.
* :class:`ValidationScore` records an imbalance-aware metric on the internal
  validation split, from the predictions skorch already computed.
* :class:`KeepBestModel` keeps the weights of the best epoch and restores them
  when training ends (like skorch's ``Checkpoint`` + ``LoadInitState``, in memory).
* :class:`DeferredReweighting` switches the class weights on at epoch ``drw_epoch``.
* :class:`EpochLossScoring` and :class:`EpochLog` are skorch's ``PassthroughScoring``
  and ``PrintLog`` with less work per epoch (same records, same output).
"""

import math
import warnings

import numpy as np
import torch
from skorch.callbacks import Callback, PassthroughScoring, PrintLog

from ..decision.metrics import score
from ..imbalance.samplers import needs_features, resample_features, resample_indices
from .seeding import epoch_seed


class EpochResampler(Callback):
    """Before each epoch, let the estimator's sampler draw the training rows.

    Records the class counts of the draw as ``train_class_counts`` in the
    history (ordered like ``classes_``). The fitted sampler of the last draw is
    ``sampler_`` (None until a draw), which ``fit`` reads when training ends.

    An epoch begun with ``redraw=False`` keeps the last draw: a frozen head's
    penalty path (:mod:`~imbal_estimators.training.head_solver`) draws once, at
    its first point, and compares its penalties on that one draw.
    """

    def on_train_begin(self, net, **kwargs):
        self.sampler_ = None

    def on_epoch_begin(self, net, dataset_train=None, redraw=True, **kwargs):
        if net.sampler is None or dataset_train is None:
            return
        if not redraw and self.sampler_ is not None:
            targets = np.asarray(dataset_train.targets)[dataset_train.indices]
        elif needs_features(net.sampler):
            seed = epoch_seed(net.sampling_seed_, len(net.history))
            targets = self._draw_features(net, dataset_train, net.train_indices_, seed)
        else:
            rows = net.train_indices_
            seed = epoch_seed(net.sampling_seed_, len(net.history))
            labels = net.classes_[dataset_train.targets[rows]]
            dataset_train.indices, self.sampler_ = resample_indices(net.sampler, rows, labels, seed)
            targets = dataset_train.targets[dataset_train.indices]
        counts = np.bincount(targets, minlength=len(net.classes_))
        net.history.record("train_class_counts", counts.tolist())

    def _draw_features(self, net, dataset, rows, seed):
        """SMOTE and kin on the frozen backbone's features: the epoch's rows are the
        sampler's output, synthesized ones included."""
        if dataset.source is None:
            dataset.source = (dataset.features, dataset.targets)
        features, targets = dataset.source
        X_res, y_res, self.sampler_ = resample_features(
            net.sampler, features[rows], net.classes_[targets[rows]], seed
        )
        dataset.features = X_res
        dataset.targets = np.searchsorted(net.classes_, y_res)
        dataset.indices = np.arange(len(X_res))
        return dataset.targets


def history_key(monitor):
    """The history key of ``monitor``: ``"valid_loss"`` stays itself, a metric ``m`` is
    ``"valid_m"`` (as :class:`ValidationScore` records it). The one place this rule lives."""
    # get_params reads this before fit checks the values: no comparison may raise here
    by_loss = isinstance(monitor, str) and monitor == "valid_loss"
    return "valid_loss" if by_loss else f"valid_{monitor}"


class ValidationScore(Callback):
    """Score the validation predictions of each epoch with metric ``name``.

    Decisions are the argmax of the probabilities; binary problems score the
    net's positive class ``net.pos_index_`` (its ``pos_label_``).

    Parameters
    ----------
    name : str
        A metric of :mod:`imbal_estimators.decision.metrics`; recorded in the
        history as ``valid_<name>``.
    """

    def __init__(self, name="balanced_accuracy"):
        self.name = name

    def on_epoch_begin(self, net, **kwargs):
        self.y_true_, self.proba_ = [], []

    def on_batch_end(self, net, batch=None, training=False, y_pred=None, **kwargs):
        if training or y_pred is None:
            return
        self.y_true_.append(batch[1].detach().cpu())
        self.proba_.append(torch.softmax(y_pred.detach().float(), dim=1).cpu())

    def on_epoch_end(self, net, **kwargs):
        if not self.y_true_:
            return
        y_true = torch.cat(self.y_true_).numpy()
        proba = torch.cat(self.proba_).numpy()
        classes = np.arange(proba.shape[1])  # the targets are class indices
        value = score(self.name, y_true, proba, classes, getattr(net, "pos_index_", None))
        net.history.record(history_key(self.name), value)
        self.y_true_, self.proba_ = [], []


class KeepBestModel(Callback):
    """Keep the module weights of the best epoch; restore them at the end of training.

    Parameters
    ----------
    monitor : str
        History key to watch, e.g. ``"valid_balanced_accuracy"``.
    lower_is_better : bool, default=False

    Notes
    -----
    Records ``<monitor>_best`` per epoch (shown by skorch's ``PrintLog``) and
    keeps ``best_epoch_`` on itself, as skorch's ``EarlyStopping`` does: when
    training ends it is the epoch whose weights the net holds, which ``fit``
    reads once. Without a validation split there is nothing to monitor and the
    last epoch is kept. On a tie of the monitor (a saturated
    metric such as an average precision of 1.0 on a small split) the epoch with
    the lower validation loss wins, and the later one when that ties too.
    """

    def __init__(self, monitor="valid_balanced_accuracy", lower_is_better=False):
        self.monitor = monitor
        self.lower_is_better = lower_is_better

    def on_train_begin(self, net, **kwargs):
        self.best_score_ = math.inf if self.lower_is_better else -math.inf
        self.best_loss_ = math.inf
        self.best_epoch_ = None
        self.best_state_ = None

    def on_epoch_end(self, net, **kwargs):
        score = net.history[-1].get(self.monitor)
        if score is None:
            return
        # NaN never improves. A tie goes to the lower validation loss (a saturated metric
        # says nothing more), then to the later epoch (more training).
        loss = net.history[-1].get("valid_loss")
        loss = math.inf if loss is None or not math.isfinite(loss) else loss
        if score == self.best_score_:
            improved = loss <= self.best_loss_
        elif self.lower_is_better:
            improved = score < self.best_score_
        else:
            improved = score > self.best_score_
        net.history.record(f"{self.monitor}_best", bool(improved))
        if improved:
            self.best_score_ = score
            self.best_loss_ = loss
            self.best_epoch_ = len(net.history)
            self.best_state_ = {
                key: value.detach().to("cpu", copy=True)
                for key, value in _trainable_state(net.module_).items()
            }

    def on_train_end(self, net, **kwargs):
        if self.best_state_ is not None:
            # copy in place, key by key: load_state_dict would also rewrite the
            # BatchNorm counters a partial state leaves out
            current = _trainable_state(net.module_)
            with torch.no_grad():
                for key, value in self.best_state_.items():
                    current[key].copy_(value)
        else:
            self.best_epoch_ = len(net.history) or None
        # the copy is not needed any more; do not pickle it with the estimator
        self.best_state_ = None


def _trainable_state(module):
    """The ``state_dict`` entries training can change. A frozen backbone's are left out:
    copying (and later restoring) them is waste, and a body not built yet stays unbuilt."""
    if hasattr(module, "trainable_state_dict"):
        return module.trainable_state_dict()
    frozen = getattr(module, "frozen_state_keys", set)()
    return {key: value for key, value in module.state_dict().items() if key not in frozen}


class DeferredReweighting(Callback):
    """Deferred re-weighting (Cao et al. 2019): class weights from epoch ``net.drw_epoch`` on.

    Before that epoch the loss is built without ``class_weight_``; at the start
    of epoch ``drw_epoch`` (1-based, counted over the whole history, so
    ``partial_fit`` continues the count) it is rebuilt with them. Records
    ``class_weights_on`` (bool) per epoch in the history and keeps the switch
    in ``weights_on_`` (None before the first epoch), which ``fit`` reads when
    training ends. Does nothing when ``net.drw_epoch`` is None.
    """

    def on_train_begin(self, net, **kwargs):
        # None: the first epoch rebuilds the loss whatever the net started with (a
        # resumed fit's loss is built before the checkpoint's epoch count is known)
        self.weights_on_ = None
        if net.drw_epoch is None:
            return
        from .head_solver import HEAD_PENALTIES  # heads imports this module
        from .heads import solves_path

        if solves_path(net):  # one epoch per penalty, whatever max_epochs says
            last = len(HEAD_PENALTIES)
            where = (
                f"the last point of the frozen head's penalty path ({last} penalties, "
                "head_solver='lbfgs')"
            )
            advice = f"Lower drw_epoch to at most {last}."
        else:
            last = len(net.history) + net.max_epochs  # partial_fit continues the count
            where = f"the last epoch of this fit (max_epochs={net.max_epochs})"
            advice = "Lower drw_epoch, raise max_epochs, or continue with partial_fit."
        if net.drw_epoch > last:
            warnings.warn(
                f"drw_epoch={net.drw_epoch} is after {where}: the class weights of alpha "
                f"never switch on. {advice}",
                UserWarning,
                stacklevel=2,
            )

    def on_epoch_begin(self, net, **kwargs):
        if net.drw_epoch is None:
            return
        on = len(net.history) >= net.drw_epoch
        if on != self.weights_on_:
            self.weights_on_ = on
            net.rebuild_criterion(class_weights_on=on)
        net.history.record("class_weights_on", on)

    def state_dict(self):
        """Nothing to resume: the switch follows the epoch count (and a checkpoint
        restores the history that counts)."""
        return {}

    def load_state_dict(self, state):
        pass


class EpochLossScoring(PassthroughScoring):
    """skorch's ``PassthroughScoring`` (the epoch's batch-size weighted mean of a batch
    score), reading the epoch's batch records directly.

    skorch's version slices the history twice per epoch (0.3 ms, a tenth of a
    frozen head's epoch); this computes the same ``np.average`` of the same
    values. Anything unusual (a batch without the score or its size) goes to
    skorch's own code.
    """

    def on_epoch_end(self, net, **kwargs):
        size_key = "train_batch_size" if self.on_train else "valid_batch_size"
        batches = net.history[-1].get("batches") or []
        if not batches or any(self.name not in b or size_key not in b for b in batches):
            return super().on_epoch_end(net, **kwargs)
        score_avg = np.average(
            tuple(b[self.name] for b in batches), weights=tuple(b[size_key] for b in batches)
        )
        is_best = self._is_best_score(score_avg)
        if is_best:
            self.best_score_ = score_avg
        net.history.record(self.name, score_avg)
        if is_best is not None:
            net.history.record(self.name + "_best", bool(is_best))


class EpochLog(PrintLog):
    """skorch's ``PrintLog``, which does not format a table that nobody would see.

    ``sink=None`` (the default) prints with ``verbose`` > 0, as skorch's
    ``sink=print`` does, without storing ``print`` in the estimator: a saved or
    skops-dumped model then names no ``builtins.print`` that loading must trust.
    With ``verbose=0`` skorch's version still tabulates every epoch (0.7 ms)
    and then drops the text; this returns first. A custom ``sink`` gets every
    line, whatever ``verbose``, as in skorch.
    """

    def __init__(self, keys_ignored=None, sink=None, **kwargs):
        super().__init__(keys_ignored=keys_ignored, sink=sink, **kwargs)

    def _sink(self, text, verbose):
        if self.sink is None or self.sink is print:
            if verbose:
                print(text, flush=True)
        else:
            self.sink(text)

    def on_epoch_end(self, net, **kwargs):
        if (self.sink is None or self.sink is print) and not net.verbose:
            return
        super().on_epoch_end(net, **kwargs)
