"""In-memory cache of decoded, resized images, shared by every fit in a process.

A key holds the file's path, inode, modification and change times and size plus
the target image size, so an edited or replaced file (even one whose mtime was
restored, as ``cp -p`` or ``rsync -t`` do: the change time cannot be set) or
another resolution never hits a stale entry.
"""

import os
import threading
from collections import OrderedDict

DEFAULT_MAX_BYTES = 2 * 1024**3


def image_key(path, image_size):
    """Cache key of ``path`` decoded at ``image_size``; raises ``OSError`` like ``os.stat``."""
    stat = os.stat(path)
    return (
        os.path.abspath(path),
        stat.st_ino,
        stat.st_mtime_ns,
        stat.st_ctime_ns,
        stat.st_size,
        int(image_size),
    )


class DecodedImageCache:
    """A thread-safe least-recently-used store of uint8 image tensors.

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


_MEMORY_CACHE = DecodedImageCache()


def get_cache(cache):
    """The cache object for the estimator's ``cache`` parameter (``"memory"`` or None)."""
    return _MEMORY_CACHE if cache == "memory" else None
