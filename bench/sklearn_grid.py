"""scikit-learn's GridSearchCV(MLPClassifier, n_jobs=-1) against fastmlp's GridSearchMLP on the same grid, in one run.

    python bench/sklearn_grid.py                       # breast_cancer, 128 candidates x 5 folds, 100 epochs
    python bench/sklearn_grid.py --dataset digits --max-iter 50

Both search a Pipeline(StandardScaler, MLP) over the same grid (alpha x learning_rate_init x random_state, for
sgd and adam), with the same folds, hidden layers, batch size and epochs. scikit-learn's early stop is turned off
(``n_iter_no_change=max_iter``) so that both train every epoch; ``--sklearn-early-stop`` keeps its default
(tol=1e-4, 10 epochs) instead. Prints the time of each, the ratio and each search's best candidate, and one JSON
line with the figures. fastmlp's kernels are compiled (or loaded from the cache) by a small warm-up fit before
timing; the warm-up's time is reported too.
"""
import argparse
import json
import os
import time
import warnings

import numpy as np


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", choices=("breast_cancer", "digits"), default="breast_cancer")
    ap.add_argument("--hidden", type=int, nargs="+", default=[16])
    ap.add_argument("--max-iter", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--cv", type=int, default=5)
    ap.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    ap.add_argument("--sklearn-early-stop", action="store_true")
    ap.add_argument("--skip-sklearn", action="store_true", help="time GridSearchMLP alone")
    args = ap.parse_args(argv)

    from sklearn import datasets, neural_network
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from fastmlp import sklearn as fsk

    X, y = getattr(datasets, f"load_{args.dataset}")(return_X_y=True)
    grid = {"mlp__alpha": [1e-4, 1e-3, 1e-2, 1e-1], "mlp__learning_rate_init": [1e-3, 3e-3, 1e-2, 3e-2],
            "mlp__random_state": [0, 1, 2, 3], "mlp__solver": ["sgd", "adam"]}
    n_cand = int(np.prod([len(v) for v in grid.values()]))
    folds = StratifiedKFold(args.cv, shuffle=True, random_state=0)
    common = dict(hidden_layer_sizes=tuple(args.hidden), activation="relu", batch_size=args.batch_size,
                  max_iter=args.max_iter, momentum=0.9, nesterovs_momentum=True)
    early = {} if args.sklearn_early_stop else dict(n_iter_no_change=args.max_iter)

    t0 = time.perf_counter()
    fsk.MLPClassifier(**common, dtype=args.dtype).set_params(max_iter=1).fit(X[:50], y[:50])
    warm = time.perf_counter() - t0

    ours = fsk.GridSearchMLP(Pipeline([("scale", StandardScaler()),
                                       ("mlp", fsk.MLPClassifier(**common, dtype=args.dtype))]), grid, cv=folds)
    t0 = time.perf_counter()
    ours.fit(X, y)
    t_ours = time.perf_counter() - t0

    row = dict(dataset=args.dataset, n_samples=X.shape[0], n_features=X.shape[1], hidden=args.hidden,
               max_iter=args.max_iter, batch_size=args.batch_size, candidates=n_cand, folds=args.cv,
               dtype=args.dtype, cpus=os.cpu_count(), load_before=os.getloadavg()[0],
               fastmlp_s=round(t_ours, 3), fastmlp_warmup_s=round(warm, 3),
               fastmlp_engine_calls=len(ours.engine_calls_),
               fastmlp_best_score=round(ours.best_score_, 4), fastmlp_best=ours.best_params_)
    print(f"GridSearchMLP: {n_cand} candidates x {args.cv} folds in {t_ours:.2f} s "
          f"({len(ours.engine_calls_)} engine calls; warm-up {warm:.1f} s); best {ours.best_score_:.4f} "
          f"{ours.best_params_}")
    if not args.skip_sklearn:
        ref = GridSearchCV(Pipeline([("scale", StandardScaler()),
                                     ("mlp", neural_network.MLPClassifier(**common, **early))]), grid, cv=folds,
                           n_jobs=-1)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            ref.fit(X, y)
        t_ref = time.perf_counter() - t0
        print(f"GridSearchCV(n_jobs=-1): {t_ref:.2f} s; best {ref.best_score_:.4f} {ref.best_params_}")
        print(f"ratio: {t_ref / t_ours:.1f}x")
        # how far apart the two searches' scores of the same candidates are, over all candidates
        diff = ours.cv_results_["mean_test_score"] - ref.cv_results_["mean_test_score"]
        row.update(sklearn_s=round(t_ref, 3), ratio=round(t_ref / t_ours, 1),
                   sklearn_best_score=round(ref.best_score_, 4), sklearn_best=ref.best_params_,
                   sklearn_early_stop=args.sklearn_early_stop,
                   mean_score_diff=round(float(np.mean(diff)), 4),
                   mean_abs_score_diff=round(float(np.mean(np.abs(diff))), 4),
                   fold_std_of_best=round(float(ref.cv_results_["std_test_score"][ref.best_index_]), 4))
    row["load_after"] = os.getloadavg()[0]
    print(json.dumps(row))


if __name__ == "__main__":
    main()
