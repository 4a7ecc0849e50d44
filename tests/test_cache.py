"""The directory cache is best-effort: when it cannot be written or read, the images are
decoded without it, with a warning, and a healthy image is never reported as bad."""

import errno
import os

import numpy as np
import pytest
import torch
from conftest import make_folder
from conftest import tiny_classifier as make

import imbal_estimators.data.cache as cache_module
import imbal_estimators.data.images as images_module
from imbal_estimators import load_image_folder
from imbal_estimators.data.cache import CacheWarning, DirectoryTensorCache, image_key
from imbal_estimators.data.images import ImageLoader

SIZE = 16


@pytest.fixture
def fresh_data(tmp_path):
    """Images no other test decoded: the process's memory cache holds none of them."""
    return load_image_folder(make_folder(tmp_path / "data", {"a": 12, "b": 6}, size=16))


def entry_path(cache_dir, image, size=SIZE):
    return DirectoryTensorCache(os.path.join(cache_dir, "images")).path_of(image_key(image, size))


@pytest.fixture
def count_reads(monkeypatch):
    reads = []
    read = images_module.read_image
    monkeypatch.setattr(images_module, "read_image", lambda *a: reads.append(a[0]) or read(*a))
    return reads


@pytest.mark.parametrize("on_bad_image", ["raise", "skip"])
def test_a_full_cache_disk_never_turns_healthy_images_into_bad_ones(
    fresh_data, tmp_path, monkeypatch, on_bad_image
):
    X, y = fresh_data

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache_module.np, "save", disk_full)
    clf = make(cache=str(tmp_path / "cache"), on_bad_image=on_bad_image, max_epochs=1)
    with pytest.warns(CacheWarning, match="cannot store an entry .*No space left on device"):
        clf.fit(X, y)
    assert clf.skipped_images_ == []
    assert clf.class_counts_.sum() == len(clf.train_indices_) and len(clf.train_indices_) > 0
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]  # no temporary left


def test_an_entry_path_that_is_a_directory_is_a_warning_and_a_miss(fresh_data, tmp_path):
    X, y = fresh_data
    cache = str(tmp_path / "cache")
    os.makedirs(entry_path(cache, X[0]))
    loader = ImageLoader(SIZE, cache)
    with pytest.warns(CacheWarning, match="cannot read an entry .*it is a directory"):
        image = loader(X[0])
    assert image.shape == (3, SIZE, SIZE)
    clf = make(cache=cache, max_epochs=1).fit(X, y)  # the failed write warned once already
    assert clf.skipped_images_ == []


@pytest.mark.parametrize(
    "write, reason",
    [
        (lambda path, good: np.save(path, np.zeros((3, SIZE, SIZE), np.uint8)), "cannot read"),
        (lambda path, good: open(path, "wb").write(good[: len(good) // 2]), "cannot read"),
        (lambda path, good: open(path, "wb").write(b"not numpy"), "cannot read"),
    ],
    ids=["a foreign .npy", "a truncated entry", "not numpy at all"],
)
def test_a_foreign_or_broken_entry_is_a_warning_and_a_miss(
    fresh_data, tmp_path, count_reads, write, reason
):
    X, _ = fresh_data
    cache = str(tmp_path / "cache")
    expected = ImageLoader(SIZE, None)(X[0])
    ImageLoader(SIZE, cache)(X[0])  # a good entry
    path = entry_path(cache, X[0])
    good = open(path, "rb").read()
    write(path, good)
    cache_module.clear_memory_caches()
    count_reads.clear()
    with pytest.warns(CacheWarning, match=reason):
        image = ImageLoader(SIZE, cache)(X[0])
    torch.testing.assert_close(image, expected, rtol=0, atol=0)
    assert count_reads == [X[0]]  # decoded again, not taken from the broken entry
    assert open(path, "rb").read() == good  # and rewritten


def test_entries_are_checked_for_key_shape_and_dtype(fresh_data, tmp_path, count_reads):
    X, _ = fresh_data
    cache = str(tmp_path / "cache")
    store = DirectoryTensorCache(os.path.join(cache, "images"))
    key = image_key(X[0], SIZE)
    store.put(image_key(X[1], SIZE), torch.zeros(3, SIZE, SIZE, dtype=torch.uint8))
    os.makedirs(os.path.dirname(store.path_of(key)), exist_ok=True)
    os.replace(store.path_of(image_key(X[1], SIZE)), store.path_of(key))  # another key's entry
    with pytest.warns(CacheWarning, match="not written for this key"):
        assert store.get(key) is None
    store.put(key, torch.zeros(3, 8, 8, dtype=torch.uint8))  # written at another size
    cache_module.clear_memory_caches()
    with pytest.warns(CacheWarning, match=r"shape \(3, 8, 8\), expected \(3, 16, 16\)"):
        assert store.get(key, shape=(3, SIZE, SIZE), dtype=torch.uint8) is None
    store.put(key, torch.zeros(3, SIZE, SIZE, dtype=torch.float32))
    cache_module.clear_memory_caches()
    with pytest.warns(CacheWarning, match="dtype float32, expected torch.uint8"):
        assert store.get(key, shape=(3, SIZE, SIZE), dtype=torch.uint8) is None
    count_reads.clear()
    cache_module.clear_memory_caches()  # which also forgets what was warned about
    with pytest.warns(CacheWarning, match="dtype float32"):
        ImageLoader(SIZE, cache)(X[0])  # the loader asks for its shape and dtype
    assert count_reads == [X[0]]


def test_an_unwritable_entry_folder_keeps_training_on_the_decoded_images(fresh_data, tmp_path):
    X, y = fresh_data
    cache = tmp_path / "cache"
    (cache / "images").mkdir(parents=True)
    for prefix in {os.path.basename(os.path.dirname(entry_path(str(cache), x))) for x in X}:
        (cache / "images" / prefix).write_text("a file where a folder belongs")
    with pytest.warns(CacheWarning, match="cannot store an entry"):
        clf = make(cache=str(cache), max_epochs=1, on_bad_image="skip").fit(X, y)
    assert clf.skipped_images_ == []
    np.testing.assert_allclose(
        clf.predict_proba(X), make(cache=None, max_epochs=1).fit(X, y).predict_proba(X), atol=1e-6
    )
