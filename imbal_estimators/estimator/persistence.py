"""Save and load a fitted estimator as safetensors weights plus JSON, never pickle.

``clf.save(path)`` writes the directory ``path``:

* ``model.safetensors``: the network's state dict (raw tensors and a JSON header);
* ``config.json``: the format version, the estimator class, its parameters
  (see :mod:`imbal_estimators.io.jsonable` for classes and objects), ``classes_``
  with their dtype, the class weights and counts, the preprocessing, the best
  epoch, the history, and the size and SHA-256 of ``model.safetensors``.

A :class:`~imbal_estimators.estimator.ensemble.SeedEnsembleClassifier` writes
``ensemble.json`` (the format version and the member folders) and one folder per
member, ``member-0/``, ``member-1/``, ..., each holding those two files.

The directory is published whole (:func:`imbal_estimators.io.atomic.publish_directory`):
both files are written into a sibling directory that replaces ``path`` in one
rename, so a kill during ``save`` leaves the previous model or the new one.

:func:`load` checks every name in ``config.json`` against the allow-list of
:mod:`imbal_estimators.io.references` before importing anything, refuses the
parameters that would read pickles later (``torch_load_kwargs`` other than
``weights_only=True``, skorch's ``LoadInitState``, a ``Checkpoint`` whose files
lie in the model directory), checks the weights against the recorded digest,
builds the network for the saved classes without downloading any weights, and
loads the tensors. Callbacks are initialized when training begins, not at load
(skorch's ``Checkpoint.initialize`` creates its directory). It never unpickles.
``trusted=True`` skips the allow-list; ``pickle`` and ``joblib`` keep working, for
trusted files only.
"""

import errno
import hashlib
import json
import os
import re
import stat

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_bytes
from sklearn.utils.validation import check_is_fitted
from skorch.callbacks import Checkpoint, TrainEndCheckpoint

from ..io.atomic import publish_directory
from ..io.jsonable import check_module_size, from_json, import_path, plain_json, to_json
from ..io.reader import UnreadableFileError, read_bytes, read_json
from ..io.references import (
    UntrustedReferenceError,
    resolve_network_reference,
    resolve_reference,
)
from ..models.backbones import state_mismatches
from ..models.normalization import normalization_origin, normalize_name
from ..training.plan import ARRAY, saved_fields
from ..utils.text import first_line
from ..utils.types import StrPath
from ..utils.warn import warn
from .classifier import ImageImbalanceClassifier
from .ensemble import SeedEnsembleClassifier
from .finetune import freezes_norm
from .fitted import assign_fitted, normalize_fitted
from .geometry import estimator_geometry
from .loaded import (
    ModelFileError,
    check_classes,
    check_fitted,
    check_geometry,
    check_layout,
    check_network_size,
    check_parameters,
    check_preprocessing,
    check_weights,
)
from .loss_params import saved_params

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
ENSEMBLE_FILE = "ensemble.json"
ENSEMBLE_REFERENCE = "imbal_estimators.SeedEnsembleClassifier"
MEMBER_PREFIX = "member-"
MEMBER_NAME = re.compile(r"member-[0-9]{1,4}")
#: ensemble.json lists folder names only: 10,000 members take 140 kB
MAX_JSON_BYTES = 1 << 20
#: config.json holds the history (a few hundred bytes per epoch and batch)
MAX_CONFIG_BYTES = 64 << 20
#: model.safetensors: the recorded size, and never more than this
MAX_WEIGHTS_BYTES = 8 << 30

# Fitted attributes written to config.json: the saved fields of the fit plan, name -> kind
# ("array" or "value"); classes_ is written apart, with its dtype.
FITTED = saved_fields()


