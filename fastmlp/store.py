"""The results database: one SQLite file, one row per network, written chunk by chunk.

Schema (``SCHEMA_VERSION``):

``meta``
    ``format``, ``schema_version``, ``dataset`` (JSON identity: name, options, sizes and a SHA-256 of the data),
    ``created_at``, ``fastmlp_version``.
``runs``
    One row per network, keyed by ``run_key`` (a hash of the run's settings and the dataset identity): every
    setting as a column, the status (``done``, ``diverged`` with ``diverged_step``, ``failed`` with ``error``),
    losses and accuracies, steps to the target loss, the diagnostics, and the loss curve as float32 bytes.
``grids``
    One row per ``fastmlp grid`` invocation: its command line and settings, counts, state and duration.
``claims``
    Runs being trained right now, by which process: two processes sharing a database never train the same run
    twice, and a claim whose process has died is taken over.

The database uses WAL journaling and a busy timeout; every chunk's rows are written in one transaction with
``INSERT ... ON CONFLICT`` on the run key, so an interruption loses at most the chunk in progress and a run is
never stored twice. A failed run is retried when its grid is run again.

Edges: readers (``show``, ``plot``, ``report``, ``export``, ``--dry-run``) open the file read-only, so a database
on a read-only file or directory can be read; a writer that cannot write says so (a ``StoreError``, exit 2 on the
command line). Every table, column and meta entry is checked on opening, so a damaged database is refused before
any training; a foreign SQLite file is refused before anything is written to it (its journal mode included).
A grid recorded as ``running`` whose process is gone shows as ``interrupted`` (:meth:`Store.grids`).
"""
from __future__ import annotations

import csv
import json
import math
import os
import socket
import sqlite3
import sys
import time
import urllib.parse
import uuid
from pathlib import Path

import numpy as np

SCHEMA_VERSION = 1
FORMAT = "fastmlp-results"
DEFAULT_PATH = "results.db"
STALE_CLAIM_SECONDS = 12 * 3600      # a claim from another host older than this is taken over

# (column, SQL type) of the runs table, in export order
COLUMNS = (
    ("run_key", "TEXT PRIMARY KEY"), ("dataset", "TEXT"), ("hidden", "TEXT"), ("depth", "INTEGER"),
    ("width", "INTEGER"), ("n_params", "INTEGER"), ("activation", "TEXT"), ("output", "TEXT"),
    ("init", "TEXT"), ("scale", "REAL"), ("seed", "INTEGER"), ("lr", "REAL"), ("optimizer", "TEXT"),
    ("momentum", "REAL"), ("weight_decay", "REAL"), ("dropout", "REAL"), ("batch_size", "INTEGER"),
    ("steps", "INTEGER"), ("epochs", "INTEGER"), ("record_every", "INTEGER"), ("dtype", "TEXT"),
    ("backend", "TEXT"), ("status", "TEXT"), ("diverged_step", "INTEGER"), ("error", "TEXT"),
    ("initial_loss", "REAL"), ("final_loss", "REAL"), ("train_accuracy", "REAL"), ("val_loss", "REAL"),
    ("val_accuracy", "REAL"), ("target_loss", "REAL"), ("steps_to_target", "INTEGER"),
    ("distinct_units", "TEXT"), ("min_distinct_units", "INTEGER"), ("distinct_units_rtol", "TEXT"),
    ("min_distinct_units_rtol", "INTEGER"), ("max_cosine", "REAL"), ("max_cosine_layers", "TEXT"),
    ("effective_rank", "TEXT"), ("min_effective_rank", "REAL"), ("saturated", "REAL"),
    ("saturated_layers", "TEXT"), ("dead", "REAL"), ("dead_layers", "TEXT"), ("weights_moved", "TEXT"),
    ("distance_moved", "REAL"), ("distance_moved_layers", "TEXT"), ("grad_norms", "TEXT"),
    ("grad_ratio", "REAL"), ("curve", "BLOB"), ("grid_id", "INTEGER"), ("train_seconds", "REAL"),
    ("created_at", "TEXT"), ("sigma_w2", "REAL"), ("sigma_b2", "REAL"),
)
# columns added after SCHEMA_VERSION 1 was first released: added to an older database when it is reopened for
# writing, read as NULL from one opened for reading
ADDED_COLUMNS = ("sigma_w2", "sigma_b2")
COLUMN_NAMES = tuple(c for c, _ in COLUMNS)
# settings that tell two configurations apart (seed aside): the columns summaries group by
CONFIG_COLUMNS = ("hidden", "activation", "optimizer", "batch_size", "steps", "init", "scale", "sigma_w2",
                  "sigma_b2", "lr", "momentum", "weight_decay", "dropout", "dtype")
