"""Export a fitted model with its decision rule: ONNX, ``torch.export`` (``.pt2``), TorchScript.

The exported graph is the whole of ``predict``, not only the network:

* input ``images``: a uint8 tensor ``(N, 3, H, W)`` of decoded RGB images of any
  height and width (the caller decodes and applies EXIF orientation, as
  :func:`imbal_estimators.data.images.read_image` does);
* the model's input geometry, pixel for pixel as ``predict`` applies it
  (:mod:`.export_resize`): the resize to ``image_size x image_size`` with Pillow's
  bilinear filter, or (``image_size="auto"`` on a pretrained torchvision or timm
  network) the resize of the shorter side (both sides for timm's "squash") and the
  centre crop, with the network's interpolation; then the scaling to [0, 1] and the
  network's normalization (its mean and std: ImageNet's, [-1, 1], yours or none);
* the softmax of the logits (divided by ``temperature_`` when calibrated), averaged
  over the members of an ensemble;
* the model's own decision: the tuned ``threshold_`` on the positive class, the
  post-hoc logit adjustment of ``posthoc_tau``, or argmax.

Outputs: ``probabilities`` ``(N, n_classes)`` float32, columns ordered like
``classes_``, and ``label_index`` ``(N,)`` int64, an index into ``classes_``.
A sidecar ``<path>.json`` (and, for ONNX, the model's metadata under the key
``imbal_estimators``) holds the label names, the decision rule and the preprocessing.

TorchScript is produced by tracing (``torch.jit.trace``); ``torch.jit.script`` is not
supported (the backbones' ``getattr(out, "logits", out)`` and torchvision's models are
not scriptable as a whole).
"""

import copy
import json
import os
import tempfile
import warnings

import numpy as np
import torch
from torch import nn

from ..data.geometry import Geometry
from ..io.atomic import atomic_write
from ..models.normalization import normalize_name
from ..training.precision import set_precision
from ..utils.class_counts import log_prior
from .export_resize import geometry_resize, pillow_resize
from .geometry import estimator_geometry

__all__ = ["EXPORT_FORMATS", "ExportedPredictor", "export", "geometry_resize", "pillow_resize"]

#: format name -> (file suffix, description); read by ``export`` and the CLI.
EXPORT_FORMATS = {
    "onnx": (".onnx", "ONNX (torch.onnx dynamo exporter); runs in onnxruntime"),
    "pt2": (".pt2", "torch.export program; load with torch.export.load(path).module()"),
    "torchscript": (".pt", "traced TorchScript; load with torch.jit.load(path)"),
}


class ExportedPredictor(nn.Module):
    """``predict`` as one module: uint8 images in, probabilities and class indices out.

    Parameters
    ----------
    networks : list of nn.Module
        The fitted networks (one, or an ensemble's members), each taking ``(N, 3, S, S)``
        float images in [0, 1] and normalizing them itself.
    temperatures : list of float
        One per network (1.0 when not calibrated).
    image_size : int or Geometry
        An int is a square resize (:class:`~imbal_estimators.data.geometry.Geometry`).
    threshold : float or None
    pos_index : int or None
    posthoc_tau : float or None
    class_counts : array-like or None
        The prior of ``posthoc_tau``.
    """

    def __init__(
        self,
        networks,
        temperatures,
        image_size,
        threshold=None,
        pos_index=None,
        posthoc_tau=None,
        class_counts=None,
    ):
        super().__init__()
        self.networks = nn.ModuleList(networks)
        self.register_buffer(
            "inverse_temperatures",
            torch.tensor([1.0 / t for t in temperatures], dtype=torch.float32),
        )
        self.geometry = Geometry.of(image_size)
        self.image_size = self.geometry.crop
        self.threshold = None if threshold is None else float(threshold)
        self.pos_index = None if pos_index is None else int(pos_index)
        self.posthoc_tau = float(posthoc_tau) if posthoc_tau else None
        prior = log_prior(class_counts) if self.posthoc_tau else np.zeros(1)
        self.register_buffer("log_prior", torch.tensor(prior, dtype=torch.float32))

    def forward(self, images):
        x = geometry_resize(images, self.geometry).to(torch.float32) / 255.0
        probabilities = []
        for i, network in enumerate(self.networks):
            logits = network(x).to(torch.float32)
            probabilities.append(torch.softmax(logits * self.inverse_temperatures[i], dim=1))
        proba = torch.stack(probabilities).mean(dim=0)
        if self.threshold is not None:
            positive = proba[:, self.pos_index] >= self.threshold
            label = torch.where(positive, self.pos_index, 1 - self.pos_index).to(torch.int64)
        elif self.posthoc_tau is not None:
            log_p = torch.log(torch.clamp(proba, min=torch.finfo(torch.float32).tiny))
            label = torch.argmax(log_p - self.posthoc_tau * self.log_prior, dim=1)
        else:
            label = torch.argmax(proba, dim=1)
        return proba, label