def save(estimator: ImageImbalanceClassifier | SeedEnsembleClassifier, path: StrPath) -> str:
    """Write a fitted estimator to the directory ``path`` (see the module docstring).

    Parameters
    ----------
    estimator : ImageImbalanceClassifier or SeedEnsembleClassifier
        Fitted. An ensemble writes ``ensemble.json`` and one folder per member
        (``member-0/``, ...), each a single model's ``config.json`` and
        ``model.safetensors``.
    path : str or os.PathLike

    Returns
    -------
    path : str

    Raises
    ------
    UnserializableParameterError
        A parameter cannot be written as JSON; the message names it.
    FileExistsError
        ``path`` is a file, a directory holding files other than a saved model's
        (a ``config.json`` or ``ensemble.json`` that no save wrote, a folder of that
        name), or a member folder of a saved ensemble (replacing it would change
        the ensemble's predictions without a word).
    """
    check_is_fitted(estimator)
    path = os.fspath(path)
    _refuse_member_folder(path)
    if isinstance(estimator, SeedEnsembleClassifier):
        members = estimator.members_
        names = [f"{MEMBER_PREFIX}{i}" for i in range(len(members))]
        files = {
            ENSEMBLE_FILE: json.dumps(
                {
                    "format_version": FORMAT_VERSION,
                    "estimator": ENSEMBLE_REFERENCE,
                    "members": names,
                },
                indent=1,
            ).encode()
        }
        for name, member in zip(names, members, strict=True):
            files.update({f"{name}/{f}": data for f, data in _model_files(member).items()})
    else:
        files = _model_files(estimator)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    publish_directory(path, files, replaceable=_saved_names(path))
    return path


def _model_files(estimator):
    """File name -> bytes of one fitted ``ImageImbalanceClassifier``."""
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
        "fitted": {name: to_json(getattr(estimator, name), name) for name in FITTED},
        "preprocessing": preprocessing_record(estimator),
        "network": network_record(estimator),
        "history": plain_json(list(estimator.history)),
    }
    tensors = {
        key: value.detach().to("cpu").contiguous().clone()
        for key, value in estimator.module_.state_dict().items()
    }
    weights = safetensors_bytes(tensors, {"format": "pt"})
    config["files"] = {
        WEIGHTS_FILE: {"bytes": len(weights), "sha256": hashlib.sha256(weights).hexdigest()}
    }
    text = json.dumps(config, indent=1)  # fails here, before anything is written
    return {WEIGHTS_FILE: weights, CONFIG_FILE: text.encode()}


def network_record(estimator):
    """The network as the user gave it: ``backbone`` and ``weights``, or the ``module``
    class by its import path, which :func:`load` imports without ``trusted=True``."""
    module = estimator.module
    if module is None:
        weights = estimator.weights
        return {
            "backbone": estimator.backbone,
            "weights": None if weights is None else str(weights),
        }
    cls = module if isinstance(module, type) else type(module)
    return {"module": import_path(cls)}


def _is_saved_network(value, config):
    """Whether the ``module`` parameter's JSON ``value`` is the class ``network`` names."""
    network = (config.get("network") or {}).get("module")
    if not isinstance(network, str) or not isinstance(value, dict):
        return False
    return value.get("__import__", value.get("__object__")) == network


def _saved_network(value, config, trusted):
    """The ``module`` parameter: the class named at save, imported by the rule of
    :func:`~imbal_estimators.io.references.resolve_network_reference`."""
    if trusted:
        return from_json(value, trusted)
    cls = resolve_network_reference(config["network"]["module"])
    if "__import__" in value:
        return cls
    kwargs = {key: from_json(item) for key, item in value["params"].items()}
    check_module_size(cls, kwargs, config["network"]["module"])  # counted before it is built
    return cls(**kwargs)


def preprocessing_record(estimator):
    """What the network's input gets, as written in ``config.json``: the geometry
    (``input_geometry_``: a square resize, or resize then centre crop, see
    :mod:`~imbal_estimators.models.preprocessing`), then ``(x / 255 - mean) / std``."""
    mean = estimator.module_.mean.flatten().tolist()
    std = estimator.module_.std.flatten().tolist()
    normalize = normalize_name(mean, std)
    geometry = estimator_geometry(estimator)
    return {
        "image_size": estimator.image_size,
        "resize": geometry.describe(),
        "resize_to": geometry.resize,
        "crop": geometry.crop,
        "interpolation": geometry.interpolation,
        "mean": mean,
        "std": std,
        "normalize": list(map(list, normalize)) if isinstance(normalize, tuple) else normalize,
        "from": normalization_origin(
            estimator.backbone, estimator.weights, estimator.module, estimator.normalize
        ),
    }


