"""The backbone registry: build a classification backbone by name with a fresh head.

A backbone name is a torchvision classification model (``"resnet34"``, ...; the
names come from ``torchvision.models.list_models``), a timm model with the prefix
``"timm/"`` (:mod:`imbal_estimators.models.timm_source`, optional) or one of
:data:`BACKBONES`, this package's own (``"small_cnn"``). ``build_backbone(name,
weights, n_classes)`` is the one entry point: weights and their preprocessing
(mean and std) travel together, as with torchvision's ``Weights.transforms()``.
:func:`check_backbone` checks a name and its weights before anything is built,
and :func:`is_weights_file` is the one rule that tells a weights file from a
torchvision weights name.
"""

import difflib
import functools
import os
import pickle
import urllib.error
from dataclasses import dataclass

import torch
import torchvision
from torch import nn

from ..io.reader import check_regular
from ..utils.text import first_line
from . import timm_source
from .normalization import IMAGENET_MEAN, IMAGENET_STD
from .small_cnn import SmallCNN

#: the largest weights file read (an 8 GiB state dict is a 2-billion-parameter model)
MAX_WEIGHTS_FILE_BYTES = 8 << 30

_AUX_LOGIT_MODELS = ("googlenet", "inception_v3")  # builders with aux_logits/init_weights


