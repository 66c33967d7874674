"""The register-blocked products (engine/products.py) and the SIMD vectors they are built from (engine/simd.py).

Each product is compared with a float64 NumPy product, on shapes that leave partial tiles in every dimension,
and checked for the property the engine's symmetry guarantee rests on: identical units (or inputs) get
bit-identical results wherever they fall in a tile.
"""
import numpy as np
import pytest
from numba import njit

from fastmlp.engine.cpu import products as P
from fastmlp.engine.cpu import simd
from fastmlp.engine.cpu.mathfn import fma as fma1

DTYPES = [np.float32, np.float64]
TOL = {np.float32: 2e-5, np.float64: 1e-13}


def _rows(rng, n, Bt, dtype):
    """``n`` rows of ``Bt`` values padded like the engine's rows, the padding filled with garbage."""
    Bp = (Bt + 31) // 32 * 32
    a = rng.standard_normal((n, Bp)).astype(dtype)
    a[:, Bt:] = np.nan
    return a


@njit
def _forward(p, fi, fo, inp, out, Bc, zero):
    P.product(p, 0, fi, 1, fi * fo, zero, fo, fi, inp, 0, out, 0, Bc)


@njit
def _delta(p, fi, fo, D, out, Bc, zero):
    P.product(p, 0, 1, fi, -1, zero, fi, fo, D, 0, out, 0, Bc)


@njit
def _tanh_delta(p, fi, fo, D, Bc, H):
    # as the engine calls it: the layer's deltas and the layer below's are rows of one array
    P.tanh_delta(p, 0, fi, fo, D, fi, 0, Bc, H, H.dtype.type(1))


@njit
def _grad(D, fo, inp, fi, Bt, G, zero, by_inputs, AT, tmp):
    P.weight_grad(D, 0, fo, inp, 0, fi, Bt, G, 0, fo * fi, zero, by_inputs, AT, tmp)


def _grad_buffers(fi, Bt, dtype):
    Bp = (Bt + 31) // 32 * 32
    AT = np.full((Bp, P.at_columns(fi, np.dtype(dtype).itemsize)), np.nan, dtype)
    return AT, np.empty(32, dtype)


