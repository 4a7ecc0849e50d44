"""CSV files that a spreadsheet opens without evaluating a cell.

Excel, LibreOffice and Google Sheets evaluate a cell that starts with ``=``, ``+``, ``-`` or
``@`` as a formula (``=HYPERLINK(...)``, ``=cmd|' /C calc'!A0``), and a leading tab or
carriage return can hide such a start. A class name, a file name or a configuration name
is text the user does not always control, so every CSV the package writes passes its text
cells through :func:`safe_cell`, which does what OWASP recommends ("CSV Injection"):
prefix such a cell with a single quote, so the spreadsheet shows it as text. Numbers stay
numbers: ``-0.5`` and ``1e-3`` are written as they are.
"""

import csv
import re

__all__ = ["FORMULA_STARTS", "safe_cell", "safe_writer"]

#: first characters that make a spreadsheet evaluate a cell
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def safe_cell(value):
    """``value``, or ``"'" + value`` for text a spreadsheet would evaluate.

    Examples
    --------
    >>> safe_cell("=HYPERLINK(\\"http://x\\")")
    '\\'=HYPERLINK("http://x")'
    >>> safe_cell("-0.5"), safe_cell(-0.5), safe_cell("cat")
    ('-0.5', -0.5, 'cat')
    """
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        if not _NUMBER.fullmatch(value):
            return "'" + value
    return value


class _SafeWriter:
    def __init__(self, writer):
        self._writer = writer

    def writerow(self, row):
        return self._writer.writerow([safe_cell(value) for value in row])

    def writerows(self, rows):
        for row in rows:
            self.writerow(row)


def safe_writer(file, **kwargs):
    """A ``csv.writer`` of ``file`` whose text cells go through :func:`safe_cell`."""
    return _SafeWriter(csv.writer(file, **kwargs))
