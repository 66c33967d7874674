"""Branch-free, vectorisable tanh for compiled loops (no SVML needed).

LLVM cannot vectorise a call to libm's ``tanh``; these use only +, *, /, fused multiply-adds, selects and bit
operations, so a loop over samples compiles to SIMD code. Both are accurate to a few ulp (see tests/test_kernels_math.py):

* float64: ``tanh|x| = (1 - e) / (1 + e)``, ``e = exp(-2|x|) = 2**n exp(r)`` with exp(r) in Cephes' Pade form
  ``(Q + u) / (Q - u)``: one division for both quotients, polynomials of degree 5 and 6 evaluated with explicit
  fused multiply-adds, 2**n built from bits, the sign of x copied back. Within 3.8 units of eps/2 of the exact
  tanh (numpy's: 1.6).
* float32: the 13/6 rational approximation used by Eigen on [-7.9, 7.9], Horner's scheme with explicit fused
  multiply-adds.

Each is the same sequence of operations for every element, so identical units stay identical.
"""
import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

from . import simd
from ...config import CACHE, JIT
from .simd import fma as vfma, mul as vmul, sub as vsub

_A1, _A3, _A5, _A7 = (np.float32(4.89352455891786e-03), np.float32(6.37261928875436e-04),
                      np.float32(1.48572235717979e-05), np.float32(5.12229709037114e-08))
_A9, _A11, _A13 = np.float32(-8.60467152213735e-11), np.float32(2.00018790482477e-13), np.float32(-2.76076847742355e-16)
_B0, _B2, _B4, _B6 = (np.float32(4.89352518554385e-03), np.float32(2.26843463243900e-03),
                      np.float32(1.18534705686654e-04), np.float32(1.19825839466702e-06))
_CLAMP32 = np.float32(7.90531110763549805)
_ONE32 = np.float32(1.0)


@intrinsic
def fma(typingctx, a, b, c):
    """``a * b + c`` rounded once (LLVM's ``llvm.fma``): the same bits in a vector lane or a scalar, fresh or
    cached, unlike contraction left to the optimiser."""
    if not (isinstance(a, types.Float) and a == b == c):
        return None

    def codegen(context, builder, sig, args):
        ty = args[0].type
        fn = builder.module.declare_intrinsic("llvm.fma", [ty], ir.FunctionType(ty, [ty, ty, ty]))
        return builder.call(fn, args)
    return a(a, b, c), codegen


@intrinsic
def copysign(typingctx, a, b):
    """``|a|`` with the sign of ``b`` (``llvm.copysign``: two bit operations)."""
    if not (isinstance(a, types.Float) and a == b):
        return None

    def codegen(context, builder, sig, args):
        ty = args[0].type
        fn = builder.module.declare_intrinsic("llvm.copysign", [ty], ir.FunctionType(ty, [ty, ty]))
        return builder.call(fn, args)
    return a(a, b), codegen


_SHIFT = 6755399441055744.0  # 1.5 * 2**52: x + _SHIFT rounds x to an integer held in the low mantissa bits
_SHIFT_BITS = int(np.float64(_SHIFT).view(np.int64))


@intrinsic
def _pow2_of_shifted(typingctx, k):
    """2**n for ``k = _SHIFT + n`` (n a small integer): n is in k's low bits; move it into the exponent."""
    if k != types.float64:
        return None

    def codegen(context, builder, sig, args):
        i64 = ir.IntType(64)
        n_biased = builder.sub(builder.bitcast(args[0], i64), ir.Constant(i64, _SHIFT_BITS - 1023))
        return builder.bitcast(builder.shl(n_biased, ir.Constant(i64, 52)), ir.DoubleType())
    return types.float64(types.float64), codegen


_INV_LN2 = 1.4426950408889634
_LN2_HI, _LN2_LO = 6.93147180369123816490e-01, 1.90821492927058770002e-10  # n * _LN2_HI is exact for |n| < 2**11
# expm1(r) = r + r^2 (c2 + c3 r + ... + c11 r^9) on |r| <= ln(2)/2: the degree-9 factor interpolates
# (expm1(r) - r) / r^2 at 10 Chebyshev nodes (computed in long double): max error 1.5 units of eps/2 in float64
# arithmetic, as accurate as the degree-13 Taylor polynomial it replaces, with three operations fewer
_E2, _E3, _E4, _E5 = 0.5000000000000001, 0.16666666666666669, 0.041666666666624164, 0.00833333333333017
_E6, _E7, _E8, _E9 = 0.001388888891719737, 0.00019841269862753088, 2.480152132073388e-05, 2.7557268778408315e-06
_E10, _E11 = 2.7620076729648766e-07, 2.5100270321769106e-08


