"""The per-network CPU kernel: all steps of all networks in one compiled call, one network per thread.

(Small full-batch networks go to ``lanes.py`` instead, one network per SIMD lane; the backend in ``__init__.py``
splits a batch between the two.)

Activations are feature-major, ``(units, batch)``, so the innermost loop of every element-wise pass runs along
samples: long, contiguous and vectorised. The matrix products are register-blocked SIMD kernels
(``products.py``). Each network owns its buffers (allocated once, before its first step); no accumulator
is shared between threads. Rows are padded to 32 values (aligned vector loads, whole tiles of samples), and
the element-wise passes that write rows do so through ``noalias.store`` (no runtime overlap checks before a loop).

Identical units must stay bit-identical, so every unit goes through the same operations in the same order:
the products compute every output alike whatever its place in a tile, and every element-wise pass is the
same loop for every row.
"""
import numpy as np
from numba import njit, prange

from . import simd
from .mathfn import exp_neg, log1p_exp_neg, log_fast, tanh_fast
from .noalias import IN, OUT0, load, store
from .products import along_inputs, at_columns, product, tanh_delta, tile_columns, transpose, weight_grad
from .simd import fixed, wide
from ..abi import BETA2, C_BETA2, C_EPS, C_HALF, C_ONE, C_SLOPE, C_TWO, C_ZERO, DROP, KEEP, LR, MOM, WD
from ... import rng
from ...config import CACHE, JIT, JIT_REDUCE

_jit = dict(cache=CACHE, **JIT)
_jit_reduce = dict(cache=CACHE, **JIT_REDUCE)


@njit(**_jit)
def _activate(H, r0, n, Bt, act, c):
    half, slope, zero = c[C_HALF], c[C_SLOPE], c[C_ZERO]
    # tanh and sigmoid on whole wide vectors (rows are padded to 32 values): LLVM would vectorise the scalar
    # loop only 32 bytes wide on AVX-512 machines; a lane computes what the scalar function would
    W = wide.BYTES // H.itemsize
    for r in range(r0, r0 + n):
        row = H[r]
        if act == 0:
            for s in range(0, Bt, W):
                simd.store(H, r, s, tanh_fast(wide.load(H, r, s)))
        elif act == 1:
            h = wide.splat(half)
            for s in range(0, Bt, W):
                simd.store(H, r, s, simd.add(h, simd.mul(h, tanh_fast(simd.mul(h, wide.load(H, r, s))))))
        elif act == 2:
            for s in range(Bt):
                x = row[s]
                row[s] = zero if x < zero else x  # NaN passes through
        elif act == 3:
            for s in range(Bt):
                x = row[s]
                row[s] = x if x > zero else slope * x


@njit(**_jit)
def _dropout(H, A, M, r0, n, Bt, key, p_drop, keep):
    zero = keep - keep
    for j in range(n):
        hrow, arow, mrow = H[r0 + j], A[r0 + j], M[r0 + j]
        for s in range(Bt):
            m = keep if rng.uniform_at(key, j * Bt + s) >= p_drop else zero
            mrow[s] = m
            arow[s] = hrow[s] * m


@njit(**_jit_reduce)
def _nonfinite_check(H, r0, K, Bt, zero):
    """0 if every logit is finite, NaN otherwise (any order of summation gives the same answer)."""
    chk = zero
    for o in range(K):
        zr = H[r0 + o]
        for s in range(Bt):
            chk += zr[s] * zero
    return chk


@njit(**_jit)
def _row_sum(A, r, n, zero):
    """``sum(A[r, :n])`` in the same order on every machine: lane-wise along fixed-width vectors, the lanes by
    ``simd.lane_sum``'s tree, then the last ``n mod W`` values in order (a loop that LLVM may reassociate
    would sum in an order that depends on the host's vector width)."""
    W = fixed.BYTES // A.itemsize
    nv = n - n % W
    acc = fixed.splat(zero)
    for s in range(0, nv, W):
        acc = simd.add(acc, fixed.load(A, r, s))
    total = simd.lane_sum(acc)
    for s in range(nv, n):
        total += A[r, s]
    return total


