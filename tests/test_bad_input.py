"""The bad-input catalogue: each way a user's input can be wrong, and what it gets.

Every case asserts the error type and a message that names the argument or the
file (with its index in X), and that it fails before any network is built.
Cases whose behaviour is to work (duplicate paths, labels {3, 7}, animated
files, an unseen label in ``score``) assert that behaviour.

Tested elsewhere, at the level of the function that decides:
* each X container and each bad item of X: ``test_data.py::test_check_paths_*``
* decoding of every PIL mode, EXIF, 16-bit PNG: ``test_data.py::test_read_image_*``
* a class too small for the internal split:
  ``test_classifier.py::test_validation_split_is_stratified_and_never_fails_on_small_classes``
* alpha lengths, labels and values: ``test_alpha.py``
* weights files for another class count, or not a state dict: ``test_backbones.py``
* ``on_bad_image`` (warn / skip / a class that disappears): ``test_on_bad_image.py``
"""

import os

import numpy as np
import pytest
import torch
import torchvision
from conftest import images_read, make_folder, write_images
from conftest import tiny_classifier as make
from imblearn.over_sampling import SMOTE, RandomOverSampler
from imblearn.under_sampling import NearMiss
from PIL import Image
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import StratifiedKFold, cross_val_score

import imbal_estimators.data.images as data_module
from imbal_estimators import ImageFileError, ImageImbalanceClassifier, load_image_folder


def _fails_fast(clf, X, y, error, match):
    """``fit`` raises before it reads any image and before it builds any network."""
    with images_read() as reads, pytest.raises(error, match=match) as info:
        clf.fit(X, y)
    assert reads == [], f"{len(reads)} image(s) read before the error"
    assert not clf.initialized_
    return info.value


def _fails_before_training(clf, X, y, error, match):
    """``fit`` raises after the pre-flight scan read the images, before any network exists."""
    with images_read() as reads, pytest.raises(error, match=match) as info:
        clf.fit(X, y)
    assert set(reads) == set(X), "the scan reads every image once before raising"
    assert not clf.initialized_
    return info.value


# ------------------------------------------------------------------ X and y


def _y_with_nan(y):
    y_nan = np.where(y == "cat", 0.0, 1.0)
    y_nan[3] = np.nan
    return y_nan


@pytest.mark.parametrize(
    "make_X, make_y, error, match",
    [
        (lambda X: [], lambda y: [], ValueError, "X is empty"),
        (lambda X: None, lambda y: y, ValueError, "X is None"),
        (lambda X: X[0], lambda y: y[:1], TypeError, "X is a single path"),
        (lambda X: [X[0], None], lambda y: y[:2], TypeError, r"X\[1\] is None"),
        (lambda X: [X[0], float("nan")], lambda y: y[:2], TypeError, r"X\[1\] is NaN"),
        (lambda X: [X[0], 3], lambda y: y[:2], TypeError, r"X\[1\] is 3 of type int"),
        (lambda X: [X[0], ""], lambda y: y[:2], ValueError, r"X\[1\] is an empty string"),
        (lambda X: X, lambda y: y[:-1], ValueError, "X has 64 image path.*y has 63 label"),
        (lambda X: X, lambda y: np.full(len(y), "cat"), ValueError, "y has a single class"),
        (lambda X: X, lambda y: np.linspace(0, 1, len(y)), ValueError, "y is 'continuous'"),
        (lambda X: X, _y_with_nan, ValueError, r"y contains missing labels.*\[3\]"),
        (lambda X: X, lambda y: np.stack([y, y], axis=1), ValueError, "y must be 1-D"),
        (lambda X: X, lambda y: None, ValueError, "y is None"),
        (lambda X: X, lambda y: [1] + list(y[1:]), ValueError, "Mix of label input types"),
    ],
    ids=[
        "empty_X",
        "X_none",
        "single_path",
        "None_in_X",
        "NaN_in_X",
        "int_in_X",
        "empty_string_in_X",
        "length_mismatch",
        "single_class",
        "continuous_y",
        "NaN_in_y",
        "2d_y",
        "y_none",
        "mixed_label_types",
    ],
)
def test_bad_X_or_y(binary_data, make_X, make_y, error, match):
    X, y = binary_data
    _fails_fast(make(), make_X(X), make_y(y), error, match)


