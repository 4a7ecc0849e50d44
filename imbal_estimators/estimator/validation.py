"""Every check of ``ImageImbalanceClassifier``'s parameters, before any image is read.

:func:`check_params` needs no data: the declared constraints, the argument
names (``module__*`` and friends), the network (backbone, weights, builder
arguments), the optimizer, the sampler, the cache and the device.
:func:`check_params_for_classes` needs the classes of ``y``: the class weights,
the loss (built and run once on dummy logits) and the combinations of
corrections. Both raise with a message that names the parameter and what it
takes; ``fit`` calls them before the pre-flight scan decodes the first image.
"""

import contextlib
import contextvars
import copy
import functools
import inspect
import warnings

import numpy as np
import torch
from skorch.callbacks import Callback

from ..data.cache import check_cache
from ..imbalance.class_weights import check_alpha
from ..imbalance.corrections import check_corrections
from ..imbalance.samplers import check_sampler
from ..losses.registry import get_loss
from ..models.backbones import check_backbone, check_weights_file, is_weights_file
from ..models.normalization import check_normalize
from ..models.preprocessing import check_input_size
from ..training.device import resolve_device
from ..training.learning import check_loss_learns
from ..training.precision import autocast_dtype
from ..utils.param_validation import Constraint, validate_parameter_constraints
from ..utils.text import first_line
from .loss_params import check_loss_params, loss_options

# scikit-learn's (and other libraries') spellings of what this estimator calls otherwise
_OTHER_SPELLINGS = {
    "class_weight": "alpha=... for class weights (alpha='balanced' is scikit-learn's "
    "class_weight='balanced'; also 'inverse', 'geometric', 'effective', 'sqrt', a dict "
    "or a sequence)",
    "learning_rate": "lr=...",
    "epochs": "max_epochs=...",
    "n_epochs": "max_epochs=...",
    "pretrained": "weights='DEFAULT' (pretrained) or weights=None",
}


class ModuleClassOrInstance(Constraint):
    """An ``nn.Module`` subclass or instance (the ``module`` parameter)."""

    def is_satisfied_by(self, value):
        is_class = isinstance(value, type) and issubclass(value, torch.nn.Module)
        return is_class or isinstance(value, torch.nn.Module)

    def __str__(self):
        return "an nn.Module subclass or instance"


class CallbackList(Constraint):
    """A list or tuple of skorch callbacks, each an instance, a class or a ``(name, callback)``."""

    def is_satisfied_by(self, value):
        if not isinstance(value, (list, tuple)):
            return False
        return all(_is_callback(item) for item in value)

    def __str__(self):
        return "a list of skorch callbacks (instances, or (name, callback) pairs)"


class OptimizerClass(Constraint):
    """A torch optimizer class, or any callable that builds one (the ``optimizer`` parameter)."""

    def is_satisfied_by(self, value):
        return callable(value)

    def __str__(self):
        return "a torch optimizer class such as torch.optim.AdamW (or a callable returning one)"


def _is_callback(item):
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
        item = item[1]
    if isinstance(item, type):
        return issubclass(item, Callback)
    return isinstance(item, Callback) or item is None


#: True inside :func:`skip_validation`
_SKIP_VALIDATION = contextvars.ContextVar("imbal_estimators_skip_validation", default=False)


@contextlib.contextmanager
def skip_validation():
    """Fits inside skip :func:`check_params`: the caller checked the parameters they share.

    scikit-learn's ``_fit_context(prefer_skip_nested_validation=True)`` in small,
    for the fits of one configuration: ``SeedEnsembleClassifier`` checks its
    configuration once for all members, ``ImbalanceSearchCV`` a candidate once for
    all its folds. A fit of other parameters does not belong inside.
    """
    token = _SKIP_VALIDATION.set(True)
    try:
        yield
    finally:
        _SKIP_VALIDATION.reset(token)


