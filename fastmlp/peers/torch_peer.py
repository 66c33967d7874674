"""PyTorch peer: the workloads written as a PyTorch user would write them, on the CPU or a GPU (``device``).

Variants
--------
``"loop"``
    One network at a time, a hand-written forward and backward pass (``F.linear``, ``mm``, in-place SGD). For
    networks this small a step is a few dozen tiny kernels, and autograd's graph bookkeeping costs more than the
    arithmetic: the manual pass measured about 2x faster on W1 and 1.4x on W2 than ``loss.backward()`` plus an
    ``optim.SGD`` step (torch 2.13 CPU, 2 threads).
``"vmap"``
    ``torch.func.vmap(torch.func.grad(loss))`` over the stacked parameters (the "model ensembling" recipe):
    the loss is written for one network with ``F.linear`` and the ``torch.nn.functional`` losses, autodiff
    gives its gradient, ``vmap`` batches it over the N networks; SGD is one ``torch._foreach_add_``.
``"bmm"``
    The hand-written forward and backward pass over the stacked networks with batched matrix products
    (``baddbmm``/``bmm``/``matmul``), in-place SGD.
``"compile"``
    The ``"bmm"`` step (forward, backward and update) under ``torch.compile`` (Inductor, C++ on CPU),
    ``dynamic=False``: one graph per batch shape (the short last batch of an epoch is a second graph). The
    compiled step is cached per (sizes, activation, output, dtype), so a second ``train`` call does not compile.

Batch order: network ``n`` uses fastmlp's order for ``workload.seeds[n]``. The batched variants gather each
step's minibatches with ``X[idx]`` for ``idx`` of shape ``(N, B)`` (a different batch per network), then run
the batched step on ``(N, B, features)``; the full-batch workload (W1) shares ``X`` among the networks.

Device: ``device="cuda"`` runs every variant on the GPU (data, parameters and minibatch indices live there; the
final ``.cpu()`` copy waits for the GPU, so the timing is complete). ``fastmlp bench --backend cuda --peers torch``
times them beside fastmlp's CUDA engine.

Threads (CPU): ``torch.set_num_threads(num_threads)``; by default 1 for ``"loop"`` and the number of CPUs this
process may use for the batched variants. The loop's kernels are tiny (a few thousand elements), so a second
thread gains little even on an idle machine (W2 float64: 3.0 vs 2.5 nets/s) and, on a machine whose other cores
are busy, the threads' synchronisation at every kernel costs up to 100x (W2 float32 on 2 shared cores:
0.05 nets/s with 2 threads, 3.4 with 1).
"""
from __future__ import annotations

import os

import numpy as np

from . import check_supported, network_indices, step_indices, targets
from ..layout import Layout

VARIANTS = ("loop", "vmap", "bmm", "compile")

_COMPILED = {}


def available(device="cpu"):
    try:
        import torch
    except ImportError as e:  # pragma: no cover - depends on the environment
        return False, f"torch is not installed ({e})"
    if device != "cpu" and not torch.cuda.is_available():
        return False, f"torch {torch.__version__} cannot use a GPU here (torch.cuda.is_available() is False)"
    return True, f"torch {torch.__version__}"


def _cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _activation(name, slope):
    """``(f, df)``: the activation and its derivative from the activation value, as in the reference."""
    import torch

    if name == "tanh":
        return torch.tanh, lambda h: 1 - h * h
    if name == "sigmoid":
        return (lambda z: 0.5 + 0.5 * torch.tanh(0.5 * z)), (lambda h: h * (1 - h))
    if name == "relu":
        return torch.relu, lambda h: (h > 0).to(h.dtype)
    if name == "leaky_relu":
        return ((lambda z: torch.where(z > 0, z, z * slope)),
                (lambda h: torch.where(h > 0, torch.ones_like(h), torch.full_like(h, slope))))
    return (lambda z: z), torch.ones_like


def _output_delta(z, t, output):
    """d loss / d logits of a batch ``z (..., B, K)``, as the reference computes it (1/n rounded to the dtype)."""
    import torch

    B, K = z.shape[-2], z.shape[-1]
    if output == "sigmoid":
        return (0.5 + 0.5 * torch.tanh(0.5 * z) - t) * (1.0 / (B * K))
    if output == "identity":
        return 2 * (z - t) * (1.0 / (B * K))
    return (torch.softmax(z, dim=-1) - t) * (1.0 / B)


def _loss(z, t, output):
    """The mean loss of one network's logits ``z (B, K)``: BCE over batch x outputs, CE over the batch, MSE."""
    import torch.nn.functional as F

    if output == "sigmoid":
        return F.binary_cross_entropy_with_logits(z, t)
    if output == "identity":
        return F.mse_loss(z, t)
    return F.cross_entropy(z, t)        # t: class probabilities (one-hot)


def _stacked(workload, torch, device):
    """Per-layer contiguous ``W (N, out, in)`` and ``b (N, out)`` tensors of the initial parameters."""
    def tensor(a):
        return torch.tensor(np.ascontiguousarray(a), device=device)
    return [(tensor(W), tensor(b)) for W, b in Layout(workload.network.sizes).unpack(workload.params)]


def _pack(layers, torch):
    N = layers[0][0].shape[0]
    return torch.cat([t.reshape(N, -1) for W, b in layers for t in (W, b)], dim=1).cpu().numpy()


