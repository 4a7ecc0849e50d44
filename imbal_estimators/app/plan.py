"""The plan of a comparison: what it will fit, how long that takes here, what a budget drops.

Before the first fit ``compare`` times a probe on this machine (one training
epoch of four batches and one prediction pass of the real network, image size and device;
for a screening stage also the frozen-feature pass and a head step), estimates
every fit from it, and prints the plan. ``--budget`` shrinks the plan until the
estimate fits, in this order, each step only while the estimate is still over
the budget (see :data:`SHRINK_ORDER`):

1. repeats of the cross-validation down to 1;
2. one configuration per method (focal keeps ``gamma=2, alpha=balanced``), except
   for the methods you named (``--methods focal`` keeps the focal grid);
3. the stage-2 top-k down to 1 (with screening);
4. folds down to 3;
5. methods, lowest priority first (:data:`~imbal_estimators.app.methods.PRIORITY`,
   or the end of your grid), down to the user's question
   (:data:`~imbal_estimators.app.methods.QUESTION`: cross-entropy, a focal row with
   a gamma and an alpha, weighted cross-entropy, over-sampling);
6. members of the refitted ensemble down to 1;
7. epochs halved, down to 1;
8. folds down to 2;
9. the question's methods down to cross-entropy and the focal row.

Methods you named are never dropped. If even the smallest plan is over the
budget, the plan says so and runs it. Every configuration dropped is listed on
its own line with the command that runs it (:func:`dropped_lines`). While the
fits run, :class:`~imbal_estimators.app.pacing.Pacer` re-estimates the rest
from the fits done and drops more in the same order if the budget would be
exceeded.
"""

import math
import re
import time
from dataclasses import dataclass, field, replace

import numpy as np

from ..estimator.classifier import ImageImbalanceClassifier
from ..estimator.finetune import probes_head
from ..estimator.geometry import estimator_geometry
from ..models.backbones import describe_network

SHRINK_ORDER = (
    "repeats",
    "variants",
    "top_k",
    "folds to 3",
    "methods",
    "ensemble",
    "epochs",
    "folds to 2",
    "question",
)
#: seconds of the report (figures, gallery, tables) on top of the fits, counted in the plan
REPORT_SECONDS = 10.0

_UNITS = {"h": 3600, "m": 60, "s": 1}


def parse_budget(text):
    """Seconds in a duration: ``"20m"``, ``"1h30m"``, ``"90s"``, ``"1.5h"``, ``"45"`` (minutes)."""
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        value = str(text).strip().lower()
        if re.fullmatch(r"\d+(\.\d+)?", value):
            seconds = float(value) * 60
        elif re.fullmatch(r"(\d+(\.\d+)?[hms])+", value):
            seconds = sum(
                float(n) * _UNITS[u] for n, _, u in re.findall(r"(\d+(\.\d+)?)([hms])", value)
            )
        else:
            raise ValueError(
                f"The 'budget' of compare must be a duration such as '20m', '1h30m' or '90s'. "
                f"Got {text!r} instead."
            )
    if not seconds > 0:
        raise ValueError(f"The 'budget' of compare must be positive. Got {text!r} instead.")
    return seconds


def format_duration(seconds):
    """``3725`` -> ``"1 h 02 min"``, ``95`` -> ``"1 min 35 s"``, ``8.2`` -> ``"8 s"``."""
    seconds = max(0.0, float(seconds))
    if seconds >= 3600:
        return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"
    if seconds >= 60:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{math.ceil(seconds)} s"


@dataclass(frozen=True)
class Probe:
    """Seconds measured on this machine.

    Attributes
    ----------
    train_image : float
        One image of one training epoch, fine-tuning.
    eval_image : float
        One image of a prediction pass (also the frozen feature pass).
    fit_overhead : float
        Building the network and the fit's fixed costs.
    head_image, head_overhead : float
        The same for a head trained on frozen features (0 without screening).
    probe_seconds : float
        What the probe itself took.
    probes_head : bool
        Whether a fine-tuned fit first solves its head on the frozen features of its
        training rows (``head_init``, :mod:`~imbal_estimators.estimator.finetune`): a
        feature pass over them, ``eval_image`` each, before its epochs.
    """

    train_image: float
    eval_image: float
    fit_overhead: float
    head_image: float = 0.0
    head_overhead: float = 0.0
    probe_seconds: float = 0.0
    probes_head: bool = False


