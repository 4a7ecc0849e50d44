"""Parameters as JSON and back (the format of config.json and of checkpoint fingerprints)."""

import json
import math

import numpy as np
import pytest
import torch
from imblearn.pipeline import Pipeline
from imblearn.under_sampling import RandomUnderSampler
from skorch.dataset import ValidSplit
from torch.utils.data import TensorDataset

from imbal_estimators import FocalLoss
from imbal_estimators.io.jsonable import (
    UnserializableParameterError,
    UntrustedReferenceError,
    describe,
    from_json,
    to_json,
)
from imbal_estimators.io.references import resolve_reference


def _round_trip(value, trusted=False):
    return from_json(json.loads(json.dumps(to_json(value, "value"))), trusted)


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        3,
        0.25,
        "balanced",
        [1.0, 2.5],
        (1, "a"),
        {"cat": 1.0, "dog": 2.0},
        {3: 1.0, 7: 2.0},
        {"__tuple__": 1},  # a str key that looks like a tag is kept as a key
    ],
    ids=repr,
)
def test_plain_values_round_trip(value):
    result = _round_trip(value)
    assert result == value and type(result) is type(value)


def test_numpy_values():
    array = np.array([0.5, 2.0], dtype=np.float32)
    result = _round_trip(array)
    assert result.dtype == np.float32 and result.tolist() == [0.5, 2.0]
    assert _round_trip(np.int64(4)) == 4 and type(_round_trip(np.float64(0.5))) is float


def test_non_finite_floats_are_valid_json():
    text = json.dumps(to_json([math.inf, -math.inf, math.nan]), allow_nan=False)
    inf, minus_inf, nan = from_json(json.loads(text))
    assert inf == math.inf and minus_inf == -math.inf and math.isnan(nan)


def test_classes_functions_and_torch_values_by_name():
    assert _round_trip(FocalLoss) is FocalLoss
    assert _round_trip(torch.optim.SGD) is torch.optim.SGD
    assert _round_trip(print) is print  # skorch callbacks' default sink
    with pytest.raises(UntrustedReferenceError, match="'numpy:mean', which is not on the allow"):
        _round_trip(np.mean)
    assert _round_trip(np.mean, trusted=True) is np.mean
    assert _round_trip(torch.device("cuda:1")) == torch.device("cuda:1")
    assert _round_trip(torch.bfloat16) is torch.bfloat16


def test_objects_by_class_and_constructor_arguments():
    sampler = Pipeline([("under", RandomUnderSampler(sampling_strategy=0.5, random_state=1))])
    rebuilt = _round_trip(sampler)
    assert isinstance(rebuilt, Pipeline)
    assert rebuilt.steps[0][0] == "under"
    assert rebuilt.steps[0][1].get_params() == sampler.steps[0][1].get_params()
    split = _round_trip(ValidSplit(4, stratified=False))  # no get_params: init attributes
    assert (split.cv, split.stratified) == (4, False)


def test_what_cannot_be_written_is_named():
    with pytest.raises(UnserializableParameterError, match="Cannot save augment=<function"):
        to_json(lambda image: image, "augment")
    with pytest.raises(UnserializableParameterError, match=r"Cannot save loss\.alpha=tensor"):
        to_json(FocalLoss(alpha=torch.ones(2)), "loss")

    class Local:
        pass

    with pytest.raises(UnserializableParameterError, match="inside a function"):
        to_json(Local, "module")


def test_describe_is_stable_for_unserializable_values():
    assert describe(lambda x: x) == describe(lambda y: y) == "<builtins.function object>"
    assert describe({"b": 1, "a": 2}) == describe({"a": 2, "b": 1})


def test_only_parameter_kinds_are_built_from_a_file():
    dataset = {"__object__": "torch.utils.data:TensorDataset", "params": {}}
    with pytest.raises(UntrustedReferenceError, match="'torch.utils.data:TensorDataset'"):
        from_json(dataset)  # may be referred to (skorch's dataset=), not built from a file
    assert from_json({"__import__": "torch.utils.data:TensorDataset"}) is TensorDataset


# ------------------------------------------------------------------ the allow-list


@pytest.mark.parametrize(
    "reference",
    ["os:system", "subprocess:Popen", "this:x", "payload:M", "builtins:eval", "torch:__import__"],
)
def test_references_outside_the_allow_list_are_refused_before_import(reference, monkeypatch):
    import importlib

    imported = []
    real = importlib.import_module
    monkeypatch.setattr(importlib, "import_module", lambda n, *a: imported.append(n) or real(n))
    for kind in ("refer", "build", "estimator"):
        with pytest.raises(UntrustedReferenceError, match=f"names (the estimator )?'{reference}'"):
            resolve_reference(reference, kind)
    assert imported == []


def test_allowed_references():
    from sklearn.metrics import balanced_accuracy_score
    from skorch.callbacks import EpochScoring

    from imbal_estimators import ImageImbalanceClassifier, SmallCNN

    assert resolve_reference("skorch.callbacks.scoring:EpochScoring", "build") is EpochScoring
    assert resolve_reference("torch.optim.adamw:AdamW", "refer") is torch.optim.AdamW
    metric = "sklearn.metrics._classification:balanced_accuracy_score"
    assert resolve_reference(metric, "refer") is balanced_accuracy_score
    for function in (metric, "builtins:print"):  # referred to, never called to build
        with pytest.raises(UntrustedReferenceError, match="not a class of a kind that loading b"):
            resolve_reference(function, "build")
    with pytest.raises(UntrustedReferenceError, match="not a class"):
        resolve_reference("sklearn.utils:check_random_state", "refer")  # not a metric
    estimator = "imbal_estimators.classifier:ImageImbalanceClassifier"  # a 0.1 path
    assert resolve_reference(estimator, "estimator") is ImageImbalanceClassifier
    assert resolve_reference("imbal_estimators.small_cnn:SmallCNN", "build") is SmallCNN
    with pytest.raises(UntrustedReferenceError, match="names the estimator 'sklearn.svm:SVC'"):
        resolve_reference("sklearn.svm:SVC", "estimator")


def test_load_init_state_is_refused_unless_trusted():
    from skorch.callbacks import LoadInitState

    reference = "skorch.callbacks.training:LoadInitState"
    with pytest.raises(UntrustedReferenceError, match="LoadInitState loads files with torch.load"):
        resolve_reference(reference, "build")
    assert resolve_reference(reference, "build", trusted=True) is LoadInitState
