"""The Numba CPU engine for small full-batch networks: one network per SIMD lane, one sample at a time.

The per-network kernel (``network.py``) trains one network per thread and runs each pass of a step along the samples:
for W1's 7 -> 4 -> 1 network that is ~12 passes over 891-sample rows per step, each too short in its other
dimension to keep the vector units busy (bench/NOTES.md, "What would close the gaps"). Here a group of ``W``
networks (two of the host's vectors: 16 float64 or 32 float32 on AVX-512) shares every vector, one network per
lane: parameter ``i`` of the group is one vector, a sample's whole forward and backward pass runs on those
vectors, and every input value is broadcast to all lanes (the networks of a batch share the data). The gradient
is summed over the samples in order, lane by lane.

Lanes never meet: a network's numbers do not depend on which networks share its group, nor on the group's size
or the vector width, and a NaN in one lane stays there. Which engine trains a network depends only on its own
problem (``takes``), so a network gets the same bits however a grid is chunked.

Within a network every unit goes through the same operations in the same order, so identical units stay
identical. The forward products and the deltas are the per-network kernel's chains of fused multiply-adds (bias first,
then the inputs in order); the gradient's sum over the samples runs in another order than the per-network kernel's.
"""
import numpy as np
from numba import njit, prange

from . import simd
from .mathfn import exp_neg, log1p_exp_neg, log_fast, tanh_fast, tanh_fast4
from .simd import add, fma, mul, store, sub, where_gt
from .simd import wide_pair as group  # the vectors of a group of networks: two of the host's (change 32)
from .network import zeros_aligned
from ..abi import BETA2, C_BETA2, C_EPS, C_HALF, C_ONE, C_SLOPE, C_TWO, C_ZERO, LR, MOM, WD
from ...config import CACHE, JIT

_jit = dict(cache=CACHE, **JIT)

# How wide a network's layers may be to be trained here (the inputs excepted). Per sample and network this engine
# runs each product with a parameter vector from memory per multiply-add and adds to the gradient in memory,
# where the per-network kernel's tiles keep theirs in registers over long rows: it wins while the products
# between hidden layers are small. The limits come from measurements (bench/NOTES.md, change 30).
MAX_WIDTH = 64  # a network with at most one hidden layer (and its output layer)
MAX_DEEP_WIDTH = 8  # every hidden layer of a network with two or more
# samples per block (the code below names its four accumulators)
Q = 4


def takes(problem):
    """Which networks of ``problem`` this engine trains: ``(N,)`` bool.

    Full batch, no dropout (a mask per network and sample would need a random number per lane), an output
    layer of at most ``MAX_WIDTH`` units, and hidden layers of at most ``MAX_WIDTH`` units if there is one, at
    most ``MAX_DEEP_WIDTH`` if there are more. Every condition is about the network itself.
    """
    N = problem.params.shape[0]
    full = problem.batch_size <= 0 or problem.batch_size >= problem.X.shape[0]
    hidden, n_out = problem.sizes[1:-1], problem.sizes[-1]
    widest = MAX_WIDTH if len(hidden) <= 1 else MAX_DEEP_WIDTH
    small = n_out <= MAX_WIDTH and all(h <= widest for h in hidden)
    if not (full and small):
        return np.zeros(N, dtype=bool)
    return np.asarray(problem.dropout) == 0


@njit(**_jit)
def _activate(x, act, half, zero, slope):
    # vectors, not the constants' array: a call that takes an array increfs and decrefs it, every sample
    if act == 0:
        return tanh_fast(x)
    if act == 1:
        return add(half, mul(half, tanh_fast(mul(half, x))))
    if act == 2:  # zero if x < 0 else x: a NaN passes through
        return where_gt(zero, x, zero, x)
    if act == 3:
        return where_gt(x, zero, x, mul(slope, x))
    return x


@njit(inline="always", **_jit)  # inlined: as a call it was slower (bench/NOTES.md, change 33)
def _activate4(a0, a1, a2, a3, act, half, zero, slope):
    """``_activate`` of a block's four samples; a tanh or sigmoid shares divisions between them (``tanh_fast4``)."""
    if act == 0:
        return tanh_fast4(a0, a1, a2, a3)
    if act == 1:
        t0, t1, t2, t3 = tanh_fast4(mul(half, a0), mul(half, a1), mul(half, a2), mul(half, a3))
        return (add(half, mul(half, t0)), add(half, mul(half, t1)), add(half, mul(half, t2)),
                add(half, mul(half, t3)))
    return (_activate(a0, act, half, zero, slope), _activate(a1, act, half, zero, slope),
            _activate(a2, act, half, zero, slope), _activate(a3, act, half, zero, slope))


