"""Class-count losses against independent float64 numpy references (values and gradients)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from imbal_estimators.losses.balanced import (
    BalancedSoftmaxLoss,
    CBFocalLoss,
    LDAMLoss,
    LogitAdjustedLoss,
    balanced_softmax_loss,
    cb_focal_loss,
    ldam_loss,
    ldam_margins,
    logit_adjusted_loss,
)
from imbal_estimators.losses.registry import COUNTS_SEEN, LOSSES, get_loss

COUNTS = np.array([120.0, 30.0, 4.0])
ALPHA = np.array([0.5, 1.0, 2.5])
REDUCTIONS = ("mean", "sum", "none")


def _data(shape=(9, 3), seed=0, scale=2.0):
    rng = np.random.default_rng(seed)
    logits = torch.tensor(rng.normal(0, scale, size=shape), dtype=torch.float64)
    target = torch.tensor(rng.integers(0, shape[1], size=(shape[0], *shape[2:])))
    return logits, target


# ----------------------------------------------------------------- numpy references


def _log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _reduce(per, w_t, reduction):
    if reduction == "mean":
        return per.sum() / w_t.sum()
    if reduction == "sum":
        return per.sum()
    return per


def _ce_ref(z, t, w=None, reduction="mean", eps=0.0):
    """Weighted, label-smoothed CE as torch defines it: (1-eps) w_t nll + eps/C sum_j w_j nll_j."""
    n_classes = z.shape[-1]
    w = np.ones(n_classes) if w is None else np.asarray(w, dtype=np.float64)
    logp = _log_softmax(z)
    nll_t = -np.take_along_axis(logp, t[..., None], axis=-1)[..., 0]
    smooth = -(logp * w).sum(axis=-1) / n_classes
    per = (1 - eps) * w[t] * nll_t + eps * smooth
    return _reduce(per, w[t], reduction)


def _channels_last(logits):
    return np.moveaxis(logits.detach().numpy(), 1, -1)


def ref_cb_focal(logits, target, counts, beta, gamma, alpha=None, reduction="mean"):
    z, t = _channels_last(logits), target.numpy()
    e = (1 - beta) / (1 - beta ** np.asarray(counts, dtype=np.float64))
    e = e * len(e) / e.sum()
    w = e if alpha is None else e * alpha
    logp = _log_softmax(z)
    logp_t = np.take_along_axis(logp, t[..., None], axis=-1)[..., 0]
    per = -w[t] * (1 - np.exp(logp_t)) ** gamma * logp_t
    return _reduce(per, w[t], reduction)


def ref_ldam(logits, target, counts, max_m, s, alpha=None, reduction="mean", eps=0.0):
    z, t = _channels_last(logits), target.numpy()
    m = np.asarray(counts, dtype=np.float64) ** -0.25
    m = m * max_m / m.max()
    onehot = np.eye(z.shape[-1])[t]
    return _ce_ref(s * (z - onehot * m[t][..., None]), t, alpha, reduction, eps)


def ref_logit_adjusted(logits, target, counts, tau, alpha=None, reduction="mean", eps=0.0):
    z, t = _channels_last(logits), target.numpy()
    prior = np.asarray(counts, dtype=np.float64) / np.sum(counts)
    return _ce_ref(z + tau * np.log(prior), t, alpha, reduction, eps)


def ref_balanced_softmax(logits, target, counts, alpha=None, reduction="mean", eps=0.0):
    # The paper's form: p_y = n_y exp(z_y) / sum_k n_k exp(z_k), loss -log p_y.
    z, t = _channels_last(logits), target.numpy()
    n = np.asarray(counts, dtype=np.float64)
    unnormalized = n * np.exp(z - z.max(axis=-1, keepdims=True))
    p = unnormalized / unnormalized.sum(axis=-1, keepdims=True)
    w = np.ones(z.shape[-1]) if alpha is None else np.asarray(alpha, dtype=np.float64)
    logp = np.log(p)
    nll_t = -np.take_along_axis(logp, t[..., None], axis=-1)[..., 0]
    per = (1 - eps) * w[t] * nll_t - eps * (logp * w).sum(axis=-1) / z.shape[-1]
    return _reduce(per, w[t], reduction)


def _numeric_grad(fn, logits, h=1e-6):
    """Central differences of the scalar numpy function ``fn(logits)``."""
    base = logits.detach().clone()
    grad = torch.zeros_like(base)
    flat, gflat = base.view(-1), grad.view(-1)
    for i in range(flat.numel()):
        old = flat[i].item()
        flat[i] = old + h
        up = fn(base)
        flat[i] = old - h
        down = fn(base)
        flat[i] = old
        gflat[i] = (up - down) / (2 * h)
    return grad


CASES = {
    "cb_focal": (
        lambda z, t, a, r: cb_focal_loss(z, t, COUNTS, 0.99, 2.0, a, r),
        lambda z, t, a, r: ref_cb_focal(z, t, COUNTS, 0.99, 2.0, a, r),
    ),
    "ldam": (
        lambda z, t, a, r: ldam_loss(z, t, COUNTS, 0.5, 5.0, a, r),
        lambda z, t, a, r: ref_ldam(z, t, COUNTS, 0.5, 5.0, a, r),
    ),
    "logit_adjusted": (
        lambda z, t, a, r: logit_adjusted_loss(z, t, COUNTS, 0.7, a, r),
        lambda z, t, a, r: ref_logit_adjusted(z, t, COUNTS, 0.7, a, r),
    ),
    "balanced_softmax": (
        lambda z, t, a, r: balanced_softmax_loss(z, t, COUNTS, a, r),
        lambda z, t, a, r: ref_balanced_softmax(z, t, COUNTS, a, r),
    ),
}


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("alpha", [None, ALPHA])
@pytest.mark.parametrize("shape", [(9, 3), (2, 3, 2, 3)])
def test_value_matches_float64_reference(name, reduction, alpha, shape):
    ours, ref = CASES[name]
    logits, target = _data(shape, seed=1)
    a = None if alpha is None else torch.tensor(alpha)
    got = ours(logits, target, a, reduction)
    expected = ref(logits, target, alpha, reduction)
    assert got.dtype == torch.float64
    assert tuple(got.shape) == np.shape(expected)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("alpha", [None, ALPHA])
def test_gradient_matches_float64_reference(name, alpha):
    ours, ref = CASES[name]
    logits, target = _data((5, 3), seed=2)
    a = None if alpha is None else torch.tensor(alpha)
    z = logits.clone().requires_grad_(True)
    ours(z, target, a, "mean").backward()
    expected = _numeric_grad(lambda x: ref(x, target, alpha, "mean"), logits)
    torch.testing.assert_close(z.grad, expected, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("eps", [0.1, 0.3])
@pytest.mark.parametrize("alpha", [None, ALPHA])
def test_label_smoothing_matches_reference(eps, alpha):
    logits, target = _data((8, 3), seed=3)
    a = None if alpha is None else torch.tensor(alpha)
    cases = [
        (
            ldam_loss(logits, target, COUNTS, 0.4, 2.0, a, "mean", eps),
            ref_ldam(logits, target, COUNTS, 0.4, 2.0, alpha, "mean", eps),
        ),
        (
            logit_adjusted_loss(logits, target, COUNTS, 1.5, a, "mean", eps),
            ref_logit_adjusted(logits, target, COUNTS, 1.5, alpha, "mean", eps),
        ),
        (
            balanced_softmax_loss(logits, target, COUNTS, a, "mean", eps),
            ref_balanced_softmax(logits, target, COUNTS, alpha, "mean", eps),
        ),
        (
            get_loss("ce", alpha=a, label_smoothing=eps)(logits, target),
            _ce_ref(logits.numpy(), target.numpy(), alpha, "mean", eps),
        ),
    ]
    for got, expected in cases:
        np.testing.assert_allclose(got.item(), expected, rtol=1e-10)


def test_ldam_margins_follow_counts():
    margins = ldam_margins([10000, 625, 16], max_margin=0.8).numpy()
    # n^(-1/4): 0.1, 0.2, 0.5 -> scaled so the rarest class gets 0.8
    np.testing.assert_allclose(margins, [0.16, 0.32, 0.8])
    assert ldam_margins([5, 5], 0.5).tolist() == [0.5, 0.5]


def test_ldam_margin_on_target_only():
    # With s=1, shifting the target logit by its margin is the whole difference to CE.
    logits, target = _data((6, 3), seed=4)
    margins = ldam_margins(COUNTS, 0.5)
    shifted = logits.clone()
    shifted[torch.arange(6), target] -= margins[target]
    torch.testing.assert_close(
        ldam_loss(logits, target, COUNTS, 0.5, 1.0), F.cross_entropy(shifted, target)
    )


def test_balanced_softmax_is_logit_adjusted_with_tau_one():
    logits, target = _data((10, 3), seed=5)
    torch.testing.assert_close(
        balanced_softmax_loss(logits, target, COUNTS),
        logit_adjusted_loss(logits, target, COUNTS, tau=1.0),
    )


def test_logit_adjusted_tau_zero_is_cross_entropy():
    logits, target = _data((10, 3), seed=6)
    torch.testing.assert_close(
        logit_adjusted_loss(logits, target, COUNTS, tau=0.0), F.cross_entropy(logits, target)
    )


def test_cb_focal_with_beta_zero_is_focal():
    from imbal_estimators import focal_loss

    logits, target = _data((10, 3), seed=7)
    torch.testing.assert_close(
        cb_focal_loss(logits, target, COUNTS, beta=0.0, gamma=1.5),
        focal_loss(logits, target, gamma=1.5),
    )


def test_cb_focal_weights_rare_classes_up():
    # the same confident mistake costs more for the rare class
    logits = torch.tensor([[0.0, 2.0, 0.0], [2.0, 0.0, 0.0], [0.0, 2.0, 0.0]], dtype=torch.float64)
    per = cb_focal_loss(logits, torch.tensor([0, 1, 2]), COUNTS, 0.99, 2.0, reduction="none")
    assert per[0] < per[1] < per[2]


def test_zero_count_is_taken_as_one():
    logits, target = _data((6, 3), seed=8)
    torch.testing.assert_close(
        logit_adjusted_loss(logits, target, [10, 0, 5]),
        logit_adjusted_loss(logits, target, [10, 1, 5]),
    )
    assert torch.isfinite(balanced_softmax_loss(logits, target, [10, 0, 5], label_smoothing=0.2))


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_is_finite_and_computed_in_float32(name, dtype):
    ours, _ = CASES[name]
    logits, target = _data((6, 3), seed=9, scale=30.0)
    low = logits.to(dtype).requires_grad_(True)
    loss = ours(low, target, torch.tensor(ALPHA, dtype=torch.float32), "mean")
    assert loss.dtype == torch.float32
    loss.backward()
    assert low.grad.dtype == dtype
    assert torch.isfinite(low.grad).all()


@pytest.mark.parametrize(
    "module, function, kwargs",
    [
        (CBFocalLoss, cb_focal_loss, dict(beta=0.9, gamma=1.0)),
        (LDAMLoss, ldam_loss, dict(max_margin=0.3, s=4.0, label_smoothing=0.1)),
        (LogitAdjustedLoss, logit_adjusted_loss, dict(tau=0.5, label_smoothing=0.1)),
        (BalancedSoftmaxLoss, balanced_softmax_loss, dict(label_smoothing=0.1)),
    ],
)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_module_equals_function_and_keeps_buffers(module, function, kwargs, reduction):
    logits, target = _data((7, 3), seed=10)
    alpha = torch.tensor(ALPHA, dtype=torch.float32)
    loss = module(COUNTS, alpha=alpha, reduction=reduction, **kwargs)
    expected = function(logits, target, COUNTS, alpha=alpha, reduction=reduction, **kwargs)
    torch.testing.assert_close(loss(logits, target), expected)
    assert set(dict(loss.named_buffers())) == {"class_counts", "alpha"}
    assert loss.class_counts.tolist() == COUNTS.tolist()


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda z, t: logit_adjusted_loss(z, t, [1, 2]), "class_counts must have one count"),
        (lambda z, t: balanced_softmax_loss(z, t, [1, -2, 3]), "class_counts must be >= 0"),
        (lambda z, t: ldam_loss(z, t, COUNTS, alpha=[1.0, 2.0]), "alpha must have one weight"),
        (lambda z, t: cb_focal_loss(z, t, COUNTS, beta=1.0), "beta must be in"),
        (lambda z, t: ldam_loss(z, t[:3], COUNTS), "target must have shape"),
        (lambda z, t: LDAMLoss(COUNTS, s=0)(z, t), "s must be > 0"),
        (lambda z, t: LDAMLoss(COUNTS, max_margin=-1)(z, t), "max_margin must be > 0"),
        (lambda z, t: LogitAdjustedLoss(COUNTS, reduction="avg")(z, t), "reduction"),
    ],
)
def test_bad_arguments_are_named(call, match):
    logits, target = _data((6, 3))
    with pytest.raises(ValueError, match=match):
        call(logits, target)


# ------------------------------------------------------------------------ registry


def test_registry_names():
    assert set(LOSSES) == {"ce", "focal", "cb_focal", "ldam", "logit_adjusted", "balanced_softmax"}
    assert set(COUNTS_SEEN) == {"cb_focal", "ldam", "logit_adjusted", "balanced_softmax"}
    assert COUNTS_SEEN["ldam"] == "raw" and COUNTS_SEEN["logit_adjusted"] == "resampled"


@pytest.mark.parametrize(
    "name, cls, attrs",
    [
        ("cb_focal", CBFocalLoss, dict(beta=0.9, gamma=1.5)),
        ("ldam", LDAMLoss, dict(max_margin=0.3, s=7.0, label_smoothing=0.05)),
        ("logit_adjusted", LogitAdjustedLoss, dict(tau=0.4, label_smoothing=0.05)),
        ("balanced_softmax", BalancedSoftmaxLoss, dict(label_smoothing=0.05)),
    ],
)
def test_get_loss_builds_count_losses(name, cls, attrs):
    loss = get_loss(
        name,
        gamma=1.5,
        alpha=torch.ones(3),
        class_counts=COUNTS,
        beta=0.9,
        tau=0.4,
        max_margin=0.3,
        ldam_s=7.0,
        label_smoothing=attrs.get("label_smoothing", 0.0),
        reduction="sum",
    )
    assert isinstance(loss, cls)
    assert loss.reduction == "sum"
    assert loss.class_counts.tolist() == COUNTS.tolist()
    for key, value in attrs.items():
        assert getattr(loss, key) == pytest.approx(value)


@pytest.mark.parametrize("name", sorted(COUNTS_SEEN))
def test_get_loss_needs_counts(name):
    with pytest.raises(ValueError, match=f"loss='{name}' needs the class counts"):
        get_loss(name)


@pytest.mark.parametrize("name", ["focal", "cb_focal"])
def test_label_smoothing_refused_for_focal_losses(name):
    with pytest.raises(ValueError, match="label_smoothing=0.1 applies to the cross-entropy"):
        get_loss(name, class_counts=COUNTS, label_smoothing=0.1)


def test_custom_loss_class_receives_counts_and_smoothing():
    class MyLoss(torch.nn.Module):
        def __init__(self, class_counts, label_smoothing=0.0):
            super().__init__()
            self.class_counts, self.label_smoothing = class_counts, label_smoothing

    loss = get_loss(MyLoss, class_counts=[3, 4], label_smoothing=0.2)
    assert list(loss.class_counts) == [3, 4] and loss.label_smoothing == 0.2
    with pytest.raises(ValueError, match="takes no 'label_smoothing'"):
        get_loss(torch.nn.MSELoss, label_smoothing=0.2)
