"""Quick start: cross-validate three ways of handling imbalance on an image folder.

By default it builds the embedded demo folder (handwritten digits that ship with
scikit-learn: 600 images of class 0 = "any digit but 8", 120 of class 1 = "an 8")
and compares, with stratified 3-fold cross-validation:

* plain cross-entropy,
* focal loss (gamma=2) with "balanced" class weights,
* cross-entropy on randomly over-sampled training folds.

Then it fits the best configuration on all images and predicts a few.

    python examples/quickstart.py                  # the demo, about 4-5 minutes on 2 CPU cores
    python examples/quickstart.py --data DIR       # your own ImageFolder
    python examples/quickstart.py --quick          # seconds: a smoke run
"""

import argparse
import time

import numpy as np
from imblearn.over_sampling import RandomOverSampler
from sklearn.model_selection import StratifiedKFold, cross_validate

from imbal_estimators import (
    ImageImbalanceClassifier,
    SmallCNN,
    load_image_folder,
    make_demo_image_folder,
)

CANDIDATES = {
    "cross-entropy": dict(loss="ce"),
    "focal, gamma=2, alpha=balanced": dict(loss="focal", gamma=2.0, alpha="balanced"),
    "cross-entropy + over-sampling": dict(loss="ce", sampler=RandomOverSampler()),
}


def main():
    parser = argparse.ArgumentParser(description="Compare imbalance strategies with CV.")
    parser.add_argument("--data", help="an ImageFolder; default: the embedded demo data")
    parser.add_argument("--weights", default=None, help="None (default here), DEFAULT or a path")
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="tiny model and data, 1 epoch")
    args = parser.parse_args()

    root = args.data or make_demo_image_folder(
        "demo_data", n_majority=120 if args.quick else 600, n_minority=24 if args.quick else 120
    )
    X, y = load_image_folder(root)
    labels, counts = np.unique(y, return_counts=True)
    print(
        f"{root}: {len(X)} images, "
        + ", ".join(f"class {c}: {n}" for c, n in zip(labels, counts, strict=True))
    )

    base = dict(
        backbone=args.backbone,
        weights=None if args.weights in (None, "None", "none") else args.weights,
        image_size=32,
        max_epochs=1 if args.quick else args.epochs,
        lr=1e-3,
        batch_size=16,
        verbose=0,
        random_state=0,
    )
    if args.quick:  # a network that trains in a second on a CPU, even a busy one
        base["module"] = SmallCNN
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    scoring = ["f1", "balanced_accuracy"]
    results = {}
    print(f"\n{'configuration':34s} {'F1 (mean ± sd)':>16s} {'bal. acc.':>16s} {'time':>6s}")
    for name, params in CANDIDATES.items():
        start = time.perf_counter()
        scores = cross_validate(
            ImageImbalanceClassifier(**base, **params), X, y, cv=cv, scoring=scoring
        )
        results[name] = scores["test_f1"].mean()
        print(
            f"{name:34s} {scores['test_f1'].mean():>9.3f} ± {scores['test_f1'].std():.3f} "
            f"{scores['test_balanced_accuracy'].mean():>9.3f} ± "
            f"{scores['test_balanced_accuracy'].std():.3f} {time.perf_counter() - start:>5.0f}s"
        )

    best = max(results, key=results.get)
    print(f"\nBest by mean F1: {best}. Fitting it on all images...")
    clf = ImageImbalanceClassifier(**base, **CANDIDATES[best]).fit(X, y)
    print(f"kept epoch {clf.best_epoch_}; class weights {clf.class_weight_}")
    print(
        "first predictions:",
        clf.predict(X[:5]),
        "probabilities of class 1:",
        clf.predict_proba(X[:5])[:, 1].round(3),
    )
    print(
        "\nDifferences smaller than the ± spread are noise. On your own photos use the "
        "pretrained default (weights='DEFAULT') and backbone='resnet34'."
    )


if __name__ == "__main__":
    main()
