"""One writer of fitted state, and training helpers that take settings instead of the estimator.

The first two tests read the package's source: a new writer of a fitted attribute, or a new
helper under ``training/`` or ``models/`` that takes the estimator, fails them by name. The
others call the helpers with settings built by hand, without any network.
"""

import ast
import inspect
import pathlib

import numpy as np
import pytest
import torch
from conftest import tiny_classifier

import imbal_estimators
from imbal_estimators import ImageImbalanceClassifier
from imbal_estimators.estimator.fitted import (
    FITTED_NAMES,
    DecisionFit,
    assign_fitted,
    normalize_fitted,
)
from imbal_estimators.models.backbones import FrozenBackboneModel
from imbal_estimators.training.callbacks import KeepBestModel
from imbal_estimators.training.frozen import (
    feature_draw,
    feature_split_datasets,
    frozen_features,
    frozen_model,
    predict_batch_size,
)
from imbal_estimators.training.memory import (
    out_of_memory_message,
    smaller_batch_size,
    train_with_memory_retry,
)
from imbal_estimators.training.plan import FeatureDraw, FitOutcome, FitPlan, plan_fit
from imbal_estimators.training.settings import (
    DataSettings,
    FitSettings,
    ImbalanceSettings,
    RuntimeSettings,
)
from imbal_estimators.utils.warn import ImbalEstimatorsWarning

PACKAGE = pathlib.Path(imbal_estimators.__file__).parent

# -- one writer -----------------------------------------------------------------------------

#: The fit path: the only functions that may store a fitted attribute on the estimator.
#: ``assign_fitted`` takes the frozen records (FitPlan, FeatureDraw, FitOutcome, DecisionFit,
#: a loaded model's fields); ``fit_estimator`` restores the whole state of a fit that failed
#: while building its network.
FIT_PATH = {
    ("estimator/fitted.py", "assign_fitted"),
    ("estimator/fitting.py", "fit_estimator"),
}

#: skorch's own components, which its initialize_* hooks (and the overrides of them) set on
#: the net; they are skorch's protocol, not attributes this package decides in fit.
SKORCH_COMPONENTS = {
    "module_",
    "criterion_",
    "optimizer_",
    "callbacks_",
    "history_",
    "initialized_",
    "virtual_params_",
    "grad_scaler_",
}

#: The estimator's methods that store parameters under names the source does not spell
#: (``self.__dict__[key]``): parameters, never fitted state.
PARAMETER_WRITERS = {
    ("estimator/classifier.py", "ImageImbalanceClassifier.__init__"): (
        "the parameters, each stored under its name in the signature"
    ),
    ("estimator/classifier.py", "ImageImbalanceClassifier.set_params"): (
        "a parameter that holds a torch module, which skorch's __setattr__ refuses"
    ),
}

#: Stores of a name that looks fitted, on an object that is not the estimator, each with why.
OTHER_OBJECTS = {
    # skorch's EarlyStopping and LRScheduler keep their state in public attributes; a
    # checkpoint restores the callback's own state, not the estimator's
    ("training/checkpoint.py", "_restore_callback"): "a callback's state, restored",
    # SeedEnsembleClassifier and ImbalanceSearchCV are other estimators with their own fit
    ("app/compare.py", "_Runner.refit"): "the Comparison record's best_estimator_ field",
    # network surgery: a submodule set by its (computed) name on a torch module
    ("models/backbones.py", "_set_submodule"): "a submodule of a network",
    ("models/backbones.py", "_drop_aux_heads"): "a submodule of a network",
}


def _estimator_classes():
    """ImageImbalanceClassifier and the classes of this package it inherits from."""
    return {
        cls.__name__
        for cls in ImageImbalanceClassifier.__mro__
        if cls.__module__.startswith("imbal_estimators")
    }


def _is_fitted_name(name):
    return isinstance(name, str) and name.endswith("_") and not name.startswith("_")


def _module_strings(tree):
    """Module-level ``NAME = "text"`` constants (a key of ``__dict__[NAME]``)."""
    strings = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    strings[target.id] = node.value.value
    return strings


