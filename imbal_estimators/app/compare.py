"""The loss x alpha x sampler x threshold comparison behind ``imbal-estimators compare``.

Stratified k-fold cross-validation of a grid of configurations
(:data:`DEFAULT_GRID`). Each configuration is fitted once per fold; a binary
problem then scores it with two decision rules on the same fitted model:

* ``argmax`` -- the class with the highest probability (threshold 0.5);
* ``tuned threshold`` -- the threshold on the positive class's probability that
  maximizes the scoring metric on the estimator's *internal validation split*
  of the training fold (never on the test fold).

Multi-class problems use argmax only.
"""

import csv
import time
from dataclasses import dataclass, field

import numpy as np
from sklearn.model_selection import StratifiedKFold
from tqdm.auto import tqdm

from ..data.images import ImageLoader, scan_images
from ..decision.evaluation import (
    BASELINE,
    METRICS,
    TUNED_SUFFIX,
    default_pos_label,
    predict_with_threshold,
    score_predictions,
    tune_threshold,
)
from ..estimator.classifier import ImageImbalanceClassifier
from ..imbalance.samplers import make_sampler

SCORING_OPTIONS = ("f1", "balanced_accuracy", "average_precision")


@dataclass(frozen=True)
class Configuration:
    """One way of handling the imbalance: a loss, its class weights and a sampler.

    Parameters
    ----------
    name : str
    loss : {"ce", "focal"}
    gamma : float
        Focal focusing parameter (ignored by ``"ce"``).
    alpha : str or None
        A class-weight strategy of :func:`~imbal_estimators.compute_alpha`.
    sampler : {"over", "under"} or None
        Random over- or under-sampling of the training part, every epoch.
    """

    name: str
    loss: str = "ce"
    gamma: float = 0.0
    alpha: str | None = None
    sampler: str | None = None

    def estimator_params(self):
        """The ``ImageImbalanceClassifier`` parameters of this configuration."""
        params = {"loss": self.loss, "alpha": self.alpha}
        if self.loss == "focal":
            params["gamma"] = self.gamma
        params["sampler"] = None if self.sampler is None else make_sampler(self.sampler)
        return params


#: The documented grid: CE, weighted CE, focal gamma {1, 2} x alpha {None,
#: balanced, effective}, and random over-sampling with CE.
DEFAULT_GRID = (
    Configuration("ce"),
    Configuration("ce, alpha=balanced", alpha="balanced"),
    Configuration("focal g=1", loss="focal", gamma=1.0),
    Configuration("focal g=1, alpha=balanced", loss="focal", gamma=1.0, alpha="balanced"),
    Configuration("focal g=1, alpha=effective", loss="focal", gamma=1.0, alpha="effective"),
    Configuration("focal g=2", loss="focal", gamma=2.0),
    Configuration("focal g=2, alpha=balanced", loss="focal", gamma=2.0, alpha="balanced"),
    Configuration("focal g=2, alpha=effective", loss="focal", gamma=2.0, alpha="effective"),
    Configuration("ce + over-sampling", sampler="over"),
)


@dataclass
class RowResult:
    """One row of the comparison: a configuration with one decision rule."""

    name: str
    configuration: Configuration
    rule: str  # "argmax" or "tuned threshold"
    fold_scores: dict = field(default_factory=lambda: {m: [] for m in METRICS})
    thresholds: list = field(default_factory=list)
    y_pred: np.ndarray | None = None  # out-of-fold predictions

    def mean(self, metric):
        return float(np.mean(self.fold_scores[metric]))

    def std(self, metric):
        return float(np.std(self.fold_scores[metric]))


