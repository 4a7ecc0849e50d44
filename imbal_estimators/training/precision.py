"""Mixed precision, memory format and data-loading settings for the device a fit runs on.

:func:`autocast_dtype` resolves the estimator's ``precision``; ``"auto"`` is
bfloat16 on CUDA and on CPUs that compute bfloat16 natively
(:func:`cpu_has_native_bf16`), float32 elsewhere. :func:`set_precision` gives it
to the network (:func:`set_precision`): its forward pass runs under
autocast, on channels-last batches where they pay, and returns float32 logits, so
every loss is computed in float32. float16 (CUDA only) trains with the
``GradScaler`` of :func:`grad_scaler`, made with the network (``grad_scaler_``).
"""

import os
from contextlib import nullcontext
from functools import cache

import torch

from ..models.backbones import ImageModel
from ..utils._compat import cpu_private_bf16_queries

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
# CPU features with native bfloat16 arithmetic (torch's capability names).
_NATIVE_BF16 = ("amx_bf16", "avx512_bf16")


@cache
def cpu_has_native_bf16():
    """Whether this CPU computes bfloat16 natively (AMX-BF16 or AVX512-BF16).

    Asks torch's own CPU capability query, ``torch.cpu.get_capabilities()``
    (public in recent torch). Older torch releases only tell through the
    private ``torch.cpu._is_amx_tile_supported`` and
    ``torch.cpu._is_avx512_bf16_supported``; those are tried next, and where
    neither exists the answer is False (float32 is always correct, only
    slower). Tests monkeypatch this function to take either branch.

    Returns
    -------
    bool
    """
    get_capabilities = getattr(torch.cpu, "get_capabilities", None)
    if get_capabilities is not None:
        capabilities = get_capabilities()
        return any(bool(capabilities.get(name, False)) for name in _NATIVE_BF16)
    return cpu_private_bf16_queries()


def autocast_dtype(precision, device):
    """The autocast dtype for ``precision`` on ``device``, or ``None`` for float32.

    ``"auto"`` is bfloat16 on a CUDA device that supports it (float16 with loss
    scaling on older ones), bfloat16 on a CPU with native bfloat16
    (:func:`cpu_has_native_bf16`; about twice the float32 speed for a ResNet
    there) and float32 on other CPUs, where bfloat16 is emulated and slower.

    Raises
    ------
    ValueError
        For ``"fp16"`` on the CPU, naming the parameter.
    """
    device = torch.device(device)
    if precision == "fp32":
        return None
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "cpu" and cpu_has_native_bf16():
            return torch.bfloat16
        return None
    if precision == "fp16" and device.type != "cuda":
        raise ValueError(
            f"precision='fp16' needs a CUDA device (device is {device}); use "
            "precision='bf16' or 'fp32' on the CPU."
        )
    return _DTYPES[precision]


def uses_channels_last(device, dtype):
    """Whether convolutions run in channels-last format on ``device`` with ``dtype``.

    Always on CUDA. On the CPU only with bfloat16, where oneDNN's bfloat16
    convolutions want it (a resnet34 training step at 128 px: 1.2x faster than
    bfloat16 in the default format); in float32 it does not pay there.
    """
    device = torch.device(device)
    return device.type == "cuda" or (device.type == "cpu" and dtype == torch.bfloat16)


def to_memory_format(module, precision, device):
    """``module`` in channels-last format where :func:`uses_channels_last` says so."""
    if uses_channels_last(device, autocast_dtype(precision, device)):
        return module.to(memory_format=torch.channels_last)
    return module


def set_precision(module, precision, device):
    """Give the image model(s) in ``module`` the autocast dtype and batch memory format of
    ``precision`` on ``device`` (a compiled network's own model included); returns ``module``.

    Cached frozen-backbone features (a float ``(N, D)`` matrix) still go through the
    linear head in float32: autocast would only round them to bfloat16.
    """
    dtype = autocast_dtype(precision, device)
    for part in module.modules():
        if isinstance(part, ImageModel):
            part.autocast_dtype = dtype
            part.channels_last = uses_channels_last(device, dtype)
    return module


def autocast(device, dtype):
    """A ``torch.autocast`` context for ``dtype`` on ``device`` (a no-op for ``None``)."""
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def loader_defaults(device, holds_images=True):
    """``DataLoader`` keyword defaults for ``device``.

    On CUDA, images are decoded and augmented by worker processes into pinned
    memory, so the host-to-device copy overlaps with compute. Workers are not
    persistent: the per-epoch resampler changes the dataset's rows between
    epochs, which persistent workers would not see. On the CPU the model needs
    the cores more than the loader does, and the pre-flight scan has already
    filled the decoded-image cache, so loading stays in the main process.
    """
    if torch.device(device).type != "cuda":
        return {}
    workers = min(8, max(1, (os.cpu_count() or 2) - 1)) if holds_images else 0
    return {"pin_memory": True, "num_workers": workers}


def grad_scaler(precision, device, frozen_backbone):
    """A ``GradScaler`` where ``precision`` trains in float16 on ``device``, else None.

    float16 gradients underflow without loss scaling; bfloat16 has float32's range.
    A frozen backbone's head trains on float32 features and needs none.
    """
    if autocast_dtype(precision, device) != torch.float16 or frozen_backbone:
        return None
    return torch.amp.GradScaler(torch.device(device).type)
