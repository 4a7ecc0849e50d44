"""The fit plan: every data-dependent value of a fit, decided before any network is built.

:func:`plan_fit` turns checked paths and labels into a :class:`FitPlan` (the
classes, the internal split, the images the pre-flight scan kept, the seeds,
the class counts and weights the loss will see, the first sampler draw, a
checkpoint to resume from); :meth:`FitPlan.apply` sets them on the estimator as
its fitted attributes, in one step. Persistence saves the fields marked
``saved`` (:func:`saved_fields`), so a new fitted attribute is one field here.
"""

from dataclasses import dataclass, field, fields

import numpy as np

from ..data.images import ImageLoader
from ..data.labels import plain_value, resolve_pos_label
from ..data.preflight import preflight_scan
from ..imbalance.class_weights import resolve_alpha
from ..imbalance.samplers import needs_features, resample_indices
from ..models.preprocessing import estimator_geometry, network_geometry
from ..utils.warn import warn
from .checkpoint import prepare_checkpoint
from .head_folds import cross_validation_folds
from .seeding import draw_seeds, epoch_seed
from .split import split_rows

#: ``saved`` kinds: an array (``np.asarray`` on load) or a plain JSON value
ARRAY, VALUE = "array", "value"


def _field(saved=None):
    return field(metadata={"saved": saved})


