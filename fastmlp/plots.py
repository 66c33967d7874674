"""Figures of a results database (matplotlib, an optional extra: ``pip install 'fastmlp[plot]'``).

Three kinds:

``heatmap``
    The mean of a metric over two settings (default: scale across, depth or another varying setting down).
``scale``
    A metric against the initialisation scale, one line per init scheme: the mean over seeds, and a band from the
    lowest to the highest seed. One panel per value of a further varying setting (``facet``).
``curves``
    Loss curves: one panel per init scheme, one line per scale (the median over seeds), coloured by scale.

Only the object-oriented API is used (``Figure`` + the Agg canvas): no global pyplot state, no display needed.
Runs that diverged or failed are left out of the statistics.
"""
from __future__ import annotations

import io
import math
import warnings

import numpy as np

from .grid import METRICS, architecture_label
from .spec import SCHEMES

PLOT_KINDS = ("heatmap", "scale", "curves")
PLOT_FORMATS = ("png", "svg")
AXIS_COLUMNS = ("scale", "depth", "width", "hidden", "lr", "init", "activation", "optimizer", "momentum",
                "weight_decay", "dropout", "batch_size", "steps", "dtype", "seed", "sigma_w2", "sigma_b2")
_Y_PREFERENCE = ("depth", "hidden", "width", "lr", "activation", "optimizer", "init", "batch_size", "momentum",
                 "weight_decay", "dropout", "steps", "dtype")
MAX_PANELS = 12
MAX_WIDTH = 11.0       # inches: a figure's widest


class MissingDependency(RuntimeError):
    """An optional dependency (matplotlib, pyarrow) is not installed."""


def require_matplotlib():
    """The matplotlib ``Figure`` class, or :class:`MissingDependency` with the install command."""
    try:
        from matplotlib.figure import Figure
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401  (the canvas PNGs need)
    except ImportError:
        raise MissingDependency("plots need matplotlib, which is not installed: pip install 'fastmlp[plot]' "
                                "(or pip install matplotlib)") from None
    return Figure


def _label(column, value):
    if column == "hidden":
        return architecture_label(value)
    if column == "batch_size" and value is None:
        return "full"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _init_order(values):
    order = {s: i for i, s in enumerate(SCHEMES)}
    return sorted(values, key=lambda s: (order.get(s, len(order)), str(s)))


def _sorted_values(rows, column):
    values = {r[column] for r in rows}
    if column == "init":
        return _init_order(values)
    if column == "hidden":
        return sorted(values, key=lambda v: (len(str(v).split(",")), [int(w) for w in str(v).split(",")]))
    return sorted(values, key=lambda v: (v is None, v if v is not None else 0))


def _ok(rows, metric):
    return [r for r in rows if r["status"] == "done" and r.get(metric) is not None
            and math.isfinite(r[metric])]


def default_y(rows, x):
    """The setting a heatmap puts down its side: the first that varies, preferring the architecture (as depth
    when depth alone tells the architectures apart) and then the learning rate."""
    def n(c):
        return len({r[c] for r in rows})
    for c in _Y_PREFERENCE:
        if c == x or n(c) < 2:
            continue
        if c == "depth" and (n("hidden") != n("depth") or x in ("hidden", "width")):
            continue
        if c in ("hidden", "width") and x == "depth":
            continue
        return c
    return "init" if x != "init" else "seed"


def _scale_axis(ax, values):
    """Log (or symlog, with zero) x axis for positive values spanning more than a decade."""
    pos = [v for v in values if v is not None and v > 0]
    if not pos:
        return
    if max(pos) / min(pos) > 20:
        if any(v == 0 for v in values):
            ax.set_xscale("symlog", linthresh=min(pos))
        else:
            ax.set_xscale("log")


# line styles: colour, marker and dash all differ between neighbours, so that lines that coincide (zeros and
# constant starts often do) stay visible
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*", "h")
_DASHES = ("-", "--", "-.", ":", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 1)))


def line_style(k):
    """The k-th line's style: a colour, a marker and a dash pattern."""
    return {"color": f"C{k % 10}", "marker": _MARKERS[k % len(_MARKERS)], "linestyle": _DASHES[k % len(_DASHES)]}


