"""fastmlp: train thousands of small multilayer perceptrons at once, to measure how the initial weights
decide whether a network learns.

The public API, re-exported::

    net = fastmlp.Network(n_inputs=7, hidden=(4,), activation="tanh")
    res = fastmlp.train(net, X, y, init=fastmlp.Init("constant", value=0.5), training=fastmlp.Training(lr=0.01))
    fastmlp.diagnose(net, res.params[0], X, res.initial_params[0])
"""
from . import data, theory
from .data import Dataset, load_dataset
from .diagnostics import diagnose, distinct_units, effective_rank, max_cosine, summarize
from .evaluate import loss_and_accuracy
from .inference import predict
from .init import init_batch, init_params
from .interop import from_torch, to_torch
from .layout import Layout
from .params_store import load_run
from .spec import ACTIVATIONS, OPTIMIZERS, OUTPUTS, SCHEMES, Init, Network, Training
from .train import BatchResult, train, train_batch

__version__ = "0.9.1"

__all__ = [
    "ACTIVATIONS", "OPTIMIZERS", "OUTPUTS", "SCHEMES", "BatchResult", "Dataset", "Init", "Layout", "Network",
    "Training", "data", "diagnose", "distinct_units", "effective_rank", "init_batch", "init_params",
    "load_dataset", "loss_and_accuracy", "max_cosine", "summarize", "theory", "train", "train_batch",
    "predict", "to_torch", "from_torch", "load_run",
]