def test_duplicate_paths_are_allowed(binary_data):
    """A path listed twice is two training rows (as a RandomOverSampler would make)."""
    X, y = binary_data
    X2, y2 = np.concatenate([X, X[:5]]), np.concatenate([y, y[:5]])
    clf = make(max_epochs=1, train_split=False).fit(X2, y2)
    assert len(clf.train_indices_) == len(X2)
    assert clf.class_counts_.tolist() == [48 + 5, 16]
    proba = clf.predict_proba([X[0], X[0]])
    np.testing.assert_array_equal(proba[0], proba[1])


def test_labels_3_and_7_come_back_as_labels(binary_data):
    X, y = binary_data
    y37 = np.where(y == "cat", 7, 3)
    clf = make(alpha={3: 2.0, 7: 1.0}).fit(X, y37)
    assert clf.classes_.tolist() == [3, 7]
    assert clf.class_weight_.tolist() == [2.0, 1.0]
    assert set(clf.predict(X).tolist()) <= {3, 7}


def test_unseen_label_in_score_counts_as_wrong(binary_data):
    """As in scikit-learn, score is accuracy: a label the model cannot predict is an error."""
    X, y = binary_data
    clf = make(max_epochs=1).fit(X, y)
    y_test = y[:8].copy().astype(object)
    predicted = clf.predict(X[:8])
    y_test[0] = "cow"
    expected = np.mean(predicted[1:] == y_test[1:]) * 7 / 8
    assert clf.score(X[:8], y_test) == pytest.approx(expected)


def test_class_with_fewer_members_than_cv_folds(tmp_path):
    """scikit-learn warns about the small class; every fold still trains and scores."""
    X, y = load_image_folder(make_folder(tmp_path, {"big": 20, "small": 3}, size=16))
    with pytest.warns(UserWarning, match="least populated class.*only 3 members"):
        scores = cross_val_score(make(max_epochs=1), X, y, cv=StratifiedKFold(5))
    assert scores.shape == (5,) and np.all((scores >= 0) & (scores <= 1))


def test_predict_before_fit():
    for method in ("predict", "predict_proba", "score", "save"):
        args = (["a.png"], [0]) if method == "score" else (["a.png"],)
        with pytest.raises(NotFittedError, match="ImageImbalanceClassifier instance is not fitted"):
            getattr(ImageImbalanceClassifier(), method)(*args)


def test_predict_names_missing_files(binary_data):
    X, y = binary_data
    clf = make(max_epochs=1).fit(X, y)
    with pytest.raises(ImageFileError, match=r"X\[1\] 'gone.png': file not found"):
        clf.predict([X[0], "gone.png"])


# --------------------------------------------------------------- parameters


def _shown(value):
    if isinstance(value, (str, int, float, list, dict)):
        return repr(value)
    return getattr(value, "__name__", type(value).__name__)


