"""Frozen-backbone features, the cache parameter (memory, directory, None) and precision."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import FAST, TinyCNN, tiny_classifier

from imbal_estimators import ImageImbalanceClassifier
from imbal_estimators.data.cache import clear_memory_caches, get_feature_cache
from imbal_estimators.models.backbones import FrozenBackboneModel
from imbal_estimators.models.features import (
    LazyFrozenModel,
    weights_fingerprint,
)
from imbal_estimators.training.precision import autocast_dtype, loader_defaults


@pytest.fixture
def count_body_calls(monkeypatch):
    """Count the images the frozen body computes features for."""
    calls = []
    original = FrozenBackboneModel.features

    def features(self, images):
        calls.append(len(images))
        return original(self, images)

    monkeypatch.setattr(FrozenBackboneModel, "features", features)
    return calls


@pytest.fixture(autouse=True)
def _fresh_caches(fresh_caches):
    """Every test here starts and ends with empty caches (conftest.fresh_caches)."""


def frozen(**params):
    return tiny_classifier(
        **{"freeze_backbone": True, "head_solver": None, "max_epochs": 3, **params}
    )


def test_frozen_backbone_trains_only_the_head(binary_data):
    X, y = binary_data
    clf = frozen().fit(X, y)
    before = {k: v.clone() for k, v in clf.module_.backbone.state_dict().items()}
    assert isinstance(clf.module_, FrozenBackboneModel)
    trainable = [name for name, _ in clf.get_all_learnable_params()]
    assert trainable == ["head.weight", "head.bias"]
    clf.partial_fit(X, y)
    after = clf.module_.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert clf.module_.training is False or clf.module_.backbone.training is False
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_frozen_backbone_learns(binary_data):
    X, y = binary_data
    clf = frozen(max_epochs=15, lr=0.1).fit(X, y)
    assert clf.score(X, y) > 0.9


def test_features_are_computed_once_per_image_and_weights(binary_data, count_body_calls):
    X, y = binary_data
    frozen().fit(X, y)
    first = sum(count_body_calls)
    assert first == len(X)  # one pass, then every epoch trains on the cached features
    clf = frozen(alpha="balanced", gamma=1.0, loss="focal").fit(X, y)
    clf.predict_proba(X)
    assert sum(count_body_calls) == first  # another candidate, same weights: all hits


def test_other_weights_are_never_served_cached_features(binary_data, count_body_calls):
    X, y = binary_data
    frozen(random_state=0).fit(X, y)
    frozen(random_state=1).fit(X, y)  # another random initialization of the body
    assert sum(count_body_calls) == 2 * len(X)


def test_weights_files_key_the_features(binary_data, tmp_path, count_body_calls):
    import torchvision

    X, y = binary_data
    files = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        files.append(tmp_path / f"weights{seed}.pth")
        torch.save(torchvision.models.shufflenet_v2_x0_5().state_dict(), files[-1])

    def fit(weights, **params):
        params = {**FAST, "freeze_backbone": True, "max_epochs": 2, "weights": weights, **params}
        ImageImbalanceClassifier(**params).fit(X, y)

    fit(files[0])
    fit(files[0], alpha="balanced")
    assert sum(count_body_calls) == len(X)
    fit(files[1])
    assert sum(count_body_calls) == 2 * len(X)


def test_weights_file_keys_features_without_hashing(binary_data, tmp_path, monkeypatch):
    import torchvision

    import imbal_estimators.models.features as features

    X, y = binary_data
    path = tmp_path / "weights.pth"
    torch.save(torchvision.models.shufflenet_v2_x0_5().state_dict(), path)
    hashed = []
    digest = features.weights_fingerprint
    monkeypatch.setattr(features, "weights_fingerprint", lambda m: hashed.append(1) or digest(m))
    clf = ImageImbalanceClassifier(**{**FAST, "freeze_backbone": True, "weights": path}).fit(X, y)
    clf.predict_proba(X[:4])
    assert hashed == []  # the file's identity keys the features
    state = clf.module_.backbone.state_dict()
    clf.module_.backbone.load_state_dict({k: v + 1 for k, v in state.items()})
    clf.predict_proba(X[:4])
    assert hashed == [1]  # changed in place: no longer the file's weights


def test_weights_changed_in_place_invalidate_features(binary_data, count_body_calls):
    X, y = binary_data
    clf = frozen().fit(X, y)
    calls = sum(count_body_calls)
    clf.predict_proba(X[:5])
    assert sum(count_body_calls) == calls
    state = clf.module_.backbone.state_dict()
    clf.module_.backbone.load_state_dict({k: v + 0.01 for k, v in state.items()})
    clf.predict_proba(X[:5])
    assert sum(count_body_calls) == calls + 5


def test_touched_file_is_recomputed(binary_data, count_body_calls, tmp_path):
    X, y = binary_data
    X = list(X)
    clf = frozen().fit(X, y)
    n = sum(count_body_calls)
    target = tmp_path / "copy.png"
    target.write_bytes(open(X[0], "rb").read())
    X[0] = str(target)
    clf.predict_proba(X[:3])
    assert sum(count_body_calls) == n + 1  # only the new file
    os.utime(target, ns=(1, 1))
    clf.predict_proba(X[:3])
    assert sum(count_body_calls) == n + 2  # a touched file is a new key


def test_predictions_with_and_without_cache_match(binary_data):
    X, y = binary_data
    for params in ({}, {"freeze_backbone": True}):
        cached = tiny_classifier(cache="memory", **params).fit(X, y)
        cached_again = tiny_classifier(cache="memory", **params).fit(X, y)
        plain = tiny_classifier(cache=None, **params).fit(X, y)
        np.testing.assert_array_equal(cached.predict(X), plain.predict(X))
        np.testing.assert_array_equal(cached_again.predict(X), plain.predict(X))
        np.testing.assert_allclose(cached.predict_proba(X), plain.predict_proba(X), atol=1e-6)


def test_cache_none_keeps_no_features(binary_data):
    X, y = binary_data
    frozen(cache=None).fit(X, y)
    assert len(get_feature_cache("memory")) == 0


def test_directory_cache_is_shared_between_processes(binary_data, tmp_path):
    X, y = binary_data
    cache = tmp_path / "cache"
    frozen(cache=str(cache)).fit(X, y)
    image_files = list((cache / "images").rglob("*.npy"))
    feature_files = list((cache / "features").rglob("*.npy"))
    assert len(image_files) == len(X)
    assert len(feature_files) == len(X)
    script = f"""
