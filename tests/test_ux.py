"""The new user's path: no silent traps, consistent commands, honest tables and figures, database edges."""
import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import fastmlp
from fastmlp import compile_cache
from fastmlp.cli import main
from fastmlp.engine.reference import activate
from fastmlp.grid import GridError, GridSpec, parse_architectures
from fastmlp.store import Store

REPO = Path(__file__).resolve().parents[1]
# a tiny grid: two schemes that cannot break symmetry, one that does; two learning rates; 3 seeds
TINY = ["grid", "--dataset", "xor", "--n-samples", "40", "--hidden", "3", "--init", "zeros,constant,xavier_normal",
        "--scale", "log:0.1:1:3", "--lr", "0.3,1", "--seeds", "3", "--steps", "60", "-q"]


def cli(*args, ok=True):
    result = CliRunner().invoke(main, [str(a) for a in args])
    if ok:
        assert result.exit_code == 0, result.output + repr(result.exception)
    return result


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("ux") / "tiny.db"
    cli(*TINY, "-o", path)
    return path


# ------------------------------------------------------------------------------------ correctness traps

def _by_hand(net, params, X, y):
    """Loss and accuracy of a sigmoid network, written out with NumPy (BCE from the logits)."""
    a = X
    layers = fastmlp.Layout(net.sizes).unpack(params[None, :])
    for i, (W, b) in enumerate(layers):
        z = a @ W[0].T + b[0]
        a = z if i == len(layers) - 1 else activate(z, net.activation, net.leaky_slope)
    z = z[:, 0]
    loss = np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))))
    return loss, np.mean((z > 0) == (y > 0.5))


def test_loss_and_accuracy_takes_y_as_train_does():
    data = fastmlp.data.xor(n_samples=60)
    net = fastmlp.Network(2, (4,), 1)
    res = fastmlp.train(net, data.X, data.y, init=fastmlp.Init("he_normal"), seed=1,
                        training=fastmlp.Training(lr=0.5, steps=50), backend="numpy")
    want = _by_hand(net, res.params[0], data.X, data.y)
    for y in (data.y, data.y[:, None], data.y.astype(int).tolist()):
        loss, acc = fastmlp.loss_and_accuracy(net, res.params, data.X, y)
        np.testing.assert_allclose([loss[0], acc[0]], want, rtol=1e-12)
    with pytest.raises(ValueError, match="samples"):
        fastmlp.loss_and_accuracy(net, res.params, data.X, data.y[:-1])
    # softmax: integer labels and one-hot rows give the same numbers
    blobs = fastmlp.data.blobs(n_samples=60)
    snet = fastmlp.Network(2, (4,), 3, output="softmax")
    p = fastmlp.init_batch(snet, fastmlp.Init("xavier_normal"), [0, 1], "float64")
    a = fastmlp.loss_and_accuracy(snet, p, blobs.X, blobs.y)
    b = fastmlp.loss_and_accuracy(snet, p, blobs.X, np.eye(3)[blobs.y])
    np.testing.assert_allclose(a, b)


def test_hidden_grammar_is_one_and_the_ambiguous_form_is_refused(tmp_path):
    assert parse_architectures(["8", "8-16", "8x2-4", "16,32x2"]) == [(8,), (8, 16), (8, 8, 4), (16,), (32, 32)]
    with pytest.raises(GridError, match="ambiguous"):
        parse_architectures(["8,16"])
    r = cli("grid", "--dataset", "xor", "--hidden", "8,16", "--dry-run", ok=False)
    assert r.exit_code == 2
    assert "8-16" in r.output and "--hidden 8 --hidden 16" in r.output      # both readings
    r = cli("train", "--dataset", "xor", "--hidden", "4,3", ok=False)
    assert r.exit_code == 2 and "4-3" in r.output
    r = cli("grid", "--dataset", "xor", "--hidden", "8", "--hidden", "8-16", "--hidden", "4x3", "--dry-run",
            "-o", tmp_path / "d.db")
    assert "Architectures (3): 8 (2-8-1), 8-16 (2-8-16-1), 4x3 (2-4-4-4-1)" in r.output
    payload = json.loads(cli("grid", "--dataset", "xor", "--hidden", "8-16", "--dry-run", "--json", "-q", "-o",
                             tmp_path / "d.db").output)
    assert payload["architectures"] == ["8-16"]