BAD_PARAMETERS = [
    ({"loss": "hinge"}, ValueError, "'loss' parameter of ImageImbalanceClassifier"),
    ({"gamma": -1.0}, ValueError, "'gamma' parameter"),
    ({"gamma": float("nan")}, ValueError, "'gamma' parameter"),
    ({"alpha": "inverted"}, ValueError, "'alpha' parameter.*Got 'inverted'"),
    ({"alpha": [1.0, 2.0, 3.0]}, ValueError, "alpha has 3 weight"),
    ({"alpha": {"cat": 1.0, "cow": 2.0}}, ValueError, "unknown label.*'cow'"),
    ({"beta": 1.0}, ValueError, "'beta' parameter"),
    ({"beta": -0.1}, ValueError, "'beta' parameter"),
    ({"sampler": "oversample"}, ValueError, "'sampler' parameter"),
    ({"sampler": object()}, ValueError, "'sampler' parameter"),
    ({"backbone": "resnet35"}, ValueError, "Unknown backbone 'resnet35'.*resnet34"),
    ({"weights": "no/such/file.pth"}, FileNotFoundError, "no/such/file.pth"),
    ({"image_size": 0}, ValueError, "'image_size' parameter"),
    ({"monitor": "accuracy"}, ValueError, "'monitor' parameter"),
    ({"train_split": 1.5}, ValueError, "'train_split' parameter"),
    ({"device": "tpu"}, ValueError, "'device' parameter"),
    ({"criterion": torch.nn.NLLLoss}, ValueError, "loss=..."),
    ({"iterator_train_shuffle": True}, ValueError, "iterator_train__shuffle"),
    ({"on_bad_image": "ignore"}, ValueError, "'on_bad_image' parameter"),
    ({"auto_batch_size": "yes"}, ValueError, "'auto_batch_size' parameter"),
    ({"checkpoint_dir": 3}, ValueError, "'checkpoint_dir' parameter"),
    # each of these was reported only after every image was decoded, in torch's words
    ({"optimizer": "adam"}, ValueError, "'optimizer' parameter .* torch.optim.AdamW .*Got 'adam'"),
    ({"callbacks": "x"}, ValueError, "'callbacks' parameter .* skorch callbacks.*Got 'x'"),
    ({"callbacks": [3]}, ValueError, "'callbacks' parameter .* skorch callbacks"),
    ({"module": 42}, ValueError, "'module' parameter .* nn.Module subclass or instance. Got 42"),
    ({"image_size": True}, ValueError, r"'image_size' parameter .* \[1, 4096\]. Got True"),
    ({"loss": torch.nn.MSELoss}, ValueError, "'loss' parameter .* Got loss=MSELoss"),
    ({"backbone": "shufflenet_v2_x0_5", "weights": "NOPE"}, ValueError, "'weights'.*'NOPE'"),
    ({"backbone": "small_cnn", "weights": "DEFAULT"}, ValueError, "'weights'.*no pretrained"),
    ({"backbone": "shufflenet_v2_x0_5", "module__nope": 1}, ValueError, "module__nope=1"),
    ({"module__nope": 1}, ValueError, "module__nope=1: TinyCNN takes no argument 'nope'"),
    ({"optimizer__nope": 1}, ValueError, "optimizer__nope=1: AdamW takes no argument"),
    ({"class_weight": "balanced"}, ValueError, "no 'class_weight' parameter; use alpha="),
    ({"n_epochs": 3}, ValueError, "no 'n_epochs' parameter; use max_epochs="),
    ({"colour": "red"}, ValueError, "unexpected argument.* colour"),
    ({"alpha": lambda counts: [1.0]}, ValueError, "alpha has 1 weight"),
    ({"alpha": lambda counts: 1 / 0}, ValueError, "callable alpha=.*failed.*ZeroDivisionError"),
    ({"sampler": "smote"}, ValueError, "sampler='smote' .*freeze_backbone=True"),
]


@pytest.mark.parametrize(
    "params, error, match",
    BAD_PARAMETERS,
    ids=[",".join(f"{k}={_shown(v)}" for k, v in p.items()) for p, _, _ in BAD_PARAMETERS],
)
def test_bad_parameters_fail_fast(binary_data, params, error, match):
    X, y = binary_data
    if params.get("backbone"):
        params = {**params, "module": None}
    _fails_fast(make(**params), X, y, error, match)


def test_the_first_image_read_comes_after_every_check(binary_data):
    """The reference for the cases above: a good fit does read the images."""
    X, y = binary_data
    with images_read() as reads:
        make(max_epochs=1).fit(X, y)
    assert set(reads) == set(X)


@pytest.mark.parametrize("sampler", [SMOTE(), NearMiss(), RandomOverSampler(shrinkage=1.0)])
def test_feature_samplers_are_refused_before_training(binary_data, sampler):
    X, y = binary_data
    error = _fails_fast(make(sampler=sampler), X, y, ValueError, "sampler=")
    assert "RandomOverSampler" in str(error) or "RandomUnderSampler" in str(error)


