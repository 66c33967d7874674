"""The ``cuda`` backend: three paths of numba.cuda kernels, which give the same bits, and the choice between them.

``block`` (``block.py``): a thread block per network, every step in one launch. ``chunk`` (``chunk.py``): the
same launch, a thread per chunk of samples with the network in registers, for tiny networks. ``tiled``
(``tiled.py``): a launch per phase over all networks, tiled products, for wide layers. ``choose_path`` picks
one; ``train`` launches it. ``device.py`` finds the GPU (or the simulator) and its peak.

Needs a CUDA GPU with its driver and ``numba-cuda`` (``pip install "fastmlp[cuda]"``; the import is still
``from numba import cuda``). Without a GPU, ``NUMBA_ENABLE_CUDASIM=1`` (set before numba is imported) runs the
same kernels in numba's CUDA simulator on the CPU, slowly: that is how the tests check them. The simulator
works with plain ``numba`` as well as with ``numba-cuda``.
"""
import warnings

import numpy as np

from .device import check_available, gpu_info, gpu_peak, simulated
from ..abi import kernel_args
from ...config import env
from ...layout import Layout

__all__ = ["CHUNK", "OPTIONS", "PATHS", "check_available", "choose_path", "gpu_info", "gpu_peak", "paths_for",
           "simulated", "train"]

#: the options ``train`` takes, also as ``Problem.engine_options`` (``train_batch(..., engine_options=...)``)
OPTIONS = ("path", "threads_per_block", "max_blocks", "tiles", "chunk")
#: samples per interleaved chunk of every reduction over samples (it fixes the summation order, so it is a
#: constant of the engine, not a tuning knob: changing it changes results at the rounding level)
CHUNK = 16
#: threads per block on a GPU (a multiple of the warp size); results do not depend on it
THREADS = 128
#: threads per block in the simulator, where every CUDA thread is a Python thread
SIM_THREADS = 8
#: the tiled path's (TM, TN, TK, RM, RN) on a GPU: 64 x 64 tiles of the result, 16-deep slabs of the operands
#: in shared memory, 4 x 4 results per thread (256 threads); results do not depend on them
GPU_TILES = (64, 64, 16, 4, 4)
#: in the simulator, where every thread is a Python thread and every block costs: 8 x 8 tiles, 4-deep slabs,
#: 4 x 4 results per thread as on a GPU (4 threads)
SIM_TILES = (8, 8, 4, 4, 4)
#: the CUDA paths (``block.py``: a block per network; ``chunk.py``: a thread per chunk of samples, the network
#: in registers; ``tiled.py``: tiled products); they give the same bits
PATHS = ("auto", "block", "chunk", "tiled")
#: ``auto`` takes the chunk path for networks of at most this many parameters: each thread holds a gradient
#: partial and (hoisted by the compiler) the value of every parameter in registers, and larger networks reach
#: the 255-register limit and spill (ptxas figures: bench/NOTES.md, change 41) ...
CHUNK_MAX_PARAMS = 64
#: the chunk path's kernel has a statement per parameter and more: it refuses networks larger than this
CHUNK_LIMIT_PARAMS = 2048
#: ... and the tiled path when the widest layer has at least this many units: half a GPU tile's rows (a
#: narrower layer leaves most of each tile empty). Both are first estimates; the GPU benchmark decides
TILED_MIN_WIDTH = 32

def _next_pow2(x):
    return 1 << max(0, int(x - 1).bit_length())


