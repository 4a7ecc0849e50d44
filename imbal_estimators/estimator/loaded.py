"""The checks :func:`~imbal_estimators.estimator.persistence.load` runs on what a
``config.json`` and its weights say, before the model is used.

A saved file may be crafted or damaged. ``load`` validates it like the constructor
validates its arguments, and more, since fitted values are never checked by ``fit``:

* the layout of ``config.json`` (each field of the type a save writes);
* every parameter through the estimator's declared constraints
  (``_parameter_constraints``, the sizes of :mod:`imbal_estimators.utils.limits`);
* the fitted values: distinct finite classes, a threshold finite and in [0, 1], a
  finite ``posthoc_tau`` and temperature, class weights and counts finite and one per
  class, a positive class among the classes;
* the preprocessing block equal to the parameters (``image_size``) and to the
  network's normalization, finite weights;
* the size of the network, counted on PyTorch's ``meta`` device (no memory) before it is
  built: it may not hold more values than the weights file.

Every error is a :class:`ModelFileError` whose message names the file and the field.
"""

import math
from numbers import Integral, Real

import numpy as np
import torch

from ..data.geometry import Geometry
from ..utils.param_validation import validate_parameter_constraints
from .validation import check_argument_names


class ModelFileError(ValueError):
    """A file of a saved model is missing, truncated, damaged or from another save."""


#: the fields of config.json and the JSON type a save writes for each
_LAYOUT = {
    "estimator": str,
    "params": dict,
    "classes": dict,
    "fitted": dict,
    "preprocessing": dict,
    "history": list,
    "files": dict,
    "network": dict,
}


def check_layout(config, config_path):
    """Each field of ``config`` has the JSON type a save writes."""
    if not isinstance(config, dict):
        raise ModelFileError(
            f"{config_path!r} holds a JSON {type(config).__name__}, not the object a save writes."
        )
    for field, kind in _LAYOUT.items():
        if field in config and not isinstance(config[field], kind):
            raise ModelFileError(
                f"{config_path!r}: the field {field!r} is a JSON {type(config[field]).__name__}"
                f", where a save writes a {'string' if kind is str else kind.__name__}."
            )
    classes = config.get("classes", {})
    if not isinstance(classes.get("values"), list) or not isinstance(classes.get("dtype"), str):
        raise ModelFileError(
            f"{config_path!r}: the field 'classes' must hold a list 'values' and a string "
            f"'dtype'; got {_short(classes)}."
        )
    if not all(isinstance(entry, dict) for entry in config.get("history", [])):
        raise ModelFileError(f"{config_path!r}: the field 'history' must be a list of objects.")


def _short(value, limit=80):
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_parameters(estimator, config_path):
    """Every parameter through the estimator's declared constraints, as the constructor's
    ``fit`` would check them; the message names ``config_path`` and the parameter."""
    params = estimator.get_params(deep=False)
    try:
        check_argument_names(estimator, params)
        validate_parameter_constraints(
            estimator._parameter_constraints, params, type(estimator).__name__
        )
    except (ValueError, TypeError) as exc:
        raise ModelFileError(f"{config_path!r}: {exc}") from None


def check_classes(classes, config_path):
    """Distinct, finite classes, at least two, one dimension."""
    if classes.ndim != 1 or len(classes) < 2:
        raise ModelFileError(
            f"{config_path!r}: 'classes' must list at least two classes; got {_short(classes)}."
        )
    if classes.dtype.kind not in "biuUSO" and classes.dtype.kind != "f":
        raise ModelFileError(
            f"{config_path!r}: 'classes' has dtype {classes.dtype.str!r}; a save writes "
            "numbers or strings."
        )
    values = classes.tolist()
    for value in values:
        if not isinstance(value, (str, bytes, Integral, Real)) or (
            isinstance(value, Real) and not math.isfinite(value)
        ):
            raise ModelFileError(
                f"{config_path!r}: 'classes' holds {value!r}; a class is a string or a finite "
                "number."
            )
    if len(set(values)) != len(values):
        duplicates = sorted({repr(v) for v in values if values.count(v) > 1})
        raise ModelFileError(
            f"{config_path!r}: 'classes' lists {', '.join(duplicates)} more than once; "
            "the classes of a fitted model are distinct."
        )


def _finite_array(value, name, config_path, n_classes=None, minimum=None):
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ModelFileError(
            f"{config_path!r}: the fitted value {name!r} must be numbers; got {_short(value)}."
        ) from None
    if n_classes is not None and array.shape != (n_classes,):
        raise ModelFileError(
            f"{config_path!r}: the fitted value {name!r} must hold one number per class "
            f"({n_classes}); got shape {array.shape}."
        )
    if not np.isfinite(array).all() or (minimum is not None and (array < minimum).any()):
        bound = "" if minimum is None else f" and >= {minimum}"
        raise ModelFileError(
            f"{config_path!r}: the fitted value {name!r} must be finite{bound}; got "
            f"{_short(value)}."
        )
    return array


def _finite_number(value, name, config_path, low=None, high=None):
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (low is None or value >= low) and (high is None or value <= high)
    if not ok:
        bounds = f" in [{low}, {high}]" if high is not None else f" >= {low}" if low else ""
        raise ModelFileError(
            f"{config_path!r}: the fitted value {name!r} must be a finite number{bounds}; "
            f"got {value!r}."
        )


