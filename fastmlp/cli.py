"""The ``fastmlp`` command line. Commands are thin: they parse, call the library, and print."""
from __future__ import annotations

import json
import math
import sys

import click
import numpy as np

from . import data as _data
from .engine import BACKENDS
from .compile_cache import CompileWatch
from .spec import ACTIVATIONS, DTYPES, OPTIMIZERS, SCHEMES, Init, Network, Training, parse_hidden

# one learning rate everywhere (Training, train, grid); symmetry documents why it takes 0.5
DEFAULT_LR = Training().lr
from .cli_grid import GRID_COMMANDS


def hidden_option(value):
    try:
        return parse_hidden(value)
    except ValueError as e:
        extra = " (this command trains one architecture; grid takes several)" if "ambiguous" in str(e) else ""
        raise click.BadParameter(str(e) + extra, param_hint="'--hidden'") from None


def load_bundle(dataset, data_file, target, n_samples=None, data_seed=None, data_options=(), features=None,
                task=None, val_split=None, split_seed=None, data_dir=None):
    """The data of ``train`` and ``symmetry``, loaded as ``grid`` loads it (the same options and errors, which
    name the option at fault): a :class:`fastmlp.run.DataBundle` with ``train`` and ``val``."""
    from .grid import GridError, GridSpec
    from .run import load_data as load_grid_data
    settings = {"dataset": dataset, "data_file": data_file, "target": target, "n_samples": n_samples,
                "data_seed": data_seed, "data_options": list(data_options), "features": features, "task": task,
                "val_split": val_split, "split_seed": split_seed, "data_dir": data_dir}
    try:
        spec = GridSpec.from_settings({k: v for k, v in settings.items() if v is not None and v != []})
        return load_grid_data(spec)
    except GridError as e:
        if e.option:
            raise click.BadParameter(e.message, param_hint=f"'{e.option}'") from None
        raise click.UsageError(str(e)) from None


def load_data(dataset, data_file, target, n_samples=None, seed=0, data_dir=None, data_options=()):
    """The dataset a command names, or a usage error that says what is wrong."""
    return load_bundle(dataset, data_file, target, n_samples, data_seed=seed, data_options=data_options,
                       data_dir=data_dir).train


def usage_errors(fn):
    """Run ``fn``; a ValueError from the library becomes a usage error (exit status 2), not a traceback."""
    try:
        return fn()
    except ValueError as e:
        raise click.UsageError(str(e)) from None


def _fmt(x, nd=4):
    if x is None:
        return "-"
    if isinstance(x, float):
        return "nan" if math.isnan(x) else f"{x:.{nd}f}"
    return str(x)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fastmlp")
def main():
    """fastmlp: train thousands of small MLPs at once, to see how initial weights decide whether they learn.

    \b
    Start with:
      fastmlp symmetry                 # the symmetry story, measured, in one table
      fastmlp grid --dataset spirals --init zeros,constant,xavier_normal --scale log:0.1:10:5 --seeds 3
      fastmlp show                     # tables of results.db (grid's default database)
      fastmlp report -o report.html    # one page: tables, the symmetry section, figures
      fastmlp train --dataset xor --hidden 8 --init xavier_normal
      fastmlp bench --workload w1      # throughput against the NumPy reference
    """


