"""The estimator's datasets and data loaders, for training and for prediction.

Paths become :class:`~imbal_estimators.data.images.ImagePathDataset` rows, or with
a frozen backbone :class:`~imbal_estimators.models.features.FeatureDataset` rows of
the body's cached features (:func:`dataset_of`, :func:`split_data`).
:func:`data_loader` is the one place that batches them: the loader defaults of the
device, the batch size ``auto_batch_size`` found, the ``iterator_*`` parameters.
:func:`logit_batches` is skorch's ``forward_iter`` over such a loader.
"""

from functools import partial

import torch

from ..data.images import ImageLoader, ImagePathDataset, make_augmentation
from ..imbalance.samplers import needs_features
from ..models.features import FeatureDataset, collate_batch
from ..training.frozen import (
    feature_batch_size,
    feature_draw,
    feature_split_datasets,
    frozen_features,
)
from ..training.precision import loader_defaults
from ..training.split import SplitData
from .fitted import assign_fitted
from .geometry import estimator_geometry
from .settings import fit_settings


def dataset_of(estimator, X):
    """The dataset a fitted ``estimator`` predicts on: ``X`` itself when it is a ``Dataset``,
    else the rows of paths ``X`` (the frozen body's features with ``freeze_backbone``)."""
    if isinstance(X, torch.utils.data.Dataset):
        return X
    if estimator.freeze_backbone:
        return FeatureDataset(frozen_features_of(estimator, X), None)
    return ImagePathDataset(X, None, ImageLoader(estimator_geometry(estimator), estimator.cache))


def split_data(estimator, X, y):
    """The training and validation datasets of a fit on paths ``X`` and encoded ``y``
    (the rows of its plan), with :func:`data_loader` to batch them."""
    if estimator.freeze_backbone:
        train, valid = frozen_split(estimator, X, y)
    else:
        geometry = estimator_geometry(estimator)
        loader = ImageLoader(geometry, estimator.cache)
        augmentation = make_augmentation(geometry.crop, estimator.augment)
        train = ImagePathDataset(X, y, loader, estimator.train_indices_, augmentation)
        valid = ImagePathDataset(X, y, loader, estimator.valid_indices_)
        valid = valid if len(estimator.valid_indices_) else None
    return SplitData(train, valid, partial(data_loader, estimator))


def data_loader(estimator, dataset, training=False):
    """The loader over ``dataset`` (skorch's ``iterator_train`` or ``iterator_valid``).

    Device defaults (:func:`~imbal_estimators.training.precision.loader_defaults`)
    under the ``iterator_*`` parameters; the batch size ``batch_size_`` (the one
    ``auto_batch_size`` found to fit) unless ``iterator_*__batch_size`` is set,
    ``-1`` the whole dataset; training batches shuffled, and without a last batch
    of one image, which breaks BatchNorm on small feature maps.
    """
    holds_images = isinstance(dataset, ImagePathDataset)
    defaults = loader_defaults(estimator.device, holds_images=holds_images)
    if isinstance(dataset, FeatureDataset):
        defaults["collate_fn"] = collate_batch  # its __getitems__ gives whole batches
    prefix = "iterator_train" if training else "iterator_valid"
    kwargs = {**defaults, **estimator.get_params_for(prefix)}
    batch_size = kwargs.setdefault("batch_size", estimator.batch_size_)
    if batch_size == -1:
        kwargs["batch_size"] = batch_size = len(dataset)
    if not training:
        return estimator.iterator_valid(dataset, **kwargs)
    kwargs.setdefault("shuffle", True)
    if len(dataset) > batch_size and len(dataset) % batch_size == 1:
        kwargs.setdefault("drop_last", True)
    return estimator.iterator_train(dataset, **kwargs)


def on_device(batches, device):
    """The ``(X, y)`` batches of a loader with ``X`` copied to a CUDA ``device`` as they come,
    asynchronously from pinned memory; elsewhere the loader itself (skorch's ``infer``
    moves them)."""
    if batches is None or torch.device(device).type != "cuda":
        return batches
    return (_input_to(batch, device) for batch in batches)


def _input_to(batch, device):
    Xi, *rest = batch
    if isinstance(Xi, torch.Tensor):
        Xi = Xi.to(device, non_blocking=True)
    return (Xi, *rest)


def logit_batches(estimator, dataset):
    """skorch's ``forward_iter`` over :func:`data_loader`: each batch's output in evaluation
    mode, on the CPU."""
    batches = on_device(data_loader(estimator, dataset), estimator.device)
    for batch in batches:
        output = estimator.evaluation_step(batch)
        if isinstance(output, tuple):
            yield tuple(part.cpu() for part in output)
        else:
            yield output.cpu()


def frozen_features_of(estimator, paths):
    """The frozen body's features of ``paths`` (through the feature cache), in batches of
    :func:`~imbal_estimators.training.frozen.feature_batch_size`."""
    batch_size = estimator.get_params_for("iterator_valid").get("batch_size")
    batch_size = feature_batch_size(batch_size, estimator.batch_size_, estimator.device)
    return frozen_features(estimator.module_, paths, fit_settings(estimator), batch_size)


def frozen_split(estimator, X, y):
    """The split of a frozen backbone: datasets of features. A sampler of features draws
    first now (only now are there features), and the loss follows the class weights of
    that draw."""
    features = frozen_features_of(estimator, X)
    if needs_features(estimator.sampler):
        draw = feature_draw(
            fit_settings(estimator),
            features,
            y,
            estimator.classes_,
            estimator.train_indices_,
            estimator.sampling_seed_,
            estimator.pos_label_,
        )
        assign_fitted(estimator, draw)
        estimator.rebuild_criterion()
    return feature_split_datasets(features, y, estimator.train_indices_, estimator.valid_indices_)
