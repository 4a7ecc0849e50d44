"""Tests of imbal_estimators.data.images: decoding, path checks, bad-file reports, cache, dataset.

Every image is tiny and written by the test itself into ``tmp_path``.
"""

import os
import pathlib
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import imbal_estimators.data.images as data_module
from imbal_estimators.data.images import (
    MAX_LISTED_BAD_FILES,
    ImageFileError,
    ImageLoader,
    ImagePathDataset,
    check_files_exist,
    check_paths,
    load_image_folder,
    make_augmentation,
    read_image,
    scan_images,
)

S = 8  # output side of every decoded image in these tests


def _noise(seed=0, size=64):
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def _assert_image_tensor(tensor, size=S):
    assert isinstance(tensor, torch.Tensor)
    assert tensor.dtype == torch.uint8
    assert tuple(tensor.shape) == (3, size, size)


def _assert_color(tensor, rgb, atol=0):
    """Every pixel of ``tensor`` equals ``rgb`` up to ``atol``."""
    assert tensor.dtype == torch.uint8 and tensor.ndim == 3 and tensor.shape[0] == 3
    expected = torch.tensor(rgb, dtype=torch.int16).view(3, 1, 1)
    diff = (tensor.to(torch.int16) - expected).abs().max().item()
    assert diff <= atol, f"max deviation {diff} from {rgb}"


