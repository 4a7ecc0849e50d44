"""One process at a time: an exclusive lock on a file that names its holder.

The lock is ``flock(LOCK_EX | LOCK_NB)`` on the lock file, which the operating system
releases when the holder exits in any way, ``kill -9`` included: a lock file left by a dead
process is taken over by the next one. The file holds the holder's process id, host and
start time, for the message the second process gets. Where ``fcntl`` does not exist
(Windows), :class:`FileLock` locks nothing.
"""

import contextlib
import json
import os
import socket
import time

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

from .reader import check_regular

#: a holder's record is a short JSON object; more is not read
_MAX_HOLDER_BYTES = 4096


class LockedError(OSError):
    """Another process (or another fit in this process) holds the lock."""

    def __init__(self, path, holder):
        self.path = path
        self.holder = holder
        super().__init__(f"{path!r} is locked by {describe_holder(holder)}")


def describe_holder(holder):
    """``process 123 on host x (since 2024-...)`` from the lock file's content."""
    if not isinstance(holder, dict):
        return "another process"
    since = holder.get("since")
    when = time.strftime(" (since %Y-%m-%d %H:%M:%S)", time.localtime(since)) if since else ""
    host = holder.get("host")
    where = f" on {host}" if host and host != socket.gethostname() else ""
    return f"process {holder.get('pid')}{where}{when}"


class FileLock:
    """An exclusive, non-blocking lock on ``path`` (created if needed).

    Parameters
    ----------
    path : str
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        self._file = None

    @property
    def held(self):
        return self._file is not None

    def __getstate__(self):
        # a copy (a pickle of the estimator during training) never holds the lock
        return {"path": self.path, "_file": None}

    def acquire(self):
        """Take the lock or raise :class:`LockedError`; a dead holder's lock is taken over."""
        if self._file is not None or fcntl is None:
            return self
        if os.path.lexists(self.path):  # a FIFO or a device in its place: refused, never opened
            check_regular(self.path, what="lock file")
        file = open(self.path, "a+b")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = _parse(file.read(_MAX_HOLDER_BYTES))
            file.close()
            raise LockedError(self.path, holder) from None
        except BaseException:
            file.close()
            raise
        file.seek(0)
        file.truncate()
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        file.write(json.dumps(holder).encode())
        file.flush()
        self._file = file
        return self

    def release(self):
        """Give the lock back (the file stays; the next holder rewrites it)."""
        file, self._file = self._file, None
        if file is not None:
            with contextlib.suppress(OSError):
                file.seek(0)
                file.truncate()
            file.close()  # closing releases the flock


def _parse(data):
    try:
        return json.loads(data.decode())
    except (UnicodeDecodeError, ValueError):
        return None