def fit_context(fit):
    """Decorate a fit method: :func:`check_params` first, unless in :func:`skip_validation`.

    Fits nested in it are checked as usual (``fit_many`` nests the fits of other
    parameters), unlike scikit-learn's ``prefer_skip_nested_validation=True``.
    """

    @functools.wraps(fit)
    def checked_fit(estimator, *args, **kwargs):
        if not _SKIP_VALIDATION.get():
            check_params(estimator)
        return fit(estimator, *args, **kwargs)

    return checked_fit


def check_params(estimator):
    """The checks that need no data; raise for the first bad parameter.

    Parameters
    ----------
    estimator : ImageImbalanceClassifier
    """
    name = type(estimator).__name__
    params = estimator.get_params(deep=False)
    check_argument_names(estimator, params)
    validate_parameter_constraints(estimator._parameter_constraints, params, name)
    check_loss_params(estimator)
    if estimator.criterion is not None:
        raise ValueError(
            f"{name} builds its criterion from 'loss'; got "
            f"criterion={estimator.criterion!r}. Pass it as loss=... instead."
        )
    if estimator.classes is not None:
        raise ValueError(f"{name} takes its classes from y; the 'classes' parameter must be None.")
    check_sampler(estimator.sampler, features_available=estimator.freeze_backbone)
    check_cache(estimator.cache)
    autocast_dtype(estimator.precision, resolve_device(estimator.__dict__.get("device")))
    weights = estimator.weights
    if weights is not None and is_weights_file(weights):
        check_weights_file(weights)
    check_normalize(estimator.normalize)
    if estimator.module is None:
        check_backbone(estimator.backbone, weights, estimator.get_params_for("module"))
        check_input_size(
            estimator.backbone, estimator.image_size, estimator.get_params_for("module")
        )
    elif weights not in (None, "DEFAULT") and not is_weights_file(weights):
        raise ValueError(
            f"With module=, the 'weights' parameter must be None or the path of a weights "
            f"file for your network (a torchvision weights name belongs to a backbone=); got "
            f"{weights!r}."
        )
    elif isinstance(estimator.module, type):
        check_arguments(estimator.module, estimator.get_params_for("module"), "module")
    optimizer_kwargs = {"lr": estimator.lr, **estimator.get_params_for("optimizer")}
    check_arguments(estimator.optimizer, optimizer_kwargs, "optimizer", positional=1)


def check_params_for_classes(estimator, classes, class_counts):
    """The checks that need the classes of ``y``: class weights, loss, corrections.

    Parameters
    ----------
    estimator : ImageImbalanceClassifier
    classes : ndarray of shape (n_classes,)
    class_counts : ndarray of shape (n_classes,)
        Images per class in ``y`` (a callable ``alpha`` is tried on them).
    """
    if estimator.alpha is not None:
        check_alpha(estimator.alpha, classes, beta=estimator.beta, counts=class_counts)
    check_loss(estimator, len(classes))
    check_corrections(estimator, len(classes))


def check_argument_names(estimator, params):
    """skorch's check of the argument names, before anything is built.

    Every keyword must be a parameter of the estimator's ``__init__`` (or of
    skorch's) or start with a known prefix and ``__`` (``module__*``,
    ``optimizer__*``, ``iterator_train__*`` ...). scikit-learn's spelling
    ``class_weight`` gets the name used here, ``alpha``.
    """
    name = type(estimator).__name__
    known = set()
    for cls in type(estimator).__mro__:
        if "__init__" in vars(cls):
            known.update(_argument_names(cls.__init__))
    # prefixes_ holds skorch's prefixes; the net's components register theirs in initialize
    prefixes = sorted(
        {*estimator.prefixes_, "module", "criterion", "optimizer"}, key=lambda p: (-len(p), p)
    )
    unexpected, undivided = [], []
    for key in sorted(params):
        # private attributes (scikit-learn's own bookkeeping) and attributes of the class
        # (a method patched on the instance) are no arguments
        if key in known or key.startswith("_") or hasattr(type(estimator), key):
            continue
        prefix = next((p for p in prefixes if key.startswith(p)), None)
        if prefix is None:
            unexpected.append(key)
        elif not key.startswith(prefix + "__"):
            undivided.append((key, prefix + "__" + key[len(prefix) :].lstrip("_")))
    for key in unexpected:
        if key in _OTHER_SPELLINGS:
            raise ValueError(
                f"{name} has no {key!r} parameter; use {_OTHER_SPELLINGS[key]}. Got "
                f"{key}={params[key]!r}."
            )
    if unexpected:
        raise ValueError(
            f"{name}.__init__() got unexpected argument(s) {', '.join(unexpected)}; see "
            f"help({name}) for its parameters (network arguments go as module__<name>)."
        )
    if undivided:
        key, suggestion = undivided[0]
        raise ValueError(f"Got an unexpected argument {key}, did you mean {suggestion}?")


