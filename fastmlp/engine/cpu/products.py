"""The CPU engine's matrix products, register-blocked with explicit SIMD vectors (``simd.py``).

Three products per layer and step, on feature-major rows (``(units, samples)``):

* ``product``: ``out[j] = b[j] + sum_r W[j, r] in[r]`` (the forward pass) and ``out[k] = sum_j W[j, k] in[j]``
  (the delta backpropagated to the layer below), one kernel with the weights' strides as arguments. A tile of
  6 (then 4, then 1) output units x 2 vectors of samples is held in registers for the whole sum; each input
  vector loaded serves every unit of the tile, each weight is broadcast from memory.
  ``tanh_delta`` is the delta with the tanh derivative applied to each tile before it is stored.
* ``weight_grad``: ``G[j, k] = sum_s D[j, s] in[k, s]`` and ``G[b_j] = sum_s D[j, s]``, by one of two kernels
  (``along_inputs`` chooses per layer): vectors along the samples, a tile of 4 units x 2 inputs whose vector
  accumulators' lanes are summed at the end (long rows); or vectors along the inputs, after transposing the
  layer's input, a tile of 8 units x 2 vectors of inputs, one chain per (unit, input) (short minibatches).

Identical units must stay bit-identical, so every output of a kernel is computed by the same sequence of
operations whatever its place in a tile: a sum is a chain of fused multiply-adds in the order of its terms
(forward, delta, gradient along the inputs), or lane-wise chains along the samples, a fixed tree over the
lanes and the remaining samples in order (gradient along the samples). A gradient tile that overhangs the
layer recomputes its last unit or input and drops the copy.

The forward and delta products run over ``Bc`` samples, ``Bt`` rounded up to whole tiles (rows are padded so
that this stays inside them); the samples past ``Bt`` hold zeros or stale values, and nothing sums over them.
"""
from numba import njit

from ...config import CACHE, JIT
from .mathfn import fma as fma1
from .simd import add, fixed, fma, lane_sum, mul, store, store_flat, sub, wide

_jit = dict(cache=CACHE, **JIT)

TILE_SAMPLES = 2  # wide vectors of samples per tile: 16 float32 or 8 float64 samples per 32 bytes of vector


@njit(**_jit)
def tile_columns(Bt, itemsize):
    """``Bt`` rounded up to whole tiles of samples for values of ``itemsize`` bytes."""
    n = TILE_SAMPLES * wide.BYTES // itemsize
    return (Bt + n - 1) // n * n


@njit(**_jit)
def product(p, wbase, su, sr, bias0, zero, n_out, n_sum, inp, ir0, out, or0, Bc):
    """``out[or0 + u, :Bc] = init_u + sum_r p[wbase + u su + r sr] inp[ir0 + r, :Bc]`` for ``u < n_out``.

    ``init_u`` is ``p[bias0 + u]``, or ``zero`` when ``bias0 < 0``. Forward: ``wbase = w0, su = fan_in, sr =
    1``; delta to the layer below: ``wbase = w0, su = 1, sr = fan_in``, no bias. The sum is a chain of fused
    multiply-adds in the order of ``r``, the same for every unit, in tiles of 6 units (12 chains: enough to
    hide the fused multiply-add's latency), then 4, then 1. ``out`` rows must not be ``inp`` rows.
    """
    _tiles(p, wbase, su, sr, bias0, zero, n_out, n_sum, inp, ir0, out, or0, Bc, None, zero)


@njit(**_jit)
def tanh_delta(p, w0, fi, fo, D, dr0, dst0, Bc, H, one):
    """``D[dst0 + k, :Bc] = (sum_j p[w0 + j fi + k] D[dr0 + j, :Bc]) * (1 - H[dst0 + k]^2)``: the delta of a
    tanh layer below, without dropout (``product``'s delta with the derivative applied to each tile in
    registers before it is stored, which saves a pass over the rows: bench/NOTES.md change 36). The operations, and so the bits, are the scalar expression's ``d * (1 - h * h)``.
    """
    _tiles(p, w0, 1, fi, -1, one - one, fi, fo, D, dr0, D, dst0, Bc, H, one)