def test_architectures_are_written_alike_in_show_export_and_report(tmp_path):
    db = tmp_path / "a.db"
    cli("grid", "--dataset", "xor", "--n-samples", "30", "--hidden", "3-2", "--hidden", "2x2", "--steps", "10",
        "-q", "-o", db)
    shown = cli("show", db, "--by", "hidden").output
    assert "3-2" in shown and "2x2" in shown and "3,2" not in shown
    cli("export", db, "-o", tmp_path / "a.csv")
    with open(tmp_path / "a.csv") as fh:
        assert {r["hidden"] for r in csv.DictReader(fh)} == {"3-2", "2x2"}
    cli("report", db, "--no-figures", "-o", tmp_path / "a.html")
    page = (tmp_path / "a.html").read_text()
    assert ">3-2<" in page and ">3,2<" not in page and "3-2, 2x2" in page      # the tables and the settings
    # and the label reads back as a filter
    assert "2x2" not in cli("show", db, "--by", "hidden", "--filter", "hidden=3-2").output


def test_plot_suffix_picks_the_format_or_is_a_usage_error(tiny, tmp_path):
    pytest.importorskip("matplotlib", reason="plots need matplotlib (pip install 'fastmlp[plot]')")
    cli("plot", tiny, "--kind", "heatmap", "-o", tmp_path / "one.pdf")
    assert (tmp_path / "one.pdf").read_bytes()[:4] == b"%PDF"
    r = cli("plot", tiny, "--kind", "heatmap", "-o", tmp_path / "one.jpg", ok=False)
    assert r.exit_code == 2 and ".png, .svg or .pdf" in r.output and not (tmp_path / "one.jpg").exists()
    cli("plot", tiny, "--kind", "heatmap,scale", "--out", tmp_path / "both.svg")
    for k in ("heatmap", "scale"):
        assert (tmp_path / f"both-{k}.svg").read_text().lstrip().startswith("<?xml")
    assert not (tmp_path / "both.svg").exists()
    cli("plot", tiny, "--kind", "heatmap,scale", "-o", tmp_path / "pages.pdf")
    assert (tmp_path / "pages.pdf").read_bytes().count(b"/Type /Page\n") + \
        (tmp_path / "pages.pdf").read_bytes().count(b"/Type /Page ") >= 2
    r = cli("plot", tiny, "--kind", "heatmap", "--format", "svg", "-o", tmp_path / "x.png", ok=False)
    assert r.exit_code == 2


def test_filters_take_values_as_displayed_and_say_what_exists(tiny):
    with Store.open(tiny) as s:
        scales = sorted({r["scale"] for r in s.fetch()})
    middle = scales[1]                       # 0.316227766...: tables show 0.3162
    assert abs(middle - 0.316227766) < 1e-6
    out = json.loads(cli("show", tiny, "--by", "init", "--filter", "scale=0.3162", "--json").output)
    assert out["runs"] == 3 * 2 * 3          # schemes x lr x seeds at that one scale
    r = cli("show", tiny, "--filter", "init=xavier", ok=False)
    assert r.exit_code == 2
    assert "init holds: zeros, constant, xavier_normal" in r.output
    r = cli("export", tiny, "--filter", "scale=0.5", ok=False)
    assert r.exit_code == 2 and "0.1, 0.3162, 1" in r.output


# -------------------------------------------------------------------------------- tables and figures

def test_tables_are_coloured_against_learning_nothing(tiny):
    from fastmlp.report import _shade, goodness, pivot_html, reference_values, summarize_runs
    with Store.open(tiny) as s:
        rows, meta = s.fetch(), s.meta()
    ref = reference_values(meta["dataset"])
    assert ref["loss"] == pytest.approx(np.log(2), rel=0.05) and ref["accuracy"] >= 0.5
    summary = summarize_runs(rows, "final_loss", baseline=ref)
    page = pivot_html(summary["by_init_scale"], "final_loss", False, ref)
    # zeros never learns: its cells sit at the class prior, coloured as "no better than learning nothing"
    zeros = [d for d in summary["by_init_scale"] if d["init"] == "zeros"]
    for d in zeros:
        assert goodness(d["mean"], "final_loss", ref["loss"]) == pytest.approx(0.0, abs=0.01)
    assert page.count(_shade(goodness(zeros[0]["mean"], "final_loss", ref["loss"]))) >= len(zeros)
    assert "Read against the class-prior loss" in __import__("fastmlp.report").report.summary_text(summary)