def _argument_names(function):
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return set()
    keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {p.name for p in parameters if p.kind in keyword and p.name != "self"}


def check_arguments(function, kwargs, prefix, positional=0):
    """Refuse ``prefix__*`` keywords that ``function``'s signature does not take.

    Parameters
    ----------
    function : callable
        The builder: a module class, an optimizer class ...
    kwargs : dict
        The keywords it will get.
    prefix : str
        The parameter they come from, for the message (``module__width``).
    positional : int, default=0
        Leading arguments the caller passes by position (an optimizer's
        parameters), not checked.
    """
    try:
        parameters = list(inspect.signature(function).parameters.values())[positional:]
    except (TypeError, ValueError):  # builtins without a signature: nothing to check
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return
    keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    accepted = [p.name for p in parameters if p.kind in keyword]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        title = getattr(function, "__name__", repr(function))
        shown = ", ".join(f"{prefix}__{key}={kwargs[key]!r}" for key in unknown)
        raise ValueError(
            f"{shown}: {title} takes no argument {unknown[0]!r}; its arguments are "
            f"{accepted}. Check the name after '{prefix}__'."
        )


def check_loss(estimator, n_classes):
    """Build the loss on dummy weights and run it once on dummy logits.

    So a bad ``loss`` or ``criterion__*`` fails before the image scan, not inside
    ``initialize`` or the first batch. A user's loss must map logits ``(N, C)``
    and integer targets ``(N,)`` to a scalar it can differentiate.
    """
    name = type(estimator).__name__
    loss = estimator.loss
    alpha = None if estimator.alpha is None else torch.ones(n_classes)
    try:
        criterion = get_loss(
            copy.deepcopy(loss) if isinstance(loss, torch.nn.Module) else loss,
            gamma=estimator.gamma,
            alpha=alpha,
            **loss_options(estimator, np.ones(n_classes), np.ones(n_classes)),
        )
    except TypeError as exc:
        raise TypeError(
            f"Cannot build loss={loss!r} with gamma={estimator.gamma!r} and "
            f"criterion__* arguments {estimator.get_params_for('criterion')}: {exc}"
        ) from exc
    if isinstance(loss, str):
        check_loss_learns(estimator.loss, estimator.gamma, criterion, n_classes)
        return  # the registry's losses are tested on every shape they take
    # one more row than classes: a loss that broadcasts targets against logits fails here
    logits = torch.zeros(n_classes + 1, n_classes, requires_grad=True)
    target = torch.arange(n_classes + 1) % n_classes
    shown = loss.__name__ if isinstance(loss, type) else type(loss).__name__
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = criterion(logits, target)
            if not isinstance(value, torch.Tensor) or value.numel() != 1:
                raise ValueError(
                    f"it returned {type(value).__name__} {getattr(value, 'shape', '')}"
                )
            value.backward()
    except Exception as exc:  # noqa: BLE001 - whatever it raises, the loss does not fit
        raise ValueError(
            f"The 'loss' parameter of {name} must map logits of shape (n_images, n_classes) "
            f"and integer class targets of shape (n_images,) to a scalar loss. Got "
            f"loss={shown}, which fails on logits {tuple(logits.shape)} and targets "
            f"{tuple(target.shape)}: {type(exc).__name__}: {exc}"
        ) from exc


