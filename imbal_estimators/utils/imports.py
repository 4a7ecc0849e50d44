"""Import a library without the test framework that its helpers would pull in.

imbalanced-learn imports ``sklearn_compat``, which imports scikit-learn's estimator checks;
those import ``pytest`` (and ``numpydoc``) when installed, only to define test markers. A
program that uses the package should not load a test framework (seconds of start-up, and
pytest's import hooks in a production process). :func:`no_test_framework` makes
``import pytest`` fail inside the block, which scikit-learn handles (its markers are then
not defined); a process that imported pytest before (a test run) is left as it is.
"""

import contextlib
import sys

#: modules that a ``with no_test_framework():`` block keeps out
TEST_FRAMEWORKS = ("pytest", "_pytest", "numpydoc")


@contextlib.contextmanager
def no_test_framework():
    """Inside the block, ``import pytest`` raises ImportError unless pytest is loaded."""
    blocked = [name for name in TEST_FRAMEWORKS if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # "import pytest" now raises ModuleNotFoundError
    try:
        yield
    finally:
        for name in blocked:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
