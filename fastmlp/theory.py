"""Mean-field signal propagation in wide random networks (Poole et al. 2016, Schoenholz et al. 2017), pure NumPy.

A network ``h^1 = W^1 x + b^1``, ``h^l = W^l phi(h^{l-1}) + b^l`` with ``W_ij ~ N(0, sigma_w2 / fan_in)`` and
``b_i ~ N(0, sigma_b2)`` (the ``meanfield`` initialisation of :mod:`fastmlp.init`) propagates, in the limit of
infinite width, through a few one- and two-dimensional Gaussian integrals (``z, z1, z2`` standard normal):

length map
    ``q^l = sigma_w2 E[phi(sqrt(q^{l-1}) z)^2] + sigma_b2`` (``q^1 = sigma_w2 q0 + sigma_b2``, ``q0`` the mean
    squared input feature); ``q*`` is its stable fixed point.
chi_1
    ``sigma_w2 E[phi'(sqrt(q*) z)^2]``: the factor by which the squared norm of a back-propagated gradient grows
    per layer, and the slope of the correlation map at ``c = 1``. ``chi_1 < 1`` is the ordered phase,
    ``chi_1 > 1`` the chaotic phase, ``chi_1 = 1`` the critical line.
correlation map
    ``c' = (sigma_w2 E[phi(u1) phi(u2)] + sigma_b2) / q*`` with ``(u1, u2)`` Gaussian of variance ``q*`` and
    correlation ``c``; ``c*`` is its stable fixed point (1 in the ordered phase) and
    ``chi_c = sigma_w2 E[phi'(u1) phi'(u2)]`` at ``c*`` its slope there.
depth scales
    ``xi_q = -1 / log(chi_1 + sigma_w2 E[phi''(sqrt(q*) z) phi(sqrt(q*) z)])`` (the slope of the length map at
    ``q*``) and ``xi_c = -1 / log(chi_c)``: the number of layers over which lengths and correlations forget
    their input. Both are infinite where the slope is 1 (``xi_c`` on the critical line).

Closed forms are used for ``relu`` (the arc-cosine kernel of Cho & Saul), ``linear`` and ``erf``; ``tanh`` and
``sigmoid`` are integrated by Gauss-Hermite quadrature, refined (16, 32, 64, 128 nodes, then composite
Gauss-Legendre rules of 16 to 512 panels of 16 nodes, for long inputs, where Gauss-Hermite converges slowly) until two successive rules
agree to ``RTOL`` on every one-dimensional moment; two-dimensional integrals use the product of that rule.
docs/theory.md gives the measured accuracy.

Undefined quantities are ``None``: ``q*`` when the length map has no finite stable fixed point (``relu`` at
``sigma_w2 >= 2``, ``linear`` at ``sigma_w2 >= 1``), and ``c*``, ``chi_c``, ``xi_c`` when ``q*`` is 0 or
undefined (the correlation of zero-length signals has no meaning). Infinite depth scales are ``math.inf``.
"""
from __future__ import annotations

import functools
import math

import numpy as np
from numpy.polynomial.hermite import hermgauss
from numpy.polynomial.legendre import leggauss

ACTIVATIONS = ("tanh", "relu", "linear", "sigmoid", "erf")
QUADRATURE = ("tanh", "sigmoid")            # the activations integrated numerically
RTOL = 1e-11                                # successive quadrature rules must agree this closely
KEYS = ("activation", "sigma_w2", "sigma_b2", "q_star", "chi_1", "c_star", "chi_c", "xi_q", "xi_c",
        "critical_sigma_w2")


def _check(activation, sigma_w2=None, sigma_b2=None):
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r} for the theory; choose one of: "
                         f"{', '.join(ACTIVATIONS)}")
    for name, v in (("sigma_w2", sigma_w2), ("sigma_b2", sigma_b2)):
        if v is None:
            continue
        arr = np.asarray(v, dtype=float)
        if not np.all(np.isfinite(arr)) or np.any(arr < 0):
            bad = arr[~(np.isfinite(arr) & (arr >= 0))].ravel()[0]
            raise ValueError(f"{name} must be finite and >= 0, got {float(bad)!r}")


