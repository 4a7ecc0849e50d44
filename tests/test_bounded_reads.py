"""Every file the package loads goes through the bounded reader: checkpoints, cache entries,
grid files and weights files never block on a FIFO nor read a device (issue 20)."""

import json
import os
import threading
import warnings

import pytest
import torch

from imbal_estimators.app.methods import load_grid
from imbal_estimators.data.cache import CacheWarning, DirectoryTensorCache
from imbal_estimators.io.checksummed import ChecksumError, read_checksummed
from imbal_estimators.io.reader import UnreadableFileError
from imbal_estimators.models.backbones import read_weights_file
from imbal_estimators.training.checkpoint import CheckpointError, read_checkpoint


def within(seconds, function, *args):
    """``function(*args)`` in a daemon thread: a hang fails the test instead of blocking."""
    outcome = {}

    def run():
        try:
            outcome["value"] = function(*args)
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{function.__name__} still runs after {seconds} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


def test_a_checkpoint_that_is_a_fifo_or_a_device_is_refused(fifo, tmp_path):
    with pytest.raises(ChecksumError, match="fifo' is not a regular file: it is a FIFO"):
        within(10, read_checksummed, fifo)
    with pytest.raises(CheckpointError, match="checkpoint .*fifo.* it is a FIFO"):
        within(10, read_checkpoint, str(fifo))
    os.symlink("/dev/zero", tmp_path / "zero.pt")
    with pytest.raises(CheckpointError, match="zero.pt.* it is a character device"):
        within(10, read_checkpoint, str(tmp_path / "zero.pt"))


def test_a_huge_checkpoint_is_refused_before_reading(tmp_path):
    path = tmp_path / "checkpoint-x.pt"
    with open(path, "wb") as file:
        file.truncate(40 << 30)  # sparse: no disk used
    with pytest.raises(CheckpointError, match=r"is larger than 34359738368 bytes"):
        within(10, read_checkpoint, str(path))


def test_a_cache_entry_that_is_a_fifo_is_a_miss_with_a_warning(tmp_path):
    cache = DirectoryTensorCache(tmp_path / "cache")
    cache.put("key", torch.zeros(3, 2, 2, dtype=torch.uint8))
    entry = cache.path_of("key")
    os.remove(entry)
    os.mkfifo(entry)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert within(10, cache.get, "key") is None
    assert any(
        issubclass(w.category, CacheWarning) and "is not a regular file" in str(w.message)
        for w in caught
    )


def test_a_grid_file_is_read_with_bounds(fifo, tmp_path):
    with pytest.raises(UnreadableFileError, match="grid file .*fifo' is not a regular file"):
        within(10, load_grid, str(fifo))
    os.symlink("/dev/zero", tmp_path / "grid.json")
    with pytest.raises(UnreadableFileError, match="grid.json' is not a regular file"):
        within(10, load_grid, str(tmp_path / "grid.json"))
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 50_000 + "]" * 50_000)
    with pytest.raises(UnreadableFileError, match="deep.json' nests JSON 50000 levels deep"):
        within(10, load_grid, str(deep))
    good = tmp_path / "good.json"
    good.write_text(json.dumps([{"name": "focal", "loss": "focal", "gamma": 2}]))
    assert [c.name for c in load_grid(str(good))] == ["focal"]


def test_a_weights_file_that_is_a_device_or_huge_is_refused(tmp_path):
    os.symlink("/dev/zero", tmp_path / "zero.pt")
    with pytest.raises(UnreadableFileError, match="weights file .*zero.pt' is not a regular"):
        within(10, read_weights_file, str(tmp_path / "zero.pt"))
    with open(tmp_path / "huge.pt", "wb") as file:
        file.truncate(9 << 30)
    with pytest.raises(ValueError, match=r"huge.pt' has 9663676416 bytes, more than"):
        within(10, read_weights_file, str(tmp_path / "huge.pt"))


def test_a_lock_file_that_is_a_fifo_is_refused_without_blocking(fifo):
    from imbal_estimators.io.lock import FileLock

    with pytest.raises(UnreadableFileError, match="lock file .*fifo' is not a regular file"):
        within(10, FileLock(fifo).acquire)