@dataclass
class Comparison:
    """What :func:`compare` measured.

    Attributes
    ----------
    classes : ndarray
    pos_label : label or None
        The positive class of a binary problem (None for multi-class).
    scoring : str
        The metric that ranks the rows.
    labels : ndarray
        The true label of every image.
    folds : ndarray of int
        The test fold of every image.
    rows : list of RowResult
        Ranked, best first, by mean ``scoring``.
    proba : dict of str to ndarray
        Out-of-fold probabilities per configuration name.
    histories : dict of str to list
        Per configuration, one training history per fold: a list of epochs,
        each a dict with ``epoch``, ``train_loss``, ``valid_loss`` and
        ``valid_score``, plus ``best_epoch`` and ``monitor``.
    fit_seconds : dict of str to float
        Training time per configuration, over all folds.
    estimator_params : dict
        The parameters shared by every configuration.
    """

    classes: np.ndarray
    pos_label: object
    scoring: str
    labels: np.ndarray
    folds: np.ndarray
    rows: list
    proba: dict
    histories: dict
    fit_seconds: dict
    estimator_params: dict

    @property
    def n_folds(self):
        return int(self.folds.max()) + 1

    @property
    def best(self):
        return self.rows[0]

    def row(self, name):
        return next(row for row in self.rows if row.name == name)

    @property
    def baseline(self):
        return self.row(BASELINE)

    def write_results_csv(self, path):
        """One row per configuration and rule, ranked: parameters, then mean and std."""
        header = ["rank", "configuration", "loss", "gamma", "alpha", "sampler", "decision"]
        header += ["threshold"] + [f"{m}_{s}" for m in METRICS for s in ("mean", "std")]
        header += ["fit_seconds"]
        with open(path, "w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(header)
            for rank, row in enumerate(self.rows, start=1):
                config = row.configuration
                threshold = np.mean(row.thresholds) if row.thresholds else ""
                writer.writerow(
                    [
                        rank,
                        row.name,
                        config.loss,
                        config.gamma if config.loss == "focal" else "",
                        config.alpha or "",
                        config.sampler or "",
                        row.rule,
                        "" if threshold == "" else f"{threshold:.4f}",
                    ]
                    + [f"{v:.6f}" for m in METRICS for v in (row.mean(m), row.std(m))]
                    + [f"{self.fit_seconds[config.name]:.1f}"]
                )

    def write_fold_scores_csv(self, path):
        """Every row's score on every test fold (long format)."""
        with open(path, "w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(["configuration", "fold", "threshold", *METRICS])
            for row in self.rows:
                for fold in range(self.n_folds):
                    threshold = f"{row.thresholds[fold]:.4f}" if row.thresholds else ""
                    scores = [f"{row.fold_scores[m][fold]:.6f}" for m in METRICS]
                    writer.writerow([row.name, fold, threshold, *scores])


def check_folds(labels, cv):
    """Refuse data that stratified ``cv``-fold cross-validation cannot split."""
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) < 2:
        raise ValueError(
            f"The data have a single class ({classes.tolist()}); a comparison needs at "
            "least two class folders."
        )
    if cv < 2:
        raise ValueError(f"cv must be at least 2; got {cv}.")
    if counts.min() < cv:
        small = classes[np.argmin(counts)].item()
        raise ValueError(
            f"Class {small!r} has {counts.min()} image(s); {cv}-fold cross-validation needs "
            f"at least {cv} per class. Lower --cv or add images."
        )


def compare(
    paths,
    labels,
    *,
    configurations=None,
    cv=5,
    scoring="f1",
    pos_label=None,
    estimator_params=None,
    random_state=0,
    progress=True,
):
    """Cross-validate every configuration on image ``paths`` with ``labels``.

    Parameters
    ----------
    paths, labels : array-like of shape (n,)
        As returned by :func:`~imbal_estimators.load_image_folder`.
    configurations : sequence of Configuration, default=None
        Default: :data:`DEFAULT_GRID`. Must contain one named ``"ce"`` (the
        baseline of the recommendation).
    cv : int, default=5
        Number of stratified folds.
    scoring : {"f1", "balanced_accuracy", "average_precision"}, default="f1"
        Ranks the rows, and is what a tuned threshold maximizes (F1 for
        ``"average_precision"``, which no threshold changes).
    pos_label : label, optional
        Positive class of a binary problem; default: the rarer class.
    estimator_params : dict, optional
        ``ImageImbalanceClassifier`` parameters shared by every configuration
        (backbone, weights, image_size, max_epochs, ...).
    random_state : int, default=0
        Seeds the folds and every fit.
    progress : bool, default=True
        Show a progress bar (one step per fit).

    Returns
    -------
    Comparison
    """
    paths = np.asarray(paths, dtype=object)
    labels = np.asarray(labels)
    configurations = DEFAULT_GRID if configurations is None else tuple(configurations)
    if scoring not in SCORING_OPTIONS:
        raise ValueError(f"scoring must be one of {SCORING_OPTIONS}; got {scoring!r}.")
    if not any(config.name == BASELINE for config in configurations):
        raise ValueError(f"configurations must include the baseline named {BASELINE!r}.")
    check_folds(labels, cv)
    classes = np.unique(labels)
    binary = len(classes) == 2
    if binary:
        pos_label = default_pos_label(labels) if pos_label is None else pos_label
        if pos_label not in classes:
            raise ValueError(
                f"pos_label {_plain(pos_label)!r} is not a class; classes: {classes.tolist()}."
            )
    else:
        pos_label = None
    base = {"verbose": 0, "random_state": random_state, **(estimator_params or {})}
    # every image decoded once, before any fit: a bad file fails now, and the fits reuse the cache
    probe = ImageImbalanceClassifier(**base)
    scan_images(paths, ImageLoader(probe.image_size, probe.cache), name="images")

    rows, proba, histories, fit_seconds = {}, {}, {}, {}
    for config in configurations:
        rows[config.name] = RowResult(config.name, config, "argmax")
        if binary:
            name = config.name + TUNED_SUFFIX
            rows[name] = RowResult(name, config, "tuned threshold")
        proba[config.name] = np.zeros((len(paths), len(classes)))
        histories[config.name] = []
        fit_seconds[config.name] = 0.0
    y_pred = {name: np.empty(len(paths), dtype=labels.dtype) for name in rows}

    splitter = StratifiedKFold(cv, shuffle=True, random_state=random_state)
    folds = np.empty(len(paths), dtype=int)
    bar = tqdm(total=cv * len(configurations), desc="compare", unit="fit", disable=not progress)
    with bar:
        for fold, (train, test) in enumerate(splitter.split(paths, labels)):
            folds[test] = fold
            for config in configurations:
                bar.set_postfix_str(f"fold {fold + 1}/{cv}: {config.name}")
                start = time.perf_counter()
                clf = ImageImbalanceClassifier(**base, **config.estimator_params())
                clf.fit(paths[train], labels[train])
                fit_seconds[config.name] += time.perf_counter() - start
                histories[config.name].append(training_history(clf))
                test_proba = clf.predict_proba(paths[test])
                proba[config.name][test] = test_proba
                predicted = clf.classes_[test_proba.argmax(axis=1)]
                _record(
                    rows[config.name],
                    y_pred,
                    test,
                    labels,
                    predicted,
                    test_proba,
                    classes,
                    pos_label,
                )
                if binary:
                    valid = train[clf.valid_indices_]
                    threshold = 0.5
                    if len(valid):
                        threshold = tune_threshold(
                            labels[valid],
                            clf.predict_proba(paths[valid]),
                            classes,
                            pos_label,
                            scoring,
                        )
                    predicted = predict_with_threshold(test_proba, classes, pos_label, threshold)
                    row = rows[config.name + TUNED_SUFFIX]
                    row.thresholds.append(threshold)
                    _record(row, y_pred, test, labels, predicted, test_proba, classes, pos_label)
                bar.update()

    for name, row in rows.items():
        row.y_pred = y_pred[name]
    ranked = sorted(rows.values(), key=lambda r: (-r.mean(scoring), r.std(scoring)))
    return Comparison(
        classes=classes,
        pos_label=pos_label,
        scoring=scoring,
        labels=labels,
        folds=folds,
        rows=ranked,
        proba=proba,
        histories=histories,
        fit_seconds=fit_seconds,
        estimator_params=base,
    )


def _plain(value):
    """A numpy scalar as its Python value, so messages show 'dog', not np.str_('dog')."""
    return value.item() if isinstance(value, np.generic) else value


def _record(row, y_pred, test, labels, predicted, test_proba, classes, pos_label):
    y_pred[row.name][test] = predicted
    scores = score_predictions(labels[test], predicted, test_proba, classes, pos_label)
    for metric, value in scores.items():
        row.fold_scores[metric].append(value)


def training_history(clf):
    """The per-epoch curves of a fitted estimator, for the training-curve plot."""
    monitor = "valid_loss" if clf.monitor == "valid_loss" else f"valid_{clf.monitor}"
    epochs = [
        {
            "epoch": entry["epoch"],
            "train_loss": entry.get("train_loss"),
            "valid_loss": entry.get("valid_loss"),
            "valid_score": entry.get(monitor),
        }
        for entry in clf.history
    ]
    return {"epochs": epochs, "best_epoch": getattr(clf, "best_epoch_", None), "monitor": monitor}
