"""The project's numba settings, in one place.

``FASTMATH`` lets LLVM reassociate and contract (so reductions vectorise and products fuse) but keeps
``nnan``/``ninf`` off: divergence detection tests for NaN and inf, and must not be optimised away.
"""
import os

FASTMATH = {"nsz", "arcp", "contract", "reassoc"}
# Compiled kernels are cached on disk next to the package (or in NUMBA_CACHE_DIR), so a second process starts warm.
CACHE = os.environ.get("FASTMLP_NO_CACHE", "") == ""
