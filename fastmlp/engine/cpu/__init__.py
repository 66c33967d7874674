"""The ``numba`` engine (the default): Numba ``@njit`` kernels on the CPU, every step of every network in one call.

``train`` splits a batch between two kernels, by each network's own problem (so a network gets the same bits
however a grid is chunked):

- ``lanes.train_lanes_kernel``: small full-batch networks, one network per SIMD lane (``lanes.takes``);
- ``network.train_batch_kernel``: every other network, one network per thread (``prange``), its passes along
  the samples through the register-blocked products of ``products.py``.

Beneath them: ``simd.py`` (a SIMD vector type for numba), ``mathfn.py`` (vectorisable tanh, exp, log),
``noalias.py`` (row loads and stores that carry LLVM no-alias scopes). The numba settings are in
``fastmlp.config``; the arguments are ``engine.abi``'s.
"""
import numpy as np

from ..abi import kernel_args
from . import lanes, network


def train(problem):
    """Train ``problem`` on the CPU; returns ``(params, curves, diverged, gnorms)`` like every engine."""
    curves, diverged, gnorms = problem.empty_outputs()
    params = np.array(problem.params, copy=True, order="C")
    a = kernel_args(problem)
    on_lanes = lanes.takes(problem)
    nets = np.flatnonzero(on_lanes)
    if nets.size:
        lanes.train_lanes_kernel(nets, a["sizes"], a["w_off"], a["b_off"], a["act"], a["out"], a["opt"], params,
                                 a["X"], a["T"], a["hyper"], a["hyper64"], a["steps"], a["record_every"], a["c"],
                                 a["track"], curves, diverged, gnorms)
    nets = np.flatnonzero(~on_lanes)
    if nets.size == 0:
        return params, curves, diverged, gnorms
    # sample-major data: a minibatch is then rows to copy, not columns to pick (bench/NOTES.md, change 27)
    network.train_batch_kernel(nets, a["sizes"], a["w_off"], a["b_off"], a["act"], a["out"], a["opt"], params,
                               a["X"], a["T"], a["hyper"], a["hyper64"], a["seeds"], a["steps"], a["batch_size"],
                               a["record_every"], a["c"], a["track"], curves, diverged, gnorms)
    return params, curves, diverged, gnorms
