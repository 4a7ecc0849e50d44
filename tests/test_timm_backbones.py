"""timm backbones ("timm/<name>"), weights files for every source, normalize=, and a user
network that loads back without trusted=True."""

import json
import os
import sys

import numpy as np
import pytest
import torch
from conftest import FAST

from imbal_estimators import ImageImbalanceClassifier
from imbal_estimators.estimator.persistence import load
from imbal_estimators.io.references import UntrustedReferenceError
from imbal_estimators.models.backbones import (
    WeightsDownloadError,
    build_backbone,
    check_backbone_name,
)

timm = pytest.importorskip("timm")

TIMM = "timm/test_resnet"  # timm's own test network: 0.4 M weights, mean and std 0.5


@pytest.fixture
def timm_file(tmp_path):
    """A timm model's state dict in timm's key names (built without network)."""
    path = tmp_path / "test_resnet.pth"
    torch.save(timm.create_model("test_resnet", pretrained=False).state_dict(), path)
    return str(path)


def test_timm_name_with_a_weights_file_fits_predicts_saves_and_loads(
    tmp_path, binary_data, timm_file
):
    X, y = binary_data
    clf = ImageImbalanceClassifier(**{**FAST, "backbone": TIMM, "weights": timm_file})
    clf.fit(X, y)
    proba = clf.predict_proba(X)
    # the timm model's own normalization, from its pretrained_cfg
    assert clf.module_.mean.flatten().tolist() == [0.5, 0.5, 0.5]
    clf.save(tmp_path / "model")
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["preprocessing"]["mean"] == [0.5, 0.5, 0.5]
    assert config["preprocessing"]["std"] == [0.5, 0.5, 0.5]
    assert config["preprocessing"]["normalize"] == "inception"
    assert config["preprocessing"]["from"] == "the timm model's pretrained_cfg"
    assert config["network"] == {"backbone": TIMM, "weights": timm_file}
    loaded = load(tmp_path / "model")  # no trusted=True
    np.testing.assert_allclose(loaded.predict_proba(X), proba, rtol=1e-5, atol=1e-6)


def test_weights_file_body_is_loaded(timm_file):
    model, mean, std = build_backbone(TIMM, timm_file, 3)
    reference = torch.load(timm_file)
    assert torch.equal(model.conv1[0].weight, reference["conv1.0.weight"])
    assert model.get_classifier().out_features == 3
    assert mean == (0.5, 0.5, 0.5) and std == (0.5, 0.5, 0.5)


def test_weights_file_of_another_network_names_the_first_mismatches(timm_file):
    with pytest.raises(ValueError) as info:
        build_backbone("timm/test_efficientnet", timm_file, 2)
    message = str(info.value)
    assert "'timm/test_efficientnet'" in message and timm_file in message
    assert "missing (" in message and "unexpected (" in message and "more" in message
    assert len(message) < 800


def test_timm_pretrained_download_failure_is_a_weights_download_error():
    with pytest.raises(WeightsDownloadError, match="weights=None") as info:
        build_backbone(TIMM, "DEFAULT", 2)
    assert info.value.backbone == TIMM


def test_timm_weights_other_than_default_none_or_file_are_refused():
    clf = ImageImbalanceClassifier(**{**FAST, "backbone": TIMM, "weights": "IMAGENET1K_V1"})
    with pytest.raises(ValueError, match="pretrained tag goes in the name"):
        clf.fit(["a.png", "b.png"], [0, 1])


@pytest.mark.parametrize(
    "name, suggested",
    [
        ("resnet10t", "'timm/resnet10t'"),
        ("timm/resnt10t", "'timm/resnet10t'"),
        ("resnet43", "'resnet34'"),
    ],
)
def test_unknown_names_suggest_every_source_and_module(name, suggested):
    with pytest.raises(ValueError) as info:
        check_backbone_name(name)
    message = str(info.value)
    assert f"Unknown backbone {name!r}" in message and suggested in message
    assert "module=" in message and "--module package.module:YourNet" in message


def test_missing_timm_says_how_to_install(monkeypatch):
    from imbal_estimators.models import timm_source

    monkeypatch.setitem(sys.modules, "timm", None)  # import timm raises ImportError
    with pytest.raises(ImportError, match=r'pip install "imbal-estimators\[timm\]"'):
        check_backbone_name(TIMM)
    assert timm_source.timm_names() == []


