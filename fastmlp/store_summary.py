"""A results database's statistics computed by SQLite, in memory that follows the number of groups, not of runs.

:func:`fastmlp.store.aggregate` and :func:`fastmlp.report.summarize_runs` work on runs fetched as Python dicts
(about 2 KB each): fine for thousands of runs, 20 GB for the 10^7 of a grid that the lazy planner can run. The
functions here give the same tables from SQL queries over the ``runs`` table: one pass with window functions
per table (mean, a second pass over the deviations for the standard deviation, the median by rank), so the only
rows that reach Python are the groups'. The Python versions stay as the oracle the tests compare against.
"""
from __future__ import annotations

import contextlib
import heapq
import math

from .store import CONFIG_COLUMNS, COLUMN_NAMES, StoreError, _matches, row_sort_key

# keys are inserted into the temporary selection table this many at a time (bounded memory for lazy key lists)
_KEY_BATCH = 50_000


def _quote(c):
    if c not in COLUMN_NAMES:
        raise StoreError(f"unknown column {c!r}; columns are: {', '.join(COLUMN_NAMES)}")
    return f'"{c}"'


class Selection:
    """The runs a summary is about: all, those with given keys, and/or those that pass ``--filter``-style
    filters. Use as a context manager (it may create a temporary table of keys on the store's connection).

    Parameters
    ----------
    store : fastmlp.store.Store
    keys : iterable of str, optional
        Only these runs (iterated once, in batches: a lazy sequence of 10^7 keys is fine).
    filters : dict, optional
        As :meth:`fastmlp.store.Store.fetch` takes them (numbers match to a relative tolerance).
    """

    def __init__(self, store, keys=None, filters=None):
        self.store, self.keys, self.filters = store, keys, dict(filters or {})
        self.absent = set(store._absent_columns())
        self.params = []
        self._table = None

    def __enter__(self):
        conn = self.store.conn
        where = []
        if self.keys is not None:
            self._table = "temp._fastmlp_selected"
            conn.execute(f"DROP TABLE IF EXISTS {self._table}")
            conn.execute(f"CREATE TABLE {self._table} (run_key TEXT PRIMARY KEY)")
            batch = []
            for k in self.keys:
                batch.append((k,))
                if len(batch) >= _KEY_BATCH:
                    conn.executemany(f"INSERT OR IGNORE INTO {self._table} VALUES (?)", batch)
                    batch = []
            conn.executemany(f"INSERT OR IGNORE INTO {self._table} VALUES (?)", batch)
            where.append(f"run_key IN (SELECT run_key FROM {self._table})")
        if self.filters:
            conn.create_function("fastmlp_matches", 2, _matches, deterministic=True)
            for c, v in self.filters.items():
                vals = list(v) if isinstance(v, (list, tuple, set)) else [v]
                col = "NULL" if c in self.absent else _quote(c)
                where.append("(" + " OR ".join(f"fastmlp_matches({col}, ?)" for _ in vals) + ")")
                self.params += [str(x) if not isinstance(x, (int, float)) else x for x in vals]
        self.where = " AND ".join(where) or "1"
        return self

    def __exit__(self, *exc):
        if self._table is not None:
            with contextlib.suppress(Exception):
                self.store.conn.execute(f"DROP TABLE IF EXISTS {self._table}")

    def column(self, c):
        """The SQL expression of column ``c`` (NULL for a column this database predates)."""
        return "NULL" if c in self.absent else _quote(c)

    def rows(self, sql, params=()):
        """Run ``sql`` with the selection's parameters first, then ``params``."""
        return self.store.conn.execute(sql, list(self.params) + list(params))


