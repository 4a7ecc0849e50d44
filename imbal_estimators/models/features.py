"""Frozen-backbone features: computed once per image and weights, then reused.

With ``freeze_backbone=True`` only the head trains, so the body's output for an
(un-augmented) image is the same in every epoch, fold and candidate of a search.
:func:`compute_features` looks each image up in the feature cache under its
image key plus :func:`weights_fingerprint` of the body, and runs the body only
on the misses.

A search fits many heads on the same body. :class:`LazyFrozenModel` is a
frozen model whose body is built only when a feature is missing (or its weights
are read, saved or pickled), and :class:`HeadRecipes` remembers, per weights
source, class count and random state, the head a fresh build starts from, so a
fit whose features are all cached never reads the weights file. A randomly
initialized body (``weights=None``) is a function of the random state too: its
recipe also keeps the body's fingerprint, so a search with a fixed
``random_state`` builds and hashes that body once, not once per fit.
"""

import copy
import hashlib
import os
import threading
from collections import OrderedDict
from contextlib import nullcontext

import numpy as np
import torch
import torchvision
from torch.utils.data import Dataset

from ..data.cache import get_feature_cache, image_key
from ..data.images import ImageFileError, describe_image_error
from ..utils._compat import tensor_version
from .backbones import FrozenBackboneModel, is_weights_file, pretrained_origin


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


def compute_features(
    model,
    paths,
    loader,
    cache=None,
    batch_size=64,
    device="cpu",
    autocast=None,
    channels_last=False,
    precision=torch.float32,
):
    """The ``(len(paths), D)`` float32 features of ``model``'s body, through the cache.

    Parameters
    ----------
    model : FrozenBackboneModel
    paths : sequence of str
    loader : ImageLoader
        Decodes (through the decoded-image cache) and resizes each image.
    cache : the estimator's ``cache`` parameter
        ``None`` computes every feature; otherwise features are looked up and
        stored under the image key, the body's weights fingerprint and ``precision``.
    batch_size : int
    device : torch.device or str
    autocast : callable returning a context manager, optional
        The estimator's mixed-precision context.
    channels_last : bool, default=False
        Feed the body channels-last batches (see
        :func:`imbal_estimators.training.precision.uses_channels_last`).
    precision : torch.dtype, default=torch.float32
        The dtype ``autocast`` runs the body in: part of the features' key, so
        that a bfloat16 pass's features are never served to a float32 fit.

    Returns
    -------
    features : torch.Tensor of shape (n_paths, D), float32, on the CPU
    """
    store = get_feature_cache(cache)
    keys, rows = _cached_rows(store, model, paths, loader, precision)
    missing = [i for i, row in enumerate(rows) if row is None]
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(missing), batch_size):
            chunk = missing[start : start + batch_size]
            images = torch.stack([_read(loader, paths, i) for i in chunk]).to(device)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
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


def _cached_rows(store, model, paths, loader, precision):
    """The cache keys of ``paths`` and the features the cache holds (None where it has none)."""
    keys = [None] * len(paths)
    rows = [None] * len(paths)
    if store is not None:
        fingerprint = f"{_fingerprint_of(model)}|{precision}"
        for i, path in enumerate(paths):
            keys[i] = (*image_key(path, loader.key), fingerprint)
            rows[i] = store.get(keys[i])
    return keys, rows


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
        origin = pretrained_origin(backbone, weights)
    return repr((backbone, origin, sorted((module_kwargs or {}).items())))


def random_init_source(backbone, module_kwargs=None):
    """A key for a randomly initialized ``backbone`` (``weights=None``), short of its random state.

    Not a features key: a random body is only determined by it together with the
    random state of its build (:meth:`HeadRecipes.key`) in this process, so its
    features stay keyed by :func:`weights_fingerprint`.
    """
    versions = (torch.__version__, torchvision.__version__)
    return repr(
        (backbone, "random initialization", versions, sorted((module_kwargs or {}).items()))
    )


def remember_weights_source(model, source):
    """Key ``model``'s features by ``source`` until any of its tensors changes."""
    remember_fingerprint(model, f"source:{source}")


