"""Every activation x output/loss combination: the engines' gradients against central finite differences."""
import numpy as np
import pytest

from fastmlp import Init, Network, Training, init_params, train_batch
from fastmlp.engine.reference import output_loss_and_delta, forward
from fastmlp.layout import Layout
from fastmlp.train import as_targets

from oracle import ENGINES

ACTS = ("tanh", "sigmoid", "relu", "leaky_relu", "linear")
OUTS = (("sigmoid", 1), ("sigmoid", 2), ("softmax", 3), ("identity", 2))


def _loss(net, p, X, T):
    _, z = forward(Layout(net.sizes).unpack(p), X, net.activation, net.leaky_slope)
    return float(output_loss_and_delta(z, T, net.output)[0])


def _targets(net, n, rs):
    if net.output == "softmax":
        y = rs.integers(0, net.n_outputs, n)
    elif net.output == "sigmoid":
        y = rs.integers(0, 2, (n, net.n_outputs)).astype(float)
    else:
        y = rs.normal(size=(n, net.n_outputs))
    return y, as_targets(net, y, n, np.float64)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("output,k", OUTS)
@pytest.mark.parametrize("act", ACTS)
def test_gradient_matches_finite_differences(engine, act, output, k):
    rs = np.random.default_rng(1)
    X = rs.normal(size=(40, 3))
    net = Network(3, (5, 4), k, act, output, leaky_slope=0.1)
    y, T = _targets(net, 40, rs)
    # normal biases keep ReLU pre-activations away from the kink, where differences are not derivatives
    p0 = init_params(net, Init("normal", std=0.7, bias="normal", bias_std=0.5), seed=3)
    # one SGD step with lr = 1 from p0 leaves p0 - grad
    res = train_batch(net, X, y, p0[None], training=Training("sgd", lr=1.0, steps=1), backend=engine)
    grad = p0 - res.params[0]
    h = 1e-6
    fd = np.empty_like(p0)
    for i in range(p0.size):
        e = np.zeros_like(p0)
        e[i] = h
        fd[i] = (_loss(net, p0 + e, X, T) - _loss(net, p0 - e, X, T)) / (2 * h)
    assert np.max(np.abs(grad - fd)) <= 1e-6 * max(1.0, np.max(np.abs(fd)))
    # the recorded loss is the loss at p0
    assert res.curves[0, 0] == pytest.approx(_loss(net, p0, X, T), rel=1e-12)