@njit(**_jit)
def _output_delta(H, D, r0, K, T, Bt, out, c, inv, want_loss, rows):
    """Writes d loss / d logits into D; returns (loss or 0, check sum that is NaN iff a logit is not finite).

    ``inv`` is 1 / (Bt K) for sigmoid and identity outputs, 1 / Bt for softmax, rounded once to the dtype.
    ``rows`` holds three scratch rows.
    """
    half, two, zero = c[C_HALF], c[C_TWO], c[C_ZERO]
    spare = rows[2]
    chk = _nonfinite_check(H, r0, K, Bt, zero)
    loss = zero
    if out == 0:  # sigmoid + binary cross-entropy
        # on wide vectors, as in _activate (rows are padded to whole vectors; nothing sums over the padding)
        W = wide.BYTES // H.itemsize
        h, iv = wide.splat(half), wide.splat(inv)
        for o in range(K):
            zr, tr = H[r0 + o], T[o]
            for s in range(0, Bt, W):
                sg = simd.add(h, simd.mul(h, tanh_fast(simd.mul(h, wide.load(H, r0 + o, s)))))
                simd.store(D, r0 + o, s, simd.mul(simd.sub(sg, wide.load(T, o, s)), iv))
            if want_loss:
                # each sample's term in a vectorised loop (libm's log1p and exp are scalar calls: they cost
                # more than the whole training step of a small network), then their sum
                for s in range(Bt):
                    z = zr[s]
                    spare[s] = (z if z > zero else zero) - z * tr[s] + log1p_exp_neg(abs(z))
                loss += _row_sum(rows, 2, Bt, zero)
        loss *= inv
    elif out == 2:  # identity + squared error
        for o in range(K):
            zr, dr, tr = H[r0 + o], D[r0 + o], T[o]
            for s in range(Bt):
                d = zr[s] - tr[s]
                loss += d * d
                dr[s] = two * d * inv
        loss *= inv
        chk += loss * zero
    else:  # softmax + cross-entropy
        # row by row along the samples, so that every loop vectorises: the running max, exp(z - max) (libm's exp
        # would be a scalar call per logit, every step), the sum, then the deltas
        mx, tot = rows[0], rows[1]
        for s in range(Bt):
            mx[s] = H[r0, s]
            tot[s] = zero
        for o in range(1, K):
            zr = H[r0 + o]
            for s in range(Bt):
                z = zr[s]
                mx[s] = z if z > mx[s] else mx[s]
        for o in range(K):
            zr, dr = H[r0 + o], D[r0 + o]
            for s in range(Bt):
                e = exp_neg(zr[s] - mx[s])
                dr[s] = e
                tot[s] += e
        chk += _row_sum(rows, 1, Bt, zero) * zero
        for o in range(K):
            dr, tr = D[r0 + o], T[o]
            for s in range(Bt):
                dr[s] = (dr[s] / tot[s] - tr[s]) * inv
        if want_loss:
            for s in range(Bt):
                spare[s] = zero
            for o in range(K):
                zr, tr = H[r0 + o], T[o]
                for s in range(Bt):
                    spare[s] += tr[s] * zr[s]
            for s in range(Bt):
                spare[s] = log_fast(tot[s]) + mx[s] - spare[s]
            loss += _row_sum(rows, 2, Bt, zero)
        loss *= inv
    return loss, chk


@njit(**_jit)
def _layer_input(l, xb, A, H, roff, use_drop):
    """The rows that feed layer ``l``: an array and its first row. One call site per product, with a first row
    typed int64 even for the input layer's 0: numba types a constant argument as a literal and compiles the
    callee, and all it calls, once more for it (bench/NOTES.md, change 36)."""
    return (xb, 0) if l == 0 else (A if use_drop else H, roff[l - 1])


