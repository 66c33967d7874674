"""numba.cuda kernels of the tiled path: wide layers as shared-memory tiled products, one launch per phase.

The block path (``block.py``) gives each network one thread block for all its steps, and each thread
a whole dot product read from global memory. That suits many small networks; a layer 300 units wide re-reads
its operands from memory for every output and, with few networks, leaves most multiprocessors idle. Here
every phase of a step is its own launch over all the networks at once (``blockIdx.z`` is the network), and
each of the three products is a tiled matrix product: a block computes a ``TM x TN`` tile of the result,
``RM x RN`` elements per thread, with ``TK``-deep slabs of both operands staged in shared memory.

- forward, layer ``l``: ``H[j, s] = act(b[j] + sum_k W[j, k] in[k, s])``; tiles over (unit, sample);
- input deltas: ``D'[k, s] = (sum_j W[j, k] D[j, s]) * act'(H'[k, s])``; tiles over (input unit, sample);
- weight gradient: ``G[j, k] = sum_s D[j, s] in[k, s]`` and the bias gradient as the column ``k = fi`` of an
  input row of ones; tiles over (unit, input).

Per step the host launches: ``begin_step`` (minibatch, step scalars), ``forward`` per layer, ``loss`` (output
deltas, the loss, divergence), ``weight_grad`` and ``input_delta`` per layer down, ``grad_norms`` on recorded
steps when asked, and ``update`` (element-wise). Every kernel returns at once for a network that has
diverged, so its parameters stay as they were at that step, as in the other engines.

Same bits as the block path. Each result element is summed in exactly the block path's order: the forward
and input-delta sums run over ``k`` (or ``j``) in order, bias first, one ``+=`` per term; the weight gradient
runs over the same interleaved chunks of samples (chunk ``ci`` holds samples ``ci, ci + nch, ...``), sums each
chunk from zero in order, and adds the chunk sums in chunk order from zero, which is what the block path's
partials and their second pass do. A slab holds at most ``TK`` terms and the loop stops at the last real
one (no padded terms are added), so neither the tile sizes nor the grid change a result; the block-path
device functions do the rest (``begin_step``, ``output_loss``, ``grad_norm``, ``update_one``). A test checks
the two paths bit for bit, and so the path can be chosen for speed alone.
"""

import numpy as np
from numba import cuda, float32, float64

from . import block as blk
from ..abi import BETA2, C_BETA2, C_EPS, C_HALF, C_ONE, C_SLOPE, C_TWO, C_ZERO, DROP, KEEP, LR, MOM, WD

_KERNELS = {}


def kernels(dtype, tiles):
    """The tiled path's kernels for a dtype and ``tiles = (TM, TN, TK, RM, RN)`` (compiled on first launch)."""
    key = (np.dtype(dtype).name, tuple(int(x) for x in tiles))
    if key not in _KERNELS:
        _KERNELS[key] = _make(*key)
    return _KERNELS[key]


