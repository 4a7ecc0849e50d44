"""The embedded demo data: an imbalanced ImageFolder of handwritten digits.

The images are scikit-learn's 8x8 digits (they ship inside scikit-learn, so no
download), upscaled and written as PNG files.
"""

import json
import os
import shutil

import numpy as np
from PIL import Image

MARKER = ".imbal_estimators_demo.json"


def make_demo_image_folder(
    root: str | os.PathLike[str],
    *,
    minority_digit: int = 8,
    n_majority: int = 600,
    n_minority: int = 120,
    image_size: int = 32,
    random_state: int = 0,
) -> str:
    """Write an imbalanced two-class ImageFolder and return its root.

    Class folder ``0`` holds ``n_majority`` digits other than ``minority_digit``,
    class folder ``1`` holds ``n_minority`` images of that digit (5:1 by
    default), as greyscale ``image_size`` px PNGs. The minority class is the
    positive class 1 of binary scorers such as ``"f1"``.

    Parameters
    ----------
    root : str or os.PathLike
        Directory to write. A demo folder made there before with the same
        arguments is reused as it is; one made with other arguments is
        rewritten. A non-empty directory that is not a demo folder is refused.
    minority_digit : int, default=8
    n_majority, n_minority : int, default=600, 120
    image_size : int, default=32
    random_state : int, default=0

    Returns
    -------
    root : str
    """
    from sklearn.datasets import load_digits

    root = os.fspath(root)
    settings = dict(
        minority_digit=minority_digit,
        n_majority=n_majority,
        n_minority=n_minority,
        image_size=image_size,
        random_state=random_state,
    )
    if _reuse_or_clear(root, settings):
        return root
    digits = load_digits()
    classes = _draw_rows(digits.target, minority_digit, n_majority, n_minority, random_state)
    for name, rows in classes.items():
        _write_digits(digits.images[rows], rows, os.path.join(root, name), image_size)
    with open(os.path.join(root, MARKER), "w") as file:  # last: a half-written folder is redone
        json.dump(settings, file)
    return root


def _reuse_or_clear(root, settings):
    """True for a demo folder of the same settings; clear one of other settings; refuse
    a non-empty folder that is not a demo folder."""
    marker = os.path.join(root, MARKER)
    if os.path.isfile(marker):
        with open(marker) as file:
            if json.load(file) == settings:
                return True
        for name in ("0", "1"):
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
        os.remove(marker)
    elif os.path.isdir(root) and os.listdir(root):
        raise ValueError(
            f"{root!r} is not empty and is not a demo folder made by make_demo_image_folder; "
            "choose a new directory."
        )
    return False


def _draw_rows(target, minority_digit, n_majority, n_minority, random_state):
    """The rows of the digits data for class folders ``"0"`` and ``"1"``."""
    rng = np.random.default_rng(random_state)
    minority = np.flatnonzero(target == minority_digit)
    majority = np.flatnonzero(target != minority_digit)
    if n_minority > len(minority) or n_majority > len(majority):
        raise ValueError(
            f"The digits data have {len(minority)} images of {minority_digit} and "
            f"{len(majority)} others; asked for {n_minority} and {n_majority}."
        )
    return {
        "0": rng.choice(majority, n_majority, replace=False),
        "1": rng.choice(minority, n_minority, replace=False),
    }


def _write_digits(images, rows, folder, image_size):
    """One greyscale PNG per 8x8 digit image (values 0 to 16), named by its row."""
    os.makedirs(folder, exist_ok=True)
    for pixels, row in zip(images, rows, strict=True):
        pixels = (pixels * (255.0 / 16.0)).astype(np.uint8)
        image = Image.fromarray(pixels, "L").resize(
            (image_size, image_size), Image.Resampling.BILINEAR
        )
        image.save(os.path.join(folder, f"{row:04d}.png"))
