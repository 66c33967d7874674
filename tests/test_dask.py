"""Grids on a Dask cluster: the database equals a local run's, row for row, whatever happens on the way.

Two clusters on the loopback interface, each started once: a ``LocalCluster`` of two single-thread worker
processes (the Python API), and a ``dask scheduler`` with two ``dask worker`` processes started here as
subprocesses (the command line, ``--scheduler-file``; one worker is killed with SIGKILL in the last test).
"""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed", reason="the Dask tests need the dask extra: "
                                                        "pip install 'fastmlp[dask]'")

from click.testing import CliRunner  # noqa: E402

from fastmlp.cli_grid import grid  # noqa: E402
from fastmlp.grid import GridSpec  # noqa: E402
from fastmlp.run import Progress, StopRequest, execute, plan_grid, run_grid  # noqa: E402
from fastmlp.store import BOOKKEEPING_COLUMNS, COLUMN_NAMES, Store  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
LIGHT = {"dataset": "xor", "n_samples": 40, "hidden": ["3", "4x2"], "init": "zeros,xavier_normal",
         "scale": "0.5,2", "seeds": "0:4", "steps": 60, "val_split": 0.25}
# chunks that take a moment each, so that a signal or a killed worker finds work in flight
HEAVY = {"dataset": "spirals", "n_samples": 300, "hidden": ["16"], "init": "xavier_normal,normal",
         "scale": "0.5,1", "seeds": "0:4", "steps": 1500}
HEAVY_ARGS = ["--dataset", "spirals", "--n-samples", "300", "--hidden", "16", "--init", "xavier_normal,normal",
              "--scale", "0.5,1", "--seeds", "0:4", "--steps", "1500", "--chunk-size", "2"]


def db_rows(path):
    """Every stored number of every run, without the bookkeeping (times, grid ids, backend), by run key (chunks
    are stored in completion order, and runs that differ only in sigma_w2/sigma_b2 tie in fetch's order)."""
    with Store.open(path) as s:
        return sorted(({k: v for k, v in r.items() if k not in BOOKKEEPING_COLUMNS}
                       for r in s.fetch(columns=list(COLUMN_NAMES))), key=lambda r: r["run_key"])


def claims(path):
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT COUNT(*) FROM claims").fetchone()[0]


def stored(path):
    try:
        with sqlite3.connect(path, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    except sqlite3.Error:
        return 0


def local_run(path, settings):
    run_grid(settings, path)
    return db_rows(path)


def wait_until(predicate, timeout, what):
    t0 = time.monotonic()
    while not predicate():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


# ------------------------------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None, silence_logs=40) as cluster:
        with distributed.Client(cluster, timeout=30) as c:
            yield c


@pytest.fixture(scope="module")
def heavy_local(tmp_path_factory):
    return local_run(tmp_path_factory.mktemp("heavy") / "local.db", HEAVY)


@pytest.fixture(scope="module")
def scheduler_file(tmp_path_factory):
    """A ``dask scheduler`` and two ``dask worker`` processes (no nanny: a killed worker stays dead)."""
    folder = tmp_path_factory.mktemp("cluster")
    path = folder / "scheduler.json"
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    procs = [subprocess.Popen(dask + ["--scheduler-file", str(path), "--host", "127.0.0.1", "--port", "0",
                                      "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=env, cwd=folder)]
    try:
        wait_until(path.exists, 30, "the scheduler file")
        for _ in range(2):
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file", str(path), "--nthreads",
                 "1", "--no-nanny", "--host", "127.0.0.1", "--no-dashboard", "--death-timeout", "60"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=folder))
        with distributed.Client(scheduler_file=str(path), timeout=30) as c:
            c.wait_for_workers(2, timeout=60)
        yield path, procs[1:]
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=1)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)


def grid_process(args, path):
    cmd = [sys.executable, str(REPO / "cli.py"), "grid"] + [str(a) for a in args] + ["--out", str(path)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=path.parent,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))


