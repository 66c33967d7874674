"""The packed parameter layout: where each layer's W and b live in a network's flat vector.

A network's parameters are one contiguous vector: for each layer in order, ``W`` row-major with shape
``(fan_out, fan_in)``, then ``b`` of length ``fan_out``. A batch of N networks is an ``(N, P)`` array.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Layout:
    """Offsets of every weight matrix and bias vector inside the flat parameter vector.

    Parameters
    ----------
    sizes : tuple of int
        Layer sizes from input to output.
    """
    sizes: tuple

    @property
    def n_layers(self):
        return len(self.sizes) - 1

    @property
    def w_offsets(self):
        return self.arrays()[1]

    @property
    def b_offsets(self):
        return self.arrays()[2]

    @property
    def n_params(self):
        return int(sum(o * (i + 1) for i, o in zip(self.sizes[:-1], self.sizes[1:])))

    def arrays(self):
        """``(sizes, w_offsets, b_offsets)`` as int64 arrays, the form compiled code takes."""
        sizes = np.asarray(self.sizes, dtype=np.int64)
        L = len(sizes) - 1
        w_off = np.empty(L, dtype=np.int64)
        b_off = np.empty(L, dtype=np.int64)
        p = 0
        for l in range(L):
            w_off[l] = p
            p += sizes[l] * sizes[l + 1]
            b_off[l] = p
            p += sizes[l + 1]
        return sizes, w_off, b_off

    def unpack(self, params):
        """Views ``[(W, b), ...]`` of one flat vector (or ``(N, P)`` batch: ``W`` is then ``(N, out, in)``)."""
        params = np.asarray(params)
        _, w_off, b_off = self.arrays()
        lead = params.shape[:-1]
        out = []
        for l in range(self.n_layers):
            fi, fo = self.sizes[l], self.sizes[l + 1]
            W = params[..., w_off[l]:w_off[l] + fo * fi].reshape(*lead, fo, fi)
            b = params[..., b_off[l]:b_off[l] + fo]
            out.append((W, b))
        return out

    def pack(self, layers, dtype=np.float64):
        """The flat vector of ``[(W, b), ...]``."""
        parts = []
        for l, (W, b) in enumerate(layers):
            fi, fo = self.sizes[l], self.sizes[l + 1]
            W = np.asarray(W)
            b = np.asarray(b)
            if W.shape != (fo, fi) or b.shape != (fo,):
                raise ValueError(f"layer {l}: expected W {(fo, fi)} and b {(fo,)}, got {W.shape} and {b.shape}")
            parts += [W.ravel(), b]
        return np.concatenate(parts).astype(dtype)
