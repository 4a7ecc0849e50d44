"""export: one graph from uint8 images to probabilities and labels, with the model's own decision.

Parity with ``predict_proba`` / ``predict`` on images the model never saw: probabilities
within 1e-4 and the same labels, for a binary model with a tuned threshold, a calibrated
multi-class model with post-hoc adjustment and an ensemble.
"""

import json
import os

import numpy as np
import pytest
import torch
from conftest import tiny_classifier, write_images
from PIL import Image

from imbal_estimators import SeedEnsembleClassifier, load
from imbal_estimators.app.cli import main
from imbal_estimators.estimator.export import pillow_resize


@pytest.fixture(scope="module")
def new_images(tmp_path_factory):
    """Images no model saw: squares of 24 px and 16 px (the models' image_size), a wide and
    a tall size (Pillow 13 resizes the tall one vertically first)."""
    root = tmp_path_factory.mktemp("unseen")
    paths = write_images(root / "a", 5, (200, 60, 60), size=24, seed=11)
    paths += write_images(root / "b", 5, (60, 60, 200), size=24, seed=12)
    paths += write_images(root / "c", 4, (120, 120, 60), size=16, seed=13)
    rng = np.random.default_rng(14)
    for i, (height, width) in enumerate([(19, 41), (19, 41), (57, 20), (57, 20)]):
        color = (200, 60, 60) if i % 2 else (60, 60, 200)
        pixels = np.clip(color + rng.normal(0, 25, (height, width, 3)), 0, 255)
        paths.append(str(root / f"odd_{i}.png"))
        Image.fromarray(pixels.astype(np.uint8), "RGB").save(paths[-1])
    return paths


# ONNX and torch.export take 5 to 15 s per export on a CPU; TorchScript under 2 s
SLOW_FORMATS = [pytest.param(f, marks=pytest.mark.slow) for f in ("pt2", "onnx")]


def decoded(paths):
    """The uint8 ``(N, 3, H, W)`` batches of ``paths``, one per image size."""
    groups = {}
    for i, path in enumerate(paths):
        with Image.open(path) as image:
            array = np.array(image.convert("RGB"))
        groups.setdefault(array.shape, []).append((i, torch.from_numpy(array).permute(2, 0, 1)))
    return [([i for i, _ in g], torch.stack([t for _, t in g])) for g in groups.values()]


def run(path, fmt, images):
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        return session.run(None, {"images": images.numpy()})
    if fmt == "pt2":
        module = torch.export.load(path).module()
    else:
        module = torch.jit.load(path)
    proba, label = module(images)
    return proba.numpy(), label.numpy()


def assert_parity(model, path, fmt, paths):
    expected_proba, expected_labels = model.predict_proba(paths), model.predict(paths)
    for rows, images in decoded(paths):
        proba, index = run(path, fmt, images)
        assert proba.shape == (len(rows), len(model.classes_)) and index.dtype == np.int64
        np.testing.assert_allclose(proba, expected_proba[rows], atol=1e-4, rtol=0)
        np.testing.assert_array_equal(model.classes_[index], expected_labels[rows])