SHAPES = [(1, 1, 1), (7, 4, 891), (4, 1, 891), (1, 4, 33), (5, 9, 17), (64, 64, 128), (13, 6, 100), (64, 10, 7), (20, 13, 45)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fi,fo,Bt", SHAPES)
def test_forward_and_delta_products_match_numpy(fi, fo, Bt, dtype):
    rng = np.random.default_rng(fi * 100 + fo)
    p = rng.standard_normal(fi * fo + fo).astype(dtype)
    Wm, b = p[:fi * fo].reshape(fo, fi).astype(np.float64), p[fi * fo:].astype(np.float64)
    x = _rows(rng, fi, Bt, dtype)
    Bc = P.tile_columns(Bt, np.dtype(dtype).itemsize)
    assert Bt <= Bc <= x.shape[1]
    out = np.full((fo, x.shape[1]), np.nan, dtype)
    _forward(p, fi, fo, x, out, Bc, dtype(0))
    want = Wm @ x[:, :Bt].astype(np.float64) + b[:, None]
    np.testing.assert_allclose(out[:, :Bt], want, rtol=TOL[dtype], atol=TOL[dtype] * np.abs(want).max())
    d = _rows(rng, fo, Bt, dtype)
    back = np.full((fi, d.shape[1]), np.nan, dtype)
    _delta(p, fi, fo, d, back, Bc, dtype(0))
    want = Wm.T @ d[:, :Bt].astype(np.float64)
    np.testing.assert_allclose(back[:, :Bt], want, rtol=TOL[dtype], atol=TOL[dtype] * np.abs(want).max())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fi,fo,Bt", SHAPES)
def test_the_tanh_delta_is_the_delta_product_times_the_derivative_bit_for_bit(fi, fo, Bt, dtype):
    """``tanh_delta`` applies ``1 - h * h`` to each tile in registers: it must give the bits of the delta product
    followed by the element-wise ``d * (1 - h * h)`` in the dtype (what the engine computed before, and what it
    still computes with dropout or other activations), and so match NumPy's delta to rounding."""
    rng = np.random.default_rng(fi * 10 + fo)
    p = rng.standard_normal(fi * fo + fo).astype(dtype)
    Bc = P.tile_columns(Bt, np.dtype(dtype).itemsize)
    d = _rows(rng, fo, Bt, dtype)
    H = np.tanh(_rows(rng, fi, Bt, dtype))
    back = np.full((fi, d.shape[1]), np.nan, dtype)
    _delta(p, fi, fo, d, back, Bc, dtype(0))
    h = H[:, :Bt]
    want = back[:, :Bt] * (dtype(1) - h * h)
    D = np.concatenate([np.full((fi, d.shape[1]), np.nan, dtype), d])
    _tanh_delta(p, fi, fo, D, Bc, H)
    got = D[:fi]
    assert np.array_equal(got[:, :Bt], want)
    assert np.array_equal(D[fi:], d, equal_nan=True)
    Wm = p[:fi * fo].reshape(fo, fi).astype(np.float64)
    exact = (Wm.T @ d[:, :Bt].astype(np.float64)) * (1 - h.astype(np.float64) ** 2)
    np.testing.assert_allclose(got[:, :Bt], exact, rtol=TOL[dtype], atol=TOL[dtype] * np.abs(exact).max() * 4)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("by_inputs", [False, True])
@pytest.mark.parametrize("fi,fo,Bt", SHAPES)
def test_weight_gradient_kernels_match_numpy(fi, fo, Bt, by_inputs, dtype):
    rng = np.random.default_rng(fi * 100 + fo)
    x, d = _rows(rng, fi, Bt, dtype), _rows(rng, fo, Bt, dtype)
    G = np.full(fo * fi + fo, np.nan, dtype)
    _grad(d, fo, x, fi, Bt, G, dtype(0), by_inputs, *_grad_buffers(fi, Bt, dtype))
    x64, d64 = x[:, :Bt].astype(np.float64), d[:, :Bt].astype(np.float64)
    scale = np.abs(d64).sum(1, keepdims=True) * np.abs(x64).max()  # bounds each sum's rounding error
    err_w = np.abs(G[:fo * fi].reshape(fo, fi) - d64 @ x64.T)
    err_b = np.abs(G[fo * fi:] - d64.sum(1))
    assert np.all(err_w <= TOL[dtype] * scale), err_w.max()
    assert np.all(err_b <= TOL[dtype] * scale[:, 0]), err_b.max()


def _duplicate(a, src, dst):
    a = a.copy()
    a[dst] = a[src]
    return a


@pytest.mark.parametrize("dtype", DTYPES)
def test_identical_units_get_identical_bits_in_every_tile_position(dtype):
    """With 11 units the products run a tile of 6, one of 4 and a single unit. Units 1, 8 and 10 (one in each)
    are given the same weights; their outputs must be the same bits, in the forward product and the delta; and
    so must identical units' gradients, in both gradient kernels (13 units: tiles of 8, 4 and 1)."""
    fi, fo, Bt = 11, 11, 77
    rng = np.random.default_rng(5)
    Wm = _duplicate(_duplicate(rng.standard_normal((fo, fi)), 1, 8), 1, 10)
    b = _duplicate(_duplicate(rng.standard_normal(fo), 1, 8), 1, 10)
    p = np.concatenate([Wm.ravel(), b]).astype(dtype)
    x = _rows(rng, fi, Bt, dtype)
    Bc = P.tile_columns(Bt, np.dtype(dtype).itemsize)
    out = np.zeros((fo, x.shape[1]), dtype)
    _forward(p, fi, fo, x, out, Bc, dtype(0))
    assert np.array_equal(out[1, :Bt], out[8, :Bt]) and np.array_equal(out[1, :Bt], out[10, :Bt])
    assert not np.array_equal(out[1, :Bt], out[2, :Bt])

    # the delta: inputs 2, 9 and 10 (one in each kind of tile) have the same outgoing weights
    p2 = np.concatenate([_duplicate(_duplicate(Wm.T, 2, 9), 2, 10).T.ravel(), b]).astype(dtype)
    d = _rows(rng, fo, Bt, dtype)
    back = np.zeros((fi, d.shape[1]), dtype)
    _delta(p2, fi, fo, d, back, Bc, dtype(0))
    assert np.array_equal(back[2, :Bt], back[9, :Bt]) and np.array_equal(back[2, :Bt], back[10, :Bt])

    # gradients of 13 units (tiles of 8, 4 and 1 along the inputs): identical delta rows (units 1, 9 and 12,
    # one in each kind of tile) and identical input rows (inputs 2 and 9)
    fo = 13
    d = _duplicate(_duplicate(_rows(rng, fo, Bt, dtype), 1, 9), 1, 12)
    x = _duplicate(x, 2, 9)
    for by_inputs in (False, True):
        G = np.zeros(fo * fi + fo, dtype)
        _grad(d, fo, x, fi, Bt, G, dtype(0), by_inputs, *_grad_buffers(fi, Bt, dtype))
        g = G[:fo * fi].reshape(fo, fi)
        assert np.array_equal(g[1], g[9]) and np.array_equal(g[1], g[12]) and np.array_equal(g[:, 2], g[:, 9])
        assert not np.array_equal(g[1], g[2])
        assert G[fo * fi + 1] == G[fo * fi + 9] == G[fo * fi + 12]


def test_the_gradient_kernel_choice_follows_the_workloads():
    """W2's 64 -> 64 layers at a minibatch of 128 take vectors along the inputs; W1's layers (891 samples, 7 -> 4
    and 4 -> 1) along the samples (bench/NOTES.md, change 20, gives the timings behind the cost model)."""
    for itemsize in (4, 8):
        assert P.along_inputs(64, 64, 128, itemsize)
        assert not P.along_inputs(4, 7, 891, itemsize)
        assert not P.along_inputs(1, 4, 891, itemsize)


def _vector_ops_of(vectors):
    @njit
    def vector_ops(a, b, c, out, sums, p):
        W = vectors.BYTES // a.itemsize
        for s in range(0, a.shape[1], W):
            v = simd.fma(vectors.load(a, 0, s), vectors.load(b, 0, s), vectors.load(c, 0, s))
            simd.store(out, 0, s, v)
            simd.store(out, 1, s, simd.add(vectors.broadcast(a, 0, s), vectors.broadcast_flat(p, 0)))
            simd.store_flat(sums, s, vectors.splat(simd.lane_sum(v)))
    return vector_ops


_VECTOR_OPS = {"fixed": _vector_ops_of(simd.fixed), "wide": _vector_ops_of(simd.wide)}


@njit
def _scalar_fma(a, b, c):
    out = np.empty_like(a)
    for i in range(a.size):
        out[i] = fma1(a[i], b[i], c[i])
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("vectors", ["fixed", "wide"])
def test_vector_primitives(dtype, vectors):
    W = simd.width(np.dtype(dtype), getattr(simd, vectors).BYTES)
    rng = np.random.default_rng(1)
    a, b, c = (rng.standard_normal((1, 4 * W)).astype(dtype) for _ in range(3))
    p = np.array([0.25], dtype)
    out = np.zeros((2, 4 * W), dtype)
    sums = np.zeros(4 * W, dtype)
    _VECTOR_OPS[vectors](a, b, c, out, sums, p)
    fused = _scalar_fma(a[0], b[0], c[0])
    assert np.array_equal(out[0], fused)  # every lane rounded once, like the scalar fma
    assert np.array_equal(out[1], np.repeat(a[0, ::W], W) + p[0])
    for s in range(0, 4 * W, W):
        lanes = fused[s:s + W]
        while lanes.size > 1:  # the documented tree: pairwise halves
            lanes = lanes[:lanes.size // 2] + lanes[lanes.size // 2:]
        assert np.all(sums[s:s + W] == lanes[0])


@njit
def _transpose(inp, ir0, n, Bt, AT):
    P.transpose(inp, ir0, n, Bt, AT)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,Bt", [(64, 128), (13, 77), (3, 5), (8, 891)])
def test_transpose_in_register_blocks_and_one_by_one(n, Bt, dtype):
    rng = np.random.default_rng(n + Bt)
    inp = _rows(rng, n + 3, Bt, dtype)
    AT = np.full((inp.shape[1], P.at_columns(n, np.dtype(dtype).itemsize)), np.nan, dtype)
    _transpose(inp, 2, n, Bt, AT)
    assert np.array_equal(AT[:Bt, :n], inp[2:2 + n, :Bt].T)


def test_vector_accessors_reject_what_they_cannot_read():
    @njit
    def load_from_1d(a):
        return simd.lane_sum(simd.fixed.load(a, 0, 0))

    with pytest.raises(Exception, match="load"):
        load_from_1d(np.zeros(8))
