"""Sphinx configuration: Markdown pages (MyST) and the API reference from the docstrings.

Builds offline: no intersphinx, the bundled alabaster theme.
    python -m sphinx -W -b html docs docs/_build/html
"""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

project = "imbal_estimators"
author = "imbal_estimators developers"
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "myst_parser"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
html_theme = "alabaster"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
autodoc_member_order = "bysource"
autodoc_typehints = "none"
myst_heading_anchors = 3
suppress_warnings = ["myst.xref_missing"]