@njit(**_jit)
def _input_delta(p, w0, fi, fo, D, dr0, dst0, Bt, Bc, H, M, use_mask, act, c):
    """D[dst] = (W.T @ D[layer]) * mask * act'(H[dst]) for the layer below (``products.product`` with the
    weights' strides swapped, then the mask and the derivative, element-wise; tanh without dropout, the common
    case, in one kernel, ``products.tanh_delta``, with the same bits)."""
    one, slope, zero = c[C_ONE], c[C_SLOPE], c[C_ZERO]
    if act == 0 and not use_mask:
        tanh_delta(p, w0, fi, fo, D, dr0, dst0, Bc, H, one)
        return
    product(p, w0, 1, fi, -1, zero, fi, fo, D, dr0, D, dst0, Bc)
    for k in range(fi):
        drow = D[dst0 + k]
        if use_mask:
            mrow = M[dst0 + k]
            for s in range(Bt):
                store(drow, s, load(drow, s, OUT0) * load(mrow, s, IN), OUT0)
        hrow = H[dst0 + k]
        if act == 0:
            for s in range(Bt):
                h = load(hrow, s, IN)
                store(drow, s, load(drow, s, OUT0) * (one - h * h), OUT0)
        elif act == 1:
            for s in range(Bt):
                h = load(hrow, s, IN)
                store(drow, s, load(drow, s, OUT0) * (h * (one - h)), OUT0)
        elif act == 2:
            for s in range(Bt):
                store(drow, s, load(drow, s, OUT0) * (one if load(hrow, s, IN) > zero else zero), OUT0)
        elif act == 3:
            for s in range(Bt):
                store(drow, s, load(drow, s, OUT0) * (one if load(hrow, s, IN) > zero else slope), OUT0)


@njit(**_jit)
def _update(p, G, V, M2, i0, i1, wd, opt, lr, mu, b2, eps, c1, c2, one):
    # Slices, so that the loops index from 0: with ``range(i0, i1)`` numba cannot rule out negative indices,
    # wraps each one, and LLVM left the loops scalar (bench/NOTES.md, change 26).
    n = i1 - i0
    p, G = p[i0:i1], G[i0:i1]
    if opt == 0:
        for i in range(n):
            p[i] -= lr * (G[i] + wd * p[i])
    elif opt == 1:
        V = V[i0:i1]
        for i in range(n):
            V[i] = mu * V[i] + (G[i] + wd * p[i])
            p[i] -= lr * V[i]
    elif opt == 2:
        V = V[i0:i1]
        for i in range(n):
            g = G[i] + wd * p[i]
            V[i] = mu * V[i] + g
            p[i] -= lr * (g + mu * V[i])
    else:
        V, M2 = V[i0:i1], M2[i0:i1]
        for i in range(n):
            g = G[i] + wd * p[i]
            V[i] = mu * V[i] + (one - mu) * g
            M2[i] = b2 * M2[i] + (one - b2) * (g * g)
            p[i] -= lr * (V[i] * c1) / (np.sqrt(M2[i] * c2) + eps)


