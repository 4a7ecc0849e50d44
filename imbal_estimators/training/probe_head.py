"""LP-FT: a fine-tuned network's new head starts at the linear probe's solution.

Fine-tuning a pretrained body under a new, randomly initialized head first spends
its steps (and distorts the body's features) fitting that head (Kumar et al., ICLR
2022, "Fine-Tuning can Distort Pretrained Features and Underperform
Out-of-Distribution"). With ``head_init="probe"`` the head is first solved to
convergence on the frozen body's features of the fit's own training rows, with
the configuration's own loss, class weights and sampler
(:mod:`~imbal_estimators.training.head_solver`, its penalty picked by k-fold CV
over those rows), and the whole network is then fine-tuned from there.

The probe is an estimator of the same parameters with ``freeze_backbone=True``
whose ``module`` is a copy of this fit's freshly built body, so its features are
those of the very weights fine-tuning starts from (a random body too). It never
sees the validation rows: they still pick the kept epoch and the threshold.
"""

import copy
import warnings

import numpy as np
import torch
from skorch.callbacks import Callback

__all__ = [
    "HEAD_INIT_OPTIONS",
    "ProbeHead",
    "probes_head",
    "linear_head",
    "start_from_probe",
    "started_from_probe",
]

HEAD_INIT_OPTIONS = ("auto", "probe", "random")

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


def probes_head(net):
    """Whether ``net``'s fit starts its head from the linear probe.

    ``head_init="auto"`` does for a network that is fine-tuned (not
    ``freeze_backbone``) from pretrained weights, as ``compare`` decides it
    (:func:`~imbal_estimators.models.backbones.is_pretrained`: a backbone's
    weights or a weights file; a user ``module`` unless its class sets
    ``pretrained = False``); a random initialization (``weights=None``,
    ``small_cnn``) keeps its random head.
    """
    from ..models.backbones import is_pretrained

    if net.freeze_backbone:
        return False
    choice = getattr(net, "head_init", "random")
    if choice == "auto":
        return is_pretrained(net.weights, net.module)
    return choice == "probe"


class ProbeHead(Callback):
    """Solves the linear probe and loads it into the new head as training begins.

    Only on a fit that builds a new network: a continued fit (``partial_fit``,
    ``warm_start``) or one resumed from a checkpoint keeps its trained head.
    """

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self.probed_ = False  # whether this fit's head started from the probe
        if not probes_head(net) or len(net.history) or net.__dict__.get("resumed_from_epoch_"):
            return
        if net.head_init == "auto" and linear_head(net) is None:
            return  # a network without a Linear head to solve keeps its own start
        start_from_probe(net, X, y)
        self.probed_ = True


def started_from_probe(net):
    """Whether ``net``'s last fit started its head from the probe."""
    callback = dict(getattr(net, "callbacks_", None) or []).get("probe_head")
    return bool(getattr(callback, "probed_", False))


def linear_head(net):
    """The built network's head where it is a Linear layer (else None)."""
    from ..models.backbones import find_head

    try:
        _, head = find_head(net.module_.backbone)
    except ValueError:
        return None
    return head if isinstance(head, torch.nn.Linear) else None


def start_from_probe(net, X, y):
    """Fit the probe on ``net``'s training rows of paths ``X`` (encoded labels ``y``)
    and copy its head into ``net``'s new head; returns the probe."""
    if linear_head(net) is None:
        raise ValueError(
            f"head_init='probe' needs a network whose last layer is a Linear head; "
            f"{type(net.module_.backbone).__name__} has none. Use head_init='random'."
        )
    rows = np.asarray(net.train_indices_)
    paths = np.asarray(X, dtype=object)[rows]
    labels = np.asarray(net.classes_)[np.asarray(y)[rows]]
    probe = _probe_estimator(net)
    with warnings.catch_warnings():
        # the fine-tune warns about its own data and training; the probe's would repeat it
        warnings.simplefilter("ignore")
        probe.fit(list(paths), labels)
    head, solved = linear_head(net), probe.module_.head
    with torch.no_grad():
        head.weight.copy_(solved.weight.to(head.weight))
        if head.bias is not None and solved.bias is not None:
            head.bias.copy_(solved.bias.to(head.bias))
    return probe


def _probe_estimator(net):
    """An unfitted estimator of ``net``'s parameters that solves the frozen head of
    ``net``'s freshly built body (copied, with its normalization)."""
    from sklearn.base import clone

    params = {
        name: clone(value, safe=False)
        for name, value in net.get_params(deep=False).items()
        # the copied body is built already; "_"-names are others' bookkeeping (sklearn's)
        if not name.startswith(("module__", "_"))
    }
    model = net.module_
    params.update(
        _PROBE_SETTINGS,
        module=copy.deepcopy(model.backbone),
        normalize=(tuple(model.mean.flatten().tolist()), tuple(model.std.flatten().tolist())),
    )
    return type(net)(**params)
