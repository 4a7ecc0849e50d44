"""Run the fits of a comparison: one function, any joblib backend, one GPU per worker.

:func:`run_fits` is the single place where ``compare`` trains models. Each task
is a full estimator parameter set plus the rows of one fold; the fit's seeds
come from the parameters (``random_state``), never from the worker, and every
fit runs with the same number of torch threads, so the results are identical
whatever ``n_jobs`` and backend (``joblib.parallel_config(backend="dask")``,
``"ray"``, ``"loky"``...) run them.

Backends that cannot hand results back one by one (Ray's joblib backend) run
the tasks in rounds of one task per worker. A worker process that dies (the
out-of-memory killer, ``kill -9``: loky's ``TerminatedWorkerError``) costs the
fits it was running: the unfinished tasks run again on fresh workers.

With several CUDA devices and ``n_jobs > 1`` each worker process claims a slot
(an exclusive lock file, released when the process ends) and fits on
``cuda:<slot>``: one GPU per worker.
"""

import itertools
import os
import tempfile
import time
import traceback
from dataclasses import dataclass, field

import numpy as np
import torch
from joblib import Parallel, delayed, effective_n_jobs
from joblib.externals.loky.process_executor import TerminatedWorkerError

from ..estimator.classifier import ImageImbalanceClassifier
from ..estimator.loss_params import criterion_spelling
from ..training.callbacks import history_key
from ..training.interrupt import stop_on_signals


@dataclass(frozen=True)
class FitTask:
    """One fit of one configuration on one fold.

    Attributes
    ----------
    index : int
        Position in the task list.
    name : str
        The configuration's name.
    params : dict
        Every ``ImageImbalanceClassifier`` parameter of the fit.
    train, test : ndarray of int
        Rows of the comparison's images.
    fold : int
        Fold number (over all repeats).
    cost : float
        Estimated seconds (for the progress bar).
    """

    index: int
    name: str
    params: dict
    train: np.ndarray
    test: np.ndarray
    fold: int
    cost: float = 1.0


@dataclass
class FitResult:
    """What one fit gives back (the model itself stays in the worker)."""

    index: int
    proba: np.ndarray | None = None  # test rows x classes
    decision: np.ndarray | None = None  # clf.decide(proba) when it is not argmax
    threshold: float | None = None  # clf.threshold_
    history: dict = field(default_factory=dict)
    seconds: float = 0.0
    n_train: int = 0
    n_valid: int = 0
    error: str | None = None


def run_fits(
    tasks, paths, labels, *, n_jobs=1, threads=None, slots_dir=None, max_worker_deaths=2, log=None
):
    """Fit every task; yield :class:`FitResult` s as they finish (any order).

    Parameters
    ----------
    tasks : sequence of FitTask
    paths, labels : ndarray of shape (n,)
    n_jobs : int, default=1
        joblib workers (``-1``: one per core); the backend is joblib's current
        one (``loky`` unless ``joblib.parallel_config`` says otherwise).
    threads : int, optional
        torch threads of every fit (default: this process's current count).
    slots_dir : str, optional
        Where workers claim their GPU slot (a temporary directory by default).
    max_worker_deaths : int, default=2
        Dead worker processes survived: the unfinished tasks run again each
        time; one more death raises ``RuntimeError``.
    log : callable, optional
        Told (one line) when a worker died and its tasks run again.
    """
    threads = threads or torch.get_num_threads()
    n_cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    claim = n_jobs != 1 and n_cuda > 1
    slots_dir = slots_dir or (tempfile.mkdtemp(prefix="imbal-slots-") if claim else None)
    if n_jobs == 1:  # in this process: no pickling, the memory cache is shared
        for task in tasks:
            yield fit_task(task, paths, labels, threads, None, 0)
        return
    finished = set()
    deaths = 0
    while True:
        # lazy: joblib reads tasks a few ahead of the workers, and ``tasks`` may leave some
        # out meanwhile (compare's budget drops configurations)
        calls = (
            delayed(fit_task)(task, paths, labels, threads, slots_dir if claim else None, n_cuda)
            for task in tasks
            if task.index not in finished
        )
        try:
            for result in _results(calls, n_jobs):
                finished.add(result.index)
                yield result
            return
        except TerminatedWorkerError as exc:
            deaths += 1
            if deaths > max_worker_deaths:
                raise RuntimeError(
                    f"Worker processes died {deaths} times ({exc.__class__.__name__}: the "
                    "system killed them, often for lack of memory); every finished fit is "
                    "kept. Run again with fewer --n-jobs, smaller --batch-size or --image-size."
                ) from exc
            if log is not None:
                log(
                    f"A worker process died ({len(finished)} fit(s) finished); running the "
                    "unfinished ones again on fresh workers."
                )


