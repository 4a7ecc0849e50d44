"""Imbalanced image classification as a scikit-learn problem.

The loss (cross-entropy, focal), the class-weight strategy (``alpha``) and the
resampling (imbalanced-learn samplers) are estimator parameters, so
``GridSearchCV``, ``cross_val_score`` and Optuna can tune them.
"""

from .alpha import compute_alpha
from .classifier import ImageImbalanceClassifier
from .data import ImageFileError, load_image_folder
from .datasets import make_demo_image_folder
from .losses import FocalLoss, focal_loss
from .losses_balanced import (
    BalancedSoftmaxLoss,
    CBFocalLoss,
    LDAMLoss,
    LogitAdjustedLoss,
    balanced_softmax_loss,
    cb_focal_loss,
    ldam_loss,
    logit_adjusted_loss,
)
from .persistence import load
from .sampling import BalancedBatchSampler
from .search import ImbalanceSearchCV
from .small_cnn import SmallCNN

__version__ = "0.1.0"

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
    "SmallCNN",
]
