"""Weights in and out: fastmlp.predict, to_torch/from_torch, grid --save-params, load_run, export --params."""
import json
import sqlite3
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

import fastmlp
from fastmlp.cli_grid import export, grid
from fastmlp.engine.reference import forward
from fastmlp.evaluate import loss_and_accuracy
from fastmlp.store import Store
from fastmlp.train import as_targets

NETS = [
    fastmlp.Network(3, (5,), 1, "tanh", "sigmoid"),
    fastmlp.Network(3, (4, 6), 4, "relu", "softmax"),
    fastmlp.Network(3, (), 2, "tanh", "identity"),
    fastmlp.Network(3, (6, 6), 2, "sigmoid", "identity"),
    fastmlp.Network(3, (4,), 3, "leaky_relu", "softmax", leaky_slope=0.2),
    fastmlp.Network(3, (4, 4), 1, "linear", "sigmoid"),
]


def _params(net, dtype, seed=0):
    return fastmlp.init_params(net, fastmlp.Init("normal", std=0.8, bias="normal", bias_std=0.5), seed, dtype)


def _X(dtype, n=17):
    return np.random.default_rng(1).normal(size=(n, 3)).astype(dtype)


@pytest.mark.parametrize("net", NETS, ids=lambda n: f"{n.activation}-{n.output}-{len(n.hidden)}")
def test_predict_against_the_reference_forward_pass(net):
    P = np.stack([_params(net, "float64", s) for s in range(3)])
    X = _X("float64")
    logits = fastmlp.predict(net, P, X, output="logits")
    proba = fastmlp.predict(net, P, X)
    assert logits.shape == (3, 17, net.n_outputs)
    for i in range(3):
        _, z = forward(fastmlp.Layout(net.sizes).unpack(P[i]), X, net.activation, net.leaky_slope)
        np.testing.assert_allclose(logits[i], z, rtol=1e-13, atol=1e-13)
        np.testing.assert_array_equal(fastmlp.predict(net, P[i], X, output="logits"), logits[i])
        if net.output == "sigmoid":
            np.testing.assert_allclose(proba[i], 1 / (1 + np.exp(-z)), rtol=1e-13)
        elif net.output == "softmax":
            e = np.exp(z - z.max(1, keepdims=True))
            np.testing.assert_allclose(proba[i], e / e.sum(1, keepdims=True), rtol=1e-13)
            np.testing.assert_allclose(proba[i].sum(1), 1, rtol=1e-13)
        else:
            np.testing.assert_array_equal(proba[i], z)


def test_predict_errors():
    net = NETS[0]
    p = _params(net, "float64")
    with pytest.raises(ValueError, match="unknown output 'probs'"):
        fastmlp.predict(net, p, _X("float64"), output="probs")
    with pytest.raises(ValueError, match="P=26"):
        fastmlp.predict(net, p[:-1], _X("float64"))
    with pytest.raises(ValueError, match=r"\(n_samples, 3\)"):
        fastmlp.predict(net, p, np.zeros((4, 2)))


def test_import_fastmlp_does_not_import_torch():
    import importlib.util
    extra = ", fastmlp.sklearn" if importlib.util.find_spec("sklearn") else ""
    code = f"import sys, fastmlp{extra}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"




def _torch():
    return pytest.importorskip("torch", reason="to_torch/from_torch need the optional extra fastmlp[torch]")


@pytest.mark.parametrize("dtype,rtol", [("float32", 1e-6), ("float64", 1e-12)])
@pytest.mark.parametrize("net", NETS, ids=lambda n: f"{n.activation}-{n.output}-{len(n.hidden)}")
def test_to_torch_gives_fastmlps_logits(net, dtype, rtol):
    torch = _torch()
    p = _params(net, dtype)
    X = _X(dtype)
    model = fastmlp.to_torch(net, p)
    assert all(t.dtype == getattr(torch, dtype) for t in model.parameters())
    with torch.no_grad():
        z_torch = model(torch.from_numpy(X)).numpy()
    z = fastmlp.predict(net, p, X, output="logits")
    assert z_torch.dtype == z.dtype
    # relative to the logits' scale: an elementwise relative error is meaningless for a logit near 0
    assert np.max(np.abs(z_torch - z)) <= rtol * np.max(np.abs(z))
    back_net, back_p = fastmlp.from_torch(model, output=net.output)
    assert back_net == net
    np.testing.assert_array_equal(back_p, p)


def test_from_torch_trains_a_pytorch_initialised_net():
    torch = _torch()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1), torch.nn.Sigmoid())
    net, p0 = fastmlp.from_torch(model)
    assert net == fastmlp.Network(2, (8,), 1, "tanh", "sigmoid") and p0.dtype == np.float32
    data = fastmlp.data.moons()
    res = fastmlp.train(net, data.X, data.y, params=p0, dtype="float32",
                        training=fastmlp.Training(lr=0.5, steps=200))
    # the engine started from PyTorch's weights: the first recorded loss is PyTorch's BCE of its own model
    with torch.no_grad():
        prob = model(torch.from_numpy(data.X.astype(np.float32)))[:, 0]
        bce = torch.nn.functional.binary_cross_entropy(prob, torch.from_numpy(data.y.astype(np.float32)))
    assert res.curves[0, 0] == pytest.approx(float(bce), rel=1e-5)
    assert res.curves[0, -1] < res.curves[0, 0]