def _stores(tree, imported=None):
    """``(node, object source, attribute name or None)`` of every attribute store, setattr
    and ``__dict__`` write; the name is None where the source does not say it.
    ``imported`` names the string constants of other modules (a key imported from there)."""
    strings = {**(imported or {}), **_module_strings(tree)}

    def literal(node):
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return strings.get(node.id)
        return None

    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = list(node.targets) if isinstance(node, ast.Assign) else [node.target]
            while targets:
                target = targets.pop()
                if isinstance(target, (ast.Tuple, ast.List)):
                    targets.extend(target.elts)
                elif isinstance(target, ast.Attribute):
                    yield node, ast.unparse(target.value), target.attr
                elif isinstance(target, ast.Subscript) and ast.unparse(target.value).endswith(
                    "__dict__"
                ):
                    owner = ast.unparse(target.value).removesuffix(".__dict__")
                    yield node, owner, literal(target.slice)
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id == "setattr" and len(node.args) >= 2:
                yield node, ast.unparse(node.args[0]), literal(node.args[1])
            elif (
                isinstance(func, ast.Attribute)
                and func.attr in ("update", "setdefault")
                and ast.unparse(func.value).endswith("__dict__")
            ):
                owner = ast.unparse(func.value).removesuffix(".__dict__")
                if func.attr == "setdefault" and node.args:
                    yield node, owner, literal(node.args[0])
                elif func.attr == "update" and node.keywords and not node.args:
                    for keyword in node.keywords:  # update(name=value, ...)
                        yield node, owner, keyword.arg
                else:
                    yield node, owner, None


def _scopes(tree):
    """node -> (qualified name of its function, enclosing class names, its decorators)."""
    scopes = {}

    def visit(node, names, classes, decorators):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                visit(child, [*names, child.name], [*classes, child.name], decorators)
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found = [ast.unparse(d) for d in child.decorator_list]
                visit(child, [*names, child.name], classes, found)
            else:
                scopes[child] = (".".join(names), classes, decorators)
                visit(child, names, classes, decorators)

    visit(tree, [], [], [])
    return scopes


def fitted_state_writers():
    """Every store of a fitted attribute outside the fit path, as ``"file:line where what"``."""
    estimator_classes = _estimator_classes()
    trees = {path: ast.parse(path.read_text()) for path in sorted(PACKAGE.rglob("*.py"))}
    constants = {}
    for tree in trees.values():
        constants.update(_module_strings(tree))
    found = []
    for path, tree in trees.items():
        module = path.relative_to(PACKAGE).as_posix()
        scopes = _scopes(tree)
        for node, owner, name in _stores(tree, constants):
            where, classes, decorators = scopes.get(node, ("", [], []))
            if name is not None and not _is_fitted_name(name):
                continue  # a parameter, a private attribute: not fitted state
            in_estimator = bool(set(classes) & estimator_classes)
            if owner == "self" and not in_estimator:
                continue  # a callback, a sampler, another estimator: its own state
            if in_estimator and (
                name in SKORCH_COMPONENTS or any("setter" in d for d in decorators)
            ):
                continue  # skorch's components; a property's own setter
            if any(where == fn or where.startswith(fn + ".") for m, fn in FIT_PATH if m == module):
                continue
            if (module, where) in OTHER_OBJECTS and owner != "self":
                continue
            if (module, where) in PARAMETER_WRITERS and owner == "self" and name is None:
                continue
            found.append(f"{module}:{node.lineno} {where} {owner}.{name}")
    return found


def test_fitted_attributes_are_assigned_only_in_the_fit_path():
    assert fitted_state_writers() == []


def test_the_rule_catches_a_new_writer(tmp_path, monkeypatch):
    """The walk sees a callback that writes on the net, a setattr loop and a ``__dict__``
    write (this test fails if the walk stops seeing them)."""
    source = """
from skorch.callbacks import Callback
KEY = "threshold_"
class Sneaky(Callback):
    def on_train_end(self, net, **kwargs):
        net.best_epoch_ = 3
        self.best_epoch_ = 3
def helper(estimator, fitted):
    for name, value in fitted.items():
        setattr(estimator, name, value)
    estimator.__dict__[KEY] = 0.5
    estimator._private = 1
"""
    fake = tmp_path / "imbal_estimators"
    (fake / "training").mkdir(parents=True)
    (fake / "training" / "sneaky.py").write_text(source)
    monkeypatch.setattr(__import__(__name__), "PACKAGE", fake)
    found = fitted_state_writers()
    assert sorted(line.split(" ", 1)[1] for line in found) == [
        "Sneaky.on_train_end net.best_epoch_",
        "helper estimator.None",
        "helper estimator.threshold_",
    ]


