"""The lanes engine (``engine/lanes.py``: small full-batch networks, one per SIMD lane) equals the NumPy reference,
and which networks share its vectors changes nothing."""
import numpy as np
import pytest

from fastmlp import Init, Network, Training, init_batch, train_batch
from fastmlp.engine import Problem
from fastmlp.engine.cpu import lanes

from test_engines import _compare

# more networks than one group of lanes holds in either dtype, and not a multiple of the lane count
N = lanes.group.BYTES // 4 + 3  # a group's float32 lanes (32 with AVX-512), and three more


def _xy(rs, n=60, f=5):
    X = rs.normal(size=(n, f))
    return X, (X[:, 0] * X[:, 1] > 0).astype(float)


def _takes(net, tr, dropout, n_samples=60):
    p = Problem(sizes=net.sizes, activation=net.activation, output=net.output, optimizer=tr.optimizer,
                params=np.zeros((len(dropout), 1)), X=np.zeros((n_samples, net.n_inputs)), T=None, lr=None,
                momentum=None, weight_decay=None, dropout=np.asarray(dropout, float), seeds=None, steps=1,
                batch_size=tr.batch_size or 0)
    return lanes.takes(p)


def test_lanes_take_small_full_batch_networks_without_dropout():
    small, full, mini = Network(5, (6, 5), 1), Training(), Training(batch_size=16)
    assert list(_takes(small, full, [0.0, 0.2, 0.0])) == [True, False, True]
    assert not _takes(small, mini, [0.0]).any()
    W, D = lanes.MAX_WIDTH, lanes.MAX_DEEP_WIDTH
    for hidden, n_out, taken in [((W,), 1, True), ((W + 1,), 1, False), ((), W, True), ((4,), W + 1, False),
                                 ((D,) * 4, 10, True), ((D + 1, D), 1, False), ((D, D + 1), 1, False)]:
        assert _takes(Network(5, hidden, n_out), full, [0.0]).all() == taken, (hidden, n_out)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("act", ["tanh", "sigmoid", "relu", "leaky_relu", "linear"])
def test_activations_with_per_network_hyperparameters(dtype, act):
    rs = np.random.default_rng(12)
    X, y = _xy(rs)
    net = Network(5, (7, 6), 1, act, "sigmoid", leaky_slope=0.05)
    seeds = np.arange(N) + 3
    assert _takes(net, Training(), np.zeros(N)).all()
    tr = Training("nesterov", steps=30, record_every=3)
    _compare(net, X, y, tr, dtype, init=Init("he_normal"), seeds=seeds, lr=np.linspace(0.02, 0.2, N),
             momentum=np.linspace(0.0, 0.9, N), weight_decay=np.linspace(0.0, 0.05, N))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_softmax_and_adam_with_a_network_of_every_kind_in_one_call(dtype):
    """Networks with dropout go to the row engine, the others to the lanes, in one call; each equals the
    reference and equals itself trained alone."""
    rs = np.random.default_rng(13)
    X = rs.normal(size=(45, 4))
    y = rs.integers(0, 3, 45)
    net = Network(4, (9,), 3, "tanh", "softmax")
    dropout = np.where(np.arange(N) % 3 == 0, 0.3, 0.0)
    seeds = np.arange(N)
    tr = Training("adam", lr=0.02, steps=25, record_every=2)
    a, _ = _compare(net, X, y, tr, dtype, seeds=seeds, dropout=dropout)
    p0 = init_batch(net, Init("xavier_normal"), list(seeds), dtype)
    for i in (0, 1, N - 1):
        alone = train_batch(net, X, y, p0[i:i + 1], training=tr, seeds=seeds[i:i + 1], dropout=dropout[i:i + 1])
        assert np.array_equal(alone.params[0], a.params[i])
        assert np.array_equal(alone.curves[0], a.curves[i])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("hidden", [(5, 4, 3), (40,)])
def test_identity_output_and_momentum(dtype, hidden):
    rs = np.random.default_rng(14)
    X = rs.normal(size=(40, 3))
    y = np.stack([X[:, 0] - X[:, 1], X[:, 2] ** 2], axis=1)
    net = Network(3, hidden, 2, "tanh", "identity")
    assert _takes(net, Training(), [0.0], n_samples=40).all()
    _compare(net, X, y, Training("momentum", lr=0.05, steps=30), dtype, seeds=np.arange(N))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_network_gets_the_same_bits_whatever_shares_its_lanes(dtype):
    rs = np.random.default_rng(15)
    X, y = _xy(rs, n=37)
    net = Network(5, (4,), 1, "tanh", "identity")
    seeds = np.arange(N)
    p0 = init_batch(net, [Init("normal", std=s) for s in np.logspace(-2, 1, N)], list(seeds), dtype)
    lr = np.logspace(-2, 1, N)  # the largest learning rates diverge: a NaN stays in its own lane
    tr = Training("sgd", steps=200, record_every=7)
    whole = train_batch(net, X, y, p0, training=tr, lr=lr, seeds=seeds, track_grad_norms=True)
    assert 0 < np.sum(whole.diverged_step >= 0) < N
    order = rs.permutation(N)
    for part in (order[:5], order[5:]):
        some = train_batch(net, X, y, p0[part], training=tr, lr=lr[part], seeds=seeds[part], track_grad_norms=True)
        assert np.array_equal(some.params, whole.params[part], equal_nan=True)
        assert np.array_equal(some.curves, whole.curves[part], equal_nan=True)
        assert np.array_equal(some.grad_norms, whole.grad_norms[part], equal_nan=True)
        assert np.array_equal(some.diverged_step, whole.diverged_step[part])
    ref = train_batch(net, X, y, p0, training=tr, lr=lr, seeds=seeds, backend="numpy")
    # the same networks diverge (not at the same step: rounding grows fast on the way to a NaN, so a network
    # that one engine sees diverge in the last tenth of the steps may reach its NaN after the end in the other)
    late = tr.steps * 9 // 10
    for a, b in ((ref, whole), (whole, ref)):
        early = (a.diverged_step >= 0) & (a.diverged_step < late)
        assert early.any() and np.all(b.diverged_step[early] >= 0)
    assert np.array_equal(ref.diverged_step < 0, whole.diverged_step < 0) or (
        np.all(np.maximum(ref.diverged_step, whole.diverged_step)[(ref.diverged_step < 0) != (whole.diverged_step < 0)]
               >= late))
