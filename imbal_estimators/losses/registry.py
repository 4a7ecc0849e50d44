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
from dataclasses import dataclass

from torch import nn

from .balanced import BalancedSoftmaxLoss, CBFocalLoss, LDAMLoss, LogitAdjustedLoss
from .focal import FocalLoss, focal_loss

__all__ = ["LOSSES", "COUNTS_SEEN", "LossEntry", "get_loss", "FocalLoss", "focal_loss"]


@dataclass(frozen=True)
class LossEntry:
    """A named loss of the registry.

    Attributes
    ----------
    build : callable
        ``build(alpha, class_counts, options, kwargs) -> nn.Module``; ``options``
        holds the estimator's loss hyperparameters (``gamma``, ``beta``, ``tau``,
        ``max_margin``, ``ldam_s``, ``label_smoothing``), ``kwargs`` the
        ``criterion__*`` parameters.
    description : str
        One line, for ``--help`` and the docs.
    counts : {None, "raw", "resampled"}, default=None
        Which class counts the loss takes: none, the training part's
        (``class_counts_``) or those the loss sees after the sampler.
    smoothing : bool, default=False
        Whether it is a cross-entropy that takes ``label_smoothing``.
    """

    build: object
    description: str
    counts: str | None = None
    smoothing: bool = False


def _ce(alpha, counts, opts, kwargs):
    return nn.CrossEntropyLoss(weight=alpha, label_smoothing=opts["label_smoothing"], **kwargs)


def _focal(alpha, counts, opts, kwargs):
    return FocalLoss(gamma=opts["gamma"], alpha=alpha, **kwargs)


def _cb_focal(alpha, counts, opts, kwargs):
    return CBFocalLoss(counts, beta=opts["beta"], gamma=opts["gamma"], alpha=alpha, **kwargs)


def _ldam(alpha, counts, opts, kwargs):
    return LDAMLoss(
        counts,
        max_margin=opts["max_margin"],
        s=opts["ldam_s"],
        alpha=alpha,
        label_smoothing=opts["label_smoothing"],
        **kwargs,
    )


def _logit_adjusted(alpha, counts, opts, kwargs):
    return LogitAdjustedLoss(
        counts, tau=opts["tau"], alpha=alpha, label_smoothing=opts["label_smoothing"], **kwargs
    )


def _balanced_softmax(alpha, counts, opts, kwargs):
    return BalancedSoftmaxLoss(
        counts, alpha=alpha, label_smoothing=opts["label_smoothing"], **kwargs
    )


#: The losses by name: the only place their names exist. Adding a loss is a function
#: (or module) plus one entry here.
LOSSES = {
    "ce": LossEntry(_ce, "cross-entropy (weighted by alpha when given)", smoothing=True),
    "focal": LossEntry(_focal, "focal loss (Lin 2017): gamma focuses on hard images"),
    "cb_focal": LossEntry(
        _cb_focal, "class-balanced focal loss (Cui 2019): effective-number weights, beta", "raw"
    ),
    "ldam": LossEntry(
        _ldam, "LDAM (Cao 2019): per-class margins, max_margin and ldam_s", "raw", True
    ),
    "logit_adjusted": LossEntry(
        _logit_adjusted, "logit-adjusted CE (Menon 2021): + tau log prior", "resampled", True
    ),
    "balanced_softmax": LossEntry(
        _balanced_softmax, "Balanced Softmax (Ren 2020): + log class counts", "resampled", True
    ),
}

#: For the losses that need class counts: ``"raw"`` (the training part's counts,
#: ``class_counts_``) or ``"resampled"`` (the counts the loss sees after the sampler).
#: A view of :data:`LOSSES` at import; the code reads ``LOSSES[name].counts``.
COUNTS_SEEN = {name: entry.counts for name, entry in LOSSES.items() if entry.counts}


