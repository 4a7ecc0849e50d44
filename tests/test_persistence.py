"""clf.save(path) / imbal_estimators.load(path): safetensors + JSON, no pickle anywhere."""

import json
import os
import pickle
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from conftest import TinyCNN
from conftest import tiny_classifier as make
from imblearn.over_sampling import RandomOverSampler
from skorch.callbacks import EarlyStopping

import imbal_estimators
from imbal_estimators import FocalLoss, ImageImbalanceClassifier, load
from imbal_estimators.io.jsonable import UnserializableParameterError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def fitted(binary_data):
    X, y = binary_data
    return make(
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
    assert loaded.module is TinyCNN
    assert loaded.classes_.dtype == fitted.classes_.dtype
    assert loaded.classes_.tolist() == ["cat", "dog"]
    np.testing.assert_array_equal(loaded.class_weight_, fitted.class_weight_)
    np.testing.assert_array_equal(loaded.class_counts_, fitted.class_counts_)
    assert loaded.best_epoch_ == fitted.best_epoch_
    assert list(loaded.history[:, "train_loss"]) == list(fitted.history[:, "train_loss"])
    assert loaded.get_params().keys() == fitted.get_params().keys()


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
    clf.save(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["params"]["weights"] = "DEFAULT"  # as if fitted from ImageNet weights
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = load(tmp_path)  # the no_downloads fixture fails any download
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
    clf = make(max_epochs=1, sampler=FunctionSampler(func=keep_all)).fit(X, y)
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
    with pytest.raises(ValueError, match="'os:system', which is not a class"):
        load(tmp_path)
    config["params"]["module"] = {"__object__": "subprocess:Popen", "params": {"args": ["true"]}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="'subprocess:Popen', which is not a class of a kind"):
        load(tmp_path)
    config["estimator"] = "collections:OrderedDict"
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="which is not an ImageImbalanceClassifier"):
        load(tmp_path)
    assert not marker.exists()


def test_decision_threshold_and_temperature_survive_save_and_load(binary_data, tmp_path):
    X, y = binary_data
    clf = make(threshold="auto", calibrate=True).fit(X, y)
    loaded = load(clf.save(tmp_path / "decision"))
    assert loaded.threshold_ == clf.threshold_
    assert loaded.temperature_ == clf.temperature_
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))


def test_frozen_backbone_model_round_trips(binary_data, tmp_path):
    X, y = binary_data
    clf = make(freeze_backbone=True).fit(X, y)
    loaded = load(clf.save(tmp_path / "frozen"))
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
