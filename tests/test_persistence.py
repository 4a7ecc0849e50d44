"""clf.save(path) / imbal_estimators.load(path): safetensors + JSON, no pickle anywhere."""

import itertools
import json
import multiprocessing
import os
import pathlib
import pickle
import signal
import stat
import struct
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch
from conftest import TinyCNN
from conftest import tiny_classifier as make
from imblearn.over_sampling import RandomOverSampler
from skorch.callbacks import EarlyStopping

import imbal_estimators
from imbal_estimators import FocalLoss, ImageImbalanceClassifier, SmallCNN, load
from imbal_estimators.io.jsonable import UnserializableParameterError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def fitted(binary_data):
    """SmallCNN lives in imbal_estimators: the model loads without trusted=True."""
    X, y = binary_data
    return make(
        module=SmallCNN,
        loss=FocalLoss,
        alpha={"cat": 1.0, "dog": 3.0},
        sampler=RandomOverSampler(sampling_strategy=0.5),
        callbacks=[EarlyStopping(patience=3)],
        max_epochs=2,
    ).fit(X, y)


def test_saved_files_are_safetensors_and_json_only(fitted, tmp_path):
    assert fitted.save(tmp_path / "model") == str(tmp_path / "model")
    assert sorted(os.listdir(tmp_path / "model")) == ["config.json", "model.safetensors"]
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["format_version"] == 1
    assert config["estimator"] == "imbal_estimators.estimator.classifier:ImageImbalanceClassifier"
    assert config["classes"] == {"values": ["cat", "dog"], "dtype": "<U3"}
    assert config["params"]["loss"] == {"__import__": "imbal_estimators.losses.focal:FocalLoss"}
    assert config["params"]["sampler"]["__object__"].endswith(":RandomOverSampler")
    assert config["params"]["sampler"]["params"]["sampling_strategy"] == 0.5
    assert config["preprocessing"]["image_size"] == 16
    assert len(config["history"]) == 2
    # safetensors: an 8-byte header length, a JSON header, then raw tensor bytes only
    raw = (tmp_path / "model" / "model.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    data_end = max(v["data_offsets"][1] for k, v in header.items() if k != "__metadata__")
    assert len(raw) == 8 + n + data_end
    state = fitted.module_.state_dict()
    assert set(header) - {"__metadata__"} == set(state)


def test_load_reads_no_pickle(fitted, tmp_path, binary_data, monkeypatch):
    X, _ = binary_data
    fitted.save(tmp_path)

    def refuse(*args, **kwargs):
        raise AssertionError("load must not unpickle")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(torch, "load", refuse)
    loaded = load(tmp_path)
    np.testing.assert_array_equal(loaded.predict_proba(X), fitted.predict_proba(X))


def test_round_trip_restores_parameters_and_fitted_state(fitted, tmp_path):
    fitted.save(tmp_path)
    loaded = imbal_estimators.load(tmp_path)
    assert type(loaded) is ImageImbalanceClassifier
    assert loaded.loss is FocalLoss
    assert loaded.alpha == {"cat": 1.0, "dog": 3.0}
    assert isinstance(loaded.sampler, RandomOverSampler)
    assert loaded.sampler.sampling_strategy == 0.5
    assert isinstance(loaded.callbacks[0], EarlyStopping) and loaded.callbacks[0].patience == 3
    assert loaded.module is SmallCNN
    assert loaded.classes_.dtype == fitted.classes_.dtype
    assert loaded.classes_.tolist() == ["cat", "dog"]
    np.testing.assert_array_equal(loaded.class_weight_, fitted.class_weight_)
    np.testing.assert_array_equal(loaded.class_counts_, fitted.class_counts_)
    assert loaded.best_epoch_ == fitted.best_epoch_
    assert list(loaded.history[:, "train_loss"]) == list(fitted.history[:, "train_loss"])
    # deep params list the callbacks once they are initialized, when training begins
    assert loaded.get_params(deep=False).keys() == fitted.get_params(deep=False).keys()


def test_load_in_a_fresh_process_gives_identical_probabilities(fitted, tmp_path, binary_data):
    X, _ = binary_data
    fitted.save(tmp_path / "m")
    expected = fitted.predict_proba(X)
    np.save(tmp_path / "X.npy", np.asarray(X, dtype=str))
    child = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {os.path.join(REPO, "tests")!r})
        import numpy as np
        import imbal_estimators
        X = np.load({str(tmp_path / "X.npy")!r}).tolist()
        proba = imbal_estimators.load({str(tmp_path / "m")!r}).predict_proba(X)
        np.save({str(tmp_path / "proba.npy")!r}, proba)
        """
    )
    subprocess.run(
        [sys.executable, "-c", child],
        env=dict(os.environ, PYTHONPATH=REPO),
        check=True,
        timeout=300,
    )
    np.testing.assert_array_equal(np.load(tmp_path / "proba.npy"), expected)


test_load_in_a_fresh_process_gives_identical_probabilities = pytest.mark.slow(
    test_load_in_a_fresh_process_gives_identical_probabilities
)


def test_integer_labels_and_pretrained_weights_parameter(int_binary_data, tmp_path):
    """weights='DEFAULT' is kept as a parameter, but load never downloads: the tensors are saved."""
    X, y = int_binary_data[0][::3], int_binary_data[1][::3]
    clf = make(module=None, max_epochs=1, train_split=False).fit(X, y)
    clf.save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["params"]["weights"] = "DEFAULT"  # as if fitted from ImageNet weights
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    loaded = load(tmp_path / "m")  # the no_downloads fixture fails any download
    assert loaded.weights == "DEFAULT"
    assert loaded.classes_.dtype == clf.classes_.dtype and loaded.classes_.tolist() == [0, 1]
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only machine")
def test_a_model_saved_for_cuda_loads_on_the_cpu(fitted, tmp_path, binary_data):
    X, _ = binary_data
    fitted.save(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["params"]["device"] = "cuda"
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.warns(UserWarning, match="device='cuda', which this machine lacks"):
        loaded = load(tmp_path)
    assert loaded.device == "cpu"
    np.testing.assert_array_equal(loaded.predict_proba(X), fitted.predict_proba(X))


def test_unsaveable_parameter_is_named(binary_data, tmp_path):
    X, y = binary_data
    clf = make(max_epochs=1, loss=FocalLoss(gamma=1.0, alpha=torch.ones(2))).fit(X, y)
    with pytest.raises(UnserializableParameterError, match="parameter 'loss'"):
        clf.save(tmp_path / "m")
    assert not (tmp_path / "m").exists()  # nothing written

    clf = make(max_epochs=1, augment=lambda image: image).fit(X, y)
    with pytest.raises(UnserializableParameterError, match="parameter 'augment'.*lambda"):
        clf.save(tmp_path / "m")


def test_load_of_something_else_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json; it is not a directory written"):
        load(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"format_version": 99}))
    with pytest.raises(ValueError, match="format_version 99"):
        load(tmp_path)


def test_pickle_still_works_for_trusted_files(fitted, binary_data):
    X, _ = binary_data
    clone = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(clone.predict_proba(X), fitted.predict_proba(X))


def keep_all(X, y):
    """A FunctionSampler function: every row, once."""
    return X, y


def test_a_file_naming_a_function_is_refused_unless_trusted(binary_data, tmp_path):
    from imblearn import FunctionSampler

    from imbal_estimators.io.jsonable import UntrustedReferenceError

    X, y = binary_data
    clf = make(module=SmallCNN, max_epochs=1, sampler=FunctionSampler(func=keep_all)).fit(X, y)
    clf.save(tmp_path)
    with pytest.raises(UntrustedReferenceError, match="names 'test_persistence:keep_all'"):
        load(tmp_path)
    loaded = load(tmp_path, trusted=True)
    assert loaded.sampler.func is keep_all
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


def test_a_crafted_config_cannot_call_arbitrary_functions(fitted, tmp_path):
    fitted.save(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    marker = tmp_path / "ran"
    config["params"]["module"] = {"__import__": "os:system"}
    config["params"]["module__command"] = f"touch {marker}"
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="'os:system', which is not on the allow-list"):
        load(tmp_path)
    config["params"]["module"] = {"__object__": "subprocess:Popen", "params": {"args": ["true"]}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="'subprocess:Popen', which is not on the allow-list"):
        load(tmp_path)
    config["params"]["module"] = {"__object__": "torch.utils.data:TensorDataset", "params": {}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="'torch.utils.data:TensorDataset', which is not a class"):
        load(tmp_path)  # an allowed package, but not a kind that loading builds
    config["estimator"] = "collections:OrderedDict"
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="names the estimator 'collections:OrderedDict'"):
        load(tmp_path)
    assert not marker.exists()


def test_decision_threshold_and_temperature_survive_save_and_load(binary_data, tmp_path):
    X, y = binary_data
    clf = make(module=SmallCNN, threshold="auto", calibrate=True).fit(X, y)
    loaded = load(clf.save(tmp_path / "decision"))
    assert loaded.threshold_ == clf.threshold_
    assert loaded.temperature_ == clf.temperature_
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))


def test_frozen_backbone_model_round_trips(binary_data, tmp_path):
    X, y = binary_data
    clf = make(module=SmallCNN, freeze_backbone=True).fit(X, y)
    loaded = load(clf.save(tmp_path / "frozen"))
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


# ------------------------------------------------------------------ load runs no foreign code

PAYLOAD = "import pathlib\npathlib.Path({marker!r}).write_text('ran')\nM = object\n"


def _craft(model_dir, edit):
    path = model_dir / "config.json"
    config = json.loads(path.read_text())
    edit(config)
    path.write_text(json.dumps(config))


def test_load_imports_nothing_from_the_model_directory(fitted, tmp_path, monkeypatch):
    """config.json names payload:M and payload.py lies beside it; load runs from that
    directory, so the directory is first on sys.path."""
    model = tmp_path / "model"
    fitted.save(model)
    marker = tmp_path / "payload_ran"
    (model / "payload.py").write_text(PAYLOAD.format(marker=str(marker)))
    _craft(model, lambda c: c["params"].update(module={"__import__": "payload:M"}))
    monkeypatch.chdir(model)
    monkeypatch.syspath_prepend(str(model))
    with pytest.raises(ValueError, match="names 'payload:M', which is not on the allow-list"):
        load(".")
    assert not marker.exists() and "payload" not in sys.modules
    _craft(model, lambda c: c.update(estimator="payload:M"))
    with pytest.raises(ValueError, match="names the estimator 'payload:M'"):
        load(".")
    assert not marker.exists() and "payload" not in sys.modules


def test_the_estimator_reference_is_checked_before_import(fitted, tmp_path, capsys):
    fitted.save(tmp_path)
    _craft(tmp_path, lambda c: c.update(estimator="this:x"))  # importing `this` prints
    had_this = "this" in sys.modules
    with pytest.raises(ValueError, match="names the estimator 'this:x'"):
        load(tmp_path)
    assert "Beautiful is better than ugly" not in capsys.readouterr().out
    assert ("this" in sys.modules) == had_this
    fitted.save(tmp_path)
    for reference in ("os:__builtins__", "torch:__builtins__.eval", "torch:x;y"):
        _craft(tmp_path, lambda c, r=reference: c["params"].update(module={"__import__": r}))
        with pytest.raises(ValueError, match=f"names {reference!r}"):
            load(tmp_path)


def test_the_0_1_module_paths_map_on_the_string(fitted, tmp_path, monkeypatch):
    """Old names resolve through io.legacy's map before anything is imported, without the
    import-time alias finder."""
    from imbal_estimators.io.legacy import LegacyModuleFinder

    fitted.save(tmp_path)

    def old_names(config):
        config["estimator"] = "imbal_estimators.classifier:ImageImbalanceClassifier"
        config["params"]["module"] = {"__import__": "imbal_estimators.small_cnn:SmallCNN"}
        config["params"]["loss"] = {"__import__": "imbal_estimators.focal:FocalLoss"}

    _craft(tmp_path, old_names)
    finders = [f for f in sys.meta_path if not isinstance(f, LegacyModuleFinder)]
    monkeypatch.setattr(sys, "meta_path", finders)
    for old in ("imbal_estimators.classifier", "imbal_estimators.small_cnn"):
        monkeypatch.delitem(sys.modules, old, raising=False)
    loaded = load(tmp_path)
    assert type(loaded) is ImageImbalanceClassifier and loaded.module is SmallCNN
    assert loaded.loss is FocalLoss


def test_a_user_network_class_loads_when_named_at_save(binary_data, tmp_path):
    X, y = binary_data
    clf = make(max_epochs=1).fit(X, y)  # TinyCNN lives in the tests' conftest module
    clf.save(tmp_path)
    loaded = load(tmp_path)  # the network record names it: importable, an nn.Module
    assert loaded.module is TinyCNN
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    # without the record (a file of version 0.2) the class needs trusted=True
    config = json.loads((tmp_path / "config.json").read_text())
    del config["network"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="names 'conftest:TinyCNN', which is not on the allow"):
        load(tmp_path)
    assert load(tmp_path, trusted=True).module is TinyCNN


class _Payload:
    """Unpickling this runs code (what a crafted params.pt does)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.write_text, (pathlib.Path(self.marker), "ran"))


