"""The first commands: train, symmetry, bench, info (options and --json keys are a contract)."""
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from fastmlp.cli import main

from conftest import TITANIC

ROOT = Path(__file__).resolve().parents[1]


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_train_json_has_the_contract_keys():
    r = run("train", "--dataset", "xor", "--hidden", "4-3", "--init", "he_normal", "--steps", "200",
            "--lr", "0.5", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    for key in ("final_loss", "train_accuracy", "status", "diverged_step", "distinct_units", "weights_moved",
                "loss_curve"):
        assert key in out
    assert out["status"] == "ok" and out["diverged_step"] is None
    assert len(out["distinct_units"]) == 2 and len(out["weights_moved"]) == 3
    assert out["final_loss"] < out["loss_curve"][0]
    assert len(out["loss_curve"]) == 20


@pytest.mark.skipif(not TITANIC.exists(), reason="the Titanic data is not beside the checkout")
def test_train_zero_init_on_titanic_keeps_weights_still():
    r = run("train", "--dataset", "titanic", "--data-file", str(TITANIC), "--hidden", "4", "--init", "zeros",
            "--lr", "0.01", "--steps", "1000", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["weights_moved"] == [False, False] and out["distinct_units"] == [1]


def test_train_table_output():
    r = run("train", "--dataset", "circles", "--hidden", "8", "--steps", "50")
    assert r.exit_code == 0, r.output
    assert "final loss" in r.output and "distinct units" in r.output


def test_symmetry_rows_tell_the_story():
    r = run("symmetry", "--dataset", "circles", "--hidden", "6", "--steps", "400", "--lr", "0.5", "--json")
    assert r.exit_code == 0, r.output
    rows = {row["init"]: row for row in json.loads(r.output)}
    assert set(rows) == {"zeros", "constant", "tiny random", "xavier", "he", "large random", "constant + dropout"}
    for row in rows.values():
        for key in ("init", "final_loss", "train_accuracy", "distinct_units", "weights_moved", "status",
                    "diverged_step", "reading"):
            assert key in row
    assert rows["zeros"]["weights_moved"] == [False, False]
    assert rows["constant"]["distinct_units"] == [1]
    assert rows["xavier"]["distinct_units"] == [6]
    assert rows["constant + dropout"]["distinct_units"] == [6]
    assert rows["xavier"]["final_loss"] < rows["constant"]["final_loss"]
    table = run("symmetry", "--dataset", "circles", "--hidden", "6", "--steps", "100")
    assert table.exit_code == 0 and "copies" in table.output


def test_bench_on_cuda_without_a_gpu_is_a_usage_error():
    from fastmlp.engine.cuda import simulated
    if simulated():
        pytest.skip("the CUDA simulator is on: it counts as a device")
    try:
        from fastmlp.engine.cuda import check_available
        check_available()
        pytest.skip("a GPU is usable here")
    except RuntimeError:
        pass
    result = CliRunner().invoke(main, ["bench", "--backend", "cuda", "--networks", "2", "--steps", "2"])
    assert result.exit_code == 2 and "--backend" in result.output and "GPU" in result.output
    assert "Traceback" not in result.output


def test_bench_cuda_path_needs_the_cuda_backend():
    result = CliRunner().invoke(main, ["bench", "--cuda-path", "tiled", "--networks", "2", "--steps", "2"])
    assert result.exit_code == 2 and "--cuda-path" in result.output and "--backend cuda" in result.output


def test_bench_cuda_paths_are_rows_of_their_own(monkeypatch):
    from fastmlp import benchmark
    monkeypatch.setenv("FASTMLP_CUDA_PATH", "block")
    impls = benchmark._implementations([], "cuda", ("block", "tiled"))
    assert [i[0] for i in impls] == ["fastmlp (cuda block)", "fastmlp (cuda tiled)", "fastmlp (numba)"]
    assert [i[0] for i in benchmark._implementations([], "cuda")][0] == "fastmlp (cuda)"
    # one variant of a peer; with the cuda backend torch runs on the GPU only
    assert [i[0] for i in benchmark._implementations(["torch:vmap"])] == ["fastmlp (numba)", "torch vmap"]
    assert [i[0] for i in benchmark._implementations(["torch:loop", "torch:bmm"], "cuda")] == [
        "fastmlp (cuda)", "fastmlp (numba)", "torch loop (cuda)", "torch bmm (cuda)"]
    seen = []
    def fake_train_batch(*args, **kwargs):
        seen.append((kwargs.get("engine_options") or {}).get("path"))
        return SimpleNamespace(params=None)
    monkeypatch.setattr(importlib.import_module("fastmlp.train"), "train_batch", fake_train_batch)
    w = SimpleNamespace(network=None, X=None, y=None, params=None, training=None, seeds=None)
    for _, _, trainer, _, _ in benchmark._implementations([], "cuda", ("tiled", "auto")):
        trainer(w)
    # each row's path as an engine option (auto: none, so the engine takes the user's $FASTMLP_CUDA_PATH);
    # the environment is left alone
    assert seen == ["tiled", None, None]  # cuda tiled, cuda auto, numba
    assert os.environ["FASTMLP_CUDA_PATH"] == "block"


def test_bench_json_rows():
    r = run("bench", "--workload", "w1", "--dtype", "float64", "--networks", "4", "--steps", "20",
            "--reference-networks", "2", "--json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    impls = [row["impl"] for row in rows]
    assert impls[0].startswith("fastmlp") and "numpy reference (loop)" in impls
    for row in rows:
        for key in ("impl", "workload", "dtype", "nets_per_s", "gflops", "pct_peak", "compile_s"):
            assert key in row
        assert row["nets_per_s"] > 0 and row["loss_max_rel_diff"] < 1e-9


def test_bench_table_with_rounds_shows_the_medians():
    r = run("bench", "--workload", "w1", "--dtype", "float64", "--networks", "2", "--steps", "5",
            "--reference-networks", "1", "--rounds", "2", "--same-process")
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("impl"))
    assert lines[head].endswith("median nets/s median x")
    fastmlp = lines[head + 1].split()
    assert fastmlp[:2] == ["fastmlp", "(numba)"] and fastmlp[-1] == "1.0" and float(fastmlp[-2]) > 0


def test_bench_rows_are_the_same_in_one_process_and_in_separate_ones():
    """Each implementation timed in a process of its own (the default) must train the same workload: the same
    final losses, to the bit, as in this process."""
    from fastmlp.benchmark import run_benchmark
    kw = dict(n_networks=3, steps=15, reference_networks=2)
    one = run_benchmark("w1", "float64", ["numpy"], separate=False, **kw)
    apart = run_benchmark("w1", "float64", ["numpy"], separate=True, **kw)
    assert [r["impl"] for r in one] == [r["impl"] for r in apart] == ["fastmlp (numba)", "numpy reference (loop)"]
    for a, b in zip(one, apart):
        assert a["networks"] == b["networks"] and a["loss_max_rel_diff"] == b["loss_max_rel_diff"] < 1e-9
        assert b["nets_per_s"] > 0 and b["compile_s"] >= 0


def test_bench_rounds_time_the_list_in_turn_and_keep_each_best(monkeypatch):
    """``rounds``: every round times the whole list once, in order; a row keeps its best time, every round's
    time and their median, and its first round's compile time; a peer whose process fails in a later round is
    skipped with the reason."""
    import fastmlp.benchmark as bm
    real = bm._time_in_process
    calls, secs = [], {"fastmlp (numba)": [3.0, 1.0, 2.0], "numpy reference (loop)": [5.0, 6.0, 4.0]}

    losses = {}  # each implementation's real final losses, trained once

    def fake(job):
        calls.append(job["name"])
        if job["name"] not in losses:
            losses[job["name"]] = real(job)[0]
        k = calls.count(job["name"]) - 1
        return losses[job["name"]], secs[job["name"]][k], 10.0 + k

    monkeypatch.setattr(bm, "_time_in_process", fake)
    kw = dict(n_networks=3, steps=5, reference_networks=2)
    rows = bm.run_benchmark("w1", "float64", ["numpy"], rounds=3, **kw)
    assert calls == ["fastmlp (numba)", "numpy reference (loop)"] * 3
    assert [r["seconds"] for r in rows] == [1.0, 4.0] and [r["compile_s"] for r in rows] == [10.0, 10.0]
    assert rows[1]["fastmlp_speedup"] == pytest.approx((3 / 1.0) / (2 / 4.0))
    assert rows[1]["loss_max_rel_diff"] < 1e-9 and rows[0]["rounds"] == 3
    # the medians over the rounds, beside the best
    assert [r["round_seconds"] for r in rows] == [[3.0, 1.0, 2.0], [5.0, 6.0, 4.0]]
    assert [r["nets_per_s_median"] for r in rows] == [3 / 2.0, 2 / 5.0]
    assert rows[1]["fastmlp_speedup_median"] == pytest.approx((3 / 2.0) / (2 / 5.0))

    def failing_later(job):
        if job["name"] != "fastmlp (numba)" and calls.count(job["name"]) == 1:
            raise RuntimeError(f"{job['name']} failed in its own process (exit status 9): boom")
        return fake(job)

    calls.clear()
    monkeypatch.setattr(bm, "_time_in_process", failing_later)
    rows = bm.run_benchmark("w1", "float64", ["numpy"], rounds=2, **kw)
    assert "boom" in rows[1]["skipped"] and rows[0]["seconds"] == 1.0
    assert calls == ["fastmlp (numba)", "numpy reference (loop)", "fastmlp (numba)"]


def test_a_failing_timing_process_says_which_and_why():
    from fastmlp.benchmark import _time_in_process
    job = dict(name="no such implementation", peers=[], backend="numba", workload="w1", dtype="float64",
               n_networks=2, steps=2, repeat=1)
    with pytest.raises(RuntimeError, match="no such implementation.*exit status 1.*KeyError"):
        _time_in_process(job)


@pytest.mark.parametrize("args,needle", [
    (["train", "--activation", "swish"], "swish"),
    (["train", "--hidden", "32x"], "malformed hidden layers"),
    (["train", "--lr", "-1"], "learning rate must be > 0"),
    (["train", "--lr", "0"], "learning rate must be > 0"),
    (["train", "--dataset", "nosuch"], "unknown dataset 'nosuch'"),
    (["train", "--dataset", "csv", "--data-file", "missing.csv", "--target", "y"], "missing.csv"),
    (["train", "--init", "glorot"], "glorot"),
    (["train", "--steps", "0"], "0"),
    (["train", "--dropout", "1.5"], "dropout"),
    (["bench", "--peers", "tensorflow"], "unknown peer 'tensorflow'"),
    (["bench", "--peers", "torch:adam"], "unknown peer 'torch:adam'"),
])
def test_bad_input_is_a_usage_error(args, needle):
    r = run(*args)
    assert r.exit_code == 2, r.output
    assert needle in r.output
    assert "Traceback" not in r.output


def test_csv_with_a_missing_target_column(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text("a,b,label\n1,2,0\n3,4,1\n5,6,0\n")
    r = run("train", "--dataset", str(f), "--target", "nope", "--steps", "5")
    assert r.exit_code == 2 and "nope" in r.output


def test_info_and_shim():
    r = run("info")
    assert r.exit_code == 0 and "threads" in r.output and "gpu" in r.output
    assert "cuda paths: chunk" in r.output and "auto takes chunk up to 64 parameters" in r.output
    from fastmlp.config import VECTOR_BYTES
    assert f"{VECTOR_BYTES}-byte vectors" in r.output
    p = subprocess.run([sys.executable, str(ROOT / "cli.py"), "--help"], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 0 and "symmetry" in p.stdout


def test_cuda_backend_without_a_gpu_is_a_clear_message(monkeypatch):
    from fastmlp.engine import cuda as cuda_engine
    if cuda_engine.simulated() or "no usable" not in str(cuda_engine.gpu_info()):
        pytest.skip("a GPU or the simulator is available here")
    r = run("train", "--backend", "cuda", "--steps", "5")
    assert r.exit_code == 2 and "not usable" in r.output and "Traceback" not in r.output
