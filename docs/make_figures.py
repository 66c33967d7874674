"""Make the README's figures and the output it quotes: ``python docs/make_figures.py`` from a checkout.

1. ``docs/images/symmetry.png``: the canonical starts of ``fastmlp symmetry`` (zeros, constant, tiny random,
   Xavier, He, large random, constant + dropout) trained side by side on the spirals; their loss curves, each
   labelled with its distinct hidden units.
2. The README's quick-start grid (circles, 540 networks) into a temporary database: its printed output in
   ``docs/images/quickstart-output.txt`` and its figures ``docs/images/quickstart-heatmap.png`` and
   ``docs/images/quickstart-scale.png``.

Needs matplotlib (``pip install ".[plot]"``). Takes about a minute on two cores (more on a first run, which
compiles the kernels).
"""
from __future__ import annotations

import shlex
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
IMAGES = HERE / "images"
sys.path.insert(0, str(HERE.parent))

# the README's quick-start grid (keep in step with README.md)
QUICKSTART = ("fastmlp grid --dataset circles --hidden 8 --hidden 8x2 --hidden 8x4 "
              "--init zeros,constant,normal,xavier_normal,he_normal --scale log:0.1:10:9 --seeds 4 --steps 1000 "
              "--lr 0.3")


def symmetry_figure(path):
    """Loss curves of the canonical starts on the spirals, labelled with their distinct units."""
    import numpy as np
    from click.testing import CliRunner
    from matplotlib.figure import Figure
    from fastmlp.cli import main
    from fastmlp.plots import figure_bytes, line_style
    r = CliRunner().invoke(main, ["symmetry", "--json"])
    if r.exit_code:
        raise SystemExit(r.output)
    import json
    rows = json.loads(r.output.splitlines()[-1])
    fig = Figure(figsize=(9.5, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for k, row in enumerate(rows):
        curve = np.array([np.nan if v is None else v for v in row["loss_curve"]])
        steps = np.arange(curve.size) * row["record_every"]
        st = line_style(k)
        label = (f"{row['init']}: {','.join(map(str, row['distinct_units']))} of 16 units distinct, "
                 f"final {row['final_loss']:.3f}")
        ax.plot(steps, curve, lw=1.4, ms=4, markevery=max(1, curve.size // 8), markerfacecolor="none",
                label=label, **st)
    ax.axhline(np.log(2), color="0.5", lw=1, ls=(0, (2, 2)), label="class prior (ln 2): what learning nothing reaches")
    ax.set_xlabel("step (full-batch SGD, lr 0.5)")
    ax.set_ylabel("training loss")
    ax.set_ylim(0.15, 0.9)
    ax.grid(alpha=0.3)
    fig.legend(loc="outside right upper", fontsize=7.5, title="start (2-16-1 tanh on the spirals)",
               title_fontsize=8)
    path.write_bytes(figure_bytes(fig, "png", dpi=100))


def quickstart(workdir):
    """Run the quick-start grid; write its output and two figures."""
    from click.testing import CliRunner
    from fastmlp.cli import main
    from fastmlp.plots import figure_bytes, make_figures
    from fastmlp.store import Store
    db = Path(workdir) / "results.db"
    args = shlex.split(QUICKSTART)[1:] + ["-o", str(db)]
    r = CliRunner().invoke(main, args)
    if r.exit_code:
        raise SystemExit(r.output)
    lines = [line for line in r.output.splitlines() if not line.startswith("grid: ")]   # progress lines
    text = "\n".join(lines).replace(str(db), "results.db")
    (IMAGES / "quickstart-output.txt").write_text(text + "\n")
    with Store.open(db) as store:
        for kind, caption, fig in make_figures(store, ("heatmap", "scale")):
            (IMAGES / f"quickstart-{kind}.png").write_bytes(figure_bytes(fig, "png", dpi=80))


def main():
    IMAGES.mkdir(exist_ok=True)
    symmetry_figure(IMAGES / "symmetry.png")
    with tempfile.TemporaryDirectory() as tmp:
        quickstart(tmp)
    for f in sorted(IMAGES.iterdir()):
        print(f.relative_to(HERE.parent))


if __name__ == "__main__":
    main()
