"""Grid-search commands (grid, show, export, plot, report); registered on the ``fastmlp`` group by cli.py.

The commands are thin: they turn options into a :class:`fastmlp.grid.GridSpec`, call :mod:`fastmlp.run`,
:mod:`fastmlp.store`, :mod:`fastmlp.plots` and :mod:`fastmlp.report`, and turn the library's errors into usage
errors (exit status 2) with the option at fault named.
"""
from __future__ import annotations

import contextlib
import json
import math
import shlex
import sys
import time
from pathlib import Path

import click

from .compile_cache import CompileWatch
from .grid import (METRICS, GridError, GridSpec, architecture_label, check_metric, hidden_text, load_config,
                   merge_settings, parse_architectures)
from .spec import hidden_label
from .store import COLUMN_NAMES, CONFIG_COLUMNS, DEFAULT_PATH, EXPORT_FORMATS, Store, StoreError

EXIT_SIGNAL = {"SIGINT": 130, "SIGTERM": 143}
BY_COLUMNS = CONFIG_COLUMNS + ("seed", "depth", "width", "status", "output", "epochs", "backend", "grid_id")


@contextlib.contextmanager
def _usage_errors():
    """Library errors -> click errors: bad input exits 2, a missing optional dependency exits 1."""
    from .plots import MissingDependency
    try:
        yield
    except GridError as e:
        if e.option:
            raise click.BadParameter(e.message, param_hint=f"'{e.option}'") from None
        raise click.UsageError(str(e)) from None
    except StoreError as e:
        raise click.UsageError(str(e)) from None
    except (MissingDependency, RuntimeError) as e:
        raise click.ClickException(str(e)) from None
    except ValueError as e:
        raise click.UsageError(str(e)) from None


def _echo(text="", err=False):
    click.echo(text, err=err)


# ------------------------------------------------------------------------------------------- progress

class _Bar:
    """click's progress bar on standard error: networks done, percentage, rate and ETA."""

    def __init__(self):
        self.bar = None

    def start(self, total):
        self.total, self.done, self.t0 = total, 0, time.monotonic()
        if total:
            self.bar = click.progressbar(length=total, label="training", file=sys.stderr, show_eta=True,
                                         show_pos=True, show_percent=True, width=28,
                                         item_show_func=lambda item: item)
            self.bar.__enter__()

    def advance(self, n):
        self.done += n
        rate = self.done / max(time.monotonic() - self.t0, 1e-9)
        if self.bar is not None:
            self.bar.update(n, current_item=f"{rate:,.1f} networks/s")

    def note(self, text):
        click.echo(f"\n{text}", err=True)

    def close(self):
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


class _Lines:
    """Plain progress lines on standard error, at most every ``every`` seconds (for logs and pipes)."""

    def __init__(self, every=2.0):
        self.every = every

    def start(self, total):
        self.total, self.done, self.t0, self.last = total, 0, time.monotonic(), 0.0

    def advance(self, n):
        self.done += n
        now = time.monotonic()
        if now - self.last >= self.every or self.done >= self.total:
            self.last = now
            elapsed = max(now - self.t0, 1e-9)
            rate = self.done / elapsed
            eta = (self.total - self.done) / rate if rate > 0 else float("inf")
            eta_text = time.strftime("%H:%M:%S", time.gmtime(eta)) if math.isfinite(eta) else "?"
            pct = 100.0 * self.done / self.total if self.total else 100.0
            click.echo(f"grid: {self.done}/{self.total} networks ({pct:.0f}%), {rate:,.1f} networks/s, "
                       f"elapsed {elapsed:.1f} s, ETA {eta_text}", err=True)

    def note(self, text):
        click.echo(f"grid: {text}", err=True)

    def close(self):
        pass


# --------------------------------------------------------------------------------------------- helpers

def _parse_filters(items):
    """``("init=zeros,normal", "hidden=32x4")`` -> ``{"init": ["zeros", "normal"], "hidden": ["32,32,32,32"]}``."""
    out = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise click.BadParameter(f"expected COLUMN=VALUE, got {item!r}", param_hint="'--filter'")
        if key not in COLUMN_NAMES or key == "curve":
            raise click.BadParameter(f"unknown column {key!r}; choose from: "
                                     f"{', '.join(c for c in COLUMN_NAMES if c != 'curve')}",
                                     param_hint="'--filter'")
        if key == "hidden":
            try:
                values = [hidden_text(h) for h in parse_architectures(value, "--filter hidden")]
            except GridError as e:
                raise click.BadParameter(e.message, param_hint="'--filter'") from None
        else:
            values = [v.strip() for v in value.split(",")]
        out.setdefault(key, []).extend(values)
    return out


def _shown(column, value):
    """A stored value as tables show it (and as --filter accepts it)."""
    from .report import fmt
    return fmt(value, column)


