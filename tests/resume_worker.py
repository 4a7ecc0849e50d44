"""Checkpointed fits that die by SIGKILL, for tests/test_resume_kill.py.

The fit is the issue's at a small scale: focal loss with balanced alpha, 3 epochs, batch
16, ``random_state=0``, a small CNN at 16 px, on the folder the test wrote. A process
kills itself with ``SIGKILL`` at a chosen moment (:func:`die_at`), by wrapping the
estimator's training step or the checkpoint writer in its own process only: the
estimator's parameters (callbacks included) are those of the run that resumes.

``python tests/resume_worker.py FOLDER CHECKPOINT_DIR MOMENT USER_CALLBACK OUT`` runs one
fit in a fresh interpreter (``MOMENT`` ``none`` to finish); it writes ``OUT.npy`` (the
probabilities on the folder) and ``OUT.json`` (the history's losses and scores).
"""

import json
import os
import signal
import sys

import numpy as np
import torch
from skorch.callbacks import Callback

import imbal_estimators.training.checkpoint as checkpoint_module
from imbal_estimators import ImageImbalanceClassifier, load_image_folder
from imbal_estimators.io.checksummed import write_checksummed

RUN = dict(
    backbone="small_cnn",
    weights=None,
    image_size=16,
    loss="focal",
    alpha="balanced",
    max_epochs=3,
    batch_size=16,
    lr=3e-3,
    random_state=0,
    device="cpu",
    verbose=0,
)
HISTORY_KEYS = ("train_loss", "valid_loss", "valid_balanced_accuracy")


class CountingSchedule(Callback):
    """A user's callback with state: it counts the epochs it saw and sets the learning rate
    from the count (halved per epoch)."""

    def initialize(self):
        self.seen_ = 0
        return self

    def on_epoch_begin(self, net, **kwargs):
        for group in net.optimizer_.param_groups:
            group["lr"] = RUN["lr"] / 2**self.seen_

    def on_epoch_end(self, net, **kwargs):
        self.seen_ += 1


def make(checkpoint_dir=None, user_callback=False):
    callbacks = [("schedule", CountingSchedule())] if user_callback else None
    return ImageImbalanceClassifier(**RUN, checkpoint_dir=checkpoint_dir, callbacks=callbacks)


def history_of(clf):
    return [[row[key] for key in HISTORY_KEYS] for row in clf.history]


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


def die_at(moment):
    """Make this process kill itself with SIGKILL at ``moment``.

    ``"b<epoch>.<batch>"``: after the optimizer step of that training batch (1-based);
    ``"w<epoch>"``: in the middle of writing the checkpoint of that epoch, after the first
    KiB of its payload reached the temporary file.
    """
    if moment.startswith("b"):
        epoch, batch = (int(part) for part in moment[1:].split("."))
        train_step = ImageImbalanceClassifier.train_step

        def dying_train_step(self, *args, **kwargs):
            step = train_step(self, *args, **kwargs)
            # skorch opens the batch's record in on_batch_begin, before the step
            if len(self.history) == epoch and len(self.history[-1]["batches"]) == batch:
                _die()
            return step

        ImageImbalanceClassifier.train_step = dying_train_step
    elif moment.startswith("w"):
        epoch = int(moment[1:])
        write_checkpoint = checkpoint_module.write_checkpoint

        def dying_write_checkpoint(path, state):
            if state["epoch"] != epoch:
                return write_checkpoint(path, state)

            def payload(file):
                data = io_bytes(state)
                file.write(data[:1024])
                file.flush()
                _die()

            write_checksummed(path, payload)

        checkpoint_module.write_checkpoint = dying_write_checkpoint
    elif moment != "none":
        raise ValueError(f"unknown moment {moment!r}")


def io_bytes(state):
    import io

    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def killed_fit(X, y, checkpoint_dir, moment, user_callback):
    """The body of a forked child: one thread (the parent's OpenMP pool does not survive a
    fork), then a fit that dies at ``moment``."""
    torch.set_num_threads(1)
    die_at(moment)
    make(checkpoint_dir, user_callback).fit(X, y)
    os._exit(3)  # the fit was to die before its end


def main():
    folder, checkpoint_dir, moment, user_callback, out = sys.argv[1:6]
    die_at(moment)
    X, y = load_image_folder(folder)
    clf = make(checkpoint_dir or None, user_callback == "1").fit(X, y)
    np.save(out + ".npy", clf.predict_proba(X))
    with open(out + ".json", "w") as file:
        json.dump({"history": history_of(clf), "resumed": clf.resumed_from_epoch_}, file)


if __name__ == "__main__":
    main()
