"""CUDA out-of-memory errors during ``fit``: halve the batch size, or say what to try.

With ``auto_batch_size=True`` an out-of-memory error during the first epoch
makes the estimator rebuild its network with half the batch size and start
again, down to one image per batch; :func:`smaller_batch_size` decides. In
every other case the error is raised again with a message naming the batch size
that failed and the settings that use less memory.
"""

import gc

import torch

from ..utils.warn import warn


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


def train_with_memory_retry(net, train, rebuild):
    """Run ``train()``; with ``auto_batch_size``, again at half the batch size after an
    out-of-memory error in the first epoch, on a rebuilt network.

    Parameters
    ----------
    net : ImageImbalanceClassifier
        Its ``batch_size_`` is the size tried, and ends as the size that fitted.
    train : callable
        One training run (skorch's ``partial_fit`` of ``net``).
    rebuild : bool
        Whether this fit built a new network (only such a fit may start again).
    """
    first_batch_size = net.batch_size_
    while True:
        try:
            train()
            break
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            failed = net.batch_size_ if net.batch_size_ != -1 else len(net.train_indices_)
            can_retry = rebuild and len(net.history) <= 1 and not net.resumed_from_epoch_
            net.batch_size_ = smaller_batch_size(net, failed, exc, can_retry)
        # outside the except block: the traceback no longer holds the batch's tensors
        release_memory(net)
        torch.manual_seed(net.torch_seed_)
        net.initialize()
    if net.batch_size_ != first_batch_size:
        warn(
            f"batch_size={first_batch_size} ran out of accelerator memory; trained with "
            f"batch_size={net.batch_size_}, which fits (auto_batch_size=True). Pass "
            f"batch_size={net.batch_size_} to skip the search next time."
        )
