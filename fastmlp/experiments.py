"""The classic initialisation experiments as presets of the grid machinery, each with its analysis.

Every experiment is a list of grids (:class:`fastmlp.grid.GridSpec` settings) over one dataset, trained by
:func:`fastmlp.run.execute` into one results database (resumable: rerunning skips what is stored), then read
back and analysed with the mean-field theory (:mod:`fastmlp.theory`) beside the measurement:

``schoenholz``
    Deep tanh networks with weights N(0, sigma_w2 / fan_in) and biases N(0, sigma_b2 = 0.05): training accuracy
    after a fixed SGD budget over sigma_w2 x depth. Schoenholz et al. (2017) found networks trainable iff
    depth < k xi_c(sigma_w2), xi_c the correlation depth scale; :func:`fit_boundary` fits k.
``he-xavier``
    Deep ReLU networks, He vs Xavier and scales around them; theory: chi_1 = sigma_w2 / 2 per layer.
``saxe``
    Deep linear networks, orthogonal vs Gaussian: steps to a target loss against depth (Saxe et al. 2014).
``lsuv``
    LSUV (Mishkin & Matas 2015) against He, Xavier and orthogonal starts on a deep network.
``symmetry``
    The table of ``fastmlp symmetry`` (zeros, constant, tiny, Xavier, He, large, constant + dropout).

Sizes: ``small`` finishes in minutes on a laptop with no data file; ``full`` is the published scale (a GPU or
a cluster job); ``tiny`` (not advertised) is the smoke test's.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

EXPERIMENTS = ("schoenholz", "he-xavier", "saxe", "lsuv", "symmetry")
SIZES = ("small", "full")
ALL_SIZES = SIZES + ("tiny",)
SCHOENHOLZ_SIGMA_B2 = 0.05
PUBLISHED_K = {"paper": 6.0, "reproduction_200_steps": 4.5}


class ExperimentError(ValueError):
    """A bad experiment request (unknown name or size, a dataset it cannot use), naming the option at fault."""

    def __init__(self, option, message):
        super().__init__(f"{option}: {message}" if option else message)
        self.option, self.message = option, message


@dataclass
class Preset:
    """An experiment at one size: its grids (settings dicts) and what its analysis needs."""
    name: str
    size: str
    grids: list
    params: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------ data

def _data_settings(size, defaults, dataset=None, data_file=None, data_dir=None, data_options=None,
                   n_samples=None, mnist_defaults=None):
    """The dataset settings of a preset: its default, MNIST when only a file or directory is given, or the
    user's own dataset."""
    if dataset is None and (data_file is not None or data_dir is not None):
        dataset = "mnist"
    if dataset is None:
        d = dict(defaults)
    elif dataset in ("mnist", "fashion_mnist"):
        d = dict(mnist_defaults or {"data_options": {"pixels": "centered"}}, dataset=dataset)
    else:
        d = {"dataset": dataset}
    d["data_options"] = dict(d.get("data_options", {}), **(data_options or {}))
    if data_file is not None:
        d["data_file"] = str(data_file)
    if data_dir is not None:
        d["data_dir"] = str(data_dir)
    if n_samples is not None:
        d["n_samples"] = int(n_samples)
    if d.get("dataset") in ("mnist", "fashion_mnist") and "data_file" not in d and "data_dir" not in d:
        from .realdata import expected_files
        raise ExperimentError("--data-file", f"this experiment at size {size!r} trains on {d['dataset']}: "
                                             f"{expected_files(d['dataset'])}")
    return d


def _depths(values, width):
    """Architectures ``WIDTHxD`` for each depth D."""
    return [f"{width}x{d}" for d in values]


# ------------------------------------------------------------------------------------------------ presets

def _schoenholz(size, steps, data):
    if size == "full":
        sw2, depths, width, batch, lr, n_steps, seeds = "lin:1:4:90", range(10, 101), 300, 256, 1e-3, 200, [0]
        defaults = {"dataset": "mnist", "data_options": {"pixels": "centered"}}
    elif size == "small":
        sw2, depths, width, batch, lr, n_steps, seeds = "lin:1:4:13", range(4, 65, 4), 64, 64, 1e-2, 200, [0]
        defaults = {"dataset": "digits_like", "n_samples": 512}
    else:
        sw2, depths, width, batch, lr, n_steps, seeds = "1,1.75,2.5,4", (2, 6, 24), 12, 32, 5e-2, 40, [0]
        defaults = {"dataset": "digits_like", "n_samples": 96}
    mnist = {"n_samples": 2048} if size == "small" else {"n_samples": 96} if size == "tiny" else {}
    d = _data_settings(size, defaults, mnist_defaults=dict(mnist, data_options={"pixels": "centered"}), **data)
    grid = dict(d, hidden=_depths(depths, width), activation="tanh", optimizer="sgd", batch_size=str(batch),
                lr=str(lr), steps=str(steps or n_steps), init="meanfield", sigma_w2=sw2,
                sigma_b2=str(SCHOENHOLZ_SIGMA_B2), seeds=list(seeds), diagnostics=False)
    return [grid], {"sigma_b2": SCHOENHOLZ_SIGMA_B2, "width": width}


