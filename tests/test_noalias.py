"""noalias.load / noalias.store: plain element accesses whose alias scopes let LLVM drop the overlap checks."""
import numpy as np
import pytest
from numba import njit

from fastmlp.engine.cpu.noalias import IN, OUT0, OUT1, load, store


@njit
def _scoped(H, o, i, w, v, n):
    a0, a1 = H[i], H[i + 1]
    r0, r1 = H[o], H[o + 1]
    for s in range(n):
        x0, x1 = load(a0, s, IN), load(a1, s, IN)
        store(r0, s, load(r0, s, OUT0) + (w * x0 + v * x1), OUT0)
        store(r1, s, load(r1, s, OUT1) + (v * x0 - w * x1), OUT1)


@njit
def _plain(H, o, i, w, v, n):
    a0, a1 = H[i], H[i + 1]
    r0, r1 = H[o], H[o + 1]
    for s in range(n):
        x0, x1 = a0[s], a1[s]
        r0[s] += w * x0 + v * x1
        r1[s] += v * x0 - w * x1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scoped_accesses_compute_what_indexing_computes(dtype):
    H = np.random.default_rng(0).normal(size=(4, 37)).astype(dtype)
    a, b = H.copy(), H.copy()
    _scoped(a, 2, 0, dtype(0.5), dtype(-1.25), 37)
    _plain(b, 2, 0, dtype(0.5), dtype(-1.25), 37)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, H)


def test_scopes_remove_the_runtime_overlap_checks():
    H = np.zeros((4, 64))
    _scoped(H, 2, 0, 1.0, 2.0, 64)
    _plain(H, 2, 0, 1.0, 2.0, 64)
    scoped = next(iter(_scoped.inspect_llvm().values()))
    plain = next(iter(_plain.inspect_llvm().values()))
    assert "vector.body" in scoped and "vector.body" in plain  # both vectorise
    assert "vector.memcheck" in plain  # LLVM cannot tell the rows apart on its own
    assert "vector.memcheck" not in scoped


def test_a_scope_must_be_one_of_the_constants():
    @njit
    def bad(a):
        return load(a, 0, 7)

    with pytest.raises(Exception, match="noalias.IN, noalias.OUT0, noalias.OUT1"):
        bad(np.zeros(3))