@njit(**_jit)
def zeros_aligned(rows, cols, like):
    """A C-contiguous (rows, cols) array of zeros of ``like``'s dtype whose start is aligned to 64 bytes (a whole
    cache line, and an AVX-512 vector; numba aligns its arrays to 32 bytes)."""
    n = rows * cols
    buf = np.zeros(n + 64 // like.itemsize, dtype=like.dtype)
    off = (-buf.ctypes.data) % 64 // like.itemsize
    return buf[off:off + n].reshape(rows, cols)


@njit(**_jit)
def _gather_batch(X, T, perm, a, Bt, xs, ts, xb, tb):
    """Samples ``perm[a:a + Bt]`` of the sample-major ``X`` (S, F) and ``T`` (S, K) into the feature-major rows
    ``xb`` / ``tb``, through the sample-major scratch rows ``xs`` / ``ts`` (rows padded to whole vectors)."""
    F, K = X.shape[1], T.shape[1]
    for s in range(Bt):
        xrow, trow, i = xs[s], ts[s], perm[a + s]
        for f in range(F):
            xrow[f] = X[i, f]
        for o in range(K):
            trow[o] = T[i, o]
    transpose(xs, 0, Bt, F, xb)
    transpose(ts, 0, Bt, K, tb)


@njit(**_jit)
def _train_network(n, sizes, w_off, b_off, act, out, opt, params, X, T, hyper, hyper64, seeds,
                   steps, batch_size, record_every, c, track, curves, diverged, gnorms):
    L = sizes.size - 1
    S, F = X.shape
    K = T.shape[1]
    P = params.shape[1]
    full = batch_size <= 0 or batch_size >= S
    Bmax = S if full else batch_size
    p = params[n]
    zero, one, b2, eps = c[C_ZERO], c[C_ONE], c[C_BETA2], c[C_EPS]
    seed = seeds[n]
    p_drop = hyper64[n, DROP]  # compared with float64 uniforms, as in the reference
    use_drop = p_drop > 0
    keep = hyper[n, KEEP]
    lr_n, mu, wd_n = hyper[n, LR], hyper[n, MOM], hyper[n, WD]
    mu64, beta2_64 = hyper64[n, MOM], hyper64[n, BETA2]
    cvt = np.empty(3, dtype=params.dtype)  # rounds float64 scalars to the dtype, as the reference does

    roff = np.empty(L, dtype=np.int64)
    rows = 0
    for l in range(L):
        roff[l] = rows
        rows += sizes[l + 1]
    # Every row is padded to a multiple of 32 values, so that all rows start as aligned as the array (64 bytes:
    # with 891-sample rows most vector loads straddled two cache lines: bench/NOTES.md, changes 16 and 23) and
    # the forward and delta products can run over whole tiles of samples (``Bc`` of them). The data are copied
    # into such rows too. Zeros, so that the padding never holds a NaN or a denormal.
    Bpad = (Bmax + 31) // 32 * 32
    H = zeros_aligned(rows, Bpad, params)
    D = zeros_aligned(rows, Bpad, params)
    A = zeros_aligned(rows if use_drop else 0, Bpad, params)
    M = zeros_aligned(rows if use_drop else 0, Bpad, params)
    # The data come sample-major; a minibatch is copied row by row into xs / ts (contiguous copies, where picking
    # its columns of feature-major data read a cache line per sample and feature: bench/NOTES.md, change 27),
    # then transposed into the feature-major rows xb / tb that the products read. A full batch: once, directly.
    Fpad = (F + 31) // 32 * 32
    Kpad = (K + 31) // 32 * 32
    xb = zeros_aligned(Fpad, Bpad, X)
    tb = zeros_aligned(Kpad, Bpad, T)
    xs = zeros_aligned(0 if full else Bpad, Fpad, X)
    ts = zeros_aligned(0 if full else Bpad, Kpad, T)
    if full:
        for s in range(S):
            for f in range(F):
                xb[f, s] = X[s, f]
            for o in range(K):
                tb[o, s] = T[s, o]
    G = np.empty(P, dtype=params.dtype)
    # a layer's input transposed, for the weight gradients that take vectors along the inputs
    # (chosen once per layer, for the full batch size)
    by_inputs = np.zeros(L, dtype=np.bool_)
    fan_in = 0
    for l in range(L):
        by_inputs[l] = along_inputs(sizes[l + 1], sizes[l], Bmax, params.itemsize)
        if by_inputs[l]:
            fan_in = max(fan_in, sizes[l])
    AT = zeros_aligned(Bpad if fan_in > 0 else 0, at_columns(fan_in, params.itemsize), params)
    tmp = np.empty(32, dtype=params.dtype)
    rows = zeros_aligned(3, Bpad, params)  # softmax's per-sample max and sum, and the loss's terms
    V = np.zeros(P, dtype=params.dtype)
    M2 = np.zeros(P, dtype=params.dtype)
    perm = np.arange(S)
    perm_epoch = -1
    per_epoch = 1 if full else (S + batch_size - 1) // batch_size

    for t in range(steps):
        Bt = S
        if not full:
            epoch = t // per_epoch
            jb = t - epoch * per_epoch
            if epoch != perm_epoch:
                perm = rng.epoch_permutation(seed, epoch, S)
                perm_epoch = epoch
            a = jb * batch_size
            b = min(S, a + batch_size)
            Bt = b - a
            _gather_batch(X, T, perm, a, Bt, xs, ts, xb, tb)
        Bc = tile_columns(Bt, H.itemsize)

        # forward
        for l in range(L):
            fi, fo = sizes[l], sizes[l + 1]
            src, r_in = _layer_input(l, xb, A, H, roff, use_drop)
            product(p, w_off[l], fi, 1, b_off[l], zero, fo, fi, src, r_in, H, roff[l], Bc)
            if l < L - 1:
                _activate(H, roff[l], fo, Bt, act, c)
                if use_drop:
                    key = rng.stream_key(seed, rng.dropout_stream(t, l))
                    _dropout(H, A, M, roff[l], fo, Bt, key, p_drop, keep)

        rec = t % record_every == 0
        cvt[0] = 1.0 / Bt if out == 1 else 1.0 / (Bt * K)
        loss, chk = _output_delta(H, D, roff[L - 1], K, tb, Bt, out, c, cvt[0], rec, rows)
        if not (np.isfinite(chk) and np.isfinite(loss)):
            diverged[n] = t
            return
        if rec:
            curves[n, t // record_every] = loss

        # backward: gradients of layer l, then the deltas of the layer below
        for l in range(L - 1, -1, -1):
            fi, fo = sizes[l], sizes[l + 1]
            src, r_in = _layer_input(l, xb, A, H, roff, use_drop)
            weight_grad(D, roff[l], fo, src, r_in, fi, Bt, G, w_off[l], b_off[l], zero, by_inputs[l], AT, tmp)
            if track and rec:
                sq = zero
                for i in range(w_off[l], b_off[l]):
                    sq += G[i] * G[i]
                gnorms[n, t // record_every, l] = np.sqrt(sq)
            if l > 0:
                _input_delta(p, w_off[l], fi, fo, D, roff[l], roff[l - 1], Bt, Bc, H, M, use_drop, act, c)

        # update
        cvt[1] = 1.0
        cvt[2] = 1.0
        if opt == 3:
            cvt[1] = 1.0 / (1.0 - mu64 ** (t + 1))
            cvt[2] = 1.0 / (1.0 - beta2_64 ** (t + 1))
        c1, c2 = cvt[1], cvt[2]
        for l in range(L):
            _update(p, G, V, M2, w_off[l], b_off[l], wd_n, opt, lr_n, mu, b2, eps, c1, c2, one)
            _update(p, G, V, M2, b_off[l], b_off[l] + sizes[l + 1], zero, opt, lr_n, mu, b2, eps, c1, c2, one)


@njit(parallel=True, **_jit)
def train_batch_kernel(nets, sizes, w_off, b_off, act, out, opt, params, X, T, hyper, hyper64, seeds,
                       steps, batch_size, record_every, c, track, curves, diverged, gnorms):
    """Trains the networks ``params[nets]`` ((N, P) in all) in place; fills their rows of ``curves``,
    ``diverged`` and ``gnorms``.

    X is (samples, features), T (samples, outputs), both C-contiguous in the params' dtype. ``hyper`` holds
    per-network lr, momentum, weight decay, dropout, 1/(1-dropout) in the dtype; ``hyper64`` the same in
    float64 plus beta2. ``c`` holds the dtype's constants (see ``C_HALF`` ...).
    """
    for k in prange(nets.size):
        _train_network(nets[k], sizes, w_off, b_off, act, out, opt, params, X, T, hyper, hyper64, seeds,
                       steps, batch_size, record_every, c, track, curves, diverged, gnorms)