def _he_xavier(size, steps, data):
    if size == "full":
        depths, width, scales, n_steps, n = range(10, 51, 5), 128, "0.5,0.7071,1,1.4142,2", 500, None
        seeds = [0, 1, 2, 3, 4]
    elif size == "small":
        depths, width, scales, seeds, n_steps, n = range(10, 51, 10), 48, "0.7071,1,1.4142", [0, 1], 200, 512
    else:
        depths, width, scales, seeds, n_steps, n = (2, 10), 8, "0.7071,1.4142", [0], 20, 64
    defaults = {"dataset": "digits_like", "n_samples": n} if n else {"dataset": "digits_like"}
    d = _data_settings(size, defaults, mnist_defaults={"n_samples": n, "data_options": {"pixels": "centered"}},
                       **data)
    grid = dict(d, hidden=_depths(depths, width), activation="relu", optimizer="sgd", batch_size="64",
                lr="0.01", steps=str(steps or n_steps), init="he_normal,xavier_normal", scale=scales,
                seeds=seeds, diagnostics=True)
    return [grid], {"width": width}


SAXE_LR_LADDER = (0.05, 0.1, 0.2, 0.4)     # learning rates x depth: the best of them stands for the optimum


def _saxe(size, steps, data):
    if size == "full":
        depths, width, seeds, n_steps = (1, 2, 4, 8, 16, 32, 64, 128), 64, [0, 1, 2, 3, 4], 4000
    elif size == "small":
        depths, width, seeds, n_steps = (1, 2, 4, 8, 16, 32), 24, [0, 1], 1000
    else:
        depths, width, seeds, n_steps = (1, 4), 8, [0], 150
    defaults = {"dataset": "teacher", "n_samples": 256 if size != "tiny" else 64,
                "data_options": {"activation": "linear", "task": "regression", "n_outputs": 8, "n_features": 16}}
    d = _data_settings(size, defaults, **data)
    grids = []
    for depth in depths:
        # one grid per depth: its own learning-rate ladder (c / depth), as the largest stable rate falls with depth
        lrs = ",".join(f"{c / depth:.6g}" for c in SAXE_LR_LADDER)
        grids.append(dict(d, hidden=f"{width}x{depth}", activation="linear", optimizer="sgd", batch_size="full",
                          lr=lrs, steps=str(steps or n_steps), init="orthogonal,lecun_normal", seeds=seeds,
                          target_loss="10%", diagnostics=False))
    return grids, {"width": width, "depths": list(depths)}


def _lsuv(size, steps, data):
    if size == "full":
        depth, width, seeds, n_steps, n = 30, 128, [0, 1, 2, 3, 4], 1000, None
    elif size == "small":
        depth, width, seeds, n_steps, n = 20, 48, [0, 1, 2], 300, 512
    else:
        depth, width, seeds, n_steps, n = 6, 8, [0], 20, 64
    defaults = {"dataset": "digits_like", "n_samples": n} if n else {"dataset": "digits_like"}
    d = _data_settings(size, defaults, mnist_defaults={"n_samples": n, "data_options": {"pixels": "centered"}},
                       **data)
    grid = dict(d, hidden=f"{width}x{depth}", activation="tanh,relu", optimizer="sgd", batch_size="64",
                lr="0.01", steps=str(steps or n_steps), init="lsuv,he_normal,xavier_normal,orthogonal",
                seeds=seeds, target_loss="50%", diagnostics=False)
    return [grid], {"width": width, "depth": depth}


# the starts of ``fastmlp symmetry``, as grid settings: (label, init, scale, dropout)
SYMMETRY_GRID_STARTS = (
    ("zeros", "zeros", 1.0, 0.0), ("constant", "constant", 1.0, 0.0), ("tiny random", "normal", 0.01, 0.0),
    ("xavier", "xavier_normal", 1.0, 0.0), ("he", "he_normal", 1.0, 0.0), ("large random", "normal", 10.0, 0.0),
    ("constant + dropout", "constant", 1.0, 0.2),
)


def _symmetry(size, steps, data):
    if size == "tiny":
        hidden, n_steps, defaults = "4", 60, {"dataset": "spirals", "n_samples": 80}
    else:
        hidden, n_steps, defaults = "16", 3000 if size == "small" else 10000, {"dataset": "spirals"}
    d = _data_settings(size, defaults, **data)
    common = dict(d, hidden=hidden, activation="tanh", optimizer="sgd", batch_size="full", lr="0.5",
                  steps=str(steps or n_steps), seeds=[0], diagnostics=True)
    grids = [dict(common, init="zeros,constant,xavier_normal,he_normal", scale="1", dropout="0"),
             dict(common, init="normal", scale="0.01,10", dropout="0"),
             dict(common, init="constant", scale="1", dropout="0.2")]
    return grids, {"hidden": [int(h) for h in hidden.split("x")]}


