"""Executing a grid: load the data, expand the runs, train them group by group in chunks, store every chunk.

One engine call trains a chunk: every pending run of one shape group (same architecture, activation,
optimiser, batch size, steps and dtype), as many as the memory budget allows, capped so that a call takes
about ``chunk_seconds`` (progress then moves, and Ctrl-C is answered, that often) and by ``chunk_size``.
Initialisation scheme, scale, seed, learning rate, momentum, weight decay and dropout vary inside a call.

A run's numbers do not depend on how the grid is chunked: its initial weights come from its own seed, the engine
trains every network independently (counter-based randomness), and metrics are computed network by network.

Interruption: :func:`graceful_stop` turns the first SIGINT or SIGTERM into a request to stop after the chunk in
progress is stored; a second SIGINT abandons that chunk. Either way every stored chunk stays, and rerunning the
same grid trains only what is missing.

Nothing here holds a whole grid: the runs are expanded lazily (:class:`fastmlp.grid.GridRuns`), the stored ones
are counted from the database's rows (:func:`stored_runs`), and :class:`ChunkSource` claims a window of runs at a
time. :func:`execute` trains the chunks in this process, or, given a Dask ``client``, on that cluster's workers
(:mod:`fastmlp.cluster`).
"""
from __future__ import annotations

import contextlib
import hashlib
import math
import os
import signal
import threading
import time
from dataclasses import dataclass

import numpy as np

from .config import blas_threads
from .data import BUILTIN, SEEDED, load_dataset
from .diagnostics import diagnose
from .evaluate import loss_and_accuracy
from .grid import GridError, GridRuns, hidden_text, stored_hidden, target_loss_value
from .grid import Run
from .init import init_batch
from .layout import Layout
from .params_store import ROW_KEY as PARAMS_ROW_KEY
from .spec import Network, Training
from .store import encode_curve
from .train import as_targets, train_batch

MIN_MEMORY_BUDGET = 64 * 1024 ** 2
NOMINAL_FLOPS = 2e9          # a cautious first guess of throughput, replaced by measurement after one call


# --------------------------------------------------------------------------------------------------- data

@dataclass
class DataBundle:
    """The training (and validation) data of a grid and the dataset identity recorded in the database."""
    train: object
    val: object
    identity: dict
    baseline_loss: float

    @property
    def n_inputs(self):
        return self.train.n_features

    @property
    def n_outputs(self):
        return self.train.n_outputs

    @property
    def output(self):
        return self.train.output


def _data_hash(d):
    h = hashlib.sha256()
    for part in (d.task.encode(), str(d.n_classes).encode(), np.ascontiguousarray(d.X, "<f8").tobytes(),
                 np.ascontiguousarray(d.y, "<f8" if d.y.dtype.kind == "f" else "<i8").tobytes()):
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()


def load_data(spec):
    """Load and split the dataset of a grid.

    Parameters
    ----------
    spec : GridSpec

    Returns
    -------
    DataBundle

    Raises
    ------
    GridError
        For a missing or malformed file, a missing target column, a bad option; naming the option at fault.
    """
    name = spec.dataset
    kwargs = dict(spec.data_options)
    is_file = name.lower().endswith(".csv") or name not in BUILTIN
    seeded = name in SEEDED
    if spec.data_file is not None:
        kwargs["data_file"] = spec.data_file
    if getattr(spec, "data_dir", None) is not None:
        kwargs["data_dir"] = spec.data_dir
    if spec.target is not None:
        kwargs["target"] = spec.target
    if spec.n_samples is not None:
        kwargs["n_samples"] = spec.n_samples
    if getattr(spec, "features", None):
        kwargs["features"] = list(spec.features)
    if getattr(spec, "task", None):
        kwargs["task"] = spec.task
    if seeded:
        kwargs["seed"] = spec.data_seed
    file_option = "--data-file" if spec.data_file else "--data-dir" if kwargs.get("data_dir") else "--dataset"
    _check_data_options(name, spec)
    try:
        d = load_dataset(name, **kwargs)
    except FileNotFoundError as e:
        raise GridError(file_option, str(e)) from None
    except ImportError as e:
        raise GridError("--dataset", str(e)) from None
    except (ValueError, TypeError) as e:
        text = str(e)
        # blame the option the user typed: a data option's key named in the message first
        named = [k for k in spec.data_options if repr(k) in text or f" {k}" in text]
        option = ("--data-option" if named else "--task" if "task" in text and getattr(spec, "task", None)
                  else "--features" if "feature" in text and getattr(spec, "features", None)
                  else "--n-samples" if "n_samples" in text and spec.n_samples is not None
                  else "--target" if "target" in text else file_option if is_file else "--dataset")
        raise GridError(option, text) from None
    except (OSError, UnicodeDecodeError) as e:
        raise GridError(file_option, f"cannot read the data: {e}") from None
    train, val = d, None
    if spec.val_split:
        try:
            train, val = d.split(spec.val_split, seed=spec.split_seed)
        except ValueError as e:
            raise GridError("--val-split", str(e)) from None
    options = {k: v for k, v in kwargs.items() if k != "seed"}
    if seeded:
        options["seed"] = spec.data_seed
    identity = {"name": d.name, "source": name, "options": options, "task": d.task, "n_samples": d.n_samples,
                "n_features": d.n_features, "n_outputs": d.n_outputs, "sha256": _data_hash(d),
                "val_split": spec.val_split, "split_seed": spec.split_seed if spec.val_split else None,
                "n_train": train.n_samples, "n_val": val.n_samples if val is not None else 0}
    base = baseline_loss(train)
    # what a network that learns nothing reaches: tables and figures are read against these
    identity.update(baseline_loss=base, chance_accuracy=chance_accuracy(train))
    return DataBundle(train, val, identity, base)