# columns that record how and when a run was made, not what it computed
BOOKKEEPING_COLUMNS = ("grid_id", "train_seconds", "created_at", "backend")
EXPORT_FORMATS = ("csv", "json", "parquet")
GRID_COLUMNS = ("id", "started_at", "finished_at", "state", "command", "settings", "n_runs", "n_skipped",
                "n_trained", "seconds")
CLAIM_COLUMNS = ("run_key", "owner", "host", "pid", "claimed_at")
# every table and column fastmlp reads or writes (checked on open), and the meta entries it needs
SCHEMA_TABLES = {"meta": ("key", "value"), "runs": tuple(c for c in COLUMN_NAMES if c not in ADDED_COLUMNS),
                 "grids": GRID_COLUMNS, "claims": CLAIM_COLUMNS}
META_KEYS = ("format", "schema_version", "dataset", "created_at", "fastmlp_version")


def _while_locked(step, patience=60.0):
    """Run ``step``, retrying while SQLite says the database is locked. Switching a new file to WAL needs an
    exclusive lock, and where two connections would wait on each other SQLite answers "database is locked" at
    once instead of calling its busy handler: two grids started together on one new file meet exactly that."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return step()
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class StoreError(ValueError):
    """A database that cannot be used: missing, not fastmlp's, another schema version or another dataset."""


def _now():
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _pid_alive(pid):
    """Whether a process of this host is running (on Windows, where os.kill cannot probe, assume it is)."""
    if os.name == "nt":
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def describe_dataset(identity):
    """One line about a dataset identity: ``spirals (600 samples, 2 features, binary; sha256 1a2b3c4d)``."""
    d = identity or {}
    extra = f", validation {d['val_split']:g} (split seed {d.get('split_seed', 0)})" if d.get("val_split") else ""
    return (f"{d.get('name', '?')} ({d.get('n_samples', '?')} samples, {d.get('n_features', '?')} features, "
            f"{d.get('task', '?')}{extra}; sha256 {str(d.get('sha256', ''))[:12]})")


def same_dataset(a, b):
    """Whether two dataset identities describe the same training and validation data."""
    keys = ("sha256", "val_split", "split_seed")
    return all(a.get(k) == b.get(k) for k in keys)


