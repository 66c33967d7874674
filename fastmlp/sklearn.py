"""scikit-learn estimators on the fastmlp engine: ``MLPClassifier``, ``MLPRegressor`` and ``GridSearchMLP``.

Needs the optional extra ``fastmlp[sklearn]``. The estimators take scikit-learn's parameter names where the
meaning is the same, and the engine's own (``init``, ``init_scale``, ``dropout``, ``dtype``, ``backend``,
``n_init``). ``GridSearchMLP`` trains every candidate of one network shape on a fold in one engine call.

How scikit-learn's meaning is matched (see docs/interop.md):

* ``max_iter`` is a number of epochs, all of which run (no ``tol``/``n_iter_no_change`` early stop; the engine
  trains a fixed number of steps). An epoch is ``ceil(n_samples / batch_size)`` minibatches, reshuffled every
  epoch, the last one short, as in scikit-learn.
* ``alpha`` is scikit-learn's L2 term ``alpha / (2 n_batch) ||W||^2``: the engine's coupled weight decay is set to
  ``alpha / batch_size`` (scikit-learn divides by the actual batch length, so its short last batch of an epoch
  decays a little more).
* ``solver="sgd"`` is classical momentum (``nesterovs_momentum=False``) or Nesterov (the default), both written
  as scikit-learn writes them; ``momentum=0`` is plain SGD. Only ``learning_rate="constant"`` exists.
* ``solver="adam"`` uses ``beta_1``, ``beta_2``, ``epsilon``; the engine adds ``epsilon`` to the bias-corrected
  ``sqrt(v_hat)`` where scikit-learn adds it to the uncorrected ``sqrt(v)`` (a difference only while
  ``v`` is of the order of ``epsilon``).
* the regressor's loss is scikit-learn's ``mean((y - f)^2) / 2`` per output with its gradient; the engine's
  mean squared error is rescaled through the learning rate and weight decay, so updates are the same.
* initialisation is fastmlp's: ``init`` (default ``"xavier_uniform"``, scikit-learn's weight distribution for
  tanh/relu) and ``init_scale``, zero biases (scikit-learn draws biases too); ``random_state`` seeds the start
  and the minibatch order, but does not reproduce scikit-learn's own random numbers.
* ``validation_fraction`` is the held-out share on which the best of ``n_init`` starts is chosen (scikit-learn
  uses it for early stopping, which does not exist here); with ``n_init=1`` all data are trained on.
* ``loss_curve_`` is the data loss per epoch (mean over the epoch's minibatches, each before its update),
  without the L2 term scikit-learn adds.
* not supported: ``solver="lbfgs"`` (a ``ValueError``); there is no ``learning_rate`` schedule, ``early_stopping``,
  ``tol``, ``shuffle`` or ``sample_weight`` (``from_sklearn`` refuses their non-default values); sparse input and
  multi-label targets get scikit-learn's input errors.
"""
from __future__ import annotations

import math
import numbers
import time
import warnings

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, clone, is_classifier
    from sklearn.exceptions import ConvergenceWarning, FitFailedWarning
    from sklearn.metrics import check_scoring
    from sklearn.model_selection import ParameterGrid, check_cv, train_test_split
    from sklearn.model_selection._search import BaseSearchCV
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import LabelEncoder
    from sklearn.utils.multiclass import check_classification_targets, type_of_target
    from sklearn.utils.validation import check_is_fitted, check_random_state, column_or_1d, validate_data
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("fastmlp.sklearn needs scikit-learn >= 1.6: pip install 'fastmlp[sklearn]'") from exc

from .evaluate import forward_batch
from .init import init_params
from .inference import predict as _predict
from .spec import SCHEMES, Init, Network, Training
from .train import train_batch
from .engine import BACKENDS

# scikit-learn's activation names, and fastmlp's own where scikit-learn has none
_ACTIVATION = {"identity": "linear", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu",
               "leaky_relu": "leaky_relu"}
_SKLEARN_OUT = {"sigmoid": "logistic", "softmax": "softmax", "identity": "identity"}
_SOLVERS = ("sgd", "adam")


def _as_list(value):
    return list(value) if isinstance(value, (list, tuple)) else [value]


