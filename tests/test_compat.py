"""Private skorch and torch attributes are used in one module, utils/_compat.py, pinned to the
versions it was tested with."""

import ast
import importlib.metadata
import pathlib
import warnings

import pytest
import skorch
import skorch.callbacks
import torch
import torch.utils.data as tud
from skorch.history import History

import imbal_estimators.utils._compat as compat

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "imbal_estimators"
COMPAT = PACKAGE / "utils" / "_compat.py"


def _private_names():
    """Private (single underscore) attribute names of the skorch and torch objects the
    package handles: the net, its modules, optimizers, loaders and their iterators."""
    classes = [
        skorch.NeuralNet,
        skorch.NeuralNetClassifier,
        skorch.callbacks.Callback,
        History,
        torch.nn.Module,
        torch.optim.Optimizer,
        torch.Tensor,
        torch.amp.GradScaler,
        tud.DataLoader,
        tud.dataloader._BaseDataLoaderIter,
    ]
    instances = [
        skorch.NeuralNet(torch.nn.Linear(1, 1), torch.nn.MSELoss),
        torch.nn.Linear(1, 1),
        tud.DataLoader([1, 2]),
    ]
    names = {name for cls in classes for name in dir(cls)}
    names |= {name for obj in instances for name in vars(obj)}
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


PRIVATE = _private_names()


def _library_private(node):
    """The private name ``node`` reaches on a skorch or torch object, or None."""
    if isinstance(node, ast.Attribute):
        name, base = node.attr, ast.unparse(node.value)
    elif (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("getattr", "hasattr", "setattr", "delattr")
        and len(node.args) >= 2
        and isinstance(node.args[1], ast.Constant)
        and isinstance(node.args[1].value, str)
    ):
        name, base = node.args[1].value, ast.unparse(node.args[0])
    elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in (
        "torch",
        "skorch",
    ):
        parts = [*node.module.split("."), *(a.name for a in node.names)]
        private = [p for p in parts if p.startswith("_") and not p.startswith("__")]
        return private[0] if private else None
    else:
        return None
    if not name.startswith("_") or name.startswith("__"):
        return None
    library_module = base.split(".")[0] in ("torch", "skorch")
    return name if name in PRIVATE or library_module else None


def private_uses(path):
    """``"line: name"`` of each private skorch or torch name that ``path`` uses, in order."""
    nodes = [n for n in ast.walk(ast.parse(path.read_text())) if hasattr(n, "lineno")]
    nodes.sort(key=lambda n: (n.lineno, n.col_offset))
    return [f"{n.lineno}: {name}" for n in nodes if (name := _library_private(n)) is not None]


def test_the_scan_finds_private_uses(tmp_path):
    """The scan itself: each kind of use is caught, the package's own privates are not."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import torch\n"
        "from torch.utils.data.dataloader import _BaseDataLoaderIter\n"
        "net._zero_grad_optimizer()\n"
        "loader._index_sampler\n"
        "getattr(net, '_optimizers', None)\n"
        "torch._dynamo.reset()\n"
        "self._own_helper()\n"
    )
    found = [use.split(": ")[-1] for use in private_uses(sample)]
    assert found == [
        "_BaseDataLoaderIter",
        "_zero_grad_optimizer",
        "_index_sampler",
        "_optimizers",
        "_dynamo",
    ]


def test_no_private_skorch_or_torch_attribute_outside_compat():
    found = [
        f"{path.relative_to(PACKAGE)}:{use}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != COMPAT
        for use in private_uses(path)
    ]
    assert found == [], "private skorch/torch attributes outside utils/_compat.py:\n" + "\n".join(
        found
    )


def test_compat_holds_the_private_uses():
    """The wall is where the private names are (the scan would pass on an empty package)."""
    names = {use.split(": ")[-1] for use in private_uses(COMPAT)}
    assert {"_zero_grad_optimizer", "_set_training", "_index_sampler", "_version"} <= names


def test_installed_versions_are_the_tested_ones():
    """Pinned: a new torch or skorch major must be tested against _compat before it is listed."""
    for name in ("torch", "skorch"):
        major = int(importlib.metadata.version(name).split(".")[0])
        assert major in compat.TESTED[name], f"{name} {major}: check utils/_compat.py, then list it"
    assert compat.untested_versions() == []
    assert compat.private_api_ok()


def test_an_untested_major_warns_once_and_turns_the_replays_off(monkeypatch):
    monkeypatch.setitem(compat.TESTED, "torch", (1,))
    compat.private_api_ok.cache_clear()
    try:
        with pytest.warns(UserWarning, match=r"not torch 2\..*falls back to skorch's own loop"):
            assert not compat.private_api_ok()
        loader = tud.DataLoader(list(range(10)), batch_size=3, shuffle=True)
        assert not compat.replays_loader(loader)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert not compat.private_api_ok()  # cached: no second warning
    finally:
        compat.private_api_ok.cache_clear()


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("drop_last", [False, True])
def test_replayed_batches_equal_the_loader_s_own(shuffle, drop_last):
    data = [(torch.tensor([float(i)]), i % 2) for i in range(11)]
    loader = tud.DataLoader(data, batch_size=4, shuffle=shuffle, drop_last=drop_last)
    assert compat.replays_loader(loader)
    torch.manual_seed(3)
    expected = [(x.clone(), y.clone()) for x, y in loader]
    after_expected = torch.rand(2)
    torch.manual_seed(3)
    replayed = list(compat.loader_batches(loader))
    after_replayed = torch.rand(2)
    assert len(replayed) == len(expected)
    for (xa, ya), (xb, yb) in zip(replayed, expected, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert torch.equal(after_replayed, after_expected)  # the same draws from the global stream


def test_worker_loaders_are_iterated_as_they_are():
    loader = tud.DataLoader(list(range(5)), batch_size=2, num_workers=1)
    assert not compat.replays_loader(loader)


def test_skorch_steps_match_their_public_effect():
    net = skorch.NeuralNet(torch.nn.Linear(2, 1), torch.nn.MSELoss).initialize()
    compat.set_training(net, False)
    assert not net.module_.training and not net.criterion_.training
    compat.set_training(net, True)
    assert net.module_.training and net.criterion_.training
    assert compat.optimizer_names(net) == ["optimizer"]
    net.module_(torch.ones(1, 2)).sum().backward()
    compat.zero_grad(net)
    assert all(p.grad is None or not p.grad.any() for p in net.module_.parameters())


def test_tensor_version_counts_in_place_changes():
    tensor = torch.zeros(3)
    before = compat.tensor_version(tensor)
    tensor.add_(1)
    assert compat.tensor_version(tensor) == before + 1