def pooled_columns(rows, shown):
    """The settings that vary in ``rows`` but are not shown (``shown``: axes, panels, lines; seed aside)."""
    from .store import CONFIG_COLUMNS
    shown = list(shown)
    if ("depth" in shown and len({r["depth"] for r in rows}) == len({r["hidden"] for r in rows})) or \
            ("width" in shown and len({r["width"] for r in rows}) == len({r["hidden"] for r in rows})):
        shown.append("hidden")       # depth (or width) alone tells the architectures apart
    return [c for c in CONFIG_COLUMNS if c not in shown and len({r[c] for r in rows}) > 1]


def pooled_text(rows, shown, seeds=True):
    """``mean over seeds; pooled over lr, activation`` for a figure's title."""
    pooled = pooled_columns(rows, shown)
    text = "mean over seeds" if seeds else "median over seeds"
    return text + (f"; pooled over {', '.join(pooled)}" if pooled else "")


def _cell_means(rows, metric, x, y, xs, ys):
    grid = np.full((len(ys), len(xs)), np.nan)
    bad = np.zeros((len(ys), len(xs)), dtype=int)
    xi = {v: i for i, v in enumerate(xs)}
    yi = {v: i for i, v in enumerate(ys)}
    sums = {}
    for r in rows:
        cell = (yi[r[y]], xi[r[x]])
        if r["status"] != "done" or r.get(metric) is None:
            bad[cell] += 1
            continue
        sums.setdefault(cell, []).append(r[metric])
    for cell, v in sums.items():
        grid[cell] = float(np.mean(v))
    return grid, bad


def heatmap(rows, metric="final_loss", x="scale", y=None, facet="auto", reference=None):
    """The mean of ``metric`` over cells of two settings, one panel per init scheme.

    Parameters
    ----------
    rows : list of dict
        Runs from :meth:`fastmlp.store.Store.fetch`.
    metric : str
    x, y : str
        Settings across and down (``y`` default: :func:`default_y`).
    facet : str or None
        A panel per value of this setting; ``"auto"``: ``init`` when it varies and is not an axis, so that
        init schemes are never pooled silently.
    reference : float, optional
        The class-prior loss or chance accuracy: the colour scale's bad end is anchored there.

    Returns
    -------
    matplotlib.figure.Figure
    """
    Figure = require_matplotlib()
    y = y or default_y(rows, x)
    if facet == "auto":
        facet = "init" if "init" not in (x, y) and len({r["init"] for r in rows}) > 1 else None
    panels = _sorted_values(rows, facet)[:MAX_PANELS] if facet else [None]
    xs, ys = _sorted_values(rows, x), _sorted_values(rows, y)
    grids = []
    for value in panels:
        sub = [r for r in rows if facet is None or r[facet] == value]
        grids.append(_cell_means(sub, metric, x, y, xs, ys))
    cols, nrows = _panels(len(panels), 2)
    # at most MAX_WIDTH inches wide, so that a page (or the report, 1100 px) shows it near its own size and
    # the tick labels stay readable
    w = min(5.2, max(3.2, 1.6 + 0.42 * len(xs)), (MAX_WIDTH - 1.2) / cols)
    h = min(4.5, max(2.2, 1.2 + 0.36 * len(ys)))
    fig = Figure(figsize=(w * cols + 1.2, h * nrows + 0.9), layout="constrained")
    higher = METRICS.get(metric, False)
    cmap = "viridis" if higher else "viridis_r"
    finite = np.concatenate([g[np.isfinite(g)] for g, _ in grids]) if grids else np.zeros(0)
    norm = None
    from matplotlib.colors import LogNorm, Normalize
    if finite.size:
        lo, hi = float(finite.min()), float(finite.max())
        if reference is not None and math.isfinite(reference):
            # anchor the bad end at the reference (learning nothing), so that a column of no-learners does
            # not look good because one outlier stretched the range
            if higher:
                lo = min(lo, reference)
            else:
                hi = max(hi, reference)
        if lo > 0 and hi / lo > 20 and not higher:
            norm = LogNorm(lo, hi)
        else:
            norm = Normalize(lo, hi if hi > lo else lo + 1e-12)
    axes, im = [], None
    for p, (value, (grid, bad)) in enumerate(zip(panels, grids)):
        ax = fig.add_subplot(nrows, cols, p + 1)
        axes.append(ax)
        im = ax.imshow(np.ma.masked_invalid(grid), aspect="auto", cmap=cmap, origin="lower",
                       interpolation="nearest", norm=norm)
        ax.set_facecolor("#dddddd")
        rotate = len(xs) > 5
        ax.set_xticks(range(len(xs)), [_label(x, v) for v in xs], rotation=45 if rotate else 0,
                      ha="right" if rotate else "center", fontsize=8)
        ax.set_yticks(range(len(ys)), [_label(y, v) for v in ys], fontsize=8)
        ax.set_xlabel(x)
        if p % cols == 0:
            ax.set_ylabel(y)
        if facet:
            ax.set_title(f"{facet} = {_label(facet, value)}", fontsize=10)
        if len(xs) * len(ys) <= 120:
            for (i, j), v in np.ndenumerate(grid):
                if np.isfinite(v):
                    dark = (im.norm(v) > 0.5) == (cmap == "viridis_r")
                    ax.text(j, i, f"{v:.2g}", ha="center", va="center", fontsize=6.5,
                            color="white" if dark else "black")
                elif bad[i, j]:
                    ax.text(j, i, "div", ha="center", va="center", fontsize=6.5, color="#aa0000")
    if im is not None:
        label = f"mean {metric}" + (f" (bad end at {reference:.3g}: learning nothing)" if reference is not None
                                    else "")
        fig.colorbar(im, ax=axes, label=label, shrink=0.9)
    shown = [x, y] + ([facet] if facet else [])
    fig.suptitle(f"{metric} over {x} x {y}" + (f", one panel per {facet}" if facet else "")
                 + f"\n({pooled_text(rows, shown)}; grey: no run trained to the end)", fontsize=10)
    return fig


