"""The ``numba`` backend: prepares the arrays the compiled CPU kernel takes and calls it once."""
import numpy as np

from ..layout import Layout
from . import cpu, lanes


def kernel_args(problem):
    """The compiled kernels' arguments for ``problem`` (shared with the CUDA backend), the data sample-major as
    given: X (samples, features), T (samples, outputs), C-contiguous in the params' dtype."""
    dt = problem.params.dtype
    N = problem.params.shape[0]
    sizes, w_off, b_off = Layout(tuple(problem.sizes)).arrays()
    hyper64 = np.zeros((N, 6))
    hyper64[:, cpu.LR] = problem.lr
    hyper64[:, cpu.MOM] = problem.momentum
    hyper64[:, cpu.WD] = problem.weight_decay
    hyper64[:, cpu.DROP] = problem.dropout
    hyper64[:, cpu.KEEP] = 1.0 / (1.0 - problem.dropout)
    hyper64[:, 5] = problem.beta2
    c = np.array([0.5, 1.0, problem.leaky_slope, 2.0, 0.0, problem.beta2, problem.eps], dtype=dt)
    return dict(sizes=sizes, w_off=w_off, b_off=b_off, act=cpu.ACT_CODES[problem.activation],
                out=cpu.OUT_CODES[problem.output], opt=cpu.OPT_CODES[problem.optimizer],
                X=np.ascontiguousarray(problem.X, dtype=dt), T=np.ascontiguousarray(problem.T, dtype=dt),
                hyper=hyper64.astype(dt), hyper64=hyper64, seeds=problem.seeds.astype(np.uint64),
                steps=int(problem.steps), batch_size=int(problem.batch_size),
                record_every=int(problem.record_every), c=c, track=bool(problem.track_grad_norms))


def train(problem):
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
    cpu.train_batch_kernel(nets, a["sizes"], a["w_off"], a["b_off"], a["act"], a["out"], a["opt"], params, a["X"],
                           a["T"], a["hyper"], a["hyper64"], a["seeds"], a["steps"], a["batch_size"],
                           a["record_every"], a["c"], a["track"], curves, diverged, gnorms)
    return params, curves, diverged, gnorms
