"""The one bounded reader: every file the package loads goes through :func:`read_bytes`.

A file named by a saved model, a checkpoint or a grid may be anything: a FIFO (``open``
blocks forever), a link to ``/dev/zero`` (``read()`` fills the memory), a sparse file of
100 GB, JSON nested 100,000 deep (``RecursionError``). Before a byte is read, the reader

* ``os.stat``\\ s the path and refuses anything but a regular file (FIFO, device, socket,
  directory), then opens it with ``O_NONBLOCK`` and checks the opened file again (so a
  file swapped for a FIFO between the two steps cannot block either);
* refuses a path that leaves ``root`` (the model directory) through a symbolic link;
* refuses a file larger than ``limit`` bytes, and reads at most ``limit`` bytes;

and :func:`read_json` caps the nesting depth before parsing. Every error is a
:class:`UnreadableFileError` (a ``ValueError``) whose message names the file and what was
wrong; a missing file stays a ``FileNotFoundError`` naming it.
"""

import io
import json
import os
import re
import stat

import numpy as np

__all__ = ["MAX_JSON_DEPTH", "UnreadableFileError", "parse_json", "read_bytes", "read_json"]

#: nesting depth of JSON the package reads (a saved config is about 8 deep)
MAX_JSON_DEPTH = 64

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class UnreadableFileError(ValueError):
    """A file the package would read is not a regular file, too large, outside its
    directory, or not the JSON it should be; the message names it."""


def _kind(mode):
    for test, name in _KINDS:
        if test(mode):
            return name
    return "of another kind"


def _inside(target, directory):
    return target == directory or target.startswith(directory.rstrip(os.sep) + os.sep)


def check_regular(path, root=None, what="file"):
    """``os.stat`` of ``path`` after checking that it is a regular file inside ``root``.

    Parameters
    ----------
    path : str or os.PathLike
    root : str or os.PathLike, optional
        A directory the file must not leave through a symbolic link.
    what : str
        How messages call the file (``"model file"``, ``"checkpoint"``).

    Raises
    ------
    FileNotFoundError, UnreadableFileError
    """
    path = os.fspath(path)
    if root is not None:
        real_root = os.path.realpath(root)
        if not _inside(os.path.realpath(path), real_root):
            raise UnreadableFileError(
                f"The {what} {path!r} is a symbolic link (or lies under one) that leads out "
                f"of {os.fspath(root)!r}, to {os.path.realpath(path)!r}; it is not read."
            )
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"The {what} {path!r} does not exist.") from None
    except OSError as exc:  # a link loop, a file where a folder should be, no permission
        raise UnreadableFileError(f"The {what} {path!r} cannot be read: {exc.strerror}.") from None
    if not stat.S_ISREG(info.st_mode):
        raise UnreadableFileError(
            f"The {what} {path!r} is not a regular file: it is {_kind(info.st_mode)}, which is "
            "not read."
        )
    return info


def read_bytes(path, limit, root=None, what="file"):
    """The content of the regular file ``path``, at most ``limit`` bytes.

    Parameters
    ----------
    path : str or os.PathLike
    limit : int
        Largest size accepted, in bytes; a larger file is refused before it is read.
    root : str or os.PathLike, optional
        Refuse a path that leaves this directory through a symbolic link.
    what : str, default="file"
        How messages call the file.

    Returns
    -------
    data : bytes

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist (the message names it).
    UnreadableFileError
        Not a regular file, too large, or outside ``root``; the message names it.
    """
    path = os.fspath(path)
    info = check_regular(path, root, what)
    _check_size(path, info.st_size, limit, what)
    # O_NONBLOCK: a FIFO put in place after the stat above opens at once instead of blocking
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    with io.FileIO(fd, "r") as file:  # unbuffered: read(n) fills one buffer of n bytes
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableFileError(
                f"The {what} {path!r} is not a regular file: it is {_kind(info.st_mode)}, "
                "which is not read."
            )
        _check_size(path, info.st_size, limit, what)
        # the file's size plus one byte (to see growth); one read() returns at most 2 GiB
        chunks, remaining = [], min(info.st_size, limit) + 1
        while remaining > 0 and (chunk := file.read(remaining)):
            chunks.append(chunk)
            remaining -= len(chunk)
    data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    _check_size(path, len(data), limit, what)  # it grew while being read
    return data


def _check_size(path, size, limit, what):
    if size > limit:
        raise UnreadableFileError(
            f"The {what} {path!r} is larger than {limit} bytes ({size} bytes), the most "
            "that is read for it; it is not read."
        )


def read_json(path, limit, root=None, what="file", max_depth=MAX_JSON_DEPTH):
    """The JSON value of the regular file ``path`` (see :func:`read_bytes` and
    :func:`parse_json`)."""
    return parse_json(read_bytes(path, limit, root, what), os.fspath(path), what, max_depth)


_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(rb"[^\[\]{}]+")


def json_depth(data):
    """The deepest nesting of ``[`` and ``{`` in the JSON text ``data`` (bytes), strings aside."""
    brackets = _NOT_BRACKET.sub(b"", _STRING.sub(b"", data))
    if not brackets:
        return 0
    steps = np.frombuffer(brackets, dtype=np.uint8)
    opening = (steps == ord("[")) | (steps == ord("{"))
    return int(np.cumsum(np.where(opening, 1, -1)).max())


def parse_json(data, path, what="file", max_depth=MAX_JSON_DEPTH):
    """The JSON value of ``data`` (the bytes of ``path``), nested at most ``max_depth`` deep.

    Raises
    ------
    UnreadableFileError
        Not UTF-8, not JSON, or nested deeper than ``max_depth``; the message names ``path``.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnreadableFileError(f"The {what} {path!r} is not UTF-8 text ({exc}).") from None
    depth = json_depth(data)
    if depth > max_depth:
        raise UnreadableFileError(
            f"The {what} {path!r} nests JSON {depth} levels deep, more than the {max_depth} "
            "this reader accepts; it is not a file this package wrote."
        )
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise UnreadableFileError(
            f"The {what} {path!r} is not valid JSON ({exc}): it is truncated or damaged."
        ) from None