def test_no_parameter_reenables_pickle_loading_without_trusted(fitted, tmp_path, monkeypatch):
    """LoadInitState + a Checkpoint into the model directory + weights_only=False: fitting
    the loaded model would unpickle params.pt from the directory."""
    model = tmp_path / "model"
    fitted.save(model)
    marker = tmp_path / "unpickled"
    torch.save(_Payload(str(marker)), model / "params.pt")
    with pytest.raises(pickle.UnpicklingError):  # what weights_only=True stops
        torch.load(model / "params.pt", weights_only=True)
    checkpoint = {
        "__object__": "skorch.callbacks.training:Checkpoint",
        "params": {"dirname": str(model), "monitor": None},
    }
    attacks = {
        "LoadInitState": {
            "callbacks": [
                {"__object__": "skorch.callbacks.training:LoadInitState", "params": {}},
            ]
        },
        "torch_load_kwargs": {"torch_load_kwargs": {"weights_only": False}},
        "a Checkpoint": {"callbacks": [checkpoint]},
        "callbacks__cp__dirname": {"callbacks__cp__dirname": str(model)},
        "combined": {
            "callbacks": [
                checkpoint,
                {
                    "__object__": "skorch.callbacks.training:LoadInitState",
                    "params": {"checkpoint": checkpoint},
                },
            ],
            "torch_load_kwargs": {"weights_only": False},
        },
    }
    original = (model / "config.json").read_text()
    for name, params in attacks.items():
        (model / "config.json").write_text(original)
        _craft(model, lambda c, p=params: c["params"].update(p))
        with pytest.raises(ValueError, match="trusted=True") as info:
            load(model)
        expected = {"combined": "LoadInitState", "a Checkpoint": "in the model directory"}
        assert expected.get(name, name) in str(info.value), (name, str(info.value))
    monkeypatch.chdir(model)  # skorch resolves a Checkpoint's dirname "" in the cwd
    (model / "config.json").write_text(original)
    _craft(model, lambda c: c["params"].update(callbacks=[{**checkpoint, "params": {}}]))
    with pytest.raises(ValueError, match="whose files lie in the model directory"):
        load(model)
    assert not marker.exists()


