"""precision="auto": bfloat16 with channels-last on CPUs with native bfloat16, float32 elsewhere."""

import numpy as np
import pytest
import torch
from conftest import TinyCNN, tiny_classifier
from torch import nn

import imbal_estimators.training.precision as precision
from imbal_estimators.training.precision import (
    autocast_dtype,
    cpu_has_native_bf16,
    uses_channels_last,
)


@pytest.fixture
def native_bf16(monkeypatch):
    """Set what the CPU detection answers: ``native_bf16(True)`` or ``native_bf16(False)``."""

    def answer(value):
        monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: value)

    return answer


@pytest.fixture
def fresh_detection():
    cpu_has_native_bf16.cache_clear()
    yield
    cpu_has_native_bf16.cache_clear()


class DtypeRecorder(TinyCNN):
    """TinyCNN that records the dtype and memory format its convolution trains in."""

    seen = []

    def forward(self, x):
        out = self.features(x)
        if self.training:  # not the estimator's fp32 check of the output shape
            DtypeRecorder.seen.append(
                (out.dtype, x.is_contiguous(memory_format=torch.channels_last))
            )
        return self.head(out.mean(dim=(2, 3)))


@pytest.mark.parametrize(
    "capabilities, expected",
    [
        ({"amx_bf16": True, "avx512_bf16": False}, True),
        ({"amx_bf16": False, "avx512_bf16": True}, True),
        ({"amx_bf16": False, "avx512_bf16": False, "avx2": True}, False),
        ({"architecture": "arm64", "neon": True}, False),
    ],
)
def test_detection_reads_torch_cpu_capabilities(
    monkeypatch, fresh_detection, capabilities, expected
):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: capabilities, raising=False)
    assert cpu_has_native_bf16() is expected


@pytest.mark.parametrize("avx512_bf16, expected", [(True, True), (False, False)])
def test_detection_falls_back_to_older_queries(monkeypatch, fresh_detection, avx512_bf16, expected):
    monkeypatch.delattr(torch.cpu, "get_capabilities", raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    assert cpu_has_native_bf16() is expected


def test_detection_without_any_query_is_float32(monkeypatch, fresh_detection):
    for name in ("get_capabilities", "_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        monkeypatch.delattr(torch.cpu, name, raising=False)
    assert cpu_has_native_bf16() is False


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_follows_the_cpu(native_bf16, native):
    native_bf16(native)
    expected = torch.bfloat16 if native else None
    assert autocast_dtype("auto", "cpu") is expected
    assert uses_channels_last("cpu", autocast_dtype("auto", "cpu")) is native
    # the explicit choices do not depend on the CPU
    assert autocast_dtype("fp32", "cpu") is None
    assert autocast_dtype("bf16", "cpu") is torch.bfloat16
    assert uses_channels_last("cpu", None) is False
    assert uses_channels_last("cuda", None) is True
    with pytest.raises(ValueError, match="precision='fp16' needs a CUDA device"):
        autocast_dtype("fp16", "cpu")


@pytest.mark.parametrize("native", [True, False])
def test_auto_fit_trains_in_bf16_channels_last_only_on_native_cpus(
    binary_data, native_bf16, native
):
    native_bf16(native)
    X, y = binary_data
    DtypeRecorder.seen = []
    clf = tiny_classifier(module=DtypeRecorder, precision="auto").fit(X, y)
    dtypes = {dtype for dtype, _ in DtypeRecorder.seen}
    formats = {channels_last for _, channels_last in DtypeRecorder.seen}
    assert dtypes == {torch.bfloat16 if native else torch.float32}
    assert formats == {native}
    conv = clf.module_.backbone.features[0]
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) is native
    assert clf.grad_scaler_ is None
    proba = clf.predict_proba(X)
    assert proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12)


def test_bf16_is_accepted_on_any_cpu(binary_data, native_bf16):
    native_bf16(False)
    X, y = binary_data
    DtypeRecorder.seen = []
    clf = tiny_classifier(module=DtypeRecorder, precision="bf16").fit(X, y)
    assert {dtype for dtype, _ in DtypeRecorder.seen} == {torch.bfloat16}
    assert np.isfinite(clf.predict_proba(X)).all()


def test_bf16_predictions_agree_with_fp32(binary_data):
    X, y = binary_data
    clf = tiny_classifier(precision="fp32", max_epochs=3).fit(X, y)
    fp32 = clf.predict_proba(X)
    clf.precision = "bf16"  # the same weights, predicted under bfloat16 autocast
    bf16 = clf.predict_proba(X)
    assert bf16.dtype == np.float64
    np.testing.assert_allclose(bf16.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    # bfloat16 keeps 8 bits of mantissa: logits agree to about 1e-2 relative
    np.testing.assert_allclose(bf16, fp32, atol=2e-2)
    assert not np.array_equal(bf16, fp32)  # it did run in bfloat16


class LossInputDtype(nn.Module):
    seen = []

    def forward(self, logits, target):
        LossInputDtype.seen.append(logits.dtype)
        return nn.functional.cross_entropy(logits, target)


def test_loss_is_float32_under_bf16(binary_data):
    X, y = binary_data
    LossInputDtype.seen = []
    tiny_classifier(precision="bf16", loss=LossInputDtype).fit(X, y)
    assert LossInputDtype.seen and set(LossInputDtype.seen) == {torch.float32}


def test_frozen_head_runs_in_float32_on_cached_features(binary_data):
    X, y = binary_data
    clf = tiny_classifier(precision="bf16", freeze_backbone=True).fit(X, y)
    features = torch.randn(5, clf.module_.head.in_features)
    logits = clf.infer(features)
    assert logits.dtype == torch.float32
    expected = nn.functional.linear(features, clf.module_.head.weight, clf.module_.head.bias)
    torch.testing.assert_close(logits, expected, rtol=0, atol=0)


class AutocastRecorder(nn.Module):
    """Records whether autocast is on, and the memory format, of the batches it gets."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 2)
        self.seen = []

    def forward(self, x):
        channels_last = x.is_contiguous(memory_format=torch.channels_last)
        self.seen.append((torch.is_autocast_enabled("cpu"), channels_last))
        return self.linear(x.mean(dim=(2, 3)))


def test_the_network_applies_the_precision_it_is_given():
    """skorch's infer calls the network as it is: autocast, channels-last batches and
    float32 logits are the network's own (set_precision), for every loss."""
    from imbal_estimators.models.backbones import ImageModel
    from imbal_estimators.training.precision import set_precision

    model = ImageModel(AutocastRecorder())
    images = torch.randint(0, 255, (4, 3, 8, 8), dtype=torch.uint8)
    assert model(images).dtype == torch.float32  # a new model: float32, as given
    assert set_precision(nn.Sequential(model), "bf16", "cpu")[0] is model
    assert (model.autocast_dtype, model.channels_last) == (torch.bfloat16, True)
    logits = model(images)
    assert logits.dtype == torch.float32
    set_precision(model, "fp32", "cpu")
    model(images)
    assert model.backbone.seen == [(False, False), (True, True), (False, False)]


def test_an_export_runs_in_float32_whatever_the_fit_ran_in(binary_data):
    from imbal_estimators.estimator.export import build_predictor

    X, y = binary_data
    clf = tiny_classifier(precision="bf16").fit(X, y)
    assert clf.module_.autocast_dtype == torch.bfloat16
    (network,) = build_predictor(clf).networks
    assert (network.autocast_dtype, network.channels_last) == (None, False)
    assert clf.module_.autocast_dtype == torch.bfloat16  # the estimator's own is unchanged
