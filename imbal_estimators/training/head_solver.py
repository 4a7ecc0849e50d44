"""Frozen-backbone heads trained to convergence, whatever the fine-tuning ``lr``.

A linear head on cached features is a (nearly) convex problem, so with
``head_solver="lbfgs"`` (the default) :func:`solve_head_path` does not take
``max_epochs`` minibatch steps of ``lr`` (at the fine-tuning default
``lr=1e-4`` such a head stays far from its optimum, and a loss that pushes the
rare class up faster looks like an imbalance fix). It solves the head with
full-batch L-BFGS along a path of L2 penalties, strong to weak, each point
warm-started from the last ones (:class:`~imbal_estimators.training.head_folds.PathStart`)
and solved until its gradient vanishes (a convergence check, recorded per
point). Each point of the path is one "epoch" of the history: the same
callbacks run (deferred re-weighting, the validation score, the kept epoch),
so the validation split picks the penalty as it picks an epoch of minibatch
training, the way early stopping regularizes. A sampler draws the rows once,
at the first point, and every penalty is solved on that draw. With a fraction
or an int ``train_split`` the "validation split" is k-fold cross-validation
over every training row (:mod:`~imbal_estimators.training.head_folds`): the
head of each point trains on all the rows, and its validation predictions are
the folds' out-of-fold logits.
The path does not depend on ``lr``, ``max_epochs`` or the optimizer; they apply
to fine-tuning and to ``head_solver=None``.
"""

from functools import partial

import numpy as np
import scipy.optimize
import torch
from skorch import NeuralNetClassifier
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from ..utils._compat import set_training
from .head_folds import CV_LOGITS_KEY, FoldPaths, PathStart, cross_validation_folds
from .threads import head_threads

__all__ = ["HEAD_PENALTIES", "solve_head_path", "solving_path", "uses_head_solver"]

# L2 penalty of the head's weights per point of the path, in units of the features' mean
# square (so that scaling the features scales nothing else): from a head that barely leaves
# the class prior to one that nearly separates the training rows. For standardized features
# and n training rows, the point c is logistic regression's C = 1 / (c n).
HEAD_PENALTIES = tuple(10.0 ** (-k / 2) for k in range(11))  # 1 ... 1e-5
MAX_ITERATIONS = 100  # L-BFGS iterations per round
MAX_ROUNDS = 2  # rounds per point (bounds the cost where float32 stalls) before "not converged"
# The largest gradient entry at convergence, relative to the features' root mean square: a
# float32 loss of order 1 stalls L-BFGS's line search near 1e-5, so it aims ten times lower.
GRAD_TOL = 1e-4
# Set in the estimator's __dict__ while its head is solved along the path.
_ON_PATH_KEY = "_solving_head_path"


def uses_head_solver(net):
    """Whether ``net``'s head trains by :func:`solve_head_path` (else by epochs of ``lr``)."""
    return bool(net.freeze_backbone) and getattr(net, "head_solver", None) == "lbfgs"


def solve_head_path(net, data):
    """The epochs of a frozen head with ``head_solver="lbfgs"``: one epoch per penalty.

    Records per epoch, besides skorch's keys, ``head_penalty`` (the L2 penalty
    in units of the features' mean square), ``head_iterations`` and
    ``head_converged`` (whether the largest gradient entry fell below the
    tolerance). Where :func:`~imbal_estimators.training.head_folds.cross_validation_folds`
    gives ``k``, ``valid_*`` are the scores of the ``k`` folds' out-of-fold
    logits, and those logits per epoch are left in ``net.__dict__`` under
    ``CV_LOGITS_KEY`` for the decision fit (threshold, temperature).
    """
    net.__dict__[_ON_PATH_KEY] = True
    try:
        return _solve_path(net, data)
    finally:
        net.__dict__.pop(_ON_PATH_KEY, None)


def solving_path(net):
    """Whether ``net`` is inside :func:`solve_head_path` (its epochs are penalties)."""
    return bool(net.__dict__.get(_ON_PATH_KEY))


def _solve_path(net, data):
    dataset_train, dataset_valid = data.train, data.valid
    on_epoch = data.on_epoch
    head = net.module_.head
    if not isinstance(head, torch.nn.Linear):
        raise TypeError(f"head_solver='lbfgs' needs a Linear head; got {type(head).__name__}.")
    k = cross_validation_folds(net) if dataset_valid is None else None
    folds = FoldPaths(net, dataset_train, k) if k else None
    cv_logits = {}
    scale = None
    start = PathStart(head)
    for point, penalty in enumerate(HEAD_PENALTIES):
        # the sampler draws at the first point only (DRW, the epoch's seed run at each)
        net.notify("on_epoch_begin", **on_epoch, redraw=point == 0)
        with head_threads(net._trains_head_only_on_cpu()):
            if point == 0:  # the rows stay those of the first draw
                features, targets = _whole(dataset_train, head)
                # float64: the mean square of features of order 1e20 overflows float32
                scale = float(features.double().pow(2).mean()) or 1.0
            solve = partial(_solve, net, head, penalty=penalty * scale, scale=scale)
            objective = partial(_objective_value, net, head, penalty=penalty * scale)
            start.load(head, partial(objective, features, targets))
            iterations, converged = solve(features, targets)
            start.solved(head)
            _record(net, features, targets, True)
            if folds is not None:
                epoch = len(net.history)
                held, held_targets, logits = folds.held_out_logits(solve, objective, epoch)
                _record(net, held, held_targets, False, logits=logits)
                cv_logits[len(net.history)] = (logits.cpu().numpy(), held_targets.cpu().numpy())
            elif dataset_valid is not None and len(dataset_valid):
                _record(net, *_whole(dataset_valid, head), False)
        net.history.record("head_penalty", penalty)
        net.history.record("head_iterations", iterations)
        net.history.record("head_converged", converged)
        net.notify("on_epoch_end", **on_epoch)
    if folds is not None and (net.calibrate or net.threshold == "auto"):
        net.__dict__[CV_LOGITS_KEY] = cv_logits
    return net