def check_filters_match(store, flt, rows):
    """When ``--filter`` left no run, a usage error saying which filter matched nothing and what values its
    column holds (as tables show them)."""
    if rows or not flt:
        return
    from .store import _matches, row_sort_key
    every = store.fetch(columns=list(dict.fromkeys(list(flt) + ["status"])))
    if not every:
        raise click.UsageError(f"{store.path} holds no runs yet")
    for col, wanted in flt.items():
        if not any(_matches(r[col], w) for r in every for w in wanted):
            if col == "init":
                from .plots import _init_order
                values = _init_order({r[col] for r in every})
            else:
                values = sorted({r[col] for r in every}, key=lambda v: row_sort_key([col])({col: v}))
            shown = ", ".join(_shown(col, v) for v in values)
            given = ",".join(architecture_label(w) if col == "hidden" else str(w) for w in wanted)
            numeric = any(isinstance(v, (int, float)) for v in values)
            raise click.UsageError(f"no runs match --filter {col}={given}; {col} holds: {shown}"
                                   + (" (numbers match as tables show them, to 4 significant digits)"
                                      if numeric else ""))
    raise click.UsageError("no run matches all the filters together: " + "; ".join(
        f"{c}={','.join(map(str, w))}" for c, w in flt.items()) + " (each matches some runs on its own)")


def architectures_text(hidden, n_inputs, n_outputs):
    """``Architectures (2): 8 (2-8-1), 8x2 (2-8-8-1)``: each architecture as written and its layer sizes."""
    parts = [f"{hidden_label(h)} ({'-'.join(map(str, (n_inputs, *h, n_outputs)))})" for h in hidden]
    return f"Architectures ({len(parts)}): {', '.join(parts)}"


def _parse_by(text):
    by = [c.strip() for c in text.split(",") if c.strip()]
    for c in by:
        if c not in BY_COLUMNS:
            raise click.BadParameter(f"unknown column {c!r}; choose from: {', '.join(BY_COLUMNS)}",
                                     param_hint="'--by'")
    if not by:
        raise click.BadParameter("give at least one column, e.g. init,scale", param_hint="'--by'")
    return by


def _metric(value):
    try:
        return check_metric(value)
    except GridError as e:
        raise click.BadParameter(e.message, param_hint="'--metric'") from None


def _open(path):
    with _usage_errors():
        return Store.open(path)


def _command_line(params):
    """The ``fastmlp grid`` command line equivalent to the given options (recorded, and shown to resume)."""
    parts = ["fastmlp", "grid"]
    for name, value in params.items():
        if value is None or value == () or value is False or name in ("quiet", "json_output"):
            continue
        opt = "--" + name.replace("_", "-")
        if name == "diagnostics":
            parts.append("--diagnostics" if value else "--no-diagnostics")
        elif value is True:
            parts.append(opt)
        elif isinstance(value, tuple):
            for v in value:
                parts += [opt, str(v)]
        else:
            parts += [opt, str(value)]
    return shlex.join(parts)


# ------------------------------------------------------------------------------------------------ grid

GRID_HELP = """Train every network of a grid and keep each result in a results database.

Every axis takes a comma-separated list whose items are values or ranges: log:A:B:N (N log-spaced points
from A to B), lin:A:B:N (N evenly spaced points), and for integer axes A:B or A:B:STEP (half-open, as
Python's range). --seeds N means seeds 0..N-1. An architecture is 16, 32x4 (4 layers of 32), 64-32 (64 then 32)
or 32x2-16; repeat --hidden for several (--hidden 8,16 is refused: it could mean either). A run whose final loss
ends above --diverge-factor (10) times its initial loss counts as diverged, as a NaN loss does.

--scheduler, --scheduler-file or --dask-workers train the chunks on a Dask cluster (pip install
'fastmlp[dask]'); this process keeps the database.

Runs already in the database are skipped, so rerunning the same command resumes an interrupted grid and a
grown grid trains only its new points. Ctrl-C (or SIGTERM) stops after the chunk in progress is saved.

\b
Examples:
  fastmlp grid --dataset spirals --hidden 16 --init zeros,constant,normal,xavier_normal,he_normal \\
      --scale log:1e-2:10:7 --seeds 4 --steps 500 --lr 0.1
  fastmlp grid --hidden 16 --hidden 32x4 --activation tanh,relu --scale log:1e-3:10:25 --seeds 0:16
  fastmlp grid --dataset data.csv --target label --val-split 0.2 --epochs 50 --batch-size 32 --optimizer adam
  fastmlp grid --config sweep.toml --lr 0.05 --out sweep.db      (options override the file)
  fastmlp grid --config sweep.toml --dry-run                     (size and work only)
"""


@click.command("grid", help=GRID_HELP, short_help="Train a grid of networks into a results database (resumable).")
@click.option("--config", type=click.Path(dir_okay=False), help="TOML file with the same keys as these options "
              "(underscores or dashes); options given here override it.")