@njit(**JIT)
def _exp_parts(y):
    """``(2**n, expm1(r))`` with ``y = n ln2 + r``, |r| <= ln(2)/2, for -1000 < y <= 0: ``exp(y) = 2**n (1 +
    expm1(r))``. r by the 1.5 * 2^52 rounding trick and a two-part ln2; expm1(r) a degree-11 polynomial
    (Estrin's scheme: a shallow dependency tree) with explicit fma; 2**n built from bits. A NaN passes through."""
    k = fma(y, _INV_LN2, _SHIFT)
    n = k - _SHIFT
    r = fma(n, -_LN2_LO, fma(n, -_LN2_HI, y))
    r2 = r * r
    r4 = r2 * r2
    b0 = fma(fma(_E5, r, _E4), r2, fma(_E3, r, _E2))
    b1 = fma(fma(_E9, r, _E8), r2, fma(_E7, r, _E6))
    b2 = fma(_E11, r, _E10)
    p = fma(fma(b2, r4, b1), r4, b0)
    return _pow2_of_shifted(k), fma(r2, p, r)


# float64 tanh. With -2|x| = n ln2 + r, s = 2**n and e^r in Cephes' Pade form (Q(r^2) + u) / (Q(r^2) - u),
# u = r P(r^2) (accurate to 2e-19 on |r| <= ln(2)/2, 2e-17 on the [-0.52, 0.17] used here):
#     tanh|x| = (1 - s e^r) / (1 + s e^r) = ((1 - s) Q - (1 + s) u) / ((1 + s) Q - (1 - s) u),
# so the exponential's division and the tanh's are one, and the polynomials have degree 5 and 6 where expm1
# needed 11: 28 vector operations against 31 (bench/NOTES.md, change 34). n rounds -2|x| / ln2 + 1/4, so that r
# is at most 0.17, not ln(2)/2: with n = -1 and r near ln(2)/2 the numerator lost bits to cancellation (max
# error 4.6 units of eps/2 with n rounding -2|x| / ln2 itself, 3.8 with the 1/4; the expm1 form: 3.5). In each fused multiply-add the rounded product is the smaller one
# (b u, not a Q). For n = 0 (|x| <= 0.26) a = 0 and the quotient is -2u / 2Q, with no cancellation. The
# reduction from -|x| gives h = r / 2 (no doubling), so the coefficients below are in h: z = h^2,
# -u = h P2(z), Q(r^2) = Q2(z), Cephes' coefficients scaled by powers of two.
_P2 = (-0.004037670178393939, -0.24239552616595356, -2.0)  # -2 * 4**i * Cephes' P, highest degree first: -u
_Q2 = (0.00019212704328874525, 0.04039173445594946, 0.9090621928326201, 2.0)  # 4**i * Cephes' Q
_TWO_INV_LN2 = 2.0 * _INV_LN2
_HALF_LN2_HI, _HALF_LN2_LO = 0.5 * _LN2_HI, 0.5 * _LN2_LO


@njit(**JIT)
def _tanh64_parts(x):
    """tanh|x| as ``(numerator, denominator)``, both positive (or NaN), for -20 <= -|x| (tanh rounds to 1
    beyond: the clamp keeps 2**n normal)."""
    nt = -abs(x)
    nt = -20.0 if nt < -20.0 else nt
    k = fma(nt, _TWO_INV_LN2, 0.25) + _SHIFT
    n = k - _SHIFT
    h = fma(n, -_HALF_LN2_LO, fma(n, -_HALF_LN2_HI, nt))
    z = h * h
    mu = h * fma(fma(_P2[0], z, _P2[1]), z, _P2[2])  # -u
    q = fma(fma(fma(_Q2[0], z, _Q2[1]), z, _Q2[2]), z, _Q2[3])
    s = _pow2_of_shifted(k)
    a, b = 1.0 - s, 1.0 + s
    return fma(a, q, b * mu), fma(b, q, a * mu)


@njit(**JIT)
def tanh64(x):
    """tanh of a float64 (within 3.8 units of eps/2; a NaN stays NaN, +-inf gives +-1)."""
    num, den = _tanh64_parts(x)
    return copysign(num / den, x)


_SQRT2_M1 = math.sqrt(2.0) - 1.0
_LN2 = math.log(2.0)
_T3, _T5, _T7, _T9, _T11, _T13, _T15, _T17, _T19, _T21 = [1.0 / k for k in range(3, 22, 2)]


