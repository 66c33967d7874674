"""Real datasets: MNIST and Fashion-MNIST from the files users have, and scikit-learn's bundled sets.

MNIST-style files come in two standard forms, both read here without any download:

- the Keras ``.npz`` (arrays ``x_train``, ``y_train``, ``x_test``, ``y_test``; images ``(n, 28, 28)`` uint8);
- the four IDX files of the original distribution, gzipped or not: ``train-images-idx3-ubyte``,
  ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` (``.gz`` optional; the
  spelling ``train-images.idx3-ubyte`` is accepted too).

Images are flattened to 784 features and scaled by ``pixels``: ``unit`` (``x / 255``, in [0, 1]), ``centered``
(``x / 255 - 0.5``, in [-0.5, 0.5], as in Schoenholz et al. 2017) or ``standard`` (mean 0, std 1 over all pixels
of the returned samples, one mean and one std for the whole image as torchvision's ``Normalize`` does: a
per-pixel standardisation would blow rarely-lit border pixels up to hundreds). ``n_samples`` draws a seeded
random subset before any conversion to float, so a small run never holds the whole set in float64.

scikit-learn's ``digits``, ``breast_cancer``, ``iris`` and ``wine`` come from ``sklearn.datasets`` (the extra
``fastmlp[sklearn]``), features standardised per column unless ``standardize=False``.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

IMAGE_SETS = ("mnist", "fashion_mnist")
SKLEARN_SETS = ("digits", "breast_cancer", "iris", "wine")
REAL = IMAGE_SETS + SKLEARN_SETS
PIXELS = ("unit", "centered", "standard")
PARTS = ("train", "test", "all")
IDX_STEMS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
# file names a directory may hold the .npz under, per dataset
NPZ_NAMES = {"mnist": ("mnist.npz",), "fashion_mnist": ("fashion_mnist.npz", "fashion-mnist.npz")}
# IDX type codes (third byte of the magic number) -> numpy dtype, big-endian as the format specifies
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_SUBSET_STREAM = 0x5EB5      # mixed into the subsampling seed, apart from any other use of the seed


def expected_files(name):
    """A sentence naming the files ``name`` can be read from (used in the errors)."""
    npz = " or ".join(NPZ_NAMES[name])
    idx = ", ".join(s + "[.gz]" for part in ("train", "test") for s in IDX_STEMS[part])
    return (f"dataset {name!r} is read from the Keras .npz (--data-file {NPZ_NAMES[name][0]}: arrays "
            f"{', '.join(NPZ_KEYS)}) or from a directory (--data-dir DIR) holding the four IDX files {idx}, "
            f"or {npz}")


def read_idx(path):
    """Read one IDX file (gzipped or not, told by its first bytes, not its name).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    ndarray
        Shape and dtype as the file's header says.

    Raises
    ------
    ValueError
        When the header or the size does not fit the IDX format.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise ValueError(f"{path}: not a readable gzip file ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES or raw[3] == 0:
        raise ValueError(f"{path}: not an IDX file (magic number {raw[:4].hex() or 'missing'})")
    ndim, dtype = raw[3], np.dtype(_IDX_TYPES[raw[2]])
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: IDX header cut short ({len(raw)} bytes)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != size:
        raise ValueError(f"{path}: IDX header says shape {shape} ({size} bytes of data) but the file holds "
                         f"{len(raw) - header} bytes")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def _find_idx(directory, stem):
    """The file of ``stem`` in ``directory``: the exact name, ``.gz``, or the ``.idx3`` spelling."""
    dotted = stem.replace("-idx", ".idx")
    for name in (stem, stem + ".gz", dotted, dotted + ".gz"):
        p = directory / name
        if p.is_file():
            return p
    return None


def read_npz(path):
    """The four arrays of a Keras-layout ``.npz``: ``(x_train, y_train, x_test, y_test)``."""
    import zipfile
    path = Path(path)
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: cannot read as .npz ({e})") from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: a single .npy array, not an .npz archive")
    with z:
        missing = [k for k in NPZ_KEYS if k not in z.files]
        if missing:
            raise ValueError(f"{path}: not in Keras layout, missing arrays {', '.join(missing)} "
                             f"(it holds {', '.join(z.files) or 'nothing'})")
        return tuple(z[k] for k in NPZ_KEYS)


