"""The estimator's frozen-backbone path: the model, its features and their datasets.

With ``freeze_backbone=True`` the body's features come from the feature cache
(:func:`frozen_features`), training and validation run on
:class:`~imbal_estimators.models.features.FeatureDataset` rows
(:func:`frozen_split_datasets`), and :func:`frozen_model` builds the body only
when a feature is missing: a search over head-side parameters pays for reading
the weights file once, not once per fit.
"""

from functools import partial

import numpy as np
import torch

from ..data.images import ImageLoader
from ..imbalance.class_weights import resolve_alpha
from ..imbalance.samplers import needs_features, resample_features
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
from ..models.preprocessing import estimator_geometry
from .precision import uses_channels_last
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


def frozen_model(net, build, build_args=None):
    """The frozen model of ``net``: built now, or from a head recipe with its body deferred.

    Parameters
    ----------
    net : ImageImbalanceClassifier
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
        and random state) and ``net.cache`` is not None.
    """
    if build_args is None:
        return FrozenBackboneModel(*build())
    name, weights, n_classes, module_kwargs = build_args
    # A random body (weights=None) is drawn from the random state: its recipe's key holds
    # that state's digest, its entry the body's fingerprint (what keys its features), and a
    # deferred body is rebuilt from the same state.
    random_body = weights is None
    if net.cache is None or (random_body and not _determined_by_repr(module_kwargs)):
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
        _body_memory_format(net),
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


def _body_memory_format(net):
    if uses_channels_last(net.device, net._autocast_dtype()):
        return torch.channels_last
    return torch.preserve_format


def frozen_features(net, paths):
    """The frozen body's ``(len(paths), D)`` features, through the feature cache."""
    with body_threads():
        return compute_features(
            net.module_,
            paths,
            ImageLoader(estimator_geometry(net), net.cache),
            cache=net.cache,
            batch_size=predict_batch_size(net),
            device=net.device,
            autocast=net._autocast,
            channels_last=net._channels_last(),
            precision=net._autocast_dtype() or torch.float32,
        )


def frozen_split_datasets(net, X, y):
    """Training and validation datasets of features (validation None without a split)."""
    features = frozen_features(net, X)
    if needs_features(net.sampler):
        weights_from_feature_draw(net, features, y)
    train = FeatureDataset(features, y, net.train_indices_)
    valid = FeatureDataset(features, y, net.valid_indices_)
    return train, (valid if len(net.valid_indices_) else None)


def weights_from_feature_draw(net, features, y):
    """Class weights and loss counts from the first epoch's draw of a feature sampler, as
    the estimator computes them for samplers of rows (only now are there features)."""
    rows = net.train_indices_
    _, labels, _ = resample_features(
        net.sampler, features[rows], net.classes_[y[rows]], epoch_seed(net.sampling_seed_, 1)
    )
    counts = np.bincount(np.searchsorted(net.classes_, labels), minlength=net.n_classes_)
    net.loss_class_counts_ = counts
    net.class_weight_ = resolve_alpha(
        net.alpha, net.classes_, counts, beta=net.beta, pos_label=net.pos_label_
    )
    net.rebuild_criterion()


def predict_batch_size(net):
    """The batch size of prediction, which the feature pass also uses."""
    default = net.__dict__.get("batch_size_", net.batch_size)  # what get_iterator uses
    size = net.get_params_for("iterator_valid").get("batch_size", default)
    return max(size, 1) if size != -1 else 256
