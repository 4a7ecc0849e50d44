"""SeedEnsembleClassifier: several seeds of one configuration, saved and loaded as one model."""

import json
import os

import numpy as np
import pytest
from conftest import TINY
from conftest import tiny_classifier as make
from sklearn.base import clone
from sklearn.model_selection import cross_val_score

from imbal_estimators import ImageImbalanceClassifier, SeedEnsembleClassifier, load
from imbal_estimators.app.cli import main
from imbal_estimators.app.report import model_blocks
from imbal_estimators.estimator.ensemble import member_seeds
from imbal_estimators.estimator.persistence import ModelFileError
from imbal_estimators.io.atomic import publish_directory
from imbal_estimators.io.references import UntrustedReferenceError


@pytest.fixture(scope="module")
def fitted(binary_data):
    X, y = binary_data
    return SeedEnsembleClassifier(make(threshold="auto", random_state=5), n_members=3).fit(X, y)


def test_members_differ_only_in_their_seed(fitted):
    assert [m.random_state for m in fitted.members_] == [5, 6, 7]
    params = [m.get_params(deep=False) for m in fitted.members_]
    for p in params:
        p.pop("random_state")
    assert all(p.keys() == params[0].keys() for p in params)
    assert member_seeds(None, 2) == [None, None] and member_seeds(0, 3) == [0, 1, 2]


def test_probabilities_are_the_members_mean_and_decide_at_their_mean_threshold(fitted, binary_data):
    X, _ = binary_data
    members = [m.predict_proba(X) for m in fitted.members_]
    proba = fitted.predict_proba(X)
    np.testing.assert_allclose(proba, np.mean(members, axis=0), rtol=1e-12)
    assert not np.allclose(members[0], members[1])  # the seeds make different models
    threshold = np.mean([m.threshold_ for m in fitted.members_])
    assert fitted.threshold_ == pytest.approx(threshold, rel=1e-12)
    dog = list(fitted.classes_).index("dog")
    assert fitted.pos_label_ == "dog"
    expected = np.where(proba[:, dog] >= threshold, "dog", "cat")
    np.testing.assert_array_equal(fitted.predict(X), expected)
    np.testing.assert_array_equal(fitted.decide(proba), expected)
    assert fitted.decision_rule() == f"threshold {threshold:.3f} on P('dog')"


def test_one_member_is_the_plain_fit(binary_data):
    X, y = binary_data
    single = SeedEnsembleClassifier(make(random_state=3), n_members=1).fit(X, y)
    plain = make(random_state=3).fit(X, y)
    np.testing.assert_array_equal(single.predict_proba(X), plain.predict_proba(X))
    assert single.threshold_ is None and single.decision_rule() == "argmax"


@pytest.mark.parametrize("n_members", [0, -1, 2.5, "3", True])
def test_bad_n_members_is_refused_before_any_fit(binary_data, n_members):
    X, y = binary_data
    with pytest.raises(ValueError, match="'n_members' parameter of SeedEnsembleClassifier"):
        SeedEnsembleClassifier(make(), n_members=n_members).fit(X, y)


def test_an_estimator_that_is_not_ours_is_refused(binary_data):
    from sklearn.linear_model import LogisticRegression

    X, y = binary_data
    with pytest.raises(TypeError, match="'estimator' parameter of SeedEnsembleClassifier"):
        SeedEnsembleClassifier(LogisticRegression()).fit(X, y)


def test_it_is_a_scikit_learn_estimator(binary_data):
    X, y = binary_data
    ensemble = SeedEnsembleClassifier(make(), n_members=2)
    assert clone(ensemble).get_params()["estimator__loss"] == "ce"
    scores = cross_val_score(ensemble, X, y, cv=2, scoring="f1_macro")
    assert scores.shape == (2,) and np.all((scores >= 0) & (scores <= 1))