@click.option("--dataset", metavar="NAME|CSV", help="Built-in dataset (xor, moons, circles, spirals, blobs, teacher, digits_like), "
              "mnist or fashion_mnist (--data-file/--data-dir), scikit-learn's digits, breast_cancer, iris, wine, "
              "titanic or csv with --data-file, or a path to a .csv file.  [default: spirals]")
@click.option("--data-file", type=click.Path(dir_okay=False),
              help="CSV file for --dataset csv or titanic; Keras .npz for mnist or fashion_mnist.")
@click.option("--data-dir", type=click.Path(file_okay=False),
              help="Directory of the IDX files (or .npz) of mnist or fashion_mnist.")
@click.option("--target", metavar="COLUMN", help="Target column of a CSV dataset.")
@click.option("--n-samples", metavar="N", help="Samples of a generated dataset (default: the generator's), or a "
              "seeded random subset of a real one (default: all).")
@click.option("--data-seed", metavar="N", help="Seed of a generated dataset.  [default: 0]")
@click.option("--data-option", multiple=True, metavar="KEY=VALUE",
              help="Further argument of a dataset, e.g. noise=0.2, arms=3, pixels=centered (mnist: "
              "unit|centered|standard), part=test, standardize=false (repeatable).")
@click.option("--features", metavar="COLUMNS",
              help="Feature columns of a CSV dataset, comma-separated (default: all but the target).")
@click.option("--task", metavar="TASK",
              help="binary, multiclass or regression: a CSV target's task (default: inferred; a target with a "
                   "single value needs --task regression), or the teacher dataset's.")
@click.option("--val-split", metavar="FRACTION", help="Fraction of the data held out for validation accuracy (fixed split seed).")
@click.option("--split-seed", metavar="N", help="Seed of the validation split.  [default: 0]")
@click.option("--hidden", multiple=True, metavar="LAYERS",
              help="Hidden layers of one architecture: 16, 32x4 (4 layers of 32), 64-32 (64 then 32), 32x2-16, "
                   "0 (none). Several: repeat --hidden, or a comma list (16,32x2); a list of plain widths (8,16) "
                   "is refused as ambiguous.  [default: 16]")
@click.option("--activation", metavar="LIST", help="Hidden activations: tanh, sigmoid, relu, leaky_relu, linear.  [default: tanh]")
@click.option("--init", metavar="LIST", help="Init schemes: zeros, constant, uniform, normal, xavier_uniform, xavier_normal, "
              "he_uniform, he_normal, lecun_uniform, lecun_normal, orthogonal, meanfield (see --sigma-w2), lsuv "
              "(data-driven).  [default: xavier_normal]")
@click.option("--scale", metavar="LIST", help="Init scales (multiplying every weight), e.g. log:1e-3:10:25 or 0,0.1,1.  "
              "[default: 1]")
@click.option("--sigma-w2", metavar="LIST", help="Of --init meanfield: weight variance times fan-in (weights "
              "N(0, sigma_w2/fan_in)), e.g. lin:1:4:13.  [default: 1]")
@click.option("--sigma-b2", metavar="LIST", help="Of --init meanfield: bias variance (biases N(0, sigma_b2)).  "
              "[default: 0]")
@click.option("--lr", metavar="LIST", help="Learning rates (> 0), e.g. 0.01,0.1 or log:1e-3:1:4.  [default: 0.1]")
@click.option("--seeds", metavar="N|A:B|LIST", help="Seeds (each seeds a run's init and its batch order/dropout): a count (8), a "
              "range (0:16) or a list (3,5).  [default: 1]")
@click.option("--optimizer", metavar="LIST", help="Optimizers: sgd, momentum, nesterov, adam.  [default: sgd]")
@click.option("--momentum", metavar="LIST", help="Momentum (Adam's beta1) in [0, 1); ignored by sgd.  [default: 0.9]")
@click.option("--batch-size", metavar="LIST", help="Minibatch sizes, or full.  [default: full]")
@click.option("--steps", metavar="LIST", help="Training steps (parameter updates).  [default: 500]")
@click.option("--epochs", metavar="LIST", help="Epochs instead of --steps: steps = epochs x ceil(n_train / batch size).")
@click.option("--dropout", metavar="LIST", help="Dropout rates in [0, 1).  [default: 0]")
@click.option("--weight-decay", metavar="LIST", help="L2 weight decay (>= 0).  [default: 0]")
@click.option("--dtype", metavar="LIST", help="float32 and/or float64.  [default: float64]")
@click.option("--backend", metavar="NAME", help="Engine: numba (CPU), numpy (reference) or cuda.  [default: numba]")
@click.option("--record-every", metavar="N", help="Record the loss every N steps (default: at most 500 points per curve).")
@click.option("--target-loss", metavar="LOSS|PCT%", help="Loss whose first crossing gives steps_to_target: a value (0.3) or a "
              "percentage of the loss of the best constant prediction (90%).  [default: 90%]")
