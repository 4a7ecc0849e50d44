"""``ImageImbalanceClassifier``: a skorch classifier over image paths.

This module holds the parameters and the skorch hooks that build the network and
the loss; ``fit`` runs :mod:`~imbal_estimators.estimator.fitting` (labels -> split
-> pre-flight scan -> sampler -> alpha -> the training loop of
:mod:`~imbal_estimators.estimator.loop`, skorch's public hooks), and the callbacks in
:mod:`imbal_estimators.training.callbacks` resample, monitor and keep the best epoch.
"""

import copy
from collections.abc import Callable, Hashable, Sequence
from functools import partial
from inspect import signature
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from sklearn.utils.validation import check_is_fitted
from skorch import NeuralNetClassifier
from skorch.callbacks import EpochTimer, ProgressBar
from torch.utils.data import Dataset

from ..data.images import ImagePathDataset, check_files_exist, check_paths
from ..imbalance.class_weights import AlphaSpec
from ..losses.registry import get_loss
from ..models.backbones import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImageModel,
    build_backbone,
    is_weights_file,
    load_state,
    read_weights_file,
)
from ..models.features import FeatureDataset
from ..models.normalization import apply_normalize
from ..training.callbacks import (
    DeferredReweighting,
    EpochLog,
    EpochLossScoring,
    EpochResampler,
    KeepBestModel,
    ValidationScore,
    history_key,
)
from ..training.device import resolve_device_name
from ..training.divergence import DivergenceCheck
from ..training.frozen import frozen_model, remember_body
from ..training.heads import HeadTrainingMixin
from ..training.learning import LearningCheck
from ..training.precision import grad_scaler, set_precision, to_memory_format
from ..training.seeding import EpochSeed
from ..utils.types import FloatArray, ImagePaths, LabelArray, Labels, StrPath
from ._docstrings import CLASSIFIER_DOC
from .constraints import PARAMETER_CONSTRAINTS
from .conventions import decision_scores, drop_unfitted_state, params_repr
from .finetune import HeadLearningRate, ProbeHead, freezes_norm
from .fitted import normalize_fitted
from .fitting import fit_estimator
from .geometry import estimator_geometry
from .loss_params import DEPRECATED, loss_options, pickled_state
from .predicting import decide_indices, probabilities, rule_in_words
from .settings import fit_settings
from .validation import (
    check_module_output,
    fit_context,
    forward_checked,
)

#: the parameters of the signature that skorch's ``NeuralNet`` takes and stores itself
_SKORCH_PARAMS = (
    "criterion",
    "optimizer",
    "lr",
    "max_epochs",
    "batch_size",
    "train_split",
    "callbacks",
    "verbose",
    "device",
)


