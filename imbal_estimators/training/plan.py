"""The fit plan: every data-dependent value of a fit, decided before any network is built.

:func:`plan_fit` turns checked paths and labels into a :class:`FitPlan` (the
classes, the internal split, the images the pre-flight scan kept, the seeds,
the class counts and weights the loss will see, the first sampler draw, a
checkpoint to resume from). The estimator sets them as its fitted attributes in
one step (:func:`imbal_estimators.estimator.fitted.assign_fitted`). Persistence
saves the fields marked ``saved`` (:func:`saved_fields`), so a new fitted
attribute is one field here or in :class:`FitOutcome`.

:func:`plan_fit` reads :class:`~imbal_estimators.training.settings.FitSettings`,
never the estimator.
"""

from dataclasses import dataclass, field, fields

import numpy as np

from ..data.images import ImageLoader
from ..data.labels import plain_value, resolve_pos_label
from ..data.preflight import preflight_scan
from ..imbalance.class_weights import resolve_alpha
from ..imbalance.samplers import needs_features, resample_indices
from ..utils.warn import warn
from .checkpoint import prepare_checkpoint
from .seeding import draw_seeds, epoch_seed
from .split import split_rows

#: ``saved`` kinds: an array (``np.asarray`` on load) or a plain JSON value
ARRAY, VALUE = "array", "value"


_REQUIRED = object()


def _field(saved=None, default=_REQUIRED):
    if default is _REQUIRED:
        return field(metadata={"saved": saved})
    return field(default=default, metadata={"saved": saved})


@dataclass(frozen=True, eq=False)
class FitPlan:
    """The fitted attributes a fit starts from; :class:`FitOutcome` (what training found)
    and the decision step (``threshold_``, ``temperature_``, ``ece_*_``) replace some.

    Each field is the estimator attribute of the same name (documented in
    :class:`~imbal_estimators.ImageImbalanceClassifier`).
    """

    classes_: np.ndarray = _field()  # saved with its dtype, apart from the others
    n_classes_: int = _field(VALUE)
    class_counts_: np.ndarray = _field(ARRAY)
    loss_class_counts_: np.ndarray = _field(ARRAY)
    class_weight_: np.ndarray | None = _field(ARRAY)
    class_weights_on_: bool = _field(VALUE)
    pos_label_: object = _field(VALUE)
    pos_index_: int | None = _field(VALUE)
    sampler_: object = _field()
    train_indices_: np.ndarray = _field(ARRAY)
    valid_indices_: np.ndarray = _field(ARRAY)
    skipped_images_: list = _field(VALUE)
    torch_seed_: int = _field(VALUE)
    split_seed_: int = _field(VALUE)
    sampling_seed_: int = _field(VALUE)
    batch_size_: int = _field(VALUE)
    threshold_: float | None = _field(VALUE)
    resumed_from_epoch_: int = _field(VALUE)
    input_geometry_: dict = _field(VALUE)  # Geometry.record(): resize, crop, interpolation
    _checkpoint_plan_: object = _field()
    # set after training (FitOutcome, DecisionFit); a plan starts them empty
    temperature_: float | None = _field(VALUE, None)
    ece_before_: float | None = _field(VALUE, None)
    ece_after_: float | None = _field(VALUE, None)
    best_epoch_: int | None = _field(VALUE, None)


@dataclass(frozen=True)
class FitOutcome:
    """What training decided, read once from the callbacks when ``fit`` ends.

    Each field is the estimator attribute of the same name; ``sampler_`` is the
    sampler of the last epoch's draw (the plan's first draw when no epoch drew).
    """

    best_epoch_: int | None = _field(VALUE)
    batch_size_: int = _field(VALUE)
    class_weights_on_: bool = _field(VALUE)
    sampler_: object = _field()


