"""No function in the package is longer than 60 lines (issue 22).

A function's length runs from its ``def`` line to its last line, docstring and
comments included (decorators not), as ``ast`` reports them.
"""

import ast
import fnmatch
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "imbal_estimators"
MAX_LINES = 60

#: ``"<path in the package>:<qualified name>"`` patterns still over the limit while
#: other parts of issue 22 shorten them; emptied once they are merged.
ALLOWED: set[str] = set()


def long_functions(source, max_lines=MAX_LINES):
    """``[(qualified name, lines)]`` of the functions of ``source`` over ``max_lines``."""
    found = []

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            name = prefix
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = prefix + child.name
                lines = child.end_lineno - child.lineno + 1
                if not isinstance(child, ast.ClassDef) and lines > max_lines:
                    found.append((name, lines))
                name += "."
            visit(child, name)

    visit(ast.parse(source), "")
    return found


def _package_long_functions():
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        for name, lines in long_functions(path.read_text(encoding="utf-8")):
            yield f"{relative}:{name}", lines


def test_no_function_over_60_lines_outside_the_allow_list():
    over = [
        f"{where} ({lines} lines)"
        for where, lines in _package_long_functions()
        if not any(fnmatch.fnmatch(where, pattern) for pattern in ALLOWED)
    ]
    assert over == [], f"functions over {MAX_LINES} lines: split them into named steps"


@pytest.mark.parametrize("body_lines, too_long", [(59, False), (60, True)])
def test_the_count_runs_from_def_to_the_last_line(body_lines, too_long):
    source = "class A:\n    @staticmethod\n    def f():\n" + "".join(
        f"        x{i} = {i}\n" for i in range(body_lines)
    )
    found = long_functions(source)
    assert found == ([("A.f", body_lines + 1)] if too_long else [])
    nested = "def outer():\n    def inner():\n" + "".join(
        f"        y{i} = {i}\n" for i in range(body_lines)
    )
    names = [name for name, _ in long_functions(nested)]
    assert names == (["outer", "outer.inner"] if too_long else ["outer"])  # outer: 2 more
