"""numba.cuda kernels: the training contract of the CPU engine, all networks x all steps in ONE launch.

Imported only when the ``cuda`` backend is asked for (``cuda_backend`` prepares the arrays and launches).
Set ``NUMBA_ENABLE_CUDASIM=1`` before numba is imported to run these kernels on the CPU in the CUDA simulator
(that is how CI tests them); the simulator checks the logic, never the speed.

Design: the small-network path (implemented)
---------------------------------------------
One thread block trains one network for all steps. The grid is the N networks (in launches of at most as
many networks as the scratch memory allows; networks are independent, so chunking never changes a result).
Per-network state lives in global-memory scratch sized ``N x ...`` and allocated once per call:
activations ``H`` and deltas ``D`` (``rows x batch``, feature-major as on the CPU, so that consecutive threads
touch consecutive samples and loads coalesce), the dropout masks and dropped activations, the gathered
minibatch, the gradient ``G`` and the optimiser moments, a reduction buffer ``R`` and the epoch permutation.
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

Real GPU, W1 (891 samples, 7 -> 4 -> 1, 1000 steps, 16384 networks), not measured here
-------------------------------------------------------------------------------------
Per step and network: forward 891 x (28 + 4) FMAs, backward about twice that: ~100k FMAs, i.e. 1.6e12 FMAs
for the sweep -- 0.05 s at an H100's FP32 peak, so the kernel is bound by memory and latency, not
arithmetic. ``H`` and ``D`` are 5 x 891 per network (18 KB each in float32): 16384 networks give 600 MB of
scratch, more than L2 (50 MB), so every phase streams them from HBM; estimate ~150 KB of traffic per step and
network -> ~2.5 TB -> ~1 s at 3 TB/s. The reduction phases (loss tree, weight-gradient partial sums) keep
few threads busy and cost ~10 barriers per step. With 128 threads per block (the default) and a few dozen
registers, 16 blocks per SM are resident: the 16384 blocks run in ~8 waves on 132 SMs.
Expected next steps once a GPU is at hand: measure with Nsight; put ``X``/``T`` (7 x 891 floats = 25 KB) in
shared memory for full-batch runs and ``H``/``D`` in shared memory when ``2 x rows x batch`` fits (36 KB for
W1 in float32), which removes the HBM traffic; a warp per network instead of a block for tiny batches.

Wide layers (784 -> 300 x 20 -> 10, batch 256): what a tiled path needs (not implemented)
---------------------------------------------------------------------------------------
The small path still computes them correctly, but slowly: each thread's dot product re-reads its operands from
global memory (no reuse), and with few networks the grid has fewer blocks than the GPU has SMs. A tiled path
would (a) let several blocks cooperate on one network -- one launch per phase, or a cooperative launch with a
grid-wide barrier between phases -- and (b) compute each product (forward ``W @ A``, input deltas
``W.T @ D``, weight gradient ``D @ A.T``) as a shared-memory tiled GEMM (e.g. 64 x 64 tiles, a 4 x 4 micro-tile
per thread, K tiles loaded cooperatively). Identical units stay identical as long as every output element
sums its K tiles in the same fixed order with the same in-tile order (no split-K that depends on the unit, no
atomics); tensor cores (TF32/FP16) would change the rounding and must stay opt-in. cuBLAS strided-batched GEMM
would be the quickest route but does not document its reduction order per element.
"""
import math

import numpy as np
from numba import cuda

from .config import CACHE
from .cpu import ACT_CODES, OPT_CODES, OUT_CODES, LR, MOM, WD, DROP, KEEP  # noqa: F401 (re-exported codes)

