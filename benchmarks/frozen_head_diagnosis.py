"""Why a frozen ``compare`` answer scores what it does, on one split of the pretrained benchmark.

Prints ``compare``'s rows (CV F1 per fold and each fold's tuned threshold), the
recommendation, the saved model's kept penalty and threshold, its held-out F1 at
its threshold, at argmax and at a few fixed thresholds, and the tuned logistic
regression on the same frozen features (as ``answer_quality.py --pretrained``)::

    cd benchmarks && PYTHONPATH=.. python frozen_head_diagnosis.py digits-8-vs-rest 0
"""

import os
import sys
import tempfile
import time

import numpy as np
import torch
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedShuffleSplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from answer_quality import build_sets  # noqa: E402
from answer_quality_pretrained import LiteNet, logistic_regression  # noqa: E402

from imbal_estimators import ImageImbalanceClassifier  # noqa: E402
from imbal_estimators.app.compare import compare  # noqa: E402
from imbal_estimators.training.frozen import frozen_features  # noqa: E402


def main(name="digits-8-vs-rest", split=0, image_size=64):
    torch.set_num_threads(1)
    paths, labels = build_sets(tempfile.mkdtemp(), False, 0)[name]
    classes, counts = np.unique(labels, return_counts=True)
    rare = classes[np.argmin(counts)]
    splitter = StratifiedShuffleSplit(4, test_size=0.3, random_state=0)
    train, test = list(splitter.split(paths, labels))[split]
    base = dict(
        module=LiteNet,
        freeze_backbone=True,
        image_size=image_size,
        device="cpu",
        precision="fp32",
        batch_size=32,
    )
    start = time.perf_counter()
    result = compare(
        paths[train], labels[train], cv=3, scoring="f1", estimator_params=base,
        random_state=0, ensemble=1, progress=False,
    )  # fmt: skip
    print(f"compare: {time.perf_counter() - start:.0f} s")
    for row in result.rows:
        print(
            f"  {row.name:45s} F1 {row.mean('f1'):.3f} {np.round(row.fold_scores['f1'], 2)}"
            f" thresholds {np.round(row.thresholds, 2)}"
        )
    print("recommended:", result.recommended.name, result.recommendation.verdict)
    model = result.best_estimator_
    kept = model.history[model.best_epoch_ - 1]
    print(f"kept epoch {model.best_epoch_}, penalty {kept.get('head_penalty')}, threshold_ "
          f"{model.threshold_}")  # fmt: skip
    y_test = labels[test] == rare
    proba = model.predict_proba(paths[test])[:, list(model.classes_).index(rare)]
    print("held-out F1 at threshold_:", f1_score(y_test, model.predict(paths[test]) == rare))
    print("held-out F1 at argmax:", f1_score(y_test, proba >= 0.5))
    for threshold in (0.2, 0.3):
        print(f"held-out F1 at {threshold}:", f1_score(y_test, proba >= threshold))
    probe = ImageImbalanceClassifier(**base, max_epochs=1, verbose=0).fit(
        paths[train], labels[train]
    )
    F_train = frozen_features(probe, paths[train]).numpy()
    F_test = frozen_features(probe, paths[test]).numpy()
    predicted, best = logistic_regression(F_train, labels[train] == rare, F_test, 0)
    print("logistic regression:", f1_score(y_test, predicted), best)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "digits-8-vs-rest",
         int(sys.argv[2]) if len(sys.argv) > 2 else 0)  # fmt: skip
