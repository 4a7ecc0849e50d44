"""The embedded demo data: an imbalanced ImageFolder of handwritten digits.

The images are scikit-learn's 8x8 digits (they ship inside scikit-learn, so no
download), upscaled and written as PNG files.
"""

import os

import numpy as np
from PIL import Image


def make_demo_image_folder(
    root, *, minority_digit=8, n_majority=600, n_minority=120, image_size=32, random_state=0
):
    """Write an imbalanced two-class ImageFolder and return its root.

    Class folder ``0`` holds ``n_majority`` digits other than ``minority_digit``,
    class folder ``1`` holds ``n_minority`` images of that digit (5:1 by
    default), as greyscale ``image_size`` px PNGs. The minority class is the
    positive class 1 of binary scorers such as ``"f1"``.

    Parameters
    ----------
    root : str or os.PathLike
        Directory to create (an existing demo folder there is reused).
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
    digits = load_digits()
    rng = np.random.default_rng(random_state)
    minority = np.flatnonzero(digits.target == minority_digit)
    majority = np.flatnonzero(digits.target != minority_digit)
    if n_minority > len(minority) or n_majority > len(majority):
        raise ValueError(
            f"The digits data have {len(minority)} images of {minority_digit} and "
            f"{len(majority)} others; asked for {n_minority} and {n_majority}."
        )
    classes = {
        "0": rng.choice(majority, n_majority, replace=False),
        "1": rng.choice(minority, n_minority, replace=False),
    }
    for name, rows in classes.items():
        folder = os.path.join(root, name)
        os.makedirs(folder, exist_ok=True)
        for row in rows:
            path = os.path.join(folder, f"{row:04d}.png")
            if os.path.exists(path):
                continue
            pixels = (digits.images[row] * (255.0 / 16.0)).astype(np.uint8)
            image = Image.fromarray(pixels, "L").resize((image_size, image_size), Image.BILINEAR)
            image.save(path)
    return root