_PRESETS = {"schoenholz": _schoenholz, "he-xavier": _he_xavier, "saxe": _saxe, "lsuv": _lsuv,
            "symmetry": _symmetry}


def preset(name, size="small", *, steps=None, dataset=None, data_file=None, data_dir=None, data_options=None,
           n_samples=None):
    """The grids of experiment ``name`` at ``size``.

    Parameters
    ----------
    name : {"schoenholz", "he-xavier", "saxe", "lsuv", "symmetry"}
    size : {"small", "full", "tiny"}
    steps : int, optional
        Replaces the preset's training budget (steps per network).
    dataset, data_file, data_dir, data_options, n_samples : optional
        Replace the preset's dataset, as the options of ``fastmlp grid`` do. A ``data_file`` or ``data_dir``
        without ``dataset`` means MNIST (pixels in [-0.5, 0.5]).

    Returns
    -------
    Preset
    """
    if name not in _PRESETS:
        raise ExperimentError(None, f"unknown experiment {name!r}; choose one of: {', '.join(EXPERIMENTS)}")
    if size not in ALL_SIZES:
        raise ExperimentError("--size", f"unknown size {size!r}; choose one of: {', '.join(SIZES)}")
    if steps is not None and (isinstance(steps, bool) or int(steps) != steps or steps <= 0):
        raise ExperimentError("--steps", f"must be a positive integer, got {steps!r}")
    data = dict(dataset=dataset, data_file=data_file, data_dir=data_dir, data_options=data_options,
                n_samples=n_samples)
    grids, params = _PRESETS[name](size, steps, data)
    return Preset(name, size, grids, params)


# ------------------------------------------------------------------------------------------------ running

def run_preset(p, out, *, backend="numba", progress=None, stop=None, command=None):
    """Train every grid of a preset into the database ``out`` (runs already stored are skipped).

    Parameters
    ----------
    p : Preset
    out : str or Path
        The results database.
    backend : str
    progress : fastmlp.run.Progress, optional
    stop : fastmlp.run.StopRequest, optional
    command : str, optional
        The command line recorded with each grid.

    Returns
    -------
    dict
        ``rows`` (every run of the preset, from the database), ``data`` (the :class:`~fastmlp.run.DataBundle`),
        ``trained``, ``skipped``, ``seconds``, ``interrupted`` (a signal name or None).
    """
    from .grid import GridSpec
    from .run import execute, pending_runs, plan_grid
    from .store import Store
    out = Path(out)
    t0 = time.perf_counter()
    plans = []
    for settings in p.grids:
        spec = GridSpec.from_settings(dict(settings, backend=backend, out=str(out)))
        plans.append(plan_grid(spec))
    store = Store.create(out, plans[0].data.identity)
    trained = skipped = 0
    interrupted = None
    try:
        for plan in plans:
            store._check(plan.data.identity)
            pending = pending_runs(plan, store)
            gid = store.begin_grid(command or f"fastmlp experiment {p.name} --size {p.size}", plan.spec.to_dict(),
                                   len(plan.runs), len(plan.runs) - len(pending))
            g0 = time.perf_counter()
            outcome = execute(plan, store, progress=progress, stop=stop, grid_id=gid)
            store.end_grid(gid, "interrupted" if outcome.interrupted else "finished", outcome.n_trained,
                           time.perf_counter() - g0)
            trained += outcome.n_trained
            skipped += outcome.n_skipped
            if outcome.interrupted:
                interrupted = outcome.interrupted
                break
        keys = [k for plan in plans for k in plan.keys]
        rows = store.fetch(keys=keys, curves=True)
    finally:
        store.close()
    return {"rows": rows, "data": plans[0].data, "plans": plans, "trained": trained, "skipped": skipped,
            "seconds": time.perf_counter() - t0, "interrupted": interrupted}


def chance_accuracy(d):
    """The accuracy of always predicting the most frequent class (NaN for regression)."""
    if d.task == "regression":
        return float("nan")
    y = np.asarray(d.y).astype(np.int64)
    return float(np.bincount(y).max() / y.size) if y.size else float("nan")


# ------------------------------------------------------------------------------------------------ analysis

def _finite(v):
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


