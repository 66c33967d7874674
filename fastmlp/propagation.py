"""Signal propagation measured on random networks, beside the mean-field theory of :mod:`fastmlp.theory`.

A deep, wide network is initialised with ``Init("meanfield", sigma_w2, sigma_b2)`` for several seeds and fed
one input whose mean squared feature is ``q0``. The engine trains it for a single step with
``track_grad_norms``: the weight-gradient norms it records at step 0 are those of the initial parameters (the
update comes after). The engine does not report pre-activations, so ``q^l``, the mean squared pre-activation of
hidden layer ``l``, is computed with a NumPy forward pass on the engine's initial parameters.

With one sample, ``||dL/dW^l||^2 = ||delta^l||^2 ||phi(h^{l-1})||^2`` and the theory gives
``||delta^l||^2 = sigma_w2 E[phi'(sqrt(q^l) z)^2] ||delta^{l+1}||^2``: when the input starts at the fixed point
(``q0`` chosen so that ``q^1 = q*``, the default), the squared norms shrink towards the input by ``chi_1`` per
layer. The measured per-layer factor is the mean over layers of ``log ||delta^l||^2 - log ||delta^{l+1}||^2``
(``||delta^l||^2`` is the engine's gradient norm over the forward pass's ``||phi(h^{l-1})||^2``) plus half its
variance over layers: at finite width the factor fluctuates, and ``E[log F] = log E[F] - Var(log F) / 2`` to
second order, so the mean of the logs alone would sit below ``log chi_1`` by about ``1 / width``.
"""
from __future__ import annotations

import math

import numpy as np

from . import theory
from .engine.reference import activate
from .init import init_batch
from .layout import Layout
from .spec import Init, Network, Training
from .train import train_batch

ENGINE_ACTIVATIONS = ("tanh", "relu", "linear", "sigmoid")
_INPUT_SEED = 20161215


def default_q0(activation, sigma_w2, sigma_b2):
    """The input mean square that puts ``q^1`` at ``q*`` (1 where ``q*`` is 0, undefined, or out of reach)."""
    q = theory.q_star(activation, sigma_w2, sigma_b2)
    if not q or sigma_w2 <= 0 or not math.isfinite(q):
        return 1.0
    return max((q - sigma_b2) / sigma_w2, 0.0) or 1.0


def _input(width, q0):
    x = np.random.default_rng(_INPUT_SEED).normal(size=(1, width))
    return x * math.sqrt(q0 / np.mean(x * x))


def predicted_log_factors(activation, sigma_w2, q):
    """Theory's ``log(||delta^l||^2 / ||delta^{l+1}||^2) = log(sigma_w2 E[phi'(sqrt(q^l) z)^2])`` for every
    hidden layer ``l`` of mean square ``q^l``."""
    out = []
    for v in np.asarray(q, dtype=float):
        f = sigma_w2 * theory.moments(activation, v)["d2"] if math.isfinite(v) else float("nan")
        out.append(math.log(f) if f > 0 else float("nan"))
    return np.array(out)


def _mean_se(values):
    v = np.asarray(values, dtype=float)
    if not np.all(np.isfinite(v)):
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else float("nan")


def forward_stats(network, params, X):
    """NumPy forward pass of N networks: ``(q, a2)`` with ``q[i, l]`` the mean squared pre-activation of hidden
    layer ``l + 1`` and ``a2[i, l]`` the squared norm (summed over samples) of the input of weight layer ``l + 1``
    (``X`` itself for the first)."""
    params = np.atleast_2d(params)
    layout = Layout(network.sizes)
    q = np.empty((params.shape[0], len(network.hidden)))
    a2 = np.empty((params.shape[0], len(network.hidden) + 1))
    with np.errstate(all="ignore"):
        for i in range(params.shape[0]):
            a = np.asarray(X, dtype=np.float64)
            for l, (W, b) in enumerate(layout.unpack(params[i].astype(np.float64))):
                a2[i, l] = float(np.sum(a * a))
                if l == len(network.hidden):
                    break
                h = a @ W.T + b
                q[i, l] = float(np.mean(h * h))
                a = activate(h, network.activation, network.leaky_slope)
    return q, a2


