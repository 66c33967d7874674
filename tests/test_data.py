import csv as stdcsv
import statistics
from pathlib import Path

import numpy as np
import pytest

from fastmlp import data
from fastmlp.data import Dataset, load_dataset

TITANIC = Path(__file__).resolve().parents[2] / "shared" / "data" / "titanic.csv"
needs_titanic = pytest.mark.skipif(not TITANIC.is_file(), reason=f"Titanic data not found at {TITANIC}")

# name -> (shape of X, task, label set)
GENERATED = {
    "xor": ((400, 2), "binary", {0, 1}),
    "moons": ((400, 2), "binary", {0, 1}),
    "circles": ((400, 2), "binary", {0, 1}),
    "spirals": ((600, 2), "binary", {0, 1}),
    "blobs": ((400, 2), "multiclass", {0, 1, 2}),
    "teacher": ((1000, 10), "binary", {0, 1}),
    "digits_like": ((1797, 64), "multiclass", set(range(10))),
}


def write_csv(path, text):
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generated_shapes_dtypes_labels(name):
    shape, task, labels = GENERATED[name]
    ds = load_dataset(name)
    assert ds.X.shape == shape and ds.X.dtype == np.float64 and ds.X.flags.c_contiguous
    assert ds.task == task and ds.y.shape == (shape[0],)
    assert ds.y.dtype == (np.float64 if task == "binary" else np.int64)
    assert set(np.unique(ds.y).tolist()) == labels
    assert np.isfinite(ds.X).all()
    assert len(ds.feature_names) == ds.n_features
    np.testing.assert_allclose(ds.X.mean(axis=0), 0, atol=0.1)
    np.testing.assert_allclose(ds.X.std(axis=0), 1, atol=0.1)


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generated_deterministic(name):
    a, b, c = load_dataset(name, seed=3), load_dataset(name, seed=3), load_dataset(name, seed=4)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.array_equal(a.X, c.X)


def test_n_samples_passed_through():
    assert load_dataset("moons", n_samples=37).n_samples == 37


@pytest.mark.parametrize("ds", [data.spirals(), data.circles(), data.spirals(n_samples=601, arms=4)],
                         ids=["spirals", "circles", "spirals4"])
def test_balanced_classes(ds):
    counts = np.bincount(ds.y.astype(np.int64))
    assert counts.max() - counts.min() <= 1


def test_spiral_arms_and_blobs_binary():
    s = data.spirals(arms=3)
    assert s.task == "multiclass" and s.n_outputs == 3 and s.output == "softmax"
    b = data.blobs(centers=2)
    assert b.task == "binary" and b.n_outputs == 1 and b.output == "sigmoid"


def test_teacher_tasks():
    m = data.teacher(task="multiclass", n_classes=4)
    assert m.n_outputs == 4 and m.y.max() <= 3
    r = data.teacher(task="regression", n_outputs=2)
    assert r.y.shape == (1000, 2) and r.n_outputs == 2 and r.output == "identity"
    r1 = data.teacher(task="regression", noise=0.0)
    assert r1.y.shape == (1000,) and r1.targets().shape == (1000, 1)
    with pytest.raises(ValueError, match="swish"):
        data.teacher(activation="swish")


def test_generator_argument_errors():
    with pytest.raises(ValueError, match="n_samples"):
        data.xor(n_samples=0)
    with pytest.raises(ValueError, match="noise"):
        data.moons(noise=-1)
    with pytest.raises(ValueError, match="factor"):
        data.circles(factor=1.5)


def test_targets():
    m = data.blobs(centers=3)
    T = m.targets(np.float32)
    assert T.shape == (400, 3) and T.dtype == np.float32
    np.testing.assert_array_equal(T.sum(axis=1), 1)
    np.testing.assert_array_equal(T.argmax(axis=1), m.y)
    b = data.xor()
    np.testing.assert_array_equal(b.targets(), b.y[:, None])


def test_split_sizes_disjoint_and_deterministic():
    ds = Dataset(np.arange(100.0)[:, None], np.arange(100) % 2, "binary")
    train, val = ds.split(0.25, seed=1)
    assert (train.n_samples, val.n_samples) == (75, 25)
    tr, va = set(train.X[:, 0]), set(val.X[:, 0])
    assert not tr & va and tr | va == set(range(100))
    np.testing.assert_array_equal(val.X, ds.split(0.25, seed=1)[1].X)
    assert not np.array_equal(val.X, ds.split(0.25, seed=2)[1].X)
    np.testing.assert_array_equal(train.y, train.X[:, 0] % 2)   # rows keep their labels
    for bad in (0, 1, 1.5, -0.1):
        with pytest.raises(ValueError, match="val_fraction"):
            ds.split(bad, seed=0)


def test_split_keeps_class_count():
    ds = Dataset(np.zeros((4, 1)), [0, 0, 0, 2], "multiclass")
    _, val = ds.split(0.25, seed=0)
    # whichever rows land in val, the network still needs three outputs
    assert val.n_outputs == 3 and val.targets().shape == (1, 3)


