"""From file paths to uint8 image tensors: checks, decoding, the dataset, ImageFolder.

The data flow is one line: paths are checked (:func:`check_paths`), every file
is decoded once before training (:func:`scan_images`, which also fills the
cache), the dataset serves ``(3, crop, crop)`` uint8 tensors (:mod:`.geometry`) with
optional augmentation, and the model normalizes them on its device.
"""

import errno
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from numbers import Real

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision.transforms import v2

from ..utils.types import LabelArray
from .cache import MemoryTensorCache, get_cache, image_key
from .geometry import Geometry

MAX_LISTED_BAD_FILES = 50


class ImageFileError(ValueError, OSError):
    """One or more image files cannot be used; the message lists each with its index."""


def check_paths(X, name="X"):
    """Validate image paths and return them as a 1-D object array of ``str``.

    Parameters
    ----------
    X : list, tuple, 1-D array, (n, 1) array, pandas Series or one-column DataFrame
        File paths as ``str`` or ``os.PathLike``.
    name : str, default="X"
        The argument name used in error messages.

    Returns
    -------
    paths : ndarray of shape (n_samples,), dtype object
    """
    if X is None:
        raise ValueError(f"{name} is None; pass a list of image file paths.")
    if isinstance(X, (str, bytes, os.PathLike)):
        raise TypeError(
            f"{name} is a single path ({X!r}); pass a list of image file paths, "
            "e.g. from load_image_folder(root)."
        )
    if hasattr(X, "iloc") and getattr(X, "ndim", 1) == 2:  # pandas DataFrame
        if X.shape[1] != 1:
            raise ValueError(
                f"{name} must have one column of image paths; got a DataFrame with "
                f"{X.shape[1]} columns."
            )
        X = X.iloc[:, 0]
    values = np.asarray(list(X) if not hasattr(X, "__array__") else X, dtype=object)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1:
        raise ValueError(
            f"{name} must be a 1-D sequence or one column of image paths; got shape {values.shape}."
        )
    if len(values) == 0:
        raise ValueError(f"{name} is empty; pass at least one image path.")
    paths = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        if isinstance(value, (str, os.PathLike)):
            paths[i] = os.fspath(value)
            if paths[i] == "":
                raise ValueError(f"{name}[{i}] is an empty string, not an image path.")
        else:
            shown = "NaN" if isinstance(value, Real) and value != value else repr(value)
            raise TypeError(
                f"{name}[{i}] is {shown} of type {type(value).__name__}; {name} must "
                "hold image file paths (str or os.PathLike)."
            )
    return paths


def to_rgb(image):
    """Convert a decoded PIL image of any mode to 8-bit RGB.

    16-bit and 32-bit integer images are scaled to 8 bits rather than clipped
    (``convert("RGB")`` would turn a 16-bit PNG white); float images in [0, 1]
    are scaled by 255 and others min-max scaled over their finite pixels (NaN
    becomes 0; a constant image keeps its value, clipped to [0, 255]); palette
    images with transparency go through RGBA.
    """
    mode = image.mode
    if mode.startswith("I;16"):
        array = np.asarray(image).astype(np.float64) / 257.0
        return Image.fromarray(np.rint(array).astype(np.uint8), "L").convert("RGB")
    if mode in ("I", "F"):
        array = np.asarray(image).astype(np.float64)
        # The range of the finite pixels: one NaN must not black out the image.
        finite = array[np.isfinite(array)]
        low, high = (finite.min(), finite.max()) if finite.size else (0.0, 0.0)
        if mode == "F" and low >= 0 and high <= 1:
            array = array * 255.0
        elif mode == "I" and low >= 0 and high <= 65535:
            array = array / 257.0 if high > 255 else array
        elif high > low:
            array = (array - low) * (255.0 / (high - low))
        # else: a constant image has no range to stretch; its value is clipped below.
        array = np.clip(np.nan_to_num(np.rint(array), nan=0.0), 0, 255).astype(np.uint8)
        return Image.fromarray(array, "L").convert("RGB")
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode != "RGB":
        image = image.convert("RGB")
    return image


