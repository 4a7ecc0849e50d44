"""Pickles and saved models written by version 0.1 (flat module paths) still load.

``tests/data/legacy_0_1`` was written by imbal_estimators 0.1.0: a SmallCNN fitted on 12
images of 16 px (focal loss, balanced alpha, RandomOverSampler, threshold="auto"), pickled
(``model.pkl``) and saved (``saved/``), with its probabilities on the same images.
"""

import pathlib
import pickle
import sys

import numpy as np
import pytest

import imbal_estimators
from imbal_estimators.io.legacy import MODULE_ALIASES, new_module_name

LEGACY = pathlib.Path(__file__).parent / "data" / "legacy_0_1"


@pytest.fixture
def legacy_images():
    return [str(LEGACY / "imgs" / f"{i}.png") for i in range(12)]


def test_a_0_1_pickle_loads_and_predicts_as_it_did(legacy_images):
    with open(LEGACY / "model.pkl", "rb") as f:
        model = pickle.load(f)
    assert type(model) is imbal_estimators.ImageImbalanceClassifier
    model.precision = "fp32"  # 0.1's "auto" on a CPU; it is bfloat16 now where the CPU has it
    np.testing.assert_allclose(
        model.predict_proba(legacy_images), np.load(LEGACY / "proba.npy"), rtol=0, atol=1e-5
    )
    assert model.classes_.tolist() == ["common", "rare"]


def test_a_0_1_saved_model_loads_and_predicts_as_it_did(legacy_images):
    model = imbal_estimators.load(LEGACY / "saved")
    model.precision = "fp32"  # 0.1's "auto" on a CPU
    np.testing.assert_allclose(
        model.predict_proba(legacy_images), np.load(LEGACY / "proba.npy"), rtol=0, atol=1e-5
    )
    assert model.threshold_ == pytest.approx(0.546646377657346)


@pytest.mark.parametrize("old", sorted(MODULE_ALIASES))
def test_every_old_module_path_imports_as_its_new_module(old):
    module = __import__(f"imbal_estimators.{old}", fromlist=["_"])
    assert module is sys.modules[new_module_name(f"imbal_estimators.{old}")]


def test_unknown_old_paths_are_not_invented():
    assert new_module_name("imbal_estimators.nope") is None
    with pytest.raises(ModuleNotFoundError):
        __import__("imbal_estimators.nope")


# -- version 0.2 -------------------------------------------------------------------------------
# tests/data/legacy_0_2 was written by version 0.2 (make.py there): its positive class is
# "common", not the rarer class, and predict thresholds P("common") at 0.6.

LEGACY_0_2 = pathlib.Path(__file__).parent / "data" / "legacy_0_2"


def _check_0_2(model, legacy_images):
    assert model.pos_label_ == "common" and model.pos_index_ == 0 and model.threshold_ == 0.6
    np.testing.assert_allclose(
        model.predict_proba(legacy_images), np.load(LEGACY_0_2 / "proba.npy"), rtol=0, atol=1e-5
    )
    assert model.predict(legacy_images).tolist() == np.load(LEGACY_0_2 / "predict.npy").tolist()
    assert model.decision_rule() == "threshold 0.600 on P('common')"


def test_a_0_2_pickle_loads_and_predicts_as_it_did(legacy_images):
    with open(LEGACY_0_2 / "model.pkl", "rb") as f:
        _check_0_2(pickle.load(f), legacy_images)


def test_a_0_2_saved_model_loads_and_predicts_as_it_did(legacy_images):
    _check_0_2(imbal_estimators.load(LEGACY_0_2 / "saved"), legacy_images)


def test_a_0_1_model_gets_the_positive_class_0_1_thresholded(legacy_images):
    """0.1 had no pos_label: its threshold is on P(classes_[1]); the load and the unpickling
    normalize that once, and both give the same labels."""
    with open(LEGACY / "model.pkl", "rb") as f:
        pickled = pickle.load(f)
    saved = imbal_estimators.load(LEGACY / "saved")
    for model in (pickled, saved):
        model.precision = "fp32"
        assert model.pos_index_ == 1 and model.pos_label_ == "rare"
        assert model.batch_size_ == model.batch_size and model.class_weights_on_ is True
    proba = saved.predict_proba(legacy_images)
    expected = np.where(proba[:, 1] >= saved.threshold_, "rare", "common")
    assert saved.predict(legacy_images).tolist() == expected.tolist()
    assert pickled.predict(legacy_images).tolist() == expected.tolist()