def measure(activation, sigma_w2, sigma_b2, depth=30, width=256, seeds=4, q0=None, backend="numba",
            dtype="float64"):
    """Measure ``chi_1`` and the length map on ``seeds`` random networks of ``depth`` hidden layers of ``width``.

    Parameters
    ----------
    activation : {"tanh", "relu", "linear", "sigmoid"}
    sigma_w2, sigma_b2 : float
    depth : int
        Hidden layers, >= 3.
    width : int
        Units per hidden layer (and input features).
    seeds : int
        Networks (seeds ``0 .. seeds-1``), >= 2 for a standard error.
    q0 : float, optional
        Mean squared input feature; default :func:`default_q0` (the input at the fixed point).
    backend : str
        Engine computing the gradient norms.
    dtype : str

    Returns
    -------
    dict
        ``q0``, ``depth``, ``width``, ``seeds``, ``backend``; ``log_chi_1`` (theory: the mean of the predicted
        per-layer log factors, ``log chi_1`` when ``q0`` is the default), ``log_chi_1_measured`` and
        ``log_chi_1_se`` (mean and standard error over seeds of the measured log factor), ``chi_1_measured``,
        ``chi_1_se``; ``q_theory``, ``q_measured``, ``q_se`` (per hidden layer); ``q_rel_dev`` and
        ``q_rel_dev_se`` (per seed, the mean over layers of ``q_measured / q_theory - 1``; mean and standard
        error); ``log_grad_norm2`` (per weight layer, mean over seeds of ``log ||dL/dW^l||^2``).
    """
    if activation not in ENGINE_ACTIVATIONS:
        raise ValueError(f"measuring needs an activation the engine has ({', '.join(ENGINE_ACTIVATIONS)}), "
                         f"got {activation!r}")
    depth, width, seeds = int(depth), int(width), int(seeds)
    if depth < 3:
        raise ValueError(f"depth must be >= 3 to fit a slope over the hidden-to-hidden layers, got {depth}")
    if seeds < 2:
        raise ValueError(f"seeds must be >= 2 for a standard error, got {seeds}")
    q0 = default_q0(activation, sigma_w2, sigma_b2) if q0 is None else float(q0)
    if not (math.isfinite(q0) and q0 > 0):
        raise ValueError(f"q0 must be a positive number, got {q0!r}")
    net = Network(width, (width,) * depth, 1, activation, "identity")
    X = _input(width, q0)
    p0 = init_batch(net, Init("meanfield", sigma_w2=sigma_w2, sigma_b2=sigma_b2), list(range(seeds)), dtype)
    res = train_batch(net, X, np.zeros(1), p0, training=Training(lr=1e-12, steps=1, record_every=1),
                      backend=backend, track_grad_norms=True)
    q_th = theory.q_sequence(activation, q0, sigma_w2, sigma_b2, depth)
    q_hat, a2 = forward_stats(net, res.initial_params, X)
    with np.errstate(all="ignore"):
        g2 = np.log(res.grad_norms[:, 0, :].astype(np.float64) ** 2)     # (seeds, depth + 1)
        log_delta = g2 - np.log(a2)                                        # log ||delta^l||^2, l = 1 .. depth + 1
        log_f = log_delta[:, :depth - 1] - log_delta[:, 1:depth]          # hidden l = 1 .. depth - 1
        per_seed = log_f.mean(axis=1) + log_f.var(axis=1, ddof=1) / 2.0
        dev = np.mean(q_hat / q_th - 1.0, axis=1)
        log_chi, log_chi_se = _mean_se(per_seed)
        predicted = predicted_log_factors(activation, sigma_w2, q_th[:depth - 1])
        q_mean = q_hat.mean(axis=0)
        q_se = q_hat.std(axis=0, ddof=1) / math.sqrt(seeds)
        dev_mean, dev_se = _mean_se(dev)
    chi = math.exp(log_chi) if math.isfinite(log_chi) else float("nan")
    g_mean = g2.mean(axis=0)
    return {
        "q0": q0, "depth": depth, "width": width, "seeds": seeds, "backend": backend,
        "log_chi_1": float(predicted.mean()) if np.all(np.isfinite(predicted)) else None,
        "log_chi_1_measured": log_chi, "log_chi_1_se": log_chi_se,
        "chi_1_measured": chi, "chi_1_se": chi * log_chi_se,
        "q_theory": q_th.tolist(), "q_measured": q_mean.tolist(), "q_se": q_se.tolist(),
        "q_rel_dev": dev_mean, "q_rel_dev_se": dev_se,
        "log_grad_norm2": g_mean.tolist(),
    }
