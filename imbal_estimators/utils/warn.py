"""User-facing warnings that name the user's line, not the library's.

``warnings.warn(..., stacklevel=N)`` with a fixed ``N`` is right for one call
path only: the same check reached from ``fit``, ``partial_fit`` or a search
sits at other depths. :func:`find_stack_level` counts the frames instead, like
pandas' function of the same name.
"""

import inspect
import os
import warnings

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _in_package(frame):
    return os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR)


def find_stack_level():
    """The ``stacklevel`` that makes a warning issued by the caller name the user's frame.

    That is the frame that called into ``imbal_estimators`` last on the way
    out: frames of other libraries that the package itself called (skorch
    running a callback of ours) are skipped too, so the warning names the
    line of the user's ``fit``, not skorch's loop.

    Returns
    -------
    stacklevel : int
        For ``warnings.warn`` called in the function that called this one.
    """
    frame = inspect.currentframe()
    outermost, level = 0, 0
    try:
        while frame is not None:
            if _in_package(frame):
                outermost = level
            frame = frame.f_back
            level += 1
    finally:
        del frame
    # level 0 is this function; stacklevel 1 is its caller, so the first frame
    # outside the package, one beyond the outermost inside, is stacklevel outermost + 1
    return outermost + 1


class ImbalEstimatorsWarning(UserWarning):
    """The warnings this package gives its users (a ``UserWarning``).

    Attributed to the user's line, so a filter on the module
    (``error::UserWarning:imbal_estimators``) no longer sees them; filter on
    this category instead (the test suite makes it an error).
    """


def warn(message, category=ImbalEstimatorsWarning):
    """``warnings.warn(message, category)`` attributed to the user's line.

    Parameters
    ----------
    message : str
    category : type of Warning, default=ImbalEstimatorsWarning
    """
    # find_stack_level counts from here; warnings.warn's stacklevel counts from here too
    warnings.warn(message, category, stacklevel=find_stack_level())