def training_options(fn=None, *, steps=1000, lr=DEFAULT_LR, lr_note=""):
    if fn is None:
        return lambda f: training_options(f, steps=steps, lr=lr, lr_note=lr_note)
    opts = [
        click.option("--dataset", default="spirals", show_default=True,
                     help=f"One of {', '.join(_data.DATASETS)}, or a path to a .csv file."),
        click.option("--data-file", type=click.Path(dir_okay=False),
                     help="The file of 'titanic' or 'csv'; the Keras .npz of 'mnist' or 'fashion_mnist'."),
        click.option("--data-dir", type=click.Path(file_okay=False),
                     help="Directory of the IDX files (or .npz) of 'mnist' or 'fashion_mnist'."),
        click.option("--data-option", multiple=True, metavar="KEY=VALUE",
                     help="Further argument of the dataset, e.g. noise=0.2, pixels=centered (repeatable)."),
        click.option("--target", help="Target column of a CSV file."),
        click.option("--features", metavar="COLUMNS", help="Feature columns of a CSV file, comma-separated "
                     "(default: all but the target)."),
        click.option("--task", type=click.Choice(_data.TASKS), help="A CSV target's task (default: inferred; a "
                     "single-valued target needs --task regression), or the teacher dataset's."),
        click.option("--n-samples", type=click.IntRange(min=1),
                     help="Samples of a generated dataset, or a random subset of a real one."),
        click.option("--data-seed", type=click.IntRange(min=0), help="Seed of a generated dataset.  [default: 0]"),
        click.option("--val-split", metavar="FRACTION", help="Fraction held out to report validation loss and "
                     "accuracy (as grid does)."),
        click.option("--hidden", default="16", show_default=True, callback=lambda c, p, v: hidden_option(v),
                     help="Hidden layers: 16, 32x3 (3 layers of 32), 64-32 (64 then 32), 32x2-16; 0 for none."),
        click.option("--activation", type=click.Choice(ACTIVATIONS), default="tanh", show_default=True),
        click.option("--optimizer", type=click.Choice(OPTIMIZERS), default="sgd", show_default=True),
        click.option("--lr", type=float, default=lr, show_default=True, help="Learning rate (> 0)." + lr_note),
        click.option("--momentum", type=float, default=0.9, show_default=True, help="Momentum, or Adam's beta1."),
        click.option("--steps", type=click.IntRange(min=1), default=steps, show_default=True),
        click.option("--batch-size", type=click.IntRange(min=1), help="Minibatch size (default: full batch)."),
        click.option("--dropout", type=float, default=0.0, show_default=True, help="Dropout rate in [0, 1)."),
        click.option("--weight-decay", type=float, default=0.0, show_default=True),
        click.option("--dtype", type=click.Choice(DTYPES), default="float64", show_default=True),
        click.option("--backend", type=click.Choice(BACKENDS), default="numba", show_default=True),
        click.option("--record-every", type=click.IntRange(min=1), default=10, show_default=True,
                     help="Record the loss every k steps."),
        click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table."),
    ]
    for o in reversed(opts):
        fn = o(fn)
    return fn


def _training(optimizer, lr, momentum, steps, batch_size, dropout, weight_decay, record_every):
    return usage_errors(lambda: Training(optimizer, lr=lr, momentum=momentum, steps=steps, batch_size=batch_size,
                                         dropout=dropout, weight_decay=weight_decay, record_every=record_every))


def _check_backend(backend):
    from .engine import get_engine
    try:
        get_engine(backend)
    except (RuntimeError, ImportError) as e:
        raise click.UsageError(f"backend {backend!r} is not usable here: {e}") from None


def _run_summary(result, i, ds, dtype):
    """The per-network record of ``train`` and ``symmetry`` (the keys scripts rely on)."""
    from .diagnostics import diagnose
    from .evaluate import loss_and_accuracy
    from .train import as_targets
    net = result.network
    T = as_targets(net, ds.y, ds.n_samples, dtype)
    loss, acc = loss_and_accuracy(net, result.params[i:i + 1], ds.X, T)
    d = diagnose(net, result.params[i], ds.X, result.initial_params[i],
                 None if result.grad_norms is None else result.grad_norms[i])
    curve = result.curves[i]
    step = int(result.diverged_step[i])
    return {
        "final_loss": None if math.isnan(loss[0]) else float(loss[0]),
        "train_accuracy": None if math.isnan(acc[0]) else float(acc[0]),
        "status": str(result.status[i]),
        "diverged_step": None if step < 0 else step,
        "distinct_units": d["distinct_units"],
        "weights_moved": d["weights_moved"],
        "initial_loss": None if math.isnan(curve[0]) else float(curve[0]),
        "loss_curve": [None if math.isnan(v) else float(v) for v in curve],
        "record_every": result.training.record_every,
        "max_cosine": d["max_cosine"],
        "effective_rank": d["effective_rank"],
        "saturated": d["saturated"],
        "dead": d["dead"],
        "distance_moved": d["distance_moved"],
        "grad_norms": d.get("grad_norms"),
    }


