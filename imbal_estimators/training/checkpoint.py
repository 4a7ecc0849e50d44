"""Atomic per-epoch checkpoints and resuming a fit from them (``checkpoint_dir=``).

After every epoch :class:`EpochCheckpoint` writes one file,
``<checkpoint_dir>/checkpoint.pt``: the module, optimizer, float16 loss-scaler and
learning-rate scheduler states, the states of the best-model keeper and of early stopping,
the history, the epoch number, the seeds (the sampler and the torch RNG are
reseeded per epoch from them, so they replay exactly) and the RNG states. The
file is written next to its final name, flushed and fsynced, then renamed over
the old one (``os.replace``), so a kill at any moment leaves either the
previous or the new checkpoint, never a torn one. A write that fails raises.

A later ``fit`` with the same directory and a compatible configuration (same
classes, data, split and training parameters) continues after the last
completed epoch up to ``max_epochs`` in total; anything else is refused with an
error that names what differs. The file is read with ``torch.load(...,
weights_only=True)``, which rebuilds tensors and plain containers only.
"""

import contextlib
import glob
import hashlib
import json
import os
import tempfile

import numpy as np
import torch
from skorch.callbacks import Callback, EarlyStopping, LRScheduler
from skorch.history import History

from ..io.atomic import atomic_write
from ..io.jsonable import describe, plain_json
from .callbacks import KeepBestModel

CHECKPOINT_FILE = "checkpoint.pt"
FORMAT_VERSION = 1

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


class CheckpointError(OSError):
    """A checkpoint cannot be written or read; the message names the file."""


class CheckpointMismatchError(ValueError):
    """``checkpoint_dir`` holds the checkpoint of another training run."""


def _digest(*arrays):
    sha = hashlib.sha256()
    for array in arrays:
        data = json.dumps(plain_json(np.asarray(array).tolist())).encode()
        sha.update(len(data).to_bytes(8, "little"))
        sha.update(data)
    return sha.hexdigest()


def params_fingerprint(estimator):
    """The parameters that shape training, each as a comparable text."""
    return {
        key: describe(value)
        for key, value in sorted(estimator.get_params(deep=False).items())
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


class CheckpointPlan:
    """What ``fit`` found in ``checkpoint_dir`` and what the run must match.

    Parameters
    ----------
    directory : str
    fingerprint : dict
        Parameter, class, data and split fingerprints of this fit.
    state : dict or None
        The checkpoint to resume from (checked compatible), or None.
    """

    def __init__(self, directory, fingerprint, state=None):
        self.directory = directory
        self.fingerprint = fingerprint
        self.state = state

    @property
    def path(self):
        return os.path.join(self.directory, CHECKPOINT_FILE)

    @property
    def seeds(self):
        """The (torch, split, sampling) seeds of the run being resumed, or None."""
        return None if self.state is None else tuple(int(s) for s in self.state["seeds"])

    def check_split(self, train_rows, valid_rows):
        """Add the split fingerprint; refuse a checkpoint made with other rows."""
        self.fingerprint.update(split_fingerprint(train_rows, valid_rows))
        if self.state is not None:
            _check_same(self.path, json.loads(self.state["fingerprint"]), self.fingerprint)


def prepare_checkpoint(directory, estimator, paths, y_encoded, classes, resume=True):
    """Create ``directory`` (checking it can be written) and read a checkpoint to resume.

    Raises
    ------
    CheckpointError
        The directory cannot be created or written, or its checkpoint cannot be read.
    CheckpointMismatchError
        The checkpoint belongs to a fit with other parameters, classes or data.
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
    fingerprint = {"params": params_fingerprint(estimator)}
    fingerprint.update(data_fingerprint(paths, y_encoded, classes))
    plan = CheckpointPlan(directory, fingerprint)
    # Temporary files of a write that was killed: never a valid checkpoint.
    for stale in glob.glob(os.path.join(glob.escape(directory), CHECKPOINT_FILE + ".*.tmp")):
        with contextlib.suppress(OSError):
            os.unlink(stale)
    if not resume or not os.path.exists(plan.path):
        return plan
    state = read_checkpoint(plan.path)
    saved = json.loads(state["fingerprint"])
    _check_same(plan.path, saved, {k: v for k, v in fingerprint.items() if k != "split"})
    epoch = int(state["epoch"])
    if epoch > estimator.max_epochs:
        raise CheckpointMismatchError(
            f"The checkpoint {plan.path!r} has {epoch} completed epochs, more than "
            f"max_epochs={estimator.max_epochs}; resuming counts epochs in total. Raise "
            "max_epochs, or use another checkpoint_dir."
        )
    plan.state = state
    return plan


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
    """Load a checkpoint file onto the CPU (tensors and plain containers only)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"Cannot read the checkpoint {path!r} ({type(exc).__name__}): it is damaged or "
            "not a checkpoint of imbal_estimators. Delete it to start over."
        ) from exc
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path!r} is not a checkpoint of this version of imbal_estimators "
            f"(format_version {FORMAT_VERSION}). Delete it to start over."
        )
    return state


# -- what a checkpoint holds ----------------------------------------------------------


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
    return None


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
    }


def restore_state(net, state):
    """Put a checkpoint's state into an initialized net whose callbacks began training."""
    net.module_.load_state_dict(state["module"])
    net.optimizer_.load_state_dict(state["optimizer"])
    if state["grad_scaler"] is not None and getattr(net, "grad_scaler_", None) is not None:
        net.grad_scaler_.load_state_dict(state["grad_scaler"])
    net.history_ = History(json.loads(state["history"]))
    net.batch_size_ = state["batch_size"]
    for name, callback in net.callbacks_:
        if name in state["callbacks"]:
            _restore_callback(callback, state["callbacks"][name])
    _restore_rng_states(state["rng"])


class EpochCheckpoint(Callback):
    """Resume from the estimator's checkpoint plan at train begin; save after each epoch.

    The estimator appends it after every other callback, so it restores the
    states those callbacks created in ``on_train_begin`` and saves what they
    recorded in ``on_epoch_end``.
    """

    def on_train_begin(self, net, **kwargs):
        plan = getattr(net, "_checkpoint_plan_", None)
        if plan is None or plan.state is None:
            return
        state, plan.state = plan.state, None  # the weights are not needed twice
        restore_state(net, state)
        net.resumed_from_epoch_ = int(state["epoch"])
        if net.verbose:
            print(
                f"Resuming from {plan.path}: {net.resumed_from_epoch_} of "
                f"{net.max_epochs} epochs done."
            )

    def on_epoch_end(self, net, **kwargs):
        plan = getattr(net, "_checkpoint_plan_", None)
        if plan is None:
            return
        state = checkpoint_state(net, plan)
        try:
            atomic_write(plan.path, lambda file: torch.save(state, file))
        except OSError as exc:
            raise CheckpointError(f"Cannot write the checkpoint {plan.path!r}: {exc}") from exc
