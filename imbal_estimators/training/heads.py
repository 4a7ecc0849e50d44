"""Train many frozen-backbone heads at once on cached features.

A search over head-side parameters (loss, gamma, alpha, beta, sampler, lr,
threshold, ...) with ``freeze_backbone=True`` trains one linear head per
candidate on the same cached features. :func:`fit_many` fits such estimators
together: each goes through its own ``fit`` (checks, split, sampler, class
weights, callbacks, kept epoch, threshold and calibration: nothing is
re-implemented), and their epochs run in lock-step, where one stacked matrix
product computes the logits of every head, one backward pass their gradients,
and each head's own optimizer takes its step. The fitted estimators are those
separate ``fit`` calls give, to float32 precision.

How: the estimators' ``fit`` calls are nested. Each one's training loop
(:func:`train_head`) registers its datasets with the group and starts
the next estimator's ``fit``; the innermost trains every registered head, and
then each ``fit`` returns and finishes as usual (restoring its best epoch,
fitting its threshold). So the whole of ``fit`` stays the one code path.
"""

import torch
from skorch.dataset import get_len, unpack_data
from skorch.utils import TeeGenerator
from torch.utils.data import Dataset

from ..utils._compat import (
    REPLAYED_SKORCH_STEPS,
    loader_batches,
    optimizer_names,
    private_api_ok,
    set_training,
    zero_grad,
)
from .head_solver import solve_head_path, uses_head_solver
from .threads import head_threads

__all__ = ["HeadTrainingMixin", "can_fit_together", "fit_many", "train_head"]

DEFAULT_CHUNK_SIZE = 32  # heads per group; each nested fit adds about 15 stack frames


class HeadTrainingMixin:
    """What the estimator knows about training a frozen backbone's head.

    Head-only epochs and predictions on the CPU run on one intra-op thread
    (:func:`~imbal_estimators.training.threads.head_threads`; the feature pass
    of the body keeps every thread); :func:`train_head` picks the loop.
    """

    def _trains_head_only_on_cpu(self):
        return self.freeze_backbone and torch.device(self.device).type == "cpu"


def train_head(net, data, epochs):
    """``net``'s epochs on a fast path for a frozen head, or None where there is none.

    Inside :func:`fit_many` the group trains it; ``head_solver="lbfgs"`` solves
    it (:func:`~imbal_estimators.training.head_solver.solve_head_path`); on the
    CPU :func:`_direct_head_loop` runs skorch's epochs without their per-batch
    bookkeeping. Otherwise the caller runs skorch's epochs.

    Parameters
    ----------
    net : ImageImbalanceClassifier
        Initialized, its training begun (``on_train_begin``).
    data : SplitData
        The datasets and loaders (:class:`~imbal_estimators.training.split.SplitData`).
    epochs : int or None
        None: ``max_epochs``; else the epochs left of a resumed fit.
    """
    group = net.__dict__.get("_head_group")
    if group is not None:
        return group.train(net, data, epochs)
    if uses_head_solver(net) and _reason_no_solver(net, epochs) is None:
        return solve_head_path(net, data)
    if _reason_not_direct(net) is None:
        return _direct_head_loop(net, data, epochs)
    return None


_BATCH_EVENTS = ("on_batch_begin", "on_batch_end", "on_grad_computed")


def solves_path(net):
    """Whether ``net``'s next ``fit`` solves its head along the penalty path (one
    epoch per penalty of :data:`~imbal_estimators.training.head_solver.HEAD_PENALTIES`)."""
    return uses_head_solver(net) and _reason_no_solver(net, None) is None


def _reason_no_solver(net, epochs):
    """Why a ``head_solver="lbfgs"`` head still trains by epochs (None when it need not)."""
    if epochs is not None or net.warm_start or len(net.history):
        return "training continues (partial_fit, warm_start or a resumed checkpoint)"
    if getattr(net, "checkpoint_dir", None) is not None:
        return "checkpoint_dir is set"
    return None


