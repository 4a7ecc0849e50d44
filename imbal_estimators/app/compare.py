"""The comparison behind ``imbal-estimators compare``: every method, planned, tested, refitted.

:func:`compare` cross-validates the configurations of the method table
(:mod:`~imbal_estimators.app.methods`) with stratified, optionally repeated,
k-fold CV and hands back the recommended model:

1. **plan**: a timed probe estimates every fit; the plan is printed before the
   first fit, and a ``budget`` shrinks it (:mod:`~imbal_estimators.app.plan`);
2. **screen** (pretrained backbones only): every configuration trains a head on
   frozen backbone features, SMOTE family included;
3. **confirm**: the top ``top_k`` of the screen plus plain cross-entropy are
   fine-tuned (without pretrained weights: every configuration, no screen);
4. **recommend** only what the paired folds support
   (:mod:`~imbal_estimators.app.recommend`; after a screen, the screen's answer on
   frozen features and the confirm's fine-tuned one compete on the same folds),
   and **refit** that configuration on all the images (``best_estimator_``).

Each configuration is fitted once per fold; every decision rule is scored on
that one fitted model. Binary problems fit with ``threshold="auto"``: the
``argmax`` row decides by the highest probability, the ``tuned threshold`` row
is the estimator's own ``predict``, with the threshold it tuned on its internal
validation split of the training fold (``threshold_``; a frozen head on the
out-of-fold logits of an inner k-fold CV, :mod:`~imbal_estimators.training.head_folds`).
Multi-class problems
fit with ``posthoc_tau=1`` where it applies: ``argmax`` against the post-hoc
logit adjustment of ``predict``. The tuned threshold maximizes the metric that
ranks the rows: ``monitor`` is ``scoring`` (unless given), except for binary
problems scored by F1, which keep the epoch by average precision and tune the
threshold for F1 (:func:`monitor_for`).
"""

import logging
import os
import shlex
import shutil
import tempfile
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import RepeatedStratifiedKFold
from tqdm.auto import tqdm

from ..data.folders import check_outputs_outside
from ..data.images import ImageLoader, scan_images
from ..data.labels import plain_value
from ..decision import metrics
from ..decision.evaluation import METRICS, score_predictions
from ..decision.positive import resolve_pos_label
from ..estimator.classifier import ImageImbalanceClassifier
from ..estimator.ensemble import SeedEnsembleClassifier, member_seeds
from ..estimator.finetune import AUTO_HEAD_LR_SCALE, small_steps
from ..estimator.geometry import estimator_geometry
from ..estimator.loss_params import criterion_spelling
from ..imbalance.samplers import make_sampler as make_sampler_object
from ..io.jsonable import import_path
from ..io.spreadsheet import safe_writer
from ..models.backbones import is_pretrained
from ..training.interrupt import stop_on_signals
from ..utils.param_validation import (
    Constraint,
    Interval,
    StrOptions,
    validate_parameter_constraints,
)
from ..utils.types import ImagePaths, Labels, StrPath
from . import plan as planning
from ._docstrings import COMPARE_DOC
from .journal import Journal, data_digest, digest
from .methods import (
    BASELINE,
    IMBALANCE_PARAMS,
    METHOD_ALIASES,
    SAMPLERS,
    Configuration,
    default_configurations,
    load_grid,
    make_sampler,
    with_baseline,
)
from .pacing import Pacer
from .parallel import FitTask, run_fits
from .recommend import POSTHOC_SUFFIX, TUNED_SUFFIX, recommend
from .stats import spearman

# the registry's scores that compare records for every row (decision/evaluation.METRICS)
SCORING_OPTIONS = tuple(name for name in metrics.SCORING_OPTIONS if name in METRICS)
POSTHOC_TAU = 1.0
ARGMAX, TUNED, POSTHOC, OWN = "argmax", "tuned threshold", "post-hoc adjustment", "as configured"
# prior-correcting losses already remove the prior: a post-hoc adjustment would double it
_PRIOR_LOSSES = ("logit_adjusted", "balanced_softmax")

logger = logging.getLogger(__name__)


@dataclass
class RowResult:
    """One row of the comparison: a configuration with one decision rule.

    ``fold_scores[metric]`` has one value per fold (all repeats, in fold order);
    ``thresholds`` the estimator's ``threshold_`` per fold (tuned rows).
    """

    name: str
    configuration: Configuration
    rule: str
    stage: str = "confirm"
    fold_scores: dict = field(default_factory=lambda: {m: [] for m in METRICS})
    thresholds: list = field(default_factory=list)
    y_pred: np.ndarray | None = None  # out-of-fold predictions of the first repeat

    def mean(self, metric: str) -> float:
        return float(np.mean(self.fold_scores[metric]))

    def std(self, metric: str) -> float:
        return float(np.std(self.fold_scores[metric]))


@dataclass
class Stage:
    """One stage's ranked rows and what it ran on."""

    name: str  # "screen" or "confirm"
    rows: list
    frozen: bool
    proba: dict = field(default_factory=dict)  # configuration name -> OOF proba (repeat 1)
    histories: dict = field(default_factory=dict)
    fit_seconds: dict = field(default_factory=dict)
    failures: dict = field(default_factory=dict)  # configuration name -> error


