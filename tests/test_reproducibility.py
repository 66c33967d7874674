"""The same seed gives bit-identical numbers whatever the thread count or the split into calls."""
import numba
import numpy as np
import pytest

from fastmlp import Init, Network, Training, init_batch, train_batch


def _batch(dtype, engine):
    """Six networks for the row engine (minibatches, dropout), or forty for the lanes engine (full batch:
    several groups of lanes, the last one partly empty)."""
    rs = np.random.default_rng(0)
    X = rs.normal(size=(70, 4))
    y = (X[:, 0] > X[:, 1]).astype(float)
    net = Network(4, (8, 8), 1, "tanh")
    n = 6 if engine == "rows" else 40
    inits = [Init("he_normal", scale=s) for s in np.linspace(0.5, 2, n)]
    seeds = np.arange(n) + 10
    p0 = init_batch(net, inits, seeds, dtype)
    if engine == "rows":
        tr = Training("adam", lr=0.01, steps=60, batch_size=16, dropout=0.2, record_every=5)
    else:
        tr = Training("adam", lr=0.01, steps=60, record_every=5)
    return net, X, y, p0, seeds, tr


ENGINES = pytest.mark.parametrize("engine", ["rows", "lanes"])


@ENGINES
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_thread_count_does_not_change_results(dtype, engine):
    net, X, y, p0, seeds, tr = _batch(dtype, engine)
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba was started with a single thread")
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = train_batch(net, X, y, p0, training=tr, seeds=seeds, track_grad_norms=True)
        numba.set_num_threads(2)
        two = train_batch(net, X, y, p0, training=tr, seeds=seeds, track_grad_norms=True)
    finally:
        numba.set_num_threads(old)
    assert np.array_equal(one.params, two.params)
    assert np.array_equal(one.curves, two.curves, equal_nan=True)
    assert np.array_equal(one.grad_norms, two.grad_norms, equal_nan=True)


@ENGINES
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_splitting_a_batch_into_calls_does_not_change_results(dtype, engine):
    net, X, y, p0, seeds, tr = _batch(dtype, engine)
    whole = train_batch(net, X, y, p0, training=tr, seeds=seeds)
    first = train_batch(net, X, y, p0[:2], training=tr, seeds=seeds[:2])
    rest = train_batch(net, X, y, p0[2:][::-1], training=tr, seeds=seeds[2:][::-1])
    assert np.array_equal(whole.params, np.concatenate([first.params, rest.params[::-1]]))
    assert np.array_equal(whole.curves, np.concatenate([first.curves, rest.curves[::-1]]))


def test_init_of_a_network_depends_on_its_seed_alone():
    net = Network(3, (5,), 1)
    a = init_batch(net, Init("xavier_uniform"), [4, 7, 9])
    b = init_batch(net, Init("xavier_uniform"), [9])
    assert np.array_equal(a[2], b[0])
    assert not np.array_equal(a[0], a[1])
