"""``predict``'s resize and centre crop as tensor operations that export (ONNX, pt2, TorchScript).

``predict`` brings a decoded image to the network's square with Pillow
(:meth:`imbal_estimators.data.geometry.Geometry.apply`): a square resize with the
bilinear filter, or torchvision's ``resize`` of the shorter side (both sides for
timm's "squash") and ``center_crop``, which call ``PIL.Image.resize`` with the
network's filter. The functions here compute the same pixels from a uint8 tensor:

* Pillow's convolution filters (box, bilinear, hamming, bicubic, lanczos) are two
  matrix products with Pillow's fixed-point coefficients, each rounded to 8 bits
  (``libImaging/Resample.c``); products of 8-bit values and 22-bit coefficients are
  exact in float64, so the result is Pillow's pixel for pixel;
* the centre crop keeps the shapes static: only the ``crop`` rows and columns of
  the resized image that the crop keeps are computed (each output pixel of Pillow's
  resize depends on its own row of coefficients only), at the offsets torchvision's
  ``center_crop`` takes, from the resized size torchvision's ``resize`` computes.
  No intermediate image of a data-dependent size is built;
* Pillow's nearest-neighbour resize is one pass that picks the source pixel under each
  output pixel's centre, its position summed up step by step as Pillow sums it.

The graph's ``sin`` and ``cos`` (hamming, lanczos) come from the engine that runs it:
onnxruntime's can round a coefficient differently, and a pixel then by one grey level.
"""

import math

import numpy as np
import torch

__all__ = ["geometry_resize", "pillow_resize"]

# Pillow's fixed-point resampling: 8-bit results, two guard bits, in a 32-bit int.
_PRECISION_BITS = 32 - 8 - 2
# Pillow's hamming window constants are C floats (0.54f, 0.46f), used in double arithmetic
_HAMMING = (float(np.float32(0.54)), float(np.float32(0.46)))


def _sinc(x):
    px = x * math.pi
    safe = torch.where(x == 0, torch.ones_like(px), px)
    return torch.where(x == 0, torch.ones_like(x), torch.sin(safe) / safe)


def _box(x):
    return ((x > -0.5) & (x <= 0.5)).to(x.dtype)


def _bilinear(x):
    return torch.clamp(1.0 - x.abs(), min=0.0)


def _hamming(x):
    a = x.abs()
    pa = a * math.pi
    safe = torch.where(a == 0, torch.ones_like(pa), pa)
    window = torch.sin(safe) / safe * (_HAMMING[0] + _HAMMING[1] * torch.cos(safe))
    inside = torch.where(a >= 1.0, torch.zeros_like(a), window)
    return torch.where(a == 0, torch.ones_like(a), inside)


