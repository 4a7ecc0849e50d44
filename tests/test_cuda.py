"""The CUDA path (``pytest -m cuda`` on a machine with a GPU; skipped without one)."""

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import FAST
from sklearn.base import clone

from imbal_estimators import ImageImbalanceClassifier
from imbal_estimators.data.cache import clear_memory_caches
from imbal_estimators.models.features import LazyFrozenModel
from imbal_estimators.training.heads import fit_many

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.fixture(autouse=True)
def _fresh_caches(fresh_caches):
    """Every test here starts and ends with empty caches (conftest.fresh_caches)."""


def cuda_classifier(**params):
    return ImageImbalanceClassifier(**{**FAST, "device": "cuda", "max_epochs": 2, **params})


def test_cuda_and_cpu_fp32_fits_agree(binary_data):
    X, y = binary_data
    cpu = cuda_classifier(device="cpu", precision="fp32").fit(X, y).predict_proba(X)
    gpu = cuda_classifier(precision="fp32").fit(X, y).predict_proba(X)
    np.testing.assert_allclose(gpu, cpu, atol=0.05)


@pytest.mark.parametrize("precision", ["auto", "bf16", "fp16"])
def test_cuda_mixed_precision_fits(binary_data, precision):
    X, y = binary_data
    clf = cuda_classifier(precision=precision).fit(X, y)
    expect_scaling = precision == "fp16" or (
        precision == "auto" and not torch.cuda.is_bf16_supported()
    )
    assert (clf.grad_scaler_ is not None) == expect_scaling
    conv = next(m for m in clf.module_.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    proba = clf.predict_proba(X)
    assert proba.dtype == np.float64 and np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_cuda_frozen_heads_train_together_and_build_their_body_lazily(binary_data, shufflenet_file):
    X, y = binary_data
    base = cuda_classifier(freeze_backbone=True, weights=shufflenet_file, max_epochs=3)
    grid = [{"alpha": None}, {"alpha": "balanced"}, {"loss": "focal", "lr": 0.01}]
    separate = [clone(base).set_params(**p).fit(X, y) for p in grid]
    together = fit_many([clone(base).set_params(**p) for p in grid], X, y)
    for a, b in zip(separate, together, strict=True):
        np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), rtol=1e-4, atol=1e-5)
        assert a.best_epoch_ == b.best_epoch_
    lazy = together[0]
    assert isinstance(lazy.module_, LazyFrozenModel) and not lazy.module_.body_built
    clear_memory_caches()  # features gone: the body is built on the GPU to compute them
    np.testing.assert_allclose(lazy.predict_proba(X), separate[0].predict_proba(X), atol=1e-4)
    assert next(lazy.module_.backbone.parameters()).device.type == "cuda"


def test_cuda_pickle_predicts_in_a_cpu_only_process(binary_data, tmp_path):
    X, y = binary_data
    clf = cuda_classifier().fit(X, y)
    expected = clf.predict_proba(X)
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(clf))
    np.save(tmp_path / "expected.npy", expected)
    script = (
        "import pickle, numpy as np, torch\n"
        "assert not torch.cuda.is_available()\n"
        f"clf = pickle.loads(open({str(path)!r}, 'rb').read())\n"
        f"p = clf.predict_proba({list(map(str, X))!r})\n"
        f"print(float(np.abs(p - np.load({str(tmp_path / 'expected.npy')!r})).max()))\n"
    )
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert float(out.stdout.split()[0]) < 1e-3


def test_fit_leaves_no_cached_cuda_memory(binary_data):
    X, y = binary_data
    cuda_classifier().fit(X, y)
    torch.cuda.synchronize()
    assert torch.cuda.memory_reserved() - torch.cuda.memory_allocated() < 64 * 1024**2