def _whole(dataset, head):
    features, targets = dataset.__getitems__(np.arange(len(dataset)))
    weight = head.weight
    return features.to(device=weight.device, dtype=weight.dtype), targets.to(weight.device)


def _training_loss(net):
    """``loss(logits, targets, features)``: ``net.get_loss`` in training mode or, where that
    is skorch's own, the criterion it calls, without its per-call conversion of the
    targets (already a tensor on the head's device here): the same value, and about a
    tenth of a solve's time less. Taken per solve: deferred re-weighting replaces the
    criterion between points."""
    if type(net).get_loss is NeuralNetClassifier.get_loss and not isinstance(
        net.criterion_, torch.nn.NLLLoss
    ):
        criterion = net.criterion_
        return lambda logits, targets, features: criterion(logits, targets)
    return lambda logits, targets, features: net.get_loss(
        logits, targets, X=features, training=True
    )


def _objective(loss, head, features, targets, penalty):
    logits = head(features)
    return loss(logits, targets, features) + 0.5 * penalty * head.weight.pow(2).sum()


def _objective_value(net, head, features, targets, *, penalty):
    set_training(net, True)
    with torch.no_grad():
        return float(_objective(_training_loss(net), head, features, targets, penalty))


def _solve(net, head, features, targets, *, penalty, scale):
    """Minimize the penalized loss; returns ``(iterations, converged)``.

    SciPy's L-BFGS-B on the head's parameters as one float64 vector (torch's
    ``parameters_to_vector``), the objective and its gradient from autograd in the
    head's own dtype and device: on a problem
    this small (about a thousand parameters) ``torch.optim.LBFGS``'s Python line
    search cost more than the arithmetic, and it took about 1.8 times the
    objective evaluations to the same tolerance (``docs/speed.md``).
    """
    set_training(net, True)
    loss = _training_loss(net)
    params = [p for p in head.parameters() if p.requires_grad]
    tolerance = GRAD_TOL * max(scale, 1e-12) ** 0.5

    def value_and_gradient(x):
        _load(params, x)
        for param in params:
            param.grad = None
        objective = _objective(loss, head, features, targets, penalty)
        objective.backward()
        value = float(objective.detach())
        if not np.isfinite(value):  # the line search steps back from it
            return np.inf, np.zeros_like(x)
        return value, _float64(parameters_to_vector([p.grad for p in params]))

    iterations, start = 0, _float64(parameters_to_vector(params))
    for _ in range(MAX_ROUNDS):
        result = scipy.optimize.minimize(
            value_and_gradient,
            start,
            jac=True,
            method="L-BFGS-B",
            # stop on the gradient (gtol), not on a slow stretch of the objective (ftol)
            options={"maxiter": MAX_ITERATIONS, "gtol": tolerance, "ftol": 0.0, "maxcor": 20},
        )
        iterations += int(result.nit)
        _load(params, result.x)
        if not np.isfinite(result.fun):
            return iterations, False  # DivergenceCheck reports the non-finite loss
        if np.abs(result.jac).max() <= tolerance:  # the gradient at result.x
            return iterations, True
        start = result.x
    return iterations, False


def _float64(vector):
    """A flat tensor as the float64 NumPy vector SciPy's optimizers take."""
    return vector.detach().cpu().double().numpy()


def _load(params, x):
    """SciPy's vector ``x`` into ``params`` (copied: SciPy reuses its arrays)."""
    weight = params[0]
    vector_to_parameters(torch.tensor(x, dtype=weight.dtype, device=weight.device), params)


def _record(net, features, targets, training, logits=None):
    """The epoch's one batch, recorded and announced as skorch's loop does (its
    predictions ``logits`` where given: the folds' out-of-fold logits)."""
    prefix = "train" if training else "valid"
    batch = (features, targets)
    net.notify("on_batch_begin", batch=batch, training=training)
    set_training(net, False)
    with torch.no_grad():
        y_pred = net.infer(features).float() if logits is None else logits
        loss = net.get_loss(y_pred, targets, X=features, training=training)
    net.history.record_batch(f"{prefix}_loss", loss.item())
    net.history.record_batch(f"{prefix}_batch_size", len(targets))
    net.notify("on_batch_end", batch=batch, training=training, loss=loss, y_pred=y_pred)
    net.history.record(f"{prefix}_batch_count", 1)