def test_save_and_load_give_the_same_predictions(fitted, binary_data, tmp_path):
    X, _ = binary_data
    path = tmp_path / "model"
    fitted.save(path)
    assert sorted(os.listdir(path)) == ["ensemble.json", "member-0", "member-1", "member-2"]
    loaded = load(path, trusted=True)  # conftest.TinyCNN is not on the allow-list
    assert isinstance(loaded, SeedEnsembleClassifier) and len(loaded.members_) == 3
    np.testing.assert_array_equal(loaded.predict_proba(X), fitted.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), fitted.predict(X))
    assert loaded.threshold_ == fitted.threshold_
    assert [m.random_state for m in loaded.members_] == [5, 6, 7]
    assert loaded.estimator.random_state == 5


def test_a_single_model_and_an_ensemble_replace_each_other(fitted, binary_data, tmp_path):
    X, y = binary_data
    path = tmp_path / "model"
    fitted.save(path)
    single = make().fit(X, y)
    single.save(path)
    assert sorted(os.listdir(path)) == ["config.json", "model.safetensors"]
    assert isinstance(load(path, trusted=True), ImageImbalanceClassifier)
    fitted.save(path)
    assert "config.json" not in os.listdir(path)
    (path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        single.save(path)  # never deletes a file a save did not write


def _corrupt(path, **changes):
    config = json.loads((path / "ensemble.json").read_text())
    config.update(changes)
    (path / "ensemble.json").write_text(json.dumps(config))


@pytest.mark.parametrize(
    "changes, error, message",
    [
        ({"members": ["../elsewhere"]}, ModelFileError, "lists members"),
        ({"members": []}, ModelFileError, "lists members"),
        ({"members": ["member-0", "member-0"]}, ModelFileError, "lists members"),
        ({"members": ["member-0", "member-7"]}, ModelFileError, "member-7"),
        ({"estimator": "os.system"}, UntrustedReferenceError, "os.system"),
        ({"format_version": 99}, ValueError, "format_version 99"),
    ],
)
def test_a_damaged_ensemble_file_is_refused_with_its_name(
    fitted, tmp_path, changes, error, message
):
    path = tmp_path / "model"
    fitted.save(path)
    _corrupt(path, **changes)
    with pytest.raises(error, match=message):
        load(path, trusted=True)


def test_a_truncated_ensemble_file_is_refused(fitted, tmp_path):
    path = tmp_path / "model"
    fitted.save(path)
    (path / "ensemble.json").write_text('{"format_version": 1, "memb')
    with pytest.raises(ModelFileError, match="ensemble.json.*not valid JSON"):
        load(path, trusted=True)


def test_a_member_is_checked_like_any_saved_model(fitted, tmp_path):
    path = tmp_path / "model"
    fitted.save(path)
    weights = path / "member-1" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(ModelFileError, match="member-1"):
        load(path, trusted=True)


def test_publish_directory_refuses_names_outside_the_directory(tmp_path):
    with pytest.raises(ValueError, match="not a name inside"):
        publish_directory(tmp_path / "out", {"../escape.txt": b"x"})
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "out").exists()
    publish_directory(tmp_path / "out", {"a/b/c.txt": b"1", "d.txt": b"2"})
    assert (tmp_path / "out" / "a" / "b" / "c.txt").read_bytes() == b"1"


def test_fit_on_the_command_line_saves_an_ensemble(binary_folder, tmp_path, capsys):
    out = tmp_path / "model"
    argv = ["fit", binary_folder, "--out", str(out), "--backbone", "small_cnn"]
    argv += ["--image-size", "16", "--max-epochs", "1", "--weights", "none"]
    argv += ["--threshold", "auto", "--random-state", "2", "--ensemble", "2"]
    assert main(argv) == 0
    assert "Saved an ensemble of 2 models" in capsys.readouterr().err
    model = load(out)
    assert [m.random_state for m in model.members_] == [2, 3]


def test_predict_on_the_command_line_uses_the_models_threshold(binary_data, tmp_path, capsys):
    X, y = binary_data
    images = X[-20:]  # dogs, the positive class
    clf = ImageImbalanceClassifier(**{**TINY, "module": None, "backbone": "small_cnn"}).fit(X, y)
    dog = list(clf.classes_).index("dog")
    clf.threshold_ = float(np.median(clf.predict_proba(images)[:, dog]))  # above half of them
    clf.pos_index_ = dog
    clf.save(tmp_path / "model")
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "model"), *images]) == 0
    lines = capsys.readouterr().out.strip().splitlines()[1:]
    labels = [line.split(",")[1] for line in lines]
    assert labels == clf.predict(images).tolist()
    assert 0 < labels.count("dog") < 20  # the threshold, not the argmax, decided