@dataclass(frozen=True)
class FeatureDraw:
    """Class weights and loss counts from the first draw of a sampler of features (only
    once the frozen backbone's features exist)."""

    loss_class_counts_: np.ndarray = _field(ARRAY)
    class_weight_: np.ndarray | None = _field(ARRAY)


def saved_fields():
    """``{attribute: "array" or "value"}`` of the fitted fields a saved model keeps."""
    return {
        f.name: f.metadata["saved"]
        for record in (FitPlan, FitOutcome)
        for f in fields(record)
        if f.metadata["saved"]
    }


def plan_fit(settings, paths, labels, classes, y_encoded, resume=True, fitted_pos_label=None):
    """Split, scan, seed and count: the plan of a fit with ``settings`` on checked data.

    Every parameter has been checked; the pre-flight scan here reads the images first.

    Parameters
    ----------
    settings : FitSettings
    paths, labels, classes, y_encoded : ndarray
        The checked paths, the user's labels, the classes and the labels as
        indices of the classes.
    resume : bool, default=True
        Whether a checkpoint in ``checkpoint_dir`` may be resumed; False for a
        fit that continues the network it has (``partial_fit``, ``warm_start``).
    fitted_pos_label : label or None
        The positive class the network was trained for, kept by a continued fit
        when ``pos_label`` is None.

    Returns
    -------
    plan : FitPlan
    """
    imbalance, runtime = settings.imbalance, settings.runtime
    pos_label = _positive_class(settings, classes, y_encoded, resume, fitted_pos_label)
    checkpoint = _checkpoint(runtime, paths, y_encoded, classes, resume)
    # A resumed fit takes its seeds from the checkpoint, also when random_state=None.
    seeds = (checkpoint and checkpoint.seeds) or draw_seeds(runtime.random_state)
    torch_seed, split_seed, sampling_seed = (int(seed) for seed in seeds)
    rows = _split_and_scan(settings, paths, y_encoded, classes, split_seed, resume)
    train_rows, valid_rows, skipped = rows
    if checkpoint is not None:
        checkpoint.check_split(train_rows, valid_rows)
    threshold = _first_threshold(imbalance, classes, y_encoded[valid_rows])
    draw = (imbalance, labels, y_encoded, classes, train_rows, sampling_seed)
    class_counts, loss_counts, sampler = _first_draw(*draw)
    resumed = checkpoint if checkpoint is not None and checkpoint.state is not None else None
    return FitPlan(
        classes_=classes,
        n_classes_=len(classes),
        class_counts_=class_counts,
        loss_class_counts_=loss_counts,
        class_weight_=resolve_alpha(
            imbalance.alpha, classes, loss_counts, beta=imbalance.beta, pos_label=pos_label
        ),
        class_weights_on_=imbalance.drw_epoch is None,
        pos_label_=pos_label,
        pos_index_=None if pos_label is None else int(np.flatnonzero(classes == pos_label)[0]),
        sampler_=sampler,
        train_indices_=train_rows,
        valid_indices_=valid_rows,
        skipped_images_=skipped,
        torch_seed_=torch_seed,
        split_seed_=split_seed,
        sampling_seed_=sampling_seed,
        batch_size_=runtime.batch_size if resumed is None else resumed.batch_size,
        threshold_=threshold,
        resumed_from_epoch_=0 if resumed is None else resumed.epoch,
        input_geometry_=settings.data.geometry.record(),
        _checkpoint_plan_=checkpoint,
    )


def _checkpoint(runtime, paths, y_encoded, classes, resume):
    """The locked checkpoint of this data (read when it may be resumed), or None. A resumed
    fit trains on with the seeds and the batch size its first run ended with."""
    if runtime.checkpoint_dir is None:
        return None
    return prepare_checkpoint(
        runtime.checkpoint_dir, runtime, paths, y_encoded, classes, resume=resume
    )


