"""A kernel compiled in this process and the same kernel loaded from the on-disk cache give identical bits.

(With LLVM free to reassociate everywhere they did not: it rewrote ``0.5 + 0.5 t - y`` differently in the two
contexts, so the first run of a grid and its resumed run disagreed in the last bit.)
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = """
import sys, numpy as np
from fastmlp import Init, Network, Training, init_batch, train_batch, data
d = data.xor(n_samples=120)
out = []
for act, head in [("tanh", "sigmoid"), ("linear", "sigmoid"), ("relu", "identity")]:
    net = Network(2, (6, 5), 1, act, head)
    p0 = init_batch(net, [Init("he_normal", scale=s) for s in (0.5, 1.0, 2.0)], [0, 1, 2])
    r = train_batch(net, d.X, d.y, p0, training=Training("momentum", lr=0.05, steps=40, batch_size=32, dropout=0.1),
                    track_grad_norms=True)
    out += [r.params.ravel(), r.curves.ravel(), r.grad_norms.ravel()]
np.save(sys.argv[1], np.concatenate(out))
"""


def test_fresh_compile_equals_cached_kernel(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))
    env.pop("FASTMLP_NO_CACHE", None)
    runs = []
    for i in range(2):  # the first compiles and writes the cache, the second loads it
        f = tmp_path / f"run{i}.npy"
        subprocess.run([sys.executable, "-c", SCRIPT, str(f)], env=env, check=True, cwd=tmp_path)
        runs.append(np.load(f))
    assert any((tmp_path / "cache").rglob("*.nbc")), "the first run should have written the cache"
    assert np.array_equal(runs[0], runs[1], equal_nan=True)
