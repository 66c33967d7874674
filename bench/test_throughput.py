"""Throughput of the Numba engine against the NumPy reference and the peers, on W1 and W2, and of the CUDA
engine's paths where there is a GPU (W1, W2 and the wide workload).

Run: ``python -m pytest bench/ --benchmark-columns=min,median,rounds`` (the table's per-call times divide by
``extra_info['networks']``; ``fastmlp bench`` prints nets/s and GFLOP/s directly).
"""
import pytest

from fastmlp.train import train_batch

from conftest import record

DTYPES = ("float32", "float64")
# the reference loops over networks: it times a subset (its per-network cost does not depend on the others)
SUBSET = {"w1": 8, "w2": 2}


def _train(w, backend, engine_options=None):
    return train_batch(w.network, w.X, w.y, w.params, training=w.training, seeds=w.seeds, backend=backend,
                       engine_options=engine_options)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["w1", "w2"])
def test_fastmlp_numba(benchmark, workloads, name, dtype):
    w = workloads(name, dtype)
    _train(workloads(name, dtype, 2), "numba")  # compile (or load the cache) outside the timing
    benchmark.pedantic(_train, args=(w, "numba"), rounds=3, iterations=1)
    record(benchmark, w, w.n_networks)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["w1", "w2"])
def test_numpy_reference(benchmark, workloads, name, dtype):
    w = workloads(name, dtype, SUBSET[name])
    benchmark.pedantic(_train, args=(w, "numpy"), rounds=1, iterations=1)
    record(benchmark, w, w.n_networks)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("peer,variant", [("numpy", "batched"), ("torch", "vmap"), ("jax", "vmap")])
@pytest.mark.parametrize("name", ["w1", "w2"])
def test_peer(benchmark, workloads, name, peer, variant, dtype):
    from fastmlp.peers import PEERS
    ok, why = PEERS[peer].available()
    if not ok:
        pytest.skip(why)
    w = workloads(name, dtype)
    PEERS[peer].train(workloads(name, dtype, 2), variant)  # JIT outside the timing
    benchmark.pedantic(PEERS[peer].train, args=(w, variant), rounds=1, iterations=1)
    record(benchmark, w, w.n_networks)


def _gpu():
    from fastmlp.engine import cuda as cuda_engine
    try:
        cuda_engine.check_available()
    except RuntimeError as exc:
        return str(exc)
    return "the CUDA simulator is on: it times nothing worth keeping" if cuda_engine.simulated() else None


@pytest.mark.parametrize("path", ["chunk", "block", "tiled"])
@pytest.mark.parametrize("name", ["w1", "w2", "wide"])
def test_fastmlp_cuda(benchmark, workloads, name, path):
    from fastmlp.engine.cuda import paths_for
    why = _gpu()
    if why:
        pytest.skip(why)
    w = workloads(name, "float32")
    if path not in paths_for(w.network.sizes):
        pytest.skip(f"the {path} path does not take {name}")
    options = {"path": path}
    _train(workloads(name, "float32", 2), "cuda", options)  # compile outside the timing
    benchmark.pedantic(_train, args=(w, "cuda", options), rounds=3, iterations=1)
    record(benchmark, w, w.n_networks, gpu=True)
