"""The command line checks its output paths before any work, shows the whole bad-file
message, has --on-bad-image, and loads only allow-listed models unless --trusted."""

import json
import os

import numpy as np
import pytest
from conftest import TinyCNN, make_folder, tiny_classifier

import imbal_estimators.app.cli as cli
from imbal_estimators import ImageImbalanceClassifier
from imbal_estimators.app.cli import main
from imbal_estimators.search.cv import ImbalanceSearchCV

FAST = ["--image-size", "16", "--max-epochs", "1", "--weights", "none", "--batch-size", "16"]
SMALL = ["--backbone", "small_cnn", *FAST, "--lr", "0.01"]


@pytest.fixture
def no_work(monkeypatch):
    """Records every fit, search and prediction: none may start before the check."""
    calls = []
    for cls, name in [
        (ImageImbalanceClassifier, "fit"),
        (ImageImbalanceClassifier, "predict_proba"),
        (ImbalanceSearchCV, "fit"),
    ]:
        monkeypatch.setattr(cls, name, lambda self, *a, n=name, **k: calls.append(n))
    monkeypatch.setattr(cli, "compare", lambda *a, **k: calls.append("compare"), raising=False)
    monkeypatch.setattr(cli, "load_folder", lambda *a: calls.append("load_folder") or ([], []))
    monkeypatch.setattr(cli, "_load_model", lambda *a, **k: calls.append("load"))
    return calls


@pytest.mark.parametrize(
    "argv, option",
    [
        (["fit", "{data}", "--out", "{file}/model"], "--out"),
        (["fit", "{data}", "--out", "{file}"], "--out"),
        (["tune", "{data}", "--trials", "1", "--out", "{file}/model"], "--out"),
        (["compare", "{data}", "--out", "{file}/report"], "--out"),
        (["report", "{model}", "{data}", "--out", "{file}/x/report"], "--out"),
        (["predict", "{model}", "{data}", "--output", "{file}/preds.csv"], "--output"),
        (["demo", "--out", "{file}/report", "--data", "{data}"], "--out"),
    ],
)
def test_output_paths_are_checked_before_any_work(tmp_path, capsys, no_work, argv, option):
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "data").mkdir()
    names = dict(file=tmp_path / "a_file", data=tmp_path / "data", model=tmp_path / "model")
    assert main([arg.format(**names) for arg in argv]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and f"error: {option} " in err, err
    assert str(tmp_path / "a_file") in err
    assert no_work == []


def test_a_directory_given_as_the_output_file_is_refused(tmp_path, capsys, no_work):
    assert main(["predict", str(tmp_path), str(tmp_path), "--output", str(tmp_path)]) == 1
    assert "is a directory; give the name of a file" in capsys.readouterr().err
    assert no_work == []


def test_fit_out_into_a_folder_of_other_files_fails_before_training(tmp_path, capsys, no_work):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    assert main(["fit", str(tmp_path), "--out", str(tmp_path / "out")]) == 1
    assert "holds other files (notes.txt)" in capsys.readouterr().err
    assert no_work == []


def test_fit_out_under_a_plain_file_trains_nothing(binary_folder, tmp_path, capsys, monkeypatch):
    """The acceptance case end to end: no epoch runs."""
    epochs = []
    monkeypatch.setattr(
        ImageImbalanceClassifier, "run_single_epoch", lambda self, *a, **k: epochs.append(1)
    )
    (tmp_path / "plain").write_text("")
    assert main(["fit", binary_folder, "--out", str(tmp_path / "plain" / "m"), *SMALL]) == 1
    assert "is a file, not a directory" in capsys.readouterr().err
    assert epochs == []


def test_on_bad_image_on_the_command_line(tmp_path, capsys):
    folder = make_folder(tmp_path / "data", {"a": 10, "b": 6}, size=16)
    (tmp_path / "data" / "b" / "broken.png").write_bytes(b"not a png")
    (tmp_path / "data" / "a" / "empty.png").write_bytes(b"")
    assert main(["fit", folder, "--out", str(tmp_path / "m"), *SMALL]) == 1
    err = capsys.readouterr().err
    assert "2 of 18 image file(s) in X cannot be used" in err
    assert "empty.png': empty file (0 bytes)" in err and "broken.png': not an image" in err
    assert 'on_bad_image="skip" or "warn"' in err and "--on-bad-image skip or warn" in err
    model = tmp_path / "m"
    assert main(["fit", folder, "--out", str(model), "--on-bad-image", "skip", *SMALL]) == 0
    loaded = cli._load_model(str(model))
    assert sorted(os.path.basename(s["path"]) for s in loaded.skipped_images_) == [
        "broken.png",
        "empty.png",
    ]


def test_compare_skips_bad_images_on_request(tmp_path, capsys, monkeypatch):
    folder = make_folder(tmp_path / "data", {"a": 10, "b": 6}, size=16)
    (tmp_path / "data" / "b" / "broken.png").write_bytes(b"not a png")
    seen = {}

    def fake_compare(paths, labels, **kwargs):
        seen["paths"] = list(paths)
        raise cli.CLIError("stop here")

    monkeypatch.setattr("imbal_estimators.app.compare.compare", fake_compare)
    argv = ["compare", folder, "--out", str(tmp_path / "r"), "--cv", "2", *FAST]
    assert main([*argv, "--on-bad-image", "warn"]) == 1
    err = capsys.readouterr().err
    assert "Skipping 1 of 17 image file(s)" in err and "broken.png" in err
    assert len(seen["paths"]) == 16 and not any("broken" in p for p in seen["paths"])


def test_predict_loads_a_model_with_foreign_code_only_with_trusted(binary_data, tmp_path, capsys):
    X, y = binary_data
    tiny_classifier(max_epochs=1).fit(X, y).save(tmp_path / "m")  # TinyCNN: tests' conftest
    assert main(["predict", str(tmp_path / "m"), X[0]]) == 0  # the network named at save
    capsys.readouterr()
    config_path = tmp_path / "m" / "config.json"
    config = json.loads(config_path.read_text())
    del config["network"]  # as a file of version 0.2: the class is foreign code
    config_path.write_text(json.dumps(config))
    assert main(["predict", str(tmp_path / "m"), X[0]]) == 1
    err = capsys.readouterr().err
    assert "'conftest:TinyCNN'" in err and "allow-list" in err
    assert main(["predict", str(tmp_path / "m"), X[0], "--trusted"]) == 0
    assert capsys.readouterr().out.startswith("path,label,proba_cat,proba_dog")
    assert TinyCNN  # the class the model names


def test_output_checks_accept_new_and_existing_paths(tmp_path):
    cli.check_output(str(tmp_path / "new" / "deeper"), "--out")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    cli.check_output(str(tmp_path / "model"), "--out", kind="model")
    cli.check_output(str(tmp_path / "preds.csv"), "--output", kind="file")
    (tmp_path / "old.csv").write_text("overwritten")
    cli.check_output(str(tmp_path / "old.csv"), "--output", kind="file")
    assert not (tmp_path / "new").exists()  # nothing is created
    assert np.all([p.name != "new" for p in tmp_path.iterdir()])
