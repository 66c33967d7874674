"""Initialisation schemes against their definitions."""
import math

import numpy as np
import pytest

from fastmlp import Init, Network, init_params
from fastmlp.init import weight_std
from fastmlp.layout import Layout

NET = Network(200, (300,), 100)


def _W(init, seed=0):
    return Layout(NET.sizes).unpack(init_params(NET, init, seed))[0][0]


@pytest.mark.parametrize("scheme,std", [
    ("xavier_uniform", math.sqrt(2 / 500)), ("xavier_normal", math.sqrt(2 / 500)),
    ("he_uniform", math.sqrt(2 / 200)), ("he_normal", math.sqrt(2 / 200)),
    ("lecun_uniform", math.sqrt(1 / 200)), ("lecun_normal", math.sqrt(1 / 200)),
])
def test_fan_based_schemes_have_their_published_std(scheme, std):
    assert weight_std(scheme, 200, 300) == pytest.approx(std)
    W = _W(Init(scheme))
    assert W.shape == (300, 200)
    assert W.std() == pytest.approx(std, rel=0.02)
    assert abs(W.mean()) < 0.02 * std * 10
    W3 = _W(Init(scheme, scale=3.0))
    np.testing.assert_allclose(W3, 3 * W, rtol=1e-12)
    if scheme.endswith("uniform"):
        assert np.abs(W).max() <= math.sqrt(3) * std


def test_simple_schemes():
    assert not _W(Init("zeros")).any()
    assert np.all(_W(Init("constant", value=0.25, scale=2)) == 0.5)
    U = _W(Init("uniform", limit=0.1))
    assert np.abs(U).max() <= 0.1 and U.std() == pytest.approx(0.1 / math.sqrt(3), rel=0.02)
    assert _W(Init("normal", std=0.01)).std() == pytest.approx(0.01, rel=0.02)


def test_orthogonal_rows_or_columns_are_orthonormal():
    W = _W(Init("orthogonal", gain=2.0))  # (300, 200): orthonormal columns
    np.testing.assert_allclose(W.T @ W, 4 * np.eye(200), atol=1e-10)
    net = Network(300, (200,), 1)
    W2 = Layout(net.sizes).unpack(init_params(net, Init("orthogonal"), 0))[0][0]  # (200, 300): rows
    np.testing.assert_allclose(W2 @ W2.T, np.eye(200), atol=1e-10)


def test_bias_schemes_and_float32():
    p = init_params(NET, Init("he_normal", bias="constant", bias_value=0.1), 0, "float32")
    assert p.dtype == np.float32
    (W, b), _ = Layout(NET.sizes).unpack(p)
    assert np.all(b == np.float32(0.1))
    p64 = init_params(NET, Init("he_normal", bias="constant", bias_value=0.1), 0, "float64")
    np.testing.assert_array_equal(p, p64.astype(np.float32))


@pytest.mark.parametrize("bad,msg", [
    (dict(scheme="glorot"), "unknown init scheme 'glorot'"), (dict(scale=-1), "init scale"),
    (dict(bias="ones"), "unknown bias scheme"), (dict(scale=float("nan")), "init scale"),
])
def test_bad_init_is_named(bad, msg):
    with pytest.raises(ValueError, match=msg):
        Init(**bad)