def probe_rows(labels, size):
    """``size`` rows (at least 2 per class, classes interleaved) for the timed probe."""
    labels = np.asarray(labels)
    per_class = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    take = max(2, math.ceil(size / len(per_class)))
    rows = np.concatenate([rows[:take] for rows in per_class])
    return np.sort(rows)


def run_probe(paths, labels, params, *, frozen=False, finetune=True):
    """Time a training step and a prediction pass with ``params`` on a few images.

    Parameters
    ----------
    paths, labels : ndarray
    params : dict
        The comparison's shared estimator parameters.
    frozen : bool
        Also time the frozen-feature pass and a head step (stage 1).
    finetune : bool
        Time fine-tuning (stage 2, or the only stage).
    """
    start = time.perf_counter()
    batch = params.get("batch_size", 32)
    # four batch steps: the per-epoch costs (loader, validation pass) weigh as in a real epoch
    rows = probe_rows(labels, 4 * (batch if batch > 0 else 32))
    X, y = paths[rows], labels[rows]
    base = {
        **params,
        "max_epochs": 1,
        "train_split": None,
        "verbose": 0,
        "threshold": None,
        "posthoc_tau": None,
        "checkpoint_dir": None,
        "sampler": None,
    }
    values = {}
    if finetune:
        fit, epoch, predict = _time_fit(X, y, {**base, "freeze_backbone": False})
        values.update(
            train_image=epoch / len(rows),
            eval_image=predict / len(rows),
            fit_overhead=max(fit - epoch, 0.0),
        )
    if frozen:
        first, _, predict = _time_fit(X, y, {**base, "freeze_backbone": True})
        again, head_epoch, _ = _time_fit(X, y, {**base, "freeze_backbone": True})
        values.setdefault("eval_image", max(first - again, predict) / len(rows))
        values.setdefault("train_image", values["eval_image"] * 3)
        values.setdefault("fit_overhead", again)
        values.update(head_image=head_epoch / len(rows), head_overhead=max(again - head_epoch, 0.0))
    if finetune:
        fine_tuned = ImageImbalanceClassifier(**{**base, "freeze_backbone": False})
        values["probes_head"] = probes_head(fine_tuned)
    return Probe(**values, probe_seconds=time.perf_counter() - start)


def _time_fit(X, y, params):
    """Seconds of a 1-epoch fit, of one more epoch, and of a prediction pass."""
    clf = ImageImbalanceClassifier(**params)
    t0 = time.perf_counter()
    clf.fit(X, y)
    t1 = time.perf_counter()
    clf.partial_fit(X, y)
    t2 = time.perf_counter()
    clf.predict_proba(X)
    t3 = time.perf_counter()
    return t1 - t0, t2 - t1, t3 - t2


@dataclass(frozen=True)
class Plan:
    """What a comparison will do; ``compare`` runs exactly this.

    Attributes
    ----------
    configurations : tuple of Configuration
        Fine-tuned (stage 2, or the only stage). With screening, the candidates
        among which stage 1 picks the top ``top_k`` (plus cross-entropy).
    screen_configurations : tuple of Configuration
        Stage 1 (frozen features); empty without screening.
    cv, repeats, max_epochs, top_k : int
    refits : int
        Fits of the recommended configuration on all the images afterwards: the
        members of the saved ensemble (0 without a refit).
    dropped : tuple of str
        What the budget changed, in words (the configurations it dropped are
        ``removed``).
    asked : tuple of str
        Methods the user named (``--methods``): never dropped, variants kept.
    removed : tuple of Configuration
        Configurations the budget dropped, in the order it dropped them.
    report : bool
        Whether a report is written after the fits (counted in the estimate).
    """

    configurations: tuple
    screen_configurations: tuple = ()
    cv: int = 5
    repeats: int = 1
    max_epochs: int = 10
    top_k: int = 3
    refits: int = 1
    frozen_only: bool = False
    dropped: tuple = ()
    notes: tuple = field(default=())
    asked: tuple = ()
    removed: tuple = ()
    report: bool = True

    @property
    def screening(self):
        return bool(self.screen_configurations)

    @property
    def n_folds(self):
        return self.cv * self.repeats

    @property
    def n_confirm(self):
        """Configurations fine-tuned in stage 2 (or the only stage)."""
        if self.screening:
            return min(self.top_k, len(self.configurations) - 1) + 1
        return len(self.configurations)

    @property
    def n_fits(self):
        return (len(self.screen_configurations) + self.n_confirm) * self.n_folds


@dataclass(frozen=True)
class Workload:
    """The data side of the estimate: images, class counts, fold sizes, workers."""

    n_images: int
    class_counts: np.ndarray
    valid_fraction: float = 0.2
    n_jobs: int = 1