@dataclass
class Comparison:
    """What :func:`compare` measured and recommends.

    Attributes
    ----------
    classes : ndarray
    pos_label : label or None
        The positive class of a binary problem (None for multi-class).
    scoring : str
    labels, paths : ndarray
    splits : list of (train, test)
        Every fold of every repeat, in fold order.
    cv, repeats : int
    rows : list of RowResult
        The final stage's rows, best first.
    stages : list of Stage
        ``[screen, confirm]`` with screening, else ``[confirm]``.
    screen_note : str
        Why stage 1 did not run (empty when it did).
    estimator_params : dict
        The parameters shared by every fit.
    plan : Plan
    plan_lines : list of str
    recommendation : Recommendation
    best_estimator_ : ImageImbalanceClassifier, SeedEnsembleClassifier or None
        The recommended configuration refitted on all the images (an ensemble
        of ``plan.refits`` fits when that is more than one).
    """

    classes: np.ndarray
    pos_label: object
    scoring: str
    labels: np.ndarray
    paths: np.ndarray
    splits: list
    cv: int
    repeats: int
    stages: list
    estimator_params: dict
    screen_note: str = ""
    plan: object = None
    plan_lines: list = field(default_factory=list)
    recommendation: object = None
    best_estimator_: ImageImbalanceClassifier | SeedEnsembleClassifier | None = None
    refit_seconds: float = 0.0

    @property
    def final(self):
        return self.stages[-1]

    @property
    def screen(self):
        return self.stages[0] if len(self.stages) > 1 else None

    @property
    def rows(self) -> list[RowResult]:
        return self.final.rows

    @property
    def proba(self):
        return self.final.proba

    @property
    def histories(self):
        return self.final.histories

    @property
    def fit_seconds(self):
        return self.final.fit_seconds

    @property
    def n_folds(self):
        return len(self.splits)

    @property
    def folds(self):
        """The test fold (of the first repeat) of every image."""
        folds = np.empty(len(self.labels), dtype=int)
        for fold, (_, test) in enumerate(self.splits[: self.cv]):
            folds[test] = fold
        return folds

    @property
    def fold_sizes(self):
        """Mean training and test images per fold (for the corrected t-test)."""
        n_test = float(np.mean([len(test) for _, test in self.splits]))
        return len(self.labels) - n_test, n_test

    @property
    def best(self) -> RowResult:
        return self.rows[0]

    @property
    def recommended(self):
        return self.recommendation.row

    def row(self, name):
        return next(row for row in self.rows if row.name == name)

    def row_or_none(self, name):
        return next((row for row in self.rows if row.name == name), None)

    @property
    def baseline(self):
        return self.row(BASELINE)

    def rank_agreement(self):
        """Spearman correlation of stage 1's and stage 2's means over stage 2's rows."""
        if self.screen is None:
            return float("nan")
        screened = {row.name: row.mean(self.scoring) for row in self.screen.rows}
        pairs = [(screened[r.name], r.mean(self.scoring)) for r in self.rows if r.name in screened]
        if len(pairs) < 3:
            return float("nan")
        return spearman(*zip(*pairs, strict=True))

    def row_params(self, row):
        """Every estimator parameter of ``row``'s fit, its decision rule included
        (``sampler`` as its name)."""
        frozen = row.stage == "screen" or bool(self.estimator_params.get("freeze_backbone"))
        return fit_params(
            self.estimator_params, row.configuration, row.rule, self.pos_label, frozen
        )

    def fit_command(self, row, data_dir="DATA_DIR", out="MODEL_DIR", ensemble=1):
        """The ``imbal-estimators fit`` command line that trains ``row``'s model
        (``ensemble`` > 1: an ensemble of that many, as compare's saved model)."""
        command = fit_command(self.row_params(row), data_dir, out)
        if command.startswith(NOT_REPRODUCIBLE):
            return command
        return command + (f" --ensemble {ensemble}" if ensemble > 1 else "")

    def write_results_csv(self, path, data_dir="DATA_DIR"):
        """One row per stage, configuration and rule, ranked within each stage."""
        header = ["stage", "rank", "configuration", "method", "decision", "parameters"]
        header += ["threshold"] + [f"{m}_{s}" for m in METRICS for s in ("mean", "std")]
        header += ["fit_seconds", "recommended", "fit"]
        recommended = self.recommendation.row if self.recommendation else None
        with open(path, "w", newline="") as file:
            writer = safe_writer(file)
            writer.writerow(header)
            for stage in reversed(self.stages):
                for rank, row in enumerate(stage.rows, start=1):
                    config = row.configuration
                    threshold = np.mean(row.thresholds) if row.thresholds else ""
                    writer.writerow(
                        [
                            stage.name,
                            rank,
                            row.name,
                            config.method,
                            row.rule,
                            _params_text(config.params),
                            "" if threshold == "" else f"{threshold:.4f}",
                        ]
                        + [f"{v:.6f}" for m in METRICS for v in (row.mean(m), row.std(m))]
                        + [
                            f"{stage.fit_seconds.get(config.name, 0.0):.1f}",
                            "yes" if row is recommended else "",
                            # the recommended row's command trains the saved model
                            self.fit_command(
                                row,
                                data_dir,
                                ensemble=self.plan.refits if row is recommended else 1,
                            ),
                        ]
                    )

    def write_fold_scores_csv(self, path):
        """Every row's score on every test fold (long format)."""
        with open(path, "w", newline="") as file:
            writer = safe_writer(file)
            writer.writerow(["stage", "configuration", "fold", "repeat", "threshold", *METRICS])
            for stage in reversed(self.stages):
                for row in stage.rows:
                    for fold in range(self.n_folds):
                        threshold = f"{row.thresholds[fold]:.4f}" if row.thresholds else ""
                        scores = [f"{row.fold_scores[m][fold]:.6f}" for m in METRICS]
                        writer.writerow(
                            [stage.name, row.name, fold, fold // self.cv, threshold, *scores]
                        )


# -- the positive class, the decision parameters, the fit command ---------------------------


def positive_class(labels, pos_label=None):
    """The class ``compare`` treats as positive: ``pos_label``, else the rarer class.

    The one place this rule lives in compare (None for multi-class).
    """
    classes = np.unique(labels)
    if len(classes) != 2:
        return None
    if pos_label is None:
        return resolve_pos_label(None, *np.unique(labels, return_counts=True))
    if pos_label not in classes:
        raise ValueError(
            f"pos_label {plain_value(pos_label)!r} is not a class; classes: {classes.tolist()}."
        )
    return classes[np.flatnonzero(classes == pos_label)[0]]


def monitor_for(scoring, n_classes):
    """The ``monitor`` of compare's fits.

    Binary problems scored by F1: ``"average_precision"``, which keeps the epoch
    that ranks the positive class best whatever the threshold; the tuned
    threshold (``threshold="auto"`` tunes F1 for a threshold-free monitor) then
    sets the decision. Otherwise the scoring itself, so that a tuned threshold
    maximizes it.

    Measured (``docs/quality.md``, plain cross-entropy, held-out F1, 30 fits on
    each of three sets, paired): with a tuned threshold, ``"average_precision"``
    scored 0.703 / 0.852 / 0.831 against 0.671 / 0.834 / 0.841 for
    ``monitor="f1"`` and 0.644 / 0.827 / 0.806 for ``monitor="f1"`` at argmax, and
    its worst fit was the best worst fit (F1 0.43 / 0.71 / 0.70). Its argmax rows
    can collapse (the kept epoch may predict only the common class), which is why
    the recommendation falls back to the tuned threshold first
    (:mod:`~imbal_estimators.app.recommend`). ``"valid_loss"`` with a tuned
    threshold was as good on one set and worse on the others (0.712 / 0.822 /
    0.826).
    """
    if n_classes == 2 and scoring == "f1":
        return "average_precision"
    return scoring


def fit_params(base, config, rule, pos_label, frozen):
    """The estimator parameters of one fit: shared settings, configuration, decision rule.

    ``sampler`` stays a name here (see :meth:`Configuration.estimator_params`).
    """
    params = {**base, **config.params}
    params.update(_rule_params(rule))
    if pos_label is not None:  # monitor, threshold and a float alpha score compare's class
        params["pos_label"] = plain_value(pos_label)
    if frozen:
        params["freeze_backbone"] = True
    if params.get("drw_epoch") is not None:  # the budget may have cut the epochs
        params["drw_epoch"] = min(params["drw_epoch"], params.get("max_epochs", 10))
    return params


def _rule_params(rule):
    """The estimator parameters of a decision rule (the fit that scores it)."""
    if rule == TUNED:
        return {"threshold": "auto", "posthoc_tau": None}
    if rule == POSTHOC:
        return {"posthoc_tau": POSTHOC_TAU, "threshold": None}
    if rule == ARGMAX:
        return {"threshold": None, "posthoc_tau": None}
    return {}


def fit_rules(config, n_classes):
    """The decision rules scored on ``config``'s fits, the fitted one last."""
    if config.decides:
        return (OWN,)
    if n_classes == 2:
        return (ARGMAX, TUNED)
    if config.params.get("loss") in _PRIOR_LOSSES or config.sampler is not None:
        return (ARGMAX,)  # already prior-free: a post-hoc adjustment corrects twice
    return (ARGMAX, POSTHOC)


def _row_name(config, rule):
    suffix = {TUNED: TUNED_SUFFIX, POSTHOC: POSTHOC_SUFFIX}.get(rule, "")
    return config.name + suffix


# estimator parameters that are shared settings, with their ``fit`` flag
_FIT_FLAGS = (
    *IMBALANCE_PARAMS,
    "threshold",
    "posthoc_tau",
    "calibrate",
    "backbone",
    "weights",
    "normalize",
    "image_size",
    "max_epochs",
    "lr",
    "batch_size",
    "monitor",
    "freeze_backbone",
    "head_init",
    "freeze_norm",
    "head_lr_scale",
    "device",
    "random_state",
    "pos_label",
)


def fit_command(params, data_dir="DATA_DIR", out="MODEL_DIR"):
    """The ``imbal-estimators fit`` command of a parameter set (flag ``--foo-bar`` per
    parameter ``foo_bar``; defaults and None left out), or, where the command line
    cannot give the same network or setting, a sentence that says so and why."""
    defaults = ImageImbalanceClassifier().get_params(deep=False)
    params = dict(params)
    module = params.pop("module", None)
    words = ["imbal-estimators", "fit", str(data_dir), "--out", str(out)]
    if module is not None:
        from ..models.small_cnn import SmallCNN

        if module is SmallCNN and not _is_file(params.get("weights")):
            params["backbone"] = "small_cnn"  # the same network by its registry name
            params["weights"] = None
        else:
            path = import_path(module) if isinstance(module, type) else None
            if path is None or path.split(".")[0].startswith("_"):
                return _not_reproducible(
                    f"module={getattr(module, '__name__', type(module).__name__)} is not a "
                    "class importable by name (--module package.module:Class)"
                )
            words += ["--module", path]
            params.pop("backbone", None)
            if params.get("weights") is not None and not _is_file(params["weights"]):
                params.pop("weights")  # a module ignores weight names; only a file loads
    unsupported = sorted(
        name
        for name, value in params.items()
        if name not in _FIT_FLAGS
        and name not in _NOT_FIT_SETTINGS
        and not (name in defaults and _same(value, defaults[name]))
    )
    if unsupported:
        return _not_reproducible(
            ", ".join(f"{n}={params[n]!r}" for n in unsupported) + " has no option"
        )
    for name in _FIT_FLAGS:
        if name not in params:
            continue
        value = params[name]
        if name == "sampler":
            value = _sampler_name(value)
        if name == "weights" and value is None:
            words += ["--weights", "none"]
            continue
        if name == "normalize":
            if value == "auto":
                continue
            value = "none" if value is None else value
            if not isinstance(value, str):
                value = ",".join(f"{v:g}" for v in (*value[0], *value[1]))
        if value is None or (name in defaults and _same(value, defaults[name])):
            continue
        if name == "freeze_norm":  # True, False or "auto": a value, not a switch
            value = {True: "yes", False: "no"}.get(value, value)
        if value is True:
            words.append("--" + name.replace("_", "-"))
            continue
        words += ["--" + name.replace("_", "-"), _flag_value(value)]
    return shlex.join(words)


# shared settings that the fit command leaves out: output, caching, speed
_NOT_FIT_SETTINGS = (
    "verbose",
    "cache",
    "checkpoint_dir",
    "on_bad_image",
    "precision",
    "auto_batch_size",
    "use_caching",
)


def _is_file(weights):
    from ..models.backbones import is_weights_file

    return weights is not None and is_weights_file(weights)


NOT_REPRODUCIBLE = "not reproducible from the command line"


def _not_reproducible(why):
    return f"{NOT_REPRODUCIBLE}: {why}; use the Python API (compare's estimator_params)"


def _same(value, default):
    try:
        return type(value) is type(default) and bool(value == default)
    except (TypeError, ValueError):
        return False


def _flag_value(value):
    if isinstance(value, float):
        return f"{value:g}"
    return str(plain_value(value))


def _sampler_name(sampler):
    if sampler is None or isinstance(sampler, str):
        return sampler
    for name in SAMPLERS:
        if type(sampler) is type(make_sampler_object(name)):
            return name
    return type(sampler).__name__


def _params_text(params):
    return ", ".join(f"{k}={plain_value(v)!r}" for k, v in params.items())


# -- checks -------------------------------------------------------------------------------


def check_folds(labels, cv):
    """Refuse data that stratified ``cv``-fold cross-validation cannot split."""
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) < 2:
        raise ValueError(
            f"The data have a single class ({classes.tolist()}); a comparison needs at "
            "least two class folders."
        )
    validate_parameter_constraints({"cv": COMPARE_CONSTRAINTS["cv"]}, {"cv": cv}, "compare")
    if counts.min() < cv:
        small = classes[np.argmin(counts)].item()
        raise ValueError(
            f"Class {small!r} has {counts.min()} image(s); {cv}-fold cross-validation needs "
            f"at least {cv} per class. Lower --cv or add images."
        )


