"""Train only the classification head of a backbone (``--freeze-backbone``)."""

from skorch.callbacks import Callback
from torch import nn


def head_of(module):
    """The last layer with weights of ``module`` (a Linear or Conv2d): its head."""
    head = None
    for layer in module.modules():
        if isinstance(layer, nn.Linear | nn.Conv2d):
            head = layer
    if head is None:
        raise ValueError(f"{type(module).__name__} has no Linear or Conv2d layer to train.")
    return head


class FreezeBackbone(Callback):
    """Freeze every weight of the network except its head, at the start of each fit.

    The frozen weights get no gradient, so the optimizer leaves them unchanged
    (BatchNorm layers still update their running statistics in training mode).
    Fitting only the head of a pretrained backbone is fast and works well with
    few images; from random weights (``weights=None``) it learns little.
    """

    def on_train_begin(self, net, **kwargs):
        head = head_of(net.module_)
        for parameter in net.module_.parameters():
            parameter.requires_grad_(False)
        for parameter in head.parameters():
            parameter.requires_grad_(True)