def chance_accuracy(d):
    """The accuracy of always predicting the most frequent class (None for regression)."""
    if d.task == "regression":
        return None
    T = d.targets()
    freq = T.mean(axis=0)
    if d.output == "sigmoid":
        return float(max(freq[0], 1.0 - freq[0]))
    return float(freq.max())


def _check_data_options(name, spec):
    """Refuse a ``--data-option`` key the dataset does not take, listing the keys it does take (and the closest
    one), before the dataset is built."""
    import difflib
    import inspect
    from . import data as _data
    if not spec.data_options:
        return
    source = "csv" if name.lower().endswith(".csv") else name
    try:
        from . import realdata
        fn = ({"csv": _data.csv, "titanic": _data.titanic}.get(source) or _data._GENERATORS.get(source)
              or (getattr(realdata, source, None) if source in realdata.IMAGE_SETS else None)
              or (realdata.sklearn_dataset if source in realdata.SKLEARN_SETS else None))
    except (ImportError, AttributeError):
        return
    if fn is None or not callable(fn):
        return
    own = {"seed": "--data-seed", "n_samples": "--n-samples", "path": "--data-file", "data_file": "--data-file",
           "data_dir": "--data-dir", "target": "--target", "features": "--features"}
    params = inspect.signature(fn).parameters
    takes = [p for p in params if p not in own and p != "name"]
    for key in spec.data_options:
        if key in own and key in params:
            raise GridError("--data-option", f"{key} has an option of its own: use {own[key]}")
        if key not in takes:
            close = difflib.get_close_matches(key, takes, n=1)
            hint = f" (did you mean {close[0]}={spec.data_options[key]}?)" if close else ""
            raise GridError("--data-option", f"dataset {source!r} does not take {key!r}{hint}; its keys: "
                                             f"{', '.join(takes) or 'none'}")


def baseline_loss(d):
    """The loss of the best constant prediction on ``d`` (the class frequencies, or the mean target): what a
    network that learns nothing but its output bias reaches."""
    net = Network(d.n_features, (), d.n_outputs, "linear", d.output)
    T = d.targets()
    layers = [(np.zeros((d.n_outputs, d.n_features)), np.zeros(d.n_outputs))]
    if d.output == "sigmoid":
        p = float(np.clip(T.mean(), 1e-12, 1 - 1e-12))
        layers[0][1][:] = math.log(p / (1 - p))
    elif d.output == "softmax":
        layers[0][1][:] = np.log(np.clip(T.mean(axis=0), 1e-12, None))
    else:
        layers[0][1][:] = T.mean(axis=0)
    params = Layout(net.sizes).pack(layers)
    loss, _ = loss_and_accuracy(net, params, d.X, T)
    return float(loss[0])


# --------------------------------------------------------------------------------------------------- plan

@dataclass
class Plan:
    """A grid ready to run: its data and its runs, expanded lazily (:class:`fastmlp.grid.GridRuns`).

    ``runs`` and ``keys`` are sequences computed on demand, so that a plan of ten million runs costs nothing
    until it is trained.
    """
    spec: object
    data: DataBundle
    runs: object
    target_loss: float

    @property
    def dataset_key(self):
        return dataset_key(self.data.identity)

    @property
    def keys(self):
        """The run keys, in the order of ``runs`` (computed as they are iterated)."""
        return _Keys(self)

    def key(self, run):
        """The run key of ``run``."""
        return run.key(self.dataset_key)

    def network(self, run):
        """The :class:`Network` of a run on this plan's data."""
        return Network(self.data.n_inputs, run.hidden, self.data.n_outputs, run.activation, self.data.output)

    def groups(self):
        """The shape groups of the plan (:class:`fastmlp.grid.GridGroup`), in order."""
        return self.runs.groups()


