"""``fastmlp bench``: the engine against the NumPy reference and peers, on one workload.

Every implementation first trains the workload once (that call's extra time over the timed runs is reported as
compile time), then ``repeat`` timed runs keep the best. Loops over networks (the reference, and the peers'
``loop`` variants) time a subset of the networks: their per-network cost does not depend on the others.
Before the table, each implementation's final losses are compared with fastmlp's from the same initial weights.

By default each implementation is timed in a process of its own (``python -m fastmlp.benchmark``, one process
tree): in one process, fastmlp ran W2 float64 at 12.6-12.9 nets/s once ``torch`` was imported and 11.0-12.6
once ``jax`` was, against 13.6-13.7 with neither (their thread pools beside numba's; bench/NOTES.md).
"""
from __future__ import annotations

import json
import platform
import subprocess
import sys
import time

import numpy as np

from .config import env
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
    ghz = float(env("FASTMLP_CPU_GHZ") or ghz or 2.5)
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


def _implementations(peers, backend="numba", cuda_paths=("auto",)):
    """(name, kind, trainer, unavailable, source) for every implementation asked for; kind 'loop' times a
    subset; ``source`` is the entry of ``peers`` it comes from (None for fastmlp's engines). With the cuda
    backend, one row per path in ``cuda_paths``: ``fastmlp (cuda)`` for ``auto``, ``fastmlp (cuda tiled)``..."""
    from .peers import PEERS
    from .train import train_batch

    def fastmlp_trainer(backend, cuda_path=None):
        options = {"path": cuda_path} if cuda_path else None

        def run(w):
            return train_batch(w.network, w.X, w.y, w.params, training=w.training, seeds=w.seeds,
                               backend=backend, engine_options=options).params
        return run

    impls = [("fastmlp (numba)", "batch", fastmlp_trainer("numba"), None, None)]
    if backend == "cuda":
        impls[:0] = [("fastmlp (cuda)" if path == "auto" else f"fastmlp (cuda {path})", "batch",
                      fastmlp_trainer("cuda", None if path == "auto" else path), None, None)
                     for path in cuda_paths]  # auto: the backend's own choice, or $FASTMLP_CUDA_PATH
    for p in peers:
        if p == "numpy":
            impls.append(("numpy reference (loop)", "loop", fastmlp_trainer("numpy"), None, p))
            continue
        p_name, _, only = p.partition(":")  # "torch:bmm": that variant alone
        module = PEERS["numpy" if p_name == "numpy-batched" else p_name]
        variants = (only,) if only else ("batched",) if p_name == "numpy-batched" else module.VARIANTS
        if p_name == "torch" and backend == "cuda":  # on the GPU beside the GPU engine (the CPU: --backend numba)
            ok, why = module.available("cuda")
            for v in variants:
                impls.append((f"torch {v} (cuda)", "loop" if v == "loop" else "batch",
                              (lambda m, var: lambda w: m.train(w, var, device="cuda"))(module, v),
                              None if ok else why, p))
            continue
        ok, why = module.available()
        for v in variants:
            name = f"{p_name if p_name != 'numpy-batched' else 'numpy'} {v}"
            kind = "loop" if v == "loop" else "batch"
            impls.append((name, kind, (lambda m, var: lambda w: m.train(w, var))(module, v), None if ok else why,
                          p))
    return impls


def check_peer(p):
    """Raise ``ValueError`` naming ``p`` unless it is a peer (``PEER_NAMES``) or one of a peer's variants
    (``torch:bmm``)."""
    from .peers import PEERS
    p_name, colon, only = p.partition(":")
    if p_name not in PEER_NAMES or (colon and (p_name not in PEERS or only not in PEERS[p_name].VARIANTS)):
        variants = ", ".join(f"{n}:{v}" for n in ("torch", "jax") for v in PEERS[n].VARIANTS)
        raise ValueError(f"unknown peer {p!r}; choose from {', '.join(PEER_NAMES)}, a variant ({variants}) "
                         f"or none")


def _time_here(job):
    """Times one implementation in this process: ``(final losses, best seconds, compile seconds)``. ``job``
    names it (``name``, and the ``peers`` and ``backend`` that list it) and its workload (``workload``,
    ``dtype``, ``n_networks``, ``steps``) and the timed runs (``repeat``)."""
    from .peers import final_losses
    impls = {name: trainer for name, _, trainer, _, _ in _implementations(job["peers"], job["backend"],
                                                                          job.get("cuda_paths", ("auto",)))}
    w = make_workload(job["workload"], job["dtype"], n_networks=job["n_networks"], steps=job["steps"])
    params, secs, compile_s = _time(lambda: impls[job["name"]](w), job["repeat"])
    return final_losses(w, params), secs, compile_s


def _time_in_process(job):
    """``_time_here`` in a fresh Python process (the same interpreter and environment)."""
    proc = subprocess.run([sys.executable, "-m", "fastmlp.benchmark", json.dumps(job)], capture_output=True,
                          text=True)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"{job['name']} failed in its own process (exit status {proc.returncode}): {tail}")
    out = json.loads(lines[-1])
    return np.array(out["losses"], dtype=float), out["seconds"], out["compile_s"]