@njit(**_jit)
def _derivative_times(d, h, act, one, zero, slope):
    """``d * act'`` given the activation's output ``h``, as the per-network kernel's ``_input_delta`` computes it."""
    if act == 0:
        return mul(d, sub(one, mul(h, h)))
    if act == 1:
        return mul(d, mul(h, sub(one, h)))
    if act == 2:
        return mul(d, where_gt(h, zero, one, zero))
    if act == 3:
        return mul(d, where_gt(h, zero, one, slope))
    return d


@njit(inline="always", **_jit)
def _output_delta(y, t, out, two, inv):
    """d loss / d logit for a sigmoid (``out`` 0; ``y`` the sigmoid of the logit) or identity (2; ``y`` the
    logit) output, as the per-network kernel computes it."""
    if out == 0:
        return mul(sub(y, t), inv)
    return mul(mul(two, sub(y, t)), inv)


@njit(**_jit)
def _update(PW, G, V, M2, i0, i1, wd, opt, lr, mu, b2, eps, c1, c2, one):
    """The per-network kernel's ``_update``, one vector (one parameter of every lane) at a time."""
    for i in range(i0, i1):
        p, g = group.load(PW, i, 0), add(group.load(G, i, 0), mul(wd, group.load(PW, i, 0)))
        if opt == 0:
            p = sub(p, mul(lr, g))
        elif opt == 1:
            v = add(mul(mu, group.load(V, i, 0)), g)
            store(V, i, 0, v)
            p = sub(p, mul(lr, v))
        elif opt == 2:
            v = add(mul(mu, group.load(V, i, 0)), g)
            store(V, i, 0, v)
            p = sub(p, mul(lr, add(g, mul(mu, v))))
        else:
            v = add(mul(mu, group.load(V, i, 0)), mul(sub(one, mu), g))
            m = add(mul(b2, group.load(M2, i, 0)), mul(sub(one, b2), mul(g, g)))
            store(V, i, 0, v)
            store(M2, i, 0, m)
            p = sub(p, simd.div(mul(lr, mul(v, c1)), add(simd.sqrt(mul(m, c2)), eps)))
        store(PW, i, 0, p)