def test_dataset_validation():
    with pytest.raises(ValueError, match="task"):
        Dataset(np.zeros((2, 1)), [0, 1], "ranking")
    with pytest.raises(ValueError, match="binary"):
        Dataset(np.zeros((2, 1)), [0, 2], "binary")
    with pytest.raises(ValueError, match="rows"):
        Dataset(np.zeros((3, 1)), [0, 1], "binary")


@needs_titanic
def test_titanic():
    ds = data.titanic(TITANIC)
    assert ds.X.shape == (891, 7) and ds.task == "binary"
    assert ds.feature_names == ("Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked")
    assert ds.y.sum() == 342
    assert not np.isnan(ds.X).any()
    np.testing.assert_allclose(ds.X.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(ds.X.std(axis=0), 1, atol=1e-12)


@needs_titanic
def test_titanic_fills_against_raw_file():
    with open(TITANIC, newline="") as fh:
        rows = list(stdcsv.DictReader(fh))
    ages = [float(r["Age"]) for r in rows if r["Age"]]
    median = statistics.median(ages)
    assert len(ages) == 891 - 177
    age = np.array([float(r["Age"]) if r["Age"] else median for r in rows])
    ds = data.titanic(TITANIC)
    np.testing.assert_allclose(ds.X[:, 2], (age - age.mean()) / age.std(), atol=1e-12)
    # the two missing ports become Southampton, the most common one
    port = np.array([{"S": 0, "C": 1, "Q": 2}[r["Embarked"] or "S"] for r in rows], dtype=float)
    np.testing.assert_allclose(ds.X[:, 6], (port - port.mean()) / port.std(), atol=1e-12)


@needs_titanic
def test_load_dataset_titanic():
    assert load_dataset("titanic", data_file=TITANIC).X.shape == (891, 7)
    with pytest.raises(ValueError, match="data_file"):
        load_dataset("titanic")


def test_csv_reads_and_infers_task(tmp_path):
    p = write_csv(tmp_path / "d.csv", "a,b,c,t\n1,2,3,5\n4,5,6,7\n7,8,9.5,5\n")
    ds = data.csv(p, "t")
    assert ds.task == "binary" and ds.feature_names == ("a", "b", "c") and ds.name == "d"
    np.testing.assert_array_equal(ds.y, [0, 1, 0])          # 5 -> 0, 7 -> 1: sorted order
    np.testing.assert_array_equal(ds.X[2], [7, 8, 9.5])
    assert data.csv(p, "c", features=["b"]).task == "regression"
    assert data.csv(p, "t", features=["c", "a"]).X.tolist()[0] == [3, 1]
    p3 = write_csv(tmp_path / "m.csv", "x,t\n0,30\n1,10\n2,20\n3,10\n")
    m = data.csv(p3, "t")
    assert m.task == "multiclass" and m.y.tolist() == [2, 0, 1, 0]
    many = write_csv(tmp_path / "r.csv", "x,t\n" + "".join(f"{i},{i}\n" for i in range(21)))
    assert data.csv(many, "t").task == "regression"


@pytest.mark.parametrize("text, args, pattern", [
    ("a,b\n1,2\n", ("missing_t",), r"'missing_t'.*available: a, b"),
    ("a,b\n1,2\n", ("b", ["zz"]), r"'zz'"),
    ("a,b\n1,2\n3,x\n", ("b",), r"'b'.*'x'.*row 2"),
    ("a,b\n1,2\n,4\n", ("b",), r"'a'.*missing.*row 2"),
    ("a,b\n1,2\n3\n", ("b",), r"line 3"),
])
def test_csv_errors_name_the_column(tmp_path, text, args, pattern):
    p = write_csv(tmp_path / "bad.csv", text)
    with pytest.raises(ValueError, match=pattern):
        data.csv(p, *args)


def test_csv_missing_file_names_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        data.csv(tmp_path / "nope.csv", "t")


def test_load_dataset_dispatch(tmp_path):
    p = write_csv(tmp_path / "d.csv", "a,t\n1,0\n2,1\n")
    assert load_dataset(str(p), target="t").n_samples == 2
    assert load_dataset("csv", data_file=p, target="t", task="regression").task == "regression"
    assert load_dataset("spirals", arms=3, noise=0.2).n_outputs == 3
    with pytest.raises(ValueError, match="target"):
        load_dataset("csv", data_file=p)
    with pytest.raises(ValueError, match="xor.*moons"):
        load_dataset("imagenet")
    with pytest.raises(ValueError, match="wobble"):
        load_dataset("moons", wobble=1)
    with pytest.raises(ValueError, match="data_file"):
        load_dataset("moons", data_file=p)
    assert set(data.DATASETS) == set(data.BUILTIN) | set(data.REAL) | {"titanic", "csv"}