def _bicubic(x, a=-0.5):
    x = x.abs()
    inner = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    outer = (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return torch.where(x < 1.0, inner, torch.where(x < 2.0, outer, torch.zeros_like(x)))


def _lanczos(x):
    inside = (x >= -3.0) & (x < 3.0)
    return torch.where(inside, _sinc(x) * _sinc(x / 3.0), torch.zeros_like(x))


#: interpolation name -> (Pillow's filter support, the filter); "nearest" is not a filter
_FILTERS = {
    "box": (0.5, _box),
    "bilinear": (1.0, _bilinear),
    "hamming": (1.0, _hamming),
    "bicubic": (2.0, _bicubic),
    "lanczos": (3.0, _lanczos),
}


def _as_float(value):
    """``value`` (an int, a symbolic size or a tensor) as a float64 tensor of shape (1,)."""
    if isinstance(value, torch.Tensor):
        return value.to(torch.float64).reshape(1)
    return torch.full((1,), value, dtype=torch.float64)


def _scale(n_in, n_out):
    """``(size_in, in / out)``, as Pillow computes them (in float64)."""
    size_in = _as_float(n_in)
    return size_in, size_in / _as_float(n_out)


def _coefficients(n_in, n_out, positions, interpolation):
    """Pillow's fixed-point coefficients from ``n_in`` to ``n_out`` pixels, for the output
    pixels ``positions`` (float64 indices), as a dense ``(len(positions), n_in)`` matrix.

    ``precompute_coeffs`` and ``normalize_coeffs_8bpc``: the filter widened by the
    downscaling factor (antialiasing), each row normalized to sum 1 over its window,
    then scaled by ``2**22`` and rounded half away from zero.
    """
    support, kernel = _FILTERS[interpolation]
    x = torch.arange(n_in, dtype=torch.float64).unsqueeze(0)
    size_in, scale = _scale(n_in, n_out)
    filter_scale = torch.clamp(scale, min=1.0)
    support = support * filter_scale
    center = (positions.unsqueeze(1) + 0.5) * scale
    # Pillow truncates toward zero and clamps at 0: the same as floor and clamp here
    first = torch.clamp(torch.floor(center - support + 0.5), min=0.0)
    last = torch.minimum(torch.floor(center + support + 0.5), size_in)
    weights = kernel((x - center + 0.5) * (1.0 / filter_scale))
    weights = torch.where((x >= first) & (x < last), weights, torch.zeros_like(weights))
    weights = weights / weights.sum(dim=1, keepdim=True)
    scaled = weights.abs() * float(1 << _PRECISION_BITS)
    return torch.sign(weights) * torch.floor(scaled + 0.5)


def _fixed_point_round(values):
    """Pillow's ``clip8``: add a half, shift right by the precision bits, clip to 0..255."""
    half, one = float(1 << (_PRECISION_BITS - 1)), float(1 << _PRECISION_BITS)
    return torch.clamp(torch.floor((values + half) / one), 0.0, 255.0)


def _positions(count, offset=None):
    positions = torch.arange(count, dtype=torch.float64)
    return positions if offset is None else positions + offset.reshape(1)


def _separable(x, rows, columns, height, width, out_height, out_width):
    """Pillow's two passes: ``rows`` (out, H) and ``columns`` (out, W) coefficient matrices.

    Pillow 13 runs the horizontal pass first, except where the height shrinks by more
    than twice the number of pixels the width shrinks by (a rule measured on Pillow 13
    for every filter and for non-square outputs). Both orders are computed and the rule
    picks one as a tensor condition, so that the graph keeps the input size dynamic.
    """
    horizontal_first = _fixed_point_round(rows @ _fixed_point_round(x @ columns.T))
    vertical_first = _fixed_point_round(_fixed_point_round(rows @ x) @ columns.T)
    vertical = (height > out_height) & (height - out_height > 2 * (width - out_width))
    return torch.where(vertical, vertical_first, horizontal_first)


def pillow_resize(images, size):
    """Resize uint8 images to ``size x size`` as ``PIL.Image.resize(..., BILINEAR)`` does.

    An image already ``size x size`` passes unchanged (each pass is then the identity).

    Parameters
    ----------
    images : Tensor of shape (N, 3, H, W), uint8
    size : int

    Returns
    -------
    Tensor of shape (N, 3, size, size), float64 with integer values in [0, 255]
    """
    x = images.to(torch.float64)
    height, width = _as_float(x.shape[-2]), _as_float(x.shape[-1])
    rows = _coefficients(x.shape[-2], size, _positions(size), "bilinear")
    columns = _coefficients(x.shape[-1], size, _positions(size), "bilinear")
    return _separable(x, rows, columns, height, width, size, size)


def resized_size(height, width, geometry):
    """The ``(height, width)`` torchvision's ``resize`` gives an image before the centre
    crop, as float64 tensors: the shorter side to ``geometry.resize`` and the longer
    side ``int(resize * long / short)``, or both sides with ``keep_ratio=False``."""
    side = torch.full((1,), float(geometry.resize), dtype=torch.float64)
    if not geometry.keep_ratio:
        return side, side
    # torchvision: with w <= h the width is the short side (a square takes this branch)
    portrait = width <= height
    new_height = torch.where(portrait, torch.floor(side * height / width), side)
    new_width = torch.where(portrait, side, torch.floor(side * width / height))
    return new_height, new_width


def geometry_resize(images, geometry):
    """``images`` brought to the network's ``crop x crop`` square as ``Geometry.apply`` does.

    A square resize is :func:`pillow_resize`. A resize and centre crop computes the
    ``crop`` rows and columns of the resized image at torchvision's ``center_crop``
    offsets (``round((resized - crop) / 2)``, halves to even, as Python rounds).

    Parameters
    ----------
    images : Tensor of shape (N, 3, H, W), uint8
    geometry : imbal_estimators.data.geometry.Geometry

    Returns
    -------
    Tensor of shape (N, 3, crop, crop), float64 with integer values in [0, 255]
    """
    if geometry.is_square_resize:
        return pillow_resize(images, geometry.crop)
    x = images.to(torch.float64)
    height, width = _as_float(x.shape[-2]), _as_float(x.shape[-1])
    new_height, new_width = resized_size(height, width, geometry)
    crop = geometry.crop
    top = torch.round((new_height - crop) / 2.0)
    left = torch.round((new_width - crop) / 2.0)
    if geometry.interpolation == "nearest":
        return _nearest(x, height, width, new_height, new_width, top, left, geometry)
    rows = _coefficients(x.shape[-2], new_height, _positions(crop, top), geometry.interpolation)
    columns = _coefficients(x.shape[-1], new_width, _positions(crop, left), geometry.interpolation)
    return _separable(x, rows, columns, height, width, new_height, new_width)


def _nearest(x, height, width, new_height, new_width, top, left, geometry):
    """Pillow's nearest neighbour (``ImagingScaleAffine``): one pass, no rounding, the
    source pixel under each output pixel's centre, as Pillow finds it."""
    rows = _nearest_sources(x.shape[-2], height, new_height, top, geometry)
    columns = _nearest_sources(x.shape[-1], width, new_width, left, geometry)
    return x.index_select(-2, rows).index_select(-1, columns)


def _nearest_sources(n_in, size_in, n_out, offset, geometry):
    """The source index of the output pixels ``offset .. offset + crop - 1``.

    Pillow starts at half a step and adds the step ``in / out`` pixel by pixel, and a
    position on a pixel border then often lands a bit below it; a running sum
    (``cumsum``, sequential in float64) repeats those additions exactly. It runs over
    ``n_in * resize`` steps, at least the ``n_out`` the resize has.
    """
    step = size_in / n_out
    steps = torch.zeros(n_in, geometry.resize, dtype=torch.float64).reshape(-1) + step
    positions = torch.cumsum(torch.cat([step * 0.5, steps[1:]]), dim=0)
    wanted = _positions(geometry.crop, offset).to(torch.int64)
    sources = torch.floor(positions.index_select(0, wanted))
    return torch.minimum(sources, size_in - 1).to(torch.int64)
