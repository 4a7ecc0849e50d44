"""Focal loss as a function plus a thin module.

The function's gradient is written out in closed form (``_FocalFunction``), so a
forward + backward pass costs about what ``F.cross_entropy`` costs
(``benchmarks/loss_speed.py``).
"""

import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable


def focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    gamma: float = 2.0,
    alpha: torch.Tensor | npt.ArrayLike | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
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
    n_classes = logits.shape[1]
    flat_logits = logits if logits.dim() == 2 else logits.movedim(1, -1).reshape(-1, n_classes)
    flat_target = target.reshape(-1)
    row_weight = None if alpha is None else alpha.to(logits.dtype)[flat_target]
    loss = _FocalFunction.apply(flat_logits, flat_target, float(gamma), row_weight, reduction)
    return loss.reshape(target.shape) if reduction == "none" else loss


class _FocalFunction(torch.autograd.Function):
    """Focal loss of (M, C) logits with the gradient in closed form.

    Autograd through the elementwise focal term would keep a handful of (M,)
    intermediates and run one backward kernel per operation; the closed form
    needs only the saved log-softmax, like ``F.cross_entropy``. With
    ``l = log p_t`` and ``q = 1 - p_t``, ``loss = -w q^g l`` and

        d loss / d l   = -w q^g (1 - g p_t l / q)
        d loss / d z_j = (d loss / d l) (1[j = t] - softmax_j),

    where ``l / q`` stays finite (it tends to -1) as ``p_t`` tends to 1.
    """

    @staticmethod
    def forward(ctx, logits, target, gamma, row_weight, reduction):
        # Few kernels on purpose: every (M,) operation is one more parallel region,
        # which costs most on a busy machine.
        log_probs = torch.log_softmax(logits, dim=1)
        log_pt = log_probs.gather(1, target.unsqueeze(1)).squeeze(1)
        # 1 - p_t from log p_t without cancellation; the clamp keeps q ** (gamma - 1)
        # finite for gamma < 1 where p_t rounds to 1.
        q = torch.expm1(log_pt).neg_().clamp_min_(torch.finfo(log_pt.dtype).tiny)
        weight = q.pow(gamma)  # w q^g
        if row_weight is not None:
            weight.mul_(row_weight)
        scale = 1.0
        if reduction == "none":
            out = (weight * log_pt).neg_()
        else:
            out = -torch.dot(weight, log_pt)
            if reduction == "mean":
                denominator = row_weight.sum() if row_weight is not None else len(log_pt)
                scale = 1.0 / denominator
                out = out * scale
        if ctx.needs_input_grad[0]:
            # minus d loss / d log p_t = w q^g (1 - g p_t l / q)
            p_t = torch.exp(log_pt)
            ratio = log_pt.div_(q)
            neg_slope = torch.addcmul(ratio.new_ones(()), p_t, ratio, value=-gamma).mul_(weight)
            ctx.save_for_backward(log_probs, target, neg_slope)
            ctx.scale = scale
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        log_probs, target, neg_slope = ctx.saved_tensors
        neg_g = neg_slope * (grad_out * ctx.scale)  # minus d out / d log p_t
        grad = torch.exp(log_probs).mul_(neg_g.unsqueeze(1))
        grad.scatter_add_(1, target.unsqueeze(1), neg_g.neg().unsqueeze(1))
        return grad, None, None, None, None


def check_target(logits, target):
    """Raise unless ``logits`` is ``(N, C, ...)`` and ``target`` holds integer classes of
    the matching shape; return ``target`` as int64."""
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
    return target.long()


def _check_inputs(logits, target, gamma, alpha, reduction):
    check_target(logits, target)
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

    alpha: torch.Tensor | None

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: torch.Tensor | npt.ArrayLike | None = None,
        reduction: str = "mean",
    ) -> None:
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

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return focal_loss(logits, target, self.gamma, self.alpha, self.reduction)

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, reduction={self.reduction!r}"
