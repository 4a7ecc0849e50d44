"""The ``image_size`` parameter: which resize, crop and interpolation the network's input gets.

``image_size="auto"`` (the default) takes the network's own evaluation geometry
(:class:`~imbal_estimators.data.geometry.Geometry`):

* a torchvision backbone with torchvision weights: the weights' ``transforms()``
  (``resize_size``, ``crop_size``, ``interpolation``); with a weights file, those of
  the architecture's ``DEFAULT`` weights (the file is in the model's own key names,
  most often those weights saved); with ``weights=None``, a 224 px square resize;
* a ``timm/`` backbone: its ``pretrained_cfg`` (``input_size``, ``crop_pct``,
  ``crop_mode``, ``interpolation``), resized to ``floor(input_size / crop_pct)`` and
  centre-cropped as timm's ``create_transform`` does;
* ``"small_cnn"`` and your own ``module``: a 224 px square resize, as before.

An int ``image_size`` wins over the network: a square resize to that size, as in
every version before (and in every model saved by them).
"""

import functools
import math

import torch

from ..data.geometry import INTERPOLATIONS, Geometry
from . import timm_source
from .backbones import BACKBONES, is_weights_file, resolve_weights

#: the square side of ``image_size="auto"`` where the network has no geometry of its own
DEFAULT_IMAGE_SIZE = 224


def network_geometry(backbone, weights, module=None, image_size="auto", module_kwargs=None):
    """The geometry ``image_size`` gives this network (see the module's docstring).

    Nothing is downloaded: torchvision's transforms come with the weights enum, and a
    timm model is built on the meta device to read its ``pretrained_cfg``.

    Returns
    -------
    Geometry
    """
    if image_size != "auto":
        return Geometry(int(image_size))
    square = Geometry(DEFAULT_IMAGE_SIZE)
    if module is not None or not isinstance(backbone, str) or backbone in BACKBONES:
        return square
    if timm_source.is_timm_name(backbone):
        return _timm_geometry(backbone, module_kwargs or {})
    if weights is None:
        return square
    name = "DEFAULT" if is_weights_file(weights) else weights
    return _torchvision_geometry(resolve_weights(backbone, name))


def check_input_size(backbone, image_size, module_kwargs=None):
    """Raise where the network takes one input size only and ``image_size`` is another.

    A vision transformer's position embedding is fixed: timm models whose
    ``pretrained_cfg`` says ``fixed_input_size`` and torchvision's
    ``VisionTransformer`` refuse other sizes only at their first forward pass.
    Built on the meta device: nothing is downloaded or allocated.

    Raises
    ------
    ValueError
        Naming ``image_size``, the backbone and the size it takes.
    """
    if image_size == "auto" or not isinstance(backbone, str) or backbone in BACKBONES:
        return
    kwargs = module_kwargs or {}
    side = _fixed_side(backbone, kwargs) if kwargs else _fixed_side_cached(backbone)
    if side is not None and int(image_size) != side:
        raise ValueError(
            f"backbone {backbone!r} takes {side} x {side} px inputs only (its layers are "
            f"built for that size), so image_size={image_size!r} cannot be used; leave "
            f"image_size='auto' (--image-size auto) or set {side}."
        )


def _fixed_side(backbone, module_kwargs):
    """The one input side ``backbone`` takes, or None where it takes any."""
    if timm_source.is_timm_name(backbone):
        with torch.device("meta"):
            model = timm_source.create(backbone, 2, **module_kwargs)
        return _timm_fixed_side(model, module_kwargs)
    import torchvision

    builder = torchvision.models.get_model_builder(backbone)
    if builder.__module__ != torchvision.models.vision_transformer.__name__:
        return None  # built only where it may be a VisionTransformer
    with torch.device("meta"):
        model = builder(weights=None, **module_kwargs)
    vit = isinstance(model, torchvision.models.VisionTransformer)
    return int(model.image_size) if vit else None


def _timm_fixed_side(model, module_kwargs=None):
    """The one input side a built timm model takes (None: any): the size it was built
    for (``img_size=`` may differ from ``pretrained_cfg``, which timm leaves as it is)."""
    if getattr(model, "dynamic_img_size", False):  # timm's ViT(dynamic_img_size=True)
        return None
    config = getattr(model, "pretrained_cfg", None) or {}
    if not config.get("fixed_input_size"):
        return None
    built = getattr(getattr(model, "patch_embed", None), "img_size", None)
    if built is None:
        built = (module_kwargs or {}).get("img_size")
    if built is not None:
        return int(built[-1] if isinstance(built, (tuple, list)) else built)
    return int(config["input_size"][-1]) if "input_size" in config else None


@functools.lru_cache(maxsize=64)
def _fixed_side_cached(backbone):
    """:func:`_fixed_side` without module arguments, once per name (a fit checks it)."""
    return _fixed_side(backbone, {})


def _torchvision_geometry(weights_enum):
    transforms = weights_enum.transforms()
    crop = _side(getattr(transforms, "crop_size", None))
    resize = _side(getattr(transforms, "resize_size", None))
    interpolation = getattr(transforms, "interpolation", None)
    if crop is None:
        return Geometry(DEFAULT_IMAGE_SIZE)
    name = getattr(interpolation, "value", "bilinear")
    return Geometry(crop, max(resize or crop, crop), name)


def _timm_geometry(backbone, module_kwargs):
    with torch.device("meta"):
        model = timm_source.create(backbone, 2, **module_kwargs)
    config = timm_source.data_config(model)
    crop = _timm_fixed_side(model, module_kwargs) or int(config["input_size"][-1])
    crop_pct = float(config.get("crop_pct") or 0.875)
    interpolation = config.get("interpolation") or "bilinear"
    if interpolation not in INTERPOLATIONS:
        interpolation = "bilinear"  # timm's "random" is a training-time choice
    resize = max(math.floor(crop / crop_pct), crop)
    keep_ratio = config.get("crop_mode", "center") != "squash"
    return Geometry(crop, resize, interpolation, keep_ratio)


def _side(value):
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return int(value[0]) if value else None
    return int(value)
