"""A grid of 8 candidates x 3 folds: cache on/off, frozen backbone vs full fine-tuning.

The grid is focal loss with ``gamma`` in {1, 2} x ``alpha`` in {None, "balanced",
"effective", "sqrt"}, scored by F1 with ``StratifiedKFold(3)`` (24 fits, no refit).
The backbone starts from a weights file, as a user's ImageNet weights would
(downloads are not possible here, so the file holds a random initialization: the
cost is the same); ``--random-init`` uses ``weights=None`` instead, a body drawn from
``random_state`` as the test suite's fits do. An untimed one-epoch fit with
``cache=None`` on all the images comes first, so that the first row does not pay for
the process's one-time start (oneDNN building its kernels for each batch shape, lazy
imports) that the later rows skip.
Each configuration starts with empty in-memory caches (decoded images, features, head
recipes, pre-flight scans); the cached rows are then run a second time in the same
process ("run again").

The rows run scikit-learn's ``GridSearchCV`` (one ``fit`` per candidate and fold),
except the ``fit_many`` rows: the same 24 fits, the 8 candidates of each fold
trained together by :func:`imbal_estimators.training.heads.fit_many`, scored
the same way (the best mean F1 must equal GridSearchCV's).

Run::

    python benchmarks/grid_search.py                 # resnet34, 240 images at 64 px
    python benchmarks/grid_search.py --frozen-only   # skip the (slow) full fine-tuning rows
    python benchmarks/grid_search.py --frozen-only --image-size 128
    python benchmarks/grid_search.py --frozen-only --random-init  # weights=None
    python benchmarks/grid_search.py --quick         # a few seconds, for CI
    python benchmarks/grid_search.py --profile       # cProfile of one warm cached grid
"""

import argparse
import os
import tempfile
import time

import numpy as np
import torch
import torchvision
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.metrics import get_scorer
from sklearn.model_selection import GridSearchCV, ParameterGrid, StratifiedKFold

from imbal_estimators import ImageImbalanceClassifier, load_image_folder, make_demo_image_folder
from imbal_estimators.data.cache import clear_memory_caches
from imbal_estimators.data.preflight import clear_scan_memo
from imbal_estimators.models.features import clear_head_recipes
from imbal_estimators.training.heads import fit_many

GRID = {"gamma": [1.0, 2.0], "alpha": [None, "balanced", "effective", "sqrt"]}
CV = StratifiedKFold(3, shuffle=True, random_state=0)


def clear_process_caches():
    clear_memory_caches()
    clear_head_recipes()
    clear_scan_memo()


def run_grid(X, y, clear=True, **params):
    """Seconds for the whole grid with GridSearchCV, and the best mean F1."""
    if clear:
        clear_process_caches()
    search = GridSearchCV(
        ImageImbalanceClassifier(loss="focal", **params),
        GRID,
        cv=CV,
        scoring="f1",
        refit=False,
        error_score="raise",
    )
    start = time.perf_counter()
    search.fit(X, y)
    return time.perf_counter() - start, search.best_score_


def run_fit_many(X, y, clear=True, **params):
    """Seconds for the same grid with the candidates of each fold fitted by fit_many."""
    if clear:
        clear_process_caches()
    base = ImageImbalanceClassifier(loss="focal", **params)
    candidates = list(ParameterGrid(GRID))
    scorer = get_scorer("f1")
    start = time.perf_counter()
    scores = np.zeros((len(candidates), CV.get_n_splits()))
    for fold, (train, test) in enumerate(CV.split(X, y)):
        fitted = fit_many([clone(base).set_params(**p) for p in candidates], X[train], y[train])
        for i, estimator in enumerate(fitted):
            scores[i, fold] = scorer(estimator, X[test], y[test])
    return time.perf_counter() - start, scores.mean(axis=1).max()


class NoOpClassifier(ClassifierMixin, BaseEstimator):
    """Fits nothing, predicts the first class: what GridSearchCV and its scorer cost alone."""

    def __init__(self, gamma=1.0, alpha=None):
        self.gamma = gamma
        self.alpha = alpha

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])


def grid_floor(X, y, repeats=5):
    """Milliseconds per candidate and fold of the same GridSearchCV over a no-op estimator
    (best of ``repeats``): the part of a fit and score that no estimator can save."""
    search = GridSearchCV(NoOpClassifier(), GRID, cv=CV, scoring="f1", refit=False)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        search.fit(X, y)
        times.append(time.perf_counter() - start)
    return min(times) / (len(ParameterGrid(GRID)) * CV.get_n_splits()) * 1e3


