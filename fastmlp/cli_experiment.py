"""``fastmlp experiment NAME``: the classic initialisation experiments (registered on the group by cli.py)."""
from __future__ import annotations

import json
import math
import shlex
import sys

import click

from .engine import BACKENDS
from .experiments import ALL_SIZES, EXPERIMENTS, SIZES, ExperimentError

EXPERIMENT_HELP = """Run a classic initialisation experiment, draw its figure and print what it found beside the theory.

\b
NAME is one of:
  schoenholz  deep tanh nets over sigma_w2 x depth (sigma_b2 0.05): trainable iff depth < k xi_c; fits k
  he-xavier   deep ReLU nets, He vs Xavier and scales around them; chi_1 = sigma_w2 / 2
  saxe        deep linear nets, orthogonal vs Gaussian: steps to a target loss against depth
  lsuv        LSUV vs He, Xavier and orthogonal on a deep net: final loss and steps to target
  symmetry    the table of 'fastmlp symmetry' (zeros, constant, tiny, Xavier, He, large, dropout)

Each runs its grids through the grid machinery into the results database --out (rerun to resume; stored
runs are skipped), then writes STEM.png and STEM.svg (STEM: --figure, default the database's path without
its suffix). --size small takes minutes on a laptop and needs no data file; --size full is the published
scale (schoenholz full: MNIST via --data-file/--data-dir, 8190 networks of width 300: a GPU or cluster job).

\b
Examples:
  fastmlp experiment schoenholz --size small --out schoenholz.db
  fastmlp experiment schoenholz --size small --data-file mnist.npz --out schoenholz-mnist.db --json
  fastmlp experiment schoenholz --size full --data-dir ~/mnist --backend cuda --steps 1000 --out full.db
"""


def _size(ctx, param, value):
    if value not in ALL_SIZES:
        raise click.BadParameter(f"{value!r} is not one of: {', '.join(SIZES)}")
    return value


def _command_line():
    return shlex.join(["fastmlp"] + sys.argv[1:]) if sys.argv and "experiment" in sys.argv else None


def _json_safe(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if hasattr(obj, "tolist"):
        return _json_safe(obj.tolist())
    return obj


@click.command("experiment", help=EXPERIMENT_HELP, short_help="Run a classic initialisation experiment.")
@click.argument("name", type=click.Choice(EXPERIMENTS))
@click.option("--size", default="small", show_default=True, callback=_size, metavar="small|full",
              help="small: minutes on a laptop; full: the published scale.")
@click.option("-o", "--out", type=click.Path(dir_okay=False), help="Results database.  [default: NAME.db]")
@click.option("--figure", type=click.Path(dir_okay=False), metavar="STEM",
              help="Figure files STEM.png and STEM.svg.  [default: the database's path without suffix]")
@click.option("--steps", type=click.IntRange(min=1), help="Another training budget (steps per network).")
@click.option("--backend", type=click.Choice(BACKENDS), default="numba", show_default=True)
@click.option("--dataset", metavar="NAME|CSV", help="Another dataset than the preset's (as in fastmlp grid).")
@click.option("--data-file", type=click.Path(dir_okay=False),
              help="A data file; alone it means MNIST's Keras .npz (pixels in [-0.5, 0.5]).")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Directory of MNIST's IDX files (or .npz).")
@click.option("--data-option", multiple=True, metavar="KEY=VALUE", help="Further dataset argument (repeatable).")
@click.option("--n-samples", type=click.IntRange(min=1), help="Samples (a random subset of a real dataset).")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (the findings, figure paths, times).")
@click.pass_context
def experiment(ctx, name, size, out, figure, steps, backend, dataset, data_file, data_dir, data_option, n_samples,
               quiet, as_json):
    from . import run as runner
    from .cli_grid import EXIT_SIGNAL, _Bar, _Lines, _usage_errors
    from .grid import parse_data_options
    from .experiments import run_experiment
    out = out or f"{name}.db"
    with _usage_errors():
        options = parse_data_options(data_option)
    progress = runner.Progress() if quiet else _Bar() if sys.stderr.isatty() else _Lines()

    def on_signal(sig):
        if not quiet:
            click.echo(f"\n{sig} received: stopping once the chunk in progress is saved...", err=True)

    try:
        with runner.graceful_stop(on_signal) as stop, _usage_errors():
            try:
                result = run_experiment(name, size, out, backend=backend, steps=steps, figure=figure,
                                        progress=progress, stop=stop, command=_command_line(), dataset=dataset,
                                        data_file=data_file, data_dir=data_dir, data_options=options,
                                        n_samples=n_samples)
            except ExperimentError as e:
                if e.option:
                    raise click.BadParameter(e.message, param_hint=f"'{e.option}'") from None
                raise click.UsageError(str(e)) from None
    except KeyboardInterrupt:
        progress.close()
        click.echo(f"Interrupted: the runs stored so far stay in {out}; run the same command again to resume.",
                   err=True)
        ctx.exit(EXIT_SIGNAL["SIGINT"])
    if result["interrupted"]:
        click.echo(f"Interrupted by {result['interrupted']}: the runs stored so far stay in {out}; run the same "
                   f"command again to resume.", err=True)
        ctx.exit(EXIT_SIGNAL.get(result["interrupted"], 1))
    if as_json:
        click.echo(json.dumps(_json_safe({k: v for k, v in result.items() if k != "text"}), indent=1))
        return
    ident = result["dataset"]
    click.echo(f"{name} ({size}): {result['runs']} networks on {ident['name']} ({ident['n_samples']} samples), "
               f"{result['trained']} trained now in {result['seconds']:.1f} s, {result['already_stored']} already "
               f"stored in {out}")
    for line in result["text"]:
        click.echo(line)
    if result["figures"]:
        click.echo(f"figure: {result['figures']['png']} and {result['figures']['svg']}")
    else:
        click.echo(f"no figure: {result['figure_error']}", err=True)
