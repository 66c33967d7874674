"""The project's numba settings, in one place.

Results must not depend on how or where a kernel was compiled: a freshly compiled kernel and the same kernel
loaded from the on-disk cache gave results that differed in the last bit while LLVM was allowed to reassociate
and contract everywhere (it rewrote ``0.5 + 0.5 t - y`` differently in the two contexts). So kernels are
compiled with exact IEEE semantics (no fast-math), which still vectorises every elementwise loop along samples
(the products use explicit fused multiply-adds: ``products.py``); only two sums over a row's samples (the loss,
a non-finite check), which need it to vectorise, are compiled with ``reassoc``.
``nnan``/``ninf`` are never set: divergence detection tests for NaN and inf.
"""
import os

# "numpy" error model: float division by zero gives inf/NaN instead of raising, which also lets LLVM vectorise
# loops that divide (Python's model puts a zero check, and a branch, in every iteration).
ERROR_MODEL = "numpy"
JIT = dict(fastmath=False, error_model=ERROR_MODEL)
# only for loops whose sole floating-point work is a sum (cpu._row_sum, cpu._nonfinite_check)
JIT_REDUCE = dict(fastmath={"reassoc", "nsz"}, error_model=ERROR_MODEL)
# Compiled kernels are cached on disk next to the package (or in NUMBA_CACHE_DIR), so a second process starts warm.
CACHE = os.environ.get("FASTMLP_NO_CACHE", "") == ""
