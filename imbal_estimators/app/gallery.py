"""Which images a model gets wrong: its misses of the rare class and its false alarms.

Out-of-fold predictions only (every image predicted by a model that did not
train on it), so the gallery shows what the model will do on new images.
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GalleryItem:
    """One thumbnail: the image, its true and predicted class, and P(rare class)."""

    path: str
    true: object
    predicted: object
    probability: float

    @property
    def caption(self):
        """Two short lines, so that neighbouring thumbnails' captions never meet."""
        return f"P={self.probability:.2f}\npredicted\n{_shorten(self.predicted)}"


def _shorten(label, width=12):
    text = str(label)
    return text if len(text) <= width else text[: width - 1] + "…"


def rare_class(labels, classes, pos_label=None):
    """The class the gallery is about: the positive class, else the rarest one."""
    if pos_label is not None:
        return pos_label
    counts = np.array([np.sum(np.asarray(labels) == c) for c in classes])
    return np.asarray(classes)[np.argmin(counts)]


def mistakes(paths, labels, y_pred, proba, classes, pos_label=None, limit=12):
    """The misses and false alarms of the rare class, most confident mistakes first.

    Parameters
    ----------
    paths, labels, y_pred : array-like of shape (n,)
        Images, true and (out-of-fold) predicted labels.
    proba : ndarray of shape (n, n_classes)
        Out-of-fold probabilities, columns ordered like ``classes``.
    classes : ndarray
    pos_label : label, optional
        The positive class of a binary problem; default: the rarest class.
    limit : int, default=12
        At most this many of each.

    Returns
    -------
    rare : label
    misses : list of GalleryItem
        Rare-class images predicted as another class, lowest P(rare) first.
    false_alarms : list of GalleryItem
        Other images predicted as the rare class, highest P(rare) first.
    """
    paths, labels, y_pred = (np.asarray(a, dtype=object) for a in (paths, labels, y_pred))
    classes = np.asarray(classes)
    rare = rare_class(labels, classes, pos_label)
    p = np.asarray(proba)[:, int(np.flatnonzero(classes == rare)[0])]
    is_rare, said_rare = labels == rare, y_pred == rare
    miss_rows = np.flatnonzero(is_rare & ~said_rare)
    alarm_rows = np.flatnonzero(~is_rare & said_rare)
    miss_rows = miss_rows[np.argsort(p[miss_rows], kind="stable")][:limit]
    alarm_rows = alarm_rows[np.argsort(-p[alarm_rows], kind="stable")][:limit]

    def items(rows):
        return [GalleryItem(str(paths[i]), labels[i], y_pred[i], float(p[i])) for i in rows]

    return rare, items(miss_rows), items(alarm_rows)
