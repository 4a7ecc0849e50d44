"""Persistent Optuna studies shared by several workers.

* :func:`make_storage` turns a file path or URL into an Optuna storage.
* :func:`open_study` opens the study for one data set: a study records the
  fingerprint of its data, scoring, cv, search space and estimator, and a study of
  the same name built on another is never reused (a study of its own is opened
  under a derived name). The fingerprint is the same in every process, so a
  search killed at any moment and run again continues its own study.
* :func:`run_trials` runs trials until the study holds ``n_trials`` finished
  (COMPLETE or PRUNED) trials, however many processes share it, and however
  often they were killed before.
* A trial left RUNNING by a dead worker is failed and queued again with the
  same parameters (:func:`recover_dead_trials`). A worker is known dead when
  its heartbeat is stale (RDB storages, Optuna's own mechanism) or, on the
  machine that ran it, when its process is gone (any storage).

Only Optuna's public API is used: the functions that need the storage take it as
an argument (a study does not hand it out).
"""

import hashlib
import importlib.util
import json
import os
import socket
import time
import warnings
from datetime import datetime
from pathlib import Path

import numpy as np
import optuna
from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError
from optuna.samplers import GridSampler
from optuna.storages import BaseStorage, RDBStorage, fail_stale_trials
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
JOURNAL_SUFFIXES = (".log", ".jsonl")

# RDB storages: a running trial writes a heartbeat every HEARTBEAT_INTERVAL s; one
# silent for GRACE_PERIOD s is stale, failed and queued again by any worker.
HEARTBEAT_INTERVAL = 10
GRACE_PERIOD = 60
# A RUNNING trial that never recorded its worker (the process died between
# creating the trial and starting it, a few milliseconds) is dead after this.
ORPHAN_SECONDS = 60
_SCHEMA_ATTEMPTS = 5
# How often a worker looks again while the last trials run elsewhere.
POLL_SECONDS = 0.5

WORKER_ATTR = "imbal_worker"  # user attr: {"host", "pid", "start"} of the running process
RETRY_ATTR = "imbal_retry_of"  # system attr: number of the trial this one repeats
SKIPPED_ATTR = "imbal_skipped"  # user attr of a trial dropped at start, with the reason
# System attrs that say which parameters a queued trial runs (grid point, enqueue_trial).
_KEPT_SYSTEM_ATTRS = ("grid_id", "search_space", "fixed_params")
FINGERPRINT_ATTR = "imbal_fingerprint"  # study user attr: what the study was built on
# SQLAlchemy 2.1 maps "postgresql://" to psycopg 3; the extra installs psycopg2.
POSTGRESQL_EXTRA = "postgresql"


def make_storage(storage):
    """An Optuna storage from a path, a URL or a storage object.

    Parameters
    ----------
    storage : None, str, path or optuna.storages.BaseStorage
        ``None``: in memory. A URL (``sqlite:///...``, ``postgresql+psycopg2://...``,
        ``mysql://...``): an RDB storage with heartbeats; a plain ``postgresql://``
        URL uses psycopg2 where psycopg 3 is not installed (:func:`database_url`). A
        path ending in ``.db``, ``.sqlite`` or ``.sqlite3``: a SQLite file (RDB,
        heartbeats). A path ending in ``.log`` or ``.jsonl``: an Optuna journal file
        (no heartbeat; dead workers are found by process id on the same machine).
        A storage object is used as it is.

    Returns
    -------
    optuna.storages.BaseStorage or None
    """
    if storage is None or isinstance(storage, BaseStorage):
        return storage
    text = os.fspath(storage)
    if "://" in text:
        return _rdb_storage(database_url(text))
    path = Path(text).expanduser()
    suffix = path.suffix.lower()
    if suffix not in SQLITE_SUFFIXES + JOURNAL_SUFFIXES:
        raise ValueError(
            f"storage={text!r} is neither a database URL nor a file ending in "
            f"{', '.join(SQLITE_SUFFIXES)} (SQLite) or {', '.join(JOURNAL_SUFFIXES)} "
            "(Optuna journal file)."
        )
    if not path.parent.is_dir():
        raise FileNotFoundError(
            f"The folder of storage={text!r} does not exist: create {str(path.parent)!r} first."
        )
    if suffix in JOURNAL_SUFFIXES:
        return JournalStorage(JournalFileBackend(str(path.resolve())))
    return _rdb_storage(f"sqlite:///{path.resolve()}")


