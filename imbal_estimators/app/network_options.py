"""The command line's network options: ``--module``, ``--normalize``, the small CNN's
defaults, and the message when pretrained weights cannot be downloaded.

``--module package.module:Class`` imports your network because you asked for it; the
working directory is searched too (after the installed packages), as ``python -m``
would. The small CNN trains from scratch; left unset, its learning rate, epochs and
image size are :data:`SMALL_CNN_DEFAULTS` (measured in ``docs/guide.md``), not the
estimator's defaults for a pretrained ResNet.
"""

import argparse
import importlib
import importlib.util
import math
import os
import re
import sys

from ..models.normalization import NORMALIZATIONS
from ..utils.text import first_line

#: the small CNN's settings when the command line leaves them unset
SMALL_CNN_DEFAULTS = {"image_size": 32, "lr": 3e-3, "max_epochs": 10}
#: the offline recipe on a CPU, as command-line words
SMALL_CNN_WORDS = "--backbone small_cnn --weights none --image-size 32"

_REFERENCE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def module_reference(text):
    """argparse type of ``--module``: a ``package.module:Class`` string (imported later)."""
    if not _REFERENCE.match(text):
        raise argparse.ArgumentTypeError(
            f"expected package.module:Class (your nn.Module subclass), got {text!r}"
        )
    return text


def import_module_class(text):
    """The ``nn.Module`` class ``--module`` names; a ValueError naming the option if not."""
    from torch import nn

    module_name, _, qualname = text.partition(":")
    search_working_directory()
    try:
        obj = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        hint = _shadowed(module_name.split(".")[0]) or (
            "install the package or run from the folder that holds it."
        )
        raise ValueError(
            f"--module {text!r}: cannot import it ({type(exc).__name__}: {exc}); {hint}"
        ) from None
    except Exception as exc:  # the user's module ran and failed: a SyntaxError, its own error
        raise ValueError(
            f"--module {text!r}: importing it raised {type(exc).__name__}: {exc}"
        ) from None
    if not (isinstance(obj, type) and issubclass(obj, nn.Module)):
        raise ValueError(f"--module {text!r} is not an nn.Module subclass.")
    return obj


def _shadowed(top):
    """Why ``top`` in the working directory is not the module imported (another one of
    that name comes first on ``sys.path``, the standard library's above all), or None."""
    if top in sys.stdlib_module_names:
        return (
            f"{top!r} is also a module of Python's standard library, which is found "
            "first; rename your file or package."
        )
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    origin = getattr(spec, "origin", None) or ""
    here = os.getcwd()
    local = os.path.exists(os.path.join(here, top + ".py")) or os.path.isdir(
        os.path.join(here, top)
    )
    if local and origin and not os.path.abspath(origin).startswith(here + os.sep):
        return (
            f"another {top!r} comes first on the import path ({origin}), before the one in "
            "this folder; rename your file or package."
        )
    return None


def search_working_directory():
    """Let imports find modules in the working directory, after the installed packages
    (so a file there cannot stand in for torch), as the user's ``--module`` needs."""
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())


def normalize_option(text):
    """argparse type of ``--normalize``: auto, a name, none or six numbers."""
    lowered = text.lower()
    if lowered in ("auto", *NORMALIZATIONS):
        return lowered
    if lowered == "none":
        return None
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 6 or not all(map(math.isfinite, values)) or min(values[3:]) <= 0:
        raise argparse.ArgumentTypeError(
            "expected auto, imagenet, inception, none or six numbers "
            f"'mean1,mean2,mean3,std1,std2,std3' (finite, std > 0), got {text!r}"
        )
    return (tuple(values[:3]), tuple(values[3:]))


def add_network_options(group):
    """``--module`` and ``--normalize``."""
    from ..models.normalization import NORMALIZE_HELP

    group.add_argument(
        "--module",
        type=module_reference,
        metavar="PACKAGE.MODULE:CLASS",
        help="your own network (an nn.Module subclass taking num_classes), imported from "
        "an installed package or the working directory; replaces --backbone",
    )
    group.add_argument("--normalize", type=normalize_option, default="auto", help=NORMALIZE_HELP)


def network_params(args, params):
    """Add ``module``, ``normalize`` and the small CNN's defaults to ``params``."""
    text = getattr(args, "module", None)
    if text is not None:
        if getattr(args, "backbone", None) is not None:
            raise ValueError(
                f"--module {text!r} and --backbone {args.backbone!r} both name the network; "
                "--module replaces --backbone, so give one of them."
            )
        params["module"] = import_module_class(text)
    if getattr(args, "normalize", "auto") != "auto":
        params["normalize"] = args.normalize
    if params.get("module") is None and params.get("backbone") == "small_cnn":
        for name, value in SMALL_CNN_DEFAULTS.items():
            params.setdefault(name, value)
        params.setdefault("weights", None)  # it has no pretrained weights
    return params


def small_cnn_seconds(paths, labels, *, cv, methods=None, ensemble=3, random_state=0):
    """The plan's estimated seconds of ``compare`` with the small CNN recipe on this folder
    (a probe of a few seconds), or None when it cannot be had."""
    import numpy as np

    from . import plan as planning
    from .methods import default_configurations

    params = {"backbone": "small_cnn", "weights": None, **SMALL_CNN_DEFAULTS}
    params.update(verbose=0, random_state=random_state)
    try:
        configs = default_configurations(methods, max_epochs=params["max_epochs"], features=False)
        configs = tuple(c for c in configs if not c.needs_features)
        plan = planning.Plan(
            configurations=configs, cv=cv, max_epochs=params["max_epochs"], refits=ensemble
        )
        probe = planning.run_probe(np.asarray(paths, dtype=object), np.asarray(labels), params)
        counts = np.unique(labels, return_counts=True)[1]
        return planning.estimate(plan, probe, planning.Workload(len(paths), counts))
    except Exception:  # an estimate is a courtesy: the message goes out without it
        return None


def offline_message(command, exc):
    """One message, in the command line's options, for weights that cannot be downloaded
    (with the small CNN's estimated time where ``exc.small_cnn_seconds`` holds it)."""
    from .plan import format_duration

    backbone = getattr(exc, "backbone", "the backbone")
    seconds = getattr(exc, "small_cnn_seconds", None)
    when = f" (about {format_duration(seconds)} for this folder)" if seconds else ""
    reason = first_line(exc.__cause__ or exc, 160)
    return (
        f"{command}: error: the pretrained weights of --backbone {backbone} cannot be "
        f"downloaded (no internet? {reason}). Ways out: a weights file, --weights "
        f"PATH.pth (a state dict of {backbone} saved on a machine that can download it); "
        "a timm network with a weights file, --backbone timm/NAME --weights PATH, or your "
        "own network, --module package.module:Class; or a small network trained from "
        f"scratch on this CPU: {SMALL_CNN_WORDS}{when}."
    )