def _positive_class(settings, classes, y_encoded, resume, fitted_pos_label):
    """``pos_label_`` from these labels; a continued fit (``partial_fit``, ``warm_start``)
    keeps the positive class its network was trained for."""
    pos_label = settings.imbalance.pos_label
    if not resume and pos_label is None and fitted_pos_label is not None:
        return fitted_pos_label
    counts = np.bincount(y_encoded, minlength=len(classes))
    return resolve_pos_label(pos_label, classes, counts, caller_name=settings.name)


def _split_and_scan(settings, paths, y_encoded, classes, split_seed, resume):
    """The training and validation rows, less the images the pre-flight scan dropped."""
    data = settings.data
    train_rows, valid_rows = split_rows(data.train_split, y_encoded, split_seed)
    _check_decision_split(settings, len(valid_rows))
    train_rows, valid_rows, skipped = preflight_scan(
        paths,
        y_encoded,
        classes,
        train_rows,
        valid_rows,
        ImageLoader(data.geometry, data.cache),
        data.on_bad_image,
        verbose=data.verbose,
    )
    if resume and data.head_cv_folds:
        # a frozen head solved along its penalty path trains on every row; k-fold CV over
        # them picks the penalty and fits the threshold (training/head_folds.py)
        train_rows, valid_rows = np.union1d(train_rows, valid_rows), valid_rows[:0]
    return train_rows, valid_rows, skipped


def _check_decision_split(settings, n_valid):
    """``calibrate`` and ``threshold="auto"`` need a validation split."""
    for param in ("calibrate", "threshold"):
        value = getattr(settings.imbalance, param)
        if value in (True, "auto") and n_valid == 0:
            raise ValueError(
                f"The {param!r} parameter of {settings.name} is fitted on the internal "
                f"validation split, but train_split={settings.data.train_split!r} leaves "
                f"none; got {param}={value!r}."
            )


def _first_threshold(imbalance, classes, y_valid):
    """``threshold_`` before training: the user's number, None for ``"auto"`` (tuned after
    training), or 0.5 where the split lacks a class and ``"auto"`` cannot tune it."""
    threshold = imbalance.threshold
    valid_counts = np.bincount(y_valid, minlength=len(classes))
    if threshold == "auto" and len(y_valid) and valid_counts.min() == 0:
        missing = classes[np.argmin(valid_counts)]
        warn(
            f"threshold='auto' is tuned on the internal validation split, which holds no "
            f"image of class {plain_value(missing)!r}; no threshold can be told from another, "
            "so threshold_ is 0.5. Give that class more images or raise train_split."
        )
        return 0.5
    return None if threshold in (None, "auto") else float(threshold)


def _first_draw(imbalance, labels, y_encoded, classes, train_rows, seed):
    """The training part's class counts, the class counts the loss sees (after the first
    epoch's draw) and the fitted sampler.

    A sampler of backbone features draws once the features exist
    (:func:`~imbal_estimators.training.frozen.feature_draw`); until then the loss
    sees the training part's counts.
    """
    class_counts = np.bincount(y_encoded[train_rows], minlength=len(classes))
    sampler = imbalance.sampler
    if sampler is None or needs_features(sampler):
        return class_counts, class_counts, None
    rows, fitted = resample_indices(sampler, train_rows, labels[train_rows], epoch_seed(seed, 1))
    counts = np.bincount(y_encoded[rows], minlength=len(classes))
    if hasattr(fitted, "expected_class_counts"):  # a random draw; use its mean
        counts = fitted.expected_class_counts(class_counts)
    if len(rows) == 0:
        raise ValueError(
            f"sampler={sampler!r} returned no training images; check its sampling_strategy."
        )
    lost = classes[(counts == 0) & (class_counts > 0)]
    if len(lost) and isinstance(imbalance.alpha, str):
        raise ValueError(
            f"sampler={sampler!r} left no images of class(es) {lost.tolist()}, and "
            f"alpha={imbalance.alpha!r} needs every class; check the sampler's "
            "sampling_strategy or give alpha as fixed weights."
        )
    return class_counts, counts, fitted
