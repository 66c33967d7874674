"""numba.cuda kernels: the training contract of the CPU engine, all networks x all steps in ONE launch.

Imported only when the ``cuda`` backend is asked for (the backend, ``engine/cuda/__init__.py``, prepares the arrays and launches).
Set ``NUMBA_ENABLE_CUDASIM=1`` before numba is imported to run these kernels on the CPU in the CUDA simulator
(that is how CI tests them); the simulator checks the logic, never the speed.

Design: the small-network path (implemented)
---------------------------------------------
One thread block trains one network for all steps; all networks train in one launch. Blocks are persistent:
the grid is min(N, 32 x SMs, what the scratch memory allows) and block ``b`` trains networks ``b, b + grid,
...`` in turn (networks are independent, so the grid size never changes a result). Per-block state lives in
global-memory scratch sized ``grid x ...``, allocated once per call: activations ``H`` and deltas ``D``
(``rows x batch``, feature-major as on the CPU, so that consecutive threads touch consecutive samples and
loads coalesce), the dropout masks and dropped activations, the gathered minibatch, the gradient ``G`` and the
optimiser moments, a reduction buffer ``R`` and the epoch permutation; every array is flat (one descriptor).
A step is a fixed sequence of phases separated by ``cuda.syncthreads()``:

1. minibatch: at the first step of an epoch the block sorts the epoch's keys (below); then it gathers the
   batch's columns of ``X`` and ``T``.
2. forward, one phase per layer: the ``fo x Bt`` (unit, sample) pairs are split over the threads; a thread
   owns a whole dot product (bias first, then the inputs in order) and applies the activation and dropout.
3. output: logits -> ``dL/dz`` and the loss; loss partials per sample-chunk, then a fixed pairwise tree.
4. backward, per layer: the weight gradient ``G[j, k] = sum_s D[j, s] in[k, s]`` is split into ``nch``
   interleaved chunks (chunk ``c`` sums samples ``c, c + nch, c + 2 nch, ...``, ``nch = ceil(Bt / chunk)``):
   the (j, k, c) partials run in parallel (consecutive threads take consecutive chunks, so they read
   consecutive samples), then one thread per (j, k) adds its partials in chunk order. The deltas of the layer
   below, ``(k, s)`` pairs, run in the same phase (they read ``D`` of this layer, write that of the next).
5. update: one thread per parameter (element-wise).

Identical units stay bit-identical: every (unit, input) pair goes through the same chunking, the same
serial loops and the same order of partial sums, whatever the unit. The orders depend only on the batch
size and ``chunk`` (a constant of the backend), *not* on the number of threads per block or on N, so a
network's result does not depend on the launch configuration (a test checks that). They differ from the
CPU engine's orders, so the engines agree to rounding, not bit for bit.

Randomness uses the same counter-based hash as ``fastmlp.rng`` (device twins below, checked against it):
dropout masks and batch order are the CPU's. The epoch permutation (argsort of S distinct uint64 keys) is
computed *on the device*: the block fills ``keys[i] = bits(seed, epoch, i)``, pads to a power of two and
runs a bitonic sort of (key, index) pairs in global scratch, ``log2(Sp)(log2(Sp)+1)/2`` synchronised passes
of ``Sp/2`` compare-exchanges. The keys are distinct, so the result equals ``rng.epoch_permutation``
(which is an argsort). Host precomputation was rejected: a table per (network, epoch) is ``N x epochs x S``
indices (16384 x 36 x 891 x 4 B = 2 GB for the W1 sweep with batch 32), and the O(S^2) rank count costs
800k comparisons per epoch for S = 891 against ~28k compare-exchanges for the sort.

tanh is ``math.tanh`` (libdevice ``__nv_tanh``/``__nv_tanhf``, a few ulp), not the CPU engine's rational
approximations: those exist to let LLVM vectorise a CPU loop, and a GPU thread is scalar anyway. Sigmoid is
``0.5 + 0.5 tanh(z / 2)`` as everywhere. Kernels are compiled without ``fastmath`` (it would allow
``nnan``/``ninf`` and break divergence detection); numba.cuda's default FMA contraction is on, which is the
same for every unit.

Estimates of this path's cost on a GPU, and its register counts, are in bench/NOTES.md (change 42); for
networks as small as W1's, ``chunk.py`` (the chunk path) keeps a whole sample's step in one thread's
registers instead, with the same sums in the same order.

Wide layers (784 -> 300 x 20 -> 10, batch 256): the tiled path
-----------------------------------------------------------------
This path computes them correctly, but slowly: each thread's dot product re-reads its operands from global
memory (no reuse), and with few networks the grid has fewer blocks than the GPU has SMs. ``tiled.py``
launches each phase over all networks, with the products as shared-memory tiled products, and sums every
element in this path's order (so the two give the same bits); ``engine.cuda.choose_path`` picks one.
Tensor cores (TF32/FP16) would change the rounding and must stay opt-in; cuBLAS strided-batched GEMM would be the
quickest route but does not document its reduction order per element.
"""
import math

