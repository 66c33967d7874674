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
           "he_normal", "lecun_uniform", "lecun_normal", "orthogonal")
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


@dataclass(frozen=True)
class Training:
    """A training set-up.

    Parameters
    ----------
    optimizer : str
        ``"sgd"``, ``"momentum"`` (classical, ``v = mu v + g; w -= lr v``), ``"nesterov"``
        (``w -= lr (g + mu v)``) or ``"adam"`` (``momentum`` is its beta1).
    lr : float
        Learning rate, > 0 (default 0.1, the default of ``fastmlp train`` and ``fastmlp grid`` too).
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
    lr: float = 0.1
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


HIDDEN_GRAMMAR = ("layers joined by '-', each W or WxN (N layers of W): 16, 32x4, 64-32, 32x2-16; "
                  "0 or none for no hidden layer")


def ambiguous_hidden_message(text):
    """Why ``"8,16"`` is refused: both of its readings, written in the unambiguous grammar."""
    items = [t.strip() for t in str(text).split(",")]
    as_list = " ".join(f"--hidden {t}" for t in items)
    return (f"{text!r} is ambiguous: a comma separates list items on every other axis, but older fastmlp read "
            f"it as layers. Write {'-'.join(items)} for ONE network whose hidden layers are "
            f"{', then '.join(items)} units, or {as_list} for {len(items)} architectures of one hidden layer "
            f"each")


def parse_hidden(text):
    """Hidden layer widths of one architecture.

    The grammar: layers joined by ``-``, each ``W`` or ``WxN`` (N layers of W units): ``"16"``, ``"32x4"``,
    ``"64-32"``, ``"32x2-16"``; ``"0"``, ``"none"`` or ``""`` for no hidden layer. A comma is refused: on the
    command line it separates list items, and ``"64,32"`` used to mean two layers (the message shows both
    readings).

    Raises
    ------
    ValueError
        Naming the malformed text.
    """
    raw = str(text).strip()
    text = raw.lower()
    if text in ("", "0", "none"):
        return ()
    if "," in text:
        raise ValueError(f"hidden layers {ambiguous_hidden_message(raw)}")
    widths = []
    try:
        for part in text.split("-"):
            if "x" in part:
                width, depth = part.split("x")
                if int(depth) <= 0:
                    raise ValueError
                widths += [int(width)] * int(depth)
            else:
                widths.append(int(part))
    except ValueError:
        raise ValueError(f"malformed hidden layers {raw!r}: {HIDDEN_GRAMMAR}") from None
    if not widths or any(w <= 0 for w in widths):
        raise ValueError(f"hidden layer widths must be positive, got {raw!r}")
    return tuple(widths)


def hidden_label(hidden):
    """An architecture in the grammar :func:`parse_hidden` reads: ``"32x3"``, ``"64-32"``, ``"32x2-16"``,
    ``"none"`` for no hidden layer (runs of equal widths are written ``WxN``)."""
    hidden = tuple(int(h) for h in hidden)
    if not hidden:
        return "none"
    parts, i = [], 0
    while i < len(hidden):
        j = i
        while j < len(hidden) and hidden[j] == hidden[i]:
            j += 1
        parts.append(f"{hidden[i]}x{j - i}" if j - i > 1 else str(hidden[i]))
        i = j
    return "-".join(parts)
