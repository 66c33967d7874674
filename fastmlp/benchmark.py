"""``fastmlp bench``: the engine against the NumPy reference and peers, on one workload, in one process.

Every implementation first trains the workload once (that call's extra time over the timed runs is reported as
compile time), then ``repeat`` timed runs keep the best. Loops over networks (the reference, and the peers'
``loop`` variants) time a subset of the networks: their per-network cost does not depend on the others.
Before the table, each implementation's final losses are compared with fastmlp's from the same initial weights.
"""
from __future__ import annotations

import os
import platform
import time

import numpy as np

from .workloads import make_workload

PEER_NAMES = ("numpy", "numpy-batched", "torch", "jax")
# networks the loops time by default, per workload
_SUBSET = {"w1": 16, "w2": 4, "wide": 1}


def machine_peak(threads=None):
    """Peak FLOP/s of this CPU from its clock, SIMD width and thread count (FMA = 2 FLOP).

    Per core and cycle: 32 float32 / 16 float64 FLOP with AVX2+FMA (two 256-bit FMA pipes), twice that with
    AVX-512, 8 / 4 otherwise. The clock is the one /proc/cpuinfo reports (``FASTMLP_CPU_GHZ`` overrides it).
    """
    import numba
    threads = threads or numba.get_num_threads()
    flags, ghz, model = "", None, platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, val = line.partition(":")
                key = key.strip()
                if key == "flags" and not flags:
                    flags = val
                elif key == "cpu MHz" and ghz is None:
                    ghz = float(val) / 1000
                elif key == "model name":
                    model = val.strip()
    except OSError:
        pass
    ghz = float(os.environ.get("FASTMLP_CPU_GHZ", ghz or 2.5))
    fl = flags.split()
    per_cycle = (64, 32) if "avx512f" in fl else (32, 16) if ("avx2" in fl and "fma" in fl) else (8, 4)
    simd = "AVX-512" if per_cycle[0] == 64 else "AVX2+FMA" if per_cycle[0] == 32 else "SSE"
    peak = {"float32": threads * per_cycle[0] * ghz, "float64": threads * per_cycle[1] * ghz}
    return {"float32": peak["float32"], "float64": peak["float64"], "threads": threads, "ghz": ghz,
            "description": f"{model}, {threads} threads x {ghz:.2f} GHz, {simd}: peak "
                           f"{peak['float32']:.0f} GFLOP/s float32, {peak['float64']:.0f} GFLOP/s float64"}


def _time(fn, repeat):
    t0 = time.perf_counter()
    out = fn()
    first = time.perf_counter() - t0
    best = first if repeat == 0 else float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return out, best, max(0.0, first - best)


def _implementations(peers, backend="numba"):
    """(name, kind, trainer) for every implementation asked for; kind 'loop' times a subset."""
    from .peers import PEERS
    from .train import train_batch

    def fastmlp_trainer(backend):
        def run(w):
            return train_batch(w.network, w.X, w.y, w.params, training=w.training, seeds=w.seeds,
                               backend=backend).params
        return run

    impls = [("fastmlp (numba)", "batch", fastmlp_trainer("numba"), None)]
    if backend == "cuda":
        impls.insert(0, ("fastmlp (cuda)", "batch", fastmlp_trainer("cuda"), None))
    for p in peers:
        if p == "numpy":
            impls.append(("numpy reference (loop)", "loop", fastmlp_trainer("numpy"), None))
            continue
        module = PEERS["numpy" if p == "numpy-batched" else p]
        ok, why = module.available()
        variants = ("batched",) if p == "numpy-batched" else module.VARIANTS
        for v in variants:
            name = f"{p if p != 'numpy-batched' else 'numpy'} {v}"
            kind = "loop" if v == "loop" else "batch"
            impls.append((name, kind, (lambda m, var: lambda w: m.train(w, var))(module, v), None if ok else why))
        if p == "torch" and backend == "cuda":  # and the same variants on the GPU
            ok, why = module.available("cuda")
            for v in module.VARIANTS:
                impls.append((f"torch {v} (cuda)", "loop" if v == "loop" else "batch",
                              (lambda m, var: lambda w: m.train(w, var, device="cuda"))(module, v),
                              None if ok else why))
    return impls


def run_benchmark(workload, dtype, peers=("numpy",), n_networks=None, steps=None, reference_networks=None,
                  repeat=1, log=None, backend="numba"):
    """Benchmark rows for one workload and dtype.

    Returns
    -------
    list of dict
        ``impl``, ``workload``, ``dtype``, ``networks`` (timed), ``seconds``, ``nets_per_s``, ``gflops``,
        ``pct_peak``, ``compile_s``, ``fastmlp_speedup`` (fastmlp's nets/s over this one's) and
        ``loss_max_rel_diff`` (final losses against fastmlp's, same networks); ``skipped`` with a reason
        for a peer that is not installed. With ``backend="cuda"`` the first row is the GPU engine and the numba
        CPU engine follows it, and the torch peer also runs on the GPU (rows ``torch ... (cuda)``); GPU rows'
        ``pct_peak`` is against the GPU's peak (``cuda_backend.gpu_peak``; None where it is unknown).
    """
    from .peers import final_losses
    peak = machine_peak()
    gpu = None
    if backend == "cuda":
        from .engine.cuda_backend import gpu_peak
        gpu = gpu_peak()
    full = make_workload(workload, dtype, n_networks=n_networks, steps=steps)
    subset_n = min(full.n_networks, reference_networks or _SUBSET[workload])
    subset = make_workload(workload, dtype, n_networks=subset_n, steps=steps)
    rows, ref_losses = [], {}
    for name, kind, trainer, unavailable in _implementations(peers, backend):
        w = subset if kind == "loop" else full
        row = dict(impl=name, workload=workload, dtype=dtype)
        if unavailable:
            rows.append(dict(row, skipped=unavailable))
            continue
        if log:
            log(f"{workload} {dtype}: timing {name} on {w.n_networks} networks ...")
        params, secs, compile_s = _time(lambda: trainer(w), repeat)
        losses = final_losses(w, params)
        key = w.n_networks
        if name.startswith("fastmlp") and full.n_networks not in ref_losses:  # the first engine row is the reference
            ref_losses[full.n_networks] = losses
        if key not in ref_losses:  # fastmlp's losses on the subset, for comparison
            from .train import train_batch
            ref_losses[key] = final_losses(w, train_batch(w.network, w.X, w.y, w.params, training=w.training,
                                                          seeds=w.seeds).params)
        diff = float(np.max(np.abs(losses - ref_losses[key]) / np.maximum(np.abs(ref_losses[key]), 1e-30)))
        nets_per_s = w.n_networks / secs
        gflops = w.flops_per_network() * nets_per_s / 1e9
        on_gpu = name.endswith("(cuda)")
        pct = (100 * gflops / gpu[dtype] if gpu else None) if on_gpu else 100 * gflops / peak[dtype]
        rows.append(dict(row, networks=w.n_networks, seconds=secs, nets_per_s=nets_per_s, gflops=gflops,
                         pct_peak=pct, compile_s=compile_s, loss_max_rel_diff=diff))
    base = rows[0]["nets_per_s"]
    for r in rows:
        r["fastmlp_speedup"] = base / r["nets_per_s"] if "nets_per_s" in r else None
    return rows
