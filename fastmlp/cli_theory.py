"""The ``fastmlp theory`` command: mean-field predictions, and with ``--measure`` the same quantities measured."""
from __future__ import annotations

import json
import math

import click

from . import theory as _theory
from .engine import BACKENDS
from .grid import GridError, parse_values

THEORY_HELP = """Mean-field signal propagation (Poole et al. 2016, Schoenholz et al. 2017) for networks with weights
N(0, sigma_w2/fan_in) and biases N(0, sigma_b2) (fastmlp's --init meanfield): per point the fixed length q*,
chi_1 (gradient growth per layer; 1 on the order-to-chaos line), the correlation fixed point c* and its slope
chi_c, the depth scales xi_q and xi_c, and the critical sigma_w2 for that sigma_b2.

--sigma-w2 and --sigma-b2 take lists and ranges as fastmlp grid does (1,2,3 or lin:1:4:7 or log:0.1:10:5).
Undefined values print as - (null in --json); an infinite depth scale prints as inf (null in --json).

With --measure, random networks of --depth hidden layers of --width units are built for each point (--seeds of
them) and the engine computes their weight gradients at initialisation: the measured per-layer gradient factor
(log chi_1) and the mean over layers of q^l / length map - 1 are shown with standard errors over seeds.

\b
Examples:
  fastmlp theory --activation tanh --sigma-w2 lin:1:4:7 --sigma-b2 0.05
  fastmlp theory --activation relu --sigma-w2 1,2,3 --sigma-b2 0,0.1 --json
  fastmlp theory --sigma-w2 1,1.76,2.5 --sigma-b2 0.05 --measure --depth 30 --width 256 --seeds 4
"""


def _values(raw, option):
    try:
        values = parse_values(raw, option)
    except GridError as e:
        raise click.BadParameter(e.message, param_hint=f"'{option}'") from None
    bad = [v for v in values if v < 0]
    if bad:
        raise click.BadParameter(f"values must be >= 0, got {bad[0]!r}", param_hint=f"'{option}'")
    return values


def _json_value(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, list):
        return [_json_value(x) for x in v]
    if isinstance(v, dict):
        return {k: _json_value(x) for k, x in v.items()}
    return v


def _cell(v, nd=4):
    if v is None:
        return "-"
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf"
        return f"{v:.{nd}g}"
    return str(v)


def _phase(p):
    c = p["chi_1"]
    if c is None:
        return "-"
    if abs(c - 1.0) < 1e-9:
        return "critical"
    return "ordered" if c < 1.0 else "chaotic"


def _pm(mean, se):
    if mean is None or not math.isfinite(mean):
        return "-"
    if abs(mean) >= 1e4 or (se is not None and math.isfinite(se) and se >= 1e4):
        return f"{mean:.4g} ± {se:.2g}" if se is not None and math.isfinite(se) else f"{mean:.4g}"
    return f"{mean:.3f} ± {se:.3f}" if se is not None and math.isfinite(se) else f"{mean:.3f}"


@click.command("theory", help=THEORY_HELP, short_help="Mean-field theory: q*, chi_1, c*, xi_c, critical sigma_w2 "
               "(and --measure on the engine).")
@click.option("--activation", type=click.Choice(_theory.ACTIVATIONS), default="tanh", show_default=True)
@click.option("--sigma-w2", "sigma_w2", metavar="LIST", default="lin:1:4:7", show_default=True,
              help="Weight variances times fan-in.")
@click.option("--sigma-b2", "sigma_b2", metavar="LIST", default="0.05", show_default=True, help="Bias variances.")
@click.option("--measure", is_flag=True, help="Also measure chi_1 and the length map on random networks.")
@click.option("--depth", type=click.IntRange(min=3), default=30, show_default=True,
              help="Hidden layers of the measured networks.")
@click.option("--width", type=click.IntRange(min=1), default=256, show_default=True,
              help="Units per hidden layer (and input features) of the measured networks.")
@click.option("--seeds", type=click.IntRange(min=2), default=4, show_default=True,
              help="Measured networks per point (standard errors are over these).")
@click.option("--q0", type=click.FloatRange(min=0.0, min_open=True),
              help="Mean squared input feature of the measurement (default: the input at the fixed point q*).")
@click.option("--backend", type=click.Choice(BACKENDS), default="numba", show_default=True,
              help="Engine of the measurement.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of rows.")
def theory(activation, sigma_w2, sigma_b2, measure, depth, width, seeds, q0, backend, as_json):
    sws = _values(sigma_w2, "--sigma-w2")
    sbs = _values(sigma_b2, "--sigma-b2")
    if measure:
        from .propagation import ENGINE_ACTIVATIONS
        if activation not in ENGINE_ACTIVATIONS:
            raise click.BadParameter(f"--measure needs an activation the engine has "
                                     f"({', '.join(ENGINE_ACTIVATIONS)}), got {activation!r}",
                                     param_hint="'--activation'")
        from .engine import get_engine
        try:
            get_engine(backend)
        except (RuntimeError, ImportError, ValueError) as e:
            raise click.UsageError(f"backend {backend!r} is not usable here: {e}") from None
    rows = []
    for sb in sbs:
        for sw in sws:
            row = _theory.point(activation, sw, sb)
            if measure:
                from .propagation import measure as run_measure
                try:
                    row["measured"] = run_measure(activation, sw, sb, depth=depth, width=width, seeds=seeds,
                                                  q0=q0, backend=backend)
                except (ValueError, MemoryError) as e:
                    raise click.UsageError(str(e)) from None
            rows.append(row)
    if as_json:
        click.echo(json.dumps([_json_value(r) for r in rows], indent=1))
        return
    crit = {sb: _theory.critical_sigma_w2(activation, sb) for sb in sbs}
    click.echo(f"{activation}: critical sigma_w2 (chi_1 = 1) " +
               ", ".join(f"{_cell(c, 6)} at sigma_b2 = {sb:g}" for sb, c in crit.items()))
    headers = ["sigma_w2", "sigma_b2", "q*", "chi_1", "c*", "chi_c", "xi_q", "xi_c", "phase"]
    if measure:
        headers += ["log chi_1", "measured", "q^L theory", "q^L measured", "q/map - 1"]
    table = []
    for r in rows:
        cells = [_cell(r["sigma_w2"]), _cell(r["sigma_b2"]), _cell(r["q_star"]), _cell(r["chi_1"]),
                 _cell(r["c_star"]), _cell(r["chi_c"]), _cell(r["xi_q"], 3), _cell(r["xi_c"], 3), _phase(r)]
        if measure:
            m = r["measured"]
            cells += [_cell(m["log_chi_1"], 3), _pm(m["log_chi_1_measured"], m["log_chi_1_se"]),
                      _cell(m["q_theory"][-1]),
                      _pm(m["q_measured"][-1], m["q_se"][-1]), _pm(m["q_rel_dev"], m["q_rel_dev_se"])]
        table.append(cells)
    widths = [max(len(h), *(len(c[i]) for c in table)) for i, h in enumerate(headers)]
    click.echo("  ".join(h.rjust(w) for h, w in zip(headers, widths)))
    for cells in table:
        click.echo("  ".join(c.rjust(w) for c, w in zip(cells, widths)))
    if measure:
        m = rows[0]["measured"]
        click.echo(f"measured: {m['seeds']} networks per point, {depth} hidden layers of {width} "
                   f"({backend} engine gradients at initialisation; q^l by a NumPy forward pass on the same "
                   f"parameters); ± is one standard error over seeds")
