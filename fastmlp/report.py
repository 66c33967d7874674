"""Summary tables (plain text and HTML) and the self-contained HTML report of a results database."""
from __future__ import annotations

import base64
import html
import math
import time

from .grid import METRICS, architecture_label
from .spec import SCHEMES
from .store import aggregate, best_and_worst, describe_dataset, varying_columns

SUMMARY_ROWS = 5


# ----------------------------------------------------------------------------------------------- values

def fmt(value, column=None):
    """A table cell: ``-`` for missing, 4 significant digits for floats, architectures as ``32x4``."""
    if value is None:
        return "full" if column == "batch_size" else "-"
    if column == "hidden":
        return architecture_label(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.4g}"
    return str(value)


def fmt_mean_std(d):
    """``mean±std`` with the standard deviation to the mean's last shown decimal (4 significant digits)."""
    mean, std = d.get("mean"), d.get("std")
    if mean is None:
        return "-"
    if not math.isfinite(mean) or mean == 0 or abs(mean) >= 1e5 or abs(mean) < 1e-4:
        return fmt(mean) + ("" if std is None else f"±{std:.2g}")
    decimals = max(0, 3 - int(math.floor(math.log10(abs(mean)))))
    text = f"{mean:.{decimals}f}"
    if std is not None:
        text += f"±{std:.{decimals}f}"
    return text


def _cell_text(d):
    """One init x scale cell: mean +- std over seeds, and how many runs diverged or failed (left out)."""
    if d is None:
        return ""
    bad = d["diverged"] + d["failed"]
    return fmt_mean_std(d) + (f" ({bad}x)" if bad else "")


