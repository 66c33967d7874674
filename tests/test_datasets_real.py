"""Real datasets: MNIST-style files (Keras .npz and IDX, gzipped or not), pixel scalings, scikit-learn's sets."""
import gzip
import json
import sqlite3
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from fastmlp import realdata
from fastmlp.cli import main
from fastmlp.data import load_dataset

MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist.npz"
needs_mnist = pytest.mark.skipif(not MNIST.is_file(), reason=f"MNIST (Keras mnist.npz) not found at {MNIST}")


def idx_bytes(a):
    """The IDX encoding of a uint8 array, written from the format's description (not by the code under test)."""
    a = np.ascontiguousarray(a, dtype=np.uint8)
    return bytes([0, 0, 0x08, a.ndim]) + b"".join(struct.pack(">I", n) for n in a.shape) + a.tobytes()


@pytest.fixture(scope="module")
def tiny():
    """A small MNIST-shaped set: 30 training and 12 test images, random pixels, labels 0..9."""
    rng = np.random.default_rng(7)
    x_train = rng.integers(0, 256, (30, 28, 28), dtype=np.uint8)
    x_test = rng.integers(0, 256, (12, 28, 28), dtype=np.uint8)
    y_train = np.arange(30, dtype=np.uint8) % 10
    y_test = rng.integers(0, 10, 12).astype(np.uint8)
    return x_train, y_train, x_test, y_test


def write_idx_dir(directory, arrays, gz, dotted=False):
    directory.mkdir(parents=True, exist_ok=True)
    stems = realdata.IDX_STEMS["train"] + realdata.IDX_STEMS["test"]
    for stem, a in zip(stems, arrays):
        name = stem.replace("-idx", ".idx") if dotted else stem
        data = idx_bytes(a)
        if gz:
            (directory / (name + ".gz")).write_bytes(gzip.compress(data))
        else:
            (directory / name).write_bytes(data)
    return directory


@pytest.fixture(scope="module")
def sources(tiny, tmp_path_factory):
    """The tiny set as an .npz, a directory of raw IDX files, one of gzipped ones and one of dotted names."""
    root = tmp_path_factory.mktemp("mnist_files")
    npz = root / "mnist.npz"
    np.savez(npz, **dict(zip(realdata.NPZ_KEYS, tiny)))
    return {"npz": npz,
            "raw": write_idx_dir(root / "raw", tiny, gz=False),
            "gz": write_idx_dir(root / "gz", tiny, gz=True),
            "dotted": write_idx_dir(root / "dotted", tiny, gz=True, dotted=True)}


# ----------------------------------------------------------------------------------------------- IDX and npz

def test_read_idx_raw_and_gzip_round_trip(tiny, sources):
    for kind in ("raw", "gz"):
        directory = sources[kind]
        stem = realdata.IDX_STEMS["train"][0] + (".gz" if kind == "gz" else "")
        a = realdata.read_idx(directory / stem)
        assert a.dtype == np.uint8 and a.shape == (30, 28, 28)
        np.testing.assert_array_equal(a, tiny[0])


@pytest.mark.parametrize("part", ["train", "test", "all"])
@pytest.mark.parametrize("pixels", realdata.PIXELS)
def test_idx_files_load_to_the_same_arrays_as_the_npz(sources, part, pixels):
    ref = load_dataset("mnist", data_file=sources["npz"], part=part, pixels=pixels)
    for kind in ("raw", "gz", "dotted"):
        d = load_dataset("mnist", data_dir=sources[kind], part=part, pixels=pixels)
        np.testing.assert_array_equal(d.X, ref.X)
        np.testing.assert_array_equal(d.y, ref.y)
    # a directory holding only the .npz reads it too
    d = load_dataset("mnist", data_dir=sources["npz"].parent, part=part, pixels=pixels)
    np.testing.assert_array_equal(d.X, ref.X)


def test_npz_contents_as_a_multiclass_dataset(tiny, sources):
    d = load_dataset("mnist", data_file=sources["npz"], part="all")
    assert d.X.shape == (42, 784) and d.task == "multiclass" and d.n_classes == 10 and d.n_outputs == 10
    np.testing.assert_array_equal(d.X, np.concatenate([tiny[0], tiny[2]]).reshape(42, 784) / 255.0)
    np.testing.assert_array_equal(d.y, np.concatenate([tiny[1], tiny[3]]))
    f = load_dataset("fashion_mnist", data_file=sources["npz"])
    assert f.name == "fashion_mnist" and f.n_samples == 30