def test_an_older_database_still_has_its_reference_loss(tiny, tmp_path):
    """Databases made before the dataset identity held the class-prior loss: the target loss, a percentage of
    it, tells it back."""
    from fastmlp.report import reference_values
    db = tmp_path / "old.db"
    db.write_bytes(Path(tiny).read_bytes())
    with sqlite3.connect(db) as c:
        d = json.loads(c.execute("SELECT value FROM meta WHERE key='dataset'").fetchone()[0])
        want = d.pop("baseline_loss")
        c.execute("UPDATE meta SET value=? WHERE key='dataset'", (json.dumps(d),))
    with Store.open(db) as s:
        assert reference_values(s.meta()["dataset"])["loss"] is None
        assert reference_values(s.meta()["dataset"], s)["loss"] == pytest.approx(want, rel=1e-12)


def test_symmetry_section_reads_the_data(tiny):
    from fastmlp.symmetry_facts import run_fate, symmetry_facts
    with Store.open(tiny) as s:
        rows, meta = s.fetch(), s.meta()
    facts = {d["init"]: d for d in symmetry_facts(rows, meta["dataset"]["baseline_loss"])["schemes"]}
    for r in rows:      # each fate agrees with the stored diagnostics
        fate = run_fate(r)
        if r["init"] == "zeros":
            assert fate == "never moved" and r["weights_moved"].replace("0", "").strip(",") == ""
        if r["init"] == "constant":
            assert fate == "copies" and r["distinct_units"] == "1"
    assert facts["zeros"]["never moved"] == facts["zeros"]["runs"] == 18
    assert facts["constant"]["copies"] == 18
    assert facts["xavier_normal"]["all distinct"] == 18
    # full-batch training from a seed-independent start: every seed gives the same loss
    assert "every seed gave the identical final loss" in facts["zeros"]["reading"]
    assert "every seed gave the identical final loss" in facts["constant"]["reading"]
    assert "identical final loss in all" not in facts["xavier_normal"]["reading"]
    per_layer = symmetry_facts(rows)["by_init_layer"]
    assert per_layer[("constant", 1)] == pytest.approx(1 / 3) and per_layer[("xavier_normal", 1)] == 1.0
    # the report fetches only the columns the facts read (a large database's rows take a third of the memory)
    from fastmlp.symmetry_facts import COLUMNS
    with Store.open(tiny) as s:
        few = s.fetch(columns=COLUMNS)
    assert symmetry_facts(few, meta["dataset"]["baseline_loss"]) == \
        symmetry_facts(rows, meta["dataset"]["baseline_loss"])


def test_figures_never_pool_schemes_silently_and_keep_lines_visible(tiny):
    pytest.importorskip("matplotlib", reason="plots need matplotlib (pip install 'fastmlp[plot]')")
    from fastmlp.plots import line_style, make_figures
    with Store.open(tiny) as s:
        figs = {k: (cap, fig) for k, cap, fig in make_figures(s)}
    cap, fig = figs["heatmap"]
    panels = [ax for ax in fig.axes if ax.get_title().startswith("init = ")]
    assert [ax.get_title() for ax in panels] == ["init = zeros", "init = constant", "init = xavier_normal"]
    assert [ax.get_ylabel() for ax in panels][:1] == ["lr"] and "pooled" not in cap     # lr is an axis here
    assert "pooled over lr" in figs["curves"][0] and "pooled over lr" in figs["curves"][1]._suptitle.get_text()
    cap, fig = figs["scale"]
    assert sorted(ax.get_title() for ax in fig.axes) == ["lr = 0.3", "lr = 1"]     # a panel per lr
    styles = [line_style(k) for k in range(3)]
    assert len({(s["marker"], str(s["linestyle"])) for s in styles}) == 3
    assert all(ax.get_legend() is None for ax in fig.axes) and fig.legends        # legend outside the axes
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    FigureCanvasAgg(fig).draw()
    box = fig.legends[0].get_window_extent()
    assert not any(box.overlaps(ax.get_window_extent()) for ax in fig.axes)


# ------------------------------------------------------------------------------------- consistent commands

def test_one_learning_rate_default_and_output_option_everywhere():
    from fastmlp.cli_grid import GRID_COMMANDS
    assert fastmlp.Training().lr == GridSpec().lr[0] == 0.1
    assert {p.name: p.default for p in main.commands["train"].params}["lr"] == 0.1
    symmetry_lr = [p for p in main.commands["symmetry"].params if p.name == "lr"][0]
    assert symmetry_lr.default == 0.5 and "not 0.1" in symmetry_lr.help          # documented difference
    for cmd in GRID_COMMANDS:
        if cmd.name == "show":
            continue
        names = [o for p in cmd.params for o in p.opts if o in ("-o", "--out")]
        assert names == ["-o", "--out"], cmd.name


