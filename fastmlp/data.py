"""Datasets: small generated problems, CSV files, the Kaggle Titanic training set and real ones.

The real ones (MNIST, Fashion-MNIST from the user's files; scikit-learn's bundled sets) are read by
:mod:`fastmlp.realdata`; :func:`load_dataset` is the one entry point for all.

Everything returns a :class:`Dataset` whose ``X`` is C-contiguous float64, ready to hand to an engine.
Generators are deterministic given ``seed`` (``np.random.default_rng(seed)``) and standardise their
features, so that weight-initialisation scales mean the same thing on every problem.
"""
from __future__ import annotations

import csv as _csv
import inspect
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .realdata import IMAGE_SETS, REAL, SKLEARN_SETS

TASKS = ("binary", "multiclass", "regression")
OUTPUT_OF_TASK = {"binary": "sigmoid", "multiclass": "softmax", "regression": "identity"}
BUILTIN = ("xor", "moons", "circles", "spirals", "blobs", "teacher", "digits_like")
DATASETS = BUILTIN + REAL + ("titanic", "csv")
SEEDED = BUILTIN + REAL       # datasets a seed changes (generated data, or the random subset of --n-samples)
MAX_INFERRED_CLASSES = 20     # an integer target with more distinct values than this is taken as regression


# eq=False: the generated __eq__ would compare arrays element-wise and fail on bool(); identity is enough.
@dataclass(frozen=True, eq=False)
class Dataset:
    """A supervised data set.

    Parameters
    ----------
    X : ndarray, shape (n_samples, n_features)
        Inputs, stored as C-contiguous float64.
    y : ndarray
        Binary: (n,) float64 of 0/1. Multiclass: (n,) int64 labels ``0..n_classes-1``.
        Regression: (n,) or (n, k) float64.
    task : {"binary", "multiclass", "regression"}
    name : str
    feature_names : tuple of str
        One name per column of ``X``; ``()`` means ``("x0", "x1", ...)``.
    n_classes : int
        Multiclass only: number of classes; 0 means ``y.max() + 1``. Kept explicitly so that a subset
        (e.g. a validation split) missing the highest class still has the right number of outputs.
    """

    X: np.ndarray
    y: np.ndarray
    task: str
    name: str = "data"
    feature_names: tuple = ()
    n_classes: int = 0

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; choose one of: {', '.join(TASKS)}")
        X = np.ascontiguousarray(self.X, dtype=np.float64)
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
        y = np.asarray(self.y)
        if y.shape[:1] != X.shape[:1]:
            raise ValueError(f"X has {X.shape[0]} rows but y has shape {y.shape}")
        n_classes = 0
        if self.task == "binary":
            y = np.ascontiguousarray(y, dtype=np.float64)
            if y.ndim != 1 or not np.isin(y, (0.0, 1.0)).all():
                raise ValueError("a binary target must be 1-D with values 0 and 1 only")
        elif self.task == "multiclass":
            if y.ndim != 1 or (y.size and not np.array_equal(y, np.round(y))) or (y.size and y.min() < 0):
                raise ValueError("a multiclass target must be 1-D non-negative integer labels")
            y = np.ascontiguousarray(y, dtype=np.int64)
            n_classes = int(self.n_classes) or (int(y.max()) + 1 if y.size else 0)
            if y.size and y.max() >= n_classes:
                raise ValueError(f"label {int(y.max())} does not fit n_classes={n_classes}")
            if n_classes < 2:
                raise ValueError(f"a multiclass target needs at least 2 classes, got {n_classes}")
        else:
            y = np.ascontiguousarray(y, dtype=np.float64)
            if y.ndim not in (1, 2):
                raise ValueError(f"a regression target must be 1-D or 2-D, got shape {y.shape}")
        names = tuple(str(f) for f in self.feature_names) or tuple(f"x{j}" for j in range(X.shape[1]))
        if len(names) != X.shape[1]:
            raise ValueError(f"{len(names)} feature names for {X.shape[1]} features")
        # frozen: fields can only be normalised through object.__setattr__
        for field, value in (("X", X), ("y", y), ("feature_names", names), ("n_classes", n_classes)):
            object.__setattr__(self, field, value)

    @property
    def n_samples(self) -> int:
        return self.X.shape[0]

    @property
    def n_features(self) -> int:
        return self.X.shape[1]

    @property
    def n_outputs(self) -> int:
        """Output units a network needs: 1 (binary), n_classes (multiclass), target columns (regression)."""
        if self.task == "multiclass":
            return self.n_classes
        if self.task == "regression" and self.y.ndim == 2:
            return self.y.shape[1]
        return 1

    @property
    def output(self) -> str:
        """Output unit matching the task: "sigmoid", "softmax" or "identity"."""
        return OUTPUT_OF_TASK[self.task]

    def targets(self, dtype=np.float64) -> np.ndarray:
        """Targets as a (n_samples, n_outputs) float array.

        Parameters
        ----------
        dtype : numpy dtype, default float64

        Returns
        -------
        ndarray
            A 0/1 column for binary, one-hot rows for multiclass, the values for regression.
        """
        if self.task == "multiclass":
            T = np.zeros((self.n_samples, self.n_classes), dtype=dtype)
            T[np.arange(self.n_samples), self.y] = 1
            return T
        return np.ascontiguousarray(self.y.reshape(self.n_samples, -1), dtype=dtype)

    def subset(self, index) -> "Dataset":
        """The rows ``index`` (an integer array or a boolean mask) as a new Dataset."""
        return Dataset(self.X[index], self.y[index], self.task, self.name, self.feature_names, self.n_classes)

    def split(self, val_fraction: float = 0.2, seed: int = 0) -> "tuple[Dataset, Dataset]":
        """Shuffle and split into training and validation sets.

        Parameters
        ----------
        val_fraction : float
            Fraction of samples for validation, in the open interval (0, 1).
        seed : int
            Seed of ``np.random.default_rng`` for the shuffle.

        Returns
        -------
        train, val : Dataset
        """
        if not 0.0 < float(val_fraction) < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
        n_val = int(round(self.n_samples * float(val_fraction)))
        if not 0 < n_val < self.n_samples:
            raise ValueError(f"val_fraction={val_fraction!r} of {self.n_samples} samples leaves an empty part")
        order = np.random.default_rng(seed).permutation(self.n_samples)
        return self.subset(np.sort(order[n_val:])), self.subset(np.sort(order[:n_val]))


