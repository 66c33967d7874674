"""The grid commands: options, errors, resume, interruption (a real subprocess), show/export/plot/report."""
import csv
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from fastmlp.cli_grid import GRID_COMMANDS, export, grid, plot, report, show
from fastmlp.store import BOOKKEEPING_COLUMNS, COLUMN_NAMES, Store

REPO = Path(__file__).resolve().parents[1]
TINY = ["--dataset", "xor", "--n-samples", "40", "--hidden", "3", "--init", "zeros,xavier_normal",
        "--scale", "0.5,2", "--seeds", "2", "--steps", "15"]


def invoke(command, args, ok=True):
    result = CliRunner().invoke(command, [str(a) for a in args])
    if ok:
        assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def db_rows(path):
    """Every stored number of every run, without the bookkeeping (times, grid ids)."""
    with Store.open(path) as s:
        return [{k: v for k, v in r.items() if k not in BOOKKEEPING_COLUMNS}
                for r in s.fetch(columns=list(COLUMN_NAMES))]


@pytest.fixture(scope="module")
def tiny_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny") / "tiny.db"
    invoke(grid, TINY + ["--val-split", "0.25", "--out", path, "--quiet"])
    return path


def test_commands_are_listed_and_explain_themselves():
    assert [c.name for c in GRID_COMMANDS] == ["grid", "show", "export", "plot", "report"]
    text = invoke(grid, ["--help"]).output
    for fragment in ("log:A:B:N", "Examples", "--seeds", "--hidden", "--config", "--dry-run", "--chunk-size",
                     "--json", "--quiet", "--out"):
        assert fragment in text
    for command in GRID_COMMANDS[1:]:
        assert "Examples" in invoke(command, ["--help"]).output


def test_run_rerun_and_grow(tmp_path):
    path = tmp_path / "r.db"
    first = invoke(grid, TINY + ["--out", path])
    assert "Grid: 8 runs (init 2 x scale 2 x seed 2) on xor" in first.output
    assert "Best" in first.output and "by init x scale" in first.output
    assert f"Results database: {path}" in first.output
    again = json.loads(invoke(grid, TINY + ["--out", path, "--json"]).stdout)
    assert (again["grid_size"], again["already_done"], again["trained"]) == (8, 8, 0)
    grown = json.loads(invoke(grid, TINY[:-4] + ["--seeds", "3", "--steps", "15", "--out", path, "--json"]).stdout)
    assert (grown["grid_size"], grown["already_done"], grown["trained"]) == (12, 8, 4)
    assert grown["counts"]["runs"] == 12 and len(db_rows(path)) == 12
    for key in ("database", "best", "worst", "by_init_scale", "metric", "counts"):
        assert key in grown


def test_growing_a_database_of_another_version_says_so(tmp_path):
    path = tmp_path / "v.db"
    invoke(grid, TINY + ["--out", path, "--quiet"])
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '0.0.1' WHERE key = 'fastmlp_version'")
    same = invoke(grid, TINY + ["--out", path])          # nothing new to train: nothing to warn about
    assert "made with fastmlp 0.0.1" not in same.output
    grown = invoke(grid, TINY[:-4] + ["--seeds", "3", "--steps", "15", "--out", path])
    assert "holds 8 runs made with fastmlp 0.0.1" in grown.stderr
    assert len(db_rows(path)) == 12


def test_dry_run_touches_nothing(tmp_path):
    path = tmp_path / "dry.db"
    result = invoke(grid, TINY + ["--out", path, "--dry-run", "--json"])
    data = json.loads(result.stdout)
    assert data["grid_size"] == data["to_run"] == 8 and data["estimate"]["flops"] > 0
    assert not path.exists()
    assert "Work:" in invoke(grid, TINY + ["--out", path, "--dry-run"]).output


def test_chunking_does_not_change_the_database(tmp_path):
    invoke(grid, TINY + ["--out", tmp_path / "a.db", "-q"])
    invoke(grid, TINY + ["--out", tmp_path / "b.db", "-q", "--chunk-size", "3"])
    a, b = db_rows(tmp_path / "a.db"), db_rows(tmp_path / "b.db")
    assert len(a) == 8 and a == b