def test_readers_default_to_results_db(tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = cli("show", ok=False)
    assert r.exit_code == 2 and "results.db" in r.output
    (tmp_path / "results.db").write_bytes(Path(tiny).read_bytes())
    assert "Runs: 54" in cli("show").output
    assert cli("export").output.count("\n") == 55


def test_train_takes_grids_dataset_options_and_blames_the_right_one():
    out = json.loads(cli("train", "--dataset", "spirals", "--data-option", "arms=3", "--data-option",
                         "noise=0.2", "--n-samples", "90", "--val-split", "0.2", "--hidden", "4", "--steps",
                         "20", "--json").output)
    assert out["val_accuracy"] is not None
    r = cli("train", "--dataset", "spirals", "--data-option", "nois=0.2", ok=False)
    assert r.exit_code == 2 and "'--data-option'" in r.output and "noise" in r.output
    assert "--n-samples" not in r.output
    r = cli("grid", "--dataset", "spirals", "--data-option", "nois=0.2", "--dry-run", ok=False)
    assert r.exit_code == 2 and "'--data-option'" in r.output
    r = cli("grid", "--scale", "1e-3..10", "--dry-run", ok=False)
    assert r.exit_code == 2 and "log:START:STOP:COUNT" in r.output and "'--scale'" in r.output
    r = cli("grid", "--init", "xavier", "--dry-run", ok=False)
    assert r.exit_code == 2 and "xavier_normal" in r.output


def test_train_table_is_in_words_with_the_reading():
    text = cli("train", "--dataset", "xor", "--n-samples", "40", "--hidden", "4", "--init", "zeros",
               "--steps", "30").output
    assert "['" not in text and "[" not in text.split("\n", 1)[1]
    assert "distinct units  layer 1: 1 of 4" in text
    assert "reading         weights never moved: only the output bias learned" in text
    assert "max cosine      layer 1:" in text


def test_info_shows_the_compile_cache_and_a_first_compile_is_announced(monkeypatch):
    assert "compile cache: on" in cli("info").output
    said = []
    states = iter([{}, {Path("cpu.k-1.py311.1.nbc"): 1}])
    monkeypatch.setattr(compile_cache, "kernel_stamps", lambda: next(states))
    with compile_cache.CompileWatch(said.append, ("float32",)):
        pass
    assert said[0].startswith("compiling kernels for float32, once") and "cached in" in said[0]
    assert said[1].startswith("compiled 1 kernel file and ran in")
    said.clear()                            # a warm cache: nothing to say
    monkeypatch.setattr(compile_cache, "kernel_stamps", lambda: {Path("a.nbc"): 1})
    with compile_cache.CompileWatch(said.append, ("float64",), poll=0.01):
        time.sleep(0.05)
    assert said == []
    # kernels compiled during the work (other kernels than those cached, or a changed source): the watcher
    # says so while it runs, not only afterwards
    stamps = {Path("a.nbc"): 1}
    monkeypatch.setattr(compile_cache, "kernel_stamps", lambda: dict(stamps))
    with compile_cache.CompileWatch(said.append, ("float64",), poll=0.01):
        stamps[Path("a.nbc")] = 2
        for _ in range(500):
            if said:
                break
            time.sleep(0.01)
        assert said and said[0].startswith("compiling kernels for float64")
    assert said[-1].startswith("compiled 1 kernel file")


def test_kernels_cached_from_older_sources_are_announced_before_the_work(tmp_path, monkeypatch):
    import pickle
    import numba
    src = tmp_path / "kern.py"
    src.write_text("x = 1\n")
    cache = tmp_path / "__pycache__"
    cache.mkdir()
    index = cache / "kern.f-1.py311.nbi"
    (cache / "kern.f-1.py311.1.nbc").write_bytes(b"k")

    def write_index(stamp, version=numba.__version__):
        with open(index, "wb") as fh:          # numba's index layout: its version, then (stamp, overloads)
            pickle.dump(version, fh)
            fh.write(pickle.dumps((stamp, {})))
    monkeypatch.setattr(compile_cache, "kernel_sources", lambda: [src])
    monkeypatch.setattr(compile_cache, "_cache_path", lambda f: cache)
    monkeypatch.setattr(compile_cache, "_source_stamp", lambda f: b"n" * 32)
    write_index(b"n" * 32)
    assert compile_cache.stale_sources() == []
    for stale in ((b"o" * 32,), (b"n" * 32, "0.1")):      # edited, or another numba's cache
        write_index(*stale)
        assert compile_cache.stale_sources() == [src]
        said = []
        with compile_cache.CompileWatch(said.append, ("float64",), poll=60):
            assert said and said[0].startswith("compiling kernels for float64")


# ------------------------------------------------------------------------------------- database edges

def test_reading_changes_nothing_and_a_damaged_database_is_refused_before_training(tiny, tmp_path):
    db = tmp_path / "d.db"
    db.write_bytes(Path(tiny).read_bytes())
    before = db.read_bytes()
    cli("show", db)
    assert db.read_bytes() == before          # read-only: the database itself is not written
    args = ["grid", "--dataset", "xor", "--n-samples", "40", "--hidden", "3", "--init", "he_normal", "--steps",
            "10", "-q", "-o", db]
    for damage in ("ALTER TABLE runs DROP COLUMN final_loss", "DROP TABLE claims",
                   "DELETE FROM meta WHERE key='dataset'"):
        db.write_bytes(before)
        with sqlite3.connect(db) as c:
            c.execute(damage)
        for command in (["show", db], args):
            r = cli(*command, ok=False)
            assert r.exit_code == 2 and "damaged" in r.output and r.exception is None or \
                isinstance(r.exception, SystemExit), r.output
        with sqlite3.connect(db) as c:      # nothing trained, no grid recorded
            assert c.execute("SELECT COUNT(*) FROM grids").fetchone()[0] == 1
            assert c.execute("SELECT COUNT(*) FROM runs WHERE init='he_normal'").fetchone()[0] == 0


def test_a_foreign_sqlite_file_is_refused_untouched(tmp_path):
    db = tmp_path / "other.db"
    with sqlite3.connect(db) as c:
        c.execute("CREATE TABLE t (x)")
    before = db.read_bytes()
    r = cli("grid", "--dataset", "xor", "--steps", "5", "-o", db, ok=False)
    assert r.exit_code == 2 and "not a fastmlp results database" in r.output
    assert db.read_bytes() == before
    with sqlite3.connect(db) as c:
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_an_unwritable_place_is_a_plain_usage_error(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "access", lambda path, mode: mode != os.W_OK)
    r = cli("grid", "--dataset", "xor", "--steps", "5", "-o", tmp_path / "new.db", ok=False)
    assert r.exit_code == 2 and "not writable" in r.output and not (tmp_path / "new.db").exists()


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="file permissions do not bind root (or this system): needs a non-root POSIX user")
def test_a_database_in_a_read_only_directory_is_readable(tiny, tmp_path):
    d = tmp_path / "ro"
    d.mkdir()
    db = d / "r.db"
    db.write_bytes(Path(tiny).read_bytes())
    os.chmod(db, 0o444)
    os.chmod(d, 0o555)
    try:
        assert "Runs: 54" in cli("show", db).output
        r = cli("grid", *TINY[1:], "-o", db, ok=False)
        assert r.exit_code == 2 and "read-only" in r.output
    finally:
        os.chmod(d, 0o755)