import numpy as np
from numba import cuda

from ..abi import BETA2, C_BETA2, C_EPS, C_HALF, C_ONE, C_SLOPE, C_TWO, C_ZERO, DROP, KEEP, LR, MOM, WD
from ...config import CACHE


# ---- the counter-based hash of fastmlp.rng, as device functions (same constants, same uint64 arithmetic) ----
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S8, _S11, _S27, _S30, _S31 = np.uint64(8), np.uint64(11), np.uint64(27), np.uint64(30), np.uint64(31)
_U1 = np.uint64(1)
_UMAX = np.uint64(0xFFFFFFFFFFFFFFFF)
_INV53 = 1.0 / 9007199254740992.0
_SHUFFLE = np.uint64(1 << 56)
_DROPOUT = np.uint64(2 << 56)


@cuda.jit(device=True)
def mix64(z):
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@cuda.jit(device=True)
def stream_key(seed, stream):
    return mix64(np.uint64(seed) + _GOLDEN * (np.uint64(stream) + _U1))


@cuda.jit(device=True)
def bits_at(key, counter):
    return mix64(key ^ (np.uint64(counter) * _GOLDEN))


@cuda.jit(device=True)
def uniform_at(key, counter):
    return np.float64(bits_at(key, counter) >> _S11) * _INV53


@cuda.jit(device=True)
def dropout_key(seed, step, layer):
    return stream_key(seed, _DROPOUT | (np.uint64(step) << _S8) | np.uint64(layer))


@cuda.jit(device=True)
def epoch_permutation(ps, seed, epoch, S):
    """Block-cooperative: ``ps[Sp:Sp+S]`` = argsort of the epoch's keys, by a bitonic sort of (key, index).

    ``ps`` (uint64) holds ``Sp`` keys then ``Sp`` indices, ``Sp`` a power of two >= S; ends with a barrier.
    """
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    Sp = ps.shape[0] // 2
    key = stream_key(seed, _SHUFFLE | np.uint64(epoch))
    for i in range(tid, Sp, nt):
        ps[i] = bits_at(key, i) if i < S else _UMAX
        ps[Sp + i] = np.uint64(i)
    cuda.syncthreads()
    k = 2
    while k <= Sp:
        j = k // 2
        while j > 0:
            for i in range(tid, Sp, nt):
                m = i ^ j
                if m > i:
                    ki = ps[i]
                    km = ps[m]
                    ii = ps[Sp + i]
                    im = ps[Sp + m]
                    gt = ki > km or (ki == km and ii > im)
                    up = (i & k) == 0
                    if gt == up:
                        ps[i] = km
                        ps[m] = ki
                        ps[Sp + i] = im
                        ps[Sp + m] = ii
            cuda.syncthreads()
            j = j // 2
        k = k * 2


@cuda.jit(device=True)
def tree_sum(buf, base, n):
    """Block-cooperative: ``buf[base]`` = sum of ``buf[base:base+n]`` by a fixed pairwise tree, the same
    whatever the number of threads. Call after a barrier; ends with one (when n > 1)."""
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    stride = 1
    while stride < n:
        step = 2 * stride
        npairs = (n + step - 1) // step
        for q in range(tid, npairs, nt):
            i = q * step
            if i + stride < n:
                buf[base + i] += buf[base + i + stride]
        cuda.syncthreads()
        stride = step


@cuda.jit(device=True)
def activate(x, act, half, slope, zero):
    if act == 0:
        return math.tanh(x)
    if act == 1:
        return half + half * math.tanh(half * x)
    if act == 2:
        return zero if x < zero else x  # NaN passes through
    if act == 3:
        return x if x > zero else slope * x
    return x


@cuda.jit(device=True)
def activation_grad(h, act, one, slope, zero):
    if act == 0:
        return one - h * h
    if act == 1:
        return h * (one - h)
    if act == 2:
        return one if h > zero else zero
    if act == 3:
        return one if h > zero else slope
    return one


