"""Time and peak memory of a grid's end-of-run summary on a large results database: the Python summary (every
run fetched as a dict, ``report.summarize_runs``) against the SQL one (``store_summary.summarize``).

    python bench/summary_scale.py [N ...]        # default: 100000 1000000

Each measurement runs in its own process, so that its peak resident memory (``ru_maxrss``) is its own. The
database holds N runs of a grid of 4 schemes x 25 scales x N/100 seeds, as ``fastmlp grid`` stores them.
"""
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATASET = {"name": "xor", "sha256": "0" * 64, "val_split": None, "split_seed": None, "n_samples": 10,
           "n_features": 2, "task": "binary"}
SCHEMES = ("zeros", "normal", "xavier_normal", "he_normal")


def build(path, n):
    import numpy as np
    from fastmlp.store import Store, encode_curve
    rng = np.random.default_rng(0)
    curve = encode_curve(np.linspace(0.7, 0.2, 101))
    with Store.create(path, DATASET) as s, s._transaction():
        s.conn.executemany(
            "INSERT INTO runs (run_key, dataset, hidden, depth, width, activation, init, scale, seed, lr, optimizer, "
            "steps, dtype, status, final_loss, train_accuracy, curve) VALUES (?, 'xor', '4', 1, 4, 'tanh', ?, ?, ?, "
            "0.1, 'sgd', 1000, 'float64', ?, ?, ?, ?)",
            ((f"k{i}", SCHEMES[i % 4], float(10 ** (-2 + 3 * ((i // 4) % 25) / 24)), i // 100,
              "diverged" if i % 97 == 0 else "done", float(rng.gamma(2.0, 0.2)), float(rng.uniform(0.4, 1)), curve)
             for i in range(n)))


def measure(path, how):
    from fastmlp.store import Store
    t0 = time.perf_counter()
    with Store.open(path) as s:
        if how == "python":
            from fastmlp.report import summarize_runs
            out = summarize_runs(s.fetch(), "final_loss")
        else:
            from fastmlp.store_summary import summarize
            out = summarize(s, "final_loss")
    seconds = time.perf_counter() - t0
    return {"how": how, "seconds": round(seconds, 2), "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            // 1024, "runs": out["counts"]["runs"], "best_mean": out["best"][0]["mean"]}


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--one":
        print(json.dumps(measure(sys.argv[2], sys.argv[3])))
        return
    sizes = [int(a) for a in sys.argv[1:]] or [100_000, 1_000_000]
    with tempfile.TemporaryDirectory() as d:
        for n in sizes:
            path = Path(d) / f"r{n}.db"
            t0 = time.perf_counter()
            build(path, n)
            print(f"{n} runs: database of {path.stat().st_size / 2 ** 20:.0f} MB built in "
                  f"{time.perf_counter() - t0:.1f} s", flush=True)
            for how in ("sql", "python"):
                r = subprocess.run([sys.executable, __file__, "--one", str(path), how], capture_output=True,
                                   text=True, check=True)
                print("  " + r.stdout.strip(), flush=True)


if __name__ == "__main__":
    main()