def database_url(url):
    """``url`` with the driver it can use, checked before any connection.

    * ``postgresql://`` and ``postgres://`` name no driver, and SQLAlchemy 2.1 picks
      psycopg 3 for them; where only psycopg2 is installed (the ``postgresql`` extra,
      as ``.ci/run`` tests it) they become ``postgresql+psycopg2://``. With neither
      driver it is an ``ImportError`` that names the extra.
    * ``sqlite:///path`` into a folder that does not exist is a ``FileNotFoundError``
      naming the folder (SQLite's own error does not).
    """
    scheme, sep, rest = url.partition("://")
    if scheme in ("postgresql", "postgres"):
        if importlib.util.find_spec("psycopg") is not None:
            return f"postgresql://{rest}"
        if importlib.util.find_spec("psycopg2") is not None:
            return f"postgresql+psycopg2://{rest}"
        raise ImportError(
            f"storage={_hide_password(url)!r} needs a PostgreSQL driver: pip install "
            f"'imbal-estimators[{POSTGRESQL_EXTRA}]' (psycopg2), or psycopg 3."
        )
    if scheme.startswith("sqlite"):
        database = rest[1:].split("?")[0] if rest.startswith("/") else ""
        if database and database != ":memory:" and not database.startswith("file:"):
            folder = os.path.dirname(os.path.abspath(database))
            if not os.path.isdir(folder):
                raise FileNotFoundError(
                    f"storage={url!r} names the SQLite file {database!r}, whose folder "
                    f"{folder!r} does not exist: create it first."
                )
    return url


def _hide_password(url):
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if at and ":" in credentials:
        credentials = credentials.split(":")[0] + ":***"
    return f"{scheme}{sep}{credentials}{at}{host}"


def _rdb_storage(url):
    import sqlalchemy.exc  # only RDB storages need it (0.7 s to import)

    # Several processes write one SQLite file: wait for its lock instead of failing.
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None
    for attempt in range(_SCHEMA_ATTEMPTS):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ExperimentalWarning)  # heartbeat_interval
                return RDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=HEARTBEAT_INTERVAL,
                    grace_period=GRACE_PERIOD,
                    heartbeat_stale_trial_callback=retry_trial,
                )
        except (
            sqlalchemy.exc.IntegrityError,
            sqlalchemy.exc.OperationalError,
            sqlalchemy.exc.ProgrammingError,
        ) as exc:
            # Workers started together on an empty database all create Optuna's tables;
            # one wins and the others fail ("duplicate key value" on PostgreSQL, "table
            # already exists" on SQLite). The tables exist on the next attempt.
            if attempt == _SCHEMA_ATTEMPTS - 1:
                raise ValueError(
                    f"Cannot open storage={_hide_password(url)!r}: {exc.orig}"
                ) from exc
            time.sleep(0.2 * (attempt + 1))


# -- the study of one data set ----------------------------------------------------------


# Estimator parameters that change how fast a trial runs, where, or what it prints, but
# not what it measures: searches that differ only in these share a study. Every other
# parameter (of the estimator and of the estimators, samplers and callbacks it holds) is
# in the study's fingerprint.
SPEED_ONLY_PARAMS = frozenset(
    {
        "verbose",
        "device",
        "cache",
        "checkpoint_dir",
        "auto_batch_size",
        "compile",
        "use_caching",
        "torch_load_kwargs",
        "n_jobs",
        "pre_dispatch",
        "memory",
    }
)
# ... and the data loader settings and printing sinks of nested parameters.
SPEED_ONLY_SUFFIXES = (
    "__num_workers",
    "__pin_memory",
    "__persistent_workers",
    "__prefetch_factor",
    "__verbose",
    "__sink",
)
_MAX_DEPTH = 20


def _speed_only(name):
    return name in SPEED_ONLY_PARAMS or name.endswith(SPEED_ONLY_SUFFIXES)