import sys
sys.path.insert(0, {os.path.dirname(__file__)!r})
from conftest import tiny_classifier
from imbal_estimators.models.backbones import FrozenBackboneModel
from imbal_estimators.data.images import ImageLoader
import imbal_estimators.data.images as data
calls = []
original = FrozenBackboneModel.features
FrozenBackboneModel.features = lambda self, x: calls.append(len(x)) or original(self, x)
reads = []
read = data.read_image
data.read_image = lambda *a: reads.append(1) or read(*a)
X = {list(map(str, X))!r}
y = {[str(v) for v in y]!r}
tiny_classifier(freeze_backbone=True, max_epochs=3, cache={str(cache)!r}).fit(X, y)
print(sum(calls), len(reads))
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["0", "0"]  # no decode and no feature pass in the second process


def test_cache_path_that_is_a_file_is_refused(binary_data, tmp_path):
    X, y = binary_data
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(ValueError, match="cache=.*is a file"):
        tiny_classifier(cache=str(path)).fit(X, y)


def test_corrupt_cache_file_is_a_miss(binary_data, tmp_path):
    X, y = binary_data
    cache = tmp_path / "cache"
    first = tiny_classifier(cache=str(cache)).fit(X, y).predict_proba(X)
    clear_memory_caches()
    for file in (cache / "images").rglob("*.npy"):
        file.write_bytes(b"not numpy")
    from imbal_estimators.data.cache import CacheWarning

    with pytest.warns(CacheWarning, match="cannot read an entry"):  # and decodes instead
        second = tiny_classifier(cache=str(cache)).fit(X, y).predict_proba(X)
    np.testing.assert_allclose(first, second, atol=1e-6)