# indices into the per-dtype constant vector ``c`` (the same vector the CPU engine takes)
_HALF, _ONE, _SLOPE, _TWO, _ZERO, _BETA2, _EPS = 0, 1, 2, 3, 4, 5, 6

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
def epoch_permutation(keys, idx, seed, epoch, S):
    """Block-cooperative: ``idx[:S]`` = argsort of the epoch's keys (bitonic sort of (key, index) pairs).

    ``keys`` and ``idx`` have a power-of-two length >= S; ends with a barrier.
    """
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    Sp = keys.shape[0]
    key = stream_key(seed, _SHUFFLE | np.uint64(epoch))
    for i in range(tid, Sp, nt):
        keys[i] = bits_at(key, i) if i < S else _UMAX
        idx[i] = i
    cuda.syncthreads()
    k = 2
    while k <= Sp:
        j = k // 2
        while j > 0:
            for i in range(tid, Sp, nt):
                m = i ^ j
                if m > i:
                    ki = keys[i]
                    km = keys[m]
                    ii = idx[i]
                    im = idx[m]
                    gt = ki > km or (ki == km and ii > im)
                    up = (i & k) == 0
                    if gt == up:
                        keys[i] = km
                        keys[m] = ki
                        idx[i] = im
                        idx[m] = ii
            cuda.syncthreads()
            j = j // 2
        k = k * 2


@cuda.jit(device=True)
def tree_sum(buf, n):
    """Block-cooperative: ``buf[0]`` = sum of ``buf[:n]`` by a fixed pairwise tree (independent of the
    number of threads). Call after a barrier; ends with one (when n > 1)."""
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    stride = 1
    while stride < n:
        step = 2 * stride
        npairs = (n + step - 1) // step
        for q in range(tid, npairs, nt):
            i = q * step
            if i + stride < n:
                buf[i] += buf[i + stride]
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
def update_range(p, G, V, M2, i0, i1, wd, opt, lr, mu, b2, eps, c1, c2, one):
    """The optimiser step for parameters ``i0 .. i1-1``, split over the block's threads."""
    for i in range(i0 + cuda.threadIdx.x, i1, cuda.blockDim.x):
        g = G[i] + wd * p[i]
        if opt == 0:
            p[i] -= lr * g
        elif opt == 1:
            v = mu * V[i] + g
            V[i] = v
            p[i] -= lr * v
        elif opt == 2:
            v = mu * V[i] + g
            V[i] = v
            p[i] -= lr * (g + mu * v)
        else:
            v = mu * V[i] + (one - mu) * g
            m2 = b2 * M2[i] + (one - b2) * (g * g)
            V[i] = v
            M2[i] = m2
            p[i] -= lr * (v * c1) / (math.sqrt(m2 * c2) + eps)