def test_the_fit_path_and_the_exceptions_still_exist():
    """Each name the rule allows is still in the source (a renamed one would allow nothing)."""
    for module, function in {*FIT_PATH, *OTHER_OBJECTS, *PARAMETER_WRITERS}:
        tree = ast.parse((PACKAGE / module).read_text())
        names = {where for where, _, _ in _scopes(tree).values()}
        assert function in names, (module, function)


def test_assign_fitted_refuses_a_name_no_record_declares():
    clf = ImageImbalanceClassifier()
    with pytest.raises(ValueError, match="'typo_' is not a fitted attribute"):
        assign_fitted(clf, {"typo_": 1})
    assign_fitted(clf, DecisionFit(threshold_=0.25))
    assert clf.threshold_ == 0.25 and clf.temperature_ is None
    assert {"best_epoch_", "batch_size_", "sampler_", "class_weight_"} <= FITTED_NAMES


# -- helpers without the estimator ------------------------------------------------------------

HELPER_PACKAGES = ("training", "models")
ESTIMATOR_PARAMETERS = {"net", "estimator", "clf", "classifier"}

#: Modules that run the frozen head's fast paths of the estimator's training loop
#: (estimator/loop.py): they drive the net through skorch's public hooks rather than read
#: its settings.
ESTIMATOR_LOOPS = {"training/heads.py", "training/head_solver.py", "training/head_folds.py"}


def _is_callback_or_mixin(cls):
    from skorch.callbacks import Callback

    return issubclass(cls, Callback) or (
        cls.__name__.endswith("Mixin") and issubclass(ImageImbalanceClassifier, cls)
    )


def estimator_taking_functions():
    """Functions under training/ and models/ with a parameter that is the estimator: one
    named net, estimator, clf or classifier, or one checked with isinstance against it."""
    import importlib

    found = []
    for package in HELPER_PACKAGES:
        for path in sorted((PACKAGE / package).glob("*.py")):
            module_name = path.relative_to(PACKAGE).as_posix()
            if module_name in ESTIMATOR_LOOPS:
                continue
            module = importlib.import_module(
                "imbal_estimators." + module_name.removesuffix(".py").replace("/", ".")
            )
            tree = ast.parse(path.read_text())
            classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
            for node in ast.walk(tree):
                if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                owner = next((name for name, cls in classes.items() if node in ast.walk(cls)), None)
                if owner is not None and _is_callback_or_mixin(getattr(module, owner)):
                    continue
                args = node.args
                names = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]}
                checks = {
                    ast.unparse(call.args[1])
                    for call in ast.walk(node)
                    if isinstance(call, ast.Call)
                    and ast.unparse(call.func) == "isinstance"
                    and len(call.args) == 2
                }
                if names & ESTIMATOR_PARAMETERS or any("ImageImbalance" in c for c in checks):
                    found.append(f"{module_name}:{node.lineno} {node.name}")
    return found


def test_no_helper_under_training_or_models_takes_the_estimator():
    assert estimator_taking_functions() == []


def test_the_helpers_named_in_issue_22_take_settings():
    for helper in (plan_fit, frozen_model, frozen_features, train_with_memory_retry):
        params = set(inspect.signature(helper).parameters)
        assert "settings" in params and not params & ESTIMATOR_PARAMETERS, helper.__name__
    from imbal_estimators.training.checkpoint import prepare_checkpoint

    assert "runtime" in inspect.signature(prepare_checkpoint).parameters


def _settings(**changes):
    parts = {
        "data": DataSettings(image_size=16, cache=None, train_split=0.25),
        "imbalance": ImbalanceSettings(alpha="balanced"),
        "runtime": RuntimeSettings(device="cpu", precision="fp32", random_state=0, batch_size=8),
    }
    parts.update(changes)
    return FitSettings(**parts, name="Tester")


def _encoded(labels):
    classes, y = np.unique(labels, return_inverse=True)
    return classes, y


def test_plan_fit_runs_on_settings_alone(binary_data):
    paths, labels = binary_data
    paths, labels = np.asarray(paths), np.asarray(labels)
    classes, y = _encoded(labels)
    plan = plan_fit(_settings(), paths, labels, classes, y)
    assert isinstance(plan, FitPlan)
    assert plan.classes_.tolist() == ["cat", "dog"] and plan.pos_label_ == "dog"
    assert len(plan.train_indices_) + len(plan.valid_indices_) == len(paths)
    assert plan.class_counts_.sum() == len(plan.train_indices_)
    # "balanced": n / (C * n_c) of the training part's counts
    counts = plan.class_counts_
    np.testing.assert_allclose(plan.class_weight_, counts.sum() / (2 * counts))
    assert plan.batch_size_ == 8 and plan.resumed_from_epoch_ == 0 and plan.threshold_ is None
    # the same seeds draw the same plan
    again = plan_fit(_settings(), paths, labels, classes, y)
    np.testing.assert_array_equal(again.valid_indices_, plan.valid_indices_)


