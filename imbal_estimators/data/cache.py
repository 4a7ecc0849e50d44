"""Caches of decoded images and frozen-backbone features, shared by every fit.

Two kinds of entries, each under keys that cannot go stale:

* decoded, resized images: ``image_key(path, image_size)`` holds the file's
  path, inode, modification and change times and size, so an edited or
  replaced file (even one whose mtime was restored, as ``cp -p`` or
  ``rsync -t`` do: the change time cannot be set) or another resolution, crop or
  interpolation (:class:`~imbal_estimators.data.geometry.Geometry`) never hits a
  stale entry;
* backbone features: the image key plus a fingerprint of the backbone's
  weights (:func:`imbal_estimators.models.features.weights_fingerprint`), so other
  weights never hit either.

The estimator's ``cache`` parameter picks the store: ``"memory"`` (an LRU in
this process), a directory (files shared by processes, with the memory LRU in
front) or ``None``.

A directory cache is best-effort: an entry that cannot be written (a full disk,
an entry path that is a directory, no permission) or read back (a foreign or
truncated file, another key, shape or dtype) is a :class:`CacheWarning` (once per
directory and kind of problem) and a miss, never an error of the image.
"""

import hashlib
import io
import logging
import os
import tempfile
import threading
import warnings
from collections import OrderedDict

import numpy as np
import torch

from ..io.reader import read_bytes

DEFAULT_MAX_BYTES = 2 * 1024**3
DEFAULT_FEATURE_MAX_BYTES = 1024**3
#: one file of a disk cache: a decoded image (3 x 4096 x 4096 bytes at most) or features
MAX_ENTRY_BYTES = 256 * 1024**2

logger = logging.getLogger(__name__)


def image_key(path, image_size):
    """Cache key of ``path`` decoded at ``image_size``; raises ``OSError`` like ``os.stat``.

    ``image_size`` is an int (a square resize) or a geometry's ``key`` string
    (:attr:`~imbal_estimators.data.geometry.Geometry.key`)."""
    stat = os.stat(path)
    return (
        os.path.abspath(path),
        stat.st_ino,
        stat.st_mtime_ns,
        stat.st_ctime_ns,
        stat.st_size,
        image_size if isinstance(image_size, str) else int(image_size),
    )


class MemoryTensorCache:
    """A thread-safe least-recently-used store of tensors.

    Parameters
    ----------
    max_bytes : int, default=2 GiB
        Entries are evicted, oldest use first, past this many bytes.
    """

    def __init__(self, max_bytes=DEFAULT_MAX_BYTES):
        self.max_bytes = max_bytes
        self._entries = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key, tensor):
        size = tensor.numel() * tensor.element_size()
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old.numel() * old.element_size()
            self._entries[key] = tensor
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= evicted.numel() * evicted.element_size()

    def clear(self):
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def __len__(self):
        return len(self._entries)

    @property
    def nbytes(self):
        return self._bytes


class CacheWarning(UserWarning):
    """The directory cache could not store or read an entry; the data was decoded instead."""


_warned: set[object] = set()
_warned_lock = threading.Lock()


def _warn_once(directory, what, exc):
    """One warning per cache directory and kind of problem, in this process."""
    kind = (directory, what, getattr(exc, "errno", None) or type(exc).__name__)
    with _warned_lock:
        if kind in _warned:
            return
        _warned.add(kind)
    message = (
        f"The cache directory {directory!r} cannot {what} ({type(exc).__name__}: {exc}); "
        "the images are decoded without it (the cache is best-effort)."
    )
    logger.info(message)  # for an application that routes the package's log
    warnings.warn(message, CacheWarning, stacklevel=3)


def _key_digest(key):
    return hashlib.sha256(repr(key).encode()).hexdigest()


