"""Wall time of the training loop's paths on the CPU: frozen heads and a small fine-tune.

Issue 22 moved the training loop from skorch overrides (``fit_loop``, ``get_iterator``,
``infer``, ...) to ``estimator/loop.py`` on skorch's public hooks; this times the paths it
touches, to compare two checkouts (run it with each on ``PYTHONPATH``)::

    PYTHONPATH=. python benchmarks/training_loop_speed.py

Rows: ``fit_many`` of 8 frozen heads (lock-step), one frozen head by epochs (the direct
loop), one by ``head_solver="lbfgs"``, a 2-epoch fine-tune of shufflenet_v2_x0_5 in
float32 and with ``precision="auto"``, and ``predict_proba``. 200 demo images at 32 px,
one intra-op thread; the minimum and the median of several runs, in milliseconds.
"""

import argparse
import tempfile
import time
import warnings

import numpy as np
import torch
import torchvision
from sklearn.base import clone

from imbal_estimators import ImageImbalanceClassifier, load_image_folder, make_demo_image_folder
from imbal_estimators.training.heads import fit_many

GRID = [
    {"loss": "ce"},
    {"loss": "focal", "gamma": 2.0, "alpha": "balanced"},
    {"sampler": "balanced_batches"},
    {"loss": "ldam", "alpha": "effective", "drw_epoch": 5},
    {"threshold": "auto"},
    {"lr": 0.01},
    {"optimizer__weight_decay": 0.1},
    {"loss": "focal"},
]
COMMON = dict(
    backbone="shufflenet_v2_x0_5",
    image_size=32,
    device="cpu",
    verbose=0,
    random_state=0,
    precision="fp32",
)


def timed(run, repeats):
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - start)
    return 1000 * min(seconds), 1000 * float(np.median(seconds))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")  # random weights on digits learn little; timing only
    root = tempfile.mkdtemp()
    X, y = load_image_folder(make_demo_image_folder(root, n_majority=150, n_minority=50))
    torch.manual_seed(0)
    weights = f"{root}/shufflenet.pth"
    torch.save(torchvision.models.shufflenet_v2_x0_5().state_dict(), weights)
    frozen = ImageImbalanceClassifier(
        **COMMON,
        freeze_backbone=True,
        weights=weights,
        max_epochs=10,
        batch_size=8,
        head_solver=None,
    )
    frozen.fit(X, y)  # fills the feature cache, as a search's first fit does
    tune = ImageImbalanceClassifier(**COMMON, weights=None, max_epochs=2, batch_size=16)
    tuned = clone(tune).fit(X, y)
    runs = {
        "fit_many, 8 frozen heads x 10 epochs": lambda: fit_many(
            [clone(frozen).set_params(**p) for p in GRID], X, y
        ),
        "frozen head, 10 epochs (direct loop)": lambda: clone(frozen).fit(X, y),
        "frozen head, head_solver='lbfgs'": lambda: (
            clone(frozen).set_params(head_solver="lbfgs").fit(X, y)
        ),
        "fine-tune, fp32, 2 epochs": lambda: clone(tune).fit(X, y),
        "fine-tune, precision='auto', 2 epochs": lambda: (
            clone(tune).set_params(precision="auto").fit(X, y)
        ),
        "predict_proba, 200 images": lambda: tuned.predict_proba(X),
    }
    for name, run in runs.items():
        low, median = timed(run, args.repeats)
        print(f"{name:40s} min {low:8.1f} ms   median {median:8.1f} ms", flush=True)


if __name__ == "__main__":
    main()
