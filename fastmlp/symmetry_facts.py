"""The symmetry story of a results database, computed from its runs: which starts never moved, whose hidden
units stayed copies, how many units ended distinct per scheme and scale, and what the seeds changed.

Each run of a grid records its diagnostics (``distinct_units`` per hidden layer, ``weights_moved`` per weight
matrix, ``distance_moved``); this module reads them back into tables and sentences, the way ``fastmlp
symmetry`` reads its own table, so that the report says what the data say and nothing else.
"""
from __future__ import annotations

import math

import numpy as np

from .grid import stored_hidden
from .spec import SCHEMES
from .store import CONFIG_COLUMNS

# the fate of a run's hidden units, from the worst symmetry to none
FATES = ("never moved", "copies", "partly distinct", "all distinct")
# every column these functions read (callers fetch only these from a large database)
COLUMNS = CONFIG_COLUMNS + ("seed", "status", "final_loss", "depth", "distinct_units", "weights_moved",
                            "distance_moved")


def _ints(text):
    try:
        return [int(float(t)) for t in str(text).split(",") if t.strip() and t.strip() != "nan"]
    except ValueError:
        return []


def run_fate(row):
    """One of :data:`FATES` for a run (None without hidden layers or diagnostics).

    ``never moved``: no weight changed (only biases learned); ``copies``: every hidden layer ended with one
    distinct unit (it acts as a single unit); ``partly distinct``: some layer has fewer distinct units than
    units; ``all distinct``: the symmetry is fully broken.
    """
    widths = stored_hidden(row.get("hidden", ""))
    distinct = _ints(row.get("distinct_units"))
    if not widths or len(distinct) != len(widths):
        return None
    moved = _ints(row.get("weights_moved"))
    if moved and not any(moved):
        return "never moved"
    if all(d == 1 for d in distinct) and max(widths) > 1:
        return "copies"
    if any(d < w for d, w in zip(distinct, widths)):
        return "partly distinct"
    return "all distinct"


def distinct_fraction(row):
    """Distinct units over units, averaged over hidden layers (None without them)."""
    widths = stored_hidden(row.get("hidden", ""))
    distinct = _ints(row.get("distinct_units"))
    if not widths or len(distinct) != len(widths):
        return None
    return float(np.mean([d / w for d, w in zip(distinct, widths)]))


def _order(values):
    order = {s: i for i, s in enumerate(SCHEMES)}
    return sorted(values, key=lambda s: (order.get(s, len(order)), str(s)))