def _refuse_member_folder(path):
    parent, name = os.path.split(os.path.abspath(path))
    if MEMBER_NAME.fullmatch(name) and os.path.lexists(os.path.join(parent, ENSEMBLE_FILE)):
        raise FileExistsError(
            errno.EEXIST,
            f"is a member folder of the ensemble saved in {parent!r}: saving here would "
            "replace that member. Save to another directory, or save the whole ensemble "
            f"to {parent!r}",
            path,
        )


def _saved_names(path):
    """The entries of an existing ``path`` that an earlier save wrote (a save may replace them).

    Only regular files count (never a folder or a link of that name), and a
    ``config.json`` or ``ensemble.json`` only where it is a saved model's JSON
    (an object with a ``format_version``): a save never deletes a user's files.
    """
    names = []
    if not os.path.isdir(path) or os.path.islink(path):
        return names
    for name in os.listdir(path):
        entry = os.path.join(path, name)
        if name in (CONFIG_FILE, WEIGHTS_FILE, ENSEMBLE_FILE):
            if _saved_file(entry):
                names.append(name)
        elif (
            MEMBER_NAME.fullmatch(name)
            and os.path.isdir(entry)
            and not os.path.islink(entry)
            and set(os.listdir(entry)) <= {CONFIG_FILE, WEIGHTS_FILE}
            and all(_saved_file(os.path.join(entry, f)) for f in os.listdir(entry))
        ):
            names.append(name)
    return names


def _saved_file(entry):
    if not stat.S_ISREG(os.lstat(entry).st_mode):
        return False
    if os.path.basename(entry) == WEIGHTS_FILE:
        return True
    limit = MAX_JSON_BYTES if entry.endswith(ENSEMBLE_FILE) else MAX_CONFIG_BYTES
    try:
        config = read_json(entry, limit)
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and "format_version" in config


def load(
    path: StrPath, device: str | None = None, trusted: bool = False
) -> ImageImbalanceClassifier | SeedEnsembleClassifier:
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
        ``config.json`` names classes by their import path. By default every
        name is checked against an allow-list before anything is imported:
        the estimator class, and classes of torch, torchvision, skorch,
        scikit-learn, imbalanced-learn and imbal_estimators of the kinds
        parameters hold (torch modules, optimizers, schedulers, datasets,
        estimators and samplers, skorch callbacks), plus skorch's default
        functions and scikit-learn's metrics. A file you saved yourself with
        your own network class, a function as a parameter (e.g.
        ``FunctionSampler(func=...)``), ``torch_load_kwargs`` or
        ``LoadInitState`` needs ``trusted=True``.

    Returns
    -------
    estimator : ImageImbalanceClassifier or SeedEnsembleClassifier
        Fitted: ``predict`` and ``predict_proba`` give what the saved one gave.
        The optimizer state is not saved; further ``partial_fit`` starts a
        fresh optimizer.

    Raises
    ------
    UntrustedReferenceError
        ``config.json`` names something outside the allow-list, or a parameter
        that reads pickles during training; the message names it.
    ModelFileError
        A file is missing, truncated, damaged, or from another save; the message
        names it.
    """
    path = os.fspath(path)
    if os.path.lexists(os.path.join(path, ENSEMBLE_FILE)):
        return _load_ensemble(path, device, trusted)
    return _load_single(path, device, trusted)


def _load_single(path, device, trusted):
    """The :class:`ImageImbalanceClassifier` of ``path``: ``config.json`` and its weights."""
    config_path = os.path.join(path, CONFIG_FILE)
    config = _read_config(path, config_path)
    cls = _estimator_class(config, config_path, trusted)
    params = _saved_params(path, config, config_path, device, trusted)
    try:
        estimator = cls(**params)
    except TypeError as exc:
        raise ModelFileError(f"{config_path!r}: the field 'params' does not fit ({exc}).") from None
    check_parameters(estimator, config_path)
    _restore_fitted(estimator, config, config_path)
    _restore_network(estimator, path, config, config_path)
    estimator.history[:] = config["history"]  # skorch's history, built by initialize
    return estimator


def _saved_params(path, config, config_path, device, trusted):
    """The constructor's parameters of ``config.json``, decoded and checked."""
    params = {
        name: _decode(value, trusted, config_path, f"parameter {name!r}")
        for name, value in config["params"].items()
        if not (name == "module" and _is_saved_network(value, config))
    }
    if "module" not in params and "module" in config["params"]:
        try:
            params["module"] = _saved_network(config["params"]["module"], config, trusted)
        except UntrustedReferenceError as exc:
            raise UntrustedReferenceError(f"{config_path!r}: {exc}") from None
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise ModelFileError(
                f"{config_path!r}: the parameter 'module' cannot be read "
                f"({type(exc).__name__}: {exc})."
            ) from None
    params = saved_params(params)  # 0.2's tau, max_margin, ldam_s: criterion__*
    # a model saved before head_init, freeze_norm and head_lr_scale started its head at
    # random, trained its BatchNorm statistics and its head at lr; a refit does the same
    params.setdefault("head_init", "random")
    params.setdefault("freeze_norm", False)
    params.setdefault("head_lr_scale", 1.0)
    if not trusted:
        _refuse_pickle_loading(params, path, config_path)
    if device is not None:
        params["device"] = device
    elif _unavailable(params.get("device")):
        warn(
            f"{path!r} was saved with device={params['device']!r}, which this machine lacks; "
            "loading it on the CPU (device='cpu')."
        )
        params["device"] = "cpu"
    return params