def _json_safe(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def _layers_text(values, fmt_one, hidden=None):
    """``layer 1: 16 of 16, layer 2: 8 of 8`` from per-layer values (``none`` without hidden layers)."""
    if not values:
        return "none (no hidden layer)"
    return ", ".join(f"layer {i + 1}: {fmt_one(v, None if hidden is None else hidden[i])}"
                     for i, v in enumerate(values))


def train_table(out, hidden, reading_text, reference):
    """``fastmlp train``'s table: each diagnostic in words, per layer, and the one-line reading."""
    def num(v, nd):
        return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{nd}f}"
    lines = []
    status = "trained to the end" if out["status"] == "ok" else f"diverged at step {out['diverged_step']}"
    lines.append(f"status          {status}")
    prior = f" (learning nothing: {reference['loss']:.4f})" if reference.get("loss") is not None else ""
    chance = f" (chance: {reference['accuracy']:.3f})" if reference.get("accuracy") is not None else ""
    lines.append(f"final loss      {_fmt(out['final_loss'])}{prior}")
    lines.append(f"train accuracy  {_fmt(out['train_accuracy'], 3)}{chance}")
    if "val_accuracy" in out:
        lines.append(f"validation      loss {_fmt(out['val_loss'])}, accuracy {_fmt(out['val_accuracy'], 3)}")
    lines.append("distinct units  " + _layers_text(out["distinct_units"], lambda v, w: f"{v} of {w}", hidden))
    moved = out["weights_moved"]
    names = [f"layer {i + 1}" for i in range(len(moved) - 1)] + ["output"]
    lines.append("weights moved   " + ", ".join(f"{n} {'yes' if m else 'no'}" for n, m in zip(names, moved)))
    lines.append("max cosine      " + _layers_text(out["max_cosine"], lambda v, w: num(v, 3) if w != 1 else
                                                   "n/a (one unit)", hidden)
                 + "  (largest cosine similarity of two units' incoming weights; 1: copies)")
    lines.append("effective rank  " + _layers_text(out["effective_rank"], lambda v, w: f"{num(v, 2)} of {w}",
                                                   hidden) + "  (of the layer's activations)")
    lines.append(f"reading         {reading_text}")
    return "\n".join(lines)


@main.command()
@training_options
@click.option("--init", "scheme", type=click.Choice(SCHEMES), default="xavier_normal", show_default=True)
@click.option("--scale", type=float, default=1.0, show_default=True, help="Multiplier of the init's weights.")
@click.option("--init-value", type=float, default=0.5, show_default=True, help="The weight of --init constant.")
@click.option("--sigma-w2", type=float, default=1.0, show_default=True,
              help="Of --init meanfield: weights N(0, sigma_w2/fan_in).")
