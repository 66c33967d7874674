"""NumPy peer: the workloads written in plain NumPy.

Variants
--------
``"loop"``
    One network at a time, vectorised over samples: the reference engine's math without its diagnostics
    (no loss curve, no divergence checks, no gradient norms, no weight-decay/dropout branches), with in-place
    bias, activation and backpropagation updates (the same operations, so the same rounding).
``"batched"``
    All N networks at once: parameters as stacked ``(N, fan_out, fan_in)`` weights, every layer one
    ``np.matmul`` over the stack, ``(N, B, fan_in) @ (N, fan_in, fan_out)`` (the full-batch first layer
    broadcasts the shared ``X (B, fan_in)`` against the stack). Minibatches differ per network, so each step
    gathers ``X[idx]`` with ``idx`` of shape ``(N, B)``: network ``n`` keeps fastmlp's batch order for its seed.
"""
from __future__ import annotations

import numpy as np

from . import check_supported, network_indices, step_indices, targets
from ..engine.reference import activate, activation_grad
from ..layout import Layout

VARIANTS = ("loop", "batched")


def available():
    return True, "numpy is a core dependency"


def _activate_(z, activation, slope):
    """The hidden activation, in place where NumPy allows (same operations, same rounding as the reference)."""
    if activation == "tanh":
        return np.tanh(z, out=z)
    if activation == "sigmoid":
        z *= 0.5
        np.tanh(z, out=z)
        z *= 0.5
        z += 0.5
        return z
    if activation == "relu":
        return np.maximum(z, 0, out=z)
    return activate(z, activation, slope)


def _backprop_(da, h, activation, slope):
    """``da * activation'(h)`` into ``da``, the derivative taken from the activation value ``h``."""
    if activation == "tanh":
        g = h * h
        np.subtract(1, g, out=g)
        da *= g
        return da
    da *= activation_grad(h, activation, slope)
    return da


def _output_delta(z, t, output):
    """d loss / d logits for a batch of logits ``z (..., B, K)``, as the reference engine computes it."""
    B, K = z.shape[-2], z.shape[-1]
    dt = z.dtype.type
    if output == "sigmoid":
        return (0.5 + 0.5 * np.tanh(0.5 * z) - t) * dt(1.0 / (B * K))
    if output == "identity":
        return 2 * (z - t) * dt(1.0 / (B * K))
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True) - t) * dt(1.0 / B)


def _train_loop(workload):
    net, tr = workload.network, workload.training
    act, slope = net.activation, net.leaky_slope
    params = workload.params.copy()
    dt = params.dtype.type
    lr = dt(tr.lr)
    X = workload.X
    T = targets(workload)
    layout = Layout(net.sizes)
    L = layout.n_layers
    for n in range(params.shape[0]):
        layers = layout.unpack(params[n])          # views: in-place updates write into params[n]
        idx = network_indices(workload, n)
        for t in range(tr.steps):
            if idx is None:
                xb, tb = X, T
            else:
                xb, tb = X[idx[t]], T[idx[t]]
            ins, a = [xb], xb
            for l, (W, b) in enumerate(layers):
                z = a @ W.T
                z += b
                if l < L - 1:
                    a = _activate_(z, act, slope)
                    ins.append(a)
            delta = _output_delta(z, tb, net.output)
            for l in range(L - 1, -1, -1):
                W, b = layers[l]
                gW = delta.T @ ins[l]
                gb = delta.sum(axis=0)
                if l > 0:
                    delta = _backprop_(delta @ W, ins[l], act, slope)
                W -= lr * gW
                b -= lr * gb
    return params


def _train_batched(workload):
    net, tr = workload.network, workload.training
    act, slope = net.activation, net.leaky_slope
    dt = workload.params.dtype.type
    lr = dt(tr.lr)
    X = workload.X
    T = targets(workload)
    # W (N, out, in), b (N, out): one contiguous stack per layer, packed back to (N, P) at the end
    layers = [(np.ascontiguousarray(W), np.ascontiguousarray(b)) for W, b in Layout(net.sizes).unpack(workload.params)]
    L = len(layers)
    idx = step_indices(workload)
    for t in range(tr.steps):
        if idx is None:
            xb, tb = X, T                         # (B, in): broadcast against the stack of networks
        else:
            xb, tb = X[idx[t]], T[idx[t]]         # (N, B, in)
        ins, a = [xb], xb
        for l, (W, b) in enumerate(layers):
            z = np.matmul(a, W.transpose(0, 2, 1))
            z += b[:, None, :]
            if l < L - 1:
                a = _activate_(z, act, slope)
                ins.append(a)
        delta = _output_delta(z, tb, net.output)
        for l in range(L - 1, -1, -1):
            W, b = layers[l]
            gW = np.matmul(delta.transpose(0, 2, 1), ins[l])   # (N, out, B) @ (N or -, B, in)
            gb = delta.sum(axis=1)
            if l > 0:
                delta = _backprop_(np.matmul(delta, W), ins[l], act, slope)
            W -= lr * gW
            b -= lr * gb
    N = workload.n_networks
    return np.concatenate([t.reshape(N, -1) for W, b in layers for t in (W, b)], axis=1)


def train(workload, variant="batched"):
    """Train all networks of ``workload``; returns the final parameters ``(N, P)``."""
    check_supported(workload)
    if variant == "loop":
        return _train_loop(workload)
    if variant == "batched":
        return _train_batched(workload)
    raise ValueError(f"unknown numpy variant {variant!r}; choose one of: {', '.join(VARIANTS)}")