def _groups_sql(sel, by, metric):
    """The SQL of :func:`aggregate`: one row per group of ``by`` with the counts and the statistics' parts."""
    b = [f"{sel.column(c)} AS g{i}" for i, c in enumerate(by)]
    g = [f"g{i}" for i in range(len(by))] or ["'all'"]     # (GROUP BY 1 would mean the first column)
    part = ", ".join(g)
    ok = "(status = 'done' AND x IS NOT NULL)"
    windows = (f"WINDOW ranked AS (PARTITION BY {part} ORDER BY (CASE WHEN {ok} THEN 0 ELSE 1 END), x), "
               f"whole AS (ranked ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)")
    return f"""
        WITH sel AS (SELECT {', '.join(b + ['status', f'{sel.column(metric)} AS x'])} FROM runs WHERE {sel.where}),
        w AS (SELECT *, AVG(CASE WHEN {ok} THEN x END) OVER whole AS mean,
                     COUNT(CASE WHEN {ok} THEN 1 END) OVER whole AS k, ROW_NUMBER() OVER ranked AS rn
              FROM sel
              -- one sort serves them all: the group's values in order (the median's rank), and the whole group
              -- as the frame of the sums, which then add the values in that order, whatever order the rows
              -- were stored in (a Dask grid stores chunks as they finish): the same bits on every run
              {windows}),
        v AS (SELECT *, SUM(CASE WHEN {ok} THEN (x - mean) * (x - mean) END) OVER whole AS ss FROM w
              {windows})
        SELECT {', '.join(g[:len(by)] + [''])} COUNT(*) AS n, SUM(status = 'done') AS n_ok,
               SUM(status = 'diverged') AS diverged, SUM(status = 'failed') AS failed, MAX(mean) AS mean,
               MAX(k) AS k, MIN(CASE WHEN {ok} THEN x END) AS mn, MAX(CASE WHEN {ok} THEN x END) AS mx,
               MAX(ss) AS ss, AVG(CASE WHEN {ok} AND rn IN ((k + 1) / 2, (k + 2) / 2) THEN x END) AS median
        FROM v GROUP BY {part}"""


def _group_dict(by, r):
    d = {c: r[f"g{i}"] for i, c in enumerate(by)}
    d.update(n=r["n"], n_ok=r["n_ok"] or 0, diverged=r["diverged"] or 0, failed=r["failed"] or 0)
    k = r["k"] or 0
    if k:
        d.update(mean=float(r["mean"]), std=math.sqrt(max(r["ss"], 0.0) / (k - 1)) if k > 1 else None,
                 min=float(r["mn"]), median=float(r["median"]), max=float(r["mx"]))
    else:
        d.update(mean=None, std=None, min=None, median=None, max=None)
    return d


def iter_groups(sel, by, metric):
    """The groups of :func:`aggregate` one by one, in SQLite's order (not sorted)."""
    if metric not in COLUMN_NAMES:
        raise StoreError(f"unknown metric column {metric!r}")
    for r in sel.rows(_groups_sql(sel, by, metric)):
        yield _group_dict(by, r)


def aggregate(sel, by, metric):
    """:func:`fastmlp.store.aggregate` of the selected runs, computed by SQLite.

    Parameters
    ----------
    sel : Selection
    by : sequence of str
    metric : str

    Returns
    -------
    list of dict
        The same rows as :func:`fastmlp.store.aggregate` (``mean``/``std``/``median`` equal to rounding: SQLite
        sums in another order).
    """
    out = list(iter_groups(sel, list(by), metric))
    out.sort(key=row_sort_key(list(by)))
    return out


def counts(sel):
    """Runs by status: ``{"runs": n, "done": ..., "diverged": ..., "failed": ...}``."""
    out = {"runs": 0, "done": 0, "diverged": 0, "failed": 0}
    for status, n in sel.rows(f"SELECT status, COUNT(*) FROM runs WHERE {sel.where} GROUP BY status"):
        out["runs"] += n
        out[status] = out.get(status, 0) + n
    return out


