"""One ``fit`` of :class:`~imbal_estimators.ImageImbalanceClassifier`, in order.

:func:`fit_estimator` runs the steps, each one call:

1. the settings of this fit, from ``get_params()`` (:func:`fit_settings`);
2. the labels encoded and checked for these classes, then the plan
   (:func:`~imbal_estimators.training.plan.plan_fit`: split, pre-flight scan,
   seeds, counts, class weights, a checkpoint to resume);
3. the plan assigned (:func:`~imbal_estimators.estimator.fitted.assign_fitted`),
   the network built (or, for a continued fit, the loss rebuilt);
4. the training loop (:func:`~imbal_estimators.estimator.loop.train`, skorch's
   hooks) trains, through the out-of-memory retry
   (:func:`~imbal_estimators.training.memory.train_with_memory_retry`);
5. what training found read once from the callbacks (:class:`FitOutcome`);
6. the decision rule fitted on the validation split (:class:`DecisionFit`).

Every fitted attribute is set by ``assign_fitted``, from those records.
"""

import copy

import numpy as np
import torch

from ..data.images import ImageLoader, ImagePathDataset, check_paths
from ..data.labels import check_labels, encode_labels
from ..decision.posthoc import fit_decision
from ..models.features import FeatureDataset
from ..training.callbacks import DeferredReweighting, EpochResampler, KeepBestModel
from ..training.head_folds import CV_LOGITS_KEY
from ..training.interrupt import raise_if_stopped
from ..training.memory import release_memory, train_with_memory_retry
from ..training.plan import FitOutcome, plan_fit
from ..training.seeding import seeded
from ..training.threads import head_threads
from .datasets import frozen_features_of, logit_batches
from .finetune import freezes_norm
from .fitted import DecisionFit, assign_fitted
from .loop import train
from .settings import fit_settings
from .validation import check_params_for_classes

__all__ = ["fit_estimator", "fit_settings"]


def fit_estimator(estimator, X, y, reinitialize, classes=None):
    """Fit ``estimator`` on paths ``X`` and labels ``y`` (its parameters are checked).

    Parameters
    ----------
    estimator : ImageImbalanceClassifier
    X, y : as in ``fit``
    reinitialize : bool
        Build a new network (``fit``) or train the one there on (``partial_fit``,
        ``warm_start``).
    classes : array-like or None
        All labels, for a first ``partial_fit`` whose ``y`` lacks some.

    Returns
    -------
    estimator
    """
    continued = not reinitialize and estimator.__sklearn_is_fitted__()
    if continued:
        classes = estimator.classes_
    rebuild = reinitialize or not estimator.initialized_
    settings = fit_settings(estimator, new_network=rebuild)
    paths, y_encoded, plan = _plan(estimator, settings, X, y, classes, resume=rebuild)
    # Snapshot so that a failure while building the network (e.g. weights that
    # cannot be downloaded) leaves the previous fit whole.
    snapshot = dict(estimator.__dict__)
    history = copy.deepcopy(estimator.history_) if rebuild else estimator.history_
    assign_fitted(estimator, plan)
    with seeded(plan.torch_seed_, estimator.device):
        try:
            _build(estimator, rebuild)
        except BaseException:
            estimator.__dict__.clear()
            estimator.__dict__.update(snapshot)
            estimator.history_ = history  # initialize cleared it
            raise
        try:
            batch_size = _train(estimator, settings, plan, rebuild, paths, y_encoded)
            assign_fitted(estimator, _outcome(estimator, plan, batch_size))
            raise_if_stopped()  # the user's Ctrl-C, which the training loop swallowed
            assign_fitted(estimator, _decision(estimator, settings, paths, y_encoded))
        finally:
            if torch.device(estimator.device).type == "cuda":
                torch.cuda.empty_cache()  # many fits in a search must not pile blocks up
            if plan._checkpoint_plan_ is not None:
                plan._checkpoint_plan_.release()  # the lock of checkpoint_dir
    return estimator


def _plan(estimator, settings, X, y, known_classes, resume):
    """Check the data and what depends on its classes, then plan the fit.

    Nothing on the estimator changes until the plan is assigned.
    """
    paths = check_paths(X)
    labels = check_labels(y, len(paths))
    classes, y_encoded = encode_labels(labels, known_classes)
    check_params_for_classes(estimator, classes, np.bincount(y_encoded, minlength=len(classes)))
    previous = estimator._checkpoint_plan_
    if previous is not None:  # a fit of this estimator that failed before releasing it
        previous.release()
    fitted_pos_label = estimator.pos_label_ if estimator.__sklearn_is_fitted__() else None
    plan = plan_fit(
        settings,
        paths,
        labels,
        classes,
        y_encoded,
        resume=resume,
        fitted_pos_label=fitted_pos_label,
    )
    return paths, y_encoded, plan