def _choose_configurations(configurations, methods, grid, max_epochs, features):
    given = [x is not None for x in (configurations, methods, grid)]
    if sum(given) > 1:
        raise ValueError("Give at most one of configurations, methods and grid.")
    if grid is not None:
        configurations = load_grid(grid)
    if configurations is None:
        return default_configurations(methods, max_epochs=max_epochs, features=features)
    return with_baseline(configurations)


# -- compare ------------------------------------------------------------------------------


class NonZeroInt(Constraint):
    """An int other than 0 (joblib's ``n_jobs``: 1 one at a time, -1 one per core)."""

    type = Integral  # the command line parses the option as an int

    def is_satisfied_by(self, value):
        return (
            isinstance(value, Integral) and not isinstance(value, (bool, np.bool_)) and value != 0
        )

    def __str__(self):
        return "a non-zero integer (1: one fit at a time; -1: one per core)"


# compare's own arguments, checked with the estimators' validator; the command line's
# options of the same names are built from these (app/option_types.py)
COMPARE_CONSTRAINTS: dict[str, list] = {
    "cv": [Interval(Integral, 2, None, closed="left")],
    "repeats": [Interval(Integral, 1, None, closed="left")],
    "scoring": [StrOptions(set(SCORING_OPTIONS))],
    "random_state": ["random_state"],
    "n_jobs": [None, NonZeroInt()],
    "threads": [None, Interval(Integral, 1, None, closed="left")],
    "budget": [None, Interval(Real, 0, None, closed="neither"), str],
    "top_k": [Interval(Integral, 1, None, closed="left")],
    "screen": [StrOptions({"auto"}), "boolean"],
    "pretrained": [StrOptions({"auto"}), "boolean"],
    "refit": ["boolean"],
    "ensemble": [Interval(Integral, 1, None, closed="left")],
    "progress": ["boolean"],
    "restart": ["boolean"],
}