def estimator_text(estimator, depth=0):
    """The class and the parameters of ``estimator`` that change what a trial measures
    (all but :data:`SPEED_ONLY_PARAMS`), as plain data that is the same in every process.
    Estimators, samplers and callbacks among the parameters are described the same way."""
    try:
        params = estimator.get_params(deep=False)
    except Exception:  # not a scikit-learn-style object
        return _stable_text(estimator, depth + 1)
    cls = type(estimator)
    return {
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "params": {
            str(name): _stable_text(value, depth + 1)
            for name, value in sorted(params.items(), key=lambda item: str(item[0]))
            if not _speed_only(str(name))
        },
    }


def _stable_text(value, depth=0):
    """A text for ``value`` that is the same in every process (no memory addresses, no
    order of sets, which changes with Python's hash seed)."""
    if depth > _MAX_DEPTH:
        return f"<{type(value).__qualname__} nested too deep>"
    if isinstance(value, dict):
        return {
            str(k): _stable_text(v, depth + 1)
            for k, v in sorted(value.items(), key=lambda i: str(i[0]))
        }
    if isinstance(value, (list, tuple)):
        return [_stable_text(v, depth + 1) for v in value]
    if isinstance(value, (set, frozenset)):
        texts = [_stable_text(v, depth + 1) for v in value]
        return sorted(texts, key=lambda text: json.dumps(text, sort_keys=True))
    if hasattr(value, "get_params") and not isinstance(value, type):
        return estimator_text(value, depth)
    if isinstance(value, np.ndarray):  # its repr elides the middle of a long array
        sha = hashlib.sha256()
        _array_digest(sha, value)
        return f"ndarray {sha.hexdigest()}"
    if callable(value) and hasattr(value, "__qualname__"):
        return f"{getattr(value, '__module__', '')}.{value.__qualname__}"
    text = repr(value)
    if " at 0x" in text:
        from ..io.jsonable import describe

        return describe(value)
    return text


def _array_digest(sha, values):
    array = np.asarray(values)
    if array.dtype.kind in "biufc":
        sha.update(f"{array.dtype.str}{array.shape}".encode())
        sha.update(np.ascontiguousarray(array).tobytes())
    else:
        sha.update(json.dumps([str(v) for v in np.ravel(array)]).encode())


def study_fingerprint(X, y, scoring, splits, search_space, estimator=None):
    """What a study's results depend on, as digests: the data (paths or values and the
    labels), the scoring, the folds, the search space and the estimator
    (:func:`estimator_text`)."""

    def digest(*parts):
        sha = hashlib.sha256()
        for part in parts:
            if isinstance(part, str):
                sha.update(part.encode())
            else:
                _array_digest(sha, part)
            sha.update(b"\0")
        return sha.hexdigest()[:16]

    folds = [index for train, test in splits for index in (train, [-1], test, [-2])]
    return {
        "data": digest(X, y),
        "scoring": digest(json.dumps(_stable_text(scoring))),
        "cv": digest(np.concatenate(folds) if folds else np.zeros(0, dtype=np.int64)),
        "search_space": digest(json.dumps(_stable_text(search_space))),
        "estimator": digest(json.dumps(estimator_text(estimator))),
    }


def open_study(storage, study_name, fingerprint, **create_kwargs):
    """The study ``study_name`` of ``storage`` for the data of ``fingerprint``.

    A new study, or one that recorded the same fingerprint, is used as it is. A study
    of that name that recorded another fingerprint (other data, scoring, folds, search
    space or estimator), or that has trials and none, is left alone: the study opened is
    ``"<study_name>-<12 hex digits of the fingerprint>"`` instead, created or continued.
    So a rerun on the same data continues its study, and a search nested in
    ``cross_val_score`` runs in every outer fold.

    Returns
    -------
    optuna.Study
        ``study.study_name`` says which.
    """
    study = optuna.create_study(
        storage=storage, study_name=study_name, load_if_exists=True, **create_kwargs
    )
    direction = create_kwargs.get("direction")
    if direction is not None and study.direction.name.lower() != direction:
        raise ValueError(
            f"Study {study_name!r} {study.direction.name.lower()}s; ImbalanceSearchCV "
            f"{direction}s scores. Use another study_name."
        )
    if _claim_study(study, fingerprint):
        return study
    text = json.dumps(fingerprint, sort_keys=True).encode()
    derived = f"{study_name}-{hashlib.sha256(text).hexdigest()[:12]}"
    study = optuna.create_study(
        storage=storage, study_name=derived, load_if_exists=True, **create_kwargs
    )
    if not _claim_study(study, fingerprint):
        raise ValueError(
            f"Study {derived!r} in the storage records a fingerprint "
            f"{study.user_attrs.get(FINGERPRINT_ATTR)} other than this search's "
            f"{fingerprint}; it was not reused. Use another study_name."
        )
    return study


