"""Objective evaluations of compare's frozen head fits, with and without the folds starting
from the head on every row (``head_folds.PathStart.load(..., other=...)``).

Writes the ImageFolder of ``frozen_screen_speed.py`` (1,000 + 300 JPEGs, noise plus shapes,
``compare_timing.write_folder``) and a resnet34 weights file of a random initialization,
computes the body's features once (cached), then fits the head of each of compare's 22
configurations on the training part of one stratified fold of 5, as compare's screen does,
twice: the folds' paths starting from their own last solutions only, then also from the
head on every row at the same penalty (the package's). It prints, for each, the wall time,
the L-BFGS solves and objective evaluations, and whether every fit kept the same penalty
and predicted the same probabilities. ``--shared-penalty`` also times a design not taken:
CE's path, then every other configuration at CE's kept penalty.

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


def fit_heads(paths, labels, train, base, own_path_only, penalties=None):
    """Fit every configuration's head; returns (seconds, solves, evaluations, fits).
    ``penalties``: the path to solve instead of ``HEAD_PENALTIES``."""
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
    whole_path = head_solver.HEAD_PENALTIES
    if penalties is not None:
        head_solver.HEAD_PENALTIES = penalties
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
        head_solver.HEAD_PENALTIES = whole_path
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
    if args.shared_penalty:
        shared_penalty(paths, labels, train, test, base, after)


def shared_penalty(paths, labels, train, test, base, whole):
    """What a screen would cost that solved CE's path only and fitted every other
    configuration at CE's kept penalty (one point: its head on every row and its 5 folds):
    a design not taken (the penalty would no longer be each configuration's own)."""
    from sklearn.metrics import f1_score

    from imbal_estimators import ImageImbalanceClassifier

    start = time.perf_counter()
    ce = ImageImbalanceClassifier(**base, threshold="auto").fit(paths[train], labels[train])
    penalty = ce.history[ce.best_epoch_ - 1, "head_penalty"]
    _, solves, evaluations, fits = fit_heads(
        paths, labels, train, base, False, penalties=(penalty,)
    )
    seconds = time.perf_counter() - start  # CE's path too
    rare = np.unique(labels)[np.argmin(np.unique(labels, return_counts=True)[1])]

    def f1(clf):
        return f1_score(labels[test], clf.predict(paths[test]), pos_label=rare)

    change = max(abs(f1(a) - f1(b)) for a, b in zip(whole, fits, strict=True))
    print(
        f"CE's path, then every configuration at its kept penalty ({penalty:g}): "
        f"{seconds:.1f} s, {solves} solves after CE's, {evaluations} evaluations; the largest "
        f"change of a held-out F1 against each configuration's own path: {change:.3f}"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--common", type=int, default=1000)
    parser.add_argument("--rare", type=int, default=300)
    parser.add_argument("--side", type=int, default=64, help="JPEG side in px")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument(
        "--shared-penalty",
        action="store_true",
        help="also time a screen that fits every configuration at CE's kept penalty",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run(args, tmp)


if __name__ == "__main__":
    main()
