"""on_bad_image="raise" | "warn" | "skip": what fit does with files it cannot decode."""

import warnings

import numpy as np
import pytest
from conftest import tiny_classifier as make

import imbal_estimators.data.images as data_module
from imbal_estimators import ImageFileError


@pytest.fixture
def with_bad_files(binary_data, tmp_path):
    """binary_data with three bad files: rows 2 (cat), 5 (cat) and 60 (dog)."""
    X, y = binary_data
    X = list(X)
    (tmp_path / "notes.jpg").write_text("not an image")
    X[2] = str(tmp_path / "missing.png")
    X[5] = str(tmp_path / "notes.jpg")
    X[60] = str(tmp_path / "gone_dog.png")
    assert (y[2], y[5], y[60]) == ("cat", "cat", "dog")
    return X, y


def test_raise_is_the_default(with_bad_files):
    X, y = with_bad_files
    assert make().on_bad_image == "raise"
    with pytest.raises(ImageFileError, match="3 of 64 image file"):
        make().fit(X, y)


def test_warn_lists_the_files_and_the_remaining_counts(with_bad_files):
    X, y = with_bad_files
    with pytest.warns(UserWarning) as record:
        clf = make(on_bad_image="warn", max_epochs=1).fit(X, y)
    assert len(record) == 1
    message = str(record[0].message)
    assert message.startswith("Skipping 3 of 64 image file(s) in X that cannot be used")
    for index, reason in [(2, "file not found"), (5, "not an image"), (60, "file not found")]:
        assert f"X[{index}] {X[index]!r}: {reason}" in message
    counts = dict(zip(clf.classes_, clf.class_counts_, strict=True))
    assert f"'cat': {counts['cat']}, 'dog': {counts['dog']}" in message
    _assert_dropped(clf, X, [2, 5, 60])


def test_skip_is_quiet_and_records_what_it_skipped(with_bad_files, capsys):
    X, y = with_bad_files
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf = make(on_bad_image="skip", max_epochs=1).fit(X, y)
    assert capsys.readouterr().out == ""  # verbose=0
    assert [(s["index"], s["path"]) for s in clf.skipped_images_] == [
        (2, X[2]),
        (5, X[5]),
        (60, X[60]),
    ]
    assert [s["reason"] for s in clf.skipped_images_] == [
        "file not found",
        "not an image file PIL can read (unrecognized format)",
        "file not found",
    ]
    _assert_dropped(clf, X, [2, 5, 60])
    assert clf.predict(X[:2]).shape == (2,)


def test_skip_with_verbose_reports_the_remaining_counts(with_bad_files, capsys):
    X, y = with_bad_files
    clf = make(on_bad_image="skip", max_epochs=1, verbose=1).fit(X, y)
    out = capsys.readouterr().out
    counts = ", ".join(
        f"{str(c)!r}: {n}" for c, n in zip(clf.classes_, clf.class_counts_, strict=True)
    )
    assert (
        f"Skipped 3 unusable image file(s) (see skipped_images_); training images per "
        f"class: {{{counts}}}." in out
    )


def _assert_dropped(clf, X, bad):
    rows = np.concatenate([clf.train_indices_, clf.valid_indices_])
    assert not np.isin(bad, rows).any()
    assert sorted(rows.tolist()) == sorted(set(range(len(X))) - set(bad))
    assert clf.class_counts_.sum() == len(clf.train_indices_)


def test_no_bad_files_means_nothing_skipped(binary_data):
    X, y = binary_data
    clf = make(on_bad_image="skip", max_epochs=1).fit(X, y)
    assert clf.skipped_images_ == []
    assert len(clf.train_indices_) + len(clf.valid_indices_) == len(X)


@pytest.mark.parametrize("mode", ["warn", "skip"])
def test_a_class_left_without_images_is_an_error(binary_data, tmp_path, mode):
    X, y = binary_data
    X = [
        str(tmp_path / f"gone_{i}.png") if label == "dog" else x
        for i, (x, label) in enumerate(zip(X, y, strict=True))
    ]
    clf = make(on_bad_image=mode)
    with pytest.raises(ValueError, match=r"class\(es\) \['dog'\] have no training image left"):
        clf.fit(X, y)
    assert not clf.initialized_


def test_the_scan_decodes_each_file_once(binary_data, monkeypatch):
    """The scan fills the cache that training reads: one decode per file in a fit."""
    from imbal_estimators.data.cache import get_cache

    X, y = binary_data
    get_cache("memory").clear()
    calls = []
    real = data_module.read_image

    def counting(path, size):
        calls.append(path)
        return real(path, size)

    monkeypatch.setattr(data_module, "read_image", counting)
    make(on_bad_image="skip", max_epochs=2, augment=False).fit(X, y)
    assert sorted(calls) == sorted(X)