@njit(**_jit)
def _train_group(g, nets, sizes, w_off, b_off, act, out, opt, params, X, T, hyper, hyper64, steps,
                 record_every, c, track, curves, diverged, gnorms):
    W = group.BYTES // params.itemsize
    L = sizes.size - 1
    S = X.shape[0]
    K = T.shape[1]
    P = params.shape[1]
    first = g * W
    nl = min(W, nets.size - first)
    zero, one = c[C_ZERO], c[C_ONE]
    zv, onev = group.splat(zero), group.splat(one)
    half, two = group.splat(c[C_HALF]), group.splat(c[C_TWO])
    b2, eps = group.splat(c[C_BETA2]), group.splat(c[C_EPS])
    slope = group.splat(c[C_SLOPE])

    # parameter i of lane w at PW[i, w]; lanes past the group's networks train a network of zeros, never read
    PW = zeros_aligned(P, W, params)
    G = zeros_aligned(P, W, params)
    V = zeros_aligned(P, W, params)
    M2 = zeros_aligned(P, W, params)
    HY = zeros_aligned(8, W, params)  # lr, momentum, weight decay, Adam's corrections, loss, check, grad norm
    for w in range(nl):
        n = nets[first + w]
        for i in range(P):
            PW[i, w] = params[n, i]
        HY[0, w], HY[1, w], HY[2, w] = hyper[n, LR], hyper[n, MOM], hyper[n, WD]
    alive = np.zeros(W, dtype=np.bool_)
    alive[:nl] = True
    n_alive = nl

    roff = np.empty(L, dtype=np.int64)
    U = 0
    for l in range(L):
        roff[l] = U
        U += sizes[l + 1]
    H = zeros_aligned(Q * U, W, params)  # a block's activations (the output layer's logits): row Q unit + q
    D = zeros_aligned(Q * U, W, params)  # and their deltas
    E = zeros_aligned(K + 1, W, params)  # softmax's exponentials and their sum
    Z = zeros_aligned(S * K, W, params)  # the logits, on the steps that record a loss
    cvt = np.empty(1, dtype=params.dtype)
    cvt[0] = 1.0 / S if out == 1 else 1.0 / (S * K)
    inv = group.splat(cvt[0])
    oL = roff[L - 1]

    for t in range(steps):
        rec = t % record_every == 0
        for i in range(P):
            store(G, i, 0, zv)
        chk = zv
        for s in range(0, S, Q):
            # Q samples at once, each its own chain of operations: one sample's pass is a long chain
            # (products, tanh, output, back) with too many instructions for the core to overlap two of them
            # (bench/NOTES.md, change 30). A block past the last sample repeats it, with its deltas set to zero.
            s0, s1, s2, s3 = s, min(s + 1, S - 1), min(s + 2, S - 1), min(s + 3, S - 1)
            for l in range(L):
                fi, fo, w0, b0 = sizes[l], sizes[l + 1], w_off[l], b_off[l]
                r_in, r_out = Q * roff[l - 1], Q * roff[l]
                for j in range(fo):
                    a0 = group.load(PW, b0 + j, 0)
                    a1, a2, a3 = a0, a0, a0
                    k = w0 + j * fi
                    if l == 0:
                        for i in range(fi):
                            wv = group.load(PW, k + i, 0)
                            a0 = fma(wv, group.broadcast(X, s0, i), a0)
                            a1 = fma(wv, group.broadcast(X, s1, i), a1)
                            a2 = fma(wv, group.broadcast(X, s2, i), a2)
                            a3 = fma(wv, group.broadcast(X, s3, i), a3)
                    else:
                        for i in range(fi):
                            wv, r = group.load(PW, k + i, 0), r_in + Q * i
                            a0 = fma(wv, group.load(H, r, 0), a0)
                            a1 = fma(wv, group.load(H, r + 1, 0), a1)
                            a2 = fma(wv, group.load(H, r + 2, 0), a2)
                            a3 = fma(wv, group.load(H, r + 3, 0), a3)
                    if l < L - 1:
                        a0, a1, a2, a3 = _activate4(a0, a1, a2, a3, act, half, zv, slope)
                    r = r_out + Q * j
                    store(H, r, 0, a0)
                    store(H, r + 1, 0, a1)
                    store(H, r + 2, 0, a2)
                    store(H, r + 3, 0, a3)
            # d loss / d logits; the check sum is NaN in a lane iff one of its logits is not finite. A whole block
            # of a sigmoid or identity output at once, written out as four chains (change 31); softmax, and a
            # block past the last sample, one sample at a time.
            if out != 1 and s + Q <= S:
                for o in range(K):
                    r = Q * (oL + o)
                    z0, z1 = group.load(H, r, 0), group.load(H, r + 1, 0)
                    z2, z3 = group.load(H, r + 2, 0), group.load(H, r + 3, 0)
                    chk = add(add(add(add(chk, mul(z0, zv)), mul(z1, zv)), mul(z2, zv)), mul(z3, zv))
                    if rec:
                        store(Z, s * K + o, 0, z0)
                        store(Z, (s + 1) * K + o, 0, z1)
                        store(Z, (s + 2) * K + o, 0, z2)
                        store(Z, (s + 3) * K + o, 0, z3)
                    if out == 0:  # the sigmoids
                        z0, z1, z2, z3 = _activate4(z0, z1, z2, z3, 1, half, zv, slope)
                    store(D, r, 0, _output_delta(z0, group.broadcast(T, s, o), out, two, inv))
                    store(D, r + 1, 0, _output_delta(z1, group.broadcast(T, s + 1, o), out, two, inv))
                    store(D, r + 2, 0, _output_delta(z2, group.broadcast(T, s + 2, o), out, two, inv))
                    store(D, r + 3, 0, _output_delta(z3, group.broadcast(T, s + 3, o), out, two, inv))
            else:
                for q in range(min(Q, S - s)):
                    sq = s + q
                    for o in range(K):
                        z = group.load(H, Q * (oL + o) + q, 0)
                        chk = add(chk, mul(z, zv))
                        if rec:
                            store(Z, sq * K + o, 0, z)
                    if out != 1:
                        for o in range(K):
                            z, r = group.load(H, Q * (oL + o) + q, 0), Q * (oL + o) + q
                            if out == 0:
                                z = _activate(z, 1, half, zv, slope)
                            store(D, r, 0, _output_delta(z, group.broadcast(T, sq, o), out, two, inv))
                    else:
                        mx = group.load(H, Q * oL + q, 0)
                        for o in range(1, K):
                            z = group.load(H, Q * (oL + o) + q, 0)
                            mx = where_gt(z, mx, z, mx)
                        for o in range(K):
                            store(E, o, 0, sub(group.load(H, Q * (oL + o) + q, 0), mx))
                            for w in range(W):  # libm-free exp, vectorised by LLVM along the lanes
                                E[o, w] = exp_neg(E[o, w])
                        tot = zv
                        for o in range(K):
                            tot = add(tot, group.load(E, o, 0))
                        for o in range(K):
                            d = sub(simd.div(group.load(E, o, 0), tot), group.broadcast(T, sq, o))
                            store(D, Q * (oL + o) + q, 0, mul(d, inv))
                        if rec:  # the sample's loss, log(sum) + max - sum_o t_o z_o, in its first logit's place
                            dot = zv
                            for o in range(K):
                                dot = add(dot, mul(group.broadcast(T, sq, o), group.load(H, Q * (oL + o) + q, 0)))
                            store(E, K, 0, tot)
                            for w in range(W):
                                E[K, w] = log_fast(E[K, w])
                            store(Z, sq * K, 0, sub(add(group.load(E, K, 0), mx), dot))
            for q in range(S - s, Q):  # zero deltas: the repeated samples add exactly nothing to the gradient
                for o in range(K):
                    store(D, Q * (oL + o) + q, 0, zv)

            # backward: the block's share of every gradient, each element's four terms in sample order (the order
            # of the sum). The output layer's from its deltas; then, layer by layer down, each unit's four deltas
            # (kept in D for the layer below) and at once, while they are in registers, its bias's and weights'
            # gradient: no second pass over the deltas (bench/NOTES.md, change 31).
            # (The weight-gradient loops below are written out twice on purpose: shared through an inlined helper
            # that takes the arrays, or through one loop over all layers, they ran slower; change 31.)
            l = L - 1  # the output layer's biases and weights
            fi, r_in = sizes[l], Q * roff[l - 1]
            for o in range(K):
                r, k, kb = Q * (oL + o), w_off[l] + o * fi, b_off[l] + o
                d0, d1 = group.load(D, r, 0), group.load(D, r + 1, 0)
                d2, d3 = group.load(D, r + 2, 0), group.load(D, r + 3, 0)
                store(G, kb, 0, add(add(add(add(group.load(G, kb, 0), d0), d1), d2), d3))
                if L == 1:
                    for i in range(fi):
                        gv = fma(d0, group.broadcast(X, s0, i), group.load(G, k + i, 0))
                        gv = fma(d1, group.broadcast(X, s1, i), gv)
                        gv = fma(d2, group.broadcast(X, s2, i), gv)
                        store(G, k + i, 0, fma(d3, group.broadcast(X, s3, i), gv))
                else:
                    for i in range(fi):
                        ri = r_in + Q * i
                        gv = fma(d0, group.load(H, ri, 0), group.load(G, k + i, 0))
                        gv = fma(d1, group.load(H, ri + 1, 0), gv)
                        gv = fma(d2, group.load(H, ri + 2, 0), gv)
                        store(G, k + i, 0, fma(d3, group.load(H, ri + 3, 0), gv))
            for l in range(L - 1, 0, -1):  # the deltas into layer l - 1, and that layer's gradient
                fi, fo, w0 = sizes[l], sizes[l + 1], w_off[l]
                fb, wb, bb = sizes[l - 1], w_off[l - 1], b_off[l - 1]
                r_in, r_out = Q * roff[l - 1], Q * roff[l]
                for j in range(fi):  # unit j of layer l - 1
                    rj = r_in + Q * j
                    a0 = zv
                    a1, a2, a3 = a0, a0, a0
                    for o in range(fo):
                        r, k = r_out + Q * o, w0 + o * fi + j
                        d0, d1 = group.load(D, r, 0), group.load(D, r + 1, 0)
                        d2, d3 = group.load(D, r + 2, 0), group.load(D, r + 3, 0)
                        wv = group.load(PW, k, 0)
                        a0, a1, a2, a3 = fma(wv, d0, a0), fma(wv, d1, a1), fma(wv, d2, a2), fma(wv, d3, a3)
                    a0 = _derivative_times(a0, group.load(H, rj, 0), act, onev, zv, slope)
                    a1 = _derivative_times(a1, group.load(H, rj + 1, 0), act, onev, zv, slope)
                    a2 = _derivative_times(a2, group.load(H, rj + 2, 0), act, onev, zv, slope)
                    a3 = _derivative_times(a3, group.load(H, rj + 3, 0), act, onev, zv, slope)
                    if l > 1:  # the layer below this one needs them
                        store(D, rj, 0, a0)
                        store(D, rj + 1, 0, a1)
                        store(D, rj + 2, 0, a2)
                        store(D, rj + 3, 0, a3)
                    store(G, bb + j, 0, add(add(add(add(group.load(G, bb + j, 0), a0), a1), a2), a3))
                    k = wb + j * fb
                    if l == 1:
                        for i in range(fb):
                            gv = fma(a0, group.broadcast(X, s0, i), group.load(G, k + i, 0))
                            gv = fma(a1, group.broadcast(X, s1, i), gv)
                            gv = fma(a2, group.broadcast(X, s2, i), gv)
                            store(G, k + i, 0, fma(a3, group.broadcast(X, s3, i), gv))
                    else:
                        r2 = Q * roff[l - 2]
                        for i in range(fb):
                            ri = r2 + Q * i
                            gv = fma(a0, group.load(H, ri, 0), group.load(G, k + i, 0))
                            gv = fma(a1, group.load(H, ri + 1, 0), gv)
                            gv = fma(a2, group.load(H, ri + 2, 0), gv)
                            store(G, k + i, 0, fma(a3, group.load(H, ri + 3, 0), gv))

        # the loss: each sample's term, then their sum in order, lane by lane
        loss = zv
        if rec:
            if out == 0:
                for s in range(S):  # indexed, not row views: a view per sample is a reference count pair
                    for o in range(K):
                        k, tv = s * K + o, T[s, o]
                        for w in range(W):
                            z = Z[k, w]
                            Z[k, w] = (z if z > zero else zero) - z * tv + log1p_exp_neg(abs(z))
            elif out == 2:
                for s in range(S):
                    for o in range(K):
                        k, tv = s * K + o, T[s, o]
                        for w in range(W):
                            d = Z[k, w] - tv
                            Z[k, w] = d * d
            step = 1 if out != 1 else K  # softmax keeps one term per sample
            for s in range(0, S * K, step):
                loss = add(loss, group.load(Z, s, 0))
            loss = mul(loss, inv)
        store(HY, 5, 0, loss)
        store(HY, 6, 0, add(chk, mul(loss, zv)))
        for w in range(nl):
            if alive[w] and not (np.isfinite(HY[6, w]) and np.isfinite(HY[5, w])):
                n = nets[first + w]
                diverged[n] = t
                for i in range(P):  # the parameters the step started from, as the per-network kernel leaves them
                    params[n, i] = PW[i, w]
                alive[w] = False
                n_alive -= 1
        if n_alive == 0:
            return
        if rec:
            for w in range(nl):
                if alive[w]:
                    curves[nets[first + w], t // record_every] = HY[5, w]
        if track and rec:
            for l in range(L):
                sq = zv
                for i in range(w_off[l], b_off[l]):
                    gi = group.load(G, i, 0)
                    sq = add(sq, mul(gi, gi))
                store(HY, 7, 0, simd.sqrt(sq))
                for w in range(nl):
                    if alive[w]:
                        gnorms[nets[first + w], t // record_every, l] = HY[7, w]

        # update
        for w in range(nl):
            HY[3, w], HY[4, w] = one, one
            if opt == 3:
                n = nets[first + w]
                HY[3, w] = 1.0 / (1.0 - hyper64[n, MOM] ** (t + 1))
                HY[4, w] = 1.0 / (1.0 - hyper64[n, BETA2] ** (t + 1))
        lr, mu, wd = group.load(HY, 0, 0), group.load(HY, 1, 0), group.load(HY, 2, 0)
        c1, c2 = group.load(HY, 3, 0), group.load(HY, 4, 0)
        for l in range(L):
            _update(PW, G, V, M2, w_off[l], b_off[l], wd, opt, lr, mu, b2, eps, c1, c2, onev)
            _update(PW, G, V, M2, b_off[l], b_off[l] + sizes[l + 1], zv, opt, lr, mu, b2, eps, c1, c2, onev)

    for w in range(nl):
        if alive[w]:
            n = nets[first + w]
            for i in range(P):
                params[n, i] = PW[i, w]


@njit(parallel=True, **_jit)
def train_lanes_kernel(nets, sizes, w_off, b_off, act, out, opt, params, X, T, hyper, hyper64, steps,
                       record_every, c, track, curves, diverged, gnorms):
    """Trains the networks ``params[nets]`` (full batch) in place, ``wide`` lanes at a time; fills their rows of
    ``curves``, ``diverged`` and ``gnorms``. The other arguments are the per-network kernel's
    (``cpu.train_batch_kernel``)."""
    W = group.BYTES // params.itemsize
    for g in prange((nets.size + W - 1) // W):
        # int64: the parallel loop's index is unsigned, the loop's typing pass sees it signed, and numba would
        # compile _train_group, and all it calls, for each (W1's first compile took 1.5-2x as long, bench/NOTES.md
        # change 37)
        _train_group(np.int64(g), nets, sizes, w_off, b_off, act, out, opt, params, X, T, hyper, hyper64, steps,
                     record_every, c, track, curves, diverged, gnorms)