class Store:
    """A results database.

    Use :meth:`create` (``fastmlp grid``: make or reopen, checking the dataset) or :meth:`open` (an existing
    database, for reading).

    Parameters
    ----------
    path : str or Path
    """

    def __init__(self, path, _conn, readonly=False):
        self.path = Path(path)
        self.conn = _conn
        self.readonly = readonly
        self.owner = uuid.uuid4().hex
        self.host = socket.gethostname()

    # ------------------------------------------------------------------------------------------- opening
    @staticmethod
    def _connect(path, write=True):
        """A connection: for writing (WAL journaling), or read-only (``mode=ro``; ``immutable`` when the
        directory or the file cannot be written, so that a database on a read-only medium can still be read)."""
        path = Path(path)
        if write:
            if path.exists() and not os.access(path, os.W_OK):
                raise StoreError(f"cannot write to the results database {path}: the file is read-only. "
                                 f"Read it with show/plot/report/export, or give another --out")
            if not path.exists() and not os.access(path.parent, os.W_OK):
                raise StoreError(f"cannot create the results database {path}: the directory {path.parent} is "
                                 f"not writable; give another --out")
            try:
                conn = sqlite3.connect(str(path), timeout=60.0, isolation_level=None)
            except sqlite3.Error as e:
                raise StoreError(f"cannot open the results database {path} for writing ({e}); give another "
                                 f"--out") from None
            conn.row_factory = sqlite3.Row
            try:
                conn.execute("PRAGMA busy_timeout = 60000")
                _while_locked(lambda: conn.execute("PRAGMA journal_mode = WAL"))
                conn.execute("PRAGMA synchronous = NORMAL")
            except sqlite3.DatabaseError as e:
                conn.close()
                text = str(e)
                if "readonly" in text or "unable to open" in text:
                    raise StoreError(f"cannot write to the results database {path} ({text}); give another "
                                     f"--out") from None
                raise StoreError(f"{path} is not a fastmlp results database ({text})") from None
            return conn
        uri = "file:" + urllib.parse.quote(str(path.resolve()))
        last = None
        for extra in ("?mode=ro", "?mode=ro&immutable=1"):
            conn = None
            try:
                conn = sqlite3.connect(uri + extra, uri=True, timeout=60.0, isolation_level=None)
                conn.row_factory = sqlite3.Row
                conn.execute("PRAGMA busy_timeout = 60000")
                _while_locked(lambda: conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone())
                return conn
            except sqlite3.DatabaseError as e:
                if conn is not None:
                    conn.close()
                last = e
                # a WAL database in a directory this process cannot write: only immutable reads are possible
                if not isinstance(e, sqlite3.OperationalError) or "not a database" in str(e):
                    break
        raise StoreError(f"{path} is not a fastmlp results database ({last})") from None

    @classmethod
    def create(cls, path, dataset):
        """Create the database, or reopen it for more runs of the same dataset.

        An existing file is checked read-only first (a foreign SQLite file is refused untouched: its journal
        mode is not switched to WAL), then opened for writing.

        Parameters
        ----------
        path : str or Path
        dataset : dict
            The dataset identity (see :func:`fastmlp.run.load_data`).

        Raises
        ------
        StoreError
            If the file is not a fastmlp database, is damaged, has another schema version, holds another
            dataset, or cannot be written.
        """
        path = Path(path)
        if path.exists() and path.is_dir():
            raise StoreError(f"{path} is a directory, not a results database")
        if not path.parent.exists():
            raise StoreError(f"directory {path.parent} does not exist")
        if path.exists() and path.stat().st_size > 0 and cls._has_tables(path):
            with cls.open(path) as existing:        # refuses foreign or damaged files before any write
                existing._check(dataset)
        conn = cls._connect(path)
        store = cls(path, conn)
        try:
            with store._transaction():
                tables = store._tables()
                if tables and "meta" not in tables:
                    raise StoreError(f"{path} is an SQLite database but not a fastmlp results database")
                if not tables:
                    store._create_schema(dataset)
                store._add_grid_process_columns()
            store._check_schema()
            store._check(dataset)
            absent = store._absent_columns()
            if absent:
                with store._transaction():
                    for c in absent:
                        store.conn.execute(f"ALTER TABLE runs ADD COLUMN {c} {dict(COLUMNS)[c]}")
        except sqlite3.OperationalError as e:
            conn.close()
            raise StoreError(f"cannot write to the results database {path} ({e}); give another --out") from None
        except BaseException:
            conn.close()
            raise
        return store

    @classmethod
    def _has_tables(cls, path):
        """Whether an SQLite file holds any table. One without is a database that another process is creating
        at this moment (its schema is not committed yet): ``create`` joins it rather than refusing it."""
        conn = cls._connect(path, write=False)
        try:
            return cls(path, conn, readonly=True)._tables() != set()
        finally:
            conn.close()

    @classmethod
    def open(cls, path):
        """Open an existing database for reading (and no other change); works on read-only files and
        directories.

        Raises
        ------
        StoreError
            If it is missing, not a fastmlp database, damaged (a table, column or meta entry missing), or of
            another schema version.
        """
        path = Path(path)
        if not path.is_file():
            raise StoreError(f"no results database at {path}")
        conn = cls._connect(path, write=False)
        store = cls(path, conn, readonly=True)
        try:
            if "meta" not in store._tables():
                raise StoreError(f"{path} is not a fastmlp results database")
            store._check_schema()
            store._check(None)
        except BaseException:
            conn.close()
            raise
        return store

    def _columns(self, table):
        return {r[1] for r in self.conn.execute(f"PRAGMA table_info({table})")}

    def _check_schema(self):
        """Refuse a fastmlp database whose structure is damaged: every table, column and meta entry that
        fastmlp reads or writes must be there (checked before any training, so no work is lost)."""
        tables = self._tables()
        if "meta" in tables:
            keys = {r[0] for r in self.conn.execute("SELECT key FROM meta")}
            if "format" in keys and self.conn.execute("SELECT value FROM meta WHERE key='format'").fetchone()[0] \
                    != FORMAT:
                raise StoreError(f"{self.path} is not a fastmlp results database")
        problems = []
        for table, columns in SCHEMA_TABLES.items():
            if table not in tables:
                problems.append(f"table {table!r} is missing")
                continue
            missing = [c for c in columns if c not in self._columns(table)]
            if missing:
                problems.append(f"table {table!r} lacks column{'s' * (len(missing) > 1)} {', '.join(missing)}")
        if "meta" in tables:
            missing = [k for k in META_KEYS if k not in keys]
            if missing:
                problems.append(f"meta lacks {', '.join(missing)}")
            elif "dataset" in keys:
                try:
                    json.loads(self.conn.execute("SELECT value FROM meta WHERE key='dataset'").fetchone()[0])
                except (TypeError, ValueError):
                    problems.append("meta's dataset entry is not valid JSON")
        if problems:
            raise StoreError(f"{self.path} is a damaged fastmlp results database: {'; '.join(problems)}. "
                             f"fastmlp will not read or extend it; use another --out (or restore a copy)")

    def _add_grid_process_columns(self):
        """Add the grids table's ``host`` and ``pid`` (which process runs a grid; databases made by fastmlp
        0.8.0 lack them) so that a grid whose process died shows as interrupted."""
        have = self._columns("grids")
        for col, kind in (("host", "TEXT"), ("pid", "INTEGER")):
            if col not in have:
                self.conn.execute(f"ALTER TABLE grids ADD COLUMN {col} {kind}")

    def close(self):
        """Release this process's claims and close the connection."""
        if not self.readonly:
            try:
                self.release()
            except sqlite3.Error:
                pass
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _absent_columns(self):
        """Columns of ``ADDED_COLUMNS`` that this database's runs table lacks (made by an older fastmlp)."""
        have = {r[1] for r in self.conn.execute("PRAGMA table_info(runs)")}
        return [c for c in ADDED_COLUMNS if have and c not in have]

    def _tables(self):
        try:
            return {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{self.path} is not a fastmlp results database ({e})") from None

    class _Tx:
        def __init__(self, conn):
            self.conn = conn

        def __enter__(self):
            self.conn.execute("BEGIN IMMEDIATE")
            return self.conn

        def __exit__(self, kind, value, tb):
            self.conn.execute("COMMIT" if kind is None else "ROLLBACK")

    def _transaction(self):
        """A write transaction (``BEGIN IMMEDIATE``): committed on success, rolled back on any exception."""
        return Store._Tx(self.conn)

    def _create_schema(self, dataset):
        cols = ",\n  ".join(f"{c} {t}" for c, t in COLUMNS)
        from . import __version__
        for sql in (
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)",
            f"CREATE TABLE runs (\n  {cols}\n)",
            "CREATE INDEX runs_init_scale ON runs (init, scale)",
            "CREATE INDEX runs_status ON runs (status)",
            "CREATE TABLE grids (id INTEGER PRIMARY KEY AUTOINCREMENT, started_at TEXT, finished_at TEXT, "
            "state TEXT, command TEXT, settings TEXT, n_runs INTEGER, n_skipped INTEGER, n_trained INTEGER, "
            "seconds REAL)",
            "CREATE TABLE claims (run_key TEXT PRIMARY KEY, owner TEXT, host TEXT, pid INTEGER, claimed_at REAL)",
        ):
            self.conn.execute(sql)
        meta = {"format": FORMAT, "schema_version": str(SCHEMA_VERSION), "dataset": json.dumps(dataset),
                "created_at": _now(), "fastmlp_version": __version__}
        self.conn.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())

    def meta(self):
        """The ``meta`` table as a dict (``dataset`` decoded)."""
        m = {r["key"]: r["value"] for r in self.conn.execute("SELECT key, value FROM meta")}
        if "dataset" in m:
            m["dataset"] = json.loads(m["dataset"])
        return m

    def _check(self, dataset):
        m = self.meta()
        if m.get("format") != FORMAT:
            raise StoreError(f"{self.path} is not a fastmlp results database")
        if m.get("schema_version") != str(SCHEMA_VERSION):
            raise StoreError(f"{self.path} was made with results schema version {m.get('schema_version')}; this "
                             f"fastmlp reads version {SCHEMA_VERSION}. Use another --out, or the fastmlp version "
                             f"that made it ({m.get('fastmlp_version', 'unknown')}).")
        if dataset is not None and not same_dataset(m["dataset"], dataset):
            raise StoreError(f"{self.path} holds results for {describe_dataset(m['dataset'])}, not for "
                             f"{describe_dataset(dataset)}; refusing to mix them. Use another --out.")

    @property
    def dataset(self):
        """The dataset identity the database was made for."""
        return self.meta()["dataset"]

    # --------------------------------------------------------------------------------------------- grids
    def begin_grid(self, command, settings, n_runs, n_skipped):
        """Record the start of a ``fastmlp grid`` invocation (and which process runs it); returns its id."""
        with self._transaction():
            cur = self.conn.execute(
                "INSERT INTO grids (started_at, state, command, settings, n_runs, n_skipped, n_trained, host, pid) "
                "VALUES (?, 'running', ?, ?, ?, ?, 0, ?, ?)",
                (_now(), command, json.dumps(settings), n_runs, n_skipped, self.host, os.getpid()))
            return cur.lastrowid

    def end_grid(self, grid_id, state, n_trained, seconds):
        """Record how a grid invocation ended (``finished``, ``interrupted`` or ``failed``)."""
        with self._transaction():
            self.conn.execute("UPDATE grids SET finished_at=?, state=?, n_trained=?, seconds=? WHERE id=?",
                              (_now(), state, n_trained, seconds, grid_id))

    def grids(self):
        """All grid invocations, oldest first, ``settings`` decoded.

        A grid recorded as ``running`` whose process (on this host) no longer exists was killed without a
        chance to record its end (SIGKILL, a crash, a power cut): its ``state`` is given as ``interrupted``
        and ``state_note`` says why (the database itself is not changed).
        """
        out = []
        for r in self.conn.execute("SELECT * FROM grids ORDER BY id"):
            d = dict(r)
            d["settings"] = json.loads(d["settings"] or "{}")
            d["state_note"] = None
            if d["state"] == "running" and d.get("pid") is not None and d.get("host") == self.host \
                    and not _pid_alive(d["pid"]):
                d["state"] = "interrupted"
                d["state_note"] = (f"recorded as running, but its process ({d['host']}, pid {d['pid']}) is gone: "
                                   f"killed before it could record its end")
            out.append(d)
        return out

    # --------------------------------------------------------------------------------------------- runs
    def _select_keys(self, table, keys, columns="run_key", where=""):
        keys = list(keys)
        out = []
        for i in range(0, len(keys), 500):
            part = keys[i:i + 500]
            q = f"SELECT {columns} FROM {table} WHERE run_key IN ({','.join('?' * len(part))}){where}"
            out += self.conn.execute(q, part).fetchall()
        return out

    def finished_keys(self, keys=None):
        """Keys of runs stored as done or diverged (a failed run is not finished: it is retried)."""
        if keys is None:
            return {r[0] for r in self.conn.execute("SELECT run_key FROM runs WHERE status != 'failed'")}
        return {r[0] for r in self._select_keys("runs", keys, where=" AND status != 'failed'")}

    def claim(self, keys, limit):
        """Claim up to ``limit`` of ``keys`` (in order) for this process to train.

        Returns
        -------
        claimed : list of str
            Keys now claimed by this process.
        finished : set of str
            Keys another process has finished meanwhile.
        busy : list of str
            Keys claimed by another live process.
        """
        keys = list(keys)
        now = time.time()
        with self._transaction():
            finished = {r[0] for r in self._select_keys("runs", keys, where=" AND status != 'failed'")}
            holders = {r["run_key"]: r for r in self._select_keys("claims", keys, "*")}
            claimed, busy, stale = [], [], []
            for k in keys:
                if k in finished:
                    continue
                h = holders.get(k)
                if h is not None and h["owner"] != self.owner:
                    dead = (h["host"] == self.host and not _pid_alive(h["pid"])) or \
                        now - h["claimed_at"] > STALE_CLAIM_SECONDS
                    if not dead:
                        busy.append(k)
                        continue
                    stale.append(k)
                if len(claimed) < limit:
                    claimed.append(k)
            self.conn.executemany("INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?, ?)",
                                  [(k, self.owner, self.host, os.getpid(), now) for k in claimed])
        return claimed, finished, busy

    def release(self, keys=None):
        """Drop this process's claims (all of them, or those on ``keys``)."""
        with self._transaction():
            if keys is None:
                self.conn.execute("DELETE FROM claims WHERE owner = ?", (self.owner,))
            else:
                self.conn.executemany("DELETE FROM claims WHERE owner = ? AND run_key = ?",
                                      [(self.owner, k) for k in keys])

    def save(self, rows):
        """Store finished runs in one transaction and drop their claims.

        A run already stored as done or diverged is left as it is; a stored failure is replaced.

        Returns
        -------
        int
            Rows written.
        """
        if not rows:
            return 0
        cols = COLUMN_NAMES          # every column, so that a retried failure leaves nothing of itself
        update = ", ".join(f"{c}=excluded.{c}" for c in cols if c != "run_key")
        sql = (f"INSERT INTO runs ({', '.join(cols)}) VALUES ({', '.join(':' + c for c in cols)}) "
               f"ON CONFLICT(run_key) DO UPDATE SET {update} WHERE runs.status = 'failed'")
        with self._transaction():
            before = self.conn.total_changes
            self.conn.executemany(sql, [{c: _sql_value(r.get(c)) for c in cols} for r in rows])
            written = self.conn.total_changes - before
            from .params_store import write_params
            write_params(self.conn, rows)      # --save-params: in the same transaction as the rows
            self.conn.executemany("DELETE FROM claims WHERE owner = ? AND run_key = ?",
                                  [(self.owner, r["run_key"]) for r in rows])
        return written

    def count(self):
        """Number of stored runs by status: ``{"done": n, "diverged": n, "failed": n}``."""
        out = {"done": 0, "diverged": 0, "failed": 0}
        for r in self.conn.execute("SELECT status, COUNT(*) FROM runs GROUP BY status"):
            out[r[0]] = r[1]
        return out

    def fetch(self, columns=None, keys=None, filters=None, curves=False):
        """Stored runs as dicts.

        Parameters
        ----------
        columns : sequence of str, optional
            Default: every column (the curve only with ``curves=True``).
        keys : iterable of str, optional
            Only these runs.
        filters : dict, optional
            ``{column: value or list of values}``: keep the runs whose column equals one of the values
            (numbers compared as numbers, to a relative tolerance of :data:`FILTER_RTOL`, so that values as
            tables show them match; ``none`` matches NULL).
        curves : bool
            Decode the ``curve`` column into a float32 array.

        Returns
        -------
        list of dict
            Ordered by the configuration columns and seed.
        """
        if columns is None:
            columns = [c for c in COLUMN_NAMES if curves or c != "curve"]
        columns = list(columns)
        bad = [c for c in list(columns) + list(filters or {}) if c not in COLUMN_NAMES]
        if bad:
            raise StoreError(f"unknown column {bad[0]!r}; columns are: {', '.join(COLUMN_NAMES)}")
        select = list(dict.fromkeys(columns + list(filters or {}) + (["run_key"] if keys is not None else [])))
        absent = set(self._absent_columns())
        q = f"SELECT {', '.join(f'NULL AS {c}' if c in absent else c for c in select)} FROM runs ORDER BY depth, hidden, activation, optimizer, batch_size, " \
            "steps, init, scale, lr, momentum, weight_decay, dropout, dtype, seed"
        cur = self.conn.cursor()
        cur.row_factory = None          # tuples zipped into dicts: 2.6x faster than dict(sqlite3.Row) (change 46)
        rows = [dict(zip(select, r)) for r in cur.execute(q)]
        if keys is not None:
            wanted = set(keys)
            rows = [r for r in rows if r["run_key"] in wanted]
        for c, v in (filters or {}).items():
            vals = v if isinstance(v, (list, tuple, set)) else [v]
            rows = [r for r in rows if any(_matches(r[c], x) for x in vals)]
        extra = [c for c in select if c not in columns]
        if extra:
            for r in rows:
                for c in extra:
                    del r[c]
        if curves and "curve" in columns:
            for r in rows:
                r["curve"] = decode_curve(r["curve"])
        return rows