def _restore_fitted(estimator, config, config_path):
    """``classes_`` and the saved fitted attributes, checked; a model of 0.1 or 0.2 gets the
    attributes it lacks here, once (:func:`~imbal_estimators.estimator.fitted.normalize_fitted`)."""
    classes = _read_classes(config, config_path)
    fitted = normalize_fitted(
        _read_fitted(config, config_path), classes, estimator.batch_size, estimator.image_size
    )
    assign_fitted(estimator, {"classes_": classes, **fitted})
    check_fitted(estimator, config_path)
    check_geometry(estimator, config, config_path)


def _read_classes(config, config_path):
    classes = config["classes"]
    values = _decode(classes["values"], False, config_path, "classes")
    try:
        array = np.array(values, dtype=np.dtype(classes["dtype"]))
    except (TypeError, ValueError) as exc:
        raise ModelFileError(
            f"{config_path!r}: the field 'classes' cannot be read as an array of dtype "
            f"{classes['dtype']!r} ({exc})."
        ) from None
    check_classes(array, config_path)
    return array


def _read_fitted(config, config_path):
    """The saved fitted attributes, decoded (name -> value)."""
    fitted = {}
    for name, value in config.get("fitted", {}).items():
        if name not in FITTED:
            raise ModelFileError(f"{config_path!r} sets an unknown fitted attribute {name!r}.")
        value = _decode(value, False, config_path, f"fitted value {name!r}")
        if FITTED[name] == ARRAY and value is not None:
            value = np.asarray(value)
        fitted[name] = value
    return fitted


def _restore_network(estimator, path, config, config_path):
    """Build the network for the saved classes and load ``model.safetensors`` into it.

    No pretrained weights are fetched (every tensor comes from the file) and the
    callbacks are not initialized: that happens when training begins.
    """
    state = _read_weights(path, config, config_path)
    check_network_size(estimator, state, config_path, os.path.join(path, WEIGHTS_FILE))
    saved_weights, saved_callbacks = estimator.weights, estimator.callbacks
    estimator.weights, estimator.callbacks = None, "disable"
    try:
        estimator.initialize()
    finally:
        estimator.weights, estimator.callbacks = saved_weights, saved_callbacks
    if hasattr(estimator.module_, "frozen_norm"):  # decided with the saved weights, not None
        estimator.module_.frozen_norm = freezes_norm(estimator)
    estimator.__dict__[CALLBACKS_PENDING] = True
    try:
        estimator.module_.load_state_dict(state)
    except RuntimeError as exc:
        # the first few keys, not torch's hundreds (a network class changed since the save)
        problems = state_mismatches(estimator.module_.state_dict(), state) or first_line(exc)
        raise ModelFileError(
            f"{os.path.join(path, WEIGHTS_FILE)!r} does not fit the network that "
            f"{config_path!r} describes: {problems}. Was the network's class changed "
            "since the model was saved?"
        ) from None
    check_preprocessing(config, estimator, config_path)
    estimator.module_.to(estimator.device)


