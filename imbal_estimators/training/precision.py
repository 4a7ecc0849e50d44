"""Mixed precision, memory format and data-loading settings for the device a fit runs on.

:func:`autocast_dtype` resolves the estimator's ``precision``; ``"auto"`` is
bfloat16 on CUDA and on CPUs that compute bfloat16 natively
(:func:`cpu_has_native_bf16`), float32 elsewhere. :class:`MixedPrecisionMixin`
holds the estimator's two skorch hooks that apply it: ``infer`` (autocast around
the forward pass, channels-last batches) and ``train_step`` (float16 loss scaling).
"""

import os
from contextlib import nullcontext
from functools import cache

import torch
from skorch.dataset import unpack_data
from skorch.utils import TeeGenerator

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


class MixedPrecisionMixin:
    """The estimator's skorch hooks for ``precision``: autocast, channels-last, loss scaling.

    Placed before ``NeuralNetClassifier`` in the bases. The forward pass runs
    under :func:`autocast` and its logits are cast to float32, so every loss
    is computed in float32. Cached frozen-backbone features (a float
    ``(N, D)`` matrix) go through the linear head in float32: autocast would
    only round them to bfloat16, and a head this small costs nothing either
    way. float16 (CUDA) trains with the ``GradScaler`` of :func:`grad_scaler`,
    made with the network (``grad_scaler_``).
    """

    def _autocast_dtype(self):
        return autocast_dtype(self.precision, self.device)

    def _autocast(self):
        """The autocast context of this estimator's forward pass."""
        return autocast(self.device, self._autocast_dtype())

    def _channels_last(self):
        return uses_channels_last(self.device, self._autocast_dtype())

    def infer(self, x, **fit_params):
        if not isinstance(x, torch.Tensor):
            return super().infer(x, **fit_params)
        on_cuda = torch.device(self.device).type == "cuda"
        x = x.to(self.device, non_blocking=on_cuda)  # pinned batches copy asynchronously
        if x.dim() == 2 and x.is_floating_point():  # cached features: the head, in float32
            return self.module_(x, **fit_params).float()
        if x.dim() == 4 and self._channels_last():
            x = x.contiguous(memory_format=torch.channels_last)
        with self._autocast():
            logits = self.module_(x, **fit_params)
        return logits.float()

    def train_step(self, batch, **fit_params):
        scaler = getattr(self, "grad_scaler_", None)
        if scaler is None:
            return super().train_step(batch, **fit_params)
        # GradScaler.step takes no closure, so this is skorch's train_step unrolled
        # for the one optimizer this estimator creates.
        accumulator = self.get_train_step_accumulator()
        self.optimizer_.zero_grad()
        accumulator.store_step(self._scaled_backward(scaler, batch, fit_params))
        scaler.unscale_(self.optimizer_)  # callbacks such as gradient clipping see true gradients
        self.notify(
            "on_grad_computed",
            named_parameters=TeeGenerator(self.get_all_learnable_params()),
            batch=batch,
            training=True,
        )
        scaler.step(self.optimizer_)
        scaler.update()
        return accumulator.get_step()

    def _scaled_backward(self, scaler, batch, fit_params):
        """skorch's ``train_step_single`` with the loss scaled by ``scaler`` for the
        backward pass."""
        self.module_.train(True)
        self.criterion_.train(True)
        Xi, yi = unpack_data(batch)
        y_pred = self.infer(Xi, **fit_params)
        loss = self.get_loss(y_pred, yi, X=Xi, training=True)
        scaler.scale(loss).backward()
        return {"loss": loss, "y_pred": y_pred}