# A filter's number matches a stored one within this relative tolerance: tables show 4 significant digits
# (0.3162 for 0.316227766), and a value copied from a table must find its runs.
FILTER_RTOL = 5e-4


def _matches(stored, wanted):
    """Whether a stored value equals a filter value given as text or a number (numbers to
    :data:`FILTER_RTOL` relative, so that a value as tables display it matches)."""
    if stored is None:
        return str(wanted).lower() in ("", "none", "null", "full", "-")
    if isinstance(stored, (int, float)):
        try:
            w = float(wanted)
        except (TypeError, ValueError):
            return False
        return math.isclose(float(stored), w, rel_tol=FILTER_RTOL, abs_tol=0.0) or float(stored) == w
    return str(stored) == str(wanted)


def _sql_value(v):
    if isinstance(v, (np.floating, float)):
        v = float(v)
        return v if math.isfinite(v) else None
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return int(v)
    return v


def encode_curve(curve):
    """A loss curve as little-endian float32 bytes."""
    return np.asarray(curve, dtype="<f4").tobytes()


def decode_curve(blob):
    """The float32 loss curve stored by :func:`encode_curve` (an empty array for NULL)."""
    if blob is None:
        return np.zeros(0, dtype=np.float32)
    return np.frombuffer(blob, dtype="<f4").copy()


