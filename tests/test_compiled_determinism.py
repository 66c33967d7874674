"""Where and how a kernel was compiled does not change its results, and each is compiled once for each use.

* A kernel compiled in this process and the same kernel loaded from the on-disk cache give identical bits.
  (With LLVM free to reassociate everywhere they did not: it rewrote ``0.5 + 0.5 t - y`` differently in the two
  contexts, so the first run of a grid and its resumed run disagreed in the last bit.)
* The products' vectors are as wide as the host's (64 bytes with AVX-512, else 32: ``engine/simd.py``); a
  machine of the other kind must get the same bits. ``FASTMLP_SIMD_BYTES`` forces the width (LLVM splits a
  64-byte vector into two on a machine without AVX-512), so both run on any machine.
* numba compiles a function again, with all it calls, for each new set of argument types, and it types a
  constant argument as a literal of its own (``Literal[int](0)``) and a parallel loop's index as unsigned in
  one pass and signed in another. Kept from it, that cost up to half of the first compile (bench/NOTES.md,
  changes 36-37).
"""
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
# Small layers (the gradient along the samples, fixed-width vectors), 40- and 33-unit layers at a minibatch of 50
# (the gradient along the inputs and partial tiles of wide vectors), and a full batch without dropout (the lanes
# engine, whose vectors are the host's width).
SCRIPT = """
import sys, numpy as np
from fastmlp import Init, Network, Training, init_batch, train_batch, data
d = data.xor(n_samples=120)
out = []
for act, head, hidden, B, drop in [("tanh", "sigmoid", (6, 5), 32, 0.1), ("linear", "sigmoid", (6, 5), 32, 0.1),
                                   ("relu", "identity", (6, 5), 32, 0.1), ("tanh", "sigmoid", (40, 33), 50, 0.1),
                                   ("tanh", "sigmoid", (6, 5), None, 0.0)]:
    net = Network(2, hidden, 1, act, head)
    p0 = init_batch(net, [Init("he_normal", scale=s) for s in (0.5, 1.0, 2.0)], [0, 1, 2])
    tr = Training("momentum", lr=0.05, steps=40, batch_size=B, dropout=drop)
    r = train_batch(net, d.X, d.y, p0, training=tr, track_grad_norms=True)
    out += [r.params.ravel(), r.curves.ravel(), r.grad_norms.ravel()]
from fastmlp.engine.cpu import lanes, products
from fastmlp.config import VECTOR_BYTES
np.save(sys.argv[1], np.concatenate(out))
kernels = dict(product=products.product, tanh_delta=products.tanh_delta, product6=products._product6,
               weight_grad=products.weight_grad, train_group=lanes._train_group)
print(" ".join(f"{name}={len(kernel.signatures)}" for name, kernel in kernels.items()))
print(VECTOR_BYTES)
"""


def _run(tmp_path, name, **env_vars):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=str(ROOT), **env_vars)
    env.pop("FASTMLP_NO_CACHE", None)
    if "FASTMLP_SIMD_BYTES" not in env_vars:
        env.pop("FASTMLP_SIMD_BYTES", None)
    f = tmp_path / f"{name}.npy"
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(f)], env=env, check=True, cwd=tmp_path,
                          capture_output=True, text=True)
    *_, compiled, width = done.stdout.splitlines()
    return np.load(f), int(width), {k: int(v) for k, v in (item.split("=") for item in compiled.split())}


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """A run that compiles every kernel and writes the cache: (its results, the cache folder, its vector width,
    how many versions of some kernels it compiled)."""
    tmp_path = tmp_path_factory.mktemp("compiled")
    result, width, compiled = _run(tmp_path, "first")
    return result, tmp_path, width, compiled


def test_fresh_compile_equals_cached_kernel(first_run):
    result, tmp_path, _, _ = first_run
    assert any((tmp_path / "cache").rglob("*.nbc")), "the first run should have written the cache"
    cached, _, _ = _run(tmp_path, "cached")
    assert np.array_equal(result, cached, equal_nan=True)


def test_each_kernel_is_compiled_once_for_each_use(first_run):
    # One dtype: the product for the forward pass and for the delta, the delta with the tanh derivative, the
    # tile kernels for those three, one gradient kernel, one group of lanes.
    compiled = first_run[3]
    assert compiled == dict(product=2, tanh_delta=1, product6=3, weight_grad=1, train_group=1)


def test_other_vector_width_gives_the_same_bits(first_run):
    result, tmp_path, width, _ = first_run
    other = {32: 64, 64: 32}[width]
    forced, forced_width, _ = _run(tmp_path, f"width{other}", FASTMLP_SIMD_BYTES=str(other))
    assert forced_width == other
    assert np.array_equal(result, forced, equal_nan=True)


def _host_has_avx2():
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    from llvmlite import binding
    return bool(binding.get_host_cpu_features().get("avx2"))


@pytest.mark.skipif(not _host_has_avx2(), reason="compiling for another x86 CPU needs an x86 host with AVX2")
def test_code_compiled_for_another_cpu_gives_the_same_bits(first_run):
    # Haswell: AVX2, 32-byte registers, another instruction schedule. Every sum has one order whatever the
    # target (the loss too: a loop LLVM may reassociate would be vectorised at the target's width).
    result, tmp_path, _, _ = first_run
    other, width, _ = _run(tmp_path, "haswell", NUMBA_CPU_NAME="haswell", NUMBA_CPU_FEATURES="")
    assert width == 32
    assert np.array_equal(result, other, equal_nan=True)
