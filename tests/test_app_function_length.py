"""Every function of ``app/`` is at most 60 lines (issue 22), its docstring aside: compare's
numpydoc docstring documents 26 arguments and stays whole on the function."""

import ast
import pathlib

import imbal_estimators.app

APP = pathlib.Path(imbal_estimators.app.__file__).parent
LIMIT = 60


def code_lines(function):
    """Lines from ``def`` to the function's end (decorators out), its docstring left out."""
    lines = function.end_lineno - function.lineno + 1
    first = function.body[0]
    if isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant):
        if isinstance(first.value.value, str):
            lines -= first.end_lineno - first.lineno + 1
    return lines


def long_functions(source):
    tree = ast.parse(source)
    return {
        node.name: code_lines(node)
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and code_lines(node) > LIMIT
    }


def test_no_function_in_app_is_over_60_lines():
    too_long = {
        f"{path.name}:{name}": lines
        for path in sorted(APP.glob("*.py"))
        for name, lines in long_functions(path.read_text()).items()
    }
    assert too_long == {}


def test_the_count_leaves_out_only_the_docstring():
    body = "\n".join(f"    x{i} = {i}" for i in range(LIMIT))
    docstring = '    """One line.\n\n    More.\n    """\n'
    assert long_functions(f"def short():\n{docstring}{body[: body.rindex(chr(10))]}\n") == {}
    assert long_functions(f"def long():\n{docstring}{body}\n") == {"long": LIMIT + 1}