def rows_per_epoch(config, counts):
    """Training rows one epoch of ``config`` sees, given the training part's class counts."""
    counts = np.asarray(counts, dtype=float)
    sampler = config.sampler
    if sampler in ("over", "smote", "borderline_smote", "adasyn"):
        return len(counts) * counts.max()
    if sampler == "under":
        return len(counts) * counts.min()
    return counts.sum()


def fit_seconds(config, probe, workload, plan, *, frozen, n_train_rows):
    """Estimated seconds of one fit of ``config`` on a training fold of ``n_train_rows``."""
    share = n_train_rows / workload.n_images
    train_counts = workload.class_counts * share * (1 - workload.valid_fraction)
    n_valid = n_train_rows * workload.valid_fraction
    n_test = workload.n_images - n_train_rows
    rows = rows_per_epoch(config, train_counts)
    if frozen:
        return probe.head_overhead + plan.max_epochs * (rows + n_valid) * probe.head_image
    epochs = plan.max_epochs * (rows * probe.train_image + n_valid * probe.eval_image)
    linear_probe = (n_train_rows - n_valid) * probe.eval_image if probe.probes_head else 0.0
    return probe.fit_overhead + linear_probe + epochs + (n_valid + 2 * n_test) * probe.eval_image


def estimate(plan, probe, workload):
    """Estimated wall-clock seconds of ``plan``: every fit, the feature pass and the refit."""
    n_train = workload.n_images * (plan.cv - 1) / plan.cv
    total = 0.0
    for config in plan.screen_configurations:
        total += plan.n_folds * fit_seconds(
            config, probe, workload, plan, frozen=True, n_train_rows=n_train
        )
    if plan.screening:
        total += workload.n_images * probe.eval_image * max(1, workload.n_jobs)
        confirm = sorted(
            (
                fit_seconds(c, probe, workload, plan, frozen=False, n_train_rows=n_train)
                for c in plan.configurations
            ),
            reverse=True,
        )
        total += plan.n_folds * sum(confirm[: plan.n_confirm])  # the dearest ones: no surprise
    else:
        for config in plan.configurations:
            total += plan.n_folds * fit_seconds(
                config, probe, workload, plan, frozen=plan.frozen_only, n_train_rows=n_train
            )
    workers = max(1, workload.n_jobs)
    refit = refit_seconds(plan, probe, workload)
    return total / workers + plan.refits * refit + (REPORT_SECONDS if plan.report else 0.0)


def refit_seconds(plan, probe, workload):
    """Estimated seconds of one refit of the recommended configuration on all the images."""
    return fit_seconds(
        plan.configurations[0],
        probe,
        workload,
        plan,
        frozen=plan.frozen_only,
        n_train_rows=workload.n_images,
    )