@click.option("--metric", metavar="NAME", help=f"Metric of the summary: {', '.join(METRICS)}.  [default: final_loss]")
@click.option("--chunk-size", metavar="N", help="At most this many networks per engine call (default: as memory allows).")
@click.option("--chunk-seconds", metavar="SECONDS", help="Size engine calls to take about this long, so that progress moves and "
              "Ctrl-C is answered; 0 = as large as memory allows.  [default: 15]")
@click.option("--max-memory", metavar="SIZE", help="Memory budget of one engine call, e.g. 2G (default: half the available).")
@click.option("--diverge-factor", metavar="K|off", help="A run whose final training loss ends above K x its initial "
              "loss counts as diverged (left out of means, like a NaN loss); off: only NaN/inf losses.  "
              "[default: 10]")
@click.option("--diagnostics/--no-diagnostics", default=None,
              help="Compute the symmetry and health diagnostics of every network.  [default: on]")
@click.option("-o", "--out", type=click.Path(dir_okay=False),
              help=f"Results database (SQLite).  [default: {DEFAULT_PATH}]")
@click.option("--save-params", is_flag=True, default=None,
              help="Keep every run's initial and final parameters in the database (fastmlp.load_run, "
                   "export --params).")
@click.option("--scheduler", metavar="ADDRESS", help="Train the chunks on this Dask cluster, e.g. tcp://head:8786 "
              "(this process keeps the database). Needs pip install 'fastmlp[dask]'.")
@click.option("--scheduler-file", type=click.Path(dir_okay=False), help="Dask cluster to train on, from the file "
              "'dask scheduler --scheduler-file FILE' writes.")
@click.option("--dask-workers", metavar="N", type=click.IntRange(min=1), help="Start a local Dask cluster of N "
              "worker processes (one thread each) for this run.")
@click.option("--dask-task-threads", metavar="N", type=click.IntRange(min=1), help="Numba threads of each chunk "
              "on a Dask worker.  [default: 1, one engine thread per worker thread]")
