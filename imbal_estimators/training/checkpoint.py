"""Atomic, checksummed per-epoch checkpoints and resuming a fit from them (``checkpoint_dir=``).

After every epoch :class:`EpochCheckpoint` writes one file per data set,
``<checkpoint_dir>/checkpoint-<key>.pt``, where ``key`` is a digest of the classes, the
image paths and their labels: inside cross-validation every fold has its own. It holds the
module, optimizer, float16 loss-scaler and learning-rate scheduler states, the states of
the best-model keeper, of early stopping and of every other callback (their attributes
that are numbers, strings, arrays, tensors or containers of them), the history, the epoch
number, the seeds (the sampler and the torch RNG are reseeded per epoch from them, so they
replay exactly), the RNG states, the number of CPU threads torch trained with, and the size
and modification time of every image.

A CPU fit's numbers depend on torch's thread count (reductions are split per thread): a
resumed fit trains with the count of the run it resumes, and gives the process its own
count back when it ends.

The file is written next to its final name, flushed and fsynced, then renamed over the old
one (``os.replace``), so a kill at any moment leaves either the previous or the new
checkpoint. It carries the SHA-256 of its content (:mod:`imbal_estimators.io.checksummed`),
checked before anything is resumed: a damaged checkpoint is refused with
:class:`CheckpointError` naming the file. Every failed write (a full disk included) is a
:class:`CheckpointError`. One process at a time fits into a checkpoint
(``checkpoint-<key>.lock``, :mod:`imbal_estimators.io.lock`).

A later ``fit`` with the same directory and data and a compatible configuration (same
split and training parameters, unchanged image files) continues after the last completed
epoch up to ``max_epochs`` in total; anything else is refused with an error that names
what differs. The payload is read with ``torch.load(..., weights_only=True)``, which
rebuilds tensors and plain containers only.
"""

import contextlib
import glob
import hashlib
import io
import json
import logging
import os
import tempfile
import weakref

import numpy as np
import torch
from skorch.callbacks import Callback, EarlyStopping, LRScheduler, PrintLog, ProgressBar

from ..io.checksummed import ChecksumError, read_checksummed, write_checksummed
from ..io.jsonable import describe, plain_json
from ..io.lock import FileLock, LockedError, describe_holder
from ..utils.log import note
from .callbacks import KeepBestModel

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "checkpoint-"
FORMAT_VERSION = 2

# Parameters that may change between the interrupted fit and the one that resumes
# it: they do not change what is learned (or, for max_epochs, only how long).
RESUME_IGNORED_PARAMS = frozenset(
    {
        "max_epochs",
        "verbose",
        "checkpoint_dir",
        "on_bad_image",
        "auto_batch_size",
        "device",
        "cache",
        "callbacks",
        "warm_start",
    }
)
_IGNORED_SUFFIXES = ("__num_workers", "__pin_memory", "__persistent_workers", "__prefetch_factor")
_LISTED_FILES = 5


class CheckpointError(OSError):
    """A checkpoint cannot be written or read; the message names the file."""


class CheckpointLockedError(CheckpointError):
    """Another process (or another fit of this process) trains into the same checkpoint."""


class CheckpointMismatchError(ValueError):
    """``checkpoint_dir`` holds a checkpoint of this data made by another training run."""


def _digest(*arrays):
    sha = hashlib.sha256()
    for array in arrays:
        data = json.dumps(plain_json(np.asarray(array).tolist())).encode()
        sha.update(len(data).to_bytes(8, "little"))
        sha.update(data)
    return sha.hexdigest()


def params_fingerprint(params):
    """The parameters (``get_params(deep=False)``) that shape training, each as a
    comparable text."""
    return {
        key: describe(value)
        for key, value in sorted(params.items())
        if key not in RESUME_IGNORED_PARAMS
        and not key.startswith("callbacks__")
        and not key.endswith(_IGNORED_SUFFIXES)
    }


def data_fingerprint(paths, y_encoded, classes):
    """Hashes of the classes and of the paths with their labels."""
    return {
        "classes": describe(np.asarray(classes).tolist()),
        "data": _digest([str(p) for p in paths], y_encoded),
    }


def split_fingerprint(train_rows, valid_rows):
    return {"split": _digest(train_rows, valid_rows)}