def test_from_torch_errors():
    torch = _torch()
    nn = torch.nn
    with pytest.raises(ValueError, match="output='sigmoid'"):
        fastmlp.from_torch(nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1)))
    with pytest.raises(ValueError, match="mixes"):
        fastmlp.from_torch(nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 1)),
                           output="identity")
    with pytest.raises(ValueError, match="unsupported module"):
        fastmlp.from_torch(nn.Sequential(nn.Linear(2, 3), nn.Dropout(0.1), nn.Linear(3, 1)), output="identity")
    with pytest.raises(ValueError, match="do not chain"):
        fastmlp.from_torch(nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(4, 1)), output="identity")
    with pytest.raises(ValueError, match="disagrees"):
        fastmlp.from_torch(nn.Sequential(nn.Linear(2, 3), nn.Sigmoid()), output="softmax")
    net, p = fastmlp.from_torch(nn.Sequential(nn.Linear(2, 3, bias=False), nn.Linear(3, 2), nn.Softmax(dim=1)))
    assert net.activation == "linear" and net.output == "softmax" and np.all(p[6:9] == 0)


GRID = ["--dataset", "moons", "--n-samples", "60", "--hidden", "4", "--init", "xavier_normal,normal",
        "--scale", "0.5,1", "--seeds", "2", "--steps", "40", "--lr", "0.5", "--dtype", "float32,float64", "-q"]


def _invoke(command, args):
    r = CliRunner().invoke(command, [str(a) for a in args])
    assert r.exit_code == 0, r.output + repr(r.exception)
    return r


def test_grid_best_run_loads_exports_and_predicts_the_same(tmp_path):
    db = tmp_path / "with.db"
    _invoke(grid, GRID + ["--save-params", "--out", db])
    with Store.open(db) as st:
        rows = st.fetch()
    assert len(rows) == 16
    best = min(rows, key=lambda r: r["final_loss"])
    net, params = run = fastmlp.load_run(db, best["run_key"][:12])
    assert params.dtype == np.dtype(best["dtype"]) and run.row["run_key"] == best["run_key"]
    # the stored start is the grid's start, and the stored end reproduces the stored loss
    init = fastmlp.Init(best["init"], scale=best["scale"])
    np.testing.assert_array_equal(run.initial_params, fastmlp.init_params(net, init, best["seed"], best["dtype"]))
    data = fastmlp.data.moons(n_samples=60)
    T = as_targets(net, data.y, len(data.y), params.dtype)
    loss, acc = loss_and_accuracy(net, params, data.X, T)
    assert loss[0] == pytest.approx(best["final_loss"], rel=1e-6)
    assert acc[0] == pytest.approx(best["train_accuracy"])
    out = tmp_path / "p.npz"
    _invoke(export, [db, "--params", "-o", out, "--filter", "dtype=float64"])
    with np.load(out) as f:
        index = json.loads(str(f["runs"]))
        assert len(index) == 8 and {r["dtype"] for r in index} == {"float64"}
        k = index[0]["run_key"]
        again = fastmlp.load_run(db, k)
        np.testing.assert_array_equal(f[f"{k}/final"], again.params)
        np.testing.assert_array_equal(f[f"{k}/initial"], again.initial_params)
        assert list(f[f"{k}/sizes"]) == list(again.network.sizes)

    torch = pytest.importorskip("torch", reason="the PyTorch half needs the optional extra fastmlp[torch]")
    model = fastmlp.to_torch(net, params)
    with torch.no_grad():
        z = model(torch.from_numpy(data.X.astype(params.dtype))).numpy()
    assert np.array_equal(z[:, 0] > 0, fastmlp.predict(net, params, data.X)[:, 0] > 0.5)
    np.testing.assert_allclose(torch.sigmoid(torch.from_numpy(z)).numpy(), fastmlp.predict(net, params, data.X),
                               rtol=1e-5 if params.dtype == np.float32 else 1e-12)


def test_without_the_flag_the_database_has_no_params(tmp_path):
    db = tmp_path / "without.db"
    _invoke(grid, GRID + ["--out", db])
    with sqlite3.connect(db) as c:
        tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        key = c.execute("SELECT run_key FROM runs LIMIT 1").fetchone()[0]
    assert "params" not in tables
    with pytest.raises(ValueError, match="--save-params"):
        fastmlp.load_run(db, key)
    with pytest.raises(KeyError, match="no run"):
        fastmlp.load_run(db, "nope")
    r = CliRunner().invoke(export, [str(db), "--params", "-o", str(tmp_path / "x.npz")])
    assert r.exit_code == 2 and "--save-params" in r.output
