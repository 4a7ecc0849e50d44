"""The embedded demo ImageFolder."""

import numpy as np
import pytest
from PIL import Image

from imbal_estimators import load_image_folder, make_demo_image_folder


def test_demo_folder_counts_labels_and_images(tmp_path):
    root = make_demo_image_folder(tmp_path / "demo", n_majority=30, n_minority=6, image_size=20)
    X, y = load_image_folder(root)
    assert np.bincount(y).tolist() == [30, 6]
    with Image.open(X[0]) as image:
        assert image.size == (20, 20) and image.mode == "L"


def test_demo_folder_is_rewritten_for_other_settings(tmp_path):
    root = tmp_path / "demo"
    make_demo_image_folder(root, n_majority=30, n_minority=6, image_size=16)
    make_demo_image_folder(root, n_majority=20, n_minority=5, image_size=24)
    X, y = load_image_folder(root)
    assert np.bincount(y).tolist() == [20, 5]
    with Image.open(X[0]) as image:
        assert image.size == (24, 24)


def test_demo_folder_reused_when_unchanged(tmp_path):
    root = tmp_path / "demo"
    make_demo_image_folder(root, n_majority=10, n_minority=3)
    first = sorted(p.stat().st_mtime_ns for p in root.rglob("*.png"))
    make_demo_image_folder(root, n_majority=10, n_minority=3)
    assert sorted(p.stat().st_mtime_ns for p in root.rglob("*.png")) == first


def test_demo_folder_refuses_a_foreign_directory(tmp_path):
    (tmp_path / "photos.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a demo folder"):
        make_demo_image_folder(tmp_path)


def test_demo_folder_refuses_too_many_images(tmp_path):
    with pytest.raises(ValueError, match="asked for"):
        make_demo_image_folder(tmp_path / "d", n_minority=500)
