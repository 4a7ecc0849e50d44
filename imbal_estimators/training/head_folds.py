"""k-fold cross-validation of a frozen head's penalty path (``head_solver="lbfgs"``).

A validation split of 20 % holds a handful of images of a rare class (5 or 6 of
30), so the penalty and the decision threshold chosen on it are noisy, and the
head that predicts trains on 80 % of the rows. Measured on real pretrained
features (``docs/quality.md``), the tuned threshold of such a refit was 0.94
where the folds' were 0.25 to 0.30. On cached features a head costs little, so
a frozen head solved along the penalty path does what
``LogisticRegressionCV`` and ``TunedThresholdClassifierCV`` do:

* every row of the training part trains the head (no holdout);
* ``train_split`` sets ``k`` (a fraction ``f``: ``round(1 / f)`` folds, an int:
  that many), and the path is solved on each fold's other rows too; the
  out-of-fold logits of each penalty are that "epoch"'s validation predictions,
  so ``valid_loss`` and ``valid_<monitor>`` are cross-validated scores and the
  kept epoch is the penalty that scored best across the folds;
* ``threshold="auto"`` and ``calibrate`` are fitted on the out-of-fold logits of
  the kept penalty, every row of the training part.

Not with a callable ``train_split`` (the user's own holdout), ``checkpoint_dir``
or ``warm_start`` (they keep the holdout and, but for the callable, train by
epochs).
"""

from functools import partial
from numbers import Integral

import numpy as np
import torch

from ..imbalance.samplers import needs_features, resample_features, resample_indices
from ..utils._compat import set_training
from .seeding import epoch_seed

__all__ = ["CV_LOGITS_KEY", "FoldPaths", "PathStart", "cross_validation_folds", "stratified_folds"]

# Where the solver leaves the out-of-fold logits per epoch for the estimator's decision fit.
CV_LOGITS_KEY = "_cross_validated_logits"


def cross_validation_folds(net):
    """``k`` of the CV that picks ``net``'s frozen-head penalty, or None (no CV).

    Parameters
    ----------
    net : ImageImbalanceClassifier
        Read only: ``freeze_backbone``, ``head_solver``, ``train_split``,
        ``warm_start`` and ``checkpoint_dir``.

    Returns
    -------
    int or None
    """
    if not (net.freeze_backbone and getattr(net, "head_solver", None) == "lbfgs"):
        return None
    if net.warm_start or getattr(net, "checkpoint_dir", None) is not None:
        return None
    split = net.train_split
    if split is None or split is False or callable(split):
        return None
    if isinstance(split, Integral):
        return max(int(split), 2)
    return max(int(round(1.0 / float(split))), 2)


def stratified_folds(targets, k, seed):
    """``(fit_rows, held_rows)`` of each of ``k`` stratified folds of ``targets``' rows.

    Each class's rows are shuffled and dealt round the folds, the next class
    starting where the last stopped, so that a class with fewer than ``k``
    rows spreads over different folds (no fold is left without rows while
    another has two of a tiny class). Folds that would hold no row are dropped.
    """
    targets = np.asarray(targets)
    rng = np.random.default_rng(seed)
    fold = np.empty(len(targets), dtype=np.int64)
    start = 0
    for label in np.unique(targets):
        rows = rng.permutation(np.flatnonzero(targets == label))
        fold[rows] = (start + np.arange(len(rows))) % k
        start += len(rows)
    rows = np.arange(len(targets))
    return [(rows[fold != f], rows[fold == f]) for f in range(k) if (fold == f).any()]


class PathStart:
    """Where each point of a head's penalty path starts (a warm start).

    The first point starts from the head's initial weights, the second from the
    first point's solution, and each later one one step further along the line
    through the last two solutions: the penalties are evenly spaced in log, and
    the solution moves nearly along a line from one to the next, so L-BFGS mostly
    starts closer. Where the objective is higher there than at the last solution
    (the loss changed between points, as deferred re-weighting does), the last
    solution is the start. A fold's path may also start from the head on every
    row, just solved at the same penalty (``other``): a fold holds four fifths of
    those rows, so its solution is near; the lowest objective of the candidates
    wins. The start changes only where the solver begins, not the point it
    converges to; where a weak penalty stalls short of convergence (separable
    features in float32), where it stops moves with the start. Over compare's 22
    head fits of one fold of 1,040 ResNet34 features, 31 % fewer objective
    evaluations (``benchmarks/head_path_evaluations.py``, ``docs/speed.md``).

    Parameters
    ----------
    head : nn.Linear
        The head, at its initial weights.
    """

    def __init__(self, head):
        self.states = [_state(head)]

    def load(self, head, objective, other=None):
        """Put the start of the next point into ``head``'s weights.

        Parameters
        ----------
        head : nn.Linear
        objective : callable
            ``objective()`` is the next point's penalized loss at ``head``'s weights.
        other : dict of Tensor, optional
            Another candidate start (a ``state_dict`` of ``head``).
        """
        last = self.states[-1]
        candidates = [last]
        if len(self.states) >= 2:
            before = self.states[-2]
            candidates.append({key: 2 * last[key] - before[key] for key in last})
        if other is not None:
            candidates.append(other)
        if len(candidates) == 1:
            head.load_state_dict(last)
            return
        values = []
        for state in candidates:
            head.load_state_dict(state)
            value = objective()
            values.append(value if np.isfinite(value) else np.inf)
        head.load_state_dict(candidates[int(np.argmin(values))])

    def solved(self, head):
        """Remember ``head``'s weights as the solution of the point just solved."""
        self.states = [self.states[-1], _state(head)]


