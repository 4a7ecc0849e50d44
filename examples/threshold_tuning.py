"""Move the decision threshold with scikit-learn's TunedThresholdClassifierCV.

For F1, the threshold often matters more than the loss: a model trained with
plain cross-entropy predicts the rare class only above probability 0.5, which is
usually too high. TunedThresholdClassifierCV picks the threshold that maximizes
F1 by internal cross-validation on the training data, and is compared here with
the untuned model on a held-out test split.

    python examples/threshold_tuning.py            # the demo digits, a few minutes on 2 CPU cores
    python examples/threshold_tuning.py --quick    # seconds: a smoke run
"""

import argparse

from sklearn.metrics import f1_score, precision_score, recall_score
from sklearn.model_selection import TunedThresholdClassifierCV, train_test_split

from imbal_estimators import (
    ImageImbalanceClassifier,
    SmallCNN,
    load_image_folder,
    make_demo_image_folder,
)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="an ImageFolder with classes 0 and 1; default: the demo")
    parser.add_argument("--quick", action="store_true", help="tiny data, 1 epoch")
    args = parser.parse_args()

    sizes = dict(n_majority=60, n_minority=15) if args.quick else {}
    X, y = load_image_folder(args.data or make_demo_image_folder("demo_data", **sizes))
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.3, stratify=y, random_state=0
    )
    clf = ImageImbalanceClassifier(
        module=SmallCNN,  # on real photos: drop this line to fine-tune a pretrained ResNet34
        image_size=16 if args.quick else 32,
        max_epochs=1 if args.quick else 5,
        lr=3e-3,
        batch_size=16,
        verbose=0,
        random_state=0,
    )
    plain = clf.fit(X_train, y_train)
    tuned = TunedThresholdClassifierCV(
        clf, scoring="f1", cv=2 if args.quick else 3, random_state=0
    ).fit(X_train, y_train)
    for name, model in (("threshold 0.5", plain), ("tuned threshold", tuned)):
        pred = model.predict(X_test)
        print(
            f"{name:16s} F1 {f1_score(y_test, pred):.3f}  precision "
            f"{precision_score(y_test, pred, zero_division=0):.3f}  recall "
            f"{recall_score(y_test, pred):.3f}"
        )
    print(f"tuned threshold on P(class 1): {tuned.best_threshold_:.3f}")


if __name__ == "__main__":
    main()