@stop_on_signals()  # the first Ctrl-C or SIGTERM stops the run; the journal keeps what finished
def compare(
    paths: ImagePaths,
    labels: Labels,
    *,
    methods: Sequence[str] | None = None,
    configurations: Sequence[Configuration] | None = None,
    grid: StrPath | None = None,
    cv: int = 5,
    repeats: int = 1,
    scoring: str = "f1",
    pos_label: Hashable | None = None,
    estimator_params: Mapping[str, Any] | None = None,
    random_state: int = 0,
    n_jobs: int | None = 1,
    threads: int | None = None,
    budget: float | str | None = None,
    top_k: int = 3,
    screen: bool | str = "auto",
    pretrained: bool | str = "auto",
    refit: bool = True,
    ensemble: int = 3,
    progress: bool = True,
    log: Callable[[str], object] | None = None,
    journal: StrPath | Journal | None = None,
    restart: bool = False,
    finish: Callable[[Comparison], object] | None = None,
    started: float | None = None,
) -> Comparison:
    # the docstring (parameters, returns, raises) is app/_docstrings.py's COMPARE_DOC
    # In the following block we: check the arguments against COMPARE_CONSTRAINTS; resolve the
    # data, the shared parameters and whether stage 1 runs; plan every fit; open the journal;
    # decode every image and time a probe; shrink the plan to the budget and print it; then
    # screen, confirm, recommend, refit and finish under one progress bar.
    start = time.perf_counter() if started is None else started  # decoding and probe count
    given = dict(locals())  # the arguments as given: each step below takes those it names
    validate_parameter_constraints(COMPARE_CONSTRAINTS, given, "compare")
    setup = _resolve(**given)
    plan, candidates = _first_plan(setup, **given)
    journal = _open_journal(setup, candidates, **given)
    probe = _decode_and_probe(setup, journal)
    workload = planning.Workload(len(setup.paths), setup.counts, n_jobs=_workers(n_jobs))
    if setup.budget is not None:
        spent = time.perf_counter() - start
        plan = planning.shrink(plan, max(setup.budget - spent, 1e-3), probe, workload)
    threads = threads or _torch_threads()
    lines = _announce(setup, plan, probe, workload, threads) + _journal_note(setup, journal)
    comparison = _new_comparison(setup, plan, lines, scoring, random_state)
    pacer = Pacer(setup.budget, start, workload.n_jobs, setup.log)
    run = _Runner(
        comparison, plan, probe, workload, n_jobs, threads, progress, setup.frozen_only, pacer
    )
    run.journal = journal
    _run_stages(run, comparison, setup.screening, refit, finish)
    return comparison


compare.__doc__ = COMPARE_DOC


