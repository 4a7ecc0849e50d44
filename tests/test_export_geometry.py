"""export of models whose input is the network's own geometry (``image_size="auto"``):
resize the shorter side (or both, timm's "squash"), centre crop, the network's filter.

The graph computes ``predict``'s pixels exactly (Pillow's filters in fixed point), so the
probabilities agree with ``predict_proba`` within 1e-4 (float32 networks run by another
engine; measured differences are about 1e-7) and the labels are equal, on portrait,
landscape, square and smaller-than-the-crop images.
"""

import json
import sys

import numpy as np
import pytest
import torch
from conftest import FAST, tiny_classifier
from PIL import Image
from test_compare_networks import NET_SOURCE
from test_export import assert_parity

from imbal_estimators import ImageImbalanceClassifier, SeedEnsembleClassifier, load
from imbal_estimators.app.cli import main
from imbal_estimators.data.geometry import INTERPOLATIONS, Geometry
from imbal_estimators.data.images import read_image
from imbal_estimators.estimator.export_resize import geometry_resize

timm = pytest.importorskip("timm")

# (height, width): portrait, landscape, square, smaller than every crop below, odd sizes,
# a strip one pixel high, and sizes whose resize lands on exact halves of a pixel
SHAPES = [(50, 30), (30, 50), (40, 40), (12, 20), (9, 7), (19, 41), (1, 33), (62, 33), (64, 78)]
# the models' parity: portrait, landscape, square, smaller than the 24 px crop
MODEL_SHAPES = SHAPES[:4]


def _pixels(shape, seed):
    return np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)


