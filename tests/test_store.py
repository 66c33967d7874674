"""The results database: schema, refusals, claims between processes, retries, export round trips, execution."""
import csv
import json
import os
import sqlite3
import subprocess
import sys

import numpy as np
import pytest

from fastmlp.grid import GridSpec
from fastmlp.run import execute, pending_runs, plan_grid, train_chunk
from fastmlp.store import (BOOKKEEPING_COLUMNS, COLUMN_NAMES, Store, StoreError, aggregate, best_and_worst,
                           decode_curve, encode_curve, export)

DATASET = {"name": "xor", "sha256": "0" * 64, "val_split": None, "split_seed": None, "n_samples": 10,
           "n_features": 2, "task": "binary"}


def row(key, status="done", **extra):
    r = {"run_key": key, "dataset": "xor", "hidden": "4", "depth": 1, "width": 4, "activation": "tanh",
         "init": "normal", "scale": 1.0, "seed": 0, "lr": 0.1, "optimizer": "sgd", "steps": 10, "dtype": "float64",
         "status": status, "final_loss": 0.5, "curve": encode_curve([0.7, 0.6, float("nan")])}
    r.update(extra)
    return r


@pytest.fixture
def store(tmp_path):
    with Store.create(tmp_path / "r.db", DATASET) as s:
        yield s


def test_schema_and_save(store):
    assert set(COLUMN_NAMES) <= {r[1] for r in store.conn.execute("PRAGMA table_info(runs)")}
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.save([row("a"), row("b", "diverged", diverged_step=3)]) == 2
    assert store.finished_keys() == {"a", "b"}
    assert store.finished_keys(["a", "zzz"]) == {"a"}
    # a stored run is never overwritten or duplicated
    assert store.save([row("a", final_loss=9.0)]) == 0
    assert store.fetch(["final_loss"], keys=["a"]) == [{"final_loss": 0.5}]
    assert store.count() == {"done": 1, "diverged": 1, "failed": 0}
    curve = store.fetch(["curve"], keys=["a"], curves=True)[0]["curve"]
    assert curve.dtype == np.float32 and curve[:2].tolist() == pytest.approx([0.7, 0.6]) and np.isnan(curve[2])


def test_failed_runs_are_retried(store):
    store.save([row("a", "failed", error="MemoryError: no", final_loss=None)])
    assert store.finished_keys() == set()
    store.save([row("a")])
    r = store.fetch(["status", "error", "final_loss"])[0]
    assert r == {"status": "done", "error": None, "final_loss": 0.5}


def test_nan_is_stored_as_null(store):
    store.save([row("a", final_loss=float("nan"), train_accuracy=np.float64("inf"))])
    assert store.fetch(["final_loss", "train_accuracy"])[0] == {"final_loss": None, "train_accuracy": None}


def test_reopen_and_refusals(tmp_path, store):
    store.save([row("a")])
    path = store.path
    with Store.create(path, dict(DATASET, name="renamed", options={"x": 1})) as again:   # same data: accepted
        assert again.finished_keys() == {"a"}
    with pytest.raises(StoreError, match="refusing to mix"):
        Store.create(path, dict(DATASET, sha256="1" * 64))
    with pytest.raises(StoreError, match="refusing to mix"):
        Store.create(path, dict(DATASET, val_split=0.2, split_seed=0))
    # another schema version
    other = tmp_path / "old.db"
    Store.create(other, DATASET).close()
    con = sqlite3.connect(other)
    con.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="schema version 99"):
        Store.open(other)
    with pytest.raises(StoreError, match="schema version 99"):
        Store.create(other, DATASET)
    # not a database, or somebody else's
    junk = tmp_path / "junk.db"
    junk.write_text("hello, I am not SQLite" * 100)
    with pytest.raises(StoreError, match="not a fastmlp results database"):
        Store.create(junk, DATASET)
    foreign = tmp_path / "foreign.db"
    con = sqlite3.connect(foreign)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="not a fastmlp results database"):
        Store.create(foreign, DATASET)
    with pytest.raises(StoreError, match="no results database"):
        Store.open(tmp_path / "missing.db")
    # the refusals changed nothing
    with Store.open(path) as s:
        assert s.finished_keys() == {"a"}