def test_subset_is_seeded_and_small(tiny, sources):
    a = load_dataset("mnist", data_dir=sources["gz"], n_samples=10, seed=1)
    b = load_dataset("mnist", data_dir=sources["gz"], n_samples=10, seed=1)
    c = load_dataset("mnist", data_dir=sources["gz"], n_samples=10, seed=2)
    np.testing.assert_array_equal(a.X, b.X)
    assert not np.array_equal(a.X, c.X)
    idx = realdata.subset_index(30, 10, 1)
    assert len(set(idx)) == 10 and np.all(np.diff(idx) > 0)
    np.testing.assert_array_equal(a.X, tiny[0].reshape(30, -1)[idx] / 255.0)
    np.testing.assert_array_equal(a.y, tiny[1][idx])


def test_pixel_scalings_statistics(sources):
    unit = load_dataset("mnist", data_file=sources["npz"], pixels="unit").X
    centered = load_dataset("mnist", data_file=sources["npz"], pixels="centered").X
    standard = load_dataset("mnist", data_file=sources["npz"], pixels="standard").X
    assert unit.min() >= 0.0 and unit.max() <= 1.0 and unit.max() == 1.0     # random pixels reach 255
    assert centered.min() >= -0.5 and centered.max() <= 0.5
    np.testing.assert_allclose(centered, unit - 0.5, rtol=0, atol=1e-15)
    assert abs(standard.mean()) < 1e-12 and abs(standard.std() - 1.0) < 1e-12
    np.testing.assert_allclose(standard, (unit - unit.mean()) / unit.std(), rtol=1e-12, atol=1e-12)


@needs_mnist
def test_the_shared_mnist_npz():
    x_train, y_train, x_test, y_test = realdata.read_npz(MNIST)
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28) and x_train.dtype == np.uint8
    d = load_dataset("mnist", data_file=MNIST, n_samples=500, seed=0, pixels="centered")
    assert d.X.shape == (500, 784) and set(np.unique(d.y)) == set(range(10))
    idx = realdata.subset_index(60000, 500, 0)
    np.testing.assert_array_equal(d.X, x_train.reshape(60000, -1)[idx] / 255.0 - 0.5)
    # real digits: mostly black background, the papers' [-0.5, 0.5] range used in full
    assert d.X.min() == -0.5 and d.X.max() == 0.5 and (d.X == -0.5).mean() > 0.7
    t = load_dataset("mnist", data_file=MNIST, part="test", n_samples=100)
    np.testing.assert_array_equal(t.y, y_test[realdata.subset_index(10000, 100, 0)])


# ---------------------------------------------------------------------------------------------------- errors

def test_absent_files_name_the_expected_ones(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.*x_train|x_train.*train-images-idx3"):
        load_dataset("mnist")
    with pytest.raises(FileNotFoundError, match="data file not found.*x_train"):
        load_dataset("mnist", data_file=tmp_path / "nope.npz")
    with pytest.raises(FileNotFoundError, match="fashion_mnist.npz or fashion-mnist.npz"):
        load_dataset("fashion_mnist", data_dir=tmp_path)


def test_partial_idx_directory_names_the_missing_files(tiny, tmp_path):
    d = write_idx_dir(tmp_path / "partial", tiny, gz=True)
    (d / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing IDX files train-labels-idx1-ubyte\[\.gz\]$|"
                                                r"missing IDX files train-labels-idx1-ubyte\[\.gz\]\."):
        load_dataset("mnist", data_dir=d)
    # the test part is complete, so it still loads
    assert load_dataset("mnist", data_dir=d, part="test").n_samples == 12


def test_malformed_files(tiny, tmp_path):
    bad = tmp_path / "bad-idx"
    bad.write_bytes(b"\x00\x00\x08\x03" + struct.pack(">III", 5, 28, 28) + b"\x00" * 100)
    with pytest.raises(ValueError, match=r"shape \(5, 28, 28\).*100 bytes"):
        realdata.read_idx(bad)
    bad.write_bytes(b"PK\x03\x04 not idx")
    with pytest.raises(ValueError, match="not an IDX file"):
        realdata.read_idx(bad)
    npz = tmp_path / "other.npz"
    np.savez(npz, x_train=tiny[0], y_train=tiny[1])
    with pytest.raises(ValueError, match="missing arrays x_test, y_test"):
        load_dataset("mnist", data_file=npz)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"this is not a zip archive")
    with pytest.raises(ValueError, match="cannot read as .npz"):
        load_dataset("mnist", data_file=junk)


def test_bad_options(sources):
    with pytest.raises(ValueError, match="pixels='gray'.*unit, centered, standard"):
        load_dataset("mnist", data_file=sources["npz"], pixels="gray")
    with pytest.raises(ValueError, match="part='val'"):
        load_dataset("mnist", data_file=sources["npz"], part="val")
    with pytest.raises(ValueError, match="n_samples=31 is more than the 30"):
        load_dataset("mnist", data_file=sources["npz"], n_samples=31)
    with pytest.raises(ValueError, match="does not take noise"):
        load_dataset("mnist", data_file=sources["npz"], noise=0.1)
    with pytest.raises(ValueError, match="data_dir is only for"):
        load_dataset("spirals", data_dir=sources["raw"])


