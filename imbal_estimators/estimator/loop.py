"""The estimator's training loop: skorch's ``partial_fit`` and ``fit_loop``, from public hooks.

:func:`train` is what ``fit`` runs once the network is built (through the
out-of-memory retry): ``on_train_begin``, the epochs, ``on_train_end``, each epoch
with skorch's own ``notify``, ``run_single_epoch``, ``train_step`` and
``validation_step``, so callbacks see the events skorch sends, in its order. What
the package adds, in order: the checkpoint attached as training starts (it resumes
what the other callbacks began), a resumed fit's remaining epochs, the network's
precision, the datasets and loaders of the split
(:mod:`~imbal_estimators.estimator.datasets`), the frozen-head fast paths
(:func:`~imbal_estimators.training.heads.train_head`) and float16 loss scaling.
"""

from functools import partial

from skorch.dataset import unpack_data
from skorch.utils import TeeGenerator

from ..training.checkpoint import attach_checkpoint
from ..training.heads import train_head
from ..training.precision import set_precision
from ..training.threads import head_threads
from .datasets import on_device, split_data


def train(net, X, y):
    """Train ``net`` on paths ``X`` and encoded labels ``y``, as skorch's ``partial_fit``.

    A ``KeyboardInterrupt`` ends the epochs and training ends as usual, as in
    skorch: it is how ``EarlyStopping`` and the divergence check stop. The user's
    own Ctrl-C is recorded and raised again once training has ended
    (:func:`~imbal_estimators.training.interrupt.raise_if_stopped`).
    """
    if not net.initialized_:
        net.initialize()
    net.notify("on_train_begin", X=X, y=y)
    try:
        _fit_loop(net, X, y)
    except KeyboardInterrupt:
        pass
    net.notify("on_train_end", X=X, y=y)
    return net


def _fit_loop(net, X, y):
    attach_checkpoint(net)  # after on_train_begin: it restores what the others began
    epochs = None
    if net.resumed_from_epoch_:
        epochs = net.max_epochs - net.resumed_from_epoch_  # max_epochs in total
    # precision as set now: partial_fit / warm_start may follow a set_params or an unpickle
    set_precision(net.module_, net.precision, net.device)
    with head_threads(net._trains_head_only_on_cpu()):
        net.check_data(X, y)
        net.check_training_readiness()
        data = split_data(net, X, y)
        if train_head(net, data, epochs) is None:
            run_epochs(net, data, net.max_epochs if epochs is None else epochs)
    return net


def run_epochs(net, data, epochs):
    """skorch's epochs over :class:`~imbal_estimators.training.split.SplitData` ``data``."""
    iterator_train = data.loader(data.train, True)
    iterator_valid = None if data.valid is None else data.loader(data.valid, False)
    scaler = getattr(net, "grad_scaler_", None)
    step = net.train_step if scaler is None else partial(scaled_train_step, net, scaler)
    for _ in range(epochs):
        net.notify("on_epoch_begin", **data.on_epoch)
        batches = on_device(iterator_train, net.device)
        net.run_single_epoch(batches, training=True, prefix="train", step_fn=step)
        batches = on_device(iterator_valid, net.device)
        net.run_single_epoch(batches, training=False, prefix="valid", step_fn=net.validation_step)
        net.notify("on_epoch_end", **data.on_epoch)


def scaled_train_step(net, scaler, batch, **fit_params):
    """skorch's ``train_step`` with float16 loss scaling by the ``GradScaler`` ``scaler``.

    ``GradScaler.step`` takes no closure, so this is skorch's step unrolled for the
    one optimizer the estimator creates.
    """
    accumulator = net.get_train_step_accumulator()
    net.optimizer_.zero_grad()
    net.module_.train(True)
    net.criterion_.train(True)
    Xi, yi = unpack_data(batch)
    y_pred = net.infer(Xi, **fit_params)
    loss = net.get_loss(y_pred, yi, X=Xi, training=True)
    scaler.scale(loss).backward()
    accumulator.store_step({"loss": loss, "y_pred": y_pred})
    scaler.unscale_(net.optimizer_)  # callbacks such as gradient clipping see true gradients
    net.notify(
        "on_grad_computed",
        named_parameters=TeeGenerator(net.get_all_learnable_params()),
        batch=batch,
        training=True,
    )
    scaler.step(net.optimizer_)
    scaler.update()
    return accumulator.get_step()