class _Plan:
    """What one estimator's parameters mean to the engine, validated: the per-call settings (``key``) and the
    per-network ones (learning rate, momentum, weight decay, dropout, starts)."""

    def __init__(self, est, n_features, n_outputs, output, n_train):
        p = est.get_params(deep=False)
        if p["solver"] not in _SOLVERS:
            extra = " (lbfgs is a full-batch quasi-Newton method the engine does not have)" \
                if p["solver"] == "lbfgs" else ""
            raise ValueError(f"solver={p['solver']!r} is not supported{extra}; choose one of: sgd, adam")
        if p["activation"] not in _ACTIVATION:
            raise ValueError(f"activation={p['activation']!r} is not supported; choose one of: "
                             f"{', '.join(_ACTIVATION)}")
        hidden = p["hidden_layer_sizes"]
        hidden = (hidden,) if isinstance(hidden, numbers.Integral) else tuple(hidden)
        for h in hidden:
            if isinstance(h, bool) or not isinstance(h, numbers.Integral) or h <= 0:
                raise ValueError(f"hidden_layer_sizes must be positive integers, got {p['hidden_layer_sizes']!r}")
        self.network = Network(n_inputs=int(n_features), hidden=tuple(int(h) for h in hidden),
                               n_outputs=int(n_outputs), activation=_ACTIVATION[p["activation"]], output=output)
        for name in ("max_iter", "n_init"):
            v = p[name]
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        lr = p["learning_rate_init"]
        if not isinstance(lr, numbers.Real) or not (lr > 0 and math.isfinite(lr)):
            raise ValueError(f"learning_rate_init must be > 0, got {lr!r}")
        alpha = p["alpha"]
        if not isinstance(alpha, numbers.Real) or not (alpha >= 0 and math.isfinite(alpha)):
            raise ValueError(f"alpha must be >= 0, got {alpha!r}")
        for name in ("momentum", "beta_1", "beta_2"):
            v = p[name]
            if not isinstance(v, numbers.Real) or not 0 <= v < 1:
                raise ValueError(f"{name} must be in [0, 1), got {v!r}")
        if not isinstance(p["epsilon"], numbers.Real) or not p["epsilon"] > 0:
            raise ValueError(f"epsilon must be > 0, got {p['epsilon']!r}")
        if not isinstance(p["dropout"], numbers.Real) or not 0 <= p["dropout"] < 1:
            raise ValueError(f"dropout must be in [0, 1), got {p['dropout']!r}")
        if p["dtype"] not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {p['dtype']!r}")
        if p["backend"] not in BACKENDS:
            raise ValueError(f"backend={p['backend']!r} is unknown; choose one of: {', '.join(BACKENDS)}")
        vf = p["validation_fraction"]
        if not isinstance(vf, numbers.Real) or not 0 < vf < 1:
            raise ValueError(f"validation_fraction must be in (0, 1), got {vf!r}")
        bs = p["batch_size"]
        if bs == "auto":
            bs = min(200, n_train)
        elif isinstance(bs, bool) or not isinstance(bs, numbers.Integral) or bs < 1:
            raise ValueError(f"batch_size must be 'auto' or a positive integer, got {bs!r}")
        bs = int(min(bs, n_train))  # scikit-learn clips too
        self.inits = []
        for scheme in _as_list(p["init"]):
            if scheme not in SCHEMES:
                raise ValueError(f"init={scheme!r} is unknown; choose one of: {', '.join(SCHEMES)}")
            for scale in _as_list(p["init_scale"]):
                if not isinstance(scale, numbers.Real) or not (scale >= 0 and math.isfinite(scale)):
                    raise ValueError(f"init_scale must be >= 0, got {scale!r}")
                self.inits.append(Init(scheme, scale=float(scale)))
        rs = p["random_state"]
        if isinstance(rs, numbers.Integral) and not isinstance(rs, bool):
            if rs < 0:
                raise ValueError(f"random_state must be >= 0 as fastmlp seeds are, got {rs!r}")
            self.base_seed = int(rs)
        else:  # None or a RandomState, as scikit-learn: a fresh draw
            self.base_seed = int(check_random_state(rs).randint(0, 2 ** 31 - 1))
        if p["solver"] == "adam":
            optimizer, mu = "adam", float(p["beta_1"])
        else:
            optimizer, mu = ("nesterov" if p["nesterovs_momentum"] else "momentum"), float(p["momentum"])
        # scikit-learn's gradient / the engine's data gradient: the engine's MSE is mean over samples x outputs
        # of d^2 (gradient 2 d / (B K)); scikit-learn's is d / B per output
        c = n_outputs / 2.0 if output == "identity" else 1.0
        self.grad_ratio = c
        self.lr = float(lr) * (c if optimizer != "adam" else 1.0)
        self.momentum = mu
        self.weight_decay = float(alpha) / bs / c
        self.dropout = float(p["dropout"])
        self.batch_size = bs
        self.n_train = int(n_train)
        self.per_epoch = -(-n_train // bs)
        self.max_iter = int(p["max_iter"])
        self.n_init = int(p["n_init"])
        self.dtype = np.dtype(p["dtype"])
        self.backend = p["backend"]
        self.validation_fraction = float(vf)
        # lr and momentum travel per network (train_batch's arrays), so that they do not split engine calls
        self.training = Training(optimizer=optimizer, steps=self.max_iter * self.per_epoch,
                                 batch_size=None if bs >= n_train else bs, record_every=1,
                                 beta2=float(p["beta_2"]), eps=float(p["epsilon"]))

    @property
    def key(self):
        """What must be equal for networks to share an engine call (besides the data)."""
        return (self.network, self.training, self.dtype.name, self.backend)

    def starts(self):
        """``[(init, seed), ...]``: every start of this estimator (schemes x scales x n_init seeds)."""
        return [(init, self.base_seed + k) for init in self.inits for k in range(self.n_init)]

    def start_params(self, starts):
        return np.stack([init_params(self.network, init, seed, self.dtype) for init, seed in starts])

    def epoch_curve(self, curves):
        """Per-epoch mean of the per-step losses, weighted by minibatch length (scikit-learn's accounting),
        in scikit-learn's loss convention."""
        n, B, E = self.n_train, self.batch_size, self.per_epoch
        w = np.full(E, float(B))
        w[-1] = n - B * (E - 1)
        c = curves.reshape(curves.shape[0], self.max_iter, E).astype(np.float64)
        out = (c * w).sum(axis=2) / n
        return out / 2.0 if self.network.output == "identity" else out


def _train(plans_starts, X, y, backend_override=None):
    """Train every start of plans sharing one ``key`` in one engine call.

    ``plans_starts`` is ``[(plan, [(init, seed), ...]), ...]``; returns the ``BatchResult`` and the slice of its
    networks that belongs to each plan.
    """
    plan0 = plans_starts[0][0]
    P0, lr, mu, wd, drop, seeds, slices = [], [], [], [], [], [], []
    n = 0
    for plan, starts in plans_starts:
        P0.append(plan.start_params(starts))
        k = len(starts)
        lr += [plan.lr] * k
        mu += [plan.momentum] * k
        wd += [plan.weight_decay] * k
        drop += [plan.dropout] * k
        seeds += [s for _, s in starts]
        slices.append(slice(n, n + k))
        n += k
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = train_batch(plan0.network, X, y, np.concatenate(P0), training=plan0.training, lr=np.array(lr),
                          momentum=np.array(mu), weight_decay=np.array(wd), dropout=np.array(drop),
                          seeds=np.array(seeds, dtype=np.int64), backend=backend_override or plan0.backend)
    return res, slices


def _targets(network, y):
    """Float targets as the engine's loss sees them (for a validation loss)."""
    if network.output == "softmax":
        T = np.zeros((y.shape[0], network.n_outputs))
        T[np.arange(y.shape[0]), y] = 1
        return T
    return np.asarray(y, dtype=np.float64).reshape(y.shape[0], -1)


def _mean_loss(network, params, X, T):
    """Data loss of each of N networks on (X, T), in float64 (inf for non-finite)."""
    from .engine.reference import output_loss_and_delta
    out = np.full(params.shape[0], np.inf)
    for start, _, z in forward_batch(network, params.astype(np.float64), X.astype(np.float64)):
        for i in range(z.shape[0]):
            if np.all(np.isfinite(z[i])):
                with np.errstate(all="ignore"):
                    v = float(output_loss_and_delta(z[i], T, network.output)[0])
                out[start + i] = v if math.isfinite(v) else np.inf
    return out


class _BaseMLP(BaseEstimator):
    """Shared fit and forward pass of the classifier and the regressor."""

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate_init=0.001, max_iter=200, momentum=0.9, nesterovs_momentum=True,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, random_state=None, validation_fraction=0.1,
                 init="xavier_uniform", init_scale=1.0, dropout=0.0, dtype="float64", backend="numba", n_init=1):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.random_state = random_state
        self.validation_fraction = validation_fraction
        self.init = init
        self.init_scale = init_scale
        self.dropout = dropout
        self.dtype = dtype
        self.backend = backend
        self.n_init = n_init

    @classmethod
    def from_sklearn(cls, estimator):
        """The fastmlp estimator with the parameters of a scikit-learn ``MLPClassifier``/``MLPRegressor``.

        Parameters this estimator shares are copied. Those that only shape scikit-learn's early stop or output
        (``tol``, ``n_iter_no_change``, ``verbose``, ``warm_start``, ``max_fun``, ``power_t``) are dropped: all
        ``max_iter`` epochs run. Values fastmlp cannot honour raise a ``ValueError`` naming them.

        Parameters
        ----------
        estimator : sklearn.neural_network.MLPClassifier or MLPRegressor (unfitted parameters are read)

        Returns
        -------
        MLPClassifier or MLPRegressor (unfitted)
        """
        p = estimator.get_params(deep=False)
        if p.get("solver") == "lbfgs":
            raise ValueError("solver='lbfgs' is not supported; choose solver='sgd' or 'adam'")
        for name, ok in (("early_stopping", False), ("learning_rate", "constant"), ("shuffle", True)):
            if name in p and p[name] != ok:
                raise ValueError(f"{name}={p[name]!r} is not supported (fastmlp: {name}={ok!r})")
        mine = cls._get_param_names()
        return cls(**{k: v for k, v in p.items() if k in mine})

    # --- subclasses: targets ------------------------------------------------------------------------------
    def _encode_y(self, y):  # -> (engine targets, n_outputs, output)
        raise NotImplementedError

    def _score_val(self, network, params, X, y_enc):  # -> (N,) validation scores
        raise NotImplementedError

    def fit(self, X, y):
        """Train on ``X``, ``y``: ``n_init`` starts in one engine call, the best on a held-out split kept.

        Parameters
        ----------
        X : array_like, (n_samples, n_features)
        y : array_like, (n_samples,) (or (n_samples, n_targets) for the regressor)

        Returns
        -------
        self
        """
        X, y = validate_data(self, X, y, dtype=(np.float64, np.float32), multi_output=not is_classifier(self),
                             y_numeric=not is_classifier(self))
        y_enc, n_out, output = self._encode_y(y)
        n = X.shape[0]
        # validate the parameters before any split, so that a bad value is named first
        _Plan(self, X.shape[1], n_out, output, n)
        n_starts = len(_as_list(self.init)) * len(_as_list(self.init_scale)) * self.n_init
        if n_starts > 1:
            plan_seed = _Plan(self, X.shape[1], n_out, output, n).base_seed
            n_val = int(math.ceil(self.validation_fraction * n))
            if n_val < 1 or n - n_val < 1:
                raise ValueError(f"n_init > 1 needs a held-out split: {n} samples with validation_fraction="
                                 f"{self.validation_fraction} leave none on one side")
            strat = y_enc if is_classifier(self) else None
            try:
                tr, va = train_test_split(np.arange(n), test_size=n_val, random_state=plan_seed, stratify=strat)
            except ValueError:  # a class too small to stratify
                tr, va = train_test_split(np.arange(n), test_size=n_val, random_state=plan_seed)
        else:
            tr, va = np.arange(n), None
        plan = _Plan(self, X.shape[1], n_out, output, tr.size)
        starts = plan.starts()
        res, _ = _train([(plan, starts)], X[tr], y_enc[tr])
        curves = plan.epoch_curve(res.curves)
        if va is not None:
            T = _targets(plan.network, y_enc[va])
            val_loss = _mean_loss(plan.network, res.params, X[va], T)
            val_score = self._score_val(plan.network, res.params, X[va], y_enc[va])
            best = int(np.argmin(val_loss)) if np.any(np.isfinite(val_loss)) else 0
            self.init_results_ = {
                "init": np.array([i.scheme for i, _ in starts], dtype=object),
                "init_scale": np.array([i.scale for i, _ in starts]),
                "seed": np.array([s for _, s in starts]),
                "val_loss": val_loss, "val_score": val_score,
                "train_loss": curves[:, -1], "diverged_step": res.diverged_step.copy(),
            }
        else:
            best = 0
        self.best_init_index_ = best
        self._set_fitted(plan, res.params[best], res.initial_params[best], curves[best],
                         int(res.diverged_step[best]), n_out, tr.size)
        if self.diverged_step_ >= 0:
            warnings.warn(f"training diverged at step {self.diverged_step_}; the parameters before that step are "
                          f"kept (lower learning_rate_init or init_scale)", ConvergenceWarning)
        return self

    def _set_fitted(self, plan, params, initial, curve, diverged, n_out, n_train):
        """The fitted state, from one trained network (``fit`` and ``GridSearchMLP`` share it)."""
        self.network_ = plan.network
        self.params_ = np.array(params, copy=True)
        self.initial_params_ = np.array(initial, copy=True)
        self.loss_curve_ = [float(v) for v in curve]
        self.loss_ = self.loss_curve_[-1]
        self.n_iter_ = plan.max_iter
        self.t_ = plan.max_iter * n_train  # samples seen, as scikit-learn counts
        self.n_layers_ = len(plan.network.sizes)
        self.n_outputs_ = n_out
        self.out_activation_ = _SKLEARN_OUT[plan.network.output]
        self.diverged_step_ = int(diverged)
        return self

    @property
    def coefs_(self):
        """Weight matrices in scikit-learn's layout, ``(fan_in, fan_out)`` per layer."""
        check_is_fitted(self, "params_")
        from .layout import Layout
        return [W.T.copy() for W, _ in Layout(self.network_.sizes).unpack(self.params_)]

    @property
    def intercepts_(self):
        """Bias vectors, one per layer."""
        check_is_fitted(self, "params_")
        from .layout import Layout
        return [b.copy() for _, b in Layout(self.network_.sizes).unpack(self.params_)]

    def _logits(self, X):
        check_is_fitted(self, "params_")
        X = validate_data(self, X, dtype=(np.float64, np.float32), reset=False)
        return _predict(self.network_, self.params_, X, output="logits")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.random_state is None
        return tags


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier trained by the fastmlp engine, with scikit-learn's interface.

    Binary targets use one sigmoid output (binary cross-entropy), more classes a softmax (cross-entropy). The
    class labels may be any values scikit-learn accepts (strings included).

    Parameters
    ----------
    hidden_layer_sizes : int or tuple of int, default=(100,)
        Width of each hidden layer; ``()`` is logistic (softmax) regression.
    activation : {"relu", "tanh", "logistic", "identity", "leaky_relu"}, default="relu"
        Hidden activation (``leaky_relu`` is fastmlp's, slope 0.01).
    solver : {"adam", "sgd"}, default="adam"
        ``"lbfgs"`` is not supported (ValueError).
    alpha : float, default=1e-4
        L2 penalty, as scikit-learn's (``alpha / batch_size`` coupled weight decay in the engine).
    batch_size : int or "auto", default="auto"
        ``min(200, n_samples)`` for ``"auto"``.
    learning_rate_init : float, default=1e-3
        The (constant) learning rate.
    max_iter : int, default=200
        Epochs; all of them run (no early stop on ``tol``).
    momentum : float, default=0.9
        SGD momentum in [0, 1).
    nesterovs_momentum : bool, default=True
        Nesterov's momentum (else classical) for ``solver="sgd"``.
    beta_1, beta_2, epsilon : float
        Adam's moment decays and epsilon (see the module notes for epsilon's placement).
    random_state : int, RandomState or None, default=None
        Seeds the initial weights, the minibatch order, dropout and the ``n_init`` split. ``None``: a fresh draw.
    validation_fraction : float, default=0.1
        Share of the training data held out to choose the best of several starts (``n_init > 1`` only).
    init : str or list of str, default="xavier_uniform"
        fastmlp initialisation scheme(s) (``fastmlp.SCHEMES``); a list adds each scheme's starts.
    init_scale : float or list of float, default=1.0
        Multiplier of the scheme's weights; a list adds each scale's starts.
    dropout : float, default=0.0
        Inverted-dropout rate on the hidden layers during training.
    dtype : {"float64", "float32"}, default="float64"
        Working precision of the engine.
    backend : {"numba", "numpy", "cuda"}, default="numba"
    n_init : int, default=1
        Seeds per (scheme, scale): every start trains in one engine call, the best (lowest validation loss) is
        kept and all are reported in ``init_results_``.

    Attributes
    ----------
    classes_ : ndarray
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when ``X`` had string column names.
    coefs_, intercepts_ : list of ndarray
        Weights ``(fan_in, fan_out)`` and biases per layer, as scikit-learn's.
    loss_curve_ : list of float
        Training data loss per epoch (without the L2 term).
    loss_ : float
    n_iter_ : int
        Epochs run (= ``max_iter``).
    network_ : fastmlp.Network
    params_ : ndarray (P,)
        The flat parameters (``fastmlp.predict``, ``fastmlp.to_torch`` take them).
    initial_params_ : ndarray (P,)
    init_results_ : dict of arrays
        With several starts: ``init``, ``init_scale``, ``seed``, ``val_loss``, ``val_score`` (accuracy),
        ``train_loss`` (last epoch), ``diverged_step`` per start.
    best_init_index_ : int
    diverged_step_ : int
        -1, or the step at which the kept network diverged.

    Notes
    -----
    Differences from scikit-learn's ``MLPClassifier`` are listed in the module docstring of
    ``fastmlp.sklearn`` and in docs/interop.md. Multi-label targets are not supported.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from fastmlp.sklearn import MLPClassifier
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> clf = make_pipeline(StandardScaler(), MLPClassifier((16,), n_init=8, random_state=0)).fit(X, y)
    """

    def _encode_y(self, y):
        check_classification_targets(y)
        kind = type_of_target(y)
        if kind not in ("binary", "multiclass"):
            raise ValueError(f"MLPClassifier supports binary and multiclass targets, got {kind!r}")
        y = column_or_1d(y, warn=True)
        enc = LabelEncoder().fit(y)
        self.classes_ = enc.classes_
        if len(self.classes_) < 2:
            raise ValueError(f"MLPClassifier needs samples of at least 2 classes in the data; got 1 class "
                             f"({self.classes_[0]!r})")
        y_enc = enc.transform(y)
        k = len(self.classes_)
        return (y_enc, 1, "sigmoid") if k == 2 else (y_enc, k, "softmax")

    def _score_val(self, network, params, X, y_enc):
        z = _predict(network, params, X, output="logits")
        pred = (z[..., 0] > 0).astype(int) if z.shape[-1] == 1 else np.argmax(z, axis=-1)
        return np.mean(pred == y_enc[None, :], axis=1)

    def _batch_score(self, network, params, X, y):
        """Accuracy of each of N networks (what ``score`` gives), labels as given."""
        z = _predict(network, params, np.asarray(X, dtype=params.dtype), output="logits")
        idx = (z[..., 0] > 0).astype(int) if z.shape[-1] == 1 else np.argmax(z, axis=-1)
        return np.mean(self.classes_[idx] == np.asarray(y)[None, :], axis=1)

    def decision_function(self, X):
        """Logits: ``(n_samples,)`` for two classes (positive favours ``classes_[1]``), else
        ``(n_samples, n_classes)``."""
        z = self._logits(X)
        return z[:, 0] if z.shape[1] == 1 else z

    def predict_proba(self, X):
        """Class probabilities ``(n_samples, n_classes)``, columns in the order of ``classes_``."""
        check_is_fitted(self, "params_")
        X = validate_data(self, X, dtype=(np.float64, np.float32), reset=False)
        p = _predict(self.network_, self.params_, X, output="proba")
        return np.hstack([1 - p, p]) if p.shape[1] == 1 else p

    def predict_log_proba(self, X):
        """Logarithm of ``predict_proba``."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        """Predicted class labels."""
        z = self._logits(X)
        idx = (z[:, 0] > 0).astype(int) if z.shape[1] == 1 else np.argmax(z, axis=1)
        return self.classes_[idx]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = False
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor trained by the fastmlp engine, with scikit-learn's interface.

    Identity output units and scikit-learn's squared-error loss (``mean((y - f)^2) / 2``); ``y`` may have
    several columns. The parameters are those of ``MLPClassifier``; with ``n_init > 1`` the start with the lowest
    validation loss is kept and ``init_results_["val_score"]`` is its R^2.

    Parameters
    ----------
    hidden_layer_sizes, activation, solver, alpha, batch_size, learning_rate_init, max_iter, momentum,
    nesterovs_momentum, beta_1, beta_2, epsilon, random_state, validation_fraction, init, init_scale, dropout,
    dtype, backend, n_init
        As in ``MLPClassifier``.

    Attributes
    ----------
    n_features_in_, feature_names_in_, coefs_, intercepts_, loss_curve_, loss_, n_iter_, network_, params_,
    initial_params_, init_results_, best_init_index_, diverged_step_
        As in ``MLPClassifier``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastmlp.sklearn import MLPRegressor
    >>> X = np.linspace(-1, 1, 200)[:, None]
    >>> reg = MLPRegressor((16,), activation="tanh", max_iter=300, random_state=0).fit(X, np.sin(3 * X[:, 0]))
    """

    def _encode_y(self, y):
        y = np.asarray(y, dtype=np.float64)
        self._y_1d = y.ndim == 1
        Y = y.reshape(y.shape[0], -1)
        return Y, Y.shape[1], "identity"

    def _score_val(self, network, params, X, Y):
        z = _predict(network, params, X, output="logits").astype(np.float64)
        ss_res = ((z - Y[None]) ** 2).sum(axis=(1, 2))
        ss_tot = ((Y - Y.mean(axis=0)) ** 2).sum()
        with np.errstate(all="ignore"):
            return 1 - ss_res / ss_tot

    def _batch_score(self, network, params, X, y):
        """R^2 of each of N networks (what ``score`` gives: uniform average over targets)."""
        from sklearn.metrics import r2_score
        z = _predict(network, params, np.asarray(X, dtype=params.dtype), output="logits").astype(np.float64)
        Y = np.asarray(y, dtype=np.float64).reshape(z.shape[1], -1)
        out = np.full(z.shape[0], np.nan)
        for k in range(z.shape[0]):
            if np.all(np.isfinite(z[k])):
                out[k] = r2_score(Y, z[k])
        return out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def predict(self, X):
        """Predicted values: ``(n_samples,)`` for a 1-D training target, else ``(n_samples, n_targets)``."""
        z = self._logits(X)
        return z[:, 0] if self._y_1d else z


