"""CPU thread counts for work on a frozen backbone's features.

A linear head's ``(batch, D) x (D, C)`` products are far below the size where
intra-op threads pay. On a machine whose cores are busy, every parallel op
instead waits for a descheduled thread: a 512 x 2 AdamW step measured 0.35 ms
on one thread and 5 ms on two with the machine's two cores loaded by other
work. The same holds for the BLAS of NumPy and SciPy (the head solver's L-BFGS-B
calls it at every iteration): with OpenBLAS's default threads on a loaded 2-core
machine, compare's heads took 8 times as long (190 s against 24 s,
``benchmarks/frozen_screen_speed.py --quick``). :func:`head_threads` runs
head-only work on one thread, torch's and the BLAS's;
:func:`body_threads` gives the threads back to a feature pass of the body
inside it. The count is process-wide, so both are used only around the
estimator's own head-only loops.
"""

import threading
from contextlib import contextmanager

import torch
from threadpoolctl import ThreadpoolController

# Nesting depth of head_threads and the count it replaced. Counted rather than
# stacked, so blocks that end out of order (suspended generators) still restore it.
_state = {"depth": 0, "saved": 1}
# The same for the BLAS limit, kept by the main thread only: OpenBLAS takes its thread
# count from the thread that controls it, and a restore from another thread is ignored,
# which left it at one thread for the rest of the process after fits in worker threads.
_blas_state = {"depth": 0, "limiter": None}
_lock = threading.Lock()
# the ThreadpoolController, made at the first use (it inspects the libraries)
_controller: list[ThreadpoolController] = []


@contextmanager
def head_threads(enabled=True):
    """One intra-op thread inside the block (when ``enabled``); the count is restored after.

    In the main thread the BLAS libraries get one thread too (worker threads leave
    them as they are).
    """
    if not enabled:
        yield
        return
    main = threading.current_thread() is threading.main_thread()
    with _lock:
        if _state["depth"] == 0:
            _state["saved"] = torch.get_num_threads()
            torch.set_num_threads(1)
        _state["depth"] += 1
        if main:
            if _blas_state["depth"] == 0:
                _blas_state["limiter"] = _blas().limit(limits=1, user_api="blas")
            _blas_state["depth"] += 1
    try:
        yield
    finally:
        with _lock:
            _state["depth"] -= 1
            if _state["depth"] == 0:
                torch.set_num_threads(_state["saved"])
            if main:
                _blas_state["depth"] -= 1
                if _blas_state["depth"] == 0:
                    _blas_state["limiter"].restore_original_limits()


def _blas():
    """The BLAS libraries loaded, SciPy's among them (its L-BFGS-B calls its own)."""
    if not _controller:
        import scipy.optimize  # noqa: F401  (loads SciPy's BLAS before the controller looks)

        _controller.append(ThreadpoolController().select(user_api="blas"))
    return _controller[0]


@contextmanager
def body_threads():
    """Inside :func:`head_threads`, the thread count it replaced (elsewhere a no-op)."""
    with _lock:
        inside = _state["depth"] > 0 and _state["saved"] > 1
        if inside:
            torch.set_num_threads(_state["saved"])
    try:
        yield
    finally:
        if inside:
            with _lock:
                if _state["depth"] > 0:
                    torch.set_num_threads(1)
