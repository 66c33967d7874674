"""The project's numba settings, in one place.

``FASTMATH`` lets LLVM reassociate and contract (so reductions vectorise and products fuse) but keeps
``nnan``/``ninf`` off: divergence detection tests for NaN and inf, and must not be optimised away.
"""
import os

FASTMATH = {"nsz", "arcp", "contract", "reassoc"}
# Compiled kernels are cached on disk next to the package (or in NUMBA_CACHE_DIR), so a second process starts warm.
CACHE = os.environ.get("FASTMLP_NO_CACHE", "") == ""
# "numpy" error model: float division by zero gives inf/NaN instead of raising, which also lets LLVM vectorise
# loops that divide (Python's model puts a zero check, and a branch, in every iteration).
ERROR_MODEL = "numpy"
JIT = dict(fastmath=FASTMATH, error_model=ERROR_MODEL)
# without reassoc: for loops that must keep the source's order of operations exactly (see cpu.py)
JIT_EXACT = dict(fastmath=FASTMATH - {"reassoc"}, error_model=ERROR_MODEL)
