"""The ``numpy`` backend: the reference engine, one network after another."""
from .reference import train_one


def train(problem):
    curves, diverged, gnorms = problem.empty_outputs()
    params = problem.params.copy()
    for n in range(params.shape[0]):
        params[n], curves[n], diverged[n], gnorms[n] = train_one(
            problem.sizes, problem.activation, problem.output, problem.optimizer, problem.params[n],
            problem.X, problem.T, lr=problem.lr[n], momentum=problem.momentum[n],
            weight_decay=problem.weight_decay[n], dropout=problem.dropout[n], seed=int(problem.seeds[n]),
            steps=problem.steps, batch_size=problem.batch_size or None, record_every=problem.record_every,
            beta2=problem.beta2, eps=problem.eps, leaky_slope=problem.leaky_slope,
            track_grad_norms=problem.track_grad_norms)
    return params, curves, diverged, gnorms