class ImageImbalanceClassifier(HeadTrainingMixin, NeuralNetClassifier):
    __doc__ = CLASSIFIER_DOC  # parameters, attributes, example: estimator/_docstrings.py

    _parameter_constraints = PARAMETER_CONSTRAINTS  # estimator/constraints.py

    def __init__(
        self,
        *,
        loss: str | torch.nn.Module | type[torch.nn.Module] = "ce",
        gamma: float = 2.0,
        alpha: AlphaSpec = None,
        beta: float = 0.999,
        sampler: object = None,
        backbone: str = "resnet34",
        weights: StrPath | None = "DEFAULT",
        image_size: int | str = "auto",
        normalize: str | tuple[Sequence[float], Sequence[float]] | None = "auto",
        augment: bool | Callable[[torch.Tensor], torch.Tensor] = True,
        monitor: str = "balanced_accuracy",
        pos_label: Hashable | None = None,
        cache: StrPath | None = "memory",
        device: str = "auto",
        random_state: int | np.random.RandomState | None = None,
        module: torch.nn.Module | type[torch.nn.Module] | None = None,
        criterion: None = None,
        optimizer: type[torch.optim.Optimizer] = torch.optim.AdamW,
        lr: float = 1e-4,
        max_epochs: int = 10,
        batch_size: int = 32,
        train_split: float | Callable[..., object] | None = 0.2,
        callbacks: Sequence[object] | None = None,
        verbose: int = 1,
        freeze_backbone: bool = False,
        head_solver: str = "lbfgs",
        head_init: str = "auto",
        freeze_norm: bool | str = "auto",
        head_lr_scale: float | str = "auto",
        precision: str = "auto",
        tau: float | str = DEPRECATED,
        max_margin: float | str = DEPRECATED,
        ldam_s: float | str = DEPRECATED,
        label_smoothing: float = 0.0,
        drw_epoch: int | None = None,
        threshold: float | str | None = None,
        posthoc_tau: float | None = None,
        calibrate: bool = False,
        tta: int | None = None,
        checkpoint_dir: StrPath | None = None,
        on_bad_image: str = "raise",
        auto_batch_size: bool = False,
        **kwargs: Any,
    ) -> None:
        params = {k: v for k, v in locals().items() if k not in ("self", "kwargs", "__class__")}
        skorch_params = {name: params.pop(name) for name in _SKORCH_PARAMS}
        # the module is set below: skorch refuses a torch module set outside initialize_*
        super().__init__(None, **skorch_params, **kwargs)
        # These three may hold a torch module (a network, a loss, a transform), which
        # skorch's __setattr__ refuses outside initialize_*; none is a component of the net.
        self.__dict__.update(
            module=params.pop("module"), loss=params.pop("loss"), augment=params.pop("augment")
        )
        for name, value in params.items():  # the others, in the signature's order
            setattr(self, name, value)
        drop_unfitted_state(self)

    # skorch's unfitted state, read from the class until fit sets it (see conventions.py)
    initialized_ = False
    history_ = None
    _checkpoint_plan_ = None  # the checkpoint a fit holds the lock of (training.plan)
    _callbacks_pending_ = False  # load() builds no callbacks; the next fit does

    @property
    def virtual_params_(self) -> dict[str, Any]:
        return self.__dict__.setdefault("virtual_params_", {})

    @virtual_params_.setter
    def virtual_params_(self, value: dict[str, Any]) -> None:
        self.__dict__["virtual_params_"] = value

    def __repr__(self) -> str:
        return params_repr(self)

    @property
    def device(self):
        """The torch device skorch uses: ``"auto"`` is resolved on every read.

        ``get_params`` reports the value as given, so ``clone`` keeps ``"auto"``
        and a pickle made on a CUDA machine picks the CPU where there is no GPU.
        """
        return resolve_device_name(self.__dict__.get("device", "auto"))

    @device.setter
    def device(self, value):
        self.__dict__["device"] = value

    def get_params(self, deep: bool = True, **kwargs: Any) -> dict[str, Any]:
        params = super().get_params(deep=deep, **kwargs)
        params["device"] = self.__dict__.get("device", "auto")
        # skorch's bookkeeping of which kwargs to check, not a parameter: __init__
        # rebuilds it from the keyword arguments it receives.
        params.pop("_params_to_validate", None)
        return params

    def set_params(self, **params: Any) -> "ImageImbalanceClassifier":
        """Set parameters; ``sampler__*`` reaches the sampler, as in a Pipeline.

        skorch treats every ``a__b`` key as its own prefixed argument, which
        would store ``sampler__sampling_strategy`` on the net instead of the
        sampler, so nested sampler parameters are routed here.
        """
        nested = {k: v for k, v in params.items() if k.startswith("sampler__")}
        if "callbacks" in params and not self.initialized_:
            # skorch would build the callbacks now; fit checks and builds them
            self.callbacks = params.pop("callbacks")
        for key in [k for k in params if k not in nested and k not in self.prefixes_]:
            if "__" not in key and isinstance(
                params[key], (torch.nn.Module, torch.optim.Optimizer)
            ):
                # a parameter, not a component of the net (see __init__)
                self.__dict__[key] = params.pop(key)
        super().set_params(**{k: v for k, v in params.items() if k not in nested})
        for key, value in nested.items():
            if self.sampler is None or not hasattr(self.sampler, "set_params"):
                raise ValueError(f"Cannot set {key}: sampler is {self.sampler!r}.")
            self.sampler.set_params(**{key.removeprefix("sampler__"): value})
        return self

    # -- fitted state -------------------------------------------------------------------

    @property
    def classes_(self):
        try:
            return self.__dict__["classes_"]
        except KeyError:
            raise AttributeError(
                f"{type(self).__name__} has no attribute 'classes_' before fit."
            ) from None

    @classes_.setter
    def classes_(self, value):
        self.__dict__["classes_"] = value

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.one_d_array = True
        tags.input_tags.string = True
        tags.non_deterministic = True
        tags.classifier_tags.poor_score = True
        return tags

    # -- fit ----------------------------------------------------------------------------

    def fit(self, X: ImagePaths, y: Labels, **fit_params: Any) -> "ImageImbalanceClassifier":
        """Fit the network on image paths ``X`` and labels ``y``.

        Parameters
        ----------
        X : list, tuple, array, pandas Series or one-column DataFrame of paths
        y : array-like of shape (n_samples,)
            Class labels of any hashable type.
        **fit_params
            Not supported (the network takes images only); use ``alpha`` or
            ``sampler`` instead of ``sample_weight``.

        Returns
        -------
        self : ImageImbalanceClassifier
        """
        return self._fit(X, y, reinitialize=not self.warm_start, fit_params=fit_params)

    def partial_fit(
        self,
        X: ImagePaths,
        y: Labels | None = None,
        classes: Labels | None = None,
        **fit_params: Any,
    ) -> "ImageImbalanceClassifier":
        """Train ``max_epochs`` more epochs without re-initializing the network.

        Parameters
        ----------
        X, y : as in :meth:`fit`
        classes : array-like, optional
            All labels, for a first call whose ``y`` lacks some of them. Later
            calls keep the ``classes_`` of the first.

        Returns
        -------
        self : ImageImbalanceClassifier
        """
        return self._fit(X, y, reinitialize=False, fit_params=fit_params, classes=classes)

    @fit_context  # check_params, unless the caller checked these parameters already
    def _fit(self, X, y, reinitialize, fit_params, classes=None):
        if fit_params:
            raise TypeError(
                f"{type(self).__name__}.fit() got unexpected argument(s) "
                f"{sorted(fit_params)}; the network takes images only. Weight classes "
                "with alpha=... or resample with sampler=... instead of sample_weight."
            )
        return fit_estimator(self, X, y, reinitialize, classes=classes)

    # -- skorch hooks --------------------------------------------------------------------

    @property
    def _default_callbacks(self):
        monitor = history_key(self.monitor)
        by_loss = monitor == "valid_loss"
        callbacks = [
            ("epoch_seed", EpochSeed()),
            # the head's start and rate, before any other callback reads them
            ("probe_head", ProbeHead()),
            ("head_lr", HeadLearningRate()),
            ("epoch_timer", EpochTimer()),
            ("train_loss", EpochLossScoring(name="train_loss", on_train=True)),
            ("valid_loss", EpochLossScoring(name="valid_loss")),
            ("resampler", EpochResampler()),
            ("deferred_reweighting", DeferredReweighting()),
            ("divergence", DivergenceCheck()),
            ("learning", LearningCheck()),
        ]
        if not by_loss:
            callbacks.append(("valid_score", ValidationScore(self.monitor)))
        callbacks.append(("keep_best", KeepBestModel(monitor, lower_is_better=by_loss)))
        if isinstance(self.verbose, (bool, int, np.integer)) and self.verbose:
            callbacks.append(("progress_bar", ProgressBar()))
        ignored = ["train_class_counts", "class_weights_on"]
        callbacks.append(("print_log", EpochLog(keys_ignored=ignored)))
        return callbacks

    def initialize_module(self):
        kwargs = self.get_params_for("module")
        if self.module is None:
            n_classes = self._n_classes_for_init()
            build = partial(
                forward_checked,
                partial(build_backbone, self.backbone, self.weights, n_classes, **kwargs),
                self.backbone,
                kwargs,
                estimator_geometry(self).crop,
                auto=self.image_size == "auto",
            )
        else:
            build = self._build_module
        if not self.freeze_backbone:
            module = ImageModel(*build())
            module.frozen_norm = freezes_norm(self)
        elif self.module is None:
            build_args = (self.backbone, self.weights, n_classes, kwargs)
            module = frozen_model(fit_settings(self), build, build_args)
        else:
            module = frozen_model(fit_settings(self), build)
        apply_normalize(module, self.normalize)
        # moved here rather than by skorch after this, so that what remember_body keys
        # stays at its address
        module = to_memory_format(module, self.precision, self.device).to(self.device)
        set_precision(module, self.precision, self.device)
        if self.freeze_backbone:
            backbone = self.backbone if self.module is None else None
            remember_body(module, backbone, self.weights, kwargs)
        self.grad_scaler_ = grad_scaler(self.precision, self.device, self.freeze_backbone)
        self.module_ = module
        return self

    def _build_module(self):
        """The user's ``module``, checked, with ImageNet's normalization (and the state of
        ``weights`` when that is a file)."""
        kwargs = self.get_params_for("module")
        if isinstance(self.module, type) and "num_classes" in signature(self.module).parameters:
            kwargs.setdefault("num_classes", self._n_classes_for_init())
        backbone = self.initialized_instance(self.module, kwargs)
        if self.weights is not None and is_weights_file(self.weights):
            name = getattr(self.module, "__name__", type(self.module).__name__)
            state = read_weights_file(self.weights, model=backbone)
            backbone = load_state(backbone, state, self.weights, self.n_classes_, f"module={name}")
        check_module_output(
            backbone,
            estimator_geometry(self).crop,
            self.classes_,
            trains_body=not self.freeze_backbone,
        )
        return backbone, IMAGENET_MEAN, IMAGENET_STD

    def initialize_criterion(self):
        self._n_classes_for_init()
        return self._set_criterion(self.class_weights_on_)

    def _set_criterion(self, class_weights_on):
        # off until drw_epoch (DeferredReweighting switches it on)
        weights = self.class_weight_ if class_weights_on else None
        alpha = None if weights is None else torch.as_tensor(weights, dtype=torch.float32)
        loss = copy.deepcopy(self.loss) if isinstance(self.loss, torch.nn.Module) else self.loss
        options = loss_options(self, self.class_counts_, self.loss_class_counts_)
        self.criterion_ = get_loss(loss, gamma=self.gamma, alpha=alpha, **options)
        return self

    def rebuild_criterion(self, class_weights_on=None):
        """Build the loss again (on the net's device), e.g. when the class weights switch on.

        Only after ``initialize``: the criterion is then a registered component of
        the net, which skorch lets any method replace. ``class_weights_on`` (None:
        ``class_weights_on_``) says whether ``class_weight_`` weights it.
        """
        self._n_classes_for_init()
        on = self.class_weights_on_ if class_weights_on is None else class_weights_on
        self._set_criterion(on)
        self.criterion_ = self.criterion_.to(self.device)
        return self

    def _n_classes_for_init(self):
        if not hasattr(self, "classes_"):  # the property raises before fit
            raise AttributeError(
                f"{type(self).__name__} builds its network for the classes of y; "
                "call fit(X, y) instead of initialize()."
            )
        return self.n_classes_

    # -- predict -------------------------------------------------------------------------

    def predict_proba(self, X: ImagePaths | Dataset) -> FloatArray:
        """Class probabilities (softmax of the logits, whatever the loss).

        Parameters
        ----------
        X : list, tuple, array, pandas Series or one-column DataFrame of paths
            Or a torch ``Dataset`` of images, as skorch callbacks pass.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes), float64
            Columns ordered like ``classes_``; rows sum to 1. With ``calibrate``
            the softmax of ``logits / temperature_``; with ``tta`` the mean over
            the views.
        """
        check_is_fitted(self)
        if not isinstance(X, torch.utils.data.Dataset):
            X = check_paths(X)
            check_files_exist(X)
        return probabilities(self, X)

    def predict(self, X: ImagePaths | Dataset) -> LabelArray:
        """Predicted labels (of the type of ``y`` in ``fit``) for image paths ``X``.

        Given one of the estimator's own labelled datasets (skorch's
        ``EpochScoring`` scores the validation split that way), it returns class
        indices, the encoding of the targets that dataset holds.
        """
        indices = decide_indices(self, self.predict_proba(X))
        if isinstance(X, (ImagePathDataset, FeatureDataset)) and X.targets is not None:
            return indices
        return self.classes_[indices]

    def score(self, X: ImagePaths, y: Labels, sample_weight: npt.ArrayLike | None = None) -> float:
        """Accuracy of :meth:`predict` on ``X`` against ``y``, as scikit-learn's classifiers."""
        return float(super().score(X, y, sample_weight=sample_weight))

    def decision_function(self, X: ImagePaths) -> FloatArray:
        """Log-odds of ``classes_[1]`` (binary, shape ``(n,)``) or log-probabilities.

        As scikit-learn defines it for classifiers, from :meth:`predict_proba`:
        for a binary problem ``log P(classes_[1]) - log P(classes_[0])`` whatever
        ``pos_label`` or ``threshold_`` are; ``(n, n_classes)`` log-probabilities
        otherwise. Scorers such as ``"roc_auc"`` use it.
        """
        return decision_scores(self.predict_proba(X))

    def decide(self, proba: npt.ArrayLike) -> LabelArray:
        """The labels :meth:`predict` gives for the probabilities ``proba``.

        For callers that already hold ``predict_proba``'s output (the CLI's
        ``predict`` writes both): the same decision rule, ``threshold_``,
        ``posthoc_tau`` or argmax, without a second pass over the images.

        Parameters
        ----------
        proba : array-like of shape (n_samples, n_classes)

        Returns
        -------
        ndarray of shape (n_samples,)
            Labels from ``classes_``.
        """
        check_is_fitted(self)
        return self.classes_[decide_indices(self, proba)]

    def decision_rule(self, threshold: float | None = None) -> str:
        """How :meth:`predict` decides, in words (for reports and the CLI).

        ``threshold`` overrides ``threshold_`` (an ensemble's mean threshold).
        """
        check_is_fitted(self)
        return rule_in_words(self, threshold)

    def save(self, path: StrPath) -> str:
        """Save the fitted estimator as safetensors weights and JSON, without pickle.

        Writes the directory ``path`` with ``model.safetensors`` (the network's
        weights) and ``config.json`` (parameters, ``classes_``, class weights
        and counts, preprocessing, history). Load it with
        :func:`imbal_estimators.load`, which executes no pickled code.

        Parameters
        ----------
        path : str or os.PathLike
            A directory, created if needed.

        Returns
        -------
        path : str
        """
        from .persistence import save

        return save(self, path)

    def export(self, path: StrPath, format: str = "onnx") -> str:
        """Export ``predict`` as one graph: uint8 images in, probabilities and labels out.

        The graph resizes and normalizes as ``predict`` does and applies this
        model's decision rule (``threshold_``, ``temperature_``, ``posthoc_tau``); a
        sidecar ``path + ".json"`` names the classes. See
        :mod:`imbal_estimators.estimator.export`.

        Parameters
        ----------
        path : str or os.PathLike
            The model file to write.
        format : {"onnx", "pt2", "torchscript"}, default="onnx"
            ONNX (needs the ``[export]`` extra), a ``torch.export`` program, or
            traced TorchScript.

        Returns
        -------
        path : str
        """
        from .export import export

        return export(self, path, format=format)

    def __setstate__(self, state):
        # skorch maps the tensors to state["device"], which must be a real device;
        # "auto" stays "auto", so a CUDA-fitted model loads on a CPU-only machine.
        requested = state.get("device")
        state["device"] = resolve_device_name(requested)
        if "classes_" in state:  # fitted: a pickle of 0.1 or 0.2 gets what it lacks, once
            size = state.get("image_size", 224)
            batch_size = state.get("batch_size", 32)
            state.update(normalize_fitted(state, state["classes_"], batch_size, size))
        # a pickle from before head_init and freeze_norm: its start and its BatchNorm
        state.setdefault("head_init", "random")
        state.setdefault("freeze_norm", False)
        state.setdefault("head_lr_scale", 1.0)
        super().__setstate__(pickled_state(state))  # 0.2's tau, max_margin, ldam_s moved
        if requested == "auto":
            self.device = "auto"