def test_claims_between_processes(tmp_path):
    path = tmp_path / "c.db"
    a, b = Store.create(path, DATASET), Store.create(path, DATASET)
    try:
        claimed, finished, busy = a.claim(["k1", "k2", "k3"], 2)
        assert claimed == ["k1", "k2"] and not finished and not busy
        claimed, finished, busy = b.claim(["k1", "k2", "k3"], 5)
        assert claimed == ["k3"] and busy == ["k1", "k2"]
        a.save([row("k1")])
        claimed, finished, busy = b.claim(["k1", "k2"], 5)
        assert finished == {"k1"} and busy == ["k2"] and claimed == []
        a.release()
        claimed, _, _ = b.claim(["k2"], 5)
        assert claimed == ["k2"]
    finally:
        a.close()
        b.close()
    # a claim left by a process that died is taken over
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    with Store.create(path, DATASET) as c:
        with c._transaction():
            c.conn.execute("INSERT INTO claims VALUES ('k9', 'gone', ?, ?, 0)", (c.host, pid))
        claimed, _, busy = c.claim(["k9"], 5)
        assert claimed == ["k9"] and busy == []
    with Store.create(path, DATASET) as d:
        with d._transaction():
            d.conn.execute("INSERT OR REPLACE INTO claims VALUES ('k8', 'alive', ?, ?, ?)",
                           (d.host, os.getpid(), __import__("time").time()))
        assert d.claim(["k8"], 5)[2] == ["k8"]


def test_export_round_trips(store, tmp_path):
    rows = [row(f"k{i}", seed=i, final_loss=0.1 * i + 1e-17, scale=10 ** -i, momentum=None) for i in range(4)]
    rows[2]["status"], rows[2]["diverged_step"] = "diverged", 7
    store.save(rows)
    stored = store.fetch()
    # CSV: every float comes back exactly, NULL as an empty field
    out = tmp_path / "r.csv"
    assert export(store, "csv", out) == 4
    with open(out, newline="") as fh:
        back = list(csv.DictReader(fh))
    assert list(back[0]) == [c for c in COLUMN_NAMES if c != "curve"]
    for s, b in zip(stored, back):
        for c, v in s.items():
            if v is None:
                assert b[c] == ""
            elif isinstance(v, float):
                assert float(b[c]) == v
            else:
                assert b[c] == str(v)
    # JSON with curves
    out = tmp_path / "r.json"
    export(store, "json", out, curves=True)
    back = json.loads(out.read_text())
    assert [{k: v for k, v in b.items() if k != "curve"} for b in back] == stored
    assert back[0]["curve"][:2] == pytest.approx([0.7, 0.6]) and back[0]["curve"][2] is None
    # filters
    assert export(store, "json", tmp_path / "f.json", filters={"status": "diverged"}) == 1
    assert export(store, "json", tmp_path / "f.json", filters={"scale": ["0.01", 1]}) == 2


def test_parquet(store, tmp_path):
    store.save([row("a")])
    try:
        import pyarrow.parquet as pq
    except ImportError:
        with pytest.raises(RuntimeError, match="pip install pyarrow"):
            export(store, "parquet", tmp_path / "r.parquet")
        return
    export(store, "parquet", tmp_path / "r.parquet", curves=True)
    assert pq.read_table(tmp_path / "r.parquet").num_rows == 1


def test_aggregate_and_ranking():
    rows = [dict(init=i, scale=s, seed=k, status=st, final_loss=v, hidden="4", activation="tanh", optimizer="sgd",
                 batch_size=None, steps=10, lr=0.1, momentum=None, weight_decay=0.0, dropout=0.0, dtype="float64")
            for i, s, k, st, v in [("zeros", 1.0, 0, "done", 0.69), ("zeros", 1.0, 1, "done", 0.69),
                                   ("normal", 1.0, 0, "done", 0.2), ("normal", 1.0, 1, "done", 0.4),
                                   ("normal", 10.0, 0, "diverged", 5.0), ("normal", 10.0, 1, "diverged", 7.0)]]
    table = aggregate(rows, ["init", "scale"], "final_loss")
    by = {(d["init"], d["scale"]): d for d in table}
    assert by[("normal", 1.0)]["mean"] == pytest.approx(0.3) and by[("normal", 1.0)]["n"] == 2
    assert by[("normal", 1.0)]["std"] == pytest.approx(np.std([0.2, 0.4], ddof=1))
    assert by[("normal", 10.0)]["mean"] is None and by[("normal", 10.0)]["diverged"] == 2
    best, worst, cols = best_and_worst(rows, "final_loss", False, n=2)
    assert cols == ["init", "scale"]
    assert [(d["init"], d["scale"]) for d in best] == [("normal", 1.0), ("zeros", 1.0)]
    assert worst[0]["init"] == "normal" and worst[0]["scale"] == 10.0      # all diverged ranks last


