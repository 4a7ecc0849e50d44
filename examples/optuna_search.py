"""Optuna search over loss, gamma, alpha and sampler.

Uses ``imbal_estimators.ImbalanceSearchCV`` (persistent studies, pruning of bad
trials) when this version has it, otherwise optuna-integration's
``OptunaSearchCV`` (``pip install -e ".[tune]"``) with the same space.

    python examples/optuna_search.py               # the demo digits, 20 trials
    python examples/optuna_search.py --quick       # seconds: 3 trials on tiny data
"""

import argparse

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution
from sklearn.model_selection import StratifiedKFold

import imbal_estimators
from imbal_estimators import (
    ImageImbalanceClassifier,
    SmallCNN,
    load_image_folder,
    make_demo_image_folder,
)

SPACE = {
    "loss": CategoricalDistribution(["ce", "focal"]),
    "gamma": FloatDistribution(0.0, 3.0),
    "alpha": CategoricalDistribution([None, "balanced", "sqrt", "effective"]),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="an ImageFolder with classes 0 and 1; default: the demo")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="tiny data, 3 trials, 1 epoch")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    sizes = dict(n_majority=60, n_minority=15) if args.quick else {}
    X, y = load_image_folder(args.data or make_demo_image_folder("demo_data", **sizes))
    clf = ImageImbalanceClassifier(
        module=SmallCNN,  # on real photos: drop this line to fine-tune a pretrained ResNet34
        image_size=16 if args.quick else 32,
        max_epochs=1 if args.quick else 5,
        lr=3e-3,
        batch_size=16,
        verbose=0,
        random_state=0,
    )
    n_trials = 3 if args.quick else args.trials
    cv = StratifiedKFold(2 if args.quick else 3, shuffle=True, random_state=0)
    if hasattr(imbal_estimators, "ImbalanceSearchCV"):
        search = imbal_estimators.ImbalanceSearchCV(
            clf, SPACE, n_trials=n_trials, cv=cv, scoring="f1", random_state=0
        )
    else:
        from optuna_integration import OptunaSearchCV

        search = OptunaSearchCV(
            clf, SPACE, n_trials=n_trials, cv=cv, scoring="f1", random_state=0, refit=False
        )
    search.fit(X, y)
    print(f"{type(search).__name__}: {n_trials} trials")
    print(f"best F1 {search.best_score_:.3f} with {search.best_params_}")


if __name__ == "__main__":
    main()
