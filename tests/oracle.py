"""The comparisons every engine test makes, and their tolerances, defined once.

An engine is right when it trains what the NumPy reference trains (``fastmlp.engine.reference``) from the same
initial parameters: the same divergence steps, and parameters, loss curves and gradient norms equal to
rounding. ``TOL`` is that rounding: what a different but exact order of summation leaves after a few hundred
steps of a small network (float64: the last few digits of 1e-16 grown by training; float32: of 1e-7).
Reproducibility promises more, the same bits: ``assert_same_bits``.
"""
import os

import numpy as np
import pytest

from fastmlp import init_batch, train_batch

#: relative tolerance of an engine against the reference after training
TOL = {"float64": 1e-10, "float32": 1e-4}

#: True in the process that runs the CUDA tests in numba's simulator (``NUMBA_ENABLE_CUDASIM=1``)
CUDA_SIM = os.environ.get("NUMBA_ENABLE_CUDASIM", "") == "1"


def _gpu_available():
    if CUDA_SIM:
        return False
    try:
        from numba import cuda
        return bool(cuda.is_available())
    except Exception:
        return False


#: whether the cuda engine can run here (on a GPU, or in the simulator)
CUDA_HERE = CUDA_SIM or _gpu_available()
#: the marks of a test of the cuda engine: selected by ``-m cuda``; skipped where it cannot run
CUDA_MARKS = [pytest.mark.cuda, pytest.mark.skipif(
    not CUDA_HERE, reason="no GPU here; the CUDA tests run in numba's simulator as their own step: "
                          "NUMBA_ENABLE_CUDASIM=1 python -m pytest -m cuda")]
#: the engines that every shared behaviour is tested on (cuda: a GPU, or the simulator step)
ENGINES = ("numba", "numpy", pytest.param("cuda", marks=CUDA_MARKS))
#: the compiled CPU engine and the reference, for tests too long for the simulator
CPU_ENGINES = ("numba", "numpy")


def assert_matches_reference(got, ref, dtype, moved=True):
    """``got`` (a ``BatchResult``) trained what the reference's ``ref`` trained, to ``TOL``.

    With ``moved``, training must also have moved the parameters well beyond the tolerance, or the comparison
    proves nothing.
    """
    tol = TOL[dtype]
    assert got.params.dtype == ref.params.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got.diverged_step, ref.diverged_step)
    scale = float(np.max(np.abs(ref.params)))
    assert np.max(np.abs(got.params - ref.params)) <= tol * scale
    np.testing.assert_allclose(got.curves, ref.curves, rtol=tol, atol=tol * 1e-3)  # NaN where NaN
    assert np.isfinite(got.curves[got.diverged_step < 0]).all()
    if ref.grad_norms is not None:
        np.testing.assert_allclose(got.grad_norms, ref.grad_norms, rtol=10 * tol, atol=tol * 1e-2)
    if moved:
        assert np.max(np.abs(got.params - got.initial_params)) > 100 * tol * scale


def assert_same_bits(a, b):
    """Two ``BatchResult``s are equal bit for bit (NaN where NaN)."""
    for name in ("params", "curves", "grad_norms", "diverged_step"):
        x, y = getattr(a, name), getattr(b, name)
        if x is None or y is None:
            assert x is None and y is None, name
            continue
        assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), name


def train_against_reference(backend, net, X, y, tr, dtype, init, seeds=(1, 2, 3), **per_network):
    """Train the same initial parameters with ``backend`` and the reference; returns ``(got, ref)``."""
    p0 = init_batch(net, init, list(seeds), dtype)
    kw = dict(training=tr, seeds=np.array(seeds), track_grad_norms=True, **per_network)
    return (train_batch(net, X, y, p0, backend=backend, **kw), train_batch(net, X, y, p0, backend="numpy", **kw))