def _claim_study(study, fingerprint):
    """Whether ``study`` is this data's: it recorded ``fingerprint``, or is empty and now does."""
    recorded = study.user_attrs.get(FINGERPRINT_ATTR)
    if recorded is None and not study.get_trials(deepcopy=False):
        study.set_user_attr(FINGERPRINT_ATTR, fingerprint)
        # another worker may have claimed it at the same moment: the stored value decides
        recorded = study.user_attrs.get(FINGERPRINT_ATTR)
    return recorded == fingerprint


# -- workers ----------------------------------------------------------------------------


def worker_identity():
    """Who runs a trial: host name, process id and process start time (Linux)."""
    pid = os.getpid()
    stat = _proc_stat(pid)
    return {"host": socket.gethostname(), "pid": pid, "start": stat and stat[1]}


def worker_alive(worker):
    """``True``/``False`` for a worker of this machine, ``None`` where it cannot be told.

    A process id can be reused after the worker died: the process start time
    (from ``/proc``) tells the new process from the old one.
    """
    if not isinstance(worker, dict) or worker.get("host") != socket.gethostname():
        return None
    pid = worker.get("pid")
    if not isinstance(pid, int):
        return None
    stat = _proc_stat(pid)
    if stat is not None:
        state, start = stat
        return state not in ("Z", "X") and worker.get("start") in (None, start)
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process on Windows
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _proc_stat(pid):
    """``(state, start time in clock ticks)`` of a process from ``/proc``, or None."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            text = file.read()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the command name may hold spaces
    return fields[0], int(fields[19])


def _heartbeat_enabled(storage):
    get_interval = getattr(storage, "get_heartbeat_interval", None)
    return get_interval is not None and get_interval() is not None


# -- recovery ---------------------------------------------------------------------------


def retry_trial(study, trial):
    """Queue a WAITING copy of ``trial``: same parameters and grid point, fresh results.

    Also Optuna's ``heartbeat_stale_trial_callback`` of the RDB storages made by
    :func:`make_storage`.
    """
    system_attrs = {k: v for k, v in trial.system_attrs.items() if k in _KEPT_SYSTEM_ATTRS}
    system_attrs[RETRY_ATTR] = trial.system_attrs.get(RETRY_ATTR, trial.number)
    study.add_trial(
        optuna.trial.create_trial(
            state=TrialState.WAITING,
            params=trial.params,
            distributions=trial.distributions,
            system_attrs=system_attrs,
        )
    )


def _fail(storage, study, trial):
    """Mark a RUNNING trial FAIL; ``False`` if another worker finished it first."""
    # What Optuna's own fail_stale_trials does, through the storage's public methods
    # (Study.tell would also run the sampler's after_trial for another process's trial).
    study_id = storage.get_study_id_from_name(study.study_name)
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
    try:
        return storage.set_trial_state_values(trial_id, state=TrialState.FAIL)
    except UpdateFinishedTrialError:
        return False


def _is_dead(trial, now):
    worker = trial.user_attrs.get(WORKER_ATTR)
    if worker is None:
        started = trial.datetime_start
        return started is not None and (now - started).total_seconds() > ORPHAN_SECONDS
    return worker_alive(worker) is False


def recover_dead_trials(study, storage):
    """Fail the RUNNING trials of dead workers and queue each again; return how many.

    ``storage`` is the study's storage (the object given to ``optuna.create_study``).
    """
    if _heartbeat_enabled(storage):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            fail_stale_trials(study)  # calls retry_trial for each stale trial
    now = datetime.now()
    recovered = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if _is_dead(trial, now) and _fail(storage, study, trial):
            retry_trial(study, trial)
            recovered += 1
    return recovered


def requeue_failed_grid_points(study):
    """Queue again the grid points whose only trials failed.

    ``GridSampler`` counts a failed grid point as visited and would never run it
    again; here it is retried like the trial of a dead worker.
    """
    trials = study.get_trials(deepcopy=False)
    covered = {
        t.system_attrs["grid_id"]
        for t in trials
        if "grid_id" in t.system_attrs and t.state != TrialState.FAIL
    }
    for trial in trials:
        mine = next(t for t in trials if t.number == trial.number)
        grid_id = mine.system_attrs.get("grid_id")
        if trial.state == TrialState.FAIL and grid_id is not None and grid_id not in covered:
            retry_trial(study, trial)
            covered.add(grid_id)


# -- the loop ---------------------------------------------------------------------------


class SkipTrial(Exception):
    """A trial started by a race between workers that must not run."""


def _claim(study, trial, n_trials):
    """Raise :class:`SkipTrial` unless ``trial`` may run.

    Two workers can both see one trial missing and both start one. The trial
    with the lower number wins: every worker counts the finished trials and the
    running ones numbered before its own, and drops its trial when those
    already make ``n_trials``, or (grid sampler) when they already cover its
    grid point.
    """
    trials = study.get_trials(deepcopy=False)
    ahead = [
        t
        for t in trials
        if t.number != trial.number
        and (t.state in FINISHED or (t.state == TrialState.RUNNING and t.number < trial.number))
    ]
    if len(ahead) >= n_trials:
        reason = f"the study already has {n_trials} trials finished or running"
    else:
        mine = next(t for t in trials if t.number == trial.number)
        grid_id = mine.system_attrs.get("grid_id")
        if grid_id is None or all(t.system_attrs.get("grid_id") != grid_id for t in ahead):
            return
        reason = f"grid point {grid_id} is already finished or running"
    trial.set_user_attr(SKIPPED_ATTR, reason)
    raise SkipTrial(f"Trial {trial.number} not run: {reason}.")


def _worth_waiting_for(storage, trial, now):
    """Will this running trial end, or be found dead, without our help?"""
    if _heartbeat_enabled(storage):
        return True
    worker = trial.user_attrs.get(WORKER_ATTR)
    if worker is None:
        return True  # starting now, or an orphan that ORPHAN_SECONDS will fail
    return worker_alive(worker) is True


def count_finished(study):
    """COMPLETE + PRUNED trials of the study."""
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def run_trials(study, objective, n_trials, *, storage, timeout=None):
    """Run trials of ``objective`` until ``study`` holds ``n_trials`` finished ones.

    Trials finished earlier, by this or any other worker, count. While the
    last missing trials run in other live workers, this one waits for them, so
    that it can take over a trial whose worker dies; it returns when the count
    is reached or after ``timeout`` seconds (a running trial is not interrupted).

    Parameters
    ----------
    study : optuna.Study
    objective : callable
        ``trial -> float``, as for ``Study.optimize``.
    n_trials : int
        The study's total of COMPLETE + PRUNED trials.
    storage : optuna.storages.BaseStorage
        The study's storage (the object given to ``optuna.create_study``).
    timeout : float or None
        Seconds after which no new trial starts.

    Returns
    -------
    int
        The number of trials this call ran to COMPLETE or PRUNED.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    grid = isinstance(study.sampler, GridSampler)
    mine, skipped = [], []

    def claimed_objective(trial):
        mine.append(trial.number)
        trial.set_user_attr(WORKER_ATTR, worker_identity())
        try:
            _claim(study, trial, n_trials)
        except SkipTrial:
            skipped.append(trial.number)
            raise
        return objective(trial)

    while deadline is None or time.monotonic() < deadline:
        recover_dead_trials(study, storage)
        if grid:
            requeue_failed_grid_points(study)
        finished = count_finished(study)
        if finished >= n_trials:
            break
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if finished + len(running) >= n_trials:
            now = datetime.now()
            if not any(_worth_waiting_for(storage, t, now) for t in running):
                break  # their workers cannot be checked from here: leave them the trials
            time.sleep(POLL_SECONDS)
            continue
        study.optimize(claimed_objective, n_trials=1, catch=(SkipTrial,))
        if skipped and skipped[-1] == mine[-1]:
            time.sleep(POLL_SECONDS)  # lost a race: let the other worker's trial get going
    return sum(t.number in mine for t in study.get_trials(deepcopy=False, states=FINISHED))
