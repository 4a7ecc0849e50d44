"""Mixed precision and data-loading settings for the device a fit runs on."""

import os
from contextlib import nullcontext

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_dtype(precision, device):
    """The autocast dtype for ``precision`` on ``device``, or ``None`` for float32.

    ``"auto"`` is bfloat16 on a CUDA device that supports it (float16 with loss
    scaling on older ones) and float32 on the CPU, where autocast rarely pays.

    Raises
    ------
    ValueError
        For ``"fp16"`` on the CPU, naming the parameter.
    """
    device = torch.device(device)
    if precision == "fp32":
        return None
    if precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if precision == "fp16" and device.type != "cuda":
        raise ValueError(
            f"precision='fp16' needs a CUDA device (device is {device}); use "
            "precision='bf16' or 'fp32' on the CPU."
        )
    return _DTYPES[precision]


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