def checkpoint_key(fingerprint):
    """The 16 hex digits that name the checkpoint of this data (classes, paths, labels)."""
    text = json.dumps([fingerprint["classes"], fingerprint["data"]])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def image_stats(paths):
    """``(n, 2)`` int64: size and modification time (ns) of each file; -1 where it is gone."""
    stats = np.full((len(paths), 2), -1, dtype=np.int64)
    for i, path in enumerate(paths):
        with contextlib.suppress(OSError):
            status = os.stat(path)
            stats[i] = (status.st_size, status.st_mtime_ns)
    return stats


class CheckpointPlan:
    """What ``fit`` found in ``checkpoint_dir`` and what the run must match.

    Parameters
    ----------
    directory : str
    fingerprint : dict
        Parameter, class, data and split fingerprints of this fit.
    images : ndarray of shape (n_images, 2)
        :func:`image_stats` of the paths.
    state : dict or None
        The checkpoint to resume from (checked compatible), or None.
    lock : FileLock or None
        Held from :func:`prepare_checkpoint` until :meth:`release`.
    """

    def __init__(self, directory, fingerprint, images=None, state=None, lock=None):
        self.directory = directory
        self.fingerprint = fingerprint
        self.images = images
        self.state = state
        self.lock = lock
        self.training = False  # from the start of training (attach_checkpoint) to release()
        self.threads = None  # the process's torch thread count while a resume replaced it

    @property
    def key(self):
        return checkpoint_key(self.fingerprint)

    @property
    def path(self):
        return os.path.join(self.directory, f"{CHECKPOINT_PREFIX}{self.key}.pt")

    @property
    def lock_path(self):
        return os.path.join(self.directory, f"{CHECKPOINT_PREFIX}{self.key}.lock")

    @property
    def epoch(self):
        """The completed epochs of the run being resumed, or None."""
        return None if self.state is None else int(self.state["epoch"])

    @property
    def batch_size(self):
        """The batch size the run being resumed trained with last, or None."""
        return None if self.state is None else int(self.state["batch_size"])

    @property
    def seeds(self):
        """The (torch, split, sampling) seeds of the run being resumed, or None."""
        return None if self.state is None else tuple(int(s) for s in self.state["seeds"])

    def check_split(self, train_rows, valid_rows):
        """Add the split fingerprint; refuse a checkpoint made with other rows."""
        self.fingerprint.update(split_fingerprint(train_rows, valid_rows))
        if self.state is not None:
            _check_same(self.path, json.loads(self.state["fingerprint"]), self.fingerprint)

    def use_threads(self, count):
        """Train with ``count`` torch threads until :meth:`release`."""
        if count is None or count == torch.get_num_threads():
            return
        if self.threads is None:
            self.threads = torch.get_num_threads()
        torch.set_num_threads(count)

    def release(self):
        """Give up the lock of the checkpoint (the file stays) and the thread count."""
        self.training = False
        if self.threads is not None:
            torch.set_num_threads(self.threads)
            self.threads = None
        if self.lock is not None:
            self.lock.release()


# The plans of this process that hold a lock, by lock path. A fit that failed before
# training began (a bad image, a refused checkpoint) may still hold one, kept alive by
# the traceback; the next fit of this process on the same data takes it over, unless
# that fit is training.
_HELD: weakref.WeakValueDictionary[object, object] = weakref.WeakValueDictionary()


def prepare_checkpoint(directory, runtime, paths, y_encoded, classes, resume=True):
    """Create ``directory`` (checking it can be written), lock this data's checkpoint in it
    and read the checkpoint to resume.

    ``runtime`` is the fit's :class:`~imbal_estimators.training.settings.RuntimeSettings`
    (its ``params`` are fingerprinted, its ``max_epochs`` bounds a resume).

    Raises
    ------
    CheckpointError
        The directory cannot be created or written, or its checkpoint cannot be read
        or fails its checksum.
    CheckpointLockedError
        Another process fits into the same checkpoint; the message names it.
    CheckpointMismatchError
        The checkpoint belongs to a fit with other parameters, or the image files
        changed since it was written.
    """
    directory = os.fspath(directory)
    try:
        os.makedirs(directory, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory) as probe:
            probe.write(b"probe")
            probe.flush()
    except OSError as exc:
        raise CheckpointError(
            f"checkpoint_dir {directory!r} cannot be written: {exc}. Pass a writable "
            "directory or checkpoint_dir=None."
        ) from exc
    fingerprint = {"params": params_fingerprint(runtime.params or {})}
    fingerprint.update(data_fingerprint(paths, y_encoded, classes))
    plan = CheckpointPlan(directory, fingerprint, image_stats(paths))
    plan.lock = FileLock(plan.lock_path)
    held = _HELD.get(os.path.realpath(plan.lock_path))
    if held is not None and not held.training:
        held.release()
    try:
        plan.lock.acquire()
    except LockedError as exc:
        raise CheckpointLockedError(
            f"checkpoint_dir {directory!r}: the checkpoint {plan.path!r} of this data is in "
            f"use by {describe_holder(exc.holder)}, which is fitting into it. Wait for it, "
            "or use another checkpoint_dir."
        ) from None
    except OSError as exc:
        raise CheckpointError(f"Cannot lock {plan.lock_path!r}: {exc}") from exc
    _HELD[os.path.realpath(plan.lock_path)] = plan
    try:
        _read_plan_state(plan, runtime.max_epochs, resume, paths)
    except BaseException:
        plan.release()
        raise
    return plan