def test_plan_fit_names_the_estimator_of_the_settings(binary_data):
    paths, labels = (np.asarray(v) for v in binary_data)
    classes, y = _encoded(labels)
    data = DataSettings(image_size=16, cache=None, train_split=None)
    settings = _settings(data=data, imbalance=ImbalanceSettings(threshold="auto"))
    with pytest.raises(ValueError, match="'threshold' parameter of Tester .* train_split=None"):
        plan_fit(settings, paths, labels, classes, y)


def test_a_continued_fit_keeps_the_positive_class_it_was_trained_for(binary_data):
    paths, labels = (np.asarray(v) for v in binary_data)
    classes, y = _encoded(labels)
    plan = plan_fit(_settings(), paths, labels, classes, y, resume=False, fitted_pos_label="cat")
    assert plan.pos_label_ == "cat" and plan.pos_index_ == 0


def test_the_memory_retry_halves_the_batch_size_without_a_net():
    tried = []

    def attempt(batch_size):
        tried.append(batch_size)
        if batch_size > 4:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    restarts = []
    settings = _settings(runtime=RuntimeSettings(auto_batch_size=True, device="cuda:0"))
    with pytest.warns(
        ImbalEstimatorsWarning, match="batch_size=16 ran out.*trained with batch_size=4"
    ):
        fitted = train_with_memory_retry(
            attempt, lambda: restarts.append(1), lambda: True, 16, settings, n_train=40
        )
    assert fitted == 4 and tried == [16, 8, 4] and len(restarts) == 2


def test_the_memory_retry_says_what_to_try_when_it_cannot_retry():
    settings = _settings(runtime=RuntimeSettings(auto_batch_size=False, device="cuda:0"))
    message = out_of_memory_message(settings, 32)
    assert message.startswith(
        "Tester ran out of accelerator memory while training with batch_size=32"
    )
    assert "batch_size=16" in message and "auto_batch_size=True" in message
    assert "image_size (now 16)" in message
    with pytest.raises(torch.cuda.OutOfMemoryError, match="training with batch_size=40 "):
        train_with_memory_retry(_raise_oom, lambda: None, lambda: True, -1, settings, n_train=40)
    auto = _settings(runtime=RuntimeSettings(auto_batch_size=True))
    with pytest.raises(torch.cuda.OutOfMemoryError, match="only adapts the batch size during"):
        smaller_batch_size(auto, 8, RuntimeError(), can_retry=False)
    assert smaller_batch_size(auto, 8, RuntimeError(), can_retry=True) == 4


def _raise_oom(batch_size):
    raise torch.cuda.OutOfMemoryError("CUDA out of memory")


