"""Backbones: torchvision models, pretrained and local weights, the head, normalization."""

import os

import numpy as np
import pytest
import torch
import torchvision
from conftest import FAST

from imbal_estimators import ImageImbalanceClassifier
from imbal_estimators.models.backbones import (
    IMAGENET_MEAN,
    ImageModel,
    build_backbone,
    find_head,
    resolve_weights,
)

SMALL = "shufflenet_v2_x0_5"


@pytest.mark.parametrize(
    "name, head_path",
    [("resnet34", "fc"), ("mobilenet_v3_small", "classifier.3"), ("squeezenet1_1", "classifier.1")],
)
def test_head_is_replaced_for_the_number_of_classes(name, head_path):
    model, mean, std = build_backbone(name, None, 3)
    head_name, head = find_head(model)
    assert head_name == head_path
    assert model(torch.zeros(2, 3, 64, 64)).shape == (2, 3)
    assert mean == IMAGENET_MEAN


def test_pretrained_weights_load_through_torchvision(monkeypatch):
    """The real download path, with the download replaced by a local state dict."""
    import torchvision.models._api

    reference = torchvision.models.get_model(SMALL, weights=None)

    def fake_download(url, *args, **kwargs):
        return reference.state_dict()

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", fake_download)
    model, mean, std = build_backbone(SMALL, "DEFAULT", 2)
    assert torch.equal(model.conv1[0].weight, reference.conv1[0].weight)
    assert model.fc.out_features == 2
    transforms = resolve_weights(SMALL, "DEFAULT").transforms()
    assert mean == tuple(transforms.mean) and std == tuple(transforms.std)


def test_default_weights_offline_say_what_to_do():
    with pytest.raises(RuntimeError) as info:
        build_backbone("resnet34", "DEFAULT", 2)
    message = str(info.value)
    assert "weights=None" in message and "weights='path/to/resnet34.pth'" in message


def test_estimator_default_weights_offline_fails_before_training(binary_data):
    X, y = binary_data
    clf = ImageImbalanceClassifier(**{**FAST, "weights": "DEFAULT", "backbone": SMALL})
    with pytest.raises(RuntimeError, match="weights=None"):
        clf.fit(X, y)


@pytest.mark.parametrize(
    "weights, member",
    [
        ("DEFAULT", "IMAGENET1K_V1"),
        ("IMAGENET1K_V1", "IMAGENET1K_V1"),
        ("ResNet34_Weights.IMAGENET1K_V1", "IMAGENET1K_V1"),
    ],
)
def test_weights_names(weights, member):
    assert resolve_weights("resnet34", weights).name == member


@pytest.mark.parametrize("weights", ["IMAGENET1K_V9", "ResNet18_Weights.IMAGENET1K_V1"])
def test_unknown_weights_names(weights):
    with pytest.raises(ValueError, match="weights"):
        resolve_weights("resnet34", weights)


@pytest.mark.parametrize("head_classes", [1000, 2])
def test_local_state_dict_file(tmp_path, head_classes):
    source = torchvision.models.get_model(SMALL, weights=None, num_classes=head_classes)
    path = tmp_path / "weights.pth"
    torch.save(source.state_dict(), path)
    model, _, _ = build_backbone(SMALL, str(path), 2)
    assert torch.equal(model.conv1[0].weight, source.conv1[0].weight)
    assert model.fc.out_features == 2
    if head_classes == 2:  # a file saved for this task keeps its head
        assert torch.equal(model.fc.weight, source.fc.weight)


def test_local_safetensors_file(tmp_path):
    safetensors = pytest.importorskip("safetensors.torch")
    source = torchvision.models.get_model(SMALL, weights=None)
    path = tmp_path / "weights.safetensors"
    safetensors.save_file(source.state_dict(), str(path))
    model, _, _ = build_backbone(SMALL, path, 2)
    assert torch.equal(model.conv1[0].weight, source.conv1[0].weight)