def read_image(path, image_size):
    """Decode ``path`` fully and return a ``(3, crop, crop)`` uint8 tensor.

    EXIF orientation is applied, every PIL mode is converted to RGB with
    :func:`to_rgb`, and the image is brought to the network's input by
    ``image_size``: an int resizes (not crops) it to an ``image_size`` square, a
    :class:`~imbal_estimators.data.geometry.Geometry` may resize the shorter side
    and centre-crop. JPEG files are decoded at the smallest DCT scale that still
    covers the resize, which is several times faster for large photos.
    """
    geometry = Geometry.of(image_size)
    problem = file_problem(path)
    if problem:
        raise UnusableFileError(problem)
    with Image.open(path) as image:
        if image.format == "JPEG":
            image.draft(None, geometry.draft_size())
        image.load()
        if image.format == "PNG":
            _check_png_end(path)
        image = to_rgb(ImageOps.exif_transpose(image))
    image = geometry.apply(image)
    array = np.asarray(image, dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _check_png_end(path):
    """PIL decodes a PNG whose last bytes are cut off; a complete file reaches its IEND chunk.

    Walks the chunk headers (length, type; the data is skipped) from the signature to
    IEND. Bytes after IEND are allowed: decoders ignore them, and some tools append them.
    """
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        if file.read(8) != _PNG_SIGNATURE:
            return  # PIL read it as a PNG in another way; nothing to walk
        position = 8
        while True:
            header = file.read(8)
            if len(header) < 8:
                break
            length = int.from_bytes(header[:4], "big")
            end = position + 8 + length + 4  # header, data, CRC
            if end > size:
                break
            if header[4:8] == b"IEND":
                return
            position = end
            file.seek(position)
    raise OSError("image file is truncated (the PNG ends before its IEND chunk)")


class UnusableFileError(OSError):
    """The path is not a non-empty regular file; the message is the reason."""


def file_problem(path):
    """Why ``path`` cannot be an image file (one ``os.stat``, no decoding), or None.

    FIFOs, devices and sockets are refused before anything opens them: reading
    a FIFO blocks forever.
    """
    try:
        status = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            return f"broken symbolic link (its target {os.readlink(path)!r} does not exist)"
        return "file not found"
    except PermissionError:
        return "permission denied"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop (the link points back to itself)"
        return f"cannot read the file's status ({exc})"
    if stat.S_ISDIR(status.st_mode):
        return "is a directory, not an image file"
    if not stat.S_ISREG(status.st_mode):
        return "not a regular file (a FIFO, device or socket)"
    if status.st_size == 0:
        return "empty file (0 bytes)"
    return None


def describe_image_error(path, exc):
    """A short human reason for why ``path`` could not be decoded."""
    if isinstance(exc, UnusableFileError):
        return str(exc)
    if isinstance(exc, OSError) and not isinstance(exc, UnidentifiedImageError):
        problem = file_problem(path)  # e.g. os.stat of the cache key on a missing file
        if problem:
            return problem
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, Image.DecompressionBombError):
        return f"too many pixels (PIL's decompression-bomb limit): {exc}"
    if isinstance(exc, UnidentifiedImageError):
        return "not an image file PIL can read (unrecognized format)"
    if "truncated" in str(exc).lower() or isinstance(exc, (OSError, SyntaxError)):
        return f"truncated or corrupt image ({exc})"
    return f"{type(exc).__name__}: {exc}"


class ImageLoader:
    """Callable ``path -> uint8 tensor`` through the decoded-image cache.

    Holds the cache by name, not by object, so DataLoader workers do not copy it.

    Parameters
    ----------
    image_size : int or Geometry
        An int is a square resize (:func:`read_image`).
    cache : the estimator's ``cache`` parameter
    """

    def __init__(self, image_size, cache="memory"):
        self.geometry = Geometry.of(image_size)
        self.image_size = self.geometry.crop  # the side of the tensors it returns
        # what read_image is given: the plain int for a square resize, as before geometries
        self._read_as = self.image_size if self.geometry.is_square_resize else self.geometry
        self.cache = cache

    @property
    def key(self):
        """The geometry's part of the cache keys (:func:`~.cache.image_key`)."""
        return self.geometry.key

    def __call__(self, path):
        store = get_cache(self.cache)
        if store is None:
            return read_image(path, self._read_as)
        key = image_key(path, self.key)
        size = self.image_size
        if isinstance(store, MemoryTensorCache):
            tensor = store.get(key)
        else:  # a directory cache checks the entry it reads
            tensor = store.get(key, shape=(3, size, size), dtype=torch.uint8)
        if tensor is None:
            tensor = read_image(path, self._read_as)
            store.put(key, tensor)  # best-effort: a failed write is a CacheWarning
        return tensor


def scan_images(paths, loader, name="X", n_threads=None):
    """Decode every image once (filling the cache) and report all bad files together.

    Parameters
    ----------
    paths : sequence of str
    loader : ImageLoader
    name : str, default="X"
        The argument name used in the error message.
    n_threads : int, optional
        Decoding threads; PIL releases the GIL while decoding.

    Raises
    ------
    ImageFileError
        Listing each bad file as ``X[index] 'path': reason``.
    """

    problems = find_bad_images(paths, loader, n_threads)
    if problems:
        raise ImageFileError(format_bad_files(problems, paths, name))


def find_bad_images(paths, loader, n_threads=None):
    """Decode every image once through ``loader`` (filling its cache).

    Returns
    -------
    problems : list of (index, reason)
        The files that could not be decoded, in index order.
    """

    def check(index):
        try:
            loader(paths[index])
        except Warning:
            raise  # a warning turned into an error (a filter) is not the image's fault
        except Exception as exc:  # noqa: BLE001 - every failure is reported
            return index, describe_image_error(paths[index], exc)
        return None

    n_threads = n_threads or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=n_threads) as pool:
        return [p for p in pool.map(check, range(len(paths))) if p is not None]