def test_the_report_of_a_model_scores_its_own_decisions(fitted, binary_data):
    X, y = binary_data
    blocks = model_blocks(fitted, X, y)
    text = " ".join(str(getattr(b, "text", "")) for b in blocks)
    assert "3 members, probabilities averaged" in text
    assert f"threshold {fitted.threshold_:.3f}" in text


# -- found by attacking the ensemble: each failed before its fix ----------------------------


def test_a_random_state_instance_gives_each_member_its_own_seed():
    # clones of one RandomState start from one state: every member would be the same fit
    # (member_seeds raised "int() argument must be ... not 'RandomState'")
    seeds = member_seeds(np.random.RandomState(0), 3)
    assert len(set(seeds)) == 3 and all(isinstance(s, int) for s in seeds)
    assert seeds == member_seeds(np.random.RandomState(0), 3)
    with pytest.raises(ValueError, match="'random_state' parameter of the ensemble's"):
        member_seeds("0", 2)


def test_from_members_takes_single_fitted_models_only(fitted):
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    for members in ([fitted, fitted], [fitted.members_[0], lr]):
        with pytest.raises(TypeError, match="must be fitted ImageImbalanceClassifier.*got"):
            SeedEnsembleClassifier.from_members(members)


def _changed(member, **attributes):
    import copy

    member = copy.deepcopy(member)
    for name, value in attributes.items():
        setattr(member, name, value)
    return member


@pytest.mark.parametrize(
    "attributes, message",
    [
        ({"threshold_": None}, "member 1: positive class index 1, no threshold"),
        ({"pos_index_": 0, "pos_label_": "cat"}, "member 1: positive class index 0"),
    ],
)
def test_from_members_refuses_members_that_decide_otherwise(fitted, attributes, message):
    # before: a member without a threshold turned the whole ensemble into argmax, and
    # thresholds on P('cat') and P('dog') were averaged, without a word
    first = fitted.members_[0]
    with pytest.raises(ValueError, match=f"decide by different rules.*{message}"):
        SeedEnsembleClassifier.from_members([first, _changed(first, **attributes)])


def test_from_members_refuses_posthoc_members_with_other_class_counts(fitted):
    first = _changed(fitted.members_[0], threshold_=None, posthoc_tau=1.0)
    other = _changed(first, loss_class_counts_=first.loss_class_counts_ + 1)
    with pytest.raises(ValueError, match="posthoc_tau 1 with class counts"):
        SeedEnsembleClassifier.from_members([first, other])
    assert SeedEnsembleClassifier.from_members([first, first]).decision_rule().startswith("post")


def test_members_with_another_class_dtype_are_refused(fitted):
    first = fitted.members_[0]
    other = _changed(first, classes_=first.classes_.astype(object))
    with pytest.raises(ValueError, match=r"different classes: .*\(<U3\) and .*\(object\)"):
        SeedEnsembleClassifier.from_members([first, other])
    ints = _changed(first, classes_=np.array([0, 1]))
    bools = _changed(first, classes_=np.array([False, True]))  # equal to [0, 1] for numpy
    with pytest.raises(ValueError, match="different classes"):
        SeedEnsembleClassifier.from_members([bools, ints])


def test_saving_into_a_member_folder_of_a_saved_ensemble_is_refused(fitted, binary_data, tmp_path):
    X, _ = binary_data
    path = tmp_path / "model"
    fitted.save(path)
    before = load(path, trusted=True).predict_proba(X)
    # before: silently replaced member-1 (the ensemble then loaded another model, or an
    # ensemble nested in itself)
    for estimator in (fitted.members_[0], fitted):
        with pytest.raises(FileExistsError, match="member folder of the ensemble saved in"):
            estimator.save(path / "member-1")
    np.testing.assert_array_equal(load(path, trusted=True).predict_proba(X), before)