@dataclass(frozen=True)
class _Setup:
    """What :func:`compare` resolved from its arguments before planning."""

    paths: np.ndarray
    labels: np.ndarray
    pos_label: object  # None for multi-class
    base: dict  # the estimator parameters shared by every fit
    clf: ImageImbalanceClassifier  # ``base`` resolved, never fitted
    screen_note: str  # why stage 1 does not run ("" when it does)
    budget: float | None  # seconds
    log: Callable[[str], None]

    @property
    def classes(self):
        return np.unique(self.labels)

    @property
    def counts(self):
        return np.unique(self.labels, return_counts=True)[1]

    @property
    def frozen_only(self):
        return bool(self.clf.freeze_backbone)

    @property
    def screening(self):
        return not self.screen_note

    @property
    def features(self):
        """Whether some fit trains on frozen backbone features (the SMOTE family can run)."""
        return self.screening or self.frozen_only


def _resolve(
    *,
    paths,
    labels,
    cv,
    scoring,
    pos_label,
    estimator_params,
    random_state,
    journal,
    screen,
    pretrained,
    budget,
    log,
    progress,
    **_,
):
    """The data, the shared parameters and the screen's decision; refuses what cannot run."""
    paths = np.asarray(paths, dtype=object)
    labels = np.asarray(labels)
    budget = None if budget is None else planning.parse_budget(budget)
    check_folds(labels, cv)
    outputs = {**(estimator_params or {}), "journal": getattr(journal, "directory", journal)}
    check_outputs_outside(paths, labels, outputs)
    pos_label = positive_class(labels, pos_label)
    base = {"verbose": 0, "random_state": random_state, **(estimator_params or {})}
    if "monitor" not in (estimator_params or {}):
        base["monitor"] = monitor_for(scoring, len(np.unique(labels)))
    clf = ImageImbalanceClassifier(**base)
    told = pretrained is not None and pretrained != "auto"
    if not told:
        pretrained = is_pretrained(clf.weights, clf.module)
    else:  # what the user says of the network decides how it is fine-tuned
        on = bool(pretrained) and small_steps(clf.lr)  # as "auto" decides (estimator/finetune.py)
        told_params = {
            "head_init": "probe" if on else "random",
            "freeze_norm": on,
            "head_lr_scale": AUTO_HEAD_LR_SCALE if on else 1.0,
        }
        base.update({k: v for k, v in told_params.items() if base.get(k, "auto") == "auto"})
        clf = ImageImbalanceClassifier(**base)
    note = _screen_note(screen, bool(clf.freeze_backbone), pretrained, clf, told)
    log = _plan_log(log, progress)
    return _Setup(paths, labels, pos_label, base, clf, note, budget, log)


def _first_plan(
    setup, *, configurations, methods, grid, cv, repeats, top_k, refit, ensemble, finish, **_
):
    """The plan before the budget, and every candidate configuration."""
    candidates = _choose_configurations(
        configurations, methods, grid, setup.clf.max_epochs, setup.features
    )
    confirm = tuple(c for c in candidates if setup.frozen_only or not c.needs_features)
    left_out = [c.name for c in candidates if c not in confirm]
    notes = []
    if left_out and not setup.screening:
        notes.append(
            "left out (they interpolate feature vectors, which need frozen backbone features): "
            + ", ".join(left_out)
        )
    plan = planning.Plan(
        configurations=confirm,
        screen_configurations=tuple(candidates) if setup.screening else (),
        cv=cv,
        repeats=repeats,
        max_epochs=setup.clf.max_epochs,
        top_k=top_k,
        refits=ensemble if refit else 0,
        frozen_only=setup.frozen_only,
        notes=tuple(notes),
        asked=_asked_methods(methods, candidates),
        report=finish is not None,
    )
    return plan, candidates


def _open_journal(
    setup,
    candidates,
    *,
    journal,
    restart,
    cv,
    repeats,
    scoring,
    random_state,
    top_k,
    refit,
    ensemble,
    **_,
):
    """The journal opened on these images and settings (None without one): a journal of
    other images or settings is refused unless ``restart``."""
    if journal is None:
        return None
    settings = dict(
        estimator_params=setup.base,
        configurations=[(c.name, c.method, c.params) for c in candidates],
        cv=cv,
        repeats=repeats,
        scoring=scoring,
        pos_label=plain_value(setup.pos_label),
        random_state=random_state,
        budget=setup.budget,
        top_k=top_k,
        screening=setup.screening,
        refit=refit,
        ensemble=ensemble,
    )
    journal = journal if isinstance(journal, Journal) else Journal(journal, restart=restart)
    journal.open(data_digest(setup.paths, setup.labels), digest(settings))
    return journal


def _decode_and_probe(setup, journal):
    """Decode every image once (a bad file fails now, and the fits reuse the cache), then
    time a probe, or take the one a resumed run recorded (the same plan, the same fits)."""
    clf, log = setup.clf, setup.log
    network = planning.network_text(clf)
    geometry = estimator_geometry(clf)  # the fits' own: their cache keys
    log(f"Decoding {len(setup.paths)} images: {geometry.describe()} (once; the fits reuse them)...")
    scan_images(setup.paths, ImageLoader(geometry, clf.cache), name="images")
    probe = journal.probe(planning.Probe) if journal is not None else None
    if probe is not None:
        return probe
    log(
        "Timing a probe on this machine to plan the run: "
        + ("a frozen-feature pass and a head, and " if setup.features else "")
        + ("" if setup.frozen_only else "one training epoch and one prediction pass ")
        + f"of {network}, on a few images..."
    )
    probe = planning.run_probe(
        setup.paths,
        setup.labels,
        setup.base,
        frozen=setup.features,
        finetune=not setup.frozen_only,
    )
    if journal is not None:
        journal.record_probe(probe)
    return probe


