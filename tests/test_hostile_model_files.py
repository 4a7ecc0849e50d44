"""Crafted model directories: none hangs, fills the memory, runs foreign code or loads
silently; each is refused with an error naming the file and the field (issue 20)."""

import hashlib
import json
import os
import re
import sys
import threading

import numpy as np
import pytest
from conftest import tiny_classifier as make
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_bytes

from imbal_estimators import ImageImbalanceClassifier, SmallCNN, load
from imbal_estimators.estimator.persistence import ModelFileError
from imbal_estimators.io.reader import UnreadableFileError, read_bytes, read_json
from imbal_estimators.io.references import UntrustedReferenceError, resolve_reference


@pytest.fixture(scope="module")
def fitted(binary_data):
    X, y = binary_data
    return make(module=SmallCNN, module__width=4, max_epochs=1, threshold=0.5).fit(X, y)


@pytest.fixture
def model(fitted, tmp_path):
    path = tmp_path / "model"
    fitted.save(path)
    return path


def _craft(model, edit):
    path = model / "config.json"
    config = json.loads(path.read_text())
    edit(config)
    path.write_text(json.dumps(config))


def _load_within(path, seconds=20, **kwargs):
    """``load(path)`` in a daemon thread: a hang fails the test instead of blocking it."""
    outcome = {}

    def run():
        try:
            outcome["value"] = load(path, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"load({path!r}) still runs after {seconds} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


# -- the import allow-list ---------------------------------------------------------------


@pytest.mark.parametrize(
    "reference, message",
    [
        ("torch.utils.model_dump.__main__:x", "part '__main__' is a dunder"),
        ("imbal_estimators.__main__:main", "part '__main__' is a dunder"),
        ("torch.nn.__init__:Linear", "part '__init__' is a dunder"),
        ("torch.nn:Module.__init__", "part '__init__' is a dunder"),
        ("torch.utils.model_dump:main", "module 'torch.utils.model_dump' is not one"),
        ("torch.utils.bottleneck:main", "module 'torch.utils.bottleneck' is not one"),
    ],
)
def test_a_module_path_outside_the_exact_list_is_refused_before_import(model, reference, message):
    module = reference.partition(":")[0]
    before = module in sys.modules
    _craft(model, lambda c: c["params"].update(module={"__import__": reference}))
    with pytest.raises(UntrustedReferenceError, match=re.escape(message)) as info:
        _load_within(model)
    assert "config.json" in str(info.value) and reference in str(info.value)
    assert (module in sys.modules) == before  # nothing was imported
    assert "torch.utils.model_dump" not in sys.modules


def test_the_allow_list_still_admits_what_saves_write():
    assert resolve_reference("torch.optim.sgd:SGD", "refer").__name__ == "SGD"
    sampler = "imblearn.over_sampling._random_over_sampler:RandomOverSampler"
    assert resolve_reference(sampler, "build").__name__ == "RandomOverSampler"
    assert resolve_reference("sklearn.metrics:f1_score", "refer").__name__ == "f1_score"


def test_an_object_is_looked_up_without_module_getattr(monkeypatch):
    """A lazy module ``__getattr__`` (torch imports submodules through one) never runs."""
    import torch.nn

    called = []
    monkeypatch.setattr(torch.nn, "__getattr__", lambda name: called.append(name), raising=False)
    with pytest.raises(UntrustedReferenceError, match="has no 'NoSuchThing'"):
        resolve_reference("torch.nn:NoSuchThing", "build")
    assert called == []


# -- the bounded reader ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["config.json", "model.safetensors", "ensemble.json"])
def test_a_fifo_is_refused_without_blocking(model, name):
    (model / name).unlink(missing_ok=True)
    os.mkfifo(model / name)
    with pytest.raises(ModelFileError, match=f"{name}' is not a regular file: it is a FIFO"):
        _load_within(model)


@pytest.mark.parametrize("name", ["config.json", "model.safetensors"])
def test_a_link_to_dev_zero_is_refused(model, name):
    (model / name).unlink()
    os.symlink("/dev/zero", model / name)
    with pytest.raises(ModelFileError, match=f"{name}' is a symbolic link .* leads out of"):
        _load_within(model)


def test_a_link_inside_the_model_directory_is_followed(model, fitted, binary_data):
    os.rename(model / "model.safetensors", model / "weights.bin")
    os.symlink("weights.bin", model / "model.safetensors")
    X, _ = binary_data
    np.testing.assert_allclose(load(model).predict_proba(X[:4]), fitted.predict_proba(X[:4]))


def test_a_huge_sparse_config_is_refused_before_reading(model):
    os.truncate(model / "config.json", 10 << 30)  # 10 GiB, no disk used
    with pytest.raises(ModelFileError, match=r"config.json' is larger than 67108864 bytes"):
        _load_within(model)


def test_huge_weights_are_refused_before_reading(model):
    size = (model / "model.safetensors").stat().st_size
    os.truncate(model / "model.safetensors", 100 << 30)
    with pytest.raises(ModelFileError, match=rf"larger than {size} bytes \(107374182400 bytes"):
        _load_within(model)
    _craft(model, lambda c: c["files"]["model.safetensors"].update(bytes=100 << 30))
    with pytest.raises(ModelFileError, match="field 'files' records .* up to 8589934592"):
        _load_within(model)


def test_deep_json_is_refused_without_recursion_error(model):
    deep = "[" * 100_000 + "]" * 100_000
    text = (model / "config.json").read_text()
    (model / "config.json").write_text(text.replace('"params": {', f'"deep": {deep}, "params": {{'))
    with pytest.raises(ModelFileError, match="nests JSON 100001 levels deep, more than the 64"):
        _load_within(model)


def test_the_reader_on_its_own(tmp_path):
    (tmp_path / "a.json").write_text('{"a": "[[[[[[", "b": [[1]]}')
    assert read_json(tmp_path / "a.json", 100, max_depth=3) == {"a": "[[[[[[", "b": [[1]]}
    with pytest.raises(UnreadableFileError, match="nests JSON 3 levels deep, more than the 2"):
        read_json(tmp_path / "a.json", 100, max_depth=2)
    with pytest.raises(UnreadableFileError, match=r"is larger than 10 bytes \(27 bytes\)"):
        read_bytes(tmp_path / "a.json", 10)
    with pytest.raises(FileNotFoundError, match="b.json' does not exist"):
        read_bytes(tmp_path / "b.json", 10)
    with pytest.raises(UnreadableFileError, match="is not a regular file: it is a directory"):
        read_bytes(tmp_path, 10)
    with pytest.raises(UnreadableFileError, match="character device"):
        read_bytes("/dev/zero", 10)
    (tmp_path / "bad.json").write_bytes(b'{"a": \xff}')
    with pytest.raises(UnreadableFileError, match="bad.json' is not UTF-8"):
        read_json(tmp_path / "bad.json", 100)


# -- fitted values and parameters --------------------------------------------------------


def _fitted_value(name, value):
    return lambda c: c["fitted"].update({name: value})


@pytest.mark.parametrize(
    "edit, message",
    [
        (_fitted_value("threshold_", {"__float__": "nan"}), "'threshold_' must be a finite"),
        (_fitted_value("threshold_", 2.0), r"'threshold_' must be a finite number in \[0, 1\]"),
        (_fitted_value("threshold_", "half"), "'threshold_' must be a finite number"),
        (_fitted_value("temperature_", {"__float__": "inf"}), "'temperature_' must be"),
        (_fitted_value("class_weight_", [1.0, {"__float__": "nan"}]), "'class_weight_' must"),
        (_fitted_value("class_weight_", [1.0]), "one number per class"),
        (_fitted_value("pos_index_", 7), "'pos_index_' must be an index of the 2 classes"),
        (_fitted_value("batch_size_", 10**9), "batch_size_"),
        (_fitted_value("evil", 1), "unknown fitted attribute 'evil'"),
        (
            lambda c: c["classes"].update(values=["cat", "cat"]),
            "'classes' lists 'cat' more than once",
        ),
        (
            lambda c: c["classes"].update(values=[0.0, {"__float__": "nan"}], dtype="<f8"),
            "'classes' holds nan",
        ),
        (lambda c: c["classes"].update(values=["cat"], dtype="<U3"), "at least two classes"),
        (
            lambda c: c["params"].update(posthoc_tau={"__float__": "nan"}),
            "'posthoc_tau' parameter of ImageImbalanceClassifier must be",
        ),
        (
            lambda c: c["params"].update(posthoc_tau={"__float__": "inf"}),
            r"'posthoc_tau' parameter .* must be None or a float in the range \[0.0, inf\)",
        ),
        (
            lambda c: c["params"].update(image_size=100000),
            r"'image_size' parameter of ImageImbalanceClassifier must be a str among "
            r"\{'auto'\} or an int in the range \[1, 4096\]",
        ),
        (lambda c: c["params"].update(tta=12345), r"'tta' parameter .* \[1, 64\]"),
        (lambda c: c["params"].update(batch_size=10**8), "'batch_size' parameter"),
        (lambda c: c["params"].update(loss="evil"), "'loss' parameter"),
        (
            lambda c: c["params"].update(image_size=32),
            "'preprocessing' says image_size=16 but the 'image_size' parameter is 32",
        ),
        (
            lambda c: c["preprocessing"].update(mean=[0.1, 0.1, 0.1]),
            r"'preprocessing.mean' is \[0.1, 0.1, 0.1\], but the weights normalize with",
        ),
    ],
)
def test_out_of_range_values_are_refused_naming_the_field(model, edit, message):
    _craft(model, edit)
    with pytest.raises(ModelFileError, match=message) as info:
        _load_within(model)
    assert "config.json" in str(info.value)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c.update(params="evil"), "the field 'params' is a JSON str"),
        (lambda c: c.update(classes=5), "the field 'classes' is a JSON int"),
        (lambda c: c.update(classes={"values": 1}), "must hold a list 'values'"),
        (lambda c: c.update(history="x"), "the field 'history' is a JSON str"),
        (lambda c: c.update(history=[1]), "'history' must be a list of objects"),
        (lambda c: c.update(fitted=[]), "the field 'fitted' is a JSON list"),
        (lambda c: c["params"].update(evil=1), "got unexpected argument.s. evil"),
        (lambda c: c["params"].update(lr={"__tuple__": 5}), r"parameter 'lr' cannot be read"),
        (
            lambda c: c["params"].update(lr={"__ndarray__": [0], "dtype": "V1000000000"}),
            "parameter 'lr' cannot be read",
        ),
        (lambda c: c["params"].update(lr={"__ndarray__": [0]}), "parameter 'lr' cannot be read"),
        (lambda c: c["classes"].update(dtype="evil"), "field 'classes' cannot be read"),
        (lambda c: c.update(files={"model.safetensors": "big"}), "field 'files' records"),
    ],
)
def test_wrong_types_name_the_file_and_field(model, edit, message):
    _craft(model, edit)
    with pytest.raises(ModelFileError, match=message) as info:
        _load_within(model)
    assert "config.json" in str(info.value)


