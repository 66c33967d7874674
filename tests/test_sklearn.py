"""fastmlp.sklearn: scikit-learn's own estimator checks, agreement with scikit-learn's MLP update rules, n_init,
and the estimators inside Pipeline, cross_val_score and GridSearchCV."""
import inspect
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="fastmlp.sklearn needs the optional extra fastmlp[sklearn]")

from sklearn import neural_network
from sklearn.datasets import load_breast_cancer, make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning, FitFailedWarning
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import fastmlp
from fastmlp.sklearn import GridSearchMLP, MLPClassifier, MLPRegressor

# Small nets and few epochs keep the checks fast; the checks' accuracy and R^2 thresholds still hold.
CHECKED = [
    MLPClassifier(hidden_layer_sizes=(8,), max_iter=50, learning_rate_init=0.05, random_state=0),
    MLPRegressor(hidden_layer_sizes=(8,), max_iter=50, learning_rate_init=0.05, random_state=0),
    MLPClassifier(hidden_layer_sizes=(8,), activation="tanh", solver="sgd", max_iter=50, learning_rate_init=0.05,
                  dtype="float32", n_init=3, random_state=0),
]


def expected_failures(estimator):
    """Checks that cannot apply, ``{"check_name": "reason"}``, marked xfail (strict: one that passes fails).

    With scikit-learn 1.9.1 every check passes, so none is declared. The one check scikit-learn skips by itself
    here (``check_array_api_input``, without SCIPY_ARRAY_API) runs in a process of its own below.
    """
    return {}


# xfail_strict exists from scikit-learn 1.8
_STRICT = {"xfail_strict": True} if "xfail_strict" in inspect.signature(parametrize_with_checks).parameters else {}


@parametrize_with_checks(CHECKED, expected_failed_checks=expected_failures, **_STRICT)
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