def _announce(setup, plan, probe, workload, threads):
    """Log the positive class, the plan and its estimated time; return the lines."""
    lines = []
    pos_label = setup.pos_label
    if pos_label is not None:
        lines.append(
            f"Positive class: {plain_value(pos_label)!r} (F1, precision, recall, average precision "
            "and the tuned threshold are those of this class"
            + (")." if positive_class(setup.labels) != pos_label else "; the rarer class).")
        )
    lines += planning.describe_plan(
        plan,
        probe,
        workload,
        planning.network_text(setup.clf),
        device=setup.clf.device,
        threads=threads,
        budget=setup.budget,
        image_size=estimator_geometry(setup.clf).crop,
    )
    if setup.screen_note:
        lines.append(f"Stage 1 skipped: {setup.screen_note}.")
    for line in lines:
        setup.log(line)
    return lines


def _journal_note(setup, journal):
    """The line that says a resumed run's estimate counts fits it will not train again."""
    done = 0 if journal is None else len(journal.done)
    if not done:
        return []
    line = (
        f"The journal holds {done} finished fit(s) of this run ({journal.directory}): the "
        "estimate above counts them, but those the plan still holds are read back, not "
        "trained again, so the run may take less."
    )
    setup.log(line)
    return [line]


def _new_comparison(setup, plan, lines, scoring, random_state):
    """The empty :class:`Comparison` of the planned run: its folds drawn, no stage yet."""
    splitter = RepeatedStratifiedKFold(
        n_splits=plan.cv, n_repeats=plan.repeats, random_state=random_state
    )
    return Comparison(
        classes=setup.classes,
        pos_label=setup.pos_label,
        scoring=scoring,
        labels=setup.labels,
        paths=setup.paths,
        splits=list(splitter.split(setup.paths, setup.labels)),
        cv=plan.cv,
        repeats=plan.repeats,
        stages=[],
        # the budget may have cut the epochs
        estimator_params={**setup.base, "max_epochs": plan.max_epochs},
        screen_note=setup.screen_note,
        plan=plan,
        plan_lines=lines,
    )


def _run_stages(run, comparison, screening, refit, finish):
    """Screen (when it runs), confirm, recommend, refit and ``finish`` under the progress bar;
    the cache folder the workers shared is removed whatever happens."""
    plan = comparison.plan
    confirm = plan.configurations
    try:
        with run.bar:
            if screening:
                screen_stage = run.stage("screen", plan.screen_configurations, frozen=True)
                comparison.stages.append(screen_stage)
                confirm = _top_configurations(screen_stage, plan, comparison.scoring)
            comparison.stages.append(run.stage("confirm", confirm, frozen=run.frozen_only))
            comparison.recommendation = recommend(comparison)
            if refit:
                run.refit(comparison)
            run.finish(finish)
    finally:
        if run.cache_dir is not None:
            shutil.rmtree(run.cache_dir, ignore_errors=True)


def _asked_methods(methods, candidates):
    """The methods the user named (``--methods``): a budget keeps them whole."""
    if not methods:
        return ()
    by_name = {c.name: c.method for c in candidates}
    return tuple(
        dict.fromkeys(by_name.get(name, METHOD_ALIASES.get(name, name)) for name in methods)
    )


def _screen_note(screen, frozen_only, pretrained, clf, told=False):
    """Why stage 1 does not run ("" when it does)."""
    if screen is False:
        return "screen=False"
    if frozen_only:
        return "the backbone is frozen for every fit already (freeze_backbone=True)"
    if not pretrained:
        module = clf.module
        if told:
            what = "pretrained=False (--no-pretrained) says the network starts from random weights"
        elif module is not None:
            name = getattr(module, "__name__", type(module).__name__)
            what = f"module={name} sets pretrained = False: the network starts from random weights"
        else:
            what = "the network starts from random weights (weights=None, --weights none)"
        reason = (
            f"{what}, so frozen features would rank nothing; every configuration is "
            "fine-tuned (a pretrained network: weights='DEFAULT', a weights file or module=)"
        )
        if screen is True:
            raise ValueError(f"screen=True needs a pretrained network: {reason}.")
        return reason
    return ""


def _top_configurations(screen_stage, plan, scoring):
    """Stage 2: the best ``top_k`` configurations of the screen that can be fine-tuned, and CE."""
    chosen = []
    for row in screen_stage.rows:
        config = row.configuration
        if config.needs_features or config.name == BASELINE or config in chosen:
            continue
        chosen.append(config)
        if len(chosen) == plan.top_k:
            break
    baseline = next(c for c in plan.configurations if c.name == BASELINE)
    return (baseline, *chosen)


def _workers(n_jobs):
    if n_jobs is None or n_jobs == 1:
        return 1
    cores = os.cpu_count() or 1
    return cores if n_jobs < 0 else min(n_jobs, cores * 4)


def _torch_threads():
    import torch

    return torch.get_num_threads()


def _plan_log(log, progress):
    """Each line to the module's logger, and to ``log`` (``print`` when ``progress``)."""
    shown = log if log is not None else (print if progress else None)

    def emit(line):
        logger.info(line)
        if shown is not None:
            shown(line)

    return emit


def _ranked(rows, configurations, metric):
    """``rows`` best first: highest mean, then lowest spread, then table order, then argmax
    (or the configuration's own rule) before the tuned threshold or post-hoc adjustment."""
    order = {c.name: i for i, c in enumerate(configurations)}
    rank_of_rule = {ARGMAX: 0, OWN: 0, TUNED: 1, POSTHOC: 1}
    return sorted(
        rows,
        key=lambda r: (
            -round(r.mean(metric), 12),
            round(r.std(metric), 12),
            order[r.configuration.name],
            rank_of_rule[r.rule],
        ),
    )


class _UnlessDropped(list):
    """The task list, whose iteration leaves out the configurations in ``dropped`` at the
    time each task is reached: joblib reads its tasks lazily (a few ahead of the
    workers), so a configuration the budget drops meanwhile is not started."""

    def __init__(self, tasks, dropped):
        super().__init__(tasks)
        self.dropped = dropped

    def __iter__(self):
        for task in super().__iter__():
            if not self.skip(task):
                yield task

    def skip(self, task):
        """Whether ``task`` was dropped since the list was made."""
        return task.name in self.dropped


