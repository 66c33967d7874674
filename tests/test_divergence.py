"""A diverging network is a result to record: the batch finishes, the others are unaffected."""
import numpy as np
import pytest

from fastmlp import Init, Network, Training, init_batch, train_batch

# 200 steps of a 16 x 16 network take minutes in the CUDA simulator; test_cuda.py covers divergence there
from oracle import CPU_ENGINES as ENGINES


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_huge_scales_and_learning_rates_diverge_alone(engine, dtype):
    rs = np.random.default_rng(3)
    X = rs.normal(size=(50, 3))
    y = rs.normal(size=50)
    net = Network(3, (16, 16), 1, "relu", "identity")
    scales = [1.0, 1e3, 1.0, 30.0]
    lrs = np.array([0.01, 0.01, 50.0, 0.01])
    p0 = init_batch(net, [Init("he_normal", scale=s) for s in scales], [0, 1, 2, 3], dtype)
    tr = Training("sgd", steps=200, record_every=1)
    res = train_batch(net, X, y, p0, training=tr, lr=lrs, backend=engine)
    st = res.diverged_step
    assert st[0] == -1 and st[1] >= 0 and st[2] >= 0
    for i in np.nonzero(st >= 0)[0]:
        # the curve is finite before the step it diverged at, NaN from there on
        assert np.all(np.isfinite(res.curves[i, :st[i]])) and np.all(np.isnan(res.curves[i, st[i]:]))
        # parameters are frozen as they were before that step: finite for a divergence detected at the loss
        assert res.status[i] == "diverged"
    for i in np.nonzero(st < 0)[0]:
        alone = train_batch(net, X, y, p0[i:i + 1], training=tr, lr=lrs[i:i + 1], seeds=[i], backend=engine)
        assert np.array_equal(alone.params[0], res.params[i])
        assert np.array_equal(alone.curves[0], res.curves[i])


def test_engines_agree_on_the_divergence_step():
    rs = np.random.default_rng(4)
    X = rs.normal(size=(40, 3))
    y = (X[:, 0] > 0).astype(float)
    net = Network(3, (8,), 1, "relu", "sigmoid")
    p0 = init_batch(net, Init("he_normal", scale=10.0), [0, 1, 2])
    tr = Training("sgd", steps=100, record_every=7)
    lrs = np.array([1e3, 1e6, 1e9])
    a = train_batch(net, X, y, p0, training=tr, lr=lrs, backend="numba")
    b = train_batch(net, X, y, p0, training=tr, lr=lrs, backend="numpy")
    assert np.any(a.diverged_step >= 0)
    np.testing.assert_array_equal(a.diverged_step, b.diverged_step)