def _facet_columns(rows, exclude):
    """The settings to split into panels: every varying one among the learning-rate, activation and
    architecture kind, as long as their combinations fit :data:`MAX_PANELS`."""
    chosen = []
    for c in ("activation", "lr", "hidden", "optimizer", "batch_size", "momentum", "weight_decay", "dropout",
              "steps", "dtype"):
        if c in exclude or len({r[c] for r in rows}) < 2:
            continue
        combos = len({tuple(r[k] for k in chosen + [c]) for r in rows})
        if combos <= MAX_PANELS:
            chosen.append(c)
    return chosen


def _facet_column(rows, exclude):
    cols = _facet_columns(rows, exclude)
    return cols[0] if cols else None


def _panels(n, most=3):
    cols = min(n, most)
    return cols, -(-n // cols)


def scale_curves(rows, metric="final_loss", facet="auto", reference=None):
    """``metric`` against scale, one line per init scheme with a band over seeds; one panel per combination of
    the other settings that vary (activation, learning rate, architecture, ...), as far as they fit.

    Parameters
    ----------
    rows : list of dict
    metric : str
    facet : str, list of str or None
        Settings to split into panels; ``"auto"`` picks every varying one that fits (see the title for what is
        pooled).
    reference : float, optional
        Drawn as a grey line: the class-prior loss or chance accuracy.

    Returns
    -------
    matplotlib.figure.Figure
    """
    Figure = require_matplotlib()
    if facet == "auto":
        facets = _facet_columns(rows, ("init", "scale", "seed"))
    else:
        facets = [facet] if isinstance(facet, str) else list(facet or [])
    keys = sorted({tuple(r[c] for c in facets) for r in rows},
                  key=lambda k: tuple((v is None, str(type(v)), v if v is not None else 0) for v in k)) \
        if facets else [()]
    cols, nrows = _panels(len(keys))
    fig = Figure(figsize=(min(4.4 * cols, MAX_WIDTH - 1.8) + 1.8, 3.3 * nrows + 0.8), layout="constrained")
    inits = _init_order({r["init"] for r in rows})
    styles = {i: line_style(k) for k, i in enumerate(inits)}
    axes, handles = [], {}
    for p, key in enumerate(keys):
        ax = fig.add_subplot(nrows, cols, p + 1, sharey=axes[0] if axes else None)
        axes.append(ax)
        sub = [r for r in rows if tuple(r[c] for c in facets) == key]
        for init in inits:
            pts = {}
            for r in _ok([r for r in sub if r["init"] == init], metric):
                pts.setdefault(r["scale"], []).append(r[metric])
            if not pts:
                continue
            xs = sorted(pts)
            mean = [float(np.mean(pts[s])) for s in xs]
            lo = [float(np.min(pts[s])) for s in xs]
            hi = [float(np.max(pts[s])) for s in xs]
            st = styles[init]
            (line,) = ax.plot(xs, mean, ms=4, lw=1.3, label=init, markerfacecolor="none", **st)
            handles[init] = line
            ax.fill_between(xs, lo, hi, color=st["color"], alpha=0.15, linewidth=0)
        if reference is not None:
            ref = ax.axhline(reference, color="0.45", lw=1, ls=(0, (2, 2)), zorder=0)
            handles.setdefault("_ref", ref)
        _scale_axis(ax, [r["scale"] for r in sub])
        ax.set_xlabel("init scale")
        if p % cols == 0:
            ax.set_ylabel(metric)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        if facets:
            ax.set_title(", ".join(f"{c} = {_label(c, v)}" for c, v in zip(facets, key)), fontsize=9)
    labels = [i for i in inits if i in handles]
    lines = [handles[i] for i in labels]
    if "_ref" in handles:
        lines.append(handles["_ref"])
        labels.append("learning nothing")
    if lines:       # outside the axes: a legend never covers data
        fig.legend(lines, labels, loc="outside right upper", fontsize=8, title="init", title_fontsize=8)
    fig.suptitle(f"{metric} against init scale (line: {pooled_text(rows, ['init', 'scale'] + facets)}; band: "
                 f"lowest to highest run)", fontsize=10)
    return fig


def loss_curves(rows, max_panels=MAX_PANELS):
    """Loss curves: a panel per init scheme, a line per scale (median over seeds and the pooled settings).

    Parameters
    ----------
    rows : list of dict
        Runs fetched with ``curves=True``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    Figure = require_matplotlib()
    import matplotlib
    from matplotlib import cm, colors as mcolors
    inits = _init_order({r["init"] for r in rows})[:max_panels] or ["(none)"]
    scales = sorted({r["scale"] for r in rows}) or [1.0]
    pos = [s for s in scales if s > 0]
    if len(pos) == len(scales) and len(pos) > 1 and max(pos) / min(pos) > 20:
        norm = mcolors.LogNorm(min(pos), max(pos))
    else:
        norm = mcolors.Normalize(min(scales), max(scales) if max(scales) > min(scales) else min(scales) + 1)
    cmap = matplotlib.colormaps["plasma"]
    cols, nrows = _panels(len(inits))
    fig = Figure(figsize=(min(4.4 * cols, MAX_WIDTH - 1.5) + 1.5, 3.2 * nrows + 0.8), layout="constrained")
    axes = []
    all_positive = True
    for p, init in enumerate(inits):
        ax = fig.add_subplot(nrows, cols, p + 1, sharey=axes[0] if axes else None)
        axes.append(ax)
        for k, s in enumerate(scales):
            curves = {}
            for r in rows:
                if r["init"] == init and r["scale"] == s and r["status"] != "failed" and len(r["curve"]):
                    curves.setdefault((len(r["curve"]), r["record_every"]), []).append(r["curve"])
            for (n, every), cs in curves.items():
                with warnings.catch_warnings():       # all-NaN steps after every seed diverged
                    warnings.simplefilter("ignore", RuntimeWarning)
                    med = np.nanmedian(np.vstack(cs).astype(float), axis=0)
                if np.any(np.isfinite(med) & (med <= 0)):
                    all_positive = False
                ax.plot(np.arange(n) * every, med, color=cmap(norm(s) * 0.9), lw=1.2,
                        linestyle=_DASHES[k % len(_DASHES)], marker=_MARKERS[k % len(_MARKERS)], ms=3,
                        markevery=max(1, n // 6), markerfacecolor="none")
        ax.set_title(f"init = {init}", fontsize=10)
        ax.set_xlabel("step")
        if p % cols == 0:
            ax.set_ylabel("training loss")
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    if all_positive:
        axes[0].set_yscale("log")
    sm = cm.ScalarMappable(norm=norm, cmap=cmap)
    fig.colorbar(sm, ax=axes, label="init scale", shrink=0.9)
    pooled = pooled_columns(rows, ["init", "scale"])
    fig.suptitle("Loss curves, one line per init scale (median over seeds"
                 + (f"; pooled over {', '.join(pooled)}" if pooled else "")
                 + "; loss of the batch at each recorded step)", fontsize=10)
    return fig


def figure_bytes(fig, fmt="png", dpi=110):
    """The figure rendered as PNG or SVG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi)
    return buf.getvalue()


