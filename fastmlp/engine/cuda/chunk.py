"""numba.cuda kernel of the chunk path: for small networks, a thread per chunk of samples, the network in registers.

The block path (``block.py``) runs every phase of a step over (unit, sample) pairs, with the activations
and deltas in global scratch and a barrier after each phase. For a network as small as W1's (7 -> 4 -> 1,
37 parameters) that is ~12 barriers and several trips through L2 per step for ~100k multiply-adds. Here one
block still trains one network (persistent blocks, as there), but thread ``ci`` takes the samples of chunk
``ci`` (``ci, ci + nch, ...``) one after the other through the whole step: forward, output deltas, backward
and that chunk's partial sums of the weight gradient, all in registers. The kernel is written for the
network's layer sizes, activation, output and optimiser (``kernels``; ``source`` shows it): the statements over
units, inputs and parameters are unrolled in its source with constant indices, so that the activations, deltas
and gradient partials (one per parameter), local arrays there, become registers; loops over the layers left to
the compiler kept them in local memory (bench/NOTES.md, change 41). Then, as in the block path:
the loss partials by ``tree_sum``, the gradient partials added in chunk order (one thread per parameter), the
gradient norms and the update.

Same bits as the block path: every sum is the block path's, in its order. A forward unit: bias first, then its
inputs in order; a delta of the layer below: its units in order from zero, times the mask, times the
derivative; a gradient partial of chunk ``ci``: from zero, its samples in order; the loss: ``sample_output``
(shared) per sample in order. Tests check the two paths bit for bit.
"""
import linecache

import numpy as np
from numba import cuda, float32, float64

from . import block as blk
from .. import abi
from ...layout import Layout

_KERNELS = {}


def kernels(dtype, sizes, act, out, opt):
    """The chunk path's kernel for a dtype, layer sizes and the activation, output and optimiser codes of
    ``engine/abi.py`` (compiled on first launch; its ``act``, ``out`` and ``opt`` arguments are ignored)."""
    key = (np.dtype(dtype).name, tuple(int(x) for x in sizes), int(act), int(out), int(opt))
    if key not in _KERNELS:
        _KERNELS[key] = _make(*key)
    return _KERNELS[key]


def _per_sample(sizes):
    """The statements of one sample's step for ``sizes``, unrolled: the forward pass (bias first, then the
    inputs in order), the output deltas and loss terms, then per layer down the chunk's gradient partials and
    the deltas of the layer below (its units in order from zero, times the mask, times the derivative)."""
    _, w_off, b_off = Layout(sizes).arrays()
    L = len(sizes) - 1
    roff = [sum(sizes[1:l + 1]) for l in range(L)]  # each layer's first row in h, m and d
    out = []

    def x(l, k):  # layer l's input k at sample s: the data, or the (dropped) activation below
        if l == 0:
            return f"xs[xo + {k} * xl + s]"
        r = roff[l - 1] + k
        return f"(h[{r}] * m[{r}] if use_drop else h[{r}])"

    for l in range(L):
        fi, fo = sizes[l], sizes[l + 1]
        out.append(f"# layer {l}: {fi} -> {fo}")
        if l < L - 1:
            out.append(f"key = blk.dropout_key(seed, t, {l})")
        for j in range(fo):
            out.append(f"acc = p[{b_off[l] + j}]")
            out += [f"acc += p[{w_off[l] + j * fi + k}] * {x(l, k)}" for k in range(fi)]
            r = roff[l] + j
            if l == L - 1:
                out.append(f"h[{r}] = acc")
            else:
                out += [f"h[{r}] = blk.activate(acc, act, half, slope, zero)",
                        "if use_drop:",
                        f"    m[{r}] = keep if blk.uniform_at(key, {j} * Bt + s) >= p_drop else zero"]
    out.append(f"part = blk.sample_output(h, {roff[-1]}, d, {roff[-1]}, 1, ts, to + s, tl, {sizes[-1]}, out, want, "
               f"inv, half, two, zero, part)")
    for l in range(L - 1, -1, -1):
        fi, fo = sizes[l], sizes[l + 1]
        out.append(f"# layer {l}: gradient partials" + (", deltas of layer below" if l else ""))
        for j in range(fo):
            out += [f"gp[{w_off[l] + j * fi + k}] += d[{roff[l] + j}] * {x(l, k)}" for k in range(fi)]
            out.append(f"gp[{b_off[l] + j}] += d[{roff[l] + j}]")
        for k in range(fi if l else 0):
            e = roff[l - 1] + k
            out.append("acc = zero")
            out += [f"acc += p[{w_off[l] + j * fi + k}] * d[{roff[l] + j}]" for j in range(fo)]
            out += ["if use_drop:", f"    acc *= m[{e}]",
                    f"d[{e}] = acc * blk.activation_grad(h[{e}], act, one, slope, zero)"]
    return out


def source(sizes, act, out, opt):
    """The kernel's Python source (what ``kernels`` compiles)."""
    sizes = tuple(int(x) for x in sizes)
    P = Layout(sizes).n_params
    rows = sum(sizes[1:])
    in_chunk, in_sample = " " * 16, " " * 20  # the template's indentation there
    return _TEMPLATE.format(
        act=int(act), out=int(out), opt=int(opt), sizes=sizes, F=sizes[0], K=sizes[-1], P=P, ROWS=rows,
        HID=max(rows - sizes[-1], 1),
        zero_gp="\n".join(f"{in_chunk}gp[{i}] = zero" for i in range(P)),
        per_sample="\n".join(in_sample + line for line in _per_sample(sizes)),
        store_gp="\n".join(f"{in_chunk}scr[oRG + {i} * nch + ci] = gp[{i}]" for i in range(P)),
        norms="\n".join(" " * 16 + line for line in _norms(sizes)),
        updates="\n".join(" " * 12 + line for line in _updates(sizes)))


