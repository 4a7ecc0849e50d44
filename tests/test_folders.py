"""Folders that cannot lie: loops and second paths counted once, outputs kept out of the data."""

import os

import numpy as np
import pytest
from conftest import make_folder

from imbal_estimators import load_image_folder
from imbal_estimators.app.cli import main
from imbal_estimators.app.compare import compare
from imbal_estimators.data.folders import check_outside, folder_roots
from imbal_estimators.utils.warn import ImbalEstimatorsWarning

FAST_ARGS = ["--image-size", "8", "--max-epochs", "1", "--weights", "none", "--batch-size", "8"]


def counts(labels):
    return dict(zip(*np.unique(labels, return_counts=True), strict=True))


def test_a_directory_loop_in_a_class_folder_does_not_change_the_counts(tmp_path):
    root = make_folder(tmp_path / "data", {"common": 12, "rare": 4}, size=8)
    os.symlink(os.path.join(root, "rare"), os.path.join(root, "rare", "again"))
    with pytest.warns(ImbalEstimatorsWarning, match=r"1 directory link.*again' leads back to"):
        paths, labels = load_image_folder(root)
    assert counts(labels) == {"common": 12, "rare": 4}
    assert not any("again" in path for path in paths)


def test_a_link_to_the_root_is_a_loop_too(tmp_path):
    root = make_folder(tmp_path / "data", {"a": 5, "b": 3}, size=8)
    os.symlink(root, os.path.join(root, "b", "up"))
    with pytest.warns(ImbalEstimatorsWarning, match="leads back to"):
        _, labels = load_image_folder(root)
    assert counts(labels) == {"a": 5, "b": 3}


def test_a_file_reached_by_two_paths_is_counted_once_and_reported(tmp_path):
    root = make_folder(tmp_path / "data", {"a": 5, "b": 3}, size=8)
    first = os.path.join(root, "b", sorted(os.listdir(os.path.join(root, "b")))[0])
    os.symlink(first, os.path.join(root, "b", "zz_link.png"))
    os.link(first, os.path.join(root, "b", "zz_hard.png"))
    with pytest.warns(ImbalEstimatorsWarning, match=r"2 image file\(s\) are reached by a second"):
        paths, labels = load_image_folder(root)
    assert counts(labels) == {"a": 5, "b": 3}
    assert first in paths.tolist()


def test_a_linked_subfolder_outside_the_root_is_followed_once(tmp_path):
    root = make_folder(tmp_path / "data", {"a": 4, "b": 2}, size=8)
    extra = make_folder(tmp_path / "elsewhere", {"more": 3}, size=8)
    os.symlink(os.path.join(extra, "more"), os.path.join(root, "b", "more"))
    paths, labels = load_image_folder(root)  # no loop, no repeat: no warning
    assert counts(labels) == {"a": 4, "b": 5}


def test_a_class_folder_that_is_another_class_is_named(tmp_path):
    root = make_folder(tmp_path / "data", {"a": 4, "b": 2}, size=8)
    os.symlink(os.path.join(root, "a"), os.path.join(root, "c"))
    with (
        pytest.warns(ImbalEstimatorsWarning, match="leads back to"),
        pytest.raises(FileNotFoundError, match="no valid file for the classes c"),
    ):
        load_image_folder(root)


def test_check_outside_both_directions_and_through_links(tmp_path):
    data = tmp_path / "data"
    (data / "cats").mkdir(parents=True)
    with pytest.raises(ValueError, match="--out .* lies inside the data folder"):
        check_outside(data, data / "report", "--out")
    with pytest.raises(ValueError, match="The data folder .* lies inside --out"):
        check_outside(data, tmp_path, "--out")
    os.symlink(data / "cats", tmp_path / "link")
    with pytest.raises(ValueError, match="cache .* lies inside the data folder"):
        check_outside(data, tmp_path / "link" / "cache", "cache")
    check_outside(data, tmp_path / "data2", "--out")  # a sibling with a common prefix is fine
    check_outside(data, None, "--out")


def test_folder_roots_only_for_folders_named_after_labels(tmp_path):
    paths = [str(tmp_path / "d" / "cat" / "1.png"), str(tmp_path / "x" / "2.png")]
    assert folder_roots(paths, ["cat", "dog"]) == [str(tmp_path / "d")]


@pytest.mark.parametrize(
    "command",
    [
        ["fit", "{data}", "--out", "{data}/model"],
        ["compare", "{data}", "--out", "{data}/report"],
        ["tune", "{data}", "--trials", "1", "--out", "{data}/cat/model"],
        ["compare", "{data}", "--out", "{parent}"],
        ["report", "{parent}/model", "{data}", "--out", "{data}/dog/report"],
    ],
)
def test_cli_refuses_out_and_data_inside_each_other_before_any_work(
    command, tmp_path, capsys, monkeypatch
):
    data = make_folder(tmp_path / "data", {"cat": 6, "dog": 4}, size=8)
    monkeypatch.setattr(
        "imbal_estimators.app.cli.load_folder",
        lambda *_: pytest.fail("the folder was read before the check"),
    )
    argv = [arg.format(data=data, parent=tmp_path) for arg in command]
    assert main([*argv, *([] if argv[0] == "report" else FAST_ARGS)]) == 1
    err = capsys.readouterr().err
    assert "lies inside" in err and len(err.strip().splitlines()) == 1, err
    assert sorted(os.listdir(data)) == ["cat", "dog"]


def test_demo_refuses_its_report_inside_its_data_before_writing_either(tmp_path, capsys):
    data = tmp_path / "demo"
    assert main(["demo", "--quick", "--data", str(data), "--out", str(data / "report")]) == 1
    assert "lies inside the data folder" in capsys.readouterr().err
    assert not data.exists()


def test_compare_refuses_a_cache_or_checkpoint_dir_inside_the_data(tmp_path):
    data = make_folder(tmp_path / "data", {"cat": 6, "dog": 4}, size=8)
    paths, labels = load_image_folder(data)
    for name in ("cache", "checkpoint_dir"):
        params = {name: os.path.join(data, "store"), "weights": None, "image_size": 8}
        with pytest.raises(ValueError, match=f"{name} .* lies inside the data folder"):
            compare(paths, labels, cv=2, estimator_params=params, progress=False)
    params = {"weights": None, "image_size": 8}
    with pytest.raises(ValueError, match="journal .* lies inside the data folder"):
        compare(paths, labels, cv=2, estimator_params=params, journal=os.path.join(data, "j"))
    assert sorted(os.listdir(data)) == ["cat", "dog"]
