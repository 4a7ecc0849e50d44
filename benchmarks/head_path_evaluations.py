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
CE's path, then every other configuration at CE's kept penalty. ``--sklearn`` also times
CE's head against scikit-learn's ``LogisticRegressionCV`` doing the same work on the same
rows (the path's 11 penalties as ``Cs``, 5 folds, balanced accuracy, one thread): what a
careful user's reference implementation of one such head costs.

Run::

    python benchmarks/head_path_evaluations.py                 # 64 px: the heads' cost only
    python benchmarks/head_path_evaluations.py --image-size 224
    python benchmarks/head_path_evaluations.py --sklearn
"""

import argparse
import os
import tempfile
import time
import warnings

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
    if args.sklearn:
        against_sklearn(paths, labels, train, base, weights, args.image_size)


def against_sklearn(paths, labels, train, base, weights, image_size, repeats=3):
    """Seconds of CE's head (the estimator's fit on cached features) against
    ``LogisticRegressionCV`` on the same network's features of the same rows."""
    from PIL import Image
    from sklearn.linear_model import LogisticRegressionCV
    from threadpoolctl import threadpool_limits

    from imbal_estimators import ImageImbalanceClassifier
    from imbal_estimators.training.head_solver import HEAD_PENALTIES

    body = torchvision.models.resnet34()
    body.load_state_dict(torch.load(weights, weights_only=True))
    body.fc = torch.nn.Identity()
    body.eval()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)

    def pixels(path):
        with Image.open(path) as image:
            image = image.convert("RGB").resize((image_size, image_size), Image.BILINEAR)
            return (torch.from_numpy(np.array(image)).permute(2, 0, 1) / 255 - mean) / std

    with torch.no_grad():
        X = body(torch.stack([pixels(p) for p in paths[train]])).numpy()
    X = X / np.sqrt((X**2).mean())  # unit mean square, the path's units
    y = labels[train]
    n_fit = len(y) * 4 / 5  # the rows of an inner fold
    ours, theirs = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        ImageImbalanceClassifier(**base, threshold="auto").fit(paths[train], y)
        ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        with threadpool_limits(1), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # scikit-learn 1.8's l1_ratios notice
            LogisticRegressionCV(
                Cs=[1 / (c * n_fit) for c in HEAD_PENALTIES],
                cv=5,
                scoring="balanced_accuracy",
                max_iter=1000,
            ).fit(X, y)
        theirs.append(time.perf_counter() - start)
    print(
        f"CE's head, best of {repeats}: the estimator's fit (path of {len(HEAD_PENALTIES)} "
        f"penalties x (every row + 5 folds), threshold, predictions) {min(ours):.2f} s; "
        f"LogisticRegressionCV ({len(HEAD_PENALTIES)} Cs x 5 folds + refit, one thread) "
        f"{min(theirs):.2f} s"
    )


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
    parser.add_argument(
        "--sklearn",
        action="store_true",
        help="also time CE's head against scikit-learn's LogisticRegressionCV",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run(args, tmp)


if __name__ == "__main__":
    main()
