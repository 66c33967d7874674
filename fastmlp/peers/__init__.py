"""Peer implementations of the benchmark workloads, written as a skilled user of each tool would write them.

Each peer module exposes

* ``VARIANTS``: the tuple of variant names it implements,
* ``available() -> (bool, reason)``: whether its framework can be imported (and why not),
* ``train(workload, variant) -> ndarray (N, P)``: the final parameters of all N networks of a
  :class:`fastmlp.workloads.Workload`, in the packed layout and dtype of ``workload.params``.

Every peer follows fastmlp's math (see ``fastmlp.engine.reference``): hidden activation of the network (tanh in
the workloads), sigmoid output with binary cross-entropy averaged over batch x outputs, softmax output with
cross-entropy averaged over the batch, identity output with squared error averaged over batch x outputs, plain
SGD ``p -= lr * grad``. Network ``n`` sees the minibatches ``minibatch_indices(workload.seeds[n], ...)``, the
order fastmlp uses when called with ``seeds=workload.seeds``. Peers implement what the workloads use: plain SGD,
no weight decay, no dropout, and no divergence handling (the workloads' networks do not diverge).

The frameworks are imported lazily, inside the peer functions, so ``import fastmlp.peers`` needs only NumPy.
"""
from __future__ import annotations

import numpy as np

from ..rng import minibatch_indices


def final_losses(workload, params):
    """Loss of each of the N networks ``params`` (N, P) on the workload's full data set, as fastmlp computes it."""
    from ..evaluate import loss_and_accuracy
    from ..train import as_targets

    params = np.atleast_2d(np.asarray(params))
    T = as_targets(workload.network, workload.y, workload.X.shape[0], params.dtype)
    return loss_and_accuracy(workload.network, params, workload.X, T)[0]


def check_supported(workload):
    """Raise ``NotImplementedError`` for a set-up the peers do not implement (they implement the workloads)."""
    tr = workload.training
    if tr.optimizer != "sgd":
        raise NotImplementedError(f"peers implement plain SGD only, got optimizer {tr.optimizer!r}")
    if tr.weight_decay != 0 or tr.dropout != 0:
        raise NotImplementedError("peers implement neither weight decay nor dropout")


def targets(workload, dtype=None):
    """Float targets ``(samples, outputs)`` of the workload (one-hot for softmax)."""
    from ..train import as_targets

    dtype = workload.params.dtype if dtype is None else dtype
    return as_targets(workload.network, workload.y, workload.X.shape[0], dtype)


def step_indices(workload):
    """Every step's sample indices for every network, or ``None`` for full-batch training.

    Returns a list with one ``(N, B_t)`` int64 array per step: row ``n`` is network ``n``'s minibatch
    (``minibatch_indices(workload.seeds[n], ...)``). ``B_t`` is the same for every network (the last batch of an
    epoch is short whatever the seed), so each step's array is rectangular.
    """
    S = workload.X.shape[0]
    B, steps = workload.training.batch_size, workload.training.steps
    if B is None or B >= S:
        return None
    per_net = [minibatch_indices(int(s), S, B, steps) for s in workload.seeds]
    return [np.stack([per_net[n][t] for n in range(len(per_net))]) for t in range(steps)]


def network_indices(workload, n):
    """Network ``n``'s per-step sample indices (list of arrays), or ``None`` for full-batch training."""
    S = workload.X.shape[0]
    B, steps = workload.training.batch_size, workload.training.steps
    if B is None or B >= S:
        return None
    return minibatch_indices(int(workload.seeds[n]), S, B, steps)


# imported after the helpers above, which the peer modules use; the modules import their framework lazily
from . import jax_peer, numpy_batched, torch_peer  # noqa: E402

PEERS = {"numpy": numpy_batched, "torch": torch_peer, "jax": jax_peer}

__all__ = ["PEERS", "final_losses", "check_supported", "targets", "step_indices", "network_indices"]