def _members(estimator):
    """The fitted single models behind ``estimator`` (itself, or an ensemble's members)."""
    return list(getattr(estimator, "members_", [estimator]))


def _check_exportable(estimator):
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(estimator)
    first = estimator_geometry(_members(estimator)[0])
    for member in _members(estimator):
        check_is_fitted(member)
        if member.tta is not None and member.tta > 1:
            raise ValueError(
                f"export does not include test-time augmentation (tta={member.tta}): "
                "set_params(tta=None) to export the plain model."
            )
        geometry = estimator_geometry(member)
        if geometry != first:
            raise ValueError(
                "export writes one input geometry into its graph, but the ensemble's members "
                f"differ ({first.describe()}; {geometry.describe()})."
            )
        if member.predict_nonlinearity != "auto":
            raise ValueError(
                "export needs predict_nonlinearity='auto' (the softmax of predict_proba); "
                f"got {member.predict_nonlinearity!r}."
            )
        if not hasattr(member.module_, "mean") or not hasattr(member.module_, "std"):
            raise ValueError(
                f"export needs the package's image model as module_; got "
                f"{type(member.module_).__name__}."
            )


def build_predictor(estimator):
    """The :class:`ExportedPredictor` of a fitted estimator or ensemble (on the CPU, float32)."""
    _check_exportable(estimator)
    members = _members(estimator)
    networks = [copy.deepcopy(m.module_).cpu().float().eval() for m in members]
    for network in networks:
        network.requires_grad_(False)
        set_precision(network, "fp32", "cpu")  # no autocast in the graph: float32 throughout
    temperatures = [float(m.temperature_ or 1.0) for m in members]
    predictor = ExportedPredictor(
        networks,
        temperatures,
        estimator_geometry(members[0]),
        threshold=estimator.threshold_,
        pos_index=getattr(estimator, "pos_index_", None),
        posthoc_tau=estimator.posthoc_tau,
        class_counts=getattr(estimator, "loss_class_counts_", None),
    )
    return predictor.eval()


def describe(estimator, format):
    """The sidecar's content: labels, decision rule, preprocessing, inputs and outputs."""
    from importlib.metadata import PackageNotFoundError, version

    members = _members(estimator)
    first = members[0]
    try:
        package_version = version("imbal-estimators")
    except PackageNotFoundError:  # a source checkout that is not installed
        package_version = None
    pos_index = getattr(estimator, "pos_index_", None)
    counts = getattr(estimator, "loss_class_counts_", None)
    return {
        "format": format,
        "package_version": package_version,
        "classes": [_plain(c) for c in estimator.classes_],
        "input": {
            "name": "images",
            "dtype": "uint8",
            "shape": ["N", 3, "H", "W"],
            "channels": "RGB, decoded, EXIF orientation applied",
        },
        "outputs": {
            "probabilities": "float32 (N, n_classes), columns ordered like classes",
            "label_index": "int64 (N,), index into classes",
        },
        "preprocessing": preprocessing(first),
        "decision": {
            "rule": estimator.decision_rule(),
            "threshold": estimator.threshold_,
            "pos_index": None if pos_index is None else int(pos_index),
            "posthoc_tau": estimator.posthoc_tau or None,
            "class_counts": None if counts is None else np.asarray(counts).tolist(),
            "temperatures": [float(m.temperature_ or 1.0) for m in members],
            "n_members": len(members),
        },
    }