def shrink(plan, budget, probe, workload):
    """The largest plan within ``budget`` seconds, by the steps of :data:`SHRINK_ORDER`.

    Returns
    -------
    plan : Plan
        With ``dropped`` listing what was changed, ``removed`` the configurations
        dropped (and, if even the smallest plan is over the budget, a note
        saying so).
    """
    dropped, removed = list(plan.dropped), list(plan.removed)

    def over(candidate):
        return estimate(candidate, probe, workload) > budget

    if over(plan) and plan.repeats > 1:
        dropped.append(f"repeats {plan.repeats} -> 1")
        plan = replace(plan, repeats=1)
    if over(plan):
        kept, gone = _one_per_method(plan.configurations, plan.asked)
        if gone:
            dropped.append(f"variants: {len(gone)} configuration(s), listed below")
            removed += gone
            plan = replace(plan, configurations=kept)
    if over(plan) and plan.screening and plan.top_k > 1:
        dropped.append(f"stage-2 top-k {plan.top_k} -> 1")
        plan = replace(plan, top_k=1)
    if over(plan) and plan.cv > 3:
        dropped.append(f"folds {plan.cv} -> 3")
        plan = replace(plan, cv=3)
    plan, gone = _drop_methods(plan, over, keep_question=True)
    if gone:
        dropped.append(f"methods: {len(gone)} configuration(s), listed below")
        removed += gone
    if over(plan) and plan.refits > 1:
        dropped.append(f"ensemble members {plan.refits} -> 1")
        plan = replace(plan, refits=1)
    epochs = plan.max_epochs
    while over(plan) and plan.max_epochs > 1:
        plan = replace(plan, max_epochs=max(1, plan.max_epochs // 2))
    if plan.max_epochs != epochs:
        dropped.append(f"epochs {epochs} -> {plan.max_epochs}")
    if over(plan) and plan.cv > 2:
        dropped.append(f"folds {plan.cv} -> 2")
        plan = replace(plan, cv=2)
    plan, gone = _drop_methods(plan, over, keep_question=False)
    if gone:
        dropped.append(f"methods of the question: {len(gone)} configuration(s), listed below")
        removed += gone
    notes = list(plan.notes)
    if over(plan):
        notes.append(
            f"even the smallest plan is estimated at "
            f"{format_duration(estimate(plan, probe, workload))}, over the "
            f"{format_duration(budget)} left of the budget; running it anyway"
        )
    return replace(plan, dropped=tuple(dropped), removed=tuple(removed), notes=tuple(notes))


def droppable(configurations, asked=(), *, keep_question=True):
    """The configurations a budget may drop, the first to go first.

    Never: plain cross-entropy, the first focal row (a gamma and an alpha), the
    methods the user named. With ``keep_question`` also not the other methods
    of :data:`~imbal_estimators.app.methods.QUESTION`.
    """
    from .methods import BASELINE, QUESTION

    keep, seen = set(), set()
    for config in configurations:
        if config.method not in seen:
            seen.add(config.method)
            if config.method == "focal" or (keep_question and config.method in QUESTION):
                keep.add(config.name)
    return [
        c
        for c in reversed(configurations)
        if c.name != BASELINE and c.name not in keep and c.method not in asked
    ]


def _drop_methods(plan, over, *, keep_question):
    gone = []
    if plan.screening:
        return plan, gone
    for config in droppable(plan.configurations, plan.asked, keep_question=keep_question):
        if not over(plan):
            break
        gone.append(config)
        plan = replace(plan, configurations=tuple(c for c in plan.configurations if c != config))
    return plan, gone


def _one_per_method(configurations, asked=()):
    kept, removed, seen = [], [], set()
    for config in configurations:
        if config.method in seen and config.method not in asked:
            removed.append(config)
        else:
            seen.add(config.method)
            kept.append(config)
    return tuple(kept), removed


def rerun_command(config, data_dir="DATA_DIR", out="OUT_DIR"):
    """The ``compare`` command that runs ``config`` (its whole method, budget aside)."""
    import shlex

    words = ["imbal-estimators", "compare", str(data_dir), "--out", str(out)]
    return shlex.join([*words, "--methods", config.method])


def dropped_lines(removed, data_dir="DATA_DIR", out="NEW_OUT_DIR"):
    """One line per configuration the budget dropped, each with the command that runs it.

    Names contain commas (``focal g=1, alpha=effective``), so they are never joined
    with commas. A focal row dropped says in words that focal loss was cut short.
    """
    if not removed:
        return []
    lines = [
        "Not run (dropped by the budget); each runs with the command shown "
        "(add your other options), or rerun with a larger --budget:"
    ]
    lines += [f"  - {c.name}: {rerun_command(c, data_dir, out)}" for c in removed]
    focal = [c for c in removed if c.method == "focal"]
    if focal:
        lines.append(
            f"  focal loss: {len(focal)} of its gamma x alpha rows were not run; rerun with "
            "--methods focal or a larger --budget for the whole focal grid."
        )
    return lines


def _refit_text(plan, workload):
    where = f"the recommended configuration on all {workload.n_images} images"
    if plan.refits == 0:
        return "no refit"
    if plan.refits == 1:
        return f"then one refit of {where}"
    return f"then {plan.refits} refits of {where}, averaged as one ensemble"


def network_text(clf):
    """The network of a comparison in words, defaults resolved: never ``None``.

    ``clf`` is an (unfitted) ``ImageImbalanceClassifier`` with the shared settings,
    e.g. ``"resnet34 (pretrained weights DEFAULT) at 224 px"``.
    """
    module = clf.module
    if module is not None:
        what = f"your network: {describe_network(clf.backbone, clf.weights, module)}"
    else:
        weights = clf.weights
        if weights is None:
            init = "random init"
        elif isinstance(weights, str) and weights.upper() == "DEFAULT":
            init = "pretrained weights DEFAULT"
        else:
            init = f"weights {weights}"
        what = f"{clf.backbone} ({init}{', frozen' if clf.freeze_backbone else ''})"
    return f"{what} at {estimator_geometry(clf).crop} px"


def describe_plan(plan, probe, workload, network, *, device, threads, budget=None, image_size=0):
    """The plan in lines of text, printed before the first fit.

    ``network``: :func:`network_text` of the shared settings; ``image_size`` (their
    resolution) lets the advice for a plan over an hour suggest a smaller one.
    """
    n_train = workload.n_images * (plan.cv - 1) / plan.cv
    folds = f"{plan.cv} folds" + (f" x {plan.repeats} repeats" if plan.repeats > 1 else "")
    report = ", then the report" if plan.report else ""
    lines = [
        f"Plan: {plan.n_fits + plan.refits} fits ({folds}; {_refit_text(plan, workload)}"
        f"{report}), {plan.max_epochs} epoch{'s' if plan.max_epochs != 1 else ''} each, "
        f"~{int(n_train)} training images per fit, "
        f"{network}, on {device} ({threads} torch thread(s) per fit, {workload.n_jobs} "
        "worker(s))."
    ]
    if plan.screening:
        lines.append(
            f"  stage 1 (screen on frozen backbone features): {len(plan.screen_configurations)} "
            f"configurations x {plan.n_folds} folds, one feature pass of {workload.n_images} "
            "images"
        )
        top = min(plan.top_k, len(plan.configurations) - 1)
        lines.append(
            f"  stage 2 (confirm, fine-tuned): the top {top} of stage 1 plus plain CE, "
            f"x {plan.n_folds} folds"
        )
    else:
        stage = "frozen backbone features" if plan.frozen_only else "fine-tuned"
        lines.append(
            f"  one stage ({stage}): {len(plan.configurations)} configurations x "
            f"{plan.n_folds} folds:"
        )
        lines += [f"    - {c.name}" for c in plan.configurations]
    seconds = estimate(plan, probe, workload)
    refit = plan.refits * refit_seconds(plan, probe, workload)
    lines.append(
        f"Estimated time: {format_duration(seconds)} (of which refits {format_duration(refit)}"
        + (f", report ~{format_duration(REPORT_SECONDS)}" if plan.report else "")
        + f"; from a {probe.probe_seconds:.1f} s probe on this machine: "
        f"{1000 * probe.train_image:.1f} ms per training image, "
        f"{1000 * probe.eval_image:.1f} ms per predicted image, "
        f"{probe.fit_overhead:.2f} s per fit to set up). The progress bar re-estimates "
        "the rest from the fits done."
    )
    if budget is not None:
        changes = [d for d in plan.dropped if "listed below" not in d]
        lines.append(
            f"Budget {format_duration(budget)}: "
            + ("changed " + "; ".join(changes) if changes else "no setting changed")
            + (f"; {len(plan.removed)} configuration(s) dropped" if plan.removed else "")
            + "."
        )
        lines += dropped_lines(plan.removed)
    lines += [f"Note: {note}." for note in plan.notes]
    lines += advice(plan, probe, workload, image_size=image_size, budget=budget)
    return lines


def advice(plan, probe, workload, *, image_size=0, budget=None):
    """Options of ``compare`` that bring a plan over an hour down, with their estimates."""
    seconds = estimate(plan, probe, workload)
    if seconds <= 3600:
        return []
    options = []
    if not plan.frozen_only:
        # one feature pass of every image (cached), then a linear head per fit: the head's
        # epochs cost next to nothing beside the pass
        heads = plan.n_fits * max(probe.head_overhead, 0.5)
        frozen = (
            2 * workload.n_images * probe.eval_image / max(1, workload.n_jobs)
            + heads
            + plan.refits * 1.0
        )
        options.append(("--freeze-backbone (with pretrained --weights DEFAULT)", frozen))
    if image_size > 64:
        smaller = max(32, image_size // 2)
        scale = (smaller / image_size) ** 2  # the cost of a convolution grows with the pixels
        cheaper = replace(
            probe,
            train_image=probe.train_image * scale,
            eval_image=probe.eval_image * scale,
        )
        options.append((f"--image-size {smaller}", estimate(plan, cheaper, workload)))
    if plan.cv > 3:
        options.append(("--cv 3", estimate(replace(plan, cv=3), probe, workload)))
    if plan.repeats > 1:
        options.append(("--repeats 1", estimate(replace(plan, repeats=1), probe, workload)))
    if budget is None:
        options.append(("--budget 1h", 3600.0))
    lines = [
        f"This plan runs {format_duration(seconds)}, over an hour. Options that bring it "
        "down (estimated on this machine; they combine):"
    ]
    lines += [f"  {option}: ~{format_duration(value)}" for option, value in options]
    return lines
