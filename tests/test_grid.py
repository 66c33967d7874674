"""Grid specs: range syntax, TOML files and their merging with options, expansion, keys and grouping."""
import json
import math

import pytest

from fastmlp.grid import (GridError, GridSpec, Run, expand, group_runs, load_config, merge_settings,
                          parse_architectures, parse_choices, parse_memory, parse_seeds, parse_values,
                          target_loss_value)
from fastmlp.spec import SCHEMES


# ---------------------------------------------------------------------------------------------- ranges

def test_lists_and_single_values():
    assert parse_values("0.01,0.1", "--lr") == [0.01, 0.1]
    assert parse_values("1", "--scale") == [1.0]
    assert parse_values([0.5, "1,2"], "--scale") == [0.5, 1.0, 2.0]
    assert parse_values("0.1, 0.1 ,0.2", "--lr") == [0.1, 0.2]          # duplicates dropped, order kept


def test_log_and_lin_ranges():
    v = parse_values("log:1e-3:10:25", "--scale")
    assert len(v) == 25 and v[0] == 1e-3 and v[-1] == 10.0
    ratios = [b / a for a, b in zip(v, v[1:])]
    assert max(ratios) / min(ratios) == pytest.approx(1.0, rel=1e-9)
    assert parse_values("lin:0.5:2:7", "--scale") == [0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]
    assert parse_values("log:1e-2:1:3", "--scale") == [0.01, 0.1, 1.0]
    assert parse_values("lin:3:3:1", "--scale") == [3.0]
    assert parse_values("0,log:0.1:10:3", "--scale") == [0.0, 0.1, 1.0, 10.0]


def test_grown_log_grid_shares_points_exactly():
    coarse = parse_values("log:1e-3:10:25", "--scale")
    fine = parse_values("log:1e-3:10:49", "--scale")
    assert fine[::2] == coarse          # same floats, so the same run keys


def test_integer_ranges_are_half_open():
    assert parse_values("0:4", "--steps", integer=True) == [0, 1, 2, 3]
    assert parse_values("100:1000:300", "--steps", integer=True) == [100, 400, 700]
    assert parse_values("lin:10:30:3", "--steps", integer=True) == [10, 20, 30]


@pytest.mark.parametrize("text, fragment", [
    ("log:0:1:3", "positive ends"), ("log:1:2", "malformed range"), ("lin:a:2:3", "expected a number"),
    ("lin:1:2:0", "COUNT must be >= 1"), ("1:2", "float axes take lin"), ("", "empty item"), ("0.1,,0.2", "empty"),
    ("abc", "expected a number"), ("inf", "finite"),
])
def test_malformed_float_ranges(text, fragment):
    with pytest.raises(GridError, match=fragment) as e:
        parse_values(text, "--scale")
    assert e.value.option == "--scale"


@pytest.mark.parametrize("text, fragment", [("5:5", "empty range"), ("1:4:0", "STEP must not be 0"),
                                            ("1.5", "integer"), ("1:", "malformed range")])
def test_malformed_integer_ranges(text, fragment):
    with pytest.raises(GridError, match=fragment):
        parse_values(text, "--steps", integer=True)


def test_seeds():
    assert list(parse_seeds("8")) == list(range(8))
    assert list(parse_seeds(8)) == list(range(8))
    assert list(parse_seeds("0:16")) == list(range(16))
    assert list(parse_seeds("4:8")) == [4, 5, 6, 7]
    assert parse_seeds("3,5") == [3, 5]
    assert parse_seeds([0, 2]) == [0, 2]
    for bad in ("0", "-1:3", "x"):
        with pytest.raises(GridError):
            parse_seeds(bad)


def test_choices_list_the_valid_ones():
    assert parse_choices("zeros,he_normal", "--init", SCHEMES) == ["zeros", "he_normal"]
    with pytest.raises(GridError, match="choose from: zeros, constant"):
        parse_choices("zeros,bogus", "--init", SCHEMES)


def test_architectures():
    assert parse_architectures(["16", "32x4", "64-32"]) == [(16,), (32,) * 4, (64, 32)]
    assert parse_architectures(["16,32x2-8"]) == [(16,), (32, 32, 8)]
    assert parse_architectures([16, "8x2", [8, 4], []]) == [(16,), (8, 8), (8, 4), ()]
    for bad in ("0x3", "abc", "16,-2", "64,32"):
        with pytest.raises(GridError, match="--hidden"):
            parse_architectures([bad])


def test_memory_sizes():
    assert parse_memory("512M") == 512 * 1024 ** 2
    assert parse_memory("1.5GB") == int(1.5 * 1024 ** 3)
    assert parse_memory("1000") == 1000
    with pytest.raises(GridError):
        parse_memory("lots")