@njit(**JIT)
def _two_atanh(num, den):
    """``2 atanh(num / den)`` for |num / den| <= 0.1716: atanh(s) / s = 1 + s^2/3 + ... + s^20/21 (< 1e-17 left)."""
    s = num / den
    z = s * s
    q = fma(fma(fma(fma(fma(fma(fma(fma(fma(_T21, z, _T19), z, _T17), z, _T15), z, _T13), z, _T11), z, _T9), z,
                        _T7), z, _T5), z, _T3)
    two_s = 2.0 * s
    return fma(two_s * z, q, two_s)


@njit(**JIT)
def log1p_exp_neg64(a):
    """``log(1 + exp(-a))`` for ``a >= 0`` (the softplus of -a; BCE's loss term), vectorisable, float64.

    u = exp(-a) in (0, 1]; log(1 + u) = k ln2 + 2 atanh(s) with s = u / (2 + u) (k = 0) or, for u > sqrt(2) - 1,
    s = (u - 1) / (u + 3) (k = 1, i.e. log of (1 + u) / 2): |s| <= 0.1716, and s comes from u itself, not from a
    rounded 1 + u, so tiny u keep their relative accuracy.
    """
    a = 700.0 if a > 700.0 else a
    s2n, em1r = _exp_parts(-a)
    u = fma(s2n, em1r, s2n)
    big = u > _SQRT2_M1
    res = _two_atanh(u - 1.0 if big else u, (u + 3.0) if big else (u + 2.0))
    return res + _LN2 if big else res


@njit(**JIT)
def exp_neg64(y):
    """``exp(y)`` for ``y <= 0`` (softmax's ``exp(z - max z)``), vectorisable, float64; below -700 it returns
    exp(-700) ~ 1e-304 instead of underflowing towards 0."""
    y = -700.0 if y < -700.0 else y
    s2n, em1r = _exp_parts(y)
    return fma(s2n, em1r, s2n)


_MANT_MASK = (1 << 52) - 1
_ONE_BITS = 1023 << 52
_TWO52_BITS = int(np.float64(2.0 ** 52).view(np.int64))


@intrinsic
def _mantissa_and_exponent(typingctx, x):
    """``(m, e)`` with ``x = m 2**e``, m in [1, 2), e an integer as a float64, for a positive normal float64.

    Bit operations only (AVX2 has no vector int64 -> float64 conversion: e is made by writing its biased value
    into the low bits of 2**52 and subtracting 2**52 + 1023)."""
    if x != types.float64:
        return None

    def codegen(context, builder, sig, args):
        i64, f64 = ir.IntType(64), ir.DoubleType()
        b = builder.bitcast(args[0], i64)
        m = builder.bitcast(builder.or_(builder.and_(b, ir.Constant(i64, _MANT_MASK)), ir.Constant(i64, _ONE_BITS)),
                            f64)
        biased = builder.lshr(b, ir.Constant(i64, 52))
        e = builder.fsub(builder.bitcast(builder.or_(biased, ir.Constant(i64, _TWO52_BITS)), f64),
                         ir.Constant(f64, 2.0 ** 52 + 1023))
        return context.make_tuple(builder, sig.return_type, [m, e])
    return types.UniTuple(types.float64, 2)(types.float64), codegen


@njit(**JIT)
def log64(x):
    """``log(x)`` for a finite, positive, normal float64 (softmax's ``log(sum exp)``, >= 1), vectorisable:
    x = m 2**e, m folded into [sqrt(2)/2, sqrt(2)), log x = e ln2 + 2 atanh((m - 1) / (m + 1)). A NaN stays NaN."""
    m, e = _mantissa_and_exponent(x)
    big = m > 1.4142135623730951
    m = 0.5 * m if big else m
    e = e + 1.0 if big else e
    r = fma(e, _LN2, _two_atanh(m - 1.0, m + 1.0))
    return r if x == x else x  # the bits of a NaN would read as a number


@njit(**JIT)
def tanh32(x):
    x = _CLAMP32 if x > _CLAMP32 else x
    x = -_CLAMP32 if x < -_CLAMP32 else x
    x2 = x * x
    p = fma(fma(fma(fma(fma(fma(_A13, x2, _A11), x2, _A9), x2, _A7), x2, _A5), x2, _A3), x2, _A1) * x
    q = fma(fma(fma(_B6, x2, _B4), x2, _B2), x2, _B0)
    r = p / q
    r = _ONE32 if r > _ONE32 else r
    return -_ONE32 if r < -_ONE32 else r


