"""Old module paths of version 0.1, so pickles and saved models written by 0.1 still load.

Version 0.1 kept every module in one flat folder (``imbal_estimators.classifier``,
``imbal_estimators.focal``, ...). A pickle names the module of each class it holds, and a
saved model's ``config.json`` names the estimator as ``module:qualname``. The finder below
answers an import of an old path with the module that now holds the same code, so
``pickle.load`` and :func:`imbal_estimators.load` find the classes where they live now.
"""

import importlib
import importlib.abc
import importlib.util
import sys

PACKAGE = "imbal_estimators"

#: old module (0.1) -> the module that holds its code now
MODULE_ALIASES = {
    "alpha": "imbalance.class_weights",
    "atomic": "io.atomic",
    "backbones": "models.backbones",
    "cache": "data.cache",
    "callbacks": "training.callbacks",
    "checkpoint": "training.checkpoint",
    "classifier": "estimator.classifier",
    "cli": "app.cli",
    "compare": "app.compare",
    "corrections": "imbalance.corrections",
    "datasets": "data.demo",
    "evaluation": "decision.evaluation",
    "features": "models.features",
    "focal": "losses.focal",
    "jsonable": "io.jsonable",
    "losses_balanced": "losses.balanced",
    "memory": "training.memory",
    "metrics": "decision.metrics",
    "persistence": "estimator.persistence",
    "plots": "app.plots",
    "posthoc": "decision.posthoc",
    "precision": "training.precision",
    "preflight": "data.preflight",
    "report": "app.report",
    "sampling": "imbalance.samplers",
    "search_space": "search.space",
    "small_cnn": "models.small_cnn",
    "split": "training.split",
    "studies": "search.studies",
    "tta": "data.tta",
    "validation": "data.labels",
}
# ``imbal_estimators.data``, ``.losses`` and ``.search`` were modules and are packages now;
# each package re-exports the names the old module had.


def new_module_name(old_name):
    """The module that now holds the code of the 0.1 module ``old_name``, or ``None``."""
    prefix = PACKAGE + "."
    if not old_name.startswith(prefix):
        return None
    new = MODULE_ALIASES.get(old_name[len(prefix) :])
    return None if new is None else prefix + new


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target):
        self.target = target

    def create_module(self, spec):
        return importlib.import_module(self.target)

    def exec_module(self, module):
        pass  # the target module is already executed


class LegacyModuleFinder(importlib.abc.MetaPathFinder):
    """Resolves an import of a 0.1 module path to the module of version 0.2."""

    def find_spec(self, fullname, path=None, target=None):
        new = new_module_name(fullname)
        if new is None:
            return None
        return importlib.util.spec_from_loader(fullname, _AliasLoader(new))


def install():
    """Put the finder on ``sys.meta_path`` (once)."""
    if not any(isinstance(finder, LegacyModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(LegacyModuleFinder())