def _sklearn_twin(cls, X, y, ours, **kw):
    """scikit-learn's own MLP started from our estimator's initial weights, full batch (no shuffling), no early
    stop: the update rules alone decide whether the two agree."""
    sk = cls(**kw, max_iter=1, tol=0.0, n_iter_no_change=10 ** 6, shuffle=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk.fit(X, y)
    layers = fastmlp.Layout(ours.network_.sizes).unpack(ours.initial_params_)
    sk.coefs_ = [W.T.copy() for W, _ in layers]
    sk.intercepts_ = [b.copy() for _, b in layers]
    sk.set_params(warm_start=True, max_iter=ours.max_iter)
    sk.loss_curve_, sk.t_, sk.n_iter_ = [], 0, 0
    sk.best_loss_ = np.inf
    del sk._optimizer
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk.fit(X, y)
    return sk


@pytest.mark.parametrize("solver,nesterov,momentum", [("sgd", True, 0.9), ("sgd", False, 0.5), ("sgd", True, 0.0),
                                                      ("adam", True, 0.9)])
def test_classifier_follows_sklearn_updates(solver, nesterov, momentum):
    X, y = make_classification(60, 5, n_classes=3, n_informative=3, random_state=1)
    kw = dict(hidden_layer_sizes=(6,), activation="tanh", solver=solver, alpha=0.01, batch_size=60,
              learning_rate_init=0.05, momentum=momentum, nesterovs_momentum=nesterov,
              # adam's epsilon sits at a different place (module notes): make it negligible to compare the rest
              epsilon=1e-30)
    ours = MLPClassifier(**kw, max_iter=30, random_state=3).fit(X, y)
    sk = _sklearn_twin(neural_network.MLPClassifier, X, y, ours, **kw)
    tol = 1e-10
    for a, b in zip(ours.coefs_, sk.coefs_):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    np.testing.assert_allclose(ours.predict_proba(X), sk.predict_proba(X), rtol=tol, atol=tol)
    # loss_curve_ holds the data loss before each epoch's update (scikit-learn's adds the L2 term)
    p0 = fastmlp.predict(ours.network_, ours.initial_params_, X)
    first = -np.mean(np.log(p0[np.arange(len(y)), y]))
    assert ours.loss_curve_[0] == pytest.approx(first, rel=1e-12)


def test_regressor_follows_sklearn_updates():
    X, y = make_regression(50, 4, n_targets=2, noise=0.1, random_state=0)
    y = y / y.std()
    kw = dict(hidden_layer_sizes=(5,), activation="tanh", solver="sgd", alpha=0.1, batch_size=50,
              learning_rate_init=0.01, momentum=0.9)
    ours = MLPRegressor(**kw, max_iter=20, random_state=0).fit(X, y)
    sk = _sklearn_twin(neural_network.MLPRegressor, X, y, ours, **kw)
    for a, b in zip(ours.coefs_, sk.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.predict(X), sk.predict(X), rtol=1e-10, atol=1e-12)
    assert ours.predict(X).shape == (50, 2)


def test_binary_string_labels_and_sklearn_layout():
    X, y01 = make_classification(80, 4, random_state=2)
    y = np.where(y01 == 1, "yes", "no")
    clf = MLPClassifier((5,), activation="tanh", max_iter=40, learning_rate_init=0.05, random_state=0).fit(X, y)
    assert list(clf.classes_) == ["no", "yes"]
    assert [W.shape for W in clf.coefs_] == [(4, 5), (5, 1)]
    assert clf.out_activation_ == "logistic"
    p = clf.predict_proba(X)
    z = clf.decision_function(X)
    # sigmoid of the logit, computed independently from coefs_ in scikit-learn's layout
    h = np.tanh(X @ clf.coefs_[0] + clf.intercepts_[0])
    z_ref = (h @ clf.coefs_[1] + clf.intercepts_[1])[:, 0]
    np.testing.assert_allclose(z, z_ref, rtol=1e-12)
    np.testing.assert_allclose(p[:, 1], 1 / (1 + np.exp(-z_ref)), rtol=1e-12)
    assert set(clf.predict(X)) <= {"no", "yes"}
    assert np.all(clf.predict(X) == np.where(z > 0, "yes", "no"))


def test_n_init_trains_all_starts_and_keeps_the_best_on_validation():
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    clf = MLPClassifier((4,), activation="tanh", solver="sgd", max_iter=5, learning_rate_init=0.01,
                        init=["xavier_uniform", "normal"], init_scale=[0.1, 3.0], n_init=3,
                        random_state=7).fit(X, y)
    r = clf.init_results_
    assert len(r["seed"]) == 12
    assert list(r["init"][:3]) == ["xavier_uniform"] * 3 and list(r["init_scale"][3:6]) == [3.0] * 3
    assert clf.best_init_index_ == int(np.argmin(r["val_loss"]))
    # each start's reported validation loss is that of the start trained alone on the same split
    n = len(y)
    tr, va = train_test_split(np.arange(n), test_size=int(np.ceil(0.1 * n)), random_state=7, stratify=y)
    for k in (0, 5, 10):
        alone = MLPClassifier((4,), activation="tanh", solver="sgd", max_iter=5, learning_rate_init=0.01,
                              init=r["init"][k], init_scale=float(r["init_scale"][k]),
                              random_state=int(r["seed"][k])).fit(X[tr], y[tr])
        p = alone.predict_proba(X[va])[:, 1]
        loss = -np.mean(np.where(y[va] == 1, np.log(p), np.log(1 - p)))
        assert r["val_loss"][k] == pytest.approx(loss, rel=1e-9)
        assert r["val_score"][k] == pytest.approx(np.mean(alone.predict(X[va]) == y[va]))
    best = clf.best_init_index_
    assert clf.loss_curve_[-1] == pytest.approx(r["train_loss"][best])
    assert np.unique(r["val_loss"]).size > 1


def test_unsupported_values_are_clear_errors():
    X, y = make_classification(30, 3, n_informative=2, n_redundant=0, random_state=0)
    with pytest.raises(ValueError, match="lbfgs"):
        MLPClassifier(solver="lbfgs").fit(X, y)
    with pytest.raises(ValueError, match="activation='swish'"):
        MLPClassifier(activation="swish").fit(X, y)
    with pytest.raises(ValueError, match="init='he'"):
        MLPClassifier(init="he").fit(X, y)
    with pytest.raises(ValueError, match="1d array|binary and multiclass"):
        MLPClassifier().fit(X, np.c_[y, 1 - y])
    with pytest.raises(ValueError, match="momentum must be in"):
        MLPClassifier(solver="sgd", momentum=1.0).fit(X, y)


def test_in_pipeline_cross_val_score_and_gridsearchcv():
    X, y = load_breast_cancer(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), MLPClassifier((8,), max_iter=30, learning_rate_init=0.01,
                                                         random_state=0))
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.9
    gs = GridSearchCV(pipe, {"mlpclassifier__alpha": [1e-4, 1.0], "mlpclassifier__init_scale": [0.5, 1.0]},
                      cv=3).fit(X, y)
    assert set(gs.best_params_) == {"mlpclassifier__alpha", "mlpclassifier__init_scale"}
    assert gs.best_score_ > 0.9


