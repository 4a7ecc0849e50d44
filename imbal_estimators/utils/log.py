"""The package's messages go to ``logging``; ``verbose`` still prints them for people.

Every message of the library (a fit resumed from a checkpoint, images skipped by the
pre-flight scan, compare's plan, a cache directory that cannot be used) is logged at
INFO on a logger under ``"imbal_estimators"`` (one per module,
``logging.getLogger(__name__)``), whatever ``verbose`` is, so that an application
routes, formats or collects it with the standard library::

    import logging

    logging.basicConfig(level=logging.INFO)  # the package's notes on stderr, with the rest

``verbose`` keeps its meaning: with ``verbose`` > 0 (or ``compare(progress=True)``) the
message is also printed to stdout, as before, for a person at a terminal or a notebook;
``verbose=0`` prints nothing. An application that logs needs no prints: it passes
``verbose=0`` and reads the log.
"""

import logging

ROOT_LOGGER = "imbal_estimators"

# The library's one handler: without it Python's last-resort handler would print the
# package's WARNING records to stderr where the application configured no logging.
logging.getLogger(ROOT_LOGGER).addHandler(logging.NullHandler())


def note(logger: logging.Logger, message: str, show: bool = True) -> None:
    """Log ``message`` at INFO on ``logger``; print it too when ``show`` (``verbose``)."""
    logger.info(message)
    if show:
        print(message, flush=True)