def _read_plan_state(plan, max_epochs, resume, paths):
    # Temporary files of a write that was killed (this data's only; we hold its lock).
    pattern = glob.escape(plan.path) + ".*.tmp"
    for stale in glob.glob(pattern):
        with contextlib.suppress(OSError):
            os.unlink(stale)
    if not resume or not os.path.exists(plan.path):
        return
    state = read_checkpoint(plan.path)
    saved = json.loads(state["fingerprint"])
    current = {k: v for k, v in plan.fingerprint.items() if k != "split"}
    _check_same(plan.path, saved, current)
    _check_images(plan.path, state.get("images"), plan.images, paths)
    epoch = int(state["epoch"])
    if epoch > max_epochs:
        raise CheckpointMismatchError(
            f"The checkpoint {plan.path!r} has {epoch} completed epochs, more than "
            f"max_epochs={max_epochs}; resuming counts epochs in total. Raise "
            "max_epochs, or use another checkpoint_dir."
        )
    plan.state = state


def _check_images(path, saved, current, paths):
    """Refuse to resume on image files whose size or modification time changed."""
    if saved is None or current is None:
        return
    saved = saved.numpy()
    changed = np.flatnonzero(np.any(saved != current, axis=1))
    if not len(changed):
        return
    names = [f"X[{i}] {str(paths[i])!r}" for i in changed[:_LISTED_FILES]]
    more = f" and {len(changed) - _LISTED_FILES} more" if len(changed) > _LISTED_FILES else ""
    raise CheckpointMismatchError(
        f"The checkpoint {path!r} was written on other image files: {len(changed)} file(s) "
        f"changed since (size or modification time): {', '.join(names)}{more}. Resuming "
        "would mix training on two versions of the data; delete the checkpoint to start over."
    )


def _check_same(path, saved, current):
    differences = []
    for key in ("classes", "data", "split"):
        if key in saved and key in current and saved[key] != current[key]:
            differences.append(
                {
                    "classes": f"classes (checkpoint {saved[key]}, now {current[key]})",
                    "data": "data (the image paths or their labels differ)",
                    "split": "the train/validation split (other rows, e.g. other skipped images)",
                }[key]
            )
    saved_params, params = saved.get("params", {}), current.get("params", {})
    for name in sorted(set(saved_params) | set(params)):
        before, now = saved_params.get(name, "(not set)"), params.get(name, "(not set)")
        if before != now:
            differences.append(f"{name} (checkpoint {before}, now {now})")
    if differences:
        raise CheckpointMismatchError(
            f"The checkpoint {path!r} belongs to another training run; it differs in: "
            + "; ".join(differences)
            + ". Use another checkpoint_dir, or delete the file to start over."
        )


def read_checkpoint(path):
    """Load a checkpoint file onto the CPU after checking its SHA-256.

    Raises
    ------
    CheckpointError
        The file cannot be read, fails its checksum, or is not a checkpoint of this
        version; the message names it.
    """
    try:
        payload = read_checksummed(path)
    except ChecksumError as exc:
        raise CheckpointError(
            f"The checkpoint {path!r} is damaged or not a checkpoint of this version of "
            f"imbal_estimators: {exc}. It was not resumed; delete it to start over."
        ) from None
    except OSError as exc:
        raise CheckpointError(f"Cannot read the checkpoint {path!r}: {exc}") from exc
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"Cannot read the checkpoint {path!r} ({type(exc).__name__}: {exc}): it is not "
            "a checkpoint of imbal_estimators. Delete it to start over."
        ) from exc
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path!r} is not a checkpoint of this version of imbal_estimators "
            f"(format_version {FORMAT_VERSION}). Delete it to start over."
        )
    return state