@cuda.jit(device=True)
def update_one(p, scr, oG, oV, oM2, i, wd, opt, lr, mu, b2, eps, c1, c2, one):
    """The optimiser step of parameter ``i`` (its gradient and moments in ``scr``)."""
    g = scr[oG + i] + wd * p[i]
    if opt == 0:
        p[i] -= lr * g
    elif opt == 1:
        v = mu * scr[oV + i] + g
        scr[oV + i] = v
        p[i] -= lr * v
    elif opt == 2:
        v = mu * scr[oV + i] + g
        scr[oV + i] = v
        p[i] -= lr * (g + mu * v)
    else:
        v = mu * scr[oV + i] + (one - mu) * g
        m2 = b2 * scr[oM2 + i] + (one - b2) * (g * g)
        scr[oV + i] = v
        scr[oM2 + i] = m2
        p[i] -= lr * (v * c1) / (math.sqrt(m2 * c2) + eps)


@cuda.jit(device=True)
def update_range(p, scr, oG, oV, oM2, i0, i1, wd, opt, lr, mu, b2, eps, c1, c2, one):
    """The optimiser step for parameters ``i0 .. i1-1``, over the threads."""
    for i in range(i0 + cuda.threadIdx.x, i1, cuda.blockDim.x):
        update_one(p, scr, oG, oV, oM2, i, wd, opt, lr, mu, b2, eps, c1, c2, one)


@cuda.jit(device=True)
def begin_step(t, full, per_epoch, batch_size, S, F, K, X, T, ps, seed, xs, xo, xl, ts, to, tl, scr, oCV, out, opt,
               mu64, beta2_64):
    """Block-cooperative start of step ``t``; returns its batch size ``Bt``. Ends with a barrier.

    For a minibatch: at an epoch's first step the epoch's permutation (into ``ps``), then the batch's columns of
    ``X`` and ``T`` gathered into ``xs[xo:]`` and ``ts[to:]`` (rows ``xl`` and ``tl`` apart). Thread 0 stores
    the step's scalars, computed in float64 and rounded once to the dtype by the store as the other engines
    do: the loss scale at ``scr[oCV]`` and Adam's two bias corrections after it.
    """
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    Bt = S
    if not full:
        epoch = t // per_epoch
        jb = t - epoch * per_epoch
        if jb == 0:
            epoch_permutation(ps, seed, epoch, S)
        a0 = ps.shape[0] // 2 + jb * batch_size
        Bt = min(S, jb * batch_size + batch_size) - jb * batch_size
        for i in range(tid, F * Bt, nt):
            f = i // Bt
            s = i - f * Bt
            xs[xo + f * xl + s] = X[f * S + np.int64(ps[a0 + s])]
        for i in range(tid, K * Bt, nt):
            o = i // Bt
            s = i - o * Bt
            ts[to + o * tl + s] = T[o * S + np.int64(ps[a0 + s])]
    if tid == 0:
        scr[oCV] = 1.0 / Bt if out == 1 else 1.0 / (Bt * K)
        if opt == 3:
            scr[oCV + 1] = 1.0 / (1.0 - math.pow(mu64, t + 1.0))
            scr[oCV + 2] = 1.0 / (1.0 - math.pow(beta2_64, t + 1.0))
    cuda.syncthreads()
    return Bt


@cuda.jit(device=True)
def sample_output(hv, hb, dv, db, ld, ts, tb, tl, K, out, want, inv, half, two, zero, part):
    """One sample's output deltas ``dL/dz`` (``dv[db + o ld]``) from its logits (``hv[hb + o ld]``) and targets
    (``ts[tb + o tl]``); returns ``part`` plus the sample's loss terms, added in a fixed order. ``z * 0`` is
    added for every logit, so the sum is NaN iff a logit is not finite (or the loss, where it is computed: on
    recorded steps (``want``) or always for the squared error). Shared by every CUDA path, so that they give
    the same bits."""
    if out == 1:  # softmax + cross-entropy
        m = hv[hb]
        for o in range(1, K):
            z = hv[hb + o * ld]
            m = z if z > m else m
        tot = zero
        for o in range(K):
            ex = math.exp(hv[hb + o * ld] - m)
            dv[db + o * ld] = ex
            tot += ex
        tz = zero
        for o in range(K):
            z = hv[hb + o * ld]
            y = ts[tb + o * tl]
            dv[db + o * ld] = (dv[db + o * ld] / tot - y) * inv
            part += z * zero
            tz += y * z
        if want:
            part += math.log(tot) + m - tz
    elif out == 0:  # sigmoid + binary cross-entropy
        for o in range(K):
            z = hv[hb + o * ld]
            y = ts[tb + o * tl]
            dv[db + o * ld] = (half + half * math.tanh(half * z) - y) * inv
            part += z * zero
            if want:
                part += (z if z > zero else zero) - z * y + math.log1p(math.exp(-abs(z)))
    else:  # identity + squared error
        for o in range(K):
            d = hv[hb + o * ld] - ts[tb + o * tl]
            dv[db + o * ld] = two * d * inv
            part += d * d
    return part


