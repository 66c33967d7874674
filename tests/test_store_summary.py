"""The SQL summaries (fastmlp/store_summary.py) against the Python ones they replace (store.aggregate,
report.summarize_runs), which hold every run in memory: same groups, counts and order, statistics to rounding."""
import math
import tracemalloc

import numpy as np
import pytest

from fastmlp import store_summary
from fastmlp.report import summarize_runs
from fastmlp.store import Store, aggregate, encode_curve

DATASET = {"name": "xor", "sha256": "0" * 64, "val_split": None, "split_seed": None, "n_samples": 10,
           "n_features": 2, "task": "binary"}


def make_rows(n_seeds=5, seed=0):
    """A grid's worth of rows: schemes x scales x architectures x lr x seeds, with diverged and failed runs, NULL
    metrics, NULL settings (sigma_w2 outside meanfield) and ties in the metric."""
    rng = np.random.default_rng(seed)
    rows = []
    for init in ("zeros", "normal", "meanfield"):
        for scale in (0.1, 1.0, 10.0):
            for hidden in ("4", "4,4", "16"):
                for lr in (0.1, 0.5):
                    for s in range(n_seeds):
                        status = rng.choice(["done"] * 8 + ["diverged", "failed"])
                        loss = None if status != "done" else float(np.round(rng.gamma(2.0, 0.2), 2))
                        if init == "zeros" and scale == 10.0:
                            status, loss = "diverged", None          # a configuration without any value
                        key = f"{init}-{scale}-{hidden}-{lr}-{s}"
                        rows.append({"run_key": key, "dataset": "xor", "hidden": hidden, "depth": hidden.count(",") + 1,
                                     "width": 16 if hidden == "16" else 4, "activation": "tanh", "init": init,
                                     "scale": scale, "sigma_w2": scale if init == "meanfield" else None, "seed": s,
                                     "lr": lr, "optimizer": "sgd", "steps": 10, "dtype": "float64",
                                     "status": str(status), "final_loss": loss,
                                     "train_accuracy": None if loss is None else float(rng.uniform(0.4, 1.0)),
                                     "curve": encode_curve([0.7])})
    return rows


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with Store.create(tmp_path_factory.mktemp("summary") / "r.db", DATASET) as s:
        s.save(make_rows())
        yield s


