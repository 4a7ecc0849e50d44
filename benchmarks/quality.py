"""Quality of the imbalance methods on small imbalanced image sets, with stratified CV.

The images ship inside scikit-learn (no downloads):

* ``digits-LT``: the 8x8 digits upscaled, 10 classes with a long tail
  (150 images of the largest class down to 10 of the smallest, 15:1);
* ``digits-8-vs-rest``: binary, the digit 8 (30 images) against the other digits
  (300 images), 10:1;
* ``texture``: binary, grey 24 px crops of ``load_sample_images``'s two photos
  (240 of ``china.jpg`` against 24 of ``flower.jpg``), 10:1, with noise.

Every method is ``ImageImbalanceClassifier`` with the same small CNN, epochs, learning
rate and seed; only the imbalance handling differs. Each is scored with stratified
k-fold CV (balanced accuracy, and F1 of the rare class for binary sets / macro F1 for
multi-class), mean and standard deviation over folds.

Run from the repository root::

    PYTHONPATH=$PWD python benchmarks/quality.py            # full: 3 folds, 8 epochs
    PYTHONPATH=$PWD python benchmarks/quality.py --quick    # smaller sets, 2 folds, 2 epochs

writes ``docs/quality.md`` (the table) and ``docs/quality.png`` (the chart); ``--out-dir``
writes them elsewhere.

``--precisions fp32 bf16`` runs the same evaluation once per ``precision`` (same
configurations, folds and seeds) and prints, per method and set, the mean balanced
accuracy and F1 of each with the difference and the fold spread, instead of writing
the docs (``--out-dir`` then gets ``precision.md``). ``PRECISION@SEED`` trains with
another ``random_state`` (same data and folds): ``fp32 fp32@1`` measures how far the
scores move with the training seed alone, the noise to read the bf16 differences by::

    PYTHONPATH=$PWD python benchmarks/quality.py --precisions fp32 bf16
    PYTHONPATH=$PWD python benchmarks/quality.py --precisions fp32 fp32@1
"""

import argparse
import os
import platform
import tempfile
import time
from datetime import date

import numpy as np
import torch
from imblearn.over_sampling import RandomOverSampler
from PIL import Image
from sklearn.base import clone
from sklearn.datasets import load_digits, load_sample_images
from sklearn.metrics import balanced_accuracy_score, f1_score
from sklearn.model_selection import StratifiedKFold
from torch import nn

from imbal_estimators import ImageImbalanceClassifier, load_image_folder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LR = 1e-2


class SmallCNN(nn.Module):
    """Three conv blocks and a linear head: a few seconds per fit on two CPU cores."""

    def __init__(self, num_classes=2, widths=(8, 16, 32)):
        super().__init__()
        layers, channels = [], 3
        for width in widths:
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
            layers.append(nn.MaxPool2d(2))
            channels = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x):
        return self.head(self.features(x).mean(dim=(2, 3)))


# ----------------------------------------------------------------------------- data


def _save(root, label, index, pixels):
    folder = os.path.join(root, label)
    os.makedirs(folder, exist_ok=True)
    Image.fromarray(pixels).save(os.path.join(folder, f"{index:04d}.png"))


def _digit_pixels(image, size=24):
    grey = (image / 16.0 * 255).astype(np.uint8)
    return np.asarray(Image.fromarray(grey).resize((size, size), Image.BILINEAR))


def make_digits_long_tail(root, n_max, ratio, rng):
    digits = load_digits()
    counts = np.round(n_max * ratio ** (-np.arange(10) / 9)).astype(int)
    for label, n in enumerate(counts):
        rows = rng.choice(np.flatnonzero(digits.target == label), size=n, replace=False)
        for i, row in enumerate(rows):
            _save(root, f"digit{label}", i, _digit_pixels(digits.images[row]))
    return counts