def test_a_reader_falls_back_to_immutable_when_read_only_cannot_open(tiny, monkeypatch):
    """What a WAL database in a read-only directory does to a mode=ro connection (it cannot make its -shm file):
    the reader retries with immutable=1 instead of failing."""
    real = sqlite3.connect
    uris = []

    def connect(target, *args, **kwargs):
        uris.append(str(target))
        conn = real(target, *args, **kwargs)
        if "immutable" not in str(target):
            conn.close()
            raise sqlite3.OperationalError("attempt to write a readonly database")
        return conn
    monkeypatch.setattr(sqlite3, "connect", connect)
    with Store.open(tiny) as s:
        assert len(s.fetch()) == 54
    assert [u.split("?")[1] for u in uris] == ["mode=ro", "mode=ro&immutable=1"]


def test_a_killed_grid_shows_as_interrupted(tiny, tmp_path):
    db = tmp_path / "k.db"
    db.write_bytes(Path(tiny).read_bytes())
    code = ("import os, signal, sys; from fastmlp.store import Store; s = Store.open(sys.argv[1]); "
            "ident = s.meta()['dataset']; s.close(); w = Store.create(sys.argv[1], ident); "
            "w.begin_grid('fastmlp grid (killed)', {}, 1, 0); os.kill(os.getpid(), signal.SIGKILL)")
    p = subprocess.run([sys.executable, "-c", code, str(db)], cwd=REPO, timeout=120)
    assert p.returncode == -signal.SIGKILL
    with Store.open(db) as s:
        last = s.grids()[-1]
    assert last["state"] == "interrupted" and "is gone" in last["state_note"]
    assert "interrupted (process gone)" in cli("show", db).output
    with sqlite3.connect(db) as c:          # the record itself is left as it was
        assert c.execute("SELECT state FROM grids ORDER BY id DESC").fetchone()[0] == "running"