# ------------------------------------------------------------------------------------------- activations

def _phi(activation, x):
    """``(phi, phi', phi'')`` of ``tanh`` or ``sigmoid`` at ``x`` (sigmoid as ``0.5 + 0.5 tanh(x / 2)``, as the
    engines compute it)."""
    if activation == "tanh":
        t = np.tanh(x)
        d = 1.0 - t * t
        return t, d, -2.0 * t * d
    t = np.tanh(0.5 * x)
    d = 0.25 * (1.0 - t * t)
    return 0.5 + 0.5 * t, d, -d * t


# --------------------------------------------------------------------------------------------- quadrature

@functools.lru_cache(maxsize=None)
def _gauss_hermite(n):
    x, w = hermgauss(n)
    return np.sqrt(2.0) * x, w / np.sqrt(np.pi)


@functools.lru_cache(maxsize=None)
def _gauss_legendre_panels(panels, order=16, half_width=8.5):
    """A composite Gauss-Legendre rule for E over a standard normal on [-8.5, 8.5] (the rest has mass 2e-17)."""
    t, v = leggauss(order)
    edges = np.linspace(-half_width, half_width, panels + 1)
    a, b = edges[:-1, None], edges[1:, None]
    z = ((b - a) / 2 * t + (a + b) / 2).ravel()
    w = ((b - a) / 2 * v).ravel() * np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    return z, w


RULES = tuple(("gauss-hermite", n) for n in (16, 32, 64, 128)) + \
    tuple(("gauss-legendre-panels", p) for p in (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512))


def _nodes(rule):
    kind, n = rule
    return _gauss_hermite(n) if kind == "gauss-hermite" else _gauss_legendre_panels(n)


def _moments_with(activation, q, rule):
    z, w = _nodes(rule)
    p, d, dd = _phi(activation, math.sqrt(q) * z)
    return np.array([w @ (p * p), w @ (d * d), w @ (d * d + p * dd), w @ p])


@functools.lru_cache(maxsize=None)
def _rule_for_bucket(activation, bucket):
    q = 2.0 ** (bucket / 4.0)
    prev = None
    for rule in RULES:
        vals = _moments_with(activation, q, rule)
        if prev is not None and np.all(np.abs(vals - prev) <= RTOL * np.abs(vals) + 1e-15):
            return rule
        prev = vals
    return RULES[-1]


def quadrature_rule(activation, q):
    """The quadrature rule used for inputs of variance ``q``: ``("gauss-hermite", n)`` or
    ``("gauss-legendre-panels", panels)`` (16 nodes per panel).

    The rule is chosen for the smallest ``2^(k/4) >= q`` (wider Gaussians are harder) as the first of ``RULES``
    that agrees with its predecessor to ``RTOL`` on ``E[phi^2]``, ``E[phi'^2]``, ``E[phi'^2 + phi phi'']`` and
    ``E[phi]``.
    """
    if q <= 0:
        return RULES[0]
    return _rule_for_bucket(activation, math.ceil(4.0 * math.log2(q)))


def moments(activation, q):
    """One-dimensional Gaussian moments of ``phi`` at input variance ``q``.

    Parameters
    ----------
    activation : str
        One of ``ACTIVATIONS``.
    q : float
        Variance of the pre-activation, >= 0.

    Returns
    -------
    dict
        ``m2 = E[phi(u)^2]``, ``d2 = E[phi'(u)^2]``, ``slope = d m2 / d q = E[phi'(u)^2 + phi(u) phi''(u)]`` and
        ``m1 = E[phi(u)]``, for ``u ~ N(0, q)``.
    """
    _check(activation)
    q = float(q)
    if not (math.isfinite(q) and q >= 0):
        raise ValueError(f"q must be finite and >= 0, got {q!r}")
    if activation == "linear":
        return {"m2": q, "d2": 1.0, "slope": 1.0, "m1": 0.0}
    if activation == "relu":
        return {"m2": q / 2.0, "d2": 0.5, "slope": 0.5, "m1": math.sqrt(q / (2.0 * math.pi))}
    if activation == "erf":
        return {"m2": 2.0 / math.pi * math.asin(2.0 * q / (1.0 + 2.0 * q)),
                "d2": 4.0 / math.pi / math.sqrt(1.0 + 4.0 * q),
                "slope": 4.0 / math.pi / ((1.0 + 2.0 * q) * math.sqrt(1.0 + 4.0 * q)), "m1": 0.0}
    m2, d2, slope, m1 = _moments_with(activation, q, quadrature_rule(activation, q))
    return {"m2": float(m2), "d2": float(d2), "slope": float(slope), "m1": float(m1)}


