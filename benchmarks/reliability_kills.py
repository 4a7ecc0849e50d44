"""Measure the two kill cases of docs/reliability.md.

1. ``save`` killed: a forked child saves two models of the same shape (classes cat/dog and
   x/y) alternately into one directory and is killed with SIGKILL at a random moment,
   ``--kills`` times; each time the directory is loaded and compared with both models.
   Done for ``save`` as it is and for the 0.1 scheme (two files, each replaced atomically,
   no digest).
2. A fit with a user callback that has state (an epoch counter driving the learning rate) dies
   in epoch 3 of 4 and is resumed by a new estimator with a new callback; the largest
   difference in ``predict_proba`` from the uninterrupted run, with the callbacks' state in the
   checkpoint and without it (as 0.1 did).

    python benchmarks/reliability_kills.py [--kills 25]
"""

import argparse
import itertools
import json
import multiprocessing
import os
import signal
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from conftest import make_folder, tiny_classifier  # noqa: E402
from skorch.callbacks import Callback  # noqa: E402

import imbal_estimators.estimator.persistence as persistence  # noqa: E402
import imbal_estimators.training.checkpoint as checkpoint  # noqa: E402
from imbal_estimators import SmallCNN, load, load_image_folder  # noqa: E402
from imbal_estimators.io.atomic import atomic_write  # noqa: E402


def two_files_scheme(path, files, replaceable=()):
    """How 0.1 saved: the weights, then the config, each file replaced atomically, and no
    digest of the weights for load to check."""
    config = json.loads(files["config.json"])
    del config["files"]
    files = {**files, "config.json": json.dumps(config).encode()}
    os.makedirs(path, exist_ok=True)
    for name in ("model.safetensors", "config.json"):
        atomic_write(os.path.join(path, name), lambda file, d=files[name]: file.write(d))


def save_forever(models, path):
    torch.set_num_threads(1)
    for i in itertools.count():
        models[i % 2].save(path)


def outcome(path, models):
    if not os.path.exists(os.path.join(path, "config.json")):
        return "nothing saved yet"
    try:
        loaded = load(path)
    except Exception as exc:  # noqa: BLE001 - what load says is the result
        return f"refused ({type(exc).__name__})"
    for model in models:
        if loaded.classes_.tolist() == model.classes_.tolist():
            state, expected = loaded.module_.state_dict(), model.module_.state_dict()
            same = all(torch.equal(state[k], expected[k]) for k in expected)
            return "whole" if same else "MIXED (wrong weights)"
    return "MIXED (wrong classes)"


def kill_saves(models, n_kills, scheme, seed=0):
    rng = np.random.default_rng(seed)
    context = multiprocessing.get_context("fork")
    counts = {}
    with tempfile.TemporaryDirectory() as root:
        path = os.path.join(root, "model")
        original = persistence.publish_directory
        persistence.publish_directory = scheme or original
        try:
            for _ in range(n_kills):
                child = context.Process(target=save_forever, args=(models, path))
                child.start()
                time.sleep(float(rng.uniform(0.05, 0.4)))
                os.kill(child.pid, signal.SIGKILL)
                child.join()
                result = outcome(path, models)
                counts[result] = counts.get(result, 0) + 1
        finally:
            persistence.publish_directory = original
    return counts


class Counter(Callback):
    """A hand-written schedule: the learning rate grows tenfold with each epoch it saw."""

    def initialize(self):
        self.seen_ = 0
        return self

    def on_epoch_begin(self, net, **kwargs):
        for group in net.optimizer_.param_groups:
            group["lr"] = 1e-3 * 10**self.seen_

    def on_epoch_end(self, net, **kwargs):
        self.seen_ += 1


class Died(BaseException):
    pass


class DieInEpoch3(Callback):
    def on_batch_end(self, net, training=False, **kwargs):
        if training and len(net.history) == 3 and len(net.history[-1]["batches"]) == 2:
            raise Died


def resume_difference(X, y, keep_callback_state):
    run = dict(max_epochs=4, lr=0.01, batch_size=8, random_state=3)
    original = checkpoint.attribute_state
    if not keep_callback_state:
        checkpoint.attribute_state = lambda callback: {}
    try:
        with tempfile.TemporaryDirectory() as directory:
            try:
                callbacks = [("marker", Counter()), ("die", DieInEpoch3())]
                tiny_classifier(**run, checkpoint_dir=directory, callbacks=callbacks).fit(X, y)
            except Died:
                pass
            marker = [("marker", Counter())]  # the same command again: a new callback
            resumed = tiny_classifier(**run, checkpoint_dir=directory, callbacks=marker)
            resumed.fit(X, y)
    finally:
        checkpoint.attribute_state = original
    uninterrupted = tiny_classifier(**run, callbacks=[("marker", Counter())]).fit(X, y)
    return float(np.abs(resumed.predict_proba(X) - uninterrupted.predict_proba(X)).max())


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kills", type=int, default=25)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        binary = load_image_folder(make_folder(os.path.join(root, "b"), {"cat": 48, "dog": 16}))
        X, y = binary
        other = (X[::-1], np.where(y == "cat", "x", "y")[::-1])  # same shapes, other labels
        models = [
            tiny_classifier(module=SmallCNN, max_epochs=1, train_split=False).fit(*data)
            for data in (binary, other)
        ]
        for name, scheme in [("save (0.2)", None), ("0.1 scheme", two_files_scheme)]:
            print(f"{name}: {args.kills} kills -> {kill_saves(models, args.kills, scheme)}")
        for keep in (True, False):
            difference = resume_difference(*binary, keep_callback_state=keep)
            label = "with" if keep else "without"
            print(f"resume {label} the callbacks' state: max |dp| = {difference:.3g}")


if __name__ == "__main__":
    main()
