"""The project's numba settings, in one place.

Results must not depend on how or where a kernel was compiled: a freshly compiled kernel and the same kernel
loaded from the on-disk cache gave results that differed in the last bit while LLVM was allowed to reassociate
and contract everywhere (it rewrote ``0.5 + 0.5 t - y`` differently in the two contexts). So kernels are
compiled with exact IEEE semantics (no fast-math), which still vectorises every elementwise loop along samples
(the products use explicit fused multiply-adds: ``products.py``); only the non-finite check, a sum that is 0 or
NaN in any order and needs ``reassoc`` to vectorise, is compiled with it.
``nnan``/``ninf`` are never set: divergence detection tests for NaN and inf.
"""
import os

# "numpy" error model: float division by zero gives inf/NaN instead of raising, which also lets LLVM vectorise
# loops that divide (Python's model puts a zero check, and a branch, in every iteration).
ERROR_MODEL = "numpy"
JIT = dict(fastmath=False, error_model=ERROR_MODEL)
# only for a loop whose result does not depend on the order of its sum (cpu._nonfinite_check)
JIT_REDUCE = dict(fastmath={"reassoc", "nsz"}, error_model=ERROR_MODEL)
# Compiled kernels are cached on disk next to the package (or in NUMBA_CACHE_DIR), so a second process starts warm.
CACHE = os.environ.get("FASTMLP_NO_CACHE", "") == ""


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


# Width of the products' vectors (``simd.wide``). FASTMLP_SIMD_BYTES=32|64 forces it (tests compare the two;
# results must not change). A forced width is not part of numba's cache key, so it also turns the cache off.
_forced = os.environ.get("FASTMLP_SIMD_BYTES", "")
if _forced not in ("", "32", "64"):
    raise ValueError(f"FASTMLP_SIMD_BYTES must be 32 or 64, not {_forced!r}")
VECTOR_BYTES = int(_forced) if _forced else _vector_bytes()
if _forced:
    CACHE = False
