"""Preprocessing follows the network: image_size="auto" resizes and centre-crops as
torchvision weights' transforms() and timm's pretrained_cfg do; an int keeps the square."""

import json
import os

import numpy as np
import pytest
import torch
import torchvision
from conftest import FAST, tiny_classifier
from PIL import Image

from imbal_estimators import ImageImbalanceClassifier
from imbal_estimators.data.cache import MemoryTensorCache
from imbal_estimators.data.geometry import Geometry
from imbal_estimators.data.images import ImageLoader, read_image
from imbal_estimators.estimator.geometry import estimator_geometry
from imbal_estimators.estimator.persistence import load
from imbal_estimators.models.preprocessing import network_geometry

timm = pytest.importorskip("timm")

TIMM = "timm/test_efficientnet"  # 160 px input, crop_pct 0.95, bicubic


@pytest.fixture
def photo(tmp_path):
    """A non-square RGB photo with structure everywhere (a crop and a squash differ)."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(300, 410, 3), dtype=np.uint8)
    pixels[:, :40] = (255, 0, 0)  # a red band on the left: cropped away by a centre crop
    path = tmp_path / "photo.png"
    Image.fromarray(pixels).save(path)
    return str(path)


def _normalized(tensor, mean, std):
    mean = torch.tensor(mean).view(3, 1, 1)
    std = torch.tensor(std).view(3, 1, 1)
    return (tensor.float() / 255 - mean) / std


@pytest.mark.parametrize(
    "backbone,weights",
    [
        ("resnet18", "DEFAULT"),  # 256 -> 224, bilinear
        ("efficientnet_b1", "IMAGENET1K_V2"),  # 255 -> 240, bilinear
        ("vit_b_16", "IMAGENET1K_SWAG_E2E_V1"),  # 384 -> 384, bicubic
    ],
)
def test_torchvision_weights_give_their_transforms_pixel_for_pixel(photo, backbone, weights):
    transforms = torchvision.models.get_weight(
        f"{torchvision.models.get_model_weights(backbone).__name__}.{weights}"
    ).transforms()
    geometry = network_geometry(backbone, weights)
    assert geometry.crop == transforms.crop_size[0]
    assert geometry.resize == transforms.resize_size[0]
    assert geometry.interpolation == transforms.interpolation.value
    with Image.open(photo) as image:
        expected = transforms(image.convert("RGB"))
    ours = _normalized(read_image(photo, geometry), transforms.mean, transforms.std)
    assert ours.shape == expected.shape == (3, geometry.crop, geometry.crop)
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5)


def test_a_timm_model_gives_its_pretrained_cfg_pixel_for_pixel(photo):
    geometry = network_geometry(TIMM, None)
    assert geometry == Geometry(crop=160, resize=168, interpolation="bicubic")  # 160 / 0.95
    with torch.device("meta"):
        model = timm.create_model("test_efficientnet")
    config = timm.data.resolve_data_config({}, model=model)
    transform = timm.data.create_transform(**config)
    with Image.open(photo) as image:
        expected = transform(image.convert("RGB"))
    ours = _normalized(read_image(photo, geometry), config["mean"], config["std"])
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5)


def test_an_explicit_image_size_wins_and_keeps_the_square_resize(photo):
    assert network_geometry("resnet18", "DEFAULT", image_size=64) == Geometry(64)
    assert network_geometry(TIMM, None, image_size=32) == Geometry(32)
    with Image.open(photo) as image:
        square = np.asarray(image.convert("RGB").resize((64, 64), Image.Resampling.BILINEAR))
    tensor = read_image(photo, Geometry(64))
    assert np.array_equal(tensor.permute(1, 2, 0).numpy(), square)
    assert torch.equal(tensor, read_image(photo, 64))  # an int is the same square
    assert (tensor[0, :, :3] == 255).all()  # the red band is still there: nothing cropped


def test_a_centre_crop_cuts_the_border_that_a_square_resize_keeps(photo):
    cropped = read_image(photo, Geometry(crop=64, resize=70))
    assert cropped.shape == (3, 64, 64)
    assert not (cropped[0, :, :3] == 255).all()  # the red band (the left 10 %) is cut off


@pytest.mark.parametrize(
    "backbone,weights,module",
    [
        ("small_cnn", None, None),
        ("resnet18", None, None),  # random init: no recipe to follow
        ("resnet18", "DEFAULT", torch.nn.Identity),  # your own module
    ],
)
def test_sources_without_a_recipe_keep_the_224_square(backbone, weights, module):
    assert network_geometry(backbone, weights, module) == Geometry(224)


def test_a_torchvision_weights_file_takes_the_architectures_default_transforms():
    assert network_geometry("resnet18", "/models/resnet18.pth") == Geometry(224, 256, "bilinear")


def test_the_default_is_auto_and_other_strings_are_refused(binary_data):
    assert ImageImbalanceClassifier().image_size == "auto"
    X, y = binary_data
    with pytest.raises(ValueError, match="'image_size' parameter .* among \\{'auto'\\}"):
        tiny_classifier(image_size="big").fit(X, y)


def test_the_image_cache_keys_on_the_geometry(photo):
    """A centre crop and a square of the same side never serve each other's entry."""
    from imbal_estimators.data.cache import get_cache

    get_cache("memory").clear()
    square, cropped = ImageLoader(64, "memory"), ImageLoader(Geometry(64, 70), "memory")
    assert square.key == 64  # the key of every version before geometries
    assert cropped.key != square.key
    first, second = square(photo), cropped(photo)
    assert not torch.equal(first, second)
    assert torch.equal(cropped(photo), read_image(photo, Geometry(64, 70)))
    assert torch.equal(square(photo), read_image(photo, 64))
    assert isinstance(get_cache("memory"), MemoryTensorCache)