def _threads(problem, Bmax, threads_per_block, work=None, most=THREADS):
    if threads_per_block is None:
        env_threads = env("FASTMLP_CUDA_THREADS")
        threads_per_block = int(env_threads) if env_threads else (SIM_THREADS if simulated() else None)
    if threads_per_block is None:
        # as many threads as the widest phase can use (by default its (unit, sample) pairs), in whole warps
        if work is None:
            work = max(int(fo) * Bmax for fo in problem.sizes[1:])
        threads_per_block = min(most, 32 * max(1, -(-work // 32)))
    if not 1 <= threads_per_block <= 256:  # the kernels use up to 255 registers: 256 threads fill an SM's 65536
        raise ValueError(f"threads per block must be in [1, 256], got {threads_per_block}")
    return int(threads_per_block)


def scratch_layout(problem, chunk=CHUNK, path="block"):
    """Offsets of each block's (block and chunk paths) or network's (tiled path) float scratch (the ``geo``
    header of ``cuda.train_kernel``) and its size.

    The reduction buffer holds the loss partials and the gradient norms' squares, and on the block path the
    weight-gradient partials of every (unit, input, chunk), on the chunk path those of every (parameter,
    chunk); the chunk path keeps activations and deltas in registers."""
    from . import block as kern
    sizes = np.asarray(problem.sizes, dtype=np.int64)
    L = sizes.size - 1
    S, F = problem.X.shape
    K = problem.T.shape[1]
    P = problem.params.shape[1]
    bs = int(problem.batch_size)
    full = bs <= 0 or bs >= S
    Bm = S if full else bs
    rows = int(sizes[1:].sum())
    hidden_rows = rows - int(sizes[-1])
    drop = bool(np.any(problem.dropout > 0)) and hidden_rows > 0
    opt = problem.optimizer
    nch = -(-Bm // chunk)
    n_red = max(max(int(sizes[l + 1]) * int(sizes[l]) for l in range(L)), nch, 1)
    if path == "block":
        n_red = max(max(int(sizes[l + 1]) * (int(sizes[l]) + 1) for l in range(L)) * nch, 1)
    elif path == "chunk":
        n_red = max(n_red, nch * (P + 1))
    on_rows = 0 if path == "chunk" else 1
    parts = [("H", on_rows * rows * Bm), ("D", on_rows * rows * Bm), ("A", on_rows * hidden_rows * Bm if drop else 0),
             ("M", on_rows * hidden_rows * Bm if drop else 0), ("XB", 0 if full else F * Bm),
             ("TB", 0 if full else K * Bm),
             ("G", P), ("V", P if opt != "sgd" else 0), ("M2", P if opt == "adam" else 0), ("R", n_red), ("CV", 4)]
    head = np.zeros(kern.G_HDR, dtype=np.int64)
    off = 0
    for name, size in parts:
        head[getattr(kern, "G_" + name)] = off
        off += size
    head[kern.G_BM], head[kern.G_F], head[kern.G_S], head[kern.G_K] = Bm, F, S, K
    head[kern.G_NREC] = problem.n_records
    return head, off, (_next_pow2(S) if not full else 0)


def _grid(N, per_block, max_blocks, per_sm=32):
    """Blocks in the grid: every network its own block where memory allows; blocks are persistent (a block
    trains networks b, b + grid, ...), so the scratch is sized by the grid, not by N. At most ``per_sm`` blocks
    per multiprocessor (None: no such bound; the tiled path sizes its groups of networks with it)."""
    if max_blocks is None:
        max_blocks = N
        if not simulated():
            from numba import cuda
            try:
                dev = cuda.get_current_device()
                free, _ = cuda.current_context().get_memory_info()
                # many more blocks than can be resident at once, within 60% of the free memory
                max_blocks = min(N, int(free * 0.6) // per_block)
                if per_sm:
                    max_blocks = min(max_blocks, per_sm * int(dev.MULTIPROCESSOR_COUNT))
            except Exception:  # pragma: no cover
                pass
    return int(max(1, min(N, max_blocks)))


def paths_for(sizes):
    """The CUDA paths that can train networks of these layer sizes (the chunk path has a size limit)."""
    small = Layout(tuple(int(x) for x in sizes)).n_params <= CHUNK_LIMIT_PARAMS
    return ("block", "chunk", "tiled") if small else ("block", "tiled")


def choose_path(problem):
    """The path ``path="auto"`` takes: ``"chunk"`` for a network of ``CHUNK_MAX_PARAMS`` parameters or fewer,
    else ``"tiled"`` when its widest layer has ``TILED_MIN_WIDTH`` units or more, else ``"block"``. They give
    the same bits, so the choice is about speed only."""
    sizes = [int(x) for x in problem.sizes]
    if Layout(tuple(sizes)).n_params <= CHUNK_MAX_PARAMS:
        return "chunk"
    return "tiled" if max(sizes[1:]) >= TILED_MIN_WIDTH else "block"


def _geo(problem, sizes, w_off, b_off, chunk, path):
    head, n_scr, Sp = scratch_layout(problem, chunk, path)
    L = sizes.size - 1
    roff = np.zeros(L, dtype=np.int64)
    roff[1:] = np.cumsum(sizes[1:L])
    return np.concatenate([head, sizes, w_off, b_off, roff]).astype(np.int64), n_scr, Sp


def train(problem, threads_per_block=None, chunk=None, max_blocks=None, path=None, tiles=None):
    """Train ``problem`` on the GPU (or the simulator); returns ``(params, curves, diverged, gnorms)`` like
    every engine.

    ``path`` is ``"block"`` (a block per network, all steps in one launch), ``"chunk"`` (the same, with a
    thread per chunk of samples and the network in registers), ``"tiled"`` (tiled products, a launch per
    phase) or ``"auto"`` (``choose_path``). The paths give the same
    bits. ``threads_per_block``, ``max_blocks`` (block and chunk paths: the grid, blocks are persistent; tiled
    path: networks per launch) and ``tiles`` (tiled path: ``(TM, TN, TK, RM, RN)``)
    change the launch only, never a result; ``chunk`` (default ``CHUNK``) sets the summation order of the
    reductions over samples.

    Each argument left as None is taken from ``problem.engine_options`` (same names), else from the
    environment (``FASTMLP_CUDA_PATH``, ``FASTMLP_CUDA_TILES``, ``FASTMLP_CUDA_THREADS``: ``fastmlp.config``),
    else the default.
    """
    opts = problem.engine_options or {}
    path = path or opts.get("path") or env("FASTMLP_CUDA_PATH") or "auto"
    threads_per_block = opts.get("threads_per_block") if threads_per_block is None else threads_per_block
    max_blocks = opts.get("max_blocks") if max_blocks is None else max_blocks
    tiles = opts.get("tiles") if tiles is None else tiles
    chunk = opts.get("chunk") if chunk is None else chunk
    if path not in PATHS:
        raise ValueError(f"unknown CUDA path {path!r}; choose one of: {', '.join(PATHS)}")
    if path == "auto":
        path = choose_path(problem)
    chunk = CHUNK if chunk is None else int(chunk)
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    if path == "tiled":
        tiles = _tiles(tiles, problem.params.dtype.itemsize)
        Bm = problem.X.shape[0] if problem.batch_size <= 0 else min(problem.batch_size, problem.X.shape[0])
        if -(-Bm // tiles[1]) > 65535:
            raise ValueError(f"tiles: a batch of {Bm} samples in tiles of TN = {tiles[1]} needs more than 65535 "
                             f"blocks along y; use a larger TN")
    if threads_per_block is not None and not 1 <= int(threads_per_block) <= 256:
        raise ValueError(f"threads per block must be in [1, 256], got {threads_per_block}")
    n_params = Layout(tuple(int(x) for x in problem.sizes)).n_params
    if path == "chunk" and n_params > CHUNK_LIMIT_PARAMS:
        raise ValueError(f"the chunk path compiles a statement per parameter; this network has {n_params} "
                         f"parameters (at most {CHUNK_LIMIT_PARAMS}): use the block or tiled path")
    check_available()
    outputs = problem.empty_outputs()
    params = np.array(problem.params, copy=True, order="C")
    a = kernel_args(problem)
    with warnings.catch_warnings():
        # the simulator runs the uint64 hash on NumPy scalars, which warn on (intended) wrap-around, and a
        # diverging network overflows on purpose; on a GPU nothing warns
        if simulated():
            warnings.simplefilter("ignore", RuntimeWarning)
        if path == "tiled":
            return _train_tiled(problem, a, params, *outputs, chunk=chunk, threads_per_block=threads_per_block,
                                max_blocks=max_blocks, tiles=tiles)
        return _train_blocks(problem, a, params, *outputs, chunk=chunk, threads_per_block=threads_per_block,
                             max_blocks=max_blocks, path=path)


def _train_blocks(problem, a, params, curves, diverged, gnorms, chunk, threads_per_block, max_blocks, path):
    """The block and chunk paths: one launch, a block per network (persistent blocks)."""
    from numba import cuda
    from . import block as kern, chunk as cuda_chunk

    N = params.shape[0]
    dt = params.dtype
    L = a["sizes"].size - 1
    geo, n_scr, Sp = _geo(problem, a["sizes"], a["w_off"], a["b_off"], chunk, path)
    Bm = int(geo[kern.G_BM])
    if path == "chunk":
        kernel = cuda_chunk.kernels(dt, tuple(int(x) for x in a["sizes"]), a["act"], a["out"], a["opt"])
        # at most 256 threads: a block of them fits an SM's 65536 registers at 255 registers each
        tpb = _threads(problem, Bm, threads_per_block, work=-(-Bm // chunk), most=256)
    else:
        tpb = _threads(problem, Bm, threads_per_block)
    grid = _grid(N, dt.itemsize * n_scr + 16 * Sp + 64, max_blocks)

    d_params = cuda.to_device(params)
    d_curves = cuda.to_device(curves.reshape(-1))
    d_div = cuda.to_device(diverged)
    d_gn = cuda.to_device(gnorms.reshape(-1))
    SCR = cuda.device_array((grid, n_scr), dtype=dt)
    PS = cuda.device_array((grid, 2 * Sp) if Sp else (1, 2), dtype=np.uint64)
    # the chunk path's kernel has the layer count compiled in
    launch = (kernel[grid, tpb] if path == "chunk" else
              lambda geo, *args: kern.train_kernel[grid, tpb](geo, L, *args))
    launch(
        cuda.to_device(geo), a["act"], a["out"], a["opt"], d_params,
        # the GPU kernel reads the data feature-major
        cuda.to_device(np.ascontiguousarray(a["X"].T).ravel()),
        cuda.to_device(np.ascontiguousarray(a["T"].T).ravel()),
        cuda.to_device(a["hyper"]), cuda.to_device(a["hyper64"]), cuda.to_device(a["seeds"]), a["steps"],
        a["batch_size"], a["record_every"], cuda.to_device(a["c"]), a["track"], chunk, d_curves, d_div, d_gn,
        SCR, PS)
    return (d_params.copy_to_host(), d_curves.copy_to_host().reshape(curves.shape), d_div.copy_to_host(),
            d_gn.copy_to_host().reshape(gnorms.shape))


def _tiles(tiles, itemsize=8):
    """The tiled path's (TM, TN, TK, RM, RN): as given, else ``$FASTMLP_CUDA_TILES`` ("64,64,16,4,4"), else the
    default for a GPU or the simulator; ``ValueError`` naming a bad one (``itemsize``: the dtype's bytes, for
    the shared-memory limit)."""
    env_tiles = env("FASTMLP_CUDA_TILES") if tiles is None else ""
    where = f"FASTMLP_CUDA_TILES={env_tiles!r}: " if env_tiles else ""
    if tiles is None:
        tiles = env_tiles.split(",") if env_tiles else SIM_TILES if simulated() else GPU_TILES
    try:
        tiles = tuple(int(x) for x in tiles)
    except (TypeError, ValueError):
        raise ValueError(f"{where}tiles must be five integers (TM, TN, TK, RM, RN), got {tiles!r}") from None
    if len(tiles) != 5 or min(tiles) < 1:
        raise ValueError(f"{where}tiles must be five positive integers (TM, TN, TK, RM, RN), got {tiles!r}")
    TM, TN, TK, RM, RN = tiles
    if TM % RM or TN % RN:
        raise ValueError(f"{where}tiles: RM must divide TM and RN divide TN, got {tiles!r}")
    if not 1 <= (TM // RM) * (TN // RN) <= 256:  # so that a block fits an SM's registers at 255 each
        raise ValueError(f"{where}tiles: (TM/RM) x (TN/RN) threads per block must be in [1, 256], got {tiles!r}")
    smem = TK * (TM + 1 + TN + 1) * itemsize  # the weight gradient's two padded slabs, the largest
    if smem > 48 * 1024:
        raise ValueError(f"{where}tiles: TK x (TM + TN + 2) x {itemsize} bytes = {smem} bytes of shared memory, "
                         f"over the 49152 a block may have statically; got {tiles!r}")
    return tiles


def _train_tiled(problem, a, params, curves, diverged, gnorms, chunk, threads_per_block, max_blocks, tiles):
    from numba import cuda
    from . import block as kern, tiled as cuda_tiled

    TM, TN = tiles[0], tiles[1]
    k = cuda_tiled.kernels(params.dtype, tiles)
    NT = cuda_tiled.threads(tiles)
    N, P = params.shape
    sizes = [int(x) for x in a["sizes"]]
    L = len(sizes) - 1
    geo, n_scr, Sp = _geo(problem, a["sizes"], a["w_off"], a["b_off"], chunk, "tiled")
    tpb = _threads(problem, int(geo[kern.G_BM]), threads_per_block)
    act, out, opt, steps, every = a["act"], a["out"], a["opt"], a["steps"], a["record_every"]
    S, bs = problem.X.shape[0], a["batch_size"]
    full = bs <= 0 or bs >= S
    per_epoch = 1 if full else -(-S // bs)
    is_weight = np.zeros(P, np.uint8)
    for w0, b0 in zip(a["w_off"], a["b_off"]):
        is_weight[int(w0):int(b0)] = 1
    # networks per launch: the grid's z dimension, and all of a group's scratch is live at once
    group = _grid(min(N, 65535), params.dtype.itemsize * n_scr + 16 * max(Sp, 1), max_blocks, None)
    nrec = curves.shape[1]
    cdiv = lambda x, y: -(-x // y)  # noqa: E731

    d_geo, d_c, d_isw = cuda.to_device(geo), cuda.to_device(a["c"]), cuda.to_device(is_weight)
    d_X = cuda.to_device(np.ascontiguousarray(a["X"].T).ravel())
    d_T = cuda.to_device(np.ascontiguousarray(a["T"].T).ravel())
    curves, gnorms = curves.reshape(-1), gnorms.reshape(-1)
    for g0 in range(0, N, group):
        g1 = min(N, g0 + group)
        G = g1 - g0
        d_params = cuda.to_device(params[g0:g1])
        d_hyper, d_h64 = cuda.to_device(a["hyper"][g0:g1]), cuda.to_device(a["hyper64"][g0:g1])
        d_seeds, d_div = cuda.to_device(a["seeds"][g0:g1]), cuda.to_device(diverged[g0:g1])
        d_curves = cuda.to_device(curves[g0 * nrec:g1 * nrec])
        d_gn = cuda.to_device(gnorms[g0 * nrec * L:g1 * nrec * L])
        SCR = cuda.device_array((G, n_scr), dtype=params.dtype)
        PS = cuda.device_array((G, 2 * Sp if Sp else 2), dtype=np.uint64)
        if opt != 0:
            k.zero_moments[(cdiv(P, tpb), G), tpb](opt, P, d_geo, d_c, SCR)
        for t in range(steps):
            jb = t % per_epoch
            Bt = S if full else min(S, jb * bs + bs) - jb * bs
            rec = t % every == 0
            k.begin_step[G, tpb](t, full, per_epoch, bs, d_geo, out, opt, d_X, d_T, d_h64, d_seeds, d_div, SCR, PS)
            for l in range(L):
                k.forward[(cdiv(sizes[l + 1], TM), cdiv(Bt, TN), G), NT](
                    l, L, t, Bt, full, d_geo, act, d_params, d_X, d_hyper, d_h64, d_seeds, d_c, d_div, SCR)
            k.loss[G, tpb](t, Bt, rec, rec or out == 2, every, full, d_geo, L, out, chunk, d_T, d_c, d_curves,
                           d_div, SCR)
            for l in range(L - 1, -1, -1):
                k.weight_grad[(cdiv(sizes[l + 1], TM), cdiv(sizes[l] + 1, TN), G), NT](
                    l, L, Bt, full, chunk, d_geo, d_X, d_c, d_h64, d_div, SCR)
                if l > 0:
                    k.input_delta[(cdiv(sizes[l], TM), cdiv(Bt, TN), G), NT](
                        l, L, Bt, d_geo, act, d_params, d_c, d_h64, d_div, SCR)
            if a["track"] and rec:
                k.grad_norms[G, tpb](t, every, d_geo, L, d_gn, d_div, SCR)
            k.update[(cdiv(P, tpb), G), tpb](opt, d_isw, d_geo, d_params, d_hyper, d_c, d_div, SCR)
        params[g0:g1] = d_params.copy_to_host()
        diverged[g0:g1] = d_div.copy_to_host()
        curves[g0 * nrec:g1 * nrec] = d_curves.copy_to_host()
        gnorms[g0 * nrec * L:g1 * nrec * L] = d_gn.copy_to_host()
    return params, curves.reshape(-1, nrec), diverged, gnorms.reshape(N, nrec, L)