class _Runner:
    """Builds each stage's fit tasks, runs them through :func:`run_fits`, assembles rows.

    The progress bar counts planned seconds; its text shows the fits done, what
    runs, and the time left re-estimated from the fits done (:class:`Pacer`),
    refits and report included. With a budget the pacer drops configurations
    still to run when the re-estimate would end past it.
    """

    def __init__(
        self, comparison, plan, probe, workload, n_jobs, threads, progress, frozen_only, pacer
    ):
        self.comparison = comparison
        self.plan = plan
        self.probe = probe
        self.workload = workload
        self.n_jobs = n_jobs
        self.threads = threads
        self.frozen_only = frozen_only
        self.pacer = pacer
        self.total_fits = plan.n_fits + plan.refits
        self.done = 0
        self.refit_cost = planning.refit_seconds(plan, probe, workload)
        self.fits_left = planning.estimate(plan, probe, workload) - self._serial_left()
        self.fits_left *= max(1, workload.n_jobs)  # planned seconds of fits, all workers
        self.bar = tqdm(
            total=max(planning.estimate(plan, probe, workload), 1e-3),
            disable=not progress,
            desc="compare",
            unit="s",
            bar_format="{percentage:3.0f}%|{bar}| {desc} [{elapsed}{postfix}]",
        )
        self.bar.set_postfix_str(self._left_text(), refresh=False)
        self.progress = progress
        self.journal = None
        self.cache_dir = None
        if n_jobs != 1 and comparison.estimator_params.get("cache", "memory") == "memory":
            # workers share decoded images (and frozen features) through a directory cache
            self.cache_dir = tempfile.mkdtemp(prefix="imbal-compare-cache-")

    def _serial_left(self):
        report = planning.REPORT_SECONDS if self.plan.report else 0.0
        return self.plan.refits * self.refit_cost + report

    def _left_text(self):
        return self.pacer.left_text(max(self.fits_left, 0.0), self._serial_left())

    def fit_ready(self, params):
        """``params`` as a fit takes them: the sampler built, the shared cache folder."""
        params = dict(params)
        params["sampler"] = make_sampler(params.get("sampler"))
        if self.cache_dir is not None:
            params["cache"] = self.cache_dir
        return params

    def stage(self, name, configurations, frozen):
        """Fit every configuration on every fold (the journal's finished fits read back),
        dropping what the budget cannot afford, and rank the rows."""
        tasks, keys = self._tasks(name, configurations, frozen)
        self.pending = {t.index: t for t in tasks}
        self.dropped = set()
        results = self._resumed(name, tasks, keys)
        droppable = planning.droppable(configurations, self.plan.asked)
        if name == "screen":  # stage 1 is cheap and ranks every method: nothing leaves it
            droppable = []
        self.pacer.begin_fits()
        todo = [task for task in tasks if task.index not in results]
        for result in run_fits(
            _UnlessDropped(todo, self.dropped),
            self.comparison.paths,
            self.comparison.labels,
            n_jobs=self.n_jobs,
            threads=self.threads,
            log=tqdm.write if self.progress else None,
        ):
            task = tasks[result.index]
            self._record(name, task, keys[task.index], result)
            results[result.index] = result
            self._advance(task, name)
            self._keep_budget([c for c in droppable if c.name not in self.dropped])
        kept = tuple(c for c in configurations if c.name not in self.dropped)
        tasks = [t for t in tasks if t.name not in self.dropped]
        return self._assemble(name, kept, tasks, results, frozen)

    def _tasks(self, name, configurations, frozen):
        """One :class:`FitTask` per fold and configuration, in fold order, and each task's
        journal key (None without a journal)."""
        comparison = self.comparison
        n_classes = len(comparison.classes)
        n_train = self.workload.n_images * (self.plan.cv - 1) / self.plan.cv
        tasks, keys = [], []
        for fold, (train, test) in enumerate(comparison.splits):
            for config in configurations:
                rule = fit_rules(config, n_classes)[-1]
                params = fit_params(
                    comparison.estimator_params, config, rule, comparison.pos_label, frozen
                )
                journal = self.journal
                keys.append(None if journal is None else journal.key(name, fold, params, test))
                cost = planning.fit_seconds(
                    config,
                    self.probe,
                    self.workload,
                    self.plan,
                    frozen=frozen,
                    n_train_rows=n_train,
                )
                ready = self.fit_ready(params)
                tasks.append(FitTask(len(tasks), config.name, ready, train, test, fold, cost))
        return tasks, keys

    def _resumed(self, name, tasks, keys):
        """The results an earlier start of this run recorded in the journal, by task index."""
        results = {}
        for task, key in zip(tasks, keys, strict=True):
            result = key and self.journal.get(key, task.index, self.comparison.classes)
            if result is not None:
                results[task.index] = result
                self._advance(task, name, resumed=True)
        if results and self.progress:
            tqdm.write(
                f"Resumed {len(results)} finished fit(s) of {name} from "
                f"{self.journal.directory}; {len(tasks) - len(results)} to go."
            )
        return results

    def _record(self, name, task, key, result):
        """Write a finished fit to the journal at once (a later start resumes from it)."""
        if self.journal is None:
            return
        about = {"stage": name, "configuration": task.name, "fold": task.fold}
        about["random_state"] = task.params.get("random_state")
        self.journal.record(key, result, self.comparison.classes, about)

    def _keep_budget(self, candidates):
        def cost_left(config):
            return sum(t.cost for t in self.pending.values() if t.name == config.name)

        serial = self._serial_left()
        drops = self.pacer.choose_drops(candidates, cost_left, self.fits_left, serial)
        if not drops:
            return
        fits_left = self.fits_left
        for config in drops:
            self.dropped.add(config.name)
            left = cost_left(config)
            self.fits_left -= left
            self.bar.total = max(self.bar.total - left, self.bar.n + 1e-3)
            self.pending = {i: t for i, t in self.pending.items() if t.name != config.name}
        self.pacer.drop(drops, serial, fits_left)
        self.bar.refresh()

    def _advance(self, task, stage, resumed=False):
        self.done += 1
        self.pending.pop(task.index, None)
        if task.name not in self.dropped:
            self.fits_left -= task.cost
            if not resumed:  # a fit read from the journal took no time now: no pace from it
                self.pacer.finished(task.cost)
        total = self.total_fits - len(self.pacer.removed) * self.plan.n_folds
        self.bar.set_description_str(
            f"{self.done}/{total} fits, {stage}: {task.name} (fold {task.fold + 1})",
            refresh=False,
        )
        self.bar.set_postfix_str(self._left_text(), refresh=False)
        self.bar.update(min(task.cost, self.bar.total - self.bar.n))

    def _assemble(self, name, configurations, tasks, results, frozen):
        """The stage's rows, one per configuration and decision rule, scored on every fold
        and ranked; a configuration whose fit failed is reported instead."""
        stage = Stage(name, [], frozen)
        rows = self._empty_rows(stage, configurations, tasks, results)
        if BASELINE in stage.failures:
            raise RuntimeError(
                f"The baseline {BASELINE!r} failed to fit, so nothing can be compared: "
                f"{stage.failures[BASELINE]}"
            )
        by_name = {c.name: c for c in configurations}
        for task in tasks:  # in fold order, so fold scores line up across rows
            if task.name not in stage.failures:
                self._score_fold(stage, rows, by_name[task.name], task, results[task.index])
        stage.rows = _ranked(rows.values(), configurations, self.comparison.scoring)
        return stage

    def _empty_rows(self, stage, configurations, tasks, results):
        """The rows of the configurations that fitted on every fold, keyed by (name, rule);
        the first error of each other configuration goes to ``stage.failures``."""
        labels, n_classes = self.comparison.labels, len(self.comparison.classes)
        rows = {}
        for config in configurations:
            failed = [results[t.index].error for t in tasks if t.name == config.name]
            failed = [e for e in failed if e]
            if failed:
                stage.failures[config.name] = failed[0]
                continue
            for rule in fit_rules(config, n_classes):
                rows[config.name, rule] = RowResult(
                    _row_name(config, rule), config, rule, stage.name
                )
                rows[config.name, rule].y_pred = np.empty(len(labels), dtype=labels.dtype)
            stage.proba[config.name] = np.zeros((len(labels), n_classes))
            stage.histories[config.name] = []
            stage.fit_seconds[config.name] = 0.0
        return rows

    def _score_fold(self, stage, rows, config, task, result):
        """Score one fold's fit under each decision rule of ``config``."""
        comparison = self.comparison
        labels, classes = comparison.labels, comparison.classes
        first_repeat = task.fold < comparison.cv
        stage.fit_seconds[task.name] += result.seconds
        if first_repeat:
            stage.proba[task.name][task.test] = result.proba
            stage.histories[task.name].append(result.history)
        for rule in fit_rules(config, len(classes)):
            row = rows[task.name, rule]
            if rule == ARGMAX:
                predicted = classes[result.proba.argmax(axis=1)]
            else:
                predicted = result.decision
            if rule == TUNED:
                row.thresholds.append(result.threshold)
            if first_repeat:
                row.y_pred[task.test] = predicted
            scores = score_predictions(
                labels[task.test], predicted, result.proba, classes, comparison.pos_label
            )
            for metric, value in scores.items():
                row.fold_scores[metric].append(value)

    def refit(self, comparison):
        """Fit the recommended configuration on all the images, one seed at a time, as
        many seeds as the budget leaves room for."""
        row = comparison.recommendation.row
        params = comparison.row_params(row)  # the user's cache: the model outlives the run
        params = criterion_spelling({**params, "sampler": make_sampler(params.get("sampler"))})
        clf = ImageImbalanceClassifier(**params)
        report = planning.REPORT_SECONDS if self.plan.report else 0.0
        refits = self.pacer.refits_within(self.plan.refits, self.refit_cost, report)
        if refits != self.plan.refits:
            self.bar.total -= (self.plan.refits - refits) * self.refit_cost
            self._set_plan(refits=refits)
        start = time.perf_counter()
        frozen = self.frozen_only or row.stage == "screen"  # a frozen row may win the contest
        if frozen and refits > 1:  # heads on shared features: fitted in one pass
            comparison.best_estimator_ = SeedEnsembleClassifier(clf, n_members=refits).fit(
                comparison.paths, comparison.labels
            )
            seeds = []
            self.done += refits
            self.bar.update(min(refits * self.refit_cost, self.bar.total - self.bar.n))
        else:
            seeds = member_seeds(clf.random_state, refits)
        members = []
        for seed in seeds:
            self.bar.set_description_str(
                f"{self.done}/{self.total_fits} fits, refit {len(members) + 1}/{refits}: "
                f"{row.name} on all {len(comparison.labels)} images",
                refresh=True,
            )
            member = clone(clf).set_params(random_state=seed)
            members.append(member.fit(comparison.paths, comparison.labels))
            self.done += 1
            self.bar.update(min(self.refit_cost, self.bar.total - self.bar.n))
        if len(members) > 1:
            comparison.best_estimator_ = SeedEnsembleClassifier.from_members(members)
        elif members:
            comparison.best_estimator_ = members[0]
        comparison.refit_seconds = time.perf_counter() - start
        self._set_plan(refits=0)
        self.comparison.plan = replace(self.comparison.plan, refits=refits)

    def _set_plan(self, **changes):
        self.plan = replace(self.plan, **changes)
        self.bar.set_postfix_str(self._left_text(), refresh=False)

    def finish(self, finish):
        """The run's end: record what the budget dropped while running, then ``finish``
        (the report) under the bar."""
        comparison = self.comparison
        if self.pacer.removed:
            comparison.plan = replace(
                comparison.plan, removed=(*comparison.plan.removed, *self.pacer.removed)
            )
        if finish is not None:
            self.bar.set_description_str(f"{self.done}/{self.done} fits; writing the report")
            finish(comparison)
        self._set_plan(report=False)
        self.bar.update(max(self.bar.total - self.bar.n, 0))
