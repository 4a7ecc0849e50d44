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


def out_of_memory_message(settings, batch_size, reason=None):
    """What failed and what to try, for an out-of-memory error at ``batch_size``.

    ``settings`` is the fit's :class:`~imbal_estimators.training.settings.FitSettings`.
    """
    runtime = settings.runtime
    tries = []
    if batch_size > 1:
        tries.append(f"batch_size={max(batch_size // 2, 1)}")
    if not runtime.auto_batch_size:
        tries.append("auto_batch_size=True (halves the batch size until it fits)")
    tries.append('precision="bf16"')
    side = settings.data.geometry.crop  # what the network gets, also for image_size="auto"
    tries.append(f"a smaller image_size (now {side})")
    message = (
        f"{settings.name} ran out of accelerator memory while training with "
        f"batch_size={batch_size} ({side} x {side} px images, "
        f"device={runtime.device!r})."
    )
    if reason:
        message += f" {reason}"
    return message + " Try " + ", ".join(tries) + "."


def smaller_batch_size(settings, batch_size, exc, can_retry):
    """The batch size to retry with after ``exc``; raise when there is none.

    Parameters
    ----------
    settings : FitSettings
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
    if settings.runtime.auto_batch_size:
        if not can_retry:
            reason = (
                "auto_batch_size only adapts the batch size during the first epoch of a "
                "fit that builds a new network."
            )
        elif batch_size <= 1:
            reason = "Even one image per batch does not fit."
        else:
            return batch_size // 2
    raise torch.cuda.OutOfMemoryError(out_of_memory_message(settings, batch_size, reason)) from exc


def release_memory():
    """Collect the dropped network's tensors so that a smaller retry starts from free
    memory (the caller drops its references first)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def train_with_memory_retry(attempt, restart, restartable, batch_size, settings, n_train):
    """Run ``attempt(batch_size)``; with ``auto_batch_size``, again at half the batch size
    after an out-of-memory error in the first epoch, on a rebuilt network.

    Parameters
    ----------
    attempt : callable
        ``attempt(batch_size)`` trains once with that batch size.
    restart : callable
        ``restart()`` drops the network's tensors and builds it again.
    restartable : callable
        ``restartable()``, asked after an out-of-memory error: whether the
        network may be rebuilt (the error came in the first epoch of a fit that
        built a new network).
    batch_size : int
        The batch size of the first attempt (``-1``: the whole training part).
    settings : FitSettings
    n_train : int
        Images in the training part (what ``-1`` means).

    Returns
    -------
    int
        The batch size that fitted (``batch_size`` unless halved).
    """
    first_batch_size = batch_size
    while True:
        try:
            attempt(batch_size)
            break
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            failed = batch_size if batch_size != -1 else n_train
            batch_size = smaller_batch_size(settings, failed, exc, restartable())
        # outside the except block: the traceback no longer holds the batch's tensors
        restart()
    if batch_size != first_batch_size:
        warn(
            f"batch_size={first_batch_size} ran out of accelerator memory; trained with "
            f"batch_size={batch_size}, which fits (auto_batch_size=True). Pass "
            f"batch_size={batch_size} to skip the search next time."
        )
    return batch_size