# ------------------------------------------------------------------------------------------------ API

def test_cluster_database_equals_local_row_for_row(client, tmp_path):
    local = local_run(tmp_path / "local.db", LIGHT)
    notes = []

    class Notes(Progress):
        def note(self, text):
            notes.append(text)

    out = run_grid(dict(LIGHT, chunk_size=3), tmp_path / "dask.db", client=client, progress=Notes())
    assert out.n_trained == len(local) == 32 and out.engine_calls == 12 and out.interrupted is None
    assert db_rows(tmp_path / "dask.db") == local
    assert claims(tmp_path / "dask.db") == 0
    facts = [n for n in notes if n.startswith("dask: ")]
    assert len(facts) == 1 and "2 workers x 1 thread, 1 engine thread per chunk" in facts[0]


def test_meanfield_and_lsuv_on_the_cluster_equal_local(client, tmp_path):
    settings = dict(LIGHT, init="meanfield,lsuv", sigma_w2="1,2.5", sigma_b2="0,0.05", scale="1", seeds="0:2",
                    chunk_size=3)
    run_grid(settings, tmp_path / "dask.db", client=client)
    assert db_rows(tmp_path / "dask.db") == local_run(tmp_path / "local.db", settings)


def test_a_chunk_that_raises_is_stored_failed_and_the_grid_goes_on(tmp_path, monkeypatch):
    # threads, not processes: the patched function is the one the worker calls
    import fastmlp.cluster as cluster
    real = cluster.train_chunk

    def flaky(plan, runs, keys, *args):
        if any(r.seed == 1 and r.init == "zeros" for r in runs):
            raise KeyError("no such thing")
        return real(plan, runs, keys, *args)

    monkeypatch.setattr(cluster, "train_chunk", flaky)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0",
                                  silence_logs=40) as lc, distributed.Client(lc) as c:
        out = run_grid(dict(LIGHT, chunk_size=2), tmp_path / "dask.db", client=c)
    rows = db_rows(tmp_path / "dask.db")
    failed = [r for r in rows if r["status"] == "failed"]
    assert out.n_trained == 32 and len(rows) == 32
    assert failed and all(r["error"] == "KeyError: 'no such thing'" for r in failed)
    assert {(r["init"], r["seed"]) for r in failed} >= {("zeros", 1)}
    assert all(r["final_loss"] is not None for r in rows if r["status"] != "failed")
    monkeypatch.undo()
    run_grid(LIGHT, tmp_path / "dask.db")             # failed runs are retried: now complete and identical
    assert db_rows(tmp_path / "dask.db") == local_run(tmp_path / "local.db", LIGHT)


def test_a_stopped_cluster_grid_finishes_locally_identical(client, tmp_path):
    stop = StopRequest()

    class StopAfterFirst(Progress):
        def advance(self, n):
            stop.request("SIGINT")

    spec = GridSpec.from_settings(dict(LIGHT, chunk_size=2))
    plan = plan_grid(spec)
    with Store.create(tmp_path / "dask.db", plan.data.identity) as store:
        out = execute(plan, store, client=client, progress=StopAfterFirst(), stop=stop)
        assert out.interrupted == "SIGINT" and 0 < out.n_trained < 32
    assert claims(tmp_path / "dask.db") == 0 and 0 < stored(tmp_path / "dask.db") < 32
    with Store.create(tmp_path / "dask.db", plan.data.identity) as store:
        rest = execute(plan, store)
    assert rest.n_skipped == out.n_trained and rest.n_trained == 32 - out.n_trained
    assert db_rows(tmp_path / "dask.db") == local_run(tmp_path / "local.db", LIGHT)


