"""Plain descriptions of a network, an initialisation and a training set-up, and their validation.

These are the public vocabulary of fastmlp. Engines never see them: ``codes()`` turns them into the small
integers and arrays that compiled code takes.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
import math

ACTIVATIONS = ("tanh", "sigmoid", "relu", "leaky_relu", "linear")
OUTPUTS = ("sigmoid", "softmax", "identity")          # with loss: BCE, cross-entropy, MSE
LOSS_OF_OUTPUT = {"sigmoid": "binary_cross_entropy", "softmax": "cross_entropy", "identity": "mse"}
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam")
SCHEMES = ("zeros", "constant", "uniform", "normal", "xavier_uniform", "xavier_normal", "he_uniform",
           "he_normal", "lecun_uniform", "lecun_normal", "orthogonal", "meanfield", "lsuv")
# schemes that draw from the data: their parameters need X (see fastmlp.init.lsuv)
DATA_SCHEMES = ("lsuv",)
BIAS_SCHEMES = ("zeros", "constant", "normal")
DTYPES = ("float32", "float64")


def _choice(what, value, choices):
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; choose one of: {', '.join(choices)}")
    return value


def _positive_int(what, value):
    if isinstance(value, bool) or not isinstance(value, (int,)) and not hasattr(value, "__index__"):
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    if int(value) <= 0:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def _finite(what, value, low=None, high=None, low_open=False, high_open=False):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{what} must be finite, got {value!r}")
    if low is not None and (v < low or (low_open and v == low)):
        raise ValueError(f"{what} must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and (v > high or (high_open and v == high)):
        raise ValueError(f"{what} must be {'<' if high_open else '<='} {high}, got {value!r}")
    return v


@dataclass(frozen=True)
class Network:
    """A fully connected network.

    Parameters
    ----------
    n_inputs : int
        Number of input features.
    hidden : tuple of int
        Width of each hidden layer; ``()`` is a single-layer model (logistic/softmax/linear regression).
    n_outputs : int
        Output units: 1 for binary classification, the number of classes for softmax.
    activation : str
        Hidden activation, one of ``ACTIVATIONS``.
    output : str
        Output unit and loss: ``"sigmoid"`` (binary cross-entropy), ``"softmax"`` (cross-entropy with integer
        labels) or ``"identity"`` (mean squared error).
    leaky_slope : float
        Negative slope of ``leaky_relu``.

    Notes
    -----
    Layer ``l`` computes ``z = W a + b`` with ``W`` of shape ``(fan_out, fan_in)`` as in PyTorch's Linear.
    """
    n_inputs: int
    hidden: tuple = (4,)
    n_outputs: int = 1
    activation: str = "tanh"
    output: str = "sigmoid"
    leaky_slope: float = 0.01

    def __post_init__(self):
        object.__setattr__(self, "hidden", tuple(int(h) if not isinstance(h, bool) else h for h in self.hidden))
        _positive_int("n_inputs", self.n_inputs)
        _positive_int("n_outputs", self.n_outputs)
        for h in self.hidden:
            _positive_int("hidden layer width", h)
        _choice("activation", self.activation, ACTIVATIONS)
        _choice("output", self.output, OUTPUTS)
        _finite("leaky_slope", self.leaky_slope, 0.0, 1.0)
        if self.output == "softmax" and self.n_outputs < 2:
            raise ValueError(f"a softmax output needs n_outputs >= 2, got {self.n_outputs}")

    @property
    def sizes(self):
        """Layer sizes from input to output, e.g. ``(7, 4, 1)``."""
        return (self.n_inputs, *self.hidden, self.n_outputs)

    @property
    def loss(self):
        return LOSS_OF_OUTPUT[self.output]


@dataclass(frozen=True)
class Init:
    """How to initialise a network's parameters.

    Parameters
    ----------
    scheme : str
        One of ``SCHEMES``. ``constant`` uses ``value``; ``uniform`` draws from ``U(-limit, limit)``; ``normal``
        from ``N(0, std)``; the fan-based schemes pick their scale from each layer's fan-in/fan-out.
    scale : float
        Multiplier applied to every weight the scheme draws (the main grid axis). ``1`` is the scheme as published.
    gain : float or None
        Gain of the fan-based schemes and ``orthogonal``; ``None`` means 1 (Xavier, LeCun, orthogonal) or
        ``sqrt(2)`` (He).
    value : float
        The weight of ``constant``.
    limit : float
        Half-width of ``uniform``.
    std : float
        Standard deviation of ``normal``.
    bias : str
        ``"zeros"``, ``"constant"`` (``bias_value``) or ``"normal"`` (``N(0, bias_std)``).
    sigma_w2, sigma_b2 : float
        Of ``meanfield``, the scheme in the terms of signal-propagation theory (:mod:`fastmlp.theory`): weights
        ``N(0, sigma_w2 / fan_in)`` and biases ``N(0, sigma_b2)`` in every layer (``bias`` is then ignored;
        ``scale`` still multiplies the weights).
    lsuv_tol, lsuv_max_iter, lsuv_batch : float, int, int
        Of ``lsuv`` (Mishkin & Matas 2015): an orthogonal start (``gain``), then each layer's weights divided by
        the standard deviation of its output on a minibatch of ``lsuv_batch`` samples (drawn with the seed),
        until that variance is within ``lsuv_tol`` of 1 or ``lsuv_max_iter`` rescalings were made; biases are
        zero (``bias``) and ``scale`` multiplies the result. It needs the data: ``init_params(..., X=X)``.
    """
    scheme: str = "xavier_normal"
    scale: float = 1.0
    gain: float | None = None
    value: float = 0.5
    limit: float = 1.0
    std: float = 1.0
    bias: str = "zeros"
    bias_value: float = 0.0
    bias_std: float = 1.0
    sigma_w2: float = 1.0
    sigma_b2: float = 0.0
    lsuv_tol: float = 0.1
    lsuv_max_iter: int = 10
    lsuv_batch: int = 512

    def __post_init__(self):
        _choice("init scheme", self.scheme, SCHEMES)
        _choice("bias scheme", self.bias, BIAS_SCHEMES)
        _finite("init scale", self.scale, 0.0)
        if self.gain is not None:
            _finite("gain", self.gain, 0.0)
        _finite("init value", self.value)
        _finite("limit", self.limit, 0.0)
        _finite("std", self.std, 0.0)
        _finite("bias_value", self.bias_value)
        _finite("bias_std", self.bias_std, 0.0)
        _finite("sigma_w2", self.sigma_w2, 0.0)
        _finite("sigma_b2", self.sigma_b2, 0.0)
        _finite("lsuv_tol", self.lsuv_tol, 0.0, low_open=True)
        _positive_int("lsuv_max_iter", self.lsuv_max_iter)
        _positive_int("lsuv_batch", self.lsuv_batch)


@dataclass(frozen=True)
class Training:
    """A training set-up.

    Parameters
    ----------
    optimizer : str
        ``"sgd"``, ``"momentum"`` (classical, ``v = mu v + g; w -= lr v``), ``"nesterov"``
        (``w -= lr (g + mu v)``) or ``"adam"`` (``momentum`` is its beta1).
    lr : float
        Learning rate, > 0.
    momentum : float
        Momentum coefficient (beta1 for Adam), in [0, 1).
    weight_decay : float
        L2 coefficient added to the weights' gradient (biases are not decayed).
    dropout : float
        Inverted-dropout rate on every hidden layer, in [0, 1).
    steps : int
        Parameter updates.
    batch_size : int or None
        Minibatch size, reshuffled every epoch; ``None`` trains full batch.
    record_every : int
        The loss (of the batch the step used, before its update) is recorded every ``record_every`` steps.
    beta2, eps : float
        Adam's second-moment decay and epsilon.
    """
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0
    dropout: float = 0.0
    steps: int = 1000
    batch_size: int | None = None
    record_every: int = 1
    beta2: float = 0.999
    eps: float = 1e-8

    def __post_init__(self):
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _finite("learning rate", self.lr, 0.0, low_open=True)
        _finite("momentum", self.momentum, 0.0, 1.0, high_open=True)
        _finite("weight_decay", self.weight_decay, 0.0)
        _finite("dropout", self.dropout, 0.0, 1.0, high_open=True)
        _positive_int("steps", self.steps)
        if self.batch_size is not None:
            _positive_int("batch_size", self.batch_size)
        _positive_int("record_every", self.record_every)
        _finite("beta2", self.beta2, 0.0, 1.0, high_open=True)
        _finite("eps", self.eps, 0.0, low_open=True)

    def with_(self, **changes):
        return replace(self, **changes)


def check_dtype(dtype):
    import numpy as np
    name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    _choice("dtype", name, DTYPES)
    return np.dtype(name)


def parse_hidden(text):
    """Hidden layer widths from ``"16"``, ``"32x4"`` (4 layers of 32), ``"64,32"``, ``"0"`` or ``""`` (none).

    Raises
    ------
    ValueError
        Naming the malformed text.
    """
    text = str(text).strip().lower()
    if text in ("", "0", "none"):
        return ()
    try:
        if "x" in text:
            width, depth = text.split("x")
            widths = (int(width),) * int(depth)
        else:
            widths = tuple(int(t) for t in text.split(","))
    except ValueError:
        raise ValueError(f"malformed hidden layers {text!r}: use e.g. 16, 32x4 (4 layers of 32) or 64,32") from None
    if not widths or any(w <= 0 for w in widths):
        raise ValueError(f"hidden layer widths must be positive, got {text!r}")
    return widths
