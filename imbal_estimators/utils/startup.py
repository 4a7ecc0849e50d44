"""What the package does first when imported: the start-up guard and a clean import.

Ctrl-C while the command line starts: one line and exit status 130, not a traceback.

The ``imbal-estimators`` command spends seconds importing torch, torchvision and
scikit-learn before its ``main`` runs; a ``KeyboardInterrupt`` raised in there ends in a
traceback from inside whichever library was loading. When the package is imported *as the
command* (the ``imbal-estimators`` script, or ``python -m imbal_estimators``), its first
statement installs a SIGINT handler that prints ``imbal-estimators: interrupted`` and
leaves at once with status 130 (nothing has been written yet); ``main`` gives Ctrl-C back
to Python (``KeyboardInterrupt``) before it does any work. Imported as a library, the
package leaves the SIGINT handler alone.

imbalanced-learn is imported here, inside :func:`~imbal_estimators.utils.imports.no_test_framework`:
through ``sklearn_compat`` it would load pytest (see :mod:`imbal_estimators.utils.imports`).
"""

import os
import signal
import sys

from .imports import no_test_framework

PROG = "imbal-estimators"


def started_as_command():
    """Whether this process runs the command line (the script or ``python -m``)."""
    if os.path.basename(sys.argv[0] if sys.argv else "") in (PROG, f"{PROG}.exe"):
        return True
    argv = getattr(sys, "orig_argv", [])
    return any(
        flag == "-m" and module == "imbal_estimators"
        for flag, module in zip(argv, argv[1:], strict=False)
    )


def _leave(signum, frame):
    os.write(2, f"{PROG}: interrupted\n".encode())
    os._exit(130)


def guard_start():
    """Install the start-up handler when the process runs the command line."""
    if started_as_command() and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _leave)


def end_of_start():
    """Give Ctrl-C back to Python (``KeyboardInterrupt``), if the start-up handler is in place."""
    if signal.getsignal(signal.SIGINT) is _leave:
        signal.signal(signal.SIGINT, signal.default_int_handler)


guard_start()

with no_test_framework():
    import imblearn  # noqa: E402, F401
