"""Branch-free, vectorisable tanh for compiled loops (no SVML needed).

LLVM cannot vectorise a call to libm's ``tanh``; these use only +, *, / and selects, so a loop over samples
compiles to SIMD code. Both are accurate to a few ulp (see tests/test_mathfn.py):

* float64: Cephes' rational approximation on |y| <= 0.625 for y = x / 32, then five doublings
  ``tanh(2y) = 2t / (1 + t^2)`` carried as a numerator/denominator pair, so one division in all.
* float32: the 13/6 rational approximation used by Eigen on [-7.9, 7.9].

Each is the same sequence of operations for every element, so identical units stay identical.
"""
import numpy as np
from numba import njit, types
from numba.extending import overload

from .config import CACHE, JIT

_P0, _P1, _P2 = -9.64399179425052238628e-1, -9.92877231001918586564e1, -1.61468768441708447952e3
_Q0, _Q1, _Q2 = 1.12811678491632931402e2, 2.23548839060100448583e3, 4.84406305325125486048e3
# normalised by Q2 so the carried numerator/denominator stay near 1 and never overflow
_NP0, _NP1, _NP2 = _P0 / _Q2, _P1 / _Q2, _P2 / _Q2
_NQ0, _NQ1, _NQ2, _NQ3 = 1.0 / _Q2, _Q0 / _Q2, _Q1 / _Q2, 1.0

_A1, _A3, _A5, _A7 = (np.float32(4.89352455891786e-03), np.float32(6.37261928875436e-04),
                      np.float32(1.48572235717979e-05), np.float32(5.12229709037114e-08))
_A9, _A11, _A13 = np.float32(-8.60467152213735e-11), np.float32(2.00018790482477e-13), np.float32(-2.76076847742355e-16)
_B0, _B2, _B4, _B6 = (np.float32(4.89352518554385e-03), np.float32(2.26843463243900e-03),
                      np.float32(1.18534705686654e-04), np.float32(1.19825839466702e-06))
_CLAMP32 = np.float32(7.90531110763549805)
_ONE32 = np.float32(1.0)


@njit(**JIT)
def tanh64(x):
    # the clamps are written so that NaN passes through (a NaN must stay visible to divergence checks)
    x = 20.0 if x > 20.0 else x
    x = -20.0 if x < -20.0 else x
    y = x * 0.03125
    z = y * y
    pz = (_NP0 * z + _NP1) * z + _NP2
    qz = ((_NQ0 * z + _NQ1) * z + _NQ2) * z + _NQ3
    p = y * (qz + z * pz)
    q = qz
    for _ in range(5):
        p, q = 2.0 * p * q, p * p + q * q
    r = p / q
    # rounding can leave |r| one ulp above 1; keep tanh's range (and 1 - h^2 >= 0)
    r = 1.0 if r > 1.0 else r
    return -1.0 if r < -1.0 else r


@njit(**JIT)
def tanh32(x):
    x = _CLAMP32 if x > _CLAMP32 else x
    x = -_CLAMP32 if x < -_CLAMP32 else x
    x2 = x * x
    p = ((((((_A13 * x2 + _A11) * x2 + _A9) * x2 + _A7) * x2 + _A5) * x2 + _A3) * x2 + _A1) * x
    q = ((_B6 * x2 + _B4) * x2 + _B2) * x2 + _B0
    r = p / q
    r = _ONE32 if r > _ONE32 else r
    return -_ONE32 if r < -_ONE32 else r


def tanh_fast(x):
    """tanh with the engine's approximation for the argument's precision (use inside compiled code)."""
    return np.tanh(x)


@overload(tanh_fast, jit_options=JIT)
def _tanh_fast(x):
    if isinstance(x, types.Float) and x.bitwidth == 32:
        return lambda x: tanh32(x)
    return lambda x: tanh64(x)


@njit(cache=CACHE, **JIT)
def tanh_array(x):
    """Elementwise tanh of a 1-D float32/float64 array with the engine's approximation (for tests)."""
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = tanh_fast(x[i])
    return out