class FoldPaths:
    """The heads of the ``k`` folds along the penalty path.

    Each fold's head starts from the head's initial weights and, like the
    head on every row, each penalty warm-starts from the fold's previous ones
    or from the head on every row at that penalty, the better
    (:class:`PathStart`). A sampler draws each fold's rows once, at the first
    point, as the head on every row keeps its first draw: the penalties are
    compared on the same rows (as a grid search of an imbalanced-learn
    pipeline with a fixed ``random_state`` does), and a SMOTE-family draw is
    not paid at every point.

    Parameters
    ----------
    net : ImageImbalanceClassifier
    dataset : FeatureDataset
        The training rows (every row of the training part), before any draw.
    k : int
    """

    def __init__(self, net, dataset, k):
        head = net.module_.head
        self.net, self.head = net, head
        rows = np.asarray(dataset.indices)
        self.features = dataset.features[torch.as_tensor(rows)].to(
            device=head.weight.device, dtype=head.weight.dtype
        )
        self.targets = np.asarray(dataset.targets)[rows]
        self.folds = stratified_folds(self.targets, k, net.split_seed_)
        self.starts = [PathStart(head) for _ in self.folds]
        self.draws = [None] * len(self.folds)

    def held_out_logits(self, solve, objective, epoch):
        """Solve every fold's head at this point of the path; the out-of-fold logits.

        Parameters
        ----------
        solve : callable
            ``solve(features, targets)`` fits ``self.head`` in place at the
            current penalty.
        objective : callable
            ``objective(features, targets)``: the penalized loss there.
        epoch : int
            The 1-based epoch (point of the path); the first one seeds the folds'
            draws.

        Returns
        -------
        features : torch.Tensor of shape (n_rows, D)
        targets : torch.Tensor of int
        logits : torch.Tensor of shape (n_rows, n_classes), float32
            Every training row once, ordered fold by fold.
        """
        current = _state(self.head)
        logits = []
        try:
            for index, (fit_rows, held_rows) in enumerate(self.folds):
                if self.draws[index] is None:
                    seed = epoch_seed(epoch_seed(self.net.sampling_seed_, epoch), index + 1)
                    self.draws[index] = self._draw(fit_rows, seed)
                self.starts[index].load(
                    self.head, partial(objective, *self.draws[index]), other=current
                )
                solve(*self.draws[index])
                self.starts[index].solved(self.head)
                set_training(self.net, False)
                with torch.no_grad():
                    logits.append(self.net.infer(self.features[torch.as_tensor(held_rows)]))
        finally:
            self.head.load_state_dict(current)
        order = torch.as_tensor(np.concatenate([held for _, held in self.folds]))
        targets = torch.as_tensor(self.targets[order.numpy()], device=self.features.device)
        return self.features[order], targets, torch.cat(logits).float()

    def _draw(self, rows, seed):
        """The fold's training rows as the estimator's sampler draws them (features, targets)."""
        sampler, classes = self.net.sampler, self.net.classes_
        # a fold of a class with one or two training rows may hold one class: nothing to
        # balance there, and imbalanced-learn's samplers refuse it
        if sampler is None or len(np.unique(self.targets[rows])) < 2:
            features, targets = self.features[torch.as_tensor(rows)], self.targets[rows]
        elif needs_features(sampler):
            features = self.features[torch.as_tensor(rows)].cpu()
            drawn, labels, _ = resample_features(
                sampler, features, classes[self.targets[rows]], seed
            )
            features, targets = drawn, np.searchsorted(classes, labels)
        else:
            drawn, _ = resample_indices(sampler, rows, classes[self.targets[rows]], seed)
            features, targets = self.features[torch.as_tensor(drawn)], self.targets[drawn]
        weight = self.head.weight
        features = features.to(device=weight.device, dtype=weight.dtype)
        return features, torch.as_tensor(targets, dtype=torch.long, device=weight.device)


def _state(head):
    return {key: value.detach().clone() for key, value in head.state_dict().items()}