@cuda.jit(device=True)
def batch_arrays(full, X, T, scr, geo):
    """Where a step's inputs and targets are read, ``(xs, xo, xl, ts, to, tl)``: feature ``f`` of sample ``s`` is
    ``xs[xo + f xl + s]``, target ``o`` is ``ts[to + o tl + s]``; ``X`` and ``T`` themselves for a full batch,
    else the minibatch that ``begin_step`` gathers into the scratch ``scr``."""
    if full:
        return X, 0, geo[G_S], T, 0, geo[G_S]
    return scr, geo[G_XB], geo[G_BM], scr, geo[G_TB], geo[G_BM]


@cuda.jit(device=True)
def layer_input(l, L, xs, xo, xl, scr, geo, use_drop):
    """Where layer ``l`` reads its input ``k`` at sample ``s``, ``(src, so, sl)`` for ``src[so + k sl + s]``: the
    step's inputs (``batch_arrays``) for layer 0, else the activations of the layer below (dropped ones, with
    dropout) in the scratch ``scr``."""
    if l == 0:
        return xs, xo, xl
    return scr, (geo[G_A] if use_drop else geo[G_H]) + geo[G_HDR + 3 * L + l] * geo[G_BM], geo[G_BM]


@cuda.jit(device=True)
def output_loss(scr, hL, dL, Bm, ts, to, tl, Bt, K, out, want, nch, oR, inv, half, two, zero):
    """Block-cooperative: the output deltas ``dL/dz`` (at ``scr[dL:]``) from the logits (at ``scr[hL:]``), and
    the loss summed over the batch, which it returns (every thread gets it). Ends with a barrier.

    Chunk ``ci`` takes samples ``ci, ci + nch, ...`` (``sample_output``, in order, from zero); the chunks'
    partials are then added by a fixed pairwise tree.
    """
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    for ci in range(tid, nch, nt):
        part = zero
        s = ci
        while s < Bt:
            part = sample_output(scr, hL + s, scr, dL + s, Bm, ts, to + s, tl, K, out, want, inv, half, two, zero,
                                 part)
            s += nch
        scr[oR + ci] = part
    cuda.syncthreads()
    tree_sum(scr, oR, nch)
    total = scr[oR]
    cuda.syncthreads()
    return total


