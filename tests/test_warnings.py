"""Every user-facing warning names the user's line (this file), not the library's.

Each test triggers one warning the way a user would and checks ``filename`` and
``lineno`` of the warning record against the line of the call in this file.
"""

import inspect
import json

import pytest
import torch
from conftest import TinyCNN, make_folder
from conftest import tiny_classifier as make
from sklearn.model_selection import GridSearchCV

from imbal_estimators import load, load_image_folder
from imbal_estimators.utils.warn import ImbalEstimatorsWarning


def _line_after():
    """The line number right after the caller's line (where the call under test is)."""
    return inspect.currentframe().f_back.f_lineno + 1


def _assert_names_this_file(record, line):
    assert len(record) >= 1
    for warning in record:
        assert warning.filename == __file__, warning.filename
        assert warning.lineno == line
        assert issubclass(warning.category, ImbalEstimatorsWarning)


def test_a_double_correction_names_the_caller(binary_data):
    X, y = binary_data
    clf = make(loss="logit_adjusted", alpha="balanced", max_epochs=1)
    with pytest.warns(UserWarning, match="corrected twice") as record:
        line = _line_after()
        clf.fit(X, y)
    _assert_names_this_file(record, line)


def test_a_double_correction_in_partial_fit_names_the_caller(binary_data):
    X, y = binary_data
    clf = make(loss="cb_focal", alpha="balanced", max_epochs=1)
    with pytest.warns(UserWarning, match="corrected twice") as record:
        line = _line_after()
        clf.partial_fit(X, y)
    _assert_names_this_file(record, line)


def test_threshold_auto_without_a_positive_validation_image_names_the_caller(tmp_path):
    # one "rare" image: it trains, so the validation split holds one class only
    X, y = load_image_folder(make_folder(tmp_path, {"common": 20, "rare": 1}, size=16))
    clf = make(threshold="auto", max_epochs=1)
    with pytest.warns(
        UserWarning, match="holds no image of class .rare.*threshold_ is 0.5"
    ) as record:
        line = _line_after()
        clf.fit(X, y)
    _assert_names_this_file(record, line)
    assert clf.threshold_ == 0.5


def test_skipped_bad_images_name_the_caller(binary_data, tmp_path):
    X, y = binary_data
    X = list(X)
    X[3] = str(tmp_path / "missing.png")
    clf = make(on_bad_image="warn", max_epochs=1)
    with pytest.warns(UserWarning, match="Skipping 1 of 64") as record:
        line = _line_after()
        clf.fit(X, y)
    _assert_names_this_file(record, line)


class _OutOfMemoryAbove8(TinyCNN):
    def forward(self, x):
        if self.training and x.shape[0] > 8:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")
        return super().forward(x)


def test_the_batch_size_that_fits_names_the_caller(binary_data):
    X, y = binary_data
    clf = make(module=_OutOfMemoryAbove8, batch_size=32, auto_batch_size=True, max_epochs=1)
    with pytest.warns(UserWarning, match="trained with batch_size=8") as record:
        line = _line_after()
        clf.fit(X, y)
    _assert_names_this_file(record, line)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only machine")
def test_loading_a_cuda_model_on_the_cpu_names_the_caller(binary_data, tmp_path):
    X, y = binary_data
    make(max_epochs=1).fit(X, y).save(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["params"]["device"] = "cuda"
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.warns(UserWarning, match="which this machine lacks") as record:
        line = _line_after()
        load(tmp_path, trusted=True)  # conftest.TinyCNN
    _assert_names_this_file(record, line)


def test_inside_a_search_the_warning_names_the_search_library(binary_data):
    """Called by scikit-learn, the caller is scikit-learn's line (as with pandas' rule)."""
    X, y = binary_data
    search = GridSearchCV(make(loss="logit_adjusted", alpha="balanced"), {"max_epochs": [1]}, cv=2)
    with pytest.warns(UserWarning, match="corrected twice") as record:
        search.fit(X, y)
    assert all("sklearn" in warning.filename for warning in record)
