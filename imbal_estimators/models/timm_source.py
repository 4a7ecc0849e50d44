"""timm models as backbones: ``backbone="timm/<name>"``.

timm is an optional dependency (``pip install "imbal-estimators[timm]"``), imported
only when a ``timm/`` name is used. ``<name>`` is anything ``timm.create_model``
takes: a model name (``"efficientnet_lite0"``), a name with a pretrained tag
(``"resnet18.a1_in1k"``) or a Hugging Face hub name (``"hf-hub:timm/resnet18.a1_in1k"``,
which timm resolves over the network). A model's own preprocessing comes from its
``pretrained_cfg`` (:func:`timm.data.resolve_data_config`).
"""

import contextlib
import http.client
import importlib
import logging
import socket
import urllib.error
import urllib.parse
import urllib.request

from ..utils.text import first_line

PREFIX = "timm/"
INSTALL_HINT = 'pip install "imbal-estimators[timm]" (or pip install timm)'


def is_timm_name(name):
    """Whether the backbone name ``name`` asks for a timm model."""
    return isinstance(name, str) and name.startswith(PREFIX)


def import_timm(name=None):
    """The ``timm`` package, or an ImportError that says how to install it."""
    try:
        return importlib.import_module("timm")
    except ImportError:
        what = f"backbone={name!r} needs" if name else "timm backbones need"
        raise ImportError(
            f"{what} the timm package, which is not installed: {INSTALL_HINT}."
        ) from None


def model_name(name):
    """The name ``timm.create_model`` takes: ``name`` without the ``timm/`` prefix."""
    return name[len(PREFIX) :]


def timm_names():
    """Every ``timm/`` backbone name of the installed timm (none without timm)."""
    try:
        timm = importlib.import_module("timm")
    except ImportError:
        return []
    return [PREFIX + n for n in timm.list_models()]


def is_known(name):
    """Whether timm knows ``name`` (a ``timm/`` name) without reaching the network: a
    registered model, with or without a pretrained tag, or a hub name (resolved when built)."""
    timm = import_timm(name)
    rest = model_name(name)
    if rest.startswith(("hf-hub:", "local-dir:")):
        return True
    if not rest or not timm.is_model(rest):
        return False
    architecture, _, tag = rest.partition(".")
    return not tag or rest in timm.list_pretrained(architecture + ".*")


def pretrained_names(name):
    """The ``timm/`` names of the pretrained tags of ``name``'s architecture."""
    timm = import_timm(name)
    architecture = model_name(name).partition(".")[0]
    return [PREFIX + n for n in timm.list_pretrained(architecture + ".*")]


def create(name, n_classes, pretrained=False, **kwargs):
    """``timm.create_model`` for the ``timm/`` name ``name`` with an ``n_classes`` head.

    Raises
    ------
    ValueError
        A ``timm/hf-hub:`` name whose configuration cannot be fetched (offline): such
        a network is defined on the Hub, so a weights file alone cannot stand in.
    """
    timm = import_timm(name)
    fetches = pretrained or model_name(name).startswith("hf-hub:")
    try:
        with _quiet_hub(), _cache_only_when_unreachable(fetches):
            return timm.create_model(
                model_name(name), pretrained=pretrained, num_classes=n_classes, **kwargs
            )
    except OSError as exc:  # huggingface_hub's errors for an unreachable Hub are OSErrors
        if not model_name(name).startswith("hf-hub:"):
            raise
        raise ValueError(
            f"backbone {name!r} is defined by its configuration on the Hugging Face Hub, "
            f"which cannot be read ({type(exc).__name__}: {first_line(exc, 160)}). Offline, "
            "name its timm architecture instead, with a weights file: "
            "backbone='timm/ARCHITECTURE', weights='PATH' (--backbone timm/ARCHITECTURE "
            "--weights PATH), or train a small network from scratch: --backbone small_cnn "
            "--weights none --image-size 32."
        ) from exc


def data_config(model):
    """The model's preprocessing from its ``pretrained_cfg``: mean, std, input size,
    interpolation, crop fraction."""
    from timm.data import resolve_data_config

    return resolve_data_config({}, model=model)


def pretrained_origin(name):
    """A key for the pretrained weights of the ``timm/`` name ``name``."""
    timm = import_timm(name)
    return f"timm {timm.__version__} pretrained {model_name(name)}"


def hub_unreachable(timeout=3.0):
    """Why the Hugging Face Hub cannot be reached, or None where it may be.

    Offline, ``huggingface_hub`` retries each file five times with a growing wait
    (about a minute, a log line each time) before it fails, and a proxy that never
    answers holds it longer. One ``HEAD`` request to the Hub (through the proxy the
    environment names, as huggingface_hub's own requests go) with a short timeout
    tells first: any answer, even an error status, means reachable.
    """
    try:
        from huggingface_hub import constants
    except ImportError:
        return None
    endpoint = urllib.parse.urlparse(constants.ENDPOINT)
    if endpoint.scheme not in ("http", "https") or not endpoint.hostname:
        return f"HF_ENDPOINT {constants.ENDPOINT!r} is not an http:// or https:// address"
    what = _first_hop(endpoint)
    if what is None:
        return None
    request = urllib.request.Request(constants.ENDPOINT, method="HEAD")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler())  # today's environment
    try:
        opener.open(request, timeout=timeout).close()
    except urllib.error.HTTPError:
        return None  # an answer
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, socket.gaierror):
            return f"{what} does not resolve ({reason.strerror})"
        return f"{what} does not answer ({first_line(reason, 80) or type(reason).__name__})"
    return None


def _first_hop(endpoint):
    """How messages name the first hop of a request to ``endpoint``: the proxy the
    environment names for its scheme (unless ``NO_PROXY`` spares the host), else the
    host itself; None for a proxy kind urllib cannot judge (SOCKS)."""
    host = endpoint.hostname
    proxy = urllib.request.getproxies().get(endpoint.scheme)
    if not proxy or urllib.request.proxy_bypass(host):
        return f"its host {host}"
    parsed = urllib.parse.urlparse(proxy if "://" in proxy else f"http://{proxy}")
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return None
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return f"the proxy {parsed.hostname}:{port}"


@contextlib.contextmanager
def _cache_only_when_unreachable(fetches):
    """Where the Hub cannot be reached (:func:`hub_unreachable`), ``huggingface_hub``'s
    offline mode inside the block: files already in its cache load, others fail at once
    (a ConnectionError that says why) instead of after a minute of retries."""
    unreachable = hub_unreachable() if fetches else None
    if unreachable is None:
        yield
        return
    from huggingface_hub import constants

    offline = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    except OSError as exc:
        raise ConnectionError(
            f"the Hugging Face Hub cannot be reached ({unreachable}) and the files are not "
            "in its local cache"
        ) from exc
    finally:
        constants.HF_HUB_OFFLINE = offline


@contextlib.contextmanager
def _quiet_hub():
    """``huggingface_hub``'s retry warnings off: a failure becomes one message of ours."""
    logger = logging.getLogger("huggingface_hub")
    level = logger.level
    logger.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        logger.setLevel(level)
