"""Imbalanced image classification as a scikit-learn problem.

The loss (cross-entropy, focal), the class-weight strategy (``alpha``) and the
resampling (imbalanced-learn samplers) are estimator parameters, so
``GridSearchCV``, ``cross_val_score`` and Optuna can tune them.
"""

# First: Ctrl-C while the command's imports load is one line and status 130, and no test
# framework comes in with imbalanced-learn (utils/startup.py).
from .utils import startup as _startup  # noqa: F401  # isort: skip
from importlib.metadata import PackageNotFoundError as _PackageNotFoundError
from importlib.metadata import version as _version

from .data.demo import make_demo_image_folder
from .data.images import ImageFileError, load_image_folder
from .estimator.classifier import ImageImbalanceClassifier
from .estimator.ensemble import SeedEnsembleClassifier
from .estimator.persistence import load
from .imbalance.class_weights import compute_alpha
from .imbalance.samplers import BalancedBatchSampler
from .io import legacy as _legacy
from .losses.balanced import (
    BalancedSoftmaxLoss,
    CBFocalLoss,
    LDAMLoss,
    LogitAdjustedLoss,
    balanced_softmax_loss,
    cb_focal_loss,
    ldam_loss,
    logit_adjusted_loss,
)
from .losses.registry import FocalLoss, focal_loss
from .models.small_cnn import SmallCNN
from .search.cv import ImbalanceSearchCV

_legacy.install()  # 0.1 module paths, for old pickles and saved models

try:  # the version pip installed, from the package's metadata (pyproject.toml)
    __version__ = _version("imbal-estimators")
except _PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "BalancedBatchSampler",
    "BalancedSoftmaxLoss",
    "CBFocalLoss",
    "FocalLoss",
    "ImageFileError",
    "ImageImbalanceClassifier",
    "LDAMLoss",
    "LogitAdjustedLoss",
    "balanced_softmax_loss",
    "cb_focal_loss",
    "ImbalanceSearchCV",
    "compute_alpha",
    "focal_loss",
    "ldam_loss",
    "load",
    "load_image_folder",
    "logit_adjusted_loss",
    "make_demo_image_folder",
    "SeedEnsembleClassifier",
    "SmallCNN",
]
