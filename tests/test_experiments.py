"""`fastmlp experiment`: every experiment end to end at the hidden tiny size, and the k fit on known boundaries."""
import json
import sqlite3

import numpy as np
import pytest
from click.testing import CliRunner

from fastmlp import theory
from fastmlp.cli import main
from fastmlp.experiments import (SYMMETRY_GRID_STARTS, ExperimentError, fit_boundary, preset, run_experiment)
from fastmlp.grid import GridSpec, expand

pytest.importorskip("matplotlib", reason="the experiments draw figures with matplotlib (extra fastmlp[plot])")


def stored_runs(db):
    with sqlite3.connect(db) as con:
        return [dict(zip(("init", "status", "depth", "sigma_w2"), r))
                for r in con.execute("SELECT init, status, depth, sigma_w2 FROM runs")]


def expected_runs(p):
    """Runs the preset's grids expand to, counted by the grid machinery itself."""
    return sum(len(expand(GridSpec.from_settings(g), 10 ** 6)) for g in p.grids)


def check_figures(result):
    png, svg = result["figures"]["png"], result["figures"]["svg"]
    with open(png, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    with open(svg) as fh:
        text = fh.read()
    assert "<svg" in text and len(text) > 2000


# ------------------------------------------------------------------------------------------------- k fit

def synthetic_cells(k_true, flip=0.0, seed=0):
    sw2 = np.linspace(1.0, 4.0, 13)
    xi = np.array([theory.xi_c("tanh", s, 0.05) for s in sw2])
    depth = np.arange(2, 80, 3)
    D, XI = np.meshgrid(depth, xi)
    trained = D < k_true * XI
    if flip:
        rng = np.random.default_rng(seed)
        trained = trained ^ (rng.random(trained.shape) < flip)
    return D.ravel(), XI.ravel(), trained.ravel()


def test_fit_recovers_a_clean_boundary():
    d, xi, t = synthetic_cells(5.0)
    fit = fit_boundary(d, xi, t, n_boot=50)
    ratio = d / xi
    # any k between the largest trained ratio and the smallest untrained one separates perfectly
    assert ratio[t].max() < fit["k"] <= ratio[~t].min()
    assert fit["errors"] == 0 and fit["agreement"] == 1.0
    assert 4.5 < fit["k"] < 5.5


def test_fit_with_noisy_labels_and_its_uncertainty():
    d, xi, t = synthetic_cells(3.0, flip=0.08, seed=1)
    fit = fit_boundary(d, xi, t, n_boot=200, seed=0)
    assert abs(fit["k"] - 3.0) < 0.5
    assert 0 < fit["k_se"] < 1.0 and fit["k_low"] <= fit["k"] <= fit["k_high"]
    assert fit["errors"] <= int(0.08 * len(t)) + 5
    # the same cells, the same fit
    assert fit_boundary(d, xi, t, n_boot=200, seed=0) == fit


def test_fit_edge_cases():
    d = np.array([10, 20, 30])
    xi = np.array([5.0, 5.0, np.inf])
    all_trained = fit_boundary(d, xi, np.array([True, True, True]), n_boot=10)
    assert all_trained["errors"] == 0 and all_trained["k"] >= 4.0          # only a lower bound: k >= 20 / 5
    none = fit_boundary(d[:2], xi[:2], np.array([False, False]), n_boot=10)
    assert none["errors"] == 0 and none["k"] <= 2.0
    with pytest.raises(ValueError, match="one length"):
        fit_boundary([1, 2], [1.0], [True, False])
    with pytest.raises(ValueError, match="positive"):
        fit_boundary([1], [0.0], [True])


# ------------------------------------------------------------------------------------ experiments, tiny

def test_schoenholz_tiny_through_the_command(tmp_path):
    db = tmp_path / "s.db"
    args = ["experiment", "schoenholz", "--size", "tiny", "--out", str(db), "--json", "--quiet"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    for key in ("k", "k_se", "steps", "seconds", "figures"):
        assert key in out, key
    check_figures(out)
    p = preset("schoenholz", "tiny")
    runs = stored_runs(db)
    assert len(runs) == out["runs"] == expected_runs(p)
    assert {r["init"] for r in runs} == {"meanfield"} and all(r["status"] in ("done", "diverged") for r in runs)
    sw2 = sorted({r["sigma_w2"] for r in runs})
    depths = sorted({r["depth"] for r in runs})
    assert sw2[0] == 1.0 and sw2[-1] == 4.0 and out["steps"] == 40
    # k lies within what depth / xi_c can take on this grid, xi_c from the theory
    xi = [theory.xi_c("tanh", s, 0.05) for s in sw2]
    finite = [x for x in xi if x is not None and np.isfinite(x)]
    assert depths[0] / max(finite) <= out["k"] <= depths[-1] / min(finite) * (1 + 1e-6)
    assert out["critical_sigma_w2"] == pytest.approx(theory.critical_sigma_w2("tanh", 0.05))
    # rerunning resumes: nothing left to train, the same fit
    again = json.loads(CliRunner().invoke(main, args).output)
    assert again["trained"] == 0 and again["already_stored"] == out["runs"] and again["k"] == out["k"]


def test_he_xavier_tiny(tmp_path):
    r = run_experiment("he-xavier", "tiny", tmp_path / "h.db")
    check_figures(r)
    assert r["runs"] == expected_runs(preset("he-xavier", "tiny")) == len(stored_runs(tmp_path / "h.db"))
    for ln in r["lines"]:
        s2 = (2.0 if ln["init"] == "he_normal" else 1.0) * ln["scale"] ** 2
        assert ln["sigma_w2"] == pytest.approx(s2)
        assert ln["chi_1"] == pytest.approx(s2 / 2, rel=1e-9)       # relu: chi_1 = sigma_w2 / 2
        assert len(ln["accuracy"]) == len(r["depths"])
    assert any("chi_1" in line for line in r["text"])


def test_saxe_tiny(tmp_path):
    r = run_experiment("saxe", "tiny", tmp_path / "x.db")
    check_figures(r)
    runs = stored_runs(tmp_path / "x.db")
    assert len(runs) == r["runs"] == expected_runs(preset("saxe", "tiny"))
    lines = {ln["init"]: ln for ln in r["lines"]}
    assert set(lines) == {"orthogonal", "lecun_normal"}
    # an orthogonal product is an isometry; a Gaussian one is not, and spreads more with depth
    assert max(lines["orthogonal"]["log10_singular_spread"]) < 1e-6
    g = lines["lecun_normal"]["log10_singular_spread"]
    assert g[0] > 0.1 and g[-1] > g[0]


def test_lsuv_tiny(tmp_path):
    r = run_experiment("lsuv", "tiny", tmp_path / "l.db")
    check_figures(r)
    runs = stored_runs(tmp_path / "l.db")
    assert len(runs) == r["runs"] == expected_runs(preset("lsuv", "tiny"))
    assert {x["init"] for x in runs} == {"lsuv", "he_normal", "xavier_normal", "orthogonal"}
    assert {(x["activation"], x["init"]) for x in r["lines"]} == {
        (a, i) for a in ("tanh", "relu") for i in ("lsuv", "he_normal", "xavier_normal", "orthogonal")}
    assert all(np.isfinite(x["final_loss"]) for x in r["lines"])


def test_symmetry_tiny_matches_the_symmetry_command(tmp_path):
    r = run_experiment("symmetry", "tiny", tmp_path / "y.db")
    check_figures(r)
    assert r["runs"] == len(SYMMETRY_GRID_STARTS) == len(stored_runs(tmp_path / "y.db"))
    cmd = CliRunner().invoke(main, ["symmetry", "--dataset", "spirals", "--n-samples", "80", "--hidden", "4",
                                    "--steps", "60", "--lr", "0.5", "--json"])
    assert cmd.exit_code == 0, cmd.output
    direct = {row["init"]: row for row in json.loads(cmd.output)}
    for row in r["rows"]:
        d = direct[row["init"]]
        assert row["final_loss"] == pytest.approx(d["final_loss"], rel=1e-9, abs=1e-12), row["init"]
        assert row["distinct_units"] == d["distinct_units"] and row["reading"] == d["reading"]
    zeros = next(row for row in r["rows"] if row["init"] == "zeros")
    assert zeros["final_loss"] == pytest.approx(r["baseline_loss"], abs=1e-3)


def test_experiment_on_mnist_files(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (40, 28, 28), dtype=np.uint8), "y_train": np.arange(40) % 10,
              "x_test": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8), "y_test": np.arange(5)}
    np.savez(tmp_path / "mnist.npz", **arrays)
    result = CliRunner().invoke(main, ["experiment", "he-xavier", "--size", "tiny", "--data-file",
                                       str(tmp_path / "mnist.npz"), "--n-samples", "32", "--out",
                                       str(tmp_path / "m.db"), "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    ident = json.loads(result.output)["dataset"]
    assert ident["name"] == "mnist" and ident["n_samples"] == 32 and ident["options"]["pixels"] == "centered"


def test_bad_requests():
    runner = CliRunner()
    r = runner.invoke(main, ["experiment", "schoenholz", "--size", "full", "--out", "never.db"])
    assert r.exit_code == 2 and "train-images-idx3-ubyte" in r.output and "--data-file" in r.output
    r = runner.invoke(main, ["experiment", "schoenholz", "--size", "huge"])
    assert r.exit_code == 2 and "small, full" in r.output
    r = runner.invoke(main, ["experiment", "kaiming"])
    assert r.exit_code == 2 and "schoenholz" in r.output
    with pytest.raises(ExperimentError, match="unknown experiment"):
        preset("glorot")
    full = preset("schoenholz", "full", data_file="mnist.npz")
    g = full.grids[0]
    assert len(g["hidden"]) == 91 and g["sigma_w2"] == "lin:1:4:90" and g["lr"] == "0.001" and g["steps"] == "200"
    assert preset("schoenholz", "full", data_file="mnist.npz", steps=1000).grids[0]["steps"] == "1000"
