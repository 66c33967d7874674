"""Symmetry and health measures of trained networks.

For one network: ``diagnose``; for a whole ``BatchResult``: ``summarize``, which returns one array per measure
(the form the results database stores).
"""
from __future__ import annotations

import numpy as np

from .evaluate import forward_batch
from .layout import Layout


def distinct_units(W, b, rtol=0.0):
    """Number of distinct units of a layer: units whose incoming weights and bias differ.

    Parameters
    ----------
    W : ndarray (fan_out, fan_in)
    b : ndarray (fan_out,)
    rtol : float
        0 (default) counts units that differ in any bit; otherwise two units are the same when
        ``max|u - v| <= rtol * max(|u|, |v|, tiny)`` (units are grouped greedily in order).
    """
    U = np.concatenate([np.asarray(W), np.asarray(b)[:, None]], axis=1)
    if rtol == 0:
        return int(np.unique(U, axis=0).shape[0])
    # each unit against all representatives so far at once (a loop over pairs made deep grids spend most of
    # their time here: bench/NOTES.md change 45); the same comparisons, so the same count
    reps = np.empty_like(U)
    rep_max = np.empty(U.shape[0], dtype=U.dtype)
    tiny = np.finfo(float).tiny
    k = 0
    for u in U:
        u_max = np.max(np.abs(u))
        if k:
            scale = np.maximum(np.maximum(rep_max[:k], u_max), tiny)
            if np.any(np.max(np.abs(reps[:k] - u), axis=1) <= rtol * scale):
                continue
        reps[k] = u
        rep_max[k] = u_max
        k += 1
    return k


def max_cosine(W):
    """Largest cosine similarity between two units' incoming weight vectors (1 for a layer of copies).

    A layer of one unit, or with zero weight vectors only, gives NaN (no pair to compare).
    """
    W = np.asarray(W, dtype=np.float64)
    if W.shape[0] < 2:
        return float("nan")
    norms = np.linalg.norm(W, axis=1)
    ok = norms > 0
    if ok.sum() < 2:
        return float("nan")
    V = W[ok] / norms[ok, None]
    C = V @ V.T
    np.fill_diagonal(C, -np.inf)
    return float(min(C.max(), 1.0))


def effective_rank(H):
    """Effective rank (Roy & Vetterli) of activations ``H`` (samples, units): exp of the entropy of the
    normalised singular values. 1 for copies of one unit, up to ``units`` for independent ones; 0 if H = 0."""
    H = np.asarray(H, dtype=np.float64)
    if not np.all(np.isfinite(H)):
        return float("nan")
    Hc = H - H.mean(axis=0)
    # singular values from the small units x units Gram matrix: much cheaper than an SVD of H
    ev = np.linalg.eigvalsh(Hc.T @ Hc)
    s = np.sqrt(np.clip(ev, 0, None))
    total = s.sum()
    if total <= 0:
        return 0.0
    p = s[s > 0] / total
    return float(np.exp(-np.sum(p * np.log(p))))


def saturated_fraction(H, activation, threshold=0.99):
    """Share of a layer's activations (units x samples) in the flat part of tanh/sigmoid, where the gradient
    nearly vanishes: |tanh| > 0.99, sigmoid outside [0.01, 0.99]. NaN for other activations."""
    H = np.asarray(H)
    if activation == "tanh":
        flat = np.abs(H) > threshold
    elif activation == "sigmoid":
        flat = (H > threshold) | (H < 1 - threshold)
    else:
        return float("nan")
    return float(np.mean(flat))


def dead_fraction(H, activation):
    """Fraction of ReLU units that output 0 on every sample (NaN for other activations)."""
    if activation not in ("relu", "leaky_relu"):
        return float("nan")
    return float(np.mean(np.all(np.asarray(H) <= 0, axis=0)))


def diagnose(network, params, X, initial_params=None, grad_norms=None, rtol=1e-6):
    """All diagnostics of one network.

    Parameters
    ----------
    network : Network
    params : ndarray (P,)
    X : ndarray (n_samples, n_features)
    initial_params : ndarray (P,), optional
        Enables ``weights_moved`` and ``distance_moved``.
    grad_norms : ndarray (n_records, n_layers), optional
        Recorded per-layer gradient norms; enables ``grad_norms`` and ``grad_ratio``.

    Returns
    -------
    dict
        ``distinct_units`` and ``distinct_units_rtol`` (per hidden layer), ``max_cosine``, ``effective_rank``,
        ``saturated``, ``dead`` (per hidden layer), and when available ``weights_moved`` (per weight matrix:
        did any entry change), ``distance_moved`` (per layer, Frobenius norm of the change of W),
        ``grad_norms`` (last recorded, per layer) and ``grad_ratio`` (first layer / last layer).
    """
    layout = Layout(network.sizes)
    layers = layout.unpack(params)
    _, hidden, _ = next(forward_batch(network, params, X))
    hidden = [h[0] for h in hidden]
    hl = layers[:-1]
    out = {
        "distinct_units": [distinct_units(W, b) for W, b in hl],
        "distinct_units_rtol": [distinct_units(W, b, rtol) for W, b in hl],
        "max_cosine": [max_cosine(W) for W, _ in hl],
        "effective_rank": [effective_rank(h) for h in hidden],
        "saturated": [saturated_fraction(h, network.activation) for h in hidden],
        "dead": [dead_fraction(h, network.activation) for h in hidden],
    }
    if initial_params is not None:
        start = layout.unpack(initial_params)
        out["weights_moved"] = [bool(np.any(W != W0)) for (W, _), (W0, _) in zip(layers, start)]
        out["distance_moved"] = [float(np.linalg.norm(W.astype(np.float64) - W0)) for (W, _), (W0, _)
                                 in zip(layers, start)]
    if grad_norms is not None:
        g = np.asarray(grad_norms, dtype=np.float64)
        finite = np.all(np.isfinite(g), axis=1)
        last = g[np.nonzero(finite)[0][-1]] if finite.any() else np.full(g.shape[1], np.nan)
        out["grad_norms"] = [float(x) for x in last]
        out["grad_ratio"] = float(last[0] / last[-1]) if last[-1] > 0 else float("nan")
    return out


def summarize(result, X):
    """Diagnostics of every network of a ``BatchResult``: a list of ``diagnose`` dicts."""
    gn = result.grad_norms
    return [diagnose(result.network, result.params[i], X, result.initial_params[i],
                     None if gn is None else gn[i]) for i in range(len(result))]
