"""Mean-field theory: exact values, self-consistency, scipy quadrature, and finite-width networks run by the engine."""
import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from fastmlp import theory
from fastmlp.cli import main
from fastmlp.propagation import measure

K_SE = 4.0          # a measured value must lie within this many standard errors (over seeds) of the theory


# ------------------------------------------------------------------------------------------ exact values

@pytest.mark.parametrize("sb", [0.0, 0.05, 1.0])
def test_relu_and_linear_are_critical_at_2_and_1_for_every_bias(sb):
    assert theory.critical_sigma_w2("relu", sb) == 2.0
    assert theory.critical_sigma_w2("linear", sb) == 1.0
    assert theory.chi_1("relu", 2.0, sb) == pytest.approx(1.0, abs=1e-15)
    assert theory.chi_1("linear", 1.0, sb) == pytest.approx(1.0, abs=1e-15)
    assert theory.chi_1("relu", 1.9, sb) < 1.0 < theory.chi_1("relu", 2.1, sb)


def test_tanh_without_bias_is_critical_at_1():
    assert theory.critical_sigma_w2("tanh", 0.0) == 1.0
    assert theory.q_star("tanh", 0.99, 0.0) == 0.0 and theory.q_star("tanh", 1.01, 0.0) > 0.0
    assert theory.chi_1("tanh", 0.99, 0.0) < 1.0 < theory.chi_1("tanh", 1.2, 0.0)
    # the bisection on chi_1 = 1 (used for sigma_b2 > 0) approaches the exact point as sigma_b2 -> 0, the gap
    # shrinking as sigma_b2 ** (1/3)
    for act, exact in (("tanh", 1.0), ("erf", math.pi / 4)):
        gaps = [theory.critical_sigma_w2(act, sb) - exact for sb in (1e-9, 1e-12)]
        assert 0 < gaps[1] < 1e-3 and gaps[0] / gaps[1] == pytest.approx(10.0, rel=0.02)
    assert theory.critical_sigma_w2("erf", 0.0) == pytest.approx(math.pi / 4)


@pytest.mark.parametrize("activation,sb", [("tanh", 0.05), ("tanh", 0.5), ("sigmoid", 0.05), ("erf", 0.2)])
def test_critical_point_is_where_chi_1_crosses_1(activation, sb):
    w = theory.critical_sigma_w2(activation, sb)
    assert theory.chi_1(activation, w, sb) == pytest.approx(1.0, abs=1e-9)
    assert theory.chi_1(activation, 0.98 * w, sb) < 1.0 < theory.chi_1(activation, 1.02 * w, sb)


def test_closed_forms_of_relu_and_linear():
    p = theory.point("relu", 1.5, 0.1)
    assert p["q_star"] == pytest.approx(0.1 / (1 - 0.75)) and p["chi_1"] == 0.75 and p["c_star"] == 1.0
    assert p["xi_c"] == pytest.approx(-1 / math.log(0.75)) and p["xi_q"] == pytest.approx(-1 / math.log(0.75))
    p = theory.point("linear", 0.5, 0.2)
    assert p["q_star"] == pytest.approx(0.4) and p["chi_1"] == 0.5 and p["chi_c"] == 0.5
    for act, sw in (("relu", 2.5), ("linear", 1.5)):
        p = theory.point(act, sw, 0.1)
        assert p["q_star"] is None and p["c_star"] is None and p["xi_c"] is None and p["chi_1"] > 1
    assert theory.moments("sigmoid", 2.3)["m1"] == pytest.approx(0.5, abs=1e-14)   # E[sigmoid] by symmetry


def test_point_keys_and_undefined_values():
    p = theory.point("tanh", 0.5, 0.0)
    assert tuple(p) == theory.KEYS
    assert p["q_star"] == 0.0 and p["c_star"] is None and p["chi_c"] is None and p["xi_c"] is None
    assert p["chi_1"] == pytest.approx(0.5) and p["xi_q"] == pytest.approx(-1 / math.log(0.5))
    with pytest.raises(ValueError, match="sigma_w2"):
        theory.point("tanh", -1.0, 0.0)
    with pytest.raises(ValueError, match="activation"):
        theory.point("softplus", 1.0, 0.0)


# ----------------------------------------------------------------------------------- self-consistency

@pytest.mark.parametrize("activation,sw,sb", [("tanh", 1.3, 0.05), ("tanh", 3.0, 0.05), ("tanh", 2.0, 0.0),
                                              ("sigmoid", 120.0, 0.3), ("erf", 2.0, 0.1), ("relu", 1.2, 0.3)])
