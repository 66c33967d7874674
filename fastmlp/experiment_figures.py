"""Figures of the experiments (matplotlib, the extra ``fastmlp[plot]``), each saved as PNG and SVG.

Each function takes the analysis of :mod:`fastmlp.experiments` and a path stem, and returns the files it wrote.
Only the object-oriented API is used (no pyplot state, no display).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .plots import require_matplotlib


def _save(fig, stem):
    stem = Path(stem)
    paths = []
    for ext in ("png", "svg"):
        p = stem.with_name(stem.name + "." + ext)
        fig.savefig(p, dpi=130 if ext == "png" else None, bbox_inches="tight")
        paths.append(str(p))
    return paths


def _edges(values, log=False):
    v = np.log(values) if log else np.asarray(values, dtype=float)
    if v.size == 1:
        e = np.array([v[0] - 0.5, v[0] + 0.5])
    else:
        mid = 0.5 * (v[1:] + v[:-1])
        e = np.concatenate([[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]])
    return np.exp(e) if log else e


def schoenholz(a, stem):
    """Heatmap of training accuracy over sigma_w2 x depth, with k xi_c(sigma_w2) for the fitted and published k."""
    from . import theory
    Figure = require_matplotlib()
    fig = Figure(figsize=(7.2, 5.0))
    ax = fig.add_subplot()
    sw2, depths = np.array(a["sigma_w2"]), np.array(a["depths"])
    mesh = ax.pcolormesh(_edges(sw2), _edges(depths), a["accuracy"], cmap="viridis", vmin=a["chance"],
                         vmax=max(a["best"], a["chance"] + 1e-9) if math.isfinite(a["best"]) else None,
                         shading="flat")
    fig.colorbar(mesh, ax=ax, label="training accuracy")
    # xi_c costs a 2-D quadrature per point: a coarse line plus the grid's own points, and the critical point
    fine = np.unique(np.concatenate([np.linspace(sw2.min(), sw2.max(), 40), sw2,
                                     [a["critical_sigma_w2"]] if sw2.min() < a["critical_sigma_w2"] < sw2.max()
                                     else []]))
    xi = np.array([theory.xi_c("tanh", s, a["sigma_b2"]) or np.inf for s in fine], dtype=float)
    top = _edges(depths)[-1]
    fit = a["fit"]
    from matplotlib import patheffects
    outline = [patheffects.withStroke(linewidth=3.6, foreground="black")]   # white line readable on a white legend
    ax.plot(fine, np.minimum(fit["k"] * xi, top * 2), "-", color="white", lw=2, path_effects=outline,
            label=f"fitted k = {fit['k']:.2f} ± {fit['k_se']:.2f}")
    ax.plot(fine, np.minimum(6.0 * xi, top * 2), "--", color="tab:red", lw=2, label="k = 6 (Schoenholz et al.)")
    ax.axvline(a["critical_sigma_w2"], color="tab:gray", ls=":", lw=1.5,
               label=f"critical $\\sigma_w^2$ = {a['critical_sigma_w2']:.3f}")
    ax.set_ylim(_edges(depths)[0], top)
    ax.set_xlim(_edges(sw2)[0], _edges(sw2)[-1])
    ax.set_xlabel(r"$\sigma_w^2$")
    ax.set_ylabel("depth (hidden layers)")
    ax.set_title(f"tanh, $\\sigma_b^2$ = {a['sigma_b2']:g}: trainable iff depth < k $\\xi_c$")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3, fontsize=8, frameon=False)
    return _save(fig, stem)


def he_xavier(a, stem):
    """Training accuracy against depth, one panel per scheme, one line per scale labelled with chi_1."""
    Figure = require_matplotlib()
    inits = sorted({ln["init"] for ln in a["lines"]})
    fig = Figure(figsize=(4.2 * len(inits), 3.8))
    axes = [fig.add_subplot(1, len(inits), i + 1) for i in range(len(inits))]
    import matplotlib
    cmap = matplotlib.colormaps["coolwarm"]
    chis = [ln["chi_1"] for ln in a["lines"]]
    lo, hi = math.log2(min(chis)), math.log2(max(chis))
    for ax, init in zip(axes, inits):
        for ln in (x for x in a["lines"] if x["init"] == init):
            t = 0.5 if hi == lo else (math.log2(ln["chi_1"]) - lo) / (hi - lo)
            ax.plot(a["depths"], ln["accuracy"], "o-", color=cmap(t),
                    label=f"x{ln['scale']:g}: $\\sigma_w^2$={ln['sigma_w2']:.2g}, $\\chi_1$={ln['chi_1']:.2g}")
        ax.axhline(a["chance"], color="0.6", ls=":", lw=1, label="chance")
        ax.set_title(f"ReLU, {init}")
        ax.set_xlabel("depth (hidden layers)")
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("training accuracy")
    return _save(fig, stem)


def saxe(a, stem):
    """Steps to the target loss against depth (median over seeds, band min..max) and the singular-value spread."""
    Figure = require_matplotlib()
    fig = Figure(figsize=(9.0, 3.8))
    ax, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for ln, color in zip(a["lines"], ("tab:blue", "tab:orange", "tab:green")):
        ax.plot(a["depths"], ln["median_steps"], "o-", color=color, label=ln["init"])
        ax.fill_between(a["depths"], ln["min_steps"], ln["max_steps"], color=color, alpha=0.2)
        ax2.plot(a["depths"], ln["log10_singular_spread"], "o-", color=color, label=ln["init"])
    ax.set_xscale("log", base=2)
    ax.set_xlabel("depth (hidden layers)")
    ax.set_ylabel("steps to target loss (best lr)")
    ax.set_title(f"deep linear nets, {a['n_seeds']} seed(s), budget {a['steps']}")
    ax.legend(fontsize=8)
    ax2.set_xscale("log", base=2)
    ax2.set_xlabel("depth (hidden layers)")
    ax2.set_ylabel(r"$\log_{10}(s_{max}/s_{min})$ of $W_L\cdots W_1$")
    ax2.set_title("end-to-end singular values at init")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, stem)


def lsuv(a, stem):
    """Median loss curves per start, one panel per activation."""
    Figure = require_matplotlib()
    acts = sorted({ln["activation"] for ln in a["lines"]})
    fig = Figure(figsize=(4.4 * len(acts), 3.8))
    for i, act in enumerate(acts):
        ax = fig.add_subplot(1, len(acts), i + 1)
        for ln in (x for x in a["lines"] if x["activation"] == act):
            c = ln["curve"]
            if c.size:
                ax.plot(np.arange(c.size) * ln["record_every"], c, label=ln["init"])
        ax.axhline(a["target_loss"], color="0.6", ls=":", lw=1, label="target loss")
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(f"{act}, median over seeds")
        ax.legend(fontsize=8)
        if i == 0:
            ax.set_ylabel("training loss")
    fig.tight_layout()
    return _save(fig, stem)


def symmetry(a, stem):
    """Loss curves of the canonical starts, the class-prior loss beside them."""
    Figure = require_matplotlib()
    fig = Figure(figsize=(7.0, 4.2))
    ax = fig.add_subplot()
    for r in a["rows"]:
        c = r["curve"]
        if c is not None and len(c):
            c = np.asarray(c, dtype=float)
            units = ",".join(map(str, r["distinct_units"]))
            ax.plot(np.arange(c.size) * r["record_every"], c, label=f"{r['init']} ({units} distinct)")
    ax.axhline(a["baseline_loss"], color="0.4", ls=":", lw=1.2, label="class prior (best constant)")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title(f"the symmetry story: hidden {a['hidden']}")
    ax.legend(fontsize=7)
    return _save(fig, stem)


FIGURES = {"schoenholz": schoenholz, "he-xavier": he_xavier, "saxe": saxe, "lsuv": lsuv, "symmetry": symmetry}
