"""One fit against an ensemble of seeds, on the answer-quality sets' held-out test parts.

For each set of ``benchmarks/answer_quality.py`` and each of its stratified 70/30
splits, fits ``ImageImbalanceClassifier`` on the 70 % part with ``random_state``
0, 1, ..., and scores the F1 of the rare class on the 30 % part:

* **one fit**: each seed alone (the mean over the seeds is the expected score of
  one fit);
* **ensemble of k**: ``SeedEnsembleClassifier`` of the first k seeds (probabilities
  averaged, the mean of the members' tuned thresholds), which is what
  ``compare`` saves (``--ensemble``, default 3).

Configurations: cross-entropy and cross-entropy with random over-sampling, both
with a tuned threshold and the epoch kept by average precision (compare's fits
for binary F1). Same network and settings as the answer-quality benchmark, float32.

Run from the repository root (about 2 minutes on 2 cores)::

    PYTHONPATH=$PWD python benchmarks/ensemble_gain.py
    PYTHONPATH=$PWD python benchmarks/ensemble_gain.py --seeds 3 4 5 6 7 --sizes 3 5
"""

import argparse
import os
import sys
import tempfile
import time

import numpy as np
import torch
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedShuffleSplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import answer_quality as aq  # noqa: E402

from imbal_estimators import ImageImbalanceClassifier, SeedEnsembleClassifier, SmallCNN  # noqa: E402

CONFIGURATIONS = {
    "ce + tuned threshold": dict(loss="ce"),
    "ce + over-sampling + tuned threshold": dict(loss="ce", sampler="over"),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sizes", type=int, nargs="+", default=[3], help="ensemble sizes")
    parser.add_argument("--splits", type=int, default=4)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    base = dict(
        module=SmallCNN,
        weights=None,
        augment=False,
        device="cpu",
        verbose=0,
        precision="fp32",
        monitor="average_precision",
        threshold="auto",
        **aq.SETTINGS,
    )
    results, start = {}, time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        sets = aq.build_sets(tmp, False, 0)
        for name, (paths, labels) in sets.items():
            classes, counts = np.unique(labels, return_counts=True)
            rare = classes[np.argmin(counts)]
            splitter = StratifiedShuffleSplit(args.splits, test_size=0.3, random_state=0)
            for train, test in splitter.split(paths, labels):
                for config, params in CONFIGURATIONS.items():
                    members = [
                        ImageImbalanceClassifier(**base, **params, pos_label=rare, random_state=s)
                        for s in args.seeds
                    ]
                    for member in members:
                        member.fit(paths[train], labels[train])
                        score = f1_score(labels[test], member.predict(paths[test]), pos_label=rare)
                        results.setdefault((name, f"{config}: one fit"), []).append(score)
                    for k in args.sizes:
                        ensemble = SeedEnsembleClassifier.from_members(members[:k])
                        score = f1_score(
                            labels[test], ensemble.predict(paths[test]), pos_label=rare
                        )
                        results.setdefault((name, f"{config}: ensemble of {k}"), []).append(score)
            print(f"{name}: {time.perf_counter() - start:.0f} s", flush=True)
    names = list(sets)
    rows = list(dict.fromkeys(method for _, method in results))
    print(f"\nseeds {args.seeds}, {args.splits} splits; F1 of the rare class on the test parts")
    print("| configuration | " + " | ".join(names) + " | mean over sets |")
    print("|---" * (len(names) + 2) + "|")
    for row in rows:
        means = [np.mean(results[name, row]) for name in names]
        print(f"| {row} | " + " | ".join(f"{m:.3f}" for m in means) + f" | {np.mean(means):.3f} |")
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
