"""Losses that use the class counts: class-balanced focal, LDAM, logit-adjusted, Balanced Softmax.

Each is a function plus a thin module (the counts and weights are buffers, so
they move with ``.to(device)``). Notation: logits ``z`` of shape ``(N, C)`` or
``(N, C, d1, ...)``, integer targets ``y``, class counts ``n_c``, class prior
``pi_c = n_c / sum(n)``, optional class weights ``w`` (the estimator's
``alpha``). ``reduction="mean"`` divides by the sum of ``w[y]`` (by ``N``
without weights), exactly like ``F.cross_entropy(weight=w)``.

============================  ===================================================================
loss                          per example
============================  ===================================================================
``cb_focal_loss``             ``-e_y w_y (1 - p_y)^gamma log p_y``, ``e_c = (1 - beta) / (1 -
                              beta^n_c)`` normalized to sum to ``C`` (Cui et al. 2019)
``ldam_loss``                 ``w_y CE(s (z - Delta_y 1_y), y)``, ``Delta_c = max_margin *
                              n_c^(-1/4) / max_k n_k^(-1/4)`` (Cao et al. 2019)
``logit_adjusted_loss``       ``w_y CE(z + tau log pi, y)`` (Menon et al. 2021)
``balanced_softmax_loss``     ``w_y CE(z + log n, y)`` (Ren et al. 2020); equals the
                              logit-adjusted loss with ``tau=1`` (softmax ignores a constant)
============================  ===================================================================

References: Cui et al., "Class-Balanced Loss Based on Effective Number of
Samples", CVPR 2019. Cao et al., "Learning Imbalanced Datasets with
Label-Distribution-Aware Margin Loss", NeurIPS 2019. Menon et al., "Long-tail
learning via logit adjustment", ICLR 2021. Ren et al., "Balanced Meta-Softmax
for Long-Tailed Visual Recognition", NeurIPS 2020.

A class with a count of 0 (possible with ``partial_fit(classes=...)``) is
counted as 1: its log-prior stays finite.
"""

import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn

from ..utils.class_counts import effective_number_weights, log_prior
from .focal import check_target, focal_loss

#: the largest ``|tau|`` of ``loss="logit_adjusted"``: 10 already shifts the logits of a
#: 100:1 problem by 46 (Menon et al. use 1 to 2); at 1e6 the loss stays at about 3e5
MAX_TAU = 10.0
#: the largest ``ldam_s``: the paper uses 30; at 1e6 softmax is a hard max from the start
MAX_LDAM_S = 100.0


def _counts(class_counts, logits):
    counts = torch.as_tensor(class_counts, dtype=torch.float64)
    if counts.dim() != 1 or len(counts) != logits.shape[1]:
        raise ValueError(
            f"class_counts must have one count per class, shape ({logits.shape[1]},); "
            f"got {tuple(counts.shape)}."
        )
    if not bool(torch.all(counts >= 0)):
        raise ValueError(f"class_counts must be >= 0; got {counts.tolist()}.")
    return counts.clamp_min(1.0)


def _weight(alpha, logits):
    if alpha is None:
        return None
    alpha = torch.as_tensor(alpha, device=logits.device)
    if tuple(alpha.shape) != (logits.shape[1],):
        raise ValueError(
            f"alpha must have one weight per class, shape ({logits.shape[1]},); "
            f"got {tuple(alpha.shape)}."
        )
    return alpha.to(_compute_dtype(logits))


def _compute_dtype(logits):
    return torch.float32 if logits.dtype in (torch.float16, torch.bfloat16) else logits.dtype


def _per_class(values, logits):
    """(C,) values shaped to broadcast against logits (N, C, d1, ...)."""
    shape = (1, logits.shape[1]) + (1,) * (logits.dim() - 2)
    return values.to(device=logits.device, dtype=_compute_dtype(logits)).reshape(shape)


def ldam_margins(class_counts, max_margin=0.5):
    """LDAM margins ``Delta_c`` proportional to ``n_c ** (-1/4)``; the largest is ``max_margin``."""
    counts = torch.as_tensor(class_counts, dtype=torch.float64).clamp_min(1.0)
    margins = counts.pow(-0.25)
    return margins * (max_margin / margins.max())