def _train_loop(workload, torch, device):
    import torch.nn.functional as F

    net, tr = workload.network, workload.training
    f, df = _activation(net.activation, net.leaky_slope)
    X = torch.from_numpy(workload.X).to(device)
    T = torch.from_numpy(targets(workload)).to(device)
    lr = float(tr.lr)
    layout = Layout(net.sizes)
    L = layout.n_layers
    out = torch.from_numpy(workload.params.copy()).to(device)
    with torch.no_grad():
        for n in range(out.shape[0]):
            layers = _unpack_torch(layout, out[n])        # views: in-place updates write into out[n]
            idx = network_indices(workload, n)
            idx = None if idx is None else [torch.from_numpy(i).to(device) for i in idx]
            for t in range(tr.steps):
                if idx is None:
                    xb, tb = X, T
                else:
                    xb, tb = X[idx[t]], T[idx[t]]
                ins, a = [xb], xb
                for l, (W, b) in enumerate(layers):
                    z = F.linear(a, W, b)
                    if l < L - 1:
                        a = f(z)
                        ins.append(a)
                delta = _output_delta(z, tb, net.output)
                for l in range(L - 1, -1, -1):
                    W, b = layers[l]
                    gW = delta.t().mm(ins[l])
                    gb = delta.sum(0)
                    if l > 0:
                        delta = delta.mm(W).mul_(df(ins[l]))
                    W.add_(gW, alpha=-lr)
                    b.add_(gb, alpha=-lr)
    return out.cpu().numpy()


def _unpack_torch(layout, p):
    _, w_off, b_off = layout.arrays()
    res = []
    for l in range(layout.n_layers):
        fi, fo = layout.sizes[l], layout.sizes[l + 1]
        res.append((p[w_off[l]:w_off[l] + fo * fi].view(fo, fi), p[b_off[l]:b_off[l] + fo]))
    return res


def _bmm_step(layers, xb, tb, lr, f, df, output):
    """One SGD step of N stacked networks, in place: ``xb`` is ``(N, B, in)`` or the shared ``(B, in)``."""
    import torch

    L = len(layers)
    ins, a = [xb], xb
    for l, (W, b) in enumerate(layers):
        if a.dim() == 3:
            z = torch.baddbmm(b.unsqueeze(1), a, W.transpose(1, 2))
        else:
            z = torch.matmul(a, W.transpose(1, 2)) + b.unsqueeze(1)
        if l < L - 1:
            a = f(z)
            ins.append(a)
    delta = _output_delta(z, tb, output)
    for l in range(L - 1, -1, -1):
        W, b = layers[l]
        gW = torch.matmul(delta.transpose(1, 2), ins[l])
        gb = delta.sum(1)
        if l > 0:
            delta = torch.bmm(delta, W).mul_(df(ins[l]))
        W.sub_(lr * gW)
        b.sub_(lr * gb)


def _batches(workload, torch, X, T):
    """Yield each step's ``(xb, tb)``: the shared full batch, or ``(N, B, ...)`` gathered minibatches."""
    idx = step_indices(workload)
    for t in range(workload.training.steps):
        if idx is None:
            yield X, T
        else:
            i = torch.from_numpy(idx[t]).to(X.device)
            yield X[i], T[i]


def _train_stacked(workload, torch, variant, device):
    net, tr = workload.network, workload.training
    f, df = _activation(net.activation, net.leaky_slope)
    X = torch.from_numpy(workload.X).to(device)
    T = torch.from_numpy(targets(workload)).to(device)
    lr = float(tr.lr)
    layers = _stacked(workload, torch, device)
    with torch.no_grad():
        if variant == "bmm":
            for xb, tb in _batches(workload, torch, X, T):
                _bmm_step(layers, xb, tb, lr, f, df, net.output)
        elif variant == "compile":
            key = (net.sizes, net.activation, net.leaky_slope, net.output, workload.params.dtype.str, str(device))
            if key not in _COMPILED:
                def step(layers, xb, tb, lr):
                    _bmm_step(layers, xb, tb, lr, f, df, net.output)
                _COMPILED[key] = torch.compile(step, dynamic=False)
            step = _COMPILED[key]
            for xb, tb in _batches(workload, torch, X, T):
                step(layers, xb, tb, lr)
        else:  # vmap
            from torch.func import grad, vmap
            import torch.nn.functional as F

            def loss(params, xb, tb):
                a = xb
                for W, b in params[:-1]:
                    a = f(F.linear(a, W, b))
                return _loss(F.linear(a, *params[-1]), tb, net.output)

            shared = step_indices(workload) is None
            grads_of = vmap(grad(loss), in_dims=(0, None, None) if shared else (0, 0, 0))
            flat = [t for W, b in layers for t in (W, b)]
            for xb, tb in _batches(workload, torch, X, T):
                g = grads_of(tuple(layers), xb, tb)
                torch._foreach_add_(flat, [t for gW, gb in g for t in (gW, gb)], alpha=-lr)
    return _pack(layers, torch)


def train(workload, variant="bmm", num_threads=None, device="cpu"):
    """Train all networks of ``workload``; returns the final parameters ``(N, P)``.

    ``num_threads`` is passed to ``torch.set_num_threads`` on the CPU; default 1 for ``"loop"``, the CPUs this
    process may use otherwise (see the module docstring). ``device`` is ``"cpu"`` or a GPU (``"cuda"``,
    ``"cuda:1"``); a ``RuntimeError`` says so when torch cannot use the GPU.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown torch variant {variant!r}; choose one of: {', '.join(VARIANTS)}")
    check_supported(workload)
    ok, why = available(device)
    if not ok:
        raise RuntimeError(why)
    import torch

    if device == "cpu":
        torch.set_num_threads(num_threads or (1 if variant == "loop" else _cpus()))
    if variant == "loop":
        return _train_loop(workload, torch, device)
    return _train_stacked(workload, torch, variant, device)
