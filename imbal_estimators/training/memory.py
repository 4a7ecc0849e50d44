"""CUDA out-of-memory errors during ``fit``: halve the batch size, or say what to try.

With ``auto_batch_size=True`` an out-of-memory error during the first epoch
makes the estimator rebuild its network with half the batch size and start
again, down to one image per batch; :func:`smaller_batch_size` decides. In
every other case the error is raised again with a message naming the batch size
that failed and the settings that use less memory.
"""

import gc

import torch


def is_out_of_memory(exc):
    """Whether ``exc`` is torch's CUDA out-of-memory error."""
    return isinstance(exc, torch.cuda.OutOfMemoryError)


def out_of_memory_message(estimator, batch_size, reason=None):
    """What failed and what to try, for an out-of-memory error at ``batch_size``."""
    tries = []
    if batch_size > 1:
        tries.append(f"batch_size={max(batch_size // 2, 1)}")
    if not estimator.auto_batch_size:
        tries.append("auto_batch_size=True (halves the batch size until it fits)")
    if "precision" in estimator.get_params(deep=False):
        tries.append('precision="bf16"')
    tries.append(f"a smaller image_size (now {estimator.image_size})")
    message = (
        f"{type(estimator).__name__} ran out of accelerator memory while training with "
        f"batch_size={batch_size} (image_size={estimator.image_size}, "
        f"device={estimator.device!r})."
    )
    if reason:
        message += f" {reason}"
    return message + " Try " + ", ".join(tries) + "."


def smaller_batch_size(estimator, batch_size, exc, can_retry):
    """The batch size to retry with after ``exc``; raise when there is none.

    Parameters
    ----------
    estimator : ImageImbalanceClassifier
    batch_size : int
        The batch size that ran out of memory (``-1`` already resolved).
    exc : torch.cuda.OutOfMemoryError
    can_retry : bool
        False once the first epoch is over, or when the fit continues a
        previous one (rebuilding the network would lose it).

    Raises
    ------
    torch.cuda.OutOfMemoryError
        With a message naming ``batch_size`` and what to try.
    """
    reason = None
    if estimator.auto_batch_size:
        if not can_retry:
            reason = (
                "auto_batch_size only adapts the batch size during the first epoch of a "
                "fit that builds a new network."
            )
        elif batch_size <= 1:
            reason = "Even one image per batch does not fit."
        else:
            return batch_size // 2
    raise torch.cuda.OutOfMemoryError(out_of_memory_message(estimator, batch_size, reason)) from exc


def release_memory(net):
    """Drop the network's tensors so that a smaller retry starts from free memory."""
    for name in ("module_", "criterion_", "optimizer_"):
        net.__dict__.pop(name, None)
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
