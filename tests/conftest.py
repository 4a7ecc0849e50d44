"""Shared fixtures: tiny image folders written by the tests themselves (no downloads)."""

import contextlib
import importlib.util
import os
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
    """Tests never reach the network: a weights download fails as it does offline."""
    import urllib.error

    import torch.hub
    import torchvision.models._api

    def refuse(url, *args, **kwargs):
        raise urllib.error.URLError(f"tests do not download ({url})")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", refuse)
    if "timm" in sys.modules or importlib.util.find_spec("timm") is not None:
        import timm.models._builder  # timm's own names for its download functions

        monkeypatch.setattr(timm.models._builder, "load_state_dict_from_url", refuse)
        monkeypatch.setattr(timm.models._builder, "load_state_dict_from_hf", refuse)
        monkeypatch.setattr(timm.models._builder, "download_cached_file", refuse)
        monkeypatch.setattr(timm.models._builder, "load_custom_from_hf", refuse)


# Small and fast everywhere: 16 px images, a tiny torchvision backbone, no weights.
# float32: precision="auto" is bfloat16 on CPUs with native bfloat16, and the suite must
# give the same results on every CPU (tests/test_precision.py covers bfloat16).
FAST = dict(
    backbone="shufflenet_v2_x0_5",
    weights=None,
    image_size=16,
    max_epochs=1,
    batch_size=16,
    lr=1e-3,
    device="cpu",
    verbose=0,
    random_state=0,
    precision="fp32",
)


class TinyCNN(nn.Module):
    """A few thousand weights: learns the color-coded test classes in one epoch."""

    pretrained = False  # compare fine-tunes it without a frozen screen

    def __init__(self, num_classes=2):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(8, num_classes)

    def forward(self, x):
        return self.head(self.features(x).mean(dim=(2, 3)))


# The tiny network for tests about wiring and scikit-learn behaviour.
TINY = dict(FAST, module=TinyCNN, lr=0.05, max_epochs=2)


def tiny_classifier(**params):
    """An ImageImbalanceClassifier with the TinyCNN settings, overridden by ``params``."""
    from imbal_estimators import ImageImbalanceClassifier

    return ImageImbalanceClassifier(**{**TINY, **params})


def write_images(folder, n, color, size=20, seed=0, suffix=".png"):
    """Write ``n`` noisy images around ``color`` into ``folder``; return their paths."""
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i in range(n):
        pixels = np.clip(
            np.asarray(color, dtype=np.float64) + rng.normal(0, 25, size=(size, size, 3)), 0, 255
        ).astype(np.uint8)
        path = os.path.join(folder, f"img_{i:04d}{suffix}")
        Image.fromarray(pixels, "RGB").save(path)
        paths.append(path)
    return paths


def make_folder(root, counts, size=20):
    """An ImageFolder with ``{class_name: n_images}``; colors make classes separable."""
    colors = [(220, 40, 40), (40, 220, 40), (40, 40, 220), (220, 220, 40)]
    for i, (name, n) in enumerate(counts.items()):
        write_images(os.path.join(root, str(name)), n, colors[i % len(colors)], size, seed=i)
    return str(root)


@pytest.fixture(scope="session")
def binary_folder(tmp_path_factory):
    """48 images of class "cat" and 16 of class "dog" (3:1)."""
    return make_folder(tmp_path_factory.mktemp("binary"), {"cat": 48, "dog": 16})


@pytest.fixture(scope="session")
def binary_data(binary_folder):
    from imbal_estimators import load_image_folder

    return load_image_folder(binary_folder)


@pytest.fixture(scope="session")
def int_binary_data(tmp_path_factory):
    """Folders ``0`` (40 images) and ``1`` (14 images): integer labels 0 and 1."""
    from imbal_estimators import load_image_folder

    return load_image_folder(make_folder(tmp_path_factory.mktemp("int01"), {0: 40, 1: 14}))


@pytest.fixture(scope="session")
def three_class_data(tmp_path_factory):
    from imbal_estimators import load_image_folder

    root = make_folder(tmp_path_factory.mktemp("three"), {"a": 30, "b": 12, "c": 6})
    return load_image_folder(root)


@contextlib.contextmanager
def images_read():
    """The paths of every image read (decoded or taken from the cache) inside the block."""
    from imbal_estimators.data.images import ImageLoader

    reads = []
    original = ImageLoader.__call__

    def spy(self, path):
        reads.append(path)
        return original(self, path)

    ImageLoader.__call__ = spy
    try:
        yield reads
    finally:
        ImageLoader.__call__ = original


@pytest.fixture
def fresh_caches():
    """Empty the process's decoded-image, feature and frozen-head caches around a test."""
    from imbal_estimators.data.cache import clear_memory_caches
    from imbal_estimators.models.features import clear_head_recipes

    clear_memory_caches()
    clear_head_recipes()
    yield
    clear_memory_caches()
    clear_head_recipes()


@pytest.fixture
def shufflenet_file(tmp_path):
    """A state-dict file of a randomly initialized shufflenet_v2_x0_5, written here."""
    import torch
    import torchvision

    torch.manual_seed(0)
    path = tmp_path / "shufflenet.pth"
    torch.save(torchvision.models.shufflenet_v2_x0_5().state_dict(), path)
    return path


def frozen_base(shufflenet_file, **params):
    """A frozen-backbone shufflenet estimator (3 epochs, batches of 8) from ``shufflenet_file``,
    whose head trains by epochs (``head_solver=None``: the lock-step and direct loops)."""
    from imbal_estimators import ImageImbalanceClassifier

    return ImageImbalanceClassifier(
        **{
            **FAST,
            "freeze_backbone": True,
            "weights": shufflenet_file,
            "max_epochs": 3,
            "batch_size": 8,
            "head_solver": None,
            **params,
        }
    )


def _head_grid():
    from imblearn.over_sampling import SMOTE, RandomOverSampler

    return [
        {"loss": "ce"},
        {"loss": "focal", "gamma": 1.0, "alpha": "balanced"},
        {"loss": "focal", "gamma": 2.0, "alpha": 0.75, "lr": 0.01},
        {"sampler": RandomOverSampler()},
        {"sampler": SMOTE(k_neighbors=3)},
        {"sampler": "balanced_batches", "loss": "logit_adjusted"},
        {"loss": "ldam", "alpha": "effective", "drw_epoch": 2},
        {"threshold": "auto", "monitor": "f1"},
        {"calibrate": True, "batch_size": 5, "max_epochs": 2},
        {"optimizer__weight_decay": 0.5, "label_smoothing": 0.1},
    ]


#: head-side parameter sets that fit_many and the direct head loop must fit as separate fits do
HEAD_GRID = _head_grid()


@pytest.fixture
def quiet_optuna():
    """Optuna's per-trial INFO lines off for the test (search tests use it)."""
    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    yield
    optuna.logging.set_verbosity(level)


@pytest.fixture(scope="module")
def numeric_data():
    """Study mechanics are tested on a model that fits in milliseconds."""
    from sklearn.datasets import make_classification

    return make_classification(n_samples=60, n_features=4, weights=[0.7], random_state=0)


@pytest.fixture
def small_cnn_file(tmp_path):
    """A small_cnn state dict (it has BatchNorm layers) that the test writes: "pretrained"
    weights that no download gives."""
    from imbal_estimators import SmallCNN

    torch.manual_seed(0)
    path = tmp_path / "small.pth"
    torch.save(SmallCNN(num_classes=2).state_dict(), path)
    return str(path)