def threads(tiles):
    """Threads per block of the product kernels."""
    TM, TN, _, RM, RN = tiles
    return (TM // RM) * (TN // RN)


class Kernels:
    """The compiled kernels of one (dtype, tiles); attributes are numba.cuda dispatchers."""


def _make(dtype_name, tiles):
    TM, TN, TK, RM, RN = tiles
    DT = float32 if dtype_name == "float32" else float64
    BY = TM // RM  # thread rows: thread (ty, tx) owns rows ty + a * BY and columns tx + b * BX of the tile
    BX = TN // RN
    NT = BY * BX
    TM1 = TM + 1  # padded rows: a transposing store into shared memory is then free of bank conflicts
    TN1 = TN + 1
    G_HDR = blk.G_HDR

    @cuda.jit(device=True)
    def load_slab(slab, width, src, base, stride, r0, rn, c0, cn, zero):
        """``slab[r, c] = src[base + (r0 + r) stride + c0 + c]`` for the ``TK x width`` slab, zero where
        ``r >= rn`` or ``c0 + c >= cn``; consecutive threads take consecutive columns (coalesced reads)."""
        for i in range(cuda.threadIdx.x, TK * width, NT):
            r = i // width
            c = i - r * width
            slab[r, c] = src[base + (r0 + r) * stride + c0 + c] if (r < rn and c0 + c < cn) else zero

    @cuda.jit(device=True)
    def multiply_add(acc, xb, sL, sR, depth, tx, ty):
        """The micro-kernel: ``acc[a, b] += sL[d, rows a] * sR[d, columns b]`` for the slab's ``depth`` terms in
        order; the thread's rows are ``ty + a BY``, its columns ``tx + b BX`` (``xb`` holds a row of ``sR``)."""
        for d in range(depth):
            for b in range(RN):
                xb[b] = sR[d, tx + b * BX]
            for a in range(RM):
                w = sL[d, ty + a * BY]
                for b in range(RN):
                    acc[a, b] += w * xb[b]

    @cuda.jit
    def begin_step(t, full, per_epoch, batch_size, geo, out, opt, X, T, hyper64, seeds, diverged, SCR, PS):
        n = cuda.blockIdx.x
        if diverged[n] >= 0:
            return
        scr = SCR[n]
        blk.begin_step(t, full, per_epoch, batch_size, geo[blk.G_S], geo[blk.G_F], geo[blk.G_K], X, T, PS[n],
                       seeds[n], scr, geo[blk.G_XB], geo[blk.G_BM], scr, geo[blk.G_TB], geo[blk.G_BM], scr,
                       geo[blk.G_CV], out, opt, hyper64[n, MOM], hyper64[n, BETA2])

    @cuda.jit
    def forward(l, L, t, Bt, full, geo, act, params, X, hyper, hyper64, seeds, c, diverged, SCR):
        n = cuda.blockIdx.z
        if diverged[n] >= 0:
            return
        tid = cuda.threadIdx.x
        tx = tid % BX
        ty = tid // BX
        zero = c[C_ZERO]
        Bm = geo[blk.G_BM]
        fi = geo[G_HDR + l]
        fo = geo[G_HDR + l + 1]
        w0 = geo[G_HDR + L + 1 + l]
        b0 = geo[G_HDR + 2 * L + 1 + l]
        r0 = geo[G_HDR + 3 * L + 1 + l]
        p = params[n]
        scr = SCR[n]
        p_drop = hyper64[n, DROP]
        use_drop = p_drop > 0
        if l == 0 and full:  # a minibatch's inputs are in the scratch, gathered by begin_step
            src, so, sl = X, 0, geo[blk.G_S]
        else:
            src, so, sl = blk.layer_input(l, L, scr, geo[blk.G_XB], Bm, scr, geo, use_drop)
        j0 = cuda.blockIdx.x * TM
        s0 = cuda.blockIdx.y * TN
        sW = cuda.shared.array((TK, TM1), DT)
        sA = cuda.shared.array((TK, TN), DT)
        acc = cuda.local.array((RM, RN), DT)
        xb = cuda.local.array(RN, DT)
        for a in range(RM):
            j = j0 + ty + a * BY
            bias = p[b0 + j] if j < fo else zero
            for b in range(RN):
                acc[a, b] = bias
        for k0 in range(0, fi, TK):
            kn = min(TK, fi - k0)
            for i in range(tid, TK * TM, NT):
                jj = i // TK
                kk = i - jj * TK
                sW[kk, jj] = p[w0 + (j0 + jj) * fi + k0 + kk] if (kk < kn and j0 + jj < fo) else zero
            load_slab(sA, TN, src, so, sl, k0, kn, s0, Bt, zero)
            cuda.syncthreads()
            multiply_add(acc, xb, sW, sA, kn, tx, ty)
            cuda.syncthreads()
        last = l == L - 1
        key = blk.dropout_key(seeds[n], t, l)
        keep = hyper[n, KEEP]
        oH = geo[blk.G_H]
        oM = geo[blk.G_M]
        oA = geo[blk.G_A]
        for a in range(RM):
            j = j0 + ty + a * BY
            for b in range(RN):
                s = s0 + tx + b * BX
                if j < fo and s < Bt:
                    e = (r0 + j) * Bm + s
                    if last:
                        scr[oH + e] = acc[a, b]
                    else:
                        h = blk.activate(acc[a, b], act, c[C_HALF], c[C_SLOPE], zero)
                        scr[oH + e] = h
                        if use_drop:
                            m = keep if blk.uniform_at(key, j * Bt + s) >= p_drop else zero
                            scr[oM + e] = m
                            scr[oA + e] = h * m

    @cuda.jit
    def loss(t, Bt, rec, want, record_every, full, geo, L, out, chunk, T, c, curves, diverged, SCR):
        n = cuda.blockIdx.x
        if diverged[n] >= 0:
            return
        scr = SCR[n]
        Bm = geo[blk.G_BM]
        if full:
            ts = T
            to = 0
            tl = geo[blk.G_S]
        else:
            ts = scr
            to = geo[blk.G_TB]
            tl = Bm
        oCV = geo[blk.G_CV]
        inv = scr[oCV]
        rL = geo[G_HDR + 3 * L + L]  # roff[L - 1]
        nch = (Bt + chunk - 1) // chunk
        total = blk.output_loss(scr, geo[blk.G_H] + rL * Bm, geo[blk.G_D] + rL * Bm, Bm, ts, to, tl, Bt,
                                geo[blk.G_K], out, want, nch, geo[blk.G_R], inv, c[C_HALF], c[C_TWO],
                                c[C_ZERO])
        blk.record_loss(total, inv, t, n, rec, record_every, geo[blk.G_NREC], curves, diverged)

    @cuda.jit
    def weight_grad(l, L, Bt, full, chunk, geo, X, c, hyper64, diverged, SCR):
        n = cuda.blockIdx.z
        if diverged[n] >= 0:
            return
        tid = cuda.threadIdx.x
        tx = tid % BX
        ty = tid // BX
        zero = c[C_ZERO]
        one = c[C_ONE]
        Bm = geo[blk.G_BM]
        fi = geo[G_HDR + l]
        fo = geo[G_HDR + l + 1]
        w0 = geo[G_HDR + L + 1 + l]
        b0 = geo[G_HDR + 2 * L + 1 + l]
        scr = SCR[n]
        dj = geo[blk.G_D] + geo[G_HDR + 3 * L + 1 + l] * Bm
        if l == 0 and full:
            src, so, sl = X, 0, geo[blk.G_S]
        else:
            src, so, sl = blk.layer_input(l, L, scr, geo[blk.G_XB], Bm, scr, geo, hyper64[n, DROP] > 0)
        j0 = cuda.blockIdx.x * TM
        k0 = cuda.blockIdx.y * TN
        sD = cuda.shared.array((TK, TM1), DT)
        sA = cuda.shared.array((TK, TN1), DT)
        tot = cuda.local.array((RM, RN), DT)
        part = cuda.local.array((RM, RN), DT)
        xb = cuda.local.array(RN, DT)
        for a in range(RM):
            for b in range(RN):
                tot[a, b] = zero
        nch = (Bt + chunk - 1) // chunk
        for ci in range(nch):
            cnt = (Bt - ci + nch - 1) // nch  # samples ci, ci + nch, ... below Bt
            for a in range(RM):
                for b in range(RN):
                    part[a, b] = zero
            for m0 in range(0, cnt, TK):
                mn = min(TK, cnt - m0)
                for i in range(tid, TK * TM, NT):
                    jj = i // TK
                    mm = i - jj * TK
                    sD[mm, jj] = scr[dj + (j0 + jj) * Bm + ci + (m0 + mm) * nch] if (
                        mm < mn and j0 + jj < fo) else zero
                for i in range(tid, TK * TN, NT):
                    kk = i // TK
                    mm = i - kk * TK
                    k = k0 + kk
                    if mm < mn and k < fi:
                        sA[mm, kk] = src[so + k * sl + ci + (m0 + mm) * nch]
                    else:
                        sA[mm, kk] = one if (mm < mn and k == fi) else zero  # the bias: an input of ones
                cuda.syncthreads()
                multiply_add(part, xb, sD, sA, mn, tx, ty)
                cuda.syncthreads()
            for a in range(RM):
                for b in range(RN):
                    tot[a, b] += part[a, b]
        oG = geo[blk.G_G]
        for a in range(RM):
            j = j0 + ty + a * BY
            for b in range(RN):
                k = k0 + tx + b * BX
                if j < fo and k < fi:
                    scr[oG + w0 + j * fi + k] = tot[a, b]
                elif j < fo and k == fi:
                    scr[oG + b0 + j] = tot[a, b]

    @cuda.jit
    def input_delta(l, L, Bt, geo, act, params, c, hyper64, diverged, SCR):
        n = cuda.blockIdx.z
        if diverged[n] >= 0:
            return
        tid = cuda.threadIdx.x
        tx = tid % BX
        ty = tid // BX
        zero = c[C_ZERO]
        Bm = geo[blk.G_BM]
        fi = geo[G_HDR + l]
        fo = geo[G_HDR + l + 1]
        w0 = geo[G_HDR + L + 1 + l]
        p = params[n]
        scr = SCR[n]
        dj = geo[blk.G_D] + geo[G_HDR + 3 * L + 1 + l] * Bm
        k0 = cuda.blockIdx.x * TM
        s0 = cuda.blockIdx.y * TN
        sW = cuda.shared.array((TK, TM), DT)
        sD = cuda.shared.array((TK, TN), DT)
        acc = cuda.local.array((RM, RN), DT)
        xb = cuda.local.array(RN, DT)
        for a in range(RM):
            for b in range(RN):
                acc[a, b] = zero
        for j0 in range(0, fo, TK):
            jn = min(TK, fo - j0)
            load_slab(sW, TM, p, w0, fi, j0, jn, k0, fi, zero)
            load_slab(sD, TN, scr, dj, Bm, j0, jn, s0, Bt, zero)
            cuda.syncthreads()
            multiply_add(acc, xb, sW, sD, jn, tx, ty)
            cuda.syncthreads()
        use_drop = hyper64[n, DROP] > 0
        eb = geo[G_HDR + 3 * L + l] * Bm  # roff[l - 1]
        oD = geo[blk.G_D]
        oH = geo[blk.G_H]
        oM = geo[blk.G_M]
        for a in range(RM):
            k = k0 + ty + a * BY
            for b in range(RN):
                s = s0 + tx + b * BX
                if k < fi and s < Bt:
                    e = eb + k * Bm + s
                    v = acc[a, b]
                    if use_drop:
                        v *= scr[oM + e]
                    scr[oD + e] = v * blk.activation_grad(scr[oH + e], act, c[C_ONE], c[C_SLOPE], zero)

    @cuda.jit
    def grad_norms(t, record_every, geo, L, gnorms, diverged, SCR):
        n = cuda.blockIdx.x
        if diverged[n] >= 0:
            return
        scr = SCR[n]
        nrec = geo[blk.G_NREC]
        for l in range(L):
            gn = blk.grad_norm(scr, geo[blk.G_G], geo[blk.G_R], geo[G_HDR + L + 1 + l],
                               geo[G_HDR + l] * geo[G_HDR + l + 1])
            if cuda.threadIdx.x == 0:
                gnorms[(n * nrec + t // record_every) * L + l] = gn
            cuda.syncthreads()

    @cuda.jit
    def update(opt, is_weight, geo, params, hyper, c, diverged, SCR):
        n = cuda.blockIdx.y
        i = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
        p = params[n]
        if diverged[n] >= 0 or i >= p.shape[0]:
            return
        scr = SCR[n]
        one = c[C_ONE]
        oCV = geo[blk.G_CV]
        c1 = scr[oCV + 1] if opt == 3 else one
        c2 = scr[oCV + 2] if opt == 3 else one
        wd = hyper[n, WD] if is_weight[i] else c[C_ZERO]
        blk.update_one(p, scr, geo[blk.G_G], geo[blk.G_V], geo[blk.G_M2], i, wd, opt, hyper[n, LR],
                       hyper[n, MOM], c[C_BETA2], c[C_EPS], c1, c2, one)

    @cuda.jit
    def zero_moments(opt, P, geo, c, SCR):
        n = cuda.blockIdx.y
        i = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
        if i < P:
            scr = SCR[n]
            scr[geo[blk.G_V] + i] = c[C_ZERO]
            if opt == 3:
                scr[geo[blk.G_M2] + i] = c[C_ZERO]

    k = Kernels()
    k.begin_step, k.forward, k.loss, k.weight_grad = begin_step, forward, loss, weight_grad
    k.input_delta, k.grad_norms, k.update, k.zero_moments = input_delta, grad_norms, update, zero_moments
    return k