def _build(estimator, rebuild):
    # load() builds no callbacks (set _callbacks_pending_); a new network builds them all
    pending = estimator.__dict__.pop("_callbacks_pending_", False)
    if rebuild:
        estimator.initialize()
        return
    estimator.rebuild_criterion()  # training goes on: the loss follows this data's weights
    if hasattr(estimator.module_, "frozen_norm"):  # and set_params(freeze_norm=...) applies
        estimator.module_.frozen_norm = freezes_norm(estimator)
    if pending:
        estimator.initialize_callbacks()


def _train(estimator, settings, plan, rebuild, paths, y_encoded):
    """The training loop through the out-of-memory retry; the batch size that fitted."""

    def attempt(batch_size):
        if batch_size != estimator.batch_size_:  # halved: the data loaders read it
            assign_fitted(estimator, {"batch_size_": batch_size})
        train(estimator, paths, y_encoded)

    def restart():
        for name in ("module_", "criterion_", "optimizer_"):
            estimator.__dict__.pop(name, None)
        release_memory()
        torch.manual_seed(plan.torch_seed_)
        estimator.initialize()

    def restartable():
        return rebuild and len(estimator.history) <= 1 and not plan.resumed_from_epoch_

    n_train = len(plan.train_indices_)
    return train_with_memory_retry(
        attempt, restart, restartable, plan.batch_size_, settings, n_train
    )


def _outcome(estimator, plan, batch_size):
    """What training decided, from the callbacks that kept it (each on itself)."""
    callbacks = dict(getattr(estimator, "callbacks_", None) or [])
    keeper = callbacks.get("keep_best")
    resampler = callbacks.get("resampler")
    drw = callbacks.get("deferred_reweighting")
    best_epoch = keeper.best_epoch_ if isinstance(keeper, KeepBestModel) else plan.best_epoch_
    sampler = (
        getattr(resampler, "sampler_", None) if isinstance(resampler, EpochResampler) else None
    )
    weights_on = getattr(drw, "weights_on_", None) if isinstance(drw, DeferredReweighting) else None
    return FitOutcome(
        best_epoch_=best_epoch,
        batch_size_=batch_size,
        class_weights_on_=estimator.class_weights_on_ if weights_on is None else weights_on,
        sampler_=estimator.sampler_ if sampler is None else sampler,
    )


def _decision(estimator, settings, paths, y_encoded):
    """Temperature and threshold from one pass over the validation split (kept weights), or
    from a frozen head's out-of-fold logits of the kept epoch (``training/head_folds.py``)."""
    imbalance = settings.imbalance
    cross_validated = estimator.__dict__.pop(CV_LOGITS_KEY, None)
    fitted = {}
    if imbalance.calibrate or imbalance.threshold == "auto":
        if cross_validated is not None:
            logits, y_valid = cross_validated[estimator.best_epoch_]
        else:
            logits, y_valid = _validation_logits(estimator, settings, paths, y_encoded)
        # a split lacking a class was warned about before training; threshold_ is 0.5
        tunable = imbalance.threshold == "auto" and len(np.unique(y_valid)) == 2
        fitted = fit_decision(
            logits,
            y_valid,
            calibrate=imbalance.calibrate,
            threshold="auto" if tunable else None,
            monitor=estimator.monitor,
            pos_index=estimator.pos_index_,
        )
    current = {name: getattr(estimator, name) for name in DecisionFit.__dataclass_fields__}
    return DecisionFit(**{**current, **fitted})


def _validation_logits(estimator, settings, paths, y_encoded):
    rows = estimator.valid_indices_
    if estimator.freeze_backbone:
        features = frozen_features_of(estimator, np.asarray(paths)[rows])
        valid = FeatureDataset(features, y_encoded[rows])
    else:
        loader = ImageLoader(settings.data.geometry, settings.data.cache)
        valid = ImagePathDataset(paths, y_encoded, loader, rows)
    with head_threads(estimator._trains_head_only_on_cpu()):
        logits = torch.cat(list(logit_batches(estimator, valid))).float().numpy()
    return logits, y_encoded[rows]