def test_a_plan_lost_from_the_cluster_is_sent_again(client, tmp_path):
    # the scattered plan has no recipe: if the workers holding it die (Dask's memory manager may have dropped the
    # other replicas), every chunk that needs it comes back cancelled
    notes = []

    class LoseThePlan(Progress):
        lost = False

        def advance(self, n):
            if not self.lost:
                self.lost = True
                plans = [distributed.Future(k, client) for k in list(client.futures) if str(k).startswith("Plan-")]
                assert plans
                client.cancel(plans, force=True)

        def note(self, text):
            notes.append(text)

    out = run_grid(dict(LIGHT, chunk_size=2), tmp_path / "dask.db", client=client, progress=LoseThePlan())
    assert out.n_trained == 32
    assert any("the plan is sent to the workers again" in n for n in notes), notes
    assert db_rows(tmp_path / "dask.db") == local_run(tmp_path / "local.db", LIGHT)


def test_workers_of_another_version_are_refused_before_training(client, tmp_path, monkeypatch):
    import re

    import fastmlp
    real = fastmlp.__version__
    monkeypatch.setattr(fastmlp, "__version__", "0.0.1")
    from fastmlp.cluster import ClusterError
    with pytest.raises(ClusterError, match=r"another fastmlp version than this process \(0\.0\.1\).*: fastmlp "
                                           + re.escape(real)):
        run_grid(LIGHT, tmp_path / "v.db", client=client)
    assert stored(tmp_path / "v.db") == 0


def test_an_unreachable_scheduler_is_a_clear_error():
    from fastmlp.cluster import ClusterError, connect
    with pytest.raises(ClusterError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        with connect("tcp://127.0.0.1:9", timeout=2):
            pass


def test_missing_extra_is_a_usage_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "distributed", None)      # import distributed -> ImportError
    from fastmlp.cluster import dask_available
    assert dask_available()[0] is False
    for option in (["--dask-workers", "2"], ["--scheduler", "tcp://127.0.0.1:8786"]):
        result = CliRunner().invoke(grid, ["--dataset", "xor", "--out", str(tmp_path / "m.db")] + option)
        assert result.exit_code == 2, result.output
        assert "pip install 'fastmlp[dask]'" in result.output and option[0] in result.output
    assert not (tmp_path / "m.db").exists()


# ------------------------------------------------------------------------------ command line, processes

@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_cancels_keeps_finished_chunks_and_a_local_rerun_completes(scheduler_file, heavy_local, tmp_path,
                                                                            sig, code):
    path = tmp_path / "int.db"
    proc = grid_process(HEAVY_ARGS + ["--scheduler-file", scheduler_file[0]], path)
    try:
        wait_until(lambda: stored(path) > 0 or proc.poll() is not None, 120, "the first stored chunk")
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, err
    assert f"Interrupted by {sig.name}" in err and "run the same command again" in err
    n = stored(path)
    assert 0 < n < 16 and claims(path) == 0
    result = CliRunner().invoke(grid, HEAVY_ARGS + ["--out", str(path), "--json"])     # no cluster
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["already_done"] == n
    assert db_rows(path) == heavy_local


def test_scheduler_file_with_a_worker_killed_mid_grid(scheduler_file, heavy_local, tmp_path):
    path = tmp_path / "kill.db"
    file, workers = scheduler_file
    proc = grid_process(HEAVY_ARGS + ["--scheduler-file", file], path)
    try:
        with distributed.Client(scheduler_file=str(file), timeout=30) as c:
            addr = next(a for a, pid in c.run(os.getpid).items() if pid == workers[0].pid)
            # kill it while it trains a chunk (and after a first chunk is stored: the run is under way)
            wait_until(lambda: (stored(path) > 0 and c.processing().get(addr)) or proc.poll() is not None, 120,
                       "a stored chunk and a chunk in progress on the worker to kill")
            assert proc.poll() is None and stored(path) < 16
            workers[0].send_signal(signal.SIGKILL)
        workers[0].wait(timeout=10)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "dask: " in err and "2 workers x 1 thread" in err
    assert db_rows(path) == heavy_local and claims(path) == 0