def cross_moments(activation, q, c):
    """Two-dimensional Gaussian moments: ``(E[phi(u1) phi(u2)], E[phi'(u1) phi'(u2)])`` for ``(u1, u2)`` of
    variance ``q`` each and correlation ``c`` in [-1, 1]."""
    _check(activation)
    q, c = float(q), float(np.clip(c, -1.0, 1.0))
    if activation == "linear":
        return q * c, 1.0
    if activation == "relu":
        theta = math.acos(c)
        return (q / (2.0 * math.pi) * (math.sin(theta) + (math.pi - theta) * c),
                (math.pi - theta) / (2.0 * math.pi))
    if activation == "erf":
        return (2.0 / math.pi * math.asin(2.0 * q * c / (1.0 + 2.0 * q)),
                4.0 / math.pi / math.sqrt((1.0 + 2.0 * q) ** 2 - 4.0 * q * q * c * c))
    z, w = _nodes(quadrature_rule(activation, q))
    s = math.sqrt(q)
    p1, d1, _ = _phi(activation, s * z)
    u2 = s * (c * z[:, None] + math.sqrt(max(0.0, 1.0 - c * c)) * z[None, :])
    p2, d2, _ = _phi(activation, u2)
    return float(w @ (p1 * (p2 @ w))), float(w @ (d1 * (d2 @ w)))


# ------------------------------------------------------------------------------------------- the maps

def length_map(activation, q, sigma_w2, sigma_b2):
    """One layer of the length map: ``sigma_w2 E[phi(sqrt(q) z)^2] + sigma_b2``.

    Parameters
    ----------
    activation : str
    q : float or array_like
        Second moment of the previous layer's pre-activations (>= 0).
    sigma_w2, sigma_b2 : float

    Returns
    -------
    float or ndarray
        Same shape as ``q``.
    """
    _check(activation, sigma_w2, sigma_b2)
    qa = np.asarray(q, dtype=float)
    out = np.array([sigma_w2 * moments(activation, v)["m2"] + sigma_b2 for v in qa.ravel()]).reshape(qa.shape)
    return float(out) if out.ndim == 0 else out


def q_sequence(activation, q0, sigma_w2, sigma_b2, depth):
    """``q^1 .. q^depth`` of a network fed an input whose mean squared feature is ``q0``.

    ``q^1 = sigma_w2 q0 + sigma_b2`` (the first layer sees the input itself, not ``phi`` of it), then
    ``q^l = length_map(q^{l-1})``. Returns an array of ``depth`` values (``inf`` once it overflows).
    """
    _check(activation, sigma_w2, sigma_b2)
    depth = int(depth)
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    out = np.empty(depth)
    q = sigma_w2 * float(q0) + sigma_b2
    for l in range(depth):
        out[l] = q
        if math.isfinite(q) and q < 1e300:
            q = length_map(activation, q, sigma_w2, sigma_b2)
        else:
            q = math.inf
    return out


def _bisect(f, lo, hi, log=False, iters=200, rtol=1e-15):
    """A root of ``f`` between ``lo`` (f >= 0... or of the sign of f(lo)) and ``hi``, by bisection."""
    flo = f(lo) > 0
    for _ in range(iters):
        mid = math.sqrt(lo * hi) if log else 0.5 * (lo + hi)
        if (f(mid) > 0) == flo:
            lo = mid
        else:
            hi = mid
        if abs(hi - lo) <= rtol * abs(hi):
            break
    return 0.5 * (lo + hi)