def _split_pipeline(estimator):
    """``(preprocessing steps or None, the MLP, the MLP's parameter prefix)``."""
    if isinstance(estimator, _BaseMLP):
        return None, estimator, ""
    if isinstance(estimator, Pipeline) and isinstance(estimator.steps[-1][1], _BaseMLP):
        name = estimator.steps[-1][0]
        return estimator[:-1], estimator.steps[-1][1], name + "__"
    last = estimator.steps[-1][1] if isinstance(estimator, Pipeline) else estimator
    hint = ""
    if type(last).__module__.startswith("sklearn.neural_network"):
        hint = (f": scikit-learn's own {type(last).__name__} trains one network per fit; use "
                f"fastmlp.sklearn.{type(last).__name__} (same parameter names) or "
                f"fastmlp.sklearn.{type(last).__name__}.from_sklearn(estimator)")
    raise TypeError(f"GridSearchMLP searches a fastmlp.sklearn MLPClassifier or MLPRegressor, or a Pipeline "
                    f"ending in one; got {type(last).__name__}{hint or ' (use GridSearchCV for other estimators)'}")


class GridSearchMLP(BaseSearchCV):
    """Exhaustive search over an MLP's parameters, every candidate of one network shape trained in one engine call
    per fold: the interface of scikit-learn's ``GridSearchCV``.

    Candidates that share what an engine call shares (layer sizes, activation, solver, batch size, ``max_iter``,
    Adam's ``beta_2``/``epsilon``, dtype, backend) are trained together; ``random_state``, ``init``,
    ``init_scale``, ``learning_rate_init``, ``alpha``, ``momentum``/``beta_1`` and ``dropout`` vary per network
    inside a call. A call trains on one dataset, so each fold (and each distinct preprocessing of a ``Pipeline``)
    is its own call: the number of calls is ``n_splits x shapes``, not ``n_splits x candidates``.

    Parameters
    ----------
    estimator : MLPClassifier, MLPRegressor or Pipeline ending in one
        Preprocessing steps of a Pipeline are fitted on each fold's training part (once per distinct setting of
        theirs in the grid), as ``GridSearchCV`` would.
    param_grid : dict or list of dicts
        As ``GridSearchCV``'s (``"mlpclassifier__alpha"`` for a Pipeline).
    scoring : str, callable or None, default=None
        One metric (the estimator's ``score`` for None). Several metrics are not supported (ValueError).
    n_jobs, pre_dispatch : ignored
        Accepted so that ``GridSearchCV(...)`` can be renamed ``GridSearchMLP(...)`` as it is: the engine runs
        the networks of a call on all numba threads (``NUMBA_NUM_THREADS``).
    refit : bool or callable, default=True
        Refit the best candidate on all of ``X`` (a callable picks ``best_index_`` from ``cv_results_``).
    cv : int, cross-validation generator or iterable, default=5
        As ``GridSearchCV``'s (stratified folds for a classifier).
    verbose : int, default=0
        ``>0`` prints one line per engine call.
    error_score : "raise" or float, default=np.nan
        Score of a candidate whose fit fails (e.g. an unsupported value).
    return_train_score : bool, default=False

    Attributes
    ----------
    cv_results_ : dict of arrays
        The keys of ``GridSearchCV``'s: ``mean_fit_time``, ``std_fit_time``, ``mean_score_time``,
        ``std_score_time``, ``param_<name>``, ``params``, ``split<k>_test_score``, ``mean_test_score``,
        ``std_test_score``, ``rank_test_score`` (and the train scores when asked). A candidate's fit time is its
        share of its engine call (the call's time over the networks in it).
    best_estimator_, best_score_, best_params_, best_index_, scorer_, n_splits_, refit_time_, multimetric_
        As ``GridSearchCV``'s.
    engine_calls_ : list of dict
        One entry per engine call: ``fold``, ``n_networks``, ``sizes``, ``optimizer``, ``seconds``.

    Notes
    -----
    Candidates with ``n_init > 1`` (or a list of ``init``/``init_scale``) are fitted one by one, as
    ``GridSearchCV`` would; put ``random_state`` or ``init_scale`` in the grid instead to have them batched.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from fastmlp.sklearn import GridSearchMLP, MLPClassifier
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> pipe = make_pipeline(StandardScaler(), MLPClassifier((16,), max_iter=50, random_state=0))
    >>> search = GridSearchMLP(pipe, {"mlpclassifier__alpha": [1e-4, 1e-2],
    ...                               "mlpclassifier__random_state": [0, 1, 2]}, cv=5).fit(X, y)
    >>> search.best_params_  # doctest: +SKIP
    """
    def __init__(self, estimator, param_grid, *, scoring=None, n_jobs=None, refit=True, cv=5, verbose=0,
                 pre_dispatch=None, error_score=np.nan, return_train_score=False):
        self.estimator = estimator
        self.n_jobs = n_jobs
        self.pre_dispatch = pre_dispatch
        self.param_grid = param_grid
        self.scoring = scoring
        self.refit = refit
        self.cv = cv
        self.verbose = verbose
        self.error_score = error_score
        self.return_train_score = return_train_score

    def _fold_candidates(self, est, idx, cand_params, Xtr, ytr, Xte, yte, fold, prefix, out):
        """Train the candidates ``idx`` (MLP parameters ``cand_params``) on one fold's (preprocessed) data."""
        groups = {}
        # the targets are encoded once per fold; every candidate gets the encoder's fitted state
        proto = clone(est)
        y_enc, n_out, output = proto._encode_y(ytr)
        fitted_y = {k: v for k, v in vars(proto).items() if k in ("classes_", "_y_1d")}
        for i in idx:
            mlp = clone(est).set_params(**cand_params[i])
            mlp.__dict__.update(fitted_y)
            try:
                plan = _Plan(mlp, Xtr.shape[1], n_out, output, Xtr.shape[0])
            except ValueError as exc:
                if self.error_score == "raise":
                    raise
                warnings.warn(f"candidate {i} failed on fold {fold}: {exc}", FitFailedWarning)
                out[i][fold] = dict(fit_time=0.0, score_time=0.0, test_scores=self.error_score,
                                    train_scores=self.error_score)
                continue
            if len(plan.starts()) > 1:  # n_init > 1: its own held-out split, so a fit of its own
                t0 = time.perf_counter()
                mlp.fit(Xtr, ytr)
                self._score(mlp, None, Xte, yte, Xtr, ytr, time.perf_counter() - t0, out[i], fold)
                continue
            groups.setdefault(plan.key, []).append((i, mlp, plan, y_enc, n_out))
        for members in groups.values():
            t0 = time.perf_counter()
            res, slices = _train([(plan, plan.starts()) for _, _, plan, _, _ in members], Xtr, members[0][3])
            seconds = time.perf_counter() - t0
            plan0 = members[0][2]
            self.engine_calls_.append(dict(fold=fold, n_networks=len(members), sizes=plan0.network.sizes,
                                           optimizer=plan0.training.optimizer, seconds=seconds))
            if self.verbose > 0:
                print(f"[GridSearchMLP] fold {fold}: {len(members)} networks of sizes {plan0.network.sizes} "
                      f"({plan0.training.optimizer}) in one call, {seconds:.2f} s")
            curves = plan0.epoch_curve(res.curves)
            if self._batch_scoring:  # the estimator's own score, for all networks of the call at once
                t0 = time.perf_counter()
                scorer = members[0][1]
                test = scorer._batch_score(plan0.network, res.params, Xte, yte)
                train = scorer._batch_score(plan0.network, res.params, Xtr, ytr) if self.return_train_score \
                    else [None] * len(members)
                per = (time.perf_counter() - t0) / len(members)
                for (i, *_), sl in zip(members, slices):
                    out[i][fold] = dict(fit_time=seconds / len(members), score_time=per,
                                        test_scores=float(test[sl.start]), train_scores=train[sl.start])
                continue
            for (i, mlp, plan, _, n_out), sl in zip(members, slices):
                k = sl.start
                mlp.n_features_in_ = Xtr.shape[1]
                mlp._set_fitted(plan, res.params[k], res.initial_params[k], curves[k], res.diverged_step[k],
                                n_out, Xtr.shape[0])
                self._score(mlp, None, Xte, yte, Xtr, ytr, seconds / len(members), out[i], fold)

    def _score(self, mlp, _, Xte, yte, Xtr, ytr, fit_time, out_i, fold):
        t0 = time.perf_counter()
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            test = self._safe_score(mlp, Xte, yte)
            train = self._safe_score(mlp, Xtr, ytr) if self.return_train_score else None
        out_i[fold] = dict(fit_time=fit_time, score_time=time.perf_counter() - t0, test_scores=test,
                           train_scores=train)

    def _safe_score(self, mlp, X, y):
        try:
            return float(self.scorer_(mlp, X, y))
        except Exception:
            if self.error_score == "raise":
                raise
            return self.error_score

    def fit(self, X, y=None, groups=None):
        """Run fit with all sets of parameters, one engine call per network shape and fold.

        Parameters
        ----------
        X : array_like, (n_samples, n_features)
        y : array_like, (n_samples,) or (n_samples, n_targets)
        groups : array_like, optional
            Group labels for a group-aware ``cv``.

        Returns
        -------
        self
        """
        from sklearn.utils import _safe_indexing
        pre, est, prefix = _split_pipeline(self.estimator)
        if isinstance(self.scoring, (list, tuple, set, dict)):
            raise ValueError("GridSearchMLP takes one metric (a string, a callable or None); got "
                             f"{type(self.scoring).__name__}")
        self.scorer_ = check_scoring(self.estimator, scoring=self.scoring)
        self.multimetric_ = False
        # the estimator's own score (accuracy, R^2) is computed for all networks of a call in one pass
        self._batch_scoring = self.scoring is None or self.scoring == ("accuracy" if is_classifier(est) else "r2")
        candidates = list(ParameterGrid(self.param_grid))
        if not candidates:
            raise ValueError("param_grid has no candidates")
        cv = check_cv(self.cv, y, classifier=is_classifier(self.estimator))
        splits = list(cv.split(X, y, groups))
        self.n_splits_ = len(splits)
        self.engine_calls_ = []
        X_fit = X
        if pre is None:  # validate once; folds are then plain row selections of an array
            from sklearn.utils import check_array
            X = check_array(X, dtype=(np.float64, np.float32))
        y_arr = np.asarray(y)
        out = [[None] * len(splits) for _ in candidates]
        # candidates grouped by their preprocessing settings (a Pipeline's non-final parameters)
        by_pre = {}
        for i, c in enumerate(candidates):
            bad = [k for k in c if pre is None and "__" in k]
            if bad:
                raise ValueError(f"unknown parameter {bad[0]!r} for {type(est).__name__}")
            pre_params = {k: v for k, v in c.items() if not k.startswith(prefix)} if prefix else {}
            mlp_params = {k[len(prefix):]: v for k, v in c.items() if k.startswith(prefix)} if prefix else dict(c)
            by_pre.setdefault(repr(sorted(pre_params.items())), (pre_params, []))[1].append((i, mlp_params))
        cand_mlp = [None] * len(candidates)
        for _, members in by_pre.values():
            for i, mp in members:
                cand_mlp[i] = mp
        for fold, (tr, te) in enumerate(splits):
            Xtr, Xte = _safe_indexing(X, tr), _safe_indexing(X, te)
            ytr, yte = y_arr[tr], y_arr[te]
            for pre_params, members in by_pre.values():
                if pre is not None:
                    steps = clone(pre).set_params(**pre_params)
                    Xtr_p = np.asarray(steps.fit_transform(Xtr, ytr))
                    Xte_p = np.asarray(steps.transform(Xte))
                else:
                    Xtr_p, Xte_p = Xtr, Xte
                self._fold_candidates(est, [i for i, _ in members], cand_mlp, Xtr_p, ytr, Xte_p, yte, fold,
                                      prefix, out)
        flat = [out[i][f] for i in range(len(candidates)) for f in range(len(splits))]
        results = self._format_results(candidates, len(splits), flat)
        self.cv_results_ = results
        if callable(self.refit):
            self.best_index_ = int(self.refit(results))
        else:
            self.best_index_ = int(results["rank_test_score"].argmin())
            self.best_score_ = float(results["mean_test_score"][self.best_index_])
        self.best_params_ = results["params"][self.best_index_]
        if self.refit:
            t0 = time.perf_counter()
            self.best_estimator_ = clone(self.estimator).set_params(**clone(self.best_params_, safe=False))
            self.best_estimator_.fit(X_fit, y)
            self.refit_time_ = time.perf_counter() - t0
            if hasattr(self.best_estimator_, "feature_names_in_"):
                self.feature_names_in_ = self.best_estimator_.feature_names_in_
        return self
