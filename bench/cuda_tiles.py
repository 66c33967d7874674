"""Time the CUDA engine's tiled path with several tile shapes on one workload, in one process (GPU only).

    python bench/cuda_tiles.py WORKLOAD NETWORKS STEPS TILES [TILES ...]
    python bench/cuda_tiles.py wide 64 20 64,64,16,4,4 64,64,8,8,8

``TILES`` is ``TM,TN,TK,RM,RN`` (the engine option ``tiles``). Prints one JSON line per shape: the first run's seconds
(with the kernels' compile), the best of two more, networks/s, GFLOP/s, % of the GPU's peak, and whether the
final parameters are the same bits as the first shape's (they must be: the tiles change the speed only).
"""
import json
import sys
import time

import numpy as np

from fastmlp.engine.cuda import gpu_peak
from fastmlp.train import train_batch
from fastmlp.workloads import make_workload


def main(workload, networks, steps, *shapes):
    w = make_workload(workload, "float32", n_networks=int(networks), steps=int(steps))
    peak = (gpu_peak() or {}).get("float32")
    first = None
    for shape in shapes:
        options = {"path": "tiled", "tiles": tuple(int(x) for x in shape.split(","))}
        times = []
        try:
            for _ in range(3):
                t0 = time.perf_counter()
                params = train_batch(w.network, w.X, w.y, w.params, training=w.training, seeds=w.seeds,
                                     backend="cuda", engine_options=options).params
                times.append(time.perf_counter() - t0)
        except Exception as exc:  # one shape failing (a launch out of resources, say) leaves the others
            print(json.dumps(dict(workload=workload, tiles=shape, error=f"{type(exc).__name__}: {exc}")), flush=True)
            continue
        first = params if first is None else first
        best = min(times[1:])
        gflops = w.flops_per_network() * w.n_networks / best / 1e9
        print(json.dumps(dict(workload=workload, networks=w.n_networks, steps=w.training.steps, tiles=shape,
                              first_s=times[0], best_s=best, nets_per_s=w.n_networks / best, gflops=gflops,
                              pct_peak=100 * gflops / peak if peak else None,
                              same_bits_as_first=bool(np.array_equal(params, first, equal_nan=True)))),
              flush=True)


if __name__ == "__main__":
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    main(*sys.argv[1:])