def q_star(activation, sigma_w2, sigma_b2):
    """The stable fixed point of the length map; ``None`` where there is no finite one.

    For ``tanh``, ``sigmoid`` and ``erf`` (bounded) it is the largest root of ``length_map(q) = q`` (0 for an odd
    ``phi`` with ``sigma_b2 = 0`` in the ordered phase); for ``relu`` and ``linear`` it is
    ``sigma_b2 / (1 - a)`` with ``a = sigma_w2 / 2`` or ``sigma_w2``, when ``a < 1``.
    """
    _check(activation, sigma_w2, sigma_b2)
    sw, sb = float(sigma_w2), float(sigma_b2)
    if activation in ("relu", "linear"):
        a = sw / 2.0 if activation == "relu" else sw
        return sb / (1.0 - a) if a < 1.0 else None
    if sw == 0.0:
        return sb
    odd = activation != "sigmoid"
    if odd and sb == 0.0:
        d0 = 1.0 if activation == "tanh" else 4.0 / math.pi
        if sw * d0 <= 1.0:
            return 0.0

    def excess(q):
        return sw * moments(activation, q)["m2"] + sb - q

    hi = sw + sb                   # phi^2 <= 1, so the map sends everything below hi
    lo = hi
    for _ in range(1100):
        lo /= 2.0
        if excess(lo) > 0:
            break
    else:
        return 0.0
    return _bisect(excess, lo, hi, log=True)


def chi_1(activation, sigma_w2, sigma_b2, q=None):
    """``sigma_w2 E[phi'(sqrt(q*) z)^2]`` (``q`` overrides ``q*``); for relu and linear it does not depend on
    ``q`` and is defined even where ``q*`` is not. ``None`` where ``q*`` is undefined otherwise."""
    _check(activation, sigma_w2, sigma_b2)
    if q is None:
        q = q_star(activation, sigma_w2, sigma_b2)
    if q is None:
        q = 1.0 if activation in ("relu", "linear") else None
    if q is None:
        return None
    return float(sigma_w2) * moments(activation, q)["d2"]


def correlation_map(activation, c, sigma_w2, sigma_b2, q=None):
    """One layer of the correlation map at the length ``q`` (default ``q*``): ``(sigma_w2 E[phi(u1) phi(u2)]
    + sigma_b2) / q``."""
    _check(activation, sigma_w2, sigma_b2)
    q = q_star(activation, sigma_w2, sigma_b2) if q is None else q
    if not q:
        raise ValueError("the correlation map needs a positive length q (q* is 0 or undefined here)")
    return (sigma_w2 * cross_moments(activation, q, c)[0] + sigma_b2) / q


def c_star(activation, sigma_w2, sigma_b2):
    """``(c*, chi_c)``: the stable fixed point of the correlation map and its slope there (``(None, None)`` where
    ``q*`` is 0 or undefined).

    In the ordered phase (``chi_1 <= 1``) ``c* = 1`` and ``chi_c = chi_1``. In the chaotic phase the map, convex
    and increasing on [0, 1], has one more fixed point below 1, found by Newton's method from ``c = 0`` (which
    converges from the left for a convex map).
    """
    _check(activation, sigma_w2, sigma_b2)
    q = q_star(activation, sigma_w2, sigma_b2)
    if not q:
        return None, None
    c1 = chi_1(activation, sigma_w2, sigma_b2, q)
    if c1 <= 1.0:
        return 1.0, c1
    sw, sb = float(sigma_w2), float(sigma_b2)
    c = 0.0
    for _ in range(200):
        m, d = cross_moments(activation, q, c)
        h = (sw * m + sb) / q - c
        slope = sw * d - 1.0
        if h <= 1e-15 or slope >= 0.0:      # 1e-15: the quadrature's rounding, e.g. c* = 0 for odd phi, no bias
            break
        step = -h / slope
        c = min(c + step, 1.0)
        if step <= 1e-14:
            break
    return c, sw * cross_moments(activation, q, c)[1]


def depth_scale(slope):
    """``-1 / log(slope)``: 0 at slope 0, ``inf`` at slope >= 1 (within rounding)."""
    if slope is None:
        return None
    if slope <= 0.0:
        return 0.0
    if slope >= 1.0 - 1e-13:
        return math.inf
    return -1.0 / math.log(slope)