def text_table(headers, rows, right=None):
    """A plain-text table; ``right`` names the columns to right-align (default: all but the first)."""
    right = set(range(1, len(headers))) if right is None else set(right)
    cells = [[str(c) for c in r] for r in rows]
    widths = [max([len(str(h))] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(items):
        return "  ".join((s.rjust(w) if i in right else s.ljust(w)) for i, (s, w) in enumerate(zip(items, widths)))
    out = [line([str(h) for h in headers]), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells]
    return "\n".join(x.rstrip() for x in out)


STAT_COLUMNS = ("n", "mean", "std", "min", "median", "max", "diverged", "failed")


def aggregate_rows(table, by):
    """Header and cell texts of an :func:`fastmlp.store.aggregate` table."""
    headers = list(by) + list(STAT_COLUMNS)
    cells = [[fmt(d[c], c) for c in by] + [fmt(d[c]) for c in STAT_COLUMNS] for d in table]
    return headers, cells


# ---------------------------------------------------------------------------------------------- summary

def reference_values(identity, store=None):
    """What a network that learns nothing reaches on a dataset: ``{"loss": class-prior loss, "accuracy": chance
    accuracy}`` from the dataset identity a database records (None where unknown). A database made before the
    identity held them still tells the loss when a grid's ``--target-loss`` was a percentage of it (``store``)."""
    d = identity or {}
    out = {"loss": d.get("baseline_loss"), "accuracy": d.get("chance_accuracy")}
    if out["loss"] is None and store is not None:
        for g in store.grids():
            pct = str(g["settings"].get("target_loss", ""))
            if pct.endswith("%"):
                row = store.conn.execute("SELECT target_loss FROM runs WHERE grid_id = ? AND target_loss > 0 "
                                         "LIMIT 1", (g["id"],)).fetchone()
                if row is not None and float(pct[:-1]) > 0:
                    out["loss"] = float(row[0]) / (float(pct[:-1]) / 100.0)
                    break
    return out


def metric_reference(metric, reference):
    """``(value, text)``: the reference a metric is read against, or ``(None, None)``."""
    reference = reference or {}
    if metric in ("final_loss", "val_loss", "initial_loss") and reference.get("loss") is not None:
        return reference["loss"], (f"the class-prior loss {reference['loss']:.4g} (what a network that learns "
                                   f"only its output bias reaches)")
    if metric in ("train_accuracy", "val_accuracy") and reference.get("accuracy") is not None:
        return reference["accuracy"], f"chance accuracy {reference['accuracy']:.4g} (always the most frequent class)"
    return None, None


def summarize_runs(rows, metric="final_loss", n=SUMMARY_ROWS, baseline=None):
    """The summary of a set of runs: counts, best and worst configurations, the init x scale table.

    Parameters
    ----------
    rows : list of dict
        Runs from :meth:`fastmlp.store.Store.fetch`.
    metric : str
        One of :data:`fastmlp.grid.METRICS`.
    n : int
        Configurations in each of the best and worst lists.

    Returns
    -------
    dict
        ``metric``, ``higher_is_better``, ``counts`` (runs by status), ``config_columns`` (the settings that
        vary), ``pooled`` (varying settings other than init, scale and seed, pooled in the init x scale table),
        ``best``, ``worst``, ``by_init_scale`` (rows of :func:`fastmlp.store.aggregate`), ``seeds`` (seeds per
        configuration, at most).
    """
    higher = METRICS[metric]
    counts = {"runs": len(rows), "done": 0, "diverged": 0, "failed": 0}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    best, worst, by = best_and_worst(rows, metric, higher, n) if rows else ([], [], [])
    pooled = [c for c in varying_columns(rows) if c not in ("init", "scale")] if rows else []
    return {"metric": metric, "higher_is_better": higher, "counts": counts, "config_columns": by,
            "pooled": pooled, "best": best, "worst": worst,
            "by_init_scale": aggregate(rows, ["init", "scale"], metric) if rows else [],
            "seeds": max((d["n"] for d in best + worst), default=0), "reference": baseline or {}}


def _pivot(table):
    """init x scale aggregate -> (scales, inits, {(scale, init): row})."""
    scales = sorted({d["scale"] for d in table})
    order = {s: i for i, s in enumerate(SCHEMES)}
    inits = sorted({d["init"] for d in table}, key=lambda s: (order.get(s, len(order)), s))
    return scales, inits, {(d["scale"], d["init"]): d for d in table}


def pivot_text(table, metric, pooled=()):
    """The init x scale table as text: one row per scale, one column per scheme, cells ``mean±std``."""
    if not table:
        return "(no runs)"
    scales, inits, cell = _pivot(table)
    rows = []
    for s in scales:
        row = [fmt(s)]
        for i in inits:
            d = cell.get((s, i))
            row.append(_cell_text(d))
        rows.append(row)
    return text_table(["scale"] + inits, rows)


def summary_text(summary):
    """The end-of-grid summary as text."""
    m, c = summary["metric"], summary["counts"]
    direction = "higher is better" if summary["higher_is_better"] else "lower is better"
    out = [f"Runs: {c['runs']} ({c['done']} trained to the end, {c['diverged']} diverged, {c['failed']} failed)"]
    by = summary["config_columns"]
    for title, part in (("Best", summary["best"]), ("Worst", summary["worst"])):
        if not part:
            continue
        out += ["", f"{title} {len(part)} configurations by {m} ({direction}; mean over seeds):"]
        headers = list(by) + [m, "std", "n", "diverged"]
        cells = [[fmt(d[col], col) for col in by] + [fmt(d["mean"]), fmt(d["std"]), d["n"], d["diverged"]]
                 for d in part]
        out.append(text_table(headers, cells, right=range(len(by), len(headers))))
    pooled = summary["pooled"]
    note = f"; pooled over {', '.join(pooled)}" if pooled else ""
    out += ["", f"{m} by init x scale (mean±std over seeds{note}; (kx): k runs diverged or failed, left out):",
            pivot_text(summary["by_init_scale"], m, pooled)]
    _, ref = metric_reference(m, summary.get("reference"))
    if ref:
        out.append(f"Read against {ref}.")
    return "\n".join(out)


def summary_json(summary):
    """The summary as JSON-able data (the ``--json`` output of ``grid``)."""
    out = {k: summary[k] for k in ("metric", "higher_is_better", "counts", "config_columns", "pooled", "best",
                                   "worst", "by_init_scale")}
    for part in ("best", "worst", "by_init_scale"):
        out[part] = [dict(d, hidden=architecture_label(d["hidden"])) if "hidden" in d else d for d in out[part]]
    return out


# ------------------------------------------------------------------------------------------------- html

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1100px;
padding:0 1em;color:#222;line-height:1.4}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.25em;margin-top:1.8em;border-bottom:1px solid #ddd}
p.meta{color:#666;margin-top:0}
table{border-collapse:collapse;margin:.6em 0;font-size:.88em}
th,td{border:1px solid #ddd;padding:.25em .55em;text-align:right;white-space:nowrap}
th{background:#f4f4f4;white-space:normal}td.l,th.l{text-align:left}
.scroll{overflow-x:auto}
pre.cmd{white-space:pre-wrap;overflow-wrap:anywhere}
figure{margin:1em 0}figure img,figure svg{max-width:100%;height:auto}
figcaption{color:#555;font-size:.9em}
code,pre{background:#f6f6f6;padding:.1em .3em;border-radius:3px}pre{padding:.6em;overflow-x:auto}
.note{background:#fff8e1;border-left:4px solid #f0c040;padding:.5em .8em}
"""


def _esc(v):
    return html.escape(str(v), quote=True)


def html_table(headers, rows, left=(0,), styles=None):
    """An HTML table; ``styles[i][j]`` is an optional inline style for a body cell."""
    head = "".join(f'<th class="l">{_esc(h)}</th>' if i in left else f"<th>{_esc(h)}</th>"
                   for i, h in enumerate(headers))
    body = []
    for r_i, r in enumerate(rows):
        cells = []
        for i, c in enumerate(r):
            cls = ' class="l"' if i in left else ""
            st = styles[r_i][i] if styles and styles[r_i][i] else ""
            cells.append(f"<td{cls}{' style=' + chr(34) + st + chr(34) if st else ''}>{_esc(c)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _color(value, lo, hi, higher_is_better):
    """A background from red (bad) to green (good) for a value in [lo, hi]."""
    if value is None or lo is None or hi is None or hi <= lo:
        return ""
    t = (value - lo) / (hi - lo)
    t = t if higher_is_better else 1 - t
    return _shade(t)


def _shade(t):
    t = min(1.0, max(0.0, t))
    r, g = int(240 - 120 * t), int(140 + 90 * t)
    return f"background:rgb({r},{g},150)"


def goodness(value, metric, ref):
    """How good a value is against a meaningful reference, 0 (no better than learning nothing) to 1 (perfect):
    a loss as the fraction of the class-prior loss it removed, an accuracy as the fraction of the way from
    chance to 1. None without a reference."""
    if value is None or ref is None:
        return None
    if metric in ("train_accuracy", "val_accuracy"):
        return (value - ref) / (1.0 - ref) if ref < 1 else None
    return 1.0 - value / ref if ref > 0 else None


def pivot_html(table, metric, higher, reference=None):
    """The init x scale table as HTML. With a reference (class-prior loss, chance accuracy) a cell's colour says
    how much better than learning nothing its mean is (red: no better; green: perfect); without one, from
    the table's worst (red) to best (green)."""
    scales, inits, cell = _pivot(table)
    ref, _ = metric_reference(metric, reference)
    means = [d["mean"] for d in table if d["mean"] is not None]
    lo, hi = (min(means), max(means)) if means else (None, None)
    rows, styles = [], []
    for s in scales:
        row, st = [fmt(s)], [""]
        for i in inits:
            d = cell.get((s, i))
            row.append(_cell_text(d))
            if d is None or d["mean"] is None:
                st.append("")
            elif ref is not None:
                st.append(_shade(goodness(d["mean"], metric, ref)))
            else:
                st.append(_color(d["mean"], lo, hi, higher))
        rows.append(row)
        styles.append(st)
    return html_table(["scale"] + inits, rows, styles=styles)


def build_report(store, metric="final_loss", figures=None, figure_note=None, title=None):
    """One self-contained HTML page: dataset, run counts, summary tables, figures, and the grids' settings.

    Parameters
    ----------
    store : Store
    metric : str
    figures : list of (str, str, bytes), optional
        ``(caption, format, data)`` with format ``"png"`` (embedded as base64) or ``"svg"`` (inlined).
    figure_note : str, optional
        Shown instead of figures (e.g. why there are none).
    title : str, optional

    Returns
    -------
    str
    """
    meta = store.meta()
    from .symmetry_facts import COLUMNS as SYMMETRY_COLUMNS
    rows = store.fetch(columns=SYMMETRY_COLUMNS)       # what the symmetry section reads; the tables come by SQL
    reference = reference_values(meta.get("dataset"), store)
    from . import store_summary
    s = store_summary.summarize(store, metric, baseline=reference)     # by SQL, as grid and show make it
    m, c = s["metric"], s["counts"]
    direction = "higher is better" if s["higher_is_better"] else "lower is better"
    title = title or f"fastmlp grid report: {store.path.name}"
    parts = [f"<h1>{_esc(title)}</h1>",
             f'<p class="meta">Database <code>{_esc(store.path.name)}</code>, created {_esc(meta.get("created_at"))} '
             f'with fastmlp {_esc(meta.get("fastmlp_version"))}; report generated {_esc(time.strftime("%Y-%m-%d %H:%M"))}.'
             f"</p>"]
    ds = meta.get("dataset", {})
    parts.append("<h2>Dataset</h2>")
    parts.append(f"<p>{_esc(describe_dataset(ds))}</p>")
    parts.append(html_table(["setting", "value"], [[k, _json_text(v)] for k, v in ds.items()], left=(0, 1)))
    parts.append("<h2>Runs</h2>")
    parts.append(html_table(["runs", "trained to the end", "diverged", "failed"],
                            [[c["runs"], c["done"], c["diverged"], c["failed"]]], left=()))
    factors = sorted({g["settings"].get("diverge_factor", "unset") for g in store.grids()}, key=str)
    rule = ", ".join("off" if f is None else "not recorded" if f == "unset" else f"{f:g}" for f in factors)
    parts.append(f"<p>Diverged: the loss became NaN or infinite, or the final training loss ended above K times the "
                 f"initial loss (<code>--diverge-factor</code> K: {_esc(rule or 'not recorded')}). Diverged and "
                 f"failed runs are counted, and left out of every mean.</p>")
    if s["config_columns"]:
        parts.append(f"<p>Settings that vary: {_esc(', '.join(s['config_columns']))} (and seed). Metric: "
                     f"<code>{_esc(m)}</code> ({direction}); statistics over runs that trained to the end.</p>")
    by = s["config_columns"]
    for name, part in (("Best", s["best"]), ("Worst", s["worst"])):
        if part:
            parts.append(f"<h2>{name} configurations by {_esc(m)}</h2>")
            headers = list(by) + [f"mean {m}", "std", "min", "max", "n", "diverged", "failed"]
            cells = [[fmt(d[col], col) for col in by] + [fmt(d["mean"]), fmt(d["std"]), fmt(d["min"]),
                                                        fmt(d["max"]), d["n"], d["diverged"], d["failed"]]
                     for d in part]
            parts.append(html_table(headers, cells, left=tuple(range(len(by)))))
    if s["by_init_scale"]:
        note = f" pooled over {', '.join(s['pooled'])};" if s["pooled"] else ""
        parts.append(f"<h2>{_esc(m)} by init scheme × scale</h2>")
        _, ref_text = metric_reference(m, reference)
        colour = (f"Colour: how much better than learning nothing, read against {ref_text}: red is no better, "
                  f"green is perfect." if ref_text else
                  "Colour: from the table's worst (red) to its best (green); no reference value is known for "
                  "this metric.")
        parts.append(f"<p>Mean ± standard deviation over seeds;{_esc(note)} (kx): k runs diverged or failed and are "
                     f"left out. {_esc(colour)}</p>")
        parts.append(pivot_html(s["by_init_scale"], m, s["higher_is_better"], reference))
        order = {sc: i for i, sc in enumerate(SCHEMES)}
        with store_summary.Selection(store) as sel:
            by_init = store_summary.aggregate(sel, ["init"], m)
        diverged = sorted(by_init, key=lambda d: (order.get(d["init"], len(order)), d["init"]))
        parts.append("<h3>Divergence by init scheme</h3>")
        parts.append(html_table(["init", "runs", "diverged", "failed"],
                                [[d["init"], d["n"], d["diverged"], d["failed"]] for d in diverged]))
    parts += symmetry_html(rows, reference)
    parts.append("<h2>Figures</h2>")
    if figures:
        for caption, kind, data in figures:
            if kind == "svg":
                svg = data.decode("utf-8")
                svg = svg[svg.find("<svg"):] if "<svg" in svg else svg
                parts.append(f"<figure>{svg}<figcaption>{_esc(caption)}</figcaption></figure>")
            else:
                b64 = base64.b64encode(data).decode("ascii")
                parts.append(f'<figure><img alt="{_esc(caption)}" src="data:image/png;base64,{b64}">'
                             f"<figcaption>{_esc(caption)}</figcaption></figure>")
    else:
        parts.append(f'<p class="note">{_esc(figure_note or "No figures.")}</p>')
    parts.append("<h2>Grid settings</h2>")
    grids = store.grids()
    if not grids:
        parts.append("<p>No grid invocation recorded.</p>")
    for g in grids:
        parts.append(f"<h3>Grid {g['id']}: {_esc(g['state'])}, started {_esc(g['started_at'])}</h3>")
        if g.get("state_note"):
            parts.append(f'<p class="note">{_esc(g["state_note"])}.</p>')
        parts.append(f'<pre class="cmd">{_esc(g["command"] or "")}</pre>')
        trained = g["n_trained"] or 0
        secs = f", {g['seconds']:.1f} s" if g.get("seconds") else ""
        parts.append(f"<p>{g['n_runs']} runs: {g['n_skipped']} already stored, {trained} trained{secs}.</p>")
        settings = dict(g["settings"])
        if isinstance(settings.get("hidden"), list):       # architectures as --hidden takes them
            settings["hidden"] = [architecture_label(h) for h in settings["hidden"]]
        parts.append(html_table(["setting", "value"], [[k, _json_text(v)] for k, v in settings.items()],
                                left=(0, 1)))
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{_esc(title)}</title>\n'
            f"<style>{_CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")


def symmetry_html(rows, reference):
    """The report's symmetry section: per init scheme, how the hidden units ended and what the seeds changed
    (:func:`fastmlp.symmetry_facts.symmetry_facts`), and distinct units by scheme x scale."""
    from .symmetry_facts import FATES, fraction_text, symmetry_facts
    facts = symmetry_facts(rows, (reference or {}).get("loss"))
    if not facts["schemes"]:
        if any(r.get("depth") for r in rows):
            return ["<h2>Symmetry: did the hidden units stay copies?</h2>",
                    '<p class="note">No run recorded its diagnostics (the grid ran with --no-diagnostics); a grid '
                    'with --diagnostics into another database (-o) records them.</p>']
        return []
    parts = ["<h2>Symmetry: did the hidden units stay copies?</h2>",
             "<p>From each run's diagnostics: <i>never moved</i> = no weight changed (only biases learned); "
             "<i>copies</i> = every hidden layer ended with one distinct unit (it acts as one unit); <i>partly "
             "distinct</i> = some layer has fewer distinct units than units; <i>all distinct</i> = the symmetry "
             "is broken. Distinct units are counted exactly (bit for bit)"
             + (f"; pooled over {_esc(', '.join(facts['pooled']))}" if facts["pooled"] else "") + ".</p>"]
    headers = ["init", "runs"] + list(FATES) + ["distinct units (mean)", "distance moved (median)",
                                                "seeds identical"]
    cells = [[d["init"], d["runs"]] + [f"{d[f]} ({fraction_text(d[f] / d['runs'])})" if d[f] else "0"
                                        for f in FATES]
             + [fraction_text(d["mean_distinct"]), fmt(d["median_distance"]),
                f"{d['same_across_seeds']} of {d['configs']}" if d["configs"] else "-"]
             for d in facts["schemes"]]
    parts.append(html_table(headers, cells))
    parts.append("<ul>" + "".join(f"<li><b>{_esc(d['init'])}</b>: {_esc(d['reading'])}</li>"
                                  for d in facts["schemes"]) + "</ul>")
    cell = facts["by_init_scale"]
    inits = [d["init"] for d in facts["schemes"]]
    scales = sorted({k[1] for k in cell})
    rows_, styles = [], []
    for sc in scales:
        rows_.append([fmt(sc)] + [fraction_text(cell.get((i, sc))) for i in inits])
        styles.append([""] + [_shade(cell[(i, sc)]) if (i, sc) in cell else "" for i in inits])
    layers = sorted({k[1] for k in facts["by_init_layer"]})
    if len(layers) > 1:
        parts.append("<h3>Distinct hidden units by init scheme × layer</h3>")
        parts.append("<p>Mean over runs of the fraction of distinct units in each hidden layer (layer 1 is the "
                     "first; runs without that layer are left out).</p>")
        per_layer = facts["by_init_layer"]
        parts.append(html_table(["init"] + [f"layer {k}" for k in layers],
                                [[i] + [fraction_text(per_layer.get((i, k))) for k in layers] for i in inits],
                                styles=[[""] + [_shade(per_layer[(i, k)]) if (i, k) in per_layer else ""
                                                for k in layers] for i in inits]))
    parts.append("<h3>Distinct hidden units by init scheme × scale</h3>")
    parts.append("<p>Mean over runs of the fraction of distinct units per hidden layer (100%: every unit "
                 "distinct; 1/width: the layer is one unit in disguise). Colour: red for copies, green for "
                 "fully broken symmetry.</p>")
    parts.append(html_table(["scale"] + inits, rows_, styles=styles))
    return parts


def _json_text(v):
    if v is None:
        return "-"
    if isinstance(v, (list, tuple)):
        return ", ".join(_json_text(x) for x in v)
    if isinstance(v, dict):
        return ", ".join(f"{k}={_json_text(x)}" for k, x in v.items()) or "-"
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)