@click.option("--dry-run", is_flag=True, help="Print the grid size and the estimated work, then stop.")
@click.option("-q", "--quiet", is_flag=True, help="No progress and no summary (errors still shown).")
@click.option("--json", "json_output", is_flag=True, help="Print a machine-readable JSON summary instead.")
@click.pass_context
def grid(ctx, config, dry_run, quiet, json_output, **options):
    from . import run as runner
    from .report import reference_values, summary_json, summary_text
    from .store_summary import summarize as summarize_store

    params = dict(ctx.params)
    dask = {k: options.pop(k) for k in ("scheduler", "scheduler_file", "dask_workers", "dask_task_threads")}
    cluster = _cluster_options(dask, dry_run)
    with _usage_errors():
        cfg = load_config(config) if config else {}
        options["data_options"] = options.pop("data_option")
        settings = merge_settings(cfg, {k: (list(v) if isinstance(v, tuple) else v) for k, v in options.items()})
        spec = GridSpec.from_settings(settings)
        out = Path(spec.out or DEFAULT_PATH)
        plan = runner.plan_grid(spec)
        runner.estimate(plan)                       # refuses a network too large before touching the database
    command = _command_line(params)
    info = lambda text="": None if quiet else _echo(text, err=json_output)   # noqa: E731
    ident = plan.data.identity
    split = f"; train {ident['n_train']} / validation {ident['n_val']}" if ident["n_val"] else ""
    info(f"Grid: {len(plan.runs)} run{'s' * (len(plan.runs) != 1)} ({spec.size_text()}) on {ident['name']} ({ident['n_samples']} samples, "
         f"{ident['n_features']} features, {ident['task']}{split})")
    info(architectures_text(spec.hidden, ident["n_features"], ident["n_outputs"]))

    if dry_run:
        done = {}
        if out.exists():
            with _usage_errors():
                with Store.open(out) as st:
                    st._check(ident)
                    done = runner.stored_runs(plan, st)
        n_done = sum(done.values())
        with _usage_errors():
            est = runner.estimate(plan, done)
        _print_estimate(info, est, out, spec)
        if json_output:
            click.echo(json.dumps({"dry_run": True, "database": str(out), "dataset": ident,
                                   "architectures": [hidden_label(h) for h in spec.hidden],
                                   "axes": {k: len(v) for k, v in spec.axes().items()},
                                   "grid_size": len(plan.runs), "already_done": n_done,
                                   "to_run": len(plan.runs) - n_done, "estimate": est.to_dict()}, indent=1))
        return

    with _usage_errors():
        store = Store.create(out, ident)
    try:
        done = runner.stored_runs(plan, store)
        n_done = sum(done.values())
        _warn_other_version(store, out, n_done, len(plan.runs) - n_done, quiet)
        with _usage_errors():
            est = runner.estimate(plan, done)
        _print_estimate(info, est, out, spec)
        grid_id = store.begin_grid(command, spec.to_dict(), len(plan.runs), n_done)
        if quiet:
            progress = runner.Progress()  # reports nothing
        elif sys.stderr.isatty():
            progress = _Bar()
        else:
            progress = _Lines()

        def on_signal(name):
            if not quiet:
                click.echo(f"\n{name} received: stopping once the chunk in progress is saved "
                           f"(press Ctrl-C again to abandon it)...", err=True)

        t0 = time.perf_counter()
        outcome, hard = None, None
        try:
            with runner.graceful_stop(on_signal) as stop:
                # on a Dask cluster the workers compile: this process has nothing to watch
                with _usage_errors(), _dask_errors(), cluster(info) as client, \
                        CompileWatch(progress.note, spec.dtype, spec.backend if client is None else "dask"):
                    outcome = runner.execute(plan, store, progress=progress, stop=stop, grid_id=grid_id,
                                             client=client, task_threads=dask["dask_task_threads"] or 1)
        except KeyboardInterrupt:
            progress.close()
            hard = "SIGINT"
        except click.ClickException:
            progress.close()
            store.end_grid(grid_id, "failed", None, time.perf_counter() - t0)
            raise
        seconds = time.perf_counter() - t0
        stopped = hard or (outcome.interrupted if outcome else None)
        n_stored = sum(runner.stored_runs(plan, store).values())
        trained = outcome.n_trained if outcome else None
        store.end_grid(grid_id, "interrupted" if stopped else "finished",
                       trained if trained is not None else n_stored - n_done, seconds)
        if stopped:
            missing = len(plan.runs) - n_stored
            msg = (f"Interrupted by {stopped}: {n_stored} of {len(plan.runs)} runs of this grid are saved in "
                   f"{out} ({missing} still to run). To resume, run the same command again:\n  {command}")
            click.echo(msg, err=True)
            if json_output:
                click.echo(json.dumps({"database": str(out), "interrupted": stopped, "grid_size": len(plan.runs),
                                       "stored": n_stored, "missing": missing, "resume": command}, indent=1))
            ctx.exit(EXIT_SIGNAL.get(stopped, 1))
        # computed by SQLite: a grid of 10^7 runs is summarised without holding its rows (store_summary.py)
        total, failed = store.conn.execute("SELECT COUNT(*), COUNT(CASE WHEN status = 'failed' THEN 1 END) "
                                           "FROM runs").fetchone()
        only_this_grid = total == n_stored and not failed
        summary = summarize_store(store, spec.metric, keys=None if only_this_grid else plan.keys,
                                  baseline=reference_values(ident))
        if json_output:
            payload = {"database": str(out), "dataset": ident, "grid_size": len(plan.runs),
                       "already_done": outcome.n_skipped, "trained": outcome.n_trained,
                       "trained_by_others": outcome.n_by_others, "engine_calls": outcome.engine_calls,
                       "seconds": round(seconds, 3), "interrupted": None}
            payload.update(summary_json(summary))
            click.echo(json.dumps(payload, indent=1, allow_nan=False))
        elif not quiet:
            rate = outcome.n_trained / seconds if seconds > 0 and outcome.n_trained else 0.0
            _echo(f"Trained {outcome.n_trained} network{'s' * (outcome.n_trained != 1)} in {seconds:.1f} s ({rate:,.1f} networks/s, "
                  f"{outcome.engine_calls} engine call{'s' * (outcome.engine_calls != 1)}); "
                  f"{outcome.n_skipped} {'was' if outcome.n_skipped == 1 else 'were'} already stored"
                  + (f", {outcome.n_by_others} trained by another process" if outcome.n_by_others else "") + ".")
            _echo()
            _echo(summary_text(summary))
            _echo()
            _echo(f"Results database: {out}")
            _echo(f"  fastmlp show {shlex.quote(str(out))}   |   fastmlp plot {shlex.quote(str(out))}   |   "
                  f"fastmlp report {shlex.quote(str(out))} -o report.html")
    finally:
        store.close()


def _cluster_options(dask, dry_run):
    """A context manager giving the Dask client the options ask for (None without them), or a usage error."""
    given = [f"--{k.replace('_', '-')}" for k in ("scheduler", "scheduler_file", "dask_workers") if dask[k]]
    if len(given) > 1:
        raise click.UsageError(f"give one of {', '.join(given)}, not several")
    if dask["dask_task_threads"] and not given:
        raise click.BadParameter("only applies with --scheduler, --scheduler-file or --dask-workers",
                                 param_hint="'--dask-task-threads'")
    if not given:
        return lambda info: contextlib.nullcontext(None)
    from .cluster import MissingExtra, _distributed
    try:
        _distributed()
    except MissingExtra as e:
        raise click.UsageError(f"{given[0]}: {e}") from None
    if dry_run:
        return lambda info: contextlib.nullcontext(None)

    @contextlib.contextmanager
    def cluster(info):
        from .cluster import connect
        if dask["dask_workers"]:
            info(f"Dask: starting a local cluster of {dask['dask_workers']} worker processes")
        import logging
        # a lost scheduler is reported once, by fastmlp; distributed's client would log a traceback per retry
        quiet_client = logging.getLogger("distributed.client")
        level = quiet_client.level
        try:
            with connect(dask["scheduler"], dask["scheduler_file"], dask["dask_workers"]) as client:
                info(f"Dask: scheduler {client.scheduler.address}")
                quiet_client.setLevel(logging.CRITICAL)
                yield client
        finally:                  # after the client's close, which retries a lost scheduler too
            quiet_client.setLevel(level)
    return cluster


