"""The peer implementations (fastmlp.peers) train the benchmark workloads to fastmlp's reference result.

Small versions of W1 and W2; every available peer and variant against the NumPy reference backend, float64 to
1e-9 and float32 to 1e-3 (relative to the parameters' scale). The NumPy peer always runs; the torch and JAX
peers skip when their framework is not installed.
"""
import functools
import subprocess
import sys

import numpy as np
import pytest

from fastmlp.peers import PEERS, final_losses
from fastmlp.train import train_batch
from fastmlp.workloads import make_workload

SMALL = {"w1": dict(n_networks=8, steps=50), "w2": dict(n_networks=4, steps=20)}
TOL = {"float64": 1e-9, "float32": 1e-3}
FRAMEWORK = {"numpy": None, "torch": "torch", "jax": "jax"}

# torch.compile takes ~10-30 s per graph on a small CPU: test it once per workload, covering both dtypes
COMPILE_CASES = {("w1", "float64"), ("w2", "float32")}


def _cases():
    for peer in ("numpy", "torch", "jax"):
        for variant in PEERS[peer].VARIANTS:
            for wl in ("w1", "w2"):
                for dtype in ("float64", "float32"):
                    if variant == "compile" and (wl, dtype) not in COMPILE_CASES:
                        continue  # one dtype per workload (the comment above COMPILE_CASES)
                    yield pytest.param(peer, variant, wl, dtype, id=f"{peer}-{variant}-{wl}-{dtype}")


@functools.lru_cache(maxsize=None)
def _workload(name, dtype):
    return make_workload(name, dtype, **SMALL[name])


@functools.lru_cache(maxsize=None)
def _reference(name, dtype):
    w = _workload(name, dtype)
    res = train_batch(w.network, w.X, w.y, w.params, training=w.training, seeds=w.seeds, backend="numpy")
    assert np.all(res.diverged_step < 0)
    return res.params


def _need(peer):
    if FRAMEWORK[peer]:
        pytest.importorskip(FRAMEWORK[peer], reason=f"{FRAMEWORK[peer]} is not installed (pip install {peer})")
    ok, why = PEERS[peer].available()
    if not ok:
        pytest.skip(why)


@pytest.mark.parametrize("peer,variant,wl,dtype", list(_cases()))
def test_peer_matches_reference(peer, variant, wl, dtype):
    _need(peer)
    w = _workload(wl, dtype)
    p0 = w.params.copy()
    got = PEERS[peer].train(w, variant)
    ref = _reference(wl, dtype)
    assert np.array_equal(w.params, p0), "the peer modified the workload's initial parameters"
    assert got.shape == ref.shape and got.dtype == np.dtype(dtype)
    scale = np.max(np.abs(ref))
    assert np.max(np.abs(ref - w.params)) > 20 * TOL[dtype] * scale    # training moved them well beyond the tolerance
    np.testing.assert_allclose(got, ref, rtol=TOL[dtype], atol=TOL[dtype] * scale)


def test_small_workloads_use_short_batches():
    # W2's small version crosses an epoch boundary, so the peers' handling of the short last batch is tested
    w = _workload("w2", "float64")
    assert len(set(w.batch_sizes().tolist())) == 2


def test_final_losses_match_fastmlp_and_decrease():
    w = _workload("w1", "float64")
    before = final_losses(w, w.params)
    after = final_losses(w, _reference("w1", "float64"))
    assert before.shape == after.shape == (w.n_networks,)
    assert np.all(np.isfinite(after)) and np.all(after < before)
    one = final_losses(w, w.params[0])
    assert one.shape == (1,) and one[0] == before[0]


@pytest.mark.parametrize("peer", ["numpy", "torch", "jax"])
def test_peer_api(peer):
    mod = PEERS[peer]
    ok, why = mod.available()
    assert isinstance(ok, bool) and isinstance(why, str) and why
    assert isinstance(mod.VARIANTS, tuple) and mod.VARIANTS
    if ok:
        with pytest.raises(ValueError, match="unknown"):
            mod.train(_workload("w1", "float64"), "no-such-variant")


def test_unsupported_training_is_refused():
    w = _workload("w1", "float64")
    w2 = type(w)(**{**w.__dict__, "training": w.training.with_(optimizer="adam")})
    with pytest.raises(NotImplementedError, match="SGD"):
        PEERS["numpy"].train(w2, "batched")


def test_import_does_not_import_frameworks():
    code = ("import sys, fastmlp.peers as p; assert sorted(p.PEERS) == ['jax', 'numpy', 'torch']; "
            "assert 'torch' not in sys.modules and 'jax' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("variant", ["loop", "vmap", "bmm"])
def test_torch_on_a_gpu_matches_reference(variant):
    torch = pytest.importorskip("torch", reason="torch is not installed (pip install torch)")
    if not torch.cuda.is_available():
        pytest.skip("torch has no GPU here: the peer's device='cuda' path runs where one is")
    w = _workload("w1", "float64")
    got = PEERS["torch"].train(w, variant, device="cuda")
    ref = _reference("w1", "float64")
    np.testing.assert_allclose(got, ref, rtol=TOL["float64"], atol=TOL["float64"] * np.max(np.abs(ref)))


def test_torch_without_a_gpu_says_so():
    torch = pytest.importorskip("torch", reason="torch is not installed (pip install torch)")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    ok, why = PEERS["torch"].available("cuda")
    assert not ok and "GPU" in why
    with pytest.raises(RuntimeError, match="GPU"):
        PEERS["torch"].train(_workload("w1", "float64"), "bmm", device="cuda")