def test_skorch_scoring_and_checkpoint_callbacks_load_untrusted(binary_data, tmp_path):
    from sklearn.metrics import balanced_accuracy_score
    from skorch.callbacks import Checkpoint, EpochScoring

    X, y = binary_data
    made = tmp_path / "made_by_training"
    callbacks = [
        ("f1", EpochScoring("f1_macro", lower_is_better=False, name="f1")),
        ("auc", EpochScoring(balanced_accuracy_score, lower_is_better=False, name="auc")),
        ("cp", Checkpoint(dirname=str(made), monitor="valid_loss_best")),
        ("stop", EarlyStopping(patience=4)),
    ]
    clf = make(module=SmallCNN, max_epochs=1, callbacks=callbacks).fit(X, y)
    clf.save(tmp_path / "m")
    import shutil

    shutil.rmtree(made)
    loaded = load(tmp_path / "m")
    assert [type(cb).__name__ for _, cb in loaded.callbacks] == [
        "EpochScoring",
        "EpochScoring",
        "Checkpoint",
        "EarlyStopping",
    ]
    assert not made.exists()  # Checkpoint.initialize creates it: not at load
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    loaded.partial_fit(X, y)  # the callbacks are initialized when training begins
    assert made.is_dir() and "f1" in loaded.history[-1] and "auc" in loaded.history[-1]