def test_gridsearchmlp_equals_gridsearchcv_on_the_same_estimator():
    """One engine call per shape and fold gives the very scores GridSearchCV gets fitting candidates one by one."""
    X, y = load_breast_cancer(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), MLPClassifier((8,), max_iter=15, learning_rate_init=0.01,
                                                         random_state=0))
    grid = {"mlpclassifier__alpha": [1e-4, 0.1], "mlpclassifier__random_state": [0, 1],
            "mlpclassifier__init_scale": [0.5, 2.0], "mlpclassifier__solver": ["sgd", "adam"]}
    ours = GridSearchMLP(pipe, grid, cv=3, scoring="neg_log_loss", return_train_score=True).fit(X, y)
    ref = GridSearchCV(pipe, grid, cv=3, scoring="neg_log_loss", return_train_score=True).fit(X, y)
    assert set(ours.cv_results_) == set(ref.cv_results_)
    for key in ref.cv_results_:
        if key.endswith(("test_score", "train_score")):
            np.testing.assert_allclose(ours.cv_results_[key], ref.cv_results_[key], rtol=1e-12)
    assert ours.cv_results_["params"] == ref.cv_results_["params"]
    assert ours.best_params_ == ref.best_params_ and ours.best_score_ == pytest.approx(ref.best_score_)
    # 2 solvers x 3 folds: 6 calls of 8 networks, not 48 fits
    assert [c["n_networks"] for c in ours.engine_calls_] == [8] * 6
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), rtol=1e-12)
    assert ours.score(X, y) == pytest.approx(ref.score(X, y))
    # accuracy for all networks of a call at once equals the scorer called per candidate
    from sklearn.metrics import accuracy_score, make_scorer
    fast = GridSearchMLP(pipe, grid, cv=3, scoring="accuracy", refit=False).fit(X, y)
    slow = GridSearchMLP(pipe, grid, cv=3, scoring=make_scorer(accuracy_score), refit=False).fit(X, y)
    np.testing.assert_array_equal(fast.cv_results_["mean_test_score"], slow.cv_results_["mean_test_score"])


