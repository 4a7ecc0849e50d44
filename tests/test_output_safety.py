"""Outputs safe for the programs that read them: CSV cells a spreadsheet would evaluate are
neutralised, report.md keeps class names and paths in code, and a failed save names the
path the user gave (issue 20)."""

import csv
import errno
import io
import os
import resource
import shutil
import signal

import pytest
from conftest import tiny_classifier as make

from imbal_estimators import SmallCNN
from imbal_estimators.app.report import Paragraph, Preformatted, render_markdown
from imbal_estimators.io import atomic
from imbal_estimators.io.markdown import code, fence
from imbal_estimators.io.spreadsheet import safe_cell, safe_writer


@pytest.mark.parametrize(
    "cell, written",
    [
        ('=HYPERLINK("http://evil","x")', '\'=HYPERLINK("http://evil","x")'),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
        ("@SUM(1+1)", "'@SUM(1+1)"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        ("-inf", "'-inf"),
        ("cats/-1.png", "cats/-1.png"),
        ("cat", "cat"),
        # numbers stay numbers
        ("-0.5", "-0.5"),
        ("+1e-3", "+1e-3"),
        ("-.25", "-.25"),
        (-0.5, -0.5),
        (3, 3),
    ],
)
def test_a_cell_a_spreadsheet_would_evaluate_is_neutralised(cell, written):
    assert safe_cell(cell) == written


def test_the_writer_neutralises_every_text_cell():
    file = io.StringIO()
    writer = safe_writer(file)
    writer.writerow(["path", "label", "proba_=1+1"])
    writer.writerows([["=cmd.png", "@x", "-0.250000"]])
    rows = list(csv.reader(io.StringIO(file.getvalue())))
    assert rows == [["path", "label", "proba_=1+1"], ["'=cmd.png", "'@x", "-0.250000"]]


def test_predict_output_csv_evaluates_no_cell(binary_folder, tmp_path):
    """The CSV of ``predict --output`` for a class folder named like a formula."""
    from imbal_estimators import load_image_folder
    from imbal_estimators.app.cli import main

    root = tmp_path / "data"
    for name in ("cat", '=HYPERLINK("http://x")'):
        os.makedirs(root / name)
        dogs = os.path.join(binary_folder, "dog")
        for i, image in enumerate(sorted(os.listdir(dogs))[:6]):
            shutil.copy(os.path.join(dogs, image), root / name / f"{i}.png")
    X, y = load_image_folder(root)
    make(module=SmallCNN, module__width=4, max_epochs=1).fit(X, y).save(tmp_path / "model")
    out = tmp_path / "predictions.csv"
    assert main(["predict", str(tmp_path / "model"), str(root), "--output", str(out)]) == 0
    rows = list(csv.reader(open(out, newline="")))
    labels = {row[1] for row in rows[1:]}
    assert labels <= {"cat", '\'=HYPERLINK("http://x")'}
    for row in rows:
        for cell in row:
            assert not cell.startswith(("=", "+", "@", "\t", "\r")), cell
            assert not cell.startswith("-") or float(cell) <= 0


def test_report_markdown_keeps_class_names_and_paths_in_code():
    assert code("<img src=x onerror=alert(1)>") == "`<img src=x onerror=alert(1)>`"
    assert code("a`b\nc") == "`a'b c`"
    text = render_markdown([Preformatted("x\n```\n<b>y</b>")], "t")
    assert fence("x\n```\n") == "````" and text.count("````") == 2


def test_report_of_a_model_escapes_a_class_name(tmp_path, binary_folder):
    from imbal_estimators import load_image_folder
    from imbal_estimators.app.report import model_blocks

    root = tmp_path / "data"
    for name in ("<b onclick=x>cat", "dog"):
        os.makedirs(root / name)
        dogs = os.path.join(binary_folder, "dog")
        for i, image in enumerate(sorted(os.listdir(dogs))[:6]):
            shutil.copy(os.path.join(dogs, image), root / name / f"{i}.png")
    X, y = load_image_folder(root)
    clf = make(module=SmallCNN, module__width=4, max_epochs=1).fit(X, y)
    paragraph = next(b for b in model_blocks(clf, X, y, data_dir="a`b") if isinstance(b, Paragraph))
    assert "class `<b onclick=x>cat`: 6" in paragraph.text and "Data: `a'b`" in paragraph.text
    outside = paragraph.text.split("`")[::2]  # the text outside code spans
    assert not any("<" in part for part in outside)


@pytest.fixture(scope="module")
def fitted(binary_data):
    X, y = binary_data
    return make(module=SmallCNN, module__width=4, max_epochs=1).fit(X, y)


def test_a_full_disk_names_the_path_the_user_gave(fitted, tmp_path, monkeypatch):
    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device")  # write() names no file

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(atomic, "_write_new_file", full)
    with pytest.raises(OSError, match=r"No space left on device: 'models/cats'") as info:
        fitted.save("models/cats")
    assert info.value.errno == errno.ENOSPC and info.value.filename == "models/cats"
    assert os.listdir(tmp_path / "models") == []  # the temporary sibling is gone


def test_a_real_write_failure_names_the_path_the_user_gave(fitted, tmp_path):
    """RLIMIT_FSIZE makes write() fail with EFBIG, as a full disk does, without a name."""
    target = str(tmp_path / "model")
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, limits[1]))
    try:
        with pytest.raises(OSError) as info:
            fitted.save(target)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, previous)
    assert info.value.errno == errno.EFBIG and info.value.filename == target
    assert ".tmp-" not in str(info.value)
    assert os.listdir(tmp_path) == []


def test_a_save_onto_a_file_names_the_path(fitted, tmp_path):
    (tmp_path / "model").write_text("mine")
    with pytest.raises(FileExistsError, match="exists and is not a directory") as info:
        fitted.save(str(tmp_path / "model"))
    assert info.value.filename == str(tmp_path / "model")
