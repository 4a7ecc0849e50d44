"""compare with your network: what counts as pretrained, the plan's name for it, fit
commands that train the same network, and the offline message of the command line."""

import csv
import shlex
import sys

import numpy as np
import pytest
import torch

from imbal_estimators.app.cli import build_parser, estimator_params, main
from imbal_estimators.app.compare import compare, fit_command
from imbal_estimators.estimator.persistence import load

NET_SOURCE = """
from torch import nn


class Net(nn.Module):
    def __init__(self, num_classes=2):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x):
        return self.fc(self.conv(x).relu().mean(dim=(2, 3)))
"""
FAST_ARGS = ["--image-size", "16", "--max-epochs", "2", "--batch-size", "16", "--lr", "0.05"]
FAST_ARGS += ["--device", "cpu"]


@pytest.fixture
def user_net(tmp_path, monkeypatch):
    """``userpkg.nets:Net`` in the working directory, which is not on sys.path."""
    (tmp_path / "userpkg").mkdir()
    (tmp_path / "userpkg" / "__init__.py").write_text("")
    (tmp_path / "userpkg" / "nets.py").write_text(NET_SOURCE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    yield "userpkg.nets:Net"
    for name in ("userpkg.nets", "userpkg"):
        sys.modules.pop(name, None)


def test_python_compare_with_module_screens_on_frozen_features(binary_data, tmp_path):
    from conftest import FAST, TinyCNN

    class Pretrained(TinyCNN):
        pretrained = True  # as a user's network with loaded weights

    X, y = binary_data
    lines = []
    params = {**FAST, "module": Pretrained, "lr": 0.05, "max_epochs": 2}
    result = compare(
        X,
        y,
        methods=["ce"],
        cv=2,
        estimator_params=params,
        progress=False,
        log=lines.append,
        refit=False,
    )
    assert [s.name for s in result.stages] == ["screen", "confirm"]
    assert result.screen_note == ""
    assert any("module test_compare_networks:" in line and "Pretrained" in line for line in lines)
    # told otherwise, the same network skips the screen and says why in one line
    lines.clear()
    result = compare(
        X,
        y,
        methods=["ce"],
        cv=2,
        estimator_params=params,
        pretrained=False,
        progress=False,
        log=lines.append,
        refit=False,
    )
    assert [s.name for s in result.stages] == ["confirm"]
    skipped = [line for line in lines if line.startswith("Stage 1 skipped")]
    assert len(skipped) == 1 and "pretrained=False (--no-pretrained)" in skipped[0]


@pytest.mark.slow
def test_cli_compare_with_module_and_the_fit_command_that_trains_the_same_network(
    binary_folder, tmp_path, user_net
):
    out = tmp_path / "out"
    args = ["compare", binary_folder, "--out", str(out), "--module", user_net]
    args += ["--methods", "ce", "--cv", "2", "--ensemble", "1"]
    assert main(args + FAST_ARGS) == 0
    with open(out / "results.csv") as file:
        rows = list(csv.DictReader(file))
    assert {r["stage"] for r in rows} == {"screen", "confirm"}  # screened on frozen features
    recommended = next(r for r in rows if r["recommended"] == "yes")
    words = shlex.split(recommended["fit"])
    assert words[:2] == ["imbal-estimators", "fit"] and "--module" in words
    assert words[words.index("--module") + 1] == user_net
    words[words.index("--out") + 1] = str(tmp_path / "again")
    assert main(words[1:]) == 0  # run as printed
    from imbal_estimators import load_image_folder

    paths, _ = load_image_folder(binary_folder)
    saved, again = load(out / "model"), load(tmp_path / "again")
    assert saved.module.__name__ == "Net" and again.module is saved.module
    np.testing.assert_array_equal(saved.predict_proba(paths), again.predict_proba(paths))


def test_offline_default_compare_is_one_user_error_in_cli_options(binary_folder, tmp_path, capsys):
    code = main(["compare", binary_folder, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback" not in err and "unexpected" not in err
    assert len(err.strip().splitlines()) == 1 or "Downloading" in err.splitlines()[0]
    message = err.strip().splitlines()[-1]
    assert message.startswith("imbal-estimators compare: error: the pretrained weights")
    assert "--weights PATH" in message
    assert "--backbone small_cnn --weights none --image-size 32 (about " in message
    assert "for this folder)" in message  # the plan's estimate of that way out
    assert "--module package.module:Class" in message


def parse(argv):
    return estimator_params(build_parser().parse_args(argv))


def test_small_cnn_gets_defaults_that_train_it_when_left_unset():
    params = parse(["fit", "d", "--out", "m", "--backbone", "small_cnn"])
    assert params["image_size"] == 32 and params["lr"] == 3e-3 and params["max_epochs"] == 10
    assert params["weights"] is None
    params = parse(["fit", "d", "--out", "m", "--backbone", "small_cnn", "--image-size", "64"])
    assert params["image_size"] == 64 and params["lr"] == 3e-3
    assert "lr" not in parse(["fit", "d", "--out", "m", "--backbone", "resnet18"])


@pytest.mark.parametrize(
    "text, value",
    [
        ("inception", "inception"),
        ("none", None),
        ("0.5,0.5,0.5,0.25,0.25,0.25", ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))),
    ],
)
def test_normalize_option(text, value):
    params = parse(["fit", "d", "--out", "m", "--normalize", text])
    assert params["normalize"] == value
    assert "normalize" not in parse(["fit", "d", "--out", "m"])


def test_bad_module_and_normalize_options_are_usage_errors(capsys):
    for argv in (["--module", "no colon"], ["--normalize", "1,2"]):
        with pytest.raises(SystemExit) as info:
            build_parser().parse_args(["fit", "d", "--out", "m", *argv])
        assert info.value.code == 2
    assert "--module" in capsys.readouterr().err


def test_module_that_cannot_be_imported_names_the_option(
    binary_folder, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    code = main(["fit", binary_folder, "--out", str(tmp_path / "m"), "--module", "nowhere.x:Net"])
    err = capsys.readouterr().err
    assert code == 1 and "--module 'nowhere.x:Net': cannot import it" in err


def test_module_that_fails_to_import_names_the_option_and_the_error(
    binary_folder, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "broken_net.py").write_text("class Net:\n    def forward(self):\n")
    argv = ["fit", binary_folder, "--out", str(tmp_path / "m"), "--module", "broken_net:Net"]
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1, err
    assert "--module 'broken_net:Net': importing it raised IndentationError" in err
    assert "unexpected" not in err


def test_a_module_named_like_the_standard_library_says_so(binary_folder, tmp_path, capsys):
    argv = ["fit", binary_folder, "--out", str(tmp_path / "m"), "--module", "json:Net"]
    assert main(argv) == 1
    assert "'json' is also a module of Python's standard library" in capsys.readouterr().err


def test_a_module_file_shadowed_by_an_installed_package_says_so(
    binary_folder, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "numpy.py").write_text("class Net:\n    pass\n")  # numpy's own comes first
    argv = ["fit", binary_folder, "--out", str(tmp_path / "m"), "--module", "numpy:Net"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "another 'numpy' comes first on the import path" in err and "rename" in err


def test_module_and_backbone_together_are_refused(binary_folder, tmp_path, capsys):
    argv = ["fit", binary_folder, "--out", str(tmp_path / "m"), "--module", "pkg.nets:Net"]
    assert main([*argv, "--backbone", "resnet18"]) == 1
    err = capsys.readouterr().err
    assert "--module 'pkg.nets:Net' and --backbone 'resnet18' both name the network" in err


@pytest.mark.parametrize("text", ["nan,0,0,1,1,1", "0,0,0,1,inf,1"])
def test_normalize_option_refuses_numbers_that_are_not_finite(text):
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["fit", "d", "--out", "m", "--normalize", text])
    assert info.value.code == 2


def test_fit_command_carries_the_network_or_says_it_cannot():
    from conftest import TinyCNN

    from imbal_estimators.models.small_cnn import SmallCNN

    params = {"backbone": "timm/test_resnet", "weights": "w/net.pth", "normalize": "inception"}
    words = shlex.split(fit_command(params))
    assert words[words.index("--backbone") + 1] == "timm/test_resnet"
    assert words[words.index("--weights") + 1] == "w/net.pth"
    assert words[words.index("--normalize") + 1] == "inception"
    pair = ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    assert "--normalize 0.5,0.5,0.5,0.25,0.25,0.25" in fit_command({"normalize": pair})
    assert "--backbone small_cnn --weights none" in fit_command({"module": SmallCNN})
    assert "--module conftest:TinyCNN" in fit_command({"module": TinyCNN})

    class Local(TinyCNN):
        pass

    for params, why in [
        ({"module": Local}, "module=Local is not a class importable by name"),
        ({"module": TinyCNN(), "weights": None}, "module=TinyCNN is not a class"),
        ({"module": TinyCNN, "module__width": 4}, "module__width=4 has no option"),
        ({"augment": False}, "augment=False has no option"),
    ]:
        text = fit_command(params)
        assert text.startswith("not reproducible from the command line: ") and why in text


def test_a_module_that_says_random_counts_as_pretrained_with_a_weights_file(tmp_path):
    from imbal_estimators import SmallCNN
    from imbal_estimators.models.backbones import is_pretrained

    path = tmp_path / "small.pt"
    torch.save(SmallCNN(num_classes=2).state_dict(), path)
    assert not is_pretrained(None, SmallCNN)
    assert is_pretrained(str(path), SmallCNN)
    assert is_pretrained(None, torch.nn.Module)  # a user's own module: pretrained by default
