"""fit_many: frozen-backbone heads trained together equal separate fits."""

import numpy as np
import pytest
import torch
from conftest import HEAD_GRID, frozen_base, tiny_classifier
from sklearn.base import clone
from skorch.callbacks import EarlyStopping

import imbal_estimators.training.heads as heads
from imbal_estimators.models.backbones import FrozenBackboneModel
from imbal_estimators.training.heads import can_fit_together, fit_many
from imbal_estimators.training.threads import body_threads, head_threads

GRID = HEAD_GRID


@pytest.fixture(autouse=True)
def _fresh_caches(fresh_caches):
    """Every test here starts and ends with empty caches (conftest.fresh_caches)."""


@pytest.fixture
def groups(monkeypatch):
    """The number of heads each group trained."""
    sizes = []
    train = heads._HeadGroup._train_heads

    def counting(self):
        sizes.append(len(self.heads))
        return train(self)

    monkeypatch.setattr(heads._HeadGroup, "_train_heads", counting)
    return sizes


def assert_same_fit(a, b, X):
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    assert a.best_epoch_ == b.best_epoch_
    assert len(a.history) == len(b.history)
    for row_a, row_b in zip(a.history, b.history, strict=True):
        assert list(row_a) == list(row_b)
        assert [list(x) for x in row_a["batches"]] == [list(x) for x in row_b["batches"]]
        for key in ("train_loss", "valid_loss"):
            np.testing.assert_allclose(row_a[key], row_b[key], rtol=1e-5)
        assert row_a.get("train_class_counts") == row_b.get("train_class_counts")
    for name in ("threshold_", "temperature_", "class_weight_", "loss_class_counts_"):
        expected, got = getattr(a, name), getattr(b, name)
        if expected is None:
            assert got is None
        else:
            np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_fit_many_equals_separate_fits(binary_data, shufflenet_file, groups):
    X, y = binary_data
    base = frozen_base(shufflenet_file)
    separate = [clone(base).set_params(**p).fit(X, y) for p in GRID]
    together = fit_many([clone(base).set_params(**p) for p in GRID], X, y)
    assert groups == [len(GRID)]
    assert all(t.history[-1]["epoch"] >= 2 for t in together)
    for a, b in zip(separate, together, strict=True):
        assert_same_fit(a, b, X)


def test_fit_many_computes_each_feature_once(binary_data, shufflenet_file, monkeypatch):
    X, y = binary_data
    calls = []
    original = FrozenBackboneModel.features
    monkeypatch.setattr(
        FrozenBackboneModel, "features", lambda self, x: calls.append(len(x)) or original(self, x)
    )
    fit_many([clone(frozen_base(shufflenet_file)).set_params(**p) for p in GRID[:4]], X, y)
    assert sum(calls) == len(X)


def test_fit_many_on_folds_equals_separate_fits(three_class_data, groups):
    X, y = three_class_data
    base = tiny_classifier(freeze_backbone=True, head_solver=None, max_epochs=3, alpha="balanced")
    rng = np.random.default_rng(0)
    folds = [np.sort(rng.choice(len(X), size=36, replace=False)) for _ in range(3)]
    Xs, ys = [X[f] for f in folds], [y[f] for f in folds]
    separate = [clone(base).fit(Xf, yf) for Xf, yf in zip(Xs, ys, strict=True)]
    together = fit_many([clone(base) for _ in folds], Xs, ys, per_estimator=True)
    assert groups == [3]
    for a, b in zip(separate, together, strict=True):
        assert_same_fit(a, b, X)


def test_early_stopping_heads_stop_alone(binary_data, shufflenet_file, groups):
    X, y = binary_data
    base = frozen_base(shufflenet_file, max_epochs=6, lr=0.2)
    params = [
        {"callbacks": [("stop", EarlyStopping(patience=1, monitor="train_loss"))]},
        {"callbacks": None},
    ]
    separate = [clone(base).set_params(**p).fit(X, y) for p in params]
    together = fit_many([clone(base).set_params(**p) for p in params], X, y)
    assert groups == [2]
    assert len(together[1].history) == 6
    for a, b in zip(separate, together, strict=True):
        assert_same_fit(a, b, X)


def test_estimators_that_cannot_train_together_are_fitted_alone(binary_data, groups, tmp_path):
    X, y = binary_data
    frozen = tiny_classifier(freeze_backbone=True, head_solver=None)
    alone = [
        tiny_classifier(),
        tiny_classifier(freeze_backbone=True, head_solver=None, warm_start=True),
        tiny_classifier(
            freeze_backbone=True, head_solver=None, checkpoint_dir=str(tmp_path / "ckpt")
        ),
        tiny_classifier(freeze_backbone=True, head_solver=None, iterator_train__drop_last=True),
        tiny_classifier(freeze_backbone=True, head_solver=None, optimizer=torch.optim.LBFGS),
    ]
    assert can_fit_together(frozen)
    assert not any(can_fit_together(e) for e in alone)
    assert not can_fit_together(object())
    fitted = fit_many([frozen, *alone[:2]], X, y)
    assert groups == []  # one head left to train together: fitted alone as well
    for estimator in fitted:
        assert estimator.predict_proba(X).shape == (len(X), 2)


def test_a_bad_candidate_raises_its_own_error(binary_data):
    X, y = binary_data
    estimators = [
        tiny_classifier(freeze_backbone=True, head_solver=None),
        tiny_classifier(freeze_backbone=True, head_solver=None),
    ]
    estimators[1].set_params(alpha="inverted")
    with pytest.raises(ValueError, match="The 'alpha' parameter of ImageImbalanceClassifier"):
        fit_many(estimators, X, y)
    assert estimators[0].predict(X).shape == (len(X),)  # the others are fitted


