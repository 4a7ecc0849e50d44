"""Text from the user's data (class names, paths) in a Markdown report, never as markup.

A class folder may be named ``<img src=x onerror=alert(1)>`` or ``**x**``; a Markdown
viewer renders raw HTML and emphasis outside code. The report puts such text in code
spans (:func:`code`), where Markdown shows every character as it is, and fences
preformatted text with more backticks than it holds (:func:`fence`), so neither can end
early.
"""

import re

__all__ = ["code", "fence"]


def code(value):
    """``value`` as a Markdown code span that it cannot leave.

    A backtick inside would end the span: it is shown as ``'``; a line break as a space.

    Examples
    --------
    >>> code("<b>cat</b>"), code("a`b")
    ('`<b>cat</b>`', "`a'b`")
    """
    text = re.sub(r"[\r\n]+", " ", str(value)).replace("`", "'")
    return f"`{text}`"


def fence(text):
    """The code fence for ``text``: three backticks, or more than its longest run of them."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)