@contextlib.contextmanager
def _dask_errors():
    """A cluster that cannot run the grid: a clear error (exit 1), not a traceback."""
    try:
        yield
    except ImportError as e:
        raise click.ClickException(str(e)) from None
    except Exception as e:
        from .cluster import ClusterError
        if isinstance(e, ClusterError):
            raise click.ClickException(str(e)) from None
        raise


def _warn_other_version(store, out, n_stored, n_pending, quiet):
    """Say so when new runs join runs stored by another fastmlp version (results may differ in the last bits)."""
    from . import __version__
    made_with = store.meta().get("fastmlp_version")
    if quiet or not n_stored or not n_pending or made_with in (None, __version__):
        return
    click.echo(f"Note: {out} holds {n_stored} runs made with fastmlp {made_with}; this is fastmlp {__version__}. "
               f"The engine's arithmetic may differ between versions in the last bits, which long trainings can "
               f"amplify: compare old and new runs with care, or use another --out.", err=True)


def _print_estimate(info, est, out, spec):
    from .run import human_bytes, human_flops
    info(f"Database: {out} ({est.n_runs - est.n_pending} of these runs already stored; {est.n_pending} to run)")
    if est.n_pending:
        timing = (f"calls are sized to take about {spec.chunk_seconds:g} s each (--chunk-seconds)"
                  if spec.chunk_seconds > 0 else "no time limit per call")
        cap = f", --chunk-size {spec.chunk_size}" if spec.chunk_size else ""
        info(f"Work: {est.n_groups} shape group{'s' * (est.n_groups != 1)}, about {human_flops(est.flops)} of "
             f"matrix products; at least {est.min_calls} engine call{'s' * (est.min_calls != 1)} (memory budget "
             f"{human_bytes(est.budget)}: up to {est.memory_chunk:,} networks per call{cap}); {timing}")


# ------------------------------------------------------------------------------------------------ show

def results_argument(fn):
    """The RESULTS argument of show/export/plot/report: a results database, ``results.db`` as grid's default."""
    return click.argument("results", type=click.Path(dir_okay=False), default=DEFAULT_PATH, required=False,
                          metavar=f"[RESULTS={DEFAULT_PATH}]")(fn)


def _grid_states(store):
    """``2 grid invocations: 1 finished, 1 interrupted (process gone)``, or None when there are none."""
    grids = store.grids()
    if not grids:
        return None
    counts = {}
    for g in grids:
        label = g["state"] + (" (process gone)" if g.get("state_note") else "")
        counts[label] = counts.get(label, 0) + 1
    return (f"{len(grids)} grid invocation{'s' * (len(grids) != 1)}: "
            + ", ".join(f"{n} {state}" for state, n in counts.items()))


@click.command("show", short_help="Summary tables of a results database.")
@results_argument
@click.option("--by", help="Group by these columns, e.g. init,scale or hidden,lr (default: the summary: best "
              "and worst configurations and the init x scale table).")
@click.option("--metric", default="final_loss", show_default=True, help=f"One of: {', '.join(METRICS)}.")
@click.option("--filter", "filters", multiple=True, metavar="COLUMN=VALUE",
              help="Only runs whose column has this value, as tables show it (numbers to 4 significant digits; "
                   "comma-separated alternatives); repeatable.")