def write_checkpoint(path, state):
    """Write ``state`` to ``path`` atomically with its checksum.

    Raises
    ------
    CheckpointError
        For any failure (a full disk, a missing directory, a tensor torch cannot save),
        naming the file; the previous checkpoint stays as it was.
    """
    try:
        write_checksummed(path, lambda file: torch.save(state, file))
    except (OSError, RuntimeError) as exc:
        raise CheckpointError(f"Cannot write the checkpoint {path!r}: {exc}") from exc


# -- what a checkpoint holds ----------------------------------------------------------


# Callbacks that only display progress: their state is not worth a resume.
_DISPLAY_ONLY = (PrintLog, ProgressBar)


def _callback_state(callback):
    if isinstance(callback, KeepBestModel):
        return {
            "best_score": float(callback.best_score_),
            "best_epoch": callback.best_epoch_,
            "best_state": callback.best_state_,
        }
    if isinstance(callback, EarlyStopping):
        return {
            "misses": int(callback.misses_),
            "dynamic_threshold": float(callback.dynamic_threshold_),
            "best_epoch": int(callback.best_epoch_),
            "best_model_weights": callback.best_model_weights_,
        }
    if isinstance(callback, LRScheduler):
        scheduler = callback.lr_scheduler_
        return {
            "scheduler": None if scheduler is None else scheduler.state_dict(),
            "batch_idx": int(callback.batch_idx_),
        }
    if hasattr(callback, "state_dict") and hasattr(callback, "load_state_dict"):
        return callback.state_dict()
    if isinstance(callback, (_DISPLAY_ONLY, EpochCheckpoint)):
        return None
    return {"attributes": attribute_state(callback)}


def attribute_state(callback):
    """The attributes of a callback that are not constructor parameters, where they are
    plain values (numbers, strings, numpy arrays, tensors, lists, tuples and dicts of
    them): a user's callback that counts or remembers resumes where it was."""
    try:
        params = set(callback.get_params(deep=False)) if hasattr(callback, "get_params") else set()
    except TypeError:
        params = set()
    state = {}
    for name, value in vars(callback).items():
        if name in params or name.startswith("__"):
            continue
        encoded = _plain_value(value)
        if encoded is not _NOT_PLAIN:
            state[name] = encoded
    return state


_NOT_PLAIN = object()
_NUMPY_TAG = "__numpy__"


def _plain_value(value, depth=0):
    """``value`` as torch.load(weights_only=True) reads it back, or ``_NOT_PLAIN``."""
    if depth > 20:
        return _NOT_PLAIN
    if isinstance(value, np.generic):  # before float: np.float64 is a float
        return value.item() if value.dtype.kind in "biuf" else _NOT_PLAIN
    if value is None or isinstance(value, (bool, int, float, str)):
        return type(value)(value) if value is not None else None
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return {_NUMPY_TAG: torch.from_numpy(np.array(value))}
    if isinstance(value, (list, tuple)):
        items = [_plain_value(item, depth + 1) for item in value]
        if any(item is _NOT_PLAIN for item in items):
            return _NOT_PLAIN
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict) and all(isinstance(k, (str, int)) for k in value):
        items = {k: _plain_value(item, depth + 1) for k, item in value.items()}
        if any(item is _NOT_PLAIN for item in items.values()):
            return _NOT_PLAIN
        return items
    return _NOT_PLAIN


