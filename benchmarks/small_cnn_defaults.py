"""The small CNN's command-line defaults: which image size, learning rate and epochs train it.

Fits ``imbal_estimators.SmallCNN`` (``backbone="small_cnn"``, random init) on the demo
folder (600 vs 120 handwritten digits that ship with scikit-learn), 70/30 stratified split,
and prints the held-out F1 of the rare class and the fit time for each setting. The
results are in docs/guide.md ("Your network and its preprocessing").

    python benchmarks/small_cnn_defaults.py [--out-dir DIR]
"""

import argparse
import os
import time

import torch
from sklearn.metrics import f1_score
from sklearn.model_selection import train_test_split

from imbal_estimators import ImageImbalanceClassifier, load_image_folder
from imbal_estimators.data.demo import make_demo_image_folder

SETTINGS = [(32, 3e-3, 5), (64, 3e-3, 10), (64, 1e-4, 10), (32, 3e-3, 10), (64, 3e-3, 5)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", default=".", help="where to write the demo folder")
    args = parser.parse_args()
    torch.set_num_threads(1)
    X, y = load_image_folder(make_demo_image_folder(os.path.join(args.out_dir, "demo")))
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
    for size, lr, epochs in SETTINGS:
        clf = ImageImbalanceClassifier(
            backbone="small_cnn",
            weights=None,
            image_size=size,
            lr=lr,
            max_epochs=epochs,
            batch_size=16,
            verbose=0,
            random_state=0,
            device="cpu",
            precision="fp32",
        )
        start = time.perf_counter()
        clf.fit(Xtr, ytr)
        seconds = time.perf_counter() - start
        f1 = f1_score(yte, clf.predict(Xte), pos_label=clf.pos_label_)
        print(f"size={size} lr={lr:g} epochs={epochs}: F1={f1:.3f} fit={seconds:.0f}s", flush=True)


if __name__ == "__main__":
    main()