def test_a_crafted_checkpoint_callback_creates_no_directory_at_load(fitted, tmp_path):
    fitted.save(tmp_path / "m")
    target = tmp_path / "a" / "b" / "c"
    checkpoint = {"__object__": "skorch.callbacks.training:Checkpoint", "params": {}}
    checkpoint["params"]["dirname"] = str(target)
    _craft(tmp_path / "m", lambda c: c["params"].update(callbacks=[checkpoint]))
    load(tmp_path / "m")
    assert not (tmp_path / "a").exists()


@pytest.mark.slow  # a fresh Python process imports torch: 5-30 s depending on the load
def test_load_from_the_command_line_runs_no_payload(fitted, binary_data, tmp_path):
    """``python -m imbal_estimators predict`` run from the model directory (cwd first on
    sys.path) refuses payload:M and names it."""
    X, _ = binary_data
    model = tmp_path / "model"
    fitted.save(model)
    marker = tmp_path / "payload_ran"
    (model / "payload.py").write_text(PAYLOAD.format(marker=str(marker)))
    _craft(model, lambda c: c["params"].update(module={"__import__": "payload:M"}))
    result = subprocess.run(
        [sys.executable, "-m", "imbal_estimators", "predict", ".", str(X[0])],
        cwd=model,
        env=dict(os.environ, PYTHONPATH=REPO),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stderr
    assert "'payload:M'" in result.stderr and "allow-list" in result.stderr
    assert not marker.exists()


# ------------------------------------------------------------------ whole or refused


def _two_models(binary_data):
    """Two models of the same shape with other labels: a mix would load without a
    complaint from torch."""
    X, y = binary_data
    first = make(module=SmallCNN, max_epochs=1, train_split=False).fit(X, y)
    relabelled = np.where(y == "cat", "x", "y")[::-1]
    second = make(module=SmallCNN, max_epochs=1, train_split=False).fit(X[::-1], relabelled)
    return first, second


def _assert_one_of(loaded, models):
    """``loaded`` is one of ``models`` whole: its classes and every tensor agree."""
    state = loaded.module_.state_dict()
    for model in models:
        if loaded.classes_.tolist() == model.classes_.tolist():
            expected = model.module_.state_dict()
            assert state.keys() == expected.keys()
            for key in state:
                torch.testing.assert_close(state[key], expected[key], rtol=0, atol=0)
            return
    raise AssertionError(f"classes {loaded.classes_} are none of the saved models'")


def _save_forever(models, path):
    torch.set_num_threads(1)  # a forked child must not reuse the parent's thread pool
    for i in itertools.count():
        models[i % 2].save(path)


def _kill_during_saves(models, path, n_kills, seed=0):
    """Fork a child that saves the two models alternately into ``path``; SIGKILL it at a
    random moment; after each kill the directory loads whole as one of the two."""
    rng = np.random.default_rng(seed)
    context = multiprocessing.get_context("fork")
    outcomes = []
    for _ in range(n_kills):
        child = context.Process(target=_save_forever, args=(models, str(path)))
        child.start()
        time.sleep(float(rng.uniform(0.05, 0.4)))
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        assert child.exitcode == -signal.SIGKILL
        if not path.exists():  # killed before the first save was published
            outcomes.append("none")
            continue
        loaded = load(path)
        _assert_one_of(loaded, models)
        outcomes.append(loaded.classes_[0])
        assert sorted(os.listdir(path)) == ["config.json", "model.safetensors"]
    return outcomes


def test_kills_during_save_never_leave_a_mix(binary_data, tmp_path):
    models = _two_models(binary_data)
    outcomes = _kill_during_saves(models, tmp_path / "model", n_kills=6)
    assert set(outcomes) - {"none"}  # some kill came after a save


@pytest.mark.slow
def test_25_kills_during_save_never_leave_a_mix(binary_data, tmp_path):
    models = _two_models(binary_data)
    outcomes = _kill_during_saves(models, tmp_path / "model", n_kills=25, seed=1)
    assert {"cat", "x"} <= set(outcomes)  # both models were found after some kill


def test_save_replaces_an_earlier_save_and_leaves_nothing_beside_it(binary_data, tmp_path):
    first, second = _two_models(binary_data)
    first.save(tmp_path / "m")
    second.save(tmp_path / "m")
    _assert_one_of(load(tmp_path / "m"), [second])
    assert os.listdir(tmp_path) == ["m"]


def test_save_refuses_a_directory_with_other_files(fitted, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="holds other files .*notes.txt"):
        fitted.save(tmp_path)
    assert os.listdir(tmp_path) == ["notes.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="not a directory"):
        fitted.save(tmp_path / "file")


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_save_honours_the_umask(fitted, tmp_path, umask):
    old = os.umask(umask)
    try:
        fitted.save(tmp_path / "m")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "m").st_mode) == 0o777 & ~umask
    for name in ("config.json", "model.safetensors"):
        assert stat.S_IMODE(os.stat(tmp_path / "m" / name).st_mode) == 0o666 & ~umask


