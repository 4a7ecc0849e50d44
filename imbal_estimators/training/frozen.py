"""The estimator's frozen-backbone path: the model, its features and their datasets.

With ``freeze_backbone=True`` the body's features come from the feature cache
(:func:`frozen_features`), training and validation run on
:class:`~imbal_estimators.models.features.FeatureDataset` rows
(:func:`feature_split_datasets`; a sampler of features draws first, in
:func:`feature_draw`), and :func:`frozen_model` builds the body only when a
feature is missing: a search over head-side parameters pays for reading the
weights file once, not once per fit. They read
:class:`~imbal_estimators.training.settings.FitSettings`, never the estimator.
"""

from functools import partial

import numpy as np
import torch

from ..data.images import ImageLoader
from ..imbalance.class_weights import resolve_alpha
from ..imbalance.samplers import resample_features
from ..models.backbones import FrozenBackboneModel
from ..models.features import (
    HEAD_RECIPES,
    FeatureDataset,
    LazyFrozenModel,
    body_fingerprint,
    compute_features,
    known_fingerprint,
    random_init_source,
    remember_fingerprint,
    remember_weights_source,
    weights_source,
)
from .plan import FeatureDraw
from .seeding import epoch_seed
from .threads import body_threads


def remember_body(model, backbone, weights, module_kwargs):
    """Key a frozen ``model``'s features without hashing its body, now that it is built,
    normalized and on its device.

    By the source of its weights (a ``backbone`` of the registry with ``weights``;
    None for a user's module), else by the fingerprint a random body was built
    with (its mean and std moved since).
    """
    if backbone is not None and weights is not None:
        remember_weights_source(model, weights_source(backbone, weights, module_kwargs))
    elif fingerprint := known_fingerprint(model):
        remember_fingerprint(model, fingerprint)


def frozen_model(settings, build, build_args=None):
    """The frozen model of a fit: built now, or from a head recipe with its body deferred.

    Parameters
    ----------
    settings : FitSettings
    build : callable
        Returns ``(backbone, mean, std)``.
    build_args : tuple or None
        ``(backbone_name, weights, n_classes, module_kwargs)`` for a backbone
        of the registry: weights a file, torchvision weights (a source that
        keys features without hashing the body) or None (a random
        initialization, keyed by its fingerprint, which the recipe
        remembers). None for a user's ``module``, which is always built.

    Returns
    -------
    FrozenBackboneModel
        A :class:`~imbal_estimators.models.features.LazyFrozenModel` whose
        body is not built yet when this process has built the same head
        before (same weights source or random initialization, class count
        and random state) and the ``cache`` setting is not None.
    """
    if build_args is None:
        return FrozenBackboneModel(*build())
    name, weights, n_classes, module_kwargs = build_args
    # A random body (weights=None) is drawn from the random state: its recipe's key holds
    # that state's digest, its entry the body's fingerprint (what keys its features), and a
    # deferred body is rebuilt from the same state.
    random_body = weights is None
    if settings.data.cache is None or (random_body and not _determined_by_repr(module_kwargs)):
        return FrozenBackboneModel(*build())
    if random_body:
        source = random_init_source(name, module_kwargs)
        current_source = lambda: source  # noqa: E731 - nothing outside can change it
    else:
        current_source = partial(weights_source, name, weights, module_kwargs)
        source = current_source()
    rng_state = torch.random.get_rng_state()
    key = HEAD_RECIPES.key(source, n_classes, rng_state)
    recipe = HEAD_RECIPES.get(key)
    if recipe is None:
        model = FrozenBackboneModel(*build())
        HEAD_RECIPES.put(key, model, fingerprint=body_fingerprint(model) if random_body else None)
        return model
    head, mean, std, fingerprint = recipe
    return LazyFrozenModel(
        head,
        mean,
        std,
        build,
        source,
        current_source,
        torch.channels_last if settings.runtime.channels_last else torch.preserve_format,
        rng_state=rng_state if random_body else None,
        fingerprint=fingerprint,
    )


_PLAIN_TYPES = (type(None), bool, int, float, complex, str, bytes, np.generic)


def _determined_by_repr(value):
    """Whether ``repr(value)`` pins down what a build does with it: plain values and
    containers of them. A class, function or other object (a ``module__norm_layer``, a
    ``module__inverted_residual``) can build another body under the same repr: a class
    redefined under its name, an object changed in place. Their body is built (and hashed),
    never taken from a recipe."""
    if isinstance(value, dict):
        return all(_determined_by_repr(k) and _determined_by_repr(v) for k, v in value.items())
    if isinstance(value, (tuple, list, frozenset, set)):
        return all(_determined_by_repr(item) for item in value)
    return isinstance(value, _PLAIN_TYPES)


def frozen_features(module, paths, settings, batch_size):
    """The frozen body's ``(len(paths), D)`` features, through the feature cache.

    Parameters
    ----------
    module : FrozenBackboneModel
    paths : sequence of str
    settings : FitSettings
    batch_size : int
        Images per forward pass of the body (:func:`feature_batch_size`).
    """
    runtime = settings.runtime
    with body_threads():
        return compute_features(
            module,
            paths,
            ImageLoader(settings.data.geometry, settings.data.cache),
            cache=settings.data.cache,
            batch_size=batch_size,
            device=runtime.device,
            autocast=runtime.autocast,
            channels_last=runtime.channels_last,
            precision=runtime.autocast_dtype or torch.float32,
        )


def feature_split_datasets(features, y, train_rows, valid_rows):
    """Training and validation datasets of features (validation None without a split)."""
    train = FeatureDataset(features, y, train_rows)
    valid = FeatureDataset(features, y, valid_rows)
    return train, (valid if len(valid_rows) else None)


def feature_draw(settings, features, y, classes, train_rows, sampling_seed, pos_label):
    """Class weights and loss counts from the first epoch's draw of a feature sampler, as
    the fit plan computes them for samplers of rows (only now are there features).

    Returns
    -------
    FeatureDraw
    """
    imbalance = settings.imbalance
    _, labels, _ = resample_features(
        imbalance.sampler,
        features[train_rows],
        classes[y[train_rows]],
        epoch_seed(sampling_seed, 1),
    )
    counts = np.bincount(np.searchsorted(classes, labels), minlength=len(classes))
    weights = resolve_alpha(
        imbalance.alpha, classes, counts, beta=imbalance.beta, pos_label=pos_label
    )
    return FeatureDraw(loss_class_counts_=counts, class_weight_=weights)


def predict_batch_size(valid_batch_size, batch_size):
    """The batch size of prediction: the ``iterator_valid__batch_size`` when set,
    else the fit's batch size (256 for -1)."""
    size = batch_size if valid_batch_size is None else valid_batch_size
    return max(size, 1) if size != -1 else 256


# Images per batch of the body's feature pass on the CPU, at least: a resnet34 at 224 px
# in bfloat16 channels-last forwards 64 images per batch about 15 % faster than 32 on this
# project's CPU (docs/speed.md), and gives the same features (the batch does not change a
# row's arithmetic there). A CPU has the memory; an accelerator keeps the fit's size, which
# the out-of-memory retry halves.
CPU_FEATURE_BATCH = 64


def feature_batch_size(valid_batch_size, batch_size, device):
    """The batch size of the frozen body's feature pass: :func:`predict_batch_size`, and
    on the CPU at least ``CPU_FEATURE_BATCH`` unless ``iterator_valid__batch_size`` is set."""
    size = predict_batch_size(valid_batch_size, batch_size)
    if valid_batch_size is None and torch.device(device).type == "cpu":
        size = max(size, CPU_FEATURE_BATCH)
    return size
