"""Initialisation schemes and gains, each network drawn from its own seeded generator."""
from __future__ import annotations

import math

import numpy as np

from .layout import Layout
from .spec import Init, Network, check_dtype

# Stream tag mixed into every initialisation seed, so that init draws never collide with other uses of a seed.
_INIT_STREAM = 0x1417


def default_gain(scheme):
    """The gain a scheme uses when none is given: sqrt(2) for He (ReLU), 1 otherwise."""
    return math.sqrt(2.0) if scheme.startswith("he_") else 1.0


def weight_std(scheme, fan_in, fan_out, gain=None, std=1.0, limit=1.0):
    """Standard deviation of one weight under ``scheme`` at scale 1 (0 for zeros, NaN for constant)."""
    g = default_gain(scheme) if gain is None else gain
    return {
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
    else:  # orthogonal, as in Saxe et al. and torch.nn.init.orthogonal_
        a = rng.normal(0.0, 1.0, (max(shape), min(shape)))
        q, r = np.linalg.qr(a)
        q *= np.sign(np.diag(r))
        W = (q if fan_out >= fan_in else q.T) * g
    return W * init.scale


def _bias(init, fan_out, rng):
    if init.bias == "zeros":
        return np.zeros(fan_out)
    if init.bias == "constant":
        return np.full(fan_out, init.bias_value)
    return rng.normal(0.0, init.bias_std, fan_out)


def init_params(network: Network, init: Init = Init(), seed: int = 0, dtype="float64"):
    """The initial parameters of one network as a flat vector.

    Parameters
    ----------
    network : Network
    init : Init
    seed : int
        Non-negative; the network's start depends on this seed alone, drawn in float64 and then rounded to
        ``dtype`` (so float32 and float64 starts agree to rounding).
    dtype : str or dtype

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
    return Layout(sizes).pack(layers, dtype)


def init_batch(network: Network, inits, seeds, dtype="float64"):
    """Initial parameters of N networks, ``(N, P)``: one ``Init`` (or a list of N) and N seeds."""
    seeds = np.atleast_1d(np.asarray(seeds))
    if isinstance(inits, Init):
        inits = [inits] * len(seeds)
    if len(inits) != len(seeds):
        raise ValueError(f"got {len(inits)} inits for {len(seeds)} seeds")
    return np.stack([init_params(network, i, int(s), dtype) for i, s in zip(inits, seeds)])
