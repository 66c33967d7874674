"""Diagnostics against matrices whose answer is known."""
import numpy as np
import pytest

from fastmlp import Init, Network, diagnose, distinct_units, effective_rank, max_cosine, train
from fastmlp.diagnostics import dead_fraction, saturated_fraction


def test_distinct_units_exact_and_with_tolerance():
    W = np.array([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0 + 1e-12], [3.0, 1.0]])
    b = np.zeros(4)
    assert distinct_units(W, b) == 3
    assert distinct_units(W, b, rtol=1e-9) == 2
    b2 = np.array([0.0, 1.0, 0.0, 0.0])  # a different bias makes a different unit
    assert distinct_units(W, b2, rtol=1e-9) == 3


def test_max_cosine():
    assert max_cosine(np.array([[1.0, 0.0], [0.0, 1.0]])) == pytest.approx(0.0)
    assert max_cosine(np.array([[1.0, 1.0], [2.0, 2.0], [1.0, -1.0]])) == pytest.approx(1.0)
    assert np.isnan(max_cosine(np.zeros((3, 2))))


def test_effective_rank():
    rs = np.random.default_rng(0)
    u = rs.normal(size=(500, 1))
    assert effective_rank(np.hstack([u, 2 * u, -u])) == pytest.approx(1.0, abs=1e-6)
    A = rs.normal(size=(500, 4))
    Q = np.linalg.qr(A - A.mean(axis=0))[0]  # orthonormal columns with zero means
    assert effective_rank(Q) == pytest.approx(4.0, rel=1e-6)
    assert effective_rank(np.zeros((10, 3))) == 0.0


def test_saturation_and_dead_units():
    H = np.array([[0.999, 0.1], [-0.995, 0.2]])
    assert saturated_fraction(H, "tanh") == pytest.approx(0.5)
    assert np.isnan(saturated_fraction(H, "relu"))
    R = np.array([[0.0, 1.0, 0.0], [0.0, 2.0, 0.5]])
    assert dead_fraction(R, "relu") == pytest.approx(1 / 3)


def test_diagnose_a_trained_network():
    rs = np.random.default_rng(1)
    X = rs.normal(size=(80, 3))
    y = (X[:, 0] > 0).astype(float)
    net = Network(3, (5, 4), 1, "tanh")
    res = train(net, X, y, init=Init("xavier_normal"), seed=2, track_grad_norms=True)
    d = diagnose(net, res.params[0], X, res.initial_params[0], res.grad_norms[0])
    assert d["distinct_units"] == [5, 4]
    assert d["weights_moved"] == [True, True, True]
    assert all(x > 0 for x in d["distance_moved"])
    assert len(d["grad_norms"]) == 3 and d["grad_ratio"] == pytest.approx(d["grad_norms"][0] / d["grad_norms"][-1])
    assert 1 < d["effective_rank"][0] <= 5


def _distinct_units_pairwise(W, b, rtol):
    """The greedy grouping written pair by pair (the definition in distinct_units' docstring)."""
    U = np.concatenate([W, b[:, None]], axis=1)
    reps = []
    for u in U:
        for r in reps:
            if np.max(np.abs(u - r)) <= rtol * max(np.max(np.abs(u)), np.max(np.abs(r)), np.finfo(float).tiny):
                break
        else:
            reps.append(u)
    return len(reps)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_distinct_units_with_tolerance_matches_the_pairwise_definition(dtype):
    """Layers of near-copies at every distance around the tolerance, zero units, non-finite entries (diverged
    networks are diagnosed too) and chains (a ~ b ~ c but a !~ c, where the greedy order decides): the
    vectorised count equals the pair-by-pair one."""
    rng = np.random.default_rng(0)
    for trial in range(60):
        n, f = rng.integers(1, 24), rng.integers(1, 9)
        base = rng.normal(size=(rng.integers(1, 5), f + 1))
        U = base[rng.integers(0, len(base), n)] * (1 + rng.choice([0, 1e-9, 5e-7, 1e-6, 2e-6, 1e-3], (n, 1)))
        U[rng.random(n) < 0.1] = 0.0
        U[rng.random(n) < 0.05, rng.integers(0, f + 1)] = rng.choice([np.nan, np.inf, -np.inf])   # diverged
        U = U.astype(dtype)
        for rtol in (1e-6, 1.5e-6, 1e-3):
            with np.errstate(invalid="ignore"):
                assert distinct_units(U[:, :-1], U[:, -1], rtol) == _distinct_units_pairwise(U[:, :-1], U[:, -1], rtol)