def symmetry_facts(rows, reference_loss=None):
    """Per init scheme: how the runs' hidden units ended, what the seeds changed, and a reading in words.

    Parameters
    ----------
    rows : list of dict
        Runs from :meth:`fastmlp.store.Store.fetch`.
    reference_loss : float, optional
        The class-prior loss (what learning nothing reaches), for the readings.

    Returns
    -------
    dict
        ``schemes``: one dict per init scheme (``init``, ``runs``, a count per fate, ``mean_distinct`` fraction,
        ``median_distance``, ``configs`` and ``same_across_seeds`` (configurations whose seeds all gave the
        identical final loss), ``seed_spread`` (median over configurations of the standard deviation over
        seeds), ``learned_scales`` (scales whose mean final loss is below half the reference), ``reading``);
        ``by_init_scale``: ``{(init, scale): mean distinct fraction}``; ``by_init_layer``: ``{(init, layer): mean
        distinct fraction of that hidden layer (1 = first)}``; ``pooled``: the other settings that vary.
    """
    usable = [r for r in rows if run_fate(r) is not None]
    config_cols = [c for c in CONFIG_COLUMNS if c not in ("init",)]
    pooled = [c for c in CONFIG_COLUMNS if c not in ("init", "scale") and len({r[c] for r in rows}) > 1]
    schemes = []
    for init in _order({r["init"] for r in usable}):
        rs = [r for r in usable if r["init"] == init]
        fates = {f: 0 for f in FATES}
        for r in rs:
            fates[run_fate(r)] += 1
        fractions = [distinct_fraction(r) for r in rs]
        dist = [r["distance_moved"] for r in rs if r.get("distance_moved") is not None]
        configs = {}
        for r in rs:
            configs.setdefault(tuple(r[c] for c in config_cols), []).append(r)
        same, spreads, multi = 0, [], 0
        for group in configs.values():
            losses = [r["final_loss"] for r in group if r["status"] == "done" and r.get("final_loss") is not None]
            if len(group) < 2 or len(losses) < 2:
                continue
            multi += 1
            if max(losses) == min(losses):
                same += 1
            spreads.append(float(np.std(losses, ddof=1)))
        by_scale = {}
        for r in rs:
            if r["status"] == "done" and r.get("final_loss") is not None:
                by_scale.setdefault(r["scale"], []).append(r["final_loss"])
        learned = sorted(s for s, v in by_scale.items()
                         if reference_loss and float(np.mean(v)) < 0.5 * reference_loss)
        losses = [r["final_loss"] for r in rs if r["status"] == "done" and r.get("final_loss") is not None]
        d = {"init": init, "runs": len(rs), **fates,
             "mean_distinct": float(np.mean(fractions)) if fractions else None,
             "median_distance": float(np.median(dist)) if dist else None,
             "configs": multi, "same_across_seeds": same,
             "seed_spread": float(np.median(spreads)) if spreads else None,
             "learned_scales": learned, "scales": sorted(by_scale),
             "mean_loss": float(np.mean(losses)) if losses else None}
        d["reading"] = reading(d, reference_loss)
        schemes.append(d)
    by_cell, by_layer = {}, {}
    for r in usable:
        by_cell.setdefault((r["init"], r["scale"]), []).append(distinct_fraction(r))
        for layer, (d, w) in enumerate(zip(_ints(r["distinct_units"]), stored_hidden(r["hidden"]))):
            by_layer.setdefault((r["init"], layer + 1), []).append(d / w)
    return {"schemes": schemes, "pooled": pooled,
            "by_init_scale": {k: float(np.mean(v)) for k, v in by_cell.items()},
            "by_init_layer": {k: float(np.mean(v)) for k, v in by_layer.items()}}


def _g(x):
    return f"{x:.4g}"


def _scales_text(learned, all_scales):
    if not learned:
        return "at no scale of the grid"
    if len(learned) == len(all_scales):
        return "at every scale of the grid"
    return f"at scales {_g(learned[0])} to {_g(learned[-1])} ({len(learned)} of {len(all_scales)})"


def reading(d, reference_loss=None):
    """One scheme's story in words, from its counts (see :func:`symmetry_facts`)."""
    n = d["runs"]
    parts = []
    if d["never moved"] == n:
        loss = f" (mean final loss {_g(d['mean_loss'])}" + (f", class prior {_g(reference_loss)})"
                                                           if reference_loss else ")") if d["mean_loss"] else ""
        parts.append(f"the weights never moved in any of its {n} runs: only the output bias learned{loss}")
    elif d["never moved"] + d["copies"] == n:
        parts.append(f"the hidden units stayed exact copies in all {n} runs: each layer acted as a single unit"
                     + (f" ({d['never moved']} never moved at all)" if d["never moved"] else ""))
    else:
        counts = [f"{d[f]} {f}" for f in FATES if d[f]]
        parts.append(f"of {n} runs: {', '.join(counts)}")
        if d["all distinct"] == n:
            parts[-1] = f"symmetry broken in all {n} runs (every unit distinct)"
    if reference_loss:
        parts.append(f"mean final loss below half the class prior {_scales_text(d['learned_scales'], d['scales'])}")
    if d["configs"]:
        if d["same_across_seeds"] == d["configs"]:
            parts.append(f"every seed gave the identical final loss in all {d['configs']} configurations: "
                         f"the seed changed nothing")
        elif d["seed_spread"] is not None:
            parts.append(f"seeds spread the final loss by a median standard deviation of {_g(d['seed_spread'])}"
                         + (f" (identical in {d['same_across_seeds']} of {d['configs']} configurations)"
                            if d["same_across_seeds"] else ""))
    return "; ".join(parts) + "."


def fraction_text(x):
    """A fraction as a percentage for tables (``-`` when unknown)."""
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.0f}%"
