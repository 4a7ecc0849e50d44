"""A search worker for tests/test_search.py: one ``ImbalanceSearchCV.fit`` on a shared study.

The tests fork two at once (each waits at its first fit until the other has reached its own,
so both hold a trial however fast one of them is), or kill one mid-trial. They are forked
from the test process, so torch is not imported again; ``python tests/search_worker.py
FOLDER STORAGE STUDY N`` runs one by hand. ``make_search`` is the search every worker and the
tests' own reruns use: TinyCNN, 1 epoch, 2 folds (or ``cv``), a 4-point grid. A worker that
hangs for its killer does so without a callback (:func:`hang_at_nth_fit`): the estimator of the
rerun that follows is the same, and so is the study's fingerprint.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import optuna  # noqa: E402
import torch  # noqa: E402
from conftest import tiny_classifier  # noqa: E402
from skorch.callbacks import Callback  # noqa: E402

from imbal_estimators import (  # noqa: E402
    ImageImbalanceClassifier,
    ImbalanceSearchCV,
    load_image_folder,
)

GRID = {"alpha": [None, "balanced"], "gamma": [0.0, 2.0]}


def make_search(storage, study_name, n_trials, callbacks=None, cv=2):
    return ImbalanceSearchCV(
        tiny_classifier(loss="focal", max_epochs=1, batch_size=64, callbacks=callbacks),
        GRID,
        sampler="grid",
        n_trials=n_trials,
        cv=cv,
        scoring="balanced_accuracy",
        storage=storage,
        study_name=study_name,
        random_state=0,
        refit=False,
    )


_fits = 0  # fits started in this process


def hang_at_nth_fit(n, path):
    """At this process's ``n``-th fit, create ``path`` and hang, so the test can kill it.

    It wraps ``ImageImbalanceClassifier.fit`` in this (forked) process only.
    """
    fit = ImageImbalanceClassifier.fit

    def hanging_fit(self, *args, **kwargs):
        global _fits
        _fits += 1
        if _fits == n:
            open(path, "w").close()
            time.sleep(600)
        return fit(self, *args, **kwargs)

    ImageImbalanceClassifier.fit = hanging_fit


class MeetAtFirstFit(Callback):
    """At this process's first fit, wait until ``parties`` processes have reached theirs.

    Each process leaves a file named by its pid in ``directory``. Without the wait, a worker
    that connects to the storage first can run the whole grid before the other asks for a
    trial (seen on PostgreSQL in CI), and "both workers ran a trial" is a race.
    """

    def __init__(self, directory, parties=2, seconds=240):
        self.directory = directory
        self.parties = parties
        self.seconds = seconds

    def on_train_begin(self, net, **kwargs):
        global _met
        if _met:
            return
        _met = True
        open(os.path.join(self.directory, str(os.getpid())), "w").close()
        deadline = time.monotonic() + self.seconds
        while len(os.listdir(self.directory)) < self.parties:
            if time.monotonic() > deadline:
                sys.exit(f"only {os.listdir(self.directory)} reached a fit in {self.seconds} s")
            time.sleep(0.02)


_met = False  # whether this process has passed MeetAtFirstFit


def wait_for(path, seconds=300):
    deadline = time.monotonic() + seconds
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            sys.exit(f"{path} did not appear")
        time.sleep(0.02)


def work(
    folder,
    storage,
    study_name,
    n_trials,
    ready=None,
    go=None,
    meet=None,
    hang_at_fit=None,
    signal=None,
    cv=2,
):
    """One worker: build the search, say it is ready, wait for ``go``, fit.

    ``meet``: a directory for :class:`MeetAtFirstFit` (two workers meet there).
    """
    torch.set_num_threads(1)  # a forked child must not reuse the parent's OpenMP pool
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    X, y = load_image_folder(folder)
    if hang_at_fit:
        hang_at_nth_fit(hang_at_fit, signal)
    callbacks = [MeetAtFirstFit(meet)] if meet else None
    search = make_search(storage, study_name, n_trials, callbacks, cv=cv)
    if ready:
        open(ready, "w").close()
    if go:
        wait_for(go)
    search.fit(X, y)
    print(f"worker {os.getpid()} ran {search.n_trials_run_} trials")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder")
    parser.add_argument("storage")
    parser.add_argument("study_name")
    parser.add_argument("n_trials", type=int)
    parser.add_argument("--ready", help="create this file once imported")
    parser.add_argument("--go", help="start only once this file exists")
    parser.add_argument("--meet", help="a directory where two workers meet at their first fit")
    parser.add_argument("--hang-at-fit", type=int, help="hang at this fit (see HangAtFit)")
    parser.add_argument("--signal", help="the file hang_at_nth_fit creates")
    parser.add_argument("--cv", type=int, default=2, help="folds per trial")
    args = parser.parse_args()
    work(**vars(args))


if __name__ == "__main__":
    main()
