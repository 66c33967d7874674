"""pytest-benchmark suites: ``python -m pytest bench/`` (not part of the test command; see README)."""
import pytest

from fastmlp.config import env
from fastmlp.workloads import make_workload

# FASTMLP_BENCH_NETWORKS / FASTMLP_BENCH_STEPS shrink the workloads for a quick look (fastmlp/config.py)
_N = env("FASTMLP_BENCH_NETWORKS")
_STEPS = env("FASTMLP_BENCH_STEPS")


@pytest.fixture(scope="session")
def workloads():
    cache = {}

    def get(name, dtype, n_networks=None):
        key = (name, dtype, n_networks)
        if key not in cache:
            cache[key] = make_workload(name, dtype, n_networks=n_networks or (int(_N) if _N else None),
                                       steps=int(_STEPS) if _STEPS else None)
        return cache[key]
    return get


def record(benchmark, workload, n_networks, gpu=False):
    """Attach nets/s and GFLOP/s (matrix-product model, see fastmlp.workloads) to the benchmark's JSON, and the
    % of the CPU's peak (or the GPU's, ``gpu=True``; None where it is unknown)."""
    from fastmlp.benchmark import machine_peak
    from fastmlp.engine.cuda import gpu_peak
    secs = benchmark.stats.stats.min
    nets = n_networks / secs
    gflops = workload.flops_per_network() * nets / 1e9
    dtype = str(workload.params.dtype)
    peak = gpu_peak() if gpu else machine_peak()
    benchmark.extra_info.update(nets_per_s=nets, gflops=gflops, pct_peak=100 * gflops / peak[dtype] if peak else None,
                                networks=n_networks)
