"""The meanfield and lsuv initialisations: their statistics, the grid axes --sigma-w2/--sigma-b2, and resuming
databases made before those axes existed."""
import json
import sqlite3

import numpy as np
import pytest
from click.testing import CliRunner

import fastmlp
from fastmlp import Init, Network, Training, init_batch, init_params
from fastmlp.cli import main
from fastmlp.evaluate import forward_batch
from fastmlp.grid import GridError, GridSpec, Run, expand
from fastmlp.layout import Layout
from fastmlp.run import execute, pending_runs, plan_grid
from fastmlp.store import Store

K_SE = 4.0


def _mean_se(x):
    x = np.asarray(x, dtype=float)
    return x.mean(), x.std(ddof=1) / np.sqrt(x.size)


# ---------------------------------------------------------------------------------------------- meanfield

def test_meanfield_weights_and_biases_have_the_theory_variances():
    net = Network(300, (400, 200), 3, "tanh", "softmax")
    sw, sb = 2.0, 0.3
    seeds = list(range(8))
    layers = [Layout(net.sizes).unpack(p) for p in init_batch(net, Init("meanfield", sigma_w2=sw, sigma_b2=sb), seeds)]
    for l, (fan_in, fan_out) in enumerate(zip(net.sizes[:-1], net.sizes[1:])):
        w_var = [L[l][0].var() * fan_in for L in layers]       # per seed: sigma_w2 estimated
        w_mean = [L[l][0].mean() * np.sqrt(fan_in * fan_out) for L in layers]
        m, se = _mean_se(w_var)
        assert abs(m - sw) <= K_SE * se, (l, m, se)
        m, se = _mean_se(w_mean)
        assert abs(m) <= K_SE * se
        if fan_out >= 100:
            m, se = _mean_se([np.mean(L[l][1] ** 2) for L in layers])
            assert abs(m - sb) <= K_SE * se, (l, m, se)
    # scale multiplies the weights only; the same seed gives the same draw
    a = Layout(net.sizes).unpack(init_params(net, Init("meanfield", sigma_w2=sw, sigma_b2=sb), 3))
    b = Layout(net.sizes).unpack(init_params(net, Init("meanfield", sigma_w2=sw, sigma_b2=sb, scale=0.5), 3))
    assert np.array_equal(a[0][0] * 0.5, b[0][0]) and np.array_equal(a[0][1], b[0][1])
    with pytest.raises(ValueError, match="sigma_w2"):
        Init("meanfield", sigma_w2=-1.0)


def test_meanfield_axes_expand_and_keep_other_schemes_keys():
    spec = GridSpec.from_settings({"init": "meanfield,xavier_normal", "sigma_w2": "lin:1:2:3", "sigma_b2": "0,0.1",
                                   "seeds": "2"})
    runs = expand(spec, 100)
    mf = [r for r in runs if r.init == "meanfield"]
    assert len(mf) == 3 * 2 * 2 and len(runs) == len(mf) + 2
    assert {(r.sigma_w2, r.sigma_b2) for r in mf} == {(w, b) for w in (1.0, 1.5, 2.0) for b in (0.0, 0.1)}
    assert all(r.sigma_w2 is None for r in runs if r.init != "meanfield")
    assert mf[0].init_spec() == Init("meanfield", sigma_w2=mf[0].sigma_w2, sigma_b2=mf[0].sigma_b2)
    ds = {"sha256": "abc", "val_split": None, "split_seed": None}
    base = dict(hidden=(4,), activation="tanh", optimizer="sgd", batch_size=None, steps=10, scale=1.0, lr=0.1,
                momentum=None, weight_decay=0.0, dropout=0.0, dtype="float64", seed=0)
    old = Run(init="xavier_normal", **base)
    assert "sigma_w2" not in old.settings()                    # so its key is the one older databases hold
    assert Run(init="meanfield", sigma_w2=1.0, sigma_b2=0.0, **base).key(ds) != \
        Run(init="meanfield", sigma_w2=2.0, sigma_b2=0.0, **base).key(ds)
    with pytest.raises(GridError) as e:
        GridSpec.from_settings({"init": "xavier_normal", "sigma_w2": "1,2"})
    assert e.value.option == "--sigma-w2" and "meanfield" in str(e.value)


def test_older_database_resumes_and_gains_the_columns(tmp_path):
    settings = {"dataset": "xor", "n_samples": "20", "hidden": ["3"], "steps": "3", "init": "xavier_normal,zeros",
                "seeds": "2"}
    spec = GridSpec.from_settings(settings)
    plan = plan_grid(spec)
    path = tmp_path / "old.db"
    with Store.create(path, plan.data.identity) as store:
        execute(plan, store)
    with sqlite3.connect(path) as conn:                         # as made before the sigma axes existed
        for c in ("sigma_w2", "sigma_b2"):
            conn.execute(f"ALTER TABLE runs DROP COLUMN {c}")
    with Store.open(path) as store:
        rows = store.fetch()
        assert len(rows) == 4 and all(r["sigma_w2"] is None for r in rows)
    with Store.create(path, plan.data.identity) as store:
        assert pending_runs(plan, store) == []                  # the same keys: nothing to redo
        grown = plan_grid(GridSpec.from_settings(dict(settings, init="xavier_normal,zeros,meanfield",
                                                      sigma_w2="1.5", sigma_b2="0.05")))
        assert len(pending_runs(grown, store)) == 2
        execute(grown, store)
        rows = store.fetch(filters={"init": "meanfield"})
    assert [(r["sigma_w2"], r["sigma_b2"]) for r in rows] == [(1.5, 0.05)] * 2


