"""The internal validation split: which rows train and which monitor, and the datasets
of both (:class:`SplitData`)."""

from collections.abc import Callable
from dataclasses import dataclass
from numbers import Integral
from typing import Any

import numpy as np
from skorch.dataset import Dataset
from torch.utils.data import Subset


def stratified_holdout(y, fraction, seed):
    """Hold out about ``fraction`` of each class for validation.

    Every class with at least two members gets at least one validation and one
    training row; a class with a single member trains only. Unlike
    ``train_test_split(stratify=...)``, this never fails on small classes.

    Parameters
    ----------
    y : ndarray of int
        Encoded labels.
    fraction : float in (0, 1)
    seed : int

    Returns
    -------
    train, valid : sorted ndarrays of row indices
    """
    rng = np.random.default_rng(seed)
    valid = []
    for label in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == label))
        if len(rows) < 2:
            continue
        n_valid = min(max(int(round(fraction * len(rows))), 1), len(rows) - 1)
        valid.append(rows[:n_valid])
    valid = np.sort(np.concatenate(valid)) if valid else np.array([], dtype=np.int64)
    train = np.setdiff1d(np.arange(len(y)), valid)
    return train, valid


def split_rows(train_split, y, seed):
    """Training and validation rows for the estimator's ``train_split``.

    Parameters
    ----------
    train_split : None, False, float in (0, 1), int >= 2 or callable
        ``None`` or ``False``: no validation rows. A float: the fraction for
        :func:`stratified_holdout`; an int ``k``: the fraction ``1/k``. A
        callable: skorch's protocol, ``train_split(dataset, y)`` returning
        subsets of ``dataset`` (e.g. ``skorch.dataset.ValidSplit``).
    y : ndarray of int
    seed : int

    Returns
    -------
    train, valid : ndarrays of row indices
    """
    all_rows = np.arange(len(y))
    if train_split is None or train_split is False:
        return all_rows, np.array([], dtype=np.int64)
    if isinstance(train_split, Integral):
        return stratified_holdout(y, 1.0 / train_split, seed)
    if not callable(train_split):
        return stratified_holdout(y, float(train_split), seed)
    rows_dataset = Dataset(all_rows, y)
    train_part, valid_part = train_split(rows_dataset, y)

    def rows_of(part):
        if part is None:
            return np.array([], dtype=np.int64)
        if part is rows_dataset:
            return all_rows
        if isinstance(part, Subset) and part.dataset is rows_dataset:
            return np.asarray(part.indices, dtype=np.int64)
        raise TypeError(
            "train_split must return subsets of the dataset it is given (as "
            "skorch.dataset.ValidSplit does), or None for the validation part; got "
            f"{type(part).__name__}."
        )

    return rows_of(train_part), rows_of(valid_part)


@dataclass(frozen=True)
class SplitData:
    """The datasets one fit trains and monitors on, and how it batches them.

    Attributes
    ----------
    train : Dataset
    valid : Dataset or None
        None without a validation split.
    loader : callable
        ``loader(dataset, training)``: the fit's data loader over ``dataset``.
    """

    train: Any
    valid: Any
    loader: Callable[..., Any]

    @property
    def on_epoch(self) -> dict[str, Any]:
        """The keyword arguments of skorch's ``on_epoch_begin`` and ``on_epoch_end``."""
        return {"dataset_train": self.train, "dataset_valid": self.valid}