def test_weights_fingerprint_tracks_every_tensor():
    torch.manual_seed(0)
    a, b = TinyCNN(), TinyCNN()
    assert weights_fingerprint(a) != weights_fingerprint(b)
    b.load_state_dict(a.state_dict())
    assert weights_fingerprint(a) == weights_fingerprint(b)


def test_freeze_backbone_needs_a_linear_head(binary_data):
    X, y = binary_data
    # 64 px: at FAST's 16 px squeezenet's pooling leaves nothing (named before this check)
    params = {**FAST, "backbone": "squeezenet1_0", "freeze_backbone": True, "image_size": 64}
    clf = ImageImbalanceClassifier(**params)
    with pytest.raises(ValueError, match="freeze_backbone=True needs a backbone whose head"):
        clf.fit(X, y)


def test_bf16_precision_on_cpu(binary_data):
    X, y = binary_data
    clf = tiny_classifier(precision="bf16").fit(X, y)
    proba = clf.predict_proba(X)
    assert proba.dtype == np.float64 and np.isfinite(proba).all()
    assert clf.grad_scaler_ is None


def test_features_of_one_precision_are_not_served_to_another(binary_data, count_body_calls):
    X, y = binary_data
    bf16 = frozen(precision="bf16").fit(X, y)
    assert sum(count_body_calls) == len(X)
    fp32 = frozen(precision="fp32").fit(X, y)
    assert sum(count_body_calls) == 2 * len(X)  # a float32 pass of its own
    np.testing.assert_array_equal(
        fp32.predict_proba(X), frozen(precision="fp32", cache=None).fit(X, y).predict_proba(X)
    )
    before = sum(count_body_calls)
    again = frozen(precision="bf16").fit(X, y)
    assert sum(count_body_calls) == before  # bf16's own features are still cached
    np.testing.assert_array_equal(again.predict_proba(X), bf16.predict_proba(X))


def test_precision_values(monkeypatch):
    import imbal_estimators.training.precision as precision

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert autocast_dtype("auto", "cpu") is None
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert autocast_dtype("auto", "cpu") is torch.bfloat16
    assert autocast_dtype("fp32", "cpu") is None
    assert autocast_dtype("bf16", "cpu") is torch.bfloat16
    with pytest.raises(ValueError, match="precision='fp16' needs a CUDA device"):
        autocast_dtype("fp16", "cpu")


@pytest.mark.parametrize(
    "params, match",
    [
        ({"precision": "fp8"}, "'precision' parameter"),
        ({"precision": "fp16"}, "precision='fp16' needs a CUDA device"),
        ({"freeze_backbone": "yes"}, "'freeze_backbone' parameter"),
    ],
)
def test_bad_fast_path_parameters(binary_data, params, match):
    X, y = binary_data
    with pytest.raises(ValueError, match=match):
        tiny_classifier(**params).fit(X, y)


