"""The ``device`` parameter: ``"auto"`` prefers CUDA; other values are checked."""

import torch


def resolve_device_name(device):
    """``"auto"`` -> ``"cuda"`` or ``"cpu"``; any other value unchanged (never raises)."""
    if isinstance(device, str) and device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def resolve_device(device):
    """The torch device string for the ``device`` parameter; ``"auto"`` prefers CUDA.

    Raises ``ValueError`` for a device that does not exist here.
    """
    device = resolve_device_name(device)
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"The 'device' parameter must be 'auto', 'cpu', 'cuda' or 'cuda:N'; got {device!r}."
        ) from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} was requested but CUDA is not available "
                "(torch.cuda.is_available() is False). Use device='auto' (CUDA when "
                "present, else CPU) or device='cpu'."
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r} was requested but only {torch.cuda.device_count()} "
                "CUDA device(s) exist."
            )
    return str(device)
