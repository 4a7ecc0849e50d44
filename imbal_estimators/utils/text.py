"""Short forms of other libraries' messages, for one-line errors."""

__all__ = ["first_line"]


def first_line(exc, limit=200):
    """The first non-empty line of ``exc``'s message (or of a string), at most ``limit``
    characters, cut at a word with an ellipsis rather than mid-word."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return "" if isinstance(exc, str) else type(exc).__name__
    text = lines[0]
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0].rstrip(" ,;:")
    return cut + "…"
