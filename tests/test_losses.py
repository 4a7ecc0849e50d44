"""Focal loss values, gradients, module behaviour and the ``loss=`` resolver."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from imbal_estimators.losses.registry import FocalLoss, focal_loss, get_loss

REDUCTIONS = ("mean", "sum", "none")


def _data(shape=(6, 3), seed=0, dtype=torch.float32, scale=2.0):
    """Random logits of ``shape`` (N, C, ...) and matching int64 targets."""
    gen = torch.Generator().manual_seed(seed)
    logits = (torch.randn(shape, generator=gen, dtype=torch.float64) * scale).to(dtype)
    n_classes = shape[1]
    target_shape = (shape[0], *shape[2:])
    target = torch.randint(0, n_classes, target_shape, generator=gen)
    return logits, target


def _reference(logits, target, gamma, alpha=None, reduction="mean"):
    """Independent float64 numpy focal loss: -alpha[t] (1 - p_t)^gamma log(p_t)."""
    z = np.moveaxis(logits.detach().double().numpy(), 1, -1)  # (N, ..., C)
    t = target.numpy()
    z = z - z.max(axis=-1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)
    p_t = np.take_along_axis(p, t[..., None], axis=-1)[..., 0]
    w = np.ones(p.shape[-1]) if alpha is None else np.asarray(alpha, dtype=np.float64)
    w_t = w[t]
    loss = -w_t * (1.0 - p_t) ** gamma * np.log(p_t)
    if reduction == "mean":
        return loss.sum() / w_t.sum()
    if reduction == "sum":
        return loss.sum()
    return loss


ALPHA3 = torch.tensor([0.25, 1.5, 3.0])


# --------------------------------------------------------------------------- gamma = 0


@pytest.mark.parametrize("shape", [(7, 3), (3, 3, 4, 5)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gamma_zero_equals_cross_entropy(shape, reduction):
    logits, target = _data(shape)
    got = focal_loss(logits, target, gamma=0.0, reduction=reduction)
    expected = F.cross_entropy(logits, target, reduction=reduction)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("shape", [(7, 3), (3, 3, 4, 5)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gamma_zero_with_alpha_equals_weighted_cross_entropy(shape, reduction):
    logits, target = _data(shape, seed=1)
    got = focal_loss(logits, target, gamma=0, alpha=ALPHA3, reduction=reduction)
    expected = F.cross_entropy(logits, target, weight=ALPHA3, reduction=reduction)
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("shape", [(7, 3), (3, 3, 4, 5)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_tiny_gamma_matches_weighted_cross_entropy_normalization(shape, reduction):
    # gamma > 0 takes the focal code path; its "mean" must divide by sum(alpha[t])
    # exactly like cross_entropy(weight=alpha).
    logits, target = _data(shape, seed=2, dtype=torch.float64)
    alpha = ALPHA3.double()
    got = focal_loss(logits, target, gamma=1e-12, alpha=alpha, reduction=reduction)
    expected = F.cross_entropy(logits, target, weight=alpha, reduction=reduction)
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-10)


def test_weighted_mean_differs_from_plain_mean():
    # Guards the normalization: the weighted mean is not the mean of weighted losses.
    logits, target = _data((8, 3), seed=3, dtype=torch.float64)
    got = focal_loss(logits, target, gamma=2.0, alpha=ALPHA3.double())
    per_element = focal_loss(logits, target, gamma=2.0, alpha=ALPHA3.double(), reduction="none")
    torch.testing.assert_close(got, per_element.sum() / ALPHA3.double()[target].sum())
    assert not torch.isclose(got, per_element.mean())


# --------------------------------------------------------------------------- reference


@pytest.mark.parametrize("gamma", [0.5, 1.0, 2.0, 5.0])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(9, 3), (2, 3, 3, 4)])
def test_matches_float64_reference(gamma, reduction, shape):
    logits, target = _data(shape, seed=4, dtype=torch.float64, scale=3.0)
    alpha = ALPHA3.double()
    got = focal_loss(logits, target, gamma=gamma, alpha=alpha, reduction=reduction)
    expected = _reference(logits, target, gamma, alpha.numpy(), reduction)
    assert got.dtype == torch.float64
    assert tuple(got.shape) == np.shape(expected)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("gamma", [0.5, 2.0])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_float32_matches_reference_without_alpha(gamma, reduction):
    logits, target = _data((10, 4), seed=5, scale=3.0)
    got = focal_loss(logits, target, gamma=gamma, reduction=reduction)
    expected = _reference(logits, target, gamma, None, reduction)
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_hand_computed_value():
    # Two classes, logits (0, 0): p_t = 0.5, loss = (0.5 ** 2) * log 2 per element.
    logits = torch.zeros(2, 2)
    target = torch.tensor([0, 1])
    alpha = torch.tensor([0.25, 0.75])
    per = focal_loss(logits, target, gamma=2.0, alpha=alpha, reduction="none")
    torch.testing.assert_close(per, torch.tensor([0.25, 0.75]) * 0.25 * float(np.log(2.0)))
    torch.testing.assert_close(
        focal_loss(logits, target, gamma=2.0, alpha=alpha), torch.tensor(0.25 * float(np.log(2.0)))
    )
    torch.testing.assert_close(
        focal_loss(logits, target, gamma=2.0, alpha=alpha, reduction="sum"),
        torch.tensor(0.25 * float(np.log(2.0))),
    )


@pytest.mark.parametrize("dtype", [torch.int32, torch.int16, torch.uint8])
@pytest.mark.parametrize("gamma", [0.0, 2.0])
def test_any_integer_target_dtype(dtype, gamma):
    logits, target = _data((6, 3), seed=6)
    expected = focal_loss(logits, target, gamma=gamma, alpha=ALPHA3)
    got = focal_loss(logits, target.to(dtype), gamma=gamma, alpha=ALPHA3)
    torch.testing.assert_close(got, expected)


# --------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_gradcheck_float64(gamma, reduction):
    logits, target = _data((4, 3), seed=7, dtype=torch.float64)
    logits.requires_grad_(True)
    alpha = ALPHA3.double()
    assert torch.autograd.gradcheck(
        lambda x: focal_loss(x, target, gamma=gamma, alpha=alpha, reduction=reduction),
        (logits,),
    )


def test_gradcheck_spatial_float64():
    logits, target = _data((2, 3, 2, 2), seed=8, dtype=torch.float64)
    logits.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda x: focal_loss(x, target, gamma=2.0, alpha=ALPHA3.double()), (logits,)
    )


def _extreme():
    """Logits of +-60: rows 0, 2 have p_t == 1 in floating point, rows 1, 3, 4 p_t ~ 0."""
    logits = torch.tensor(
        [
            [60.0, -60.0, -60.0],
            [60.0, -60.0, -60.0],
            [-60.0, 60.0, -60.0],
            [-60.0, -60.0, 60.0],
            [60.0, 60.0, -60.0],
        ]
    )
    target = torch.tensor([0, 1, 1, 0, 2])
    return logits, target


@pytest.mark.parametrize("gamma", [0.0, 0.25, 0.5, 2.0, 5.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("alpha", [None, ALPHA3])
def test_gradients_finite_at_extreme_logits(gamma, dtype, alpha):
    raw, target = _extreme()
    logits = raw.to(dtype).requires_grad_(True)
    loss = focal_loss(logits, target, gamma=gamma, alpha=alpha, reduction="sum")
    loss.backward()
    assert torch.isfinite(loss)
    assert logits.grad.dtype == dtype
    assert torch.isfinite(logits.grad).all()
    grad = logits.grad.double()
    w = torch.ones(3, dtype=torch.float64) if alpha is None else alpha.double()
    # p_t == 1: loss and gradient vanish.
    torch.testing.assert_close(grad[[0, 2]], torch.zeros(2, 3, dtype=torch.float64))
    # p_t ~ exp(-120): loss ~ 120 * alpha[t]; d/dz_t -> -alpha[t], the rival class +alpha[t].
    torch.testing.assert_close(grad[1], torch.tensor([w[1], -w[1], 0.0], dtype=torch.float64))
    torch.testing.assert_close(grad[3], torch.tensor([-w[0], 0.0, w[0]], dtype=torch.float64))
    # Row 4 ties two classes at +60 against the target at -60: p = (1/2, 1/2, ~0).
    torch.testing.assert_close(grad[4], torch.tensor([0.5, 0.5, -1.0], dtype=torch.float64) * w[2])
    expected_loss = 120.0 * (w[1] + w[0]) + (120.0 + np.log(2.0)) * w[2]
    torch.testing.assert_close(loss.double(), expected_loss, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_computes_in_float32(gamma, dtype):
    logits, target = _data((6, 3), seed=9)
    low = logits.to(dtype).requires_grad_(True)
    loss = focal_loss(low, target, gamma=gamma, alpha=ALPHA3)
    assert loss.dtype == torch.float32
    expected = focal_loss(low.detach().float(), target, gamma=gamma, alpha=ALPHA3)
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert low.grad.dtype == dtype
    assert torch.isfinite(low.grad).all()


# --------------------------------------------------------------------------- focusing


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 5.0])
def test_loss_is_non_negative_and_at_most_cross_entropy(gamma):
    logits, target = _data((32, 4), seed=10, scale=4.0)
    per = focal_loss(logits, target, gamma=gamma, reduction="none")
    ce = F.cross_entropy(logits, target, reduction="none")
    assert (per >= 0).all()
    assert (per <= ce + 1e-6).all()


def test_larger_gamma_downweights_well_classified_examples():
    # p_t from 0.6 to 0.99: well classified; loss strictly decreases with gamma.
    p_t = torch.tensor([0.6, 0.8, 0.9, 0.99], dtype=torch.float64)
    logits = torch.stack([torch.log(p_t), torch.log1p(-p_t)], dim=1)
    target = torch.zeros(4, dtype=torch.long)
    losses = torch.stack(
        [focal_loss(logits, target, gamma=g, reduction="none") for g in (0, 0.5, 1, 2, 5)]
    )
    assert (losses[1:] < losses[:-1]).all()
    # The relative down-weighting is (1 - p_t) ** gamma, strongest for easy examples.
    ratio = losses[3] / losses[0]
    torch.testing.assert_close(ratio, (1 - p_t) ** 2)
    assert (ratio[1:] < ratio[:-1]).all()


# --------------------------------------------------------------------------- errors


def test_one_dimensional_logits_rejected():
    with pytest.raises(ValueError, match="logits"):
        focal_loss(torch.zeros(3), torch.tensor([0, 1, 2]))


@pytest.mark.parametrize(
    "logits_shape, target_shape",
    [((4, 3), (3,)), ((4, 3), (4, 1)), ((2, 3, 4, 4), (2, 4)), ((2, 3, 4, 4), (2, 4, 5))],
)
def test_wrong_target_shape_rejected(logits_shape, target_shape):
    with pytest.raises(ValueError, match="target must have shape"):
        focal_loss(torch.zeros(logits_shape), torch.zeros(target_shape, dtype=torch.long))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bool])
def test_non_integer_target_rejected(dtype):
    with pytest.raises(TypeError, match="target must hold integer"):
        focal_loss(torch.zeros(4, 3), torch.zeros(4, dtype=dtype))


@pytest.mark.parametrize("gamma", [-0.5, -1, float("nan")])
def test_bad_gamma_rejected(gamma):
    logits, target = _data((4, 3))
    with pytest.raises(ValueError, match="gamma must be >= 0"):
        focal_loss(logits, target, gamma=gamma)
    with pytest.raises(ValueError, match="gamma"):
        FocalLoss(gamma=gamma)(logits, target)


@pytest.mark.parametrize("alpha", [torch.ones(2), torch.ones(4), torch.ones(1, 3)])
def test_alpha_of_wrong_shape_rejected(alpha):
    logits, target = _data((4, 3))
    with pytest.raises(ValueError, match="alpha must have one weight per class"):
        focal_loss(logits, target, alpha=alpha)


@pytest.mark.parametrize("reduction", ["avg", "Mean", None])
def test_bad_reduction_rejected(reduction):
    logits, target = _data((4, 3))
    with pytest.raises(ValueError, match="reduction"):
        focal_loss(logits, target, reduction=reduction)


# --------------------------------------------------------------------------- module


@pytest.mark.parametrize("gamma", [0.0, 2.0])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_module_equals_function(gamma, reduction):
    logits, target = _data((2, 3, 3, 3), seed=11)
    module = FocalLoss(gamma=gamma, alpha=ALPHA3, reduction=reduction)
    torch.testing.assert_close(
        module(logits, target),
        focal_loss(logits, target, gamma=gamma, alpha=ALPHA3, reduction=reduction),
    )


def test_module_alpha_is_a_buffer():
    module = FocalLoss(gamma=1.5, alpha=[0.25, 0.75])
    assert "alpha" in dict(module.named_buffers())
    assert list(module.parameters()) == []
    state = module.state_dict()
    assert set(state) == {"alpha"}
    torch.testing.assert_close(state["alpha"], torch.tensor([0.25, 0.75]))
    assert module.alpha.dtype == torch.float32
    module.to(torch.float64)
    assert module.alpha.dtype == torch.float64
    torch.testing.assert_close(module.alpha, torch.tensor([0.25, 0.75], dtype=torch.float64))
    # Still works with float32 logits after the buffer moved.
    logits, target = _data((4, 2))
    torch.testing.assert_close(
        module(logits, target),
        focal_loss(logits, target, gamma=1.5, alpha=torch.tensor([0.25, 0.75])),
    )


def test_module_state_dict_round_trip():
    source = FocalLoss(alpha=np.array([1.0, 2.0, 3.0]))
    target_module = FocalLoss(alpha=torch.zeros(3))
    target_module.load_state_dict(source.state_dict())
    torch.testing.assert_close(target_module.alpha, torch.tensor([1.0, 2.0, 3.0]))


def test_module_without_alpha():
    module = FocalLoss()
    assert module.alpha is None
    assert module.state_dict() == {}
    assert module.gamma == 2.0
    assert module.reduction == "mean"
    logits, target = _data((5, 3))
    torch.testing.assert_close(module(logits, target), focal_loss(logits, target))


def test_module_repr_mentions_gamma():
    module = FocalLoss(gamma=3, reduction="sum")
    assert "gamma=3.0" in module.extra_repr()
    assert "gamma=3.0" in repr(module)
    assert "'sum'" in module.extra_repr()


def test_module_docstring_example():
    loss = FocalLoss(gamma=2.0, alpha=[0.25, 0.75])
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.3]])
    target = torch.tensor([0, 1])
    value = loss(logits, target)
    expected = _reference(logits, target, 2.0, [0.25, 0.75])
    np.testing.assert_allclose(value.item(), expected, rtol=1e-6)


# --------------------------------------------------------------------------- get_loss


class _GammaAlphaLoss(nn.Module):
    def __init__(self, gamma=1.0, alpha=None, scale=1.0):
        super().__init__()
        self.gamma, self.alpha, self.scale = gamma, alpha, scale

    def forward(self, logits, target):
        return F.cross_entropy(logits, target) * self.scale


class _GammaOnlyLoss(nn.Module):
    def __init__(self, gamma=1.0):
        super().__init__()
        self.gamma = gamma


class _NoArgsLoss(nn.Module):
    pass


def test_get_loss_ce():
    alpha = torch.tensor([0.5, 2.0])
    loss = get_loss("ce", gamma=3.0, alpha=alpha)
    assert type(loss) is nn.CrossEntropyLoss
    torch.testing.assert_close(loss.weight, alpha)
    unweighted = get_loss("ce", gamma=3.0, alpha=None, reduction="sum")
    assert unweighted.weight is None
    assert unweighted.reduction == "sum"


def test_get_loss_focal():
    alpha = torch.tensor([0.5, 2.0])
    loss = get_loss("focal", gamma=3.0, alpha=alpha, reduction="none")
    assert type(loss) is FocalLoss
    assert loss.gamma == 3.0
    assert loss.reduction == "none"
    torch.testing.assert_close(loss.alpha, alpha)
    assert get_loss("focal", gamma=0.5).alpha is None


def test_get_loss_cross_entropy_class_gets_alpha_as_weight():
    alpha = torch.tensor([0.5, 2.0, 1.0])
    loss = get_loss(nn.CrossEntropyLoss, gamma=2.0, alpha=alpha, label_smoothing=0.1)
    assert type(loss) is nn.CrossEntropyLoss
    torch.testing.assert_close(loss.weight, alpha)
    assert loss.label_smoothing == 0.1
    assert get_loss(nn.CrossEntropyLoss, gamma=2.0).weight is None


def test_get_loss_subclass_receives_gamma_and_alpha():
    alpha = torch.tensor([0.5, 2.0])
    loss = get_loss(_GammaAlphaLoss, gamma=4.0, alpha=alpha, scale=2.0)
    assert type(loss) is _GammaAlphaLoss
    assert loss.gamma == 4.0
    assert loss.alpha is alpha
    assert loss.scale == 2.0
    assert get_loss(_GammaOnlyLoss, gamma=0.5).gamma == 0.5
    assert get_loss(FocalLoss, gamma=1.5, alpha=alpha).gamma == 1.5


@pytest.mark.parametrize("loss_class", [_GammaOnlyLoss, _NoArgsLoss, nn.MSELoss])
def test_get_loss_subclass_without_weights_rejects_alpha(loss_class):
    with pytest.raises(ValueError, match="takes no class weights"):
        get_loss(loss_class, gamma=2.0, alpha=torch.ones(2))
    assert isinstance(get_loss(loss_class, gamma=2.0), loss_class)


def test_get_loss_instance_returned_as_is():
    instance = nn.CrossEntropyLoss()
    assert get_loss(instance, gamma=2.0) is instance
    with pytest.raises(ValueError, match="alpha"):
        get_loss(instance, gamma=2.0, alpha=torch.ones(2))
    with pytest.raises(ValueError, match="criterion__"):
        get_loss(instance, gamma=2.0, reduction="sum")


@pytest.mark.parametrize("name", ["bce", "Focal", "", "cross_entropy"])
def test_get_loss_unknown_string(name):
    with pytest.raises(ValueError, match="Could not interpret"):
        get_loss(name, gamma=2.0)


@pytest.mark.parametrize("obj", [42, None, F.cross_entropy, dict, nn.Module.__init__])
def test_get_loss_non_module_object(obj):
    with pytest.raises(TypeError, match="Could not interpret"):
        get_loss(obj, gamma=2.0)


@pytest.mark.parametrize(
    "kwargs, match", [({"gamma": -1.0}, "gamma"), ({"reduction": "avg"}, "reduction")]
)
def test_focal_loss_module_checks_its_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FocalLoss(**kwargs)


def test_focal_loss_accepts_alpha_as_a_list():
    logits = torch.randn(5, 3)
    target = torch.tensor([0, 1, 2, 1, 0])
    expected = focal_loss(logits, target, 2.0, torch.tensor([1.0, 2.0, 0.5]))
    torch.testing.assert_close(focal_loss(logits, target, 2.0, [1.0, 2.0, 0.5]), expected)


@pytest.mark.parametrize("gamma", [0.0, 2.0])
def test_scaling_all_class_weights_changes_nothing(gamma):
    """Why "inverse", "balanced" and "geometric" train identically: only ratios matter."""
    torch.manual_seed(0)
    logits = torch.randn(16, 2, requires_grad=True)
    target = torch.randint(0, 2, (16,))
    balanced = torch.tensor([0.595, 3.125])
    losses, grads = [], []
    for scale in (1.0, 1 / 0.595 * 0.436, 7.0):
        loss = focal_loss(logits, target, gamma, balanced * scale)
        (grad,) = torch.autograd.grad(loss, logits)
        losses.append(loss.detach())
        grads.append(grad)
    for loss, grad in zip(losses[1:], grads[1:], strict=True):
        torch.testing.assert_close(loss, losses[0])
        torch.testing.assert_close(grad, grads[0])