def _defined_here(cls, name):
    """Whether ``cls.name`` comes from this package or skorch (not from a user's subclass)."""
    for klass in cls.__mro__:
        if name in vars(klass):
            return klass.__module__.split(".")[0] in ("imbal_estimators", "skorch")
    return True


def _reason_not_direct(net):
    """Why ``net``'s epochs go through skorch's ``run_single_epoch`` rather than
    :func:`_direct_head_loop` (None when they need not)."""
    if not net._trains_head_only_on_cpu():
        return "not a frozen-backbone fit on the CPU"
    if getattr(net, "grad_scaler_", None) is not None:
        return "loss scaling"
    if not private_api_ok():
        return "untested torch or skorch version"
    if optimizer_names(net) != ["optimizer"]:
        return "more than one optimizer"
    from sklearn import get_config

    if get_config().get("enable_metadata_routing"):
        return "metadata routing"
    for name in REPLAYED_SKORCH_STEPS:
        if not _defined_here(type(net), name):
            return f"{name} is overridden"
    return None


def _overrides(callback, name):
    """Whether ``callback`` does anything on event ``name`` (skorch's base is a no-op)."""
    from skorch.callbacks import Callback

    method = getattr(type(callback), name, None)
    return method is not None and method is not getattr(Callback, name)


def _direct_head_loop(net, data, epochs):
    """skorch's epochs for a head on cached features, with their per-batch work trimmed.

    The same steps in the same order as skorch's ``fit_loop``, ``run_single_epoch``,
    ``train_step`` and ``validation_step`` (the same data loaders and so the same
    batches, the same optimizer closure, the same history records and callback
    calls), except that batch events reach only the callbacks that handle them:
    skorch's base ``Callback`` methods do nothing. A linear head's batch costs less
    than the bookkeeping around it; this loop halves a frozen fit's epochs.
    """
    epochs = net.max_epochs if epochs is None else epochs
    on_epoch = data.on_epoch
    iterator_train = data.loader(data.train, True)
    iterator_valid = None if data.valid is None else data.loader(data.valid, False)
    listeners = {
        event: [cb for _, cb in net.callbacks_ if _overrides(cb, event)] for event in _BATCH_EVENTS
    }
    for _ in range(epochs):
        net.notify("on_epoch_begin", **on_epoch)
        with head_threads(net._trains_head_only_on_cpu()):
            _direct_epoch(net, iterator_train, True, listeners)
            _direct_epoch(net, iterator_valid, False, listeners)
        net.notify("on_epoch_end", **on_epoch)
    return net


def _tell(net, listeners, event, **kwargs):
    getattr(net, event)(net, **kwargs)
    for callback in listeners[event]:
        getattr(callback, event)(net, **kwargs)


def _direct_epoch(net, iterator, training, listeners):
    """``run_single_epoch`` with ``train_step`` or ``validation_step`` inlined."""
    if iterator is None:
        return
    prefix = "train" if training else "valid"
    history = net.history
    batch_count = 0
    for batch in loader_batches(iterator):
        _tell(net, listeners, "on_batch_begin", batch=batch, training=training)
        if training:
            first = []  # skorch's FirstStepAccumulator: the first closure call's step

            def step_fn(batch=batch, first=first):
                zero_grad(net)
                set_training(net, True)
                Xi, yi = unpack_data(batch)
                y_pred = net.infer(Xi)
                loss = net.get_loss(y_pred, yi, X=Xi, training=True)
                loss.backward()
                if not first:
                    first.append({"loss": loss, "y_pred": y_pred})
                named_parameters = TeeGenerator(net.get_all_learnable_params())
                _tell(
                    net,
                    listeners,
                    "on_grad_computed",
                    named_parameters=named_parameters,
                    batch=batch,
                    training=True,
                )
                return loss

            net.optimizer_.step(step_fn)
            step = first[0]
        else:
            set_training(net, False)
            Xi, yi = unpack_data(batch)
            with torch.no_grad():
                y_pred = net.infer(Xi)
                loss = net.get_loss(y_pred, yi, X=Xi, training=False)
            step = {"loss": loss, "y_pred": y_pred}
        history.record_batch(prefix + "_loss", step["loss"].item())
        history.record_batch(prefix + "_batch_size", get_len(batch[0]))
        _tell(net, listeners, "on_batch_end", batch=batch, training=training, **step)
        batch_count += 1
    history.record(prefix + "_batch_count", batch_count)