@pytest.fixture
def one_thread():
    """Small tensors: one thread is about 20 times faster than two on a busy CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("keep_ratio", [True, False], ids=["shorter-side", "squash"])
@pytest.mark.parametrize("interpolation", sorted(INTERPOLATIONS))
def test_the_graphs_resize_and_crop_are_predicts_pixel_for_pixel(interpolation, keep_ratio):
    for seed, (crop, resize) in enumerate([(24, 32), (16, 16), (10, 13), (4, 12)]):
        geometry = Geometry(crop, resize, interpolation, keep_ratio)
        for shape in SHAPES:
            array = _pixels(shape, seed)
            expected = np.asarray(geometry.apply(Image.fromarray(array)))
            out = geometry_resize(torch.from_numpy(array).permute(2, 0, 1)[None], geometry)
            assert out.shape == (1, 3, crop, crop)
            np.testing.assert_array_equal(out[0].permute(1, 2, 0).numpy(), expected)


def test_a_square_geometry_is_the_square_resize_of_every_version(tmp_path):
    path = tmp_path / "wide.png"
    Image.fromarray(_pixels((19, 41), 0)).save(path)
    decoded = torch.from_numpy(np.array(Image.open(path))).permute(2, 0, 1)[None]
    out = geometry_resize(decoded, Geometry(16))
    assert torch.equal(out[0].to(torch.uint8), read_image(str(path), 16))


@pytest.fixture(scope="module")
def new_shapes(tmp_path_factory):
    """Images no model saw, red or blue around noise, three of each shape in MODEL_SHAPES."""
    root = tmp_path_factory.mktemp("shapes")
    rng = np.random.default_rng(21)
    paths = []
    for i, shape in enumerate(MODEL_SHAPES * 3):
        color = (220, 40, 40) if i % 2 else (40, 40, 220)
        pixels = np.clip(color + rng.normal(0, 40, (*shape, 3)), 0, 255).astype(np.uint8)
        paths.append(str(root / f"new_{i}.png"))
        Image.fromarray(pixels, "RGB").save(paths[-1])
    return paths


def timm_classifier(interpolation="bicubic", crop_mode="center", **params):
    """A tiny timm network whose pretrained_cfg asks for a 24 px crop of a 32 px resize."""
    overlay = dict(input_size=(3, 24, 24), crop_pct=0.75, interpolation=interpolation)
    overlay["crop_mode"] = crop_mode
    settings = {**FAST, "backbone": "timm/test_efficientnet", **params}
    settings.pop("image_size")  # "auto": the network's own geometry
    return ImageImbalanceClassifier(**settings, module__pretrained_cfg_overlay=overlay)


@pytest.fixture(scope="module")
def cropped(binary_data):
    """Resize the shorter side to 32 (bicubic), centre crop 24; inputs in [-1, 1]; a tuned
    threshold that decides differently from argmax."""
    X, y = binary_data
    clf = timm_classifier(normalize="inception", threshold="auto").fit(X, y)
    assert clf.input_geometry_ == Geometry(24, 32, "bicubic").record()
    return clf


@pytest.fixture(scope="module")
def squashed(binary_data):
    """Both sides to 32 (bilinear, aspect ratio not kept), centre crop 24."""
    X, y = binary_data
    clf = timm_classifier("bilinear", "squash").fit(X, y)
    assert clf.input_geometry_ == Geometry(24, 32, "bilinear", keep_ratio=False).record()
    return clf


# torch.export and ONNX take 5 to 15 s per export on a CPU; TorchScript a second
FORMATS = ["torchscript", *(pytest.param(f, marks=pytest.mark.slow) for f in ("pt2", "onnx"))]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_centre_crop_model_exports_as_it_predicts(cropped, new_shapes, tmp_path, fmt):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    path = cropped.export(tmp_path / f"model.{fmt}", format=fmt)
    assert_parity(cropped, path, fmt, new_shapes)


@pytest.mark.parametrize("fmt", ["torchscript", pytest.param("onnx", marks=pytest.mark.slow)])
def test_a_squashed_model_exports_as_it_predicts(squashed, new_shapes, tmp_path, fmt):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    path = squashed.export(tmp_path / f"model.{fmt}", format=fmt)
    assert_parity(squashed, path, fmt, new_shapes)


def test_the_centre_crop_decides_what_the_square_would_not(cropped, new_shapes, tmp_path):
    """The exported graph crops: a red band outside the crop changes nothing, while the
    same band, seen by a square resize of the same model, changes the probabilities."""
    base = _pixels((30, 60), 5)
    banded = base.copy()
    banded[:, :8] = (255, 0, 0)  # inside the 8 columns each side the centre crop drops
    images = torch.from_numpy(np.stack([base, banded])).permute(0, 3, 1, 2)
    path = cropped.export(tmp_path / "model.pt", format="torchscript")
    proba, _ = torch.jit.load(path)(images)
    np.testing.assert_array_equal(proba[0].numpy(), proba[1].numpy())
    square = Geometry(24)
    assert not torch.equal(geometry_resize(images[:1], square), geometry_resize(images[1:], square))


def test_the_sidecar_names_the_resize_crop_filter_and_normalization(cropped, squashed, tmp_path):
    path = cropped.export(tmp_path / "model.pt", format="torchscript")
    block = json.loads(open(path + ".json").read())["preprocessing"]
    assert block["geometry"] == "resize the shorter side to 32 (bicubic), centre crop 24 x 24"
    assert block["resize"] == [32] and block["center_crop"] == [24, 24]
    assert (block["resize_to"], block["crop"], block["interpolation"]) == (32, 24, "bicubic")
    assert block["keep_ratio"] is True
    assert (
        block["resize_filter"]
        == "Pillow BICUBIC (antialiased), the shorter side, aspect ratio kept"
    )
    assert block["normalize"] == "inception"
    np.testing.assert_allclose(block["mean"] + block["std"], [0.5] * 6)
    path = squashed.export(tmp_path / "squashed.pt", format="torchscript")
    block = json.loads(open(path + ".json").read())["preprocessing"]
    assert block["resize"] == [32, 32] and block["keep_ratio"] is False
    assert block["normalize"] == "imagenet"


def test_an_int_image_size_keeps_the_square_sidecar(binary_data, tmp_path):
    X, y = binary_data
    clf = tiny_classifier(image_size=12, max_epochs=1).fit(X, y)
    path = clf.export(tmp_path / "model.pt", format="torchscript")
    block = json.loads(open(path + ".json").read())["preprocessing"]
    assert block["resize"] == [12, 12] and block["center_crop"] is None
    assert block["resize_to"] is None and block["interpolation"] == "bilinear"
    assert block["resize_filter"] == "Pillow BILINEAR (antialiased), aspect ratio not kept"


def test_an_ensemble_of_two_geometries_is_refused(binary_data, tmp_path):
    X, y = binary_data
    members = [tiny_classifier(image_size=s, max_epochs=1).fit(X, y) for s in (12, 16)]
    ensemble = SeedEnsembleClassifier.from_members(members)
    with pytest.raises(ValueError, match="one input geometry .* members differ"):
        ensemble.export(tmp_path / "model.pt", format="torchscript")
    assert not (tmp_path / "model.pt").exists()


@pytest.mark.slow  # a fit, a save, an export and a load: 5 to 20 s
def test_cli_fits_and_exports_your_module_at_the_224_square(
    binary_folder, new_shapes, tmp_path, monkeypatch
):
    """``fit --module`` with ``image_size="auto"`` (the 224 px square resize), then
    ``export`` without ``--trusted``: the module was named at save and is importable."""
    (tmp_path / "userpkg").mkdir()
    (tmp_path / "userpkg" / "__init__.py").write_text("")
    (tmp_path / "userpkg" / "nets.py").write_text(NET_SOURCE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    try:
        args = ["fit", binary_folder, "--out", "model", "--module", "userpkg.nets:Net"]
        args += ["--max-epochs", "1", "--batch-size", "16", "--lr", "0.05", "--device", "cpu"]
        assert main(args) == 0
        assert main(["export", "model", "served.pt"]) == 0
        model = load(tmp_path / "model")
        assert model.input_geometry_ == Geometry(224).record()
        # the command line trains in precision="auto" (bfloat16 on CPUs that have it); the
        # graph computes in float32, and so must the predictions it is compared with
        model.set_params(precision="fp32")
        info = json.loads((tmp_path / "served.pt.json").read_text())
        assert info["preprocessing"]["resize"] == [224, 224]
        assert_parity(model, str(tmp_path / "served.pt"), "torchscript", new_shapes)
    finally:
        for name in ("userpkg.nets", "userpkg"):
            sys.modules.pop(name, None)


@pytest.mark.slow  # a fit, a save, an export and a load: 5 to 20 s
def test_cli_exports_a_timm_model_from_a_weights_file(binary_data, new_shapes, tmp_path):
    """A timm name with a local weights file, saved with its centre crop, exported by the
    command line without ``--trusted``."""
    X, y = binary_data
    weights = tmp_path / "test_efficientnet.pth"
    torch.manual_seed(0)
    torch.save(timm.create_model("test_efficientnet").state_dict(), weights)
    timm_classifier(weights=str(weights), freeze_backbone=True).fit(X, y).save(tmp_path / "model")
    out = str(tmp_path / "served.pt")
    assert main(["export", str(tmp_path / "model"), out]) == 0
    info = json.loads(open(out + ".json").read())
    assert info["format"] == "torchscript" and info["preprocessing"]["center_crop"] == [24, 24]
    assert_parity(load(tmp_path / "model"), out, "torchscript", new_shapes)


@pytest.mark.slow
def test_a_torchvision_weights_file_exports_its_transforms_in_every_format(
    binary_data, new_shapes, tmp_path
):
    """resnet's recipe from a weights file (shorter side to 256, bilinear, centre crop 224),
    as a default pretrained torchvision model has it, in each installed format."""
    import torchvision

    X, y = binary_data
    weights = tmp_path / "mobilenet_v3_small.pth"
    torch.manual_seed(0)
    torch.save(torchvision.models.mobilenet_v3_small().state_dict(), weights)
    settings = {**FAST, "backbone": "mobilenet_v3_small", "weights": str(weights)}
    settings.pop("image_size")
    clf = ImageImbalanceClassifier(**settings, freeze_backbone=True).fit(X, y)
    assert Geometry.of(clf.input_geometry_) == Geometry(224, 256, "bilinear")
    formats = ["torchscript", "pt2"]
    try:
        import onnxruntime  # noqa: F401

        formats.append("onnx")
    except ImportError:
        pass
    for fmt in formats:
        path = clf.export(tmp_path / f"model.{fmt}", format=fmt)
        assert_parity(clf, path, fmt, new_shapes[: len(MODEL_SHAPES)])  # one of each shape