@pytest.mark.parametrize(
    "normalize, mean, std",
    [
        ("imagenet", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ("inception", [0.5] * 3, [0.5] * 3),
        (None, [0.0] * 3, [1.0] * 3),
        (((0.1, 0.2, 0.3), (0.4, 0.5, 0.6)), [0.1, 0.2, 0.3], [0.4, 0.5, 0.6]),
    ],
)
def test_normalize_overrides_the_networks_own(binary_data, normalize, mean, std):
    X, y = binary_data
    clf = ImageImbalanceClassifier(**{**FAST, "backbone": "small_cnn", "normalize": normalize})
    clf.fit(X, y)
    np.testing.assert_allclose(clf.module_.mean.flatten().tolist(), mean, rtol=1e-6)
    np.testing.assert_allclose(clf.module_.std.flatten().tolist(), std, rtol=1e-6)


@pytest.mark.parametrize(
    "normalize",
    ["imagenett", (1, 2), ((0, 0, 0), (1, 0, 1)), ((float("nan"), 0, 0), (1, 1, 1))],
)
def test_bad_normalize_is_refused_before_training(binary_data, normalize):
    X, y = binary_data
    clf = ImageImbalanceClassifier(**{**FAST, "normalize": normalize})
    with pytest.raises(ValueError, match="normalize"):
        clf.fit(X, y)


NET_SOURCE = """
from torch import nn


class Net(nn.Module):
    def __init__(self, num_classes=2, width=4):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.fc(self.conv(x).mean(dim=(2, 3)))
"""


@pytest.fixture
def user_package(tmp_path, monkeypatch):
    """An importable package ``userpkg.nets`` with a network class ``Net``."""
    root = tmp_path / "src"
    (root / "userpkg").mkdir(parents=True)
    (root / "userpkg" / "__init__.py").write_text("")
    (root / "userpkg" / "nets.py").write_text(NET_SOURCE)
    monkeypatch.syspath_prepend(str(root))
    yield __import__("userpkg.nets", fromlist=["Net"])
    for name in ("userpkg.nets", "userpkg"):
        sys.modules.pop(name, None)


def test_user_module_named_at_save_loads_without_trusted(tmp_path, binary_data, user_package):
    X, y = binary_data
    clf = ImageImbalanceClassifier(**{**FAST, "module": user_package.Net, "lr": 0.05})
    clf.fit(X, y)
    clf.save(tmp_path / "model")
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["network"] == {"module": "userpkg.nets:Net"}
    loaded = load(tmp_path / "model")
    assert loaded.module is user_package.Net
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), rtol=1e-5)


def test_user_module_that_is_not_importable_is_refused(tmp_path, binary_data, user_package):
    X, y = binary_data
    clf = ImageImbalanceClassifier(**{**FAST, "module": user_package.Net}).fit(X, y)
    clf.save(tmp_path / "model")
    for name in ("userpkg.nets", "userpkg"):
        sys.modules.pop(name, None)
    sys.path.remove(next(p for p in sys.path if p.endswith(os.sep + "src")))
    with pytest.raises(UntrustedReferenceError, match="cannot be imported here"):
        load(tmp_path / "model")
    # trusted or not, the message names the network and the way out
    with pytest.raises(ImportError, match="userpkg.nets:Net, which cannot be imported") as info:
        load(tmp_path / "model", trusted=True)
    assert "run from the folder that holds it" in str(info.value)


def test_user_module_that_fails_at_import_when_loading_is_named(
    tmp_path, binary_data, user_package
):
    X, y = binary_data
    ImageImbalanceClassifier(**{**FAST, "module": user_package.Net}).fit(X, y).save(
        tmp_path / "model"
    )
    for name in ("userpkg.nets", "userpkg"):
        sys.modules.pop(name, None)
    nets = next(p for p in sys.path if p.endswith(os.sep + "src"))
    with open(os.path.join(nets, "userpkg", "nets.py"), "a") as file:
        file.write("\nraise RuntimeError('import boom')\n")
    for trusted in (False, True):
        with pytest.raises(ImportError, match="importing 'userpkg.nets' raised RuntimeError"):
            load(tmp_path / "model", trusted=trusted)


def test_user_module_changed_since_the_save_gives_the_first_mismatches(
    tmp_path, binary_data, user_package
):
    from imbal_estimators.estimator.persistence import ModelFileError

    X, y = binary_data
    clf = ImageImbalanceClassifier(**{**FAST, "module": user_package.Net}).fit(X, y)
    clf.save(tmp_path / "model")
    monkeypatch = pytest.MonkeyPatch()
    original = user_package.Net.__init__

    def renamed(self, num_classes=2, width=4):  # the same weights under another name
        original(self, num_classes=num_classes, width=width)
        self.first = self.conv
        del self.conv

    monkeypatch.setattr(user_package.Net, "__init__", renamed)
    monkeypatch.setattr(
        user_package.Net, "forward", lambda self, x: self.fc(self.first(x).mean(dim=(2, 3)))
    )
    try:
        with pytest.raises(ModelFileError, match="does not fit the network") as info:
            load(tmp_path / "model")
    finally:
        monkeypatch.undo()
    message = str(info.value)
    assert "missing" in message and "first.weight" in message
    assert "class changed since the model was saved" in message
    assert len(message) < 900 and "\n" not in message


