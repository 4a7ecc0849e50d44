"""Is compare's answer good? Its saved model against the seed's recipes, on held-out images.

On imbalanced sets built from images that ship inside installed packages, each
split into a stratified 70 % part and a 30 % test part that ``compare`` never
sees (several splits per set):

* **compare**: ``compare`` runs on the 70 % part with its default method table and
  refits its recommendation there (its ``best_estimator_``, the model it saves);
  that model predicts the 30 % part;
* **the seed's recipes** (the forum user's loop): the forum's ``FocalLoss`` with
  gamma 0, gamma 2, gamma 2 with inverse-frequency alpha, and cross-entropy
  weighted to expected weight 1 (``n / (C n_c)``); Adam; 20 % of the 70 % part held
  out (stratified) and the epoch with the best validation **accuracy** kept; argmax.

Both sides train the same small CNN (``imbal_estimators.SmallCNN``) at the same
image size, epochs, learning rate and batch size, without augmentation. The
score is the F1 of the rare class on the test part.

Sets (no downloads):

* ``digits-8-vs-rest``: scikit-learn's digits, an 8 (40) against the other digits (320), 8:1;
* ``digits-3-vs-5-9``: a 3 (30) against the similar 5 and 9 (240), 8:1;
* ``texture``: noisy grey crops of ``load_sample_images``'s two photos, ``flower.jpg``
  (30) against ``china.jpg`` (240), 8:1;
* ``digits-9-vs-3-5-8``: a 9 (30) against the similar 3, 5 and 8 (240), 8:1;
* ``skimage-texture``: noisy crops of scikit-image's ``gravel`` (30) against ``grass`` and
  ``brick`` (240), when scikit-image is installed (``pip install scikit-image``; its
  images ship inside the package).

Run from the repository root (about 3 minutes with 3 splits, 7 with 8, on 2 cores)::

    PYTHONPATH=$PWD python benchmarks/answer_quality.py
    PYTHONPATH=$PWD python benchmarks/answer_quality.py --quick   # smoke run, 1-2 minutes

It prints the table and writes it into ``docs/quality.md`` (between the
``answer-quality`` markers; ``--no-write`` leaves the file alone).
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import date

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.datasets import load_digits, load_sample_images
from sklearn.metrics import balanced_accuracy_score, f1_score
from sklearn.model_selection import StratifiedShuffleSplit, train_test_split
from torch import nn

from imbal_estimators import ImageImbalanceClassifier, SmallCNN, load_image_folder
from imbal_estimators.app.compare import compare
from imbal_estimators.app.methods import make_sampler
from imbal_estimators.app.recommend import recommend
from imbal_estimators.data.images import read_image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "quality.md")
BEGIN, END = "<!-- answer-quality:begin -->", "<!-- answer-quality:end -->"
PICK = "compare (saved model)"
SETTINGS = dict(image_size=16, max_epochs=8, lr=3e-3, batch_size=32)


# ----------------------------------------------------------------------------- data


def _save(root, label, index, pixels):
    folder = os.path.join(root, label)
    os.makedirs(folder, exist_ok=True)
    Image.fromarray(pixels).save(os.path.join(folder, f"{index:04d}.png"))


def _digit(image, size=32):
    grey = (image / 16.0 * 255).astype(np.uint8)
    return np.asarray(Image.fromarray(grey).resize((size, size), Image.BILINEAR))


def digits_set(root, positive, negatives, n_pos, n_neg, rng):
    digits = load_digits()
    pos = rng.choice(np.flatnonzero(digits.target == positive), n_pos, replace=False)
    pool = np.flatnonzero(np.isin(digits.target, negatives))
    neg = rng.choice(pool, n_neg, replace=False)
    for label, rows in (("rare", pos), ("other", neg)):
        for i, row in enumerate(rows):
            _save(root, label, i, _digit(digits.images[row]))


def _patches(root, label, photos, n, rng, crop=40, noise=40.0):
    for i in range(n):
        photo = photos[i % len(photos)]
        top = rng.integers(0, photo.shape[0] - crop)
        left = rng.integers(0, photo.shape[1] - crop)
        patch = photo[top : top + crop, left : left + crop].astype(np.float64)
        patch = np.clip(patch + rng.normal(0, noise, patch.shape), 0, 255).astype(np.uint8)
        _save(root, label, i, np.asarray(Image.fromarray(patch).resize((32, 32))))


def texture_set(root, n_pos, n_neg, rng):
    china, flower = (
        np.asarray(Image.fromarray(im).convert("L")) for im in load_sample_images().images
    )
    _patches(root, "rare", [flower], n_pos, rng)
    _patches(root, "other", [china], n_neg, rng)


def skimage_set(root, n_pos, n_neg, rng):
    from skimage import data

    grey = [
        np.asarray(Image.fromarray(np.asarray(f())).convert("L")) for f in (data.grass, data.brick)
    ]
    gravel = np.asarray(Image.fromarray(np.asarray(data.gravel())).convert("L"))
    _patches(root, "rare", [gravel], n_pos, rng, noise=30.0)
    _patches(root, "other", grey, n_neg, rng, noise=30.0)


def build_sets(root, quick, seed):
    rng = np.random.default_rng(seed)
    scale = 0.5 if quick else 1.0
    n = lambda k: int(k * scale)  # noqa: E731
    specs = {
        "digits-8-vs-rest": lambda d: digits_set(
            d, 8, [0, 1, 2, 3, 4, 5, 6, 7, 9], n(40), n(320), rng
        ),
        "digits-3-vs-5-9": lambda d: digits_set(d, 3, [5, 9], n(30), n(240), rng),
        "digits-9-vs-3-5-8": lambda d: digits_set(d, 9, [3, 5, 8], n(30), n(240), rng),
        "texture": lambda d: texture_set(d, n(30), n(240), rng),
    }
    try:
        import skimage  # noqa: F401

        specs["skimage-texture"] = lambda d: skimage_set(d, n(30), n(240), rng)
    except ImportError:
        print("scikit-image is not installed: skipping skimage-texture", flush=True)
    sets = {}
    for name, build in specs.items():
        folder = os.path.join(root, name)
        build(folder)
        paths, labels = load_image_folder(folder)
        sets[name] = (np.asarray(paths, dtype=object), np.asarray(labels))
    return sets


# ----------------------------------------------------------------------------- the seed's loop


class ForumFocalLoss(nn.Module):
    """The forum's FocalLoss, as posted: ``alpha`` indexed by the target, plain mean."""

    def __init__(self, gamma=0.0, alpha=None):
        super().__init__()
        self.gamma = gamma
        self.alpha = None if alpha is None else torch.as_tensor(alpha, dtype=torch.float32)

    def forward(self, logits, target):
        logpt = F.log_softmax(logits, dim=1).gather(1, target.view(-1, 1)).view(-1)
        pt = logpt.exp()
        if self.alpha is not None:
            logpt = logpt * self.alpha.gather(0, target)
        return (-((1 - pt) ** self.gamma) * logpt).mean()