def _read_parts(name, data_file, data_dir, part):
    """Images and labels of ``part`` (uint8/int arrays as stored) from the file or directory given."""
    if data_file is not None and Path(data_file).is_dir():
        data_file, data_dir = None, data_file
    if data_file is not None:
        path = Path(data_file)
        if not path.is_file():
            raise FileNotFoundError(f"data file not found: {path}. {expected_files(name)}")
        arrays = read_npz(path)
        pairs = {"train": arrays[:2], "test": arrays[2:]}
    elif data_dir is not None:
        directory = Path(data_dir)
        if not directory.is_dir():
            raise FileNotFoundError(f"data directory not found: {directory}. {expected_files(name)}")
        pairs = {}
        found = {p: [_find_idx(directory, s) for s in IDX_STEMS[p]] for p in IDX_STEMS}
        wanted = ("train", "test") if part == "all" else (part,)
        if all(all(found[p]) for p in wanted):
            pairs = {p: tuple(read_idx(f) for f in found[p]) for p in wanted}
        else:
            npz = next((directory / n for n in NPZ_NAMES[name] if (directory / n).is_file()), None)
            if npz is None:
                absent = [s for p in wanted for s, f in zip(IDX_STEMS[p], found[p]) if f is None]
                raise FileNotFoundError(f"{directory}: no {' / '.join(NPZ_NAMES[name])} and missing IDX files "
                                        f"{', '.join(a + '[.gz]' for a in absent)}. {expected_files(name)}")
            arrays = read_npz(npz)
            pairs = {"train": arrays[:2], "test": arrays[2:]}
    else:
        raise FileNotFoundError(f"no data file given for {name!r}: {expected_files(name)}")
    wanted = ("train", "test") if part == "all" else (part,)
    xs, ys = [], []
    for p in wanted:
        x, y = pairs[p]
        if x.ndim < 2 or y.ndim != 1 or x.shape[0] != y.shape[0]:
            raise ValueError(f"dataset {name!r}: {p} images of shape {x.shape} do not match labels of shape "
                             f"{y.shape}")
        xs.append(x.reshape(x.shape[0], -1))
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


def subset_index(n_total, n_samples, seed):
    """Sorted indices of a seeded random subset of ``n_samples`` rows out of ``n_total`` (all when None)."""
    if n_samples is None:
        return np.arange(n_total)
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples <= 0:
        raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
    if n_samples > n_total:
        raise ValueError(f"n_samples={n_samples} is more than the {n_total} samples available")
    rng = np.random.default_rng([int(seed), _SUBSET_STREAM])
    return np.sort(rng.choice(n_total, int(n_samples), replace=False))


def scale_pixels(x, pixels="unit"):
    """Pixel values 0..255 as float64 features.

    Parameters
    ----------
    x : ndarray of uint8
    pixels : {"unit", "centered", "standard"}
        ``unit``: ``x / 255``; ``centered``: ``x / 255 - 0.5``; ``standard``: ``(x - mean) / std`` with one mean
        and one std over all values of ``x``.
    """
    if pixels not in PIXELS:
        raise ValueError(f"unknown pixels={pixels!r}; choose one of: {', '.join(PIXELS)}")
    x = np.asarray(x, dtype=np.float64)
    if pixels == "standard":
        std = x.std()
        return (x - x.mean()) / (std if std > 0 else 1.0)
    x = x / 255.0
    return x - 0.5 if pixels == "centered" else x