def make_digits_binary(root, n_negative, n_positive, rng):
    digits = load_digits()
    positives = rng.choice(np.flatnonzero(digits.target == 8), size=n_positive, replace=False)
    negatives = rng.choice(np.flatnonzero(digits.target != 8), size=n_negative, replace=False)
    for label, rows in (("other", negatives), ("eight", positives)):
        for i, row in enumerate(rows):
            _save(root, label, i, _digit_pixels(digits.images[row]))
    return [n_negative, n_positive]


def make_texture(root, n_negative, n_positive, rng, crop=48, size=24):
    china, flower = (np.asarray(im.convert("L")) for im in map(Image.fromarray, _photos()))
    for label, photo, n in (("china", china, n_negative), ("flower", flower, n_positive)):
        for i in range(n):
            top = rng.integers(0, photo.shape[0] - crop)
            left = rng.integers(0, photo.shape[1] - crop)
            patch = photo[top : top + crop, left : left + crop].astype(np.float64)
            patch = patch + rng.normal(0, 40, patch.shape)
            patch = np.asarray(Image.fromarray(np.clip(patch, 0, 255).astype(np.uint8)))
            _save(root, label, i, np.asarray(Image.fromarray(patch).resize((size, size))))
    return [n_negative, n_positive]


def _photos():
    return load_sample_images().images


def build_datasets(root, quick, seed):
    rng = np.random.default_rng(seed)
    scale = 0.5 if quick else 1.0
    specs = {
        "digits-LT": lambda d: make_digits_long_tail(d, int(150 * scale), 15, rng),
        "digits-8-vs-rest": lambda d: make_digits_binary(d, int(300 * scale), int(30 * scale), rng),
        "texture": lambda d: make_texture(d, int(240 * scale), int(24 * scale), rng),
    }
    datasets = {}
    for name, build in specs.items():
        folder = os.path.join(root, name)
        counts = build(folder)
        datasets[name] = (*load_image_folder(folder), list(map(int, counts)))
    return datasets


# ----------------------------------------------------------------------------- methods