def _rewrite_weights(model, edit):
    data = (model / "model.safetensors").read_bytes()
    state = safetensors_load(data)
    edit(state)
    data = safetensors_bytes(state, {"format": "pt"})
    (model / "model.safetensors").write_bytes(data)
    digest = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    _craft(model, lambda c: c["files"].update({"model.safetensors": digest}))


def test_nan_weights_are_refused(model):
    def poison(state):
        key = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1)
        state[key][0] = float("nan")

    _rewrite_weights(model, poison)
    with pytest.raises(ModelFileError, match="model.safetensors': the tensor .* NaN"):
        _load_within(model)


def test_a_huge_module_object_is_counted_before_it_is_built(model):
    huge = {
        "__object__": "torch.nn:Linear",
        "params": {"in_features": 60000, "out_features": 60000},
    }
    _craft(model, lambda c: c["params"].update(module=huge))
    with pytest.raises(UntrustedReferenceError, match="with 3600060000 values, more than the"):
        _load_within(model)


def test_a_network_larger_than_its_weights_is_not_built(model):
    _craft(model, lambda c: c["params"].update(module__width=100_000))
    with pytest.raises(ModelFileError, match=r"describes a network of \d+ values, but .* holds"):
        _load_within(model)


def test_a_sound_save_still_loads_and_predicts_the_same(model, fitted, binary_data):
    X, _ = binary_data
    loaded = _load_within(model)
    np.testing.assert_array_equal(loaded.predict_proba(X), fitted.predict_proba(X))
    assert loaded.threshold_ == fitted.threshold_