@click.option("--json", "json_output", is_flag=True, help="Machine-readable JSON.")
def show(results, by, metric, filters, json_output):
    """Summary tables of a results database (default: results.db).

    \b
    Examples:
      fastmlp show
      fastmlp show results.db --by init,scale --metric train_accuracy
      fastmlp show results.db --by hidden,lr --filter init=xavier_normal --filter scale=0.3162 --json
    """
    from .report import aggregate_rows, summary_json, summary_text, text_table
    from . import store_summary
    metric = _metric(metric)
    flt = _parse_filters(filters)
    by_cols = _parse_by(by) if by else None
    with _open(results) as store:
        # the statistics come from SQL queries (store_summary.py): memory follows the groups, not the runs
        with _usage_errors(), store_summary.Selection(store, filters=flt) as sel:
            n_runs = store_summary.counts(sel)["runs"]
            table = store_summary.aggregate(sel, by_cols, metric) if by_cols and n_runs else []
        if not n_runs:
            check_filters_match(store, flt, [])
        meta = store.meta()
        from .store import describe_dataset
        states = _grid_states(store)
        if by_cols:
            if json_output:
                for d in table:
                    if "hidden" in d:
                        d["hidden"] = architecture_label(d["hidden"])
                click.echo(json.dumps({"database": results, "dataset": meta["dataset"], "metric": metric,
                                       "by": by_cols, "runs": n_runs, "rows": table}, indent=1))
                return
            _echo(f"{results}: {n_runs} runs on {describe_dataset(meta['dataset'])}")
            if states:
                _echo(states)
            _echo(f"{metric} by {', '.join(by_cols)} (statistics over runs trained to the end):")
            headers, cells = aggregate_rows(table, by_cols)
            _echo(text_table(headers, cells, right=range(len(by_cols), len(headers))))
            return
        summary = store_summary.summarize(store, metric, filters=flt, baseline=baseline_of(meta, store))
        if json_output:
            payload = {"database": results, "dataset": meta["dataset"]}
            payload.update(summary_json(summary))
            click.echo(json.dumps(payload, indent=1))
            return
        _echo(f"{results}: {describe_dataset(meta['dataset'])}")
        if states:
            _echo(states)
        _echo(summary_text(summary))


def baseline_of(meta, store=None):
    """The reference values a summary is read against: the class-prior loss and chance accuracy."""
    from .report import reference_values
    return reference_values(meta.get("dataset") or {}, store)


# ---------------------------------------------------------------------------------------------- export

@click.command("export", short_help="Export a results database as CSV, JSON or Parquet.")
@results_argument
@click.option("--format", "fmt", type=click.Choice(EXPORT_FORMATS),
              help="Output format (default: from the -o suffix, else csv). parquet needs pyarrow.")
@click.option("-o", "--out", "--output", "output", type=click.Path(dir_okay=False),
              help="Output file (default: standard output).")
@click.option("--curves", is_flag=True, help="Include each loss curve.")
@click.option("--filter", "filters", multiple=True, metavar="COLUMN=VALUE",
              help="Only matching runs (values as tables show them); repeatable.")
@click.option("--params", "params", is_flag=True,
              help="Write the runs' initial and final parameters (grid --save-params) to an .npz file (-o).")
def export(results, fmt, output, curves, filters, params):
    """Export every run of a results database (default: results.db) as CSV, JSON or Parquet.

    Architectures are written as --hidden takes them (32x2-16).

    \b
    Examples:
      fastmlp export > results.csv
      fastmlp export results.db --format json -o results.json
      fastmlp export results.db -o results.parquet        (needs pyarrow)
    """
    from .store import export as do_export
    if params:
        from .params_store import export_params
        if output is None or fmt is not None:
            raise click.UsageError("--params writes an .npz file: give -o FILE.npz (and no --format)")
        with _open(results) as store:
            with _usage_errors():
                n = export_params(store, output, filters=_parse_filters(filters))
        click.echo(f"Wrote the parameters of {n} runs to {output}", err=True)
        return
    if fmt is None:
        suffix = Path(output).suffix.lower().lstrip(".") if output else ""
        fmt = suffix if suffix in EXPORT_FORMATS else "csv"
    if fmt == "parquet" and output is None and sys.stdout.isatty():
        raise click.UsageError("parquet is binary: give -o FILE or redirect standard output")
    flt = _parse_filters(filters)
    with _open(results) as store:
        if flt:
            check_filters_match(store, flt, store.fetch(columns=["run_key"], filters=flt))
        with _usage_errors():
            n = do_export(store, fmt, output, curves=curves, filters=flt)
    if output:
        click.echo(f"Wrote {n} runs to {output}", err=True)


# ------------------------------------------------------------------------------------------------ plot

PLOT_FORMATS = ("png", "svg", "pdf")


def plot_targets(results, kinds, output, fmt):
    """Where ``plot`` writes: ``(format, {kind: path}, pdf_path)``; ``pdf_path`` set when several kinds go into
    one multi-page PDF.

    ``-o`` with a suffix names a file whose suffix picks the format (png, svg, pdf; anything else is a usage
    error); with several kinds a PDF holds them all as pages, and a png/svg name gets one file per kind
    (NAME-KIND.png). Without a suffix (or an existing directory), ``-o`` is a directory.
    """
    res = Path(results)
    out = Path(output) if output else None
    suffix = out.suffix.lower().lstrip(".") if out is not None and not out.is_dir() else ""
    if suffix:
        if suffix not in PLOT_FORMATS:
            raise click.BadParameter(f"{output!r}: the suffix picks the format, and .{suffix} is not one; use "
                                     f".png, .svg or .pdf (or a directory name without a suffix)",
                                     param_hint="'-o' / '--out'")
        if fmt and fmt != suffix:
            raise click.BadParameter(f"{output!r} is a .{suffix} file but --format is {fmt}; give one of them",
                                     param_hint="'--format'")
        if len(kinds) == 1:
            return suffix, {kinds[0]: out}, None
        if suffix == "pdf":
            return suffix, {}, out
        return suffix, {k: out.with_name(f"{out.stem}-{k}.{suffix}") for k in kinds}, None
    fmt = fmt or "png"
    folder = out if out is not None else res.parent
    return fmt, {k: folder / f"{res.stem}-{k}.{fmt}" for k in kinds}, None