@pytest.fixture(scope="module")
def timm_model(tmp_path_factory, binary_data):
    """A frozen timm test network from a written state dict, fitted with image_size='auto'."""
    root = tmp_path_factory.mktemp("timm_geometry")
    path = root / "test_efficientnet.pth"
    torch.manual_seed(0)
    torch.save(timm.create_model("test_efficientnet").state_dict(), path)
    X, y = binary_data
    params = {**FAST, "backbone": TIMM, "weights": str(path), "freeze_backbone": True}
    params.pop("image_size")
    clf = ImageImbalanceClassifier(**params).fit(X, y)
    return clf, X[::5], root


def test_a_timm_fit_records_its_geometry_in_the_model_and_config_json(timm_model):
    clf, X, root = timm_model
    assert clf.input_geometry_ == {
        "crop": 160,
        "resize": 168,
        "interpolation": "bicubic",
        "keep_ratio": True,
    }
    proba = clf.predict_proba(X)
    saved = clf.save(root / "model")
    with open(os.path.join(saved, "config.json")) as file:
        block = json.load(file)["preprocessing"]
    assert block["image_size"] == "auto"
    assert (block["resize_to"], block["crop"], block["interpolation"]) == (168, 160, "bicubic")
    assert block["resize"] == "resize the shorter side to 168 (bicubic), centre crop 160 x 160"
    assert block["normalize"] == "imagenet"  # test_efficientnet's pretrained_cfg
    loaded = load(saved)
    assert Geometry.of(loaded.input_geometry_) == Geometry(160, 168, "bicubic")
    np.testing.assert_array_equal(loaded.predict_proba(X), proba)


def test_export_writes_the_timm_centre_crop_into_its_graph(timm_model, tmp_path):
    """Exported, the 160 px crop of a 168 px bicubic resize predicts as the model does
    (tests/test_export_geometry.py covers every filter, squash and format)."""
    from test_export import assert_parity

    clf, X, _ = timm_model
    path = clf.export(tmp_path / "model.pt", format="torchscript")
    with open(path + ".json") as file:
        block = json.load(file)["preprocessing"]
    assert (block["resize_to"], block["crop"], block["interpolation"]) == (168, 160, "bicubic")
    assert_parity(clf, path, "torchscript", X)


def test_a_model_saved_before_geometries_loads_as_a_square_and_predicts_as_it_did(
    tmp_path, binary_data
):
    X, y = binary_data
    clf = tiny_classifier(image_size=12).fit(X, y)
    proba = clf.predict_proba(X)
    saved = clf.save(tmp_path / "model")
    config_path = os.path.join(saved, "config.json")
    with open(config_path) as file:
        config = json.load(file)
    # what version 0.2 wrote: no fitted geometry, the square in words only
    del config["fitted"]["input_geometry_"]
    for key in ("resize_to", "crop", "interpolation"):
        del config["preprocessing"][key]
    config["preprocessing"]["resize"] = "square, bilinear, no crop"
    with open(config_path, "w") as file:
        json.dump(config, file)
    loaded = load(saved)
    assert loaded.input_geometry_ == Geometry(12).record()
    assert estimator_geometry(loaded) == Geometry(12)
    np.testing.assert_array_equal(loaded.predict_proba(X), proba)


def test_a_saved_geometry_that_contradicts_its_preprocessing_block_is_refused(
    tmp_path, binary_data
):
    from imbal_estimators.estimator.loaded import ModelFileError

    X, y = binary_data
    saved = tiny_classifier(image_size=12).fit(X, y).save(tmp_path / "model")
    config_path = os.path.join(saved, "config.json")
    with open(config_path) as file:
        config = json.load(file)
    config["fitted"]["input_geometry_"] = {"crop": 12, "resize": 20}
    with open(config_path, "w") as file:
        json.dump(config, file)
    with pytest.raises(ModelFileError, match="'preprocessing.resize_to' is None"):
        load(saved)
    config["fitted"]["input_geometry_"] = {"crop": "twelve"}
    with open(config_path, "w") as file:
        json.dump(config, file)
    with pytest.raises(ModelFileError, match="'input_geometry_' is not a resize and crop"):
        load(saved)


def test_a_refit_with_other_parameters_takes_their_geometry(binary_data):
    X, y = binary_data
    clf = tiny_classifier(image_size=12).fit(X, y)
    assert clf.input_geometry_["crop"] == 12
    clf.set_params(image_size=10).fit(X, y)
    assert clf.input_geometry_ == Geometry(10).record()
    assert clf.predict_proba(X).shape == (len(X), 2)


@pytest.mark.slow
def test_a_torchvision_weights_file_fits_on_the_default_transforms_geometry(tmp_path, binary_data):
    X, y = binary_data
    path = tmp_path / "resnet18.pth"
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18().state_dict(), path)
    params = {**FAST, "backbone": "resnet18", "weights": str(path), "freeze_backbone": True}
    params.pop("image_size")
    clf = ImageImbalanceClassifier(**params).fit(X, y)
    assert Geometry.of(clf.input_geometry_) == Geometry(224, 256, "bilinear")
    proba = clf.predict_proba(X[:6])
    np.testing.assert_array_equal(load(clf.save(tmp_path / "model")).predict_proba(X[:6]), proba)
