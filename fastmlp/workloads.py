"""The benchmark workloads, shared by ``fastmlp bench``, ``bench/`` and the peer implementations.

W1 "tutorial grid": X (891, 7), 7 -> 4 tanh -> 1 sigmoid, full batch, lr 0.1, 1000 steps, 512 networks
(64 init scales x 8 seeds). W2 "deep": X (1797, 64), 64 -> 8 x 64 tanh -> 10 softmax, minibatch 128, 200 steps,
64 networks. The data are generated with the real data's shapes (the cost does not depend on the values), so the
benchmark runs anywhere.

FLOP model: matrix products only, ``2 B fan_in fan_out`` each for the forward product, the weight gradient and
(for every layer but the first) the input gradient, summed over the steps' batch sizes ``B``. Activations,
losses and updates are not counted.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import data as _data
from .init import init_batch
from .rng import batch_bounds
from .spec import Init, Network, Training

WORKLOADS = ("w1", "w2", "wide")


@dataclass
class Workload:
    name: str
    network: Network
    training: Training
    X: np.ndarray
    y: np.ndarray
    params: np.ndarray      # (N, P) initial parameters in the workload's dtype
    seeds: np.ndarray

    @property
    def n_networks(self):
        return self.params.shape[0]

    def batch_sizes(self):
        """The batch size of every step (the last batch of an epoch may be short)."""
        S, B = self.X.shape[0], self.training.batch_size
        if B is None or B >= S:
            return np.full(self.training.steps, S)
        return np.array([b - a for _, a, b in (batch_bounds(t, S, B) for t in range(self.training.steps))])

    def flops_per_network(self):
        sizes = self.network.sizes
        macs = sum(fi * fo for fi, fo in zip(sizes[:-1], sizes[1:]))
        macs_in_grad = macs - sizes[0] * sizes[1]
        return float(self.batch_sizes().sum()) * 2.0 * (2 * macs + macs_in_grad)

    def flops(self):
        return self.flops_per_network() * self.n_networks


def make_workload(name, dtype="float32", n_networks=None, steps=None):
    """Build a benchmark workload.

    Parameters
    ----------
    name : {"w1", "w2", "wide"}
    dtype : {"float32", "float64"}
    n_networks : int, optional
        Override the number of networks (scales and seeds are repeated cyclically).
    steps : int, optional
        Override the number of steps.
    """
    if name == "w1":
        d = _data.teacher(n_samples=891, n_features=7, seed=0)
        net = Network(7, (4,), 1, "tanh", "sigmoid")
        tr = Training("sgd", lr=0.1, steps=1000, record_every=10)
        N = n_networks or 512
        scales = np.logspace(-2, 1, 64)
        idx = np.arange(N)
        inits = [Init("xavier_normal", scale=float(scales[i // 8 % 64])) for i in idx]
        seeds = idx % 8 + 8 * (idx // 512)
    elif name == "w2":
        d = _data.digits_like(n_samples=1797, n_features=64, n_classes=10, seed=0)
        net = Network(64, (64,) * 8, 10, "tanh", "softmax")
        tr = Training("sgd", lr=0.05, steps=200, batch_size=128, record_every=10)
        N = n_networks or 64
        inits = [Init("xavier_normal")] * N
        seeds = np.arange(N)
    elif name == "wide":
        d = _data.digits_like(n_samples=2048, n_features=784, n_classes=10, seed=0)
        net = Network(784, (300,) * 20, 10, "tanh", "softmax")
        tr = Training("sgd", lr=0.01, steps=200, batch_size=256, record_every=10)
        N = n_networks or 64
        inits = [Init("xavier_normal")] * N
        seeds = np.arange(N)
    else:
        raise ValueError(f"unknown workload {name!r}; choose one of: {', '.join(WORKLOADS)}")
    if steps is not None:
        tr = tr.with_(steps=int(steps))
    seeds = np.asarray(seeds, dtype=np.int64)
    params = np.stack([init_batch(net, i, [s], dtype)[0] for i, s in zip(inits, seeds)])
    return Workload(name, net, tr, d.X.astype(dtype), d.y, params, seeds)
