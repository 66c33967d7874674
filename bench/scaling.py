"""W1 throughput with one thread and with all of them, alternating in one process.

On a shared machine two processes run at different moments, so their ratio says as much about the neighbours as
about the code; here both thread counts take turns in the same process and each keeps its best round.

    python bench/scaling.py --dtype float32 --networks 64,512,4096,8192
"""
import argparse
import time

import numba

from fastmlp.train import train_batch
from fastmlp.workloads import make_workload


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    ap.add_argument("--networks", default="64,512,4096", help="comma-separated network counts")
    ap.add_argument("--steps", type=int, default=100, help="steps per timed run (W1 has 1000)")
    ap.add_argument("--rounds", type=int, default=4, help="timed runs per thread count; the best is kept")
    args = ap.parse_args()
    most = numba.config.NUMBA_NUM_THREADS
    print(f"W1 {args.dtype}, {args.steps} steps per run, best of {args.rounds}; networks/s scaled to 1000 steps")
    for n in (int(v) for v in args.networks.split(",")):
        w = make_workload("w1", args.dtype, n_networks=n, steps=args.steps)
        train_batch(w.network, w.X, w.y, w.params[:2], training=w.training.with_(steps=2))  # compile or load
        best = {1: float("inf"), most: float("inf")}
        for r in range(args.rounds):
            for threads in ((1, most) if r % 2 == 0 else (most, 1)):
                numba.set_num_threads(threads)
                t0 = time.perf_counter()
                train_batch(w.network, w.X, w.y, w.params, training=w.training, seeds=w.seeds)
                best[threads] = min(best[threads], time.perf_counter() - t0)
        rate = {t: n / best[t] * args.steps / 1000 for t in best}
        print(f"{n:6d} networks: 1 thread {rate[1]:7.1f}, {most} threads {rate[most]:7.1f} networks/s: "
              f"{rate[most] / rate[1]:.2f}x")


if __name__ == "__main__":
    main()
