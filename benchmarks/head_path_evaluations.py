"""Objective evaluations of compare's frozen head fits, with and without the folds starting
from the head on every row (``head_folds.PathStart.load(..., other=...)``).

Writes the ImageFolder of ``frozen_screen_speed.py`` (1,000 + 300 JPEGs, noise plus shapes,
``compare_timing.write_folder``) and a resnet34 weights file of a random initialization,
computes the body's features once (cached), then fits the head of each of compare's 22
configurations on the training part of one stratified fold of 5, as compare's screen does,
twice: the folds' paths starting from their own last solutions only, then also from the
head on every row at the same penalty (the package's). It prints, for each, the wall time,
the L-BFGS solves and objective evaluations, and whether every fit kept the same penalty
and predicted the same probabilities.

Run::

    python benchmarks/head_path_evaluations.py                 # 64 px: the heads' cost only
    python benchmarks/head_path_evaluations.py --image-size 224
"""

import argparse
import os
import tempfile
import time

import numpy as np
import scipy.optimize
import torch
import torchvision
from compare_timing import write_folder
from sklearn.model_selection import StratifiedKFold


def fit_heads(paths, labels, train, base, own_path_only):
    """Fit every configuration's head; returns (seconds, solves, evaluations, fits)."""
    from imbal_estimators import ImageImbalanceClassifier
    from imbal_estimators.app.compare import make_sampler
    from imbal_estimators.app.methods import default_configurations
    from imbal_estimators.training import head_folds, head_solver

    counts = {"solves": 0, "evaluations": 0}
    minimize, load = scipy.optimize.minimize, head_folds.PathStart.load

    def counted(*args, **kwargs):
        result = minimize(*args, **kwargs)
        counts["solves"] += 1
        counts["evaluations"] += int(result.nfev)
        return result

    def own_path(self, head, objective, other=None):
        return load(self, head, objective)

    head_solver.scipy.optimize.minimize = counted
    if own_path_only:
        head_folds.PathStart.load = own_path
    try:
        fits = []
        start = time.perf_counter()
        for configuration in default_configurations(features=True):
            params = dict(configuration.params)
            params["sampler"] = make_sampler(params.get("sampler"))
            clf = ImageImbalanceClassifier(**base, **params, threshold="auto")
            fits.append(clf.fit(paths[train], labels[train]))
        seconds = time.perf_counter() - start
    finally:
        head_solver.scipy.optimize.minimize = minimize
        head_folds.PathStart.load = load
    return seconds, counts["solves"], counts["evaluations"], fits


def run(args, tmp):
    from imbal_estimators import ImageImbalanceClassifier, load_image_folder

    torch.set_num_threads(1)
    data = write_folder(os.path.join(tmp, "data"), args.common, args.rare, args.side)
    weights = os.path.join(tmp, "resnet34.pth")
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet34().state_dict(), weights)
    paths, labels = (np.asarray(a) for a in load_image_folder(data))
    train, test = next(StratifiedKFold(5, shuffle=True, random_state=0).split(paths, labels))
    base = dict(
        freeze_backbone=True,
        backbone="resnet34",
        weights=weights,
        image_size=args.image_size,
        device="cpu",
        random_state=0,
        verbose=0,
    )
    ImageImbalanceClassifier(**base).fit(paths[train], labels[train])  # the features, cached
    results = {}
    for own_path_only in (True, False):
        results[own_path_only] = fit_heads(paths, labels, train, base, own_path_only)
    print(f"{len(train)} training rows, {args.image_size} px, resnet34 features, one fold of 5")
    print("| folds start from | seconds | solves | objective evaluations |\n|---|---|---|---|")
    for own_path_only, label in ((True, "their own path"), (False, "also the head on every row")):
        seconds, solves, evaluations, _ = results[own_path_only]
        print(f"| {label} | {seconds:.1f} | {solves} | {evaluations} |")
    before, after = results[True][3], results[False][3]
    same_penalty = sum(a.best_epoch_ == b.best_epoch_ for a, b in zip(before, after, strict=True))
    gap = max(
        float(np.abs(a.predict_proba(paths[test]) - b.predict_proba(paths[test])).max())
        for a, b in zip(before, after, strict=True)
    )
    print(
        f"the same kept penalty in {same_penalty} of {len(before)} fits; largest difference "
        f"of a held-out probability: {gap:.2e}"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--common", type=int, default=1000)
    parser.add_argument("--rare", type=int, default=300)
    parser.add_argument("--side", type=int, default=64, help="JPEG side in px")
    parser.add_argument("--image-size", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run(args, tmp)


if __name__ == "__main__":
    main()
