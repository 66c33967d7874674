"""The classic facts of DESIGN.md, measured on the Titanic data with the tutorial's 7 -> 4 tanh -> 1 network."""
import numpy as np
import pytest

from fastmlp import Init, Network, Training, diagnose, init_batch, train, train_batch
from fastmlp.layout import Layout

from oracle import CPU_ENGINES as ENGINES  # 1000-step runs on 891 samples: too long for the CUDA simulator

NET = Network(7, (4,), 1, "tanh", "sigmoid")
TR = Training("sgd", lr=0.01, steps=1000)


def prior_log_loss(y):
    p = y.mean()
    return -(p * np.log(p) + (1 - p) * np.log(1 - p))


@pytest.mark.parametrize("engine", ENGINES)
def test_zero_init_only_the_output_bias_learns(titanic, engine):
    res = train(NET, titanic.X, titanic.y, init=Init("zeros"), training=TR, backend=engine)
    (W1, b1), (W2, b2) = res.layers(0)
    assert not W1.any() and not W2.any() and not b1.any()
    assert b2[0] != 0
    curve = res.curves[0]
    assert np.all(np.diff(curve) <= 0) and curve[-1] < curve[0]
    # the cost falls towards the log-loss of the class prior, and no further
    prior = prior_log_loss(titanic.y)
    assert prior <= curve[-1] < prior + 1e-3
    # with enough steps it reaches it
    long = train(NET, titanic.X, titanic.y, init=Init("zeros"), training=TR.with_(lr=1.0, steps=2000), backend=engine)
    assert long.curves[0, -1] == pytest.approx(prior, abs=1e-9)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer,hidden", [("sgd", (6, 5, 4)), ("momentum", (6, 5, 4)), ("nesterov", (6, 5, 4)),
                                              ("adam", (6, 5, 4)), ("sgd", (13, 3, 9)), ("adam", (1, 10, 2))])
def test_constant_init_keeps_hidden_units_bit_identical(titanic, dtype, optimizer, hidden):
    """Widths cover odd and even layers, fan-ins below, at and above the kernels' block widths (4 and 8)."""
    _check_units_stay_copies(titanic, dtype, Network(7, hidden, 1, "tanh", "sigmoid"),
                             Training(optimizer, lr=0.01, steps=300, batch_size=64))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer,hidden", [("sgd", (6, 5, 4)), ("adam", (40,))])
def test_constant_init_keeps_hidden_units_bit_identical_in_the_lanes_engine(titanic, dtype, optimizer, hidden):
    """Full batch, no dropout: these networks train one per SIMD lane (engine/lanes.py)."""
    _check_units_stay_copies(titanic, dtype, Network(7, hidden, 1, "tanh", "sigmoid"),
                             Training(optimizer, lr=0.01, steps=300))


def _check_units_stay_copies(titanic, dtype, net, tr):
    res = train_batch(net, titanic.X, titanic.y, init_batch(net, Init("constant", value=0.3), [0, 1], dtype),
                      training=tr)
    assert np.all(res.status == "ok")
    for i in range(2):
        layers = res.layers(i)
        moved = res.params[i] != res.initial_params[i]
        assert moved.any()
        for (W, b) in layers[:-1]:
            rows = np.concatenate([W, b[:, None]], axis=1)
            # every unit is bit-for-bit the first one
            assert np.array_equal(rows, np.broadcast_to(rows[0], rows.shape))
        # and the first layer's columns (one per input) do differ: it is the rows that stay equal
        assert len(np.unique(layers[0][0][0])) > 1
        assert diagnose(net, res.params[i], titanic.X)["distinct_units"] == [1] * len(net.hidden)


def test_an_n_unit_layer_of_copies_computes_a_one_unit_function(titanic):
    """After training from a constant start, the 4-unit network is exactly a 1-unit network in disguise."""
    from fastmlp.evaluate import forward_batch
    four = train(NET, titanic.X, titanic.y, init=Init("constant", value=0.2), training=TR)
    (W1, b1), (W2, b2) = four.layers(0)
    one_net = Network(7, (1,), 1)
    p = Layout(one_net.sizes).pack([(W1[:1], b1[:1]), (W2.sum(axis=1, keepdims=True), b2)])
    _, _, z4 = next(forward_batch(NET, four.params[0], titanic.X))
    _, _, z1 = next(forward_batch(one_net, p, titanic.X))
    np.testing.assert_allclose(z4, z1, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("engine", ENGINES)
def test_logistic_regression_is_convex(titanic, engine):
    net = Network(7, (), 1)
    tr = Training("sgd", lr=1.0, steps=3000)
    zero = train(net, titanic.X, titanic.y, init=Init("zeros"), training=tr, backend=engine)
    rand = train(net, titanic.X, titanic.y, init=Init("normal", std=1.0), seed=5, training=tr, backend=engine)
    assert abs(zero.curves[0, 0] - rand.curves[0, 0]) > 0.1
    assert zero.curves[0, -1] == pytest.approx(rand.curves[0, -1], abs=1e-6)


@pytest.mark.parametrize("engine", ENGINES)
def test_small_random_init_breaks_symmetry_and_learns_more(titanic, engine):
    zero = train(NET, titanic.X, titanic.y, init=Init("zeros"), training=TR, backend=engine)
    small = train(NET, titanic.X, titanic.y, init=Init("normal", std=0.01), seed=1,
                  training=TR.with_(steps=3000, lr=0.1), backend=engine)
    d = diagnose(NET, small.params[0], titanic.X)
    assert d["distinct_units"] == [4]
    assert small.curves[0, -1] < zero.curves[0, -1] - 0.1


def test_relu_with_zero_init_does_not_learn(titanic):
    net = Network(7, (4,), 1, "relu")
    res = train(net, titanic.X, titanic.y, init=Init("zeros"), training=TR)
    (W1, b1), (W2, _) = res.layers(0)
    assert not W1.any() and not b1.any() and not W2.any()
    assert res.curves[0, -1] >= prior_log_loss(titanic.y)


def test_dropout_breaks_a_constant_start(titanic):
    tr = TR.with_(dropout=0.3, steps=500, lr=0.1)
    res = train(NET, titanic.X, titanic.y, init=Init("constant", value=0.3), training=tr)
    assert diagnose(NET, res.params[0], titanic.X)["distinct_units"] == [4]
    same = train(NET, titanic.X, titanic.y, init=Init("constant", value=0.3), training=tr.with_(dropout=0.0))
    assert diagnose(NET, same.params[0], titanic.X)["distinct_units"] == [1]