def can_fit_together(estimator):
    """Whether :func:`fit_many` can train ``estimator`` in a group (else it fits alone).

    It can when it is an ImageImbalanceClassifier with ``freeze_backbone=True``
    that trains from scratch (no ``warm_start``, ``checkpoint_dir`` or
    ``compile``), with the default data loaders (no ``iterator_train__*`` or
    ``iterator_valid__*`` besides ``batch_size``) and an optimizer that
    evaluates its closure once (not ``LBFGS``).
    """
    return _reason_alone(estimator) is None


def _reason_alone(estimator):
    if not isinstance(estimator, HeadTrainingMixin):
        return "not an ImageImbalanceClassifier"
    params = estimator.get_params(deep=False)
    if not params.get("freeze_backbone"):
        return "freeze_backbone=False"
    for name in ("warm_start", "compile"):
        if params.get(name):
            return f"{name}=True"
    if params.get("checkpoint_dir") is not None:
        return "checkpoint_dir is set"
    if uses_head_solver(estimator):
        return "head_solver='lbfgs' solves each head on its own (full batch)"
    loaders = {**estimator.get_params_for("iterator_train")}
    loaders.update(estimator.get_params_for("iterator_valid"))
    if set(loaders) - {"batch_size"}:
        return "custom data loader parameters"
    optimizer = params.get("optimizer")
    if isinstance(optimizer, type) and issubclass(optimizer, torch.optim.LBFGS):
        return "LBFGS evaluates its closure several times"
    return None


def fit_many(estimators, X, y, *, per_estimator=False, chunk_size=DEFAULT_CHUNK_SIZE):
    """Fit frozen-backbone estimators together: one feature pass, their heads in lock-step.

    Parameters
    ----------
    estimators : list of ImageImbalanceClassifier
        Usually unfitted clones of one estimator with ``freeze_backbone=True``
        that differ in head-side parameters (``loss``, ``gamma``, ``alpha``,
        ``beta``, ``sampler``, ``lr``, ``threshold``, ``calibrate``,
        ``drw_epoch``, ``optimizer__*``, ...). Each is fitted in place, as its
        ``fit(X, y)`` would fit it. Estimators that
        :func:`can_fit_together` refuses are fitted one by one.
    X : paths, or a sequence of them with ``per_estimator=True``
    y : labels, or a sequence of them with ``per_estimator=True``
    per_estimator : bool, default=False
        ``X[i], y[i]`` are the data of ``estimators[i]`` (e.g. the training
        folds of a cross-validation: the features of every image are still
        computed once, through the cache).
    chunk_size : int, default=32
        At most this many heads train together.

    Returns
    -------
    estimators : list
        The same estimators, fitted. Predictions, ``history`` (the same keys
        per epoch and batch), ``best_epoch_``, ``threshold_`` and the other
        fitted attributes equal those of separate ``fit`` calls to float32
        precision (the stacked product sums in another order).

    Notes
    -----
    Estimators share the features when they share ``backbone``, ``weights``,
    ``image_size``, ``precision`` and a ``cache`` that is not None; heads of
    other bodies also train together, each on its own features. If training
    the group fails, the group's estimators are fitted one by one, so an
    error comes from the estimator that causes it.

    Examples
    --------
    >>> from sklearn.base import clone
    >>> from imbal_estimators.training.heads import fit_many
    >>> base = ImageImbalanceClassifier(freeze_backbone=True, weights="r34.pth")  # doctest: +SKIP
    >>> grid = [{"loss": "focal", "gamma": g, "alpha": a} for g in (1, 2)
    ...         for a in (None, "balanced")]
    >>> fitted = fit_many([clone(base).set_params(**p) for p in grid], X, y)  # doctest: +SKIP
    """
    estimators = list(estimators)
    data = _data_per_estimator(estimators, X, y, per_estimator)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1; got {chunk_size}.")
    together = [i for i, e in enumerate(estimators) if can_fit_together(e)]
    for i in sorted(set(range(len(estimators))) - set(together)):
        estimators[i].fit(*data[i])
    for start in range(0, len(together), chunk_size):
        _fit_chunk([(estimators[i], *data[i]) for i in together[start : start + chunk_size]])
    return estimators