def test_synthesizing_custom_sampler_is_refused(binary_data):
    class Jitter:
        def fit_resample(self, X, y):
            return X + 0.5, y

    X, y = binary_data
    with pytest.raises(ValueError, match="not rows of its input"):
        make(sampler=Jitter()).fit(X, y)


def test_weights_file_for_another_architecture(tmp_path, binary_data):
    X, y = binary_data
    path = tmp_path / "squeezenet.pt"
    torch.save(torchvision.models.squeezenet1_1(weights=None).state_dict(), path)
    clf = make(module=None, weights=str(path))
    with pytest.raises(ValueError, match=f"weights file '{path}' does not fit backbone"):
        clf.fit(X, y)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only machine")
def test_cuda_without_gpu_is_a_clear_error(binary_data):
    X, y = binary_data
    _fails_fast(make(device="cuda"), X, y, ValueError, "device='cuda'.*CUDA is not available")


# ---------------------------------------------------------------- bad files


def _truncated(path, tmp_path, name):
    data = open(path, "rb").read()
    out = tmp_path / name
    out.write_bytes(data[: len(data) // 2])
    return str(out)


def _bad_file(kind, tmp_path, good):
    """A path of the given kind of bad file and the reason the error must give."""
    if kind == "missing":
        return str(tmp_path / "missing.png"), "file not found"
    if kind == "directory":
        (tmp_path / "folder.jpg").mkdir()
        return str(tmp_path / "folder.jpg"), "is a directory"
    if kind == "zero_bytes":
        (tmp_path / "empty.jpg").write_bytes(b"")
        return str(tmp_path / "empty.jpg"), r"empty file \(0 bytes\)"
    if kind == "text_named_jpg":
        (tmp_path / "notes.jpg").write_text("not an image\n")
        return str(tmp_path / "notes.jpg"), "not an image file PIL can read"
    if kind == "truncated_jpeg":
        source = write_images(tmp_path / "j", 1, (90, 90, 90), size=64, suffix=".jpg")[0]
        return _truncated(source, tmp_path, "cut.jpg"), "truncated"
    if kind == "truncated_png":
        source = write_images(tmp_path / "p", 1, (90, 90, 90), size=64, suffix=".png")[0]
        return _truncated(source, tmp_path, "cut.png"), "truncated"
    if kind == "broken_symlink":
        os.symlink(tmp_path / "nowhere.png", tmp_path / "link.png")
        return str(tmp_path / "link.png"), "broken symbolic link.*nowhere.png"
    if kind == "symlink_loop":
        os.symlink(tmp_path / "loop.png", tmp_path / "loop.png")
        return str(tmp_path / "loop.png"), "symbolic link loop"
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    [
        "missing",
        "directory",
        "zero_bytes",
        "text_named_jpg",
        "truncated_jpeg",
        "truncated_png",
        "broken_symlink",
        "symlink_loop",
    ],
)
def test_bad_file_is_named_with_its_index(tmp_path, binary_data, kind):
    X, y = binary_data
    X = list(X)
    X[7], reason = _bad_file(kind, tmp_path, X[0])
    error = _fails_before_training(make(), X, y, ImageFileError, rf"X\[7\] '{X[7]}': {reason}")
    assert str(error).startswith("1 of 64 image file(s) in X cannot be used")


def test_permission_denied_is_named(tmp_path, binary_data, monkeypatch):
    """Root reads any file, so the denial is simulated where PIL opens the file."""
    X, y = binary_data
    X = list(X)
    locked = write_images(tmp_path, 1, (5, 5, 5), suffix=".png")[0]
    if os.getuid() != 0:
        os.chmod(locked, 0)
    else:
        real_open = Image.open

        def deny(path, *args, **kwargs):
            if os.fspath(path) == locked:
                raise PermissionError(13, "Permission denied", locked)
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr(data_module.Image, "open", deny)
    X[3] = locked
    _fails_before_training(
        make(cache=None), X, y, ImageFileError, rf"X\[3\] '{locked}': permission denied"
    )


def test_decompression_bomb_is_named(tmp_path, binary_data, monkeypatch):
    """PIL refuses images over twice MAX_IMAGE_PIXELS; a small limit makes a 64 px one a bomb."""
    X, y = binary_data
    X = list(X)
    bomb = write_images(tmp_path, 1, (5, 5, 5), size=64, suffix=".png")[0]
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 64 * 64 > 2 * 1000
    X[2] = bomb
    _fails_before_training(
        make(cache=None), X, y, ImageFileError, rf"X\[2\] '{bomb}': too many pixels"
    )


def test_three_bad_files_in_one_error_before_training(tmp_path, binary_data):
    X, y = binary_data
    X = list(X)
    for index, kind in [(1, "missing"), (20, "text_named_jpg"), (40, "truncated_jpeg")]:
        X[index], _ = _bad_file(kind, tmp_path, X[0])
    error = _fails_before_training(make(), X, y, ImageFileError, "3 of 64 image file")
    message = str(error)
    for index, reason in [(1, "file not found"), (20, "not an image"), (40, "truncated")]:
        assert f"X[{index}] {X[index]!r}: {reason}" in message
    assert 'on_bad_image="skip"' in message


@pytest.mark.parametrize("suffix", [".gif", ".png"])
def test_animated_files_train_on_their_first_frame(tmp_path, binary_data, suffix):
    X, y = binary_data
    frames = [Image.new("RGB", (16, 16), color) for color in [(200, 0, 0), (0, 0, 200)]]
    path = tmp_path / f"animated{suffix}"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    with Image.open(path) as image:
        assert getattr(image, "n_frames", 1) == 2
    first = data_module.read_image(path, 16)
    assert first[0].float().mean() > 150 and first[2].float().mean() < 50
    X = list(X)
    X[0] = str(path)
    clf = make(max_epochs=1).fit(X, y)
    assert clf.predict_proba([str(path)]).shape == (1, 2)


def test_a_png_with_bytes_after_iend_trains(tmp_path, binary_data):
    """Some tools append data after IEND (decoders ignore it); more than the 4 KiB the
    0.1 check looked at."""
    X, y = binary_data
    X = list(X)
    trailing = tmp_path / "trailing.png"
    trailing.write_bytes(open(X[0], "rb").read() + os.urandom(64 * 1024))
    X[5] = str(trailing)
    clf = make(max_epochs=1).fit(X, y)
    assert clf.skipped_images_ == []


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_a_png_cut_before_its_iend_is_truncated(tmp_path, binary_data, keep):
    X, y = binary_data
    X = list(X)
    rng = np.random.default_rng(0)
    cut = tmp_path / "cut.png"
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(cut)
    data = cut.read_bytes()
    cut.write_bytes(data[: int(len(data) * keep)])
    X[5] = str(cut)
    _fails_before_training(make(cache=None), X, y, ImageFileError, rf"X\[5\] '{cut}': truncated")


def test_imbalance_search_with_more_folds_than_rare_images_fails_before_any_fit(
    tmp_path, monkeypatch
):
    from imbal_estimators import ImbalanceSearchCV

    X, y = load_image_folder(make_folder(tmp_path, {"big": 20, "small": 3}, size=16))
    fits = []
    monkeypatch.setattr(ImageImbalanceClassifier, "fit", lambda self, *a: fits.append(1))
    search = ImbalanceSearchCV(make(), {"gamma": [0.0, 2.0]}, n_trials=2, cv=5)
    with pytest.raises(
        ValueError, match="'cv' parameter .*5 stratified folds, .*'small' has only 3"
    ):
        search.fit(X, y)
    with pytest.raises(ValueError, match="class 'small' has only 3"):
        ImbalanceSearchCV(make(), {"gamma": [0.0]}, cv=StratifiedKFold(4)).fit(X, y)
    assert fits == []
