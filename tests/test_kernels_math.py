"""The building blocks: the counter-based RNG and the vectorisable tanh."""
import numpy as np
import pytest
from numba import njit

from fastmlp import rng
from fastmlp.engine.abi import ACT_CODES
from fastmlp.engine.cpu import network as cpu, simd
from fastmlp.engine.cpu.mathfn import elementwise, tanh_fast, tanh_fast4


def test_rng_twins_agree_bit_for_bit():
    for seed, stream in [(0, 0), (5, 7), (2**40 + 3, int(rng.DROPOUT) | 12345)]:
        k = rng.stream_key(np.uint64(seed), np.uint64(stream))
        assert k == rng.stream_key_np(seed, stream)
        counters = np.arange(1000)
        got = np.array([rng.uniform_at(k, c) for c in range(1000)])
        assert np.array_equal(got, rng.uniform_np(k, counters))
    for epoch in range(3):
        assert np.array_equal(rng.epoch_permutation(np.uint64(9), epoch, 37), rng.epoch_permutation_np(9, epoch, 37))


@pytest.mark.parametrize("n", [0, 1, 2, 3, 17, 128, 891, 1797, 20_000])
def test_epoch_permutation_equals_the_argsort_of_its_keys(n):
    for epoch in range(3):
        assert np.array_equal(rng.epoch_permutation(np.uint64(11), epoch, n), rng.epoch_permutation_np(11, epoch, n))


def test_argsort_of_distinct_keys_that_crowd_one_bucket():
    """Keys that are not uniform (all in the lowest bucket, or in two) still come out sorted, only more slowly."""
    g = np.random.default_rng(4)
    for keys in [np.arange(500, dtype=np.uint64) * np.uint64(3),
                 np.concatenate([np.arange(200, dtype=np.uint64), np.uint64(2**63) + np.arange(200, dtype=np.uint64)])]:
        keys = keys[g.permutation(keys.size)]
        assert np.array_equal(rng.argsort_distinct(keys), np.argsort(keys))


def test_uniforms_look_uniform():
    u = rng.uniform_np(rng.stream_key_np(1, 2), np.arange(200_000))
    assert 0 <= u.min() and u.max() < 1
    hist = np.histogram(u, bins=20, range=(0, 1))[0]
    expected = len(u) / 20
    chi2 = np.sum((hist - expected) ** 2 / expected)
    assert chi2 < 45  # 19 degrees of freedom; p ~ 1e-3
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 0.01


@pytest.mark.parametrize("dtype,max_ulp", [(np.float64, 6), (np.float32, 8)])
def test_tanh_accuracy(dtype, max_ulp):
    x = np.concatenate([np.linspace(-30, 30, 400_001), np.logspace(-30, 1.5, 5000), -np.logspace(-30, 1.5, 5000)])
    x = x.astype(dtype)
    exact = np.tanh(x.astype(np.float64))
    got = elementwise("tanh", x).astype(np.float64)
    ulp = np.finfo(dtype).eps / 2
    rel = np.abs(got - exact) / np.maximum(np.abs(exact), np.finfo(dtype).tiny)
    assert rel.max() <= max_ulp * ulp
    assert np.all(np.abs(got) <= 1)


@pytest.mark.skipif(np.finfo(np.longdouble).nmant < 63, reason="needs an 80-bit long double for the exact tanh")
def test_float64_tanh_against_the_exact_one_where_its_quotient_could_cancel():
    """The float64 tanh's two sides, (1 - s) Q - (1 + s) u and (1 + s) Q - (1 - s) u (mathfn.py), lose bits to
    cancellation for n = -1 (|x| ~ 0.2-0.6) and near tanh = 1 (large |x|) unless n is rounded with the offset
    1/4 and each fma rounds the smaller product: without either, the error reaches 4.6-4.9 units of eps/2 here."""
    x = np.concatenate([np.linspace(0.1, 0.6, 400_001), np.linspace(5, 12, 200_001)])
    x = np.concatenate([x, -x])
    exact = np.tanh(x.astype(np.longdouble))
    got = elementwise("tanh", x).astype(np.longdouble)
    err = np.abs((got - exact) / exact) / (np.finfo(np.float64).eps / 2)
    assert float(err.max()) <= 4.0


def test_tanh_propagates_nan_and_saturates_at_infinity():
    for dt in (np.float32, np.float64):
        out = elementwise("tanh", np.array([np.nan, np.inf, -np.inf, 0.0, -0.0], dtype=dt))
        eps = np.finfo(dt).eps
        assert np.isnan(out[0]) and out[3] == 0
        assert 1 - 2 * eps <= out[1] <= 1 and out[2] == -out[1]


def test_tanh_is_odd_and_the_same_for_equal_inputs():
    x = np.random.default_rng(0).normal(size=1001) * 3
    np.testing.assert_array_equal(elementwise("tanh", -x), -elementwise("tanh", x))
    # equal inputs anywhere in an array (vector body or scalar tail) give equal outputs
    y = np.full(1001, 0.7312)
    assert len(np.unique(elementwise("tanh", y))) == 1


@pytest.mark.parametrize("dtype,max_ulp", [(np.float64, 6), (np.float32, 4)])
def test_softplus_term_accuracy(dtype, max_ulp):
    # log(1 + exp(-a)), the binary cross-entropy's loss term, against libm in float64
    a = np.concatenate([np.linspace(0, 80, 400_001), np.logspace(-30, 2.8, 5000)]).astype(dtype)
    exact = np.log1p(np.exp(-a.astype(np.float64)))
    got = elementwise("log1p_exp_neg", a).astype(np.float64)
    normal = exact >= np.finfo(dtype).tiny  # below it the dtype itself cannot carry a relative accuracy
    rel = np.abs(got - exact)[normal] / exact[normal]
    assert rel.max() <= max_ulp * np.finfo(dtype).eps / 2
    assert np.all(np.abs(got - exact)[~normal] <= 2 * np.finfo(dtype).tiny)
    big = np.array([0.0, 700.0, 1e6, np.inf, np.nan], dtype=dtype)
    out = elementwise("log1p_exp_neg", big)
    tail = out[1:4].astype(np.float64)
    assert out[0] == dtype(np.log(2)) and np.all(tail >= 0) and np.all(tail < 1e-300) and np.isnan(out[4])