def write(path, text):
    path.write_text(text)
    return path


@pytest.mark.parametrize("args, fragment", [
    (["--init", "zeros,bogus"], "choose from: zeros, constant"),
    (["--activation", "gelu"], "choose from: tanh"),
    (["--optimizer", "rmsprop"], "choose from: sgd"),
    (["--dataset", "nope"], "choose from: xor"),
    (["--scale", "log:1e-3:10"], "malformed range"),
    (["--scale", "1:3"], "malformed range"),
    (["--seeds", "0"], "must be positive"),
    (["--seeds", "4:2"], "empty range"),
    (["--lr", "0"], "> 0"),
    (["--lr", "0.1,-1"], "> 0"),
    (["--hidden", "0x3"], "positive"),
    (["--batch-size", "0"], "positive"),
    (["--steps", "0"], "positive"),
    (["--steps", "5", "--epochs", "2"], "not both"),
    (["--metric", "speed"], "choose from: final_loss"),
    (["--max-memory", "1K"], "more than the memory budget"),
    (["--dataset", "missing.csv", "--target", "y"], "not found"),
    (["--backend", "gpu"], "choose from: numba"),
    (["--config", "missing.toml"], "not found"),
])
def test_bad_input_is_a_usage_error(tmp_path, args, fragment):
    result = invoke(grid, ["--out", tmp_path / "e.db"] + args, ok=False)
    assert result.exit_code == 2, result.output
    assert fragment in result.output and "Traceback" not in result.output
    assert not (tmp_path / "e.db").exists()


def test_bad_csv_files(tmp_path):
    good = write(tmp_path / "d.csv", "a,b,label\n" + "".join(f"{i % 3},{i % 5},{i % 2}\n" for i in range(30)))
    bad = write(tmp_path / "bad.csv", "a,b,label\n1,2,0\n1,2\n")
    text = write(tmp_path / "text.csv", "a,b,label\n1,x,0\n2,3,1\n")
    for args, fragment in [([good, "--target", "nope"], "target column 'nope' not in header"),
                           ([good], "needs target"),
                           ([bad, "--target", "label"], "has 2 fields"),
                           ([text, "--target", "label"], "non-numeric value 'x'")]:
        result = invoke(grid, ["--out", tmp_path / "e.db", "--dataset"] + args, ok=False)
        assert result.exit_code == 2 and fragment in result.output and "Traceback" not in result.output, \
            result.output
    # the good file trains, with a validation split
    out = json.loads(invoke(grid, ["--dataset", good, "--target", "label", "--val-split", "0.2", "--steps", "5",
                                   "--hidden", "2", "--out", tmp_path / "csv.db", "--json"]).stdout)
    assert out["dataset"]["n_train"] == 24 and out["dataset"]["n_val"] == 6
    assert all(r["val_accuracy"] is not None for r in db_rows(tmp_path / "csv.db"))


def test_another_dataset_is_refused_and_nothing_is_lost(tmp_path):
    path = tmp_path / "r.db"
    invoke(grid, TINY + ["--out", path, "-q"])
    before = db_rows(path)
    result = invoke(grid, TINY + ["--out", path, "--dataset", "circles"], ok=False)
    assert result.exit_code == 2 and "refusing to mix" in result.output
    result = invoke(grid, TINY + ["--out", path, "--val-split", "0.5"], ok=False)
    assert result.exit_code == 2 and "refusing to mix" in result.output
    assert db_rows(path) == before
    write(tmp_path / "junk.db", "not a database" * 200)
    result = invoke(grid, TINY + ["--out", tmp_path / "junk.db"], ok=False)
    assert result.exit_code == 2 and "not a fastmlp results database" in result.output


