"""Several fits of one configuration, their probabilities averaged: ``SeedEnsembleClassifier``.

On small folders one fit of a network is a draw: the initialization and the
order of the batches move the F1 of the rare class by 0.1 or more from one
``random_state`` to the next, and a threshold tuned on the few rare images of
the internal validation split moves with it. Averaging the probabilities of a
few fits that differ only in ``random_state`` (a *deep ensemble*) removes much
of that spread and, measured in ``docs/quality.md`` (answer-quality sets,
cross-entropy with a tuned threshold, 4 splits x 5 sets), raised the held-out
F1 by 0.04 to 0.06 on average over the sets with three members.

The ensemble decides as its members do: binary members with a threshold
decide at the mean of their thresholds on the mean probability; members with
``posthoc_tau`` adjust the mean probability by their shared prior; otherwise
argmax. ``compare`` refits its recommendation as such an ensemble (``--ensemble``)
and ``imbal-estimators fit --ensemble K`` fits one.
"""

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils.validation import check_is_fitted

from ..decision.posthoc import decide
from ..training.heads import fit_many
from ..utils.types import FloatArray, ImagePaths, LabelArray, Labels, StrPath
from . import validation
from .classifier import ImageImbalanceClassifier
from .conventions import decision_scores

__all__ = ["SeedEnsembleClassifier", "member_seeds"]


def member_seeds(random_state, n_members):
    """The ``random_state`` of each member.

    Member ``i`` gets ``random_state + i`` for an int ``random_state`` (member 0
    is the configuration's own fit, so ``n_members=1`` is a plain fit), and
    None (a fresh draw) for every member for None. A ``RandomState`` instance
    (which ``ImageImbalanceClassifier`` accepts) draws one int seed per member
    from it: clones of one instance would all start from the same state and
    fit the same model ``n_members`` times.
    """
    if random_state is None:
        return [None] * n_members
    if isinstance(random_state, np.random.RandomState):
        return [int(s) for s in random_state.randint(np.iinfo(np.int32).max, size=n_members)]
    if isinstance(random_state, bool) or not isinstance(random_state, (int, np.integer)):
        raise ValueError(
            "The 'random_state' parameter of the ensemble's estimator must be an int, a "
            f"RandomState instance or None; got {random_state!r} instead."
        )
    return [int(random_state) + i for i in range(n_members)]


