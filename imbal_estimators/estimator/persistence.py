"""Save and load a fitted estimator as safetensors weights plus JSON, never pickle.

``clf.save(path)`` writes the directory ``path``:

* ``model.safetensors``: the network's state dict (raw tensors and a JSON header);
* ``config.json``: the format version, the estimator class, its parameters
  (see :mod:`imbal_estimators.io.jsonable` for classes and objects), ``classes_``
  with their dtype, the class weights and counts, the preprocessing, the best
  epoch and the history.

:func:`load` imports the estimator class and the parameter classes named in
``config.json`` (installed code), builds the network for the saved classes
without downloading any weights, and loads the tensors. It never unpickles, so
a file from an untrusted source cannot run code through it; ``pickle`` and
``joblib`` keep working, for trusted files only.
"""

import json
import os

import numpy as np
import torch
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from sklearn.utils.validation import check_is_fitted
from skorch.history import History

from ..io.atomic import atomic_write
from ..io.jsonable import from_json, import_path, plain_json, resolve_import_path, to_json
from ..training.plan import ARRAY, saved_fields
from ..utils.warn import warn
from .classifier import ImageImbalanceClassifier

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"

# Fitted attributes written to config.json: the saved fields of the fit plan, name -> kind
# ("array" or "value"); classes_ is written apart, with its dtype.
FITTED = saved_fields()


def save(estimator, path):
    """Write a fitted estimator to the directory ``path`` (see the module docstring).

    Parameters
    ----------
    estimator : ImageImbalanceClassifier
        Fitted.
    path : str or os.PathLike

    Returns
    -------
    path : str

    Raises
    ------
    UnserializableParameterError
        A parameter cannot be written as JSON; the message names it.
    """
    check_is_fitted(estimator)
    path = os.fspath(path)
    params = {
        name: to_json(value, f"parameter {name!r}")
        for name, value in estimator.get_params(deep=False).items()
    }
    classes = np.asarray(estimator.classes_)
    config = {
        "format_version": FORMAT_VERSION,
        "estimator": import_path(type(estimator)),
        "params": params,
        "classes": {"values": to_json(classes.tolist(), "classes_"), "dtype": classes.dtype.str},
        "fitted": {
            name: to_json(estimator.__dict__.get(name), name)
            for name in FITTED
            if name in estimator.__dict__
        },
        "preprocessing": {
            "image_size": int(estimator.image_size),
            "mean": estimator.module_.mean.flatten().tolist(),
            "std": estimator.module_.std.flatten().tolist(),
        },
        "history": plain_json(list(estimator.history)),
    }
    text = json.dumps(config, indent=1)  # fails here, before anything is written
    tensors = {
        key: value.detach().to("cpu").contiguous().clone()
        for key, value in estimator.module_.state_dict().items()
    }
    os.makedirs(path, exist_ok=True)
    weights = os.path.join(path, WEIGHTS_FILE)
    atomic_write(weights, lambda file: file.write(safetensors_bytes(tensors, {"format": "pt"})))
    atomic_write(os.path.join(path, CONFIG_FILE), lambda file: file.write(text.encode()))
    return path


def load(path, device=None, trusted=False):
    """Rebuild an estimator saved with ``clf.save(path)``; no pickle is read.

    Parameters
    ----------
    path : str or os.PathLike
        The directory ``save`` wrote.
    device : str, optional
        Overrides the saved ``device`` parameter. By default the saved one is
        kept, except that ``"cuda"`` falls back to ``"cpu"`` (with a warning)
        on a machine without CUDA.
    trusted : bool, default=False
        ``config.json`` names classes by their import path. By default only
        the estimator class and classes of the kinds parameters hold (torch
        modules, optimizers, schedulers, datasets, scikit-learn estimators and
        samplers, skorch callbacks) are imported and built. A file you saved
        yourself with a function as a parameter (e.g. ``FunctionSampler(func=...)``
        or a scorer) needs ``trusted=True``.

    Returns
    -------
    estimator : ImageImbalanceClassifier
        Fitted: ``predict`` and ``predict_proba`` give what the saved one gave.
        The optimizer state is not saved; further ``partial_fit`` starts a
        fresh optimizer.
    """
    path = os.fspath(path)
    config_path = os.path.join(path, CONFIG_FILE)
    try:
        with open(config_path, encoding="utf-8") as file:
            config = json.load(file)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path!r} has no {CONFIG_FILE}; it is not a directory written by clf.save(path)."
        ) from None
    if config.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{config_path!r} has format_version {config.get('format_version')!r}; this "
            f"version of imbal_estimators reads format_version {FORMAT_VERSION}."
        )
    cls = resolve_import_path(config["estimator"])
    if not (isinstance(cls, type) and issubclass(cls, ImageImbalanceClassifier)):
        raise ValueError(
            f"{config_path!r} names estimator {config['estimator']!r}, which is not an "
            "ImageImbalanceClassifier."
        )
    params = {name: from_json(value, trusted) for name, value in config["params"].items()}
    if device is not None:
        params["device"] = device
    elif _unavailable(params.get("device")):
        warn(
            f"{path!r} was saved with device={params['device']!r}, which this machine lacks; "
            "loading it on the CPU (device='cpu')."
        )
        params["device"] = "cpu"
    estimator = cls(**params)

    classes = config["classes"]
    estimator.classes_ = np.array(from_json(classes["values"]), dtype=np.dtype(classes["dtype"]))
    for name, value in config["fitted"].items():
        if name not in FITTED:
            raise ValueError(f"{config_path!r} sets an unknown fitted attribute {name!r}.")
        value = from_json(value)
        if FITTED[name] == ARRAY and value is not None:
            value = np.asarray(value)
        setattr(estimator, name, value)
    estimator.n_classes_ = len(estimator.classes_)
    estimator.__dict__.setdefault("_checkpoint_plan_", None)
    if "pos_index_" not in config["fitted"]:  # saved by 0.1, which thresholded classes_[1]
        estimator.pos_index_ = 1 if estimator.n_classes_ == 2 else None
        binary = estimator.pos_index_ is not None
        estimator.pos_label_ = estimator.classes_[1].item() if binary else None

    # Build the network for the saved classes without fetching pretrained weights:
    # every tensor comes from model.safetensors.
    saved_weights = estimator.weights
    estimator.weights = None
    try:
        estimator.initialize()
    finally:
        estimator.weights = saved_weights
    state = load_file(os.path.join(path, WEIGHTS_FILE), device="cpu")
    estimator.module_.load_state_dict(state)
    estimator.module_.to(estimator.device)
    estimator.history_ = History(config["history"])
    return estimator


def _unavailable(device):
    if device is None or device == "auto":
        return False
    try:
        return torch.device(device).type == "cuda" and not torch.cuda.is_available()
    except (RuntimeError, TypeError):
        return False
