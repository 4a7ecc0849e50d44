"""What a saved file may name: an allow-list checked on the text before anything is imported.

A saved model's ``config.json`` names classes and functions as ``"module:qualname"``.
Importing a module runs its code, so the name is checked first, as a string:

* no part of the module path or of the object's name may be a dunder (``__main__``,
  ``__init__``, ``__builtins__``): ``torch.utils.model_dump.__main__`` is a program that
  runs when imported;
* its module must belong to a package that imbal_estimators itself imports (torch,
  torchvision, skorch, scikit-learn, imbalanced-learn, imbal_estimators), and that package
  must already be imported (so a ``torch.py`` in the working directory cannot stand in);
* the module itself must be one of the package's own modules, already imported, or one of
  :data:`IMPORTABLE_PACKAGES` or a module these import: an exact list, so a module that
  runs a program or parses ``sys.argv`` when imported (``torch.utils.bottleneck``,
  ``torch.testing._internal.common_utils``) is never imported;
* a function must be one of :data:`ALLOWED_FUNCTIONS` or a public function of
  ``sklearn.metrics`` (the scoring functions skorch's ``EpochScoring`` takes);
* names of version 0.1 (``imbal_estimators.classifier:...``) are mapped to where the code
  lives now (:func:`imbal_estimators.io.legacy.new_module_name`), on the string.

Only then is the module imported; the object is looked up in the module's and classes'
namespaces (no module ``__getattr__`` runs, so no lazy submodule is imported), and must
be of a kind that loading builds or refers to (torch modules, optimizers, schedulers,
datasets and data loaders, scikit-learn estimators and samplers, skorch callbacks).
skorch's ``LoadInitState`` is refused: it unpickles files when training begins.
``trusted=True`` skips every check.
"""

import importlib
import inspect
import re
import sys

from .legacy import new_module_name

#: top-level packages whose modules a saved file may name
ALLOWED_PACKAGES = ("imbal_estimators", "imblearn", "sklearn", "skorch", "torch", "torchvision")

#: functions a saved file may name (skorch callbacks' defaults)
ALLOWED_FUNCTIONS = frozenset(
    {
        "builtins:print",
        "skorch.utils:noop",
        "skorch.utils:to_numpy",
        "skorch.utils:to_tensor",
        "skorch.utils:freeze_parameter",
        "skorch.utils:unfreeze_parameter",
        "skorch.scoring:loss_scoring",
    }
)

#: the estimator classes ``load`` builds without ``trusted=True``
ALLOWED_ESTIMATORS = frozenset({"imbal_estimators.estimator.classifier:ImageImbalanceClassifier"})

#: packages that ``load`` may import to find a name a saved file gives (reviewed: importing
#: them defines classes and runs no program); any of their modules they import is allowed too
IMPORTABLE_PACKAGES = (
    "imblearn",
    "imblearn.combine",
    "imblearn.ensemble",
    "imblearn.over_sampling",
    "imblearn.under_sampling",
    "sklearn.cluster",
    "sklearn.ensemble",
    "sklearn.linear_model",
    "sklearn.metrics",
    "sklearn.model_selection",
    "sklearn.neighbors",
    "sklearn.svm",
    "sklearn.tree",
    "skorch",
    "skorch.callbacks",
    "torch",
    "torch.nn",
    "torch.optim",
    "torch.optim.lr_scheduler",
    "torch.utils.data",
    "torchvision",
    "torchvision.models",
)

_NAME = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")

_TRUST_HINT = "If you trust the file (you saved it yourself), pass trusted=True."


class UntrustedReferenceError(ValueError):
    """A saved file names something that ``load`` does not import or build unless trusted."""


def split_reference(text):
    """``(module, qualname)`` of ``"module:qualname"``, with 0.1 module names mapped."""
    if not isinstance(text, str) or not _NAME.match(text):
        raise UntrustedReferenceError(
            f"The saved file names {text!r}, which is not a 'module:qualname' reference."
        )
    module, _, qualname = text.partition(":")
    return new_module_name(module) or module, qualname


