"""Running a grid's chunks on a Dask cluster (``fastmlp grid --scheduler/--scheduler-file/--dask-workers``).

The submitting process does everything a local run does but the training: it expands the grid lazily, claims
chunks in the database, submits them, stores each chunk's rows as it completes (in completion order), and
keeps the progress, the summary and the exit codes. Workers receive the plan (data, settings) once, scattered
to every worker, and return rows; they never open the database. At most a few chunks per worker thread are in
flight, so a grid of millions of networks never becomes millions of futures.

A chunk's numbers do not depend on where it runs: a network's initial weights come from its seed and the
engine's randomness is counter based, so results are the same bits as in-process (given the same fastmlp,
which is checked before anything trains).

Faults: a worker that dies takes its chunk with it and Dask runs the chunk again elsewhere (its scheduler's
``allowed-failures``); a chunk that raises is stored as ``failed`` with the message, and the grid goes on; a
stop request (SIGINT, SIGTERM) cancels what is in flight, keeps what finished, and leaves the rest to a rerun;
a scheduler that goes away is an error, not a wait.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import importlib
import os
import time
import uuid

from .run import (ChunkSource, MIN_MEMORY_BUDGET, Outcome, Progress, StopRequest, failed_rows, human_bytes,
                  stored_runs, train_chunk)

EXTRA = "dask"
INSTALL = "pip install 'fastmlp[dask]'"
CONNECT_TIMEOUT = 30.0       # seconds to reach a scheduler
WORKER_TIMEOUT = 60.0        # seconds to wait for the first worker
LOST_GRACE = 10.0            # seconds a client may be reconnecting before the scheduler counts as gone
POLL = 0.05                  # seconds between looks at the futures (a signal is answered within this)
MAX_RESUBMIT = 3             # times a chunk whose result was lost (not failed) is submitted again
SLOW_NOTE = 30.0             # seconds without a finished chunk before saying why that may be


class MissingExtra(RuntimeError):
    """Dask or distributed is not installed (``pip install 'fastmlp[dask]'``)."""


class ClusterError(RuntimeError):
    """The cluster cannot run the grid: unreachable or lost scheduler, no workers, workers without fastmlp."""


def dask_available():
    """``(True, "dask X, distributed Y")`` when the ``dask`` extra is importable, else ``(False, reason)``."""
    try:
        import dask
        import distributed
    except ImportError as e:
        return False, f"{e}"
    return True, f"dask {dask.__version__}, distributed {distributed.__version__}"


def _distributed():
    try:
        import distributed
    except ImportError as e:
        raise MissingExtra(f"running a grid on Dask needs the '{EXTRA}' extra (dask and distributed), which is "
                           f"not installed ({e}): {INSTALL}") from None
    return distributed


@contextlib.contextmanager
def connect(scheduler=None, scheduler_file=None, n_workers=None, timeout=CONNECT_TIMEOUT):
    """A Dask client for a grid: to a scheduler's address, through a scheduler file, or to a new local cluster.

    Parameters
    ----------
    scheduler : str, optional
        ``tcp://host:8786``.
    scheduler_file : str or Path, optional
        The JSON file ``dask scheduler --scheduler-file FILE`` writes.
    n_workers : int, optional
        Start a ``LocalCluster`` of this many single-thread worker processes on the loopback interface for the
        block, and close it afterwards.
    timeout : float
        Seconds to reach the scheduler.

    Yields
    ------
    distributed.Client

    Raises
    ------
    MissingExtra
        Without dask and distributed.
    ClusterError
        If the scheduler cannot be reached.
    """
    distributed = _distributed()
    if scheduler_file is not None and not os.path.isfile(scheduler_file):
        raise ClusterError(f"no scheduler file at {scheduler_file} (start one with: dask scheduler "
                           f"--scheduler-file {scheduler_file})")
    cluster = None
    where = scheduler or scheduler_file or f"a local cluster of {n_workers} workers"
    with contextlib.ExitStack() as stack:
        try:
            if n_workers is not None:
                cluster = stack.enter_context(distributed.LocalCluster(
                    n_workers=int(n_workers), threads_per_worker=1, processes=True, host="127.0.0.1",
                    dashboard_address=":0", silence_logs=40))
                client = stack.enter_context(distributed.Client(cluster, timeout=timeout))
            elif scheduler_file is not None:
                client = stack.enter_context(distributed.Client(scheduler_file=str(scheduler_file),
                                                                timeout=timeout))
            else:
                client = stack.enter_context(distributed.Client(scheduler, timeout=timeout))
        except (OSError, TimeoutError, ValueError) as e:
            raise ClusterError(f"cannot reach the Dask scheduler at {where}: {type(e).__name__}: {e}") from None
        yield client


# ------------------------------------------------------------------------------------------- workers

# Sent by value (compiled outside any importable module), so that it runs on a worker without fastmlp and
# says so, instead of failing to unpickle.
_PROBE_SOURCE = '''
def probe():
    import os, socket, sys
    facts = {"host": socket.gethostname(), "pid": os.getpid(), "python": sys.version.split()[0],
             "executable": sys.executable}
    try:
        from fastmlp.cluster import worker_facts
    except Exception as e:
        facts["error"] = type(e).__name__ + ": " + str(e)
        return facts
    facts.update(worker_facts())
    return facts
'''


def _probe():
    namespace = {"__name__": "fastmlp_worker_probe"}
    exec(compile(_PROBE_SOURCE, "<fastmlp worker probe>", "exec"), namespace)
    return namespace["probe"]


def worker_facts():
    """What a worker runs with (``fastmlp info``-style): versions, cores, threads, SIMD width, memory, cache."""
    import numba
    import numpy

    from . import __version__
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    facts = {"fastmlp": __version__, "numba": numba.__version__, "numpy": numpy.__version__, "cores": cores,
             "numba_threads_max": int(numba.config.NUMBA_NUM_THREADS),
             "threading_layer": str(numba.config.THREADING_LAYER),
             "numba_cache_dir": numba.config.CACHE_DIR or "(next to the package)"}
    facts["simd_bytes"] = None
    for name in ("fastmlp.config", "fastmlp.engine.config"):     # where the numba settings live (or lived)
        try:
            facts["simd_bytes"] = int(importlib.import_module(name).VECTOR_BYTES)
            break
        except (ImportError, AttributeError):
            pass
    try:
        from distributed import get_worker
        w = get_worker()
        facts["nthreads"] = int(getattr(w, "nthreads", None) or w.state.nthreads)
        facts["memory_limit"] = int(getattr(w, "memory_limit", None) or w.memory_manager.memory_limit or 0)
    except Exception:
        facts["nthreads"], facts["memory_limit"] = 1, 0
    from .run import available_memory
    facts["memory_available"] = int(available_memory())
    return facts


def train_remote(plan, runs, keys, grid_id, budget, threads, version):
    """A chunk on a worker: :func:`fastmlp.run.train_chunk` with ``threads`` numba threads.

    Returns
    -------
    rows : list of dict
    seconds : float
        The chunk's time on the worker (sizes the next chunks).
    """
    from . import __version__
    if version != __version__:
        raise ClusterError(f"this worker has fastmlp {__version__}, the grid was submitted with fastmlp {version}")
    import numba
    numba.set_num_threads(max(1, min(int(threads), int(numba.config.NUMBA_NUM_THREADS))))
    t0 = time.perf_counter()
    rows = train_chunk(plan, runs, keys, grid_id, budget)
    return rows, time.perf_counter() - t0


def check_workers(client, task_threads=1, timeout=WORKER_TIMEOUT):
    """Wait for a worker, then ask every worker what it runs with; refuse a cluster that cannot run the grid.

    Returns
    -------
    dict
        ``{worker address: facts}``.

    Raises
    ------
    ClusterError
        No worker within ``timeout`` seconds; a worker that cannot import fastmlp or has another version.
    """
    from . import __version__
    try:
        client.wait_for_workers(1, timeout=timeout)
    except (TimeoutError, OSError) as e:
        raise ClusterError(f"no Dask worker joined the scheduler {client.scheduler.address} within {timeout:g} s "
                           f"({type(e).__name__}); start some with: dask worker {client.scheduler.address}") \
            from None
    facts = client.run(_probe())
    bad = {a: f["error"] for a, f in facts.items() if "error" in f}
    if bad:
        where = "; ".join(f"{a} ({facts[a]['host']}, {facts[a]['executable']}): {e}" for a, e in sorted(bad.items()))
        raise ClusterError(f"{len(bad)} of {len(facts)} Dask workers cannot import fastmlp: {where}. Install "
                           f"fastmlp {__version__} in the workers' environment (pip install 'fastmlp[dask]')")
    other = {a: f["fastmlp"] for a, f in facts.items() if f["fastmlp"] != __version__}
    if other:
        where = "; ".join(f"{a}: fastmlp {v}" for a, v in sorted(other.items()))
        raise ClusterError(f"Dask workers run another fastmlp version than this process ({__version__}): {where}. "
                           f"Results would not match a local run; install fastmlp {__version__} on the workers")
    return facts


def describe_workers(facts, task_threads):
    """Lines about the workers, one per host (what is logged once at the start)."""
    import numba
    import numpy
    hosts = {}
    for addr, f in sorted(facts.items()):
        hosts.setdefault(f["host"], []).append(f)
    lines = []
    for host, fs in hosts.items():
        f = fs[0]
        threads = sum(x["nthreads"] for x in fs)
        mem = f"memory limit {human_bytes(f['memory_limit'])} each" if f["memory_limit"] else \
            f"{human_bytes(f['memory_available'])} available"
        simd = f"{f['simd_bytes']}-byte SIMD" if f["simd_bytes"] else "SIMD width unknown"
        lines.append(f"dask: {host}: {len(fs)} worker{'s' * (len(fs) != 1)} x {f['nthreads']} thread"
                     f"{'s' * (f['nthreads'] != 1)}, {task_threads} engine thread{'s' * (task_threads != 1)} per "
                     f"chunk, {f['cores']} cores; {simd}; {mem}; fastmlp {f['fastmlp']}, numba {f['numba']} "
                     f"(threading layer {f['threading_layer']}), NUMBA_CACHE_DIR {f['numba_cache_dir']}")
        if threads * task_threads > f["cores"]:
            lines.append(f"dask: note: {host} runs {threads} worker threads x {task_threads} engine threads on "
                         f"{f['cores']} cores: oversubscribed, chunks will run slower than they could")
        if (f["numba"], f["numpy"]) != (numba.__version__, numpy.__version__):
            lines.append(f"dask: note: {host} has numba {f['numba']} / numpy {f['numpy']}, this process numba "
                         f"{numba.__version__} / numpy {numpy.__version__}")
    return lines


def worker_budget(spec, facts):
    """Bytes one chunk may use on the cluster: ``--max-memory``, else half the smallest worker's share."""
    if spec.max_memory:
        return spec.max_memory
    shares = []
    per_host = {}
    for f in facts.values():
        per_host[f["host"]] = per_host.get(f["host"], 0) + 1
    for f in facts.values():
        share = f["memory_limit"] or f["memory_available"] // per_host[f["host"]]
        shares.append(share // max(1, f["nthreads"]))
    return max(MIN_MEMORY_BUDGET, min(shares) // 2)


# ------------------------------------------------------------------------------------------- execute

def execute_on_cluster(plan, store, client, *, progress=None, stop=None, grid_id=None, sleep=0.5,
                       task_threads=1, in_flight=None):
    """Train every pending run of ``plan`` on the workers of ``client``; store the rows here, chunk by chunk.

    Parameters
    ----------
    plan : Plan
    store : Store
    client : distributed.Client
    progress : Progress, optional
    stop : StopRequest, optional
        When set (SIGINT/SIGTERM), the chunks in flight are cancelled, finished ones stored, and the execution
        returns with ``interrupted`` set.
    grid_id : int, optional
    sleep : float
        Seconds between claims while another process holds the last runs.
    task_threads : int
        Numba threads of each chunk on a worker (1: one engine thread per worker thread).
    in_flight : int, optional
        Most chunks submitted and not yet stored (default: two per worker thread, at least 2).

    Returns
    -------
    Outcome

    Raises
    ------
    ClusterError
        Workers without fastmlp or with another version (before anything trains), or the scheduler gone.
    """
    distributed = _distributed()
    from . import __version__
    progress = progress or Progress()
    stop = stop if stop is not None else StopRequest()
    t_start = time.perf_counter()
    facts = check_workers(client, task_threads)
    for line in describe_workers(facts, task_threads):
        progress.note(line)
    done = stored_runs(plan, store)
    out = Outcome(len(plan.runs), sum(done.values()))
    budget = worker_budget(plan.spec, facts)
    slots = max(1, sum(f["nthreads"] for f in facts.values()))
    source = ChunkSource(plan, store, out, progress, budget, task_threads, done, stop, sleep, slots)
    if out.n_runs == out.n_skipped:
        progress.start(0)
        progress.close()
        out.seconds = time.perf_counter() - t_start
        return out
    # the data and settings travel once, to every worker, not with each chunk
    shared = client.scatter(plan, broadcast=True, hash=False)
    progress.start(out.n_runs - out.n_skipped)
    tag = uuid.uuid4().hex[:8]
    futures = {}                 # future -> Chunk, submitted and not yet stored
    completed = distributed.as_completed()
    chunks = iter(source)
    exhausted, n_submitted = False, 0
    limit, limit_at = None, 0.0
    lost_since = None
    reported = set()
    last_done, told_wait = time.monotonic(), False
    resubmitted = {}             # id(chunk) -> times its result was lost and it was submitted again

    def submit(chunk):
        nonlocal n_submitted
        n_submitted += 1
        fut = client.submit(train_remote, shared, chunk.runs, chunk.keys, grid_id, budget, task_threads,
                            __version__, pure=False, key=f"fastmlp-chunk-{tag}-{n_submitted}")
        futures[fut] = chunk
        completed.add(fut)

    try:
        while True:
            now = time.monotonic()
            if in_flight is None and now - limit_at > 10.0:       # workers may join or leave
                limit = max(2, 2 * sum(client.nthreads().values()))
                limit_at = now
            cap = in_flight or limit
            while not exhausted and not stop and len(futures) < cap:
                chunk = next(chunks, None)
                if chunk is None:
                    exhausted = True
                    break
                submit(chunk)
            if stop or (exhausted and not futures):
                break
            if not completed.has_ready():
                if client.status != "running":
                    lost_since = lost_since or time.monotonic()
                    if time.monotonic() - lost_since > LOST_GRACE:
                        raise _lost(client, len(futures))
                else:
                    lost_since = None
                if not told_wait and futures and time.monotonic() - last_done > SLOW_NOTE:
                    told_wait = True
                    progress.note(f"{len(futures)} chunks in flight, none finished for {SLOW_NOTE:g} s: a worker's "
                                  f"first chunk of a network shape compiles the engine's kernels (about a minute "
                                  f"unless NUMBA_CACHE_DIR holds them; docs/dask.md)")
                time.sleep(POLL)
                continue
            last_done = time.monotonic()
            for fut in completed.next_batch(block=False):
                chunk = futures.pop(fut)
                status, result = _outcome(fut)
                if status not in ("finished", "error") and client.status == "running":
                    # its result went with a worker that died, or the scheduler dropped it: run it again
                    n = resubmitted[id(chunk)] = resubmitted.get(id(chunk), 0) + 1
                    if n <= MAX_RESUBMIT:
                        note = ""
                        if shared.status != "finished":
                            # the plan went with the worker(s) that held it: scattered data has no recipe
                            shared = client.scatter(plan, broadcast=True, hash=False)
                            note = "; the plan is sent to the workers again"
                        progress.note(f"a chunk of {len(chunk.runs)} runs came back {status} (a worker left?); "
                                      f"submitted again{note}")
                        submit(chunk)
                        continue
                _store(plan, store, source, out, progress, status, result, chunk, grid_id, reported, client)
    finally:
        # keep what finished, cancel the rest and give its runs back
        left = []
        for fut, chunk in futures.items():
            if fut.status == "finished":
                status, result = _outcome(fut)
                if status == "finished":
                    _store(plan, store, source, out, progress, status, result, chunk, grid_id, reported, client)
                    continue
            left.append((fut, chunk))
        if left:
            try:
                client.cancel([f for f, _ in left], force=True)
            except Exception:
                pass
            store.release([k for _, c in left for k in c.keys])
        with contextlib.suppress(Exception):
            client.cancel([shared])
    out.seconds = time.perf_counter() - t_start
    out.interrupted = stop.signal
    progress.close()
    return out


def _lost(client, n):
    where = getattr(getattr(client, "scheduler", None), "address", None) or "?"
    chunks = f"{n} chunk{'s' * (n != 1)} in flight {'were' if n != 1 else 'was'}"
    return ClusterError(f"lost the connection to the Dask scheduler at {where} (client {client.status}); {chunks} "
                        f"not stored. Every chunk already stored is kept: run the same command again (with a "
                        f"working scheduler, or without one) to resume")


def _outcome(fut):
    """``(status, value)`` of a completed future: its rows and seconds, or its exception; a result that was
    cancelled (or lost) between completing and being fetched counts as ``"cancelled"``."""
    status = fut.status
    try:
        if status == "finished":
            return status, fut.result()
        if status == "error":
            return status, fut.exception()
    except (concurrent.futures.CancelledError, asyncio.CancelledError):
        pass
    except Exception as e:               # fetching failed: the worker holding the result left
        if fut.status == "finished":
            return "lost", e
    return ("cancelled" if status == "finished" else status), None


def _store(plan, store, source, out, progress, status, result, chunk, grid_id, reported, client):
    """Store one completed chunk: its rows, or its runs as failed with the error the chunk raised."""
    if status == "finished":
        rows, seconds = result
        source.measured(chunk, seconds)
        out.chunk_seconds += seconds
        out.engine_calls += 1
    elif status == "error":
        exc = result
        message = f"{type(exc).__name__}: {exc}"
        rows = failed_rows(plan, chunk.runs, chunk.keys, grid_id, message)
        if message not in reported:
            reported.add(message)
            progress.note(f"a chunk of {len(rows)} runs failed on the cluster and is stored as failed: {message}")
    elif client.status == "running":      # lost again and again
        message = f"the chunk's result was lost {MAX_RESUBMIT + 1} times (status {status})"
        rows = failed_rows(plan, chunk.runs, chunk.keys, grid_id, message)
        progress.note(f"a chunk of {len(rows)} runs is stored as failed: {message}")
    else:                         # cancelled: by the scheduler going away
        raise _lost(client, 1)
    store.save(rows)
    out.n_trained += len(rows)
    progress.advance(len(rows))