# --------------------------------------------------------------------------------------------- scikit-learn

SKLEARN = {"digits": "load_digits", "breast_cancer": "load_breast_cancer", "iris": "load_iris",
           "wine": "load_wine"}


@pytest.mark.parametrize("name", sorted(SKLEARN))
def test_sklearn_sets_match_sklearns_loaders(name):
    skd = pytest.importorskip("sklearn.datasets", reason="scikit-learn is not installed (extra fastmlp[sklearn])")
    X, y = getattr(skd, SKLEARN[name])(return_X_y=True)
    raw = load_dataset(name, standardize=False)
    np.testing.assert_array_equal(raw.X, X)
    np.testing.assert_array_equal(raw.y, y)
    assert raw.task == ("binary" if name == "breast_cancer" else "multiclass")
    assert raw.n_outputs == (1 if name == "breast_cancer" else len(np.unique(y)))
    std = load_dataset(name)
    sd = X.std(axis=0)
    np.testing.assert_allclose(std.X, (X - X.mean(axis=0)) / np.where(sd > 0, sd, 1.0), rtol=1e-12, atol=1e-12)
    sub = load_dataset(name, standardize=False, n_samples=40, seed=3)
    idx = realdata.subset_index(len(y), 40, 3)
    np.testing.assert_array_equal(sub.X, X[idx])
    np.testing.assert_array_equal(sub.y, y[idx])


def test_sklearn_missing_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)     # import now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'fastmlp\[sklearn\]'"):
        load_dataset("iris")
    result = CliRunner().invoke(main, ["train", "--dataset", "iris", "--steps", "2"])
    assert result.exit_code == 2 and "fastmlp[sklearn]" in result.output


# ------------------------------------------------------------------------------------- through the commands

def test_train_reads_mnist_with_options(sources, tiny):
    result = CliRunner().invoke(main, ["train", "--dataset", "mnist", "--data-dir", str(sources["gz"]),
                                       "--data-option", "pixels=centered", "--n-samples", "20", "--hidden", "4",
                                       "--steps", "3", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["dataset"] == "mnist" and out["status"] == "ok" and out["final_loss"] > 0
    # a missing directory is a usage error naming the files
    result = CliRunner().invoke(main, ["train", "--dataset", "mnist", "--steps", "2"])
    assert result.exit_code == 2 and "train-images-idx3-ubyte" in result.output
    result = CliRunner().invoke(main, ["train", "--dataset", "mnist", "--data-file", str(sources["npz"]),
                                       "--data-option", "pixels=gray", "--steps", "2"])
    assert result.exit_code == 2 and "pixels='gray'" in result.output


def test_symmetry_on_a_sklearn_set():
    pytest.importorskip("sklearn.datasets", reason="scikit-learn is not installed (extra fastmlp[sklearn])")
    result = CliRunner().invoke(main, ["symmetry", "--dataset", "wine", "--hidden", "4", "--steps", "20",
                                       "--n-samples", "60", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    zeros = next(r for r in rows if r["init"] == "zeros")
    assert zeros["distinct_units"] == [1] and not any(zeros["weights_moved"])


def test_grid_records_the_real_dataset(sources, tmp_path):
    db = tmp_path / "g.db"
    result = CliRunner().invoke(main, ["grid", "--dataset", "mnist", "--data-dir", str(sources["raw"]),
                                       "--data-option", "pixels=standard", "--n-samples", "16", "--data-seed", "4",
                                       "--hidden", "4", "--steps", "3", "--init", "xavier_normal,he_normal",
                                       "--out", str(db), "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    with sqlite3.connect(db) as con:
        ident = json.loads(con.execute("SELECT value FROM meta WHERE key = 'dataset'").fetchone()[0])
        n = con.execute("SELECT COUNT(*) FROM runs WHERE status = 'done'").fetchone()[0]
    assert n == 2
    assert ident["name"] == "mnist" and ident["n_samples"] == 16 and ident["n_features"] == 784
    assert ident["options"]["pixels"] == "standard" and ident["options"]["seed"] == 4
    result = CliRunner().invoke(main, ["grid", "--dataset", "mnist", "--data-dir", str(tmp_path / "none"),
                                       "--out", str(tmp_path / "h.db")])
    assert result.exit_code == 2 and "--data-dir" in result.output and "t10k-images-idx3-ubyte" in result.output