def get_loss(
    loss,
    *,
    gamma=2.0,
    alpha=None,
    class_counts=None,
    beta=0.999,
    tau=1.0,
    max_margin=0.5,
    ldam_s=30.0,
    label_smoothing=0.0,
    **kwargs,
):
    """Build the loss module behind ``ImageImbalanceClassifier(loss=...)``.

    Parameters
    ----------
    loss : str, nn.Module subclass or nn.Module instance
        ``"ce"`` is ``nn.CrossEntropyLoss`` (weighted when ``alpha`` is given),
        ``"focal"`` is :class:`~imbal_estimators.FocalLoss`, ``"cb_focal"``,
        ``"ldam"``, ``"logit_adjusted"`` and ``"balanced_softmax"`` the losses of
        :mod:`imbal_estimators.losses.balanced`. A subclass is instantiated with
        ``gamma``, the weights (as ``alpha`` or ``weight``), ``class_counts`` and
        ``label_smoothing`` where its signature takes them; an instance is used
        as it is.
    gamma : float, default=2.0
        Focusing parameter of ``"focal"`` and ``"cb_focal"``.
    alpha : Tensor of shape (n_classes,) or None, default=None
        Class weights.
    class_counts : array-like of shape (n_classes,) or None, default=None
        Needed by ``"cb_focal"``, ``"ldam"``, ``"logit_adjusted"`` and
        ``"balanced_softmax"``.
    beta : float, default=0.999
        Effective-number ``beta`` of ``"cb_focal"``.
    tau : float, default=1.0
        Adjustment strength of ``"logit_adjusted"``.
    max_margin, ldam_s : float, default=0.5, 30.0
        Largest margin and logit scale of ``"ldam"``.
    label_smoothing : float, default=0.0
        For the cross-entropy losses (``"ce"``, ``"ldam"``, ``"logit_adjusted"``,
        ``"balanced_softmax"``).
    **kwargs
        Passed to the loss constructor (``criterion__*`` parameters).

    Returns
    -------
    nn.Module
    """
    if isinstance(loss, str):
        if loss not in LOSSES:
            raise ValueError(
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
        opts = dict(
            gamma=gamma,
            beta=beta,
            tau=tau,
            max_margin=max_margin,
            ldam_s=ldam_s,
            label_smoothing=label_smoothing,
        )
        return entry.build(alpha, class_counts, opts, kwargs)
    if isinstance(loss, nn.Module):
        if alpha is not None or kwargs or label_smoothing:
            raise ValueError(
                f"loss is an nn.Module instance ({type(loss).__name__}), which is used as "
                "it is; alpha, label_smoothing and criterion__* cannot be applied to it. "
                "Pass the class instead, or alpha=None."
            )
        return loss
    if isinstance(loss, type) and issubclass(loss, nn.Module):
        built = _constructor_kwargs(loss, gamma, alpha, class_counts, label_smoothing)
        return loss(**built, **kwargs)
    raise TypeError(
        f"Could not interpret loss={loss!r}; use one of {tuple(LOSSES)}, an nn.Module subclass "
        "or an nn.Module instance."
    )


def _constructor_kwargs(loss_class, gamma, alpha, class_counts, label_smoothing):
    params = inspect.signature(loss_class).parameters
    kwargs = {}
    if "gamma" in params:
        kwargs["gamma"] = gamma
    if "class_counts" in params and class_counts is not None:
        kwargs["class_counts"] = class_counts
    if label_smoothing:
        if "label_smoothing" not in params:
            raise ValueError(
                f"loss={loss_class.__name__} takes no 'label_smoothing' argument; use "
                "label_smoothing=0 with it."
            )
        kwargs["label_smoothing"] = label_smoothing
    if alpha is not None:
        name = next((n for n in ("alpha", "weight") if n in params), None)
        if name is None:
            raise ValueError(
                f"loss={loss_class.__name__} takes no class weights (no 'alpha' or "
                "'weight' argument); use alpha=None with it."
            )
        kwargs[name] = alpha
    return kwargs
