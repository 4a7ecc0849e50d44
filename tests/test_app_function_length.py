"""Every function of ``app/`` is at most 60 lines (issue 22), counted from its ``def`` line
to its last line, docstring and comments included, decorators not."""

import ast
import pathlib

import imbal_estimators.app

APP = pathlib.Path(imbal_estimators.app.__file__).parent
LIMIT = 60


def long_functions(source):
    return {
        node.name: node.end_lineno - node.lineno + 1
        for node in ast.walk(ast.parse(source))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > LIMIT
    }


def test_no_function_in_app_is_over_60_lines():
    too_long = {
        f"{path.name}:{name}": lines
        for path in sorted(APP.glob("*.py"))
        for name, lines in long_functions(path.read_text()).items()
    }
    assert too_long == {}


def test_the_count_runs_from_def_to_the_last_line():
    body = "\n".join(f"    x{i} = {i}" for i in range(LIMIT))
    assert long_functions(f"@decorated\ndef short():\n{body[: body.rindex(chr(10))]}\n") == {}
    assert long_functions(f"def long():\n{body}\n") == {"long": LIMIT + 1}