@dataclass(frozen=True, eq=False)
class FitPlan:
    """The fitted attributes a fit starts from; training and the decision step update
    ``best_epoch_``, ``threshold_``, ``temperature_`` and ``ece_*_``, and the checkpoint
    resume ``batch_size_`` and ``resumed_from_epoch_``.

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
    temperature_: float | None = _field(VALUE)
    ece_before_: float | None = _field(VALUE)
    ece_after_: float | None = _field(VALUE)
    best_epoch_: int | None = _field(VALUE)
    resumed_from_epoch_: int = _field(VALUE)
    input_geometry_: dict = _field(VALUE)  # Geometry.record(): resize, crop, interpolation
    _checkpoint_plan_: object = _field()

    def apply(self, estimator):
        """Set every field on ``estimator`` as the attribute of the same name."""
        for item in fields(self):
            setattr(estimator, item.name, getattr(self, item.name))


def saved_fields():
    """``{attribute: "array" or "value"}`` of the plan fields a saved model keeps."""
    return {f.name: f.metadata["saved"] for f in fields(FitPlan) if f.metadata["saved"]}


def plan_fit(estimator, paths, labels, classes, y_encoded, resume=True):
    """Split, scan, seed and count: the plan of a fit of ``estimator`` on checked data.

    Every parameter has been checked (:mod:`imbal_estimators.estimator.validation`);
    this is where the images are first read (the pre-flight scan).

    Parameters
    ----------
    estimator : ImageImbalanceClassifier
    paths : ndarray of str
    labels : ndarray
        The user's labels.
    classes : ndarray
    y_encoded : ndarray of int
        ``labels`` as indices of ``classes``.
    resume : bool, default=True
        Whether a checkpoint in ``checkpoint_dir`` may be resumed.

    Returns
    -------
    plan : FitPlan
    """
    name = type(estimator).__name__
    pos_label = _positive_class(estimator, classes, y_encoded, continued=not resume)
    checkpoint = None
    if estimator.checkpoint_dir is not None:
        checkpoint = prepare_checkpoint(
            estimator.checkpoint_dir, estimator, paths, y_encoded, classes, resume=resume
        )
    # A resumed fit takes its seeds from the checkpoint, also when random_state=None.
    seeds = (checkpoint and checkpoint.seeds) or draw_seeds(estimator.random_state)
    torch_seed, split_seed, sampling_seed = (int(seed) for seed in seeds)
    train_rows, valid_rows = split_rows(estimator.train_split, y_encoded, split_seed)
    geometry = _input_geometry(estimator, continued=not resume)
    for param in ("calibrate", "threshold"):
        value = getattr(estimator, param)
        if value in (True, "auto") and len(valid_rows) == 0:
            raise ValueError(
                f"The {param!r} parameter of {name} is fitted on the internal validation "
                f"split, but train_split={estimator.train_split!r} leaves none; got "
                f"{param}={value!r}."
            )
    train_rows, valid_rows, skipped = preflight_scan(
        paths,
        y_encoded,
        classes,
        train_rows,
        valid_rows,
        ImageLoader(geometry, estimator.cache),
        estimator.on_bad_image,
        verbose=estimator.verbose,
    )
    if checkpoint is not None:
        checkpoint.check_split(train_rows, valid_rows)
    if resume and cross_validation_folds(estimator):
        # a frozen head solved along its penalty path trains on every row; k-fold CV over
        # them picks the penalty and fits the threshold (training/head_folds.py)
        train_rows, valid_rows = np.union1d(train_rows, valid_rows), valid_rows[:0]
    threshold = None if estimator.threshold in (None, "auto") else float(estimator.threshold)
    valid_counts = np.bincount(y_encoded[valid_rows], minlength=len(classes))
    if estimator.threshold == "auto" and len(valid_rows) and valid_counts.min() == 0:
        missing = classes[np.argmin(valid_counts)]
        warn(
            f"threshold='auto' is tuned on the internal validation split, which holds no "
            f"image of class {plain_value(missing)!r}; no threshold can be told from another, "
            "so threshold_ is 0.5. Give that class more images or raise train_split."
        )
        threshold = 0.5

    class_counts = np.bincount(y_encoded[train_rows], minlength=len(classes))
    loss_counts, sampler = _first_draw(
        estimator, labels, y_encoded, classes, train_rows, class_counts, sampling_seed
    )
    return FitPlan(
        classes_=classes,
        n_classes_=len(classes),
        class_counts_=class_counts,
        loss_class_counts_=loss_counts,
        class_weight_=resolve_alpha(
            estimator.alpha, classes, loss_counts, beta=estimator.beta, pos_label=pos_label
        ),
        class_weights_on_=estimator.drw_epoch is None,
        pos_label_=pos_label,
        pos_index_=None if pos_label is None else int(np.flatnonzero(classes == pos_label)[0]),
        sampler_=sampler,
        train_indices_=train_rows,
        valid_indices_=valid_rows,
        skipped_images_=skipped,
        torch_seed_=torch_seed,
        split_seed_=split_seed,
        sampling_seed_=sampling_seed,
        batch_size_=estimator.batch_size,
        threshold_=threshold,
        temperature_=None,
        ece_before_=None,
        ece_after_=None,
        best_epoch_=None,
        resumed_from_epoch_=0,
        input_geometry_=geometry.record(),
        _checkpoint_plan_=checkpoint,
    )


def _input_geometry(estimator, continued):
    """The resize and crop of the network's input (``models.preprocessing``); a continued
    fit keeps the geometry its network was trained on."""
    if continued and "input_geometry_" in estimator.__dict__:
        return estimator_geometry(estimator)
    return network_geometry(
        estimator.backbone,
        estimator.weights,
        estimator.module,
        estimator.image_size,
        estimator.get_params_for("module"),
    )


def _positive_class(estimator, classes, y_encoded, continued):
    """``pos_label_`` from these labels; a continued fit (``partial_fit``, ``warm_start``)
    keeps the positive class its network was trained for."""
    if continued and estimator.pos_label is None and "pos_label_" in estimator.__dict__:
        return estimator.__dict__["pos_label_"]
    counts = np.bincount(y_encoded, minlength=len(classes))
    return resolve_pos_label(
        estimator.pos_label, classes, counts, caller_name=type(estimator).__name__
    )


def _first_draw(estimator, labels, y_encoded, classes, train_rows, class_counts, seed):
    """The class counts the loss sees (after the first epoch's draw) and the fitted sampler.

    A sampler of backbone features draws once the features exist (the estimator's
    ``get_split_datasets``); until then the loss sees the training part's counts.
    """
    sampler = estimator.sampler
    if sampler is None or needs_features(sampler):
        return class_counts, None
    rows, fitted = resample_indices(sampler, train_rows, labels[train_rows], epoch_seed(seed, 1))
    counts = np.bincount(y_encoded[rows], minlength=len(classes))
    if hasattr(fitted, "expected_class_counts"):  # a random draw; use its mean
        counts = fitted.expected_class_counts(class_counts)
    if len(rows) == 0:
        raise ValueError(
            f"sampler={sampler!r} returned no training images; check its sampling_strategy."
        )
    lost = classes[(counts == 0) & (class_counts > 0)]
    if len(lost) and isinstance(estimator.alpha, str):
        raise ValueError(
            f"sampler={sampler!r} left no images of class(es) {lost.tolist()}, and "
            f"alpha={estimator.alpha!r} needs every class; check the sampler's "
            "sampling_strategy or give alpha as fixed weights."
        )
    return counts, fitted
