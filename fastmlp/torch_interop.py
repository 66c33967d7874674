"""Weights in and out of PyTorch: a fastmlp network as a ``torch.nn.Sequential``, and back.

Needs the optional extra ``fastmlp[torch]``; ``import fastmlp`` does not import torch (``fastmlp.to_torch`` and
``fastmlp.from_torch`` import this module when called). The layouts agree: a fastmlp weight matrix is
``(fan_out, fan_in)``, as ``torch.nn.Linear.weight``.
"""
from __future__ import annotations

import numpy as np

from .layout import Layout
from .spec import OUTPUTS, Network

try:
    import torch
    from torch import nn
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("fastmlp.to_torch/from_torch need PyTorch: pip install 'fastmlp[torch]'") from exc

_DTYPES = {np.dtype("float32"): torch.float32, np.dtype("float64"): torch.float64}


def _activation_module(network):
    a = network.activation
    if a == "tanh":
        return nn.Tanh()
    if a == "sigmoid":
        return nn.Sigmoid()
    if a == "relu":
        return nn.ReLU()
    if a == "leaky_relu":
        return nn.LeakyReLU(network.leaky_slope)
    return nn.Identity()


def to_torch(network: Network, params):
    """The network as a ``torch.nn.Sequential`` up to its logits.

    Parameters
    ----------
    network : Network
    params : array_like, (P,) or (1, P)
        One network's flat parameters, float32 or float64; the module has that dtype.

    Returns
    -------
    torch.nn.Sequential
        ``Linear, activation, ..., Linear``: no output unit, as PyTorch pairs logits with ``BCEWithLogitsLoss``
        (sigmoid), ``CrossEntropyLoss`` (softmax) or ``MSELoss`` (identity). A ``linear`` hidden activation is an
        ``nn.Identity``, so that ``from_torch`` gives the same network back.

    Raises
    ------
    ValueError
        For params of another length or dtype, or several networks.

    Examples
    --------
    >>> import fastmlp, torch
    >>> net = fastmlp.Network(n_inputs=2, hidden=(8,), activation="tanh")
    >>> p = fastmlp.init_params(net, fastmlp.Init("xavier_normal"), seed=0)
    >>> model = fastmlp.to_torch(net, p)
    >>> logits = model(torch.zeros(5, 2, dtype=torch.float64))   # (5, 1)
    """
    params = np.asarray(params)
    if params.ndim == 2 and params.shape[0] == 1:
        params = params[0]
    layout = Layout(network.sizes)
    if params.ndim != 1 or params.shape[0] != layout.n_params:
        raise ValueError(f"params must be one network's (P,) with P={layout.n_params} for sizes {network.sizes}, "
                         f"got shape {params.shape}")
    if params.dtype not in _DTYPES:
        raise ValueError(f"params must be float32 or float64, got {params.dtype}")
    dtype = _DTYPES[params.dtype]
    modules = []
    layers = layout.unpack(params)
    for l, (W, b) in enumerate(layers):
        lin = nn.Linear(W.shape[1], W.shape[0], dtype=dtype)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(W)))
            lin.bias.copy_(torch.from_numpy(np.ascontiguousarray(b)))
        modules.append(lin)
        if l < len(layers) - 1:
            modules.append(_activation_module(network))
    return nn.Sequential(*modules)


_ACTIVATIONS = {nn.Tanh: "tanh", nn.Sigmoid: "sigmoid", nn.ReLU: "relu", nn.LeakyReLU: "leaky_relu",
                nn.Identity: "linear"}


def _flatten(module):
    for m in module.children() if isinstance(module, nn.Sequential) else [module]:
        if isinstance(m, nn.Sequential):
            yield from _flatten(m)
        else:
            yield m


def _output_of(m):
    if isinstance(m, nn.Sigmoid):
        return "sigmoid"
    if isinstance(m, (nn.Softmax, nn.LogSoftmax)):
        if m.dim not in (None, -1, 1):
            raise ValueError(f"a final {type(m).__name__} must act over the classes (dim=-1 or 1), got dim={m.dim}")
        return "softmax"
    return None


