"""Write a file, or a directory of files, so that a crash at any moment leaves the old or
the new version whole."""

import contextlib
import ctypes
import errno
import os
import secrets
import shutil
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


# -- whole directories ------------------------------------------------------------------

_RENAME_EXCHANGE = 2  # renameat2 flag (Linux 3.15+)
_AT_FDCWD = -100


def _exchange(a, b):
    """Swap the directories ``a`` and ``b`` in one step (Linux ``renameat2``); False if
    this system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    result = renameat2(
        _AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), ctypes.c_uint(_RENAME_EXCHANGE)
    )
    if result == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):  # no such call, or not this FS
        return False
    raise OSError(err, os.strerror(err), a)


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _remove_stale_siblings(parent, prefix):
    """Temporary directories of writers that died (their pid is in the name) go."""
    for name in os.listdir(parent):
        if not name.startswith(prefix):
            continue
        pid = name[len(prefix) :].split("-")[0]
        if os.name == "posix" and pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(os.path.join(parent, name), ignore_errors=True)


def _write_new_file(path, data):
    # 0o666: the umask decides the permissions, as for any file the user writes
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


def publish_directory(path, files, replaceable=()):
    """Make ``path`` a directory holding exactly ``files`` (name -> bytes), all at once.

    A name may hold ``/`` (``"member-0/config.json"``): its folders are created inside.

    The files are written into a new sibling directory, fsynced, and the directory is
    renamed to ``path``; an existing ``path`` is swapped with it in one step
    (``renameat2(RENAME_EXCHANGE)``) and removed afterwards. A kill at any moment
    leaves ``path`` as it was or as it is now, never a mix (where the system cannot
    swap, ``path`` is missing for the moment between two renames). Permissions follow
    the umask.

    An existing ``path`` may hold only names in ``replaceable`` (the files of an
    earlier publication); otherwise it is refused (``FileExistsError``).

    Every ``OSError`` names ``path`` as the caller gave it, never the temporary
    sibling, also where the system gave no name (a full disk fails in ``write``).
    """
    given = os.fspath(path)
    try:
        _publish(os.path.abspath(given), files, replaceable)
    except OSError as exc:
        if exc.filename == given:
            raise
        raise type(exc)(exc.errno, exc.strerror or str(exc), given) from exc


def _publish(path, files, replaceable):
    parent, name = os.path.split(path)
    if os.path.lexists(path):
        if os.path.islink(path):  # publishing would replace the link, not its target
            raise FileExistsError(errno.EEXIST, "is a symbolic link")
        if not os.path.isdir(path):
            raise FileExistsError(errno.EEXIST, "exists and is not a directory")
        foreign = sorted(set(os.listdir(path)) - set(replaceable))
        if foreign:
            raise FileExistsError(errno.ENOTEMPTY, f"holds other files ({', '.join(foreign[:5])})")
    prefix = f".{name}.tmp-"
    _remove_stale_siblings(parent, prefix)
    tmp = os.path.join(parent, f"{prefix}{os.getpid()}-{secrets.token_hex(4)}")
    os.mkdir(tmp, 0o777)
    try:
        subdirectories = set()
        for file_name, data in files.items():
            target = os.path.join(tmp, file_name)
            if not _inside(target, tmp):
                raise ValueError(f"{file_name!r} is not a name inside the published directory.")
            folder = os.path.dirname(target)
            if folder != tmp and folder not in subdirectories:
                os.makedirs(folder, 0o777, exist_ok=True)
                subdirectories.add(folder)
            _write_new_file(target, data)
        for folder in sorted(subdirectories, key=len, reverse=True):
            _fsync_directory(folder)
        _fsync_directory(tmp)
        if not os.path.lexists(path):
            os.rename(tmp, path)
        elif _exchange(tmp, path):
            pass  # tmp now holds the previous version, removed below
        else:
            aside = f"{tmp}-old"
            os.rename(path, aside)
            os.rename(tmp, path)
            os.rename(aside, tmp)
        _fsync_directory(parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _inside(target, directory):
    target, directory = os.path.normpath(target), os.path.normpath(directory)
    return target.startswith(directory + os.sep)
