"""The one writer of the estimator's fitted attributes, and the records it takes.

A fit decides its fitted attributes in frozen records: the plan
(:class:`~imbal_estimators.training.plan.FitPlan`), the first draw of a sampler of
features (:class:`~imbal_estimators.training.plan.FeatureDraw`), what training
found (:class:`~imbal_estimators.training.plan.FitOutcome`, read from the
callbacks once training ends) and the decision step (:class:`DecisionFit`).
:func:`assign_fitted` sets them on the estimator, and nothing else in the package
does (``tests/test_fitted_state.py`` walks the source to keep it so); ``load``
restores a saved model through it too, after :func:`normalize_fitted` has given an
old model (0.1, 0.2) the attributes it lacks, once.
"""

from collections.abc import Mapping
from dataclasses import dataclass, fields, is_dataclass

import numpy as np

from ..data.geometry import Geometry
from ..training.plan import FeatureDraw, FitOutcome, FitPlan, saved_fields


@dataclass(frozen=True)
class DecisionFit:
    """The decision rule fitted on the validation split after training (``threshold="auto"``,
    ``calibrate=True``); each field the estimator attribute of the same name."""

    threshold_: float | None = None
    temperature_: float | None = None
    ece_before_: float | None = None
    ece_after_: float | None = None


#: every name :func:`assign_fitted` may set: the fields of the records, and ``classes_``
#: and ``n_classes_`` (which ``load`` restores from its own field)
FITTED_NAMES = frozenset(
    f.name for record in (FitPlan, FitOutcome, FeatureDraw, DecisionFit) for f in fields(record)
)


def assign_fitted(estimator, *records):
    """Set the fields of ``records`` on ``estimator``, each as the attribute of its name.

    Parameters
    ----------
    estimator : ImageImbalanceClassifier
    *records : frozen dataclass or mapping
        :class:`FitPlan`, :class:`FeatureDraw`, :class:`FitOutcome`,
        :class:`DecisionFit`, or a mapping of such fields (a loaded model's).

    Raises
    ------
    ValueError
        For a name that no fitted record declares.
    """
    for record in records:
        items = record.items() if isinstance(record, Mapping) else _fields(record)
        for name, value in items:
            if name not in FITTED_NAMES:
                raise ValueError(
                    f"{name!r} is not a fitted attribute of {type(estimator).__name__}."
                )
            setattr(estimator, name, value)


def _fields(record):
    if not is_dataclass(record):
        raise TypeError(f"a fitted record is a dataclass or a mapping; got {type(record).__name__}")
    return ((f.name, getattr(record, f.name)) for f in fields(record))


def normalize_fitted(fitted, classes, batch_size, image_size=224):
    """``fitted`` (name -> value, from a saved model or an old pickle) with every saved
    attribute present: what models of 0.1 and 0.2 lack gets the value those versions used.

    Parameters
    ----------
    fitted : mapping
        The fitted attributes found.
    classes : ndarray
        ``classes_``.
    batch_size : int
        The model's ``batch_size`` parameter (0.1 trained with it).
    image_size : int, default=224
        The model's ``image_size`` parameter: models before 0.3 resized every image
        to that square (their ``input_geometry_``).

    Returns
    -------
    dict
        ``fitted`` completed with ``n_classes_`` and every field of
        :func:`~imbal_estimators.training.plan.saved_fields`.
    """
    fitted = dict(fitted)
    binary = len(classes) == 2
    if "pos_index_" not in fitted:  # 0.1, which thresholded classes_[1]
        fitted["pos_index_"] = 1 if binary else None
        fitted["pos_label_"] = np.asarray(classes)[1].item() if binary else None
    if "input_geometry_" not in fitted and isinstance(image_size, int):
        fitted["input_geometry_"] = Geometry(image_size).record()  # before 0.3: a square
    defaults = {
        "n_classes_": len(classes),
        "batch_size_": batch_size,
        "class_weights_on_": True,
        "skipped_images_": [],
        "resumed_from_epoch_": 0,
    }
    for name in ("n_classes_", *saved_fields()):
        fitted.setdefault(name, defaults.get(name))
    fitted["n_classes_"] = len(classes)
    return fitted
