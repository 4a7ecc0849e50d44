"""A GridSearchCV of 8 candidates x 3 folds: cache on/off, frozen backbone vs full fine-tuning.

The grid is focal loss with ``gamma`` in {1, 2} x ``alpha`` in {None, "balanced",
"effective", "sqrt"}, scored by F1 with ``StratifiedKFold(3)`` (24 fits, no refit).
The backbone starts from a weights file, as a user's ImageNet weights would
(downloads are not possible here, so the file holds a random initialization: the
cost is the same). Each configuration starts with empty in-memory caches; the
first row is then run a second time in the same process ("warm").

Run::

    python benchmarks/grid_search.py                 # resnet34, 240 images at 64 px
    python benchmarks/grid_search.py --frozen-only   # skip the (slow) full fine-tuning rows
    python benchmarks/grid_search.py --quick         # a few seconds, for CI
"""

import argparse
import os
import tempfile
import time

import numpy as np
import torch
import torchvision
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from imbal_estimators import ImageImbalanceClassifier, load_image_folder, make_demo_image_folder
from imbal_estimators.data.cache import clear_memory_caches

GRID = {"gamma": [1.0, 2.0], "alpha": [None, "balanced", "effective", "sqrt"]}


def run_grid(X, y, clear=True, **params):
    """Seconds for the whole grid, and the best mean F1."""
    if clear:
        clear_memory_caches()
    search = GridSearchCV(
        ImageImbalanceClassifier(loss="focal", **params),
        GRID,
        cv=StratifiedKFold(3, shuffle=True, random_state=0),
        scoring="f1",
        refit=False,
        error_score="raise",
    )
    start = time.perf_counter()
    search.fit(X, y)
    return time.perf_counter() - start, search.best_score_


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=240)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--backbone", default="resnet34")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--frozen-only", action="store_true")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.n_images, args.image_size, args.backbone = 48, 16, "shufflenet_v2_x0_5"
        args.epochs, args.frozen_only = 1, True

    with tempfile.TemporaryDirectory() as tmp:
        n_minority = args.n_images // 5
        root = make_demo_image_folder(
            os.path.join(tmp, "data"),
            n_majority=args.n_images - n_minority,
            n_minority=n_minority,
            image_size=args.image_size,
        )
        X, y = load_image_folder(root)
        weights = os.path.join(tmp, f"{args.backbone}.pth")
        torch.manual_seed(0)
        torch.save(torchvision.models.get_model(args.backbone).state_dict(), weights)
        common = dict(
            backbone=args.backbone,
            weights=weights,
            image_size=args.image_size,
            max_epochs=args.epochs,
            batch_size=32,
            lr=1e-3,
            device="cpu",
            verbose=0,
            random_state=0,
        )
        rows = [
            ("freeze_backbone=True, cache='memory'", dict(freeze_backbone=True, cache="memory")),
            ("freeze_backbone=True, cache=None", dict(freeze_backbone=True, cache=None)),
        ]
        if not args.frozen_only:
            rows += [
                ("full fine-tuning, cache='memory'", dict(cache="memory")),
                ("full fine-tuning, cache=None", dict(cache=None)),
            ]
        results = {}
        for name, params in rows:
            results[name] = run_grid(X, y, **common, **params)
            print(f"  {name}: {results[name][0]:.1f} s", flush=True)
        warm_name = rows[0][0] + ", run again in the same process"
        results[warm_name] = run_grid(X, y, clear=False, **common, **rows[0][1])

    reference = results["freeze_backbone=True, cache=None"][0]
    print(
        f"\n{args.backbone}, {len(X)} images at {args.image_size} px, {args.epochs} epochs, "
        f"8 candidates x 3 folds, CPU threads {torch.get_num_threads()}"
    )
    print(f"{'configuration':<62} {'seconds':>8} {'best F1':>8} {'speed-up':>9}")
    for name, (seconds, score) in results.items():
        print(f"{name:<62} {seconds:>8.1f} {score:>8.3f} {reference / seconds:>8.1f}x")
    print("(speed-up against freeze_backbone=True, cache=None)")
    assert np.isfinite([score for _, score in results.values()]).all()


if __name__ == "__main__":
    main()
