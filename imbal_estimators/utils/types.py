"""Type aliases of the public API, for annotations (``py.typed``: mypy and pyright read them)."""

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeAlias

import numpy as np
import numpy.typing as npt

#: A file or directory path.
StrPath = str | os.PathLike[str]
#: Image paths: a sequence, a 1-D or ``(n, 1)`` array, a pandas Series or one-column DataFrame.
ImagePaths = Sequence[StrPath] | npt.ArrayLike
#: Class labels, one per image.
Labels = npt.ArrayLike
#: ``(n_samples, n_classes)`` probabilities, or a vector of floats.
FloatArray = npt.NDArray[np.float64]
#: Labels as ``predict`` returns them (the dtype of ``classes_``, whatever it is).
if TYPE_CHECKING:  # numpy's scalar types take their item type only in stubs
    LabelArray: TypeAlias = np.ndarray[tuple[int, ...], np.dtype[np.generic[object]]]
else:
    LabelArray = np.ndarray
#: Integer class indices.
IntArray = npt.NDArray[np.intp]

__all__ = ["FloatArray", "ImagePaths", "IntArray", "LabelArray", "Labels", "StrPath"]
