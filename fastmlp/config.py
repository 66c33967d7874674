"""Every setting fastmlp takes from its environment, and the project's numba settings, in one place.

Environment variables are overrides for people who cannot change the calling code; the library's own way to
choose an engine option is ``train_batch(..., engine_options={...})`` (``fastmlp.engine.ENGINE_OPTIONS``).

===========================  ========================================================================  ==========
variable                     what it does                                                              read
===========================  ========================================================================  ==========
``FASTMLP_NO_CACHE``         any non-empty value: compile kernels afresh, no on-disk cache             at import
``FASTMLP_SIMD_BYTES``       ``32`` or ``64``: the CPU products' vector width (tests compare both;     at import
                             results must not change); turns the cache off
``FASTMLP_CUDA_PATH``        ``auto|block|chunk|tiled``: the default CUDA path                         per call
``FASTMLP_CUDA_TILES``       ``TM,TN,TK,RM,RN``: the default tile shape of the tiled CUDA path         per call
``FASTMLP_CUDA_THREADS``     threads per block of the CUDA block and chunk paths                       per call
``FASTMLP_CPU_GHZ``          the CPU clock used for the peak FLOP/s that benchmarks report             per call
``FASTMLP_BENCH_NETWORKS``   shrink bench/'s workloads to this many networks (a quick look)            bench/
``FASTMLP_BENCH_STEPS``      ... and this many steps                                                   bench/
===========================  ========================================================================  ==========

numba's own variables (``NUMBA_NUM_THREADS``, ``NUMBA_CACHE_DIR``, ``NUMBA_ENABLE_CUDASIM``) work as numba
documents them.

Results must not depend on how or where a kernel was compiled: a freshly compiled kernel and the same kernel
loaded from the on-disk cache gave results that differed in the last bit while LLVM was allowed to reassociate
and contract everywhere (it rewrote ``0.5 + 0.5 t - y`` differently in the two contexts). So kernels are
compiled with exact IEEE semantics (no fast-math), which still vectorises every elementwise loop along samples
(the products use explicit fused multiply-adds: ``engine/cpu/products.py``); only the non-finite check, a sum
that is 0 or NaN in any order and needs ``reassoc`` to vectorise, is compiled with it.
``nnan``/``ninf`` are never set: divergence detection tests for NaN and inf.
"""
import contextlib
import os

# "numpy" error model: float division by zero gives inf/NaN instead of raising, which also lets LLVM vectorise
# loops that divide (Python's model puts a zero check, and a branch, in every iteration).
ERROR_MODEL = "numpy"
JIT = dict(fastmath=False, error_model=ERROR_MODEL)
# only for a loop whose result does not depend on the order of its sum (network._nonfinite_check)
JIT_REDUCE = dict(fastmath={"reassoc", "nsz"}, error_model=ERROR_MODEL)
# Compiled kernels are cached on disk next to the package (or in NUMBA_CACHE_DIR), so a second process starts warm.
CACHE = os.environ.get("FASTMLP_NO_CACHE", "") == ""


def env(name):
    """The value of the ``FASTMLP_*`` variable ``name`` now, or ``""`` (read at each call, so tests and users can
    set one for a while)."""
    return os.environ.get(name, "")


def blas_threads(n=1):
    """A context that limits the BLAS (OpenBLAS, MKL) to ``n`` threads, through threadpoolctl where it is
    installed (it comes with scikit-learn); without it, a context that changes nothing.

    An in-process grid's NumPy work between engine calls (evaluation, diagnostics) is small, and the BLAS's idle
    threads spin against the engine's own: bench/NOTES.md change 43.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=n, user_api="blas")


def _vector_bytes():
    """The widest SIMD vector of the CPU numba compiles for: 64 bytes with AVX-512, else 32."""
    from numba.core import config as nconfig
    if nconfig.CPU_FEATURES is not None:
        features = set(nconfig.CPU_FEATURES.split(","))
    elif nconfig.CPU_NAME in (None, "host"):
        from llvmlite import binding
        features = {"+" + k for k, v in binding.get_host_cpu_features().items() if v}
    else:  # a named CPU without a feature list (e.g. "generic", for a portable cache)
        features = set()
    return 64 if "+avx512f" in features else 32


# Width of the products' vectors (``simd.wide``). A forced width is not part of numba's cache key, so it also
# turns the cache off.
_forced = os.environ.get("FASTMLP_SIMD_BYTES", "")
if _forced not in ("", "32", "64"):
    raise ValueError(f"FASTMLP_SIMD_BYTES must be 32 or 64, not {_forced!r}")
VECTOR_BYTES = int(_forced) if _forced else _vector_bytes()
if _forced:
    CACHE = False