def test_config_file_with_overrides(tmp_path):
    cfg = write(tmp_path / "sweep.toml", """
dataset = "moons"
n_samples = 30
hidden = ["2", "2x2"]
init = "normal,he_normal"
scale = "log:0.1:1:2"
lr = [0.05, 0.5]
steps = 8
seeds = 1
""")
    out = json.loads(invoke(grid, ["--config", cfg, "--lr", "0.2", "--out", tmp_path / "c.db", "--json"]).stdout)
    assert out["dataset"]["name"] == "moons" and out["grid_size"] == 2 * 2 * 2
    rows = db_rows(tmp_path / "c.db")
    assert {r["lr"] for r in rows} == {0.2} and {r["hidden"] for r in rows} == {"2", "2,2"}
    assert {r["scale"] for r in rows} == {0.1, 1.0}
    with Store.open(tmp_path / "c.db") as s:
        g = s.grids()[-1]
    assert g["state"] == "finished" and "--config" in g["command"] and g["settings"]["lr"] == [0.2]
    bad = write(tmp_path / "bad.toml", "learning_rate = 1\n")
    result = invoke(grid, ["--config", bad], ok=False)
    assert result.exit_code == 2 and "unknown key 'learning_rate'" in result.output


def test_show(tiny_db):
    text = invoke(show, [tiny_db]).output
    assert "xor" in text and "Best" in text and "by init x scale" in text
    text = invoke(show, [tiny_db, "--by", "init,scale", "--metric", "train_accuracy"]).output
    assert "train_accuracy by init, scale" in text and "zeros" in text
    data = json.loads(invoke(show, [tiny_db, "--by", "init", "--json"]).stdout)
    assert [r["init"] for r in data["rows"]] == ["zeros", "xavier_normal"] and data["rows"][0]["n"] == 4
    data = json.loads(invoke(show, [tiny_db, "--json", "--filter", "init=zeros"]).stdout)
    assert data["counts"]["runs"] == 4
    assert invoke(show, [tiny_db, "--by", "colour"], ok=False).exit_code == 2
    assert invoke(show, [tiny_db, "--metric", "nope"], ok=False).exit_code == 2
    missing = invoke(show, [Path(tiny_db).parent / "missing.db"], ok=False)
    assert missing.exit_code == 2 and "no results database" in missing.output


def test_export(tiny_db, tmp_path):
    text = invoke(export, [tiny_db]).stdout
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 8
    for column in ("run_key", "dataset", "hidden", "activation", "init", "scale", "seed", "lr", "optimizer",
                   "steps", "status", "final_loss", "train_accuracy", "val_accuracy", "distinct_units"):
        assert column in rows[0]
    stored = {r["run_key"]: r for r in db_rows(tiny_db)}
    for r in rows:
        assert float(r["final_loss"]) == stored[r["run_key"]]["final_loss"]
    invoke(export, [tiny_db, "-o", tmp_path / "r.json", "--curves"])
    data = json.loads((tmp_path / "r.json").read_text())
    assert len(data) == 8 and len(data[0]["curve"]) == 15
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        result = invoke(export, [tiny_db, "--format", "parquet", "-o", tmp_path / "r.parquet"], ok=False)
        assert result.exit_code == 1 and "pyarrow" in result.output and "Traceback" not in result.output
    else:
        invoke(export, [tiny_db, "-o", tmp_path / "r.parquet"])
        assert (tmp_path / "r.parquet").stat().st_size > 0


class _Checker(HTMLParser):
    """Checks that non-void elements nest properly and collects images."""
    VOID = {"meta", "img", "br", "hr", "link", "input", "path", "use", "rect", "line", "polyline", "circle"}

    def __init__(self):
        super().__init__()
        self.stack, self.images, self.errors, self.svgs = [], [], [], 0

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs).get("src", ""))
        if tag == "svg":
            self.svgs += 1
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs).get("src", ""))

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> (open: {self.stack[-3:]})")
        else:
            self.stack.pop()


def check_html(text):
    c = _Checker()
    c.feed(text)
    c.close()
    assert not c.errors and not c.stack, (c.errors, c.stack)
    return c