@njit(**_jit)
def _tiles(p, wbase, su, sr, bias0, zero, n_out, n_sum, inp, ir0, out, or0, Bc, H, one):
    """``product``'s tiles, with the tanh derivative taken from ``H`` at the store unless ``H`` is None. The
    choice is by type, so numba compiles each tile kernel twice, each with its epilogue alone: with the
    choice a run-time flag, LLVM compiled a slower tile loop (bench/NOTES.md, change 35), and inlining
    the kernels into two callers instead lengthened the first compile (change 36)."""
    n6 = _tiles_of_six(n_out)
    j = 0
    while j < 6 * n6:
        _product6(p, wbase + j * su, su, sr, bias0 + j if bias0 >= 0 else -1, zero, n_sum, inp, ir0, out, or0 + j, Bc,
                  H, one)
        j += 6
    while j + 4 <= n_out:
        _product4(p, wbase + j * su, su, sr, bias0 + j if bias0 >= 0 else -1, zero, n_sum, inp, ir0, out, or0 + j, Bc,
                  H, one)
        j += 4
    while j < n_out:
        _product1(p, wbase + j * su, sr, bias0 + j if bias0 >= 0 else -1, zero, n_sum, inp, ir0, out, or0 + j, Bc,
                  H, one)
        j += 1


@njit(inline="always", **_jit)
def _finish(out, r, s, v, H, one):
    """Stores ``v`` at ``out[r, s:s + W]``, times ``1 - h * h`` (``h = H[r, s:s + W]``) unless ``H`` is None
    (a branch numba prunes where ``H``'s type is None)."""
    if H is not None:
        h = wide.load(H, r, s)
        v = mul(v, sub(wide.splat(one), mul(h, h)))
    store(out, r, s, v)