def test_truncated_or_mixed_files_are_refused_naming_the_file(binary_data, tmp_path):
    from imbal_estimators.estimator.persistence import ModelFileError

    first, second = _two_models(binary_data)
    first.save(tmp_path / "a")
    second.save(tmp_path / "b")
    weights = tmp_path / "a" / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match=r"model\.safetensors.*truncated, damaged"):
        load(tmp_path / "a")
    weights.write_bytes((tmp_path / "b" / "model.safetensors").read_bytes())  # another save's
    with pytest.raises(ModelFileError, match=f"{weights}.*from another save"):
        load(tmp_path / "a")
    config = tmp_path / "b" / "config.json"
    config.write_text(config.read_text()[:200])
    with pytest.raises(ModelFileError, match=f"{config}.*not valid JSON.*truncated"):
        load(tmp_path / "b")
    os.remove(weights)
    with pytest.raises(ModelFileError, match=f"{weights}.*is missing"):
        load(tmp_path / "a")


def test_a_truncated_0_1_save_without_a_digest_names_the_file(tmp_path):
    import shutil

    from imbal_estimators.estimator.persistence import ModelFileError

    legacy = tmp_path / "saved"
    shutil.copytree(pathlib.Path(__file__).parent / "data" / "legacy_0_1" / "saved", legacy)
    weights = legacy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(ModelFileError, match=f"{weights}.*cannot be read as safetensors"):
        load(legacy)


def test_save_over_an_earlier_save_where_directories_cannot_be_swapped(
    binary_data, tmp_path, monkeypatch
):
    import imbal_estimators.io.atomic as atomic

    first, second = _two_models(binary_data)
    first.save(tmp_path / "m")
    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)  # no renameat2 here
    second.save(tmp_path / "m")
    _assert_one_of(load(tmp_path / "m"), [second])
    assert os.listdir(tmp_path) == ["m"]
