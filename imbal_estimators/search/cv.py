"""``ImbalanceSearchCV``: cross-validated Optuna search that prunes per epoch and resumes.

The search runs in :mod:`imbal_estimators.search.studies` (storage, workers, dead
trials), the parameters come from :mod:`imbal_estimators.search.space`, and the
per-epoch reports from :class:`~imbal_estimators.search.cv.pruning.TrialPruning`. This
module cross-validates one trial and shapes the results like scikit-learn's.
"""

import contextlib
import copy
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from numbers import Integral, Real

import numpy as np
import optuna
from optuna.pruners import BasePruner, MedianPruner, NopPruner
from optuna.samplers import BaseSampler, GridSampler, TPESampler
from optuna.storages import InMemoryStorage
from optuna.study import StudyDirection
from optuna.trial import TrialState
from scipy.stats import rankdata
from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone, is_classifier
from sklearn.metrics import check_scoring
from sklearn.model_selection import KFold, RepeatedStratifiedKFold, StratifiedKFold, check_cv
from sklearn.utils import _safe_indexing, check_random_state, get_tags
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted

from ..decision.metrics import METRICS, Scorer
from ..estimator import validation
from ..training.callbacks import history_key
from ..training.heads import can_fit_together, fit_many
from ..utils.param_validation import (
    HasMethods,
    Interval,
    StrOptions,
    validate_parameter_constraints,
)
from ..utils.types import ImagePaths, Labels
from .pruning import TrialPruning
from .space import (
    DEFAULT_SEARCH_SPACE,
    check_search_space,
    grid_of,
    grid_size,
    replay,
    suggest,
    to_estimator_params,
)
from .studies import (
    FINISHED,
    count_finished,
    make_storage,
    open_study,
    run_trials,
    study_fingerprint,
)

__all__ = ["DEFAULT_SEARCH_SPACE", "ImbalanceSearchCV"]

DEFAULT_STUDY_NAME = "imbal_search"
_SEED_RANGE = 2**31 - 1


def _estimator_has(attr):
    """Delegate ``attr`` to the refitted best estimator (or the unfitted one)."""

    def check(self):
        if not self.refit:
            raise AttributeError(
                f"{type(self).__name__} was created with refit=False; {attr} needs refit=True."
            )
        getattr(self.__dict__.get("best_estimator_", self.estimator), attr)
        return True

    return check


