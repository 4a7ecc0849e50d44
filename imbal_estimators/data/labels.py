"""The labels ``y`` of ``fit``: checked, kept in their own type."""

import numpy as np
from sklearn.utils.multiclass import type_of_target


def check_labels(y, n_samples):
    """Validate classification labels; return them as a 1-D array.

    Labels keep their type: a mix of strings and numbers is an error (as in
    scikit-learn) rather than being turned into strings, and an object array
    of integers becomes an integer array.
    """
    if y is None:
        raise ValueError("y is None; pass one class label per image.")
    if hasattr(y, "iloc") and y.ndim == 2:
        y = y.iloc[:, 0]
    labels = np.asarray(y, dtype=object) if not hasattr(y, "__array__") else np.asarray(y)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise ValueError(
            f"y must be 1-D (one label per image); got shape {labels.shape}. "
            "Multi-label targets are not supported."
        )
    if len(labels) != n_samples:
        raise ValueError(
            f"X has {n_samples} image path(s) but y has {len(labels)} label(s); "
            "they must have the same length."
        )
    missing = [i for i, v in enumerate(labels.tolist()) if v is None or v != v]
    if missing:
        raise ValueError(
            f"y contains missing labels (None or NaN) at index {missing[:10]}; "
            "every image needs a label."
        )
    if labels.dtype == object:
        if len({isinstance(label, str) for label in labels.tolist()}) > 1:
            raise ValueError(
                "Mix of label input types (string and number) in y; use one type of label."
            )
        labels = np.asarray(labels.tolist())  # e.g. ints in an object array -> int64
    kind = type_of_target(labels, input_name="y")
    if kind not in ("binary", "multiclass"):
        raise ValueError(
            f"Unknown label type: y is {kind!r}; ImageImbalanceClassifier needs class "
            "labels (binary or multiclass), not continuous or multi-output targets."
        )
    return labels


def encode_labels(labels, known_classes=None):
    """The sorted classes of ``labels`` and each label's index among them.

    Parameters
    ----------
    labels : ndarray of shape (n_samples,)
        Checked labels (:func:`check_labels`).
    known_classes : array-like or None
        The classes of a network that keeps training (``partial_fit``); every
        label must be one of them.

    Returns
    -------
    classes : ndarray of shape (n_classes,)
    y_encoded : ndarray of int of shape (n_samples,)
    """
    if known_classes is not None:
        known = np.unique(np.asarray(known_classes))
        unseen = np.setdiff1d(np.unique(labels), known)
        if len(unseen):
            raise ValueError(
                f"y has label(s) {unseen.tolist()[:10]} not among the classes "
                f"{known.tolist()} of this network."
            )
        return known, np.searchsorted(known, labels)
    classes, y_encoded = np.unique(labels, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(
            f"y has a single class ({classes.tolist()[0]!r}); a classifier needs at least two."
        )
    return classes, y_encoded
