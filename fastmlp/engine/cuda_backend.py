"""The ``cuda`` backend: numba.cuda kernels (``engine/cuda.py``), one thread block per network, one launch.

Needs a CUDA GPU with its driver and ``numba-cuda`` (``pip install "fastmlp[cuda]"``; the import is still
``from numba import cuda``). Without a GPU, ``NUMBA_ENABLE_CUDASIM=1`` (set before numba is imported) runs the
same kernels in numba's CUDA simulator on the CPU, slowly: that is how the tests check them. The simulator
works with plain ``numba`` as well as with ``numba-cuda``.
"""
import os
import warnings

import numpy as np

from .cpu_backend import kernel_args

#: samples per interleaved chunk of every reduction over samples (it fixes the summation order, so it is a
#: constant of the engine, not a tuning knob: changing it changes results at the rounding level)
CHUNK = 16
#: threads per block on a GPU (a multiple of the warp size); results do not depend on it
THREADS = 128
#: threads per block in the simulator, where every CUDA thread is a Python thread
SIM_THREADS = 8

_HOW = ("The 'cuda' backend needs an NVIDIA GPU with a working driver and the numba-cuda package: "
        "pip install \"fastmlp[cuda]\" (or: pip install numba-cuda). To run the CUDA kernels without a GPU, "
        "in numba's CUDA simulator (slow; for testing), set NUMBA_ENABLE_CUDASIM=1 before Python starts.")


def simulated():
    """Whether numba.cuda is the CUDA simulator (``NUMBA_ENABLE_CUDASIM=1`` when numba was imported)."""
    try:
        from numba import config
    except ImportError:  # pragma: no cover
        return False
    return bool(getattr(config, "ENABLE_CUDASIM", False))


def _cuda():
    try:
        from numba import cuda
    except Exception as exc:  # ImportError, or a broken CUDA installation
        raise RuntimeError(f"numba.cuda cannot be imported ({exc}). {_HOW}") from exc
    return cuda


def check_available():
    """Raise ``RuntimeError`` (saying how to fix it) unless a GPU or the CUDA simulator can run the kernels."""
    cuda = _cuda()
    if simulated():
        return
    try:
        ok = cuda.is_available()
    except Exception as exc:  # pragma: no cover - driver errors differ between versions
        raise RuntimeError(f"no usable CUDA GPU ({exc}). {_HOW}") from exc
    if not ok:
        raise RuntimeError(f"no usable CUDA GPU was found (numba.cuda.is_available() is False). {_HOW}")


def gpu_info():
    """The GPU the backend would use, as a dict, or a string saying why there is none (for ``fastmlp info``)."""
    try:
        check_available()
    except RuntimeError as exc:
        return str(exc)
    from numba import cuda
    if simulated():
        return {"name": "CUDA simulator (NUMBA_ENABLE_CUDASIM=1)", "simulator": True,
                "compute_capability": None, "total_memory_bytes": None, "free_memory_bytes": None}
    try:
        dev = cuda.get_current_device()
        name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
        free, total = cuda.current_context().get_memory_info()
        info = {"name": name, "simulator": False,
                "compute_capability": "{}.{}".format(*dev.compute_capability),
                "total_memory_bytes": int(total), "free_memory_bytes": int(free),
                "multiprocessors": int(getattr(dev, "MULTIPROCESSOR_COUNT", 0)) or None}
        try:
            info["driver_version"] = ".".join(map(str, cuda.cudadrv.driver.driver.get_version()))
        except Exception:
            pass
        return info
    except Exception as exc:  # pragma: no cover - only on a broken GPU set-up
        return f"a CUDA GPU is visible but could not be queried: {exc}"


def _next_pow2(x):
    return 1 << max(0, int(x - 1).bit_length())