def test_weights_file_for_another_architecture(tmp_path):
    path = tmp_path / "resnet18.pt"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    with pytest.raises(ValueError, match="does not fit backbone 'shufflenet_v2_x0_5'"):
        build_backbone(SMALL, str(path), 2)


def test_weights_file_with_other_class_count_loads_body(tmp_path):
    source = torchvision.models.get_model(SMALL, weights=None, num_classes=5)
    path = tmp_path / "five.pth"
    torch.save(source.state_dict(), path)
    model, _, _ = build_backbone(SMALL, str(path), 2)
    assert torch.equal(model.conv1[0].weight, source.conv1[0].weight)
    assert model.fc.out_features == 2


def test_weights_file_that_is_not_a_state_dict(tmp_path):
    path = tmp_path / "model.pth"
    path.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a state dict"):
        build_backbone(SMALL, str(path), 2)


@pytest.mark.parametrize("content", [b"", b"\x08\x00\x00\x00\x00\x00\x00\x00{}"])
def test_an_empty_or_cut_safetensors_file_is_a_value_error_naming_it(tmp_path, content):
    pytest.importorskip("safetensors.torch")
    path = tmp_path / "cut.safetensors"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="cut.safetensors' is not a safetensors file"):
        build_backbone(SMALL, str(path), 2)


def test_a_pickle_of_objects_is_refused_without_advice_to_unpickle_it(tmp_path):
    path = tmp_path / "model.pth"
    torch.save(torchvision.models.get_model(SMALL, weights=None), path)  # the module itself
    with pytest.raises(ValueError, match="holds Python objects besides tensors") as info:
        build_backbone(SMALL, str(path), 2)
    assert "weights_only=False" not in str(info.value)
    assert "torch.save(model.state_dict(), path)" in str(info.value)


