"""The pre-flight scan of ``fit``: decode every image once, then apply ``on_bad_image``.

Every image is decoded before any network is built (through the estimator's
:class:`~imbal_estimators.data.images.ImageLoader`, so the decode also fills the
cache and training does not pay for it twice). Bad files are then

* ``"raise"``: listed in one :class:`~imbal_estimators.data.images.ImageFileError`;
* ``"warn"``: dropped from training, with one warning listing them and the
  class counts that remain;
* ``"skip"``: dropped quietly (a one-line note when ``verbose``).

Either way a class left without training images is an error that names it.

A set of files that scanned clean is remembered in the process under a digest
of every file's identity and times, so fitting the same unchanged files again
(the candidates and folds of a search) skips the decode.
"""

import hashlib
import logging
import threading
from collections import OrderedDict

import numpy as np

from ..utils.log import note
from ..utils.warn import warn
from .cache import image_key
from .images import ImageFileError, find_bad_images, format_bad_files
from .labels import plain_value

logger = logging.getLogger(__name__)

ON_BAD_IMAGE_OPTIONS = ("raise", "warn", "skip")

# Digests of image sets whose every file decoded, most recently used last: a search
# fits the same files dozens of times, and an unchanged file (same path, inode,
# size, modification and change times) decodes as it did.
_CLEAN_SCANS: OrderedDict[object, object] = OrderedDict()
_CLEAN_SCANS_LOCK = threading.Lock()
MAX_CLEAN_SCANS = 256


def preflight_scan(
    paths, y_encoded, classes, train_rows, valid_rows, loader, on_bad_image, verbose=0
):
    """Decode all images; return the rows that remain and the skipped files.

    Parameters
    ----------
    paths : ndarray of str
    y_encoded : ndarray of int
    classes : ndarray
        The labels, for messages.
    train_rows, valid_rows : ndarray of int
        The internal split.
    loader : ImageLoader
    on_bad_image : {"raise", "warn", "skip"}
    verbose : int, default=0

    Returns
    -------
    train_rows, valid_rows : ndarray of int
        Without the bad files.
    skipped : list of dict
        ``{"index", "path", "reason"}`` per bad file, in index order.

    Raises
    ------
    ImageFileError
        With ``on_bad_image="raise"``, listing every bad file.
    ValueError
        When a class has no usable training image left.
    """
    digest = _scan_digest(paths, loader.image_size)
    if _known_clean(digest):
        return train_rows, valid_rows, []
    problems = find_bad_images(paths, loader)
    if not problems:
        _remember_clean(digest)
        return train_rows, valid_rows, []
    if on_bad_image == "raise":
        raise ImageFileError(
            format_bad_files(problems, paths)
            + '\n(on_bad_image="skip" or "warn" trains on the other images instead.)'
        )
    bad = np.array([index for index, _ in problems], dtype=np.int64)
    train_rows = np.setdiff1d(train_rows, bad)
    valid_rows = np.setdiff1d(valid_rows, bad)
    counts = np.bincount(y_encoded[train_rows], minlength=len(classes))
    _check_every_class_left(problems, paths, classes, counts, on_bad_image)
    _report_skipped(problems, paths, classes, counts, on_bad_image, verbose)
    skipped = [
        {"index": int(index), "path": str(paths[index]), "reason": reason}
        for index, reason in problems
    ]
    return train_rows, valid_rows, skipped


def _known_clean(digest):
    """Whether this process scanned the same files clean before."""
    with _CLEAN_SCANS_LOCK:
        if digest is not None and digest in _CLEAN_SCANS:
            _CLEAN_SCANS.move_to_end(digest)
            return True
    return False


def _remember_clean(digest):
    if digest is None:
        return
    with _CLEAN_SCANS_LOCK:
        _CLEAN_SCANS[digest] = True
        while len(_CLEAN_SCANS) > MAX_CLEAN_SCANS:
            _CLEAN_SCANS.popitem(last=False)


def _check_every_class_left(problems, paths, classes, counts, on_bad_image):
    """Raise when dropping the bad files leaves a class without a training image."""
    empty = [classes[c] for c in np.flatnonzero(counts == 0)]
    if empty:
        raise ValueError(
            format_bad_files(problems, paths)
            + f"\nWithout them class(es) {[plain_value(c) for c in empty]} have no training "
            f'image left (on_bad_image="{on_bad_image}"); a classifier needs images of '
            "every class in y."
        )


def _report_skipped(problems, paths, classes, counts, on_bad_image, verbose):
    """The warning (``"warn"``) or the log line that names what was skipped."""
    remaining = ", ".join(
        f"{plain_value(label)!r}: {count}" for label, count in zip(classes, counts, strict=True)
    )
    header = (
        f"Skipping {len(problems)} of {len(paths)} image file(s) in X that cannot be used "
        f"(on_bad_image={on_bad_image!r}):"
    )
    if on_bad_image == "warn":
        warn(
            format_bad_files(problems, paths, header=header)
            + f"\nTraining images per class that remain: {{{remaining}}}."
        )
    message = (
        f"Skipped {len(problems)} unusable image file(s) (see skipped_images_); "
        f"training images per class: {{{remaining}}}."
    )
    # "warn" has shown the files already, as a warning
    note(logger, message, show=bool(verbose) and on_bad_image != "warn")


def _scan_digest(paths, image_size):
    """A digest of every file's cache key (identity and times) at ``image_size``, or None
    when a file cannot even be stat'ed (the scan then reports it)."""
    digest = hashlib.sha256(str(int(image_size)).encode())
    try:
        for path in paths:
            digest.update(repr(image_key(path, image_size)).encode())
    except (OSError, ValueError):
        return None
    return digest.hexdigest()


def clear_scan_memo():
    """Forget which image sets scanned clean (the next ``fit`` decodes every file again)."""
    with _CLEAN_SCANS_LOCK:
        _CLEAN_SCANS.clear()
