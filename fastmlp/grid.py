"""Grid specifications: parsing lists and ranges, TOML files, expansion into runs, grouping by shape.

A grid is a set of axes (init scheme, scale, learning rate, seeds, architectures, ...), each a list of values,
and a few fixed settings (the dataset, the backend, ...). Every axis is written as a comma-separated list whose
items are single values or ranges:

``log:1e-3:10:25``
    25 log-spaced points from 1e-3 to 10, both ends included.
``lin:0.5:2:7``
    7 evenly spaced points from 0.5 to 2, both ends included.
``0:16`` or ``0:16:2``
    integers as Python's ``range``: half-open (0..15), optional step. Integer axes only.
``8`` (``--seeds`` only)
    a single integer means a count: seeds 0..7.

Float values produced by ranges are rounded to 12 significant digits, so that a grown grid
(``log:1e-3:10:49`` after ``log:1e-3:10:25``) shares its common points, and their run keys, with the old one.

Nothing here touches data or engines: :mod:`fastmlp.run` loads the dataset and trains the runs.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from .spec import (ACTIVATIONS, DTYPES, OPTIMIZERS, SCHEMES, Init, Training, ambiguous_hidden_message,
                   hidden_label, parse_hidden)

# Bump when the meaning of a run's settings changes; it is mixed into every run key.
KEY_VERSION = 1
# A run whose final training loss ends above this many times its initial loss counts as diverged, even when
# the loss stays finite (float64 holds 1e5 losses that mean nothing); --diverge-factor sets it, "off" disables.
DIVERGE_FACTOR = 10.0


class GridError(ValueError):
    """A bad grid setting; ``option`` names the command-line option (e.g. ``"--scale"``) it came from."""

    def __init__(self, option, message):
        super().__init__(f"{option}: {message}" if option else message)
        self.option = option
        self.message = message


# ------------------------------------------------------------------------------------------------ parsing

def _round12(v):
    """A float rounded to 12 significant digits (range points keep stable keys when a grid grows)."""
    v = float(v)
    return float(f"{v:.12g}") if math.isfinite(v) else v


def _number(token, option, integer):
    token = token.strip()
    try:
        if integer:
            f = float(token)
            if not f.is_integer():
                raise ValueError
            return int(f)
        return float(token)
    except ValueError:
        kind = "an integer" if integer else "a number"
        hint = ""
        looks_like_range = re.search(r"\.\.|[0-9.]\s*-\s*[0-9.]|\bto\b|…", token)
        if looks_like_range and not re.fullmatch(r"[-+]?[0-9.]+e-[0-9]+", token):
            hint = ("; a range is written log:START:STOP:COUNT (e.g. log:1e-3:10:25, log-spaced) or "
                    "lin:START:STOP:COUNT (evenly spaced)") + (", or START:STOP for integers" if integer else "")
        raise GridError(option, f"expected {kind}, got {token!r}{hint}") from None


def _spaced(token, option, integer):
    """Points of a ``log:a:b:n`` or ``lin:a:b:n`` range."""
    kind, *parts = token.split(":")
    if len(parts) != 3:
        raise GridError(option, f"malformed range {token!r}: use {kind}:START:STOP:COUNT, e.g. {kind}:1e-3:10:25")
    a, b = (_number(p, option, False) for p in parts[:2])
    n = _number(parts[2], option, True)
    if n < 1:
        raise GridError(option, f"malformed range {token!r}: COUNT must be >= 1")
    if not (math.isfinite(a) and math.isfinite(b)):
        raise GridError(option, f"malformed range {token!r}: ends must be finite")
    if kind == "log":
        if a <= 0 or b <= 0:
            raise GridError(option, f"malformed range {token!r}: log ranges need positive ends "
                                    f"(add 0 as a separate item: 0,{token})")
        la, lb = math.log10(a), math.log10(b)
        pts = [a] if n == 1 else [10 ** (la + (lb - la) * i / (n - 1)) for i in range(n)]
        if n > 1:
            pts[0], pts[-1] = a, b
    else:
        pts = [a] if n == 1 else [a + (b - a) * i / (n - 1) for i in range(n)]
        if n > 1:
            pts[-1] = b
    return [int(round(p)) for p in pts] if integer else [_round12(p) for p in pts]


def _int_range(token, option):
    parts = token.split(":")
    if len(parts) not in (2, 3) or any(p.strip() == "" for p in parts):
        raise GridError(option, f"malformed range {token!r}: use START:STOP or START:STOP:STEP (half-open, "
                                f"as Python's range)")
    start, stop, *step = (_number(p, option, True) for p in parts)
    step = step[0] if step else 1
    if step == 0:
        raise GridError(option, f"malformed range {token!r}: STEP must not be 0")
    values = list(range(start, stop, step))
    if not values:
        raise GridError(option, f"empty range {token!r} (ranges are half-open: 0:4 is 0, 1, 2, 3)")
    return values


def parse_values(raw, option, integer=False):
    """The values of a numeric axis.

    Parameters
    ----------
    raw : str, number or list
        ``"0.01,0.1"``, ``"log:1e-3:10:25"``, ``"lin:0.5:2:7"``, ``"0:16"`` (integers only), a number, or a list
        of any of these (as a TOML file gives them).
    option : str
        The option's name, for error messages.
    integer : bool
        Whether the axis holds integers.

    Returns
    -------
    list
        The values in order, duplicates removed.

    Raises
    ------
    GridError
        For malformed text, naming the option.

    Examples
    --------
    >>> parse_values("log:1e-2:1:3", "--scale")
    [0.01, 0.1, 1.0]
    >>> parse_values("0:4", "--seeds", integer=True)
    [0, 1, 2, 3]
    """
    items = raw if isinstance(raw, (list, tuple)) else [raw]
    out = []
    for item in items:
        if isinstance(item, bool):
            raise GridError(option, f"expected a number, got {item!r}")
        if isinstance(item, (int, float)):
            out.append(_number(repr(item), option, integer) if integer else float(item))
            continue
        for token in str(item).split(","):
            token = token.strip().lower()
            if not token:
                raise GridError(option, f"empty item in {str(item)!r}")
            if token.startswith(("log:", "lin:")):
                out += _spaced(token, option, integer)
            elif ":" in token:
                if not integer:
                    raise GridError(option, f"malformed range {token!r}: float axes take lin:START:STOP:COUNT or "
                                            f"log:START:STOP:COUNT")
                out += _int_range(token, option)
            else:
                out.append(_number(token, option, integer))
    if not out:
        raise GridError(option, "no values given")
    for v in out:
        if not integer and not math.isfinite(v):
            raise GridError(option, f"values must be finite, got {v!r}")
    return list(dict.fromkeys(out))


def parse_seeds(raw, option="--seeds"):
    """Seeds from a count (``8`` -> 0..7), a half-open range (``0:16``), or a list (``3,5`` or ``[3, 5]``).

    A count or a single range gives a ``range`` (constant memory however many seeds); anything else a list.
    """
    if isinstance(raw, bool):
        raise GridError(option, f"expected seeds, got {raw!r}")
    if isinstance(raw, int) or (isinstance(raw, str) and re.fullmatch(r"\s*\d+\s*", raw)):
        n = int(raw)
        if n <= 0:
            raise GridError(option, f"a seed count must be positive, got {n} (give a list such as 0,1 for "
                                    f"explicit seeds)")
        return range(n)
    m = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*(?::\s*(\d+)\s*)?", raw) if isinstance(raw, str) else None
    if m and int(m.group(3) or 1) > 0 and int(m.group(2)) > int(m.group(1)):
        # a plain range stays a range: ten million seeds cost nothing until they are trained
        return range(int(m.group(1)), int(m.group(2)), int(m.group(3) or 1))
    seeds = parse_values(raw, option, integer=True)
    if any(s < 0 for s in seeds):
        raise GridError(option, f"seeds must be >= 0, got {min(seeds)}")
    return seeds


def parse_choices(raw, option, choices):
    """Names from ``"a,b"`` or a list, each checked against ``choices`` (the error lists them)."""
    items = raw if isinstance(raw, (list, tuple)) else [raw]
    out = []
    for item in items:
        for token in str(item).split(","):
            token = token.strip()
            if token not in choices:
                raise GridError(option, f"unknown value {token!r}; choose from: {', '.join(choices)}")
            out.append(token)
    if not out:
        raise GridError(option, "no values given")
    return list(dict.fromkeys(out))


def parse_architectures(raw, option="--hidden"):
    """Architectures from repeated ``--hidden`` values.

    Each value is one architecture in :func:`fastmlp.spec.parse_hidden`'s grammar (``16``, ``32x4``, ``64-32``,
    ``0``) or a comma-separated list of them (``16,32x2``). A list of plain widths (``8,16``) is refused as
    ambiguous (older fastmlp read it as layers); the message shows both readings. A TOML list may hold
    strings, integers (one layer) or lists of integers (layer widths).
    """
    items = raw if isinstance(raw, (list, tuple)) else [raw]
    out = []
    for item in items:
        if isinstance(item, (list, tuple)):
            out.append(tuple(int(w) for w in item if int(w) != 0))
            continue
        text = str(item).strip()
        tokens = [t.strip() for t in text.split(",")]
        if len(tokens) > 1 and all(re.fullmatch(r"\d+", t) for t in tokens):
            raise GridError(option, ambiguous_hidden_message(text))
        for token in tokens:
            try:
                out.append(parse_hidden(token))
            except ValueError as e:
                raise GridError(option, str(e)) from None
    if not out:
        raise GridError(option, "no architecture given")
    return list(dict.fromkeys(out))


def hidden_text(hidden):
    """``(32, 32, 32)`` -> ``"32,32,32"`` (``"0"`` for no hidden layer): the form the database stores (and run
    keys hash); people see :func:`hidden_label`'s form."""
    return ",".join(str(h) for h in hidden) if hidden else "0"


