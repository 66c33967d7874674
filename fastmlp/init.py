"""Initialisation schemes and gains, each network drawn from its own seeded generator."""
from __future__ import annotations

import math

import numpy as np

from .engine.reference import activate
from .layout import Layout
from .spec import DATA_SCHEMES, Init, Network, check_dtype

# Stream tag mixed into every initialisation seed, so that init draws never collide with other uses of a seed.
_INIT_STREAM = 0x1417
# Stream of LSUV's minibatch draw (separate, so the orthogonal start is the same as scheme "orthogonal"'s).
_LSUV_STREAM = 0x15B5


def default_gain(scheme):
    """The gain a scheme uses when none is given: sqrt(2) for He (ReLU), 1 otherwise."""
    return math.sqrt(2.0) if scheme.startswith("he_") else 1.0


def weight_std(scheme, fan_in, fan_out, gain=None, std=1.0, limit=1.0, sigma_w2=1.0):
    """Standard deviation of one weight under ``scheme`` at scale 1 (0 for zeros, NaN for constant and the
    data-driven lsuv)."""
    g = default_gain(scheme) if gain is None else gain
    return {
        "meanfield": math.sqrt(sigma_w2 / fan_in), "lsuv": float("nan"),
        "zeros": 0.0, "constant": float("nan"),
        "uniform": limit / math.sqrt(3.0), "normal": std,
        "xavier_uniform": g * math.sqrt(2.0 / (fan_in + fan_out)),
        "xavier_normal": g * math.sqrt(2.0 / (fan_in + fan_out)),
        "he_uniform": g / math.sqrt(fan_in), "he_normal": g / math.sqrt(fan_in),
        "lecun_uniform": g / math.sqrt(fan_in), "lecun_normal": g / math.sqrt(fan_in),
        "orthogonal": g / math.sqrt(max(fan_in, fan_out)) * math.sqrt(min(fan_in, fan_out) / fan_in),
    }[scheme]


def _weights(init, fan_in, fan_out, rng):
    s, shape = init.scheme, (fan_out, fan_in)
    g = default_gain(s) if init.gain is None else init.gain
    if s == "zeros":
        W = np.zeros(shape)
    elif s == "constant":
        W = np.full(shape, init.value)
    elif s == "uniform":
        W = rng.uniform(-init.limit, init.limit, shape)
    elif s == "normal":
        W = rng.normal(0.0, init.std, shape)
    elif s.endswith("_uniform"):
        # U(-a, a) has std a / sqrt(3)
        W = rng.uniform(-1.0, 1.0, shape) * (math.sqrt(3.0) * weight_std(s, fan_in, fan_out, g))
    elif s.endswith("_normal"):
        W = rng.normal(0.0, weight_std(s, fan_in, fan_out, g), shape)
    elif s == "meanfield":
        W = rng.normal(0.0, weight_std(s, fan_in, fan_out, sigma_w2=init.sigma_w2), shape)
    else:  # orthogonal (and lsuv's start), as in Saxe et al. and torch.nn.init.orthogonal_
        a = rng.normal(0.0, 1.0, (max(shape), min(shape)))
        q, r = np.linalg.qr(a)
        q *= np.sign(np.diag(r))
        W = (q if fan_out >= fan_in else q.T) * g
    return W * init.scale


def _bias(init, fan_out, rng):
    if init.scheme == "meanfield":
        return rng.normal(0.0, math.sqrt(init.sigma_b2), fan_out)
    if init.bias == "zeros":
        return np.zeros(fan_out)
    if init.bias == "constant":
        return np.full(fan_out, init.bias_value)
    return rng.normal(0.0, init.bias_std, fan_out)


def _lsuv_batch(network, X, init, seed):
    if X is None:
        raise ValueError("init scheme 'lsuv' is data-driven: pass the training inputs X (init_params(..., X=X), "
                         "init_batch(..., X=X); fastmlp.train passes them itself)")
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != network.n_inputs or X.shape[0] == 0:
        raise ValueError(f"lsuv needs X of shape (n_samples, {network.n_inputs}), got {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError("lsuv: X contains NaN or infinite values")
    n = X.shape[0]
    if n <= init.lsuv_batch:
        return X
    rows = np.random.default_rng([int(seed), _LSUV_STREAM]).choice(n, size=init.lsuv_batch, replace=False)
    return X[np.sort(rows)]


def lsuv(network, layers, X, init):
    """Layer-sequential unit-variance rescaling (Mishkin & Matas 2015), in place.

    Layer by layer from the input, the weights are divided by the standard deviation of the layer's output
    (pre-activation, over all units and samples of the minibatch ``X``) until its variance is within
    ``init.lsuv_tol`` of 1, at most ``init.lsuv_max_iter`` times; a layer whose output is constant (variance
    0) or not finite is left as it is. Every layer is rescaled, the output layer too, as in the paper.

    Parameters
    ----------
    network : Network
    layers : list of (W, b)
        Float64 arrays, changed in place.
    X : ndarray (n, n_inputs)
    init : Init

    Returns
    -------
    list of float
        The output variance of each layer on ``X`` after rescaling.
    """
    a, variances = X, []
    for l, (W, b) in enumerate(layers):
        for _ in range(init.lsuv_max_iter):
            v = float(np.var(a @ W.T + b))
            if not np.isfinite(v) or v == 0.0 or abs(v - 1.0) < init.lsuv_tol:
                break
            W /= math.sqrt(v)
        h = a @ W.T + b
        variances.append(float(np.var(h)))
        if l < len(layers) - 1:
            a = activate(h, network.activation, network.leaky_slope)
    return variances


def init_params(network: Network, init: Init = Init(), seed: int = 0, dtype="float64", X=None):
    """The initial parameters of one network as a flat vector.

    Parameters
    ----------
    network : Network
    init : Init
    seed : int
        Non-negative; the network's start depends on this seed alone (and, for ``lsuv``, on ``X``), drawn in
        float64 and then rounded to ``dtype`` (so float32 and float64 starts agree to rounding).
    dtype : str or dtype
    X : array_like (n_samples, n_inputs), optional
        The training inputs, needed by the data-driven scheme ``lsuv`` (ignored by the others).

    Returns
    -------
    ndarray of shape (P,)
    """
    dtype = check_dtype(dtype)
    if int(seed) < 0:
        raise ValueError(f"seed must be >= 0, got {seed!r}")
    rng = np.random.default_rng([int(seed), _INIT_STREAM])
    sizes = network.sizes
    layers = [(_weights(init, fi, fo, rng), _bias(init, fo, rng)) for fi, fo in zip(sizes[:-1], sizes[1:])]
    if init.scheme == "lsuv":
        lsuv(network, layers, _lsuv_batch(network, X, init, seed), init)
        if init.scale != 1.0:
            layers = [(W * init.scale, b) for W, b in layers]
    return Layout(sizes).pack(layers, dtype)


def init_batch(network: Network, inits, seeds, dtype="float64", X=None):
    """Initial parameters of N networks, ``(N, P)``: one ``Init`` (or a list of N) and N seeds; ``X`` (the
    training inputs) for the data-driven ``lsuv``."""
    seeds = np.atleast_1d(np.asarray(seeds))
    if isinstance(inits, Init):
        inits = [inits] * len(seeds)
    if len(inits) != len(seeds):
        raise ValueError(f"got {len(inits)} inits for {len(seeds)} seeds")
    if X is not None and any(i.scheme in DATA_SCHEMES for i in inits):
        X = np.asarray(X, dtype=np.float64)
    return np.stack([init_params(network, i, int(s), dtype, X) for i, s in zip(inits, seeds)])