def test_target_loss():
    assert target_loss_value("0.3", 0.7) == 0.3
    assert target_loss_value("90%", 0.5) == pytest.approx(0.45)
    with pytest.raises(GridError, match="--target-loss"):
        target_loss_value("soon", 0.7)


# ---------------------------------------------------------------------------------------------- spec

def test_spec_defaults_and_validation():
    spec = GridSpec.from_settings({})
    assert spec.init == ["xavier_normal"] and spec.hidden == [(16,)] and spec.seeds == [0]
    for settings, option in [({"lr": "0"}, "--lr"), ({"lr": "-0.1"}, "--lr"), ({"scale": "-1"}, "--scale"),
                             ({"dropout": "1"}, "--dropout"), ({"batch_size": "0"}, "--batch-size"),
                             ({"steps": "0"}, "--steps"), ({"dataset": "nope"}, "--dataset"),
                             ({"optimizer": "rmsprop"}, "--optimizer"), ({"activation": "gelu"}, "--activation"),
                             ({"momentum": "1"}, "--momentum"), ({"val_split": "1.5"}, "--val-split"),
                             ({"steps": "10", "epochs": "2"}, "--epochs"), ({"metric": "speed"}, "--metric"),
                             ({"chunk_size": "0"}, "--chunk-size"), ({"n_samples": "-5"}, "--n-samples")]:
        with pytest.raises(GridError) as e:
            GridSpec.from_settings(settings)
        assert e.value.option == option, settings
    with pytest.raises(GridError, match="unknown settings"):
        GridSpec.from_settings({"learning_rate": 0.1})


def test_batch_size_full():
    assert GridSpec.from_settings({"batch_size": "full,32"}).batch_size == [None, 32]


