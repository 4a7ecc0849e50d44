"""The journal of a ``compare`` run: every finished fit on disk at once, so a rerun resumes.

A journal is a folder (``OUT/journal`` on the command line) holding

* ``run.json``: what the run is, a digest of the images (path, size and
  modification time of every file, and its label) and a digest of the shared
  settings (estimator parameters, configurations, folds, seed, scoring,
  budget...), and the timing probe, so that a resumed run plans the same fits;
* ``fits/<key>.npz``: one finished fit each (configuration, fold, seed,
  out-of-fold probabilities, decisions, threshold, history, seconds), written
  atomically (:func:`~imbal_estimators.io.atomic.atomic_write`) the moment the
  fit is done. The key is a digest of the stage, the fold, its test rows and
  every estimator parameter of the fit.

Reopening a journal with the same identity skips the fits it holds; a different
identity is refused (:class:`JournalMismatch`) unless ``restart``, which empties
it first: old and new results are never mixed. A fit that was in flight when the
run stopped (Ctrl-C, SIGTERM, ``kill -9``, a dead worker) has no file and is
fitted again.
"""

import hashlib
import io
import json
import os
import shutil
import time
from dataclasses import asdict

import numpy as np

from ..io.atomic import atomic_write
from .parallel import FitResult

RUN_FILE = "run.json"
FITS = "fits"
FORMAT = 1


class JournalMismatch(ValueError):
    """The journal holds a run on other images or with other settings (``changed``)."""

    def __init__(self, changed, message):
        super().__init__(message)
        self.changed = changed


def _plain(value):
    """JSON for anything a parameter can hold: classes by import name, objects by repr."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    return repr(value)


def digest(value):
    """A sha256 hex digest of ``value`` as canonical JSON."""
    text = json.dumps(value, sort_keys=True, default=_plain)
    return hashlib.sha256(text.encode()).hexdigest()


def data_digest(paths, labels):
    """A digest of the images: absolute path, size, modification time and label of each."""
    hasher = hashlib.sha256()
    for path, label in zip(paths, labels, strict=True):
        path = os.path.abspath(os.fspath(path))
        stat = os.stat(path)
        hasher.update(json.dumps([path, stat.st_size, stat.st_mtime_ns, str(label)]).encode())
    return hasher.hexdigest()


class Journal:
    """The finished fits of one ``compare`` run, in ``directory``.

    Parameters
    ----------
    directory : str or path
    restart : bool, default=False
        Empty a journal of another run (other images or settings) instead of
        refusing it.
    stale : sequence of path, default=()
        Outputs of an earlier run removed when this run is accepted (the
        command line's ``model/``, ``results.csv`` and report), so that no
        stale file sits beside the new report.
    """

    def __init__(self, directory, restart=False, stale=()):
        self.directory = os.fspath(directory)
        self.restart = restart
        self.stale = tuple(stale)
        self.identity = None
        self.done = {}  # key -> file
        self.resumed = 0  # fits taken from the journal by this run

    @property
    def fits_dir(self):
        return os.path.join(self.directory, FITS)

    def read_identity(self):
        """``run.json`` of the journal, or None when there is none (or it is unreadable)."""
        try:
            with open(os.path.join(self.directory, RUN_FILE), encoding="utf-8") as file:
                return json.load(file)
        except (OSError, ValueError):
            return None

    def open(self, data, settings):
        """Start or resume the run of these image and settings digests.

        Raises
        ------
        JournalMismatch
            The journal holds a run on other images or settings (and not ``restart``).
        """
        old = self.read_identity()
        new = {"format": FORMAT, "data": data, "settings": settings}
        changed = [] if old is None else _changes(old, new)
        if changed and not self.restart:
            raise JournalMismatch(
                changed,
                f"{self.directory!r} holds a compare run on {' and '.join(changed)}; "
                "results of the two cannot be mixed. Start afresh with --restart "
                "(compare(..., restart=True)), or give another output folder.",
            )
        if changed or self.restart:
            shutil.rmtree(self.fits_dir, ignore_errors=True)
            old = None
        for path in self.stale:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            elif os.path.lexists(path):
                os.remove(path)
        os.makedirs(self.fits_dir, exist_ok=True)
        self.identity = {**new, "probe": (old or {}).get("probe"), "started": time.time()}
        self._write_identity()
        self.done = {
            name[: -len(".npz")]: os.path.join(self.fits_dir, name)
            for name in os.listdir(self.fits_dir)
            if name.endswith(".npz")
        }
        return self

    def _write_identity(self):
        text = json.dumps(self.identity, indent=1, default=_plain).encode()
        atomic_write(os.path.join(self.directory, RUN_FILE), lambda file: file.write(text))

    # -- the timing probe ------------------------------------------------------------

    def probe(self, probe_class):
        """The probe recorded by an earlier start of this run, or None."""
        recorded = (self.identity or {}).get("probe")
        if not recorded:
            return None
        try:
            return probe_class(**recorded)
        except TypeError:  # recorded by another version of the plan
            return None

    def record_probe(self, probe):
        self.identity["probe"] = asdict(probe)
        self._write_identity()

    # -- fits ----------------------------------------------------------------------

    @staticmethod
    def key(stage, fold, params, test):
        """The name of one fit: its stage, fold, test rows and estimator parameters (a budget
        that planned fewer folds or epochs on a resume gives other names)."""
        rows = hashlib.sha256(np.asarray(test, dtype=np.int64).tobytes()).hexdigest()
        return digest({"stage": stage, "fold": int(fold), "test": rows, "params": params})

    def get(self, key, index, classes):
        """The recorded :class:`FitResult` of fit ``key`` (as task ``index``), or None."""
        path = self.done.get(key)
        if path is None:
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                proba = data["proba"]
                decision = data["decision"] if "decision" in data.files else None
        except (OSError, ValueError, KeyError):  # unreadable: fit it again
            return None
        self.resumed += 1
        return FitResult(
            index,
            proba=proba,
            decision=None if decision is None else np.asarray(classes)[decision],
            threshold=meta["threshold"],
            history=meta["history"],
            seconds=meta["seconds"],
            n_train=meta["n_train"],
            n_valid=meta["n_valid"],
        )

    def record(self, key, result, classes, about):
        """Write one finished fit (``about``: its configuration, fold, seed) at once."""
        if result.error:  # a fit that failed is tried again on resume
            return
        meta = {
            **about,
            "threshold": result.threshold,
            "history": result.history,
            "seconds": result.seconds,
            "n_train": result.n_train,
            "n_valid": result.n_valid,
        }
        arrays = {"meta": np.array(json.dumps(meta, default=_plain)), "proba": result.proba}
        if result.decision is not None:
            arrays["decision"] = np.searchsorted(np.asarray(classes), result.decision)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        path = os.path.join(self.fits_dir, f"{key}.npz")
        atomic_write(path, lambda file: file.write(buffer.getvalue()))
        self.done[key] = path


def _changes(old, new):
    changed = []
    if old.get("format") != new["format"]:
        return ["another version of the journal"]
    if old.get("data") != new["data"]:
        changed.append("other images (files added, removed or changed)")
    if old.get("settings") != new["settings"]:
        changed.append("other settings")
    return changed
