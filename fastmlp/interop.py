"""PyTorch entry points that import torch only when called, so that ``import fastmlp`` never does.

The work is in ``torch_interop``; these wrappers carry its documentation.
"""
from __future__ import annotations


def to_torch(network, params):
    """The network as a ``torch.nn.Sequential`` up to its logits, in the params' dtype (needs torch).

    See :func:`fastmlp.torch_interop.to_torch`.
    """
    from .torch_interop import to_torch as _to_torch
    return _to_torch(network, params)


def from_torch(module, output=None):
    """``(network, params)`` of a ``torch.nn.Sequential`` of Linear layers and activations (needs torch).

    See :func:`fastmlp.torch_interop.from_torch`.
    """
    from .torch_interop import from_torch as _from_torch
    return _from_torch(module, output=output)
