"""Every ```python block of README.md and docs/*.md runs as written, or is listed here
with the reason it cannot run in a test.

The blocks of one file run in order as one script (a block may use what an earlier
block of the same file defined), in a fresh interpreter whose working directory holds
``data/train``: a small two-class image folder with classes ``0`` and ``1``, the
folder the docs use. The interpreter cannot open a network connection. A new block
fails this test until it runs or gets a reason below.
"""

import glob
import os
import re
import subprocess
import sys
import textwrap

import pytest
from conftest import make_folder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ["README.md", *sorted(os.path.relpath(p, ROOT) for p in glob.glob(f"{ROOT}/docs/*.md"))]

NETWORK = (
    "fine-tunes the default pretrained ResNet34: downloads its ImageNet weights (tests have "
    "no network) and takes minutes per fit on a CPU"
)
FRAGMENT = "a fragment of the surrounding text, which defines its names in words"

#: (file, first line of the block) -> why it does not run here
NOT_RUN = {
    ("README.md", "from imblearn.over_sampling import RandomOverSampler"): NETWORK,
    ("README.md", "import numpy as np"): NETWORK + "; uses the estimator of the block above",
    ("README.md", "from optuna.distributions import CategoricalDistribution, FloatDistribution"): (
        NETWORK + "; uses the estimator and data of the blocks above"
    ),
    (
        "README.md",
        'torch.save(torchvision.models.resnet34(weights="DEFAULT").state_dict(), "resnet34.pth")',
    ): "downloads the ImageNet weights: its purpose",
    (
        "docs/guide.md",
        "from imbal_estimators import ImageImbalanceClassifier, "
        "SeedEnsembleClassifier, load_image_folder",
    ): NETWORK,
    ("docs/methods.md", "from sklearn.model_selection import GridSearchCV, StratifiedKFold"): (
        NETWORK + "; X, y as in the README"
    ),
    ("docs/performance.md", "from imbal_estimators.training.heads import fit_many"): FRAGMENT
    + " (base, candidate_params, splits)",
    (
        "docs/reliability.md",
        'clf = ImageImbalanceClassifier(max_epochs=30, random_state=0, checkpoint_dir="runs/ckpt")',
    ): NETWORK + "; meant to be killed and run again",
    ("docs/reliability.md", 'clf.save("models/cats")  # a directory'): FRAGMENT + " (clf)",
    (
        "docs/reliability.md",
        'GridSearchCV(clf, grid, cv=StratifiedKFold(5), error_score="raise")',
    ): FRAGMENT + " (clf, grid)",
    (
        "docs/search.md",
        "from optuna.distributions import CategoricalDistribution, FloatDistribution",
    ): NETWORK,
    ("docs/speed.md", 'clf = ImageImbalanceClassifier(freeze_backbone=True, weights="DEFAULT")'): (
        NETWORK
    ),
    ("docs/speed.md", "from sklearn.base import clone"): FRAGMENT + " (X, y, folds, resnet34.pth)",
}

#: blocks that start worker processes or clusters: run with ``-m slow``
SLOW = {
    ("docs/cli.md", "from dask.distributed import Client, LocalCluster"),
    ("docs/cli.md", "import ray"),
}

_BLOCK = re.compile(r"^( *)```python\n(.*?)^\1```", re.S | re.M)


def python_blocks(path):
    """``(first line, code)`` of every ```python block of ``path``, dedented."""
    with open(os.path.join(ROOT, path), encoding="utf-8") as file:
        text = file.read()
    blocks = []
    for match in _BLOCK.finditer(text):
        code = textwrap.dedent(match.group(2))
        first = next(line for line in code.splitlines() if line.strip())
        blocks.append((first, code))
    return blocks


def runnable(path):
    return [(first, code) for first, code in python_blocks(path) if (path, first) not in NOT_RUN]


def test_every_block_runs_or_is_listed_with_a_reason():
    found = {(path, first) for path in DOCS for first, _ in python_blocks(path)}
    assert len(found) >= 15  # the extraction sees the docs' blocks
    stale = set(NOT_RUN) - found
    assert not stale, f"listed blocks that are gone from the docs: {sorted(stale)}"
    assert all(NOT_RUN.values())


CASES = [
    pytest.param(
        path,
        marks=[pytest.mark.slow] if any((path, f) in SLOW for f, _ in runnable(path)) else [],
        id=path,
    )
    for path in DOCS
    if runnable(path)
]

_NO_NETWORK = """
import socket

_connect = socket.socket.connect
_LOCAL = ("127.0.0.1", "localhost", "::1", "0.0.0.0")


def _local_only(self, address):
    # a dask cluster talks to its workers over loopback; anything else is the network
    if self.family == socket.AF_UNIX or (isinstance(address, tuple) and address[0] in _LOCAL):
        return _connect(self, address)
    raise OSError(f"the docs' snippets run without a network in the tests ({address})")


socket.socket.connect = _local_only
"""


@pytest.mark.parametrize("path", CASES)
def test_the_python_blocks_of_a_page_run_as_written(path, tmp_path):
    make_folder(tmp_path / "data" / "train", {"0": 12, "1": 6}, size=16)
    script = []
    for i, (first, code) in enumerate(runnable(path)):
        script += [f"print({f'@@ block {i}: {first}'!r}, flush=True)", code]
    (tmp_path / "snippets.py").write_text("\n".join(script))
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_NO_NETWORK)  # workers inherit it too
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), ROOT, env.get("PYTHONPATH", "")])
    env["TORCH_HOME"] = str(tmp_path / "torch")
    result = subprocess.run(
        [sys.executable, "snippets.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    where = [line for line in result.stdout.splitlines() if line.startswith("@@ block")]
    assert result.returncode == 0, (
        f"{path}: {where[-1] if where else 'before the first block'} failed:\n"
        + result.stderr[-3000:]
    )
    assert len(where) == len(runnable(path))