def _fit_chunk(jobs):
    """Fit ``(estimator, X, y)`` jobs as one group; alone where the group fails or is one."""
    if len(jobs) > 1:
        try:
            _HeadGroup(jobs).run()
            return
        except Exception:  # noqa: BLE001 - refit alone, so the error names its estimator
            pass
    for net, X, y in jobs:
        net.fit(X, y)


def _data_per_estimator(estimators, X, y, per_estimator):
    """``[(X, y), ...]``, one pair per estimator, after :func:`fit_many`'s checks."""
    if len({id(e) for e in estimators}) != len(estimators):
        raise ValueError("fit_many got the same estimator object twice; pass clones.")
    if not per_estimator:
        return [(X, y)] * len(estimators)
    X, y = list(X), list(y)
    if not len(X) == len(y) == len(estimators):
        raise ValueError(
            f"per_estimator=True needs one X and one y per estimator; got "
            f"{len(estimators)} estimators, {len(X)} X and {len(y)} y."
        )
    return list(zip(X, y, strict=True))


class _GroupFailed(RuntimeError):
    """Training a group failed; :func:`fit_many` fits its estimators one by one instead."""


class _Rows(Dataset):
    """The positions ``0 .. len(dataset) - 1`` of a dataset, served in batches.

    The estimator's own data loader over this is the one a separate fit uses
    over the dataset (batch size, shuffling, ``drop_last``,
    the same random draws), without collating rows one by one.
    """

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        return i

    def __getitems__(self, positions):
        return list(positions)


class _Head:
    """One estimator of a group: its datasets, loaders and the current epoch's batches."""

    def __init__(self, net, data, epochs):
        linear = net.module_.head
        if type(linear) is not torch.nn.Linear:
            raise TypeError(f"the head is a {type(linear).__name__}, not a Linear layer")
        self.net = net
        self.linear = linear
        self.datasets = {"train": data.train, "valid": data.valid}
        self.loaders = {"train": data.loader(_Rows(data.train), True)}
        if data.valid is not None:
            self.loaders["valid"] = data.loader(_Rows(data.valid), False)
        self.epochs = epochs
        self.done = False
        self.batches = {}

    def begin_epoch(self):
        datasets = self.datasets
        self.net.notify(
            "on_epoch_begin", dataset_train=datasets["train"], dataset_valid=datasets["valid"]
        )
        # drawn now, right after this net seeded its epoch, as its own loop would draw them
        self.batches = {prefix: list(loader) for prefix, loader in self.loaders.items()}

    def batch(self, prefix, step):
        """The ``(features, targets)`` batch ``step`` of this epoch, as its loader gives it."""
        return self.datasets[prefix].__getitems__(self.batches[prefix][step].tolist())

    def end_epoch(self):
        try:
            self.net.notify(
                "on_epoch_end",
                dataset_train=self.datasets["train"],
                dataset_valid=self.datasets["valid"],
            )
        except KeyboardInterrupt:  # EarlyStopping's way to stop; skorch's loop ends there too
            self.done = True


