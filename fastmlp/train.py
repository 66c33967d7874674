"""Training entry points: one network, or a batch of N networks of one shape in one engine call."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .engine import BACKENDS, Problem, check_engine_options, get_engine
from .init import init_batch
from .layout import Layout
from .spec import Init, Network, Training, check_dtype


def as_targets(network: Network, y, n_samples, dtype):
    """Float targets ``(n_samples, n_outputs)`` from labels or values, with clear errors."""
    y = np.asarray(y)
    if y.shape[0] != n_samples:
        raise ValueError(f"X has {n_samples} samples but y has {y.shape[0]}")
    K = network.n_outputs
    if network.output == "softmax":
        if y.ndim != 1:
            raise ValueError(f"softmax output needs integer class labels of shape (n_samples,), got {y.shape}")
        if not np.all(np.isfinite(y)) or np.any(y != np.round(y)) or y.min() < 0 or y.max() >= K:
            bad = y[(~np.isfinite(y)) | (y != np.round(y)) | (y < 0) | (y >= K)][0]
            raise ValueError(f"class labels must be integers in [0, {K}), got {bad.item()!r}")
        T = np.zeros((n_samples, K), dtype=dtype)
        T[np.arange(n_samples), y.astype(np.int64)] = 1
        return T
    T = y.reshape(n_samples, -1).astype(dtype)
    if T.shape[1] != K:
        raise ValueError(f"the network has {K} outputs but y has {T.shape[1]} columns")
    if not np.all(np.isfinite(T)):
        raise ValueError("y contains NaN or infinite values")
    if network.output == "sigmoid" and np.any((T != 0) & (T != 1)):
        raise ValueError(f"a sigmoid output needs 0/1 targets, got {float(T[(T != 0) & (T != 1)][0])!r}")
    return T


def check_X(network: Network, X, dtype):
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
    if X.shape[1] != network.n_inputs:
        raise ValueError(f"X has {X.shape[1]} features but the network has n_inputs={network.n_inputs}")
    if X.shape[0] == 0:
        raise ValueError("X has no samples")
    X = X.astype(dtype)
    if not np.all(np.isfinite(X)):
        raise ValueError("X contains NaN or infinite values")
    return X


def _per_network(name, value, default, N, constraint):
    """``value`` (a scalar or one per network; None: ``default``) as float64 ``(N,)``, each checked."""
    v = np.full(N, default if value is None else 0.0, dtype=np.float64)
    if value is not None:
        arr = np.asarray(value, dtype=np.float64)
        if arr.ndim > 1 or (arr.ndim == 1 and arr.size != N):
            raise ValueError(f"{name} must be a scalar or have one value per network ({N}), got shape {arr.shape}")
        v[:] = arr
    for x in v.tolist():
        constraint.check(name, x)
    return v


@dataclass
class BatchResult:
    """What training N networks produced.

    Attributes
    ----------
    params : ndarray (N, P)
        Final parameters (for a diverged network: those before the step that diverged).
    initial_params : ndarray (N, P)
    curves : ndarray (N, n_records)
        Loss of the batch used at every ``record_every``-th step, before its update; NaN after divergence.
    diverged_step : ndarray (N,) of int
        The step at which the network diverged, -1 if it did not.
    grad_norms : ndarray (N, n_records, n_layers) or None
        Frobenius norm of each layer's weight gradient at the recorded steps.
    """
    network: Network
    training: Training
    params: np.ndarray
    initial_params: np.ndarray
    curves: np.ndarray
    diverged_step: np.ndarray
    grad_norms: np.ndarray | None = None
    seeds: np.ndarray = field(default=None)

    def __len__(self):
        return self.params.shape[0]

    @property
    def layout(self):
        return Layout(self.network.sizes)

    @property
    def status(self):
        """``"ok"`` or ``"diverged"`` per network."""
        return np.where(self.diverged_step >= 0, "diverged", "ok")

    def layers(self, i=0, initial=False):
        """``[(W, b), ...]`` of network ``i`` (``W`` is ``(fan_out, fan_in)``)."""
        return self.layout.unpack((self.initial_params if initial else self.params)[i])


def train_batch(network: Network, X, y, params, *, training: Training = Training(), lr=None, momentum=None,
                weight_decay=None, dropout=None, seeds=None, backend="numba", track_grad_norms=False,
                engine_options=None):
    """Train N networks of one shape from the given initial parameters, in one engine call.

    Parameters
    ----------
    network : Network
    X : array_like, (n_samples, n_features)
    y : array_like
        0/1 labels for a sigmoid output ((n,) or (n, outputs)), integer labels for softmax, values for identity.
    params : array_like, (N, P)
        Initial parameters; their dtype (float32 or float64) is the working precision.
    training : Training
        Optimiser, steps, batch size; its ``lr``, ``momentum``, ``weight_decay`` and ``dropout`` are defaults.
    lr, momentum, weight_decay, dropout : float or array_like of shape (N,), optional
        Per-network values overriding ``training``'s, so one call trains a grid over them.
    seeds : array_like of int, (N,), optional
        Seeds of the in-training randomness (batch order, dropout); default ``0..N-1``.
    backend : {"numba", "numpy", "cuda"}
    track_grad_norms : bool
    engine_options : dict, optional
        The engine's own settings, which change how it runs, never a result: for ``cuda``, ``path``
        (``"auto"``, ``"block"``, ``"chunk"``, ``"tiled"``), ``tiles``, ``threads_per_block``, ``max_blocks``,
        ``chunk`` (``fastmlp.engine.ENGINE_OPTIONS``). Unset ones come from the environment
        (``fastmlp.config``) or the engine's defaults.

    Returns
    -------
    BatchResult
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    engine_options = check_engine_options(backend, engine_options)
    params = np.asarray(params)
    if params.ndim == 1:
        params = params[None, :]
    dtype = check_dtype(params.dtype) if params.dtype.kind == "f" else check_dtype("float64")
    layout = Layout(network.sizes)
    if params.ndim != 2 or params.shape[1] != layout.n_params:
        raise ValueError(f"params must have shape (N, {layout.n_params}) for sizes {network.sizes}, "
                         f"got {params.shape}")
    params = params.astype(dtype)
    if not np.all(np.isfinite(params)):
        raise ValueError("initial params contain NaN or infinite values")
    N = params.shape[0]
    X = check_X(network, X, dtype)
    T = as_targets(network, y, X.shape[0], dtype)
    tr = training

    # per-network values: Training's own constraints, value by value
    c = Training._parameter_constraints
    lr = _per_network("learning rate", lr, tr.lr, N, c["lr"])
    momentum = _per_network("momentum", momentum, tr.momentum, N, c["momentum"])
    weight_decay = _per_network("weight_decay", weight_decay, tr.weight_decay, N, c["weight_decay"])
    dropout = _per_network("dropout", dropout, tr.dropout, N, c["dropout"])
    if seeds is None:
        seeds = np.arange(N)
    seeds = np.asarray(seeds)
    if seeds.shape != (N,) or seeds.dtype.kind not in "iu" or np.any(seeds < 0):
        raise ValueError(f"seeds must be {N} non-negative integers, got {seeds!r}")
    problem = Problem(
        sizes=network.sizes, activation=network.activation, output=network.output, optimizer=tr.optimizer,
        params=params, X=X, T=T, lr=lr, momentum=momentum, weight_decay=weight_decay, dropout=dropout,
        seeds=seeds.astype(np.uint64), steps=tr.steps, batch_size=tr.batch_size or 0,
        record_every=tr.record_every, beta2=tr.beta2, eps=tr.eps, leaky_slope=network.leaky_slope,
        track_grad_norms=track_grad_norms, engine_options=engine_options)
    final, curves, diverged, gnorms = get_engine(backend).train(problem)
    return BatchResult(network=network, training=tr, params=final, initial_params=params, curves=curves,
                       diverged_step=diverged, grad_norms=gnorms if track_grad_norms else None, seeds=seeds)


