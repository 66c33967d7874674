"""Grids on a local Dask cluster against the in-process engine, in one run (issue 24).

For two grids, a W1-sized one (``fastmlp.workloads``: 891 x 7 data, 7 -> 4 tanh -> 1 sigmoid, full batch,
1000 steps, float32, scales x seeds) and a deeper one (W2's shape: 1797 x 64 data, 64 -> 8 x 64 tanh -> 10
softmax, batch 128, 200 steps), it times ``fastmlp.run.run_grid``:

- in process, with 1 and with 2 engine threads;
- on a ``LocalCluster`` of 1 and of 2 single-thread worker processes (one engine thread per chunk),

every configuration on a fresh database, after a warm-up that compiles (or loads) the kernels everywhere.
It prints networks/s, the engine calls (chunks), the overhead per chunk of one worker against one in-process
thread, and the speed-up of 2 workers over 1. Then the first task on a fresh worker: with an empty
``NUMBA_CACHE_DIR`` (compiles) and with the cache that compile left (loads), against a warm worker.

Usage::

    python bench/dask_throughput.py                 # about 7 minutes on 2 cores
    python bench/dask_throughput.py --scale 2 --rounds 1
    python bench/dask_throughput.py --json out.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numba  # noqa: E402

from fastmlp import __version__  # noqa: E402
from fastmlp.grid import GridSpec  # noqa: E402
from fastmlp.run import plan_grid, run_grid  # noqa: E402


def grids(scale):
    w1_seeds = max(2, int(24 * scale))
    deep_seeds = max(4, int(24 * scale))
    return {
        # W1's network, data shape and training; 64 scales x 24 seeds (W1 itself has 8 seeds: 512 networks)
        "w1": dict(dataset="teacher", n_samples=891, data_options={"n_features": 7}, hidden=["4"],
                   scale="log:1e-2:10:64", seeds=f"0:{w1_seeds}", steps=1000, lr=0.1, dtype="float32",
                   record_every=10, chunk_seconds=2),
        # W2's network, data shape and training
        "deep": dict(dataset="digits_like", n_samples=1797, hidden=["64x8"], batch_size=128, steps=200, lr=0.05,
                     seeds=f"0:{deep_seeds}", dtype="float32", record_every=10, chunk_seconds=2),
    }


def warm(settings):
    """The same shapes, a handful of networks: compiles or loads every kernel the grid uses."""
    s = dict(settings, scale="1", seeds="0:2", chunk_seconds=0)
    return s


def time_grid(settings, client=None):
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        out = run_grid(settings, Path(d) / "b.db", client=client)
        return time.perf_counter() - t0, out


def cluster(n, env=None):
    import distributed
    lc = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=":0", silence_logs=40, env=env or {})
    return lc, distributed.Client(lc)


def first_task(settings, cache_dir):
    """Seconds of the first and second chunk on a fresh single-worker cluster with this NUMBA_CACHE_DIR."""
    from fastmlp.cluster import train_remote
    from fastmlp.run import memory_budget
    plan = plan_grid(GridSpec.from_settings(dict(settings, scale="1", seeds="0:4")))
    runs = list(plan.runs)
    keys = [plan.key(r) for r in runs]
    # in the environment the worker inherits: Nanny(env=...) applies it only after a spawned worker has
    # re-imported this script's module, and with it numba, which reads NUMBA_CACHE_DIR once, at import
    before = os.environ.get("NUMBA_CACHE_DIR")
    os.environ["NUMBA_CACHE_DIR"] = str(cache_dir)
    try:
        lc, client = cluster(1)
    finally:
        if before is None:
            del os.environ["NUMBA_CACHE_DIR"]
        else:
            os.environ["NUMBA_CACHE_DIR"] = before
    try:
        shared = client.scatter(plan, broadcast=True)
        out = []
        for _ in range(2):
            t0 = time.perf_counter()
            _, seconds = client.submit(train_remote, shared, runs, keys, None, memory_budget(plan.spec), 1,
                                       __version__, pure=False).result()
            out.append((time.perf_counter() - t0, seconds))
        return out
    finally:
        client.close()
        lc.close()


def loadavg():
    try:
        return os.getloadavg()
    except OSError:
        return (float("nan"),) * 3


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="grid size factor")
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--skip-first-task", action="store_true")
    ap.add_argument("--first-task-only", action="store_true")
    ap.add_argument("--rounds", type=int, default=2, help="rounds over the configurations (best is shown)")
    args = ap.parse_args()
    import distributed
    print(f"fastmlp {__version__}, numba {numba.__version__}, distributed {distributed.__version__}, "
          f"{os.cpu_count()} cores; load average before: {loadavg()[0]:.2f}", flush=True)
    results = {"load_before": loadavg(), "grids": {}}
    gs = grids(args.scale)
    if not args.skip_first_task:
        settings = gs["w1"]
        with tempfile.TemporaryDirectory() as cache:
            cold = first_task(settings, cache)
            n_files = sum(len(f) for _, _, f in os.walk(cache))
            warm_cache = first_task(settings, cache)
        print(f"\nfirst chunk on a fresh worker (4 networks of the w1 grid; wall seconds from submit to result, "
              f"worker's seconds; the compile wrote {n_files} cache files):")
        print(f"  empty NUMBA_CACHE_DIR (compiles): first {cold[0][0]:.1f} s ({cold[0][1]:.1f} s on the worker), "
              f"second {cold[1][0]:.2f} s")
        print(f"  cache filled by that run (loads): first {warm_cache[0][0]:.1f} s ({warm_cache[0][1]:.1f} s on "
              f"the worker), second {warm_cache[1][0]:.2f} s")
        results["first_task"] = {"compile": cold, "cache": warm_cache, "cache_files": n_files}
    if args.first_task_only:
        return
    max_threads = numba.config.NUMBA_NUM_THREADS
    clusters = {w: cluster(w) for w in (1, 2)}
    try:
        configs = [(f"in-process, {t} thread{'s' * (t > 1)}", t, None) for t in (1, min(2, max_threads))]
        configs += [(f"dask, {w} worker{'s' * (w > 1)}", None, clusters[w][1]) for w in (1, 2)]
        for name, settings in gs.items():
            n = len(plan_grid(GridSpec.from_settings(settings)).runs)
            for _, threads, client in configs:           # compile or load every kernel everywhere first
                numba.set_num_threads(threads or max_threads)
                time_grid(warm(settings), client)
            rows = {label: [] for label, _, _ in configs}
            loads = []
            for _ in range(args.rounds):                 # rounds interleave the configurations: a shared
                for label, threads, client in configs:   # machine's load drifts
                    numba.set_num_threads(threads or max_threads)
                    t, out = time_grid(settings, client)
                    slots = sum(client.nthreads().values()) if client is not None else 1
                    rows[label].append((t, out.engine_calls, out.chunk_seconds / (t * slots),
                                        out.chunk_seconds / out.engine_calls))
                    loads.append(loadavg()[0])
            numba.set_num_threads(max_threads)
            best = {k: min(v) for k, v in rows.items()}
            print(f"\n{name}: {n} networks, chunks sized to about 2 s (--chunk-seconds 2); best of {args.rounds} "
                  f"rounds; load average during: {min(loads):.1f}-{max(loads):.1f}")
            print(f"  {'configuration':<24}{'seconds':>9}{'networks/s':>12}{'chunks':>8}{'s/chunk':>9}{'busy':>6}"
                  f"{'all rounds (s)':>20}")
            for label, (t, calls, busy, per) in best.items():
                every = ", ".join(f"{x[0]:.1f}" for x in rows[label])
                print(f"  {label:<24}{t:>9.2f}{n / t:>12.1f}{calls:>8}{per:>9.2f}{busy:>6.2f}{every:>20}")
            print("  (s/chunk: a chunk's own time where it ran; busy: chunk time / (wall x worker threads), "
                  "for in-process runs / wall)")
            t_in1, *_ = best["in-process, 1 thread"]
            t_d1, c_d1, *_ = best["dask, 1 worker"]
            t_d2, *_ = best["dask, 2 workers"]
            overhead = (t_d1 - t_in1) / max(c_d1, 1)
            print(f"  overhead per chunk (1 worker against 1 in-process thread): {overhead * 1e3:.0f} ms; "
                  f"2 workers / 1 worker: {t_d1 / t_d2:.2f}x", flush=True)
            results["grids"][name] = {"networks": n, "rounds": rows, "loads": loads,
                                      "overhead_per_chunk_s": overhead, "speedup_2_over_1": t_d1 / t_d2}
    finally:
        for lc, client in clusters.values():
            client.close()
            lc.close()
    results["load_after"] = loadavg()
    print(f"\nload average after: {loadavg()[0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
