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


def resolve_pos_label(pos_label, classes, counts, *, caller_name=None):
    """The positive class of a binary problem: ``pos_label``, or the rarer class.

    The one rule every binary notion of the package follows (the estimator's
    ``monitor``, ``threshold`` and float ``alpha``, ``compare``, the report, the
    CLI and ``ImbalanceSearchCV``'s scorers); :mod:`imbal_estimators.decision.positive`
    documents it.

    Parameters
    ----------
    pos_label : label or None
        ``None`` picks the class with the fewest samples in ``counts``; on a tie
        the later one, ``classes[-1]`` (scikit-learn's convention of the greater
        label, ``pos_label=1`` for labels 0/1). A label must be one of
        ``classes``.
    classes : array-like of shape (n_classes,)
        The sorted class labels (``classes_``).
    counts : array-like of shape (n_classes,)
        Samples per class, ordered like ``classes`` (only read when
        ``pos_label`` is None).
    caller_name : str, optional
        Named in the error messages ("The 'pos_label' parameter of ...").

    Returns
    -------
    label or None
        An element of ``classes``; ``None`` for a multi-class problem with
        ``pos_label=None`` (multi-class metrics average over the classes).

    Raises
    ------
    ValueError
        ``pos_label`` is not a class, or is given for a problem that is not binary.

    Examples
    --------
    >>> resolve_pos_label(None, ["abnormal", "normal"], [16, 84])
    'abnormal'
    >>> resolve_pos_label(None, [0, 1], [50, 50])
    1
    """
    classes = np.asarray(classes)
    if pos_label is None:
        return _rarer_class(classes, counts)
    return _named_class(pos_label, classes, caller_name)


def _rarer_class(classes, counts):
    """The rarer class of a binary problem (the later on a tie); None for multi-class."""
    if len(classes) != 2:
        return None
    counts = np.asarray(counts)
    return plain_value(classes[0] if counts[0] < counts[1] else classes[1])


def _named_class(pos_label, classes, caller_name):
    """The class ``pos_label`` names, checked: a binary problem, one of its classes."""
    owner = "The 'pos_label' parameter" + (f" of {caller_name}" if caller_name else "")
    if len(classes) != 2:
        raise ValueError(
            f"{owner} names the positive class of a binary problem; y has {len(classes)} "
            f"classes {_plain_list(classes)}, whose metrics average over the classes. "
            f"Use pos_label=None. Got {plain_value(pos_label)!r} instead."
        )
    matches = [i for i, label in enumerate(classes.tolist()) if _same_label(label, pos_label)]
    if not matches:
        raise ValueError(
            f"{owner} must be one of the classes {_plain_list(classes)}. "
            f"Got {plain_value(pos_label)!r} instead."
        )
    return plain_value(classes[matches[0]])


def _same_label(label, pos_label):
    # 1 == True and "1" != 1: a label matches only a value of its own kind
    if isinstance(label, str) != isinstance(pos_label, (str, np.str_)):
        return False
    if isinstance(label, (bool, np.bool_)) != isinstance(pos_label, (bool, np.bool_)):
        return False
    return label == pos_label


def plain_value(value):
    """A numpy scalar as its Python value (``'a'``, not ``np.str_('a')``), for messages
    and JSON; anything else unchanged."""
    return value.item() if isinstance(value, np.generic) else value


def _plain_list(values):
    return np.asarray(values).tolist()