def methods(max_epochs):
    drw = max(2, (2 * max_epochs) // 3 + 1)
    return {
        "ce": dict(loss="ce"),
        "focal": dict(loss="focal", gamma=2.0),
        "cb_focal": dict(loss="cb_focal", gamma=2.0, beta=0.99),
        "ldam+drw": dict(loss="ldam", alpha="effective", beta=0.99, drw_epoch=drw),
        "logit_adjusted": dict(loss="logit_adjusted", criterion__tau=1.0),
        "balanced_softmax": dict(loss="balanced_softmax"),
        "oversampling": dict(sampler=RandomOverSampler()),
        "balanced_batches": dict(sampler="balanced_batches"),
        "threshold auto": dict(threshold="auto"),  # posthoc_tau=1 on multi-class sets
    }


def base_estimator(max_epochs, seed, precision="fp32"):
    # float32 unless asked: "auto" is bfloat16 on some CPUs, and the table should not
    # depend on the machine that wrote it
    return ImageImbalanceClassifier(
        precision=precision,
        module=SmallCNN,
        weights=None,
        image_size=24,
        max_epochs=max_epochs,
        lr=LR,
        batch_size=32,
        augment=False,
        monitor="balanced_accuracy",
        device="cpu",
        verbose=0,
        random_state=seed,
    )


def evaluate(base, params, X, y, folds, seed):
    n_classes = len(np.unique(y))
    if params.get("threshold") == "auto" and n_classes > 2:
        params = {"posthoc_tau": 1.0}
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    bal, f1 = [], []
    minority = np.unique(y)[np.argmin(np.unique(y, return_counts=True)[1])]
    for train, test in splitter.split(X, y):
        clf = clone(base).set_params(**params).fit(X[train], y[train])
        pred = clf.predict(X[test])
        bal.append(balanced_accuracy_score(y[test], pred))
        if n_classes == 2:
            f1.append(f1_score(y[test], pred, pos_label=minority))
        else:
            f1.append(f1_score(y[test], pred, average="macro"))
    return np.array(bal), np.array(f1)


def run(quick=False, seed=0, folds=None, max_epochs=None, out_dir=None, threads=1):
    folds = folds or (2 if quick else 3)
    max_epochs = max_epochs or (2 if quick else 8)
    # One thread: on a shared 2-core machine two threads wait on each other (5-10x slower).
    torch.set_num_threads(threads)
    results = {}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        datasets = build_datasets(tmp, quick, seed)
        base = base_estimator(max_epochs, seed)
        for name, params in methods(max_epochs).items():
            for data_name, (X, y, _) in datasets.items():
                t0 = time.perf_counter()
                results[name, data_name] = evaluate(base, params, X, y, folds, seed)
                bal = results[name, data_name][0]
                print(
                    f"{name:17s} {data_name:17s} balanced accuracy {bal.mean():.3f} "
                    f"+- {bal.std():.3f}  ({time.perf_counter() - t0:.1f} s)",
                    flush=True,
                )
    elapsed = time.perf_counter() - start
    counts = {name: d[2] for name, d in datasets.items()}
    table = format_table(results, list(methods(max_epochs)), list(datasets))
    print(table)
    print(f"total {elapsed:.0f} s")
    out_dir = out_dir or os.path.join(ROOT, "docs")
    os.makedirs(out_dir, exist_ok=True)
    write_markdown(
        os.path.join(out_dir, "quality.md"), table, counts, quick, folds, max_epochs, elapsed
    )
    plot(results, list(methods(max_epochs)), list(datasets), os.path.join(out_dir, "quality.png"))
    return results


def format_table(results, method_names, data_names):
    header = "| method | " + " | ".join(
        f"{d} bal. acc. | {d} {'macro F1' if d == 'digits-LT' else 'F1 (rare)'}" for d in data_names
    )
    lines = [header + " |", "|---" * (1 + 2 * len(data_names)) + "|"]
    for method in method_names:
        cells = []
        for data in data_names:
            bal, f1 = results[method, data]
            cells += [f"{bal.mean():.3f} ± {bal.std():.3f}", f"{f1.mean():.3f} ± {f1.std():.3f}"]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_markdown(path, table, counts, quick, folds, max_epochs, elapsed):
    command = "PYTHONPATH=$PWD python benchmarks/quality.py" + (" --quick" if quick else "")
    sets = "\n".join(f"- `{name}`: class counts {c}" for name, c in counts.items())
    text = f"""# Quality of the imbalance methods

Generated by `{command}` on {date.today().isoformat()} ({platform.machine()},
torch threads: {torch.get_num_threads()}; {elapsed:.0f} s in all). Every method trains the same
small CNN (3 conv blocks of 8, 16 and 32 channels, 24 px, {max_epochs} epochs, AdamW lr {LR:g},
batch 32, no augmentation, `random_state=0`) with `ImageImbalanceClassifier`; only the imbalance
handling differs.
Stratified {folds}-fold CV; mean ± standard deviation over folds. The model kept is the epoch
with the best validation balanced accuracy (the estimator's default `monitor`).

{sets}

Methods: `ce` plain cross-entropy; `focal` gamma 2; `cb_focal` gamma 2, beta 0.99;
`ldam+drw` LDAM (max margin 0.5, s 30) with `alpha="effective"` (beta 0.99) switched on by
`drw_epoch` two thirds in; `logit_adjusted` tau 1; `balanced_softmax`; `oversampling`
`RandomOverSampler()`; `balanced_batches` the built-in class-balanced batch sampler;
`threshold auto` cross-entropy with `threshold="auto"` (binary sets; tuned for balanced accuracy
on the internal validation split) and `posthoc_tau=1` (post-hoc logit adjustment) on the
multi-class set.

{table}

![balanced accuracy per method and data set](quality.png)

These sets are tiny (tens of rare images), so a fold's score moves by several points with a
few images: read differences smaller than the spread as ties. `oversampling` also trains more
steps per epoch than the others (its epochs grow to `C x` the largest class: 2.7x the images on
`digits-LT`, 1.8x on the binary sets), which helps a model this under-trained; the others see
the training part's size per epoch. LDAM runs with the paper's `s=30` on an unnormalized linear
head (see [methods.md](methods.md)).
"""
    # keep the sections other benchmarks append (answer_quality.py, speed): from the first "## "
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            old = f.read()
        if "\n## " in old:
            text = text.rstrip() + "\n" + old[old.index("\n## ") :]
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def plot(results, method_names, data_names, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / len(data_names)
    x = np.arange(len(method_names))
    for i, data in enumerate(data_names):
        means = [results[m, data][0].mean() for m in method_names]
        stds = [results[m, data][0].std() for m in method_names]
        ax.bar(x + i * width, means, width, yerr=stds, capsize=2, label=data)
    ax.set_xticks(x + width * (len(data_names) - 1) / 2)
    ax.set_xticklabels(method_names, rotation=30, ha="right")
    ax.set_ylabel("balanced accuracy (CV mean ± sd)")
    ax.set_ylim(0, 1)
    ax.legend(loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def compare_precisions(precisions, quick=False, seed=0, folds=None, max_epochs=None, threads=1):
    """The evaluation once per precision; returns the markdown table of the differences."""
    folds = folds or (2 if quick else 3)
    max_epochs = max_epochs or (2 if quick else 8)
    torch.set_num_threads(threads)
    results = {precision: {} for precision in precisions}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        datasets = build_datasets(tmp, quick, seed)
        for name, params in methods(max_epochs).items():
            for data_name, (X, y, _) in datasets.items():
                for spec in precisions:
                    precision, _, training_seed = spec.partition("@")
                    base = base_estimator(max_epochs, int(training_seed or seed), precision)
                    results[spec][name, data_name] = evaluate(base, params, X, y, folds, seed)
                print(f"{name:17s} {data_name:17s} done", flush=True)
    first, second = precisions[0], precisions[1]
    lines = [
        f"| method | set | metric | {first} | {second} | {second} - {first} | within the spread |",
        "|---|---|---|---|---|---|---|",
    ]
    within = total = 0
    for (name, data_name), scores in results[first].items():
        other = results[second][name, data_name]
        for index, metric in enumerate(("bal. acc.", "F1")):
            a, b = scores[index], other[index]
            spread = max(a.std(), b.std())
            inside = abs(b.mean() - a.mean()) <= spread
            within += inside
            total += 1
            lines.append(
                f"| {name} | {data_name} | {metric} | {a.mean():.3f} ± {a.std():.3f} | "
                f"{b.mean():.3f} ± {b.std():.3f} | {b.mean() - a.mean():+.3f} | "
                f"{'yes' if inside else 'no'} |"
            )
    table = "\n".join(lines)
    summary = (
        f"{within} of {total} differences are within the larger fold standard deviation; "
        f"{folds} folds, {max_epochs} epochs, {time.perf_counter() - start:.0f} s in all."
    )
    return table + "\n\n" + summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sets, 2 folds, 2 epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folds", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--out-dir", default=None, help="where quality.md/.png go (docs/)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument(
        "--precisions",
        nargs=2,
        metavar="PRECISION[@SEED]",
        help="compare two precisions, e.g. fp32 bf16 (or fp32 fp32@1: the seed's noise)",
    )
    args = parser.parse_args(argv)
    if args.precisions:
        table = compare_precisions(
            args.precisions, args.quick, args.seed, args.folds, args.epochs, args.threads
        )
        print(table)
        if args.out_dir:
            os.makedirs(args.out_dir, exist_ok=True)
            with open(os.path.join(args.out_dir, "precision.md"), "w", encoding="utf-8") as f:
                f.write(table + "\n")
        return table
    return run(args.quick, args.seed, args.folds, args.epochs, args.out_dir, args.threads)


if __name__ == "__main__":
    main()