def test_fit_many_argument_errors(binary_data):
    X, y = binary_data
    clf = tiny_classifier(freeze_backbone=True, head_solver=None)
    with pytest.raises(ValueError, match="the same estimator object twice"):
        fit_many([clf, clf], X, y)
    with pytest.raises(ValueError, match="one X and one y per estimator"):
        fit_many([clf], [X, X], [y, y], per_estimator=True)
    with pytest.raises(ValueError, match="chunk_size must be at least 1"):
        fit_many([clf], X, y, chunk_size=0)


def test_chunks_train_separately(binary_data, groups):
    X, y = binary_data
    base = tiny_classifier(freeze_backbone=True, head_solver=None)
    fit_many(
        [clone(base).set_params(lr=lr) for lr in (0.01, 0.02, 0.03, 0.04, 0.05)], X, y, chunk_size=2
    )
    assert groups == [2, 2]  # and the fifth alone


def test_head_threads_restore_the_count():
    saved = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with head_threads():
            assert torch.get_num_threads() == 1
            with body_threads():
                assert torch.get_num_threads() == 2
            assert torch.get_num_threads() == 1
            with head_threads():
                assert torch.get_num_threads() == 1
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with head_threads(enabled=False):
            assert torch.get_num_threads() == 2
        with body_threads():  # outside head_threads: nothing changes
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(saved)


def test_head_threads_also_give_the_blas_one_thread_and_restore_it():
    """SciPy's L-BFGS-B calls its BLAS at every iteration: with OpenBLAS's own threads
    on a loaded machine the heads took 8 times as long (training/threads.py)."""
    import scipy.optimize  # noqa: F401  (its BLAS is loaded)
    from threadpoolctl import ThreadpoolController

    blas = ThreadpoolController().select(user_api="blas")
    if not blas.lib_controllers:
        pytest.skip("no BLAS library that threadpoolctl can see")
    saved = [lib.num_threads for lib in blas.lib_controllers]
    with blas.limit(limits=2):
        with head_threads():
            assert [lib.num_threads for lib in blas.lib_controllers] == [1] * len(saved)
            with head_threads():  # nested: still one
                assert {lib.num_threads for lib in blas.lib_controllers} == {1}
        assert {lib.num_threads for lib in blas.lib_controllers} == {2}
        with head_threads(enabled=False):
            assert {lib.num_threads for lib in blas.lib_controllers} == {2}
    assert [lib.num_threads for lib in blas.lib_controllers] == saved


def test_head_epochs_run_on_one_thread_and_fit_restores_it(binary_data):
    from skorch.callbacks import Callback

    class Threads(Callback):
        seen = []

        def on_batch_begin(self, net, **kwargs):
            Threads.seen.append(torch.get_num_threads())

    X, y = binary_data
    saved = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        tiny_classifier(freeze_backbone=True, head_solver=None, callbacks=[Threads()]).fit(X, y)
        assert set(Threads.seen) == {1}
        assert torch.get_num_threads() == 2
        Threads.seen = []
        tiny_classifier(callbacks=[Threads()]).fit(X, y)  # a whole network keeps its threads
        assert set(Threads.seen) == {2}
    finally:
        torch.set_num_threads(saved)


@pytest.mark.parametrize("pruning", [False, True])
def test_search_trains_the_folds_of_a_trial_together(binary_data, groups, monkeypatch, pruning):
    import optuna

    from imbal_estimators import ImbalanceSearchCV
    from imbal_estimators.search import cv

    X, y = binary_data
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def search():
        return ImbalanceSearchCV(
            tiny_classifier(freeze_backbone=True, head_solver=None, max_epochs=3),
            {"alpha": [None, "balanced"], "lr": [0.01, 0.2]},
            n_trials=4,
            cv=3,
            scoring="balanced_accuracy",
            sampler="grid",
            pruning=optuna.pruners.ThresholdPruner(lower=0.6) if pruning else False,
            random_state=0,
            refit=False,
        ).fit(X, y)

    together = search()
    assert groups == [3] * 4  # the 3 folds of each trial in one group
    monkeypatch.setattr(cv, "can_fit_together", lambda estimator: False)
    alone = search()
    assert groups == [3] * 4
    states = set(together.cv_results_["trial_state"])
    assert states == ({"COMPLETE", "PRUNED"} if pruning else {"COMPLETE"})
    for key in ("trial_state", "split0_test_score", "split1_test_score", "split2_test_score"):
        np.testing.assert_array_equal(together.cv_results_[key], alone.cv_results_[key])
    for a, b in zip(together.study_.trials, alone.study_.trials, strict=True):
        assert a.params == b.params and a.intermediate_values == b.intermediate_values


def test_head_threads_in_worker_threads_leave_the_blas_as_it_was():
    """OpenBLAS ignores a thread count set from a thread that does not control it: a
    limit entered in one worker thread and restored in another stuck at one thread."""
    import threading
    import time

    import scipy.optimize  # noqa: F401  (its BLAS is loaded)
    from threadpoolctl import ThreadpoolController

    blas = ThreadpoolController().select(user_api="blas")
    if not blas.lib_controllers:
        pytest.skip("no BLAS library that threadpoolctl can see")
    with blas.limit(limits=2):
        seen = []

        def job(pause):
            with head_threads():
                seen.append({lib.num_threads for lib in blas.lib_controllers})
                time.sleep(pause)

        workers = [threading.Thread(target=job, args=(p,)) for p in (0.1, 0.05)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert seen == [{2}, {2}]  # a worker thread leaves the BLAS alone
        assert {lib.num_threads for lib in blas.lib_controllers} == {2}
        with head_threads():  # the main thread still limits and restores
            assert {lib.num_threads for lib in blas.lib_controllers} == {1}
        assert {lib.num_threads for lib in blas.lib_controllers} == {2}