def check_files_exist(paths, name="X"):
    """Cheap checks (no decoding) that each path is a non-empty regular file."""
    problems = [
        (index, problem) for index, path in enumerate(paths) if (problem := file_problem(path))
    ]
    if problems:
        raise ImageFileError(format_bad_files(problems, paths, name, action="predicting"))


def format_bad_files(problems, paths, name="X", action="training", header=None):
    """One message listing ``problems`` (index, reason) as ``X[index] 'path': reason``."""
    if header is None:
        header = (
            f"{len(problems)} of {len(paths)} image file(s) in {name} cannot be used; fix or "
            f"remove them before {action}:"
        )
    lines = [header]
    for index, reason in problems[:MAX_LISTED_BAD_FILES]:
        lines.append(f"  {name}[{index}] {paths[index]!r}: {reason}")
    if len(problems) > MAX_LISTED_BAD_FILES:
        lines.append(f"  ... and {len(problems) - MAX_LISTED_BAD_FILES} more")
    return "\n".join(lines)


def make_augmentation(image_size, augment=True):
    """The train-time augmentation applied to uint8 tensors, or None.

    ``True`` gives a random resized crop (70-100% of the area) and a
    horizontal flip; a callable is used as it is; ``False`` disables it.
    """
    if callable(augment):
        return augment
    if not augment:
        return None
    return v2.Compose(
        [
            v2.RandomResizedCrop(image_size, scale=(0.7, 1.0), antialias=True),
            v2.RandomHorizontalFlip(),
        ]
    )


class ImagePathDataset(Dataset):
    """Images of ``paths[indices]`` with their integer targets.

    Parameters
    ----------
    paths : ndarray of str
    targets : ndarray of int or None
        Encoded class index per path; ``None`` at prediction time.
    loader : ImageLoader
    indices : ndarray of int, optional
        Which rows of ``paths`` the dataset serves (all by default). The
        per-epoch resampler replaces it between epochs.
    transform : callable, optional
        Applied to each uint8 tensor (train-time augmentation).
    """

    def __init__(self, paths, targets, loader, indices=None, transform=None):
        self.paths = paths
        self.targets = targets
        self.loader = loader
        self.indices = np.arange(len(paths)) if indices is None else np.asarray(indices)
        self.transform = transform

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        index = int(self.indices[i])
        path = self.paths[index]
        try:
            image = self.loader(path)
        except Exception as exc:
            raise ImageFileError(
                f"Cannot read image [{index}] {path!r}: {describe_image_error(path, exc)}"
            ) from exc
        if self.transform is not None:
            image = self.transform(image)
        target = -1 if self.targets is None else int(self.targets[index])
        return image, torch.tensor(target, dtype=torch.long)


def load_image_folder(
    root: str | os.PathLike[str],
) -> tuple[npt.NDArray[np.object_], LabelArray]:
    """List the images of a torchvision ``ImageFolder`` directory.

    Parameters
    ----------
    root : str or os.PathLike
        A directory with one sub-directory per class.

    Returns
    -------
    paths : ndarray of shape (n_images,), dtype object
        Image file paths, in ``ImageFolder``'s order (classes sorted, then files
        sorted within each class; upper-case extensions included). Directory links
        are followed, but every real directory and file is listed once: a link back
        to a parent (a loop) and a second path to an image (a link, a hard link) are
        skipped with a warning that names them.
    labels : ndarray of shape (n_images,)
        The class (sub-directory) name of each image; ``int`` when every class
        name is an integer written canonically (folders ``0`` and ``1`` give
        labels 0 and 1, so scorers such as ``"f1"`` find their default
        ``pos_label=1``; ``01`` and ``1`` stay the strings ``"01"`` and ``"1"``).

    Examples
    --------
    >>> paths, labels = load_image_folder("data/train")  # doctest: +SKIP
    """
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes

    from .folders import scan_folder

    root = os.fspath(root)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"load_image_folder: root {root!r} is not a directory.")
    classes, _ = find_classes(root)
    samples = scan_folder(root, classes, IMG_EXTENSIONS)
    empty = sorted(set(classes) - {classes[index] for _, index in samples})
    if empty:
        raise FileNotFoundError(
            f"Found no valid file for the classes {', '.join(empty)} in {root!r} (links to "
            f"files or folders listed under another class count once). Supported "
            f"extensions are: {', '.join(IMG_EXTENSIONS)}"
        )
    paths = np.array([path for path, _ in samples], dtype=object)
    names = _integer_names(classes) or classes
    labels = np.array([names[index] for _, index in samples])
    return paths, labels


def _integer_names(classes):
    """The class names as ints when each is an integer written canonically ("7", "-2").

    Names such as "01" and "1" stay strings, so two folders never merge into one label.
    """
    try:
        numbers = [int(name) for name in classes]
    except ValueError:
        return None
    if any(str(number) != name for number, name in zip(numbers, classes, strict=True)):
        return None
    return numbers
