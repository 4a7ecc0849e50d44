"""Losses: each is a function doing the math in log space plus a thin ``nn.Module``.

* :mod:`.focal` -- focal loss (Lin et al. 2017)
* :mod:`.balanced` -- class-balanced focal, LDAM, logit-adjusted, Balanced Softmax
* :mod:`.registry` -- the one table of loss names (``loss="focal"``) and ``get_loss``
"""

# 0.1 had a module ``imbal_estimators.losses``; its names stay importable from here.
from .registry import COUNTS_SEEN, LOSSES, FocalLoss, focal_loss, get_loss  # noqa: F401
