"""Counter-based random numbers for training: minibatch order and dropout masks.

Every random number used during training is a pure function of (seed, stream, counter): a SplitMix64-style
hash, with no generator state. A network therefore draws the same numbers whichever thread trains it, whatever
networks train beside it and however a grid is split into calls. The engines call the scalar ``@njit`` functions;
the NumPy reference calls the vectorised twins below, and a test checks that the two agree bit for bit.
"""
import numpy as np
from numba import njit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_ONE = np.uint64(1)
_INV53 = 1.0 / 9007199254740992.0  # 2**-53

# Stream namespaces: the top byte says what a number is for.
SHUFFLE = np.uint64(1 << 56)
DROPOUT = np.uint64(2 << 56)


@njit(cache=True)
def mix64(z):
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(cache=True)
def stream_key(seed, stream):
    """Key of one stream of one network: everything but the counter."""
    return mix64(np.uint64(seed) + _GOLDEN * (np.uint64(stream) + _ONE))


@njit(cache=True)
def bits_at(key, counter):
    """64 random bits; a bijection of ``counter`` for a fixed key, so no two counters collide."""
    return mix64(key ^ (np.uint64(counter) * _GOLDEN))


@njit(cache=True)
def uniform_at(key, counter):
    """A float64 uniform on [0, 1) with 53 random bits."""
    return np.float64(bits_at(key, counter) >> _S11) * _INV53


@njit(cache=True)
def dropout_stream(step, layer):
    return DROPOUT | (np.uint64(step) << np.uint64(8)) | np.uint64(layer)


@njit(cache=True)
def epoch_permutation(seed, epoch, n):
    """The order of the ``n`` samples in ``epoch``: the argsort of distinct random keys."""
    key = stream_key(seed, SHUFFLE | np.uint64(epoch))
    keys = np.empty(n, dtype=np.uint64)
    for i in range(n):
        keys[i] = bits_at(key, i)
    return argsort_distinct(keys)


@njit(cache=True)
def argsort_distinct(keys):
    """``np.argsort(keys)`` for distinct, uniformly random uint64 keys, in O(n).

    A counting sort on the top ``ceil(log2 n)`` bits (about one key per bucket), then an insertion sort that only
    moves keys within their bucket. With distinct keys the order is unique, so it equals any argsort. A
    comparison sort of random keys mispredicts about every other branch: 157 us for 1797 keys, ~11 us per
    step of a minibatch of 128 (bench/NOTES.md, change 25).
    """
    n = keys.size
    order = np.arange(n)
    if n < 2:
        return order
    bits = 1
    while (1 << bits) < n:
        bits += 1
    shift = np.uint64(64 - bits)
    start = np.zeros((1 << bits) + 1, dtype=np.int64)
    for i in range(n):
        start[np.int64(keys[i] >> shift) + 1] += 1
    for b in range(1 << bits):
        start[b + 1] += start[b]
    for i in range(n):
        b = np.int64(keys[i] >> shift)
        order[start[b]] = i
        start[b] += 1
    for i in range(1, n):
        j = order[i]
        k = keys[j]
        m = i - 1
        while m >= 0 and keys[order[m]] > k:
            order[m + 1] = order[m]
            m -= 1
        order[m + 1] = j
    return order


# ---- NumPy twins (vectorised; used by the reference engine and by peers) ----

def _mix64_np(z):
    z = np.asarray(z, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> _S30)) * _M1
        z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


def stream_key_np(seed, stream):
    with np.errstate(over="ignore"):
        s = np.asarray([seed], dtype=np.uint64) + _GOLDEN * (np.asarray([stream], dtype=np.uint64) + _ONE)
    return _mix64_np(s)[0]


def bits_np(key, counters):
    with np.errstate(over="ignore"):
        c = np.asarray(counters, dtype=np.uint64) * _GOLDEN
    return _mix64_np(np.uint64(key) ^ c)


def uniform_np(key, counters):
    return (bits_np(key, counters) >> _S11).astype(np.float64) * _INV53


def dropout_stream_np(step, layer):
    return int(DROPOUT) | (int(step) << 8) | int(layer)


def epoch_permutation_np(seed, epoch, n):
    key = stream_key_np(seed, int(SHUFFLE) | int(epoch))
    return np.argsort(bits_np(key, np.arange(n)), kind="stable")


def batch_bounds(step, n_samples, batch_size):
    """(epoch, start, stop) of the minibatch used at ``step``; the last batch of an epoch may be short."""
    per_epoch = -(-n_samples // batch_size)
    epoch, j = divmod(step, per_epoch)
    return epoch, j * batch_size, min(n_samples, (j + 1) * batch_size)


def minibatch_indices(seed, n_samples, batch_size, steps):
    """The sample indices of every step's minibatch, as the engines draw them.

    Parameters
    ----------
    seed : int
        The network's seed.
    n_samples, batch_size, steps : int
        Data size, minibatch size (``None`` or ``>= n_samples`` means full batch, natural order) and steps.

    Returns
    -------
    list of ndarray
        One index array per step. Peers and tests use this to replay fastmlp's exact batch order.
    """
    if batch_size is None or batch_size >= n_samples:
        full = np.arange(n_samples)
        return [full] * steps
    out, cache = [], {}
    for t in range(steps):
        epoch, a, b = batch_bounds(t, n_samples, batch_size)
        if epoch not in cache:
            cache = {epoch: epoch_permutation_np(seed, epoch, n_samples)}
        out.append(cache[epoch][a:b])
    return out
