"""How a pretrained network is fine-tuned: its head's start, its head's rate, its BatchNorm.

Three settings, each ``"auto"`` by default: on for a pretrained network that is
fine-tuned (not ``freeze_backbone``), as ``compare`` decides "pretrained"
(:func:`~imbal_estimators.models.backbones.is_pretrained`: a backbone's weights or a
weights file; your own ``module`` unless its class sets ``pretrained = False``), off
for a random initialization (``weights=None``, ``small_cnn``), which trains as before.
Measured on real ImageNet features in ``docs/quality.md`` ("Fine-tuning a pretrained
network at the defaults").

* ``freeze_norm``: the body's BatchNorm layers stay in eval mode while it trains
  (their scale and shift still train). In training mode BatchNorm normalizes by the
  statistics of the batch and moves its running statistics towards them: for a few
  hundred images of another domain in batches of 32, that replaces statistics
  learned on millions of images with noisy ones at the first step, and the features
  every later layer was trained on shift before any weight has learned. Keras's
  transfer-learning guide keeps BatchNorm in inference mode when fine-tuning, as
  detection libraries do with ``FrozenBatchNorm`` at small batch sizes.
* ``head_init="probe"`` (LP-FT; Kumar et al., ICLR 2022, "Fine-Tuning can Distort
  Pretrained Features and Underperform Out-of-Distribution"): a new random head
  first spends the steps, and distorts the body's features, fitting itself. Here it
  starts at the linear probe's solution: solved to convergence on the frozen
  features of the fit's own training rows, with the configuration's own loss, class
  weights and sampler (:mod:`~imbal_estimators.training.head_solver`, its penalty
  picked by k-fold CV over those rows). The probe is an estimator of the same
  parameters with ``freeze_backbone=True`` whose ``module`` is a copy of this fit's
  freshly built body, so its features are those of the very weights fine-tuning
  starts from; it never sees the validation rows, which still pick the kept epoch
  and the threshold. With ``freeze_norm`` the head sees at the first step the
  features it was solved on.
* ``head_lr_scale``: the head's weights and bias train at ``head_lr_scale * lr``,
  the body at ``lr`` (fastai's discriminative rates, the "10x head" of many timm and
  torchvision fine-tuning scripts): the body needs small steps not to lose what it
  learned, the head moves little at that rate in the few hundred steps of a small
  data set.
"""

import copy
import warnings

import numpy as np
import torch
from skorch.callbacks import Callback

from ..models.backbones import find_head, is_pretrained

__all__ = [
    "AUTO_HEAD_LR_SCALE",
    "AUTO_MAX_LR",
    "HEAD_INIT_OPTIONS",
    "HeadLearningRate",
    "ProbeHead",
    "freezes_norm",
    "head_lr_scale",
    "linear_head",
    "probes_head",
    "small_steps",
    "start_from_probe",
]

HEAD_INIT_OPTIONS = ("auto", "probe", "random")

#: the head's multiple of ``lr`` that ``head_lr_scale="auto"`` gives a pretrained network
AUTO_HEAD_LR_SCALE = 10.0

#: the largest ``lr`` at which the ``"auto"`` settings turn on: the package's default,
#: the rate they were measured to help at. At ``lr=1e-3`` they were measured to hurt
#: (BatchNorm statistics kept while the weights move fast go stale; ``docs/quality.md``),
#: so a user who raises ``lr`` fine-tunes as before they existed.
AUTO_MAX_LR = 1e-4

# the probe only solves the head; what decides, predicts or reports is the fine-tune's
_PROBE_SETTINGS = dict(
    freeze_backbone=True,
    head_solver="lbfgs",
    head_init="random",
    weights=None,  # the module given is the built body, its weights in it
    threshold=None,
    posthoc_tau=None,
    calibrate=False,
    tta=None,
    verbose=0,
    callbacks=None,
    checkpoint_dir=None,
    warm_start=False,
    auto_batch_size=False,
)


def _auto(estimator, value, pretrained, other):
    """``value``, where ``"auto"`` is ``pretrained`` for a pretrained network that is
    fine-tuned at an ``lr`` of at most :data:`AUTO_MAX_LR`, and ``other`` otherwise."""
    if value != "auto":
        return value
    on = is_pretrained(estimator.weights, estimator.module) and small_steps(estimator.lr)
    return pretrained if on else other


def small_steps(lr):
    """Whether ``lr`` is small enough for the ``"auto"`` settings (:data:`AUTO_MAX_LR`)."""
    return float(lr) <= AUTO_MAX_LR * (1 + 1e-9)


def probes_head(estimator):
    """Whether ``estimator``'s fit starts its new head from the linear probe."""
    if estimator.freeze_backbone:
        return False
    return _auto(estimator, getattr(estimator, "head_init", "random"), "probe", "random") == (
        "probe"
    )


def freezes_norm(estimator):
    """Whether ``estimator`` fine-tunes with its body's BatchNorm statistics frozen
    (with ``freeze_backbone`` the whole body is in eval mode anyway: False)."""
    if estimator.freeze_backbone:
        return False
    return bool(_auto(estimator, getattr(estimator, "freeze_norm", False), True, False))