def seed_losses(counts):
    counts = np.asarray(counts, dtype=np.float64)
    inverse = counts.sum() / counts
    return {
        "seed: focal g=0": ForumFocalLoss(0.0),
        "seed: focal g=2": ForumFocalLoss(2.0),
        "seed: focal g=2, inverse-frequency alpha": ForumFocalLoss(2.0, inverse / inverse.sum()),
        "seed: weighted CE (expected weight 1)": nn.CrossEntropyLoss(
            weight=torch.as_tensor(counts.sum() / (len(counts) * counts), dtype=torch.float32)
        ),
    }


def _tensors(paths, size):
    images = torch.stack([read_image(p, size) for p in paths]).float() / 255.0
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (images - mean) / std


def seed_recipe(loss, X_train, y_train, X_test, seed, model=None):
    """The forum user's loop: Adam, best epoch by validation accuracy, argmax (on
    ``SmallCNN`` unless ``model`` is given, which should be built after seeding)."""
    torch.manual_seed(seed)
    rows = np.arange(len(y_train))
    fit_rows, valid_rows = train_test_split(
        rows, test_size=0.2, stratify=y_train, random_state=seed
    )
    model = SmallCNN(num_classes=2) if model is None else model
    optimizer = torch.optim.Adam(model.parameters(), lr=SETTINGS["lr"])
    Xf, yf = X_train[fit_rows], torch.as_tensor(y_train[fit_rows])
    Xv, yv = X_train[valid_rows], y_train[valid_rows]
    best, best_state = -1.0, None
    generator = torch.Generator().manual_seed(seed)
    for _ in range(SETTINGS["max_epochs"]):
        model.train()
        order = torch.randperm(len(yf), generator=generator)
        batch = SETTINGS["batch_size"]
        for start in range(0, len(order), batch):
            idx = order[start : start + batch]
            if len(idx) < 2:  # BatchNorm needs two images
                continue
            optimizer.zero_grad()
            loss(model(Xf[idx]), yf[idx]).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            accuracy = float((model(Xv).argmax(1).numpy() == yv).mean())
        if accuracy > best:
            best, best_state = accuracy, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    model.eval()
    with torch.no_grad():
        return model(X_test).argmax(1).numpy()