class _HeadGroup:
    """Estimators whose ``fit`` calls nest, and whose heads train in one loop."""

    def __init__(self, jobs):
        self.pending = list(jobs)
        self.heads = []

    def run(self):
        net, X, y = self.pending.pop(0)
        net.__dict__["_head_group"] = self
        try:
            net.fit(X, y)
        finally:
            net.__dict__.pop("_head_group", None)

    def train(self, net, data, epochs):
        """``net``'s epochs inside the group: register, then fit the next estimator
        (or, for the last one, train all heads)."""
        epochs = net.max_epochs if epochs is None else epochs
        self.heads.append(_Head(net, data, epochs))
        # Any failure past this point is the group's: raised as _GroupFailed, so that no
        # enclosing fit takes it for its own (its out-of-memory retry, for one).
        try:
            if self.pending:
                self.run()
            else:
                self._train_heads()
        except _GroupFailed:
            raise
        except Exception as exc:
            raise _GroupFailed(f"{type(exc).__name__}: {exc}") from exc
        return net

    def _train_heads(self):
        on_cpu = all(torch.device(h.net.device).type == "cpu" for h in self.heads)
        for epoch in range(max(h.epochs for h in self.heads)):
            heads = [h for h in self.heads if not h.done and epoch < h.epochs]
            if not heads:
                break
            for head in heads:
                head.begin_epoch()
            with head_threads(on_cpu):
                self._run_epoch(heads, "train")
                self._run_epoch([h for h in heads if "valid" in h.loaders], "valid")
            for head in heads:
                head.end_epoch()

    def _run_epoch(self, heads, prefix):
        """skorch's ``run_single_epoch`` for every head at once."""
        training = prefix == "train"
        for step in range(max((len(h.batches[prefix]) for h in heads), default=0)):
            active = [h for h in heads if step < len(h.batches[prefix])]
            batches = [h.batch(prefix, step) for h in active]
            for head, batch in zip(active, batches, strict=True):
                head.net.notify("on_batch_begin", batch=batch, training=training)
            if training:
                for head in active:
                    head.net.optimizer_.zero_grad()
                    head.net.module_.train(True)
                    head.net.criterion_.train(True)
                losses, logits = self._losses(active, batches, training=True)
                torch.stack(losses).sum().backward()
                for head, batch in zip(active, batches, strict=True):
                    head.net.notify(
                        "on_grad_computed",
                        named_parameters=TeeGenerator(head.net.get_all_learnable_params()),
                        batch=batch,
                        training=True,
                    )
                    head.net.optimizer_.step()
            else:
                for head in active:
                    head.net.module_.train(False)
                    head.net.criterion_.train(False)
                with torch.no_grad():
                    losses, logits = self._losses(active, batches, training=False)
            for head, batch, loss, y_pred in zip(active, batches, losses, logits, strict=True):
                history = head.net.history
                history.record_batch(f"{prefix}_loss", loss.item())
                history.record_batch(f"{prefix}_batch_size", len(batch[0]))
                head.net.notify(
                    "on_batch_end", batch=batch, training=training, loss=loss, y_pred=y_pred
                )
        for head in heads:
            head.net.history.record(f"{prefix}_batch_count", len(head.batches[prefix]))

    @staticmethod
    def _losses(heads, batches, training):
        """Each head's loss and float32 logits; heads of one shape share one stacked product."""
        logits = [None] * len(heads)
        shapes = {}
        for i, head in enumerate(heads):
            weight = head.linear.weight
            shapes.setdefault((tuple(weight.shape), weight.device), []).append(i)
        for (_, device), members in shapes.items():
            inputs = [batches[i][0].to(device) for i in members]
            sizes = [len(x) for x in inputs]
            if len(set(sizes)) == 1:
                stacked = torch.stack(inputs)
            else:  # ragged last batches: zero rows that no loss reads
                stacked = inputs[0].new_zeros(len(inputs), max(sizes), inputs[0].shape[1])
                for row, x in enumerate(inputs):
                    stacked[row, : len(x)] = x
            weights = torch.stack([heads[i].linear.weight for i in members])
            biases = torch.stack([_bias(heads[i].linear) for i in members])
            out = torch.baddbmm(biases.unsqueeze(1), stacked, weights.transpose(1, 2))
            for row, (i, size) in enumerate(zip(members, sizes, strict=True)):
                logits[i] = out[row, :size].float()
        losses = [
            head.net.get_loss(y_pred, batch[1], X=batch[0], training=training)
            for head, batch, y_pred in zip(heads, batches, logits, strict=True)
        ]
        return losses, logits


def _bias(linear):
    if linear.bias is not None:
        return linear.bias
    return linear.weight.new_zeros(linear.out_features)
