"""Every use of a private skorch or torch attribute in the package, behind one wall.

The frozen-head fast paths (:mod:`imbal_estimators.training.heads`,
:mod:`~imbal_estimators.training.head_solver`) replay skorch's optimizer step
and torch's ``DataLoader`` iteration so that their batches equal the slow
path's bit for bit; the feature cache keys tensors by their version counter;
older torch releases tell a CPU's bfloat16 support only privately. Those
private names live here and nowhere else (``tests/test_compat.py`` walks the
package for them), after imbalanced-learn's ``sklearn_compat``.

Each function is pinned to the majors it was tested with (:data:`TESTED`). On
another major, :func:`private_api_ok` is False: the replays step aside for
the public paths (skorch's own loop, iterating the ``DataLoader``), which give
the same results more slowly, and one warning says so.
"""

import functools
import importlib.metadata

import torch

from .warn import warn

# The major versions whose private attributes the functions below were written against.
TESTED = {"torch": (2,), "skorch": (1,)}


def _major(version):
    head = version.split("+")[0].split(".")[0]
    return int(head) if head.isdigit() else -1


def untested_versions():
    """``"name version"`` of each installed library whose major is not in :data:`TESTED`."""
    found = []
    for name, majors in TESTED.items():
        version = importlib.metadata.version(name)
        if _major(version) not in majors:
            found.append(f"{name} {version}")
    return found


@functools.cache
def private_api_ok():
    """Whether the installed torch and skorch are majors the private replays were tested with.

    Warns once when not: the fast paths then fall back to the public ones.
    """
    untested = untested_versions()
    if untested:
        warn(
            f"imbal_estimators was tested with torch 2 and skorch 1, not {', '.join(untested)}; "
            "the frozen-head fast path falls back to skorch's own loop (same results, slower)."
        )
    return not untested


# -- skorch's NeuralNet ------------------------------------------------------------------


# The skorch steps the direct head loop stands in for; a subclass that overrides one of
# them (outside this package and skorch) trains through skorch's own loop instead.
REPLAYED_SKORCH_STEPS = (
    "run_single_epoch",
    "train_step",
    "train_step_single",
    "validation_step",
    "get_train_step_accumulator",
    "_zero_grad_optimizer",
    "_step_optimizer",
    "_set_training",
    "infer",
    "get_loss",
    "notify",
    "on_batch_begin",
    "on_batch_end",
    "on_grad_computed",
)


def optimizer_names(net):
    """The names of ``net``'s optimizers (skorch's ``_optimizers``; by default one)."""
    return list(getattr(net, "_optimizers", ["optimizer"]))


def zero_grad(net):
    """skorch's ``_zero_grad_optimizer``: zero the gradients of every optimizer of ``net``."""
    if private_api_ok() and hasattr(net, "_zero_grad_optimizer"):
        net._zero_grad_optimizer()
        return
    for name in optimizer_names(net):
        getattr(net, name + "_").zero_grad()


def set_training(net, training=True):
    """skorch's ``_set_training``: train or eval mode on every module and criterion of ``net``.

    Elsewhere the module and the criterion only (what this package's nets register).
    """
    if private_api_ok() and hasattr(net, "_set_training"):
        net._set_training(training)
        return
    for component in (net.module_, net.criterion_):
        if isinstance(component, torch.nn.Module):
            component.train(training)


# -- torch ------------------------------------------------------------------------------


def replays_loader(loader):
    """Whether :func:`loader_batches` replays ``loader`` step by step (else iterates it).

    A main-process ``DataLoader`` over a map-style dataset with automatic batching.
    """
    return (
        private_api_ok()
        and type(loader) is torch.utils.data.DataLoader
        and loader.num_workers == 0
        and not loader.pin_memory
        and loader._auto_collation
        and not isinstance(loader.dataset, torch.utils.data.IterableDataset)
    )


def loader_batches(loader):
    """The batches of one pass over ``loader``, as its iterator yields them.

    A loader that :func:`replays_loader` is iterated here in its own steps (the
    sampler's batches of indices, the base seed its iterator draws first,
    ``__getitems__`` or one item per index, ``collate_fn``), so the same random
    draws give the same batches; anything else is iterated as it is. Building the
    iterator cost more than a frozen head's batch.
    """
    if not replays_loader(loader):
        yield from loader
        return
    dataset, collate = loader.dataset, loader.collate_fn
    indices = iter(loader._index_sampler)
    # what _BaseDataLoaderIter.__init__ draws, after iter(sampler) and before the first batch
    torch.empty((), dtype=torch.int64).random_(generator=loader.generator)
    getitems = getattr(dataset, "__getitems__", None)
    for batch_indices in indices:
        if getitems:
            yield collate(getitems(batch_indices))
        else:
            yield collate([dataset[i] for i in batch_indices])


def tensor_version(tensor):
    """The version counter of ``tensor`` (bumped by every in-place change)."""
    return tensor._version


def cpu_private_bf16_queries():
    """Older torch's private answers to "native bfloat16 on this CPU?" (AMX, AVX512-BF16).

    For torch releases without ``torch.cpu.get_capabilities``; False where neither exists.
    """
    queries = (
        getattr(torch.cpu, "_is_amx_tile_supported", None),
        getattr(torch.cpu, "_is_avx512_bf16_supported", None),
    )
    return any(bool(query()) for query in queries if query is not None)
