"""Walk an ImageFolder so that it cannot lie about its size, and keep outputs out of it.

torchvision's ``make_dataset`` follows directory links without remembering where it has
been: a link from a class folder to its parent is followed about 40 levels deep, and 31
images become 1,271 paths (the rare class becomes the majority, and copies of one image
land in training and test folds). :func:`scan_folder` visits every real directory once
(by device and inode), names each loop in a warning, and counts a file reached by two
paths (a link, a hard link) once. :func:`check_outside` refuses an output directory
inside the data folder (its plots would become training images on the next run), or a
data folder inside an output directory.
"""

import os

from ..utils.warn import warn

#: examples of skipped paths a warning lists
MAX_LISTED = 5


def _identity(path):
    """``(st_dev, st_ino)`` of what ``path`` names (links followed), or None if unreadable."""
    try:
        info = os.stat(path)
    except OSError:  # a broken link: the pre-flight scan reports it with its reason
        return None
    return info.st_dev, info.st_ino


def scan_folder(root, classes, extensions):
    """The image files of each class folder of ``root``, each real file and folder once.

    Parameters
    ----------
    root : str
    classes : list of str
        The class sub-directories, sorted.
    extensions : tuple of str
        Lower-case file extensions that count as images.

    Returns
    -------
    samples : list of (path, class_index)
        In ``ImageFolder``'s order: classes sorted, then directories, then files sorted.
    """
    seen_dirs = {_identity(root): root}
    seen_files = {}
    loops, repeats, samples = [], [], []
    for index, name in enumerate(classes):
        for folder, files in _walk(os.path.join(root, name), seen_dirs, loops):
            for file in sorted(files):
                if not file.lower().endswith(extensions):
                    continue
                path = os.path.join(folder, file)
                identity = _identity(path)
                if identity is not None and identity in seen_files:
                    repeats.append((path, seen_files[identity]))
                    continue
                if identity is not None:
                    seen_files[identity] = path
                samples.append((path, index))
    if loops:
        warn(
            f"{root!r}: {len(loops)} directory link(s) lead to a folder already listed, and "
            f"were not followed: {_listed(loops, 'leads back to')}. Each folder is read once."
        )
    if repeats:
        warn(
            f"{root!r}: {len(repeats)} image file(s) are reached by a second path (a link or "
            f"a hard link) and were counted once: {_listed(repeats, 'is')}."
        )
    return samples


def _listed(pairs, verb):
    shown = "; ".join(f"{path!r} {verb} {first!r}" for path, first in pairs[:MAX_LISTED])
    more = f" (and {len(pairs) - MAX_LISTED} more)" if len(pairs) > MAX_LISTED else ""
    return shown + more


def _walk(top, seen_dirs, loops):
    """``(folder, file names)`` under ``top``, links followed, each real directory once.

    A directory already visited (an ancestor: a loop; or another path to one listed) is
    recorded in ``loops`` as ``(path, first path)`` and not entered.
    """
    identity = _identity(top)
    if identity in seen_dirs:
        loops.append((top, seen_dirs[identity]))
        return []
    seen_dirs[identity] = top
    found = []
    for folder, dirs, files in os.walk(top, followlinks=True):
        dirs.sort()
        keep = []
        for name in dirs:
            path = os.path.join(folder, name)
            identity = _identity(path)
            if identity is None:
                continue
            if identity in seen_dirs:
                loops.append((path, seen_dirs[identity]))
                continue
            seen_dirs[identity] = path
            keep.append(name)
        dirs[:] = keep
        found.append((folder, files))
    return sorted(found)


def _real(path):
    return os.path.realpath(os.path.abspath(os.fspath(path)))


def is_inside(path, folder):
    """Whether ``path`` is ``folder`` or lies under it, symbolic links resolved."""
    path, folder = _real(path), _real(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def check_outside(data_dir, path, name):
    """Refuse an output ``path`` inside ``data_dir``, or ``data_dir`` inside ``path``.

    Parameters
    ----------
    data_dir : str or os.PathLike
        The image folder.
    path : str, os.PathLike or None
        An output, cache or checkpoint directory (None: nothing to check).
    name : str
        How the user gave ``path`` (``"--out"``, ``"cache"``), for the message.

    Raises
    ------
    ValueError
        Naming both directories.
    """
    if path is None:
        return
    if is_inside(path, data_dir):
        raise ValueError(
            f"{name} {os.fspath(path)!r} lies inside the data folder {os.fspath(data_dir)!r}: "
            "what is written there would be read as images (or as a new class) on the next "
            f"run. Choose {name} outside it."
        )
    if is_inside(data_dir, path):
        raise ValueError(
            f"The data folder {os.fspath(data_dir)!r} lies inside {name} "
            f"{os.fspath(path)!r}: writing there would mix outputs with the images. Keep "
            "them apart."
        )


def output_dirs(params):
    """``{name: directory}`` of the estimator parameters that write into a directory
    (and of ``compare``'s ``journal``)."""
    dirs = {}
    if params.get("journal") is not None:
        dirs["journal"] = params["journal"]
    if params.get("cache") not in (None, "memory"):
        dirs["cache"] = params["cache"]
    if params.get("checkpoint_dir") is not None:
        dirs["checkpoint_dir"] = params["checkpoint_dir"]
    return dirs


def folder_roots(paths, labels):
    """The ImageFolder roots that ``paths`` come from: ``root/<label>/image`` gives ``root``.

    Only images whose folder is named after their label count, so images gathered from
    anywhere else name no root (and nothing is refused for them).
    """
    roots = set()
    for path, label in zip(paths, labels, strict=True):
        folder = os.path.dirname(os.path.abspath(os.fspath(path)))
        if os.path.basename(folder) == str(label):
            roots.add(os.path.dirname(folder))
    return sorted(roots)


def check_outputs_outside(paths, labels, params):
    """Refuse a ``cache``, ``checkpoint_dir`` or ``journal`` of ``params`` inside the
    images' folder, or around it.

    Raises
    ------
    ValueError
        Naming the parameter and both directories.
    """
    outputs = output_dirs(params)
    if not outputs:
        return
    for root in folder_roots(paths, labels):
        for name, path in outputs.items():
            check_outside(root, path, name)
