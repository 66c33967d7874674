"""The Numba CPU engine: all steps of all networks in one compiled call, one network per thread.

Activations are feature-major, ``(units, batch)``, so the innermost loop of every product runs along samples:
long, contiguous and vectorised. Each network owns its buffers (allocated once, before its first step); no
accumulator is shared between threads. Rows are padded to 64 bytes (aligned vector loads), and the products
that write rows do so through ``rows.store`` (no runtime overlap checks before each loop).

Identical units must stay bit-identical, so every unit goes through the same loop with the same trip counts:
products are blocked over the *summed* index only in the forward pass (where the blocking is the same for every
output unit), never over units; every reduction over samples is one plain loop per (unit, input) pair.
"""
import numpy as np
from numba import njit, prange

from .config import CACHE, JIT, JIT_REDUCE
from .mathfn import exp_neg, log1p_exp_neg, log_fast, tanh_fast
from .rows import IN, OUT0, OUT1, load, store
from .. import rng

ACT_CODES = {"tanh": 0, "sigmoid": 1, "relu": 2, "leaky_relu": 3, "linear": 4}
OUT_CODES = {"sigmoid": 0, "softmax": 1, "identity": 2}
OPT_CODES = {"sgd": 0, "momentum": 1, "nesterov": 2, "adam": 3}

# indices into the per-dtype constant vector ``c`` (so that float32 code stays float32)
_HALF, _ONE, _SLOPE, _TWO, _ZERO, _BETA2, _EPS = 0, 1, 2, 3, 4, 5, 6
# columns of the per-network hyper-parameter arrays
LR, MOM, WD, DROP, KEEP = 0, 1, 2, 3, 4

_jit = dict(cache=CACHE, **JIT)
_jit_reduce = dict(cache=CACHE, **JIT_REDUCE)


@njit(**_jit)
def _in4(a_0, a_1, a_2, a_3, s):
    """Element ``s`` of four input rows, read in the ``IN`` scope (see ``rows``)."""
    return load(a_0, s, IN), load(a_1, s, IN), load(a_2, s, IN), load(a_3, s, IN)


