"""Estimator parameters and fitted values as JSON, and back, without pickle.

Plain values (str, numbers, bool, None, lists, dicts with str keys) stay as
they are. Everything else is written as a small tagged dict:

* ``{"__tuple__": [...]}``, ``{"__dict__": [[key, value], ...]}`` (non-str
  keys), ``{"__float__": "nan"}``, ``{"__ndarray__": [...], "dtype": "int64"}``
* ``{"__import__": "module:qualname"}`` for a class or function that can be
  imported back by name
* ``{"__object__": "module:qualname", "params": {...}}`` for an object whose
  class can be imported and whose constructor arguments can be read back
  (``get_params()``, as scikit-learn estimators, imbalanced-learn samplers and
  skorch callbacks have, or attributes named like the ``__init__`` arguments)

Decoding imports the named classes and calls their constructors; it never
unpickles bytes. Unless told the data is trusted, every name is checked against
the allow-list of :mod:`imbal_estimators.io.references` on the text, before its
module is imported, and only classes of the kinds estimator parameters hold
(torch modules, optimizers, schedulers, datasets, scikit-learn estimators,
skorch callbacks) are built: a file that names ``os:system`` with arguments, or a
module of its own directory, is refused, not run.
"""

import inspect
import json
import math
from numbers import Integral, Real

import numpy as np
import torch

from ..utils.limits import MAX_MODULE_ELEMENTS
from .references import (
    UntrustedReferenceError,
    import_reference,
    resolve_reference,
    split_reference,
)

__all__ = [
    "UnserializableParameterError",
    "UntrustedReferenceError",
    "describe",
    "from_json",
    "import_path",
    "plain_json",
    "to_json",
]


class UnserializableParameterError(TypeError):
    """A parameter value that cannot be written as JSON; the message names it."""


def import_path(obj):
    """``"module:qualname"`` of a class or function that imports back to ``obj``, or None."""
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not module or not qualname or "<" in qualname:  # <lambda>, <locals>
        return None
    try:
        return (
            f"{module}:{qualname}" if resolve_import_path(f"{module}:{qualname}") is obj else None
        )
    except (ImportError, AttributeError, UntrustedReferenceError):
        return None


def resolve_import_path(path):
    """The object named by ``"module:qualname"`` (imports the module: trusted names only)."""
    return import_reference(*split_reference(path))


def constructor_params(obj):
    """The keyword arguments that rebuild ``obj``, or None when they cannot be read.

    Uses ``get_params(deep=False)`` when the object has it, otherwise the
    attributes named like the ``__init__`` arguments (scikit-learn's
    convention), and only when every argument has one.
    """
    if hasattr(obj, "get_params"):
        try:
            return dict(obj.get_params(deep=False))
        except TypeError:
            return dict(obj.get_params())
    try:
        parameters = inspect.signature(type(obj)).parameters.values()
    except (TypeError, ValueError):
        return None
    params = {}
    for parameter in parameters:
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if not hasattr(obj, parameter.name):
            return None
        params[parameter.name] = getattr(obj, parameter.name)
    return params