def test_gridsearchmlp_regressor_refit_options_and_errors():
    X, y = make_regression(120, 5, noise=1.0, random_state=0)
    y = y / y.std()
    reg = MLPRegressor((6,), activation="tanh", solver="sgd", max_iter=10, learning_rate_init=0.01, random_state=0)
    grid = [{"learning_rate_init": [0.001, 0.01], "hidden_layer_sizes": [(6,), (3, 3)]}, {"alpha": [0.0, 1.0]}]
    ours = GridSearchMLP(reg, grid, cv=4, refit=False).fit(X, y)
    ref = GridSearchCV(reg, grid, cv=4, refit=False).fit(X, y)
    np.testing.assert_allclose(ours.cv_results_["mean_test_score"], ref.cv_results_["mean_test_score"], rtol=1e-12)
    assert not hasattr(ours, "best_estimator_")
    pick_last = GridSearchMLP(reg, grid, cv=4, refit=lambda r: len(r["params"]) - 1).fit(X, y)
    assert pick_last.best_params_ == {"alpha": 1.0}
    assert pick_last.best_estimator_.alpha == 1.0
    with pytest.warns(FitFailedWarning):
        bad = GridSearchMLP(reg, {"solver": ["sgd", "lbfgs"]}, cv=2).fit(X, y)
    assert np.isnan(bad.cv_results_["mean_test_score"][1]) and bad.best_params_ == {"solver": "sgd"}
    with pytest.raises(ValueError, match="lbfgs"):
        GridSearchMLP(reg, {"solver": ["lbfgs"]}, cv=2, error_score="raise").fit(X, y)
    with pytest.raises(TypeError, match="use GridSearchCV for other estimators"):
        GridSearchMLP(StandardScaler(), {}, cv=2).fit(X, y)


def test_from_sklearn_and_a_clear_error_for_sklearns_own_mlp():
    sk = neural_network.MLPClassifier((7,), activation="tanh", solver="sgd", alpha=0.3, max_iter=9, tol=1e-2,
                                      random_state=4)
    ours = MLPClassifier.from_sklearn(sk)
    assert (ours.hidden_layer_sizes, ours.activation, ours.solver, ours.alpha, ours.max_iter, ours.random_state) \
        == ((7,), "tanh", "sgd", 0.3, 9, 4)
    with pytest.raises(ValueError, match="early_stopping=True"):
        MLPRegressor.from_sklearn(neural_network.MLPRegressor(early_stopping=True))
    with pytest.raises(TypeError, match=r"fastmlp.sklearn.MLPClassifier.from_sklearn"):
        GridSearchMLP(make_pipeline(StandardScaler(), sk), {}, n_jobs=-1).fit(np.zeros((4, 2)), [0, 1, 0, 1])


def test_the_array_api_check_that_scikit_learn_skips_here():
    """scikit-learn skips ``check_array_api_input`` unless SCIPY_ARRAY_API=1 is set before scipy is imported,
    which a test cannot do inside this process; run those checks in a process of their own with it set."""
    import os
    import subprocess
    import sys
    from pathlib import Path
    env = dict(os.environ, SCIPY_ARRAY_API="1")
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", __file__,
                          "-k", "estimator_checks and array_api"], capture_output=True, text=True, env=env,
                         cwd=Path(__file__).resolve().parents[1], timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert f"{len(CHECKED)} passed" in out.stdout and "skipped" not in out.stdout, out.stdout[-3000:]


def test_backend_is_passed_to_the_engine():
    """The NumPy reference engine (the oracle) and the compiled one train the same network from the same start."""
    X, y = make_classification(50, 4, n_classes=3, n_informative=3, n_redundant=0, random_state=5)
    kw = dict(hidden_layer_sizes=(5,), activation="tanh", solver="sgd", batch_size=16, max_iter=8,
              learning_rate_init=0.05, dropout=0.2, random_state=2)
    a = MLPClassifier(**kw, backend="numba").fit(X, y)
    b = MLPClassifier(**kw, backend="numpy").fit(X, y)
    np.testing.assert_array_equal(a.initial_params_, b.initial_params_)
    np.testing.assert_allclose(a.params_, b.params_, rtol=1e-9, atol=1e-12)
    assert np.abs(a.params_ - a.initial_params_).max() > 1e-3
    with pytest.raises(ValueError, match="backend='jax'"):
        MLPClassifier(backend="jax").fit(X, y)