def stored_hidden(text):
    """The widths of an architecture as the database stores it (``"32,32"`` -> ``(32, 32)``)."""
    return tuple(int(w) for w in str(text).split(",") if w.strip() and w.strip() != "0")


def architecture_label(text):
    """A stored architecture (``"32,32,16"``) as people read and write it (``"32x2-16"``)."""
    return hidden_label(stored_hidden(text))


def parse_diverge_factor(raw, option="--diverge-factor"):
    """The divergence factor: a number > 1, or ``off`` (also ``none``, ``inf``) for no bound (None)."""
    if str(raw).strip().lower() in ("off", "none", "inf", "infinity"):
        return None
    v = parse_values(raw, option)
    if len(v) != 1 or not v[0] > 1:
        raise GridError(option, f"must be one number > 1 (a run whose final loss ends above that many times "
                                f"its initial loss counts as diverged) or 'off', got {raw!r}")
    return v[0]


def parse_memory(text, option="--max-memory"):
    """Bytes from ``"512M"``, ``"4G"``, ``"1.5GB"``, ``"100000"``."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[+-]?\d+)?)\s*([kmgt]?)i?b?\s*", str(text).lower())
    if not m:
        raise GridError(option, f"malformed memory size {text!r}: use e.g. 512M or 4G")
    value = float(m.group(1)) * 1024 ** " kmgt".index(m.group(2) or " ")
    if value <= 0:
        raise GridError(option, f"memory size must be positive, got {text!r}")
    return int(value)


def _data_option_value(text):
    """``"0.2"`` -> 0.2, ``"3"`` -> 3, ``"true"`` -> True, anything else stays a string."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text.strip()