@njit(**_jit)
def _forward_layer(p, w0, b0, fi, fo, inp, ir0, out, or0, Bt, zrow, spare):
    """out[j] = b[j] + sum_k W[j, k] inp[k]: two units and eight (or four, when ``fi <= 4``) inputs per pass.

    Every unit's sum has the same expression tree: the blocking runs over the inputs (the same for every unit),
    and inputs past ``fi`` in the last block read ``zrow`` (zeros) with weight 0, adding exact zeros. The code is
    exact IEEE (no fast-math), and every operation is element-wise along the samples, so a unit computed in a
    pair or alone (an odd last unit) gets the same bits. Rows are read and written through ``rows.load`` and
    ``rows.store`` (the output rows are never input rows), so the loops vectorise without overlap checks.
    """
    for j in range(0, fo, 2):
        two = j + 1 < fo
        jb = j + 1 if two else j
        orow = out[or0 + j]
        orow2 = out[or0 + jb] if two else spare
        wr, wr2 = w0 + j * fi, w0 + jb * fi
        bj, bj2 = p[b0 + j], p[b0 + jb]
        zero = bj - bj
        if fi <= 4:
            u = fi
            a_0 = inp[ir0]
            a_1 = inp[ir0 + 1] if u > 1 else zrow
            a_2 = inp[ir0 + 2] if u > 2 else zrow
            a_3 = inp[ir0 + 3] if u > 3 else zrow
            w_0, v_0 = p[wr], p[wr2]
            w_1, v_1 = (p[wr + 1], p[wr2 + 1]) if u > 1 else (zero, zero)
            w_2, v_2 = (p[wr + 2], p[wr2 + 2]) if u > 2 else (zero, zero)
            w_3, v_3 = (p[wr + 3], p[wr2 + 3]) if u > 3 else (zero, zero)
            if two:
                for s in range(Bt):
                    x0, x1, x2, x3 = _in4(a_0, a_1, a_2, a_3, s)
                    store(orow, s, bj + ((w_0 * x0 + w_1 * x1) + (w_2 * x2 + w_3 * x3)), OUT0)
                    store(orow2, s, bj2 + ((v_0 * x0 + v_1 * x1) + (v_2 * x2 + v_3 * x3)), OUT1)
            else:
                for s in range(Bt):
                    x0, x1, x2, x3 = _in4(a_0, a_1, a_2, a_3, s)
                    store(orow, s, bj + ((w_0 * x0 + w_1 * x1) + (w_2 * x2 + w_3 * x3)), OUT0)
            continue
        for k in range(0, fi, 8):
            u = fi - k  # inputs left in this block
            a_0 = inp[ir0 + k]
            a_1 = inp[ir0 + k + 1] if u > 1 else zrow
            a_2 = inp[ir0 + k + 2] if u > 2 else zrow
            a_3 = inp[ir0 + k + 3] if u > 3 else zrow
            a_4 = inp[ir0 + k + 4] if u > 4 else zrow
            a_5 = inp[ir0 + k + 5] if u > 5 else zrow
            a_6 = inp[ir0 + k + 6] if u > 6 else zrow
            a_7 = inp[ir0 + k + 7] if u > 7 else zrow
            w_0, v_0 = p[wr + k], p[wr2 + k]
            w_1, v_1 = (p[wr + k + 1], p[wr2 + k + 1]) if u > 1 else (zero, zero)
            w_2, v_2 = (p[wr + k + 2], p[wr2 + k + 2]) if u > 2 else (zero, zero)
            w_3, v_3 = (p[wr + k + 3], p[wr2 + k + 3]) if u > 3 else (zero, zero)
            w_4, v_4 = (p[wr + k + 4], p[wr2 + k + 4]) if u > 4 else (zero, zero)
            w_5, v_5 = (p[wr + k + 5], p[wr2 + k + 5]) if u > 5 else (zero, zero)
            w_6, v_6 = (p[wr + k + 6], p[wr2 + k + 6]) if u > 6 else (zero, zero)
            w_7, v_7 = (p[wr + k + 7], p[wr2 + k + 7]) if u > 7 else (zero, zero)
            if not two:
                if k == 0:
                    for s in range(Bt):
                        x0, x1, x2, x3 = _in4(a_0, a_1, a_2, a_3, s)
                        x4, x5, x6, x7 = _in4(a_4, a_5, a_6, a_7, s)
                        store(orow, s, bj + (((w_0 * x0 + w_1 * x1) + (w_2 * x2 + w_3 * x3))
                                             + ((w_4 * x4 + w_5 * x5) + (w_6 * x6 + w_7 * x7))), OUT0)
                else:
                    for s in range(Bt):
                        x0, x1, x2, x3 = _in4(a_0, a_1, a_2, a_3, s)
                        x4, x5, x6, x7 = _in4(a_4, a_5, a_6, a_7, s)
                        store(orow, s, load(orow, s, OUT0) + (((w_0 * x0 + w_1 * x1) + (w_2 * x2 + w_3 * x3))
                                                              + ((w_4 * x4 + w_5 * x5) + (w_6 * x6 + w_7 * x7))),
                              OUT0)
            elif k == 0:
                for s in range(Bt):
                    x0, x1, x2, x3 = _in4(a_0, a_1, a_2, a_3, s)
                    x4, x5, x6, x7 = _in4(a_4, a_5, a_6, a_7, s)
                    store(orow, s, bj + (((w_0 * x0 + w_1 * x1) + (w_2 * x2 + w_3 * x3))
                                         + ((w_4 * x4 + w_5 * x5) + (w_6 * x6 + w_7 * x7))), OUT0)
                    store(orow2, s, bj2 + (((v_0 * x0 + v_1 * x1) + (v_2 * x2 + v_3 * x3))
                                           + ((v_4 * x4 + v_5 * x5) + (v_6 * x6 + v_7 * x7))), OUT1)
            else:
                for s in range(Bt):
                    x0, x1, x2, x3 = _in4(a_0, a_1, a_2, a_3, s)
                    x4, x5, x6, x7 = _in4(a_4, a_5, a_6, a_7, s)
                    store(orow, s, load(orow, s, OUT0) + (((w_0 * x0 + w_1 * x1) + (w_2 * x2 + w_3 * x3))
                                                          + ((w_4 * x4 + w_5 * x5) + (w_6 * x6 + w_7 * x7))), OUT0)
                    store(orow2, s, load(orow2, s, OUT1) + (((v_0 * x0 + v_1 * x1) + (v_2 * x2 + v_3 * x3))
                                                            + ((v_4 * x4 + v_5 * x5) + (v_6 * x6 + v_7 * x7))), OUT1)


