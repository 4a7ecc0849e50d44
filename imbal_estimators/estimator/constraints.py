"""The allowed values of every parameter of
:class:`~imbal_estimators.ImageImbalanceClassifier`, in one table.

scikit-learn's ``_parameter_constraints`` (the estimator's class attribute is this
dict): ``fit`` validates against it, and the CLI builds its option types from it.
"""

import os
from numbers import Integral, Real

import torch

from ..data.preflight import ON_BAD_IMAGE_OPTIONS
from ..decision.metrics import MONITOR_OPTIONS
from ..imbalance.class_weights import ALPHA_STRATEGIES
from ..imbalance.samplers import SAMPLERS
from ..losses.registry import LOSSES
from ..training.precision import PRECISIONS
from ..utils.limits import MAX_BATCH_SIZE, MAX_IMAGE_SIZE, MAX_TTA
from ..utils.param_validation import (
    HasMethods,
    Interval,
    Options,
    RealNotInt,
    StrOptions,
)
from .finetune import HEAD_INIT_OPTIONS
from .loss_params import deprecated_constraints
from .validation import (
    CallbackList,
    ModuleClassOrInstance,
    OptimizerClass,
)

PARAMETER_CONSTRAINTS = {
    # the registries' live key views: a new entry is a valid value at once
    "loss": [StrOptions(LOSSES.keys()), callable, HasMethods(["forward"])],
    "module": [None, ModuleClassOrInstance()],
    "optimizer": [OptimizerClass()],
    "callbacks": [None, StrOptions({"disable"}), CallbackList()],
    "gamma": [Interval(Real, 0, None, closed="left")],
    "alpha": [
        None,
        StrOptions(ALPHA_STRATEGIES.keys()),
        Interval(RealNotInt, 0, 1, closed="neither"),
        "array-like",
        dict,
        callable,
    ],
    "beta": [Interval(Real, 0, 1, closed="left")],
    "sampler": [None, StrOptions(SAMPLERS.keys()), HasMethods(["fit_resample"])],
    "backbone": [str],
    "weights": [None, str, os.PathLike],
    "image_size": [StrOptions({"auto"}), Interval(Integral, 1, MAX_IMAGE_SIZE, closed="both")],
    "normalize": [None, StrOptions({"auto", "imagenet", "inception"}), tuple, list],
    "augment": ["boolean", callable],
    "monitor": [StrOptions(set(MONITOR_OPTIONS))],
    "pos_label": [None, Real, str, "boolean"],
    "cache": [None, str, os.PathLike],
    "device": [str, torch.device],
    "random_state": ["random_state"],
    "train_split": [
        None,
        Options(bool, {False}),
        Interval(RealNotInt, 0, 1, closed="neither"),
        Interval(Integral, 2, None, closed="left"),
        callable,
    ],
    "lr": [Interval(Real, 0, None, closed="left")],
    "max_epochs": [Interval(Integral, 1, None, closed="left")],
    "batch_size": [
        Interval(Integral, 1, MAX_BATCH_SIZE, closed="both"),
        Options(Integral, {-1}),
    ],
    "verbose": ["verbose"],
    "freeze_backbone": ["boolean"],
    "head_solver": [None, StrOptions({"lbfgs"})],
    "head_init": [StrOptions(set(HEAD_INIT_OPTIONS))],
    "freeze_norm": [StrOptions({"auto"}), "boolean"],
    # bounded: lr times a huge scale overflows the optimizer's float ("cannot be converted")
    "head_lr_scale": [StrOptions({"auto"}), Interval(Real, 0, 1e6, closed="right")],
    "precision": [StrOptions(set(PRECISIONS))],
    **deprecated_constraints(),  # tau, max_margin, ldam_s
    "label_smoothing": [Interval(Real, 0, 1, closed="left")],
    "drw_epoch": [None, Interval(Integral, 1, None, closed="left")],
    "threshold": [None, StrOptions({"auto"}), Interval(RealNotInt, 0, 1, closed="both")],
    "posthoc_tau": [None, Interval(Real, 0, None, closed="left")],
    "calibrate": ["boolean"],
    "tta": [None, Interval(Integral, 1, MAX_TTA, closed="both")],
    "checkpoint_dir": [None, str, os.PathLike],
    "on_bad_image": [StrOptions(set(ON_BAD_IMAGE_OPTIONS))],
    "auto_batch_size": ["boolean"],
    "use_caching": [StrOptions({"auto"}), "boolean"],
}
