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

from .grid import METRICS, hidden_label
from .spec import SCHEMES

PLOT_KINDS = ("heatmap", "scale", "curves")
PLOT_FORMATS = ("png", "svg")
AXIS_COLUMNS = ("scale", "depth", "width", "hidden", "lr", "init", "activation", "optimizer", "momentum",
                "weight_decay", "dropout", "batch_size", "steps", "dtype", "seed", "sigma_w2", "sigma_b2")
_Y_PREFERENCE = ("depth", "hidden", "width", "lr", "activation", "optimizer", "init", "batch_size", "momentum",
                 "weight_decay", "dropout", "steps", "dtype")
MAX_PANELS = 12


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
        return hidden_label(tuple(int(w) for w in str(value).split(",") if w and w != "0"))
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


def heatmap(rows, metric="final_loss", x="scale", y=None):
    """The mean of ``metric`` over cells of two settings.

    Parameters
    ----------
    rows : list of dict
        Runs from :meth:`fastmlp.store.Store.fetch`.
    metric : str
    x, y : str
        Settings across and down (``y`` default: :func:`default_y`).

    Returns
    -------
    matplotlib.figure.Figure
    """
    Figure = require_matplotlib()
    y = y or default_y(rows, x)
    xs, ys = _sorted_values(rows, x), _sorted_values(rows, y)
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
    fig = Figure(figsize=(min(16, max(6.0, 2.5 + 0.55 * len(xs))), min(12, 2.2 + 0.45 * len(ys))),
                 layout="constrained")
    ax = fig.add_subplot()
    cmap = "viridis" if METRICS.get(metric, False) else "viridis_r"
    finite = grid[np.isfinite(grid)]
    norm = None
    if finite.size and finite.min() > 0 and finite.max() / finite.min() > 20:
        from matplotlib.colors import LogNorm
        norm = LogNorm(finite.min(), finite.max())
    im = ax.imshow(np.ma.masked_invalid(grid), aspect="auto", cmap=cmap, origin="lower", interpolation="nearest",
                   norm=norm)
    ax.set_facecolor("#dddddd")
    fig.colorbar(im, ax=ax, label=f"mean {metric}")
    ax.set_xticks(range(len(xs)), [_label(x, v) for v in xs], rotation=45 if len(xs) > 6 else 0,
                  ha="right" if len(xs) > 6 else "center")
    ax.set_yticks(range(len(ys)), [_label(y, v) for v in ys])
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    if len(xs) * len(ys) <= 150:
        for (i, j), v in np.ndenumerate(grid):
            if np.isfinite(v):
                good_dark = (im.norm(v) > 0.5) == (cmap == "viridis_r")
                ax.text(j, i, f"{v:.3g}", ha="center", va="center", fontsize=7,
                        color="white" if good_dark else "black")
            elif bad[i, j]:
                ax.text(j, i, "div", ha="center", va="center", fontsize=7, color="#aa0000")
    ax.set_title(f"{metric}: mean over seeds and other settings\n(grey: no run trained to the end)", fontsize=9)
    return fig


def _facet_column(rows, exclude):
    for c in ("hidden", "lr", "activation", "optimizer", "batch_size", "momentum", "weight_decay", "dropout",
              "steps", "dtype"):
        if c not in exclude and 1 < len({r[c] for r in rows}) <= MAX_PANELS:
            return c
    return None


def _panels(n):
    cols = min(n, 3)
    return cols, -(-n // cols)


def scale_curves(rows, metric="final_loss", facet="auto"):
    """``metric`` against scale, one line per init scheme with a band over seeds.

    Parameters
    ----------
    rows : list of dict
    metric : str
    facet : str or None
        A setting to split into panels; ``"auto"`` picks the first other varying one (or none).

    Returns
    -------
    matplotlib.figure.Figure
    """
    Figure = require_matplotlib()
    if facet == "auto":
        facet = _facet_column(rows, ("init", "scale", "seed"))
    panels = _sorted_values(rows, facet) if facet else [None]
    cols, nrows = _panels(len(panels))
    fig = Figure(figsize=(4.6 * cols + 1.5, 3.6 * nrows), layout="constrained")
    inits = _init_order({r["init"] for r in rows})
    colors = {i: f"C{k % 10}" for k, i in enumerate(inits)}
    axes = []
    for p, value in enumerate(panels):
        ax = fig.add_subplot(nrows, cols, p + 1, sharey=axes[0] if axes else None)
        axes.append(ax)
        sub = [r for r in rows if facet is None or r[facet] == value]
        for init in inits:
            # per configuration (scale and the pooled settings), the mean over seeds; then per scale the mean
            # of those, with the band from the lowest to the highest single run
            pts = {}
            for r in _ok([r for r in sub if r["init"] == init], metric):
                pts.setdefault(r["scale"], []).append(r[metric])
            if not pts:
                continue
            xs = sorted(pts)
            mean = [float(np.mean(pts[s])) for s in xs]
            lo = [float(np.min(pts[s])) for s in xs]
            hi = [float(np.max(pts[s])) for s in xs]
            ax.plot(xs, mean, "-o", ms=3, color=colors[init], label=init)
            ax.fill_between(xs, lo, hi, color=colors[init], alpha=0.18, linewidth=0)
        _scale_axis(ax, [r["scale"] for r in sub])
        ax.set_xlabel("init scale")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        if facet:
            ax.set_title(f"{facet} = {_label(facet, value)}", fontsize=10)
    if inits:
        axes[-1].legend(fontsize=8, title="init", title_fontsize=8)
    fig.suptitle(f"{metric} against init scale (line: mean over seeds; band: lowest to highest seed)",
                 fontsize=10)
    return fig


def loss_curves(rows, max_panels=MAX_PANELS):
    """Loss curves: a panel per init scheme, a line per scale (median over seeds and other settings).

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
    fig = Figure(figsize=(4.6 * cols + 1.5, 3.4 * nrows), layout="constrained")
    axes = []
    all_positive = True
    for p, init in enumerate(inits):
        ax = fig.add_subplot(nrows, cols, p + 1, sharey=axes[0] if axes else None)
        axes.append(ax)
        for s in scales:
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
                ax.plot(np.arange(n) * every, med, color=cmap(norm(s)), lw=1.2)
        ax.set_title(f"init = {init}", fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.grid(alpha=0.3)
    if all_positive:
        axes[0].set_yscale("log")
    sm = cm.ScalarMappable(norm=norm, cmap=cmap)
    fig.colorbar(sm, ax=axes, label="init scale")
    fig.suptitle("Loss curves (median over seeds and other settings; loss of the batch at each recorded step)",
                 fontsize=10)
    return fig


def figure_bytes(fig, fmt="png", dpi=110):
    """The figure rendered as PNG or SVG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi)
    return buf.getvalue()


def make_figures(store, kinds=PLOT_KINDS, metric="final_loss", x="scale", y=None, filters=None):
    """The figures of a database: ``[(kind, caption, Figure)]``.

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
    rows = store.fetch(curves="curves" in kinds, filters=filters)
    if not rows:
        raise ValueError("the database holds no runs (matching the filters) to plot")
    out = []
    for k in kinds:
        if k == "heatmap":
            yy = y or default_y(rows, x)
            out.append((k, f"Heatmap of mean {metric} over {x} and {yy}.", heatmap(rows, metric, x, yy)))
        elif k == "scale":
            out.append((k, f"{metric} against init scale per init scheme; band from the lowest to the highest "
                           f"seed.", scale_curves(rows, metric)))
        else:
            out.append((k, "Loss curves per init scheme, coloured by init scale (median over seeds).",
                        loss_curves(rows)))
    return out
