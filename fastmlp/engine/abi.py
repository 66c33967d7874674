"""What every compiled kernel shares: the arguments of a training call, by name.

The kernels (``engine/cpu/`` and ``engine/cuda/``) take plain arrays and small integers, never the public
dataclasses. This module defines those arrays and integers once; ``kernel_args`` builds them from a
``Problem``, and every engine calls it.

The contract
------------
``sizes, w_off, b_off`` (int64)
    The packed layout (``fastmlp.layout``): layer sizes from input to output, and the offset of each layer's
    ``W`` (row-major, ``(fan_out, fan_in)``) and ``b`` inside a network's flat parameter vector.
``params`` (N, P), float32 or float64
    Every network's parameters, updated in place; its dtype is the working precision.
``X`` (samples, features), ``T`` (samples, outputs)
    The data, sample-major, C-contiguous, in the working dtype (the CUDA kernels take their transposes).
``act``, ``out``, ``opt``
    The activation, output and optimiser codes below.
``hyper`` (N, 6) in the working dtype, ``hyper64`` (N, 6) float64
    Per-network hyper-parameters, columns ``LR, MOM, WD, DROP, KEEP, BETA2``; ``hyper64`` is used where a value
    meets float64 arithmetic (dropout's comparison with float64 uniforms, Adam's bias corrections), so float32
    and float64 runs draw the same masks.
``seeds`` (N,) uint64
    Each network's seed of its in-training randomness (``fastmlp.rng``: batch order, dropout).
``c`` (7,) in the working dtype
    Constants at indices ``C_HALF .. C_EPS``, so that float32 code computes with float32 constants.
``steps, batch_size, record_every`` (int; ``batch_size`` 0 = full batch), ``track`` (bool: gradient norms)
Outputs ``curves`` (N, records), ``diverged`` (N,) int64 (-1 or the step), ``gnorms`` (N, records, layers).
"""
import numpy as np

from ..layout import Layout

#: activation codes (hidden layers)
ACT_CODES = {"tanh": 0, "sigmoid": 1, "relu": 2, "leaky_relu": 3, "linear": 4}
#: output codes: sigmoid with binary cross-entropy, softmax with cross-entropy, identity with squared error
OUT_CODES = {"sigmoid": 0, "softmax": 1, "identity": 2}
#: optimiser codes
OPT_CODES = {"sgd": 0, "momentum": 1, "nesterov": 2, "adam": 3}

#: columns of ``hyper`` / ``hyper64``: learning rate, momentum (Adam's beta1), weight decay, dropout rate,
#: 1 / (1 - dropout rate), Adam's beta2
LR, MOM, WD, DROP, KEEP, BETA2 = 0, 1, 2, 3, 4, 5
N_HYPER = 6

#: indices into the constant vector ``c``
C_HALF, C_ONE, C_SLOPE, C_TWO, C_ZERO, C_BETA2, C_EPS = 0, 1, 2, 3, 4, 5, 6


def constants(dtype, leaky_slope, beta2, eps):
    """The constant vector ``c`` in ``dtype``."""
    c = np.zeros(7, dtype=dtype)
    c[C_HALF], c[C_ONE], c[C_SLOPE], c[C_TWO] = 0.5, 1.0, leaky_slope, 2.0
    c[C_ZERO], c[C_BETA2], c[C_EPS] = 0.0, beta2, eps
    return c


def kernel_args(problem):
    """Every kernel argument for ``problem``, by the names above (a dict, built once per call)."""
    dt = problem.params.dtype
    N = problem.params.shape[0]
    sizes, w_off, b_off = Layout(tuple(problem.sizes)).arrays()
    hyper64 = np.zeros((N, N_HYPER))
    hyper64[:, LR] = problem.lr
    hyper64[:, MOM] = problem.momentum
    hyper64[:, WD] = problem.weight_decay
    hyper64[:, DROP] = problem.dropout
    hyper64[:, KEEP] = 1.0 / (1.0 - problem.dropout)
    hyper64[:, BETA2] = problem.beta2
    return dict(sizes=sizes, w_off=w_off, b_off=b_off, act=ACT_CODES[problem.activation],
                out=OUT_CODES[problem.output], opt=OPT_CODES[problem.optimizer],
                X=np.ascontiguousarray(problem.X, dtype=dt), T=np.ascontiguousarray(problem.T, dtype=dt),
                hyper=hyper64.astype(dt), hyper64=hyper64, seeds=problem.seeds.astype(np.uint64),
                steps=int(problem.steps), batch_size=int(problem.batch_size),
                record_every=int(problem.record_every),
                c=constants(dt, problem.leaky_slope, problem.beta2, problem.eps), track=bool(problem.track_grad_norms))