def _left_dark_right_bright(width, height, mode="RGB"):
    """A ``width`` x ``height`` image: black left half, white right half."""
    img = Image.new(mode, (width, height), (255, 255, 255) if mode == "RGB" else 255)
    img.paste((0, 0, 0) if mode == "RGB" else 0, (0, 0, width // 2, height))
    return img


def _write_bytes(path, content):
    with open(path, "wb") as f:
        f.write(content)
    return str(path)


def _truncate(path, out):
    with open(path, "rb") as f:
        content = f.read()
    return _write_bytes(out, content[: len(content) // 2])


# --------------------------------------------------------------------- read_image


def test_read_image_rgb_png_exact(tmp_path):
    pixels = _noise(1, S)
    path = tmp_path / "rgb.png"
    Image.fromarray(pixels, "RGB").save(path)
    tensor = read_image(str(path), S)
    _assert_image_tensor(tensor)
    assert tensor.is_contiguous()
    np.testing.assert_array_equal(tensor.permute(1, 2, 0).numpy(), pixels)


def test_read_image_greyscale_l(tmp_path):
    path = tmp_path / "grey.png"
    Image.new("L", (12, 10), 77).save(path)
    _assert_color(read_image(str(path), S), (77, 77, 77))


def test_read_image_rgba_drops_alpha(tmp_path):
    path = tmp_path / "rgba.png"
    Image.new("RGBA", (10, 10), (10, 20, 30, 128)).save(path)
    _assert_color(read_image(str(path), S), (10, 20, 30))


def _palette_image():
    img = Image.new("P", (S, S), 0)
    img.putpalette([255, 0, 0, 0, 255, 0] + [0, 0, 0] * 254)  # 0: red, 1: green
    img.paste(1, (S // 2, 0, S, S))  # right half green
    return img


def test_read_image_palette(tmp_path):
    path = tmp_path / "palette.png"
    _palette_image().save(path)
    tensor = read_image(str(path), S)
    _assert_color(tensor[:, :, : S // 2], (255, 0, 0))
    _assert_color(tensor[:, :, S // 2 :], (0, 255, 0))


def test_read_image_palette_with_transparency_no_warning(tmp_path):
    path = tmp_path / "palette_t.png"
    _palette_image().save(path, transparency=0)
    with Image.open(path) as img:
        assert img.mode == "P" and "transparency" in img.info
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tensor = read_image(str(path), S)
    _assert_image_tensor(tensor)
    _assert_color(tensor[:, :, S // 2 :], (0, 255, 0))  # the opaque half keeps its color


def test_read_image_one_bit(tmp_path):
    path = tmp_path / "bits.png"
    _left_dark_right_bright(S, S, mode="1").save(path)
    tensor = read_image(str(path), S)
    _assert_color(tensor[:, :, : S // 2], (0, 0, 0))
    _assert_color(tensor[:, :, S // 2 :], (255, 255, 255))


def test_read_image_cmyk_jpeg(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(path, quality=95)
    with Image.open(path) as img:
        assert img.mode == "CMYK"
    _assert_color(read_image(str(path), S), (255, 0, 0), atol=8)  # red


def test_read_image_16bit_png_is_scaled_not_clipped(tmp_path):
    path = tmp_path / "g16.png"
    Image.fromarray(np.full((10, 10), 32768, dtype=np.uint16)).save(path)
    with Image.open(path) as img:
        assert img.mode.startswith("I")
    _assert_color(read_image(str(path), S), (128, 128, 128), atol=1)  # not white


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_read_image_16bit_gradient_keeps_order(tmp_path, suffix):
    path = tmp_path / f"g16_gradient{suffix}"
    gradient = np.tile(np.linspace(0, 65535, S), (S, 1)).astype(np.uint16)
    Image.fromarray(gradient).save(path)
    tensor = read_image(str(path), S)
    _assert_image_tensor(tensor)
    row = tensor[0, 0].to(torch.int16)
    assert row[0] == 0 and row[-1] == 255
    assert (row.diff() > 0).all(), row
    assert torch.equal(tensor[0], tensor[1]) and torch.equal(tensor[0], tensor[2])


@pytest.mark.parametrize(
    "mode, dtype, value", [("I", np.int32, 32768), ("F", np.float32, 0.5)], ids=["I", "F"]
)
def test_read_image_32_bit_modes_in_their_natural_range(tmp_path, mode, dtype, value):
    # I holds 16-bit data (0..65535), F holds [0, 1]: both map to the middle grey
    path = tmp_path / f"{mode}.tif"
    Image.fromarray(np.full((10, 10), value, dtype=dtype), mode).save(path)
    with Image.open(path) as img:
        assert img.mode == mode
    _assert_color(read_image(str(path), S), (128, 128, 128), atol=1)


@pytest.mark.parametrize(
    "mode, dtype, low, high", [("I", np.int32, -1000, 5000), ("F", np.float32, -3.0, 7.0)]
)
def test_read_image_32_bit_modes_out_of_range_are_min_max_scaled(tmp_path, mode, dtype, low, high):
    path = tmp_path / f"{mode}_gradient.tif"
    gradient = np.tile(np.linspace(low, high, S), (S, 1)).astype(dtype)
    Image.fromarray(gradient, mode).save(path)
    row = read_image(str(path), S)[0, 0].to(torch.int16)
    assert row[0] == 0 and row[-1] == 255
    assert (row.diff() > 0).all(), row


def test_read_image_constant_float_outside_unit_range_keeps_value(tmp_path):
    # A constant image has no range to min-max scale; it used to come out black.
    path = tmp_path / "f_const.tif"
    Image.fromarray(np.full((10, 10), 100.0, dtype=np.float32), "F").save(path)
    _assert_color(read_image(str(path), S), (100, 100, 100))


def test_read_image_float_with_nan_keeps_content(tmp_path):
    # One NaN pixel used to make min/max NaN and the whole image black.
    path = tmp_path / "f_nan.tif"
    gradient = np.tile(np.linspace(0.0, 1.0, S), (S, 1)).astype(np.float32)
    gradient[0, 0] = np.nan
    Image.fromarray(gradient, "F").save(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tensor = read_image(str(path), S)
    assert tensor[0, 0, 0] == 0  # NaN -> 0
    row = tensor[0, 1].to(torch.int16)
    assert row[0] == 0 and row[-1] == 255
    assert (row.diff() > 0).all(), row


@pytest.mark.parametrize("orientation, dark_rows", [(6, "top"), (8, "bottom")])
def test_read_image_applies_exif_orientation(tmp_path, orientation, dark_rows):
    # Stored as 40x20 with a dark left half; orientation 6 rotates it 90 degrees
    # clockwise (the dark half goes to the top), 8 counter-clockwise (bottom).
    path = tmp_path / f"exif{orientation}.jpg"
    exif = Image.Exif()
    exif[0x0112] = orientation
    _left_dark_right_bright(40, 20).save(path, exif=exif, quality=95)
    with Image.open(path) as img:
        assert img.getexif()[0x0112] == orientation
    tensor = read_image(str(path), S)
    _assert_image_tensor(tensor)
    top, bottom = tensor[:, :2].float().mean(), tensor[:, -2:].float().mean()
    left, right = tensor[:, :, :2].float().mean(), tensor[:, :, -2:].float().mean()
    assert abs(left - right) < 5, "not rotated: the halves are still left and right"
    if dark_rows == "top":
        assert top < 20 and bottom > 235
    else:
        assert bottom < 20 and top > 235


def test_read_image_one_pixel(tmp_path):
    path = tmp_path / "one.png"
    Image.new("RGB", (1, 1), (12, 200, 34)).save(path)
    _assert_color(read_image(str(path), S), (12, 200, 34))


def test_read_image_very_wide(tmp_path):
    path = tmp_path / "wide.png"
    _left_dark_right_bright(2000, 3).save(path)
    tensor = read_image(str(path), S)
    _assert_image_tensor(tensor)
    _assert_color(tensor[:, :, : S // 2 - 1], (0, 0, 0))
    _assert_color(tensor[:, :, S // 2 + 1 :], (255, 255, 255))


@pytest.mark.parametrize("name", ["UPPER.JPG", "UPPER.PNG", "UPPER.JPEG"])
def test_read_image_upper_case_extension(tmp_path, name):
    path = tmp_path / name
    Image.new("RGB", (10, 10), (30, 60, 90)).save(path, format="PNG" if "PNG" in name else None)
    _assert_color(read_image(str(path), S), (30, 60, 90), atol=3)


def test_read_image_animated_gif_uses_first_frame(tmp_path):
    path = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (10, 10), c) for c in [(255, 0, 0), (0, 0, 255)]]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    with Image.open(path) as img:
        assert img.n_frames == 2
    _assert_color(read_image(str(path), S), (255, 0, 0))


@pytest.mark.parametrize(
    "name, options",
    [
        ("img.bmp", {}),
        ("img.tif", {}),
        ("img.tiff", {"compression": "tiff_lzw"}),
        ("img.webp", {"lossless": True}),
    ],
)
def test_read_image_other_formats(tmp_path, name, options):
    pixels = _noise(2, S)
    path = tmp_path / name
    Image.fromarray(pixels, "RGB").save(path, **options)
    tensor = read_image(str(path), S)
    _assert_image_tensor(tensor)
    np.testing.assert_array_equal(tensor.permute(1, 2, 0).numpy(), pixels)


def test_read_image_resizes_to_requested_size(tmp_path):
    path = tmp_path / "big.jpg"
    Image.new("RGB", (64, 48), (200, 100, 50)).save(path, quality=95)
    for size in (4, 16, 100):
        _assert_color(read_image(str(path), size), (200, 100, 50), atol=4)


def test_read_image_accepts_pathlike(tmp_path):
    path = tmp_path / "p.png"
    Image.new("RGB", (5, 5), (1, 2, 3)).save(path)
    _assert_color(read_image(path, S), (1, 2, 3))


# ------------------------------------------------------------ scan_images (bad files)


@pytest.fixture
def mixed_files(tmp_path):
    """Good and bad files; returns (paths, {index: expected reason fragment})."""
    good_jpg = tmp_path / "good.jpg"
    Image.fromarray(_noise(3), "RGB").save(good_jpg, quality=95)
    good_png = tmp_path / "good.png"
    Image.fromarray(_noise(4), "RGB").save(good_png)
    empty = _write_bytes(tmp_path / "empty.jpg", b"")
    text = _write_bytes(tmp_path / "text.jpg", b"this is not an image\n")
    directory = tmp_path / "folder.png"
    directory.mkdir()
    paths = [
        str(good_jpg),  # 0
        str(tmp_path / "missing.png"),  # 1
        empty,  # 2
        text,  # 3
        _truncate(good_jpg, tmp_path / "cut.jpg"),  # 4
        _truncate(good_png, tmp_path / "cut.png"),  # 5
        str(directory),  # 6
        str(good_png),  # 7
    ]
    bad = {
        1: "file not found",
        2: "empty",
        3: "not an image",
        4: "truncated",
        5: "truncated",
        6: "directory",
    }
    return paths, bad


@pytest.mark.parametrize("cache", [None, "memory"])
def test_scan_images_reports_every_bad_file_once(mixed_files, cache):
    paths, bad = mixed_files
    with pytest.raises(ImageFileError) as info:
        scan_images(paths, ImageLoader(S, cache=cache))
    exc = info.value
    assert isinstance(exc, ValueError) and isinstance(exc, OSError)
    message = str(exc)
    assert message.startswith(f"{len(bad)} of {len(paths)} image file(s) in X cannot be used")
    lines = message.splitlines()[1:]
    assert len(lines) == len(bad)
    for line, (index, reason) in zip(lines, sorted(bad.items()), strict=True):
        assert line.strip().startswith(f"X[{index}] {paths[index]!r}: "), line
        assert reason in line, (reason, line)
    for good in (0, 7):
        assert f"X[{good}]" not in message
        assert os.path.basename(paths[good]) not in message


def test_scan_images_uses_name_and_passes_good_files(tmp_path):
    paths = [str(p) for p in _write_pngs(tmp_path, 3)]
    assert scan_images(paths, ImageLoader(S, cache=None), n_threads=1) is None
    paths.append(str(tmp_path / "gone.png"))
    with pytest.raises(ImageFileError, match=r"X_val\[3\] .*gone\.png'?: file not found"):
        scan_images(paths, ImageLoader(S, cache=None), name="X_val")


def test_scan_images_caps_the_listing(tmp_path):
    n = MAX_LISTED_BAD_FILES + 2
    paths = [str(tmp_path / f"missing_{i}.png") for i in range(n)]
    with pytest.raises(ImageFileError) as info:
        scan_images(paths, ImageLoader(S, cache=None))
    message = str(info.value)
    assert message.startswith(f"{n} of {n} image file(s)")
    assert f"X[{MAX_LISTED_BAD_FILES - 1}]" in message
    assert f"X[{MAX_LISTED_BAD_FILES}]" not in message
    assert message.splitlines()[-1].strip() == "... and 2 more"


def _write_pngs(folder, n, prefix="img"):
    paths = []
    for i in range(n):
        path = pathlib.Path(folder) / f"{prefix}_{i}.png"
        Image.new("RGB", (6, 6), (40 * i % 256, 10, 200)).save(path)
        paths.append(path)
    return paths


# -------------------------------------------------------------------- check_paths


@pytest.mark.parametrize(
    "make",
    [
        lambda p: list(p),
        lambda p: tuple(p),
        lambda p: np.array(p),
        lambda p: np.array(p, dtype=object),
        lambda p: np.array(p, dtype=object).reshape(-1, 1),
        lambda p: pd.Series(p, index=[10, 20, 30]),
        lambda p: pd.Series(p, dtype="string"),
        lambda p: pd.DataFrame({"path": p}),
        lambda p: [pathlib.Path(x) for x in p],
        lambda p: (x for x in p),
    ],
    ids=[
        "list",
        "tuple",
        "ndarray",
        "object",
        "n_by_1",
        "series",
        "string_series",
        "frame",
        "pathlib",
        "generator",
    ],
)
def test_check_paths_accepted_containers(make):
    expected = ["a/x.png", "b/y.jpg", "c.JPG"]
    paths = check_paths(make(expected))
    assert isinstance(paths, np.ndarray)
    assert paths.dtype == object and paths.ndim == 1
    assert paths.tolist() == expected
    assert all(type(p) is str for p in paths)


@pytest.mark.parametrize("empty", [[], (), np.array([], dtype=object), pd.Series([], dtype=object)])
def test_check_paths_empty(empty):
    with pytest.raises(ValueError, match="X is empty"):
        check_paths(empty)


@pytest.mark.parametrize(
    "bad, shown",
    [
        (["a.png", None], "None of type NoneType"),
        (["a.png", float("nan")], "NaN of type float"),
        (np.array(["a.png", np.nan], dtype=object), "NaN of type float"),
        (pd.Series(["a.png", None]), "of type"),
        (["a.png", 3], "3 of type int"),
        (["a.png", b"b.png"], "of type bytes"),
    ],
)
def test_check_paths_bad_item_names_the_index(bad, shown):
    with pytest.raises(TypeError, match=r"X\[1\] is ") as info:
        check_paths(bad)
    assert shown in str(info.value)
    assert "str or os.PathLike" in str(info.value)


def test_check_paths_uses_name():
    with pytest.raises(TypeError, match=r"X_test\[0\] is None"):
        check_paths([None], name="X_test")
    with pytest.raises(ValueError, match=r"X_test\[1\] is an empty string"):
        check_paths(["a.png", ""], name="X_test")


@pytest.mark.parametrize("single", ["img.png", pathlib.Path("img.png"), b"img.png"])
def test_check_paths_single_path_is_type_error(single):
    with pytest.raises(TypeError, match="single path.*list of image file paths"):
        check_paths(single)


def test_check_paths_two_column_frame():
    frame = pd.DataFrame({"a": ["x.png"], "b": ["y.png"]})
    with pytest.raises(ValueError, match="one column.*2 columns"):
        check_paths(frame)


def test_check_paths_two_dimensional_array():
    with pytest.raises(ValueError, match=r"1-D .*shape \(2, 2\)"):
        check_paths(np.array([["a", "b"], ["c", "d"]], dtype=object))


def test_check_paths_none():
    with pytest.raises(ValueError, match="X is None"):
        check_paths(None)


# -------------------------------------------------------------- check_files_exist


def test_check_files_exist_lists_missing_empty_and_directories(tmp_path, monkeypatch):
    def no_decoding(*args, **kwargs):
        raise AssertionError("check_files_exist must not decode")

    monkeypatch.setattr(data_module, "read_image", no_decoding)
    monkeypatch.setattr(Image, "open", no_decoding)
    good = _write_pngs(tmp_path, 1)[0]
    text = _write_bytes(tmp_path / "text.jpg", b"not decoded, so not reported")
    (tmp_path / "sub").mkdir()
    paths = [
        str(good),
        str(tmp_path / "nope.jpg"),
        _write_bytes(tmp_path / "zero.png", b""),
        text,
        str(tmp_path / "sub"),
    ]
    with pytest.raises(ImageFileError) as info:
        check_files_exist(paths, name="X_new")
    message = str(info.value)
    assert message.startswith("3 of 5 image file(s) in X_new cannot be used")
    assert "before predicting" in message
    assert f"X_new[1] {paths[1]!r}: file not found" in message
    assert f"X_new[2] {paths[2]!r}: empty file" in message
    assert f"X_new[4] {paths[4]!r}: is a directory" in message
    assert "X_new[0]" not in message and "X_new[3]" not in message

    assert check_files_exist([str(good), text]) is None


# --------------------------------------------------------------- ImagePathDataset


def test_image_path_dataset_items_and_indices(tmp_path):
    paths = np.array([str(p) for p in _write_pngs(tmp_path, 3)], dtype=object)
    targets = np.array([0, 1, 2])
    loader = ImageLoader(S, cache=None)
    dataset = ImagePathDataset(paths, targets, loader, indices=[2, 0, 2, 1])
    assert len(dataset) == 4
    assert len(ImagePathDataset(paths, targets, loader)) == 3
    for i, source in enumerate([2, 0, 2, 1]):
        image, label = dataset[i]
        _assert_image_tensor(image)
        assert torch.equal(image, read_image(paths[source], S))
        assert label.dtype == torch.int64 and label.shape == ()
        assert label.item() == targets[source]


def test_image_path_dataset_without_targets(tmp_path):
    paths = np.array([str(p) for p in _write_pngs(tmp_path, 2)], dtype=object)
    dataset = ImagePathDataset(paths, None, ImageLoader(S, cache=None))
    image, label = dataset[1]
    _assert_image_tensor(image)
    assert label.dtype == torch.int64 and label.item() == -1


def test_image_path_dataset_with_augmentation(tmp_path):
    paths = np.array([str(p) for p in _write_pngs(tmp_path, 2)], dtype=object)
    transform = make_augmentation(S, True)
    dataset = ImagePathDataset(
        paths, np.array([1, 0]), ImageLoader(S, cache=None), transform=transform
    )
    torch.manual_seed(0)
    for i in range(len(dataset)):
        image, label = dataset[i]
        _assert_image_tensor(image)
        assert label.item() == [1, 0][i]
    assert make_augmentation(S, False) is None
    custom = lambda x: x.flip(-1)  # noqa: E731
    assert make_augmentation(S, custom) is custom


def test_image_path_dataset_bad_file_names_the_path(tmp_path):
    good = str(_write_pngs(tmp_path, 1)[0])
    missing = str(tmp_path / "vanished.png")
    text = _write_bytes(tmp_path / "text.png", b"hello")
    paths = np.array([good, missing, text], dtype=object)
    dataset = ImagePathDataset(paths, np.array([0, 1, 0]), ImageLoader(S, cache=None))
    with pytest.raises(ImageFileError) as info:
        dataset[1]
    assert f"[1] {missing!r}: file not found" in str(info.value)
    with pytest.raises(ImageFileError, match=r"\[2\] .*text\.png.*not an image"):
        dataset[2]


# -------------------------------------------------------------------- ImageLoader


@pytest.fixture
def count_reads(monkeypatch):
    """Count calls of ``read_image`` made through ``ImageLoader``."""
    calls = []
    original = data_module.read_image

    def counting(path, image_size):
        calls.append((path, image_size))
        return original(path, image_size)

    monkeypatch.setattr(data_module, "read_image", counting)
    return calls


def test_image_loader_memory_cache_hit(tmp_path, count_reads):
    path = str(_write_pngs(tmp_path, 1, prefix="hit")[0])
    loader = ImageLoader(S, cache="memory")
    first = loader(path)
    second = loader(path)
    assert len(count_reads) == 1
    assert torch.equal(first, second)
    _assert_image_tensor(second)
    ImageLoader(S, cache="memory")(path)  # a new loader shares the process cache
    assert len(count_reads) == 1


def test_image_loader_without_cache_always_reads(tmp_path, count_reads):
    path = str(_write_pngs(tmp_path, 1, prefix="nocache")[0])
    loader = ImageLoader(S, cache=None)
    loader(path)
    loader(path)
    assert len(count_reads) == 2


def test_image_loader_cache_invalidated_by_mtime(tmp_path, count_reads):
    path = str(_write_pngs(tmp_path, 1, prefix="mtime")[0])
    loader = ImageLoader(S, cache="memory")
    loader(path)
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5 * 10**9))
    loader(path)
    assert len(count_reads) == 2
    loader(path)
    assert len(count_reads) == 2


def test_image_loader_cache_invalidated_by_new_content(tmp_path, count_reads):
    path = tmp_path / "content.png"
    Image.new("RGB", (6, 6), (255, 0, 0)).save(path)
    loader = ImageLoader(S, cache="memory")
    _assert_color(loader(str(path)), (255, 0, 0))
    stat = os.stat(path)
    Image.fromarray(_noise(5, 6), "RGB").save(path)  # other content, other size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    tensor = loader(str(path))
    assert len(count_reads) == 2
    assert torch.equal(tensor, read_image(str(path), S))
    assert not torch.equal(
        tensor, torch.tensor([255, 0, 0], dtype=torch.uint8).view(3, 1, 1).expand(3, S, S)
    )


def test_image_loader_cache_keyed_by_image_size(tmp_path, count_reads):
    path = str(_write_pngs(tmp_path, 1, prefix="sizes")[0])
    small, large = ImageLoader(4, cache="memory"), ImageLoader(S, cache="memory")
    _assert_image_tensor(small(path), 4)
    _assert_image_tensor(large(path), S)
    _assert_image_tensor(small(path), 4)
    _assert_image_tensor(large(path), S)
    assert count_reads == [(path, 4), (path, S)]


def test_scan_images_fills_the_cache(tmp_path, count_reads):
    paths = [str(p) for p in _write_pngs(tmp_path, 3, prefix="scan")]
    loader = ImageLoader(S, cache="memory")
    scan_images(paths, loader)
    assert len(count_reads) == 3
    for path in paths:
        loader(path)
    assert len(count_reads) == 3


# -------------------------------------------------------------- load_image_folder


def _make_class_folders(root, layout):
    for class_name, names in layout.items():
        folder = pathlib.Path(root) / class_name
        folder.mkdir(parents=True)
        for name in names:
            if name.lower().endswith(".txt"):
                _write_bytes(folder / name, b"notes")
            else:
                fmt = "PNG" if name.lower().endswith(".png") else "JPEG"
                Image.new("RGB", (4, 4), (9, 9, 9)).save(folder / name, format=fmt)
    return str(root)


def test_load_image_folder_matches_torchvision(tmp_path):
    from torchvision.datasets import ImageFolder

    root = _make_class_folders(
        tmp_path / "data",
        {
            "dog": ["b.jpg", "A.PNG", "c.JPG", "readme.txt", "z.jpeg"],
            "cat": ["x.png", "notes.TXT", "Y.JPEG"],
            "bird": ["only.Png"],
        },
    )
    (tmp_path / "data" / "stray.png").write_bytes(b"")  # a file at the root is not a class
    paths, labels = load_image_folder(root)
    reference = ImageFolder(root)
    assert paths.dtype == object and paths.ndim == 1
    assert paths.tolist() == [path for path, _ in reference.samples]
    assert labels.tolist() == [reference.classes[target] for target in reference.targets]
    assert all(type(label) is str for label in labels.tolist())
    assert labels.tolist() == ["bird"] + ["cat"] * 2 + ["dog"] * 4
    names = [os.path.basename(p) for p in paths]
    assert "A.PNG" in names and "c.JPG" in names and "Y.JPEG" in names
    assert not any(name.lower().endswith(".txt") for name in names)


def test_load_image_folder_integer_class_names(tmp_path):
    from torchvision.datasets import ImageFolder

    root = _make_class_folders(
        tmp_path / "ints",
        {"0": ["a.png", "b.png"], "1": ["c.png"], "10": ["d.png"], "2": ["e.png"]},
    )
    paths, labels = load_image_folder(root)
    reference = ImageFolder(root)
    assert paths.tolist() == [path for path, _ in reference.samples]
    assert np.issubdtype(labels.dtype, np.integer)
    assert labels.tolist() == [int(reference.classes[t]) for t in reference.targets]
    assert labels.tolist() == [0, 0, 1, 10, 2]  # ImageFolder's string order of classes


def test_load_image_folder_binary_integer_fixture(int_binary_data):
    paths, labels = int_binary_data
    assert np.issubdtype(labels.dtype, np.integer)
    assert sorted(set(labels.tolist())) == [0, 1]
    assert (labels == 0).sum() == 40 and (labels == 1).sum() == 14
    assert all(
        os.sep + str(label) + os.sep in path for path, label in zip(paths, labels, strict=True)
    )


def test_load_image_folder_mixed_names_stay_strings(tmp_path):
    root = _make_class_folders(tmp_path / "mixed", {"0": ["a.png"], "cat": ["b.png"]})
    _, labels = load_image_folder(pathlib.Path(root))
    assert labels.tolist() == ["0", "cat"]
    assert not np.issubdtype(labels.dtype, np.integer)


def test_load_image_folder_missing_root(tmp_path):
    missing = tmp_path / "no_such_dir"
    with pytest.raises(FileNotFoundError, match="no_such_dir"):
        load_image_folder(missing)
    a_file = str(_write_pngs(tmp_path, 1)[0])
    with pytest.raises(FileNotFoundError, match="not a directory"):
        load_image_folder(a_file)


@pytest.mark.parametrize("cut", [1, 12, 40])
def test_png_missing_its_last_bytes_is_truncated(tmp_path, cut):
    # PIL decodes such a file without complaint once the pixel data is complete
    path = tmp_path / "cut.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (30, 30, 3), dtype=np.uint8)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[:-cut])
    with pytest.raises(ImageFileError, match=r"X\[0\].*truncated"):
        scan_images([str(path)], ImageLoader(16, cache=None))


def test_png_with_bytes_after_iend_is_valid(tmp_path):
    path = tmp_path / "trailing.png"
    Image.new("RGB", (8, 8), (200, 0, 0)).save(path)
    path.write_bytes(path.read_bytes() + b"\0" * 16)
    _assert_color(read_image(str(path), S), (200, 0, 0))


def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(ImageFileError, match="not a regular file"):
        scan_images([str(fifo)], ImageLoader(8, cache=None))
    with pytest.raises(ImageFileError, match="not a regular file"):
        check_files_exist([str(fifo)])


def test_cache_misses_a_replaced_file_whose_mtime_was_restored(tmp_path):
    path = tmp_path / "swap.png"
    Image.new("RGB", (8, 8), (250, 0, 0)).save(path)
    loader = ImageLoader(8, cache="memory")
    assert loader(str(path))[0, 0, 0] == 250
    old = os.stat(path)
    replacement = tmp_path / "other.png"
    Image.new("RGB", (8, 8), (0, 0, 250)).save(replacement)
    os.replace(replacement, path)
    os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns))
    assert loader(str(path))[2, 0, 0] == 250


def test_folder_names_that_would_collide_as_integers_stay_strings(tmp_path):
    for name in ("01", "1"):
        (tmp_path / name).mkdir()
        Image.new("RGB", (4, 4)).save(tmp_path / name / "a.png")
    _, labels = load_image_folder(tmp_path)
    assert labels.tolist() == ["01", "1"]