def to_json(value, name="value"):
    """Encode ``value`` as JSON-safe data; raise UnserializableParameterError naming ``name``."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, Real):
        value = float(value)
        return value if math.isfinite(value) else {"__float__": repr(value)}
    if isinstance(value, list):
        return [to_json(item, f"{name}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, tuple):
        return {"__tuple__": [to_json(item, f"{name}[{i}]") for i, item in enumerate(value)]}
    if isinstance(value, dict):
        if all(isinstance(key, str) and not key.startswith("__") for key in value):
            return {key: to_json(item, f"{name}[{key!r}]") for key, item in value.items()}
        return {
            "__dict__": [
                [to_json(key, f"{name} key"), to_json(item, f"{name}[{key!r}]")]
                for key, item in value.items()
            ]
        }
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            return {"__ndarray__": to_json(value.tolist(), name), "dtype": "object"}
        return {"__ndarray__": value.tolist(), "dtype": value.dtype.str}
    if isinstance(value, torch.device):
        return {"__torch_device__": str(value)}
    if isinstance(value, torch.dtype):
        return {"__torch_dtype__": str(value).removeprefix("torch.")}
    if inspect.isclass(value) or inspect.isroutine(value) or hasattr(value, "__qualname__"):
        path = import_path(value)
        if path is None:
            raise UnserializableParameterError(
                f"Cannot save {name}={value!r}: it cannot be imported back by name (a "
                "lambda or a class/function defined inside a function). Define it at the "
                "top level of an importable module, or use pickle/joblib (trusted files only)."
            )
        return {"__import__": path}
    return _object_to_json(value, name)


def _object_to_json(value, name):
    path = import_path(type(value))
    params = constructor_params(value) if path is not None else None
    if params is None:
        raise UnserializableParameterError(
            f"Cannot save {name}={value!r}: an object of type {type(value).__name__} is "
            "written as its importable class and constructor arguments, and these cannot "
            "be read back from it. Pass a class with its arguments as parameters (e.g. "
            "loss=FocalLoss with criterion__*), or use pickle/joblib (trusted files only)."
        )
    return {
        "__object__": path,
        "params": {key: to_json(item, f"{name}.{key}") for key, item in params.items()},
    }


def from_json(data, trusted=False):
    """Decode what :func:`to_json` wrote.

    Parameters
    ----------
    data : JSON data
    trusted : bool, default=False
        Without it, every name is checked against the allow-list of
        :mod:`imbal_estimators.io.references` before its module is imported,
        and only classes of the kinds an estimator's parameters hold (torch
        modules, optimizers, schedulers, datasets, scikit-learn estimators,
        skorch callbacks) are built; anything else raises
        :class:`UntrustedReferenceError` naming it.
    """

    def decode(item):
        return from_json(item, trusted)

    if isinstance(data, list):
        return [decode(item) for item in data]
    if not isinstance(data, dict):
        return data
    if "__tuple__" in data:
        return tuple(decode(item) for item in data["__tuple__"])
    if "__dict__" in data:
        return {decode(key): decode(item) for key, item in data["__dict__"]}
    if "__float__" in data:
        return float(data["__float__"])
    if "__ndarray__" in data:
        if data["dtype"] == "object":
            return np.array(decode(data["__ndarray__"]), dtype=object)
        return np.array(data["__ndarray__"], dtype=_plain_dtype(data["dtype"]))
    if "__torch_device__" in data:
        return torch.device(data["__torch_device__"])
    if "__torch_dtype__" in data:
        dtype = getattr(torch, data["__torch_dtype__"], None)
        if not isinstance(dtype, torch.dtype):
            raise ValueError(f"{data['__torch_dtype__']!r} is not a torch dtype.")
        return dtype
    if "__import__" in data:
        return resolve_reference(data["__import__"], "refer", trusted)
    if "__object__" in data:
        cls = resolve_reference(data["__object__"], "build", trusted)
        if not isinstance(data.get("params"), dict):
            raise ValueError(f"{data['__object__']!r} is given without a 'params' object.")
        kwargs = {key: decode(item) for key, item in data["params"].items()}
        if not trusted:
            check_module_size(cls, kwargs, data["__object__"])
        return cls(**kwargs)
    return {key: decode(item) for key, item in data.items()}


def _plain_dtype(text):
    """A numeric or short text dtype: ``V1000000000`` would allocate a GB per element."""
    dtype = np.dtype(text) if isinstance(text, str) else None
    if dtype is None or dtype.kind not in "biufcUS" or dtype.itemsize > 1024:
        raise ValueError(f"{text!r} is not the dtype of an array that a save writes.")
    return dtype


def check_module_size(cls, kwargs, text):
    """Build the ``nn.Module`` class ``cls`` on the meta device (no memory) first; refuse one
    of more than ``MAX_MODULE_ELEMENTS`` values (``nn.Linear(60000, 60000)``: 3.6e9)."""
    if not (inspect.isclass(cls) and issubclass(cls, torch.nn.Module)):
        return
    try:
        with torch.device("meta"):
            module = cls(**kwargs)
            needed = sum(t.numel() for t in [*module.parameters(), *module.buffers()])
    except Exception:  # noqa: BLE001 - the real call raises the same error
        return
    if needed > MAX_MODULE_ELEMENTS:
        raise UntrustedReferenceError(
            f"The saved file builds {text!r} with {needed} values, more than the "
            f"{MAX_MODULE_ELEMENTS} (utils.limits.MAX_MODULE_ELEMENTS) that loading builds "
            "without trusted=True."
        )


def plain_json(value):
    """Numpy scalars and arrays as Python numbers and lists (for history entries)."""
    if isinstance(value, dict):
        return {str(key): plain_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_json(item) for item in value]
    if isinstance(value, np.ndarray):
        return plain_json(value.tolist())
    if isinstance(value, torch.Tensor):
        return plain_json(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def describe(value):
    """A stable text for comparing parameters: the JSON encoding, or the type when none."""
    try:
        return json.dumps(to_json(value), sort_keys=True)
    except UnserializableParameterError:
        return f"<{type(value).__module__}.{type(value).__qualname__} object>"
