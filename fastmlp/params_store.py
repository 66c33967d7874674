"""Parameters of grid runs kept in the results database (``fastmlp grid --save-params``), loaded and exported.

Why a table in the same SQLite file rather than an ``.npz`` beside it: a chunk's parameters are written in the
transaction that writes its rows, so an interrupted or shared grid never has a run without its parameters or
parameters without their run, and the results stay one file. Each run's initial and final vectors are stored
as raw bytes in the run's dtype (float32 or float64: exact, 4 or 8 bytes a parameter, no pickling). The
``params`` table exists only in databases made with ``--save-params``; without the flag nothing is added.

``params``
    ``run_key`` (the run's key in ``runs``), ``sizes`` (JSON layer sizes), ``dtype``, ``initial`` and ``final``
    (bytes).
"""
from __future__ import annotations

from dataclasses import dataclass
import json

import numpy as np

from .spec import Network

TABLE = "params"
_CREATE = (f"CREATE TABLE IF NOT EXISTS {TABLE} (run_key TEXT PRIMARY KEY, sizes TEXT, dtype TEXT, "
           "initial BLOB, final BLOB)")
ROW_KEY = "_params"  # a row's (sizes, initial, final) on its way from run.train_chunk to Store.save


def write_params(conn, rows):
    """Insert the parameters carried by ``rows`` (under ``ROW_KEY``); called inside ``Store.save``'s
    transaction. A run already stored keeps its parameters. Returns the number of rows carrying parameters."""
    items = []
    for r in rows:
        p = r.get(ROW_KEY)
        if p is None:
            continue
        sizes, p0, p1 = p
        items.append((r["run_key"], json.dumps([int(s) for s in sizes]), np.asarray(p1).dtype.name,
                      np.ascontiguousarray(p0).tobytes(), np.ascontiguousarray(p1).tobytes()))
    if items:
        conn.execute(_CREATE)
        conn.executemany(f"INSERT OR IGNORE INTO {TABLE} VALUES (?, ?, ?, ?, ?)", items)
    return len(items)


@dataclass
class LoadedRun:
    """A stored run: ``network, params = load_run(db, key)`` unpacks the first two.

    Attributes
    ----------
    network : Network
    params : ndarray (P,)
        Final parameters (for a diverged run: those before the step that diverged).
    initial_params : ndarray (P,)
    row : dict
        The run's row in ``runs`` (settings and results).
    """
    network: Network
    params: np.ndarray
    initial_params: np.ndarray
    row: dict

    def __iter__(self):
        return iter((self.network, self.params))


def _has_table(store):
    return TABLE in store._tables()


def _resolve_key(store, run_key):
    rows = store.conn.execute("SELECT run_key FROM runs WHERE run_key LIKE ? LIMIT 3",
                              (str(run_key).replace("%", "").replace("_", "") + "%",)).fetchall()
    exact = [r[0] for r in rows if r[0] == run_key]
    if exact:
        return exact[0]
    if not rows:
        raise KeyError(f"no run {run_key!r} in {store.path}")
    if len(rows) > 1:
        raise KeyError(f"run key prefix {run_key!r} matches several runs in {store.path}; give more of it")
    return rows[0][0]


def _decode(row):
    dt = np.dtype(row["dtype"])
    return (json.loads(row["sizes"]), np.frombuffer(row["initial"], dtype=dt).copy(),
            np.frombuffer(row["final"], dtype=dt).copy())


def load_from_store(store, run_key):
    """:func:`load_run` on an open :class:`fastmlp.store.Store`."""
    key = _resolve_key(store, run_key)
    if not _has_table(store):
        raise ValueError(f"{store.path} holds no parameters: it was made without `fastmlp grid --save-params` "
                         f"(runs already stored are not retrained; use --save-params with a new --out)")
    p = store.conn.execute(f"SELECT * FROM {TABLE} WHERE run_key = ?", (key,)).fetchone()
    if p is None:
        raise ValueError(f"run {key} was stored without --save-params (runs already stored are not retrained; "
                         f"use --save-params with a new --out)")
    row = store.fetch(keys=[key])[0]
    sizes, p0, p1 = _decode(p)
    network = Network(n_inputs=sizes[0], hidden=tuple(sizes[1:-1]), n_outputs=sizes[-1],
                      activation=row["activation"], output=row["output"])
    return LoadedRun(network, p1, p0, row)


def load_run(db, run_key):
    """The network and parameters of one run of a results database made with ``fastmlp grid --save-params``.

    Parameters
    ----------
    db : str or Path
        The results database.
    run_key : str
        The run's key (``fastmlp export``'s ``run_key`` column), or a unique prefix of it.

    Returns
    -------
    LoadedRun
        ``network, params = fastmlp.load_run(db, key)``; also ``.initial_params`` and ``.row``.

    Raises
    ------
    KeyError
        No such run (or an ambiguous prefix).
    ValueError
        The run was stored without ``--save-params``.

    Examples
    --------
    >>> net, params = fastmlp.load_run("results.db", "3f2a9c")            # doctest: +SKIP
    >>> proba = fastmlp.predict(net, params, X)                           # doctest: +SKIP
    """
    from .store import Store
    with Store.open(db) as store:
        return load_from_store(store, run_key)


def export_params(store, out, filters=None):
    """Write the parameters of the stored runs (matching ``filters``) to an ``.npz`` file.

    The file holds, per run, ``<run_key>/initial`` and ``<run_key>/final`` (flat vectors in the run's dtype) and
    ``<run_key>/sizes``, plus ``runs``: a JSON list of each exported run's row (settings and results, without
    the curve) with its ``sizes``. Returns the number of runs written.
    """
    if not _has_table(store):
        raise ValueError(f"{store.path} holds no parameters: it was made without `fastmlp grid --save-params`")
    rows = store.fetch(filters=filters)
    arrays, index = {}, []
    for row in rows:
        p = store.conn.execute(f"SELECT * FROM {TABLE} WHERE run_key = ?", (row["run_key"],)).fetchone()
        if p is None:
            continue
        sizes, p0, p1 = _decode(p)
        k = row["run_key"]
        arrays[f"{k}/initial"], arrays[f"{k}/final"] = p0, p1
        arrays[f"{k}/sizes"] = np.asarray(sizes, dtype=np.int64)
        index.append({**{c: v for c, v in row.items() if c != "curve"}, "sizes": sizes})
    if not index:
        raise ValueError("no stored run with parameters matches")
    arrays["runs"] = np.array(json.dumps(index, default=str))
    np.savez_compressed(out, **arrays)
    return len(index)