def _threads(problem, Bmax, threads_per_block):
    if threads_per_block is None:
        env = os.environ.get("FASTMLP_CUDA_THREADS", "")
        threads_per_block = int(env) if env else (SIM_THREADS if simulated() else None)
    if threads_per_block is None:
        # as many threads as the widest phase can use, in whole warps, at most THREADS
        work = max(int(fo) * Bmax for fo in problem.sizes[1:])
        threads_per_block = min(THREADS, 32 * max(1, -(-work // 32)))
    if not 1 <= threads_per_block <= 1024:
        raise ValueError(f"threads per block must be in [1, 1024], got {threads_per_block}")
    return int(threads_per_block)


def train(problem, threads_per_block=None, chunk=None, max_networks_per_launch=None):
    """Train ``problem`` on the GPU (or the simulator); returns ``(params, curves, diverged, gnorms)``.

    ``threads_per_block`` and ``max_networks_per_launch`` change the launch only, never a result; ``chunk``
    (default ``CHUNK``) sets the summation order of the reductions over samples.
    """
    check_available()
    from numba import cuda
    from . import cuda as kern

    curves, diverged, gnorms = problem.empty_outputs()
    params = np.array(problem.params, copy=True, order="C")
    a = kernel_args(problem)
    dt = params.dtype
    N, P = params.shape
    sizes = a["sizes"]
    L = sizes.size - 1
    X, T = a["X"], a["T"]
    F, S = X.shape
    K = T.shape[0]
    bs = a["batch_size"]
    full = bs <= 0 or bs >= S
    Bmax = S if full else bs
    chunk = CHUNK if chunk is None else int(chunk)
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    tpb = _threads(problem, Bmax, threads_per_block)

    roff = np.zeros(L, dtype=np.int64)
    roff[1:] = np.cumsum(sizes[1:L])
    rows = int(sizes[1:].sum())
    hidden_rows = rows - int(sizes[-1])
    drop = bool(np.any(problem.dropout > 0)) and hidden_rows > 0
    opt = a["opt"]
    nch = -(-Bmax // chunk)
    n_red = max(max(int(sizes[l + 1]) * (int(sizes[l]) + 1) for l in range(L)) * nch, nch, 1)
    Sp = _next_pow2(S)

    # scratch per network (bytes), to split very large grids into launches that fit in GPU memory
    isz = dt.itemsize
    per_net = isz * (2 * rows * Bmax + (2 * hidden_rows * Bmax if drop else 0)
                     + (0 if full else (F + K) * Bmax) + P * (1 + (opt != 0) + (opt == 3)) + n_red + 4)
    per_net += 0 if full else 16 * Sp
    per_net += isz * (P + curves.shape[1] * (1 + L)) + 8  # params and outputs on the device
    if max_networks_per_launch is None:
        budget = 1 << 30
        if not simulated():
            try:
                free, _ = cuda.current_context().get_memory_info()
                budget = int(free * 0.6)
            except Exception:  # pragma: no cover
                pass
        max_networks_per_launch = max(1, budget // max(per_net, 1))
    nmax = int(min(N, max_networks_per_launch))

    def dev(shape_if_used, used, dtype=dt):
        return cuda.device_array(shape_if_used if used else (1,) * len(shape_if_used), dtype=dtype)

    d = dict(sizes=cuda.to_device(sizes), w_off=cuda.to_device(a["w_off"]), b_off=cuda.to_device(a["b_off"]),
             roff=cuda.to_device(roff), X=cuda.to_device(X), T=cuda.to_device(T), c=cuda.to_device(a["c"]))
    H = dev((nmax, rows, Bmax), True)
    D = dev((nmax, rows, Bmax), True)
    A = dev((nmax, max(hidden_rows, 1), Bmax), drop)
    MK = dev((nmax, max(hidden_rows, 1), Bmax), drop)
    if full:
        XB, TB = cuda.to_device(np.ascontiguousarray(X[None])), cuda.to_device(np.ascontiguousarray(T[None]))
    else:
        XB, TB = dev((nmax, F, Bmax), True), dev((nmax, K, Bmax), True)
    G = dev((nmax, P), True)
    V = dev((nmax, P), opt != 0)
    M2 = dev((nmax, P), opt == 3)
    R = dev((nmax, n_red), True)
    CV = dev((nmax, 4), True)
    PK = dev((nmax, Sp), not full, np.uint64)
    PI = dev((nmax, Sp), not full, np.int64)

    with warnings.catch_warnings():
        # the simulator runs the uint64 hash on NumPy scalars, which warn on (intended) wrap-around, and a
        # diverging network overflows on purpose; on a GPU nothing warns
        if simulated():
            warnings.simplefilter("ignore", RuntimeWarning)
        for n0 in range(0, N, nmax):
            n1 = min(N, n0 + nmax)
            d_params = cuda.to_device(params[n0:n1])
            d_curves = cuda.to_device(curves[n0:n1])
            d_div = cuda.to_device(diverged[n0:n1])
            d_gn = cuda.to_device(gnorms[n0:n1])
            kern.train_kernel[n1 - n0, tpb](
                d["sizes"], d["w_off"], d["b_off"], d["roff"], a["act"], a["out"], opt, d_params, d["X"], d["T"],
                cuda.to_device(a["hyper"][n0:n1]), cuda.to_device(a["hyper64"][n0:n1]),
                cuda.to_device(a["seeds"][n0:n1]), a["steps"], bs, a["record_every"], d["c"], a["track"], chunk,
                d_curves, d_div, d_gn, H, D, A, MK, XB, TB, G, V, M2, R, CV, PK, PI)
            params[n0:n1] = d_params.copy_to_host()
            curves[n0:n1] = d_curves.copy_to_host()
            diverged[n0:n1] = d_div.copy_to_host()
            gnorms[n0:n1] = d_gn.copy_to_host()
    return params, curves, diverged, gnorms
