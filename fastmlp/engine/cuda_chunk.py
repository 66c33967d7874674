"""numba.cuda kernel of the chunk path: for small networks, a thread per chunk of samples, the network in registers.

The block path (``engine/cuda.py``) runs every phase of a step over (unit, sample) pairs, with the activations
and deltas in global scratch and a barrier after each phase. For a network as small as W1's (7 -> 4 -> 1,
37 parameters) that is ~12 barriers and several trips through L2 per step for ~100k multiply-adds. Here one
block still trains one network (persistent blocks, as there), but thread ``ci`` takes the samples of chunk
``ci`` (``ci, ci + nch, ...``) one after the other through the whole step: forward, output deltas, backward
and that chunk's partial sums of the weight gradient, all in registers. The kernel is compiled for the
network's layer sizes (``kernels(dtype, sizes)``), so every loop over units is unrolled and the activations,
deltas and the gradient partials (one per parameter) are registers, not memory. Then, as in the block path: the
loss partials by ``tree_sum``, the gradient partials added in chunk order (one thread per parameter), the
gradient norms and the update.

Same bits as the block path: every sum is the block path's, in its order. A forward unit: bias first, then its
inputs in order; a delta of the layer below: its units in order from zero, times the mask, times the
derivative; a gradient partial of chunk ``ci``: from zero, its samples in order; the loss: ``sample_output``
(shared) per sample in order. A test checks the two paths bit for bit.
"""
import math

import numpy as np
from numba import cuda, float32, float64

from ..layout import Layout
from . import cuda as blk
from .cpu import DROP, KEEP, LR, MOM, WD

_KERNELS = {}


def kernels(dtype, sizes):
    """The chunk path's kernel for a dtype and layer sizes (compiled on first launch)."""
    key = (np.dtype(dtype).name, tuple(int(x) for x in sizes))
    if key not in _KERNELS:
        _KERNELS[key] = _make(*key)
    return _KERNELS[key]