def _images(name, data_file, data_dir, part, pixels, n_samples, seed):
    from .data import Dataset
    if part not in PARTS:
        raise ValueError(f"unknown part={part!r}; choose one of: {', '.join(PARTS)}")
    if pixels not in PIXELS:
        raise ValueError(f"unknown pixels={pixels!r}; choose one of: {', '.join(PIXELS)}")
    x, y = _read_parts(name, data_file, data_dir, part)
    if y.size and (y.min() < 0 or y.max() > 9):
        raise ValueError(f"dataset {name!r}: labels must be 0..9, found {int(y.min())}..{int(y.max())}")
    idx = subset_index(x.shape[0], n_samples, seed)
    return Dataset(scale_pixels(x[idx], pixels), y[idx].astype(np.int64), "multiclass", name,
                   tuple(f"px{j}" for j in range(x.shape[1])), n_classes=10)


def mnist(data_file=None, data_dir=None, part="train", pixels="unit", n_samples=None, seed=0):
    """MNIST handwritten digits from a Keras ``.npz`` or the four IDX files.

    Parameters
    ----------
    data_file : str or Path, optional
        A Keras-layout ``mnist.npz``.
    data_dir : str or Path, optional
        A directory holding the IDX files (gzipped or not) or ``mnist.npz``.
    part : {"train", "test", "all"}
        Which part of the set: 60000 training, 10000 test images, or both.
    pixels : {"unit", "centered", "standard"}
        Pixel scaling, see :func:`scale_pixels`.
    n_samples : int, optional
        A seeded random subset of this many images (in file order); None keeps all.
    seed : int
        Seed of the subset.

    Returns
    -------
    Dataset
        784 features, 10 classes.

    Raises
    ------
    FileNotFoundError
        When the files are absent; the message names the files expected.
    """
    return _images("mnist", data_file, data_dir, part, pixels, n_samples, seed)


def fashion_mnist(data_file=None, data_dir=None, part="train", pixels="unit", n_samples=None, seed=0):
    """Fashion-MNIST (Zalando's clothing images) from a Keras-layout ``.npz`` or the four IDX files.

    The parameters are those of :func:`mnist`; a directory may hold ``fashion_mnist.npz`` or
    ``fashion-mnist.npz``.
    """
    return _images("fashion_mnist", data_file, data_dir, part, pixels, n_samples, seed)


_SKLEARN_LOADERS = {"digits": "load_digits", "breast_cancer": "load_breast_cancer", "iris": "load_iris",
                    "wine": "load_wine"}


def sklearn_dataset(name, standardize=True, n_samples=None, seed=0):
    """One of scikit-learn's bundled data sets (no download).

    Parameters
    ----------
    name : {"digits", "breast_cancer", "iris", "wine"}
    standardize : bool
        Columns to mean 0, std 1 (a constant column only centred); False keeps scikit-learn's values.
    n_samples : int, optional
        A seeded random subset of this many rows (in the loader's order).
    seed : int

    Returns
    -------
    Dataset
        ``breast_cancer`` is binary, the others multiclass.

    Raises
    ------
    ImportError
        When scikit-learn is not installed, saying how to install it.
    """
    from .data import Dataset, _standardise
    if name not in _SKLEARN_LOADERS:
        raise ValueError(f"unknown scikit-learn dataset {name!r}; choose one of: {', '.join(SKLEARN_SETS)}")
    if not isinstance(standardize, bool):
        raise ValueError(f"standardize must be true or false, got {standardize!r}")
    try:
        import sklearn.datasets as skd
    except ImportError:
        raise ImportError(f"dataset {name!r} comes with scikit-learn, which is not installed: "
                          f"pip install 'fastmlp[sklearn]' (or pip install scikit-learn)") from None
    bunch = getattr(skd, _SKLEARN_LOADERS[name])()
    X, y = np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target)
    idx = subset_index(X.shape[0], n_samples, seed)
    X, y = X[idx], y[idx]
    if standardize:
        X = _standardise(X)
    k = len(bunch.target_names)
    names = tuple(str(f) for f in getattr(bunch, "feature_names", ())) or ()
    if k == 2:
        return Dataset(X, y.astype(np.float64), "binary", name, names)
    return Dataset(X, y.astype(np.int64), "multiclass", name, names, n_classes=k)
