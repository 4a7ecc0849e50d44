"""The positive class of a binary problem: one rule for every binary notion.

With ``pos_label=None`` (the default everywhere) the positive class is the
**rarer class of the training labels**; on a tie it is the later class,
``classes_[-1]`` (scikit-learn's convention: ``pos_label=1`` for labels 0/1). A
label given as ``pos_label`` names it instead. It is what the estimator's
``monitor`` (F1, precision, recall, average precision of that class), its
``threshold`` (applied to that class's probability) and a float ``alpha`` (that
class's weight) refer to, and what ``compare``, the report, the CLI and
``ImbalanceSearchCV``'s scorers score. Multi-class problems have no positive
class: their metrics average over the classes, and a ``pos_label`` is an error.

With class folders ``abnormal/`` (rare) and ``normal/``, ``classes_`` is
``['abnormal', 'normal']`` and the positive class is ``'abnormal'``, not
``classes_[1]``.

The function lives in :mod:`imbal_estimators.data.labels` because the class
weights (:mod:`imbal_estimators.imbalance`, a sibling of this subpackage that
may not import it) need it too; this module is its name in the decision layer.
"""

from ..data.labels import resolve_pos_label

__all__ = ["resolve_pos_label"]