@pytest.fixture(scope="module")
def thresholded(binary_data, new_images):
    """A binary model whose tuned threshold decides differently from argmax on new images."""
    X, y = binary_data
    clf = tiny_classifier(threshold="auto", max_epochs=1).fit(X, y)
    positive = clf.predict_proba(new_images)[:, clf.pos_index_]
    # the middle of the new images' probabilities: some labels then differ from argmax
    clf.threshold_ = float(np.sort(positive)[len(positive) // 2])
    return clf


def test_threshold_moves_labels_away_from_argmax(thresholded, new_images):
    argmax = thresholded.classes_[thresholded.predict_proba(new_images).argmax(axis=1)]
    assert (thresholded.predict(new_images) != argmax).any()


@pytest.mark.parametrize("fmt", ["torchscript", SLOW_FORMATS[0]])
def test_binary_with_threshold_matches_predict(thresholded, new_images, tmp_path, fmt):
    path = thresholded.export(tmp_path / f"model.{fmt}", format=fmt)
    assert_parity(thresholded, path, fmt, new_images)


@pytest.mark.slow
def test_binary_with_threshold_matches_predict_in_onnxruntime(thresholded, new_images, tmp_path):
    path = thresholded.export(tmp_path / "model.onnx")
    assert_parity(thresholded, path, "onnx", new_images)
    import onnx

    meta = {p.key: p.value for p in onnx.load(path).metadata_props}
    info = json.loads(meta["imbal_estimators"])
    assert info["decision"]["threshold"] == thresholded.threshold_
    assert info["classes"] == ["cat", "dog"]


@pytest.fixture(scope="module")
def adjusted(three_class_data):
    """Three classes, calibrated, post-hoc adjusted strongly enough to change labels."""
    X, y = three_class_data
    return tiny_classifier(posthoc_tau=3.0, calibrate=True, max_epochs=1).fit(X, y)


@pytest.mark.parametrize("fmt", ["torchscript", *SLOW_FORMATS])
def test_multiclass_with_posthoc_adjustment_matches_predict(adjusted, new_images, tmp_path, fmt):
    argmax = adjusted.classes_[adjusted.predict_proba(new_images).argmax(axis=1)]
    assert (adjusted.predict(new_images) != argmax).any()
    assert adjusted.temperature_ != pytest.approx(1.0)
    path = adjusted.export(tmp_path / f"model.{fmt}", format=fmt)
    assert_parity(adjusted, path, fmt, new_images)


@pytest.fixture(scope="module")
def saved_ensemble(binary_data, tmp_path_factory):
    """A saved and loaded two-member ensemble with a threshold, as compare hands back."""
    X, y = binary_data
    members = [tiny_classifier(threshold="auto", max_epochs=1, random_state=s) for s in (0, 1)]
    ensemble = SeedEnsembleClassifier.from_members([m.fit(X, y) for m in members])
    directory = tmp_path_factory.mktemp("ensemble") / "model"
    ensemble.save(directory)
    return load(directory, trusted=True)  # its members' TinyCNN lives in conftest


@pytest.mark.parametrize("fmt", ["torchscript", *SLOW_FORMATS])
def test_ensemble_exports_as_one_averaging_graph(saved_ensemble, new_images, tmp_path, fmt):
    assert isinstance(saved_ensemble, SeedEnsembleClassifier)
    path = saved_ensemble.export(tmp_path / f"ensemble.{fmt}", format=fmt)
    assert_parity(saved_ensemble, path, fmt, new_images)
    info = json.loads(open(path + ".json").read())
    assert info["decision"]["n_members"] == 2
    assert info["decision"]["threshold"] == pytest.approx(saved_ensemble.threshold_)


def test_sidecar_names_classes_rule_and_preprocessing(thresholded, tmp_path):
    path = thresholded.export(tmp_path / "model.pt", format="torchscript")
    info = json.loads(open(path + ".json").read())
    assert info["classes"] == ["cat", "dog"]
    assert info["decision"]["rule"] == thresholded.decision_rule()
    assert info["decision"]["pos_index"] == thresholded.pos_index_
    assert info["preprocessing"]["resize"] == [16, 16]
    np.testing.assert_allclose(info["preprocessing"]["mean"], [0.485, 0.456, 0.406], atol=1e-6)
    assert info["input"]["dtype"] == "uint8" and info["format"] == "torchscript"


def test_resize_is_pillows_bilinear_pixel_for_pixel():
    rng = np.random.default_rng(0)
    shapes = [(40, 40), (16, 16), (9, 9), (23, 61), (61, 23), (57, 20), (20, 57), (1, 90)]
    for (height, width), size in zip(shapes, [16, 16, 16, 7, 7, 16, 16, 32], strict=True):
        array = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        expected = np.asarray(Image.fromarray(array).resize((size, size), Image.BILINEAR))
        out = pillow_resize(torch.from_numpy(array).permute(2, 0, 1)[None], size)
        np.testing.assert_array_equal(out[0].permute(1, 2, 0).numpy(), expected)


def test_bad_format_and_unfitted_model_are_refused(thresholded, tmp_path):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(ValueError, match="'format' parameter of export must be one of"):
        thresholded.export(tmp_path / "m", format="tflite")
    with pytest.raises(NotFittedError):
        tiny_classifier().export(tmp_path / "m.pt", format="torchscript")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        thresholded.export(tmp_path, format="torchscript")
    assert not os.path.exists(tmp_path / "m")


def test_test_time_augmentation_is_refused(thresholded, tmp_path):
    import copy

    clf = copy.deepcopy(thresholded).set_params(tta=4)
    with pytest.raises(ValueError, match=r"test-time augmentation \(tta=4\)"):
        clf.export(tmp_path / "m.pt", format="torchscript")


def test_cli_export_writes_the_format_of_the_suffix(thresholded, new_images, tmp_path, capsys):
    thresholded.save(tmp_path / "model")
    out = str(tmp_path / "served.pt")
    assert main(["export", str(tmp_path / "model"), out, "--trusted"]) == 0
    assert "Wrote torchscript model" in capsys.readouterr().err
    assert_parity(load(tmp_path / "model", trusted=True), out, "torchscript", new_images)
    assert main(["export", str(tmp_path / "nowhere"), out]) != 0
    assert "does not exist" in capsys.readouterr().err
