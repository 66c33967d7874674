"""The GPU the CUDA engine runs on: whether there is one (or the simulator), what it is, and its peak FLOP/s.

Imports ``numba.cuda`` only inside functions, so that importing this module never needs a GPU.
"""
import importlib.util


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
    if importlib.util.find_spec("numba_cuda") is None:
        # numba's own, deprecated CUDA target finds the GPU but fails to compile the kernels, obscurely
        raise RuntimeError(f"a CUDA GPU is there but the numba-cuda package is not installed. {_HOW}")


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


# FP32 / FP64 lanes per multiprocessor (CUDA C Programming Guide, "arithmetic instructions" throughput table)
_LANES_PER_SM = {(6, 0): (64, 32), (6, 1): (128, 4), (7, 0): (64, 32), (7, 5): (64, 2), (8, 0): (64, 32),
                 (8, 6): (128, 2), (8, 7): (128, 2), (8, 9): (128, 2), (9, 0): (128, 64)}


def gpu_peak():
    """Peak non-tensor-core FLOP/s of the GPU (FMA = 2 FLOP), as ``machine_peak`` gives the CPU's; None if unknown.

    Multiprocessors x FP32 (FP64) lanes per multiprocessor x 2 x the boost clock the driver reports.
    """
    info = gpu_info()
    if isinstance(info, str) or info["simulator"]:
        return None
    try:
        from numba import cuda
        dev = cuda.get_current_device()
        lanes = _LANES_PER_SM.get(tuple(dev.compute_capability))
        sms, ghz = int(dev.MULTIPROCESSOR_COUNT), int(dev.CLOCK_RATE) / 1e6  # CLOCK_RATE is in kHz
    except Exception:  # pragma: no cover - depends on the driver
        return None
    if lanes is None:
        return None
    peak = {"float32": sms * lanes[0] * 2 * ghz, "float64": sms * lanes[1] * 2 * ghz}
    return dict(peak, description=f"{info['name']}, {sms} SMs x {ghz:.2f} GHz: peak {peak['float32']:.0f} GFLOP/s "
                                  f"float32, {peak['float64']:.0f} GFLOP/s float64 (no tensor cores)")