def test_loader_defaults():
    assert loader_defaults("cpu") == {}
    cuda = loader_defaults("cuda")
    assert cuda["pin_memory"] is True and cuda["num_workers"] >= 1
    assert loader_defaults("cuda", holds_images=False)["num_workers"] == 0


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("precision", ["bf16", "fp16", "fp32", "auto"])
def test_cuda_precisions_and_channels_last(binary_data, precision):
    X, y = binary_data
    clf = ImageImbalanceClassifier(**{**FAST, "device": "cuda", "precision": precision}).fit(X, y)
    assert (clf.grad_scaler_ is not None) == (precision == "fp16")
    conv = next(m for m in clf.module_.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert np.isfinite(clf.predict_proba(X)).all()


@pytest.fixture
def count_builds(monkeypatch):
    """Count the backbones built from their weights."""
    import imbal_estimators.estimator.classifier as classifier

    builds = []
    original = classifier.build_backbone
    monkeypatch.setattr(
        classifier, "build_backbone", lambda *a, **k: builds.append(a[0]) or original(*a, **k)
    )
    return builds


def frozen_from(weights, **params):
    return ImageImbalanceClassifier(
        **{**FAST, "freeze_backbone": True, "weights": weights, "max_epochs": 2, **params}
    )


def test_cached_features_skip_building_the_body(binary_data, shufflenet_file, count_builds):
    X, y = binary_data
    first = frozen_from(shufflenet_file).fit(X, y)
    assert count_builds == ["shufflenet_v2_x0_5"]
    again = frozen_from(shufflenet_file).fit(X, y)
    other = frozen_from(shufflenet_file, loss="focal", alpha="balanced").fit(X, y)
    assert count_builds == ["shufflenet_v2_x0_5"]  # all features cached: no body built
    for clf in (again, other):
        assert isinstance(clf.module_, LazyFrozenModel) and not clf.module_.body_built
        assert [name for name, _ in clf.get_all_learnable_params()] == ["head.weight", "head.bias"]
    # one optimizer state for the built and the lazy model: a checkpoint of one resumes in the other
    groups = [clf.optimizer_.state_dict()["param_groups"] for clf in (first, again)]
    assert [g[0]["params"] for g in groups] == [[0, 1], [0, 1]]
    # the same fit as the one that built its body, to the bit
    np.testing.assert_array_equal(again.predict_proba(X), first.predict_proba(X))
    assert [list(r) for r in again.history] == [list(r) for r in first.history]
    np.testing.assert_array_equal(again.history[:, "train_loss"], first.history[:, "train_loss"])
    assert not again.module_.body_built  # predicting cached images needs no body either


def test_another_random_state_or_class_count_builds_again(
    binary_data, three_class_data, shufflenet_file, count_builds
):
    X, y = binary_data
    frozen_from(shufflenet_file).fit(X, y)
    frozen_from(shufflenet_file, random_state=1).fit(X, y)
    frozen_from(shufflenet_file).fit(*three_class_data)
    frozen_from(shufflenet_file, cache=None).fit(X, y)
    frozen_from(shufflenet_file, cache=None).fit(X, y)
    assert len(count_builds) == 5


def test_deferred_body_is_built_for_new_images(binary_data, shufflenet_file, tmp_path):
    X, y = binary_data
    eager = frozen_from(shufflenet_file).fit(X[:-4], y[:-4])
    lazy = frozen_from(shufflenet_file).fit(X[:-4], y[:-4])
    assert not lazy.module_.body_built
    np.testing.assert_allclose(lazy.predict_proba(X), eager.predict_proba(X), rtol=1e-6)
    assert lazy.module_.body_built
    assert set(lazy.module_.state_dict()) == set(eager.module_.state_dict())
    assert list(lazy.module_.state_dict()) == list(eager.module_.state_dict())


def test_deferred_body_is_built_to_pickle_and_save(binary_data, shufflenet_file, tmp_path):
    import pickle

    from imbal_estimators import load

    X, y = binary_data
    frozen_from(str(shufflenet_file)).fit(X, y)
    lazy = frozen_from(str(shufflenet_file)).fit(X, y)
    saved = frozen_from(str(shufflenet_file)).fit(X, y)
    expected = lazy.predict_proba(X)
    restored = pickle.loads(pickle.dumps(lazy))
    assert restored.module_.body_built
    saved.save(tmp_path / "saved")
    assert saved.module_.body_built
    np.testing.assert_allclose(load(tmp_path / "saved").predict_proba(X), expected, atol=1e-5)
    shufflenet_file.unlink()  # what was pickled no longer needs the file
    clear_memory_caches()
    np.testing.assert_allclose(restored.predict_proba(X), expected, rtol=1e-5, atol=1e-6)


def test_deferred_body_refuses_a_replaced_weights_file(binary_data, shufflenet_file):
    import torchvision

    X, y = binary_data
    frozen_from(shufflenet_file).fit(X[:-2], y[:-2])
    lazy = frozen_from(shufflenet_file).fit(X[:-2], y[:-2])
    torch.save(torchvision.models.shufflenet_v2_x0_5().state_dict(), shufflenet_file)
    with pytest.raises(RuntimeError, match="weights changed after this estimator was fitted"):
        lazy.predict_proba(X[-2:])


def test_random_initialization_is_built_and_hashed_once_per_random_state(
    binary_data, count_builds, monkeypatch
):
    import imbal_estimators.models.features as features

    hashed = []
    original = features.weights_fingerprint
    monkeypatch.setattr(features, "weights_fingerprint", lambda m: hashed.append(1) or original(m))
    X, y = binary_data
    first = frozen_from(None).fit(X, y)
    again = frozen_from(None).fit(X, y)
    other = frozen_from(None, loss="focal", alpha="balanced").fit(X, y)
    assert len(count_builds) == 1 and len(hashed) == 1
    for clf in (again, other):
        assert isinstance(clf.module_, LazyFrozenModel) and not clf.module_.body_built
    # the same fit as the one that built (and hashed) its body, to the bit
    np.testing.assert_array_equal(again.predict_proba(X), first.predict_proba(X))
    np.testing.assert_array_equal(again.history[:, "train_loss"], first.history[:, "train_loss"])
    assert not again.module_.body_built
    frozen_from(None, random_state=1).fit(X, y)  # another random body: built and hashed
    frozen_from(None, random_state=None).fit(X, y)
    frozen_from(None, cache=None).fit(X, y)
    assert len(count_builds) == 4 and len(hashed) == 3


def test_deferred_random_body_is_the_one_its_fit_drew(binary_data, count_body_calls):
    import pickle

    X, y = binary_data
    eager = frozen_from(None).fit(X[:-4], y[:-4])
    lazy = frozen_from(None).fit(X[:-4], y[:-4])
    assert not lazy.module_.body_built
    # new images need the body: rebuilt from the fit's random state, so the same weights
    # (checked against the fingerprint) and the same features as the eager model's
    np.testing.assert_array_equal(lazy.predict_proba(X), eager.predict_proba(X))
    assert lazy.module_.body_built
    eager_state, lazy_state = eager.module_.state_dict(), lazy.module_.state_dict()
    assert list(lazy_state) == list(eager_state)
    for name, tensor in eager_state.items():
        assert torch.equal(lazy_state[name], tensor), name
    pickled = frozen_from(None).fit(X[:-4], y[:-4])
    restored = pickle.loads(pickle.dumps(pickled))
    assert restored.module_.body_built
    clear_memory_caches()
    np.testing.assert_array_equal(restored.predict_proba(X), eager.predict_proba(X))


def test_deferred_random_body_that_comes_out_different_is_refused(binary_data, monkeypatch):
    import imbal_estimators.models.features as features

    X, y = binary_data
    frozen_from(None).fit(X[:-2], y[:-2])
    lazy = frozen_from(None).fit(X[:-2], y[:-2])
    monkeypatch.setattr(lazy.module_, "_fingerprint", "another body")
    with pytest.raises(RuntimeError, match="gave other weights than the fit's"):
        lazy.predict_proba(X[-2:])
    assert features.known_fingerprint(lazy.module_) == "another body"


def test_pre_flight_scan_of_unchanged_files_is_remembered(binary_data, monkeypatch, tmp_path):
    import shutil

    import imbal_estimators.data.preflight as preflight

    X, y = binary_data
    X = [shutil.copy(p, tmp_path / f"{i}.png") for i, p in enumerate(X)]
    scans = []
    original = preflight.find_bad_images
    monkeypatch.setattr(
        preflight,
        "find_bad_images",
        lambda paths, *a: scans.append(len(paths)) or original(paths, *a),
    )
    preflight.clear_scan_memo()
    tiny_classifier(cache=None).fit(X, y)
    tiny_classifier(cache=None, alpha="balanced").fit(X, y)
    assert scans == [len(X)]
    os.utime(X[3], ns=(10**9, 10**9))  # a touched file is a new key: scanned again
    tiny_classifier(cache=None).fit(X, y)
    assert scans == [len(X), len(X)]
    with open(X[5], "wb") as file:
        file.write(b"not an image")
    with pytest.raises(ValueError, match=r"X\[5\]"):
        tiny_classifier(cache=None).fit(X, y)
