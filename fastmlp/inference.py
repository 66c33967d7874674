"""Predictions of trained networks for plain NumPy users: logits, or the output unit's probabilities/values."""
from __future__ import annotations

import numpy as np

from .evaluate import forward_batch
from .layout import Layout
from .spec import Network

OUTPUT_KINDS = ("proba", "logits")


def _sigmoid(z):
    # the engines' stable form: 0.5 + 0.5 tanh(z / 2)
    return 0.5 + 0.5 * np.tanh(0.5 * z)


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def predict(network: Network, params, X, output="proba"):
    """Outputs of one network, or of N networks of one shape, on ``X``.

    Parameters
    ----------
    network : Network
    params : array_like, (P,) or (N, P)
        Flat parameters (see ``Layout``); their dtype (float32 or float64) is the working precision.
    X : array_like, (n_samples, n_features)
    output : {"proba", "logits"}
        ``"logits"``: the last layer's pre-activations. ``"proba"``: the output unit applied to them:
        probabilities for a sigmoid (one per output) or softmax output, the values themselves for identity.

    Returns
    -------
    ndarray
        ``(n_samples, n_outputs)`` for ``(P,)`` params, ``(N, n_samples, n_outputs)`` for ``(N, P)``.

    Raises
    ------
    ValueError
        For a wrong ``output``, params whose length does not fit the network, or X of the wrong shape.

    Examples
    --------
    >>> import fastmlp
    >>> data = fastmlp.data.moons()
    >>> net = fastmlp.Network(n_inputs=2, hidden=(8,))
    >>> res = fastmlp.train(net, data.X, data.y, training=fastmlp.Training(lr=0.5, steps=200))
    >>> p = fastmlp.predict(net, res.params[0], data.X)     # (n_samples, 1) probabilities of class 1
    """
    if output not in OUTPUT_KINDS:
        raise ValueError(f"unknown output {output!r}; choose one of: {', '.join(OUTPUT_KINDS)}")
    params = np.asarray(params)
    if params.dtype.kind != "f":
        params = params.astype(np.float64)
    if params.dtype not in (np.float32, np.float64):
        raise ValueError(f"params must be float32 or float64, got {params.dtype}")
    single = params.ndim == 1
    P = Layout(network.sizes).n_params
    if params.ndim not in (1, 2) or params.shape[-1] != P:
        raise ValueError(f"params must have shape (P,) or (N, P) with P={P} for sizes {network.sizes}, "
                         f"got {params.shape}")
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != network.n_inputs:
        raise ValueError(f"X must be (n_samples, {network.n_inputs}), got shape {X.shape}")
    X = X.astype(params.dtype, copy=False)
    params2 = np.atleast_2d(params)
    out = np.empty((params2.shape[0], X.shape[0], network.n_outputs), dtype=params.dtype)
    for start, _, z in forward_batch(network, params2, X):
        out[start:start + z.shape[0]] = z
    if output == "proba":
        with np.errstate(over="ignore", invalid="ignore"):
            if network.output == "sigmoid":
                out = _sigmoid(out)
            elif network.output == "softmax":
                out = _softmax(out)
    return out[0] if single else out
