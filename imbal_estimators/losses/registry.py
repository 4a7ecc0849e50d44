"""The ``loss=`` resolver: a registry from loss names to modules.

The losses themselves live in :mod:`imbal_estimators.losses.focal` and
:mod:`imbal_estimators.losses.balanced`; this module maps the estimator's
``loss`` and its hyperparameters to one ``nn.Module``.

Which class counts a loss gets (the estimator decides, see ``COUNTS_SEEN``):

* ``"cb_focal"`` and ``"ldam"`` take the **raw** counts of the training part.
  Both model how much a class can be trusted from the number of *distinct*
  images (the effective number of samples; the generalization bound behind the
  margins), which duplicates drawn by an over-sampler do not raise.
* ``"logit_adjusted"`` and ``"balanced_softmax"`` take the counts **the loss
  sees** (after the sampler's draw; uniform for a balancing sampler). They undo
  the label prior of the data they are trained on; under a balancing sampler
  that prior is already uniform and the adjustment vanishes, so they cannot
  correct twice.
"""

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from numbers import Real

from torch import nn

from ..utils.param_validation import Interval
from .balanced import (
    MAX_LDAM_S,
    MAX_TAU,
    BalancedSoftmaxLoss,
    CBFocalLoss,
    LDAMLoss,
    LogitAdjustedLoss,
)
from .focal import FocalLoss, focal_loss

__all__ = [
    "LOSSES",
    "COUNTS_SEEN",
    "HYPERPARAMETERS",
    "LossEntry",
    "get_loss",
    "FocalLoss",
    "focal_loss",
]


@dataclass(frozen=True)
class LossEntry:
    """A named loss of the registry.

    Attributes
    ----------
    build : callable
        The loss class (or a function returning an ``nn.Module``). Its signature
        says what it takes, as a timm entrypoint's does: ``get_loss`` passes
        ``class_counts``, the class weights (as ``alpha`` or ``weight``),
        ``gamma``, ``label_smoothing`` and the hyperparameters of
        :data:`HYPERPARAMETERS` only where the signature names them.
    description : str
        One line, for ``--help`` and the docs.
    counts : {None, "raw", "resampled"}, default=None
        Which class counts the loss takes: none, the training part's
        (``class_counts_``) or those the loss sees after the sampler.
    smoothing : bool, default=False
        Whether it is a cross-entropy that takes ``label_smoothing``.
    """

    build: Callable[..., nn.Module]
    description: str
    counts: str | None = None
    smoothing: bool = False


#: The losses by name: the only place their names exist. Adding a loss is a class
#: (or a function returning a module) plus one entry here.
LOSSES = {
    "ce": LossEntry(
        nn.CrossEntropyLoss, "cross-entropy (weighted by alpha when given)", None, True
    ),
    "focal": LossEntry(FocalLoss, "focal loss (Lin 2017): gamma focuses on hard images"),
    "cb_focal": LossEntry(
        CBFocalLoss, "class-balanced focal loss (Cui 2019): effective-number weights, beta", "raw"
    ),
    "ldam": LossEntry(
        LDAMLoss, "LDAM (Cao 2019): per-class margins max_margin, logit scale s", "raw", True
    ),
    "logit_adjusted": LossEntry(
        LogitAdjustedLoss, "logit-adjusted CE (Menon 2021): + tau log prior", "resampled", True
    ),
    "balanced_softmax": LossEntry(
        BalancedSoftmaxLoss, "Balanced Softmax (Ren 2020): + log class counts", "resampled", True
    ),
}

#: For the losses that need class counts: ``"raw"`` (the training part's counts,
#: ``class_counts_``) or ``"resampled"`` (the counts the loss sees after the sampler).
#: A view of :data:`LOSSES` at import; the code reads ``LOSSES[name].counts``.
COUNTS_SEEN = {name: entry.counts for name, entry in LOSSES.items() if entry.counts}

#: The hyperparameters of the registry's losses (the estimator's ``criterion__*``) with
#: their allowed values. Each goes to the losses whose signature names it and is left
#: out by the others, so one search may set ``criterion__tau`` over several losses.
HYPERPARAMETERS = {
    "beta": [Interval(Real, 0, 1, closed="left")],
    "tau": [Interval(Real, -MAX_TAU, MAX_TAU, closed="both")],
    "max_margin": [Interval(Real, 0, None, closed="neither")],
    "s": [Interval(Real, 0, MAX_LDAM_S, closed="right")],
}

# get_loss's name of 0.2 for LDAM's ``s``
_OLD_NAMES = {"ldam_s": "s"}