def test_plot_and_report(tiny_db, tmp_path):
    pytest.importorskip("matplotlib")
    out = invoke(plot, [tiny_db, "-o", tmp_path / "figs"]).output.split()
    assert len(out) == 3
    for p in out:
        data = Path(p).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000
    svg = tmp_path / "heat.svg"
    invoke(plot, [tiny_db, "--kind", "heatmap", "--y", "init", "-o", svg])
    assert b"<svg" in svg.read_bytes()[:1000]
    assert invoke(plot, [tiny_db, "--kind", "pie"], ok=False).exit_code == 2
    assert invoke(plot, [tiny_db, "--x", "colour"], ok=False).exit_code == 2
    page = tmp_path / "report.html"
    invoke(report, [tiny_db, "-o", page])
    text = page.read_text()
    checker = check_html(text)
    assert len([s for s in checker.images if s.startswith("data:image/png;base64,")]) == 3
    for fragment in ("Best configurations", "by init scheme × scale", "Grid settings", "fastmlp grid", "xor"):
        assert fragment in text
    invoke(report, [tiny_db, "-o", page, "--figure-format", "svg"])
    assert check_html(page.read_text()).svgs >= 3


def test_without_matplotlib(tiny_db, tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")] + ["matplotlib"]:
        monkeypatch.setitem(sys.modules, name, None)
    result = invoke(plot, [tiny_db, "-o", tmp_path], ok=False)
    assert result.exit_code == 1 and "pip install 'fastmlp[plot]'" in result.output
    assert "Traceback" not in result.output
    page = tmp_path / "report.html"
    result = invoke(report, [tiny_db, "-o", page])
    text = page.read_text()
    assert "matplotlib" in text and "<img" not in text and "Best configurations" in text
    check_html(text)


# ------------------------------------------------------------------------------------- real processes

SLOW = ["--dataset", "xor", "--n-samples", "200", "--hidden", "8", "--init", "zeros,normal,xavier_normal,he_normal",
        "--scale", "lin:0.5:2:10", "--seeds", "6", "--steps", "100", "--chunk-seconds", "0"]
N_SLOW = 4 * 10 * 6


def start(args, cwd):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    return subprocess.Popen([sys.executable, "-c", "from fastmlp.cli_grid import grid; grid()", *map(str, args)],
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stored(path):
    if not path.exists():
        return 0
    try:
        con = sqlite3.connect(path, timeout=5)
        try:
            return con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        finally:
            con.close()
    except sqlite3.OperationalError:        # not created yet
        return 0


@pytest.mark.parametrize("sig, code, resume", [(signal.SIGINT, 130, True), (signal.SIGTERM, 143, False)])
def test_interrupt_and_resume_equals_an_uninterrupted_run(tmp_path, sig, code, resume):
    path = tmp_path / "i.db"
    args = SLOW + ["--chunk-size", "2", "--out", path]
    proc = start(args, tmp_path)
    deadline = time.monotonic() + 120
    while stored(path) < 6 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, out + err
    assert "Interrupted by" in err and "run the same command again" in err and "Traceback" not in err
    n = stored(path)
    assert 6 <= n < N_SLOW
    with Store.open(path) as s:
        assert s.grids()[-1]["state"] == "interrupted"
        assert s.conn.execute("SELECT COUNT(*) FROM claims").fetchone()[0] == 0
    if not resume:
        return
    proc = start(args, tmp_path)                         # the same command again
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, out + err
    assert f"{n} were already stored" in out
    reference = tmp_path / "ref.db"
    invoke(grid, SLOW + ["--out", reference, "-q"])
    a, b = db_rows(path), db_rows(reference)
    assert len(a) == N_SLOW and [r["run_key"] for r in a] == [r["run_key"] for r in b]
    assert a == b


def test_two_processes_share_a_database(tmp_path):
    path = tmp_path / "shared.db"
    args = SLOW[:-6] + ["--seeds", "3", "--steps", "50", "--chunk-size", "4", "--chunk-seconds", "0", "--out",
                        path, "--json"]
    procs = [start(args, tmp_path) for _ in range(2)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, out + err
        results.append(json.loads(out))
    assert sum(r["trained"] for r in results) == 120          # no run trained twice
    invoke(grid, args[:-3] + ["--out", tmp_path / "ref.db", "-q"])
    a, b = db_rows(path), db_rows(tmp_path / "ref.db")
    assert len(a) == 120 and a == b