def remember_fingerprint(model, fingerprint):
    """Key ``model``'s features by the known :func:`weights_fingerprint` of its body, until
    any of its tensors changes (a body not built yet is not hashed again)."""
    object.__setattr__(model, "_fingerprint_memo", (_tensor_state(model), fingerprint))


def body_fingerprint(model):
    """:func:`weights_fingerprint` of a randomly initialized ``model``'s body, kept on the
    model (:func:`known_fingerprint`) so that moving it does not hash it again."""
    if model.__dict__.get("_fingerprint") is None:
        object.__setattr__(model, "_fingerprint", weights_fingerprint(model.backbone))
    return model._fingerprint


def known_fingerprint(model):
    """The body fingerprint a randomly initialized frozen model was made with, or None."""
    return model.__dict__.get("_fingerprint")


def _tensor_state(model):
    # load_state_dict copies in place, which bumps a tensor's version; moving or
    # replacing a tensor changes its address. A body not built yet has no tensors
    # to change (and asking for them would build it).
    body = model.backbone.state_dict().values() if getattr(model, "body_built", True) else ()
    tensors = [*body, model.mean, model.std]
    return tuple((t.data_ptr(), tensor_version(t)) for t in tensors)


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
    resampler works on it unchanged. ``source`` is None, or the ``(features,
    targets)`` a sampler of features draws from (it replaces both every epoch).
    """

    def __init__(self, features, targets, indices=None):
        self.features = features
        self.targets = targets
        self.indices = np.arange(len(features)) if indices is None else np.asarray(indices)
        self.source = None

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        index = int(self.indices[i])
        target = -1 if self.targets is None else int(self.targets[index])
        return self.features[index], torch.tensor(target, dtype=torch.long)

    def __getitems__(self, positions):
        """A whole batch at once, as ``(features, targets)``: what ``collate_batch`` passes
        through (the values a per-row collation stacks, without the per-row work)."""
        rows = self.indices[np.asarray(positions, dtype=np.int64)]
        if self.targets is None:
            targets = torch.full((len(rows),), -1, dtype=torch.long)
        else:
            targets = torch.as_tensor(np.asarray(self.targets)[rows], dtype=torch.long)
        return self.features[torch.as_tensor(rows)], targets


def collate_batch(batch):
    """The ``collate_fn`` of a :class:`FeatureDataset` loader: its batches come whole."""
    return batch


class LazyFrozenModel(FrozenBackboneModel):
    """A :class:`FrozenBackboneModel` whose body is built on first need.

    A head trained on cached features never runs the body, so a fit whose
    features are all in the cache does not need to read the weights file. The
    body is built, once, when something needs it: a feature that is not
    cached, ``backbone``, ``state_dict``/``load_state_dict``, pickling or
    saving. Until then ``parameters()`` holds only the head, which is all the
    optimizer ever gets.

    Parameters
    ----------
    head : nn.Linear
        The trainable head.
    mean, std : sequence of 3 floats
        The normalization of the weights.
    build : callable
        Returns ``(backbone, mean, std)`` like
        :func:`~imbal_estimators.models.backbones.build_backbone`; the body is
        that backbone without its head. Called with the caller's random state
        preserved (the throw-away head it builds draws from it).
    source : str
        The weights' :func:`weights_source`, which keys the cached features.
    current_source : callable
        Returns the weights' source as they are now. When the body is built
        and this differs from ``source`` (the weights file was replaced after
        the fit), the build is refused: the head was trained on the old
        weights' features.
    memory_format : torch.memory_format, default=torch.preserve_format
        The body's memory format once built.
    rng_state : torch.ByteTensor, optional
        For a randomly initialized body: the random state its build started from
        in the fit that made this model, restored for the build, so the body is
        the one that fit would have built.
    fingerprint : str, optional
        For a randomly initialized body: its :func:`weights_fingerprint`, which
        keys its features; a build that gives another body is refused.
    """

    def __init__(
        self,
        head,
        mean,
        std,
        build,
        source,
        current_source,
        memory_format=torch.preserve_format,
        rng_state=None,
        fingerprint=None,
    ):
        torch.nn.Module.__init__(self)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        self.head = head
        self._build = build
        self._source = source
        self._current_source = current_source
        self._memory_format = memory_format
        self._rng_state = rng_state
        self._fingerprint = fingerprint
        if fingerprint is not None:
            remember_fingerprint(self, fingerprint)

    @property
    def body_built(self):
        """Whether the frozen body exists yet."""
        return "backbone" in dict(self.named_children())

    def __getattr__(self, name):
        if name == "backbone" and self.__dict__.get("_build") is not None:
            return self.build_body().backbone
        return super().__getattr__(name)

    def build_body(self):
        """Build the frozen body now (a no-op once built); returns ``self``."""
        if self.body_built:
            return self
        if self._current_source() != self._source:
            raise RuntimeError(
                "The backbone's weights changed after this estimator was fitted on their "
                f"features ({self._source}); its frozen body cannot be rebuilt from them. "
                "Fit again with the current weights."
            )
        with torch.random.fork_rng(devices=[]):
            if self._rng_state is not None:
                torch.random.set_rng_state(self._rng_state)
            backbone, mean, std = self._build()
        body = FrozenBackboneModel(backbone, mean, std).backbone
        if self._fingerprint is not None and weights_fingerprint(body) != self._fingerprint:
            raise RuntimeError(
                f"Rebuilding the randomly initialized {type(backbone).__name__} from its "
                "random state gave other weights than the fit's; fit again."
            )
        body = body.to(device=self.mean.device, memory_format=self._memory_format)
        head = self.head
        del self.head
        self.backbone = body  # registered before the head, as in FrozenBackboneModel
        self.head = head
        self._build = self._current_source = self._rng_state = None
        if self._fingerprint is not None:
            remember_fingerprint(self, self._fingerprint)
        else:
            remember_weights_source(self, self._source)
        return self

    def frozen_state_keys(self):
        if not self.body_built:
            return {"mean", "std"}
        return super().frozen_state_keys()

    def trainable_state_dict(self):
        """The head's ``state_dict`` entries (references, not copies); builds nothing."""
        return {f"head.{key}": value for key, value in self.head.state_dict().items()}

    def state_dict(self, *args, **kwargs):
        self.build_body()
        return super().state_dict(*args, **kwargs)

    def load_state_dict(self, *args, **kwargs):
        self.build_body()
        return super().load_state_dict(*args, **kwargs)

    def __getstate__(self):
        self.build_body()
        return super().__getstate__()