def get_loss(loss, *, gamma=2.0, alpha=None, class_counts=None, label_smoothing=0.0, **kwargs):
    """Build the loss module behind ``ImageImbalanceClassifier(loss=...)``.

    The loss receives only what its signature declares, as a timm entrypoint
    does: ``gamma``, the class weights (as ``alpha``, else ``weight``),
    ``class_counts``, ``label_smoothing`` and the hyperparameters of
    :data:`HYPERPARAMETERS` (``beta``, ``tau``, ``max_margin``, ``s``) go to the
    losses that name them; other keyword arguments go to the loss as they are.

    Parameters
    ----------
    loss : str, nn.Module subclass or nn.Module instance
        ``"ce"`` is ``nn.CrossEntropyLoss`` (weighted when ``alpha`` is given),
        ``"focal"`` is :class:`~imbal_estimators.FocalLoss`, ``"cb_focal"``,
        ``"ldam"``, ``"logit_adjusted"`` and ``"balanced_softmax"`` the losses of
        :mod:`imbal_estimators.losses.balanced`. A subclass is built the same
        way; an instance is used as it is.
    gamma : float, default=2.0
        Focusing parameter of ``"focal"`` and ``"cb_focal"``.
    alpha : Tensor of shape (n_classes,) or None, default=None
        Class weights.
    class_counts : array-like of shape (n_classes,) or None, default=None
        Needed by ``"cb_focal"``, ``"ldam"``, ``"logit_adjusted"`` and
        ``"balanced_softmax"``.
    label_smoothing : float, default=0.0
        For the cross-entropy losses (``"ce"``, ``"ldam"``, ``"logit_adjusted"``,
        ``"balanced_softmax"``); an error for a loss that takes none.
    **kwargs
        The ``criterion__*`` parameters: ``beta`` (``"cb_focal"``, default
        0.999), ``tau`` (``"logit_adjusted"``, default 1.0), ``max_margin`` and
        ``s`` (``"ldam"``, default 0.5 and 30.0; ``ldam_s`` is read as ``s``),
        and any other argument of the loss (``reduction`` ...).

    Returns
    -------
    nn.Module
    """
    kwargs = {_OLD_NAMES.get(key, key): value for key, value in kwargs.items()}
    offered = {key: kwargs.pop(key) for key in HYPERPARAMETERS if key in kwargs}
    if isinstance(loss, nn.Module):  # it declares nothing: the hyperparameters are left out
        return _as_is(loss, alpha, label_smoothing, kwargs)
    build = _builder(loss, label_smoothing, class_counts)
    offered.update(gamma=gamma, class_counts=class_counts)
    return build(**_declared(build, offered, alpha, label_smoothing), **kwargs)


def _builder(loss, label_smoothing, class_counts):
    """The class (or function) that builds ``loss``, after the registry's checks."""
    if isinstance(loss, type) and issubclass(loss, nn.Module):
        return loss
    if not isinstance(loss, str) or loss not in LOSSES:
        error = ValueError if isinstance(loss, str) else TypeError
        raise error(
            f"Could not interpret loss={loss!r}; use one of {tuple(LOSSES)}, an "
            "nn.Module subclass or an nn.Module instance."
        )
    entry = LOSSES[loss]
    if label_smoothing and not entry.smoothing:
        smoothable = tuple(name for name, e in LOSSES.items() if e.smoothing)
        raise ValueError(
            f"label_smoothing={label_smoothing!r} applies to the cross-entropy losses "
            f"{smoothable}; loss={loss!r} has none. Use label_smoothing=0."
        )
    if entry.counts and class_counts is None:
        raise ValueError(f"loss={loss!r} needs the class counts (class_counts=...).")
    return entry.build


def _as_is(loss, alpha, label_smoothing, kwargs):
    if alpha is not None or kwargs or label_smoothing:
        raise ValueError(
            f"loss is an nn.Module instance ({type(loss).__name__}), which is used as "
            "it is; alpha, label_smoothing and criterion__* cannot be applied to it. "
            "Pass the class instead, or alpha=None."
        )
    return loss


def _declared(build, offered, alpha, label_smoothing):
    """The offered arguments that ``build``'s signature names (None: not offered); class
    weights and label smoothing that it cannot take are an error."""
    params = inspect.signature(build).parameters
    title = getattr(build, "__name__", repr(build))
    kwargs = {k: v for k, v in offered.items() if k in params and v is not None}
    if label_smoothing:
        if "label_smoothing" not in params:
            raise ValueError(
                f"loss={title} takes no 'label_smoothing' argument; use label_smoothing=0 with it."
            )
        kwargs["label_smoothing"] = label_smoothing
    if alpha is not None:
        name = next((n for n in ("alpha", "weight") if n in params), None)
        if name is None:
            raise ValueError(
                f"loss={title} takes no class weights (no 'alpha' or 'weight' argument); "
                "use alpha=None with it."
            )
        kwargs[name] = alpha
    return kwargs