@pytest.mark.parametrize("dtype,max_ulp", [(np.float64, 4), (np.float32, 2)])
def test_softmax_exp_and_log_accuracy(dtype, max_ulp):
    ulp = np.finfo(dtype).eps / 2
    y = np.concatenate([np.linspace(-700, 0, 200_001), -np.logspace(-30, 2.8, 5000), [0.0]]).astype(dtype)
    exact = np.exp(y.astype(np.float64))
    got = elementwise("exp_neg", y).astype(np.float64)
    normal = exact >= np.finfo(dtype).tiny
    assert np.max(np.abs(got - exact)[normal] / exact[normal]) <= max_ulp * ulp
    assert got[-1] == 1.0
    x = np.concatenate([np.linspace(1, 1000, 200_001), 1 + np.logspace(-15, -1, 1000),
                        np.logspace(-30, 30, 10_001)]).astype(dtype)
    exact = np.log(x.astype(np.float64))
    got = elementwise("log", x).astype(np.float64)
    nonzero = exact != 0
    assert np.max(np.abs(got - exact)[nonzero] / np.abs(exact[nonzero])) <= max_ulp * ulp
    assert np.all(got[~nonzero] == 0)
    assert np.isnan(elementwise("log", np.array([np.nan], dtype))[0]) and np.isnan(elementwise("exp_neg", np.array([np.nan], dtype))[0])


@njit
def _scalar_sigmoid(x, half):
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = half + half * tanh_fast(half * x[i])
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_hidden_activations_on_vectors_equal_the_scalar_functions(dtype):
    """The engine's hidden tanh and sigmoid run on whole SIMD vectors (``cpu._activate``); every lane must get the
    scalar function's bits, or a unit's value would depend on its sample's place in a vector."""
    rng_ = np.random.default_rng(3)
    special = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-310, -1e-310, 7.9053111, -7.9053111, 20.0, 19.99, 1e300, -5e-8]
    with np.errstate(over="ignore"):
        x = np.concatenate([rng_.uniform(-25, 25, 20_000), rng_.standard_normal(5_000) * 1e-3, special]).astype(dtype)
    Bt = 127  # rows of 127 samples: every row ends in a partial vector
    rows = -(-x.size // Bt)
    x = np.concatenate([x, np.zeros(rows * Bt - x.size, dtype)])
    c = np.array([0.5, 1.0, 0.01, 2.0, 0.0, 0.999, 1e-8], dtype)  # cpu's constants: _HALF, _ONE, ...
    for act, scalar in [(ACT_CODES["tanh"], elementwise("tanh", x)),
                        (ACT_CODES["sigmoid"], _scalar_sigmoid(x, dtype(0.5)))]:
        H = np.zeros((rows, 128), dtype)
        H[:, :Bt] = x.reshape(rows, Bt)
        cpu._activate(H, 0, rows, Bt, act, c)
        assert np.array_equal(H[:, :Bt].ravel(), scalar, equal_nan=True)


@njit
def _tanh_fours(X, Y):
    g = simd.wide_pair
    for r in range(0, X.shape[0], 4):
        y0, y1, y2, y3 = tanh_fast4(g.load(X, r, 0), g.load(X, r + 1, 0), g.load(X, r + 2, 0), g.load(X, r + 3, 0))
        simd.store(Y, r, 0, y0)
        simd.store(Y, r + 1, 0, y1)
        simd.store(Y, r + 2, 0, y2)
        simd.store(Y, r + 3, 0, y3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tanh_of_four_vectors_gives_the_one_division_bits(dtype):
    """The lanes engine takes its tanh four samples at a time, a division for two in float64; the Newton step
    on each quotient must bring it back to the one-division result (without it half of the values differ, by
    up to 3 ulp)."""
    rng_ = np.random.default_rng(4)
    W = simd.wide_pair.BYTES // np.dtype(dtype).itemsize
    x = np.concatenate([rng_.uniform(-25, 25, 30_000 * W), rng_.standard_normal(20_000 * W) * 2,
                        rng_.standard_normal(10_000 * W) * 1e-4]).astype(dtype)
    rng_.shuffle(x)
    x[:4 * W] = np.repeat(np.array([0.0, -0.0, np.inf, -np.inf], dtype), W)
    X = x.reshape(-1, W)
    Y = np.empty_like(X)
    _tanh_fours(X, Y)
    one = elementwise("tanh", x)
    assert np.mean(Y.ravel() != one) <= 1e-5
    exact = np.tanh(x.astype(np.float64))
    nz = exact != 0
    assert np.max(np.abs(Y.ravel()[nz] - exact[nz]) / np.abs(exact[nz])) <= 6 * np.finfo(dtype).eps / 2
    assert np.array_equal(Y[:4].ravel(), one[:4 * W]) and np.signbit(Y[1]).all()  # +-0 and +-inf
    NaN = X[12:16].copy()
    NaN[0, 0] = np.nan
    _tanh_fours(NaN, NaN)
    assert np.isnan(NaN[0, 0]) and np.isfinite(NaN[0, 1:]).all()  # a NaN stays in its lane
