"""The NumPy reference engine: the same math as the compiled engines, written to be read.

One network at a time, vectorised over samples (sample-major arrays, ``A`` is ``(batch, width)``). It is the
oracle of every test and the baseline of every benchmark. Conventions shared by every engine:

* loss: sigmoid -> binary cross-entropy and identity -> squared error, both averaged over batch x outputs;
  softmax -> cross-entropy averaged over the batch; always computed from the logits (stable form).
* sigmoid is computed as ``0.5 + 0.5 tanh(z / 2)`` (stable, and one transcendental for the engines to vectorise).
* activation derivatives are taken from the activation values (``1 - h^2``, ``h (1 - h)``, ``h > 0``).
* inverted dropout on hidden layers, mask ``u >= p`` with ``u`` drawn from ``rng`` at (seed, step, layer) and
  counter ``unit * batch + position``; kept units are scaled by ``1 / (1 - p)``.
* weight decay adds ``wd * W`` to the weights' gradient (coupled L2; biases are not decayed).
* a step whose forward pass gives a non-finite logit, or a non-finite loss where the loss is computed (steps
  that record it; every step for squared error, where it is free), marks the network diverged at that step;
  its parameters stay as they were before that step and it trains no further.
* the loss curve holds the data loss of the batch each recorded step used, before that step's update.
"""
from __future__ import annotations

import numpy as np

from .. import rng as _rng


def activate(z, activation, leaky_slope):
    if activation == "tanh":
        return np.tanh(z)
    if activation == "sigmoid":
        return 0.5 + 0.5 * np.tanh(0.5 * z)
    if activation == "relu":
        return np.maximum(z, 0)
    if activation == "leaky_relu":
        return np.where(z > 0, z, z * z.dtype.type(leaky_slope))
    return z


def activation_grad(h, activation, leaky_slope):
    """d activation / d z, from the activation value ``h``."""
    one = h.dtype.type(1)
    if activation == "tanh":
        return one - h * h
    if activation == "sigmoid":
        return h * (one - h)
    if activation == "relu":
        return (h > 0).astype(h.dtype)
    if activation == "leaky_relu":
        return np.where(h > 0, one, h.dtype.type(leaky_slope))
    return np.ones_like(h)


def output_loss_and_delta(z, t, output):
    """Mean loss of a batch of logits ``z`` (batch, outputs) against targets ``t``, and d loss / d z."""
    B, K = z.shape
    dt = z.dtype.type
    # 1/n is rounded once to the dtype and multiplied, as the compiled engines do
    with np.errstate(over="ignore", invalid="ignore"):
        if output == "sigmoid":
            inv = dt(1.0 / (B * K))
            p = 0.5 + 0.5 * np.tanh(0.5 * z)
            loss = np.sum(np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))) * inv
            return loss, (p - t) * inv
        if output == "identity":
            inv = dt(1.0 / (B * K))
            d = z - t
            return np.sum(d * d) * inv, 2 * d * inv
        inv = dt(1.0 / B)
        m = z.max(axis=1, keepdims=True)
        e = np.exp(z - m)
        s = e.sum(axis=1, keepdims=True)
        loss = np.sum(np.log(s) + m - np.sum(t * z, axis=1, keepdims=True)) * inv
        return loss, (e / s - t) * inv


def forward(layers, X, activation, leaky_slope=0.01):
    """Hidden activations and logits of a network ``[(W, b), ...]`` on ``X`` (samples, features)."""
    hs, a = [], X
    for l, (W, b) in enumerate(layers):
        z = a @ W.T + b
        if l == len(layers) - 1:
            return hs, z
        a = activate(z, activation, leaky_slope)
        hs.append(a)


def train_one(*args, **kwargs):
    """Train one network; returns ``(params, curve, diverged_step, grad_norms)``.

    Arguments: ``sizes, activation, output, optimizer, params, X, T`` and the keywords of ``_train_one``.
    ``params`` is the flat vector (see ``layout``), ``X`` is ``(samples, features)``, ``T`` the float targets
    ``(samples, outputs)`` (one-hot for softmax). ``diverged_step`` is -1 for a network that did not diverge.
    """
    # overflow on the way to divergence is expected, and recorded as a status
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return _train_one(*args, **kwargs)