def _best_k(ratio, trained):
    """The k minimising the errors of "trained iff ratio < k"; ties resolved to the median minimiser."""
    order = np.argsort(ratio, kind="stable")
    r, t = ratio[order], trained[order]
    n = r.size
    untrained_before = np.concatenate([[0], np.cumsum(~t)])
    trained_before = np.concatenate([[0], np.cumsum(t)])
    errors = untrained_before + (trained_before[-1] - trained_before)      # errors[m]: first m predicted trained
    # a cut between positions m-1 and m is realisable only where the ratios differ
    valid = np.ones(n + 1, dtype=bool)
    valid[1:n] = r[1:] > r[:-1]
    best = np.flatnonzero(valid & (errors == errors[valid].min()))
    m = int(best[(len(best) - 1) // 2])
    if m == 0:
        k = r[0]
    elif m == n:
        k = r[-1] * (1.0 + 1e-9) if r[-1] > 0 else 1e-9
    else:
        k = 0.5 * (r[m - 1] + r[m])
    return float(k), int(errors[m])


def fit_boundary(depth, xi, trained, n_boot=200, seed=0):
    """Fit k in "a network is trainable iff depth < k xi" to measured cells.

    Parameters
    ----------
    depth : array of int
        Depth of each cell (one trained network, or a cell's verdict).
    xi : array of float
        The depth scale at each cell (``inf`` where it diverges: the critical line, always "trainable").
    trained : array of bool
        Whether each cell trained.
    n_boot : int
        Bootstrap resamples (cells drawn with replacement) for the uncertainty.
    seed : int
        Seed of the bootstrap.

    Returns
    -------
    dict
        ``k`` (the multiplier with fewest misclassified cells, the middle of the best interval), ``k_se`` (the
        bootstrap standard deviation), ``k_low``/``k_high`` (the bootstrap's 2.5 and 97.5 percentiles),
        ``errors`` (misclassified cells at k), ``n_cells``, ``agreement`` (share of cells classified right),
        ``k_min``/``k_max`` (the smallest and largest depth/xi of the cells: k is bounded by them).
    """
    depth = np.asarray(depth, dtype=np.float64)
    xi = np.asarray(xi, dtype=np.float64)
    trained = np.asarray(trained, dtype=bool)
    if not (depth.shape == xi.shape == trained.shape) or depth.ndim != 1 or depth.size == 0:
        raise ValueError(f"depth, xi and trained must be 1-D of one length, got {depth.shape}, {xi.shape}, "
                         f"{trained.shape}")
    if np.any(np.isnan(xi)) or np.any(xi <= 0):
        raise ValueError("xi must be positive (inf allowed), got NaN or a non-positive value")
    ratio = np.where(np.isinf(xi), 0.0, depth / np.where(np.isinf(xi), 1.0, xi))
    k, errors = _best_k(ratio, trained)
    rng = np.random.default_rng(seed)
    boot = np.array([_best_k(ratio[i], trained[i])[0]
                     for i in (rng.integers(0, ratio.size, ratio.size) for _ in range(int(n_boot)))])
    finite = ratio[ratio > 0]
    return {"k": k, "k_se": float(boot.std(ddof=1)) if boot.size > 1 else float("nan"),
            "k_low": float(np.percentile(boot, 2.5)) if boot.size else float("nan"),
            "k_high": float(np.percentile(boot, 97.5)) if boot.size else float("nan"),
            "errors": errors, "n_cells": int(ratio.size), "agreement": 1.0 - errors / ratio.size,
            "k_min": float(finite.min()) if finite.size else 0.0, "k_max": float(ratio.max())}


def _sigma_w2_of(row):
    return float(row["sigma_w2"])


def _group_mean(rows, keys, value):
    """``{key tuple: mean of value over rows (NaN for a run without one)}``."""
    acc = {}
    for r in rows:
        v = r.get(value)
        acc.setdefault(tuple(r[k] for k in keys), []).append(float(v) if _finite(v) else float("nan"))
    return {k: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan") for k, v in acc.items()}


def analyse_schoenholz(rows, chance, sigma_b2=SCHOENHOLZ_SIGMA_B2, n_boot=200):
    """Training accuracy over sigma_w2 x depth beside xi_c; the fitted k.

    A run counts as trained when its training accuracy is at least halfway from ``chance`` to the best
    cell's mean accuracy (a diverged run is untrained). k is fitted on every run (seeds are cells of their own).
    """
    from . import theory
    sw2 = sorted({_sigma_w2_of(r) for r in rows})
    depths = sorted({int(r["depth"]) for r in rows})
    xi = {s: theory.xi_c("tanh", s, sigma_b2) for s in sw2}
    xi = {s: (float("inf") if v is None else float(v)) for s, v in xi.items()}
    acc = np.full((len(depths), len(sw2)), np.nan)
    means = _group_mean(rows, ("sigma_w2", "depth"), "train_accuracy")
    for (s, d), v in means.items():
        acc[depths.index(int(d)), sw2.index(float(s))] = v
    best = float(np.nanmax(acc)) if np.isfinite(acc).any() else float("nan")
    threshold = chance + 0.5 * (best - chance) if math.isfinite(best) else float("nan")
    run_acc = np.array([float(r["train_accuracy"]) if _finite(r.get("train_accuracy")) and r["status"] == "done"
                        else -1.0 for r in rows])
    trained = run_acc >= threshold
    fit = fit_boundary([int(r["depth"]) for r in rows], [xi[_sigma_w2_of(r)] for r in rows], trained,
                       n_boot=n_boot)
    # the deepest depth that trained at each sigma_w2 (mean over seeds), beside k xi_c
    deepest = []
    for j, s in enumerate(sw2):
        ok = [depths[i] for i in range(len(depths)) if acc[i, j] >= threshold]
        deepest.append(max(ok) if ok else None)
    return {"sigma_w2": sw2, "depths": depths, "accuracy": acc, "xi_c": [xi[s] for s in sw2],
            "chance": chance, "best": best, "threshold": threshold, "deepest_trained": deepest,
            "critical_sigma_w2": float(theory.critical_sigma_w2("tanh", sigma_b2)), "sigma_b2": sigma_b2,
            "fit": fit, "trained_fraction": float(trained.mean())}


def _relu_sigma_w2(init, scale):
    """sigma_w2 of a square hidden layer: He draws 2/fan_in, Xavier 2/(fan_in + fan_out) = 1/fan_in."""
    return (2.0 if init.startswith("he_") else 1.0) * scale * scale


def analyse_he_xavier(rows, chance):
    """Accuracy against depth per (init, scale), beside chi_1 = sigma_w2 / 2 and chi_1^depth."""
    from . import theory
    configs = sorted({(r["init"], float(r["scale"])) for r in rows})
    depths = sorted({int(r["depth"]) for r in rows})
    acc = _group_mean(rows, ("init", "scale", "depth"), "train_accuracy")
    ratio = _group_mean(rows, ("init", "scale", "depth"), "grad_ratio")
    diverged = {}
    for r in rows:
        key = (r["init"], float(r["scale"]), int(r["depth"]))
        diverged[key] = diverged.get(key, 0) + (r["status"] == "diverged")
    lines = []
    for init, scale in configs:
        s2 = _relu_sigma_w2(init, scale)
        chi = float(theory.point("relu", s2, 0.0)["chi_1"])
        lines.append({"init": init, "scale": scale, "sigma_w2": s2, "chi_1": chi,
                      "accuracy": [acc.get((init, scale, d), float("nan")) for d in depths],
                      "chi_1_power_depth": [chi ** d for d in depths],
                      "grad_ratio": [ratio.get((init, scale, d), float("nan")) for d in depths],
                      "diverged": [diverged.get((init, scale, d), 0) for d in depths]})
    return {"depths": depths, "lines": lines, "chance": chance}


def _product_singular_values(hidden, n_in, n_out, init, seed):
    """Singular values of the end-to-end matrix W_L ... W_1 of a deep linear network at initialisation."""
    from .init import init_params
    from .layout import Layout
    from .spec import Init, Network
    net = Network(n_in, tuple(hidden), n_out, "linear", "identity")
    layers = Layout(net.sizes).unpack(init_params(net, Init(init), seed))
    M = np.eye(n_in)
    for W, _ in layers:
        M = W @ M
    return np.linalg.svd(M, compute_uv=False)


def analyse_saxe(rows, n_in, n_out):
    """Steps to the target loss against depth, best learning rate per (init, depth, seed); the spread of the
    end-to-end singular values at initialisation beside it (1 for orthogonal at every depth)."""
    inits = sorted({r["init"] for r in rows})
    depths = sorted({int(r["depth"]) for r in rows})
    best = {}
    for r in rows:
        key = (r["init"], int(r["depth"]), int(r["seed"]))
        s = r.get("steps_to_target")
        v = float(s) if _finite(s) and r["status"] == "done" else float("inf")
        best[key] = min(best.get(key, float("inf")), v)
    out = []
    for init in inits:
        med, lo, hi, spread, reached = [], [], [], [], []
        for d in depths:
            vals = np.array([v for (i, dd, _), v in best.items() if i == init and dd == d])
            fin = vals[np.isfinite(vals)]
            reached.append(int(fin.size))
            med.append(float(np.median(vals)) if fin.size * 2 > vals.size else float("nan"))
            lo.append(float(fin.min()) if fin.size else float("nan"))
            hi.append(float(fin.max()) if fin.size else float("nan"))
            seeds = sorted({int(r["seed"]) for r in rows if r["init"] == init and int(r["depth"]) == d})
            hidden = [int(w) for w in next(r["hidden"] for r in rows if int(r["depth"]) == d).split(",")]
            sv = [_product_singular_values(hidden, n_in, n_out, init, s) for s in seeds]
            spread.append(float(np.mean([np.log10(v.max() / v.min()) for v in sv])))
        out.append({"init": init, "median_steps": med, "min_steps": lo, "max_steps": hi,
                    "seeds_reached": reached, "log10_singular_spread": spread})
    n_seeds = len({int(r["seed"]) for r in rows})
    return {"depths": depths, "lines": out, "n_seeds": n_seeds, "steps": int(rows[0]["steps"])}


def analyse_lsuv(rows):
    """Final loss and steps to target per (activation, init), mean and spread over seeds; median loss curves;
    chi_1 of the fixed schemes beside them (biases zero)."""
    from . import theory
    out = []
    for act in sorted({r["activation"] for r in rows}):
        for init in ("lsuv", "he_normal", "xavier_normal", "orthogonal"):
            rs = [r for r in rows if r["activation"] == act and r["init"] == init]
            if not rs:
                continue
            loss = np.array([float(r["final_loss"]) if _finite(r.get("final_loss")) else np.nan for r in rs])
            stt = np.array([float(r["steps_to_target"]) if _finite(r.get("steps_to_target")) else np.nan
                            for r in rs])
            curves = [np.asarray(r["curve"], dtype=np.float64) for r in rs if r.get("curve") is not None]
            curve = np.nanmedian(np.vstack(curves), axis=0) if curves else np.array([])
            # sigma_w2 of a square hidden layer (He 2, Xavier and orthogonal with gain 1: 1); LSUV is data-driven
            s2 = {"he_normal": 2.0, "xavier_normal": 1.0, "orthogonal": 1.0}.get(init)
            chi = float(theory.point(act, s2, 0.0)["chi_1"]) if s2 is not None else float("nan")
            out.append({"activation": act, "init": init, "sigma_w2": s2, "chi_1": chi,
                        "final_loss": _nanmean(loss),
                        "final_loss_min": _nanmin(loss), "final_loss_max": _nanmax(loss),
                        "steps_to_target": _nanmean(stt), "reached": int(np.isfinite(stt).sum()), "runs": len(rs),
                        "diverged": sum(r["status"] == "diverged" for r in rs), "curve": curve,
                        "record_every": int(rs[0]["record_every"])})
    return {"lines": out, "target_loss": float(rows[0]["target_loss"]), "steps": int(rows[0]["steps"])}


def _nanmean(v):
    return float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")


def _nanmin(v):
    return float(np.nanmin(v)) if np.isfinite(v).any() else float("nan")


def _nanmax(v):
    return float(np.nanmax(v)) if np.isfinite(v).any() else float("nan")


def _int_list(text):
    return [int(x) for x in str(text or "").split(",") if x not in ("", "nan")]


def _float_list(text):
    return [float(x) for x in str(text or "").split(",") if x != ""]


def analyse_symmetry(rows, hidden, baseline_loss):
    """The rows of ``fastmlp symmetry`` rebuilt from the database, with its reading of each."""
    from .cli import reading
    table = []
    for label, init, scale, dropout in SYMMETRY_GRID_STARTS:
        r = next((r for r in rows if r["init"] == init and float(r["scale"]) == scale
                  and float(r["dropout"]) == dropout), None)
        if r is None:
            continue
        row = {"init": label, "scheme": init, "scale": scale, "dropout": dropout, "status": r["status"],
               "diverged_step": r["diverged_step"],
               "final_loss": float(r["final_loss"]) if _finite(r.get("final_loss")) else None,
               "train_accuracy": float(r["train_accuracy"]) if _finite(r.get("train_accuracy")) else None,
               "distinct_units": _int_list(r.get("distinct_units")),
               "weights_moved": _int_list(r.get("weights_moved")),
               "saturated": _float_list(r.get("saturated_layers")),
               "effective_rank": _float_list(r.get("effective_rank")),
               "curve": r.get("curve"), "record_every": int(r["record_every"])}
        table.append(row)
    best = min((t["final_loss"] for t in table if t["final_loss"] is not None), default=float("inf"))
    for t in table:
        t["reading"] = reading(t, hidden, best)
    return {"rows": table, "baseline_loss": baseline_loss, "hidden": hidden}


# ------------------------------------------------------------------------------------------------ reports

def _f(v, fmt=".3g", none="-"):
    return format(v, fmt) if _finite(v) else none


def _summary_schoenholz(a, p, rows):
    fit = a["fit"]
    lines = [f"trained = training accuracy >= {a['threshold']:.3f} (halfway from chance {a['chance']:.3f} to the "
             f"best cell's {a['best']:.3f}); {a['trained_fraction']:.0%} of the runs trained",
             f"critical sigma_w2 (chi_1 = 1) at sigma_b2 = {a['sigma_b2']:g}: {a['critical_sigma_w2']:.4f}",
             "", f"{'sigma_w2':>9}{'xi_c':>9}{'deepest trained':>17}{'k xi_c':>9}"]
    for s, xi, d in zip(a["sigma_w2"], a["xi_c"], a["deepest_trained"]):
        lines.append(f"{s:>9.3f}{_f(xi, '.2f', 'inf'):>9}{(str(d) if d is not None else 'none'):>17}"
                     f"{_f(fit['k'] * xi, '.1f', 'inf'):>9}")
    lines += ["", f"fitted k = {fit['k']:.2f} ± {fit['k_se']:.2f} (bootstrap over runs, 95%: {fit['k_low']:.2f}.."
                  f"{fit['k_high']:.2f}); 'trainable iff depth < k xi_c' classifies {fit['agreement']:.0%} of "
                  f"{fit['n_cells']} runs right; it holds for this budget: {rows[0]['steps']} SGD steps, batch "
                  f"{rows[0]['batch_size'] or 'full'}, lr {rows[0]['lr']:g}",
              f"published: k ~ {PUBLISHED_K['paper']:g} (Schoenholz et al. 2017, long training), "
              f"~ {PUBLISHED_K['reproduction_200_steps']:g} (a public reproduction at 200 steps)"]
    js = {"k": fit["k"], "k_se": fit["k_se"], "k_low": fit["k_low"], "k_high": fit["k_high"],
          "agreement": fit["agreement"], "threshold": a["threshold"], "chance": a["chance"],
          "critical_sigma_w2": a["critical_sigma_w2"], "sigma_b2": a["sigma_b2"],
          "cells": [{"sigma_w2": s, "xi_c": (xi if math.isfinite(xi) else None), "deepest_trained": d}
                    for s, xi, d in zip(a["sigma_w2"], a["xi_c"], a["deepest_trained"])],
          "published_k": PUBLISHED_K}
    return lines, js


def _summary_he_xavier(a, p, rows):
    depths = a["depths"]
    head = f"{'init':<15}{'scale':>6}{'sigma_w2':>9}{'chi_1':>7}" + "".join(f"{'acc@' + str(d):>9}" for d in depths)
    lines = ["training accuracy after the budget; theory (mean field, ReLU): gradients scale by chi_1 = sigma_w2/2 "
             "per layer", "", head, "-" * len(head)]
    for ln in a["lines"]:
        lines.append(f"{ln['init']:<15}{ln['scale']:>6g}{ln['sigma_w2']:>9.3g}{ln['chi_1']:>7.3g}"
                     + "".join(f"{_f(v, '.3f', 'diverged' if n else '-'):>9}"
                               for v, n in zip(ln["accuracy"], ln["diverged"])))
    lines += ["", f"chi_1^depth at depth {depths[-1]}: " + ", ".join(
        f"{ln['init']} x{ln['scale']:g}: {ln['chi_1_power_depth'][-1]:.2g}" for ln in a["lines"]),
        "measured first/last layer gradient-norm ratio at the end of training: " + ", ".join(
        f"{ln['init']} x{ln['scale']:g}: {_f(ln['grad_ratio'][-1], '.2g')}" for ln in a["lines"])]
    js = {"depths": depths, "chance": a["chance"],
          "lines": [{k: v for k, v in ln.items()} for ln in a["lines"]]}
    return lines, js


def _summary_saxe(a, p, rows):
    depths = a["depths"]
    head = f"{'init':<14}" + "".join(f"{'d=' + str(d):>10}" for d in depths)
    lines = [f"steps to the target loss (10% of the best constant's), median over {a['n_seeds']} seed(s), best "
             f"learning rate per run; '-' = not reached in {a['steps']} steps", "", head, "-" * len(head)]
    for ln in a["lines"]:
        lines.append(f"{ln['init']:<14}" + "".join(f"{_f(v, '.0f'):>10}" for v in ln["median_steps"]))
    lines += ["", "theory beside it: spread of the end-to-end singular values at init, log10(s_max/s_min)"]
    for ln in a["lines"]:
        lines.append(f"{ln['init']:<14}" + "".join(f"{v:>10.2f}" for v in ln["log10_singular_spread"]))
    lines.append("Saxe et al. (2014): orthogonal hidden layers keep every singular value at 1 (an isometry; what "
                 "spread there is comes from the rectangular first and last layers, the same at every depth), so "
                 "learning time does not grow with depth; Gaussian ones spread them more with each layer and slow "
                 "down")
    return lines, {"depths": depths, "lines": a["lines"], "n_seeds": a["n_seeds"]}


def _summary_lsuv(a, p, rows):
    head = (f"{'activation':<11}{'init':<15}{'chi_1':>7}{'final loss':>12}{'(min..max)':>20}{'steps to target':>17}"
            f"{'reached':>9}")
    lines = [f"depth {p.params['depth']}, width {p.params['width']}, {a['steps']} steps; target loss "
             f"{a['target_loss']:.4g} (half the best constant's)", "", head, "-" * len(head)]
    for ln in a["lines"]:
        rng = f"{_f(ln['final_loss_min'], '.4f')}..{_f(ln['final_loss_max'], '.4f')}"
        lines.append(f"{ln['activation']:<11}{ln['init']:<15}{_f(ln['chi_1'], '.3g', 'data'):>7}"
                     f"{_f(ln['final_loss'], '.4f'):>12}{rng:>20}"
                     f"{_f(ln['steps_to_target'], '.0f'):>17}{str(ln['reached']) + '/' + str(ln['runs']):>9}")
    lines.append("theory beside it: chi_1 (mean field, square hidden layers, zero biases) of each fixed scheme; LSUV "
                 "rescales each layer to unit output variance on a minibatch instead, a data-driven chi_1 ~ 1")
    js = {"lines": [{k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in ln.items() if k != "curve"}
                    for ln in a["lines"]], "target_loss": a["target_loss"]}
    return lines, js


def _summary_symmetry(a, p, rows):
    head = f"{'init':<20}{'final loss':>11}{'accuracy':>10}  {'distinct units':<15}{'moved':<7} reading"
    lines = [f"class-prior loss (what a network that learns only its output bias reaches): "
             f"{a['baseline_loss']:.4f}", "", head, "-" * len(head)]
    for r in a["rows"]:
        lines.append(f"{r['init']:<20}{_f(r['final_loss'], '.4f'):>11}{_f(r['train_accuracy'], '.3f'):>10}  "
                     f"{','.join(map(str, r['distinct_units'])) + ' of ' + ','.join(map(str, a['hidden'])):<15}"
                     f"{'yes' if any(r['weights_moved']) else 'no':<7} {r['reading']}")
    js = {"baseline_loss": a["baseline_loss"],
          "rows": [{k: v for k, v in r.items() if k != "curve"} for r in a["rows"]]}
    return lines, js


def analyse(name, res, p):
    """The analysis of experiment ``name`` from :func:`run_preset`'s result."""
    rows, d = res["rows"], res["data"]
    if name == "schoenholz":
        return analyse_schoenholz(rows, chance_accuracy(d.train), p.params["sigma_b2"])
    if name == "he-xavier":
        return analyse_he_xavier(rows, chance_accuracy(d.train))
    if name == "saxe":
        return analyse_saxe(rows, d.n_inputs, d.n_outputs)
    if name == "lsuv":
        return analyse_lsuv(rows)
    return analyse_symmetry(rows, p.params["hidden"], d.baseline_loss)


_SUMMARIES = {"schoenholz": _summary_schoenholz, "he-xavier": _summary_he_xavier, "saxe": _summary_saxe,
              "lsuv": _summary_lsuv, "symmetry": _summary_symmetry}


def run_experiment(name, size="small", out="experiment.db", *, backend="numba", steps=None, figure=None,
                   progress=None, stop=None, command=None, **data):
    """Run experiment ``name`` at ``size`` into the database ``out``, analyse it and draw its figure.

    Parameters
    ----------
    name : str
        One of :data:`EXPERIMENTS`.
    size : {"small", "full"}
    out : str or Path
        The results database; rerunning with the same one trains only what is missing.
    backend : str
        The engine (``numba``, ``cuda``, ``numpy``).
    steps : int, optional
        Another training budget.
    figure : str or Path, optional
        Stem of the figure files (``STEM.png``, ``STEM.svg``); default the database's path without suffix.
    progress, stop, command
        As :func:`run_preset` takes them.
    **data
        Dataset settings, as :func:`preset` takes them.

    Returns
    -------
    dict
        ``experiment``, ``size``, ``database``, ``dataset``, ``runs``, ``trained``, ``already_stored``,
        ``seconds``, ``steps``, ``figures`` (``{"png": path, "svg": path}``, or None without matplotlib),
        ``figure_error``, ``interrupted``, ``text`` (the report's lines) and the experiment's own findings
        (``schoenholz``: ``k``, ``k_se``, ...).
    """
    p = preset(name, size, steps=steps, **data)
    res = run_preset(p, out, backend=backend, progress=progress, stop=stop, command=command)
    rows = res["rows"]
    out_d = {"experiment": name, "size": size, "database": str(out), "dataset": res["data"].identity,
             "runs": len(rows), "trained": res["trained"], "already_stored": res["skipped"],
             "seconds": round(res["seconds"], 3), "steps": int(rows[0]["steps"]) if rows else steps,
             "interrupted": res["interrupted"], "figures": None, "figure_error": None}
    if res["interrupted"]:
        return out_d
    a = analyse(name, res, p)
    lines, js = _SUMMARIES[name](a, p, rows)
    from .experiment_figures import FIGURES
    from .plots import MissingDependency
    stem = Path(figure) if figure is not None else Path(out).with_suffix("")
    try:
        png, svg = FIGURES[name](a, stem)
        out_d["figures"] = {"png": png, "svg": svg}
    except MissingDependency as e:
        out_d["figure_error"] = str(e)
    except (ValueError, OverflowError) as e:
        # results that matplotlib cannot draw (e.g. nothing finite) must not hide the findings printed below
        out_d["figure_error"] = f"{type(e).__name__}: {e}"
    out_d.update(js)
    out_d["text"] = lines
    return out_d
