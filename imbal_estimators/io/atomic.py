"""Write a file so that a crash at any moment leaves the old or the new version whole."""

import contextlib
import errno
import os
import tempfile


def atomic_write(path, write):
    """Write ``path`` through ``write(file)`` (a binary file object), atomically.

    The data goes to a temporary file in the same directory, is flushed and
    fsynced, then replaces ``path`` with ``os.replace``; the directory is
    fsynced so that the rename survives a power loss. Any failure raises
    ``OSError`` (never swallowed) and removes the temporary file.
    """
    directory = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(
            prefix=os.path.basename(path) + ".", suffix=".tmp", dir=directory
        )
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
        tmp = None
        _fsync_directory(directory)
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _fsync_directory(directory):
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:  # some file systems cannot fsync a directory
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)