def _train_one(sizes, activation, output, optimizer, params, X, T, *, lr, momentum=0.9, weight_decay=0.0,
               dropout=0.0, seed=0, steps=1000, batch_size=None, record_every=1, beta2=0.999, eps=1e-8,
               leaky_slope=0.01, track_grad_norms=False):
    dt = params.dtype.type
    p = params.copy()
    L = len(sizes) - 1
    S = X.shape[0]
    views = []  # (W, b) views into p, so that updates of the flat vector are updates of the layers
    off = 0
    for l in range(L):
        fi, fo = sizes[l], sizes[l + 1]
        views.append((p[off:off + fo * fi].reshape(fo, fi), p[off + fo * fi:off + fo * fi + fo]))
        off += fo * fi + fo
    is_w = np.zeros(p.size, bool)
    off = 0
    for l in range(L):
        is_w[off:off + sizes[l] * sizes[l + 1]] = True
        off += sizes[l] * sizes[l + 1] + sizes[l + 1]

    lr, mu, wd, b2, ep = dt(lr), dt(momentum), dt(weight_decay), dt(beta2), dt(eps)
    keep_scale = dt(1.0 / (1.0 - dropout))
    v = np.zeros_like(p)
    m2 = np.zeros_like(p)
    n_rec = -(-steps // record_every)
    curve = np.full(n_rec, np.nan, dtype=p.dtype)
    gnorms = np.full((n_rec, L), np.nan, dtype=p.dtype)
    diverged = -1
    full = batch_size is None or batch_size >= S
    perm, perm_epoch = None, -1

    for t in range(steps):
        if full:
            xb, tb = X, T
        else:
            epoch, a, b = _rng.batch_bounds(t, S, batch_size)
            if epoch != perm_epoch:
                perm, perm_epoch = _rng.epoch_permutation_np(seed, epoch, S), epoch
            idx = perm[a:b]
            xb, tb = X[idx], T[idx]
        Bt = xb.shape[0]

        # forward
        ins, hs, masks = [xb], [], []
        a_in = xb
        for l in range(L):
            W, b = views[l]
            z = a_in @ W.T + b
            if l == L - 1:
                break
            h = activate(z, activation, leaky_slope)
            hs.append(h)
            if dropout > 0:
                key = _rng.stream_key_np(seed, _rng.dropout_stream_np(t, l))
                u = _rng.uniform_np(key, np.arange(sizes[l + 1] * Bt)).reshape(sizes[l + 1], Bt).T
                mask = np.where(u >= dropout, keep_scale, dt(0))
                masks.append(mask)
                a_in = h * mask
            else:
                a_in = h
            ins.append(a_in)
        loss, delta = output_loss_and_delta(z, tb, output)
        rec = t % record_every == 0
        loss_checked = rec or output == "identity"
        if not np.all(np.isfinite(z)) or (loss_checked and not np.isfinite(loss)):
            diverged = t
            break
        if rec:
            curve[t // record_every] = loss

        # backward
        g = np.empty_like(p)
        gv = []
        for l in range(L - 1, -1, -1):
            W, _ = views[l]
            gW = delta.T @ ins[l]
            gb = delta.sum(axis=0)
            gv.append((gW, gb))
            if rec and track_grad_norms:
                gnorms[t // record_every, l] = np.sqrt(np.sum(gW * gW))
            if l > 0:
                da = delta @ W
                if dropout > 0:
                    da = da * masks[l - 1]
                delta = da * activation_grad(hs[l - 1], activation, leaky_slope)
        off = 0
        for gW, gb in reversed(gv):
            g[off:off + gW.size] = gW.ravel()
            g[off + gW.size:off + gW.size + gb.size] = gb
            off += gW.size + gb.size
        g = np.where(is_w, g + wd * p, g)

        # update
        if optimizer == "sgd":
            p -= lr * g
        elif optimizer == "momentum":
            v[:] = mu * v + g
            p -= lr * v
        elif optimizer == "nesterov":
            v[:] = mu * v + g
            p -= lr * (g + mu * v)
        else:  # adam; momentum is beta1
            c1 = dt(1.0 / (1.0 - momentum ** (t + 1)))
            c2 = dt(1.0 / (1.0 - beta2 ** (t + 1)))
            v[:] = mu * v + (1 - mu) * g
            m2[:] = b2 * m2 + (1 - b2) * (g * g)
            p -= lr * (v * c1) / (np.sqrt(m2 * c2) + ep)
    return p, curve, diverged, gnorms


def train(problem):
    """The ``numpy`` engine: ``train_one`` for each network of ``problem`` in turn; returns
    ``(params, curves, diverged, gnorms)`` like every engine."""
    curves, diverged, gnorms = problem.empty_outputs()
    params = problem.params.copy()
    for n in range(params.shape[0]):
        params[n], curves[n], diverged[n], gnorms[n] = train_one(
            problem.sizes, problem.activation, problem.output, problem.optimizer, problem.params[n],
            problem.X, problem.T, lr=problem.lr[n], momentum=problem.momentum[n],
            weight_decay=problem.weight_decay[n], dropout=problem.dropout[n], seed=int(problem.seeds[n]),
            steps=problem.steps, batch_size=problem.batch_size or None, record_every=problem.record_every,
            beta2=problem.beta2, eps=problem.eps, leaky_slope=problem.leaky_slope,
            track_grad_norms=problem.track_grad_norms)
    return params, curves, diverged, gnorms
