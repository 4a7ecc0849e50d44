"""The ``normalize`` parameter: which mean and std the network's input gets.

Images reach the network as ``(x / 255 - mean) / std``. ``normalize="auto"`` takes
the network's own: torchvision weights' ``transforms()``, a timm model's
``pretrained_cfg``, ImageNet's for everything else (``"small_cnn"``, a weights file
of a torchvision architecture, your own ``module``). The other values override it.
"""

import math
from numbers import Real

import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: named normalizations: name -> (mean, std)
NORMALIZATIONS = {
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
    "inception": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),  # inputs in [-1, 1]
}
#: ``normalize=None``: the network gets [0, 1] inputs and normalizes them itself
IDENTITY = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
NORMALIZE_HELP = (
    "auto (the network's own: torchvision weights' transforms, timm's pretrained_cfg, "
    "else ImageNet's), imagenet, inception ([-1, 1]), none ([0, 1]: the network "
    "normalizes itself) or 'mean1,mean2,mean3,std1,std2,std3'"
)


def check_normalize(normalize):
    """Refuse a ``normalize`` value that :func:`resolve_normalize` cannot use."""
    if normalize is None or normalize == "auto" or _is_named(normalize):
        return
    if isinstance(normalize, str) or not _is_pair(normalize):
        raise ValueError(
            "The 'normalize' parameter must be 'auto', 'imagenet', 'inception', None or a "
            f"(mean, std) pair of 3 finite numbers each (std > 0). Got {normalize!r} instead."
        )


def _is_named(value):
    return isinstance(value, str) and value in NORMALIZATIONS


def _is_pair(value):
    try:
        mean, std = value
        mean, std = list(mean), list(std)
    except (TypeError, ValueError):
        return False
    values = (*mean, *std)
    numbers = all(isinstance(v, Real) and not isinstance(v, bool) for v in values)
    finite = numbers and all(math.isfinite(v) for v in values)
    return len(mean) == len(std) == 3 and finite and all(v > 0 for v in std)


def resolve_normalize(normalize, mean, std):
    """The ``(mean, std)`` that ``normalize`` gives a network whose own is ``mean, std``."""
    check_normalize(normalize)
    if normalize == "auto":
        return tuple(map(float, mean)), tuple(map(float, std))
    if normalize is None:
        return IDENTITY
    if _is_named(normalize):
        return NORMALIZATIONS[normalize]
    return tuple(map(float, normalize[0])), tuple(map(float, normalize[1]))


def normalize_name(mean, std):
    """``"imagenet"``, ``"inception"``, ``None`` or the pair: the value that gives them."""
    pair = (tuple(float(v) for v in mean), tuple(float(v) for v in std))
    for name, value in NORMALIZATIONS.items():
        if all(
            abs(a - b) < 1e-6
            for a, b in zip((*value[0], *value[1]), (*pair[0], *pair[1]), strict=True)
        ):
            return name
    if pair == IDENTITY:
        return None
    return pair


def apply_normalize(model, normalize):
    """Set the ``mean`` and ``std`` buffers of ``model`` (an image model) as ``normalize``
    says; ``"auto"`` keeps the network's own, which the model was built with."""
    if normalize == "auto":
        return model
    mean, std = resolve_normalize(
        normalize, model.mean.flatten().tolist(), model.std.flatten().tolist()
    )
    with torch.no_grad():
        model.mean.copy_(torch.tensor(mean, dtype=model.mean.dtype).view_as(model.mean))
        model.std.copy_(torch.tensor(std, dtype=model.std.dtype).view_as(model.std))
    return model


def normalization_origin(backbone, weights, module, normalize):
    """Where the applied mean and std come from, in words (for ``config.json``)."""
    if normalize != "auto":
        return f"normalize={normalize!r}"
    if module is not None:
        return "ImageNet's (the default for your own module)"
    if isinstance(backbone, str) and backbone.startswith("timm/"):
        return "the timm model's pretrained_cfg"
    from .backbones import is_weights_file  # backbones imports this module

    if weights is None or is_weights_file(weights):
        return "ImageNet's (the default without torchvision weights)"
    return "the torchvision weights' transforms()"
