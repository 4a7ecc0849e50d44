"""Test-time augmentation: seeded augmented views of a prediction dataset.

View 0 is the images as they are; views 1.. apply the training augmentation
with the torch random state seeded from (seed, view, path), so an image gets
the same augmented views whatever else is predicted with it and in whatever
order, also in DataLoader worker processes.
"""

import copy
import zlib

import numpy as np
import torch
from torch.utils.data import Dataset


def view_seed(seed, view, path):
    """The seed of one image's augmentation in one view."""
    key = zlib.crc32(str(path).encode("utf-8", "surrogateescape"))
    return int(np.random.SeedSequence([int(seed), int(view), key]).generate_state(1)[0])


class AugmentedView(Dataset):
    """One augmented view of an ``ImagePathDataset``.

    Parameters
    ----------
    dataset : ImagePathDataset
    transform : callable
        The augmentation, applied to each uint8 tensor.
    seed : int
    view : int
    """

    def __init__(self, dataset, transform, seed, view):
        self.dataset = copy.copy(dataset)
        self.dataset.transform = transform
        self.seed = seed
        self.view = view

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        path = self.dataset.paths[int(self.dataset.indices[i])]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(view_seed(self.seed, self.view, path))
            return self.dataset[i]


def tta_views(dataset, transform, n_views, seed):
    """``dataset`` itself followed by ``n_views - 1`` augmented views of it."""
    return [dataset] + [AugmentedView(dataset, transform, seed, v) for v in range(1, n_views)]
