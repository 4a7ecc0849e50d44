"""The documentation builds offline, warnings as errors, with the API reference from docstrings."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_docs_build_without_warnings(tmp_path):
    pytest.importorskip("sphinx")
    pytest.importorskip("myst_parser")
    out = tmp_path / "html"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            os.path.join(ROOT, "docs"),
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    api = (out / "api.html").read_text()
    for name in ("ImageImbalanceClassifier", "compute_alpha", "FocalLoss", "tune_threshold"):
        assert name in api
    assert "Class weights" in api  # parameter descriptions rendered from the numpydoc sections
    for page in ("guide", "cli", "performance"):
        assert (out / f"{page}.html").is_file()