def train(network: Network, X, y, *, init: Init = Init(), seed=0, training: Training = Training(),
          dtype="float64", backend="numba", params=None, track_grad_norms=False, engine_options=None):
    """Initialise and train one network.

    Parameters
    ----------
    network : Network
    X, y : array_like
        Data, as in ``train_batch``.
    init : Init
        Initialisation scheme (ignored if ``params`` is given); a data-driven one (``lsuv``) sees ``X``.
    seed : int
        Seeds both the initialisation and the in-training randomness.
    training : Training
    dtype : {"float32", "float64"}
    backend : {"numba", "numpy", "cuda"}
    params : array_like (P,), optional
        Initial parameters to use instead of ``init``.
    track_grad_norms : bool
    engine_options : dict, optional
        As in ``train_batch``.

    Returns
    -------
    BatchResult
        A batch of one: ``result.layers(0)``, ``result.curves[0]``, ``result.status[0]``.

    Examples
    --------
    >>> import fastmlp
    >>> data = fastmlp.data.spirals()
    >>> net = fastmlp.Network(n_inputs=2, hidden=(16,), activation="tanh")
    >>> res = fastmlp.train(net, data.X, data.y, init=fastmlp.Init("xavier_normal"), seed=1,
    ...                     training=fastmlp.Training(lr=0.5, steps=500))
    >>> res.status[0]
    'ok'
    """
    dtype = check_dtype(dtype)
    p0 = init_batch(network, init, [seed], dtype, X=X) if params is None else np.asarray(params, dtype)[None, :]
    return train_batch(network, X, y, p0, training=training, seeds=[seed], backend=backend,
                       track_grad_norms=track_grad_norms, engine_options=engine_options)