@njit(**_jit)
def _activate(H, r0, n, Bt, act, c):
    half, slope, zero = c[_HALF], c[_SLOPE], c[_ZERO]
    for r in range(r0, r0 + n):
        row = H[r]
        if act == 0:
            for s in range(Bt):
                row[s] = tanh_fast(row[s])
        elif act == 1:
            for s in range(Bt):
                row[s] = half + half * tanh_fast(half * row[s])
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


@njit(**_jit_reduce)
def _row_sum(row, n, zero):
    acc = zero
    for s in range(n):
        acc += row[s]
    return acc


@njit(**_jit)
def _output_delta(H, D, r0, K, T, Bt, out, c, inv, want_loss, spare, rows):
    """Writes d loss / d logits into D; returns (loss or 0, check sum that is NaN iff a logit is not finite).

    ``inv`` is 1 / (Bt K) for sigmoid and identity outputs, 1 / Bt for softmax, rounded once to the dtype.
    ``spare`` is a scratch row, ``rows`` two more.
    """
    half, two, zero = c[_HALF], c[_TWO], c[_ZERO]
    chk = _nonfinite_check(H, r0, K, Bt, zero)
    loss = zero
    if out == 0:  # sigmoid + binary cross-entropy
        for o in range(K):
            zr, dr, tr = H[r0 + o], D[r0 + o], T[o]
            for s in range(Bt):
                dr[s] = (half + half * tanh_fast(half * zr[s]) - tr[s]) * inv
            if want_loss:
                # each sample's term in a vectorised loop (libm's log1p and exp are scalar calls: they cost
                # more than the whole training step of a small network), then their sum
                for s in range(Bt):
                    z = zr[s]
                    spare[s] = (z if z > zero else zero) - z * tr[s] + log1p_exp_neg(abs(z))
                loss += _row_sum(spare, Bt, zero)
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
        chk += _row_sum(tot, Bt, zero) * zero
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
            loss += _row_sum(spare, Bt, zero)
        loss *= inv
    return loss, chk