def write_pdf(figures, path):
    """Several figures as the pages of one PDF file."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.backends.backend_pdf import PdfPages
    with PdfPages(str(path)) as pdf:
        for fig in figures:
            FigureCanvasAgg(fig)
            pdf.savefig(fig)


def make_figures(store, kinds=PLOT_KINDS, metric="final_loss", x="scale", y=None, filters=None):
    """The figures of a database: ``[(kind, caption, Figure)]``; each caption says what its figure pools.

    Raises
    ------
    MissingDependency
        Without matplotlib.
    ValueError
        For an unknown kind or axis.
    """
    require_matplotlib()
    for k in kinds:
        if k not in PLOT_KINDS:
            raise ValueError(f"unknown plot kind {k!r}; choose from: {', '.join(PLOT_KINDS)}")
    for name, col in (("x", x), ("y", y)):
        if col is not None and col not in AXIS_COLUMNS:
            raise ValueError(f"unknown {name} axis {col!r}; choose from: {', '.join(AXIS_COLUMNS)}")
    from .store import CONFIG_COLUMNS
    # only what the figures read: a third of the columns, so a large database's runs take a third of the memory
    columns = list(dict.fromkeys(AXIS_COLUMNS + CONFIG_COLUMNS + ("status", "record_every", metric)
                                 + (("curve",) if "curves" in kinds else ())))
    rows = store.fetch(columns=columns, curves="curves" in kinds, filters=filters)
    if not rows:
        raise ValueError("the database holds no runs (matching the filters) to plot")
    from .report import metric_reference, reference_values
    reference, _ = metric_reference(metric, reference_values(store.meta().get("dataset"), store))
    out = []
    for k in kinds:
        if k == "heatmap":
            yy = y or default_y(rows, x)
            facet = "init" if "init" not in (x, yy) and len({r["init"] for r in rows}) > 1 else None
            shown = [x, yy] + ([facet] if facet else [])
            out.append((k, f"Heatmap of {metric} over {x} and {yy}" + (", one panel per init scheme" if facet else "")
                        + f" ({pooled_text(rows, shown)}).",
                        heatmap(rows, metric, x, yy, facet=facet, reference=reference)))
        elif k == "scale":
            facets = _facet_columns(rows, ("init", "scale", "seed"))
            out.append((k, f"{metric} against init scale per init scheme"
                           + (f", one panel per {' x '.join(facets)}" if facets else "")
                           + f" ({pooled_text(rows, ['init', 'scale'] + facets)}); band from the lowest to the "
                             f"highest run" + ("; dashed grey: learning nothing." if reference is not None else "."),
                        scale_curves(rows, metric, reference=reference)))
        else:
            pooled = pooled_columns(rows, ["init", "scale"])
            out.append((k, "Loss curves per init scheme, one line per init scale (median over seeds"
                           + (f"; pooled over {', '.join(pooled)}" if pooled else "") + ").",
                        loss_curves(rows)))
    return out