def test_other_references_in_the_network_record_stay_refused(tmp_path, binary_data, user_package):
    X, y = binary_data
    clf = ImageImbalanceClassifier(**{**FAST, "module": user_package.Net}).fit(X, y)
    clf.save(tmp_path / "model")
    path = tmp_path / "model" / "config.json"
    config = json.loads(path.read_text())
    for reference in ("os:system", "userpkg.nets:nn"):
        config["network"]["module"] = reference
        config["params"]["module"] = {"__import__": reference}
        path.write_text(json.dumps(config))
        with pytest.raises(UntrustedReferenceError):
            load(tmp_path / "model")


def test_user_module_with_a_weights_file(tmp_path, binary_data, user_package):
    X, y = binary_data
    source = user_package.Net(num_classes=5)
    torch.save(source.state_dict(), tmp_path / "net.pt")
    clf = ImageImbalanceClassifier(
        **{**FAST, "module": user_package.Net, "weights": str(tmp_path / "net.pt")}
    )
    clf.set_params(lr=0.0)  # the loaded body stays as the file has it
    clf.fit(X, y)
    assert torch.equal(clf.module_.backbone.conv.weight, source.conv.weight)
    assert clf.module_.backbone.fc.out_features == 2


def test_a_hub_name_offline_says_to_name_the_architecture_with_a_file(monkeypatch):
    from imbal_estimators.models import timm_source

    def unreachable(*args, **kwargs):
        raise FileNotFoundError("We cannot find the requested files in the local cache.")

    monkeypatch.setattr(timm, "create_model", unreachable)
    monkeypatch.setattr(timm_source, "hub_unreachable", lambda: None)  # DNS may resolve
    with pytest.raises(ValueError, match="is defined by its configuration on the Hugging") as info:
        timm_source.create("timm/hf-hub:org/net", 2)
    assert "--backbone timm/ARCHITECTURE --weights PATH" in str(info.value)
    assert "--backbone small_cnn --weights none" in str(info.value)
    with pytest.raises(FileNotFoundError):  # another name: the caller's offline message
        timm_source.create("timm/resnet18", 2, pretrained=True)


def test_a_long_download_error_is_cut_at_a_word():
    from imbal_estimators.app.network_options import offline_message

    cause = OSError("Please check your connection and try again " * 10)
    exc = WeightsDownloadError("cannot download", "timm/resnet18", "DEFAULT")
    exc.__cause__ = cause
    message = offline_message("imbal-estimators fit", exc)
    reason = message.split("(no internet? ", 1)[1].split(")", 1)[0]
    assert reason.endswith("…") and len(reason) <= 160
    kept = reason[:-1]
    assert str(cause).startswith(kept) and str(cause)[len(kept)] == " "  # a whole word


def test_an_unknown_pretrained_tag_is_an_unknown_backbone_with_the_known_tags():
    with pytest.raises(ValueError, match="Unknown backbone 'timm/test_resnet.no_such_tag'") as info:
        check_backbone_name("timm/test_resnet.no_such_tag")
    assert "'timm/test_resnet'" in str(info.value)
    assert "'timm/test_resnet.r160_in1k'" in str(info.value)
    check_backbone_name("timm/test_resnet.r160_in1k")  # a known tag passes