@njit(**_jit_reduce)
def _weight_grad(D, dr0, fo, inp, ir0, fi, Bt, G, w0, b0, zero, zrow):
    """G[W] = D @ inp.T and G[b] = D.sum(1).

    Compiled with ``reassoc`` so the sums over samples vectorise; the loop does nothing else, so the order LLVM
    picks is the same for every (unit, input) pair and every compilation.

    Two units and four inputs share a pass over the samples. Inputs past ``fi`` read ``zrow`` and an odd last
    unit is paired with itself; their sums are discarded. So every (unit, input) pair is reduced by the same
    code, in the same order. A layer of one unit (``fo == 1``) has its own loop: there is no other unit to match.
    """
    if fo == 1:  # a single unit (an output layer): nothing to keep identical, no twin to compute
        d0 = D[dr0]
        for k in range(0, fi, 4):
            u = fi - k
            a_0 = inp[ir0 + k]
            a_1 = inp[ir0 + k + 1] if u > 1 else zrow
            a_2 = inp[ir0 + k + 2] if u > 2 else zrow
            a_3 = inp[ir0 + k + 3] if u > 3 else zrow
            c00 = zero
            c01 = zero
            c02 = zero
            c03 = zero
            for s in range(Bt):
                e0 = d0[s]
                c00 += e0 * a_0[s]
                c01 += e0 * a_1[s]
                c02 += e0 * a_2[s]
                c03 += e0 * a_3[s]
            g0 = w0 + k
            G[g0] = c00
            if u > 1:
                G[g0 + 1] = c01
            if u > 2:
                G[g0 + 2] = c02
            if u > 3:
                G[g0 + 3] = c03
        acc0 = zero
        for s in range(Bt):
            acc0 += d0[s]
        G[b0] = acc0
        return
    for j in range(0, fo, 2):
        jb = j + 1 if j + 1 < fo else j
        d0, d1 = D[dr0 + j], D[dr0 + jb]
        for k in range(0, fi, 4):
            u = fi - k
            a_0 = inp[ir0 + k]
            a_1 = inp[ir0 + k + 1] if u > 1 else zrow
            a_2 = inp[ir0 + k + 2] if u > 2 else zrow
            a_3 = inp[ir0 + k + 3] if u > 3 else zrow
            c00 = zero
            c01 = zero
            c02 = zero
            c03 = zero
            c10 = zero
            c11 = zero
            c12 = zero
            c13 = zero
            for s in range(Bt):
                x0, x1, x2, x3 = a_0[s], a_1[s], a_2[s], a_3[s]
                e0, e1 = d0[s], d1[s]
                c00 += e0 * x0
                c01 += e0 * x1
                c02 += e0 * x2
                c03 += e0 * x3
                c10 += e1 * x0
                c11 += e1 * x1
                c12 += e1 * x2
                c13 += e1 * x3
            g0, g1 = w0 + j * fi + k, w0 + jb * fi + k
            G[g0] = c00
            if u > 1:
                G[g0 + 1] = c01
            if u > 2:
                G[g0 + 2] = c02
            if u > 3:
                G[g0 + 3] = c03
            if jb != j:
                G[g1] = c10
                if u > 1:
                    G[g1 + 1] = c11
                if u > 2:
                    G[g1 + 2] = c12
                if u > 3:
                    G[g1 + 3] = c13
        acc0 = zero
        acc1 = zero
        for s in range(Bt):
            acc0 += d0[s]
            acc1 += d1[s]
        G[b0 + j] = acc0
        G[b0 + jb] = acc1


