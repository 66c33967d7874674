"""Where numba keeps fastmlp's compiled kernels, and whether a command is about to compile them.

numba caches a compiled kernel beside its source file (``__pycache__``), or under ``NUMBA_CACHE_DIR``, or in a
per-user directory when the package's directory cannot be written; ``FASTMLP_NO_CACHE=1`` turns the cache off.
The first call of a kernel for a dtype compiles it (tens of seconds) and writes it there; later processes
load it. Commands use :class:`CompileWatch` to say so before a first compile and how long it took after.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def cache_enabled():
    """Whether fastmlp's kernels are cached on disk (``FASTMLP_NO_CACHE`` unset)."""
    return os.environ.get("FASTMLP_NO_CACHE", "") == ""


def kernel_sources():
    """The source files whose ``@njit(cache=True)`` kernels numba caches: the engine's and the RNG's."""
    files = sorted((_PACKAGE / "engine").rglob("*.py"))
    return [f for f in files if f.name != "__init__.py"] + [_PACKAGE / "rng.py"]


def _cache_path(py_file):
    """numba's cache directory for functions of ``py_file`` (the locator numba itself would choose)."""
    try:
        from numba.core import caching

        def probe():       # a stand-in function: locators only read its first line number
            pass
        for cls in caching.CacheImpl._locator_classes:
            loc = cls.from_function(probe, str(py_file))
            if loc is not None:
                return Path(loc.get_cache_path())
    except Exception:      # numba's locator API is internal: fall back to its documented default
        pass
    base = os.environ.get("NUMBA_CACHE_DIR")
    return Path(base) if base else py_file.parent / "__pycache__"


def cache_dirs():
    """The directories fastmlp's compiled kernels go to, in order of first use."""
    return list(dict.fromkeys(_cache_path(f) for f in kernel_sources()))


def cached_kernels():
    """The compiled kernel files (numba's ``.nbc``) of fastmlp now on disk."""
    out = set()
    for f in kernel_sources():
        d = _cache_path(f)
        if d.is_dir():
            out.update(d.glob(f"{f.stem}.*.nbc"))
    return out


def summary():
    """``{"enabled", "dirs", "kernels", "bytes"}``: what ``fastmlp info`` shows about the cache."""
    files = cached_kernels()
    size = 0
    for f in files:
        try:
            size += f.stat().st_size
        except OSError:
            pass
    return {"enabled": cache_enabled(), "dirs": [str(d) for d in cache_dirs()], "kernels": len(files),
            "bytes": size}


def describe_dirs(dirs=None):
    """The cache directories in one short phrase (their common parent when there are several)."""
    dirs = [str(d) for d in (dirs if dirs is not None else cache_dirs())]
    if len(dirs) <= 1:
        return dirs[0] if dirs else "(nowhere)"
    common = os.path.commonpath(dirs)
    return f"{len(dirs)} __pycache__ directories under {common}" if common else ", ".join(dirs)


class CompileWatch:
    """Say when a command is about to compile kernels, and how long compiling took.

    Before the work: if no compiled kernel of fastmlp is on disk yet (a fresh install, or the cache off), the
    ``say`` callback gets "compiling kernels for DTYPE, once; cached in DIR". After it: if new kernels were
    written, ``say`` gets how long the work took, compile included. The numpy and cuda backends print nothing.

    Parameters
    ----------
    say : callable(str)
    dtypes : sequence of str
    backend : str
    """

    def __init__(self, say, dtypes=("float64",), backend="numba"):
        self.say, self.dtypes, self.active = say, list(dtypes), backend == "numba"
        self.before, self.t0, self.announced = set(), 0.0, False

    def __enter__(self):
        if not self.active:
            return self
        self.before = cached_kernels()
        self.t0 = time.perf_counter()
        if not cache_enabled():
            self.say(f"compiling kernels for {', '.join(self.dtypes)} (FASTMLP_NO_CACHE is set: not cached, "
                     f"so every run compiles them; tens of seconds)")
            self.announced = True
        elif not self.before:
            self.say(f"compiling kernels for {', '.join(self.dtypes)}, once (tens of seconds); cached in "
                     f"{describe_dirs()}")
            self.announced = True
        return self

    def __exit__(self, kind, value, tb):
        if not self.active or kind is not None:
            return False
        new = cached_kernels() - self.before
        if new or (self.announced and not cache_enabled()):
            seconds = time.perf_counter() - self.t0
            self.say(f"compiled {len(new)} kernel file{'s' * (len(new) != 1)} and ran in {seconds:.1f} s; "
                     f"later runs load them from the cache" if cache_enabled() else
                     f"compiled and ran in {seconds:.1f} s")
        return False