@click.command("plot", short_help="Draw heatmaps and curves of a results database.")
@results_argument
@click.option("--kind", default="heatmap,scale,curves", show_default=True,
              help="Figures: heatmap (a metric over two settings, one panel per init scheme), scale (a metric "
                   "against scale per scheme, panels per activation/lr/... when they vary), curves (loss "
                   "curves).")
@click.option("--metric", default="final_loss", show_default=True, help=f"One of: {', '.join(METRICS)}.")
@click.option("--x", "x", default="scale", show_default=True, help="Heatmap setting across.")
@click.option("--y", "y", help="Heatmap setting down (default: depth, lr or another that varies).")
@click.option("--format", "fmt", type=click.Choice(PLOT_FORMATS),
              help="Image format (default: from the -o suffix, else png).")
@click.option("-o", "--out", "--output", "output", type=click.Path(),
              help="A file whose suffix (.png, .svg, .pdf) picks the format: one kind, or several as pages of a "
                   "PDF or NAME-KIND files; or a directory (default: next to RESULTS, named RESULTS-KIND.png).")
@click.option("--filter", "filters", multiple=True, metavar="COLUMN=VALUE",
              help="Only matching runs (values as tables show them); repeatable.")
def plot(results, kind, metric, x, y, fmt, output, filters):
    """Draw figures of a results database (default: results.db; needs matplotlib: pip install 'fastmlp[plot]').

    \b
    Examples:
      fastmlp plot
      fastmlp plot results.db --kind heatmap --x scale --y depth -o heatmap.svg
      fastmlp plot results.db --kind heatmap,scale -o figures.pdf      (two pages)
      fastmlp plot results.db --kind scale --metric train_accuracy --filter activation=tanh
    """
    from .plots import figure_bytes, make_figures, write_pdf
    metric = _metric(metric)
    kinds = [k.strip() for k in kind.split(",") if k.strip()]
    flt = _parse_filters(filters)
    fmt, targets, pdf = plot_targets(results, kinds, output, fmt)
    with _open(results) as store:
        if flt:
            check_filters_match(store, flt, store.fetch(columns=["run_key"], filters=flt))
        with _usage_errors():
            figs = make_figures(store, kinds, metric, x, y, flt)
    if pdf is not None:
        pdf.parent.mkdir(parents=True, exist_ok=True)
        write_pdf([fig for _, _, fig in figs], pdf)
        click.echo(str(pdf))
        return
    for k, _, fig in figs:
        path = targets[k]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(figure_bytes(fig, fmt))
        click.echo(str(path))


# ---------------------------------------------------------------------------------------------- report

@click.command("report", short_help="A self-contained HTML report of a results database.")
@results_argument
@click.option("-o", "--out", "--output", "output", type=click.Path(dir_okay=False),
              help="HTML file (default: RESULTS with suffix .html).")
@click.option("--metric", default="final_loss", show_default=True, help=f"One of: {', '.join(METRICS)}.")
@click.option("--figure-format", type=click.Choice(("png", "svg")), default="png", show_default=True,
              help="Figures embedded as base64 PNG or inline SVG.")
@click.option("--no-figures", is_flag=True, help="Tables only.")
def report(results, output, metric, figure_format, no_figures):
    """Write one self-contained HTML page: summary tables, the symmetry section, figures and the grid's settings.

    Without matplotlib the report holds the tables only.

    \b
    Examples:
      fastmlp report -o report.html
      fastmlp report results.db --figure-format svg --metric train_accuracy
    """
    from .plots import MissingDependency, figure_bytes, make_figures
    from .report import build_report
    metric = _metric(metric)
    output = Path(output) if output else Path(results).with_suffix(".html")
    with _open(results) as store:
        figures, note = [], None
        if no_figures:
            note = "Figures left out (--no-figures)."
        elif not store.count()["done"] + store.count()["diverged"]:
            note = "No trained runs to plot."
        else:
            try:
                for k, caption, fig in make_figures(store, metric=metric):
                    figures.append((caption, figure_format, figure_bytes(fig, figure_format)))
            except MissingDependency as e:
                note = f"Figures left out: {e}."
                click.echo(f"note: {e}; the report has tables only", err=True)
        with _usage_errors():
            page = build_report(store, metric, figures, note)
    try:
        output.write_text(page, encoding="utf-8")
    except OSError as e:
        raise click.UsageError(f"cannot write the report to {output}: {e.strerror}; give another -o") from None
    click.echo(str(output))


GRID_COMMANDS = [grid, show, export, plot, report]
