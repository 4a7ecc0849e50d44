"""The estimator's docstring, assembled from estimator/_docstrings.py, stays complete."""

import inspect
import pydoc
import re

from imbal_estimators import ImageImbalanceClassifier
from imbal_estimators.estimator import _docstrings


def _documented(doc, section):
    """The names ``name :`` (or ``a, b :``) that open an entry of a numpydoc section."""
    text = doc.split(f"\n    {section}\n    {'-' * len(section)}\n")[1]
    text = re.split(r"\n    [A-Z][A-Za-z ]+\n    -{3,}\n", text)[0]
    names = set()
    for match in re.finditer(r"^    (\w[\w, ]*?) :", text, flags=re.M):
        names.update(name.strip() for name in match.group(1).split(","))
    for match in re.finditer(r"^    (\*\*kwargs)$", text, flags=re.M):
        names.add(match.group(1))
    return names


def test_every_init_parameter_is_documented():
    params = inspect.signature(ImageImbalanceClassifier.__init__).parameters
    wanted = {name for name in params if name != "self"} - {"kwargs"} | {"**kwargs"}
    documented = _documented(ImageImbalanceClassifier.__doc__, "Parameters")
    assert wanted - documented == set()
    assert documented - wanted == set()  # no entry for a parameter that left


def test_every_fitted_attribute_is_documented():
    documented = _documented(ImageImbalanceClassifier.__doc__, "Attributes")
    assert {"classes_", "best_epoch_", "batch_size_", "sampler_", "class_weight_"} <= documented


def test_help_and_the_docstring_show_the_assembled_text():
    doc = ImageImbalanceClassifier.__doc__
    assert doc == _docstrings.CLASSIFIER_DOC
    assert doc.startswith("Fine-tune a torchvision backbone on image paths")
    for section in ("Parameters", "Notes", "Attributes", "See Also", "Examples"):
        assert f"\n    {section}\n    ---" in doc
    text = pydoc.render_doc(ImageImbalanceClassifier, renderer=pydoc.plaintext)
    assert "auto_batch_size : bool, default=False" in text
    assert "best_epoch_ : int" in text
    cleaned = inspect.getdoc(ImageImbalanceClassifier)
    assert "\nParameters\n----------\nloss : {" in cleaned
