"""Focal loss as a function plus a thin module, and the ``loss=`` resolver."""

import inspect

import torch
import torch.nn.functional as F
from torch import nn

LOSSES = ("ce", "focal")


def focal_loss(logits, target, gamma=2.0, alpha=None, reduction="mean"):
    """Multi-class focal loss (Lin et al. 2017), computed in log space.

    ``loss_i = -alpha[t_i] * (1 - p_t) ** gamma * log(p_t)`` with ``p_t`` the
    softmax probability of the true class ``t_i``. With ``gamma=0`` it equals
    ``F.cross_entropy(logits, target, weight=alpha)``, including the weighted
    normalization of ``reduction="mean"`` (divide by the sum of the weights).

    Parameters
    ----------
    logits : Tensor of shape (N, C) or (N, C, d1, d2, ...)
        Unnormalized scores. Half and bfloat16 inputs are computed in float32.
    target : Tensor of shape (N,) or (N, d1, d2, ...)
        Integer class indices in ``[0, C)``.
    gamma : float, default=2.0
        Focusing parameter, ``>= 0``.
    alpha : Tensor or array-like of shape (C,), or None, default=None
        Per-class weights.
    reduction : {"mean", "sum", "none"}, default="mean"

    Returns
    -------
    loss : Tensor
        A scalar, or the per-element losses of shape ``target.shape`` for
        ``reduction="none"``.
    """
    if alpha is not None and not isinstance(alpha, torch.Tensor):
        alpha = torch.as_tensor(alpha, dtype=torch.float32, device=logits.device)
    _check_inputs(logits, target, gamma, alpha, reduction)
    # Any integer dtype passes the checks; cross_entropy and gather need int64.
    target = target.long()
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    if gamma == 0:
        weight = None if alpha is None else alpha.to(logits.dtype)
        return F.cross_entropy(logits, target, weight=weight, reduction=reduction)
    log_pt = F.log_softmax(logits, dim=1).gather(1, target.unsqueeze(1)).squeeze(1)
    # 1 - p_t from log p_t without cancellation; the clamp keeps the gradient of
    # (1 - p_t) ** gamma finite for gamma < 1 where p_t rounds to 1.
    one_minus_pt = (-torch.expm1(log_pt)).clamp_min(torch.finfo(log_pt.dtype).tiny)
    loss = -one_minus_pt.pow(gamma) * log_pt
    if alpha is None:
        return _reduce(loss, reduction)
    weight = alpha.to(loss.dtype)[target]
    loss = loss * weight
    if reduction == "mean":
        return loss.sum() / weight.sum()
    return _reduce(loss, reduction)


def _reduce(loss, reduction):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _check_inputs(logits, target, gamma, alpha, reduction):
    if logits.dim() < 2:
        raise ValueError(
            f"logits must have shape (N, C) or (N, C, d1, ...); got {tuple(logits.shape)}."
        )
    expected = (logits.shape[0], *logits.shape[2:])
    if tuple(target.shape) != expected:
        raise ValueError(
            f"target must have shape {expected} for logits of shape "
            f"{tuple(logits.shape)}; got {tuple(target.shape)}."
        )
    if target.dtype.is_floating_point or target.dtype == torch.bool:
        raise TypeError(f"target must hold integer class indices; got dtype {target.dtype}.")
    if not gamma >= 0:  # also rejects NaN
        raise ValueError(f"gamma must be >= 0; got {gamma!r}.")
    if alpha is not None and tuple(alpha.shape) != (logits.shape[1],):
        raise ValueError(
            f"alpha must have one weight per class, shape ({logits.shape[1]},); "
            f"got {tuple(alpha.shape)}."
        )
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none'; got {reduction!r}.")


class FocalLoss(nn.Module):
    """Focal loss module; see :func:`focal_loss` for the formula.

    Parameters
    ----------
    gamma : float, default=2.0
        Focusing parameter, ``>= 0``. ``gamma=0`` is cross-entropy.
    alpha : array-like of shape (n_classes,) or None, default=None
        Per-class weights, stored as a buffer so it moves with ``.to(device)``.
    reduction : {"mean", "sum", "none"}, default="mean"

    Examples
    --------
    >>> import torch
    >>> loss = FocalLoss(gamma=2.0, alpha=[0.25, 0.75])
    >>> logits = torch.tensor([[2.0, -1.0], [0.5, 0.3]])
    >>> target = torch.tensor([0, 1])
    >>> value = loss(logits, target)
    """

    def __init__(self, gamma=2.0, alpha=None, reduction="mean"):
        super().__init__()
        if not gamma >= 0:  # also rejects NaN
            raise ValueError(f"gamma must be >= 0; got {gamma!r}.")
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none'; got {reduction!r}.")
        self.gamma = float(gamma)
        self.reduction = reduction
        if alpha is not None:
            alpha = torch.as_tensor(alpha, dtype=torch.float32)
        self.register_buffer("alpha", alpha)

    def forward(self, logits, target):
        return focal_loss(logits, target, self.gamma, self.alpha, self.reduction)

    def extra_repr(self):
        return f"gamma={self.gamma}, reduction={self.reduction!r}"


def get_loss(loss, *, gamma=2.0, alpha=None, **kwargs):
    """Build the loss module behind ``ImageImbalanceClassifier(loss=...)``.

    Parameters
    ----------
    loss : {"ce", "focal"}, nn.Module subclass or nn.Module instance
        ``"ce"`` is ``nn.CrossEntropyLoss`` (weighted when ``alpha`` is given),
        ``"focal"`` is :class:`FocalLoss`. A subclass is instantiated with
        ``gamma`` and the weights (as ``alpha`` or ``weight``) where its
        signature takes them; an instance is used as it is.
    gamma : float, default=2.0
    alpha : Tensor of shape (n_classes,) or None, default=None
    **kwargs
        Passed to the loss constructor (``criterion__*`` parameters).

    Returns
    -------
    nn.Module
    """
    if isinstance(loss, str):
        if loss == "ce":
            return nn.CrossEntropyLoss(weight=alpha, **kwargs)
        if loss == "focal":
            return FocalLoss(gamma=gamma, alpha=alpha, **kwargs)
        raise ValueError(f"Could not interpret loss={loss!r}; use one of {LOSSES} or an nn.Module.")
    if isinstance(loss, nn.Module):
        if alpha is not None or kwargs:
            raise ValueError(
                f"loss is an nn.Module instance ({type(loss).__name__}), which is used as "
                "it is; alpha and criterion__* cannot be applied to it. Pass the class "
                "instead, or alpha=None."
            )
        return loss
    if isinstance(loss, type) and issubclass(loss, nn.Module):
        return loss(**_constructor_kwargs(loss, gamma, alpha), **kwargs)
    raise TypeError(
        f"Could not interpret loss={loss!r}; use one of {LOSSES}, an nn.Module subclass "
        "or an nn.Module instance."
    )


def _constructor_kwargs(loss_class, gamma, alpha):
    params = inspect.signature(loss_class).parameters
    kwargs = {}
    if "gamma" in params:
        kwargs["gamma"] = gamma
    if alpha is not None:
        name = next((n for n in ("alpha", "weight") if n in params), None)
        if name is None:
            raise ValueError(
                f"loss={loss_class.__name__} takes no class weights (no 'alpha' or "
                "'weight' argument); use alpha=None with it."
            )
        kwargs[name] = alpha
    return kwargs