def from_torch(module, output=None):
    """``(network, params)`` of a PyTorch ``Sequential`` of ``Linear`` layers and activations.

    Parameters
    ----------
    module : torch.nn.Sequential
        ``Linear, act, Linear, act, ..., Linear`` with one kind of hidden activation (``Tanh``, ``Sigmoid``,
        ``ReLU``, ``LeakyReLU``; ``Identity`` or nothing between two Linear layers is ``linear``), optionally
        ending in ``Sigmoid`` or ``Softmax``/``LogSoftmax`` (the output unit). Nested Sequentials are flattened.
        A Linear without bias gets zero biases (which the engine then trains).
    output : {"sigmoid", "softmax", "identity"}, optional
        The output unit and loss, when the module ends in a Linear (logits); must agree with a final
        Sigmoid/Softmax if there is one.

    Returns
    -------
    (Network, ndarray (P,))
        Parameters in the weights' dtype (float32 or float64).

    Raises
    ------
    ValueError
        Naming the module that is not supported, mixed activations, mismatched sizes or a missing ``output``.
    """
    mods = list(_flatten(module))
    final = _output_of(mods[-1]) if mods else None
    if final is not None:
        if output is not None and output != final:
            raise ValueError(f"output={output!r} disagrees with the module's final {type(mods[-1]).__name__}")
        output, mods = final, mods[:-1]
    if output is None:
        raise ValueError("the module ends in logits: say which output unit and loss they feed, "
                         "output='sigmoid' (BCEWithLogitsLoss), 'softmax' (CrossEntropyLoss) or 'identity' (MSELoss)")
    if output not in OUTPUTS:
        raise ValueError(f"unknown output {output!r}; choose one of: {', '.join(OUTPUTS)}")
    linears, acts, slope = [], set(), 0.01
    between = []
    for m in mods:
        if isinstance(m, nn.Linear):
            if linears and not between:
                acts.add("linear")
            linears.append(m)
            between = []
        elif type(m) in _ACTIVATIONS and linears:
            if between:
                raise ValueError(f"two activations in a row ({type(between[0]).__name__}, {type(m).__name__})")
            between.append(m)
            acts.add(_ACTIVATIONS[type(m)])
            if isinstance(m, nn.LeakyReLU):
                slope = float(m.negative_slope)
        else:
            raise ValueError(f"unsupported module {m!r}: fastmlp takes Linear layers and Tanh, Sigmoid, ReLU, "
                             f"LeakyReLU or Identity activations")
    if not linears:
        raise ValueError("the module has no Linear layer")
    if between:
        raise ValueError(f"the module ends in a hidden activation ({type(between[0]).__name__}) after its last "
                         f"Linear; only Sigmoid or Softmax may follow it, as the output unit")
    if len(acts) > 1:
        raise ValueError(f"fastmlp networks use one hidden activation, this module mixes {sorted(acts)}")
    for a, b in zip(linears[:-1], linears[1:]):
        if a.out_features != b.in_features:
            raise ValueError(f"Linear sizes do not chain: {a.out_features} outputs into {b.in_features} inputs")
    dtypes = {l.weight.dtype for l in linears}
    if len(dtypes) != 1 or next(iter(dtypes)) not in (torch.float32, torch.float64):
        raise ValueError(f"weights must all be float32 or all float64, got {sorted(map(str, dtypes))}")
    network = Network(n_inputs=linears[0].in_features, hidden=tuple(l.out_features for l in linears[:-1]),
                      n_outputs=linears[-1].out_features, activation=(acts.pop() if acts else "tanh"),
                      output=output, leaky_slope=slope)
    layers = []
    for l in linears:
        W = l.weight.detach().cpu().numpy()
        b = l.bias.detach().cpu().numpy() if l.bias is not None else np.zeros(l.out_features, W.dtype)
        layers.append((W, b))
    return network, Layout(network.sizes).pack(layers, dtype=layers[0][0].dtype)