@click.option("--sigma-b2", type=float, default=0.0, show_default=True,
              help="Of --init meanfield: biases N(0, sigma_b2).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
def train(dataset, data_file, data_dir, data_option, target, features, task, n_samples, data_seed, val_split,
          hidden, activation, optimizer, lr, momentum, steps, batch_size, dropout, weight_decay, dtype, backend,
          record_every, as_json, scheme, scale, init_value, sigma_w2, sigma_b2, seed):
    """Train one network and print its loss curve summary and diagnostics, in words.

    Takes the dataset options grid takes (--data-option, --data-seed, --val-split, --features, --task).


    \b
    Examples:
      fastmlp train --dataset xor --hidden 8 --init zeros --json
      fastmlp train --dataset spirals --data-option arms=3 --hidden 16x2 --val-split 0.2
      fastmlp train --dataset titanic --data-file train.csv --hidden 4 --init constant --lr 0.01
    """
    from .evaluate import loss_and_accuracy
    from .report import reference_values
    from .train import train as train_one
    bundle = load_bundle(dataset, data_file, target, n_samples, data_seed, data_option, features, task,
                         val_split, data_dir=data_dir)
    ds = bundle.train
    net = usage_errors(lambda: Network(ds.n_features, hidden, ds.n_outputs, activation, ds.output))
    tr = _training(optimizer, lr, momentum, steps, batch_size, dropout, weight_decay, record_every)
    init = usage_errors(lambda: Init(scheme, scale=scale, value=init_value, sigma_w2=sigma_w2, sigma_b2=sigma_b2))
    _check_backend(backend)
    say = (lambda text: None) if as_json else (lambda text: click.echo(text, err=True))
    with CompileWatch(say, (dtype,), backend):
        res = usage_errors(lambda: train_one(net, ds.X, ds.y, init=init, seed=seed, training=tr, dtype=dtype,
                                             backend=backend, track_grad_norms=True))
    out = _run_summary(res, 0, ds, np.dtype(dtype))
    if bundle.val is not None:
        vl, va = loss_and_accuracy(net, res.params[:1], bundle.val.X, bundle.val.y)
        out.update(val_loss=None if math.isnan(vl[0]) else float(vl[0]),
                   val_accuracy=None if math.isnan(va[0]) else float(va[0]))
    out["reading"] = reading(out, hidden, out["final_loss"] if out["final_loss"] is not None else float("inf"),
                             mark_best=False)
    out.update(dataset=ds.name, hidden=list(hidden), activation=activation, init=scheme, scale=scale, seed=seed,
               optimizer=optimizer, lr=lr, steps=steps, dtype=dtype, backend=backend)
    if scheme == "meanfield":
        out.update(sigma_w2=sigma_w2, sigma_b2=sigma_b2)
    if as_json:
        click.echo(json.dumps(_json_safe(out)))
        return
    curve = [v for v in out["loss_curve"] if v is not None]
    click.echo(f"{ds.name} ({ds.n_samples} samples): {'-'.join(map(str, net.sizes))} {activation}, init {scheme} "
               f"x{scale:g}, {optimizer} lr={lr:g}, {steps} steps, {dtype}, {backend}")
    if curve:
        marks = np.linspace(0, len(curve) - 1, min(6, len(curve))).astype(int)
        click.echo("loss curve      " + "  ".join(f"{m * record_every}:{curve[m]:.4f}" for m in marks)
                   + "  (step:loss)")
    click.echo(train_table(out, hidden, out["reading"], reference_values(bundle.identity)))


SYMMETRY_STARTS = (
    ("zeros", Init("zeros"), 0.0),
    ("constant", Init("constant", value=0.5), 0.0),
    ("tiny random", Init("normal", std=0.01), 0.0),
    ("xavier", Init("xavier_normal"), 0.0),
    ("he", Init("he_normal"), 0.0),
    ("large random", Init("normal", std=10.0), 0.0),
    ("constant + dropout", Init("constant", value=0.5), 0.2),
)


def reading(row, width, best_loss, mark_best=True):
    """A one-line reading of a symmetry row, from its measured numbers."""
    if row["status"] == "diverged":
        return f"diverged at step {row['diverged_step']}"
    if not any(row["weights_moved"]):
        return "weights never moved: only the output bias learned (cost -> class prior)"
    if not width:
        return "no hidden layer: nothing to be symmetric (a convex model)"
    if all(d == 1 for d in row["distinct_units"]) and max(width) > 1:
        return "units stayed exact copies: each layer acts as a single unit"
    sat = [s for s in row["saturated"] if s == s]
    rank = [r for r in row["effective_rank"] if r == r]
    note = ""
    if rank and min(rank) < 1.5:
        note += f"; activations of effective rank {min(rank):.2f}: units still move together"
    if sat and max(sat) >= 0.5:
        note += f"; {max(sat):.0%} of activations saturated (vanishing gradients)"
    broken = "symmetry broken: all units distinct" if all(d == w for d, w in zip(row["distinct_units"], width)) \
        else f"symmetry partly broken: {row['distinct_units']} distinct"
    best = "; best final loss" if mark_best and row["final_loss"] is not None and row["final_loss"] <= best_loss \
        else ""
    return broken + note + best


@main.command()
@training_options(steps=3000, lr=0.5, lr_note=" 0.5 here, not 0.1 as elsewhere: full-batch SGD needs it to "
                  "learn the spirals within 3000 steps, so that the starts that can learn do.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
def symmetry(dataset, data_file, data_dir, data_option, target, features, task, n_samples, data_seed, val_split,
             hidden, activation, optimizer, lr, momentum, steps, batch_size, dropout, weight_decay, dtype, backend,
             record_every, as_json, seed):
    """The symmetry story, measured: canonical starts trained side by side in one engine call.

    Trains zeros, constant, tiny random (std 0.01), Xavier, He, large random (std 10) and constant + dropout
    (the --dropout value, 0.2 if not given) on a dataset where one hidden unit is not enough, and prints final
    loss, accuracy, distinct hidden units per layer, whether the weights moved, divergence and a reading.

    \b
    Examples:
      fastmlp symmetry
      fastmlp symmetry --dataset circles --hidden 8x2 --steps 3000 --json
    """
    from .init import init_batch
    from .train import train_batch
    if val_split is not None:
        raise click.BadParameter("symmetry trains and reads the whole dataset; use train --val-split for a "
                                 "validation score", param_hint="'--val-split'")
    ds = load_bundle(dataset, data_file, target, n_samples, data_seed, data_option, features, task,
                     data_dir=data_dir).train
    net = usage_errors(lambda: Network(ds.n_features, hidden, ds.n_outputs, activation, ds.output))
    tr = _training(optimizer, lr, momentum, steps, batch_size, 0.0, weight_decay, record_every)
    _check_backend(backend)
    p0 = init_batch(net, [s[1] for s in SYMMETRY_STARTS], [seed] * len(SYMMETRY_STARTS), dtype)
    drops = [(dropout or 0.2) if d else 0.0 for _, _, d in SYMMETRY_STARTS]
    say = (lambda text: None) if as_json else (lambda text: click.echo(text, err=True))
    with CompileWatch(say, (dtype,), backend):
        res = usage_errors(lambda: train_batch(net, ds.X, ds.y, p0, training=tr, dropout=drops,
                                               seeds=[seed] * len(SYMMETRY_STARTS), backend=backend,
                                               track_grad_norms=True))
    rows = []
    for i, (name, init, _) in enumerate(SYMMETRY_STARTS):
        r = _run_summary(res, i, ds, np.dtype(dtype))
        r.update(init=name, scheme=init.scheme, dropout=drops[i])
        rows.append(r)
    best = min((r["final_loss"] for r in rows if r["final_loss"] is not None), default=float("inf"))
    for r in rows:
        r["reading"] = reading(r, hidden, best)
    if as_json:
        click.echo(json.dumps(_json_safe(rows)))
        return
    click.echo(f"{ds.name} ({ds.n_samples} samples): {'-'.join(map(str, net.sizes))} {activation}, {optimizer} "
               f"lr={lr:g}, {steps} steps")
    head = f"{'init':<20}{'final loss':>11}{'accuracy':>10}  {'distinct units':<15}{'moved':<7}{'diverged':<9} reading"
    click.echo(head)
    click.echo("-" * len(head))
    for r in rows:
        click.echo(f"{r['init']:<20}{_fmt(r['final_loss']):>11}{_fmt(r['train_accuracy'], 3):>10}  "
                   f"{','.join(map(str, r['distinct_units'])) + ' of ' + ','.join(map(str, hidden)):<15}"
                   f"{'yes' if any(r['weights_moved']) else 'no':<7}"
                   f"{'step ' + str(r['diverged_step']) if r['diverged_step'] is not None else 'no':<9} "
                   f"{r['reading']}")


@main.command()
@click.option("--workload", type=click.Choice(["w1", "w2", "wide"]), default="w1", show_default=True)
@click.option("--dtype", type=click.Choice(DTYPES + ("both",)), default="both", show_default=True)
@click.option("--peers", default="numpy", show_default=True,
              help="Comma-separated peers to compare: numpy (reference loop), numpy-batched, torch, jax, or one "
                   "variant such as torch:bmm; 'none'.")
@click.option("--networks", type=click.IntRange(min=1), help="Networks in the workload (default: its own).")
@click.option("--steps", type=click.IntRange(min=1), help="Steps (default: the workload's).")
@click.option("--reference-networks", type=click.IntRange(min=1), default=None,
              help="Networks the slow loops time (their per-network cost does not depend on the others).")
@click.option("--repeat", type=click.IntRange(min=1), default=1, show_default=True, help="Timed runs; best kept.")
@click.option("--rounds", type=click.IntRange(min=1), default=1, show_default=True,
              help="Time the whole list this many times in turn, each implementation keeping its best (the table "
                   "adds the median over the rounds): on a shared machine whose speed drifts, all of them then "
                   "sample the same conditions.")
@click.option("--backend", type=click.Choice(["numba", "cuda"]), default="numba", show_default=True,
              help="fastmlp backend to time; with cuda the numba CPU engine is timed beside it, and the torch "
                   "peer on the GPU.")
@click.option("--cuda-path", type=click.Choice(["auto", "block", "chunk", "tiled", "all"]), default="auto",
              show_default=True,
              help="With --backend cuda: the CUDA path to time (a block per network; a thread per chunk of samples; "
                   "tiled products; auto picks by the network's size); all times each that applies, in rows of "
                   "their own.")
@click.option("--same-process", is_flag=True,
              help="Time every implementation in this process (default: each in a fresh process of its own).")
@click.option("--json", "as_json", is_flag=True, help="Print a list of JSON rows.")
def bench(workload, dtype, peers, networks, steps, reference_networks, repeat, rounds, backend, cuda_path,
          same_process, as_json):
    """Throughput of the engine against the NumPy reference and peers, in one run.

    \b
    Examples:
      fastmlp bench --workload w1
      fastmlp bench --workload w1 --dtype float64 --peers jax,torch --rounds 3
      fastmlp bench --workload w2 --dtype float32 --peers numpy,torch,jax --json
      fastmlp bench --workload w1 --networks 16384 --backend cuda --peers none
      fastmlp bench --workload wide --backend cuda --cuda-path all --peers torch:bmm
    """
    from .benchmark import check_peer, machine_peak, run_benchmark
    if cuda_path != "auto" and backend != "cuda":
        raise click.BadParameter(f"{cuda_path!r} is a CUDA path: it needs --backend cuda", param_hint="'--cuda-path'")
    if backend == "cuda":
        from .engine.cuda import check_available
        try:
            check_available()
        except RuntimeError as exc:
            raise click.BadParameter(str(exc), param_hint="'--backend'")
    names = [p for p in peers.split(",") if p and p != "none"]
    for p in names:
        try:
            check_peer(p)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="'--peers'")
    rows = []
    for dt in (DTYPES if dtype == "both" else (dtype,)):
        try:
            rows += run_benchmark(workload, dt, names, n_networks=networks, steps=steps,
                                  reference_networks=reference_networks, repeat=repeat, backend=backend,
                                  log=None if as_json else lambda m: click.echo(m, err=True),
                                  separate=not same_process, rounds=rounds,
                                  cuda_paths="all" if cuda_path == "all" else (cuda_path,))
        except RuntimeError as exc:  # fastmlp's own timing process failed
            raise click.ClickException(str(exc))
    if as_json:
        click.echo(json.dumps(_json_safe(rows)))
        return
    peak = machine_peak()
    click.echo(f"machine: {peak['description']}")
    if backend == "cuda":
        from .engine.cuda import gpu_peak
        gpu = gpu_peak()
        click.echo(f"gpu: {gpu['description'] if gpu else 'peak unknown (GPU rows: % peak left blank)'}")
    head = (f"{'impl':<24}{'workload':<9}{'dtype':<9}{'nets':>6}{'nets/s':>10}{'GFLOP/s':>9}{'% peak':>8}"
            f"{'compile s':>10}{'fastmlp x':>10}{'loss diff':>10}")
    # with several rounds, the median over them beside the best (a shared machine's speed drifts)
    click.echo(head + (f"{'median nets/s':>14}{'median x':>9}" if rounds > 1 else ""))
    for r in rows:
        if r.get("skipped"):
            click.echo(f"{r['impl']:<24}{r['workload']:<9}{r['dtype']:<9} skipped: {r['skipped']}")
            continue
        median = f"{r['nets_per_s_median']:>14.1f}{_fmt(r['fastmlp_speedup_median'], 1):>9}" if rounds > 1 else ""
        click.echo(f"{r['impl']:<24}{r['workload']:<9}{r['dtype']:<9}{r['networks']:>6}{r['nets_per_s']:>10.1f}"
                   f"{r['gflops']:>9.2f}{_fmt(r['pct_peak'], 1):>8}{_fmt(r['compile_s'], 2):>10}"
                   f"{_fmt(r['fastmlp_speedup'], 1):>10}{r['loss_max_rel_diff']:>10.1e}{median}")


@main.command()
def info():
    """Versions, threads, the compile cache, the CPU's peak and whether a GPU is usable."""
    from importlib.metadata import version

    import numba
    from .benchmark import machine_peak
    from .engine import cuda as cuda_engine
    peak = machine_peak()
    click.echo(f"fastmlp {__import__('fastmlp').__version__}, numpy {np.__version__}, numba {numba.__version__}, "
               f"click {version('click')}, python {sys.version.split()[0]}")
    click.echo(f"threads: {numba.get_num_threads()} (NUMBA_NUM_THREADS), threading layer: "
               f"{numba.config.THREADING_LAYER}")
    click.echo(f"cpu: {peak['description']}")
    import os
    from . import compile_cache
    cache = compile_cache.summary()
    state = (f"{cache['kernels']} compiled kernel files ({cache['bytes'] / 1024 ** 2:.1f} MB)" if cache["kernels"]
             else "empty: the first run compiles the kernels (tens of seconds) and stores them here")
    click.echo(f"compile cache: {'on' if cache['enabled'] else 'OFF (FASTMLP_NO_CACHE is set)'}, "
               f"{compile_cache.describe_dirs(cache['dirs'])}: {state}"
               + ("; NUMBA_CACHE_DIR=" + os.environ["NUMBA_CACHE_DIR"] if os.environ.get("NUMBA_CACHE_DIR") else ""))
    from .config import VECTOR_BYTES
    click.echo(f"simd: products on {VECTOR_BYTES}-byte vectors (FASTMLP_SIMD_BYTES=32|64 forces a width; "
               f"results do not depend on it)")
    import importlib.util
    click.echo("blas: limited to 1 thread during in-process grids (threadpoolctl), so that its idle threads do not "
               "spin against the engine's" if importlib.util.find_spec("threadpoolctl") else
               "blas: its own threads during grids; pip install threadpoolctl (it comes with scikit-learn) to limit "
               "them to 1, 1.1-1.4x faster on deep grids")
    gpu = cuda_engine.gpu_info()
    click.echo(f"gpu: {gpu if isinstance(gpu, str) else ', '.join(f'{k}={v}' for k, v in gpu.items())}")
    from .cluster import INSTALL, dask_available
    ok, dask_text = dask_available()
    click.echo(f"dask: {dask_text} (fastmlp grid --scheduler/--scheduler-file/--dask-workers)" if ok else
               f"dask: not importable ({dask_text}); for grids on a Dask cluster: {INSTALL}")
    from .config import env
    forced = {k: env(k) for k in ("FASTMLP_CUDA_PATH", "FASTMLP_CUDA_TILES", "FASTMLP_CUDA_THREADS") if env(k)}
    click.echo(f"cuda paths: chunk (a thread per chunk of samples), block (a block per network), tiled (tiled "
               f"products, tiles {','.join(map(str, cuda_engine.GPU_TILES))}); auto takes chunk up to "
               f"{cuda_engine.CHUNK_MAX_PARAMS} parameters, else tiled from {cuda_engine.TILED_MIN_WIDTH} units "
               f"wide; the same bits on each" + "".join(f"; {k}={v}" for k, v in forced.items()))


for _command in GRID_COMMANDS:
    main.add_command(_command)

from .cli_experiment import experiment as _experiment  # noqa: E402  (after main: registered on it)
main.add_command(_experiment)
from .cli_theory import theory as _theory  # noqa: E402  (the command module imports this one's helpers)
main.add_command(_theory)


if __name__ == "__main__":
    main()
