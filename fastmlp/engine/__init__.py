"""Training engines behind one contract, so that every test and benchmark can run against each of them.

Each engine module has ``train(problem) -> (params, curves, diverged_step, grad_norms)`` for a ``Problem``:
N networks of one shape, their initial parameters ``(N, P)`` and per-network hyper-parameters.
"""
from __future__ import annotations

from dataclasses import dataclass
import importlib

import numpy as np

BACKENDS = ("numba", "numpy", "cuda")
_MODULES = {"numba": ".cpu_backend", "numpy": ".reference_backend", "cuda": ".cuda_backend"}


@dataclass
class Problem:
    """Everything an engine needs; arrays already validated and in the working dtype.

    ``X`` is ``(samples, features)``, ``T`` the float targets ``(samples, outputs)``; ``lr``, ``momentum``,
    ``weight_decay``, ``dropout`` are float64 ``(N,)``; ``seeds`` uint64 ``(N,)``; ``batch_size`` 0 = full batch.
    """
    sizes: tuple
    activation: str
    output: str
    optimizer: str
    params: np.ndarray
    X: np.ndarray
    T: np.ndarray
    lr: np.ndarray
    momentum: np.ndarray
    weight_decay: np.ndarray
    dropout: np.ndarray
    seeds: np.ndarray
    steps: int
    batch_size: int = 0
    record_every: int = 1
    beta2: float = 0.999
    eps: float = 1e-8
    leaky_slope: float = 0.01
    track_grad_norms: bool = False

    @property
    def n_records(self):
        return -(-self.steps // self.record_every)

    def empty_outputs(self):
        N, L = self.params.shape[0], len(self.sizes) - 1
        dt = self.params.dtype
        return (np.full((N, self.n_records), np.nan, dt), np.full(N, -1, np.int64),
                np.full((N, self.n_records, L), np.nan, dt))


def get_engine(name):
    """The engine module for a backend name; a clear error for an unknown or unusable one."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")
    module = importlib.import_module(_MODULES[name], __name__)
    if hasattr(module, "check_available"):
        module.check_available()
    return module
