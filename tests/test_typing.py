"""Types: the package ships py.typed, its public API is annotated, and mypy agrees.

The mypy runs take one to two minutes on a cold cache (torch's stubs), hence ``slow``.
"""

import inspect
import os
import subprocess
import sys
import textwrap

import pytest

import imbal_estimators
from imbal_estimators.app.compare import compare
from imbal_estimators.estimator.persistence import load, save

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

USER_SCRIPT = """
import numpy as np
import numpy.typing as npt

from imbal_estimators import (
    FocalLoss, ImageImbalanceClassifier, SeedEnsembleClassifier, compute_alpha, load,
    load_image_folder,
)
from imbal_estimators.app.compare import Comparison, compare


def main(root: str) -> None:
    paths, labels = load_image_folder(root)
    clf = ImageImbalanceClassifier(loss="focal", alpha="balanced", max_epochs=1)
    fitted: ImageImbalanceClassifier = clf.fit(paths, labels)
    proba: npt.NDArray[np.float64] = fitted.predict_proba(paths)
    print(proba.shape, fitted.predict(paths).shape, fitted.score(paths, labels))
    weights: npt.NDArray[np.float64] = compute_alpha(labels, "balanced")
    loss = FocalLoss(gamma=2.0, alpha=weights)
    result: Comparison = compare(paths, labels, cv=2, progress=False)
    best = result.best_estimator_
    if best is not None:
        print(best.decision_rule(), result.best.name, result.best.mean("f1"))
    model = load("model_dir")
    if isinstance(model, SeedEnsembleClassifier):
        print(len(model.members_))
    exported: str = model.export("model.onnx", format="onnx")
    print(exported, model.predict(paths), loss)
"""

# An internal, unannotated function: the check must see its Any.
CONTROL_SCRIPT = """
from imbal_estimators.data.images import check_paths

print(check_paths(["a.png"]))
"""


# skorch's hooks that the estimator overrides: called by skorch's loop, not by users
SKORCH_HOOKS = {
    "initialize",
    "initialize_callbacks",
    "initialize_criterion",
    "initialize_module",
    "rebuild_criterion",
    "on_epoch_begin",
}


def public_callables():
    """Every public function, and every public method of the public classes."""
    for name in imbal_estimators.__all__:
        obj = getattr(imbal_estimators, name)
        if inspect.isfunction(obj):
            yield name, obj
        elif inspect.isclass(obj) and obj.__module__.startswith("imbal_estimators"):
            for attr, member in vars(obj).items():
                public = attr == "__init__" or not attr.startswith("_")
                if inspect.isfunction(member) and public and attr not in SKORCH_HOOKS:
                    yield f"{name}.{attr}", member
    yield "compare", compare
    yield "save", save
    yield "load", load


def test_package_ships_py_typed():
    assert os.path.isfile(os.path.join(ROOT, "imbal_estimators", "py.typed"))
    with open(os.path.join(ROOT, "pyproject.toml")) as file:
        config = file.read()  # tomllib is Python 3.11+
    package_data = config.split("[tool.setuptools.package-data]")[1].split("\n[")[0]
    assert 'imbal_estimators = ["py.typed"]' in package_data
    assert 'files = ["imbal_estimators"]' in config.split("[tool.mypy]")[1]


@pytest.mark.parametrize("name, function", list(public_callables()))
def test_public_api_is_annotated(name, function):
    signature = inspect.signature(function)
    missing = [
        p.name
        for p in signature.parameters.values()
        if p.name not in ("self", "cls") and p.annotation is inspect.Parameter.empty
    ]
    assert not missing, f"{name}: parameters without a type: {missing}"
    assert signature.return_annotation is not inspect.Signature.empty, f"{name}: no return type"


def mypy(*args, cwd=ROOT):
    cache = os.path.join(os.environ.get("TMPDIR", "/tmp"), "imbal-estimators-mypy-cache")
    env = {**os.environ, "MYPYPATH": ROOT}  # this checkout, not another installed copy
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", cache, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.mark.slow
def test_mypy_is_clean_on_the_package():
    result = mypy()  # the configuration in pyproject.toml
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout


@pytest.mark.slow
def test_strict_user_script_sees_no_any_from_the_package(tmp_path):
    (tmp_path / "user_script.py").write_text(textwrap.dedent(USER_SCRIPT))
    (tmp_path / "control.py").write_text(textwrap.dedent(CONTROL_SCRIPT))
    # follow-imports=silent: the package's own lines are not the user's to fix, as for an
    # installed package; its types still reach the script
    flags = ["--strict", "--disallow-any-expr", "--follow-imports=silent"]
    result = mypy(*flags, "user_script.py", "control.py", cwd=tmp_path)
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert errors and all(line.startswith("control.py") for line in errors), result.stdout
    assert any('has type "Any"' in line for line in errors)