def tanh_fast(x):
    """tanh with the engine's approximation for the argument's precision (use inside compiled code); on a
    ``simd.Vec`` it runs lane by lane with the same operations, so a lane gets the scalar's bits."""
    return np.tanh(x)


@overload(tanh_fast, jit_options=JIT)
def _tanh_fast(x):
    if isinstance(x, simd.Vec):
        if x.dtype == types.float32:
            return lambda x: _tanh32_vec(x)
        return lambda x: _tanh64_vec(x)
    if isinstance(x, types.Float) and x.bitwidth == 32:
        return lambda x: tanh32(x)
    return lambda x: tanh64(x)


# The vector versions: the scalar functions' operations, one for one, on ``simd.Vec`` (numba has no vector
# arithmetic, and LLVM vectorises the scalar loops only as wide as it prefers: 32 bytes on AVX-512 machines).

@intrinsic
def _pow2_of_shifted_vec(typingctx, k):
    """``_pow2_of_shifted`` lane by lane."""
    if not (isinstance(k, simd.Vec) and k.dtype == types.float64):
        return None

    def codegen(context, builder, sig, args):
        vi64 = ir.VectorType(ir.IntType(64), sig.args[0].width)
        n_biased = builder.sub(builder.bitcast(args[0], vi64), ir.Constant(vi64, [_SHIFT_BITS - 1023] * vi64.count))
        shifted = builder.shl(n_biased, ir.Constant(vi64, [52] * vi64.count))
        return builder.bitcast(shifted, args[0].type)
    return k(k), codegen


@njit(**JIT)
def _tanh64_vec_parts(x):
    """``_tanh64_parts`` lane by lane."""
    nt = vmul(simd.like(x, -1.0), simd.fabs(x))
    nt = simd.where_gt(simd.like(x, -20.0), nt, simd.like(x, -20.0), nt)
    k = simd.add(vfma(nt, simd.like(x, _TWO_INV_LN2), simd.like(x, 0.25)), simd.like(x, _SHIFT))
    n = vsub(k, simd.like(x, _SHIFT))
    h = vfma(n, simd.like(x, -_HALF_LN2_LO), vfma(n, simd.like(x, -_HALF_LN2_HI), nt))
    z = vmul(h, h)
    p = vfma(vfma(simd.like(x, _P2[0]), z, simd.like(x, _P2[1])), z, simd.like(x, _P2[2]))
    mu = vmul(h, p)
    q = vfma(vfma(vfma(simd.like(x, _Q2[0]), z, simd.like(x, _Q2[1])), z, simd.like(x, _Q2[2])), z,
             simd.like(x, _Q2[3]))
    s = _pow2_of_shifted_vec(k)
    a, b = vsub(simd.like(x, 1.0), s), simd.add(simd.like(x, 1.0), s)
    return vfma(a, q, vmul(b, mu)), vfma(b, q, vmul(a, mu))


@njit(**JIT)
def _tanh64_vec(x):
    n, d = _tanh64_vec_parts(x)
    return simd.copysign(simd.div(n, d), x)


@njit(**JIT)
def _quotient(n, d, inv):
    """``n / d`` from ``inv``, 1 / d to a few ulp: ``q = n inv`` and one Newton step on its exact residual
    ``n - d q`` (a fused multiply-add), which brings q back to the correctly rounded quotient in practice."""
    q = vmul(n, inv)
    return vfma(vfma(vmul(simd.like(n, -1.0), d), q, n), inv, q)


@njit(**JIT)
def _shared_quotients(n0, n1, d0, d1):
    # 1 / (d0 d1) times d1 is 1 / d0: one division for both (each quotient's residual corrected, _quotient)
    r = simd.div(simd.like(d0, 1.0), vmul(d0, d1))
    return _quotient(n0, d0, vmul(r, d1)), _quotient(n1, d1, vmul(r, d0))


@njit(**JIT)
def _tanh64_vec4(x0, x1, x2, x3):
    # the four numerators and denominators first, then the divisions (bench/NOTES.md, change 33)
    n0, d0 = _tanh64_vec_parts(x0)
    n1, d1 = _tanh64_vec_parts(x1)
    n2, d2 = _tanh64_vec_parts(x2)
    n3, d3 = _tanh64_vec_parts(x3)
    q0, q1 = _shared_quotients(n0, n1, d0, d1)
    q2, q3 = _shared_quotients(n2, n3, d2, d3)
    return simd.copysign(q0, x0), simd.copysign(q1, x1), simd.copysign(q2, x2), simd.copysign(q3, x3)


