"""A pretrained body's BatchNorm statistics, kept while the network is fine-tuned.

In training mode a BatchNorm layer normalizes by the statistics of the batch and
moves its running statistics towards them. For a pretrained body fine-tuned on a
few hundred images of another domain, in batches of 32, that replaces the
statistics learned on millions of images with noisy ones of a small sample at the
first step: the features every later layer (and the head) was trained on shift,
before any weight has learned anything. With ``freeze_norm`` the BatchNorm layers
stay in eval mode during fine-tuning (their scale and shift still train), as
Keras's transfer-learning guide advises for fine-tuning and detection libraries
do with ``FrozenBatchNorm`` at small batch sizes; a linear probe solved on the
frozen features (``head_init="probe"``) then sees at the first step the very
features it was solved on.
"""

from torch import nn

__all__ = ["freezes_norm", "keep_norm_statistics"]


def freezes_norm(net):
    """Whether ``net`` fine-tunes with its BatchNorm statistics frozen.

    ``freeze_norm="auto"`` does for a pretrained network (as ``compare`` decides it:
    :func:`~imbal_estimators.models.backbones.is_pretrained`) that is fine-tuned;
    a random initialization learns its statistics (False). With
    ``freeze_backbone`` the whole body is in eval mode anyway.
    """
    from ..models.backbones import is_pretrained

    if net.freeze_backbone:
        return False
    choice = getattr(net, "freeze_norm", False)
    if choice == "auto":
        return is_pretrained(net.weights, net.module)
    return bool(choice)


def keep_norm_statistics(model):
    """Put every BatchNorm layer of ``model`` in eval mode (the rest keeps its mode)."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()
    return model
