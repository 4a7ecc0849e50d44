"""A fine-tuned network's new head learns at a multiple of the body's learning rate.

The body of a pretrained network needs small steps, not to lose what it learned; its
new head starts untrained (or at the linear probe's solution, ``head_init``) and,
at the body's ``lr``, moves little in the few hundred steps of a small data set.
Fine-tuning recipes give it a larger rate (fastai's discriminative learning rates,
a "10x head" in many timm and torchvision fine-tuning scripts): ``head_lr_scale``
times ``lr`` for the head's weights and bias, ``lr`` for the rest.
"""

from .probe_head import linear_head

__all__ = ["AUTO_HEAD_LR_SCALE", "head_lr_scale", "scaled_head_groups"]

#: the head's multiple of ``lr`` that ``head_lr_scale="auto"`` gives a pretrained network
AUTO_HEAD_LR_SCALE = 10.0


def head_lr_scale(net):
    """The multiple of ``lr`` that ``net``'s head trains at (1.0: the body's rate).

    ``"auto"``: :data:`AUTO_HEAD_LR_SCALE` for a pretrained network that is
    fine-tuned (:func:`~imbal_estimators.models.backbones.is_pretrained`), 1.0 for a
    random initialization and for a frozen backbone (only the head trains).
    """
    from ..models.backbones import is_pretrained

    if net.freeze_backbone:
        return 1.0
    scale = getattr(net, "head_lr_scale", 1.0)
    if scale == "auto":
        return AUTO_HEAD_LR_SCALE if is_pretrained(net.weights, net.module) else 1.0
    return float(scale)


def scaled_head_groups(net, args, kwargs):
    """skorch's optimizer ``(args, kwargs)`` with the head's parameters in groups of
    their own at ``head_lr_scale`` times their group's ``lr``."""
    scale = head_lr_scale(net)
    head = linear_head(net) if scale != 1.0 else None
    if head is None:
        return args, kwargs
    in_head = {id(param) for param in head.parameters()}
    groups = []
    for group in args[0]:
        params = list(group["params"])
        body = [p for p in params if id(p) not in in_head]
        top = [p for p in params if id(p) in in_head]
        if body:
            groups.append({**group, "params": body})
        if top:
            groups.append({**group, "params": top, "lr": group.get("lr", kwargs["lr"]) * scale})
    return (groups, *args[1:]), kwargs