# --------------------------------------------------------------------------------------------- export

def export(store, fmt, out=None, curves=False, filters=None):
    """Write every stored run to a CSV, JSON or Parquet file (or standard output).

    Parameters
    ----------
    store : Store
    fmt : {"csv", "json", "parquet"}
    out : str or Path, optional
        File to write; standard output when None.
    curves : bool
        Include each loss curve (a JSON list in CSV, a list in JSON and Parquet).
    filters : dict, optional
        As for :meth:`Store.fetch`.

    Returns
    -------
    int
        Rows written.

    Raises
    ------
    StoreError
        For an unknown format; ``RuntimeError`` for Parquet without pyarrow installed.
    """
    if fmt not in EXPORT_FORMATS:
        raise StoreError(f"unknown export format {fmt!r}; choose from: {', '.join(EXPORT_FORMATS)}")
    columns = [c for c in COLUMN_NAMES if c != "curve"] + (["curve"] if curves else [])
    if fmt == "parquet":
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise RuntimeError("Parquet export needs pyarrow, which is not installed: pip install pyarrow "
                               "(or pip install 'fastmlp[parquet]'); --format csv and json work without it") \
                from None
    rows = store.fetch(columns, filters=filters, curves=curves)
    from .grid import architecture_label
    for r in rows:               # architectures as --hidden takes them (32x2-16), as show and report write them
        r["hidden"] = architecture_label(r["hidden"])
    if curves:
        for r in rows:
            r["curve"] = [None if not math.isfinite(x) else float(x) for x in r["curve"].tolist()]
    if fmt == "parquet":
        types = dict(COLUMNS)
        schema = pa.schema([(c, pa.list_(pa.float32()) if c == "curve" else
                             pa.float64() if "REAL" in types[c] else pa.int64() if "INTEGER" in types[c]
                             else pa.string()) for c in columns])
        table = pa.Table.from_pylist(rows, schema=schema)
        pq.write_table(table, out if out is not None else sys.stdout.buffer)
        return len(rows)
    fh = open(out, "w", newline="", encoding="utf-8") if out is not None else sys.stdout
    try:
        if fmt == "csv":
            w = csv.writer(fh)
            w.writerow(columns)
            for r in rows:
                w.writerow(["" if r[c] is None else json.dumps(r[c]) if c == "curve" else
                            repr(r[c]) if isinstance(r[c], float) else r[c] for c in columns])
        else:
            json.dump(rows, fh, indent=1, allow_nan=False)
            fh.write("\n")
    finally:
        if out is not None:
            fh.close()
        else:
            fh.flush()
    return len(rows)