class SeedEnsembleClassifier(ClassifierMixin, BaseEstimator):
    """``n_members`` fits of one ``ImageImbalanceClassifier``, probabilities averaged.

    Parameters
    ----------
    estimator : ImageImbalanceClassifier, default=None
        The configuration; cloned for every member. None means
        ``ImageImbalanceClassifier()``.
    n_members : int >= 1, default=3
        How many fits. Each member differs only in ``random_state``
        (:func:`member_seeds`): set the estimator's ``random_state`` for a
        reproducible ensemble. Training costs ``n_members`` fits; members with
        ``freeze_backbone=True`` train together on one feature pass
        (:func:`~imbal_estimators.training.heads.fit_many`).

    Attributes
    ----------
    members_ : list of ImageImbalanceClassifier
        The fitted members.
    classes_ : ndarray
    n_classes_ : int
    pos_label_, pos_index_ :
        The positive class and its column (binary problems), as the members'.
    threshold_ : float or None
        The mean of the members' ``threshold_`` where they decide by a
        threshold, else None.
    loss_class_counts_ : ndarray
        The training class counts (the prior of ``posthoc_tau``).

    Examples
    --------
    >>> from imbal_estimators import ImageImbalanceClassifier, SeedEnsembleClassifier
    >>> ensemble = SeedEnsembleClassifier(
    ...     ImageImbalanceClassifier(threshold="auto", random_state=0), n_members=3
    ... )  # doctest: +SKIP
    >>> ensemble.fit(paths, labels).predict(new_paths)  # doctest: +SKIP
    """

    members_: list[ImageImbalanceClassifier]
    classes_: LabelArray
    n_classes_: int
    threshold_: float | None

    def __init__(
        self, estimator: ImageImbalanceClassifier | None = None, n_members: int = 3
    ) -> None:
        self.estimator = estimator
        self.n_members = n_members

    def _configuration(self):
        estimator = ImageImbalanceClassifier() if self.estimator is None else self.estimator
        if not isinstance(estimator, ImageImbalanceClassifier):
            raise TypeError(
                "The 'estimator' parameter of SeedEnsembleClassifier must be an "
                f"ImageImbalanceClassifier or None; got {type(estimator).__name__} instead."
            )
        n = self.n_members
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(
                "The 'n_members' parameter of SeedEnsembleClassifier must be an int >= 1; "
                f"got {n!r} instead."
            )
        return estimator

    def fit(self, X: ImagePaths, y: Labels) -> "SeedEnsembleClassifier":
        """Fit ``n_members`` clones of ``estimator`` on ``(X, y)``.

        Parameters
        ----------
        X : sequence of image paths
        y : array-like of labels

        Returns
        -------
        self
        """
        estimator = self._configuration()
        seeds = member_seeds(estimator.random_state, int(self.n_members))
        members = [clone(estimator).set_params(random_state=seed) for seed in seeds]
        validation.check_params(members[0])  # once: they differ in valid seeds only
        with validation.skip_validation():
            self._set_members(fit_many(members, X, y))
        return self

    @classmethod
    def from_members(cls, members: Iterable[ImageImbalanceClassifier]) -> "SeedEnsembleClassifier":
        """The ensemble of already fitted ``members`` (e.g. loaded ones).

        Parameters
        ----------
        members : list of fitted ImageImbalanceClassifier
            Fitted on the same classes (and class dtype), deciding by the same
            rule: the same positive class, all with a threshold or none,
            the same ``posthoc_tau`` (and, with it, the same training class
            counts). Anything else is refused: the ensemble's one decision
            rule would silently differ from some members'. ``estimator``
            becomes an unfitted clone of the first.

        Returns
        -------
        SeedEnsembleClassifier
            Fitted: it predicts as :meth:`fit` would have left it.
        """
        members = list(members)
        if not members:
            raise ValueError("from_members needs at least one fitted member.")
        _check_members(members)
        return cls(clone(members[0]), n_members=len(members))._set_members(members)

    def _set_members(self, members):
        _check_members(members)
        first = members[0]
        self.members_ = list(members)
        self.classes_ = first.classes_
        self.n_classes_ = len(first.classes_)
        self.pos_label_ = getattr(first, "pos_label_", None)
        self.pos_index_ = getattr(first, "pos_index_", None)
        self.loss_class_counts_ = getattr(first, "loss_class_counts_", None)
        thresholds = [m.threshold_ for m in members if getattr(m, "threshold_", None) is not None]
        self.threshold_ = float(np.mean(thresholds)) if thresholds else None
        return self

    @property
    def posthoc_tau(self) -> float | None:
        return self.members_[0].posthoc_tau

    def predict_proba(self, X: ImagePaths) -> FloatArray:
        """The mean of the members' ``predict_proba``.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        check_is_fitted(self, "members_")
        return np.mean([member.predict_proba(X) for member in self.members_], axis=0)

    def decision_function(self, X: ImagePaths) -> FloatArray:
        """Log-odds of ``classes_[1]`` (binary) or log-probabilities of the mean probability."""
        return decision_scores(self.predict_proba(X))

    def decide(self, proba: npt.ArrayLike) -> LabelArray:
        """The labels :meth:`predict` gives for probabilities ``proba`` of this ensemble."""
        check_is_fitted(self, "members_")
        indices = decide(
            proba,
            threshold=self.threshold_,
            posthoc_tau=self.posthoc_tau,
            class_counts=self.loss_class_counts_,
            pos_index=self.pos_index_,
        )
        return self.classes_[indices]

    def predict(self, X: ImagePaths) -> LabelArray:
        """Labels by the members' decision rule on the mean probability (module docstring)."""
        return self.decide(self.predict_proba(X))

    def decision_rule(self) -> str:
        """The decision in words, e.g. ``"threshold 0.312 on P('rare')"``."""
        check_is_fitted(self, "members_")
        return self.members_[0].decision_rule(threshold=self.threshold_)

    def save(self, path: StrPath) -> str:
        """Save the members and ``ensemble.json`` into the directory ``path``, without pickle.

        Load it with :func:`imbal_estimators.load`.
        """
        from .persistence import save

        return save(self, path)

    def export(self, path: StrPath, format: str = "onnx") -> str:
        """Export the ensemble as one graph that averages its members' probabilities.

        Same outputs and sidecar as :meth:`ImageImbalanceClassifier.export`.
        """
        from .export import export

        return export(self, path, format=format)


def _check_members(members):
    """Refuse members the ensemble cannot average and decide for as each of them would."""
    for member in members:
        if not isinstance(member, ImageImbalanceClassifier):  # nor a nested ensemble
            raise TypeError(
                "The members of a SeedEnsembleClassifier must be fitted "
                f"ImageImbalanceClassifier instances; got {type(member).__name__}."
            )
        check_is_fitted(member)
    first = members[0]
    for i, member in enumerate(members[1:], start=1):
        if (
            member.classes_.dtype.kind != first.classes_.dtype.kind
            or len(member.classes_) != len(first.classes_)
            or not np.array_equal(member.classes_, first.classes_)
        ):
            raise ValueError(
                f"The members were fitted on different classes: "
                f"{first.classes_.tolist()} ({first.classes_.dtype}) and "
                f"{member.classes_.tolist()} ({member.classes_.dtype})."
            )
        if _rule(member) != _rule(first):
            raise ValueError(
                f"The members decide by different rules (member 0: {_describe(first)}; "
                f"member {i}: {_describe(member)}); an ensemble decides by one rule."
            )


def _rule(member):
    """What a member's decision depends on besides its probabilities."""
    tau = member.posthoc_tau or None
    counts = getattr(member, "loss_class_counts_", None)
    return (
        getattr(member, "pos_index_", None),
        getattr(member, "threshold_", None) is not None,
        tau,
        None if tau is None or counts is None else tuple(np.asarray(counts).tolist()),
    )


def _describe(member):
    pos_index, thresholded, tau, counts = _rule(member)
    words = [f"positive class index {pos_index}"]
    words.append("a threshold" if thresholded else "no threshold")
    if tau is not None:
        words.append(f"posthoc_tau {tau:g} with class counts {list(counts or [])}")
    return ", ".join(words)
