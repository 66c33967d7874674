"""Training engines behind one contract, so that every test and benchmark can run against each of them.

An engine is a module with ``train(problem) -> (params, curves, diverged_step, grad_norms)`` for a ``Problem``:
N networks of one shape, their initial parameters ``(N, P)`` and per-network hyper-parameters, every step in
one call. ``get_engine(name)`` returns it.

=========  =====================  =============================================================================
backend    module                 its training loop
=========  =====================  =============================================================================
``numpy``  ``engine/reference.py``  ``reference.train_one``: the reference, one network at a time, vectorised
                                  over samples; the oracle of every test
``numba``  ``engine/cpu/``        ``cpu/network.py`` ``train_batch_kernel`` (a network per thread) and
                                  ``cpu/lanes.py`` ``train_lanes_kernel`` (small networks, a network per SIMD
                                  lane); ``cpu/__init__.py`` splits a batch between them
``cuda``   ``engine/cuda/``       ``cuda/block.py`` ``train_kernel`` (a block per network), ``cuda/chunk.py``
                                  (a thread per chunk of samples), ``cuda/tiled.py`` (tiled products);
                                  ``cuda/__init__.py`` chooses the path and launches
=========  =====================  =============================================================================

``engine/abi.py`` defines what the compiled kernels share: the argument arrays, the hyper-parameter columns,
the codes and constants. ``fastmlp.config`` holds the numba settings and every environment variable.
"""
from __future__ import annotations

from dataclasses import dataclass, field
import importlib

import numpy as np

BACKENDS = ("numba", "numpy", "cuda")
_MODULES = {"numba": ".cpu", "numpy": ".reference", "cuda": ".cuda"}
#: the options each engine takes through ``Problem.engine_options`` (``train_batch(..., engine_options=...)``)
ENGINE_OPTIONS = {"numba": (), "numpy": (), "cuda": ("path", "threads_per_block", "max_blocks", "tiles", "chunk")}


@dataclass
class Problem:
    """Everything an engine needs; arrays already validated and in the working dtype.

    ``X`` is ``(samples, features)``, ``T`` the float targets ``(samples, outputs)``; ``lr``, ``momentum``,
    ``weight_decay``, ``dropout`` are float64 ``(N,)``; ``seeds`` uint64 ``(N,)``; ``batch_size`` 0 = full batch.
    ``engine_options`` holds the engine's own settings (``ENGINE_OPTIONS``), which never change a result.
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
    engine_options: dict = field(default_factory=dict)

    @property
    def n_records(self):
        return -(-self.steps // self.record_every)

    def empty_outputs(self):
        N, L = self.params.shape[0], len(self.sizes) - 1
        dt = self.params.dtype
        return (np.full((N, self.n_records), np.nan, dt), np.full(N, -1, np.int64),
                np.full((N, self.n_records, L), np.nan, dt))


def check_engine_options(name, options):
    """``options`` as a dict, or a ``ValueError`` naming an option that engine ``name`` does not take."""
    options = dict(options or {})
    valid = ENGINE_OPTIONS[name]
    for key in options:
        if key not in valid:
            raise ValueError(f"the {name} engine takes no option {key!r}; "
                             + (f"it takes: {', '.join(valid)}" if valid else "it takes none"))
    return options


def get_engine(name):
    """The engine module for a backend name; a clear error for an unknown or unusable one."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")
    module = importlib.import_module(_MODULES[name], __name__)
    if hasattr(module, "check_available"):
        module.check_available()
    return module