# ----------------------------------------------------------------------------- the benchmark


def run(
    quick=False,
    seed=0,
    n_splits=3,
    cv=3,
    repeats=1,
    budget=None,
    write=True,
    n_jobs=1,
    diagnose=False,
    only=None,
    image_size=None,
    json_path=None,
):
    """Score compare and the seed's recipes on every split of the sets (``only``: a subset,
    built after every set so that each set's images do not depend on which are run).

    With ``json_path`` the scores so far are written there after every split, so that
    runs of single sets in parallel make one table (``--combine``).
    """
    torch.set_num_threads(1)  # one thread: two spin against each other on a shared 2-core box
    if quick:
        SETTINGS.update(max_epochs=3)
    if image_size:
        SETTINGS.update(image_size=image_size)
    start = time.perf_counter()
    results, picks, seconds = {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        sets = build_sets(tmp, quick, seed)
        sets = {k: v for k, v in sets.items() if only is None or k in only}
        for name, (paths, labels) in sets.items():
            classes = np.unique(labels)
            encoded = np.searchsorted(classes, labels)
            rare = int(np.argmin(np.bincount(encoded)))
            X_all = _tensors(paths, SETTINGS["image_size"])
            splitter = StratifiedShuffleSplit(n_splits, test_size=0.3, random_state=seed)
            for split, (train, test) in enumerate(splitter.split(paths, labels)):
                t0 = time.perf_counter()
                result = compare(
                    paths[train],
                    labels[train],
                    cv=cv,
                    repeats=repeats,
                    scoring="f1",
                    estimator_params=dict(
                        module=SmallCNN, weights=None, augment=False, device="cpu", **SETTINGS
                    ),
                    random_state=seed,
                    budget=budget,
                    n_jobs=n_jobs,
                    progress=False,
                )
                predicted = result.best_estimator_.predict(paths[test])
                seconds.setdefault((name, PICK), []).append(time.perf_counter() - t0)
                _score(results, name, PICK, labels[test], predicted, classes[rare])
                others = {  # the other selection rules' picks, where they differ
                    label: row.name
                    for label, selection in (("maxt", "maxt"), ("none", None))
                    if (row := recommend(result, selection=selection).row) is not result.recommended
                }
                picks.setdefault(name, []).append(
                    f"{result.recommended.name} ({result.recommendation.verdict}"
                    + "".join(f"; {k}: {v}" for k, v in others.items())
                    + ")"
                )
                if diagnose:  # what the other candidate picks would have scored
                    for label, row in _diagnosed_rows(result):
                        params = result.row_params(row)
                        params["sampler"] = make_sampler(params.get("sampler"))
                        clf = ImageImbalanceClassifier(**params).fit(paths[train], labels[train])
                        predicted = clf.predict(paths[test])
                        for each in label:
                            _score(results, name, each, labels[test], predicted, classes[rare])
                counts = np.bincount(encoded[train])
                for recipe, loss in seed_losses(counts).items():
                    t1 = time.perf_counter()
                    pred = seed_recipe(
                        loss, X_all[train], encoded[train], X_all[test], seed + split
                    )
                    seconds.setdefault((name, recipe), []).append(time.perf_counter() - t1)
                    _score(results, name, recipe, labels[test], classes[pred], classes[rare])
                row = {k: round(v[-1], 3) for (s, k), v in results.items() if s == name}
                print(
                    f"{name} split {split + 1}: pick {picks[name][-1]}; {row} "
                    f"({time.perf_counter() - t0:.0f} s)",
                    flush=True,
                )
                if json_path:
                    save_json(json_path, results, picks, seconds, time.perf_counter() - start)
    elapsed = time.perf_counter() - start
    text = report(results, picks, seconds, list(sets))
    print(text)
    print(f"total {elapsed:.0f} s")
    if json_path:
        save_json(json_path, results, picks, seconds, elapsed)
    if write and not quick and only is None:
        write_doc(text, list(sets), n_splits, cv, repeats, elapsed)
    return results


def _diagnosed_rows(result):
    """``(labels, row)`` pairs to refit once each: compare's top row by mean, CE with a
    tuned threshold, and the pick of every selection rule (a row fitted once however
    many labels it has)."""
    labelled = [("diagnose: top row", result.best)]
    labelled.append(("diagnose: ce + tuned threshold", result.row_or_none("ce + tuned threshold")))
    for label, selection in (("holm", "holm"), ("maxt", "maxt"), ("none", None)):
        labelled.append(
            (f"diagnose: selection={label}", recommend(result, selection=selection).row)
        )
    rows = {}
    for label, row in labelled:
        if row is not None:
            rows.setdefault(id(row), ([], row))[0].append(label)
    return list(rows.values())


def report(results, picks, seconds, names):
    """The table, the acceptance line, the picks and the wall seconds per split."""
    lines = [
        format_table(results, names),
        "",
        acceptance(results, names),
        "",
        "Picks (the recommended row and why, per split):",
    ]
    lines += [f"- `{name}`: " + "; ".join(p) for name, p in picks.items() if name in names]
    if seconds:
        lines += ["", "Wall seconds per split (compare: its whole run and the refit):"]
        for name in names:
            per = {m: v for (s, m), v in seconds.items() if s == name}
            lines.append(
                f"- `{name}`: "
                + "; ".join(f"{m} " + ", ".join(f"{t:.0f}" for t in v) for m, v in per.items())
            )
    return "\n".join(lines)


def save_json(path, results, picks, seconds, elapsed):
    with open(path, "w") as file:
        json.dump(
            {
                "elapsed_s": elapsed,
                "results": [[s, m, v] for (s, m), v in results.items()],
                "picks": picks,
                "seconds": [[s, m, v] for (s, m), v in seconds.items()],
            },
            file,
            indent=1,
        )


def combine(paths):
    """One report from the ``--json`` files of runs of single sets."""
    results, picks, seconds, names = {}, {}, {}, []
    for path in paths:
        with open(path) as file:
            data = json.load(file)
        for s, m, v in data["results"]:
            results[s, m] = v
            names += [] if s in names else [s]
        seconds.update({(s, m): v for s, m, v in data["seconds"]})
        picks.update(data["picks"])
    text = report(results, picks, seconds, names)
    print(text)
    return text


def _score(results, data, method, y_true, y_pred, rare):
    key = (data, method)
    results.setdefault(key, []).append(f1_score(y_true, y_pred, pos_label=rare, zero_division=0))
    results.setdefault((data, method + "|bacc"), []).append(balanced_accuracy_score(y_true, y_pred))


def format_table(results, names):
    methods = [m for (s, m) in results if s == names[0] and not m.endswith("|bacc")]
    methods = [m for m in methods if all((n, m) in results for n in names)]
    header = "| method | " + " | ".join(names) + " | mean over sets |"
    lines = [header, "|---" * (len(names) + 2) + "|"]
    for method in methods:
        means = [float(np.mean(results[name, method])) for name in names]
        cells = [_cell(results[name, method]) for name in names]
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {np.mean(means):.3f} |")
    best_seed = []
    for name in names:
        seeds = [float(np.mean(results[name, m])) for m in methods if _seed(m)]
        best_seed.append(max(seeds))
    lines.append(
        "| best seed recipe (per set) | "
        + " | ".join(f"{v:.3f}" for v in best_seed)
        + f" | {np.mean(best_seed):.3f} |"
    )
    picked = [float(np.mean(results[name, PICK])) for name in names]
    gaps = [p - b for p, b in zip(picked, best_seed, strict=True)]
    lines.append(
        "| compare - best seed recipe | "
        + " | ".join(f"{g:+.3f}" for g in gaps)
        + f" | {np.mean(picked) - np.mean(best_seed):+.3f} |"
    )
    return "\n".join(lines)


def acceptance(results, names, margin=0.03):
    """Issue 11's test, in words: every set within ``margin`` of the best seed recipe,
    and at least its best on average over the sets."""
    picked, best = [], []
    for name in names:
        picked.append(float(np.mean(results[name, PICK])))
        best.append(
            max(float(np.mean(v)) for (s, m), v in results.items() if s == name and _seed(m))
        )
    short = [n for n, p, b in zip(names, picked, best, strict=True) if p < b - margin]
    every = "holds on every set" if not short else "fails on " + ", ".join(short)
    mean_gap = np.mean(picked) - np.mean(best)
    average = "holds" if mean_gap >= 0 else f"fails by {-mean_gap:.3f}"
    return (
        f"Acceptance (compare >= best seed recipe - {margin:g} on every set): {every}; "
        f"(compare >= best seed recipe on average over the sets): {average} "
        f"({np.mean(picked):.3f} vs {np.mean(best):.3f})."
    )


def _seed(method):
    return method.startswith("seed") and not method.endswith("|bacc")


def _cell(values):
    return f"{np.mean(values):.3f} (" + ", ".join(f"{v:.2f}" for v in values) + ")"


def write_doc(text, names, n_splits, cv, repeats, elapsed):
    cv_text = f"{cv}-fold CV" + (f" x {repeats} repeats" if repeats > 1 else "")
    section = f"""{BEGIN}
## compare's answer against the seed's recipes (held-out test parts)

Generated by `PYTHONPATH=$PWD python benchmarks/answer_quality.py{_arguments()}` on
{date.today().isoformat()}
({platform.machine()}, 1 torch thread, a 2-core machine shared with other jobs; {elapsed:.0f} s in
all). Each set is split {n_splits} times into a stratified 70 % part and a 30 % test part; `compare`
({cv_text}, its default method table, `scoring="f1"`) sees only the 70 % part and refits its
recommendation there; that saved model predicts the test part. The seed's recipes (the forum's
`FocalLoss` with gamma 0, gamma 2, gamma 2 with inverse-frequency alpha, and cross-entropy
weighted to expected weight 1; Adam; the epoch with the best accuracy on a stratified 20 %
validation split kept) train on the same 70 % part. Both sides: `SmallCNN`,
{SETTINGS["image_size"]} px, {SETTINGS["max_epochs"]} epochs, lr {SETTINGS["lr"]:g}, batch
{SETTINGS["batch_size"]}, no augmentation. Cells: F1 of the rare class on the test parts, mean
(and per split).

{text}
{END}"""
    with open(DOC, encoding="utf-8") as file:
        doc = file.read()
    if BEGIN in doc and END in doc:
        head, rest = doc.split(BEGIN, 1)
        doc = head + section + rest.split(END, 1)[1]
    else:
        doc = doc.rstrip() + "\n\n" + section + "\n"
    with open(DOC, "w", encoding="utf-8") as file:
        file.write(doc)


def _arguments():
    args = " ".join(sys.argv[1:])
    return " " + args if args else ""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="half-size sets, 3 epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--splits", type=int, default=3, help="70/30 splits per set")
    parser.add_argument("--cv", type=int, default=3, help="compare's folds")
    parser.add_argument("--repeats", type=int, default=1, help="compare's repeats")
    parser.add_argument("--budget", default=None, help="compare's budget per run, e.g. 2m")
    parser.add_argument("--n-jobs", type=int, default=1)
    parser.add_argument("--no-write", action="store_true", help="do not touch docs/quality.md")
    parser.add_argument(
        "--diagnose", action="store_true", help="also score compare's top row and CE + threshold"
    )
    parser.add_argument(
        "--pretrained",
        action="store_true",
        help="real ImageNet-pretrained features (answer_quality_pretrained.py)",
    )
    parser.add_argument("--network", choices=["lite1", "lite2"], default="lite1")
    parser.add_argument(
        "--image-size", type=int, default=None, help="image size (default 16; --pretrained: 96)"
    )
    parser.add_argument(
        "--sets",
        nargs="+",
        default=None,
        help="sets to run (default every set; --pretrained: digits-8-vs-rest texture)",
    )
    parser.add_argument(
        "--seed-recipes", action="store_true", help="--pretrained: also fine-tune the seed's"
    )
    parser.add_argument("--seed-epochs", type=int, default=2, help="--pretrained: their epochs")
    parser.add_argument(
        "--seed-only", action="store_true", help="--pretrained: the seed's recipes alone"
    )
    parser.add_argument(
        "--finetune",
        action="store_true",
        help="--pretrained: compare's default for a pretrained network (screen, then the "
        "fine-tuned confirm), --seed-epochs epochs",
    )
    parser.add_argument(
        "--lr", type=float, default=None, help="--finetune: compare's lr (default: the package's)"
    )
    parser.add_argument(
        "--freeze-norm",
        choices=["auto", "yes", "no"],
        default="auto",
        help="--finetune: compare's freeze_norm (default: the package's auto)",
    )
    parser.add_argument(
        "--ensemble",
        type=int,
        default=3,
        help="--finetune: compare's ensemble (default 3, compare's own; member 0 is also "
        "scored alone, the saved model of ensemble=1)",
    )
    parser.add_argument(
        "--first-split",
        type=int,
        default=1,
        help="--pretrained: run splits from this one (1-based) to --splits; the splits are "
        "those of a run from 1 (another process ran the first ones)",
    )
    parser.add_argument("--json", default=None, help="also write the scores here")
    parser.add_argument("--combine", nargs="+", default=None, help="the table of --json files")
    args = parser.parse_args(argv)
    if args.combine and not args.pretrained:
        return combine(args.combine)
    if args.pretrained:
        args.image_size = args.image_size or 96
        args.sets = args.sets or ["digits-8-vs-rest", "texture"]
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from answer_quality_pretrained import main as pretrained_main

        return pretrained_main(args, build_sets)
    return run(
        args.quick,
        args.seed,
        args.splits,
        args.cv,
        args.repeats,
        args.budget,
        not args.no_write,
        args.n_jobs,
        args.diagnose,
        args.sets,
        args.image_size,
        args.json,
    )


if __name__ == "__main__":
    main()