def _make(dtype_name, sizes):
    DT = float32 if dtype_name == "float32" else float64
    _, w_off, b_off = Layout(sizes).arrays()
    SIZES = tuple(int(x) for x in sizes)
    W_OFF = tuple(int(x) for x in w_off)
    B_OFF = tuple(int(x) for x in b_off)
    L = len(SIZES) - 1
    K = SIZES[-1]
    R_OFF = tuple(int(sum(SIZES[1:l + 1])) for l in range(L))  # each layer's first row in h and d
    ROWS = sum(SIZES[1:])
    HID = max(ROWS - K, 1)
    P = Layout(sizes).n_params

    @cuda.jit
    def train_kernel(geo, act, out, opt, params, X, T, hyper, hyper64, seeds, steps, batch_size, record_every, c,
                     track, chunk, curves, diverged, gnorms, SCR, PS):
        """The block path's ``train_kernel`` contract (same arguments but ``L``, which is compiled in)."""
        blk_id = cuda.blockIdx.x
        N = params.shape[0]
        tid = cuda.threadIdx.x
        nt = cuda.blockDim.x
        oG = geo[blk.G_G]
        oV = geo[blk.G_V]
        oM2 = geo[blk.G_M2]
        oR = geo[blk.G_R]
        oCV = geo[blk.G_CV]
        Bm = geo[blk.G_BM]
        S = geo[blk.G_S]
        nrec = geo[blk.G_NREC]
        oRG = oR + (Bm + chunk - 1) // chunk  # the gradient partials, after the loss partials
        full = batch_size <= 0 or batch_size >= S
        per_epoch = 1 if full else (S + batch_size - 1) // batch_size
        half = c[blk._HALF]
        one = c[blk._ONE]
        slope = c[blk._SLOPE]
        two = c[blk._TWO]
        zero = c[blk._ZERO]
        b2 = c[blk._BETA2]
        eps = c[blk._EPS]
        scr = SCR[blk_id]
        ps = PS[0 if full else blk_id]
        if full:
            xs = X
            xo = 0
            xl = S
            ts = T
            to = 0
            tl = S
        else:
            xs = scr
            xo = geo[blk.G_XB]
            xl = Bm
            ts = scr
            to = geo[blk.G_TB]
            tl = Bm
        h = cuda.local.array(ROWS, DT)  # one sample's activations (before dropout), then logits
        m = cuda.local.array(HID, DT)  # its dropout masks
        d = cuda.local.array(ROWS, DT)  # its deltas
        gp = cuda.local.array(P, DT)  # this chunk's gradient partials

        for n in range(blk_id, N, cuda.gridDim.x):
            seed = seeds[n]
            p_drop = hyper64[n, DROP]
            use_drop = p_drop > 0
            keep = hyper[n, KEEP]
            p = params[n]
            if opt != 0:
                for i in range(tid, P, nt):
                    scr[oV + i] = zero
            if opt == 3:
                for i in range(tid, P, nt):
                    scr[oM2 + i] = zero

            for t in range(steps):
                Bt = blk.begin_step(t, full, per_epoch, batch_size, S, SIZES[0], K, X, T, ps, seed, xs, xo, xl, ts,
                                    to, tl, scr, oCV, out, opt, hyper64[n, MOM], hyper64[n, 5])
                rec = t % record_every == 0
                want = rec or out == 2
                inv = scr[oCV]
                nch = (Bt + chunk - 1) // chunk
                for ci in range(tid, nch, nt):  # a thread a chunk (or several, in a small block)
                    for i in range(P):
                        gp[i] = zero
                    part = zero
                    s = ci
                    while s < Bt:
                        # forward: bias first, then the inputs in order (dropped activations below layer 0)
                        for l in range(L):
                            fi = SIZES[l]
                            fo = SIZES[l + 1]
                            key = blk.dropout_key(seed, t, l)
                            for j in range(fo):
                                acc = p[B_OFF[l] + j]
                                for k in range(fi):
                                    if l == 0:
                                        x = xs[xo + k * xl + s]
                                    else:
                                        x = h[R_OFF[l - 1] + k] * m[R_OFF[l - 1] + k] if use_drop else \
                                            h[R_OFF[l - 1] + k]
                                    acc += p[W_OFF[l] + j * fi + k] * x
                                if l == L - 1:
                                    h[R_OFF[l] + j] = acc
                                else:
                                    h[R_OFF[l] + j] = blk.activate(acc, act, half, slope, zero)
                                    if use_drop:
                                        m[R_OFF[l] + j] = keep if blk.uniform_at(key, j * Bt + s) >= p_drop else zero
                        part = blk.sample_output(h, R_OFF[L - 1], d, R_OFF[L - 1], 1, ts, to + s, tl, K, out, want,
                                                 inv, half, two, zero, part)
                        # backward: this chunk's gradient partials, and the deltas of the layer below
                        for l in range(L - 1, -1, -1):
                            fi = SIZES[l]
                            fo = SIZES[l + 1]
                            for j in range(fo):
                                dj = d[R_OFF[l] + j]
                                for k in range(fi):
                                    if l == 0:
                                        x = xs[xo + k * xl + s]
                                    else:
                                        x = h[R_OFF[l - 1] + k] * m[R_OFF[l - 1] + k] if use_drop else \
                                            h[R_OFF[l - 1] + k]
                                    gp[W_OFF[l] + j * fi + k] += dj * x
                                gp[B_OFF[l] + j] += dj
                            if l > 0:
                                for k in range(fi):
                                    acc = zero
                                    for j in range(fo):
                                        acc += p[W_OFF[l] + j * fi + k] * d[R_OFF[l] + j]
                                    e = R_OFF[l - 1] + k
                                    if use_drop:
                                        acc *= m[e]
                                    d[e] = acc * blk.activation_grad(h[e], act, one, slope, zero)
                        s += nch
                    scr[oR + ci] = part
                    for i in range(P):
                        scr[oRG + i * nch + ci] = gp[i]
                cuda.syncthreads()
                blk.tree_sum(scr, oR, nch)
                total = scr[oR]
                cuda.syncthreads()
                if not math.isfinite(total):
                    if tid == 0:
                        diverged[n] = t
                    break  # uniformly: every thread read the same total
                if rec and tid == 0:
                    curves[n * nrec + t // record_every] = total * inv
                # each parameter's partials in chunk order
                for i in range(tid, P, nt):
                    acc = zero
                    for ci in range(nch):
                        acc += scr[oRG + i * nch + ci]
                    scr[oG + i] = acc
                cuda.syncthreads()
                if track and rec:
                    for l in range(L - 1, -1, -1):
                        gn = blk.grad_norm(scr, oG, oR, W_OFF[l], SIZES[l] * SIZES[l + 1])
                        if tid == 0:
                            gnorms[(n * nrec + t // record_every) * L + l] = gn
                        cuda.syncthreads()
                c1 = scr[oCV + 1] if opt == 3 else one
                c2 = scr[oCV + 2] if opt == 3 else one
                lr_n = hyper[n, LR]
                mu = hyper[n, MOM]
                for l in range(L):
                    blk.update_range(p, scr, oG, oV, oM2, W_OFF[l], B_OFF[l], hyper[n, WD], opt, lr_n, mu, b2, eps,
                                     c1, c2, one)
                    blk.update_range(p, scr, oG, oV, oM2, B_OFF[l], B_OFF[l] + SIZES[l + 1], zero, opt, lr_n, mu,
                                     b2, eps, c1, c2, one)
                cuda.syncthreads()
            cuda.syncthreads()  # the next network reuses this block's scratch

    return train_kernel
