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
    """Whether fastmlp's kernels are cached on disk (``FASTMLP_NO_CACHE`` unset and no forced SIMD width: see
    :mod:`fastmlp.config`)."""
    try:
        from . import config
        return bool(config.CACHE)
    except ImportError:         # a layout without the config module: the variable alone decides
        return os.environ.get("FASTMLP_NO_CACHE", "") == ""


def kernel_sources():
    """The source files whose ``@njit(cache=True)`` kernels numba caches: the engine's and the RNG's."""
    files = sorted((_PACKAGE / "engine").rglob("*.py"))
    return [f for f in files if f.name != "__init__.py"] + [_PACKAGE / "rng.py"]


def _locator(py_file):
    """numba's cache locator for functions of ``py_file`` (the one numba itself would choose), or None."""
    try:
        from numba.core import caching

        def probe():       # a stand-in function: locators only read its first line number
            pass
        for cls in caching.CacheImpl._locator_classes:
            loc = cls.from_function(probe, str(py_file))
            if loc is not None:
                return loc
    except Exception:      # numba's locator API is internal: callers fall back to its documented default
        pass
    return None


def _cache_path(py_file):
    """numba's cache directory for functions of ``py_file``."""
    loc = _locator(py_file)
    if loc is not None:
        return Path(loc.get_cache_path())
    base = os.environ.get("NUMBA_CACHE_DIR")
    return Path(base) if base else py_file.parent / "__pycache__"


def _source_stamp(py_file):
    """The stamp numba keys a source file's cache on (a hash of its content in recent numba), or None."""
    loc = _locator(py_file)
    try:
        return loc.get_source_stamp() if loc is not None else None
    except Exception:
        return None


def _index_is_current(index, stamp):
    """Whether a numba cache index was written by this numba for a source with this stamp."""
    import pickle
    import numba
    with open(index, "rb") as fh:
        version = pickle.load(fh)
        data = fh.read()
    if version != numba.__version__:
        return False
    if isinstance(stamp, bytes) and len(stamp) >= 16:
        # a content hash, pickled verbatim at the front of (stamp, overloads): no need to unpickle the
        # overloads (numba types, slow to rebuild) to compare it
        return stamp in data[:len(stamp) + 16]
    return pickle.loads(data)[0] == stamp


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


def stale_sources():
    """Kernel source files changed since their kernels were cached (an upgrade, an edit) or cached by another
    numba: numba compiles those kernels again at their next call. Judged as numba judges it, by the source
    stamp recorded in each cache index."""
    out = []
    for f in kernel_sources():
        d = _cache_path(f)
        if not d.is_dir():
            continue
        indexes = list(d.glob(f"{f.stem}.*.nbi"))
        if not indexes:
            continue
        current = _source_stamp(f)
        if current is None:
            continue
        try:
            if not all(_index_is_current(i, current) for i in indexes):
                out.append(f)
        except Exception:        # an index numba cannot read either: it will be rewritten
            out.append(f)
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


def kernel_stamps():
    """``{file: modification time}`` of the compiled kernel files: a kernel compiled anew (first use, or its
    source changed since) writes a new file or rewrites an old one."""
    out = {}
    for f in cached_kernels():
        try:
            out[f] = f.stat().st_mtime_ns
        except OSError:
            pass
    return out


class CompileWatch:
    """Say when a command compiles kernels, and how long it took.

    Before the work: with no compiled kernel of fastmlp on disk (a fresh install, or the cache off), or kernels
    cached from sources changed since (an upgrade), the ``say`` callback gets "compiling kernels for DTYPE, once;
    cached in DIR" at once. Otherwise a watcher thread looks
    at the cache every ``poll`` seconds while the work runs, and says the same as soon as kernel files are being
    written (a first use of other kernels, or sources changed since they were cached). After it: if kernels were
    compiled, ``say`` gets how long the work took, compile included. The numpy and cuda backends say nothing.

    Parameters
    ----------
    say : callable(str)
    dtypes : sequence of str
    backend : str
    poll : float
    """

    def __init__(self, say, dtypes=("float64",), backend="numba", poll=1.0):
        self.say, self.dtypes, self.active, self.poll = say, list(dtypes), backend == "numba", poll
        self.before, self.t0, self.announced = {}, 0.0, False
        self._stop, self._thread = None, None

    def _compiling(self):
        return f"compiling kernels for {', '.join(self.dtypes)}, once (tens of seconds); cached in {describe_dirs()}"

    def _changed(self):
        now = kernel_stamps()
        return [f for f, t in now.items() if self.before.get(f) != t]

    def _watch(self):
        while not self._stop.wait(self.poll):
            if self._changed():
                self.announced = True
                self.say(self._compiling())
                return

    def __enter__(self):
        if not self.active:
            return self
        self.before = kernel_stamps()
        self.t0 = time.perf_counter()
        if not cache_enabled():
            self.say(f"compiling kernels for {', '.join(self.dtypes)} (FASTMLP_NO_CACHE is set: not cached, "
                     f"so every run compiles them; tens of seconds)")
            self.announced = True
        elif not self.before or stale_sources():
            self.say(self._compiling())
            self.announced = True
        else:
            import threading
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._watch, name="fastmlp-compile-watch", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, kind, value, tb):
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
        if not self.active or kind is not None:
            return False
        new = self._changed()
        if new or (self.announced and not cache_enabled()):
            seconds = time.perf_counter() - self.t0
            self.say(f"compiled {len(new)} kernel file{'s' * (len(new) != 1)} and ran in {seconds:.1f} s; "
                     f"later runs load them from the cache" if cache_enabled() else
                     f"compiled and ran in {seconds:.1f} s")
        return False