def _decode(value, trusted, config_path, field):
    """``from_json(value)``; an error names ``config_path`` and ``field``."""
    try:
        return from_json(value, trusted)
    except UntrustedReferenceError as exc:
        raise UntrustedReferenceError(f"{config_path!r}: {exc}") from None
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as exc:
        raise ModelFileError(
            f"{config_path!r}: the {field} cannot be read ({type(exc).__name__}: {exc})."
        ) from None


def _load_ensemble(path, device, trusted):
    """The :class:`SeedEnsembleClassifier` of ``path``: ``ensemble.json`` and its members."""
    ensemble_path = os.path.join(path, ENSEMBLE_FILE)
    config = _read_model_json(ensemble_path, MAX_JSON_BYTES, path)
    if not isinstance(config, dict):
        raise ModelFileError(
            f"{ensemble_path!r} holds a JSON {type(config).__name__}, not the object a save "
            "writes: it is not an ensemble file."
        )
    _check_format_version(config, ensemble_path)
    if config.get("estimator") != ENSEMBLE_REFERENCE:
        raise UntrustedReferenceError(
            f"{ensemble_path!r} names estimator {config.get('estimator')!r}; an ensemble file "
            f"names {ENSEMBLE_REFERENCE!r}."
        )
    names = config.get("members")
    if (
        not isinstance(names, list)
        or not names
        or not all(isinstance(n, str) and MEMBER_NAME.fullmatch(n) for n in names)
        or len(set(names)) != len(names)
    ):
        raise ModelFileError(
            f"{ensemble_path!r} lists members {names!r}; expected a non-empty list of "
            f"distinct folder names like '{MEMBER_PREFIX}0'."
        )
    members = []
    for name in names:
        folder = os.path.join(path, name)
        if os.path.islink(folder):
            raise ModelFileError(
                f"{folder!r}, a member that {ensemble_path!r} lists, is a symbolic link; a "
                "save writes member folders, never links (it could point anywhere)."
            )
        if not os.path.isdir(folder):
            state = "is not a folder" if os.path.lexists(folder) else "is missing"
            raise ModelFileError(
                f"{folder!r}, a member that {ensemble_path!r} lists, {state}: the "
                "directory is not a complete save."
            )
        if os.path.lexists(os.path.join(folder, ENSEMBLE_FILE)):
            raise ModelFileError(
                f"{folder!r}, a member that {ensemble_path!r} lists, holds an {ENSEMBLE_FILE}: "
                "a member is a single model, never an ensemble."
            )
    for name in names:
        members.append(_load_single(os.path.join(path, name), device, trusted))
    return SeedEnsembleClassifier.from_members(members)


#: set by :func:`load`: the estimator initializes its callbacks before it trains
CALLBACKS_PENDING = "_callbacks_pending_"


def _read_config(path, config_path):
    try:
        config = _read_model_json(config_path, MAX_CONFIG_BYTES, path)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path!r} has no {CONFIG_FILE}; it is not a directory written by clf.save(path)."
        ) from None
    _check_format_version(config, config_path)
    missing = [key for key in ("estimator", "params", "classes", "history") if key not in config]
    if missing:
        raise ModelFileError(f"{config_path!r} lacks {missing}: it is not a complete save.")
    check_layout(config, config_path)
    return config


def _read_model_json(file_path, limit, directory):
    """The JSON of ``file_path`` through the bounded reader; errors are ModelFileErrors."""
    try:
        return read_json(file_path, limit, root=directory, what="model file")
    except UnreadableFileError as exc:
        raise ModelFileError(f"{exc} Save the model again.") from None


def _check_format_version(config, file_path):
    version = config.get("format_version") if isinstance(config, dict) else None
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{file_path!r} has format_version {version!r}; this "
            f"version of imbal_estimators reads format_version {FORMAT_VERSION}."
        )