def assert_tables_equal(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.keys() == w.keys()
        for k in w:
            if isinstance(w[k], float):
                assert g[k] == pytest.approx(w[k], rel=1e-12, abs=1e-15), (k, g, w)
            else:
                assert g[k] == w[k], (k, g, w)


@pytest.mark.parametrize("by", [["init"], ["init", "scale"], ["hidden", "lr"], ["sigma_w2"], ["status"],
                                ["init", "scale", "hidden", "lr"]])
@pytest.mark.parametrize("metric", ["final_loss", "train_accuracy"])
def test_aggregate_equals_python(store, by, metric):
    with store_summary.Selection(store) as sel:
        got = store_summary.aggregate(sel, by, metric)
    assert_tables_equal(got, aggregate(store.fetch(), by, metric))


@pytest.mark.parametrize("metric", ["final_loss", "train_accuracy"])
@pytest.mark.parametrize("n", [3, 5, 100])
@pytest.mark.parametrize("filters, configurations", [
    (None, 3 * 3 * 3 * 2),
    # only schemes and scales vary: the configurations are the init x scale table (the path that reuses it)
    ({"init": ["zeros", "normal"], "hidden": "4", "lr": "0.1"}, 2 * 3)])
def test_summary_equals_python(store, metric, n, filters, configurations):
    baseline = {"loss": 0.69}
    got = store_summary.summarize(store, metric, filters=filters, n=n, baseline=baseline)
    want = summarize_runs(store.fetch(filters=filters), metric, n=n, baseline=baseline)
    assert got.keys() == want.keys()
    for k in ("metric", "higher_is_better", "counts", "config_columns", "pooled", "seeds", "reference"):
        assert got[k] == want[k], k
    for k in ("best", "worst", "by_init_scale"):
        assert_tables_equal(got[k], want[k])
    assert len(got["best"]) == min(n, configurations)
    assert len(got["worst"]) == (n if configurations > n else 0)


def test_keys_and_filters_select_the_same_runs(store):
    every = store.fetch()
    keys = [r["run_key"] for r in every if r["lr"] == 0.5 and r["seed"] < 3]
    want = summarize_runs([r for r in every if r["run_key"] in set(keys)])
    got = store_summary.summarize(store, keys=iter(keys))          # a one-pass iterable, as plan.keys is
    assert got["counts"] == want["counts"] and got["config_columns"] == want["config_columns"]
    assert_tables_equal(got["by_init_scale"], want["by_init_scale"])
    # filters as show takes them: text values, numbers as tables display them, alternatives
    flt = {"init": ["normal", "meanfield"], "scale": ["0.1000"]}
    got = store_summary.summarize(store, filters=flt)
    assert_tables_equal(got["best"], summarize_runs(store.fetch(filters=flt))["best"])
    assert got["counts"]["runs"] == len(store.fetch(filters=flt)) == 2 * 3 * 2 * 5
    assert store_summary.summarize(store, filters={"init": "nope"})["counts"]["runs"] == 0


def test_an_empty_database(tmp_path):
    with Store.create(tmp_path / "e.db", DATASET) as s:
        got = store_summary.summarize(s)
    assert got["counts"] == {"runs": 0, "done": 0, "diverged": 0, "failed": 0}
    assert got["best"] == got["worst"] == got["by_init_scale"] == []


def test_memory_follows_groups_not_runs(tmp_path):
    """200,000 runs of 4 configurations: the Python path holds 200,000 dicts, the SQL path a handful."""
    n = 200_000
    rng = np.random.default_rng(1)
    loss = rng.gamma(2.0, 0.2, n)
    with Store.create(tmp_path / "big.db", DATASET) as s:
        with s._transaction():
            s.conn.executemany(
                "INSERT INTO runs (run_key, dataset, hidden, depth, width, activation, init, scale, seed, lr, "
                "optimizer, steps, dtype, status, final_loss) VALUES (?, 'xor', '4', 1, 4, 'tanh', ?, 1.0, ?, "
                "0.1, 'sgd', 10, 'float64', 'done', ?)",
                ((f"k{i}", ("normal", "zeros", "xavier_normal", "he_normal")[i % 4], i, float(loss[i]))
                 for i in range(n)))
        tracemalloc.start()
        got = store_summary.summarize(s)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert got["counts"]["runs"] == n
        normal = loss[0::4]
        d = next(x for x in got["by_init_scale"] if x["init"] == "normal")
        assert d["n"] == normal.size and d["mean"] == pytest.approx(normal.mean(), rel=1e-12)
        assert d["std"] == pytest.approx(normal.std(ddof=1), rel=1e-10)
        assert d["median"] == pytest.approx(np.median(normal), rel=1e-15)
        assert peak < 2 * 2 ** 20, peak             # a few groups' dicts; fetch() would need hundreds of MB
        assert not math.isnan(d["mean"])


def test_the_same_bits_whatever_order_the_runs_were_stored_in(tmp_path):
    """A Dask grid stores chunks as they finish, so the same grid's rows come in another order each time; the
    summary's sums run in value order, so its numbers are the same bits. (A plain ``GROUP BY`` with ``AVG`` sums
    in storage order: on these rows 14 of 48 group means then differ in their last bits.)"""
    rows = make_rows(n_seeds=7, seed=3)
    rng = np.random.default_rng(0)
    summaries = []
    for i, order in enumerate([np.arange(len(rows)), rng.permutation(len(rows)), rng.permutation(len(rows))]):
        with Store.create(tmp_path / f"o{i}.db", DATASET) as s:
            for j in order:
                s.save([rows[j]])
            summaries.append(store_summary.summarize(s, "train_accuracy"))
            with store_summary.Selection(s) as sel:
                summaries[-1]["by_hidden"] = store_summary.aggregate(sel, ["hidden"], "final_loss")
    assert summaries[0] == summaries[1] == summaries[2]