# ---------------------------------------------------------------------------------------- aggregation

def _sort_key(v):
    """Order mixed values: None last, numbers numerically, text as text."""
    if v is None:
        return (2, 0.0, "")
    if isinstance(v, (int, float)):
        return (0, float(v), "")
    return (1, 0.0, str(v))


def _hidden_sort(v):
    widths = [int(w) for w in str(v).split(",") if w and w != "0"]
    return (len(widths), widths)


def row_sort_key(columns):
    """A sort key for rows by ``columns`` (architectures by depth then widths, init schemes in the order of
    :data:`fastmlp.spec.SCHEMES`: from no randomness to fan-based scales)."""
    from .spec import SCHEMES
    order = {s: i for i, s in enumerate(SCHEMES)}

    def key(r):
        return tuple(_hidden_sort(r[c]) if c == "hidden" else
                     (0, float(order[r[c]]), "") if c == "init" and r[c] in order else _sort_key(r[c])
                     for c in columns)
    return key


def aggregate(rows, by, metric):
    """Statistics of ``metric`` over the runs that share the values of ``by``.

    Only runs that trained to the end (status ``done``) enter the statistics; diverged and failed runs are
    counted.

    Parameters
    ----------
    rows : list of dict
        As returned by :meth:`Store.fetch` (with ``status`` and ``metric``).
    by : sequence of str
    metric : str

    Returns
    -------
    list of dict
        One per group, ordered by the ``by`` values: the ``by`` values, ``n`` (runs), ``n_ok``, ``diverged``,
        ``failed``, ``mean``, ``std`` (sample standard deviation; None for one value), ``min``, ``median``,
        ``max`` (None where no value).
    """
    groups = {}
    for r in rows:
        groups.setdefault(tuple(r[c] for c in by), []).append(r)
    out = []
    for values, rs in groups.items():
        x = np.array([r[metric] for r in rs if r["status"] == "done" and r[metric] is not None], dtype=float)
        d = dict(zip(by, values))
        d.update(n=len(rs), n_ok=int(sum(r["status"] == "done" for r in rs)),
                 diverged=int(sum(r["status"] == "diverged" for r in rs)),
                 failed=int(sum(r["status"] == "failed" for r in rs)))
        if x.size:
            d.update(mean=float(x.mean()), std=float(x.std(ddof=1)) if x.size > 1 else None,
                     min=float(x.min()), median=float(np.median(x)), max=float(x.max()))
        else:
            d.update(mean=None, std=None, min=None, median=None, max=None)
        out.append(d)
    out.sort(key=row_sort_key(by))
    return out


def varying_columns(rows, candidates=CONFIG_COLUMNS):
    """The columns among ``candidates`` that take more than one value in ``rows``."""
    return [c for c in candidates if len({r.get(c) for r in rows}) > 1]


def best_and_worst(rows, metric, higher_is_better, n=5):
    """The ``n`` best and ``n`` worst configurations (runs that differ only in seed, pooled) by mean ``metric``.

    A configuration without a value (all its runs diverged or failed) ranks below every other.

    Returns
    -------
    best, worst, by : list of dict, list of dict, list of str
        Rows as from :func:`aggregate`, and the configuration columns that vary (the ones worth showing).
    """
    by = varying_columns(rows) or ["init"]
    table = aggregate(rows, by, metric)
    sign = -1.0 if higher_is_better else 1.0

    def rank(d):
        return (d["mean"] is None, sign * d["mean"] if d["mean"] is not None else 0.0)

    ranked = sorted(table, key=rank)
    best = ranked[:n]
    worst = list(reversed(ranked[-n:])) if len(ranked) > n else []
    return best, worst, by