def test_fixed_points_and_slopes(activation, sw, sb):
    p = theory.point(activation, sw, sb)
    q, c = p["q_star"], p["c_star"]
    assert theory.length_map(activation, q, sw, sb) == pytest.approx(q, rel=1e-10)
    seq = theory.q_sequence(activation, 2.0, sw, sb, 60)
    assert seq[-1] == pytest.approx(q, rel=1e-8)
    assert theory.correlation_map(activation, c, sw, sb) == pytest.approx(c, abs=1e-9)
    h = 1e-9 if activation == "relu" else 1e-5     # relu's map has a sqrt(1 - c) term at c = 1
    # chi_c is the slope of the correlation map at c*, chi_1 its slope at c = 1 (one-sided differences)
    lo, hi = max(c - h, -1.0), min(c + h, 1.0)
    fd = (theory.correlation_map(activation, hi, sw, sb) - theory.correlation_map(activation, lo, sw, sb)) / (hi - lo)
    assert fd == pytest.approx(p["chi_c"], rel=1e-4)
    fd1 = (1.0 - theory.correlation_map(activation, 1.0 - h, sw, sb)) / h
    assert fd1 == pytest.approx(p["chi_1"], rel=1e-3)
    # q^l - q* shrinks by exp(-1 / xi_q) per layer
    seq = theory.q_sequence(activation, (q * (1 + 1e-4) - sb) / sw, sw, sb, 6)
    ratio = (seq[5] - q) / (seq[4] - q)
    assert ratio == pytest.approx(math.exp(-1 / p["xi_q"]), rel=1e-3)


def test_xi_c_vectorised_matches_scalar_and_peaks_at_the_critical_point():
    sw = np.linspace(1.0, 4.0, 13)
    v = theory.xi_c("tanh", sw, 0.05)
    assert v.shape == sw.shape
    assert np.allclose(v, [theory.xi_c("tanh", float(s), 0.05) for s in sw])
    crit = theory.critical_sigma_w2("tanh", 0.05)
    assert abs(sw[np.argmax(v)] - crit) <= 0.25
    assert theory.xi_c("tanh", crit, 0.05) > 1e4


def test_quadrature_rules_converge():
    for q in (1e-3, 0.5, 4.0, 50.0):
        kind, n = theory.quadrature_rule("tanh", q)
        rules = theory.RULES
        finer = rules[min(rules.index((kind, n)) + 1, len(rules) - 1)]
        a = theory._moments_with("tanh", q, (kind, n))
        b = theory._moments_with("tanh", q, finer)
        assert np.allclose(a, b, rtol=10 * theory.RTOL, atol=1e-14)


# --------------------------------------------------------------------------------------------- scipy

@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
@pytest.mark.parametrize("q", [0.01, 0.7, 3.0, 40.0])
def test_moments_against_scipy_quad(activation, q):
    integrate = pytest.importorskip("scipy.integrate", reason="scipy is optional; it checks the quadrature")

    def expect(f):
        g = lambda x: f(x) * math.exp(-x * x / (2 * q)) / math.sqrt(2 * math.pi * q)   # noqa: E731
        s = math.sqrt(q)
        pts = [-3 * s, -1.0, 0.0, 1.0, 3 * s] if s > 0.4 else None
        return integrate.quad(g, -12 * s, 12 * s, points=pts, epsabs=1e-14, epsrel=1e-12, limit=400)[0]

    phi = lambda x: theory._phi(activation, np.array(x))   # noqa: E731
    m = theory.moments(activation, q)
    assert m["m2"] == pytest.approx(expect(lambda x: phi(x)[0] ** 2), rel=1e-9, abs=1e-14)
    assert m["d2"] == pytest.approx(expect(lambda x: phi(x)[1] ** 2), rel=1e-9, abs=1e-14)
    assert m["slope"] == pytest.approx(expect(lambda x: phi(x)[1] ** 2 + phi(x)[0] * phi(x)[2]), rel=1e-8,
                                       abs=1e-13)


@pytest.mark.parametrize("activation,q,c", [("tanh", 1.2, 0.3), ("tanh", 4.0, -0.6), ("sigmoid", 2.0, 0.8),
                                            ("relu", 1.5, 0.4), ("erf", 0.8, 0.7)])
