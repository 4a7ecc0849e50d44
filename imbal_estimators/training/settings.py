"""The settings a fit hands to its helpers, instead of the estimator itself.

The helpers of :mod:`imbal_estimators.training` (the fit plan, the frozen
backbone's features, the out-of-memory retry, the checkpoint) read a few
parameters each. They get them as these small frozen records, built once per fit
from ``get_params()`` (:meth:`FitSettings.from_params`), so each helper can be
called, and tested, without a network: construct the settings directly.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import torch

from ..data.geometry import Geometry
from .head_folds import cross_validation_folds
from .precision import autocast, autocast_dtype, uses_channels_last


@dataclass(frozen=True)
class DataSettings:
    """How images are read and split.

    Parameters
    ----------
    image_size : "auto" or int
        The parameter as set (for messages).
    cache : "memory", directory path or None
    train_split : float, int, callable, None or False
    on_bad_image : {"raise", "warn", "skip"}
    verbose : int
    head_cv_folds : int or None
        ``k`` of the cross-validation of a frozen head solved along its penalty
        path (it then trains on every row), or None
        (:func:`~imbal_estimators.training.head_folds.cross_validation_folds`).
    geometry : Geometry or None
        The resize, crop and interpolation every image gets
        (:mod:`~imbal_estimators.models.preprocessing`); None: a square of an int
        ``image_size``, else 224 px.
    """

    image_size: Any = 224
    cache: Any = "memory"
    train_split: Any = 0.2
    on_bad_image: str = "raise"
    verbose: int = 0
    head_cv_folds: int | None = None
    geometry: Geometry | None = None

    def __post_init__(self):
        if self.geometry is None:  # a square of an int image_size, else 224 px
            size = self.image_size if isinstance(self.image_size, int) else 224
            object.__setattr__(self, "geometry", Geometry(size))


@dataclass(frozen=True)
class ImbalanceSettings:
    """The corrections for imbalance and the decision rule, as the user set them.

    Parameters
    ----------
    alpha, beta, sampler, pos_label, drw_epoch, threshold, calibrate
        The estimator parameters of the same names.
    """

    alpha: Any = None
    beta: float = 0.999
    sampler: Any = None
    pos_label: Any = None
    drw_epoch: int | None = None
    threshold: Any = None
    calibrate: bool = False


@dataclass(frozen=True)
class RuntimeSettings:
    """Where and how training runs.

    Parameters
    ----------
    device : str
        A resolved device (``"auto"`` already replaced).
    precision : str
    random_state : None, int or RandomState
    batch_size : int
    max_epochs : int
    auto_batch_size : bool
    checkpoint_dir : str, path or None
    params : mapping
        Every parameter (``get_params(deep=False)``): what a checkpoint
        fingerprints.
    """

    device: str = "cpu"
    precision: str = "fp32"
    random_state: Any = None
    batch_size: int = 32
    max_epochs: int = 10
    auto_batch_size: bool = False
    checkpoint_dir: Any = None
    params: Mapping[str, Any] | None = None

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The forward pass's autocast dtype, None for float32."""
        return autocast_dtype(self.precision, self.device)

    @property
    def channels_last(self) -> bool:
        return uses_channels_last(self.device, self.autocast_dtype)

    def autocast(self):
        """The autocast context of the forward pass."""
        return autocast(self.device, self.autocast_dtype)


@dataclass(frozen=True)
class FitSettings:
    """The three settings of one fit, and the estimator's name for messages."""

    data: DataSettings = DataSettings()
    imbalance: ImbalanceSettings = ImbalanceSettings()
    runtime: RuntimeSettings = RuntimeSettings()
    name: str = "ImageImbalanceClassifier"

    @classmethod
    def from_params(cls, params, name="ImageImbalanceClassifier", device=None, geometry=None):
        """The settings of a fit with these parameters (``get_params(deep=False)``).

        ``device`` is the resolved device (``params["device"]`` may be ``"auto"``);
        ``geometry`` the network's input geometry (None: a square of an int
        ``image_size``, else 224 px).
        """
        folds = cross_validation_folds(SimpleNamespace(**params))
        return cls(
            data=_pick(DataSettings, params, head_cv_folds=folds, geometry=geometry),
            imbalance=_pick(ImbalanceSettings, params),
            runtime=_pick(
                RuntimeSettings,
                {**params, "device": device or params.get("device", "cpu")},
                params=dict(params),
            ),
            name=name,
        )


def _pick(record, values, **extra):
    names = record.__dataclass_fields__
    return record(**{k: v for k, v in values.items() if k in names}, **extra)