class HeadRecipes:
    """The head a fresh frozen model starts from, per weights source, class count and RNG state.

    Building a frozen model draws its new head from torch's global random
    state; the recipe keeps a copy of that head, the normalization and the
    random state the build leaves behind, under a key of the weights source,
    the class count and a digest of the random state before the build. A
    model made from a recipe (:class:`LazyFrozenModel`) is therefore the one
    a build would give, down to the random state that follows.

    Parameters
    ----------
    max_entries : int, default=256
        Least recently used recipes are dropped past this many (each holds
        one small head).
    """

    def __init__(self, max_entries=256):
        self.max_entries = max_entries
        self._entries = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(source, n_classes, rng_state=None):
        """The key of a build from ``source`` for ``n_classes`` in ``rng_state`` (by default
        the current random state)."""
        if rng_state is None:
            rng_state = torch.random.get_rng_state()
        digest = hashlib.sha256(rng_state.numpy().tobytes()).hexdigest()
        return (source, int(n_classes), digest)

    def get(self, key):
        """A fresh copy of ``(head, mean, std, fingerprint)`` for ``key`` (and the random
        state set as a build would leave it), or None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
        head, mean, std, state_after, fingerprint = entry
        torch.random.set_rng_state(state_after)
        return copy.deepcopy(head), mean, std, fingerprint

    def put(self, key, model, fingerprint=None):
        """Remember the freshly built ``model``'s head (call before it trains), and for a
        randomly initialized body its ``fingerprint``."""
        mean = tuple(model.mean.flatten().tolist())
        std = tuple(model.std.flatten().tolist())
        state_after = torch.random.get_rng_state()
        entry = (copy.deepcopy(model.head).cpu(), mean, std, state_after, fingerprint)
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self):
        with self._lock:
            self._entries.clear()

    def __len__(self):
        return len(self._entries)


HEAD_RECIPES = HeadRecipes()


def clear_head_recipes():
    """Forget every head recipe of this process (the next frozen fit builds its body)."""
    HEAD_RECIPES.clear()