def run_benchmark(workload, dtype, peers=("numpy",), n_networks=None, steps=None, reference_networks=None,
                  repeat=1, log=None, backend="numba", separate=True, rounds=1, cuda_paths=("auto",)):
    """Benchmark rows for one workload and dtype.

    With ``separate`` (the default) every implementation is timed in a fresh process of its own, so that none
    runs beside another's imported runtime and thread pools; ``separate=False`` times them all in this one.
    With ``rounds`` > 1 the whole list is timed that many times in turn and each implementation keeps its best
    time: on a shared machine whose speed drifts, every implementation then samples the same conditions (its
    ``compile_s`` is the first round's).

    Returns
    -------
    list of dict
        ``impl``, ``workload``, ``dtype``, ``networks`` (timed), ``seconds``, ``nets_per_s``, ``gflops``,
        ``pct_peak``, ``compile_s``, ``fastmlp_speedup`` (fastmlp's nets/s over this one's) and
        ``loss_max_rel_diff`` (final losses against fastmlp's, same networks), all from each implementation's
        best round; ``round_seconds`` (each round's time), ``nets_per_s_median`` and ``fastmlp_speedup_median``
        (the same over the rounds' median); ``skipped`` with a reason
        for a peer that is not installed or whose timing process failed. With ``backend="cuda"`` the first
        row is the GPU engine and the numba CPU engine follows it, and the torch peer runs on the GPU
        (rows ``torch ... (cuda)``, instead of its CPU rows); GPU rows' ``pct_peak`` is against the GPU's peak
        (``cuda_engine.gpu_peak``; None where it is unknown). ``cuda_paths`` lists the CUDA paths timed
        (``auto``, ``block``, ``chunk``, ``tiled``; ``"all"``: those that can train the workload), one row
        each, the first the reference; their rows' ``cuda_path`` says which path ran.
    """
    from .peers import final_losses
    peak = machine_peak()
    gpu = None
    if backend == "cuda":
        from .engine.cuda import gpu_peak
        gpu = gpu_peak()
    full = make_workload(workload, dtype, n_networks=n_networks, steps=steps)
    subset_n = min(full.n_networks, reference_networks or _SUBSET[workload])
    subset = make_workload(workload, dtype, n_networks=subset_n, steps=steps)
    if cuda_paths == "all":
        from .engine.cuda import paths_for
        cuda_paths = paths_for(full.network.sizes)
    impls = _implementations(peers, backend, cuda_paths)
    timed = {}  # name -> [losses, best seconds, first round's compile seconds], or the reason it was skipped
    for rnd in range(rounds):
        for name, kind, trainer, unavailable, source in impls:
            w = subset if kind == "loop" else full
            if unavailable or isinstance(timed.get(name), str):
                continue
            if log:
                of = f" (round {rnd + 1} of {rounds})" if rounds > 1 else ""
                log(f"{workload} {dtype}: timing {name} on {w.n_networks} networks{of} ...")
            if separate:
                job = dict(name=name, peers=[source] if source else [], backend=backend, workload=workload,
                           dtype=dtype, n_networks=w.n_networks, steps=steps, repeat=repeat,
                           cuda_paths=list(cuda_paths))
                try:
                    losses, secs, compile_s = _time_in_process(job)
                except RuntimeError as exc:
                    if source is None:  # fastmlp's own row: nothing to compare the others with
                        raise
                    timed[name] = str(exc)
                    continue
            else:
                params, secs, compile_s = _time(lambda: trainer(w), repeat)
                losses = final_losses(w, params)
            if name in timed:
                timed[name][1] = min(timed[name][1], secs)
                timed[name][3].append(secs)
            else:
                timed[name] = [losses, secs, compile_s, [secs]]

    rows, ref_losses = [], {}
    for name, kind, trainer, unavailable, source in impls:
        w = subset if kind == "loop" else full
        row = dict(impl=name, workload=workload, dtype=dtype)
        if unavailable or isinstance(timed[name], str):
            rows.append(dict(row, skipped=unavailable or timed[name]))
            continue
        losses, secs, compile_s, per_round = timed[name]
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
        on_gpu = "(cuda" in name
        pct = (100 * gflops / gpu[dtype] if gpu else None) if on_gpu else 100 * gflops / peak[dtype]
        rows.append(dict(row, networks=w.n_networks, seconds=secs, nets_per_s=nets_per_s, gflops=gflops,
                         pct_peak=pct, compile_s=compile_s, loss_max_rel_diff=diff, rounds=rounds,
                         round_seconds=per_round, nets_per_s_median=w.n_networks / float(np.median(per_round))))
        if name.startswith("fastmlp (cuda"):  # the path that ran, auto's choice included
            from .engine.cuda import choose_path
            rows[-1]["cuda_path"] = (name[len("fastmlp (cuda "):-1] if name != "fastmlp (cuda)" else
                                     env("FASTMLP_CUDA_PATH") or choose_path(w.network))
    base, base_median = rows[0]["nets_per_s"], rows[0]["nets_per_s_median"]
    for r in rows:
        r["fastmlp_speedup"] = base / r["nets_per_s"] if "nets_per_s" in r else None
        r["fastmlp_speedup_median"] = base_median / r["nets_per_s_median"] if "nets_per_s" in r else None
    return rows


if __name__ == "__main__":  # one implementation, timed in this process (``_time_in_process``)
    _losses, _secs, _compile_s = _time_here(json.loads(sys.argv[1]))
    print(json.dumps(dict(losses=[float(v) for v in _losses], seconds=_secs, compile_s=_compile_s)))
