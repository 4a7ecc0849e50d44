"""Hyperparameter search: ``ImbalanceSearchCV`` on Optuna, its spaces, studies and pruning.

The only subpackage besides :mod:`imbal_estimators.app` that imports Optuna.
"""

# 0.1 had a module ``imbal_estimators.search``; its names stay importable from here.
from .cv import ImbalanceSearchCV  # noqa: F401
