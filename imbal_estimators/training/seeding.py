"""Where every random draw of a fit gets its seed.

``random_state`` gives three seeds (torch, the internal split, the sampler);
each epoch derives its own stream from them, so a fit resumed from a checkpoint
replays the epochs it missed exactly, and the caller's global torch RNG is
left as it was.
"""

from contextlib import contextmanager

import numpy as np
import torch
from sklearn.utils import check_random_state
from skorch.callbacks import Callback

_SEED_RANGE = 2**31 - 1


def draw_seeds(random_state):
    """The torch, split and sampling seeds of a fit: three ints from ``random_state``."""
    torch_seed, split_seed, sampling_seed = check_random_state(random_state).randint(
        _SEED_RANGE, size=3
    )
    return int(torch_seed), int(split_seed), int(sampling_seed)


def epoch_seed(base_seed, epoch):
    """The seed of the draw of ``epoch``: independent streams for each epoch."""
    return int(np.random.SeedSequence([base_seed, epoch]).generate_state(1)[0] >> 1)


def seed_torch(seed, device="cpu"):
    """``torch.manual_seed(seed)`` for a fit on ``device``, without its cost on the CPU.

    ``torch.manual_seed`` also queues a seed for every accelerator that is not
    initialized yet, formatting a Python traceback for each call (1.2 ms, three
    times per fit of a frozen head). A CPU fit draws from the CPU generator only,
    so while CUDA is not initialized only that generator is seeded: the CPU draws
    are the same, and no seed is left queued for a later CUDA start.

    Parameters
    ----------
    seed : int
    device : str or torch.device, default="cpu"
    """
    if torch.device(device).type == "cpu" and not torch.cuda.is_initialized():
        torch.default_generator.manual_seed(int(seed))
    else:
        torch.manual_seed(seed)


@contextmanager
def seeded(seed, device="cpu"):
    """Seed torch with ``seed`` inside the block; restore the caller's RNG state after it.

    Parameters
    ----------
    seed : int
    device : str or torch.device, default="cpu"
        On a CUDA device, that device's generator is saved and restored too.
    """
    device = torch.device(device)
    devices = []
    if device.type == "cuda":
        devices = [torch.cuda.current_device() if device.index is None else device.index]
    with torch.random.fork_rng(devices=devices):
        seed_torch(seed, device)
        yield


class EpochSeed(Callback):
    """Seed torch before each epoch from the fit's ``torch_seed_`` and the epoch.

    Shuffling, augmentation and dropout draw from a stream of their own per
    epoch, so a fit resumed from a checkpoint replays the epochs it missed
    exactly. The first of the estimator's callbacks, so every other one and the
    epoch's batches draw after it.
    """

    def on_epoch_begin(self, net, **kwargs):
        seed_torch(epoch_seed(net.torch_seed_, len(net.history)), net.device)