@pytest.mark.parametrize(
    "param, value",
    [("image_size", 100_000), ("tta", 12345), ("batch_size", 10**6)],
)
def test_the_constructor_bounds_resource_sizes(binary_data, param, value):
    X, y = binary_data
    clf = ImageImbalanceClassifier(**{param: value})
    with pytest.raises(ValueError, match=f"The '{param}' parameter of ImageImbalanceClassifier"):
        clf.fit(X, y)


def test_predict_on_a_crafted_model_is_one_error_line(model, binary_folder, capsys):
    """0.2 ran torch's model_dump program: SystemExit 2 and another program's usage."""
    from imbal_estimators.app.cli import main

    _craft(
        model,
        lambda c: c["params"].update(module={"__import__": "torch.utils.model_dump.__main__:x"}),
    )
    assert main(["predict", str(model), str(binary_folder)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "config.json" in err[0] and "'__main__' is a dunder" in err[0]
    assert "torch.utils.model_dump" not in sys.modules


@pytest.mark.parametrize(
    "network, module, message",
    [
        (
            {"module": "torch.nn:Linear"},
            {
                "__object__": "torch.nn:Linear",
                "params": {"in_features": 60000, "out_features": 60000},
            },
            "with 3600060000 values, more than the",
        ),
        ("evil", {"__import__": "x:y"}, "the field 'network' is a JSON str"),
        (
            {"module": "torch.nn:Linear"},
            {"__object__": "torch.nn:Linear"},
            "the parameter 'module' cannot be read",
        ),
    ],
)
def test_the_saved_network_record_is_checked_too(model, network, module, message):
    _craft(model, lambda c: c.update(network=network) or c["params"].update(module=module))
    with pytest.raises(ValueError, match=message) as info:
        _load_within(model)
    assert "config.json" in str(info.value)


def test_an_ensemble_member_that_is_a_fifo_is_called_not_a_folder(model, tmp_path):
    import shutil

    ensemble = tmp_path / "ens"
    ensemble.mkdir()
    shutil.copytree(model, ensemble / "member-0")
    os.mkfifo(ensemble / "member-1")
    (ensemble / "ensemble.json").write_text(
        json.dumps(
            {
                "format_version": 1,
                "estimator": "imbal_estimators.SeedEnsembleClassifier",
                "members": ["member-0", "member-1"],
            }
        )
    )
    with pytest.raises(ModelFileError, match=r"member-1', a member that .* is not a folder"):
        _load_within(ensemble)