def test_exploding_losses_diverge_by_a_rule_users_set_and_overflow_is_quiet(tmp_path):
    db = tmp_path / "x.db"
    base = ["grid", "--dataset", "xor", "--n-samples", "40", "--hidden", "3", "--lr", "1e6,0.1", "--seeds", "2",
            "--steps", "40", "-q"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = cli(*base, "--dtype", "float32", "--scale", "1,1e40", "-o", db)
    assert r.output == "" and not [w for w in caught if issubclass(w.category, RuntimeWarning)]
    with Store.open(db) as s:
        rows = s.fetch()
    for row in rows:
        if row["scale"] == 1e40:                       # the start overflows float32: a result, not a crash
            assert row["status"] == "diverged" and row["diverged_step"] == 0
        elif row["lr"] == 0.1:
            assert row["status"] == "done"
        else:                                          # the rule: final loss above 10 x the initial loss
            exploded = row["final_loss"] is None or row["final_loss"] > 10 * row["initial_loss"]
            assert (row["status"] == "diverged") == exploded
            if row["status"] == "diverged" and row["final_loss"] is not None:
                assert "--diverge-factor" in row["error"]
    off = tmp_path / "off.db"
    cli(*base, "--diverge-factor", "off", "-o", off)
    with Store.open(off) as s:
        assert {r["status"] for r in s.fetch() if r["lr"] == 1e6} <= {"done", "diverged"}
        finite = [r for r in s.fetch() if r["lr"] == 1e6 and r["final_loss"] is not None]
    assert all(r["status"] == "done" for r in finite)
    assert cli("grid", "--diverge-factor", "0.5", "--dry-run", ok=False).exit_code == 2


def test_a_single_class_csv_target_is_not_silently_regression(tmp_path):
    path = tmp_path / "one.csv"
    path.write_text("a,b,label\n" + "".join(f"{i},{i % 3},1\n" for i in range(12)))
    r = cli("grid", "--dataset", path, "--target", "label", "--dry-run", "-o", tmp_path / "o.db", ok=False)
    assert r.exit_code == 2 and "single value" in r.output and "--task regression" in r.output
    r = cli("grid", "--dataset", path, "--target", "label", "--task", "regression", "--dry-run", "-o",
            tmp_path / "o.db")
    assert "regression" in r.output


# ------------------------------------------------------------------------------------------ README

def test_readme_is_a_front_door_whose_quick_start_parses(tmp_path, monkeypatch):
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 210
    for image in __import__("re").findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
        assert (REPO / image).is_file(), image
    quick = [line for line in text.splitlines() if line.startswith("pip install")]
    assert len(quick) == 2 and quick[1].startswith('pip install ".[test') and "python -m pytest" in quick[1]
    command = quick[0].split("&&", 1)[1].split()
    assert command[:2] == ["fastmlp", "grid"]
    monkeypatch.chdir(tmp_path)
    r = cli(*command[1:], "--dry-run")
    assert "Architectures" in r.output


def test_readme_library_snippet_runs_and_prints_what_it_says(capsys):
    import re
    text = (REPO / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    assert len(code.strip().splitlines()) <= 12
    scope = {}
    exec(compile(code, "README.md", "exec"), scope)
    printed = capsys.readouterr().out
    claimed = re.search(r"# \(array\(\[([0-9.]+)\]\), array\(\[([0-9.]+)\]\)\)", code)
    loss, acc = scope["fastmlp"].loss_and_accuracy(scope["net"], scope["res"].params, scope["data"].X,
                                                   scope["data"].y)
    assert round(float(loss[0]), 3) == float(claimed.group(1)) and round(float(acc[0]), 3) == float(claimed.group(2))
    assert "[16]" in printed and scope["batch"].params.shape == (64, 65)