# -------------------------------------------------------------------------------- execution, chunking

SMALL = {"dataset": "xor", "n_samples": "40", "hidden": ["3"], "init": "zeros,normal,xavier_normal",
         "scale": "0.5,2", "seeds": "2", "lr": "0.5,5", "steps": "15", "dtype": "float32,float64",
         "val_split": "0.25"}


def _rows(path):
    with Store.open(path) as s:
        return [{k: v for k, v in r.items() if k not in BOOKKEEPING_COLUMNS}
                for r in s.fetch(curves=False, columns=list(COLUMN_NAMES))]


def test_results_do_not_depend_on_chunking(tmp_path):
    paths = []
    for chunk in (None, 3):
        # chunk_seconds 0: as large as memory allows (the default also sizes calls by measured speed)
        spec = GridSpec.from_settings(dict(SMALL, chunk_size=chunk, chunk_seconds=0))
        plan = plan_grid(spec)
        path = tmp_path / f"chunk{chunk}.db"
        with Store.create(path, plan.data.identity) as store:
            out = execute(plan, store)
            assert out.n_trained == len(plan.runs) == 48
            assert out.engine_calls == (2 if chunk is None else 16)     # float32 and float64 groups
            assert pending_runs(plan, store) == []
        paths.append(path)
    a, b = _rows(paths[0]), _rows(paths[1])
    assert [r["run_key"] for r in a] == [r["run_key"] for r in b]
    assert a == b
    statuses = {r["status"] for r in a}
    assert statuses <= {"done", "diverged"}
    r = next(r for r in a if r["init"] == "zeros")
    assert r["min_distinct_units"] == 1 and r["val_accuracy"] is not None
    assert decode_curve(r["curve"]).size == 15


def test_a_chunk_the_engine_rejects_is_stored_as_failed(tmp_path):
    plan = plan_grid(GridSpec.from_settings({"dataset": "xor", "n_samples": "20", "hidden": ["2"], "steps": "3"}))
    run = plan.runs[0]
    bad = type(run)(**dict(run.__dict__, lr=float("nan")))
    rows = train_chunk(plan, [bad], ["k"])
    assert rows[0]["status"] == "failed" and "learning rate" in rows[0]["error"]


def test_create_joins_a_database_another_process_is_creating(tmp_path):
    """Two grids started at once on one new file: the second can find it switched to WAL but without its schema
    (the first has not committed yet). That is a database being made, not a foreign file: create joins it."""
    path = tmp_path / "new.db"
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode = WAL")        # what the first process's connect leaves before its schema
    con.close()
    assert path.stat().st_size > 0
    with Store.create(path, DATASET) as s:
        assert s.save([row("a")]) == 1
    with Store.open(path) as s:
        assert s.finished_keys() == {"a"}


def test_in_process_grids_run_blas_on_one_thread(tmp_path, monkeypatch):
    """Between engine calls a grid's NumPy work is small; the BLAS's idle threads would spin against the engine's
    (bench/NOTES.md change 43). Each chunk runs with the BLAS limited to one thread, as on Dask's workers."""
    threadpoolctl = pytest.importorskip("threadpoolctl", reason="threadpoolctl (with scikit-learn) limits BLAS")
    import fastmlp.run as run_module
    seen = []
    real = run_module.train_chunk

    def spy(*args, **kwargs):
        seen.append({lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"})
        return real(*args, **kwargs)

    monkeypatch.setattr(run_module, "train_chunk", spy)
    from fastmlp.run import run_grid
    run_grid({"dataset": "xor", "hidden": ["4"], "seeds": "0:4", "steps": 5, "chunk_size": 2, "chunk_seconds": 0},
             tmp_path / "g.db")
    assert len(seen) == 2 and all(s == {1} for s in seen), seen