class ImageModel(nn.Module):
    """Normalize uint8 (or [0, 1] float) images on the device, then run the backbone.

    Parameters
    ----------
    backbone : nn.Module
        Maps ``(N, 3, H, W)`` float images to ``(N, n_classes)`` logits.
    mean, std : sequence of 3 floats
        The normalization the backbone's weights were trained with.
    """

    def __init__(self, backbone, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        super().__init__()
        self.backbone = backbone
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    #: The forward pass's autocast dtype (None: float32) and whether a batch of images goes
    #: in channels-last format: the estimator's ``precision`` on its device, set with
    #: :func:`imbal_estimators.training.precision.set_precision`.
    autocast_dtype = None
    channels_last = False
    #: Whether the backbone's BatchNorm layers stay in eval mode in training (the
    #: estimator's ``freeze_norm``, :mod:`imbal_estimators.estimator.finetune`).
    frozen_norm = False

    def train(self, mode=True):
        super().train(mode)
        if mode and self.frozen_norm:
            for module in self.backbone.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def normalize(self, x):
        if x.dtype == torch.uint8:
            x = x.float().div_(255.0)
        return (x - self.mean) / self.std

    def forward(self, x):
        """float32 logits of a batch of images, computed under autocast where it is set."""
        if x.dim() == 4 and self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.autocast_dtype is None:
            return self.logits(x).float()
        with torch.autocast(device_type=x.device.type, dtype=self.autocast_dtype):
            logits = self.logits(x)
        return logits.float()  # every loss is computed in float32

    def logits(self, x):
        """The backbone's logits of a batch of images, in the dtype it computes."""
        out = self.backbone(self.normalize(x))
        # models with auxiliary outputs return a named tuple with .logits
        return getattr(out, "logits", out)


class FrozenBackboneModel(ImageModel):
    """A frozen backbone body and a trainable linear head.

    ``forward`` takes images, or the body's features as a ``(N, D)`` float
    matrix (what the feature cache stores), so training on cached features and
    predicting on images use the same head.

    Parameters
    ----------
    backbone : nn.Module
        A classifier whose head (the last ``nn.Linear``, see :func:`find_head`)
        is its last operation; the head is moved out to ``self.head`` and
        replaced by an identity, the rest is frozen and kept in eval mode.
    mean, std : sequence of 3 floats
    """

    def __init__(self, backbone, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        head_name, head = find_head(backbone)
        if not isinstance(head, nn.Linear):
            raise ValueError(
                f"freeze_backbone=True needs a backbone whose head is a Linear layer; "
                f"{type(backbone).__name__} ends with {type(head).__name__} {head_name!r}."
            )
        _set_submodule(backbone, head_name, nn.Identity())
        super().__init__(backbone, mean, std)
        self.head = head
        self.backbone.requires_grad_(False)
        self.backbone.eval()

    def train(self, mode=True):
        # The body stays in eval mode (frozen BatchNorm statistics, no dropout);
        # not recursing into it also saves ~4 ms per call on a ResNet34.
        self.training = mode
        self.head.train(mode)
        return self

    def frozen_state_keys(self):
        """The ``state_dict`` keys that training never changes."""
        return {"mean", "std", *(f"backbone.{key}" for key in self.backbone.state_dict())}

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        """The trainable parameters (the head's): the frozen body's weights are constants.

        What skorch hands the optimizer; a
        :class:`~imbal_estimators.models.features.LazyFrozenModel` whose body is not
        built yet gives the same, so their optimizer states match.
        """
        for name, param in super().named_parameters(prefix, recurse, remove_duplicate):
            if param.requires_grad:
                yield name, param

    def features(self, images):
        """The body's ``(N, D)`` features of a batch of images."""
        out = self.backbone(self.normalize(images))
        return torch.flatten(getattr(out, "logits", out), 1)

    def forward(self, x):
        if x.dim() == 2 and x.is_floating_point():
            # cached features: the head in float32, where autocast would only round them
            return self.head(x).float()
        return super().forward(x)

    def logits(self, x):
        return self.head(self.features(x))


@dataclass(frozen=True)
class BackboneEntry:
    """A backbone of this package (not torchvision's).

    Attributes
    ----------
    build : callable
        ``build(num_classes=..., **module_kwargs) -> nn.Module`` mapping
        ``(N, 3, H, W)`` images to ``(N, num_classes)`` logits.
    description : str
        One line, for ``--help`` and the docs.
    """

    build: object
    description: str


#: This package's backbones by name; torchvision's come from torchvision itself. They have
#: no pretrained weights: ``weights=None`` (random init) or a state-dict file.
BACKBONES = {
    "small_cnn": BackboneEntry(
        SmallCNN, "imbal_estimators.SmallCNN: 24k weights, trains from scratch on a CPU"
    ),
}


def classification_models():
    """Names of torchvision's image classification models."""
    return sorted(torchvision.models.list_models(module=torchvision.models))


def backbone_names():
    """Every name ``backbone=`` takes: torchvision's classification models, ours, then
    timm's (with the ``timm/`` prefix; none when timm is not installed)."""
    return [*classification_models(), *BACKBONES, *timm_source.timm_names()]


class WeightsDownloadError(RuntimeError):
    """Pretrained weights could not be downloaded (offline, or the server refused).

    Attributes
    ----------
    backbone, weights : str
        What was asked for.
    """

    def __init__(self, message, backbone, weights):
        super().__init__(message)
        self.backbone = backbone
        self.weights = weights


def build_backbone(name, weights, n_classes, **kwargs):
    """Build ``name`` with ``weights`` and a new ``n_classes`` head.

    Parameters
    ----------
    name : str
        A torchvision classification model, e.g. ``"resnet34"``.
    weights : None, str or os.PathLike
        ``None`` for random initialization; ``"DEFAULT"`` or a weights name
        such as ``"IMAGENET1K_V1"`` (or ``"ResNet34_Weights.IMAGENET1K_V1"``)
        for torchvision's pretrained weights; or the path of a state-dict file
        (``torch.save`` or ``.safetensors``) for this architecture, with either
        the original head or an ``n_classes`` head.
    n_classes : int
        Number of outputs of the new head.
    **kwargs
        Passed to the torchvision model builder (``module__*`` parameters).

    Returns
    -------
    model : nn.Module
    mean, std : tuple of 3 floats
        The normalization that goes with the weights.
    """
    check_backbone_name(name)
    if name in BACKBONES:
        return _build_own(name, weights, n_classes, **kwargs), IMAGENET_MEAN, IMAGENET_STD
    if timm_source.is_timm_name(name):
        return _build_timm(name, weights, n_classes, **kwargs)
    if weights is None or is_weights_file(weights):
        state = None if weights is None else read_weights_file(weights)
        if name in _AUX_LOGIT_MODELS:
            if state is not None:  # dropped after loading anyway; they may have any class
                state = _without_aux_heads(state)  # count or sit under a wrapper's prefix
            kwargs.setdefault("aux_logits", False)
            kwargs.setdefault("init_weights", True)
        if state is None:
            model = torchvision.models.get_model(name, weights=None, **kwargs)
            model = replace_head(model, n_classes)
        else:
            model = _model_from_state(name, state, weights, n_classes, **kwargs)
        return _drop_aux_heads(model), IMAGENET_MEAN, IMAGENET_STD
    weights_enum = resolve_weights(name, weights)
    try:
        model = torchvision.models.get_model(name, weights=weights_enum, **kwargs)
    except (urllib.error.URLError, OSError, RuntimeError) as exc:
        raise WeightsDownloadError(
            f"Could not load the pretrained weights {weights_enum} for backbone {name!r} "
            f"({type(exc).__name__}: {exc}). Without internet access, pass weights=None "
            f"for random initialization, or weights='path/to/{name}.pth': a state dict "
            f"saved with torch.save(torchvision.models.{name}(weights='DEFAULT')"
            ".state_dict(), path) on a machine that can download it. Or copy torchvision's "
            f"downloaded file {os.path.basename(weights_enum.url)} under that name into "
            "$TORCH_HOME/hub/checkpoints/ (by default ~/.cache/torch/hub/checkpoints/).",
            name,
            weights,
        ) from exc
    mean = tuple(weights_enum.transforms().mean)
    std = tuple(weights_enum.transforms().std)
    return _drop_aux_heads(replace_head(model, n_classes)), mean, std


def _build_timm(name, weights, n_classes, **kwargs):
    """A ``timm/`` backbone: random, timm's pretrained weights, or a state-dict file."""
    if weights is None or is_weights_file(weights):
        state = None if weights is None else read_weights_file(weights)
        head_rows = n_classes
        if state is not None:
            with torch.device("meta"):
                probe = timm_source.create(name, n_classes, **kwargs)
            head_shape = _head_weight_shape(state, probe)
            head_rows = n_classes if head_shape is None else head_shape[0]
        model = timm_source.create(name, head_rows, **kwargs)
        if state is not None:
            model = load_state(model, state, weights, n_classes, name)
    else:
        _check_timm_weights(name, weights)
        try:
            model = timm_source.create(name, n_classes, pretrained=True, **kwargs)
        except (urllib.error.URLError, OSError, RuntimeError) as exc:
            raise WeightsDownloadError(
                f"Could not load timm's pretrained weights for backbone {name!r} "
                f"({type(exc).__name__}: {first_line(exc)}). Without internet access, pass "
                f"weights=None for random initialization, or weights='path/to/weights.pth': "
                f"a state dict saved with torch.save(timm.create_model("
                f"{timm_source.model_name(name)!r}, pretrained=True).state_dict(), path) on a "
                "machine that can download it.",
                name,
                weights,
            ) from exc
    config = timm_source.data_config(model)
    return model, tuple(config["mean"]), tuple(config["std"])


def _check_timm_weights(name, weights):
    if weights != "DEFAULT":
        raise ValueError(
            f"The 'weights' parameter must be 'DEFAULT' (timm's pretrained weights), None "
            f"(random initialization) or the path of a state-dict file for backbone={name!r}. "
            f"Got {weights!r} instead (a pretrained tag goes in the name: "
            "'timm/resnet18.a1_in1k')."
        )


def pretrained_origin(name, weights):
    """A key for the pretrained (not file) ``weights`` of backbone ``name``."""
    if timm_source.is_timm_name(name):
        return timm_source.pretrained_origin(name)
    return str(resolve_weights(name, weights))


def _build_own(name, weights, n_classes, **kwargs):
    """A backbone of :data:`BACKBONES`, randomly initialized or from a state-dict file."""
    build = BACKBONES[name].build
    if weights is None:
        return build(num_classes=n_classes, **kwargs)
    if not is_weights_file(weights):
        raise ValueError(_no_pretrained_message(name, weights))
    state = read_weights_file(weights)
    head_name, _ = find_head(build(num_classes=n_classes, **kwargs))
    head = state.get(f"{head_name}.weight")
    model = build(num_classes=n_classes if head is None else head.shape[0], **kwargs)
    return load_state(model, state, weights, n_classes, name)


def _no_pretrained_message(name, weights):
    return (
        f"The 'weights' parameter must be None (random initialization) or the path of a "
        f"state-dict file for backbone={name!r}, which has no pretrained weights. Got "
        f"{weights!r} instead."
    )


def _model_from_state(name, state, path, n_classes, **kwargs):
    """``name`` built with the weights of ``state``.

    The model is built on the meta device and the file's tensors are assigned,
    which skips the random initialization the file overwrites anyway (most of
    the build time of a ResNet34: a search builds one per fit). Where a model
    keeps tensors that are not in its state dict, it is built normally.
    """
    with torch.device("meta"):
        model = torchvision.models.get_model(name, weights=None, **kwargs)
    # assigned tensors keep their dtype: half-precision files become float32 as a copy would
    state = {
        k: v.float() if isinstance(v, torch.Tensor) and v.is_floating_point() else v
        for k, v in state.items()
    }
    model = load_state(model, state, path, n_classes, name, assign=True)
    if any(t.is_meta for t in (*model.parameters(), *model.buffers())):
        model = torchvision.models.get_model(name, weights=None, **kwargs)
        model = load_state(model, state, path, n_classes, name)
    return model


def _without_aux_heads(state):
    """``state`` without GoogLeNet's and Inception v3's auxiliary heads (``aux1.``,
    ``aux2.``, ``AuxLogits.``, also behind one wrapper prefix such as Lightning's)."""
    heads = {"aux1", "aux2", "AuxLogits"}
    return {key: value for key, value in state.items() if not heads & set(key.split(".")[:2])}


def _drop_aux_heads(model):
    """GoogLeNet and Inception v3 return a tuple while training when they keep their
    auxiliary heads; drop them, as torchvision's pretrained builds do by default."""
    if getattr(model, "aux_logits", False):
        model.aux_logits = False
        for head in ("aux1", "aux2", "AuxLogits"):
            if hasattr(model, head):
                setattr(model, head, None)
    return model


def check_backbone_name(name):
    """Refuse a name that is not torchvision's, timm's (``timm/...``) nor in :data:`BACKBONES`."""
    if name in BACKBONES:
        return
    if timm_source.is_timm_name(name):
        if timm_source.is_known(name):
            return
        available = timm_source.timm_names()
    else:
        available = classification_models()
        if name in available:
            return
    raise ValueError(f"Unknown backbone {name!r}.{_suggestions(name)}")


def _suggestions(name):
    """The nearest names of every source, and the other ways to give a network."""
    text = str(name)
    bare = text.removeprefix(timm_source.PREFIX)
    timm_all = timm_source.timm_names()
    own = difflib.get_close_matches(bare, [*classification_models(), *BACKBONES], n=3)
    timm_close = difflib.get_close_matches(timm_source.PREFIX + bare, timm_all, n=3)
    exact = [n for n in timm_all if n == timm_source.PREFIX + bare.split(".")[0]]
    if exact and "." in bare:  # a known architecture with an unknown pretrained tag
        tags = timm_source.pretrained_names(exact[0])
        exact += difflib.get_close_matches(timm_source.PREFIX + bare, tags, n=2, cutoff=0)
    first, second = (timm_close, own) if text.startswith(timm_source.PREFIX) else (own, timm_close)
    close = list(dict.fromkeys([*exact, *first, *second]))[:4]
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    timm_part = (
        "timm models with the prefix 'timm/' (timm.list_models())"
        if timm_all
        else f"timm models with the prefix 'timm/' (needs timm: {timm_source.INSTALL_HINT})"
    )
    return (
        f"{hint} backbone= takes a torchvision classification model "
        f"(torchvision.models.list_models()), {timm_part}, or {', '.join(map(repr, BACKBONES))}; "
        "for your own network pass module=YourNet (on the command line "
        "--module package.module:YourNet)."
    )


def check_backbone(name, weights, module_kwargs=None):
    """Check ``backbone``, ``weights`` and ``module__*`` before anything is built or read.

    Nothing is downloaded: a torchvision weights name is looked up in
    ``torchvision.models.get_model_weights(name)``, and the network is built on
    the meta device (no memory, no initialization) to check ``module_kwargs``.

    Raises
    ------
    ValueError
        An unknown backbone or weights name, or ``module__*`` the builder refuses;
        the message names the parameter.
    FileNotFoundError
        ``weights`` looks like a file that does not exist.
    """
    check_backbone_name(name)
    if weights is not None:
        if is_weights_file(weights):
            check_weights_file(weights)
        elif name in BACKBONES:
            raise ValueError(_no_pretrained_message(name, weights))
        elif timm_source.is_timm_name(name):
            _check_timm_weights(name, weights)
        else:
            resolve_weights(name, weights)
    items = tuple(sorted((module_kwargs or {}).items()))
    try:
        hash(items)
    except TypeError:  # unhashable builder arguments: check them without the memo
        _check_builder.__wrapped__(name, items)
    else:
        _check_builder(name, items)


@functools.lru_cache(maxsize=64)
def _check_builder(name, items):
    """Build ``name`` with ``items`` on the meta device (tens of ms), once per combination:
    a search checks the same backbone for every fit."""
    kwargs = dict(items)
    try:
        with torch.device("meta"):
            if name in BACKBONES:
                BACKBONES[name].build(num_classes=2, **kwargs)
            elif timm_source.is_timm_name(name):
                if not timm_source.model_name(name).startswith(("hf-hub:", "local-dir:")):
                    timm_source.create(name, 2, **kwargs)
            else:
                if name in _AUX_LOGIT_MODELS:
                    kwargs.setdefault("init_weights", False)
                torchvision.models.get_model(name, weights=None, **kwargs)
    except (TypeError, ValueError) as exc:
        given = ", ".join(f"module__{k}={v!r}" for k, v in items)
        raise ValueError(
            f"backbone={name!r} cannot be built with {given or 'its defaults'}: {exc}. "
            "module__* parameters go to the backbone's builder; check their names."
        ) from exc


WEIGHTS_FILE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors")


def is_weights_file(weights):
    """Whether ``weights`` names a file rather than torchvision weights.

    A path object, an existing file, a string with a path separator or one that
    ends like a weights file (:data:`WEIGHTS_FILE_SUFFIXES`); the estimator and the
    command line both decide with this function.
    """
    if isinstance(weights, os.PathLike):
        return True
    return isinstance(weights, str) and (
        os.path.isfile(weights) or os.sep in weights or weights.endswith(WEIGHTS_FILE_SUFFIXES)
    )


def resolve_weights(name, weights):
    """The torchvision weights enum member that ``weights`` names for ``name``."""
    enum = torchvision.models.get_model_weights(name)
    short = weights.split(".")[-1]
    if weights.count(".") == 1 and weights.split(".")[0] != enum.__name__:
        raise ValueError(
            f"The 'weights' parameter {weights!r} names weights of another model than "
            f"backbone {name!r} ({enum.__name__})."
        )
    if short == "DEFAULT":
        return enum.DEFAULT
    try:
        return enum[short]
    except KeyError:
        names = ["DEFAULT", *(member for member in enum.__members__ if member != "DEFAULT")]
        raise ValueError(
            f"The 'weights' parameter must be one of {names} for backbone {name!r}, None "
            f"(random initialization) or the path of a state-dict file. Got {weights!r} "
            "instead."
        ) from None


def check_weights_file(path, what="'weights' file"):
    """Raise unless ``path`` is a regular file (not a folder, a FIFO, a link loop).

    Raises
    ------
    FileNotFoundError
        Nothing is there; the message names ``what`` and the path.
    UnreadableFileError
        Something is there that is not a readable regular file (a ValueError).
    """
    check_regular(path, what=what)


def read_weights_file(path, model=None):
    """The backbone state dict stored in the file ``path``.

    Saved from this package's model or from ``nn.DataParallel``, its keys lose the
    ``backbone.`` or ``module.`` prefix. Given ``model`` (a user's network, whose own
    keys may start so), the file's keys as they are win where they fit it as well.
    """
    path = os.fspath(path)
    check_weights_file(path, what="weights file")
    raw = read_state_dict(path)
    stripped = _backbone_state(raw)
    if model is None or stripped is raw:
        return stripped
    expected = model.state_dict()
    fits = [sum(key in expected for key in state) for state in (raw, stripped)]
    return raw if fits[0] >= fits[1] else stripped


def load_state(model, state, path, n_classes, name, assign=False):
    """Load ``state`` (read from ``path``) into ``model`` and return it with an
    ``n_classes`` head: the file's own head if it has that size, else a new one.
    ``assign=True`` takes the tensors of ``state`` instead of copying them."""
    state = _without_wrapper_prefix(state, model)
    head_shape = _head_weight_shape(state, model)
    if head_shape is not None and head_shape[0] == n_classes:
        with torch.device("cpu"):
            model = replace_head(model, n_classes)
        _load_strict(model, state, os.fspath(path), name, assign)
        return model
    if head_shape is not None and head_shape != tuple(find_head(model)[1].weight.shape):
        with torch.device("cpu"):  # the file's head (another class count), replaced below
            model = replace_head(model, head_shape[0])
    _load_strict(model, state, os.fspath(path), name, assign)
    with torch.device("cpu"):
        return replace_head(model, n_classes)


def _without_wrapper_prefix(state, model):
    """``state`` without the one prefix every key of it has, where the model has none of
    its keys and has most of the stripped ones: a network saved inside a wrapper, such as
    PyTorch Lightning's ``self.model`` (``model.conv1.weight``)."""
    expected = model.state_dict()
    if not state or any(key in expected for key in state) or not all("." in k for k in state):
        return state
    if len({key.split(".", 1)[0] for key in state}) != 1:
        return state
    stripped = {key.split(".", 1)[1]: value for key, value in state.items()}
    return stripped if 2 * sum(key in expected for key in stripped) >= len(stripped) else state


def read_state_dict(path):
    # a regular file of a bounded size: a FIFO would block, a link to /dev/zero fill memory
    info = check_regular(path, what="weights file")
    if info.st_size > MAX_WEIGHTS_FILE_BYTES:
        raise ValueError(
            f"weights file {path!r} has {info.st_size} bytes, more than the "
            f"{MAX_WEIGHTS_FILE_BYTES} a state dict is read with; it is not read."
        )
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        try:
            return load_file(path, device="cpu")
        except Exception as exc:  # safetensors' own error type: an empty or cut file
            raise ValueError(
                f"weights file {path!r} is not a safetensors file that safetensors can read "
                f"({type(exc).__name__}: {first_line(exc)})."
            ) from exc
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" not in str(exc):  # not a pickle at all, or a cut one
            raise ValueError(
                f"weights file {path!r} is not a state dict that torch.load(weights_only=True) "
                f"can read ({_unpickling_detail(exc)})."
            ) from exc
        raise ValueError(
            f"weights file {path!r} holds Python objects besides tensors, which "
            "torch.load(weights_only=True) does not unpickle (unpickling runs code). If you "
            "trust the file, load it yourself and save its state dict: "
            "torch.save(model.state_dict(), path)."
        ) from exc
    except Exception as exc:
        raise ValueError(
            f"weights file {path!r} is not a state dict that torch.load(weights_only=True) "
            f"can read ({type(exc).__name__}: {first_line(exc)})."
        ) from exc
    state = _unwrapped(state)
    if not isinstance(state, dict):
        raise ValueError(
            f"weights file {path!r} holds a {type(state).__name__}, not a state dict; save "
            "it with torch.save(model.state_dict(), path)."
        )
    others = [key for key, value in state.items() if not isinstance(value, torch.Tensor)]
    if others:
        shown = ", ".join(repr(key) for key in others[:3])
        more = f" and {len(others) - 3} more" if len(others) > 3 else ""
        raise ValueError(
            f"weights file {path!r} is not a state dict of tensors: {len(others)} of its "
            f"entries are not tensors ({shown}{more}; a module's get_extra_state() is not "
            "supported); save it with torch.save(model.state_dict(), path)."
        )
    return state


def _unpickling_detail(exc):
    """What torch's weights-only unpickler found, without its advice to unpickle
    with ``weights_only=False`` (which runs the file's code)."""
    text = str(exc)
    marker = "WeightsUnpickler error:"
    if marker in text:
        detail = text.split(marker, 1)[1].strip().splitlines()
        return detail[0].strip() if detail else "an unreadable pickle"
    return f"{type(exc).__name__}: {first_line(exc)}"


# Keys under which training checkpoints keep the model's state dict, in the order timm's
# ``load_checkpoint`` reads them (its exponential moving average first), then the key of
# PyTorch's tutorials.
CHECKPOINT_KEYS = ("state_dict_ema", "model_ema", "state_dict", "model", "model_state_dict")


def _unwrapped(state):
    """The state dict inside a training checkpoint (``{"model": ..., "optimizer": ...}``),
    or ``state`` itself."""
    if isinstance(state, dict):
        for key in CHECKPOINT_KEYS:
            inner = state.get(key)
            if (
                isinstance(inner, dict)
                and inner
                and all(isinstance(value, torch.Tensor) for value in inner.values())
            ):
                return inner
    return state


def _backbone_state(state):
    """The backbone's entries of a state dict saved from a backbone, from this
    package's model (``save_params``: ``backbone.`` prefix plus ``mean``/``std``)
    or from ``nn.DataParallel`` (``module.`` prefix)."""
    if all(key.startswith("module.") for key in state):
        state = {key.removeprefix("module."): value for key, value in state.items()}
    if any(key.startswith("backbone.") for key in state):
        state = {
            key.removeprefix("backbone."): value
            for key, value in state.items()
            if key.startswith("backbone.")
        }
    return state


def _load_strict(model, state, path, name, assign=False):
    problems = state_mismatches(model.state_dict(), state)
    if problems:
        raise ValueError(f"weights file {path!r} does not fit backbone {name!r}: {problems}.")
    try:
        model.load_state_dict(state, strict=True, assign=assign)
    except RuntimeError as exc:
        raise ValueError(
            f"weights file {path!r} does not fit backbone {name!r}: {first_line(exc)}"
        ) from exc


def _shape(value):
    """A tensor's shape; None for a module's extra state (any object)."""
    return tuple(value.shape) if isinstance(value, torch.Tensor) else None


def state_mismatches(expected, state, shown=3):
    """A short description of how ``state`` differs from ``expected`` (a model's state
    dict): the first ``shown`` missing keys, unexpected keys and shape mismatches, with
    counts; "" when they fit."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k} {_shape(state[k])} in the file, {_shape(expected[k])} in the model"
        for k in expected
        if k in state and _shape(state[k]) != _shape(expected[k])
    ]
    parts = []
    for what, items in (("missing", missing), ("unexpected", unexpected), ("shape", shapes)):
        if items:
            more = f" and {len(items) - shown} more" if len(items) > shown else ""
            parts.append(f"{len(items)} {what} ({'; '.join(items[:shown])}{more})")
    return ", ".join(parts)


def _head_weight_shape(state, model):
    head_name, _ = find_head(model)
    weight = state.get(f"{head_name}.weight")
    return None if weight is None else tuple(weight.shape)


def find_head(model):
    """Name and module of the last Linear (or 1x1 Conv2d) layer: the classifier head."""
    head = None
    for module_name, module in model.named_modules():
        if isinstance(module, nn.Linear) or (
            isinstance(module, nn.Conv2d) and module.kernel_size == (1, 1)
        ):
            head = (module_name, module)
    if head is None:
        raise ValueError(f"Cannot find a classifier head in {type(model).__name__}.")
    return head


def replace_head(model, n_classes):
    """Replace the classifier head of ``model`` with a new ``n_classes`` layer."""
    head_name, head = find_head(model)
    if isinstance(head, nn.Linear):
        new_head = nn.Linear(head.in_features, n_classes)
    else:
        new_head = nn.Conv2d(head.in_channels, n_classes, kernel_size=1)
    _set_submodule(model, head_name, new_head)
    return model


def _set_submodule(model, name, module):
    parent_name, _, attribute = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attribute, module)


def is_pretrained(weights, module=None):
    """Whether the network starts from learned weights, as ``compare`` decides it.

    torchvision or timm weights and a weights file are pretrained, ``weights=None`` is
    not; your own ``module`` is, unless it (its class) sets ``pretrained = False``, as
    :class:`~imbal_estimators.SmallCNN` does, and no weights file is loaded into it.
    """
    if module is not None:
        return is_weights_file(weights) or bool(getattr(module, "pretrained", True))
    return weights is not None


def describe_network(backbone="resnet34", weights="DEFAULT", module=None):
    """The network as the user gave it, in a few words (for the plan and the report)."""
    if module is not None:
        cls = module if isinstance(module, type) else type(module)
        name = f"{cls.__module__}:{cls.__qualname__}"
        return f"module {name}" + (" (weights file)" if is_weights_file(weights) else "")
    if weights is None:
        return f"{backbone} (random init)"
    if is_weights_file(weights):
        return f"{backbone} (weights file {os.path.basename(os.fspath(weights))})"
    return f"{backbone} ({weights} weights)"