# (backbone, module arguments, image size) whose forward pass ran once in this process
_FORWARD_CHECKED: set = set()


def forward_checked(build, backbone, module_kwargs, image_size, auto=False):
    """``build()`` (a ``(network, mean, std)`` builder), its network run once on one
    image of ``image_size`` first, so that a size it cannot take is named before training.

    Once per backbone, module arguments and size in a process (a search builds the same
    network for every fit). ``auto``: the size came from ``image_size="auto"``.

    Raises
    ------
    ValueError
        Naming the backbone, the size and ``image_size``.
    """
    built = build()
    key = (backbone, repr(sorted(module_kwargs.items())), image_size)
    if key in _FORWARD_CHECKED:
        return built
    network = built[0]
    was_training = network.training
    network.eval()
    device = next(network.parameters(), torch.zeros(0)).device
    try:
        # its own generator: the global one seeds the fit, and this runs once a process
        image = torch.rand(1, 3, image_size, image_size, generator=torch.Generator())
        with torch.no_grad():
            network(image.to(device))
    except Exception as exc:  # the network's own check of its input, in its own words
        way_out = (
            "image_size='auto' gave the size of its pretrained recipe: set image_size "
            "(--image-size) to one it takes"
            if auto
            else "set image_size (--image-size) to a size it takes, or leave it 'auto'"
        )
        raise ValueError(
            f"backbone {backbone!r} cannot take {image_size} x {image_size} px images "
            f"({type(exc).__name__}: {first_line(exc)}); {way_out}."
        ) from exc
    finally:
        network.train(was_training)
    _FORWARD_CHECKED.add(key)
    return built


def check_module_output(module, image_size, classes, trains_body=True):
    """A user's module must give one logit per class; find out before training.

    Parameters
    ----------
    module : nn.Module
        The network built from the ``module`` parameter.
    image_size : int
    classes : ndarray
        ``classes_``.
    """
    extra = [k for k, v in module.state_dict().items() if not isinstance(v, torch.Tensor)]
    if extra:  # get_extra_state(): safetensors and the feature cache hold tensors only
        raise ValueError(
            f"module keeps state that is not a tensor ({extra[0]!r}, from get_extra_state()); "
            "the package saves and caches tensors only: keep that state in buffers instead."
        )
    was_training = module.training
    module.eval()
    device = next(module.parameters(), torch.zeros(0)).device
    # a frozen body's head trains on cached features: its forward may run without grad
    trainable = trains_body and any(p.requires_grad for p in module.parameters())
    # random pixels, not zeros: a network that standardizes each image divides by its spread
    images = torch.rand(2, 3, image_size, image_size, generator=torch.Generator().manual_seed(0))
    try:
        with torch.set_grad_enabled(trainable):
            logits = module(images.to(device))
    except Exception as exc:  # the user's forward: any error, named with the input it got
        raise ValueError(
            f"module failed on a batch of 2 images of 3 x {image_size} x {image_size} px "
            f"({type(exc).__name__}: {first_line(exc)}). If it takes another input size, "
            "set image_size (--image-size) to it."
        ) from exc
    finally:
        module.train(was_training)
    if not isinstance(logits, torch.Tensor):
        raise ValueError(
            f"module gives a {type(logits).__name__}, not a tensor; its forward must return "
            f"the logits only, a tensor of shape (n_images, {len(classes)})."
        )
    if logits.shape != (2, len(classes)):
        shape = tuple(logits.shape)
        raise ValueError(
            f"module gives outputs of shape {shape} for 2 images; it must give "
            f"(n_images, {len(classes)}), one logit per class of classes_ {classes.tolist()}."
        )
    if not logits.is_floating_point():
        raise ValueError(f"module gives {logits.dtype} outputs; logits must be floating point.")
    if trainable and not logits.requires_grad:
        raise ValueError(
            "module's outputs do not depend on its trainable weights (a forward under "
            "torch.no_grad(), or .detach()): training could not change them."
        )
    if not torch.isfinite(logits.detach()).all():
        raise ValueError("module gives non-finite logits (nan or inf) for 2 random images.")