def write(tmp_path, text, name="sweep.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_config_file_and_override(tmp_path):
    path = write(tmp_path, """
dataset = "xor"
init = ["zeros", "xavier_normal"]
scale = "log:1e-2:1:3"
lr = [0.01, 0.1]
seeds = 4
hidden = ["16", "32x2", [8, 4]]
batch-size = 32
steps = 100
[data_options]
noise = 0.2
""")
    cfg = load_config(path)
    assert cfg["batch_size"] == 32 and cfg["data_options"] == {"noise": 0.2}
    spec = GridSpec.from_settings(merge_settings(cfg, {"lr": "0.5", "hidden": [], "seeds": None}))
    assert spec.lr == [0.5]                        # the option overrides the file
    assert spec.init == ["zeros", "xavier_normal"]  # the file's value where no option is given
    assert list(spec.seeds) == [0, 1, 2, 3]
    assert spec.hidden == [(16,), (32, 32), (8, 4)]
    assert spec.scale == [0.01, 0.1, 1.0]
    assert spec.dataset == "xor" and spec.data_options == {"noise": 0.2}
    # --epochs on the command line replaces the file's steps
    spec = GridSpec.from_settings(merge_settings(cfg, {"epochs": "3"}))
    assert spec.epochs == [3] and spec.steps == []


def test_config_file_errors(tmp_path):
    with pytest.raises(GridError, match="unknown key 'learning_rate'"):
        load_config(write(tmp_path, "learning_rate = 0.1\n"))
    with pytest.raises(GridError, match="not valid TOML"):
        load_config(write(tmp_path, "lr = [0.1,\n"))
    with pytest.raises(GridError, match="not found"):
        load_config(tmp_path / "missing.toml")
    assert load_config(write(tmp_path, "[grid]\nlr = 0.2\n"))["lr"] == 0.2


# --------------------------------------------------------------------------------------------- expansion

def test_expand_counts_and_order():
    spec = GridSpec.from_settings({"init": "zeros,normal", "scale": "lin:1:2:3", "seeds": "2", "lr": "0.1,1",
                                   "hidden": ["4", "4x2"]})
    runs = expand(spec, n_train=100)
    assert len(runs) == 2 * 3 * 2 * 2 * 2
    assert [r.seed for r in runs[:4]] == [0, 1, 0, 1]          # seed varies fastest
    groups = group_runs(runs)
    assert len(groups) == 2                                    # one per architecture
    assert all(len(g) == 24 for g in groups.values())


def test_expand_normalises_irrelevant_settings():
    spec = GridSpec.from_settings({"optimizer": "sgd,adam", "momentum": "0.5,0.9", "batch_size": "full,32,500"})
    runs = expand(spec, n_train=100)
    sgd = [r for r in runs if r.optimizer == "sgd"]
    adam = [r for r in runs if r.optimizer == "adam"]
    assert {r.momentum for r in sgd} == {None}                 # plain SGD has no momentum: no duplicate runs
    assert {r.momentum for r in adam} == {0.5, 0.9}
    assert {r.batch_size for r in runs} == {None, 32}          # 500 >= 100 samples is full batch
    assert len(sgd) == 2 and len(adam) == 4


def _expand_eagerly(spec, n_train):
    """The plain definition: the Cartesian product of the axes, normalised, duplicates dropped (first kept)."""
    import itertools
    runs = {}
    from fastmlp.grid import init_variants
    for hidden, act, opt, bs, length, (init, sw, sb), scale, lr, mom, wd, drop, dtype, seed in itertools.product(
            spec.hidden, spec.activation, spec.optimizer, spec.batch_size, spec.epochs or spec.steps,
            init_variants(spec), spec.scale, spec.lr, spec.momentum, spec.weight_decay, spec.dropout, spec.dtype,
            spec.seeds):
        batch = None if bs is None or bs >= n_train else int(bs)
        steps = int(length) * -(-n_train // (batch or n_train)) if spec.epochs else int(length)
        run = Run(hidden=tuple(hidden), activation=act, optimizer=opt, batch_size=batch, steps=steps, init=init,
                  scale=float(scale), lr=float(lr), momentum=None if opt == "sgd" else float(mom),
                  weight_decay=float(wd), dropout=float(drop), dtype=dtype, seed=int(seed),
                  epochs=int(length) if spec.epochs else None,
                  record_every=spec.record_every or max(1, -(-steps // 500)), sigma_w2=sw, sigma_b2=sb)
        runs.setdefault(run.settings().__repr__(), run)
    return list(runs.values())


@pytest.mark.parametrize("settings", [
    {"optimizer": "sgd,adam", "momentum": "0.5,0.9", "batch_size": "500,full,32,64", "dtype": "float32,float64",
     "seeds": "3", "hidden": ["4", "0", "4x2"], "scale": "0,1"},
    {"epochs": "2,3", "batch_size": "16,full", "init": "zeros,normal", "lr": "0.1,1", "seeds": "2:5"},
    {"init": "normal,meanfield,zeros", "sigma_w2": "1,2,3", "sigma_b2": "0,0.05", "seeds": "2", "scale": "1,2"},
])
def test_lazy_expansion_is_the_product_without_duplicates(settings):
    from fastmlp.grid import GridRuns
    spec = GridSpec.from_settings(settings)
    lazy = GridRuns(spec, 100)
    eager = _expand_eagerly(spec, 100)
    assert list(lazy) == eager and len(lazy) == len(eager)
    assert [lazy[i] for i in range(len(eager))] == eager
    groups = group_runs(eager)
    assert [g.key for g in lazy.groups()] == list(groups)
    assert [list(g) for g in lazy.groups()] == list(groups.values())
    assert all(lazy.group_of(r) is not None for r in eager)
    assert lazy.group_of(_run(seed=99, hidden=(4,))) is None


def test_ten_million_seeds_cost_nothing_until_used():
    from fastmlp.grid import GridRuns
    spec = GridSpec.from_settings({"seeds": "0:10000000", "scale": "0.5,1"})
    runs = GridRuns(spec, 100)
    assert isinstance(spec.seeds, range) and len(runs) == 2 * 10 ** 7
    assert runs[10 ** 7 + 3].seed == 3 and runs[10 ** 7 + 3].scale == 1.0
    assert spec.to_dict()["seeds"] == "0:10000000"


def test_epochs_become_steps():
    spec = GridSpec.from_settings({"epochs": "3", "batch_size": "32,full"})
    runs = expand(spec, n_train=100)
    assert sorted((r.batch_size or 0, r.steps, r.epochs) for r in runs) == [(0, 3, 3), (32, 12, 3)]


def test_record_every_default():
    runs = expand(GridSpec.from_settings({"steps": "500,2000"}), n_train=10)
    assert [(r.steps, r.record_every) for r in runs] == [(500, 1), (2000, 4)]


def _run(**changes):
    base = dict(hidden=(4,), activation="tanh", optimizer="sgd", batch_size=None, steps=10, init="normal",
                scale=1.0, lr=0.1, momentum=None, weight_decay=0.0, dropout=0.0, dtype="float64", seed=0)
    base.update(changes)
    return Run(**base)


def test_run_keys_are_stable_and_discriminating():
    ds = {"sha256": "abc", "val_split": None, "split_seed": None}
    k = _run().key(ds)
    assert k == _run().key(dict(ds)) and len(k) == 24
    assert _run(record_every=5).key(ds) == k                   # recording does not change the run
    assert _run(epochs=1).key(ds) == k
    for change in ({"seed": 1}, {"scale": 1.0000001}, {"lr": 0.2}, {"hidden": (4, 4)}, {"dtype": "float32"},
                   {"init": "zeros"}):
        assert _run(**change).key(ds) != k, change
    assert _run().key(dict(ds, sha256="abd")) != k             # another dataset
    assert _run().key(dict(ds, val_split=0.2, split_seed=0)) != k
    # the key hashes a canonical JSON of the settings
    assert json.loads(json.dumps(_run().settings())) == _run().settings()
    assert not math.isnan(_run().settings()["scale"])