def test_offline_timm_weights_come_from_the_cache_only_without_the_hubs_retries(monkeypatch):
    import socket

    from imbal_estimators.models import timm_source

    _no_proxies(monkeypatch)

    def no_dns(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    from huggingface_hub import constants

    def cache_only(*args, **kwargs):  # huggingface_hub in offline mode: its cache, no retries
        assert constants.HF_HUB_OFFLINE, "the Hub would be asked, and retried for a minute"
        raise FileNotFoundError("cannot find the requested files in the local cache")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    monkeypatch.setattr(timm, "create_model", cache_only)
    was_offline = constants.HF_HUB_OFFLINE
    with pytest.raises(WeightsDownloadError, match="huggingface.co does not resolve"):
        build_backbone(TIMM, "DEFAULT", 2)
    assert constants.HF_HUB_OFFLINE == was_offline  # restored
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")  # asked first, if any
    assert "the proxy proxy.invalid:3128 does not resolve" in timm_source.hub_unreachable()


def test_the_cli_gives_its_own_trust_option_for_a_refused_network(
    tmp_path, binary_data, binary_folder, monkeypatch, capsys
):
    from imbal_estimators.app.cli import main

    (tmp_path / "_privnet.py").write_text(NET_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    private = __import__("_privnet")
    try:
        X, y = binary_data
        ImageImbalanceClassifier(**{**FAST, "module": private.Net}).fit(X, y).save(tmp_path / "m")
        assert main(["predict", str(tmp_path / "m"), binary_folder]) == 1
        err = capsys.readouterr().err
        assert "pass --trusted" in err and "trusted=True" not in err
        assert main(["predict", str(tmp_path / "m"), binary_folder, "--trusted"]) == 0
    finally:
        sys.modules.pop("_privnet", None)


def test_a_timm_vit_takes_the_size_it_was_built_for(binary_data):
    X, y = binary_data
    fixed = {**FAST, "backbone": "timm/test_vit", "weights": None}
    fixed["module__dynamic_img_size"] = False  # timm's test ViT takes any size by default
    at_32 = {**fixed, "module__img_size": 32}
    with pytest.raises(ValueError, match="takes 32 x 32 px inputs only.*image_size=16"):
        ImageImbalanceClassifier(**{**at_32, "image_size": 16}).fit(X, y)
    clf = ImageImbalanceClassifier(**{**at_32, "image_size": "auto"}).fit(X, y)
    assert clf.predict_proba(X).shape == (len(X), 2)  # "auto": the 32 px it was built for
    with pytest.raises(ValueError, match="'timm/test_vit' takes 160 x 160 px inputs only"):
        ImageImbalanceClassifier(**fixed).fit(X, y)
    dynamic = {**FAST, "backbone": "timm/test_vit", "weights": None}
    assert ImageImbalanceClassifier(**dynamic).fit(X, y).predict_proba(X).shape == (len(X), 2)


def test_offline_timm_weights_in_the_hubs_cache_still_load(tmp_path, monkeypatch):
    import socket

    from huggingface_hub import constants
    from safetensors.torch import save_file

    _no_proxies(monkeypatch)
    monkeypatch.setattr(socket, "getaddrinfo", _no_dns)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    # timm's reader of the Hub's files, which conftest's no_downloads blocks: here nothing
    # can leave the machine (no name resolves, and the offline mode reads the cache only)
    import timm.models._builder
    import timm.models._hub

    monkeypatch.setattr(
        timm.models._builder, "load_state_dict_from_hf", timm.models._hub.load_state_dict_from_hf
    )
    source = timm.create_model("test_resnet", pretrained=False)
    repo = tmp_path / "models--timm--test_resnet.r160_in1k"  # huggingface_hub's cache layout
    commit = "0" * 40
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    tensors = {key: value.contiguous() for key, value in source.state_dict().items()}
    save_file(tensors, str(repo / "snapshots" / commit / "model.safetensors"))
    model, _, _ = build_backbone(TIMM, "DEFAULT", 2)
    assert torch.equal(model.conv1[0].weight, source.conv1[0].weight)


def _no_dns(*args, **kwargs):
    import socket

    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


def test_a_fixed_size_timm_network_without_patch_embedding_takes_its_img_size():
    from imbal_estimators.models.preprocessing import check_input_size, network_geometry

    kwargs = {"img_size": 64}  # timm's test MaxViT: fixed_input_size, no patch_embed
    check_input_size("timm/test_maxvit", 64, kwargs)  # the size it was built for
    with pytest.raises(ValueError, match="takes 64 x 64 px inputs only.*image_size=32"):
        check_input_size("timm/test_maxvit", 32, kwargs)
    assert network_geometry("timm/test_maxvit", None, module_kwargs=kwargs).crop == 64


def _no_proxies(monkeypatch):
    for variable in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.delenv(variable, raising=False)
        monkeypatch.delenv(variable.lower(), raising=False)


def test_a_hub_endpoint_that_refuses_is_found_at_once(monkeypatch):
    import socket
    import time

    from huggingface_hub import constants

    from imbal_estimators.models import timm_source

    _no_proxies(monkeypatch)
    with socket.socket() as listener:  # a port of this machine that nothing listens on
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    start = time.perf_counter()
    assert "its host 127.0.0.1 does not answer" in timm_source.hub_unreachable()
    assert time.perf_counter() - start < 5


def test_a_proxy_that_never_answers_or_an_endpoint_without_scheme_is_found_at_once(
    monkeypatch,
):
    import socket
    import time

    from huggingface_hub import constants

    from imbal_estimators.models import timm_source

    _no_proxies(monkeypatch)
    with socket.socket() as silent:  # accepts connections (the kernel does), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{silent.getsockname()[1]}")
        start = time.perf_counter()
        reason = timm_source.hub_unreachable(timeout=1.0)
        assert "the proxy 127.0.0.1" in reason and "does not answer" in reason
        assert time.perf_counter() - start < 4
    monkeypatch.setattr(constants, "ENDPOINT", "hf-mirror.com")
    assert "is not an http:// or https:// address" in timm_source.hub_unreachable()