class _Keys:
    """The keys of a plan's runs: iterable and sized, computed one by one."""

    def __init__(self, plan):
        self.plan = plan

    def __len__(self):
        return len(self.plan.runs)

    def __iter__(self):
        dk = self.plan.dataset_key
        return (r.key(dk) for r in self.plan.runs)


def dataset_key(identity):
    """The part of the dataset identity that enters run keys: the data's hash and the validation split."""
    return {"sha256": identity["sha256"], "val_split": identity["val_split"], "split_seed": identity["split_seed"]}


def plan_grid(spec):
    """Load the data of a grid and expand its runs (lazily).

    Raises
    ------
    GridError
    """
    data = load_data(spec)
    from .engine import get_engine
    try:
        get_engine(spec.backend)
    except (ValueError, ImportError, RuntimeError) as e:
        raise GridError("--backend", str(e)) from None
    runs = GridRuns(spec, data.train.n_samples)
    return Plan(spec, data, runs, target_loss_value(spec.target_loss, data.baseline_loss))


def stored_runs(plan, store):
    """How many runs of each group of ``plan`` are finished in ``store``: ``{group index: count}``.

    Reads the stored runs (not the plan's keys), so that its cost follows the size of the database, not of
    the grid: a stored row counts when its settings are a point of the grid and its key is the one those
    settings give on this dataset.
    """
    counts = {}
    if store is None:
        return counts
    index = {id(g): i for i, g in enumerate(plan.groups())}
    dk = plan.dataset_key
    cols = ("run_key", "hidden", "activation", "optimizer", "batch_size", "steps", "init", "scale", "lr",
            "momentum", "weight_decay", "dropout", "dtype", "seed", "sigma_w2", "sigma_b2")
    absent = set(store._absent_columns())         # a database made before a column existed
    q = f"SELECT {', '.join(f'NULL AS {c}' if c in absent else c for c in cols)} FROM runs WHERE status != 'failed'"
    for row in store.conn.execute(q):
        try:
            run = Run(hidden=stored_hidden(row["hidden"]), activation=row["activation"],
                      optimizer=row["optimizer"], batch_size=row["batch_size"], steps=row["steps"],
                      init=row["init"], scale=row["scale"], lr=row["lr"], momentum=row["momentum"],
                      weight_decay=row["weight_decay"], dropout=row["dropout"], dtype=row["dtype"],
                      seed=row["seed"], sigma_w2=row["sigma_w2"], sigma_b2=row["sigma_b2"])
        except (ValueError, TypeError):
            continue
        g = plan.runs.group_of(run)
        if g is not None and run.key(dk) == row["run_key"]:
            counts[index[id(g)]] = counts.get(index[id(g)], 0) + 1
    return counts


# ------------------------------------------------------------------------------------------ work, memory