@cuda.jit(cache=CACHE)
def train_kernel(sizes, w_off, b_off, roff, act, out, opt, params, X, T, hyper, hyper64, seeds,
                 steps, batch_size, record_every, c, track, chunk, curves, diverged, gnorms,
                 H, D, A, MK, XB, TB, G, V, M2, R, CV, PK, PI):
    """Trains network ``blockIdx.x`` of ``params`` (N, P) in place, for all steps.

    X (features, samples) and T (outputs, samples) as for the CPU kernel; ``hyper``/``hyper64``/``c`` too.
    Scratch, first axis the network (or 1 where unused): H, D (N, rows, Bmax); A, MK (N, hidden rows, Bmax)
    dropped activations and masks; XB, TB (N, F|K, Bmax) the gathered minibatch, or X[None], T[None] for full
    batch; G, V, M2 (N, P); R (N, nR) reductions; CV (N, 4) dtype-rounded scalars; PK, PI (N, Sp) the
    epoch permutation's keys and indices.
    """
    n = cuda.blockIdx.x
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    L = sizes.shape[0] - 1
    F = X.shape[0]
    S = X.shape[1]
    K = T.shape[0]
    P = params.shape[1]
    full = batch_size <= 0 or batch_size >= S
    per_epoch = 1 if full else (S + batch_size - 1) // batch_size
    half = c[_HALF]
    one = c[_ONE]
    slope = c[_SLOPE]
    two = c[_TWO]
    zero = c[_ZERO]
    b2 = c[_BETA2]
    eps = c[_EPS]

    seed = seeds[n]
    p_drop = hyper64[n, DROP]  # compared with float64 uniforms, as in the reference
    use_drop = p_drop > 0
    keep = hyper[n, KEEP]
    lr_n = hyper[n, LR]
    mu = hyper[n, MOM]
    wd_n = hyper[n, WD]
    mu64 = hyper64[n, MOM]
    beta2_64 = hyper64[n, 5]

    p = params[n]
    Hn = H[n]
    Dn = D[n]
    nd = n if use_drop else 0
    An = A[nd]
    Mn = MK[nd]
    nb = 0 if full else n
    xb = XB[nb]
    tb = TB[nb]
    Gn = G[n]
    Vn = V[n if opt != 0 else 0]
    M2n = M2[n if opt == 3 else 0]
    Rn = R[n]
    pk = PK[nb]
    pi = PI[nb]

    if opt != 0:
        for i in range(tid, P, nt):
            Vn[i] = zero
    if opt == 3:
        for i in range(tid, P, nt):
            M2n[i] = zero

    for t in range(steps):
        Bt = S
        if not full:
            epoch = t // per_epoch
            jb = t - epoch * per_epoch
            if jb == 0:
                epoch_permutation(pk, pi, seed, epoch, S)
            a0 = jb * batch_size
            Bt = min(S, a0 + batch_size) - a0
            for i in range(tid, F * Bt, nt):
                f = i // Bt
                s = i - f * Bt
                xb[f, s] = X[f, pi[a0 + s]]
            for i in range(tid, K * Bt, nt):
                o = i // Bt
                s = i - o * Bt
                tb[o, s] = T[o, pi[a0 + s]]
        rec = t % record_every == 0
        want = rec or out == 2
        if tid == 0:
            # float64 scalars rounded once to the dtype by the store, as the other engines do
            CV[n, 0] = 1.0 / Bt if out == 1 else 1.0 / (Bt * K)
            if opt == 3:
                CV[n, 1] = 1.0 / (1.0 - math.pow(mu64, t + 1.0))
                CV[n, 2] = 1.0 / (1.0 - math.pow(beta2_64, t + 1.0))
        cuda.syncthreads()
        inv = CV[n, 0]

        # forward: thread per (unit, sample), whole dot product each
        for l in range(L):
            fi = sizes[l]
            fo = sizes[l + 1]
            w0 = w_off[l]
            b0 = b_off[l]
            r0 = roff[l]
            if l == 0:
                inp = xb
                i0 = 0
            elif use_drop:
                inp = An
                i0 = roff[l - 1]
            else:
                inp = Hn
                i0 = roff[l - 1]
            last = l == L - 1
            key = dropout_key(seed, t, l)
            for i in range(tid, fo * Bt, nt):
                j = i // Bt
                s = i - j * Bt
                wr = w0 + j * fi
                acc = p[b0 + j]
                for k in range(fi):
                    acc += p[wr + k] * inp[i0 + k, s]
                if last:
                    Hn[r0 + j, s] = acc
                else:
                    h = activate(acc, act, half, slope, zero)
                    Hn[r0 + j, s] = h
                    if use_drop:
                        m = keep if uniform_at(key, j * Bt + s) >= p_drop else zero
                        Mn[r0 + j, s] = m
                        An[r0 + j, s] = h * m
            cuda.syncthreads()

        # output deltas and loss; a chunk's partial also adds z * 0 per logit (NaN iff a logit is not finite)
        rL = roff[L - 1]
        nch = (Bt + chunk - 1) // chunk
        for ci in range(tid, nch, nt):
            part = zero
            s = ci
            while s < Bt:
                if out == 1:  # softmax + cross-entropy
                    m = Hn[rL, s]
                    for o in range(1, K):
                        z = Hn[rL + o, s]
                        m = z if z > m else m
                    tot = zero
                    for o in range(K):
                        e = math.exp(Hn[rL + o, s] - m)
                        Dn[rL + o, s] = e
                        tot += e
                    tz = zero
                    for o in range(K):
                        z = Hn[rL + o, s]
                        Dn[rL + o, s] = (Dn[rL + o, s] / tot - tb[o, s]) * inv
                        part += z * zero
                        tz += tb[o, s] * z
                    if want:
                        part += math.log(tot) + m - tz
                elif out == 0:  # sigmoid + binary cross-entropy
                    for o in range(K):
                        z = Hn[rL + o, s]
                        y = tb[o, s]
                        Dn[rL + o, s] = (half + half * math.tanh(half * z) - y) * inv
                        part += z * zero
                        if want:
                            part += (z if z > zero else zero) - z * y + math.log1p(math.exp(-abs(z)))
                else:  # identity + squared error
                    for o in range(K):
                        d = Hn[rL + o, s] - tb[o, s]
                        Dn[rL + o, s] = two * d * inv
                        part += d * d
                s += nch
            Rn[ci] = part
        cuda.syncthreads()
        tree_sum(Rn, nch)
        total = Rn[0]
        cuda.syncthreads()
        if not math.isfinite(total):
            if tid == 0:
                diverged[n] = t
            return
        if rec and tid == 0:
            curves[n, t // record_every] = total * inv

        # backward
        for l in range(L - 1, -1, -1):
            fi = sizes[l]
            fo = sizes[l + 1]
            w0 = w_off[l]
            b0 = b_off[l]
            r0 = roff[l]
            if l == 0:
                inp = xb
                i0 = 0
            elif use_drop:
                inp = An
                i0 = roff[l - 1]
            else:
                inp = Hn
                i0 = roff[l - 1]
            fi1 = fi + 1
            ntask = fo * fi1
            # weight-gradient partials: (unit j, input k or bias, chunk) -> R
            for i in range(tid, ntask * nch, nt):
                task = i // nch
                ci = i - task * nch
                j = task // fi1
                k = task - j * fi1
                acc = zero
                s = ci
                if k < fi:
                    while s < Bt:
                        acc += Dn[r0 + j, s] * inp[i0 + k, s]
                        s += nch
                else:
                    while s < Bt:
                        acc += Dn[r0 + j, s]
                        s += nch
                Rn[i] = acc
            # deltas of the layer below: thread per (input unit, sample)
            if l > 0:
                rb = roff[l - 1]
                for i in range(tid, fi * Bt, nt):
                    k = i // Bt
                    s = i - k * Bt
                    acc = zero
                    for j in range(fo):
                        acc += p[w0 + j * fi + k] * Dn[r0 + j, s]
                    if use_drop:
                        acc *= Mn[rb + k, s]
                    Dn[rb + k, s] = acc * activation_grad(Hn[rb + k, s], act, one, slope, zero)
            cuda.syncthreads()
            for task in range(tid, ntask, nt):
                acc = zero
                for ci in range(nch):
                    acc += Rn[task * nch + ci]
                j = task // fi1
                k = task - j * fi1
                if k < fi:
                    Gn[w0 + j * fi + k] = acc
                else:
                    Gn[b0 + j] = acc
            cuda.syncthreads()
            if track and rec:
                for i in range(tid, fo * fi, nt):
                    g = Gn[w0 + i]
                    Rn[i] = g * g
                cuda.syncthreads()
                tree_sum(Rn, fo * fi)
                if tid == 0:
                    gnorms[n, t // record_every, l] = math.sqrt(Rn[0])
                cuda.syncthreads()

        # update
        c1 = CV[n, 1] if opt == 3 else one
        c2 = CV[n, 2] if opt == 3 else one
        for l in range(L):
            w0 = w_off[l]
            b0 = b_off[l]
            update_range(p, Gn, Vn, M2n, w0, b0, wd_n, opt, lr_n, mu, b2, eps, c1, c2, one)
            update_range(p, Gn, Vn, M2n, b0, b0 + sizes[l + 1], zero, opt, lr_n, mu, b2, eps, c1, c2, one)
        cuda.syncthreads()


@cuda.jit
def rng_probe_kernel(seeds, epochs, steps, layers, counters, out_bits, out_uniform, out_dropout_u):
    """For tests: the device hash at given (seed, epoch) shuffle keys and (seed, step, layer) dropout draws."""
    i = cuda.grid(1)
    if i < seeds.shape[0]:
        key = stream_key(seeds[i], _SHUFFLE | np.uint64(epochs[i]))
        out_bits[i] = bits_at(key, counters[i])
        out_uniform[i] = uniform_at(key, counters[i])
        out_dropout_u[i] = uniform_at(dropout_key(seeds[i], steps[i], layers[i]), counters[i])


@cuda.jit
def permutation_probe_kernel(seeds, epochs, S, PK, PI):
    """For tests: block b writes the permutation of (seeds[b], epochs[b]) into PI[b, :S]."""
    b = cuda.blockIdx.x
    epoch_permutation(PK[b], PI[b], seeds[b], epochs[b], S)