@njit(**_jit)
def _input_delta(p, w0, fi, fo, D, dr0, dst0, Bt, H, M, use_mask, act, c, zrow, spare):
    """D[dst] = (W.T @ D[layer]) * mask * act'(H[dst]) for the layer below.

    Two destination units and four source units per pass (one source unit when ``fo == 1``); as in
    ``_forward_layer``, missing source units read ``zrow`` with weight 0 (the same expression tree for every
    destination unit), and an odd last destination unit runs alone (exact IEEE, element-wise: same bits).
    The rows of the layer below are written through ``rows.store`` (they are never rows of this layer).
    """
    one, slope, zero = c[_ONE], c[_SLOPE], c[_ZERO]
    for k in range(0, fi, 2):
        two = k + 1 < fi
        kb = k + 1 if two else k
        r0 = D[dst0 + k]
        r1 = D[dst0 + kb] if two else spare
        if fo == 1:  # one source unit: a plain scaled copy
            e_0 = D[dr0]
            w_0, v_0 = p[w0 + k], p[w0 + kb]
            for s in range(Bt):
                store(r0, s, w_0 * load(e_0, s, IN), OUT0)
            if two:
                for s in range(Bt):
                    store(r1, s, v_0 * load(e_0, s, IN), OUT1)
            continue
        for j in range(0, fo, 4):
            u = fo - j
            e_0 = D[dr0 + j]
            e_1 = D[dr0 + j + 1] if u > 1 else zrow
            e_2 = D[dr0 + j + 2] if u > 2 else zrow
            e_3 = D[dr0 + j + 3] if u > 3 else zrow
            w_0, v_0 = p[w0 + j * fi + k], p[w0 + j * fi + kb]
            w_1, v_1 = (p[w0 + (j + 1) * fi + k], p[w0 + (j + 1) * fi + kb]) if u > 1 else (zero, zero)
            w_2, v_2 = (p[w0 + (j + 2) * fi + k], p[w0 + (j + 2) * fi + kb]) if u > 2 else (zero, zero)
            w_3, v_3 = (p[w0 + (j + 3) * fi + k], p[w0 + (j + 3) * fi + kb]) if u > 3 else (zero, zero)
            if not two:
                if j == 0:
                    for s in range(Bt):
                        x0, x1, x2, x3 = _in4(e_0, e_1, e_2, e_3, s)
                        store(r0, s, (w_0 * x0 + w_1 * x1) + (w_2 * x2 + w_3 * x3), OUT0)
                else:
                    for s in range(Bt):
                        x0, x1, x2, x3 = _in4(e_0, e_1, e_2, e_3, s)
                        store(r0, s, load(r0, s, OUT0) + ((w_0 * x0 + w_1 * x1) + (w_2 * x2 + w_3 * x3)), OUT0)
            elif j == 0:
                for s in range(Bt):
                    x0, x1, x2, x3 = _in4(e_0, e_1, e_2, e_3, s)
                    store(r0, s, (w_0 * x0 + w_1 * x1) + (w_2 * x2 + w_3 * x3), OUT0)
                    store(r1, s, (v_0 * x0 + v_1 * x1) + (v_2 * x2 + v_3 * x3), OUT1)
            else:
                for s in range(Bt):
                    x0, x1, x2, x3 = _in4(e_0, e_1, e_2, e_3, s)
                    store(r0, s, load(r0, s, OUT0) + ((w_0 * x0 + w_1 * x1) + (w_2 * x2 + w_3 * x3)), OUT0)
                    store(r1, s, load(r1, s, OUT1) + ((v_0 * x0 + v_1 * x1) + (v_2 * x2 + v_3 * x3)), OUT1)
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
    if opt == 0:
        for i in range(i0, i1):
            p[i] -= lr * (G[i] + wd * p[i])
    elif opt == 1:
        for i in range(i0, i1):
            V[i] = mu * V[i] + (G[i] + wd * p[i])
            p[i] -= lr * V[i]
    elif opt == 2:
        for i in range(i0, i1):
            g = G[i] + wd * p[i]
            V[i] = mu * V[i] + g
            p[i] -= lr * (g + mu * V[i])
    else:
        for i in range(i0, i1):
            g = G[i] + wd * p[i]
            V[i] = mu * V[i] + (one - mu) * g
            M2[i] = b2 * M2[i] + (one - b2) * (g * g)
            p[i] -= lr * (V[i] * c1) / (np.sqrt(M2[i] * c2) + eps)