def _results(calls, n_jobs):
    """Results of the delayed ``calls`` as they finish; in rounds of one call per worker
    where the backend cannot yield them one by one (Ray's joblib backend)."""
    try:
        parallel = Parallel(n_jobs=n_jobs, return_as="generator_unordered")
    except ValueError:  # "Backend ... does not support return_as=generator_unordered"
        parallel = None
    if parallel is not None:
        yield from parallel(calls)
        return
    size = max(effective_n_jobs(n_jobs), 1)
    calls = iter(calls)
    while chunk := list(itertools.islice(calls, size)):
        yield from Parallel(n_jobs=n_jobs)(chunk)


def fit_task(task, paths, labels, threads, slots_dir, n_cuda):
    """Fit one task (in a worker or in this process) and score its test rows."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    params = dict(task.params)
    if slots_dir is not None:
        params["device"] = worker_device(
            params.get("device", "auto"), claim_slot(slots_dir), n_cuda
        )
    result = FitResult(task.index)
    start = time.perf_counter()
    try:
        clf = ImageImbalanceClassifier(**criterion_spelling(params))
        with stop_on_signals():  # in a loky worker: its Ctrl-C stops the fit, not scores it
            clf.fit(paths[task.train], labels[task.train])
        result.proba = clf.predict_proba(paths[task.test])
        if params.get("threshold") is not None or params.get("posthoc_tau"):
            # the model's own rule on these probabilities: one pass over the test images
            result.decision = np.asarray(clf.decide(result.proba))
        result.threshold = clf.threshold_
        result.history = training_history(clf)
        result.n_train = len(clf.train_indices_)
        result.n_valid = len(clf.valid_indices_)
    except Exception as exc:  # a configuration that cannot fit is reported, not fatal
        last = traceback.extract_tb(exc.__traceback__)[-1]
        result.error = f"{type(exc).__name__}: {exc} ({os.path.basename(last.filename)})"
    finally:
        torch.set_num_threads(previous)
    result.seconds = time.perf_counter() - start
    return result


def training_history(clf):
    """The per-epoch curves of a fitted estimator, for the training-curve plot."""
    monitor = history_key(clf.monitor)
    epochs = [
        {
            "epoch": entry["epoch"],
            "train_loss": entry.get("train_loss"),
            "valid_loss": entry.get("valid_loss"),
            "valid_score": entry.get(monitor),
        }
        for entry in clf.history
    ]
    return {"epochs": epochs, "best_epoch": getattr(clf, "best_epoch_", None), "monitor": monitor}


def worker_device(device, slot, n_cuda):
    """The device of the worker in ``slot``: ``cuda:<slot mod n_cuda>`` for "auto"/"cuda".

    An explicit device (``"cpu"``, ``"cuda:1"``) is kept; so is any device when
    there are fewer than two GPUs.
    """
    if n_cuda < 2 or device not in ("auto", "cuda"):
        return device
    return f"cuda:{slot % n_cuda}"


_SLOT: dict[
    object, object
] = {}  # slots_dir -> (slot, open lock file): held for the life of the worker process


def claim_slot(slots_dir, limit=1024):
    """The lowest free slot number under ``slots_dir``, held by this process from now on.

    A slot is an exclusive ``flock`` on ``slot-<i>.lock``; the lock goes with the
    process, so a dead worker's slot is free again. Where ``fcntl`` does not
    exist (Windows) the slot is the process id.
    """
    if slots_dir in _SLOT:
        return _SLOT[slots_dir][0]
    try:
        import fcntl
    except ImportError:
        return os.getpid()
    for slot in range(limit):
        file = open(os.path.join(slots_dir, f"slot-{slot}.lock"), "a")  # noqa: SIM115
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            file.close()
            continue
        _SLOT[slots_dir] = (slot, file)
        return slot
    raise RuntimeError(f"No free worker slot under {slots_dir!r} (all {limit} held).")