def xi_q(activation, sigma_w2, sigma_b2):
    """Depth scale of the approach of ``q^l`` to ``q*``: ``-1 / log(d length_map / d q at q*)``."""
    _check(activation, sigma_w2, sigma_b2)
    q = q_star(activation, sigma_w2, sigma_b2)
    if q is None:
        return None
    return depth_scale(float(sigma_w2) * moments(activation, q)["slope"])


def _xi_c_scalar(activation, sigma_w2, sigma_b2):
    return depth_scale(c_star(activation, sigma_w2, sigma_b2)[1])


def xi_c(activation, sigma_w2, sigma_b2):
    """Depth scale of correlations, ``-1 / log(chi_c)``; vectorised over arrays of ``sigma_w2`` and/or
    ``sigma_b2`` (then an array, NaN where undefined).

    Returns
    -------
    float, None or ndarray
    """
    _check(activation, sigma_w2, sigma_b2)
    if np.ndim(sigma_w2) == 0 and np.ndim(sigma_b2) == 0:
        return _xi_c_scalar(activation, float(sigma_w2), float(sigma_b2))
    sw, sb = np.broadcast_arrays(np.asarray(sigma_w2, float), np.asarray(sigma_b2, float))
    out = np.empty(sw.shape)
    for i in np.ndindex(sw.shape):
        v = _xi_c_scalar(activation, float(sw[i]), float(sb[i]))
        out[i] = np.nan if v is None else v
    return out


@functools.lru_cache(maxsize=None)
def _critical(activation, sigma_b2):
    if activation == "relu":
        return 2.0
    if activation == "linear":
        return 1.0
    if activation != "sigmoid" and sigma_b2 == 0.0:
        # odd phi without bias: q* = 0 below the transition, so chi_1 = sigma_w2 phi'(0)^2 there; chi_1 - 1
        # vanishes quadratically above it, which bisection resolves only to ~1e-8
        return 1.0 if activation == "tanh" else math.pi / 4.0

    def excess(sw):
        return chi_1(activation, sw, sigma_b2) - 1.0

    lo, hi = 0.0, 1.0
    for _ in range(200):
        if excess(hi) > 0:
            break
        lo, hi = hi, 2.0 * hi
    else:
        return None
    return _bisect(excess, lo, hi, iters=200, rtol=1e-14)


def critical_sigma_w2(activation, sigma_b2):
    """The ``sigma_w2`` at which ``chi_1 = 1`` for this ``sigma_b2`` (the order-to-chaos transition).

    Exact for ``relu`` (2) and ``linear`` (1) at every ``sigma_b2``, and for ``tanh`` (1) and ``erf`` (pi / 4)
    at ``sigma_b2 = 0`` (where ``q*`` leaves 0); bisection on ``chi_1`` (increasing in ``sigma_w2``) otherwise.
    """
    _check(activation, None, sigma_b2)
    return _critical(activation, float(sigma_b2))


def point(activation, sigma_w2, sigma_b2):
    """Every mean-field quantity at one ``(sigma_w2, sigma_b2)``.

    Returns
    -------
    dict
        Keys ``KEYS``: ``activation, sigma_w2, sigma_b2, q_star, chi_1, c_star, chi_c, xi_q, xi_c,
        critical_sigma_w2``; ``None`` where undefined, ``math.inf`` for an infinite depth scale.

    Examples
    --------
    >>> p = point("tanh", 1.0, 0.0)
    >>> p["q_star"], p["chi_1"], p["critical_sigma_w2"]
    (0.0, 1.0, 1.0)
    """
    _check(activation, sigma_w2, sigma_b2)
    sw, sb = float(sigma_w2), float(sigma_b2)
    q = q_star(activation, sw, sb)
    cs, cc = c_star(activation, sw, sb)
    return {"activation": activation, "sigma_w2": sw, "sigma_b2": sb, "q_star": q,
            "chi_1": chi_1(activation, sw, sb, q), "c_star": cs, "chi_c": cc, "xi_q": xi_q(activation, sw, sb),
            "xi_c": depth_scale(cc), "critical_sigma_w2": critical_sigma_w2(activation, sb)}