def flops_per_network(network, run, n_train):
    """Matrix-product FLOPs of training one network (forward, weight gradients, input gradients)."""
    sizes = network.sizes
    macs = sum(fi * fo for fi, fo in zip(sizes[:-1], sizes[1:]))
    macs_in_grad = macs - sizes[0] * sizes[1]
    B = run.batch_size or n_train
    per_epoch = -(-n_train // B)
    full, rest = divmod(run.steps, per_epoch)
    samples = full * n_train + sum(min(B, n_train - j * B) for j in range(rest))
    return float(samples) * 2.0 * (2 * macs + macs_in_grad)


def _itemsize(run):
    return 8 if run.dtype == "float64" else 4


def memory_per_network(network, run):
    """Bytes a chunk needs for each network it holds: parameter copies, loss curve, gradient norms."""
    P = Layout(network.sizes).n_params
    R = -(-run.steps // run.record_every)
    L = len(network.sizes) - 1
    return (6 * P + R * (1 + L)) * _itemsize(run) + 4 * R + 8 * P + 8192


def memory_fixed(network, run, n_train, n_eval, threads):
    """Bytes a chunk needs whatever its size: the data, each thread's workspace, one network's evaluation."""
    s = _itemsize(run)
    sizes = network.sizes
    P = Layout(sizes).n_params
    B = min(run.batch_size or n_train, n_train)
    rows = sum(sizes)
    workspace = (4 * rows * B + 3 * P) * s
    data = (n_train + n_eval) * (sizes[0] + sizes[-1]) * (8 + s) * 2
    evaluation = max(n_train, n_eval) * sum(sizes[1:]) * 8 * 4
    return threads * workspace + data + evaluation


def available_memory():
    """Bytes of memory available now (MemAvailable on Linux; physical memory elsewhere; 4 GiB if unknown)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 4 * 1024 ** 3


def memory_budget(spec):
    """The memory one chunk may use: ``--max-memory``, or half the memory available now."""
    return spec.max_memory or max(MIN_MEMORY_BUDGET, available_memory() // 2)


def engine_threads(backend):
    """Threads the engine trains networks on (numba's thread count; the CPU count otherwise)."""
    if backend == "numba":
        try:
            import numba
            return int(numba.get_num_threads())
        except Exception:      # pragma: no cover - numba is a dependency
            pass
    return os.cpu_count() or 1


def human_bytes(n):
    """``1536`` -> ``"1.5 KB"``."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024.0


def human_flops(f):
    """``2.5e9`` -> ``"2.5 GFLOP"``."""
    for unit, scale in (("TFLOP", 1e12), ("GFLOP", 1e9), ("MFLOP", 1e6)):
        if f >= scale:
            return f"{f / scale:.1f} {unit}"
    return f"{f:.0f} FLOP"


def max_chunk(plan, group_runs_, budget, threads, chunk_size=True):
    """The most networks of one group a chunk may hold within ``budget`` bytes (and ``--chunk-size``, unless
    ``chunk_size`` is false).

    Raises
    ------
    GridError
        If even a single network does not fit.
    """
    run = group_runs_[0]
    net = plan.network(run)
    n_train = plan.data.train.n_samples
    n_val = plan.data.val.n_samples if plan.data.val is not None else 0
    fixed = memory_fixed(net, run, n_train, n_val, threads)
    per = memory_per_network(net, run)
    if fixed + per > budget:
        option = "--max-memory" if plan.spec.max_memory else "--hidden"
        raise GridError(option, f"a single network of shape {'-'.join(map(str, net.sizes))} ({run.dtype}, "
                                f"batch {run.batch_size or n_train}, {run.steps} steps) needs about "
                                f"{human_bytes(fixed + per)}, more than the memory budget of "
                                f"{human_bytes(budget)}; use a smaller network or batch, fewer steps, or "
                                f"--max-memory")
    cap = max(1, int((budget - fixed) // per))
    if plan.spec.chunk_size and chunk_size:
        cap = min(cap, plan.spec.chunk_size)
    return cap


@dataclass
class Estimate:
    """What a grid will cost before it runs."""
    n_runs: int
    n_pending: int
    n_groups: int
    flops: float
    max_chunk: int
    min_calls: int
    budget: int
    memory_chunk: int = 0

    def to_dict(self):
        return dict(self.__dict__)


def estimate(plan, done=None):
    """The work of training the pending runs of ``plan``: FLOPs, groups, the fewest engine calls memory allows.

    Parameters
    ----------
    plan : Plan
    done : dict, optional
        Finished runs per group, as :func:`stored_runs` counts them (none by default).

    Raises
    ------
    GridError
        If a single network does not fit in memory (checked for every group, pending or not).
    """
    done = done or {}
    budget = memory_budget(plan.spec)
    threads = engine_threads(plan.spec.backend)
    flops, calls, biggest, memory_cap, n_groups, n_runs, n_pending = 0.0, 0, 0, 0, 0, 0, 0
    n_train = plan.data.train.n_samples
    for i, g in enumerate(plan.groups()):
        first = g.first
        cap = max_chunk(plan, [first], budget, threads)
        n_runs += len(g)
        n = len(g) - done.get(i, 0)
        if n <= 0:
            continue
        n_pending += n
        n_groups += 1
        flops += flops_per_network(plan.network(first), first, n_train) * n
        memory_cap = max(memory_cap, max_chunk(plan, [first], budget, threads, chunk_size=False))
        calls += -(-n // cap)
        biggest = max(biggest, min(cap, n))
    return Estimate(n_runs, n_pending, n_groups, flops, biggest, calls, budget, memory_cap)


# ------------------------------------------------------------------------------------------ signals

class StopRequest:
    """Set by :func:`graceful_stop` when a SIGINT or SIGTERM asks the grid to stop; false until then."""

    def __init__(self):
        self.signal = None

    def __bool__(self):
        return self.signal is not None

    def request(self, name="request"):
        self.signal = name


@contextlib.contextmanager
def graceful_stop(on_signal=None):
    """Within the block, SIGINT and SIGTERM request a stop instead of killing the process.

    The first signal sets the yielded :class:`StopRequest` (and calls ``on_signal(name)``); a second SIGINT
    raises ``KeyboardInterrupt`` at once. Outside the main thread, signals are left alone.
    """
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum, frame):
        name = signal.Signals(signum).name
        if stop and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.signal = name
        if on_signal is not None:
            on_signal(name)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


# ------------------------------------------------------------------------------------------ progress

class Progress:
    """What :func:`execute` reports to; the default reports nothing."""

    def start(self, total):
        pass

    def advance(self, n):
        pass

    def note(self, text):
        pass

    def close(self):
        pass


# ----------------------------------------------------------------------------------------- training

def _fmt_list(values, ints=False):
    return ",".join(("nan" if not math.isfinite(v) else str(int(v)) if ints else f"{v:.6g}")
                    for v in (float(x) for x in values))


def _nan_stat(values, fn):
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(fn(v)) if v.size else None


def _losses(network, params, X, T, budget):
    """``loss_and_accuracy`` in slices of networks small enough for ``budget`` bytes."""
    per = max(1, X.shape[0] * sum(network.sizes[1:]) * 8 * 3)
    step = int(max(1, min(256, budget // per)))
    loss = np.empty(params.shape[0])
    acc = np.empty(params.shape[0])
    for a in range(0, params.shape[0], step):
        loss[a:a + step], acc[a:a + step] = loss_and_accuracy(network, params[a:a + step], X, T)
    return loss, acc


def _base_row(plan, run, key, network, grid_id):
    return {
        "run_key": key, "dataset": plan.data.identity["name"], "hidden": hidden_text(run.hidden),
        "depth": len(run.hidden), "width": max(run.hidden) if run.hidden else 0,
        "n_params": Layout(network.sizes).n_params, "activation": run.activation, "output": network.output,
        "init": run.init, "scale": run.scale, "sigma_w2": run.sigma_w2, "sigma_b2": run.sigma_b2, "seed": run.seed, "lr": run.lr, "optimizer": run.optimizer,
        "momentum": run.momentum, "weight_decay": run.weight_decay, "dropout": run.dropout,
        "batch_size": run.batch_size, "steps": run.steps, "epochs": run.epochs, "record_every": run.record_every,
        "dtype": run.dtype, "backend": plan.spec.backend, "target_loss": plan.target_loss, "grid_id": grid_id,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def train_chunk(plan, runs, keys, grid_id=None, budget=None):
    """Train runs of one shape group in one engine call and compute every stored metric.

    Parameters
    ----------
    plan : Plan
    runs : list of Run
        All of one group (:meth:`Run.group`).
    keys : list of str
        Their run keys.
    grid_id : int, optional
        Recorded in each row.
    budget : int, optional
        Bytes the evaluation may use at once.

    Returns
    -------
    list of dict
        One database row per run. A chunk the engine rejects gives rows with status ``failed`` and the error.
    """
    r0 = runs[0]
    network = plan.network(r0)
    budget = budget or memory_budget(plan.spec)
    train, val = plan.data.train, plan.data.val
    rows = [_base_row(plan, r, k, network, grid_id) for r, k in zip(runs, keys)]
    t0 = time.perf_counter()
    try:
        training = Training(optimizer=r0.optimizer, lr=r0.lr, momentum=r0.momentum or 0.0, steps=r0.steps,
                            batch_size=r0.batch_size, record_every=r0.record_every)
        seeds = np.array([r.seed for r in runs], dtype=np.int64)
        with np.errstate(over="ignore"):      # a huge scale overflows float32: that run is marked below
            p0 = init_batch(network, [r.init_spec() for r in runs], seeds, r0.dtype, X=train.X)
        start_ok = np.all(np.isfinite(p0), axis=1)
        if not start_ok.all():
            for i in np.flatnonzero(~start_ok):
                rows[i].update(status="diverged", diverged_step=0,
                               error=f"the initial weights at scale {runs[i].scale:g} are not finite in "
                                     f"{r0.dtype}")
            if not start_ok.any():
                return rows
            keep = np.flatnonzero(start_ok)
            sub = train_chunk(plan, [runs[i] for i in keep], [keys[i] for i in keep], grid_id, budget)
            for i, row in zip(keep, sub):
                rows[i] = row
            return rows
        res = train_batch(network, train.X, train.y, p0, training=training,
                          lr=np.array([r.lr for r in runs]),
                          momentum=np.array([r.momentum or 0.0 for r in runs]),
                          weight_decay=np.array([r.weight_decay for r in runs]),
                          dropout=np.array([r.dropout for r in runs]),
                          seeds=seeds, backend=plan.spec.backend, track_grad_norms=True)
    except (ValueError, MemoryError, RuntimeError, OverflowError) as e:
        for row in rows:
            row.update(status="failed", error=f"{type(e).__name__}: {e}")
        return rows
    dt = res.params.dtype
    T = as_targets(network, train.y, train.n_samples, dt)
    with np.errstate(all="ignore"):
        init_loss, _ = _losses(network, res.initial_params, train.X, T, budget)
        loss, acc = _losses(network, res.params, train.X, T, budget)
        if val is not None:
            vT = as_targets(network, val.y, val.n_samples, dt)
            vloss, vacc = _losses(network, res.params, val.X, vT, budget)
    for i, row in enumerate(rows):
        curve = res.curves[i]
        hit = np.flatnonzero(curve <= plan.target_loss)
        ds = int(res.diverged_step[i])
        if ds < 0:
            ds = exploded_step(curve, loss[i], init_loss[i], plan.spec.diverge_factor, r0.record_every,
                               r0.steps)
            if ds >= 0:
                row["error"] = (f"loss exploded: final loss {loss[i]:.4g} > {plan.spec.diverge_factor:g} x the "
                                f"initial loss {init_loss[i]:.4g} (--diverge-factor)")
        row.update(status="diverged" if ds >= 0 else "done", diverged_step=ds if ds >= 0 else None,
                   initial_loss=init_loss[i], final_loss=loss[i], train_accuracy=acc[i],
                   steps_to_target=int(hit[0]) * r0.record_every if hit.size else None,
                   curve=encode_curve(curve))
        if val is not None:
            row.update(val_loss=vloss[i], val_accuracy=vacc[i])
        if getattr(plan.spec, "save_params", False):
            row[PARAMS_ROW_KEY] = (network.sizes, res.initial_params[i], res.params[i])
        if plan.spec.diagnostics:
            try:
                with np.errstate(all="ignore"):
                    d = diagnose(network, res.params[i], train.X, res.initial_params[i], res.grad_norms[i])
            except (ValueError, np.linalg.LinAlgError, FloatingPointError):
                d = None
            if d is not None:
                row.update(_diagnostic_columns(d))
    seconds = time.perf_counter() - t0
    for row in rows:
        row["train_seconds"] = seconds / len(rows)
    return rows


def exploded_step(curve, final_loss, initial_loss, factor, record_every, steps):
    """The divergence rule for losses that explode but stay finite: a run whose final training loss is above
    ``factor`` x its initial loss has diverged, at the first recorded step above that bound (or at the end).

    Returns
    -------
    int
        The step, or -1 when the run did not diverge by this rule (or ``factor`` is None or infinite).
    """
    if factor is None or not math.isfinite(factor) or not (math.isfinite(initial_loss) and initial_loss > 0):
        return -1
    bound = factor * initial_loss
    if math.isfinite(final_loss) and final_loss <= bound:
        return -1
    with np.errstate(invalid="ignore"):
        above = np.flatnonzero(~(np.asarray(curve, dtype=float) <= bound))
    return int(above[0]) * record_every if above.size else int(steps)


def _diagnostic_columns(d):
    out = {
        "distinct_units": _fmt_list(d["distinct_units"], ints=True),
        "min_distinct_units": min(d["distinct_units"]) if d["distinct_units"] else None,
        "distinct_units_rtol": _fmt_list(d["distinct_units_rtol"], ints=True),
        "min_distinct_units_rtol": min(d["distinct_units_rtol"]) if d["distinct_units_rtol"] else None,
        "max_cosine_layers": _fmt_list(d["max_cosine"]), "max_cosine": _nan_stat(d["max_cosine"], np.max),
        "effective_rank": _fmt_list(d["effective_rank"]),
        "min_effective_rank": _nan_stat(d["effective_rank"], np.min),
        "saturated_layers": _fmt_list(d["saturated"]), "saturated": _nan_stat(d["saturated"], np.mean),
        "dead_layers": _fmt_list(d["dead"]), "dead": _nan_stat(d["dead"], np.mean),
    }
    if "weights_moved" in d:
        out["weights_moved"] = _fmt_list(d["weights_moved"], ints=True)
        out["distance_moved_layers"] = _fmt_list(d["distance_moved"])
        out["distance_moved"] = _nan_stat(d["distance_moved"], lambda v: np.sqrt(np.sum(v ** 2)))
    if "grad_norms" in d:
        out["grad_norms"] = _fmt_list(d["grad_norms"])
        out["grad_ratio"] = d["grad_ratio"]
    return out


# ------------------------------------------------------------------------------------------ execute

@dataclass
class Outcome:
    """How a grid execution went."""
    n_runs: int
    n_skipped: int
    n_trained: int = 0
    n_by_others: int = 0
    engine_calls: int = 0
    seconds: float = 0.0
    interrupted: str | None = None
    chunk_seconds: float = 0.0      # summed over the chunks: where they ran, from start to rows

    @property
    def n_missing(self):
        return self.n_runs - self.n_skipped - self.n_trained - self.n_by_others

    def to_dict(self):
        d = dict(self.__dict__)
        d["n_missing"] = self.n_missing
        return d


def pending_runs(plan, store):
    """The runs of ``plan`` not yet finished in ``store`` (failed ones count as not finished), as a list.

    It holds every pending run: for large grids iterate :class:`ChunkSource` instead.
    """
    finished = store.finished_keys(plan.keys)
    dk = plan.dataset_key
    return [r for r in plan.runs if r.key(dk) not in finished]


def failed_rows(plan, runs, keys, grid_id, message):
    """Database rows that record ``runs`` as ``failed`` with ``message`` (a chunk that raised)."""
    network = plan.network(runs[0])
    rows = [_base_row(plan, r, k, network, grid_id) for r, k in zip(runs, keys)]
    for row in rows:
        row.update(status="failed", error=message)
    return rows


@dataclass
class Chunk:
    """Runs of one shape group claimed for one engine call."""
    group: int
    runs: list
    keys: list
    flops_per_network: float


class ChunkSource:
    """The pending runs of a plan, claimed chunk by chunk as they are asked for (iterate it).

    Runs are expanded and their keys computed a window at a time, never all at once; each chunk is claimed in
    the database before it is handed out (so that two processes sharing a database never train a run twice)
    and sized by the ``--chunk-seconds`` logic from the throughput measured so far (:meth:`measured`). Runs
    another live process holds are put aside and claimed, or found finished, once the rest is handed out.

    Parameters
    ----------
    plan : Plan
    store : Store
    outcome : Outcome
        Counts the runs other processes finish meanwhile (``n_by_others``).
    progress : Progress
    budget : int
        Bytes one chunk may use.
    threads : int
        Engine threads of one chunk (a chunk holds at least two networks per thread).
    done : dict
        Finished runs per group when the execution started (:func:`stored_runs`).
    stop : StopRequest
        No chunk is claimed once it is set.
    sleep : float
        Seconds between claims while another process holds the last runs.
    slots : int
        Chunks that run at the same time (a cluster's worker threads). With more than one, a chunk holds at
        most the group's unclaimed runs divided by ``slots``, so that the last chunks shrink and every slot
        finishes at about the same time.
    """

    def __init__(self, plan, store, outcome, progress, budget, threads, done, stop, sleep=0.5, slots=1):
        self.plan, self.store, self.out, self.progress = plan, store, outcome, progress
        self.budget, self.threads, self.done, self.stop, self.sleep = budget, threads, done, stop, sleep
        self.slots = slots
        self.rate = None              # measured FLOP/s of whole chunks (training, evaluation, diagnostics)
        self._seen = {}               # finished runs met while claiming, per group
        self._others = {}             # of which finished by another process since the start

    def size(self, cap, fpn):
        """Networks in the next chunk of a group: ``--chunk-seconds`` of work at the measured rate."""
        n = cap
        if self.plan.spec.chunk_seconds > 0:
            guess = int(self.plan.spec.chunk_seconds * (self.rate or NOMINAL_FLOPS) / max(fpn, 1.0))
            n = min(cap, max(guess, 2 * self.threads, 1))
        return n

    def measured(self, chunk, seconds):
        """Record that ``chunk`` took ``seconds`` (sizes the next chunks)."""
        self.rate = chunk.flops_per_network * len(chunk.runs) / max(seconds, 1e-6)

    def _finished(self, group, n):
        if not n:
            return
        self._seen[group] = self._seen.get(group, 0) + n
        extra = self._seen[group] - self.done.get(group, 0) - self._others.get(group, 0)
        if extra > 0:
            self._others[group] = self._others.get(group, 0) + extra
            self.out.n_by_others += extra
            self.progress.advance(extra)

    def _claim(self, group, items, n):
        """Claim up to ``n`` of ``items`` ((run, key) pairs); returns (chunk or None, rest, busy)."""
        claimed, finished, busy = self.store.claim([k for _, k in items], n)
        self._finished(group, len(finished))
        mine, busy = set(claimed), set(busy)
        runs = {k: r for r, k in items if k in mine}
        rest = [(r, k) for r, k in items if k not in mine and k not in finished and k not in busy]
        held = [(r, k) for r, k in items if k in busy]
        chunk = Chunk(group, [runs[k] for k in claimed], list(claimed), 0.0) if claimed else None
        return chunk, rest, held

    def __iter__(self):
        plan, dk = self.plan, self.plan.dataset_key
        n_train = plan.data.train.n_samples
        held = {}                     # group -> [(run, key)] another live process holds
        sizes = {}
        for gi, g in enumerate(plan.groups()):
            if self.stop:
                return
            if self.done.get(gi, 0) >= len(g):
                continue
            first = g.first
            cap = max_chunk(plan, [first], self.budget, self.threads)
            fpn = flops_per_network(plan.network(first), first, n_train)
            sizes[gi] = (cap, fpn)
            runs, buf = iter(g), []
            exhausted = False
            unclaimed = len(g) - self.done.get(gi, 0)
            while not self.stop:
                n = self.size(cap, fpn)
                if self.slots > 1:
                    n = min(n, max(2 * self.threads, -(-unclaimed // self.slots)))
                while not exhausted and len(buf) < max(2 * n, 512):
                    r = next(runs, None)
                    if r is None:
                        exhausted = True
                    else:
                        buf.append((r, r.key(dk)))
                if not buf:
                    break
                chunk, buf, busy = self._claim(gi, buf, n)
                held.setdefault(gi, []).extend(busy)
                unclaimed -= len(chunk.runs) if chunk is not None else 0
                if chunk is not None:
                    chunk.flops_per_network = fpn
                    yield chunk
        waited = False
        while not self.stop and any(held.values()):
            worked, n_busy = False, 0
            for gi in list(held):
                cap, fpn = sizes[gi]
                while held[gi] and not self.stop:
                    chunk, rest, busy = self._claim(gi, held[gi], self.size(cap, fpn))
                    held[gi] = rest + busy
                    if chunk is None:
                        n_busy += len(busy)
                        break
                    chunk.flops_per_network = fpn
                    worked = True
                    yield chunk
            if any(held.values()) and not worked and not self.stop:
                if not waited:
                    self.progress.note(f"waiting for {n_busy} runs that another process is training")
                    waited = True
                time.sleep(self.sleep)


def execute(plan, store, *, progress=None, stop=None, grid_id=None, sleep=0.5, client=None, task_threads=1):
    """Train every pending run of ``plan`` and store the results chunk by chunk.

    Parameters
    ----------
    plan : Plan
    store : Store
    progress : Progress, optional
    stop : StopRequest, optional
        Checked between chunks; when set, the execution returns with ``interrupted`` set.
    grid_id : int, optional
    sleep : float
        Seconds between checks while another process trains the last runs of this grid.
    client : distributed.Client, optional
        Train the chunks on this Dask cluster's workers (:func:`fastmlp.cluster.execute_on_cluster`); this
        process keeps the database, the claims and the progress. Results are the same bits as in-process.
    task_threads : int
        With ``client``: numba threads each chunk uses on a worker (1: one engine thread per worker thread).

    Returns
    -------
    Outcome
    """
    if client is not None:
        from .cluster import execute_on_cluster
        return execute_on_cluster(plan, store, client, progress=progress, stop=stop, grid_id=grid_id,
                                  sleep=sleep, task_threads=task_threads)
    progress = progress or Progress()
    stop = stop if stop is not None else StopRequest()
    t_start = time.perf_counter()
    done = stored_runs(plan, store)
    out = Outcome(len(plan.runs), sum(done.values()))
    progress.start(out.n_runs - out.n_skipped)
    budget = memory_budget(plan.spec)
    source = ChunkSource(plan, store, out, progress, budget, engine_threads(plan.spec.backend), done, stop, sleep)
    for chunk in source:
        t0 = time.perf_counter()
        try:
            with blas_threads(1):       # as Dask's workers have it: the engine's threads are the ones that count
                rows = train_chunk(plan, chunk.runs, chunk.keys, grid_id, budget)
        except BaseException:
            store.release(chunk.keys)
            raise
        store.save(rows)
        source.measured(chunk, time.perf_counter() - t0)
        out.chunk_seconds += time.perf_counter() - t0
        out.n_trained += len(rows)
        out.engine_calls += 1
        progress.advance(len(rows))
    out.seconds = time.perf_counter() - t_start
    out.interrupted = stop.signal
    progress.close()
    return out


def run_grid(spec, out=None, *, client=None, progress=None, stop=None, command="fastmlp.run.run_grid"):
    """Plan, train and store a grid in one call (the Python form of ``fastmlp grid``).

    Parameters
    ----------
    spec : GridSpec or dict
        A spec, or settings for :meth:`GridSpec.from_settings`.
    out : str or Path, optional
        The results database (default: ``spec.out`` or ``results.db``).
    client : distributed.Client, optional
        Run the chunks on this Dask cluster (see :func:`execute`).
    progress : Progress, optional
    stop : StopRequest, optional
    command : str
        Recorded in the database's ``grids`` table.

    Returns
    -------
    Outcome

    Examples
    --------
    >>> from distributed import Client                               # doctest: +SKIP
    >>> run_grid({"seeds": "0:64", "scale": "log:1e-2:10:8"}, "sweep.db",
    ...          client=Client("tcp://head-node:8786"))              # doctest: +SKIP
    """
    from .grid import GridSpec
    from .store import DEFAULT_PATH, Store
    if not isinstance(spec, GridSpec):
        spec = GridSpec.from_settings(spec)
    plan = plan_grid(spec)
    estimate(plan)
    with Store.create(out or spec.out or DEFAULT_PATH, plan.data.identity) as store:
        done = sum(stored_runs(plan, store).values())
        grid_id = store.begin_grid(command, spec.to_dict(), len(plan.runs), done)
        t0 = time.perf_counter()
        outcome = None
        try:
            outcome = execute(plan, store, progress=progress, stop=stop, grid_id=grid_id, client=client)
        finally:
            state = "finished" if outcome is not None and not outcome.interrupted else "interrupted"
            store.end_grid(grid_id, state, outcome.n_trained if outcome else 0, time.perf_counter() - t0)
    return outcome