def head_lr_scale(estimator):
    """The multiple of ``lr`` that ``estimator``'s head trains at (1.0: the body's)."""
    if estimator.freeze_backbone:
        return 1.0  # only the head trains, or its solver ignores lr
    scale = getattr(estimator, "head_lr_scale", 1.0)
    return float(_auto(estimator, scale, AUTO_HEAD_LR_SCALE, 1.0))


def linear_head(model):
    """The head of a built :class:`~imbal_estimators.models.backbones.ImageModel`
    where it is a Linear layer (else None)."""
    try:
        _, head = find_head(model.backbone)
    except ValueError:
        return None
    return head if isinstance(head, torch.nn.Linear) else None


class HeadLearningRate(Callback):
    """Moves the head's parameters into optimizer groups of their own, at
    ``head_lr_scale`` times their group's ``lr``, as training begins.

    A fit that continues (its optimizer split already, marked by the group key
    ``head_lr_scale``) keeps its groups, the head's ``lr`` set again to the body's
    times the scale (``set_params(lr=...)`` gives every group the same ``lr``, and
    ``head_lr_scale`` may have changed); a checkpoint restores its optimizer state
    after this, into the same groups.
    """

    def on_train_begin(self, net, **kwargs):
        scale = head_lr_scale(net)
        optimizer = getattr(net, "optimizer_", None)
        if optimizer is None:
            return
        if any("head_lr_scale" in group for group in optimizer.param_groups):
            _rescale(optimizer, scale)
            return
        head = linear_head(net.module_) if scale != 1.0 else None
        if head is None:
            if scale != 1.0 and net.head_lr_scale != "auto":
                raise ValueError(
                    f"head_lr_scale={net.head_lr_scale!r} needs a network whose head is a "
                    f"Linear layer; {type(net.module_.backbone).__name__}'s is not. Pass "
                    "head_lr_scale=1 (or 'auto') to train it at lr."
                )
            return
        in_head = {id(param) for param in head.parameters()}
        heads = []
        for group in optimizer.param_groups:
            top = [p for p in group["params"] if id(p) in in_head]
            if top:
                group["params"] = [p for p in group["params"] if id(p) not in in_head]
                options = {k: v for k, v in group.items() if k != "params"}
                heads.append({**options, "params": top, "lr": group["lr"] * scale})
        optimizer.param_groups[:] = [g for g in optimizer.param_groups if g["params"]]
        for group in heads:
            optimizer.add_param_group({**group, "head_lr_scale": scale})


def _rescale(optimizer, scale):
    """The head's groups at ``scale`` times the body's ``lr`` (the first other group's)."""
    body = [g for g in optimizer.param_groups if "head_lr_scale" not in g]
    if not body:
        return
    for group in optimizer.param_groups:
        if "head_lr_scale" in group:
            group["lr"] = body[0]["lr"] * scale
            group["head_lr_scale"] = scale


class ProbeHead(Callback):
    """Solves the linear probe and loads it into the new head as training begins.

    Only on a fit that builds a new network: a continued fit (``partial_fit``,
    ``warm_start``) or one resumed from a checkpoint keeps its trained head.
    ``probed_`` says whether the last fit's head started from the probe.
    """

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self.probed_ = False
        if not probes_head(net) or len(net.history) or net.__dict__.get("resumed_from_epoch_"):
            return
        if net.head_init == "auto" and linear_head(net.module_) is None:
            return  # a network without a Linear head to solve keeps its own start
        start_from_probe(net, X, y)
        self.probed_ = True


def start_from_probe(estimator, X, y):
    """Fit the probe on ``estimator``'s training rows of paths ``X`` (encoded labels
    ``y``) and copy its head into ``estimator``'s new head; returns the probe."""
    head = linear_head(estimator.module_)
    if head is None:
        raise ValueError(
            "head_init='probe' needs a network whose last layer is a Linear head; "
            f"{type(estimator.module_.backbone).__name__} has none. Use head_init='random'."
        )
    rows = np.asarray(estimator.train_indices_)
    paths = np.asarray(X, dtype=object)[rows]
    labels = np.asarray(estimator.classes_)[np.asarray(y)[rows]]
    probe = _probe_estimator(estimator)
    with warnings.catch_warnings():
        # the fine-tune warns about its own data and training; the probe's would repeat it
        warnings.simplefilter("ignore")
        probe.fit(list(paths), labels)
    solved = probe.module_.head
    with torch.no_grad():
        head.weight.copy_(solved.weight.to(head.weight))
        if head.bias is not None and solved.bias is not None:
            head.bias.copy_(solved.bias.to(head.bias))
    return probe


def _probe_estimator(estimator):
    """An unfitted estimator of ``estimator``'s parameters that solves the frozen head of
    its freshly built body (copied, with its normalization)."""
    from sklearn.base import clone

    params = {
        name: clone(value, safe=False)
        for name, value in estimator.get_params(deep=False).items()
        # the copied body is built already; "_"-names are others' bookkeeping (sklearn's)
        if not name.startswith(("module__", "_"))
    }
    model = estimator.module_
    params.update(
        _PROBE_SETTINGS,
        module=copy.deepcopy(model.backbone),
        normalize=(tuple(model.mean.flatten().tolist()), tuple(model.std.flatten().tolist())),
    )
    return type(estimator)(**params)
