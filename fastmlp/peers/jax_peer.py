"""JAX (CPU) peer: the workloads written as a JAX user would write them.

Variant ``"vmap"``: the training of one network is a pure function, the loss written for one network with
``jax.numpy``, its gradient by ``jax.grad``, SGD a ``jax.tree.map``, the steps a ``lax.scan``; the whole run is
``jax.jit(jax.vmap(train_one))`` over the stacked parameters of the N networks.

Batch order: network ``n`` uses fastmlp's order for ``workload.seeds[n]``; its index arrays are a vmapped
argument, and each step gathers ``X[idx]`` inside the vmapped function (a batched gather). ``lax.scan`` needs
one batch shape, and the last batch of an epoch is short (W2: 1797 samples in batches of 128 leave 5), so the
steps are scanned as epochs: an outer scan over whole epochs whose body scans the full batches and then takes
the short step, followed by a scan over the remaining (full) steps of the last, partial epoch. This is exact
(no padding, no masks, no wasted arithmetic). The full-batch workload (W1) shares ``X`` among the networks.

Precision: ``jax_enable_x64`` is switched on (process-wide) when the workload is float64; JAX then keeps
float32 inputs in float32. The jitted function is cached per network shape, loss, learning rate and schedule,
so a second ``train`` call on the same workload shape does not compile again.
"""
from __future__ import annotations

import numpy as np

from . import check_supported, step_indices, targets
from ..layout import Layout

VARIANTS = ("vmap",)

_JITTED = {}


def available():
    try:
        import jax
    except ImportError as e:  # pragma: no cover - depends on the environment
        return False, f"jax is not installed ({e})"
    return True, f"jax {jax.__version__}"


def _schedule(workload):
    """``(kind, index arrays)``: ``("full", None)``, ``("uniform", (N, steps, B))`` or
    ``("epochs", ((N, E, per - 1, B), (N, E, last), (N, rem, B)))`` for a short last batch per epoch."""
    idx = step_indices(workload)
    if idx is None:
        return "full", None
    N, S, B = workload.n_networks, workload.X.shape[0], workload.training.batch_size
    steps = workload.training.steps
    per = -(-S // B)
    last = S - (per - 1) * B
    if last == B:
        return "uniform", np.stack(idx, axis=1).astype(np.int32)
    E, rem = divmod(steps, per)
    full = np.empty((N, E, per - 1, B), np.int32)
    short = np.empty((N, E, last), np.int32)
    for e in range(E):
        for j in range(per - 1):
            full[:, e, j] = idx[e * per + j]
        short[:, e] = idx[e * per + per - 1]
    tail = np.empty((N, rem, B), np.int32)
    for j in range(rem):
        tail[:, j] = idx[E * per + j]
    return "epochs", (full, short, tail)


def _build(activation, slope, output, lr, kind, steps):
    import jax
    import jax.numpy as jnp
    from jax import lax

    if activation == "tanh":
        act = jnp.tanh
    elif activation == "sigmoid":
        act = lambda z: 0.5 + 0.5 * jnp.tanh(0.5 * z)  # noqa: E731
    elif activation == "relu":
        act = jax.nn.relu
    elif activation == "leaky_relu":
        act = lambda z: jnp.where(z > 0, z, z * slope)  # noqa: E731
    else:
        act = lambda z: z  # noqa: E731

    def loss(params, xb, tb):
        a = xb
        for W, b in params[:-1]:
            a = act(a @ W.T + b)
        W, b = params[-1]
        z = a @ W.T + b
        if output == "sigmoid":      # binary cross-entropy from the logits, mean over batch x outputs
            return jnp.mean(jnp.maximum(z, 0) - z * tb + jnp.log1p(jnp.exp(-jnp.abs(z))))
        if output == "identity":     # squared error, mean over batch x outputs
            return jnp.mean((z - tb) ** 2)
        return -jnp.mean(jnp.sum(tb * jax.nn.log_softmax(z), axis=-1))   # cross-entropy, mean over batch

    grad = jax.grad(loss)

    def sgd(params, xb, tb):
        return jax.tree.map(lambda p, g: p - lr * g, params, grad(params, xb, tb))

    def train_one(params, X, T, idx):
        if kind == "full":
            params, _ = lax.scan(lambda p, _: (sgd(p, X, T), None), params, None, length=steps)
            return params

        def step(p, i):
            return sgd(p, X[i], T[i]), None

        if kind == "uniform":
            return lax.scan(step, params, idx)[0]
        full, short, tail = idx

        def epoch(p, ii):
            f, s = ii
            p = lax.scan(step, p, f)[0]
            return sgd(p, X[s], T[s]), None

        params = lax.scan(epoch, params, (full, short))[0]
        return lax.scan(step, params, tail)[0]

    return jax.jit(jax.vmap(train_one, in_axes=(0, None, None, 0)))


def train(workload, variant="vmap"):
    """Train all networks of ``workload``; returns the final parameters ``(N, P)``."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown jax variant {variant!r}; choose one of: {', '.join(VARIANTS)}")
    check_supported(workload)
    import jax

    dtype = workload.params.dtype
    if dtype == np.float64 and not jax.config.jax_enable_x64:
        jax.config.update("jax_enable_x64", True)
    net, tr = workload.network, workload.training
    kind, idx = _schedule(workload)
    key = (net.activation, net.leaky_slope, net.output, float(tr.lr), kind, tr.steps if kind == "full" else None)
    if key not in _JITTED:
        _JITTED[key] = _build(net.activation, net.leaky_slope, net.output, float(tr.lr), kind, tr.steps)
    run = _JITTED[key]
    layout = Layout(net.sizes)
    params = tuple((np.ascontiguousarray(W), np.ascontiguousarray(b)) for W, b in layout.unpack(workload.params))
    out = run(params, workload.X, targets(workload), idx)
    N = workload.n_networks
    final = np.concatenate([np.asarray(t).reshape(N, -1) for W, b in out for t in (W, b)], axis=1)
    if final.dtype != dtype:
        raise RuntimeError(f"jax computed in {final.dtype}, expected {dtype}")
    return final