@njit(**_jit)
def _train_network(n, sizes, w_off, b_off, act, out, opt, params, X, T, hyper, hyper64, seeds,
                   steps, batch_size, record_every, c, track, curves, diverged, gnorms):
    L = sizes.size - 1
    F, S = X.shape
    K = T.shape[0]
    P = params.shape[1]
    full = batch_size <= 0 or batch_size >= S
    Bmax = S if full else batch_size
    p = params[n]
    zero, one, b2, eps = c[_ZERO], c[_ONE], c[_BETA2], c[_EPS]
    seed = seeds[n]
    p_drop = hyper64[n, DROP]  # compared with float64 uniforms, as in the reference
    use_drop = p_drop > 0
    keep = hyper[n, KEEP]
    lr_n, mu, wd_n = hyper[n, LR], hyper[n, MOM], hyper[n, WD]
    mu64, beta2_64 = hyper64[n, MOM], hyper64[n, 5]
    cvt = np.empty(3, dtype=params.dtype)  # rounds float64 scalars to the dtype, as the reference does

    roff = np.empty(L, dtype=np.int64)
    rows = 0
    for l in range(L):
        roff[l] = rows
        rows += sizes[l + 1]
    # Every row is padded to a multiple of 16 values (64 bytes in float32), so that all rows start as aligned as
    # the array (numba aligns to 32 bytes): with 891-sample rows most vector loads straddled two cache lines.
    # The data are copied into such rows too (W1: ~10 % less time per step; bench/NOTES.md, change 16).
    Bpad = (Bmax + 15) // 16 * 16
    H = np.empty((rows, Bpad), dtype=params.dtype)
    D = np.empty((rows, Bpad), dtype=params.dtype)
    A = np.empty((rows if use_drop else 0, Bpad), dtype=params.dtype)
    M = np.empty((rows if use_drop else 0, Bpad), dtype=params.dtype)
    xb = np.empty((F, Bpad), dtype=X.dtype)
    tb = np.empty((K, Bpad), dtype=T.dtype)
    if full:
        xb[:, :S] = X
        tb[:, :S] = T
    G = np.empty(P, dtype=params.dtype)
    zrow = np.zeros(Bpad, dtype=params.dtype)   # stands in for missing inputs: always zero
    spare = np.empty(Bpad, dtype=params.dtype)  # takes the discarded twin of an odd last unit
    rows = np.empty((2, Bpad), dtype=params.dtype)  # softmax's per-sample max and sum
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
            for f in range(F):
                for s in range(Bt):
                    xb[f, s] = X[f, perm[a + s]]
            for o in range(K):
                for s in range(Bt):
                    tb[o, s] = T[o, perm[a + s]]

        # forward
        for l in range(L):
            fi, fo = sizes[l], sizes[l + 1]
            if l == 0:
                _forward_layer(p, w_off[l], b_off[l], fi, fo, xb, 0, H, roff[l], Bt, zrow, spare)
            elif use_drop:
                _forward_layer(p, w_off[l], b_off[l], fi, fo, A, roff[l - 1], H, roff[l], Bt, zrow, spare)
            else:
                _forward_layer(p, w_off[l], b_off[l], fi, fo, H, roff[l - 1], H, roff[l], Bt, zrow, spare)
            if l < L - 1:
                _activate(H, roff[l], fo, Bt, act, c)
                if use_drop:
                    key = rng.stream_key(seed, rng.dropout_stream(t, l))
                    _dropout(H, A, M, roff[l], fo, Bt, key, p_drop, keep)

        rec = t % record_every == 0
        cvt[0] = 1.0 / Bt if out == 1 else 1.0 / (Bt * K)
        loss, chk = _output_delta(H, D, roff[L - 1], K, tb, Bt, out, c, cvt[0], rec, spare, rows)
        if not (np.isfinite(chk) and np.isfinite(loss)):
            diverged[n] = t
            return
        if rec:
            curves[n, t // record_every] = loss

        # backward: gradients of layer l, then the deltas of the layer below
        for l in range(L - 1, -1, -1):
            fi, fo = sizes[l], sizes[l + 1]
            if l == 0:
                _weight_grad(D, roff[l], fo, xb, 0, fi, Bt, G, w_off[l], b_off[l], zero, zrow)
            elif use_drop:
                _weight_grad(D, roff[l], fo, A, roff[l - 1], fi, Bt, G, w_off[l], b_off[l], zero, zrow)
            else:
                _weight_grad(D, roff[l], fo, H, roff[l - 1], fi, Bt, G, w_off[l], b_off[l], zero, zrow)
            if track and rec:
                sq = zero
                for i in range(w_off[l], b_off[l]):
                    sq += G[i] * G[i]
                gnorms[n, t // record_every, l] = np.sqrt(sq)
            if l > 0:
                _input_delta(p, w_off[l], fi, fo, D, roff[l], roff[l - 1], Bt, H, M, use_drop, act, c, zrow, spare)

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
def train_batch_kernel(sizes, w_off, b_off, act, out, opt, params, X, T, hyper, hyper64, seeds,
                       steps, batch_size, record_every, c, track, curves, diverged, gnorms):
    """Trains ``params`` (N, P) in place; fills ``curves``, ``diverged`` and ``gnorms``.

    X is (features, samples), T (outputs, samples), both C-contiguous in the params' dtype. ``hyper`` holds
    per-network lr, momentum, weight decay, dropout, 1/(1-dropout) in the dtype; ``hyper64`` the same in
    float64 plus beta2. ``c`` holds the dtype's constants (see ``_HALF`` ...).
    """
    for n in prange(params.shape[0]):
        _train_network(n, sizes, w_off, b_off, act, out, opt, params, X, T, hyper, hyper64, seeds,
                       steps, batch_size, record_every, c, track, curves, diverged, gnorms)