def test_grid_command_meanfield_and_lsuv(tmp_path):
    out = tmp_path / "mf.db"
    args = ["grid", "--dataset", "xor", "--n-samples", "40", "--hidden", "8x3", "--steps", "5", "--seeds", "2",
            "--init", "meanfield,lsuv", "--sigma-w2", "1,2.5", "--sigma-b2", "0.05", "--out", out, "-q"]
    r = CliRunner().invoke(main, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    with Store.open(out) as store:
        rows = store.fetch()
    assert len(rows) == 2 * 2 + 2 and {r["status"] for r in rows} <= {"done", "diverged"}
    assert sorted({r["sigma_w2"] for r in rows if r["init"] == "meanfield"}) == [1.0, 2.5]
    assert all(r["sigma_w2"] is None for r in rows if r["init"] == "lsuv")
    r = CliRunner().invoke(main, ["show", str(out), "--by", "init,sigma_w2", "--json"])
    assert r.exit_code == 0 and len(json.loads(r.output)["rows"]) == 3
    r = CliRunner().invoke(main, [str(a) for a in args])        # resumes: nothing left to train
    assert r.exit_code == 0
    with Store.open(out) as store:
        assert len(store.fetch()) == 6
    r = CliRunner().invoke(main, ["grid", "--init", "he_normal", "--sigma-b2", "0.1", "--out", tmp_path / "x.db"])
    assert r.exit_code == 2 and "meanfield" in r.output


# ------------------------------------------------------------------------------------------------- lsuv

@pytest.fixture
def data():
    rs = np.random.default_rng(5)
    X = rs.normal(size=(300, 6)) * np.array([1, 10, 0.1, 3, 1, 5]) + 2.0
    return X, (X[:, 0] > 2).astype(float)


def _pre_activation_variances(net, params, X):
    """Variance of every layer's output (pre-activation) on X, from the NumPy reference forward pass."""
    layers = Layout(net.sizes).unpack(params)
    (_, hidden, logits), = forward_batch(net, params, X)
    inputs = [X] + [h[0] for h in hidden]
    return [float(np.var(a @ W.T + b)) for a, (W, b) in zip(inputs, layers)] + [float(np.var(logits))]


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid"])
def test_lsuv_gives_unit_variance_per_layer_on_the_data(data, activation):
    X, _ = data
    net = Network(6, (32, 32, 16), 1, activation)
    init = Init("lsuv")
    p = init_params(net, init, 7, X=X)
    v = _pre_activation_variances(net, p, X)
    assert len(v) == 5 and v[-2] == pytest.approx(v[-1])
    assert all(abs(x - 1.0) < init.lsuv_tol for x in v[:-1]), v
    # the start is orthogonal: each matrix is a multiple of one with orthonormal rows (fan_out <= fan_in)
    W = Layout(net.sizes).unpack(p)[2][0]
    G = W @ W.T
    assert np.allclose(G, G[0, 0] * np.eye(16), atol=1e-10 * G[0, 0])
    # float32 too, and the same seed gives the same bits
    p32 = init_params(net, init, 7, "float32", X=X)
    assert all(abs(x - 1.0) < init.lsuv_tol for x in _pre_activation_variances(net, p32.astype(float), X)[:-1])
    assert init_params(net, init, 7, X=X).tobytes() == p.tobytes()
    assert init_params(net, init, 8, X=X).tobytes() != p.tobytes()


def test_lsuv_minibatch_is_drawn_with_the_seed_and_tolerance_holds_on_all_data():
    rs = np.random.default_rng(1)
    X = rs.normal(size=(3000, 5)) * 4.0
    net = Network(5, (64, 64), 1, "tanh")
    init = Init("lsuv", lsuv_batch=1000)
    p = init_params(net, init, 2, X=X)
    assert init_params(net, init, 2, X=X[::-1].copy()).tobytes() != p.tobytes()   # rows drawn, not the first ones
    assert all(abs(x - 1.0) < init.lsuv_tol for x in _pre_activation_variances(net, p, X)[:-1])


def test_lsuv_in_the_library_and_train_command(data):
    X, y = data
    net = Network(6, (16, 16), 1, "tanh")
    res = fastmlp.train(net, X, y, init=Init("lsuv"), seed=3, training=Training(lr=0.1, steps=5))
    assert np.array_equal(res.initial_params[0], init_params(net, Init("lsuv"), 3, X=X))
    with pytest.raises(ValueError, match="pass the training inputs X"):
        init_params(net, Init("lsuv"), 3)
    r = CliRunner().invoke(main, ["train", "--dataset", "moons", "--hidden", "8x2", "--init", "lsuv", "--steps", "5",
                                  "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["init"] == "lsuv"
    r = CliRunner().invoke(main, ["train", "--dataset", "moons", "--hidden", "8", "--init", "meanfield",
                                  "--sigma-w2", "-2", "--steps", "5"])
    assert r.exit_code == 2 and "sigma_w2" in r.output