def check_reference(text, kind):
    """Refuse ``text`` unless the allow-list admits it; nothing is imported.

    Parameters
    ----------
    text : str
        ``"module:qualname"``.
    kind : {"estimator", "build", "refer"}
        The estimator class of the file, a class built from its arguments, or a
        class or function a parameter refers to.

    Returns
    -------
    module, qualname : str
    """
    module, qualname = split_reference(text)
    _refuse_dunders(text, module, qualname)
    name = f"{module}:{qualname}"
    if kind == "estimator":
        if name not in ALLOWED_ESTIMATORS:
            raise UntrustedReferenceError(
                f"The saved file names the estimator {text!r}; load builds "
                f"{sorted(ALLOWED_ESTIMATORS)} only (a subclass lives in your own code, "
                f"which loading does not import). {_TRUST_HINT}"
            )
        return module, qualname
    if name in ALLOWED_FUNCTIONS:
        return module, qualname
    top = module.split(".")[0]
    if top not in ALLOWED_PACKAGES or top not in sys.modules:
        raise UntrustedReferenceError(
            f"The saved file names {text!r}, which is not on the allow-list of what loading "
            f"imports: modules of {', '.join(ALLOWED_PACKAGES)} (importing any other module "
            f"runs its code). {_TRUST_HINT}"
        )
    return module, qualname


def _refuse_dunders(text, module, qualname):
    dunders = [p for p in (*module.split("."), *qualname.split(".")) if p.startswith("__")]
    if dunders:
        raise UntrustedReferenceError(
            f"The saved file names {text!r}, whose part {dunders[0]!r} is a dunder name: "
            "loading imports no '__main__' module (a program that runs when imported) and "
            f"looks up no special attribute. {_TRUST_HINT}"
        )


def _check_module_importable(text, module):
    """Refuse ``module`` unless it is exactly allowed; may import an IMPORTABLE_PACKAGES entry."""
    if module in sys.modules or module.split(".")[0] == "imbal_estimators":
        return
    parents = [p for p in IMPORTABLE_PACKAGES if module == p or module.startswith(p + ".")]
    for package in sorted(parents, key=len):
        importlib.import_module(package)
    if module not in sys.modules:
        raise UntrustedReferenceError(
            f"The saved file names {text!r}, whose module {module!r} is not one that loading "
            f"imports: it must be a module of imbal_estimators, one already imported, or one "
            f"that {', '.join(IMPORTABLE_PACKAGES[:3])} ... "
            "(io.references.IMPORTABLE_PACKAGES) import themselves (another module may run "
            f"a program when imported). {_TRUST_HINT}"
        )