class DirectoryTensorCache:
    """Tensors stored as ``.npy`` files under ``directory``, shared by processes.

    Reads go through ``memory`` first. Each file holds two arrays: the SHA-256 of
    the entry's key, then the tensor; a file whose key, shape or dtype is not the
    one asked for is a miss. Files are written to a temporary name and renamed, so
    a reader never sees half a file. Every failure to read or write an entry is a
    :class:`CacheWarning` and a miss (or a write skipped): the cache is best-effort.

    Parameters
    ----------
    directory : str or os.PathLike
    memory : MemoryTensorCache or None
    """

    def __init__(self, directory, memory=None):
        self.directory = os.fspath(directory)
        self.memory = memory

    def path_of(self, key):
        digest = _key_digest(key)
        return os.path.join(self.directory, digest[:2], digest + ".npy")

    def get(self, key, shape=None, dtype=None):
        """The tensor stored under ``key``, or None.

        Parameters
        ----------
        key : hashable
        shape : tuple of int, optional
            Expected shape; a file with another is a miss.
        dtype : torch.dtype, optional
            Expected dtype; a file with another is a miss.
        """
        if self.memory is not None and (tensor := self.memory.get(key)) is not None:
            return tensor
        path = self.path_of(key)
        try:
            with io.BytesIO(read_bytes(path, MAX_ENTRY_BYTES, what="cache entry")) as file:
                stored_key = np.load(file, allow_pickle=False)
                array = np.load(file, allow_pickle=False)
        except FileNotFoundError:
            return None
        except Exception as exc:  # noqa: BLE001 - a directory, a foreign or cut file
            _warn_once(self.directory, "read an entry", exc)
            return None
        problem = _entry_problem(stored_key, array, key, shape, dtype)
        if problem:
            _warn_once(self.directory, "use an entry", ValueError(f"{path}: {problem}"))
            return None
        tensor = torch.from_numpy(array)
        if self.memory is not None:
            self.memory.put(key, tensor)
        return tensor

    def put(self, key, tensor):
        """Store ``tensor`` under ``key``; a failed write is a warning, not an error."""
        if self.memory is not None:
            self.memory.put(key, tensor)
        path = self.path_of(key)
        temporary = None
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
            with os.fdopen(handle, "wb") as file:
                digest = np.frombuffer(bytes.fromhex(_key_digest(key)), dtype=np.uint8)
                np.save(file, digest, allow_pickle=False)
                np.save(file, tensor.numpy(), allow_pickle=False)
            os.replace(temporary, path)
            temporary = None
        except Exception as exc:  # noqa: BLE001 - a full disk, a directory in the way, ...
            _warn_once(self.directory, "store an entry", exc)
        finally:
            if temporary is not None and os.path.lexists(temporary):
                try:
                    os.remove(temporary)
                except OSError as exc:
                    _warn_once(self.directory, "remove a temporary file", exc)


def _entry_problem(stored_key, array, key, shape, dtype):
    if stored_key.dtype != np.uint8 or stored_key.tobytes().hex() != _key_digest(key):
        return "it was not written for this key"
    if shape is not None and tuple(array.shape) != tuple(shape):
        return f"shape {array.shape}, expected {tuple(shape)}"
    if dtype is not None and array.dtype != np.dtype(str(dtype).removeprefix("torch.")):
        return f"dtype {array.dtype}, expected {dtype}"
    return None


_MEMORY_IMAGES = MemoryTensorCache(DEFAULT_MAX_BYTES)
_MEMORY_FEATURES = MemoryTensorCache(DEFAULT_FEATURE_MAX_BYTES)


def check_cache(cache):
    """Raise a ``ValueError`` naming ``cache`` unless it is usable."""
    if cache is None or cache == "memory":
        return
    directory = os.fspath(cache)
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise ValueError(
            f"cache={directory!r} is a file; give None, 'memory' or a directory to share "
            "decoded images and features between processes."
        )
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"Cannot create the cache directory {directory!r}: {exc}") from exc
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ValueError(f"The cache directory {directory!r} is not writable.")


def get_cache(cache):
    """The store of decoded images for the estimator's ``cache`` parameter."""
    return _store(cache, "images", _MEMORY_IMAGES)


def get_feature_cache(cache):
    """The store of backbone features for the estimator's ``cache`` parameter."""
    return _store(cache, "features", _MEMORY_FEATURES)


def _store(cache, kind, memory):
    if cache is None:
        return None
    if cache == "memory":
        return memory
    return DirectoryTensorCache(os.path.join(os.fspath(cache), kind), memory=memory)


def clear_memory_caches():
    """Empty this process's in-memory image and feature caches (and forget which cache
    problems were warned about)."""
    _MEMORY_IMAGES.clear()
    _MEMORY_FEATURES.clear()
    with _warned_lock:
        _warned.clear()