def test_cross_moments_against_scipy_dblquad(activation, q, c):
    integrate = pytest.importorskip("scipy.integrate", reason="scipy is optional; it checks the quadrature")
    special = pytest.importorskip("scipy.special")
    funcs = {"tanh": (np.tanh, lambda x: 1 - np.tanh(x) ** 2),
             "sigmoid": (special.expit, lambda x: special.expit(x) * (1 - special.expit(x))),
             "relu": (lambda x: max(x, 0.0), lambda x: float(x > 0)),
             "erf": (special.erf, lambda x: 2 / math.sqrt(math.pi) * math.exp(-x * x))}
    f, df = funcs[activation]
    s, r = math.sqrt(q), math.sqrt(1 - c * c)
    pdf = lambda a, b: math.exp(-(a * a + b * b) / 2) / (2 * math.pi)   # noqa: E731
    # relu: integrate over the wedge where both units are on, where the integrand is smooth
    a_lo, b_lo = (0.0, lambda a: -c * a / r) if activation == "relu" else (-9.0, -9.0)
    want = [integrate.dblquad(lambda b, a: g(s * a) * g(s * (c * a + r * b)) * pdf(a, b), a_lo, 9, b_lo, 9,
                              epsabs=1e-11, epsrel=1e-10)[0] for g in (f, df)]
    assert theory.cross_moments(activation, q, c) == pytest.approx(want, rel=1e-8, abs=1e-10)


# ------------------------------------------------------------------------- finite width, with the engine

def _within(measured, se, predicted):
    assert math.isfinite(measured) and math.isfinite(se) and se > 0
    assert abs(measured - predicted) <= K_SE * se, (measured, se, predicted)


@pytest.fixture(scope="module")
def measured():
    """Deep tanh networks (30 hidden layers of 256) at initialisation, ordered, chaotic, and from far off q*."""
    return {(sw, q0): measure("tanh", sw, 0.05, depth=30, width=256, seeds=8, q0=q0)
            for sw, q0 in ((1.0, None), (2.5, None), (1.5, 3.0))}


@pytest.mark.parametrize("sw,q0", [(1.0, None), (2.5, None), (1.5, 3.0)])
def test_gradient_norms_grow_by_chi_1_per_layer(measured, sw, q0):
    m = measured[(sw, q0)]
    if q0 is None:
        assert m["log_chi_1"] == pytest.approx(math.log(theory.chi_1("tanh", sw, 0.05)), rel=1e-9)
    _within(m["log_chi_1_measured"], m["log_chi_1_se"], m["log_chi_1"])
    # the measurement can tell the phases apart: the theory of the other phase is many errors away
    other = math.log(theory.chi_1("tanh", 3.5 - sw if q0 is None else 2.5, 0.05))
    assert abs(m["log_chi_1_measured"] - other) > K_SE * m["log_chi_1_se"]


@pytest.mark.parametrize("sw,q0", [(1.0, None), (2.5, None), (1.5, 3.0)])
def test_pre_activation_variance_follows_the_length_map(measured, sw, q0):
    m = measured[(sw, q0)]
    _within(m["q_rel_dev"], m["q_rel_dev_se"], 0.0)
    q_hat, se, q_th = (np.array(m[k]) for k in ("q_measured", "q_se", "q_theory"))
    assert np.mean(np.abs(q_hat - q_th) <= K_SE * se) >= 0.9       # layer by layer, nearly all of them
    if q0 is not None:     # the transient is there to be followed: q^1 is far from q*
        assert q_th[0] > 2 * q_th[-1] and q_hat[0] > 2 * q_hat[-1]


# ----------------------------------------------------------------------------------------------- CLI

def test_theory_command_json_rows():
    r = CliRunner().invoke(main, ["theory", "--activation", "tanh", "--sigma-w2", "lin:0.5:2:4", "--sigma-b2",
                                  "0,0.05", "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    assert len(rows) == 8 and all(tuple(row) == theory.KEYS for row in rows)
    first = rows[0]
    assert first["sigma_w2"] == 0.5 and first["sigma_b2"] == 0.0 and first["c_star"] is None
    assert rows[4]["critical_sigma_w2"] == pytest.approx(theory.critical_sigma_w2("tanh", 0.05))
    r = CliRunner().invoke(main, ["theory", "--activation", "relu", "--sigma-w2", "1,3", "--sigma-b2", "0.1"])
    assert r.exit_code == 0 and "ordered" in r.output and "-" in r.output


def test_theory_command_measure_and_errors():
    r = CliRunner().invoke(main, ["theory", "--sigma-w2", "2", "--sigma-b2", "0.05", "--measure", "--depth", "4",
                                  "--width", "16", "--seeds", "2", "--json"])
    assert r.exit_code == 0, r.output
    m = json.loads(r.output)[0]["measured"]
    assert len(m["q_theory"]) == 4 and m["seeds"] == 2 and m["log_chi_1_se"] is not None
    for args, text in ((["--sigma-w2", "lin:1:2"], "malformed range"), (["--sigma-b2", "-1"], ">= 0"),
                       (["--activation", "erf", "--measure"], "engine"), (["--activation", "gelu"], "gelu")):
        r = CliRunner().invoke(main, ["theory", *args])
        assert r.exit_code == 2 and text in r.output, r.output