class ImbalanceSearchCV(MetaEstimatorMixin, BaseEstimator):
    """Cross-validated Optuna search that prunes per epoch, persists and shares its trials.

    Each trial sets the parameters drawn from ``search_space`` on a clone of
    ``estimator`` and cross-validates it. With a validation split in the
    estimator, every epoch of every fold reports its validation score to the
    trial, and a hopeless trial stops early (``PRUNED``). With ``storage``,
    ``n_trials`` is the total of the study: a rerun, after a crash or a
    ``kill -9``, runs only the trials still missing, and several processes or
    machines on one study share the work.

    Parameters
    ----------
    estimator : estimator
        Usually an :class:`~imbal_estimators.ImageImbalanceClassifier`; any
        scikit-learn estimator works (pruning needs a skorch net with a
        validation split).
    search_space : dict, callable or None, default=None
        ``{parameter: distribution}`` with Optuna distributions
        (``CategoricalDistribution``, ``FloatDistribution``,
        ``IntDistribution``) or lists of choices; or a callable
        ``trial -> {parameter: value}`` using ``trial.suggest_*``. ``None`` is
        :data:`DEFAULT_SEARCH_SPACE`: ``loss`` in ``["ce", "focal"]``, ``gamma``
        in [0, 5], ``alpha`` in ``[None, "balanced", "sqrt", "effective"]``,
        ``sampler`` in ``["none", "over", "under"]`` and ``lr`` in [1e-5, 1e-2]
        (log); a parameter of it that ``estimator`` sets to a value other than
        its default (``lr=3e-3``) is fixed and leaves the space. ``sampler``
        values may be these names (a storage holds plain values only):
        ``"none"`` is no resampling, ``"over"`` a ``RandomOverSampler()``,
        ``"under"`` a ``RandomUnderSampler()``.
    n_trials : int, default=20
        Total of finished (COMPLETE or PRUNED) trials in the study: trials
        already there, from earlier runs or other workers, count. With
        ``sampler="grid"`` at most the size of the grid.
    cv : int, cross-validation generator or iterable, default=5
        An int is a ``StratifiedKFold`` for classifiers (``KFold`` otherwise),
        shuffled with ``random_state`` when it is set. The same folds serve
        every trial.
    scoring : str, callable, list, dict or None, default="f1"
        A scikit-learn scorer, or several (a list of names or a dict
        ``{name: scorer}``): the first is optimized, all are recorded per fold
        on each trial (``trial.user_attrs``) and in ``cv_results_``. ``None``
        uses ``estimator.score``. The names of
        :mod:`imbal_estimators.decision.metrics` (``"f1"``,
        ``"average_precision"``, ``"balanced_accuracy"``, ``"mcc"`` ...) score
        as ``monitor`` does: a binary problem the fitted estimator's positive
        class ``pos_label_`` (the rarer class by default, not scikit-learn's
        label 1), a multi-class one macro-averaged. Other names are
        scikit-learn's.
    storage : None, str, path or optuna storage, default=None
        ``None`` keeps the study in memory. A path ending in ``.db``,
        ``.sqlite`` or ``.sqlite3`` is a SQLite file; one ending in ``.log``
        or ``.jsonl`` is an Optuna journal file (``JournalFileBackend``). A URL
        such as ``"postgresql://user@host/db"`` or ``"sqlite:///search.db"`` is
        an RDB storage; an Optuna storage object is used as it is. Storages made
        from a path or URL fail and retry the trials of dead workers: RDB ones
        by heartbeat (any machine, after 60 s of silence), all of them at once
        when the dead worker ran on this machine.
    study_name : str or None, default=None
        The study in ``storage``; created when missing, continued otherwise
        when it was built on the same data, scoring, folds, search space and
        estimator (all its parameters but ``search.studies.SPEED_ONLY_PARAMS``);
        on others the search opens ``"<study_name>-<digest>"`` instead.
        ``None`` is ``"imbal_search"``.
    pruning : bool or optuna pruner, default=True
        ``True`` is ``optuna.pruners.MedianPruner()``; ``False`` disables
        pruning; or any pruner (``WilcoxonPruner``, ``PercentilePruner``, ...).
        Steps are ``fold * max_epochs + epoch``; with ``monitor="valid_loss"``
        the negated loss is reported.
    timeout : float or None, default=None
        Seconds after which no new trial starts (a running one finishes).
    random_state : int, RandomState instance or None, default=None
        Shuffles the folds of an int ``cv`` (unshuffled when ``None``) and
        seeds the default sampler. With a ``storage`` the sampler is seeded
        afresh in each process, so that workers do not draw the same values.
    refit : bool, default=True
        Fit the best parameters on all of ``X`` as ``best_estimator_``.
    sampler : None, "grid" or optuna sampler, default=None
        ``None`` is ``TPESampler`` (seeded by ``random_state``); ``"grid"``
        runs every combination of the choices in ``search_space`` once
        (``GridSampler``); or any Optuna sampler, used as given.

    Attributes
    ----------
    study_ : optuna.Study
        All trials, including those of other workers and failed ones.
    cv_results_ : dict of numpy arrays
        One row per finished trial (COMPLETE or PRUNED), ordered by trial
        number, shaped like ``GridSearchCV.cv_results_``: ``mean_fit_time``,
        ``std_fit_time``, ``mean_score_time``, ``std_score_time``,
        ``param_<name>``, ``params``, ``split<k>_test_<scorer>``,
        ``mean_test_<scorer>``, ``std_test_<scorer>``, ``rank_test_<scorer>``
        (``<scorer>`` is ``score`` for a single scorer), plus ``trial_number``
        and ``trial_state``. A pruned trial has NaN for the folds it did not
        finish and its mean, and ranks last.
    best_index_ : int
        Row of ``cv_results_`` of the best COMPLETE trial.
    best_params_ : dict
        Its estimator parameters (samplers as objects).
    best_score_ : float
        Its mean cross-validated score of the first scorer.
    best_trial_ : optuna.trial.FrozenTrial
    best_estimator_ : estimator
        Refitted on all data (``refit=True`` only).
    refit_time_ : float
    scorer_ : scorer or dict of scorers
    multimetric_ : bool
    n_splits_ : int
    n_trials_ : int
        Finished trials in the study after ``fit``.
    n_trials_run_ : int
        Of those, how many this call ran.
    classes_ : ndarray
        ``best_estimator_.classes_``.

    See Also
    --------
    sklearn.model_selection.GridSearchCV : Exhaustive search, in memory.
    optuna_integration.OptunaSearchCV : Optuna search without per-epoch pruning.

    Notes
    -----
    With a frozen-backbone estimator (``freeze_backbone=True``), the folds of a
    trial train together (:func:`~imbal_estimators.training.heads.fit_many`),
    and each fold's per-epoch pruning reports are replayed from its history, so
    a trial is pruned at the same epoch as when the folds train one by one.

    Several workers: start the same ``fit`` in several processes with one
    ``storage`` and ``study_name``. Each trial claims its slot when it starts,
    so together they stop at ``n_trials``; a worker whose last trials run
    elsewhere waits for them (to retry one whose worker dies) and returns with
    the others. ``random_state`` should be an int there, so that all workers use
    the same folds.

    Examples
    --------
    >>> from optuna.distributions import FloatDistribution
    >>> from imbal_estimators import ImageImbalanceClassifier, ImbalanceSearchCV
    >>> search = ImbalanceSearchCV(
    ...     ImageImbalanceClassifier(loss="focal"),
    ...     {"gamma": FloatDistribution(0, 5), "alpha": [None, "balanced", "sqrt"]},
    ...     n_trials=30, storage="search.db", study_name="focal", random_state=0,
    ... )  # doctest: +SKIP
    >>> search.fit(paths, labels).best_params_  # doctest: +SKIP
    """

    _parameter_constraints = {
        "estimator": [HasMethods(["fit"])],
        "search_space": [None, dict, callable],
        "n_trials": [Interval(Integral, 1, None, closed="left")],
        "cv": ["cv_object"],
        "scoring": [str, callable, list, tuple, dict, None],
        "storage": [None, str, os.PathLike, optuna.storages.BaseStorage],
        "study_name": [None, str],
        "pruning": ["boolean", BasePruner],
        "timeout": [None, Interval(Real, 0, None, closed="neither")],
        "random_state": ["random_state"],
        "refit": ["boolean"],
        "sampler": [None, StrOptions({"grid"}), BaseSampler],
    }

    def __init__(
        self,
        estimator: BaseEstimator,
        search_space: Mapping[str, object] | Callable[..., object] | None = None,
        *,
        n_trials: int = 20,
        cv: int | object = 5,
        scoring: str | Callable[..., float] | Sequence[str] | Mapping[str, object] | None = "f1",
        storage: str | os.PathLike[str] | optuna.storages.BaseStorage | None = None,
        study_name: str | None = None,
        pruning: bool | BasePruner = True,
        timeout: float | None = None,
        random_state: int | np.random.RandomState | None = None,
        refit: bool = True,
        sampler: str | BaseSampler | None = None,
    ) -> None:
        self.estimator = estimator
        self.search_space = search_space
        self.n_trials = n_trials
        self.cv = cv
        self.scoring = scoring
        self.storage = storage
        self.study_name = study_name
        self.pruning = pruning
        self.timeout = timeout
        self.random_state = random_state
        self.refit = refit
        self.sampler = sampler

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        sub = get_tags(self.estimator)
        tags.estimator_type = sub.estimator_type
        tags.classifier_tags = copy.deepcopy(sub.classifier_tags)
        tags.regressor_tags = copy.deepcopy(sub.regressor_tags)
        tags.input_tags = copy.deepcopy(sub.input_tags)
        tags.non_deterministic = True
        return tags

    # -- fit ----------------------------------------------------------------------------

    def fit(self, X: ImagePaths, y: Labels) -> "ImbalanceSearchCV":
        """Run the missing trials of the study, then refit the best parameters.

        Parameters
        ----------
        X : sequence of image paths (or what ``estimator`` takes)
        y : array-like of shape (n_samples,)

        Returns
        -------
        self : ImbalanceSearchCV
        """
        validate_parameter_constraints(
            self._parameter_constraints, self.get_params(deep=False), type(self).__name__
        )
        space = check_search_space(self.search_space, self.estimator)
        scorers = self._check_scoring()
        random_state = check_random_state(self.random_state)
        seed = None if self.random_state is None else int(random_state.randint(_SEED_RANGE))
        cv = self._check_cv(y, seed)
        self._check_fold_counts(cv, y)
        splits = list(cv.split(X, y))
        sampler, n_trials = self._make_sampler(space, seed)
        storage = make_storage(self.storage) or InMemoryStorage()
        study = open_study(
            storage,
            self.study_name or DEFAULT_STUDY_NAME,
            study_fingerprint(X, y, self.scoring, splits, self.search_space, self.estimator),
            sampler=sampler,
            pruner=self._make_pruner(),
            direction="maximize",
        )
        if study.direction != StudyDirection.MAXIMIZE:
            raise ValueError(
                f"Study {study.study_name!r} minimizes; ImbalanceSearchCV maximizes scores. "
                "Use another study_name."
            )
        if self.storage is not None and not isinstance(self.sampler, BaseSampler):
            sampler.reseed_rng()  # workers sharing the study must not draw the same values

        def objective(trial):
            return self._cross_validate(trial, space, X, y, splits, scorers)

        self.n_trials_run_ = run_trials(
            study, objective, n_trials, storage=storage, timeout=self.timeout
        )
        self.study_ = study
        self.n_trials_ = count_finished(study)
        self.n_splits_ = len(splits)
        self.multimetric_ = isinstance(self.scoring, (dict, list, tuple))
        self.scorer_ = scorers if self.multimetric_ else scorers["score"]
        self._set_results(study, space, list(scorers))
        if self.refit:
            estimator = clone(self.estimator).set_params(**self.best_params_)
            start = time.perf_counter()
            estimator.fit(X, y)
            self.refit_time_ = time.perf_counter() - start
            self.best_estimator_ = estimator
        return self

    def _check_scoring(self):
        def check(scoring):
            # the package's metric names score the estimator's positive class (pos_label_),
            # where scikit-learn's "f1" would score the label 1
            if isinstance(scoring, str) and scoring in METRICS:
                return Scorer(scoring)
            return check_scoring(self.estimator, scoring)

        scoring = self.scoring
        if isinstance(scoring, dict):
            scorers = {name: check(s) for name, s in scoring.items()}
        elif isinstance(scoring, (list, tuple)):
            scorers = {name: check(name) for name in scoring}
        else:
            return {"score": check(scoring)}
        if not scorers:
            raise ValueError("scoring is empty; give at least one scorer.")
        return scorers

    def _check_cv(self, y, seed):
        if not isinstance(self.cv, Integral):
            return check_cv(self.cv, y, classifier=is_classifier(self.estimator))
        stratify = is_classifier(self.estimator) and type_of_target(y) in ("binary", "multiclass")
        folds = StratifiedKFold if stratify else KFold
        return folds(self.cv, shuffle=seed is not None, random_state=seed)

    def _check_fold_counts(self, cv, y):
        """Stratified folds need as many images of each class as there are folds: with
        fewer, some test folds have none of a class (F1 0 or undefined in every trial)."""
        if not isinstance(cv, (StratifiedKFold, RepeatedStratifiedKFold)):
            return
        n_splits = cv.get_n_splits()
        classes, counts = np.unique(np.asarray(y), return_counts=True)
        if counts.min() < n_splits:
            small = classes[np.argmin(counts)]
            small = small.item() if isinstance(small, np.generic) else small
            raise ValueError(
                f"The 'cv' parameter of {type(self).__name__} asks for {n_splits} stratified "
                f"folds, but class {small!r} has only {counts.min()} sample(s): "
                f"{n_splits - counts.min()} test fold(s) would have none of it. Use cv <= "
                f"{counts.min()}, or more samples of that class."
            )

    def _make_sampler(self, space, seed):
        """The Optuna sampler and the number of finished trials to reach."""
        if self.sampler == "grid":
            grid = grid_of(space)
            # past the grid, GridSampler would run finished points again
            return GridSampler(grid, seed=seed), min(self.n_trials, grid_size(grid))
        if isinstance(self.sampler, BaseSampler):
            sampler = copy.deepcopy(self.sampler)
            points = getattr(sampler, "_all_grids", None)  # a GridSampler's grid
            return sampler, self.n_trials if points is None else min(self.n_trials, len(points))
        return TPESampler(seed=seed), self.n_trials

    def _make_pruner(self):
        if isinstance(self.pruning, BasePruner):
            return copy.deepcopy(self.pruning)
        return MedianPruner() if self.pruning else NopPruner()

    def _cross_validate(self, trial, space, X, y, splits, scorers):
        """One trial: every fold, scores and times recorded on the trial as they come."""
        params = to_estimator_params(suggest(trial, space))
        first = next(iter(scorers))
        scores = {name: [] for name in scorers}
        together = self._fit_folds_together(params, X, y, splits)
        for fold, (train, test) in enumerate(splits):
            if together is None:
                estimator = self._fold_estimator(params, trial, fold)
                start = time.perf_counter()
                # the first fold's fit checks the candidate's parameters; the others share them
                with validation.skip_validation() if fold else contextlib.nullcontext():
                    estimator.fit(_safe_indexing(X, train), _safe_indexing(y, train))
                fit_time = time.perf_counter() - start
            else:
                estimator, fit_time = together[fold]
                reporter = self._pruning_reporter(estimator, trial, fold)
                if reporter is not None:
                    reporter.replay(estimator)
            X_test, y_test = _safe_indexing(X, test), _safe_indexing(y, test)
            start = time.perf_counter()
            fold_scores = {
                name: float(scorer(estimator, X_test, y_test)) for name, scorer in scorers.items()
            }
            trial.set_user_attr(f"split{fold}_score_time", time.perf_counter() - start)
            trial.set_user_attr(f"split{fold}_fit_time", fit_time)
            for name, score in fold_scores.items():
                trial.set_user_attr(f"split{fold}_test_{name}", score)
                scores[name].append(score)
            if not np.isfinite(fold_scores[first]):
                raise ValueError(
                    f"Scorer {first!r} gave {fold_scores[first]} on fold {fold} of trial "
                    f"{trial.number} with parameters {params}."
                )
        for name, values in scores.items():
            trial.set_user_attr(f"mean_test_{name}", float(np.mean(values)))
            trial.set_user_attr(f"std_test_{name}", float(np.std(values)))
        return float(np.mean(scores[first]))

    def _fold_estimator(self, params, trial, fold):
        estimator = clone(self.estimator).set_params(**params)
        reporter = self._pruning_reporter(estimator, trial, fold)
        if reporter is None:
            return estimator
        callbacks = list(estimator.callbacks or [])
        estimator.set_params(callbacks=[*callbacks, ("imbal_trial_pruning", reporter)])
        return estimator

    def _pruning_reporter(self, estimator, trial, fold):
        """The fold's per-epoch pruning callback, or None without pruning."""
        if self.pruning is False or "callbacks" not in estimator.get_params(deep=False):
            return None
        monitor = getattr(estimator, "monitor", "valid_loss")
        key = history_key(monitor)
        max_epochs = estimator.get_params(deep=False).get("max_epochs", 0)
        return TrialPruning(trial, key, key == "valid_loss", step_offset=fold * max_epochs)

    def _fit_folds_together(self, params, X, y, splits):
        """The folds' estimators fitted together by ``fit_many`` (frozen-backbone heads on
        cached features) with each fold's share of the time, or None where they cannot be.
        Pruning is then replayed from each fold's history: the trial reports and prunes as
        it would have while the folds trained one after another."""
        estimators = [clone(self.estimator).set_params(**params) for _ in splits]
        if len(splits) < 2 or not all(can_fit_together(e) for e in estimators):
            return None
        X_train = [_safe_indexing(X, train) for train, _ in splits]
        y_train = [_safe_indexing(y, train) for train, _ in splits]
        start = time.perf_counter()
        validation.check_params(estimators[0])  # once for the folds: they share the parameters
        with validation.skip_validation():
            fit_many(estimators, X_train, y_train, per_estimator=True)
        share = (time.perf_counter() - start) / len(splits)
        return [(estimator, share) for estimator in estimators]

    # -- results ------------------------------------------------------------------------

    def _set_results(self, study, space, names):
        trials = sorted(study.get_trials(deepcopy=False, states=FINISHED), key=lambda t: t.number)
        complete = [i for i, t in enumerate(trials) if t.state == TrialState.COMPLETE]
        if not complete:
            raise ValueError(
                f"No trial of study {study.study_name!r} completed ({len(trials)} pruned); "
                "raise n_trials or relax the pruner."
            )
        params = [replay(space, t) for t in trials]
        results = _time_columns(trials, self.n_splits_)
        for name in sorted({key for p in params for key in p}):
            column = np.ma.MaskedArray(np.empty(len(trials), dtype=object), mask=True)
            for i, p in enumerate(params):
                if name in p:
                    column[i] = p[name]
            results[f"param_{name}"] = column
        results["params"] = params
        for name in names:
            scores = _user_attr_table(
                trials, [f"split{k}_test_{name}" for k in range(self.n_splits_)]
            )
            for k in range(self.n_splits_):
                results[f"split{k}_test_{name}"] = scores[:, k]
            means = scores.mean(axis=1)  # NaN for a pruned trial: its folds are incomplete
            results[f"mean_test_{name}"] = means
            results[f"std_test_{name}"] = scores.std(axis=1)
            results[f"rank_test_{name}"] = rankdata(
                np.where(np.isnan(means), np.inf, -means), method="min"
            ).astype(np.int32)
        results["trial_number"] = np.array([t.number for t in trials])
        results["trial_state"] = np.array([t.state.name for t in trials])
        self.cv_results_ = results
        # max() keeps the first of equal values: the lowest trial number
        self.best_index_ = max(complete, key=lambda i: trials[i].value)
        self.best_trial_ = trials[self.best_index_]
        self.best_score_ = float(self.best_trial_.value)
        self.best_params_ = params[self.best_index_]

    # -- predict ------------------------------------------------------------------------

    @property
    def classes_(self):
        """Class labels of ``best_estimator_``."""
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.classes_

    @available_if(_estimator_has("predict"))
    def predict(self, X):
        """Predict with ``best_estimator_``."""
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.predict(X)

    @available_if(_estimator_has("predict_proba"))
    def predict_proba(self, X):
        """Class probabilities of ``best_estimator_``."""
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.predict_proba(X)

    @available_if(_estimator_has("score"))
    def score(self, X, y):
        """Score of ``best_estimator_`` with the first scorer of ``scoring``."""
        check_is_fitted(self, "best_estimator_")
        scorer = next(iter(self.scorer_.values())) if self.multimetric_ else self.scorer_
        return scorer(self.best_estimator_, X, y)


def _user_attr_table(trials, keys):
    """``(n_trials, len(keys))`` floats from the trials' user attrs, NaN where missing."""
    table = np.full((len(trials), len(keys)), np.nan)
    for i, trial in enumerate(trials):
        for j, key in enumerate(keys):
            table[i, j] = trial.user_attrs.get(key, np.nan)
    return table


def _time_columns(trials, n_splits):
    results = {}
    for kind in ("fit", "score"):
        times = _user_attr_table(trials, [f"split{k}_{kind}_time" for k in range(n_splits)])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a trial pruned in its first fold
            results[f"mean_{kind}_time"] = np.nanmean(times, axis=1)
            results[f"std_{kind}_time"] = np.nanstd(times, axis=1)
    return results