def import_reference(module, qualname):
    """The object ``qualname`` of ``module`` (imports the module).

    Raises
    ------
    ImportError
        The module cannot be imported or has no such object; the message names both.
    """
    try:
        obj = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        if module == "__main__":  # defined in the script that saved the model
            raise ImportError(
                f"The saved file names {module}:{qualname}, a class of the script that saved "
                f"the model, which only that script defines: move {qualname} into a module "
                "of its own, import it from there, and fit and save again."
            ) from exc
        raise ImportError(
            f"The saved file names {module}:{qualname}, which cannot be imported here "
            f"({type(exc).__name__}: {exc}): install its package, or run from the folder "
            "that holds it (or add that folder to PYTHONPATH)."
        ) from exc
    except Exception as exc:  # importing runs the module: a SyntaxError, its own error
        raise ImportError(
            f"The saved file names {module}:{qualname}; importing {module!r} raised "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    return obj


def _lookup(text, module, qualname):
    """The object ``qualname`` of the imported ``module``, read from namespaces only."""
    obj = sys.modules[module]
    for part in qualname.split("."):
        try:
            obj = inspect.getattr_static(obj, part)
        except AttributeError:
            raise UntrustedReferenceError(
                f"The saved file names {text!r}, but {module!r} has no {qualname!r}."
            ) from None
        if isinstance(obj, (staticmethod, classmethod)):
            obj = obj.__func__
    return obj


def _bases(kind):
    from sklearn.base import BaseEstimator
    from skorch.callbacks import Callback
    from skorch.dataset import ValidSplit
    from torch import nn, optim
    from torch.utils import data

    built = (nn.Module, BaseEstimator, Callback, ValidSplit)
    if kind == "build":
        return built
    scheduler = optim.lr_scheduler
    referred = (optim.Optimizer, scheduler.LRScheduler, scheduler.ReduceLROnPlateau)
    return (*built, *referred, data.Dataset, data.DataLoader)


def _is_metric_function(module, qualname, obj):
    if not module.startswith("sklearn.metrics") or "." in qualname:
        return False
    import sklearn.metrics

    return qualname in sklearn.metrics.__all__ and getattr(sklearn.metrics, qualname) is obj


def resolve_reference(text, kind, trusted=False):
    """The object ``text`` names, checked against the allow-list unless ``trusted``.

    Raises
    ------
    UntrustedReferenceError
        Before any import when the text is not allowed; after it when the object
        is not of a kind loading builds or refers to. The message names ``text``.
    """
    if trusted:
        return import_reference(*split_reference(text))
    module, qualname = check_reference(text, kind)
    _check_module_importable(text, module)
    importlib.import_module(module)
    obj = _lookup(text, module, qualname)
    if kind == "estimator" or (kind == "refer" and f"{module}:{qualname}" in ALLOWED_FUNCTIONS):
        return obj
    if inspect.isclass(obj) and issubclass(obj, _bases(kind)):
        from skorch.callbacks import LoadInitState

        if issubclass(obj, LoadInitState):
            raise UntrustedReferenceError(
                f"The saved file names {text!r}: LoadInitState loads files with torch.load "
                f"(pickle) when training begins. {_TRUST_HINT}"
            )
        return obj
    if kind == "refer" and _is_metric_function(module, qualname, obj):
        return obj
    raise UntrustedReferenceError(
        f"The saved file names {text!r}, which is not a class of a kind that loading "
        + ("builds" if kind == "build" else "refers to")
        + " (torch modules, optimizers, schedulers, datasets and data loaders, scikit-learn "
        "estimators and samplers, skorch callbacks) nor an allowed function: a file could "
        f"name any function and its arguments. {_TRUST_HINT}"
    )


def resolve_network_reference(text):
    """The user's network class that a saved model's ``network.module`` names.

    The one reference outside the allow-list that ``load`` imports without
    ``trusted=True``: the ``module=`` network the model was saved with (the user
    named it, e.g. ``--module package.module:Class``). Its module must be importable
    here (found on ``sys.path``), outside the standard library, with no dunder or
    private part, and the object must be an ``nn.Module`` subclass; anything else is
    refused before (or, for the class check, right after) the import.
    """
    import importlib.util

    module, qualname = split_reference(text)
    parts = [*module.split("."), *qualname.split(".")]
    top = parts[0]
    if any(part.startswith("_") for part in parts) or top in sys.stdlib_module_names:
        raise UntrustedReferenceError(
            f"The saved file names the network {text!r}, which is not a public class of a "
            f"package outside the standard library. {_TRUST_HINT}"
        )
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise UntrustedReferenceError(
            f"The saved model's network is {text!r}, but the module {module!r} cannot be "
            "imported here; make it importable (install it, or run from the folder that "
            "holds it) and load again."
        )
    obj = import_reference(module, qualname)
    from torch import nn

    if not (inspect.isclass(obj) and issubclass(obj, nn.Module)):
        raise UntrustedReferenceError(
            f"The saved file names the network {text!r}, which is not an nn.Module class. "
            f"{_TRUST_HINT}"
        )
    return obj