def bare_loop_ms(n_train, n_valid, epochs, batch_size=32, dim=512, repeats=50):
    """Milliseconds of the same head training in plain PyTorch (best of ``repeats``): a
    Linear head, focal loss (gamma=2), AdamW, ``epochs`` epochs of batches and a
    validation pass each, on one thread, with no estimator, callbacks or checks around it.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # as the estimator's head epochs run
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(n_train + n_valid, dim, generator=generator)
    targets = torch.randint(0, 2, (n_train + n_valid,), generator=generator)

    def fit():
        head = torch.nn.Linear(dim, 2)
        optimizer = torch.optim.AdamW(head.parameters(), lr=1e-3)
        for _ in range(epochs):
            for start in range(0, n_train, batch_size):
                logp = torch.log_softmax(head(features[start : start + batch_size]), 1)
                logp = logp.gather(1, targets[start : start + batch_size, None]).squeeze(1)
                loss = (-((1 - logp.exp()) ** 2) * logp).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            with torch.no_grad():
                head(features[n_train:])

    times = []
    try:
        for _ in range(repeats):
            start = time.perf_counter()
            fit()
            times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(previous)
    return min(times) * 1e3


def profile_grid(X, y, **params):
    """cProfile of the second (warm) GridSearchCV run of the cached frozen grid."""
    import cProfile
    import pstats

    print(f"cold run (features computed, not profiled): {run_grid(X, y, **params)[0]:.1f} s")
    profile = cProfile.Profile()
    profile.enable()
    seconds, _ = run_grid(X, y, clear=False, **params)
    profile.disable()
    print(f"warm run: {seconds:.1f} s for 24 fits and their scoring; the biggest costs:")
    pstats.Stats(profile).sort_stats(os.environ.get("SORT", "cumulative")).print_stats(
        r"imbal_estimators|skorch|torch", int(os.environ.get("NPROF", 30))
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=240)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--backbone", default="resnet34")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--frozen-only", action="store_true")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument(
        "--random-init",
        action="store_true",
        help="weights=None (a random body drawn from random_state) instead of a weights file",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke run")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="only profile a warm GridSearchCV run of the frozen, cached grid (cProfile)",
    )
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
            weights=None if args.random_init else weights,
            image_size=args.image_size,
            max_epochs=args.epochs,
            batch_size=32,
            lr=1e-3,
            device="cpu",
            verbose=0,
            random_state=0,
            precision=args.precision,
        )
        frozen = dict(freeze_backbone=True, cache="memory")
        warm_up = {**common, "max_epochs": 1, "freeze_backbone": True, "cache": None}
        ImageImbalanceClassifier(**warm_up).fit(X, y)  # the batch shapes every row will see
        if args.profile:
            profile_grid(X, y, **common, **frozen)
            return
        rows = [
            ("freeze_backbone=True, cache='memory'", run_grid, frozen),
            ("freeze_backbone=True, cache=None", run_grid, dict(freeze_backbone=True, cache=None)),
            ("fit_many, freeze_backbone=True, cache='memory'", run_fit_many, frozen),
        ]
        if not args.frozen_only:
            rows += [
                ("full fine-tuning, cache='memory'", run_grid, dict(cache="memory")),
                ("full fine-tuning, cache=None", run_grid, dict(cache=None)),
            ]
        results = {}
        for name, run, params in rows:
            results[name] = run(X, y, **common, **params)
            print(f"  {name}: {results[name][0]:.1f} s", flush=True)
        for name, run, params in (rows[0], rows[2]):
            again = name + ", run again"
            results[again] = run(X, y, clear=False, **common, **params)
            print(f"  {again}: {results[again][0]:.1f} s", flush=True)

    reference = results["freeze_backbone=True, cache=None"][0]
    print(
        f"\n{args.backbone} ({'weights=None' if args.random_init else 'weights file'}), "
        f"{len(X)} images at {args.image_size} px, {args.epochs} epochs, "
        f"8 candidates x 3 folds, precision={args.precision!r}, "
        f"CPU threads {torch.get_num_threads()}"
    )
    print(f"{'configuration':<62} {'seconds':>8} {'best F1':>8} {'speed-up':>9}")
    for name, (seconds, score) in results.items():
        print(f"{name:<62} {seconds:>8.2f} {score:>8.3f} {reference / seconds:>8.1f}x")
    print("(speed-up against freeze_backbone=True, cache=None; 'run again': same process,")
    print(" caches kept)")
    n_fits = len(ParameterGrid(GRID)) * CV.get_n_splits()
    cached, again = results[rows[0][0]][0], results[rows[0][0] + ", run again"][0]
    floor = grid_floor(X, y)
    n_train = len(X) * (CV.get_n_splits() - 1) // CV.get_n_splits()
    n_valid = n_train // 5  # the estimator's default validation split
    bare = bare_loop_ms(n_train - n_valid, n_valid, args.epochs)
    print(
        f"per fit and score: cache=None {reference / n_fits * 1e3:.0f} ms, cached run again "
        f"{again / n_fits * 1e3:.1f} ms (of which GridSearchCV and its F1 scorer alone: "
        f"{floor:.1f} ms); the cold grid's one-time part: {(cached - again) * 1e3:.0f} ms"
    )
    one_time = cached - again
    needed = (reference / 20 - one_time) / (n_fits - 1) * 1e3
    print(
        f"20x cold would need a fit and score of at most {needed:.1f} ms; the same "
        f"{args.epochs} epochs of a linear head in a bare PyTorch loop take {bare:.1f} ms"
    )
    scores = [score for _, score in results.values()]
    assert np.isfinite(scores).all()
    frozen_scores = [results[name][1] for name in results if "freeze_backbone=True" in name]
    assert np.allclose(frozen_scores, frozen_scores[0]), "the frozen rows disagree"


if __name__ == "__main__":
    main()
