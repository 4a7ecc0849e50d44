"""Library messages go to logging.getLogger("imbal_estimators..."); verbose=0 prints nothing."""

import glob
import logging
import os

from conftest import TINY, tiny_classifier

from imbal_estimators.app.compare import compare

PARAMS = {k: v for k, v in TINY.items() if k != "random_state"}


def package_messages(caplog):
    return [r.getMessage() for r in caplog.records if r.name.startswith("imbal_estimators")]


def test_quiet_fit_prints_nothing_and_logs_the_resume(binary_data, tmp_path, capsys, caplog):
    X, y = binary_data
    tiny_classifier(max_epochs=1, checkpoint_dir=tmp_path).fit(X, y)
    with caplog.at_level(logging.INFO, logger="imbal_estimators"):
        clf = tiny_classifier(max_epochs=2, checkpoint_dir=tmp_path, verbose=0).fit(X, y)
        clf.predict_proba(X[:4])
    assert clf.resumed_from_epoch_ == 1
    out, err = capsys.readouterr()
    assert out == ""
    (checkpoint,) = glob.glob(os.path.join(tmp_path, "checkpoint-*.pt"))
    expected = f"Resuming from {checkpoint}: 1 of 2 epochs done."
    assert expected in package_messages(caplog)
    record = next(r for r in caplog.records if r.getMessage() == expected)
    assert record.name == "imbal_estimators.training.checkpoint"
    assert record.levelno == logging.INFO


def test_verbose_fit_still_prints_the_note(binary_data, tmp_path, capsys):
    X, y = binary_data
    tiny_classifier(max_epochs=1, checkpoint_dir=tmp_path).fit(X, y)
    tiny_classifier(max_epochs=2, checkpoint_dir=tmp_path, verbose=1).fit(X, y)
    assert "Resuming from" in capsys.readouterr().out


def test_skipped_images_are_logged_without_printing(binary_data, tmp_path, capsys, caplog):
    X, y = binary_data
    broken = os.path.join(tmp_path, "broken.png")
    with open(broken, "wb") as file:
        file.write(b"not an image")
    with caplog.at_level(logging.INFO, logger="imbal_estimators"):
        tiny_classifier(max_epochs=1, on_bad_image="skip").fit([*X, broken], [*y, y[0]])
    assert capsys.readouterr().out == ""
    messages = [m for m in package_messages(caplog) if m.startswith("Skipped 1 unusable")]
    assert len(messages) == 1


def test_compare_logs_its_plan_and_keeps_the_log_parameter(binary_data, capsys, caplog):
    X, y = binary_data
    lines = []
    with caplog.at_level(logging.INFO, logger="imbal_estimators"):
        compare(
            X, y, methods=["ce"], cv=2, estimator_params=PARAMS, progress=False, refit=False,
            log=lines.append,
        )  # fmt: skip
    assert capsys.readouterr().out == ""
    logged = [r.getMessage() for r in caplog.records if r.name == "imbal_estimators.app.compare"]
    assert lines and logged == lines
    assert any(line.startswith("Positive class: 'dog'") for line in lines)


def test_the_package_logger_has_only_a_null_handler():
    handlers = logging.getLogger("imbal_estimators").handlers
    assert handlers and all(isinstance(h, logging.NullHandler) for h in handlers)
