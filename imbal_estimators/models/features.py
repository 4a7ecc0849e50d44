"""Frozen-backbone features: computed once per image and weights, then reused.

With ``freeze_backbone=True`` only the head trains, so the body's output for an
(un-augmented) image is the same in every epoch, fold and candidate of a search.
:func:`compute_features` looks each image up in the feature cache under its
image key plus :func:`weights_fingerprint` of the body, and runs the body only
on the misses.
"""

import hashlib
import os
from contextlib import nullcontext

import numpy as np
import torch
from torch.utils.data import Dataset

from ..data.cache import get_feature_cache, image_key
from ..data.images import ImageFileError, describe_image_error
from .backbones import is_weights_file, resolve_weights


def weights_fingerprint(module):
    """A digest of every parameter and buffer of ``module`` (names, dtypes, shapes, bytes).

    Two bodies share a fingerprint only when their weights are bitwise equal,
    so features cached for other weights can never be returned.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def compute_features(model, paths, loader, cache=None, batch_size=64, device="cpu", autocast=None):
    """The ``(len(paths), D)`` float32 features of ``model``'s body, through the cache.

    Parameters
    ----------
    model : FrozenBackboneModel
    paths : sequence of str
    loader : ImageLoader
        Decodes (through the decoded-image cache) and resizes each image.
    cache : the estimator's ``cache`` parameter
        ``None`` computes every feature; otherwise features are looked up and
        stored under the image key plus the body's weights fingerprint.
    batch_size : int
    device : torch.device or str
    autocast : callable returning a context manager, optional
        The estimator's mixed-precision context.

    Returns
    -------
    features : torch.Tensor of shape (n_paths, D), float32, on the CPU
    """
    store = get_feature_cache(cache)
    keys = [None] * len(paths)
    rows = [None] * len(paths)
    if store is not None:
        fingerprint = _fingerprint_of(model)
        for i, path in enumerate(paths):
            keys[i] = (*image_key(path, loader.image_size), fingerprint)
            rows[i] = store.get(keys[i])
    missing = [i for i, row in enumerate(rows) if row is None]
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(missing), batch_size):
            chunk = missing[start : start + batch_size]
            images = torch.stack([_read(loader, paths, i) for i in chunk]).to(device)
            with torch.no_grad(), autocast() if autocast else nullcontext():
                batch = model.features(images).float().cpu()
            for i, row in zip(chunk, batch, strict=True):
                rows[i] = row.clone()  # not a view that would keep the whole batch alive
                if store is not None:
                    store.put(keys[i], rows[i])
    finally:
        model.train(was_training)
    if not rows:
        return torch.zeros(0, 0)
    return torch.stack(rows)


def weights_source(backbone, weights, module_kwargs=None):
    """A key for torchvision weights or a weights file, as they are when loaded.

    Hashing the body on every fit would cost about 0.1 s for a ResNet34; where
    the weights come straight from a file (its path, inode, size and times) or
    from a torchvision weights name, that origin identifies them as well.
    """
    if is_weights_file(weights):
        path = os.path.abspath(os.fspath(weights))
        stat = os.stat(path)
        origin = (path, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    else:
        origin = str(resolve_weights(backbone, weights))
    return repr((backbone, origin, sorted((module_kwargs or {}).items())))


def remember_weights_source(model, source):
    """Key ``model``'s features by ``source`` until any of its tensors changes."""
    object.__setattr__(model, "_fingerprint_memo", (_tensor_state(model), f"source:{source}"))


def _tensor_state(model):
    # load_state_dict copies in place, which bumps a tensor's version; moving or
    # replacing a tensor changes its address
    tensors = [*model.backbone.state_dict().values(), model.mean, model.std]
    return tuple((t.data_ptr(), t._version) for t in tensors)


def _fingerprint_of(model):
    """The features' weights key: the remembered source, or a digest of the body."""
    state = _tensor_state(model)
    memo = getattr(model, "_fingerprint_memo", None)
    if memo is None or memo[0] != state:
        fingerprint = weights_fingerprint(model.backbone)
        memo = (state, fingerprint)
        object.__setattr__(model, "_fingerprint_memo", memo)
    mean, std = model.mean.flatten().tolist(), model.std.flatten().tolist()
    return f"{memo[1]}|{mean}|{std}"


def _read(loader, paths, index):
    try:
        return loader(paths[index])
    except Exception as exc:
        raise ImageFileError(
            f"Cannot read image [{index}] {paths[index]!r}: "
            f"{describe_image_error(paths[index], exc)}"
        ) from exc


class FeatureDataset(Dataset):
    """Rows ``features[indices]`` with their integer targets.

    The feature counterpart of :class:`~imbal_estimators.data.images.ImagePathDataset`,
    with the same ``targets`` and ``indices`` attributes, so the per-epoch
    resampler works on it unchanged.
    """

    def __init__(self, features, targets, indices=None):
        self.features = features
        self.targets = targets
        self.indices = np.arange(len(features)) if indices is None else np.asarray(indices)

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        index = int(self.indices[i])
        target = -1 if self.targets is None else int(self.targets[index])
        return self.features[index], torch.tensor(target, dtype=torch.long)