@cuda.jit(device=True)
def record_loss(total, inv, t, n, rec, record_every, nrec, curves, diverged):
    """Thread 0 records step ``t``'s loss (``total`` times the scale ``inv``, on recorded steps) or, where the
    total is not finite, ``t`` as the step network ``n`` diverged at; returns whether it diverged (every thread
    gets the same answer, so that a kernel leaves its step loop uniformly)."""
    bad = not math.isfinite(total)
    if cuda.threadIdx.x == 0:
        if bad:
            diverged[n] = t
        elif rec:
            curves[n * nrec + t // record_every] = total * inv
    return bad


@cuda.jit(device=True)
def grad_norm(scr, oG, oR, w0, count):
    """Block-cooperative: the 2-norm of the ``count`` weight gradients at ``scr[oG + w0:]``, by the fixed tree of
    ``tree_sum`` over their squares in ``scr[oR:]``; every thread gets it. Follow with a barrier before
    ``scr[oR:]`` is written again."""
    for i in range(cuda.threadIdx.x, count, cuda.blockDim.x):
        g = scr[oG + w0 + i]
        scr[oR + i] = g * g
    cuda.syncthreads()
    tree_sum(scr, oR, count)
    return math.sqrt(scr[oR])


# ``geo`` (int64): a header of scratch offsets and dimensions, then sizes[L+1], w_off[L], b_off[L], roff[L]
(G_H, G_D, G_A, G_M, G_XB, G_TB, G_G, G_V, G_M2, G_R, G_CV, G_BM, G_F, G_S, G_K, G_NREC) = range(16)
G_HDR = 16


@cuda.jit(cache=CACHE)
def train_kernel(geo, L, act, out, opt, params, X, T, hyper, hyper64, seeds, steps, batch_size, record_every,
                 c, track, chunk, curves, diverged, gnorms, SCR, PS):
    """Trains the networks ``blockIdx.x, blockIdx.x + gridDim.x, ...`` of ``params`` (N, P) in place.

    ``X`` (features x samples) and ``T`` (outputs x samples) are flattened, feature-major; ``hyper``,
    ``hyper64`` and ``c`` are those of the CPU kernel; ``curves`` (N * n_records), ``diverged`` (N) and
    ``gnorms`` (N * n_records * L) are flat outputs. ``SCR`` (grid, n_scratch) holds each block's float scratch
    at the offsets in ``geo``: activations H, deltas D (rows x Bmax each), dropped activations A and masks M,
    the gathered minibatch XB, TB, gradient G, moments V, M2, reductions R and three dtype-rounded scalars CV.
    ``PS`` (grid, 2 Sp) uint64 holds the epoch permutation's keys and indices ((1, 2) for full batch).
    All arrays are flat so that a thread keeps few array descriptors in registers.
    """
    blk = cuda.blockIdx.x
    N = params.shape[0]
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    P = params.shape[1]
    oH = geo[G_H]
    oD = geo[G_D]
    oA = geo[G_A]
    oM = geo[G_M]
    oG = geo[G_G]
    oV = geo[G_V]
    oM2 = geo[G_M2]
    oR = geo[G_R]
    oCV = geo[G_CV]
    Bm = geo[G_BM]
    S = geo[G_S]
    K = geo[G_K]
    nrec = geo[G_NREC]
    gs = G_HDR
    gw = gs + L + 1
    gb = gw + L
    gr = gb + L
    full = batch_size <= 0 or batch_size >= S
    per_epoch = 1 if full else (S + batch_size - 1) // batch_size
    half = c[C_HALF]
    one = c[C_ONE]
    slope = c[C_SLOPE]
    two = c[C_TWO]
    zero = c[C_ZERO]
    b2 = c[C_BETA2]
    eps = c[C_EPS]
    scr = SCR[blk]
    ps = PS[0 if full else blk]
    xs, xo, xl, ts, to, tl = batch_arrays(full, X, T, scr, geo)

    # persistent blocks: block b trains networks b, b + gridDim.x, ... with one slot of scratch
    for n in range(blk, N, cuda.gridDim.x):
        seed = seeds[n]
        p_drop = hyper64[n, DROP]  # compared with float64 uniforms, as in the reference
        use_drop = p_drop > 0
        keep = hyper[n, KEEP]
        lr_n = hyper[n, LR]
        mu = hyper[n, MOM]
        wd_n = hyper[n, WD]
        mu64 = hyper64[n, MOM]
        beta2_64 = hyper64[n, BETA2]

        p = params[n]

        if opt != 0:
            for i in range(tid, P, nt):
                scr[oV + i] = zero
        if opt == 3:
            for i in range(tid, P, nt):
                scr[oM2 + i] = zero

        for t in range(steps):
            Bt = begin_step(t, full, per_epoch, batch_size, S, geo[G_F], K, X, T, ps, seed, xs, xo, xl, ts, to, tl,
                            scr, oCV, out, opt, mu64, beta2_64)
            rec = t % record_every == 0
            want = rec or out == 2
            inv = scr[oCV]

            # forward: a thread per (unit, sample) owns the whole dot product, bias first, inputs in order
            for l in range(L):
                fi = geo[gs + l]
                fo = geo[gs + l + 1]
                w0 = geo[gw + l]
                b0 = geo[gb + l]
                r0 = geo[gr + l]
                src, so, sl = layer_input(l, L, xs, xo, xl, scr, geo, use_drop)
                last = l == L - 1
                key = dropout_key(seed, t, l)
                for i in range(tid, fo * Bt, nt):
                    j = i // Bt
                    s = i - j * Bt
                    wr = w0 + j * fi
                    ib = so + s
                    acc = p[b0 + j]
                    for k in range(fi):
                        acc += p[wr + k] * src[ib + k * sl]
                    e = (r0 + j) * Bm + s
                    if last:
                        scr[oH + e] = acc
                    else:
                        h = activate(acc, act, half, slope, zero)
                        scr[oH + e] = h
                        if use_drop:
                            m = keep if uniform_at(key, j * Bt + s) >= p_drop else zero
                            scr[oM + e] = m
                            scr[oA + e] = h * m
                cuda.syncthreads()

            # output deltas and the loss
            rL = geo[gr + L - 1]
            nch = (Bt + chunk - 1) // chunk
            total = output_loss(scr, oH + rL * Bm, oD + rL * Bm, Bm, ts, to, tl, Bt, K, out, want, nch, oR, inv,
                                half, two, zero)
            if record_loss(total, inv, t, n, rec, record_every, nrec, curves, diverged):
                break  # uniformly: every thread read the same total

            # backward
            for l in range(L - 1, -1, -1):
                fi = geo[gs + l]
                fo = geo[gs + l + 1]
                w0 = geo[gw + l]
                b0 = geo[gb + l]
                dj = oD + geo[gr + l] * Bm
                src, so, sl = layer_input(l, L, xs, xo, xl, scr, geo, use_drop)
                fi1 = fi + 1
                ntask = fo * fi1
                # weight-gradient partials: (unit j, input k or the bias, chunk ci) -> R[task * nch + ci]
                for i in range(tid, ntask * nch, nt):
                    task = i // nch
                    ci = i - task * nch
                    j = task // fi1
                    k = task - j * fi1
                    dr = dj + j * Bm
                    acc = zero
                    s = ci
                    if k < fi:
                        ar = so + k * sl
                        while s < Bt:
                            acc += scr[dr + s] * src[ar + s]
                            s += nch
                    else:
                        while s < Bt:
                            acc += scr[dr + s]
                            s += nch
                    scr[oR + i] = acc
                # deltas of the layer below: a thread per (input unit, sample), units summed in order
                if l > 0:
                    eb = geo[gr + l - 1] * Bm
                    for i in range(tid, fi * Bt, nt):
                        k = i // Bt
                        s = i - k * Bt
                        acc = zero
                        for j in range(fo):
                            acc += p[w0 + j * fi + k] * scr[dj + j * Bm + s]
                        e = eb + k * Bm + s
                        if use_drop:
                            acc *= scr[oM + e]
                        scr[oD + e] = acc * activation_grad(scr[oH + e], act, one, slope, zero)
                cuda.syncthreads()
                for task in range(tid, ntask, nt):
                    acc = zero
                    for ci in range(nch):
                        acc += scr[oR + task * nch + ci]
                    j = task // fi1
                    k = task - j * fi1
                    scr[oG + (w0 + j * fi + k if k < fi else b0 + j)] = acc
                cuda.syncthreads()
                if track and rec:
                    gn = grad_norm(scr, oG, oR, w0, fo * fi)
                    if tid == 0:
                        gnorms[(n * nrec + t // record_every) * L + l] = gn
                    cuda.syncthreads()

            # update (weight decay on the weights only)
            c1 = scr[oCV + 1] if opt == 3 else one
            c2 = scr[oCV + 2] if opt == 3 else one
            for l in range(L):
                w0 = geo[gw + l]
                b0 = geo[gb + l]
                update_range(p, scr, oG, oV, oM2, w0, b0, wd_n, opt, lr_n, mu, b2, eps, c1, c2, one)
                update_range(p, scr, oG, oV, oM2, b0, b0 + geo[gs + l + 1], zero, opt, lr_n, mu, b2, eps, c1, c2,
                             one)
            cuda.syncthreads()
        cuda.syncthreads()  # the next network reuses this block's scratch


@cuda.jit
def rng_probe_kernel(seeds, epochs, steps, layers, counters, out_bits, out_uniform, out_dropout_u):
    """For tests: the device hash at (seed, epoch) shuffle keys and at (seed, step, layer) dropout draws."""
    i = cuda.grid(1)
    if i < seeds.shape[0]:
        key = stream_key(seeds[i], _SHUFFLE | np.uint64(epochs[i]))
        out_bits[i] = bits_at(key, counters[i])
        out_uniform[i] = uniform_at(key, counters[i])
        out_dropout_u[i] = uniform_at(dropout_key(seeds[i], steps[i], layers[i]), counters[i])


@cuda.jit
def permutation_probe_kernel(seeds, epochs, S, PS):
    """For tests: block b sorts the keys of (seeds[b], epochs[b]); the permutation is PS[b, Sp:Sp+S]."""
    b = cuda.blockIdx.x
    epoch_permutation(PS[b], seeds[b], epochs[b], S)