@njit(**_jit)
def _tiles_of_six(n):
    """How many tiles of 6 units to run before the tiles of 4 and the single units: as many as leave a
    multiple of 4 (or the fewest units) for the rest, e.g. 64 = 10 x 6 + 4, 8 = 2 x 4 (not 6 + 1 + 1)."""
    best = n // 6
    for n6 in range(n // 6, max(-1, n // 6 - 3), -1):
        if (n - 6 * n6) % 4 < (n - 6 * best) % 4:
            best = n6
    return best


@njit(inline="always", **_jit)
def _init(p, bias0, u, zero):
    """Unit ``u``'s bias in every lane, or zeros when ``bias0 < 0`` (once per call, not per tile: the call and
    its reference counting cost more than a tile of W1's 7 -> 4 layer, bench/NOTES.md, change 28)."""
    return wide.broadcast_flat(p, bias0 + u) if bias0 >= 0 else wide.splat(zero)


@njit(**_jit)
def _product6(p, wa, su, sr, bias0, zero, n_sum, inp, ir0, out, o, Bc, H, one):
    """Six units of ``product`` (the weights of unit ``u`` start at ``wa + u su``, its bias at ``bias0 + u``)."""
    W = wide.BYTES // p.itemsize
    wb, wc, wd, we, wf = wa + su, wa + 2 * su, wa + 3 * su, wa + 4 * su, wa + 5 * su
    ba, bb, bc = _init(p, bias0, 0, zero), _init(p, bias0, 1, zero), _init(p, bias0, 2, zero)
    bd, be, bf = _init(p, bias0, 3, zero), _init(p, bias0, 4, zero), _init(p, bias0, 5, zero)
    for s in range(0, Bc, 2 * W):
        a0 = a1 = ba
        b0 = b1 = bb
        c0 = c1 = bc
        d0 = d1 = bd
        e0 = e1 = be
        f0 = f1 = bf
        for r in range(n_sum):
            x0 = wide.load(inp, ir0 + r, s)
            x1 = wide.load(inp, ir0 + r, s + W)
            w = wide.broadcast_flat(p, wa + r * sr)
            a0 = fma(w, x0, a0)
            a1 = fma(w, x1, a1)
            w = wide.broadcast_flat(p, wb + r * sr)
            b0 = fma(w, x0, b0)
            b1 = fma(w, x1, b1)
            w = wide.broadcast_flat(p, wc + r * sr)
            c0 = fma(w, x0, c0)
            c1 = fma(w, x1, c1)
            w = wide.broadcast_flat(p, wd + r * sr)
            d0 = fma(w, x0, d0)
            d1 = fma(w, x1, d1)
            w = wide.broadcast_flat(p, we + r * sr)
            e0 = fma(w, x0, e0)
            e1 = fma(w, x1, e1)
            w = wide.broadcast_flat(p, wf + r * sr)
            f0 = fma(w, x0, f0)
            f1 = fma(w, x1, f1)
        _finish(out, o, s, a0, H, one)
        _finish(out, o, s + W, a1, H, one)
        _finish(out, o + 1, s, b0, H, one)
        _finish(out, o + 1, s + W, b1, H, one)
        _finish(out, o + 2, s, c0, H, one)
        _finish(out, o + 2, s + W, c1, H, one)
        _finish(out, o + 3, s, d0, H, one)
        _finish(out, o + 3, s + W, d1, H, one)
        _finish(out, o + 4, s, e0, H, one)
        _finish(out, o + 4, s + W, e1, H, one)
        _finish(out, o + 5, s, f0, H, one)
        _finish(out, o + 5, s + W, f1, H, one)


@njit(**_jit)
def _product4(p, wa, su, sr, bias0, zero, n_sum, inp, ir0, out, o, Bc, H, one):
    """Four units of ``product``."""
    W = wide.BYTES // p.itemsize
    wb, wc, wd = wa + su, wa + 2 * su, wa + 3 * su
    ba, bb = _init(p, bias0, 0, zero), _init(p, bias0, 1, zero)
    bc, bd = _init(p, bias0, 2, zero), _init(p, bias0, 3, zero)
    for s in range(0, Bc, 2 * W):
        a0 = a1 = ba
        b0 = b1 = bb
        c0 = c1 = bc
        d0 = d1 = bd
        for r in range(n_sum):
            x0 = wide.load(inp, ir0 + r, s)
            x1 = wide.load(inp, ir0 + r, s + W)
            w = wide.broadcast_flat(p, wa + r * sr)
            a0 = fma(w, x0, a0)
            a1 = fma(w, x1, a1)
            w = wide.broadcast_flat(p, wb + r * sr)
            b0 = fma(w, x0, b0)
            b1 = fma(w, x1, b1)
            w = wide.broadcast_flat(p, wc + r * sr)
            c0 = fma(w, x0, c0)
            c1 = fma(w, x1, c1)
            w = wide.broadcast_flat(p, wd + r * sr)
            d0 = fma(w, x0, d0)
            d1 = fma(w, x1, d1)
        _finish(out, o, s, a0, H, one)
        _finish(out, o, s + W, a1, H, one)
        _finish(out, o + 1, s, b0, H, one)
        _finish(out, o + 1, s + W, b1, H, one)
        _finish(out, o + 2, s, c0, H, one)
        _finish(out, o + 2, s + W, c1, H, one)
        _finish(out, o + 3, s, d0, H, one)
        _finish(out, o + 3, s + W, d1, H, one)


@njit(**_jit)
def _product1(p, wa, sr, bias0, zero, n_sum, inp, ir0, out, o, Bc, H, one):
    """One unit of ``product``."""
    W = wide.BYTES // p.itemsize
    ba = _init(p, bias0, 0, zero)
    for s in range(0, Bc, 2 * W):
        a0 = a1 = ba
        for r in range(n_sum):
            w = wide.broadcast_flat(p, wa + r * sr)
            a0 = fma(w, wide.load(inp, ir0 + r, s), a0)
            a1 = fma(w, wide.load(inp, ir0 + r, s + W), a1)
        _finish(out, o, s, a0, H, one)
        _finish(out, o, s + W, a1, H, one)


@njit(inline="always", **_jit)
def _dot_tail(D, rd, inp, ri, n0, Bt, acc):
    """``acc`` plus the samples ``n0 <= s < Bt`` of ``D[rd] . inp[ri]``, in order."""
    for s in range(n0, Bt):
        acc = fma1(D[rd, s], inp[ri, s], acc)
    return acc


@njit(**_jit)
def _grad_along_samples(D, dr0, fo, inp, ir0, fi, Bt, G, w0, zero):
    """``G[w0 + j fi + k] = sum_s D[dr0 + j, s] inp[ir0 + k, s]``, vectors along the samples.

    Tiles of 4 units x 2 inputs (1 unit x 4 inputs when ``fo == 1``): one vector accumulator per pair along
    the whole vectors of samples, then its lanes summed (``simd.lane_sum``), then the last ``Bt mod W``
    samples in order. Tiles overhanging the layer repeat its last unit or input, and the copies are dropped.
    """
    W = fixed.BYTES // D.itemsize
    nv = Bt - Bt % W
    if fo == 1:
        for k in range(0, fi, 4):
            k1, k2, k3 = min(k + 1, fi - 1), min(k + 2, fi - 1), min(k + 3, fi - 1)
            c0 = c1 = c2 = c3 = fixed.splat(zero)
            for s in range(0, nv, W):
                e = fixed.load(D, dr0, s)
                c0 = fma(e, fixed.load(inp, ir0 + k, s), c0)
                c1 = fma(e, fixed.load(inp, ir0 + k1, s), c1)
                c2 = fma(e, fixed.load(inp, ir0 + k2, s), c2)
                c3 = fma(e, fixed.load(inp, ir0 + k3, s), c3)
            G[w0 + k] = _dot_tail(D, dr0, inp, ir0 + k, nv, Bt, lane_sum(c0))
            if k + 1 < fi:
                G[w0 + k1] = _dot_tail(D, dr0, inp, ir0 + k1, nv, Bt, lane_sum(c1))
            if k + 2 < fi:
                G[w0 + k2] = _dot_tail(D, dr0, inp, ir0 + k2, nv, Bt, lane_sum(c2))
            if k + 3 < fi:
                G[w0 + k3] = _dot_tail(D, dr0, inp, ir0 + k3, nv, Bt, lane_sum(c3))
    else:
        for j in range(0, fo, 4):
            j1, j2, j3 = min(j + 1, fo - 1), min(j + 2, fo - 1), min(j + 3, fo - 1)
            ra, rb, rc, rd = dr0 + j, dr0 + j1, dr0 + j2, dr0 + j3
            for k in range(0, fi, 2):
                k1 = min(k + 1, fi - 1)
                a0 = a1 = b0 = b1 = c0 = c1 = d0 = d1 = fixed.splat(zero)
                for s in range(0, nv, W):
                    x0 = fixed.load(inp, ir0 + k, s)
                    x1 = fixed.load(inp, ir0 + k1, s)
                    e = fixed.load(D, ra, s)
                    a0 = fma(e, x0, a0)
                    a1 = fma(e, x1, a1)
                    e = fixed.load(D, rb, s)
                    b0 = fma(e, x0, b0)
                    b1 = fma(e, x1, b1)
                    e = fixed.load(D, rc, s)
                    c0 = fma(e, x0, c0)
                    c1 = fma(e, x1, c1)
                    e = fixed.load(D, rd, s)
                    d0 = fma(e, x0, d0)
                    d1 = fma(e, x1, d1)
                ka, kb = ir0 + k, ir0 + k1
                ga = w0 + j * fi + k
                G[ga] = _dot_tail(D, ra, inp, ka, nv, Bt, lane_sum(a0))
                if k + 1 < fi:
                    G[ga + 1] = _dot_tail(D, ra, inp, kb, nv, Bt, lane_sum(a1))
                if j + 1 < fo:
                    G[ga + fi] = _dot_tail(D, rb, inp, ka, nv, Bt, lane_sum(b0))
                    if k + 1 < fi:
                        G[ga + fi + 1] = _dot_tail(D, rb, inp, kb, nv, Bt, lane_sum(b1))
                if j + 2 < fo:
                    G[ga + 2 * fi] = _dot_tail(D, rc, inp, ka, nv, Bt, lane_sum(c0))
                    if k + 1 < fi:
                        G[ga + 2 * fi + 1] = _dot_tail(D, rc, inp, kb, nv, Bt, lane_sum(c1))
                if j + 3 < fo:
                    G[ga + 3 * fi] = _dot_tail(D, rd, inp, ka, nv, Bt, lane_sum(d0))
                    if k + 1 < fi:
                        G[ga + 3 * fi + 1] = _dot_tail(D, rd, inp, kb, nv, Bt, lane_sum(d1))


@njit(**_jit)
def transpose(inp, ir0, n, Bt, AT):
    """``AT[s, k] = inp[ir0 + k, s]`` for ``k < n``, ``s < Bt`` (and, for whole blocks of W inputs, up to ``Bt``
    rounded up to whole vectors: ``inp``'s rows are padded, ``AT`` has as many rows as they have values).

    W x W blocks transposed in registers (``simd.transpose_block``); the last ``n mod W`` inputs one by one.
    """
    W = wide.BYTES // AT.itemsize
    n0 = n - n % W
    for k in range(0, n0, W):
        for s in range(0, Bt, W):
            wide.transpose_block(inp, ir0 + k, s, AT, k)
    for k in range(n0, n):
        for s in range(Bt):
            AT[s, k] = inp[ir0 + k, s]


@njit(**_jit)
def _grad_along_inputs(D, dr0, fo, AT, fi, Bt, G, w0, zero, tmp):
    """``G[w0 + j fi + k] = sum_s D[dr0 + j, s] AT[s, k]``, vectors along the inputs (``AT`` is the layer's
    input transposed, ``transpose``).

    Tiles of 8 units x 2 vectors of inputs (16 chains, enough to hide the fused multiply-add's latency: bench/NOTES.md
    change 38), then 4, then 1 unit, one fused multiply-add chain per (unit, input) along the samples in order:
    no sum across lanes. The lanes past ``fi`` compute on whatever ``AT`` holds there and are not stored
    (``tmp``, 2 vectors, takes a partial tile).
    """
    W = wide.BYTES // D.itemsize
    for k in range(0, fi, 2 * W):
        n = min(2 * W, fi - k)
        j = 0
        while j + 8 <= fo:
            _grad8(D, dr0 + j, AT, k, Bt, G, w0 + j * fi + k, fi, n, zero, tmp)
            j += 8
        while j + 4 <= fo:
            _grad4(D, dr0 + j, AT, k, Bt, G, w0 + j * fi + k, fi, n, zero, tmp)
            j += 4
        while j < fo:
            a0 = a1 = wide.splat(zero)
            for s in range(Bt):
                e = wide.broadcast(D, dr0 + j, s)
                a0 = fma(e, wide.load(AT, s, k), a0)
                a1 = fma(e, wide.load(AT, s, k + W), a1)
            _store_pair(G, w0 + j * fi + k, a0, a1, n, tmp)
            j += 1


@njit(**_jit)
def _grad8(D, r, AT, k, Bt, G, g, fi, n, zero, tmp):
    """Eight units (delta rows ``r`` to ``r + 7``) of ``_grad_along_inputs``, inputs ``k`` to ``k + n - 1``."""
    W = wide.BYTES // D.itemsize
    a0 = a1 = b0 = b1 = c0 = c1 = d0 = d1 = wide.splat(zero)
    e0 = e1 = f0 = f1 = g0 = g1 = h0 = h1 = wide.splat(zero)
    for s in range(Bt):
        x0 = wide.load(AT, s, k)
        x1 = wide.load(AT, s, k + W)
        e = wide.broadcast(D, r, s)
        a0 = fma(e, x0, a0)
        a1 = fma(e, x1, a1)
        e = wide.broadcast(D, r + 1, s)
        b0 = fma(e, x0, b0)
        b1 = fma(e, x1, b1)
        e = wide.broadcast(D, r + 2, s)
        c0 = fma(e, x0, c0)
        c1 = fma(e, x1, c1)
        e = wide.broadcast(D, r + 3, s)
        d0 = fma(e, x0, d0)
        d1 = fma(e, x1, d1)
        e = wide.broadcast(D, r + 4, s)
        e0 = fma(e, x0, e0)
        e1 = fma(e, x1, e1)
        e = wide.broadcast(D, r + 5, s)
        f0 = fma(e, x0, f0)
        f1 = fma(e, x1, f1)
        e = wide.broadcast(D, r + 6, s)
        g0 = fma(e, x0, g0)
        g1 = fma(e, x1, g1)
        e = wide.broadcast(D, r + 7, s)
        h0 = fma(e, x0, h0)
        h1 = fma(e, x1, h1)
    _store_pair(G, g, a0, a1, n, tmp)
    _store_pair(G, g + fi, b0, b1, n, tmp)
    _store_pair(G, g + 2 * fi, c0, c1, n, tmp)
    _store_pair(G, g + 3 * fi, d0, d1, n, tmp)
    _store_pair(G, g + 4 * fi, e0, e1, n, tmp)
    _store_pair(G, g + 5 * fi, f0, f1, n, tmp)
    _store_pair(G, g + 6 * fi, g0, g1, n, tmp)
    _store_pair(G, g + 7 * fi, h0, h1, n, tmp)


@njit(**_jit)
def _grad4(D, r, AT, k, Bt, G, g, fi, n, zero, tmp):
    """Four units of ``_grad_along_inputs``."""
    W = wide.BYTES // D.itemsize
    a0 = a1 = b0 = b1 = c0 = c1 = d0 = d1 = wide.splat(zero)
    for s in range(Bt):
        x0 = wide.load(AT, s, k)
        x1 = wide.load(AT, s, k + W)
        e = wide.broadcast(D, r, s)
        a0 = fma(e, x0, a0)
        a1 = fma(e, x1, a1)
        e = wide.broadcast(D, r + 1, s)
        b0 = fma(e, x0, b0)
        b1 = fma(e, x1, b1)
        e = wide.broadcast(D, r + 2, s)
        c0 = fma(e, x0, c0)
        c1 = fma(e, x1, c1)
        e = wide.broadcast(D, r + 3, s)
        d0 = fma(e, x0, d0)
        d1 = fma(e, x1, d1)
    _store_pair(G, g, a0, a1, n, tmp)
    _store_pair(G, g + fi, b0, b1, n, tmp)
    _store_pair(G, g + 2 * fi, c0, c1, n, tmp)
    _store_pair(G, g + 3 * fi, d0, d1, n, tmp)


@njit(inline="always", **_jit)
def _store_pair(G, g, v0, v1, n, tmp):
    """``G[g:g + n]`` = the first ``n`` lanes of the vectors ``v0``, ``v1``."""
    W = wide.BYTES // G.itemsize
    if n == 2 * W:
        store_flat(G, g, v0)
        store_flat(G, g + W, v1)
    else:
        store_flat(tmp, 0, v0)
        store_flat(tmp, W, v1)
        for i in range(n):
            G[g + i] = tmp[i]


@njit(**_jit)
def along_inputs(fo, fi, Bt, itemsize):
    """Whether ``weight_grad`` should take vectors along the inputs: a cost model in cycles, fitted to both
    kernels timed alone on one core (bench/NOTES.md, change 20). The two kernels sum in different orders, so
    the choice must not depend on the machine: both take the fixed width's lanes."""
    Wn = Ww = fixed.BYTES // itemsize
    cost_samples = (fo + 3) // 4 * ((fi + 1) // 2) * (40 + 8 * ((Bt + Wn - 1) // Wn))
    cost_inputs = 1.5 * fi * Bt + (fo + 3) // 4 * ((fi + 2 * Ww - 1) // (2 * Ww)) * 5.5 * Bt
    return cost_inputs < cost_samples


@njit(**_jit)
def at_columns(fan_in, itemsize):
    """Columns of the transposed input ``AT``: whole tiles of inputs, plus one wide vector so that the row
    stride is not a multiple of 128 bytes (rows 256 or 512 bytes apart fall into a few cache sets; the
    transpose, which writes down a column, ran 3-4x slower) and rows stay aligned to whole vectors."""
    return (fan_in + 31) // 32 * 32 + wide.BYTES // itemsize


@njit(**_jit)
def weight_grad(D, dr0, fo, inp, ir0, fi, Bt, G, w0, bias0, zero, by_inputs, AT, tmp):
    """``G[w0 + j fi + k] = sum_s D[dr0 + j, s] inp[ir0 + k, s]`` and ``G[bias0 + j] = sum_s D[dr0 + j, s]``.

    Two kernels: vectors along the samples (``_grad_along_samples``: cheap on long rows, W1's 891 samples) or,
    if ``by_inputs``, along the inputs (``_grad_along_inputs``, after ``transpose`` into ``AT``, which must
    have ``Bt`` rows and ``at_columns(fi)`` columns: W2's minibatches of 128, where the first kernel's cost of
    summing lanes dominates). ``along_inputs`` chooses; the caller decides once per layer, so that a short
    last minibatch runs the same kernel.
    """
    if by_inputs:
        transpose(inp, ir0, fi, Bt, AT)
        _grad_along_inputs(D, dr0, fo, AT, fi, Bt, G, w0, zero, tmp)
    else:
        _grad_along_samples(D, dr0, fo, inp, ir0, fi, Bt, G, w0, zero)
    _bias_sums(D, dr0, fo, Bt, G, bias0, zero)


@njit(**_jit)
def _bias_sums(D, dr0, fo, Bt, G, bias0, zero):
    """``G[bias0 + j] = sum_s D[dr0 + j, s]``: lane-wise sums along the samples, the lanes summed, then the last
    ``Bt mod W`` samples in order. Four rows at a time: one row's chain of adds waits on the adds' latency
    (bench/NOTES.md, change 28); a tile overhanging the layer repeats its last row and drops the copies."""
    W = fixed.BYTES // D.itemsize
    nv = Bt - Bt % W
    for j in range(0, fo, 4):
        ra, rb, rc, rd = dr0 + j, dr0 + min(j + 1, fo - 1), dr0 + min(j + 2, fo - 1), dr0 + min(j + 3, fo - 1)
        a = b = c = d = fixed.splat(zero)
        for s in range(0, nv, W):
            a = add(a, fixed.load(D, ra, s))
            b = add(b, fixed.load(D, rb, s))
            c = add(c, fixed.load(D, rc, s))
            d = add(d, fixed.load(D, rd, s))
        G[bias0 + j] = _sum_tail(D, ra, nv, Bt, lane_sum(a))
        if j + 1 < fo:
            G[bias0 + j + 1] = _sum_tail(D, rb, nv, Bt, lane_sum(b))
        if j + 2 < fo:
            G[bias0 + j + 2] = _sum_tail(D, rc, nv, Bt, lane_sum(c))
        if j + 3 < fo:
            G[bias0 + j + 3] = _sum_tail(D, rd, nv, Bt, lane_sum(d))


@njit(inline="always", **_jit)
def _sum_tail(D, r, n0, Bt, acc):
    """``acc`` plus ``D[r, s]`` for ``n0 <= s < Bt``, in order."""
    for s in range(n0, Bt):
        acc += D[r, s]
    return acc
