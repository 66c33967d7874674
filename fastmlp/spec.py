"""Plain descriptions of a network, an initialisation and a training set-up, and their validation.

These are the public vocabulary of fastmlp. Engines never see them: ``codes()`` turns them into the small
integers and arrays that compiled code takes.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from .validation import Integral, Interval, Optional, Options, validate

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

    _parameter_constraints = {"n_inputs": Integral(1), "n_outputs": Integral(1), "activation": Options(ACTIVATIONS),
                              "output": Options(OUTPUTS), "leaky_slope": Interval(0, 1)}

    def __post_init__(self):
        object.__setattr__(self, "hidden", tuple(int(h) if not isinstance(h, bool) else h for h in self.hidden))
        validate(self, self._parameter_constraints)
        for h in self.hidden:
            Integral(1).check("hidden layer width", h)
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

    _parameter_constraints = {"scheme": Options(SCHEMES), "bias": Options(BIAS_SCHEMES), "scale": Interval(0),
                              "gain": Optional(Interval(0)), "value": Interval(), "limit": Interval(0),
                              "std": Interval(0), "bias_value": Interval(), "bias_std": Interval(0),
                              "sigma_w2": Interval(0), "sigma_b2": Interval(0),
                              "lsuv_tol": Interval(0, closed="neither"), "lsuv_max_iter": Integral(),
                              "lsuv_batch": Integral()}
    _names = {"scheme": "init scheme", "bias": "bias scheme", "scale": "init scale", "value": "init value"}

    def __post_init__(self):
        validate(self, self._parameter_constraints, self._names)


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

    _parameter_constraints = {"optimizer": Options(OPTIMIZERS), "lr": Interval(0, closed="neither"),
                              "momentum": Interval(0, 1, closed="left"), "weight_decay": Interval(0),
                              "dropout": Interval(0, 1, closed="left"), "steps": Integral(1),
                              "batch_size": Optional(Integral(1)), "record_every": Integral(1),
                              "beta2": Interval(0, 1, closed="left"), "eps": Interval(0, closed="neither")}
    _names = {"lr": "learning rate"}

    def __post_init__(self):
        validate(self, self._parameter_constraints, self._names)

    def with_(self, **changes):
        return replace(self, **changes)


def check_dtype(dtype):
    import numpy as np
    name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    Options(DTYPES).check("dtype", name)
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