def parse_data_options(raw, option="--data-option"):
    """``["noise=0.2", "arms=3"]`` or a TOML table -> ``{"noise": 0.2, "arms": 3}``."""
    if isinstance(raw, dict):
        return dict(raw)
    out = {}
    for item in raw or ():
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise GridError(option, f"expected KEY=VALUE, got {item!r}")
        out[key.strip()] = _data_option_value(value)
    return out


# ------------------------------------------------------------------------------------------------- config

def load_config(path):
    """The settings of a TOML grid file, keys normalised to underscores.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    dict

    Raises
    ------
    GridError
        If the file is missing, malformed, or has an unknown key (the message lists the valid ones).
    """
    try:
        import tomllib
    except ModuleNotFoundError:        # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise GridError("--config", "reading TOML on Python 3.10 needs tomli: pip install tomli") from None
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise GridError("--config", f"file not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise GridError("--config", f"{path} is not valid TOML: {e}") from None
    if isinstance(raw.get("grid"), dict) and len(raw) == 1:       # allow a [grid] table
        raw = raw["grid"]
    out = {}
    for key, value in raw.items():
        k = key.replace("-", "_")
        if k not in CONFIG_KEYS:
            raise GridError("--config", f"{path}: unknown key {key!r}; valid keys: {', '.join(sorted(CONFIG_KEYS))}")
        out[k] = value
    return out


def merge_settings(config, options):
    """A file's settings overridden by the options given on the command line (``None``/empty = not given).

    ``steps`` and ``epochs`` exclude each other: one given on the command line replaces the other from the file.
    """
    merged = dict(config or {})
    given = {k: v for k, v in (options or {}).items() if v is not None and v != () and v != []}
    for a, b in (("steps", "epochs"), ("epochs", "steps")):
        if a in given and b not in given:
            merged.pop(b, None)
    merged.update(given)
    return merged


# --------------------------------------------------------------------------------------------------- spec

@dataclass
class GridSpec:
    """A validated grid: its axes (lists) and fixed settings.

    Build one with :meth:`from_settings` from a dict of raw settings (option values or a TOML file's).
    """
    hidden: list = field(default_factory=lambda: [(16,)])
    activation: list = field(default_factory=lambda: ["tanh"])
    optimizer: list = field(default_factory=lambda: ["sgd"])
    batch_size: list = field(default_factory=lambda: [None])
    steps: list = field(default_factory=lambda: [500])
    epochs: list | None = None
    init: list = field(default_factory=lambda: ["xavier_normal"])
    scale: list = field(default_factory=lambda: [1.0])
    sigma_w2: list = field(default_factory=lambda: [1.0])     # of --init meanfield only
    sigma_b2: list = field(default_factory=lambda: [0.0])
    lr: list = field(default_factory=lambda: [0.1])
    momentum: list = field(default_factory=lambda: [0.9])
    weight_decay: list = field(default_factory=lambda: [0.0])
    dropout: list = field(default_factory=lambda: [0.0])
    dtype: list = field(default_factory=lambda: ["float64"])
    seeds: list = field(default_factory=lambda: [0])
    # fixed settings
    dataset: str = "spirals"
    data_file: str | None = None
    data_dir: str | None = None
    target: str | None = None
    n_samples: int | None = None
    data_seed: int = 0
    data_options: dict = field(default_factory=dict)
    features: list | None = None
    task: str | None = None
    val_split: float | None = None
    split_seed: int = 0
    backend: str = "numba"
    record_every: int | None = None       # None: ceil(steps / 500)
    target_loss: str = "90%"
    metric: str = "final_loss"
    chunk_size: int | None = None
    chunk_seconds: float = 15.0
    max_memory: int | None = None
    diagnostics: bool = True
    diverge_factor: float | None = DIVERGE_FACTOR
    out: str | None = None
    save_params: bool = False             # keep each run's initial and final parameters (params_store)

    @classmethod
    def from_settings(cls, settings):
        """Validate raw settings into a spec.

        Parameters
        ----------
        settings : dict
            Keys as in :data:`CONFIG_KEYS`; values as strings, numbers or lists.

        Raises
        ------
        GridError
        """
        s = dict(settings)
        unknown = sorted(set(s) - set(CONFIG_KEYS))
        if unknown:
            raise GridError(None, f"unknown settings {', '.join(unknown)}; valid: {', '.join(sorted(CONFIG_KEYS))}")
        spec = cls()

        def floats(key, constraint):
            """The axis ``key``'s values, each checked against ``constraint`` (the one the library applies)."""
            option = "--" + key.replace("_", "-")
            values = parse_values(s[key], option)
            for v in values:
                try:
                    constraint.check("values", v)
                except ValueError as exc:
                    raise GridError(option, str(exc)) from None
            return values

        def positive_ints(key):
            option = "--" + key.replace("_", "-")
            values = parse_values(s[key], option, integer=True)
            if any(v <= 0 for v in values):
                raise GridError(option, f"values must be positive integers, got {min(values)}")
            return values

        from .engine import BACKENDS
        from .data import DATASETS
        training = Training._parameter_constraints

        if "hidden" in s:
            spec.hidden = parse_architectures(s["hidden"])
        if "activation" in s:
            spec.activation = parse_choices(s["activation"], "--activation", ACTIVATIONS)
        if "optimizer" in s:
            spec.optimizer = parse_choices(s["optimizer"], "--optimizer", OPTIMIZERS)
        if "init" in s:
            spec.init = parse_choices(s["init"], "--init", SCHEMES)
        if "dtype" in s:
            spec.dtype = parse_choices(s["dtype"], "--dtype", DTYPES)
        if "batch_size" in s:
            raw = s["batch_size"]
            items = raw if isinstance(raw, (list, tuple)) else str(raw).split(",")
            full = [i for i in items if str(i).strip().lower() in ("full", "none")]
            rest = [i for i in items if str(i).strip().lower() not in ("full", "none")]
            values = [None] * bool(full)
            if rest:
                s["batch_size"] = rest
                values += positive_ints("batch_size")
            spec.batch_size = values
        if "steps" in s and "epochs" in s:
            raise GridError("--epochs", "give either --steps or --epochs, not both")
        if "steps" in s:
            spec.steps = positive_ints("steps")
        if "epochs" in s:
            spec.epochs = positive_ints("epochs")
            spec.steps = []
        if "scale" in s:
            spec.scale = floats("scale", Init._parameter_constraints["scale"])
        for key in ("sigma_w2", "sigma_b2"):
            if key in s:
                setattr(spec, key, floats(key, Init._parameter_constraints[key]))
                if "meanfield" not in spec.init:
                    raise GridError("--" + key.replace("_", "-"), "applies to --init meanfield only (weights "
                                    "N(0, sigma_w2 / fan_in), biases N(0, sigma_b2)); add meanfield to --init")
        if "lr" in s:
            spec.lr = floats("lr", training["lr"])
        if "momentum" in s:
            spec.momentum = floats("momentum", training["momentum"])
        if "weight_decay" in s:
            spec.weight_decay = floats("weight_decay", training["weight_decay"])
        if "dropout" in s:
            spec.dropout = floats("dropout", training["dropout"])
        if "seeds" in s:
            spec.seeds = parse_seeds(s["seeds"])
        if "dataset" in s:
            name = str(s["dataset"])
            if name not in DATASETS and not name.lower().endswith(".csv"):
                raise GridError("--dataset", f"unknown dataset {name!r}; choose from: {', '.join(DATASETS)} "
                                             f"or a path to a .csv file")
            spec.dataset = name
        for key in ("data_file", "data_dir", "target"):
            if s.get(key) is not None:
                setattr(spec, key, str(s[key]))
        for key in ("n_samples", "chunk_size"):
            if s.get(key) is not None:
                v = positive_ints(key)
                if len(v) != 1:
                    raise GridError("--" + key.replace("_", "-"), f"takes a single value, got {s[key]!r}")
                setattr(spec, key, v[0])
        for key in ("data_seed", "split_seed"):
            if s.get(key) is not None:
                v = parse_values(s[key], "--" + key.replace("_", "-"), integer=True)
                if len(v) != 1 or v[0] < 0:
                    raise GridError("--" + key.replace("_", "-"), f"must be one integer >= 0, got {s[key]!r}")
                setattr(spec, key, v[0])
        if "data_options" in s:
            spec.data_options = parse_data_options(s["data_options"])
        if s.get("features") is not None:
            raw = s["features"]
            items = raw if isinstance(raw, (list, tuple)) else str(raw).split(",")
            spec.features = [str(c).strip() for c in items if str(c).strip()]
            if not spec.features:
                raise GridError("--features", "give at least one column name, e.g. --features Age,Fare")
        if s.get("task") is not None:
            from .data import TASKS
            spec.task = parse_choices(s["task"], "--task", TASKS)[0]
        if s.get("val_split") is not None:
            v = parse_values(s["val_split"], "--val-split")
            if len(v) != 1 or not 0.0 <= v[0] < 1.0:
                raise GridError("--val-split", f"must be one fraction in [0, 1), got {s['val_split']!r}")
            spec.val_split = v[0] or None
        if s.get("backend") is not None:
            spec.backend = parse_choices(s["backend"], "--backend", BACKENDS)[0]
        if s.get("record_every") is not None and str(s["record_every"]).lower() != "auto":
            v = parse_values(s["record_every"], "--record-every", integer=True)
            if len(v) != 1 or v[0] <= 0:
                raise GridError("--record-every", f"must be one positive integer, got {s['record_every']!r}")
            spec.record_every = v[0]
        if s.get("target_loss") is not None:
            spec.target_loss = str(s["target_loss"]).strip()
            target_loss_value(spec.target_loss, 1.0)      # validates
        if s.get("metric") is not None:
            spec.metric = check_metric(s["metric"], "--metric")
        if s.get("chunk_seconds") is not None:
            v = parse_values(s["chunk_seconds"], "--chunk-seconds")
            if len(v) != 1 or v[0] < 0:
                raise GridError("--chunk-seconds", f"must be one number >= 0, got {s['chunk_seconds']!r}")
            spec.chunk_seconds = v[0]
        if s.get("max_memory") is not None:
            spec.max_memory = parse_memory(s["max_memory"])
        if s.get("diverge_factor") is not None:
            spec.diverge_factor = parse_diverge_factor(s["diverge_factor"])
        if s.get("diagnostics") is not None:
            spec.diagnostics = bool(s["diagnostics"])
        if s.get("out") is not None:
            spec.out = str(s["out"])
        if s.get("save_params") is not None:
            spec.save_params = bool(s["save_params"])
        return spec

    def axes(self):
        """``{name: values}`` of the axes, in expansion order (``seed`` last)."""
        d = {"hidden": self.hidden, "activation": self.activation, "optimizer": self.optimizer,
             "batch_size": self.batch_size}
        d["epochs" if self.epochs else "steps"] = self.epochs or self.steps
        d.update(init=self.init, scale=self.scale)
        if "meanfield" in self.init:
            d.update(sigma_w2=self.sigma_w2, sigma_b2=self.sigma_b2)
        d.update(lr=self.lr, momentum=self.momentum,
                 weight_decay=self.weight_decay, dropout=self.dropout, dtype=self.dtype, seed=self.seeds)
        return d

    def varying(self):
        """Names of the axes with more than one value."""
        return [k for k, v in self.axes().items() if len(v) > 1]

    def size_text(self):
        """``"init 5 x scale 7 x seed 4"`` (axes with one value left out)."""
        parts = [f"{k} {len(v)}" for k, v in self.axes().items() if len(v) > 1]
        return " x ".join(parts) or "a single run"

    def to_dict(self):
        """The spec as plain JSON-able data (architectures as text), the form the database records."""
        d = asdict(self)
        d["hidden"] = [hidden_text(h) for h in self.hidden]
        d["seeds"] = seeds_text(self.seeds)
        return d


CONFIG_KEYS = tuple(f.name for f in fields(GridSpec))


def seeds_text(seeds):
    """Seeds as JSON-able data: a list, or ``"A:B"`` / ``"A:B:STEP"`` for a long range (what --seeds reads)."""
    if isinstance(seeds, range) and len(seeds) > 16:
        return f"{seeds.start}:{seeds.stop}" + (f":{seeds.step}" if seeds.step != 1 else "")
    return [int(s) for s in seeds]


# ------------------------------------------------------------------------------------------------- metrics

# metric -> True when higher is better
METRICS = {
    "final_loss": False, "val_loss": False, "initial_loss": False, "train_accuracy": True, "val_accuracy": True,
    "steps_to_target": False, "min_distinct_units": True, "min_distinct_units_rtol": True,
    "min_effective_rank": True, "max_cosine": False, "saturated": False, "dead": False,
    "distance_moved": True, "grad_ratio": False,
}


def check_metric(name, option="--metric"):
    """The metric's name, or a GridError listing the valid ones."""
    name = str(name).strip()
    if name not in METRICS:
        raise GridError(option, f"unknown metric {name!r}; choose from: {', '.join(METRICS)}")
    return name


def target_loss_value(text, baseline):
    """The target loss: ``"0.3"`` (absolute) or ``"90%"`` (of ``baseline``, the loss of the best constant
    prediction: what a network that learns nothing but its output bias reaches)."""
    t = str(text).strip()
    try:
        v = float(t[:-1]) / 100.0 * baseline if t.endswith("%") else float(t)
    except ValueError:
        raise GridError("--target-loss", f"expected a loss such as 0.3 or a percentage of the baseline loss "
                                         f"such as 90%, got {text!r}") from None
    if not math.isfinite(v) or v < 0:
        raise GridError("--target-loss", f"must be a finite loss >= 0, got {text!r}")
    return v


# ------------------------------------------------------------------------------------------------- runs

@dataclass(frozen=True)
class Run:
    """One network's full configuration (data aside).

    ``momentum`` is ``None`` for plain SGD (which has none); ``batch_size`` ``None`` means full batch;
    ``epochs`` is recorded when the grid was given in epochs (``steps`` is then derived from it).
    """
    hidden: tuple
    activation: str
    optimizer: str
    batch_size: int | None
    steps: int
    init: str
    scale: float
    lr: float
    momentum: float | None
    weight_decay: float
    dropout: float
    dtype: str
    seed: int
    epochs: int | None = None
    record_every: int = 1
    sigma_w2: float | None = None
    sigma_b2: float | None = None

    def settings(self):
        """The settings that decide the run's numbers (``record_every`` and ``epochs`` do not).

        ``sigma_w2`` and ``sigma_b2`` enter only for ``meanfield``, so the keys of every other scheme's runs are
        those of databases made before these axes existed.
        """
        d = {"hidden": list(self.hidden), "activation": self.activation, "optimizer": self.optimizer,
             "batch_size": self.batch_size, "steps": self.steps, "init": self.init, "scale": float(self.scale),
             "lr": float(self.lr), "momentum": None if self.momentum is None else float(self.momentum),
             "weight_decay": float(self.weight_decay), "dropout": float(self.dropout), "dtype": self.dtype,
             "seed": int(self.seed)}
        if self.init == "meanfield":
            d.update(sigma_w2=float(self.sigma_w2), sigma_b2=float(self.sigma_b2))
        return d

    def init_spec(self):
        """The :class:`fastmlp.Init` of this run."""
        from .spec import Init
        if self.init == "meanfield":
            return Init(self.init, scale=self.scale, sigma_w2=self.sigma_w2, sigma_b2=self.sigma_b2)
        return Init(self.init, scale=self.scale)

    def key(self, dataset_key):
        """A stable run key: a hash of the canonical JSON of the settings and the dataset identity."""
        payload = dict(self.settings(), dataset=dataset_key, v=KEY_VERSION)
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def group(self):
        """What runs trained in one engine call must share."""
        return (self.hidden, self.activation, self.optimizer, self.batch_size, self.steps, self.dtype,
                self.record_every)


def default_record_every(steps):
    """Record at most about 500 points of a loss curve."""
    return max(1, -(-int(steps) // 500))


def init_variants(spec):
    """The init axis with the meanfield axes folded in: ``(init, sigma_w2, sigma_b2)`` per value, one per
    ``sigma_w2 x sigma_b2`` point for ``meanfield`` and ``(init, None, None)`` for every other scheme (which the
    sigma axes do not multiply)."""
    out = []
    for init in spec.init:
        if init == "meanfield":
            out += [(init, float(w), float(b)) for w in spec.sigma_w2 for b in spec.sigma_b2]
        else:
            out.append((init, None, None))
    return out


def expand(spec, n_train):
    """All runs of a grid, in a fixed order, duplicates removed.

    Parameters
    ----------
    spec : GridSpec
    n_train : int
        Training samples: turns epochs into steps, and a batch size >= ``n_train`` into full batch.

    Returns
    -------
    list of Run
        The runs of :class:`GridRuns` ``(spec, n_train)``, in its order (use that for large grids: it holds
        no run until asked for one).
    """
    return list(GridRuns(spec, n_train))


class GridGroup:
    """The runs of one shape group of a grid (what one engine call may train together), expanded lazily.

    Iterating yields the runs in the grid's order (init, scale, lr, momentum, weight decay, dropout, seed);
    ``len`` and ``first`` cost nothing.
    """

    # "init" holds (init, sigma_w2, sigma_b2) triples: init_variants
    AXES = ("init", "scale", "lr", "momentum", "weight_decay", "dropout", "seed")

    def __init__(self, fixed, axes):
        self.fixed = fixed          # Run fields shared by the group
        self.axes = axes            # {field: values} in AXES order
        self.size = math.prod(len(v) for v in axes.values())

    def __len__(self):
        return self.size

    def run(self, head, seed):
        """The Run of this group with the values ``head`` (of AXES but the seed, in order) and ``seed``."""
        (init, sw, sb), scale, lr, momentum, wd, dropout = head
        return Run(**self.fixed, init=init, sigma_w2=sw, sigma_b2=sb, scale=scale, lr=lr, momentum=momentum,
                   weight_decay=wd, dropout=dropout, seed=int(seed))

    def __iter__(self):
        axes = list(self.axes.values())
        # seeds are looped over, not handed to itertools.product, which would copy a range into a tuple
        for head in itertools.product(*axes[:-1]):
            for seed in axes[-1]:
                yield self.run(head, seed)

    @property
    def first(self):
        return self.run([v[0] for v in list(self.axes.values())[:-1]], self.axes["seed"][0])

    @property
    def key(self):
        """The group's :meth:`Run.group` tuple."""
        return self.first.group()

    def contains(self, run):
        """Whether ``run``'s varying settings are points of this group's axes (its shape is not checked)."""
        sets = self._sets()
        return (run.init, run.sigma_w2, run.sigma_b2) in sets["init"] and \
            all(getattr(run, name) in values for name, values in sets.items() if name != "init")

    def _sets(self):
        if not hasattr(self, "_value_sets"):
            self._value_sets = {k: (v if isinstance(v, range) else frozenset(v)) for k, v in self.axes.items()}
        return self._value_sets


class GridRuns:
    """The runs of a grid, expanded lazily: the same runs in the same order as :func:`expand`, without
    holding them.

    Duplicates are removed by construction: a batch size >= ``n_train`` is full batch (``None``), and plain
    SGD has no momentum axis. ``len`` is exact and immediate; :meth:`groups` gives the shape groups.

    Parameters
    ----------
    spec : GridSpec
    n_train : int
    """

    def __init__(self, spec, n_train):
        self.spec = spec
        self.n_train = int(n_train)
        batches = []
        for bs in spec.batch_size:
            b = None if bs is None or bs >= n_train else int(bs)
            if b not in batches:
                batches.append(b)
        self.batches = batches
        self._groups = None

    def _outer(self):
        """The fixed fields of each group, in first-seen order of :func:`expand`."""
        spec = self.spec
        for hidden, act, opt, batch, length in itertools.product(
                spec.hidden, spec.activation, spec.optimizer, self.batches, spec.epochs or spec.steps):
            if spec.epochs:
                epochs, steps = int(length), int(length) * -(-self.n_train // (batch or self.n_train))
            else:
                epochs, steps = None, int(length)
            yield opt, dict(hidden=tuple(hidden), activation=act, optimizer=opt, batch_size=batch, steps=steps,
                            epochs=epochs, record_every=spec.record_every or default_record_every(steps))

    def groups(self):
        """The shape groups, as :class:`GridGroup`, in first-seen order (as :func:`group_runs` orders them)."""
        if self._groups is None:
            spec = self.spec
            out = []
            for opt, fixed in self._outer():
                for dtype in spec.dtype:
                    axes = {"init": init_variants(spec), "scale": [float(v) for v in spec.scale],
                            "lr": [float(v) for v in spec.lr],
                            "momentum": [None] if opt == "sgd" else [float(v) for v in spec.momentum],
                            "weight_decay": [float(v) for v in spec.weight_decay],
                            "dropout": [float(v) for v in spec.dropout], "seed": spec.seeds}
                    out.append(GridGroup(dict(fixed, dtype=dtype), axes))
            self._groups = out
        return self._groups

    def __len__(self):
        return sum(len(g) for g in self.groups())

    def __iter__(self):
        # the order of expand: dtype varies inside the settings, just outside the seed
        spec = self.spec
        groups = iter(self.groups())
        for _ in self._outer():
            row = [next(groups) for _ in spec.dtype]
            inner = list(row[0].axes.values())
            for head in itertools.product(*inner[:-1]):
                for g in row:
                    for seed in inner[-1]:
                        yield g.run(head, seed)

    def __getitem__(self, i):
        if not isinstance(i, int):
            raise TypeError("GridRuns takes an integer index; iterate for more")
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(i)
        k = len(self.spec.dtype)
        groups = self.groups()
        for start in range(0, len(groups), k):          # the dtype groups of one outer setting, interleaved
            row = groups[start:start + k]
            size = sum(len(g) for g in row)
            if i >= size:
                i -= size
                continue
            n_seed = len(row[0].axes["seed"])
            head, rest = divmod(i, k * n_seed)
            g, s = divmod(rest, n_seed)
            values = []
            for name in reversed(GridGroup.AXES[:-1]):
                axis = row[g].axes[name]
                head, j = divmod(head, len(axis))
                values.append(axis[j])
            return row[g].run(values[::-1], row[g].axes["seed"][s])
        raise IndexError(i)       # pragma: no cover - the sizes add up to len(self)

    def group_of(self, run):
        """The :class:`GridGroup` that holds ``run``, or None when ``run`` is not a run of this grid."""
        if not hasattr(self, "_index"):
            self._index = {}
            for g in self.groups():
                f = g.fixed
                self._index[(f["hidden"], f["activation"], f["optimizer"], f["batch_size"], f["steps"],
                             f["dtype"])] = g
        g = self._index.get((tuple(run.hidden), run.activation, run.optimizer, run.batch_size, run.steps,
                             run.dtype))
        return g if g is not None and g.contains(run) else None


def group_runs(runs):
    """Runs grouped by :meth:`Run.group`, groups and runs in first-seen order: ``{group: [runs]}``."""
    groups = {}
    for r in runs:
        groups.setdefault(r.group(), []).append(r)
    return groups


def run(spec, out=None, *, client=None, **kwargs):
    """Train a grid into a results database: :func:`fastmlp.run.run_grid` (see there for the arguments).

    ``client`` (a ``distributed.Client``) runs the chunks on that Dask cluster; this process keeps the database.
    """
    from .run import run_grid
    return run_grid(spec, out, client=client, **kwargs)