def cb_focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    class_counts: npt.ArrayLike,
    beta: float = 0.999,
    gamma: float = 2.0,
    alpha: torch.Tensor | npt.ArrayLike | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Class-balanced focal loss (Cui et al. 2019): focal loss weighted by effective numbers.

    ``loss_i = -e[y_i] * alpha[y_i] * (1 - p_t) ** gamma * log(p_t)`` with
    ``e_c = (1 - beta) / (1 - beta ** n_c)`` normalized to sum to ``C``.

    Parameters
    ----------
    logits : Tensor of shape (N, C) or (N, C, d1, ...)
    target : Tensor of int of shape (N,) or (N, d1, ...)
    class_counts : array-like of shape (C,)
        Training images per class.
    beta : float in [0, 1), default=0.999
        ``beta=0`` gives equal weights (plain focal loss); towards 1 the weights
        approach inverse frequency.
    gamma : float >= 0, default=2.0
    alpha : array-like of shape (C,) or None, default=None
        Extra class weights, multiplied with ``e`` (this corrects twice).
    reduction : {"mean", "sum", "none"}, default="mean"
        ``"mean"`` divides by the sum of the example weights, as ``F.cross_entropy(weight=...)``.

    Returns
    -------
    Tensor
    """
    if not 0 <= beta < 1:
        raise ValueError(f"beta must be in [0, 1); got {beta!r}.")
    counts = _counts(class_counts, logits)
    weights = effective_number_weights(counts, beta)
    weights = weights.to(device=logits.device, dtype=_compute_dtype(logits))
    user = _weight(alpha, logits)
    if user is not None:
        weights = weights * user
    return focal_loss(logits, target, gamma=gamma, alpha=weights, reduction=reduction)


def ldam_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    class_counts: npt.ArrayLike,
    max_margin: float = 0.5,
    s: float = 30.0,
    alpha: torch.Tensor | npt.ArrayLike | None = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Label-distribution-aware margin loss (Cao et al. 2019).

    ``loss_i = alpha[y_i] * CE(s * (z_i - Delta[y_i] * onehot(y_i)), y_i)`` with
    ``Delta_c = max_margin * n_c ** (-1/4) / max_k n_k ** (-1/4)``: rare classes
    must win by a larger margin.

    Parameters
    ----------
    logits, target : as in :func:`cb_focal_loss`
    class_counts : array-like of shape (C,)
    max_margin : float > 0, default=0.5
        The margin of the rarest class.
    s : float > 0, default=30.0
        Logit scale. The paper's 30 is meant for cosine (normalized) logits; on a
        plain linear head the network learns logits about ``1 / s`` as large, so
        ``predict_proba`` (softmax of the raw logits) is flat until calibrated.
    alpha : array-like of shape (C,) or None, default=None
        Class weights (the "DRW" of LDAM-DRW when switched on late).
    reduction : {"mean", "sum", "none"}, default="mean"
    label_smoothing : float in [0, 1], default=0.0
        As in ``F.cross_entropy``.

    Returns
    -------
    Tensor
    """
    margins = ldam_margins(_counts(class_counts, logits), max_margin)
    target = check_target(logits, target)
    z = logits.to(_compute_dtype(logits))
    margin_of_target = margins.to(device=z.device, dtype=z.dtype)[target]
    shifted = z.scatter_add(1, target.unsqueeze(1), -margin_of_target.unsqueeze(1))
    return F.cross_entropy(
        s * shifted,
        target,
        weight=_weight(alpha, logits),
        reduction=reduction,
        label_smoothing=label_smoothing,
    )


def logit_adjusted_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    class_counts: npt.ArrayLike,
    tau: float = 1.0,
    alpha: torch.Tensor | npt.ArrayLike | None = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Logit-adjusted cross-entropy (Menon et al. 2021): ``CE(z + tau * log(pi), y)``.

    Trained this way, the raw logits ``z`` estimate the class-balanced posterior,
    so ``predict`` (argmax of ``z``) targets balanced error without further
    adjustment.

    Parameters
    ----------
    logits, target : as in :func:`cb_focal_loss`
    class_counts : array-like of shape (C,)
        Gives the prior ``pi_c = n_c / sum(n)``.
    tau : float, default=1.0
        Strength of the adjustment; ``tau=0`` is cross-entropy.
    alpha : array-like of shape (C,) or None, default=None
    reduction : {"mean", "sum", "none"}, default="mean"
    label_smoothing : float in [0, 1], default=0.0

    Returns
    -------
    Tensor
    """
    offsets = tau * log_prior(_counts(class_counts, logits))
    return _offset_cross_entropy(logits, target, offsets, alpha, reduction, label_smoothing)


def balanced_softmax_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    class_counts: npt.ArrayLike,
    alpha: torch.Tensor | npt.ArrayLike | None = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Balanced Softmax (Ren et al. 2020): ``CE(z + log(n), y)``.

    ``p_c = n_c exp(z_c) / sum_k n_k exp(z_k)``; the same loss as
    :func:`logit_adjusted_loss` with ``tau=1``.

    Parameters
    ----------
    logits, target : as in :func:`cb_focal_loss`
    class_counts : array-like of shape (C,)
    alpha : array-like of shape (C,) or None, default=None
    reduction : {"mean", "sum", "none"}, default="mean"
    label_smoothing : float in [0, 1], default=0.0

    Returns
    -------
    Tensor
    """
    offsets = torch.log(_counts(class_counts, logits))
    return _offset_cross_entropy(logits, target, offsets, alpha, reduction, label_smoothing)


def _offset_cross_entropy(logits, target, offsets, alpha, reduction, label_smoothing):
    target = check_target(logits, target)
    z = logits.to(_compute_dtype(logits)) + _per_class(offsets, logits)
    weight = _weight(alpha, logits)
    return F.cross_entropy(
        z, target, weight=weight, reduction=reduction, label_smoothing=label_smoothing
    )