def check_fitted(estimator, config_path):
    """The fitted values ``load`` set on ``estimator``."""
    n = len(estimator.classes_)
    fitted = estimator.__dict__
    for name in ("class_counts_", "loss_class_counts_"):
        if fitted.get(name) is not None:
            _finite_array(fitted[name], name, config_path, n, minimum=0)
    if fitted.get("class_weight_") is not None:
        _finite_array(fitted["class_weight_"], "class_weight_", config_path, n, minimum=0)
    if fitted.get("threshold_") is not None:
        _finite_number(fitted["threshold_"], "threshold_", config_path, 0, 1)
    if fitted.get("temperature_") is not None:
        _finite_number(fitted["temperature_"], "temperature_", config_path, 1e-12)
    pos_index = fitted.get("pos_index_")
    if pos_index is not None and not (
        isinstance(pos_index, Integral) and not isinstance(pos_index, bool) and 0 <= pos_index < n
    ):
        raise ModelFileError(
            f"{config_path!r}: the fitted value 'pos_index_' must be an index of the {n} "
            f"classes; got {pos_index!r}."
        )
    batch_size = fitted.get("batch_size_")
    if batch_size is not None:
        constraints = {"batch_size_": estimator._parameter_constraints["batch_size"]}
        try:
            validate_parameter_constraints(constraints, {"batch_size_": batch_size}, "load")
        except (ValueError, TypeError) as exc:
            raise ModelFileError(f"{config_path!r}: {exc}") from None


def check_geometry(estimator, config, config_path):
    """``input_geometry_`` is a geometry, and the one the ``preprocessing`` block states."""
    value = estimator.__dict__.get("input_geometry_")
    try:
        if not isinstance(value, dict):
            raise TypeError(f"a JSON object, got {_short(value)}")
        geometry = Geometry.of(value)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(
            f"{config_path!r}: the fitted 'input_geometry_' is not a resize and crop ({exc})."
        ) from None
    block = config.get("preprocessing") or {}
    for key, expected in (("crop", geometry.crop), ("resize_to", geometry.resize)):
        if key in block and block[key] != expected:
            raise ModelFileError(
                f"{config_path!r}: 'preprocessing.{key}' is {_short(block[key])} but the "
                f"fitted input_geometry_ says {expected!r}; the model would see other "
                "pixels than it was trained on."
            )


def check_preprocessing(config, estimator, config_path):
    """The saved ``preprocessing`` block equals the parameters it was saved with."""
    block = config.get("preprocessing")
    if block is None:  # saves of version 0.1
        return
    if block.get("image_size") != estimator.image_size:
        raise ModelFileError(
            f"{config_path!r}: 'preprocessing' says image_size={block.get('image_size')!r} "
            f"but the 'image_size' parameter is {estimator.image_size!r}; the model would "
            "see other pixels than it was trained on."
        )
    for key in ("mean", "std"):
        values = _finite_array(block.get(key), f"preprocessing.{key}", config_path)
        if values.size != 3 or (key == "std" and (values <= 0).any()):
            raise ModelFileError(
                f"{config_path!r}: 'preprocessing.{key}' must be 3 finite numbers"
                + (" > 0" if key == "std" else "")
                + f"; got {_short(block.get(key))}."
            )
        network = getattr(estimator.module_, key, None)
        if network is not None and not np.allclose(
            network.detach().cpu().flatten().numpy(), values, rtol=1e-6, atol=1e-7
        ):
            raise ModelFileError(
                f"{config_path!r}: 'preprocessing.{key}' is {values.tolist()}, but the "
                f"weights normalize with {network.flatten().tolist()}."
            )


def check_weights(state, weights_path):
    """Every floating-point tensor of ``state`` is finite."""
    for key, tensor in state.items():
        if not tensor.is_floating_point() or torch.isfinite(tensor.sum()):
            continue  # a finite sum: every value is finite (a reduction allocates nothing)
        if not torch.isfinite(tensor).all():
            raise ModelFileError(
                f"{weights_path!r}: the tensor {key!r} holds NaN or infinite values; a model "
                "with them predicts one class."
            )


def elements(module):
    """The number of values in the parameters and buffers of ``module``."""
    tensors = [*module.parameters(), *module.buffers()]
    return sum(t.numel() for t in tensors)


def check_network_size(estimator, state, config_path, weights_path):
    """Count the network that ``estimator`` builds on the meta device (no memory): it may not
    hold more values than the weights file (every value comes from there)."""
    from ..models.backbones import build_backbone

    available = sum(t.numel() for t in state.values())
    kwargs = estimator.get_params_for("module")
    try:
        with torch.device("meta"):
            if estimator.module is None:
                network = build_backbone(
                    estimator.backbone, None, len(estimator.classes_), **kwargs
                )[0]
            elif isinstance(estimator.module, type):
                network = estimator.module(**kwargs)
            else:
                return
            needed = elements(network)
    except Exception:  # noqa: BLE001 - the real build below reports it, naming the file
        return
    if needed > available:
        raise ModelFileError(
            f"{config_path!r} describes a network of {needed} values, but {weights_path!r} "
            f"holds {available}: the parameters (module__*, backbone) do not match the "
            "weights. It was not built."
        )
