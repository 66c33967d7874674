"""Bad input gets a clear ValueError that names the problem, never a traceback from inside numba."""
import numpy as np
import pytest

from fastmlp import Init, Network, Training, init_batch, train, train_batch
from fastmlp.spec import parse_hidden

NET = Network(3, (4,), 1)
X = np.random.default_rng(0).normal(size=(20, 3))
Y = (X[:, 0] > 0).astype(float)


@pytest.mark.parametrize("kwargs,msg", [
    (dict(n_inputs=0), "n_inputs must be a positive integer, got 0"),
    (dict(n_inputs=3, hidden=(4, -2)), "hidden layer width must be a positive integer, got -2"),
    (dict(n_inputs=3, activation="swish"), "unknown activation 'swish'"),
    (dict(n_inputs=3, output="softmax", n_outputs=1), "softmax output needs n_outputs >= 2"),
])
def test_bad_network(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        Network(**kwargs)


@pytest.mark.parametrize("kwargs,msg", [
    (dict(lr=0), "learning rate must be > 0"), (dict(lr=-0.1), "learning rate must be > 0"),
    (dict(optimizer="rmsprop"), "unknown optimizer 'rmsprop'"), (dict(steps=0), "steps must be a positive"),
    (dict(dropout=1.0), r"dropout must be in \[0, 1\), got 1.0"), (dict(batch_size=0), "batch_size must be a positive"),
    (dict(momentum=1.5), r"momentum must be in \[0, 1\), got 1.5"),
])
def test_bad_training(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        Training(**kwargs)


def test_bad_data():
    p0 = init_batch(NET, Init(), [0])
    Xn = X.copy()
    Xn[3, 1] = np.nan
    with pytest.raises(ValueError, match="X contains NaN"):
        train_batch(NET, Xn, Y, p0)
    with pytest.raises(ValueError, match="X has 2 features but the network has n_inputs=3"):
        train_batch(NET, X[:, :2], Y, p0)
    with pytest.raises(ValueError, match="X has 20 samples but y has 19"):
        train_batch(NET, X, Y[:-1], p0)
    with pytest.raises(ValueError, match="X must be 2-D"):
        train_batch(NET, X[:, 0], Y, p0)
    with pytest.raises(ValueError, match=r"sigmoid output needs 0/1 targets, got 0\.5"):
        train_batch(NET, X, np.full(20, 0.5), p0)
    with pytest.raises(ValueError, match=r"params must have shape \(N, 21\)"):
        train_batch(NET, X, Y, np.zeros((2, 20)))
    with pytest.raises(ValueError, match="class labels must be integers in \\[0, 3\\), got 3"):
        net3 = Network(3, (4,), 3, output="softmax")
        train_batch(net3, X, np.arange(20) % 4, init_batch(net3, Init(), [0]))


def test_bad_per_network_values():
    p0 = init_batch(NET, Init(), [0, 1])
    with pytest.raises(ValueError, match="learning rate must be > 0, got -1.0"):
        train_batch(NET, X, Y, p0, lr=[0.1, -1.0])
    with pytest.raises(ValueError, match=r"one value per network \(2\)"):
        train_batch(NET, X, Y, p0, lr=[0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="dropout must be in \\[0, 1\\), got 1.0"):
        train_batch(NET, X, Y, p0, dropout=1.0)
    with pytest.raises(ValueError, match="seeds must be 2 non-negative integers"):
        train_batch(NET, X, Y, p0, seeds=[-1, 2])
    with pytest.raises(ValueError, match="unknown backend 'tpu'"):
        train_batch(NET, X, Y, p0, backend="tpu")
    with pytest.raises(ValueError, match="dtype"):
        train(NET, X, Y, dtype="float16")


@pytest.mark.parametrize("text,widths", [("16", (16,)), ("32x4", (32,) * 4), ("64-32", (64, 32)),
                                        ("32x2-16", (32, 32, 16)), ("0", ())])
def test_parse_hidden(text, widths):
    assert parse_hidden(text) == widths


@pytest.mark.parametrize("text", ["abc", "16x", "0x3", "-4", "4,,2", "64,32", "4--2"])
def test_parse_hidden_rejects(text):
    with pytest.raises(ValueError, match="hidden"):
        parse_hidden(text)


@pytest.mark.parametrize("field,bad", [("lr", 0.0), ("lr", float("inf")), ("momentum", 1.0), ("dropout", -0.1),
                                       ("weight_decay", -1.0)])
def test_one_constraint_wherever_a_value_comes_in(field, bad):
    """Training, train_batch's per-network arrays and a grid axis refuse a value with the same words."""
    from fastmlp.grid import GridError, GridSpec
    with pytest.raises(ValueError) as at_training:
        Training(**{field: bad})
    net = Network(2, (3,))
    X = np.zeros((4, 2))
    with pytest.raises(ValueError) as at_batch:
        train_batch(net, X, np.zeros(4), init_batch(net, Init(), [0]), **{field: [bad]})
    with pytest.raises(GridError) as at_grid:
        GridSpec.from_settings({field: str(bad)})
    reason = str(at_training.value).split(" must be ", 1)[1]  # e.g. "in [0, 1), got 1.0"
    assert reason in str(at_batch.value)
    assert "must be " + reason.split(", got")[0] + ", got" in str(at_grid.value)