def _norms(sizes):
    """The statements that record each layer's weight-gradient norm (from the block path's ``grad_norm``)."""
    L = len(sizes) - 1
    out = []
    for l, w0 in enumerate(Layout(sizes).arrays()[1]):
        out += [f"gn = blk.grad_norm(scr, oG, oR, {w0}, {sizes[l] * sizes[l + 1]})",
                "if tid == 0:", f"    gnorms[(n * nrec + t // record_every) * {L} + {l}] = gn", "cuda.syncthreads()"]
    return out


def _updates(sizes):
    """The statements of the update, layer by layer: weights with weight decay, then biases without."""
    out = []
    for w0, b0, fo in zip(*Layout(sizes).arrays()[1:], sizes[1:]):
        out += [f"blk.update_range(p, scr, oG, oV, oM2, {w0}, {b0}, wd_n, opt, lr_n, mu, b2, eps, c1, c2, one)",
                f"blk.update_range(p, scr, oG, oV, oM2, {b0}, {b0 + fo}, zero, opt, lr_n, mu, b2, eps, c1, c2, one)"]
    return out


def _make(dtype_name, sizes, act, out, opt):
    src = source(sizes, act, out, opt)
    name = f"<fastmlp.engine.cuda.chunk {'-'.join(map(str, sizes))} {act} {out} {opt}>"
    linecache.cache[name] = (len(src), None, src.splitlines(True), name)  # for tracebacks and numba's messages
    # the generated source reads abi's column and constant names as globals
    scope = dict(cuda=cuda, blk=blk, DT=float32 if dtype_name == "float32" else float64,
                 **{k: v for k, v in vars(abi).items() if k.isupper() and isinstance(v, int)})
    exec(compile(src, name, "exec"), scope)
    return cuda.jit(scope["train_kernel"])


_TEMPLATE = '''
def train_kernel(geo, act, out, opt, params, X, T, hyper, hyper64, seeds, steps, batch_size, record_every, c,
                 track, chunk, curves, diverged, gnorms, SCR, PS):
    """The chunk path for sizes {sizes}: the block path's train_kernel contract, less the layer count."""
    act = {act}  # compiled in, so that the branches of the others fold away
    out = {out}
    opt = {opt}
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
    half = c[C_HALF]
    one = c[C_ONE]
    slope = c[C_SLOPE]
    two = c[C_TWO]
    zero = c[C_ZERO]
    b2 = c[C_BETA2]
    eps = c[C_EPS]
    scr = SCR[blk_id]
    ps = PS[0 if full else blk_id]
    xs, xo, xl, ts, to, tl = blk.batch_arrays(full, X, T, scr, geo)
    h = cuda.local.array({ROWS}, DT)  # one sample's activations (before dropout), then its logits
    m = cuda.local.array({HID}, DT)  # its dropout masks
    d = cuda.local.array({ROWS}, DT)  # its deltas
    gp = cuda.local.array({P}, DT)  # this chunk's gradient partials

    for n in range(blk_id, N, cuda.gridDim.x):  # persistent blocks, as on the block path
        seed = seeds[n]
        p_drop = hyper64[n, DROP]
        use_drop = p_drop > 0
        keep = hyper[n, KEEP]
        lr_n = hyper[n, LR]
        mu = hyper[n, MOM]
        wd_n = hyper[n, WD]
        p = params[n]
        if opt != 0:
            for i in range(tid, {P}, nt):
                scr[oV + i] = zero
        if opt == 3:
            for i in range(tid, {P}, nt):
                scr[oM2 + i] = zero

        for t in range(steps):
            Bt = blk.begin_step(t, full, per_epoch, batch_size, S, {F}, {K}, X, T, ps, seed, xs, xo, xl, ts, to, tl,
                                scr, oCV, out, opt, hyper64[n, MOM], hyper64[n, BETA2])
            rec = t % record_every == 0
            want = rec or out == 2
            inv = scr[oCV]
            nch = (Bt + chunk - 1) // chunk
            for ci in range(tid, nch, nt):  # a thread a chunk (or several, in a small block)
{zero_gp}
                part = zero
                s = ci
                while s < Bt:
{per_sample}
                    s += nch
                scr[oR + ci] = part
{store_gp}
            cuda.syncthreads()
            blk.tree_sum(scr, oR, nch)
            total = scr[oR]
            cuda.syncthreads()
            if blk.record_loss(total, inv, t, n, rec, record_every, nrec, curves, diverged):
                break  # uniformly: every thread read the same total
            # each parameter's partials, in chunk order
            for i in range(tid, {P}, nt):
                acc = zero
                for ci in range(nch):
                    acc += scr[oRG + i * nch + ci]
                scr[oG + i] = acc
            cuda.syncthreads()
            if track and rec:
{norms}
            c1 = scr[oCV + 1] if opt == 3 else one
            c2 = scr[oCV + 2] if opt == 3 else one
{updates}
            cuda.syncthreads()
        cuda.syncthreads()  # the next network reuses this block's scratch
'''