class _Body(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return self.conv(x).mean(dim=(2, 3))


def _frozen(n_classes=2):
    torch.manual_seed(0)
    body = _Body()
    return body, torch.nn.Linear(4, n_classes)


def test_frozen_features_and_datasets_without_a_net(binary_data):
    paths = list(binary_data[0][:6])
    body, head = _frozen()
    model = frozen_model(_settings(), lambda: (_BodyWithHead(body, head), [0.5] * 3, [0.25] * 3))
    assert isinstance(model, FrozenBackboneModel)
    features = frozen_features(model, paths, _settings(), batch_size=4)
    assert features.shape == (6, 4) and features.dtype == torch.float32
    again = frozen_features(model, paths[:2], _settings(), batch_size=1)
    torch.testing.assert_close(again, features[:2])
    y = np.array([0, 0, 0, 1, 1, 1])
    train, valid = feature_split_datasets(features, y, np.arange(4), np.array([4, 5]))
    assert len(train) == 4 and valid.targets.tolist() == y.tolist() and len(valid) == 2
    assert feature_split_datasets(features, y, np.arange(6), np.array([], int))[1] is None
    assert predict_batch_size(None, 32) == 32 and predict_batch_size(10, 32) == 10
    assert predict_batch_size(None, -1) == 256


class _BodyWithHead(torch.nn.Module):
    """A backbone as ``build_backbone`` returns it: a ``fc`` head on a feature body."""

    def __init__(self, body, head):
        super().__init__()
        self.body = body
        self.fc = head

    def forward(self, x):
        return self.fc(self.body(x))


def test_the_feature_draw_returns_a_record():
    from imblearn.over_sampling import RandomOverSampler

    rng = np.random.default_rng(0)
    features = torch.as_tensor(rng.normal(size=(12, 3)), dtype=torch.float32)
    y = np.array([0] * 9 + [1] * 3)
    settings = _settings(
        imbalance=ImbalanceSettings(alpha="inverse", sampler=RandomOverSampler(random_state=0))
    )
    draw = feature_draw(settings, features, y, np.array(["a", "b"]), np.arange(12), 7, "b")
    assert isinstance(draw, FeatureDraw)
    assert draw.loss_class_counts_.tolist() == [9, 9]  # oversampled to balance
    np.testing.assert_allclose(draw.class_weight_, [2.0, 2.0])


def test_settings_come_from_get_params_once():
    clf = ImageImbalanceClassifier(
        image_size=32, cache=None, alpha="sqrt", drw_epoch=2, batch_size=4, device="cpu"
    )
    from imbal_estimators.estimator.fitting import fit_settings

    settings = fit_settings(clf)
    assert settings.data == DataSettings(32, None, 0.2, "raise", 1)
    assert settings.imbalance.alpha == "sqrt" and settings.imbalance.drw_epoch == 2
    assert settings.runtime.batch_size == 4 and settings.runtime.device == "cpu"
    assert settings.runtime.params == clf.get_params(deep=False)
    with pytest.raises(AttributeError):
        settings.data.image_size = 64  # frozen


# -- callbacks keep their state --------------------------------------------------------------


def test_keep_best_model_keeps_the_best_epoch_on_itself(binary_data):
    clf = tiny_classifier(max_epochs=3).fit(*binary_data)
    keeper = dict(clf.callbacks_)["keep_best"]
    assert isinstance(keeper, KeepBestModel)
    assert clf.best_epoch_ == keeper.best_epoch_
    improved = [row["valid_balanced_accuracy_best"] for row in clf.history]
    assert clf.best_epoch_ == max(i + 1 for i, best in enumerate(improved) if best)
    assert not hasattr(KeepBestModel(), "best_epoch_")  # nothing before training


def test_the_fit_outcome_comes_from_the_callbacks(binary_data):
    from imblearn.under_sampling import RandomUnderSampler

    sampler = RandomUnderSampler(random_state=0)
    clf = tiny_classifier(max_epochs=2, alpha="balanced", drw_epoch=2, sampler=sampler)
    clf.fit(*binary_data)
    callbacks = dict(clf.callbacks_)
    assert clf.sampler_ is callbacks["resampler"].sampler_ and clf.sampler_ is not sampler
    assert clf.class_weights_on_ is True is callbacks["deferred_reweighting"].weights_on_
    assert [row["class_weights_on"] for row in clf.history] == [False, True]
    assert clf.criterion_.weight is not None or getattr(clf.criterion_, "alpha", None) is not None
    assert {f for f in FitOutcome.__dataclass_fields__} == {
        "best_epoch_",
        "batch_size_",
        "class_weights_on_",
        "sampler_",
    }


# -- old models, normalized once ----------------------------------------------------------------


def test_normalize_fitted_gives_a_0_1_model_what_it_lacks():
    fitted = normalize_fitted({"threshold_": 0.4}, np.array(["a", "b"]), batch_size=16)
    assert fitted["pos_index_"] == 1 and fitted["pos_label_"] == "b"
    assert fitted["batch_size_"] == 16 and fitted["class_weights_on_"] is True
    assert fitted["threshold_"] == 0.4 and fitted["temperature_"] is None
    assert fitted["n_classes_"] == 2 and fitted["resumed_from_epoch_"] == 0
    multi = normalize_fitted({}, np.array([1, 2, 3]), batch_size=8)
    assert multi["pos_index_"] is None and multi["pos_label_"] is None
    kept = normalize_fitted({"pos_index_": 0, "pos_label_": "a"}, np.array(["a", "b"]), 8)
    assert kept["pos_index_"] == 0 and kept["pos_label_"] == "a"


def test_the_predict_path_reads_no_defaults():
    """The decision and the batch size read the fitted attributes; no ``__dict__.get``
    re-derives a 0.1 default on every call."""
    source = (PACKAGE / "estimator" / "classifier.py").read_text()
    for name in ("pos_index_", "batch_size_", "temperature_", "class_weights_on_"):
        assert f'__dict__.get("{name}"' not in source, name
