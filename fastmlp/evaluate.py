"""Loss and accuracy of trained networks on data: one batched NumPy forward pass, networks in chunks."""
from __future__ import annotations

import numpy as np

from .engine.reference import activate, output_loss_and_delta
from .layout import Layout


def forward_batch(network, params, X, chunk=256):
    """Hidden activations and logits of N networks on X.

    Parameters
    ----------
    network : Network
    params : ndarray, (N, P) or (P,)
    X : ndarray, (n_samples, n_features)

    Yields
    ------
    (start, hidden, logits)
        For each chunk of networks: ``hidden`` is a list of ``(n, samples, width)`` arrays, ``logits`` is
        ``(n, samples, outputs)``.
    """
    params = np.atleast_2d(params)
    layout = Layout(network.sizes)
    X = np.asarray(X, dtype=params.dtype)
    for start in range(0, params.shape[0], chunk):
        layers = layout.unpack(params[start:start + chunk])
        a = np.broadcast_to(X, (layers[0][0].shape[0],) + X.shape)
        hidden = []
        with np.errstate(all="ignore"):
            for l, (W, b) in enumerate(layers):
                z = a @ np.swapaxes(W, 1, 2) + b[:, None, :]
                if l == len(layers) - 1:
                    break
                a = activate(z, network.activation, network.leaky_slope)
                hidden.append(a)
        yield start, hidden, z


def targets_for(network, y, n_samples, dtype):
    """Float targets ``(n_samples, n_outputs)`` from ``y`` as :func:`fastmlp.train` takes it.

    ``y`` may be labels or values of shape ``(n,)`` or ``(n, outputs)`` (the same handling as training), or,
    for a softmax output, one-hot rows ``(n, classes)``.
    """
    from .train import as_targets
    y = np.asarray(y)
    if network.output == "softmax" and y.ndim == 2:
        if y.shape != (n_samples, network.n_outputs):
            raise ValueError(f"softmax targets must be labels (n_samples,) or one-hot rows "
                             f"({n_samples}, {network.n_outputs}), got shape {y.shape}")
        return y.astype(dtype)
    return as_targets(network, y, n_samples, dtype)


def loss_and_accuracy(network, params, X, y):
    """Mean loss (as trained) and accuracy of each of N networks on ``X`` with targets ``y``.

    Parameters
    ----------
    network : Network
    params : ndarray, (N, P) or (P,)
    X : array_like, (n_samples, n_features)
    y : array_like
        As :func:`fastmlp.train` takes it: 0/1 labels ``(n,)`` or ``(n, 1)`` for a sigmoid output, integer
        labels ``(n,)`` (or one-hot rows) for softmax, values for identity.

    Returns
    -------
    loss, accuracy : ndarray (N,)
        Accuracy is the fraction of samples classified right (sigmoid: logit > 0 per output; softmax:
        argmax); NaN for an identity (regression) output. Non-finite parameters give NaN loss and accuracy.
    """
    params = np.atleast_2d(params)
    N = params.shape[0]
    loss = np.full(N, np.nan)
    acc = np.full(N, np.nan)
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != network.n_inputs:
        raise ValueError(f"X must have shape (n_samples, {network.n_inputs}), got {X.shape}")
    T = targets_for(network, y, X.shape[0], params.dtype)
    for start, _, z in forward_batch(network, params, X):
        for i in range(z.shape[0]):
            if not np.all(np.isfinite(z[i])):
                continue
            loss[start + i] = float(output_loss_and_delta(z[i], T, network.output)[0])
            if network.output == "sigmoid":
                acc[start + i] = np.mean((z[i] > 0) == (T > 0.5))
            elif network.output == "softmax":
                acc[start + i] = np.mean(np.argmax(z[i], axis=1) == np.argmax(T, axis=1))
    return loss, acc