# ---------------------------------------------------------------------------------------------- helpers

def _positive_int(what, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def _non_negative(what, value):
    if not (isinstance(value, (int, float, np.number)) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{what} must be a finite number >= 0, got {value!r}")
    return float(value)


def _standardise(X):
    """Columns to mean 0, std 1 (population std); a constant column is only centred."""
    std = X.std(axis=0)
    return (X - X.mean(axis=0)) / np.where(std > 0, std, 1.0)


def _balanced_labels(rng, n, k):
    """n labels with class sizes differing by at most one, in random order."""
    return rng.permutation(np.arange(n) % k)


def _labelled(X, labels, k, name, task=None):
    task = task or ("binary" if k == 2 else "multiclass")
    y = labels.astype(np.float64) if task == "binary" else labels
    return Dataset(_standardise(X), y, task, name, n_classes=0 if task == "binary" else k)


# -------------------------------------------------------------------------------------------- generated

def xor(n_samples=400, noise=0.1, seed=0) -> Dataset:
    """Four gaussian clusters at (+-1, +-1); label 1 where the signs of the coordinates differ.

    Parameters
    ----------
    n_samples : int
    noise : float
        Standard deviation of each cluster.
    seed : int
    """
    n, noise = _positive_int("n_samples", n_samples), _non_negative("noise", noise)
    rng = np.random.default_rng(seed)
    corner = _balanced_labels(rng, n, 4)
    signs = np.array([[1, 1], [-1, -1], [1, -1], [-1, 1]], dtype=np.float64)
    X = signs[corner] + rng.normal(0.0, noise, (n, 2))
    return _labelled(X, (corner >= 2).astype(np.int64), 2, "xor")


def moons(n_samples=400, noise=0.1, seed=0) -> Dataset:
    """Two interleaving half circles (as scikit-learn's ``make_moons``), plus gaussian noise."""
    n, noise = _positive_int("n_samples", n_samples), _non_negative("noise", noise)
    rng = np.random.default_rng(seed)
    labels = _balanced_labels(rng, n, 2)
    t = rng.uniform(0.0, np.pi, n)
    X = np.where(labels[:, None] == 0,
                 np.column_stack([np.cos(t), np.sin(t)]),
                 np.column_stack([1.0 - np.cos(t), 0.5 - np.sin(t)]))
    return _labelled(X + rng.normal(0.0, noise, (n, 2)), labels, 2, "moons")


def circles(n_samples=400, noise=0.05, factor=0.5, seed=0) -> Dataset:
    """A circle of radius ``factor`` (label 1) inside one of radius 1 (label 0), plus gaussian noise."""
    n, noise = _positive_int("n_samples", n_samples), _non_negative("noise", noise)
    if not 0.0 < factor < 1.0:
        raise ValueError(f"factor must be in (0, 1), got {factor!r}")
    rng = np.random.default_rng(seed)
    labels = _balanced_labels(rng, n, 2)
    t = rng.uniform(0.0, 2 * np.pi, n)
    r = np.where(labels == 1, factor, 1.0)
    X = r[:, None] * np.column_stack([np.cos(t), np.sin(t)]) + rng.normal(0.0, noise, (n, 2))
    return _labelled(X, labels, 2, "circles")


def spirals(n_samples=600, arms=2, noise=0.1, turns=1.5, seed=0) -> Dataset:
    """Interleaved spiral arms, one class per arm; binary for 2 arms, multiclass otherwise.

    Parameters
    ----------
    n_samples : int
    arms : int
        Number of arms (classes), at least 2.
    noise : float
        Standard deviation of gaussian noise, in units of the outer radius (1).
    turns : float
        Turns each arm makes from the centre to the outer radius.
    seed : int
    """
    n, noise = _positive_int("n_samples", n_samples), _non_negative("noise", noise)
    if _positive_int("arms", arms) < 2:
        raise ValueError(f"arms must be at least 2, got {arms!r}")
    if not (isinstance(turns, (int, float)) and turns > 0):
        raise ValueError(f"turns must be a positive number, got {turns!r}")
    rng = np.random.default_rng(seed)
    labels = _balanced_labels(rng, n, arms)
    # start a little off the centre, where all arms meet and the classes are inseparable
    r = rng.uniform(0.1, 1.0, n)
    angle = 2 * np.pi * (turns * r + labels / arms)
    X = r[:, None] * np.column_stack([np.cos(angle), np.sin(angle)]) + rng.normal(0.0, noise, (n, 2))
    return _labelled(X, labels, arms, "spirals")


def blobs(n_samples=400, centers=3, n_features=2, std=1.0, seed=0) -> Dataset:
    """Isotropic gaussian clusters with centres drawn uniformly in [-5, 5]^n_features.

    Binary when ``centers == 2``, multiclass otherwise.
    """
    n, d = _positive_int("n_samples", n_samples), _positive_int("n_features", n_features)
    if _positive_int("centers", centers) < 2:
        raise ValueError(f"centers must be at least 2, got {centers!r}")
    std = _non_negative("std", std)
    rng = np.random.default_rng(seed)
    labels = _balanced_labels(rng, n, centers)
    mu = rng.uniform(-5.0, 5.0, (centers, d))
    return _labelled(mu[labels] + rng.normal(0.0, std, (n, d)), labels, centers, "blobs")


_TEACHER_ACTIVATIONS = {
    "tanh": np.tanh,
    "relu": lambda z: np.maximum(z, 0.0),
    "sigmoid": lambda z: 1.0 / (1.0 + np.exp(-z)),
    "leaky_relu": lambda z: np.where(z > 0, z, 0.01 * z),
    "linear": lambda z: z,
}


def teacher(n_samples=1000, n_features=10, hidden=(16,), activation="tanh", task="binary", n_classes=3,
            n_outputs=1, noise=0.1, seed=0) -> Dataset:
    """Labels produced by a random "teacher" MLP on standard normal inputs.

    Weights are normal with std ``1/sqrt(fan_in)``, biases zero.

    Parameters
    ----------
    n_samples, n_features : int
    hidden : tuple of int
        Hidden layer widths of the teacher.
    activation : {"tanh", "relu", "sigmoid", "leaky_relu", "linear"}
    task : {"binary", "multiclass", "regression"}
        Binary: label = output > 0. Multiclass: argmax over ``n_classes`` outputs.
        Regression: ``n_outputs`` outputs plus gaussian noise of std ``noise``.
    n_classes, n_outputs : int
    noise : float
    seed : int
    """
    n, d = _positive_int("n_samples", n_samples), _positive_int("n_features", n_features)
    hidden = tuple(_positive_int("hidden width", h) for h in hidden)
    if activation not in _TEACHER_ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose one of: {', '.join(_TEACHER_ACTIVATIONS)}")
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of: {', '.join(TASKS)}")
    if task == "multiclass" and _positive_int("n_classes", n_classes) < 2:
        raise ValueError(f"n_classes must be at least 2, got {n_classes!r}")
    noise = _non_negative("noise", noise)
    out = {"binary": 1, "multiclass": n_classes, "regression": _positive_int("n_outputs", n_outputs)}[task]
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    h, act = X, _TEACHER_ACTIVATIONS[activation]
    sizes = (d, *hidden, out)
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        h = h @ rng.normal(0.0, 1.0 / math.sqrt(fan_in), (fan_in, fan_out))
        if i < len(hidden):
            h = act(h)
    if task == "binary":
        y = (h[:, 0] > 0).astype(np.float64)
    elif task == "multiclass":
        y = h.argmax(axis=1)
    else:
        y = h + rng.normal(0.0, noise, h.shape)
        y = y[:, 0] if out == 1 else y
    return Dataset(X, y, task, "teacher", n_classes=n_classes if task == "multiclass" else 0)


def digits_like(n_samples=1797, n_features=64, n_classes=10, noise=1.0, seed=0) -> Dataset:
    """A synthetic stand-in with the shape of scikit-learn's digits: 1797 x 64, 10 classes.

    Each class has a standard normal prototype; samples are prototype + gaussian noise of std ``noise``,
    then standardised.
    """
    n, d = _positive_int("n_samples", n_samples), _positive_int("n_features", n_features)
    if _positive_int("n_classes", n_classes) < 2:
        raise ValueError(f"n_classes must be at least 2, got {n_classes!r}")
    noise = _non_negative("noise", noise)
    rng = np.random.default_rng(seed)
    labels = _balanced_labels(rng, n, n_classes)
    prototypes = rng.standard_normal((n_classes, d))
    X = prototypes[labels] + rng.normal(0.0, noise, (n, d))
    return _labelled(X, labels, n_classes, "digits_like", task="multiclass")


# ------------------------------------------------------------------------------------------------ files

def _read_table(path):
    """Header and rows of a CSV file (rows paired with their line numbers)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path}")
    with open(path, newline="") as fh:
        reader = _csv.reader(fh)
        header = next(reader, None)
        if not header:
            raise ValueError(f"{path}: empty file, expected a header row")
        header = [h.strip() for h in header]
        duplicated = sorted({h for h in header if header.count(h) > 1})
        if duplicated:
            raise ValueError(f"{path}: duplicate column names in header: {', '.join(duplicated)}")
        rows = []
        for row in reader:
            if not row:             # csv yields [] for blank lines
                continue
            if len(row) != len(header):
                raise ValueError(f"{path}: line {reader.line_num} has {len(row)} fields, header has {len(header)}")
            rows.append((reader.line_num, row))
    if not rows:
        raise ValueError(f"{path}: no data rows")
    return header, rows


def _numeric_column(path, header, rows, column):
    j = header.index(column)
    values = np.empty(len(rows))
    for i, (line, row) in enumerate(rows):
        text = row[j].strip()
        if text == "":
            raise ValueError(f"{path}: column {column!r} has a missing value in row {i + 1} (line {line})")
        try:
            values[i] = float(text)
        except ValueError:
            raise ValueError(f"{path}: column {column!r} has a non-numeric value {row[j]!r} in row {i + 1} "
                             f"(line {line})") from None
        if not math.isfinite(values[i]):
            raise ValueError(f"{path}: column {column!r} has a missing or infinite value {row[j]!r} in row "
                             f"{i + 1} (line {line})")
    return values


def csv(path, target, features=None, task=None) -> Dataset:
    """Read a numeric data set from a CSV file with a header row.

    Parameters
    ----------
    path : str or Path
    target : str
        Name of the target column.
    features : sequence of str, optional
        Feature columns, in order; default all columns except ``target``.
    task : {"binary", "multiclass", "regression"}, optional
        Inferred when None: an integer-valued target with 2 distinct values is binary, with at most 20
        multiclass, anything else regression. Class labels are mapped to 0..k-1 in sorted order.

    Returns
    -------
    Dataset
        Features as they are in the file (not standardised).
    """
    header, rows = _read_table(path)
    if target not in header:
        raise ValueError(f"{path}: target column {target!r} not in header; available: {', '.join(header)}")
    features = [c for c in header if c != target] if features is None else list(features)
    for c in features:
        if c not in header:
            raise ValueError(f"{path}: feature column {c!r} not in header; available: {', '.join(header)}")
    if target in features:
        raise ValueError(f"{path}: target column {target!r} is also listed as a feature")
    if not features:
        raise ValueError(f"{path}: no feature columns besides target {target!r}")
    if task is not None and task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of: {', '.join(TASKS)}")
    X = np.column_stack([_numeric_column(path, header, rows, c) for c in features])
    t = _numeric_column(path, header, rows, target)
    classes = np.unique(t)
    if task is None and len(classes) < 2:
        raise ValueError(f"{path}: target {target!r} holds a single value ({classes[0]:g}): there is nothing to "
                         f"classify; give task='regression' (--task regression) to fit it as a regression target")
    if task is None:
        integral = np.array_equal(t, np.round(t))
        task = ("binary" if integral and len(classes) == 2 else
                "multiclass" if integral and 2 < len(classes) <= MAX_INFERRED_CLASSES else "regression")
    if task == "regression":
        y = t
    else:
        if len(classes) < 2 or (task == "binary" and len(classes) != 2):
            raise ValueError(f"{path}: target {target!r} has {len(classes)} distinct values, "
                             f"which does not fit task {task!r}")
        y = np.searchsorted(classes, t)       # sorted class values -> 0..k-1
    return Dataset(X, y, task, Path(path).stem, tuple(features))


TITANIC_FEATURES = ("Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked")
_SEX = {"male": 0.0, "female": 1.0}
_PORT = {"S": 0.0, "C": 1.0, "Q": 2.0}


def titanic(path) -> Dataset:
    """The Kaggle Titanic training set (``train.csv``), prepared as the classic tutorial does.

    Features, in order: Pclass, Sex (male 0, female 1), Age (missing -> median Age), SibSp, Parch,
    Fare (missing -> median Fare), Embarked (S 0, C 1, Q 2; missing -> most common port). Each column
    is standardised to mean 0 and std 1. The target is Survived (binary).

    Parameters
    ----------
    path : str or Path
        A file in Kaggle's ``train.csv`` format.
    """
    header, rows = _read_table(path)
    missing = [c for c in ("Survived",) + TITANIC_FEATURES if c not in header]
    if missing:
        raise ValueError(f"{path}: not in Kaggle Titanic format, missing columns: {', '.join(missing)}")

    def column(name, mapping=None):
        """Values of a column as floats, NaN where empty; categorical through ``mapping``."""
        j, out = header.index(name), np.empty(len(rows))
        for i, (line, row) in enumerate(rows):
            text = row[j].strip()
            try:
                out[i] = np.nan if text == "" else mapping[text] if mapping else float(text)
            except (KeyError, ValueError):
                raise ValueError(f"{path}: column {name!r} has an unexpected value {row[j]!r} in row {i + 1} "
                                 f"(line {line})") from None
        return out

    cols = {c: column(c, {"Sex": _SEX, "Embarked": _PORT}.get(c)) for c in TITANIC_FEATURES}
    for c, fill in (("Age", np.nanmedian), ("Fare", np.nanmedian), ("Embarked", _mode)):
        v = cols[c]
        if np.isnan(v).all():
            raise ValueError(f"{path}: column {c!r} has no values to fill its missing ones from")
        v[np.isnan(v)] = fill(v[~np.isnan(v)])
    for c in ("Pclass", "Sex", "SibSp", "Parch"):
        if np.isnan(cols[c]).any():
            i = int(np.flatnonzero(np.isnan(cols[c]))[0])
            raise ValueError(f"{path}: column {c!r} has a missing value in row {i + 1} (line {rows[i][0]})")
    y = _numeric_column(path, header, rows, "Survived")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError(f"{path}: column 'Survived' must hold only 0 and 1")
    X = _standardise(np.column_stack([cols[c] for c in TITANIC_FEATURES]))
    return Dataset(X, y, "binary", "titanic", TITANIC_FEATURES)


def _mode(values):
    """Most common value; ties go to the smallest, so the result does not depend on row order."""
    counts = Counter(values.tolist())
    return max(sorted(counts), key=counts.__getitem__)


# ---------------------------------------------------------------------------------------------- dispatch

_GENERATORS = {f.__name__: f for f in (xor, moons, circles, spirals, blobs, teacher, digits_like)}


def load_dataset(name, *, data_file=None, target=None, features=None, seed=0, n_samples=None, data_dir=None,
                 **kwargs) -> Dataset:
    """Load a data set by name.

    Parameters
    ----------
    name : str
        One of :data:`DATASETS`, or a path ending in ``.csv`` (read as ``"csv"`` with that file).
    data_file : str or Path, optional
        The file of ``"titanic"`` and ``"csv"``; the Keras ``.npz`` of ``"mnist"`` and ``"fashion_mnist"``.
    target : str, optional
        Target column, needed by ``"csv"``.
    features : sequence of str, optional
        Feature columns for ``"csv"``; default all but the target.
    seed : int
        Seed of generated data sets, and of the random subset ``n_samples`` draws from a real one.
    n_samples : int, optional
        Sample count of generated data sets, or the size of a seeded random subset of a real one
        (``mnist``, ``fashion_mnist``, the scikit-learn sets); None keeps each one's default (all of a real
        set). Must be None for ``titanic`` and ``csv``.
    data_dir : str or Path, optional
        A directory holding the IDX files (or the ``.npz``) of ``"mnist"`` and ``"fashion_mnist"``.
    **kwargs
        Further arguments of the generator (e.g. ``noise``, ``arms``), ``task`` for ``"csv"``, ``pixels`` and
        ``part`` for the image sets, ``standardize`` for the scikit-learn sets.

    Returns
    -------
    Dataset
    """
    from . import realdata
    name = str(name)
    if name.lower().endswith(".csv"):
        if data_file is not None:
            raise ValueError(f"name {name!r} is already a CSV path; do not also give data_file={data_file!r}")
        name, data_file = "csv", name
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)} or a path to a .csv")
    if name not in IMAGE_SETS and data_dir is not None:
        raise ValueError(f"data_dir is only for {' and '.join(IMAGE_SETS)}, not the dataset {name!r}")
    if name in BUILTIN or name in SKLEARN_SETS:
        # reject file options instead of silently ignoring them: they signal a mistaken name
        kind = "generated" if name in BUILTIN else "scikit-learn"
        for option, value in (("data_file", data_file), ("target", target), ("features", features)):
            if value is not None:
                raise ValueError(f"{option} is not used by the {kind} dataset {name!r}")
        if name in BUILTIN:
            fn, kwargs = _GENERATORS[name], dict(kwargs, seed=seed)
        else:
            fn, kwargs = realdata.sklearn_dataset, dict(kwargs, name=name, seed=seed)
        if n_samples is not None:
            kwargs["n_samples"] = n_samples
    elif name in IMAGE_SETS:
        for option, value in (("target", target), ("features", features)):
            if value is not None:
                raise ValueError(f"{option} is not used by the image dataset {name!r}")
        fn = getattr(realdata, name)
        kwargs = dict(kwargs, data_file=data_file, data_dir=data_dir, seed=seed, n_samples=n_samples)
    else:
        if data_file is None:
            raise ValueError(f"dataset {name!r} needs data_file (a path to the CSV file)")
        if n_samples is not None:
            raise ValueError(f"n_samples={n_samples!r} is only for generated and real datasets, not {name!r}")
        if name == "titanic":
            fn, kwargs = titanic, dict(kwargs, path=data_file)
        else:
            if target is None:
                raise ValueError(f"dataset 'csv' ({data_file}) needs target (the name of the target column)")
            fn, kwargs = csv, dict(kwargs, path=data_file, target=target, features=features)
    accepted = inspect.signature(fn).parameters
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        takes = [a for a in accepted if a != "name"]
        raise ValueError(f"dataset {name!r} does not take {', '.join(unknown)}; it takes: {', '.join(takes)}")
    return fn(**kwargs)
