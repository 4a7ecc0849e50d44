"""Persistent Optuna studies shared by several workers.

* :func:`make_storage` turns a file path or URL into an Optuna storage.
* :func:`run_trials` runs trials until the study holds ``n_trials`` finished
  (COMPLETE or PRUNED) trials, however many processes share it, and however
  often they were killed before.
* A trial left RUNNING by a dead worker is failed and queued again with the
  same parameters (:func:`recover_dead_trials`). A worker is known dead when
  its heartbeat is stale (RDB storages, Optuna's own mechanism) or, on the
  machine that ran it, when its process is gone (any storage).
"""

import os
import socket
import time
import warnings
from datetime import datetime
from pathlib import Path

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


def make_storage(storage):
    """An Optuna storage from a path, a URL or a storage object.

    Parameters
    ----------
    storage : None, str, path or optuna.storages.BaseStorage
        ``None``: in memory. A URL (``sqlite:///...``, ``postgresql://...``,
        ``mysql://...``): an RDB storage with heartbeats. A path ending in
        ``.db``, ``.sqlite`` or ``.sqlite3``: a SQLite file (RDB, heartbeats). A
        path ending in ``.log`` or ``.jsonl``: an Optuna journal file (no
        heartbeat; dead workers are found by process id on the same machine).
        A storage object is used as it is.

    Returns
    -------
    optuna.storages.BaseStorage or None
    """
    if storage is None or isinstance(storage, BaseStorage):
        return storage
    text = os.fspath(storage)
    if "://" in text:
        return _rdb_storage(text)
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
        ):
            # Workers started together on an empty database all create Optuna's tables;
            # one wins and the others fail ("duplicate key value" on PostgreSQL, "table
            # already exists" on SQLite). The tables exist on the next attempt.
            if attempt == _SCHEMA_ATTEMPTS - 1:
                raise
            time.sleep(0.2 * (attempt + 1))


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


def _heartbeat_enabled(study):
    get_interval = getattr(study._storage, "get_heartbeat_interval", None)
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


def _fail(study, trial):
    """Mark a RUNNING trial FAIL; ``False`` if another worker finished it first."""
    # Optuna has no public call for failing another process's trial; this is what
    # its own fail_stale_trials does.
    try:
        return study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
    except UpdateFinishedTrialError:
        return False


def _is_dead(trial, now):
    worker = trial.user_attrs.get(WORKER_ATTR)
    if worker is None:
        started = trial.datetime_start
        return started is not None and (now - started).total_seconds() > ORPHAN_SECONDS
    return worker_alive(worker) is False


def recover_dead_trials(study):
    """Fail the RUNNING trials of dead workers and queue each again; return how many."""
    if _heartbeat_enabled(study):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            fail_stale_trials(study)  # calls retry_trial for each stale trial
    now = datetime.now()
    recovered = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if _is_dead(trial, now) and _fail(study, trial):
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


def _worth_waiting_for(study, trial, now):
    """Will this running trial end, or be found dead, without our help?"""
    if _heartbeat_enabled(study):
        return True
    worker = trial.user_attrs.get(WORKER_ATTR)
    if worker is None:
        return True  # starting now, or an orphan that ORPHAN_SECONDS will fail
    return worker_alive(worker) is True


def count_finished(study):
    """COMPLETE + PRUNED trials of the study."""
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def run_trials(study, objective, n_trials, *, timeout=None):
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
        recover_dead_trials(study)
        if grid:
            requeue_failed_grid_points(study)
        finished = count_finished(study)
        if finished >= n_trials:
            break
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if finished + len(running) >= n_trials:
            now = datetime.now()
            if not any(_worth_waiting_for(study, t, now) for t in running):
                break  # their workers cannot be checked from here: leave them the trials
            time.sleep(POLL_SECONDS)
            continue
        study.optimize(claimed_objective, n_trials=1, catch=(SkipTrial,))
        if skipped and skipped[-1] == mine[-1]:
            time.sleep(POLL_SECONDS)  # lost a race: let the other worker's trial get going
    return sum(t.number in mine for t in study.get_trials(deepcopy=False, states=FINISHED))