def preprocessing(member):
    """The sidecar's ``preprocessing``: the geometry (``resize`` as torchvision's ``Resize``
    takes it: one number is the shorter side, two are height and width; then
    ``center_crop``, or None), the filter, the scaling and the normalization; also the
    ``resize_to``, ``crop`` and ``interpolation`` of ``config.json``."""
    geometry = estimator_geometry(member)
    mean = member.module_.mean.flatten().tolist()
    std = member.module_.std.flatten().tolist()
    normalize = normalize_name(mean, std)
    square = geometry.is_square_resize
    if square:
        resize, ratio = [geometry.crop] * 2, "aspect ratio not kept"
    elif geometry.keep_ratio:
        resize, ratio = [geometry.resize], "the shorter side, aspect ratio kept"
    else:
        resize, ratio = [geometry.resize] * 2, "both sides, aspect ratio not kept"
    smoothing = "" if geometry.interpolation == "nearest" else " (antialiased)"
    return {
        "geometry": geometry.describe(),
        "resize": resize,
        "resize_filter": f"Pillow {geometry.interpolation.upper()}{smoothing}, {ratio}",
        "center_crop": None if square else [geometry.crop] * 2,
        "resize_to": geometry.resize,
        "crop": geometry.crop,
        "interpolation": geometry.interpolation,
        "keep_ratio": geometry.keep_ratio,
        "scale": "1/255",
        "mean": mean,
        "std": std,
        "normalize": list(map(list, normalize)) if isinstance(normalize, tuple) else normalize,
    }


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def export(estimator, path, format="onnx"):
    """Write ``estimator`` (fitted, single or ensemble) as one graph with its decision.

    Parameters
    ----------
    estimator : ImageImbalanceClassifier or SeedEnsembleClassifier
        Fitted.
    path : str or os.PathLike
        The model file; the sidecar is ``path + ".json"``.
    format : {"onnx", "pt2", "torchscript"}, default="onnx"

    Returns
    -------
    path : str
    """
    if format not in EXPORT_FORMATS:
        raise ValueError(
            f"The 'format' parameter of export must be one of {sorted(EXPORT_FORMATS)}; "
            f"got {format!r} instead."
        )
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"The export 'path' {path!r} is a directory; name a file.")
    predictor = build_predictor(estimator)
    info = describe(estimator, format)
    size = predictor.image_size
    example = torch.zeros((2, 3, size + 3, size + 5), dtype=torch.uint8)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with torch.no_grad():
        if format == "onnx":
            model = _onnx_model(predictor, example, info)
            _replace(path, lambda tmp: _save_onnx(model, tmp))
        elif format == "pt2":
            program = torch.export.export(predictor, (example,), dynamic_shapes=_dynamic_shapes())
            _replace(path, lambda tmp: torch.export.save(program, tmp))
        else:
            with warnings.catch_warnings():
                # torch 2.14 marks TorchScript deprecated; the user asked for it by name
                warnings.filterwarnings("ignore", category=FutureWarning, module="torch")
                traced = torch.jit.trace(predictor, (example,), check_trace=False)
                _replace(path, lambda tmp: torch.jit.save(traced, tmp))
    text = (json.dumps(info, indent=2) + "\n").encode()
    atomic_write(path + ".json", lambda file: file.write(text))
    return path


def _replace(path, write):
    """``write(tmp)`` a file next to ``path``, then rename it over ``path``: a failed
    export leaves no half-written model."""
    directory = os.path.dirname(os.path.abspath(path))
    # the same suffix: torch.export.save expects a name ending in .pt2
    suffix = ".tmp" + os.path.splitext(path)[1]
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=suffix, dir=directory)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _dynamic_shapes():
    dim = torch.export.Dim.DYNAMIC
    return {"images": {0: dim, 2: dim, 3: dim}}


def _onnx_model(predictor, example, info):
    """The ONNX ``ModelProto`` of ``predictor``, with ``info`` in its metadata."""
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "format='onnx' needs the onnx and onnxscript packages: "
            "pip install 'imbal-estimators[export]'."
        ) from exc
    program = torch.onnx.export(
        predictor,
        (example,),
        dynamo=True,
        input_names=["images"],
        output_names=["probabilities", "label_index"],
        dynamic_shapes=_dynamic_shapes(),
        verbose=False,
    )
    model = program.model_proto
    entry = model.metadata_props.add()
    entry.key, entry.value = "imbal_estimators", json.dumps(info)
    return model


def _save_onnx(model, path):
    import onnx

    onnx.save(model, path)
