"""Grid search over focal loss gamma x class weights alpha, with stratified CV.

gamma and alpha interact (Lin et al. 2017), so search them together. gamma=0 is
cross-entropy, so the grid contains the baseline.

    python examples/grid_search.py               # the demo digits, about 5 minutes on 2 CPU cores
    python examples/grid_search.py --data DIR    # your ImageFolder (folders 0 and 1)
    python examples/grid_search.py --quick       # seconds: a smoke run
"""

import argparse

from sklearn.model_selection import GridSearchCV, StratifiedKFold

from imbal_estimators import (
    ImageImbalanceClassifier,
    SmallCNN,
    load_image_folder,
    make_demo_image_folder,
)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="an ImageFolder; default: the embedded demo data")
    parser.add_argument("--quick", action="store_true", help="tiny data and grid, 1 epoch")
    args = parser.parse_args()

    sizes = dict(n_majority=60, n_minority=15) if args.quick else {}
    X, y = load_image_folder(args.data or make_demo_image_folder("demo_data", **sizes))
    grid = {"gamma": [0.0, 1.0, 2.0], "alpha": [None, "balanced", "effective"]}
    if args.quick:
        grid = {"gamma": [0.0, 2.0], "alpha": [None, "balanced"]}
    clf = ImageImbalanceClassifier(
        loss="focal",
        module=SmallCNN,  # on real photos: drop this line to fine-tune a pretrained ResNet34
        image_size=16 if args.quick else 32,
        max_epochs=1 if args.quick else 5,
        lr=3e-3,
        batch_size=16,
        verbose=0,
        random_state=0,
    )
    search = GridSearchCV(
        clf, grid, cv=StratifiedKFold(2 if args.quick else 3), scoring="f1", refit=False
    )
    search.fit(X, y)
    results = search.cv_results_
    print(f"{'gamma':>5}  {'alpha':10s} {'F1 mean':>8} {'sd':>6}")
    for rank in sorted(range(len(results["params"])), key=lambda i: results["rank_test_score"][i]):
        params = results["params"][rank]
        print(
            f"{params['gamma']:>5}  {params['alpha']!s:10s} "
            f"{results['mean_test_score'][rank]:>8.3f} {results['std_test_score'][rank]:>6.3f}"
        )
    print(f"best: {search.best_params_} (F1 {search.best_score_:.3f})")


if __name__ == "__main__":
    main()
