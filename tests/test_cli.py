"""The imbal-estimators command: compare end to end, one-line errors and exit codes."""

import csv
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import TinyCNN, make_folder, write_images

import imbal_estimators.app.cli as cli
from imbal_estimators.app.cli import main
from imbal_estimators.app.methods import default_configurations

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST_ARGS = ["--image-size", "16", "--max-epochs", "1", "--weights", "none", "--batch-size", "16"]


@pytest.fixture
def tiny_network(monkeypatch):
    """The CLI's estimators use the TinyCNN: the command line is tested, not the backbone."""
    original = cli.estimator_params

    def with_tiny_network(args, **base):
        return {**original(args, **base), "module": TinyCNN, "lr": 0.05}

    monkeypatch.setattr(cli, "estimator_params", with_tiny_network)


def read_csv(path):
    with open(path) as file:
        return list(csv.DictReader(file))


def test_module_entry_point_help():
    env = dict(os.environ, PYTHONPATH=ROOT)
    result = subprocess.run(
        [sys.executable, "-m", "imbal_estimators", "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    for command in ("demo", "compare", "fit", "predict", "tune", "report"):
        assert command in result.stdout


@pytest.mark.parametrize("command", ["demo", "compare", "fit", "predict", "tune", "report"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"imbal-estimators {command}" in capsys.readouterr().out


def test_compare_binary_writes_results_report_and_model(
    binary_folder, tmp_path, tiny_network, capsys
):
    out = tmp_path / "out"
    assert main(["compare", binary_folder, "--out", str(out), "--cv", "2", *FAST_ARGS]) == 0
    rows = read_csv(out / "results.csv")
    # the default comparison covers every method of the table (the SMOTE family needs
    # frozen features), each with its tuned-threshold row
    configs = default_configurations()
    assert {r["configuration"] for r in rows if r["decision"] == "argmax"} == {
        c.name for c in configs
    }
    assert sum(r["decision"] == "tuned threshold" for r in rows) == len(configs)
    for row in rows:
        for metric in ("f1", "balanced_accuracy", "average_precision", "precision", "recall"):
            assert np.isfinite(float(row[f"{metric}_mean"])), (row["configuration"], metric)
        assert row["fit"].startswith(f"imbal-estimators fit {binary_folder} --out MODEL_DIR")
    folds = read_csv(out / "fold_scores.csv")
    assert len(folds) == 2 * len(rows)
    page = (out / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') >= 6
    assert (out / "report.md").is_file() and (out / "plots" / "reliability.png").is_file()
    stdout = capsys.readouterr().out
    estimate = stdout.index("Estimated time:")
    assert stdout.index("Positive class: 'dog'") < estimate < stdout.index("rank  configuration")
    assert rows[0]["configuration"] in stdout and "Report:" in stdout
    # the recommended model is saved, loads and predicts
    recommended = next(r for r in rows if r["recommended"] == "yes")
    saved = f"Saved the recommended model ({recommended['configuration']}, an ensemble of 3 fits"
    assert saved in stdout and "; decides by threshold " in stdout
    assert "What moved the score" in stdout
    import imbal_estimators

    model = imbal_estimators.load(out / "model", trusted=True)  # conftest.TinyCNN
    assert set(model.predict([os.path.join(binary_folder, "dog", "img_0000.png")])) <= {
        "cat",
        "dog",
    }


def test_the_fit_command_of_a_row_trains_that_model(binary_folder, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["compare", binary_folder, "--out", str(out), "--cv", "2", "--methods", "ce"]
    assert main([*argv, "--backbone", "small_cnn", *FAST_ARGS]) == 0
    rows = read_csv(out / "results.csv")
    tuned = next(r for r in rows if r["configuration"] == "ce + tuned threshold")
    assert "--threshold auto" in tuned["fit"] and "--monitor average_precision" in tuned["fit"]
    # the recommended row's command trains the model compare saved
    recommended = next(r for r in rows if r["recommended"] == "yes")
    command = recommended["fit"].split()
    assert command[:2] == ["imbal-estimators", "fit"]
    model_dir = tmp_path / "from_the_command"
    command[command.index("MODEL_DIR")] = str(model_dir)
    assert main(command[1:]) == 0
    import imbal_estimators

    assert command[-2:] == ["--ensemble", "3"]  # compare saves an ensemble of 3 refits
    model = imbal_estimators.load(model_dir)
    saved = imbal_estimators.load(out / "model")
    assert len(model.members_) == len(saved.members_) == 3
    for ours, theirs in zip(model.members_, saved.members_, strict=True):
        assert ours.get_params()["threshold"] == theirs.get_params()["threshold"] == "auto"
        assert ours.threshold_ == theirs.threshold_ and ours.best_epoch_ == theirs.best_epoch_
    assert model.threshold_ == saved.threshold_
    images = [os.path.join(binary_folder, "dog", "img_0000.png")]
    np.testing.assert_allclose(model.predict_proba(images), saved.predict_proba(images), rtol=1e-5)


def test_compare_options_reach_compare(binary_folder, tmp_path, tiny_network, monkeypatch):
    import imbal_estimators.app.compare as compare_module

    seen = {}
    original = compare_module.compare

    def recording(paths, labels, **kwargs):
        seen.update(kwargs)
        return original(paths, labels, **kwargs)

    monkeypatch.setattr(compare_module, "compare", recording)
    grid = tmp_path / "grid.json"
    grid.write_text('[{"loss": "ce"}, {"name": "bs", "loss": "balanced_softmax"}]')
    argv = ["compare", binary_folder, "--out", str(tmp_path / "o"), "--cv", "2", *FAST_ARGS]
    argv += ["--grid", str(grid), "--repeats", "2", "--budget", "20m", "--no-refit"]
    assert main(argv) == 0
    assert [c.name for c in seen["configurations"]] == ["ce", "bs"]
    assert seen["repeats"] == 2 and seen["budget"] == "20m" and seen["refit"] is False
    assert not (tmp_path / "o" / "model").exists()
    assert len(read_csv(tmp_path / "o" / "fold_scores.csv")) == 4 * 4  # 4 rows x 2x2 folds


def test_compare_three_classes_has_post_hoc_rows(tmp_path, tiny_network):
    folder = make_folder(tmp_path / "three", {"a": 16, "b": 8, "c": 6}, size=16)
    out = tmp_path / "out"
    argv = ["compare", folder, "--out", str(out), "--cv", "2", "--methods", "ce,focal,over"]
    assert main([*argv, *FAST_ARGS, "--no-refit"]) == 0
    rows = read_csv(out / "results.csv")
    assert {r["decision"] for r in rows} == {"argmax", "post-hoc adjustment"}
    assert len(rows) == 2 * 7 + 1  # ce and the 6 focal variants twice, over-sampling once
    assert all(np.isfinite(float(r["f1_mean"])) for r in rows)


def test_demo_quick_builds_the_folder_the_report_and_the_model(tmp_path, tiny_network):
    data, out = tmp_path / "demo_data", tmp_path / "demo_report"
    assert main(["demo", "--quick", "--data", str(data), "--out", str(out)]) == 0
    assert sorted(os.listdir(data / "1"))[:1] and len(os.listdir(data / "0")) == 60
    rows = read_csv(out / "results.csv")
    assert {r["configuration"] for r in rows} >= {"ce", "ce + tuned threshold"}
    assert (out / "report.html").is_file() and (out / "model" / "ensemble.json").is_file()


def assert_one_line_error(capsys, *fragments):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err


@pytest.mark.parametrize(
    "argv, fragments",
    [
        (
            ["compare", "{missing}", "--out", "{out}"],
            ["does not exist", "one sub-folder per class"],
        ),
        (["compare", "{file}", "--out", "{out}"], ["is not a directory"]),
        (["compare", "{empty}", "--out", "{out}"], ["is not an image folder"]),
        (["compare", "{single}", "--out", "{out}"], ["single class folder"]),
        (["compare", "{binary}", "--out", "{out}", "--cv", "40"], ["Lower --cv or add images"]),
        (["compare", "{binary}", "--out", "{out}", "--pos-label", "bird"], ["--pos-label 'bird'"]),
        (["compare", "{binary}", "--out", "{out}", "--weights", "nope/w.pth"], ["--weights file"]),
        (
            ["fit", "{binary}", "--out", "{out}", "--weights", "{folder_pth}"],
            ["--weights file", "is not a regular file: it is a directory"],
        ),
        (["fit", "{missing}", "--out", "{out}"], ["does not exist"]),
        (["predict", "{missing}", "{binary}"], ["does not exist"]),
        (["report", "{missing}", "{binary}", "--out", "{out}"], ["does not exist"]),
    ],
)
def test_bad_paths_and_values_give_one_line_and_exit_1(
    argv, fragments, binary_folder, tmp_path, capsys
):
    (tmp_path / "empty").mkdir()
    (tmp_path / "folder.pth").mkdir()
    (tmp_path / "a_file.txt").write_text("x")
    write_images(tmp_path / "single" / "only", 3, (200, 0, 0), size=8)
    names = dict(
        missing=str(tmp_path / "missing"),
        file=str(tmp_path / "a_file.txt"),
        empty=str(tmp_path / "empty"),
        single=str(tmp_path / "single"),
        folder_pth=str(tmp_path / "folder.pth"),
        binary=binary_folder,
        out=str(tmp_path / "out"),
    )
    assert main([arg.format(**names) for arg in argv]) == 1
    assert_one_line_error(capsys, *fragments)


def test_a_broken_image_is_named_with_the_whole_message(tmp_path, tiny_network, capsys):
    folder = make_folder(tmp_path / "data", {"a": 8, "b": 6}, size=8)
    broken = tmp_path / "data" / "b" / "broken.png"
    broken.write_bytes(b"not a png")
    assert main(["compare", folder, "--out", str(tmp_path / "out"), "--cv", "2", *FAST_ARGS]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("imbal-estimators compare: error: ")
    for fragment in ("images[8]", "broken.png", "cannot be used", "--on-bad-image skip"):
        assert fragment in err, err


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["compare", "--out", "x"], "required: DATA_DIR"),
        (["compare", "d"], "required: --out"),
        (["compare", "d", "--out", "x", "--cv", "zero"], "--cv: expected an integer >= 2"),
        (["compare", "d", "--out", "x", "--scoring", "accuracy"], "invalid choice: 'accuracy'"),
        (["compare", "d", "--out", "x", "--budget", "soon"], "--budget: expected a duration"),
        (["compare", "d", "--out", "x", "--repeats", "0"], "--repeats: expected a positive"),
        (["compare", "d", "--out", "x", "--n-jobs", "0"], "--n-jobs: expected a non-zero"),
        (["train", "d"], "invalid choice: 'train'"),
        ([], "required: COMMAND"),
    ],
)
def test_usage_errors_exit_2_with_one_line(argv, fragment, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert_one_line_error(capsys, fragment, "--help")


needs_persistence = pytest.mark.skipif(
    not hasattr(__import__("imbal_estimators"), "load"),
    reason="imbal_estimators.load (the persistence module) is not in this checkout",
)
SMALL_FIT = ["--backbone", "small_cnn", *FAST_ARGS, "--lr", "0.01"]


@pytest.fixture(scope="module")
def saved_model(binary_folder, tmp_path_factory):
    model = tmp_path_factory.mktemp("cli_model") / "model"
    assert main(["fit", binary_folder, "--out", str(model), "--loss", "focal", *SMALL_FIT]) == 0
    return model


@needs_persistence
def test_fit_then_predict_round_trip(saved_model, binary_folder, tmp_path, capsys):
    assert (saved_model / "model.safetensors").is_file()
    assert (saved_model / "config.json").is_file()
    preds = tmp_path / "preds.csv"
    dog_dir = os.path.join(binary_folder, "dog")
    assert main(["predict", str(saved_model), dog_dir, "--output", str(preds)]) == 0
    rows = read_csv(preds)
    assert list(rows[0]) == ["path", "label", "proba_cat", "proba_dog", "decision_rule"]
    from imbal_estimators import load

    rule = load(saved_model).decision_rule()
    assert {r["decision_rule"] for r in rows} == {rule}
    assert f"Decision rule: {rule}" in capsys.readouterr().err
    assert [r["path"] for r in rows] == sorted(
        os.path.join(dog_dir, name) for name in os.listdir(dog_dir)
    )
    for row in rows:
        assert row["label"] in ("cat", "dog")
        assert float(row["proba_cat"]) + float(row["proba_dog"]) == pytest.approx(1, abs=1e-5)
        expected = "dog" if float(row["proba_dog"]) > float(row["proba_cat"]) else "cat"
        assert row["label"] == expected
    capsys.readouterr()
    one_file = rows[0]["path"]
    assert main(["predict", str(saved_model), one_file]) == 0  # CSV on standard output
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "path,label,proba_cat,proba_dog,decision_rule"
    assert out[1].startswith(one_file + ",")


def test_a_diverging_fit_is_a_user_error_with_its_advice(binary_folder, tmp_path, capsys):
    argv = ["fit", binary_folder, "--out", str(tmp_path / "m"), *SMALL_FIT, "--lr", "1e30"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "error: Training diverged" in err and "Lower lr" in err
    assert "unexpected" not in err


def test_fit_says_what_it_kept_an_epoch_or_a_frozen_heads_penalty(binary_folder, tmp_path, capsys):
    argv = ["fit", binary_folder, *SMALL_FIT, "--weights", "none"]
    assert main([*argv, "--out", str(tmp_path / "epochs")]) == 0
    assert re.search(r"kept epoch [12];", capsys.readouterr().err)
    assert main([*argv, "--out", str(tmp_path / "frozen"), "--freeze-backbone"]) == 0
    err = capsys.readouterr().err
    assert re.search(r"kept head penalty [0-9.e-]+ \(point \d+ of 11 of its path\);", err), err


@needs_persistence
def test_report_on_a_labelled_folder(saved_model, binary_folder, tmp_path):
    out = tmp_path / "report"
    assert main(["report", str(saved_model), binary_folder, "--out", str(out)]) == 0
    page = (out / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') >= 4
    assert "confusion_matrix" in page and "spe" in page


@needs_persistence
def test_report_refuses_classes_the_model_does_not_know(saved_model, tmp_path, capsys):
    folder = make_folder(tmp_path / "other", {"cat": 3, "bird": 3}, size=8)
    assert main(["report", str(saved_model), folder, "--out", str(tmp_path / "o")]) == 1
    assert_one_line_error(capsys, "'bird'", "does not know")


@needs_persistence
def test_predict_names_a_missing_image(saved_model, tmp_path, capsys):
    assert main(["predict", str(saved_model), str(tmp_path / "nope.png")]) == 1
    assert_one_line_error(capsys, "nope.png", "does not exist")


@pytest.mark.skipif(
    not hasattr(__import__("imbal_estimators"), "ImbalanceSearchCV"),
    reason="imbal_estimators.ImbalanceSearchCV (the search module) is not in this checkout",
)
def test_tune_runs_trials_in_a_persistent_study(binary_folder, tmp_path, capsys):
    import optuna

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    argv = ["tune", binary_folder, "--trials", "2", "--cv", "2", *SMALL_FIT]
    assert main([*argv, "--storage", storage, "--study", "pets"]) == 0
    assert "best f1:" in capsys.readouterr().out
    study = optuna.load_study(study_name="pets", storage=storage)
    assert len(study.trials) == 2


def test_demo_restores_the_torch_thread_count(tmp_path, monkeypatch):
    import torch

    seen = []
    monkeypatch.setattr(cli, "_run_demo", lambda args: seen.append(torch.get_num_threads()) or 0)
    before = torch.get_num_threads()
    assert main(["demo", "--quick", "--data", str(tmp_path / "d")]) == 0
    assert seen == [1] and torch.get_num_threads() == before