@njit(**JIT)
def _tanh32_vec(x):
    c = simd.like(x, _CLAMP32)
    x = simd.where_gt(x, c, c, x)
    c = simd.like(x, -_CLAMP32)
    x = simd.where_gt(c, x, c, x)
    x2 = vmul(x, x)
    p = simd.like(x, _A13)
    for a in (_A11, _A9, _A7, _A5, _A3, _A1):
        p = vfma(p, x2, simd.like(x, a))
    p = vmul(p, x)
    q = vfma(vfma(vfma(simd.like(x, _B6), x2, simd.like(x, _B4)), x2, simd.like(x, _B2)), x2, simd.like(x, _B0))
    r = simd.div(p, q)
    one = simd.like(x, _ONE32)
    r = simd.where_gt(r, one, one, r)
    one = simd.like(x, -_ONE32)
    return simd.where_gt(one, r, one, r)


def tanh_fast4(x0, x1, x2, x3):
    """``tanh_fast`` of four vectors (use inside compiled code): the lanes engine's four samples of a block.

    In float64 they share two divisions: a vector division occupies the core's divider for ~16 cycles, and W1's
    lanes engine ran five per sample and vector (bench/NOTES.md, change 33). For a pair, ``1 / (d0 d1)`` times
    the other denominator gives each reciprocal; a Newton step on each quotient's residual makes it the
    one-division result: on 3.2 million random inputs every bit was the same. A pair is computed together, so a
    NaN in x0 makes x1's result NaN too, and x2 and x3 likewise. Float32 vectors are four ``tanh_fast`` calls in
    turn: sharing measured 0.92-0.96x there, and so did the four numerators and denominators first.
    """
    return np.tanh(x0), np.tanh(x1), np.tanh(x2), np.tanh(x3)


@overload(tanh_fast4, jit_options=JIT)
def _tanh_fast4(x0, x1, x2, x3):
    if not (isinstance(x0, simd.Vec) and x0 == x1 == x2 == x3):
        return None
    if x0.dtype == types.float32:
        return lambda x0, x1, x2, x3: (_tanh32_vec(x0), _tanh32_vec(x1), _tanh32_vec(x2), _tanh32_vec(x3))
    return lambda x0, x1, x2, x3: _tanh64_vec4(x0, x1, x2, x3)


def log1p_exp_neg(a):
    """``log(1 + exp(-a))`` for ``a >= 0``, vectorisable (use in compiled code)."""
    return np.log1p(np.exp(-a))


def exp_neg(y):
    """``exp(y)`` for ``y <= 0``, vectorisable (use in compiled code)."""
    return np.exp(y)


def log_fast(x):
    """``log(x)`` for a finite positive normal ``x``, vectorisable (use in compiled code)."""
    return np.log(x)


def _in_float64(fn64):
    # float32 arguments are computed in float64 and rounded once: as cheap as a float32 version with enough
    # terms, and one algorithm to test
    def typer(x):
        if isinstance(x, types.Float) and x.bitwidth == 32:
            return lambda x: np.float32(fn64(np.float64(x)))
        return lambda x: fn64(x)
    return typer


for _fn, _fn64 in ((log1p_exp_neg, log1p_exp_neg64), (exp_neg, exp_neg64), (log_fast, log64)):
    overload(_fn, jit_options=JIT)(_in_float64(_fn64))


_ELEMENTWISE = ("tanh", "log1p_exp_neg", "exp_neg", "log")


@njit(cache=CACHE, **JIT)
def _elementwise(code, x):
    out = np.empty_like(x)
    for i in range(x.size):
        v = x[i]
        if code == 0:
            out[i] = tanh_fast(v)
        elif code == 1:
            out[i] = log1p_exp_neg(v)
        elif code == 2:
            out[i] = exp_neg(v)
        else:
            out[i] = log_fast(v)
    return out


def elementwise(name, x):
    """One of the engine's functions (``"tanh"``, ``"log1p_exp_neg"``, ``"exp_neg"``, ``"log"``) over a 1-D
    float32/float64 array, compiled as the engine compiles it (for tests and measurements)."""
    if name not in _ELEMENTWISE:
        raise ValueError(f"unknown function {name!r}; choose one of: {', '.join(_ELEMENTWISE)}")
    return _elementwise(_ELEMENTWISE.index(name), x)
