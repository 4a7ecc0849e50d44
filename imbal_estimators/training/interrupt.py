"""The user's stop (Ctrl-C, SIGTERM), told apart from the package's own early stops.

skorch's training loop reads any ``KeyboardInterrupt`` as "stop training now" and
returns the model trained so far; ``EarlyStopping`` and the divergence check use
exactly that. Inside :func:`stop_on_signals` a SIGINT or SIGTERM also records the
signal, so that the estimator, once skorch's loop has swallowed the interrupt,
raises it again (:func:`raise_if_stopped`) instead of handing back a half-trained
model. The package's early stops raise a bare ``KeyboardInterrupt`` and record
nothing, so they keep their meaning.
"""

import contextlib
import signal
import threading

_STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM") if hasattr(signal, name)
)
_state = {"depth": 0, "signum": None}


class UserInterrupt(KeyboardInterrupt):
    """The user's SIGINT or SIGTERM; ``exit_status`` is the shell's ``128 + signal``."""

    def __init__(self, signum=signal.SIGINT):
        self.signum = int(signum)
        super().__init__(signal.Signals(self.signum).name)

    @property
    def exit_status(self):
        return 128 + self.signum


def _handler(signum, frame):
    _state["signum"] = signum
    raise UserInterrupt(signum)


@contextlib.contextmanager
def stop_on_signals():
    """Within the block, SIGINT and SIGTERM raise :class:`UserInterrupt` and are recorded.

    Nested blocks and threads other than the main one (where Python cannot set
    a handler) leave the handlers as they are. A signal the process ignores
    (a job started with ``nohup`` or ``&``) stays ignored.
    """
    if threading.current_thread() is not threading.main_thread() or _state["depth"]:
        _state["depth"] += threading.current_thread() is threading.main_thread()
        try:
            yield
        finally:
            _state["depth"] -= threading.current_thread() is threading.main_thread()
        return
    previous = {}
    for signum in _STOP_SIGNALS:
        current = signal.getsignal(signum)
        if current is signal.SIG_IGN:
            continue
        previous[signum] = current
        signal.signal(signum, _handler)
    _state["depth"] = 1
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _state["depth"] = 0
        _state["signum"] = None


def stop_requested():
    """The signal number of the user's stop inside :func:`stop_on_signals`, else None."""
    return _state["signum"]


def raise_if_stopped():
    """Raise :class:`UserInterrupt` again if the user asked to stop (after skorch's loop,
    which swallows it)."""
    if _state["signum"] is not None:
        raise UserInterrupt(_state["signum"])
