"""The package is laid out by stage, and imports point down only.

Layers, top to bottom: app -> search -> estimator -> training -> {decision, losses,
imbalance, models} -> data -> io -> utils. The four in braces stand side by side: none
imports another. The training core (everything below search) never imports Optuna.
"""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "imbal_estimators"
RANK = {
    "app": 6,
    "search": 5,
    "estimator": 4,
    "training": 3,
    "decision": 2,
    "losses": 2,
    "imbalance": 2,
    "models": 2,
    "data": 1,
    "io": 0,
    # below every stage (io too): vendored parameter validation, the warning stack level
    # and the class-count formulas that losses, imbalance and decision share
    "utils": -1,
}


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if len(rel.parts) == 1:  # __init__.py, __main__.py: the public surface
            continue
        yield rel.parts[0], path


def _imported_subpackages(path, layer):
    """Subpackages of imbal_estimators that ``path`` imports (relative or absolute)."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0 and (node.module or "").startswith("imbal_estimators."):
                yield node.module.split(".")[1], node.lineno
            elif node.level == 1:
                yield layer, node.lineno
            elif node.level == 2:
                target = (node.module or "").split(".")[0]
                if target:
                    yield target, node.lineno
                else:  # from .. import x
                    for alias in node.names:
                        yield alias.name, node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("imbal_estimators."):
                    yield alias.name.split(".")[1], node.lineno


def test_every_module_lives_in_a_known_stage():
    stages = {layer for layer, _ in _modules()}
    assert stages == set(RANK)


@pytest.mark.parametrize("layer,path", list(_modules()), ids=lambda v: str(v))
def test_imports_point_down_only(layer, path):
    for target, line in _imported_subpackages(path, layer):
        assert target in RANK, f"{path.name}:{line} imports unknown subpackage {target!r}"
        if target == layer:
            continue
        assert RANK[target] < RANK[layer], (
            f"{path.relative_to(PACKAGE)}:{line} imports {target}/, which is not below {layer}/"
        )


@pytest.mark.parametrize(
    "layer,path",
    [(layer, p) for layer, p in _modules() if RANK[layer] < RANK["search"]],
    ids=lambda v: str(v),
)
def test_training_core_does_not_import_optuna(layer, path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        assert not any(n.split(".")[0] == "optuna" for n in names), (
            f"{path.relative_to(PACKAGE)}:{node.lineno} imports optuna"
        )