def _from_plain(value):
    if isinstance(value, dict):
        if set(value) == {_NUMPY_TAG}:
            return value[_NUMPY_TAG].numpy()
        return {k: _from_plain(item) for k, item in value.items()}
    if isinstance(value, list):
        return [_from_plain(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_from_plain(item) for item in value)
    return value


def _restore_callback(callback, state):
    if isinstance(callback, KeepBestModel):
        callback.best_score_ = state["best_score"]
        callback.best_epoch_ = state["best_epoch"]
        callback.best_state_ = state["best_state"]
    elif isinstance(callback, EarlyStopping):
        callback.misses_ = state["misses"]
        callback.dynamic_threshold_ = state["dynamic_threshold"]
        callback.best_epoch_ = state["best_epoch"]
        callback.best_model_weights_ = state["best_model_weights"]
    elif isinstance(callback, LRScheduler):
        if state["scheduler"] is not None and callback.lr_scheduler_ is not None:
            callback.lr_scheduler_.load_state_dict(state["scheduler"])
        callback.batch_idx_ = state["batch_idx"]
    elif hasattr(callback, "load_state_dict"):
        callback.load_state_dict(state)
    elif "attributes" in state:
        for name, value in state["attributes"].items():
            setattr(callback, name, _from_plain(value))


def _rng_states():
    keys, pos, has_gauss, gauss = np.random.get_state()[1:]
    states = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _restore_rng_states(states):
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        with contextlib.suppress(RuntimeError, IndexError):
            torch.cuda.set_rng_state_all(states["cuda"])
    numpy_state = states["numpy"]
    np.random.set_state(
        (
            "MT19937",
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["gauss"],
        )
    )


class EpochCheckpoint(Callback):
    """Resume from the estimator's checkpoint plan as training starts; save after each epoch.

    :func:`attach_checkpoint` appends it after every other callback, so it
    restores the states those callbacks created in ``on_train_begin`` and saves
    what they recorded in ``on_epoch_end``. At the end of training it gives up
    the lock.
    """

    @staticmethod
    def attach(net):
        """With ``checkpoint_dir``, append an :class:`EpochCheckpoint` after ``net``'s
        other callbacks and resume from its checkpoint, if any.

        Called as training starts (the estimator's training loop), after ``on_train_begin``:
        skorch builds the callbacks anew on every ``initialize`` and puts user
        callbacks after its defaults, so no earlier place sees them all.
        """
        if net.checkpoint_dir is None:
            return
        callbacks = dict(net.callbacks_)
        if "epoch_checkpoint" not in callbacks:
            callbacks["epoch_checkpoint"] = EpochCheckpoint().initialize()
            net.callbacks_.append(("epoch_checkpoint", callbacks["epoch_checkpoint"]))
        callbacks["epoch_checkpoint"].resume(net)

    def resume(self, net):
        plan = getattr(net, "_checkpoint_plan_", None)
        if plan is not None:
            plan.training = True
        if plan is None or plan.state is None:
            return
        epoch = plan.epoch
        state, plan.state = plan.state, None  # the weights are not needed twice
        self.restore_state(net, state)
        threads = state.get("threads")  # absent from checkpoints of 0.2
        if threads is not None and torch.device(net.device).type == "cpu":
            plan.use_threads(int(threads))
        same = f" on {threads} CPU threads like the run it resumes" if plan.threads else ""
        message = f"Resuming from {plan.path}: {epoch} of {net.max_epochs} epochs done{same}."
        note(logger, message, show=bool(net.verbose))

    def on_epoch_end(self, net, **kwargs):
        plan = getattr(net, "_checkpoint_plan_", None)
        if plan is None:
            return
        write_checkpoint(plan.path, self.checkpoint_state(net, plan))

    def on_train_end(self, net, **kwargs):
        plan = getattr(net, "_checkpoint_plan_", None)
        if plan is not None:
            plan.release()

    @staticmethod
    def checkpoint_state(net, plan):
        """Everything a resumed fit needs, as tensors and plain containers."""
        callbacks = {}
        for name, callback in net.callbacks_:
            state = _callback_state(callback)
            if state is not None:
                callbacks[name] = state
        scaler = getattr(net, "grad_scaler_", None)  # float16 loss scaling on CUDA
        return {
            "format_version": FORMAT_VERSION,
            "epoch": len(net.history),
            "fingerprint": json.dumps(plan.fingerprint, sort_keys=True),
            "seeds": [net.torch_seed_, net.split_seed_, net.sampling_seed_],
            "batch_size": int(net.batch_size_),
            "history": json.dumps(plain_json(list(net.history))),
            "module": net.module_.state_dict(),
            "optimizer": net.optimizer_.state_dict(),
            "grad_scaler": None if scaler is None else scaler.state_dict(),
            "callbacks": callbacks,
            "rng": _rng_states(),
            "threads": torch.get_num_threads(),
            "images": None if plan.images is None else torch.from_numpy(plan.images),
        }

    @staticmethod
    def restore_state(net, state):
        """Put a checkpoint's state into an initialized net whose callbacks began training."""
        net.module_.load_state_dict(state["module"])
        net.optimizer_.load_state_dict(state["optimizer"])
        if state["grad_scaler"] is not None and getattr(net, "grad_scaler_", None) is not None:
            net.grad_scaler_.load_state_dict(state["grad_scaler"])
        # in place: the net's history is skorch's component (the batch size and the epoch
        # count were read at plan time, see CheckpointPlan.batch_size and .epoch)
        net.history[:] = json.loads(state["history"])
        for name, callback in net.callbacks_:
            if name in state["callbacks"]:
                _restore_callback(callback, state["callbacks"][name])
        _restore_rng_states(state["rng"])


#: the function the estimator's training loop (estimator/loop.py) calls as training starts
attach_checkpoint = EpochCheckpoint.attach
