"""The Numba engine equals the NumPy reference from the same initial weights, option by option."""
import numpy as np
import pytest

from fastmlp import Init, Network, Training

from oracle import assert_matches_reference, train_against_reference

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam")


def _problem(output, rs, n=48):
    X = rs.normal(size=(n, 5))
    if output == "softmax":
        return X, rs.integers(0, 3, n), 3
    if output == "identity":
        return X, rs.normal(size=(n, 2)), 2
    return X, (X[:, 0] * X[:, 1] > 0).astype(float), 1


def _compare(net, X, y, tr, dtype, init=Init("xavier_normal"), seeds=(1, 2, 3), **per_network):
    a, b = train_against_reference("numba", net, X, y, tr, dtype, init, seeds, **per_network)
    assert_matches_reference(a, b, dtype)
    return a, b


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("output", ["sigmoid", "softmax", "identity"])
def test_optimizers_and_outputs(dtype, optimizer, output):
    rs = np.random.default_rng(7)
    X, y, k = _problem(output, rs)
    net = Network(5, (6, 5), k, "tanh", output)
    lr = 0.01 if optimizer == "adam" else 0.1
    _compare(net, X, y, Training(optimizer, lr=lr, steps=25, record_every=4), dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("act", ["tanh", "sigmoid", "relu", "leaky_relu", "linear"])
def test_activations_with_minibatch_dropout_weight_decay(dtype, act):
    rs = np.random.default_rng(8)
    X, y, k = _problem("sigmoid", rs, n=50)
    net = Network(5, (7, 6), k, act, "sigmoid", leaky_slope=0.05)
    tr = Training("momentum", lr=0.05, steps=30, batch_size=16, dropout=0.25, weight_decay=0.01, record_every=3)
    _compare(net, X, y, tr, dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_everything_at_once_with_per_network_hyperparameters(dtype, optimizer):
    rs = np.random.default_rng(9)
    X, y, k = _problem("softmax", rs, n=45)
    net = Network(5, (8,), k, "relu", "softmax")
    tr = Training(optimizer, steps=20, batch_size=10, record_every=2)
    lrs = np.array([0.01, 0.02, 0.005]) if optimizer == "adam" else np.array([0.05, 0.1, 0.2])
    _compare(net, X, y, tr, dtype, seeds=(4, 5, 6), lr=lrs, momentum=[0.5, 0.9, 0.0],
             weight_decay=[0.0, 0.01, 0.1], dropout=[0.0, 0.1, 0.5])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_wide_layers_use_both_weight_gradient_kernels(dtype):
    """Layers of 40 and 13 units at minibatch 32 (and a short last batch of 26) take the weight-gradient kernel
    that runs along the inputs; the 13 -> 3 output layer the one along the samples (engine/products.py)."""
    from fastmlp.engine.cpu.products import along_inputs
    itemsize = np.dtype(dtype).itemsize
    assert along_inputs(40, 20, 32, itemsize) and along_inputs(13, 40, 32, itemsize)
    assert not along_inputs(3, 13, 32, itemsize)
    rs = np.random.default_rng(11)
    X = rs.normal(size=(90, 20))
    y = rs.integers(0, 3, 90)
    net = Network(20, (40, 13), 3, "tanh", "softmax")
    tr = Training("adam", lr=0.01, steps=12, batch_size=32, dropout=0.2, record_every=2)
    _compare(net, X, y, tr, dtype)


def test_single_layer_model():
    rs = np.random.default_rng(10)
    X, y, k = _problem("sigmoid", rs)
    _compare(Network(5, (), 1), X, y, Training("nesterov", lr=0.3, steps=40), "float64")


def test_minibatch_order_is_reshuffled_each_epoch():
    from fastmlp.rng import minibatch_indices
    idx = minibatch_indices(3, 10, 4, 6)
    assert [len(i) for i in idx] == [4, 4, 2, 4, 4, 2]
    e0, e1 = np.concatenate(idx[:3]), np.concatenate(idx[3:])
    assert sorted(e0) == list(range(10)) and sorted(e1) == list(range(10))
    assert not np.array_equal(e0, e1)
