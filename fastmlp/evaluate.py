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


def loss_and_accuracy(network, params, X, T):
    """Mean loss (as trained) and accuracy of each of N networks on ``X`` with float targets ``T``.

    Accuracy is the fraction of samples classified right (sigmoid: logit > 0 per output; softmax: argmax);
    NaN for an identity (regression) output. Non-finite parameters give NaN loss and accuracy.
    """
    params = np.atleast_2d(params)
    N = params.shape[0]
    loss = np.full(N, np.nan)
    acc = np.full(N, np.nan)
    T = np.asarray(T, dtype=params.dtype)
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