def varying_columns(sel, candidates=CONFIG_COLUMNS):
    """The columns among ``candidates`` that take more than one value (NULL counting as a value), in one scan."""
    present = [c for c in candidates if c not in sel.absent]
    if not present:
        return []
    parts = [f"(MIN({_quote(c)}) IS NOT MAX({_quote(c)}) OR (COUNT({_quote(c)}) > 0 AND COUNT({_quote(c)}) < "
             f"COUNT(*)))" for c in present]
    r = sel.rows(f"SELECT {', '.join(parts)} FROM runs WHERE {sel.where}").fetchone()
    return [c for c, v in zip(present, r) if v]


def best_and_worst(sel, metric, higher_is_better, n=5, varying=None, groups=None):
    """:func:`fastmlp.store.best_and_worst` by SQL: configurations are streamed from SQLite and only the ``n``
    best and ``n`` worst are kept, ranked as the Python version ranks them (ties in table order).
    ``varying``: :func:`varying_columns` if the caller has it already; ``groups``: the aggregate by those
    columns if the caller has it already."""
    by = (varying_columns(sel) if varying is None else varying) or ["init"]
    sign = -1.0 if higher_is_better else 1.0
    order = row_sort_key(by)

    def rank(d):
        return (d["mean"] is None, sign * d["mean"] if d["mean"] is not None else 0.0, order(d))

    # one pass, two heaps of n: the configurations themselves never all sit in memory
    best, worst, total = [], [], 0
    for i, d in enumerate(iter_groups(sel, by, metric) if groups is None else groups):
        total += 1
        key = rank(d)
        entry_b = (_Neg(key), i, d)
        if len(best) < n:
            heapq.heappush(best, entry_b)
        elif key < best[0][0].key:
            heapq.heapreplace(best, entry_b)
        entry_w = (key, i, d)
        if len(worst) < n:
            heapq.heappush(worst, entry_w)
        elif key > worst[0][0]:
            heapq.heapreplace(worst, entry_w)
    best = [d for _, _, d in sorted(best, key=lambda e: e[0].key)]
    worst = [d for _, _, d in sorted(worst, key=lambda e: e[0], reverse=True)] if total > n else []
    return best, worst, by


class _Neg:
    """Reverses the order of a key, for a max-heap of the n smallest."""
    __slots__ = ("key",)

    def __init__(self, key):
        self.key = key

    def __lt__(self, other):
        return other.key < self.key

    def __eq__(self, other):
        return self.key == other.key


def summarize(store, metric="final_loss", keys=None, filters=None, n=None, baseline=None):
    """:func:`fastmlp.report.summarize_runs` of a database's runs, computed by SQLite (bounded memory).

    Parameters
    ----------
    store : fastmlp.store.Store
    metric : str
    keys : iterable of str, optional
        Only these runs (e.g. one grid's, ``plan.keys``).
    filters : dict, optional
    n : int, optional
        Configurations in each of the best and worst lists (default: the report's).
    baseline : dict, optional
        The reference values (class-prior loss, chance accuracy).

    Returns
    -------
    dict
        The same keys and values as :func:`fastmlp.report.summarize_runs`.
    """
    from .grid import METRICS
    from .report import SUMMARY_ROWS
    n = SUMMARY_ROWS if n is None else n
    higher = METRICS[metric]
    with Selection(store, keys, filters) as sel:
        c = counts(sel)
        if not c["runs"]:
            best, worst, by, pooled, table = [], [], [], [], []
        else:
            varying = varying_columns(sel)
            table = aggregate(sel, ["init", "scale"], metric)
            # a grid over schemes and scales only: the configurations are that table's rows (one query, not two)
            same = varying == ["init", "scale"]
            best, worst, by = best_and_worst(sel, metric, higher, n, varying, table if same else None)
            pooled = [x for x in varying if x not in ("init", "scale")]
    return {"metric": metric, "higher_is_better": higher, "counts": c, "config_columns": by, "pooled": pooled,
            "best": best, "worst": worst, "by_init_scale": table,
            "seeds": max((d["n"] for d in best + worst), default=0), "reference": baseline or {}}