def _estimator_class(config, config_path, trusted):
    try:
        cls = resolve_reference(config["estimator"], "estimator", trusted)
    except UntrustedReferenceError as exc:
        raise UntrustedReferenceError(f"{config_path!r}: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, ImageImbalanceClassifier)):
        raise ValueError(
            f"{config_path!r} names estimator {config['estimator']!r}, which is not an "
            "ImageImbalanceClassifier."
        )
    return cls


def _read_weights(path, config, config_path):
    """The tensors of model.safetensors, checked against the size and digest in config.json."""
    weights_path = os.path.join(path, WEIGHTS_FILE)
    expected = config.get("files", {}).get(WEIGHTS_FILE)
    limit = MAX_WEIGHTS_BYTES
    if expected is not None:  # saves of version 0.1 recorded no digest
        size = expected.get("bytes") if isinstance(expected, dict) else None
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= limit:
            raise ModelFileError(
                f"{config_path!r}: the field 'files' records {_short(expected)} for "
                f"{WEIGHTS_FILE}, not a size in bytes up to {limit} "
                "(persistence.MAX_WEIGHTS_BYTES)."
            )
        limit = size  # a larger file is not the one saved: refused before it is read
    try:
        data = read_bytes(weights_path, limit, root=path, what="model file")
    except FileNotFoundError:
        raise ModelFileError(
            f"{weights_path!r} is missing: the directory is not a complete save."
        ) from None
    except UnreadableFileError as exc:
        raise ModelFileError(
            f"{exc} It is not the file {config_path!r} was saved with (truncated, damaged "
            "or from another save)."
        ) from None
    if expected is not None:
        digest = hashlib.sha256(data).hexdigest()
        if len(data) != expected.get("bytes") or digest != expected.get("sha256"):
            raise ModelFileError(
                f"{weights_path!r} ({len(data)} bytes) is not the file {config_path!r} was "
                f"saved with ({expected.get('bytes')} bytes, another SHA-256): it is truncated, "
                "damaged or from another save. Save the model again."
            )
    try:
        state = safetensors_load(data)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise ModelFileError(
            f"{weights_path!r} cannot be read as safetensors ({exc}): it is truncated or damaged."
        ) from None
    check_weights(state, weights_path)
    return state


def _short(value, limit=80):
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _refuse_pickle_loading(params, path, config_path):
    """Parameters that would read pickles or files of the model directory during training."""
    kwargs = params.get("torch_load_kwargs")
    if kwargs is not None and not (
        isinstance(kwargs, dict)
        and kwargs.get("weights_only") is True
        and set(kwargs) <= {"weights_only", "mmap"}
    ):
        raise UntrustedReferenceError(
            f"{config_path!r} sets torch_load_kwargs={kwargs!r}: torch.load without "
            "weights_only=True unpickles (runs code). If you trust the file, pass trusted=True."
        )
    directory = os.path.realpath(path)
    for name, value in params.items():
        for checkpoint in _checkpoints_in(value):
            targets = [checkpoint.dirname or "."]
            targets += [
                os.path.join(checkpoint.dirname or "", f"{checkpoint.fn_prefix}{file_name}")
                for key, file_name in vars(checkpoint).items()
                if key.startswith("f_") and isinstance(file_name, str)
            ]
            inside = [t for t in targets if _inside(os.path.realpath(t), directory)]
            if inside:
                raise UntrustedReferenceError(
                    f"{config_path!r} sets a {type(checkpoint).__name__} in {name!r} whose "
                    f"files lie in the model directory ({inside[0]!r}): training would load "
                    "them. If you trust the file, pass trusted=True."
                )
        if name.startswith("callbacks__") and isinstance(value, str):
            if name.endswith("__dirname") or "__f_" in name:
                if _inside(os.path.realpath(value or "."), directory):
                    raise UntrustedReferenceError(
                        f"{config_path!r} sets {name}={value!r}, inside the model directory: "
                        "training would load files from it. If you trust the file, pass "
                        "trusted=True."
                    )


def _checkpoints_in(value):
    if isinstance(value, (Checkpoint, TrainEndCheckpoint)):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _checkpoints_in(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _checkpoints_in(item)


def _inside(target, directory):
    return target == directory or target.startswith(directory.rstrip(os.sep) + os.sep)


def _unavailable(device):
    if device is None or device == "auto":
        return False
    try:
        return torch.device(device).type == "cuda" and not torch.cuda.is_available()
    except (RuntimeError, TypeError):
        return False