class _CountLoss(nn.Module):
    """Stores ``class_counts`` and ``alpha`` as buffers; subclasses name their function."""

    class_counts: torch.Tensor
    alpha: torch.Tensor | None

    def __init__(
        self,
        class_counts: npt.ArrayLike,
        alpha: torch.Tensor | npt.ArrayLike | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none'; got {reduction!r}.")
        counts = torch.as_tensor(class_counts, dtype=torch.float64)
        if counts.dim() != 1 or not bool(torch.all(counts >= 0)):
            raise ValueError(
                f"class_counts must be a 1-D sequence of counts >= 0; got {class_counts!r}."
            )
        self.register_buffer("class_counts", counts)
        self.register_buffer("alpha", None if alpha is None else torch.as_tensor(alpha).float())
        self.reduction = reduction


class CBFocalLoss(_CountLoss):
    """Class-balanced focal loss module; see :func:`cb_focal_loss`.

    Examples
    --------
    >>> import torch
    >>> loss = CBFocalLoss(class_counts=[90, 10], beta=0.99, gamma=2.0)
    >>> value = loss(torch.tensor([[2.0, -1.0], [0.5, 0.3]]), torch.tensor([0, 1]))
    """

    def __init__(
        self,
        class_counts: npt.ArrayLike,
        beta: float = 0.999,
        gamma: float = 2.0,
        alpha: torch.Tensor | npt.ArrayLike | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(class_counts, alpha, reduction)
        if not 0 <= beta < 1:
            raise ValueError(f"beta must be in [0, 1); got {beta!r}.")
        if not gamma >= 0:
            raise ValueError(f"gamma must be >= 0; got {gamma!r}.")
        self.beta, self.gamma = float(beta), float(gamma)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return cb_focal_loss(
            logits, target, self.class_counts, self.beta, self.gamma, self.alpha, self.reduction
        )

    def extra_repr(self) -> str:
        return f"beta={self.beta}, gamma={self.gamma}, reduction={self.reduction!r}"


class LDAMLoss(_CountLoss):
    """LDAM loss module; see :func:`ldam_loss`.

    Examples
    --------
    >>> import torch
    >>> loss = LDAMLoss(class_counts=[90, 10], max_margin=0.5, s=30.0)
    >>> value = loss(torch.tensor([[2.0, -1.0], [0.5, 0.3]]), torch.tensor([0, 1]))
    """

    def __init__(
        self,
        class_counts: npt.ArrayLike,
        max_margin: float = 0.5,
        s: float = 30.0,
        alpha: torch.Tensor | npt.ArrayLike | None = None,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(class_counts, alpha, reduction)
        if not max_margin > 0:
            raise ValueError(f"max_margin must be > 0; got {max_margin!r}.")
        if not s > 0:
            raise ValueError(f"s must be > 0; got {s!r}.")
        self.max_margin, self.s = float(max_margin), float(s)
        self.label_smoothing = float(label_smoothing)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return ldam_loss(
            logits,
            target,
            self.class_counts,
            self.max_margin,
            self.s,
            self.alpha,
            self.reduction,
            self.label_smoothing,
        )

    def extra_repr(self) -> str:
        return f"max_margin={self.max_margin}, s={self.s}, reduction={self.reduction!r}"


class LogitAdjustedLoss(_CountLoss):
    """Logit-adjusted loss module; see :func:`logit_adjusted_loss`.

    Examples
    --------
    >>> import torch
    >>> loss = LogitAdjustedLoss(class_counts=[90, 10], tau=1.0)
    >>> value = loss(torch.tensor([[2.0, -1.0], [0.5, 0.3]]), torch.tensor([0, 1]))
    """

    def __init__(
        self,
        class_counts: npt.ArrayLike,
        tau: float = 1.0,
        alpha: torch.Tensor | npt.ArrayLike | None = None,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(class_counts, alpha, reduction)
        self.tau = float(tau)
        self.label_smoothing = float(label_smoothing)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return logit_adjusted_loss(
            logits,
            target,
            self.class_counts,
            self.tau,
            self.alpha,
            self.reduction,
            self.label_smoothing,
        )

    def extra_repr(self) -> str:
        return f"tau={self.tau}, reduction={self.reduction!r}"


class BalancedSoftmaxLoss(_CountLoss):
    """Balanced Softmax loss module; see :func:`balanced_softmax_loss`.

    Examples
    --------
    >>> import torch
    >>> loss = BalancedSoftmaxLoss(class_counts=[90, 10])
    >>> value = loss(torch.tensor([[2.0, -1.0], [0.5, 0.3]]), torch.tensor([0, 1]))
    """

    def __init__(
        self,
        class_counts: npt.ArrayLike,
        alpha: torch.Tensor | npt.ArrayLike | None = None,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(class_counts, alpha, reduction)
        self.label_smoothing = float(label_smoothing)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return balanced_softmax_loss(
            logits, target, self.class_counts, self.alpha, self.reduction, self.label_smoothing
        )