def test_a_member_folder_holding_an_ensemble_is_refused(fitted, tmp_path):
    import shutil

    path = tmp_path / "model"
    fitted.save(path)
    shutil.rmtree(path / "member-1")
    fitted.save(tmp_path / "other")
    shutil.copytree(tmp_path / "other", path / "member-1")
    with pytest.raises(ModelFileError, match="member-1.*holds an ensemble.json"):
        load(path, trusted=True)


def test_a_symlinked_member_folder_is_refused_as_a_link(fitted, tmp_path):
    import shutil

    path = tmp_path / "model"
    fitted.save(path)
    shutil.move(path / "member-1", tmp_path / "elsewhere")
    os.symlink(tmp_path / "elsewhere", path / "member-1")
    with pytest.raises(ModelFileError, match="member-1.*is a symbolic link"):
        load(path, trusted=True)


@pytest.mark.parametrize(
    "make_file, message",
    [
        (lambda p: p.mkdir(), "is not a regular file"),
        (lambda p: p.write_text("[1, 2]"), "holds a JSON list, not the object"),
        (lambda p: p.write_text('"members"'), "holds a JSON str"),
        (lambda p: p.write_bytes(b" " * (1 << 20) + b"{}"), "larger than 1048576 bytes"),
    ],
)
def test_an_ensemble_file_that_is_no_object_is_refused_clearly(
    fitted, tmp_path, make_file, message
):
    # before: "has no config.json" for a folder, "has format_version None" for a list,
    # and any size read into memory
    path = tmp_path / "model"
    fitted.save(path)
    (path / "ensemble.json").unlink()
    make_file(path / "ensemble.json")
    with pytest.raises(ModelFileError, match=message):
        load(path, trusted=True)


@pytest.mark.parametrize(
    "entry, content",
    [
        ("ensemble.json/mine.txt", "a folder named like a saved file"),
        ("member-0/config.json/mine.txt", "a folder inside a member-named folder"),
        ("config.json", '{"learning_rate": 3}'),  # the user's own settings
        ("member-0/config.json", "not JSON"),
    ],
)
def test_save_never_deletes_user_files_named_like_a_saved_models(fitted, tmp_path, entry, content):
    path = tmp_path / "model"
    (path / entry).parent.mkdir(parents=True, exist_ok=True)
    (path / entry).write_text(content)
    with pytest.raises(FileExistsError, match="holds other files"):
        fitted.save(path)
    assert (path / entry).read_text() == content


def test_save_over_a_symlink_says_so(fitted, tmp_path):
    (tmp_path / "target").mkdir()
    os.symlink(tmp_path / "target", tmp_path / "link")
    with pytest.raises(FileExistsError, match="is a symbolic link"):
        fitted.save(tmp_path / "link")
    assert os.listdir(tmp_path / "target") == []


def test_a_kill_while_an_ensemble_is_written_leaves_the_previous_model(tmp_path):
    import signal
    import subprocess
    import sys
    import textwrap

    path = tmp_path / "model"
    old = {"ensemble.json": b"old", "member-0/config.json": b"old"}
    publish_directory(path, old)
    script = textwrap.dedent(
        f"""
        import os, signal
        import imbal_estimators.io.atomic as atomic
        write, count = atomic._write_new_file, [0]
        def killed_at_the_third(path, data):
            count[0] += 1
            if count[0] == 3:
                os.kill(os.getpid(), signal.SIGKILL)
            write(path, data)
        atomic._write_new_file = killed_at_the_third
        atomic.publish_directory({str(path)!r}, {{
            "ensemble.json": b"new", "member-0/config.json": b"new",
            "member-1/config.json": b"new", "member-1/model.safetensors": b"new"}},
            replaceable=["ensemble.json", "member-0"])
        """
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": root}
    result = subprocess.run([sys.executable, "-c", script], env=env, check=False)
    assert result.returncode == -signal.SIGKILL
    assert (path / "ensemble.json").read_bytes() == b"old"
    assert sorted(os.listdir(path)) == ["ensemble.json", "member-0"]
    assert os.listdir(path / "member-0") == ["config.json"]
    publish_directory(path, {"ensemble.json": b"new"}, replaceable=["ensemble.json", "member-0"])
    assert os.listdir(tmp_path) == ["model"]  # the dead writer's folder went too