def test_a_state_dict_with_values_that_are_not_tensors_is_refused_naming_them(tmp_path):
    state = dict(torchvision.models.get_model(SMALL, weights=None).state_dict())
    state["conv1.0.weight"] = [1.0, 2.0]
    state["epoch"] = 3
    path = tmp_path / "odd.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"2 of its entries are not tensors \('conv1.0.weight'"):
        build_backbone(SMALL, str(path), 2)


def test_a_lightning_checkpoint_loses_its_wrapper_prefix(tmp_path):
    source = torchvision.models.get_model(SMALL, weights=None)
    path = tmp_path / "epoch=3.ckpt"
    state = {f"model.{key}": value for key, value in source.state_dict().items()}
    torch.save({"state_dict": state, "epoch": 3}, path)
    model, _, _ = build_backbone(SMALL, str(path), 2)
    assert torch.equal(model.conv1[0].weight, source.conv1[0].weight)


@pytest.mark.parametrize(
    "key", ["model", "state_dict", "state_dict_ema", "model_ema", "model_state_dict"]
)
def test_a_training_checkpoint_is_read_from_its_state_dict_key(tmp_path, key):
    source = torchvision.models.get_model(SMALL, weights=None)
    path = tmp_path / "checkpoint.pth"
    torch.save({key: source.state_dict(), "epoch": 3, "optimizer": {"lr": 0.1}}, path)
    model, _, _ = build_backbone(SMALL, str(path), 2)
    assert torch.equal(model.conv1[0].weight, source.conv1[0].weight)


def test_a_checkpoint_with_a_moving_average_is_read_from_it_first(tmp_path):
    raw, average = (torchvision.models.get_model(SMALL, weights=None) for _ in range(2))
    path = tmp_path / "checkpoint.pth"
    torch.save({"model": raw.state_dict(), "model_ema": average.state_dict()}, path)
    model, _, _ = build_backbone(SMALL, str(path), 2)
    assert torch.equal(model.conv1[0].weight, average.conv1[0].weight)


@pytest.mark.parametrize("kind", ["folder", "fifo", "link loop"])
def test_a_weights_path_that_is_not_a_regular_file_says_what_it_is(tmp_path, kind):
    path = tmp_path / "w.pth"
    if kind == "folder":
        path.mkdir()
        expected = "is not a regular file: it is a directory"
    elif kind == "fifo":
        os.mkfifo(path)
        expected = "is not a regular file: it is a FIFO"
    else:
        os.symlink(tmp_path / "other.pth", tmp_path / "other.pth")
        os.symlink(tmp_path / "other.pth", path)
        expected = "cannot be read"
    clf = ImageImbalanceClassifier(**{**FAST, "backbone": SMALL, "weights": str(path)})
    with pytest.raises(ValueError, match=expected):
        clf.fit(["a.png", "b.png"], [0, 1])
    with pytest.raises(ValueError, match=expected):
        build_backbone(SMALL, str(path), 2)


def test_estimator_with_a_weights_file(tmp_path, binary_data):
    X, y = binary_data
    path = tmp_path / "weights.pth"
    torch.save(torchvision.models.get_model(SMALL, weights=None).state_dict(), path)
    clf = ImageImbalanceClassifier(**{**FAST, "backbone": SMALL, "weights": str(path)})
    clf.fit(X, y)
    assert clf.module_.backbone.fc.out_features == 2


def test_image_model_normalizes_uint8_like_float():
    backbone = torch.nn.Flatten()
    model = ImageModel(backbone)
    images = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    out_uint8 = model(images)
    out_float = model(images.float() / 255)
    torch.testing.assert_close(out_uint8, out_float)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    expected = ((images.float() / 255 - mean) / model.std).flatten(1)
    np.testing.assert_allclose(out_uint8.numpy(), expected.numpy(), rtol=1e-6)


def test_params_saved_by_the_estimator_are_weights(tmp_path, binary_data):
    X, y = binary_data
    clf = ImageImbalanceClassifier(**{**FAST, "backbone": SMALL}).fit(X, y)
    clf.save_params(f_params=tmp_path / "previous.pt")
    model, _, _ = build_backbone(SMALL, str(tmp_path / "previous.pt"), 2)
    for key, value in clf.module_.backbone.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_data_parallel_prefix_is_stripped(tmp_path):
    source = torchvision.models.get_model(SMALL, weights=None)
    state = {f"module.{k}": v for k, v in source.state_dict().items()}
    torch.save(state, tmp_path / "dp.pt")
    model, _, _ = build_backbone(SMALL, str(tmp_path / "dp.pt"), 2)
    assert torch.equal(model.conv1[0].weight, source.conv1[0].weight)


def test_relative_weights_file_with_any_extension(tmp_path, monkeypatch):
    torch.save(torchvision.models.get_model(SMALL, weights=None).state_dict(), tmp_path / "m.w")
    monkeypatch.chdir(tmp_path)
    model, _, _ = build_backbone(SMALL, "m.w", 2)
    assert model.fc.out_features == 2


def test_unknown_weights_lists_each_name_once():
    with pytest.raises(ValueError) as info:
        resolve_weights("resnet34", "IMAGENET1K_V9")
    assert str(info.value).count("'DEFAULT'") == 1


@pytest.mark.parametrize("wrapped", [False, True])
def test_auxiliary_heads_of_another_class_count_or_behind_a_prefix_are_dropped(tmp_path, wrapped):
    source = torchvision.models.googlenet(aux_logits=True, init_weights=False, num_classes=2)
    state = source.state_dict()
    if wrapped:  # PyTorch Lightning's self.model
        state = {f"model.{key}": value for key, value in state.items()}
    torch.save({"state_dict": state} if wrapped else state, tmp_path / "googlenet.pt")
    model, _, _ = build_backbone("googlenet", str(tmp_path / "googlenet.pt"), 2)
    assert torch.equal(model.conv1.conv.weight, source.conv1.conv.weight)
    assert torch.equal(model.fc.weight, source.fc.weight)  # the file's own 2-class head
    assert model.aux1 is None and model.aux2 is None
